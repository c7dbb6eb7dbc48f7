/* test_providers: the wire formats, from data files, and their shared helpers.
 *
 *   test_providers [DIR]     DIR, else $PROMPTYARD_TESTDATA, else tests/providers
 *
 * Every directory DIR/<type>/<case>/ is one case, run against the provider
 * table of <type> and reported as "PASS <type>/<case>". Its files:
 *
 *   job.json       the job, as a Kafka message value carries it (SPEC §2)
 *   model.json     optional: {"id", "name", "max_completion_tokens",
 *                  "structured_outputs",
 *                  "input_usd_per_mtok", "cached_input_usd_per_mtok",
 *                  "cache_write_usd_per_mtok", "output_usd_per_mtok",
 *                  "default_max_tokens", "capabilities" [names],
 *                  "thinking_budget_low" / "_medium" / "_high"} over the
 *                  type's default test model
 *   provider.json  optional: {"base_url", "api_key" (null: no key; absent:
 *                  the type's default, a key but for bedrock, which signs
 *                  with AWS credentials; anything else: the test key),
 *                  "auth_header", "headers" ["Name: value"], "query" "a=b&c=d",
 *                  and for bedrock "region" (default us-east-1),
 *                  "aws_session_token" (true: the test session token),
 *                  "aws_credentials" (false: none)}
 *   fetched.json   optional: the bytes the worker fetched for URL parts, as
 *                  {"<message index>:<part index>": {"data": base64,
 *                  "content_type": str}}, given to job_part_set_fetched()
 *   request.json   the request expected: {"method", "path" (the URL minus
 *                  http://provider.test), "headers" {name: value} that must be
 *                  there ("<KEY>" stands for the test key, "<SESSION_TOKEN>"
 *                  for the AWS test session token), "headers_absent"
 *                  [names], "body" (compared as JSON), "body_sha256" (the
 *                  hex SHA-256 of the body bytes, which a SigV4 signature
 *                  covers: tests/integration/test_bedrock.py checks the
 *                  expected Authorization headers with botocore from it)};
 *                  or {"build_error": true} when the job cannot be expressed
 *                  in the format
 *   response.http  the response given: a status line, headers, a blank line
 *                  and the body; or response.json (the body) and status
 *                  (the status as a decimal number)
 *   expected.json  the normalized result: {"class" (ok, retryable,
 *                  context_overflow, auth, rejected, invalid), "content",
 *                  "finish_reason", "usage" {input_tokens, cached_input_tokens,
 *                  cache_write_tokens, output_tokens, reasoning_tokens},
 *                  "billed", "cost_nusd" (with the model's prices),
 *                  "error_contains", "refusal" (str or null), "tool_calls"
 *                  [{"id", "name", "arguments"}] (arguments compared as JSON;
 *                  [] for none), "throttled" (a throttle whatever the
 *                  status: the provider is parked as for a 429),
 *                  "usage_impossible" (usage reported but unreadable as
 *                  counts: the worker charges the estimate)}; a key left
 *                  out is not checked, apart from billed, cost_nusd,
 *                  throttled and usage_impossible (absent: false).
 *
 * A directory named batch_<kind>_<what> is a batch case instead (the batch
 * part of the type's table, provider_batch.h): batch_submit, batch_status,
 * batch_list, batch_results or batch_requests, with the files
 * tests/providers/README.md lists.
 *
 * Bedrock requests are signed at a fixed time (TEST_TIME_S), so that
 * request.json can hold the exact Authorization header.
 *
 * Every case also checks what holds for any response: the key appears in no
 * URL, no body and no error message, nor does the AWS secret key anywhere
 * or the session token outside X-Amz-Security-Token; a non-ok class
 * carries an error message and an ok one a content; every strict prefix of a 2xx body (a truncated
 * response) is RESPONSE_INVALID, and no prefix of any body crashes or leaks. */
#include "provider.h"
#include "provider_batch.h"
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TEST_KEY  "sk-test-123"
#define TEST_HOST "http://provider.test"
/* AWS credentials of the bedrock cases: AWS's documentation examples. */
#define TEST_AWS_KEY_ID "AKIDEXAMPLE"
#define TEST_AWS_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TEST_AWS_TOKEN                                                                             \
	"IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6+example/token+AAAA="
/* 2024-06-20T12:00:00Z: the time bedrock signatures are made at. */
#define TEST_TIME_S 1718884800

static int64_t test_now_s(void)
{
	return TEST_TIME_S;
}

/* ---------------------------------------------------------------- files */

/* Reads dir/name into a new NUL-terminated buffer; NULL if it does not exist. */
static char *read_file(const char *dir, const char *name, size_t *len)
{
	struct buf path = {0}, b = {0};
	char chunk[4096];
	size_t n;
	FILE *f;

	buf_printf(&path, "%s/%s", dir, name);
	f = fopen(path.data, "rb");
	buf_free(&path);
	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	if (len)
		*len = b.len;
	return buf_take(&b);
}

/* Loads dir/name as JSON (new reference); NULL if absent. A file that is
 * there but does not parse fails the case. */
static json_t *load_json(const char *dir, const char *name)
{
	size_t len = 0;
	char *text = read_file(dir, name, &len);
	json_error_t jerr;
	json_t *j;

	if (!text)
		return NULL;
	j = json_loadb(text, len, 0, &jerr);
	if (!j)
		UNIT_FAIL("%s: line %d: %s", name, jerr.line, jerr.text);
	free(text);
	return j;
}

