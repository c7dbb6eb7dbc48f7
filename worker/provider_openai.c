/* provider_openai: OpenAI Chat Completions, and every server that speaks it
 * (Groq, DeepSeek, Mistral, Together, vLLM, Ollama, ...).
 *
 * Request:  POST {base_url}/chat/completions, Authorization: Bearer KEY.
 *           The messages go as they are, roles and order kept: content
 *           parts as text, image_url (an https URL, or the bytes as a data:
 *           URL; detail passed through) and file parts (file_data, a data:
 *           URL, with filename, "document.pdf" when the job gives none: the
 *           API wants one); an assistant's tool_calls and a tool message's
 *           tool_call_id. tools and tool_choice go as the job gives them;
 *           json_schema is response_format json_schema {name, schema,
 *           strict}; reasoning_effort goes as it is. The output limit is
 *           max_tokens, or max_completion_tokens when the model says so or
 *           the job asks for reasoning (OpenAI's reasoning models refuse
 *           max_tokens); with reasoning it is max_tokens plus the model's
 *           thinking budget, the call's output limit (SPEC §13).
 * Response: choices[0].message.content, .refusal and .tool_calls,
 *           choices[0].finish_reason, usage (reasoning tokens from
 *           completion_tokens_details.reasoning_tokens, already inside
 *           completion_tokens). Every other member of OpenAI's published
 *           schema (logprobs, audio, annotations, service_tier,
 *           system_fingerprint, ...) is accepted and ignored.
 *
 * Decided here, beyond the SPEC:
 * - json_object sends response_format json_object. OpenAI refuses that
 *   unless a message contains the word "JSON"; when none does, a system
 *   message PROVIDER_JSON_INSTRUCTION is put first. json_schema needs no
 *   such word.
 * - A call with reasoning_effort sends no temperature and no top_p: OpenAI's
 *   reasoning models refuse both.
 * - A refusal (message.refusal) is finish_reason refusal, the result ok,
 *   with the refusal text apart and content "" when the model gave none.
 * - Tool calls with finish_reason stop (some compatible servers say so) are
 *   finish_reason tool_calls.
 * - content given as an array of parts (Mistral's reasoning models, some
 *   proxies) is the concatenation of its text parts.
 * - Cached input is prompt_tokens_details.cached_tokens, or DeepSeek's
 *   prompt_cache_hit_tokens.
 * - A 429 with code insufficient_quota (the account is out of credit) is
 *   RESPONSE_AUTH: no retry will help until someone pays, so the provider's
 *   circuit opens, as for a bad key.
 * - An error body may be OpenAI's {"error":{message,type,code}}, vLLM's and
 *   Mistral's {"object":"error","message"}, FastAPI's {"detail"} or Ollama's
 *   {"error":"text"}: the message is taken from whichever is there. */
#include "provider.h"
#include "provider_batch.h"

#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- request */

static void put_number(struct buf *b, const char *key, double v)
{
	buf_printf(b, ",\"%s\":%.17g", key, v);
}

/* Case-insensitive: does any message contain "json"? */
static bool mentions_json(const struct job *job)
{
	for (size_t i = 0; i < job->n_messages; i++) {
		const struct job_message *msg = &job->messages[i];
		for (size_t k = 0; k + 4 <= msg->content_len; k++)
			if (strncasecmp(msg->content + k, "json", 4) == 0)
				return true;
	}
	return false;
}

