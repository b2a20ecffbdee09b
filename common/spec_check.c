#include "spec_check.h"

#include <string.h>
#include <strings.h>

#include "ptrmap.h"

#define NAME_MAX_LEN 128
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define HOST_CHARS NAME_CHARS ":"

#define STRATEGY(name) KDEPLOY__V1__STRATEGY__##name

bool kd_host_id_valid(const char *s)
{
    size_t len = s ? strlen(s) : 0;

    return len > 0 && len <= KD_HOST_ID_MAX && s[0] != '.' && s[0] != '-' &&
           strspn(s, HOST_CHARS) == len;
}

bool kd_name_valid(const char *s)
{
    size_t len = s ? strlen(s) : 0;

    return len > 0 && len <= NAME_MAX_LEN && s[0] != '.' && strspn(s, NAME_CHARS) == len;
}

#define LABEL_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._/-"

bool kd_label_value_valid(const char *s)
{
    size_t len = s ? strlen(s) : 0;

    return len > 0 && len <= KD_LABEL_LEN_MAX && strspn(s, LABEL_CHARS) == len;
}

bool kd_label_key_valid(const char *s)
{
    return kd_label_value_valid(s) && !strchr("._/-", s[0]);
}

/* Names from the wire may be anything: quote at most 64 printable bytes. */
static const char *shown(const char *s, char *buf, size_t bufsz)
{
    size_t n = 0;

    for (; s && *s && n + 1 < bufsz && n < 64; s++)
        buf[n++] = (*s >= ' ' && *s < 0x7f) ? *s : '?';
    buf[n] = '\0';
    return buf;
}

kd_status_t kd_label_parse(const char *text, char *key, char *value, char *err, size_t errsz)
{
    const char *eq = text ? strchr(text, '=') : NULL;
    size_t klen = eq ? (size_t)(eq - text) : 0;
    char b[80];

    if (!eq)
        return kd_err(err, errsz, KD_EINVAL, "\"%s\": expected KEY=VALUE",
                      shown(text, b, sizeof b));
    if (klen == 0 || klen > KD_LABEL_LEN_MAX) {
        return kd_err(err, errsz, KD_EINVAL, "\"%s\": the key must be %s",
                      shown(text, b, sizeof b), KD_LABEL_GRAMMAR);
    }
    memcpy(key, text, klen);
    key[klen] = '\0';
    if (!kd_label_key_valid(key))
        return kd_err(err, errsz, KD_EINVAL,
                      "\"%s\": the key must be %s, starting with a letter or digit",
                      shown(text, b, sizeof b), KD_LABEL_GRAMMAR);
    if (!kd_label_value_valid(eq + 1))
        return kd_err(err, errsz, KD_EINVAL, "\"%s\": the value must be %s",
                      shown(text, b, sizeof b), KD_LABEL_GRAMMAR);
    memcpy(value, eq + 1, strlen(eq + 1) + 1);
    return KD_OK;
}

static kd_status_t bad_name(char *err, size_t errsz, const char *field, const char *v)
{
    char b[80];

    if (!v || !*v)
        return kd_err(err, errsz, KD_EINVAL, "%s: is missing", field);
    return kd_err(err, errsz, KD_EINVAL,
                  "%s: \"%s\" is not a name (1 to 128 letters, digits, '.', '_' or '-')", field,
                  shown(v, b, sizeof b));
}

static bool hex_of(const char *s, size_t len)
{
    return s && strlen(s) == len && strspn(s, "0123456789abcdefABCDEF") == len;
}

