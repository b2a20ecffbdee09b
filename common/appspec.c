/* The appspec parser. libyaml's document API loads the file into a node
 * tree (each node keeps its line); a walk then checks the tree against one
 * key table per mapping and per format, and records every error it meets
 * instead of stopping at the first, so one `kdeploy validate` run shows
 * them all. */
#include "appspec.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "appspec_int.h"
#include "buf.h"
#include "fsutil.h"
#include "strmap.h"

#define APPSPEC_MAX_BYTES (1u << 20)
#define ERRORS_MAX_BYTES (64u << 10)
/* Documented defaults and limits: JD's default timeout is 10 s; AWS's is
 * 3600 s, which is also its limit per event. JD states no limit: a day. */
#define JD_TIMEOUT_DEFAULT 10u
#define JD_TIMEOUT_MAX 86400u
#define AWS_TIMEOUT_DEFAULT 3600u
/* The agent sets no upper bound; this one only keeps seconds in range. */
#define AWS_TIMEOUT_MAX 2147483u
#define IGNORED "ignored as CodeDeploy ignores it"

const char *const kd_appspec_names[] = {
    "jdcloud-codedeploy.yml", "appspec.yml", "appspec.yaml", "appSpec.yml", NULL
};

static const struct {
    const char *name;
    kd_appspec_format_t format;
} format_names[] = {
    {"jdcloud-codedeploy.yml", KD_APPSPEC_JD},
    {"appspec.yml", KD_APPSPEC_AWS},
    {"appspec.yaml", KD_APPSPEC_AWS},
    {"appSpec.yml", KD_APPSPEC_JD},
};

typedef struct hook {
    kd_appspec_script_t *scripts;
    size_t count;
} hook_t;

struct kd_appspec {
    kd_appspec_format_t format;
    char *path;
    hook_t hooks[KD_EVENT_MAX];
    kd_appspec_file_t *files;
    size_t nfiles;
    kd_appspec_permission_t *perms;
    size_t nperms;
    kd_appspec_env_t *env;
    size_t nenv;
    kd_file_exists_t file_exists;
    char *warnings;
    size_t nwarnings;
};

/* The walk's state: the document, the spec being filled, the errors so far
 * and the path of the field being read (e.g. "hooks.AfterInstall[0]"). */
typedef struct ctx {
    yaml_document_t *doc;
    const char *file;
    kd_appspec_t *spec;
    kd_buf_t errors;
    kd_buf_t warnings;
    kd_buf_t field;
    size_t nerrors;
    size_t nwarnings;
    size_t dropped;
    bool nomem;
} ctx_t;

typedef void (*value_fn)(ctx_t *c, yaml_node_t *value, void *obj);

/* One key a mapping may hold. */
typedef struct keydef {
    const char *name;
    value_fn parse;
    bool required;
} keydef_t;

/* ---- errors and field paths ---------------------------------------------- */

/* Error lines are one per line: control bytes from the file become '?'. */
static void sanitize(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            s[i] = '?';
}

static void vreport(ctx_t *c, int line, const char *fmt, va_list ap)
{
    size_t start = c->errors.len;
    const char *field = c->field.len ? kd_buf_str(&c->field) : "(document)";
    kd_status_t st;

    c->nerrors++;
    st = kd_buf_printf(&c->errors, "%s:%d: %s: ", c->file, line, field);
    if (st == KD_OK)
        st = kd_buf_vprintf(&c->errors, fmt, ap);
    if (st == KD_OK) {
        sanitize(c->errors.data + start, c->errors.len - start);
        st = kd_buf_appends(&c->errors, "\n");
    }
    if (st == KD_OK)
        return;
    if (st == KD_ENOMEM)
        c->nomem = true;
    c->dropped++;
    c->errors.len = start;
    if (c->errors.data)
        c->errors.data[start] = '\0';
}

