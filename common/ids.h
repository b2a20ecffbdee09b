/* Identifiers and clocks shared by every service. */
#ifndef KD_IDS_H
#define KD_IDS_H

#include <stddef.h>
#include <stdint.h>

#define KD_UUID_LEN 37 /* 36 characters and the NUL */

/* Writes a new random UUID in its lower-case text form into out. */
void kd_uuid_new(char out[KD_UUID_LEN]);
/* True if s is a UUID in text form. */
int kd_uuid_valid(const char *s);
/* Milliseconds since the epoch (wall clock, for event timestamps). */
int64_t kd_now_ms(void);
/* Milliseconds of a monotonic clock (for durations and timeouts). */
int64_t kd_mono_ms(void);
/* Sleeps ms milliseconds (a signal may end it early). */
void kd_sleep_ms(int ms);
/* Writes "<service>@<hostname>:<pid>" into out, the envelope's producer. */
void kd_self_name(const char *service, char *out, size_t outsz);

#endif