static kd_status_t check_revision(const Kdeploy__V1__Revision *r, char *err, size_t errsz)
{
    static const char *const schemes[] = {"http://", "https://", "file://"};
    bool scheme = false;
    size_t len;

    if (!r || !r->url || !*r->url)
        return kd_err(err, errsz, KD_EINVAL, "revision.url: is missing");
    if ((len = strlen(r->url)) > KD_SPEC_URL_MAX)
        return kd_err(err, errsz, KD_EINVAL, "revision.url: longer than %d bytes",
                      KD_SPEC_URL_MAX);
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
        scheme |= strncasecmp(r->url, schemes[i], strlen(schemes[i])) == 0;
    if (!scheme)
        return kd_err(err, errsz, KD_EINVAL, "revision.url: not an http://, https:// or file:// URL");
    for (const char *p = r->url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return kd_err(err, errsz, KD_EINVAL,
                          "revision.url: must not hold spaces or control characters");
    if (r->sha256 && *r->sha256 && !hex_of(r->sha256, 64))
        return kd_err(err, errsz, KD_EINVAL, "revision.sha256: expected 64 hex digits");
    if (r->md5 && *r->md5 && !hex_of(r->md5, 32))
        return kd_err(err, errsz, KD_EINVAL, "revision.md5: expected 32 hex digits");
    if (!(r->sha256 && *r->sha256) && !(r->md5 && *r->md5))
        return kd_err(err, errsz, KD_EINVAL,
                      "revision.sha256: is required (or revision.md5): workers check every "
                      "bundle before unpacking it");
    if (r->label && strlen(r->label) > NAME_MAX_LEN)
        return kd_err(err, errsz, KD_EINVAL, "revision.label: longer than %d bytes",
                      NAME_MAX_LEN);
    return KD_OK;
}

/* Hosts of one list: valid ids, none seen before in this spec (seen spans
 * both blue-green groups, so they cannot share a host). */
static kd_status_t check_hosts(char *const *hosts, size_t n, const char *field,
                               kd_ptrmap_t *seen, char *err, size_t errsz)
{
    char b[80];

    if (n == 0)
        return kd_err(err, errsz, KD_EINVAL, "%s: must list at least one host", field);
    if (n > KD_SPEC_MAX_HOSTS || kd_ptrmap_count(seen) + n > KD_SPEC_MAX_HOSTS)
        return kd_err(err, errsz, KD_EINVAL, "%s: more than %d hosts", field, KD_SPEC_MAX_HOSTS);
    for (size_t i = 0; i < n; i++) {
        if (!kd_host_id_valid(hosts[i]))
            return kd_err(err, errsz, KD_EINVAL,
                          "%s[%zu]: \"%s\" is not a host id (1 to %d letters, digits, '.', "
                          "'-', '_' or ':')", field, i, shown(hosts[i], b, sizeof b),
                          KD_HOST_ID_MAX);
        if (kd_ptrmap_get(seen, hosts[i]))
            return kd_err(err, errsz, KD_EINVAL, "%s[%zu]: \"%s\" is named twice", field, i,
                          hosts[i]);
        if (kd_ptrmap_set(seen, hosts[i], hosts[i]) != KD_OK)
            return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    return KD_OK;
}

static kd_status_t check_concurrency(const Kdeploy__V1__DeploymentSpec *s, char *err,
                                     size_t errsz)
{
    if (s->n_concurrency > KD_SPEC_RAMP_MAX)
        return kd_err(err, errsz, KD_EINVAL, "concurrency: a ramp of more than %d values",
                      KD_SPEC_RAMP_MAX);
    for (size_t i = 0; i < s->n_concurrency; i++) {
        const Kdeploy__V1__Concurrency *c = s->concurrency[i];

        if (!c || (c->value_case == KDEPLOY__V1__CONCURRENCY__VALUE_HOSTS && c->hosts == 0) ||
            (c->value_case == KDEPLOY__V1__CONCURRENCY__VALUE_PERCENT &&
             (c->percent == 0 || c->percent > 100)) ||
            (c->value_case != KDEPLOY__V1__CONCURRENCY__VALUE_HOSTS &&
             c->value_case != KDEPLOY__V1__CONCURRENCY__VALUE_PERCENT))
            return kd_err(err, errsz, KD_EINVAL,
                          "concurrency[%zu]: expected a number of hosts (1 or more) or a "
                          "percentage from 1 to 100", i);
    }
    return KD_OK;
}

static kd_status_t check_selector(const Kdeploy__V1__DeploymentSpec *s, char *err,
                                  size_t errsz)
{
    char b[80];

    if (s->n_host_selector > KD_LABEL_MAX)
        return kd_err(err, errsz, KD_EINVAL, "hosts.labels: more than %d labels", KD_LABEL_MAX);
    for (size_t i = 0; i < s->n_host_selector; i++) {
        const Kdeploy__V1__HostLabel *l = s->host_selector[i];

        if (!l || !kd_label_key_valid(l->key) || !kd_label_value_valid(l->value))
            return kd_err(err, errsz, KD_EINVAL,
                          "hosts.labels: \"%s\" is not a label (%s)",
                          shown(l ? l->key : "", b, sizeof b), KD_LABEL_GRAMMAR);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->host_selector[j]->key, l->key) == 0)
                return kd_err(err, errsz, KD_EINVAL, "hosts.labels: \"%s\" given twice",
                              l->key);
    }
    if (s->n_host_selector && s->n_hosts)
        return kd_err(err, errsz, KD_EINVAL,
                      "hosts: give a list of hosts or labels to select them by, not both");
    return KD_OK;
}

