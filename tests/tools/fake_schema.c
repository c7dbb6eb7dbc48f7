/* fake_schema: answers made from JSON Schemas, answers that break them, and
 * the schema rules each provider enforces before it answers.
 *
 * The instance is small and predictable: the required properties only,
 * minItems items, 0 (or the nearest bound) for numbers, "fake" for strings
 * (a known format's example, or a string built from the pattern), the
 * first enum value, the first anyOf alternative. A pattern is generated
 * from its regular expression (ECMA-262's common subset: literals, ".",
 * classes, \d \w \s, groups, alternation and the quantifiers); patterns
 * with back-references or look-arounds give up and answer "fake". */
#include "fake.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCHEMA_MAX_DEPTH 32

enum {
	T_STRING = 1 << 0,
	T_INTEGER = 1 << 1,
	T_NUMBER = 1 << 2,
	T_BOOLEAN = 1 << 3,
	T_OBJECT = 1 << 4,
	T_ARRAY = 1 << 5,
	T_NULL = 1 << 6,
	T_ALL = (1 << 7) - 1,
};

static const struct {
	const char *name;
	unsigned bit;
} type_names[] = {
        {"string", T_STRING}, {"integer", T_INTEGER}, {"number", T_NUMBER}, {"boolean", T_BOOLEAN},
        {"object", T_OBJECT}, {"array", T_ARRAY},     {"null", T_NULL},
};

/* A type name's bit, case-insensitively (Gemini's OpenAPI says "OBJECT"). */
static unsigned type_bit(const char *name)
{
	for (size_t i = 0; name != NULL && i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		if (strcasecmp(name, type_names[i].name) == 0)
			return type_names[i].bit;
	}
	return 0;
}

static unsigned value_bit(json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING: return T_STRING;
	case JSON_INTEGER: return T_INTEGER | T_NUMBER;
	case JSON_REAL: return T_NUMBER;
	case JSON_TRUE:
	case JSON_FALSE: return T_BOOLEAN;
	case JSON_OBJECT: return T_OBJECT;
	case JSON_ARRAY: return T_ARRAY;
	default: return T_NULL;
	}
}

/* The schema "$ref" points to inside root ("#", "#/$defs/X",
 * "#/definitions/X", any "#/a/b" JSON pointer); NULL when it points
 * nowhere. Borrowed. */
static json_t *ref_target(json_t *root, const char *ref)
{
	json_t *at = root;
	const char *p;

	if (ref == NULL || ref[0] != '#')
		return NULL;
	p = ref + 1;
	while (*p == '/' && at != NULL) {
		char key[256];
		size_t n = 0;

		p++;
		while (*p != '\0' && *p != '/' && n < sizeof(key) - 1) {
			if (p[0] == '~' && p[1] == '0') {
				key[n++] = '~';
				p += 2;
			} else if (p[0] == '~' && p[1] == '1') {
				key[n++] = '/';
				p += 2;
			} else {
				key[n++] = *p++;
			}
		}
		key[n] = '\0';
		at = json_is_array(at) ? json_array_get(at, strtoul(key, NULL, 10))
		                       : json_object_get(at, key);
	}
	return *p == '\0' ? at : NULL;
}

/* schema with its "$ref"s followed. Borrowed; NULL for a dangling one. */
static json_t *deref(json_t *root, json_t *schema)
{
	for (int i = 0; i < SCHEMA_MAX_DEPTH && json_is_object(schema); i++) {
		json_t *ref = json_object_get(schema, "$ref");

		if (!json_is_string(ref))
			return schema;
		schema = ref_target(root, json_string_value(ref));
	}
	return json_is_object(schema) || json_is_boolean(schema) ? schema : NULL;
}

static json_t *alternatives(json_t *schema)
{
	json_t *alt = json_object_get(schema, "anyOf");

	if (!json_is_array(alt) || json_array_size(alt) == 0)
		alt = json_object_get(schema, "oneOf");
	return json_is_array(alt) && json_array_size(alt) > 0 ? alt : NULL;
}

