/* Hash trees and batch signatures: every leaf of every tree shape proves
 * its way to the signed root, and any changed byte of a value, a proof or
 * a signature is refused. */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "merkle.h"
#include "sign_batch.h"
#include "testutil.h"

#define H KD_MERKLE_HASH_LEN
#define MAX_VALUES 1024

static char dir[PATH_MAX];
static kd_signer_t *signer;
static kd_verifier_t *verifier;

/* ---- RFC 6962's definitions, written out recursively as the RFC does ---- */

static void sha(const void *a, size_t alen, const void *b, size_t blen, uint8_t prefix,
                uint8_t out[H])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, &prefix, 1);
    EVP_DigestUpdate(ctx, a, alen);
    EVP_DigestUpdate(ctx, b, blen);
    EVP_DigestFinal_ex(ctx, out, NULL);
    EVP_MD_CTX_free(ctx);
}

static size_t split(size_t n) /* the largest power of two below n */
{
    size_t k = 1;

    while (k * 2 < n)
        k *= 2;
    return k;
}

/* MTH(D[lo:lo+n]) */
static void ref_mth(char (*vals)[40], size_t lo, size_t n, uint8_t out[H])
{
    uint8_t l[H], r[H];
    size_t k;

    if (n == 1) {
        sha(vals[lo], strlen(vals[lo]), "", 0, 0x00, out);
        return;
    }
    k = split(n);
    ref_mth(vals, lo, k, l);
    ref_mth(vals, lo + k, n - k, r);
    sha(l, H, r, H, 0x01, out);
}

/* PATH(m, D[lo:lo+n]), appended at path[*len]. */
static void ref_path(char (*vals)[40], size_t m, size_t lo, size_t n, uint8_t (*path)[H],
                     size_t *len)
{
    size_t k;

    if (n == 1)
        return;
    k = split(n);
    if (m < k) {
        ref_path(vals, m, lo, k, path, len);
        ref_mth(vals, lo + k, n - k, path[(*len)++]);
    } else {
        ref_path(vals, m - k, lo + k, n - k, path, len);
        ref_mth(vals, lo, k, path[(*len)++]);
    }
}

/* ---- fixtures ---- */

static char values[MAX_VALUES][40];
static const void *ptrs[MAX_VALUES];
static size_t lens[MAX_VALUES];

static void fill(const char *tag)
{
    for (size_t i = 0; i < MAX_VALUES; i++) {
        snprintf(values[i], sizeof values[i], "%s step P%06zu Install", tag, i);
        ptrs[i] = values[i];
        lens[i] = strlen(values[i]);
    }
}

static bool batch_ok(const kd_batch_t *b, const void *value, size_t len, const uint8_t *proof,
                     size_t prooflen)
{
    char err[256];

    return kd_batch_verify(verifier, value, len, kd_batch_signature(b), KD_SIGNATURE_LEN, proof,
                           prooflen, err, sizeof err) == KD_OK;
}

/* ---- tests ---- */

static void test_trees_match_rfc6962(void)
{
    fill("rfc");
    for (size_t n = 1; n <= 70; n++) {
        kd_merkle_t *t = NULL;
        char err[256];
        uint8_t want[H];

        CHECK_MSG(kd_merkle_build(ptrs, lens, n, &t, err, sizeof err) == KD_OK, "%s", err);
        if (!t)
            continue;
        ref_mth(values, 0, n, want);
        CHECK_MSG(memcmp(kd_merkle_root(t), want, H) == 0, "root of %zu leaves", n);
        for (size_t i = 0; i < n; i++) {
            uint8_t path[KD_MERKLE_MAX_PATH][H], rpath[KD_MERKLE_MAX_PATH][H];
            size_t len = kd_merkle_path(t, i, path), rlen = 0;

            ref_path(values, i, 0, n, rpath, &rlen);
            CHECK_MSG(len == rlen && memcmp(path, rpath, len * H) == 0, "path %zu of %zu", i, n);
        }
        kd_merkle_free(t);
    }
}

/* Every leaf of trees of 1..70 and 1,024 leaves comes back to the root;
 * a path one hash short or long, or the wrong index, does not. */
