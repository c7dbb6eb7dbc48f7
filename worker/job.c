/* job: decoding and validation of one input message (SPEC §2).
 *
 * The checks run in the order of the SPEC §2 table, so the error names the
 * first offending field in that order. Every string the job keeps points into
 * job->root; only the messages and models arrays are allocated.
 *
 * The decoder is three files around job_int.h: this one reads the message
 * and the fields that are single values (model, budget, caps, sampling,
 * deadline, metadata, mode); job_content.c the prompt or messages with
 * their content parts, images and documents; job_tools.c the tools,
 * tool_choice and the response_format schema. */
#include "job.h"

#include "buf.h"
#include "jload.h"
#include "job_int.h"
#include "jsonschema.h"
#include "money.h"
#include "timeutil.h"

#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *role_name(enum role r)
{
	switch (r) {
	case ROLE_SYSTEM: return "system";
	case ROLE_USER: return "user";
	case ROLE_ASSISTANT: return "assistant";
	case ROLE_TOOL: return "tool";
	}
	return "?";
}

/* ---------------------------------------------------------------- errors */

/* Replaces every byte that does not belong to a well-formed UTF-8 sequence
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF) with '?'.
 * The error text ends up as a JSON string in the result and the DLQ record,
 * where invalid UTF-8 cannot go; snprintf truncation or a jansson message
 * quoting raw input could otherwise cut a character in half. */
static void utf8_scrub(char *s)
{
	unsigned char *p = (unsigned char *)s, *end = p + strlen(s);
	while (p < end) {
		size_t n = utf8_seq_len(p, end);
		if (n == 0)
			*p++ = '?';
		else
			p += n;
	}
}

void job_fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;
	if (!errstr || errstr_size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
	utf8_scrub(errstr);
}

const char *job_quote_cut(const char *s, char *out)
{
	size_t len = strlen(s), n = QUOTE_MAX;
	if (len <= QUOTE_MAX)
		return s;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	memcpy(out, s, n);
	memcpy(out + n, "...", 4);
	return out;
}

/* ---------------------------------------------------------------- fields */

static int dec_id(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "id");
	if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > JOB_ID_MAX) {
		job_fail(d->err, d->err_size, "id: must be a string of 1 to %d bytes", JOB_ID_MAX);
		return -1;
	}
	d->job->id = json_string_value(v);
	return 0;
}

static int dec_model(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "model");
	char q[QUOTE_MAX + 4];

	if (!v)
		return 0;
	if (!json_is_string(v)) {
		job_fail(d->err, d->err_size, "model: must be a string naming a catalog model");
		return -1;
	}
	d->job->model = config_model_index(d->cfg, json_string_value(v));
	if (d->job->model < 0) {
		job_fail(d->err, d->err_size, "model: unknown model \"%s\"",
		         job_quote_cut(json_string_value(v), q));
		return -1;
	}
	return 0;
}

/* A name given twice is kept once: `models` is a set to route within. */
static int dec_models(struct job_dec *d)
{
	struct job *job = d->job;
	json_t *v = json_object_get(d->root, "models");
	char q[QUOTE_MAX + 4];

	if (!v)
		return 0;
	if (!json_is_array(v) || json_array_size(v) == 0) {
		job_fail(d->err, d->err_size,
		         "models: must be a non-empty array of catalog model names");
		return -1;
	}
	job->models = xcalloc(json_array_size(v), sizeof *job->models);
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);
		int idx;
		size_t k;

		if (!json_is_string(e)) {
			job_fail(d->err, d->err_size, "models[%zu]: must be a string", i);
			return -1;
		}
		idx = config_model_index(d->cfg, json_string_value(e));
		if (idx < 0) {
			job_fail(d->err, d->err_size, "models[%zu]: unknown model \"%s\"", i,
			         job_quote_cut(json_string_value(e), q));
			return -1;
		}
		for (k = 0; k < job->n_models && job->models[k] != idx; k++)
			;
		if (k == job->n_models)
			job->models[job->n_models++] = idx;
	}
	return 0;
}

/* Runs after dec_model: the default depends on whether a model is pinned. */
static int dec_allow_fallbacks(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "allow_fallbacks");

	if (!v) {
		d->job->allow_fallbacks = d->job->model < 0;
		return 0;
	}
	if (!json_is_boolean(v)) {
		job_fail(d->err, d->err_size, "allow_fallbacks: must be true or false");
		return -1;
	}
	d->job->allow_fallbacks = json_is_true(v);
	return 0;
}