/* The sorted subdirectories of dir (new array of new strings). */
static size_t list_dirs(const char *dir, char ***out)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, alphasort);
	size_t k = 0;

	*out = NULL;
	if (n < 0)
		return 0;
	*out = xcalloc((size_t)n, sizeof **out);
	for (int i = 0; i < n; i++) {
		if (ents[i]->d_name[0] != '.' &&
		    (ents[i]->d_type == DT_DIR || ents[i]->d_type == DT_UNKNOWN))
			(*out)[k++] = xstrdup(ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	return k;
}

/* ---------------------------------------------------------------- the case */

static const char *class_name(enum response_class c)
{
	switch (c) {
	case RESPONSE_OK: return "ok";
	case RESPONSE_RETRYABLE: return "retryable";
	case RESPONSE_CONTEXT_OVERFLOW: return "context_overflow";
	case RESPONSE_AUTH: return "auth";
	case RESPONSE_REJECTED: return "rejected";
	case RESPONSE_INVALID: return "invalid";
	}
	return "?";
}

/* The default model and base URL of a type's cases. Prices in USD/Mtok; a
 * negative cache write price means "priced as input". */
struct test_model {
	const char *type, *base_path, *id;
	double input, cached, cache_write, output;
};
static const struct test_model test_models[] = {
        {"openai", "/v1", "gpt-4o-mini", 0.15, 0.075, -1, 0.60},
        {"anthropic", "/v1", "claude-sonnet-4-20250514", 3.00, 0.30, 3.75, 15.00},
        {"gemini", "/v1beta", "gemini-2.0-flash", 0.10, 0.025, -1, 0.40},
        {"bedrock", "", "anthropic.claude-3-5-sonnet-20240620-v1:0", 3.00, 0.30, 3.75, 15.00},
};

/* Reads a price member (USD/Mtok) of model.json into nano-USD. */
static int64_t price_of(const json_t *mj, const char *key, double def)
{
	json_t *v = json_object_get(mj, key);
	double usd = json_is_number(v) ? json_number_value(v) : def;
	return usd < 0 ? -1 : money_usd_to_nusd(usd);
}

/* Everything one case owns, freed by case_free(). */
struct tcase {
	const char *dir, *type;
	char *base_url, *api_key, *model_id, *model_name;
	struct provider_conf pc;
	struct model_conf mc;
	struct budget_conf budget;
	struct config cfg;
	struct job job;
	struct http_request req;
	struct completion c;
	json_t *model_j, *provider_j, *request_j, *expected_j, *fetched_j;
	char *headers[8];
	char *job_text, *response_text;
};

static void case_free(struct tcase *t)
{
	job_clear(&t->job);
	http_request_clear(&t->req);
	completion_clear(&t->c);
	json_decref(t->model_j);
	json_decref(t->provider_j);
	json_decref(t->request_j);
	json_decref(t->expected_j);
	json_decref(t->fetched_j);
	for (size_t i = 0; i < t->pc.n_headers; i++)
		free(t->headers[i]);
	free(t->job_text);
	free(t->response_text);
	free(t->base_url);
	free(t->api_key);
	free(t->model_id);
	free(t->model_name);
}

/* Builds the hand-made config: one provider of the case's type, one model. */
static int case_config(struct tcase *t)
{
	const struct test_model *tm = NULL;
	for (size_t i = 0; i < sizeof test_models / sizeof test_models[0]; i++)
		if (strcmp(test_models[i].type, t->type) == 0)
			tm = &test_models[i];
	if (!tm || !provider_lookup(t->type)) {
		UNIT_FAIL("no provider type \"%s\"", t->type);
		return -1;
	}
	const json_t *mj = t->model_j, *pj = t->provider_j;
	json_t *v;

	v = json_object_get(pj, "base_url");
	if (json_is_string(v)) {
		t->base_url = xstrdup(json_string_value(v));
	} else {
		struct buf b = {0};
		buf_printf(&b, "%s%s", TEST_HOST, tm->base_path);
		t->base_url = buf_take(&b);
	}
	bool bedrock = strcmp(t->type, "bedrock") == 0;
	v = json_object_get(pj, "api_key");
	t->api_key = (v ? !json_is_null(v) : !bedrock) ? xstrdup(TEST_KEY) : NULL;

	v = json_object_get(mj, "id");
	t->model_id = xstrdup(json_is_string(v) ? json_string_value(v) : tm->id);
	v = json_object_get(mj, "name");
	t->model_name = xstrdup(json_is_string(v) ? json_string_value(v) : t->model_id);

	t->pc.name = (char *)t->type;
	t->pc.type = (char *)t->type;
	t->pc.ops = provider_lookup(t->type);
	t->pc.base_url = t->base_url;
	t->pc.api_key_env = (char *)(t->api_key || !bedrock ? "PROMPTYARD_TEST_KEY" : "");
	t->pc.api_key = t->api_key;
	t->pc.timeout_ms = 120000;
	t->pc.max_connections = 64;
	v = json_object_get(pj, "auth_header");
	t->pc.auth_header = json_is_string(v) ? (char *)json_string_value(v) : NULL;
	v = json_object_get(pj, "query");
	t->pc.query = json_is_string(v) ? (char *)json_string_value(v) : NULL;
	json_t *hv;
	size_t hi;
	json_array_foreach (json_object_get(pj, "headers"), hi, hv)
		if (json_is_string(hv) && t->pc.n_headers < 8)
			t->headers[t->pc.n_headers++] = xstrdup(json_string_value(hv));
	t->pc.headers = t->headers;
	if (bedrock) {
		v = json_object_get(pj, "region");
		t->pc.region = (char *)(json_is_string(v) ? json_string_value(v) : "us-east-1");
		if (!json_is_false(json_object_get(pj, "aws_credentials"))) {
			t->pc.aws_access_key_id = (char *)TEST_AWS_KEY_ID;
			t->pc.aws_secret_access_key = (char *)TEST_AWS_SECRET;
		}
		if (json_is_true(json_object_get(pj, "aws_session_token")))
			t->pc.aws_session_token = (char *)TEST_AWS_TOKEN;
	}

	t->mc.name = t->model_name;
	t->mc.provider = 0;
	t->mc.id = t->model_id;
	t->mc.price.input_nusd_per_mtok = price_of(mj, "input_usd_per_mtok", tm->input);
	t->mc.price.cached_input_nusd_per_mtok =
	        price_of(mj, "cached_input_usd_per_mtok", tm->cached);
	t->mc.price.cache_write_nusd_per_mtok =
	        price_of(mj, "cache_write_usd_per_mtok", tm->cache_write);
	t->mc.price.output_nusd_per_mtok = price_of(mj, "output_usd_per_mtok", tm->output);
	/* Batch prices: half the sync ones unless model.json says (SPEC §14). */
	t->mc.batch_price.input_nusd_per_mtok =
	        price_of(mj, "batch_input_usd_per_mtok", tm->input / 2);
	t->mc.batch_price.cached_input_nusd_per_mtok =
	        price_of(mj, "batch_cached_input_usd_per_mtok", tm->cached / 2);
	t->mc.batch_price.cache_write_nusd_per_mtok =
	        tm->cache_write < 0 ? -1 : money_usd_to_nusd(tm->cache_write / 2);
	t->mc.batch_price.output_nusd_per_mtok =
	        price_of(mj, "batch_output_usd_per_mtok", tm->output / 2);
	t->mc.has_batch_price = true;
	t->mc.context_tokens = 128000;
	v = json_object_get(mj, "default_max_tokens");
	t->mc.default_max_tokens = json_is_integer(v) ? json_integer_value(v) : 1024;
	t->mc.quality = 0.5;
	t->mc.latency_ms = 1000;
	t->mc.caps = CAP_JSON | CAP_JSON_SCHEMA | CAP_TOOLS | CAP_VISION | CAP_PDF | CAP_REASONING |
	             CAP_LONG_CONTEXT;
	v = json_object_get(mj, "capabilities");
	if (json_is_array(v)) {
		json_t *cv;
		size_t ci;
		t->mc.caps = 0;
		json_array_foreach (v, ci, cv) {
			unsigned bit = 0;
			if (!json_is_string(cv) ||
			    capability_parse(json_string_value(cv), &bit) != 0)
				UNIT_FAIL("model.json: capabilities[%zu] is no capability", ci);
			t->mc.caps |= bit;
		}
	}
	static const char *const budgets[] = {"thinking_budget_low", "thinking_budget_medium",
	                                      "thinking_budget_high"};
	static const int64_t budget_defaults[] = {1024, 8192, 24576};
	for (int k = 0; k < 3; k++) {
		v = json_object_get(mj, budgets[k]);
		t->mc.thinking_budget[k] =
		        json_is_integer(v) ? json_integer_value(v) : budget_defaults[k];
	}
	t->mc.image_tokens = 1600;
	t->mc.pdf_page_tokens = 3000;
	t->mc.max_completion_tokens = json_is_true(json_object_get(mj, "max_completion_tokens"));
	t->mc.structured_outputs = json_is_true(json_object_get(mj, "structured_outputs"));

	t->budget.name = (char *)"default";
	t->budget.limit_nusd = 100 * NUSD_PER_USD;
	t->budget.parent = -1;

	t->cfg.providers = &t->pc;
	t->cfg.n_providers = 1;
	t->cfg.models = &t->mc;
	t->cfg.n_models = 1;
	t->cfg.budgets = &t->budget;
	t->cfg.n_budgets = 1;
	t->cfg.worker.default_strategy = STRATEGY_BALANCED;
	t->cfg.worker.default_budget = (char *)"default";
	t->cfg.worker.max_attempts = 4;
	return 0;
}

/* The value of header name (case-insensitive) in req, or NULL. */
static const char *header_value(const struct http_request *req, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < req->n_headers; i++) {
		const char *h = req->headers[i];
		if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
			h += n + 1;
			while (*h == ' ')
				h++;
			return h;
		}
	}
	return NULL;
}

/* value with every "<KEY>" replaced by the test key and every
 * "<SESSION_TOKEN>" by the AWS test session token (new). */
static char *with_key(const char *value)
{
	static const struct {
		const char *mark, *value;
	} marks[] = {{"<KEY>", TEST_KEY}, {"<SESSION_TOKEN>", TEST_AWS_TOKEN}};
	struct buf b = {0};
	while (*value) {
		size_t i = 0;
		while (i < 2 && strncmp(value, marks[i].mark, strlen(marks[i].mark)) != 0)
			i++;
		if (i < 2) {
			buf_puts(&b, marks[i].value);
			value += strlen(marks[i].mark);
		} else {
			buf_append(&b, value++, 1);
		}
	}
	return b.data ? buf_take(&b) : xstrdup("");
}

/* The hex SHA-256 of len bytes of data, in out (65 bytes). */
static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	out[0] = '\0';
	if (EVP_Digest(data ? data : "", len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return;
	for (unsigned int i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* json_equal(), but an integer and a real of one value are equal: the JSON
 * the APIs read makes no difference between 1 and 1.0. */
static bool json_same(const json_t *a, const json_t *b)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_typeof(a) != json_typeof(b))
		return false;
	if (json_is_object(a)) {
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_foreach ((json_t *)a, key, v)
			if (!json_object_get(b, key) || !json_same(v, json_object_get(b, key)))
				return false;
		return true;
	}
	if (json_is_array(a)) {
		if (json_array_size(a) != json_array_size(b))
			return false;
		json_array_foreach (a, i, v)
			if (!json_same(v, json_array_get(b, i)))
				return false;
		return true;
	}
	return json_equal(a, b);
}

/* Checks a request against rj, request.json's shape: method (default
 * POST), path, headers, headers_absent and body (compared as JSON; a
 * request with no "body" and no "multipart" must be JSON unless it is
 * empty). Whatever rj says, the key goes in one header and nowhere else. */
static void check_http(const json_t *rj, const struct http_request *req)
{
	const char *method = json_string_value(json_object_get(rj, "method"));
	const char *path = json_string_value(json_object_get(rj, "path"));
	const char *url = req->url.data ? req->url.data : "";
	const char *name;
	json_t *v, *body;
	json_error_t jerr;
	size_t i;

	CHECK_STR(req->method == HTTP_GET ? "GET" : "POST", method ? method : "POST");
	if (strncmp(url, TEST_HOST, strlen(TEST_HOST)) != 0)
		UNIT_FAIL("url %s is not on %s", url, TEST_HOST);
	else if (path)
		CHECK_STR(url + strlen(TEST_HOST), path);

	json_object_foreach ((json_t *)json_object_get(rj, "headers"), name, v) {
		char *want = with_key(json_string_value(v) ? json_string_value(v) : "");
		const char *got = header_value(req, name);
		if (!got)
			UNIT_FAIL("header %s is missing", name);
		else if (strcmp(got, want) != 0)
			UNIT_FAIL("header %s: \"%s\", expected \"%s\"", name, got, want);
		free(want);
	}
	json_array_foreach (json_object_get(rj, "headers_absent"), i, v) {
		if (json_is_string(v) && header_value(req, json_string_value(v)))
			UNIT_FAIL("header %s should not be sent", json_string_value(v));
	}
	/* The key goes in one header and nowhere else; so does the session
	 * token (X-Amz-Security-Token); the AWS secret goes nowhere. */
	size_t with = 0, with_token = 0;
	for (i = 0; i < req->n_headers; i++) {
		with += strstr(req->headers[i], TEST_KEY) != NULL;
		with_token += strstr(req->headers[i], TEST_AWS_TOKEN) != NULL;
		CHECK(!strstr(req->headers[i], TEST_AWS_SECRET));
	}
	CHECK(with <= 1);
	CHECK(with_token <= 1);
	if (with_token)
		CHECK_STR(header_value(req, "X-Amz-Security-Token"), TEST_AWS_TOKEN);
	const char *const secrets[] = {TEST_KEY, TEST_AWS_SECRET, TEST_AWS_TOKEN};
	for (i = 0; i < 3; i++) {
		CHECK(!strstr(url, secrets[i]));
		CHECK(!req->body.data ||
		      !memmem(req->body.data, req->body.len, secrets[i], strlen(secrets[i])));
	}
	if (req->method == HTTP_GET && req->body.len)
		UNIT_FAIL("a GET with a body");
	v = json_object_get(rj, "body_sha256");
	if (json_is_string(v)) {
		char hex[65];
		sha256_hex(req->body.data, req->body.len, hex);
		if (strcmp(hex, json_string_value(v)) != 0)
			UNIT_FAIL("body_sha256: %s, expected %s", hex, json_string_value(v));
	}

	if (json_object_get(rj, "multipart") ||
	    (req->body.len == 0 && !json_object_get(rj, "body")))
		return;
	body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &jerr);
	if (!body) {
		UNIT_FAIL("request body is not JSON: %s: %s", jerr.text,
		          req->body.data ? req->body.data : "");
		return;
	}
	v = json_object_get(rj, "body");
	if (v && !json_same(body, v)) {
		char *got = json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT);
		char *want = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT);
		UNIT_FAIL("request body\n       got:      %s\n       expected: %s", got, want);
		free(got);
		free(want);
	}
	json_decref(body);
}

