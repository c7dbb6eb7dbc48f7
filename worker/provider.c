/* provider: the registry of wire formats and what they share. */
#include "provider.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Every wire format, one line each. */
static const struct provider *const providers[] = {
	&provider_openai,
};

const struct provider *provider_lookup(const char *type)
{
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

void http_request_add_header(struct http_request *req, const char *fmt, ...)
{
	struct buf b = {0};
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	req->headers = xrealloc(req->headers, (req->n_headers + 1) * sizeof *req->headers);
	req->headers[req->n_headers++] = buf_take(&b);
}

void http_request_clear(struct http_request *req)
{
	for (size_t i = 0; i < req->n_headers; i++) {
		/* Headers may carry a key: wipe them before the memory is reused. */
		explicit_bzero(req->headers[i], strlen(req->headers[i]));
		free(req->headers[i]);
	}
	free(req->headers);
	buf_free(&req->url);
	buf_free(&req->body);
	memset(req, 0, sizeof *req);
}

void completion_clear(struct completion *c)
{
	free(c->content);
	free(c->error_message);
	memset(c, 0, sizeof *c);
}

enum response_class provider_class_of_status(long status)
{
	if (status >= 200 && status < 300)
		return RESPONSE_OK;
	switch (status) {
	case 401:
	case 403:
		return RESPONSE_AUTH;
	case 408:
	case 409:
	case 429:
	case 529:
		return RESPONSE_RETRYABLE;
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

bool provider_text_is_context_overflow(const char *text)
{
	static const char *const marks[] = {
		"context_length_exceeded", "context length", "context window",
		"maximum context",         "prompt is too long", "too many tokens",
		"input token count",       "exceeds the maximum number of tokens",
		"reduce the length",       "string_above_max_length",
	};
	if (!text)
		return false;
	for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
		if (contains_ci(text, marks[i]))
			return true;
	return false;
}
