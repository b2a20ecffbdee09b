#include "envelope.h"

#include <stdlib.h>
#include <string.h>

#include "ids.h"

void kd_envelope_init(kd_envelope_t *env, char event_id[KD_UUID_LEN], const char *deploy_id,
                      const char *producer)
{
    kdeploy__v1__envelope__init(env);
    kd_uuid_new(event_id);
    env->event_id = event_id;
    env->deploy_id = (char *)(deploy_id ? deploy_id : "");
    env->producer = (char *)(producer ? producer : "");
    env->ts_ms = kd_now_ms();
}

kd_status_t kd_envelope_encode(const kd_envelope_t *env, uint8_t **out, size_t *outlen,
                               char *err, size_t errsz)
{
    size_t len;
    uint8_t *buf;

    if (env->body_case == KD_BODY(_NOT_SET))
        return kd_err(err, errsz, KD_EINVAL, "envelope has no body");
    len = kdeploy__v1__envelope__get_packed_size(env);
    buf = malloc(len ? len : 1);
    if (!buf)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory encoding envelope");
    kdeploy__v1__envelope__pack(env, buf);
    *out = buf;
    *outlen = len;
    return KD_OK;
}

kd_status_t kd_envelope_decode(const void *data, size_t len, kd_envelope_t **out,
                               char *err, size_t errsz)
{
    kd_envelope_t *env = kdeploy__v1__envelope__unpack(NULL, len, data);

    if (!env)
        return kd_err(err, errsz, KD_EPROTO, "not a kdeploy envelope (%zu bytes)", len);
    if (env->body_case == KD_BODY(_NOT_SET)) {
        kdeploy__v1__envelope__free_unpacked(env, NULL);
        return kd_err(err, errsz, KD_EPROTO, "envelope without a body");
    }
    *out = env;
    return KD_OK;
}

void kd_envelope_free(kd_envelope_t *env)
{
    if (env)
        kdeploy__v1__envelope__free_unpacked(env, NULL);
}

const char *kd_envelope_type(const kd_envelope_t *env)
{
    const ProtobufCFieldDescriptor *f;

    if (!env || env->body_case == KD_BODY(_NOT_SET))
        return "";
    f = protobuf_c_message_descriptor_get_field(&kdeploy__v1__envelope__descriptor,
                                                (unsigned)env->body_case);
    return f ? f->name : "";
}

kd_body_t kd_envelope_type_parse(const char *type)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(&kdeploy__v1__envelope__descriptor, type);

    /* Only the oneof's members name a body; the header fields do not. */
    if (!f || f->id < 10)
        return KD_BODY(_NOT_SET);
    return (kd_body_t)f->id;
}
