/* One Ed25519 signature for a batch of commands. The planner hashes each
 * command's encoded value as a leaf of a hash tree (merkle.h) and signs
 * one message binding the tree's root and its number of leaves; each
 * command then carries that signature and its proof: its leaf index, the
 * count and its audit path. A worker recomputes the root from the value
 * and the proof and verifies the signature over it, so a command verifies
 * on its own, whichever others of its batch the worker sees.
 *
 * The signed message is "\0kdeploy batch v1" || root || count (4 bytes,
 * big-endian). Its first byte, 0, can never begin an encoded envelope (a
 * protobuf field number is never 0), so a batch signature cannot pass for
 * a single command's signature, nor the other way round. */
#ifndef KD_SIGN_BATCH_H
#define KD_SIGN_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "merkle.h"
#include "sign.h"
#include "status.h"

/* A proof: leaf index and count (4 bytes each, big-endian), then the audit
 * path's hashes, leaf side first. */
#define KD_BATCH_PROOF_MAX (8 + KD_MERKLE_MAX_PATH * KD_MERKLE_HASH_LEN)

typedef struct kd_batch kd_batch_t;

/* Builds the tree of values[0..n) (lens[i] bytes each, 1 <= n <=
 * KD_MERKLE_MAX_LEAVES) and signs its root. */
kd_status_t kd_batch_sign(const kd_signer_t *s, const void *const *values, const size_t *lens,
                          size_t n, kd_batch_t **out, char *err, size_t errsz);
void kd_batch_free(kd_batch_t *b);
/* The batch's signature, KD_SIGNATURE_LEN bytes owned by b. */
const uint8_t *kd_batch_signature(const kd_batch_t *b);
/* Writes the proof of leaf index into proof; returns its length. */
size_t kd_batch_proof(const kd_batch_t *b, size_t index, uint8_t proof[KD_BATCH_PROOF_MAX]);

/* KD_OK when value, with its proof (proof_len bytes), belongs to a batch
 * whose signature sig one of v's keys made; else KD_ESIGNATURE, with what
 * was wrong (a malformed proof is refused before any hashing). */
kd_status_t kd_batch_verify(const kd_verifier_t *v, const void *value, size_t len,
                            const void *sig, size_t siglen, const void *proof, size_t proof_len,
                            char *err, size_t errsz);

#endif
