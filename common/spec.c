/* The deployment spec is loaded as a node tree (libyaml's document API), not
 * as a stream of events, so that checks spanning fields (strategy against
 * hosts, failure threshold against host count, blue against green) can
 * still name the line of the node they refuse. Every error is collected;
 * the caller gets them sorted by line. YAML aliases are refused (an event
 * pass of their own finds them), so every node stands where it is written. */
#include "spec.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "buf.h"
#include "config.h"
#include "fsutil.h"
#include "spec_check.h"
#include "strmap.h"

#define SPEC_FILE_MAX ((size_t)4 * 1024 * 1024)
/* Past this many, errors are counted but not listed: one bad file should
 * not bury the first, most useful ones. */
#define SPEC_ERRORS_MAX 100
/* Field paths are built only from the spec's own key names and list
 * indexes; the longest is "blue_green.green.hosts[<20 digits>]". */
#define SPEC_PATH_MAX 64
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

typedef Kdeploy__V1__DeploymentSpec spec_t;

typedef struct spec_error {
    size_t line;
    size_t seq;  /* keeps errors on one line in the order they were found */
    char *text;
} spec_error_t;

typedef struct spec_ctx {
    const char *name;
    bool group;    /* a deployment group's file: a spec without its revision */
    yaml_document_t *doc;
    spec_error_t *errors;
    size_t nerrors;
    size_t dropped;
    bool aliases;  /* the text uses YAML aliases: refused, not walked */
    bool oom;
} spec_ctx_t;

/* A mapping's key as found: the key node (for its line) and the value,
 * NULL when the key is absent or was given no value. */
typedef struct slot {
    const yaml_node_t *key;
    const yaml_node_t *value;
} slot_t;

enum {
    T_APPLICATION, T_GROUP, T_HOSTS, T_REVISION, T_STRATEGY, T_CONCURRENCY,
    T_FAILURE_THRESHOLD, T_AUTO_ROLLBACK, T_FILE_EXISTS, T_IGNORE_STOP_FAILURES,
    T_SCRIPTS, T_TIMEOUTS, T_LOAD_BALANCER, T_BLUE_GREEN, T_ALLOW_UNKNOWN_HOSTS,
    T_DEPLOYMENT_CONFIG, T_MINIMUM_HEALTHY_HOSTS, T_COUNT
};
static const char *const top_keys[T_COUNT] = {
    "application", "group", "hosts", "revision", "strategy", "concurrency",
    "failure_threshold", "auto_rollback", "file_exists", "ignore_stop_failures",
    "scripts", "timeouts", "load_balancer", "blue_green", "allow_unknown_hosts",
    "deployment_config", "minimum_healthy_hosts",
};

/* `hosts:` as a mapping selects hosts by their announced labels. */
enum { H_LABELS, H_COUNT };
static const char *const selector_keys[H_COUNT] = {"labels"};

enum { R_URL, R_SHA256, R_MD5, R_LABEL, R_COUNT };
static const char *const revision_keys[R_COUNT] = {"url", "sha256", "md5", "label"};

enum { S_STOP, S_START, S_CHECK, S_COUNT };
static const char *const script_keys[S_COUNT] = {"stop", "start", "check"};

enum { TO_HOST, TO_DEPLOYMENT, TO_COUNT };
static const char *const timeout_keys[TO_COUNT] = {"host", "deployment"};

enum { L_SERVER_GROUP, L_SERVICE, L_COUNT };
static const char *const lb_keys[L_COUNT] = {"server_group", "service"};

enum { BG_BLUE, BG_GREEN, BG_COUNT };
static const char *const bg_keys[BG_COUNT] = {"blue", "green"};

enum { G_SERVER_GROUP, G_HOSTS, G_COUNT };
static const char *const group_keys[G_COUNT] = {"server_group", "hosts"};

static const char *const strategy_words[] = {"rolling", "blue_green"};
static const Kdeploy__V1__Strategy strategy_values[] = {
    KDEPLOY__V1__STRATEGY__ROLLING, KDEPLOY__V1__STRATEGY__BLUE_GREEN};
static const char *const config_words[] = {"OneAtATime", "HalfAtATime", "AllAtOnce"};
static const Kdeploy__V1__DeploymentConfig config_values[] = {
    KDEPLOY__V1__DEPLOYMENT_CONFIG__ONE_AT_A_TIME, KDEPLOY__V1__DEPLOYMENT_CONFIG__HALF_AT_A_TIME,
    KDEPLOY__V1__DEPLOYMENT_CONFIG__ALL_AT_ONCE};
static const char *const file_exists_words[] = {"fail", "overwrite", "keep"};
static const Kdeploy__V1__FileExistsPolicy file_exists_values[] = {
    KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_FAIL,
    KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_OVERWRITE,
    KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_KEEP};

/* ---- errors ------------------------------------------------------------ */

static size_t line_of(const yaml_node_t *n)
{
    return n->start_mark.line + 1;
}

