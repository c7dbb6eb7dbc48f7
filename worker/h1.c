/* h1: an HTTP/1.1 client on libuv for plain-HTTP providers (see h1.h).
 *
 * A call (struct h1_call) waits in the pool's queue until a connection is
 * free, then its request moves to the connection (struct h1_conn), which
 * writes it with one uv_write and parses the answer as it arrives. The
 * connection goes back to the idle list (most recent first) when the answer
 * is complete and the server keeps it alive. Every call has its own timer
 * for the whole attempt. Reads land in one buffer of the pool's: the loop is
 * one thread and each read is consumed before the next, so a connection
 * holds no receive buffer of its own while it waits (make bench c).
 *
 * A request sent on a reused connection that the server closes without a
 * byte of answer is sent once more on a new connection, as curl does: a
 * server may close a kept-alive connection just as a request leaves. */
#include "h1.h"

#include "log.h"
#include "timeutil.h"

#include <curl/curl.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEAD_MAX       (64 * 1024) /* an answer's head, and a chunk-size or trailer line */
#define READ_BUF       (64 * 1024)
#define IDLE_MAX_MS    118000 /* an idle connection older than this is not reused (curl's default) */
#define ADDR_TTL_MS    60000  /* a host name's addresses are looked up again after this */
#define ADDR_MAX       8
#define CONNECT_CAP_MS 10000 /* one address's connect, at most (as http.c sets curl's) */

enum conn_state { CONN_CONNECTING, CONN_IDLE, CONN_BUSY, CONN_CLOSING };

/* Where a connection is in the answer it reads. */
enum read_state {
	RS_HEAD,       /* status line and headers, up to the empty line */
	RS_LENGTH,     /* a Content-Length body */
	RS_CHUNK_SIZE, /* a chunk-size line */
	RS_CHUNK_DATA,
	RS_CHUNK_END, /* the CRLF after a chunk's data */
	RS_TRAILER,   /* trailer lines after the last chunk, up to the empty line */
	RS_UNTIL_EOF, /* a body without a length: it ends when the server closes */
};

/* Where a call is: in exactly one place from h1_start to its callback. */
enum call_place { CALL_FREE, CALL_QUEUED, CALL_FAILING, CALL_ON_CONN };

struct h1_call;
struct call_list {
	struct h1_call *head, *tail;
};

struct h1_call {
	uv_timer_t timer; /* the whole call's timeout; also fires a failure found in h1_start */
	struct h1_pool *pool;
	struct h1_conn *conn; /* NULL while waiting for one */
	struct buf head;      /* the request head (holds the key: wiped when done) */
	struct buf body;      /* the request body */
	struct buf resp;      /* the answer's body */
	long status;
	int64_t retry_after_ms;
	uint64_t started_ms;
	enum http_error failed; /* a failure to report from the timer, else HTTP_OK */
	enum call_place place;
	bool retried;
	http_done_cb *cb;
	void *opaque;
	struct h1_call *next, *prev; /* the queue, or next = free list */
};

struct h1_conn {
	uv_tcp_t tcp; /* first: the handle's pointer is the connection's */
	struct h1_pool *pool;
	enum conn_state state;
	struct h1_call *call;
	uv_connect_t connect_req;
	uv_write_t write_req;
	uv_timer_t connect_timer; /* one address's connect (CONNECT_CAP_MS) */
	struct buf head, body;    /* the request being sent: the call's, moved here */
	bool write_pending;
	bool reused; /* has answered a request before */
	int addr_index;
	uint64_t idle_since_ms;
	/* The answer being read. */
	enum read_state rs;
	struct buf line; /* the head, a chunk-size line or a trailer line, as it comes */
	uint64_t left;   /* bytes left of a Content-Length body or of a chunk */
	size_t rx;       /* bytes of answer received */
	bool keep_alive;
	int open_handles;                    /* tcp and connect_timer */
	struct h1_conn *next, *prev;         /* the idle list */
	struct h1_conn *all_next, *all_prev; /* every connection not yet closed */
};

struct h1_pool {
	uv_loop_t *loop;
	int max_connections;
	size_t max_body;
	int n_conns; /* connections not closing */
	int active;  /* calls under way */
	bool closing;
	int open_handles; /* libuv handles of calls and connections not yet closed */
	bool gai_pending;
	struct h1_conn *idle;
	struct h1_conn *all;
	struct call_list queue;   /* calls waiting for a connection, oldest first */
	struct call_list failing; /* calls whose failure fires from their timer */
	struct h1_call *free_calls;
	/* The origin, set by the first call. */
	bool has_origin;
	char host[256]; /* as in the URL ("[::1]" keeps its brackets) */
	char port[8];
	struct buf host_line; /* "Host: host[:port]\r\n" */
	/* Its addresses: numeric at once, else from getaddrinfo (ADDR_TTL_MS). */
	struct sockaddr_storage addr[ADDR_MAX];
	int n_addr;
	uint64_t addr_at_ms;
	bool numeric;
	bool lookup_failed; /* set while dispatch() fails the calls a failed lookup held */
	uv_getaddrinfo_t gai;
	char read_buf[READ_BUF];
};

