/* test_catalog: LiteLLM's price map read exactly (catalog.c): prices from
 * their decimal text, refused values, tiers, names, and the printed models
 * read back by config_load to the same nano-USD, for the fixture and for
 * many random prices. */
#include "catalog.h"

#include "config.h"
#include "log.h"
#include "money.h"
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

static char err[1024];

/* Parses text into c (cleared first). */
static int parse(struct catalog *c, const char *text, const struct catalog_select *sel)
{
	catalog_clear(c);
	return catalog_parse(text, strlen(text), sel, c, err, sizeof err);
}

static const struct catalog_entry *find(const struct catalog *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].key, key) == 0)
			return &c->v[i];
	return NULL;
}

/* One chat entry of provider "openai" whose input price is the JSON text num. */
static int64_t input_of(struct catalog *c, const char *num)
{
	char text[512];
	snprintf(text, sizeof text,
	         "{\"m\": {\"litellm_provider\": \"openai\", \"mode\": \"chat\", "
	         "\"input_cost_per_token\": %s, \"output_cost_per_token\": 0}}",
	         num);
	if (parse(c, text, NULL) != 0 || c->n != 1)
		return -2;
	return c->v[0].price[CATALOG_INPUT];
}

TEST(prices_exact_from_decimal_text)
{
	struct catalog c = {0};
	CHECK_INT(input_of(&c, "1.5e-07"), 150000000);    /* $0.15/Mtok */
	CHECK_INT(input_of(&c, "0.0000025"), 2500000000); /* $2.50 */
	CHECK_INT(input_of(&c, "5e-09"), 5000000);        /* $0.005: 5e-09 * 1e15 */
	CHECK_INT(input_of(&c, "5E-9"), 5000000);
	CHECK_INT(input_of(&c, "1.875e-08"), 18750000);
	CHECK_INT(input_of(&c, "2.1875e-06"), 2187500000);
	CHECK_INT(input_of(&c, "0.000168"), 168000000000);
	CHECK_INT(input_of(&c, "1.59263611e-07"), 159263611);
	CHECK_INT(input_of(&c, "1e-15"), 1); /* the smallest step: a nano-USD per Mtok */
	CHECK_INT(input_of(&c, "0.000000000000001"), 1);
	CHECK_INT(input_of(&c, "0"), 0);
	CHECK_INT(input_of(&c, "0.0"), 0);
	CHECK_INT(input_of(&c, "-0.0"), 0);
	CHECK_INT(input_of(&c, "3"), INT64_C(3000000000000000)); /* $3 a token */
	CHECK_INT(input_of(&c, "0.1e1"), INT64_C(1000000000000000));
	CHECK_INT(input_of(&c, "9e3"), INT64_C(9000000000000000000)); /* the money bound */
	CHECK_INT(c.n_warnings, 0);
	/* Finer than a nano-USD per Mtok: rounded up, with a word. */
	CHECK_INT(input_of(&c, "1.0000000000000001e-07"), 100000001);
	CHECK_INT(c.n_warnings, 1);
	if (c.n_warnings)
		CHECK_HAS(c.warnings[0],
		          "\"m\": input_cost_per_token: finer than a nano-USD per million "
		          "tokens: rounded up to $0.100000001/Mtok");
	CHECK_INT(input_of(&c, "1e-16"), 1);
	CHECK_INT(input_of(&c, "1e-999999999999"), 1);
	catalog_clear(&c);
}

TEST(prices_refused)
{
	static const struct {
		const char *num, *why;
	} cases[] = {
	        {"-1e-06", "negative price"},
	        {"\"0.000001\"", "not a number"},
	        {"true", "not a number"},
	        {"{}", "not a number"},
	        {"1e30", "beyond the money bounds"},
	        {"9.000000000000001e3", "beyond the money bounds"},
	        {"1e999999999999", "beyond the money bounds"},
	        /* Below the bound, but its USD per Mtok does not read back exactly. */
	        {"8.999999999999999999e3", "too large to write exactly in a config"},
	};
	struct catalog c = {0};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK_INT(input_of(&c, cases[i].num), -2); /* no entry */
		CHECK_INT(c.skipped, 1);
		CHECK_INT(c.n_warnings, 1);
		if (c.n_warnings) {
			CHECK_HAS(c.warnings[0], "\"m\": input_cost_per_token: ");
			CHECK_HAS(c.warnings[0], cases[i].why);
			CHECK_HAS(c.warnings[0], "entry skipped");
		}
	}
	catalog_clear(&c);
}