/* The JSON types schema allows (T_ALL when it does not say). */
static unsigned types_of(json_t *root, json_t *schema, int depth)
{
	json_t *type, *alt, *v;
	unsigned mask = 0;
	size_t i;

	schema = deref(root, schema);
	if (depth > SCHEMA_MAX_DEPTH || !json_is_object(schema))
		return json_is_false(schema) ? 0 : T_ALL;
	if (json_object_get(schema, "const") != NULL)
		return value_bit(json_object_get(schema, "const"));
	if (json_is_array(json_object_get(schema, "enum"))) {
		json_array_foreach (json_object_get(schema, "enum"), i, v)
			mask |= value_bit(v);
		return mask;
	}
	alt = alternatives(schema);
	if (alt != NULL) {
		json_array_foreach (alt, i, v)
			mask |= types_of(root, v, depth + 1);
		return mask;
	}
	type = json_object_get(schema, "type");
	if (json_is_string(type)) {
		mask = type_bit(json_string_value(type));
	} else if (json_is_array(type)) {
		json_array_foreach (type, i, v)
			mask |= type_bit(json_string_value(v));
	} else {
		return T_ALL;
	}
	if (mask & T_NUMBER)
		mask |= T_INTEGER;
	if (json_is_true(json_object_get(schema, "nullable")))
		mask |= T_NULL;
	return mask;
}

/* -------------------------------------------------------------- patterns */

/* A string that a regular expression matches, built by walking it. */
struct pattern {
	const char *p;
	char out[512];
	size_t n;
	bool ok;
};

static void pat_put(struct pattern *pt, char ch)
{
	if (pt->n + 1 < sizeof(pt->out))
		pt->out[pt->n++] = ch;
	else
		pt->ok = false;
}

/* What an escape such as \d stands for: one character of it. */
static char escape_char(char e, bool *is_class)
{
	*is_class = true;
	switch (e) {
	case 'd': return '0';
	case 'D': return 'a';
	case 'w': return 'a';
	case 'W': return '-';
	case 's': return ' ';
	case 'S': return 'a';
	case 'n': *is_class = false; return '\n';
	case 't': *is_class = false; return '\t';
	default: *is_class = false; return e;
	}
}

/* Whether ch is in the class body [from, to) (without the brackets and ^). */
static bool class_has(const char *from, const char *to, char ch)
{
	for (const char *q = from; q < to; q++) {
		char lo = *q, hi;
		bool is_class = false;

		if (*q == '\\' && q + 1 < to) {
			q++;
			lo = escape_char(*q, &is_class);
			if (is_class) {
				if ((*q == 'd' && ch >= '0' && ch <= '9') ||
				    (*q == 'w' &&
				     (ch == '_' || (ch >= 'a' && ch <= 'z') ||
				      (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))) ||
				    (*q == 's' && ch == ' '))
					return true;
				continue;
			}
		}
		hi = lo;
		if (q + 2 < to && q[1] == '-' && q[2] != ']') {
			hi = q[2] == '\\' && q + 3 < to ? q[3] : q[2];
			q += q[2] == '\\' ? 3 : 2;
		}
		if (ch >= lo && ch <= hi)
			return true;
	}
	return false;
}

/* One character of a [class]; p is past the '['. Returns past the ']'. */
static const char *pat_class(struct pattern *pt, const char *p)
{
	bool negated = *p == '^';
	const char *body = negated ? p + 1 : p, *end = body;
	static const char tries[] = "a0A_-. xz9Z";
	bool is_class;

	if (*end == ']')
		end++; /* a ']' first is a literal */
	while (*end != '\0' && *end != ']')
		end += (*end == '\\' && end[1] != '\0') ? 2 : 1;
	if (*end != ']') {
		pt->ok = false;
		return end;
	}
	if (!negated && body < end) {
		pat_put(pt, *body == '\\' ? escape_char(body[1], &is_class) : *body);
		return end + 1;
	}
	for (const char *t = tries; *t != '\0'; t++) {
		if (class_has(body, end, *t) != negated) {
			pat_put(pt, *t);
			return end + 1;
		}
	}
	pt->ok = false;
	return end + 1;
}

static void pat_alternative(struct pattern *pt, int depth);

