/* http: Retry-After values (RFC 9110 §10.2.3), request building, and a
 * streamed download paused and resumed against a real server on loopback
 * (a child process speaking HTTP/1.1). The rest of the transport is tested
 * by the integration tests, over plain HTTP and over TLS with HTTP/1.1 and
 * HTTP/2 (tests/integration/test_tls.py). */
#include "http.h"
#include "servers.h"
#include "unit.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example, in Unix ms. */
#define EXAMPLE_MS INT64_C(784111777000)
#define DAY_MS     INT64_C(86400000)

static int64_t ra(const char *v, int64_t now_ms)
{
	return http_retry_after_ms(v, strlen(v), now_ms);
}

TEST(retry_after_delay_seconds)
{
	CHECK_INT(ra("0", 0), 0);
	CHECK_INT(ra("3", 0), 3000);
	CHECK_INT(ra(" 3", 0), 3000);
	CHECK_INT(ra("\t120 \r\n", 0), 120000);
	CHECK_INT(ra("007", 0), 7000);
	/* Not counted: only the given bytes are read. */
	CHECK_INT(http_retry_after_ms("12345", 2, 0), 12000);
	/* A day at most, however many digits. */
	CHECK_INT(ra("86399", 0), 86399000);
	CHECK_INT(ra("86400", 0), HTTP_RETRY_AFTER_MAX_MS);
	CHECK_INT(ra("86401", 0), HTTP_RETRY_AFTER_MAX_MS);
	CHECK_INT(ra("9223372036854775807", 0), HTTP_RETRY_AFTER_MAX_MS);
	CHECK_INT(ra("99999999999999999999999999999999999999999999999999999999999999", 0),
	          HTTP_RETRY_AFTER_MAX_MS);
}

TEST(retry_after_hostile_values)
{
	/* Nothing a float parser would take: none of these is delay-seconds. */
	const char *bad[] = {"",      " ",   "-1",     "-0",   "+5",       "0.5",  "1.",
	                     "1e300", "1E3", "inf",    "INF",  "infinity", "nan",  "NaN",
	                     "0x10",  "5s",  "5 5",    "soon", "1,2",      "\xff", "5\x01",
	                     "\v5",   "٣",   "-86400", "-inf", "1e-300",   ".5",   "5.0"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t got = ra(bad[i], EXAMPLE_MS);
		if (got != -1)
			UNIT_FAIL("\"%s\" gave %" PRId64 ", expected -1", bad[i], got);
	}
	/* A NUL inside the value is not the end of it. */
	CHECK_INT(http_retry_after_ms("5\0"
	                              "9",
	                              3, 0),
	          -1);
}

