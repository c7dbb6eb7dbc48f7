/* Unit tests of routing: candidates, eligibility, strategy order, estimates. */
#include "buf.h"
#include "config.h"
#include "job.h"
#include "router.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

/* A six-model catalog on two providers; prices in USD per Mtok. */
static struct provider_conf providers[2] = {
	{.name = "a", .type = "openai", .base_url = "http://a", .api_key_env = "", .timeout_ms = 1000},
	{.name = "b", .type = "openai", .base_url = "http://b", .api_key_env = "B_KEY", .api_key = "k",
	 .timeout_ms = 1000},
};

static struct model_conf model(const char *name, int provider, double in, double out, double q,
			       int64_t ctx, int64_t latency, unsigned caps)
{
	struct model_conf m = {.name = (char *)name, .provider = provider, .id = (char *)name,
			       .context_tokens = ctx, .default_max_tokens = 100, .quality = q,
			       .latency_ms = latency, .caps = caps};
	m.price.input_nusd_per_mtok = money_usd_to_nusd(in);
	m.price.cached_input_nusd_per_mtok = m.price.input_nusd_per_mtok;
	m.price.cache_write_nusd_per_mtok = -1;
	m.price.output_nusd_per_mtok = money_usd_to_nusd(out);
	return m;
}

static struct model_conf models[6];
static struct budget_conf budgets[1] = {{.name = "default", .limit_nusd = 1000000000, .parent = -1}};
static struct config cfg;

static void setup(void)
{
	models[0] = model("tiny", 0, 0.10, 0.40, 0.40, 8000, 300, 0);
	models[1] = model("small", 0, 0.15, 0.60, 0.62, 128000, 800, CAP_JSON);
	models[2] = model("mid", 1, 1.00, 4.00, 0.70, 128000, 1200, CAP_JSON | CAP_TOOLS);
	models[3] = model("big", 1, 3.00, 15.00, 0.85, 200000, 2000, CAP_JSON | CAP_VISION);
	models[4] = model("twin", 0, 0.15, 0.60, 0.66, 128000, 700, CAP_JSON); /* same price as small */
	models[5] = model("huge", 1, 10.00, 40.00, 0.90, 1000000, 5000, CAP_JSON | CAP_LONG_CONTEXT);
	cfg.providers = providers;
	cfg.n_providers = 2;
	cfg.models = models;
	cfg.n_models = 6;
	cfg.budgets = budgets;
	cfg.n_budgets = 1;
	cfg.worker.max_job_bytes = 1 << 20;
	cfg.worker.default_strategy = STRATEGY_BALANCED;
	cfg.worker.default_budget = "default";
	cfg.router.balanced_slack = 0.10;
}

static void route(const char *json, struct route *r, struct job *job)
{
	char err[256] = "";
	int rc = job_decode(&cfg, json, strlen(json), job, err, sizeof err);
	if (rc != 0)
		UNIT_FAIL("job_decode: %s", err);
	router_route(&cfg, job, NULL, r);
}

static const char *chain(const struct route *r)
{
	static char s[256];
	s[0] = '\0';
	for (size_t i = 0; i < r->n_chain; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, models[r->chain[i]].name);
	}
	return s;
}

TEST(estimate_is_spec)
{
	struct job job;
	struct route r;
	/* 12 bytes -> ceil(12/3)=4, + 4 per message + 3 = 11 tokens. */
	route("{\"id\":\"1\",\"prompt\":\"hello world!\",\"strategy\":\"cheapest\"}", &r, &job);
	CHECK_INT(r.est_input, 11);
	/* tiny: 11 x 100 nano + 100 x 400 nano = 1100 + 40000 */
	CHECK_INT(r.entries[0].estimate_nusd, 41100);
	router_route_clear(&r);
	job_clear(&job);
}

TEST(cheapest_ties_by_quality_then_name)
{
	struct job job;
	struct route r;
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\"}", &r, &job);
	/* small and twin cost the same: twin has the higher quality. */
	CHECK_STR(chain(&r), "tiny,twin,small,mid,big,huge");
	router_route_clear(&r);
	job_clear(&job);
}

TEST(balanced_takes_cheapest_near_best)
{
	struct job job;
	struct route r;
	route("{\"id\":\"1\",\"prompt\":\"hi\"}", &r, &job);
	/* best 0.90, slack 0.10: big (0.85) and huge (0.90) first, cheapest first. */
	CHECK_STR(chain(&r), "big,huge,tiny,twin,small,mid");
	router_route_clear(&r);
	job_clear(&job);
}

TEST(fastest_uses_configured_latency)
{
	struct job job;
	struct route r;
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"fastest\"}", &r, &job);
	CHECK_STR(chain(&r), "tiny,twin,small,mid,big,huge");
	router_route_clear(&r);
	job_clear(&job);
}