/* Every price a config can hold below $2,000,000/Mtok prints so that it
 * reads back to the same nano-USD (past 2^51 nano-USD a double's
 * product can round wrong, which catalog_parse refuses instead). */
TEST(printed_prices_roundtrip)
{
	uint64_t x = 88172645463325252u;
	int bad = 0;
	for (int64_t v = 0; v < 200000; v++)
		bad += !catalog_usd_roundtrips(v);
	for (int i = 0; i < 300000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* Spread over every magnitude up to 2^51. */
		int64_t v = (int64_t)(x >> (13 + x % 40));
		bad += !catalog_usd_roundtrips(v);
	}
	CHECK_INT(bad, 0);
	char s[40];
	catalog_format_usd(3000000000, s, sizeof s);
	CHECK_STR(s, "3.0");
	catalog_format_usd(150000000, s, sizeof s);
	CHECK_STR(s, "0.15");
	catalog_format_usd(1, s, sizeof s);
	CHECK_STR(s, "0.000000001");
	catalog_format_usd(0, s, sizeof s);
	CHECK_STR(s, "0.0");
}

/* Writes text to a temp file and loads it as a config. */
static struct config *load_config(const char *text)
{
	char path[] = "/tmp/test_catalog.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	size_t len = strlen(text);
	ssize_t n = write(fd, text, len);
	close(fd);
	struct config *cfg = n == (ssize_t)len ? config_load(path, 0, err, sizeof err) : NULL;
	unlink(path);
	return cfg;
}

/* The imported models, with a provider of each name they need (batch on,
 * so that batch prices are read too), loaded by config_load. */
static struct config *load_imported(struct catalog *c, size_t *written)
{
	struct buf text = {0};
	static const char *const providers[] = {"openai",
	                                        "anthropic",
	                                        "gemini",
	                                        "bedrock",
	                                        "bedrock_converse",
	                                        "ollama",
	                                        "vertex_ai-language-models"};
	buf_puts(&text, "providers = (");
	for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++)
		buf_printf(
		        &text,
		        "%s{ name = \"%s\"; type = \"openai\"; base_url = \"http://127.0.0.1:1\"; "
		        "api_key_env = \"\"; batch = true; }",
		        i ? ", " : "", providers[i]);
	buf_puts(&text, ");\n");
	*written = catalog_write_models(&text, c, NULL, "test");
	struct config *cfg = load_config(text.data);
	if (!cfg)
		printf("%s\n", text.data);
	buf_free(&text);
	return cfg;
}

