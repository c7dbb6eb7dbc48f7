/* provider_anthropic: Anthropic's Messages API.
 *
 * Request:  POST {base_url}/messages with x-api-key: KEY (when there is a
 *           key), anthropic-version: 2023-06-01 and a JSON body
 *           {model, max_tokens, thinking?, system?, messages, temperature?,
 *            top_p?, stop_sequences?, tools?, tool_choice?, output_config?}.
 * Response: the text of the content blocks of type "text", the tool_use
 *           blocks, stop_reason, and usage, whose input_tokens leaves out
 *           cache reads and writes.
 *
 * How a job becomes a Messages request, decided here:
 * - Every system message, wherever it stands, goes to the top-level `system`
 *   string, in order, separated by a blank line.
 * - The Messages API wants user and assistant turns to alternate, so
 *   consecutive messages of one side (once system messages are taken out;
 *   a tool result is on the user's side) merge into one turn: a single
 *   message of plain text keeps the string form, any other turn is an array
 *   of blocks, one text block per message or text part, so nothing is
 *   glued together.
 * - Images and documents are image and document blocks, with a base64
 *   source, or a url source for a part given by URL (the API fetches it).
 * - An assistant's tool calls are tool_use blocks after its text (input:
 *   the arguments as an object); tool messages are tool_result blocks, put
 *   first in their user turn as the API wants, so consecutive results share
 *   one turn.
 * - Blank messages and text parts (empty or whitespace only) are left out:
 *   the API refuses empty text blocks.
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
 * - Anthropic has no JSON mode: json_object appends
 *   PROVIDER_JSON_INSTRUCTION to the system prompt. The answer is not
 *   checked; a model may still wrap it in prose.
 * - json_schema on a model with structured_outputs (a model key, an
 *   extension) is output_config.format {type: json_schema, schema}, the GA
 *   shape of Anthropic's structured outputs (no beta header; the answer is
 *   the text), the schema in SCHEMA_ANTHROPIC's dialect. On another model it
 *   is a forced tool, the answer tool, whose input_schema is the schema (which
 *   must then be of type object, as tools take): the answer is that
 *   tool_use's input, returned as the content. The tool's name is fixed
 *   (PROVIDER_ANSWER_TOOL) because a response does not tell what was
 *   asked; a job with a tool of that name cannot be sent. provider.c keeps
 *   this logic, which Bedrock's Claude models share.
 * - tools: {name, description, input_schema}; tool_choice auto, none,
 *   required (any) and a function (tool) map one to one.
 * - reasoning_effort: thinking {type: enabled, budget_tokens: the model's
 *   thinking budget}, max_tokens the job's plus the budget (Anthropic wants
 *   budget_tokens below max_tokens, at least 1024: a smaller configured
 *   budget fails the build). Thinking takes no temperature and no top_p
 *   below 0.95, so neither is sent; no forced tool either, so the answer
 *   tool is then asked for by tool_choice auto and the system prompt, and
 *   a job's required or named tool_choice fails the build. When the
 *   conversation's last assistant turn made tool calls, thinking is not
 *   sent: the API would want that turn to start with the thinking block
 *   that came before the calls, which a job cannot carry.
 *
 * Response, decided here:
 * - thinking and redacted_thinking blocks are never content.
 * - stop_reason refusal is finish_reason refusal, an ok result: the text
 *   the model gave is the refusal ("The model declined to answer." when
 *   none), content "" (provider_parse_blocks).
 * - Usage: output_tokens includes the thinking tokens; Anthropic does not
 *   say how many were thinking, so reasoning_tokens stays 0.
 *
 * Classes, by error.type before the status: overloaded_error (529),
 * rate_limit_error (429), api_error (500) and timeout_error (504) are
 * retryable; authentication_error (401), permission_error (403) and
 * billing_error (402: the account cannot pay, so no model of it will answer)
 * are RESPONSE_AUTH; invalid_request_error is a context overflow when its
 * message says so ("prompt is too long: ...", "... exceed context limit"),
 * else RESPONSE_REJECTED, as are not_found_error and request_too_large. */
#include "provider.h"
#include "provider_batch.h"

#include <stdio.h>
#include <string.h>

#define ANTHROPIC_VERSION "2023-06-01"

/* ---------------------------------------------------------------- request */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void put_text_block(struct buf *b, const char *text, size_t len)
{
	buf_puts(b, "{\"type\":\"text\",\"text\":");
	buf_json_str(b, text, len);
	buf_puts(b, "}");
}

