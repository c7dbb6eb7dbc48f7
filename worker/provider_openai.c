/* provider_openai: OpenAI Chat Completions, and every server that speaks it
 * (Groq, DeepSeek, Mistral, Together, vLLM, Ollama, ...).
 *
 * Request:  POST {base_url}/chat/completions, Authorization: Bearer KEY.
 * Response: choices[0].message.content, choices[0].finish_reason, usage. */
#include "provider.h"

#include <string.h>

static void put_number(struct buf *b, const char *key, double v)
{
	buf_printf(b, ",\"%s\":%.17g", key, v);
}

/* Appends the job's `stop` (a string or an array of strings) as JSON. */
static void put_json(struct buf *b, const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	buf_puts(b, s ? s : "null");
	free(s);
}

static int openai_build_request(const struct provider_conf *p, const struct model_conf *m,
				const struct job *job, int64_t max_tokens,
				struct http_request *req, char *errstr, size_t errstr_size)
{
	(void)errstr;
	(void)errstr_size;
	buf_printf(&req->url, "%s/chat/completions", p->base_url);
	http_request_add_header(req, "Content-Type: application/json");
	if (p->api_key)
		http_request_add_header(req, "Authorization: Bearer %s", p->api_key);

	struct buf *b = &req->body;
	buf_puts(b, "{\"model\":");
	buf_json_str(b, m->id, strlen(m->id));
	buf_puts(b, ",\"messages\":[");
	for (size_t i = 0; i < job->n_messages; i++) {
		const struct job_message *msg = &job->messages[i];
		buf_printf(b, "%s{\"role\":\"%s\",\"content\":", i ? "," : "", role_name(msg->role));
		buf_json_str(b, msg->content, msg->content_len);
		buf_puts(b, "}");
	}
	buf_printf(b, "],\"%s\":%lld", m->max_completion_tokens ? "max_completion_tokens" : "max_tokens",
		   (long long)max_tokens);
	if (job->has_temperature)
		put_number(b, "temperature", job->temperature);
	if (job->has_top_p)
		put_number(b, "top_p", job->top_p);
	if (job->stop) {
		buf_puts(b, ",\"stop\":");
		put_json(b, job->stop);
	}
	if (job->json_response)
		buf_puts(b, ",\"response_format\":{\"type\":\"json_object\"}");
	buf_puts(b, "}");
	return 0;
}

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

/* Reads a non-negative integer member, 0 when absent; -1 when of a wrong type. */
static int64_t get_count(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	return json_integer_value(v);
}

static int parse_usage(const json_t *usage, struct completion *out)
{
	if (!json_is_object(usage))
		return -1;
	int64_t in = get_count(usage, "prompt_tokens");
	int64_t outp = get_count(usage, "completion_tokens");
	int64_t cached = get_count(json_object_get(usage, "prompt_tokens_details"), "cached_tokens");
	if (!json_object_get(usage, "prompt_tokens") || in < 0 || outp < 0 || cached < 0)
		return -1;
	out->usage.input_tokens = in;
	out->usage.output_tokens = outp;
	out->usage.cached_input_tokens = cached > in ? in : cached;
	out->has_usage = true;
	return 0;
}

static void set_error(struct completion *out, const char *msg)
{
	free(out->error_message);
	out->error_message = xstrdup(msg);
}

static enum response_class openai_parse_response(const struct model_conf *m, long status,
						 const char *body, size_t len,
						 struct completion *out)
{
	(void)m;
	enum response_class cls = provider_class_of_status(status);
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr);

	if (cls != RESPONSE_OK) {
		const char *msg = NULL, *code = NULL;
		json_t *err = json_object_get(root, "error");
		if (json_is_object(err)) {
			msg = json_string_value(json_object_get(err, "message"));
			code = json_string_value(json_object_get(err, "code"));
		}
		if ((status == 400 || status == 413) &&
		    (provider_text_is_context_overflow(code) || provider_text_is_context_overflow(msg)))
			cls = RESPONSE_CONTEXT_OVERFLOW;
		set_error(out, msg ? msg : "error status without an OpenAI error body");
		goto out;
	}
	if (!json_is_object(root)) {
		set_error(out, "response body is not a JSON object");
		cls = RESPONSE_INVALID;
		goto out;
	}
	json_t *err = json_object_get(root, "error");
	if (json_is_object(err)) {
		const char *msg = json_string_value(json_object_get(err, "message"));
		set_error(out, msg ? msg : "error object in a 2xx response");
		cls = RESPONSE_INVALID;
		goto out;
	}
	if (parse_usage(json_object_get(root, "usage"), out) != 0) {
		set_error(out, "response has no valid usage");
		cls = RESPONSE_INVALID;
		goto out;
	}
	json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
	json_t *message = json_object_get(choice, "message");
	if (!json_is_object(message)) {
		set_error(out, "response has no choices[0].message");
		cls = RESPONSE_INVALID;
		goto out;
	}
	json_t *content = json_object_get(message, "content");
	json_t *refusal = json_object_get(message, "refusal");
	const char *reason = json_string_value(json_object_get(choice, "finish_reason"));
	out->finish_reason = map_finish(reason);
	if (json_is_string(content)) {
		out->content = xstrndup(json_string_value(content), json_string_length(content));
	} else if (json_is_string(refusal)) {
		out->content = xstrndup(json_string_value(refusal), json_string_length(refusal));
		out->finish_reason = FINISH_CONTENT_FILTER;
	} else if (content && !json_is_null(content)) {
		set_error(out, "choices[0].message.content is not a string");
		cls = RESPONSE_INVALID;
		goto out;
	} else {
		out->content = xstrdup("");
	}
out:
	json_decref(root);
	return cls;
}

const struct provider provider_openai = {
	.type = "openai",
	.build_request = openai_build_request,
	.parse_response = openai_parse_response,
};
