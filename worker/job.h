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

#define JOB_ID_MAX 200
#define JOB_METADATA_MAX 16384
#define JOB_MAX_TOKENS_MAX 1000000

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };
const char *role_name(enum role r);

struct job_message {
	enum role role;
	const char *content; /* borrowed from job.root */
	size_t content_len;  /* bytes of UTF-8 */
};

struct job {
	json_t *root; /* the parsed message (new reference); NULL if it did not parse */
	/* The id, even for an invalid job when the message had a usable one
	 * (a string of 1-200 bytes); NULL otherwise. Borrowed from root. */
	const char *id;

	struct job_message *messages; /* new array; a `prompt` becomes one user message */
	size_t n_messages;
	size_t content_bytes; /* sum of content_len */

	int model;              /* catalog index when `model` pins one, else -1 */
	int *models;            /* new array of catalog indexes from `models`, NULL if absent */
	size_t n_models;
	bool allow_fallbacks;   /* resolved default: false when model is set, else true */
	enum strategy strategy; /* resolved: the job's, else worker.default_strategy */
	bool strategy_set;      /* the job named a strategy (a rule may then not override it) */
	int64_t max_cost_nusd;  /* 0 = no cap */
	int budget;             /* config.budgets index; resolved default */
	int64_t max_tokens;     /* 0 = the model's default_max_tokens */
	bool has_temperature, has_top_p;
	double temperature, top_p;
	json_t *stop;           /* string or array of strings, borrowed from root, or NULL */
	bool json_response;     /* response_format json_object */
	unsigned caps;          /* required capabilities (enum capability bits) */
	int64_t deadline_ms;    /* unix ms, 0 = none */
	json_t *metadata;       /* borrowed from root, NULL if absent */
};

/* Decodes len bytes of value. Returns 0 on success. On failure returns -1,
 * writes the reason (naming the field) to errstr, and still leaves job->root
 * (when the value parsed as JSON) and job->id (when usable) set so that the
 * error result and the DLQ record can carry them. Call job_clear() either way.
 * cfg is borrowed and must outlive the job. */
int job_decode(const struct config *cfg, const void *value, size_t len, struct job *job,
	       char *errstr, size_t errstr_size);
void job_clear(struct job *job);

#endif
