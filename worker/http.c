/* http: libcurl's multi-socket API on the worker's libuv loop (see http.h).
 *
 * curl tells us which sockets to watch (socket_cb) and when to wake it
 * (timer_cb); libuv tells curl when a socket is ready (on_poll) or the timer
 * fired (on_timeout); check_done() hands finished transfers to their owners.
 *
 * A pool is one or more shards, each a curl multi handle with its own
 * connection cache of at most SHARD_CONNECTIONS connections. curl looks for
 * a free connection for each new transfer by walking every connection to its
 * host, so a call costs more the more connections one cache holds: with
 * 2,000 connections (make bench a) eight shards of 250 took a fifth off the
 * worker's CPU per call. A call goes to the shard with the most room.
 *
 * Easy handles are kept on a free list and reused, so a steady stream of
 * calls allocates little in curl once warm. A request's header lines are
 * the same for every call of a model (its key, its version header): they
 * become one curl_slist, kept by the pool and shared by every transfer with
 * the same lines, so a call in flight holds only its body. */
#include "http.h"

#include "log.h"
#include "timeutil.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define SHARD_CONNECTIONS 256 /* connections per multi handle, at most */
#define SHARDS_MAX        16

struct shard;

struct transfer {
	struct shard *shard;
	CURL *easy;
	struct buf body_out;        /* the request body, kept while in flight */
	struct curl_slist *headers; /* owned: when the pool's cache of lists is full */
	struct buf body;            /* the response body */
	int64_t retry_after_ms;
	int64_t started_ms;
	bool too_large;
	bool paused;          /* its chunk callback said HTTP_CHUNK_PAUSE */
	bool resumed;         /* http_pool_resume() asked: unpaused by the shard's resume timer */
	http_chunk_cb *chunk; /* a streamed transfer's (http_pool_stream), else NULL */
	http_done_cb *cb;
	void *opaque;
	struct transfer *next, *prev; /* the pool's active list, or next = free list */
};

/* A socket of curl's, watched on the loop.
 *
 * The sockets of connections are opened and closed through us
 * (CURLOPT_OPENSOCKETFUNCTION, CURLOPT_CLOSESOCKETFUNCTION), and their
 * watcher lives as long as the socket: curl's socket callback says
 * CURL_POLL_REMOVE whenever a connection goes back to the cache and asks
 * again for it on the next call, and each uv_poll_start() is an epoll_ctl()
 * delete and an add. So a removed socket stays watched for reading (an idle
 * connection is readable only when the server closes it, and then the
 * watcher stops until curl wants the socket again), and a watcher is started
 * only when the events curl wants change. Other sockets curl may ask us to
 * watch (a resolver's) get a watcher from the socket callback, freed on
 * CURL_POLL_REMOVE. */
struct sock {
	uv_poll_t poll;
	struct shard *shard;
	curl_socket_t fd;
	int events;  /* UV_READABLE | UV_WRITABLE being watched; 0: stopped */
	bool wanted; /* curl watches it: between its socket callback and REMOVE */
	bool owned;  /* opened through open_socket: closed through close_socket */
};

/* A header list shared by the transfers whose lines are these. */
struct shared_headers {
	char *lines; /* the lines, each ending in '\n' (may hold a key: wiped on free) */
	size_t len;
	struct curl_slist *list;
};

/* Distinct header lists kept; a request with yet others builds its own. */
#define SHARED_HEADERS_MAX 64

struct shard {
	struct http_pool *pool;
	CURLM *multi;
	uv_timer_t timer;
	uv_timer_t resume; /* unpauses the transfers http_pool_resume() asked for */
	int connections;   /* at most */
	int active;
};

