/* fake_provider: an HTTP server that speaks the three LLM wire formats the
 * worker calls (OpenAI Chat Completions, Anthropic Messages, Gemini
 * generateContent), with deterministic usage and scripted failures, so the
 * worker can be tested end to end against real HTTP.
 *
 *   fake_provider --port P [--rules FILE.json] [--log-bodies] [--max-log N]
 *
 * Prints "port=NNNN" on stdout once it listens on 127.0.0.1 (--port 0 picks
 * a free port) and runs until SIGTERM or SIGINT, then exits 0.
 *
 * Routing is by path suffix; whatever comes before the suffix is the
 * "prefix", which names a provider instance so that one fake serves many:
 *
 *   POST <prefix>/chat/completions               OpenAI
 *   POST <prefix>/messages                       Anthropic
 *   POST <prefix>/models/<id>:generateContent    Gemini
 *
 * and the providers' batch APIs on the same prefixes (SPEC §14; "Batches"
 * below):
 *
 *   POST <prefix>/files, GET <prefix>/files/ID, GET <prefix>/files/ID/content,
 *   POST|GET <prefix>/batches, GET <prefix>/batches/ID, POST .../ID/cancel      OpenAI
 *   POST|GET <prefix>/messages/batches, GET .../ID, POST .../ID/cancel,
 *   GET .../ID/results                                                         Anthropic
 *   POST <prefix>/models/<id>:batchGenerateContent, GET <prefix>/batches,
 *   GET <prefix>/batches/ID, POST <prefix>/batches/ID:cancel                    Gemini
 *
 * The files are split by idea (fake.h says which does what): this one is
 * the server (HTTP/1.1, rules, control API, the decision of each call);
 * fake_openai.c, fake_anthropic.c and fake_gemini.c read, check and
 * answer one format each, with what they share in fake_formats.c;
 * fake_schema.c makes answers from JSON Schemas; fake_media.c knows
 * base64, images, PDFs and the files below; fake_batch.c plays the batch
 * APIs (its top says their shapes and where they come from).
 *
 * Control API (not counted, not logged):
 *
 *   POST /_control/rules     JSON array of rules (or {"rules": [...]}); replaces all
 *   POST /_control/reset     clears the request log, the stats and the rules' counters
 *                            (batches and their files stay, as at a provider)
 *   POST /_control/release   answers every hanging request now (closes it unanswered)
 *   GET  /_stats             {"requests", "by_model", "by_prefix", "by_status", "by_format",
 *                             "suspended" (requests held now: a delay or a hang),
 *                             "suspended_max" (the most held at once since the start or
 *                             the last reset), "log_dropped", "files", "batches"}; "batches":
 *                            {"created": {"openai", "anthropic", "gemini"}, "live" (not
 *                            ended), "calls": {"files", "create", "get", "cancel",
 *                            "list", "results"}, "faults" (calls a fault rule took),
 *                            "requests": {"answered", "errored", "expired", "canceled"},
 *                            "cancels" (cancel calls on known batches), "result_gets"
 *                            (GETs of an output or error file, or of Anthropic results),
 *                            "uploads"}
 *   GET  /_control/batches   every batch, oldest first: {"batches": [{"id" (as its API
 *                            names it), "format", "prefix", "model", "state" (its API's
 *                            word), "ended", "token", "metadata" (OpenAI),
 *                            "display_name" (Gemini), "custom_id_prefixes", "requests",
 *                            "answered", "errored", "expired", "canceled", "pending",
 *                            "cancels", "gets", "result_gets", "created_at", "ended_at",
 *                            OpenAI's "input_file_id", "output_file_id",
 *                            "error_file_id"}]}. "token" is promptyard's: OpenAI
 *                            metadata.promptyard_token, Gemini the display name after
 *                            "promptyard-", Anthropic the one part before the last '-'
 *                            that all custom_ids share (null when none). ?requests=1
 *                            adds "request_list": [{"custom_id", "fate" (pending,
 *                            answered, errored, expired, canceled), "seq" (its log
 *                            entry)}] in the order asked
 *   GET  /_requests          the request log; ?bodies=1 adds bodies and headers (with
 *                            --log-bodies), ?since=SEQ only entries after SEQ
 *   GET  /_files/NAME        a small file for a test to give as a part's URL (counted
 *                            in /_stats "files"): tiny.png, tiny.jpg, tiny.gif,
 *                            tiny.webp (1x1 images), pages-N.pdf (a PDF of N blank
 *                            pages, 1 <= N <= 500; doc.pdf is pages-1.pdf), big-N.png
 *                            (N bytes that start like a PNG, 8 <= N <= 64 MiB),
 *                            note.txt (neither image nor PDF); 404 for another NAME
 *
 * A rule: {"prefix", "model" (fnmatch patterns, default "*"), "latency_ms",
 * "jitter_ms", "status", "retry_after_s", "fail_first", "fail_every",
 * "error_type": "context_overflow", "max_context", "body", "body_base64",
 * "content_type", "hang", "input_tokens", "output_tokens", "cached_tokens", "api_key",
 * "reasoning_tokens", "cache_write_tokens", "image_tokens",
 * "pdf_page_tokens", "break_schema_share", "refuse", "comment"}, the batch
 * keys below, and "endpoint" and "drop" for faults of batch calls. The
 * first rule (without "endpoint") whose prefix and model match decides; a
 * request no rule matches gets the defaults (200 after no delay, no key
 * check).
 *
 * Which requests "fail": with fail_first and/or fail_every, the first N
 * matching requests and/or every Nth one; without them, every matching
 * request if the rule says status (non-2xx), error_type, body or hang. A
 * failing request hangs (hang), gets `body` verbatim (with `status`, default
 * 200; "body_base64" gives the body's bytes in base64 instead, for bodies
 * a JSON string cannot carry: invalid UTF-8, NUL bytes), or gets the
 * format's error body for `status` (default 500, or 400 for
 * context_overflow). Retry-After is sent on failures when retry_after_s
 * is set. Authentication (api_key) and request validation come first and do
 * not count towards fail_first/fail_every.
 *
 * Validation: a request a real API would refuse (see the top of each
 * format's file: parts, base64 and media types, tool conversations, tools
 * and tool_choice, schemas, thinking budgets, ...) gets that API's 400
 * with its words, as near as known, logged with outcome "invalid".
 *
 * Usage is deterministic: input tokens = the rule's input_tokens, else
 * ceil(UTF-8 bytes of all text / 4) + 3 per message (a system prompt counts
 * as a message) + image_tokens (default 1000) per image part (inline or by
 * URL) + pdf_page_tokens (default 1500) per page of an inline PDF ("/Type
 * /Page" objects; a PDF by URL counts no page): never above the worker's
 * estimate with its defaults (1600 and 3000). Text is what the messages
 * say (text parts, tool results), not tool definitions or schemas. Wanted
 * output = the rule's output_tokens, else 16; with reasoning asked (OpenAI
 * reasoning_effort, Anthropic thinking, Gemini thinkingConfig), thinking =
 * the rule's reasoning_tokens (default 64), at most the budget asked; the
 * output limit (max_tokens, max_completion_tokens, maxOutputTokens) covers
 * both, and the visible output is cut first ("length" when cut). Output
 * tokens include the thinking, as OpenAI's completion_tokens do (on the
 * wire: OpenAI completion_tokens_details.reasoning_tokens inside
 * completion_tokens; Anthropic a thinking block, output_tokens including
 * it; Gemini thoughtsTokenCount apart from candidatesTokenCount and a
 * `thought: true` part). cached = the rule's cached_tokens (default 0, at
 * most the input); cache writes = the rule's cache_write_tokens (Anthropic
 * only, at most the rest of the input). In the log, input_tokens always
 * includes cached tokens and cache writes; on the wire Anthropic's
 * input_tokens excludes them (cache_read_input_tokens,
 * cache_creation_input_tokens), as the real API does. Log entries that
 * returned no usage (errors, hangs, body overrides) have zero tokens and
 * "billed": false.
 *
 * Answers, in the format's shape:
 * - a refusal when the rule says "refuse": true or any text holds
 *   PLEASE_REFUSE: OpenAI message.refusal with content null; Anthropic
 *   stop_reason "refusal"; Gemini (which has none) finishReason SAFETY with
 *   no content;
 * - a tool call when the request offers function tools, tool_choice is not
 *   none, and the last message is not a tool result (or tool_choice forces
 *   a call): the named tool or the first one, its arguments a small
 *   instance of its parameters' schema (OpenAI tool_calls with arguments as
 *   a string, finish_reason tool_calls; Anthropic tool_use, stop_reason
 *   tool_use; Gemini functionCall); so Anthropic's forced answer tool gets
 *   the instance as its input;
 * - with a schema (OpenAI response_format json_schema, Anthropic
 *   output_config.format or output_format, Gemini responseJsonSchema or
 *   responseSchema): the instance as JSON text;
 * - JSON mode without a schema: {"answer": ..., "model": ...};
 * - else "fake answer N from MODEL" (N from the prompt).
 * break_schema_share (0 to 1) breaks that share of the rule's schema
 * answers and tool arguments, evenly spread (0.2: the 5th, 10th, ...), by
 * giving the first required property a wrong type or dropping it, in turn.
 *
 * The log adds to each entry: reasoning_tokens, cache_write_tokens, images,
 * pdf_pages, answer (text, json, schema, broken, tool_call, refusal; null
 * when none), tool (the tool called, or null) and broken (the answer or the
 * tool's arguments break their schema).
 *
 * Batches. A batch lives on the fake's clock (a timer; polling does not
 * move it). It validates (OpenAI validating, checking its file's lines;
 * Gemini PENDING; Anthropic, which has no such state, in_progress) for
 * batch_validating_ms (default 100), runs its requests one after another,
 * evenly, until batch_finish_ms - batch_finalizing_ms after its creation
 * (defaults 500 and 50), finalizes (OpenAI finalizing) and ends at
 * batch_finish_ms (or later, when 500 requests per 10 ms tick could not
 * keep up). Each request is answered when it runs exactly as its sync
 * endpoint answers the same body, by the rule of its own prefix and model
 * (usage, tool calls, schemas and break_schema_share, refusals, thinking);
 * a request its API would refuse gets the sync 4xx. It is logged in
 * /_requests with "batch_id" and "custom_id" (null for sync calls), not
 * counted in "requests" or by_*. A batch's own settings come from the rule
 * matching its prefix and model (OpenAI: its file's first request's model;
 * Anthropic: its first request's):
 *   batch_validating_ms, batch_finish_ms, batch_finalizing_ms  (see above)
 *   batch_cancel_ms     how long cancelling / canceling lasts (default 100;
 *                       Gemini cancels at once)
 *   batch_error_share   that share of the requests, evenly spread in the
 *                       order they run (as break_schema_share), fails with a
 *                       500: OpenAI a status_code 500 line in the error
 *                       file, Anthropic errored api_error, Gemini an error
 *                       INTERNAL
 *   batch_expire_share  that share of the others expires: OpenAI
 *                       batch_expired, Anthropic expired, Gemini no answer
 *                       at all; the batch then ends expired (OpenAI expired,
 *                       Gemini EXPIRED; Anthropic ended)
 *   batch_never_ends    true: the batch answers batch_stall_share (default 0)
 *                       of its requests and stays in progress until canceled
 *   batch_expire        true: it answers batch_stall_share and expires at
 *                       batch_finish_ms, the rest expired
 *   batch_fail          true: it fails whole once validated (OpenAI failed
 *                       with errors, Gemini FAILED); Anthropic, which has no
 *                       failed batch, errors every request
 *   batch_drop_metadata true: Gemini's inline answers come without their
 *                       request's metadata (users report Google doing so):
 *                       only their order says which is which
 * A cancel stops the running: what ran keeps its answer, the rest is
 * canceled (OpenAI batch_cancelled lines, Anthropic canceled, Gemini none).
 * The requests run even indices first, then odd ones, so answers are not
 * in the order asked (Gemini's inline answers are, as Google writes them).
 * Files and outputs are kept in memory once and sent without a copy. Limits
 * as the providers': OpenAI files up to 200 MB and 50,000 requests,
 * Anthropic 100,000 requests, Gemini 20 MiB inline; batch endpoints read
 * bodies up to 256 MiB, the others 16 MiB.
 *
 * Faults of batch calls: a rule with "endpoint" (files, create, get, cancel,
 * list or results: OpenAI's GET of a file's content, Anthropic's results)
 * applies to that call alone, matched on the call's prefix and its batch's
 * model ("" for a list), never to API calls; its status, body,
 * content_type, hang, retry_after_s, latency_ms, jitter_ms, fail_first and
 * fail_every act as for API calls, and "drop": true lets the call take
 * effect (the batch created, canceled, ...) then closes the connection
 * without an answer. Keys (api_key) of batch calls are checked as for the
 * sync calls of the same prefix and model.
 *
 * One thread serves everything (see "HTTP/1.1" below): a delay is a timer on
 * the connection, never a blocked thread. API keys are never logged or
 * echoed. */
