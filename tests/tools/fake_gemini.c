/* fake_gemini: Gemini generateContent for bin/fake_provider: the request
 * read and checked as the API checks it, and the answer in its shape.
 *
 * What is checked: roles; each part holds exactly one kind of data;
 * inlineData with a known mimeType and base64 data (an image that is an
 * image, a PDF that is a PDF); fileData with a fileUri; functionCall and
 * functionResponse with names, a call turn right after a user turn, a
 * response turn right after a call turn with as many responses as calls;
 * functionDeclarations (names, parameters in the OpenAPI subset, not with
 * parametersJsonSchema too); toolConfig (mode, allowedFunctionNames only
 * with ANY and declared); responseSchema (OpenAPI subset) or
 * responseJsonSchema, not both, with responseMimeType application/json;
 * thinkingConfig (budget -1 or 0..32768, not with thinkingLevel). */
#include "fake.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ request */

/* A member by its camelCase or its snake_case name (Google takes both). */
static json_t *gget(json_t *obj, const char *camel, const char *snake)
{
	json_t *v = json_object_get(obj, camel);

	return v != NULL ? v : json_object_get(obj, snake);
}

static const char *const ge_mime_types[] = {
        "image/png",  "image/jpeg",      "image/webp",    "image/heic",       "image/heif",
        "image/gif",  "application/pdf", "text/plain",    "text/html",        "text/css",
        "text/csv",   "text/xml",        "text/markdown", "application/json", "audio/wav",
        "audio/mp3",  "audio/mpeg",      "audio/aiff",    "audio/aac",        "audio/ogg",
        "audio/flac", "video/mp4",       "video/mpeg",    "video/webm",
};

static bool ge_mime_ok(const char *t)
{
	for (size_t i = 0; t != NULL && i < sizeof(ge_mime_types) / sizeof(ge_mime_types[0]); i++) {
		if (strcmp(t, ge_mime_types[i]) == 0)
			return true;
	}
	return false;
}

static void ge_inline_data(struct call *c, json_t *d, size_t i, size_t k)
{
	const char *mime = json_string_value(gget(d, "mimeType", "mime_type"));
	json_t *data = json_object_get(d, "data");
	const char *sniffed;
	unsigned char *bytes;
	size_t n;

	if (mime == NULL || !json_is_string(data)) {
		fake_fail(c, NULL, NULL,
		          "* GenerateContentRequest.contents[%zu].parts[%zu].inline_data.%s: %s "
		          "must be specified\n",
		          i, k, mime == NULL ? "mime_type" : "data",
		          mime == NULL ? "mime_type" : "data");
		return;
	}
	if (!ge_mime_ok(mime)) {
		fake_fail(c, NULL, NULL, "Unsupported MIME type: %.64s", mime);
		return;
	}
	bytes = fake_base64_decode(json_string_value(data), json_string_length(data), true, &n);
	if (bytes == NULL) {
		fake_fail(c, NULL, NULL,
		          "Invalid value at 'contents[%zu].parts[%zu].inline_data.data' "
		          "(TYPE_BYTES), Base64 decoding failed for \"%.20s\"",
		          i, k, json_string_value(data));
		return;
	}
	sniffed = fake_media_sniff(bytes, n);
	if (strncmp(mime, "image/", 6) == 0 && strcmp(mime, "image/heic") != 0 &&
	    strcmp(mime, "image/heif") != 0 &&
	    (sniffed == NULL || strncmp(sniffed, "image/", 6) != 0))
		fake_fail(c, NULL, NULL,
		          "Unable to process input image. Please retry or report in "
		          "https://developers.generativeai.google/guide/troubleshooting");
	else if (strcmp(mime, "application/pdf") == 0 &&
	         (sniffed == NULL || strcmp(sniffed, "application/pdf") != 0))
		fake_fail(c, NULL, NULL, "Request contains an invalid argument.");
	else
		fake_count_media(c, mime, bytes, n);
	free(bytes);
}

