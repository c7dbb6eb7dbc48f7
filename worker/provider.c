/* provider: what the wire formats share (their registry is
 * provider_registry.c; a job's JSON Schema in each one's dialect is
 * provider_schema.c). */
#include "provider.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *finish_reason_name(enum finish_reason f)
{
	static const char *names[] = {"stop",       "length", "content_filter",
	                              "tool_calls", "other",  "refusal"};
	return (unsigned)f < 6 ? names[f] : "other";
}

void provider_request_common(const struct provider_conf *p, struct http_request *req,
                             const char *default_name)
{
	const char *name = p->auth_header ? p->auth_header : default_name;
	if (p->api_key) {
		/* The key is appended, never formatted (http_request_add_secret_header). */
		struct buf prefix = {0};
		buf_puts(&prefix, name);
		buf_puts(&prefix, strcasecmp(name, "Authorization") == 0 ? ": Bearer " : ": ");
		http_request_add_secret_header(req, prefix.data, p->api_key);
		buf_free(&prefix);
	}
	/* Extra lines may hold a ${NAME} secret. */
	for (size_t i = 0; i < p->n_headers; i++)
		http_request_add_secret_header(req, "", p->headers[i]);
	if (p->query)
		buf_printf(&req->url, "%c%s", memchr(req->url.data, '?', req->url.len) ? '&' : '?',
		           p->query);
}

void completion_add_tool_call(struct completion *c, const char *id, const char *name,
                              const char *arguments, size_t arguments_len)
{
	c->tool_calls = xrealloc(c->tool_calls, (c->n_tool_calls + 1) * sizeof *c->tool_calls);
	struct completion_tool_call *t = &c->tool_calls[c->n_tool_calls++];
	char made[32];
	if (!id || !*id) {
		snprintf(made, sizeof made, "call_%zu", c->n_tool_calls);
		id = made;
	}
	t->id = xstrdup(id);
	t->name = xstrdup(name);
	t->arguments = arguments ? xstrndup(arguments, arguments_len) : xstrdup("{}");
}

void provider_buf_compact(struct buf *b, const struct jval *v)
{
	const char *p = v->s, *end = v->s + v->len, *run = p;
	bool in_string = false;
	for (; p < end; p++) {
		if (in_string) {
			if (*p == '\\')
				p++; /* the escaped character, whatever it is */
			else if (*p == '"')
				in_string = false;
		} else if (*p == '"') {
			in_string = true;
		} else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
			buf_append(b, run, (size_t)(p - run));
			run = p + 1;
		}
	}
	buf_append(b, run, (size_t)(end - run));
}

int completion_take_tool_call(struct completion *c, const struct jval *id, const struct jval *name,
                              const struct jval *args)
{
	struct buf text = {0}, n = {0}, i = {0};
	if ((id && !jv_is_string(id) && !jv_is_null(id)) || !jv_is_string(name) || name->len == 0)
		return -1;
	if (jv_is_string(args))
		jv_buf_text(&text, args);
	else if (jv_is_object(args))
		provider_buf_compact(&text, args);
	else if (args && !jv_is_null(args))
		return -1;
	jv_buf_text(&n, name);
	jv_buf_text(&i, id);
	/* OpenAI sends "" for a call without arguments. */
	if (text.len == 0)
		buf_puts(&text, "{}");
	completion_add_tool_call(c, i.data, n.data, text.data, text.len);
	buf_free(&n);
	buf_free(&i);
	buf_free(&text);
	return 0;
}

void completion_clear(struct completion *c)
{
	for (size_t i = 0; i < c->n_tool_calls; i++) {
		free(c->tool_calls[i].id);
		free(c->tool_calls[i].name);
		free(c->tool_calls[i].arguments);
	}
	free(c->tool_calls);
	free(c->refusal);
	free(c->content);
	free(c->error_message);
	memset(c, 0, sizeof *c);
}

