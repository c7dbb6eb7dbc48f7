/* fake_batch: the providers' batch APIs for bin/fake_provider (SPEC §14),
 * with their state, their files and their own clock.
 *
 *   OpenAI     POST <prefix>/files (multipart: purpose "batch", file a JSONL
 *              of {custom_id, method, url, body}), GET <prefix>/files/{id}
 *              and .../{id}/content; POST <prefix>/batches {input_file_id,
 *              endpoint, completion_window, metadata}, GET <prefix>/batches
 *              ?limit&after, GET <prefix>/batches/{id}, POST .../{id}/cancel.
 *   Anthropic  POST <prefix>/messages/batches {requests: [{custom_id,
 *              params}]}, GET <prefix>/messages/batches?limit&after_id
 *              &before_id, GET .../{id}, POST .../{id}/cancel, GET
 *              .../{id}/results (the batch's results_url).
 *   Gemini     POST <prefix>/models/{model}:batchGenerateContent {batch:
 *              {displayName, inputConfig: {requests: {requests: [{request,
 *              metadata}]}}}}, GET <prefix>/batches?pageSize&pageToken, GET
 *              <prefix>/batches/{id}, POST <prefix>/batches/{id}:cancel.
 *
 * A batch lives on the fake's clock (a libuv timer, not the polls): it
 * validates for batch_validating_ms, runs its requests evenly until
 * batch_finish_ms - batch_finalizing_ms after its creation, finalizes,
 * and ends at batch_finish_ms. Each request is answered when it runs,
 * exactly as its sync endpoint would answer its body (fake_batch_run),
 * and its line written then; the requests run in an order of their own
 * (the even indices, then the odd ones), so answers do not come in the
 * order asked. What the rules of the batch's prefix and model say is
 * described at the top of fake_provider.c.
 *
 * Shapes, from the providers' API references:
 * - OpenAI: the batch object (status validating, in_progress, finalizing,
 *   completed, failed, expired, cancelling, cancelled; request_counts
 *   {total, completed, failed}; errors {object: list, data: [{code,
 *   message, param, line}]} when its input fails validation). Output lines
 *   {id, custom_id, response: {status_code, request_id, body}, error:
 *   null}: a 200 in the output file, any other status in the error file,
 *   with the requests that never ran ({response: null, error: {code:
 *   batch_expired or batch_cancelled, message}}). completed counts the
 *   output file's lines, failed the error file's.
 * - Anthropic: the message_batch object (processing_status in_progress,
 *   canceling, ended; request_counts {processing, succeeded, errored,
 *   canceled, expired}; results_url once ended). Result lines {custom_id,
 *   result: {type: succeeded, message} | {type: errored, error: {type:
 *   error, error: {type, message}}} | {type: canceled} | {type:
 *   expired}}. A request's params are checked when it runs, as the API
 *   does (an invalid one is errored).
 * - Gemini: a long-running operation {name: batches/ID, metadata: the
 *   GenerateContentBatch {model, displayName, createTime, updateTime,
 *   endTime, batchStats (int64 counts as strings, zeros left out as proto3
 *   JSON does), state BATCH_STATE_PENDING, RUNNING, SUCCEEDED, FAILED,
 *   CANCELLED or EXPIRED, output}, done (left out while false), error or
 *   response}. A batch of inline requests answers inline, in the order of
 *   its requests: {response, metadata} or {error: google.rpc.Status,
 *   metadata}, in metadata.output.inlinedResponses.inlinedResponses and,
 *   when SUCCEEDED, in the operation's response too (GenerateContentBatch
 *   Output). Google has no per-request expiry or cancellation: such a
 *   request has no answer at all. A CANCELLED, EXPIRED or FAILED
 *   operation carries error {code, message}; the first two keep in their
 *   output what did run. The list gives operations without their output.
 *
 * Files, results and inline outputs are kept in memory once each and
 * written from there (fake_send_pieces): no GET copies them. */
#include "fake.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define PUMP_MS     10  /* the clock's tick */
#define PUMP_BUDGET 500 /* requests run per tick at most, so the server stays responsive */
#define MAX_ID      96  /* a batch or file id in a path */
#define DAY_S       86400

/* The providers' limits. */
#define BATCH_MAX_BODY_BYTES    (256u << 20) /* Anthropic's batch; the largest */
#define OPENAI_MAX_FILE_BYTES   (200u * 1000 * 1000)
#define OPENAI_MAX_REQUESTS     50000
#define ANTHROPIC_MAX_REQUESTS  100000
#define GEMINI_MAX_INLINE_BYTES (20u << 20)
#define OPENAI_ENDPOINT         "/v1/chat/completions"
#define OPENAI_MAX_ERRORS       16 /* lines named in a failed batch's errors */

#define GEMINI_BATCH_TYPE                                                                          \
	"type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
#define GEMINI_OUTPUT_TYPE                                                                         \
	"type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"

/* ------------------------------------------------------------------ state */

/* A growable byte buffer; oom once an append failed. */
struct bytes {
	char *p;
	size_t len, cap;
	bool oom;
};

enum phase { PH_VALIDATING, PH_RUNNING, PH_FINALIZING, PH_CANCELING, PH_ENDED };
enum ending { END_COMPLETED, END_FAILED, END_EXPIRED, END_CANCELED };
enum fate { RQ_PENDING, RQ_ANSWERED, RQ_ERRORED, RQ_EXPIRED, RQ_CANCELED };
static const char *const fate_names[] = {"pending", "answered", "errored", "expired", "canceled"};

/* One request of a batch. */
struct breq {
	size_t off, len;     /* its text in the batch's input: OpenAI its line, else its body */
	char *custom_id;     /* Gemini: metadata.key; NULL when none */
	char *meta;          /* Gemini: its metadata as JSON text, NULL when none */
	char *inline_answer; /* Gemini: its InlinedResponse, until the batch ends */
	size_t line;         /* OpenAI: its line in the input file */
	uint64_t seq;        /* the request log's number, 0 when it did not run */
	unsigned char fate;
};

/* A set of strings, for the uniqueness of custom_ids. */
struct strset {
	const char **v;
	size_t cap;
};

/* An OpenAI file. */
struct file {
	char id[MAX_ID];
	char *prefix;
	char *model; /* of its requests, for the rules */
	char *filename;
	const char *purpose; /* static */
	char *data;
	size_t len;
	double created;
	struct batch *batch; /* the batch it is the output of, NULL for an input */
};

struct batch {
	enum format fmt;
	char id[MAX_ID];        /* as its path names it (Gemini: without "batches/") */
	char name[MAX_ID + 16]; /* as its API names it (Gemini: "batches/ID") */
	char *prefix, *model, *path;
	struct fake_batch_rules rules;
	int64_t t0; /* the clock's ms at creation */
	double created, in_progress_at, finalizing_at, cancel_at, ended_at; /* unix s, 0 = not */
	int64_t cancel_done;                                                /* clock ms */
	enum phase phase;
	enum ending ending;

	struct breq *reqs;
	size_t n;      /* requests */
	size_t n_run;  /* of them, to run before the batch stalls or expires */
	size_t next;   /* requests run (or settled) so far, in running order */
	size_t ok_run; /* run without a forced error, for batch_expire_share */
	const char *input;
	char *input_owned;
	size_t answered, errored, expired, canceled;

	/* the format's own */
	json_t *metadata;  /* OpenAI, NULL when none */
	json_t *errors;    /* OpenAI: what failed validation, NULL when nothing */
	size_t checked;    /* OpenAI: lines validated so far (the clock validates them) */
	bool validated;    /* OpenAI: every line */
	struct strset ids; /* OpenAI: their custom_ids, while validating */
	struct file *input_file, *output_file, *error_file;
	char *display_name; /* Gemini */
	char *anthropic_version, *anthropic_beta;
	struct bytes out, err; /* OpenAI output and error lines; Anthropic results (out) */
	char *inline_array;    /* Gemini, once ended: "[...]" of its answers */
	size_t inline_len;

	unsigned cancels, gets, result_gets;
};

/* The batch calls, as an "endpoint" rule names them. */
enum call_kind { CALL_FILES, CALL_CREATE, CALL_GET, CALL_CANCEL, CALL_LIST, CALL_RESULTS };
static const char *const call_names[] = {"files", "create", "get", "cancel", "list", "results"};

static struct {
	uv_loop_t *loop;
	uv_timer_t pump;
	bool started, closing;
	struct batch **v;
	size_t n, cap;
	size_t live; /* batches not ended */
	struct file **files;
	size_t n_files, cap_files;
	unsigned salt;
	uint64_t serial;
	struct {
		uint64_t created[4], calls[6], faults;
		uint64_t answered, errored, expired, canceled;
		uint64_t cancels, result_gets, uploads;
	} st;
} B;

static int64_t clock_ms(void)
{
	return (int64_t)(uv_hrtime() / 1000000u);
}

static void bytes_add(struct bytes *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->cap - b->len < n + 1) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap - b->len < n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static int bytes_dump(const char *s, size_t n, void *b)
{
	bytes_add(b, s, n);
	return 0;
}