static void spec_error(spec_ctx_t *ctx, size_t line, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records "NAME:LINE: FIELD: message" (no FIELD for whole-file errors). */
static void spec_error(spec_ctx_t *ctx, size_t line, const char *field, const char *fmt, ...)
{
    kd_buf_t text = KD_BUF_INIT(0);
    kd_status_t st;
    va_list ap;

    if (ctx->nerrors == SPEC_ERRORS_MAX) {
        ctx->dropped++;
        return;
    }
    if (!ctx->errors && !(ctx->errors = calloc(SPEC_ERRORS_MAX, sizeof *ctx->errors))) {
        ctx->oom = true;
        return;
    }
    st = kd_buf_printf(&text, "%s:%zu: %s%s", ctx->name, line, field, *field ? ": " : "");
    if (st == KD_OK) {
        va_start(ap, fmt);
        st = kd_buf_vprintf(&text, fmt, ap);
        va_end(ap);
    }
    if (st != KD_OK) {
        ctx->oom = true;
        kd_buf_free(&text);
        return;
    }
    ctx->errors[ctx->nerrors].line = line;
    ctx->errors[ctx->nerrors].seq = ctx->nerrors;
    ctx->errors[ctx->nerrors].text = kd_buf_steal(&text);
    ctx->nerrors++;
}

static void yaml_problem(spec_ctx_t *ctx, const yaml_parser_t *parser)
{
    const char *problem = parser->problem;

    /* libyaml names every syntax problem; some of its allocation failures
     * set no error at all. */
    if (parser->error == YAML_MEMORY_ERROR || !problem) {
        ctx->oom = true;
    } else if (parser->error == YAML_READER_ERROR) {
        spec_error(ctx, parser->mark.line + 1, "", "%s (at byte %zu)", problem,
                   parser->problem_offset);
    } else if (parser->context) {
        spec_error(ctx, parser->problem_mark.line + 1, "", "%s (column %zu, %s at line %zu)",
                   problem, parser->problem_mark.column + 1, parser->context,
                   parser->context_mark.line + 1);
    } else {
        spec_error(ctx, parser->problem_mark.line + 1, "", "%s (column %zu)", problem,
                   parser->problem_mark.column + 1);
    }
}

static int error_cmp(const void *a, const void *b)
{
    const spec_error_t *x = a, *y = b;

    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* KD_OK when nothing was found wrong; else every error into err, by line. */
static kd_status_t spec_report(spec_ctx_t *ctx, char *err, size_t errsz)
{
    kd_buf_t all = KD_BUF_INIT(0);
    kd_status_t st = KD_OK;

    if (ctx->oom)
        return kd_err(err, errsz, KD_ENOMEM, "%s: out of memory", ctx->name);
    if (!ctx->nerrors)
        return KD_OK;
    qsort(ctx->errors, ctx->nerrors, sizeof *ctx->errors, error_cmp);
    for (size_t i = 0; i < ctx->nerrors && st == KD_OK; i++)
        st = kd_buf_printf(&all, "%s%s", i ? "\n" : "", ctx->errors[i].text);
    if (st == KD_OK && ctx->dropped)
        st = kd_buf_printf(&all, "\n%s: %zu more errors not shown", ctx->name, ctx->dropped);
    if (st == KD_OK)
        st = kd_err(err, errsz, KD_EINVAL, "%s", kd_buf_str(&all));
    else
        st = kd_err(err, errsz, KD_ENOMEM, "%s: out of memory", ctx->name);
    kd_buf_free(&all);
    return st;
}

static void spec_ctx_free(spec_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nerrors; i++)
        free(ctx->errors[i].text);
    free(ctx->errors);
}

/* ---- YAML nodes ---------------------------------------------------------- */

static const yaml_node_t *node_at(const spec_ctx_t *ctx, yaml_node_item_t index)
{
    return yaml_document_get_node(ctx->doc, index);
}

static size_t items_of(const yaml_node_t *seq)
{
    return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

/* A plain "", "~" or "null": a key written with no value. */
static bool is_null(const yaml_node_t *n)
{
    const char *v;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    v = (const char *)n->data.scalar.value;
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static const char *kind_of(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a single value";
    }
}

/* The text of a scalar node; NULL (reported, saying `what` was expected)
 * for a mapping, a list or a text holding a NUL byte. */
static const char *scalar_text(spec_ctx_t *ctx, const yaml_node_t *n, const char *path,
                               const char *what)
{
    const char *v;

    if (n->type != YAML_SCALAR_NODE) {
        spec_error(ctx, line_of(n), path, "expected %s, not %s", what, kind_of(n));
        return NULL;
    }
    v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length) {
        spec_error(ctx, line_of(n), path, "contains a NUL byte");
        return NULL;
    }
    return v;
}

static void join(char *out, size_t outsz, const char *prefix, const char *key)
{
    snprintf(out, outsz, "%s%s%s", prefix, *prefix ? "." : "", key);
}

/* The longest list of keys one mapping takes, for the did-you-mean list. */
#define KEYS_MAX 24

static void unknown_key(spec_ctx_t *ctx, const yaml_node_t *k, const char *prefix,
                        const char *const *keys, size_t nkeys)
{
    kd_buf_t field = KD_BUF_INIT(0);
    const char *cands[KEYS_MAX + 1], *near;
    size_t n = nkeys < KEYS_MAX ? nkeys : KEYS_MAX;

    memcpy(cands, keys, n * sizeof *cands);
    cands[n] = NULL;
    near = kd_did_you_mean((const char *)k->data.scalar.value, cands);
    if (kd_buf_printf(&field, "%s%s%s", prefix, *prefix ? "." : "",
                      (const char *)k->data.scalar.value) != KD_OK)
        ctx->oom = true;
    else if (near)
        spec_error(ctx, line_of(k), kd_buf_str(&field), "unknown key (did you mean %s?)", near);
    else
        spec_error(ctx, line_of(k), kd_buf_str(&field), "unknown key");
    kd_buf_free(&field);
}

/* Sorts a mapping's keys into slots by the names in keys[]; refuses unknown
 * and repeated keys and keys given no value. */
static void walk_mapping(spec_ctx_t *ctx, const yaml_node_t *map, const char *prefix,
                         const char *const *keys, size_t nkeys, slot_t *slots)
{
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = node_at(ctx, p->key), *v = node_at(ctx, p->value);
        char field[SPEC_PATH_MAX];
        size_t i = 0;

        if (k->type != YAML_SCALAR_NODE) {
            spec_error(ctx, line_of(k), prefix, "keys must be plain words, not %s", kind_of(k));
            continue;
        }
        while (i < nkeys && strcmp(keys[i], (const char *)k->data.scalar.value) != 0)
            i++;
        if (i == nkeys) {
            unknown_key(ctx, k, prefix, keys, nkeys);
            continue;
        }
        join(field, sizeof field, prefix, keys[i]);
        if (slots[i].key) {
            spec_error(ctx, line_of(k), field, "duplicate key (first at line %zu)",
                       line_of(slots[i].key));
            continue;
        }
        slots[i].key = k;
        if (is_null(v))
            spec_error(ctx, line_of(k), field, "no value given");
        else
            slots[i].value = v;
    }
}

/* Reports a required key that is absent (at owner_line, the line of the
 * mapping's own key); true when the key has a value to read. */
static bool require(spec_ctx_t *ctx, const slot_t *s, size_t owner_line, const char *path)
{
    if (!s->key)
        spec_error(ctx, owner_line, path, "is required");
    return s->value != NULL;
}

/* The slot's value if it is a mapping; NULL when absent, null or (reported)
 * something else. */
static const yaml_node_t *slot_mapping(spec_ctx_t *ctx, const slot_t *s, const char *path)
{
    if (!s->value)
        return NULL;
    if (s->value->type != YAML_MAPPING_NODE) {
        spec_error(ctx, line_of(s->value), path, "expected a mapping of keys to values, not %s",
                   kind_of(s->value));
        return NULL;
    }
    return s->value;
}

/* ---- values -------------------------------------------------------------- */

static bool set_string(spec_ctx_t *ctx, char **dst, const char *text)
{
    char *copy = strdup(text);

    if (!copy) {
        ctx->oom = true;
        return false;
    }
    *dst = copy;
    return true;
}

static void get_string(spec_ctx_t *ctx, const yaml_node_t *n, const char *path, const char *what,
                       char **dst)
{
    const char *v = scalar_text(ctx, n, path, what);

    if (v)
        set_string(ctx, dst, v);
}

/* Names become parts of cache dirs, Kafka keys and HAProxy names: a small,
 * safe character set, and no "." or ".." lookalikes. */
static bool check_name(spec_ctx_t *ctx, const yaml_node_t *n, const char *path, const char *v)
{
    size_t len = strlen(v);
    const char *problem = NULL;

    if (!len)
        problem = "must not be empty";
    else if (len > KD_SPEC_NAME_MAX)
        problem = "is longer than 128 characters";
    else if (v[0] == '.')
        problem = "must not start with '.'";
    else if (strspn(v, NAME_CHARS) != len)
        problem = "may hold only letters, digits, '.', '_' and '-'";
    if (!problem)
        return true;
    if (len)
        spec_error(ctx, line_of(n), path, "\"%.80s\" %s", v, problem);
    else
        spec_error(ctx, line_of(n), path, "%s", problem);
    return false;
}

