/* test_config: config_load() on tests/configs/full.cfg, the shipped example,
 * defaults, and one small file per error class, each checked for the
 * "FILE:LINE: KEY: problem" it must report. */
#include "config.h"

#include "buf.h"
#include "job.h"
#include "log.h"
#include "provider.h"
#include "unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <regex.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/test_config.XXXXXX";
static char cfg_path[512];
static char err[1024];

/* Writes text to a fresh file in the temp dir and loads it. */
static struct config *load_text(const char *text, int flags)
{
	static int seq;
	FILE *f = NULL;

	snprintf(cfg_path, sizeof cfg_path, "%s/c%d.cfg", dir, ++seq);
	f = fopen(cfg_path, "w");
	if (!f)
		return NULL;
	fputs(text, f);
	fclose(f);
	return config_load(cfg_path, flags, err, sizeof err);
}

/* load_text(), with what it logs on stderr copied to log (log_size bytes). */
static struct config *load_text_logged(const char *text, int flags, char *log, size_t log_size)
{
	char log_path[600];
	struct config *cfg = NULL;
	int saved = dup(STDERR_FILENO), fd;
	ssize_t n;

	snprintf(log_path, sizeof log_path, "%s/stderr.log", dir);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, STDERR_FILENO);
	close(fd);
	cfg = load_text(text, flags);
	dup2(saved, STDERR_FILENO);
	close(saved);
	fd = open(log_path, O_RDONLY);
	n = read(fd, log, log_size - 1);
	close(fd);
	log[n > 0 ? n : 0] = '\0';
	return cfg;
}

/* The file must not load, and errstr must hold "FILE:LINE: what". Returns 1
 * when it did as expected, so the caller's CHECK names the failing case. */
static int fails_with(const char *text, int line, const char *what)
{
	char want[1024];
	struct config *cfg = load_text(text, 0);

	if (cfg) {
		printf("     loaded, expected %d: %s\n", line, what);
		config_free(cfg);
		return 0;
	}
	snprintf(want, sizeof want, "%s:%d: %s", cfg_path, line, what);
	if (!strstr(err, want)) {
		printf("     errstr \"%s\"\n     lacks  \"%s\"\n", err, want);
		return 0;
	}
	return 1;
}

#define PROVIDER                                                                                   \
	"providers = ( { name = \"openai\"; type = \"openai\"; base_url = \"https://x/v1\"; } "    \
	");\n"
#define MODEL "models = ( { name = \"m\"; provider = \"openai\"; } );\n"
#define PROVIDER_KEYED                                                                             \
	"providers = ( { name = \"openai\"; type = \"openai\"; base_url = \"https://x/v1\";\n"     \
	"  api_key_env = \"PROMPTYARD_TEST_KEY\"; } );\n"

/* ---------------------------------------------------------------- valid files */

TEST(full_config_loads_every_key)
{
	const char *path = unit_src_path("tests/configs/full.cfg");
	struct config *cfg = NULL;

	setenv("PROMPTYARD_TEST_OPENAI_KEY", "sk-test-123", 1);
	setenv("PROMPTYARD_TEST_REDIS_PW", "hunter2", 1);
	CHECK(path != NULL);
	if (!path)
		return;
	cfg = config_load(path, CONFIG_REQUIRE_KEYS, err, sizeof err);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	if (!cfg)
		return;

	CHECK_STR(cfg->path, path);
	CHECK_STR(cfg->kafka.brokers, "k1:9092,k2:9092");
	CHECK_STR(cfg->kafka.group, "py-test");
	CHECK_INT(cfg->kafka.n_input_topics, 2);
	CHECK_STR(cfg->kafka.input_topics[1], "jobs.b");
	CHECK_STR(cfg->kafka.results_topic, "res");
	CHECK_STR(cfg->kafka.costs_topic, "costs");
	CHECK_STR(cfg->kafka.dlq_topic, "dlq");
	CHECK_INT(cfg->kafka.n_properties, 3);
	CHECK_STR(cfg->kafka.property_keys[1], "auto.offset.reset");
	CHECK_STR(cfg->kafka.property_values[1], "latest");
	CHECK_STR(cfg->kafka.property_keys[2], "client.id");
	CHECK_STR(cfg->kafka.property_values[2], "a=b");

	CHECK_STR(cfg->redis.host, "redis.internal");
	CHECK_INT(cfg->redis.port, 6380);
	CHECK_STR(cfg->redis.password_env, "PROMPTYARD_TEST_REDIS_PW");
	CHECK_STR(cfg->redis.password, "hunter2");
	CHECK_INT(cfg->redis.db, 2);
	CHECK_STR(cfg->redis.key_prefix, "py:");
	CHECK_INT(cfg->redis.timeout_ms, 2500);

	CHECK_INT(cfg->worker.max_in_flight, 50);
	CHECK_INT(cfg->worker.default_strategy, STRATEGY_CHEAPEST);
	CHECK_STR(cfg->worker.default_budget, "nightly");
	CHECK_INT(cfg->worker.max_attempts, 6);
	CHECK_INT(cfg->worker.retry_same, 2);
	CHECK_INT(cfg->worker.max_retry_after_ms, 10000);
	CHECK_INT(cfg->worker.on_budget_exhausted, ON_EXHAUSTED_PAUSE);
	CHECK_INT(cfg->worker.drain_timeout_ms, 5000);
	CHECK_INT(cfg->worker.max_job_bytes, 2097152);
	CHECK_INT(cfg->worker.dedupe_ttl_s, 3600);
	CHECK_STR(cfg->worker.metrics_listen, "0.0.0.0:9500");
	CHECK_STR(cfg->worker.log_level, "debug");
	CHECK_INT(cfg->worker.max_response_bytes, 1048576);

	CHECK(cfg->router.balanced_slack == 0.2);
	CHECK_INT(cfg->router.window_s, 600);
	CHECK_INT(cfg->router.breaker_failures, 3);
	CHECK_INT(cfg->router.breaker_cooldown_ms, 10000);
	CHECK(cfg->router.auto_floor == 0.25);
	CHECK_STR(cfg->router.classifier_model, "small");

	CHECK_INT(cfg->n_providers, 2);
	CHECK_STR(cfg->providers[0].name, "openai");
	CHECK_STR(cfg->providers[0].type, "openai");
	CHECK(cfg->providers[0].ops != NULL);
	CHECK_STR(cfg->providers[0].base_url, "https://api.openai.com/v1"); /* slash stripped */
	CHECK_STR(cfg->providers[0].api_key, "sk-test-123");
	CHECK_INT(cfg->providers[0].timeout_ms, 60000);
	CHECK_INT(cfg->providers[0].max_connections, 16);
	CHECK_INT(cfg->providers[0].rpm, 500);
	CHECK_INT(cfg->providers[0].tpm, 2000000);
	CHECK(!cfg->providers[0].optional);
	CHECK_INT(cfg->providers[0].line, 32);
	CHECK(cfg->providers[1].optional);
	CHECK_STR(cfg->providers[1].api_key_env, "");
	CHECK(cfg->providers[1].api_key == NULL);

	CHECK_INT(cfg->n_models, 3);
	const struct model_conf *m = &cfg->models[0];
	CHECK_STR(m->id, "gpt-4o-mini-2024-07-18");
	CHECK_INT(m->provider, 0);
	CHECK_INT(m->price.input_nusd_per_mtok, 150000000);
	CHECK_INT(m->price.cached_input_nusd_per_mtok, 75000000);
	CHECK_INT(m->price.cache_write_nusd_per_mtok, 187500000);
	CHECK_INT(m->price.output_nusd_per_mtok, 600000000);
	CHECK_INT(m->context_tokens, 64000);
	CHECK_INT(m->default_max_tokens, 512);
	CHECK(m->quality == 0.62);
	CHECK_INT(m->latency_ms, 800);
	CHECK_INT(m->caps, CAP_JSON | CAP_TOOLS | CAP_VISION);
	CHECK(m->max_completion_tokens);
	m = &cfg->models[1];
	CHECK_INT(m->price.input_nusd_per_mtok, 2500000000);
	CHECK_INT(m->price.output_nusd_per_mtok, 10000000000); /* an int accepted as USD */
	CHECK_INT(m->caps, CAP_LONG_CONTEXT | CAP_JSON);
	CHECK_INT(cfg->models[2].provider, 1);

	CHECK_INT(cfg->n_budgets, 3);
	CHECK_INT(cfg->budgets[0].limit_nusd, 1000000000000);
	CHECK_INT(cfg->budgets[0].period, PERIOD_MONTH);
	CHECK_INT(cfg->budgets[0].parent, -1);
	CHECK_INT(cfg->budgets[1].limit_nusd, 250500000000);
	CHECK_INT(cfg->budgets[1].period, PERIOD_DAY);
	CHECK_INT(cfg->budgets[1].parent, 0);
	CHECK_INT(cfg->budgets[2].parent, 1);
	CHECK_INT(cfg->budgets[2].period, PERIOD_NONE);
	CHECK_INT(config_budget_index(cfg, "nightly"), 2);

	CHECK_INT(cfg->n_rules, 2);
	const struct rule_conf *r = &cfg->rules[0];
	CHECK_STR(r->match, "def |class |#include");
	CHECK(r->ignore_case);
	CHECK(regexec(&r->re, "x = 1\nCLASS Foo:", 0, NULL, 0) == 0); /* REG_ICASE */
	CHECK(regexec(&r->re, "plain prose", 0, NULL, 0) == REG_NOMATCH);
	CHECK_INT(r->n_models, 2);
	CHECK_INT(r->models[0], 1);
	CHECK_INT(r->models[1], 0);
	CHECK_INT(r->strategy, STRATEGY_BALANCED);
	CHECK(r->metadata == NULL);
	r = &cfg->rules[1];
	CHECK(r->match == NULL);
	CHECK_INT(r->n_models, 0);
	CHECK_INT(r->strategy, STRATEGY_CHEAPEST);
	CHECK_STR(json_string_value(json_object_get(r->metadata, "task")), "summarize");
	CHECK_INT(json_integer_value(json_object_get(r->metadata, "priority")), 2);
	CHECK(json_is_true(json_object_get(r->metadata, "urgent")));
	CHECK(json_real_value(json_object_get(r->metadata, "ratio")) == 0.5);
	config_free(cfg);
	unsetenv("PROMPTYARD_TEST_OPENAI_KEY");
	unsetenv("PROMPTYARD_TEST_REDIS_PW");
}

