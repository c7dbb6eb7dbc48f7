/* output: the JSON of results, cost records and DLQ records (SPEC §3-§5).
 *
 * Written straight into a buffer: no JSON tree is built per message. Field
 * order follows the SPEC's examples. */
#ifndef PROMPTYARD_OUTPUT_H
#define PROMPTYARD_OUTPUT_H

#include "buf.h"
#include "config.h"
#include "money.h"
#include "provider.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Attempt outcomes of SPEC §3. */
enum outcome {
	OUTCOME_OK,
	OUTCOME_HTTP, /* http_<status> */
	OUTCOME_TIMEOUT,
	OUTCOME_CONNECT_ERROR,
	OUTCOME_INVALID_RESPONSE,
	OUTCOME_RATE_LIMITED,
	OUTCOME_CIRCUIT_OPEN,
	OUTCOME_INVALID_OUTPUT, /* the content broke the job's json_object/json_schema (SPEC §13) */
	OUTCOME_BATCH_ERRORED,  /* a batch request that failed (SPEC §14) */
	OUTCOME_BATCH_EXPIRED,
	OUTCOME_BATCH_CANCELED,
};

/* The closed set of error codes of SPEC §3. */
enum error_code {
	ERR_NONE,
	ERR_INVALID_JOB,
	ERR_NO_ELIGIBLE_MODEL,
	ERR_COST_CAP_EXCEEDED,
	ERR_BUDGET_EXHAUSTED,
	ERR_PROVIDERS_FAILED,
	ERR_PROVIDER_REJECTED,
	ERR_EXPIRED,
};
const char *error_code_name(enum error_code c);

struct attempt_rec {
	int number; /* 1-based; 0 for the auto classifier's call */
	int model;  /* catalog index */
	enum outcome outcome;
	long http_status; /* 0 when no status was received */
	int64_t latency_ms;
	bool billed; /* the provider reported usage */
	struct usage usage;
	int64_t cost_nusd;
	bool estimated; /* charged at its estimate: its usage was impossible (SPEC §13) */
	bool batch;     /* sent in a provider batch (SPEC §14) */
	char *batch_id; /* the provider's batch id (owned by the attempt's holder), or NULL */
};

/* Writes "ok", "http_429", ... */
void output_outcome(char *out, size_t out_size, const struct attempt_rec *a);

struct result_info {
	const char *id;
	enum error_code error; /* ERR_NONE for status ok */
	const char *error_message;
	const char *content;     /* ok only */
	const char *parsed_json; /* ok json_object/json_schema jobs: the content parsed, as
	                            compact JSON (SPEC §13); NULL otherwise */
	const struct completion_tool_call *tool_calls; /* ok only */
	size_t n_tool_calls;
	const char *refusal; /* ok only: the model's refusal, or NULL */
	enum finish_reason finish_reason;
	int model; /* the answering model, or the last tried, -1 if none */
	struct usage usage;
	int64_t cost_nusd;  /* sum over attempts */
	const char *budget; /* NULL if unknown (invalid job) */
	const struct attempt_rec *attempts;
	size_t n_attempts;
	int64_t latency_ms;
	const char *metadata_json; /* the job's metadata, compact JSON; NULL: {} */
	const char *worker;
	int64_t completed_ms;
};

void output_result(struct buf *b, const struct config *cfg, const struct result_info *r);

void output_cost(struct buf *b, const struct config *cfg, const char *job_id,
                 const struct attempt_rec *a, const char *budget, bool estimated, int64_t ts_ms);

/* A cost record of SPEC §4 from names: for a lease reaped from any worker,
 * whose model need not be in this worker's catalog. */
struct cost_info {
	const char *job_id, *provider, *model, *budget;
	int attempt;
	struct usage usage;
	int64_t cost_nusd;
	bool estimated;
	bool batch; /* "mode": "batch" (SPEC §14), else "sync" */
	int64_t ts_ms;
};
void output_cost_record(struct buf *b, const struct cost_info *c);

/* job: the parsed value (any JSON) or NULL, then raw is written as a string. */
void output_dlq(struct buf *b, const json_t *job, const char *raw, size_t raw_len,
                enum error_code code, const char *message, const char *topic, int32_t partition,
                int64_t offset, int64_t failed_ms);

#endif
