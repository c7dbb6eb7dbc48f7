/* sigv4: AWS Signature Version 4 for a request the worker sends (Amazon
 * Bedrock, SPEC §15), signed as botocore's SigV4Auth signs a non-S3 request.
 *
 * Why not libcurl's CURLOPT_AWS_SIGV4: curl (7.88.1, bookworm) puts the path
 * into the canonical request exactly as it sends it, S3-style. For every
 * other service AWS encodes each path segment once more, so a Bedrock model
 * id with ':' (nearly all of them: "anthropic.claude-3-5-sonnet-20240620-v1:0")
 * never signs right: sent as ':', curl signs ':' where AWS signs "%3A"; sent
 * as "%3A", curl signs "%3A" where AWS signs "%253A". Both were checked against
 * botocore with a capturing server (tests/integration/test_sigv4.py keeps that
 * finding as a test); ids without such characters agree.
 *
 * The canonical request, as botocore builds it:
 *   method, upper case
 *   the URI: the path as sent, dot segments and empty segments removed, then
 *            every byte but A-Z a-z 0-9 - . _ ~ / encoded as %XX ("%3A" is
 *            signed as "%253A"); "/" when empty
 *   the query: each name and value percent-decoded ('+' is a plus) and
 *            encoded again (the same unreserved set, '/' encoded too), pairs
 *            sorted by name then value; so a query already encoded that way
 *            is signed as sent, but for the order. An empty parameter
 *            ("a=1&&b=2") is refused.
 *   the headers: names lower case, values trimmed with inner runs of spaces
 *            and tabs made one space, a repeated name's values joined by ',',
 *            sorted by name; host (from the URL: lower case, without the
 *            scheme's default port) unless given, x-amz-date, and
 *            x-amz-security-token and x-amz-content-sha256 when sent
 *   the signed header names, ';'-joined
 *   the hex SHA-256 of the body
 * then the string to sign and the HMAC-SHA256 key chain of the AWS docs.
 *
 * Secrets: the secret key and the keys derived from it live in buffers that are
 * wiped (explicit_bzero) before they are freed or go out of scope; the
 * session token appears in the output lines (sigv4_out_clear wipes them). No
 * error message quotes a key, a token or a header value. */
#ifndef PROMPTYARD_SIGV4_H
#define PROMPTYARD_SIGV4_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sigv4_credentials {
	const char *access_key_id;     /* borrowed; printable ASCII, no ' ', ',' or '/' */
	const char *secret_access_key; /* borrowed; a secret */
	const char *session_token;     /* borrowed; NULL or "" when none; a secret */
};

struct sigv4_request {
	const char *method; /* borrowed: "POST" (letters; signed upper case) */
	/* borrowed: the URL exactly as it is sent, http:// or https://, printable
	 * ASCII: host (or [IPv6]), optional port, path percent-encoded, optional
	 * query; no user info, no fragment. */
	const char *url;
	/* borrowed: the other headers to sign, "Name: value" lines (e.g.
	 * "Content-Type: application/json"); values printable ASCII and tabs.
	 * As in botocore, Expect, User-Agent and X-Amzn-Trace-Id are never signed
	 * (proxies change them). Authorization, X-Amz-Date,
	 * X-Amz-Security-Token and X-Amz-Content-SHA256 are the signer's and are
	 * refused here. */
	const char *const *headers;
	size_t n_headers;
	const void *body; /* borrowed; NULL when body_len is 0 */
	size_t body_len;
	const char *region;  /* borrowed: "us-east-1" */
	const char *service; /* borrowed: "bedrock" */
	int64_t time_s;      /* unix seconds: the X-Amz-Date (AWS allows 5 minutes of skew) */
	bool content_sha256; /* also send and sign X-Amz-Content-SHA256 (S3 wants it; Bedrock not) */
};

/* The header lines to add to the request, in this order: X-Amz-Date,
 * X-Amz-Security-Token (with a session token), X-Amz-Content-SHA256 (when
 * asked), Authorization. */
#define SIGV4_LINES_MAX 4
struct sigv4_out {
	char *lines[SIGV4_LINES_MAX]; /* new: "Name: value"; may hold the session token */
	size_t n;
};

/* Signs r with c. Returns 0 and fills out (which must be empty: {0}), or -1
 * with errstr set and out left empty when an input breaks the contract above
 * (or libcrypto fails). errstr never holds a secret or a header value. */
int sigv4_sign(const struct sigv4_request *r, const struct sigv4_credentials *c,
               struct sigv4_out *out, char *errstr, size_t errstr_size);

/* Wipes and frees the lines; out is empty afterwards. NULL is safe. */
void sigv4_out_clear(struct sigv4_out *out);

/* The canonical request sigv4_sign signs (for tests and diagnosis), appended
 * to b. It holds the session token when there is one: never log it.
 * Returns 0, or -1 with errstr set (b unchanged) as sigv4_sign does. */
int sigv4_canonical_request(const struct sigv4_request *r, const struct sigv4_credentials *c,
                            struct buf *b, char *errstr, size_t errstr_size);

/* Appends s to b as one URL path segment, encoded as AWS SDKs encode a path
 * label: every byte but A-Z a-z 0-9 - . _ ~ as %XX (upper-case hex), so ':'
 * is "%3A" and '/' is "%2F". A segment of dots only ("." or "..") has its
 * dots encoded ("%2E"), so that no client takes it for a dot segment and
 * removes it. How Bedrock's URL is built (the provider refuses an empty id):
 *   buf_puts(&url, base_url); buf_puts(&url, "/model/");
 *   sigv4_buf_path_segment(&url, model_id); buf_puts(&url, "/converse");
 * The path sent and the canonical URI then agree: libcurl and h1 send such a
 * path as it is. */
void sigv4_buf_path_segment(struct buf *b, const char *s);

#endif