static void test_every_leaf_proves(void)
{
    static const size_t sizes_extra[] = {1024};

    fill("leaf");
    for (size_t s = 1; s <= 71; s++) {
        size_t n = s <= 70 ? s : sizes_extra[0];
        kd_merkle_t *t = NULL;
        char err[256];
        int bad = 0;

        if (kd_merkle_build(ptrs, lens, n, &t, err, sizeof err) != KD_OK) {
            CHECK_MSG(0, "%s", err);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            uint8_t path[KD_MERKLE_MAX_PATH + 1][H], root[H];
            size_t len = kd_merkle_path(t, i, path);

            if (kd_merkle_root_from_path(values[i], lens[i], i, n, path[0], len, root, err,
                                         sizeof err) != KD_OK ||
                memcmp(root, kd_merkle_root(t), H) != 0)
                bad++;
            if (len > 0 && kd_merkle_root_from_path(values[i], lens[i], i, n, path[0], len - 1,
                                                    root, err, sizeof err) == KD_OK)
                bad++;
            memset(path[len], 0, H);
            if (kd_merkle_root_from_path(values[i], lens[i], i, n, path[0], len + 1, root, err,
                                         sizeof err) == KD_OK)
                bad++;
            if (n > 1 && kd_merkle_root_from_path(values[i], lens[i], (i + 1) % n, n, path[0],
                                                  len, root, err, sizeof err) == KD_OK &&
                memcmp(root, kd_merkle_root(t), H) == 0)
                bad++;
        }
        CHECK_MSG(bad == 0, "%d bad proofs in a tree of %zu", bad, n);
        kd_merkle_free(t);
    }
}

static void test_batch_verifies(void)
{
    static const size_t sizes[] = {1, 2, 3, 13, 64, 1024};

    fill("batch");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        kd_batch_t *b = NULL;
        char err[256];
        int bad = 0;

        CHECK_MSG(kd_batch_sign(signer, ptrs, lens, sizes[s], &b, err, sizeof err) == KD_OK,
                  "%s", err);
        for (size_t i = 0; b && i < sizes[s]; i++) {
            uint8_t proof[KD_BATCH_PROOF_MAX];
            size_t len = kd_batch_proof(b, i, proof);

            bad += !batch_ok(b, values[i], lens[i], proof, len);
        }
        CHECK_MSG(bad == 0, "%d of %zu commands refused", bad, sizes[s]);
        kd_batch_free(b);
    }
}

/* One bit changed anywhere (value, index, count, path, signature): refused. */
static void test_any_changed_byte_fails(void)
{
    enum { N = 13 };
    kd_batch_t *b = NULL;
    char err[256];

    fill("flip");
    if (kd_batch_sign(signer, ptrs, lens, N, &b, err, sizeof err) != KD_OK) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    for (size_t i = 0; i < N; i++) {
        uint8_t proof[KD_BATCH_PROOF_MAX], sig[KD_SIGNATURE_LEN];
        char value[40];
        size_t len = kd_batch_proof(b, i, proof);
        int passed = 0;

        memcpy(value, values[i], lens[i]);
        memcpy(sig, kd_batch_signature(b), sizeof sig);
        for (size_t j = 0; j < lens[i]; j++) {
            value[j] ^= 0x01;
            passed += batch_ok(b, value, lens[i], proof, len);
            value[j] ^= 0x01;
        }
        for (size_t j = 0; j < len; j++) {
            proof[j] ^= 0x01;
            passed += batch_ok(b, value, lens[i], proof, len);
            proof[j] ^= 0x01;
        }
        for (size_t j = 0; j < sizeof sig; j++) {
            sig[j] ^= 0x01;
            passed += kd_batch_verify(verifier, value, lens[i], sig, sizeof sig, proof, len, err,
                                      sizeof err) == KD_OK;
            sig[j] ^= 0x01;
        }
        CHECK_MSG(passed == 0, "leaf %zu: %d changed bytes passed", i, passed);
        CHECK(batch_ok(b, value, lens[i], proof, len)); /* all restored */
    }
    kd_batch_free(b);
}

/* A proof from another batch of the same shape fits neither signature. */
static void test_path_from_another_tree_fails(void)
{
    kd_batch_t *a = NULL, *other = NULL;
    char err[256];
    static char avals[8][40];

    fill("a");
    memcpy(avals, values, sizeof avals);
    CHECK(kd_batch_sign(signer, ptrs, lens, 8, &a, err, sizeof err) == KD_OK);
    fill("b");
    CHECK(kd_batch_sign(signer, ptrs, lens, 8, &other, err, sizeof err) == KD_OK);
    for (size_t i = 0; a && other && i < 8; i++) {
        uint8_t proof[KD_BATCH_PROOF_MAX];
        size_t len = kd_batch_proof(other, i, proof);

        CHECK(!batch_ok(a, avals[i], strlen(avals[i]), proof, len));
        CHECK(!batch_ok(other, avals[i], strlen(avals[i]), proof, len));
        CHECK(batch_ok(other, values[i], lens[i], proof, len));
    }
    kd_batch_free(a);
    kd_batch_free(other);
}

