/* job: decoding and validation of one input message (SPEC §2).
 *
 * job_decode() either fills a struct job whose every field obeys SPEC §2, or
 * fails with a message that names the offending field ("max_tokens: must be an
 * integer from 1 to 1000000"). A failed decode is an invalid_job; it is never
 * retried. */
#ifndef PROMPTYARD_JOB_H
#define PROMPTYARD_JOB_H

#include "config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_ID_MAX         200
#define JOB_METADATA_MAX   16384
#define JOB_MAX_TOKENS_MAX 1000000
/* Used when worker.max_job_bytes is 0 (a config built by hand): SPEC's default. */
#define JOB_MAX_BYTES_DEFAULT 1048576
/* The SPEC only says "number" for temperature and top_p. The bounds taken are
 * the widest any supported provider accepts (OpenAI and Gemini: temperature
 * 0-2; all: top_p 0-1); a provider with a narrower range (Anthropic: 0-1) is
 * its adapter's business. */
#define JOB_TEMPERATURE_MAX 2

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };
const char *role_name(enum role r);

struct job_message {
	enum role role;
	const char *content; /* borrowed from job.root */
	size_t content_len;  /* bytes of UTF-8 */
};

struct job {
	json_t *root; /* the parsed message (new reference); NULL if it is not a JSON object */
	/* The id, even for an invalid job when the message had a usable one
	 * (a string of 1-200 bytes); NULL otherwise. Borrowed from root. */
	const char *id;

	struct job_message *messages; /* new array; a `prompt` becomes one user message */
	size_t n_messages;
	size_t content_bytes; /* sum of content_len */

	int model;   /* catalog index when `model` pins one, else -1 */
	int *models; /* new array of catalog indexes from `models`, NULL if absent */
	size_t n_models;
	bool allow_fallbacks;    /* resolved default: false when model is set, else true */
	enum strategy strategy;  /* resolved: the job's, else worker.default_strategy */
	bool strategy_set;       /* the job named a strategy (a rule may then not override it) */
	int64_t max_cost_nusd;   /* 0 = no cap */
	int budget;              /* config.budgets index; -1 for a budget known only in
	                           Redis (job_set_budget_lookup); resolved default */
	const char *budget_name; /* the budget's name (borrowed from root or cfg) */
	int64_t max_tokens;      /* 0 = the model's default_max_tokens */
	bool has_temperature, has_top_p;
	double temperature, top_p;
	json_t *stop;        /* string or array of strings, borrowed from root, or NULL */
	bool json_response;  /* response_format json_object */
	unsigned caps;       /* required capabilities (enum capability bits) */
	int64_t deadline_ms; /* unix ms, 0 = none */
	json_t *metadata;    /* borrowed from root, NULL if absent */
	char *metadata_json; /* metadata as compact JSON, what results carry (new), or NULL */
};

/* Budgets may live in Redis only (made with `promptyard budget set`). A
 * process that knows them (the worker polls them) sets a lookup, and
 * job_decode then accepts a `budget` it knows; without one, only the config's
 * budgets are accepted. fn(opaque, name) must not block. */
typedef bool job_budget_known_fn(void *opaque, const char *name);
void job_set_budget_lookup(job_budget_known_fn *fn, void *opaque);

/* Decodes len bytes of value (borrowed; nothing points into it afterwards).
 * The job is zeroed first. Returns 0 on success. On failure returns -1,
 * writes the reason to errstr, and still leaves job->root (when the value
 * parsed as a JSON object) and job->id (when usable) set so that the error
 * result and the DLQ record can carry them; every other field is then at its
 * zero value (model and budget -1). Call job_clear() either way. cfg is
 * borrowed and must outlive the job.
 *
 * The reason starts with the field ("max_tokens: ...", "messages[2].role: ...",
 * "value: ..." for the message as a whole), is always valid UTF-8 (it goes
 * into JSON), and quotes at most 64 bytes of a user's value. Fields are
 * checked in the order of the SPEC §2 table, so it names the first bad one.
 *
 * Beyond the SPEC's words, decided here:
 * - the size limit is checked before parsing (root then stays NULL);
 * - an object with a duplicate key is invalid JSON (JSON_REJECT_DUPLICATES):
 *   an ambiguous id or cost cap is refused loudly, not resolved silently;
 * - "\u0000" in any string is refused, so every borrowed string is a C string;
 * - a present field must have its type: null is not taken for "absent";
 * - max_cost_usd is rounded down to whole nano-USD (a cap must never be
 *   exceeded) and must be at least one nano-USD;
 * - `models` keeps each catalog model once, in the order first given;
 * - a deadline at or before the epoch is stored as 1 (0 means none). */
int job_decode(const struct config *cfg, const void *value, size_t len, struct job *job,
               char *errstr, size_t errstr_size);
/* Frees the arrays, drops the reference on root, and zeroes the job (model and
 * budget -1). Safe on a zeroed job, on a cleared one and on NULL. */
void job_clear(struct job *job);

#endif
