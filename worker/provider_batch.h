/* provider_batch: the providers' batch APIs (SPEC §14): what the batcher
 * calls, and the part of a wire format's table that serves it.
 *
 * A submission is one provider batch as promptyard builds it. It is named by
 * a token (PROVIDER_BATCH_TOKEN_LEN characters of [a-z0-9]) that the provider
 * keeps where the orphan search can read it back (OpenAI: the batch's
 * metadata promptyard_token; Gemini: the display name "promptyard-<token>";
 * Anthropic: only the custom_ids of its results), and its requests by
 * custom_ids "<token>-<n>", n the request's index in the submission.
 *
 * Every HTTP request of a batch's life is built on the struct http_request
 * the sync path uses (the provider's key, headers and query added as
 * provider_request_common adds them; polls, lists and results are GETs:
 * req->method), and every answer is read here, so that the batcher knows
 * no format. p is the batch's provider (p->ops->batch not NULL):
 *
 *   submit   provider_batch_submission_init, provider_batch_add per job,
 *            then for step 0 .. submit_steps - 1:
 *            provider_batch_submit_request and provider_batch_parse_answer
 *            (OpenAI uploads the JSONL file, then creates the batch from the
 *            file id step 0 answered; Anthropic and Gemini POST once). The
 *            last step's answer names the batch.
 *   poll     provider_batch_poll_request, provider_batch_parse_status: the
 *            state, counts, the token read back, where the results are.
 *   collect  provider_batch_results_request for each of status.results (a
 *            JSONL file that may be hundreds of MB: stream it) and
 *            provider_batch_parse_result per line; where the answers came
 *            inline in the status body (Gemini), provider_batch_inline_*
 *            over that body.
 *   cancel   provider_batch_cancel_request, provider_batch_parse_answer
 *            (then poll: the batch ends with whatever it answered).
 *   list     provider_batch_list_request, provider_batch_parse_list, page
 *            by page (the orphan search).
 *
 * Answers come in any order: match on custom_id (Gemini, which may drop
 * its keys, on the position). A request of the submission without any
 * result (Gemini's canceled or expired batches, a line lost) has no answer.
 *
 * Every parser takes any status and any bytes and never fails: a status
 * that is not 2xx is the format's class of that error (as its
 * parse_response classifies it: AUTH, REJECTED for a batch the provider
 * does not know, RETRYABLE...) with an error message; a 2xx body that is
 * not what it should be is RESPONSE_INVALID. Error messages hold no
 * secrets (provider_set_error). Nothing here blocks or keeps state
 * between calls. */
#ifndef PROMPTYARD_PROVIDER_BATCH_H
#define PROMPTYARD_PROVIDER_BATCH_H

#include "provider.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROVIDER_BATCH_TOKEN_LEN 12
/* "<token>-<n>": the token, a dash and n's decimal digits. */
#define PROVIDER_BATCH_CUSTOM_ID_MAX (PROVIDER_BATCH_TOKEN_LEN + 1 + 20)

/* Is s[0..len) a token: PROVIDER_BATCH_TOKEN_LEN of [a-z0-9]? */
bool provider_batch_token_valid(const char *s, size_t len);
/* Writes "<token>-<n>" to out (PROVIDER_BATCH_CUSTOM_ID_MAX + 1 bytes). */
void provider_batch_custom_id(const char *token, size_t n, char *out);
/* Reads a custom_id of ours: 0 with token (PROVIDER_BATCH_TOKEN_LEN + 1
 * bytes) and *n filled, or -1 when it is not "<token>-<n>" (n decimal,
 * without leading zeros). */
int provider_batch_custom_id_parse(const char *custom_id, char *token, size_t *n);

/* ---------------------------------------------------------------- submitting */

/* One provider batch being built: its requests, as the format lists them,
 * each the body the format's build_request sends for the job. */
struct provider_batch_submission {
	const struct provider *ops; /* borrowed: the format (ops->batch not NULL) */
	const struct model_conf *m; /* borrowed: every request's model */
	char token[PROVIDER_BATCH_TOKEN_LEN + 1];
	struct buf items; /* the requests, separated as the format wants */
	size_t n;         /* requests in items */
	/* Limits: the format's (provider_batch.max_requests, .max_bytes), which
	 * the caller may lower (batch.max_requests). */
	size_t max_requests, max_bytes;
};

/* Starts an empty submission of requests to model m in format ops, named by
 * token (provider_batch_token_valid). */
void provider_batch_submission_init(struct provider_batch_submission *s, const struct provider *ops,
                                    const struct model_conf *m, const char *token);
void provider_batch_submission_clear(struct provider_batch_submission *s);

/* provider_batch_add's answer when the submission cannot take the job. */
#define PROVIDER_BATCH_FULL 1