/* One part; *calls and *responses count its function calls and responses. */
static void ge_part(struct call *c, json_t *p, bool model, size_t i, size_t k, size_t *calls,
                    size_t *responses)
{
	static const char *const kinds[][2] = {
	        {"text", "text"},
	        {"inlineData", "inline_data"},
	        {"fileData", "file_data"},
	        {"functionCall", "function_call"},
	        {"functionResponse", "function_response"},
	        {"executableCode", "executable_code"},
	        {"codeExecutionResult", "code_execution_result"},
	};
	const char *kind = NULL;
	json_t *v = NULL, *name;

	if (!json_is_object(p)) {
		fake_fail(c, NULL, NULL,
		          "Invalid JSON payload received. Invalid value at "
		          "'contents[%zu].parts[%zu]'",
		          i, k);
		return;
	}
	for (size_t n = 0; n < sizeof(kinds) / sizeof(kinds[0]); n++) {
		json_t *x = gget(p, kinds[n][0], kinds[n][1]);

		if (x == NULL)
			continue;
		if (kind != NULL) {
			fake_fail(c, NULL, NULL,
			          "Invalid JSON payload received. Invalid value at "
			          "'contents[%zu].parts[%zu]': oneof field 'data' is already set. "
			          "Cannot set '%s'",
			          i, k, kinds[n][0]);
			return;
		}
		kind = kinds[n][0];
		v = x;
	}
	if (kind == NULL) {
		fake_fail(c, NULL, NULL,
		          "* GenerateContentRequest.contents[%zu].parts[%zu].data: required oneof "
		          "field 'data' must have one initialized field\n",
		          i, k);
		return;
	}
	if (strcmp(kind, "text") == 0) {
		if (!json_is_string(v))
			fake_fail(c, NULL, NULL,
			          "Invalid value at 'contents[%zu].parts[%zu].text' (TYPE_STRING)",
			          i, k);
		else
			fake_text(c, json_string_value(v));
	} else if (strcmp(kind, "inlineData") == 0) {
		ge_inline_data(c, v, i, k);
	} else if (strcmp(kind, "fileData") == 0) {
		const char *mime = json_string_value(gget(v, "mimeType", "mime_type"));

		if (!json_is_string(gget(v, "fileUri", "file_uri")))
			fake_fail(c, NULL, NULL,
			          "* "
			          "GenerateContentRequest.contents[%zu].parts[%zu].file_data.file_"
			          "uri: "
			          "file_uri must be specified\n",
			          i, k);
		else if (mime != NULL && strncmp(mime, "image/", 6) == 0)
			c->images++;
	} else if (strcmp(kind, "functionCall") == 0 || strcmp(kind, "functionResponse") == 0) {
		bool call = strcmp(kind, "functionCall") == 0;
		const char *snake = call ? "function_call" : "function_response";

		name = json_object_get(v, "name");
		if (!json_is_string(name) || json_string_length(name) == 0) {
			fake_fail(c, NULL, NULL,
			          "* GenerateContentRequest.contents[%zu].parts[%zu].%s.name: "
			          "Name cannot be empty.\n",
			          i, k, snake);
			return;
		}
		if (call != model) {
			fake_fail(c, NULL, NULL, "Please use a valid role for a %s: %s.", kind,
			          call ? "model" : "user");
			return;
		}
		if (call) {
			(*calls)++;
		} else {
			json_t *resp = json_object_get(v, "response");

			if (!json_is_object(resp)) {
				fake_fail(c, NULL, NULL,
				          "* "
				          "GenerateContentRequest.contents[%zu].parts[%zu].%s."
				          "response: "
				          "response must be a JSON object\n",
				          i, k, snake);
				return;
			}
			(*responses)++;
			if (json_is_string(json_object_get(resp, "content")))
				fake_text(c, json_string_value(json_object_get(resp, "content")));
		}
	}
}

