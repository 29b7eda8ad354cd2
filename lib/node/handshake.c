// SPDX-License-Identifier: MIT
/*
 * The handshake of handshake.h: hellos, proofs of the cookie, the link's
 * keys. Every primitive is libsodium's; this file only decides what is
 * hashed, keyed and compared.
 */
#include "handshake.h"

#include "proto/ctl.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

/* crypto_kdf context (exactly crypto_kdf_CONTEXTBYTES characters) and the
 * ids of the two keys taken from the master: distinct, so the key that
 * proves the cookie is never the one that binds the session keys. */
#define HS_KDF_CTX "pgroupnd"
#define HS_SUBKEY_AUTH 1u
#define HS_SUBKEY_BIND 2u
static_assert(sizeof(HS_KDF_CTX) - 1 == crypto_kdf_CONTEXTBYTES, "crypto_kdf context size");

/* The transcript hash is ours alone: no other protocol hashing the same
 * bytes gets the same value. */
#define HS_TRANSCRIPT_DOMAIN "pgroup handshake v1"

/* What each side's proof starts with: a proof made as one role never
 * verifies as the other (a proof reflected to its maker). */
#define HS_ROLE_INITIATOR 'I'
#define HS_ROLE_RESPONDER 'R'

static_assert(HS_KEY_BYTES == crypto_kdf_KEYBYTES, "master key feeds crypto_kdf");
static_assert(HS_KEY_BYTES == crypto_auth_KEYBYTES, "auth_key is a crypto_auth key");
static_assert(sizeof(((struct wire_proof *)0)->mac) == crypto_auth_BYTES, "proof is a crypto_auth tag");
static_assert(sizeof(((struct wire_hello *)0)->kx_pk) == crypto_kx_PUBLICKEYBYTES, "kx public key");
static_assert(sizeof(((struct hs *)0)->kx_sk) == crypto_kx_SECRETKEYBYTES, "kx secret key");
static_assert(HS_KEY_BYTES == crypto_kx_SESSIONKEYBYTES, "session keys");
static_assert(sizeof(((struct hs *)0)->transcript) >= crypto_generichash_BYTES_MIN &&
		      sizeof(((struct hs *)0)->transcript) <= crypto_generichash_BYTES_MAX,
	      "transcript is a generichash");

/* The secrets go as soon as they are not needed: after the proofs (the
 * kx secret key especially, so a later theft cannot recover this link's
 * keys) or on failure. */
static void wipe_secrets(struct hs *h)
{
	sodium_memzero(h->auth_key, sizeof(h->auth_key));
	sodium_memzero(h->bind_key, sizeof(h->bind_key));
	sodium_memzero(h->kx_sk, sizeof(h->kx_sk));
}

static int fail(struct hs *h, int err)
{
	wipe_secrets(h);
	h->state = HS_FAILED;
	return err;
}

int hs_start(struct hs *h, const uint8_t master[HS_KEY_BYTES], bool initiator,
	     const char *node, bool encrypt, struct wire_hello *hello_out)
{
	memset(h, 0, sizeof(*h));
	h->state = HS_FAILED;
	memset(hello_out, 0, sizeof(*hello_out));
	/* Idempotent and thread-safe; it also probes the CPU for AES-GCM. */
	if (sodium_init() < 0)
		return -EIO;
	size_t len = node ? strnlen(node, WIRE_NODE_MAX) : 0;
	if (ctl_check_node(node, len))
		return -EINVAL;

	h->initiator = initiator;
	crypto_kdf_derive_from_key(h->auth_key, sizeof(h->auth_key), HS_SUBKEY_AUTH, HS_KDF_CTX,
				   master);
	crypto_kdf_derive_from_key(h->bind_key, sizeof(h->bind_key), HS_SUBKEY_BIND, HS_KDF_CTX,
				   master);
	if (crypto_kx_keypair(h->kx_pk, h->kx_sk) != 0)
		return fail(h, -EIO);

	struct wire_hello *m = &h->mine;
	m->magic = WIRE_MAGIC;
	m->version = WIRE_VERSION;
	m->flags = (uint16_t)((encrypt ? WIRE_HELLO_ENCRYPT : 0u) |
			      (crypto_aead_aes256gcm_is_available() ? WIRE_HELLO_AES : 0u));
	randombytes_buf(m->nonce, sizeof(m->nonce));
	memcpy(m->kx_pk, h->kx_pk, sizeof(m->kx_pk));
	memcpy(m->node, node, len); /* NUL-padded: h was zeroed */
	*hello_out = *m;
	h->state = HS_SENT_HELLO;
	return 0;
}

/* Hash of both hellos as they are on the wire, the initiator's first: the
 * same 32 bytes on both sides exactly when each received what the other
 * sent. */