/* Adds one request: job on s->m with the output limit max_tokens, exactly
 * the body ops->build_request builds for it, under the custom_id
 * provider_batch_custom_id(s->token, n), n being s->n before the call.
 * Returns 0; PROVIDER_BATCH_FULL (nothing added) when the submission holds
 * max_requests or the request would take its body past max_bytes: submit
 * it, and add the job to the next one; or -1 with errstr set when the job
 * cannot be expressed in the format, or is too large for any submission
 * of it. */
int provider_batch_add(struct provider_batch_submission *s, const struct provider_conf *p,
                       const struct job *job, int64_t max_tokens, char *errstr, size_t errstr_size);

/* Fills req (empty) with submission step (0 .. ops->batch->submit_steps -
 * 1) of s. prev_id is what the step before answered (OpenAI's file id for
 * step 1), NULL for step 0. s is not changed: a failed step may be sent
 * again, and is sent byte for byte the same. */
void provider_batch_submit_request(const struct provider_conf *p,
                                   const struct provider_batch_submission *s, int step,
                                   const char *prev_id, struct http_request *req);

/* Reads the answer of a submission step or of a cancel. On 2xx with id not
 * NULL, *id (new) is what the answer names (the uploaded file, the batch);
 * RESPONSE_INVALID when it names nothing. A cancel (id NULL) is OK on any
 * 2xx. out gets error_message when the class is not OK. */
enum response_class provider_batch_parse_answer(const struct provider_conf *p, long status,
                                                const char *body, size_t len, char **id,
                                                struct completion *out);

/* ---------------------------------------------------------------- a batch's life */

/* A batch's state, normalised. */
enum provider_batch_state {
	BATCH_VALIDATING,  /* accepted, not running yet (OpenAI validating, Gemini PENDING) */
	BATCH_IN_PROGRESS, /* running */
	BATCH_FINALIZING,  /* run, its results being written (OpenAI) */
	BATCH_ENDED,       /* over: every request answered, errored, expired or canceled */
	BATCH_FAILED,      /* the batch as a whole failed (its input refused, ...) */
	BATCH_EXPIRED,     /* its window passed; what it answered is in its results */
	BATCH_CANCELING,   /* a cancel is under way */
	BATCH_CANCELED,    /* canceled; what it answered is in its results */
};
/* "validating", "in_progress", "finalizing", "ended", "failed", "expired",
 * "canceling", "canceled". */
const char *provider_batch_state_name(enum provider_batch_state s);
/* Will the batch change no more (ended, failed, expired, canceled)? Its
 * results, if any, are then complete. */
bool provider_batch_state_final(enum provider_batch_state s);

/* What a poll (or one item of a list) says of a batch. */
struct provider_batch_status {
	char *id; /* new: the provider's batch id (what the poll and the cancel take) */
	enum provider_batch_state state;
	int64_t total;  /* requests in the batch, 0 when not told */
	int64_t done;   /* answered (OpenAI completed, Anthropic succeeded, Gemini successful) */
	int64_t failed; /* errored, expired or canceled */
	/* The submission's token read back (OpenAI's metadata, Gemini's display
	 * name), "" when the batch carries none of ours (Anthropic's never do). */
	char token[PROVIDER_BATCH_TOKEN_LEN + 1];
	int64_t created_ms; /* when the provider created it, Unix ms; 0 when not told */
	/* The JSONL files of results (new full URLs, on base_url's host) for
	 * provider_batch_results_request: OpenAI's output and error files,
	 * Anthropic's results. */
	char *results[2];
	size_t n_results;
	bool inline_results; /* the answers are in the status body (Gemini): provider_batch_inline_* */
	/* new: why the batch failed (a final state) or why the call did (a
	 * class not OK); no secrets. NULL otherwise. */
	char *error_message;
};
void provider_batch_status_clear(struct provider_batch_status *st);

void provider_batch_poll_request(const struct provider_conf *p, const char *batch_id,
                                 struct http_request *req);
/* Fills out (zeroed once, then reused: it is cleared first) from a poll's
 * answer. A state the format does not define is RESPONSE_INVALID. */
enum response_class provider_batch_parse_status(const struct provider_conf *p, long status,
                                                const char *body, size_t len,
                                                struct provider_batch_status *out);

void provider_batch_cancel_request(const struct provider_conf *p, const char *batch_id,
                                   struct http_request *req);

/* One page of a list of batches. */
struct provider_batch_list {
	struct provider_batch_status *items; /* new array */
	size_t n;
	char *next;          /* new: the cursor of the next page, NULL on the last */
	char *error_message; /* new: why the call failed (a class not OK), else NULL */
};
void provider_batch_list_clear(struct provider_batch_list *l);

