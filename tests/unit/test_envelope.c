/* The envelope codec: every event kind of the contract survives a round
 * trip, and the type header names the body. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "envelope.h"
#include "event.h"
#include "ids.h"

/* Fills every field of a message through its descriptor, so that a new
 * event kind or field added to the .proto is covered without a test edit. */
static ProtobufCMessage *fill_message(const ProtobufCMessageDescriptor *d, int depth);

static void *fill_scalar(const ProtobufCFieldDescriptor *f, char *slot, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32:
        *(uint32_t *)slot = f->id + 7;
        break;
    case PROTOBUF_C_TYPE_INT64:
        *(int64_t *)slot = (int64_t)1795900000000 + f->id;
        break;
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)slot = 1;
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;

        *(int *)slot = e->values[e->n_values - 1].value;
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        char *s = malloc(32);

        snprintf(s, 32, "%s-%u", f->name, f->id);
        *(char **)slot = s;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        *(ProtobufCMessage **)slot = depth < 4 ? fill_message(f->descriptor, depth + 1) : NULL;
        break;
    default:
        CHECK_MSG(0, "field %s: type %d not covered by the test filler", f->name, f->type);
    }
    return slot;
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE
               ? sizeof(void *) : f->type == PROTOBUF_C_TYPE_INT64 ? 8 : 4;
}

static ProtobufCMessage *fill_message(const ProtobufCMessageDescriptor *d, int depth)
{
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    uint32_t oneof_done = 0;

    d->message_init(m);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char *slot = (char *)m + f->offset;

        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = 2;
            char *arr = calloc(n, elem_size(f));

            for (size_t k = 0; k < n; k++)
                fill_scalar(f, arr + k * elem_size(f), depth);
            *(size_t *)((char *)m + f->quantifier_offset) = n;
            *(void **)slot = arr;
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            /* One member per oneof: the first one met. */
            if (oneof_done == f->quantifier_offset)
                continue;
            oneof_done = f->quantifier_offset;
            *(uint32_t *)((char *)m + f->quantifier_offset) = f->id;
        }
        fill_scalar(f, slot, depth);
    }
    return m;
}

static void test_every_event_kind_round_trips(void)
{
    const ProtobufCMessageDescriptor *d = &kdeploy__v1__envelope__descriptor;
    int kinds = 0;

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char id[KD_UUID_LEN], err[256];
        kd_envelope_t env, *back = NULL;
        uint8_t *buf = NULL, *buf2 = NULL;
        size_t len = 0, len2 = 0;
        ProtobufCMessage *body;

        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        kinds++;
        kd_envelope_init(&env, id, "0b1c2d3e-0000-4000-8000-000000000001", "test@host:1");
        body = fill_message(f->descriptor, 0);
        env.body_case = (kd_body_t)f->id;
        *(ProtobufCMessage **)((char *)&env + f->offset) = body;

        CHECK(kd_envelope_encode(&env, &buf, &len, err, sizeof err) == KD_OK);
        CHECK_MSG(kd_envelope_decode(buf, len, &back, err, sizeof err) == KD_OK, "%s: %s",
                  f->name, err);
        if (back) {
            CHECK(protobuf_c_message_check(&back->base));
            CHECK_STREQ(kd_envelope_type(back), f->name);
            CHECK(kd_envelope_type_parse(f->name) == back->body_case);
            CHECK_STREQ(back->event_id, id);
            CHECK_STREQ(back->producer, "test@host:1");
            CHECK(back->ts_ms == env.ts_ms);
            /* Same bytes again: every field survived. */
            CHECK(kd_envelope_encode(back, &buf2, &len2, err, sizeof err) == KD_OK);
            CHECK_MSG(len2 == len && memcmp(buf, buf2, len) == 0, "%s differs after a round trip",
                      f->name);
        }
        free(buf);
        free(buf2);
        kd_envelope_free(back);
        protobuf_c_message_free_unpacked(body, NULL);
    }
    CHECK_MSG(kinds == 24, "expected 24 event kinds, found %d", kinds);
}

