/* fake_openai: OpenAI Chat Completions for bin/fake_provider: the request
 * read and checked as the API checks it, and the answer in its shape.
 *
 * What is checked: roles; content parts by role (text, image_url with an
 * https URL or a data: URL of a PNG, JPEG, GIF or WebP in valid base64,
 * input_audio, file with file_data holding a PDF and a filename, or
 * file_id); assistant tool_calls (arguments a string) answered by a tool
 * message for each id before anything else; tools (names, parameters an
 * object, strict schemas closed with every property required); tool_choice
 * (only with tools, naming one of them); response_format (json_object needs
 * the word "json" in a message; json_schema needs a name, and a strict
 * schema follows strict mode); reasoning_effort (a known level; then no
 * max_tokens, no temperature or top_p other than 1). */
#include "fake.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ request */

static void oa_image_url(struct call *c, json_t *part, const char *at)
{
	json_t *iu = json_object_get(part, "image_url");
	json_t *url = json_is_object(iu) ? json_object_get(iu, "url") : NULL;
	json_t *detail = json_object_get(iu, "detail");
	char param[160], type[64];
	const char *data, *sniffed, *u;
	unsigned char *bytes;
	size_t n;

	snprintf(param, sizeof(param), "%s.image_url.url", at);
	if (!json_is_string(url)) {
		fake_fail(c, param, "missing_required_parameter",
		          "Missing required parameter: '%s'.", param);
		return;
	}
	if (detail != NULL && !fake_is(detail, "auto") && !fake_is(detail, "low") &&
	    !fake_is(detail, "high")) {
		snprintf(param, sizeof(param), "%s.image_url.detail", at);
		fake_fail(
		        c, param, "invalid_value",
		        "Invalid value: '%.40s'. Supported values are: 'auto', 'low', and 'high'.",
		        json_string_value(detail) ? json_string_value(detail) : "?");
		return;
	}
	u = json_string_value(url);
	c->images++;
	if (fake_web_url(u))
		return;
	if (!fake_data_url(u, type, sizeof(type), &data)) {
		fake_fail(c, param, "invalid_value",
		          "Invalid '%s'. Expected a valid URL, but got a value with an invalid "
		          "format.",
		          param);
		return;
	}
	if (strcmp(type, "image/png") != 0 && strcmp(type, "image/jpeg") != 0 &&
	    strcmp(type, "image/gif") != 0 && strcmp(type, "image/webp") != 0) {
		fake_fail(c, param, "invalid_image_format",
		          "You uploaded an unsupported image. Please make sure your image has of "
		          "one the following formats: ['png', 'jpeg', 'gif', 'webp'].");
		return;
	}
	bytes = fake_base64_decode(data, strlen(data), false, &n);
	sniffed = bytes != NULL ? fake_media_sniff(bytes, n) : NULL;
	if (bytes == NULL)
		fake_fail(
		        c, param, "invalid_value",
		        "Invalid '%s'. Expected a base64-encoded data URL with an image MIME type "
		        "(e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got an invalid "
		        "value.",
		        param);
	else if (sniffed == NULL || strncmp(sniffed, "image/", 6) != 0)
		fake_fail(c, param, "invalid_image_format",
		          "You uploaded an unsupported image. Please make sure your image has of "
		          "one the following formats: ['png', 'jpeg', 'gif', 'webp'].");
	free(bytes);
}

