/* jsonschema: see jsonschema.h.
 *
 * Compiling makes one node per schema of the document (a walk over the
 * places that hold schemas: properties, items, anyOf, $defs, ...), each
 * with its keywords read and its pattern compiled; then the $refs are
 * resolved to nodes, and the graph of the edges that keep to the same
 * instance value ($ref, anyOf) is searched for loops. Validation walks the
 * nodes and the instance together.
 *
 * One file of about 1,100 lines, past the project's 900, because it is one
 * idea: the compiled node is the contract between compiling and validating
 * (every keyword is read in one place and checked in the other, side by
 * side), and splitting them would put a private representation behind an
 * internal header for no reader's gain. The regex engine, a second idea, has
 * its own file (jsonschema_regex.c). */
#include "jsonschema.h"

#include "buf.h"
#include "jsonschema_regex.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

enum kind { NODE_TRUE, NODE_FALSE, NODE_OBJECT };

enum {
	T_NULL = 1,
	T_BOOLEAN = 2,
	T_OBJECT = 4,
	T_ARRAY = 8,
	T_NUMBER = 16,
	T_STRING = 32,
	T_INTEGER = 64,
};
static const char *const type_names[] = {"null",   "boolean", "object", "array",
                                         "number", "string",  "integer"};
#define N_TYPES (sizeof type_names / sizeof *type_names)

/* Keywords that change nothing (jsonschema.h). */
static const char *const annotations[] = {
        "title",      "description", "$comment",  "default", "examples",
        "deprecated", "readOnly",    "writeOnly", "format",
};

/* One schema of the document. Pointers into the document are borrowed. */
struct node {
	const json_t *json;
	/* Where it is: under the node `parent`, at keyword kw, then member
	 * name (properties, $defs) or index (anyOf), if any. */
	uint32_t parent;
	const char *kw;
	const char *name;
	size_t name_len;
	long index; /* -1: none */

	uint8_t kind;  /* enum kind */
	uint8_t types; /* T_ bits; 0: any */
	const json_t *properties, *required, *enum_values, *const_value, *minimum, *maximum;
	uint32_t props, n_props; /* the properties' nodes: js->props[props ..] */
	uint32_t any, n_any;     /* anyOf: js->any[any ..] */
	uint32_t additional, items, ref;
	int64_t min_length, max_length, min_items, max_items; /* -1: none */
	struct jsonschema_regex *pattern;                     /* owned; NULL: none */
	const char *pattern_text;
};

struct prop {
	const char *name;
	size_t len;
	uint32_t node;
};

struct jsonschema {
	json_t *root; /* a reference of our own */
	struct node *nodes;
	size_t n_nodes, cap_nodes;
	struct prop *props;
	size_t n_props, cap_props;
	uint32_t *any;
	size_t n_any, cap_any;
};

/* One step of a JSON pointer being walked: a member name, or an index
 * when key is NULL. Chains of them live on the C stack. */
struct seg {
	const struct seg *up;
	const char *key;
	size_t key_len;
	size_t index;
};

static void *grow(void *arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return arr;
	*cap = *cap ? *cap * 2 : 16;
	return xrealloc(arr, *cap * elem);
}

/* --------------------------------------------------------- JSON pointers */

static void put_token(struct buf *b, const char *s, size_t len)
{
	buf_append(b, "/", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '~')
			buf_puts(b, "~0");
		else if (s[i] == '/')
			buf_puts(b, "~1");
		else if (s[i] == '\0')
			buf_puts(b, "\\u0000");
		else
			buf_append(b, &s[i], 1);
	}
}

static void put_index(struct buf *b, size_t i)
{
	buf_append(b, "/", 1);
	buf_i64(b, (int64_t)i);
}

/* The pointer of a chain of segs (new text in b). */
static void put_segs(struct buf *b, const struct seg *at)
{
	size_t n = 0;
	for (const struct seg *s = at; s; s = s->up)
		n++;
	const struct seg **path = xmalloc((n ? n : 1) * sizeof *path);
	size_t i = n;
	for (const struct seg *s = at; s; s = s->up)
		path[--i] = s;
	for (i = 0; i < n; i++) {
		if (path[i]->key)
			put_token(b, path[i]->key, path[i]->key_len);
		else
			put_index(b, path[i]->index);
	}
	free(path);
	if (n == 0)
		buf_puts(b, "(root)");
}

/* The pointer of node n in the schema. */
static void put_node_path(struct buf *b, const struct jsonschema *js, uint32_t n)
{
	uint32_t path[JSONSCHEMA_MAX_DEPTH + 1];
	size_t k = 0;
	for (uint32_t i = n; i != NONE && k < JSONSCHEMA_MAX_DEPTH + 1; i = js->nodes[i].parent)
		path[k++] = i;
	size_t start = b->len;
	while (k-- > 0) {
		const struct node *s = &js->nodes[path[k]];
		if (!s->kw)
			continue;
		put_token(b, s->kw, strlen(s->kw));
		if (s->name)
			put_token(b, s->name, s->name_len);
		else if (s->index >= 0)
			put_index(b, (size_t)s->index);
	}
	if (b->len == start)
		buf_puts(b, "(root)");
}