static void check_request(struct tcase *t)
{
	const char *method = json_string_value(json_object_get(t->request_j, "method"));
	if (method && strcmp(method, "POST") != 0)
		UNIT_FAIL("request.json: method %s: every wire format POSTs", method);
	check_http(t->request_j, &t->req);
}

/* Reads the response: response.http, else response.json and status. Sets
 * *body (borrowed from t) and returns the status, or -1. */
static long load_response(struct tcase *t, const char **body, size_t *len)
{
	size_t n = 0;
	char *text = read_file(t->dir, "response.http", &n);
	if (text) {
		long status = 0;
		char *sep;
		t->response_text = text;
		if (sscanf(text, "HTTP/%*s %ld", &status) != 1) {
			UNIT_FAIL("response.http: no status line");
			return -1;
		}
		sep = strstr(text, "\r\n\r\n");
		if (sep) {
			*body = sep + 4;
		} else {
			sep = strstr(text, "\n\n");
			*body = sep ? sep + 2 : text + n;
		}
		*len = n - (size_t)(*body - text);
		return status;
	}
	text = read_file(t->dir, "status", NULL);
	if (!text) {
		UNIT_FAIL("neither response.http nor status");
		return -1;
	}
	long status = strtol(text, NULL, 10);
	free(text);
	t->response_text = read_file(t->dir, "response.json", len);
	if (!t->response_text) {
		UNIT_FAIL("status without response.json");
		return -1;
	}
	*body = t->response_text;
	return status;
}

/* What holds for every parse: no key in the error, and the class matches what
 * is filled in. */
static void check_invariants(const struct completion *c, enum response_class cls, const char *what)
{
	if (c->error_message &&
	    (strstr(c->error_message, TEST_KEY) || strstr(c->error_message, TEST_AWS_SECRET) ||
	     strstr(c->error_message, TEST_AWS_TOKEN)))
		UNIT_FAIL("%s: the error message holds a secret", what);
	if (cls != RESPONSE_OK && !c->error_message)
		UNIT_FAIL("%s: class %s without an error message", what, class_name(cls));
	if (cls == RESPONSE_OK && !c->content)
		UNIT_FAIL("%s: class ok without content", what);
	if (cls == RESPONSE_OK && c->error_message)
		UNIT_FAIL("%s: class ok with an error message", what);
	if (c->content) {
		json_t *s = json_stringn(c->content, strlen(c->content));
		if (!s)
			UNIT_FAIL("%s: content is not valid UTF-8", what);
		json_decref(s);
	}
}

static void check_usage_member(const json_t *u, const char *key, int64_t got)
{
	json_t *v = json_object_get(u, key);
	if (!v)
		return;
	if (!json_is_integer(v))
		UNIT_FAIL("expected.json: usage.%s is not an integer", key);
	else if (json_integer_value(v) != got)
		UNIT_FAIL("usage.%s == %" PRId64 ", expected %" PRId64, key, got,
		          (int64_t)json_integer_value(v));
}

/* Checks a parsed answer c of class cls against ej, expected.json's shape;
 * its cost is priced at price. */
static void check_completion(const json_t *ej, const struct completion *c, enum response_class cls,
                             const struct price *price)
{
	const char *want_class = json_string_value(json_object_get(ej, "class"));
	json_t *v;

	if (!want_class)
		UNIT_FAIL("expected.json has no class");
	else
		CHECK_STR(class_name(cls), want_class);
	v = json_object_get(ej, "content");
	if (json_is_string(v)) {
		if (!c->content || strcmp(c->content, json_string_value(v)) != 0)
			UNIT_FAIL("content \"%s\", expected \"%s\"",
			          c->content ? c->content : "(null)", json_string_value(v));
	} else if (v && json_is_null(v) && c->content) {
		UNIT_FAIL("content \"%s\", expected none", c->content);
	}
	v = json_object_get(ej, "finish_reason");
	if (json_is_string(v))
		CHECK_STR(finish_reason_name(c->finish_reason), json_string_value(v));
	v = json_object_get(ej, "usage");
	if (json_is_object(v)) {
		check_usage_member(v, "input_tokens", c->usage.input_tokens);
		check_usage_member(v, "cached_input_tokens", c->usage.cached_input_tokens);
		check_usage_member(v, "cache_write_tokens", c->usage.cache_write_tokens);
		check_usage_member(v, "output_tokens", c->usage.output_tokens);
		check_usage_member(v, "reasoning_tokens", c->usage.reasoning_tokens);
	}
	v = json_object_get(ej, "refusal");
	if (json_is_string(v)) {
		if (!c->refusal || strcmp(c->refusal, json_string_value(v)) != 0)
			UNIT_FAIL("refusal \"%s\", expected \"%s\"",
			          c->refusal ? c->refusal : "(null)", json_string_value(v));
	} else if (v && json_is_null(v) && c->refusal) {
		UNIT_FAIL("refusal \"%s\", expected none", c->refusal);
	}
	v = json_object_get(ej, "tool_calls");
	if (json_is_array(v)) {
		CHECK_INT(c->n_tool_calls, json_array_size(v));
		for (size_t i = 0; i < c->n_tool_calls && i < json_array_size(v); i++) {
			const json_t *w = json_array_get(v, i);
			const struct completion_tool_call *tc = &c->tool_calls[i];
			const char *id = json_string_value(json_object_get(w, "id"));
			if (id)
				CHECK_STR(tc->id, id);
			CHECK_STR(tc->name, json_string_value(json_object_get(w, "name")));
			json_t *got = json_loads(tc->arguments, 0, NULL);
			json_t *want = json_object_get(w, "arguments");
			json_t *want_j = json_is_string(want)
			                         ? json_loads(json_string_value(want), 0, NULL)
			                         : json_incref(want);
			if (!got || !want_j || !json_same(got, want_j))
				UNIT_FAIL("tool_calls[%zu].arguments %s, expected %s", i,
				          tc->arguments,
				          json_is_string(want) ? json_string_value(want)
				                               : "(object)");
			json_decref(got);
			json_decref(want_j);
		}
	}
	CHECK_INT(c->has_usage, json_is_true(json_object_get(ej, "billed")));
	CHECK_INT(c->throttled, json_is_true(json_object_get(ej, "throttled")));
	CHECK_INT(c->usage_impossible, json_is_true(json_object_get(ej, "usage_impossible")));
	int64_t cost = c->has_usage ? money_cost_nusd(price, &c->usage) : 0;
	v = json_object_get(ej, "cost_nusd");
	CHECK_INT(cost, json_is_integer(v) ? json_integer_value(v) : 0);
	v = json_object_get(ej, "error_contains");
	if (json_is_string(v))
		CHECK_HAS(c->error_message, json_string_value(v));
}

static void check_expected(struct tcase *t, enum response_class cls)
{
	check_completion(t->expected_j, &t->c, cls, &t->mc.price);
}

/* Every strict prefix of the body: RESPONSE_INVALID when the status is 2xx
 * (a truncated JSON object never parses), never a crash or a leak. Each
 * prefix is its own allocation, so ASan sees any read past its end. */
static void check_truncations(struct tcase *t, long status, const char *body, size_t len)
{
	size_t end = len;
	while (end > 0 && strchr(" \t\r\n", body[end - 1]))
		end--;
	size_t step = end > 4096 ? end / 2048 : 1;
	for (size_t n = 0; n < end; n += step) {
		char *copy = xmalloc(n ? n : 1);
		struct completion c = {0};
		memcpy(copy, body, n);
		enum response_class cls = t->pc.ops->parse_response(&t->mc, status, copy, n, &c);
		if (status >= 200 && status < 300 && cls != RESPONSE_INVALID) {
			UNIT_FAIL("the body cut to %zu bytes is %s, expected invalid", n,
			          class_name(cls));
			n = end; /* one report is enough */
		}
		if (cls == RESPONSE_OK && status >= 300)
			UNIT_FAIL("the body cut to %zu bytes is ok with status %ld", n, status);
		check_invariants(&c, cls, "truncated body");
		completion_clear(&c);
		free(copy);
	}
}

/* Gives the URL parts the bytes fetched.json holds, as the engine would. */
static int give_fetched(struct tcase *t)
{
	const char *key;
	json_t *v;
	json_object_foreach (t->fetched_j, key, v) {
		size_t mi = 0, pi = 0;
		const char *b64 = json_string_value(json_object_get(v, "data"));
		const char *ct = json_string_value(json_object_get(v, "content_type"));
		if (sscanf(key, "%zu:%zu", &mi, &pi) != 2 || mi >= t->job.n_messages ||
		    pi >= t->job.messages[mi].n_parts || !b64) {
			UNIT_FAIL("fetched.json: %s names no part, or has no data", key);
			return -1;
		}
		unsigned char *bytes = xmalloc(strlen(b64) / 4 * 3 + 1);
		int64_t n = job_base64_decode(b64, strlen(b64), bytes);
		char err[256];
		int rc = n < 0 ? -1
		               : job_part_set_fetched(&t->job, &t->job.messages[mi].parts[pi],
		                                      bytes, (size_t)n, ct, err, sizeof err);
		free(bytes);
		if (rc != 0) {
			UNIT_FAIL("fetched.json: %s: %s", key, n < 0 ? "bad base64" : err);
			return -1;
		}
	}
	return 0;
}

