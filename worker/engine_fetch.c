/* engine_fetch: the bytes of a job's URL parts, fetched by the worker for
 * the providers that cannot take a URL (SPEC §13).
 *
 * When. A document given by URL is fetched as its job begins: its pages
 * decide the estimates the route is made of. An image given by URL is
 * fetched only before the first attempt on a model whose provider takes no
 * image URL (provider.url_parts): OpenAI and Anthropic get the URL itself.
 * Each part is fetched once per job, whatever attempts and failovers follow
 * (the bytes stay in job_part.fetched), and a job's parts are fetched side
 * by side; the task goes on once the last one is in. One that failed (a
 * status other than 2xx, a body above worker.max_fetch_bytes, bytes that
 * are not of the part's kind, a network error, the timeout) ends the job
 * as invalid_job naming the part, and no provider is called. A fetch runs
 * before the attempt asks health, takes a provider slot or reserves money:
 * a slow file server holds none of them, and a fetch is charged nowhere.
 *
 * How. A GET through libcurl on the loop, on a pool of the engine's own:
 * FETCH_CONNECTIONS connections over HTTP/1.1 (a fetch is one large body,
 * and a pool that talks to many hosts must not take one host's HTTP/2
 * streams for everyone's), trusting worker.fetch_ca_file or else the
 * system's CAs, following up to FETCH_REDIRECTS redirects to https:// URLs
 * only. A fetch has FETCH_TIMEOUT_MS from its start to its last byte, a
 * fixed bound rather than a provider's timeout_ms: the file server is not
 * the provider, and the job's own deadline only bounds its first attempt.
 * Beyond FETCH_CONNECTIONS fetches in flight the others wait here, in
 * order: curl runs no timeout for a transfer queued for a connection.
 *
 * A URL may carry a signed token in its query string: logs and error
 * messages name the host alone. */
#include "engine_int.h"

#include "buf.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_CONNECTIONS 64
#define FETCH_REDIRECTS   5
#define FETCH_TIMEOUT_MS  60000

/* One URL part of a task being fetched (t->fetches has one per part). */
struct fetch {
	struct task *t; /* NULL until the part's fetch starts */
	struct job_part *part;
	struct fetch *next; /* waiting for a connection */
};

static void fetch_start(struct engine *e, struct fetch *f);

int engine_fetch_init(struct engine *e, char *errstr, size_t errstr_size)
{
	struct http_pool_options opt = {
	        .max_connections = FETCH_CONNECTIONS,
	        .max_body_bytes = (size_t)e->cfg->worker.max_fetch_bytes,
	        .ca_file = e->cfg->worker.fetch_ca_file,
	        .tls = true,
	        .tls_version = HTTP_VERSION_1_1,
	        .max_redirects = FETCH_REDIRECTS,
	};
	e->fetch_pool = http_pool_new(e->loop, &opt, errstr, errstr_size);
	return e->fetch_pool ? 0 : -1;
}

void engine_fetch_close(struct engine *e)
{
	http_pool_free(e->fetch_pool);
	e->fetch_pool = NULL;
	e->fetch_head = e->fetch_tail = NULL;
	e->fetching = 0;
}

/* The host (and port) of url, without user info, in printable ASCII: what
 * a log line or an error message may say of a URL. */
static void url_host(const char *url, char *out, size_t out_size)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	size_t n = strcspn(p, "/?#");
	const char *at = memchr(p, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	if (n >= out_size)
		n = out_size - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = p[i] > ' ' && p[i] < 0x7f ? p[i] : '?';
	out[n] = '\0';
}

/* Why a fetch failed, naming the part and the host. */
static void describe_failure(const struct fetch *f, const struct http_response *resp,
                             int64_t max_bytes, char *out, size_t out_size)
{
	char host[256];
	url_host(f->part->url, host, sizeof host);
	int n = snprintf(out, out_size, "messages[%zu].content[%zu].url: ", f->part->msg,
	                 f->part->index);
	if (n < 0 || (size_t)n >= out_size)
		return;
	out += n;
	out_size -= (size_t)n;
	switch (resp->error) {
	case HTTP_OK:
		snprintf(out, out_size, "fetching from %s failed: HTTP %ld", host, resp->status);
		break;
	case HTTP_TOO_LARGE:
		snprintf(out, out_size,
		         "the file at %s is larger than worker.max_fetch_bytes (%lld)", host,
		         (long long)max_bytes);
		break;
	case HTTP_TIMEOUT:
		snprintf(out, out_size, "fetching from %s timed out after %d s", host,
		         FETCH_TIMEOUT_MS / 1000);
		break;
	case HTTP_CONNECT_ERROR:
	case HTTP_OTHER_ERROR:
		snprintf(out, out_size, "fetching from %s failed: %s", host,
		         resp->error_text ? resp->error_text : "transfer error");
		break;
	}
}