/* deployment_config and minimum_healthy_hosts each set the batch size and
 * the failure threshold: neither goes with the other, nor with those. */
static kd_status_t check_named_config(const Kdeploy__V1__DeploymentSpec *s, char *err,
                                      size_t errsz)
{
    const Kdeploy__V1__HealthyHosts *h = s->minimum_healthy_hosts;
    bool min = h && h->value_case != KDEPLOY__V1__HEALTHY_HOSTS__VALUE__NOT_SET;
    bool cfg = s->deployment_config != KDEPLOY__V1__DEPLOYMENT_CONFIG__DEPLOYMENT_CONFIG_UNSPECIFIED;

    if ((unsigned)s->deployment_config > KDEPLOY__V1__DEPLOYMENT_CONFIG__ALL_AT_ONCE)
        return kd_err(err, errsz, KD_EINVAL, "deployment_config: unknown value %d",
                      (int)s->deployment_config);
    if (min && h->value_case == KDEPLOY__V1__HEALTHY_HOSTS__VALUE_PERCENT && h->percent > 99)
        return kd_err(err, errsz, KD_EINVAL,
                      "minimum_healthy_hosts: expected a percentage from 0 to 99");
    if (cfg && min)
        return kd_err(err, errsz, KD_EINVAL,
                      "minimum_healthy_hosts: give deployment_config or minimum_healthy_hosts, "
                      "not both");
    if ((cfg || min) && s->n_concurrency)
        return kd_err(err, errsz, KD_EINVAL, "concurrency: not allowed with %s",
                      cfg ? "deployment_config" : "minimum_healthy_hosts");
    if ((cfg || min) && s->failure_threshold)
        return kd_err(err, errsz, KD_EINVAL, "failure_threshold: not allowed with %s",
                      cfg ? "deployment_config" : "minimum_healthy_hosts");
    return KD_OK;
}

static kd_status_t check_scripts(const Kdeploy__V1__FormScripts *f, char *err, size_t errsz)
{
    const char *const text[] = {f ? f->stop : NULL, f ? f->start : NULL, f ? f->check : NULL};
    static const char *const names[] = {"stop", "start", "check"};

    for (size_t i = 0; i < 3; i++)
        if (text[i] && strlen(text[i]) > KD_SPEC_SCRIPT_MAX)
            return kd_err(err, errsz, KD_EINVAL, "scripts.%s: longer than %d bytes", names[i],
                          KD_SPEC_SCRIPT_MAX);
    return KD_OK;
}