static int dec_strategy(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "strategy");
	char q[QUOTE_MAX + 4];

	if (!v) {
		d->job->strategy = d->cfg->worker.default_strategy;
		return 0;
	}
	if (!json_is_string(v)) {
		job_fail(d->err, d->err_size,
		         "strategy: must be \"cheapest\", \"balanced\", \"fastest\", \"reliable\" "
		         "or "
		         "\"auto\"");
		return -1;
	}
	if (strategy_parse(json_string_value(v), &d->job->strategy) != 0) {
		job_fail(d->err, d->err_size,
		         "strategy: unknown strategy \"%s\"; must be \"cheapest\", \"balanced\", "
		         "\"fastest\", \"reliable\" or \"auto\"",
		         job_quote_cut(json_string_value(v), q));
		return -1;
	}
	d->job->strategy_set = true;
	return 0;
}

/* A cap is rounded down to whole nano-USD, the safe direction: the worker then
 * never spends more than the job allowed. money_usd_to_nusd() rounds to the
 * nearest, which is right for the decimal a user wrote with up to nine places
 * (0.3 is 299999999.99999994 nano-USD as a double and must stay 300000000);
 * only when the nearest lies above usd x 1e9 by more than the double's own
 * error (the cap had finer digits, e.g. 0.0000000015) is it taken one lower.
 * A positive cap below one nano-USD would round to 0, which means "no cap":
 * it is refused instead. */
static int dec_max_cost(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "max_cost_usd");
	double usd, exact;
	int64_t nusd;

	if (!v)
		return 0;
	if (!json_is_number(v) || !(json_number_value(v) > 0)) {
		job_fail(d->err, d->err_size, "max_cost_usd: must be a number greater than 0");
		return -1;
	}
	usd = json_number_value(v);
	nusd = money_usd_to_nusd(usd);
	if (nusd < 0) {
		job_fail(d->err, d->err_size, "max_cost_usd: must be at most 9000000000");
		return -1;
	}
	exact = usd * 1e9;
	if ((double)nusd - exact > 4 * DBL_EPSILON * exact)
		nusd--;
	if (nusd == 0) {
		job_fail(d->err, d->err_size,
		         "max_cost_usd: must be at least 0.000000001 (one nano-USD)");
		return -1;
	}
	d->job->max_cost_nusd = nusd;
	return 0;
}

static job_budget_known_fn *budget_known;
static void *budget_known_opaque;

void job_set_budget_lookup(job_budget_known_fn *fn, void *opaque)
{
	budget_known = fn;
	budget_known_opaque = opaque;
}

static int dec_budget(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "budget");
	const char *name = d->cfg->worker.default_budget;
	char q[QUOTE_MAX + 4];

	if (v) {
		if (!json_is_string(v)) {
			job_fail(d->err, d->err_size,
			         "budget: must be a string naming a configured budget");
			return -1;
		}
		name = json_string_value(v);
	}
	/* The default is checked too: config_load() guarantees it exists, and a
	 * hand-made config that breaks that must not index budgets with -1. */
	d->job->budget = name ? config_budget_index(d->cfg, name) : -1;
	d->job->budget_name = name;
	if (d->job->budget < 0 && name && budget_known && budget_known(budget_known_opaque, name))
		return 0; /* a budget of Redis alone */
	if (d->job->budget < 0) {
		job_fail(d->err, d->err_size, "budget: unknown budget \"%s\"",
		         name ? job_quote_cut(name, q) : "(none configured)");
		return -1;
	}
	return 0;
}

/* A real such as 5.0 is refused: the SPEC says integer, and JSON's own types
 * are the only ones a producer can check against the schema. */
static int dec_max_tokens(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "max_tokens");

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > JOB_MAX_TOKENS_MAX) {
		job_fail(d->err, d->err_size, "max_tokens: must be an integer from 1 to %d",
		         JOB_MAX_TOKENS_MAX);
		return -1;
	}
	d->job->max_tokens = json_integer_value(v);
	return 0;
}

/* temperature in [0, JOB_TEMPERATURE_MAX], top_p in [0, 1]: see job.h. */
static int dec_sampling(struct job_dec *d)
{
	json_t *t = json_object_get(d->root, "temperature");
	json_t *p = json_object_get(d->root, "top_p");

	if (t) {
		if (!json_is_number(t) || !(json_number_value(t) >= 0) ||
		    !(json_number_value(t) <= JOB_TEMPERATURE_MAX)) {
			job_fail(d->err, d->err_size, "temperature: must be a number from 0 to %d",
			         JOB_TEMPERATURE_MAX);
			return -1;
		}
		d->job->has_temperature = true;
		d->job->temperature = json_number_value(t);
	}
	if (p) {
		if (!json_is_number(p) || !(json_number_value(p) >= 0) ||
		    !(json_number_value(p) <= 1)) {
			job_fail(d->err, d->err_size, "top_p: must be a number from 0 to 1");
			return -1;
		}
		d->job->has_top_p = true;
		d->job->top_p = json_number_value(p);
	}
	return 0;
}

