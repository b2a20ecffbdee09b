/* Lifecycle events (steps) by their appspec names. The values are the wire
 * contract's LifecycleEvent, whose value names are the appspec names. */
#ifndef KD_EVENT_H
#define KD_EVENT_H

#include <stdbool.h>

#include "kdeploy.pb-c.h"

typedef Kdeploy__V1__LifecycleEvent kd_event_t;

#define KD_EVENT(name) KDEPLOY__V1__LIFECYCLE_EVENT__##name
#define KD_EVENT_NONE KDEPLOY__V1__LIFECYCLE_EVENT__LIFECYCLE_EVENT_UNSPECIFIED
#define KD_EVENT_MAX 15 /* one past SwapTraffic */

/* "ApplicationStop" for KD_EVENT(ApplicationStop); "?" for unknown values. */
const char *kd_event_name(kd_event_t ev);
/* Parses an appspec event name (exact case). Returns false if unknown. */
bool kd_event_parse(const char *name, kd_event_t *out);
/* True for the events an appspec may attach hooks to: every step but
 * DownloadBundle, Install, BlockTraffic, AllowTraffic and SwapTraffic. */
bool kd_event_allows_hooks(kd_event_t ev);
/* True for the steps lbctl performs (BlockTraffic, AllowTraffic, SwapTraffic). */
bool kd_event_is_traffic(kd_event_t ev);

#endif