static void dispatch(struct h1_pool *pool);
static void conn_close(struct h1_conn *c);
static void conn_failed(struct h1_conn *c, int uv_err);

/* ---------------------------------------------------------------- pool life */

struct h1_pool *h1_pool_new(uv_loop_t *loop, int max_connections, size_t max_body_bytes)
{
	struct h1_pool *pool = xcalloc(1, sizeof *pool);
	pool->loop = loop;
	pool->max_connections = max_connections > 0 ? max_connections : 1;
	pool->max_body = max_body_bytes;
	return pool;
}

static void pool_maybe_free(struct h1_pool *pool)
{
	if (!pool->closing || pool->open_handles > 0 || pool->gai_pending)
		return;
	buf_free(&pool->host_line);
	free(pool);
}

int h1_active(const struct h1_pool *pool)
{
	return pool->active;
}

/* ---------------------------------------------------------------- calls */

static void calls_unlink(struct call_list *l, struct h1_call *call)
{
	if (call->prev)
		call->prev->next = call->next;
	else
		l->head = call->next;
	if (call->next)
		call->next->prev = call->prev;
	else
		l->tail = call->prev;
	call->next = call->prev = NULL;
	call->place = CALL_FREE;
}

/* Puts call at the front or the back of l. */
static void calls_push(struct call_list *l, struct h1_call *call, bool front, enum call_place place)
{
	if (front) {
		call->prev = NULL;
		call->next = l->head;
		if (l->head)
			l->head->prev = call;
		else
			l->tail = call;
		l->head = call;
	} else {
		call->next = NULL;
		call->prev = l->tail;
		if (l->tail)
			l->tail->next = call;
		else
			l->head = call;
		l->tail = call;
	}
	call->place = place;
}

static void wipe_buf(struct buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->len);
	buf_free(b);
}

/* Ends call with err (and the status and body read, if err is HTTP_OK): its
 * callback runs now, then the call goes back to the free list. The call is
 * in no queue and on no connection by now. */
static void call_finish(struct h1_call *call, enum http_error err)
{
	struct h1_pool *pool = call->pool;
	uv_timer_stop(&call->timer);
	pool->active--;
	struct http_response resp = {
	        .error = err,
	        .status = err == HTTP_OK ? call->status : 0,
	        .body = call->resp.data ? call->resp.data : "",
	        .body_len = call->resp.len,
	        .retry_after_ms = call->retry_after_ms,
	        .latency_ms = (int64_t)(uv_now(pool->loop) - call->started_ms),
	};
	call->cb(call->opaque, &resp);
	wipe_buf(&call->head);
	buf_free(&call->body);
	buf_free(&call->resp);
	call->cb = NULL;
	call->opaque = NULL;
	call->place = CALL_FREE;
	call->next = pool->free_calls;
	pool->free_calls = call;
}

static void conn_drop(struct h1_conn *c);

static void call_on_timer(uv_timer_t *t)
{
	struct h1_call *call = t->data;
	struct h1_pool *pool = call->pool;
	enum http_error err = call->failed != HTTP_OK ? call->failed : HTTP_TIMEOUT;
	switch (call->place) {
	case CALL_ON_CONN: {
		struct h1_conn *c = call->conn;
		c->call = NULL;
		call->conn = NULL;
		call->place = CALL_FREE;
		conn_drop(c);
		break;
	}
	case CALL_QUEUED: calls_unlink(&pool->queue, call); break;
	case CALL_FAILING: calls_unlink(&pool->failing, call); break;
	case CALL_FREE: break;
	}
	if (err == HTTP_TIMEOUT)
		log_debug("http call timed out", NULL);
	call_finish(call, err);
}

/* Fails call (in no queue and on no connection) from the loop, not from the
 * current stack, which may be h1_start's. */
static void call_fail_soon(struct h1_call *call, enum http_error err)
{
	struct h1_pool *pool = call->pool;
	call->failed = err;
	calls_push(&pool->failing, call, true, CALL_FAILING);
	uv_timer_start(&call->timer, call_on_timer, 0, 0);
}

/* ---------------------------------------------------------------- connections */

static void conn_on_closed(uv_handle_t *h)
{
	struct h1_conn *c = h->data;
	struct h1_pool *pool = c->pool;
	if (--c->open_handles > 0)
		return;
	wipe_buf(&c->head);
	buf_free(&c->body);
	buf_free(&c->line);
	free(c);
	pool->open_handles--;
	pool_maybe_free(pool);
}

