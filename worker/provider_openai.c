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
	if (cls == RESPONSE_INVALID) {
		free(out->content);
		out->content = NULL;
	}
	jdoc_free(&doc);
	return cls;
}

const struct provider provider_openai = {
        .type = "openai",
        .url_parts = 1u << PART_IMAGE,
        .build_request = openai_build_request,
        .parse_response = openai_parse_response,
};
