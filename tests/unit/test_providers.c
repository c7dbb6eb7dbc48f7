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
 *   provider.json  optional: {"base_url", "api_key" (null: no key),
 *                  "auth_header", "headers" ["Name: value"], "query" "a=b&c=d"}
 *   fetched.json   optional: the bytes the worker fetched for URL parts, as
 *                  {"<message index>:<part index>": {"data": base64,
 *                  "content_type": str}}, given to job_part_set_fetched()
 *   request.json   the request expected: {"method", "path" (the URL minus
 *                  http://provider.test), "headers" {name: value} that must be
 *                  there ("<KEY>" stands for the test key), "headers_absent"
 *                  [names], "body" (compared as JSON)}; or {"build_error":
 *                  true} when the job cannot be expressed in the format
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
 *                  [] for none)}; a key left out is not checked, apart from
 *                  billed and cost_nusd.
 *
 * Every case also checks what holds for any response: the key appears in no
 * URL, no body and no error message; a non-ok class carries an error message
 * and an ok one a content; every strict prefix of a 2xx body (a truncated
 * response) is RESPONSE_INVALID, and no prefix of any body crashes or leaks. */
#include "provider.h"
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TEST_KEY  "sk-test-123"
#define TEST_HOST "http://provider.test"

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
	v = json_object_get(pj, "api_key");
	t->api_key = v && json_is_null(v) ? NULL : xstrdup(TEST_KEY);

	v = json_object_get(mj, "id");
	t->model_id = xstrdup(json_is_string(v) ? json_string_value(v) : tm->id);
	v = json_object_get(mj, "name");
	t->model_name = xstrdup(json_is_string(v) ? json_string_value(v) : t->model_id);

	t->pc.name = (char *)t->type;
	t->pc.type = (char *)t->type;
	t->pc.ops = provider_lookup(t->type);
	t->pc.base_url = t->base_url;
	t->pc.api_key_env = (char *)"PROMPTYARD_TEST_KEY";
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

	t->mc.name = t->model_name;
	t->mc.provider = 0;
	t->mc.id = t->model_id;
	t->mc.price.input_nusd_per_mtok = price_of(mj, "input_usd_per_mtok", tm->input);
	t->mc.price.cached_input_nusd_per_mtok =
	        price_of(mj, "cached_input_usd_per_mtok", tm->cached);
	t->mc.price.cache_write_nusd_per_mtok =
	        price_of(mj, "cache_write_usd_per_mtok", tm->cache_write);
	t->mc.price.output_nusd_per_mtok = price_of(mj, "output_usd_per_mtok", tm->output);
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

/* value with every "<KEY>" replaced by the test key (new). */
static char *with_key(const char *value)
{
	struct buf b = {0};
	const char *p;
	while ((p = strstr(value, "<KEY>")) != NULL) {
		buf_append(&b, value, (size_t)(p - value));
		buf_puts(&b, TEST_KEY);
		value = p + 5;
	}
	buf_puts(&b, value);
	return buf_take(&b);
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

static void check_request(struct tcase *t)
{
	const json_t *rj = t->request_j;
	const char *method = json_string_value(json_object_get(rj, "method"));
	const char *path = json_string_value(json_object_get(rj, "path"));
	const char *url = t->req.url.data ? t->req.url.data : "";
	const char *name;
	json_t *v, *body;
	json_error_t jerr;
	size_t i;

	if (method && strcmp(method, "POST") != 0)
		UNIT_FAIL("request.json: method %s: every wire format POSTs", method);
	if (strncmp(url, TEST_HOST, strlen(TEST_HOST)) != 0)
		UNIT_FAIL("url %s is not on %s", url, TEST_HOST);
	else if (path)
		CHECK_STR(url + strlen(TEST_HOST), path);

	json_object_foreach (json_object_get(rj, "headers"), name, v) {
		char *want = with_key(json_string_value(v) ? json_string_value(v) : "");
		const char *got = header_value(&t->req, name);
		if (!got)
			UNIT_FAIL("header %s is missing", name);
		else if (strcmp(got, want) != 0)
			UNIT_FAIL("header %s: \"%s\", expected \"%s\"", name, got, want);
		free(want);
	}
	json_array_foreach (json_object_get(rj, "headers_absent"), i, v) {
		if (json_is_string(v) && header_value(&t->req, json_string_value(v)))
			UNIT_FAIL("header %s should not be sent", json_string_value(v));
	}
	/* The key goes in one header and nowhere else. */
	size_t with = 0;
	for (i = 0; i < t->req.n_headers; i++)
		with += strstr(t->req.headers[i], TEST_KEY) != NULL;
	CHECK(with <= 1);
	CHECK(!strstr(url, TEST_KEY));
	CHECK(!t->req.body.data || !strstr(t->req.body.data, TEST_KEY));

	body = json_loadb(t->req.body.data ? t->req.body.data : "", t->req.body.len, 0, &jerr);
	if (!body) {
		UNIT_FAIL("request body is not JSON: %s: %s", jerr.text,
		          t->req.body.data ? t->req.body.data : "");
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
	if (c->error_message && strstr(c->error_message, TEST_KEY))
		UNIT_FAIL("%s: the error message holds the key", what);
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

static void check_expected(struct tcase *t, enum response_class cls)
{
	const json_t *ej = t->expected_j;
	const struct completion *c = &t->c;
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
	int64_t cost = c->has_usage ? money_cost_nusd(&t->mc.price, &c->usage) : 0;
	v = json_object_get(ej, "cost_nusd");
	CHECK_INT(cost, json_is_integer(v) ? json_integer_value(v) : 0);
	v = json_object_get(ej, "error_contains");
	if (json_is_string(v))
		CHECK_HAS(c->error_message, json_string_value(v));
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
			run_named(name.data, run_case, cdir.data, types[i]);
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
	static const char *const types[] = {"openai", "anthropic", "gemini"};
	for (size_t i = 0; i < 3; i++) {
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

int main(int argc, char **argv)
{
	const char *root = argc > 1 ? argv[1] : getenv("PROMPTYARD_TESTDATA");
	if (!root || !*root)
		root = "tests/providers";

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
	run_data_cases(root);
	return unit_done();
}
