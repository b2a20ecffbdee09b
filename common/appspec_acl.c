/* The agent's ACL entry and SELinux range syntax (see appspec_int.h). The
 * grammar is the agent's, rebuilt from its documented behaviour and its
 * tests, so that what it accepts kdeploy accepts. */
#include "appspec_int.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACE_PARTS_MAX 4
#define CATEGORY_MAX 1023

static bool word_is(const char *s, size_t len, const char *shrt, const char *lng)
{
    return (len == strlen(shrt) && memcmp(s, shrt, len) == 0) ||
           (len == strlen(lng) && memcmp(s, lng, len) == 0);
}

/* The entry's type word, or 0 if the part names none. */
static kd_ace_type_t type_word(const char *s, size_t len)
{
    if (word_is(s, len, "u", "user"))
        return KD_ACE_USER;
    if (word_is(s, len, "g", "group"))
        return KD_ACE_GROUP;
    if (word_is(s, len, "m", "mask"))
        return KD_ACE_MASK;
    if (word_is(s, len, "o", "other"))
        return KD_ACE_OTHER;
    return 0;
}

static kd_status_t ace_perms(const char *s, unsigned *perms, char *why, size_t whysz)
{
    *perms = 0;
    if (strlen(s) == 1 && s[0] >= '0' && s[0] <= '7') {
        *perms = (unsigned)(s[0] - '0');
        return KD_OK;
    }
    for (; *s; s++) {
        if (*s == 'r')
            *perms |= KD_ACE_READ;
        else if (*s == 'w')
            *perms |= KD_ACE_WRITE;
        else if (*s == 'x')
            *perms |= KD_ACE_EXECUTE;
        else if (*s != '-')
            return kd_err(why, whysz, KD_EINVAL, "invalid permission character '%c'", *s);
    }
    return KD_OK;
}

/* Splits text at ':' into at most ACE_PARTS_MAX parts, last part first (the
 * agent reads the entry from its end). Returns the number of parts, or 0 if
 * there are too many. */
static size_t split_reversed(const char *text, const char *starts[], size_t lens[])
{
    const char *fwd[ACE_PARTS_MAX];
    size_t fwd_len[ACE_PARTS_MAX], n = 0;
    const char *p = text, *colon;

    for (;;) {
        if (n == ACE_PARTS_MAX)
            return 0;
        colon = strchr(p, ':');
        fwd[n] = p;
        fwd_len[n++] = colon ? (size_t)(colon - p) : strlen(p);
        if (!colon)
            break;
        p = colon + 1;
    }
    for (size_t i = 0; i < n; i++) {
        starts[i] = fwd[n - 1 - i];
        lens[i] = fwd_len[n - 1 - i];
    }
    return n;
}

/* The parts before the name: [default:][type:]. */
static kd_status_t ace_prefix(const char *starts[], const size_t lens[], size_t n,
                              kd_appspec_ace_t *ace)
{
    if (n == 4) {
        if (!word_is(starts[3], lens[3], "d", "default"))
            return KD_EINVAL;
        ace->is_default = true;
    }
    if (n >= 3) {
        if (word_is(starts[2], lens[2], "d", "default")) {
            if (ace->is_default)
                return KD_EINVAL;
            ace->is_default = true;
        } else if (!(ace->type = type_word(starts[2], lens[2]))) {
            return KD_EINVAL;
        }
    }
    return KD_OK;
}

kd_status_t kd_appspec_ace_parse(const char *text, kd_appspec_ace_t *ace, char *why,
                                 size_t whysz)
{
    const char *starts[ACE_PARTS_MAX];
    size_t lens[ACE_PARTS_MAX], n = split_reversed(text, starts, lens);
    kd_appspec_ace_t a = {0};
    kd_ace_type_t named;
    char perms[16];

    if (n < 2 || ace_prefix(starts, lens, n, &a) != KD_OK)
        return kd_err(why, whysz, KD_EINVAL, "invalid acl entry '%.80s'", text);
    /* "mask" and "other" in the name slot are a type when none came before. */
    named = type_word(starts[1], lens[1]);
    if ((named == KD_ACE_MASK || named == KD_ACE_OTHER) && !a.type)
        a.type = named;
    else if (!(a.name = strndup(starts[1], lens[1])))
        return kd_err(why, whysz, KD_ENOMEM, "out of memory");
    if (!a.type)
        a.type = KD_ACE_USER;
    if ((a.type == KD_ACE_MASK || a.type == KD_ACE_OTHER) && a.name && *a.name) {
        free(a.name);
        return kd_err(why, whysz, KD_EINVAL, "invalid acl entry '%.80s'", text);
    }
    if (!a.is_default && a.type != KD_ACE_MASK && (!a.name || !*a.name)) {
        free(a.name);
        return kd_err(why, whysz, KD_EINVAL,
                      "'%.80s' is a base acl entry: use mode to set it, as CodeDeploy requires",
                      text);
    }
    if (!a.name && !(a.name = strdup("")))
        return kd_err(why, whysz, KD_ENOMEM, "out of memory");
    snprintf(perms, sizeof perms, "%.*s", (int)(lens[0] < 15 ? lens[0] : 15), starts[0]);
    if (lens[0] >= sizeof perms || ace_perms(perms, &a.perms, why, whysz) != KD_OK) {
        free(a.name);
        if (lens[0] >= sizeof perms)
            return kd_err(why, whysz, KD_EINVAL, "invalid acl entry '%.80s'", text);
        return KD_EINVAL;
    }
    *ace = a;
    return KD_OK;
}

