/* Unit tests of jload: json_loadb's result, whatever the text, by jscan's
 * reading where jscan can read it (tests/fuzz/fuzz_jload.c does the same on
 * any bytes). */
#include "buf.h"
#include "jload.h"
#include "unit.h"

#include <string.h>

#define DUMP (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))

/* Does jload read text[0..len) under flags as json_loadb does: the same
 * document written the same, or the same error at the same place? */
static int same_as_jansson(const char *text, size_t len, size_t flags)
{
	json_error_t we, ge;
	json_t *want = json_loadb(text, len, flags, &we);
	json_t *got = jload(text, len, flags, &ge);
	int ok;
	if (!want || !got) {
		ok = !want && !got && strcmp(we.text, ge.text) == 0 && we.line == ge.line &&
		     we.column == ge.column && we.position == ge.position;
	} else {
		char *a = json_dumps(want, DUMP), *b = json_dumps(got, DUMP);
		ok = a && b && strcmp(a, b) == 0;
		free(a);
		free(b);
	}
	json_decref(want);
	json_decref(got);
	return ok;
}

#define SAME(lit)                                                                                  \
	do {                                                                                       \
		for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++)                        \
			if (!same_as_jansson(lit, sizeof(lit) - 1, flags[f]))                      \
				UNIT_FAIL("jload differs from json_loadb on %s (flags %zu)", #lit, \
				          flags[f]);                                               \
	} while (0)

static const size_t flags[] = {0, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, JSON_REJECT_DUPLICATES,
                               JSON_ALLOW_NUL};

TEST(reads_as_json_loadb)
{
	SAME("{\"id\":\"j-1\",\"prompt\":\"Say "
	     "\\\"hi\\\"\\n\",\"metadata\":{\"doc\":7,\"x\":[1,2.5]}}");
	SAME("{\"b\":1,\"a\":2,\"c\":{\"z\":null,\"y\":true,\"x\":false}}"); /* member order */
	SAME("{\"\\u00e9\\ud83d\\ude00\":\"caf\xC3\xA9\",\"\\n\":{\"\\t\":\"\\/\"}}");
	SAME("[9223372036854775807,-9223372036854775808,-0,0]");
	SAME("[9223372036854775808]");
	SAME("[-9223372036854775809]");
	SAME("[123456789012345678901234567890]");
	SAME("[1e400]");
	SAME("[-1e400]");
	SAME("[1e-400,-0.0,0.1,1E+2,2.5e-3,1.7976931348623157e308]");
	SAME("{\"a\":1,\"a\":2}"); /* refused under JSON_REJECT_DUPLICATES only */
	SAME("{\"a\":{\"k\":1,\"k\":2}}");
	SAME("{\"a\\u0062\":1,\"ab\":2}");
	SAME("[\"a\\u0000b\"]");
	SAME("{\"k\\u0000\":1}");
	SAME("\"top-level string\"");
	SAME("42");
	SAME("null");
	SAME("");
	SAME("   ");
	SAME("{");
	SAME("{\"a\":1,}");
	SAME("[01]");
	SAME("[\"\xC0\xAF\"]");
	SAME("[\"\xED\xA0\x80\"]");
	SAME("[\"\\ud800\"]");
	SAME("[5\0]");
	SAME("{} {}");
	SAME("{}");
	SAME("[]");
}

TEST(deep_nesting_goes_to_jansson)
{
	/* Deeper than jscan reads (512), within jansson's 2048; then past it. */
	static const int depths[] = {600, 2100};
	for (size_t i = 0; i < 2; i++) {
		struct buf b = {0};
		for (int k = 0; k < depths[i]; k++)
			buf_puts(&b, "[");
		for (int k = 0; k < depths[i]; k++)
			buf_puts(&b, "]");
		CHECK(same_as_jansson(b.data, b.len, 0));
		buf_free(&b);
	}
}

TEST(large_document)
{
	struct buf b = {0};
	buf_puts(&b, "{\"items\":[");
	for (int i = 0; i < 2000; i++)
		buf_printf(&b, "%s{\"k\":%d,\"s\":\"v\\u00e9%d\",\"r\":%d.5}", i ? "," : "", i, i,
		           i);
	buf_puts(&b, "]}");
	CHECK(same_as_jansson(b.data, b.len, JSON_REJECT_DUPLICATES));
	json_error_t err;
	json_t *j = jload(b.data, b.len, 0, &err);
	CHECK(j && json_array_size(json_object_get(j, "items")) == 2000);
	json_decref(j);
	buf_free(&b);
}

int main(void)
{
	RUN(reads_as_json_loadb);
	RUN(deep_nesting_goes_to_jansson);
	RUN(large_document);
	return unit_done();
}