static void get_name(spec_ctx_t *ctx, const yaml_node_t *n, const char *path, char **dst)
{
    const char *v = scalar_text(ctx, n, path, "a name");

    if (v && check_name(ctx, n, path, v))
        set_string(ctx, dst, v);
}

/* Decimal digits only (no sign, no spaces), at most UINT32_MAX. */
static bool parse_u32(const char *s, size_t len, uint32_t *out)
{
    uint64_t v = 0;

    if (!len)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > UINT32_MAX)
            return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* A positive whole number into *out; false (reported) otherwise. */
static bool get_positive(spec_ctx_t *ctx, const yaml_node_t *n, const char *path, uint32_t *out)
{
    const char *v = scalar_text(ctx, n, path, "a positive whole number");
    uint32_t u;

    if (!v)
        return false;
    if (!parse_u32(v, strlen(v), &u) || u == 0) {
        spec_error(ctx, line_of(n), path, "expected a whole number from 1 to %u, not \"%.80s\"",
                   UINT32_MAX, v);
        return false;
    }
    *out = u;
    return true;
}

static void get_bool(spec_ctx_t *ctx, const slot_t *s, const char *path, protobuf_c_boolean *out)
{
    const char *v;

    if (!s->value || !(v = scalar_text(ctx, s->value, path, "true or false")))
        return;
    if (strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0)
        *out = 1;
    else if (strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0)
        *out = 0;
    else
        spec_error(ctx, line_of(s->value), path, "expected true or false, not \"%.80s\"", v);
}

/* One of words[] into *index; false when absent, null or (reported) not one
 * of them; choices spells them out for the message. */
static bool get_word(spec_ctx_t *ctx, const slot_t *s, const char *path, const char *const *words,
                     size_t nwords, const char *choices, size_t *index)
{
    const char *v;

    if (!s->value || !(v = scalar_text(ctx, s->value, path, choices)))
        return false;
    for (size_t i = 0; i < nwords; i++)
        if (strcmp(v, words[i]) == 0) {
            *index = i;
            return true;
        }
    spec_error(ctx, line_of(s->value), path, "expected %s, not \"%.80s\"", choices, v);
    return false;
}

/* ---- revision ------------------------------------------------------------ */

static void get_url(spec_ctx_t *ctx, const yaml_node_t *n, Kdeploy__V1__Revision *rev)
{
    static const char *const schemes[] = {"http://", "https://", "file://"};
    const char *v = scalar_text(ctx, n, "revision.url", "a URL");
    size_t i, len = 0;

    if (!v)
        return;
    for (i = 0; i < sizeof schemes / sizeof *schemes; i++)
        if (strncasecmp(v, schemes[i], (len = strlen(schemes[i]))) == 0)
            break;
    if (i == sizeof schemes / sizeof *schemes) {
        spec_error(ctx, line_of(n), "revision.url",
                   "\"%.80s\" is not an http://, https:// or file:// URL", v);
        return;
    }
    if (!v[len]) {
        spec_error(ctx, line_of(n), "revision.url", "nothing follows %s", schemes[i]);
        return;
    }
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            spec_error(ctx, line_of(n), "revision.url",
                       "must not hold spaces or control characters");
            return;
        }
    set_string(ctx, &rev->url, v);
}

/* A hex digest of hexlen digits, stored lower-case. */
static void get_digest(spec_ctx_t *ctx, const yaml_node_t *n, const char *path, size_t hexlen,
                       char **dst)
{
    const char *v = scalar_text(ctx, n, path, "a hex digest");

    if (!v)
        return;
    if (strlen(v) != hexlen || strspn(v, "0123456789abcdefABCDEF") != hexlen) {
        spec_error(ctx, line_of(n), path, "expected %zu hex digits, not \"%.80s\"", hexlen, v);
        return;
    }
    if (set_string(ctx, dst, v))
        for (char *p = *dst; *p; p++)
            *p = (char)tolower((unsigned char)*p);
}

static void get_digests(spec_ctx_t *ctx, const slot_t *r, size_t owner_line,
                        Kdeploy__V1__Revision *rev)
{
    if (r[R_SHA256].key && r[R_MD5].key) {
        spec_error(ctx, line_of(r[R_MD5].key), "revision.md5",
                   "give revision.sha256 or revision.md5, not both");
        return;
    }
    if (!r[R_SHA256].key && !r[R_MD5].key) {
        spec_error(ctx, owner_line, "revision.sha256", "is required (or revision.md5)");
        return;
    }
    if (r[R_SHA256].value)
        get_digest(ctx, r[R_SHA256].value, "revision.sha256", 64, &rev->sha256);
    if (r[R_MD5].value)
        get_digest(ctx, r[R_MD5].value, "revision.md5", 32, &rev->md5);
}

static void get_revision(spec_ctx_t *ctx, const slot_t *s, size_t owner_line, spec_t *spec)
{
    slot_t r[R_COUNT] = {{0}};
    const yaml_node_t *map;
    Kdeploy__V1__Revision *rev;

    if (ctx->group) {
        if (s->key)
            spec_error(ctx, line_of(s->key), "revision",
                       "a group holds no revision: give it to kdeploy create --group NAME "
                       "--revision URL --sha256 HEX");
        return;
    }
    require(ctx, s, owner_line, "revision");
    if (!(map = slot_mapping(ctx, s, "revision")))
        return;
    if (!(rev = malloc(sizeof *rev))) {
        ctx->oom = true;
        return;
    }
    kdeploy__v1__revision__init(rev);
    spec->revision = rev;
    walk_mapping(ctx, map, "revision", revision_keys, R_COUNT, r);
    if (require(ctx, &r[R_URL], line_of(s->key), "revision.url"))
        get_url(ctx, r[R_URL].value, rev);
    get_digests(ctx, r, line_of(s->key), rev);
    if (r[R_LABEL].value)
        get_string(ctx, r[R_LABEL].value, "revision.label", "a label", &rev->label);
}

/* ---- concurrency --------------------------------------------------------- */

/* "N" (N >= 1 hosts) or "P%" (1 <= P <= 100). */
static bool parse_concurrency(const char *v, Kdeploy__V1__Concurrency *c)
{
    size_t len = strlen(v);
    uint32_t n;

    if (len && v[len - 1] == '%') {
        if (!parse_u32(v, len - 1, &n) || n < 1 || n > 100)
            return false;
        c->value_case = KDEPLOY__V1__CONCURRENCY__VALUE_PERCENT;
        c->percent = n;
        return true;
    }
    if (!parse_u32(v, len, &n) || n == 0)
        return false;
    c->value_case = KDEPLOY__V1__CONCURRENCY__VALUE_HOSTS;
    c->hosts = n;
    return true;
}

/* Appends one value to spec->concurrency, which has room for it. A NULL
 * node appends the default, one host. */