static void idle_unlink(struct h1_conn *c)
{
	struct h1_pool *pool = c->pool;
	if (c->prev)
		c->prev->next = c->next;
	else
		pool->idle = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

static void idle_push(struct h1_conn *c)
{
	struct h1_pool *pool = c->pool;
	c->state = CONN_IDLE;
	c->idle_since_ms = uv_now(pool->loop);
	c->prev = NULL;
	c->next = pool->idle;
	if (c->next)
		c->next->prev = c;
	pool->idle = c;
}

/* Closes c, whose call (if any) has been taken off it. libuv writes nothing
 * more from its buffers once it is closing. */
static void conn_close(struct h1_conn *c)
{
	struct h1_pool *pool = c->pool;
	if (c->state == CONN_CLOSING)
		return;
	if (c->state == CONN_IDLE)
		idle_unlink(c);
	c->state = CONN_CLOSING;
	pool->n_conns--;
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		pool->all = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	uv_close((uv_handle_t *)&c->connect_timer, conn_on_closed);
	uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
}

/* Closes c and gives its slot to a waiting call. */
static void conn_drop(struct h1_conn *c)
{
	struct h1_pool *pool = c->pool;
	conn_close(c);
	if (pool->queue.head)
		dispatch(pool);
}

/* The request moves between a call and a connection as whole buffers. */
static void request_move(struct buf *to_head, struct buf *to_body, struct buf *from_head,
                         struct buf *from_body)
{
	*to_head = *from_head;
	*to_body = *from_body;
	*from_head = *from_body = (struct buf){0};
}

/* Takes the call off c, its request with it, so it can go elsewhere. */
static struct h1_call *conn_take_call(struct h1_conn *c)
{
	struct h1_call *call = c->call;
	c->call = NULL;
	call->conn = NULL;
	call->place = CALL_FREE;
	request_move(&call->head, &call->body, &c->head, &c->body);
	return call;
}

static void conn_on_written(uv_write_t *w, int status)
{
	struct h1_conn *c = w->data;
	c->write_pending = false;
	if (status < 0 && status != UV_ECANCELED && c->state == CONN_BUSY)
		conn_failed(c, status);
}

static void conn_send(struct h1_conn *c)
{
	uv_buf_t bufs[2] = {
	        uv_buf_init(c->head.data, (unsigned)c->head.len),
	        uv_buf_init(c->body.data, (unsigned)c->body.len),
	};
	c->rs = RS_HEAD;
	c->rx = 0;
	c->line.len = 0;
	c->write_pending = true;
	int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, c->body.len ? 2 : 1,
	                  conn_on_written);
	if (rc < 0) {
		c->write_pending = false;
		struct h1_call *call = conn_take_call(c);
		call_fail_soon(call, HTTP_CONNECT_ERROR);
		conn_drop(c);
	}
}

/* Puts call on c: an idle connection sends at once, a connecting one when it
 * is connected. */
static void conn_assign(struct h1_conn *c, struct h1_call *call)
{
	c->call = call;
	call->conn = c;
	call->place = CALL_ON_CONN;
	request_move(&c->head, &c->body, &call->head, &call->body);
	if (c->state == CONN_IDLE) {
		idle_unlink(c);
		c->state = CONN_BUSY;
		conn_send(c);
	}
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)suggested;
	struct h1_conn *c = h->data;
	*b = uv_buf_init(c->pool->read_buf, sizeof c->pool->read_buf);
}

static void conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void conn_on_connect_timer(uv_timer_t *t)
{
	struct h1_conn *c = t->data;
	conn_failed(c, UV_ETIMEDOUT);
}

static void conn_on_connect(uv_connect_t *req, int status)
{
	struct h1_conn *c = req->data;
	if (status == UV_ECANCELED || c->state == CONN_CLOSING)
		return;
	uv_timer_stop(&c->connect_timer);
	if (status < 0) {
		conn_failed(c, status);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, 60);
	if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_on_read) < 0) {
		conn_failed(c, UV_EIO);
		return;
	}
	if (c->call) {
		c->state = CONN_BUSY;
		conn_send(c);
	} else {
		idle_push(c);
	}
}