/* Appends one content part. */
static int put_part(struct buf *b, const struct job_part *part, char *errstr, size_t errstr_size)
{
	struct provider_media media;
	if (part->type == PART_TEXT) {
		buf_puts(b, "{\"type\":\"text\",\"text\":");
		buf_json_str(b, part->text, part->text_len);
		buf_puts(b, "}");
		return 0;
	}
	if (provider_part_media(provider_openai.url_parts, part, &media, errstr, errstr_size) != 0)
		return -1;
	if (part->type == PART_IMAGE) {
		buf_puts(b, "{\"type\":\"image_url\",\"image_url\":{\"url\":");
		if (media.url)
			buf_json_str(b, media.url, strlen(media.url));
		else
			provider_buf_data_url(b, &media);
		if (part->detail) {
			buf_puts(b, ",\"detail\":");
			buf_json_str(b, part->detail, strlen(part->detail));
		}
		buf_puts(b, "}}");
		return 0;
	}
	const char *name = part->filename ? part->filename : "document.pdf";
	buf_puts(b, "{\"type\":\"file\",\"file\":{\"filename\":");
	buf_json_str(b, name, strlen(name));
	buf_puts(b, ",\"file_data\":");
	provider_buf_data_url(b, &media);
	buf_puts(b, "}}");
	return 0;
}

/* Appends one message: content as a string, as parts, or null beside tool calls. */
static int put_message(struct buf *b, const struct job_message *msg, char *errstr,
                       size_t errstr_size)
{
	buf_printf(b, "{\"role\":\"%s\",\"content\":", role_name(msg->role));
	if (msg->n_parts) {
		buf_puts(b, "[");
		for (size_t k = 0; k < msg->n_parts; k++) {
			if (k)
				buf_puts(b, ",");
			if (put_part(b, &msg->parts[k], errstr, errstr_size) != 0)
				return -1;
		}
		buf_puts(b, "]");
	} else if (msg->tool_calls && msg->content_len == 0) {
		buf_puts(b, "null");
	} else {
		buf_json_str(b, msg->content, msg->content_len);
	}
	for (size_t k = 0; k < json_array_size(msg->tool_calls); k++) {
		struct provider_call call;
		provider_call_at(msg, k, &call);
		buf_puts(b, k ? ",{\"id\":" : ",\"tool_calls\":[{\"id\":");
		buf_json_str(b, call.id, strlen(call.id));
		buf_puts(b, ",\"type\":\"function\",\"function\":{\"name\":");
		buf_json_str(b, call.name, strlen(call.name));
		buf_puts(b, ",\"arguments\":");
		buf_json_str(b, call.arguments, strlen(call.arguments));
		buf_puts(b, "}}");
	}
	if (msg->tool_calls)
		buf_puts(b, "]");
	if (msg->tool_call_id) {
		buf_puts(b, ",\"tool_call_id\":");
		buf_json_str(b, msg->tool_call_id, strlen(msg->tool_call_id));
	}
	buf_puts(b, "}");
	return 0;
}

static void put_tools(struct buf *b, const struct job *job)
{
	static const char *const choices[] = {"auto", "none", "required"};
	if (!job->tools)
		return;
	buf_puts(b, ",\"tools\":");
	provider_buf_json(b, job->tools);
	if (job->tool_choice == TOOL_CHOICE_FUNCTION) {
		buf_puts(b, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":");
		buf_json_str(b, job->tool_choice_name, strlen(job->tool_choice_name));
		buf_puts(b, "}}");
	} else if (job->tool_choice != TOOL_CHOICE_UNSET) {
		buf_printf(b, ",\"tool_choice\":\"%s\"",
		           choices[job->tool_choice - TOOL_CHOICE_AUTO]);
	}
}

static void put_response_format(struct buf *b, const struct job *job)
{
	if (job->format == FORMAT_JSON_OBJECT) {
		buf_puts(b, ",\"response_format\":{\"type\":\"json_object\"}");
	} else if (job->format == FORMAT_JSON_SCHEMA) {
		buf_puts(b, ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
		            "\"name\":");
		buf_json_str(b, job->schema_name, strlen(job->schema_name));
		buf_puts(b, ",\"schema\":");
		provider_buf_json(b, job->schema);
		buf_printf(b, ",\"strict\":%s}}", job->schema_strict ? "true" : "false");
	}
}

