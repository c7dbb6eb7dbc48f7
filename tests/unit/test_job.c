/* test_job: job_decode() against SPEC §2, malformed messages as a table. */
#include "job.h"
#include "timeutil.h"
#include "unit.h"

#include <stdlib.h>

/* ---------------------------------------------------------------- config */

/* A config built by hand, as config_load() would leave it for these keys. */
static struct model_conf test_models[] = {
        {.name = "gpt-4o-mini", .provider = 0},
        {.name = "claude-haiku", .provider = 1},
        {.name = "gemini-flash", .provider = 2},
};
static struct budget_conf test_budgets[] = {
        {.name = "default", .parent = -1},
        {.name = "nightly", .parent = 0},
};
static struct config cfg;

static void cfg_init(void)
{
	memset(&cfg, 0, sizeof cfg);
	cfg.models = test_models;
	cfg.n_models = sizeof test_models / sizeof test_models[0];
	cfg.budgets = test_budgets;
	cfg.n_budgets = sizeof test_budgets / sizeof test_budgets[0];
	cfg.worker.max_job_bytes = 1048576;
	cfg.worker.default_strategy = STRATEGY_BALANCED;
	cfg.worker.default_budget = "default";
	cfg.batch.default_window_s = 86400;
}

/* jansson refuses to make a string of invalid UTF-8: the error must go into JSON. */
static int valid_utf8(const char *s)
{
	json_t *j = json_string(s);
	int ok = j != NULL;
	json_decref(j);
	return ok;
}

/* ---------------------------------------------------------------- malformed */

struct bad_row {
	const char *value;
	size_t len;         /* 0: strlen(value) */
	const char *prefix; /* the error must start with this (the field and ": ") */
	const char *id;     /* job->id afterwards; NULL when the id is not usable */
	int parsed;         /* job->root must be set (the value is a JSON object) */
};

/* Decodes the value, expecting a failure that starts with prefix. */
static void check_bad(const struct bad_row *r, size_t row)
{
	struct job job;
	char err[512];
	size_t len = r->len ? r->len : strlen(r->value);
	int rc = job_decode(&cfg, r->value, len, &job, err, sizeof err);

	if (rc != -1) {
		UNIT_FAIL("row %zu: decoded, expected \"%s...\"", row, r->prefix);
	} else if (strncmp(err, r->prefix, strlen(r->prefix)) != 0) {
		UNIT_FAIL("row %zu: error \"%s\", expected \"%s...\"", row, err, r->prefix);
	}
	if (!valid_utf8(err))
		UNIT_FAIL("row %zu: error is not valid UTF-8", row);
	if (r->id && (!job.id || strcmp(job.id, r->id) != 0))
		UNIT_FAIL("row %zu: id \"%s\", expected \"%s\"", row, job.id ? job.id : "(null)",
		          r->id);
	if (!r->id && job.id)
		UNIT_FAIL("row %zu: id \"%s\", expected none", row, job.id);
	if (!!job.root != !!r->parsed)
		UNIT_FAIL("row %zu: root %s, expected %s", row, job.root ? "set" : "NULL",
		          r->parsed ? "set" : "NULL");
	if (rc == -1 && (job.messages || job.models || job.n_messages || job.model != -1 ||
	                 job.budget != -1 || job.metadata || job.metadata_json || job.stop))
		UNIT_FAIL("row %zu: a failed job keeps more than root and id", row);
	job_clear(&job);
}

#define J(s) "{\"id\":\"a\",\"prompt\":\"p\"," s "}"
#define M(s) "{\"id\":\"a\",\"messages\":" s "}"

