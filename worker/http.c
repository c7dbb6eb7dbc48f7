/* http: libcurl multi-socket on libuv, and h1 for plain HTTP.
 *
 * A pool sends its http:// calls through h1 (h1.h: the worker's own
 * HTTP/1.1 client, a fraction of curl's CPU per call) and the rest through
 * curl: TLS, HTTP/2, and every call when a proxy is set in the environment
 * (curl honours http_proxy and all_proxy; h1 does not) or when
 * PROMPTYARD_HTTP_CLIENT=curl asks for curl alone.
 *
 * curl tells us which sockets to watch (socket_cb) and when to wake it
 * (timer_cb); libuv tells curl when a socket is ready (on_poll) or the timer
 * fired (on_timeout); check_done() hands finished transfers to their owners.
 * Easy handles are kept on a free list and reused, so a steady stream of
 * calls allocates nothing in curl once warm. A request's header lines are
 * the same for every call of a model (its key, its version header): they
 * become one curl_slist, kept by the pool and shared by every transfer with
 * the same lines, so a call in flight holds only its body. */
#include "http.h"

#include "h1.h"
#include "log.h"
#include "timeutil.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

struct transfer {
	struct http_pool *pool;
	CURL *easy;
	struct http_request req;    /* only the body is kept while in flight */
	struct curl_slist *headers; /* owned: when the pool's cache is full */
	struct buf body;            /* the response body */
	int64_t retry_after_ms;
	int64_t started_ms;
	bool too_large;
	http_done_cb *cb;
	void *opaque;
	struct transfer *next, *prev; /* the pool's active list, or next = free list */
};

/* A socket curl asked us to watch. */
struct sock {
	uv_poll_t poll;
	struct http_pool *pool;
	curl_socket_t fd;
};

/* A header list shared by the transfers whose lines are these. */
struct shared_headers {
	char *lines; /* the lines, each ending in '\n' (may hold a key: wiped on free) */
	size_t len;
	struct curl_slist *list;
};

/* Distinct header lists kept; a request with yet others builds its own. */
#define SHARED_HEADERS_MAX 64

struct http_pool {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	size_t max_body;
	int active;
	bool closing;
	int open_handles; /* libuv handles not yet closed, for a deferred free */
	struct transfer *free_list;
	struct transfer *active_list;
	struct deferred_failure *deferred;
	struct shared_headers shared[SHARED_HEADERS_MAX];
	size_t n_shared;
	struct h1_pool *h1; /* plain-HTTP calls; NULL when curl takes them too */
};

static void check_done(struct http_pool *pool);