TEST(fixture_imports_and_reads_back_exactly)
{
	const char *path = unit_src_path("tests/fixtures/litellm_prices_excerpt.json");
	CHECK(path != NULL);
	if (!path)
		return;
	FILE *f = fopen(path, "rb");
	struct buf text = {0};
	char chunk[4096];
	size_t n;
	while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&text, chunk, n);
	if (f)
		fclose(f);
	struct catalog c = {0};
	CHECK_INT(catalog_parse(text.data, text.len, NULL, &c, err, sizeof err), 0);
	buf_free(&text);
	CHECK_INT(c.entries, 25);
	CHECK_INT(c.n, 12);
	CHECK_INT(c.skipped, 7);
	CHECK_INT(c.not_chat, 5); /* two embeddings, responses, ft:, bedrock/us-east-1/ */

	const struct catalog_entry *e = find(&c, "test-gpt-mini");
	CHECK(e != NULL);
	if (e) {
		CHECK_INT(e->price[CATALOG_INPUT], 150000000);
		CHECK_INT(e->price[CATALOG_CACHED], 75000000);
		CHECK_INT(e->price[CATALOG_CACHE_WRITE], -1);
		CHECK_INT(e->price[CATALOG_OUTPUT], 600000000);
		CHECK_INT(e->price[CATALOG_BATCH_INPUT], 75000000);
		CHECK_INT(e->price[CATALOG_BATCH_CACHED], -1);
		CHECK_INT(e->price[CATALOG_BATCH_OUTPUT], 300000000);
		CHECK_INT(e->max_input_tokens, 128000);
		CHECK_INT(e->max_output_tokens, 16384);
		CHECK_INT(e->caps, CAP_JSON | CAP_JSON_SCHEMA | CAP_TOOLS | CAP_VISION | CAP_PDF);
		CHECK_INT(e->tier_tokens, 0);
	}
	e = find(&c, "gemini/test-gemini-pro");
	CHECK(e != NULL);
	if (e) {
		CHECK_STR(e->id, "test-gemini-pro");
		CHECK_STR(e->provider, "gemini");
		CHECK_INT(e->price[CATALOG_CACHE_WRITE], -1); /* 0 beside a real input price */
		CHECK_INT(e->tier_tokens, 200000);
		CHECK_INT(e->tier[CATALOG_INPUT], 2500000000);
		CHECK_INT(e->tier[CATALOG_CACHED], 250000000);
		CHECK_INT(e->tier[CATALOG_CACHE_WRITE], -1);
		CHECK_INT(e->tier[CATALOG_OUTPUT], 15000000000);
	}
	e = find(&c, "test-local-llama");
	CHECK(e && e->price[CATALOG_INPUT] == 0 && e->price[CATALOG_OUTPUT] == 0);
	e = find(&c, "test-gpt-fine");
	CHECK(e && e->max_input_tokens == 8192); /* 8192.0 is a whole number */
	e = find(&c, "test-claude-sonnet-20250101");
	CHECK(e && e->deprecation_date && strcmp(e->deprecation_date, "2027-01-01") == 0);
	CHECK(e && e->tier[CATALOG_CACHE_WRITE] == 7500000000);

	size_t written = 0;
	struct config *cfg = load_imported(&c, &written);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	CHECK_INT(written, 14); /* two entries have a -long twin */
	for (size_t i = 0; cfg && i < cfg->n_models; i++) {
		const struct model_conf *m = &cfg->models[i];
		e = catalog_match(&c, cfg, m);
		CHECK(e != NULL);
		if (!e)
			continue;
		int64_t want[CATALOG_PRICES];
		catalog_expected(e, m, want);
		const struct price *p = &m->price, *b = &m->batch_price;
		int64_t have[CATALOG_PRICES] = {
		        p->input_nusd_per_mtok,       p->cached_input_nusd_per_mtok,
		        p->cache_write_nusd_per_mtok, p->output_nusd_per_mtok,
		        b->input_nusd_per_mtok,       b->cached_input_nusd_per_mtok,
		        b->output_nusd_per_mtok};
		for (int k = 0; k < CATALOG_PRICES; k++)
			if (want[k] >= 0 && have[k] != want[k])
				UNIT_FAIL("%s: %s: config %lld, file %lld", m->name,
				          catalog_price_key(k), (long long)have[k],
				          (long long)want[k]);
		bool is_long = strstr(m->name, "-long") != NULL;
		CHECK_INT(m->context_tokens, e->tier_tokens && !is_long ? e->tier_tokens
		                             : e->max_input_tokens      ? e->max_input_tokens
		                                                        : 128000);
		CHECK_INT(m->max_output_tokens, e->max_output_tokens);
		CHECK_INT(m->caps & ~CAP_LONG_CONTEXT, e->caps);
		CHECK_INT(!!(m->caps & CAP_LONG_CONTEXT), m->context_tokens >= 200000);
	}
	if (cfg) {
		int i = config_model_index(cfg, "vertex_ai-language-models/test-gemini-flash");
		CHECK(i >= 0 && strcmp(cfg->models[i].id, "test-gemini-flash") == 0);
		i = config_model_index(cfg, "test-gemini-pro-long");
		CHECK(i >= 0 && cfg->models[i].price.input_nusd_per_mtok == 2500000000);
		i = config_model_index(cfg, "test-gpt-reasoner");
		CHECK(i >= 0 && cfg->models[i].max_completion_tokens &&
		      cfg->models[i].default_max_tokens == 4096);
		i = config_model_index(cfg, "test-gpt-mini");
		CHECK(i >= 0 && !cfg->models[i].max_completion_tokens &&
		      cfg->models[i].default_max_tokens == 1024 && cfg->models[i].quality == 0.5 &&
		      cfg->models[i].latency_ms == 1000);
	}
	config_free(cfg);
	catalog_clear(&c);
}