static void report(ctx_t *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(ctx_t *c, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(c, line, fmt, ap);
    va_end(ap);
}

static int line_of(const yaml_node_t *n)
{
    return n ? (int)n->start_mark.line + 1 : 1;
}

/* Records an error about the current field, at node n's line. */
static void bad(ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad(ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(c, line_of(n), fmt, ap);
    va_end(ap);
}

/* Records a warning about the current field, at node n's line. */
static void warn(ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn(ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
{
    size_t start = c->warnings.len;
    const char *field = c->field.len ? kd_buf_str(&c->field) : "(document)";
    kd_status_t st;
    va_list ap;

    va_start(ap, fmt);
    st = kd_buf_printf(&c->warnings, "%s:%d: %s: warning: ", c->file, line_of(n), field);
    if (st == KD_OK)
        st = kd_buf_vprintf(&c->warnings, fmt, ap);
    va_end(ap);
    if (st == KD_OK) {
        sanitize(c->warnings.data + start, c->warnings.len - start);
        st = kd_buf_appends(&c->warnings, "\n");
    }
    if (st == KD_OK) {
        c->nwarnings++;
        return;
    }
    if (st == KD_ENOMEM)
        c->nomem = true;
    c->warnings.len = start;
    if (c->warnings.data)
        c->warnings.data[start] = '\0';
}

static bool is_aws(const ctx_t *c)
{
    return c->spec->format == KD_APPSPEC_AWS;
}

/* Appends to the field path; returns the length to restore with field_pop. */
static size_t field_push(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t field_push(ctx_t *c, const char *fmt, ...)
{
    size_t len = c->field.len;
    va_list ap;

    va_start(ap, fmt);
    if (kd_buf_vprintf(&c->field, fmt, ap) == KD_ENOMEM)
        c->nomem = true;
    va_end(ap);
    return len;
}

static size_t field_key(ctx_t *c, const char *name)
{
    return field_push(c, c->field.len ? ".%s" : "%s", name);
}

static void field_pop(ctx_t *c, size_t len)
{
    c->field.len = len;
    if (c->field.data)
        c->field.data[len] = '\0';
}

/* ---- nodes ----------------------------------------------------------------- */

static yaml_node_t *node_at(const ctx_t *c, int index)
{
    return yaml_document_get_node(c->doc, index);
}

static const char *text_of(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* YAML's null: an empty or ~/null plain scalar (`key:` with no value). */
static bool is_null(const yaml_node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (strcmp(text_of(n), nulls[i]) == 0)
            return true;
    return false;
}

/* A scalar's text, or NULL (after reporting) for a null, a list, a mapping
 * or a text with a NUL byte in it. */
static const char *scalar_value(ctx_t *c, const yaml_node_t *n, const char *expected)
{
    if (!n || n->type != YAML_SCALAR_NODE) {
        bad(c, n, "expected %s, not a %s", expected,
            n && n->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
        return NULL;
    }
    if (is_null(n)) {
        bad(c, n, "needs a value (%s)", expected);
        return NULL;
    }
    if (strlen(text_of(n)) != n->data.scalar.length) {
        bad(c, n, "contains a NUL byte");
        return NULL;
    }
    return text_of(n);
}

/* A mapping key's name, or NULL (after reporting) if it is not a string. */
static const char *key_name(ctx_t *c, const yaml_node_t *key)
{
    if (!key || key->type != YAML_SCALAR_NODE ||
        strlen(text_of(key)) != key->data.scalar.length) {
        bad(c, key, "a key must be a plain string");
        return NULL;
    }
    return text_of(key);
}

static bool same_key(const ctx_t *c, int index, const char *name)
{
    const yaml_node_t *k = node_at(c, index);

    return k && k->type == YAML_SCALAR_NODE && strcmp(text_of(k), name) == 0;
}

/* The keys seen so far in one mapping: a hash set, so that a mapping of n
 * keys is checked for duplicates in O(n), not O(n^2). */
typedef struct seen {
    kd_strmap_t *keys;
} seen_t;

static void seen_init(ctx_t *c, seen_t *s)
{
    if (!(s->keys = kd_strmap_new()))
        c->nomem = true;
}

/* True if name was seen before in this mapping; records it otherwise. */
static bool seen_again(ctx_t *c, seen_t *s, const char *name)
{
    if (!s->keys)
        return false;
    if (kd_strmap_get(s->keys, name))
        return true;
    if (kd_strmap_set(s->keys, name, "") != KD_OK)
        c->nomem = true;
    return false;
}

static void seen_free(seen_t *s)
{
    kd_strmap_free(s->keys);
    s->keys = NULL;
}

static yaml_node_t *map_get(const ctx_t *c, const yaml_node_t *map, const char *name)
{
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++)
        if (same_key(c, p->key, name))
            return node_at(c, p->value);
    return NULL;
}

/* ---- typed values ------------------------------------------------------- */

enum {
    STR_EMPTY_OK = 1,  /* "" is a value */
    STR_PATH = 2,      /* one line, no ".." component */
    STR_ABSOLUTE = 4,  /* starts with "/" */
    STR_WORD = 8       /* no blanks (a user or group name) */
};

static bool has_dotdot(const char *path)
{
    for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2)
        if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
            return true;
    return false;
}

static bool check_str(ctx_t *c, const yaml_node_t *n, const char *s, unsigned flags)
{
    if (!*s && !(flags & STR_EMPTY_OK))
        bad(c, n, "must not be empty");
    else if ((flags & STR_PATH) && strchr(s, '\n'))
        bad(c, n, "a path cannot span lines");
    else if ((flags & STR_ABSOLUTE) && s[0] != '/')
        bad(c, n, "must be an absolute path (starting with /)");
    else if ((flags & STR_PATH) && has_dotdot(s))
        bad(c, n, "must not contain a \"..\" component");
    else if ((flags & STR_WORD) && strpbrk(s, " \t\r\n"))
        bad(c, n, "must be a name without blanks");
    else
        return true;
    return false;
}

/* A new copy of a string value, or NULL (reported) if it is not one. */
static char *get_str(ctx_t *c, const yaml_node_t *n, unsigned flags)
{
    const char *s = scalar_value(c, n, "a string");
    char *copy;

    if (!s || !check_str(c, n, s, flags))
        return NULL;
    if (!(copy = strdup(s)))
        c->nomem = true;
    return copy;
}

static void get_timeout(ctx_t *c, const yaml_node_t *n, unsigned *out)
{
    unsigned max = c->spec->format == KD_APPSPEC_AWS ? AWS_TIMEOUT_MAX : JD_TIMEOUT_MAX;
    const char *s = scalar_value(c, n, "a number of seconds");
    unsigned long v;

    if (!s)
        return;
    errno = 0;
    v = *s && strspn(s, "0123456789") == strlen(s) ? strtoul(s, NULL, 10) : 0;
    if (errno == 0 && v >= 1 && v <= max) {
        *out = (unsigned)v;
        return;
    }
    bad(c, n, "must be a whole number of seconds from 1 to %u, not '%.40s'", max, s);
}

/* YAML 1.1's true, as Psych reads a plain scalar. */
static bool yaml_true(const char *s)
{
    static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On",
                                        "ON", "y", "Y"};

    for (size_t i = 0; i < sizeof trues / sizeof trues[0]; i++)
        if (strcmp(s, trues[i]) == 0)
            return true;
    return false;
}

/* Is n a plain scalar that Psych (YAML 1.1) reads as a number? Ints are
 * decimal, 0-led octal or 0x hex; floats need a dot. */
static bool yaml_number(const yaml_node_t *n, double *value)
{
    const char *s = text_of(n), *p = s + (*s == '-' || *s == '+');
    size_t digits = strspn(p, "0123456789");
    double sign = *s == '-' ? -1 : 1;

    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || !*p)
        return false;
    if (p[0] == '0' && p[1] == 'x' && p[2] && strspn(p + 2, "0123456789abcdefABCDEF") ==
                                                  strlen(p + 2)) {
        *value = sign * (double)strtoull(p + 2, NULL, 16);
        return true;
    }
    if (digits && !p[digits]) {
        bool octal = p[0] == '0' && strspn(p, "01234567") == digits;

        *value = sign * (double)strtoull(p, NULL, octal ? 8 : 10);
        return true;
    }
    if (p[digits] != '.')
        return false;
    digits += 1 + strspn(p + digits + 1, "0123456789");
    if (p[digits] == 'e' || p[digits] == 'E') {
        if (p[digits + 1] != '-' && p[digits + 1] != '+')
            return false;
        digits += 2 + strspn(p + digits + 2, "0123456789");
    }
    if (p[digits])
        return false;
    *value = strtod(s, NULL);
    return true;
}

/* The agent's timeout: `to_i` of whatever the YAML holds (Ruby reads the
 * leading digits of a string, truncates a float), then it must be > 0. */
static void get_aws_timeout(ctx_t *c, const yaml_node_t *n, unsigned *out)
{
    const char *s = scalar_value(c, n, "a number of seconds");
    char digits[32];
    double number;
    long long v = 0;
    const char *p;

    if (!s)
        return;
    if (yaml_number(n, &number)) {
        v = number >= 1 ? (number > AWS_TIMEOUT_MAX ? AWS_TIMEOUT_MAX + 1LL : (long long)number)
                        : 0;
    } else if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && (yaml_true(s) ||
               strcmp(s, "false") == 0)) {
        v = 0;
    } else {
        p = s + strspn(s, " \t\n");
        p += *p == '+';
        for (; isdigit((unsigned char)*p) && v <= AWS_TIMEOUT_MAX; p++)
            v = v * 10 + (*p - '0');
    }
    if (v < 1) {
        bad(c, n, "must be a whole number of seconds above 0, not '%.40s'", s);
        return;
    }
    if (v > AWS_TIMEOUT_MAX) {
        bad(c, n, "must be at most %u seconds, not '%.40s'", AWS_TIMEOUT_MAX, s);
        return;
    }
    snprintf(digits, sizeof digits, "%lld", v);
    if (strcmp(digits, s) != 0)
        warn(c, n, "'%.40s' is read as %lld seconds, as CodeDeploy reads it", s, v);
    *out = (unsigned)v;
}

/* chmod's octal digits, as the AWS agent takes them: one to four. */
static bool mode_digits_ok(const char *s)
{
    size_t len = strlen(s);

    return len >= 1 && len <= 4 && strspn(s, "01234567") == len;
}

/* A YAML 1.1 reader (the agent's Psych) takes an unquoted 0755 for the octal
 * number 493, and the agent then reads the digits "493" as the mode. An AWS
 * appspec's mode is read the same way, and kdeploy says so when the result
 * is not what the digits show. */
static void get_mode(ctx_t *c, const yaml_node_t *n, int *out)
{
    const char *s = scalar_value(c, n, "an octal mode");
    char digits[32];
    size_t len = s ? strlen(s) : 0;

    if (!s)
        return;
    if (is_aws(c) && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && len > 1 && len < 12 &&
        s[0] == '0' && strspn(s, "01234567") == len) {
        snprintf(digits, sizeof digits, "%ld", strtol(s, NULL, 8));
        if (!mode_digits_ok(digits)) {
            bad(c, n, "unquoted %s is the YAML octal number %s, which CodeDeploy refuses as a "
                "mode: write \"%s\" in quotes", s, digits, s);
            return;
        }
        if (strtol(digits, NULL, 8) != strtol(s, NULL, 8))
            warn(c, n, "unquoted %s is the YAML octal number %s, so CodeDeploy and kdeploy set "
                 "mode 0%s: write \"%s\" in quotes for mode %s", s, digits, digits, s, s);
        *out = (int)strtol(digits, NULL, 8);
        return;
    }
    if (!mode_digits_ok(s)) {
        bad(c, n, "must be 1 to 4 octal digits, as for chmod (e.g. 644 or \"0755\"), not '%.40s'",
            s);
        return;
    }
    *out = (int)strtol(s, NULL, 8);
}

/* ---- mappings and lists --------------------------------------------------- */

static const keydef_t *find_key(const keydef_t *keys, const char *name)
{
    for (const keydef_t *k = keys; k->name; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

/* "a, b, c": the names of a key table, for messages. */
static void key_names(const keydef_t *keys, kd_buf_t *b)
{
    for (const keydef_t *k = keys; k->name; k++)
        (void)kd_buf_printf(b, "%s%s", k == keys ? "" : ", ", k->name);
}

/* The agent reads an AWS appspec as a hash and looks up the keys it knows:
 * any other key is ignored, so kdeploy warns. A JD appspec is strict. */
static void unknown_key(ctx_t *c, const yaml_node_t *key, const keydef_t *keys)
{
    kd_buf_t names = KD_BUF_INIT(4096);

    key_names(keys, &names);
    if (is_aws(c))
        warn(c, key, IGNORED " (kdeploy reads: %s)", kd_buf_str(&names));
    else
        bad(c, key, "unknown key (expected one of: %s)", kd_buf_str(&names));
    kd_buf_free(&names);
}

static void walk_pair(ctx_t *c, seen_t *seen, const yaml_node_pair_t *p, const keydef_t *keys,
                      void *obj)
{
    yaml_node_t *key = node_at(c, p->key);
    const char *name = key_name(c, key);
    const keydef_t *k;
    size_t saved;

    if (!name)
        return;
    saved = field_key(c, name);
    k = find_key(keys, name);
    if (seen_again(c, seen, name))
        bad(c, key, "duplicate key");
    else if (!k)
        unknown_key(c, key, keys);
    else
        k->parse(c, node_at(c, p->value), obj);
    field_pop(c, saved);
}

/* Checks a mapping against its key table, parsing each value into obj.
 * Returns false (reported) if n is not a mapping. */
static bool walk_map(ctx_t *c, const yaml_node_t *n, const keydef_t *keys, void *obj)
{
    if (!n || n->type != YAML_MAPPING_NODE) {
        kd_buf_t names = KD_BUF_INIT(4096);

        key_names(keys, &names);
        bad(c, n, "expected a mapping (keys: %s)", kd_buf_str(&names));
        kd_buf_free(&names);
        return false;
    }
    seen_t seen;

    seen_init(c, &seen);
    for (const yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
         p++)
        walk_pair(c, &seen, p, keys, obj);
    seen_free(&seen);
    for (const keydef_t *k = keys; k->name; k++) {
        if (k->required && !map_get(c, n, k->name)) {
            size_t saved = field_key(c, k->name);

            bad(c, n, "missing (required)");
            field_pop(c, saved);
        }
    }
    return true;
}

typedef void (*item_fn)(ctx_t *c, yaml_node_t *n, void *item);

/* Parses a list into a new zeroed array of items of size bytes each
 * (*count of them; NULL when empty). A null value, where null_ok, is an
 * empty list. Items that fail stay zeroed (and are reported). */
static void *walk_list(ctx_t *c, const yaml_node_t *n, size_t size, item_fn fn, bool null_ok,
                       size_t *count)
{
    const yaml_node_item_t *start, *top;
    char *items;

    *count = 0;
    if (null_ok && is_null(n))
        return NULL;
    if (!n || n->type != YAML_SEQUENCE_NODE) {
        bad(c, n, "expected a list");
        return NULL;
    }
    start = n->data.sequence.items.start;
    top = n->data.sequence.items.top;
    if (top == start)
        return NULL;
    if (!(items = calloc((size_t)(top - start), size))) {
        c->nomem = true;
        return NULL;
    }
    *count = (size_t)(top - start);
    for (const yaml_node_item_t *it = start; it < top; it++) {
        size_t saved = field_push(c, "[%zu]", (size_t)(it - start));

        fn(c, node_at(c, *it), items + (size_t)(it - start) * size);
        field_pop(c, saved);
    }
    return items;
}

/* ---- hooks ----------------------------------------------------------------- */

static void script_command(ctx_t *c, yaml_node_t *v, void *obj)
{
    ((kd_appspec_script_t *)obj)->command = get_str(c, v, 0);
}

/* The agent strips blanks around a location, then refuses an empty one. */
static void script_location(ctx_t *c, yaml_node_t *v, void *obj)
{
    char *s = get_str(c, v, STR_PATH), *end;
    size_t lead;

    if (s && is_aws(c)) {
        lead = strspn(s, " \t");
        memmove(s, s + lead, strlen(s + lead) + 1);
        for (end = s + strlen(s); end > s && (end[-1] == ' ' || end[-1] == '\t');)
            *--end = '\0';
        if (!*s) {
            bad(c, v, "must not be empty");
            free(s);
            s = NULL;
        }
    }
    ((kd_appspec_script_t *)obj)->location = s;
}

static void script_timeout(ctx_t *c, yaml_node_t *v, void *obj)
{
    if (is_aws(c))
        get_aws_timeout(c, v, &((kd_appspec_script_t *)obj)->timeout_s);
    else
        get_timeout(c, v, &((kd_appspec_script_t *)obj)->timeout_s);
}

/* The agent keeps `sudo` and, with runas, becomes that user through sudo. */
static void script_sudo(ctx_t *c, yaml_node_t *v, void *obj)
{
    const char *s = scalar_value(c, v, "true or false");

    if (s)
        ((kd_appspec_script_t *)obj)->sudo = yaml_true(s);
}

static void script_runas(ctx_t *c, yaml_node_t *v, void *obj)
{
    ((kd_appspec_script_t *)obj)->runas = get_str(c, v, STR_WORD);
}

static const keydef_t jd_script_keys[] = {
    {"command", script_command, false},
    {"location", script_location, false},
    {"timeout", script_timeout, false},
    {"runas", script_runas, false},
    {NULL, NULL, false},
};

static const keydef_t aws_script_keys[] = {
    {"location", script_location, true},
    {"timeout", script_timeout, false},
    {"runas", script_runas, false},
    {"sudo", script_sudo, false},
    {NULL, NULL, false},
};

static void parse_script(ctx_t *c, yaml_node_t *n, void *item)
{
    kd_appspec_script_t *s = item;
    bool jd = c->spec->format == KD_APPSPEC_JD;
    bool command, location;

    s->line = line_of(n);
    s->timeout_s = jd ? JD_TIMEOUT_DEFAULT : AWS_TIMEOUT_DEFAULT;
    if (!walk_map(c, n, jd ? jd_script_keys : aws_script_keys, s) || !jd)
        return;
    command = map_get(c, n, "command") != NULL;
    location = map_get(c, n, "location") != NULL;
    if (command && location)
        bad(c, n, "has both command and location (give one)");
    else if (!command && !location)
        bad(c, n, "needs a command or a location");
}

static void free_scripts(kd_appspec_script_t *s, size_t count);

/* A hook no workflow runs. The agent accepts any name (and its own tests
 * use "test_hook"), so an AWS appspec gets a warning, and its scripts are
 * still checked; a JD appspec is refused. */
static void parse_idle_hook(ctx_t *c, const yaml_node_t *key, const yaml_node_t *value,
                            const char *why)
{
    kd_appspec_script_t *scripts;
    size_t count;

    if (!is_aws(c)) {
        bad(c, key, "%s", why);
        return;
    }
    warn(c, key, "%s: it never runs in a workflow", why);
    scripts = walk_list(c, value, sizeof *scripts, parse_script, true, &count);
    free_scripts(scripts, count);
}

/* One `hooks` entry: EVENT: [scripts]. */
static void parse_hook(ctx_t *c, seen_t *seen, const yaml_node_pair_t *p)
{
    yaml_node_t *key = node_at(c, p->key), *value = node_at(c, p->value);
    const char *name = key_name(c, key);
    kd_event_t ev;
    hook_t *h;
    size_t saved;

    if (!name)
        return;
    saved = field_key(c, name);
    if (seen_again(c, seen, name)) {
        bad(c, key, "duplicate key");
    } else if (!kd_event_parse(name, &ev)) {
        parse_idle_hook(c, key, value, "not a lifecycle event");
    } else if (!kd_event_allows_hooks(ev)) {
        parse_idle_hook(c, key, value,
                        "carried out by kdeploy itself, which runs no scripts for it");
    } else if (is_null(value)) {
        /* The agent skips an empty hook entry. */
        if (!is_aws(c))
            bad(c, key, "expected a list of scripts");
    } else {
        h = &c->spec->hooks[ev];
        h->scripts = walk_list(c, value, sizeof *h->scripts, parse_script, false, &h->count);
    }
    field_pop(c, saved);
}

static void parse_hooks(ctx_t *c, yaml_node_t *n, void *obj)
{
    (void)obj;
    if (is_null(n))
        return;
    if (n->type != YAML_MAPPING_NODE) {
        bad(c, n, "expected a mapping of lifecycle events to lists of scripts");
        return;
    }
    seen_t seen;

    seen_init(c, &seen);
    for (const yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
         p++)
        parse_hook(c, &seen, p);
    seen_free(&seen);
}

/* ---- files ----------------------------------------------------------------- */

static void file_source(ctx_t *c, yaml_node_t *v, void *obj)
{
    ((kd_appspec_file_t *)obj)->source = get_str(c, v, STR_PATH);
}

static void file_destination(ctx_t *c, yaml_node_t *v, void *obj)
{
    ((kd_appspec_file_t *)obj)->destination = get_str(c, v, STR_PATH | STR_ABSOLUTE);
}

static const keydef_t file_keys[] = {
    {"source", file_source, true},
    {"destination", file_destination, true},
    {NULL, NULL, false},
};

static void parse_file(ctx_t *c, yaml_node_t *n, void *item)
{
    kd_appspec_file_t *f = item;

    f->line = line_of(n);
    walk_map(c, n, file_keys, f);
}

static void parse_files(ctx_t *c, yaml_node_t *n, void *obj)
{
    kd_appspec_t *spec = obj;

    spec->files = walk_list(c, n, sizeof *spec->files, parse_file, true, &spec->nfiles);
}

/* ---- permissions ----------------------------------------------------------- */

static void perm_object(ctx_t *c, yaml_node_t *v, void *obj)
{
    ((kd_appspec_permission_t *)obj)->object = get_str(c, v, STR_PATH | STR_ABSOLUTE);
}

/* An empty pattern (as in JD's examples) means all, as "**" does. The AWS
 * agent keeps it as the glob "", which matches nothing. */
static void perm_pattern(ctx_t *c, yaml_node_t *v, void *obj)
{
    kd_appspec_permission_t *pm = obj;
    char *s = get_str(c, v, STR_EMPTY_OK);

    if (s && !*s && is_aws(c)) {
        warn(c, v, "an empty pattern matches nothing, as in CodeDeploy (\"**\" matches all)");
    } else if (s && !*s) {
        free(s);
        s = NULL;
    }
    pm->pattern = s;
}

static void except_item(ctx_t *c, yaml_node_t *n, void *item)
{
    *(char **)item = get_str(c, n, 0);
}

static void perm_except(ctx_t *c, yaml_node_t *v, void *obj)
{
    kd_appspec_permission_t *pm = obj;

    pm->except = walk_list(c, v, sizeof *pm->except, except_item, false, &pm->except_count);
}

static void perm_owner(ctx_t *c, yaml_node_t *v, void *obj)
{
    ((kd_appspec_permission_t *)obj)->owner = get_str(c, v, STR_WORD);
}

static void perm_group(ctx_t *c, yaml_node_t *v, void *obj)
{
    ((kd_appspec_permission_t *)obj)->group = get_str(c, v, STR_WORD);
}

static void perm_mode(ctx_t *c, yaml_node_t *v, void *obj)
{
    get_mode(c, v, &((kd_appspec_permission_t *)obj)->mode);
}

static void type_item(ctx_t *c, yaml_node_t *n, void *item)
{
    const char *s = scalar_value(c, n, "file or directory");

    if (!s)
        return;
    if (strcmp(s, "file") == 0)
        *(unsigned *)item = KD_PERM_TYPE_FILE;
    else if (strcmp(s, "directory") == 0)
        *(unsigned *)item = KD_PERM_TYPE_DIRECTORY;
    else
        bad(c, n, "must be file or directory, not '%.40s'", s);
}

static void perm_type(ctx_t *c, yaml_node_t *v, void *obj)
{
    kd_appspec_permission_t *pm = obj;
    size_t count = 0;
    unsigned *types = walk_list(c, v, sizeof *types, type_item, false, &count);

    /* The agent keeps an empty list: the entry then matches nothing. */
    if (!types && !count && v && v->type == YAML_SEQUENCE_NODE && !c->nomem) {
        if (is_aws(c)) {
            warn(c, v, "an empty type list applies to nothing, as in CodeDeploy");
            pm->type_none = true;
        } else {
            bad(c, v, "must list file, directory or both");
        }
    }
    for (size_t i = 0; i < count; i++)
        pm->type |= types[i];
    free(types);
}

static void ace_item(ctx_t *c, yaml_node_t *n, void *item)
{
    const char *s = scalar_value(c, n, "an acl entry such as u:bob:rwx");
    char why[256];

    if (!s)
        return;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strspn(s, "0123456789") == strlen(s)) {
        bad(c, n, "'%.40s' is a number, not an acl entry (CodeDeploy fails on it)", s);
        return;
    }
    if (kd_appspec_ace_parse(s, item, why, sizeof why) == KD_ENOMEM)
        c->nomem = true;
    else if (!((kd_appspec_ace_t *)item)->type)
        bad(c, n, "%s", why);
}

static void perm_acls(ctx_t *c, yaml_node_t *v, void *obj)
{
    kd_appspec_permission_t *pm = obj;

    pm->acls = walk_list(c, v, sizeof *pm->acls, ace_item, false, &pm->acl_count);
    /* `acls: []` is still an ACL to set (the agent then clears named entries). */
    if (!pm->acls && !c->nomem && v && v->type == YAML_SEQUENCE_NODE &&
        !(pm->acls = calloc(1, sizeof *pm->acls)))
        c->nomem = true;
}

static void context_user(ctx_t *c, yaml_node_t *v, void *obj)
{
    ((kd_appspec_context_t *)obj)->user = get_str(c, v, STR_WORD);
}

static void context_type(ctx_t *c, yaml_node_t *v, void *obj)
{
    ((kd_appspec_context_t *)obj)->type = get_str(c, v, STR_WORD);
}

static void context_range(ctx_t *c, yaml_node_t *v, void *obj)
{
    kd_appspec_context_t *ctx = obj;
    char why[256];

    if (!(ctx->range = get_str(c, v, STR_WORD)))
        return;
    if (kd_appspec_range_check(ctx->range, why, sizeof why) != KD_OK)
        bad(c, v, "%s", why);
}

static const keydef_t context_keys[] = {
    {"type", context_type, true},
    {"name", context_user, false},
    {"range", context_range, false},
    {NULL, NULL, false},
};

static void perm_context(ctx_t *c, yaml_node_t *v, void *obj)
{
    kd_appspec_permission_t *pm = obj;

    if (!(pm->context = calloc(1, sizeof *pm->context))) {
        c->nomem = true;
        return;
    }
    walk_map(c, v, context_keys, pm->context);
}

static const keydef_t perm_keys[] = {
    {"object", perm_object, true},
    {"pattern", perm_pattern, false},
    {"except", perm_except, false},
    {"owner", perm_owner, false},
    {"group", perm_group, false},
    {"mode", perm_mode, false},
    {"type", perm_type, false},
    {"acls", perm_acls, false},
    {"context", perm_context, false},
    {NULL, NULL, false},
};

static void parse_perm(ctx_t *c, yaml_node_t *n, void *item)
{
    kd_appspec_permission_t *pm = item;

    pm->line = line_of(n);
    pm->mode = -1;
    walk_map(c, n, perm_keys, pm);
}

static void parse_perms(ctx_t *c, yaml_node_t *n, void *obj)
{
    kd_appspec_t *spec = obj;

    spec->perms = walk_list(c, n, sizeof *spec->perms, parse_perm, true, &spec->nperms);
}

/* ---- env (JD) -------------------------------------------------------------- */

static bool is_var_name(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") ==
           strlen(s);
}

static void parse_var(ctx_t *c, seen_t *seen, const yaml_node_pair_t *p,
                      kd_appspec_env_t *var)
{
    yaml_node_t *key = node_at(c, p->key);
    const char *name = key_name(c, key);
    size_t saved;

    if (!name)
        return;
    saved = field_key(c, name);
    if (seen_again(c, seen, name))
        bad(c, key, "duplicate key");
    else if (!is_var_name(name))
        bad(c, key, "is not a variable name (letters, digits and _, not first a digit)");
    else if ((var->value = get_str(c, node_at(c, p->value), STR_EMPTY_OK)) != NULL &&
             !(var->name = strdup(name)))
        c->nomem = true;
    field_pop(c, saved);
}

static void parse_env(ctx_t *c, yaml_node_t *n, void *obj)
{
    kd_appspec_t *spec = obj;
    size_t count;
    seen_t seen;

    if (is_null(n))
        return;
    if (n->type != YAML_MAPPING_NODE) {
        bad(c, n, "expected a mapping of variable names to values");
        return;
    }
    count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (!count)
        return;
    if (!(spec->env = calloc(count, sizeof *spec->env))) {
        c->nomem = true;
        return;
    }
    spec->nenv = count;
    seen_init(c, &seen);
    for (size_t i = 0; i < count; i++)
        parse_var(c, &seen, n->data.mapping.pairs.start + i, &spec->env[i]);
    seen_free(&seen);
}

/* ---- top level ------------------------------------------------------------- */

/* The agent wants the number 0.0 (Ruby's 0 == 0.0 lets 0 pass too); a
 * quoted "0.0" is a string, which it refuses. */
static void aws_version(ctx_t *c, yaml_node_t *v, void *obj)
{
    const char *s = scalar_value(c, v, "0.0");
    double number;

    (void)obj;
    if (!s)
        return;
    if (yaml_number(v, &number) && number == 0.0)
        return;
    if (strcmp(s, "0.0") == 0)
        bad(c, v, "\"0.0\" in quotes is a string, and CodeDeploy wants the number: write "
            "version: 0.0");
    else
        bad(c, v, "unsupported version '%.40s' (an AWS appspec says version: 0.0)", s);
}

static void jd_version(ctx_t *c, yaml_node_t *v, void *obj)
{
    (void)obj;
    (void)scalar_value(c, v, "a version string");
}

static void parse_os(ctx_t *c, yaml_node_t *v, void *obj)
{
    const char *s = scalar_value(c, v, "linux");

    (void)obj;
    if (s && strcmp(s, "linux") != 0)
        bad(c, v, "unsupported os '%.40s' (kdeploy deploys to linux only)", s);
}

static void parse_file_exists(ctx_t *c, yaml_node_t *v, void *obj)
{
    kd_appspec_t *spec = obj;
    const char *s = scalar_value(c, v, "DISALLOW, OVERWRITE or RETAIN");

    if (!s)
        return;
    if (strcmp(s, "DISALLOW") == 0)
        spec->file_exists = KD_FILE_EXISTS_FAIL;
    else if (strcmp(s, "OVERWRITE") == 0)
        spec->file_exists = KD_FILE_EXISTS_OVERWRITE;
    else if (strcmp(s, "RETAIN") == 0)
        spec->file_exists = KD_FILE_EXISTS_KEEP;
    else
        bad(c, v, "must be DISALLOW, OVERWRITE or RETAIN, not '%.40s'", s);
}

static const keydef_t aws_keys[] = {
    {"version", aws_version, true},
    {"os", parse_os, true},
    {"files", parse_files, false},
    {"permissions", parse_perms, false},
    {"hooks", parse_hooks, false},
    {"file_exists_behavior", parse_file_exists, false},
    {NULL, NULL, false},
};

/* JD documents `files` as required; `os` is taken for files that began as
 * AWS appspecs. */
static const keydef_t jd_keys[] = {
    {"version", jd_version, false},
    {"os", parse_os, false},
    {"files", parse_files, true},
    {"permissions", parse_perms, false},
    {"hooks", parse_hooks, false},
    {"env", parse_env, false},
    {NULL, NULL, false},
};

static kd_appspec_format_t format_by_name(const char *path)
{
    const char *base = strrchr(path, '/');

    base = base ? base + 1 : path;
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
        if (strcmp(base, format_names[i].name) == 0)
            return format_names[i].format;
    return 0;
}

static void parse_root(ctx_t *c, const yaml_node_t *root)
{
    if (!root) {
        report(c, 1, "the file is empty");
        return;
    }
    if (root->type != YAML_MAPPING_NODE) {
        bad(c, root, "expected a mapping of appspec sections (version, files, hooks, ...)");
        return;
    }
    if (!c->spec->format)
        c->spec->format = map_get(c, root, "os") ? KD_APPSPEC_AWS : KD_APPSPEC_JD;
    walk_map(c, root, c->spec->format == KD_APPSPEC_AWS ? aws_keys : jd_keys, c->spec);
}

/* ---- loading ---------------------------------------------------------------- */

static int line_at_offset(const char *text, size_t len, size_t offset)
{
    int line = 1;

    for (size_t i = 0; i < offset && i < len; i++)
        line += text[i] == '\n';
    return line;
}

static void syntax_error(ctx_t *c, const yaml_parser_t *parser, const char *text, size_t len)
{
    int line = (int)parser->problem_mark.line + 1;
    int last = line_at_offset(text, len, len > 0 && text[len - 1] == '\n' ? len - 1 : len);
    size_t saved = field_key(c, "yaml");

    if (parser->error == YAML_MEMORY_ERROR)
        c->nomem = true;
    else if (parser->error == YAML_READER_ERROR)
        line = line_at_offset(text, len, parser->problem_offset);
    if (line > last) /* the end of the file, after its last newline */
        line = last;
    if (parser->context)
        report(c, line, "%s (%s, line %d)", parser->problem ? parser->problem : "syntax error",
               parser->context, (int)parser->context_mark.line + 1);
    else
        report(c, line, "%s", parser->problem ? parser->problem : "syntax error");
    field_pop(c, saved);
}

/* The anchor of an event that can carry one, or NULL. */
static const yaml_char_t *anchor_of(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return ev->data.alias.anchor;
    case YAML_SCALAR_EVENT:
        return ev->data.scalar.anchor;
    case YAML_SEQUENCE_START_EVENT:
        return ev->data.sequence_start.anchor;
    case YAML_MAPPING_START_EVENT:
        return ev->data.mapping_start.anchor;
    default:
        return NULL;
    }
}

/* Refuses anchors and aliases before the document is built: an alias makes
 * a tree of a few bytes into a walk of exponential size, and no appspec
 * needs one (the agent's Psych 4 refuses them too). Returns true if the
 * text has none. Syntax errors are left to the load that follows. */
static bool scan_aliases(ctx_t *c, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    bool clean = true, done = false;

    if (!yaml_parser_initialize(&parser)) {
        c->nomem = true;
        return false;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!done && clean && yaml_parser_parse(&parser, &ev)) {
        if (anchor_of(&ev)) {
            size_t saved = field_key(c, "yaml");

            report(c, (int)ev.start_mark.line + 1, "%s '%.40s': YAML anchors and aliases are "
                   "not allowed in an appspec", ev.type == YAML_ALIAS_EVENT ? "alias" : "anchor",
                   (const char *)anchor_of(&ev));
            field_pop(c, saved);
            clean = false;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return clean;
}

/* Loads the file's one document into doc and returns true, or reports the
 * syntax error (with its line) and returns false with doc not set. */
static bool load_document(ctx_t *c, const char *text, size_t len, yaml_document_t *doc)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    bool loaded = false;

    if (!yaml_parser_initialize(&parser)) {
        c->nomem = true;
        return false;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, doc)) {
        syntax_error(c, &parser, text, len);
        goto out;
    }
    loaded = true;
    if (!yaml_parser_load(&parser, &extra)) {
        syntax_error(c, &parser, text, len);
        goto out;
    }
    if (yaml_document_get_root_node(&extra))
        report(c, (int)extra.start_mark.line + 1, "a second YAML document (one is allowed)");
    yaml_document_delete(&extra);
out:
    yaml_parser_delete(&parser);
    return loaded;
}

static void parse_text(ctx_t *c, const char *text, size_t len)
{
    yaml_document_t doc;

    if (!scan_aliases(c, text, len) || !load_document(c, text, len, &doc))
        return;
    c->doc = &doc;
    parse_root(c, yaml_document_get_root_node(&doc));
    c->doc = NULL;
    yaml_document_delete(&doc);
}

/* Hands the collected errors to the caller: KD_OK if there were none. */
static kd_status_t finish(ctx_t *c, char *err, size_t errsz)
{
    if (c->nomem)
        return kd_err(err, errsz, KD_ENOMEM, "%s: out of memory", c->file);
    if (!c->nerrors)
        return KD_OK;
    if (c->dropped) {
        c->errors.max += 128;
        (void)kd_buf_printf(&c->errors, "%s: (%zu more errors not shown)\n", c->file,
                            c->dropped);
    }
    if (c->errors.len && c->errors.data[c->errors.len - 1] == '\n')
        c->errors.data[--c->errors.len] = '\0';
    return kd_err(err, errsz, KD_EINVAL, "%s", kd_buf_str(&c->errors));
}

static kd_appspec_t *spec_new(const char *path)
{
    kd_appspec_t *spec = calloc(1, sizeof *spec);

    if (spec && !(spec->path = strdup(path))) {
        free(spec);
        return NULL;
    }
    if (spec) {
        spec->format = format_by_name(path);
        spec->file_exists = KD_FILE_EXISTS_UNSET;
    }
    return spec;
}

kd_status_t kd_appspec_load_file(const char *path, kd_appspec_t **out, char *err, size_t errsz)
{
    kd_buf_t text = KD_BUF_INIT(APPSPEC_MAX_BYTES);
    ctx_t c = {.file = path, .errors = KD_BUF_INIT(ERRORS_MAX_BYTES),
               .warnings = KD_BUF_INIT(ERRORS_MAX_BYTES), .field = KD_BUF_INIT(0)};
    kd_status_t st;

    if (!path || !out)
        return kd_err(err, errsz, KD_EINVAL, "no appspec path");
    st = kd_read_file(path, &text, err, errsz);
    if (st == KD_ETOOLARGE)
        st = kd_err(err, errsz, st, "%s: larger than %u bytes", path, APPSPEC_MAX_BYTES);
    if (st != KD_OK)
        goto out;
    if (!(c.spec = spec_new(path))) {
        st = kd_err(err, errsz, KD_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    parse_text(&c, kd_buf_str(&text), text.len);
    st = finish(&c, err, errsz);
    if (st == KD_OK && !(c.spec->warnings = strdup(kd_buf_str(&c.warnings))))
        st = kd_err(err, errsz, KD_ENOMEM, "%s: out of memory", path);
    if (st == KD_OK) {
        c.spec->nwarnings = c.nwarnings;
        *out = c.spec;
        c.spec = NULL;
    }
out:
    kd_appspec_free(c.spec);
    kd_buf_free(&c.field);
    kd_buf_free(&c.warnings);
    kd_buf_free(&c.errors);
    kd_buf_free(&text);
    return st;
}

kd_status_t kd_appspec_find(const char *dir, char *path, size_t pathsz)
{
    char candidate[PATH_MAX];
    struct stat st;

    if (!dir || !path)
        return KD_EINVAL;
    for (size_t i = 0; kd_appspec_names[i]; i++) {
        if (kd_pathf(candidate, sizeof candidate, "%s/%s", dir, kd_appspec_names[i]) != KD_OK)
            return KD_EINVAL;
        if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode)) {
            if (strlen(candidate) >= pathsz)
                return KD_EINVAL;
            memcpy(path, candidate, strlen(candidate) + 1);
            return KD_OK;
        }
    }
    return KD_ENOTFOUND;
}

kd_status_t kd_appspec_load_dir(const char *dir, kd_appspec_t **out, char *err, size_t errsz)
{
    char path[PATH_MAX];
    kd_status_t st = kd_appspec_find(dir, path, sizeof path);

    if (st == KD_ENOTFOUND)
        return kd_err(err, errsz, st,
                      "%s: no appspec (looked for jdcloud-codedeploy.yml, appspec.yml, "
                      "appspec.yaml, appSpec.yml)", dir);
    if (st != KD_OK)
        return kd_err(err, errsz, st, "%s: path too long", dir ? dir : "(null)");
    return kd_appspec_load_file(path, out, err, errsz);
}

/* ---- the parsed spec ------------------------------------------------------- */

static void free_scripts(kd_appspec_script_t *s, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(s[i].location);
        free(s[i].command);
        free(s[i].runas);
    }
    free(s);
}

static void free_perms(kd_appspec_permission_t *pm, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(pm[i].object);
        free(pm[i].pattern);
        for (size_t j = 0; j < pm[i].except_count; j++)
            free(pm[i].except[j]);
        free(pm[i].except);
        free(pm[i].owner);
        free(pm[i].group);
        for (size_t j = 0; j < pm[i].acl_count; j++)
            free(pm[i].acls[j].name);
        free(pm[i].acls);
        if (pm[i].context) {
            free(pm[i].context->user);
            free(pm[i].context->type);
            free(pm[i].context->range);
            free(pm[i].context);
        }
    }
    free(pm);
}