static void oa_file(struct call *c, json_t *part, const char *at)
{
	json_t *f = json_object_get(part, "file");
	json_t *fd = json_object_get(f, "file_data"), *fid = json_object_get(f, "file_id");
	char param[160], type[64];
	const char *data, *sniffed;
	unsigned char *bytes;
	size_t n;

	snprintf(param, sizeof(param), "%s.file.file_data", at);
	if (json_is_string(fid) && fd == NULL)
		return; /* a file of the account's store */
	if (!json_is_string(fd)) {
		fake_fail(c, param, "missing_required_parameter",
		          "Missing required parameter: '%s'.", param);
		return;
	}
	data = json_string_value(fd);
	if (strncmp(data, "data:", 5) == 0 && (!fake_data_url(data, type, sizeof(type), &data) ||
	                                       strcmp(type, "application/pdf") != 0)) {
		fake_fail(c, param, "invalid_value",
		          "Invalid file data: '%s'. Expected a base64-encoded data URL with a "
		          "supported MIME type (e.g. "
		          "'data:application/pdf;base64,SGVsbG8sIFdvcmxkIQ=='), but got an "
		          "invalid value.",
		          param);
		return;
	}
	if (!json_is_string(json_object_get(f, "filename"))) {
		snprintf(param, sizeof(param), "%s.file.filename", at);
		fake_fail(c, param, "missing_required_parameter",
		          "Missing required parameter: '%s'.", param);
		return;
	}
	bytes = fake_base64_decode(data, strlen(data), false, &n);
	sniffed = bytes != NULL ? fake_media_sniff(bytes, n) : NULL;
	if (sniffed == NULL || strcmp(sniffed, "application/pdf") != 0)
		fake_fail(c, param, "invalid_value",
		          "Invalid file data: '%s'. Expected a base64-encoded PDF, but got an "
		          "invalid value.",
		          param);
	else
		fake_count_media(c, "application/pdf", bytes, n);
	free(bytes);
}

/* A message's content: a string, or parts of the types the role takes. */
static void oa_content(struct call *c, json_t *content, const char *role, size_t i)
{
	bool user = strcmp(role, "user") == 0, assistant = strcmp(role, "assistant") == 0;
	char at[96], param[128];
	json_t *part;
	size_t k;

	if (json_is_string(content)) {
		fake_text(c, json_string_value(content));
		return;
	}
	snprintf(param, sizeof(param), "messages[%zu].content", i);
	if (!json_is_array(content)) {
		fake_fail(c, param, "invalid_type",
		          "Invalid type for '%s': expected one of a string or array of objects, "
		          "but got %s instead.",
		          param,
		          content == NULL || json_is_null(content) ? "null" : "another type");
		return;
	}
	json_array_foreach (content, k, part) {
		json_t *type = json_object_get(part, "type");
		const char *t = json_string_value(type);

		snprintf(at, sizeof(at), "messages[%zu].content[%zu]", i, k);
		if (t != NULL && strcmp(t, "text") == 0) {
			if (!json_is_string(json_object_get(part, "text"))) {
				snprintf(param, sizeof(param), "%s.text", at);
				fake_fail(c, param, "missing_required_parameter",
				          "Missing required parameter: '%s'.", param);
				return;
			}
			fake_text(c, json_string_value(json_object_get(part, "text")));
		} else if (t != NULL && user && strcmp(t, "image_url") == 0) {
			oa_image_url(c, part, at);
		} else if (t != NULL && user && strcmp(t, "file") == 0) {
			oa_file(c, part, at);
		} else if (t != NULL && user && strcmp(t, "input_audio") == 0) {
			/* accepted, not counted */
		} else if (t != NULL && assistant && strcmp(t, "refusal") == 0) {
			/* an earlier refusal */
		} else {
			snprintf(param, sizeof(param), "%s.type", at);
			fake_fail(c, param, "invalid_value",
			          "Invalid value: '%.40s'. Supported values are: %s.",
			          t != NULL ? t : "null",
			          user        ? "'text', 'image_url', 'input_audio', and 'file'"
			          : assistant ? "'text' and 'refusal'"
			                      : "'text'");
			return;
		}
	}
}

