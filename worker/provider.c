/* provider: the registry of wire formats and what they share. */
#include "provider.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Every wire format, one line each. */
static const struct provider *const providers[] = {
        &provider_openai,
        &provider_anthropic,
        &provider_gemini,
};

const struct provider *provider_lookup(const char *type)
{
	if (!type)
		return NULL;
	for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++)
		if (strcmp(providers[i]->type, type) == 0)
			return providers[i];
	return NULL;
}

const char *finish_reason_name(enum finish_reason f)
{
	static const char *names[] = {"stop", "length", "content_filter", "tool_calls", "other"};
	return (unsigned)f < 5 ? names[f] : "other";
}

void completion_clear(struct completion *c)
{
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

/* ---------------------------------------------------------------- turns */

/* ASCII whitespace only: the answer must not depend on the locale. */
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool provider_message_is_blank(const struct job_message *msg)
{
	for (size_t i = 0; i < msg->content_len; i++)
		if (!is_space(msg->content[i]))
			return false;
	return true;
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
	turn->role = job->messages[i].role;
	turn->first = i;
	turn->end = i + 1;
	turn->n = 1;
	for (size_t j = i + 1; j < job->n_messages; j++) {
		const struct job_message *msg = &job->messages[j];
		if (msg->role == ROLE_SYSTEM || provider_message_is_blank(msg))
			continue;
		if (msg->role != turn->role)
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