/* ------------------------------------------------------------- checking */

struct comp {
	struct jsonschema *js;
	char *errstr;
	size_t errstr_size;
	bool failed;
	size_t values;
	size_t pattern_insns;
	struct pending_ref {
		uint32_t node;
		const char *ref;
		size_t len;
	} * refs;
	size_t n_refs, cap_refs;
};

/* Fails with `keyword "kw" at <node's pointer>: <what>`, or "is not
 * supported" when fmt is NULL. */
static void comp_fail(struct comp *c, uint32_t node, const char *kw, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void comp_fail(struct comp *c, uint32_t node, const char *kw, const char *fmt, ...)
{
	if (c->failed)
		return;
	c->failed = true;
	struct buf b = {0};
	buf_printf(&b, "keyword \"%.100s\" at ", kw);
	put_node_path(&b, c->js, node);
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		buf_puts(&b, ": ");
		buf_vprintf(&b, fmt, ap);
		va_end(ap);
	} else {
		buf_puts(&b, " is not supported");
	}
	snprintf(c->errstr, c->errstr_size, "%s", b.data);
	buf_free(&b);
}

/* Counts the values of the document and measures its depth, before any
 * other walk relies on both being bounded. */
static void comp_measure(struct comp *c, const json_t *v, const struct seg *at, unsigned depth)
{
	if (c->failed)
		return;
	if (++c->values > JSONSCHEMA_MAX_VALUES) {
		snprintf(c->errstr, c->errstr_size, "the schema holds more than %d values",
		         JSONSCHEMA_MAX_VALUES);
		c->failed = true;
		return;
	}
	if (depth > JSONSCHEMA_MAX_DEPTH) {
		struct buf b = {0};
		put_segs(&b, at);
		snprintf(c->errstr, c->errstr_size,
		         "the schema is nested deeper than %d levels at %s", JSONSCHEMA_MAX_DEPTH,
		         b.data);
		buf_free(&b);
		c->failed = true;
		return;
	}
	if (json_is_object(v)) {
		const char *key;
		size_t key_len;
		json_t *m;
		json_object_keylen_foreach((json_t *)v, key, key_len, m)
		{
			struct seg s = {.up = at, .key = key, .key_len = key_len};
			comp_measure(c, m, &s, depth + 1);
			if (c->failed)
				return;
		}
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v) && !c->failed; i++) {
			struct seg s = {.up = at, .index = i};
			comp_measure(c, json_array_get(v, i), &s, depth + 1);
		}
	}
}

static bool is_annotation(const char *kw)
{
	for (size_t i = 0; i < sizeof annotations / sizeof *annotations; i++)
		if (strcmp(kw, annotations[i]) == 0)
			return true;
	return false;
}

/* A non-negative integer (2.0 counts) in *out, saturated at INT64_MAX. */
static bool read_count(const json_t *v, int64_t *out)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d >= 0 && d == trunc(d)) {
			*out = d >= 9223372036854775807.0 ? INT64_MAX : (int64_t)d;
			return true;
		}
	}
	return false;
}

static uint8_t type_bit(const json_t *name)
{
	for (size_t i = 0; i < N_TYPES; i++)
		if (json_is_string(name) && strcmp(json_string_value(name), type_names[i]) == 0 &&
		    strlen(type_names[i]) == json_string_length(name))
			return (uint8_t)(1u << i);
	return 0;
}

static uint32_t comp_schema(struct comp *c, const json_t *s, uint32_t parent, const char *kw,
                            const char *name, size_t name_len, long index);

/* The schemas that are members of obj (properties, $defs); for properties,
 * also recorded as the node's property list. */
static void comp_members(struct comp *c, uint32_t n, const char *kw, const json_t *obj,
                         bool is_props)
{
	const char *key;
	size_t key_len;
	json_t *m;
	if (!json_is_object(obj)) {
		comp_fail(c, n, kw, "must be an object of schemas");
		return;
	}
	size_t first = c->js->n_props;
	json_object_keylen_foreach((json_t *)obj, key, key_len, m)
	{
		uint32_t child = comp_schema(c, m, n, kw, key, key_len, -1);
		if (c->failed)
			return;
		if (!is_props)
			continue;
		struct jsonschema *js = c->js;
		js->props = grow(js->props, &js->cap_props, js->n_props, sizeof *js->props);
		js->props[js->n_props++] =
		        (struct prop){.name = key, .len = key_len, .node = child};
	}
	if (is_props) {
		c->js->nodes[n].props = (uint32_t)first;
		c->js->nodes[n].n_props = (uint32_t)(c->js->n_props - first);
	}
}

