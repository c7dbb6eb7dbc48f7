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
	static const char *names[] = {
	        "ok",           "http",        "timeout", "connect_error", "invalid_response",
	        "rate_limited", "circuit_open"};
	if (a->outcome == OUTCOME_HTTP)
		snprintf(out, out_size, "http_%03ld", a->http_status);
	else
		snprintf(out, out_size, "%s", names[a->outcome]);
}

static void put_str(struct buf *b, const char *key, const char *v)
{
	buf_printf(b, "\"%s\":", key);
	buf_json_str(b, v, strlen(v));
}

static void put_usd(struct buf *b, const char *key, int64_t nusd)
{
	char usd[32];
	money_format_usd(nusd, usd, sizeof usd);
	buf_printf(b, "\"%s\":%s", key, usd);
}

static void put_time(struct buf *b, const char *key, int64_t ms)
{
	char ts[40];
	time_format_rfc3339(ms, ts, sizeof ts);
	buf_printf(b, "\"%s\":\"%s\"", key, ts);
}

static void put_usage(struct buf *b, const struct usage *u)
{
	buf_printf(b,
	           "\"usage\":{\"input_tokens\":%lld,\"output_tokens\":%lld,"
	           "\"cached_input_tokens\":%lld}",
	           (long long)u->input_tokens, (long long)u->output_tokens,
	           (long long)u->cached_input_tokens);
}

void output_result(struct buf *b, const struct config *cfg, const struct result_info *r)
{
	const struct model_conf *m = r->model >= 0 ? &cfg->models[r->model] : NULL;
	buf_puts(b, "{");
	put_str(b, "id", r->id);
	buf_printf(b, ",\"status\":\"%s\"", r->error == ERR_NONE ? "ok" : "error");
	if (r->error == ERR_NONE) {
		buf_puts(b, ",");
		put_str(b, "content", r->content ? r->content : "");
		buf_printf(b, ",\"finish_reason\":\"%s\"", finish_reason_name(r->finish_reason));
	} else {
		buf_printf(b, ",\"error\":{\"code\":\"%s\",", error_code_name(r->error));
		put_str(b, "message", r->error_message ? r->error_message : "");
		buf_puts(b, "}");
	}
	if (m) {
		buf_puts(b, ",");
		put_str(b, "model", m->name);
		buf_puts(b, ",");
		put_str(b, "provider", cfg->providers[m->provider].name);
	}
	buf_puts(b, ",");
	put_usage(b, &r->usage);
	buf_puts(b, ",");
	put_usd(b, "cost_usd", r->cost_nusd);
	if (r->budget) {
		buf_puts(b, ",");
		put_str(b, "budget", r->budget);
	}
	buf_puts(b, ",\"attempts\":[");
	for (size_t i = 0; i < r->n_attempts; i++) {
		const struct attempt_rec *a = &r->attempts[i];
		const struct model_conf *am = &cfg->models[a->model];
		char outcome[32];
		output_outcome(outcome, sizeof outcome, a);
		buf_puts(b, i ? ",{" : "{");
		put_str(b, "model", am->name);
		buf_puts(b, ",");
		put_str(b, "provider", cfg->providers[am->provider].name);
		buf_printf(b, ",\"outcome\":\"%s\"", outcome);
		if (a->http_status)
			buf_printf(b, ",\"http_status\":%ld", a->http_status);
		buf_printf(b, ",\"latency_ms\":%lld,", (long long)a->latency_ms);
		put_usd(b, "cost_usd", a->cost_nusd);
		buf_puts(b, "}");
	}
	buf_printf(b, "],\"latency_ms\":%lld,\"metadata\":", (long long)r->latency_ms);
	if (r->metadata) {
		char *md = json_dumps(r->metadata, JSON_COMPACT);
		buf_puts(b, md ? md : "{}");
		free(md);
	} else {
		buf_puts(b, "{}");
	}
	buf_puts(b, ",");
	put_str(b, "worker", r->worker);
	buf_puts(b, ",");
	put_time(b, "completed_at", r->completed_ms);
	buf_puts(b, "}");
}

void output_cost_record(struct buf *b, const struct cost_info *c)
{
	buf_puts(b, "{");
	put_str(b, "job_id", c->job_id);
	buf_printf(b, ",\"attempt\":%d,", c->attempt);
	put_str(b, "provider", c->provider);
	buf_puts(b, ",");
	put_str(b, "model", c->model);
	buf_puts(b, ",");
	put_str(b, "budget", c->budget);
	buf_printf(b,
	           ",\"input_tokens\":%lld,\"output_tokens\":%lld,\"cached_input_tokens\":%lld,"
	           "\"cost_nusd\":%lld,",
	           (long long)c->usage.input_tokens, (long long)c->usage.output_tokens,
	           (long long)c->usage.cached_input_tokens, (long long)c->cost_nusd);
	put_usd(b, "cost_usd", c->cost_nusd);
	buf_printf(b, ",\"estimated\":%s,", c->estimated ? "true" : "false");
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
	        .estimated = estimated,
	        .ts_ms = ts_ms,
	};
	output_cost_record(b, &c);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
	if (s[0] < 0x80)
		return 1;
	size_t n = (s[0] & 0xE0) == 0xC0   ? 2
	           : (s[0] & 0xF0) == 0xE0 ? 3
	           : (s[0] & 0xF8) == 0xF0 ? 4
	                                   : 0;
	if (!n || n > left)
		return 0;
	uint32_t cp = s[0] & (0x7F >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* Writes raw as a JSON string, each byte that is not valid UTF-8 as U+FFFD.
 * Returns false if any byte was replaced. */
static bool put_raw_string(struct buf *b, const char *raw, size_t len)
{
	struct buf clean = {0};
	bool exact = true;
	const unsigned char *s = (const unsigned char *)raw;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(s + i, len - i);
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

static void put_base64(struct buf *b, const unsigned char *s, size_t len)
{
	static const char tbl[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	buf_puts(b, "\"");
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < len)
			v |= s[i + 2];
		char q[4] = {tbl[(v >> 18) & 63], tbl[(v >> 12) & 63],
		             i + 1 < len ? tbl[(v >> 6) & 63] : '=',
		             i + 2 < len ? tbl[v & 63] : '='};
		buf_append(b, q, 4);
	}
	buf_puts(b, "\"");
}

void output_dlq(struct buf *b, const json_t *job, const char *raw, size_t raw_len,
                enum error_code code, const char *message, const char *topic, int32_t partition,
                int64_t offset, int64_t failed_ms)
{
	buf_puts(b, "{\"job\":");
	char *dumped = job ? json_dumps(job, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (dumped) {
		buf_puts(b, dumped);
	} else if (!put_raw_string(b, raw ? raw : "", raw ? raw_len : 0)) {
		/* Not text: the exact bytes ride along so that nothing is lost. */
		buf_puts(b, ",\"job_base64\":");
		put_base64(b, (const unsigned char *)raw, raw_len);
	}
	free(dumped);
	buf_printf(b, ",\"error\":{\"code\":\"%s\",", error_code_name(code));
	put_str(b, "message", message ? message : "");
	buf_puts(b, "},\"source\":{");
	put_str(b, "topic", topic);
	buf_printf(b, ",\"partition\":%d,\"offset\":%lld},", (int)partition, (long long)offset);
	put_time(b, "failed_at", failed_ms);
	buf_puts(b, "}");
}