static int openai_build_request(const struct provider_conf *p, const struct model_conf *m,
                                const struct job *job, int64_t max_tokens, struct http_request *req,
                                char *errstr, size_t errstr_size)
{
	bool reasoning = job->effort != EFFORT_NONE;
	buf_printf(&req->url, "%s/chat/completions", p->base_url);
	http_request_add_header(req, "Content-Type: application/json");
	provider_request_common(p, req, "Authorization");

	struct buf *b = &req->body;
	bool first = true;
	buf_puts(b, "{\"model\":");
	buf_json_str(b, m->id, strlen(m->id));
	buf_puts(b, ",\"messages\":[");
	if (job->format == FORMAT_JSON_OBJECT && !mentions_json(job)) {
		buf_puts(b, "{\"role\":\"system\",\"content\":");
		buf_json_str(b, PROVIDER_JSON_INSTRUCTION, strlen(PROVIDER_JSON_INSTRUCTION));
		buf_puts(b, "}");
		first = false;
	}
	for (size_t i = 0; i < job->n_messages; i++) {
		if (!first)
			buf_puts(b, ",");
		if (put_message(b, &job->messages[i], errstr, errstr_size) != 0)
			return -1;
		first = false;
	}
	buf_printf(b, "],\"%s\":%lld",
	           m->max_completion_tokens || reasoning ? "max_completion_tokens" : "max_tokens",
	           (long long)provider_output_limit(m, job, max_tokens));
	if (reasoning)
		buf_printf(b, ",\"reasoning_effort\":\"%s\"", reasoning_effort_name(job->effort));
	if (job->has_temperature && !reasoning)
		put_number(b, "temperature", job->temperature);
	if (job->has_top_p && !reasoning)
		put_number(b, "top_p", job->top_p);
	/* A string goes as it is; an array without its empty strings, and not at
	 * all when nothing is left (some compatible servers refuse "stop": []). */
	if (json_is_string(job->stop) && json_string_length(job->stop) > 0) {
		buf_puts(b, ",\"stop\":");
		buf_json_str(b, json_string_value(job->stop), json_string_length(job->stop));
	} else if (json_is_array(job->stop)) {
		provider_buf_stop_array(b, ",\"stop\":", job->stop);
	}
	put_response_format(b, job);
	put_tools(b, job);
	buf_puts(b, "}");
	return 0;
}

/* ---------------------------------------------------------------- response */

static enum finish_reason map_finish(const char *r)
{
	if (!r)
		return FINISH_OTHER;
	if (strcmp(r, "stop") == 0)
		return FINISH_STOP;
	if (strcmp(r, "length") == 0)
		return FINISH_LENGTH;
	if (strcmp(r, "content_filter") == 0)
		return FINISH_CONTENT_FILTER;
	if (strcmp(r, "tool_calls") == 0 || strcmp(r, "function_call") == 0)
		return FINISH_TOOL_CALLS;
	return FINISH_OTHER;
}

/* Fills out->usage from an OpenAI usage object. Returns 0, or -1 (nothing
 * set) when there is none or it is malformed. */
static int parse_usage(const struct jval *usage, struct completion *out)
{
	int64_t in, outp, cached, hit, reasoning;
	if (!jv_is_object(usage) || !jv_get(usage, "prompt_tokens"))
		return -1;
	if (jv_count(usage, "prompt_tokens", &in) < 0 ||
	    jv_count(usage, "completion_tokens", &outp) < 0 ||
	    jv_count(jv_get(usage, "prompt_tokens_details"), "cached_tokens", &cached) < 0 ||
	    jv_count(usage, "prompt_cache_hit_tokens", &hit) < 0 ||
	    jv_count(jv_get(usage, "completion_tokens_details"), "reasoning_tokens", &reasoning) <
	            0)
		return -1;
	if (reasoning > outp)
		return -1; /* they are a part of completion_tokens */
	if (cached == 0)
		cached = hit; /* DeepSeek */
	out->usage.input_tokens = in;
	out->usage.output_tokens = outp;
	out->usage.cached_input_tokens = cached > in ? in : cached;
	out->usage.cache_write_tokens = 0;
	out->usage.reasoning_tokens = reasoning;
	out->has_usage = true;
	return 0;
}