static void add_concurrency(spec_ctx_t *ctx, const yaml_node_t *n, const char *path, spec_t *spec)
{
    const char *v = "1";
    Kdeploy__V1__Concurrency *c;

    if (n && !(v = scalar_text(ctx, n, path, "a number of hosts or a percentage")))
        return;
    if (!(c = malloc(sizeof *c))) {
        ctx->oom = true;
        return;
    }
    kdeploy__v1__concurrency__init(c);
    if (!parse_concurrency(v, c)) {
        spec_error(ctx, line_of(n), path,
                   "expected a number of hosts (1 or more) or a percentage from 1%% to 100%%, "
                   "not \"%.80s\"", v);
        free(c);
        return;
    }
    spec->concurrency[spec->n_concurrency++] = c;
}

static void get_concurrency(spec_ctx_t *ctx, const slot_t *s, spec_t *spec)
{
    const yaml_node_t *n = s->value;
    bool ramp = n && n->type == YAML_SEQUENCE_NODE;
    size_t count = ramp ? items_of(n) : 1;
    char path[SPEC_PATH_MAX];

    if (s->key && !n)
        return;  /* given no value: reported */
    if (!count) {
        spec_error(ctx, line_of(n), "concurrency", "a ramp must list at least one value");
        return;
    }
    if (!(spec->concurrency = calloc(count, sizeof *spec->concurrency))) {
        ctx->oom = true;
        return;
    }
    if (!ramp) {
        add_concurrency(ctx, n, "concurrency", spec);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        snprintf(path, sizeof path, "concurrency[%zu]", i);
        add_concurrency(ctx, node_at(ctx, n->data.sequence.items.start[i]), path, spec);
    }
}

/* ---- hosts and groups ---------------------------------------------------- */

static void add_host(spec_ctx_t *ctx, const yaml_node_t *item, const char *field,
                     kd_strmap_t *seen, char **hosts, size_t *count)
{
    char line[24];
    const char *v, *first;

    if (!(v = scalar_text(ctx, item, field, "a host name")) || !check_name(ctx, item, field, v))
        return;
    if ((first = kd_strmap_get(seen, v))) {
        spec_error(ctx, line_of(item), field, "\"%s\" is listed twice (first at line %s)", v,
                   first);
        return;
    }
    snprintf(line, sizeof line, "%zu", line_of(item));
    if (kd_strmap_set(seen, v, line) != KD_OK || !(hosts[*count] = strdup(v))) {
        ctx->oom = true;
        return;
    }
    (*count)++;
}

/* A non-empty list of distinct host names into *hosts / *count. */
static void get_host_list(spec_ctx_t *ctx, const yaml_node_t *n, const char *path, char ***hosts,
                          size_t *count)
{
    char field[SPEC_PATH_MAX];
    kd_strmap_t *seen;
    size_t items;

    if (n->type != YAML_SEQUENCE_NODE) {
        spec_error(ctx, line_of(n), path,
                   "expected a list of host names or {labels: {...}}, not %s", kind_of(n));
        return;
    }
    if (!(items = items_of(n))) {
        spec_error(ctx, line_of(n), path, "must list at least one host");
        return;
    }
    if (!(*hosts = calloc(items, sizeof **hosts)) || !(seen = kd_strmap_new())) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < items; i++) {
        snprintf(field, sizeof field, "%s[%zu]", path, i);
        add_host(ctx, node_at(ctx, n->data.sequence.items.start[i]), field, seen, *hosts, count);
    }
    kd_strmap_free(seen);
}

/* One `labels:` entry: a key and a value of the label grammar. */
static void add_label(spec_ctx_t *ctx, const yaml_node_t *k, const yaml_node_t *v, spec_t *spec)
{
    char field[SPEC_PATH_MAX + KD_LABEL_LEN_MAX];
    const char *key, *value;
    Kdeploy__V1__HostLabel *l;

    if (!(key = scalar_text(ctx, k, "hosts.labels", "a label name")))
        return;
    snprintf(field, sizeof field, "hosts.labels.%.63s", key);
    if (!kd_label_key_valid(key)) {
        spec_error(ctx, line_of(k), "hosts.labels", "\"%.80s\" is not a label name (%s)", key,
                   KD_LABEL_GRAMMAR);
        return;
    }
    if (!(value = scalar_text(ctx, v, field, "a label value")))
        return;
    if (!kd_label_value_valid(value)) {
        spec_error(ctx, line_of(v), field, "\"%.80s\" is not a label value (%s)", value,
                   KD_LABEL_GRAMMAR);
        return;
    }
    for (size_t i = 0; i < spec->n_host_selector; i++)
        if (strcmp(spec->host_selector[i]->key, key) == 0) {
            spec_error(ctx, line_of(k), field, "given twice");
            return;
        }
    if (!(l = malloc(sizeof *l))) {
        ctx->oom = true;
        return;
    }
    kdeploy__v1__host_label__init(l);
    spec->host_selector[spec->n_host_selector++] = l;
    set_string(ctx, &l->key, key);
    set_string(ctx, &l->value, value);
}

/* `hosts: {labels: {role: web, zone: a}}`: every host announced with all
 * of these labels, resolved by the planner at acceptance. */
static void get_host_selector(spec_ctx_t *ctx, const yaml_node_t *n, spec_t *spec)
{
    slot_t h[H_COUNT] = {{0}};
    const yaml_node_t *labels;
    size_t count;

    walk_mapping(ctx, n, "hosts", selector_keys, H_COUNT, h);
    if (!require(ctx, &h[H_LABELS], line_of(n), "hosts.labels"))
        return;
    if (!(labels = slot_mapping(ctx, &h[H_LABELS], "hosts.labels")))
        return;
    count = (size_t)(labels->data.mapping.pairs.top - labels->data.mapping.pairs.start);
    if (!count || count > KD_LABEL_MAX) {
        spec_error(ctx, line_of(labels), "hosts.labels", "expected 1 to %d labels, not %zu",
                   KD_LABEL_MAX, count);
        return;
    }
    if (!(spec->host_selector = calloc(count, sizeof *spec->host_selector))) {
        ctx->oom = true;
        return;
    }
    for (const yaml_node_pair_t *p = labels->data.mapping.pairs.start;
         p < labels->data.mapping.pairs.top; p++)
        add_label(ctx, node_at(ctx, p->key), node_at(ctx, p->value), spec);
}

/* One blue_green group; its keys are left in g for the cross-group checks. */
static Kdeploy__V1__BlueGreenGroup *get_group(spec_ctx_t *ctx, const slot_t *s, size_t owner_line,
                                              const char *path, slot_t *g)
{
    char field[SPEC_PATH_MAX];
    const yaml_node_t *map;
    Kdeploy__V1__BlueGreenGroup *grp;

    require(ctx, s, owner_line, path);
    if (!(map = slot_mapping(ctx, s, path)))
        return NULL;
    if (!(grp = malloc(sizeof *grp))) {
        ctx->oom = true;
        return NULL;
    }
    kdeploy__v1__blue_green_group__init(grp);
    walk_mapping(ctx, map, path, group_keys, G_COUNT, g);
    join(field, sizeof field, path, "server_group");
    if (require(ctx, &g[G_SERVER_GROUP], line_of(s->key), field))
        get_name(ctx, g[G_SERVER_GROUP].value, field, &grp->server_group);
    join(field, sizeof field, path, "hosts");
    if (require(ctx, &g[G_HOSTS], line_of(s->key), field))
        get_host_list(ctx, g[G_HOSTS].value, field, &grp->hosts, &grp->n_hosts);
    return grp;
}

