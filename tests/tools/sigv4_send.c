/* sigv4_send: sends one Bedrock-shaped request signed with AWS Signature V4,
 * for tests/integration/test_sigv4.py (a capturing server checks the
 * signature with botocore from what it received).
 *
 *   sigv4_send --base URL --model-id ID [--query Q] [--region R] [--body TEXT]
 *              [--curl-sigv4 [--unencoded-id]]
 *
 * The URL is BASE/model/{ID}/converse[?Q], the id encoded by
 * sigv4_buf_path_segment. By default the request is signed by sigv4_sign at
 * the current time and sent through the worker's own HTTP layer (an
 * http_pool), so what is checked is the path as the worker sends it. With
 * --curl-sigv4 the request is sent by a plain libcurl handle signed by
 * libcurl's CURLOPT_AWS_SIGV4 instead (with --unencoded-id the id goes into
 * the URL as it is), to keep the finding of sigv4.h's comment checked.
 *
 * Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the
 * optional AWS_SESSION_TOKEN, as for the worker; none is printed. Prints one
 * line of JSON: {"status": N, "url": "..."}; exits 0 on a 2xx answer. */
#include "http.h"
#include "sigv4.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

static const char *opt(int argc, char **argv, const char *name, const char *fallback)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	if (!fallback) {
		fprintf(stderr,
		        "usage: sigv4_send --base URL --model-id ID [--query Q] [--region R] "
		        "[--body TEXT] [--curl-sigv4 [--unencoded-id]]\nmissing %s\n",
		        name);
		exit(2);
	}
	return fallback;
}

static bool flag(int argc, char **argv, const char *name)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return true;
	return false;
}

static size_t discard(char *p, size_t size, size_t n, void *opaque)
{
	(void)p;
	(void)opaque;
	return size * n;
}

/* libcurl's own signer (the finding): returns the status, or -1. */
static long send_curl_sigv4(const char *url, const char *region, const char *body)
{
	const char *akid = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
	struct buf sigv4 = {0}, userpwd = {0};
	buf_printf(&sigv4, "aws:amz:%s:bedrock", region);
	buf_printf(&userpwd, "%s:%s", akid ? akid : "", secret ? secret : "");
	CURL *e = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4.data);
	curl_easy_setopt(e, CURLOPT_USERPWD, userpwd.data);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	long status = -1;
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	explicit_bzero(userpwd.data, userpwd.len);
	buf_free(&userpwd);
	buf_free(&sigv4);
	return status;
}

static void on_done(void *opaque, const struct http_response *resp)
{
	long *status = opaque;
	*status = resp->error == HTTP_OK ? resp->status : -1;
}

/* sigv4_sign and the worker's http_pool: returns the status, or -1. */
static long send_signed(const char *url, const char *region, const char *body)
{
	static const char *const sign[] = {"Content-Type: application/json"};
	struct sigv4_request r = {.method = "POST",
	                          .url = url,
	                          .headers = sign,
	                          .n_headers = 1,
	                          .body = body,
	                          .body_len = strlen(body),
	                          .region = region,
	                          .service = "bedrock",
	                          .time_s = (int64_t)time(NULL)};
	struct sigv4_credentials c = {.access_key_id = getenv("AWS_ACCESS_KEY_ID"),
	                              .secret_access_key = getenv("AWS_SECRET_ACCESS_KEY"),
	                              .session_token = getenv("AWS_SESSION_TOKEN")};
	struct sigv4_out out = {0};
	char err[256];
	if (sigv4_sign(&r, &c, &out, err, sizeof err) < 0) {
		fprintf(stderr, "sigv4_send: %s\n", err);
		exit(2);
	}
	struct http_request req = {0};
	buf_puts(&req.url, url);
	buf_puts(&req.body, body);
	http_request_add_header(&req, "%s", sign[0]);
	for (size_t i = 0; i < out.n; i++)
		http_request_add_header(&req, "%s", out.lines[i]);
	sigv4_out_clear(&out);

	uv_loop_t loop;
	uv_loop_init(&loop);
	struct http_pool_options popt = {.max_connections = 1,
	                                 .max_body_bytes = 1 << 20,
	                                 .tls = strncmp(url, "https://", 8) == 0};
	struct http_pool *pool = http_pool_new(&loop, &popt, err, sizeof err);
	if (!pool) {
		fprintf(stderr, "sigv4_send: %s\n", err);
		exit(1);
	}
	long status = 0;
	http_pool_start(pool, &req, 10000, on_done, &status);
	while (status == 0 && uv_run(&loop, UV_RUN_ONCE))
		;
	http_pool_free(pool);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return status;
}

int main(int argc, char **argv)
{
	const char *base = opt(argc, argv, "--base", NULL);
	const char *model_id = opt(argc, argv, "--model-id", NULL);
	const char *query = opt(argc, argv, "--query", "");
	const char *region = opt(argc, argv, "--region", "us-east-1");
	const char *body = opt(argc, argv, "--body",
	                       "{\"messages\":[{\"role\":\"user\","
	                       "\"content\":[{\"text\":\"Hello\"}]}]}");
	bool curl_signer = flag(argc, argv, "--curl-sigv4");

	struct buf url = {0};
	buf_puts(&url, base);
	buf_puts(&url, "/model/");
	if (curl_signer && flag(argc, argv, "--unencoded-id"))
		buf_puts(&url, model_id);
	else
		sigv4_buf_path_segment(&url, model_id);
	buf_puts(&url, "/converse");
	if (*query)
		buf_printf(&url, "?%s", query);

	if (http_global_init() != 0) {
		fprintf(stderr, "sigv4_send: curl_global_init failed\n");
		return 1;
	}
	long status = curl_signer ? send_curl_sigv4(url.data, region, body)
	                          : send_signed(url.data, region, body);
	http_global_cleanup();

	struct buf line = {0};
	buf_printf(&line, "{\"status\":%ld,\"url\":", status);
	buf_json_str(&line, url.data, url.len);
	buf_puts(&line, "}\n");
	fputs(line.data, stdout);
	buf_free(&line);
	buf_free(&url);
	return status >= 200 && status <= 299 ? 0 : 1;
}