/* One atom at pt->p, written to the output. */
static void pat_atom(struct pattern *pt, int depth)
{
	const char *p = pt->p;
	bool is_class;

	switch (*p) {
	case '(':
		p++;
		if (p[0] == '?' && p[1] == ':') {
			p += 2;
		} else if (p[0] == '?') {
			pt->ok = false; /* look-around, named group: not here */
			return;
		}
		pt->p = p;
		pat_alternative(pt, depth + 1);
		if (*pt->p != ')') {
			pt->ok = false;
			return;
		}
		pt->p++;
		return;
	case '[': pt->p = pat_class(pt, p + 1); return;
	case '.': pat_put(pt, 'a'); break;
	case '\\':
		if (p[1] == '\0' || (p[1] >= '1' && p[1] <= '9')) {
			pt->ok = false; /* back-reference */
			return;
		}
		p++;
		if (*p != 'b' && *p != 'B')
			pat_put(pt, escape_char(*p, &is_class));
		break;
	default: pat_put(pt, *p); break;
	}
	pt->p = p + 1;
}

/* How many times the atom just written repeats: its quantifier's least. */
static long pat_quantifier(struct pattern *pt)
{
	const char *p = pt->p;
	long n = 1;

	if (*p == '*' || *p == '?') {
		n = 0;
		p++;
	} else if (*p == '+') {
		p++;
	} else if (*p == '{' && p[1] >= '0' && p[1] <= '9') {
		char *end;

		n = strtol(p + 1, &end, 10);
		while (*end != '\0' && *end != '}')
			end++;
		p = *end == '}' ? end + 1 : end;
	} else {
		return 1;
	}
	if (*p == '?')
		p++; /* lazy */
	pt->p = p;
	return n;
}

/* The first alternative of a (sub)expression; the others are skipped. */
static void pat_alternative(struct pattern *pt, int depth)
{
	if (depth > SCHEMA_MAX_DEPTH) {
		pt->ok = false;
		return;
	}
	while (pt->ok && *pt->p != '\0' && *pt->p != '|' && *pt->p != ')') {
		size_t start = pt->n;
		long reps;

		if (*pt->p == '^' || *pt->p == '$') {
			pt->p++;
			continue;
		}
		pat_atom(pt, depth);
		reps = pat_quantifier(pt);
		if (reps == 0) {
			pt->n = start;
		} else {
			size_t len = pt->n - start;

			for (long r = 1; r < reps && pt->ok; r++)
				for (size_t k = 0; k < len; k++)
					pat_put(pt, pt->out[start + k]);
		}
	}
	if (*pt->p == '|') {
		int nest = 0;

		while (*pt->p != '\0' && !(nest == 0 && *pt->p == ')')) {
			if (*pt->p == '\\' && pt->p[1] != '\0')
				pt->p++;
			else if (*pt->p == '(')
				nest++;
			else if (*pt->p == ')')
				nest--;
			else if (*pt->p == '[')
				while (pt->p[1] != '\0' && pt->p[1] != ']')
					pt->p++;
			pt->p++;
		}
	}
}

/* A string the pattern matches, or NULL when it cannot be built. New. */
static json_t *pattern_instance(const char *pattern)
{
	struct pattern pt = {.p = pattern, .ok = true};

	pat_alternative(&pt, 0);
	if (!pt.ok || *pt.p != '\0')
		return NULL;
	return json_stringn(pt.out, pt.n);
}

/* -------------------------------------------------------------- instances */

static const struct {
	const char *format, *example;
} formats[] = {
        {"date-time", "2024-01-01T00:00:00Z"},
        {"date", "2024-01-01"},
        {"time", "00:00:00Z"},
        {"duration", "P1D"},
        {"email", "fake@example.com"},
        {"hostname", "example.com"},
        {"ipv4", "127.0.0.1"},
        {"ipv6", "::1"},
        {"uri", "https://example.com/"},
        {"url", "https://example.com/"},
        {"uuid", "00000000-0000-4000-8000-000000000000"},
};