/* Appends doc (stolen) as one JSON line. */
static void bytes_line(struct bytes *b, json_t *doc)
{
	if (doc == NULL || json_dump_callback(doc, bytes_dump, b, JSON_COMPACT) != 0)
		b->oom = true;
	bytes_add(b, "\n", 1);
	json_decref(doc);
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* An id of lead and 16 hex digits, unique while the fake runs and unlikely
 * to meet one of an earlier run. */
static void id_make(char *out, size_t size, const char *lead)
{
	snprintf(out, size, "%s%08x%08" PRIx64, lead, B.salt, ++B.serial);
}

/* RFC 3339 in UTC with digits (6 or 9) of fractions, as Anthropic and
 * Google write their times. */
static void rfc3339(double t, int digits, char *out, size_t size)
{
	time_t sec = (time_t)t;
	double frac = t - (double)sec;
	struct tm tm;
	size_t n;

	gmtime_r(&sec, &tm);
	n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (digits == 9)
		snprintf(out + n, size - n, ".%09ldZ", (long)(frac * 1e9));
	else
		snprintf(out + n, size - n, ".%06ldZ", (long)(frac * 1e6));
}

static json_t *time_json(double t, int digits)
{
	char buf[48];

	if (t <= 0)
		return json_null();
	rfc3339(t, digits, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *unix_json(double t)
{
	return t > 0 ? json_integer((json_int_t)t) : json_null();
}

/* The ith request in running order: the even indices, then the odd. */
static size_t running_order(size_t n, size_t k)
{
	size_t half = (n + 1) / 2;

	return k < half ? 2 * k : 2 * (k - half) + 1;
}

/* Whether the kth (1, 2, ...) of a series is one of share of it, evenly
 * spread: with 0.2, the 5th, 10th, 15th, ... */
static bool spread(uint64_t k, double share)
{
	return share > 0 && (uint64_t)((double)k * share) > (uint64_t)((double)(k - 1) * share);
}

/* Adds s (borrowed); returns 1 when it was there already, -1 when out of
 * memory. The set holds at most n strings (given at the first add). */
static int strset_add(struct strset *set, const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	size_t i;

	if (set->v == NULL) {
		for (set->cap = 16; set->cap < 2 * n + 2; set->cap *= 2)
			;
		set->v = calloc(set->cap, sizeof(*set->v));
		if (set->v == NULL)
			return -1;
	}
	for (const char *p = s; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (i = h & (set->cap - 1); set->v[i] != NULL; i = (i + 1) & (set->cap - 1)) {
		if (strcmp(set->v[i], s) == 0)
			return 1;
	}
	set->v[i] = s;
	return 0;
}

/* ------------------------------------------------------------------ files */

static struct file *file_find(const char *prefix, const char *id)
{
	for (size_t i = 0; i < B.n_files; i++) {
		if (strcmp(B.files[i]->id, id) == 0 && strcmp(B.files[i]->prefix, prefix) == 0)
			return B.files[i];
	}
	return NULL;
}

/* A new file of data (taken), NULL when out of memory (data freed). */
static struct file *file_add(const char *prefix, const char *model, const char *purpose,
                             const char *filename, char *data, size_t len)
{
	struct file *f = calloc(1, sizeof(*f));

	if (f != NULL && B.n_files == B.cap_files) {
		size_t cap = B.cap_files ? B.cap_files * 2 : 64;
		struct file **v = realloc(B.files, cap * sizeof(*v));

		if (v != NULL) {
			B.files = v;
			B.cap_files = cap;
		}
	}
	if (f == NULL || B.n_files == B.cap_files) {
		free(f);
		free(data);
		return NULL;
	}
	id_make(f->id, sizeof(f->id), "file-fake");
	f->prefix = strdup(prefix);
	f->model = strdup(model);
	f->filename = strdup(filename);
	f->purpose = purpose;
	f->data = data;
	f->len = len;
	f->created = fake_now_unix();
	B.files[B.n_files++] = f;
	return f;
}

static void file_free(struct file *f)
{
	free(f->prefix);
	free(f->model);
	free(f->filename);
	free(f->data);
	free(f);
}

static json_t *file_json(const struct file *f)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:n, s:s, s:n}", "object", "file", "id",
	                 f->id, "purpose", f->purpose, "filename", f->filename, "bytes",
	                 (json_int_t)f->len, "created_at", (json_int_t)f->created, "expires_at",
	                 "status", "processed", "status_details");
}

/* ---------------------------------------------------------------- batches */

static void pump_start(void);
static bool oa_validate(struct batch *b, size_t *budget);

static struct batch *batch_find(enum format fmt, const char *prefix, const char *id)
{
	for (size_t i = 0; i < B.n; i++) {
		struct batch *b = B.v[i];

		if (b->fmt == fmt && strcmp(b->id, id) == 0 && strcmp(b->prefix, prefix) == 0)
			return b;
	}
	return NULL;
}

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->reqs[i].custom_id);
		free(b->reqs[i].meta);
		free(b->reqs[i].inline_answer);
	}
	free(b->reqs);
	free(b->prefix);
	free(b->model);
	free(b->path);
	free(b->input_owned);
	json_decref(b->metadata);
	json_decref(b->errors);
	free(b->ids.v);
	free(b->display_name);
	free(b->anthropic_version);
	free(b->anthropic_beta);
	free(b->out.p);
	free(b->err.p);
	free(b->inline_array);
	free(b);
}

/* A new batch of n requests (their slots zeroed), registered and on the
 * clock; NULL when out of memory. */
static struct batch *batch_new(enum format fmt, const char *prefix, const char *model,
                               const char *path, size_t n)
{
	struct batch *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->fmt = fmt;
	b->prefix = strdup(prefix);
	b->model = strdup(model);
	b->path = strdup(path);
	b->reqs = calloc(n > 0 ? n : 1, sizeof(*b->reqs));
	if (B.n == B.cap) {
		size_t cap = B.cap ? B.cap * 2 : 64;
		struct batch **v = realloc(B.v, cap * sizeof(*v));

		if (v != NULL) {
			B.v = v;
			B.cap = cap;
		}
	}
	if (b->prefix == NULL || b->model == NULL || b->path == NULL || b->reqs == NULL ||
	    B.n == B.cap) {
		batch_free(b);
		return NULL;
	}
	b->n = n;
	if (fmt == FMT_OPENAI) {
		id_make(b->id, sizeof(b->id), "batch_fake");
		snprintf(b->name, sizeof(b->name), "%s", b->id);
	} else if (fmt == FMT_ANTHROPIC) {
		id_make(b->id, sizeof(b->id), "msgbatch_fake");
		snprintf(b->name, sizeof(b->name), "%s", b->id);
	} else {
		id_make(b->id, sizeof(b->id), "fake");
		snprintf(b->name, sizeof(b->name), "batches/%s", b->id);
	}
	fake_batch_rules(prefix, model, &b->rules);
	if (b->rules.validating_ms + b->rules.finalizing_ms > b->rules.finish_ms)
		b->rules.finish_ms = b->rules.validating_ms + b->rules.finalizing_ms;
	b->n_run = b->rules.never_ends || b->rules.expire
	                   ? (size_t)((double)n * b->rules.stall_share)
	                   : n;
	b->t0 = clock_ms();
	b->created = fake_now_unix();
	b->phase = PH_VALIDATING;
	B.v[B.n++] = b;
	B.live++;
	B.st.created[fmt]++;
	pump_start();
	return b;
}

/* ------------------------------------------------------------ the answers */

/* google.rpc.Code for an HTTP status. */
static int rpc_code(int status)
{
	switch (status) {
	case 400: return 3;  /* INVALID_ARGUMENT */
	case 401: return 16; /* UNAUTHENTICATED */
	case 403: return 7;  /* PERMISSION_DENIED */
	case 404: return 5;  /* NOT_FOUND */
	case 429: return 8;  /* RESOURCE_EXHAUSTED */
	case 503: return 14; /* UNAVAILABLE */
	case 504: return 4;  /* DEADLINE_EXCEEDED */
	case 500: return 13; /* INTERNAL */
	default: return 2;   /* UNKNOWN */
	}
}

/* Records what became of request q and writes its line (OpenAI,
 * Anthropic) or its inline answer (Gemini). status and body (stolen; the
 * answer or the error body) for a request that ran; message for a
 * Gemini error. */
static void settle(struct batch *b, struct breq *q, enum fate fate, int status, json_t *body,
                   const char *message)
{
	size_t i = (size_t)(q - b->reqs);
	char id[MAX_ID + 32], rid[48];
	json_t *line = NULL, *result = NULL;

	q->fate = (unsigned char)fate;
	switch (fate) {
	case RQ_ANSWERED: b->answered++, B.st.answered++; break;
	case RQ_ERRORED: b->errored++, B.st.errored++; break;
	case RQ_EXPIRED: b->expired++, B.st.expired++; break;
	default: b->canceled++, B.st.canceled++; break;
	}
	if (b->fmt == FMT_OPENAI && b->in_progress_at <= 0)
		return; /* canceled while validating: OpenAI writes no file */
	if (b->fmt == FMT_OPENAI) {
		if (q->seq != 0) {
			snprintf(id, sizeof(id), "batch_req_fake%016" PRIx64, q->seq);
			snprintf(rid, sizeof(rid), "req_fake%016" PRIx64, q->seq);
			line = json_pack("{s:s, s:s, s:{s:i, s:s, s:o}, s:n}", "id", id,
			                 "custom_id", q->custom_id, "response", "status_code",
			                 status, "request_id", rid, "body", body, "error");
		} else {
			snprintf(id, sizeof(id), "batch_req_%s_%zu", b->id, i);
			line = json_pack(
			        "{s:s, s:s, s:n, s:{s:s, s:s}}", "id", id, "custom_id",
			        q->custom_id, "response", "error", "code",
			        fate == RQ_EXPIRED ? "batch_expired" : "batch_cancelled", "message",
			        fate == RQ_EXPIRED
			                ? "This request could not be executed before the "
			                  "completion window expired."
			                : "This request was not executed because the batch "
			                  "was cancelled.");
		}
		bytes_line(fate == RQ_ANSWERED ? &b->out : &b->err, line);
		return;
	}
	if (b->fmt == FMT_ANTHROPIC) {
		if (fate == RQ_ANSWERED)
			result = json_pack("{s:s, s:o}", "type", "succeeded", "message", body);
		else if (fate == RQ_ERRORED)
			result = json_pack("{s:s, s:o}", "type", "errored", "error", body);
		else
			result = json_pack("{s:s}", "type",
			                   fate == RQ_EXPIRED ? "expired" : "canceled");
		bytes_line(&b->out,
		           json_pack("{s:s, s:o}", "custom_id", q->custom_id, "result", result));
		return;
	}
	if (fate == RQ_ANSWERED) {
		result = json_pack("{s:o}", "response", body);
	} else if (fate == RQ_ERRORED) {
		json_decref(body);
		result = json_pack("{s:{s:i, s:s}}", "error", "code", rpc_code(status), "message",
		                   message);
	}
	if (result != NULL && q->meta != NULL && !b->rules.drop_metadata)
		json_object_set_new(result, "metadata", json_loads(q->meta, 0, NULL));
	if (result != NULL)
		q->inline_answer = json_dumps(result, JSON_COMPACT);
	json_decref(result);
}

/* Runs request q as its sync endpoint would; fail makes it a 500. */
static void run_one(struct batch *b, struct breq *q, bool fail)
{
	struct call c;
	struct answer a;
	json_t *doc, *body, *out;
	const char *message;
	int status;

	memset(&c, 0, sizeof(c));
	fake_call_init(&c, b->fmt, b->prefix, b->fmt == FMT_GEMINI ? b->model : NULL);
	c.anthropic_version = b->anthropic_version;
	c.anthropic_beta = b->anthropic_beta;
	doc = json_loadb(b->input + q->off, q->len, 0, NULL);
	body = b->fmt == FMT_OPENAI ? json_object_get(doc, "body") : doc;
	c.body = body;
	if (json_is_object(body))
		fake_parse(&c);
	else
		c.invalid = "We could not parse the JSON body of your request.";
	status = fake_batch_run(&c, fail, b->path, b->name, q->custom_id, &a, &q->seq);
	message = status == 200       ? NULL
	          : c.invalid != NULL ? c.invalid
	                              : fake_status_message(b->fmt, status);
	out = status == 200
	              ? fake_success_body(&c, &a)
	              : fake_error_body(b->fmt, status, message, c.invalid_code, c.invalid_param);
	if (out == NULL) { /* out of memory: the request failed */
		status = 500;
		message = fake_status_message(b->fmt, status);
		out = fake_error_body(b->fmt, status, message, NULL, NULL);
	}
	settle(b, q, status == 200 ? RQ_ANSWERED : RQ_ERRORED, status, out, message);
	free(a.text);
	json_decref(a.args);
	json_decref(doc);
}

/* Runs the request at position k of the running order: a forced error,
 * an expiry or its answer, as the rules' shares say. */
static void run_at(struct batch *b, size_t k)
{
	struct breq *q = &b->reqs[running_order(b->n, k)];
	bool fail =
	        spread(k + 1, b->rules.error_share) || (b->fmt == FMT_ANTHROPIC && b->rules.fail);

	if (!fail && spread(++b->ok_run, b->rules.expire_share)) {
		settle(b, q, RQ_EXPIRED, 0, NULL, NULL);
		return;
	}
	run_one(b, q, fail);
}

/* Ends b: the requests that did not run are expired or canceled (a failed
 * batch ran none), the outputs put together. */
