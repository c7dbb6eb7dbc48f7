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
 *   is a forced tool, ANSWER_TOOL, whose input_schema is the schema (which
 *   must then be of type object, as tools take): the answer is that
 *   tool_use's input, returned as the content. The tool's name is fixed
 *   because a response does not tell what was asked; a job with a tool of
 *   that name cannot be sent.
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
 *   the model gave is the refusal (REFUSAL_TEXT when none), content "".
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

/* The tool that carries a json_schema answer on a model without structured
 * outputs. A response does not say what the request asked, so the name is
 * fixed and reserved: parse_response takes a tool_use of this name for the
 * answer. */
#define ANSWER_TOOL "promptyard_answer"
#define ANSWER_INSTRUCTION                                                                         \
	"Give your final answer by calling the tool " ANSWER_TOOL " with the answer as its input."

/* The refusal of a stop_reason "refusal" that comes without text. */
#define REFUSAL_TEXT "The model declined to answer."

/* Anthropic's least budget_tokens. */
#define THINKING_MIN 1024

/* What a job asks of one request, worked out before it is written. */
struct plan {
	bool answer_tool; /* json_schema as the forced tool ANSWER_TOOL */
	bool native;      /* json_schema as output_config.format */
	int64_t thinking; /* budget_tokens, 0: no thinking */
};

/* ---------------------------------------------------------------- request */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The content blocks of a turn, counted for the commas between them. */
struct blocks {
	struct buf *b;
	size_t n;
};

static void block_start(struct blocks *bl)
{
	if (bl->n++)
		buf_puts(bl->b, ",");
}

static void put_text_block(struct blocks *bl, const char *text, size_t len)
{
	block_start(bl);
	buf_puts(bl->b, "{\"type\":\"text\",\"text\":");
	buf_json_str(bl->b, text, len);
	buf_puts(bl->b, "}");
}

static int put_media_block(struct blocks *bl, const struct job_part *part, char *errstr,
                           size_t errstr_size)
{
	struct provider_media media;
	if (provider_part_media(provider_anthropic.url_parts, part, &media, errstr, errstr_size) !=
	    0)
		return -1;
	block_start(bl);
	buf_printf(bl->b,
	           "{\"type\":\"%s\",\"source\":", part->type == PART_IMAGE ? "image" : "document");
	if (media.url) {
		buf_puts(bl->b, "{\"type\":\"url\",\"url\":");
		buf_json_str(bl->b, media.url, strlen(media.url));
	} else {
		buf_printf(bl->b, "{\"type\":\"base64\",\"media_type\":\"%s\",\"data\":\"",
		           media.media_type);
		buf_append(bl->b, media.data, media.data_len);
		buf_puts(bl->b, "\"");
	}
	buf_puts(bl->b, "}}");
	return 0;
}

/* The blocks of one user or assistant message: its text (each non-blank
 * text part, or its content), its images and documents, then its tool
 * calls. trim: cut the trailing whitespace of its last text (a final
 * prefill). */
static int put_message_blocks(struct blocks *bl, const struct job_message *msg, bool trim,
                              char *errstr, size_t errstr_size)
{
	size_t last_text = msg->n_parts;
	for (size_t k = 0; k < msg->n_parts; k++)
		if (msg->parts[k].type == PART_TEXT &&
		    !provider_text_is_blank(msg->parts[k].text, msg->parts[k].text_len))
			last_text = k;
	for (size_t k = 0; k < msg->n_parts; k++) {
		const struct job_part *part = &msg->parts[k];
		size_t len = part->text_len;
		if (part->type != PART_TEXT) {
			if (put_media_block(bl, part, errstr, errstr_size) != 0)
				return -1;
			continue;
		}
		if (provider_text_is_blank(part->text, len))
			continue;
		while (trim && k == last_text && is_space(part->text[len - 1]))
			len--;
		put_text_block(bl, part->text, len);
	}
	if (!msg->n_parts && !provider_text_is_blank(msg->content, msg->content_len)) {
		size_t len = msg->content_len;
		while (trim && is_space(msg->content[len - 1]))
			len--;
		put_text_block(bl, msg->content, len);
	}
	for (size_t k = 0; k < json_array_size(msg->tool_calls); k++) {
		struct provider_call call;
		provider_call_at(msg, k, &call);
		block_start(bl);
		buf_puts(bl->b, "{\"type\":\"tool_use\",\"id\":");
		buf_json_str(bl->b, call.id, strlen(call.id));
		buf_puts(bl->b, ",\"name\":");
		buf_json_str(bl->b, call.name, strlen(call.name));
		buf_puts(bl->b, ",\"input\":");
		provider_buf_arguments(bl->b, call.arguments);
		buf_puts(bl->b, "}");
	}
	return 0;
}

