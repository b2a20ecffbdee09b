/* worker/steps.c without the bus: a revision's appspec is parsed once for
 * all its steps, and ApplicationStop refuses to stop the running revision
 * when the one to install has lost a hook script. */
#include <openssl/evp.h>

#include "event.h"
#include "fsutil.h"
#include "specs.h"
#include "steps.h"
#include "testutil.h"

static char dir[PATH_MAX];

/* tar.gz of src into path; its sha256 (hex) into hex. */
static void make_bundle(const char *src, const char *path, char hex[65])
{
    char cmd[3 * PATH_MAX], *data;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    FILE *f;
    long len;

    snprintf(cmd, sizeof cmd, "tar -C '%s' -czf '%s' .", src, path);
    CHECK(system(cmd) == 0);
    f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    data = malloc((size_t)len);
    CHECK(data && fread(data, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    CHECK(EVP_Digest(data, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    free(data);
}

/* A revision: an appspec whose ApplicationStop script appends to marker. */
static void make_revision(const char *name, const char *marker, char *url, char hex[65])
{
    char src[PATH_MAX], path[PATH_MAX], body[PATH_MAX + 64];

    tu_pathf(src, "%s/%s", dir, name);
    CHECK(mkdir(src, 0755) == 0);
    tu_pathf(path, "%s/appspec.yml", src);
    tu_write_text(path, "version: 0.0\nos: linux\nhooks:\n  ApplicationStop:\n"
                        "    - location: stop.sh\n  ApplicationStart:\n"
                        "    - location: start.sh\n");
    snprintf(body, sizeof body, "echo %s >> '%s'", name, marker);
    tu_pathf(path, "%s/stop.sh", src);
    tu_write_script(path, body);
    tu_pathf(path, "%s/start.sh", src);
    tu_write_script(path, "true");
    tu_pathf(path, "%s/%s.tar.gz", dir, name);
    make_bundle(src, path, hex);
    snprintf(url, PATH_MAX + 8, "file://%s", path);
}

static Kdeploy__V1__StepStatus step(kd_host_t *host, const char *deploy_id, kd_event_t ev,
                                    const char *url, const char *sha, kd_step_outcome_t *out)
{
    Kdeploy__V1__StepCommand cmd = KDEPLOY__V1__STEP_COMMAND__INIT;
    Kdeploy__V1__Revision rev = KDEPLOY__V1__REVISION__INIT;

    rev.url = (char *)url;
    rev.sha256 = (char *)sha;
    cmd.event = ev;
    cmd.application = (char *)"shop";
    cmd.group = (char *)"web";
    cmd.revision = &rev;
    kd_step_perform(host, deploy_id, &cmd, out, NULL, NULL);
    return out->status;
}

static void test_stop_refuses_a_broken_next_revision(void)
{
    static volatile sig_atomic_t stop;
    char root[PATH_MAX], marker[PATH_MAX], url1[PATH_MAX + 8], url2[PATH_MAX + 8];
    char sha1[65], sha2[65], cached[PATH_MAX];
    kd_step_outcome_t *out = calloc(1, sizeof *out);
    kd_host_t host = {.id = "web-01", .root = root, .keep_revisions = 5,
                      .max_bundle_bytes = 1u << 20, .stop = &stop};
    unsigned long parses;
    char *text;

    tu_pathf(root, "%s/root", dir);
    tu_pathf(marker, "%s/stopped", dir);
    make_revision("v1", marker, url1, sha1);
    make_revision("v2", marker, url2, sha2);
    parses = kd_specs_parses();
    CHECK(step(&host, "d1", KD_EVENT(DownloadBundle), url1, sha1, out) ==
          KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED);
    CHECK(step(&host, "d1", KD_EVENT(ApplicationStop), url1, sha1, out) ==
          KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED);
    CHECK_MSG(step(&host, "d1", KD_EVENT(Install), url1, sha1, out) ==
              KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED, "%s", out->error);
    CHECK(step(&host, "d1", KD_EVENT(ApplicationStart), url1, sha1, out) ==
          KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED);
    /* Four steps of one revision, one parse. */
    CHECK_MSG(kd_specs_parses() - parses == 1, "%lu parses", kd_specs_parses() - parses);
    /* A changed file is a new parse (the cache keys on the file's identity). */
    tu_pathf(cached, "%s/app-shop/group-web/deploy-d1/bundle/appspec.yml", root);
    tu_write_text(cached, "version: 0.0\nos: linux\nhooks:\n  ApplicationStart:\n"
                          "    - location: start.sh\n      timeout: 5\n");
    CHECK(step(&host, "d1", KD_EVENT(ValidateService), url1, sha1, out) ==
          KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED);
    CHECK_MSG(kd_specs_parses() - parses == 2, "%lu parses", kd_specs_parses() - parses);

    CHECK(step(&host, "d2", KD_EVENT(DownloadBundle), url2, sha2, out) ==
          KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED);
    /* v2's start script goes missing from the cache after its download. */
    tu_pathf(cached, "%s/app-shop/group-web/deploy-d2/bundle/start.sh", root);
    CHECK(unlink(cached) == 0);
    CHECK(step(&host, "d2", KD_EVENT(ApplicationStop), url2, sha2, out) ==
          KDEPLOY__V1__STEP_STATUS__STEP_FAILED);
    CHECK_CONTAINS(out->error, "nothing was stopped");
    CHECK_CONTAINS(out->error, "'start.sh' is missing from the bundle");
    text = tu_read_text(marker);
    CHECK_MSG(text == NULL, "v1's stop script ran: %s", text ? text : "");
    free(text);
    free(out);
}

int main(void)
{
    char rmerr[256];

    if (tu_scratch(dir, "steps-") != 0)
        return 1;
    RUN(test_stop_refuses_a_broken_next_revision);
    kd_remove_tree(dir, rmerr, sizeof rmerr);
    return check_summary();
}
