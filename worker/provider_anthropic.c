/* provider_anthropic: Anthropic's Messages API.
 *
 * Request:  POST {base_url}/messages with x-api-key: KEY (when there is a
 *           key), anthropic-version: 2023-06-01 and a JSON body
 *           {model, max_tokens, system?, messages, temperature?, top_p?,
 *            stop_sequences?}.
 * Response: the text of the content blocks of type "text", stop_reason, and
 *           usage, whose input_tokens leaves out cache reads and writes.
 *
 * How a job becomes a Messages request, decided here:
 * - Every system message, wherever it stands, goes to the top-level `system`
 *   string, in order, separated by a blank line.
 * - The Messages API wants user and assistant turns to alternate, so
 *   consecutive messages of one role (once system messages are taken out)
 *   merge into one turn: a single message keeps the plain string form, a
 *   merged turn is an array of text blocks, one per message, so nothing is
 *   glued together.
 * - Blank messages (empty or whitespace only) are left out: the API refuses
 *   empty text blocks.
 * - A conversation that starts with an assistant turn is sent as it is:
 *   nothing is made up in front of it. If the API refuses it, that is a
 *   400 invalid_request_error, RESPONSE_REJECTED: the job asked for
 *   something this format cannot take.
 * - A final assistant turn is a prefill on Anthropic (the reply continues
 *   it, unlike OpenAI's, which answers after it). The API refuses a prefill
 *   that ends in whitespace, so trailing whitespace of that turn is cut.
 * - A job with no user or assistant message left cannot be expressed:
 *   build_request fails.
 * - temperature above 1 (jobs may ask up to 2, OpenAI's range) is sent as 1,
 *   Anthropic's maximum.
 * - Anthropic has no JSON mode: json_response appends
 *   PROVIDER_JSON_INSTRUCTION to the system prompt. The answer is not
 *   checked; a model may still wrap it in prose.
 *
 * Classes, by error.type before the status: overloaded_error (529),
 * rate_limit_error (429), api_error (500) and timeout_error (504) are
 * retryable; authentication_error (401), permission_error (403) and
 * billing_error (402: the account cannot pay, so no model of it will answer)
 * are RESPONSE_AUTH; invalid_request_error is a context overflow when its
 * message says so ("prompt is too long: ...", "... exceed context limit"),
 * else RESPONSE_REJECTED, as are not_found_error and request_too_large. */
#include "provider.h"

#include <stdio.h>
#include <string.h>

#define ANTHROPIC_VERSION "2023-06-01"

/* ---------------------------------------------------------------- request */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Appends one turn; last: it is the final turn of the conversation. */
static void put_turn(struct buf *b, const struct job *job, const struct provider_turn *t, bool last)
{
	size_t k = 0;
	buf_printf(b, "{\"role\":\"%s\",\"content\":", t->role == ROLE_USER ? "user" : "assistant");
	if (t->n > 1)
		buf_puts(b, "[");
	for (size_t i = t->first; i < t->end; i++) {
		const struct job_message *msg = &job->messages[i];
		size_t len = msg->content_len;
		if (msg->role != t->role || provider_message_is_blank(msg))
			continue;
		k++;
		if (last && k == t->n && t->role == ROLE_ASSISTANT)
			while (len > 0 && is_space(msg->content[len - 1]))
				len--; /* not blank: something is left */
		if (t->n > 1) {
			buf_puts(b, k > 1 ? ",{\"type\":\"text\",\"text\":"
			                  : "{\"type\":\"text\",\"text\":");
			buf_json_str(b, msg->content, len);
			buf_puts(b, "}");
		} else {
			buf_json_str(b, msg->content, len);
		}
	}
	if (t->n > 1)
		buf_puts(b, "]");
	buf_puts(b, "}");
}

static int anthropic_build_request(const struct provider_conf *p, const struct model_conf *m,
                                   const struct job *job, int64_t max_tokens,
                                   struct http_request *req, char *errstr, size_t errstr_size)
{
	struct buf *b = &req->body;
	struct buf system = {0};
	struct provider_turn turn, next;
	size_t pos = 0;
	int rc = -1;

	if (provider_check_plain("anthropic", job, errstr, errstr_size) != 0)
		goto out;
	if (!provider_next_turn(job, &pos, &turn)) {
		snprintf(errstr, errstr_size,
		         "anthropic: the job has no user or assistant message with content");
		goto out;
	}

	buf_printf(&req->url, "%s/messages", p->base_url);
	provider_request_common(p, req, "x-api-key");
	http_request_add_header(req, "anthropic-version: " ANTHROPIC_VERSION);
	http_request_add_header(req, "content-type: application/json");

	buf_puts(b, "{\"model\":");
	buf_json_str(b, m->id, strlen(m->id));
	buf_printf(b, ",\"max_tokens\":%lld", (long long)provider_max_tokens(m, max_tokens));

	provider_buf_system(&system, job);
	if (job->json_response) {
		if (system.len)
			buf_puts(&system, "\n\n");
		buf_puts(&system, PROVIDER_JSON_INSTRUCTION);
	}
	if (system.len) {
		buf_puts(b, ",\"system\":");
		buf_json_str(b, system.data, system.len);
	}

	buf_puts(b, ",\"messages\":[");
	for (bool first = true;; first = false) {
		bool more = provider_next_turn(job, &pos, &next);
		if (!first)
			buf_puts(b, ",");
		put_turn(b, job, &turn, !more);
		if (!more)
			break;
		turn = next;
	}
	buf_puts(b, "]");

	if (job->has_temperature)
		buf_printf(b, ",\"temperature\":%.17g",
		           job->temperature > 1 ? 1.0 : job->temperature);
	if (job->has_top_p)
		buf_printf(b, ",\"top_p\":%.17g", job->top_p);
	provider_buf_stop_array(b, ",\"stop_sequences\":", job->stop);
	buf_puts(b, "}");
	rc = 0;
out:
	buf_free(&system);
	return rc;
}