static void comp_any_of(struct comp *c, uint32_t n, const json_t *arr)
{
	struct jsonschema *js = c->js;
	size_t k = json_array_size(arr);
	if (!json_is_array(arr) || k == 0) {
		comp_fail(c, n, "anyOf", "must be a non-empty array of schemas");
		return;
	}
	/* The children are compiled first: their own anyOfs take slots too. */
	uint32_t *kids = xmalloc(k * sizeof *kids);
	for (size_t i = 0; i < k && !c->failed; i++)
		kids[i] = comp_schema(c, json_array_get(arr, i), n, "anyOf", NULL, 0, (long)i);
	if (!c->failed) {
		js->nodes[n].any = (uint32_t)js->n_any;
		js->nodes[n].n_any = (uint32_t)k;
		for (size_t i = 0; i < k; i++) {
			js->any = grow(js->any, &js->cap_any, js->n_any, sizeof *js->any);
			js->any[js->n_any++] = kids[i];
		}
	}
	free(kids);
}

static void comp_type(struct comp *c, uint32_t n, const json_t *v)
{
	uint8_t types = 0;
	if (json_is_string(v)) {
		types = type_bit(v);
		if (!types)
			comp_fail(c, n, "type", "\"%.40s\" is not a type", json_string_value(v));
	} else if (json_is_array(v) && json_array_size(v) > 0) {
		for (size_t i = 0; i < json_array_size(v) && !c->failed; i++) {
			uint8_t bit = type_bit(json_array_get(v, i));
			if (!bit)
				comp_fail(c, n, "type", "member %zu is not a type name", i);
			types |= bit;
		}
	} else {
		comp_fail(c, n, "type", "must be a type name or a non-empty array of them");
	}
	c->js->nodes[n].types = types;
}

static void comp_pattern(struct comp *c, uint32_t n, const json_t *v)
{
	char why[200];
	if (!json_is_string(v)) {
		comp_fail(c, n, "pattern", "must be a string");
		return;
	}
	struct jsonschema_regex *re = jsonschema_regex_compile(
	        json_string_value(v), json_string_length(v), why, sizeof why);
	if (!re) {
		comp_fail(c, n, "pattern", "%s", why);
		return;
	}
	struct node *s = &c->js->nodes[n];
	s->pattern = re;
	s->pattern_text = json_string_value(v);
	c->pattern_insns += jsonschema_regex_size(re);
	if (c->pattern_insns > JSONSCHEMA_MAX_PATTERN_INSNS)
		comp_fail(c, n, "pattern",
		          "the schema's patterns together make more than %d instructions",
		          JSONSCHEMA_MAX_PATTERN_INSNS);
}

/* Reads keyword kw (value v) of the object schema n. Returns whether it may
 * stand next to a $ref. */
static bool comp_keyword(struct comp *c, uint32_t n, const char *kw, const json_t *v)
{
	struct node *s = &c->js->nodes[n]; /* only until a child is compiled */
	int64_t *count = NULL;
	if (is_annotation(kw))
		return true;
	if (strcmp(kw, "$defs") == 0 || strcmp(kw, "definitions") == 0) {
		comp_members(c, n, kw, v, false);
		return true;
	}
	if ((strcmp(kw, "$schema") == 0 || strcmp(kw, "$id") == 0) && s->parent == NONE) {
		if (!json_is_string(v))
			comp_fail(c, n, kw, "must be a string");
		return true;
	}
	if (strcmp(kw, "$ref") == 0) {
		if (!json_is_string(v)) {
			comp_fail(c, n, kw, "must be a string");
			return true;
		}
		c->refs = grow(c->refs, &c->cap_refs, c->n_refs, sizeof *c->refs);
		c->refs[c->n_refs++] = (struct pending_ref){
		        .node = n, .ref = json_string_value(v), .len = json_string_length(v)};
		return true;
	}
	if (strcmp(kw, "type") == 0) {
		comp_type(c, n, v);
	} else if (strcmp(kw, "properties") == 0) {
		s->properties = v;
		comp_members(c, n, kw, v, true);
	} else if (strcmp(kw, "required") == 0) {
		bool ok = json_is_array(v);
		for (size_t i = 0; ok && i < json_array_size(v); i++)
			ok = json_is_string(json_array_get(v, i));
		if (ok)
			s->required = v;
		else
			comp_fail(c, n, kw, "must be an array of strings");
	} else if (strcmp(kw, "additionalProperties") == 0) {
		uint32_t child = comp_schema(c, v, n, kw, NULL, 0, -1);
		c->js->nodes[n].additional = child;
	} else if (strcmp(kw, "items") == 0) {
		if (json_is_array(v)) {
			comp_fail(
			        c, n, kw,
			        "the array form (draft 7 tuples) is not supported, only a schema");
			return false;
		}
		uint32_t child = comp_schema(c, v, n, kw, NULL, 0, -1);
		c->js->nodes[n].items = child;
	} else if (strcmp(kw, "enum") == 0) {
		if (json_is_array(v))
			s->enum_values = v;
		else
			comp_fail(c, n, kw, "must be an array");
	} else if (strcmp(kw, "const") == 0) {
		s->const_value = v;
	} else if (strcmp(kw, "anyOf") == 0) {
		comp_any_of(c, n, v);
	} else if (strcmp(kw, "minimum") == 0 || strcmp(kw, "maximum") == 0) {
		if (!json_is_number(v))
			comp_fail(c, n, kw, "must be a number");
		else if (kw[1] == 'i')
			s->minimum = v;
		else
			s->maximum = v;
	} else if (strcmp(kw, "minLength") == 0) {
		count = &s->min_length;
	} else if (strcmp(kw, "maxLength") == 0) {
		count = &s->max_length;
	} else if (strcmp(kw, "minItems") == 0) {
		count = &s->min_items;
	} else if (strcmp(kw, "maxItems") == 0) {
		count = &s->max_items;
	} else if (strcmp(kw, "pattern") == 0) {
		comp_pattern(c, n, v);
	} else if ((strcmp(kw, "$schema") == 0 || strcmp(kw, "$id") == 0)) {
		comp_fail(c, n, kw, "is only supported at the root");
	} else {
		comp_fail(c, n, kw, NULL);
	}
	if (count && !read_count(v, count))
		comp_fail(c, n, kw, "must be a non-negative integer");
	return false;
}