void kd_appspec_free(kd_appspec_t *spec)
{
    if (!spec)
        return;
    for (size_t ev = 0; ev < KD_EVENT_MAX; ev++)
        free_scripts(spec->hooks[ev].scripts, spec->hooks[ev].count);
    for (size_t i = 0; i < spec->nfiles; i++) {
        free(spec->files[i].source);
        free(spec->files[i].destination);
    }
    free(spec->files);
    free_perms(spec->perms, spec->nperms);
    for (size_t i = 0; i < spec->nenv; i++) {
        free(spec->env[i].name);
        free(spec->env[i].value);
    }
    free(spec->env);
    free(spec->warnings);
    free(spec->path);
    free(spec);
}

kd_appspec_format_t kd_appspec_format(const kd_appspec_t *spec)
{
    return spec ? spec->format : 0;
}

const char *kd_appspec_format_name(kd_appspec_format_t format)
{
    switch (format) {
    case KD_APPSPEC_AWS:
        return "AWS";
    case KD_APPSPEC_JD:
        return "JD Cloud";
    }
    return "?";
}

const char *kd_appspec_path(const kd_appspec_t *spec)
{
    return spec ? spec->path : NULL;
}

const kd_appspec_script_t *kd_appspec_hook(const kd_appspec_t *spec, kd_event_t ev,
                                           size_t *count)
{
    bool known = spec && (int)ev > (int)KD_EVENT_NONE && (int)ev < KD_EVENT_MAX;

    if (count)
        *count = known ? spec->hooks[ev].count : 0;
    return known ? spec->hooks[ev].scripts : NULL;
}

const kd_appspec_file_t *kd_appspec_files(const kd_appspec_t *spec, size_t *count)
{
    if (count)
        *count = spec ? spec->nfiles : 0;
    return spec ? spec->files : NULL;
}

const kd_appspec_permission_t *kd_appspec_permissions(const kd_appspec_t *spec, size_t *count)
{
    if (count)
        *count = spec ? spec->nperms : 0;
    return spec ? spec->perms : NULL;
}

const kd_appspec_env_t *kd_appspec_env(const kd_appspec_t *spec, size_t *count)
{
    if (count)
        *count = spec ? spec->nenv : 0;
    return spec ? spec->env : NULL;
}

kd_file_exists_t kd_appspec_file_exists(const kd_appspec_t *spec)
{
    return spec ? spec->file_exists : KD_FILE_EXISTS_UNSET;
}

const char *kd_appspec_warnings(const kd_appspec_t *spec)
{
    return spec && spec->warnings ? spec->warnings : "";
}

size_t kd_appspec_warning_count(const kd_appspec_t *spec)
{
    return spec ? spec->nwarnings : 0;
}