/* Malformed proofs are clear refusals. */
static void test_malformed_proofs_refused(void)
{
    kd_batch_t *b = NULL;
    uint8_t proof[KD_BATCH_PROOF_MAX + 64], copy[sizeof proof];
    const uint8_t *sig;
    char err[256];
    size_t len;

    fill("bad");
    if (kd_batch_sign(signer, ptrs, lens, 5, &b, err, sizeof err) != KD_OK) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    sig = kd_batch_signature(b);
    len = kd_batch_proof(b, 4, proof); /* leaf 4 of 5: one hash */
    CHECK(len == 8 + H);
    memset(proof + len, 0xab, sizeof proof - len);
#define REFUSED(p, l, s, sl, what)                                                          \
    do {                                                                                    \
        err[0] = 0;                                                                         \
        CHECK(kd_batch_verify(verifier, values[4], lens[4], s, sl, p, l, err, sizeof err) == \
              KD_ESIGNATURE);                                                               \
        CHECK_CONTAINS(err, what);                                                          \
    } while (0)
    REFUSED(NULL, 0, sig, KD_SIGNATURE_LEN, "malformed");
    REFUSED(proof, 7, sig, KD_SIGNATURE_LEN, "malformed");
    REFUSED(proof, len + 1, sig, KD_SIGNATURE_LEN, "malformed");
    REFUSED(proof, KD_BATCH_PROOF_MAX + H, sig, KD_SIGNATURE_LEN, "malformed");
    REFUSED(proof, len + H, sig, KD_SIGNATURE_LEN, "too long");
    REFUSED(proof, 8, sig, KD_SIGNATURE_LEN, "too short");
    REFUSED(proof, len, sig, KD_SIGNATURE_LEN - 1, "signature");
    REFUSED(proof, len, NULL, 0, "signature");
    memcpy(copy, proof, sizeof copy);
    copy[7] = 4; /* count 4: leaf 4 is out of it */
    REFUSED(copy, len, sig, KD_SIGNATURE_LEN, "leaf 4 of a tree of 4");
    memcpy(copy, proof, sizeof copy);
    memset(copy + 4, 0, 4); /* count 0 */
    REFUSED(copy, len, sig, KD_SIGNATURE_LEN, "tree of 0");
    memset(copy + 4, 0xff, 4); /* count 2^32 - 1 */
    REFUSED(copy, len, sig, KD_SIGNATURE_LEN, "leaves");
    CHECK(batch_ok(b, values[4], lens[4], proof, len));
#undef REFUSED
    kd_batch_free(b);
}

/* A single signature and a batch signature never stand in for each other;
 * what a batch signs can never decode as a command. */
static void test_single_and_batch_apart(void)
{
    uint8_t sig[KD_SIGNATURE_LEN], proof[KD_BATCH_PROOF_MAX];
    kd_batch_t *b = NULL;
    kd_envelope_t *env = NULL;
    char err[256];
    size_t len;

    fill("apart");
    CHECK(kd_sign(signer, values[0], lens[0], sig, err, sizeof err) == KD_OK);
    CHECK(kd_verify(verifier, values[0], lens[0], sig, sizeof sig, err, sizeof err) == KD_OK);
    CHECK(kd_batch_sign(signer, ptrs, lens, 1, &b, err, sizeof err) == KD_OK);
    if (!b)
        return;
    len = kd_batch_proof(b, 0, proof);
    CHECK(len == 8); /* a tree of one: no path */
    CHECK(batch_ok(b, values[0], lens[0], proof, len));
    CHECK(kd_batch_verify(verifier, values[0], lens[0], sig, sizeof sig, proof, len, err,
                          sizeof err) == KD_ESIGNATURE);
    CHECK(kd_verify(verifier, values[0], lens[0], kd_batch_signature(b), KD_SIGNATURE_LEN, err,
                    sizeof err) == KD_ESIGNATURE);
    {
        /* The batch context's first byte: field number 0 is no protobuf. */
        static const uint8_t signed_start[] = {0x00, 'k', 'd', 'e', 'p', 'l', 'o', 'y'};

        CHECK(kd_envelope_decode(signed_start, sizeof signed_start, &env, err, sizeof err) !=
              KD_OK);
        kd_envelope_free(env);
    }
    kd_batch_free(b);
}

int main(void)
{
    char priv[PATH_MAX], pub[PATH_MAX], err[512];

    if (tu_scratch(dir, "merkle") != 0) {
        perror("mkdtemp");
        return 1;
    }
    tu_pathf(priv, "%s/k.key", dir);
    tu_pathf(pub, "%s/k.pub", dir);
    if (kd_keygen(priv, pub, err, sizeof err) != KD_OK ||
        kd_signer_load(priv, &signer, err, sizeof err) != KD_OK ||
        kd_verifier_load(pub, &verifier, err, sizeof err) != KD_OK) {
        fprintf(stderr, "keys: %s\n", err);
        return 1;
    }
    RUN(test_trees_match_rfc6962);
    RUN(test_every_leaf_proves);
    RUN(test_batch_verifies);
    RUN(test_any_changed_byte_fails);
    RUN(test_path_from_another_tree_fails);
    RUN(test_malformed_proofs_refused);
    RUN(test_single_and_batch_apart);
    kd_signer_free(signer);
    kd_verifier_free(verifier);
    unlink(priv);
    unlink(pub);
    rmdir(dir);
    return check_summary();
}