static void put_tool_result(struct blocks *bl, const struct job_message *msg)
{
	block_start(bl);
	buf_puts(bl->b, "{\"type\":\"tool_result\",\"tool_use_id\":");
	buf_json_str(bl->b, msg->tool_call_id, strlen(msg->tool_call_id));
	if (!provider_text_is_blank(msg->content, msg->content_len)) {
		buf_puts(bl->b, ",\"content\":");
		buf_json_str(bl->b, msg->content, msg->content_len);
	}
	buf_puts(bl->b, "}");
}

/* Can the turn go as a plain string (one message of text only)? */
static bool turn_is_plain(const struct job *job, const struct provider_turn *t)
{
	const struct job_message *msg = &job->messages[t->first];
	return t->n == 1 && msg->role != ROLE_TOOL && !msg->tool_calls && msg->n_parts == 0;
}

/* Appends one turn; last: it is the final turn of the conversation. The
 * tool results of a user turn come first: the API wants them before any
 * other block. */
static int put_turn(struct buf *b, const struct job *job, const struct provider_turn *t, bool last,
                    char *errstr, size_t errstr_size)
{
	struct blocks bl = {.b = b};
	bool prefill = last && t->role == ROLE_ASSISTANT;
	buf_printf(b, "{\"role\":\"%s\",\"content\":", t->role == ROLE_USER ? "user" : "assistant");
	if (turn_is_plain(job, t)) {
		const struct job_message *msg = &job->messages[t->first];
		size_t len = msg->content_len;
		while (prefill && is_space(msg->content[len - 1]))
			len--; /* not blank: something is left */
		buf_json_str(b, msg->content, len);
		buf_puts(b, "}");
		return 0;
	}
	buf_puts(b, "[");
	for (size_t i = t->first; i < t->end; i++)
		if (job->messages[i].role == ROLE_TOOL && provider_turn_takes(t, &job->messages[i]))
			put_tool_result(&bl, &job->messages[i]);
	size_t last_msg = t->first;
	for (size_t i = t->first; i < t->end; i++)
		if (provider_turn_takes(t, &job->messages[i]))
			last_msg = i;
	for (size_t i = t->first; i < t->end; i++) {
		const struct job_message *msg = &job->messages[i];
		if (msg->role == ROLE_TOOL || !provider_turn_takes(t, msg))
			continue;
		bool trim = prefill && i == last_msg && !msg->tool_calls;
		if (put_message_blocks(&bl, msg, trim, errstr, errstr_size) != 0)
			return -1;
	}
	buf_puts(b, "]}");
	return 0;
}

/* Did the conversation's last assistant turn make tool calls? With
 * thinking on, Anthropic wants that turn to start with the thinking block
 * that preceded the calls, which a job cannot carry. */
static bool ends_in_tool_calls(const struct job *job)
{
	for (size_t i = job->n_messages; i-- > 0;)
		if (job->messages[i].role == ROLE_ASSISTANT)
			return job->messages[i].tool_calls != NULL;
	return false;
}

