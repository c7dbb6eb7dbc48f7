/* jsonschema_regex: see jsonschema_regex.h.
 *
 * A recursive-descent reader of the ECMA-262 pattern grammar compiles it to
 * a program of a few instructions (Thompson's construction: a class of
 * code points, a split, a jump, an assertion), each repetition written out
 * as copies of its atom's code. A search runs the program as a set of
 * threads over the subject's code points (Pike's VM without captures): one
 * pass, each code point costing at most one step per instruction, so the
 * time is bounded by the subject's length times the program's size, and a
 * caller's budget of steps bounds it further. */
#include "jsonschema_regex.h"

#include "buf.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CP_MAX    0x10FFFFu
#define NONE      UINT32_MAX
#define COUNT_MAX 1000000 /* a repetition count saturates here (the size limit refuses it) */

/* A set of code points as ranges; cset_norm sorts and merges them. One
 * slot more than CSET_MAX so that a negation always fits. */
#define CSET_MAX 64
struct cset {
	uint32_t lo[CSET_MAX + 1], hi[CSET_MAX + 1];
	unsigned n;
};

enum op {
	OP_CLASS,      /* a code point in ranges[x .. x + y) (pairs lo, hi), then the next */
	OP_SPLIT,      /* go on at x and at y */
	OP_JMP,        /* go on at x */
	OP_BOL,        /* at the subject's start */
	OP_EOL,        /* at its end */
	OP_WORD_B,     /* between a word character (ECMA's \w) and another */
	OP_NOT_WORD_B, /* not so */
	OP_MATCH,
};

struct insn {
	uint32_t op; /* enum op */
	uint32_t x, y;
};

/* Code being built: targets are indexes into v (v.n is the exit). */
struct code {
	struct insn *v;
	size_t n, cap;
};

struct jsonschema_regex {
	struct insn *code; /* code[0] starts, OP_MATCH ends */
	size_t n;
	uint32_t *ranges; /* the classes' ranges, two words each */
	size_t n_ranges;
};

struct rx {
	const unsigned char *start, *p, *end; /* the ECMA pattern; p is the reading point */
	uint32_t *ranges;
	size_t n_ranges, cap_ranges; /* words */
	char *errstr;
	size_t errstr_size;
	bool failed;
};

