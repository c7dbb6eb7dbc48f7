/* h1: the worker's own HTTP/1.1 client, on the worker's libuv loop, for
 * providers reached over plain HTTP (vLLM, Ollama, a gateway on the host or
 * the local network, the test stack's fake provider).
 *
 * http.c hands it every http:// call of a pool and keeps libcurl for the
 * rest (TLS, HTTP/2, proxies). A call here costs one writev() of the request
 * and the recv()s of the answer on a kept-alive connection: none of curl's
 * per-transfer work (connection-cache walks, liveness polls, header printf).
 *
 * What it speaks: POST with a Content-Length body; answers with
 * Content-Length, chunked, or read to the close; 1xx answers skipped;
 * keep-alive unless the server says close. One request per connection at a
 * time (no pipelining). A pool serves one origin (scheme, host, port): the
 * first URL it sees; a call to another origin is refused (h1_start returns
 * -1) and http.c sends it through curl. */
#ifndef PROMPTYARD_H1_H
#define PROMPTYARD_H1_H

#include "http.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct h1_pool;

/* A new pool on loop for at most max_connections connections, bodies capped
 * at max_body_bytes (HTTP_TOO_LARGE above). */
struct h1_pool *h1_pool_new(uv_loop_t *loop, int max_connections, size_t max_body_bytes);

/* Starts req on the pool: returns 0 and takes req (cleared; its header lines
 * wiped), and cb(opaque, resp) runs exactly once, from the loop, never from
 * within this call. Returns -1 and leaves req as it was if this client does
 * not take the URL (not http://, user info in it, or another origin than the
 * pool's). timeout_ms covers the whole call: waiting for a connection,
 * connecting, sending and reading the answer. */
int h1_start(struct h1_pool *pool, struct http_request *req, int64_t timeout_ms, http_done_cb *cb,
             void *opaque);

/* Calls under way, waiting for a connection included. */
int h1_active(const struct h1_pool *pool);

/* Aborts every call (their callbacks do not run), closes every connection and
 * frees the pool once libuv has closed its handles. NULL is safe. */
void h1_pool_free(struct h1_pool *pool);

/* A Retry-After value (delta-seconds or an HTTP date, len bytes, not
 * NUL-terminated) in milliseconds from now; -1 if it is neither. */
int64_t http_retry_after_ms(const char *v, size_t len);

#endif
