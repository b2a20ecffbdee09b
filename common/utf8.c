#include "utf8.h"

#include <string.h>

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if none. */
static size_t seq_len(const unsigned char *p)
{
    size_t n;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    /* Overlong forms, surrogates and code points past U+10FFFF. */
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
        return 0;
    return n;
}

void kd_utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t skip = 0;

    /* Continuation bytes at the very start belong to a cut character. */
    while (skip < 3 && (p[skip] & 0xc0) == 0x80)
        skip++;
    if (skip)
        memmove(p, p + skip, strlen(s + skip) + 1);
    while (*p) {
        size_t n = seq_len(p);

        if (n == 0) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}
