/* provider_gemini: Google's Gemini API, generateContent.
 *
 * Request:  POST {base_url}/models/{id}:generateContent with
 *           x-goog-api-key: KEY (never in the URL, where logs and proxies
 *           would keep it) and a JSON body {contents, systemInstruction?,
 *           tools?, toolConfig?, generationConfig}.
 * Response: the text parts of candidates[0].content, its functionCall
 *           parts, its finishReason, and usageMetadata.
 *
 * How a job becomes a request, decided here:
 * - Roles: user is "user", assistant is "model", and a tool result is a
 *   functionResponse part in a "user" content. Every system message,
 *   wherever it stands, goes to systemInstruction as one text part, in
 *   order, separated by a blank line.
 * - Consecutive messages of one side (once system messages are out) merge
 *   into one content with one text part per message or text part; blank
 *   messages and text parts (empty or whitespace only) are left out.
 * - Images and documents are inlineData {mimeType, data}. url_parts is 0:
 *   the worker fetches a part given by URL and sends its bytes. Google has
 *   announced (2026-01) public and signed https URLs as fileData.fileUri,
 *   but not for every model family, and a request cannot tell which model
 *   takes them: the bytes work with all.
 * - An assistant's tool calls are functionCall {name, args} parts after its
 *   text; a tool message is functionResponse {name, response}, name that
 *   of the call it answers, response its content when that is a JSON
 *   object, else {"content": the text}. Gemini pairs them by order and
 *   name; the job's call ids are not sent.
 * - tools are one functionDeclarations list {name, description,
 *   parametersJsonSchema}; tool_choice is toolConfig.functionCallingConfig
 *   mode AUTO, NONE or ANY, a named function ANY with allowedFunctionNames.
 * - json_object sets generationConfig.responseMimeType
 *   "application/json", Gemini's own JSON mode; the prompt is not touched.
 *   json_schema adds responseJsonSchema, which takes JSON Schema (the
 *   older responseSchema takes an OpenAPI subset); parametersJsonSchema
 *   likewise. Both schemas go in SCHEMA_GEMINI's dialect (provider.h):
 *   Google lists the keywords it supports; const becomes a one-value enum,
 *   definitions become $defs, the rest (minLength, maxLength, pattern, ...)
 *   is left out, and the worker validates the answer against the whole
 *   schema.
 * - reasoning_effort is generationConfig.thinkingConfig.thinkingBudget, the
 *   model's thinking budget; maxOutputTokens covers it (max_tokens plus the
 *   budget: the thoughts count against maxOutputTokens).
 * - The model id may be written with or without the "models/" prefix; it is
 *   percent-encoded into the path.
 *
 * Response, decided here:
 * - Parts marked "thought" (thought summaries) and non-text parts are not
 *   content. functionCall parts are tool calls, their id the part's when
 *   Google gives one (else made up); a STOP with one is finish_reason
 *   tool_calls.
 * - A prompt blocked before generation (promptFeedback.blockReason, no
 *   candidates) is a completion: content "", finish_reason content_filter;
 *   billed when usageMetadata is there.
 * - Usage: promptTokenCount includes cached tokens (cachedContentTokenCount);
 *   toolUsePromptTokenCount is input too; thoughtsTokenCount is billed as
 *   output and is not inside candidatesTokenCount, so output_tokens is
 *   their sum and reasoning_tokens the thoughts. Google leaves out counts
 *   that are zero, so an absent count is 0.
 *
 * Classes, by error.status before the HTTP status: RESOURCE_EXHAUSTED (429),
 * UNAVAILABLE (503), INTERNAL (500), DEADLINE_EXCEEDED (504) and ABORTED are
 * retryable; UNAUTHENTICATED (401), PERMISSION_DENIED (403), an
 * INVALID_ARGUMENT (400) about the API key ("API key not valid",
 * API_KEY_INVALID) and FAILED_PRECONDITION (400: "User location is not
 * supported", free tier not available: the account cannot be served, like a
 * bad key) are RESPONSE_AUTH; an INVALID_ARGUMENT whose message reads like a
 * token-count overflow is a context overflow; any other 4xx is rejected.
 * An error body wrapped in a JSON array ([{"error":...}], as Google's
 * streaming endpoints send) is unwrapped. */
#include "provider.h"
#include "provider_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- request */

/* The name of the call a tool message answers (job_decode made sure there
 * is one). */
