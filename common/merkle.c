#include "merkle.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Every level of the tree, leaves first, in one array: a level of m nodes
 * is followed by one of (m + 1) / 2, up to the root. A level's last node
 * without a sibling moves up unchanged, which is RFC 6962's split at the
 * largest power of two. */
struct kd_merkle {
    size_t count;
    size_t levels;
    size_t start[KD_MERKLE_MAX_PATH + 1];  /* first node of each level */
    size_t size[KD_MERKLE_MAX_PATH + 1];   /* nodes in each level */
    uint8_t (*node)[KD_MERKLE_HASH_LEN];
};

/* A SHA-256 context reused for every hash of one build or check: fetching
 * the algorithm once, not per hash. */
typedef struct hasher {
    EVP_MD *md;
    EVP_MD_CTX *ctx;
} hasher_t;

static kd_status_t hasher_init(hasher_t *h, char *err, size_t errsz)
{
    h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    h->ctx = EVP_MD_CTX_new();
    if (!h->md || !h->ctx) {
        EVP_MD_CTX_free(h->ctx);
        EVP_MD_free(h->md);
        return kd_err(err, errsz, KD_EFAILED, "SHA-256 is not available");
    }
    return KD_OK;
}

static void hasher_done(hasher_t *h)
{
    EVP_MD_CTX_free(h->ctx);
    EVP_MD_free(h->md);
}

/* H(prefix || a || b): the prefix keeps a leaf from ever passing for an
 * inner node and the other way round. */
static kd_status_t hash3(hasher_t *h, uint8_t prefix, const void *a, size_t alen, const void *b,
                         size_t blen, uint8_t out[KD_MERKLE_HASH_LEN], char *err, size_t errsz)
{
    if (EVP_DigestInit_ex2(h->ctx, h->md, NULL) != 1 ||
        EVP_DigestUpdate(h->ctx, &prefix, 1) != 1 ||
        (alen && EVP_DigestUpdate(h->ctx, a, alen) != 1) ||
        (blen && EVP_DigestUpdate(h->ctx, b, blen) != 1) ||
        EVP_DigestFinal_ex(h->ctx, out, NULL) != 1)
        return kd_err(err, errsz, KD_EFAILED, "SHA-256 failed");
    return KD_OK;
}

static kd_status_t hash_leaf(hasher_t *h, const void *value, size_t len,
                             uint8_t out[KD_MERKLE_HASH_LEN], char *err, size_t errsz)
{
    return hash3(h, 0x00, value, len, NULL, 0, out, err, errsz);
}

static kd_status_t hash_node(hasher_t *h, const uint8_t *left, const uint8_t *right,
                             uint8_t out[KD_MERKLE_HASH_LEN], char *err, size_t errsz)
{
    return hash3(h, 0x01, left, KD_MERKLE_HASH_LEN, right, KD_MERKLE_HASH_LEN, out, err, errsz);
}

/* Lays out the levels of a tree of n leaves; returns the number of nodes. */
static size_t layout(kd_merkle_t *t, size_t n)
{
    size_t total = 0, m = n;

    t->count = n;
    t->levels = 0;
    for (;;) {
        t->start[t->levels] = total;
        t->size[t->levels] = m;
        t->levels++;
        total += m;
        if (m == 1)
            return total;
        m = (m + 1) / 2;
    }
}

static kd_status_t hash_levels(kd_merkle_t *t, hasher_t *h, const void *const *values,
                               const size_t *lens, char *err, size_t errsz)
{
    kd_status_t st = KD_OK;

    for (size_t i = 0; i < t->count && st == KD_OK; i++)
        st = hash_leaf(h, values[i], lens[i], t->node[i], err, errsz);
    for (size_t l = 1; l < t->levels && st == KD_OK; l++) {
        const uint8_t (*below)[KD_MERKLE_HASH_LEN] = t->node + t->start[l - 1];
        uint8_t (*here)[KD_MERKLE_HASH_LEN] = t->node + t->start[l];
        size_t m = t->size[l - 1];

        for (size_t j = 0; j < t->size[l] && st == KD_OK; j++) {
            if (2 * j + 1 < m)
                st = hash_node(h, below[2 * j], below[2 * j + 1], here[j], err, errsz);
            else
                memcpy(here[j], below[2 * j], KD_MERKLE_HASH_LEN);
        }
    }
    return st;
}

