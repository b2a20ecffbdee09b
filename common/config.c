#include "config.h"

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

            yaml_event_delete(&ev);
            snprintf(item, sizeof item, "%s.%u", key, index);
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