/* One page of the provider's batches, newest first: cursor NULL for the
 * first page, else the last page's next. */
void provider_batch_list_request(const struct provider_conf *p, const char *cursor,
                                 struct http_request *req);
/* Fills out (zeroed once, then reused) from a list's answer. An item that
 * is no batch of the format is left out. */
enum response_class provider_batch_parse_list(const struct provider_conf *p, long status,
                                              const char *body, size_t len,
                                              struct provider_batch_list *out);

/* ---------------------------------------------------------------- results */

/* What became of one request, as a result line says. */
enum provider_batch_outcome {
	BATCH_LINE_ANSWERED, /* the request ran: its answer parsed by the format's parse_response */
	BATCH_LINE_ERRORED,  /* it did not run, or failed: error_message says why (no cost) */
	BATCH_LINE_EXPIRED,  /* the window passed before it ran (no cost) */
	BATCH_LINE_CANCELED, /* the batch was canceled before it ran (no cost) */
	BATCH_LINE_BLANK,    /* an empty or all-whitespace line: nothing, skip it */
	BATCH_LINE_INVALID,  /* not a result line of the format (error_message says how) */
};
/* "answered", "errored", "expired", "canceled", "blank", "invalid". */
const char *provider_batch_outcome_name(enum provider_batch_outcome o);

struct provider_batch_result {
	enum provider_batch_outcome outcome;
	/* new: the line's custom_id (Gemini: its key), NULL when it has none
	 * (an invalid line, a Gemini answer whose key was dropped). */
	char *custom_id;
	/* A Gemini inline answer's index among the answers: the request's
	 * index in the submission (Google keeps the order), so custom_id
	 * "<token>-<position>" when it names none. -1 for a line of a file. */
	int64_t position;
	/* ANSWERED: the class parse_response gives the answer, which may be no
	 * OK (a request the provider refused with a 4xx, a body cut short);
	 * ERRORED: the class its error reads as in the format (a refusal of the
	 * request is REJECTED or CONTEXT_OVERFLOW, a key problem AUTH), else
	 * RETRYABLE; EXPIRED, CANCELED: RETRYABLE; INVALID, BLANK: INVALID. */
	enum response_class cls;
	/* ANSWERED: as parse_response fills it (usage, content, tool calls,
	 * refusal...). Any other outcome: only error_message, and never usage
	 * (has_usage false: it costs nothing). */
	struct completion c;
};
void provider_batch_result_clear(struct provider_batch_result *r);

/* The GET of a results file, url one of a status's results. */
void provider_batch_results_request(const struct provider_conf *p, const char *url,
                                    struct http_request *req);

/* Parses one result line of a results file (line[0..len), no NUL needed,
 * without its newline; a '\r' or blanks around it are fine) into out
 * (zeroed once, then reused: it is cleared first). m is the batch's model.
 * Returns out->outcome. */
enum provider_batch_outcome provider_batch_parse_result(const struct provider_conf *p,
                                                        const struct model_conf *m,
                                                        const char *line, size_t len,
                                                        struct provider_batch_result *out);

/* The answers a status body carries inline (Gemini's inlinedResponses),
 * walked one at a time. The body must outlive the walk. */
struct provider_batch_inline {
	struct jdoc doc;
	const struct provider *ops;
	const struct jval *answers; /* the array, NULL when there is none */
	const struct jval *cur;
	size_t i, n;
};
/* Opens the answers of a 2xx status body of p's format. Returns how many
 * there are (0 when none, or the body is not the format's).
 * provider_batch_inline_close() is needed either way. */
size_t provider_batch_inline_open(struct provider_batch_inline *it, const struct provider_conf *p,
                                  const char *body, size_t len);
/* Parses the next answer into out as provider_batch_parse_result does, with
 * its position. Returns false when none is left. */
bool provider_batch_inline_next(struct provider_batch_inline *it, const struct model_conf *m,
                                struct provider_batch_result *out);
void provider_batch_inline_close(struct provider_batch_inline *it);

/* ---------------------------------------------------------------- the table */

/* Reads one batch object of a format (a poll's answer, an item of a list)
 * into st. Returns 0, or -1 (st's error_message set) when it is no batch. */
typedef int provider_batch_reader(const struct provider_conf *p, struct jdoc *d,
                                  const struct jval *obj, struct provider_batch_status *st);

/* A format's batch API: where its calls go, how its answers read, and the
 * few functions that differ from format to format. */
struct provider_batch {
	size_t max_requests; /* requests one batch takes at most */
	size_t max_bytes;    /* bytes of the submission's body at most */
	int submit_steps;    /* HTTP calls to submit: 2 for OpenAI, else 1 */