static int put_media_block(struct buf *b, const struct job_part *part, char *errstr,
                           size_t errstr_size)
{
	struct provider_media media;
	if (provider_part_media(provider_anthropic.url_parts, part, &media, errstr, errstr_size) !=
	    0)
		return -1;
	buf_printf(b,
	           "{\"type\":\"%s\",\"source\":", part->type == PART_IMAGE ? "image" : "document");
	if (media.url) {
		buf_puts(b, "{\"type\":\"url\",\"url\":");
		buf_json_str(b, media.url, strlen(media.url));
	} else {
		buf_printf(b, "{\"type\":\"base64\",\"media_type\":\"%s\",\"data\":\"",
		           media.media_type);
		buf_append(b, media.data, media.data_len);
		buf_puts(b, "\"");
	}
	buf_puts(b, "}}");
	return 0;
}

static void put_tool_use(struct buf *b, const struct provider_call *call)
{
	provider_buf_tool_use(b, call, "{\"type\":\"tool_use\",\"id\":", "}");
}

static void put_tool_result(struct buf *b, const struct job_message *msg)
{
	buf_puts(b, "{\"type\":\"tool_result\",\"tool_use_id\":");
	buf_json_str(b, msg->tool_call_id, strlen(msg->tool_call_id));
	if (!provider_text_is_blank(msg->content, msg->content_len)) {
		buf_puts(b, ",\"content\":");
		buf_json_str(b, msg->content, msg->content_len);
	}
	buf_puts(b, "}");
}

static const struct provider_block_ops block_ops = {
        .text = put_text_block,
        .media = put_media_block,
        .tool_use = put_tool_use,
        .tool_result = put_tool_result,
};

/* Can the turn go as a plain string (one message of text only)? */
static bool turn_is_plain(const struct job *job, const struct provider_turn *t)
{
	const struct job_message *msg = &job->messages[t->first];
	return t->n == 1 && msg->role != ROLE_TOOL && !msg->tool_calls && msg->n_parts == 0;
}

/* Appends one turn; last: it is the final turn of the conversation. */
static int put_turn(struct buf *b, const struct job *job, const struct provider_turn *t, bool last,
                    char *errstr, size_t errstr_size)
{
	buf_printf(b, "{\"role\":\"%s\",\"content\":", t->role == ROLE_USER ? "user" : "assistant");
	if (turn_is_plain(job, t)) {
		const struct job_message *msg = &job->messages[t->first];
		size_t len = msg->content_len;
		while (last && t->role == ROLE_ASSISTANT && is_space(msg->content[len - 1]))
			len--; /* a prefill; not blank: something is left */
		buf_json_str(b, msg->content, len);
		buf_puts(b, "}");
		return 0;
	}
	buf_puts(b, "[");
	if (provider_buf_turn_blocks(b, job, t, last, &block_ops, errstr, errstr_size) != 0)
		return -1;
	buf_puts(b, "]}");
	return 0;
}

/* tools and tool_choice: the job's tools, then the answer tool. */
static void put_tools(struct buf *b, const struct job *job, const struct provider_plan *plan)
{
	static const struct provider_tool_shape shape = {"", ",\"input_schema\":", "}"};
	const char *name;
	if (!json_array_size(job->tools) && !plan->answer_tool)
		return;
	buf_puts(b, ",\"tools\":[");
	provider_buf_tool_list(b, job, true, plan->answer_tool, &shape);
	buf_puts(b, "]");
	switch (provider_plan_choice(job, plan, json_array_size(job->tools) > 0, &name)) {
	case PROVIDER_CHOICE_UNSET: break;
	case PROVIDER_CHOICE_AUTO: buf_puts(b, ",\"tool_choice\":{\"type\":\"auto\"}"); break;
	case PROVIDER_CHOICE_NONE: buf_puts(b, ",\"tool_choice\":{\"type\":\"none\"}"); break;
	case PROVIDER_CHOICE_ANY: buf_puts(b, ",\"tool_choice\":{\"type\":\"any\"}"); break;
	case PROVIDER_CHOICE_TOOL:
		buf_puts(b, ",\"tool_choice\":{\"type\":\"tool\",\"name\":");
		buf_json_str(b, name, strlen(name));
		buf_puts(b, "}");
		break;
	}
}

static int anthropic_build_request(const struct provider_conf *p, const struct model_conf *m,
                                   const struct job *job, int64_t max_tokens,
                                   struct http_request *req, char *errstr, size_t errstr_size)
{
	struct buf *b = &req->body;
	struct buf system = {0};
	struct provider_turn turn, next;
	struct provider_plan plan;
	size_t pos = 0;
	int rc = -1;