/* The number of stop sequences is not limited here (OpenAI takes 4, others
 * more); the provider judges. Each one must be a string. */
static int dec_stop(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "stop");

	if (!v)
		return 0;
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (!json_is_string(json_array_get(v, i))) {
				job_fail(d->err, d->err_size, "stop[%zu]: must be a string", i);
				return -1;
			}
		}
	} else if (!json_is_string(v)) {
		job_fail(d->err, d->err_size, "stop: must be a string or an array of strings");
		return -1;
	}
	d->job->stop = v;
	return 0;
}

static int dec_capabilities(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "capabilities");
	char q[QUOTE_MAX + 4];

	if (!v)
		return 0;
	if (!json_is_array(v)) {
		job_fail(d->err, d->err_size,
		         "capabilities: must be an array of \"json\", \"json_schema\", \"tools\", "
		         "\"vision\", \"pdf\", \"reasoning\" or \"long_context\"");
		return -1;
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);
		unsigned bit;

		if (!json_is_string(e)) {
			job_fail(d->err, d->err_size, "capabilities[%zu]: must be a string", i);
			return -1;
		}
		if (capability_parse(json_string_value(e), &bit) != 0) {
			job_fail(
			        d->err, d->err_size,
			        "capabilities[%zu]: unknown capability \"%s\"; must be \"json\", "
			        "\"json_schema\", \"tools\", \"vision\", \"pdf\", \"reasoning\" or "
			        "\"long_context\"",
			        i, job_quote_cut(json_string_value(e), q));
			return -1;
		}
		d->job->caps |= bit;
	}
	return 0;
}

/* 0 means "no deadline" in struct job, so a deadline at or before the epoch
 * (long past, which is all that matters) is stored as 1. */
static int dec_deadline(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "deadline");
	int64_t ms;

	if (!v)
		return 0;
	if (!json_is_string(v) || time_parse_rfc3339(json_string_value(v), &ms) != 0) {
		job_fail(
		        d->err, d->err_size,
		        "deadline: must be an RFC 3339 date-time such as \"2026-11-22T03:00:00Z\"");
		return -1;
	}
	d->job->deadline_ms = ms > 0 ? ms : 1;
	return 0;
}

/* The size is that of json_dumps(metadata, JSON_COMPACT): what the result
 * will carry, kept as metadata_json. */
static int dec_metadata(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "metadata");

	if (!v)
		return 0;
	if (!json_is_object(v)) {
		job_fail(d->err, d->err_size, "metadata: must be an object");
		return -1;
	}
	/* Serialized once: the result carries this text. */
	char *text = json_dumps(v, JSON_COMPACT);
	if (!text || strlen(text) > JOB_METADATA_MAX) {
		free(text);
		job_fail(d->err, d->err_size, "metadata: larger than %d bytes serialized",
		         JOB_METADATA_MAX);
		return -1;
	}
	d->job->metadata = v;
	d->job->metadata_json = text;
	return 0;
}

static int dec_reasoning(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "reasoning_effort");

	d->job->effort = EFFORT_NONE;
	if (!v)
		return 0;
	if (!json_is_string(v) || reasoning_effort_parse(json_string_value(v), &d->job->effort)) {
		job_fail(d->err, d->err_size,
		         "reasoning_effort: must be \"low\", \"medium\" or \"high\"");
		return -1;
	}
	d->job->caps |= CAP_REASONING;
	return 0;
}

/* mode and complete_by (SPEC §14). complete_by's default is counted from
 * the decode, which is when the worker took the job. */
static int dec_mode(struct job_dec *d)
{
	json_t *v = json_object_get(d->root, "mode");
	json_t *by = json_object_get(d->root, "complete_by");
	int64_t ms;

	d->job->mode = d->cfg->worker.default_mode;
	if (v) {
		if (!json_is_string(v) || mode_parse(json_string_value(v), &d->job->mode) != 0) {
			job_fail(d->err, d->err_size,
			         "mode: must be \"sync\", \"batch\" or \"auto\"");
			return -1;
		}
		d->job->mode_set = true;
	}
	if (!by) {
		d->job->complete_by_ms = time_now_ms() + d->cfg->batch.default_window_s * 1000;
		return 0;
	}
	if (!json_is_string(by) || time_parse_rfc3339(json_string_value(by), &ms) != 0) {
		job_fail(d->err, d->err_size,
		         "complete_by: must be an RFC 3339 date-time such as "
		         "\"2026-11-22T07:00:00Z\"");
		return -1;
	}
	d->job->complete_by_ms = ms > 0 ? ms : 1;
	return 0;
}

