/* job_tools: a job's tools, tool_choice and response_format (SPEC §2,
 * §13), whose JSON Schema is compiled for validating the answer. Part of
 * the job decoder (job_int.h). */
#include "job.h"

#include "job_int.h"
#include "jsonschema.h"

#include <string.h>

bool job_tool_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

size_t job_json_bytes(const json_t *v)
{
	return json_dumpb(v, NULL, 0, JSON_COMPACT);
}

/* Other keys inside response_format are ignored, like unknown fields.
 * json_schema takes OpenAI's shape (SPEC §13); its schema is checked for
 * the keywords the worker can validate (jsonschema_check). */
int job_dec_response_format(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "response_format");
	const char *type;

	if (!v)
		return 0;
	if (!json_is_object(v)) {
		job_fail(d->err, d->err_size,
		         "response_format: must be an object {\"type\": \"text\"}, {\"type\": "
		         "\"json_object\"} or {\"type\": \"json_schema\", \"json_schema\": {...}}");
		return -1;
	}
	type = json_string_value(json_object_get(v, "type")); /* NULL if not a string */
	if (type && strcmp(type, "json_object") == 0) {
		d->job->format = FORMAT_JSON_OBJECT;
		d->job->json_response = true;
		d->job->caps |= CAP_JSON;
		return 0;
	}
	if (!type || (strcmp(type, "text") != 0 && strcmp(type, "json_schema") != 0)) {
		job_fail(d->err, d->err_size,
		         "response_format.type: must be \"text\", \"json_object\" or "
		         "\"json_schema\"");
		return -1;
	}
	if (strcmp(type, "text") == 0)
		return 0;
	json_t *js = json_object_get(v, "json_schema");
	json_t *name = json_object_get(js, "name");
	json_t *schema = json_object_get(js, "schema");
	json_t *strict = json_object_get(js, "strict");
	if (!json_is_object(js)) {
		job_fail(d->err, d->err_size,
		         "response_format.json_schema: must be an object {\"name\", \"schema\", "
		         "\"strict\"}");
		return -1;
	}
	if (name && (!json_is_string(name) || !job_tool_name_ok(json_string_value(name)))) {
		job_fail(d->err, d->err_size,
		         "response_format.json_schema.name: must be 1 to 64 letters, digits, _ or "
		         "-");
		return -1;
	}
	if (strict && !json_is_boolean(strict)) {
		job_fail(d->err, d->err_size,
		         "response_format.json_schema.strict: must be true or false");
		return -1;
	}
	if (!json_is_object(schema)) {
		job_fail(d->err, d->err_size,
		         "response_format.json_schema.schema: must be an object");
		return -1;
	}
	char why[256];
	d->job->validator = jsonschema_compile(schema, why, sizeof why);
	if (!d->job->validator) {
		job_fail(d->err, d->err_size, "response_format.json_schema.schema: %s", why);
		return -1;
	}
	d->job->format = FORMAT_JSON_SCHEMA;
	d->job->json_response = true;
	d->job->schema = schema;
	d->job->schema_name = name ? json_string_value(name) : "response";
	d->job->schema_strict = json_is_true(strict);
	d->job->extra_bytes += job_json_bytes(schema);
	d->job->caps |= CAP_JSON_SCHEMA;
	return 0;
}

/* tools: OpenAI's shape, [{"type":"function","function":{"name","description","parameters"}}]. */
int job_dec_tools(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "tools");

	if (!v)
		return 0;
	if (!json_is_array(v) || json_array_size(v) == 0) {
		job_fail(d->err, d->err_size,
		         "tools: must be a non-empty array of {\"type\": \"function\", "
		         "\"function\": "
		         "{...}}");
		return -1;
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *t = json_array_get(v, i);
		json_t *f = json_object_get(t, "function");
		const char *type = json_string_value(json_object_get(t, "type"));
		json_t *name = json_object_get(f, "name");
		json_t *desc = json_object_get(f, "description");
		json_t *params = json_object_get(f, "parameters");
		if (!json_is_object(t) || !type || strcmp(type, "function") != 0 ||
		    !json_is_object(f)) {
			job_fail(d->err, d->err_size,
			         "tools[%zu]: must be {\"type\": \"function\", \"function\": "
			         "{\"name\", "
			         "\"description\", \"parameters\"}}",
			         i);
			return -1;
		}
		if (!json_is_string(name) || !job_tool_name_ok(json_string_value(name))) {
			job_fail(
			        d->err, d->err_size,
			        "tools[%zu].function.name: must be 1 to 64 letters, digits, _ or -",
			        i);
			return -1;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(json_string_value(json_object_get(
			                   json_object_get(json_array_get(v, k), "function"),
			                   "name")),
			           json_string_value(name)) == 0) {
				job_fail(d->err, d->err_size,
				         "tools[%zu].function.name: \"%s\" is already tools[%zu]'s",
				         i, json_string_value(name), k);
				return -1;
			}
		if (desc && !json_is_string(desc)) {
			job_fail(d->err, d->err_size,
			         "tools[%zu].function.description: must be a string", i);
			return -1;
		}
		if (params && !json_is_object(params)) {
			job_fail(
			        d->err, d->err_size,
			        "tools[%zu].function.parameters: must be an object (a JSON Schema)",
			        i);
			return -1;
		}
	}
	d->job->tools = v;
	d->job->extra_bytes += job_json_bytes(v);
	d->job->caps |= CAP_TOOLS;
	return 0;
}

/* tool_choice: "auto", "none", "required" or {"type":"function","function":{"name":N}}. */
int job_dec_tool_choice(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "tool_choice");
	static const char *const names[] = {"auto", "none", "required"};

	if (!v)
		return 0;
	if (!d->job->tools) {
		job_fail(d->err, d->err_size, "tool_choice: needs tools");
		return -1;
	}
	if (json_is_string(v)) {
		for (int i = 0; i < 3; i++) {
			if (strcmp(json_string_value(v), names[i]) == 0) {
				d->job->tool_choice = (enum tool_choice)(TOOL_CHOICE_AUTO + i);
				return 0;
			}
		}
	} else if (json_is_object(v)) {
		const char *type = json_string_value(json_object_get(v, "type"));
		const char *name =
		        json_string_value(json_object_get(json_object_get(v, "function"), "name"));
		for (size_t i = 0; type && name && strcmp(type, "function") == 0 &&
		                   i < json_array_size(d->job->tools);
		     i++) {
			json_t *f = json_object_get(json_array_get(d->job->tools, i), "function");
			if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0) {
				d->job->tool_choice = TOOL_CHOICE_FUNCTION;
				d->job->tool_choice_name = name;
				return 0;
			}
		}
		job_fail(d->err, d->err_size,
		         "tool_choice.function.name: must name one of the job's tools");
		return -1;
	}
	job_fail(
	        d->err, d->err_size,
	        "tool_choice: must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", "
	        "\"function\": {\"name\": ...}}");
	return -1;
}