static void run_case(const char *dir, const char *type)
{
	struct tcase t = {.dir = dir, .type = type};
	char err[512];
	size_t job_len = 0, body_len = 0;
	const char *body = NULL;

	t.job.model = t.job.budget = -1;
	t.job_text = read_file(dir, "job.json", &job_len);
	t.model_j = load_json(dir, "model.json");
	t.provider_j = load_json(dir, "provider.json");
	t.request_j = load_json(dir, "request.json");
	t.expected_j = load_json(dir, "expected.json");
	t.fetched_j = load_json(dir, "fetched.json");
	if (!t.job_text || !t.request_j) {
		UNIT_FAIL("job.json and request.json are required");
		goto out;
	}
	if (case_config(&t) != 0)
		goto out;
	if (job_decode(&t.cfg, t.job_text, job_len, &t.job, err, sizeof err) != 0) {
		UNIT_FAIL("job.json: %s", err);
		goto out;
	}
	if (give_fetched(&t) != 0)
		goto out;
	err[0] = '\0';
	int rc = t.pc.ops->build_request(&t.pc, &t.mc, &t.job, t.job.max_tokens, &t.req, err,
	                                 sizeof err);
	if (json_is_true(json_object_get(t.request_j, "build_error"))) {
		if (rc == 0)
			UNIT_FAIL("build_request succeeded, expected a failure");
		else if (err[0] == '\0')
			UNIT_FAIL("build_request failed without a reason");
		goto out;
	}
	if (rc != 0) {
		UNIT_FAIL("build_request: %s", err);
		goto out;
	}
	check_request(&t);

	if (!t.expected_j) {
		UNIT_FAIL("expected.json is required");
		goto out;
	}
	long status = load_response(&t, &body, &body_len);
	if (status < 0)
		goto out;
	enum response_class cls = t.pc.ops->parse_response(&t.mc, status, body, body_len, &t.c);
	check_invariants(&t.c, cls, "response");
	check_expected(&t, cls);
	check_truncations(&t, status, body, body_len);
out:
	case_free(&t);
}

/* ---------------------------------------------------------------- batch cases
 *
 * A case directory named batch_<kind>_<what> checks the batch part of the
 * type's table (provider_batch.h); see tests/providers/README.md for the
 * files of each kind. */

#define TEST_TOKEN "abc123def456"

static const char *outcome_of(enum provider_batch_outcome o)
{
	return provider_batch_outcome_name(o);
}

/* Where a format's submission keeps each request's custom_id and body. */
static const json_t *item_custom_id(const char *type, const json_t *item)
{
	if (strcmp(type, "gemini") == 0)
		return json_object_get(json_object_get(item, "metadata"), "key");
	return json_object_get(item, "custom_id");
}
static const json_t *item_body(const char *type, const json_t *item)
{
	if (strcmp(type, "openai") == 0)
		return json_object_get(item, "body");
	return json_object_get(item, strcmp(type, "anthropic") == 0 ? "params" : "request");
}

/* The value of parameter name (name="...") in a header value, new. */
static char *header_param(const char *value, const char *name)
{
	struct buf key = {0};
	buf_printf(&key, "%s=\"", name);
	const char *p = value ? strstr(value, key.data) : NULL;
	char *out = NULL;
	if (p) {
		p += key.len;
		out = xstrndup(p, strcspn(p, "\""));
	}
	buf_free(&key);
	return out;
}

/* Reads a multipart/form-data body: checks its parts against want
 * ({"purpose", "filename", "content_type"}) and returns the file's JSONL
 * lines as a new array of JSON values, NULL when it is malformed. */
static json_t *read_multipart(const struct http_request *req, const json_t *want)
{
	const char *ct = header_value(req, "Content-Type");
	const char *bp = ct ? strstr(ct, "boundary=") : NULL;
	struct buf delim = {0}, end = {0};
	json_t *items = NULL;
	char *body = xstrndup(req->body.data ? req->body.data : "", req->body.len);

	if (!ct || strncmp(ct, "multipart/form-data;", 20) != 0 || !bp) {
		UNIT_FAIL("Content-Type %s is not multipart/form-data with a boundary",
		          ct ? ct : "(none)");
		goto out;
	}
	bp += 9;
	buf_printf(&delim, "--%s\r\n", bp);
	buf_printf(&end, "\r\n--%s--\r\n", bp);
	size_t blen = strlen(body);
	if (strncmp(body, delim.data, delim.len) != 0 || blen < end.len ||
	    strcmp(body + blen - end.len, end.data) != 0) {
		UNIT_FAIL("the multipart body does not open and close with its boundary");
		goto out;
	}
	body[blen - end.len] = '\0';
	bool seen_purpose = false;
	for (char *part = body + delim.len; part;) {
		struct buf sep = {0};
		buf_printf(&sep, "\r\n--%s\r\n", bp);
		char *next = strstr(part, sep.data);
		if (next) {
			*next = '\0';
			next += sep.len;
		}
		buf_free(&sep);
		char *content = strstr(part, "\r\n\r\n");
		if (!content) {
			UNIT_FAIL("a part without headers");
			goto out;
		}
		*content = '\0';
		content += 4;
		const char *disp = strcasestr(part, "Content-Disposition: form-data;");
		char *name = header_param(disp, "name");
		char *filename = header_param(disp, "filename");
		if (name && strcmp(name, "purpose") == 0) {
			CHECK_STR(content, json_string_value(json_object_get(want, "purpose")));
			seen_purpose = true;
		} else if (name && strcmp(name, "file") == 0) {
			const char *want_ct =
			        json_string_value(json_object_get(want, "content_type"));
			const char *got_ct = strcasestr(part, "Content-Type: ");
			CHECK_STR(filename, json_string_value(json_object_get(want, "filename")));
			if (want_ct && (!got_ct || strncmp(got_ct + 14, want_ct, strlen(want_ct))))
				UNIT_FAIL("the file part's Content-Type is not %s", want_ct);
			items = json_array();
			for (char *line = content; *line;) {
				char *nl = strchr(line, '\n');
				json_error_t jerr;
				if (!nl) {
					UNIT_FAIL("the file's last line has no newline");
					break;
				}
				json_t *j = json_loadb(line, (size_t)(nl - line), 0, &jerr);
				if (!j)
					UNIT_FAIL("a JSONL line is not JSON: %s", jerr.text);
				else
					json_array_append_new(items, j);
				line = nl + 1;
			}
		} else {
			UNIT_FAIL("an unexpected part %s", name ? name : "(no name)");
		}
		free(name);
		free(filename);
		part = next;
	}
	if (!seen_purpose)
		UNIT_FAIL("no purpose part");
out:
	buf_free(&delim);
	buf_free(&end);
	free(body);
	return items;
}

/* The items of a submission step's request (new array), with body, when
 * it is JSON, set to the body with its items replaced by "<items>"; NULL
 * when the step carries none. */
static json_t *step_items(const char *type, const struct http_request *req, const json_t *rj,
                          json_t **body)
{
	json_t *items = NULL, *holder = NULL;
	const char *key = "requests";
	*body = NULL;
	if (json_object_get(rj, "multipart"))
		return read_multipart(req, json_object_get(rj, "multipart"));
	*body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, NULL);
	if (!*body) {
		UNIT_FAIL("the request body is not JSON");
		return NULL;
	}
	if (strcmp(type, "anthropic") == 0)
		holder = *body;
	else if (strcmp(type, "gemini") == 0)
		holder = json_object_get(
		        json_object_get(json_object_get(*body, "batch"), "inputConfig"),
		        "requests");
	items = json_object_get(holder, key);
	if (!json_is_array(items))
		return NULL;
	json_incref(items);
	json_object_set_new(holder, key, json_string("<items>"));
	return items;
}

/* One answer of a submission step: {"status", "body" (JSON) or "raw" (text),
 * "class", "id", "error_contains"}. Returns the id (new) of an OK one. */
static char *check_answer(struct tcase *t, const json_t *aj, bool want_id)
{
	long status = (long)json_integer_value(json_object_get(aj, "status"));
	const char *raw = json_string_value(json_object_get(aj, "raw"));
	char *text = raw ? xstrdup(raw)
	                 : json_dumps(json_object_get(aj, "body"), JSON_COMPACT | JSON_ENCODE_ANY);
	const char *want_id_s = json_string_value(json_object_get(aj, "id"));
	const char *contains = json_string_value(json_object_get(aj, "error_contains"));
	struct completion c = {0};
	char *id = NULL;
	enum response_class cls =
	        provider_batch_parse_answer(&t->pc, status, text ? text : "",
	                                    text ? strlen(text) : 0, want_id ? &id : NULL, &c);
	CHECK_STR(class_name(cls), json_string_value(json_object_get(aj, "class")));
	if (want_id_s)
		CHECK_STR(id, want_id_s);
	if (cls != RESPONSE_OK && !c.error_message)
		UNIT_FAIL("class %s without an error message", class_name(cls));
	if (cls != RESPONSE_OK && id)
		UNIT_FAIL("an id from a failed answer");
	if (contains)
		CHECK_HAS(c.error_message, contains);
	if (c.error_message && strstr(c.error_message, TEST_KEY))
		UNIT_FAIL("the error message holds the key");
	completion_clear(&c);
	free(text);
	if (cls != RESPONSE_OK) {
		free(id);
		return NULL;
	}
	return id;
}

/* Builds the submission of jobs.jsonl and checks each step of submit.json:
 * {"token", "items" [the requests as the format lists them], "steps" [{
 * "request" (request.json's shape; a body's items are "<items>"),
 * "answers" [...]}]}. Every item must carry its custom_id and exactly the
 * body build_request makes for its job. */
