#include "partition.h"

/* Unsigned arithmetic keeps the wrap-around of Java's int defined in C. */
int32_t kd_murmur2(const void *key, size_t len)
{
    const unsigned char *data = key;
    const uint32_t seed = 0x9747b28cu, m = 0x5bd1e995u;
    const int r = 24;
    uint32_t h = seed ^ (uint32_t)len;
    size_t i, len4 = len / 4;

    for (i = 0; i < len4; i++) {
        const unsigned char *p = data + i * 4;
        uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;

        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len % 4) {
    case 3: h ^= (uint32_t)data[(len & ~(size_t)3) + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)data[(len & ~(size_t)3) + 1] << 8; /* fall through */
    case 1:
        h ^= (uint32_t)data[len & ~(size_t)3];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

int32_t kd_partition_for_key(const void *key, size_t len, int32_t partition_cnt)
{
    uint32_t positive = (uint32_t)kd_murmur2(key, len) & 0x7fffffffu;

    return (int32_t)(positive % (uint32_t)partition_cnt);
}