/* A new connection to the pool's address addr_index, for call. */
static void conn_open(struct h1_pool *pool, struct h1_call *call, int addr_index)
{
	struct h1_conn *c = xcalloc(1, sizeof *c);
	c->pool = pool;
	c->addr_index = addr_index;
	c->state = CONN_CONNECTING;
	uv_tcp_init(pool->loop, &c->tcp);
	uv_timer_init(pool->loop, &c->connect_timer);
	c->tcp.data = c->connect_timer.data = c->connect_req.data = c->write_req.data = c;
	c->open_handles = 2;
	pool->open_handles++;
	pool->n_conns++;
	c->all_next = pool->all;
	if (c->all_next)
		c->all_next->all_prev = c;
	pool->all = c;
	conn_assign(c, call);
	int rc = uv_tcp_connect(&c->connect_req, &c->tcp,
	                        (const struct sockaddr *)&pool->addr[addr_index], conn_on_connect);
	if (rc < 0) {
		log_debug("http connect failed", "error", uv_strerror(rc), NULL);
		call = conn_take_call(c);
		call_fail_soon(call, HTTP_CONNECT_ERROR);
		conn_drop(c);
		return;
	}
	uv_timer_start(&c->connect_timer, conn_on_connect_timer, CONNECT_CAP_MS, 0);
}

/* The connection broke (uv_err: a libuv error, UV_EOF when the server closed
 * it). A connect that failed tries the next address; a request the server
 * closed a reused connection on, before a byte of answer, goes out once more
 * (see the file's comment); else the call fails. */
static void conn_failed(struct h1_conn *c, int uv_err)
{
	struct h1_pool *pool = c->pool;
	if (!c->call) {
		conn_drop(c);
		return;
	}
	bool connecting = c->state == CONN_CONNECTING;
	int next_addr = c->addr_index + 1;
	size_t rx = c->rx;
	bool resend = !connecting && c->reused && rx == 0 && !c->call->retried;
	struct h1_call *call = conn_take_call(c);
	conn_close(c);
	if (connecting && next_addr < pool->n_addr) {
		conn_open(pool, call, next_addr);
		return;
	}
	if (resend) {
		call->retried = true;
		calls_push(&pool->queue, call, true, CALL_QUEUED);
		dispatch(pool);
		return;
	}
	if (pool->queue.head)
		dispatch(pool);
	log_debug("http call failed", "error", uv_strerror(uv_err), NULL);
	enum http_error err = HTTP_CONNECT_ERROR;
	if (uv_err == UV_ETIMEDOUT && connecting)
		err = HTTP_TIMEOUT;
	else if (rx > 0)
		err = HTTP_OTHER_ERROR; /* broken in the middle of an answer */
	call_finish(call, err);
}

/* The answer is complete: the call ends, the connection goes back to the
 * idle list or closes. */
static void conn_answered(struct h1_conn *c, bool more_bytes)
{
	struct h1_pool *pool = c->pool;
	struct h1_call *call = conn_take_call(c);
	c->reused = true;
	/* Bytes after the answer are a protocol error; an answer before the
	 * request is all out (a refusal) leaves the rest of it unread. */
	if (!c->keep_alive || more_bytes || c->write_pending) {
		conn_close(c);
	} else {
		idle_push(c);
	}
	if (pool->queue.head)
		dispatch(pool);
	call_finish(call, HTTP_OK);
}

/* ---------------------------------------------------------------- reading answers */

static bool token_in(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token);
	for (size_t i = 0; i + tl <= len; i++) {
		if (strncasecmp(v + i, token, tl) == 0) {
			bool start =
			        i == 0 || v[i - 1] == ' ' || v[i - 1] == ',' || v[i - 1] == '\t';
			bool end = i + tl == len || v[i + tl] == ' ' || v[i + tl] == ',' ||
			           v[i + tl] == '\t' || v[i + tl] == ';';
			if (start && end)
				return true;
		}
	}
	return false;
}

static bool name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Reads an answer's head [p, p + len): the status line, the header lines and
 * the empty line. Returns 0, 1 for an interim (1xx) answer to skip, or -1 if
 * it is malformed. */
