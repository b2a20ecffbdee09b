/* Ed25519 signatures of step and traffic events. The planner signs the
 * value bytes of every command it sends; workers and lbctl, once given the
 * public key, refuse commands that are unsigned or whose signature fails. */
#ifndef KD_SIGN_H
#define KD_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define KD_SIGNATURE_LEN 64

typedef struct kd_signer kd_signer_t;
typedef struct kd_verifier kd_verifier_t;

/* Loads an Ed25519 private key (PEM, PKCS#8) for signing. */
kd_status_t kd_signer_load(const char *path, kd_signer_t **out, char *err, size_t errsz);
/* Loads an Ed25519 public key (PEM, SubjectPublicKeyInfo) for verifying. */
kd_status_t kd_verifier_load(const char *path, kd_verifier_t **out, char *err, size_t errsz);
/* Adds another public key to v (key rotation): a signature by any of v's
 * keys verifies. At most 8 keys. */
kd_status_t kd_verifier_add(kd_verifier_t *v, const char *path, char *err, size_t errsz);
/* How many keys v holds (0 for NULL). */
size_t kd_verifier_count(const kd_verifier_t *v);
void kd_signer_free(kd_signer_t *s);
void kd_verifier_free(kd_verifier_t *v);

/* Signs data; writes KD_SIGNATURE_LEN bytes into sig. */
kd_status_t kd_sign(const kd_signer_t *s, const void *data, size_t len,
                    uint8_t sig[KD_SIGNATURE_LEN], char *err, size_t errsz);
/* KD_OK if sig is a valid signature of data by one of v's keys, else
 * KD_ESIGNATURE. */
kd_status_t kd_verify(const kd_verifier_t *v, const void *data, size_t len, const void *sig,
                      size_t siglen, char *err, size_t errsz);

/* Creates a new key pair: the private key at private_path (mode 0600) and
 * the public key at public_path. Refuses to overwrite existing files. */
kd_status_t kd_keygen(const char *private_path, const char *public_path, char *err, size_t errsz);

#endif