static const struct bad_row bad_rows[] = {
        /* not JSON, not UTF-8, not an object */
        {"{\"id\":\"a\",", 0, "value: invalid JSON: ", NULL, 0},
        {"{\"id\":\"a\" \"prompt\":\"p\"}", 0, "value: invalid JSON: ", NULL, 0},
        {"", 0, "value: invalid JSON: ", NULL, 0},
        {"{\"id\":\"a\",\"prompt\":\"p\"} x", 0, "value: invalid JSON: ", NULL, 0},
        {"{\"id\":\"a\",\"prompt\":\"p\",}", 0, "value: invalid JSON: ", NULL, 0},
        {"{'id':'a','prompt':'p'}", 0, "value: invalid JSON: ", NULL, 0},
        {"{\"id\":\"a\",\"prompt\":\"\xff\"}", 0, "value: invalid UTF-8: ", NULL, 0},
        {"{\"id\":\"a\",\"prompt\":\"\xc0\xaf\"}", 0, "value: invalid UTF-8: ", NULL, 0},
        {"{\"id\":\"a\",\"prompt\":\"\xed\xa0\x80\"}", 0, "value: invalid UTF-8: ", NULL, 0},
        {"{\"id\":\"a\",\"prompt\":\"caf\xc3\"}", 0, "value: invalid UTF-8: ", NULL, 0},
        {"{\"id\":\"a\",\"prompt\":\"x\\u0000y\"}", 0, "value: invalid JSON: \\u0000", NULL, 0},
        {"{\"id\":\"a\",\"prompt\":\"x\0y\"}", 25, "value: invalid JSON: ", NULL, 0},
        {"{\"id\":\"a\",\"id\":\"b\",\"prompt\":\"p\"}", 0, "value: invalid JSON: duplicate", NULL,
         0},
        {"[{\"id\":\"a\",\"prompt\":\"p\"}]", 0, "value: must be a JSON object", NULL, 0},
        {"\"a\"", 0, "value: must be a JSON object", NULL, 0},
        {"42", 0, "value: must be a JSON object", NULL, 0},
        {"null", 0, "value: must be a JSON object", NULL, 0},
        /* id */
        {"{\"prompt\":\"p\"}", 0, "id: must be a string of 1 to 200 bytes", NULL, 1},
        {"{\"id\":\"\",\"prompt\":\"p\"}", 0, "id: ", NULL, 1},
        {"{\"id\":42,\"prompt\":\"p\"}", 0, "id: ", NULL, 1},
        {"{\"id\":null,\"prompt\":\"p\"}", 0, "id: ", NULL, 1},
        {"{\"id\":[\"a\"],\"prompt\":\"p\"}", 0, "id: ", NULL, 1},
        /* prompt and messages */
        {"{\"id\":\"a\"}", 0, "prompt: exactly one of prompt and messages is required", "a", 1},
        {"{\"id\":\"a\",\"prompt\":\"p\",\"messages\":[{\"role\":\"user\",\"content\":\"c\"}]}", 0,
         "prompt: exactly one of prompt and messages is required", "a", 1},
        {"{\"id\":\"a\",\"prompt\":7}", 0, "prompt: must be a string", "a", 1},
        {"{\"id\":\"a\",\"prompt\":null}", 0, "prompt: must be a string", "a", 1},
        {M("{\"role\":\"user\",\"content\":\"c\"}"), 0, "messages: ", "a", 1},
        {M("[]"), 0, "messages: ", "a", 1},
        {M("\"hello\""), 0, "messages: ", "a", 1},
        {M("[\"hello\"]"), 0, "messages[0]: must be an object", "a", 1},
        {M("[{\"role\":\"user\",\"content\":\"c\"},null]"), 0, "messages[1]: ", "a", 1},
        {M("[{\"content\":\"c\"}]"), 0,
         "messages[0].role: must be \"system\", \"user\", \"assistant\" or \"tool\"", "a", 1},
        {M("[{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"user\",\"content\":\"c\"},"
           "{\"role\":\"tool\",\"content\":\"c\"}]"),
         0, "messages[2].tool_call_id: must be the id of a tool call of an earlier", "a", 1},
        {M("[{\"role\":\"User\",\"content\":\"c\"}]"), 0, "messages[0].role: ", "a", 1},
        {M("[{\"role\":1,\"content\":\"c\"}]"), 0, "messages[0].role: ", "a", 1},
        {M("[{\"role\":\"user\"}]"), 0, "messages[0].content: must be a string or an array", "a",
         1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]"), 0,
         "messages[0].content[0].text: must be a string", "a", 1},
        /* content parts (SPEC §13) */
        {M("[{\"role\":\"user\",\"content\":[]}]"), 0,
         "messages[0].content: must not be an empty array", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"text\":\"c\"}]}]"), 0,
         "messages[0].content[0]: must be an object with a string \"type\"", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"audio\"}]}]"), 0,
         "messages[0].content[0].type: must be", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"url\":\"http://x/a.png\"}]}]"),
         0, "messages[0].content[0].url: must be an https:// URL", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"url\":\"https://x/a\","
           "\"data\":\"AAAA\",\"media_type\":\"image/png\"}]}]"),
         0, "messages[0].content[0]: exactly one of url and data", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"data\":\"AAAA\"}]}]"), 0,
         "messages[0].content[0].media_type: is required with data", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"data\":\"AAAA\","
           "\"media_type\":\"image/tiff\"}]}]"),
         0,
         "messages[0].content[0].media_type: must be image/png, image/jpeg, image/gif or "
         "image/webp",
         "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"data\":\"iVBO!w0K\","
           "\"media_type\":\"image/png\"}]}]"),
         0, "messages[0].content[0].data: must be standard base64", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"data\":\"iVBORw0K\\nGgo=\","
           "\"media_type\":\"image/png\"}]}]"),
         0, "messages[0].content[0].data: must be standard base64", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"data\":\"/9j/4AAQ\","
           "\"media_type\":\"image/png\"}]}]"),
         0, "messages[0].content[0].data: is not image/png but image/jpeg", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"document\",\"data\":"
           "\"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJR"
           "U5ErkJggg==\"}]}]"),
         0, "messages[0].content[0].data: is not application/pdf but image/png", "a", 1},
        {M("[{\"role\":\"system\",\"content\":[{\"type\":\"image\",\"url\":\"https://x/a\"}]}]"), 0,
         "messages[0].content[0]: only user messages may hold images", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":1}}]}"
           "]"),
         0, "messages[0].content[0].image_url.url: must be a string", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
           "\"data:image/bmp;base64,AAAA\"}}]}]"),
         0, "messages[0].content[0].image_url.url: unknown media type", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
           "\"data:image/png,AAAA\"}}]}]"),
         0, "messages[0].content[0].image_url.url: a data: URL must be", "a", 1},
        {M("[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{\"file_id\":\"f-1\"}}]}"
           "]"),
         0, "messages[0].content[0].file.file_id: is not supported", "a", 1},
        /* tools in messages */
        {M("[{\"role\":\"user\",\"content\":\"c\",\"tool_calls\":[]}]"), 0,
         "messages[0].tool_calls: only assistant messages", "a", 1},
        {M("[{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"tool_calls\":[]}]"), 0,
         "messages[1].tool_calls: must be a non-empty array", "a", 1},
        {M("[{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"tool_calls\":"
           "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"arguments\":\"{}\"}}]}]"),
         0, "messages[1].tool_calls[0].function.name: must be", "a", 1},
        {M("[{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"tool_calls\":"
           "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1]"
           "\"}}]}]"),
         0, "messages[1].tool_calls[0].function.arguments: must be a string holding a JSON object",
         "a", 1},
        {M("[{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"tool_calls\":"
           "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}"
           "\"}}]},"
           "{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":\"r\"}]"),
         0, "messages[2].tool_call_id: must be the id of a tool call of an earlier", "a", 1},
        {M("[{\"role\":\"user\",\"content\":null}]"), 0, "messages[0].content: ", "a", 1},
        /* tools, tool_choice, reasoning_effort, mode, complete_by (SPEC §13, §14) */
        {J("\"tools\":{}"), 0, "tools: must be a non-empty array", "a", 1},
        {J("\"tools\":[{\"type\":\"function\",\"function\":{\"description\":\"d\"}}]"), 0,
         "tools[0].function.name: must be 1 to 64 letters", "a", 1},
        {J("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]"), 0,
         "tools[0].function.name: must be 1 to 64 letters", "a", 1},
        {J("\"tools\":[{\"type\":\"retrieval\"}]"), 0, "tools[0]: must be", "a", 1},
        {J("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},"
           "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"),
         0, "tools[1].function.name: \"f\" is already tools[0]'s", "a", 1},
        {J("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":[]}}]"),
         0, "tools[0].function.parameters: must be an object", "a", 1},
        {J("\"tool_choice\":\"auto\""), 0, "tool_choice: needs tools", "a", 1},
        {J("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":"
           "\"any\""),
         0, "tool_choice: must be", "a", 1},
        {J("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":"
           "{\"type\":\"function\",\"function\":{\"name\":\"g\"}}"),
         0, "tool_choice.function.name: must name one of the job's tools", "a", 1},
        {J("\"reasoning_effort\":\"max\""), 0, "reasoning_effort: must be", "a", 1},
        {J("\"mode\":\"later\""), 0, "mode: must be \"sync\", \"batch\" or \"auto\"", "a", 1},
        {J("\"complete_by\":\"tomorrow\""), 0, "complete_by: must be an RFC 3339", "a", 1},
        {J("\"response_format\":{\"type\":\"json_schema\"}"), 0,
         "response_format.json_schema: must be an object", "a", 1},
        {J("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}"), 0,
         "response_format.json_schema.schema: must be an object", "a", 1},
        {J("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{},"
           "\"strict\":1}}"),
         0, "response_format.json_schema.strict: must be true or false", "a", 1},
        {J("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":"
           "{\"type\":\"object\",\"properties\":{\"x\":{\"oneOf\":[{\"type\":\"string\"}]}}}}}"),
         0,
         "response_format.json_schema.schema: keyword \"oneOf\" at /properties/x is not supported",
         "a", 1},
        {J("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":"
           "{\"$ref\":\"#/$defs/missing\"}}}"),
         0, "response_format.json_schema.schema: ", "a", 1},
        /* model, models, allow_fallbacks, strategy */
        {J("\"model\":5"), 0, "model: must be a string", "a", 1},
        {J("\"model\":\"gpt-9\""), 0, "model: unknown model \"gpt-9\"", "a", 1},
        {J("\"model\":\"\""), 0, "model: unknown model \"\"", "a", 1},
        {J("\"models\":\"gpt-4o-mini\""), 0, "models: ", "a", 1},
        {J("\"models\":[]"), 0, "models: must be a non-empty array", "a", 1},
        {J("\"models\":[\"gpt-4o-mini\",\"gpt-9\"]"), 0, "models[1]: unknown model \"gpt-9\"", "a",
         1},
        {J("\"models\":[1]"), 0, "models[0]: must be a string", "a", 1},
        {J("\"allow_fallbacks\":\"yes\""), 0, "allow_fallbacks: must be true or false", "a", 1},
        {J("\"allow_fallbacks\":1"), 0, "allow_fallbacks: ", "a", 1},
        {J("\"strategy\":\"smartest\""), 0, "strategy: unknown strategy \"smartest\"", "a", 1},
        {J("\"strategy\":\"Cheapest\""), 0, "strategy: ", "a", 1},
        {J("\"strategy\":3"), 0, "strategy: must be \"cheapest\"", "a", 1},
        /* max_cost_usd, budget, max_tokens */
        {J("\"max_cost_usd\":0"), 0, "max_cost_usd: must be a number greater than 0", "a", 1},
        {J("\"max_cost_usd\":0.0"), 0, "max_cost_usd: ", "a", 1},
        {J("\"max_cost_usd\":-1.5"), 0, "max_cost_usd: ", "a", 1},
        {J("\"max_cost_usd\":\"0.5\""), 0, "max_cost_usd: ", "a", 1},
        {J("\"max_cost_usd\":true"), 0, "max_cost_usd: ", "a", 1},
        {J("\"max_cost_usd\":1e-10"), 0, "max_cost_usd: must be at least 0.000000001", "a", 1},
        {J("\"max_cost_usd\":1e10"), 0, "max_cost_usd: must be at most", "a", 1},
        {J("\"budget\":\"x\""), 0, "budget: unknown budget \"x\"", "a", 1},
        {J("\"budget\":1"), 0, "budget: must be a string", "a", 1},
        {J("\"max_tokens\":0"), 0, "max_tokens: must be an integer from 1 to 1000000", "a", 1},
        {J("\"max_tokens\":1000001"), 0, "max_tokens: must be an integer from 1 to 1000000", "a",
         1},
        {J("\"max_tokens\":-5"), 0, "max_tokens: ", "a", 1},
        {J("\"max_tokens\":5.5"), 0, "max_tokens: ", "a", 1},
        {J("\"max_tokens\":5.0"), 0, "max_tokens: ", "a", 1},
        {J("\"max_tokens\":\"10\""), 0, "max_tokens: ", "a", 1},
        /* sampling, stop, response_format, capabilities */
        {J("\"temperature\":\"hot\""), 0, "temperature: must be a number from 0 to 2", "a", 1},
        {J("\"temperature\":2.5"), 0, "temperature: ", "a", 1},
        {J("\"temperature\":-0.1"), 0, "temperature: ", "a", 1},
        {J("\"top_p\":1.5"), 0, "top_p: must be a number from 0 to 1", "a", 1},
        {J("\"top_p\":false"), 0, "top_p: ", "a", 1},
        {J("\"stop\":5"), 0, "stop: must be a string or an array of strings", "a", 1},
        {J("\"stop\":{\"a\":1}"), 0, "stop: ", "a", 1},
        {J("\"stop\":[\"\\n\",1]"), 0, "stop[1]: must be a string", "a", 1},
        {J("\"response_format\":\"json\""), 0, "response_format: must be an object", "a", 1},
        {J("\"response_format\":{\"type\":\"xml\"}"), 0,
         "response_format.type: must be \"text\", \"json_object\" or \"json_schema\"", "a", 1},
        {J("\"response_format\":{}"), 0, "response_format.type: ", "a", 1},
        {J("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}"), 0,
         "response_format.json_schema.schema: must be an object", "a", 1},
        {J("\"capabilities\":\"json\""), 0, "capabilities: must be an array", "a", 1},
        {J("\"capabilities\":[\"json\",\"telepathy\"]"), 0,
         "capabilities[1]: unknown capability \"telepathy\"", "a", 1},
        {J("\"capabilities\":[1]"), 0, "capabilities[0]: must be a string", "a", 1},
        /* deadline, metadata */
        {J("\"deadline\":\"tomorrow\""), 0, "deadline: must be an RFC 3339 date-time", "a", 1},
        {J("\"deadline\":1700000000"), 0, "deadline: ", "a", 1},
        {J("\"deadline\":\"2026-13-01T00:00:00Z\""), 0, "deadline: ", "a", 1},
        {J("\"deadline\":\"2026-11-22T03:00:00\""), 0, "deadline: ", "a", 1},
        {J("\"deadline\":\"2026-11-22\""), 0, "deadline: ", "a", 1},
        {J("\"metadata\":[]"), 0, "metadata: must be an object", "a", 1},
        {J("\"metadata\":\"x\""), 0, "metadata: must be an object", "a", 1},
        {J("\"metadata\":null"), 0, "metadata: must be an object", "a", 1},
        /* several bad fields: the first in SPEC §2 order is named */
        {J("\"budget\":\"x\",\"model\":\"gpt-9\",\"max_tokens\":0"), 0, "model: ", "a", 1},
        {"{\"id\":\"a\",\"max_tokens\":0}", 0, "prompt: ", "a", 1},
};