/* 1,500 random prices through the whole path: JSON text, catalog, printed
 * config, config_load, all equal to the nano-USD. */
TEST(random_prices_read_back_exactly)
{
	struct buf json = {0};
	uint64_t x = 0x9E3779B97F4A7C15u;
	int64_t want[1500];
	buf_puts(&json, "{");
	for (int i = 0; i < 1500; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		want[i] = (int64_t)(x >> (13 + x % 45)); /* below 2^51 nano-USD per Mtok */
		/* USD per token = nusd / 10^15: as an integer and an exponent, and
		 * in plain notation. */
		buf_printf(&json,
		           "%s\"m%d\": {\"litellm_provider\": \"openai\", \"mode\": \"chat\", "
		           "\"input_cost_per_token\": %llde-15, \"output_cost_per_token\": "
		           "%lld.%015lld}",
		           i ? ", " : "", i, (long long)want[i],
		           (long long)(want[i] / 1000000000000000),
		           (long long)(want[i] % 1000000000000000));
	}
	buf_puts(&json, "}");
	struct catalog c = {0};
	CHECK_INT(catalog_parse(json.data, json.len, NULL, &c, err, sizeof err), 0);
	CHECK_INT(c.n, 1500);
	CHECK_INT(c.n_warnings, 0);
	size_t written = 0;
	struct config *cfg = load_imported(&c, &written);
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	for (int i = 0; cfg && i < 1500; i++) {
		char name[16];
		snprintf(name, sizeof name, "m%d", i);
		int k = config_model_index(cfg, name);
		CHECK(k >= 0);
		if (k < 0)
			continue;
		if (cfg->models[k].price.input_nusd_per_mtok != want[i])
			UNIT_FAIL("%s: input %lld, expected %lld", name,
			          (long long)cfg->models[k].price.input_nusd_per_mtok,
			          (long long)want[i]);
		if (cfg->models[k].price.output_nusd_per_mtok != want[i])
			UNIT_FAIL("%s: output %lld, expected %lld", name,
			          (long long)cfg->models[k].price.output_nusd_per_mtok,
			          (long long)want[i]);
	}
	config_free(cfg);
	catalog_clear(&c);
	buf_free(&json);
}

TEST(select_providers)
{
	struct catalog_select sel = {0};
	CHECK_INT(catalog_select_parse("openai,anthropic=my-anthropic,bedrock_converse=bedrock",
	                               &sel, err, sizeof err),
	          0);
	CHECK_INT(sel.n, 3);
	CHECK_STR(catalog_select_name(&sel, "openai"), "openai");
	CHECK_STR(catalog_select_name(&sel, "anthropic"), "my-anthropic");
	CHECK_STR(catalog_select_name(&sel, "bedrock_converse"), "bedrock");
	CHECK(catalog_select_name(&sel, "gemini") == NULL);
	CHECK_STR(catalog_select_name(NULL, "gemini"), "gemini");

	struct catalog c = {0};
	CHECK_INT(parse(&c,
	                "{\"a/x\": {\"litellm_provider\": \"anthropic\", \"mode\": \"chat\", "
	                "\"input_cost_per_token\": 1e-6, \"output_cost_per_token\": 2e-6}, "
	                "\"g\": {\"litellm_provider\": \"gemini\", \"mode\": \"chat\"}, "
	                "\"o\": {\"litellm_provider\": \"openai\", \"mode\": \"embedding\"}}",
	                &sel),
	          0);
	CHECK_INT(c.n, 1);
	CHECK_INT(c.unselected, 1); /* gemini: not selected, and not checked either */
	CHECK_INT(c.not_chat, 1);
	CHECK_INT(c.n_warnings, 0);
	struct buf out = {0};
	CHECK_INT(catalog_write_models(&out, &c, &sel, "f.json"), 1);
	CHECK_HAS(out.data, "{ name = \"a/x\"; provider = \"my-anthropic\"; id = \"a/x\";");
	buf_free(&out);
	catalog_clear(&c);
	catalog_select_clear(&sel);

	static const char *const bad[] = {
	        "", "openai,", ",openai", "openai,,gemini", "a=", "=b", "a b", "a=b c", "a=\"b\""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_INT(catalog_select_parse(bad[i], &sel, err, sizeof err), -1);
		CHECK_INT(sel.n, 0);
	}
}