/* Compiles the schema s found under parent at kw (/name or /index);
 * returns its node. */
static uint32_t comp_schema(struct comp *c, const json_t *s, uint32_t parent, const char *kw,
                            const char *name, size_t name_len, long index)
{
	struct jsonschema *js = c->js;
	js->nodes = grow(js->nodes, &js->cap_nodes, js->n_nodes, sizeof *js->nodes);
	uint32_t n = (uint32_t)js->n_nodes++;
	js->nodes[n] = (struct node){.json = s,
	                             .parent = parent,
	                             .kw = kw,
	                             .name = name,
	                             .name_len = name_len,
	                             .index = index,
	                             .kind = NODE_OBJECT,
	                             .additional = NONE,
	                             .items = NONE,
	                             .ref = NONE,
	                             .min_length = -1,
	                             .max_length = -1,
	                             .min_items = -1,
	                             .max_items = -1};
	if (json_is_true(s) || json_is_false(s)) {
		js->nodes[n].kind = json_is_true(s) ? NODE_TRUE : NODE_FALSE;
		return n;
	}
	if (!json_is_object(s)) {
		struct buf b = {0};
		put_node_path(&b, js, n);
		snprintf(c->errstr, c->errstr_size,
		         "the schema at %s is not a schema (an object or a boolean)", b.data);
		buf_free(&b);
		c->failed = true;
		return n;
	}
	const char *key, *beside_ref = NULL;
	size_t key_len;
	json_t *v;
	json_object_keylen_foreach((json_t *)s, key, key_len, v)
	{
		if (strlen(key) != key_len) {
			comp_fail(c, n, key, NULL);
			break;
		}
		if (!comp_keyword(c, n, key, v) && !beside_ref)
			beside_ref = key;
		if (c->failed)
			break;
	}
	if (!c->failed && beside_ref && json_object_get(s, "$ref"))
		comp_fail(c, n, beside_ref,
		          "next to \"$ref\" is not supported (draft 7 ignores it, 2020-12 applies "
		          "it)");
	return n;
}

/* ------------------------------------------------------------------ refs */

static int cmp_json_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct node *const *)a)[0]->json;
	uintptr_t y = (uintptr_t)((const struct node *const *)b)[0]->json;
	return x < y ? -1 : x > y;
}

/* Decodes %XX in a URI fragment; -1 when one is malformed. */
static int percent_decode(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			buf_append(out, &s[i], 1);
			continue;
		}
		if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
		    !isxdigit((unsigned char)s[i + 2]))
			return -1;
		char hex[3] = {s[i + 1], s[i + 2], '\0'};
		char ch = (char)strtol(hex, NULL, 16);
		buf_append(out, &ch, 1);
		i += 2;
	}
	return 0;
}