/* ---------------------------------------------------------------- decode */

/* Parse flags, chosen once:
 * - JSON_DECODE_ANY so that "42" or "\"x\"" parse and get the precise
 *   "value: must be a JSON object" rather than a parser's complaint;
 * - JSON_REJECT_DUPLICATES because an object with a key twice is ambiguous
 *   (which "id", which "max_cost_usd"?) and parsers disagree on the answer;
 *   for an idempotency key and a cost cap a loud invalid_job is better;
 * - no JSON_ALLOW_NUL: "\u0000" in any string is refused, so every string the
 *   job hands on is a proper C string.
 * Every byte's UTF-8 is checked. jload reads the text as json_loadb does, in
 * a fraction of its instructions (jload.h). */
#define JOB_PARSE_FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES)

int job_decode(const struct config *cfg, const void *value, size_t len, struct job *job,
               char *errstr, size_t errstr_size)
{
	struct job_dec d = {cfg, NULL, job, errstr, errstr_size};
	int64_t max_bytes =
	        cfg->worker.max_job_bytes > 0 ? cfg->worker.max_job_bytes : JOB_MAX_BYTES_DEFAULT;
	json_error_t jerr;
	int rc = -1;

	memset(job, 0, sizeof *job);
	job->model = -1;
	job->budget = -1;
	if (errstr && errstr_size > 0)
		errstr[0] = '\0';

	if ((uint64_t)len > (uint64_t)max_bytes) {
		job_fail(errstr, errstr_size,
		         "value: %zu bytes is more than worker.max_job_bytes (%lld)", len,
		         (long long)max_bytes);
		goto out;
	}
	job->root = jload(value ? value : "", len, JOB_PARSE_FLAGS, &jerr);
	if (!job->root) {
		switch (json_error_code(&jerr)) {
		case json_error_invalid_utf8:
			job_fail(errstr, errstr_size,
			         "value: invalid UTF-8: %s at line %d column %d", jerr.text,
			         jerr.line, jerr.column);
			break;
		case json_error_null_character:
			job_fail(errstr, errstr_size,
			         "value: invalid JSON: \\u0000 is not allowed in a string at line "
			         "%d "
			         "column %d",
			         jerr.line, jerr.column);
			break;
		default:
			job_fail(errstr, errstr_size,
			         "value: invalid JSON: %s at line %d column %d", jerr.text,
			         jerr.line, jerr.column);
			break;
		}
		goto out;
	}
	if (!json_is_object(job->root)) {
		/* Dropped, so that the DLQ record keeps the value as the string it was
		 * (SPEC §5: an object or a string) and a replay sends the same bytes. */
		json_decref(job->root);
		job->root = NULL;
		job_fail(errstr, errstr_size, "value: must be a JSON object");
		goto out;
	}
	d.root = job->root;

	if (dec_id(&d) != 0 || job_dec_content(&d) != 0 || dec_model(&d) != 0 ||
	    dec_models(&d) != 0 || dec_allow_fallbacks(&d) != 0 || dec_strategy(&d) != 0 ||
	    dec_max_cost(&d) != 0 || dec_budget(&d) != 0 || dec_max_tokens(&d) != 0 ||
	    dec_sampling(&d) != 0 || dec_stop(&d) != 0 || job_dec_response_format(&d) != 0 ||
	    dec_capabilities(&d) != 0 || dec_deadline(&d) != 0 || dec_metadata(&d) != 0 ||
	    job_dec_tools(&d) != 0 || job_dec_tool_choice(&d) != 0 || dec_reasoning(&d) != 0 ||
	    dec_mode(&d) != 0)
		goto out;
	rc = 0;

out:
	if (rc != 0) {
		/* A failed job keeps only what the error result and DLQ record need. */
		json_t *root = job->root;
		const char *id = job->id;

		job->root = NULL;
		job_clear(job);
		job->root = root;
		job->id = id;
		job->model = -1;
		job->budget = -1;
	}
	return rc;
}

void job_clear(struct job *job)
{
	if (!job)
		return;
	for (size_t i = 0; i < job->n_parts; i++)
		free(job->parts[i].fetched);
	free(job->parts);
	for (size_t i = 0; i < job->n_texts; i++)
		free(job->texts[i]);
	free(job->texts);
	jsonschema_free(job->validator);
	free(job->messages);
	free(job->models);
	free(job->metadata_json);
	json_decref(job->root);
	memset(job, 0, sizeof *job);
	job->model = -1;
	job->budget = -1;
}
