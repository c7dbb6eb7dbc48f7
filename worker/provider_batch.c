/* provider_batch: what the wire formats' batch APIs share (see provider_batch.h). */
#include "provider_batch.h"

#include "timeutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room left in max_bytes for what wraps the items (an OpenAI multipart
 * frame, Gemini's display name...), all of it a few hundred bytes. */
#define FRAMING_BYTES 1024

/* ---------------------------------------------------------------- names */

bool provider_batch_token_valid(const char *s, size_t len)
{
	if (!s || len != PROVIDER_BATCH_TOKEN_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

void provider_batch_custom_id(const char *token, size_t n, char *out)
{
	snprintf(out, PROVIDER_BATCH_CUSTOM_ID_MAX + 1, "%.*s-%zu", PROVIDER_BATCH_TOKEN_LEN, token,
	         n);
}

int provider_batch_custom_id_parse(const char *custom_id, char *token, size_t *n)
{
	const char *d = custom_id + PROVIDER_BATCH_TOKEN_LEN + 1;
	size_t v = 0;
	if (!custom_id ||
	    strnlen(custom_id, PROVIDER_BATCH_TOKEN_LEN + 1) <= PROVIDER_BATCH_TOKEN_LEN ||
	    !provider_batch_token_valid(custom_id, PROVIDER_BATCH_TOKEN_LEN) ||
	    custom_id[PROVIDER_BATCH_TOKEN_LEN] != '-' || *d < '0' || *d > '9' ||
	    (d[0] == '0' && d[1] != '\0'))
		return -1;
	for (; *d; d++) {
		if (*d < '0' || *d > '9' || v > (SIZE_MAX - 9) / 10)
			return -1;
		v = v * 10 + (size_t)(*d - '0');
	}
	memcpy(token, custom_id, PROVIDER_BATCH_TOKEN_LEN);
	token[PROVIDER_BATCH_TOKEN_LEN] = '\0';
	*n = v;
	return 0;
}

const char *provider_batch_state_name(enum provider_batch_state s)
{
	static const char *const names[] = {"validating", "in_progress", "finalizing", "ended",
	                                    "failed",     "expired",     "canceling",  "canceled"};
	return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

bool provider_batch_state_final(enum provider_batch_state s)
{
	return s == BATCH_ENDED || s == BATCH_FAILED || s == BATCH_EXPIRED || s == BATCH_CANCELED;
}

const char *provider_batch_outcome_name(enum provider_batch_outcome o)
{
	static const char *const names[] = {"answered", "errored", "expired",
	                                    "canceled", "blank",   "invalid"};
	return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "?";
}

/* ---------------------------------------------------------------- submitting */

void provider_batch_submission_init(struct provider_batch_submission *s, const struct provider *ops,
                                    const struct model_conf *m, const char *token)
{
	memset(s, 0, sizeof *s);
	s->ops = ops;
	s->m = m;
	snprintf(s->token, sizeof s->token, "%s", token);
	s->max_requests = ops->batch->max_requests;
	s->max_bytes = ops->batch->max_bytes;
}

void provider_batch_submission_clear(struct provider_batch_submission *s)
{
	buf_free(&s->items);
	s->n = 0;
}

int provider_batch_add(struct provider_batch_submission *s, const struct provider_conf *p,
                       const struct job *job, int64_t max_tokens, char *errstr, size_t errstr_size)
{
	struct http_request req = {0};
	char custom_id[PROVIDER_BATCH_CUSTOM_ID_MAX + 1];
	size_t before = s->items.len;
	int rc = -1;

	if (s->n >= s->max_requests)
		return PROVIDER_BATCH_FULL;
	if (s->ops->build_request(p, s->m, job, max_tokens, &req, errstr, errstr_size) != 0)
		goto out;
	provider_batch_custom_id(s->token, s->n, custom_id);
	s->ops->batch->put_item(&s->items, s->n, custom_id, req.body.data ? req.body.data : "",
	                        req.body.len);
	if (s->items.len + FRAMING_BYTES > s->max_bytes) {
		size_t took = s->items.len - before;
		s->items.len = before;
		s->items.data[before] = '\0';
		if (s->n > 0) {
			rc = PROVIDER_BATCH_FULL;
			goto out;
		}
		snprintf(errstr, errstr_size,
		         "%s batches hold at most %zu bytes, and the request alone takes %zu",
		         s->ops->type, s->max_bytes, took);
		goto out;
	}
	s->n++;
	rc = 0;
out:
	http_request_clear(&req);
	return rc;
}

/* ---------------------------------------------------------------- clearing */

void provider_batch_status_clear(struct provider_batch_status *st)
{
	free(st->id);
	for (size_t i = 0; i < st->n_results; i++)
		free(st->results[i]);
	free(st->error_message);
	memset(st, 0, sizeof *st);
}

void provider_batch_list_clear(struct provider_batch_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		provider_batch_status_clear(&l->items[i]);
	free(l->items);
	free(l->next);
	free(l->error_message);
	memset(l, 0, sizeof *l);
}

void provider_batch_result_clear(struct provider_batch_result *r)
{
	free(r->custom_id);
	completion_clear(&r->c);
	memset(r, 0, sizeof *r);
	r->position = -1;
}

/* ---------------------------------------------------------------- inline answers */

size_t provider_batch_inline_open(struct provider_batch_inline *it, const struct provider_conf *p,
                                  const char *body, size_t len)
{
	const struct provider *ops = p->ops;
	memset(it, 0, sizeof *it);
	it->ops = ops;
	jdoc_parse(&it->doc, body, len);
	if (ops->batch->inline_answers)
		it->answers = ops->batch->inline_answers(jdoc_root(&it->doc));
	it->n = jv_size(it->answers);
	it->cur = jv_at(it->answers, 0);
	return it->n;
}

bool provider_batch_inline_next(struct provider_batch_inline *it, const struct model_conf *m,
                                struct provider_batch_result *out)
{
	if (it->i >= it->n)
		return false;
	if (jv_is_object(it->cur)) {
		it->ops->batch->parse_result(m, it->cur->s, it->cur->len, out);
	} else {
		provider_batch_result_clear(out);
		provider_batch_outcome(out, BATCH_LINE_INVALID, "answer %zu is not an object",
		                       it->i);
	}
	out->position = (int64_t)it->i;
	it->cur = jv_next(it->cur);
	it->i++;
	return true;
}

void provider_batch_inline_close(struct provider_batch_inline *it)
{
	jdoc_free(&it->doc);
	memset(it, 0, sizeof *it);
}

/* ---------------------------------------------------------------- requests */

void provider_batch_request_end(const struct provider_conf *p, enum http_method method,
                                struct http_request *req)
{
	const struct provider_batch *b = p->ops->batch;
	req->method = method;
	provider_request_common(p, req, b->key_header);
	if (b->version_header)
		http_request_add_header(req, "%s", b->version_header);
}

void provider_batch_url(const struct provider_conf *p, const char *id, const char *tail,
                        struct buf *url)
{
	const struct provider_batch *b = p->ops->batch;
	size_t pl = b->id_prefix ? strlen(b->id_prefix) : 0;
	if (pl && strncmp(id, b->id_prefix, pl) == 0)
		id += pl;
	buf_printf(url, "%s%s/", p->base_url, b->batches_path);
	provider_buf_path_segment(url, id);
	buf_puts(url, tail);
}

void provider_batch_submit_request(const struct provider_conf *p,
                                   const struct provider_batch_submission *s, int step,
                                   const char *prev_id, struct http_request *req)
{
	p->ops->batch->submit_request(p, s, step, prev_id, req);
}

void provider_batch_poll_request(const struct provider_conf *p, const char *batch_id,
                                 struct http_request *req)
{
	provider_batch_url(p, batch_id, "", &req->url);
	provider_batch_request_end(p, HTTP_GET, req);
}

void provider_batch_cancel_request(const struct provider_conf *p, const char *batch_id,
                                   struct http_request *req)
{
	provider_batch_url(p, batch_id, p->ops->batch->cancel_suffix, &req->url);
	provider_batch_request_end(p, HTTP_POST, req);
}

void provider_batch_list_request(const struct provider_conf *p, const char *cursor,
                                 struct http_request *req)
{
	const struct provider_batch *b = p->ops->batch;
	buf_printf(&req->url, "%s%s%s", p->base_url, b->batches_path, b->list_query);
	if (cursor) {
		buf_printf(&req->url, "&%s=", b->cursor_param);
		provider_buf_path_segment(&req->url, cursor);
	}
	provider_batch_request_end(p, HTTP_GET, req);
}

void provider_batch_results_request(const struct provider_conf *p, const char *url,
                                    struct http_request *req)
{
	buf_puts(&req->url, url);
	provider_batch_request_end(p, HTTP_GET, req);
}

/* ---------------------------------------------------------------- answers */

void provider_batch_set_error(char **error_message, const char *fmt, ...)
{
	struct completion c = {0};
	struct buf b = {0};
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	provider_set_error(&c, "%s", b.data ? b.data : "");
	free(*error_message);
	*error_message = c.error_message;
	c.error_message = NULL;
	buf_free(&b);
}

/* An error answer (a status not 2xx) as the format's parse_response
 * classifies it; its message goes to *error_message. */
static enum response_class error_answer(const struct provider *ops, long status, const char *body,
                                        size_t len, char **error_message)
{
	struct completion c = {0};
	enum response_class cls = ops->parse_response(NULL, status, body, len, &c);
	if (cls == RESPONSE_OK) /* not reached: no status but 2xx is OK */
		cls = RESPONSE_INVALID;
	free(*error_message);
	*error_message = c.error_message ? c.error_message : xstrdup("error without a message");
	c.error_message = NULL;
	completion_clear(&c);
	return cls;
}

static bool is_2xx(long status)
{
	return status >= 200 && status <= 299;
}

enum response_class provider_batch_parse_answer(const struct provider_conf *p, long status,
                                                const char *body, size_t len, char **id,
                                                struct completion *out)
{
	const char *key = p->ops->batch->id_key;
	struct jdoc doc;
	enum response_class cls = RESPONSE_INVALID;
	if (id)
		*id = NULL;
	if (!is_2xx(status))
		return error_answer(p->ops, status, body, len, &out->error_message);
	if (!id)
		return RESPONSE_OK; /* a cancel: the status says it all */
	jdoc_parse(&doc, body, len);
	const struct jval *root = jdoc_root(&doc);
	const struct jval *v = jv_get(root, key);
	if (!jv_is_object(root)) {
		provider_set_error(out, "the answer is not a JSON object");
	} else if (!jv_is_string(v) || v->len == 0) {
		provider_set_error(out, "the answer has no \"%s\"", key);
	} else {
		*id = xstrdup(jdoc_str(&doc, v));
		cls = RESPONSE_OK;
	}
	jdoc_free(&doc);
	return cls;
}

enum response_class provider_batch_parse_status(const struct provider_conf *p, long status,
                                                const char *body, size_t len,
                                                struct provider_batch_status *out)
{
	struct jdoc doc;
	enum response_class cls = RESPONSE_INVALID;
	provider_batch_status_clear(out);
	if (!is_2xx(status))
		return error_answer(p->ops, status, body, len, &out->error_message);
	jdoc_parse(&doc, body, len);
	if (!jv_is_object(jdoc_root(&doc)))
		provider_batch_set_error(&out->error_message, "the batch is not a JSON object");
	else if (p->ops->batch->read_batch(p, &doc, jdoc_root(&doc), out) == 0)
		cls = RESPONSE_OK;
	jdoc_free(&doc);
	return cls;
}

enum response_class provider_batch_parse_list(const struct provider_conf *p, long status,
                                              const char *body, size_t len,
                                              struct provider_batch_list *out)
{
	const struct provider_batch *b = p->ops->batch;
	struct jdoc doc;
	const struct jval *root, *items, *item, *cursor;
	size_t i;
	provider_batch_list_clear(out);
	if (!is_2xx(status))
		return error_answer(p->ops, status, body, len, &out->error_message);
	jdoc_parse(&doc, body, len);
	root = jdoc_root(&doc);
	items = jv_get(root, b->list_key);
	if (!jv_is_object(root) || (items && !jv_is_array(items))) {
		provider_batch_set_error(&out->error_message, "the list has no array \"%s\"",
		                         b->list_key);
		jdoc_free(&doc);
		return RESPONSE_INVALID;
	}
	out->items = xcalloc(jv_size(items) + 1, sizeof *out->items);
	jv_array_foreach(items, i, item)
	{
		struct provider_batch_status *st = &out->items[out->n];
		if (jv_is_object(item) && b->read_batch(p, &doc, item, st) == 0) {
			free(st->error_message); /* a failed batch's: the list says no more */
			st->error_message = NULL;
			out->n++;
		} else {
			provider_batch_status_clear(st);
		}
	}
	cursor = jv_get(root, b->list_cursor_key);
	bool more = !b->list_more_key || jv_is_true(jv_get(root, b->list_more_key));
	if (more && jv_is_string(cursor) && cursor->len)
		out->next = xstrdup(jdoc_str(&doc, cursor));
	else if (more && b->list_more_key && out->n)
		out->next = xstrdup(out->items[out->n - 1].id);
	jdoc_free(&doc);
	return RESPONSE_OK;
}

/* ---------------------------------------------------------------- results */

enum provider_batch_outcome provider_batch_parse_result(const struct provider_conf *p,
                                                        const struct model_conf *m,
                                                        const char *line, size_t len,
                                                        struct provider_batch_result *out)
{
	return p->ops->batch->parse_result(m, line, len, out);
}

/* Appends v as JSON text: a string's span lacks its quotes. */
static void put_jval(struct buf *b, const struct jval *v)
{
	if (jv_is_string(v))
		buf_puts(b, "\"");
	buf_append(b, v->s, v->len);
	if (jv_is_string(v))
		buf_puts(b, "\"");
}

void provider_batch_errored(const struct provider *ops, long status, const struct jval *err,
                            bool wrapped, struct provider_batch_result *r)
{
	struct buf b = {0};
	if (wrapped)
		buf_puts(&b, "{\"error\":");
	if (err)
		put_jval(&b, err);
	else
		buf_puts(&b, "null");
	if (wrapped)
		buf_puts(&b, "}");
	completion_clear(&r->c);
	r->cls = ops->parse_response(NULL, status, b.data, b.len, &r->c);
	if (r->cls == RESPONSE_OK)
		r->cls = RESPONSE_RETRYABLE;
	/* It did not run: nothing to pay, nothing to keep but the reason. */
	char *msg = r->c.error_message;
	r->c.error_message = NULL;
	completion_clear(&r->c);
	r->c.error_message = msg ? msg : xstrdup("errored without a message");
	r->outcome = BATCH_LINE_ERRORED;
	buf_free(&b);
}

void provider_batch_answered(const struct provider *ops, const struct model_conf *m, long status,
                             const struct jval *body, struct provider_batch_result *r)
{
	completion_clear(&r->c);
	if (jv_is_object(body))
		r->cls = ops->parse_response(m, status, body->s, body->len, &r->c);
	else
		r->cls = ops->parse_response(m, status, "", 0, &r->c);
	r->outcome = BATCH_LINE_ANSWERED;
}

void provider_batch_outcome(struct provider_batch_result *r, enum provider_batch_outcome o,
                            const char *fmt, ...)
{
	struct buf b = {0};
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	completion_clear(&r->c);
	provider_set_error(&r->c, "%s", b.data ? b.data : "");
	r->outcome = o;
	r->cls = o == BATCH_LINE_INVALID ? RESPONSE_INVALID : RESPONSE_RETRYABLE;
	buf_free(&b);
}

int provider_batch_line_open(struct jdoc *d, const char *line, size_t len,
                             struct provider_batch_result *r)
{
	provider_batch_result_clear(r);
	jdoc_parse(d, line, len);
	if (provider_text_is_blank(line, len)) {
		r->outcome = BATCH_LINE_BLANK;
		r->cls = RESPONSE_INVALID;
		return -1;
	}
	if (!jv_is_object(jdoc_root(d))) {
		provider_batch_outcome(r, BATCH_LINE_INVALID, "the result is not a JSON object");
		return -1;
	}
	return 0;
}

void provider_batch_take_custom_id(struct provider_batch_result *r, const struct jval *v)
{
	struct buf b = {0};
	if (!jv_is_string(v))
		return;
	jv_buf_text(&b, v);
	free(r->custom_id);
	r->custom_id = b.data ? buf_take(&b) : xstrdup("");
}

/* ---------------------------------------------------------------- batch objects */

void provider_batch_read_token(const char *prefix, const struct jval *text, char *token)
{
	char word[128];
	size_t pl = strlen(prefix);
	const char *s = jv_cstr(text, word, sizeof word);
	token[0] = '\0';
	if (s && strncmp(s, prefix, pl) == 0 && provider_batch_token_valid(s + pl, strlen(s + pl)))
		memcpy(token, s + pl, PROVIDER_BATCH_TOKEN_LEN + 1);
}

int64_t provider_batch_time_ms(const struct jval *v)
{
	char word[64];
	int64_t t = 0;
	if (jv_type(v) == J_INTEGER) {
		if (v->len >= sizeof word)
			return 0;
		memcpy(word, v->s, v->len);
		word[v->len] = '\0';
		long long sec = strtoll(word, NULL, 10);
		return sec > 0 && sec < INT64_MAX / 1000 ? (int64_t)sec * 1000 : 0;
	}
	if (jv_cstr(v, word, sizeof word) && time_parse_rfc3339(word, &t) == 0)
		return t;
	return 0;
}

size_t provider_batch_origin_len(const char *url)
{
	const char *host = strstr(url, "://");
	if (!host)
		return 0;
	host += 3;
	return (size_t)(host - url) + strcspn(host, "/?#");
}

int provider_batch_add_results_url(const struct provider_conf *p, const char *url,
                                   struct provider_batch_status *st)
{
	size_t n = provider_batch_origin_len(p->base_url);
	if (n == 0 || strncmp(url, p->base_url, n) != 0 || (url[n] != '/' && url[n] != '\0') ||
	    st->n_results >= sizeof st->results / sizeof st->results[0])
		return -1;
	st->results[st->n_results++] = xstrdup(url);
	return 0;
}