TEST(retry_after_http_dates)
{
	/* The three forms RFC 9110 §5.6.7 makes recipients accept. */
	CHECK_INT(ra("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_MS - 5000), 5000);
	CHECK_INT(ra("Sunday, 06-Nov-94 08:49:37 GMT", EXAMPLE_MS - 5000), 5000);
	CHECK_INT(ra("Sun Nov  6 08:49:37 1994", EXAMPLE_MS - 5000), 5000);
	CHECK_INT(ra("Sun Nov 16 08:49:37 1994", EXAMPLE_MS), HTTP_RETRY_AFTER_MAX_MS);
	CHECK_INT(ra("Mon Nov  7 08:49:36 1994", EXAMPLE_MS), DAY_MS - 1000);
	/* Names in any case; whitespace around the value. */
	CHECK_INT(ra("  sun, 06 NOV 1994 08:49:37 GMT \r\n", EXAMPLE_MS - 1000), 1000);
	/* In the past: now. Far ahead: a day. */
	CHECK_INT(ra("Wed, 21 Oct 2015 07:28:00 GMT", EXAMPLE_MS + 700 * DAY_MS * 30), 0);
	CHECK_INT(ra("Fri, 31 Dec 9999 23:59:59 GMT", EXAMPLE_MS), HTTP_RETRY_AFTER_MAX_MS);
	CHECK_INT(ra("Thu, 01 Jan 1970 00:00:00 GMT", EXAMPLE_MS), 0);
	/* Leap day and leap second. */
	CHECK_INT(ra("Thu, 29 Feb 2024 00:00:00 GMT", INT64_C(1709164800000) - 1), 1);
	CHECK_INT(ra("Sat, 31 Dec 2016 23:59:60 GMT", INT64_C(1483228799000)), 1000);
	/* Two-digit years: more than 50 years ahead is the century before. */
	int64_t now_2026 = INT64_C(1767225600000); /* 2026-01-01 */
	CHECK_INT(ra("Thursday, 01-Jan-26 00:00:30 GMT", now_2026), 30000);
	CHECK_INT(ra("Friday, 01-Jan-77 00:00:00 GMT", now_2026), 0); /* 1977 */
	CHECK_INT(ra("Sunday, 01-Jan-76 00:00:00 GMT", now_2026),
	          HTTP_RETRY_AFTER_MAX_MS); /* 2076 */
}

TEST(retry_after_malformed_dates)
{
	const char *bad[] = {
	        "Sun, 06 Nov 1994 08:49:37",        /* no zone */
	        "Sun, 06 Nov 1994 08:49:37 UTC",    /* not GMT */
	        "Sun, 06 Nov 1994 08:49:37 GMT x",  /* trailing bytes */
	        "Sun, 6 Nov 1994 08:49:37 GMT",     /* one-digit day */
	        "Sun, 06 Nov 94 08:49:37 GMT",      /* two-digit year in IMF-fixdate */
	        "Sun, 31 Nov 1994 08:49:37 GMT",    /* no such day */
	        "Sun, 29 Feb 1900 08:49:37 GMT",    /* not a leap year */
	        "Sun, 00 Nov 1994 08:49:37 GMT",    /* day 0 */
	        "Sun, 06 Nov 1994 24:00:00 GMT",    /* hour 24 */
	        "Sun, 06 Nov 1994 08:60:00 GMT",    /* minute 60 */
	        "Sun, 06 Nov 1994 08:49:61 GMT",    /* second 61 */
	        "Sun, 06 Foo 1994 08:49:37 GMT",    /* no such month */
	        "Sund, 06 Nov 1994 08:49:37 GMT",   /* no such day name */
	        "Sunday, 06 Nov 1994 08:49:37 GMT", /* long day name, IMF layout */
	        "Sun, 06-Nov-94 08:49:37 GMT",      /* short day name, RFC 850 layout */
	        "Sun Nov 6 08:49:37 1994",          /* asctime's day is two wide */
	        "Sun Nov  6 08:49:37 94",           /* asctime's year is four digits */
	        "Sun, 06 Nov 1994 8:49:37 GMT",     /* one-digit hour */
	        "Sun, 06 Nov +994 08:49:37 GMT",    "Sun, 06 Nov 1994 08:49:3", "Sun,", "Sun",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t got = ra(bad[i], EXAMPLE_MS);
		if (got != -1)
			UNIT_FAIL("\"%s\" gave %" PRId64 ", expected -1", bad[i], got);
	}
	/* The NUL case counted in full. */
	CHECK_INT(http_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT\0", 30, EXAMPLE_MS), -1);
}

TEST(requests_are_built_and_wiped)
{
	struct http_request req = {0};
	buf_puts(&req.url, "https://example.invalid/v1/chat/completions");
	http_request_add_header(&req, "Authorization: Bearer %s", "sk-test");
	http_request_add_header(&req, "Content-Type: application/json");
	buf_puts(&req.body, "{}");
	CHECK_INT(req.n_headers, 2);
	CHECK_STR(req.headers[0], "Authorization: Bearer sk-test");
	CHECK_STR(req.headers[1], "Content-Type: application/json");
	http_request_clear(&req);
	CHECK(req.headers == NULL && req.n_headers == 0);
	CHECK(req.url.data == NULL && req.body.data == NULL);
	http_request_clear(&req); /* twice is fine */
}

/* ---------------------------------------------------------------- a paused stream */

#define STREAM_BYTES ((size_t)8 << 20) /* far more than the socket buffers hold */

/* Byte k of the body: not periodic at any power of two, so a piece lost,
 * repeated or out of order shows. */
static unsigned char body_byte(size_t k)
{
	return (unsigned char)((k * 7u) ^ (k / 251u) ^ (k / 65521u));
}

/* The server: answers one GET on fd with STREAM_BYTES of body_byte(), then
 * exits. Runs in a child process. */
static void serve_one(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		_exit(1);
	char req[4096];
	size_t got = 0;
	while (got < sizeof req - 1) {
		ssize_t n = read(fd, req + got, sizeof req - 1 - got);
		if (n <= 0)
			_exit(1);
		got += (size_t)n;
		req[got] = 0;
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	char head[128];
	int hl = snprintf(head, sizeof head,
	                  "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
	                  STREAM_BYTES);
	if (write(fd, head, (size_t)hl) != hl)
		_exit(1);
	static unsigned char block[65536];
	for (size_t off = 0; off < STREAM_BYTES; off += sizeof block) {
		size_t n = STREAM_BYTES - off < sizeof block ? STREAM_BYTES - off : sizeof block;
		for (size_t k = 0; k < n; k++)
			block[k] = body_byte(off + k);
		for (size_t w = 0; w < n;) {
			ssize_t m = write(fd, block + w, n - w);
			if (m <= 0)
				_exit(1);
			w += (size_t)m;
		}
	}
	close(fd);
	_exit(0);
}

struct stream_state {
	struct http_pool *pool;
	uv_timer_t timer;
	size_t received, mismatches, pieces, pauses, pieces_while_paused;
	bool paused, done;
	struct http_response resp;
};

static void on_resume_timer(uv_timer_t *timer)
{
	struct stream_state *st = timer->data;
	st->paused = false;
	http_pool_resume(st->pool, st);
}

static int on_piece(void *opaque, const char *data, size_t len)
{
	struct stream_state *st = opaque;
	if (st->paused)
		st->pieces_while_paused++;
	for (size_t k = 0; k < len; k++)
		st->mismatches += (unsigned char)data[k] != body_byte(st->received + k);
	st->received += len;
	/* Every 16th piece pauses the download for 5 ms, from a timer. */
	if (++st->pieces % 16 == 0) {
		st->paused = true;
		st->pauses++;
		uv_timer_start(&st->timer, on_resume_timer, 5, 0);
		return HTTP_CHUNK_PAUSE;
	}
	return 0;
}

static void on_stream_done(void *opaque, const struct http_response *resp)
{
	struct stream_state *st = opaque;
	st->done = true;
	st->resp = *resp;
	st->resp.body = NULL;
	st->resp.content_type = NULL;
}

TEST(paused_stream_delivers_every_byte_in_order)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	CHECK(lfd >= 0);
	CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
	CHECK(listen(lfd, 4) == 0);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child < 0)
		return;
	if (child == 0)
		serve_one(lfd);
	close(lfd);

	uv_loop_t loop;
	uv_loop_init(&loop);
	char err[256];
	struct http_pool_options opt = {.max_connections = 1, .max_body_bytes = 1 << 20};
	struct stream_state st = {0};
	st.pool = http_pool_new(&loop, &opt, err, sizeof err);
	CHECK(st.pool != NULL);
	if (!st.pool) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		return;
	}
	uv_timer_init(&loop, &st.timer);
	st.timer.data = &st;
	struct http_request req = {.method = HTTP_GET};
	buf_printf(&req.url, "http://127.0.0.1:%d/results", ntohs(a.sin_port));
	http_pool_stream(st.pool, &req, 60000, on_piece, on_stream_done, &st);
	/* Bounded: the download ends (or fails) well within its timeout. */
	while (!st.done && uv_run(&loop, UV_RUN_ONCE))
		;
	CHECK(st.done);
	CHECK_INT(st.resp.error, HTTP_OK);
	CHECK_INT(st.resp.status, 200);
	CHECK_INT(st.received, STREAM_BYTES);
	CHECK_INT(st.mismatches, 0);
	CHECK_INT(st.pieces_while_paused, 0);
	CHECK(st.pauses >= 10);
	/* Resuming a transfer that is over is nothing. */
	http_pool_resume(st.pool, &st);

	int status = 0;
	CHECK(waitpid(child, &status, 0) == child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	http_pool_free(st.pool);
	uv_close((uv_handle_t *)&st.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(uv_loop_close(&loop), 0);
}

int main(void)
{
	if (http_global_init() != 0)
		return 1;
	RUN(retry_after_delay_seconds);
	RUN(retry_after_hostile_values);
	RUN(retry_after_http_dates);
	RUN(retry_after_malformed_dates);
	RUN(requests_are_built_and_wiped);
	RUN(paused_stream_delivers_every_byte_in_order);
	http_global_cleanup();
	return unit_done();
}