struct http_pool {
	uv_loop_t *loop;
	struct shard shards[SHARDS_MAX];
	int n_shards;
	size_t max_body;
	char *ca_file;
	long tls_version; /* CURLOPT_HTTP_VERSION for https:// */
	long max_redirects;
	bool learning;    /* TLS with HTTP/2 asked for, and no answer yet */
	bool multiplexed; /* answers come over HTTP/2: HTTP_POOL_STREAMS per connection */
	int capacity;     /* http_pool_capacity() */
	int active;
	bool closing;
	int open_handles; /* libuv handles not yet closed, for a deferred free */
	struct transfer *free_list;
	struct transfer *active_list;
	struct deferred_failure *deferred;
	struct shared_headers shared[SHARED_HEADERS_MAX];
	size_t n_shared;
	struct sock **socks; /* by descriptor: the sockets opened through open_socket */
	size_t n_socks;
};

static void check_done(struct shard *sh);

/* ---------------------------------------------------------------- requests */

static void add_line(struct http_request *req, char *line)
{
	req->headers = xrealloc(req->headers, (req->n_headers + 1) * sizeof *req->headers);
	req->headers[req->n_headers++] = line;
}

void http_request_add_header(struct http_request *req, const char *fmt, ...)
{
	struct buf b = {0};
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	add_line(req, buf_take(&b));
}

void http_request_add_secret_header(struct http_request *req, const char *name_colon_space,
                                    const char *secret)
{
	size_t n = strlen(name_colon_space), k = strlen(secret);
	char *line = xmalloc(n + k + 1);
	memcpy(line, name_colon_space, n);
	memcpy(line + n, secret, k + 1);
	add_line(req, line);
}

static void wipe_headers(struct http_request *req)
{
	for (size_t i = 0; i < req->n_headers; i++) {
		/* Headers may carry a key: wipe them before the memory is reused. */
		explicit_bzero(req->headers[i], strlen(req->headers[i]));
		free(req->headers[i]);
	}
	free(req->headers);
	req->headers = NULL;
	req->n_headers = 0;
}

void http_request_clear(struct http_request *req)
{
	wipe_headers(req);
	buf_free(&req->url);
	buf_free(&req->body);
	memset(req, 0, sizeof *req);
}

/* ---------------------------------------------------------------- the loop */

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
	if (pool->closing && pool->open_handles == 0) {
		free(pool->socks);
		free(pool->ca_file);
		free(pool);
	}
}

static void on_handle_closed(uv_handle_t *h)
{
	struct shard *sh = h->data;
	struct http_pool *pool = sh->pool;
	if (h->type == UV_POLL)
		free(h); /* struct sock starts with its uv_poll_t */
	pool->open_handles--;
	pool_maybe_free(pool);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct sock *s = (struct sock *)p;
	struct shard *sh = s->shard;
	if (!s->wanted) {
		/* An idle connection that the server closed (or wrote to): curl
		 * finds out when it next looks at the connection. */
		uv_poll_stop(&s->poll);
		s->events = 0;
		return;
	}
	int flags = 0, running;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(sh->multi, s->fd, flags, &running);
	check_done(sh);
}

