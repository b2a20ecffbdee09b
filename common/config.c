#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "buf.h"

struct kd_config {
    char *name;
    kd_config_entry_t *entries;
    size_t count, cap;
};

typedef struct parse_ctx {
    kd_config_t *cfg;
    yaml_parser_t parser;
    char *err;
    size_t errsz;
} parse_ctx_t;

static kd_status_t add_entry(kd_config_t *cfg, const char *key, const char *value, int line)
{
    kd_config_entry_t *e;

    if (cfg->count == cfg->cap) {
        size_t cap = cfg->cap ? cfg->cap * 2 : 16;
        kd_config_entry_t *p = realloc(cfg->entries, cap * sizeof *p);

        if (!p)
            return KD_ENOMEM;
        cfg->entries = p;
        cfg->cap = cap;
    }
    e = &cfg->entries[cfg->count];
    e->key = strdup(key);
    e->value = strdup(value);
    e->line = line;
    if (!e->key || !e->value) {
        free((char *)e->key);
        free((char *)e->value);
        return KD_ENOMEM;
    }
    cfg->count++;
    return KD_OK;
}

static kd_status_t next_event(parse_ctx_t *ctx, yaml_event_t *ev)
{
    if (yaml_parser_parse(&ctx->parser, ev))
        return KD_OK;
    return kd_err(ctx->err, ctx->errsz, KD_EINVAL, "%s:%zu:%zu: %s", ctx->cfg->name,
                  ctx->parser.problem_mark.line + 1, ctx->parser.problem_mark.column + 1,
                  ctx->parser.problem ? ctx->parser.problem : "YAML syntax error");
}

static kd_status_t parse_node(parse_ctx_t *ctx, yaml_event_t *ev, const char *key);

static kd_status_t parse_mapping(parse_ctx_t *ctx, const char *prefix)
{
    yaml_event_t ev;
    kd_status_t st;

    for (;;) {
        char key[512];

        if ((st = next_event(ctx, &ev)) != KD_OK)
            return st;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return KD_OK;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            st = kd_err(ctx->err, ctx->errsz, KD_EINVAL, "%s:%zu: %s: keys must be plain words",
                        ctx->cfg->name, ev.start_mark.line + 1, prefix[0] ? prefix : "(top)");
            yaml_event_delete(&ev);
            return st;
        }
        snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "",
                 (const char *)ev.data.scalar.value);
        yaml_event_delete(&ev);
        if ((st = next_event(ctx, &ev)) != KD_OK)
            return st;
        st = parse_node(ctx, &ev, key);
        yaml_event_delete(&ev);
        if (st != KD_OK)
            return st;
    }
}

static kd_status_t parse_sequence(parse_ctx_t *ctx, const char *key)
{
    yaml_event_t ev;
    kd_status_t st;

    for (unsigned index = 0;; index++) {
        if ((st = next_event(ctx, &ev)) != KD_OK)
            return st;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return KD_OK;
        }
        /* A list of mappings (notify: [{url: ..}, ..]) numbers its items:
         * "notify.0.url", "notify.1.url". */
        if (ev.type == YAML_MAPPING_START_EVENT) {
            char item[512];
            int n;

            yaml_event_delete(&ev);
            n = snprintf(item, sizeof item, "%s.%u", key, index);
            if (n < 0 || (size_t)n >= sizeof item)
                return kd_err(ctx->err, ctx->errsz, KD_EINVAL, "%s: %s: key too long",
                              ctx->cfg->name, key);
            if ((st = parse_mapping(ctx, item)) != KD_OK)
                return st;
            continue;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            st = kd_err(ctx->err, ctx->errsz, KD_EINVAL, "%s:%zu: %s: expected a list of values",
                        ctx->cfg->name, ev.start_mark.line + 1, key);
            yaml_event_delete(&ev);
            return st;
        }
        st = add_entry(ctx->cfg, key, (const char *)ev.data.scalar.value,
                       (int)ev.start_mark.line + 1);
        yaml_event_delete(&ev);
        if (st != KD_OK)
            return kd_err(ctx->err, ctx->errsz, st, "out of memory");
    }
}

static kd_status_t parse_node(parse_ctx_t *ctx, yaml_event_t *ev, const char *key)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        if (add_entry(ctx->cfg, key, (const char *)ev->data.scalar.value,
                      (int)ev->start_mark.line + 1) != KD_OK)
            return kd_err(ctx->err, ctx->errsz, KD_ENOMEM, "out of memory");
        return KD_OK;
    case YAML_MAPPING_START_EVENT:
        return parse_mapping(ctx, key);
    case YAML_SEQUENCE_START_EVENT:
        return parse_sequence(ctx, key);
    default:
        return kd_err(ctx->err, ctx->errsz, KD_EINVAL, "%s:%zu: %s: unsupported YAML (aliases?)",
                      ctx->cfg->name, ev->start_mark.line + 1, key);
    }
}

static kd_status_t parse_document(parse_ctx_t *ctx)
{
    yaml_event_t ev;
    kd_status_t st = KD_OK;

    /* STREAM-START, then DOCUMENT-START or STREAM-END for an empty file. */
    for (;;) {
        if ((st = next_event(ctx, &ev)) != KD_OK)
            return st;
        if (ev.type == YAML_STREAM_END_EVENT || ev.type == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            return KD_OK;
        }
        if (ev.type == YAML_MAPPING_START_EVENT) {
            yaml_event_delete(&ev);
            return parse_mapping(ctx, "");
        }
        if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
            st = kd_err(ctx->err, ctx->errsz, KD_EINVAL, "%s:%zu: the file must be a mapping",
                        ctx->cfg->name, ev.start_mark.line + 1);
            yaml_event_delete(&ev);
            return st;
        }
        yaml_event_delete(&ev);
    }
}