/* The two groups must be apart: distinct server groups, no shared host.
 * Errors point at the green side, the one written second. */
static void check_groups_apart(spec_ctx_t *ctx, const Kdeploy__V1__BlueGreen *bg,
                               const slot_t *green)
{
    const yaml_node_t *list = green[G_HOSTS].value;
    char field[SPEC_PATH_MAX];
    kd_strmap_t *blue;

    if (*bg->blue->server_group && strcmp(bg->blue->server_group, bg->green->server_group) == 0 &&
        green[G_SERVER_GROUP].value)
        spec_error(ctx, line_of(green[G_SERVER_GROUP].value), "blue_green.green.server_group",
                   "\"%s\" is also blue's server group: the groups must differ",
                   bg->green->server_group);
    if (!list || list->type != YAML_SEQUENCE_NODE || !bg->blue->n_hosts)
        return;
    if (!(blue = kd_strmap_new())) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < bg->blue->n_hosts; i++)
        if (kd_strmap_set(blue, bg->blue->hosts[i], "") != KD_OK)
            ctx->oom = true;
    for (size_t i = 0; i < items_of(list); i++) {
        const yaml_node_t *item = node_at(ctx, list->data.sequence.items.start[i]);

        if (item->type != YAML_SCALAR_NODE ||
            !kd_strmap_get(blue, (const char *)item->data.scalar.value))
            continue;
        snprintf(field, sizeof field, "blue_green.green.hosts[%zu]", i);
        spec_error(ctx, line_of(item), field, "\"%s\" is also in blue_green.blue.hosts",
                   (const char *)item->data.scalar.value);
    }
    kd_strmap_free(blue);
}

static void get_blue_green(spec_ctx_t *ctx, const slot_t *s, spec_t *spec)
{
    slot_t b[BG_COUNT] = {{0}}, blue[G_COUNT] = {{0}}, green[G_COUNT] = {{0}};
    const yaml_node_t *map;
    Kdeploy__V1__BlueGreen *bg;

    if (!(map = slot_mapping(ctx, s, "blue_green")))
        return;
    if (!(bg = malloc(sizeof *bg))) {
        ctx->oom = true;
        return;
    }
    kdeploy__v1__blue_green__init(bg);
    spec->blue_green = bg;
    walk_mapping(ctx, map, "blue_green", bg_keys, BG_COUNT, b);
    bg->blue = get_group(ctx, &b[BG_BLUE], line_of(s->key), "blue_green.blue", blue);
    bg->green = get_group(ctx, &b[BG_GREEN], line_of(s->key), "blue_green.green", green);
    if (bg->blue && bg->green)
        check_groups_apart(ctx, bg, green);
}

/* hosts for rolling, blue_green for blue-green, each refused with the other.
 * strategy is UNSPECIFIED when the spec's own was bad: then whatever is
 * given is checked, and nothing is required or refused. */
static void get_targets(spec_ctx_t *ctx, const slot_t *s, size_t owner_line,
                        Kdeploy__V1__Strategy strategy, spec_t *spec)
{
    const slot_t *hosts = &s[T_HOSTS], *bg = &s[T_BLUE_GREEN];

    if (hosts->key && strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN)
        spec_error(ctx, line_of(hosts->key), "hosts",
                   "not allowed with strategy blue_green: the hosts are those of "
                   "blue_green.blue and blue_green.green");
    else if (!hosts->key && strategy == KDEPLOY__V1__STRATEGY__ROLLING)
        spec_error(ctx, owner_line, "hosts", "is required for a rolling deployment");
    else if (hosts->value && hosts->value->type == YAML_MAPPING_NODE)
        get_host_selector(ctx, hosts->value, spec);
    else if (hosts->value)
        get_host_list(ctx, hosts->value, "hosts", &spec->hosts, &spec->n_hosts);

    if (bg->key && strategy == KDEPLOY__V1__STRATEGY__ROLLING)
        spec_error(ctx, line_of(bg->key), "blue_green", "only allowed with strategy blue_green");
    else if (!bg->key && strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN)
        spec_error(ctx, owner_line, "blue_green", "is required for strategy blue_green");
    else
        get_blue_green(ctx, bg, spec);
}

/* ---- the other top-level keys -------------------------------------------- */

typedef enum { KEY_OPTIONAL, KEY_REQUIRED, KEY_REFUSED } key_need_t;

/* One load_balancer name, which the strategy requires or refuses (or, when
 * the strategy itself was bad, leaves optional). */
static void get_lb_name(spec_ctx_t *ctx, const slot_t *s, size_t owner_line, const char *path,
                        key_need_t need, const char *refusal, char **dst)
{
    if (need == KEY_REFUSED && s->key)
        spec_error(ctx, line_of(s->key), path, "%s", refusal);
    else if (need == KEY_REQUIRED ? require(ctx, s, owner_line, path) : s->value != NULL)
        get_name(ctx, s->value, path, dst);
}

static void get_load_balancer(spec_ctx_t *ctx, const slot_t *s, size_t owner_line,
                              Kdeploy__V1__Strategy strategy, spec_t *spec)
{
    bool bg = strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN;
    bool rolling = strategy == KDEPLOY__V1__STRATEGY__ROLLING;
    slot_t l[L_COUNT] = {{0}};
    const yaml_node_t *map;
    Kdeploy__V1__LoadBalancer *lb;

    if (!s->key && bg)
        spec_error(ctx, owner_line, "load_balancer.service", "is required for strategy blue_green");
    if (!(map = slot_mapping(ctx, s, "load_balancer")))
        return;
    if (!(lb = malloc(sizeof *lb))) {
        ctx->oom = true;
        return;
    }
    kdeploy__v1__load_balancer__init(lb);
    spec->load_balancer = lb;
    walk_mapping(ctx, map, "load_balancer", lb_keys, L_COUNT, l);
    get_lb_name(ctx, &l[L_SERVER_GROUP], line_of(s->key), "load_balancer.server_group",
                bg ? KEY_REFUSED : rolling ? KEY_REQUIRED : KEY_OPTIONAL,
                "not used with strategy blue_green: the server groups are blue_green's",
                &lb->server_group);
    get_lb_name(ctx, &l[L_SERVICE], line_of(s->key), "load_balancer.service",
                rolling ? KEY_REFUSED : bg ? KEY_REQUIRED : KEY_OPTIONAL,
                "only used with strategy blue_green", &lb->service);
}

static Kdeploy__V1__Strategy get_strategy(spec_ctx_t *ctx, const slot_t *s, spec_t *spec)
{
    size_t i;

    spec->strategy = KDEPLOY__V1__STRATEGY__ROLLING;
    if (!s->key)
        return spec->strategy;
    if (!get_word(ctx, s, "strategy", strategy_words,
                  sizeof strategy_words / sizeof *strategy_words, "rolling or blue_green", &i))
        return KDEPLOY__V1__STRATEGY__STRATEGY_UNSPECIFIED;
    return spec->strategy = strategy_values[i];
}