static int parse_head(struct h1_conn *c, const char *p, size_t len)
{
	const char *end = p + len;
	struct h1_call *call = c->call;
	if (len < 14 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
		return -1;
	int minor = p[7] - '0';
	if (p[9] < '0' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
		return -1;
	long status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (status >= 100 && status < 200)
		return status == 101 ? -1 : 1;
	const char *eol = memchr(p, '\n', len);
	bool chunked = false, has_length = false, close = minor == 0, keep = false;
	uint64_t length = 0;
	for (const char *l = eol + 1; l < end;) {
		const char *nl = memchr(l, '\n', (size_t)(end - l));
		if (!nl)
			break;
		const char *le = nl > l && nl[-1] == '\r' ? nl - 1 : nl;
		if (le == l)
			break; /* the empty line */
		const char *colon = memchr(l, ':', (size_t)(le - l));
		if (!colon || colon == l)
			return -1;
		size_t nlen = (size_t)(colon - l);
		const char *v = colon + 1;
		while (v < le && (*v == ' ' || *v == '\t'))
			v++;
		const char *ve = le;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		size_t vlen = (size_t)(ve - v);
		if (name_is(l, nlen, "content-length")) {
			uint64_t n = 0;
			if (vlen == 0 || vlen > 15)
				return -1;
			for (size_t i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return -1;
				n = n * 10 + (uint64_t)(v[i] - '0');
			}
			if (has_length && n != length)
				return -1;
			has_length = true;
			length = n;
		} else if (name_is(l, nlen, "transfer-encoding")) {
			if (!token_in(v, vlen, "chunked"))
				return -1; /* an encoding we did not ask for */
			chunked = true;
		} else if (name_is(l, nlen, "connection")) {
			close = close || token_in(v, vlen, "close");
			keep = keep || token_in(v, vlen, "keep-alive");
		} else if (name_is(l, nlen, "retry-after")) {
			call->retry_after_ms = http_retry_after_ms(v, vlen);
		}
		l = nl + 1;
	}
	call->status = status;
	c->keep_alive = minor == 0 ? keep && !close : !close;
	if (status == 204 || status == 304) {
		c->left = 0;
		c->rs = RS_LENGTH;
	} else if (chunked) {
		c->rs = RS_CHUNK_SIZE;
	} else if (has_length) {
		c->left = length;
		c->rs = RS_LENGTH;
	} else {
		c->rs = RS_UNTIL_EOF;
		c->keep_alive = false;
	}
	return 0;
}

static void conn_abort(struct h1_conn *c, enum http_error err, const char *why);

/* Appends to c->line up to and including the next '\n' from *p (advanced),
 * or all that is left before end. Returns 1 when the line is whole, 0 when
 * more is to come, -1 when it is longer than HEAD_MAX (the call is aborted
 * with why). */
static int line_take(struct h1_conn *c, const char **p, const char *end, const char *why)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	const char *stop = nl ? nl + 1 : end;
	buf_append(&c->line, *p, (size_t)(stop - *p));
	*p = stop;
	if (c->line.len > HEAD_MAX) {
		conn_abort(c, HTTP_OTHER_ERROR, why);
		return -1;
	}
	return nl != NULL;
}

/* Adds n bytes to the answer's body; false if that makes it too large. */
static bool body_add(struct h1_conn *c, const char *p, size_t n)
{
	struct h1_call *call = c->call;
	if (call->resp.len + n > c->pool->max_body)
		return false;
	buf_append(&call->resp, p, n);
	return true;
}

/* Ends c's call with err and closes c. */
static void conn_abort(struct h1_conn *c, enum http_error err, const char *why)
{
	log_debug("http answer refused", "reason", why, NULL);
	struct h1_call *call = conn_take_call(c);
	conn_drop(c);
	call_finish(call, err);
}

/* Reads [p, p + n) of the answer. The call may end and the connection close
 * or go idle (and even carry a new call) before this returns: nothing of c
 * is touched after conn_answered or conn_abort. */
static void conn_parse(struct h1_conn *c, const char *p, size_t n)
{
	const char *end = p + n;
	c->rx += n;
	while (p < end) {
		switch (c->rs) {
		case RS_HEAD: {
			/* Most answers' heads come whole in one read: parsed where they
			 * lie. Else the pieces gather in c->line. */
			const char *head, *after;
			size_t head_len;
			const char *e = c->line.len == 0
			                        ? memmem(p, (size_t)(end - p), "\r\n\r\n", 4)
			                        : NULL;
			if (e) {
				head = p;
				head_len = (size_t)(e + 4 - p);
				after = e + 4;
			} else {
				size_t before = c->line.len, from = before > 3 ? before - 3 : 0;
				buf_append(&c->line, p, (size_t)(end - p));
				e = memmem(c->line.data + from, c->line.len - from, "\r\n\r\n", 4);
				if (!e) {
					if (c->line.len > HEAD_MAX) {
						conn_abort(c, HTTP_OTHER_ERROR,
						           "answer head too large");
						return;
					}
					p = end;
					break;
				}
				head = c->line.data;
				head_len = (size_t)(e + 4 - c->line.data);
				after = p + (head_len - before);
			}
			if (head_len > HEAD_MAX) {
				conn_abort(c, HTTP_OTHER_ERROR, "answer head too large");
				return;
			}
			int rc = parse_head(c, head, head_len);
			c->line.len = 0;
			p = after;
			if (rc < 0) {
				conn_abort(c, HTTP_OTHER_ERROR, "malformed answer head");
				return;
			}
			if (rc == 0 && c->rs == RS_LENGTH && c->left == 0) {
				conn_answered(c, p < end);
				return;
			}
			break;
		}
		case RS_LENGTH:
		case RS_CHUNK_DATA: {
			size_t k =
			        (size_t)(end - p) < c->left ? (size_t)(end - p) : (size_t)c->left;
			if (!body_add(c, p, k)) {
				conn_abort(c, HTTP_TOO_LARGE, "answer body too large");
				return;
			}
			p += k;
			c->left -= k;
			if (c->left > 0)
				break;
			if (c->rs == RS_CHUNK_DATA) {
				c->rs = RS_CHUNK_END;
				break;
			}
			conn_answered(c, p < end);
			return;
		}
		case RS_CHUNK_SIZE: {
			int got = line_take(c, &p, end, "chunk-size line too long");
			if (got <= 0) {
				if (got < 0)
					return;
				break;
			}
			uint64_t size = 0;
			size_t i = 0, digits = 0;
			for (; i < c->line.len; i++) {
				char ch = c->line.data[i];
				int d = ch >= '0' && ch <= '9'   ? ch - '0'
				        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
				        : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
				                                 : -1;
				if (d < 0)
					break;
				if (++digits > 15) {
					conn_abort(c, HTTP_OTHER_ERROR, "chunk size too large");
					return;
				}
				size = size * 16 + (uint64_t)d;
			}
			char after = i < c->line.len ? c->line.data[i] : '\0';
			if (digits == 0 || (after != ';' && after != '\r' && after != '\n' &&
			                    after != ' ' && after != '\t')) {
				conn_abort(c, HTTP_OTHER_ERROR, "malformed chunk size");
				return;
			}
			c->line.len = 0;
			c->left = size;
			c->rs = size == 0 ? RS_TRAILER : RS_CHUNK_DATA;
			break;
		}
		case RS_CHUNK_END:
		case RS_TRAILER: {
			int got = line_take(c, &p, end, "trailer too long");
			if (got <= 0) {
				if (got < 0)
					return;
				break;
			}
			bool empty =
			        c->line.len == 1 || (c->line.len == 2 && c->line.data[0] == '\r');
			c->line.len = 0;
			if (c->rs == RS_CHUNK_END) {
				if (!empty) {
					conn_abort(c, HTTP_OTHER_ERROR,
					           "chunk data longer than its size");
					return;
				}
				c->rs = RS_CHUNK_SIZE;
			} else if (empty) {
				conn_answered(c, p < end);
				return;
			}
			break;
		}
		case RS_UNTIL_EOF:
			if (!body_add(c, p, (size_t)(end - p))) {
				conn_abort(c, HTTP_TOO_LARGE, "answer body too large");
				return;
			}
			p = end;
			break;
		}
	}
}

static void conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct h1_conn *c = s->data;
	if (n == 0 || c->state == CONN_CLOSING)
		return;
	if (n < 0) {
		if (n == UV_EOF && c->call && c->rs == RS_UNTIL_EOF) {
			c->keep_alive = false;
			conn_answered(c, false);
			return;
		}
		conn_failed(c, (int)n);
		return;
	}
	if (c->state != CONN_BUSY || !c->call) {
		conn_drop(c); /* an idle connection has nothing to say */
		return;
	}
	conn_parse(c, b->base, (size_t)n);
}

