/* jscan: see jscan.h. */
#include "jscan.h"

#include <stdlib.h>
#include <string.h>

/* Deeper nesting than this is refused, as jansson refuses past 2048; no
 * provider answer comes near it. */
#define JSCAN_MAX_DEPTH 512

struct scan {
	struct jdoc *d;
	const char *p, *end;
};

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

/* Appends a value and returns its index (the array may move). */
static size_t push(struct scan *s, enum jtype type, const char *start)
{
	struct jdoc *d = s->d;
	if (d->n == d->cap) {
		size_t cap = d->cap * 2;
		if (d->v == d->inl) {
			d->v = xmalloc(cap * sizeof *d->v);
			memcpy(d->v, d->inl, d->n * sizeof *d->v);
		} else {
			d->v = xrealloc(d->v, cap * sizeof *d->v);
		}
		d->cap = cap;
	}
	struct jval *v = &d->v[d->n];
	memset(v, 0, sizeof *v);
	v->type = (uint8_t)type;
	v->s = start;
	v->span = 1;
	return d->n++;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned u = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		u <<= 4;
		if (c >= '0' && c <= '9')
			u |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			u |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			u |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = u;
	return 0;
}

/* A string; s->p is on its opening quote. */
static int scan_string(struct scan *s)
{
	const char *start = ++s->p;
	bool escaped = false;
	while (s->p < s->end) {
		unsigned char c = (unsigned char)*s->p;
		if (c == '"') {
			size_t i = push(s, J_STRING, start);
			s->d->v[i].len = (uint32_t)(s->p - start);
			s->d->v[i].escaped = escaped;
			s->p++;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c < 0x80 && c != '\\') {
			s->p++;
			continue;
		}
		if (c >= 0x80) {
			size_t n = utf8_seq_len((const unsigned char *)s->p,
			                        (const unsigned char *)s->end);
			if (!n)
				return -1;
			s->p += n;
			continue;
		}
		/* A backslash escape. */
		escaped = true;
		if (s->end - s->p < 2)
			return -1;
		char e = s->p[1];
		if (e == 'u') {
			unsigned u, lo;
			if (s->end - s->p < 6 || hex4(s->p + 2, &u) < 0)
				return -1;
			s->p += 6;
			if (u >= 0xDC00 && u <= 0xDFFF)
				return -1; /* a low surrogate first */
			if (u >= 0xD800 && u <= 0xDBFF) {
				if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
				    hex4(s->p + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
					return -1;
				s->p += 6;
			}
			continue;
		}
		if (!strchr("\"\\/bfnrt", e) || e == '\0')
			return -1;
		s->p += 2;
	}
	return -1;
}

static int scan_number(struct scan *s)
{
	const char *start = s->p;
	bool real = false;
	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p >= s->end)
		return -1;
	if (*s->p == '0')
		s->p++;
	else if (*s->p >= '1' && *s->p <= '9')
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	else
		return -1;
	if (s->p < s->end && *s->p == '.') {
		real = true;
		s->p++;
		if (s->p >= s->end || *s->p < '0' || *s->p > '9')
			return -1;
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		real = true;
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (s->p >= s->end || *s->p < '0' || *s->p > '9')
			return -1;
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	}
	size_t i = push(s, real ? J_REAL : J_INTEGER, start);
	s->d->v[i].len = (uint32_t)(s->p - start);
	return 0;
}

static int scan_word(struct scan *s, const char *word, enum jtype type)
{
	size_t n = strlen(word);
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return -1;
	size_t i = push(s, type, s->p);
	s->d->v[i].len = (uint32_t)n;
	s->p += n;
	return 0;
}

static int scan_value(struct scan *s, int depth);

