// SPDX-License-Identifier: MIT
/*
 * Unit tests of the node link's cryptography (lib/node): the cookie file,
 * the handshake (agreement, and the attacks it must refuse: another
 * cookie, replayed and reflected hellos and proofs, downgrades, tampering,
 * steps out of turn) and the record layer (round trips with both AEADs,
 * every flipped bit, replayed and reordered records, key steps by count
 * and by time, skipped epochs, plaintext after keying, header bounds).
 */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/handshake.h"
#include "node/seal.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static uint8_t master_a[HS_KEY_BYTES], master_b[HS_KEY_BYTES];
static char tmpdir[] = "/tmp/pgroup-hs-XXXXXX";

/* Records up to this size of plaintext; static: too big for a test's stack. */
#define PLAIN_MAX (70u * 1024u)
static uint8_t plain[PLAIN_MAX];
static uint8_t rec[PLAIN_MAX + 64];
static uint8_t copy[PLAIN_MAX + 64];

static bool zero(const void *p, size_t n)
{
	return sodium_is_zero(p, n) == 1;
}

/* ------------------------------------------------------------------------ */
/* Handshake                                                                */

struct side {
	struct hs h;
	struct wire_hello hello;
	struct wire_proof proof;
	struct hs_keys keys;
};

static void start(struct side *a, struct side *b, const uint8_t *ma, const uint8_t *mb, bool ea,
		  bool eb)
{
	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	CU_ASSERT_EQUAL_FATAL(hs_start(&a->h, ma, true, "node-a", ea, &a->hello), 0);
	CU_ASSERT_EQUAL_FATAL(hs_start(&b->h, mb, false, "node-b", eb, &b->hello), 0);
}

static void hellos(struct side *a, struct side *b)
{
	CU_ASSERT_EQUAL_FATAL(hs_on_hello(&a->h, &b->hello, &a->proof), 0);
	CU_ASSERT_EQUAL_FATAL(hs_on_hello(&b->h, &a->hello, &b->proof), 0);
}

/* A whole handshake that must succeed; a is the initiator. */
static void link_up(struct side *a, struct side *b, bool encrypt)
{
	start(a, b, master_a, master_a, encrypt, encrypt);
	hellos(a, b);
	CU_ASSERT_EQUAL_FATAL(hs_on_proof(&a->h, &b->proof, &a->keys), 0);
	CU_ASSERT_EQUAL_FATAL(hs_on_proof(&b->h, &a->proof, &b->keys), 0);
}

static void test_agree(void)
{
	struct side a, b;
	link_up(&a, &b, true);
	CU_ASSERT_EQUAL(a.h.state, HS_DONE);
	CU_ASSERT_EQUAL(b.h.state, HS_DONE);
	CU_ASSERT(memcmp(a.keys.tx, b.keys.rx, HS_KEY_BYTES) == 0);
	CU_ASSERT(memcmp(a.keys.rx, b.keys.tx, HS_KEY_BYTES) == 0);
	CU_ASSERT(memcmp(a.keys.tx, a.keys.rx, HS_KEY_BYTES) != 0);
	CU_ASSERT(!zero(a.keys.tx, HS_KEY_BYTES) && !zero(a.keys.rx, HS_KEY_BYTES));
	CU_ASSERT(a.keys.encrypt && b.keys.encrypt);
	bool aes = crypto_aead_aes256gcm_is_available();
	CU_ASSERT_EQUAL(a.keys.aes, aes);
	CU_ASSERT_EQUAL(b.keys.aes, aes);
	/* Both sides saw the same transcript; the proofs differ by role. */
	CU_ASSERT(memcmp(a.h.transcript, b.h.transcript, sizeof(a.h.transcript)) == 0);
	CU_ASSERT(memcmp(a.proof.mac, b.proof.mac, sizeof(a.proof.mac)) != 0);
	/* The secrets the handshake no longer needs are gone. */
	CU_ASSERT(zero(a.h.kx_sk, sizeof(a.h.kx_sk)) && zero(a.h.auth_key, HS_KEY_BYTES) &&
		  zero(a.h.bind_key, HS_KEY_BYTES));
	/* The cookie-derived keys are not the link keys. */
	CU_ASSERT(memcmp(a.keys.tx, master_a, HS_KEY_BYTES) != 0);

	/* The same cookie again: fresh keys, not the last link's. */
	struct side c, d;
	link_up(&c, &d, true);
	CU_ASSERT(memcmp(a.keys.tx, c.keys.tx, HS_KEY_BYTES) != 0);
	CU_ASSERT(memcmp(a.keys.rx, c.keys.rx, HS_KEY_BYTES) != 0);
	CU_ASSERT(memcmp(a.hello.nonce, c.hello.nonce, sizeof(a.hello.nonce)) != 0);

	hs_clear(&a.h);
	CU_ASSERT(zero(a.h.transcript, sizeof(a.h.transcript)));
	CU_ASSERT_EQUAL(a.h.state, HS_FAILED);
}