/* The value a JSON pointer (RFC 6901) designates in root, or NULL. */
static const json_t *pointer_get(const json_t *root, const char *p, size_t len)
{
	const json_t *v = root;
	size_t i = 0;
	if (len > 0 && p[0] != '/')
		return NULL;
	struct buf tok = {0};
	while (v && i < len) {
		buf_reset(&tok);
		for (i++; i < len && p[i] != '/'; i++) {
			if (p[i] == '~' && i + 1 < len && (p[i + 1] == '0' || p[i + 1] == '1')) {
				buf_append(&tok, p[i + 1] == '0' ? "~" : "/", 1);
				i++;
			} else if (p[i] == '~') {
				v = NULL;
				break;
			} else {
				buf_append(&tok, &p[i], 1);
			}
		}
		const char *t = tok.data ? tok.data : "";
		if (!v) {
			break;
		} else if (json_is_object(v)) {
			v = json_object_getn(v, t, tok.len);
		} else if (json_is_array(v)) {
			bool digits = tok.len > 0 && tok.len < 10 && (t[0] != '0' || tok.len == 1);
			for (size_t k = 0; digits && k < tok.len; k++)
				digits = t[k] >= '0' && t[k] <= '9';
			v = digits ? json_array_get(v, strtoul(t, NULL, 10)) : NULL;
		} else {
			v = NULL;
		}
	}
	buf_free(&tok);
	return v;
}

static void comp_refs(struct comp *c)
{
	struct jsonschema *js = c->js;
	struct node **by_json = xmalloc(js->n_nodes * sizeof *by_json);
	for (size_t i = 0; i < js->n_nodes; i++)
		by_json[i] = &js->nodes[i];
	qsort(by_json, js->n_nodes, sizeof *by_json, cmp_json_ptr);
	for (size_t i = 0; i < c->n_refs && !c->failed; i++) {
		const struct pending_ref *r = &c->refs[i];
		struct buf ptr = {0};
		if (r->len == 0 || r->ref[0] != '#') {
			comp_fail(c, r->node, "$ref",
			          "\"%.100s\": only refs inside the document (\"#...\") are "
			          "supported",
			          r->ref);
		} else if (percent_decode(&ptr, r->ref + 1, r->len - 1) != 0) {
			comp_fail(c, r->node, "$ref", "\"%.100s\" has a malformed %%-escape",
			          r->ref);
		} else {
			const json_t *target =
			        pointer_get(js->root, ptr.data ? ptr.data : "", ptr.len);
			struct node key = {.json = target}, *keyp = &key, **hit = NULL;
			if (target)
				hit = bsearch(&keyp, by_json, js->n_nodes, sizeof *by_json,
				              cmp_json_ptr);
			if (!target)
				comp_fail(c, r->node, "$ref", "\"%.100s\" does not resolve",
				          r->ref);
			else if (!hit)
				comp_fail(c, r->node, "$ref",
				          "\"%.100s\" is not a schema of the document", r->ref);
			else
				js->nodes[r->node].ref = (uint32_t)(*hit - js->nodes);
		}
		buf_free(&ptr);
	}
	free(by_json);
}

/* The n-th edge of node s that keeps to the same instance value. */
static uint32_t in_place_edge(const struct jsonschema *js, const struct node *s, uint32_t e)
{
	if (s->ref != NONE) {
		if (e == 0)
			return s->ref;
		e--;
	}
	return js->any[s->any + e];
}

static uint32_t in_place_edges(const struct node *s)
{
	return (s->ref != NONE) + s->n_any;
}

/* Refuses a loop of $ref/anyOf edges (validation would never end) and a
 * chain of them longer than JSONSCHEMA_MAX_CHAIN: a depth-first search
 * without recursion, as chains may be as long as the document. */
static void comp_loops(struct comp *c)
{
	struct jsonschema *js = c->js;
	struct frame {
		uint32_t node, edge;
	} *stack = xmalloc(js->n_nodes * sizeof *stack);
	uint8_t *state = xcalloc(js->n_nodes, 1); /* 0 new, 1 on the stack, 2 done */
	uint32_t *chain = xcalloc(js->n_nodes, sizeof *chain);
	for (uint32_t root = 0; root < js->n_nodes && !c->failed; root++) {
		if (state[root])
			continue;
		size_t top = 0;
		stack[top++] = (struct frame){root, 0};
		state[root] = 1;
		while (top > 0 && !c->failed) {
			struct frame *f = &stack[top - 1];
			const struct node *s = &js->nodes[f->node];
			if (f->edge < in_place_edges(s)) {
				uint32_t t = in_place_edge(js, s, f->edge++);
				if (state[t] == 0) {
					state[t] = 1;
					stack[top++] = (struct frame){t, 0};
				} else if (state[t] == 1) {
					/* A loop needs a $ref: find the one that closes it. */
					size_t k = top - 1;
					while (k > 0 && !(js->nodes[stack[k].node].ref != NONE &&
					                  stack[k].edge == 1))
						k--;
					comp_fail(c, stack[k].node, "$ref",
					          "a loop of \"$ref\"/\"anyOf\" that never steps "
					          "into "
					          "the instance");
				}
				continue;
			}
			uint32_t longest = 0;
			for (uint32_t e = 0; e < in_place_edges(s); e++) {
				uint32_t t = in_place_edge(js, s, e);
				uint32_t len = chain[t] + 1;
				longest = len > longest ? len : longest;
			}
			chain[f->node] = longest;
			if (longest > JSONSCHEMA_MAX_CHAIN)
				comp_fail(c, f->node, s->ref != NONE ? "$ref" : "anyOf",
				          "more than %d \"$ref\"/\"anyOf\" in a row without a step "
				          "into "
				          "the instance",
				          JSONSCHEMA_MAX_CHAIN);
			state[f->node] = 2;
			top--;
		}
	}
	free(chain);
	free(state);
	free(stack);
}