static void run_batch_submit(struct tcase *t)
{
	json_t *sj = load_json(t->dir, "submit.json");
	const char *token = json_string_value(json_object_get(sj, "token"));
	size_t jobs_len = 0;
	char *jobs = read_file(t->dir, "jobs.jsonl", &jobs_len);
	json_t *built = json_array();
	struct provider_batch_submission s;
	char *prev_id = NULL;
	char err[512];

	if (!sj || !jobs) {
		UNIT_FAIL("submit.json and jobs.jsonl are required");
		goto out;
	}
	if (!token)
		token = TEST_TOKEN;
	provider_batch_submission_init(&s, t->pc.ops, &t->mc, token);
	for (char *line = jobs; *line;) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		struct job job = {.model = -1, .budget = -1};
		struct http_request one = {0};
		if (n == 0)
			goto next;
		if (job_decode(&t->cfg, line, n, &job, err, sizeof err) != 0) {
			UNIT_FAIL("jobs.jsonl line %zu: %s", json_array_size(built) + 1, err);
		} else if (provider_batch_add(&s, &t->pc, &job, job.max_tokens, err, sizeof err) !=
		           0) {
			UNIT_FAIL("provider_batch_add: %s", err);
		} else if (t->pc.ops->build_request(&t->pc, &t->mc, &job, job.max_tokens, &one, err,
		                                    sizeof err) != 0) {
			UNIT_FAIL("build_request: %s", err);
		} else {
			json_array_append_new(built,
			                      json_loadb(one.body.data, one.body.len, 0, NULL));
		}
		http_request_clear(&one);
		job_clear(&job);
	next:
		line += n + (nl ? 1 : 0);
	}
	CHECK_INT(s.n, json_array_size(built));

	const json_t *steps = json_object_get(sj, "steps");
	const struct provider_batch *b = t->pc.ops->batch;
	CHECK_INT(json_array_size(steps), b->submit_steps);
	for (int step = 0; step < b->submit_steps; step++) {
		const json_t *stj = json_array_get(steps, (size_t)step);
		const json_t *rj = json_object_get(stj, "request");
		json_t *rj_head = json_deep_copy(rj), *body = NULL;
		struct http_request req = {0}, again = {0};
		json_object_del(rj_head, "body");
		provider_batch_submit_request(&t->pc, &s, step, prev_id, &req);
		provider_batch_submit_request(&t->pc, &s, step, prev_id, &again);
		check_http(rj_head, &req);
		CHECK(req.body.len == again.body.len &&
		      memcmp(req.body.data, again.body.data, req.body.len) == 0);
		json_t *items = step_items(t->type, &req, rj, &body);
		if (json_object_get(rj, "body") &&
		    (!body || !json_same(body, json_object_get(rj, "body")))) {
			char *got = body ? json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
			UNIT_FAIL("step %d body (items as \"<items>\"): %s", step,
			          got ? got : "(none)");
			free(got);
		}
		if (items) {
			const json_t *want = json_object_get(sj, "items");
			if (want && !json_same(items, want)) {
				char *got = json_dumps(items, JSON_COMPACT);
				UNIT_FAIL("step %d items:\n       got:      %s", step, got);
				free(got);
			}
			CHECK_INT(json_array_size(items), json_array_size(built));
			for (size_t i = 0; i < json_array_size(items); i++) {
				const json_t *it = json_array_get(items, i);
				char cid[PROVIDER_BATCH_CUSTOM_ID_MAX + 1];
				provider_batch_custom_id(token, i, cid);
				CHECK_STR(json_string_value(item_custom_id(t->type, it)), cid);
				if (!json_same(item_body(t->type, it), json_array_get(built, i)))
					UNIT_FAIL("item %zu's body is not what build_request sends",
					          i);
			}
		}
		json_decref(items);
		json_decref(body);
		json_decref(rj_head);
		http_request_clear(&req);
		http_request_clear(&again);

		const json_t *answers = json_object_get(stj, "answers");
		const json_t *aj;
		size_t ai;
		json_array_foreach (answers, ai, aj) {
			char *id = check_answer(t, aj, true);
			if (ai == 0) {
				free(prev_id);
				prev_id = id;
			} else {
				free(id);
			}
		}
	}
	provider_batch_submission_clear(&s);
out:
	free(prev_id);
	free(jobs);
	json_decref(built);
	json_decref(sj);
}

/* A results URL as expected.json writes it: the path on the test host. */
static const char *url_path(const char *url)
{
	return strncmp(url, TEST_HOST, strlen(TEST_HOST)) == 0 ? url + strlen(TEST_HOST) : url;
}

/* One result against e: {"outcome", "custom_id" (null: none), "position",
 * and expected.json's members (class, content, usage, billed, cost_nusd at
 * the batch price...)}. */
static void check_result(struct tcase *t, const json_t *e, const struct provider_batch_result *r,
                         const char *what)
{
	const json_t *cid = json_object_get(e, "custom_id");
	const json_t *pos = json_object_get(e, "position");
	int was = unit_cur_failed;
	unit_cur_failed = 0;
	CHECK_STR(outcome_of(r->outcome), json_string_value(json_object_get(e, "outcome")));
	if (json_is_string(cid))
		CHECK_STR(r->custom_id, json_string_value(cid));
	else if (cid && r->custom_id)
		UNIT_FAIL("custom_id \"%s\", expected none", r->custom_id);
	if (json_is_integer(pos))
		CHECK_INT(r->position, json_integer_value(pos));
	if (r->outcome == BATCH_LINE_BLANK)
		goto out;
	if (r->outcome != BATCH_LINE_ANSWERED && (r->c.has_usage || r->c.content))
		UNIT_FAIL("a request that did not run has usage or content");
	if (r->c.error_message && strstr(r->c.error_message, TEST_KEY))
		UNIT_FAIL("the error message holds the key");
	check_completion(e, &r->c, r->cls, &t->mc.batch_price);
out:
	if (unit_cur_failed)
		printf("     %s: (that was %s)\n", unit_cur, what);
	unit_cur_failed |= was;
}

/* Every strict prefix of a line (blanks around it left out) is blank or
 * invalid, without a crash. */
static void check_line_prefixes(struct tcase *t, const char *line, size_t len)
{
	struct provider_batch_result r = {0};
	while (len > 0 && strchr(" \t\r", line[len - 1]))
		len--;
	size_t step = len > 4096 ? len / 2048 : 1;
	for (size_t n = 0; n < len; n += step) {
		char *copy = xmalloc(n ? n : 1);
		memcpy(copy, line, n);
		enum provider_batch_outcome o =
		        provider_batch_parse_result(&t->pc, &t->mc, copy, n, &r);
		if (o != BATCH_LINE_INVALID && o != BATCH_LINE_BLANK) {
			UNIT_FAIL("the line cut to %zu bytes is %s", n, outcome_of(o));
			n = len;
		}
		free(copy);
	}
	provider_batch_result_clear(&r);
}

/* results.jsonl, line by line, against expected.json's array. */
static void run_batch_results(struct tcase *t)
{
	size_t len = 0;
	char *text = read_file(t->dir, "results.jsonl", &len);
	const json_t *want = t->expected_j;
	struct provider_batch_result r = {0};
	size_t i = 0;
	char what[32];
	if (!text || !json_is_array(want)) {
		UNIT_FAIL("results.jsonl and an expected.json array are required");
		free(text);
		return;
	}
	r.position = -1;
	for (char *line = text; line < text + len; i++) {
		char *nl = memchr(line, '\n', (size_t)(text + len - line));
		size_t n = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
		char *copy = xmalloc(n ? n : 1);
		memcpy(copy, line, n);
		provider_batch_parse_result(&t->pc, &t->mc, copy, n, &r);
		snprintf(what, sizeof what, "line %zu", i + 1);
		if (i < json_array_size(want))
			check_result(t, json_array_get(want, i), &r, what);
		check_line_prefixes(t, copy, n);
		free(copy);
		line += n + 1;
	}
	CHECK_INT(i, json_array_size(want));
	provider_batch_result_clear(&r);
	free(text);
}

/* A 2xx body cut anywhere is not OK; no cut crashes. */
static void check_status_prefixes(struct tcase *t, long status, const char *body, size_t len)
{
	struct provider_batch_status st = {0};
	struct provider_batch_list l = {0};
	size_t step = len > 4096 ? len / 2048 : 1;
	for (size_t n = 0; n + 1 < len; n += step) {
		char *copy = xmalloc(n ? n : 1);
		memcpy(copy, body, n);
		enum response_class c1 = provider_batch_parse_status(&t->pc, status, copy, n, &st);
		enum response_class c2 = provider_batch_parse_list(&t->pc, status, copy, n, &l);
		if (status >= 200 && status < 300 && (c1 == RESPONSE_OK || c2 == RESPONSE_OK)) {
			UNIT_FAIL("the body cut to %zu bytes is ok", n);
			n = len;
		}
		free(copy);
	}
	provider_batch_status_clear(&st);
	provider_batch_list_clear(&l);
}

/* A status body (response.json and status) against expected.json: {"class",
 * "id", "state", "total", "done", "failed", "token", "created_ms",
 * "results" [paths], "inline", "error_contains", "error" (null: none),
 * "answers" [the inline answers, as check_result reads them]}. */
static void run_batch_status(struct tcase *t)
{
	const char *body = NULL;
	size_t len = 0;
	long status = load_response(t, &body, &len);
	const json_t *e = t->expected_j, *v;
	struct provider_batch_status st = {0};
	if (status < 0 || !e)
		return;
	enum response_class cls = provider_batch_parse_status(&t->pc, status, body, len, &st);
	CHECK_STR(class_name(cls), json_string_value(json_object_get(e, "class")));
	if (cls != RESPONSE_OK && !st.error_message)
		UNIT_FAIL("class %s without an error message", class_name(cls));
	if (st.error_message && strstr(st.error_message, TEST_KEY))
		UNIT_FAIL("the error message holds the key");
	if ((v = json_object_get(e, "id")))
		CHECK_STR(st.id, json_string_value(v));
	if ((v = json_object_get(e, "state")))
		CHECK_STR(provider_batch_state_name(st.state), json_string_value(v));
	if ((v = json_object_get(e, "final")))
		CHECK_INT(provider_batch_state_final(st.state), json_is_true(v));
	if ((v = json_object_get(e, "total")))
		CHECK_INT(st.total, json_integer_value(v));
	if ((v = json_object_get(e, "done")))
		CHECK_INT(st.done, json_integer_value(v));
	if ((v = json_object_get(e, "failed")))
		CHECK_INT(st.failed, json_integer_value(v));
	if ((v = json_object_get(e, "token")))
		CHECK_STR(st.token, json_string_value(v));
	if ((v = json_object_get(e, "created_ms")))
		CHECK_INT(st.created_ms, json_integer_value(v));
	if ((v = json_object_get(e, "inline")))
		CHECK_INT(st.inline_results, json_is_true(v));
	if ((v = json_object_get(e, "error_contains")))
		CHECK_HAS(st.error_message, json_string_value(v));
	if ((v = json_object_get(e, "error")) && json_is_null(v) && st.error_message)
		UNIT_FAIL("error_message \"%s\", expected none", st.error_message);
	if ((v = json_object_get(e, "results"))) {
		CHECK_INT(st.n_results, json_array_size(v));
		for (size_t i = 0; i < st.n_results && i < json_array_size(v); i++) {
			struct http_request req = {0};
			json_t *rj = json_pack("{s:s,s:s}", "method", "GET", "path",
			                       json_string_value(json_array_get(v, i)));
			CHECK_STR(url_path(st.results[i]), json_string_value(json_array_get(v, i)));
			provider_batch_results_request(&t->pc, st.results[i], &req);
			check_http(rj, &req);
			CHECK(header_value(&req, t->pc.auth_header ? t->pc.auth_header
			                         : strcmp(t->type, "openai") == 0 ? "Authorization"
			                         : strcmp(t->type, "anthropic") == 0
			                                 ? "x-api-key"
			                                 : "x-goog-api-key"));
			http_request_clear(&req);
			json_decref(rj);
		}
	}
	if ((v = json_object_get(e, "answers"))) {
		struct provider_batch_inline it;
		struct provider_batch_result r = {0};
		char what[32];
		size_t n = provider_batch_inline_open(&it, &t->pc, body, len), i = 0;
		CHECK_INT(n, json_array_size(v));
		r.position = -1;
		for (; provider_batch_inline_next(&it, &t->mc, &r); i++) {
			snprintf(what, sizeof what, "answer %zu", i);
			if (i < json_array_size(v))
				check_result(t, json_array_get(v, i), &r, what);
		}
		CHECK_INT(i, n);
		provider_batch_result_clear(&r);
		provider_batch_inline_close(&it);
	}
	provider_batch_status_clear(&st);
	check_status_prefixes(t, status, body, len);
}