/* ---------------------------------------------------------------- classes */

/* 2xx is OK; 401/403 are the key's fault; 408 (request timeout), 409
 * (conflict: OpenAI's and Anthropic's own SDKs retry both), 425 (too early),
 * 429, every 5xx and Anthropic's 529 are worth another try. A status outside 100-599 (0 from a
 * transport that never saw one, or garbage) is retryable too: nothing says
 * the job is at fault. Every other status, 3xx included (a base_url that
 * redirects is a configuration to fix, not a request to repeat), is a
 * refusal of this request. The wire formats refine this with the body. */
enum response_class provider_class_of_status(long status)
{
	if (status >= 200 && status < 300)
		return RESPONSE_OK;
	if (status < 100 || status > 599)
		return RESPONSE_RETRYABLE;
	switch (status) {
	case 401:
	case 403: return RESPONSE_AUTH;
	case 408:
	case 409:
	case 425:
	case 429: return RESPONSE_RETRYABLE;
	}
	if (status >= 500)
		return RESPONSE_RETRYABLE;
	return RESPONSE_REJECTED;
}

/* Case-insensitive substring search. */
static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

/* The phrases each provider uses when the prompt (plus the output limit) does
 * not fit the model, as they read in their error bodies:
 *   OpenAI, DeepSeek, vLLM: "This model's maximum context length is 128000
 *     tokens. However, your messages resulted in ..." / context_length_exceeded
 *   Groq: "... Please reduce the length of the messages or completion."
 *   Mistral: "Prompt contains 40000 tokens ..., too large for model with 32768
 *     maximum context length"
 *   Anthropic: "prompt is too long: 208310 tokens > 200000 maximum", and "input
 *     length and `max_tokens` exceed context limit: 198000 + 8192 > 200000"
 *   Gemini: "The input token count (1234567) exceeds the maximum number of
 *     tokens allowed (1048576)."
 *   TGI (Together, HF endpoints): "`inputs` tokens + `max_new_tokens` must be <= 8193"
 * The caller still looks at the status first: a 429 "too many tokens per
 * minute" is a rate limit, not an overflow. */
bool provider_text_is_context_overflow(const char *text)
{
	static const char *const marks[] = {
	        "context_length_exceeded",
	        "context length",
	        "context window",
	        "maximum context",
	        "exceed context limit",
	        "prompt is too long",
	        "too many tokens",
	        "input token count",
	        "exceeds the maximum number of tokens",
	        "reduce the length",
	        "string_above_max_length",
	        "tokens + `max_new_tokens`",
	};
	if (!text)
		return false;
	for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
		if (contains_ci(text, marks[i]))
			return true;
	return false;
}

/* ---------------------------------------------------------------- requests */

size_t provider_buf_stop_array(struct buf *b, const char *key_prefix, const json_t *stop)
{
	size_t n = 0;
	size_t count = json_is_array(stop) ? json_array_size(stop) : 1;
	for (size_t i = 0; i < count; i++) {
		const json_t *s = json_is_array(stop) ? json_array_get(stop, i) : stop;
		if (!json_is_string(s) || json_string_length(s) == 0)
			continue;
		buf_puts(b, n ? "," : key_prefix);
		if (n == 0)
			buf_puts(b, "[");
		buf_json_str(b, json_string_value(s), json_string_length(s));
		n++;
	}
	if (n)
		buf_puts(b, "]");
	return n;
}

int64_t provider_max_tokens(const struct model_conf *m, int64_t max_tokens)
{
	if (max_tokens > 0)
		return max_tokens;
	if (m && m->default_max_tokens > 0)
		return m->default_max_tokens;
	return 1024;
}

int64_t provider_thinking_budget(const struct model_conf *m, const struct job *job)
{
	if (job->effort < EFFORT_LOW || job->effort > EFFORT_HIGH)
		return 0;
	return m->thinking_budget[job->effort];
}