static const char *call_name(const struct job *job, const char *id)
{
	for (size_t i = 0; i < job->n_messages; i++) {
		const struct job_message *msg = &job->messages[i];
		for (size_t k = 0; k < json_array_size(msg->tool_calls); k++) {
			struct provider_call call;
			provider_call_at(msg, k, &call);
			if (strcmp(call.id, id) == 0)
				return call.name;
		}
	}
	return "";
}

static void part_start(struct buf *b, size_t *n)
{
	if ((*n)++)
		buf_puts(b, ",");
}

static void put_text_part(struct buf *b, size_t *n, const char *text, size_t len)
{
	if (provider_text_is_blank(text, len))
		return;
	part_start(b, n);
	buf_puts(b, "{\"text\":");
	buf_json_str(b, text, len);
	buf_puts(b, "}");
}

/* A tool result: functionResponse {name, response}, response the content
 * when it is a JSON object, else {"content": the text}. */
static void put_function_response(struct buf *b, size_t *n, const struct job *job,
                                  const struct job_message *msg)
{
	const char *name = call_name(job, msg->tool_call_id);
	json_t *obj = json_loadb(msg->content, msg->content_len, 0, NULL);
	part_start(b, n);
	buf_puts(b, "{\"functionResponse\":{\"name\":");
	buf_json_str(b, name, strlen(name));
	buf_puts(b, ",\"response\":");
	if (json_is_object(obj)) {
		provider_buf_json(b, obj);
	} else {
		buf_puts(b, "{\"content\":");
		buf_json_str(b, msg->content, msg->content_len);
		buf_puts(b, "}");
	}
	buf_puts(b, "}}");
	json_decref(obj);
}

/* Appends the parts of one message. */
static int put_message_parts(struct buf *b, size_t *n, const struct job *job,
                             const struct job_message *msg, char *errstr, size_t errstr_size)
{
	if (msg->role == ROLE_TOOL) {
		put_function_response(b, n, job, msg);
		return 0;
	}
	for (size_t k = 0; k < msg->n_parts; k++) {
		const struct job_part *part = &msg->parts[k];
		struct provider_media media;
		if (part->type == PART_TEXT) {
			put_text_part(b, n, part->text, part->text_len);
			continue;
		}
		if (provider_part_media(provider_gemini.url_parts, part, &media, errstr,
		                        errstr_size) != 0)
			return -1;
		part_start(b, n);
		buf_printf(b, "{\"inlineData\":{\"mimeType\":\"%s\",\"data\":\"", media.media_type);
		buf_append(b, media.data, media.data_len);
		buf_puts(b, "\"}}");
	}
	if (!msg->n_parts)
		put_text_part(b, n, msg->content, msg->content_len);
	for (size_t k = 0; k < json_array_size(msg->tool_calls); k++) {
		struct provider_call call;
		provider_call_at(msg, k, &call);
		part_start(b, n);
		buf_puts(b, "{\"functionCall\":{\"name\":");
		buf_json_str(b, call.name, strlen(call.name));
		buf_puts(b, ",\"args\":");
		provider_buf_arguments(b, call.arguments);
		buf_puts(b, "}}");
	}
	return 0;
}

static int put_turn(struct buf *b, const struct job *job, const struct provider_turn *t,
                    char *errstr, size_t errstr_size)
{
	size_t n = 0;
	buf_printf(b, "{\"role\":\"%s\",\"parts\":[", t->role == ROLE_USER ? "user" : "model");
	for (size_t i = t->first; i < t->end; i++)
		if (provider_turn_takes(t, &job->messages[i]) &&
		    put_message_parts(b, &n, job, &job->messages[i], errstr, errstr_size) != 0)
			return -1;
	buf_puts(b, "]}");
	return 0;
}

/* tools as one functionDeclarations list, and toolConfig when the job sets
 * tool_choice: a named function is ANY with allowedFunctionNames. */
