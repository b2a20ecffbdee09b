/* The dashboard's events: one JSON line per topic event, whatever the
 * output a hook printed, and nothing for events the page does not use. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dashboard_feed.h"
#include "event.h"
#include "ids.h"

static void test_step_result_with_hostile_output(void)
{
    Kdeploy__V1__StepResult r = KDEPLOY__V1__STEP_RESULT__INIT;
    char id[KD_UUID_LEN], *text;
    kd_envelope_t env;
    json_t *o;

    kd_envelope_init(&env, id, "d-1", "worker@x:1");
    env.body_case = KD_BODY(STEP_RESULT);
    env.step_result = &r;
    r.host = "web-02";
    r.event = KD_EVENT(ValidateService);
    r.status = KDEPLOY__V1__STEP_STATUS__STEP_FAILED;
    r.exit_code = 3;
    r.duration_ms = 420;
    r.started_ms = 1000;
    r.output_tail = "line 1\n\ndata: {\"type\":\"synced\"}\n</script><script>alert(1)</script>";
    r.error = "exit code 3";
    text = kd_feed_event_json(&env, 7);
    CHECK(text != NULL);
    /* One line: a blank line in the output cannot end the event early. */
    CHECK(text && !strchr(text, '\n'));
    o = json_loads(text ? text : "{}", 0, NULL);
    CHECK_STREQ(json_string_value(json_object_get(o, "type")), "step_result");
    CHECK_STREQ(json_string_value(json_object_get(o, "step")), "ValidateService");
    CHECK_STREQ(json_string_value(json_object_get(o, "status")), "failed");
    CHECK_STREQ(json_string_value(json_object_get(o, "output_tail")), r.output_tail);
    CHECK(json_integer_value(json_object_get(o, "seq")) == 7);
    CHECK(json_integer_value(json_object_get(o, "exit_code")) == 3);
    json_decref(o);
    free(text);
}

static void test_events_the_page_does_not_use(void)
{
    Kdeploy__V1__StepCommand cmd = KDEPLOY__V1__STEP_COMMAND__INIT;
    Kdeploy__V1__RollbackStarted rs = KDEPLOY__V1__ROLLBACK_STARTED__INIT;
    char id[KD_UUID_LEN], *text;
    kd_envelope_t env;

    kd_envelope_init(&env, id, "d-1", "planner@x:1");
    env.body_case = KD_BODY(STEP);
    env.step = &cmd;
    CHECK(kd_feed_event_json(&env, 1) == NULL);
    env.body_case = KD_BODY(ROLLBACK_STARTED);
    env.rollback_started = &rs;
    rs.rollback_of = "d-1";
    rs.rollback_deploy_id = "d-2";
    text = kd_feed_event_json(&env, 2);
    CHECK_CONTAINS(text, "\"rollback_id\":\"d-2\"");
    free(text);
}

int main(void)
{
    RUN(test_step_result_with_hostile_output);
    RUN(test_events_the_page_does_not_use);
    return check_summary();
}