static void ge_contents(struct call *c, json_t *contents)
{
	size_t prev_calls = 0, i;
	bool prev_model = false;
	json_t *m;

	json_array_foreach (contents, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *parts = json_object_get(m, "parts"), *p;
		size_t calls = 0, responses = 0, k;
		bool model = role != NULL && strcmp(role, "model") == 0;

		if (role != NULL && strcmp(role, "user") != 0 && !model &&
		    strcmp(role, "function") != 0) {
			fake_fail(c, NULL, NULL, "Please use a valid role: user, model.");
			return;
		}
		if (!json_is_object(m) || !json_is_array(parts) || json_array_size(parts) == 0) {
			fake_fail(c, NULL, NULL,
			          "* GenerateContentRequest.contents[%zu].parts: contents.parts "
			          "must not be empty.\n",
			          i);
			return;
		}
		json_array_foreach (parts, k, p) {
			ge_part(c, p, model, i, k, &calls, &responses);
			if (c->invalid != NULL)
				return;
		}
		if (calls > 0 && (i == 0 || prev_model)) {
			fake_fail(c, NULL, NULL,
			          "Please ensure that function call turn comes immediately after "
			          "a user turn or after a function response turn.");
			return;
		}
		if (responses > 0 && prev_calls == 0) {
			fake_fail(c, NULL, NULL,
			          "Please ensure that function response turn comes immediately "
			          "after a function call turn.");
			return;
		}
		if (prev_calls > 0 && responses != prev_calls) {
			fake_fail(c, NULL, NULL,
			          "Please ensure that the number of function response parts is "
			          "equal to the number of function call parts of the function "
			          "call turn.");
			return;
		}
		c->after_tool_result = responses > 0;
		prev_calls = calls;
		prev_model = model;
		c->messages++;
	}
}

/* The function declaration named name (NULL: the first), or NULL. */
static json_t *ge_function(json_t *tools, const char *name)
{
	json_t *t, *d;
	size_t k, j;

	json_array_foreach (tools, k, t) {
		json_array_foreach (gget(t, "functionDeclarations", "function_declarations"), j,
		                    d) {
			const char *n = json_string_value(json_object_get(d, "name"));

			if (n != NULL && (name == NULL || strcmp(n, name) == 0))
				return d;
		}
	}
	return NULL;
}

static bool ge_name_ok(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	return n >= 1 && n <= 64 && (isalpha((unsigned char)s[0]) || s[0] == '_') &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-") == n;
}

static void ge_tools(struct call *c, json_t *tools)
{
	char where[128];
	json_t *t, *d;
	size_t k, j;

	if (tools != NULL && !json_is_array(tools)) {
		fake_fail(c, NULL, NULL, "Invalid JSON payload received. Invalid value at 'tools'");
		return;
	}
	json_array_foreach (tools, k, t) {
		json_array_foreach (gget(t, "functionDeclarations", "function_declarations"), j,
		                    d) {
			json_t *params = json_object_get(d, "parameters");
			json_t *js = gget(d, "parametersJsonSchema", "parameters_json_schema");

			if (!ge_name_ok(json_string_value(json_object_get(d, "name")))) {
				fake_fail(c, NULL, NULL,
				          "* "
				          "GenerateContentRequest.tools[%zu].function_declarations["
				          "%zu].name: "
				          "Invalid function name. Must start with a letter or an "
				          "underscore. Must be alphameric (a-z, A-Z, 0-9), "
				          "underscores (_), dots (.), colons (:), or dashes (-), "
				          "with a maximum length of 64.\n",
				          k, j);
				return;
			}
			if (params != NULL && js != NULL) {
				fake_fail(c, NULL, NULL,
				          "* "
				          "GenerateContentRequest.tools[%zu].function_declarations["
				          "%zu]: "
				          "parameters and parameters_json_schema cannot both be "
				          "set.\n",
				          k, j);
				return;
			}
			snprintf(where, sizeof(where),
			         "tools[%zu].function_declarations[%zu].parameters", k, j);
			if (params != NULL &&
			    !fake_schema_ok(c, params, RULES_OPENAPI, where, NULL, NULL))
				return;
		}
	}
}