static void put_tools(struct buf *b, const struct job *job)
{
	static const char *const modes[] = {"AUTO", "NONE", "ANY", "ANY"};
	if (!job->tools)
		return;
	buf_puts(b, ",\"tools\":[{\"functionDeclarations\":[");
	for (size_t i = 0; i < json_array_size(job->tools); i++) {
		struct provider_tool tool;
		provider_buf_tool_open(b, job, i, &tool);
		if (tool.parameters) {
			buf_puts(b, ",\"parametersJsonSchema\":");
			provider_buf_schema(b, tool.parameters, SCHEMA_GEMINI);
		}
		buf_puts(b, "}");
	}
	buf_puts(b, "]}]");
	if (job->tool_choice == TOOL_CHOICE_UNSET)
		return;
	buf_printf(b, ",\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"%s\"",
	           modes[job->tool_choice - TOOL_CHOICE_AUTO]);
	if (job->tool_choice == TOOL_CHOICE_FUNCTION) {
		buf_puts(b, ",\"allowedFunctionNames\":[");
		buf_json_str(b, job->tool_choice_name, strlen(job->tool_choice_name));
		buf_puts(b, "]");
	}
	buf_puts(b, "}}");
}

static int gemini_build_request(const struct provider_conf *p, const struct model_conf *m,
                                const struct job *job, int64_t max_tokens, struct http_request *req,
                                char *errstr, size_t errstr_size)
{
	struct buf *b = &req->body;
	struct buf system = {0};
	struct provider_turn turn;
	size_t pos = 0;
	const char *id = m->id;
	int rc = -1;

	if (!provider_next_turn(job, &pos, &turn)) {
		snprintf(errstr, errstr_size,
		         "gemini: the job has no user or assistant message with content");
		goto out;
	}
	if (strncmp(id, "models/", 7) == 0)
		id += 7;
	buf_printf(&req->url, "%s/models/", p->base_url);
	provider_buf_path_segment(&req->url, id);
	buf_puts(&req->url, ":generateContent");
	provider_request_common(p, req, "x-goog-api-key");
	http_request_add_header(req, "Content-Type: application/json");

	buf_puts(b, "{\"contents\":[");
	for (bool first = true;; first = false) {
		if (!first)
			buf_puts(b, ",");
		if (put_turn(b, job, &turn, errstr, errstr_size) != 0)
			goto out;
		if (!provider_next_turn(job, &pos, &turn))
			break;
	}
	buf_puts(b, "]");

	if (provider_buf_system(&system, job)) {
		buf_puts(b, ",\"systemInstruction\":{\"parts\":[{\"text\":");
		buf_json_str(b, system.data, system.len);
		buf_puts(b, "}]}");
	}
	put_tools(b, job);

	buf_printf(b, ",\"generationConfig\":{\"maxOutputTokens\":%lld",
	           (long long)provider_output_limit(m, job, max_tokens));
	if (job->has_temperature)
		buf_printf(b, ",\"temperature\":%.17g", job->temperature);
	if (job->has_top_p)
		buf_printf(b, ",\"topP\":%.17g", job->top_p);
	provider_buf_stop_array(b, ",\"stopSequences\":", job->stop);
	if (job->json_response)
		buf_puts(b, ",\"responseMimeType\":\"application/json\"");
	if (job->format == FORMAT_JSON_SCHEMA) {
		buf_puts(b, ",\"responseJsonSchema\":");
		provider_buf_schema(b, job->schema, SCHEMA_GEMINI);
	}
	if (job->effort != EFFORT_NONE)
		buf_printf(b, ",\"thinkingConfig\":{\"thinkingBudget\":%lld}",
		           (long long)provider_thinking_budget(m, job));
	buf_puts(b, "}}");
	rc = 0;
out:
	buf_free(&system);
	return rc;
}

/* ---------------------------------------------------------------- response */

static bool is(const char *s, const char *t)
{
	return s && strcmp(s, t) == 0;
}

static const char *str_member(struct jdoc *d, const struct jval *obj, const char *key)
{
	return jdoc_str(d, jv_get(obj, key));
}