/* Starts the next waiting fetches while connections are free. */
static void fetch_next(struct engine *e)
{
	while (e->fetch_head && e->fetching < http_pool_capacity(e->fetch_pool)) {
		struct fetch *f = e->fetch_head;
		e->fetch_head = f->next;
		if (!e->fetch_head)
			e->fetch_tail = NULL;
		f->next = NULL;
		fetch_start(e, f);
	}
}

static void on_fetched(void *opaque, const struct http_response *resp)
{
	struct fetch *f = opaque;
	struct task *t = f->t;
	struct engine *e = t->e;
	char err[512] = "";
	e->fetching--;
	fetch_next(e);
	if (!t->fetch_error) {
		if (resp->error == HTTP_OK && resp->status >= 200 && resp->status < 300)
			job_part_set_fetched(&t->job, f->part, (const unsigned char *)resp->body,
			                     resp->body_len, resp->content_type, err, sizeof err);
		else
			describe_failure(f, resp, e->cfg->worker.max_fetch_bytes, err, sizeof err);
		if (err[0]) {
			char host[256];
			url_host(f->part->url, host, sizeof host);
			log_warn("a content part could not be fetched", "id", t->id, "host", host,
			         "error", err, NULL);
			t->fetch_error = xstrdup(err);
		}
	}
	if (--t->fetches_pending > 0)
		return;
	if (t->fetch_error) {
		task_fail(t, ERR_INVALID_JOB, "%s", t->fetch_error);
		return;
	}
	t->fetch_then(t);
}

static void fetch_start(struct engine *e, struct fetch *f)
{
	struct http_request req = {.method = HTTP_GET};
	buf_puts(&req.url, f->part->url);
	http_request_add_header(&req, "User-Agent: promptyard-worker");
	e->fetching++;
	if (log_min_level <= LOG_DEBUG) {
		char host[256];
		url_host(f->part->url, host, sizeof host);
		log_debug("fetching a content part", "id", f->t->id, "host", host, NULL);
	}
	http_pool_start(e->fetch_pool, &req, FETCH_TIMEOUT_MS, on_fetched, f);
}

bool task_fetch(struct task *t, unsigned url_kinds, void (*then)(struct task *t))
{
	struct engine *e = t->e;
	struct job *job = &t->job;
	if (!job->n_url_parts || t->fetches_pending)
		return t->fetches_pending > 0;
	for (size_t i = 0; i < job->n_parts; i++) {
		struct job_part *part = &job->parts[i];
		if (!part->url || part->fetched || (url_kinds & (1u << part->type)))
			continue;
		if (!t->fetches)
			t->fetches = xcalloc(job->n_parts, sizeof *t->fetches);
		struct fetch *f = &t->fetches[i];
		f->t = t;
		f->part = part;
		t->fetches_pending++;
		if (e->fetching < http_pool_capacity(e->fetch_pool) && !e->fetch_head) {
			fetch_start(e, f);
			continue;
		}
		if (e->fetch_tail)
			e->fetch_tail->next = f;
		else
			e->fetch_head = f;
		e->fetch_tail = f;
	}
	if (!t->fetches_pending)
		return false;
	t->fetch_then = then; /* the callbacks run from the loop, never from here */
	return true;
}

void task_fetch_forget(struct task *t)
{
	struct engine *e = t->e;
	struct fetch *prev = NULL;
	if (!t->fetches)
		return;
	for (struct fetch *f = e->fetch_head, *next; f; f = next) {
		next = f->next;
		if (f->t != t) {
			prev = f;
			continue;
		}
		if (prev)
			prev->next = next;
		else
			e->fetch_head = next;
		if (e->fetch_tail == f)
			e->fetch_tail = prev;
	}
	free(t->fetches);
	t->fetches = NULL;
	free(t->fetch_error);
	t->fetch_error = NULL;
}
