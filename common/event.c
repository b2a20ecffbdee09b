#include "event.h"

#include <string.h>

const char *kd_event_name(kd_event_t ev)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&kdeploy__v1__lifecycle_event__descriptor, (int)ev);

    return v && ev != KD_EVENT_NONE ? v->name : "?";
}

bool kd_event_parse(const char *name, kd_event_t *out)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value_by_name(&kdeploy__v1__lifecycle_event__descriptor, name);

    if (!v || v->value == KD_EVENT_NONE)
        return false;
    *out = (kd_event_t)v->value;
    return true;
}

bool kd_event_is_traffic(kd_event_t ev)
{
    return ev == KD_EVENT(BlockTraffic) || ev == KD_EVENT(AllowTraffic) ||
           ev == KD_EVENT(SwapTraffic);
}

bool kd_event_allows_hooks(kd_event_t ev)
{
    if (ev <= KD_EVENT_NONE || ev >= KD_EVENT_MAX)
        return false;
    return ev != KD_EVENT(DownloadBundle) && ev != KD_EVENT(Install) && !kd_event_is_traffic(ev);
}