/* Works out the plan, or fails with errstr set. */
static int make_plan(const struct model_conf *m, const struct job *job, struct plan *plan,
                     char *errstr, size_t errstr_size)
{
	memset(plan, 0, sizeof *plan);
	if (job->format == FORMAT_JSON_SCHEMA) {
		plan->native = m->structured_outputs;
		plan->answer_tool = !m->structured_outputs;
	}
	if (job->effort != EFFORT_NONE && !ends_in_tool_calls(job))
		plan->thinking = provider_thinking_budget(m, job);
	if (plan->thinking && plan->thinking < THINKING_MIN) {
		snprintf(errstr, errstr_size,
		         "anthropic: thinking_budget_%s of %s is %lld, below Anthropic's least "
		         "budget of %d tokens",
		         reasoning_effort_name(job->effort), m->name, (long long)plan->thinking,
		         THINKING_MIN);
		return -1;
	}
	if (plan->thinking && (job->tool_choice == TOOL_CHOICE_REQUIRED ||
	                       job->tool_choice == TOOL_CHOICE_FUNCTION)) {
		snprintf(errstr, errstr_size,
		         "anthropic: tool_choice \"required\" or a named function cannot go with "
		         "reasoning_effort (with thinking on, Anthropic takes only auto and none)");
		return -1;
	}
	if (plan->answer_tool) {
		const json_t *type = json_object_get(job->schema, "type");
		if (!json_is_string(type) || strcmp(json_string_value(type), "object") != 0) {
			snprintf(errstr, errstr_size,
			         "anthropic: %s has no structured_outputs, and a tool takes only a "
			         "schema of type object",
			         m->name);
			return -1;
		}
	}
	/* Reserved whatever the job asks: the answer would be taken for it. */
	for (size_t i = 0; i < json_array_size(job->tools); i++) {
		struct provider_tool tool;
		provider_tool_at(job, i, &tool);
		if (strcmp(tool.name, ANSWER_TOOL) == 0) {
			snprintf(errstr, errstr_size,
			         "anthropic: tools[%zu] is named " ANSWER_TOOL
			         ", the name this format keeps for a json_schema answer",
			         i);
			return -1;
		}
	}
	return 0;
}

/* tool_choice. With the answer tool the model must call a tool: the answer,
 * or one of the job's when the job allows them. Thinking takes only auto
 * (make_plan lets no other choice through): the system prompt then asks
 * for the answer tool. */
static void put_tool_choice(struct buf *b, const struct job *job, const struct plan *plan,
                            bool job_tools)
{
	const char *type = NULL, *name = NULL;
	switch (job->tool_choice) {
	case TOOL_CHOICE_UNSET: break;
	case TOOL_CHOICE_AUTO: type = "auto"; break;
	case TOOL_CHOICE_NONE: type = "none"; break;
	case TOOL_CHOICE_REQUIRED: type = "any"; break;
	case TOOL_CHOICE_FUNCTION: name = job->tool_choice_name; break;
	}
	if (plan->answer_tool && !name) {
		bool only_answer = !job_tools || job->tool_choice == TOOL_CHOICE_NONE;
		name = only_answer ? ANSWER_TOOL : NULL;
		type = only_answer ? NULL : "any";
	}
	if (plan->answer_tool && plan->thinking) {
		name = NULL;
		type = "auto";
	}
	if (name) {
		buf_puts(b, ",\"tool_choice\":{\"type\":\"tool\",\"name\":");
		buf_json_str(b, name, strlen(name));
		buf_puts(b, "}");
	} else if (type) {
		buf_printf(b, ",\"tool_choice\":{\"type\":\"%s\"}", type);
	}
}