/* An object or an array; s->p is on its opening bracket. */
static int scan_container(struct scan *s, int depth, bool object)
{
	if (depth >= JSCAN_MAX_DEPTH)
		return -1;
	const char *start = s->p++;
	size_t self = push(s, object ? J_OBJECT : J_ARRAY, start);
	char close = object ? '}' : ']';
	uint32_t n = 0;
	skip_ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
	} else {
		for (;;) {
			if (object) {
				skip_ws(s);
				if (s->p >= s->end || *s->p != '"' || scan_string(s) < 0)
					return -1;
				skip_ws(s);
				if (s->p >= s->end || *s->p != ':')
					return -1;
				s->p++;
			}
			if (scan_value(s, depth + 1) < 0)
				return -1;
			n++;
			skip_ws(s);
			if (s->p >= s->end)
				return -1;
			if (*s->p == ',') {
				s->p++;
				continue;
			}
			if (*s->p != close)
				return -1;
			s->p++;
			break;
		}
	}
	struct jval *v = &s->d->v[self];
	v->n = n;
	v->span = (uint32_t)(s->d->n - self);
	v->len = (uint32_t)(s->p - start);
	return 0;
}

static int scan_value(struct scan *s, int depth)
{
	skip_ws(s);
	if (s->p >= s->end)
		return -1;
	switch (*s->p) {
	case '{': return scan_container(s, depth, true);
	case '[': return scan_container(s, depth, false);
	case '"': return scan_string(s);
	case 't': return scan_word(s, "true", J_TRUE);
	case 'f': return scan_word(s, "false", J_FALSE);
	case 'n': return scan_word(s, "null", J_NULL);
	default: return scan_number(s);
	}
}

int jdoc_parse(struct jdoc *d, const char *text, size_t len)
{
	d->v = d->inl;
	d->n = 0;
	d->cap = JDOC_INLINE;
	d->strs = NULL;
	d->n_strs = 0;
	/* Offsets are 32-bit. */
	if (!text || len == 0 || len > UINT32_MAX)
		return -1;
	struct scan s = {.d = d, .p = text, .end = text + len};
	skip_ws(&s);
	if (s.p >= s.end || (*s.p != '{' && *s.p != '['))
		goto fail;
	if (scan_value(&s, 0) < 0)
		goto fail;
	skip_ws(&s);
	if (s.p != s.end)
		goto fail;
	return 0;
fail:
	d->n = 0;
	return -1;
}

void jdoc_free(struct jdoc *d)
{
	if (d->v != d->inl)
		free(d->v);
	for (size_t i = 0; i < d->n_strs; i++)
		free(d->strs[i]);
	free(d->strs);
	d->v = d->inl;
	d->n = 0;
	d->strs = NULL;
	d->n_strs = 0;
}

const struct jval *jdoc_root(const struct jdoc *d)
{
	return d->n ? &d->v[0] : NULL;
}

/* ---------------------------------------------------------------- reading */

/* Appends a UTF-8 encoding of code point u. */
static void put_utf8(struct buf *b, unsigned u)
{
	char o[4];
	size_t n;
	if (u < 0x80) {
		o[0] = (char)u;
		n = 1;
	} else if (u < 0x800) {
		o[0] = (char)(0xC0 | (u >> 6));
		o[1] = (char)(0x80 | (u & 0x3F));
		n = 2;
	} else if (u < 0x10000) {
		o[0] = (char)(0xE0 | (u >> 12));
		o[1] = (char)(0x80 | ((u >> 6) & 0x3F));
		o[2] = (char)(0x80 | (u & 0x3F));
		n = 3;
	} else {
		o[0] = (char)(0xF0 | (u >> 18));
		o[1] = (char)(0x80 | ((u >> 12) & 0x3F));
		o[2] = (char)(0x80 | ((u >> 6) & 0x3F));
		o[3] = (char)(0x80 | (u & 0x3F));
		n = 4;
	}
	buf_append(b, o, n);
}