static void batch_end(struct batch *b, enum ending ending)
{
	enum fate rest = ending == END_EXPIRED ? RQ_EXPIRED : RQ_CANCELED;
	struct bytes arr = {0};
	char name[MAX_ID + 32];

	if (ending != END_FAILED) {
		for (; b->next < b->n; b->next++)
			settle(b, &b->reqs[running_order(b->n, b->next)], rest, 0, NULL, NULL);
	}
	if (ending == END_COMPLETED && b->expired > 0)
		ending = END_EXPIRED;
	b->phase = PH_ENDED;
	b->ending = ending;
	b->ended_at = fake_now_unix();
	B.live--;
	if (b->fmt == FMT_OPENAI && b->out.len > 0) {
		snprintf(name, sizeof(name), "%s_output.jsonl", b->id);
		b->output_file =
		        file_add(b->prefix, b->model, "batch_output", name, b->out.p, b->out.len);
		memset(&b->out, 0, sizeof(b->out));
	}
	if (b->fmt == FMT_OPENAI && b->err.len > 0) {
		snprintf(name, sizeof(name), "%s_error.jsonl", b->id);
		b->error_file =
		        file_add(b->prefix, b->model, "batch_output", name, b->err.p, b->err.len);
		memset(&b->err, 0, sizeof(b->err));
	}
	if (b->output_file != NULL)
		b->output_file->batch = b;
	if (b->error_file != NULL)
		b->error_file->batch = b;
	if (b->fmt == FMT_GEMINI) {
		for (size_t i = 0; i < b->n; i++) {
			struct breq *q = &b->reqs[i];

			if (q->inline_answer == NULL)
				continue;
			bytes_add(&arr, arr.len == 0 ? "[" : ",", 1);
			bytes_add(&arr, q->inline_answer, strlen(q->inline_answer));
			free(q->inline_answer);
			q->inline_answer = NULL;
		}
		if (arr.len > 0)
			bytes_add(&arr, "]", 1);
		b->inline_array = arr.p;
		b->inline_len = arr.oom ? 0 : arr.len;
	}
	free(b->input_owned); /* the requests' text is not needed any more */
	b->input_owned = NULL;
	b->input = NULL;
}

/* When (ms after creation) the request at position k runs. */
static int64_t due_ms(const struct batch *b, size_t k)
{
	const struct fake_batch_rules *r = &b->rules;
	int64_t window = r->finish_ms - r->finalizing_ms - r->validating_ms;

	return r->validating_ms + (int64_t)(((double)window * (double)(k + 1)) / (double)b->n_run);
}

/* Moves b on to the clock's now, running at most *budget requests. */
static void advance(struct batch *b, int64_t now, size_t *budget)
{
	const struct fake_batch_rules *r = &b->rules;
	int64_t t = now - b->t0;

	if (b->phase == PH_ENDED)
		return;
	if (b->phase == PH_CANCELING) {
		if (now >= b->cancel_done)
			batch_end(b, END_CANCELED);
		return;
	}
	if (b->phase == PH_VALIDATING) {
		if ((b->fmt == FMT_OPENAI && !oa_validate(b, budget)) || t < r->validating_ms)
			return;
		if (b->errors != NULL || (r->fail && b->fmt != FMT_ANTHROPIC)) {
			batch_end(b, END_FAILED);
			return;
		}
		b->phase = PH_RUNNING;
		b->in_progress_at = fake_now_unix();
	}
	if (b->phase == PH_RUNNING) {
		while (b->next<b->n_run && * budget> 0 && due_ms(b, b->next) <= t) {
			run_at(b, b->next++);
			(*budget)--;
		}
		if (b->next < b->n_run || r->never_ends)
			return;
		if (r->expire) {
			if (t >= r->finish_ms)
				batch_end(b, END_EXPIRED);
			return;
		}
		if (t < r->finish_ms - r->finalizing_ms)
			return;
		b->phase = PH_FINALIZING;
		b->finalizing_at = fake_now_unix();
	}
	if (b->phase == PH_FINALIZING && t >= r->finish_ms)
		batch_end(b, END_COMPLETED);
}

/* The clock: every batch moved on each tick, at once again while requests
 * wait for their turn, stopped when every batch has ended. */
static void pump_tick(uv_timer_t *t)
{
	size_t budget = PUMP_BUDGET;
	int64_t now = clock_ms();

	for (size_t i = 0; i < B.n && B.live > 0; i++)
		advance(B.v[i], now, &budget);
	if (B.live == 0)
		uv_timer_stop(t);
	else if (budget == 0)
		uv_timer_start(t, pump_tick, 0, PUMP_MS);
}

static void pump_start(void)
{
	if (B.started && !B.closing && !uv_is_active((uv_handle_t *)&B.pump))
		uv_timer_start(&B.pump, pump_tick, PUMP_MS, PUMP_MS);
}

/* Starts a cancel: OpenAI and Anthropic cancel for batch_cancel_ms, Google
 * at once. Returns false when b has ended already. */
static bool batch_cancel(struct batch *b)
{
	b->cancels++;
	B.st.cancels++;
	if (b->phase == PH_ENDED || b->phase == PH_CANCELING)
		return false;
	b->cancel_at = fake_now_unix();
	b->cancel_done = clock_ms() + (b->fmt == FMT_GEMINI ? 0 : b->rules.cancel_ms);
	b->phase = PH_CANCELING;
	if (b->cancel_done <= clock_ms())
		batch_end(b, END_CANCELED);
	return true;
}

/* ------------------------------------------------------- calls in common */

static void send_error(struct conn *conn, enum format fmt, int status, const char *message,
                       const char *code, const char *param)
{
	fake_send_json(conn, (unsigned)status, fake_error_body(fmt, status, message, code, param),
	               0);
}

static bool an_version_ok(struct conn *conn, const struct req *r);

/* Opens a batch call: counted, its key checked (Anthropic's version too).
 * False when it was answered (401, 400). */
static bool call_open(struct conn *conn, const struct req *r, enum format fmt, const char *prefix,
                      const char *model, enum call_kind kind)
{
	B.st.calls[kind]++;
	return fake_batch_auth(conn, r, fmt, prefix, model) &&
	       (fmt != FMT_ANTHROPIC || an_version_ok(conn, r));
}

/* The fault rules of call kind (fake_batch_gate), counted. */
static enum fake_gate gate(struct conn *conn, enum format fmt, const char *prefix,
                           const char *model, enum call_kind kind, int64_t *delay_ms)
{
	enum fake_gate g = fake_batch_gate(conn, fmt, prefix, model, call_names[kind], delay_ms);

	if (g != GATE_GO)
		B.st.faults++;
	return g;
}

/* Answers doc (stolen) after delay_ms, or drops the connection when the
 * call was to drop. */
static void finish(struct conn *conn, enum fake_gate g, unsigned status, json_t *doc,
                   int64_t delay_ms)
{
	if (g == GATE_DROP) {
		json_decref(doc);
		fake_drop(conn);
		return;
	}
	fake_send_json(conn, status, doc, delay_ms);
}

/* Sends n pieces, or drops the connection when the call was to drop (the
 * owned pieces freed). */
static void finish_pieces(struct conn *conn, enum fake_gate g, const char *content_type,
                          struct fake_piece *p, size_t n)
{
	if (g == GATE_DROP) {
		for (size_t i = 0; i < n; i++) {
			if (p[i].owned)
				free((char *)p[i].data);
		}
		fake_drop(conn);
		return;
	}
	fake_send_pieces(conn, 200, content_type, p, n);
}

/* Moves b on to now without running requests (the clock runs them). */
static void catch_up(struct batch *b)
{
	size_t none = 0;

	advance(b, clock_ms(), &none);
}

/* Opens a call of kind on batch b, applies its fault rules and moves b on
 * to now. GATE_DONE when the call was answered. */
static enum fake_gate batch_call_open(struct conn *conn, const struct req *r, struct batch *b,
                                      enum call_kind kind, int64_t *delay_ms)
{
	enum fake_gate g;

	if (!call_open(conn, r, b->fmt, b->prefix, b->model, kind))
		return GATE_DONE;
	g = gate(conn, b->fmt, b->prefix, b->model, kind, delay_ms);
	if (g != GATE_DONE)
		catch_up(b);
	return g;
}

/* A list call's page: its batches as their API shows them, newest first. */
struct page {
	json_t *data;             /* new: the items */
	const char *first, *last; /* borrowed: the first and last ids, NULL when none */
	bool more;
	enum fake_gate g;
	int64_t delay_ms;
};

static bool list_call(struct conn *conn, const struct req *r, enum format fmt, const char *prefix,
                      long limit, const char *message, const char *after, const char *before,
                      struct page *pg);

static void created(struct conn *conn, const struct req *r, enum fake_gate g, struct batch *b,
                    int64_t delay_ms);

/* The body as a JSON value, NULL when it is not JSON. New reference. */
static json_t *body_json(const struct req *r)
{
	return r->len > 0 ? json_loadb(r->body, r->len, 0, NULL) : NULL;
}

/* A list's limit argument: dflt when absent, -1 when not in [1, max]. */
static long limit_arg(const struct req *r, const char *name, long dflt, long max)
{
	const char *s = fake_req_arg(r, name);
	char *end;
	long v;

	if (s == NULL)
		return dflt;
	v = strtol(s, &end, 10);
	return end == s || *end != '\0' || v < 1 || v > max ? -1 : v;
}

/* A page of the batches of fmt under prefix, newest first: those after
 * the one called after (NULL: from the newest), or those just before the
 * one called before; at most limit. Returns how many went into out (limit
 * of them); *more says whether others follow on the side paged to. */
static size_t batch_page(enum format fmt, const char *prefix, const char *after, const char *before,
                         size_t limit, struct batch **out, bool *more)
{
	struct batch **all = calloc(B.n + 1, sizeof(*all));
	size_t n = 0, start = 0, end, got = 0;

	*more = false;
	if (all == NULL)
		return 0;
	for (size_t i = B.n; i-- > 0;) {
		if (B.v[i]->fmt == fmt && strcmp(B.v[i]->prefix, prefix) == 0)
			all[n++] = B.v[i];
	}
	end = n;
	for (size_t i = 0; i < n; i++) {
		if (after != NULL && strcmp(all[i]->id, after) == 0)
			start = i + 1;
		if (before != NULL && strcmp(all[i]->id, before) == 0)
			end = i;
	}
	if (after != NULL && start == 0 && (n == 0 || strcmp(all[0]->id, after) != 0))
		start = n; /* an unknown cursor: nothing after it */
	if (before != NULL) {
		*more = end > limit && end - limit > start;
		start = end > limit && end - limit > start ? end - limit : start;
	} else {
		*more = end - start > limit;
	}
	for (size_t i = start; i < end && got < limit; i++)
		out[got++] = all[i];
	free(all);
	return got;
}

/* The next line of data[*pos, len): *start and *n (without its line
 * break); false at the end. */
static bool next_line(const char *data, size_t len, size_t *pos, size_t *start, size_t *n)
{
	const char *nl;
	size_t end;

	if (*pos >= len)
		return false;
	nl = memchr(data + *pos, '\n', len - *pos);
	end = nl != NULL ? (size_t)(nl - data) : len;
	*start = *pos;
	*n = end - *pos;
	if (*n > 0 && data[*start + *n - 1] == '\r')
		(*n)--;
	*pos = nl != NULL ? end + 1 : len;
	return true;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	}
	return true;
}

/* Appends the text of v (compact JSON) to arena and records where. */
static int arena_put(struct bytes *arena, json_t *v, size_t *off, size_t *len)
{
	*off = arena->len;
	if (json_dump_callback(v, bytes_dump, arena, JSON_COMPACT) != 0 || arena->oom)
		return -1;
	*len = arena->len - *off;
	return 0;
}

/* -------------------------------------------------------------- OpenAI */

/* One part of a multipart/form-data body. */
struct mpart {
	char name[64];
	char filename[256];
	const char *data;
	size_t len;
};