static enum finish_reason map_finish(const char *r, bool tool_call)
{
	static const char *const filtered[] = {
	        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"};
	if (is(r, "STOP"))
		return tool_call ? FINISH_TOOL_CALLS : FINISH_STOP;
	if (is(r, "MAX_TOKENS"))
		return FINISH_LENGTH;
	for (size_t i = 0; i < sizeof filtered / sizeof filtered[0]; i++)
		if (is(r, filtered[i]))
			return FINISH_CONTENT_FILTER;
	return FINISH_OTHER; /* LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL, ... */
}

/* Returns 0, or -1 (nothing set) when there is no well-formed usageMetadata. */
static int parse_usage(const struct jval *usage, struct completion *out)
{
	int64_t prompt, tool, cached, cand, thoughts;
	if (!jv_is_object(usage))
		return -1;
	if (jv_count(usage, "promptTokenCount", &prompt) < 0 ||
	    jv_count(usage, "toolUsePromptTokenCount", &tool) < 0 ||
	    jv_count(usage, "cachedContentTokenCount", &cached) < 0 ||
	    jv_count(usage, "candidatesTokenCount", &cand) < 0 ||
	    jv_count(usage, "thoughtsTokenCount", &thoughts) < 0)
		return -1;
	out->usage.input_tokens = prompt + tool;
	out->usage.cached_input_tokens = cached > prompt + tool ? prompt + tool : cached;
	out->usage.cache_write_tokens = 0;
	out->usage.output_tokens = cand + thoughts;
	out->usage.reasoning_tokens = thoughts;
	out->has_usage = true;
	return 0;
}

/* Does any details[] entry carry this reason (google.rpc.ErrorInfo)? */
static bool has_reason(const struct jval *err, const char *reason)
{
	size_t i;
	const struct jval *details = jv_get(err, "details"), *det;
	jv_array_foreach(details, i, det) if (jv_str_eq(jv_get(det, "reason"), reason)) return true;
	return false;
}

static bool contains(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle);
}

static enum response_class gemini_error(long status, enum response_class cls, struct jdoc *d,
                                        struct completion *out)
{
	const struct jval *root = jdoc_root(d);
	const struct jval *top = jv_is_array(root) ? jv_at(root, 0) : root;
	const struct jval *err = jv_get(top, "error");
	const char *st = str_member(d, err, "status");
	const char *msg = str_member(d, err, "message");

	if (is(st, "RESOURCE_EXHAUSTED") || is(st, "UNAVAILABLE") || is(st, "INTERNAL") ||
	    is(st, "DEADLINE_EXCEEDED") || is(st, "ABORTED"))
		cls = RESPONSE_RETRYABLE;
	else if (is(st, "UNAUTHENTICATED") || is(st, "PERMISSION_DENIED") ||
	         is(st, "FAILED_PRECONDITION") || has_reason(err, "API_KEY_INVALID") ||
	         contains(msg, "API key not valid") || contains(msg, "API key expired"))
		cls = RESPONSE_AUTH;
	else if (is(st, "INVALID_ARGUMENT"))
		cls = provider_text_is_context_overflow(msg) ? RESPONSE_CONTEXT_OVERFLOW
		                                             : RESPONSE_REJECTED;
	else if (is(st, "NOT_FOUND"))
		cls = RESPONSE_REJECTED;
	else if (cls == RESPONSE_REJECTED && provider_text_is_context_overflow(msg))
		cls = RESPONSE_CONTEXT_OVERFLOW;

	provider_set_error_of(out, status, root != NULL, st, msg, msg ? strlen(msg) : 0);
	return cls;
}

/* Joins the text parts of content (absent: no parts) into out->content and
 * takes its function calls. Returns -1 when the parts are malformed. */
static int take_content(const struct jval *content, struct completion *out)
{
	struct buf b = {0};
	const struct jval *parts = jv_get(content, "parts");
	const struct jval *part;
	size_t i;

	if ((content && !jv_is_object(content)) || (parts && !jv_is_array(parts)))
		return -1;
	jv_array_foreach(parts, i, part)
	{
		if (!jv_is_object(part))
			goto fail;
		const struct jval *call = jv_get(part, "functionCall");
		const struct jval *args = jv_get(call, "args");
		if (call && (!jv_is_object(call) || (args && !jv_is_object(args)) ||
		             completion_take_tool_call(out, jv_get(call, "id"),
		                                       jv_get(call, "name"), args) != 0))
			goto fail;
		const struct jval *text = jv_get(part, "text");
		if (!text || jv_is_true(jv_get(part, "thought")))
			continue;
		if (!jv_is_string(text))
			goto fail;
		jv_buf_text(&b, text);
	}
	out->content = buf_take(&b);
	return 0;
fail:
	buf_free(&b);
	return -1;
}

static enum response_class gemini_parse_response(const struct model_conf *m, long status,
                                                 const char *body, size_t len,
                                                 struct completion *out)
{
	(void)m;
	enum response_class cls = provider_class_of_status(status);
	struct jdoc doc;
	char word[64];
	jdoc_parse(&doc, body, len);
	struct jdoc *d = &doc;
	const struct jval *root = jdoc_root(d);
	const struct jval *cands, *cand, *finish;