TEST(empty_file_takes_every_default)
{
	struct config *cfg = load_text("# nothing\n", CONFIG_REQUIRE_KEYS);

	CHECK_STR(cfg ? "loaded" : err, "loaded");
	if (!cfg)
		return;
	CHECK_STR(cfg->kafka.brokers, "127.0.0.1:9092");
	CHECK_STR(cfg->kafka.group, "promptyard");
	CHECK_INT(cfg->kafka.n_input_topics, 1);
	CHECK_STR(cfg->kafka.input_topics[0], "llm.jobs");
	CHECK_STR(cfg->kafka.results_topic, "llm.results");
	CHECK_STR(cfg->kafka.costs_topic, "llm.costs");
	CHECK_STR(cfg->kafka.dlq_topic, "llm.dlq");
	CHECK_INT(cfg->kafka.n_properties, 0);
	CHECK_STR(cfg->redis.host, "127.0.0.1");
	CHECK_INT(cfg->redis.port, 6379);
	CHECK_STR(cfg->redis.password_env, "");
	CHECK(cfg->redis.password == NULL);
	CHECK_INT(cfg->redis.db, 0);
	CHECK_STR(cfg->redis.key_prefix, "promptyard:");
	CHECK_INT(cfg->redis.timeout_ms, 1000);
	CHECK_INT(cfg->worker.max_in_flight, 1000);
	CHECK_INT(cfg->worker.default_strategy, STRATEGY_BALANCED);
	CHECK_STR(cfg->worker.default_budget, "default");
	CHECK_INT(cfg->worker.max_attempts, 4);
	CHECK_INT(cfg->worker.retry_same, 0);
	CHECK_INT(cfg->worker.max_retry_after_ms, 30000);
	CHECK_INT(cfg->worker.on_budget_exhausted, ON_EXHAUSTED_FAIL);
	CHECK_INT(cfg->worker.drain_timeout_ms, 30000);
	CHECK_INT(cfg->worker.max_job_bytes, 1048576);
	CHECK_INT(cfg->worker.dedupe_ttl_s, 172800);
	CHECK_STR(cfg->worker.metrics_listen, "127.0.0.1:9464");
	CHECK_STR(cfg->worker.log_level, "info");
	CHECK_INT(cfg->worker.max_response_bytes, 8388608);
	CHECK(cfg->router.balanced_slack == 0.10);
	CHECK_INT(cfg->router.window_s, 300);
	CHECK_INT(cfg->router.breaker_failures, 5);
	CHECK_INT(cfg->router.breaker_cooldown_ms, 30000);
	CHECK(cfg->router.auto_floor == 0.3);
	CHECK_STR(cfg->router.classifier_model, "");
	CHECK_INT(cfg->n_providers + cfg->n_models + cfg->n_budgets + cfg->n_rules, 0);
	config_free(cfg);
}

TEST(element_defaults)
{
	struct config *cfg =
	        load_text(PROVIDER "models = ( { name = \"m\"; provider = \"openai\";\n"
	                           "  input_usd_per_mtok = 0.075; output_usd_per_mtok = 0.3; } );\n"
	                           "budgets = ( { name = \"default\"; limit_usd = 5; } );\n",
	                  CONFIG_REQUIRE_KEYS);

	CHECK_STR(cfg ? "loaded" : err, "loaded");
	if (!cfg)
		return;
	const struct provider_conf *p = &cfg->providers[0];
	CHECK_STR(p->base_url, "https://x/v1");
	CHECK_STR(p->api_key_env, "");
	CHECK(p->api_key == NULL);
	CHECK(!p->optional);
	CHECK_INT(p->timeout_ms, 120000);
	CHECK_INT(p->max_connections, 64);
	CHECK_INT(p->rpm, 0);
	CHECK_INT(p->tpm, 0);
	const struct model_conf *m = &cfg->models[0];
	CHECK_STR(m->id, "m");
	CHECK_INT(m->price.input_nusd_per_mtok, 75000000);
	CHECK_INT(m->price.cached_input_nusd_per_mtok, 75000000); /* = input */
	CHECK_INT(m->price.cache_write_nusd_per_mtok, -1);        /* priced as input */
	CHECK_INT(m->price.output_nusd_per_mtok, 300000000);
	CHECK_INT(m->context_tokens, 128000);
	CHECK_INT(m->default_max_tokens, 1024);
	CHECK(m->quality == 0.5);
	CHECK_INT(m->latency_ms, 1000);
	CHECK_INT(m->caps, 0);
	CHECK(!m->max_completion_tokens);
	CHECK_INT(m->line, 2);
	CHECK_INT(cfg->budgets[0].period, PERIOD_NONE);
	CHECK_INT(cfg->budgets[0].parent, -1);
	CHECK_INT(cfg->budgets[0].limit_nusd, 5000000000);
	config_free(cfg);
}