/* A list body against expected.json: {"class", "items" [{"id", "state",
 * "token"}], "next" (null: the last page), "error_contains"}. */
static void run_batch_list(struct tcase *t)
{
	const char *body = NULL;
	size_t len = 0;
	long status = load_response(t, &body, &len);
	const json_t *e = t->expected_j, *v, *items = json_object_get(e, "items");
	struct provider_batch_list l = {0};
	if (status < 0 || !e)
		return;
	enum response_class cls = provider_batch_parse_list(&t->pc, status, body, len, &l);
	CHECK_STR(class_name(cls), json_string_value(json_object_get(e, "class")));
	if (cls != RESPONSE_OK && !l.error_message)
		UNIT_FAIL("class %s without an error message", class_name(cls));
	if ((v = json_object_get(e, "error_contains")))
		CHECK_HAS(l.error_message, json_string_value(v));
	if (items) {
		CHECK_INT(l.n, json_array_size(items));
		for (size_t i = 0; i < l.n && i < json_array_size(items); i++) {
			const json_t *w = json_array_get(items, i);
			CHECK_STR(l.items[i].id, json_string_value(json_object_get(w, "id")));
			CHECK_STR(provider_batch_state_name(l.items[i].state),
			          json_string_value(json_object_get(w, "state")));
			CHECK_STR(l.items[i].token, json_string_value(json_object_get(w, "token")));
		}
	}
	v = json_object_get(e, "next");
	if (json_is_string(v))
		CHECK_STR(l.next, json_string_value(v));
	else if (v && l.next)
		UNIT_FAIL("next \"%s\", expected none", l.next);
	provider_batch_list_clear(&l);
	check_status_prefixes(t, status, body, len);
}

/* requests.json: {"poll" {"id", request.json's members}, "cancel" {...},
 * "list" [{"cursor" (null: the first page), ...}], "results" [{"url", ...}]}. */
static void run_batch_requests(struct tcase *t)
{
	json_t *rj = load_json(t->dir, "requests.json");
	const json_t *v;
	size_t i;
	struct http_request req = {0};
	if (!rj) {
		UNIT_FAIL("requests.json is required");
		return;
	}
	if ((v = json_object_get(rj, "poll"))) {
		provider_batch_poll_request(&t->pc, json_string_value(json_object_get(v, "id")),
		                            &req);
		check_http(v, &req);
		http_request_clear(&req);
	}
	if ((v = json_object_get(rj, "cancel"))) {
		provider_batch_cancel_request(&t->pc, json_string_value(json_object_get(v, "id")),
		                              &req);
		check_http(v, &req);
		http_request_clear(&req);
	}
	json_array_foreach (json_object_get(rj, "list"), i, v) {
		provider_batch_list_request(&t->pc, json_string_value(json_object_get(v, "cursor")),
		                            &req);
		check_http(v, &req);
		http_request_clear(&req);
	}
	json_array_foreach (json_object_get(rj, "results"), i, v) {
		provider_batch_results_request(&t->pc, json_string_value(json_object_get(v, "url")),
		                               &req);
		check_http(v, &req);
		http_request_clear(&req);
	}
	json_array_foreach (json_object_get(rj, "cancel_answers"), i, v)
		free(check_answer(t, v, false));
	json_decref(rj);
}

static void run_batch_case(const char *dir, const char *type)
{
	struct tcase t = {.dir = dir, .type = type};
	const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	t.model_j = load_json(dir, "model.json");
	t.provider_j = load_json(dir, "provider.json");
	t.expected_j = load_json(dir, "expected.json");
	if (case_config(&t) != 0)
		goto out;
	const struct provider_batch *b = t.pc.ops->batch;
	if (!b) {
		UNIT_FAIL("%s has no batch table", type);
		goto out;
	}
	if (strncmp(name, "batch_submit", 12) == 0)
		run_batch_submit(&t);
	else if (strncmp(name, "batch_status", 12) == 0)
		run_batch_status(&t);
	else if (strncmp(name, "batch_list", 10) == 0)
		run_batch_list(&t);
	else if (strncmp(name, "batch_results", 13) == 0)
		run_batch_results(&t);
	else if (strncmp(name, "batch_requests", 14) == 0)
		run_batch_requests(&t);
	else
		UNIT_FAIL("%s: a batch case is batch_submit*, batch_status*, batch_list*, "
		          "batch_results* or batch_requests*",
		          name);
out:
	case_free(&t);
}

/* Like RUN, with a name made at run time. */
static void run_named(const char *name, void (*fn)(const char *, const char *), const char *dir,
                      const char *type)
{
	unit_cur = name;
	unit_cur_failed = 0;
	fn(dir, type);
	if (unit_cur_failed) {
		unit_failed++;
	} else {
		unit_passed++;
		printf("PASS %s\n", name);
	}
	fflush(stdout);
}

/* Runs every case under root; fails when there is none. */
static void run_data_cases(const char *root)
{
	char **types = NULL;
	size_t n_types = list_dirs(root, &types), n_cases = 0;

	for (size_t i = 0; i < n_types; i++) {
		struct buf tdir = {0};
		char **cases = NULL;
		buf_printf(&tdir, "%s/%s", root, types[i]);
		size_t n = list_dirs(tdir.data, &cases);
		for (size_t k = 0; k < n; k++) {
			struct buf cdir = {0}, name = {0};
			buf_printf(&cdir, "%s/%s", tdir.data, cases[k]);
			buf_printf(&name, "%s/%s", types[i], cases[k]);
			run_named(name.data,
			          strncmp(cases[k], "batch_", 6) == 0 ? run_batch_case : run_case,
			          cdir.data, types[i]);
			n_cases++;
			buf_free(&cdir);
			buf_free(&name);
			free(cases[k]);
		}
		free(cases);
		buf_free(&tdir);
		free(types[i]);
	}
	free(types);
	if (n_cases == 0) {
		unit_cur = "data_cases";
		unit_cur_failed = 0;
		UNIT_FAIL("no case under %s (run from the repository root, or give the directory)",
		          root);
		unit_failed++;
	}
}

/* ---------------------------------------------------------------- helpers */