#include "fake.h"

#include <uv.h>

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY_BYTES        (16u << 20)
#define DEFAULT_MAX_LOG       1000000
#define HANG_MAX_MS           (600 * 1000)
#define DEFAULT_OUTPUT_TOKENS 16
/* Below the worker's defaults (SPEC §13: 1600 an image, 3000 a page), so
 * that no usage exceeds the worker's estimate. */
#define DEFAULT_IMAGE_TOKENS     1000
#define DEFAULT_PDF_PAGE_TOKENS  1500
#define DEFAULT_REASONING_TOKENS 64

/* ------------------------------------------------------------------ rules */

struct rule {
	char *prefix; /* fnmatch pattern */
	char *model;  /* fnmatch pattern */
	int64_t latency_ms;
	int64_t jitter_ms;
	int status;            /* 0 = not given */
	int64_t retry_after_s; /* -1 = none */
	int64_t fail_first;
	int64_t fail_every;
	bool context_overflow;
	int64_t max_context; /* -1 = the format's usual */
	char *body;          /* NULL = none */
	size_t body_len;     /* bytes of body (it may hold NULs: body_base64) */
	char *content_type;  /* for body; NULL = application/json */
	bool hang;
	int64_t input_tokens, output_tokens, cached_tokens; /* -1 = computed */
	char *api_key;                                      /* NULL = no check */
	int64_t reasoning_tokens;              /* thinking wanted when asked; -1 = the default */
	int64_t cache_write_tokens;            /* Anthropic cache writes, 0 = none */
	int64_t image_tokens, pdf_page_tokens; /* -1 = the defaults */
	double break_share;                    /* of schema answers, in [0, 1] */
	bool refuse;
	char *endpoint; /* the batch call this rule is for, NULL: API calls and batches */
	bool drop;      /* with endpoint: the call takes effect, then the connection drops */
	struct fake_batch_rules batch;
	uint64_t hits;           /* matching requests that passed auth and validation */
	uint64_t schema_answers; /* answers made from a schema, for break_share */
};

/* A batch's timing when no rule says otherwise (see the top). */
#define DEFAULT_BATCH_VALIDATING_MS 100
#define DEFAULT_BATCH_FINISH_MS     500
#define DEFAULT_BATCH_FINALIZING_MS 50
#define DEFAULT_BATCH_CANCEL_MS     100

static const struct fake_batch_rules batch_defaults = {
        .validating_ms = DEFAULT_BATCH_VALIDATING_MS,
        .finish_ms = DEFAULT_BATCH_FINISH_MS,
        .finalizing_ms = DEFAULT_BATCH_FINALIZING_MS,
        .cancel_ms = DEFAULT_BATCH_CANCEL_MS,
};

/* The batch calls an "endpoint" rule may name. */
static const char *const batch_endpoints[] = {"files",  "create", "get",
                                              "cancel", "list",   "results"};

struct rules {
	struct rule *v;
	size_t n;
};

static void rules_clear(struct rules *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		struct rule *r = &rs->v[i];

		free(r->prefix);
		free(r->model);
		free(r->body);
		free(r->content_type);
		free(r->api_key);
		free(r->endpoint);
	}
	free(rs->v);
	rs->v = NULL;
	rs->n = 0;
}

static int get_int(json_t *v, const char *key, int64_t lo, int64_t hi, int64_t *out, char *err,
                   size_t err_size, size_t idx)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		snprintf(err, err_size,
		         "rules[%zu].%s: must be an integer in [%" PRId64 ", %" PRId64 "]", idx,
		         key, lo, hi);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

static int get_share(json_t *v, const char *key, double *out, char *err, size_t err_size,
                     size_t idx)
{
	if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
		snprintf(err, err_size, "rules[%zu].%s: must be a number in [0, 1]", idx, key);
		return -1;
	}
	*out = json_number_value(v);
	return 0;
}