static void test_start(void)
{
	struct hs h;
	struct wire_hello m;
	char longest[WIRE_NODE_MAX];
	memset(longest, 'n', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = 0;
	CU_ASSERT_EQUAL(hs_start(&h, master_a, true, longest, true, &m), 0);
	CU_ASSERT_EQUAL(m.magic, WIRE_MAGIC);
	CU_ASSERT_EQUAL(m.version, WIRE_VERSION);
	CU_ASSERT(m.flags & WIRE_HELLO_ENCRYPT);
	CU_ASSERT_EQUAL(!!(m.flags & WIRE_HELLO_AES), !!crypto_aead_aes256gcm_is_available());
	CU_ASSERT(memcmp(m.node, longest, sizeof(longest)) == 0);
	CU_ASSERT(memcmp(m.kx_pk, h.kx_pk, sizeof(m.kx_pk)) == 0);
	CU_ASSERT_EQUAL(h.state, HS_SENT_HELLO);
	hs_clear(&h);

	CU_ASSERT_EQUAL(hs_start(&h, master_a, false, "b", false, &m), 0);
	CU_ASSERT_EQUAL(m.flags & WIRE_HELLO_ENCRYPT, 0);
	CU_ASSERT(m.node[0] == 'b' && zero(m.node + 1, sizeof(m.node) - 1));
	hs_clear(&h);

	char too_long[WIRE_NODE_MAX + 1];
	memset(too_long, 'n', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = 0;
	const char *bad[] = {"", "has space", "slash/no", too_long, NULL};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CU_ASSERT_EQUAL(hs_start(&h, master_a, true, bad[i], true, &m), -EINVAL);
		CU_ASSERT_EQUAL(h.state, HS_FAILED);
	}
}

static void test_wrong_cookie(void)
{
	struct side a, b;
	start(&a, &b, master_a, master_b, true, true);
	/* The hellos carry nothing secret: they pass. The proofs do not. */
	hellos(&a, &b);
	CU_ASSERT_EQUAL(hs_on_proof(&a.h, &b.proof, &a.keys), -EACCES);
	CU_ASSERT_EQUAL(hs_on_proof(&b.h, &a.proof, &b.keys), -EACCES);
	CU_ASSERT_EQUAL(a.h.state, HS_FAILED);
	CU_ASSERT_EQUAL(b.h.state, HS_FAILED);
	CU_ASSERT(zero(&a.keys, sizeof(a.keys)) && zero(&b.keys, sizeof(b.keys)));
	CU_ASSERT(zero(a.h.auth_key, HS_KEY_BYTES) && zero(a.h.kx_sk, sizeof(a.h.kx_sk)));
	/* Failed stays failed: the right proof is no use now. */
	CU_ASSERT_EQUAL(hs_on_proof(&a.h, &b.proof, &a.keys), -EPROTO);
}

static void test_replay_proof(void)
{
	struct side a1, b1, a2, b2;
	link_up(&a1, &b1, true);

	/* A recording of session 1, played into session 2 by either side. */
	start(&a2, &b2, master_a, master_a, true, true);
	hellos(&a2, &b2);
	CU_ASSERT_EQUAL(hs_on_proof(&a2.h, &b1.proof, &a2.keys), -EACCES);
	CU_ASSERT_EQUAL(hs_on_proof(&b2.h, &a1.proof, &b2.keys), -EACCES);

	/* The whole of an old responder, hello and proof, against a new
	 * initiator: its nonce is new, so the old proof does not fit. */
	start(&a2, &b2, master_a, master_a, true, true);
	CU_ASSERT_EQUAL(hs_on_hello(&a2.h, &b1.hello, &a2.proof), 0);
	CU_ASSERT_EQUAL(hs_on_proof(&a2.h, &b1.proof, &a2.keys), -EACCES);
	/* The same against a new responder. */
	start(&a2, &b2, master_a, master_a, true, true);
	CU_ASSERT_EQUAL(hs_on_hello(&b2.h, &a1.hello, &b2.proof), 0);
	CU_ASSERT_EQUAL(hs_on_proof(&b2.h, &a1.proof, &b2.keys), -EACCES);
}

static void test_reflect_hello(void)
{
	struct side a, b;
	struct wire_hello h;

	start(&a, &b, master_a, master_a, true, true);
	CU_ASSERT_EQUAL(hs_on_hello(&a.h, &a.hello, &a.proof), -EPROTO);
	CU_ASSERT_EQUAL(a.h.state, HS_FAILED);
	CU_ASSERT(zero(&a.proof, sizeof(a.proof)));

	/* Our nonce with another key, or our key with another nonce. */
	start(&a, &b, master_a, master_a, true, true);
	h = b.hello;
	memcpy(h.nonce, a.hello.nonce, sizeof(h.nonce));
	CU_ASSERT_EQUAL(hs_on_hello(&a.h, &h, &a.proof), -EPROTO);
	start(&a, &b, master_a, master_a, true, true);
	h = b.hello;
	memcpy(h.kx_pk, a.hello.kx_pk, sizeof(h.kx_pk));
	CU_ASSERT_EQUAL(hs_on_hello(&a.h, &h, &a.proof), -EPROTO);
}

static void test_reflect_proof(void)
{
	struct side a, b;
	start(&a, &b, master_a, master_a, true, true);
	hellos(&a, &b);
	/* Same transcript, same cookie: only the role tells them apart. */
	CU_ASSERT_EQUAL(hs_on_proof(&a.h, &a.proof, &a.keys), -EACCES);
	CU_ASSERT_EQUAL(hs_on_proof(&b.h, &b.proof, &b.keys), -EACCES);
}

static void test_version(void)
{
	const uint16_t versions[] = {0, WIRE_VERSION + 1, 0xffff};
	for (size_t i = 0; i < ARRAY_SIZE(versions); i++) {
		struct side a, b;
		start(&a, &b, master_a, master_a, true, true);
		b.hello.version = versions[i];
		CU_ASSERT_EQUAL(hs_on_hello(&a.h, &b.hello, &a.proof), -EPROTONOSUPPORT);
		CU_ASSERT_EQUAL(a.h.state, HS_FAILED);
	}
}

static void test_encrypt_mismatch(void)
{
	struct side a, b;
	start(&a, &b, master_a, master_a, true, false);
	CU_ASSERT_EQUAL(hs_on_hello(&a.h, &b.hello, &a.proof), -EPERM);
	CU_ASSERT_EQUAL(hs_on_hello(&b.h, &a.hello, &b.proof), -EPERM);
	start(&a, &b, master_a, master_a, false, true);
	CU_ASSERT_EQUAL(hs_on_hello(&a.h, &b.hello, &a.proof), -EPERM);
	CU_ASSERT_EQUAL(hs_on_hello(&b.h, &a.hello, &b.proof), -EPERM);
}

/* A man in the middle without the cookie changes the initiator's hello on
 * its way: whatever it changes, the proofs no longer verify. */
static void test_tamper(void)
{
	uint8_t mitm_pk[crypto_kx_PUBLICKEYBYTES], mitm_sk[crypto_kx_SECRETKEYBYTES];
	crypto_kx_keypair(mitm_pk, mitm_sk);
	for (int what = 0; what < 4; what++) {
		struct side a, b;
		start(&a, &b, master_a, master_a, true, true);
		struct wire_hello h = a.hello;
		switch (what) {
		case 0: /* its own kx key, to read the link */
			memcpy(h.kx_pk, mitm_pk, sizeof(h.kx_pk));
			break;
		case 1: /* strip AES, to force the other cipher */
			h.flags ^= WIRE_HELLO_AES;
			break;
		case 2:
			h.node[0] ^= 1;
			break;
		case 3:
			h.nonce[31] ^= 0x80;
			break;
		}
		CU_ASSERT_EQUAL(hs_on_hello(&a.h, &b.hello, &a.proof), 0);
		CU_ASSERT_EQUAL(hs_on_hello(&b.h, &h, &b.proof), 0);
		CU_ASSERT_EQUAL(hs_on_proof(&a.h, &b.proof, &a.keys), -EACCES);
		CU_ASSERT_EQUAL(hs_on_proof(&b.h, &a.proof, &b.keys), -EACCES);
	}
	/* One flipped bit in a proof. */
	for (unsigned bit = 0; bit < 8 * sizeof(struct wire_proof); bit += 37) {
		struct side a, b;
		start(&a, &b, master_a, master_a, true, true);
		hellos(&a, &b);
		b.proof.mac[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		CU_ASSERT_EQUAL(hs_on_proof(&a.h, &b.proof, &a.keys), -EACCES);
	}
	sodium_memzero(mitm_sk, sizeof(mitm_sk));
}

static void test_out_of_turn(void)
{
	struct side a, b, c, d;
	start(&a, &b, master_a, master_a, true, true);
	/* A proof before the hellos, then nothing goes. */
	CU_ASSERT_EQUAL(hs_on_proof(&a.h, &b.proof, &a.keys), -EPROTO);
	CU_ASSERT_EQUAL(a.h.state, HS_FAILED);
	CU_ASSERT_EQUAL(hs_on_hello(&a.h, &b.hello, &a.proof), -EPROTO);

	/* A second hello. */
	start(&a, &b, master_a, master_a, true, true);
	CU_ASSERT_EQUAL(hs_on_hello(&a.h, &b.hello, &a.proof), 0);
	CU_ASSERT_EQUAL(hs_on_hello(&a.h, &b.hello, &a.proof), -EPROTO);
	CU_ASSERT_EQUAL(hs_on_proof(&a.h, &b.proof, &a.keys), -EPROTO);

	/* Anything after the end. */
	link_up(&c, &d, true);
	struct hs_keys k;
	CU_ASSERT_EQUAL(hs_on_hello(&c.h, &d.hello, &c.proof), -EPROTO);
	link_up(&c, &d, true);
	CU_ASSERT_EQUAL(hs_on_proof(&c.h, &d.proof, &k), -EPROTO);
	CU_ASSERT(zero(&k, sizeof(k)));

	/* Anything after hs_clear. */
	start(&a, &b, master_a, master_a, true, true);
	hs_clear(&a.h);
	CU_ASSERT_EQUAL(hs_on_hello(&a.h, &b.hello, &a.proof), -EPROTO);
}

/* ------------------------------------------------------------------------ */
/* Records                                                                  */

/* Open rec[0..len) as the link would: header, check, body. */
static int open_rec(struct seal *rx, uint8_t *r, size_t len, uint8_t **p, size_t *n)
{
	struct seal_hdr h;
	size_t body;
	if (len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, r, sizeof(h));
	int err = seal_check_hdr(rx, &h, &body);
	if (err)
		return err;
	return seal_open(rx, &h, r + sizeof(h), len - sizeof(h), p, n);
}

static void fill(size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		plain[i] = (uint8_t)(i * 31u + seed);
}

/* Seal n bytes on tx, open on rx, compare. */
static void round_trip(struct seal *tx, struct seal *rx, size_t n, unsigned seed, int64_t now)
{
	fill(n, seed);
	size_t len = seal_record(tx, rec, plain, n, now);
	CU_ASSERT_EQUAL_FATAL(len, n + seal_overhead(tx));
	if (tx->encrypt && n >= 16)
		CU_ASSERT(memcmp(rec + sizeof(struct seal_hdr), plain, n) != 0);
	uint8_t *p = NULL;
	size_t m = 0;
	CU_ASSERT_EQUAL_FATAL(open_rec(rx, rec, len, &p, &m), 0);
	CU_ASSERT_EQUAL_FATAL(m, n);
	CU_ASSERT(p == rec + sizeof(struct seal_hdr));
	CU_ASSERT(memcmp(p, plain, n) == 0);
}

static void sealed_link(bool aes)
{
	if (aes && !crypto_aead_aes256gcm_is_available()) {
		/* Not a skip of the whole program: ChaCha is still tested. */
		fprintf(stderr, "no AES-256-GCM on this CPU: AES round trip not run\n");
		return;
	}
	struct side a, b;
	link_up(&a, &b, true);
	struct seal atx, arx, btx, brx;
	seal_key(&atx, a.keys.tx, true, aes, 0);
	seal_key(&arx, a.keys.rx, true, aes, 0);
	seal_key(&btx, b.keys.tx, true, aes, 0);
	seal_key(&brx, b.keys.rx, true, aes, 0);
	CU_ASSERT_EQUAL(atx.aes, aes);
	CU_ASSERT_EQUAL(seal_overhead(&atx), sizeof(struct seal_hdr) + SEAL_TAG_BYTES);
	const size_t sizes[] = {0, 1, 15, 16, 17, 100, 4096, PLAIN_MAX};
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		round_trip(&atx, &brx, sizes[i], (unsigned)i, 0);
		round_trip(&btx, &arx, sizes[i], (unsigned)i + 100, 0);
	}
	CU_ASSERT_EQUAL(atx.counter, ARRAY_SIZE(sizes));
	CU_ASSERT_EQUAL(brx.counter, ARRAY_SIZE(sizes));

	/* Sealed in place: the frames already sit after the header's room. */
	fill(1000, 7);
	memcpy(rec + sizeof(struct seal_hdr), plain, 1000);
	size_t len = seal_record(&atx, rec, rec + sizeof(struct seal_hdr), 1000, 0);
	uint8_t *p;
	size_t m;
	CU_ASSERT_EQUAL(open_rec(&brx, rec, len, &p, &m), 0);
	CU_ASSERT(m == 1000 && memcmp(p, plain, 1000) == 0);

	/* A record of one direction does not open in the other. */
	len = seal_record(&atx, rec, plain, 100, 0);
	CU_ASSERT_EQUAL(open_rec(&arx, rec, len, &p, &m), -EBADMSG);

	seal_clear(&atx);
	CU_ASSERT(zero(&atx, sizeof(atx)));
}

static void test_round_trip_aes(void)
{
	sealed_link(true);
}

static void test_round_trip_chacha(void)
{
	sealed_link(false);
}

/* A pair of sealers, one direction, under a random key. */
static void pair(struct seal *tx, struct seal *rx, bool encrypt, bool aes)
{
	uint8_t key[HS_KEY_BYTES];
	randombytes_buf(key, sizeof(key));
	seal_key(tx, key, encrypt, aes, 0);
	seal_key(rx, key, encrypt, aes, 0);
	sodium_memzero(key, sizeof(key));
}

static void test_bit_flip(void)
{
	for (int aes = 0; aes < 2; aes++) {
		if (aes && !crypto_aead_aes256gcm_is_available())
			continue;
		struct seal tx, rx0;
		pair(&tx, &rx0, true, aes);
		/* A second record, so the counter in the nonce is not 0. */
		size_t len = seal_record(&tx, rec, plain, 1, 0);
		struct seal rx;
		uint8_t *p;
		size_t m;
		CU_ASSERT_EQUAL_FATAL(open_rec(&rx0, rec, len, &p, &m), 0);
		fill(40, 3);
		len = seal_record(&tx, rec, plain, 40, 0);
		unsigned bad = 0;
		for (size_t bit = 0; bit < 8 * len; bit++) {
			memcpy(copy, rec, len);
			copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			rx = rx0;
			int err = open_rec(&rx, copy, len, &p, &m);
			/* A high bit of the length makes it too big to read. */
			bool in_len = bit < 32;
			if (err == -EBADMSG || (in_len && err == -EMSGSIZE))
				bad++;
			/* Nothing moved on the receiving side. */
			CU_ASSERT(rx.counter == rx0.counter && rx.epoch == rx0.epoch);
		}
		CU_ASSERT_EQUAL(bad, 8 * len);
		rx = rx0;
		CU_ASSERT_EQUAL(open_rec(&rx, rec, len, &p, &m), 0);
		CU_ASSERT(m == 40 && memcmp(p, plain, 40) == 0);
	}
}

static void test_replay_record(void)
{
	static uint8_t r[3][256];
	size_t len[3];
	struct seal tx, rx;
	uint8_t *p;
	size_t m;
	pair(&tx, &rx, true, false);
	for (int i = 0; i < 3; i++) {
		fill(100, (unsigned)i);
		len[i] = seal_record(&tx, r[i], plain, 100, 0);
	}
	/* A failed open may leave its body overwritten: open copies. */
#define OPEN(i) (memcpy(copy, r[i], len[i]), open_rec(&rx, copy, len[i], &p, &m))
	CU_ASSERT_EQUAL(OPEN(0), 0);
	CU_ASSERT_EQUAL(OPEN(0), -EBADMSG); /* replayed */
	CU_ASSERT_EQUAL(OPEN(2), -EBADMSG); /* ahead of its turn */
	CU_ASSERT_EQUAL(OPEN(1), 0);
	CU_ASSERT_EQUAL(OPEN(1), -EBADMSG);
	CU_ASSERT_EQUAL(OPEN(0), -EBADMSG);
	CU_ASSERT_EQUAL(OPEN(2), 0);
	fill(100, 2);
	CU_ASSERT(m == 100 && memcmp(p, plain, 100) == 0);
#undef OPEN
}

static void test_rekey_count(void)
{
	for (int aes = 0; aes < 2; aes++) {
		if (aes && !crypto_aead_aes256gcm_is_available())
			continue;
		struct seal tx, rx;
		pair(&tx, &rx, true, aes);
		uint8_t first[HS_KEY_BYTES];
		memcpy(first, tx.key, sizeof(first));
		tx.rekey_records = 3;
		for (unsigned i = 0; i < 10; i++) {
			round_trip(&tx, &rx, 64, i, 0);
			struct seal_hdr h;
			memcpy(&h, rec, sizeof(h));
			CU_ASSERT_EQUAL(h.epoch, 1 + i / 3);
		}
		/* Records 0-2 under epoch 1, 3-5 under 2, 6-8 under 3, 9 under 4. */
		CU_ASSERT_EQUAL(tx.epoch, 4);
		CU_ASSERT_EQUAL(rx.epoch, 4);
		CU_ASSERT_EQUAL(tx.counter, 1);
		CU_ASSERT_EQUAL(rx.counter, 1);
		CU_ASSERT(memcmp(tx.key, rx.key, HS_KEY_BYTES) == 0);
		CU_ASSERT(memcmp(tx.key, first, HS_KEY_BYTES) != 0);
	}
}

static void test_rekey_time(void)
{
	struct seal tx, rx;
	pair(&tx, &rx, true, false);
	round_trip(&tx, &rx, 10, 0, 0);
	round_trip(&tx, &rx, 10, 1, SEAL_REKEY_NS - 1);
	CU_ASSERT_EQUAL(tx.epoch, 1);
	round_trip(&tx, &rx, 10, 2, SEAL_REKEY_NS);
	CU_ASSERT_EQUAL(tx.epoch, 2);
	CU_ASSERT_EQUAL(rx.epoch, 2);
	CU_ASSERT_EQUAL(tx.key_since, SEAL_REKEY_NS);
	/* The time runs from the step, not from the start. */
	round_trip(&tx, &rx, 10, 3, 2 * SEAL_REKEY_NS - 1);
	CU_ASSERT_EQUAL(tx.epoch, 2);
	/* A lowered limit, and clocks far apart (no overflow, no step back). */
	tx.rekey_ns = 1000;
	round_trip(&tx, &rx, 10, 4, INT64_MIN);
	CU_ASSERT_EQUAL(tx.epoch, 2);
	round_trip(&tx, &rx, 10, 5, INT64_MAX);
	CU_ASSERT_EQUAL(tx.epoch, 3);
	CU_ASSERT_EQUAL(rx.epoch, 3);
}

static void test_epoch_skip(void)
{
	static uint8_t r1[128], r2[128];
	struct seal tx, rx;
	uint8_t *p;
	size_t m;
	pair(&tx, &rx, true, false);
	tx.rekey_records = 0; /* every record on a new key */
	size_t l1 = seal_record(&tx, r1, plain, 20, 0);
	size_t l2 = seal_record(&tx, r2, plain, 20, 0);
	CU_ASSERT_EQUAL(tx.epoch, 3);
	/* Epoch 3 at a receiver on 1: two steps ahead. */
	memcpy(copy, r2, l2);
	CU_ASSERT_EQUAL(open_rec(&rx, copy, l2, &p, &m), -EBADMSG);
	CU_ASSERT_EQUAL(rx.epoch, 1);
	/* A forged record of the next epoch does not move the receiver. */
	memcpy(copy, r1, l1);
	copy[l1 - 1] ^= 1;
	CU_ASSERT_EQUAL(open_rec(&rx, copy, l1, &p, &m), -EBADMSG);
	CU_ASSERT_EQUAL(rx.epoch, 1);
	CU_ASSERT_EQUAL(open_rec(&rx, r1, l1, &p, &m), 0);
	CU_ASSERT_EQUAL(rx.epoch, 2);
	CU_ASSERT_EQUAL(open_rec(&rx, r2, l2, &p, &m), 0);
	CU_ASSERT_EQUAL(rx.epoch, 3);

	/* Nothing after the last epoch; no wrap to 0 on either side. */
	tx.epoch = UINT32_MAX;
	CU_ASSERT_EQUAL(seal_record(&tx, r1, plain, 20, 0), 0);
	rx.epoch = UINT32_MAX;
	struct seal_hdr h = {.len = 100, .epoch = 0};
	size_t body;
	CU_ASSERT_EQUAL(seal_check_hdr(&rx, &h, &body), -EBADMSG);
	h.epoch = UINT32_MAX;
	CU_ASSERT_EQUAL(seal_check_hdr(&rx, &h, &body), 0);
}

static void test_plaintext(void)
{
	struct seal ptx, prx, tx, rx;
	uint8_t *p;
	size_t m;
	seal_init(&ptx);
	seal_init(&prx);
	CU_ASSERT_EQUAL(seal_overhead(&ptx), sizeof(struct seal_hdr));
	/* The handshake's records: epoch 0, the frames as they are. */
	fill(136, 9);
	size_t len = seal_record(&ptx, rec, plain, 136, 0);
	CU_ASSERT_EQUAL(len, 136 + sizeof(struct seal_hdr));
	CU_ASSERT(memcmp(rec + sizeof(struct seal_hdr), plain, 136) == 0);
	memcpy(copy, rec, len);
	CU_ASSERT_EQUAL(open_rec(&prx, rec, len, &p, &m), 0);
	CU_ASSERT(m == 136 && memcmp(p, plain, 136) == 0);

	/* After keying, a plaintext record is a downgrade. */
	pair(&tx, &rx, true, false);
	CU_ASSERT_EQUAL(open_rec(&rx, copy, len, &p, &m), -EBADMSG);
	/* And before keying, a keyed one is out of place. */
	len = seal_record(&tx, rec, plain, 50, 0);
	CU_ASSERT_EQUAL(open_rec(&prx, rec, len, &p, &m), -EBADMSG);
}

static void test_unencrypted(void)
{
	struct side a, b;
	link_up(&a, &b, false);
	CU_ASSERT(!a.keys.encrypt && !b.keys.encrypt);
	struct seal tx, rx;
	seal_key(&tx, a.keys.tx, a.keys.encrypt, a.keys.aes, 0);
	seal_key(&rx, b.keys.rx, b.keys.encrypt, b.keys.aes, 0);
	CU_ASSERT(!tx.aes);
	CU_ASSERT_EQUAL(seal_overhead(&tx), sizeof(struct seal_hdr));
	tx.rekey_records = 2;
	for (unsigned i = 0; i < 5; i++) {
		round_trip(&tx, &rx, 300, i, 0);
		CU_ASSERT(memcmp(rec + sizeof(struct seal_hdr), plain, 300) == 0);
	}
	/* The same epoch rules as an encrypted link. */
	CU_ASSERT_EQUAL(tx.epoch, 3);
	CU_ASSERT_EQUAL(rx.epoch, 3);
	struct seal_hdr h = {.len = 10, .epoch = 0};
	size_t body;
	CU_ASSERT_EQUAL(seal_check_hdr(&rx, &h, &body), -EBADMSG);
	h.epoch = 5;
	CU_ASSERT_EQUAL(seal_check_hdr(&rx, &h, &body), -EBADMSG);
	/* No tag: a short body is fine here. */
	h.epoch = 3;
	h.len = 0;
	CU_ASSERT_EQUAL(seal_check_hdr(&rx, &h, &body), 0);
}

static void test_check_hdr(void)
{
	struct seal plain_rx, rx, tx;
	seal_init(&plain_rx);
	pair(&tx, &rx, true, false);
	const size_t max_body = SEAL_RECORD_MAX - sizeof(struct seal_hdr);
	struct seal_hdr h = {.epoch = 1};
	size_t body = 0;

	h.len = (uint32_t)max_body;
	CU_ASSERT(seal_check_hdr(&rx, &h, &body) == 0 && body == max_body);
	h.len = (uint32_t)max_body + 1;
	CU_ASSERT_EQUAL(seal_check_hdr(&rx, &h, &body), -EMSGSIZE);
	h.len = UINT32_MAX;
	CU_ASSERT_EQUAL(seal_check_hdr(&rx, &h, &body), -EMSGSIZE);
	h.epoch = 0;
	CU_ASSERT_EQUAL(seal_check_hdr(&plain_rx, &h, &body), -EMSGSIZE);
	h.len = (uint32_t)max_body;
	CU_ASSERT_EQUAL(seal_check_hdr(&plain_rx, &h, &body), 0);

	/* Too short to hold a tag. */
	h.epoch = 1;
	h.len = SEAL_TAG_BYTES - 1;
	CU_ASSERT_EQUAL(seal_check_hdr(&rx, &h, &body), -EBADMSG);
	h.len = SEAL_TAG_BYTES;
	CU_ASSERT_EQUAL(seal_check_hdr(&rx, &h, &body), 0);

	/* The largest frame the caller may seal fits. */
	size_t n = WIRE_FRAME_MAX + sizeof(struct wire_hdr);
	CU_ASSERT(n + seal_overhead(&tx) <= SEAL_RECORD_MAX);

	/* seal_open checks the header too, and the body's length against it. */
	uint8_t *p;
	size_t m;
	size_t len = seal_record(&tx, rec, plain, 30, 0);
	memcpy(&h, rec, sizeof(h));
	CU_ASSERT_EQUAL(seal_open(&rx, &h, rec + sizeof(h), len - sizeof(h) - 1, &p, &m), -EBADMSG);
	h.epoch = 7;
	CU_ASSERT_EQUAL(seal_open(&rx, &h, rec + sizeof(h), len - sizeof(h), &p, &m), -EBADMSG);
	memcpy(&h, rec, sizeof(h));
	CU_ASSERT_EQUAL(seal_open(&rx, &h, rec + sizeof(h), len - sizeof(h), &p, &m), 0);
}

/* ------------------------------------------------------------------------ */
/* Cookie file                                                              */

static void tmp_path(char *out, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const void *buf, size_t n, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, buf, n) == (ssize_t)n);
	close(fd);
	CU_ASSERT_FATAL(chmod(path, mode) == 0);
}