static void on_timeout(uv_timer_t *t)
{
	struct shard *sh = t->data;
	int running;
	curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(sh);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct shard *sh = userp;
	if (timeout_ms < 0)
		uv_timer_stop(&sh->timer);
	else
		uv_timer_start(&sh->timer, on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

/* A new watcher for fd, or NULL. */
static struct sock *sock_new(struct shard *sh, curl_socket_t fd, bool owned)
{
	struct sock *s = xcalloc(1, sizeof *s);
	s->shard = sh;
	s->fd = fd;
	s->owned = owned;
	if (uv_poll_init_socket(sh->pool->loop, &s->poll, fd) != 0) {
		free(s);
		return NULL;
	}
	s->poll.data = sh;
	sh->pool->open_handles++;
	return s;
}

static void sock_close(struct sock *s)
{
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

static void sock_watch(struct sock *s, int events)
{
	if (events == s->events)
		return;
	s->events = events;
	if (events)
		uv_poll_start(&s->poll, events, on_poll);
	else
		uv_poll_stop(&s->poll);
}

static struct sock *sock_of(struct http_pool *pool, curl_socket_t fd)
{
	return fd >= 0 && (size_t)fd < pool->n_socks ? pool->socks[fd] : NULL;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	struct shard *sh = userp;
	struct sock *s = socketp ? socketp : sock_of(sh->pool, fd);
	if (what == CURL_POLL_REMOVE) {
		if (!s)
			return 0;
		curl_multi_assign(sh->multi, fd, NULL);
		s->wanted = false;
		if (!s->owned)
			sock_close(s);
		else if (s->events & UV_WRITABLE)
			sock_watch(s,
			           UV_READABLE); /* a writable socket would wake the loop at once */
		return 0;
	}
	if (!s) {
		s = sock_new(sh, fd, false);
		if (!s)
			return -1;
	}
	if (!s->wanted) {
		s->wanted = true;
		curl_multi_assign(sh->multi, fd, s);
	}
	int events = 0;
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	sock_watch(s, events);
	return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: a connection's socket, with its watcher. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
	(void)purpose;
	struct transfer *t = clientp;
	struct http_pool *pool = t->shard->pool;
	curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
	if (fd < 0)
		return CURL_SOCKET_BAD;
	struct sock *s = sock_new(t->shard, fd, true);
	if (!s) {
		close(fd);
		return CURL_SOCKET_BAD;
	}
	if ((size_t)fd >= pool->n_socks) {
		size_t n = (size_t)fd + 1 > pool->n_socks * 2 ? (size_t)fd + 1 : pool->n_socks * 2;
		pool->socks = xrealloc(pool->socks, n * sizeof *pool->socks);
		memset(pool->socks + pool->n_socks, 0, (n - pool->n_socks) * sizeof *pool->socks);
		pool->n_socks = n;
	}
	pool->socks[fd] = s;
	return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: the watcher goes before the descriptor. */
static int close_socket(void *clientp, curl_socket_t fd)
{
	struct http_pool *pool = clientp;
	struct sock *s = sock_of(pool, fd);
	if (s) {
		pool->socks[fd] = NULL;
		sock_close(s);
	}
	return close(fd);
}

static int shard_init(struct http_pool *pool, struct shard *sh, int connections)
{
	sh->pool = pool;
	sh->connections = connections;
	sh->multi = curl_multi_init();
	if (!sh->multi)
		return -1;
	uv_timer_init(pool->loop, &sh->timer);
	sh->timer.data = sh;
	uv_timer_init(pool->loop, &sh->resume);
	sh->resume.data = sh;
	pool->open_handles += 2;
	curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
	curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
	curl_multi_setopt(sh->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(sh->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)HTTP_POOL_STREAMS);
	curl_multi_setopt(sh->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)connections);
	curl_multi_setopt(sh->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)connections);
	curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, (long)connections);
	return 0;
}

struct http_pool *http_pool_new(uv_loop_t *loop, const struct http_pool_options *opt, char *errstr,
                                size_t errstr_size)
{
	struct http_pool *pool = xcalloc(1, sizeof *pool);
	pool->loop = loop;
	pool->max_body = opt->max_body_bytes;
	pool->ca_file = opt->ca_file ? xstrdup(opt->ca_file) : NULL;
	pool->max_redirects = opt->max_redirects > 0 ? opt->max_redirects : 0;
	bool h2 = opt->tls_version != HTTP_VERSION_1_1;
	pool->tls_version = h2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1;
	pool->learning = opt->tls && h2;
	int mc = opt->max_connections > 0 ? opt->max_connections : 1;
	/* Until the first answer tells whether the server multiplexes, a call a
	 * connection. curl 7.88 then opens a connection for each of those first
	 * calls, CURLOPT_PIPEWAIT or not (a burst of 200 calls made 101); the
	 * ones HTTP/2 leaves unused are closed after CURLOPT_MAXAGE_CONN. */
	pool->capacity = mc;
	int n = (mc + SHARD_CONNECTIONS - 1) / SHARD_CONNECTIONS;
	pool->n_shards = n < SHARDS_MAX ? n : SHARDS_MAX;
	for (int k = 0; k < pool->n_shards; k++) {
		int share = mc / pool->n_shards + (k < mc % pool->n_shards ? 1 : 0);
		if (shard_init(pool, &pool->shards[k], share) != 0) {
			snprintf(errstr, errstr_size, "curl_multi_init failed");
			pool->n_shards = k;
			http_pool_free(pool);
			return NULL;
		}
	}
	return pool;
}

int http_pool_capacity(const struct http_pool *pool)
{
	return pool->capacity;
}

/* Calls a shard takes at once. */
static int shard_capacity(const struct shard *sh)
{
	return sh->connections * (sh->pool->multiplexed ? HTTP_POOL_STREAMS : 1);
}

/* The first answer of a pool that may multiplex sets its capacity: over
 * HTTP/2 a connection carries HTTP_POOL_STREAMS calls from now on; over
 * HTTP/1.1 one, so that a server that offers only HTTP/1.1 never gets calls
 * queued inside curl. */
static void note_version(struct http_pool *pool, CURL *e)
{
	long v = 0;
	curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &v);
	pool->learning = false;
	pool->multiplexed = v == CURL_HTTP_VERSION_2_0;
	pool->capacity = 0;
	for (int k = 0; k < pool->n_shards; k++)
		pool->capacity += shard_capacity(&pool->shards[k]);
}