TEST(class_of_status)
{
	static const struct {
		long status;
		enum response_class cls;
	} rows[] = {
	        {200, RESPONSE_OK},        {201, RESPONSE_OK},        {204, RESPONSE_OK},
	        {299, RESPONSE_OK},        {301, RESPONSE_REJECTED},  {400, RESPONSE_REJECTED},
	        {401, RESPONSE_AUTH},      {402, RESPONSE_REJECTED},  {403, RESPONSE_AUTH},
	        {404, RESPONSE_REJECTED},  {408, RESPONSE_RETRYABLE}, {409, RESPONSE_RETRYABLE},
	        {413, RESPONSE_REJECTED},  {422, RESPONSE_REJECTED},  {425, RESPONSE_RETRYABLE},
	        {429, RESPONSE_RETRYABLE}, {500, RESPONSE_RETRYABLE}, {502, RESPONSE_RETRYABLE},
	        {503, RESPONSE_RETRYABLE}, {504, RESPONSE_RETRYABLE}, {529, RESPONSE_RETRYABLE},
	        {599, RESPONSE_RETRYABLE}, {0, RESPONSE_RETRYABLE},   {-1, RESPONSE_RETRYABLE},
	        {99, RESPONSE_RETRYABLE},  {600, RESPONSE_RETRYABLE}, {100, RESPONSE_REJECTED},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (provider_class_of_status(rows[i].status) != rows[i].cls)
			UNIT_FAIL("status %ld: %s, expected %s", rows[i].status,
			          class_name(provider_class_of_status(rows[i].status)),
			          class_name(rows[i].cls));
}

TEST(context_overflow_text)
{
	static const char *const yes[] = {
	        "This model's maximum context length is 128000 tokens. However, your messages "
	        "resulted in 130512 tokens. Please reduce the length of the messages.",
	        "context_length_exceeded",
	        "prompt is too long: 208310 tokens > 200000 maximum",
	        "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000, "
	        "decrease input length or `max_tokens` and try again",
	        "The input token count (1234567) exceeds the maximum number of tokens allowed "
	        "(1048576).",
	        "Please reduce the length of the messages or completion.",
	        "Prompt contains 40000 tokens and 0 draft tokens, too large for model with 32768 "
	        "maximum context length",
	        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 8193",
	        "Request exceeds the model's CONTEXT WINDOW",
	        "string_above_max_length",
	        "Too many tokens in the request",
	};
	static const char *const no[] = {
	        "",
	        "Rate limit reached for gpt-4o-mini in organization org-x on requests per min",
	        "Incorrect API key provided",
	        "max_tokens is too large: 100000. This model supports at most 16384 completion "
	        "tokens",
	        "temperature: range: 0..1",
	        "messages: roles must alternate between \"user\" and \"assistant\"",
	        "API key not valid. Please pass a valid API key.",
	        "Overloaded",
	};
	CHECK(!provider_text_is_context_overflow(NULL));
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		if (!provider_text_is_context_overflow(yes[i]))
			UNIT_FAIL("not taken for an overflow: %s", yes[i]);
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		if (provider_text_is_context_overflow(no[i]))
			UNIT_FAIL("taken for an overflow: %s", no[i]);
}

TEST(lookup)
{
	static const char *const types[] = {"openai", "anthropic", "gemini", "bedrock"};
	for (size_t i = 0; i < 4; i++) {
		const struct provider *p = provider_lookup(types[i]);
		if (!p) {
			UNIT_FAIL("no table for %s", types[i]);
			continue;
		}
		CHECK_STR(p->type, types[i]);
		CHECK(p->build_request && p->parse_response);
	}
	CHECK(provider_lookup("OpenAI") == NULL);
	CHECK(provider_lookup("") == NULL);
	CHECK(provider_lookup(NULL) == NULL);
}

TEST(finish_names)
{
	CHECK_STR(finish_reason_name(FINISH_STOP), "stop");
	CHECK_STR(finish_reason_name(FINISH_LENGTH), "length");
	CHECK_STR(finish_reason_name(FINISH_CONTENT_FILTER), "content_filter");
	CHECK_STR(finish_reason_name(FINISH_TOOL_CALLS), "tool_calls");
	CHECK_STR(finish_reason_name(FINISH_OTHER), "other");
	CHECK_STR(finish_reason_name(FINISH_REFUSAL), "refusal");
	CHECK_STR(finish_reason_name((enum finish_reason)99), "other");
}

TEST(error_text_is_safe)
{
	struct completion c = {0};
	struct buf long_text = {0};

	provider_set_error(&c, "Incorrect API key provided: %s. Find yours at %s",
	                   "sk-proj-abcdefghijklmnop1234", "https://platform.openai.com");
	CHECK_STR(c.error_message, "Incorrect API key provided: [redacted]. Find yours at "
	                           "https://platform.openai.com");
	provider_set_error(&c, "key=AIzaSyA1234567890abcdefgh bad");
	CHECK_STR(c.error_message, "key=[redacted] bad");
	provider_set_error(&c, "task-abcdefghijkl and sk-short stay");
	CHECK_STR(c.error_message, "task-abcdefghijkl and sk-short stay");
	provider_set_error(&c, "line one\nline two\tand \x7f \xff\xfe end");
	CHECK_STR(c.error_message, "line one line two and   ?? end");

	/* Cut at PROVIDER_ERROR_MAX on a character boundary. */
	for (int i = 0; i < 400; i++)
		buf_puts(&long_text, "\xc3\xa9"); /* é */
	provider_set_error(&c, "x%s", long_text.data);
	CHECK(strlen(c.error_message) <= PROVIDER_ERROR_MAX);
	CHECK(strlen(c.error_message) >= PROVIDER_ERROR_MAX - 1);
	json_t *s = json_string(c.error_message);
	CHECK(s != NULL);
	json_decref(s);
	buf_free(&long_text);
	completion_clear(&c);
	CHECK(c.error_message == NULL && c.content == NULL);
}

TEST(stop_array)
{
	json_error_t jerr;
	json_t *j = json_loads("[\"END\",\"\",\"\\u00e9\\n\"]", 0, &jerr);
	json_t *s = json_string("###");
	json_t *empty = json_string("");
	struct buf b = {0};
	CHECK_INT(provider_buf_stop_array(&b, ",\"k\":", j), 2);
	CHECK_STR(b.data, ",\"k\":[\"END\",\"\xc3\xa9\\n\"]");
	buf_reset(&b);
	CHECK_INT(provider_buf_stop_array(&b, ",\"k\":", s), 1);
	CHECK_STR(b.data, ",\"k\":[\"###\"]");
	buf_reset(&b);
	CHECK_INT(provider_buf_stop_array(&b, ",\"k\":", empty), 0);
	CHECK_INT(provider_buf_stop_array(&b, ",\"k\":", NULL), 0);
	CHECK_INT(b.len, 0);
	buf_free(&b);
	json_decref(j);
	json_decref(s);
	json_decref(empty);
}

TEST(turns)
{
	/* system, user, (blank user), system, user, assistant, assistant, "  " */
#define M(r, t)                                                                                    \
	{                                                                                          \
		.role = r, .content = t, .content_len = 2                                          \
	}
	struct job_message msgs[] = {
	        M(ROLE_SYSTEM, "S1"),    M(ROLE_USER, "u1"),  M(ROLE_USER, " \n"),
	        M(ROLE_SYSTEM, "S2"),    M(ROLE_USER, "u2"),  M(ROLE_ASSISTANT, "a1"),
	        M(ROLE_ASSISTANT, "a2"), M(ROLE_USER, "\t "),
	};
#undef M
	struct job job = {.messages = msgs, .n_messages = sizeof msgs / sizeof msgs[0]};
	struct provider_turn t;
	struct buf sys = {0};
	size_t pos = 0;

	CHECK(provider_next_turn(&job, &pos, &t));
	CHECK(t.role == ROLE_USER && t.first == 1 && t.end == 5 && t.n == 2);
	CHECK(provider_next_turn(&job, &pos, &t));
	CHECK(t.role == ROLE_ASSISTANT && t.first == 5 && t.end == 7 && t.n == 2);
	CHECK(!provider_next_turn(&job, &pos, &t));
	CHECK_INT(provider_buf_system(&sys, &job), 2);
	CHECK_STR(sys.data, "S1\n\nS2");
	buf_free(&sys);

	struct job_message only_system[] = {{.role = ROLE_SYSTEM, .content = "S", .content_len = 1},
	                                    {.role = ROLE_USER, .content = "", .content_len = 0}};
	struct job job2 = {.messages = only_system, .n_messages = 2};
	pos = 0;
	CHECK(!provider_next_turn(&job2, &pos, &t));

	/* A tool result is on the user's side; a call, an image or a result
	 * with no text is not blank. */
	json_t *calls = json_loads("[{\"id\":\"c1\",\"type\":\"function\",\"function\":"
	                           "{\"name\":\"f\",\"arguments\":\"{}\"}}]",
	                           0, NULL);
	struct job_part image = {.type = PART_IMAGE, .url = "https://example.com/a.png"};
	struct job_message conv[] = {
	        {.role = ROLE_USER, .content = "", .parts = &image, .n_parts = 1},
	        {.role = ROLE_ASSISTANT, .content = "", .tool_calls = calls},
	        {.role = ROLE_TOOL, .content = "", .tool_call_id = "c1"},
	        {.role = ROLE_USER, .content = "and?", .content_len = 4},
	};
	struct job job3 = {.messages = conv, .n_messages = 4};
	pos = 0;
	CHECK(provider_next_turn(&job3, &pos, &t));
	CHECK(t.role == ROLE_USER && t.first == 0 && t.n == 1);
	CHECK(provider_next_turn(&job3, &pos, &t));
	CHECK(t.role == ROLE_ASSISTANT && t.first == 1 && t.n == 1);
	CHECK(provider_next_turn(&job3, &pos, &t));
	CHECK(t.role == ROLE_USER && t.first == 2 && t.end == 4 && t.n == 2);
	CHECK(provider_turn_takes(&t, &conv[2]) && provider_turn_takes(&t, &conv[3]));
	CHECK(!provider_next_turn(&job3, &pos, &t));
	json_decref(calls);
}

/* One schema through a dialect, compared as JSON. */
static void check_schema(const char *in, enum provider_schema_dialect d, const char *want)
{
	json_t *schema = json_loads(in, 0, NULL);
	json_t *expect = json_loads(want, 0, NULL);
	struct buf b = {0};
	provider_buf_schema(&b, schema, d);
	json_t *got = json_loads(b.data ? b.data : "", 0, NULL);
	if (!schema || !expect || !got || !json_same(got, expect))
		UNIT_FAIL("schema %s\n       got:      %s\n       expected: %s", in,
		          b.data ? b.data : "", want);
	buf_free(&b);
	json_decref(schema);
	json_decref(expect);
	json_decref(got);
}

TEST(schema_dialects)
{
	/* Anthropic: every object closed; limits, pattern and unknown keywords out. */
	check_schema("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\","
	             "\"minimum\":1,\"maximum\":9},\"s\":{\"type\":\"string\",\"minLength\":2,"
	             "\"pattern\":\"^a\",\"x-note\":1},\"l\":{\"type\":\"array\",\"minItems\":1,"
	             "\"maxItems\":3,\"items\":{\"properties\":{\"k\":{\"const\":\"v\"}}}},"
	             "\"m\":{\"type\":\"array\",\"minItems\":2}},\"required\":[\"n\"],"
	             "\"additionalProperties\":true}",
	             SCHEMA_ANTHROPIC,
	             "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"},"
	             "\"s\":{\"type\":\"string\"},\"l\":{\"type\":\"array\",\"minItems\":1,"
	             "\"items\":{\"properties\":{\"k\":{\"const\":\"v\"}},"
	             "\"additionalProperties\":false}},\"m\":{\"type\":\"array\"}},"
	             "\"required\":[\"n\"],\"additionalProperties\":false}");
	/* A property may be named like a keyword: names are not keywords. */
	check_schema("{\"type\":[\"object\",\"null\"],\"properties\":{\"pattern\":"
	             "{\"type\":\"string\"}},\"$defs\":{\"minimum\":{\"type\":\"object\"}},"
	             "\"anyOf\":[{\"$ref\":\"#/$defs/minimum\"},true]}",
	             SCHEMA_ANTHROPIC,
	             "{\"type\":[\"object\",\"null\"],\"properties\":{\"pattern\":"
	             "{\"type\":\"string\"}},\"$defs\":{\"minimum\":{\"type\":\"object\","
	             "\"additionalProperties\":false}},\"anyOf\":[{\"$ref\":\"#/$defs/minimum\"},"
	             "true],\"additionalProperties\":false}");
	/* Gemini: const to enum, definitions to $defs, $ref alone, other keywords out. */
	check_schema("{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"a\"},"
	             "\"n\":{\"type\":\"number\",\"minimum\":0,\"exclusiveMaximum\":5},"
	             "\"s\":{\"type\":\"string\",\"minLength\":1,\"pattern\":\"x\","
	             "\"enum\":[\"p\",\"q\"]},\"b\":{\"enum\":[true,false]},"
	             "\"r\":{\"$ref\":\"#/definitions/R\",\"description\":\"d\"},"
	             "\"c\":{\"const\":{\"o\":1}}},\"definitions\":{\"R\":{\"type\":"
	             "\"array\",\"items\":{\"type\":\"integer\"},\"maxItems\":4}},"
	             "\"additionalProperties\":false,\"required\":[\"kind\"]}",
	             SCHEMA_GEMINI,
	             "{\"type\":\"object\",\"properties\":{\"kind\":{\"enum\":[\"a\"]},"
	             "\"n\":{\"type\":\"number\",\"minimum\":0},\"s\":{\"type\":\"string\","
	             "\"enum\":[\"p\",\"q\"]},\"b\":{},\"r\":{\"$ref\":\"#/$defs/R\"},"
	             "\"c\":{}},\"$defs\":{\"R\":{\"type\":\"array\",\"items\":"
	             "{\"type\":\"integer\"},\"maxItems\":4}},\"additionalProperties\":false,"
	             "\"required\":[\"kind\"]}");
}

