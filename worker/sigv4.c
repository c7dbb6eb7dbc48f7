/* sigv4: AWS Signature Version 4, as botocore's SigV4Auth signs a non-S3
 * request (see sigv4.h for the contract and for why not libcurl's signer).
 * HMAC-SHA256 and SHA-256 come from OpenSSL's libcrypto. */
#include "sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SHA256_LEN      32
#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

/* ---------------------------------------------------------------- encoding */

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Appends s percent-encoded: unreserved bytes (and '/' when keep_slash) as
 * they are, every other byte as %XX. */
static void buf_uri_encode(struct buf *b, const char *s, size_t len, bool keep_slash)
{
	buf_reserve(b, 3 * len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_unreserved(c) || (keep_slash && c == '/')) {
			b->data[b->len++] = (char)c;
		} else {
			b->data[b->len++] = '%';
			b->data[b->len++] = hex_upper[c >> 4];
			b->data[b->len++] = hex_upper[c & 15];
		}
	}
	b->data[b->len] = '\0';
}

void sigv4_buf_path_segment(struct buf *b, const char *s)
{
	size_t len = strlen(s);
	if (len && strspn(s, ".") == len) {
		for (size_t i = 0; i < len; i++)
			buf_append(b, "%2E", 3);
		return;
	}
	buf_uri_encode(b, s, len, false);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Appends s percent-decoded ('+' is a plus sign, as in RFC 3986). Returns -1
 * on a '%' without two hex digits. */
static int buf_uri_decode(struct buf *b, const char *s, size_t len)
{
	buf_reserve(b, len);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			int hi = i + 1 < len ? hex_value(s[i + 1]) : -1;
			int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		b->data[b->len++] = c;
	}
	b->data[b->len] = '\0';
	return 0;
}

static void hex_encode(char *out, const unsigned char *in, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex_lower[in[i] >> 4];
		out[2 * i + 1] = hex_lower[in[i] & 15];
	}
	out[2 * len] = '\0';
}

/* hex (65 bytes) = the lowercase hex SHA-256 of data. */
static int sha256_hex(char *hex, const void *data, size_t len)
{
	unsigned char md[SHA256_LEN];
	unsigned int md_len = 0;
	if (EVP_Digest(data ? data : "", len, md, &md_len, EVP_sha256(), NULL) != 1 ||
	    md_len != SHA256_LEN)
		return -1;
	hex_encode(hex, md, SHA256_LEN);
	return 0;
}

static int hmac_sha256(unsigned char out[SHA256_LEN], const void *key, size_t key_len,
                       const char *msg, size_t msg_len)
{
	unsigned int len = 0;
	if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, msg_len, out,
	          &len) ||
	    len != SHA256_LEN)
		return -1;
	return 0;
}

/* Frees b after wiping what it held (it may hold the session token). */
static void buf_wipe_free(struct buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->cap);
	buf_free(b);
}

/* ---------------------------------------------------------------- inputs */

static void err(char *errstr, size_t errstr_size, const char *msg)
{
	if (errstr_size)
		snprintf(errstr, errstr_size, "sigv4: %s", msg);
}

/* Printable ASCII without a space (0x21-0x7E), none of the bytes in `not`. */
static bool is_word(const char *s, const char * not )
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++)
		if (*p < 0x21 || *p > 0x7e || strchr(not, *p))
			return false;
	return true;
}