/* ---------------------------------------------------------------- transfers */

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
	struct transfer *t = userp;
	size_t len = size * n;
	if (t->chunk) {
		long status = 0;
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status < 300) {
			/* Paused: curl keeps this piece and hands it over again
			 * once unpaused (CURLPAUSE_CONT). */
			if (t->paused)
				return CURL_WRITEFUNC_PAUSE;
			int rc = t->chunk(t->opaque, data, len);
			if (rc == HTTP_CHUNK_PAUSE)
				t->paused = true;
			return rc < 0 ? 0 : len;
		}
	}
	if (t->body.len + len > t->shard->pool->max_body) {
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
	if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0)
		t->retry_after_ms = http_retry_after_ms(data + sizeof name - 1,
		                                        len - (sizeof name - 1), time_now_ms());
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
static void easy_fixed_options(struct http_pool *pool, struct transfer *t)
{
	CURL *e = t->easy;
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, pool->tls_version);
	/* No CURLOPT_ACCEPT_ENCODING: asking for compressed answers cost 9% of
	 * curl's instructions per call (its header and the decoder set up for
	 * each transfer, http_floor under callgrind), and a provider's answer is
	 * a few KiB. */
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, pool);
	if (pool->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, pool->ca_file);
	if (pool->max_redirects) {
		/* A redirect may not downgrade to plain HTTP, nor leave for
		 * another scheme (file://, ...). */
		curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(e, CURLOPT_MAXREDIRS, pool->max_redirects);
		curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	}
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
		t->easy = curl_easy_init();
		if (!t->easy) {
			free(t);
			return NULL;
		}
		easy_fixed_options(pool, t);
	}
	t->next = t->prev = NULL;
	return t;
}

