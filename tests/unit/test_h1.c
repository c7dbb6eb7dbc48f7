/* h1, the worker's HTTP/1.1 client, against a real TCP peer: a server on
 * 127.0.0.1 in the same loop that reads each request whole and answers with
 * the bytes a test scripts, in pieces a millisecond apart when asked (so
 * that the client's reads split them), or not at all. */
#include "unit.h"

#include "buf.h"
#include "h1.h"
#include "http.h"
#include "provider.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---------------------------------------------------------------- the server */

/* What the server does with one request. */
struct answer {
	const char *bytes; /* sent as they are; NULL: nothing */
	size_t piece;      /* bytes per write, a millisecond apart; 0: all at once */
	bool close_after;  /* close the connection once sent (or at once if bytes is NULL) */
};

#define MAX_ANSWERS 8

struct server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	int port;
	struct answer answers[MAX_ANSWERS]; /* by request number, over all connections */
	int n_answers;
	int requests; /* requests read whole */
	int accepted; /* connections */
	struct buf last_request;
};

struct sconn {
	uv_tcp_t tcp;
	struct server *srv;
	struct buf in;
	uv_timer_t timer;
	const char *out;
	size_t out_left, piece;
	bool close_after;
	int handles;
};

static struct server srv;

static void sconn_closed(uv_handle_t *h)
{
	struct sconn *c = h->data;
	if (--c->handles == 0) {
		buf_free(&c->in);
		free(c);
	}
}

static void sconn_close(struct sconn *c)
{
	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	uv_close((uv_handle_t *)&c->timer, sconn_closed);
	uv_close((uv_handle_t *)&c->tcp, sconn_closed);
}

static void written_free(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static void send_piece(uv_timer_t *t)
{
	struct sconn *c = t->data;
	size_t n = c->piece && c->piece < c->out_left ? c->piece : c->out_left;
	if (n) {
		uv_write_t *w = malloc(sizeof *w);
		uv_buf_t b = uv_buf_init((char *)c->out, (unsigned)n);
		uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, written_free);
		c->out += n;
		c->out_left -= n;
	}
	if (c->out_left)
		uv_timer_start(&c->timer, send_piece, 1, 0);
	else if (c->close_after)
		sconn_close(c);
}

/* Whether c->in holds a whole request (head and Content-Length body); its
 * length if so. */
static size_t request_len(const struct buf *in)
{
	if (!in->data)
		return 0;
	const char *e = strstr(in->data, "\r\n\r\n");
	if (!e)
		return 0;
	size_t head = (size_t)(e + 4 - in->data);
	const char *cl = strstr(in->data, "Content-Length: ");
	size_t body = cl && cl < e ? (size_t)atol(cl + 16) : 0;
	return in->len >= head + body ? head + body : 0;
}

static void sconn_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
	(void)h;
	*b = uv_buf_init(malloc(n), (unsigned)n);
}

static void sconn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct sconn *c = s->data;
	if (n < 0) {
		sconn_close(c);
	} else if (n > 0) {
		buf_append(&c->in, b->base, (size_t)n);
		size_t len = request_len(&c->in);
		if (len) {
			struct server *sv = c->srv;
			buf_reset(&sv->last_request);
			buf_append(&sv->last_request, c->in.data, len);
			size_t rest = c->in.len - len;
			memmove(c->in.data, c->in.data + len, rest);
			c->in.len = rest;
			c->in.data[rest] = '\0';
			int i = sv->requests++;
			struct answer a = i < sv->n_answers ? sv->answers[i] : (struct answer){0};
			c->close_after = a.close_after;
			if (a.bytes) {
				c->out = a.bytes;
				c->out_left = strlen(a.bytes);
				c->piece = a.piece;
				send_piece(&c->timer);
			} else if (a.close_after) {
				sconn_close(c);
			}
		}
	}
	free(b->base);
}

static void on_accept(uv_stream_t *l, int status)
{
	if (status < 0)
		return;
	struct server *sv = l->data;
	struct sconn *c = calloc(1, sizeof *c);
	c->srv = sv;
	uv_tcp_init(sv->loop, &c->tcp);
	uv_timer_init(sv->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	if (uv_accept(l, (uv_stream_t *)&c->tcp) == 0) {
		sv->accepted++;
		uv_read_start((uv_stream_t *)&c->tcp, sconn_alloc, sconn_read);
	} else {
		sconn_close(c);
	}
}

static void server_start(uv_loop_t *loop)
{
	memset(&srv, 0, sizeof srv);
	srv.loop = loop;
	uv_tcp_init(loop, &srv.listener);
	srv.listener.data = &srv;
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_bind(&srv.listener, (const struct sockaddr *)&a, 0);
	uv_listen((uv_stream_t *)&srv.listener, 64, on_accept);
	struct sockaddr_storage got;
	int len = sizeof got;
	uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&got, &len);
	srv.port = ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h)) {
		if (h == (uv_handle_t *)&srv.listener)
			uv_close(h, NULL);
		else if (h->type == UV_TCP || h->type == UV_TIMER)
			sconn_close(h->data);
	}
}