static const char *str_member(struct jdoc *d, const struct jval *obj, const char *key)
{
	return jdoc_str(d, jv_get(obj, key));
}

/* The class and error_message of a non-2xx response. */
static enum response_class openai_error(long status, enum response_class cls, struct jdoc *d,
                                        struct completion *out)
{
	const struct jval *root = jdoc_root(d);
	const char *msg = NULL, *code = NULL, *type = NULL;
	const struct jval *err = jv_get(root, "error");

	if (jv_is_object(err)) {
		msg = str_member(d, err, "message");
		code = str_member(d, err, "code"); /* vLLM sends a number here: not a code */
		type = str_member(d, err, "type");
	} else if (jv_is_string(err)) {
		msg = jdoc_str(d, err);
	} else if (jv_is_object(root)) {
		msg = str_member(d, root, "message");
		if (!msg)
			msg = str_member(d, root, "detail");
		code = str_member(d, root, "code");
		type = str_member(d, root, "type");
	}

	if (code && strcmp(code, "insufficient_quota") == 0)
		cls = RESPONSE_AUTH;
	else if (cls == RESPONSE_REJECTED && (provider_text_is_context_overflow(code) ||
	                                      provider_text_is_context_overflow(msg)))
		cls = RESPONSE_CONTEXT_OVERFLOW;

	if (!root)
		provider_set_error(out, "HTTP %ld with a body that is not JSON", status);
	else if (msg && (code || type))
		provider_set_error(out, "%s: %s", code ? code : type, msg);
	else if (msg)
		provider_set_error(out, "%s", msg);
	else
		provider_set_error(out, "HTTP %ld without an error message", status);
	return cls;
}

/* Copies message.content (a string, null, or an array of parts) to out.
 * Returns -1 when it is of another type. */
static int take_content(const struct jval *content, struct completion *out)
{
	struct buf b = {0};
	if (!content || jv_is_null(content)) {
		out->content = xstrdup("");
		return 0;
	}
	if (jv_is_string(content)) {
		jv_buf_text(&b, content);
	} else if (jv_is_array(content)) {
		size_t i;
		const struct jval *part;
		jv_array_foreach(content, i, part)
		{
			const struct jval *type = jv_get(part, "type");
			const struct jval *text = jv_get(part, "text");
			if (!jv_is_object(part) || (jv_is_string(type) && !jv_str_eq(type, "text")))
				continue;
			if (!jv_is_string(text)) {
				buf_free(&b);
				return -1;
			}
			jv_buf_text(&b, text);
		}
	} else {
		return -1;
	}
	out->content = b.data ? buf_take(&b) : xstrdup("");
	return 0;
}

/* Adds message.tool_calls (absent or null: none). Returns -1 when malformed. */
static int take_tool_calls(const struct jval *calls, struct completion *out)
{
	size_t i;
	const struct jval *call;
	if (!calls || jv_is_null(calls))
		return 0;
	if (!jv_is_array(calls))
		return -1;
	jv_array_foreach(calls, i, call)
	{
		const struct jval *f = jv_get(call, "function");
		if (!jv_is_object(f) ||
		    completion_take_tool_call(out, jv_get(call, "id"), jv_get(f, "name"),
		                              jv_get(f, "arguments")) != 0)
			return -1;
	}
	return 0;
}