/* An assistant's tool_calls; their ids join *pending. */
static void oa_tool_calls(struct call *c, json_t *calls, size_t i, struct fake_ids *pending)
{
	char param[128];
	json_t *tc;
	size_t k;

	snprintf(param, sizeof(param), "messages[%zu].tool_calls", i);
	if (!json_is_array(calls)) {
		fake_fail(c, param, "invalid_type", "Invalid type for '%s': expected an array.",
		          param);
		return;
	}
	json_array_foreach (calls, k, tc) {
		json_t *f = json_object_get(tc, "function");
		json_t *id = json_object_get(tc, "id");

		snprintf(param, sizeof(param), "messages[%zu].tool_calls[%zu]", i, k);
		if (!json_is_string(id) || !fake_is(json_object_get(tc, "type"), "function") ||
		    !json_is_string(json_object_get(f, "name"))) {
			fake_fail(c, param, "missing_required_parameter",
			          "Missing required parameter: '%s.%s'.", param,
			          !json_is_string(id) ? "id"
			          : !fake_is(json_object_get(tc, "type"), "function")
			                  ? "type"
			                  : "function.name");
			return;
		}
		if (!json_is_string(json_object_get(f, "arguments"))) {
			snprintf(param, sizeof(param),
			         "messages[%zu].tool_calls[%zu].function.arguments", i, k);
			fake_fail(c, param, "invalid_type",
			          "Invalid type for '%s': expected a string, but got %s instead.",
			          param,
			          json_is_object(json_object_get(f, "arguments")) ? "an object"
			                                                          : "null");
			return;
		}
		fake_ids_add(pending, json_string_value(id));
	}
}

static void oa_messages(struct call *c, json_t *msgs)
{
	struct fake_ids pending = {.n = 0};
	char param[96], list[512];
	json_t *m;
	size_t i;

	json_array_foreach (msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *content = json_object_get(m, "content");
		json_t *calls = json_object_get(m, "tool_calls");

		snprintf(param, sizeof(param), "messages.[%zu].role", i);
		if (role == NULL || (strcmp(role, "system") != 0 && strcmp(role, "user") != 0 &&
		                     strcmp(role, "assistant") != 0 &&
		                     strcmp(role, "developer") != 0 && strcmp(role, "tool") != 0)) {
			fake_fail(c, param, "invalid_value", "Invalid value for 'messages[].role'");
			return;
		}
		if (strcmp(role, "tool") == 0) {
			json_t *id = json_object_get(m, "tool_call_id");

			if (!json_is_string(id)) {
				fake_fail(c, "messages", "missing_required_parameter",
				          "Missing parameter 'tool_call_id': messages with role "
				          "'tool' must have a 'tool_call_id'.");
				return;
			}
			if (!fake_ids_take(&pending, json_string_value(id))) {
				fake_fail(c, param, NULL,
				          "Invalid parameter: messages with role 'tool' must be a "
				          "response to a preceeding message with 'tool_calls'.");
				return;
			}
			c->after_tool_result = true;
		} else {
			if (pending.n > 0) {
				fake_fail(c, param, NULL,
				          "An assistant message with 'tool_calls' must be followed "
				          "by tool messages responding to each 'tool_call_id'. The "
				          "following tool_call_ids did not have response messages: "
				          "%s",
				          fake_ids_list(&pending, list, sizeof(list)));
				return;
			}
			c->after_tool_result = false;
		}
		if (strcmp(role, "assistant") == 0 && calls != NULL && !json_is_null(calls))
			oa_tool_calls(c, calls, i, &pending);
		if (strcmp(role, "assistant") == 0 && (content == NULL || json_is_null(content)) &&
		    json_array_size(calls) > 0)
			; /* a turn of tool calls only */
		else
			oa_content(c, content, role, i);
		if (c->invalid != NULL)
			return;
		c->messages++;
	}
	if (pending.n > 0)
		fake_fail(
		        c, "messages", NULL,
		        "An assistant message with 'tool_calls' must be followed by tool messages "
		        "responding to each 'tool_call_id'. The following tool_call_ids did not "
		        "have response messages: %s",
		        fake_ids_list(&pending, list, sizeof(list)));
}

