/* test_output: results, cost records and DLQ records as JSON (SPEC §3-§5),
 * with the fields of §13 and §14: parsed, tool_calls, refusal, usage's
 * reasoning and cache-write tokens, an attempt's mode and batch_id, a cost
 * record's mode. Each output is parsed back and checked field by field. */
#include "output.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static struct provider_conf providers[] = {{.name = "openai", .type = "openai"},
                                           {.name = "anthropic", .type = "anthropic"}};
static struct model_conf models[] = {{.name = "gpt-4o-mini", .provider = 0},
                                     {.name = "claude-haiku", .provider = 1}};
static struct config cfg = {
        .providers = providers, .n_providers = 2, .models = models, .n_models = 2};

static json_t *parse(const struct buf *b)
{
	json_error_t err;
	json_t *j = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (!j)
		UNIT_FAIL("not JSON (%s): %s", err.text, b->data);
	return j;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "(absent)";
}

TEST(ok_result_with_rich_fields)
{
	struct completion_tool_call calls[] = {
	        {.id = "call_1", .name = "lookup", .arguments = "{\"q\":\"a \\\"b\\\"\"}"},
	        {.id = "call_2", .name = "other", .arguments = "{}"}};
	struct attempt_rec attempts[] = {
	        {.number = 1,
	         .model = 1,
	         .outcome = OUTCOME_INVALID_OUTPUT,
	         .http_status = 200,
	         .latency_ms = 30,
	         .billed = true,
	         .cost_nusd = 1500},
	        {.number = 2,
	         .model = 0,
	         .outcome = OUTCOME_OK,
	         .http_status = 200,
	         .latency_ms = 40,
	         .billed = true,
	         .cost_nusd = 2500,
	         .batch = true,
	         .batch_id = "batch_abc"},
	};
	struct result_info r = {
	        .id = "doc-1",
	        .content = "{\"total\": 12.5}",
	        .parsed_json = "{\"total\":12.5}",
	        .tool_calls = calls,
	        .n_tool_calls = 2,
	        .refusal = NULL,
	        .finish_reason = FINISH_TOOL_CALLS,
	        .model = 0,
	        .usage = {.input_tokens = 100,
	                  .cached_input_tokens = 10,
	                  .cache_write_tokens = 20,
	                  .output_tokens = 50,
	                  .reasoning_tokens = 30},
	        .cost_nusd = 4000,
	        .budget = "nightly",
	        .attempts = attempts,
	        .n_attempts = 2,
	        .worker = "w",
	        .completed_ms = 1764385200123,
	};
	struct buf b = {0};
	output_result(&b, &cfg, &r);
	json_t *j = parse(&b);
	if (j) {
		CHECK_STR(str(j, "status"), "ok");
		CHECK_STR(str(j, "finish_reason"), "tool_calls");
		CHECK(json_real_value(json_object_get(json_object_get(j, "parsed"), "total")) ==
		      12.5);
		json_t *tc = json_object_get(j, "tool_calls");
		CHECK_INT(json_array_size(tc), 2);
		CHECK_STR(str(json_array_get(tc, 0), "id"), "call_1");
		CHECK_STR(str(json_array_get(tc, 0), "name"), "lookup");
		CHECK_STR(str(json_array_get(tc, 0), "arguments"), "{\"q\":\"a \\\"b\\\"\"}");
		CHECK(json_object_get(j, "refusal") == NULL);
		json_t *u = json_object_get(j, "usage");
		CHECK_INT(json_integer_value(json_object_get(u, "reasoning_tokens")), 30);
		CHECK_INT(json_integer_value(json_object_get(u, "cache_write_tokens")), 20);
		json_t *a = json_object_get(j, "attempts");
		CHECK_STR(str(json_array_get(a, 0), "outcome"), "invalid_output");
		CHECK_STR(str(json_array_get(a, 0), "mode"), "sync");
		CHECK(json_object_get(json_array_get(a, 0), "batch_id") == NULL);
		CHECK_STR(str(json_array_get(a, 1), "mode"), "batch");
		CHECK_STR(str(json_array_get(a, 1), "batch_id"), "batch_abc");
	}
	json_decref(j);

	/* A refusal, and a plain text job: no parsed, no tool_calls. */
	buf_reset(&b);
	r.parsed_json = NULL;
	r.n_tool_calls = 0;
	r.refusal = "I can't help with that.";
	r.finish_reason = FINISH_REFUSAL;
	output_result(&b, &cfg, &r);
	j = parse(&b);
	if (j) {
		CHECK_STR(str(j, "finish_reason"), "refusal");
		CHECK_STR(str(j, "refusal"), "I can't help with that.");
		CHECK(json_object_get(j, "parsed") == NULL);
		CHECK(json_object_get(j, "tool_calls") == NULL);
	}
	json_decref(j);
	buf_free(&b);
}

TEST(cost_record_mode)
{
	struct attempt_rec a = {.number = 3,
	                        .model = 1,
	                        .billed = true,
	                        .cost_nusd = 179400,
	                        .usage = {.input_tokens = 812, .output_tokens = 96}};
	struct buf b = {0};
	output_cost(&b, &cfg, "doc-42", &a, "nightly", false, 1764385200000);
	json_t *j = parse(&b);
	CHECK_STR(str(j, "mode"), "sync");
	CHECK_INT(json_integer_value(json_object_get(j, "cost_nusd")), 179400);
	json_decref(j);
	buf_reset(&b);
	a.batch = true;
	output_cost(&b, &cfg, "doc-42", &a, "nightly", false, 1764385200000);
	j = parse(&b);
	CHECK_STR(str(j, "mode"), "batch");
	CHECK_STR(str(j, "model"), "claude-haiku");
	CHECK_STR(str(j, "provider"), "anthropic");
	json_decref(j);
	buf_free(&b);
}

TEST(outcome_names)
{
	static const struct {
		enum outcome o;
		long status;
		const char *name;
	} rows[] = {{OUTCOME_OK, 200, "ok"},
	            {OUTCOME_HTTP, 529, "http_529"},
	            {OUTCOME_INVALID_OUTPUT, 200, "invalid_output"},
	            {OUTCOME_BATCH_ERRORED, 0, "batch_errored"},
	            {OUTCOME_BATCH_EXPIRED, 0, "batch_expired"},
	            {OUTCOME_BATCH_CANCELED, 0, "batch_canceled"}};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct attempt_rec a = {.outcome = rows[i].o, .http_status = rows[i].status};
		char name[32];
		output_outcome(name, sizeof name, &a);
		CHECK_STR(name, rows[i].name);
	}
}

TEST(dlq_of_binary_bytes)
{
	/* Bytes that are not UTF-8 ride along as base64. */
	struct buf b = {0};
	output_dlq(&b, NULL, "\xff\x00\x01", 3, ERR_INVALID_JOB, "value: invalid UTF-8", "jobs", 2,
	           7, 1764385200000);
	json_t *j = parse(&b);
	CHECK_STR(str(j, "job_base64"), "/wAB");
	CHECK_STR(str(json_object_get(j, "error"), "code"), "invalid_job");
	json_decref(j);
	buf_free(&b);
}

int main(void)
{
	RUN(ok_result_with_rich_fields);
	RUN(cost_record_mode);
	RUN(outcome_names);
	RUN(dlq_of_binary_bytes);
	return unit_done();
}