/* The value of attr (e.g. "name") in a header line's parameters, into out. */
static void header_param(const char *line, size_t n, const char *attr, char *out, size_t size)
{
	size_t alen = strlen(attr);

	out[0] = '\0';
	for (size_t i = 0; i + alen + 1 < n; i++) {
		const char *v, *end;

		if ((i > 0 && line[i - 1] != ' ' && line[i - 1] != ';') ||
		    strncasecmp(line + i, attr, alen) != 0 || line[i + alen] != '=')
			continue;
		v = line + i + alen + 1;
		if (*v == '"') {
			v++;
			end = memchr(v, '"', (size_t)(line + n - v));
		} else {
			end = v;
			while (end < line + n && *end != ';' && *end != ' ')
				end++;
		}
		if (end == NULL)
			return;
		snprintf(out, size, "%.*s", (int)(end - v), v);
		return;
	}
}

/* Splits a multipart/form-data body by boundary into up to max parts.
 * Returns the number of parts, -1 when the body is not one. */
static int multipart_parse(const char *body, size_t len, const char *boundary, struct mpart *parts,
                           size_t max)
{
	char delim[300];
	size_t dlen = (size_t)snprintf(delim, sizeof(delim), "--%s", boundary);
	const char *p = memmem(body, len, delim, dlen), *end = body + len;
	int n = 0;

	while (p != NULL) {
		const char *head, *head_end, *next;

		p += dlen;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return n; /* the closing delimiter */
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || (size_t)n == max)
			return -1;
		head = p + 2;
		head_end = memmem(head, (size_t)(end - head), "\r\n\r\n", 4);
		if (head_end == NULL)
			return -1;
		next = memmem(head_end + 4, (size_t)(end - head_end - 4), delim, dlen);
		if (next == NULL || next - head_end - 4 < 2 || next[-2] != '\r' || next[-1] != '\n')
			return -1;
		memset(&parts[n], 0, sizeof(parts[n]));
		for (const char *line = head; line < head_end;) {
			const char *eol = memmem(line, (size_t)(head_end + 2 - line), "\r\n", 2);
			size_t ln = (size_t)(eol - line);

			if (ln > 20 && strncasecmp(line, "Content-Disposition:", 20) == 0) {
				header_param(line, ln, "name", parts[n].name,
				             sizeof(parts[n].name));
				header_param(line, ln, "filename", parts[n].filename,
				             sizeof(parts[n].filename));
			}
			line = eol + 2;
		}
		parts[n].data = head_end + 4;
		parts[n].len = (size_t)(next - 2 - parts[n].data);
		n++;
		p = next;
	}
	return -1;
}

static const struct mpart *mpart_find(const struct mpart *parts, int n, const char *name)
{
	for (int i = 0; i < n; i++) {
		if (strcmp(parts[i].name, name) == 0)
			return &parts[i];
	}
	return NULL;
}

/* The model of the first request of a JSONL batch file, "" when none. */
static void first_model(const char *data, size_t len, char *out, size_t size)
{
	size_t pos = 0, start, n;

	out[0] = '\0';
	while (next_line(data, len, &pos, &start, &n)) {
		json_t *line;
		const char *m;

		if (blank(data + start, n))
			continue;
		line = json_loadb(data + start, n, 0, NULL);
		m = json_string_value(json_object_get(json_object_get(line, "body"), "model"));
		snprintf(out, size, "%s", m != NULL ? m : "");
		json_decref(line);
		return;
	}
}

/* POST <prefix>/files: a batch input file, checked to be JSONL. */
static void oa_upload(struct conn *conn, const struct req *r, const char *prefix)
{
	const char *ct = fake_req_header(r, "Content-Type");
	char boundary[256] = "", model[256], msg[160];
	struct mpart parts[8];
	const struct mpart *purpose, *file;
	int n = -1;
	size_t pos = 0, start, len, line = 0;
	int64_t delay;
	enum fake_gate g;
	struct file *f;
	char *copy;

	if (ct != NULL && strncasecmp(ct, "multipart/form-data", 19) == 0)
		header_param(ct, strlen(ct), "boundary", boundary, sizeof(boundary));
	if (boundary[0] != '\0')
		n = multipart_parse(r->body, r->len, boundary, parts, 8);
	file = n > 0 ? mpart_find(parts, n, "file") : NULL;
	purpose = n > 0 ? mpart_find(parts, n, "purpose") : NULL;
	if (file != NULL)
		first_model(file->data, file->len, model, sizeof(model));
	else
		model[0] = '\0';
	if (!call_open(conn, r, FMT_OPENAI, prefix, model, CALL_FILES))
		return;
	if (r->too_large) {
		send_error(conn, FMT_OPENAI, 413, "Request body too large", NULL, NULL);
		return;
	}
	if (n < 0) {
		send_error(conn, FMT_OPENAI, 400,
		           "Invalid request: expected a multipart/form-data body with a boundary.",
		           NULL, NULL);
		return;
	}
	if (purpose == NULL || file == NULL) {
		snprintf(msg, sizeof(msg), "Missing required parameter: '%s'.",
		         file == NULL ? "file" : "purpose");
		send_error(conn, FMT_OPENAI, 400, msg, "missing_required_parameter",
		           file == NULL ? "file" : "purpose");
		return;
	}
	if (purpose->len != 5 || memcmp(purpose->data, "batch", 5) != 0) {
		send_error(conn, FMT_OPENAI, 400,
		           "Invalid value for 'purpose': the fake provider takes 'batch' only.",
		           "invalid_value", "purpose");
		return;
	}
	if (file->len > OPENAI_MAX_FILE_BYTES) {
		send_error(conn, FMT_OPENAI, 400,
		           "The file is too large: batch input files may be up to 200 MB.", NULL,
		           "file");
		return;
	}
	while (next_line(file->data, file->len, &pos, &start, &len)) {
		json_t *doc;
		bool ok;

		line++;
		if (blank(file->data + start, len))
			continue;
		doc = json_loadb(file->data + start, len, 0, NULL);
		ok = json_is_object(doc);
		json_decref(doc);
		if (!ok) {
			snprintf(
			        msg, sizeof(msg),
			        "Invalid file format for Batch API. Line %zu is not a JSON object.",
			        line);
			send_error(conn, FMT_OPENAI, 400, msg, "invalid_file_format", "file");
			return;
		}
	}
	g = gate(conn, FMT_OPENAI, prefix, model, CALL_FILES, &delay);
	if (g == GATE_DONE)
		return;
	copy = malloc(file->len + 1);
	if (copy != NULL) {
		memcpy(copy, file->data, file->len);
		copy[file->len] = '\0';
	}
	f = copy != NULL ? file_add(prefix, model, "batch",
	                            file->filename[0] != '\0' ? file->filename : "upload.jsonl",
	                            copy, file->len)
	                 : NULL;
	if (f == NULL) {
		fake_drop(conn); /* out of memory */
		return;
	}
	B.st.uploads++;
	finish(conn, g, 200, file_json(f), delay);
}

static void oa_error_line(json_t *errors, const char *code, const char *message, const char *param,
                          size_t line)
{
	if (json_array_size(errors) < OPENAI_MAX_ERRORS)
		json_array_append_new(
		        errors, json_pack("{s:s, s:s, s:s?, s:o}", "code", code, "message", message,
		                          "param", param, "line",
		                          line > 0 ? json_integer((json_int_t)line) : json_null()));
}

/* Checks one line of the input file as the batch's validation does, into
 * q; what fails goes to b->errors. */
static void oa_check_line(struct batch *b, struct breq *q)
{
	json_t *doc = json_loadb(b->input + q->off, q->len, 0, NULL);
	json_t *body = json_object_get(doc, "body");
	const char *cid = json_string_value(json_object_get(doc, "custom_id"));
	const char *model = json_string_value(json_object_get(body, "model"));
	char msg[512];

	q->custom_id = strdup(cid != NULL ? cid : "");
	if (cid == NULL) {
		oa_error_line(b->errors, "missing_required_parameter",
		              "Missing required parameter: 'custom_id'.", "custom_id", q->line);
	} else if (q->custom_id == NULL || strset_add(&b->ids, q->custom_id, b->n) != 0) {
		oa_error_line(
		        b->errors, "duplicate_custom_id",
		        "The custom_id for this request is a duplicate of another request. The "
		        "custom_id parameter must be unique for each request in a batch.",
		        "custom_id", q->line);
	} else if (!fake_is(json_object_get(doc, "method"), "POST")) {
		oa_error_line(b->errors, "invalid_value",
		              "The method of each request must be 'POST'.", "method", q->line);
	} else if (!fake_is(json_object_get(doc, "url"), OPENAI_ENDPOINT)) {
		oa_error_line(
		        b->errors, "invalid_url",
		        "The URL provided for this request does not match the batch endpoint.",
		        "url", q->line);
	} else if (!json_is_object(body) || model == NULL) {
		oa_error_line(b->errors, "missing_required_parameter",
		              "Each request must have a body with a model.", "body", q->line);
	} else if (strcmp(model, b->model) != 0) {
		snprintf(
		        msg, sizeof(msg),
		        "The provided model '%.128s' does not match the model of the batch's other "
		        "requests ('%.128s'): a batch takes one model.",
		        model, b->model);
		oa_error_line(b->errors, "mismatched_model", msg, "body.model", q->line);
	}
	json_decref(doc);
}

/* Validates up to *budget lines of b's input file; true once every line
 * is checked (then b->errors says whether the batch fails). */
static bool oa_validate(struct batch *b, size_t *budget)
{
	char msg[128];

	if (b->validated)
		return true;
	while (b->checked<b->n && * budget> 0) {
		oa_check_line(b, &b->reqs[b->checked++]);
		(*budget)--;
	}
	if (b->checked < b->n)
		return false;
	if (b->n == 0)
		oa_error_line(b->errors, "empty_file", "The batch input file is empty.", NULL, 0);
	if (b->n > OPENAI_MAX_REQUESTS) {
		snprintf(msg, sizeof(msg),
		         "The batch input file holds %zu requests; a batch takes up to 50,000.",
		         b->n);
		oa_error_line(b->errors, "too_many_requests", msg, NULL, 0);
	}
	if (b->rules.fail)
		oa_error_line(b->errors, "batch_failed",
		              "The batch failed (fake_provider: batch_fail).", NULL, 0);
	if (json_array_size(b->errors) == 0) {
		json_decref(b->errors);
		b->errors = NULL;
	}
	free(b->ids.v);
	b->ids.v = NULL;
	b->validated = true;
	return true;
}

/* A batch of input file f, whose lines the clock validates while the batch
 * is validating (what fails makes it fail, as OpenAI's batches do). NULL
 * when out of memory. */
static struct batch *oa_batch_new(const struct req *r, const char *prefix, struct file *f,
                                  json_t *metadata)
{
	size_t n = 0, pos = 0, start, len, line = 0, k = 0;
	struct batch *b;

	while (next_line(f->data, f->len, &pos, &start, &len))
		n += !blank(f->data + start, len);
	b = batch_new(FMT_OPENAI, prefix, f->model, r->path, n);
	if (b == NULL)
		return NULL;
	b->errors = json_array();
	b->input = f->data;
	b->input_file = f;
	b->metadata = json_is_object(metadata) ? json_deep_copy(metadata) : NULL;
	for (pos = 0; next_line(f->data, f->len, &pos, &start, &len);) {
		line++;
		if (blank(f->data + start, len))
			continue;
		b->reqs[k].off = start;
		b->reqs[k].len = len;
		b->reqs[k++].line = line;
	}
	return b;
}

static const char *oa_status(const struct batch *b)
{
	switch (b->phase) {
	case PH_VALIDATING: return "validating";
	case PH_RUNNING: return "in_progress";
	case PH_FINALIZING: return "finalizing";
	case PH_CANCELING: return "cancelling";
	default: break;
	}
	switch (b->ending) {
	case END_COMPLETED: return "completed";
	case END_FAILED: return "failed";
	case END_EXPIRED: return "expired";
	default: return "cancelled";
	}
}

