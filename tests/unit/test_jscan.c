/* Unit tests of jscan, against jansson as the model: every document either
 * both accept (and then read the same) or both refuse. */
#include "jscan.h"
#include "jscan_model.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

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
	CHECK(agree("{\"k\\u0000\":1}", 13) == -1); /* jansson refuses it; see jscan_model.h */
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
	AGREES("[5\0]"); /* jansson 2.14 reads [5]: see jscan_model.h */
	AGREES("[5 \0]");
	AGREES("{}\0");
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