int64_t provider_output_limit(const struct model_conf *m, const struct job *job, int64_t max_tokens)
{
	return provider_max_tokens(m, max_tokens) + provider_thinking_budget(m, job);
}

int provider_part_media(unsigned url_parts, const struct job_part *part, struct provider_media *out,
                        char *errstr, size_t errstr_size)
{
	memset(out, 0, sizeof *out);
	if (part->url && (url_parts & (1u << part->type))) {
		out->url = part->url;
		return 0;
	}
	if (part->url && !part->fetched) {
		snprintf(errstr, errstr_size,
		         "messages[%zu].content[%zu]: this format takes no %s by URL, and the "
		         "worker has not fetched it",
		         part->msg, part->index, part->type == PART_IMAGE ? "image" : "document");
		return -1;
	}
	out->data = part->url ? part->fetched : part->data;
	out->data_len = part->url ? part->fetched_len : part->data_len;
	out->media_type = part->media_type;
	if (!out->data || !out->media_type) {
		snprintf(errstr, errstr_size, "messages[%zu].content[%zu]: no bytes to send",
		         part->msg, part->index);
		return -1;
	}
	return 0;
}

/* Base64 and the media types need no JSON escape: written as they are,
 * without a copy of what may be megabytes. */
void provider_buf_data_url(struct buf *b, const struct provider_media *media)
{
	buf_printf(b, "\"data:%s;base64,", media->media_type);
	buf_append(b, media->data, media->data_len);
	buf_puts(b, "\"");
}

void provider_buf_path_segment(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			buf_append(b, p, 1);
		} else {
			char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			buf_append(b, esc, 3);
		}
	}
}

static int dump_to_buf(const char *chunk, size_t size, void *data)
{
	buf_append(data, chunk, size);
	return 0;
}

void provider_buf_json(struct buf *b, const json_t *v)
{
	if (json_dump_callback(v, dump_to_buf, b,
	                       JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) != 0)
		buf_puts(b, "null");
}

void provider_tool_at(const struct job *job, size_t i, struct provider_tool *out)
{
	const json_t *f = json_object_get(json_array_get(job->tools, i), "function");
	out->name = json_string_value(json_object_get(f, "name"));
	out->description = json_string_value(json_object_get(f, "description"));
	out->parameters = json_object_get(f, "parameters");
}

/* {"name":N and ,"description":D when the tool has one. */
static void put_tool_head(struct buf *b, const struct provider_tool *tool)
{
	buf_puts(b, "{\"name\":");
	buf_json_str(b, tool->name, strlen(tool->name));
	if (tool->description) {
		buf_puts(b, ",\"description\":");
		buf_json_str(b, tool->description, strlen(tool->description));
	}
}

void provider_buf_tool_open(struct buf *b, const struct job *job, size_t i,
                            struct provider_tool *out)
{
	provider_tool_at(job, i, out);
	if (i)
		buf_puts(b, ",");
	put_tool_head(b, out);
}

void provider_call_at(const struct job_message *msg, size_t k, struct provider_call *out)
{
	const json_t *call = json_array_get(msg->tool_calls, k);
	const json_t *f = json_object_get(call, "function");
	out->id = json_string_value(json_object_get(call, "id"));
	out->name = json_string_value(json_object_get(f, "name"));
	out->arguments = json_string_value(json_object_get(f, "arguments"));
}

void provider_buf_arguments(struct buf *b, const char *arguments)
{
	json_t *args = arguments ? json_loads(arguments, 0, NULL) : NULL;
	if (json_is_object(args))
		provider_buf_json(b, args);
	else
		buf_puts(b, "{}");
	json_decref(args);
}

/* ---------------------------------------------------------------- turns */

/* ASCII whitespace only: the answer must not depend on the locale. */
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool provider_text_is_blank(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_space(text[i]))
			return false;
	return true;
}