static json_t *oa_batch_json(const struct batch *b)
{
	bool ended = b->phase == PH_ENDED;
	json_t *o =
	        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id", b->id, "object",
	                  "batch", "endpoint", OPENAI_ENDPOINT, "input_file_id", b->input_file->id,
	                  "completion_window", "24h", "status", oa_status(b), "created_at",
	                  (json_int_t)b->created, "expires_at", (json_int_t)b->created + DAY_S);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "errors",
	                    b->errors != NULL
	                            ? json_pack("{s:s, s:O}", "object", "list", "data", b->errors)
	                            : json_null());
	json_object_set_new(o, "output_file_id",
	                    b->output_file != NULL ? json_string(b->output_file->id) : json_null());
	json_object_set_new(o, "error_file_id",
	                    b->error_file != NULL ? json_string(b->error_file->id) : json_null());
	json_object_set_new(o, "in_progress_at", unix_json(b->in_progress_at));
	json_object_set_new(o, "finalizing_at", unix_json(b->finalizing_at));
	json_object_set_new(o, "completed_at",
	                    unix_json(ended && b->ending == END_COMPLETED ? b->ended_at : 0));
	json_object_set_new(o, "failed_at",
	                    unix_json(ended && b->ending == END_FAILED ? b->ended_at : 0));
	json_object_set_new(o, "expired_at",
	                    unix_json(ended && b->ending == END_EXPIRED ? b->ended_at : 0));
	json_object_set_new(o, "cancelling_at", unix_json(b->cancel_at));
	json_object_set_new(o, "cancelled_at",
	                    unix_json(ended && b->ending == END_CANCELED ? b->ended_at : 0));
	json_object_set_new(
	        o, "request_counts",
	        json_pack("{s:I, s:I, s:I}", "total",
	                  (json_int_t)(b->in_progress_at > 0 ? b->n : 0), "completed",
	                  (json_int_t)b->answered, "failed",
	                  (json_int_t)(b->in_progress_at > 0 ? b->errored + b->expired + b->canceled
	                                                     : 0)));
	json_object_set_new(o, "metadata",
	                    b->metadata != NULL ? json_incref(b->metadata) : json_null());
	return o;
}

/* Checks metadata as OpenAI does: up to 16 pairs, keys up to 64
 * characters, string values up to 512. */
static bool oa_metadata_ok(json_t *metadata)
{
	const char *key;
	json_t *v;

	if (metadata == NULL || json_is_null(metadata))
		return true;
	if (!json_is_object(metadata) || json_object_size(metadata) > 16)
		return false;
	json_object_foreach (metadata, key, v) {
		if (strlen(key) > 64 || !json_is_string(v) || json_string_length(v) > 512)
			return false;
	}
	return true;
}

/* POST <prefix>/batches. */
static void oa_create(struct conn *conn, const struct req *r, const char *prefix)
{
	json_t *doc = body_json(r);
	json_t *fid = json_object_get(doc, "input_file_id");
	json_t *endpoint = json_object_get(doc, "endpoint");
	json_t *window = json_object_get(doc, "completion_window");
	struct file *f = json_is_string(fid) ? file_find(prefix, json_string_value(fid)) : NULL;
	char msg[256];
	int64_t delay;
	enum fake_gate g;

	if (!call_open(conn, r, FMT_OPENAI, prefix, f != NULL ? f->model : "", CALL_CREATE))
		goto out;
	if (!json_is_object(doc)) {
		send_error(conn, FMT_OPENAI, 400,
		           "We could not parse the JSON body of your request.", NULL, NULL);
	} else if (!json_is_string(fid) || !json_is_string(endpoint) || !json_is_string(window)) {
		snprintf(msg, sizeof(msg), "Missing required parameter: '%s'.",
		         !json_is_string(fid)        ? "input_file_id"
		         : !json_is_string(endpoint) ? "endpoint"
		                                     : "completion_window");
		send_error(conn, FMT_OPENAI, 400, msg, "missing_required_parameter",
		           !json_is_string(fid)        ? "input_file_id"
		           : !json_is_string(endpoint) ? "endpoint"
		                                       : "completion_window");
	} else if (f == NULL) {
		snprintf(msg, sizeof(msg), "No such File object: %.80s", json_string_value(fid));
		send_error(conn, FMT_OPENAI, 404, msg, NULL, "input_file_id");
	} else if (strcmp(f->purpose, "batch") != 0) {
		snprintf(msg, sizeof(msg), "The file %s was not uploaded with purpose 'batch'.",
		         f->id);
		send_error(conn, FMT_OPENAI, 400, msg, "invalid_value", "input_file_id");
	} else if (strcmp(json_string_value(endpoint), OPENAI_ENDPOINT) != 0) {
		snprintf(msg, sizeof(msg),
		         "Invalid value: '%.64s'. The fake provider batches '" OPENAI_ENDPOINT
		         "' only.",
		         json_string_value(endpoint));
		send_error(conn, FMT_OPENAI, 400, msg, "invalid_value", "endpoint");
	} else if (strcmp(json_string_value(window), "24h") != 0) {
		snprintf(msg, sizeof(msg), "Invalid value: '%.32s'. Supported values are: '24h'.",
		         json_string_value(window));
		send_error(conn, FMT_OPENAI, 400, msg, "invalid_value", "completion_window");
	} else if (!oa_metadata_ok(json_object_get(doc, "metadata"))) {
		send_error(conn, FMT_OPENAI, 400,
		           "Invalid 'metadata': up to 16 pairs, keys up to 64 characters, string "
		           "values up to 512.",
		           "invalid_value", "metadata");
	} else {
		g = gate(conn, FMT_OPENAI, prefix, f->model, CALL_CREATE, &delay);
		if (g != GATE_DONE)
			created(conn, r, g,
			        oa_batch_new(r, prefix, f, json_object_get(doc, "metadata")),
			        delay);
	}
out:
	json_decref(doc);
}

/* GET <prefix>/batches/{id}, POST .../{id}/cancel. */
static void oa_batch_call(struct conn *conn, const struct req *r, struct batch *b,
                          enum call_kind kind)
{
	char msg[128];
	int64_t delay;
	enum fake_gate g;

	g = batch_call_open(conn, r, b, kind, &delay);
	if (g == GATE_DONE)
		return;
	if (kind == CALL_GET) {
		b->gets++;
	} else if (!batch_cancel(b) && b->phase == PH_ENDED && b->ending != END_CANCELED) {
		snprintf(msg, sizeof(msg), "Cannot cancel a batch with status '%s'.", oa_status(b));
		finish(conn, g, 400, fake_error_body(FMT_OPENAI, 400, msg, "invalid_state", NULL),
		       delay);
		return;
	}
	finish(conn, g, 200, oa_batch_json(b), delay);
}

/* GET <prefix>/batches?limit&after: newest first. */
static void oa_list(struct conn *conn, const struct req *r, const char *prefix)
{
	struct page pg;

	if (!list_call(conn, r, FMT_OPENAI, prefix, limit_arg(r, "limit", 20, 100),
	               "Invalid 'limit': expected an integer from 1 to 100.",
	               fake_req_arg(r, "after"), NULL, &pg))
		return;
	finish(conn, pg.g, 200,
	       json_pack("{s:s, s:o, s:s?, s:s?, s:b}", "object", "list", "data", pg.data,
	                 "first_id", pg.first, "last_id", pg.last, "has_more", pg.more),
	       pg.delay_ms);
}

/* GET <prefix>/files/{id}[/content]. */
static void oa_file_call(struct conn *conn, const struct req *r, const char *prefix, const char *id,
                         bool content)
{
	struct file *f = file_find(prefix, id);
	enum call_kind kind = content ? CALL_RESULTS : CALL_GET;
	struct fake_piece piece;
	char msg[160];
	int64_t delay;
	enum fake_gate g;

	if (!call_open(conn, r, FMT_OPENAI, prefix, f != NULL ? f->model : "", kind))
		return;
	if (f == NULL) {
		snprintf(msg, sizeof(msg), "No such File object: %s", id);
		send_error(conn, FMT_OPENAI, 404, msg, NULL, "id");
		return;
	}
	g = gate(conn, FMT_OPENAI, prefix, f->model, kind, &delay);
	if (g == GATE_DONE)
		return;
	if (!content) {
		finish(conn, g, 200, file_json(f), delay);
		return;
	}
	if (f->batch != NULL) {
		f->batch->result_gets++;
		B.st.result_gets++;
	}
	piece = (struct fake_piece){f->data, f->len, false};
	finish_pieces(conn, g, "application/octet-stream", &piece, 1);
}

/* ----------------------------------------------------------- Anthropic */

/* Checks the anthropic-version header as every Anthropic call does;
 * answers 400 itself and returns false when it fails. */
static bool an_version_ok(struct conn *conn, const struct req *r)
{
	const char *v = fake_req_header(r, "anthropic-version");

	if (v != NULL && (strcmp(v, "2023-06-01") == 0 || strcmp(v, "2023-01-01") == 0))
		return true;
	send_error(conn, FMT_ANTHROPIC, 400,
	           v == NULL ? "anthropic-version: header is required"
	                     : "anthropic-version: invalid version",
	           NULL, NULL);
	return false;
}

static json_t *an_batch_json(const struct batch *b, const struct req *r)
{
	const char *host = fake_req_header(r, "Host");
	size_t done = b->answered + b->errored + b->expired + b->canceled;
	char url[1024];
	json_t *o;

	snprintf(url, sizeof(url), "http://%s%s/messages/batches/%s/results",
	         host != NULL ? host : "127.0.0.1", b->prefix, b->id);
	o = json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I}, s:o, s:o, s:o, s:n, s:o, s:o}",
	              "id", b->id, "type", "message_batch", "processing_status",
	              b->phase == PH_ENDED       ? "ended"
	              : b->phase == PH_CANCELING ? "canceling"
	                                         : "in_progress",
	              "request_counts", "processing", (json_int_t)(b->n - done), "succeeded",
	              (json_int_t)b->answered, "errored", (json_int_t)b->errored, "canceled",
	              (json_int_t)b->canceled, "expired", (json_int_t)b->expired, "ended_at",
	              time_json(b->ended_at, 6), "created_at", time_json(b->created, 6),
	              "expires_at", time_json(b->created + DAY_S, 6), "archived_at",
	              "cancel_initiated_at", time_json(b->cancel_at, 6), "results_url",
	              b->phase == PH_ENDED ? json_string(url) : json_null());
	return o;
}

/* The message of the first thing wrong with requests, NULL when nothing;
 * the custom_ids' uniqueness checked into ids. */
static const char *an_check(json_t *requests, struct strset *ids, char *msg, size_t size)
{
	size_t n = json_array_size(requests), i;
	json_t *item;

	if (requests == NULL)
		return "requests: Field required";
	if (!json_is_array(requests))
		return "requests: Input should be a valid list";
	if (n == 0)
		return "requests: List should have at least 1 item after validation, not 0";
	if (n > ANTHROPIC_MAX_REQUESTS) {
		snprintf(
		        msg, size,
		        "requests: List should have at most 100000 items after validation, not %zu",
		        n);
		return msg;
	}
	json_array_foreach (requests, i, item) {
		json_t *cid = json_object_get(item, "custom_id");
		json_t *params = json_object_get(item, "params");

		if (!json_is_object(item))
			snprintf(msg, size, "requests.%zu: Input should be a valid dictionary", i);
		else if (cid == NULL)
			snprintf(msg, size, "requests.%zu.custom_id: Field required", i);
		else if (!fake_name_ok(json_string_value(cid), 64))
			snprintf(msg, size,
			         "requests.%zu.custom_id: String should match pattern "
			         "'^[a-zA-Z0-9_-]{1,64}$'",
			         i);
		else if (params == NULL)
			snprintf(msg, size, "requests.%zu.params: Field required", i);
		else if (!json_is_object(params))
			snprintf(msg, size,
			         "requests.%zu.params: Input should be a valid dictionary", i);
		else if (strset_add(ids, json_string_value(cid), n) != 0)
			snprintf(
			        msg, size,
			        "requests: custom_id values must be unique within a Message Batch; "
			        "'%s' is used more than once",
			        json_string_value(cid));
		else
			continue;
		return msg;
	}
	return NULL;
}