static int get_bool(json_t *v, const char *key, bool *out, char *err, size_t err_size, size_t idx)
{
	if (!json_is_boolean(v)) {
		snprintf(err, err_size, "rules[%zu].%s: must be true or false", idx, key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

static int get_str(json_t *v, const char *key, char **out, char *err, size_t err_size, size_t idx)
{
	if (!json_is_string(v)) {
		snprintf(err, err_size, "rules[%zu].%s: must be a string", idx, key);
		return -1;
	}
	free(*out);
	*out = strdup(json_string_value(v));
	return 0;
}

/* A string of base64 decoded into *out (new, NUL-terminated), its length
 * in *out_len. */
static int get_base64(json_t *v, const char *key, char **out, size_t *out_len, char *err,
                      size_t err_size, size_t idx)
{
	unsigned char *bytes = NULL;

	if (json_is_string(v))
		bytes = fake_base64_decode(json_string_value(v), json_string_length(v), false,
		                           out_len);
	if (bytes == NULL) {
		snprintf(err, err_size, "rules[%zu].%s: must be a string of base64", idx, key);
		return -1;
	}
	free(*out);
	*out = (char *)bytes;
	return 0;
}

static bool batch_endpoint_known(const char *name)
{
	for (size_t i = 0; i < sizeof(batch_endpoints) / sizeof(batch_endpoints[0]); i++) {
		if (strcmp(name, batch_endpoints[i]) == 0)
			return true;
	}
	return false;
}

/* Reads a rule's batch_* key into *b. */
static int batch_key_parse(const char *key, json_t *v, struct fake_batch_rules *b, char *err,
                           size_t err_size, size_t idx)
{
	static const struct {
		const char *name;
		size_t at;
		char kind; /* 'm' ms, 's' share, 'b' boolean */
	} keys[] = {
	        {"batch_validating_ms", offsetof(struct fake_batch_rules, validating_ms), 'm'},
	        {"batch_finish_ms", offsetof(struct fake_batch_rules, finish_ms), 'm'},
	        {"batch_finalizing_ms", offsetof(struct fake_batch_rules, finalizing_ms), 'm'},
	        {"batch_cancel_ms", offsetof(struct fake_batch_rules, cancel_ms), 'm'},
	        {"batch_error_share", offsetof(struct fake_batch_rules, error_share), 's'},
	        {"batch_expire_share", offsetof(struct fake_batch_rules, expire_share), 's'},
	        {"batch_stall_share", offsetof(struct fake_batch_rules, stall_share), 's'},
	        {"batch_never_ends", offsetof(struct fake_batch_rules, never_ends), 'b'},
	        {"batch_expire", offsetof(struct fake_batch_rules, expire), 'b'},
	        {"batch_fail", offsetof(struct fake_batch_rules, fail), 'b'},
	        {"batch_drop_metadata", offsetof(struct fake_batch_rules, drop_metadata), 'b'},
	};
	char *at;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(key, keys[i].name) != 0)
			continue;
		at = (char *)b + keys[i].at;
		if (keys[i].kind == 'm')
			return get_int(v, key, 0, 86400000, (int64_t *)(void *)at, err, err_size,
			               idx);
		if (keys[i].kind == 's')
			return get_share(v, key, (double *)(void *)at, err, err_size, idx);
		return get_bool(v, key, (bool *)(void *)at, err, err_size, idx);
	}
	snprintf(err, err_size, "rules[%zu]: unknown key \"%.64s\"", idx, key);
	return -1;
}

/* Fills *r from one rule object. Unknown keys are errors: a misspelt key
 * silently ignored would make a test pass for the wrong reason. */
static int rule_parse(json_t *obj, struct rule *r, size_t idx, char *err, size_t err_size)
{
	const char *key;
	json_t *v;
	int64_t n = 0;

	memset(r, 0, sizeof(*r));
	r->retry_after_s = -1;
	r->max_context = -1;
	r->input_tokens = r->output_tokens = r->cached_tokens = -1;
	r->reasoning_tokens = r->image_tokens = r->pdf_page_tokens = -1;
	r->batch = batch_defaults;
	r->prefix = strdup("*");
	r->model = strdup("*");
	if (!json_is_object(obj)) {
		snprintf(err, err_size, "rules[%zu]: must be an object", idx);
		return -1;
	}
	json_object_foreach (obj, key, v) {
		int rc = 0;

		if (strcmp(key, "prefix") == 0) {
			rc = get_str(v, key, &r->prefix, err, err_size, idx);
		} else if (strcmp(key, "model") == 0) {
			rc = get_str(v, key, &r->model, err, err_size, idx);
		} else if (strcmp(key, "latency_ms") == 0) {
			rc = get_int(v, key, 0, 3600000, &r->latency_ms, err, err_size, idx);
		} else if (strcmp(key, "jitter_ms") == 0) {
			rc = get_int(v, key, 0, 3600000, &r->jitter_ms, err, err_size, idx);
		} else if (strcmp(key, "status") == 0) {
			rc = get_int(v, key, 100, 599, &n, err, err_size, idx);
			r->status = (int)n;
		} else if (strcmp(key, "retry_after_s") == 0) {
			rc = get_int(v, key, 0, 86400, &r->retry_after_s, err, err_size, idx);
		} else if (strcmp(key, "fail_first") == 0) {
			rc = get_int(v, key, 0, INT64_MAX, &r->fail_first, err, err_size, idx);
		} else if (strcmp(key, "fail_every") == 0) {
			rc = get_int(v, key, 0, INT64_MAX, &r->fail_every, err, err_size, idx);
		} else if (strcmp(key, "max_context") == 0) {
			rc = get_int(v, key, 1, INT64_MAX / 2, &r->max_context, err, err_size, idx);
		} else if (strcmp(key, "input_tokens") == 0) {
			rc = get_int(v, key, 0, INT64_MAX / 4, &r->input_tokens, err, err_size,
			             idx);
		} else if (strcmp(key, "output_tokens") == 0) {
			rc = get_int(v, key, 0, INT64_MAX / 4, &r->output_tokens, err, err_size,
			             idx);
		} else if (strcmp(key, "cached_tokens") == 0) {
			rc = get_int(v, key, 0, INT64_MAX / 4, &r->cached_tokens, err, err_size,
			             idx);
		} else if (strcmp(key, "reasoning_tokens") == 0) {
			rc = get_int(v, key, 0, INT64_MAX / 4, &r->reasoning_tokens, err, err_size,
			             idx);
		} else if (strcmp(key, "cache_write_tokens") == 0) {
			rc = get_int(v, key, 0, INT64_MAX / 4, &r->cache_write_tokens, err,
			             err_size, idx);
		} else if (strcmp(key, "image_tokens") == 0) {
			rc = get_int(v, key, 0, 1000000, &r->image_tokens, err, err_size, idx);
		} else if (strcmp(key, "pdf_page_tokens") == 0) {
			rc = get_int(v, key, 0, 1000000, &r->pdf_page_tokens, err, err_size, idx);
		} else if (strcmp(key, "break_schema_share") == 0) {
			rc = get_share(v, key, &r->break_share, err, err_size, idx);
		} else if (strcmp(key, "refuse") == 0) {
			rc = get_bool(v, key, &r->refuse, err, err_size, idx);
		} else if (strcmp(key, "hang") == 0) {
			rc = get_bool(v, key, &r->hang, err, err_size, idx);
		} else if (strcmp(key, "drop") == 0) {
			rc = get_bool(v, key, &r->drop, err, err_size, idx);
		} else if (strcmp(key, "endpoint") == 0) {
			rc = get_str(v, key, &r->endpoint, err, err_size, idx);
			if (rc == 0 && !batch_endpoint_known(r->endpoint)) {
				snprintf(err, err_size,
				         "rules[%zu].endpoint: one of files, create, get, cancel, "
				         "list, results",
				         idx);
				rc = -1;
			}
		} else if (strncmp(key, "batch_", 6) == 0) {
			rc = batch_key_parse(key, v, &r->batch, err, err_size, idx);
		} else if (strcmp(key, "body") == 0) {
			rc = get_str(v, key, &r->body, err, err_size, idx);
			r->body_len = r->body != NULL ? strlen(r->body) : 0;
		} else if (strcmp(key, "body_base64") == 0) {
			rc = get_base64(v, key, &r->body, &r->body_len, err, err_size, idx);
		} else if (strcmp(key, "content_type") == 0) {
			rc = get_str(v, key, &r->content_type, err, err_size, idx);
		} else if (strcmp(key, "api_key") == 0) {
			rc = get_str(v, key, &r->api_key, err, err_size, idx);
		} else if (strcmp(key, "error_type") == 0) {
			if (!json_is_string(v) ||
			    strcmp(json_string_value(v), "context_overflow") != 0) {
				snprintf(err, err_size,
				         "rules[%zu].error_type: only \"context_overflow\"", idx);
				rc = -1;
			}
			r->context_overflow = true;
		} else if (strcmp(key, "comment") == 0) {
			/* free text for the test's reader */
		} else {
			snprintf(err, err_size, "rules[%zu]: unknown key \"%.64s\"", idx, key);
			rc = -1;
		}
		if (rc != 0)
			return -1;
	}
	if (r->drop && r->endpoint == NULL) {
		snprintf(err, err_size, "rules[%zu].drop: only with \"endpoint\"", idx);
		return -1;
	}
	if (r->prefix == NULL || r->model == NULL) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	return 0;
}

/* Parses a rules document into *out (replaced only on success). */
static int rules_parse(json_t *doc, struct rules *out, char *err, size_t err_size)
{
	struct rules rs = {NULL, 0};
	json_t *arr = json_is_object(doc) ? json_object_get(doc, "rules") : doc;

	if (!json_is_array(arr)) {
		snprintf(err, err_size, "rules: expected a JSON array of rule objects");
		return -1;
	}
	rs.v = calloc(json_array_size(arr) + 1, sizeof(*rs.v));
	if (rs.v == NULL) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < json_array_size(arr); i++) {
		rs.n = i + 1; /* so rules_clear frees the partly filled one too */
		if (rule_parse(json_array_get(arr, i), &rs.v[i], i, err, err_size) != 0) {
			rules_clear(&rs);
			return -1;
		}
	}
	rs.n = json_array_size(arr);
	rules_clear(out);
	*out = rs;
	return 0;
}

/* ------------------------------------------------------------------ state */

struct log_entry {
	uint64_t seq;
	double ts; /* unix seconds */
	char *path;
	char *prefix;
	char *model;
	enum format fmt;
	int status;          /* 0 = no answer (hang) */
	const char *outcome; /* static: ok, error, hang, body, unauthorized, invalid */
	int64_t input_tokens, output_tokens, cached_tokens;
	int64_t reasoning_tokens, cache_write_tokens;
	int64_t images, pdf_pages;
	int64_t latency_ms;
	int64_t max_tokens; /* -1 = none sent */
	bool billed;
	const char *answer; /* static: the answer's kind, NULL when none */
	char *tool;         /* the tool called, NULL when none */
	bool broken;        /* the answer breaks its schema */
	char *batch_id;     /* a request of a batch: its batch and custom_id; else NULL */
	char *custom_id;
	char *body;      /* --log-bodies only */
	json_t *headers; /* --log-bodies only (new reference, secrets redacted) */
};

/* The rules, the request log and the counters. */
static struct {
	struct rules rules;
	struct log_entry *log;
	size_t log_n, log_cap, log_max;
	uint64_t seq;
	uint64_t requests;
	uint64_t log_dropped;
	json_t *by_model, *by_prefix, *by_status, *by_format;
	json_t *files; /* GET /_files/NAME served, by NAME */
	uint64_t rng;
	bool log_bodies;
} g = {.rng = 0x9E3779B97F4A7C15ull, .log_max = DEFAULT_MAX_LOG};

static void log_entry_free(struct log_entry *e)
{
	free(e->path);
	free(e->prefix);
	free(e->model);
	free(e->tool);
	free(e->batch_id);
	free(e->custom_id);
	free(e->body);
	json_decref(e->headers);
}

static void state_reset(void)
{
	for (size_t i = 0; i < g.log_n; i++)
		log_entry_free(&g.log[i]);
	g.log_n = 0;
	g.seq = 0;
	g.requests = 0;
	g.log_dropped = 0;
	json_object_clear(g.by_model);
	json_object_clear(g.by_prefix);
	json_object_clear(g.by_status);
	json_object_clear(g.by_format);
	json_object_clear(g.files);
	for (size_t i = 0; i < g.rules.n; i++)
		g.rules.v[i].hits = g.rules.v[i].schema_answers = 0;
}

