/* jscan_model: jansson as the model of jscan, for tests/unit/test_jscan.c
 * and tests/fuzz/fuzz_jscan.c. A document either both accept (and then read
 * the same through every accessor) or both refuse. Static functions: each
 * includer gets its own copy. */
#ifndef PROMPTYARD_JSCAN_MODEL_H
#define PROMPTYARD_JSCAN_MODEL_H

#include "jscan.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
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
		bool eq = jv_is_string(v) && a.len == b.len &&
		          (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
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

/* jscan refuses deeper nesting than this (jscan.c's JSCAN_MAX_DEPTH), jansson
 * only past 2048. */
#define JSCAN_MODEL_MAX_DEPTH 512

/* The deepest nesting of arrays and objects in text, which jansson accepted. */
static int model_nesting(const char *text, size_t len)
{
	int depth = 0, max = 0;
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				max = depth;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return max;
}

/* Parses text with both; 1 when they agree, 0 when not; -1 when one refused
 * for a reason the other does not share (a number out of jansson's range,
 * "\u0000" in a key, which jansson refuses even with JSON_ALLOW_NUL, nesting
 * beyond jscan's). A NUL byte is never JSON (in a string it is a raw
 * control character, elsewhere not whitespace), but jansson 2.14 takes one
 * after a number ("[5\0]" is [5]): there jscan must refuse, whatever jansson
 * says. */
static int agree(const char *text, size_t len)
{
	json_error_t err;
	json_t *m = json_loadb(text, len, JSON_ALLOW_NUL, &err);
	struct jdoc d;
	int rc = jdoc_parse(&d, text, len);
	int out;
	if (memchr(text, '\0', len))
		out = rc < 0; /* see above */
	else if (!m && (strstr(err.text, "too big") || strstr(err.text, "overflow") ||
	                strstr(err.text, "NUL byte in object key")))
		out = -1;
	else if (m && rc < 0 && model_nesting(text, len) > JSCAN_MODEL_MAX_DEPTH)
		out = -1;
	else if (!m)
		out = rc < 0;
	else
		out = rc == 0 && same(jdoc_root(&d), m);
	json_decref(m);
	jdoc_free(&d);
	return out;
}

#endif