static void rx_fail(struct rx *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rx_fail(struct rx *r, const char *fmt, ...)
{
	if (r->failed)
		return;
	r->failed = true;
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(r->errstr, r->errstr_size, "%s (at byte %zu of the pattern)", what,
	         (size_t)(r->p - r->start));
}

/* ---------------------------------------------------------------- sets */

static void cset_add(struct rx *r, struct cset *s, uint32_t lo, uint32_t hi)
{
	if (s->n >= CSET_MAX) {
		rx_fail(r, "a character class with more than %d ranges", CSET_MAX);
		return;
	}
	s->lo[s->n] = lo;
	s->hi[s->n] = hi;
	s->n++;
}

static void cset_union(struct rx *r, struct cset *s, const struct cset *add)
{
	for (unsigned i = 0; i < add->n; i++)
		cset_add(r, s, add->lo[i], add->hi[i]);
}

static void cset_norm(struct cset *s)
{
	for (unsigned i = 1; i < s->n; i++) { /* insertion sort: sets are small */
		uint32_t lo = s->lo[i], hi = s->hi[i];
		unsigned j = i;
		for (; j > 0 && s->lo[j - 1] > lo; j--) {
			s->lo[j] = s->lo[j - 1];
			s->hi[j] = s->hi[j - 1];
		}
		s->lo[j] = lo;
		s->hi[j] = hi;
	}
	unsigned n = 0;
	for (unsigned i = 0; i < s->n; i++) {
		if (n > 0 && s->lo[i] <= s->hi[n - 1] + 1) {
			if (s->hi[i] > s->hi[n - 1])
				s->hi[n - 1] = s->hi[i];
			continue;
		}
		s->lo[n] = s->lo[i];
		s->hi[n] = s->hi[i];
		n++;
	}
	s->n = n;
}

/* The complement of s within [0, CP_MAX]; n ranges give at most n + 1. */
static void cset_negate(struct cset *s)
{
	struct cset c = {.n = 0};
	uint32_t next = 0;
	cset_norm(s);
	for (unsigned i = 0; i < s->n; i++) {
		if (s->lo[i] > next) {
			c.lo[c.n] = next;
			c.hi[c.n++] = s->lo[i] - 1;
		}
		next = s->hi[i] + 1;
	}
	if (next <= CP_MAX) {
		c.lo[c.n] = next;
		c.hi[c.n++] = CP_MAX;
	}
	*s = c;
}

static void cset_of(struct cset *s, const uint32_t (*ranges)[2], size_t n)
{
	s->n = 0;
	for (size_t i = 0; i < n; i++) {
		s->lo[s->n] = ranges[i][0];
		s->hi[s->n++] = ranges[i][1];
	}
}

/* \d \w \s and their negations \D \W \S, as ECMA-262 defines them. */
static void cset_escape(struct cset *s, unsigned char c)
{
	static const uint32_t digit[][2] = {{'0', '9'}};
	static const uint32_t word[][2] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
	/* WhiteSpace (TAB VT FF SP NBSP ZWNBSP and category Zs) and LineTerminator. */
	static const uint32_t space[][2] = {
	        {0x09, 0x0D},     {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680},
	        {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
	        {0x3000, 0x3000}, {0xFEFF, 0xFEFF},
	};
	switch (c | 0x20) {
	case 'd': cset_of(s, digit, sizeof digit / sizeof *digit); break;
	case 'w': cset_of(s, word, sizeof word / sizeof *word); break;
	default: cset_of(s, space, sizeof space / sizeof *space); break;
	}
	if (c >= 'A' && c <= 'Z')
		cset_negate(s);
}

/* -------------------------------------------------------------- code */

static bool code_room(struct rx *r, const struct code *c, size_t more)
{
	if (c->n + more <= JSONSCHEMA_REGEX_MAX_INSNS)
		return true;
	rx_fail(r, "a pattern of more than %d instructions once its repetitions are written out",
	        JSONSCHEMA_REGEX_MAX_INSNS);
	return false;
}

static void code_reserve(struct code *c, size_t more)
{
	if (c->n + more <= c->cap)
		return;
	while (c->n + more > c->cap)
		c->cap = c->cap ? c->cap * 2 : 16;
	c->v = xrealloc(c->v, c->cap * sizeof *c->v);
}

/* Appends an instruction; returns its index (NONE when the code is full). */
static uint32_t emit(struct rx *r, struct code *c, enum op op, uint32_t x, uint32_t y)
{
	if (!code_room(r, c, 1))
		return NONE;
	code_reserve(c, 1);
	c->v[c->n] = (struct insn){op, x, y};
	return (uint32_t)c->n++;
}

/* Appends n instructions of src, their targets moved by delta. */
static void append(struct rx *r, struct code *dst, const struct insn *src, size_t n, int64_t delta)
{
	if (!code_room(r, dst, n))
		return;
	code_reserve(dst, n);
	for (size_t i = 0; i < n; i++) {
		struct insn in = src[i];
		if (in.op == OP_SPLIT || in.op == OP_JMP)
			in.x = (uint32_t)((int64_t)in.x + delta);
		if (in.op == OP_SPLIT)
			in.y = (uint32_t)((int64_t)in.y + delta);
		dst->v[dst->n++] = in;
	}
}

/* One code point of s. */
static void emit_class(struct rx *r, struct code *c, struct cset *s)
{
	cset_norm(s);
	if (s->n == 0) {
		rx_fail(r, "a class that matches nothing");
		return;
	}
	if (r->n_ranges + 2 * s->n > r->cap_ranges) {
		r->cap_ranges = (r->n_ranges + 2 * s->n) * 2;
		r->ranges = xrealloc(r->ranges, r->cap_ranges * sizeof *r->ranges);
	}
	uint32_t first = (uint32_t)r->n_ranges;
	for (unsigned i = 0; i < s->n; i++) {
		r->ranges[r->n_ranges++] = s->lo[i];
		r->ranges[r->n_ranges++] = s->hi[i];
	}
	emit(r, c, OP_CLASS, first, s->n);
}

static void emit_cp(struct rx *r, struct code *c, uint32_t cp)
{
	struct cset one = {.lo = {cp}, .hi = {cp}, .n = 1};
	emit_class(r, c, &one);
}

/* ------------------------------------------------------------- reading */

/* Reads one UTF-8 character at r->p. */
static uint32_t rx_char(struct rx *r)
{
	size_t n = utf8_seq_len(r->p, r->end);
	if (n == 0) {
		rx_fail(r, "invalid UTF-8");
		return 0;
	}
	uint32_t cp = n == 1 ? r->p[0] : r->p[0] & (0x7F >> n);
	for (size_t i = 1; i < n; i++)
		cp = (cp << 6) | (r->p[i] & 0x3F);
	r->p += n;
	return cp;
}

/* Reads n hex digits; -1 when there are not n. */
static long rx_hex(struct rx *r, int n)
{
	char digits[5] = "";
	if (r->end - r->p < n || n > 4)
		return -1;
	for (int i = 0; i < n; i++) {
		if (!isxdigit(r->p[i]))
			return -1;
		digits[i] = (char)r->p[i];
	}
	r->p += n;
	return strtol(digits, NULL, 16);
}

/* \uHHHH, a surrogate pair as two of them (r->p after the `u`). */
static uint32_t rx_unicode_escape(struct rx *r)
{
	if (r->p < r->end && *r->p == '{') {
		rx_fail(r, "\\u{...} (needs the u flag) is not supported");
		return 0;
	}
	long u = rx_hex(r, 4);
	if (u < 0) {
		rx_fail(r, "\\u needs four hex digits");
		return 0;
	}
	if (u >= 0xD800 && u <= 0xDBFF && r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u') {
		const unsigned char *save = r->p;
		r->p += 2;
		long low = rx_hex(r, 4);
		if (low >= 0xDC00 && low <= 0xDFFF)
			return 0x10000 + (((uint32_t)u - 0xD800) << 10) + ((uint32_t)low - 0xDC00);
		r->p = save;
	}
	if (u >= 0xD800 && u <= 0xDFFF) {
		rx_fail(r, "a lone surrogate \\u%04lX is not supported", u);
		return 0;
	}
	return (uint32_t)u;
}

enum esc { ESC_CHAR, ESC_SET, ESC_WORD_B, ESC_NOT_WORD_B };

/* Reads the escape whose backslash was just passed: a character in *cp, a
 * set (\d \w \s and negations) in *set, or (outside a class) a word
 * boundary assertion. */
static enum esc rx_escape(struct rx *r, bool in_class, uint32_t *cp, struct cset *set)
{
	*cp = 0;
	if (r->p == r->end) {
		rx_fail(r, "a pattern that ends in a backslash");
		return ESC_CHAR;
	}
	unsigned char c = *r->p;
	if (c >= 0x80) { /* any other character escapes itself */
		*cp = rx_char(r);
		return ESC_CHAR;
	}
	r->p++;
	switch (c) {
	case 'd':
	case 'D':
	case 'w':
	case 'W':
	case 's':
	case 'S': cset_escape(set, c); return ESC_SET;
	case 't': *cp = '\t'; return ESC_CHAR;
	case 'n': *cp = '\n'; return ESC_CHAR;
	case 'v': *cp = '\v'; return ESC_CHAR;
	case 'f': *cp = '\f'; return ESC_CHAR;
	case 'r': *cp = '\r'; return ESC_CHAR;
	case '0':
		if (r->p < r->end && *r->p >= '0' && *r->p <= '9')
			rx_fail(r, "octal escapes are not supported");
		return ESC_CHAR;
	case 'b': *cp = '\b'; return in_class ? ESC_CHAR : ESC_WORD_B;
	case 'B':
		if (!in_class)
			return ESC_NOT_WORD_B;
		rx_fail(r, "\\B in a class");
		return ESC_CHAR;
	case 'c':
		if (r->p < r->end && ((*r->p | 0x20) >= 'a' && (*r->p | 0x20) <= 'z')) {
			*cp = *r->p++ % 32;
			return ESC_CHAR;
		}
		rx_fail(r, "\\c needs a letter");
		return ESC_CHAR;
	case 'x': {
		long v = rx_hex(r, 2);
		if (v < 0)
			rx_fail(r, "\\x needs two hex digits");
		*cp = v < 0 ? 0 : (uint32_t)v;
		return ESC_CHAR;
	}
	case 'u': *cp = rx_unicode_escape(r); return ESC_CHAR;
	default: break;
	}
	if (c >= '1' && c <= '9')
		rx_fail(r, "backreferences are not supported");
	else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		rx_fail(r, "the escape \\%c is not supported", c);
	*cp = c;
	return ESC_CHAR;
}

/* A class atom: a character or a set escape. */
static enum esc rx_class_atom(struct rx *r, uint32_t *cp, struct cset *set)
{
	if (*r->p == '\\') {
		r->p++;
		return rx_escape(r, true, cp, set);
	}
	*cp = rx_char(r);
	return ESC_CHAR;
}

/* [...] or [^...], r->p at the `[`. */
static void rx_class(struct rx *r, struct code *c)
{
	struct cset set = {.n = 0};
	bool neg = false;
	r->p++;
	if (r->p < r->end && *r->p == '^') {
		neg = true;
		r->p++;
	}
	for (;;) {
		if (r->p == r->end) {
			rx_fail(r, "a class [ without its ]");
			return;
		}
		if (*r->p == ']') {
			r->p++;
			break;
		}
		uint32_t lo, hi;
		struct cset a, z;
		enum esc ka = rx_class_atom(r, &lo, &a);
		if (r->failed)
			return;
		if (r->end - r->p >= 2 && r->p[0] == '-' && r->p[1] != ']') {
			r->p++;
			enum esc kz = rx_class_atom(r, &hi, &z);
			if (r->failed)
				return;
			if (ka == ESC_SET || kz == ESC_SET) {
				rx_fail(r, "a class escape as the end of a range is not supported");
				return;
			}
			if (lo > hi) {
				rx_fail(r, "a range out of order in a class");
				return;
			}
			cset_add(r, &set, lo, hi);
		} else if (ka == ESC_SET) {
			cset_union(r, &set, &a);
		} else {
			cset_add(r, &set, lo, lo);
		}
		if (r->failed)
			return;
	}
	if (set.n == 0 && !neg) {
		rx_fail(r, "[] matches nothing");
		return;
	}
	if (neg)
		cset_negate(&set);
	emit_class(r, c, &set);
}

/* Reads a decimal count, saturating above COUNT_MAX. */
static unsigned long rx_count(const unsigned char **p, const unsigned char *end)
{
	unsigned long v = 0;
	while (*p < end && **p >= '0' && **p <= '9') {
		if (v <= COUNT_MAX)
			v = v * 10 + (unsigned long)(**p - '0');
		(*p)++;
	}
	return v;
}

/* Is p the start of {n}, {n,} or {n,m}? Fills the bounds (max ULONG_MAX for
 * none) and the end. */
static bool brace_quantifier(const unsigned char *p, const unsigned char *end, unsigned long *min,
                             unsigned long *max, const unsigned char **after)
{
	if (p == end || *p != '{')
		return false;
	p++;
	const unsigned char *d = p;
	*min = rx_count(&p, end);
	if (p == d)
		return false;
	*max = *min;
	if (p < end && *p == ',') {
		p++;
		d = p;
		*max = rx_count(&p, end);
		if (p == d)
			*max = ULONG_MAX;
	}
	if (p == end || *p != '}')
		return false;
	*after = p + 1;
	return true;
}

static bool at_quantifier(const struct rx *r)
{
	unsigned long lo, hi;
	const unsigned char *after;
	return r->p < r->end && (*r->p == '*' || *r->p == '+' || *r->p == '?' ||
	                         brace_quantifier(r->p, r->end, &lo, &hi, &after));
}

/* Rewrites the atom at c->v[start ..] under the quantifier at r->p, if
 * any: n copies, then m - n optional ones ({n,m}) or a loop ({n,}). */
static void rx_quantifier(struct rx *r, struct code *c, size_t start)
{
	unsigned long min, max;
	const unsigned char *after;
	if (r->p == r->end)
		return;
	if (*r->p == '*' || *r->p == '+' || *r->p == '?') {
		min = *r->p == '+';
		max = *r->p == '?' ? 1 : ULONG_MAX;
		r->p++;
	} else if (brace_quantifier(r->p, r->end, &min, &max, &after)) {
		if (max < min) {
			rx_fail(r, "a repetition {%lu,%lu} out of order", min, max);
			return;
		}
		r->p = after;
	} else {
		return;
	}
	if (r->p < r->end && *r->p == '?') /* lazy: the same matches exist */
		r->p++;
	if (at_quantifier(r)) {
		rx_fail(r, "a quantifier with nothing to repeat");
		return;
	}
	size_t len = c->n - start;
	size_t needed = min * len + (max == ULONG_MAX ? len + 2 : (max - min) * (len + 1));
	struct insn *atom = xmalloc((len ? len : 1) * sizeof *atom);
	memcpy(atom, c->v + start, len * sizeof *atom);
	c->n = start;
	if (!code_room(r, c, needed)) {
		free(atom);
		return;
	}
	for (unsigned long i = 0; i < min; i++)
		append(r, c, atom, len, (int64_t)c->n - (int64_t)start);
	if (max == ULONG_MAX) {
		uint32_t loop = emit(r, c, OP_SPLIT, (uint32_t)c->n + 1, 0);
		append(r, c, atom, len, (int64_t)c->n - (int64_t)start);
		emit(r, c, OP_JMP, loop, 0);
		if (!r->failed)
			c->v[loop].y = (uint32_t)c->n;
	} else {
		uint32_t chain = NONE; /* the splits to the end, linked through y */
		for (unsigned long i = min; i < max && !r->failed; i++) {
			uint32_t split = emit(r, c, OP_SPLIT, (uint32_t)c->n + 1, chain);
			chain = split;
			append(r, c, atom, len, (int64_t)c->n - (int64_t)start);
		}
		while (!r->failed && chain != NONE) {
			uint32_t next = c->v[chain].y;
			c->v[chain].y = (uint32_t)c->n;
			chain = next;
		}
	}
	free(atom);
}

static void rx_disjunction(struct rx *r, struct code *c, unsigned depth);

/* A group, r->p at the `(`. */
static void rx_group(struct rx *r, struct code *c, unsigned depth)
{
	r->p++;
	if (r->p < r->end && *r->p == '?') {
		const unsigned char *q = r->p + 1;
		if (q < r->end && *q == ':') {
			r->p = q + 1;
		} else if (q < r->end && (*q == '=' || *q == '!')) {
			rx_fail(r, "lookahead (?%c is not supported", *q);
			return;
		} else if (q < r->end && *q == '<' && q + 1 < r->end &&
		           (q[1] == '=' || q[1] == '!')) {
			rx_fail(r, "lookbehind (?<%c is not supported", q[1]);
			return;
		} else if (q < r->end && *q == '<') {
			q++;
			const unsigned char *name = q;
			while (q < r->end && (*q == '_' || *q == '$' || (*q >= '0' && *q <= '9') ||
			                      ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z')))
				q++;
			if (q == name || q == r->end || *q != '>') {
				rx_fail(r, "a group name that is not an ASCII identifier");
				return;
			}
			r->p = q + 1;
		} else {
			rx_fail(r, "an unknown group (?");
			return;
		}
	}
	if (depth + 1 > JSONSCHEMA_REGEX_MAX_DEPTH) {
		rx_fail(r, "groups nested deeper than %d", JSONSCHEMA_REGEX_MAX_DEPTH);
		return;
	}
	rx_disjunction(r, c, depth + 1);
	if (!r->failed && (r->p == r->end || *r->p != ')'))
		rx_fail(r, "a group ( without its )");
	if (!r->failed)
		r->p++;
}

/* A sequence of terms up to `|`, `)` or the end. */
static void rx_alternative(struct rx *r, struct code *c, unsigned depth)
{
	while (!r->failed && r->p < r->end && *r->p != '|' && *r->p != ')') {
		size_t start = c->n;
		unsigned char ch = *r->p;
		enum op assertion = OP_MATCH; /* none */
		if (ch == '^' || ch == '$') {
			assertion = ch == '^' ? OP_BOL : OP_EOL;
			r->p++;
		} else if (ch == '(') {
			rx_group(r, c, depth);
		} else if (ch == '[') {
			rx_class(r, c);
		} else if (ch == '.') {
			struct cset dot = {.lo = {0, 0x0B, 0x0E, 0x202A},
			                   .hi = {0x09, 0x0C, 0x2027, CP_MAX},
			                   .n = 4};
			r->p++;
			emit_class(r, c, &dot);
		} else if (ch == '\\') {
			uint32_t cp;
			struct cset set;
			r->p++;
			enum esc k = rx_escape(r, false, &cp, &set);
			if (k == ESC_WORD_B || k == ESC_NOT_WORD_B)
				assertion = k == ESC_WORD_B ? OP_WORD_B : OP_NOT_WORD_B;
			else if (k == ESC_SET)
				emit_class(r, c, &set);
			else if (!r->failed)
				emit_cp(r, c, cp);
		} else if (at_quantifier(r)) {
			rx_fail(r, "a quantifier with nothing to repeat");
		} else {
			uint32_t cp = rx_char(r); /* `]`, `{`, `}` alone are literals too */
			if (!r->failed)
				emit_cp(r, c, cp);
		}
		if (r->failed)
			break;
		if (assertion != OP_MATCH) {
			emit(r, c, assertion, 0, 0);
			if (at_quantifier(r))
				rx_fail(r, "a quantifier after an assertion");
			continue;
		}
		rx_quantifier(r, c, start);
	}
}

/* Alternatives: each but the last behind a split, and a jump to the end. */
static void rx_disjunction(struct rx *r, struct code *c, unsigned depth)
{
	uint32_t jumps = NONE; /* the jumps to the end, linked through x */
	for (;;) {
		struct code alt = {0};
		rx_alternative(r, &alt, depth);
		if (r->failed) {
			free(alt.v);
			return;
		}
		if (r->p < r->end && *r->p == '|') {
			r->p++;
			uint32_t split = emit(r, c, OP_SPLIT, (uint32_t)c->n + 1, 0);
			append(r, c, alt.v, alt.n, (int64_t)c->n);
			uint32_t jump = emit(r, c, OP_JMP, jumps, 0);
			free(alt.v);
			if (r->failed)
				return;
			jumps = jump;
			c->v[split].y = (uint32_t)c->n;
			continue;
		}
		append(r, c, alt.v, alt.n, (int64_t)c->n);
		free(alt.v);
		break;
	}
	while (!r->failed && jumps != NONE) {
		uint32_t next = c->v[jumps].x;
		c->v[jumps].x = (uint32_t)c->n;
		jumps = next;
	}
}

/* ------------------------------------------------------------ the API */

struct jsonschema_regex *jsonschema_regex_compile(const char *pattern, size_t len, char *errstr,
                                                  size_t errstr_size)
{
	struct rx r = {.start = (const unsigned char *)pattern,
	               .p = (const unsigned char *)pattern,
	               .end = (const unsigned char *)pattern + len,
	               .errstr = errstr,
	               .errstr_size = errstr_size};
	struct code c = {0};
	if (len > JSONSCHEMA_REGEX_MAX_LEN) {
		snprintf(errstr, errstr_size, "a pattern longer than %d bytes",
		         JSONSCHEMA_REGEX_MAX_LEN);
		return NULL;
	}
	rx_disjunction(&r, &c, 0);
	if (!r.failed && r.p < r.end)
		rx_fail(&r, "a ) without its (");
	emit(&r, &c, OP_MATCH, 0, 0);
	if (r.failed) {
		free(c.v);
		free(r.ranges);
		return NULL;
	}
	struct jsonschema_regex *re = xmalloc(sizeof *re);
	*re = (struct jsonschema_regex){c.v, c.n, r.ranges, r.n_ranges};
	return re;
}

size_t jsonschema_regex_size(const struct jsonschema_regex *re)
{
	return re->n;
}

void jsonschema_regex_free(struct jsonschema_regex *re)
{
	if (!re)
		return;
	free(re->code);
	free(re->ranges);
	free(re);
}

/* ------------------------------------------------------------- search */

/* A set of instruction indexes, cleared in O(1) (Briggs and Torczon). */
struct threads {
	uint32_t *dense, *sparse;
	size_t n;
};

static bool threads_has(const struct threads *t, uint32_t pc)
{
	uint32_t i = t->sparse[pc];
	return i < t->n && t->dense[i] == pc;
}

struct vm {
	const struct jsonschema_regex *re;
	uint32_t *stack;
	size_t pos, len;     /* bytes */
	uint32_t prev, next; /* the code points around pos; NONE at an end */
	size_t steps;
	bool matched;
};

/* ECMA's \w: ASCII letters, digits and _ (NONE, an end, is not one). */
static bool is_word(uint32_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       c == '_';
}

/* Adds pc and what it reaches without reading (at vm->pos) to t. */
static void add_thread(struct vm *vm, struct threads *t, uint32_t pc)
{
	size_t top = 0;
	vm->stack[top++] = pc;
	while (top > 0) {
		pc = vm->stack[--top];
		if (threads_has(t, pc))
			continue;
		t->sparse[pc] = (uint32_t)t->n;
		t->dense[t->n++] = pc;
		vm->steps++;
		const struct insn *in = &vm->re->code[pc];
		bool go = false;
		switch ((enum op)in->op) {
		case OP_CLASS: break;
		case OP_MATCH: vm->matched = true; break;
		case OP_JMP: vm->stack[top++] = in->x; break;
		case OP_SPLIT:
			vm->stack[top++] = in->y;
			vm->stack[top++] = in->x;
			break;
		case OP_BOL: go = vm->pos == 0; break;
		case OP_EOL: go = vm->pos == vm->len; break;
		case OP_WORD_B:
		case OP_NOT_WORD_B:
			go = (is_word(vm->prev) != is_word(vm->next)) == (in->op == OP_WORD_B);
			break;
		}
		if (go)
			vm->stack[top++] = pc + 1;
	}
}

static bool class_has(const struct jsonschema_regex *re, const struct insn *in, uint32_t c)
{
	const uint32_t *r = re->ranges + in->x;
	size_t lo = 0, hi = in->y;
	while (lo < hi) { /* the first range whose end is >= c */
		size_t mid = (lo + hi) / 2;
		if (r[2 * mid + 1] < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < in->y && r[2 * lo] <= c;
}

/* The code point at s[pos] and its length; a byte that starts no UTF-8
 * sequence reads as U+FFFD. NONE at the end. */
static uint32_t decode(const unsigned char *s, size_t pos, size_t len, size_t *n)
{
	if (pos >= len) {
		*n = 0;
		return NONE;
	}
	*n = utf8_seq_len(s + pos, s + len);
	if (*n == 0) {
		*n = 1;
		return 0xFFFD;
	}
	uint32_t cp = *n == 1 ? s[pos] : s[pos] & (0x7F >> *n);
	for (size_t i = 1; i < *n; i++)
		cp = (cp << 6) | (s[pos + i] & 0x3F);
	return cp;
}

int jsonschema_regex_search(const struct jsonschema_regex *re, const char *subject, size_t len,
                            size_t *budget)
{
	const unsigned char *s = (const unsigned char *)subject;
	size_t m = re->n, next_len;
	/* Two thread sets and the stack: a thread pushes at most two more. */
	uint32_t *mem = xcalloc(6 * m + 1, sizeof *mem);
	struct threads cur = {mem, mem + m, 0}, nxt = {mem + 2 * m, mem + 3 * m, 0};
	struct vm vm = {.re = re, .stack = mem + 4 * m, .len = len, .prev = NONE};
	vm.next = decode(s, 0, len, &next_len);
	add_thread(&vm, &cur, 0);
	int rc = 0;
	while (!vm.matched && vm.pos < len) {
		uint32_t c = vm.next;
		vm.pos += next_len;
		vm.prev = c;
		vm.next = decode(s, vm.pos, len, &next_len);
		nxt.n = 0;
		for (size_t i = 0; i < cur.n; i++) {
			const struct insn *in = &re->code[cur.dense[i]];
			vm.steps++;
			if (in->op == OP_CLASS && class_has(re, in, c))
				add_thread(&vm, &nxt, cur.dense[i] + 1);
		}
		add_thread(&vm, &nxt, 0); /* a match may start at any point */
		struct threads swap = cur;
		cur = nxt;
		nxt = swap;
		if (budget && vm.steps > *budget) {
			rc = -1;
			break;
		}
	}
	if (rc == 0)
		rc = vm.matched;
	if (budget)
		*budget = vm.steps > *budget ? 0 : *budget - vm.steps;
	free(mem);
	return rc;
}