TEST(money_conversion_of_prices)
{
	struct config *cfg = load_text(
	        PROVIDER "models = ( { name = \"m\"; provider = \"openai\";\n"
	                 "  input_usd_per_mtok = 0.15; cached_input_usd_per_mtok = 0.075;\n"
	                 "  output_usd_per_mtok = 2.5; cache_write_usd_per_mtok = 0; } );\n",
	        0);

	CHECK_STR(cfg ? "loaded" : err, "loaded");
	if (!cfg)
		return;
	CHECK_INT(cfg->models[0].price.input_nusd_per_mtok, 150000000);
	CHECK_INT(cfg->models[0].price.cached_input_nusd_per_mtok, 75000000);
	CHECK_INT(cfg->models[0].price.output_nusd_per_mtok, 2500000000);
	CHECK_INT(cfg->models[0].price.cache_write_nusd_per_mtok, 0);
	/* $0.15/Mtok: one token costs 150 nano-USD (SPEC §4). */
	CHECK_INT(money_tokens_nusd(1, cfg->models[0].price.input_nusd_per_mtok), 150);
	config_free(cfg);
}

TEST(example_file_loads)
{
	const char *path = unit_src_path("deploy/promptyard.cfg.example");
	struct config *cfg = NULL;

	CHECK(path != NULL);
	if (!path)
		return;
	cfg = config_load(path, 0, err, sizeof err);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	if (!cfg)
		return;
	CHECK(cfg->n_providers >= 4);
	CHECK(config_provider_index(cfg, "anthropic") >= 0);
	CHECK(config_provider_index(cfg, "gemini") >= 0);
	CHECK(config_provider_index(cfg, "groq") >= 0);
	CHECK(cfg->n_models >= 3);
	CHECK(config_model_index(cfg, "gpt-4o-mini") >= 0);
	CHECK(config_budget_index(cfg, cfg->worker.default_budget) >= 0);
	config_free(cfg);
}

/* ---------------------------------------------------------------- secrets */

TEST(missing_key_fails_only_when_required)
{
	const char *text =
	        "providers = (\n"
	        "  { name = \"openai\"; type = \"openai\"; base_url = \"https://x/v1\";\n"
	        "    api_key_env = \"PROMPTYARD_TEST_UNSET_KEY\"; }\n"
	        ");\n";
	struct config *cfg = NULL;

	unsetenv("PROMPTYARD_TEST_UNSET_KEY");
	cfg = load_text(text, CONFIG_REQUIRE_KEYS);
	CHECK(cfg == NULL);
	CHECK_HAS(err, ":3: providers[0].api_key_env: environment variable "
	               "PROMPTYARD_TEST_UNSET_KEY is not set");
	config_free(cfg);

	cfg = load_text(text, 0);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	CHECK(cfg && cfg->providers[0].api_key == NULL);
	config_free(cfg);

	setenv("PROMPTYARD_TEST_UNSET_KEY", "", 1);
	cfg = load_text(text, CONFIG_REQUIRE_KEYS);
	CHECK(cfg == NULL);
	CHECK_HAS(err, "environment variable PROMPTYARD_TEST_UNSET_KEY is empty");
	config_free(cfg);
	unsetenv("PROMPTYARD_TEST_UNSET_KEY");

	/* An optional provider without its key loads even for the worker. */
	cfg = load_text(
	        "providers = ( { name = \"o\"; type = \"openai\"; base_url = \"http://h\";\n"
	        "  api_key_env = \"PROMPTYARD_TEST_UNSET_KEY\"; optional = true; } );\n",
	        CONFIG_REQUIRE_KEYS);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	CHECK(cfg && cfg->providers[0].optional && cfg->providers[0].api_key == NULL);
	config_free(cfg);
}

TEST(secrets_are_never_echoed)
{
	unsetenv("PROMPTYARD_TEST_UNSET_PW");
	CHECK(fails_with(
	        "redis: { password_env = \"PROMPTYARD_TEST_UNSET_PW\"; };\n", 1,
	        "redis.password_env: environment variable PROMPTYARD_TEST_UNSET_PW is not set"));
	/* A key pasted where the variable's name belongs. */
	CHECK(fails_with(
	        "providers = ( { name = \"o\"; type = \"openai\"; base_url = \"http://h\";\n"
	        "  api_key_env = \"sk-proj-SECRET-123\"; } );\n",
	        2, "providers[0].api_key_env: must name an environment variable"));
	CHECK(strstr(err, "SECRET") == NULL);
	CHECK(fails_with(
	        "providers = ( { name = \"o\"; type = \"openai\"; base_url = \"http://h\";\n"
	        "  api_key = \"sk-proj-SECRET-123\"; } );\n",
	        2, "providers[0].api_key: secrets are never written in the file"));
	CHECK(strstr(err, "SECRET") == NULL);
	CHECK(fails_with("redis: {\n  password = \"SECRET\"; };\n", 2,
	                 "redis.password: secrets are never written in the file"));
}

/* A key with a trailing newline (a Kubernetes Secret made with echo) is
 * trimmed, with a warning naming the variable: the newline would otherwise
 * end the request's header line early. Any other control character is
 * refused, naming the variable and never the value. */
TEST(secret_whitespace_trimmed_controls_refused)
{
	const char *text =
	        PROVIDER_KEYED MODEL "redis: { password_env = \"PROMPTYARD_TEST_PW\"; };\n"
	                             "budgets = ( { name = \"default\"; limit_usd = 1; } );\n";
	char log[2048];
	struct config *cfg = NULL;

	setenv("PROMPTYARD_TEST_KEY", "sk-test\n", 1);
	setenv("PROMPTYARD_TEST_PW", "hunter2 \r\n", 1);
	cfg = load_text_logged(text, CONFIG_REQUIRE_KEYS, log, sizeof log);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	CHECK_STR(cfg ? cfg->providers[0].api_key : NULL, "sk-test");
	CHECK_STR(cfg ? cfg->redis.password : NULL, "hunter2");
	CHECK_HAS(log, "\"variable\":\"PROMPTYARD_TEST_KEY\"");
	CHECK_HAS(log, "\"variable\":\"PROMPTYARD_TEST_PW\"");
	CHECK(!strstr(log, "sk-test") && !strstr(log, "hunter2"));
	if (cfg) {
		/* The header line the provider sends. */
		struct job job;
		struct http_request req = {0};
		const char *json = "{\"id\":\"j\",\"prompt\":\"hi\"}";
		if (job_decode(cfg, json, strlen(json), &job, err, sizeof err) != 0)
			UNIT_FAIL("job_decode: %s", err);
		CHECK_INT(cfg->providers[0].ops->build_request(&cfg->providers[0], &cfg->models[0],
		                                               &job, 0, &req, err, sizeof err),
		          0);
		int auth = 0;
		for (size_t i = 0; i < req.n_headers; i++)
			if (strncmp(req.headers[i], "Authorization:", 14) == 0) {
				CHECK_STR(req.headers[i], "Authorization: Bearer sk-test");
				auth++;
			}
		CHECK_INT(auth, 1);
		http_request_clear(&req);
		job_clear(&job);
	}
	config_free(cfg);

	setenv("PROMPTYARD_TEST_PW", "hunter2", 1);
	static const char *const bad[] = {"sk-te\x01st", "sk-test\nsk-second", "sk-\x7ftest",
	                                  "\tsk-test"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		setenv("PROMPTYARD_TEST_KEY", bad[i], 1);
		cfg = load_text(text, CONFIG_REQUIRE_KEYS);
		CHECK(cfg == NULL);
		CHECK_HAS(err, "providers[0].api_key_env: environment variable PROMPTYARD_TEST_KEY "
		               "holds a control character");
		CHECK(!strstr(err, "sk-"));
		config_free(cfg);
	}
	/* Only whitespace: empty once trimmed. */
	setenv("PROMPTYARD_TEST_KEY", " \r\n", 1);
	cfg = load_text(text, CONFIG_REQUIRE_KEYS);
	CHECK(cfg == NULL);
	CHECK_HAS(err, "environment variable PROMPTYARD_TEST_KEY is empty");
	config_free(cfg);
	unsetenv("PROMPTYARD_TEST_KEY");
	unsetenv("PROMPTYARD_TEST_PW");
}