	bool usage_ok = parse_usage(jv_get(root, "usageMetadata"), out) == 0;
	if (!usage_ok)
		provider_usage_unreadable(out, jv_get(root, "usageMetadata"));

	if (cls != RESPONSE_OK) {
		cls = gemini_error(status, cls, d, out);
		goto out;
	}
	cls = RESPONSE_INVALID;
	if (!root) {
		provider_set_error(out, "response body is not JSON");
		goto out;
	}
	if (!jv_is_object(root)) {
		provider_set_error(out, "response body is not a JSON object");
		goto out;
	}
	const struct jval *err = jv_get(root, "error");
	if (err && !jv_is_null(err)) {
		const char *msg = str_member(d, err, "message");
		provider_set_error(out, "error in a 2xx response: %s", msg ? msg : "(no message)");
		goto out;
	}
	cands = jv_get(root, "candidates");
	if (cands && !jv_is_array(cands)) {
		provider_set_error(out, "candidates is not an array");
		goto out;
	}
	if (jv_size(cands) == 0) {
		const char *block = str_member(d, jv_get(root, "promptFeedback"), "blockReason");
		if (!block) {
			provider_set_error(out, "response has no candidates");
			goto out;
		}
		/* Blocked before generation: an answer, not a failure. */
		out->content = xstrdup("");
		out->finish_reason = FINISH_CONTENT_FILTER;
		cls = RESPONSE_OK;
		goto out;
	}
	if (!usage_ok) {
		provider_set_error(out, "response has no valid usageMetadata");
		goto out;
	}
	cand = jv_at(cands, 0);
	finish = jv_get(cand, "finishReason");
	if (!jv_is_object(cand) || (finish && !jv_is_string(finish))) {
		provider_set_error(out, "candidates[0] is malformed");
		goto out;
	}
	if (take_content(jv_get(cand, "content"), out) != 0) {
		provider_set_error(out, "candidates[0].content is malformed");
		goto out;
	}
	out->finish_reason = map_finish(jv_cstr(finish, word, sizeof word), out->n_tool_calls > 0);
	cls = RESPONSE_OK;
out:
	return provider_parse_end(&doc, out, cls);
}

/* ---------------------------------------------------------------- batch (SPEC §14)
 *
 * Submit: POST {base_url}/models/{id}:batchGenerateContent {batch:
 *         {displayName "promptyard-<token>", inputConfig: {requests:
 *         {requests: [{request, metadata: {key: custom_id}}]}}}}, request
 *         the body of a generateContent call; the answer is an operation
 *         named batches/{id}, the batch's id.
 * Poll:   GET {base_url}/batches/{id}, an operation whose metadata is the
 *         batch {displayName, state, batchStats, output, createTime}; cancel:
 *         POST {base_url}/batches/{id}:cancel; list: GET
 *         {base_url}/batches?pageSize=100&pageToken=..., {operations,
 *         nextPageToken}.
 * Results: inline in the status body, output.inlinedResponses
 *         .inlinedResponses (or the operation's response), each {response,
 *         metadata: {key}} or {error, metadata}, in the order of the
 *         requests (the key may be missing: the position says); or, for a
 *         batch made from a file, the responsesFile, GET
 *         {host}/download/{version}/files/{id}:download?alt=media, whose
 *         lines are {key, response} or {key, error}.
 *
 * States: BATCH_STATE_PENDING (validating), RUNNING, SUCCEEDED (ended),
 * FAILED, CANCELLED, EXPIRED; JOB_STATE_ names of the same are taken too
 * (Google's SDKs write those). int64 counts come as JSON strings. Google
 * has no per-request expired or canceled answer: a request of a canceled
 * or expired batch that never ran has no answer at all. */

static void gemini_put_item(struct buf *items, size_t index, const char *custom_id,
                            const char *body, size_t len)
{
	buf_puts(items, index ? ",{\"request\":" : "{\"request\":");
	buf_append(items, body, len);
	buf_puts(items, ",\"metadata\":{\"key\":");
	buf_json_str(items, custom_id, strlen(custom_id));
	buf_puts(items, "}}");
}