/* Whether plain-HTTP calls go through h1 (see the file's comment). */
static bool h1_wanted(void)
{
	static const char *const proxy_vars[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
	const char *client = getenv("PROMPTYARD_HTTP_CLIENT");
	if (client && strcmp(client, "curl") == 0)
		return false;
	for (size_t i = 0; i < sizeof proxy_vars / sizeof proxy_vars[0]; i++) {
		const char *v = getenv(proxy_vars[i]);
		if (v && *v)
			return false;
	}
	return true;
}

int http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void http_global_cleanup(void)
{
	curl_global_cleanup();
}

static void pool_maybe_free(struct http_pool *pool)
{
	if (pool->closing && pool->open_handles == 0)
		free(pool);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct http_pool *pool = h->data;
	if (h->type == UV_POLL)
		free(h); /* struct sock starts with its uv_poll_t */
	pool->open_handles--;
	pool_maybe_free(pool);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct sock *s = (struct sock *)p;
	struct http_pool *pool = s->pool;
	int flags = 0, running;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(pool->multi, s->fd, flags, &running);
	check_done(pool);
}

static void on_timeout(uv_timer_t *t)
{
	struct http_pool *pool = t->data;
	int running;
	curl_multi_socket_action(pool->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(pool);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct http_pool *pool = userp;
	if (timeout_ms < 0)
		uv_timer_stop(&pool->timer);
	else
		uv_timer_start(&pool->timer, on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	struct http_pool *pool = userp;
	struct sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			uv_poll_stop(&s->poll);
			curl_multi_assign(pool->multi, fd, NULL);
			uv_close((uv_handle_t *)&s->poll, on_handle_closed);
		}
		return 0;
	}
	if (!s) {
		s = xcalloc(1, sizeof *s);
		s->pool = pool;
		s->fd = fd;
		if (uv_poll_init_socket(pool->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->poll.data = pool;
		pool->open_handles++;
		curl_multi_assign(pool->multi, fd, s);
	}
	int events = 0;
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, on_poll);
	return 0;
}

struct http_pool *http_pool_new(uv_loop_t *loop, int max_connections, size_t max_body_bytes,
                                char *errstr, size_t errstr_size)
{
	struct http_pool *pool = xcalloc(1, sizeof *pool);
	pool->loop = loop;
	pool->max_body = max_body_bytes;
	pool->multi = curl_multi_init();
	if (!pool->multi) {
		snprintf(errstr, errstr_size, "curl_multi_init failed");
		free(pool);
		return NULL;
	}
	uv_timer_init(loop, &pool->timer);
	pool->timer.data = pool;
	pool->open_handles = 1;
	curl_multi_setopt(pool->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(pool->multi, CURLMOPT_SOCKETDATA, pool);
	curl_multi_setopt(pool->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(pool->multi, CURLMOPT_TIMERDATA, pool);
	curl_multi_setopt(pool->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(pool->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_connections);
	curl_multi_setopt(pool->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_connections);
	curl_multi_setopt(pool->multi, CURLMOPT_MAXCONNECTS, (long)max_connections);
	if (h1_wanted())
		pool->h1 = h1_pool_new(loop, max_connections, max_body_bytes);
	return pool;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
	struct transfer *t = userp;
	size_t len = size * n;
	if (t->body.len + len > t->pool->max_body) {
		t->too_large = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	buf_append(&t->body, data, len);
	return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
	struct transfer *t = userp;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
		const char *v = data + sizeof name - 1;
		size_t vl = len - (sizeof name - 1);
		while (vl > 0 && (v[vl - 1] == '\n' || v[vl - 1] == '\r' || v[vl - 1] == ' '))
			vl--;
		t->retry_after_ms = http_retry_after_ms(v, vl);
	}
	return len;
}

static struct curl_slist *slist_of(char *const *lines, size_t n)
{
	struct curl_slist *list = NULL;
	for (size_t i = 0; i < n; i++)
		list = curl_slist_append(list, lines[i]);
	/* "Expect: 100-continue" costs a round trip on large bodies for nothing. */
	return curl_slist_append(list, "Expect:");
}

static void wipe_slist(struct curl_slist *list)
{
	for (struct curl_slist *l = list; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

/* The options every call of a handle shares, set once when it is made. */
static void easy_fixed_options(struct transfer *t)
{
	CURL *e = t->easy;
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* Each transfer in flight holds a receive buffer of this size, and with
	 * thousands in flight it is the largest part of a job's memory: curl's
	 * 16 KiB default left a page touched per job (3.3 KiB more per in-flight
	 * job, make bench c). A response larger than this takes more reads: over
	 * TLS they come from OpenSSL's record buffer, on plain HTTP each is a
	 * recv(); a provider answer (headers and a short completion) is 1-2 KiB. */
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
}

static struct transfer *transfer_get(struct http_pool *pool)
{
	struct transfer *t = pool->free_list;
	if (t) {
		/* Reused as it is: the fixed options stay, every per-call one is
		 * set again by http_pool_start. */
		pool->free_list = t->next;
	} else {
		t = xcalloc(1, sizeof *t);
		t->pool = pool;
		t->easy = curl_easy_init();
		if (!t->easy) {
			free(t);
			return NULL;
		}
		easy_fixed_options(t);
	}
	t->next = t->prev = NULL;
	return t;
}

static void transfer_put(struct http_pool *pool, struct transfer *t)
{
	http_request_clear(&t->req);
	wipe_slist(t->headers);
	t->headers = NULL;
	buf_free(&t->body);
	t->cb = NULL;
	t->opaque = NULL;
	t->next = pool->free_list;
	pool->free_list = t;
}

/* Finishes a transfer that never got going, from the loop rather than from
 * within http_pool_start(). */
struct deferred_failure {
	uv_timer_t timer;
	struct http_pool *pool;
	http_done_cb *cb;
	void *opaque;
	struct deferred_failure *next, *prev;
};

static void deferred_unlink(struct deferred_failure *d)
{
	if (d->prev)
		d->prev->next = d->next;
	else
		d->pool->deferred = d->next;
	if (d->next)
		d->next->prev = d->prev;
}

static void deferred_closed(uv_handle_t *h)
{
	free(h);
}

static void deferred_fire(uv_timer_t *timer)
{
	struct deferred_failure *d = (struct deferred_failure *)timer;
	struct http_response resp = {.error = HTTP_OTHER_ERROR, .retry_after_ms = -1, .body = ""};
	deferred_unlink(d);
	d->cb(d->opaque, &resp);
	uv_close((uv_handle_t *)timer, deferred_closed);
}

static void fail_later(struct http_pool *pool, http_done_cb *cb, void *opaque)
{
	struct deferred_failure *d = xcalloc(1, sizeof *d);
	d->pool = pool;
	d->cb = cb;
	d->opaque = opaque;
	d->next = pool->deferred;
	if (d->next)
		d->next->prev = d;
	pool->deferred = d;
	uv_timer_init(pool->loop, &d->timer);
	uv_timer_start(&d->timer, deferred_fire, 0, 0);
}

/* Whether lines (each ending in '\n') are exactly the request's n lines. */
static bool same_lines(const char *lines, size_t len, char *const *req, size_t n)
{
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(req[i]);
		if (at + l + 1 > len || memcmp(lines + at, req[i], l) != 0 || lines[at + l] != '\n')
			return false;
		at += l + 1;
	}
	return at == len;
}

/* The header list for t's request: the pool's shared one with the same lines
 * (made on first use), else t's own. t's header lines are freed either way. */
static const struct curl_slist *headers_for(struct http_pool *pool, struct transfer *t)
{
	const struct curl_slist *found = NULL;
	for (size_t i = 0; i < pool->n_shared && !found; i++) {
		const struct shared_headers *sh = &pool->shared[i];
		if (same_lines(sh->lines, sh->len, t->req.headers, t->req.n_headers))
			found = sh->list;
	}
	if (!found && pool->n_shared < SHARED_HEADERS_MAX) {
		struct buf lines = {.secret = true};
		for (size_t i = 0; i < t->req.n_headers; i++) {
			buf_puts(&lines, t->req.headers[i]);
			buf_append(&lines, "\n", 1);
		}
		struct shared_headers *sh = &pool->shared[pool->n_shared++];
		sh->len = lines.len;
		sh->lines = buf_take(&lines);
		sh->list = slist_of(t->req.headers, t->req.n_headers);
		found = sh->list;
	} else if (!found) {
		t->headers = slist_of(t->req.headers, t->req.n_headers);
		found = t->headers;
	}
	struct buf url = t->req.url, body = t->req.body;
	t->req.url = t->req.body = (struct buf){0};
	http_request_clear(&t->req); /* wipes the lines */
	t->req.url = url;
	t->req.body = body;
	return found;
}

void http_pool_start(struct http_pool *pool, struct http_request *req, int64_t timeout_ms,
                     http_done_cb *cb, void *opaque)
{
	if (pool->h1 && h1_start(pool->h1, req, timeout_ms, cb, opaque) == 0)
		return;
	struct transfer *t = transfer_get(pool);
	if (!t) {
		http_request_clear(req);
		fail_later(pool, cb, opaque);
		return;
	}
	t->req = *req;
	memset(req, 0, sizeof *req);
	t->cb = cb;
	t->opaque = opaque;
	t->retry_after_ms = -1;
	t->too_large = false;
	t->started_ms = time_mono_ms();
	const struct curl_slist *headers = headers_for(pool, t);

	CURL *e = t->easy;
	curl_easy_setopt(e, CURLOPT_URL, t->req.url.data);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->req.body.data ? t->req.body.data : "");
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->req.body.len);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(timeout_ms < 10000 ? timeout_ms : 10000));
	/* Waiting to learn whether a connection multiplexes pays off only with
	 * TLS, where ALPN tells at connect time; on plain HTTP curl learns it from
	 * the first response, and every call would queue behind a slow one. */
	curl_easy_setopt(e, CURLOPT_PIPEWAIT,
	                 strncmp(t->req.url.data, "https://", 8) == 0 ? 1L : 0L);
	/* curl has its copy of the URL; the header lines are in a list. */
	buf_free(&t->req.url);
	if (curl_multi_add_handle(pool->multi, e) != CURLM_OK) {
		transfer_put(pool, t);
		fail_later(pool, cb, opaque);
		return;
	}
	pool->active++;
	t->next = pool->active_list;
	if (t->next)
		t->next->prev = t;
	pool->active_list = t;
}

static void active_unlink(struct http_pool *pool, struct transfer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		pool->active_list = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
}

static enum http_error error_of(CURLcode rc, bool too_large)
{
	if (too_large)
		return HTTP_TOO_LARGE;
	switch (rc) {
	case CURLE_OK: return HTTP_OK;
	case CURLE_OPERATION_TIMEDOUT: return HTTP_TIMEOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR: return HTTP_CONNECT_ERROR;
	default: return HTTP_OTHER_ERROR;
	}
}

static void check_done(struct http_pool *pool)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(pool->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *e = m->easy_handle;
		CURLcode rc = m->data.result;
		struct transfer *t = NULL;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&t);
		curl_multi_remove_handle(pool->multi, e);
		active_unlink(pool, t);
		pool->active--;
		struct http_response resp = {
		        .error = error_of(rc, t->too_large),
		        .retry_after_ms = t->retry_after_ms,
		        .latency_ms = time_mono_ms() - t->started_ms,
		        .body = t->body.data ? t->body.data : "",
		        .body_len = t->body.len,
		};
		if (resp.error == HTTP_OK)
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp.status);
		if (resp.error != HTTP_OK && resp.error != HTTP_TOO_LARGE)
			log_debug("http transfer failed", "error", curl_easy_strerror(rc), NULL);
		http_done_cb *cb = t->cb;
		void *opaque = t->opaque;
		/* The callback may start new transfers; hand t back after it. */
		cb(opaque, &resp);
		transfer_put(pool, t);
	}
}