/* tools: the job's, then the answer tool. */
static void put_tools(struct buf *b, const struct job *job, const struct plan *plan)
{
	size_t n = json_array_size(job->tools);
	if (!n && !plan->answer_tool)
		return;
	buf_puts(b, ",\"tools\":[");
	for (size_t i = 0; i < n; i++) {
		struct provider_tool tool;
		provider_buf_tool_open(b, job, i, &tool);
		buf_puts(b, ",\"input_schema\":");
		if (tool.parameters)
			provider_buf_json(b, tool.parameters);
		else
			buf_puts(b, "{\"type\":\"object\",\"properties\":{}}");
		buf_puts(b, "}");
	}
	if (plan->answer_tool) {
		struct buf desc = {0};
		buf_printf(&desc, "Give the answer: the %s object.", job->schema_name);
		buf_puts(b, n ? ",{\"name\":\"" ANSWER_TOOL "\",\"description\":"
		              : "{\"name\":\"" ANSWER_TOOL "\",\"description\":");
		buf_json_str(b, desc.data, desc.len);
		buf_puts(b, ",\"input_schema\":");
		provider_buf_json(b, job->schema);
		buf_puts(b, "}");
		buf_free(&desc);
	}
	buf_puts(b, "]");

	put_tool_choice(b, job, plan, n > 0);
}

static int anthropic_build_request(const struct provider_conf *p, const struct model_conf *m,
                                   const struct job *job, int64_t max_tokens,
                                   struct http_request *req, char *errstr, size_t errstr_size)
{
	struct buf *b = &req->body;
	struct buf system = {0};
	struct provider_turn turn, next;
	struct plan plan;
	size_t pos = 0;
	int rc = -1;

	if (make_plan(m, job, &plan, errstr, errstr_size) != 0)
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

	provider_buf_system(&system, job);
	const char *instruction = job->format == FORMAT_JSON_OBJECT ? PROVIDER_JSON_INSTRUCTION
	                          : plan.answer_tool                ? ANSWER_INSTRUCTION
	                                                            : NULL;
	if (instruction) {
		if (system.len)
			buf_puts(&system, "\n\n");
		buf_puts(&system, instruction);
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

/* Joins the text blocks of content into out->content and takes its
 * tool_use blocks: the answer tool's input is the content (the text beside
 * it is left out), any other is a tool call. Sets *answered when the answer
 * tool was called. Returns -1 when content is not an array of well-formed
 * blocks. */
static int take_content(const struct jval *content, struct completion *out, bool *answered)
{
	struct buf b = {0}, answer = {0};
	size_t i;
	const struct jval *block;
	if (!jv_is_array(content))
		return -1;
	jv_array_foreach(content, i, block)
	{
		const struct jval *type = jv_get(block, "type");
		if (!jv_is_object(block))
			goto fail;
		if (jv_str_eq(type, "tool_use")) {
			const struct jval *name = jv_get(block, "name"),
			                  *input = jv_get(block, "input");
			if (jv_str_eq(name, ANSWER_TOOL) && jv_is_object(input) && !*answered) {
				provider_buf_compact(&answer, input);
				*answered = true;
			} else if (!jv_is_object(input) ||
			           completion_take_tool_call(out, jv_get(block, "id"), name,
			                                     input) != 0) {
				goto fail;
			}
			continue;
		}
		if (!jv_str_eq(type, "text"))
			continue; /* thinking, redacted_thinking, server tool results, ... */
		const struct jval *text = jv_get(block, "text");
		if (!jv_is_string(text))
			goto fail;
		jv_buf_text(&b, text);
	}
	if (*answered) {
		buf_free(&b);
		b = answer;
		answer = (struct buf){0};
	}
	out->content = b.data ? buf_take(&b) : xstrdup("");
	return 0;
fail:
	buf_free(&b);
	buf_free(&answer);
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
	bool answered = false;

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
	if (take_content(jv_get(root, "content"), out, &answered) != 0) {
		provider_set_error(out, "content is not an array of content blocks");
		goto out;
	}
	out->finish_reason = map_stop_reason(jv_cstr(stop, word, sizeof word));
	if (answered && out->finish_reason == FINISH_TOOL_CALLS && out->n_tool_calls == 0)
		out->finish_reason = FINISH_STOP; /* the answer came, as content */
	if (out->finish_reason == FINISH_REFUSAL) {
		bool said = out->content[0] != '\0';
		out->refusal = said ? out->content : xstrdup(REFUSAL_TEXT);
		if (said)
			out->content = xstrdup("");
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