static void gemini_submit_request(const struct provider_conf *p,
                                  const struct provider_batch_submission *s, int step,
                                  const char *prev_id, struct http_request *req)
{
	const char *id = s->m->id;
	(void)step;
	(void)prev_id;
	if (strncmp(id, "models/", 7) == 0)
		id += 7;
	buf_printf(&req->url, "%s/models/", p->base_url);
	provider_buf_path_segment(&req->url, id);
	buf_puts(&req->url, ":batchGenerateContent");
	provider_batch_request_end(p, HTTP_POST, req);
	http_request_add_header(req, "Content-Type: application/json");
	buf_printf(&req->body,
	           "{\"batch\":{\"displayName\":\"promptyard-%s\",\"inputConfig\":{\"requests\":"
	           "{\"requests\":[",
	           s->token);
	buf_append(&req->body, s->items.data, s->items.len);
	buf_puts(&req->body, "]}}}}");
}

/* The batch of an operation (its metadata), or the object itself when it
 * is a bare batch. */
static const struct jval *batch_of(const struct jval *obj)
{
	const struct jval *meta = jv_get(obj, "metadata");
	return jv_is_object(meta) ? meta : obj;
}

/* The batch's output: the batch's own, else the operation's response. */
static const struct jval *output_of(const struct jval *obj)
{
	const struct jval *out = jv_get(batch_of(obj), "output");
	return jv_is_object(out) ? out : jv_get(obj, "response");
}

/* An int64 count, which proto3 JSON writes as a string: 0 when absent,
 * -1 when it is not a count. */
static int count_of(const struct jval *obj, const char *key, int64_t *out)
{
	const struct jval *v = jv_get(obj, key);
	char word[24];
	*out = 0;
	if (!jv_is_string(v))
		return jv_count(obj, key, out);
	if (v->len == 0 || v->len > 15 || !jv_cstr(v, word, sizeof word))
		return -1;
	for (const char *c = word; *c; c++)
		if (*c < '0' || *c > '9')
			return -1;
	*out = strtoll(word, NULL, 10);
	return 0;
}

/* The state named s, without its BATCH_STATE_ (or JOB_STATE_) prefix;
 * -1 for a name it is not. */
static int state_of(const char *s)
{
	static const struct {
		const char *name;
		enum provider_batch_state state;
	} states[] = {
	        {"PENDING", BATCH_VALIDATING}, {"RUNNING", BATCH_IN_PROGRESS},
	        {"SUCCEEDED", BATCH_ENDED},    {"FAILED", BATCH_FAILED},
	        {"CANCELLED", BATCH_CANCELED}, {"EXPIRED", BATCH_EXPIRED},
	};
	if (s && strncmp(s, "BATCH_STATE_", 12) == 0)
		s += 12;
	else if (s && strncmp(s, "JOB_STATE_", 10) == 0)
		s += 10;
	else
		return -1;
	for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
		if (strcmp(s, states[i].name) == 0)
			return (int)states[i].state;
	return -1;
}

/* Adds the download URL of a responses file "files/{id}": Google serves
 * it under /download before the API version of base_url's path. */
static void add_responses_file(const struct provider_conf *p, const char *file,
                               struct provider_batch_status *st)
{
	const char *base = p->base_url;
	size_t origin = provider_batch_origin_len(base);
	struct buf url = {0};
	if (origin == 0 || st->n_results >= sizeof st->results / sizeof st->results[0])
		return;
	if (strncmp(file, "files/", 6) == 0)
		file += 6;
	buf_append(&url, base, origin);
	buf_printf(&url, "/download%s/files/", base + origin);
	provider_buf_path_segment(&url, file);
	buf_puts(&url, ":download?alt=media");
	st->results[st->n_results++] = buf_take(&url);
}

static int gemini_batch_of(const struct provider_conf *p, struct jdoc *d, const struct jval *obj,
                           struct provider_batch_status *st)
{
	const struct jval *b = batch_of(obj), *out = output_of(obj);
	const struct jval *name = jv_get(obj, "name"), *stats = jv_get(b, "batchStats");
	const struct jval *inl = jv_get(out, "inlinedResponses");
	const char *state = jdoc_str(d, jv_get(b, "state"));
	const char *file = jdoc_str(d, jv_get(out, "responsesFile"));
	const char *msg = jdoc_str(d, jv_get(jv_get(obj, "error"), "message"));
	int64_t pending = 0;
	int s;