static void transfer_put(struct http_pool *pool, struct transfer *t)
{
	buf_free(&t->body_out);
	wipe_slist(t->headers);
	t->headers = NULL;
	buf_free(&t->body);
	t->cb = NULL;
	t->chunk = NULL;
	t->opaque = NULL;
	t->shard = NULL;
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

/* The header list for req: the pool's shared one with the same lines (made
 * on first use), else t's own. */
static const struct curl_slist *headers_for(struct http_pool *pool, struct transfer *t,
                                            const struct http_request *req)
{
	for (size_t i = 0; i < pool->n_shared; i++) {
		const struct shared_headers *sh = &pool->shared[i];
		if (same_lines(sh->lines, sh->len, req->headers, req->n_headers))
			return sh->list;
	}
	if (pool->n_shared == SHARED_HEADERS_MAX) {
		t->headers = slist_of(req->headers, req->n_headers);
		return t->headers;
	}
	struct buf lines = {.secret = true};
	for (size_t i = 0; i < req->n_headers; i++) {
		buf_puts(&lines, req->headers[i]);
		buf_append(&lines, "\n", 1);
	}
	struct shared_headers *sh = &pool->shared[pool->n_shared++];
	sh->len = lines.len;
	sh->lines = buf_take(&lines);
	sh->list = slist_of(req->headers, req->n_headers);
	return sh->list;
}

/* The shard with the most room: with the engine's slots (calls <= the pool's
 * capacity) one always has room, so curl never queues a call. */
static struct shard *shard_for(struct http_pool *pool)
{
	struct shard *best = &pool->shards[0];
	for (int k = 1; k < pool->n_shards; k++) {
		struct shard *sh = &pool->shards[k];
		if (shard_capacity(sh) - sh->active > shard_capacity(best) - best->active)
			best = sh;
	}
	return best;
}

static void pool_start(struct http_pool *pool, struct http_request *req, int64_t timeout_ms,
                       http_chunk_cb *chunk, http_done_cb *cb, void *opaque);

void http_pool_start(struct http_pool *pool, struct http_request *req, int64_t timeout_ms,
                     http_done_cb *cb, void *opaque)
{
	pool_start(pool, req, timeout_ms, NULL, cb, opaque);
}

void http_pool_stream(struct http_pool *pool, struct http_request *req, int64_t timeout_ms,
                      http_chunk_cb *chunk, http_done_cb *cb, void *opaque)
{
	pool_start(pool, req, timeout_ms, chunk, cb, opaque);
}

static void pool_start(struct http_pool *pool, struct http_request *req, int64_t timeout_ms,
                       http_chunk_cb *chunk, http_done_cb *cb, void *opaque)
{
	struct transfer *t = transfer_get(pool);
	if (!t) {
		http_request_clear(req);
		fail_later(pool, cb, opaque);
		return;
	}
	struct shard *sh = shard_for(pool);
	t->shard = sh;
	t->cb = cb;
	t->chunk = chunk;
	t->opaque = opaque;
	t->retry_after_ms = -1;
	t->too_large = false;
	t->paused = t->resumed = false;
	t->started_ms = time_mono_ms();
	const struct curl_slist *headers = headers_for(pool, t, req);

	CURL *e = t->easy;
	bool tls = strncmp(req->url.data, "https://", 8) == 0;
	curl_easy_setopt(e, CURLOPT_URL, req->url.data);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	if (req->method == HTTP_GET) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); /* also undoes a POST of the handle's */
	} else {
		/* curl keeps a pointer to the body, not a copy: it stays with t. */
		t->body_out = req->body;
		req->body = (struct buf){0};
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body_out.data ? t->body_out.data : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_out.len);
	}
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(timeout_ms < 10000 ? timeout_ms : 10000));
	/* Waiting to learn whether a connection multiplexes pays off only with
	 * TLS, where ALPN tells at connect time; on plain HTTP curl learns it from
	 * the first response, and every call would queue behind a slow one. */
	curl_easy_setopt(e, CURLOPT_PIPEWAIT,
	                 tls && pool->tls_version != CURL_HTTP_VERSION_1_1 ? 1L : 0L);
	/* curl has its copy of the URL; the header lines are in a list. */
	http_request_clear(req);
	if (curl_multi_add_handle(sh->multi, e) != CURLM_OK) {
		transfer_put(pool, t);
		fail_later(pool, cb, opaque);
		return;
	}
	sh->active++;
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
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR: return HTTP_CONNECT_ERROR;
	default: return HTTP_OTHER_ERROR;
	}
}