size_t jv_buf_text(struct buf *b, const struct jval *v)
{
	size_t nuls = 0;
	if (!jv_is_string(v))
		return 0;
	const char *p = v->s, *end = v->s + v->len;
	if (!v->escaped) {
		buf_append(b, p, v->len);
		return 0;
	}
	/* Well-formed: the scan checked every escape. */
	while (p < end) {
		const char *bs = memchr(p, '\\', (size_t)(end - p));
		if (!bs) {
			buf_append(b, p, (size_t)(end - p));
			return nuls;
		}
		buf_append(b, p, (size_t)(bs - p));
		char e = bs[1];
		p = bs + 2;
		switch (e) {
		case 'b': buf_append(b, "\b", 1); break;
		case 'f': buf_append(b, "\f", 1); break;
		case 'n': buf_append(b, "\n", 1); break;
		case 'r': buf_append(b, "\r", 1); break;
		case 't': buf_append(b, "\t", 1); break;
		case 'u': {
			unsigned u, lo;
			hex4(p, &u);
			p += 4;
			if (u >= 0xD800 && u <= 0xDBFF) {
				hex4(p + 2, &lo);
				p += 6;
				u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
			}
			if (u == 0) {
				buf_puts(b, "\xEF\xBF\xBD"); /* U+FFFD */
				nuls++;
			} else {
				put_utf8(b, u);
			}
			break;
		}
		default: buf_append(b, &e, 1); /* " \ / */
		}
	}
	return nuls;
}

static bool str_eq_n(const struct jval *v, const char *lit, size_t n)
{
	if (!jv_is_string(v))
		return false;
	if (!v->escaped)
		return v->len == n && memcmp(v->s, lit, n) == 0;
	struct buf b = {0};
	jv_buf_text(&b, v);
	bool eq = b.len == n && memcmp(b.data, lit, n) == 0;
	buf_free(&b);
	return eq;
}

bool jv_str_eq(const struct jval *v, const char *lit)
{
	return str_eq_n(v, lit, strlen(lit));
}

const char *jdoc_str(struct jdoc *d, const struct jval *v)
{
	if (!jv_is_string(v))
		return NULL;
	struct buf b = {0};
	jv_buf_text(&b, v);
	d->strs = xrealloc(d->strs, (d->n_strs + 1) * sizeof *d->strs);
	char *s = b.data ? buf_take(&b) : xstrdup("");
	d->strs[d->n_strs++] = s;
	return s;
}

const char *jv_cstr(const struct jval *v, char *out, size_t size)
{
	if (!jv_is_string(v) || size == 0)
		return NULL;
	if (!v->escaped) {
		size_t n = v->len < size - 1 ? v->len : size - 1;
		memcpy(out, v->s, n);
		out[n] = '\0';
		return out;
	}
	struct buf b = {0};
	jv_buf_text(&b, v);
	size_t n = b.len < size - 1 ? b.len : size - 1;
	if (n)
		memcpy(out, b.data, n);
	out[n] = '\0';
	buf_free(&b);
	return out;
}

const struct jval *jv_get(const struct jval *obj, const char *key)
{
	if (!jv_is_object(obj))
		return NULL;
	const struct jval *found = NULL;
	const struct jval *k = obj + 1;
	size_t n = strlen(key);
	for (uint32_t i = 0; i < obj->n; i++) {
		const struct jval *val = k + 1;
		if (str_eq_n(k, key, n))
			found = val;
		k = val + val->span;
	}
	return found;
}

const struct jval *jv_at(const struct jval *arr, size_t i)
{
	if (!jv_is_array(arr) || i >= arr->n)
		return NULL;
	const struct jval *el = arr + 1;
	while (i--)
		el += el->span;
	return el;
}

int jv_count(const struct jval *obj, const char *key, int64_t *out)
{
	const struct jval *v = jv_get(obj, key);
	*out = 0;
	if (!v || jv_is_null(v))
		return 0;
	/* 10^15 tokens is far beyond any call, and keeps every sum of a few
	 * counts (and counts x prices in money.c) clear of overflow. */
	if (v->type != J_INTEGER)
		return -1;
	const char *p = v->s, *end = v->s + v->len;
	bool neg = *p == '-';
	p += neg;
	int64_t n = 0;
	for (; p < end; p++) {
		n = n * 10 + (*p - '0');
		if (n > INT64_C(1000000000000000))
			return -1;
	}
	if (neg && n != 0)
		return -1;
	*out = n;
	return 0;
}