TEST(test_malformed_table)
{
	size_t n = sizeof bad_rows / sizeof bad_rows[0];
	CHECK(n >= 40);
	for (size_t i = 0; i < n; i++)
		check_bad(&bad_rows[i], i);
}

/* Rows too large to write out. */
TEST(test_malformed_large)
{
	struct bad_row r;
	char id[JOB_ID_MAX + 2];
	char *big = NULL;
	size_t meta_len = JOB_METADATA_MAX; /* {"k":"..."} is 8 + n bytes: this is 8 over */

	memset(id, 'x', sizeof id - 1);
	id[sizeof id - 1] = '\0';
	big = malloc(2000001);
	snprintf(big, 2000001, "{\"id\":\"%s\",\"prompt\":\"p\"}", id);
	r = (struct bad_row){big, 0, "id: must be a string of 1 to 200 bytes", NULL, 1};
	check_bad(&r, 1000);

	memset(big, ' ', 2000000);
	memcpy(big, "{\"id\":\"a\",\"prompt\":\"p\"}", 23);
	big[2000000] = '\0';
	r = (struct bad_row){big, 0,
	                     "value: 2000000 bytes is more than worker.max_job_bytes (1048576)",
	                     NULL, 0};
	check_bad(&r, 1001);

	snprintf(big, 200, "{\"id\":\"a\",\"prompt\":\"p\",\"metadata\":{\"k\":\"");
	size_t off = strlen(big);
	memset(big + off, 'm', meta_len - 8 + 1);
	strcpy(big + off + meta_len - 8 + 1, "\"}}");
	r = (struct bad_row){big, 0, "metadata: larger than 16384 bytes serialized", "a", 1};
	check_bad(&r, 1002);

	free(big);
}

