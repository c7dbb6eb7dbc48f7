/* Unit tests of jscan, against jansson as the model: every document either
 * both accept (and then read the same) or both refuse. */
#include "jscan.h"
#include "unit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* jansson's text of a string, NUL as U+FFFD (jscan's reading). */
static void model_text(struct buf *b, const json_t *s)
{
	const char *p = json_string_value(s);
	size_t n = json_string_length(s);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\0')
			buf_puts(b, "\xEF\xBF\xBD");
		else
			buf_append(b, &p[i], 1);
	}
}

/* Does v read as the model m? */
static bool same(const struct jval *v, const json_t *m)
{
	switch (json_typeof(m)) {
	case JSON_OBJECT: {
		if (!jv_is_object(v))
			return false;
		/* Every key of v is in the model (a repeated key counts once there). */
		const struct jval *k = v + 1;
		for (uint32_t i = 0; i < v->n; i++) {
			struct buf name = {0};
			jv_buf_text(&name, k);
			bool found =
			        json_object_getn(m, name.data ? name.data : "", name.len) != NULL;
			buf_free(&name);
			if (!found)
				return false;
			k = jv_next(k + 1);
		}
		const char *key;
		json_t *mv;
		json_object_foreach ((json_t *)m, key, mv) {
			if (!same(jv_get(v, key), mv))
				return false;
		}
		return true;
	}
	case JSON_ARRAY: {
		if (jv_size(v) != json_array_size(m))
			return false;
		size_t i;
		const struct jval *el;
		jv_array_foreach(v, i, el) if (!same(el, json_array_get(m, i))) return false;
		return true;
	}
	case JSON_STRING: {
		struct buf a = {0}, b = {0};
		jv_buf_text(&a, v);
		model_text(&b, m);
		bool eq = jv_is_string(v) && a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
		buf_free(&a);
		buf_free(&b);
		return eq;
	}
	case JSON_INTEGER: {
		if (jv_type(v) != J_INTEGER)
			return false;
		json_int_t x = json_integer_value(m);
		if (x < 0 || x > INT64_C(1000000000000000))
			return true; /* outside jv_count's range: the type is what is checked */
		/* Read through jv_count on a one-member object of our own. */
		char text[64];
		snprintf(text, sizeof text, "{\"k\":%.*s}", (int)v->len, v->s);
		struct jdoc d;
		int64_t n = -1;
		bool ok = jdoc_parse(&d, text, strlen(text)) == 0 &&
		          jv_count(jdoc_root(&d), "k", &n) == 0 && n == x;
		jdoc_free(&d);
		return ok;
	}
	case JSON_REAL: return jv_type(v) == J_REAL;
	case JSON_TRUE: return jv_type(v) == J_TRUE;
	case JSON_FALSE: return jv_type(v) == J_FALSE;
	case JSON_NULL: return jv_type(v) == J_NULL;
	}
	return false;
}

/* Parses text with both; 1 when they agree, 0 when not; -1 when jansson
 * refused for a reason jscan does not share (a number out of its range). */
static int agree(const char *text, size_t len)
{
	json_error_t err;
	json_t *m = json_loadb(text, len, JSON_ALLOW_NUL, &err);
	struct jdoc d;
	int rc = jdoc_parse(&d, text, len);
	int out;
	if (!m && (strstr(err.text, "too big") || strstr(err.text, "overflow")))
		out = -1;
	else if (!m)
		out = rc < 0;
	else
		out = rc == 0 && same(jdoc_root(&d), m);
	json_decref(m);
	jdoc_free(&d);
	return out;
}