static unsigned dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	unsigned n = 0;
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_cookie_create(void)
{
	char path[PATH_MAX], dir[PATH_MAX];
	uint8_t k1[HS_KEY_BYTES], k2[HS_KEY_BYTES];
	tmp_path(path, "new/deeper/cookie");
	tmp_path(dir, "new/deeper");

	CU_ASSERT_EQUAL_FATAL(hs_cookie_load(path, k1), 0);
	struct stat st;
	CU_ASSERT_FATAL(stat(path, &st) == 0);
	CU_ASSERT(S_ISREG(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	CU_ASSERT_EQUAL(st.st_size, 65);
	CU_ASSERT(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0700);
	tmp_path(dir, "new");
	CU_ASSERT(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0700);
	/* Nothing left behind but the cookie. */
	tmp_path(dir, "new/deeper");
	CU_ASSERT_EQUAL(dir_entries(dir), 1);

	char text[80] = {0};
	FILE *f = fopen(path, "r");
	CU_ASSERT_FATAL(f != NULL);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	CU_ASSERT_EQUAL(n, 65);
	CU_ASSERT_EQUAL(text[64], '\n');
	CU_ASSERT_EQUAL(strspn(text, "0123456789abcdef"), 64);

	/* Loaded again: the same key, and it is not the file's bytes. */
	CU_ASSERT_EQUAL(hs_cookie_load(path, k2), 0);
	CU_ASSERT(memcmp(k1, k2, sizeof(k1)) == 0);
	CU_ASSERT(!zero(k1, sizeof(k1)));
	CU_ASSERT(memcmp(k1, text, sizeof(k1)) != 0);

	/* Another cookie, another key. */
	tmp_path(path, "other");
	CU_ASSERT_EQUAL(hs_cookie_load(path, k2), 0);
	CU_ASSERT(memcmp(k1, k2, sizeof(k1)) != 0);

	/* Two nodes loading one cookie file link up. */
	tmp_path(path, "new/deeper/cookie");
	CU_ASSERT_EQUAL(hs_cookie_load(path, master_b), 0);
	uint8_t saved[HS_KEY_BYTES];
	memcpy(saved, master_a, sizeof(saved));
	memcpy(master_a, k1, sizeof(k1));
	struct side a, b;
	start(&a, &b, master_a, master_b, true, true);
	hellos(&a, &b);
	CU_ASSERT_EQUAL(hs_on_proof(&a.h, &b.proof, &a.keys), 0);
	CU_ASSERT_EQUAL(hs_on_proof(&b.h, &a.proof, &b.keys), 0);
	CU_ASSERT(memcmp(a.keys.tx, b.keys.rx, HS_KEY_BYTES) == 0);
	memcpy(master_a, saved, sizeof(saved));
	randombytes_buf(master_b, sizeof(master_b));
}

static void test_cookie_perms(void)
{
	char path[PATH_MAX];
	uint8_t k[HS_KEY_BYTES];
	tmp_path(path, "perms");
	write_file(path, "0123456789abcdef0123\n", 21, 0600);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k), 0);
	const mode_t bad[] = {0644, 0640, 0604, 0602, 0620, 0610, 0601, 0666};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CU_ASSERT_FATAL(chmod(path, bad[i]) == 0);
		CU_ASSERT_EQUAL(hs_cookie_load(path, k), -EPERM);
	}
	CU_ASSERT_FATAL(chmod(path, 0400) == 0);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k), 0);
	/* Someone else's file, however private: only root can make one. */
	if (geteuid() == 0) {
		CU_ASSERT_FATAL(chown(path, 1, 1) == 0);
		CU_ASSERT_EQUAL(hs_cookie_load(path, k), -EPERM);
		CU_ASSERT_FATAL(chown(path, 0, 0) == 0);
		CU_ASSERT_EQUAL(hs_cookie_load(path, k), 0);
	} else {
		fprintf(stderr, "not root: the not-owned cookie case is not run\n");
	}
}