TEST(part_media)
{
	struct job_part url = {
	        .type = PART_IMAGE, .url = "https://example.com/a.png", .msg = 2, .index = 1};
	struct provider_media m;
	char err[256] = "";
	CHECK(provider_part_media(1u << PART_IMAGE, &url, &m, err, sizeof err) == 0);
	CHECK_STR(m.url, "https://example.com/a.png");
	CHECK(provider_part_media(1u << PART_DOCUMENT, &url, &m, err, sizeof err) == -1);
	CHECK_HAS(err, "messages[2].content[1]");
	url.fetched = (char *)"iVBORw0KGgo=";
	url.fetched_len = 12;
	url.media_type = "image/png";
	CHECK(provider_part_media(0, &url, &m, err, sizeof err) == 0);
	CHECK(m.url == NULL && m.data_len == 12 && strcmp(m.media_type, "image/png") == 0);
	struct buf b = {0};
	provider_buf_data_url(&b, &m);
	CHECK_STR(b.data, "\"data:image/png;base64,iVBORw0KGgo=\"");
	buf_free(&b);
}

TEST(max_tokens_default)
{
	struct model_conf m = {.default_max_tokens = 333};
	CHECK_INT(provider_max_tokens(&m, 50), 50);
	CHECK_INT(provider_max_tokens(&m, 0), 333);
	CHECK_INT(provider_max_tokens(NULL, 0), 1024);
}

TEST(batch_names)
{
	char cid[PROVIDER_BATCH_CUSTOM_ID_MAX + 1], token[PROVIDER_BATCH_TOKEN_LEN + 1];
	size_t n = 0;
	static const char *const bad[] = {
	        "",
	        "abc123def456",
	        "abc123def456-",
	        "abc123def456-01",
	        "ABC123DEF456-1",
	        "abc123def45-1",
	        "abc123def4567-1",
	        "abc123def456-1x",
	        "abc123def456+1",
	        "abc123def456--1",
	        "abc123def456-99999999999999999999999",
	};
	CHECK(provider_batch_token_valid("abc123def456", 12));
	CHECK(!provider_batch_token_valid("abc123def45", 11));
	CHECK(!provider_batch_token_valid("abc123def45_", 12));
	CHECK(!provider_batch_token_valid(NULL, 12));
	provider_batch_custom_id("abc123def456", 0, cid);
	CHECK_STR(cid, "abc123def456-0");
	provider_batch_custom_id("abc123def456", 49999, cid);
	CHECK_STR(cid, "abc123def456-49999");
	CHECK(provider_batch_custom_id_parse(cid, token, &n) == 0);
	CHECK_STR(token, "abc123def456");
	CHECK_INT(n, 49999);
	CHECK(provider_batch_custom_id_parse("zz9zz9zz9zz9-0", token, &n) == 0 && n == 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (provider_batch_custom_id_parse(bad[i], token, &n) == 0)
			UNIT_FAIL("\"%s\" read as a custom_id of ours", bad[i]);

	CHECK_STR(provider_batch_state_name(BATCH_VALIDATING), "validating");
	CHECK_STR(provider_batch_state_name(BATCH_CANCELED), "canceled");
	CHECK(!provider_batch_state_final(BATCH_FINALIZING) &&
	      !provider_batch_state_final(BATCH_CANCELING));
	CHECK(provider_batch_state_final(BATCH_ENDED) && provider_batch_state_final(BATCH_EXPIRED));
	CHECK_STR(provider_batch_outcome_name(BATCH_LINE_ANSWERED), "answered");
	CHECK_STR(provider_batch_outcome_name(BATCH_LINE_INVALID), "invalid");
}

TEST(batch_tables)
{
	static const char *const types[] = {"openai", "anthropic", "gemini"};
	for (size_t i = 0; i < 3; i++) {
		const struct provider_batch *b = provider_lookup(types[i])->batch;
		if (!b) {
			UNIT_FAIL("%s has no batch table", types[i]);
			continue;
		}
		CHECK(b->key_header && b->batches_path && b->cancel_suffix && b->list_query &&
		      b->cursor_param && b->id_key && b->list_key && b->list_cursor_key);
		CHECK(b->put_item && b->submit_request && b->read_batch && b->parse_result);
		CHECK(b->max_requests > 0 && b->max_bytes > 4096);
		CHECK_INT(b->submit_steps, i == 0 ? 2 : 1);
		CHECK((b->inline_answers != NULL) == (i == 2));
	}
	/* A format that never answers inline finds no answers in any body. */
	struct provider_batch_inline it;
	struct provider_conf p = {.ops = &provider_openai};
	const char *body = "{\"inlinedResponses\":[{\"response\":{}}]}";
	CHECK_INT(provider_batch_inline_open(&it, &p, body, strlen(body)), 0);
	provider_batch_inline_close(&it);
}

/* A submission stops at its limits: FULL leaves it as it was; a job too
 * large for any batch, or one the format cannot express, is an error. */
TEST(batch_submission_limits)
{
	struct tcase t = {.dir = ".", .type = "anthropic"};
	struct provider_batch_submission s;
	struct job job = {.model = -1, .budget = -1}, none = {.model = -1, .budget = -1};
	char err[256] = "";
	const char *v = "{\"id\":\"j\",\"prompt\":\"Say hello.\"}";
	const char *only_system =
	        "{\"id\":\"s\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}";

	if (case_config(&t) != 0)
		return;
	CHECK(job_decode(&t.cfg, v, strlen(v), &job, err, sizeof err) == 0);
	CHECK(job_decode(&t.cfg, only_system, strlen(only_system), &none, err, sizeof err) == 0);
	provider_batch_submission_init(&s, t.pc.ops, &t.mc, TEST_TOKEN);
	CHECK_INT(s.max_requests, 100000);
	s.max_requests = 2;
	CHECK(provider_batch_add(&s, &t.pc, &job, 0, err, sizeof err) == 0);
	size_t one = s.items.len;
	CHECK(provider_batch_add(&s, &t.pc, &none, 0, err, sizeof err) == -1);
	CHECK_HAS(err, "no user or assistant message");
	CHECK_INT(s.n, 1);
	CHECK_INT(s.items.len, one);
	CHECK(provider_batch_add(&s, &t.pc, &job, 0, err, sizeof err) == 0);
	CHECK(provider_batch_add(&s, &t.pc, &job, 0, err, sizeof err) == PROVIDER_BATCH_FULL);
	CHECK_INT(s.n, 2);

	/* By bytes: the framing's 1 KiB and about one request's room. */
	provider_batch_submission_clear(&s);
	provider_batch_submission_init(&s, t.pc.ops, &t.mc, TEST_TOKEN);
	s.max_bytes = 1024 + one + one / 2;
	CHECK(provider_batch_add(&s, &t.pc, &job, 0, err, sizeof err) == 0);
	CHECK(provider_batch_add(&s, &t.pc, &job, 0, err, sizeof err) == PROVIDER_BATCH_FULL);
	CHECK_INT(s.n, 1);
	CHECK_INT(s.items.len, one);
	CHECK(strlen(s.items.data) == one);
	provider_batch_submission_clear(&s);
	provider_batch_submission_init(&s, t.pc.ops, &t.mc, TEST_TOKEN);
	s.max_bytes = 1024 + one / 2;
	err[0] = '\0';
	CHECK(provider_batch_add(&s, &t.pc, &job, 0, err, sizeof err) == -1);
	CHECK_HAS(err, "anthropic batches hold at most");
	CHECK_INT(s.n, 0);
	CHECK_INT(s.items.len, 0);
	provider_batch_submission_clear(&s);
	job_clear(&job);
	job_clear(&none);
	case_free(&t);
}

int main(int argc, char **argv)
{
	const char *root = argc > 1 ? argv[1] : getenv("PROMPTYARD_TESTDATA");
	if (!root || !*root)
		root = "tests/providers";
	provider_bedrock_now_s = test_now_s;

	RUN(class_of_status);
	RUN(context_overflow_text);
	RUN(lookup);
	RUN(finish_names);
	RUN(error_text_is_safe);
	RUN(stop_array);
	RUN(turns);
	RUN(max_tokens_default);
	RUN(schema_dialects);
	RUN(part_media);
	RUN(batch_names);
	RUN(batch_tables);
	RUN(batch_submission_limits);
	run_data_cases(root);
	return unit_done();
}