/* The exact message of a few errors, as SPEC consumers will read them. */
TEST(test_error_texts)
{
	struct job job;
	char err[512];
	const char *v = "{\"id\":\"a\",\"prompt\":\"p\",\"model\":\"gpt-9\"}";

	CHECK_INT(job_decode(&cfg, v, strlen(v), &job, err, sizeof err), -1);
	CHECK_STR(err, "model: unknown model \"gpt-9\"");
	job_clear(&job);

	v = "{\"id\":\"a\",\"prompt\":\"p\",\"budget\":\"x\"}";
	CHECK_INT(job_decode(&cfg, v, strlen(v), &job, err, sizeof err), -1);
	CHECK_STR(err, "budget: unknown budget \"x\"");
	job_clear(&job);

	v = "{\"id\":\"a\",";
	CHECK_INT(job_decode(&cfg, v, strlen(v), &job, err, sizeof err), -1);
	CHECK_HAS(err, " at line 1 column ");
	job_clear(&job);

	v = "{\"id\":\"a\",\"prompt\":\"\xff\"}";
	CHECK_INT(job_decode(&cfg, v, strlen(v), &job, err, sizeof err), -1);
	CHECK_HAS(err, "value: invalid UTF-8: ");
	job_clear(&job);
}

/* A long user value is cut in a quote, and a short errstr cuts no character in half. */
TEST(test_error_cut)
{
	struct job job;
	char err[512], small[24];
	char v[4096];
	char name[1001];

	/* 500 two-byte characters */
	for (int i = 0; i < 500; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	name[1000] = '\0';
	snprintf(v, sizeof v, "{\"id\":\"a\",\"prompt\":\"p\",\"model\":\"%s\"}", name);
	CHECK_INT(job_decode(&cfg, v, strlen(v), &job, err, sizeof err), -1);
	CHECK_HAS(err, "...\"");
	CHECK(strlen(err) < 120);
	CHECK(valid_utf8(err));
	job_clear(&job);

	/* "model: unknown model \"" is 22 bytes: the 21st byte of the buffer is
	 * then the first byte of an é, which must not be left dangling. */
	for (size_t size = 10; size <= 22; size++) {
		CHECK_INT(job_decode(&cfg, v, strlen(v), &job, small, size), -1);
		CHECK(valid_utf8(small));
		job_clear(&job);
	}
	snprintf(v, sizeof v, "{\"id\":\"a\",\"prompt\":\"p\",\"model\":\"%s\"}",
	         "\xc3\xa9\xc3\xa9");
	CHECK_INT(job_decode(&cfg, v, strlen(v), &job, small, 24), -1);
	CHECK(valid_utf8(small));
	CHECK_STR(small, "model: unknown model \"?");
	job_clear(&job);

	/* No buffer at all is allowed. */
	CHECK_INT(job_decode(&cfg, v, strlen(v), &job, NULL, 0), -1);
	job_clear(&job);
}

/* ---------------------------------------------------------------- valid */

static int decode(const char *v, struct job *job)
{
	char err[512];
	int rc = job_decode(&cfg, v, strlen(v), job, err, sizeof err);
	if (rc != 0)
		UNIT_FAIL("decode failed: %s", err);
	return rc;
}

TEST(test_every_field)
{
	struct job job;
	const char *v =
	        "{\"id\":\"doc-42\",\"messages\":["
	        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
	        "{\"role\":\"user\",\"content\":\"Caf\xc3\xa9?\",\"name\":\"ann\"},"
	        "{\"role\":\"assistant\",\"content\":\"\"}],"
	        "\"model\":\"claude-haiku\",\"models\":[\"gemini-flash\",\"gpt-4o-mini\","
	        "\"gemini-flash\"],\"allow_fallbacks\":true,\"strategy\":\"cheapest\","
	        "\"max_cost_usd\":0.0001794,\"budget\":\"nightly\",\"max_tokens\":256,"
	        "\"temperature\":0.7,\"top_p\":1,\"stop\":[\"\\n\\n\",\"END\"],"
	        "\"response_format\":{\"type\":\"json_object\"},"
	        "\"capabilities\":[\"vision\",\"long_context\"],"
	        "\"deadline\":\"2026-11-22T03:00:00.123+01:00\","
	        "\"metadata\":{\"task\":\"summarize\",\"n\":[1,2]},\"unknown_field\":{\"x\":1}}";

	if (decode(v, &job) != 0)
		goto out;
	CHECK(job.root != NULL);
	CHECK_STR(job.id, "doc-42");
	CHECK_INT(job.n_messages, 3);
	CHECK_INT(job.messages[0].role, ROLE_SYSTEM);
	CHECK_STR(job.messages[0].content, "Be brief.");
	CHECK_INT(job.messages[0].content_len, 9);
	CHECK_INT(job.messages[1].role, ROLE_USER);
	CHECK_STR(job.messages[1].content, "Caf\xc3\xa9?");
	CHECK_INT(job.messages[1].content_len, 6);
	CHECK_INT(job.messages[2].role, ROLE_ASSISTANT);
	CHECK_INT(job.messages[2].content_len, 0);
	CHECK_INT(job.content_bytes, 15);
	CHECK_INT(job.model, 1);
	CHECK_INT(job.n_models, 2); /* gemini-flash once */
	CHECK_INT(job.models[0], 2);
	CHECK_INT(job.models[1], 0);
	CHECK(job.allow_fallbacks);
	CHECK_INT(job.strategy, STRATEGY_CHEAPEST);
	CHECK(job.strategy_set);
	CHECK_INT(job.max_cost_nusd, 179400);
	CHECK_INT(job.budget, 1);
	CHECK_INT(job.max_tokens, 256);
	CHECK(job.has_temperature && job.temperature == 0.7);
	CHECK(job.has_top_p && job.top_p == 1.0);
	CHECK(json_is_array(job.stop) && json_array_size(job.stop) == 2);
	CHECK(job.json_response);
	CHECK_INT(job.caps, CAP_JSON | CAP_VISION | CAP_LONG_CONTEXT);
	/* 2026-11-22T02:00:00.123Z */
	CHECK_INT(job.deadline_ms, INT64_C(1795312800123));
	CHECK(json_is_object(job.metadata));
	CHECK_STR(json_string_value(json_object_get(job.metadata, "task")), "summarize");
	CHECK(job.metadata == json_object_get(job.root, "metadata")); /* borrowed, untouched */
	CHECK_STR(job.metadata_json, "{\"task\":\"summarize\",\"n\":[1,2]}");
out:
	job_clear(&job);
}

TEST(test_defaults)
{
	struct job job;

	if (decode("{\"id\":\"a\",\"prompt\":\"Hello, world\"}", &job) != 0)
		goto out;
	CHECK_STR(job.id, "a");
	CHECK_INT(job.n_messages, 1);
	CHECK_INT(job.messages[0].role, ROLE_USER);
	CHECK_STR(job.messages[0].content, "Hello, world");
	CHECK_INT(job.content_bytes, 12);
	CHECK_INT(job.model, -1);
	CHECK(job.models == NULL && job.n_models == 0);
	CHECK(job.allow_fallbacks); /* no model: true */
	CHECK_INT(job.strategy, STRATEGY_BALANCED);
	CHECK(!job.strategy_set);
	CHECK_INT(job.max_cost_nusd, 0);
	CHECK_INT(job.budget, 0); /* "default" */
	CHECK_INT(job.max_tokens, 0);
	CHECK(!job.has_temperature && !job.has_top_p);
	CHECK(job.stop == NULL);
	CHECK(!job.json_response);
	CHECK_INT(job.caps, 0);
	CHECK_INT(job.deadline_ms, 0);
	CHECK(job.metadata == NULL);
	CHECK(job.metadata_json == NULL);
	job_clear(&job);

	/* Another configured default. */
	cfg.worker.default_strategy = STRATEGY_FASTEST;
	cfg.worker.default_budget = "nightly";
	if (decode("{\"id\":\"a\",\"prompt\":\"\"}", &job) == 0) {
		CHECK_INT(job.strategy, STRATEGY_FASTEST);
		CHECK_INT(job.budget, 1);
		CHECK_INT(job.content_bytes, 0);
	}
	job_clear(&job);
	cfg_init();
out:
	job_clear(&job);
}

TEST(test_allow_fallbacks)
{
	struct job job;

	if (decode("{\"id\":\"a\",\"prompt\":\"p\",\"model\":\"gpt-4o-mini\"}", &job) == 0) {
		CHECK_INT(job.model, 0);
		CHECK(!job.allow_fallbacks); /* pinned: false */
	}
	job_clear(&job);
	if (decode("{\"id\":\"a\",\"prompt\":\"p\",\"model\":\"gpt-4o-mini\","
	           "\"allow_fallbacks\":true}",
	           &job) == 0)
		CHECK(job.allow_fallbacks);
	job_clear(&job);
	if (decode("{\"id\":\"a\",\"prompt\":\"p\",\"allow_fallbacks\":false}", &job) == 0)
		CHECK(!job.allow_fallbacks);
	job_clear(&job);
	if (decode("{\"id\":\"a\",\"prompt\":\"p\",\"models\":[\"gpt-4o-mini\"]}", &job) == 0)
		CHECK(job.allow_fallbacks); /* models alone pins nothing */
	job_clear(&job);
}

/* A cap rounds down to whole nano-USD, never up. */
TEST(test_max_cost_rounding)
{
	static const struct {
		const char *usd;
		int64_t nusd;
	} rows[] = {
	        {"0.0001794", 179400},
	        {"0.3", 300000000},
	        {"0.1", 100000000},
	        {"1", 1000000000},
	        {"2.5", 2500000000},
	        {"0.000000001", 1},
	        {"0.0000000015", 1},
	        {"0.0000000019", 1},
	        {"1e-9", 1},
	        {"0.123456789", 123456789},
	        {"0.1234567899", 123456789},
	        {"9000000000", INT64_C(9000000000000000000)},
	        {"100.000000001", 100000000001},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char v[128];
		struct job job;
		snprintf(v, sizeof v, "{\"id\":\"a\",\"prompt\":\"p\",\"max_cost_usd\":%s}",
		         rows[i].usd);
		if (decode(v, &job) == 0 && job.max_cost_nusd != rows[i].nusd)
			UNIT_FAIL("max_cost_usd %s: %" PRId64 " nano-USD, expected %" PRId64,
			          rows[i].usd, job.max_cost_nusd, rows[i].nusd);
		job_clear(&job);
	}
}

TEST(test_variants)
{
	struct job job;

	if (decode("{\"id\":\"a\",\"prompt\":\"p\",\"stop\":\"END\","
	           "\"response_format\":{\"type\":\"text\"},\"capabilities\":[],"
	           "\"temperature\":0,\"top_p\":0,\"max_tokens\":1000000,"
	           "\"deadline\":\"2026-11-22T03:00:00Z\",\"metadata\":{}}",
	           &job) == 0) {
		CHECK(json_is_string(job.stop));
		CHECK(!job.json_response);
		CHECK_INT(job.caps, 0);
		CHECK(job.has_temperature && job.temperature == 0);
		CHECK(job.has_top_p && job.top_p == 0);
		CHECK_INT(job.max_tokens, 1000000);
		CHECK_INT(job.deadline_ms, INT64_C(1795316400000));
		CHECK(json_object_size(job.metadata) == 0);
	}
	job_clear(&job);

	if (decode("{\"id\":\"a\",\"prompt\":\"p\",\"temperature\":2,\"max_tokens\":1,"
	           "\"capabilities\":[\"json\",\"tools\",\"vision\",\"long_context\",\"json\"],"
	           "\"deadline\":\"1970-01-01T00:00:00Z\"}",
	           &job) == 0) {
		CHECK(job.temperature == 2);
		CHECK_INT(job.max_tokens, 1);
		CHECK_INT(job.caps, CAP_JSON | CAP_TOOLS | CAP_VISION | CAP_LONG_CONTEXT);
		CHECK_INT(job.deadline_ms, 1); /* 0 would mean "no deadline" */
	}
	job_clear(&job);

	/* Unknown keys are ignored, at the top and inside a message. */
	if (decode("{\"x\":null,\"id\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"c\","
	           "\"cache_control\":[]}],\"y\":[1,{}]}",
	           &job) == 0)
		CHECK_INT(job.n_messages, 1);
	job_clear(&job);
}

/* Boundaries: id of 200 bytes, metadata of exactly 16 KiB, value of exactly max_job_bytes. */
TEST(test_limits)
{
	struct job job;
	char id[JOB_ID_MAX + 1];
	char *v = malloc(JOB_METADATA_MAX + 200);
	char err[256];

	memset(id, 'i', JOB_ID_MAX);
	id[JOB_ID_MAX] = '\0';
	snprintf(v, 400, "{\"id\":\"%s\",\"prompt\":\"p\"}", id);
	if (decode(v, &job) == 0)
		CHECK_INT(strlen(job.id), JOB_ID_MAX);
	job_clear(&job);

	/* {"k":"m...m"} is 8 + n bytes compact. */
	strcpy(v, "{\"id\":\"a\",\"prompt\":\"p\",\"metadata\": { \"k\" : \"");
	size_t off = strlen(v);
	memset(v + off, 'm', JOB_METADATA_MAX - 8);
	strcpy(v + off + JOB_METADATA_MAX - 8, "\" } }");
	if (decode(v, &job) == 0)
		CHECK_INT(json_dumpb(job.metadata, NULL, 0, JSON_COMPACT), JOB_METADATA_MAX);
	job_clear(&job);

	cfg.worker.max_job_bytes = 40;
	strcpy(v, "{\"id\":\"a\",\"prompt\":\"p\"}                 "); /* 40 bytes */
	CHECK_INT(strlen(v), 40);
	CHECK_INT(job_decode(&cfg, v, 40, &job, err, sizeof err), 0);
	job_clear(&job);
	strcat(v, " ");
	CHECK_INT(job_decode(&cfg, v, 41, &job, err, sizeof err), -1);
	CHECK_STR(err, "value: 41 bytes is more than worker.max_job_bytes (40)");
	job_clear(&job);
	cfg_init();
	free(v);
}

/* decode zeroes the job it is given; clear is safe on zeroed, cleared and NULL. */
TEST(test_lifecycle)
{
	struct job job;
	char err[256];
	const char *v = "{\"id\":\"a\",\"prompt\":\"p\",\"max_tokens\":0}";

	memset(&job, 0xAB, sizeof job);
	CHECK_INT(job_decode(&cfg, v, strlen(v), &job, err, sizeof err), -1);
	CHECK_STR(job.id, "a");
	CHECK(job.root != NULL);
	CHECK(job.messages == NULL && job.models == NULL && job.stop == NULL);
	CHECK_INT(job.model, -1);
	job_clear(&job);
	CHECK(job.root == NULL && job.id == NULL);
	job_clear(&job);
	job_clear(NULL);

	memset(&job, 0, sizeof job);
	job_clear(&job);

	/* The value is borrowed: the job does not point into it. */
	char *copy = strdup("{\"id\":\"a\",\"prompt\":\"hello\"}");
	CHECK_INT(job_decode(&cfg, copy, strlen(copy), &job, err, sizeof err), 0);
	memset(copy, 'z', strlen(copy));
	free(copy);
	CHECK_STR(job.id, "a");
	CHECK_STR(job.messages[0].content, "hello");
	job_clear(&job);

	CHECK_STR(role_name(ROLE_SYSTEM), "system");
	CHECK_STR(role_name(ROLE_USER), "user");
	CHECK_STR(role_name(ROLE_ASSISTANT), "assistant");
}

static bool only_redis_budget(void *opaque, const char *name)
{
	(void)opaque;
	return strcmp(name, "made-with-the-cli") == 0;
}

/* A budget known only in Redis is accepted when the process has a lookup. */
TEST(test_redis_only_budget)
{
	const char *v = "{\"id\":\"r\",\"prompt\":\"x\",\"budget\":\"made-with-the-cli\"}";
	char err[256];
	struct job job;
	CHECK_INT(job_decode(&cfg, v, strlen(v), &job, err, sizeof err), -1);
	CHECK_HAS(err, "budget: unknown budget");
	job_clear(&job);
	job_set_budget_lookup(only_redis_budget, NULL);
	CHECK_INT(job_decode(&cfg, v, strlen(v), &job, err, sizeof err), 0);
	CHECK_INT(job.budget, -1);
	CHECK_STR(job.budget_name, "made-with-the-cli");
	job_clear(&job);
	const char *w = "{\"id\":\"r\",\"prompt\":\"x\",\"budget\":\"nope\"}";
	CHECK_INT(job_decode(&cfg, w, strlen(w), &job, err, sizeof err), -1);
	job_clear(&job);
	job_set_budget_lookup(NULL, NULL);
}

/* ---------------------------------------------------------------- rich jobs (SPEC §13, §14) */

#define TINY_PDF                                                                                   \
	"JVBERi0xLjQKMSAwIG9iajw8L1R5cGUgL0NhdGFsb2cgL1BhZ2VzIDIgMCBSPj5lbmRvYmogMiAwIG9iajw8L1R5" \
	"cGUgL1BhZ2VzIC9LaWRzWzMgMCBSIDQgMCBSXS9Db3VudCAyPj5lbmRvYmogMyAwIG9iajw8L1R5cGUgL1BhZ2Ug" \
	"L1BhcmVudCAyIDAgUj4+"                                                                     \
	"ZW5kb2JqIDQgMCBvYmo8PC9UeXBlL1BhZ2UvUGFyZW50IDIgMCBSPj5lbmRvYmoKJSVFT0YK"
#define TINY_PNG                                                                                   \
	"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5E" \
	"rkJggg=="

TEST(test_rich_job)
{
	struct job job;
	const char *v =
	        "{\"id\":\"r1\",\"messages\":["
	        "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"Extract.\"}]},"
	        "{\"role\":\"user\",\"content\":["
	        "{\"type\":\"text\",\"text\":\"Read these\"},"
	        "{\"type\":\"image\",\"url\":\"https://example.com/a.png\"},"
	        "{\"type\":\"image\",\"data\":\"" TINY_PNG "\",\"media_type\":\"image/png\"},"
	        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64," TINY_PNG
	        "\",\"detail\":\"low\"}},"
	        "{\"type\":\"document\",\"data\":\"" TINY_PDF
	        "\",\"media_type\":\"application/pdf\"},"
	        "{\"type\":\"file\",\"file\":{\"file_data\":\"data:application/pdf;base64," TINY_PDF
	        "\",\"filename\":\"a.pdf\"}},"
	        "{\"type\":\"text\",\"text\":\"and answer\"}]},"
	        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\","
	        "\"type\":"
	        "\"function\",\"function\":{\"name\":\"lookup\",\"arguments\":\"{\\\"q\\\":1}\"}}]}"
	        ","
	        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"42\"}],"
	        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\","
	        "\"parameters\":"
	        "{\"type\":\"object\"}}}],"
	        "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"lookup\"}},"
	        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"inv\","
	        "\"strict\":true,\"schema\":{\"type\":\"object\"}}},"
	        "\"reasoning_effort\":\"medium\",\"mode\":\"batch\","
	        "\"complete_by\":\"2026-12-06T07:00:00Z\"}";
	if (decode(v, &job) != 0)
		return;
	CHECK_INT(job.n_messages, 4);
	CHECK_INT(job.n_parts, 8);
	CHECK_INT(job.n_images, 3);
	CHECK_INT(job.n_documents, 2);
	CHECK_INT(job.n_url_parts, 1);
	CHECK_INT(job.pdf_pages, 4); /* two pages each, "/Pages" not counted */
	CHECK_INT(job.caps, CAP_VISION | CAP_PDF | CAP_TOOLS | CAP_JSON_SCHEMA | CAP_REASONING);
	CHECK_STR(job.messages[0].content, "Extract.");
	CHECK_STR(job.messages[1].content, "Read these\nand answer");
	CHECK_INT(job.messages[1].content_len, 21);
	CHECK_INT(job.messages[1].n_parts, 7);
	const struct job_part *p = job.messages[1].parts;
	CHECK_INT(p[1].type, PART_IMAGE);
	CHECK_STR(p[1].url, "https://example.com/a.png");
	CHECK(p[1].media_type == NULL);
	CHECK_STR(p[2].media_type, "image/png");
	CHECK_INT(p[2].decoded_len, 70);
	CHECK_STR(p[3].media_type, "image/png");
	CHECK_STR(p[3].detail, "low");
	CHECK(strncmp(p[3].data, "iVBOR", 5) == 0);
	CHECK_INT(p[4].type, PART_DOCUMENT);
	CHECK_INT(p[4].pdf_pages, 2);
	CHECK_STR(p[5].filename, "a.pdf");
	CHECK_STR(p[5].media_type, "application/pdf");
	CHECK_INT(p[5].msg, 1);
	CHECK_INT(p[5].index, 5);
	CHECK(job.messages[2].tool_calls != NULL);
	CHECK_STR(job.messages[2].content, "");
	CHECK_INT(job.messages[3].role, ROLE_TOOL);
	CHECK_STR(job.messages[3].tool_call_id, "call_1");
	CHECK_INT(job.tool_choice, TOOL_CHOICE_FUNCTION);
	CHECK_STR(job.tool_choice_name, "lookup");
	CHECK_INT(job.format, FORMAT_JSON_SCHEMA);
	CHECK(job.json_response);
	CHECK_STR(job.schema_name, "inv");
	CHECK(job.schema_strict);
	CHECK_INT(job.effort, EFFORT_MEDIUM);
	CHECK_INT(job.mode, MODE_BATCH);
	CHECK_INT(job.complete_by_ms, 1796540400000);
	CHECK(job.extra_bytes > 100);

	/* What the images and pages add to an estimate, per model. */
	struct model_conf m = {.image_tokens = 1000, .pdf_page_tokens = 3000};
	CHECK_INT(job_media_tokens(&job, &m), 3 * 1000 + 4 * 3000);

	/* The URL image, fetched: its bytes decide its type. */
	unsigned char png[128];
	int64_t n = job_base64_decode(TINY_PNG, strlen(TINY_PNG), png);
	CHECK_INT(n, 70);
	char err[256];
	struct job_part *url = &job.messages[1].parts[1];
	CHECK_INT(job_part_set_fetched(&job, url, png, (size_t)n, "text/html", err, sizeof err), 0);
	CHECK_STR(url->media_type, "image/png");
	CHECK_STR(url->fetched, TINY_PNG);
	CHECK_INT(url->fetched_len, strlen(TINY_PNG));
	CHECK_INT(job_part_set_fetched(&job, url, (const unsigned char *)"<html>", 6, "image/png",
	                               err, sizeof err),
	          0); /* nothing to sniff: the server's type stands */
	CHECK_INT(job_part_set_fetched(&job, url, (const unsigned char *)"%PDF-1.4", 8, NULL, err,
	                               sizeof err),
	          -1);
	CHECK_STR(err, "messages[1].content[1].url: the document fetched is no PNG, JPEG, GIF or "
	               "WebP image");
	/* Found by tests/fuzz/fuzz_fetched: an empty body the server called an
	 * image was taken, to be sent as empty data. */
	CHECK_INT(job_part_set_fetched(&job, url, png, 0, "image/png", err, sizeof err), -1);
	CHECK_STR(err, "messages[1].content[1].url: the document fetched is empty");
	job_clear(&job);

	/* Defaults: mode from the config, complete_by a window from now. */
	if (decode("{\"id\":\"d\",\"prompt\":\"p\"}", &job) == 0) {
		CHECK_INT(job.mode, MODE_SYNC);
		CHECK(!job.mode_set);
		CHECK_INT(job.effort, EFFORT_NONE);
		CHECK_INT(job.format, FORMAT_TEXT);
		CHECK(job.complete_by_ms >= time_now_ms() + 86400 * 1000 - 60000);
	}
	job_clear(&job);
}

TEST(test_pdf_pages_and_base64)
{
	const char *a = "<</Type /Pages /Count 3>> <</Type /Page>> <</Type/Page>> <</Type\n/Page "
	                "/X>> <</Type /PageLabel>> /Typed /Page";
	CHECK_INT(job_count_pdf_pages((const unsigned char *)a, strlen(a)), 3);
	CHECK_INT(job_count_pdf_pages((const unsigned char *)"%PDF-1.7 compressed", 19), 0);
	CHECK_INT(job_count_pdf_pages((const unsigned char *)"/Type /Page", 11), 1);
	CHECK_INT(job_count_pdf_pages((const unsigned char *)"/Type /Pag", 10), 0);
	unsigned char out[8];
	CHECK_INT(job_base64_decode("aGk=", 4, out), 2);
	CHECK(memcmp(out, "hi", 2) == 0);
	CHECK_INT(job_base64_decode("aGk", 3, out), -1);
	CHECK_INT(job_base64_decode("a=Gk", 4, out), -1);
	CHECK_INT(job_base64_decode("aG-k", 4, out), -1);
	CHECK_INT(job_base64_decode("", 0, out), -1);

	/* A document whose pages cannot be counted is estimated by its bytes. */
	struct job job;
	char v[512];
	snprintf(v, sizeof v,
	         "{\"id\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	         "\"document\","
	         "\"data\":\"JVBERi0xLjcgY29tcHJlc3NlZA==\"}]}]}");
	if (decode(v, &job) == 0) {
		CHECK_INT(job.pdf_pages, 0);
		CHECK_INT(job.pdf_unreadable_bytes, 19);
		struct model_conf m = {.image_tokens = 1600, .pdf_page_tokens = 3000};
		CHECK_INT(job_media_tokens(&job, &m), 7);
	}
	job_clear(&job);
}

int main(void)
{
	cfg_init();
	RUN(test_malformed_table);
	RUN(test_redis_only_budget);
	RUN(test_malformed_large);
	RUN(test_error_texts);
	RUN(test_error_cut);
	RUN(test_every_field);
	RUN(test_defaults);
	RUN(test_allow_fallbacks);
	RUN(test_max_cost_rounding);
	RUN(test_variants);
	RUN(test_limits);
	RUN(test_lifecycle);
	RUN(test_rich_job);
	RUN(test_pdf_pages_and_base64);
	return unit_done();
}
