/* fake_formats: what the three wire formats of bin/fake_provider share:
 * the route from a path to a format, the reading helpers, the error
 * bodies, and the dispatch to fake_openai.c, fake_anthropic.c and
 * fake_gemini.c, which read a request into a struct call, check it as the
 * real API does (so that a request the provider would refuse gets the
 * provider's 400 here too, with its words as near as known), and write
 * the answer in the API's own shape. */
#include "fake.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const fake_format_names[] = {"none", "openai", "anthropic", "gemini"};

/* ------------------------------------------------------------ reading */

/* Records the request's first problem; later ones are not looked at. */
void fake_fail(struct call *c, const char *param, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (c->invalid != NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(c->invalid_buf, sizeof(c->invalid_buf), fmt, ap);
	va_end(ap);
	c->invalid = c->invalid_buf;
	if (param != NULL) {
		snprintf(c->param_buf, sizeof(c->param_buf), "%s", param);
		c->invalid_param = c->param_buf;
	}
	c->invalid_code = code;
}

bool fake_schema_ok(struct call *c, json_t *schema, enum schema_rules rules, const char *where,
                    const char *param, const char *code)
{
	char err[sizeof(c->invalid_buf)];

	if (fake_schema_check(schema, rules, where, err, sizeof(err)) == 0)
		return true;
	fake_fail(c, param, code, "%s", err);
	return false;
}

void fake_text(struct call *c, const char *s)
{
	size_t n = strlen(s);

	c->text_bytes += (int64_t)n;
	for (size_t i = 0; i < n; i++) {
		c->hash ^= (unsigned char)s[i];
		c->hash *= 16777619u;
	}
	if (strstr(s, FAKE_REFUSE_WORD) != NULL)
		c->refuse_word = true;
	if (strcasestr(s, "json") != NULL)
		c->mentions_json = true;
}

bool fake_blank(const char *s)
{
	while (*s != '\0' && isspace((unsigned char)*s))
		s++;
	return *s == '\0';
}

int64_t fake_int_or(json_t *v, int64_t dflt)
{
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

bool fake_is(json_t *v, const char *s)
{
	return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

/* A name of 1 to max letters, digits, '_' or '-'. */
bool fake_name_ok(const char *s, size_t max)
{
	size_t n = s != NULL ? strlen(s) : 0;

	return n >= 1 && n <= max &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* Counts an image, or a PDF's pages when its bytes are known. */
void fake_count_media(struct call *c, const char *type, const unsigned char *b, size_t n)
{
	if (strncmp(type, "image/", 6) == 0)
		c->images++;
	else if (strcmp(type, "application/pdf") == 0 && b != NULL)
		c->pdf_pages += fake_pdf_pages(b, n);
}

/* A "data:TYPE;base64,DATA" URL split; false when it is not one. */
bool fake_data_url(const char *url, char *type, size_t type_size, const char **data)
{
	const char *semi, *comma;

	if (strncmp(url, "data:", 5) != 0)
		return false;
	comma = strchr(url, ',');
	semi = strchr(url, ';');
	if (comma == NULL || semi == NULL || semi > comma || strncmp(semi, ";base64,", 8) != 0)
		return false;
	snprintf(type, type_size, "%.*s", (int)(semi - url - 5), url + 5);
	*data = comma + 1;
	return true;
}

bool fake_web_url(const char *s)
{
	return strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0;
}

void fake_ids_add(struct fake_ids *s, const char *id)
{
	if (s->n < FAKE_MAX_IDS)
		s->v[s->n++] = id;
}

/* Removes id; false when it was not there. */
bool fake_ids_take(struct fake_ids *s, const char *id)
{
	for (size_t i = 0; id != NULL && i < s->n; i++) {
		if (strcmp(s->v[i], id) == 0) {
			s->v[i] = s->v[--s->n];
			return true;
		}
	}
	return false;
}

/* The ids joined by ", " into buf. */
const char *fake_ids_list(const struct fake_ids *s, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < s->n && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s", i > 0 ? ", " : "", s->v[i]);
	return buf;
}

/* ------------------------------------------------------------- routing */

void fake_parse(struct call *c)
{
	if (c->fmt == FMT_OPENAI)
		fake_openai_parse(c);
	else if (c->fmt == FMT_ANTHROPIC)
		fake_anthropic_parse(c);
	else
		fake_gemini_parse(c);
}

void fake_call_init(struct call *c, enum format fmt, const char *prefix, const char *model)
{
	c->fmt = fmt;
	c->hash = 2166136261u; /* FNV-1a */
	c->max_tokens = -1;
	c->thinking_cap = -1;
	if (prefix != NULL)
		snprintf(c->prefix, sizeof(c->prefix), "%s", prefix);
	if (model != NULL)
		snprintf(c->model, sizeof(c->model), "%s", model);
}

enum format fake_route(const char *url, struct call *c)
{
	size_t n = strlen(url);
	static const char oa[] = "/chat/completions", an[] = "/messages", ge[] = ":generateContent";
	const char *models;

	fake_call_init(c, FMT_NONE, NULL, NULL);
	if (n >= sizeof(oa) - 1 && strcmp(url + n - (sizeof(oa) - 1), oa) == 0) {
		snprintf(c->prefix, sizeof(c->prefix), "%.*s", (int)(n - (sizeof(oa) - 1)), url);
		return FMT_OPENAI;
	}
	if (n >= sizeof(an) - 1 && strcmp(url + n - (sizeof(an) - 1), an) == 0) {
		snprintf(c->prefix, sizeof(c->prefix), "%.*s", (int)(n - (sizeof(an) - 1)), url);
		return FMT_ANTHROPIC;
	}
	if (n >= sizeof(ge) - 1 && strcmp(url + n - (sizeof(ge) - 1), ge) == 0) {
		/* the last "/models/" before the suffix: ids have no slash */
		models = NULL;
		for (const char *p = strstr(url, "/models/"); p != NULL;
		     p = strstr(p + 1, "/models/"))
			models = p;
		if (models == NULL)
			return FMT_NONE;
		snprintf(c->prefix, sizeof(c->prefix), "%.*s", (int)(models - url), url);
		snprintf(c->model, sizeof(c->model), "%.*s",
		         (int)(url + n - (sizeof(ge) - 1) - (models + 8)), models + 8);
		if (c->model[0] == '\0')
			return FMT_NONE;
		return FMT_GEMINI;
	}
	return FMT_NONE;
}

/* -------------------------------------------------------------- errors */

json_t *fake_error_body(enum format fmt, int status, const char *message, const char *oa_code,
                        const char *oa_param)
{
	const char *type;

	if (fmt == FMT_ANTHROPIC) {
		switch (status) {
		case 400: type = "invalid_request_error"; break;
		case 401: type = "authentication_error"; break;
		case 403: type = "permission_error"; break;
		case 404: type = "not_found_error"; break;
		case 413: type = "request_too_large"; break;
		case 429: type = "rate_limit_error"; break;
		case 529: type = "overloaded_error"; break;
		default: type = "api_error"; break;
		}
		return json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", type,
		                 "message", message);
	}
	if (fmt == FMT_GEMINI) {
		switch (status) {
		case 400: type = "INVALID_ARGUMENT"; break;
		case 401: type = "UNAUTHENTICATED"; break;
		case 403: type = "PERMISSION_DENIED"; break;
		case 404: type = "NOT_FOUND"; break;
		case 409: type = "ABORTED"; break;
		case 429: type = "RESOURCE_EXHAUSTED"; break;
		case 499: type = "CANCELLED"; break;
		case 500: type = "INTERNAL"; break;
		case 501: type = "UNIMPLEMENTED"; break;
		case 503: type = "UNAVAILABLE"; break;
		case 504: type = "DEADLINE_EXCEEDED"; break;
		default: type = "UNKNOWN"; break;
		}
		return json_pack("{s:{s:i, s:s, s:s}}", "error", "code", status, "message", message,
		                 "status", type);
	}
	switch (status) {
	case 429: type = "requests"; break;
	case 500:
	case 502:
	case 503:
	case 504:
	case 529: type = "server_error"; break;
	default: type = status < 500 ? "invalid_request_error" : "api_error"; break;
	}
	return json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", message, "type", type,
	                 "param", oa_param, "code", oa_code);
}

const char *fake_status_message(enum format fmt, int status)
{
	switch (status) {
	case 400: return "Bad request";
	case 401:
		if (fmt == FMT_OPENAI)
			return "Incorrect API key provided. You can find your API key at "
			       "https://platform.openai.com/account/api-keys.";
		if (fmt == FMT_ANTHROPIC)
			return "invalid x-api-key";
		return "API key not valid. Please pass a valid API key.";
	case 403: return "Permission denied";
	case 404: return "The requested model was not found";
	case 413: return "Request exceeds the maximum allowed number of bytes";
	case 429:
		if (fmt == FMT_GEMINI)
			return "Resource has been exhausted (e.g. check quota).";
		if (fmt == FMT_ANTHROPIC)
			return "Number of request tokens has exceeded your per-minute rate limit";
		return "Rate limit reached for requests";
	case 500:
		if (fmt == FMT_GEMINI)
			return "An internal error has occurred. Please retry or report in "
			       "https://developers.generativeai.google/guide/troubleshooting";
		return "The server had an error while processing your request. Sorry about that!";
	case 503:
		if (fmt == FMT_GEMINI)
			return "The model is overloaded. Please try again later.";
		return "The server is overloaded or not ready yet.";
	case 529: return "Overloaded";
	default: return "Fake provider error";
	}
}

const char *fake_openai_code(int status)
{
	switch (status) {
	case 401: return "invalid_api_key";
	case 404: return "model_not_found";
	case 429: return "rate_limit_exceeded";
	default: return NULL;
	}
}

json_t *fake_overflow_body(enum format fmt, int64_t in, int64_t max)
{
	char msg[256];
	int64_t n;

	if (max <= 0)
		max = fmt == FMT_OPENAI ? 128000 : fmt == FMT_ANTHROPIC ? 200000 : 1048576;
	n = in > max ? in : max + 1;
	if (fmt == FMT_ANTHROPIC)
		snprintf(msg, sizeof(msg),
		         "prompt is too long: %" PRId64 " tokens > %" PRId64 " maximum", n, max);
	else if (fmt == FMT_GEMINI)
		snprintf(msg, sizeof(msg),
		         "The input token count (%" PRId64
		         ") exceeds the maximum number of tokens allowed (%" PRId64 ").",
		         n, max);
	else
		snprintf(msg, sizeof(msg),
		         "This model's maximum context length is %" PRId64
		         " tokens. However, your messages resulted in %" PRId64
		         " tokens. Please reduce the length of the messages.",
		         max, n);
	return fake_error_body(fmt, 400, msg, fmt == FMT_OPENAI ? "context_length_exceeded" : NULL,
	                       fmt == FMT_OPENAI ? "messages" : NULL);
}

/* ------------------------------------------------------------- answers */

json_t *fake_success_body(const struct call *c, const struct answer *a)
{
	if (c->fmt == FMT_ANTHROPIC)
		return fake_anthropic_answer(c, a);
	if (c->fmt == FMT_GEMINI)
		return fake_gemini_answer(c, a);
	return fake_openai_answer(c, a);
}