static json_t *string_instance(json_t *schema)
{
	const char *format = json_string_value(json_object_get(schema, "format"));
	const char *pattern = json_string_value(json_object_get(schema, "pattern"));
	json_t *minl = json_object_get(schema, "minLength"),
	       *maxl = json_object_get(schema, "maxLength");
	int64_t len = 4;
	char buf[512];

	for (size_t i = 0; format != NULL && i < sizeof(formats) / sizeof(formats[0]); i++) {
		if (strcmp(format, formats[i].format) == 0)
			return json_string(formats[i].example);
	}
	if (pattern != NULL) {
		json_t *s = pattern_instance(pattern);

		if (s != NULL)
			return s;
	}
	if (json_is_integer(minl) && json_integer_value(minl) > len)
		len = json_integer_value(minl);
	if (json_is_integer(maxl) && json_integer_value(maxl) < len)
		len = json_integer_value(maxl) > 0 ? json_integer_value(maxl) : 0;
	if (len == 4)
		return json_string("fake");
	if (len > (int64_t)sizeof(buf) - 1)
		len = (int64_t)sizeof(buf) - 1; /* a test asks for no more */
	memset(buf, 'f', (size_t)len);
	return json_stringn(buf, (size_t)len);
}

/* A bound from inclusive (minimum/maximum) and exclusive
 * (exclusiveMinimum/exclusiveMaximum: a number, or draft 4's boolean on
 * the inclusive one), the tighter when both are numbers. */
static bool bound(json_t *schema, bool lower, double *v, bool *excl)
{
	json_t *inc = json_object_get(schema, lower ? "minimum" : "maximum");
	json_t *exc = json_object_get(schema, lower ? "exclusiveMinimum" : "exclusiveMaximum");
	bool has = json_is_number(inc);

	*excl = has && json_is_true(exc);
	if (has)
		*v = json_number_value(inc);
	if (json_is_number(exc)) {
		double e = json_number_value(exc);

		if (!has || (lower ? e >= *v : e <= *v)) {
			*v = e;
			*excl = true;
		}
		has = true;
	}
	return has;
}

static bool outside(double v, double b, bool excl, bool lower)
{
	return lower ? (v < b || (excl && v <= b)) : (v > b || (excl && v >= b));
}

/* The inside value nearest a bound b. */
static double inside(double b, bool excl, bool lower, bool integer)
{
	if (integer)
		return lower ? (excl ? floor(b) + 1 : ceil(b)) : (excl ? ceil(b) - 1 : floor(b));
	return excl ? (lower ? b + 1 : b - 1) : b;
}

static json_t *number_instance(json_t *schema, bool integer)
{
	double lo = 0, hi = 0, v = 0;
	bool lo_x, hi_x, has_lo = bound(schema, true, &lo, &lo_x),
	                 has_hi = bound(schema, false, &hi, &hi_x);
	json_t *mult = json_object_get(schema, "multipleOf");

	if (has_lo && outside(v, lo, lo_x, true))
		v = inside(lo, lo_x, true, integer);
	if (has_hi && outside(v, hi, hi_x, false))
		v = inside(hi, hi_x, false, integer);
	if (has_lo && outside(v, lo, lo_x, true))
		v = integer ? inside(lo, lo_x, true, true) : (lo + hi) / 2; /* a narrow range */
	if (json_is_number(mult) && json_number_value(mult) > 0) {
		double m = json_number_value(mult);

		v = ceil(v / m) * m;
	}
	if (integer || v == floor(v))
		return json_integer((json_int_t)v);
	return json_real(v);
}

static json_t *instance(json_t *root, json_t *schema, int depth);

static json_t *object_instance(json_t *root, json_t *schema, int depth)
{
	json_t *obj = json_object(), *props = json_object_get(schema, "properties");
	json_t *req = json_object_get(schema, "required"), *name, *extra;
	json_t *minp = json_object_get(schema, "minProperties");
	const char *key;
	size_t i;

	if (obj == NULL)
		return NULL;
	extra = json_object_get(schema, "additionalProperties");
	json_array_foreach (req, i, name) {
		json_t *sub;

		if (!json_is_string(name))
			continue;
		sub = json_object_get(props, json_string_value(name));
		if (sub == NULL)
			sub = json_is_object(extra) ? extra : NULL;
		json_object_set_new(obj, json_string_value(name),
		                    sub != NULL ? instance(root, sub, depth + 1)
		                                : json_string("fake"));
	}
	if (json_is_integer(minp)) {
		json_t *sub;

		json_object_foreach (props, key, sub) {
			if (json_object_size(obj) >= (size_t)json_integer_value(minp))
				break;
			if (json_object_get(obj, key) == NULL)
				json_object_set_new(obj, key, instance(root, sub, depth + 1));
		}
	}
	return obj;
}