static void test_cookie_size(void)
{
	static char big[5000];
	char path[PATH_MAX];
	uint8_t k1[HS_KEY_BYTES], k2[HS_KEY_BYTES];
	memset(big, 'x', sizeof(big));
	tmp_path(path, "size");

	write_file(path, "", 0, 0600);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k1), -EINVAL);
	write_file(path, big, 15, 0600);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k1), -EINVAL);
	write_file(path, "xxxxxxxxxxxxxxx\n", 16, 0600); /* 15 and a newline */
	CU_ASSERT_EQUAL(hs_cookie_load(path, k1), -EINVAL);
	write_file(path, big, 16, 0600);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k1), 0);
	/* The trailing newline is not part of the cookie. */
	write_file(path, "xxxxxxxxxxxxxxxx\n", 17, 0600);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k2), 0);
	CU_ASSERT(memcmp(k1, k2, sizeof(k1)) == 0);
	write_file(path, big, 17, 0600);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k2), 0);
	CU_ASSERT(memcmp(k1, k2, sizeof(k1)) != 0);

	write_file(path, big, 4096, 0600);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k1), 0);
	big[4096] = '\n';
	write_file(path, big, 4097, 0600);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k2), 0);
	CU_ASSERT(memcmp(k1, k2, sizeof(k1)) == 0);
	big[4096] = 'x';
	write_file(path, big, 4097, 0600);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k1), -EINVAL);
	write_file(path, big, sizeof(big), 0600);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k1), -EINVAL);
}