/* ---------------------------------------------------------------- unknown keys */

TEST(unknown_key_warns_and_loads)
{
	char text[2048];
	struct config *cfg = load_text_logged(
	        "worker: {\n  max_in_flight = 10;\n  max_in_fligth = 20;\n};\n" PROVIDER
	        "models = ( { name = \"m\"; provider = \"openai\";\n"
	        "  qualty = 0.9; } );\nextra = 1;\n",
	        0, text, sizeof text);

	CHECK_STR(cfg ? "loaded" : err, "loaded");
	CHECK(cfg && cfg->worker.max_in_flight == 10);
	CHECK(cfg && cfg->models[0].quality == 0.5);
	config_free(cfg);
	CHECK_HAS(text, "\"msg\":\"unknown configuration key\"");
	CHECK_HAS(text, "\"line\":\"3\",\"key\":\"worker.max_in_fligth\"");
	CHECK_HAS(text, "\"line\":\"7\",\"key\":\"models[0].qualty\"");
	CHECK_HAS(text, "\"key\":\"extra\"");
	CHECK_HAS(text, cfg_path);
}

/* ---------------------------------------------------------------- error classes */

TEST(syntax_and_file_errors)
{
	CHECK(fails_with("worker: {\n  max_in_flight = ;\n};\n", 2, "syntax error ("));
	CHECK(fails_with("a = 1;\na = 2;\n", 2, "syntax error (duplicate setting name)"));
	CHECK(config_load("/nonexistent/p.cfg", 0, err, sizeof err) == NULL);
	CHECK_HAS(err, "/nonexistent/p.cfg: cannot read: No such file or directory");
	CHECK(config_load(dir, 0, err, sizeof err) == NULL);
	CHECK_HAS(err, "Is a directory");
}

/* Found by tests/fuzz/fuzz_config: libconfig exited the process ("input in
 * flex scanner failed") on an @include that names a directory, and would
 * hang on a device. */