static enum response_class openai_parse_response(const struct model_conf *m, long status,
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
	const struct jval *choice, *message, *finish, *refusal;

	/* Usage first, whatever the status: a billed failure is still charged. */
	bool usage_ok = parse_usage(jv_get(root, "usage"), out) == 0;
	if (!usage_ok)
		provider_usage_unreadable(out, jv_get(root, "usage"));

	if (cls != RESPONSE_OK) {
		cls = openai_error(status, cls, d, out);
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
	const char *object = str_member(d, root, "object");
	if ((err && !jv_is_null(err)) || (object && strcmp(object, "error") == 0)) {
		const char *msg = jv_is_string(err) ? jdoc_str(d, err)
		                                    : str_member(d, jv_is_object(err) ? err : root,
		                                                 "message");
		provider_set_error(out, "error in a 2xx response: %s", msg ? msg : "(no message)");
		goto out;
	}
	if (!usage_ok) {
		provider_set_error(out, "response has no valid usage");
		goto out;
	}
	choice = jv_at(jv_get(root, "choices"), 0);
	message = jv_get(choice, "message");
	if (!jv_is_object(message)) {
		provider_set_error(out, "response has no choices[0].message");
		goto out;
	}
	finish = jv_get(choice, "finish_reason");
	if (finish && !jv_is_string(finish) && !jv_is_null(finish)) {
		provider_set_error(out, "choices[0].finish_reason is not a string");
		goto out;
	}
	refusal = jv_get(message, "refusal");
	if (refusal && !jv_is_string(refusal) && !jv_is_null(refusal)) {
		provider_set_error(out, "choices[0].message.refusal is not a string");
		goto out;
	}
	if (take_content(jv_get(message, "content"), out) != 0) {
		provider_set_error(out, "choices[0].message.content is not a string");
		goto out;
	}
	if (take_tool_calls(jv_get(message, "tool_calls"), out) != 0) {
		provider_set_error(out, "choices[0].message.tool_calls is malformed");
		goto out;
	}
	out->finish_reason = map_finish(jv_cstr(finish, word, sizeof word));
	if (out->n_tool_calls && out->finish_reason == FINISH_STOP)
		out->finish_reason = FINISH_TOOL_CALLS;
	if (jv_is_string(refusal) && refusal->len > 0) {
		struct buf b = {0};
		jv_buf_text(&b, refusal);
		out->refusal = buf_take(&b);
		out->finish_reason = FINISH_REFUSAL;
	}
	cls = RESPONSE_OK;
out:
	return provider_parse_end(&doc, out, cls);
}

/* ---------------------------------------------------------------- batch (SPEC §14)
 *
 * Submit: POST {base_url}/files, multipart/form-data with purpose "batch"
 *         and the file "promptyard-<token>.jsonl", one line per request
 *         {custom_id, method POST, url /v1/chat/completions, body}; then
 *         POST {base_url}/batches {input_file_id, endpoint, completion_window
 *         24h, metadata {promptyard_token}}.
 * Poll:   GET {base_url}/batches/{id}; cancel: POST .../{id}/cancel; list:
 *         GET {base_url}/batches?limit=100&after={last_id}, {data, has_more,
 *         last_id}.
 * Results: GET {base_url}/files/{id}/content of output_file_id and
 *         error_file_id: lines {id, custom_id, response {status_code,
 *         request_id, body}, error}. A line with a response is answered,
 *         whatever its status_code (a 400 there is the request's own
 *         refusal); one with only an error did not run: batch_expired is
 *         expired, batch_cancelled canceled, any other errored. */

#define OPENAI_BATCH_ENDPOINT "/v1/chat/completions"

static void openai_put_item(struct buf *items, size_t index, const char *custom_id,
                            const char *body, size_t len)
{
	(void)index;
	buf_puts(items, "{\"custom_id\":");
	buf_json_str(items, custom_id, strlen(custom_id));
	buf_puts(items, ",\"method\":\"POST\",\"url\":\"" OPENAI_BATCH_ENDPOINT "\",\"body\":");
	buf_append(items, body, len);
	buf_puts(items, "}\n");
}

/* The multipart boundary: "promptyard-<token>-<k>", the first k whose
 * boundary the file does not contain, so that the same submission is
 * always sent the same way. */
static void choose_boundary(const struct provider_batch_submission *s, char *out, size_t size)
{
	for (unsigned k = 0;; k++) {
		snprintf(out, size, "promptyard-%s-%u", s->token, k);
		if (!s->items.data || !memmem(s->items.data, s->items.len, out, strlen(out)))
			return;
	}
}

static void openai_submit_request(const struct provider_conf *p,
                                  const struct provider_batch_submission *s, int step,
                                  const char *prev_id, struct http_request *req)
{
	struct buf *b = &req->body;
	if (step == 0) {
		char boundary[64];
		choose_boundary(s, boundary, sizeof boundary);
		buf_printf(&req->url, "%s/files", p->base_url);
		provider_batch_request_end(p, HTTP_POST, req);
		http_request_add_header(req, "Content-Type: multipart/form-data; boundary=%s",
		                        boundary);
		buf_printf(
		        b,
		        "--%s\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
		        "--%s\r\nContent-Disposition: form-data; name=\"file\"; "
		        "filename=\"promptyard-%s.jsonl\"\r\nContent-Type: "
		        "application/jsonl\r\n\r\n",
		        boundary, boundary, s->token);
		buf_append(b, s->items.data, s->items.len);
		buf_printf(b, "\r\n--%s--\r\n", boundary);
		return;
	}
	buf_printf(&req->url, "%s/batches", p->base_url);
	provider_batch_request_end(p, HTTP_POST, req);
	http_request_add_header(req, "Content-Type: application/json");
	buf_puts(b, "{\"input_file_id\":");
	buf_json_str(b, prev_id ? prev_id : "", prev_id ? strlen(prev_id) : 0);
	buf_printf(b,
	           ",\"endpoint\":\"" OPENAI_BATCH_ENDPOINT "\",\"completion_window\":\"24h\","
	           "\"metadata\":{\"promptyard_token\":\"%s\"}}",
	           s->token);
}

static const struct {
	const char *name;
	enum provider_batch_state state;
} openai_states[] = {
        {"validating", BATCH_VALIDATING}, {"in_progress", BATCH_IN_PROGRESS},
        {"finalizing", BATCH_FINALIZING}, {"completed", BATCH_ENDED},
        {"failed", BATCH_FAILED},         {"expired", BATCH_EXPIRED},
        {"cancelling", BATCH_CANCELING},  {"cancelled", BATCH_CANCELED},
};

/* Adds {base_url}/files/{id}/content for the file id v, when it is one. */
static void add_file(const struct provider_conf *p, struct jdoc *d, const struct jval *v,
                     struct provider_batch_status *st)
{
	struct buf url = {0};
	const char *id = jv_is_string(v) && v->len ? jdoc_str(d, v) : NULL;
	if (!id || st->n_results >= sizeof st->results / sizeof st->results[0])
		return;
	buf_printf(&url, "%s/files/", p->base_url);
	provider_buf_path_segment(&url, id);
	buf_puts(&url, "/content");
	st->results[st->n_results++] = buf_take(&url);
}

/* Fills st from a batch object. Returns -1 (st's error_message set) when
 * it is not one. */
static int openai_batch_of(const struct provider_conf *p, struct jdoc *d, const struct jval *obj,
                           struct provider_batch_status *st)
{
	const struct jval *id = jv_get(obj, "id");
	const struct jval *counts = jv_get(obj, "request_counts");
	const char *status = jdoc_str(d, jv_get(obj, "status"));
	size_t i;

	if (!jv_is_string(id) || id->len == 0) {
		provider_batch_set_error(&st->error_message, "the batch has no id");
		return -1;
	}
	st->id = xstrdup(jdoc_str(d, id));
	for (i = 0; i < sizeof openai_states / sizeof openai_states[0]; i++)
		if (status && strcmp(status, openai_states[i].name) == 0)
			break;
	if (i == sizeof openai_states / sizeof openai_states[0]) {
		provider_batch_set_error(&st->error_message, "batch %s: unknown status \"%s\"",
		                         st->id, status ? status : "(none)");
		return -1;
	}
	st->state = openai_states[i].state;
	if (jv_count(counts, "total", &st->total) < 0 ||
	    jv_count(counts, "completed", &st->done) < 0 ||
	    jv_count(counts, "failed", &st->failed) < 0) {
		provider_batch_set_error(&st->error_message, "batch %s: malformed request_counts",
		                         st->id);
		return -1;
	}
	provider_batch_read_token("", jv_get(jv_get(obj, "metadata"), "promptyard_token"),
	                          st->token);
	st->created_ms = provider_batch_time_ms(jv_get(obj, "created_at"));
	add_file(p, d, jv_get(obj, "output_file_id"), st);
	add_file(p, d, jv_get(obj, "error_file_id"), st);
	const struct jval *err = jv_at(jv_get(jv_get(obj, "errors"), "data"), 0);
	const char *code = jdoc_str(d, jv_get(err, "code"));
	const char *msg = jdoc_str(d, jv_get(err, "message"));
	if (msg)
		provider_batch_set_error(&st->error_message, "%s%s%s", code ? code : "",
		                         code ? ": " : "", msg);
	return 0;
}

static enum provider_batch_outcome openai_parse_result(const struct model_conf *m, const char *line,
                                                       size_t len,
                                                       struct provider_batch_result *out)
{
	struct jdoc doc;
	int64_t code = 0;
	if (provider_batch_line_open(&doc, line, len, out) != 0)
		goto out;
	const struct jval *root = jdoc_root(&doc);
	const struct jval *resp = jv_get(root, "response");
	const struct jval *err = jv_get(root, "error");
	provider_batch_take_custom_id(out, jv_get(root, "custom_id"));
	if (!out->custom_id) {
		provider_batch_outcome(out, BATCH_LINE_INVALID, "the result has no custom_id");
	} else if (jv_is_object(resp)) {
		if (jv_count(resp, "status_code", &code) < 0 || code < 100 || code > 599)
			provider_batch_outcome(out, BATCH_LINE_INVALID,
			                       "the response has no valid status_code");
		else
			provider_batch_answered(&provider_openai, m, (long)code,
			                        jv_get(resp, "body"), out);
	} else if (jv_is_object(err)) {
		const char *c = jdoc_str(&doc, jv_get(err, "code"));
		const char *msg = jdoc_str(&doc, jv_get(err, "message"));
		if (c && strcmp(c, "batch_expired") == 0)
			provider_batch_outcome(out, BATCH_LINE_EXPIRED, "%s", msg ? msg : c);
		else if (c &&
		         (strcmp(c, "batch_cancelled") == 0 || strcmp(c, "batch_canceled") == 0))
			provider_batch_outcome(out, BATCH_LINE_CANCELED, "%s", msg ? msg : c);
		else
			provider_batch_errored(&provider_openai, 500, err, true, out);
	} else {
		provider_batch_outcome(out, BATCH_LINE_INVALID,
		                       "the result has neither a response nor an error");
	}
out:
	jdoc_free(&doc);
	return out->outcome;
}

static const struct provider_batch openai_batch = {
        .max_requests = 50000,  /* OpenAI: per batch */
        .max_bytes = 200000000, /* OpenAI: per input file (200 MB) */
        .submit_steps = 2,
        .key_header = "Authorization",
        .batches_path = "/batches",
        .cancel_suffix = "/cancel",
        .list_query = "?limit=100",
        .cursor_param = "after",
        .id_key = "id",
        .list_key = "data",
        .list_cursor_key = "last_id",
        .list_more_key = "has_more",
        .put_item = openai_put_item,
        .submit_request = openai_submit_request,
        .read_batch = openai_batch_of,
        .parse_result = openai_parse_result,
};

const struct provider provider_openai = {
        .type = "openai",
        .url_parts = 1u << PART_IMAGE,
        .build_request = openai_build_request,
        .parse_response = openai_parse_response,
        .batch = &openai_batch,
};