static void counter_bump(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (v != NULL)
		json_integer_set(v, json_integer_value(v) + 1);
	else
		json_object_set_new(obj, key, json_integer(1));
}

static uint64_t rng_next(void)
{
	g.rng ^= g.rng << 13;
	g.rng ^= g.rng >> 7;
	g.rng ^= g.rng << 17;
	return g.rng;
}

double fake_now_unix(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------- HTTP/1.1 */

/* The server is a small HTTP/1.1 one of its own, on libuv, in one thread: a
 * connection holds at most one request at a time (pipelined bytes wait in
 * its buffer), a delayed answer is built at once and written when the
 * connection's timer fires, and a hang is a timer that closes the connection
 * unanswered. libmicrohttpd's epoll thread left requests unread for minutes
 * now and then under a zero-latency stream on hundreds of connections, and
 * a test tool must not be the flaky part of a test. */

#define HEAD_MAX_BYTES (64u << 10)
#define READ_SPARE     (16u << 10)
#define READ_CHUNK     (64u << 10)

/* An answer being put together: the body and the header lines. */
struct reply {
	char *body;
	size_t len;
	char headers[1024];
	size_t headers_len;
};

/* Adds "name: value"; a line that does not fit is left out (a rule's
 * content_type is the only value not the fake's own, and is short). */
static void reply_header(struct reply *rep, const char *name, const char *value)
{
	size_t room = sizeof(rep->headers) - rep->headers_len;
	int n = snprintf(rep->headers + rep->headers_len, room, "%s: %s\r\n", name, value);

	if (n > 0 && (size_t)n < room)
		rep->headers_len += (size_t)n;
	else
		rep->headers[rep->headers_len] = '\0';
}

/* Bytes on their way out; freed by the write callback. */
struct out {
	uv_write_t req;
	struct conn *conn;
	bool last; /* the connection ends once it is written */
	size_t len;
	char data[];
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer; /* a deferred answer's delay, or a hang's limit */
	struct conn *prev, *next;
	char *in; /* read, not yet consumed */
	size_t in_len, in_cap;
	char *head; /* a copy of the current request's head, NULL before it is whole */
	size_t head_len, body_len;
	struct req req;
	bool keep_alive;
	bool continue_sent;
	bool closing;
	struct out *deferred; /* the answer the timer will write */
	bool hanging;         /* the timer will close the connection unanswered */
	int handles_open;
};

static struct {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_signal_t sigterm, sigint;
	struct conn *conns; /* every open connection */
	long waiting;       /* connections with a deferred answer or a hang */
	long waiting_max;   /* the most waiting at once since the start or the last reset */
} srv;

static const char *reason_phrase(unsigned status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 529: return "Overloaded";
	default: return "Status";
	}
}

const char *fake_req_header(const struct req *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++) {
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	}
	return NULL;
}

const char *fake_req_arg(const struct req *r, const char *name)
{
	for (size_t i = 0; i < r->n_args; i++) {
		if (strcmp(r->args[i].name, name) == 0)
			return r->args[i].value;
	}
	return NULL;
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Percent-decodes s in place; plus_is_space for a query. */
static void url_decode(char *s, bool plus_is_space)
{
	char *w = s;

	for (const char *p = s; *p != '\0'; p++) {
		int hi, lo;

		if (*p == '%' && (hi = hex_value(p[1])) >= 0 && (lo = hex_value(p[2])) >= 0) {
			*w++ = (char)(hi * 16 + lo);
			p += 2;
		} else {
			*w++ = plus_is_space && *p == '+' ? ' ' : *p;
		}
	}
	*w = '\0';
}

static void query_parse(struct req *r, char *q)
{
	while (q != NULL && *q != '\0' && r->n_args < FAKE_MAX_ARGS) {
		char *amp = strchr(q, '&');
		char *eq;

		if (amp != NULL)
			*amp = '\0';
		eq = strchr(q, '=');
		if (eq != NULL)
			*eq = '\0';
		url_decode(q, true);
		if (eq != NULL)
			url_decode(eq + 1, true);
		r->args[r->n_args].name = q;
		r->args[r->n_args].value = eq != NULL ? eq + 1 : "";
		r->n_args++;
		q = amp != NULL ? amp + 1 : NULL;
	}
}

static char *trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* Parses the head (its first head_len bytes of c->in, through the blank
 * line) into c->req. Returns 0, or the HTTP status to refuse it with. */
static unsigned head_parse(struct conn *c, size_t head_len)
{
	struct req *r = &c->req;
	char *h, *eol, *target, *version, *sp, *p;
	const char *te, *cl, *connection;
	bool http10;
	unsigned long long length = 0;
	size_t limit;

	h = malloc(head_len + 1);
	if (h == NULL)
		return 500;
	memcpy(h, c->in, head_len);
	h[head_len] = '\0';
	c->head = h;
	c->head_len = head_len;
	memset(r, 0, sizeof(*r));

	eol = strstr(h, "\r\n");
	*eol = '\0';
	sp = strchr(h, ' ');
	if (sp == NULL || sp == h)
		return 400;
	*sp = '\0';
	target = sp + 1;
	sp = strchr(target, ' ');
	if (sp == NULL || *target != '/')
		return 400;
	*sp = '\0';
	version = sp + 1;
	if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0)
		return 400;
	http10 = strcmp(version, "HTTP/1.0") == 0;
	r->method = h;
	p = strchr(target, '?');
	if (p != NULL) {
		*p = '\0';
		query_parse(r, p + 1);
	}
	url_decode(target, false);
	r->path = target;

	for (p = eol + 2; *p != '\0';) {
		char *colon;

		eol = strstr(p, "\r\n");
		if (eol == NULL || eol == p)
			break; /* the blank line */
		*eol = '\0';
		colon = strchr(p, ':');
		if (colon == NULL || colon == p)
			return 400;
		if (r->n_headers == FAKE_MAX_HEADERS)
			return 431;
		*colon = '\0';
		r->headers[r->n_headers].name = p;
		r->headers[r->n_headers].value = trim(colon + 1);
		r->n_headers++;
		p = eol + 2;
	}

	te = fake_req_header(r, "Transfer-Encoding");
	if (te != NULL && strcasecmp(te, "identity") != 0)
		return 501; /* no client of the fake sends chunked bodies */
	cl = fake_req_header(r, "Content-Length");
	if (cl != NULL) {
		char *end;

		errno = 0;
		length = strtoull(cl, &end, 10);
		if (end == cl || *end != '\0' || errno != 0 || *cl == '-')
			return 400;
	}
	connection = fake_req_header(r, "Connection");
	if (http10)
		c->keep_alive = connection != NULL && strcasestr(connection, "keep-alive") != NULL;
	else
		c->keep_alive = connection == NULL || strcasestr(connection, "close") == NULL;
	limit = fake_batch_body_limit(r->path);
	if (length > (limit > 0 ? limit : MAX_BODY_BYTES)) {
		/* answered without reading the body, so the connection ends there */
		r->too_large = true;
		c->keep_alive = false;
		length = 0;
	}
	c->body_len = (size_t)length;
	return 0;
}

static void conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	if (--c->handles_open > 0)
		return;
	free(c->in);
	free(c->head);
	free(c);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->deferred != NULL || c->hanging)
		srv.waiting--;
	free(c->deferred);
	c->deferred = NULL;
	c->hanging = false;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv.conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->timer, conn_closed);
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void out_done(uv_write_t *w, int status)
{
	struct out *o = (struct out *)w;
	struct conn *c = o->conn;
	bool last = o->last;

	free(o);
	if (status < 0 || last)
		conn_close(c); /* a no-op when already closing */
}

static void out_write(struct conn *c, struct out *o)
{
	uv_buf_t buf = uv_buf_init(o->data, (unsigned)o->len);

	o->conn = c;
	if (uv_write(&o->req, (uv_stream_t *)&c->tcp, &buf, 1, out_done) != 0) {
		free(o);
		conn_close(c);
	}
}

/* The whole answer on the wire, status line to body; frees rep. NULL when
 * out of memory. */
static struct out *reply_format(struct conn *c, unsigned status, struct reply *rep)
{
	char head[256];
	int n = snprintf(head, sizeof(head), "HTTP/1.1 %u %s\r\n%sContent-Length: %zu\r\n", status,
	                 reason_phrase(status), c->keep_alive ? "" : "Connection: close\r\n",
	                 rep->len);
	size_t len = (size_t)n + rep->headers_len + 2 + rep->len;
	struct out *o = malloc(sizeof(*o) + len);

	if (o != NULL) {
		char *w = o->data;

		memcpy(w, head, (size_t)n);
		w += n;
		memcpy(w, rep->headers, rep->headers_len);
		w += rep->headers_len;
		memcpy(w, "\r\n", 2);
		w += 2;
		if (rep->len > 0)
			memcpy(w, rep->body, rep->len);
		o->len = len;
		o->last = !c->keep_alive;
	}
	free(rep->body);
	free(rep);
	return o;
}

/* Writes rep now; a NULL rep (out of memory) drops the connection. */
static void conn_reply(struct conn *c, unsigned status, struct reply *rep)
{
	struct out *o = rep != NULL ? reply_format(c, status, rep) : NULL;

	if (o == NULL) {
		conn_close(c);
		return;
	}
	out_write(c, o);
}

static void conn_advance(struct conn *c);

static void timer_due(uv_timer_t *t)
{
	struct conn *c = t->data;
	struct out *o = c->deferred;

	if (c->hanging) {
		conn_close(c);
		return;
	}
	c->deferred = NULL;
	srv.waiting--;
	out_write(c, o);
	conn_advance(c); /* a pipelined request may be waiting */
}

/* Holds the answer for delay_ms; a NULL rep is a hang, closed unanswered
 * after delay_ms or on /_control/release. */