static void get_file_exists(spec_ctx_t *ctx, const slot_t *s, spec_t *spec)
{
    size_t i;

    /* Left out, it stays unset: the worker then takes the appspec's
     * file_exists_behavior, else fails on an existing file, as AWS does. */
    spec->file_exists = KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_UNSPECIFIED;
    if (get_word(ctx, s, "file_exists", file_exists_words,
                 sizeof file_exists_words / sizeof *file_exists_words, "fail, overwrite or keep", &i))
        spec->file_exists = file_exists_values[i];
}

static void get_scripts(spec_ctx_t *ctx, const slot_t *s, spec_t *spec)
{
    slot_t f[S_COUNT] = {{0}};
    const yaml_node_t *map;
    Kdeploy__V1__FormScripts *fs;
    char path[SPEC_PATH_MAX];
    char **dst[S_COUNT];

    if (!(map = slot_mapping(ctx, s, "scripts")))
        return;
    if (!(fs = malloc(sizeof *fs))) {
        ctx->oom = true;
        return;
    }
    kdeploy__v1__form_scripts__init(fs);
    spec->scripts = fs;
    dst[S_STOP] = &fs->stop;
    dst[S_START] = &fs->start;
    dst[S_CHECK] = &fs->check;
    walk_mapping(ctx, map, "scripts", script_keys, S_COUNT, f);
    for (size_t i = 0; i < S_COUNT; i++) {
        if (!f[i].value)
            continue;
        join(path, sizeof path, "scripts", script_keys[i]);
        get_string(ctx, f[i].value, path, "the text of a script", dst[i]);
    }
}

static void get_timeouts(spec_ctx_t *ctx, const slot_t *s, spec_t *spec)
{
    slot_t t[TO_COUNT] = {{0}};
    const yaml_node_t *map;
    bool host_ok = false, deploy_ok = true;

    spec->host_timeout_s = KD_SPEC_HOST_TIMEOUT_S;
    spec->deployment_timeout_s = KD_SPEC_DEPLOYMENT_TIMEOUT_S;
    if (!(map = slot_mapping(ctx, s, "timeouts")))
        return;
    walk_mapping(ctx, map, "timeouts", timeout_keys, TO_COUNT, t);
    if (t[TO_HOST].value)
        host_ok = get_positive(ctx, t[TO_HOST].value, "timeouts.host", &spec->host_timeout_s);
    if (t[TO_DEPLOYMENT].value)
        deploy_ok = get_positive(ctx, t[TO_DEPLOYMENT].value, "timeouts.deployment",
                                 &spec->deployment_timeout_s);
    /* A host that may take longer than the whole deployment is a typo. */
    if (host_ok && deploy_ok && spec->host_timeout_s > spec->deployment_timeout_s)
        spec_error(ctx, line_of(t[TO_HOST].value), "timeouts.host",
                   "%u is longer than timeouts.deployment (%u)", spec->host_timeout_s,
                   spec->deployment_timeout_s);
}

/* The hosts one deployment touches, as far as the file says: the list for
 * rolling, the smaller group for blue-green (either may be the one
 * deployed to); 0 when only the planner will know (a label selector). */
static size_t listed_hosts(const spec_t *spec)
{
    const Kdeploy__V1__BlueGreen *bg = spec->blue_green;

    if (bg && bg->blue && bg->green)
        return bg->blue->n_hosts < bg->green->n_hosts ? bg->blue->n_hosts : bg->green->n_hosts;
    return spec->n_hosts;
}

static void get_failure_threshold(spec_ctx_t *ctx, const slot_t *s, spec_t *spec)
{
    const Kdeploy__V1__BlueGreen *bg = spec->blue_green;
    size_t hosts = listed_hosts(spec);

    /* A named config or a minimum of healthy hosts sets it (refused with
     * both, in get_named_config). */
    spec->failure_threshold = kd_spec_has_named_config(spec) ? 0 : 1;
    if (!s->value || !get_positive(ctx, s->value, "failure_threshold", &spec->failure_threshold))
        return;
    if (hosts && spec->failure_threshold > hosts)
        spec_error(ctx, line_of(s->value), "failure_threshold", "%u is more than the %zu host%s %s",
                   spec->failure_threshold, hosts, hosts == 1 ? "" : "s",
                   bg ? "of the smaller blue_green group" : "listed");
}

/* ---- named deployment configs ------------------------------------------ */

/* "N" hosts (0 or more) or "P%" (0 to 99). */
static bool parse_healthy(const char *v, Kdeploy__V1__HealthyHosts *h)
{
    size_t len = strlen(v);
    uint32_t n;

    if (len && v[len - 1] == '%') {
        if (!parse_u32(v, len - 1, &n) || n > 99)
            return false;
        h->value_case = KDEPLOY__V1__HEALTHY_HOSTS__VALUE_PERCENT;
        h->percent = n;
        return true;
    }
    if (!parse_u32(v, len, &n))
        return false;
    h->value_case = KDEPLOY__V1__HEALTHY_HOSTS__VALUE_HOSTS;
    h->hosts = n;
    return true;
}

static void get_minimum_healthy(spec_ctx_t *ctx, const slot_t *s, spec_t *spec)
{
    const char *v;
    Kdeploy__V1__HealthyHosts *h;
    size_t hosts = listed_hosts(spec);

    if (!s->value || !(v = scalar_text(ctx, s->value, "minimum_healthy_hosts",
                                       "a number of hosts or a percentage")))
        return;
    if (!(h = malloc(sizeof *h))) {
        ctx->oom = true;
        return;
    }
    kdeploy__v1__healthy_hosts__init(h);
    if (!parse_healthy(v, h)) {
        spec_error(ctx, line_of(s->value), "minimum_healthy_hosts",
                   "expected a number of hosts (0 or more) or a percentage from 0%% to 99%%, "
                   "not \"%.80s\"", v);
        free(h);
        return;
    }
    spec->minimum_healthy_hosts = h;
    if (h->value_case == KDEPLOY__V1__HEALTHY_HOSTS__VALUE_HOSTS && hosts && h->hosts >= hosts)
        spec_error(ctx, line_of(s->value), "minimum_healthy_hosts",
                   "%u leaves none of the %zu host%s listed to deploy to", h->hosts, hosts,
                   hosts == 1 ? "" : "s");
}

/* deployment_config or minimum_healthy_hosts: each sets both the batch size
 * and the failure threshold, so either refuses the other, concurrency and
 * failure_threshold. Read before those two, whose defaults it changes. */
static void get_named_config(spec_ctx_t *ctx, const slot_t *s, spec_t *spec)
{
    const slot_t *cfg = &s[T_DEPLOYMENT_CONFIG], *min = &s[T_MINIMUM_HEALTHY_HOSTS];
    const char *given = cfg->key ? "deployment_config" : "minimum_healthy_hosts";
    size_t i;

    if (cfg->key && min->key) {
        spec_error(ctx, line_of(min->key), "minimum_healthy_hosts",
                   "give deployment_config or minimum_healthy_hosts, not both");
        return;
    }
    if (!cfg->key && !min->key)
        return;
    if (s[T_CONCURRENCY].key)
        spec_error(ctx, line_of(s[T_CONCURRENCY].key), "concurrency",
                   "not allowed with %s, which sets the batch size", given);
    if (s[T_FAILURE_THRESHOLD].key)
        spec_error(ctx, line_of(s[T_FAILURE_THRESHOLD].key), "failure_threshold",
                   "not allowed with %s, which sets when the deployment fails", given);
    if (cfg->key && get_word(ctx, cfg, "deployment_config", config_words,
                             sizeof config_words / sizeof *config_words,
                             "OneAtATime, HalfAtATime or AllAtOnce", &i))
        spec->deployment_config = config_values[i];
    get_minimum_healthy(ctx, min, spec);
}