/* RFC 9110 tchar: what a method or a header name is made of. */
static bool is_tchar(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

struct url_parts {
	bool https;
	const char *host; /* as written, brackets included for IPv6 */
	size_t host_len;
	long port;        /* -1 when not written */
	const char *path; /* from the first '/' to '?' or the end; may be empty */
	size_t path_len;
	const char *query; /* after '?'; may be empty */
	size_t query_len;
};

static int url_parse(const char *url, struct url_parts *u, char *errstr, size_t errstr_size)
{
	memset(u, 0, sizeof *u);
	if (!is_word(url, "#")) {
		err(errstr, errstr_size,
		    "the URL must be printable ASCII without spaces and without a fragment");
		return -1;
	}
	const char *p;
	if (strncasecmp(url, "https://", 8) == 0) {
		u->https = true;
		p = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		p = url + 7;
	} else {
		err(errstr, errstr_size, "the URL must be http:// or https://");
		return -1;
	}
	size_t authority_len = strcspn(p, "/?");
	if (memchr(p, '@', authority_len)) {
		err(errstr, errstr_size, "user info in the URL is not supported");
		return -1;
	}
	u->host = p;
	if (*p == '[') {
		const char *close = memchr(p, ']', authority_len);
		if (!close) {
			err(errstr, errstr_size, "the URL's IPv6 host lacks its ']'");
			return -1;
		}
		u->host_len = (size_t)(close + 1 - p);
	} else {
		u->host_len = strcspn(p, ":/?");
	}
	if (u->host_len == 0 || (*p == '[' && u->host_len == 2)) {
		err(errstr, errstr_size, "the URL has no host");
		return -1;
	}
	p += u->host_len;
	u->port = -1;
	if (*p == ':') {
		p++;
		size_t digits = strspn(p, "0123456789");
		long port = 0;
		for (size_t i = 0; i < digits && port <= 65535; i++)
			port = port * 10 + (p[i] - '0');
		if (digits == 0 || port > 65535 || (p[digits] && !strchr("/?", p[digits]))) {
			err(errstr, errstr_size, "the URL's port is not a number from 0 to 65535");
			return -1;
		}
		u->port = port;
		p += digits;
	} else if (*p && *p != '/' && *p != '?') {
		err(errstr, errstr_size, "the URL's host is malformed");
		return -1;
	}
	u->path = p;
	u->path_len = strcspn(p, "?");
	p += u->path_len;
	if (*p == '?') {
		u->query = p + 1;
		u->query_len = strlen(p + 1);
	} else {
		u->query = p;
	}
	return 0;
}

/* ---------------------------------------------------------------- canonical parts */

/* The canonical URI of a path as sent (botocore's normalize_url_path, then
 * quote(path, safe='/~')): "." and empty segments dropped, ".." drops the
 * one before it, a trailing '/' kept when anything is left. */
static void buf_canonical_uri(struct buf *b, const char *path, size_t len)
{
	struct seg {
		const char *s;
		size_t len;
	} *segs = xmalloc((len / 2 + 1) * sizeof *segs);
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		size_t end = i;
		while (end < len && path[end] != '/')
			end++;
		size_t seg_len = end - i;
		if (seg_len == 2 && path[i] == '.' && path[i + 1] == '.') {
			if (n)
				n--;
		} else if (seg_len && !(seg_len == 1 && path[i] == '.')) {
			segs[n].s = path + i;
			segs[n].len = seg_len;
			n++;
		}
		i = end + 1;
	}
	buf_append(b, "/", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_append(b, "/", 1);
		buf_uri_encode(b, segs[i].s, segs[i].len, false);
	}
	if (n && path[len - 1] == '/')
		buf_append(b, "/", 1);
	free(segs);
}

struct query_pair {
	char *name, *value; /* new, encoded */
};

static int query_pair_cmp(const void *a, const void *b)
{
	const struct query_pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

/* *out = (new) the one encoding AWS signs of s (len bytes, as sent).
 * Returns -1 on a malformed '%' escape (*out set all the same). */
static int query_part(char **out, const char *s, size_t len)
{
	struct buf raw = {0}, enc = {0};
	int rc = buf_uri_decode(&raw, s, len);
	if (rc == 0)
		buf_uri_encode(&enc, raw.data, raw.len, false);
	buf_free(&raw);
	*out = enc.data ? buf_take(&enc) : xstrdup("");
	return rc;
}

static int buf_canonical_query(struct buf *b, const char *q, size_t len, char *errstr,
                               size_t errstr_size)
{
	if (len == 0)
		return 0;
	size_t cap = 1;
	for (size_t i = 0; i < len; i++)
		cap += q[i] == '&';
	struct query_pair *pairs = xcalloc(cap, sizeof *pairs);
	size_t n = 0;
	int rc = -1;
	for (size_t i = 0; i <= len; n++) {
		size_t end = i;
		while (end < len && q[end] != '&')
			end++;
		if (end == i) {
			err(errstr, errstr_size, "the URL's query has an empty parameter");
			goto out;
		}
		size_t name_len = 0;
		while (i + name_len < end && q[i + name_len] != '=')
			name_len++;
		size_t value_at = i + name_len + (i + name_len < end);
		if (query_part(&pairs[n].name, q + i, name_len) < 0 ||
		    query_part(&pairs[n].value, q + value_at, end - value_at) < 0) {
			n++;
			err(errstr, errstr_size,
			    "the URL's query has a '%' without two hex digits");
			goto out;
		}
		i = end + 1;
	}
	qsort(pairs, n, sizeof *pairs, query_pair_cmp);
	for (size_t i = 0; i < n; i++)
		buf_printf(b, "%s%s=%s", i ? "&" : "", pairs[i].name, pairs[i].value);
	rc = 0;
out:
	for (size_t i = 0; i < n; i++) {
		free(pairs[i].name);
		free(pairs[i].value);
	}
	free(pairs);
	return rc;
}

/* What signing needs besides the canonical request itself. */
struct canon {
	struct buf request;      /* the canonical request (may hold the session token) */
	struct buf signed_names; /* "content-type;host;x-amz-date" */
	char amz_date[17];       /* "20240101T000000Z" */
	char payload_hex[2 * SHA256_LEN + 1];
};

static void canon_clear(struct canon *k)
{
	buf_wipe_free(&k->request);
	buf_free(&k->signed_names);
}

static void ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

struct header {
	char *name;  /* new, lower case */
	char *value; /* new, trimmed, inner spaces collapsed */
	size_t order;
};

static int header_cmp(const void *a, const void *b)
{
	const struct header *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (x->order > y->order) - (x->order < y->order);
}

static void header_set(struct header *h, const char *name, size_t name_len, const char *value,
                       size_t value_len, size_t order)
{
	h->name = xstrndup(name, name_len);
	ascii_lower(h->name);
	struct buf v = {0};
	buf_reserve(&v, value_len);
	bool space = false;
	for (size_t i = 0; i < value_len; i++) {
		if (value[i] == ' ' || value[i] == '\t') {
			space = v.len > 0;
			continue;
		}
		if (space)
			v.data[v.len++] = ' ';
		space = false;
		v.data[v.len++] = value[i];
	}
	v.data[v.len] = '\0';
	h->value = buf_take(&v);
	h->order = order;
}

static void headers_free(struct header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		if (h[i].value)
			explicit_bzero(h[i].value, strlen(h[i].value)); /* the token is one */
		free(h[i].value);
	}
	free(h);
}