/* A batch of requests (checked), each request's params kept as text. */
static struct batch *an_batch_new(const struct req *r, const char *prefix, const char *model,
                                  json_t *requests)
{
	struct batch *b =
	        batch_new(FMT_ANTHROPIC, prefix, model, r->path, json_array_size(requests));
	struct bytes arena = {0};
	json_t *item;
	size_t i;

	if (b == NULL)
		return NULL;
	b->anthropic_version = dup_or_null(fake_req_header(r, "anthropic-version"));
	b->anthropic_beta = dup_or_null(fake_req_header(r, "anthropic-beta"));
	json_array_foreach (requests, i, item) {
		struct breq *q = &b->reqs[i];

		q->custom_id = strdup(json_string_value(json_object_get(item, "custom_id")));
		if (q->custom_id == NULL ||
		    arena_put(&arena, json_object_get(item, "params"), &q->off, &q->len) != 0)
			arena.oom = true;
	}
	b->input = b->input_owned = arena.p;
	if (arena.oom || b->anthropic_version == NULL) {
		/* out of memory: a batch whose requests fail when they run */
		b->rules.fail = true;
	}
	return b;
}

/* POST <prefix>/messages/batches. */
static void an_create(struct conn *conn, const struct req *r, const char *prefix)
{
	json_t *doc = body_json(r);
	json_t *requests = json_object_get(doc, "requests");
	const char *model = json_string_value(
	        json_object_get(json_object_get(json_array_get(requests, 0), "params"), "model"));
	struct strset ids = {NULL, 0};
	const char *bad;
	char msg[256];
	int64_t delay;
	enum fake_gate g;

	if (model == NULL)
		model = "";
	if (!call_open(conn, r, FMT_ANTHROPIC, prefix, model, CALL_CREATE))
		goto out;
	if (r->too_large) {
		send_error(conn, FMT_ANTHROPIC, 413, fake_status_message(FMT_ANTHROPIC, 413), NULL,
		           NULL);
		goto out;
	}
	if (!json_is_object(doc)) {
		send_error(conn, FMT_ANTHROPIC, 400,
		           "There was an issue with the JSON body of your request.", NULL, NULL);
		goto out;
	}
	bad = an_check(requests, &ids, msg, sizeof(msg));
	if (bad != NULL) {
		send_error(conn, FMT_ANTHROPIC, 400, bad, NULL, NULL);
		goto out;
	}
	g = gate(conn, FMT_ANTHROPIC, prefix, model, CALL_CREATE, &delay);
	if (g != GATE_DONE)
		created(conn, r, g, an_batch_new(r, prefix, model, requests), delay);
out:
	free(ids.v);
	json_decref(doc);
}

/* GET <prefix>/messages/batches/{id}[/results], POST .../{id}/cancel. */
static void an_batch_call(struct conn *conn, const struct req *r, const char *prefix,
                          const char *id, enum call_kind kind)
{
	struct batch *b = batch_find(FMT_ANTHROPIC, prefix, id);
	struct fake_piece piece;
	char msg[MAX_ID + 128];
	int64_t delay;
	enum fake_gate g;

	if (b == NULL) {
		snprintf(msg, sizeof(msg), "Message Batch %s not found", id);
		if (call_open(conn, r, FMT_ANTHROPIC, prefix, "", kind))
			send_error(conn, FMT_ANTHROPIC, 404, msg, NULL, NULL);
		return;
	}
	g = batch_call_open(conn, r, b, kind, &delay);
	if (g == GATE_DONE)
		return;
	if (kind == CALL_GET) {
		b->gets++;
	} else if (kind == CALL_CANCEL) {
		batch_cancel(b);
	} else if (b->phase != PH_ENDED) {
		snprintf(msg, sizeof(msg),
		         "Message Batch %s is still processing: its results are "
		         "available once it has ended",
		         id);
		finish(conn, g, 400, fake_error_body(FMT_ANTHROPIC, 400, msg, NULL, NULL), delay);
		return;
	} else {
		b->result_gets++;
		B.st.result_gets++;
		piece = (struct fake_piece){b->out.p != NULL ? b->out.p : "", b->out.len, false};
		finish_pieces(conn, g, "application/x-jsonl", &piece, 1);
		return;
	}
	finish(conn, g, 200, an_batch_json(b, r), delay);
}

/* GET <prefix>/messages/batches?limit&after_id&before_id: newest first. */
static void an_list(struct conn *conn, const struct req *r, const char *prefix)
{
	struct page pg;

	if (!list_call(conn, r, FMT_ANTHROPIC, prefix, limit_arg(r, "limit", 20, 1000),
	               "limit: Input should be greater than or equal to 1 and at most 1000",
	               fake_req_arg(r, "after_id"), fake_req_arg(r, "before_id"), &pg))
		return;
	finish(conn, pg.g, 200,
	       json_pack("{s:o, s:b, s:s?, s:s?}", "data", pg.data, "has_more", pg.more, "first_id",
	                 pg.first, "last_id", pg.last),
	       pg.delay_ms);
}

/* --------------------------------------------------------------- Gemini */

static const char *ge_state(const struct batch *b)
{
	if (b->phase == PH_VALIDATING)
		return "BATCH_STATE_PENDING";
	if (b->phase != PH_ENDED)
		return "BATCH_STATE_RUNNING";
	switch (b->ending) {
	case END_COMPLETED: return "BATCH_STATE_SUCCEEDED";
	case END_FAILED: return "BATCH_STATE_FAILED";
	case END_EXPIRED: return "BATCH_STATE_EXPIRED";
	default: return "BATCH_STATE_CANCELLED";
	}
}

/* An int64 count as proto3 JSON writes it: a string, left out when 0. */
static void ge_count(json_t *obj, const char *key, size_t n)
{
	char buf[24];

	if (n == 0)
		return;
	snprintf(buf, sizeof(buf), "%zu", n);
	json_object_set_new(obj, key, json_string(buf));
}

/* The GenerateContentBatch of b, without its output. */
static json_t *ge_metadata(const struct batch *b)
{
	bool ended = b->phase == PH_ENDED;
	double updated = b->created;
	json_t *stats = json_object(), *m;
	char model[300];

	snprintf(model, sizeof(model), "models/%s", b->model);
	ge_count(stats, "requestCount", b->n);
	ge_count(stats, "successfulRequestCount", b->answered);
	ge_count(stats, "failedRequestCount", b->errored);
	ge_count(stats, "pendingRequestCount",
	         ended ? 0 : b->n - b->answered - b->errored - b->expired - b->canceled);
	if (b->in_progress_at > updated)
		updated = b->in_progress_at;
	if (b->ended_at > updated)
		updated = b->ended_at;
	m = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:s}", "@type", GEMINI_BATCH_TYPE,
	              "model", model, "displayName", b->display_name, "createTime",
	              time_json(b->created, 9), "updateTime", time_json(updated, 9), "batchStats",
	              stats, "state", ge_state(b), "name", b->name);
	if (m != NULL && ended)
		json_object_set_new(m, "endTime", time_json(b->ended_at, 9));
	return m;
}

/* The operation of b without its metadata: name, done, error. */
static json_t *ge_operation(const struct batch *b)
{
	json_t *op = json_pack("{s:s}", "name", b->name);
	int code = 0;
	const char *msg = NULL;

	if (op == NULL || b->phase != PH_ENDED)
		return op;
	json_object_set_new(op, "done", json_true());
	if (b->ending == END_FAILED) {
		code = 13;
		msg = "The batch failed (fake_provider: batch_fail).";
	} else if (b->ending == END_CANCELED) {
		code = 1;
		msg = "The batch was cancelled.";
	} else if (b->ending == END_EXPIRED) {
		code = 4;
		msg = "The batch expired before all of its requests ran.";
	}
	if (code != 0)
		json_object_set_new(op, "error",
		                    json_pack("{s:i, s:s}", "code", code, "message", msg));
	return op;
}

/* The whole operation as a JSON value (no output): for a list, or while
 * there is no output. */
static json_t *ge_operation_json(const struct batch *b)
{
	json_t *op = ge_operation(b);

	if (op != NULL)
		json_object_set_new(op, "metadata", ge_metadata(b));
	return op;
}

/* Drops the closing brace of a compact JSON object's text. */
static char *unclose(char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n > 0 && s[n - 1] == '}')
		s[n - 1] = '\0';
	return s;
}

/* GET <prefix>/batches/{id} of a Gemini batch: the operation, with the
 * stored answers written twice (metadata.output and, SUCCEEDED, response)
 * without being copied. */
static void ge_send(struct conn *conn, enum fake_gate g, const struct batch *b, int64_t delay)
{
	static const char out_open[] = ",\"output\":{\"inlinedResponses\":{\"inlinedResponses\":";
	static const char resp_open[] = "}}},\"response\":{\"@type\":\"" GEMINI_OUTPUT_TYPE
	                                "\",\"inlinedResponses\":{\"inlinedResponses\":";
	struct fake_piece p[6];
	json_t *opj, *metaj;
	char *op, *meta, *head;
	size_t n = 0;

	if (b->phase != PH_ENDED || b->inline_len == 0) {
		finish(conn, g, 200, ge_operation_json(b), delay);
		return;
	}
	opj = ge_operation(b);
	metaj = ge_metadata(b);
	op = unclose(json_dumps(opj, JSON_COMPACT));
	meta = unclose(json_dumps(metaj, JSON_COMPACT));
	json_decref(opj);
	json_decref(metaj);
	head = op != NULL && meta != NULL
	               ? malloc(strlen(op) + strlen(meta) + sizeof(out_open) + 16)
	               : NULL;
	if (head == NULL) {
		free(op);
		free(meta);
		fake_drop(conn);
		return;
	}
	sprintf(head, "%s,\"metadata\":%s%s", op, meta, out_open);
	free(op);
	free(meta);
	p[n++] = (struct fake_piece){head, strlen(head), true};
	p[n++] = (struct fake_piece){b->inline_array, b->inline_len, false};
	if (b->ending == END_COMPLETED) {
		p[n++] = (struct fake_piece){resp_open, sizeof(resp_open) - 1, false};
		p[n++] = (struct fake_piece){b->inline_array, b->inline_len, false};
		p[n++] = (struct fake_piece){"}}}", 3, false};
	} else {
		p[n++] = (struct fake_piece){"}}}}", 4, false};
	}
	finish_pieces(conn, g, "application/json; charset=UTF-8", p, n);
}

/* proto3 JSON takes a field in lowerCamelCase or as its proto name. */
static json_t *gget(json_t *obj, const char *camel, const char *snake)
{
	json_t *v = json_object_get(obj, camel);

	return v != NULL ? v : json_object_get(obj, snake);
}

/* The message of the first thing wrong with the batch's input, NULL when
 * nothing. */
