/* output: results, cost records and DLQ records as JSON text. */
#include "output.h"

#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *error_code_name(enum error_code c)
{
	static const char *names[] = {"",
	                              "invalid_job",
	                              "no_eligible_model",
	                              "cost_cap_exceeded",
	                              "budget_exhausted",
	                              "providers_failed",
	                              "provider_rejected",
	                              "expired"};
	return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "providers_failed";
}

void output_outcome(char *out, size_t out_size, const struct attempt_rec *a)
{
	static const char *names[] = {"ok",
	                              "http",
	                              "timeout",
	                              "connect_error",
	                              "invalid_response",
	                              "rate_limited",
	                              "circuit_open",
	                              "invalid_output",
	                              "batch_errored",
	                              "batch_expired",
	                              "batch_canceled"};
	if (a->outcome == OUTCOME_HTTP)
		snprintf(out, out_size, "http_%03ld", a->http_status);
	else
		snprintf(out, out_size, "%s", names[a->outcome]);
}

/* "key": with the comma before it unless the object or array has just begun.
 * Keys are ours: nothing to escape. */
static void put_key(struct buf *b, const char *key)
{
	/* Written in place: a result and its cost record have 40 keys. */
	char last = b->len ? b->data[b->len - 1] : '{';
	size_t n = strlen(key);
	buf_reserve(b, n + 4);
	char *p = b->data + b->len;
	if (last != '{' && last != '[')
		*p++ = ',';
	*p++ = '"';
	memcpy(p, key, n);
	p += n;
	*p++ = '"';
	*p++ = ':';
	*p = '\0';
	b->len = (size_t)(p - b->data);
}

static void put_str(struct buf *b, const char *key, const char *v)
{
	put_key(b, key);
	buf_json_str(b, v, strlen(v));
}

/* A string of ours that needs no escaping: a code, an outcome, a time. */
static void put_word(struct buf *b, const char *key, const char *word)
{
	put_key(b, key);
	buf_puts(b, "\"");
	buf_puts(b, word);
	buf_puts(b, "\"");
}

static void put_int(struct buf *b, const char *key, int64_t v)
{
	put_key(b, key);
	buf_i64(b, v);
}

static void put_usd(struct buf *b, const char *key, int64_t nusd)
{
	char usd[32];
	money_format_usd(nusd, usd, sizeof usd);
	put_key(b, key);
	buf_puts(b, usd);
}

static void put_time(struct buf *b, const char *key, int64_t ms)
{
	char ts[40];
	time_format_rfc3339(ms, ts, sizeof ts);
	put_word(b, key, ts);
}

void output_result(struct buf *b, const struct config *cfg, const struct result_info *r)
{
	const struct model_conf *m = r->model >= 0 ? &cfg->models[r->model] : NULL;
	buf_puts(b, "{");
	put_str(b, "id", r->id);
	put_word(b, "status", r->error == ERR_NONE ? "ok" : "error");
	if (r->error == ERR_NONE) {
		put_str(b, "content", r->content ? r->content : "");
		if (r->parsed_json) {
			put_key(b, "parsed");
			buf_puts(b, r->parsed_json);
		}
		if (r->n_tool_calls) {
			put_key(b, "tool_calls");
			buf_puts(b, "[");
			for (size_t i = 0; i < r->n_tool_calls; i++) {
				const struct completion_tool_call *tc = &r->tool_calls[i];
				buf_puts(b, i ? ",{" : "{");
				put_str(b, "id", tc->id);
				put_str(b, "name", tc->name);
				put_str(b, "arguments", tc->arguments);
				buf_puts(b, "}");
			}
			buf_puts(b, "]");
		}
		if (r->refusal)
			put_str(b, "refusal", r->refusal);
		put_word(b, "finish_reason", finish_reason_name(r->finish_reason));
	} else {
		put_key(b, "error");
		buf_puts(b, "{");
		put_word(b, "code", error_code_name(r->error));
		put_str(b, "message", r->error_message ? r->error_message : "");
		buf_puts(b, "}");
	}
	if (m) {
		put_str(b, "model", m->name);
		put_str(b, "provider", cfg->providers[m->provider].name);
	}
	put_key(b, "usage");
	buf_puts(b, "{");
	put_int(b, "input_tokens", r->usage.input_tokens);
	put_int(b, "output_tokens", r->usage.output_tokens);
	put_int(b, "cached_input_tokens", r->usage.cached_input_tokens);
	put_int(b, "reasoning_tokens", r->usage.reasoning_tokens);
	put_int(b, "cache_write_tokens", r->usage.cache_write_tokens);
	buf_puts(b, "}");
	put_usd(b, "cost_usd", r->cost_nusd);
	if (r->budget)
		put_str(b, "budget", r->budget);
	put_key(b, "attempts");
	buf_puts(b, "[");
	for (size_t i = 0; i < r->n_attempts; i++) {
		const struct attempt_rec *a = &r->attempts[i];
		const struct model_conf *am = &cfg->models[a->model];
		char outcome[32];
		output_outcome(outcome, sizeof outcome, a);
		buf_puts(b, i ? ",{" : "{");
		put_str(b, "model", am->name);
		put_str(b, "provider", cfg->providers[am->provider].name);
		put_word(b, "outcome", outcome);
		if (a->http_status)
			put_int(b, "http_status", a->http_status);
		put_int(b, "latency_ms", a->latency_ms);
		put_usd(b, "cost_usd", a->cost_nusd);
		put_word(b, "mode", a->batch ? "batch" : "sync");
		if (a->batch_id)
			put_str(b, "batch_id", a->batch_id);
		buf_puts(b, "}");
	}
	buf_puts(b, "]");
	put_int(b, "latency_ms", r->latency_ms);
	put_key(b, "metadata");
	buf_puts(b, r->metadata_json ? r->metadata_json : "{}");
	put_str(b, "worker", r->worker);
	put_time(b, "completed_at", r->completed_ms);
	buf_puts(b, "}");
}

