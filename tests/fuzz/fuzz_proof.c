/* Batch proofs as a worker receives them: input[0] picks one of 13 fixed
 * commands (the value), the rest is its kdeploy-batch-proof header,
 * checked against the real signature of the batch of those 13. Besides
 * not crashing, a proof must verify only if it is that command's own
 * proof: anything else that verified would be a forgery, and aborts. */
#include "fuzz.h"
#include "sign_batch.h"

#define LEAVES 13

static char g_values[LEAVES][32];
static kd_batch_t *g_batch;
static kd_verifier_t *g_verifier;

static void setup(void)
{
    const void *ptrs[LEAVES];
    size_t lens[LEAVES];
    char priv[PATH_MAX + 16], pub[PATH_MAX + 16];
    kd_signer_t *s = NULL;

    snprintf(priv, sizeof priv, "%s/k.key", fuzz_dir());
    snprintf(pub, sizeof pub, "%s/k.pub", fuzz_dir());
    for (int i = 0; i < LEAVES; i++) {
        snprintf(g_values[i], sizeof g_values[i], "fuzz leaf %d", i);
        ptrs[i] = g_values[i];
        lens[i] = strlen(g_values[i]);
    }
    /* A fresh key each run: the seeds hold proofs, which do not depend on it. */
    if (kd_keygen(priv, pub, NULL, 0) != KD_OK || kd_signer_load(priv, &s, NULL, 0) != KD_OK ||
        kd_verifier_load(pub, &g_verifier, NULL, 0) != KD_OK ||
        kd_batch_sign(s, ptrs, lens, LEAVES, &g_batch, NULL, 0) != KD_OK)
        exit(1);
    kd_signer_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t own[KD_BATCH_PROOF_MAX];
    size_t pick, ownlen;
    char err[256];

    if (!g_batch)
        setup();
    if (size < 1)
        return 0;
    pick = data[0] % LEAVES;
    if (kd_batch_verify(g_verifier, g_values[pick], strlen(g_values[pick]),
                        kd_batch_signature(g_batch), KD_SIGNATURE_LEN, data + 1, size - 1, err,
                        sizeof err) != KD_OK)
        return 0;
    ownlen = kd_batch_proof(g_batch, pick, own);
    if (size - 1 != ownlen || memcmp(data + 1, own, ownlen) != 0) {
        fprintf(stderr, "a proof not the command's own verified\n");
        abort();
    }
    return 0;
}