static const char *ge_check(json_t *batch, json_t *requests, char *msg, size_t size)
{
	json_t *input = gget(batch, "inputConfig", "input_config"), *item;
	const char *dn = json_string_value(gget(batch, "displayName", "display_name"));
	size_t i;

	if (!json_is_object(batch))
		return "* BatchGenerateContentRequest.batch: batch is required";
	if (dn == NULL || dn[0] == '\0')
		return "* BatchGenerateContentRequest.batch.display_name: display_name is required";
	if (gget(input, "fileName", "file_name") != NULL)
		return "The fake provider takes inline requests only "
		       "(batch.input_config.requests), not an input file.";
	if (!json_is_array(requests) || json_array_size(requests) == 0)
		return "* BatchGenerateContentRequest.batch.input_config: the batch has no "
		       "requests "
		       "(input_config.requests.requests)";
	json_array_foreach (requests, i, item) {
		json_t *meta = json_object_get(item, "metadata");

		if (!json_is_object(json_object_get(item, "request")))
			snprintf(msg, size,
			         "* "
			         "BatchGenerateContentRequest.batch.input_config.requests.requests["
			         "%zu]"
			         ".request: request is required",
			         i);
		else if (meta != NULL && !json_is_object(meta))
			snprintf(msg, size,
			         "Invalid JSON payload received. Invalid value at "
			         "'batch.input_config.requests.requests[%zu].metadata'",
			         i);
		else
			continue;
		return msg;
	}
	return NULL;
}

/* A batch of requests (checked), each request and its metadata kept as
 * text. */
static struct batch *ge_batch_new(const struct req *r, const char *prefix, const char *model,
                                  json_t *batch, json_t *requests)
{
	struct batch *b = batch_new(FMT_GEMINI, prefix, model, r->path, json_array_size(requests));
	struct bytes arena = {0};
	json_t *item;
	size_t i;

	if (b == NULL)
		return NULL;
	b->display_name = strdup(json_string_value(gget(batch, "displayName", "display_name")));
	json_array_foreach (requests, i, item) {
		struct breq *q = &b->reqs[i];
		json_t *meta = json_object_get(item, "metadata");

		if (arena_put(&arena, json_object_get(item, "request"), &q->off, &q->len) != 0)
			arena.oom = true;
		if (meta != NULL)
			q->meta = json_dumps(meta, JSON_COMPACT);
		q->custom_id = dup_or_null(json_string_value(json_object_get(meta, "key")));
	}
	b->input = b->input_owned = arena.p;
	if (arena.oom || b->display_name == NULL)
		b->rules.fail = true; /* out of memory: a batch that fails */
	return b;
}

/* POST <prefix>/models/{model}:batchGenerateContent. */
static void ge_create(struct conn *conn, const struct req *r, const char *prefix, const char *model)
{
	json_t *doc = body_json(r);
	json_t *batch = json_object_get(doc, "batch");
	json_t *input = gget(batch, "inputConfig", "input_config");
	json_t *requests = json_object_get(json_object_get(input, "requests"), "requests");
	const char *bad;
	char msg[256];
	int64_t delay;
	enum fake_gate g;

	if (!call_open(conn, r, FMT_GEMINI, prefix, model, CALL_CREATE))
		goto out;
	if (r->too_large || r->len > GEMINI_MAX_INLINE_BYTES) {
		send_error(conn, FMT_GEMINI, 400,
		           "Request payload size exceeds the limit: 20971520 bytes.", NULL, NULL);
		goto out;
	}
	if (!json_is_object(doc)) {
		send_error(conn, FMT_GEMINI, 400,
		           "Invalid JSON payload received. Unexpected token.", NULL, NULL);
		goto out;
	}
	bad = ge_check(batch, requests, msg, sizeof(msg));
	if (bad != NULL) {
		send_error(conn, FMT_GEMINI, 400, bad, NULL, NULL);
		goto out;
	}
	g = gate(conn, FMT_GEMINI, prefix, model, CALL_CREATE, &delay);
	if (g != GATE_DONE)
		created(conn, r, g, ge_batch_new(r, prefix, model, batch, requests), delay);
out:
	json_decref(doc);
}

/* GET <prefix>/batches/{id}, POST .../{id}:cancel of a Gemini batch. */
static void ge_batch_call(struct conn *conn, const struct req *r, struct batch *b,
                          enum call_kind kind)
{
	int64_t delay;
	enum fake_gate g;

	g = batch_call_open(conn, r, b, kind, &delay);
	if (g == GATE_DONE)
		return;
	if (kind == CALL_CANCEL) {
		batch_cancel(b);
		finish(conn, g, 200, json_object(), delay);
		return;
	}
	b->gets++;
	ge_send(conn, g, b, delay);
}

/* GET <prefix>/batches?pageSize&pageToken of Gemini: newest first, each
 * operation without its output; an empty list and the last page's token
 * left out, as proto3 JSON does. */
static void ge_list(struct conn *conn, const struct req *r, const char *prefix)
{
	const char *token = fake_req_arg(r, "pageToken");
	struct page pg;
	json_t *doc;

	if (!list_call(conn, r, FMT_GEMINI, prefix, limit_arg(r, "pageSize", 50, 1000),
	               "page_size must be from 1 to 1000",
	               token != NULL && token[0] != '\0' ? token : NULL, NULL, &pg))
		return;
	doc = json_object();
	if (json_array_size(pg.data) > 0)
		json_object_set(doc, "operations", pg.data);
	if (pg.more)
		json_object_set_new(doc, "nextPageToken", json_string(pg.last));
	json_decref(pg.data);
	finish(conn, pg.g, 200, doc, pg.delay_ms);
}

/* ----------------------------------------------------------- in common */

/* b as its API shows it (Gemini: the operation, without output). */
static json_t *batch_json(const struct batch *b, const struct req *r)
{
	if (b->fmt == FMT_OPENAI)
		return oa_batch_json(b);
	if (b->fmt == FMT_ANTHROPIC)
		return an_batch_json(b, r);
	return ge_operation_json(b);
}

/* Opens a list call under prefix (limit -1: refused with message) and
 * reads its page of batches, after the one called after or before the one
 * called before. False when the call was answered or dropped. */
static bool list_call(struct conn *conn, const struct req *r, enum format fmt, const char *prefix,
                      long limit, const char *message, const char *after, const char *before,
                      struct page *pg)
{
	struct batch **v;
	size_t n;

	memset(pg, 0, sizeof(*pg));
	if (!call_open(conn, r, fmt, prefix, "", CALL_LIST))
		return false;
	if (limit < 0) {
		send_error(conn, fmt, 400, message, fmt == FMT_OPENAI ? "invalid_value" : NULL,
		           fmt == FMT_OPENAI ? "limit" : NULL);
		return false;
	}
	pg->g = gate(conn, fmt, prefix, "", CALL_LIST, &pg->delay_ms);
	if (pg->g == GATE_DONE)
		return false;
	v = calloc((size_t)limit, sizeof(*v));
	pg->data = json_array();
	if (v == NULL || pg->data == NULL) {
		free(v);
		json_decref(pg->data);
		fake_drop(conn); /* out of memory */
		return false;
	}
	n = batch_page(fmt, prefix, after, before, (size_t)limit, v, &pg->more);
	for (size_t i = 0; i < n; i++) {
		catch_up(v[i]);
		json_array_append_new(pg->data, batch_json(v[i], r));
	}
	if (n > 0) {
		pg->first = v[0]->id;
		pg->last = v[n - 1]->id;
	}
	free(v);
	return true;
}

/* Answers a create that passed its checks and fault rules with the new
 * batch b (NULL, out of memory: the connection dropped). */
static void created(struct conn *conn, const struct req *r, enum fake_gate g, struct batch *b,
                    int64_t delay_ms)
{
	if (b == NULL)
		fake_drop(conn);
	else
		finish(conn, g, 200, batch_json(b, r), delay_ms);
}

/* ----------------------------------------------------------------- routes */

enum route_kind {
	R_NONE,
	R_FILES,        /* <prefix>/files */
	R_FILE,         /* <prefix>/files/{id} */
	R_FILE_CONTENT, /* <prefix>/files/{id}/content */
	R_BATCHES,      /* <prefix>/batches: OpenAI or Gemini */
	R_BATCH,        /* <prefix>/batches/{id}: OpenAI or Gemini */
	R_OA_CANCEL,    /* <prefix>/batches/{id}/cancel */
	R_GE_CANCEL,    /* <prefix>/batches/{id}:cancel */
	R_GE_CREATE,    /* <prefix>/models/{model}:batchGenerateContent */
	R_AN_BATCHES,   /* <prefix>/messages/batches */
	R_AN_BATCH,     /* <prefix>/messages/batches/{id} */
	R_AN_CANCEL,    /* <prefix>/messages/batches/{id}/cancel */
	R_AN_RESULTS,   /* <prefix>/messages/batches/{id}/results */
};

struct route {
	enum route_kind kind;
	char prefix[512];
	char id[MAX_ID];
	char model[256];
};

/* The last seg in path that ends at its end or at a '/', NULL when none. */
static const char *segment_find(const char *path, const char *seg)
{
	size_t n = strlen(seg);
	const char *found = NULL;

	for (const char *p = strstr(path, seg); p != NULL; p = strstr(p + 1, seg)) {
		if (p[n] == '\0' || p[n] == '/')
			found = p;
	}
	return found;
}

/* Reads "/{id}" or "/{id}/{word}" (rest) into id; returns word ("" when
 * none), NULL when rest is not one. */
static const char *id_split(const char *rest, char *id, size_t size)
{
	const char *slash = strchr(rest + 1, '/');
	size_t n = slash != NULL ? (size_t)(slash - rest - 1) : strlen(rest + 1);

	if (n == 0 || n >= size)
		return NULL;
	memcpy(id, rest + 1, n);
	id[n] = '\0';
	return slash != NULL ? slash + 1 : "";
}

/* Reads a batch endpoint's path into *rt; false when it is none. */
static bool route_parse(const char *path, struct route *rt)
{
	static const char ge[] = ":batchGenerateContent";
	static const struct {
		const char *seg;
		enum route_kind coll, item;
	} colls[] = {{"/messages/batches", R_AN_BATCHES, R_AN_BATCH},
	             {"/batches", R_BATCHES, R_BATCH},
	             {"/files", R_FILES, R_FILE}};
	size_t n = strlen(path), len;
	const char *at = NULL, *word;

	memset(rt, 0, sizeof(*rt));
	if (n > sizeof(ge) - 1 && strcmp(path + n - (sizeof(ge) - 1), ge) == 0) {
		for (const char *p = strstr(path, "/models/"); p != NULL;
		     p = strstr(p + 1, "/models/"))
			at = p;
		len = at != NULL ? (size_t)(path + n - (sizeof(ge) - 1) - (at + 8)) : 0;
		if (len == 0 || len >= sizeof(rt->model) ||
		    (size_t)(at - path) >= sizeof(rt->prefix))
			return false;
		snprintf(rt->prefix, sizeof(rt->prefix), "%.*s", (int)(at - path), path);
		snprintf(rt->model, sizeof(rt->model), "%.*s", (int)len, at + 8);
		rt->kind = R_GE_CREATE;
		return true;
	}
	for (size_t i = 0; i < sizeof(colls) / sizeof(colls[0]); i++) {
		at = segment_find(path, colls[i].seg);
		if (at == NULL)
			continue;
		if ((size_t)(at - path) >= sizeof(rt->prefix))
			return false;
		snprintf(rt->prefix, sizeof(rt->prefix), "%.*s", (int)(at - path), path);
		at += strlen(colls[i].seg);
		if (*at == '\0') {
			rt->kind = colls[i].coll;
			return true;
		}
		word = id_split(at, rt->id, sizeof(rt->id));
		len = strlen(rt->id);
		if (word == NULL)
			return false;
		if (*word == '\0' && colls[i].item == R_BATCH && len > 7 &&
		    strcmp(rt->id + len - 7, ":cancel") == 0) {
			rt->id[len - 7] = '\0';
			rt->kind = R_GE_CANCEL;
		} else if (*word == '\0') {
			rt->kind = colls[i].item;
		} else if (strcmp(word, "cancel") == 0 && colls[i].item != R_FILE) {
			rt->kind = colls[i].item == R_AN_BATCH ? R_AN_CANCEL : R_OA_CANCEL;
		} else if (strcmp(word, "results") == 0 && colls[i].item == R_AN_BATCH) {
			rt->kind = R_AN_RESULTS;
		} else if (strcmp(word, "content") == 0 && colls[i].item == R_FILE) {
			rt->kind = R_FILE_CONTENT;
		} else {
			return false;
		}
		return true;
	}
	return false;
}

