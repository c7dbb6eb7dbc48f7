/* jload: see jload.h. */
#include "jload.h"

#include "buf.h"
#include "jscan.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The flags whose meaning the fast path keeps; any other goes to jansson. */
#define JLOAD_FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES)

/* A JSON integer's text as jansson reads it (strtoll), or false when
 * jansson would refuse it as too big. */
static bool read_integer(const struct jval *v, json_int_t *out)
{
	const char *p = v->s, *end = v->s + v->len;
	bool neg = *p == '-';
	p += neg;
	/* json_int_t is long long: its magnitude is at most 2^63 (negative). */
	unsigned long long max =
	        neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
	unsigned long long n = 0;
	for (; p < end; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (max - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*out = neg ? (json_int_t)(0 - n) : (json_int_t)n;
	return true;
}

/* A JSON real's text as jansson reads it (strtod), or false when jansson
 * would refuse it as an overflow. */
static bool read_real(const struct jval *v, struct buf *scratch, double *out)
{
	buf_reset(scratch);
	buf_append(scratch, v->s, v->len);
	errno = 0;
	double d = strtod(scratch->data, NULL);
	if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
		return false;
	*out = d;
	return true;
}

/* The unescaped text of string v in scratch (or v's own bytes when it has
 * no escape), false for a "\u0000", which jansson refuses without
 * JSON_ALLOW_NUL. */
static bool read_string(const struct jval *v, struct buf *scratch, const char **s, size_t *len)
{
	if (!v->escaped) {
		*s = v->s;
		*len = v->len;
		return true;
	}
	buf_reset(scratch);
	if (jv_buf_text(scratch, v) != 0)
		return false;
	*s = scratch->data ? scratch->data : "";
	*len = scratch->len;
	return true;
}

/* The jansson value of v (new), or NULL when jansson must decide. */
static json_t *build(const struct jval *v, size_t flags, struct buf *scratch)
{
	switch (jv_type(v)) {
	case J_OBJECT: {
		json_t *obj = json_object();
		const struct jval *k = v + 1;
		for (uint32_t i = 0; i < v->n; i++) {
			const struct jval *val = k + 1;
			const char *key;
			size_t key_len;
			json_t *member = NULL;
			/* The key is copied into the object before the next string
			 * takes the scratch buffer. */
			if (!read_string(k, scratch, &key, &key_len) ||
			    ((flags & JSON_REJECT_DUPLICATES) &&
			     json_object_getn(obj, key, key_len))) {
				json_decref(obj);
				return NULL;
			}
			char *key_copy = key == scratch->data ? xstrndup(key, key_len) : NULL;
			member = build(val, flags, scratch);
			int rc = member ? json_object_setn_new_nocheck(
			                          obj, key_copy ? key_copy : key, key_len, member)
			                : -1;
			free(key_copy);
			if (rc != 0) {
				json_decref(obj);
				return NULL;
			}
			k = jv_next(val);
		}
		return obj;
	}
	case J_ARRAY: {
		json_t *arr = json_array();
		size_t i;
		const struct jval *el;
		jv_array_foreach(v, i, el)
		{
			json_t *e = build(el, flags, scratch);
			if (!e || json_array_append_new(arr, e) != 0) {
				json_decref(arr);
				return NULL;
			}
		}
		return arr;
	}
	case J_STRING: {
		const char *s;
		size_t len;
		return read_string(v, scratch, &s, &len) ? json_stringn_nocheck(s, len) : NULL;
	}
	case J_INTEGER: {
		json_int_t n;
		return read_integer(v, &n) ? json_integer(n) : NULL;
	}
	case J_REAL: {
		double d;
		return read_real(v, scratch, &d) ? json_real(d) : NULL;
	}
	case J_TRUE: return json_true();
	case J_FALSE: return json_false();
	case J_NULL: return json_null();
	case J_NONE: break;
	}
	return NULL;
}

json_t *jload(const char *text, size_t len, size_t flags, json_error_t *err)
{
	json_t *root = NULL;
	if ((flags & ~(size_t)JLOAD_FLAGS) == 0) {
		struct jdoc d;
		struct buf scratch = {0};
		if (jdoc_parse(&d, text, len) == 0)
			root = build(jdoc_root(&d), flags, &scratch);
		jdoc_free(&d);
		buf_free(&scratch);
	}
	return root ? root : json_loadb(text, len, flags, err);
}
