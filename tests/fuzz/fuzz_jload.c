/* fuzz_jload: any bytes through jload and json_loadb, under each set of
 * flags jload reads itself: both return the same document (compared as
 * jansson writes it, member order and numbers included) or both fail with
 * the same error. */
#include "fuzz.h"
#include "jload.h"

#include <string.h>

static void check(const char *text, size_t len, size_t flags)
{
	json_error_t want_err, got_err;
	json_t *want = json_loadb(text, len, flags, &want_err);
	json_t *got = jload(text, len, flags, &got_err);
	FUZZ_CHECK((want == NULL) == (got == NULL));
	if (want) {
		size_t dump = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17);
		char *a = json_dumps(want, dump), *b = json_dumps(got, dump);
		FUZZ_CHECK(a && b && strcmp(a, b) == 0);
		FUZZ_CHECK(json_equal(want, got));
		free(a);
		free(b);
	} else {
		FUZZ_CHECK(strcmp(want_err.text, got_err.text) == 0);
		FUZZ_CHECK(want_err.line == got_err.line && want_err.column == got_err.column &&
		           want_err.position == got_err.position);
	}
	json_decref(want);
	json_decref(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	check(text, size, 0);
	check(text, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES);
	check(text, size, JSON_REJECT_DUPLICATES);
	return 0;
}
