/* http: LLM calls through libcurl's multi-socket API on the worker's libuv loop.
 *
 * One http_pool per provider, for plain HTTP and HTTPS alike: its connection
 * caches hold at most the provider's max_connections, with HTTP/2
 * multiplexing when the server offers it over TLS. Nothing here blocks:
 * http_pool_start() returns at once and the callback runs on the loop when
 * the transfer is over, however it ended.
 *
 * This layer depends on nothing above it: a request is a URL, header lines
 * and a body (struct http_request), built by the wire formats (provider.h). */
#ifndef PROMPTYARD_HTTP_H
#define PROMPTYARD_HTTP_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The method of a request: every call of the sync path POSTs; a batch's
 * polls, lists and results downloads GET (provider_batch.h). */
enum http_method { HTTP_POST, HTTP_GET };

/* One call's request: what a wire format builds and the pool sends. */
struct http_request {
	enum http_method method; /* HTTP_POST (0) unless set; a GET sends no body */
	struct buf url;          /* full URL */
	char **headers;          /* "Name: value" lines (new); may hold the API key: never log */
	size_t n_headers;
	struct buf body; /* request body */
};

/* Adds a header line made with printf: never a secret (see buf_vprintf). */
void http_request_add_header(struct http_request *req, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Adds the line name_colon_space + secret ("Authorization: Bearer " + key),
 * appended into a block of its exact size: no printf, no realloc, no copy
 * left behind. http_request_clear() wipes it. */
void http_request_add_secret_header(struct http_request *req, const char *name_colon_space,
                                    const char *secret);
/* Frees everything req holds, the header lines wiped first (they may hold a
 * key), and leaves it empty. */
void http_request_clear(struct http_request *req);

struct http_pool;

enum http_error {
	HTTP_OK,            /* a status was received (any status) */
	HTTP_TIMEOUT,       /* the attempt's timeout passed */
	HTTP_CONNECT_ERROR, /* no connection, DNS or TLS failure, reset before a status */
	HTTP_TOO_LARGE,     /* the body exceeded the pool's cap */
	HTTP_OTHER_ERROR,   /* any other transport failure */
};

struct http_response {
	enum http_error error;
	long status;      /* 0 unless error == HTTP_OK */
	const char *body; /* borrowed for the callback's duration; NUL-terminated */
	size_t body_len;
	int64_t retry_after_ms; /* from Retry-After (http_retry_after_ms), -1 if none */
	int64_t latency_ms;
	const char *content_type; /* the answer's Content-Type, borrowed like body; NULL if none */
	const char *error_text;   /* curl's words for a transport failure (a static string,
	                             never the URL); NULL when error == HTTP_OK */
};

typedef void http_done_cb(void *opaque, const struct http_response *resp);

/* How a pool's TLS connections speak (plain HTTP is always HTTP/1.1). */
enum http_version {
	HTTP_VERSION_DEFAULT, /* the cheaper of the two, measured (README, Performance) */
	HTTP_VERSION_1_1,     /* HTTP/1.1 over TLS: one call per connection at a time */
	HTTP_VERSION_2,       /* HTTP/2 where the server offers it in ALPN */
};

struct http_pool_options {
	int max_connections;   /* the provider's: at most this many connections */
	size_t max_body_bytes; /* a larger body ends the transfer as HTTP_TOO_LARGE */
	const char *ca_file;   /* PEM bundle to trust instead of the system's; NULL: system */
	bool tls;              /* the provider's base URL is https:// */
	enum http_version tls_version;
	/* 0: a redirect is an answer like any other (the providers' calls).
	 * Above 0: up to this many redirects are followed, to https:// URLs
	 * only (the worker's fetches of URL parts, engine_fetch.c). */
	int max_redirects;
};

/* A new pool on loop. Returns NULL and fills errstr on failure. */
struct http_pool *http_pool_new(uv_loop_t *loop, const struct http_pool_options *opt, char *errstr,
                                size_t errstr_size);

/* How many calls the pool takes at once without queueing one inside curl
 * (where no timeout runs): max_connections, times HTTP_POOL_STREAMS once an
 * answer has come over HTTP/2. It only grows, and only when a transfer ends,
 * before its callback runs. The engine waits for one of these slots before
 * reserving a call's budget. */
int http_pool_capacity(const struct http_pool *pool);

/* Streams per HTTP/2 connection, at most: RFC 9113 §6.5.2 recommends that
 * a server allow no fewer than 100 (nginx 128, Cloudflare 256). A server
 * that allows fewer makes curl queue the rest until a stream frees. */
#define HTTP_POOL_STREAMS 100

/* Starts req (taken: the pool clears it when done) with timeout_ms covering
 * the whole attempt. cb(opaque, resp) runs exactly once, from the loop, never
 * from within this call. */
void http_pool_start(struct http_pool *pool, struct http_request *req, int64_t timeout_ms,
                     http_done_cb *cb, void *opaque);

/* Called with each piece of a 2xx answer's body as it arrives; the piece is
 * borrowed for the call and not kept. Returns 0 to go on, -1 to abort the
 * transfer (it then ends HTTP_OTHER_ERROR), or HTTP_CHUNK_PAUSE: the piece
 * was taken, and no other comes until http_pool_resume() (the connection's
 * reading stops; the timeout goes on running). */
typedef int http_chunk_cb(void *opaque, const char *data, size_t len);

/* As http_pool_start, for answers too large to hold (a batch's results
 * file, hundreds of MB): the body of a 2xx answer goes to chunk piece by
 * piece, with no cap, and cb then gets an empty body; the body of any other
 * status is kept, under the pool's cap, as usual. chunk and cb run on the
 * loop with opaque. */
void http_pool_stream(struct http_pool *pool, struct http_request *req, int64_t timeout_ms,
                      http_chunk_cb *chunk, http_done_cb *cb, void *opaque);

#define HTTP_CHUNK_PAUSE 1

/* Resumes the paused streamed transfer (HTTP_CHUNK_PAUSE) whose opaque this
 * is, from the loop (never within this call): its next pieces come in
 * order, none lost. Nothing when there is none. */
void http_pool_resume(struct http_pool *pool, void *opaque);

/* Transfers under way. */
int http_pool_active(const struct http_pool *pool);

/* Aborts every transfer (their callbacks do not run) and frees the pool once
 * libuv has closed its handles; the loop must be run afterwards. NULL is safe. */
void http_pool_free(struct http_pool *pool);

/* curl_global_init / cleanup, once per process. */
int http_global_init(void);
void http_global_cleanup(void);

/* The longest wait a Retry-After gives: longer values are cut to this. It
 * equals the config's longest duration (a day), so worker.max_retry_after_ms
 * always bounds it further. */
#define HTTP_RETRY_AFTER_MAX_MS INT64_C(86400000)

/* A Retry-After value (len bytes, not NUL-terminated, optional whitespace
 * around it) as milliseconds from now_ms (Unix ms): delay-seconds (digits
 * only) or an HTTP-date in any of RFC 9110's three forms (IMF-fixdate,
 * RFC 850, asctime). The result is in [0, HTTP_RETRY_AFTER_MAX_MS]: a date
 * in the past is 0, anything longer is cut. -1 when the value is neither
 * (a sign, a fraction, an exponent, "inf", a malformed or impossible date). */
int64_t http_retry_after_ms(const char *v, size_t len, int64_t now_ms);

#endif