	/* The calls, under base_url. */
	const char *key_header;     /* the key's default header (provider_request_common) */
	const char *version_header; /* a header line every call carries, or NULL */
	const char *batches_path;   /* "/batches": + "/{id}" polls */
	const char *id_prefix;      /* what an id may start with that the path has ("batches/") */
	const char *cancel_suffix;  /* after "/{id}": "/cancel", ":cancel" */
	const char *list_query;     /* after batches_path: "?limit=100" */
	const char *cursor_param;   /* the list's cursor parameter: "after", "pageToken" */

	/* The answers. */
	const char *id_key;          /* what names the file or batch an answer made: "id" */
	const char *list_key;        /* the array of a list's batches: "data" */
	const char *list_cursor_key; /* the next page's cursor: "last_id", "nextPageToken" */
	const char *list_more_key;   /* true when there are more pages: "has_more", or NULL */

	/* Appends one request to items (the separator first unless index is 0):
	 * body (the JSON build_request built) under custom_id. */
	void (*put_item)(struct buf *items, size_t index, const char *custom_id, const char *body,
	                 size_t len);
	/* provider_batch_submit_request's work. */
	void (*submit_request)(const struct provider_conf *p,
	                       const struct provider_batch_submission *s, int step,
	                       const char *prev_id, struct http_request *req);
	provider_batch_reader *read_batch;
	/* provider_batch_parse_result's work, for a line or an inline answer. */
	enum provider_batch_outcome (*parse_result)(const struct model_conf *m, const char *line,
	                                            size_t len, struct provider_batch_result *out);
	/* The array of inline answers in a parsed 2xx status body (root), NULL
	 * when there is none; NULL when the format never answers inline. */
	const struct jval *(*inline_answers)(const struct jval *root);
};

/* ---------------------------------------------------------------- for the formats */

/* Ends a request whose URL is built: sets method and adds the format's key
 * (p->ops->batch->key_header unless p says another) and headers. */
void provider_batch_request_end(const struct provider_conf *p, enum http_method method,
                                struct http_request *req);

/* Appends {base_url}{batches_path}/{id}{tail} to url, id percent-encoded
 * as one segment (without the table's id_prefix). */
void provider_batch_url(const struct provider_conf *p, const char *id, const char *tail,
                        struct buf *url);

/* Sets *error_message (replacing any) as provider_set_error would. */
void provider_batch_set_error(char **error_message, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Starts parse_result: clears r and parses line into d. Returns 0 when
 * the line is a JSON object, to be read; else -1 with r's outcome
 * BATCH_LINE_BLANK (an empty or all-whitespace line) or BATCH_LINE_INVALID.
 * jdoc_free(d) is needed whatever it returns. */
int provider_batch_line_open(struct jdoc *d, const char *line, size_t len,
                             struct provider_batch_result *r);

/* Takes string v as r->custom_id (nothing for another type). */
void provider_batch_take_custom_id(struct provider_batch_result *r, const struct jval *v);

/* Fills r for an answered request: body, the embedded answer, through
 * ops->parse_response under status. */
void provider_batch_answered(const struct provider *ops, const struct model_conf *m, long status,
                             const struct jval *body, struct provider_batch_result *r);

/* Fills r for a request that failed, from err, the format's error value:
 * the class is what ops->parse_response reads in the body {"error": err}
 * (or err itself when wrapped is false) under status; OK is RETRYABLE.
 * Sets outcome ERRORED. */
void provider_batch_errored(const struct provider *ops, long status, const struct jval *err,
                            bool wrapped, struct provider_batch_result *r);

/* Sets r's outcome to o (EXPIRED, CANCELED, INVALID) with error_message
 * from a printf format; class RETRYABLE (INVALID: RESPONSE_INVALID). */
void provider_batch_outcome(struct provider_batch_result *r, enum provider_batch_outcome o,
                            const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads a token out of string text when it is prefix followed by one (into
 * token, PROVIDER_BATCH_TOKEN_LEN + 1 bytes); else token is "". */
void provider_batch_read_token(const char *prefix, const struct jval *text, char *token);

/* A time a batch object gives: Unix seconds (OpenAI) or an RFC 3339 string
 * (Anthropic, Gemini), as Unix ms; 0 for anything else. */
int64_t provider_batch_time_ms(const struct jval *v);

/* The length of url's origin, "scheme://host[:port]"; 0 when it has none. */
size_t provider_batch_origin_len(const char *url);

/* Appends url to st->results when it is on p->base_url's origin (scheme,
 * host and port): the key goes only where the provider's own calls go.
 * Returns -1 (nothing added) otherwise. */
int provider_batch_add_results_url(const struct provider_conf *p, const char *url,
                                   struct provider_batch_status *st);

#endif