static void transcript(struct hs *h)
{
	const struct wire_hello *first = h->initiator ? &h->mine : &h->theirs;
	const struct wire_hello *second = h->initiator ? &h->theirs : &h->mine;
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof(h->transcript));
	crypto_generichash_update(&st, (const uint8_t *)HS_TRANSCRIPT_DOMAIN,
				  strlen(HS_TRANSCRIPT_DOMAIN));
	crypto_generichash_update(&st, (const uint8_t *)first, sizeof(*first));
	crypto_generichash_update(&st, (const uint8_t *)second, sizeof(*second));
	crypto_generichash_final(&st, h->transcript, sizeof(h->transcript));
}

/* What a proof authenticates: the prover's role, then the transcript. */
static void proof_input(const struct hs *h, bool initiator_role,
			uint8_t msg[1 + sizeof(h->transcript)])
{
	msg[0] = initiator_role ? HS_ROLE_INITIATOR : HS_ROLE_RESPONDER;
	memcpy(msg + 1, h->transcript, sizeof(h->transcript));
}

int hs_on_hello(struct hs *h, const struct wire_hello *theirs, struct wire_proof *proof_out)
{
	memset(proof_out, 0, sizeof(*proof_out));
	if (h->state != HS_SENT_HELLO)
		return fail(h, -EPROTO);
	if (theirs->version != WIRE_VERSION)
		return fail(h, -EPROTONOSUPPORT);
	/* Our own hello come back: whoever sent it wants our proof of a
	 * transcript it did not take part in. */
	if (sodium_memcmp(theirs->nonce, h->mine.nonce, sizeof(theirs->nonce)) == 0 ||
	    sodium_memcmp(theirs->kx_pk, h->mine.kx_pk, sizeof(theirs->kx_pk)) == 0)
		return fail(h, -EPROTO);
	/* Never downgraded: a side that asked for encryption gets it or no
	 * link. (A flag changed in transit changes the transcript as well.) */
	if ((theirs->flags ^ h->mine.flags) & WIRE_HELLO_ENCRYPT)
		return fail(h, -EPERM);

	h->theirs = *theirs;
	transcript(h);
	uint8_t msg[1 + sizeof(h->transcript)];
	proof_input(h, h->initiator, msg);
	crypto_auth(proof_out->mac, msg, sizeof(msg), h->auth_key);
	h->state = HS_SENT_PROOF;
	return 0;
}

/* A kx session key made specific to this link and this cookie: hashed
 * under the bind key with the transcript. */
static void bind_key(const struct hs *h, const uint8_t session[HS_KEY_BYTES],
		     uint8_t out[HS_KEY_BYTES])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, h->bind_key, sizeof(h->bind_key), HS_KEY_BYTES);
	crypto_generichash_update(&st, session, HS_KEY_BYTES);
	crypto_generichash_update(&st, h->transcript, sizeof(h->transcript));
	crypto_generichash_final(&st, out, HS_KEY_BYTES);
	sodium_memzero(&st, sizeof(st));
}

int hs_on_proof(struct hs *h, const struct wire_proof *proof, struct hs_keys *keys_out)
{
	memset(keys_out, 0, sizeof(*keys_out));
	if (h->state != HS_SENT_PROOF)
		return fail(h, -EPROTO);
	uint8_t msg[1 + sizeof(h->transcript)];
	proof_input(h, !h->initiator, msg);
	if (crypto_auth_verify(proof->mac, msg, sizeof(msg), h->auth_key) != 0)
		return fail(h, -EACCES);

	/* The initiator is kx's client: its tx is the responder's rx. */
	uint8_t rx[HS_KEY_BYTES], tx[HS_KEY_BYTES];
	int rc = h->initiator ? crypto_kx_client_session_keys(rx, tx, h->kx_pk, h->kx_sk,
							       h->theirs.kx_pk)
			      : crypto_kx_server_session_keys(rx, tx, h->kx_pk, h->kx_sk,
							       h->theirs.kx_pk);
	if (rc != 0) {
		/* A public key of low order: only a peer holding the cookie
		 * could have sent it (the proof verified), yet it is no key. */
		sodium_memzero(rx, sizeof(rx));
		sodium_memzero(tx, sizeof(tx));
		return fail(h, -EPROTO);
	}
	bind_key(h, tx, keys_out->tx);
	bind_key(h, rx, keys_out->rx);
	sodium_memzero(rx, sizeof(rx));
	sodium_memzero(tx, sizeof(tx));
	/* The encryption flags are equal (hs_on_hello refused otherwise). */
	keys_out->encrypt = h->mine.flags & WIRE_HELLO_ENCRYPT;
	keys_out->aes = (h->mine.flags & h->theirs.flags & WIRE_HELLO_AES) != 0;
	wipe_secrets(h);
	h->state = HS_DONE;
	return 0;
}

void hs_clear(struct hs *h)
{
	sodium_memzero(h, sizeof(*h));
	/* Zero is no state: make it one that refuses every later step. */
	h->state = HS_FAILED;
}