static void ge_tool_config(struct call *c, json_t *tools)
{
	static const char *const modes[] = {"AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"};
	json_t *fcc = gget(gget(c->body, "toolConfig", "tool_config"), "functionCallingConfig",
	                   "function_calling_config");
	json_t *mode = json_object_get(fcc, "mode");
	json_t *allowed = gget(fcc, "allowedFunctionNames", "allowed_function_names"), *a, *d;
	bool known = mode == NULL, forced;
	size_t k;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		known = known || fake_is(mode, modes[i]);
	if (!known) {
		fake_fail(c, NULL, NULL,
		          "Invalid value at 'tool_config.function_calling_config.mode' "
		          "(type.googleapis.com/"
		          "google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), "
		          "\"%.40s\"",
		          json_string_value(mode) ? json_string_value(mode) : "?");
		return;
	}
	forced = fake_is(mode, "ANY");
	if (json_array_size(allowed) > 0 && !forced && !fake_is(mode, "VALIDATED")) {
		fake_fail(c, NULL, NULL,
		          "* "
		          "GenerateContentRequest.tool_config.function_calling_config.allowed_"
		          "function_names: "
		          "allowed_function_names may only be set when mode is ANY or "
		          "VALIDATED.\n");
		return;
	}
	json_array_foreach (allowed, k, a) {
		if (ge_function(tools, json_string_value(a)) == NULL) {
			fake_fail(c, NULL, NULL,
			          "* "
			          "GenerateContentRequest.tool_config.function_calling_config."
			          "allowed_function_names[%zu]: "
			          "function '%.64s' is not declared in tools.\n",
			          k, json_string_value(a) ? json_string_value(a) : "");
			return;
		}
	}
	if (fake_is(mode, "NONE"))
		return;
	d = ge_function(tools, json_string_value(json_array_get(allowed, 0)));
	if (d != NULL && (forced || !c->after_tool_result)) {
		json_t *js = gget(d, "parametersJsonSchema", "parameters_json_schema");

		c->tool = json_string_value(json_object_get(d, "name"));
		c->tool_params = js != NULL ? js : json_object_get(d, "parameters");
	}
}

static void ge_generation_config(struct call *c)
{
	json_t *gen = gget(c->body, "generationConfig", "generation_config");
	json_t *mt = gget(gen, "maxOutputTokens", "max_output_tokens");
	json_t *mime = gget(gen, "responseMimeType", "response_mime_type");
	json_t *schema = gget(gen, "responseSchema", "response_schema");
	json_t *js = gget(gen, "responseJsonSchema", "response_json_schema");
	json_t *tc = gget(gen, "thinkingConfig", "thinking_config");
	json_t *budget = gget(tc, "thinkingBudget", "thinking_budget");
	json_t *level = gget(tc, "thinkingLevel", "thinking_level");

	if (mt != NULL && (!json_is_integer(mt) || json_integer_value(mt) < 1)) {
		fake_fail(c, NULL, NULL, "Invalid value at 'generation_config.max_output_tokens'");
		return;
	}
	c->max_tokens = fake_int_or(mt, -1);
	if (schema != NULL && js != NULL) {
		fake_fail(c, NULL, NULL,
		          "* GenerateContentRequest.generation_config.response_json_schema: "
		          "response_json_schema and response_schema cannot both be set.\n");
		return;
	}
	if ((schema != NULL || js != NULL) && !fake_is(mime, "application/json") &&
	    !(schema != NULL && fake_is(mime, "text/x.enum"))) {
		fake_fail(c, NULL, NULL,
		          "* GenerateContentRequest.generation_config.response_mime_type: "
		          "response_mime_type must be application/json (or text/x.enum) when a "
		          "response schema is set.\n");
		return;
	}
	if (schema != NULL && !fake_schema_ok(c, schema, RULES_OPENAPI,
	                                      "generation_config.response_schema", NULL, NULL))
		return;
	c->schema = js != NULL ? js : schema;
	c->json_mode = c->schema == NULL && fake_is(mime, "application/json");
	if (budget != NULL && level != NULL) {
		fake_fail(c, NULL, NULL,
		          "You can only set only one of thinking budget and thinking level.");
		return;
	}
	if (budget != NULL && (!json_is_integer(budget) || json_integer_value(budget) < -1 ||
	                       json_integer_value(budget) > 32768)) {
		fake_fail(c, NULL, NULL,
		          "The thinking budget %" PRId64
		          " is invalid. Please choose a value between 0 and 32768, or -1 for a "
		          "dynamic budget.",
		          (int64_t)fake_int_or(budget, 0));
		return;
	}
	if (level != NULL || (budget != NULL && json_integer_value(budget) != 0)) {
		c->thinking = true;
		c->thinking_cap = budget != NULL && json_integer_value(budget) > 0
		                          ? json_integer_value(budget)
		                          : -1;
	}
}

