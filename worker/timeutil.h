/* timeutil: wall-clock and monotonic milliseconds, RFC 3339 in and out.
 * The wall clock can be shifted for tests (time_set_offset_ms(); the worker
 * sets it from the test hook PROMPTYARD_CLOCK_OFFSET_MS, testhook.h), so
 * that a day budget can be carried across midnight without waiting for it.
 * timeutil reads no hook itself: testhook logs, and log reads the clock. */
#ifndef PROMPTYARD_TIMEUTIL_H
#define PROMPTYARD_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Unix time in milliseconds (UTC), plus the test offset if one is set. */
int64_t time_now_ms(void);
/* Monotonic milliseconds, for timeouts and latencies. */
int64_t time_mono_ms(void);
/* Shifts time_now_ms() by offset_ms from now on (tests). */
void time_set_offset_ms(int64_t offset_ms);
/* Writes "2026-11-22T03:00:00.123Z". out needs 25 bytes. */
void time_format_rfc3339(int64_t unix_ms, char *out, size_t out_size);
/* Parses an RFC 3339 date-time ("2026-11-22T03:00:00Z", fractions and offsets
 * allowed). Returns 0 and sets *unix_ms, or -1 if s is not one: a date that
 * does not exist (February 31, February 29 of a common year), hour 24, or a
 * second 60 anywhere but 23:59 UTC, where leap seconds go (it counts as :59;
 * the table of actual leap seconds is not checked, as RFC 3339 advises). */
int time_parse_rfc3339(const char *s, int64_t *unix_ms);
/* Days since 1970-01-01 of a proleptic Gregorian date (m 1-12, d 1-31). */
int64_t time_days_from_civil(int y, int m, int d);

#endif