static void oa_tools(struct call *c, json_t *tools)
{
	char param[96], where[160];
	json_t *t;
	size_t k;

	if (tools == NULL || json_is_null(tools))
		return;
	if (!json_is_array(tools)) {
		fake_fail(c, "tools", "invalid_type",
		          "Invalid type for 'tools': expected an array.");
		return;
	}
	json_array_foreach (tools, k, t) {
		json_t *f = json_object_get(t, "function");
		json_t *params = json_object_get(f, "parameters");
		const char *name = json_string_value(json_object_get(f, "name"));

		if (fake_is(json_object_get(t, "type"), "custom"))
			continue;
		snprintf(param, sizeof(param), "tools[%zu].%s", k,
		         fake_is(json_object_get(t, "type"), "function") ? "function.name"
		                                                         : "type");
		if (!fake_is(json_object_get(t, "type"), "function") || !json_is_object(f) ||
		    name == NULL) {
			fake_fail(c, param, "missing_required_parameter",
			          "Missing required parameter: '%s'.", param);
			return;
		}
		if (!fake_name_ok(name, 64)) {
			fake_fail(c, param, "invalid_value",
			          "Invalid '%s': string does not match pattern. Expected a string "
			          "that matches the pattern '^[a-zA-Z0-9_-]+$'.",
			          param);
			return;
		}
		snprintf(param, sizeof(param), "tools[%zu].function.parameters", k);
		if (params != NULL && !json_is_object(params)) {
			fake_fail(c, param, "invalid_type",
			          "Invalid type for '%s': expected an object, but got another "
			          "type instead.",
			          param);
			return;
		}
		snprintf(where, sizeof(where), "Invalid schema for function '%s'", name);
		if (json_is_true(json_object_get(f, "strict")) &&
		    !fake_schema_ok(c, params, RULES_OPENAI_STRICT, where, param,
		                    "invalid_function_parameters"))
			return;
	}
}

/* The function tool named name (NULL: the first), or NULL. Borrowed. */
static json_t *oa_function(json_t *tools, const char *name)
{
	json_t *t;
	size_t k;

	json_array_foreach (tools, k, t) {
		json_t *f = json_object_get(t, "function");
		const char *n = json_string_value(json_object_get(f, "name"));

		if (fake_is(json_object_get(t, "type"), "function") && n != NULL &&
		    (name == NULL || strcmp(n, name) == 0))
			return f;
	}
	return NULL;
}

static void oa_tool_choice(struct call *c, json_t *tools, json_t *choice)
{
	const char *named = NULL;
	bool forced = false;
	json_t *f;

	if (choice != NULL && json_array_size(tools) == 0) {
		fake_fail(c, "tool_choice", NULL,
		          "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
		          "'tools' are specified.");
		return;
	}
	if (json_is_string(choice)) {
		if (fake_is(choice, "none"))
			return;
		if (!fake_is(choice, "auto") && !fake_is(choice, "required")) {
			fake_fail(c, "tool_choice", "invalid_value",
			          "Invalid value: '%.40s'. Supported values are: 'none', 'auto', "
			          "and 'required'.",
			          json_string_value(choice));
			return;
		}
		forced = fake_is(choice, "required");
	} else if (choice != NULL) {
		named = json_string_value(
		        json_object_get(json_object_get(choice, "function"), "name"));
		if (!fake_is(json_object_get(choice, "type"), "function") || named == NULL) {
			fake_fail(c, "tool_choice.function.name", "missing_required_parameter",
			          "Missing required parameter: 'tool_choice.function.name'.");
			return;
		}
		if (oa_function(tools, named) == NULL) {
			fake_fail(c, "tool_choice", NULL,
			          "Invalid value for 'tool_choice': function '%.64s' was not "
			          "found in 'tools'.",
			          named);
			return;
		}
		forced = true;
	}
	f = oa_function(tools, named);
	if (f != NULL && (forced || !c->after_tool_result)) {
		c->tool = json_string_value(json_object_get(f, "name"));
		c->tool_params = json_object_get(f, "parameters");
	}
}