	if (provider_plan_make("anthropic", m, job, true, &plan, errstr, errstr_size) != 0)
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
	buf_printf(b, ",\"max_tokens\":%lld",
	           (long long)(provider_max_tokens(m, max_tokens) + plan.thinking));
	if (plan.thinking)
		buf_printf(b, ",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":%lld}",
		           (long long)plan.thinking);

	provider_buf_system_plan(&system, job, &plan);
	if (system.len) {
		buf_puts(b, ",\"system\":");
		buf_json_str(b, system.data, system.len);
	}

	buf_puts(b, ",\"messages\":[");
	for (bool first = true;; first = false) {
		bool more = provider_next_turn(job, &pos, &next);
		if (!first)
			buf_puts(b, ",");
		if (put_turn(b, job, &turn, !more, errstr, errstr_size) != 0)
			goto out;
		if (!more)
			break;
		turn = next;
	}
	buf_puts(b, "]");

	/* Thinking takes no temperature but 1 and no top_p below 0.95: both
	 * are left out. */
	if (job->has_temperature && !plan.thinking)
		buf_printf(b, ",\"temperature\":%.17g",
		           job->temperature > 1 ? 1.0 : job->temperature);
	if (job->has_top_p && !plan.thinking)
		buf_printf(b, ",\"top_p\":%.17g", job->top_p);
	provider_buf_stop_array(b, ",\"stop_sequences\":", job->stop);
	put_tools(b, job, &plan);
	if (plan.native) {
		buf_puts(b, ",\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":");
		provider_buf_schema(b, job->schema, SCHEMA_ANTHROPIC);
		buf_puts(b, "}}");
	}
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
		return FINISH_REFUSAL;
	return FINISH_OTHER; /* pause_turn, and whatever comes next */
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

	provider_set_error_of(out, status, root != NULL, type, msg, msg ? strlen(msg) : 0);
	return cls;
}

/* A content block: text, or tool_use {id, name, input}; thinking,
 * redacted_thinking, server tool results, ... are neither. */
static void read_block(const struct jval *block, struct provider_answer_block *out)
{
	const struct jval *type = jv_get(block, "type");
	if (jv_str_eq(type, "text"))
		out->text = jv_get(block, "text");
	if (!jv_str_eq(type, "tool_use"))
		return;
	out->tool_use = true;
	out->id = jv_get(block, "id");
	out->name = jv_get(block, "name");
	out->input = jv_get(block, "input");
}

/* A 2xx body that is an error ({"type":"error","error":{...}}). */
static bool is_error(struct jdoc *d, const struct jval *root, struct completion *out)
{
	const struct jval *err = jv_get(root, "error");
	if (!is(str_member(d, root, "type"), "error") && (!err || jv_is_null(err)))
		return false;
	const char *msg = str_member(d, err, "message");
	provider_set_error(out, "error in a 2xx response: %s", msg ? msg : "(no message)");
	return true;
}