static kd_status_t check_blue_green(const Kdeploy__V1__DeploymentSpec *s, kd_ptrmap_t *seen,
                                    char *err, size_t errsz)
{
    const Kdeploy__V1__BlueGreen *bg = s->blue_green;
    kd_status_t st;

    if (s->n_hosts)
        return kd_err(err, errsz, KD_EINVAL,
                      "hosts: a blue-green deployment takes its hosts from blue_green");
    if (!bg || !bg->blue || !bg->green)
        return kd_err(err, errsz, KD_EINVAL, "blue_green: needs both groups, blue and green");
    if (!s->load_balancer || !kd_name_valid(s->load_balancer->service))
        return bad_name(err, errsz, "load_balancer.service",
                        s->load_balancer ? s->load_balancer->service : NULL);
    if (!kd_name_valid(bg->blue->server_group))
        return bad_name(err, errsz, "blue_green.blue.server_group", bg->blue->server_group);
    if (!kd_name_valid(bg->green->server_group))
        return bad_name(err, errsz, "blue_green.green.server_group", bg->green->server_group);
    if (strcmp(bg->blue->server_group, bg->green->server_group) == 0)
        return kd_err(err, errsz, KD_EINVAL,
                      "blue_green: blue and green must be different server groups");
    /* Any sizes: 1 against 100 is as valid as 50 against 50. */
    if ((st = check_hosts(bg->blue->hosts, bg->blue->n_hosts, "blue_green.blue.hosts", seen,
                          err, errsz)) != KD_OK)
        return st;
    return check_hosts(bg->green->hosts, bg->green->n_hosts, "blue_green.green.hosts", seen, err,
                       errsz);
}

kd_status_t kd_spec_check(const Kdeploy__V1__DeploymentSpec *s, char *err, size_t errsz)
{
    kd_ptrmap_t *seen;
    kd_status_t st;

    if (!s)
        return kd_err(err, errsz, KD_EINVAL, "the request holds no spec");
    if (!kd_name_valid(s->application))
        return bad_name(err, errsz, "application", s->application);
    if (!kd_name_valid(s->group))
        return bad_name(err, errsz, "group", s->group);
    if ((st = check_revision(s->revision, err, errsz)) != KD_OK ||
        (st = check_concurrency(s, err, errsz)) != KD_OK ||
        (st = check_scripts(s->scripts, err, errsz)) != KD_OK ||
        (st = check_selector(s, err, errsz)) != KD_OK ||
        (st = check_named_config(s, err, errsz)) != KD_OK)
        return st;
    if (s->strategy != STRATEGY(STRATEGY_UNSPECIFIED) && s->strategy != STRATEGY(ROLLING) &&
        s->strategy != STRATEGY(BLUE_GREEN))
        return kd_err(err, errsz, KD_EINVAL, "strategy: unknown value %d", (int)s->strategy);
    if ((unsigned)s->file_exists > KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_KEEP)
        return kd_err(err, errsz, KD_EINVAL, "file_exists: unknown value %d", (int)s->file_exists);
    if (s->host_timeout_s && s->deployment_timeout_s &&
        s->host_timeout_s > s->deployment_timeout_s)
        return kd_err(err, errsz, KD_EINVAL,
                      "timeouts.host: %u is longer than timeouts.deployment (%u)",
                      s->host_timeout_s, s->deployment_timeout_s);
    if (s->load_balancer && s->load_balancer->server_group && *s->load_balancer->server_group &&
        !kd_name_valid(s->load_balancer->server_group))
        return bad_name(err, errsz, "load_balancer.server_group", s->load_balancer->server_group);
    if (!(seen = kd_ptrmap_new()))
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if (s->strategy == STRATEGY(BLUE_GREEN) && s->n_host_selector)
        st = kd_err(err, errsz, KD_EINVAL,
                    "hosts: selecting hosts by labels is for rolling deployments; blue-green "
                    "lists its groups' hosts");
    else if (s->strategy == STRATEGY(BLUE_GREEN))
        st = check_blue_green(s, seen, err, errsz);
    else if (s->n_host_selector)
        st = KD_OK; /* the planner resolves it, then checks the list it found */
    else if (s->blue_green)
        st = kd_err(err, errsz, KD_EINVAL, "blue_green: only for strategy blue_green");
    else
        st = check_hosts(s->hosts, s->n_hosts, "hosts", seen, err, errsz);
    kd_ptrmap_free(seen);
    return st;
}