static void oa_response_format(struct call *c, json_t *rf)
{
	json_t *type = json_object_get(rf, "type"), *js, *schema;
	const char *name;
	char where[160];

	if (rf == NULL || json_is_null(rf) || fake_is(type, "text"))
		return;
	if (fake_is(type, "json_object")) {
		c->json_mode = true;
		if (!c->mentions_json)
			fake_fail(c, "messages", NULL,
			          "'messages' must contain the word 'json' in some form, to use "
			          "'response_format' of type 'json_object'.");
		return;
	}
	if (!fake_is(type, "json_schema")) {
		fake_fail(
		        c, "response_format.type", "invalid_value",
		        "Invalid value: '%.40s'. Supported values are: 'text', 'json_object', and "
		        "'json_schema'.",
		        json_string_value(type) ? json_string_value(type) : "null");
		return;
	}
	js = json_object_get(rf, "json_schema");
	name = json_string_value(json_object_get(js, "name"));
	schema = json_object_get(js, "schema");
	if (!json_is_object(js) || name == NULL) {
		fake_fail(c, "response_format.json_schema.name", "missing_required_parameter",
		          "Missing required parameter: 'response_format.json_schema.name'.");
		return;
	}
	if (!fake_name_ok(name, 64)) {
		fake_fail(c, "response_format.json_schema.name", "invalid_value",
		          "Invalid 'response_format.json_schema.name': string does not match "
		          "pattern. Expected a string that matches the pattern "
		          "'^[a-zA-Z0-9_-]+$'.");
		return;
	}
	if (schema != NULL && !json_is_object(schema)) {
		fake_fail(c, "response_format.json_schema.schema", "invalid_type",
		          "Invalid type for 'response_format.json_schema.schema': expected an "
		          "object.");
		return;
	}
	snprintf(where, sizeof(where), "Invalid schema for response_format '%s'", name);
	if (json_is_true(json_object_get(js, "strict")) &&
	    !fake_schema_ok(c, schema, RULES_OPENAI_STRICT, where, "response_format",
	                    "invalid_json_schema"))
		return;
	c->schema = schema;
	c->json_mode = schema == NULL;
}

static void oa_reasoning(struct call *c, json_t *effort)
{
	static const char *const levels[] = {"none", "minimal", "low", "medium", "high", "xhigh"};
	json_t *temp = json_object_get(c->body, "temperature");
	json_t *top_p = json_object_get(c->body, "top_p");
	json_t *mt = json_object_get(c->body, "max_tokens");
	bool known = false;

	if (effort == NULL || json_is_null(effort))
		return;
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		known = known || fake_is(effort, levels[i]);
	if (!known) {
		fake_fail(c, "reasoning_effort", "invalid_value",
		          "Invalid value: '%.40s'. Supported values are: 'minimal', 'low', "
		          "'medium', and 'high'.",
		          json_string_value(effort) ? json_string_value(effort) : "?");
		return;
	}
	if (fake_is(effort, "none"))
		return;
	if (mt != NULL && !json_is_null(mt)) {
		fake_fail(c, "max_tokens", "unsupported_parameter",
		          "Unsupported parameter: 'max_tokens' is not supported with this model. "
		          "Use 'max_completion_tokens' instead.");
		return;
	}
	if (json_is_number(temp) && json_number_value(temp) != 1.0) {
		fake_fail(c, "temperature", "unsupported_value",
		          "Unsupported value: 'temperature' does not support %g with this model. "
		          "Only the default (1) value is supported.",
		          json_number_value(temp));
		return;
	}
	if (json_is_number(top_p) && json_number_value(top_p) != 1.0) {
		fake_fail(
		        c, "top_p", "unsupported_value",
		        "Unsupported value: 'top_p' does not support %g with this model. Only the "
		        "default (1) value is supported.",
		        json_number_value(top_p));
		return;
	}
	c->thinking = true;
	c->thinking_cap = -1;
}