/* ---------------------------------------------------------------- response */

static enum finish_reason map_stop_reason(const char *r)
{
	if (!r)
		return FINISH_OTHER;
	if (strcmp(r, "end_turn") == 0 || strcmp(r, "stop_sequence") == 0)
		return FINISH_STOP;
	/* model_context_window_exceeded: the output was cut by the context
	 * window rather than by max_tokens, a truncation all the same. */
	if (strcmp(r, "max_tokens") == 0 || strcmp(r, "model_context_window_exceeded") == 0)
		return FINISH_LENGTH;
	if (strcmp(r, "tool_use") == 0)
		return FINISH_TOOL_CALLS;
	if (strcmp(r, "refusal") == 0)
		return FINISH_CONTENT_FILTER;
	return FINISH_OTHER; /* pause_turn, and whatever comes next */
}

/* Anthropic's input_tokens counts only the uncached input: the total the
 * rest of promptyard means is it plus the cache reads and the cache writes.
 * Returns 0, or -1 (nothing set) when there is no well-formed usage. */
static int parse_usage(const struct jval *usage, struct completion *out)
{
	int64_t in, read, write, outp;
	if (!jv_is_object(usage) || !jv_get(usage, "input_tokens"))
		return -1;
	if (jv_count(usage, "input_tokens", &in) < 0 ||
	    jv_count(usage, "cache_read_input_tokens", &read) < 0 ||
	    jv_count(usage, "cache_creation_input_tokens", &write) < 0 ||
	    jv_count(usage, "output_tokens", &outp) < 0)
		return -1;
	out->usage.input_tokens = in + read + write;
	out->usage.cached_input_tokens = read;
	out->usage.cache_write_tokens = write;
	out->usage.output_tokens = outp;
	out->has_usage = true;
	return 0;
}

static const char *str_member(struct jdoc *d, const struct jval *obj, const char *key)
{
	return jdoc_str(d, jv_get(obj, key));
}

static bool is(const char *s, const char *t)
{
	return s && strcmp(s, t) == 0;
}

static enum response_class anthropic_error(long status, enum response_class cls, struct jdoc *d,
                                           struct completion *out)
{
	const struct jval *root = jdoc_root(d);
	const struct jval *err = jv_get(root, "error");
	const char *type = str_member(d, err, "type");
	const char *msg = str_member(d, err, "message");

	if (is(type, "overloaded_error") || is(type, "rate_limit_error") || is(type, "api_error") ||
	    is(type, "timeout_error"))
		cls = RESPONSE_RETRYABLE;
	else if (is(type, "authentication_error") || is(type, "permission_error") ||
	         is(type, "billing_error"))
		cls = RESPONSE_AUTH;
	else if (is(type, "invalid_request_error"))
		cls = provider_text_is_context_overflow(msg) ? RESPONSE_CONTEXT_OVERFLOW
		                                             : RESPONSE_REJECTED;
	else if (is(type, "not_found_error") || is(type, "request_too_large"))
		cls = RESPONSE_REJECTED;
	else if (cls == RESPONSE_REJECTED && provider_text_is_context_overflow(msg))
		cls = RESPONSE_CONTEXT_OVERFLOW;

	if (!root)
		provider_set_error(out, "HTTP %ld with a body that is not JSON", status);
	else if (type && msg)
		provider_set_error(out, "%s: %s", type, msg);
	else if (msg || type)
		provider_set_error(out, "%s", msg ? msg : type);
	else
		provider_set_error(out, "HTTP %ld without an error message", status);
	return cls;
}

/* Joins the text blocks of content into out->content. Returns -1 when
 * content is not an array or a text block has no string text. */
static int take_content(const struct jval *content, struct completion *out)
{
	struct buf b = {0};
	size_t i;
	const struct jval *block;
	if (!jv_is_array(content))
		return -1;
	jv_array_foreach(content, i, block)
	{
		if (!jv_is_object(block))
			goto fail;
		if (!jv_str_eq(jv_get(block, "type"), "text"))
			continue; /* thinking, tool_use, server tool results, ... */
		const struct jval *text = jv_get(block, "text");
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

static enum response_class anthropic_parse_response(const struct model_conf *m, long status,
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
	const struct jval *stop;

	bool usage_ok = parse_usage(jv_get(root, "usage"), out) == 0;

	if (cls != RESPONSE_OK) {
		cls = anthropic_error(status, cls, d, out);
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
	if (is(str_member(d, root, "type"), "error") || (err && !jv_is_null(err))) {
		const char *msg = str_member(d, err, "message");
		provider_set_error(out, "error in a 2xx response: %s", msg ? msg : "(no message)");
		goto out;
	}
	if (!usage_ok) {
		provider_set_error(out, "response has no valid usage");
		goto out;
	}
	stop = jv_get(root, "stop_reason");
	if (stop && !jv_is_string(stop) && !jv_is_null(stop)) {
		provider_set_error(out, "stop_reason is not a string");
		goto out;
	}
	if (take_content(jv_get(root, "content"), out) != 0) {
		provider_set_error(out, "content is not an array of content blocks");
		goto out;
	}
	out->finish_reason = map_stop_reason(jv_cstr(stop, word, sizeof word));
	cls = RESPONSE_OK;
out:
	jdoc_free(&doc);
	return cls;
}

const struct provider provider_anthropic = {
        .type = "anthropic",
        .url_parts = 1u << PART_IMAGE | 1u << PART_DOCUMENT,
        .build_request = anthropic_build_request,
        .parse_response = anthropic_parse_response,
};
