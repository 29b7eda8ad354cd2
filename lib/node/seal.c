// SPDX-License-Identifier: MIT
/*
 * The record layer of seal.h: one AEAD per record, counter nonces, a
 * one-way key step every so often. libsodium does the cryptography.
 */
#include "seal.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

/* Each key step is its own crypto_kdf subkey: id = the new epoch. */
#define SEAL_KDF_CTX "pgrekey_"
static_assert(sizeof(SEAL_KDF_CTX) - 1 == crypto_kdf_CONTEXTBYTES, "crypto_kdf context size");

#define SEAL_NONCE_BYTES 12u
static_assert(SEAL_NONCE_BYTES == crypto_aead_aes256gcm_NPUBBYTES &&
		      SEAL_NONCE_BYTES == crypto_aead_chacha20poly1305_ietf_NPUBBYTES,
	      "one nonce layout for both AEADs");
static_assert(SEAL_TAG_BYTES == crypto_aead_aes256gcm_ABYTES &&
		      SEAL_TAG_BYTES == crypto_aead_chacha20poly1305_ietf_ABYTES,
	      "one tag size for both AEADs");
static_assert(HS_KEY_BYTES == crypto_aead_aes256gcm_KEYBYTES &&
		      HS_KEY_BYTES == crypto_aead_chacha20poly1305_ietf_KEYBYTES &&
		      HS_KEY_BYTES == crypto_kdf_KEYBYTES,
	      "link keys are AEAD and kdf keys");
/* A record's length fits seal_hdr.len and the AEADs' limits. */
static_assert(SEAL_RECORD_MAX <= UINT32_MAX, "record length is 32 bits");
static_assert(WIRE_FRAME_MAX + sizeof(struct wire_hdr) + sizeof(struct seal_hdr) + SEAL_TAG_BYTES <=
		      SEAL_RECORD_MAX,
	      "the largest frame fits a record");

static void limits_default(struct seal *s)
{
	s->rekey_records = SEAL_REKEY_RECORDS;
	s->rekey_ns = SEAL_REKEY_NS;
}

void seal_init(struct seal *s)
{
	memset(s, 0, sizeof(*s));
	limits_default(s);
}

void seal_key(struct seal *s, const uint8_t key[HS_KEY_BYTES], bool encrypt, bool aes,
	      int64_t now)
{
	seal_init(s);
	s->keyed = true;
	s->encrypt = encrypt;
	/* AES-GCM only where libsodium runs it (it refuses otherwise): then
	 * sealing cannot fail. A peer that chose AES regardless sees records
	 * that do not open, and closes the link. */
	s->aes = encrypt && aes && crypto_aead_aes256gcm_is_available();
	memcpy(s->key, key, HS_KEY_BYTES);
	s->epoch = 1;
	s->key_since = now;
}

size_t seal_overhead(const struct seal *s)
{
	return sizeof(struct seal_hdr) + (s->keyed && s->encrypt ? SEAL_TAG_BYTES : 0);
}

/* The key of epoch+1, from the key of epoch: one way, so a key taken
 * from memory later does not open what was sealed before it. */
static void next_key(const struct seal *s, uint8_t out[HS_KEY_BYTES])
{
	crypto_kdf_derive_from_key(out, HS_KEY_BYTES, (uint64_t)s->epoch + 1, SEAL_KDF_CTX, s->key);
}

static void step_key(struct seal *s, const uint8_t next[HS_KEY_BYTES], int64_t now)
{
	memcpy(s->key, next, HS_KEY_BYTES);
	s->epoch++;
	s->counter = 0;
	s->key_since = now;
}

static void nonce_of(uint64_t counter, uint8_t nonce[SEAL_NONCE_BYTES])
{
	memset(nonce, 0, SEAL_NONCE_BYTES);
	/* Little-endian on the wire: the host is (wire.h asserts it). */
	memcpy(nonce, &counter, sizeof(counter));
}

static bool key_worn(const struct seal *s, int64_t now)
{
	/* UINT64_MAX is the nonce never used: the key goes before it. */
	if (s->counter >= s->rekey_records || s->counter == UINT64_MAX)
		return true;
	if (s->rekey_ns <= 0)
		return true;
	/* In unsigned arithmetic: clocks far apart must not overflow. */
	return now >= s->key_since &&
	       (uint64_t)now - (uint64_t)s->key_since >= (uint64_t)s->rekey_ns;
}