kd_status_t kd_config_parse(const char *name, const char *text, size_t len, kd_config_t **out,
                            char *err, size_t errsz)
{
    parse_ctx_t ctx = {0};
    kd_status_t st;

    ctx.cfg = calloc(1, sizeof *ctx.cfg);
    if (!ctx.cfg || !(ctx.cfg->name = strdup(name))) {
        kd_config_free(ctx.cfg);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    ctx.err = err;
    ctx.errsz = errsz;
    yaml_parser_initialize(&ctx.parser);
    yaml_parser_set_input_string(&ctx.parser, (const unsigned char *)text, len);
    st = parse_document(&ctx);
    yaml_parser_delete(&ctx.parser);
    if (st != KD_OK) {
        kd_config_free(ctx.cfg);
        return st;
    }
    *out = ctx.cfg;
    return KD_OK;
}

kd_status_t kd_config_load(const char *path, kd_config_t **out, char *err, size_t errsz)
{
    kd_buf_t text = KD_BUF_INIT(4 * 1024 * 1024);
    char chunk[8192];
    size_t n;
    kd_status_t st = KD_OK;
    FILE *f = fopen(path, "r");

    if (!f)
        return kd_err(err, errsz, KD_EIO, "%s: cannot open: %m", path);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if ((st = kd_buf_append(&text, chunk, n)) != KD_OK)
            break;
    if (st == KD_OK && ferror(f))
        st = KD_EIO;
    fclose(f);
    if (st != KD_OK)
        st = kd_err(err, errsz, st, "%s: cannot read: %s", path, kd_status_str(st));
    else
        st = kd_config_parse(path, kd_buf_str(&text), text.len, out, err, errsz);
    kd_buf_free(&text);
    return st;
}

void kd_config_free(kd_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->count; i++) {
        free((char *)cfg->entries[i].key);
        free((char *)cfg->entries[i].value);
    }
    free(cfg->entries);
    free(cfg->name);
    free(cfg);
}

const kd_config_entry_t *kd_config_entries(const kd_config_t *cfg, size_t *count)
{
    *count = cfg->count;
    return cfg->entries;
}

const char *kd_config_get(const kd_config_t *cfg, const char *key)
{
    for (size_t i = cfg->count; i > 0; i--)
        if (strcmp(cfg->entries[i - 1].key, key) == 0)
            return cfg->entries[i - 1].value;
    return NULL;
}

const char *kd_config_name(const kd_config_t *cfg)
{
    return cfg->name;
}

/* ---- unknown keys ---- */

#define DYM_MAX 64 /* longer words are not compared: no hint */

/* Levenshtein distance, one row at a time; both lengths at most DYM_MAX. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t row[DYM_MAX + 1];

    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);

            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The length of an allowed entry as compared: "kafka.*" counts as "kafka". */
static size_t entry_len(const char *e, bool *wildcard)
{
    size_t n = strlen(e);

    *wildcard = n >= 2 && strcmp(e + n - 2, ".*") == 0;
    return *wildcard ? n - 2 : n;
}

const char *kd_did_you_mean(const char *word, const char *const *candidates)
{
    size_t lw = strlen(word), best = SIZE_MAX;
    const char *pick = NULL;

    if (lw > DYM_MAX)
        return NULL;
    for (size_t i = 0; candidates && candidates[i]; i++) {
        bool wild;
        size_t lc = entry_len(candidates[i], &wild);
        size_t d;

        if (lc > DYM_MAX)
            continue;
        d = edit_distance(word, lw, candidates[i], lc);
        if (d < best) {
            best = d;
            pick = candidates[i];
        }
    }
    /* One typo in a short word, about a third of a longer one. */
    return pick && best <= (lw < 6 ? 1 : lw / 3 + 1) ? pick : NULL;
}

static bool key_allowed(const char *key, const char *const *allowed)
{
    for (size_t i = 0; allowed[i]; i++) {
        bool wild;
        size_t n = entry_len(allowed[i], &wild);

        if (wild ? strncmp(key, allowed[i], n) == 0 && key[n] == '.' && key[n + 1]
                 : strcmp(key, allowed[i]) == 0)
            return true;
    }
    return false;
}

kd_status_t kd_config_check_keys(const kd_config_t *cfg, const char *const *allowed, char *err,
                                 size_t errsz)
{
    for (size_t i = 0; i < cfg->count; i++) {
        const kd_config_entry_t *e = &cfg->entries[i];
        const char *hint;

        if (key_allowed(e->key, allowed))
            continue;
        hint = kd_did_you_mean(e->key, allowed);
        if (hint)
            return kd_err(err, errsz, KD_EINVAL, "%s:%d: unknown key '%s' (did you mean '%s'?)",
                          cfg->name, e->line, e->key, hint);
        return kd_err(err, errsz, KD_EINVAL, "%s:%d: unknown key '%s'", cfg->name, e->line,
                      e->key);
    }
    return KD_OK;
}
