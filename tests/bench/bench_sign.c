/* Signing commands one by one against in batches: Ed25519 signatures per
 * second, against commands per second signed as trees of 1,024 (hashing
 * every leaf and the tree, one signature per tree), and the verifier's
 * cost either way. Values are the size of a rolling step command as the
 * planner sends it (337 to 346 bytes).
 *
 * Run from a build:  build-rel/tests/bench_sign [value bytes] */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sign_batch.h"

#define TREE 1024
#define ROUNDS 8

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what, const char *err)
{
    fprintf(stderr, "bench_sign: %s: %s\n", what, err);
    return 1;
}

int main(int argc, char **argv)
{
    size_t vlen = argc > 1 ? strtoul(argv[1], NULL, 10) : 344;
    static uint8_t values[TREE][4096];
    static const void *ptrs[TREE];
    static size_t lens[TREE];
    char dir[] = "/tmp/bench_signXXXXXX", priv[PATH_MAX], pub[PATH_MAX], err[512];
    kd_signer_t *s = NULL;
    kd_verifier_t *v = NULL;
    static uint8_t sigs[TREE][KD_SIGNATURE_LEN];
    uint8_t proof[KD_BATCH_PROOF_MAX];
    double t0, single, batched, verify1, verifyb;
    size_t prooflen = 0;
    kd_batch_t *b = NULL;

    if (vlen == 0 || vlen > sizeof values[0])
        return die("value bytes", "1 to 4096");
    if (!mkdtemp(dir))
        return die("mkdtemp", dir);
    snprintf(priv, sizeof priv, "%s/k.key", dir);
    snprintf(pub, sizeof pub, "%s/k.pub", dir);
    if (kd_keygen(priv, pub, err, sizeof err) != KD_OK ||
        kd_signer_load(priv, &s, err, sizeof err) != KD_OK ||
        kd_verifier_load(pub, &v, err, sizeof err) != KD_OK)
        return die("keys", err);
    unlink(priv);
    unlink(pub);
    rmdir(dir);
    for (size_t i = 0; i < TREE; i++) {
        for (size_t j = 0; j < vlen; j++)
            values[i][j] = (uint8_t)(i * 31 + j);
        ptrs[i] = values[i];
        lens[i] = vlen;
    }

    t0 = now_s();
    for (size_t r = 0; r < ROUNDS; r++)
        for (size_t i = 0; i < TREE; i++)
            if (kd_sign(s, values[i], vlen, sigs[i], err, sizeof err) != KD_OK)
                return die("sign", err);
    single = ROUNDS * TREE / (now_s() - t0);

    t0 = now_s();
    for (size_t r = 0; r < ROUNDS; r++) {
        kd_batch_free(b);
        b = NULL;
        if (kd_batch_sign(s, ptrs, lens, TREE, &b, err, sizeof err) != KD_OK)
            return die("batch sign", err);
        for (size_t i = 0; i < TREE; i++) /* the proofs go in every header */
            prooflen = kd_batch_proof(b, i, proof);
    }
    batched = ROUNDS * TREE / (now_s() - t0);

    t0 = now_s();
    for (size_t i = 0; i < TREE; i++)
        if (kd_verify(v, values[i], vlen, sigs[i], KD_SIGNATURE_LEN, err, sizeof err) != KD_OK)
            return die("verify", err);
    verify1 = TREE / (now_s() - t0);

    t0 = now_s();
    for (size_t i = 0; i < TREE; i++) {
        prooflen = kd_batch_proof(b, i, proof);
        if (kd_batch_verify(v, values[i], vlen, kd_batch_signature(b), KD_SIGNATURE_LEN, proof,
                            prooflen, err, sizeof err) != KD_OK)
            return die("batch verify", err);
    }
    verifyb = TREE / (now_s() - t0);

    printf("values of %zu bytes, trees of %d\n", vlen, TREE);
    printf("  signing:   %9.0f commands/s one signature each, %9.0f commands/s in batches "
           "(%.0fx)\n", single, batched, batched / single);
    printf("  verifying: %9.0f commands/s one signature each, %9.0f commands/s with proofs\n",
           verify1, verifyb);
    printf("  headers:   %d bytes of signature, against %d of signature and %zu of proof\n",
           KD_SIGNATURE_LEN, KD_SIGNATURE_LEN, prooflen);
    kd_batch_free(b);
    kd_signer_free(s);
    kd_verifier_free(v);
    return 0;
}