static json_t *array_instance(json_t *root, json_t *schema, int depth)
{
	json_t *arr = json_array(), *items = json_object_get(schema, "items");
	json_t *prefix = json_object_get(schema, "prefixItems");
	json_t *min = json_object_get(schema, "minItems");
	int64_t n = json_is_integer(min) ? json_integer_value(min) : 0;

	if (json_is_array(prefix) && (int64_t)json_array_size(prefix) > n)
		n = 0; /* prefix items are optional too */
	for (int64_t i = 0; arr != NULL && i < n && i < 1000; i++) {
		json_t *sub = json_is_array(prefix) && (size_t)i < json_array_size(prefix)
		                      ? json_array_get(prefix, (size_t)i)
		                      : items;

		json_array_append_new(arr, sub != NULL ? instance(root, sub, depth + 1)
		                                       : json_string("fake"));
	}
	return arr;
}

/* The first type of a "type" keyword, one that is not "null" if any. */
static unsigned first_type(json_t *schema)
{
	json_t *type = json_object_get(schema, "type"), *v;
	unsigned bit = 0;
	size_t i;

	if (json_is_string(type))
		return type_bit(json_string_value(type));
	json_array_foreach (type, i, v) {
		unsigned b = type_bit(json_string_value(v));

		if (bit == 0 || bit == T_NULL)
			bit = b;
	}
	if (bit != 0)
		return bit;
	if (json_object_get(schema, "properties") != NULL ||
	    json_object_get(schema, "required") != NULL)
		return T_OBJECT;
	if (json_object_get(schema, "items") != NULL ||
	    json_object_get(schema, "prefixItems") != NULL)
		return T_ARRAY;
	return T_STRING;
}

static json_t *instance(json_t *root, json_t *schema, int depth)
{
	json_t *v, *alt, *all;

	schema = deref(root, schema);
	if (depth > SCHEMA_MAX_DEPTH || !json_is_object(schema))
		return json_is_true(schema) ? json_string("fake") : json_null();
	v = json_object_get(schema, "const");
	if (v != NULL)
		return json_deep_copy(v);
	v = json_object_get(schema, "enum");
	if (json_is_array(v) && json_array_size(v) > 0)
		return json_deep_copy(json_array_get(v, 0));
	alt = alternatives(schema);
	if (alt != NULL)
		return instance(root, json_array_get(alt, 0), depth + 1);
	all = json_object_get(schema, "allOf");
	if (json_is_array(all) && json_array_size(all) > 0 &&
	    json_object_get(schema, "type") == NULL)
		return instance(root, json_array_get(all, 0), depth + 1);
	switch (first_type(schema)) {
	case T_OBJECT: return object_instance(root, schema, depth);
	case T_ARRAY: return array_instance(root, schema, depth);
	case T_INTEGER: return number_instance(schema, true);
	case T_NUMBER: return number_instance(schema, false);
	case T_BOOLEAN: return json_true();
	case T_NULL: return json_null();
	default: return string_instance(schema);
	}
}

json_t *fake_schema_instance(json_t *schema)
{
	return instance(schema, schema, 0);
}

/* ------------------------------------------------------------- breaking */

/* A value of a type outside mask, or NULL when mask takes every type. */
static json_t *wrong_value(unsigned mask)
{
	if (!(mask & T_STRING))
		return json_string("broken");
	if (!(mask & (T_INTEGER | T_NUMBER)))
		return json_integer(12345);
	if (!(mask & T_BOOLEAN))
		return json_true();
	if (!(mask & T_ARRAY))
		return json_array();
	if (!(mask & T_OBJECT))
		return json_object();
	if (!(mask & T_NULL))
		return json_null();
	return NULL;
}