static void conn_defer(struct conn *c, unsigned status, struct reply *rep, int64_t delay_ms)
{
	if (rep != NULL) {
		c->deferred = reply_format(c, status, rep);
		if (c->deferred == NULL) {
			conn_close(c);
			return;
		}
	} else {
		c->hanging = true;
	}
	if (++srv.waiting > srv.waiting_max)
		srv.waiting_max = srv.waiting;
	uv_timer_start(&c->timer, timer_due, (uint64_t)delay_ms, 0);
}

/* ------------------------------------------------------------- responses */

/* An answer owning a copy of data; NULL only when out of memory. */
static struct reply *reply_raw(const char *data, size_t len, const char *content_type)
{
	struct reply *rep = calloc(1, sizeof(*rep));

	if (rep == NULL)
		return NULL;
	rep->body = malloc(len + 1);
	if (rep->body == NULL) {
		free(rep);
		return NULL;
	}
	memcpy(rep->body, data, len);
	rep->len = len;
	reply_header(rep, "Content-Type", content_type);
	return rep;
}

/* A JSON answer; takes (steals) the reference to doc. */
static struct reply *reply_json(json_t *doc)
{
	struct reply *rep = doc != NULL ? calloc(1, sizeof(*rep)) : NULL;

	if (rep != NULL)
		rep->body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (rep == NULL || rep->body == NULL) {
		free(rep);
		return NULL;
	}
	rep->len = strlen(rep->body);
	reply_header(rep, "Content-Type", "application/json");
	return rep;
}

static void send_json(struct conn *c, unsigned status, json_t *doc)
{
	conn_reply(c, status, reply_json(doc));
}

/* A refusal at the HTTP level; the connection ends after it. */
static void conn_refuse(struct conn *c, unsigned status, const char *message)
{
	c->keep_alive = false;
	conn_reply(c, status, reply_raw(message, strlen(message), "text/plain"));
}

/* ------------------------------------------------------- reading requests */

static void dispatch(struct conn *c, struct req *r);

/* Handles every whole request in the buffer, one at a time, while none is
 * deferred. */
static void conn_advance(struct conn *c)
{
	while (!c->closing && c->deferred == NULL && !c->hanging) {
		if (c->head == NULL) {
			const char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
			unsigned refuse;

			if (end == NULL) {
				if (c->in_len > HEAD_MAX_BYTES)
					conn_refuse(c, 431, "request head too large\n");
				return;
			}
			refuse = head_parse(c, (size_t)(end + 4 - c->in));
			if (refuse != 0) {
				conn_refuse(c, refuse,
				            refuse == 501 ? "only Content-Length bodies are read\n"
				                          : "malformed request head\n");
				return;
			}
		}
		if (c->in_len - c->head_len < c->body_len) {
			const char *expect = fake_req_header(&c->req, "Expect");

			if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
			    !c->continue_sent) {
				static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
				struct out *o = malloc(sizeof(*o) + sizeof(cont) - 1);

				if (o == NULL) {
					conn_close(c);
					return;
				}
				memcpy(o->data, cont, sizeof(cont) - 1);
				o->len = sizeof(cont) - 1;
				o->last = false;
				c->continue_sent = true;
				out_write(c, o);
			}
			return;
		}
		c->req.body = c->in + c->head_len;
		c->req.len = c->body_len;
		dispatch(c, &c->req);
		/* the request is answered or its answer built: drop it */
		memmove(c->in, c->in + c->head_len + c->body_len,
		        c->in_len - c->head_len - c->body_len);
		c->in_len -= c->head_len + c->body_len;
		free(c->head);
		c->head = NULL;
		c->head_len = c->body_len = 0;
		c->continue_sent = false;
	}
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	(void)suggested;
	if (c->in_cap - c->in_len < READ_SPARE) {
		size_t cap = c->in_cap * 2 > c->in_len + READ_CHUNK ? c->in_cap * 2
		                                                    : c->in_len + READ_CHUNK;
		char *in = realloc(c->in, cap);

		if (in == NULL) {
			*buf = uv_buf_init(NULL, 0); /* UV_ENOBUFS: the read callback closes */
			return;
		}
		c->in = in;
		c->in_cap = cap;
	}
	*buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	(void)buf;
	if (nread < 0) {
		conn_close(c); /* the client went (or no memory): a hang ends here too */
		return;
	}
	c->in_len += (size_t)nread;
	if (c->in_len > 2 * (HEAD_MAX_BYTES + (c->head != NULL && c->body_len > MAX_BODY_BYTES
	                                               ? c->body_len
	                                               : MAX_BODY_BYTES))) {
		conn_close(c); /* a client pipelining without end */
		return;
	}
	conn_advance(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct conn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return; /* left in the backlog until memory comes back */
	uv_tcp_init(srv.loop, &c->tcp);
	uv_timer_init(srv.loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->handles_open = 2;
	c->next = srv.conns;
	if (srv.conns != NULL)
		srv.conns->prev = c;
	srv.conns = c;
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) != 0)
		conn_close(c);
}

/* /_control/release: every hanging request is closed unanswered. */
static void release_hangs(void)
{
	struct conn *c = srv.conns;

	while (c != NULL) {
		struct conn *next = c->next;

		if (c->hanging)
			conn_close(c);
		c = next;
	}
}

/* SIGTERM or SIGINT: deferred answers go out now, hangs are closed, then
 * every connection; the loop ends when the last handle is closed. */
static void on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	(void)signum;
	uv_close((uv_handle_t *)&srv.listener, NULL);
	uv_close((uv_handle_t *)&srv.sigterm, NULL);
	uv_close((uv_handle_t *)&srv.sigint, NULL);
	fake_batch_close();
	for (struct conn *c = srv.conns; c != NULL; c = c->next) {
		if (c->deferred != NULL) {
			uv_timer_stop(&c->timer);
			timer_due(&c->timer);
		}
	}
	while (srv.conns != NULL)
		conn_close(srv.conns);
}

/* ------------------------------------------------------------ control API */

static bool is_secret_header(const char *key)
{
	return strcasecmp(key, "authorization") == 0 || strcasecmp(key, "x-api-key") == 0 ||
	       strcasecmp(key, "x-goog-api-key") == 0 || strcasecmp(key, "api-key") == 0 ||
	       strcasecmp(key, "proxy-authorization") == 0 || strcasecmp(key, "cookie") == 0;
}

/* The request's headers as a JSON object, names lower-cased, secrets
 * redacted. */
static json_t *headers_json(const struct req *r)
{
	json_t *obj = json_object();

	for (size_t n = 0; n < r->n_headers && obj != NULL; n++) {
		const char *key = r->headers[n].name;
		char lower[128];
		size_t i;

		for (i = 0; key[i] != '\0' && i < sizeof(lower) - 1; i++)
			lower[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
		lower[i] = '\0';
		json_object_set_new(
		        obj, lower,
		        json_string(is_secret_header(key) ? "[redacted]" : r->headers[n].value));
	}
	return obj;
}

static json_t *log_entry_json(const struct log_entry *e, bool bodies)
{
	json_t *o = json_pack(
	        "{s:I, s:f, s:s, s:s, s:s, s:s, s:i, s:s, s:I, s:I, s:I, s:I, s:b}", "seq",
	        (json_int_t)e->seq, "ts", e->ts, "path", e->path, "prefix", e->prefix, "format",
	        fake_format_names[e->fmt], "model", e->model, "status", e->status, "outcome",
	        e->outcome, "input_tokens", (json_int_t)e->input_tokens, "output_tokens",
	        (json_int_t)e->output_tokens, "cached_tokens", (json_int_t)e->cached_tokens,
	        "latency_ms", (json_int_t)e->latency_ms, "billed", e->billed);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "max_tokens",
	                    e->max_tokens >= 0 ? json_integer(e->max_tokens) : json_null());
	json_object_set_new(o, "reasoning_tokens", json_integer(e->reasoning_tokens));
	json_object_set_new(o, "cache_write_tokens", json_integer(e->cache_write_tokens));
	json_object_set_new(o, "images", json_integer(e->images));
	json_object_set_new(o, "pdf_pages", json_integer(e->pdf_pages));
	json_object_set_new(o, "answer", e->answer != NULL ? json_string(e->answer) : json_null());
	json_object_set_new(o, "tool", e->tool != NULL ? json_string(e->tool) : json_null());
	json_object_set_new(o, "broken", json_boolean(e->broken));
	json_object_set_new(o, "batch_id",
	                    e->batch_id != NULL ? json_string(e->batch_id) : json_null());
	json_object_set_new(o, "custom_id",
	                    e->custom_id != NULL ? json_string(e->custom_id) : json_null());
	if (bodies && e->body != NULL) {
		json_t *parsed = json_loads(e->body, 0, NULL);

		json_object_set_new(o, "body", parsed != NULL ? parsed : json_string(e->body));
	}
	if (bodies && e->headers != NULL)
		json_object_set(o, "headers", e->headers);
	return o;
}