/* ---------------------------------------------------------------- addresses */

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct h1_pool *pool = req->data;
	pool->gai_pending = false;
	if (pool->closing) {
		uv_freeaddrinfo(res);
		pool_maybe_free(pool);
		return;
	}
	pool->n_addr = 0;
	for (struct addrinfo *ai = res; ai && pool->n_addr < ADDR_MAX; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof pool->addr[0])
			continue;
		memcpy(&pool->addr[pool->n_addr++], ai->ai_addr, ai->ai_addrlen);
	}
	uv_freeaddrinfo(res);
	pool->addr_at_ms = uv_now(pool->loop);
	if (pool->n_addr == 0) {
		log_debug("http host lookup failed", "host", pool->host, "error",
		          status < 0 ? uv_strerror(status) : "no address", NULL);
		pool->lookup_failed = true; /* for this dispatch: the calls waiting fail */
	}
	dispatch(pool);
	pool->lookup_failed = false;
}

enum addr_state { ADDR_READY, ADDR_WAIT, ADDR_FAILED };

/* Whether the pool has addresses to connect to now. ADDR_WAIT: a lookup is
 * under way, and dispatch() runs again when it is done. */
static enum addr_state addresses(struct h1_pool *pool)
{
	if (pool->lookup_failed)
		return ADDR_FAILED;
	if (pool->numeric ||
	    (pool->n_addr > 0 && uv_now(pool->loop) - pool->addr_at_ms < ADDR_TTL_MS))
		return ADDR_READY;
	if (pool->gai_pending)
		return ADDR_WAIT;
	char node[256];
	size_t hl = strlen(pool->host);
	if (pool->host[0] == '[') { /* getaddrinfo takes an IPv6 literal bare */
		memcpy(node, pool->host + 1, hl - 2);
		node[hl - 2] = '\0';
	} else {
		memcpy(node, pool->host, hl + 1);
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	pool->gai.data = pool;
	int rc = uv_getaddrinfo(pool->loop, &pool->gai, on_resolved, node, pool->port, &hints);
	if (rc < 0) {
		log_debug("http host lookup failed", "host", pool->host, "error", uv_strerror(rc),
		          NULL);
		return ADDR_FAILED;
	}
	pool->gai_pending = true;
	return ADDR_WAIT;
}

/* ---------------------------------------------------------------- dispatch */

static struct h1_conn *idle_take(struct h1_pool *pool)
{
	uint64_t now = uv_now(pool->loop);
	while (pool->idle) {
		struct h1_conn *c = pool->idle;
		if (now - c->idle_since_ms < IDLE_MAX_MS)
			return c;
		conn_close(c); /* also unlinks it */
	}
	return NULL;
}

/* Gives waiting calls, oldest first, an idle connection, or a new one while
 * the pool may open more. */
static void dispatch(struct h1_pool *pool)
{
	while (pool->queue.head && !pool->closing) {
		struct h1_call *call = pool->queue.head;
		struct h1_conn *c = idle_take(pool);
		if (c) {
			calls_unlink(&pool->queue, call);
			conn_assign(c, call);
			continue;
		}
		if (pool->n_conns >= pool->max_connections)
			return;
		switch (addresses(pool)) {
		case ADDR_WAIT: return;
		case ADDR_FAILED:
			calls_unlink(&pool->queue, call);
			call_fail_soon(call, HTTP_CONNECT_ERROR);
			break;
		case ADDR_READY:
			calls_unlink(&pool->queue, call);
			conn_open(pool, call, 0);
			break;
		}
	}
}

/* ---------------------------------------------------------------- starting calls */

/* Splits an http:// URL. Returns 0 and points at its parts, or -1 if this
 * client does not take it. */
static int url_split(const char *url, const char **host, size_t *host_len, const char **port,
                     size_t *port_len, const char **path)
{
	if (strncasecmp(url, "http://", 7) != 0)
		return -1;
	const char *h = url + 7;
	const char *p = h;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (!close)
			return -1;
		p = close + 1;
	} else {
		while (*p && *p != ':' && *p != '/' && *p != '?' && *p != '#' && *p != '@')
			p++;
	}
	if (*p == '@' || p == h)
		return -1; /* user info: curl's to handle */
	*host = h;
	*host_len = (size_t)(p - h);
	*port = "80";
	*port_len = 2;
	if (*p == ':') {
		const char *d = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == d || p - d > 5)
			return -1;
		*port = d;
		*port_len = (size_t)(p - d);
	}
	if (*p != '/' && *p != '\0' && *p != '?')
		return -1;
	if (strchr(p, '#') || strchr(p, '@') || strchr(p, ' '))
		return -1;
	*path = p;
	return 0;
}