bool provider_message_is_blank(const struct job_message *msg)
{
	if (msg->role == ROLE_TOOL || msg->tool_calls)
		return false;
	for (size_t i = 0; i < msg->n_parts; i++)
		if (msg->parts[i].type != PART_TEXT)
			return false;
	return provider_text_is_blank(msg->content, msg->content_len);
}

size_t provider_buf_system(struct buf *b, const struct job *job)
{
	size_t n = 0;
	for (size_t i = 0; i < job->n_messages; i++) {
		const struct job_message *msg = &job->messages[i];
		if (msg->role != ROLE_SYSTEM || provider_message_is_blank(msg))
			continue;
		if (n++)
			buf_puts(b, "\n\n");
		buf_append(b, msg->content, msg->content_len);
	}
	return n;
}

/* The side a message takes: a tool result is the user's. */
static enum role side_of(enum role r)
{
	return r == ROLE_TOOL ? ROLE_USER : r;
}

bool provider_turn_takes(const struct provider_turn *t, const struct job_message *msg)
{
	return msg->role != ROLE_SYSTEM && side_of(msg->role) == t->role &&
	       !provider_message_is_blank(msg);
}

bool provider_next_turn(const struct job *job, size_t *pos, struct provider_turn *turn)
{
	size_t i = *pos;
	while (i < job->n_messages && (job->messages[i].role == ROLE_SYSTEM ||
	                               provider_message_is_blank(&job->messages[i])))
		i++;
	if (i >= job->n_messages) {
		*pos = i;
		return false;
	}
	turn->role = side_of(job->messages[i].role);
	turn->first = i;
	turn->end = i + 1;
	turn->n = 1;
	for (size_t j = i + 1; j < job->n_messages; j++) {
		const struct job_message *msg = &job->messages[j];
		if (msg->role == ROLE_SYSTEM || provider_message_is_blank(msg))
			continue;
		if (side_of(msg->role) != turn->role)
			break;
		turn->end = j + 1;
		turn->n++;
	}
	*pos = turn->end;
	return true;
}

/* ---------------------------------------------------------------- errors */

static bool is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '*';
}

/* The length of the key-looking token that starts at s (inside the text that
 * starts at start), or 0 when there is none. Keys of OpenAI and the
 * compatible servers start with "sk-" (Anthropic's with "sk-ant-"), Google's
 * with "AIza"; a provider that quotes a key back (OpenAI masks all but a few
 * characters, others may not) must not put it into a result or a log. A
 * prefix counts only at the start of a word and with 8 key characters or
 * more after it, so "task-1" and "sk-learn" stay. */
static size_t key_token_len(const char *s, const char *start)
{
	static const char *const prefixes[] = {"sk-", "AIza"};
	if (s > start && is_key_char(s[-1]))
		return 0;
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		size_t pl = strlen(prefixes[i]);
		if (strncmp(s, prefixes[i], pl) != 0)
			continue;
		size_t n = pl;
		while (is_key_char(s[n]))
			n++;
		if (n >= pl + 8)
			return n;
	}
	return 0;
}

void provider_set_error(struct completion *out, const char *fmt, ...)
{
	struct buf raw = {0}, b = {0};
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&raw, fmt, ap);
	va_end(ap);

	const char *s = raw.data ? raw.data : "";
	size_t len = raw.len;
	for (size_t i = 0; i < len && b.len < PROVIDER_ERROR_MAX;) {
		const unsigned char *p = (const unsigned char *)s + i;
		size_t k = key_token_len(s + i, s);
		if (k) {
			buf_puts(&b, "[redacted]");
			i += k;
			continue;
		}
		size_t n = utf8_seq_len(p, (const unsigned char *)s + len);
		if (n == 0) {
			buf_puts(&b, "?");
			i++;
		} else if (n == 1 && (p[0] < 0x20 || p[0] == 0x7F)) {
			buf_puts(&b, " ");
			i++;
		} else {
			if (b.len + n > PROVIDER_ERROR_MAX)
				break;
			buf_append(&b, p, n);
			i += n;
		}
	}
	if (b.len > PROVIDER_ERROR_MAX) { /* a "[redacted]" at the very end */
		b.len = PROVIDER_ERROR_MAX;
		b.data[b.len] = '\0';
	}
	free(out->error_message);
	out->error_message = b.data ? buf_take(&b) : xstrdup("");
	/* The raw text may have held a key: wipe it before the memory is reused. */
	if (raw.data)
		explicit_bzero(raw.data, raw.len);
	buf_free(&raw);
}