static void test_cookie_not_file(void)
{
	char path[PATH_MAX], target[PATH_MAX];
	uint8_t k[HS_KEY_BYTES];
	tmp_path(target, "target");
	write_file(target, "0123456789abcdef0123\n", 21, 0600);
	CU_ASSERT_EQUAL(hs_cookie_load(target, k), 0);

	/* A symlink, even to a good cookie, is not followed. */
	tmp_path(path, "link");
	CU_ASSERT_FATAL(symlink(target, path) == 0);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k), -ELOOP);
	/* Nor one to nowhere: nothing is created through it. */
	tmp_path(path, "dangling");
	tmp_path(target, "nowhere");
	CU_ASSERT_FATAL(symlink(target, path) == 0);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k), -ELOOP);
	CU_ASSERT(access(target, F_OK) < 0 && errno == ENOENT);

	tmp_path(path, "adir");
	CU_ASSERT_FATAL(mkdir(path, 0700) == 0);
	CU_ASSERT_EQUAL(hs_cookie_load(path, k), -EINVAL);
	CU_ASSERT_EQUAL(hs_cookie_load("", k), -EINVAL);
}

static void test_cookie_default_path(void)
{
	char p[PATH_MAX];
	if (geteuid() == 0) {
		CU_ASSERT_EQUAL(hs_cookie_default_path(p, sizeof(p)), 0);
		CU_ASSERT_STRING_EQUAL(p, "/var/lib/pgroup/cookie");
	} else {
		setenv("XDG_CONFIG_HOME", "/xdg/conf", 1);
		CU_ASSERT_EQUAL(hs_cookie_default_path(p, sizeof(p)), 0);
		CU_ASSERT_STRING_EQUAL(p, "/xdg/conf/pgroup/cookie");
		/* A relative XDG_CONFIG_HOME is not one (the XDG spec). */
		setenv("XDG_CONFIG_HOME", "rel", 1);
		setenv("HOME", "/home/someone", 1);
		CU_ASSERT_EQUAL(hs_cookie_default_path(p, sizeof(p)), 0);
		CU_ASSERT_STRING_EQUAL(p, "/home/someone/.config/pgroup/cookie");
	}
	CU_ASSERT_EQUAL(hs_cookie_default_path(p, 8), -ENAMETOOLONG);
}

