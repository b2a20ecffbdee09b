#include "sign_batch.h"

#include <stdlib.h>
#include <string.h>

/* The context's leading 0 byte is part of it (see sign_batch.h). */
static const char batch_context[] = "\0kdeploy batch v1";
#define CONTEXT_LEN (sizeof batch_context - 1)
#define SIGNED_LEN (CONTEXT_LEN + KD_MERKLE_HASH_LEN + 4)

struct kd_batch {
    kd_merkle_t *tree;
    uint8_t sig[KD_SIGNATURE_LEN];
};

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What is signed: context || root || count. */
static void signed_message(const uint8_t *root, uint32_t count, uint8_t msg[SIGNED_LEN])
{
    memcpy(msg, batch_context, CONTEXT_LEN);
    memcpy(msg + CONTEXT_LEN, root, KD_MERKLE_HASH_LEN);
    put_be32(msg + CONTEXT_LEN + KD_MERKLE_HASH_LEN, count);
}

kd_status_t kd_batch_sign(const kd_signer_t *s, const void *const *values, const size_t *lens,
                          size_t n, kd_batch_t **out, char *err, size_t errsz)
{
    kd_batch_t *b = calloc(1, sizeof *b);
    uint8_t msg[SIGNED_LEN];
    kd_status_t st;

    if (!b)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if ((st = kd_merkle_build(values, lens, n, &b->tree, err, errsz)) == KD_OK) {
        signed_message(kd_merkle_root(b->tree), (uint32_t)n, msg);
        st = kd_sign(s, msg, sizeof msg, b->sig, err, errsz);
    }
    if (st != KD_OK) {
        kd_batch_free(b);
        return st;
    }
    *out = b;
    return KD_OK;
}

void kd_batch_free(kd_batch_t *b)
{
    if (!b)
        return;
    kd_merkle_free(b->tree);
    free(b);
}

const uint8_t *kd_batch_signature(const kd_batch_t *b)
{
    return b->sig;
}

size_t kd_batch_proof(const kd_batch_t *b, size_t index, uint8_t proof[KD_BATCH_PROOF_MAX])
{
    size_t hashes = kd_merkle_path(b->tree, index, (uint8_t(*)[KD_MERKLE_HASH_LEN])(proof + 8));

    put_be32(proof, (uint32_t)index);
    put_be32(proof + 4, (uint32_t)kd_merkle_count(b->tree));
    return 8 + hashes * KD_MERKLE_HASH_LEN;
}

kd_status_t kd_batch_verify(const kd_verifier_t *v, const void *value, size_t len,
                            const void *sig, size_t siglen, const void *proof, size_t proof_len,
                            char *err, size_t errsz)
{
    uint8_t root[KD_MERKLE_HASH_LEN], msg[SIGNED_LEN];
    char why[256];
    uint32_t index, count;

    if (!proof || proof_len < 8 || proof_len > KD_BATCH_PROOF_MAX ||
        (proof_len - 8) % KD_MERKLE_HASH_LEN != 0)
        return kd_err(err, errsz, KD_ESIGNATURE, "batch proof malformed (%zu bytes)", proof_len);
    index = get_be32(proof);
    count = get_be32((const uint8_t *)proof + 4);
    if (kd_merkle_root_from_path(value, len, index, count, (const uint8_t *)proof + 8,
                                 (proof_len - 8) / KD_MERKLE_HASH_LEN, root, why,
                                 sizeof why) != KD_OK)
        return kd_err(err, errsz, KD_ESIGNATURE, "batch proof: %s", why);
    signed_message(root, count, msg);
    if (kd_verify(v, msg, sizeof msg, sig, siglen, why, sizeof why) != KD_OK)
        return kd_err(err, errsz, KD_ESIGNATURE, "batch %s", why);
    return KD_OK;
}