void fake_openai_parse(struct call *c)
{
	json_t *model = json_object_get(c->body, "model");
	json_t *msgs = json_object_get(c->body, "messages");
	json_t *mct = json_object_get(c->body, "max_completion_tokens");
	json_t *mt = json_object_get(c->body, "max_tokens");
	json_t *tools = json_object_get(c->body, "tools");

	if (!json_is_string(model)) {
		fake_fail(c, "model", "missing_required_parameter",
		          "you must provide a model parameter");
		return;
	}
	snprintf(c->model, sizeof(c->model), "%s", json_string_value(model));
	if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
		fake_fail(c, "messages", NULL, "'messages' must be a non-empty array");
		return;
	}
	oa_messages(c, msgs);
	if ((mct != NULL && (!json_is_integer(mct) || json_integer_value(mct) < 1)) ||
	    (mt != NULL && !json_is_null(mt) &&
	     (!json_is_integer(mt) || json_integer_value(mt) < 1))) {
		fake_fail(c, "max_tokens", NULL, "max_tokens must be a positive integer");
		return;
	}
	c->max_tokens = fake_int_or(mct, fake_int_or(mt, -1));
	oa_tools(c, tools);
	oa_tool_choice(c, tools, json_object_get(c->body, "tool_choice"));
	oa_response_format(c, json_object_get(c->body, "response_format"));
	oa_reasoning(c, json_object_get(c->body, "reasoning_effort"));
}

/* ------------------------------------------------------------- answer */

json_t *fake_openai_answer(const struct call *c, const struct answer *a)
{
	char id[64];
	const char *finish = a->truncated                  ? "length"
	                     : a->kind == ANSWER_TOOL_CALL ? "tool_calls"
	                                                   : "stop";
	json_t *msg;

	if (a->kind == ANSWER_TOOL_CALL) {
		char *args = json_dumps(a->args, JSON_COMPACT);

		snprintf(id, sizeof(id), "call_fake%016" PRIx64, a->seq);
		msg = json_pack("{s:s, s:n, s:n, s:[{s:s, s:s, s:{s:s, s:s}}], s:[]}", "role",
		                "assistant", "content", "refusal", "tool_calls", "id", id, "type",
		                "function", "function", "name", c->tool, "arguments",
		                args != NULL ? args : "{}", "annotations");
		free(args);
	} else if (a->kind == ANSWER_REFUSAL) {
		msg = json_pack("{s:s, s:n, s:s, s:[]}", "role", "assistant", "content", "refusal",
		                a->text, "annotations");
	} else {
		msg = json_pack("{s:s, s:s, s:n, s:[]}", "role", "assistant", "content", a->text,
		                "refusal", "annotations");
	}
	snprintf(id, sizeof(id), "chatcmpl-fake%016" PRIx64, a->seq);
	return json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:s}], s:{s:I, s:I, s:I, "
	                 "s:{s:I, s:i}, s:{s:I, s:i, s:i, s:i}}, s:s, s:s}",
	                 "id", id, "object", "chat.completion", "created", (json_int_t)time(NULL),
	                 "model", c->model, "choices", "index", 0, "message", msg, "logprobs",
	                 "finish_reason", finish, "usage", "prompt_tokens", (json_int_t)a->in,
	                 "completion_tokens", (json_int_t)a->out, "total_tokens",
	                 (json_int_t)(a->in + a->out), "prompt_tokens_details", "cached_tokens",
	                 (json_int_t)a->cached, "audio_tokens", 0, "completion_tokens_details",
	                 "reasoning_tokens", (json_int_t)a->reasoning, "audio_tokens", 0,
	                 "accepted_prediction_tokens", 0, "rejected_prediction_tokens", 0,
	                 "service_tier", "default", "system_fingerprint", "fp_fake");
}