static void test_step_command_fields(void)
{
    char id[KD_UUID_LEN], err[256];
    kd_envelope_t env, *back = NULL;
    Kdeploy__V1__StepCommand step = KDEPLOY__V1__STEP_COMMAND__INIT;
    Kdeploy__V1__Revision rev = KDEPLOY__V1__REVISION__INIT;
    uint8_t *buf = NULL;
    size_t len = 0;

    kd_envelope_init(&env, id, "d-1", "planner@x:1");
    rev.url = "file:///tmp/app.tar.gz";
    rev.sha256 = "abc123";
    step.step_id = "d-1/web-01/ApplicationStop/1";
    step.host = "web-01";
    step.event = KD_EVENT(ApplicationStop);
    step.attempt = 1;
    step.revision = &rev;
    step.operation = KDEPLOY__V1__OPERATION__ROLLBACK;
    env.body_case = KD_BODY(STEP);
    env.step = &step;
    CHECK(kd_envelope_encode(&env, &buf, &len, err, sizeof err) == KD_OK);
    CHECK(kd_envelope_decode(buf, len, &back, err, sizeof err) == KD_OK);
    if (back) {
        CHECK_STREQ(kd_envelope_type(back), "step");
        CHECK_STREQ(back->step->host, "web-01");
        CHECK_STREQ(kd_event_name(back->step->event), "ApplicationStop");
        CHECK_STREQ(back->step->revision->sha256, "abc123");
        CHECK(back->step->operation == KDEPLOY__V1__OPERATION__ROLLBACK);
    }
    free(buf);
    kd_envelope_free(back);
}

static void test_garbage_is_refused(void)
{
    char err[256] = "";
    kd_envelope_t *env = NULL;
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    char id[KD_UUID_LEN];
    kd_envelope_t empty;
    uint8_t *buf = NULL;
    size_t len;

    CHECK(kd_envelope_decode(junk, sizeof junk, &env, err, sizeof err) == KD_EPROTO);
    CHECK(env == NULL);
    CHECK_CONTAINS(err, "not a kdeploy envelope");
    /* An envelope without a body is not an event. */
    CHECK(kd_envelope_decode("", 0, &env, err, sizeof err) == KD_EPROTO);
    kd_envelope_init(&empty, id, "d", "p");
    CHECK(kd_envelope_encode(&empty, &buf, &len, err, sizeof err) == KD_EINVAL);
    CHECK(kd_envelope_type_parse("deploy_id") == KD_BODY(_NOT_SET));
    CHECK(kd_envelope_type_parse("nonsense") == KD_BODY(_NOT_SET));
}

static void test_event_names_are_the_appspec_names(void)
{
    static const char *const names[] = {
        "DownloadBundle", "BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic",
        "ApplicationStop", "BeforeInstall", "Install", "AfterInstall", "ApplicationStart",
        "ValidateService", "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic",
        "SwapTraffic",
    };
    kd_event_t ev;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        CHECK(kd_event_parse(names[i], &ev));
        CHECK(ev == (kd_event_t)(i + 1));
        CHECK_STREQ(kd_event_name(ev), names[i]);
    }
    CHECK(!kd_event_parse("applicationstop", &ev));
    CHECK(!kd_event_parse("LIFECYCLE_EVENT_UNSPECIFIED", &ev));
    CHECK(!kd_event_allows_hooks(KD_EVENT(Install)));
    CHECK(!kd_event_allows_hooks(KD_EVENT(DownloadBundle)));
    CHECK(!kd_event_allows_hooks(KD_EVENT(BlockTraffic)));
    CHECK(kd_event_allows_hooks(KD_EVENT(ValidateService)));
    CHECK(kd_event_is_traffic(KD_EVENT(SwapTraffic)));
}

int main(void)
{
    RUN(test_every_event_kind_round_trips);
    RUN(test_step_command_fields);
    RUN(test_garbage_is_refused);
    RUN(test_event_names_are_the_appspec_names);
    return check_summary();
}