void output_cost_record(struct buf *b, const struct cost_info *c)
{
	buf_puts(b, "{");
	put_str(b, "job_id", c->job_id);
	put_int(b, "attempt", c->attempt);
	put_str(b, "provider", c->provider);
	put_str(b, "model", c->model);
	put_str(b, "budget", c->budget);
	put_int(b, "input_tokens", c->usage.input_tokens);
	put_int(b, "output_tokens", c->usage.output_tokens);
	put_int(b, "cached_input_tokens", c->usage.cached_input_tokens);
	put_int(b, "cost_nusd", c->cost_nusd);
	put_usd(b, "cost_usd", c->cost_nusd);
	put_key(b, "estimated");
	buf_puts(b, c->estimated ? "true" : "false");
	put_word(b, "mode", c->batch ? "batch" : "sync");
	put_time(b, "ts", c->ts_ms);
	buf_puts(b, "}");
}

void output_cost(struct buf *b, const struct config *cfg, const char *job_id,
                 const struct attempt_rec *a, const char *budget, bool estimated, int64_t ts_ms)
{
	const struct model_conf *m = &cfg->models[a->model];
	struct cost_info c = {
	        .job_id = job_id,
	        .provider = cfg->providers[m->provider].name,
	        .model = m->name,
	        .budget = budget,
	        .attempt = a->number,
	        .usage = a->usage,
	        .cost_nusd = a->cost_nusd,
	        .estimated = estimated || a->estimated,
	        .batch = a->batch,
	        .ts_ms = ts_ms,
	};
	output_cost_record(b, &c);
}

/* Writes raw as a JSON string, each byte that is not valid UTF-8 as U+FFFD.
 * Returns false if any byte was replaced. */
static bool put_raw_string(struct buf *b, const char *raw, size_t len)
{
	struct buf clean = {0};
	bool exact = true;
	const unsigned char *s = (const unsigned char *)raw;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(s + i, s + len);
		if (n) {
			buf_append(&clean, s + i, n);
			i += n;
		} else {
			buf_puts(&clean, "\xEF\xBF\xBD");
			exact = false;
			i++;
		}
	}
	buf_json_str(b, clean.data ? clean.data : "", clean.len);
	buf_free(&clean);
	return exact;
}

void output_dlq(struct buf *b, const json_t *job, const char *raw, size_t raw_len,
                enum error_code code, const char *message, const char *topic, int32_t partition,
                int64_t offset, int64_t failed_ms)
{
	buf_puts(b, "{");
	put_key(b, "job");
	char *dumped = job ? json_dumps(job, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (dumped) {
		buf_puts(b, dumped);
	} else if (!put_raw_string(b, raw ? raw : "", raw ? raw_len : 0)) {
		/* Not text: the exact bytes ride along so that nothing is lost. */
		put_key(b, "job_base64");
		buf_puts(b, "\"");
		buf_base64(b, (const unsigned char *)raw, raw_len);
		buf_puts(b, "\"");
	}
	free(dumped);
	put_key(b, "error");
	buf_puts(b, "{");
	put_word(b, "code", error_code_name(code));
	put_str(b, "message", message ? message : "");
	buf_puts(b, "}");
	put_key(b, "source");
	buf_puts(b, "{");
	put_str(b, "topic", topic);
	put_int(b, "partition", partition);
	put_int(b, "offset", offset);
	buf_puts(b, "}");
	put_time(b, "failed_at", failed_ms);
	buf_puts(b, "}");
}