bool fake_schema_break(json_t **inst, json_t *schema, unsigned how)
{
	json_t *s = deref(schema, schema);
	json_t *req = json_object_get(s, "required");
	const char *name = json_string_value(json_array_get(req, 0));
	json_t *v;

	if (json_is_object(*inst) && name != NULL && alternatives(s) == NULL) {
		if (how % 2 == 1) {
			json_t *sub = json_object_get(json_object_get(s, "properties"), name);

			v = wrong_value(sub != NULL ? types_of(schema, sub, 0) : T_ALL);
			if (v != NULL) {
				json_object_set_new(*inst, name, v);
				return true;
			}
		}
		json_object_del(*inst, name);
		return true;
	}
	v = wrong_value(types_of(schema, schema, 0));
	if (v == NULL)
		return false;
	json_decref(*inst);
	*inst = v;
	return true;
}

/* --------------------------------------------------------------- checks */

/* The walk over a schema and its subschemas, with where it stands. */
struct check {
	enum schema_rules rules;
	const char *where;
	char *err;
	size_t err_size;
	char path[512]; /* OpenAI's context tuple body, or a dotted path */
};

static const char *const openapi_keys[] = {
        "type",      "format",    "title",      "description", "nullable",      "enum",
        "maxItems",  "minItems",  "properties", "required",    "minProperties", "maxProperties",
        "minLength", "maxLength", "pattern",    "example",     "anyOf",         "propertyOrdering",
        "default",   "items",     "minimum",    "maximum",
};

static int check_schema(struct check *ck, json_t *schema, int depth);

/* Walks into schema[key] (sub NULL) or schema[key][sub], its path extended. */
static int check_into(struct check *ck, json_t *v, const char *key, const char *sub, int depth)
{
	size_t n = strlen(ck->path);
	int rc;

	if (ck->rules == RULES_OPENAI_STRICT)
		snprintf(ck->path + n, sizeof(ck->path) - n, "%s'%s'%s%s%s", n > 0 ? ", " : "", key,
		         sub != NULL ? ", '" : "", sub != NULL ? sub : "", sub != NULL ? "'" : "");
	else
		snprintf(ck->path + n, sizeof(ck->path) - n, ".%s%s%s", key, sub != NULL ? "." : "",
		         sub != NULL ? sub : "");
	rc = check_schema(ck, v, depth + 1);
	ck->path[n] = '\0';
	return rc;
}

/* Writes the provider's words for a breach at ck->path; returns -1. For
 * RULES_OPENAPI what is the unknown keyword. */
__attribute__((format(printf, 2, 3))) static int check_fail(struct check *ck, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (ck->rules == RULES_OPENAI_STRICT)
		snprintf(ck->err, ck->err_size, "%s: In context=(%s), %s", ck->where, ck->path,
		         what);
	else if (ck->rules == RULES_OPENAPI)
		snprintf(ck->err, ck->err_size,
		         "Invalid JSON payload received. Unknown name \"%s\" at '%s%s': Cannot "
		         "find field.",
		         what, ck->where, ck->path);
	else
		snprintf(ck->err, ck->err_size, "%s: %s", ck->where, what);
	return -1;
}

static int check_object(struct check *ck, json_t *schema)
{
	json_t *props = json_object_get(schema, "properties");
	json_t *req = json_object_get(schema, "required");
	json_t *extra = json_object_get(schema, "additionalProperties");
	const char *key;
	json_t *v;

	if (ck->rules == RULES_ANTHROPIC && !json_is_false(extra))
		return check_fail(ck, "For 'object' type, 'additionalProperties' must be "
		                      "explicitly set to false");
	if (ck->rules != RULES_OPENAI_STRICT)
		return 0;
	if (!json_is_false(extra))
		return check_fail(ck, "'additionalProperties' is required to be supplied and to "
		                      "be false.");
	json_object_foreach (props, key, v) {
		bool found = false;
		size_t i;
		json_t *r;

		json_array_foreach (req, i, r)
			found = found ||
			        (json_is_string(r) && strcmp(json_string_value(r), key) == 0);
		if (!found)
			return check_fail(
			        ck,
			        "'required' is required to be supplied and to be an array "
			        "including every key in properties. Missing '%s'.",
			        key);
	}
	return 0;
}