static void check_done(struct shard *sh)
{
	struct http_pool *pool = sh->pool;
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(sh->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *e = m->easy_handle;
		CURLcode rc = m->data.result;
		struct transfer *t = NULL;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&t);
		curl_multi_remove_handle(sh->multi, e);
		active_unlink(pool, t);
		sh->active--;
		pool->active--;
		struct http_response resp = {
		        .error = error_of(rc, t->too_large),
		        .retry_after_ms = t->retry_after_ms,
		        .latency_ms = time_mono_ms() - t->started_ms,
		        .body = t->body.data ? t->body.data : "",
		        .body_len = t->body.len,
		};
		if (resp.error == HTTP_OK) {
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp.status);
			curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, (char **)&resp.content_type);
			if (pool->learning)
				note_version(pool, e);
		} else {
			resp.error_text = curl_easy_strerror(rc);
		}
		if (resp.error != HTTP_OK && resp.error != HTTP_TOO_LARGE)
			log_debug("http transfer failed", "error", curl_easy_strerror(rc), NULL);
		http_done_cb *cb = t->cb;
		void *opaque = t->opaque;
		/* The callback may start new transfers; hand t back after it. */
		cb(opaque, &resp);
		transfer_put(pool, t);
	}
}

/* Unpauses, from the loop, the shard's transfers that http_pool_resume()
 * asked for: never from within one of curl's callbacks, and never inside
 * the caller's (curl hands the kept piece over within curl_easy_pause). */
static void on_resume(uv_timer_t *timer)
{
	struct shard *sh = timer->data;
	struct http_pool *pool = sh->pool;
	for (bool again = true; again;) {
		again = false;
		for (struct transfer *t = pool->active_list; t; t = t->next) {
			if (t->shard != sh || !t->resumed)
				continue;
			t->resumed = t->paused = false;
			curl_easy_pause(t->easy, CURLPAUSE_CONT);
			again = true; /* the list may have changed meanwhile */
			break;
		}
	}
	int running;
	curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(sh);
}

void http_pool_resume(struct http_pool *pool, void *opaque)
{
	for (struct transfer *t = pool->active_list; t; t = t->next) {
		if (t->opaque == opaque && t->chunk && t->paused && !t->resumed) {
			t->resumed = true;
			uv_timer_start(&t->shard->resume, on_resume, 0, 0);
		}
	}
}

int http_pool_active(const struct http_pool *pool)
{
	return pool->active;
}

void http_pool_free(struct http_pool *pool)
{
	if (!pool)
		return;
	while (pool->deferred) {
		struct deferred_failure *d = pool->deferred;
		deferred_unlink(d);
		uv_close((uv_handle_t *)&d->timer, deferred_closed);
	}
	/* Removing handles makes curl close its sockets through socket_cb. */
	while (pool->active_list) {
		struct transfer *t = pool->active_list;
		active_unlink(pool, t);
		curl_multi_remove_handle(t->shard->multi, t->easy);
		transfer_put(pool, t);
	}
	pool->active = 0;
	while (pool->free_list) {
		struct transfer *t = pool->free_list;
		pool->free_list = t->next;
		curl_easy_cleanup(t->easy);
		free(t);
	}
	for (int k = 0; k < pool->n_shards; k++) {
		struct shard *sh = &pool->shards[k];
		sh->active = 0;
		curl_multi_cleanup(sh->multi);
		uv_close((uv_handle_t *)&sh->timer, on_handle_closed);
		uv_close((uv_handle_t *)&sh->resume, on_handle_closed);
	}
	/* After every handle that could point at them is gone. */
	for (size_t i = 0; i < pool->n_shared; i++) {
		struct shared_headers *sh = &pool->shared[i];
		explicit_bzero(sh->lines, sh->len);
		free(sh->lines);
		wipe_slist(sh->list);
	}
	pool->n_shared = 0;
	pool->closing = true;
	pool_maybe_free(pool);
}
