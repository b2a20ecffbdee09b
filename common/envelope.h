/* The envelope: every kdeploy message's value. Encoding, decoding, and the
 * body's type name (the `kdeploy-type` header). */
#ifndef KD_ENVELOPE_H
#define KD_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "kdeploy.pb-c.h"
#include "status.h"

typedef Kdeploy__V1__Envelope kd_envelope_t;
typedef Kdeploy__V1__Envelope__BodyCase kd_body_t;

#define KD_BODY(name) KDEPLOY__V1__ENVELOPE__BODY_##name

/* Initializes env for a new event: a fresh event id written into the
 * caller's id buffer, the time now, the given deploy id and producer. The
 * strings are referenced, not copied; env must not outlive them. */
void kd_envelope_init(kd_envelope_t *env, char event_id[37], const char *deploy_id,
                      const char *producer);

/* Serializes env into a malloc'd buffer (*out, *outlen) the caller frees. */
kd_status_t kd_envelope_encode(const kd_envelope_t *env, uint8_t **out, size_t *outlen,
                               char *err, size_t errsz);

/* Parses data into *out (free with kd_envelope_free). Returns KD_EPROTO for
 * bytes that are not an envelope, or an envelope with no body. */
kd_status_t kd_envelope_decode(const void *data, size_t len, kd_envelope_t **out,
                               char *err, size_t errsz);

/* Frees an envelope returned by kd_envelope_decode; accepts NULL. */
void kd_envelope_free(kd_envelope_t *env);

/* The body's field name in the .proto ("step", "step_result", ...), or "" if
 * none: the value of the `kdeploy-type` header. */
const char *kd_envelope_type(const kd_envelope_t *env);
/* The body case for a type name; KD_BODY(_NOT_SET) if unknown. */
kd_body_t kd_envelope_type_parse(const char *type);

#endif