TEST(malformed_text_is_an_error_with_its_place)
{
	struct catalog c = {0};
	CHECK_INT(parse(&c, "{\n  \"a\": {\"mode\": \"chat\",}\n}", NULL), -1);
	CHECK_HAS(err, "2:");
	CHECK_INT(parse(&c, "[1, 2]", NULL), -1);
	CHECK_STR(err, "1:1: the top level is not an object");
	CHECK_INT(parse(&c, "\n\n   [1, 2]", NULL), -1);
	CHECK_STR(err, "3:4: the top level is not an object");
	CHECK_INT(parse(&c, "", NULL), -1);
	CHECK_INT(parse(&c, "{\"a\": 1} x", NULL), -1);
	CHECK_HAS(err, "1:");
	CHECK_INT(parse(&c, "{}", NULL), 0);
	CHECK_INT(c.n, 0);
	/* An id or provider that cannot go into a config string. */
	CHECK_INT(parse(&c,
	                "{\"a b\": {\"litellm_provider\": \"openai\", \"mode\": \"chat\", "
	                "\"input_cost_per_token\": 1e-6, \"output_cost_per_token\": 2e-6}, "
	                "\"q\\\"\": {\"litellm_provider\": \"openai\", \"mode\": \"chat\"}, "
	                "\"t\": {\"litellm_provider\": 7, \"mode\": \"chat\"}, "
	                "\"u\": {\"litellm_provider\": \"openai\", \"mode\": [\"chat\"]}}",
	                NULL),
	          0);
	CHECK_INT(c.n, 0);
	CHECK_INT(c.skipped, 4);
	CHECK_INT(c.n_warnings, 4);
	if (c.n_warnings == 4) {
		CHECK_HAS(c.warnings[0], "1: \"a b\": not a model id");
		CHECK_HAS(c.warnings[1], "\"q\\\"\": not a model id");
		CHECK_HAS(c.warnings[2], "\"t\": litellm_provider: not a string");
		CHECK_HAS(c.warnings[3], "\"u\": mode: not a string");
	}
	catalog_clear(&c);
}