#define AGREES(lit)                                                                                \
	do {                                                                                       \
		if (agree(lit, sizeof(lit) - 1) != 1)                                              \
			UNIT_FAIL("jscan and jansson differ on %s", #lit);                         \
	} while (0)

TEST(agrees_with_jansson_on_cases)
{
	AGREES("{}");
	AGREES("[]");
	AGREES(" {\"a\" : [1, 2.5, -0, 1e3, true, false, null, \"x\"]} \n");
	AGREES("{\"a\":1,\"a\":2}");
	AGREES("{\"\\u0061\":\"\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/\"}");
	AGREES("[\"nul\\u0000inside\"]");
	AGREES("[\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"]");
	AGREES("");
	AGREES("   ");
	AGREES("\"top-level string\"");
	AGREES("42");
	AGREES("{");
	AGREES("{\"a\":}");
	AGREES("{\"a\" 1}");
	AGREES("{\"a\":1,}");
	AGREES("[1,]");
	AGREES("[01]");
	AGREES("[1.]");
	AGREES("[.5]");
	AGREES("[1e]");
	AGREES("[-]");
	AGREES("[+1]");
	AGREES("[tru]");
	AGREES("[nulls]");
	AGREES("{} {}");
	AGREES("[\"\\x\"]");
	AGREES("[\"\\u12\"]");
	AGREES("[\"\\udc00\"]");
	AGREES("[\"\\ud800\"]");
	AGREES("[\"\\ud800\\u0041\"]");
	AGREES("[\"raw\ttab\"]");
	AGREES("[\"\xC0\xAF\"]");         /* overlong */
	AGREES("[\"\xED\xA0\x80\"]");     /* a surrogate in UTF-8 */
	AGREES("[\"\xF4\x90\x80\x80\"]"); /* past U+10FFFF */
	AGREES("[\"\xE2\x82\"]");         /* cut short */
	AGREES("[\"\xFF\"]");
	AGREES("[\"unterminated]");
	AGREES("{\"a\":[{\"b\":[[],{}]},{\"c\":{\"d\":[1,[2,[3]]]}}],\"e\":\"f\"}");
}

/* Random damage to real answers: truncations, flipped and inserted bytes. */
TEST(agrees_with_jansson_on_mutations)
{
	static const char *const seeds[] = {
	        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
	        "\"message\":{\"role\":\"assistant\",\"content\":\"Hello \\u00e9\\n\\\"q\\\"\","
	        "\"refusal\":null},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,"
	        "\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":0}}}",
	        "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"Hi "
	        "\xF0\x9F\x98\x80\"}],"
	        "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":5,\"output_tokens\":7}}",
	        "[{\"error\":{\"code\":400,\"message\":\"bad\",\"status\":\"INVALID_ARGUMENT\","
	        "\"details\":[{\"reason\":\"API_KEY_INVALID\"}]}}]",
	};
	static const char alphabet[] = "{}[]\",:\\u0 1-.eE\x80\xC3\xA9tfn\"a";
	unsigned seed = 12345;
	int compared = 0, skipped = 0;
	for (int iter = 0; iter < 30000; iter++) {
		const char *src = seeds[iter % 3];
		size_t n = strlen(src);
		char text[512];
		memcpy(text, src, n);
		int edits = 1 + (int)((seed >> 3) % 3);
		for (int k = 0; k < edits; k++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = (seed >> 8) % n;
			unsigned what = (seed >> 20) % 3;
			char c = alphabet[(seed >> 12) % (sizeof alphabet - 1)];
			if (what == 0) {
				n = at; /* truncate */
			} else if (what == 1) {
				text[at] = c;
			} else if (n + 1 < sizeof text) {
				memmove(text + at + 1, text + at, n - at);
				text[at] = c;
				n++;
			}
			if (n == 0)
				break;
		}
		int a = agree(text, n);
		if (a < 0) {
			skipped++;
			continue;
		}
		compared++;
		if (a != 1) {
			UNIT_FAIL("jscan and jansson differ on mutation %d: %.*s", iter, (int)n,
			          text);
			return;
		}
	}
	CHECK(compared > 29000);
	(void)skipped;
}