/* Closes the server's handles and runs the loop until every handle is gone. */
static void server_stop(uv_loop_t *loop)
{
	uv_walk(loop, close_walk, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	buf_free(&srv.last_request);
}

/* ---------------------------------------------------------------- the client side */

struct outcome {
	int done;
	enum http_error error;
	long status;
	char body[256];
	size_t body_len;
	int64_t retry_after_ms;
};

static void on_done(void *opaque, const struct http_response *r)
{
	struct outcome *o = opaque;
	o->done++;
	o->error = r->error;
	o->status = r->status;
	o->body_len = r->body_len;
	snprintf(o->body, sizeof o->body, "%s", r->body);
	o->retry_after_ms = r->retry_after_ms;
}

static void request(struct http_request *req, const char *host_port, const char *body)
{
	memset(req, 0, sizeof *req);
	buf_printf(&req->url, "http://%s/v1/chat", host_port);
	http_request_add_header(req, "Content-Type: application/json");
	http_request_add_header(req, "Authorization: Bearer sk-test");
	buf_puts(&req->body, body);
}

/* Starts a call to the server with body, waiting into o. */
static void call(struct h1_pool *p, struct outcome *o, const char *body, int64_t timeout_ms)
{
	struct http_request req;
	char hp[64];
	snprintf(hp, sizeof hp, "127.0.0.1:%d", srv.port);
	request(&req, hp, body);
	memset(o, 0, sizeof *o);
	CHECK_INT(h1_start(p, &req, timeout_ms, on_done, o), 0);
	CHECK(req.body.data == NULL && req.headers == NULL);
}

/* Runs the loop until every outcome is in (bounded: a test never hangs). */
static void wait_for(uv_loop_t *loop, struct outcome *o, int n)
{
	for (int turns = 0; turns < 20000; turns++) {
		int done = 0;
		for (int i = 0; i < n; i++)
			done += o[i].done;
		if (done == n)
			return;
		uv_run(loop, UV_RUN_ONCE);
	}
	UNIT_FAIL("calls not done");
}

static void script(int i, const char *bytes, size_t piece, bool close_after)
{
	srv.answers[i] = (struct answer){bytes, piece, close_after};
	if (i >= srv.n_answers)
		srv.n_answers = i + 1;
}

#define OK_JSON                                                                                    \
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "                    \
	"11\r\n\r\n{\"ok\":true}"

/* ---------------------------------------------------------------- tests */

TEST(sends_the_request_and_reuses_the_connection)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	server_start(&loop);
	script(0, OK_JSON, 0, false);
	script(1, OK_JSON, 0, false);
	struct h1_pool *p = h1_pool_new(&loop, 4, 1 << 20);
	struct outcome o[2];
	call(p, &o[0], "{\"a\":1}", 5000);
	CHECK_INT(o[0].done, 0); /* never from within h1_start */
	CHECK_INT(h1_active(p), 1);
	wait_for(&loop, o, 1);
	CHECK_INT(o[0].error, HTTP_OK);
	CHECK_INT(o[0].status, 200);
	CHECK_STR(o[0].body, "{\"ok\":true}");
	CHECK_INT(o[0].retry_after_ms, -1);
	char want[256];
	snprintf(want, sizeof want,
	         "POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
	         "application/json\r\nAuthorization: Bearer sk-test\r\nContent-Length: "
	         "7\r\n\r\n{\"a\":1}",
	         srv.port);
	CHECK_STR(srv.last_request.data, want);
	call(p, &o[1], "{\"a\":2}", 5000);
	wait_for(&loop, &o[1], 1);
	CHECK_INT(o[1].status, 200);
	CHECK_INT(srv.accepted, 1);
	CHECK_INT(h1_active(p), 0);
	h1_pool_free(p);
	server_stop(&loop);
	CHECK_INT(uv_loop_close(&loop), 0);
}

TEST(reads_chunked_answers_in_pieces)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	server_start(&loop);
	/* Lower-case names, a chunk extension, a trailer; a byte per read. */
	script(0,
	       "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nretry-after: 7\r\n\r\n"
	       "4;ext=1\r\n{\"ok\r\nA\r\n\":\"chunked\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n",
	       1, false);
	script(1, OK_JSON, 3, false);
	struct h1_pool *p = h1_pool_new(&loop, 4, 1 << 20);
	struct outcome o[2];
	call(p, &o[0], "{}", 5000);
	wait_for(&loop, o, 1);
	CHECK_INT(o[0].error, HTTP_OK);
	CHECK_STR(o[0].body, "{\"ok\":\"chunked}");
	CHECK_INT(o[0].retry_after_ms, 7000);
	/* The connection is whole after a chunked answer: reused. */
	call(p, &o[1], "{}", 5000);
	wait_for(&loop, &o[1], 1);
	CHECK_STR(o[1].body, "{\"ok\":true}");
	CHECK_INT(srv.accepted, 1);
	h1_pool_free(p);
	server_stop(&loop);
	uv_loop_close(&loop);
}

