/* http: LLM calls through libcurl's multi-socket API on the worker's libuv loop.
 *
 * One http_pool per provider: its own connection cache, limited to the
 * provider's max_connections, with HTTP/2 multiplexing when the server offers
 * it. Nothing here blocks: http_pool_start() returns at once and the callback
 * runs on the loop when the transfer is over, however it ended. */
#ifndef PROMPTYARD_HTTP_H
#define PROMPTYARD_HTTP_H

#include "provider.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct http_pool;

enum http_error {
	HTTP_OK,            /* a status was received (any status) */
	HTTP_TIMEOUT,       /* the attempt's timeout passed */
	HTTP_CONNECT_ERROR, /* no connection, DNS failure, reset before a status */
	HTTP_TOO_LARGE,     /* the body exceeded the pool's cap */
	HTTP_OTHER_ERROR,   /* any other transport failure */
};

struct http_response {
	enum http_error error;
	long status;      /* 0 unless error == HTTP_OK */
	const char *body; /* borrowed for the callback's duration; NUL-terminated */
	size_t body_len;
	int64_t retry_after_ms; /* from Retry-After (seconds or HTTP date), -1 if none */
	int64_t latency_ms;
};

typedef void http_done_cb(void *opaque, const struct http_response *resp);

/* A new pool on loop for at most max_connections connections. Bodies above
 * max_body_bytes end the transfer as HTTP_TOO_LARGE. Returns NULL and fills
 * errstr on failure. */
struct http_pool *http_pool_new(uv_loop_t *loop, int max_connections, size_t max_body_bytes,
                                char *errstr, size_t errstr_size);

/* Starts req (taken: the pool clears it when done) with timeout_ms covering
 * the whole attempt. cb(opaque, resp) runs exactly once, from the loop, never
 * from within this call. */
void http_pool_start(struct http_pool *pool, struct http_request *req, int64_t timeout_ms,
                     http_done_cb *cb, void *opaque);

/* Transfers under way. */
int http_pool_active(const struct http_pool *pool);

/* Aborts every transfer (their callbacks do not run) and frees the pool once
 * libuv has closed its handles; the loop must be run afterwards. NULL is safe. */
void http_pool_free(struct http_pool *pool);

/* curl_global_init / cleanup, once per process. */
int http_global_init(void);
void http_global_cleanup(void);

#endif