TEST(reads_members_and_counts)
{
	const char *text = "{\"usage\":{\"a\":12,\"b\":null,\"c\":-1,\"d\":1.5,\"e\":\"7\","
	                   "\"f\":1000000000000000,\"g\":1000000000000001,\"h\":-0,"
	                   "\"i\":99999999999999999999999},\"a\":1,\"a\":2}";
	struct jdoc d;
	CHECK_INT(jdoc_parse(&d, text, strlen(text)), 0);
	const struct jval *root = jdoc_root(&d), *u = jv_get(root, "usage");
	int64_t n;
	CHECK(jv_count(u, "a", &n) == 0 && n == 12);
	CHECK(jv_count(u, "b", &n) == 0 && n == 0);
	CHECK(jv_count(u, "missing", &n) == 0 && n == 0);
	CHECK(jv_count(u, "c", &n) < 0);
	CHECK(jv_count(u, "d", &n) < 0);
	CHECK(jv_count(u, "e", &n) < 0);
	CHECK(jv_count(u, "f", &n) == 0 && n == INT64_C(1000000000000000));
	CHECK(jv_count(u, "g", &n) < 0);
	CHECK(jv_count(u, "h", &n) == 0 && n == 0);
	CHECK(jv_count(u, "i", &n) < 0);
	CHECK(jv_count(NULL, "a", &n) == 0 && n == 0);
	CHECK(jv_count(jv_get(root, "a"), "a", &n) == 0); /* not an object: absent */
	CHECK(jv_count(root, "a", &n) == 0 && n == 2);    /* the last of a repeated key */
	CHECK(jv_get(NULL, "a") == NULL);
	CHECK(jv_at(root, 0) == NULL);
	CHECK_INT(jv_size(root), 0);
	jdoc_free(&d);
}

TEST(reads_strings)
{
	const char *text = "[\"stop\",\"st\\u006fp\",\"a\\u0000b\",\"" /* a long one */
	                   "0123456789012345678901234567890123456789\",1]";
	struct jdoc d;
	CHECK_INT(jdoc_parse(&d, text, strlen(text)), 0);
	const struct jval *root = jdoc_root(&d);
	char w[16];
	CHECK(jv_str_eq(jv_at(root, 0), "stop"));
	CHECK(jv_str_eq(jv_at(root, 1), "stop"));
	CHECK(!jv_str_eq(jv_at(root, 1), "sto"));
	CHECK(!jv_str_eq(jv_at(root, 4), "1"));
	CHECK_STR(jv_cstr(jv_at(root, 1), w, sizeof w), "stop");
	CHECK_STR(jv_cstr(jv_at(root, 2), w, sizeof w), "a\xEF\xBF\xBD"
	                                                "b");
	CHECK_STR(jv_cstr(jv_at(root, 3), w, sizeof w), "012345678901234");
	CHECK(jv_cstr(jv_at(root, 4), w, sizeof w) == NULL);
	CHECK(jv_cstr(NULL, w, sizeof w) == NULL);
	CHECK_STR(jdoc_str(&d, jv_at(root, 1)), "stop");
	CHECK(jdoc_str(&d, jv_at(root, 4)) == NULL);
	jdoc_free(&d);
}

TEST(refuses_deep_nesting_and_grows_past_inline)
{
	struct buf b = {0};
	for (int i = 0; i < 600; i++)
		buf_puts(&b, "[");
	for (int i = 0; i < 600; i++)
		buf_puts(&b, "]");
	struct jdoc d;
	CHECK(jdoc_parse(&d, b.data, b.len) < 0);
	CHECK(jdoc_root(&d) == NULL);
	jdoc_free(&d);
	buf_free(&b);

	buf_puts(&b, "[");
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%s{\"k\":%d}", i ? "," : "", i);
	buf_puts(&b, "]");
	CHECK_INT(jdoc_parse(&d, b.data, b.len), 0);
	int64_t n;
	CHECK_INT(jv_size(jdoc_root(&d)), 1000);
	CHECK(jv_count(jv_at(jdoc_root(&d), 999), "k", &n) == 0 && n == 999);
	jdoc_free(&d);
	buf_free(&b);
}

int main(void)
{
	RUN(agrees_with_jansson_on_cases);
	RUN(agrees_with_jansson_on_mutations);
	RUN(reads_members_and_counts);
	RUN(reads_strings);
	RUN(refuses_deep_nesting_and_grows_past_inline);
	return unit_done();
}