struct jsonschema *jsonschema_compile(const json_t *schema, char *errstr, size_t errstr_size)
{
	struct jsonschema *js = xcalloc(1, sizeof *js);
	struct comp c = {.js = js, .errstr = errstr, .errstr_size = errstr_size};
	js->root = json_incref((json_t *)schema);
	if (!schema) {
		snprintf(errstr, errstr_size, "no schema");
		goto fail;
	}
	comp_measure(&c, schema, NULL, 0);
	if (c.failed)
		goto fail;
	comp_schema(&c, schema, NONE, NULL, NULL, 0, -1);
	if (!c.failed)
		comp_refs(&c);
	if (!c.failed)
		comp_loops(&c);
	if (c.failed)
		goto fail;
	free(c.refs);
	return js;
fail:
	free(c.refs);
	jsonschema_free(js);
	return NULL;
}

void jsonschema_free(struct jsonschema *js)
{
	if (!js)
		return;
	for (size_t i = 0; i < js->n_nodes; i++) {
		jsonschema_regex_free(js->nodes[i].pattern);
	}
	free(js->nodes);
	free(js->props);
	free(js->any);
	json_decref(js->root);
	free(js);
}

int jsonschema_check(const json_t *schema, char *errstr, size_t errstr_size)
{
	struct jsonschema *js = jsonschema_compile(schema, errstr, errstr_size);
	jsonschema_free(js);
	return js ? 0 : -1;
}

/* ----------------------------------------------------------- validation */

struct vctx {
	const struct jsonschema *js;
	char *errstr;
	size_t errstr_size;
	unsigned quiet;   /* inside anyOf, where a failure is not the answer */
	unsigned nesting; /* nodes being applied */
	long steps;
	size_t pattern_steps; /* left for the patterns' searches */
	bool gave_up;
};

static bool v_message(struct vctx *v, const struct seg *at, const char *kw, const char *fmt,
                      va_list ap)
{
	struct buf b = {0};
	buf_puts(&b, "at ");
	put_segs(&b, at);
	buf_puts(&b, ": ");
	if (kw)
		buf_printf(&b, "keyword \"%s\": ", kw);
	buf_vprintf(&b, fmt, ap);
	snprintf(v->errstr, v->errstr_size, "%s", b.data);
	buf_free(&b);
	return false;
}

/* Records why the instance at `at` fails keyword kw; returns false. */
static bool v_fail(struct vctx *v, const struct seg *at, const char *kw, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static bool v_fail(struct vctx *v, const struct seg *at, const char *kw, const char *fmt, ...)
{
	if (v->quiet || v->gave_up)
		return false;
	va_list ap;
	va_start(ap, fmt);
	v_message(v, at, kw, fmt, ap);
	va_end(ap);
	return false;
}

/* Stops the whole validation (a limit was reached); returns false. */
static bool v_give_up(struct vctx *v, const struct seg *at, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static bool v_give_up(struct vctx *v, const struct seg *at, const char *fmt, ...)
{
	if (v->gave_up)
		return false;
	v->gave_up = true;
	va_list ap;
	va_start(ap, fmt);
	v_message(v, at, NULL, fmt, ap);
	va_end(ap);
	return false;
}

static bool v_step(struct vctx *v, const struct seg *at)
{
	if (v->gave_up)
		return false;
	if (++v->steps > JSONSCHEMA_MAX_STEPS)
		return v_give_up(v, at, "gave up after %d validation steps", JSONSCHEMA_MAX_STEPS);
	return true;
}

/* i <=> d, exactly. */
static int cmp_int_real(json_int_t i, double d)
{
	if (d >= 9223372036854775808.0)
		return -1;
	if (d < -9223372036854775808.0)
		return 1;
	double t = trunc(d);
	json_int_t ti = (json_int_t)t;
	if (i != ti)
		return i < ti ? -1 : 1;
	return d > t ? -1 : d < t ? 1 : 0;
}

/* a <=> b for two numbers, an integer and a real compared exactly. */
static int cmp_number(const json_t *a, const json_t *b)
{
	if (json_is_integer(a) && json_is_integer(b)) {
		json_int_t x = json_integer_value(a), y = json_integer_value(b);
		return x < y ? -1 : x > y;
	}
	if (json_is_real(a) && json_is_real(b)) {
		double x = json_real_value(a), y = json_real_value(b);
		return x < y ? -1 : x > y;
	}
	if (json_is_integer(a))
		return cmp_int_real(json_integer_value(a), json_real_value(b));
	return -cmp_int_real(json_integer_value(b), json_real_value(a));
}

/* JSON equality, numbers by value (1 == 1.0). One step per value. */
static bool v_equal(struct vctx *v, const json_t *a, const json_t *b, const struct seg *at)
{
	if (!v_step(v, at))
		return false;
	if (json_is_number(a) && json_is_number(b))
		return cmp_number(a, b) == 0;
	if (json_typeof(a) != json_typeof(b))
		return false;
	if (json_is_string(a))
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) ==
		               0;
	if (json_is_array(a)) {
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!v_equal(v, json_array_get(a, i), json_array_get(b, i), at))
				return false;
		return true;
	}
	if (json_is_object(a)) {
		const char *key;
		size_t key_len;
		json_t *m;
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_keylen_foreach((json_t *)a, key, key_len, m)
		{
			const json_t *o = json_object_getn(b, key, key_len);
			if (!o || !v_equal(v, m, o, at))
				return false;
		}
	}
	return true; /* true, false, null: the type is the value */
}