/* Anthropic's grammar leaves out bounds on numbers, strings and arrays. */
static int check_anthropic_bounds(struct check *ck, json_t *schema, unsigned type)
{
	static const char *const number_keys[] = {"minimum", "maximum", "exclusiveMinimum",
	                                          "exclusiveMaximum", "multipleOf"};
	static const char *const string_keys[] = {"minLength", "maxLength"};
	json_t *min = json_object_get(schema, "minItems");

	for (size_t i = 0; (type & (T_INTEGER | T_NUMBER)) && i < 5; i++) {
		if (json_object_get(schema, number_keys[i]) != NULL)
			return check_fail(ck, "For '%s' type, property '%s' is not supported",
			                  (type & T_NUMBER) ? "number" : "integer", number_keys[i]);
	}
	for (size_t i = 0; (type & T_STRING) && i < 2; i++) {
		if (json_object_get(schema, string_keys[i]) != NULL)
			return check_fail(ck, "For '%s' type, property '%s' is not supported",
			                  "string", string_keys[i]);
	}
	if ((type & T_ARRAY) && json_object_get(schema, "maxItems") != NULL)
		return check_fail(ck, "For '%s' type, property '%s' is not supported", "array",
		                  "maxItems");
	if ((type & T_ARRAY) && json_is_integer(min) && json_integer_value(min) > 1)
		return check_fail(ck, "For 'array' type, 'minItems' values other than 0 or 1 are "
		                      "not supported");
	return 0;
}

static int check_schema(struct check *ck, json_t *schema, int depth)
{
	static const char *const nests[] = {"$defs", "definitions", "properties"};
	const char *key;
	json_t *v;
	size_t i;
	unsigned type;

	if (!json_is_object(schema) || depth > SCHEMA_MAX_DEPTH)
		return 0;
	if (ck->rules == RULES_OPENAPI) {
		json_object_foreach (schema, key, v) {
			bool known = false;

			for (i = 0; i < sizeof(openapi_keys) / sizeof(openapi_keys[0]); i++)
				known = known || strcmp(key, openapi_keys[i]) == 0;
			if (!known)
				return check_fail(ck, "%s", key);
		}
	}
	type = json_object_get(schema, "type") != NULL ? types_of(schema, schema, 0) : 0;
	if ((type & T_OBJECT) || json_object_get(schema, "properties") != NULL) {
		if (check_object(ck, schema) != 0)
			return -1;
	}
	if (ck->rules == RULES_ANTHROPIC && check_anthropic_bounds(ck, schema, type) != 0)
		return -1;
	for (i = 0; i < sizeof(nests) / sizeof(nests[0]); i++) {
		json_object_foreach (json_object_get(schema, nests[i]), key, v) {
			if (check_into(ck, v, nests[i], key, depth) != 0)
				return -1;
		}
	}
	if (check_into(ck, json_object_get(schema, "items"), "items", NULL, depth) != 0)
		return -1;
	json_array_foreach (json_object_get(schema, "anyOf"), i, v) {
		char idx[24];

		snprintf(idx, sizeof(idx), "%zu", i);
		if (check_into(ck, v, "anyOf", idx, depth) != 0)
			return -1;
	}
	return 0;
}

int fake_schema_check(json_t *schema, enum schema_rules rules, const char *where, char *err,
                      size_t err_size)
{
	struct check ck = {rules, where, err, err_size, ""};

	if (rules == RULES_OPENAI_STRICT) {
		const char *type = json_string_value(json_object_get(schema, "type"));

		if (type == NULL || strcmp(type, "object") != 0 ||
		    json_object_get(schema, "anyOf") != NULL) {
			snprintf(err, err_size,
			         "%s: schema must be a JSON Schema of 'type: \"object\"', got "
			         "'type: \"%s\"'.",
			         where, type != NULL ? type : "None");
			return -1;
		}
	}
	return check_schema(&ck, schema, 0);
}