/* The first URL sets the pool's origin; returns 0 if url is of it. */
static int origin_check(struct h1_pool *pool, const char *host, size_t host_len, const char *port,
                        size_t port_len)
{
	if (pool->has_origin)
		return strlen(pool->host) == host_len &&
		                       strncasecmp(pool->host, host, host_len) == 0 &&
		                       strlen(pool->port) == port_len &&
		                       memcmp(pool->port, port, port_len) == 0
		               ? 0
		               : -1;
	if (host_len >= sizeof pool->host || port_len >= sizeof pool->port)
		return -1;
	memcpy(pool->host, host, host_len);
	pool->host[host_len] = '\0';
	memcpy(pool->port, port, port_len);
	pool->port[port_len] = '\0';
	int port_n = atoi(pool->port);
	if (port_n <= 0 || port_n > 65535)
		return -1;
	buf_puts(&pool->host_line, "Host: ");
	buf_puts(&pool->host_line, pool->host);
	if (port_n != 80) {
		buf_puts(&pool->host_line, ":");
		buf_puts(&pool->host_line, pool->port);
	}
	buf_puts(&pool->host_line, "\r\n");
	/* A numeric address needs no lookup. */
	struct sockaddr_in *v4 = (struct sockaddr_in *)&pool->addr[0];
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&pool->addr[0];
	if (uv_ip4_addr(pool->host, port_n, v4) == 0) {
		pool->numeric = true;
	} else if (pool->host[0] == '[') {
		char bare[256];
		memcpy(bare, pool->host + 1, host_len - 2);
		bare[host_len - 2] = '\0';
		if (uv_ip6_addr(bare, port_n, v6) != 0) {
			buf_free(&pool->host_line);
			return -1;
		}
		pool->numeric = true;
	}
	if (pool->numeric)
		pool->n_addr = 1;
	pool->has_origin = true;
	return 0;
}