static uint8_t instance_types(const json_t *x)
{
	switch (json_typeof(x)) {
	case JSON_NULL: return T_NULL;
	case JSON_TRUE:
	case JSON_FALSE: return T_BOOLEAN;
	case JSON_OBJECT: return T_OBJECT;
	case JSON_ARRAY: return T_ARRAY;
	case JSON_STRING: return T_STRING;
	case JSON_INTEGER: return T_NUMBER | T_INTEGER;
	case JSON_REAL: {
		double d = json_real_value(x);
		return T_NUMBER | (d == trunc(d) ? T_INTEGER : 0);
	}
	}
	return 0;
}

static const char *instance_type_name(const json_t *x)
{
	switch (json_typeof(x)) {
	case JSON_NULL: return "null";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	}
	return "?";
}

static bool v_type(struct vctx *v, const struct node *s, const json_t *x, const struct seg *at)
{
	if (!s->types || (s->types & instance_types(x)))
		return true;
	if (v->quiet)
		return false;
	char names[80] = "";
	size_t len = 0;
	for (size_t i = 0; i < N_TYPES; i++) {
		if (s->types & (1u << i))
			len += (size_t)snprintf(names + len, sizeof names - len, "%s%s",
			                        len ? " or " : "", type_names[i]);
	}
	return v_fail(v, at, "type", "expected %s, got %s", names, instance_type_name(x));
}

static void put_number(char *out, size_t size, const json_t *n)
{
	if (json_is_integer(n))
		snprintf(out, size, "%" JSON_INTEGER_FORMAT, json_integer_value(n));
	else
		snprintf(out, size, "%.17g", json_real_value(n));
}

static bool v_node(struct vctx *v, uint32_t n, const json_t *x, const struct seg *at);

static bool v_object(struct vctx *v, const struct node *s, const json_t *x, const struct seg *at)
{
	const struct jsonschema *js = v->js;
	for (size_t i = 0; i < json_array_size(s->required); i++) {
		const json_t *r = json_array_get(s->required, i);
		if (!json_object_getn(x, json_string_value(r), json_string_length(r)))
			return v_fail(v, at, "required", "property \"%s\" is missing",
			              json_string_value(r));
	}
	for (uint32_t i = 0; i < s->n_props; i++) {
		const struct prop *p = &js->props[s->props + i];
		const json_t *m = json_object_getn(x, p->name, p->len);
		struct seg here = {.up = at, .key = p->name, .key_len = p->len};
		if (m && !v_node(v, p->node, m, &here))
			return false;
	}
	if (s->additional == NONE)
		return true;
	const char *key;
	size_t key_len;
	json_t *m;
	json_object_keylen_foreach((json_t *)x, key, key_len, m)
	{
		if (s->properties && json_object_getn(s->properties, key, key_len))
			continue;
		if (js->nodes[s->additional].kind == NODE_FALSE)
			return v_fail(v, at, "additionalProperties",
			              "property \"%s\" is not allowed", key);
		struct seg here = {.up = at, .key = key, .key_len = key_len};
		if (!v_node(v, s->additional, m, &here))
			return false;
	}
	return true;
}

static bool v_array(struct vctx *v, const struct node *s, const json_t *x, const struct seg *at)
{
	size_t n = json_array_size(x);
	if (s->min_items >= 0 && n < (uint64_t)s->min_items)
		return v_fail(v, at, "minItems", "%zu items, fewer than %" PRId64, n, s->min_items);
	if (s->max_items >= 0 && n > (uint64_t)s->max_items)
		return v_fail(v, at, "maxItems", "%zu items, more than %" PRId64, n, s->max_items);
	if (s->items == NONE)
		return true;
	for (size_t i = 0; i < n; i++) {
		struct seg here = {.up = at, .index = i};
		if (!v_node(v, s->items, json_array_get(x, i), &here))
			return false;
	}
	return true;
}

