/* httpd: a small HTTP/1.1 server on a libuv loop, for the worker's metrics
 * endpoint and the dashboard (SPEC §11, §15).
 *
 * libmicrohttpd does the protocol without a thread of its own: its epoll
 * descriptor is watched with a uv_poll and its timeout with a uv_timer, so
 * every request is answered on the loop's one thread, between the loop's
 * other work. Answers are made whole by a handler called on the loop: a
 * handler that blocks holds every other request (and the rest of the loop)
 * for that long. Only GET and HEAD reach the handler; any other method gets
 * 405, and a request body is dropped. At most 64 connections, each closed
 * after 15 s idle. */
#ifndef PROMPTYARD_HTTPD_H
#define PROMPTYARD_HTTPD_H

#include <stddef.h>
#include <uv.h>

struct httpd;

/* What a handler answers. */
struct httpd_response {
	unsigned status;          /* e.g. 200 */
	const char *content_type; /* a static string */
	char *body;               /* new, taken by the server (NULL: empty) */
	size_t len;
};

/* Answers a GET or HEAD of path (without the query string, borrowed) into
 * out, which starts as 404 with an empty body. */
typedef void httpd_handler(void *opaque, const char *path, struct httpd_response *out);

/* Serves handler on listen ("HOST:PORT", "[V6]:PORT", or ":PORT" for every
 * interface; port 0 picks a free one) from loop. what names the listen
 * setting in errors and logs ("worker.metrics_listen", "--listen"). Returns
 * NULL with errstr set when the address is bad or cannot be bound. */
struct httpd *httpd_start(uv_loop_t *loop, const char *listen, const char *what,
                          httpd_handler *handler, void *opaque, char *errstr, size_t errstr_size);
/* The port it listens on. */
int httpd_port(const struct httpd *h);
/* Makes out a plain text answer: status, and a copy of text as the body. */
void httpd_text(struct httpd_response *out, unsigned status, const char *text);
/* Closes the listener and every connection at once and frees the server once
 * libuv has closed its handles: the loop must run afterwards. NULL is safe. */
void httpd_stop(struct httpd *h);

#endif