TEST(skips_interim_answers_and_reads_to_the_close)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	server_start(&loop);
	script(0,
	       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: "
	       "close\r\n\r\n{\"eof\":1}",
	       5, true);
	script(1, "HTTP/1.0 503 Busy\r\nContent-Length: 2\r\n\r\nno", 0, false);
	script(2, OK_JSON, 0, false);
	struct h1_pool *p = h1_pool_new(&loop, 4, 1 << 20);
	struct outcome o[3];
	call(p, &o[0], "{}", 5000);
	wait_for(&loop, o, 1);
	CHECK_INT(o[0].error, HTTP_OK);
	CHECK_INT(o[0].status, 200);
	CHECK_STR(o[0].body, "{\"eof\":1}");
	/* HTTP/1.0 without keep-alive: the connection is not reused either. */
	call(p, &o[1], "{}", 5000);
	wait_for(&loop, &o[1], 1);
	CHECK_INT(o[1].status, 503);
	CHECK_STR(o[1].body, "no");
	call(p, &o[2], "{}", 5000);
	wait_for(&loop, &o[2], 1);
	CHECK_INT(o[2].status, 200);
	CHECK_INT(srv.accepted, 3);
	h1_pool_free(p);
	server_stop(&loop);
	uv_loop_close(&loop);
}

TEST(resends_once_when_a_kept_connection_was_closed)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	server_start(&loop);
	script(0, OK_JSON, 0, false);
	script(1, NULL, 0, true); /* the kept connection closes on the next request */
	script(2, OK_JSON, 0, false);
	struct h1_pool *p = h1_pool_new(&loop, 4, 1 << 20);
	struct outcome o[2];
	call(p, &o[0], "{}", 5000);
	wait_for(&loop, o, 1);
	call(p, &o[1], "{\"again\":1}", 5000);
	wait_for(&loop, &o[1], 1);
	CHECK_INT(o[1].error, HTTP_OK);
	CHECK_INT(o[1].status, 200);
	CHECK_INT(srv.requests, 3);
	CHECK_INT(srv.accepted, 2);
	CHECK_HAS(srv.last_request.data, "{\"again\":1}");
	h1_pool_free(p);
	server_stop(&loop);
	uv_loop_close(&loop);
}

TEST(a_new_connection_closed_unanswered_is_a_connect_error)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	server_start(&loop);
	script(0, NULL, 0, true);
	script(1, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"cut", 0, true);
	struct h1_pool *p = h1_pool_new(&loop, 4, 1 << 20);
	struct outcome o[2];
	call(p, &o[0], "{}", 5000);
	wait_for(&loop, o, 1);
	CHECK_INT(o[0].error, HTTP_CONNECT_ERROR); /* not sent again: the connection was new */
	CHECK_INT(srv.requests, 1);
	/* Cut in the middle of the answer: not a connect error. */
	call(p, &o[1], "{}", 5000);
	wait_for(&loop, &o[1], 1);
	CHECK_INT(o[1].error, HTTP_OTHER_ERROR);
	CHECK_INT(o[1].status, 0);
	h1_pool_free(p);
	server_stop(&loop);
	uv_loop_close(&loop);
}

TEST(timeouts_limits_and_refusals)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	server_start(&loop);
	script(0, NULL, 0, false); /* never answers */
	script(1,
	       "HTTP/1.1 200 OK\r\nContent-Length: "
	       "40\r\n\r\n0123456789012345678901234567890123456789",
	       0, false);
	script(2, "HTTP/1.1 2x0 OK\r\n\r\n", 0, false);
	script(3, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, false);
	struct h1_pool *p = h1_pool_new(&loop, 4, 16);
	struct outcome o[4];
	call(p, &o[0], "{}", 100);
	wait_for(&loop, o, 1);
	CHECK_INT(o[0].error, HTTP_TIMEOUT);
	call(p, &o[1], "{}", 5000);
	wait_for(&loop, &o[1], 1);
	CHECK_INT(o[1].error, HTTP_TOO_LARGE);
	call(p, &o[2], "{}", 5000);
	wait_for(&loop, &o[2], 1);
	CHECK_INT(o[2].error, HTTP_OTHER_ERROR);
	call(p, &o[3], "{}", 5000);
	wait_for(&loop, &o[3], 1);
	CHECK_INT(o[3].error, HTTP_OTHER_ERROR);
	CHECK_INT(h1_active(p), 0);
	h1_pool_free(p);
	server_stop(&loop);
	uv_loop_close(&loop);
}

