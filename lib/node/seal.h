/* SPDX-License-Identifier: MIT */
/*
 * The link's record layer: a batch of frames is sealed into one record,
 * so one AEAD operation (and one syscall) covers many messages.
 *
 *   record = struct seal_hdr (cleartext, authenticated as associated data)
 *            + ciphertext of the frames + 16-byte tag
 *
 * AES-256-GCM when both CPUs have it, else ChaCha20-Poly1305 (IETF); the
 * nonce is a per-direction record counter, never reused: the key is
 * replaced (a one-way crypto_kdf step, the new key's epoch in the header)
 * after SEAL_REKEY_RECORDS records or SEAL_REKEY_NS, whichever comes first.
 * Unencrypted links (--no-encrypt, both sides) send the frames as they are,
 * with the same header and no tag. Before the handshake is done, records
 * are plaintext (they carry HELLO and PROOF only).
 */
#ifndef PG_NODE_SEAL_H
#define PG_NODE_SEAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handshake.h"

struct seal_hdr {
	uint32_t len;   /* bytes after this header: ciphertext and tag */
	uint32_t epoch; /* key epoch: 0 = plaintext handshake record, then 1, 2... */
};
static_assert(sizeof(struct seal_hdr) == 8, "seal_hdr is on the wire");

#define SEAL_TAG_BYTES 16u
/* Largest record: one largest frame, with its header and a tag. */
#define SEAL_RECORD_MAX (WIRE_FRAME_MAX + 64u)
#define SEAL_REKEY_RECORDS (1ull << 24)
#define SEAL_REKEY_NS (600ll * 1000000000ll)

struct seal {
	bool keyed;   /* false: plaintext records (the handshake) */
	bool encrypt; /* false: keyed but --no-encrypt */
	bool aes;
	uint8_t key[HS_KEY_BYTES];
	uint32_t epoch;    /* of key */
	uint64_t counter;  /* records under key: the next nonce */
	int64_t key_since; /* ns */
	uint64_t rekey_records; /* limits (tests lower them) */
	int64_t rekey_ns;
};

/* A plaintext sealer (handshake). */
void seal_init(struct seal *s);
/* Key one direction: `key` is hs_keys.tx for sending, .rx for receiving. */
void seal_key(struct seal *s, const uint8_t key[HS_KEY_BYTES], bool encrypt, bool aes,
	      int64_t now);
/* What seal_record adds to n plaintext bytes. */
size_t seal_overhead(const struct seal *s);
/*
 * Seal plain[0..n) into out (room for n + seal_overhead): the whole record's
 * length. May first step the key (rekey) and then says so in the header.
 * The caller guarantees n <= WIRE_FRAME_MAX + sizeof(struct wire_hdr)
 * (asserted). plain may be out + sizeof(struct seal_hdr) (sealed in
 * place); no other overlap. 0 when this direction has used up every epoch
 * (2^32 key steps; never in practice): close the link.
 */
size_t seal_record(struct seal *s, uint8_t *out, const uint8_t *plain, size_t n, int64_t now);
/*
 * Validate a received header: 0 and *body (bytes that follow it);
 * -EMSGSIZE when the record, header included, is over SEAL_RECORD_MAX;
 * -EBADMSG an epoch that is neither the current one nor the next (or not 0
 * before the handshake, or 0 after), or a body shorter than the tag.
 */
int seal_check_hdr(const struct seal *s, const struct seal_hdr *h, size_t *body);
/*
 * Open a record whose header passed seal_check_hdr, in place: 0 and the
 * plaintext (*plain, *n pointing into body); -EBADMSG when it does not
 * authenticate or body_len is not h->len (the link must close; body may
 * have been overwritten). Steps the key when the header says, and only
 * once the record has authenticated. Checks the header again itself.
 */
int seal_open(struct seal *s, const struct seal_hdr *h, uint8_t *body, size_t body_len,
	      uint8_t **plain, size_t *n);
void seal_clear(struct seal *s);

#endif /* PG_NODE_SEAL_H */