	if (!jv_is_string(name) || name->len == 0)
		name = jv_get(b, "name");
	if (!jv_is_string(name) || name->len == 0) {
		provider_batch_set_error(&st->error_message, "the batch has no name");
		return -1;
	}
	st->id = xstrdup(jdoc_str(d, name));
	s = state_of(state);
	if (s < 0) {
		provider_batch_set_error(&st->error_message, "batch %s: unknown state \"%s\"",
		                         st->id, state ? state : "(none)");
		return -1;
	}
	st->state = (enum provider_batch_state)s;
	if (count_of(stats, "requestCount", &st->total) < 0 ||
	    count_of(stats, "successfulRequestCount", &st->done) < 0 ||
	    count_of(stats, "failedRequestCount", &st->failed) < 0 ||
	    count_of(stats, "pendingRequestCount", &pending) < 0) {
		provider_batch_set_error(&st->error_message, "batch %s: malformed batchStats",
		                         st->id);
		return -1;
	}
	provider_batch_read_token("promptyard-", jv_get(b, "displayName"), st->token);
	st->created_ms = provider_batch_time_ms(jv_get(b, "createTime"));
	st->inline_results = jv_is_array(inl) || jv_is_array(jv_get(inl, "inlinedResponses"));
	if (file && *file)
		add_responses_file(p, file, st);
	if (msg)
		provider_batch_set_error(&st->error_message, "%s", msg);
	return 0;
}

static const struct jval *gemini_inline_answers(const struct jval *root)
{
	const struct jval *inl = jv_get(output_of(root), "inlinedResponses");
	return jv_is_array(inl) ? inl : jv_get(inl, "inlinedResponses");
}

/* The HTTP status of a google.rpc.Status code, for the classes. */
static long http_of_rpc(int64_t code)
{
	static const long http[] = {
	        [1] = 499,  [2] = 500,  [3] = 400,  [4] = 504,  [5] = 404,  [6] = 409,
	        [7] = 403,  [8] = 429,  [9] = 400,  [10] = 409, [11] = 400, [12] = 501,
	        [13] = 500, [14] = 503, [15] = 500, [16] = 401,
	};
	return code > 0 && code < 17 ? http[code] : 500;
}

static enum provider_batch_outcome gemini_parse_result(const struct model_conf *m, const char *line,
                                                       size_t len,
                                                       struct provider_batch_result *out)
{
	struct jdoc doc;
	int64_t code = 0;
	if (provider_batch_line_open(&doc, line, len, out) != 0)
		goto out;
	const struct jval *root = jdoc_root(&doc);
	const struct jval *key = jv_get(root, "key");
	const struct jval *resp = jv_get(root, "response"), *err = jv_get(root, "error");
	provider_batch_take_custom_id(
	        out, jv_is_string(key) ? key : jv_get(jv_get(root, "metadata"), "key"));
	if (jv_is_object(resp)) {
		provider_batch_answered(&provider_gemini, m, 200, resp, out);
	} else if (jv_is_object(err)) {
		if (jv_count(err, "code", &code) < 0)
			code = 0;
		provider_batch_errored(&provider_gemini, http_of_rpc(code), err, true, out);
	} else {
		provider_batch_outcome(out, BATCH_LINE_INVALID,
		                       "the answer has neither a response nor an error");
	}
out:
	jdoc_free(&doc);
	return out->outcome;
}

static const struct provider_batch gemini_batch = {
        .max_requests = SIZE_MAX, /* Google sets no count, only the size */
        .max_bytes = 20000000,    /* Gemini: inline requests up to 20 MB */
        .submit_steps = 1,
        .key_header = "x-goog-api-key",
        .batches_path = "/batches",
        .id_prefix = "batches/",
        .cancel_suffix = ":cancel",
        .list_query = "?pageSize=100",
        .cursor_param = "pageToken",
        .id_key = "name",
        .list_key = "operations",
        .list_cursor_key = "nextPageToken",
        .put_item = gemini_put_item,
        .submit_request = gemini_submit_request,
        .read_batch = gemini_batch_of,
        .parse_result = gemini_parse_result,
        .inline_answers = gemini_inline_answers,
};

const struct provider provider_gemini = {
        .type = "gemini",
        .url_parts = 0,
        .build_request = gemini_build_request,
        .parse_response = gemini_parse_response,
        .batch = &gemini_batch,
};