/* ---------------------------------------------------------------- blocks */

/* The blocks of one turn, counted for the commas between them. */
struct blocks {
	struct buf *b;
	size_t n;
};

static struct buf *block_start(struct blocks *bl)
{
	if (bl->n++)
		buf_puts(bl->b, ",");
	return bl->b;
}

/* The blocks of one user or assistant message: its text (each non-blank
 * text part, or its content), its images and documents, then its tool
 * calls. trim: cut the trailing whitespace of its last text (a final
 * prefill). */
static int put_message_blocks(struct blocks *bl, const struct job_message *msg, bool trim,
                              const struct provider_block_ops *ops, char *errstr,
                              size_t errstr_size)
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
			if (ops->media(block_start(bl), part, errstr, errstr_size) != 0)
				return -1;
			continue;
		}
		if (provider_text_is_blank(part->text, len))
			continue;
		while (trim && k == last_text && is_space(part->text[len - 1]))
			len--;
		ops->text(block_start(bl), part->text, len);
	}
	if (!msg->n_parts && !provider_text_is_blank(msg->content, msg->content_len)) {
		size_t len = msg->content_len;
		while (trim && is_space(msg->content[len - 1]))
			len--;
		ops->text(block_start(bl), msg->content, len);
	}
	for (size_t k = 0; k < json_array_size(msg->tool_calls); k++) {
		struct provider_call call;
		provider_call_at(msg, k, &call);
		ops->tool_use(block_start(bl), &call);
	}
	return 0;
}