static struct h1_call *call_get(struct h1_pool *pool)
{
	struct h1_call *call = pool->free_calls;
	if (call) {
		pool->free_calls = call->next;
	} else {
		call = xcalloc(1, sizeof *call);
		call->pool = pool;
		uv_timer_init(pool->loop, &call->timer);
		call->timer.data = call;
		pool->open_handles++;
	}
	call->next = call->prev = NULL;
	return call;
}

int h1_start(struct h1_pool *pool, struct http_request *req, int64_t timeout_ms, http_done_cb *cb,
             void *opaque)
{
	const char *host, *port, *path;
	size_t host_len, port_len;
	if (!req->url.data ||
	    url_split(req->url.data, &host, &host_len, &port, &port_len, &path) < 0 ||
	    origin_check(pool, host, host_len, port, port_len) < 0)
		return -1;
	struct h1_call *call = call_get(pool);
	call->cb = cb;
	call->opaque = opaque;
	call->status = 0;
	call->retry_after_ms = -1;
	call->failed = HTTP_OK;
	call->retried = false;
	call->started_ms = uv_now(pool->loop);

	/* The head: request line, Host, the adapter's lines, the body's length. */
	struct buf *h = &call->head;
	size_t need = strlen(path) + pool->host_line.len + 64;
	for (size_t i = 0; i < req->n_headers; i++)
		need += strlen(req->headers[i]) + 2;
	buf_reserve(h, need);
	buf_append(h, "POST ", 5);
	buf_puts(h, *path ? path : "/");
	buf_append(h, " HTTP/1.1\r\n", 11);
	buf_append(h, pool->host_line.data, pool->host_line.len);
	for (size_t i = 0; i < req->n_headers; i++) {
		buf_puts(h, req->headers[i]);
		buf_append(h, "\r\n", 2);
	}
	buf_append(h, "Content-Length: ", 16);
	buf_i64(h, (int64_t)req->body.len);
	buf_append(h, "\r\n\r\n", 4);
	call->body = req->body;
	req->body = (struct buf){0};
	http_request_clear(req); /* wipes the header lines */

	pool->active++;
	uv_timer_start(&call->timer, call_on_timer, timeout_ms > 0 ? (uint64_t)timeout_ms : 1, 0);
	calls_push(&pool->queue, call, false, CALL_QUEUED);
	dispatch(pool);
	return 0;
}

/* ---------------------------------------------------------------- freeing */

static void call_on_closed(uv_handle_t *h)
{
	struct h1_call *call = h->data;
	struct h1_pool *pool = call->pool;
	wipe_buf(&call->head);
	buf_free(&call->body);
	buf_free(&call->resp);
	free(call);
	pool->open_handles--;
	pool_maybe_free(pool);
}

void h1_pool_free(struct h1_pool *pool)
{
	if (!pool)
		return;
	pool->closing = true;
	while (pool->queue.head) {
		struct h1_call *call = pool->queue.head;
		calls_unlink(&pool->queue, call);
		uv_close((uv_handle_t *)&call->timer, call_on_closed);
	}
	while (pool->failing.head) {
		struct h1_call *call = pool->failing.head;
		calls_unlink(&pool->failing, call);
		uv_close((uv_handle_t *)&call->timer, call_on_closed);
	}
	while (pool->all) {
		struct h1_conn *c = pool->all;
		if (c->call) {
			struct h1_call *call = conn_take_call(c);
			uv_close((uv_handle_t *)&call->timer, call_on_closed);
		}
		conn_close(c);
	}
	while (pool->free_calls) {
		struct h1_call *call = pool->free_calls;
		pool->free_calls = call->next;
		uv_close((uv_handle_t *)&call->timer, call_on_closed);
	}
	pool->active = 0;
	if (pool->gai_pending)
		uv_cancel((uv_req_t *)&pool->gai);
	pool_maybe_free(pool);
}

/* ---------------------------------------------------------------- Retry-After */

int64_t http_retry_after_ms(const char *v, size_t len)
{
	char s[128];
	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	if (len == 0 || len >= sizeof s)
		return -1;
	memcpy(s, v, len);
	s[len] = '\0';
	char *end;
	double secs = strtod(s, &end);
	if (end != s && secs >= 0)
		return (int64_t)(secs * 1000);
	time_t when = curl_getdate(s, NULL);
	if (when < 0)
		return -1;
	int64_t delta = (int64_t)when * 1000 - time_now_ms();
	return delta > 0 ? delta : 0;
}