TEST(includes_that_are_not_files)
{
	char inc[600];
	FILE *f;
	CHECK(fails_with("# first\n@include \"\"\n", 2, "@include \"\": not a regular file"));
	CHECK(fails_with("@include \".\"\n", 1, "@include \".\": not a regular file"));
	CHECK(fails_with(" \t@include  \"../../dev/null\"\n", 1,
	                 "@include \"../../dev/null\": not a regular file"));
	/* Nested: the included file names a directory; a regular one loads. */
	snprintf(inc, sizeof inc, "%s/inc.cfg", dir);
	f = fopen(inc, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs("worker: { max_in_flight = 7; };\n@include \"\"\n", f);
	fclose(f);
	struct config *cfg = load_text("@include \"inc.cfg\"\n", 0);
	CHECK(cfg == NULL);
	CHECK_HAS(err, "inc.cfg:2: @include \"\": not a regular file");
	f = fopen(inc, "w");
	fputs("worker: { max_in_flight = 7; };\n", f);
	fclose(f);
	cfg = load_text("@include \"inc.cfg\"\n", 0);
	CHECK(cfg && cfg->worker.max_in_flight == 7);
	config_free(cfg);
	unlink(inc);
}

TEST(wrong_types)
{
	CHECK(fails_with("worker: {\n max_in_flight = 10.5; };\n", 2,
	                 "worker.max_in_flight: must be an integer from 1 to 100000"));
	CHECK(fails_with("worker: { max_attempts = \"4\"; };\n", 1,
	                 "worker.max_attempts: must be an integer from 1 to 20"));
	CHECK(fails_with("kafka: { brokers = 5; };\n", 1, "kafka.brokers: must be a string"));
	CHECK(fails_with("kafka: { input_topics = \"llm.jobs\"; };\n", 1,
	                 "kafka.input_topics: must be a list of strings"));
	CHECK(fails_with("kafka: { input_topics = (\"a\", 1); };\n", 1,
	                 "kafka.input_topics[1]: must be a string"));
	CHECK(fails_with(PROVIDER MODEL
	                 "rules = ( { name = \"r\"; match = \"x\";\n ignore_case = 1; } );\n",
	                 4, "rules[0].ignore_case: must be true or false"));
	CHECK(fails_with(
	        PROVIDER
	        "models = ( { name = \"m\"; provider = \"openai\"; quality = \"high\"; } );\n",
	        2, "models[0].quality: must be a number from 0 to 1"));
	CHECK(fails_with("worker = 1;\n", 1, "worker: must be a group"));
	CHECK(fails_with("providers = { name = \"x\"; };\n", 1,
	                 "providers: must be a list of groups"));
	CHECK(fails_with("budgets = ( \"x\" );\n", 1, "budgets[0]: must be a group"));
}

TEST(out_of_range)
{
	CHECK(fails_with("worker: { max_in_flight = 0; };\n", 1,
	                 "worker.max_in_flight: must be an integer from 1 to 100000"));
	CHECK(fails_with("worker: { max_in_flight = 100001; };\n", 1, "worker.max_in_flight:"));
	CHECK(fails_with("worker: { max_attempts = 21; };\n", 1, "worker.max_attempts:"));
	CHECK(fails_with("worker: { retry_same = 11; };\n", 1,
	                 "worker.retry_same: must be an integer from 0 to 10"));
	CHECK(fails_with("worker: { max_job_bytes = 67108865; };\n", 1, "worker.max_job_bytes:"));
	CHECK(fails_with("worker: { drain_timeout_ms = 0; };\n", 1, "worker.drain_timeout_ms:"));
	CHECK(fails_with("redis: { port = 65536; };\n", 1,
	                 "redis.port: must be an integer from 1 to 65535"));
	CHECK(fails_with("redis: { timeout_ms = 0; };\n", 1, "redis.timeout_ms:"));
	CHECK(fails_with("router: { balanced_slack = -0.1; };\n", 1,
	                 "router.balanced_slack: must be a number from 0 to 1"));
	CHECK(fails_with("router: { auto_floor = 2; };\n", 1, "router.auto_floor:"));
	CHECK(fails_with(
	        "providers = ( { name = \"o\"; type = \"openai\"; base_url = \"http://h\";\n"
	        "  timeout_ms = 0; } );\n",
	        2, "providers[0].timeout_ms: must be an integer from 1 to"));
	CHECK(fails_with(PROVIDER "models = ( { name = \"m\"; provider = \"openai\";\n"
	                          "  quality = 1.5; } );\n",
	                 3, "models[0].quality: must be a number from 0 to 1"));
	CHECK(fails_with(PROVIDER "models = ( { name = \"m\"; provider = \"openai\";\n"
	                          "  default_max_tokens = 0; } );\n",
	                 3, "models[0].default_max_tokens: must be an integer from 1 to 1000000"));
	CHECK(fails_with(PROVIDER "models = ( { name = \"m\"; provider = \"openai\";\n"
	                          "  context_tokens = 0; } );\n",
	                 3, "models[0].context_tokens:"));
	CHECK(fails_with(PROVIDER "models = ( { name = \"m\"; provider = \"openai\";\n"
	                          "  output_usd_per_mtok = -0.5; } );\n",
	                 3, "models[0].output_usd_per_mtok: must be a number of USD"));
	CHECK(fails_with("budgets = ( { name = \"default\"; limit_usd = -1; } );\n", 1,
	                 "budgets[0].limit_usd:"));
}

TEST(bad_names_and_enums)
{
	CHECK(fails_with(
	        "providers = ( { name = \"o\"; type = \"openia\"; base_url = \"http://h\"; } );\n",
	        1, "providers[0].type: unknown provider type \"openia\""));
	CHECK(fails_with(PROVIDER "models = (\n  { name = \"a\"; provider = \"openai\"; },\n"
	                          "  { name = \"b\";\n    provider = \"antropic\"; }\n);\n",
	                 5, "models[1].provider: no provider named \"antropic\""));
	CHECK(fails_with("worker: { default_strategy = \"cheap\"; };\n", 1,
	                 "worker.default_strategy: must be one of"));
	CHECK(fails_with(PROVIDER MODEL
	                 "rules = ( { name = \"r\"; match = \"x\";\n strategy = \"best\"; } );\n",
	                 4, "rules[0].strategy: must be one of"));
	CHECK(fails_with(PROVIDER "models = ( { name = \"m\"; provider = \"openai\";\n"
	                          "  capabilities = [\"json\", \"audio\"]; } );\n",
	                 3, "models[0].capabilities[1]: unknown capability \"audio\""));
	CHECK(fails_with(
	        "budgets = ( { name = \"default\"; limit_usd = 1; period = \"week\"; } );\n", 1,
	        "budgets[0].period: must be one of none, day, month"));
	CHECK(fails_with("worker: { on_budget_exhausted = \"stop\"; };\n", 1,
	                 "worker.on_budget_exhausted: must be \"fail\" or \"pause\""));
	CHECK(fails_with("worker: { log_level = \"loud\"; };\n", 1,
	                 "worker.log_level: must be one of"));
	CHECK(fails_with(
	        "worker: { metrics_listen = \"9464\"; };\n", 1,
	        "worker.metrics_listen: must be \"\" (no HTTP endpoint) or \"host:port\""));
	CHECK(fails_with("worker: { metrics_listen = \"localhost:99999\"; };\n", 1,
	                 "worker.metrics_listen:"));
	CHECK(fails_with("kafka: {\n  properties = [\"acks=all\", \"novalue\"]; };\n", 2,
	                 "kafka.properties[1]: must be \"key=value\""));
	CHECK(fails_with("kafka: { input_topics = []; };\n", 1,
	                 "kafka.input_topics: must name at least one topic"));
	CHECK(fails_with(
	        "providers = ( { name = \"o\"; type = \"openai\"; base_url = \"api.x.com\"; } );\n",
	        1, "providers[0].base_url: must be an http:// or https:// URL"));
}

TEST(listen_addresses_that_load)
{
	const char *ok[] = {"worker: { metrics_listen = \"\"; };\n",
	                    "worker: { metrics_listen = \"[::1]:9464\"; };\n",
	                    "worker: { metrics_listen = \"0.0.0.0:1\"; };\n"};
	for (size_t i = 0; i < 3; i++) {
		struct config *cfg = load_text(ok[i], 0);
		CHECK_STR(cfg ? "loaded" : err, "loaded");
		config_free(cfg);
	}
}

TEST(duplicates)
{
	CHECK(fails_with(
	        "providers = (\n { name = \"a\"; type = \"openai\"; base_url = \"http://h\"; },\n"
	        " { name = \"a\"; type = \"openai\"; base_url = \"http://h\"; } );\n",
	        3, "providers[1].name: duplicate provider name \"a\" (first at line 2)"));
	CHECK(fails_with(PROVIDER "models = ( { name = \"m\"; provider = \"openai\"; },\n"
	                          "  { name = \"m\"; provider = \"openai\"; } );\n",
	                 3, "models[1].name: duplicate model name \"m\""));
	CHECK(fails_with("budgets = ( { name = \"default\"; limit_usd = 1; },\n"
	                 "  { name = \"default\"; limit_usd = 2; } );\n",
	                 2, "budgets[1].name: duplicate budget name \"default\""));
	CHECK(fails_with(PROVIDER MODEL "rules = ( { name = \"r\"; match = \"a\"; },\n"
	                                "  { name = \"r\"; match = \"b\"; } );\n",
	                 4, "rules[1].name: duplicate rule name \"r\""));
}

TEST(required_keys)
{
	CHECK(fails_with("providers = (\n  { name = \"o\"; type = \"openai\"; }\n);\n", 2,
	                 "providers[0].base_url: is required"));
	CHECK(fails_with("providers = (\n  { type = \"openai\"; base_url = \"http://h\"; }\n);\n",
	                 2, "providers[0].name: is required"));
	CHECK(fails_with(PROVIDER "models = ( { name = \"m\"; } );\n", 2,
	                 "models[0].provider: is required"));
	CHECK(fails_with("budgets = (\n  { name = \"default\"; period = \"day\"; } );\n", 2,
	                 "budgets[0].limit_usd: is required"));
	CHECK(fails_with(
	        "providers = ( { name = \"\"; type = \"openai\"; base_url = \"http://h\"; } );\n",
	        1, "providers[0].name: must not be empty"));
	CHECK(fails_with(PROVIDER MODEL "rules = ( { match = \"x\"; } );\n", 3,
	                 "rules[0].name: is required"));
}

TEST(budget_chains)
{
	CHECK(fails_with(
	        "budgets = ( { name = \"default\"; limit_usd = 1;\n parent = \"org\"; } );\n", 2,
	        "budgets[0].parent: no budget named \"org\""));
	CHECK(fails_with("budgets = ( { name = \"default\"; limit_usd = 1; parent = \"b\"; },\n"
	                 "  { name = \"b\"; limit_usd = 1; parent = \"default\"; } );\n",
	                 1, "budgets[0].parent: parent chain default -> b -> default is a cycle"));
	CHECK(fails_with(
	        "budgets = ( { name = \"default\"; limit_usd = 1; parent = \"default\"; } );\n", 1,
	        "budgets[0].parent: parent chain default -> default is a cycle"));
	/* A -> B -> C -> D counts four budgets: the limit. */
	const char *four = "budgets = (\n"
	                   "  { name = \"default\"; limit_usd = 1; parent = \"b\"; },\n"
	                   "  { name = \"b\"; limit_usd = 1; parent = \"c\"; },\n"
	                   "  { name = \"c\"; limit_usd = 1; parent = \"d\"; },\n"
	                   "  { name = \"d\"; limit_usd = 1; parent = \"%s\"; },\n"
	                   "  { name = \"e\"; limit_usd = 1; }\n);\n";
	char text[1024];
	snprintf(text, sizeof text, four, "");
	struct config *cfg = load_text(text, 0);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	CHECK(cfg && cfg->budgets[3].parent == -1 && cfg->budgets[0].parent == 1);
	config_free(cfg);
	snprintf(text, sizeof text, four, "e");
	CHECK(fails_with(text, 2,
	                 "budgets[0].parent: parent chain default -> b -> c -> d -> e is longer "
	                 "than 4 budgets"));
}

/* A limit the ledger's scripts could not compare exactly is refused
 * (MONEY_MAX_NUSD, 2^53 - 1 nano-USD). Each budget of a chain is compared
 * on its own, so a parent and a child may both sit at the bound. */
TEST(limit_within_what_lua_compares)
{
	CHECK(fails_with("budgets = ( { name = \"default\";\n limit_usd = 9007199.26; } );\n", 2,
	                 "budgets[0].limit_usd: must be at most 9007199.254740991 USD"));
	CHECK(fails_with("budgets = ( { name = \"default\"; limit_usd = 1e10; } );\n", 1,
	                 "budgets[0].limit_usd: must be a number of USD"));
	struct config *cfg =
	        load_text("budgets = (\n"
	                  "  { name = \"default\"; limit_usd = 9007199.25; parent = \"org\"; },\n"
	                  "  { name = \"org\"; limit_usd = 9007199.25; }\n);\n",
	                  0);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	CHECK(cfg && cfg->budgets[0].limit_nusd == INT64_C(9007199250000000) &&
	      cfg->budgets[0].limit_nusd <= MONEY_MAX_NUSD);
	config_free(cfg);
}

TEST(cross_references)
{
	CHECK(fails_with("worker: { default_budget = \"nope\"; };\n"
	                 "budgets = ( { name = \"default\"; limit_usd = 1; } );\n",
	                 1, "worker.default_budget: no budget named \"nope\""));
	CHECK(fails_with("worker: {\n  default_budget = \"nope\"; };\n", 2,
	                 "worker.default_budget: no budget named \"nope\""));
	/* The implicit "default" must exist once any budget is listed. */
	CHECK(fails_with("worker: { max_attempts = 2; };\n"
	                 "budgets = ( { name = \"nightly\"; limit_usd = 1; } );\n",
	                 1, "worker.default_budget: no budget named \"default\""));
	CHECK(fails_with(PROVIDER MODEL "router: {\n  classifier_model = \"tiny\"; };\n", 4,
	                 "router.classifier_model: no model named \"tiny\""));
}

TEST(rule_errors)
{
	CHECK(fails_with(PROVIDER MODEL
	                 "rules = ( { name = \"r\";\n  match = \"(unclosed\"; } );\n",
	                 4, "rules[0].match: bad regular expression: "));
	CHECK(fails_with(PROVIDER MODEL "rules = ( { name = \"r\"; match = \"x\";\n"
	                                "  models = [\"m\", \"gpt-5\"]; } );\n",
	                 4, "rules[0].models[1]: no model named \"gpt-5\""));
	CHECK(fails_with(PROVIDER MODEL "rules = ( { name = \"r\"; metadata = {\n"
	                                "  tags = [\"a\"]; }; } );\n",
	                 4, "rules[0].metadata.tags: must be a string, a number or a boolean"));
	CHECK(fails_with(PROVIDER MODEL
	                 "rules = (\n  { name = \"r\"; strategy = \"cheapest\"; } );\n",
	                 4, "rules[0]: needs match or metadata"));
	CHECK(fails_with(PROVIDER MODEL "rules = ( { name = \"r\"; metadata = \"task=x\"; } );\n",
	                 3, "rules[0].metadata: must be a group"));
	struct config *cfg =
	        load_text(PROVIDER MODEL "rules = ( { name = \"r\"; match = \"^Hello\"; } );\n", 0);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	CHECK(cfg && !cfg->rules[0].ignore_case &&
	      regexec(&cfg->rules[0].re, "hello", 0, NULL, 0) == REG_NOMATCH);
	CHECK(cfg && cfg->rules[0].strategy == -1);
	config_free(cfg);
}

TEST(keys_of_rich_jobs_batches_and_integrations)
{
	setenv("PY_TEST_HDR", "tok-123\n", 1); /* a trailing newline is trimmed */
	setenv("PY_TEST_KEY", "sk-abc", 1);
	struct config *cfg = load_text(
	        "redis = { username = \"app\"; sentinels = [\"s1:26379\", \"[::1]:26380\"];\n"
	        "          sentinel_master = \"mymaster\"; min_replicas_acked = 2; };\n"
	        "worker = { default_mode = \"auto\"; max_fetch_bytes = 1048576; };\n"
	        "batch = { max_requests = 500; max_wait_ms = 2000; poll_interval_s = 5;\n"
	        "          min_lead_s = 600; fallback_lead_s = 300; default_window_s = 7200; };\n"
	        "providers = (\n"
	        "  { name = \"az\"; type = \"openai\"; base_url = "
	        "\"https://x.openai.azure.com/o\";\n"
	        "    api_key_env = \"PY_TEST_KEY\"; auth_header = \"api-key\"; batch = true;\n"
	        "    headers = [\"X-Team: ${PY_TEST_HDR}\", \"HTTP-Referer:   "
	        "https://a.b/${PY_TEST_HDR}/c\"];\n"
	        "    query = [\"api-version=2024-10-21\", \"x=1\"]; },\n"
	        "  { name = \"plain\"; type = \"anthropic\"; base_url = \"http://h\"; }\n"
	        ");\n"
	        "models = (\n"
	        "  { name = \"m\"; provider = \"az\"; input_usd_per_mtok = 0.15;\n"
	        "    cached_input_usd_per_mtok = 0.075; output_usd_per_mtok = 0.6;\n"
	        "    max_output_tokens = 16384; image_tokens = 800; pdf_page_tokens = 1500;\n"
	        "    thinking_budget_low = 2000; thinking_budget_high = 16000;\n"
	        "    batch_output_usd_per_mtok = 0.25;\n"
	        "    capabilities = [\"json_schema\", \"pdf\", \"reasoning\"]; },\n"
	        "  { name = \"b\"; provider = \"plain\"; input_usd_per_mtok = 3.0; "
	        "output_usd_per_mtok = 15.0; }\n"
	        ");\n",
	        CONFIG_REQUIRE_KEYS);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	if (cfg && cfg->n_providers == 2 && cfg->n_models == 2) {
		CHECK_STR(cfg->redis.username, "app");
		CHECK_INT(cfg->redis.n_sentinels, 2);
		CHECK_STR(cfg->redis.sentinels[1], "[::1]:26380");
		CHECK_STR(cfg->redis.sentinel_master, "mymaster");
		CHECK_INT(cfg->redis.min_replicas_acked, 2);
		CHECK_INT(cfg->worker.default_mode, MODE_AUTO);
		CHECK_INT(cfg->worker.max_fetch_bytes, 1048576);
		CHECK_INT(cfg->batch.max_requests, 500);
		CHECK_INT(cfg->batch.max_wait_ms, 2000);
		CHECK_INT(cfg->batch.poll_interval_s, 5);
		CHECK_INT(cfg->batch.min_lead_s, 600);
		CHECK_INT(cfg->batch.fallback_lead_s, 300);
		CHECK_INT(cfg->batch.default_window_s, 7200);
		const struct provider_conf *p = &cfg->providers[0];
		CHECK(p->batch);
		CHECK_STR(p->auth_header, "api-key");
		CHECK_INT(p->n_headers, 2);
		CHECK_STR(p->headers[0], "X-Team: tok-123");
		CHECK_STR(p->headers[1], "HTTP-Referer: https://a.b/tok-123/c");
		CHECK_STR(p->query, "api-version=2024-10-21&x=1");
		CHECK(p->missing_env == NULL);
		p = &cfg->providers[1];
		CHECK(!p->batch);
		CHECK(p->auth_header == NULL && p->ca_file == NULL && p->query == NULL);
		CHECK_INT(p->n_headers, 0);
		const struct model_conf *m = &cfg->models[0];
		CHECK_INT(m->caps, CAP_JSON_SCHEMA | CAP_PDF | CAP_REASONING);
		CHECK_INT(m->max_output_tokens, 16384);
		CHECK_INT(m->image_tokens, 800);
		CHECK_INT(m->pdf_page_tokens, 1500);
		CHECK_INT(m->thinking_budget[EFFORT_LOW], 2000);
		CHECK_INT(m->thinking_budget[EFFORT_MEDIUM], 8192);
		CHECK(m->has_batch_price);
		CHECK_INT(m->batch_price.input_nusd_per_mtok, 75000000); /* half, by default */
		CHECK_INT(m->batch_price.cached_input_nusd_per_mtok, 37500000);
		CHECK_INT(m->batch_price.output_nusd_per_mtok, 250000000); /* as set */
		m = &cfg->models[1];
		CHECK(!m->has_batch_price); /* its provider has no batch */
		CHECK_INT(m->image_tokens, 1600);
		CHECK_INT(m->pdf_page_tokens, 3000);
		CHECK_INT(m->max_output_tokens, 0);
		char caps[128];
		CHECK_STR(capability_list(CAP_JSON | CAP_PDF | CAP_REASONING, caps, sizeof caps),
		          "json,pdf,reasoning");
	}
	config_free(cfg);

	/* Defaults. */
	cfg = load_text("# nothing\n", 0);
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK_INT(cfg->worker.default_mode, MODE_SYNC);
		CHECK_INT(cfg->worker.max_fetch_bytes, 20971520);
		CHECK(cfg->worker.fetch_ca_file == NULL);
		CHECK_INT(cfg->batch.max_requests, 10000);
		CHECK_INT(cfg->batch.max_wait_ms, 60000);
		CHECK_INT(cfg->batch.poll_interval_s, 60);
		CHECK_INT(cfg->batch.min_lead_s, 3600);
		CHECK_INT(cfg->batch.fallback_lead_s, 1800);
		CHECK_INT(cfg->batch.default_window_s, 86400);
		CHECK(cfg->redis.username == NULL);
		CHECK_INT(cfg->redis.n_sentinels, 0);
		CHECK_INT(cfg->redis.min_replicas_acked, 1);
	}
	config_free(cfg);

	/* A missing ${NAME}: required fails naming it, an optional provider notes it. */
	unsetenv("PY_TEST_NOPE");
	cfg = load_text(
	        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://h\";\n"
	        "  headers = [\"X: ${PY_TEST_NOPE}\"]; } );\n",
	        CONFIG_REQUIRE_KEYS);
	CHECK(cfg == NULL);
	CHECK(strstr(err,
	             ":2: providers[0].headers[0]: environment variable PY_TEST_NOPE is not set"));
	config_free(cfg);
	cfg = load_text(
	        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://h\";\n"
	        "  headers = [\"X: ${PY_TEST_NOPE}\"]; optional = true; } );\n",
	        CONFIG_REQUIRE_KEYS);
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK_STR(cfg->providers[0].missing_env, "PY_TEST_NOPE");
		config_assume_credentials(cfg);
		CHECK(cfg->providers[0].missing_env == NULL);
	}
	config_free(cfg);

	/* A control character inside a secret is refused without echoing it. */
	setenv("PY_TEST_HDR", "abc\001def", 1);
	cfg = load_text(
	        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://h\";\n"
	        "  api_key_env = \"PY_TEST_HDR\"; } );\n",
	        CONFIG_REQUIRE_KEYS);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "PY_TEST_HDR") != NULL);
	CHECK(strstr(err, "abc") == NULL);
	config_free(cfg);

	unsetenv("PY_TEST_HDR");
	unsetenv("PY_TEST_KEY");
}