kd_status_t kd_merkle_build(const void *const *values, const size_t *lens, size_t n,
                            kd_merkle_t **out, char *err, size_t errsz)
{
    kd_merkle_t *t;
    hasher_t h;
    kd_status_t st;

    if (n == 0 || n > KD_MERKLE_MAX_LEAVES)
        return kd_err(err, errsz, KD_EINVAL, "a hash tree takes 1 to %d leaves, not %zu",
                      KD_MERKLE_MAX_LEAVES, n);
    if (!(t = calloc(1, sizeof *t)))
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if (!(t->node = calloc(layout(t, n), sizeof *t->node))) {
        free(t);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    if ((st = hasher_init(&h, err, errsz)) == KD_OK) {
        st = hash_levels(t, &h, values, lens, err, errsz);
        hasher_done(&h);
    }
    if (st != KD_OK) {
        kd_merkle_free(t);
        return st;
    }
    *out = t;
    return KD_OK;
}

void kd_merkle_free(kd_merkle_t *t)
{
    if (!t)
        return;
    free(t->node);
    free(t);
}

size_t kd_merkle_count(const kd_merkle_t *t)
{
    return t->count;
}

const uint8_t *kd_merkle_root(const kd_merkle_t *t)
{
    return t->node[t->start[t->levels - 1]];
}

size_t kd_merkle_path(const kd_merkle_t *t, size_t index,
                      uint8_t path[KD_MERKLE_MAX_PATH][KD_MERKLE_HASH_LEN])
{
    size_t n = 0;

    /* A node without a sibling moved up as it was: nothing on the path. */
    for (size_t l = 0; l + 1 < t->levels; l++, index /= 2) {
        size_t sibling = index ^ 1;

        if (sibling < t->size[l])
            memcpy(path[n++], t->node[t->start[l] + sibling], KD_MERKLE_HASH_LEN);
    }
    return n;
}

/* RFC 9162, 2.1.3.2: fn walks the leaf's position up the tree and sn the
 * last node's; where fn is the last node of its level and has no sibling,
 * it moves up without a hash. The path must end exactly at the root. */
static kd_status_t fold_path(hasher_t *h, uint64_t fn, uint64_t sn, const uint8_t *path,
                             size_t path_len, uint8_t r[KD_MERKLE_HASH_LEN], char *err,
                             size_t errsz)
{
    kd_status_t st = KD_OK;

    for (size_t i = 0; i < path_len && st == KD_OK; i++) {
        const uint8_t *p = path + i * KD_MERKLE_HASH_LEN;

        if (sn == 0)
            return kd_err(err, errsz, KD_EINVAL, "audit path too long");
        if ((fn & 1) || fn == sn) {
            st = hash_node(h, p, r, r, err, errsz);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            st = hash_node(h, r, p, r, err, errsz);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (st == KD_OK && sn != 0)
        return kd_err(err, errsz, KD_EINVAL, "audit path too short");
    return st;
}

kd_status_t kd_merkle_root_from_path(const void *value, size_t len, uint64_t index,
                                     uint64_t count, const uint8_t *path, size_t path_len,
                                     uint8_t root[KD_MERKLE_HASH_LEN], char *err, size_t errsz)
{
    hasher_t h;
    kd_status_t st;

    if (count == 0 || count > KD_MERKLE_MAX_LEAVES)
        return kd_err(err, errsz, KD_EINVAL, "tree of %llu leaves: 1 to %d allowed",
                      (unsigned long long)count, KD_MERKLE_MAX_LEAVES);
    if (index >= count)
        return kd_err(err, errsz, KD_EINVAL, "leaf %llu of a tree of %llu",
                      (unsigned long long)index, (unsigned long long)count);
    if (path_len > KD_MERKLE_MAX_PATH)
        return kd_err(err, errsz, KD_EINVAL, "audit path of %zu hashes: at most %d",
                      path_len, KD_MERKLE_MAX_PATH);
    if ((st = hasher_init(&h, err, errsz)) != KD_OK)
        return st;
    if ((st = hash_leaf(&h, value, len, root, err, errsz)) == KD_OK)
        st = fold_path(&h, index, count - 1, path, path_len, root, err, errsz);
    hasher_done(&h);
    return st;
}