size_t fake_batch_body_limit(const char *path)
{
	struct route rt;

	return route_parse(path, &rt) ? BATCH_MAX_BODY_BYTES : 0;
}

/* Whether a call on <prefix>/batches speaks Gemini: Google's key or page
 * arguments, or no OpenAI key where Gemini batches live. */
static bool speaks_gemini(const struct req *r, const char *prefix)
{
	bool any = false;

	if (fake_req_header(r, "x-goog-api-key") != NULL || fake_req_arg(r, "key") != NULL ||
	    fake_req_arg(r, "pageSize") != NULL || fake_req_arg(r, "pageToken") != NULL)
		return true;
	for (size_t i = 0; i < B.n && !any; i++)
		any = B.v[i]->fmt == FMT_GEMINI && strcmp(B.v[i]->prefix, prefix) == 0;
	return any && fake_req_header(r, "Authorization") == NULL;
}

static void not_allowed(struct conn *conn, enum format fmt)
{
	send_error(conn, fmt, 405, "Method not allowed", NULL, NULL);
}

/* GET, cancel of <prefix>/batches/{id}: OpenAI's or Gemini's. */
static void batch_call(struct conn *conn, const struct req *r, const struct route *rt,
                       enum call_kind kind)
{
	struct batch *b = NULL;
	enum format fmt = rt->kind == R_GE_CANCEL ? FMT_GEMINI : FMT_OPENAI;
	char msg[160];

	if (rt->kind != R_GE_CANCEL)
		b = batch_find(FMT_OPENAI, rt->prefix, rt->id);
	if (b == NULL && rt->kind != R_OA_CANCEL)
		b = batch_find(FMT_GEMINI, rt->prefix, rt->id);
	if (b != NULL && b->fmt == FMT_OPENAI) {
		oa_batch_call(conn, r, b, kind);
	} else if (b != NULL) {
		ge_batch_call(conn, r, b, kind);
	} else {
		if (rt->kind == R_BATCH && speaks_gemini(r, rt->prefix))
			fmt = FMT_GEMINI;
		if (!call_open(conn, r, fmt, rt->prefix, "", kind))
			return;
		if (fmt == FMT_GEMINI)
			snprintf(msg, sizeof(msg), "Requested entity was not found.");
		else
			snprintf(msg, sizeof(msg), "No such Batch object: %s", rt->id);
		send_error(conn, fmt, 404, msg, NULL, NULL);
	}
}

bool fake_batch_handle(struct conn *conn, const struct req *r)
{
	bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
	struct route rt;

	if (!route_parse(r->path, &rt))
		return false;
	switch (rt.kind) {
	case R_FILES:
		if (post)
			oa_upload(conn, r, rt.prefix);
		else
			not_allowed(conn, FMT_OPENAI);
		break;
	case R_FILE:
	case R_FILE_CONTENT:
		if (get)
			oa_file_call(conn, r, rt.prefix, rt.id, rt.kind == R_FILE_CONTENT);
		else
			not_allowed(conn, FMT_OPENAI);
		break;
	case R_BATCHES:
		if (post)
			oa_create(conn, r, rt.prefix);
		else if (get && speaks_gemini(r, rt.prefix))
			ge_list(conn, r, rt.prefix);
		else if (get)
			oa_list(conn, r, rt.prefix);
		else
			not_allowed(conn, FMT_OPENAI);
		break;
	case R_BATCH:
	case R_OA_CANCEL:
	case R_GE_CANCEL:
		if (rt.kind == R_BATCH ? get : post)
			batch_call(conn, r, &rt, rt.kind == R_BATCH ? CALL_GET : CALL_CANCEL);
		else
			not_allowed(conn, rt.kind == R_GE_CANCEL ? FMT_GEMINI : FMT_OPENAI);
		break;
	case R_GE_CREATE:
		if (post)
			ge_create(conn, r, rt.prefix, rt.model);
		else
			not_allowed(conn, FMT_GEMINI);
		break;
	case R_AN_BATCHES:
		if (post)
			an_create(conn, r, rt.prefix);
		else if (get)
			an_list(conn, r, rt.prefix);
		else
			not_allowed(conn, FMT_ANTHROPIC);
		break;
	default:
		if (rt.kind == R_AN_CANCEL ? post : get)
			an_batch_call(conn, r, rt.prefix, rt.id,
			              rt.kind == R_AN_CANCEL    ? CALL_CANCEL
			              : rt.kind == R_AN_RESULTS ? CALL_RESULTS
			                                        : CALL_GET);
		else
			not_allowed(conn, FMT_ANTHROPIC);
		break;
	}
	return true;
}

/* ------------------------------------------------------ control and stats */

json_t *fake_batch_stats(void)
{
	json_t *created = json_object(), *calls = json_object();

	for (int f = FMT_OPENAI; f <= FMT_GEMINI; f++)
		json_object_set_new(created, fake_format_names[f],
		                    json_integer((json_int_t)B.st.created[f]));
	for (size_t i = 0; i < sizeof(call_names) / sizeof(call_names[0]); i++)
		json_object_set_new(calls, call_names[i], json_integer((json_int_t)B.st.calls[i]));
	return json_pack("{s:o, s:I, s:o, s:I, s:{s:I, s:I, s:I, s:I}, s:I, s:I, s:I}", "created",
	                 created, "live", (json_int_t)B.live, "calls", calls, "faults",
	                 (json_int_t)B.st.faults, "requests", "answered", (json_int_t)B.st.answered,
	                 "errored", (json_int_t)B.st.errored, "expired", (json_int_t)B.st.expired,
	                 "canceled", (json_int_t)B.st.canceled, "cancels", (json_int_t)B.st.cancels,
	                 "result_gets", (json_int_t)B.st.result_gets, "uploads",
	                 (json_int_t)B.st.uploads);
}

void fake_batch_stats_reset(void)
{
	memset(&B.st, 0, sizeof(B.st));
}

/* The state of b in its API's words. */
static const char *state_word(const struct batch *b)
{
	if (b->fmt == FMT_OPENAI)
		return oa_status(b);
	if (b->fmt == FMT_GEMINI)
		return ge_state(b);
	return b->phase == PH_ENDED       ? "ended"
	       : b->phase == PH_CANCELING ? "canceling"
	                                  : "in_progress";
}

/* The distinct parts of b's custom_ids before their last '-' (up to 16),
 * and the one token they share, promptyard's way (NULL when none). */
static json_t *custom_id_prefixes(const struct batch *b, json_t **token)
{
	json_t *arr = json_array();

	*token = NULL;
	for (size_t i = 0; i < b->n && json_array_size(arr) < 16; i++) {
		const char *cid = b->reqs[i].custom_id, *dash;
		bool seen = false;
		size_t n, k;
		json_t *v;

		if (cid == NULL)
			continue;
		dash = strrchr(cid, '-');
		n = dash != NULL ? (size_t)(dash - cid) : strlen(cid);
		json_array_foreach (arr, k, v) {
			seen = seen || (json_string_length(v) == n &&
			                memcmp(json_string_value(v), cid, n) == 0);
		}
		if (!seen)
			json_array_append_new(arr, json_stringn(cid, n));
	}
	if (json_array_size(arr) == 1)
		*token = json_copy(json_array_get(arr, 0));
	return arr;
}

static json_t *batch_entry(struct batch *b, bool requests)
{
	json_t *token = NULL, *prefixes = custom_id_prefixes(b, &token), *o, *list;
	const char *t;

	catch_up(b);
	if (b->fmt == FMT_OPENAI) {
		json_decref(token);
		t = json_string_value(json_object_get(b->metadata, "promptyard_token"));
		token = t != NULL ? json_string(t) : NULL;
	} else if (b->fmt == FMT_GEMINI) {
		json_decref(token);
		t = b->display_name;
		token = t != NULL && strncmp(t, "promptyard-", 11) == 0 ? json_string(t + 11)
		                                                        : NULL;
	}
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o, s:O, s:o, s:o, s:I, s:I, s:I, s:I, s:I, "
	              "s:I, s:I, s:I, s:I, s:f, s:o}",
	              "id", b->name, "format", fake_format_names[b->fmt], "prefix", b->prefix,
	              "model", b->model, "state", state_word(b), "ended", b->phase == PH_ENDED,
	              "token", token != NULL ? token : json_null(), "metadata",
	              b->metadata != NULL ? b->metadata : json_null(), "display_name",
	              b->display_name != NULL ? json_string(b->display_name) : json_null(),
	              "custom_id_prefixes", prefixes, "requests", (json_int_t)b->n, "answered",
	              (json_int_t)b->answered, "errored", (json_int_t)b->errored, "expired",
	              (json_int_t)b->expired, "canceled", (json_int_t)b->canceled, "pending",
	              (json_int_t)(b->n - b->answered - b->errored - b->expired - b->canceled),
	              "cancels", (json_int_t)b->cancels, "gets", (json_int_t)b->gets, "result_gets",
	              (json_int_t)b->result_gets, "created_at", b->created, "ended_at",
	              b->ended_at > 0 ? json_real(b->ended_at) : json_null());
	if (o != NULL && b->fmt == FMT_OPENAI) {
		json_object_set_new(o, "input_file_id", json_string(b->input_file->id));
		json_object_set_new(o, "output_file_id",
		                    b->output_file != NULL ? json_string(b->output_file->id)
		                                           : json_null());
		json_object_set_new(o, "error_file_id",
		                    b->error_file != NULL ? json_string(b->error_file->id)
		                                          : json_null());
	}
	if (o == NULL || !requests)
		return o;
	list = json_array();
	for (size_t i = 0; i < b->n; i++) {
		const struct breq *q = &b->reqs[i];

		json_array_append_new(
		        list,
		        json_pack("{s:o, s:s, s:o}", "custom_id",
		                  q->custom_id != NULL ? json_string(q->custom_id) : json_null(),
		                  "fate", fate_names[q->fate], "seq",
		                  q->seq != 0 ? json_integer((json_int_t)q->seq) : json_null()));
	}
	json_object_set_new(o, "request_list", list);
	return o;
}

json_t *fake_batch_list(bool requests)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < B.n && arr != NULL; i++)
		json_array_append_new(arr, batch_entry(B.v[i], requests));
	return json_pack("{s:o}", "batches", arr);
}

/* ------------------------------------------------------------- lifetime */

void fake_batch_init(uv_loop_t *loop)
{
	B.loop = loop;
	B.salt = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
	uv_timer_init(loop, &B.pump);
	B.started = true;
}

void fake_batch_close(void)
{
	if (B.started && !B.closing)
		uv_close((uv_handle_t *)&B.pump, NULL);
	B.closing = true;
}

void fake_batch_free(void)
{
	for (size_t i = 0; i < B.n; i++)
		batch_free(B.v[i]);
	for (size_t i = 0; i < B.n_files; i++)
		file_free(B.files[i]);
	free(B.v);
	free(B.files);
	memset(&B, 0, sizeof(B));
}