int http_pool_active(const struct http_pool *pool)
{
	return pool->active + (pool->h1 ? h1_active(pool->h1) : 0);
}

void http_pool_free(struct http_pool *pool)
{
	if (!pool)
		return;
	h1_pool_free(pool->h1);
	pool->h1 = NULL;
	/* Removing handles makes curl close its sockets through socket_cb. */
	while (pool->deferred) {
		struct deferred_failure *d = pool->deferred;
		deferred_unlink(d);
		uv_close((uv_handle_t *)&d->timer, deferred_closed);
	}
	while (pool->active_list) {
		struct transfer *t = pool->active_list;
		active_unlink(pool, t);
		curl_multi_remove_handle(pool->multi, t->easy);
		transfer_put(pool, t);
	}
	pool->active = 0;
	while (pool->free_list) {
		struct transfer *t = pool->free_list;
		pool->free_list = t->next;
		curl_easy_cleanup(t->easy);
		free(t);
	}
	curl_multi_cleanup(pool->multi);
	/* After every handle that could point at them is gone. */
	for (size_t i = 0; i < pool->n_shared; i++) {
		struct shared_headers *sh = &pool->shared[i];
		explicit_bzero(sh->lines, sh->len);
		free(sh->lines);
		wipe_slist(sh->list);
	}
	pool->n_shared = 0;
	pool->closing = true;
	uv_close((uv_handle_t *)&pool->timer, on_handle_closed);
}
