/* fuzz_jscan: any bytes through jdoc_parse, with jansson as the model
 * (tests/unit/jscan_model.h): both accept a document and read it the same, or
 * both refuse it. Every string is then also read through each accessor, which
 * must agree with jv_buf_text. */
#include "fuzz.h"
#include "jscan.h"
#include "jscan_model.h"

#include <string.h>

static void check_string(struct jdoc *d, const struct jval *v)
{
	struct buf full = {0};
	jv_buf_text(&full, v);
	const char *text = full.data ? full.data : "";
	FUZZ_CHECK(strlen(text) == full.len); /* a NUL became U+FFFD */
	FUZZ_CHECK(fuzz_utf8_valid(text, full.len));
	FUZZ_CHECK(jv_str_eq(v, text));
	const char *s = jdoc_str(d, v);
	FUZZ_CHECK(s && strcmp(s, text) == 0);
	static const size_t sizes[] = {1, 2, 5, 16, 64};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char out[64];
		size_t want = full.len < sizes[i] - 1 ? full.len : sizes[i] - 1;
		FUZZ_CHECK(jv_cstr(v, out, sizes[i]) == out);
		FUZZ_CHECK(strlen(out) == want && memcmp(out, text, want) == 0);
	}
	buf_free(&full);
}

/* Each member of an object is found by its key: at its place or at a later
 * member of the same name (the last one wins). */
static void check_object(struct jdoc *d, const struct jval *obj)
{
	const struct jval *k = obj + 1;
	for (uint32_t i = 0; i < obj->n; i++) {
		const struct jval *val = k + 1;
		const struct jval *got = jv_get(obj, jdoc_str(d, k));
		FUZZ_CHECK(got != NULL && got >= val && got < obj + obj->span);
		int64_t n;
		if (jv_count(obj, jdoc_str(d, k), &n) == 0)
			FUZZ_CHECK(n >= 0 && n <= INT64_C(1000000000000000));
		k = val + val->span;
	}
	FUZZ_CHECK(k == obj + obj->span);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	FUZZ_CHECK(agree(text, size) != 0);

	struct jdoc d;
	if (jdoc_parse(&d, text, size) == 0) {
		size_t n = d.n; /* jdoc_str does not add values */
		for (size_t i = 0; i < n; i++) {
			const struct jval *v = &d.v[i];
			FUZZ_CHECK(v->span >= 1 && i + v->span <= n);
			if (v->type == J_STRING)
				check_string(&d, v);
			else if (v->type == J_OBJECT)
				check_object(&d, v);
			else if (v->type == J_ARRAY)
				FUZZ_CHECK(jv_at(v, v->n) == NULL &&
				           (v->n == 0 || jv_at(v, v->n - 1)));
		}
	} else {
		FUZZ_CHECK(jdoc_root(&d) == NULL);
	}
	jdoc_free(&d);
	return 0;
}