size_t seal_record(struct seal *s, uint8_t *out, const uint8_t *plain, size_t n, int64_t now)
{
	assert(n <= WIRE_FRAME_MAX + sizeof(struct wire_hdr));
	if (s->keyed && key_worn(s, now)) {
		/* 2^32 epochs: nothing left to step to. Never in practice. */
		if (s->epoch == UINT32_MAX)
			return 0;
		uint8_t next[HS_KEY_BYTES];
		next_key(s, next);
		step_key(s, next, now);
		sodium_memzero(next, sizeof(next));
	}
	bool aead = s->keyed && s->encrypt;
	struct seal_hdr h = {
		.len = (uint32_t)(n + (aead ? SEAL_TAG_BYTES : 0)),
		.epoch = s->keyed ? s->epoch : 0,
	};
	memcpy(out, &h, sizeof(h));
	uint8_t *body = out + sizeof(h);
	if (!aead) {
		memmove(body, plain, n);
	} else {
		uint8_t nonce[SEAL_NONCE_BYTES];
		nonce_of(s->counter, nonce);
		/* Cannot fail: seal_key chose AES only where it runs, and n
		 * is far below either AEAD's message limit. */
		if (s->aes)
			crypto_aead_aes256gcm_encrypt(body, NULL, plain, n, out, sizeof(h), NULL,
						      nonce, s->key);
		else
			crypto_aead_chacha20poly1305_ietf_encrypt(body, NULL, plain, n, out,
								  sizeof(h), NULL, nonce, s->key);
	}
	if (s->keyed)
		s->counter++;
	return sizeof(h) + h.len;
}

int seal_check_hdr(const struct seal *s, const struct seal_hdr *h, size_t *body)
{
	if (h->len > SEAL_RECORD_MAX - sizeof(*h))
		return -EMSGSIZE;
	if (!s->keyed) {
		if (h->epoch != 0)
			return -EBADMSG;
	} else {
		/* A plaintext record after the handshake would be a downgrade;
		 * a skipped epoch cannot be followed (the keys are a chain). */
		bool next = s->epoch != UINT32_MAX && h->epoch == s->epoch + 1;
		if (h->epoch == 0 || (h->epoch != s->epoch && !next))
			return -EBADMSG;
		if (s->encrypt && h->len < SEAL_TAG_BYTES)
			return -EBADMSG;
	}
	*body = h->len;
	return 0;
}

int seal_open(struct seal *s, const struct seal_hdr *h, uint8_t *body, size_t body_len,
	      uint8_t **plain, size_t *n)
{
	size_t want;
	int err = seal_check_hdr(s, h, &want);
	if (err)
		return err;
	if (body_len != want)
		return -EBADMSG;
	if (!s->keyed) {
		*plain = body;
		*n = body_len;
		return 0;
	}
	/* The step is tried on a copy and kept only when the record opens:
	 * a forged header cannot move this side off the sender's chain. */
	bool step = h->epoch != s->epoch;
	uint8_t next[HS_KEY_BYTES];
	const uint8_t *key = s->key;
	uint64_t counter = s->counter;
	if (step) {
		next_key(s, next);
		key = next;
		counter = 0;
	} else if (counter == UINT64_MAX) {
		return -EBADMSG; /* the sender steps before this; it did not */
	}
	size_t len = body_len;
	if (s->encrypt) {
		uint8_t nonce[SEAL_NONCE_BYTES];
		nonce_of(counter, nonce);
		unsigned long long mlen = 0;
		/* In place (m == c): libsodium allows it for both. */
		int rc = s->aes ? crypto_aead_aes256gcm_decrypt(body, &mlen, NULL, body, body_len,
								(const uint8_t *)h, sizeof(*h),
								nonce, key)
				: crypto_aead_chacha20poly1305_ietf_decrypt(
					  body, &mlen, NULL, body, body_len, (const uint8_t *)h,
					  sizeof(*h), nonce, key);
		if (rc != 0) {
			sodium_memzero(next, sizeof(next));
			return -EBADMSG;
		}
		len = (size_t)mlen;
	}
	if (step)
		step_key(s, next, s->key_since);
	sodium_memzero(next, sizeof(next));
	s->counter++;
	*plain = body;
	*n = len;
	return 0;
}

void seal_clear(struct seal *s)
{
	sodium_memzero(s, sizeof(*s));
}