TEST(calls_wait_for_a_connection_in_order)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	server_start(&loop);
	for (int i = 0; i < 3; i++)
		script(i, OK_JSON, 0, false);
	struct h1_pool *p = h1_pool_new(&loop, 1, 1 << 20);
	struct outcome o[3];
	for (int i = 0; i < 3; i++)
		call(p, &o[i], "{}", 5000);
	CHECK_INT(h1_active(p), 3);
	wait_for(&loop, o, 3);
	for (int i = 0; i < 3; i++)
		CHECK_INT(o[i].status, 200);
	CHECK_INT(srv.accepted, 1);
	h1_pool_free(p);
	server_stop(&loop);
	uv_loop_close(&loop);
}

TEST(names_are_looked_up_and_every_address_tried)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	server_start(&loop);
	script(0, OK_JSON, 0, false);
	struct h1_pool *p = h1_pool_new(&loop, 4, 1 << 20);
	struct http_request req;
	char hp[64];
	/* localhost may come first as ::1, where nothing listens. */
	snprintf(hp, sizeof hp, "localhost:%d", srv.port);
	request(&req, hp, "{}");
	struct outcome o = {0};
	CHECK_INT(h1_start(p, &req, 5000, on_done, &o), 0);
	wait_for(&loop, &o, 1);
	CHECK_INT(o.error, HTTP_OK);
	CHECK_HAS(srv.last_request.data, "Host: localhost:");
	h1_pool_free(p);
	server_stop(&loop);
	uv_loop_close(&loop);
}

TEST(refused_connections_and_urls_it_does_not_take)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct h1_pool *p = h1_pool_new(&loop, 4, 1 << 20);
	struct http_request req;
	struct outcome o = {0};
	request(&req, "127.0.0.1:1", "{}"); /* nothing listens on port 1 */
	CHECK_INT(h1_start(p, &req, 5000, on_done, &o), 0);
	wait_for(&loop, &o, 1);
	CHECK_INT(o.error, HTTP_CONNECT_ERROR);
	/* Another origin, TLS, user info: left to curl, req untouched. */
	const char *others[] = {"http://127.0.0.2:1/v1", "https://127.0.0.1:1/v1",
	                        "http://u:p@127.0.0.1:1/v1"};
	for (size_t i = 0; i < 3; i++) {
		memset(&req, 0, sizeof req);
		buf_puts(&req.url, others[i]);
		buf_puts(&req.body, "{}");
		CHECK_INT(h1_start(p, &req, 5000, on_done, &o), -1);
		CHECK_STR(req.body.data, "{}");
		http_request_clear(&req);
	}
	h1_pool_free(p);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(uv_loop_close(&loop), 0);
}

TEST(freeing_the_pool_drops_calls_without_callbacks)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	server_start(&loop);
	script(0, NULL, 0, false);
	struct h1_pool *p = h1_pool_new(&loop, 1, 1 << 20);
	struct outcome o[2];
	call(p, &o[0], "{}", 5000);
	call(p, &o[1], "{}", 5000); /* waits for the one connection */
	for (int i = 0; i < 50 && srv.requests == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_INT(srv.requests, 1);
	h1_pool_free(p);
	server_stop(&loop);
	CHECK_INT(o[0].done + o[1].done, 0);
	CHECK_INT(uv_loop_close(&loop), 0);
}

TEST(retry_after_values)
{
	CHECK_INT(http_retry_after_ms(" 3", 2), 3000);
	CHECK_INT(http_retry_after_ms("0.5", 3), 500);
	CHECK_INT(http_retry_after_ms("soon", 4), -1);
	CHECK_INT(http_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 29), 0); /* past */
}

int main(void)
{
	RUN(sends_the_request_and_reuses_the_connection);
	RUN(reads_chunked_answers_in_pieces);
	RUN(skips_interim_answers_and_reads_to_the_close);
	RUN(resends_once_when_a_kept_connection_was_closed);
	RUN(a_new_connection_closed_unanswered_is_a_connect_error);
	RUN(timeouts_limits_and_refusals);
	RUN(calls_wait_for_a_connection_in_order);
	RUN(names_are_looked_up_and_every_address_tried);
	RUN(refused_connections_and_urls_it_does_not_take);
	RUN(freeing_the_pool_drops_calls_without_callbacks);
	RUN(retry_after_values);
	return unit_done();
}