/* ------------------------------------------------------------------------ */

static const struct {
	const char *name;
	CU_TestFunc fn;
} tests[] = {
	{"agree", test_agree},
	{"start", test_start},
	{"wrong_cookie", test_wrong_cookie},
	{"replay_proof", test_replay_proof},
	{"reflect_hello", test_reflect_hello},
	{"reflect_proof", test_reflect_proof},
	{"version", test_version},
	{"encrypt_mismatch", test_encrypt_mismatch},
	{"tamper", test_tamper},
	{"out_of_turn", test_out_of_turn},
	{"round_trip_aes", test_round_trip_aes},
	{"round_trip_chacha", test_round_trip_chacha},
	{"bit_flip", test_bit_flip},
	{"replay_record", test_replay_record},
	{"rekey_count", test_rekey_count},
	{"rekey_time", test_rekey_time},
	{"epoch_skip", test_epoch_skip},
	{"plaintext", test_plaintext},
	{"unencrypted", test_unencrypted},
	{"check_hdr", test_check_hdr},
	{"cookie_create", test_cookie_create},
	{"cookie_perms", test_cookie_perms},
	{"cookie_size", test_cookie_size},
	{"cookie_not_file", test_cookie_not_file},
	{"cookie_default_path", test_cookie_default_path},
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	if (sodium_init() < 0)
		return 2;
	if (!mkdtemp(tmpdir))
		return 2;
	randombytes_buf(master_a, sizeof(master_a));
	randombytes_buf(master_b, sizeof(master_b));
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	CU_pSuite s = CU_add_suite("handshake", NULL, NULL);
	if (!s)
		return 2;
	for (size_t i = 0; i < ARRAY_SIZE(tests); i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return 2;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	/* Meson reads the exit status, not CUnit's summary. */
	unsigned failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return failed ? 1 : 0;
}
