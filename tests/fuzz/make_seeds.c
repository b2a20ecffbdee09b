/* Writes seed inputs for the step fuzzer: encoded envelopes holding a step
 * of every event for the fuzzer's cached revision (app "a", group "g",
 * deploy "d"), and a traffic command. Run once to refresh
 * tests/fuzz/corpus/fuzz_step:  kd-fuzz-seeds DIR */
#include <stdio.h>
#include <stdlib.h>

#include "envelope.h"
#include "event.h"
#include "fsutil.h"

static int write_env(const char *dir, const char *name, const kd_envelope_t *env)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    char path[4096], err[256];
    int rc = -1;

    if (kd_envelope_encode(env, &bytes, &len, err, sizeof err) == KD_OK &&
        kd_pathf(path, sizeof path, "%s/%s", dir, name) == KD_OK &&
        kd_write_file_atomic(path, bytes, len, 0644, err, sizeof err) == KD_OK)
        rc = 0;
    free(bytes);
    return rc;
}

int main(int argc, char **argv)
{
    char id[37], name[64], step_id[128];
    kd_envelope_t env;
    int rc = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: kd-fuzz-seeds DIR\n");
        return 2;
    }
    for (int ev = 1; ev < KD_EVENT_MAX; ev++) {
        Kdeploy__V1__StepCommand step = KDEPLOY__V1__STEP_COMMAND__INIT;

        snprintf(step_id, sizeof step_id, "d/h/%s/1", kd_event_name((kd_event_t)ev));
        step.step_id = step_id;
        step.host = "h";
        step.event = (kd_event_t)ev;
        step.attempt = 1;
        step.application = "a";
        step.group = "g";
        step.revision_deploy_id = "d";
        step.file_exists = (Kdeploy__V1__FileExistsPolicy)(ev % 4);
        kd_envelope_init(&env, id, "d", "seed");
        env.body_case = KD_BODY(STEP);
        env.step = &step;
        snprintf(name, sizeof name, "step-%s", kd_event_name((kd_event_t)ev));
        rc |= write_env(argv[1], name, &env);
    }
    {
        Kdeploy__V1__TrafficCommand tc = KDEPLOY__V1__TRAFFIC_COMMAND__INIT;

        tc.traffic_id = "d/web/BlockTraffic/1";
        tc.host = "h";
        kd_envelope_init(&env, id, "d", "seed");
        env.body_case = KD_BODY(TRAFFIC);
        env.traffic = &tc;
        rc |= write_env(argv[1], "traffic", &env);
    }
    return rc ? 1 : 0;
}