static const struct provider_block_format answer_format = {
        .usage = {"usage", "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                  "output_tokens"},
        .error = anthropic_error,
        .content = {"content", NULL},
        .stop = "stop_reason",
        .read = read_block,
        .map_stop = map_stop_reason,
        .is_error = is_error,
};

static enum response_class anthropic_parse_response(const struct model_conf *m, long status,
                                                    const char *body, size_t len,
                                                    struct completion *out)
{
	(void)m;
	return provider_parse_blocks(&answer_format, status, body, len, out);
}

/* ---------------------------------------------------------------- batch (SPEC §14)
 *
 * Submit: POST {base_url}/messages/batches {requests: [{custom_id, params}]},
 *         params the body of a Messages call.
 * Poll:   GET {base_url}/messages/batches/{id}; cancel: POST .../{id}/cancel;
 *         list: GET {base_url}/messages/batches?limit=100&after_id={last_id},
 *         {data, has_more, last_id}.
 * Results: GET the batch's results_url, lines {custom_id, result}: result
 *         succeeded {message}, errored {error: an error body}, canceled,
 *         expired. A batch carries no token: the orphan search reads it off
 *         its results' custom_ids.
 *
 * processing_status is in_progress, canceling or ended (whatever each
 * request became: request_counts and the lines say). results_url is used
 * when it is on base_url's host (the key goes nowhere else), else the
 * documented {base_url}/messages/batches/{id}/results. */

static void anthropic_put_item(struct buf *items, size_t index, const char *custom_id,
                               const char *body, size_t len)
{
	buf_puts(items, index ? ",{\"custom_id\":" : "{\"custom_id\":");
	buf_json_str(items, custom_id, strlen(custom_id));
	buf_puts(items, ",\"params\":");
	buf_append(items, body, len);
	buf_puts(items, "}");
}

static void anthropic_submit_request(const struct provider_conf *p,
                                     const struct provider_batch_submission *s, int step,
                                     const char *prev_id, struct http_request *req)
{
	(void)step;
	(void)prev_id;
	buf_printf(&req->url, "%s/messages/batches", p->base_url);
	provider_batch_request_end(p, HTTP_POST, req);
	http_request_add_header(req, "content-type: application/json");
	buf_puts(&req->body, "{\"requests\":[");
	buf_append(&req->body, s->items.data, s->items.len);
	buf_puts(&req->body, "]}");
}

static int anthropic_batch_of(const struct provider_conf *p, struct jdoc *d, const struct jval *obj,
                              struct provider_batch_status *st)
{
	static const char *const kinds[] = {"processing", "succeeded", "errored", "canceled",
	                                    "expired"};
	const struct jval *id = jv_get(obj, "id");
	const struct jval *counts = jv_get(obj, "request_counts");
	const char *status = jdoc_str(d, jv_get(obj, "processing_status"));
	const char *url = jdoc_str(d, jv_get(obj, "results_url"));
	int64_t n[5];

	if (!jv_is_string(id) || id->len == 0) {
		provider_batch_set_error(&st->error_message, "the batch has no id");
		return -1;
	}
	st->id = xstrdup(jdoc_str(d, id));
	if (is(status, "in_progress")) {
		st->state = BATCH_IN_PROGRESS;
	} else if (is(status, "canceling")) {
		st->state = BATCH_CANCELING;
	} else if (is(status, "ended")) {
		st->state = BATCH_ENDED;
	} else {
		provider_batch_set_error(&st->error_message,
		                         "batch %s: unknown processing_status \"%s\"", st->id,
		                         status ? status : "(none)");
		return -1;
	}
	for (size_t i = 0; i < 5; i++) {
		if (jv_count(counts, kinds[i], &n[i]) < 0) {
			provider_batch_set_error(&st->error_message,
			                         "batch %s: malformed request_counts", st->id);
			return -1;
		}
	}
	st->total = n[0] + n[1] + n[2] + n[3] + n[4];
	st->done = n[1];
	st->failed = n[2] + n[3] + n[4];
	st->created_ms = provider_batch_time_ms(jv_get(obj, "created_at"));
	if (url && provider_batch_add_results_url(p, url, st) != 0) {
		struct buf b = {0};
		provider_batch_url(p, st->id, "/results", &b);
		st->results[st->n_results++] = buf_take(&b);
	}
	return 0;
}

static enum provider_batch_outcome anthropic_parse_result(const struct model_conf *m,
                                                          const char *line, size_t len,
                                                          struct provider_batch_result *out)
{
	struct jdoc doc;
	if (provider_batch_line_open(&doc, line, len, out) != 0)
		goto out;
	const struct jval *root = jdoc_root(&doc);
	const struct jval *result = jv_get(root, "result");
	const struct jval *err = jv_get(result, "error");
	const char *type = jdoc_str(&doc, jv_get(result, "type"));
	provider_batch_take_custom_id(out, jv_get(root, "custom_id"));
	if (!out->custom_id)
		provider_batch_outcome(out, BATCH_LINE_INVALID, "the result has no custom_id");
	else if (is(type, "succeeded"))
		provider_batch_answered(&provider_anthropic, m, 200, jv_get(result, "message"),
		                        out);
	else if (is(type, "errored"))
		/* An error body {"type":"error","error":{type, message}}, or its
		 * inner error alone. */
		provider_batch_errored(&provider_anthropic, 500, err,
		                       !jv_is_object(jv_get(err, "error")), out);
	else if (is(type, "canceled"))
		provider_batch_outcome(out, BATCH_LINE_CANCELED, "the batch was canceled first");
	else if (is(type, "expired"))
		provider_batch_outcome(out, BATCH_LINE_EXPIRED, "the batch expired first");
	else
		provider_batch_outcome(out, BATCH_LINE_INVALID, "unknown result type \"%s\"",
		                       type ? type : "(none)");
out:
	jdoc_free(&doc);
	return out->outcome;
}

static const struct provider_batch anthropic_batch = {
        .max_requests = 100000, /* Anthropic: per batch */
        .max_bytes = 256000000, /* Anthropic: per batch (256 MB) */
        .submit_steps = 1,
        .key_header = "x-api-key",
        .version_header = "anthropic-version: " ANTHROPIC_VERSION,
        .batches_path = "/messages/batches",
        .cancel_suffix = "/cancel",
        .list_query = "?limit=100",
        .cursor_param = "after_id",
        .id_key = "id",
        .list_key = "data",
        .list_cursor_key = "last_id",
        .list_more_key = "has_more",
        .put_item = anthropic_put_item,
        .submit_request = anthropic_submit_request,
        .read_batch = anthropic_batch_of,
        .parse_result = anthropic_parse_result,
};

const struct provider provider_anthropic = {
        .type = "anthropic",
        .url_parts = 1u << PART_IMAGE | 1u << PART_DOCUMENT,
        .build_request = anthropic_build_request,
        .parse_response = anthropic_parse_response,
        .batch = &anthropic_batch,
};