static void handle_control(struct conn *conn, const struct req *r)
{
	const char *url = r->path;
	bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;

	if (strcmp(url, "/_stats") == 0 && get) {
		json_t *doc;

		doc = json_pack("{s:I, s:O, s:O, s:O, s:O, s:I, s:I, s:I, s:O, s:o}", "requests",
		                (json_int_t)g.requests, "by_model", g.by_model, "by_prefix",
		                g.by_prefix, "by_status", g.by_status, "by_format", g.by_format,
		                "suspended", (json_int_t)srv.waiting, "suspended_max",
		                (json_int_t)srv.waiting_max, "log_dropped",
		                (json_int_t)g.log_dropped, "files", g.files, "batches",
		                fake_batch_stats());
		send_json(conn, 200, doc);
		return;
	}
	if (strcmp(url, "/_requests") == 0 && get) {
		const char *b = fake_req_arg(r, "bodies");
		const char *s = fake_req_arg(r, "since");
		bool bodies = b != NULL && strcmp(b, "0") != 0 && strcmp(b, "false") != 0;
		uint64_t since = s != NULL ? strtoull(s, NULL, 10) : 0;
		json_t *arr = json_array();

		for (size_t i = 0; i < g.log_n && arr != NULL; i++) {
			if (g.log[i].seq > since)
				json_array_append_new(arr, log_entry_json(&g.log[i], bodies));
		}
		send_json(conn, 200, arr);
		return;
	}
	if (strcmp(url, "/_control/rules") == 0 && post) {
		json_error_t jerr;
		json_t *doc = json_loadb(r->body ? r->body : "", r->len, 0, &jerr);
		char err[256] = "";
		size_t n = 0;

		if (doc == NULL) {
			snprintf(err, sizeof(err), "rules: bad JSON at line %d: %s", jerr.line,
			         jerr.text);
		} else if (rules_parse(doc, &g.rules, err, sizeof(err)) == 0) {
			n = g.rules.n;
		}
		json_decref(doc);
		if (err[0] != '\0')
			send_json(conn, 400, json_pack("{s:b, s:s}", "ok", 0, "error", err));
		else
			send_json(conn, 200,
			          json_pack("{s:b, s:I}", "ok", 1, "rules", (json_int_t)n));
		return;
	}
	if (strcmp(url, "/_control/batches") == 0 && get) {
		const char *q = fake_req_arg(r, "requests");

		send_json(conn, 200,
		          fake_batch_list(q != NULL && strcmp(q, "0") != 0 &&
		                          strcmp(q, "false") != 0));
		return;
	}
	if (strcmp(url, "/_control/reset") == 0 && post) {
		state_reset();
		fake_batch_stats_reset();
		srv.waiting_max = srv.waiting;
		send_json(conn, 200, json_pack("{s:b}", "ok", 1));
		return;
	}
	if (strcmp(url, "/_control/release") == 0 && post) {
		release_hangs();
		send_json(conn, 200, json_pack("{s:b}", "ok", 1));
		return;
	}
	send_json(conn, 404, json_pack("{s:s}", "error", "unknown control endpoint or method"));
}

/* GET /_files/NAME: a small image or PDF for a test to hand out as a URL. */
static void handle_file(struct conn *conn, const struct req *r)
{
	const char *name = r->path + strlen("/_files/"), *type = NULL;
	size_t len = 0;
	unsigned char *bytes;
	struct reply *rep;

	if (strcmp(r->method, "GET") != 0) {
		send_json(conn, 405, json_pack("{s:s}", "error", "GET only"));
		return;
	}
	bytes = fake_file(name, &len, &type);
	if (bytes == NULL) {
		send_json(conn, 404, json_pack("{s:s}", "error", "no such file"));
		return;
	}
	counter_bump(g.files, name);
	rep = reply_raw((const char *)bytes, len, type);
	free(bytes);
	conn_reply(conn, 200, rep);
}

/* -------------------------------------------------------------- API calls */

/* The decision for one call. */
struct decision {
	int status; /* 0 = hang */
	const char *outcome;
	int64_t delay_ms;
	struct answer a; /* the usage (a.in always), and the answer of a 200 */
	bool billed;
	char *body; /* override, new copy */
	size_t body_len;
	char *content_type; /* new copy or NULL */
	int64_t retry_after_s;
	bool context_overflow;
	int64_t max_context;
	const char *message; /* for errors */
	const char *oa_code, *oa_param;
};

static const char *const answer_names[] = {"text",   "json",      "schema",
                                           "broken", "tool_call", "refusal"};

static bool key_ok(const struct req *r, enum format fmt, const char *want)
{
	const char *got = NULL;

	if (want == NULL)
		return true;
	if (fmt == FMT_OPENAI) {
		got = fake_req_header(r, "Authorization");
		if (got == NULL || strncasecmp(got, "Bearer ", 7) != 0)
			return false;
		got += 7;
	} else if (fmt == FMT_ANTHROPIC) {
		got = fake_req_header(r, "x-api-key");
	} else {
		got = fake_req_header(r, "x-goog-api-key");
		if (got == NULL)
			got = fake_req_arg(r, "key");
	}
	return got != NULL && strcmp(got, want) == 0;
}

/* The first rule for endpoint (NULL: the API calls and the requests of
 * batches, whose rules name none) whose prefix and model match. */
static struct rule *rule_find(const char *prefix, const char *model, const char *endpoint)
{
	for (size_t i = 0; i < g.rules.n; i++) {
		struct rule *r = &g.rules.v[i];

		if ((r->endpoint == NULL) != (endpoint == NULL) ||
		    (endpoint != NULL && strcmp(r->endpoint, endpoint) != 0))
			continue;
		if (fnmatch(r->prefix, prefix, 0) == 0 && fnmatch(r->model, model, 0) == 0)
			return r;
	}
	return NULL;
}

/* Counts a hit of rule and says whether this one fails: with fail_first
 * and/or fail_every, the first N and/or every Nth; else every one when the
 * rule says an error status, a context overflow, a body, a hang or a
 * drop. */
static bool rule_failing(struct rule *rule)
{
	uint64_t k = ++rule->hits;

	if (rule->fail_first > 0 || rule->fail_every > 0)
		return (rule->fail_first > 0 && k <= (uint64_t)rule->fail_first) ||
		       (rule->fail_every > 0 && k % (uint64_t)rule->fail_every == 0);
	return (rule->status != 0 && (rule->status < 200 || rule->status > 299)) ||
	       rule->context_overflow || rule->body != NULL || rule->hang || rule->drop;
}