/* worker.fetch_ca_file (extension): the PEM bundle that fetches of URL
 * parts trust; it must be readable when the worker starts, as a provider's
 * ca_file; "" is none. */
TEST(fetch_ca_file)
{
	char ca[600], text[800];
	snprintf(ca, sizeof ca, "%s/corporate-ca.pem", dir);
	FILE *f = fopen(ca, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs("-----BEGIN CERTIFICATE-----\n", f);
	fclose(f);
	snprintf(text, sizeof text, "worker = { fetch_ca_file = \"%s\"; };\n", ca);
	struct config *cfg = load_text(text, 0);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	if (cfg)
		CHECK_STR(cfg->worker.fetch_ca_file, ca);
	config_free(cfg);
	cfg = load_text("worker = { fetch_ca_file = \"\"; };\n", 0);
	CHECK(cfg && cfg->worker.fetch_ca_file == NULL);
	config_free(cfg);
	CHECK(fails_with("worker = {\n  fetch_ca_file = \"/nonexistent/ca.pem\"; };\n", 2,
	                 "worker.fetch_ca_file: cannot read /nonexistent/ca.pem"));
}

TEST(errors_of_rich_jobs_batches_and_integrations)
{
	CHECK(fails_with("worker = { default_mode = \"later\"; };\n", 1,
	                 "worker.default_mode: must be one of sync, batch, auto"));
	CHECK(fails_with("batch = {\n min_lead_s = 100;\n fallback_lead_s = 100; };\n", 3,
	                 "batch.fallback_lead_s: must be less than min_lead_s (100)"));
	CHECK(fails_with("redis = {\n sentinels = [\"s1:26379\"]; };\n", 1,
	                 "redis.sentinel_master: is required with sentinels"));
	CHECK(fails_with("redis = {\n sentinels = [\"s1\"]; sentinel_master = \"m\"; };\n", 2,
	                 "redis.sentinels[0]: must be \"host:port\""));
	CHECK(fails_with(
	        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://h\";\n"
	        "  headers = [\"no colon\"]; } );\n",
	        2, "providers[0].headers[0]: must be \"Name: value\""));
	CHECK(fails_with(
	        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://h\";\n"
	        "  auth_header = \"api key\"; } );\n",
	        2, "providers[0].auth_header: must be a header name"));
	CHECK(fails_with(
	        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://h\";\n"
	        "  ca_file = \"/nonexistent/ca.pem\"; } );\n",
	        2, "providers[0].ca_file: cannot read /nonexistent/ca.pem"));
	CHECK(fails_with(
	        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://h\";\n"
	        "  query = [\"a b=c\"]; } );\n",
	        2, "providers[0].query[0]: must be \"name=value\""));
	CHECK(fails_with(
	        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://h\"; } );\n"
	        "models = ( { name = \"m\"; provider = \"p\";\n"
	        "  capabilities = [\"telepathy\"]; } );\n",
	        3,
	        "models[0].capabilities[0]: unknown capability \"telepathy\" (json, json_schema, "
	        "tools, vision, pdf, "
	        "reasoning, long_context)"));
	CHECK(fails_with(
	        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://h\"; } );\n"
	        "models = ( { name = \"m\"; provider = \"p\";\n"
	        "  max_output_tokens = 100; default_max_tokens = 200; } );\n",
	        3, "models[0].default_max_tokens: must not exceed max_output_tokens (100)"));
}

/* Bedrock (SPEC §15): region required; with no api_key_env the AWS
 * variables are the credentials, required unless the provider is optional;
 * with one, its key is a Bedrock API key and the AWS ones are not read. */
TEST(bedrock_provider)
{
#define BEDROCK(extra)                                                                             \
	"providers = ( { name = \"aws\"; type = \"bedrock\";\n"                                    \
	"  base_url = \"https://bedrock-runtime.us-east-1.amazonaws.com\";" extra " } );\n"        \
	"models = ( { name = \"claude\"; provider = \"aws\";\n"                                    \
	"  id = \"anthropic.claude-3-5-sonnet-20240620-v1:0\"; } );\n"
	static const char *const vars[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
	                                   "AWS_SESSION_TOKEN", "PY_TEST_BEDROCK_KEY"};
	char *saved[4];
	for (int i = 0; i < 4; i++) {
		const char *v = getenv(vars[i]);
		saved[i] = v ? xstrdup(v) : NULL;
		unsetenv(vars[i]);
	}

	setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n", 1);
	struct config *cfg = load_text(BEDROCK(" region = \"us-east-1\";"), CONFIG_REQUIRE_KEYS);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	if (cfg) {
		const struct provider_conf *p = &cfg->providers[0];
		CHECK_STR(p->type, "bedrock");
		CHECK(p->ops != NULL && strcmp(p->ops->type, "bedrock") == 0);
		CHECK_INT(p->ops->url_parts, 0);
		CHECK_STR(p->region, "us-east-1");
		CHECK_STR(p->api_key_env, "");
		CHECK(p->api_key == NULL);
		CHECK_STR(p->aws_access_key_id, "AKIDEXAMPLE");
		CHECK_STR(p->aws_secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
		CHECK(p->aws_session_token == NULL); /* optional */
		CHECK(p->missing_env == NULL);
		CHECK_STR(cfg->models[0].id, "anthropic.claude-3-5-sonnet-20240620-v1:0");
	}
	config_free(cfg);

	setenv("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjEPT//token=", 1);
	cfg = load_text(BEDROCK(" region = \"eu-west-3\";"), CONFIG_REQUIRE_KEYS);
	CHECK(cfg && cfg->providers[0].aws_session_token &&
	      strcmp(cfg->providers[0].aws_session_token, "IQoJb3JpZ2luX2VjEPT//token=") == 0);
	CHECK(cfg && strcmp(cfg->providers[0].region, "eu-west-3") == 0);
	config_free(cfg);

	/* region is required, and must look like one. */
	CHECK(fails_with(BEDROCK(""), 1, "providers[0].region: is required for type bedrock"));
	CHECK(fails_with(BEDROCK(" region = \"US East\";"), 2,
	                 "providers[0].region: must be an AWS region name"));
	CHECK(fails_with(BEDROCK(" region = \"us-east-1\"; batch = true;"), 2,
	                 "providers[0].batch: is not supported for type bedrock"));

	/* A missing AWS variable: an error for the worker, naming it and no
	 * value; a missing_env for an optional provider or the command line. */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	cfg = load_text(BEDROCK(" region = \"us-east-1\";"), CONFIG_REQUIRE_KEYS);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "providers[0].type: bedrock signs its calls with AWS credentials: "
	                  "environment variable AWS_SECRET_ACCESS_KEY is not set") != NULL);
	CHECK(strstr(err, "AKIDEXAMPLE") == NULL);
	config_free(cfg);
	cfg = load_text(BEDROCK(" region = \"us-east-1\"; optional = true;"), CONFIG_REQUIRE_KEYS);
	CHECK_STR(cfg ? cfg->providers[0].missing_env : err, "AWS_SECRET_ACCESS_KEY");
	config_free(cfg);
	unsetenv("AWS_ACCESS_KEY_ID");
	cfg = load_text(BEDROCK(" region = \"us-east-1\";"), 0);
	CHECK_STR(cfg ? cfg->providers[0].missing_env : err, "AWS_ACCESS_KEY_ID");
	config_free(cfg);

	/* With api_key_env: a Bedrock API key; the AWS variables are not read. */
	setenv("PY_TEST_BEDROCK_KEY", "bedrock-api-key-abc", 1);
	cfg = load_text(BEDROCK(" region = \"us-west-2\"; api_key_env = \"PY_TEST_BEDROCK_KEY\";"),
	                CONFIG_REQUIRE_KEYS);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	if (cfg) {
		const struct provider_conf *p = &cfg->providers[0];
		CHECK_STR(p->api_key, "bedrock-api-key-abc");
		CHECK(p->aws_access_key_id == NULL && p->aws_secret_access_key == NULL &&
		      p->aws_session_token == NULL);
		CHECK(p->missing_env == NULL);
	}
	config_free(cfg);

	for (int i = 0; i < 4; i++) {
		if (saved[i])
			setenv(vars[i], saved[i], 1);
		else
			unsetenv(vars[i]);
		free(saved[i]);
	}
#undef BEDROCK
}

