/* Text from the outside world (hook output) travels in protobuf string
 * fields, which other languages' decoders require to be valid UTF-8. */
#ifndef KD_UTF8_H
#define KD_UTF8_H

#include <stddef.h>

/* Replaces every byte that is not part of a valid UTF-8 sequence in the
 * NUL-terminated s with '?', in place; also drops a sequence cut short at
 * the start (a tail taken from the middle of a character). */
void kd_utf8_sanitize(char *s);

#endif