/* Header names the signer writes itself (date: botocore signs a Date header
 * in X-Amz-Date's place). */
static const char *const signer_names[] = {"authorization", "date", "x-amz-date",
                                           "x-amz-security-token", "x-amz-content-sha256"};
/* botocore's SIGNED_HEADERS_BLACKLIST. */
static const char *const unsigned_names[] = {"expect", "user-agent", "x-amzn-trace-id"};

static bool name_in(const char *name, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/* ---------------------------------------------------------------- the canonical request */

/* The inputs canon_build does not check as it goes. */
static int inputs_check(const struct sigv4_request *r, const struct sigv4_credentials *c,
                        char *errstr, size_t errstr_size)
{
	const char *msg = NULL;
	if (!is_word(c->access_key_id, ",/"))
		msg = "the access key id is missing or not printable ASCII";
	else if (!c->secret_access_key || !*c->secret_access_key)
		msg = "the secret access key is missing";
	else if (c->session_token && *c->session_token && !is_word(c->session_token, ""))
		msg = "the session token is not printable ASCII";
	else if (!is_word(r->region, ",/;") || !is_word(r->service, ",/;"))
		msg = "the region or the service is missing or malformed";
	else if (!r->method || !*r->method ||
	         strspn(r->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") !=
	                 strlen(r->method))
		msg = "the method must be letters";
	else if (r->body_len && !r->body)
		msg = "body_len without a body";
	else if (r->n_headers && !r->headers)
		msg = "n_headers without headers";
	if (msg)
		err(errstr, errstr_size, msg);
	return msg ? -1 : 0;
}

/* The headers to sign, unsorted: the caller's (the unsigned ones left out),
 * then the signer's. Returns -1 (errstr set) on a malformed or reserved
 * line; *h_out is to be freed (headers_free) either way. */
static int headers_collect(const struct sigv4_request *r, const struct sigv4_credentials *c,
                           const struct url_parts *u, const struct canon *k, struct header **h_out,
                           size_t *n_out, char *errstr, size_t errstr_size)
{
	struct header *h = xcalloc(r->n_headers + 4, sizeof *h);
	size_t n = 0;
	bool has_host = false;
	*h_out = h;
	for (size_t i = 0; i < r->n_headers; i++) {
		const char *line = r->headers[i];
		const char *colon = line ? strchr(line, ':') : NULL;
		size_t name_len = colon ? (size_t)(colon - line) : 0;
		bool ok = name_len > 0;
		for (size_t j = 0; ok && j < name_len; j++)
			ok = is_tchar(line[j]);
		for (const char *v = colon ? colon + 1 : ""; ok && *v; v++)
			ok = (*v >= 0x20 && *v <= 0x7e) || *v == '\t';
		if (!ok) {
			err(errstr, errstr_size,
			    "a header to sign is not \"Name: value\" in printable ASCII");
			return -1;
		}
		header_set(&h[n++], line, name_len, colon + 1, strlen(colon + 1), i);
		*n_out = n;
		const char *name = h[n - 1].name;
		if (name_in(name, signer_names, sizeof signer_names / sizeof *signer_names)) {
			err(errstr, errstr_size,
			    "Authorization, Date and X-Amz-* headers are the signer's to write");
			return -1;
		}
		if (name_in(name, unsigned_names, sizeof unsigned_names / sizeof *unsigned_names)) {
			n--;
			free(h[n].name);
			free(h[n].value);
			continue;
		}
		has_host |= strcmp(name, "host") == 0;
	}
	size_t order = r->n_headers;
	if (!has_host) {
		struct buf host = {0};
		buf_append(&host, u->host, u->host_len);
		if (u->port >= 0 && u->port != (u->https ? 443 : 80))
			buf_printf(&host, ":%ld", u->port);
		ascii_lower(host.data);
		header_set(&h[n++], "host", 4, host.data, host.len, order++);
		buf_free(&host);
	}
	header_set(&h[n++], "x-amz-date", 10, k->amz_date, 16, order++);
	if (r->content_sha256)
		header_set(&h[n++], "x-amz-content-sha256", 20, k->payload_hex, 2 * SHA256_LEN,
		           order++);
	if (c->session_token && *c->session_token)
		header_set(&h[n++], "x-amz-security-token", 20, c->session_token,
		           strlen(c->session_token), order++);
	*n_out = n;
	return 0;
}

static int canon_build(const struct sigv4_request *r, const struct sigv4_credentials *c,
                       struct canon *k, char *errstr, size_t errstr_size)
{
	struct header *h = NULL;
	size_t n = 0;
	struct url_parts u;
	struct tm tm;
	time_t t = (time_t)r->time_s;
	int rc = -1;

	memset(k, 0, sizeof *k);
	if (inputs_check(r, c, errstr, errstr_size) < 0 ||
	    url_parse(r->url, &u, errstr, errstr_size) < 0)
		return -1;
	/* Year 9999 at most: X-Amz-Date has four digits for it. */
	if (r->time_s < 0 || r->time_s > INT64_C(253402300799) || !gmtime_r(&t, &tm) ||
	    strftime(k->amz_date, sizeof k->amz_date, "%Y%m%dT%H%M%SZ", &tm) != 16) {
		err(errstr, errstr_size, "the time is out of range");
		return -1;
	}
	if (sha256_hex(k->payload_hex, r->body, r->body_len) < 0) {
		err(errstr, errstr_size, "SHA-256 failed (libcrypto)");
		return -1;
	}
	if (headers_collect(r, c, &u, k, &h, &n, errstr, errstr_size) < 0)
		goto out;
	qsort(h, n, sizeof *h, header_cmp);

	/* Room for all of it up front, so that no realloc leaves a copy of the
	 * token behind: the URI and the query grow at most threefold. */
	size_t need = strlen(r->method) + 3 * strlen(r->url) + 2 * SHA256_LEN + 16;
	for (size_t i = 0; i < n; i++)
		need += 2 * strlen(h[i].name) + strlen(h[i].value) + 3;
	buf_reserve(&k->request, need);

	size_t method_at = k->request.len;
	buf_puts(&k->request, r->method);
	for (char *m = k->request.data + method_at; *m; m++)
		if (*m >= 'a' && *m <= 'z')
			*m = (char)(*m - 'a' + 'A');
	buf_append(&k->request, "\n", 1);
	buf_canonical_uri(&k->request, u.path, u.path_len);
	buf_append(&k->request, "\n", 1);
	if (buf_canonical_query(&k->request, u.query, u.query_len, errstr, errstr_size) < 0)
		goto out;
	buf_append(&k->request, "\n", 1);
	for (size_t i = 0; i < n; i++) {
		bool first = i == 0 || strcmp(h[i - 1].name, h[i].name) != 0;
		if (first) {
			if (i)
				buf_append(&k->request, "\n", 1);
			buf_puts(&k->request, h[i].name);
			buf_append(&k->request, ":", 1);
			if (k->signed_names.len)
				buf_append(&k->signed_names, ";", 1);
			buf_puts(&k->signed_names, h[i].name);
		} else {
			buf_append(&k->request, ",", 1);
		}
		buf_puts(&k->request, h[i].value);
	}
	buf_append(&k->request, "\n\n", 2);
	buf_append(&k->request, k->signed_names.data, k->signed_names.len);
	buf_append(&k->request, "\n", 1);
	buf_append(&k->request, k->payload_hex, 2 * SHA256_LEN);
	rc = 0;
out:
	headers_free(h, n);
	if (rc < 0)
		canon_clear(k);
	return rc;
}

int sigv4_canonical_request(const struct sigv4_request *r, const struct sigv4_credentials *c,
                            struct buf *b, char *errstr, size_t errstr_size)
{
	struct canon k;
	if (canon_build(r, c, &k, errstr, errstr_size) < 0)
		return -1;
	buf_append(b, k.request.data, k.request.len);
	canon_clear(&k);
	return 0;
}

/* ---------------------------------------------------------------- signing */

/* sig (65 bytes) = hex HMAC of string_to_sign under the key derived from the
 * secret for this day, region and service. */
static int signature_hex(char *sig, const char *secret, const char *date8, const char *region,
                         const char *service, const struct buf *string_to_sign)
{
	unsigned char k_date[SHA256_LEN], k_region[SHA256_LEN], k_service[SHA256_LEN],
	        k_signing[SHA256_LEN], mac[SHA256_LEN];
	size_t secret_len = strlen(secret);
	char *k_secret = xmalloc(secret_len + 5);
	memcpy(k_secret, "AWS4", 4);
	memcpy(k_secret + 4, secret, secret_len + 1);
	int rc = -1;
	if (hmac_sha256(k_date, k_secret, secret_len + 4, date8, 8) < 0 ||
	    hmac_sha256(k_region, k_date, SHA256_LEN, region, strlen(region)) < 0 ||
	    hmac_sha256(k_service, k_region, SHA256_LEN, service, strlen(service)) < 0 ||
	    hmac_sha256(k_signing, k_service, SHA256_LEN, "aws4_request", 12) < 0 ||
	    hmac_sha256(mac, k_signing, SHA256_LEN, string_to_sign->data, string_to_sign->len) < 0)
		goto out;
	hex_encode(sig, mac, SHA256_LEN);
	rc = 0;
out:
	explicit_bzero(k_secret, secret_len + 5);
	free(k_secret);
	explicit_bzero(k_date, sizeof k_date);
	explicit_bzero(k_region, sizeof k_region);
	explicit_bzero(k_service, sizeof k_service);
	explicit_bzero(k_signing, sizeof k_signing);
	explicit_bzero(mac, sizeof mac);
	return rc;
}

int sigv4_sign(const struct sigv4_request *r, const struct sigv4_credentials *c,
               struct sigv4_out *out, char *errstr, size_t errstr_size)
{
	struct canon k;
	struct buf sts = {0}, line = {0};
	char cr_hex[2 * SHA256_LEN + 1], sig[2 * SHA256_LEN + 1];
	char date8[9];
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (canon_build(r, c, &k, errstr, errstr_size) < 0)
		return -1;
	memcpy(date8, k.amz_date, 8);
	date8[8] = '\0';
	if (sha256_hex(cr_hex, k.request.data, k.request.len) < 0) {
		err(errstr, errstr_size, "SHA-256 failed (libcrypto)");
		goto out;
	}
	buf_printf(&sts, SIGV4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s", k.amz_date, date8,
	           r->region, r->service, cr_hex);
	if (signature_hex(sig, c->secret_access_key, date8, r->region, r->service, &sts) < 0) {
		err(errstr, errstr_size, "HMAC-SHA256 failed (libcrypto)");
		goto out;
	}

	buf_printf(&line, "X-Amz-Date: %s", k.amz_date);
	out->lines[out->n++] = buf_take(&line);
	if (c->session_token && *c->session_token) {
		size_t len = strlen(c->session_token);
		buf_reserve(&line, len + 32); /* one allocation: no stray copy of the token */
		buf_puts(&line, "X-Amz-Security-Token: ");
		buf_append(&line, c->session_token, len);
		out->lines[out->n++] = buf_take(&line);
	}
	if (r->content_sha256) {
		buf_printf(&line, "X-Amz-Content-SHA256: %s", k.payload_hex);
		out->lines[out->n++] = buf_take(&line);
	}
	buf_printf(&line,
	           "Authorization: " SIGV4_ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, "
	           "SignedHeaders=%s, Signature=%s",
	           c->access_key_id, date8, r->region, r->service, k.signed_names.data, sig);
	out->lines[out->n++] = buf_take(&line);
	rc = 0;
out:
	canon_clear(&k);
	buf_free(&sts);
	return rc;
}

void sigv4_out_clear(struct sigv4_out *out)
{
	if (!out)
		return;
	for (size_t i = 0; i < out->n; i++) {
		explicit_bzero(out->lines[i], strlen(out->lines[i]));
		free(out->lines[i]);
	}
	memset(out, 0, sizeof *out);
}
