/* SPDX-License-Identifier: MIT */
/*
 * Who may link to this node: proof of the shared cookie, and the keys of
 * the link (libsodium; no cryptography by hand). Pure functions on bytes:
 * the link (link.c) carries the frames, the mesh (mesh.c) drives the steps.
 *
 *   1. Each side sends WIRE_HELLO: a fresh random nonce, an ephemeral
 *      crypto_kx public key, its node name and flags.
 *   2. On the other's hello, each side sends WIRE_PROOF: crypto_auth, under
 *      a key derived (crypto_kdf) from the cookie, of its role and the
 *      transcript (both hellos, the initiator's first). Both nonces are in
 *      it, so a recorded proof is worthless later (replay), and the roles
 *      differ, so a proof sent back to its maker is refused (reflection).
 *   3. On the other's proof (crypto_auth_verify), the link is
 *      authenticated. Its keys are the crypto_kx session keys, each hashed
 *      (keyed crypto_generichash) with a second cookie-derived key and the
 *      transcript: a man in the middle without the cookie learns nothing
 *      it could use, even with its own kx keys.
 *
 * The cookie itself never crosses the wire.
 */
#ifndef PG_NODE_HANDSHAKE_H
#define PG_NODE_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

#define HS_KEY_BYTES 32u

/* The per-user default cookie file: $XDG_CONFIG_HOME/pgroup/cookie, else
 * ~/.config/pgroup/cookie; for root /var/lib/pgroup/cookie. */
int hs_cookie_default_path(char *out, size_t cap);
/*
 * Read the cookie at path into a master key (a hash of the file's
 * contents, 16..4096 bytes, trailing newline ignored), creating the file
 * (mode 0600, 32 random bytes in hex, parent directories 0700) when it does
 * not exist. -EPERM when group or others may read or write it, or it is not
 * the caller's; -EINVAL when it is too short or too long, or not a regular
 * file; -ELOOP when it is a symbolic link (never followed); else -errno.
 * A new cookie appears whole (written aside, then linked to its name).
 */
int hs_cookie_load(const char *path, uint8_t master[HS_KEY_BYTES]);

enum hs_state {
	HS_SENT_HELLO = 1, /* waiting for the other's hello */
	HS_SENT_PROOF,     /* waiting for the other's proof */
	HS_DONE,
	HS_FAILED,
};

/* The keys of an authenticated link, one per direction. */
struct hs_keys {
	uint8_t tx[HS_KEY_BYTES];
	uint8_t rx[HS_KEY_BYTES];
	bool encrypt; /* both sides asked for it */
	bool aes;     /* both CPUs have AES-256-GCM: use it, else ChaCha20-Poly1305 */
};

struct hs {
	enum hs_state state;
	bool initiator; /* the side that connected */
	uint8_t auth_key[HS_KEY_BYTES];
	uint8_t bind_key[HS_KEY_BYTES];
	uint8_t kx_pk[32], kx_sk[32];
	struct wire_hello mine, theirs;
	uint8_t transcript[32]; /* hash of both hellos, initiator's first */
};

/* Begin: fill h and the hello to send. `encrypt` false is --no-encrypt.
 * 0; -EINVAL when node breaks the contract's name rules (ctl_check_node);
 * -EIO when libsodium could not start. */
int hs_start(struct hs *h, const uint8_t master[HS_KEY_BYTES], bool initiator,
	     const char *node, bool encrypt, struct wire_hello *hello_out);
/*
 * The other's hello (already checked by wire_hello_parse): 0 and the proof
 * to send; -EPROTO when it came out of turn or carries our own nonce or
 * kx key (a reflection); -EPROTONOSUPPORT for another WIRE_VERSION;
 * -EPERM when one side encrypts and the other does not (never downgraded).
 */
int hs_on_hello(struct hs *h, const struct wire_hello *theirs, struct wire_proof *proof_out);
/* The other's proof: 0 and the link's keys; -EACCES when it does not
 * verify (another cookie, a replay, a hello changed in transit); -EPROTO
 * out of turn, or when the other's kx key is not one. After an error
 * the handshake is HS_FAILED and nothing the other sent may be used; after
 * success the secrets it no longer needs are already wiped. */
int hs_on_proof(struct hs *h, const struct wire_proof *proof, struct hs_keys *keys_out);
/* Wipe the secrets (sodium_memzero). */
void hs_clear(struct hs *h);

#endif /* PG_NODE_HANDSHAKE_H */