void fake_gemini_parse(struct call *c)
{
	json_t *contents = json_object_get(c->body, "contents");
	json_t *sys = gget(c->body, "systemInstruction", "system_instruction");
	json_t *tools = json_object_get(c->body, "tools"), *p;
	size_t i;

	if (sys != NULL) {
		if (!json_is_object(sys) || !json_is_array(json_object_get(sys, "parts"))) {
			fake_fail(c, NULL, NULL,
			          "Invalid JSON payload received. Invalid value at "
			          "'system_instruction'");
			return;
		}
		json_array_foreach (json_object_get(sys, "parts"), i, p) {
			if (!json_is_string(json_object_get(p, "text"))) {
				fake_fail(c, NULL, NULL,
				          "Invalid JSON payload received. Invalid value at "
				          "'system_instruction.parts[%zu]'",
				          i);
				return;
			}
			fake_text(c, json_string_value(json_object_get(p, "text")));
		}
		c->messages++;
	}
	if (!json_is_array(contents) || json_array_size(contents) == 0) {
		fake_fail(c, NULL, NULL,
		          "* GenerateContentRequest.contents: contents is not specified");
		return;
	}
	ge_contents(c, contents);
	ge_tools(c, tools);
	ge_tool_config(c, tools);
	ge_generation_config(c);
}

/* ------------------------------------------------------------- answer */

json_t *fake_gemini_answer(const struct call *c, const struct answer *a)
{
	json_t *parts = json_array(), *cand, *usage;
	char id[64];

	if (a->reasoning > 0)
		json_array_append_new(
		        parts, json_pack("{s:s, s:b}", "text", FAKE_THINKING_TEXT, "thought", 1));
	if (a->kind == ANSWER_TOOL_CALL)
		json_array_append_new(parts, json_pack("{s:{s:s, s:O}}", "functionCall", "name",
		                                       c->tool, "args", a->args));
	else if (a->kind != ANSWER_REFUSAL)
		json_array_append_new(parts, json_pack("{s:s}", "text", a->text));
	if (a->kind == ANSWER_REFUSAL) {
		/* Gemini has no refusal: a candidate blocked for safety, no content */
		json_decref(parts);
		cand = json_pack("{s:s, s:i, s:[{s:s, s:s, s:b}]}", "finishReason", "SAFETY",
		                 "index", 0, "safetyRatings", "category",
		                 "HARM_CATEGORY_DANGEROUS_CONTENT", "probability", "HIGH",
		                 "blocked", 1);
	} else {
		cand = json_pack("{s:{s:o, s:s}, s:s, s:i}", "content", "parts", parts, "role",
		                 "model", "finishReason", a->truncated ? "MAX_TOKENS" : "STOP",
		                 "index", 0);
	}
	usage = json_pack("{s:I, s:I, s:I, s:I}", "promptTokenCount", (json_int_t)a->in,
	                  "candidatesTokenCount", (json_int_t)(a->out - a->reasoning),
	                  "totalTokenCount", (json_int_t)(a->in + a->out),
	                  "cachedContentTokenCount", (json_int_t)a->cached);
	if (usage != NULL && a->reasoning > 0)
		json_object_set_new(usage, "thoughtsTokenCount", json_integer(a->reasoning));
	snprintf(id, sizeof(id), "fake%016" PRIx64, a->seq);
	return json_pack("{s:[o], s:o, s:s, s:s}", "candidates", cand, "usageMetadata", usage,
	                 "modelVersion", c->model, "responseId", id);
}
