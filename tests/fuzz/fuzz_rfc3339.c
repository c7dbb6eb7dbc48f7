/* fuzz_rfc3339: a date-time (a job's deadline) through time_parse_rfc3339.
 *
 * Checked beyond the sanitizers: a time that parses formats back to itself,
 * and one written as time_format_rfc3339 writes it reads back as the same
 * text. */
#include "fuzz.h"
#include "timeutil.h"

#include <string.h>

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: what four digits of
 * year can write. */
#define MIN_MS (INT64_C(-62167219200) * 1000)
#define MAX_MS (INT64_C(253402300799) * 1000 + 999)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[64], out[32], again[32];
	int64_t ms, ms2;
	if (size >= sizeof s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0'; /* the parser takes a C string: a NUL inside ends it early */
	if (time_parse_rfc3339(s, &ms) != 0)
		return 0;
	if (ms < MIN_MS || ms > MAX_MS)
		return 0;
	time_format_rfc3339(ms, out, sizeof out);
	FUZZ_CHECK(time_parse_rfc3339(out, &ms2) == 0 && ms2 == ms);
	time_format_rfc3339(ms2, again, sizeof again);
	FUZZ_CHECK(strcmp(again, out) == 0);
	return 0;
}