static bool v_string(struct vctx *v, const struct node *s, const json_t *x, const struct seg *at)
{
	const char *p = json_string_value(x);
	size_t bytes = json_string_length(x), chars = 0;
	if (s->min_length >= 0 || s->max_length >= 0) {
		for (size_t i = 0; i < bytes; i++) /* code points: bytes that start one */
			chars += ((unsigned char)p[i] & 0xC0) != 0x80;
		if (s->min_length >= 0 && chars < (uint64_t)s->min_length)
			return v_fail(v, at, "minLength", "%zu characters, fewer than %" PRId64,
			              chars, s->min_length);
		if (s->max_length >= 0 && chars > (uint64_t)s->max_length)
			return v_fail(v, at, "maxLength", "%zu characters, more than %" PRId64,
			              chars, s->max_length);
	}
	if (s->pattern) {
		int m = jsonschema_regex_search(s->pattern, p, bytes, &v->pattern_steps);
		if (m < 0)
			return v_give_up(v, at, "gave up after %d steps of pattern matching",
			                 JSONSCHEMA_MAX_PATTERN_STEPS);
		if (m == 0)
			return v_fail(v, at, "pattern", "does not match \"%.200s\"",
			              s->pattern_text);
	}
	return true;
}

static bool v_number(struct vctx *v, const struct node *s, const json_t *x, const struct seg *at)
{
	char bound[40];
	if (s->minimum && cmp_number(x, s->minimum) < 0) {
		put_number(bound, sizeof bound, s->minimum);
		return v_fail(v, at, "minimum", "less than %s", bound);
	}
	if (s->maximum && cmp_number(x, s->maximum) > 0) {
		put_number(bound, sizeof bound, s->maximum);
		return v_fail(v, at, "maximum", "greater than %s", bound);
	}
	return true;
}

static bool v_keywords(struct vctx *v, const struct node *s, const json_t *x, const struct seg *at)
{
	if (s->ref != NONE) /* its siblings are annotations (compile saw to it) */
		return v_node(v, s->ref, x, at);
	if (!v_type(v, s, x, at))
		return false;
	bool ok = true;
	if (json_is_object(x))
		ok = v_object(v, s, x, at);
	else if (json_is_array(x))
		ok = v_array(v, s, x, at);
	else if (json_is_string(x))
		ok = v_string(v, s, x, at);
	else if (json_is_number(x))
		ok = v_number(v, s, x, at);
	if (!ok)
		return false;
	if (s->enum_values) {
		size_t k = json_array_size(s->enum_values);
		for (size_t i = 0; i < k; i++) {
			if (v_equal(v, x, json_array_get(s->enum_values, i), at))
				break;
			if (v->gave_up || i + 1 == k)
				return v_fail(v, at, "enum", "not one of the %zu values", k);
		}
		if (k == 0)
			return v_fail(v, at, "enum", "no value is allowed (an empty enum)");
	}
	if (s->const_value && !v_equal(v, x, s->const_value, at))
		return v_fail(v, at, "const", "not the value required");
	if (s->n_any > 0) {
		bool matched = false;
		v->quiet++;
		for (uint32_t i = 0; i < s->n_any && !matched && !v->gave_up; i++)
			matched = v_node(v, v->js->any[s->any + i], x, at);
		v->quiet--;
		if (!matched)
			return v_fail(v, at, "anyOf", "matches none of the %u schemas", s->n_any);
	}
	return true;
}

static bool v_node(struct vctx *v, uint32_t n, const json_t *x, const struct seg *at)
{
	const struct node *s = &v->js->nodes[n];
	if (!v_step(v, at))
		return false;
	if (s->kind == NODE_TRUE)
		return true;
	if (s->kind == NODE_FALSE)
		return v_fail(v, at, NULL, "nothing is allowed here (the schema is false)");
	if (v->nesting >= JSONSCHEMA_MAX_NESTING)
		return v_give_up(v, at, "gave up at a nesting deeper than %d",
		                 JSONSCHEMA_MAX_NESTING);
	v->nesting++;
	bool ok = v_keywords(v, s, x, at);
	v->nesting--;
	return ok;
}

int jsonschema_validate(const struct jsonschema *js, const json_t *instance, char *errstr,
                        size_t errstr_size)
{
	struct vctx v = {.js = js,
	                 .errstr = errstr,
	                 .errstr_size = errstr_size,
	                 .pattern_steps = JSONSCHEMA_MAX_PATTERN_STEPS};
	if (!js || !instance) {
		snprintf(errstr, errstr_size, "no %s", js ? "instance" : "schema");
		return -1;
	}
	return v_node(&v, 0, instance, NULL) ? 0 : -1;
}
