/* buf: a growable byte buffer, always NUL-terminated so it can be used as a C string.
 * Allocation failure aborts: the worker cannot do anything useful without memory. */
#ifndef PROMPTYARD_BUF_H
#define PROMPTYARD_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	char *data; /* NULL until the first append; then NUL-terminated */
	size_t len;
	size_t cap;
	/* Holds a secret (a header line with a key): growing moves the bytes to
	 * a new block and zeroes the old one before freeing it (realloc would
	 * leave a copy in freed memory), and buf_reset and buf_free zero what
	 * was written. Set it before the first append: {.secret = true}. */
	bool secret;
};

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
/* Appends v in decimal (what "%lld" writes), without printf's cost. */
void buf_i64(struct buf *b, int64_t v);
/* Formats straight into b's spare room (no copy on the stack), twice when it
 * did not fit. A secret is better appended than formatted: glibc's printf
 * keeps the tail of an output that did not fit in a buffer of its own stack
 * frame, which nobody wipes. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Appends len bytes of s as standard base64, padded (RFC 4648 §4). */
void buf_base64(struct buf *b, const unsigned char *s, size_t len);
/* Appends s as a JSON string literal, quotes included. */
void buf_json_str(struct buf *b, const char *s, size_t len);
void buf_reset(struct buf *b);
/* The length of the well-formed UTF-8 sequence that starts at p (p < end) and
 * ends by end: RFC 3629, no overlong forms, no surrogates, nothing above
 * U+10FFFF; 1 for ASCII. 0 when there is none. */
size_t utf8_seq_len(const unsigned char *p, const unsigned char *end);
/* Hands the data to the caller (new, free() it; a secret's caller wipes it
 * first) and leaves b empty. */
char *buf_take(struct buf *b);
void buf_free(struct buf *b);

/* xmalloc and friends abort on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