/* The rule's latency, jitter drawn. */
static int64_t rule_delay_ms(const struct rule *rule)
{
	int64_t ms;

	if (rule == NULL || rule->latency_ms + rule->jitter_ms <= 0)
		return 0;
	ms = rule->latency_ms;
	if (rule->jitter_ms > 0)
		ms += (int64_t)(rng_next() % (uint64_t)(rule->jitter_ms + 1));
	return ms;
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* The number of this break among the rule's schema answers (1, 2, ...),
 * or 0 when this answer is not to break: break_share of them, evenly
 * spread (with 0.2, the 5th, 10th, 15th, ...). */
static unsigned break_due(struct rule *rule)
{
	uint64_t n, now, before;

	if (rule == NULL || rule->break_share <= 0)
		return 0;
	n = ++rule->schema_answers;
	now = (uint64_t)((double)n * rule->break_share);
	before = (uint64_t)((double)(n - 1) * rule->break_share);
	return now > before ? (unsigned)now : 0;
}

/* The usage of a call: input from its text, images and PDF pages (or the
 * rule's), output as wanted within the limit asked, thinking when asked
 * within its budget and the limit, which covers both. */
static void answer_usage(const struct call *c, const struct rule *rule, struct answer *a)
{
	int64_t image =
	        rule != NULL && rule->image_tokens >= 0 ? rule->image_tokens : DEFAULT_IMAGE_TOKENS;
	int64_t page = rule != NULL && rule->pdf_page_tokens >= 0 ? rule->pdf_page_tokens
	                                                          : DEFAULT_PDF_PAGE_TOKENS;
	int64_t wanted = rule != NULL && rule->output_tokens >= 0 ? rule->output_tokens
	                                                          : DEFAULT_OUTPUT_TOKENS;
	int64_t think = rule != NULL && rule->reasoning_tokens >= 0 ? rule->reasoning_tokens
	                                                            : DEFAULT_REASONING_TOKENS;
	int64_t visible = wanted;

	a->in = rule != NULL && rule->input_tokens >= 0
	                ? rule->input_tokens
	                : (c->text_bytes + 3) / 4 + 3 * c->messages + c->images * image +
	                          c->pdf_pages * page;
	if (!c->thinking)
		think = 0;
	if (c->thinking_cap >= 0 && think > c->thinking_cap)
		think = c->thinking_cap;
	if (c->max_tokens >= 0 && think > c->max_tokens)
		think = c->max_tokens;
	if (c->max_tokens >= 0 && visible > c->max_tokens - think)
		visible = c->max_tokens - think;
	a->truncated = visible < wanted;
	a->reasoning = think;
	a->out = visible + think;
	a->cached = rule != NULL && rule->cached_tokens > 0 ? rule->cached_tokens : 0;
	if (a->cached > a->in)
		a->cached = a->in;
	a->cache_write = c->fmt == FMT_ANTHROPIC && rule != NULL ? rule->cache_write_tokens : 0;
	if (a->cache_write > a->in - a->cached)
		a->cache_write = a->in - a->cached;
}

/* What a call that succeeds answers: a refusal when the rule or the prompt
 * asks for one, else a tool call when the request picked a tool, else an
 * instance of the schema, a JSON object or a sentence. Schema answers and
 * tool arguments are broken as the rule's break_schema_share says. On no
 * memory a->text and a->args stay NULL (the connection is then dropped). */
static void answer_content(const struct call *c, struct rule *rule, struct answer *a)
{
	char text[512];
	json_t *inst = NULL;
	unsigned nth;

	if ((rule != NULL && rule->refuse) || c->refuse_word) {
		a->kind = ANSWER_REFUSAL;
		a->text = strdup(FAKE_REFUSAL_TEXT);
		return;
	}
	if (c->tool != NULL) {
		a->kind = ANSWER_TOOL_CALL;
		a->args = c->tool_params != NULL ? fake_schema_instance(c->tool_params) : NULL;
		if (!json_is_object(a->args)) {
			json_decref(a->args); /* the APIs take arguments as an object */
			a->args = json_object();
		}
		nth = break_due(rule);
		if (a->args != NULL && nth > 0)
			a->broken = fake_schema_break(&a->args, c->tool_params, nth);
		return;
	}
	snprintf(text, sizeof(text), "fake answer %u from %s", c->hash % 1000, c->model);
	if (c->schema != NULL) {
		a->kind = ANSWER_SCHEMA;
		inst = fake_schema_instance(c->schema);
		nth = break_due(rule);
		if (inst != NULL && nth > 0 && fake_schema_break(&inst, c->schema, nth)) {
			a->kind = ANSWER_BROKEN;
			a->broken = true;
		}
	} else if (c->json_mode) {
		a->kind = ANSWER_JSON;
		inst = json_pack("{s:s, s:s}", "answer", text, "model", c->model);
	} else {
		a->kind = ANSWER_TEXT;
		a->text = strdup(text);
		return;
	}
	/* jansson does the escaping */
	a->text = inst != NULL ? json_dumps(inst, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(inst);
}

/* What the log records of one call besides the call itself. */
struct log_call {
	const char *path;
	const struct req *req; /* for --log-bodies' headers; NULL for a batch's request */
	const struct decision *d;
	const char *batch_id, *custom_id;
};

/* Appends an entry to the request log (or counts it dropped). */
static void log_add(const struct call *c, const struct log_call *lc)
{
	const struct decision *d = lc->d;
	struct log_entry *e;

	if (g.log_n == g.log_max) {
		g.log_dropped++;
		return;
	}
	if (g.log_n == g.log_cap) {
		size_t cap = g.log_cap ? g.log_cap * 2 : 1024;
		struct log_entry *v = realloc(g.log, cap * sizeof(*v));

		if (v == NULL) {
			g.log_dropped++;
			return;
		}
		g.log = v;
		g.log_cap = cap;
	}
	e = &g.log[g.log_n++];
	memset(e, 0, sizeof(*e));
	e->seq = d->a.seq;
	e->ts = fake_now_unix();
	e->path = strdup(lc->path);
	e->prefix = strdup(c->prefix);
	e->model = strdup(c->model);
	e->fmt = c->fmt;
	e->status = d->status;
	e->outcome = d->outcome;
	e->images = c->images;
	e->pdf_pages = c->pdf_pages;
	e->latency_ms = d->delay_ms;
	e->max_tokens = c->max_tokens;
	e->billed = d->billed;
	if (d->billed) {
		e->input_tokens = d->a.in;
		e->output_tokens = d->a.out;
		e->cached_tokens = d->a.cached;
		e->reasoning_tokens = d->a.reasoning;
		e->cache_write_tokens = d->a.cache_write;
		e->answer = answer_names[d->a.kind];
		e->broken = d->a.broken;
		if (d->a.kind == ANSWER_TOOL_CALL)
			e->tool = strdup(c->tool);
	}
	e->batch_id = dup_or_null(lc->batch_id);
	e->custom_id = dup_or_null(lc->custom_id);
	if (g.log_bodies && lc->req != NULL) {
		e->body = malloc(lc->req->len + 1);
		if (e->body != NULL) {
			if (lc->req->len > 0)
				memcpy(e->body, lc->req->body, lc->req->len);
			e->body[lc->req->len] = '\0';
		}
		e->headers = headers_json(lc->req);
	} else if (g.log_bodies && c->body != NULL) {
		e->body = json_dumps(c->body, JSON_COMPACT);
	}
	if (e->path == NULL || e->prefix == NULL || e->model == NULL ||
	    (lc->batch_id != NULL && e->batch_id == NULL) ||
	    (lc->custom_id != NULL && e->custom_id == NULL)) {
		log_entry_free(e); /* out of memory: keep the log consistent */
		g.log_n--;
		g.log_dropped++;
	}
}

/* Decides the outcome of one call and records it in the log and stats. */
static void decide(const struct req *req, const struct call *c, struct decision *d)
{
	struct rule *rule = rule_find(c->prefix, c->model, NULL);
	bool failing = false;
	char status_key[16];
	struct log_call lc = {.path = req->path, .req = req, .d = d};

	memset(d, 0, sizeof(*d));
	d->retry_after_s = -1;
	d->max_context = -1;
	d->a.seq = ++g.seq;
	g.requests++;
	d->delay_ms = rule_delay_ms(rule);

	if (rule != NULL && !key_ok(req, c->fmt, rule->api_key)) {
		d->status = 401;
		d->outcome = "unauthorized";
		d->message = fake_status_message(c->fmt, 401);
		d->oa_code = fake_openai_code(401);
	} else if (c->fmt == FMT_ANTHROPIC && fake_req_header(req, "x-api-key") == NULL) {
		/* The real API answers a missing key with 401 whatever else is wrong. */
		d->status = 401;
		d->outcome = "unauthorized";
		d->message = "x-api-key header is required";
	} else if (c->invalid != NULL) {
		d->status = c->invalid_status != 0 ? c->invalid_status : 400;
		d->outcome = "invalid";
		d->message = c->invalid;
		d->oa_code = c->invalid_code;
		d->oa_param = c->invalid_param;
	} else {
		failing = rule != NULL && rule_failing(rule);
		answer_usage(c, rule, &d->a);
		if (failing) {
			d->retry_after_s = rule->retry_after_s;
			d->context_overflow = rule->context_overflow;
			d->max_context = rule->max_context;
			if (rule->hang) {
				d->status = 0;
				d->outcome = "hang";
				d->delay_ms = HANG_MAX_MS;
			} else if (rule->body != NULL) {
				d->status = rule->status != 0 ? rule->status : 200;
				d->outcome = "body";
				d->body = malloc(rule->body_len + 1);
				if (d->body != NULL) {
					memcpy(d->body, rule->body, rule->body_len + 1);
					d->body_len = rule->body_len;
				}
				d->content_type = dup_or_null(rule->content_type);
			} else {
				d->status = rule->status != 0
				                    ? rule->status
				                    : (rule->context_overflow ? 400 : 500);
				d->outcome = "error";
				d->message = fake_status_message(c->fmt, d->status);
				d->oa_code = fake_openai_code(d->status);
			}
		} else {
			answer_content(c, rule, &d->a);
			d->status = 200;
			d->outcome = "ok";
			d->billed = true;
		}
	}

	snprintf(status_key, sizeof(status_key), "%d", d->status);
	counter_bump(g.by_model, c->model);
	counter_bump(g.by_prefix, c->prefix);
	counter_bump(g.by_status, status_key);
	counter_bump(g.by_format, fake_format_names[c->fmt]);
	log_add(c, &lc);
}

/* Builds the response for a decision; NULL for a hang (or no memory). */
static struct reply *build_response(const struct call *c, const struct decision *d)
{
	struct reply *resp = NULL;
	char hdr[64];

	if (d->status == 0)
		return NULL;
	if (d->body != NULL)
		resp = reply_raw(d->body, d->body_len,
		                 d->content_type != NULL ? d->content_type : "application/json");
	else if (d->status == 200)
		resp = reply_json(fake_success_body(c, &d->a));
	else if (d->context_overflow)
		resp = reply_json(fake_overflow_body(c->fmt, d->a.in, d->max_context));
	else
		resp = reply_json(
		        fake_error_body(c->fmt, d->status, d->message, d->oa_code, d->oa_param));
	if (resp == NULL)
		return NULL;
	if (d->retry_after_s >= 0 && d->status != 200) {
		snprintf(hdr, sizeof(hdr), "%" PRId64, d->retry_after_s);
		reply_header(resp, "Retry-After", hdr);
	}
	snprintf(hdr, sizeof(hdr), "req_fake%016" PRIx64, d->a.seq);
	reply_header(resp, c->fmt == FMT_ANTHROPIC ? "request-id" : "x-request-id", hdr);
	return resp;
}

static void handle_api(struct conn *conn, const struct req *r, enum format fmt, struct call *c)
{
	struct decision d;
	struct reply *resp;
	json_error_t jerr;

	c->fmt = fmt;
	if (strcmp(r->method, "POST") != 0) {
		send_json(conn, 405, fake_error_body(fmt, 405, "Method not allowed", NULL, NULL));
		return;
	}
	if (r->too_large) {
		c->invalid = "Request body too large";
		c->invalid_status = 413;
	} else {
		c->body = json_loadb(r->body, r->len, 0, &jerr);
	}
	if (c->invalid == NULL && !json_is_object(c->body))
		c->invalid = "We could not parse the JSON body of your request.";
	if (c->invalid == NULL) {
		c->anthropic_version = fake_req_header(r, "anthropic-version");
		c->anthropic_beta = fake_req_header(r, "anthropic-beta");
		fake_parse(c);
	}

	decide(r, c, &d);
	resp = build_response(c, &d);
	json_decref(c->body);
	c->body = NULL;
	free(d.body);
	free(d.content_type);
	free(d.a.text);
	json_decref(d.a.args);
	if (d.status != 0 && resp == NULL)
		conn_close(conn); /* out of memory */
	else if (d.delay_ms <= 0)
		conn_reply(conn, (unsigned)d.status, resp);
	else
		conn_defer(conn, (unsigned)d.status, resp, d.delay_ms);
}

static void dispatch(struct conn *conn, struct req *r)
{
	struct call c;
	enum format fmt;

	if (strncmp(r->path, "/_files/", 8) == 0) {
		handle_file(conn, r);
		return;
	}
	if (strncmp(r->path, "/_", 2) == 0) {
		handle_control(conn, r);
		return;
	}
	if (fake_batch_handle(conn, r))
		return;
	memset(&c, 0, sizeof(c));
	fmt = fake_route(r->path, &c);
	if (fmt == FMT_NONE) {
		send_json(conn, 404,
		          json_pack("{s:{s:s, s:s}}", "error", "message",
		                    "fake_provider: no such endpoint (want .../chat/completions, "
		                    ".../messages or .../models/ID:generateContent)",
		                    "type", "invalid_request_error"));
		return;
	}
	handle_api(conn, r, fmt, &c);
}

/* ---------------------------------------------------------- for batches */

void fake_send_json(struct conn *c, unsigned status, json_t *doc, int64_t delay_ms)
{
	struct reply *rep = reply_json(doc);

	if (rep == NULL)
		conn_close(c);
	else if (delay_ms > 0)
		conn_defer(c, status, rep, delay_ms);
	else
		conn_reply(c, status, rep);
}

/* An answer written from pieces: the head is its own, the pieces are
 * borrowed or owned (freed once written). */
struct out_pieces {
	uv_write_t req;
	struct conn *conn;
	bool last;
	size_t n_owned;
	char *owned[FAKE_MAX_PIECES];
	char head[256];
};

static void out_pieces_free(struct out_pieces *o)
{
	for (size_t i = 0; i < o->n_owned; i++)
		free(o->owned[i]);
	free(o);
}

static void pieces_done(uv_write_t *w, int status)
{
	struct out_pieces *o = (struct out_pieces *)w;
	struct conn *c = o->conn;
	bool last = o->last;

	out_pieces_free(o);
	if (status < 0 || last)
		conn_close(c);
}

void fake_send_pieces(struct conn *c, unsigned status, const char *content_type,
                      struct fake_piece *p, size_t n)
{
	struct out_pieces *o = calloc(1, sizeof(*o));
	uv_buf_t bufs[FAKE_MAX_PIECES + 1];
	size_t total = 0, nb = 0;
	int head;

	for (size_t i = 0; i < n && i < FAKE_MAX_PIECES; i++) {
		total += p[i].len;
		if (p[i].owned && o != NULL)
			o->owned[o->n_owned++] = (char *)p[i].data;
		else if (p[i].owned)
			free((char *)p[i].data);
	}
	if (o == NULL || n > FAKE_MAX_PIECES) {
		if (o != NULL)
			out_pieces_free(o);
		conn_close(c);
		return;
	}
	head = snprintf(o->head, sizeof(o->head),
	                "HTTP/1.1 %u %s\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
	                status, reason_phrase(status), c->keep_alive ? "" : "Connection: close\r\n",
	                content_type, total);
	bufs[nb++] = uv_buf_init(o->head, (unsigned)head);
	for (size_t i = 0; i < n; i++) {
		if (p[i].len > 0)
			bufs[nb++] = uv_buf_init((char *)p[i].data, (unsigned)p[i].len);
	}
	o->conn = c;
	o->last = !c->keep_alive;
	if (uv_write(&o->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)nb, pieces_done) != 0) {
		out_pieces_free(o);
		conn_close(c);
	}
}

void fake_drop(struct conn *c)
{
	conn_close(c);
}

void fake_batch_rules(const char *prefix, const char *model, struct fake_batch_rules *out)
{
	const struct rule *rule = rule_find(prefix, model, NULL);

	*out = rule != NULL ? rule->batch : batch_defaults;
}

bool fake_batch_auth(struct conn *conn, const struct req *r, enum format fmt, const char *prefix,
                     const char *model)
{
	const struct rule *rule = rule_find(prefix, model, NULL);
	const char *message = NULL;

	if (rule != NULL && !key_ok(r, fmt, rule->api_key))
		message = fake_status_message(fmt, 401);
	else if (fmt == FMT_ANTHROPIC && fake_req_header(r, "x-api-key") == NULL)
		message = "x-api-key header is required";
	if (message == NULL)
		return true;
	send_json(conn, 401, fake_error_body(fmt, 401, message, fake_openai_code(401), NULL));
	return false;
}

enum fake_gate fake_batch_gate(struct conn *conn, enum format fmt, const char *prefix,
                               const char *model, const char *endpoint, int64_t *delay_ms)
{
	struct rule *rule = rule_find(prefix, model, endpoint);
	struct decision d;
	struct call c;
	struct reply *rep;

	*delay_ms = rule_delay_ms(rule);
	if (rule == NULL || !rule_failing(rule))
		return GATE_GO;
	if (rule->drop)
		return GATE_DROP;
	if (rule->hang) {
		conn_defer(conn, 0, NULL, HANG_MAX_MS);
		return GATE_DONE;
	}
	memset(&d, 0, sizeof(d));
	memset(&c, 0, sizeof(c));
	c.fmt = fmt;
	d.status = rule->status != 0 ? rule->status : (rule->body != NULL ? 200 : 500);
	if (rule->body == NULL && d.status >= 200 && d.status <= 299)
		d.status = 500; /* a failure without a body of its own is an error */
	d.body = rule->body;
	d.body_len = rule->body_len;
	d.content_type = rule->content_type;
	d.retry_after_s = rule->retry_after_s;
	d.message = fake_status_message(fmt, d.status);
	d.oa_code = fake_openai_code(d.status);
	d.a.seq = ++g.seq;
	rep = build_response(&c, &d);
	if (rep == NULL)
		conn_close(conn);
	else if (*delay_ms > 0)
		conn_defer(conn, (unsigned)d.status, rep, *delay_ms);
	else
		conn_reply(conn, (unsigned)d.status, rep);
	return GATE_DONE;
}

int fake_batch_run(struct call *c, bool fail, const char *path, const char *batch_id,
                   const char *custom_id, struct answer *a, uint64_t *seq)
{
	struct rule *rule = rule_find(c->prefix, c->model, NULL);
	struct decision d;
	struct log_call lc = {.path = path, .d = &d, .batch_id = batch_id, .custom_id = custom_id};

	memset(&d, 0, sizeof(d));
	d.a.seq = ++g.seq;
	if (c->invalid != NULL) {
		d.status = c->invalid_status != 0 ? c->invalid_status : 400;
		d.outcome = "invalid";
	} else if (fail) {
		d.status = 500;
		d.outcome = "error";
	} else {
		answer_usage(c, rule, &d.a);
		answer_content(c, rule, &d.a);
		d.status = 200;
		d.outcome = "ok";
		d.billed = true;
	}
	log_add(c, &lc);
	*a = d.a;
	*seq = d.a.seq;
	return d.status;
}

/* ------------------------------------------------------------------- main */

static int load_rules_file(const char *path)
{
	json_error_t jerr;
	json_t *doc = json_load_file(path, 0, &jerr);
	char err[256];
	int rc;

	if (doc == NULL) {
		fprintf(stderr, "fake_provider: %s:%d: %s\n", path, jerr.line, jerr.text);
		return -1;
	}
	rc = rules_parse(doc, &g.rules, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "fake_provider: %s: %s\n", path, err);
	json_decref(doc);
	return rc;
}

/* Hundreds of connections, and then some: as many descriptors as allowed. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static void usage(void)
{
	fprintf(stderr, "usage: fake_provider --port P [--rules FILE.json] [--log-bodies] "
	                "[--max-log N]\n");
}

int main(int argc, char **argv)
{
	struct sockaddr_storage bound;
	struct sockaddr_in addr;
	const char *rules_path = NULL;
	int namelen = sizeof(bound);
	long port = -1;
	int rc = 1, err;

	for (int i = 1; i < argc; i++) {
		char *end = NULL;

		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
			port = strtol(argv[++i], &end, 10);
			if (*end != '\0' || port < 0 || port > 65535) {
				usage();
				return 2;
			}
		} else if (strcmp(argv[i], "--rules") == 0 && i + 1 < argc) {
			rules_path = argv[++i];
		} else if (strcmp(argv[i], "--log-bodies") == 0) {
			g.log_bodies = true;
		} else if (strcmp(argv[i], "--max-log") == 0 && i + 1 < argc) {
			long long m = strtoll(argv[++i], &end, 10);

			if (*end != '\0' || m < 0) {
				usage();
				return 2;
			}
			g.log_max = (size_t)m;
		} else {
			usage();
			return 2;
		}
	}
	if (port < 0) {
		usage();
		return 2;
	}

	g.by_model = json_object();
	g.by_prefix = json_object();
	g.by_status = json_object();
	g.by_format = json_object();
	g.files = json_object();
	if (g.by_model == NULL || g.by_prefix == NULL || g.by_status == NULL ||
	    g.by_format == NULL || g.files == NULL)
		goto out;
	if (rules_path != NULL && load_rules_file(rules_path) != 0) {
		rc = 2;
		goto out;
	}

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	srv.loop = uv_default_loop();
	uv_signal_init(srv.loop, &srv.sigterm);
	uv_signal_init(srv.loop, &srv.sigint);
	uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
	uv_signal_start(&srv.sigint, on_signal, SIGINT);
	uv_tcp_init(srv.loop, &srv.listener);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	err = uv_tcp_bind(&srv.listener, (const struct sockaddr *)&addr, 0);
	if (err == 0)
		err = uv_listen((uv_stream_t *)&srv.listener, 4096, on_connection);
	if (err == 0)
		err = uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&bound, &namelen);
	if (err != 0) {
		fprintf(stderr, "fake_provider: cannot listen on 127.0.0.1:%ld: %s\n", port,
		        uv_strerror(err));
		/* close what was opened, so the loop can be closed */
		uv_close((uv_handle_t *)&srv.listener, NULL);
		uv_close((uv_handle_t *)&srv.sigterm, NULL);
		uv_close((uv_handle_t *)&srv.sigint, NULL);
		uv_run(srv.loop, UV_RUN_DEFAULT);
		uv_loop_close(srv.loop);
		goto out;
	}
	fake_batch_init(srv.loop);
	printf("port=%u\n", (unsigned)ntohs(((struct sockaddr_in *)&bound)->sin_port));
	fflush(stdout);

	uv_run(srv.loop, UV_RUN_DEFAULT); /* until on_signal has closed every handle */
	uv_loop_close(srv.loop);
	rc = 0;
out:
	fake_batch_free();
	state_reset();
	free(g.log);
	rules_clear(&g.rules);
	json_decref(g.by_model);
	json_decref(g.by_prefix);
	json_decref(g.by_status);
	json_decref(g.by_format);
	json_decref(g.files);
	return rc;
}