TEST(capabilities_and_context_filter)
{
	struct job job;
	struct route r;
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\",\"capabilities\":[\"vision\"]}",
	      &r, &job);
	CHECK_STR(chain(&r), "big");
	CHECK_INT(r.entries[0].drop, DROP_CAPABILITY);
	router_route_clear(&r);
	job_clear(&job);
	/* max_tokens 7995 + the input (8) do not fit tiny's 8000 tokens. */
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\",\"max_tokens\":7995}", &r, &job);
	CHECK_INT(r.entries[0].drop, DROP_CONTEXT);
	CHECK(r.n_chain == 5);
	router_route_clear(&r);
	job_clear(&job);
}

TEST(pin_and_fallbacks)
{
	struct job job;
	struct route r;
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"model\":\"mid\"}", &r, &job);
	CHECK_STR(chain(&r), "mid");
	router_route_clear(&r);
	job_clear(&job);
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"model\":\"mid\",\"allow_fallbacks\":true,"
	      "\"strategy\":\"cheapest\"}",
	      &r, &job);
	CHECK_STR(chain(&r), "mid,tiny,twin,small,big,huge");
	router_route_clear(&r);
	job_clear(&job);
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"models\":[\"huge\",\"small\"],\"strategy\":\"cheapest\"}",
	      &r, &job);
	CHECK_STR(chain(&r), "small,huge");
	CHECK_INT(r.entries[2].drop, DROP_NOT_CANDIDATE);
	router_route_clear(&r);
	job_clear(&job);
}

TEST(cost_cap_and_missing_key)
{
	struct job job;
	struct route r;
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\"}", &r, &job);
	/* The cap leaves only models whose estimate fits. */
	struct route_context ctx = {.cost_left_nusd = r.entries[1].estimate_nusd};
	router_route_clear(&r);
	router_route(&cfg, &job, &ctx, &r);
	CHECK_STR(chain(&r), "tiny,twin,small");
	CHECK_INT(r.entries[2].drop, DROP_COST_CAP);
	router_route_clear(&r);
	ctx.cost_left_nusd = 1;
	router_route(&cfg, &job, &ctx, &r);
	CHECK(r.n_chain == 0);
	CHECK_INT(router_empty_reason(&cfg, &r), DROP_COST_CAP);
	router_route_clear(&r);
	/* Provider b's key missing: its models are not eligible. */
	providers[1].api_key = NULL;
	router_route(&cfg, &job, NULL, &r);
	CHECK_STR(chain(&r), "tiny,twin,small");
	CHECK_INT(r.entries[3].drop, DROP_NO_KEY);
	providers[1].api_key = "k";
	router_route_clear(&r);
	job_clear(&job);
}

TEST(rules_regex_and_metadata)
{
	struct rule_conf rules[2] = {
		{.name = "summaries", .strategy = STRATEGY_CHEAPEST, .line = 1},
		{.name = "code", .match = "def |#include", .strategy = -1, .line = 2},
	};
	int code_models[] = {2};
	rules[0].metadata = json_pack("{s:s}", "task", "summarize");
	rules[1].models = code_models;
	rules[1].n_models = 1;
	CHECK_INT(regcomp(&rules[1].re, rules[1].match, REG_EXTENDED | REG_NOSUB), 0);
	cfg.rules = rules;
	cfg.n_rules = 2;
	struct job job;
	struct route r;
	route("{\"id\":\"1\",\"prompt\":\"x\",\"metadata\":{\"task\":\"summarize\"}}", &r, &job);
	CHECK_INT(r.rule, 0);
	CHECK_INT(r.strategy, STRATEGY_CHEAPEST);
	router_route_clear(&r);
	job_clear(&job);
	route("{\"id\":\"1\",\"messages\":[{\"role\":\"system\",\"content\":\"review\"},"
	      "{\"role\":\"user\",\"content\":\"#include <stdio.h>\"}]}",
	      &r, &job);
	CHECK_INT(r.rule, 1);
	CHECK_STR(chain(&r), "mid");
	router_route_clear(&r);
	job_clear(&job);
	route("{\"id\":\"1\",\"prompt\":\"plain\"}", &r, &job);
	CHECK_INT(r.rule, -1);
	router_route_clear(&r);
	job_clear(&job);
	cfg.rules = NULL;
	cfg.n_rules = 0;
	regfree(&rules[1].re);
	json_decref(rules[0].metadata);
}

int main(void)
{
	setup();
	RUN(estimate_is_spec);
	RUN(cheapest_ties_by_quality_then_name);
	RUN(balanced_takes_cheapest_near_best);
	RUN(fastest_uses_configured_latency);
	RUN(capabilities_and_context_filter);
	RUN(pin_and_fallbacks);
	RUN(cost_cap_and_missing_key);
	RUN(rules_regex_and_metadata);
	return unit_done();
}