/* ---- SELinux ranges ---- */

/* "<letter><digits>", the digits at most max; sets *value. */
static bool level(const char *s, size_t len, char letter, long max, long *value)
{
    long v = 0;

    if (len < 2 || s[0] != letter)
        return false;
    for (size_t i = 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
        if (v > 1000000)
            return false;
    }
    if (max >= 0 && v > max)
        return false;
    *value = v;
    return true;
}

/* Splits s[0..len) once at sep into two non-empty parts, or keeps it whole. */
static bool halves(const char *s, size_t len, char sep, size_t *first, const char **second,
                   size_t *second_len)
{
    const char *p = memchr(s, sep, len);

    *first = p ? (size_t)(p - s) : len;
    *second = p ? p + 1 : NULL;
    *second_len = p ? len - *first - 1 : 0;
    return *first > 0 && (!p || *second_len > 0);
}

static kd_status_t sensitivity(const char *s, size_t len, char *why, size_t whysz)
{
    const char *hi;
    size_t lo_len, hi_len;
    long lo_v, hi_v;

    if (!halves(s, len, '-', &lo_len, &hi, &hi_len))
        return kd_err(why, whysz, KD_EINVAL, "invalid range part '%.*s'", (int)len, s);
    if (!level(s, lo_len, 's', -1, &lo_v))
        return kd_err(why, whysz, KD_EINVAL, "invalid sensitivity '%.*s'", (int)lo_len, s);
    if (hi && !level(hi, hi_len, 's', -1, &hi_v))
        return kd_err(why, whysz, KD_EINVAL, "invalid sensitivity '%.*s'", (int)hi_len, hi);
    if (hi && hi_v < lo_v)
        return kd_err(why, whysz, KD_EINVAL, "the high sensitivity is below the low one");
    return KD_OK;
}

static kd_status_t categories(const char *s, size_t len, char *why, size_t whysz)
{
    bool seen[CATEGORY_MAX + 1] = {false};
    const char *end = s + len, *comma, *hi;
    size_t part, lo_len, hi_len;
    long lo_v, hi_v;

    for (const char *p = s; p <= end; p = comma + 1) {
        comma = memchr(p, ',', (size_t)(end - p));
        if (!comma)
            comma = end;
        part = (size_t)(comma - p);
        if (!halves(p, part, '.', &lo_len, &hi, &hi_len))
            return kd_err(why, whysz, KD_EINVAL, "invalid range part '%.*s'", (int)part, p);
        if (!level(p, lo_len, 'c', CATEGORY_MAX, &lo_v))
            return kd_err(why, whysz, KD_EINVAL, "invalid category '%.*s'", (int)lo_len, p);
        hi_v = lo_v;
        if (hi && !level(hi, hi_len, 'c', CATEGORY_MAX, &hi_v))
            return kd_err(why, whysz, KD_EINVAL, "invalid category '%.*s'", (int)hi_len, hi);
        if (hi_v < lo_v)
            return kd_err(why, whysz, KD_EINVAL, "invalid category range '%.*s'", (int)part, p);
        for (long c = lo_v; c <= hi_v; c++) {
            if (seen[c])
                return kd_err(why, whysz, KD_EINVAL, "category c%ld given twice", c);
            seen[c] = true;
        }
    }
    return KD_OK;
}

kd_status_t kd_appspec_range_check(const char *text, char *why, size_t whysz)
{
    size_t len = strlen(text), sens_len, cats_len;
    const char *cats;
    kd_status_t st;

    if (!halves(text, len, ':', &sens_len, &cats, &cats_len))
        return kd_err(why, whysz, KD_EINVAL, "invalid range part '%.80s'", text);
    if ((st = sensitivity(text, sens_len, why, whysz)) != KD_OK)
        return st;
    return cats ? categories(cats, cats_len, why, whysz) : KD_OK;
}