/* ---- the document -------------------------------------------------------- */

static void build_spec(spec_ctx_t *ctx, const yaml_node_t *root, spec_t *spec)
{
    slot_t s[T_COUNT] = {{0}};
    size_t line = line_of(root);
    Kdeploy__V1__Strategy strategy;

    walk_mapping(ctx, root, "", top_keys, T_COUNT, s);
    if (require(ctx, &s[T_APPLICATION], line, "application"))
        get_name(ctx, s[T_APPLICATION].value, "application", &spec->application);
    if (require(ctx, &s[T_GROUP], line, "group"))
        get_name(ctx, s[T_GROUP].value, "group", &spec->group);
    get_revision(ctx, &s[T_REVISION], line, spec);
    strategy = get_strategy(ctx, &s[T_STRATEGY], spec);
    get_bool(ctx, &s[T_ALLOW_UNKNOWN_HOSTS], "allow_unknown_hosts", &spec->allow_unknown_hosts);
    get_targets(ctx, s, line, strategy, spec);
    get_named_config(ctx, s, spec);
    if (!kd_spec_has_named_config(spec))
        get_concurrency(ctx, &s[T_CONCURRENCY], spec);
    get_bool(ctx, &s[T_AUTO_ROLLBACK], "auto_rollback", &spec->auto_rollback);
    get_file_exists(ctx, &s[T_FILE_EXISTS], spec);
    get_bool(ctx, &s[T_IGNORE_STOP_FAILURES], "ignore_stop_failures", &spec->ignore_stop_failures);
    get_scripts(ctx, &s[T_SCRIPTS], spec);
    get_timeouts(ctx, &s[T_TIMEOUTS], spec);
    get_load_balancer(ctx, &s[T_LOAD_BALANCER], line, strategy, spec);
    get_failure_threshold(ctx, &s[T_FAILURE_THRESHOLD], spec);
}

/* An alias makes one node stand in several places, and errors in it would
 * name the anchor's line rather than the alias's: the spec is refused with
 * them. The document API hides aliases, so this is an event pass of its own;
 * a syntax error ends it quietly, for the document load to report. */
