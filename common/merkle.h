/* Binary hash trees over byte strings (SHA-256, as RFC 6962 / 9162 build
 * them): leaf = H(0x00 || value), node = H(0x01 || left || right), and a
 * tree of n leaves, n not a power of two, splits at the largest power of
 * two below n. One signature over a tree's root then covers every leaf:
 * a leaf is shown to belong by its audit path, the sibling hashes from the
 * leaf up to the root. */
#ifndef KD_MERKLE_H
#define KD_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define KD_MERKLE_HASH_LEN 32
/* The most leaves a tree may have, and so the longest audit path a
 * verifier takes (log2 of it). Planners build smaller trees; the room
 * lets a later planner choose bigger ones without workers refusing. */
#define KD_MERKLE_MAX_LEAVES 65536
#define KD_MERKLE_MAX_PATH 16

typedef struct kd_merkle kd_merkle_t;

/* Builds the tree of values[0..n) (lens[i] bytes each), 1 <= n <=
 * KD_MERKLE_MAX_LEAVES. The values are hashed, not kept. */
kd_status_t kd_merkle_build(const void *const *values, const size_t *lens, size_t n,
                            kd_merkle_t **out, char *err, size_t errsz);
void kd_merkle_free(kd_merkle_t *t);
size_t kd_merkle_count(const kd_merkle_t *t);
/* The root hash (KD_MERKLE_HASH_LEN bytes, owned by t). */
const uint8_t *kd_merkle_root(const kd_merkle_t *t);
/* Writes leaf index's audit path, leaf side first, into path (room for
 * KD_MERKLE_MAX_PATH hashes); returns how many hashes it wrote. */
size_t kd_merkle_path(const kd_merkle_t *t, size_t index,
                      uint8_t path[KD_MERKLE_MAX_PATH][KD_MERKLE_HASH_LEN]);

/* The root a tree of count leaves would have if value were its leaf index
 * and path (path_len hashes) its audit path. KD_EINVAL when index >=
 * count, count is 0 or too big, or the path is not exactly as long as that
 * leaf's path in such a tree; the caller then checks the root (by a
 * signature over it). */
kd_status_t kd_merkle_root_from_path(const void *value, size_t len, uint64_t index,
                                     uint64_t count, const uint8_t *path, size_t path_len,
                                     uint8_t root[KD_MERKLE_HASH_LEN], char *err, size_t errsz);

#endif
