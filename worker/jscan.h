/* jscan: a read-only JSON document parsed into one flat array of values.
 *
 * For the hot path's small documents (provider responses) where a tree of
 * allocated nodes, each object a hash table, costs more than the reading:
 * one pass validates the text (RFC 8259, UTF-8 checked, "\u0000" allowed)
 * and records every value as a span of the text, in document order. Strings
 * stay escaped until asked for; numbers stay text until read as a count.
 * Members are found by a linear walk, which is what small objects want.
 *
 * A value is a `const struct jval *` (NULL stands for "absent", and every
 * accessor takes it, as jansson's take NULL), valid until jdoc_free. A
 * repeated key is found at its last occurrence, as jansson keeps the last. */
#ifndef PROMPTYARD_JSCAN_H
#define PROMPTYARD_JSCAN_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum jtype { J_NONE, J_OBJECT, J_ARRAY, J_STRING, J_INTEGER, J_REAL, J_TRUE, J_FALSE, J_NULL };

struct jval {
	const char *s;   /* the value's text: a string's without its quotes */
	uint32_t len;    /* bytes of s */
	uint32_t span;   /* values in this one's subtree, itself included */
	uint32_t n;      /* members of an object, elements of an array */
	uint8_t type;    /* enum jtype */
	uint8_t escaped; /* a string with a backslash escape */
};

#define JDOC_INLINE 64

struct jdoc {
	struct jval *v; /* v[0] is the root */
	size_t n, cap;
	char **strs; /* strings handed out by jdoc_str, freed with the document */
	size_t n_strs;
	struct jval inl[JDOC_INLINE];
};

/* Parses text[0..len) into d (uninitialized on entry). Returns 0, or -1 when
 * the text is not JSON or its top level is neither an object nor an array
 * (jansson's default). jdoc_free(d) is needed either way. */
int jdoc_parse(struct jdoc *d, const char *text, size_t len);
void jdoc_free(struct jdoc *d);

/* The top-level value, NULL when the parse failed. */
const struct jval *jdoc_root(const struct jdoc *d);

static inline enum jtype jv_type(const struct jval *v)
{
	return v ? (enum jtype)v->type : J_NONE;
}
static inline bool jv_is_object(const struct jval *v)
{
	return jv_type(v) == J_OBJECT;
}
static inline bool jv_is_array(const struct jval *v)
{
	return jv_type(v) == J_ARRAY;
}
static inline bool jv_is_string(const struct jval *v)
{
	return jv_type(v) == J_STRING;
}
static inline bool jv_is_null(const struct jval *v)
{
	return jv_type(v) == J_NULL;
}
static inline bool jv_is_true(const struct jval *v)
{
	return jv_type(v) == J_TRUE;
}
/* Elements of an array, 0 for anything else. */
static inline size_t jv_size(const struct jval *v)
{
	return jv_is_array(v) ? v->n : 0;
}

/* obj[key] (the last one of that name), NULL when obj is not an object or
 * has no such member. */
const struct jval *jv_get(const struct jval *obj, const char *key);
/* arr[i], NULL when arr is not an array or i is past its end. */
const struct jval *jv_at(const struct jval *arr, size_t i);
/* The element after v in its array (v must be an element). */
static inline const struct jval *jv_next(const struct jval *v)
{
	return v + v->span;
}
#define jv_array_foreach(arr, i, el)                                                               \
	for ((i) = 0, (el) = jv_at((arr), 0); (i) < jv_size(arr); (i)++, (el) = jv_next(el))

/* Is v the string lit (compared unescaped)? */
bool jv_str_eq(const struct jval *v, const char *lit);
/* Appends the unescaped text of string v to b; a NUL in it becomes U+FFFD, so
 * the text stays a C string. Nothing for a value that is not a string.
 * Returns how many NULs ("\u0000") it replaced. */
size_t jv_buf_text(struct buf *b, const struct jval *v);
/* The unescaped text of string v as a C string owned by d (NUL as in
 * jv_buf_text), or NULL when v is not a string. For the cold paths. */
const char *jdoc_str(struct jdoc *d, const struct jval *v);

/* The unescaped text of string v in out[0..size) (cut to size - 1 bytes, NUL
 * as in jv_buf_text), or NULL when v is not a string. For short words (a
 * finish reason) on the hot path, without an allocation. */
const char *jv_cstr(const struct jval *v, char *out, size_t size);

/* Reads obj[key] as a token count: 0 and *out = 0 when absent or null, 0 and
 * *out = the value for an integer from 0 to 10^15, -1 for anything else. obj
 * may be NULL or not an object (then every key is absent). */
int jv_count(const struct jval *obj, const char *key, int64_t *out);

#endif