static void check_aliases(spec_ctx_t *ctx, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    bool done = false;

    if (!yaml_parser_initialize(&parser)) {
        ctx->oom = true;
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!done && yaml_parser_parse(&parser, &ev)) {
        if (ev.type == YAML_ALIAS_EVENT) {
            spec_error(ctx, ev.start_mark.line + 1, "",
                       "aliases (*%s) are not supported: write the value out",
                       (const char *)ev.data.alias.anchor);
            ctx->aliases = true;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    if (!done && (parser.error == YAML_MEMORY_ERROR || !parser.problem))
        ctx->oom = true;
    yaml_parser_delete(&parser);
}

/* A spec is one document: a second one is refused rather than ignored. */
static void check_single_document(spec_ctx_t *ctx, yaml_parser_t *parser)
{
    yaml_document_t next;

    if (!yaml_parser_load(parser, &next)) {
        yaml_problem(ctx, parser);
        return;
    }
    if (yaml_document_get_root_node(&next))
        spec_error(ctx, next.start_mark.line + 1, "", "only one YAML document is allowed");
    yaml_document_delete(&next);
}

static void check_document(spec_ctx_t *ctx, yaml_parser_t *parser, spec_t *spec)
{
    const yaml_node_t *root = yaml_document_get_root_node(ctx->doc);

    if (!root || is_null(root))
        spec_error(ctx, root ? line_of(root) : 1, "",
                   "the file is empty: expected a deployment spec");
    else if (root->type != YAML_MAPPING_NODE)
        spec_error(ctx, line_of(root), "", "expected a mapping of keys to values, not %s",
                   kind_of(root));
    else if (!ctx->aliases)
        build_spec(ctx, root, spec);
    check_single_document(ctx, parser);
}

static kd_status_t parse(const char *name, const char *text, size_t len, bool group,
                         Kdeploy__V1__DeploymentSpec **out, char *err, size_t errsz)
{
    spec_ctx_t ctx = {0};
    yaml_parser_t parser;
    yaml_document_t doc;
    spec_t *spec = NULL;
    kd_status_t st;

    ctx.name = name;
    ctx.group = group;
    if (!text) {  /* libyaml insists on a buffer, even an empty one */
        text = "";
        len = 0;
    }
    check_aliases(&ctx, text, len);
    if (!yaml_parser_initialize(&parser)) {
        spec_ctx_free(&ctx);
        return kd_err(err, errsz, KD_ENOMEM, "%s: out of memory", name);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_problem(&ctx, &parser);
        st = spec_report(&ctx, err, errsz);
        goto out_parser;
    }
    ctx.doc = &doc;
    if (!(spec = malloc(sizeof *spec))) {
        st = kd_err(err, errsz, KD_ENOMEM, "%s: out of memory", name);
        goto out_doc;
    }
    kdeploy__v1__deployment_spec__init(spec);
    check_document(&ctx, &parser, spec);
    if ((st = spec_report(&ctx, err, errsz)) == KD_OK) {
        *out = spec;
        spec = NULL;
    }
    kd_spec_free(spec);
out_doc:
    yaml_document_delete(&doc);
out_parser:
    spec_ctx_free(&ctx);
    yaml_parser_delete(&parser);
    return st;
}

kd_status_t kd_spec_parse(const char *name, const char *text, size_t len,
                          Kdeploy__V1__DeploymentSpec **out, char *err, size_t errsz)
{
    return parse(name, text, len, false, out, err, errsz);
}

kd_status_t kd_spec_parse_group(const char *name, const char *text, size_t len,
                                Kdeploy__V1__DeploymentSpec **out, char *err, size_t errsz)
{
    return parse(name, text, len, true, out, err, errsz);
}

static kd_status_t load_file(const char *path, bool group, Kdeploy__V1__DeploymentSpec **out,
                             char *err, size_t errsz)
{
    kd_buf_t text = KD_BUF_INIT(SPEC_FILE_MAX);
    kd_status_t st = kd_read_file(path, &text, err, errsz);

    if (st == KD_OK)
        st = parse(path, kd_buf_str(&text), text.len, group, out, err, errsz);
    kd_buf_free(&text);
    return st;
}

kd_status_t kd_spec_load_file(const char *path, Kdeploy__V1__DeploymentSpec **out, char *err,
                              size_t errsz)
{
    return load_file(path, false, out, err, errsz);
}

kd_status_t kd_spec_load_group_file(const char *path, Kdeploy__V1__DeploymentSpec **out,
                                    char *err, size_t errsz)
{
    return load_file(path, true, out, err, errsz);
}

void kd_spec_free(Kdeploy__V1__DeploymentSpec *spec)
{
    if (spec)
        kdeploy__v1__deployment_spec__free_unpacked(spec, NULL);
}

/* ---- reading a spec ------------------------------------------------------ */

bool kd_spec_has_named_config(const Kdeploy__V1__DeploymentSpec *spec)
{
    return spec && (spec->deployment_config != KDEPLOY__V1__DEPLOYMENT_CONFIG__DEPLOYMENT_CONFIG_UNSPECIFIED ||
                    (spec->minimum_healthy_hosts &&
                     spec->minimum_healthy_hosts->value_case !=
                         KDEPLOY__V1__HEALTHY_HOSTS__VALUE__NOT_SET));
}

size_t kd_spec_minimum_healthy(const Kdeploy__V1__DeploymentSpec *spec, size_t host_count)
{
    const Kdeploy__V1__HealthyHosts *h = spec->minimum_healthy_hosts;
    uint64_t pct = 0;

    switch (spec->deployment_config) {
    case KDEPLOY__V1__DEPLOYMENT_CONFIG__ONE_AT_A_TIME:
        return host_count ? host_count - 1 : 0;
    case KDEPLOY__V1__DEPLOYMENT_CONFIG__HALF_AT_A_TIME:
        pct = 50;
        break;
    case KDEPLOY__V1__DEPLOYMENT_CONFIG__ALL_AT_ONCE:
        return 0;
    default:
        if (h && h->value_case == KDEPLOY__V1__HEALTHY_HOSTS__VALUE_HOSTS)
            return h->hosts;
        if (h && h->value_case == KDEPLOY__V1__HEALTHY_HOSTS__VALUE_PERCENT)
            pct = h->percent > 100 ? 100 : h->percent;
    }
    /* Rounded up, as CodeDeploy rounds a fleet percentage of healthy hosts. */
    return (size_t)((pct * host_count + 99) / 100);
}

uint32_t kd_spec_failure_threshold_for(const Kdeploy__V1__DeploymentSpec *spec,
                                       size_t host_count)
{
    size_t min, allowed;

    if (!kd_spec_has_named_config(spec))
        return kd_spec_failure_threshold(spec);
    /* OneAtATime stops at the first failed host (AWS lets the last host
     * fail; kdeploy does not). */
    if (spec->deployment_config == KDEPLOY__V1__DEPLOYMENT_CONFIG__ONE_AT_A_TIME || !host_count)
        return 1;
    /* Failed hosts are the unhealthy ones: the deployment fails once more
     * than host_count - min have failed, and always when all of them did. */
    min = kd_spec_minimum_healthy(spec, host_count);
    allowed = min < host_count ? host_count - min : 0;
    if (allowed >= host_count)
        allowed = host_count - 1;
    return allowed + 1 > UINT32_MAX ? UINT32_MAX : (uint32_t)(allowed + 1);
}

size_t kd_spec_batch_size(const Kdeploy__V1__DeploymentSpec *spec, size_t batch_index,
                          size_t host_count)
{
    const Kdeploy__V1__Concurrency *c = NULL;
    size_t n = 1;

    if (!host_count)
        return 0;
    if (kd_spec_has_named_config(spec)) {
        size_t min = kd_spec_minimum_healthy(spec, host_count);

        n = min < host_count ? host_count - min : 1;
    } else if (spec && spec->n_concurrency)
        c = spec->concurrency[batch_index < spec->n_concurrency ? batch_index
                                                                : spec->n_concurrency - 1];
    if (c && c->value_case == KDEPLOY__V1__CONCURRENCY__VALUE_HOSTS) {
        n = c->hosts;
    } else if (c && c->value_case == KDEPLOY__V1__CONCURRENCY__VALUE_PERCENT) {
        uint64_t pct = c->percent > 100 ? 100 : c->percent;

        n = (size_t)((pct * host_count + 99) / 100);
    }
    if (n < 1)
        n = 1;
    return n > host_count ? host_count : n;
}

Kdeploy__V1__Strategy kd_spec_strategy(const Kdeploy__V1__DeploymentSpec *spec)
{
    return spec->strategy == KDEPLOY__V1__STRATEGY__STRATEGY_UNSPECIFIED
               ? KDEPLOY__V1__STRATEGY__ROLLING
               : spec->strategy;
}

Kdeploy__V1__FileExistsPolicy kd_spec_file_exists(const Kdeploy__V1__DeploymentSpec *spec)
{
    return spec->file_exists;
}

uint32_t kd_spec_failure_threshold(const Kdeploy__V1__DeploymentSpec *spec)
{
    return spec->failure_threshold ? spec->failure_threshold : 1;
}

uint32_t kd_spec_host_timeout_s(const Kdeploy__V1__DeploymentSpec *spec)
{
    return spec->host_timeout_s ? spec->host_timeout_s : KD_SPEC_HOST_TIMEOUT_S;
}

uint32_t kd_spec_deployment_timeout_s(const Kdeploy__V1__DeploymentSpec *spec)
{
    return spec->deployment_timeout_s ? spec->deployment_timeout_s : KD_SPEC_DEPLOYMENT_TIMEOUT_S;
}

const char *kd_spec_strategy_name(Kdeploy__V1__Strategy strategy)
{
    switch (strategy) {
    case KDEPLOY__V1__STRATEGY__STRATEGY_UNSPECIFIED:
    case KDEPLOY__V1__STRATEGY__ROLLING:
        return "rolling";
    case KDEPLOY__V1__STRATEGY__BLUE_GREEN:
        return "blue_green";
    default:
        return "?";
    }
}

const char *kd_spec_config_name(Kdeploy__V1__DeploymentConfig config)
{
    switch (config) {
    case KDEPLOY__V1__DEPLOYMENT_CONFIG__ONE_AT_A_TIME:
        return "OneAtATime";
    case KDEPLOY__V1__DEPLOYMENT_CONFIG__HALF_AT_A_TIME:
        return "HalfAtATime";
    case KDEPLOY__V1__DEPLOYMENT_CONFIG__ALL_AT_ONCE:
        return "AllAtOnce";
    default:
        return "";
    }
}

const char *kd_spec_file_exists_name(Kdeploy__V1__FileExistsPolicy policy)
{
    switch (policy) {
    case KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_FAIL:
        return "fail";
    case KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_UNSPECIFIED:
        return "unset";
    case KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_OVERWRITE:
        return "overwrite";
    case KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_KEEP:
        return "keep";
    default:
        return "?";
    }
}

const char *kd_spec_concurrency_str(const Kdeploy__V1__Concurrency *c, char *buf, size_t bufsz)
{
    if (c && c->value_case == KDEPLOY__V1__CONCURRENCY__VALUE_PERCENT)
        snprintf(buf, bufsz, "%u%%", c->percent);
    else if (c && c->value_case == KDEPLOY__V1__CONCURRENCY__VALUE_HOSTS)
        snprintf(buf, bufsz, "%u", c->hosts);
    else
        snprintf(buf, bufsz, "1");
    return buf;
}
