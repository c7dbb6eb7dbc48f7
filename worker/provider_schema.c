/* provider_schema: a job's JSON Schema in the dialect a wire format takes
 * (provider_buf_schema): the keywords each provider keeps, walked through
 * subschemas, the rest left out. Shared by the wire formats, as
 * provider.c is. */
#include "provider.h"

#include <stdbool.h>
#include <string.h>

/* Where a keyword's value holds subschemas. */
enum schema_slot {
	SLOT_VALUE,  /* a plain value, copied */
	SLOT_SCHEMA, /* one subschema (a boolean is a schema too) */
	SLOT_ARRAY,  /* an array of subschemas */
	SLOT_MAP,    /* an object of named subschemas */
	SLOT_DROP,   /* left out */
};

struct schema_keyword {
	const char *name;
	enum schema_slot slot;
};

/* The keywords each dialect keeps, and how to walk them. */
static const struct schema_keyword anthropic_keywords[] = {
        {"type", SLOT_VALUE},     {"properties", SLOT_MAP},
        {"required", SLOT_VALUE}, {"additionalProperties", SLOT_DROP}, /* set to false */
        {"items", SLOT_SCHEMA},   {"enum", SLOT_VALUE},
        {"const", SLOT_VALUE},    {"anyOf", SLOT_ARRAY},
        {"allOf", SLOT_ARRAY},    {"$ref", SLOT_VALUE},
        {"$defs", SLOT_MAP},      {"definitions", SLOT_MAP},
        {"title", SLOT_VALUE},    {"description", SLOT_VALUE},
        {"default", SLOT_VALUE},  {"minItems", SLOT_VALUE}, /* 0 or 1 only */
        {NULL, SLOT_DROP},
};
static const struct schema_keyword gemini_keywords[] = {
        {"$id", SLOT_VALUE},
        {"$defs", SLOT_MAP},
        {"$ref", SLOT_VALUE},
        {"$anchor", SLOT_VALUE},
        {"type", SLOT_VALUE},
        {"format", SLOT_VALUE},
        {"title", SLOT_VALUE},
        {"description", SLOT_VALUE},
        {"enum", SLOT_VALUE},
        {"items", SLOT_SCHEMA},
        {"prefixItems", SLOT_ARRAY},
        {"minItems", SLOT_VALUE},
        {"maxItems", SLOT_VALUE},
        {"minimum", SLOT_VALUE},
        {"maximum", SLOT_VALUE},
        {"anyOf", SLOT_ARRAY},
        {"oneOf", SLOT_ARRAY},
        {"properties", SLOT_MAP},
        {"additionalProperties", SLOT_SCHEMA},
        {"required", SLOT_VALUE},
        {"propertyOrdering", SLOT_VALUE},
        {"definitions", SLOT_MAP}, /* renamed $defs */
        {"const", SLOT_VALUE},     /* becomes enum */
        {NULL, SLOT_DROP},
};

static const struct schema_keyword *schema_keyword(const char *name, enum provider_schema_dialect d)
{
	const struct schema_keyword *k =
	        d == SCHEMA_ANTHROPIC ? anthropic_keywords : gemini_keywords;
	for (; k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return k;
}

static bool is_string_or_number(const json_t *v)
{
	return json_is_string(v) || json_is_number(v);
}

/* Does this schema describe objects? */
static bool schema_is_object(const json_t *s)
{
	const json_t *type = json_object_get(s, "type");
	if (json_object_get(s, "properties") ||
	    (json_is_string(type) && strcmp(json_string_value(type), "object") == 0))
		return true;
	for (size_t i = 0; i < json_array_size(type); i++) {
		const char *t = json_string_value(json_array_get(type, i));
		if (t && strcmp(t, "object") == 0)
			return true;
	}
	return false;
}

static json_t *schema_adjust(const json_t *s, enum provider_schema_dialect d);

/* The value of one kept keyword, walked into (new reference). */
static json_t *schema_slot(const json_t *v, enum schema_slot slot, enum provider_schema_dialect d)
{
	json_t *out;
	const char *key;
	json_t *sub;
	size_t i;
	switch (slot) {
	case SLOT_SCHEMA: return schema_adjust(v, d);
	case SLOT_ARRAY:
		if (!json_is_array(v))
			return json_deep_copy(v);
		out = json_array();
		json_array_foreach (v, i, sub)
			json_array_append_new(out, schema_adjust(sub, d));
		return out;
	case SLOT_MAP:
		if (!json_is_object(v))
			return json_deep_copy(v);
		out = json_object();
		json_object_foreach ((json_t *)v, key, sub)
			json_object_set_new(out, key, schema_adjust(sub, d));
		return out;
	case SLOT_VALUE:
	case SLOT_DROP: break;
	}
	return json_deep_copy(v);
}

/* The Gemini spelling of a reference into definitions (new reference). */
static json_t *gemini_ref(const json_t *ref)
{
	static const char old[] = "#/definitions/";
	const char *r = json_string_value(ref);
	if (!r || strncmp(r, old, sizeof old - 1) != 0)
		return json_deep_copy(ref);
	struct buf b = {0};
	buf_printf(&b, "#/$defs/%s", r + sizeof old - 1);
	json_t *out = json_string(b.data);
	buf_free(&b);
	return out ? out : json_deep_copy(ref);
}

/* A copy of schema s in dialect d (new reference). */
static json_t *schema_adjust(const json_t *s, enum provider_schema_dialect d)
{
	if (!json_is_object(s))
		return json_deep_copy(s); /* true, false */
	json_t *out = json_object();
	bool has_ref = json_object_get(s, "$ref") != NULL;
	const char *key;
	json_t *v;
	/* key drives the iteration: the name written is another variable. */
	json_object_foreach ((json_t *)s, key, v) {
		const struct schema_keyword *k = schema_keyword(key, d);
		const char *name = key;
		if (k->slot == SLOT_DROP)
			continue;
		if (d == SCHEMA_ANTHROPIC && strcmp(key, "minItems") == 0 &&
		    !(json_is_integer(v) && json_integer_value(v) <= 1))
			continue;
		if (d == SCHEMA_GEMINI) {
			if (strcmp(key, "definitions") == 0)
				name = "$defs";
			if (has_ref && name[0] != '$')
				continue; /* Google: $ref takes no siblings but $ ones */
			if (strcmp(key, "$ref") == 0) {
				json_object_set_new(out, name, gemini_ref(v));
				continue;
			}
			if (strcmp(key, "const") == 0) {
				if (is_string_or_number(v))
					json_object_set_new(out, "enum", json_pack("[O]", v));
				continue;
			}
			if (strcmp(key, "enum") == 0) {
				bool ok = json_is_array(v);
				for (size_t i = 0; ok && i < json_array_size(v); i++)
					ok = is_string_or_number(json_array_get(v, i));
				if (!ok)
					continue;
			}
		}
		json_object_set_new(out, name, schema_slot(v, k->slot, d));
	}
	if (d == SCHEMA_ANTHROPIC && schema_is_object(s))
		json_object_set_new(out, "additionalProperties", json_false());
	return out;
}

void provider_buf_schema(struct buf *b, const json_t *schema, enum provider_schema_dialect d)
{
	json_t *out = schema_adjust(schema, d);
	provider_buf_json(b, out);
	json_decref(out);
}