int provider_buf_turn_blocks(struct buf *b, const struct job *job, const struct provider_turn *t,
                             bool last, const struct provider_block_ops *ops, char *errstr,
                             size_t errstr_size)
{
	struct blocks bl = {.b = b};
	bool prefill = last && t->role == ROLE_ASSISTANT;
	for (size_t i = t->first; i < t->end; i++)
		if (job->messages[i].role == ROLE_TOOL && provider_turn_takes(t, &job->messages[i]))
			ops->tool_result(block_start(&bl), &job->messages[i]);
	size_t last_msg = t->first;
	for (size_t i = t->first; i < t->end; i++)
		if (provider_turn_takes(t, &job->messages[i]))
			last_msg = i;
	for (size_t i = t->first; i < t->end; i++) {
		const struct job_message *msg = &job->messages[i];
		if (msg->role == ROLE_TOOL || !provider_turn_takes(t, msg))
			continue;
		bool trim = prefill && i == last_msg && !msg->tool_calls;
		if (put_message_blocks(&bl, msg, trim, ops, errstr, errstr_size) != 0)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- the answer tool */

/* Did the conversation's last assistant turn make tool calls? */
static bool ends_in_tool_calls(const struct job *job)
{
	for (size_t i = job->n_messages; i-- > 0;)
		if (job->messages[i].role == ROLE_ASSISTANT)
			return job->messages[i].tool_calls != NULL;
	return false;
}

int provider_plan_make(const char *fmt, const struct model_conf *m, const struct job *job,
                       bool thinking, struct provider_plan *plan, char *errstr, size_t errstr_size)
{
	memset(plan, 0, sizeof *plan);
	if (job->format == FORMAT_JSON_SCHEMA) {
		plan->native = m->structured_outputs;
		plan->answer_tool = !m->structured_outputs;
	}
	if (thinking && job->effort != EFFORT_NONE && !ends_in_tool_calls(job))
		plan->thinking = provider_thinking_budget(m, job);
	if (plan->thinking && plan->thinking < PROVIDER_THINKING_MIN) {
		snprintf(errstr, errstr_size,
		         "%s: thinking_budget_%s of %s is %lld, below Anthropic's least "
		         "budget of %d tokens",
		         fmt, reasoning_effort_name(job->effort), m->name,
		         (long long)plan->thinking, PROVIDER_THINKING_MIN);
		return -1;
	}
	if (plan->thinking && (job->tool_choice == TOOL_CHOICE_REQUIRED ||
	                       job->tool_choice == TOOL_CHOICE_FUNCTION)) {
		snprintf(errstr, errstr_size,
		         "%s: tool_choice \"required\" or a named function cannot go with "
		         "reasoning_effort (with thinking on, Anthropic takes only auto and none)",
		         fmt);
		return -1;
	}
	if (plan->answer_tool) {
		const json_t *type = json_object_get(job->schema, "type");
		if (!json_is_string(type) || strcmp(json_string_value(type), "object") != 0) {
			snprintf(errstr, errstr_size,
			         "%s: %s has no structured_outputs, and a tool takes only a "
			         "schema of type object",
			         fmt, m->name);
			return -1;
		}
	}
	/* Reserved whatever the job asks: the answer would be taken for it. */
	for (size_t i = 0; i < json_array_size(job->tools); i++) {
		struct provider_tool tool;
		provider_tool_at(job, i, &tool);
		if (strcmp(tool.name, PROVIDER_ANSWER_TOOL) == 0) {
			snprintf(errstr, errstr_size,
			         "%s: tools[%zu] is named " PROVIDER_ANSWER_TOOL
			         ", the name this format keeps for a json_schema answer",
			         fmt, i);
			return -1;
		}
	}
	return 0;
}

enum provider_choice provider_plan_choice(const struct job *job, const struct provider_plan *plan,
                                          bool job_tools, const char **name)
{
	enum provider_choice c = PROVIDER_CHOICE_UNSET;
	*name = NULL;
	switch (job->tool_choice) {
	case TOOL_CHOICE_UNSET: break;
	case TOOL_CHOICE_AUTO: c = PROVIDER_CHOICE_AUTO; break;
	case TOOL_CHOICE_NONE: c = PROVIDER_CHOICE_NONE; break;
	case TOOL_CHOICE_REQUIRED: c = PROVIDER_CHOICE_ANY; break;
	case TOOL_CHOICE_FUNCTION:
		c = PROVIDER_CHOICE_TOOL;
		*name = job->tool_choice_name;
		break;
	}
	if (plan->answer_tool && plan->thinking) {
		*name = NULL;
		return PROVIDER_CHOICE_AUTO;
	}
	if (plan->answer_tool && c != PROVIDER_CHOICE_TOOL) {
		if (!job_tools || job->tool_choice == TOOL_CHOICE_NONE) {
			*name = PROVIDER_ANSWER_TOOL;
			return PROVIDER_CHOICE_TOOL;
		}
		return PROVIDER_CHOICE_ANY;
	}
	return c;
}

void provider_buf_system_plan(struct buf *b, const struct job *job,
                              const struct provider_plan *plan)
{
	provider_buf_system(b, job);
	const char *instruction = job->format == FORMAT_JSON_OBJECT ? PROVIDER_JSON_INSTRUCTION
	                          : plan->answer_tool               ? PROVIDER_ANSWER_INSTRUCTION
	                                                            : NULL;
	if (!instruction)
		return;
	if (b->len)
		buf_puts(b, "\n\n");
	buf_puts(b, instruction);
}

size_t provider_buf_tool_list(struct buf *b, const struct job *job, bool job_tools,
                              bool answer_tool, const struct provider_tool_shape *shape)
{
	size_t n = job_tools ? json_array_size(job->tools) : 0;
	for (size_t i = 0; i < n; i++) {
		struct provider_tool tool;
		provider_tool_at(job, i, &tool);
		buf_printf(b, "%s%s", i ? "," : "", shape->open);
		put_tool_head(b, &tool);
		buf_puts(b, shape->schema);
		if (tool.parameters)
			provider_buf_json(b, tool.parameters);
		else
			buf_puts(b, "{\"type\":\"object\",\"properties\":{}}");
		buf_puts(b, shape->close);
	}
	if (!answer_tool)
		return n;
	struct buf desc = {0};
	buf_printf(&desc, "Give the answer: the %s object.", job->schema_name);
	buf_printf(b, "%s%s{\"name\":\"" PROVIDER_ANSWER_TOOL "\",\"description\":", n ? "," : "",
	           shape->open);
	buf_json_str(b, desc.data, desc.len);
	buf_puts(b, shape->schema);
	provider_buf_json(b, job->schema);
	buf_puts(b, shape->close);
	buf_free(&desc);
	return n + 1;
}

/* A tool use of an answer (see provider_take_blocks). */
static int take_tool_use(struct completion *out, struct buf *answer, bool *answered,
                         const struct provider_answer_block *blk)
{
	if (jv_str_eq(blk->name, PROVIDER_ANSWER_TOOL) && jv_is_object(blk->input) && !*answered) {
		provider_buf_compact(answer, blk->input);
		*answered = true;
		return 0;
	}
	if (!jv_is_object(blk->input))
		return -1;
	return completion_take_tool_call(out, blk->id, blk->name, blk->input);
}

/* Joins the texts of the blocks of content into out->content and takes
 * its tool uses (see provider_read_block_answer). Returns -1 (content left
 * unset) when a block is malformed. */
static int take_blocks(const struct jval *content, provider_block_reader *read,
                       struct completion *out, bool *answered)
{
	struct buf text = {0}, answer = {0};
	size_t i;
	const struct jval *block;
	if (!jv_is_array(content))
		return -1;
	jv_array_foreach(content, i, block)
	{
		struct provider_answer_block blk = {0};
		if (!jv_is_object(block))
			goto fail;
		read(block, &blk);
		if (blk.tool_use && take_tool_use(out, &answer, answered, &blk) != 0)
			goto fail;
		if (blk.text && !jv_is_string(blk.text))
			goto fail;
		jv_buf_text(&text, blk.text); /* nothing for NULL */
	}
	struct buf *keep = *answered ? &answer : &text;
	free(out->content);
	out->content = keep->data ? buf_take(keep) : xstrdup("");
	buf_free(&text);
	buf_free(&answer);
	return 0;
fail:
	buf_free(&text);
	buf_free(&answer);
	return -1;
}

/* Reads the usage of format f from root. Returns 0, or -1 (nothing set)
 * when there is no well-formed usage. */
static int read_block_usage(const struct provider_block_format *f, const struct jval *root,
                            struct completion *out)
{
	const struct jval *usage = jv_get(root, f->usage[0]);
	int64_t in, read, write, outp;
	if (!jv_is_object(usage) || !jv_get(usage, f->usage[1]))
		return -1;
	if (jv_count(usage, f->usage[1], &in) < 0 || jv_count(usage, f->usage[2], &read) < 0 ||
	    jv_count(usage, f->usage[3], &write) < 0 || jv_count(usage, f->usage[4], &outp) < 0)
		return -1;
	out->usage.input_tokens = in + read + write;
	out->usage.cached_input_tokens = read;
	out->usage.cache_write_tokens = write;
	out->usage.output_tokens = outp;
	out->has_usage = true;
	return 0;
}

/* A 2xx answer of format f (see provider_parse_blocks). */
static enum response_class read_block_answer(const struct provider_block_format *f, struct jdoc *d,
                                             bool usage_ok, struct completion *out)
{
	const struct jval *root = jdoc_root(d), *content = root, *stop;
	bool answered = false;
	char word[64];
	if (!jv_is_object(root)) {
		provider_set_error(out, root ? "response body is not a JSON object"
		                             : "response body is not JSON");
		return RESPONSE_INVALID;
	}
	if (f->is_error && f->is_error(d, root, out))
		return RESPONSE_INVALID;
	if (!usage_ok) {
		provider_set_error(out, "response has no valid usage");
		return RESPONSE_INVALID;
	}
	stop = jv_get(root, f->stop);
	if (stop && !jv_is_string(stop) && !jv_is_null(stop)) {
		provider_set_error(out, "%s is not a string", f->stop);
		return RESPONSE_INVALID;
	}
	for (size_t i = 0; f->content[i]; i++)
		content = jv_get(content, f->content[i]);
	if (take_blocks(content, f->read, out, &answered) != 0) {
		struct buf path = {0};
		for (size_t i = 0; f->content[i]; i++)
			buf_printf(&path, "%s%s", i ? "." : "", f->content[i]);
		provider_set_error(out, "%s is not an array of content blocks", path.data);
		buf_free(&path);
		return RESPONSE_INVALID;
	}
	out->finish_reason = f->map_stop(jv_cstr(stop, word, sizeof word));
	if (answered && out->finish_reason == FINISH_TOOL_CALLS && out->n_tool_calls == 0)
		out->finish_reason = FINISH_STOP; /* the answer came, as content */
	if (out->finish_reason == FINISH_REFUSAL) {
		bool said = out->content[0] != '\0';
		out->refusal = said ? out->content : xstrdup("The model declined to answer.");
		if (said)
			out->content = xstrdup("");
	}
	return RESPONSE_OK;
}

enum response_class provider_parse_blocks(const struct provider_block_format *f, long status,
                                          const char *body, size_t len, struct completion *out)
{
	enum response_class cls = provider_class_of_status(status);
	struct jdoc doc;
	jdoc_parse(&doc, body, len);
	bool usage_ok = read_block_usage(f, jdoc_root(&doc), out) == 0;
	if (!usage_ok)
		provider_usage_unreadable(out, jv_get(jdoc_root(&doc), f->usage[0]));
	if (cls != RESPONSE_OK)
		cls = f->error(status, cls, &doc, out);
	else
		cls = read_block_answer(f, &doc, usage_ok, out);
	return provider_parse_end(&doc, out, cls);
}

void provider_buf_tool_use(struct buf *b, const struct provider_call *call, const char *open,
                           const char *close)
{
	buf_puts(b, open);
	buf_json_str(b, call->id, strlen(call->id));
	buf_puts(b, ",\"name\":");
	buf_json_str(b, call->name, strlen(call->name));
	buf_puts(b, ",\"input\":");
	provider_buf_arguments(b, call->arguments);
	buf_puts(b, close);
}

void provider_set_error_of(struct completion *out, long status, bool json, const char *type,
                           const char *msg, size_t msg_len)
{
	int n = msg_len > INT_MAX ? INT_MAX : (int)msg_len;
	if (!json)
		provider_set_error(out, "HTTP %ld with a body that is not JSON", status);
	else if (type && msg)
		provider_set_error(out, "%s: %.*s", type, n, msg);
	else if (msg)
		provider_set_error(out, "%.*s", n, msg);
	else if (type)
		provider_set_error(out, "%s", type);
	else
		provider_set_error(out, "HTTP %ld without an error message", status);
}

void provider_usage_unreadable(struct completion *out, const struct jval *v)
{
	out->usage_impossible = v && !jv_is_null(v);
}

enum response_class provider_parse_end(struct jdoc *doc, struct completion *out,
                                       enum response_class cls)
{
	if (cls == RESPONSE_INVALID) {
		free(out->content);
		out->content = NULL;
	}
	jdoc_free(doc);
	return cls;
}
