/* jload: json_loadb() with jscan's reading.
 *
 * jansson's own parser reads a byte at a time through a stream, checking
 * UTF-8 and copying every byte into a growing buffer: for a job of a few
 * hundred bytes it was a fifth of the worker's instructions per job (make
 * bench b under callgrind). jload reads the text with jscan (worker/jscan.h)
 * and builds the same jansson tree from its values; whatever jscan refuses,
 * or jansson would read otherwise (a number past jansson's range, "\u0000",
 * a repeated key under JSON_REJECT_DUPLICATES, nesting past jscan's depth,
 * a top-level scalar), goes to json_loadb itself, which then decides and
 * writes the error. So the result is json_loadb's, whatever the text
 * (tests/fuzz/fuzz_jload.c checks it byte for byte). */
#ifndef PROMPTYARD_JLOAD_H
#define PROMPTYARD_JLOAD_H

#include <jansson.h>
#include <stddef.h>

/* json_loadb(text, len, flags, err): a new reference, or NULL with err
 * filled by jansson. flags other than JSON_DECODE_ANY and
 * JSON_REJECT_DUPLICATES go to json_loadb at once. err is written only on
 * failure. */
json_t *jload(const char *text, size_t len, size_t flags, json_error_t *err);

#endif
