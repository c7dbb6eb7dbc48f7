/* libFuzzer target of sigv4 (STYLE: a hand-written signer has one).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Iworker \
 *         tests/fuzz/fuzz_sigv4.c worker/sigv4.c worker/buf.c -lcrypto -o build/fuzz_sigv4
 *   build/fuzz_sigv4 -max_total_time=60
 *
 * The input is split at '\n' into: URL, method, region, session token, then
 * header lines up to an empty line, then the body (the rest, NULs and all).
 * Whatever it is, sigv4_sign either refuses it with an error message or
 * returns 2 to 4 well-formed lines, and the canonical request it signs
 * agrees with the lines; the first field, read as a model id, also checks
 * that a path built with sigv4_buf_path_segment signs as the same bytes
 * with each '%' encoded once more (the double encoding AWS wants). */
#include "sigv4.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The next '\n'-ended field of [*p, end), NUL-terminated (new). */
static char *field(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	const char *stop = nl ? nl : end;
	char *s = xstrndup(*p, (size_t)(stop - *p));
	*p = nl ? nl + 1 : end;
	return s;
}

static void check_path_segment(const char *id)
{
	struct buf url = {0}, want = {0}, cr = {0};
	buf_puts(&url, "https://bedrock-runtime.us-east-1.amazonaws.com/model/");
	size_t seg_at = url.len;
	sigv4_buf_path_segment(&url, id);
	size_t seg_end = url.len;
	buf_puts(&url, "/converse");
	buf_puts(&want, "POST\n/model/");
	for (size_t i = seg_at; i < seg_end; i++) {
		if (url.data[i] == '%')
			buf_puts(&want, "%25");
		else
			buf_append(&want, &url.data[i], 1);
	}
	buf_puts(&want, *id ? "/converse\n" : "converse\n");
	struct sigv4_request r = {.method = "POST",
	                          .url = url.data,
	                          .region = "us-east-1",
	                          .service = "bedrock",
	                          .time_s = 1700000000};
	struct sigv4_credentials c = {.access_key_id = "AKID", .secret_access_key = "s"};
	char err[256];
	if (sigv4_canonical_request(&r, &c, &cr, err, sizeof err) != 0)
		abort();
	if (strncmp(cr.data, want.data, want.len) != 0)
		abort();
	buf_free(&url);
	buf_free(&want);
	buf_free(&cr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char *url = field(&p, end), *method = field(&p, end), *region = field(&p, end),
	     *token = field(&p, end);
	char *lines[8];
	size_t n = 0;
	while (p < end && n < 8) {
		char *line = field(&p, end);
		if (!*line) {
			free(line);
			break;
		}
		lines[n++] = line;
	}
	check_path_segment(url);

	struct sigv4_request r = {.method = method,
	                          .url = url,
	                          .headers = (const char *const *)lines,
	                          .n_headers = n,
	                          .body = p,
	                          .body_len = (size_t)(end - p),
	                          .region = region,
	                          .service = "bedrock",
	                          .time_s = (int64_t)(size * 7919u)};
	struct sigv4_credentials c = {.access_key_id = "AKIDEXAMPLE",
	                              .secret_access_key = "secret",
	                              .session_token = token};
	struct sigv4_out out = {0};
	struct buf cr = {0};
	char err[256] = "";
	if (sigv4_sign(&r, &c, &out, err, sizeof err) == 0) {
		if (out.n < 2 || out.n > 4 || strncmp(out.lines[out.n - 1], "Authorization: ", 15))
			abort();
		if (sigv4_canonical_request(&r, &c, &cr, err, sizeof err) != 0)
			abort();
		/* The signed header names end the canonical request but its hash (a
		 * region has no ',': the first ", SignedHeaders=" is the field). */
		const char *sh = strstr(out.lines[out.n - 1], ", SignedHeaders=") + 16;
		size_t sh_len = strcspn(sh, ",");
		if (cr.len < sh_len + 66 || memcmp(cr.data + cr.len - 65 - sh_len, sh, sh_len) != 0)
			abort();
	} else if (!err[0] || out.n != 0) {
		abort();
	}
	sigv4_out_clear(&out);
	buf_free(&cr);
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(url);
	free(method);
	free(region);
	free(token);
	return 0;
}