TEST(repeated_key_keeps_the_last_and_names_stay_unique)
{
	struct catalog c = {0};
	CHECK_INT(parse(&c,
	                "{\"x\": {\"litellm_provider\": \"openai\", \"mode\": \"chat\", "
	                "\"input_cost_per_token\": 1e-6, \"output_cost_per_token\": 2e-6},\n"
	                "\"openai/x\": {\"litellm_provider\": \"openai\", \"mode\": \"chat\", "
	                "\"input_cost_per_token\": 3e-6, \"output_cost_per_token\": 4e-6},\n"
	                "\"openai/openai/x\": {\"litellm_provider\": \"openai\", \"mode\": "
	                "\"chat\", \"input_cost_per_token\": 5e-6, \"output_cost_per_token\": "
	                "6e-6},\n"
	                "\"x\": {\"litellm_provider\": \"openai\", \"mode\": \"chat\", "
	                "\"input_cost_per_token\": 7e-6, \"output_cost_per_token\": 8e-6}}",
	                NULL),
	          0);
	CHECK_INT(c.n, 3);
	const struct catalog_entry *e = find(&c, "x");
	CHECK(e && e->price[CATALOG_INPUT] == 7000000000);
	struct buf out = {0};
	/* The repeated key moved "x" last: "openai/x" (id "x") takes the name
	 * "x", "openai/openai/x" (id "openai/x") takes "openai/x", and "x" finds
	 * both "x" and "openai/x" taken. */
	CHECK_INT(catalog_write_models(&out, &c, NULL, "f"), 2);
	CHECK_HAS(out.data, "name = \"x\"; provider = \"openai\"; id = \"x\";\n"
	                    "    input_usd_per_mtok = 3.0;");
	CHECK_HAS(out.data, "name = \"openai/x\"; provider = \"openai\"; id = \"openai/x\";\n"
	                    "    input_usd_per_mtok = 5.0;");
	CHECK_INT(c.n_warnings, 1);
	if (c.n_warnings)
		CHECK_HAS(c.warnings[0], "4: \"x\": the names \"x\" and \"openai/x\" are both "
		                         "taken; left out");
	buf_free(&out);
	catalog_clear(&c);
}

TEST(match_prefers_the_provider)
{
	struct catalog c = {0};
	CHECK_INT(parse(&c,
	                "{\"m\": {\"litellm_provider\": \"vertex_ai\", \"mode\": \"chat\", "
	                "\"input_cost_per_token\": 1e-6, \"output_cost_per_token\": 1e-6},"
	                "\"gemini/m\": {\"litellm_provider\": \"gemini\", \"mode\": \"chat\", "
	                "\"input_cost_per_token\": 2e-6, \"output_cost_per_token\": 2e-6},"
	                "\"mine/m\": {\"litellm_provider\": \"mine\", \"mode\": \"chat\", "
	                "\"input_cost_per_token\": 3e-6, \"output_cost_per_token\": 3e-6}}",
	                NULL),
	          0);
	struct config *cfg = load_config(
	        "providers = ( { name = \"g\"; type = \"gemini\"; base_url = \"http://h\"; },\n"
	        "  { name = \"mine\"; type = \"openai\"; base_url = \"http://h\"; },\n"
	        "  { name = \"o\"; type = \"openai\"; base_url = \"http://h\"; } );\n"
	        "models = ( { name = \"a\"; provider = \"g\"; id = \"m\"; },\n"
	        "  { name = \"b\"; provider = \"mine\"; id = \"m\"; },\n"
	        "  { name = \"c\"; provider = \"o\"; id = \"m\"; },\n"
	        "  { name = \"m\"; provider = \"o\"; id = \"other\"; },\n"
	        "  { name = \"d\"; provider = \"o\"; id = \"none\"; } );\n");
	CHECK_STR(cfg ? "loaded" : err, "loaded");
	if (cfg) {
		const struct catalog_entry *e = catalog_match(&c, cfg, &cfg->models[0]);
		CHECK(e && strcmp(e->key, "gemini/m") == 0); /* by type */
		e = catalog_match(&c, cfg, &cfg->models[1]);
		CHECK(e && strcmp(e->key, "mine/m") == 0); /* by provider name */
		e = catalog_match(&c, cfg, &cfg->models[2]);
		CHECK(e && strcmp(e->key, "m") == 0); /* the first */
		e = catalog_match(&c, cfg, &cfg->models[3]);
		CHECK(e && strcmp(e->key, "m") == 0); /* by name */
		CHECK(catalog_match(&c, cfg, &cfg->models[4]) == NULL);
	}
	config_free(cfg);
	catalog_clear(&c);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	RUN(prices_exact_from_decimal_text);
	RUN(prices_refused);
	RUN(printed_prices_roundtrip);
	RUN(fixture_imports_and_reads_back_exactly);
	RUN(random_prices_read_back_exactly);
	RUN(select_providers);
	RUN(malformed_text_is_an_error_with_its_place);
	RUN(repeated_key_keeps_the_last_and_names_stay_unique);
	RUN(match_prefers_the_provider);
	return unit_done();
}