TEST(free_null_is_safe)
{
	config_free(NULL);
	CHECK(config_load("/nonexistent", 0, NULL, 0) == NULL);
}

/* Leaves nothing behind in /tmp. */
static void remove_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[600];

	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

int main(void)
{
	log_set_level(LOG_WARN);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(full_config_loads_every_key);
	RUN(empty_file_takes_every_default);
	RUN(element_defaults);
	RUN(money_conversion_of_prices);
	RUN(example_file_loads);
	RUN(missing_key_fails_only_when_required);
	RUN(secrets_are_never_echoed);
	RUN(secret_whitespace_trimmed_controls_refused);
	RUN(unknown_key_warns_and_loads);
	RUN(syntax_and_file_errors);
	RUN(includes_that_are_not_files);
	RUN(wrong_types);
	RUN(out_of_range);
	RUN(bad_names_and_enums);
	RUN(listen_addresses_that_load);
	RUN(duplicates);
	RUN(required_keys);
	RUN(budget_chains);
	RUN(limit_within_what_lua_compares);
	RUN(cross_references);
	RUN(rule_errors);
	RUN(keys_of_rich_jobs_batches_and_integrations);
	RUN(fetch_ca_file);
	RUN(errors_of_rich_jobs_batches_and_integrations);
	RUN(bedrock_provider);
	RUN(free_null_is_safe);
	remove_dir();
	return unit_done();
}
