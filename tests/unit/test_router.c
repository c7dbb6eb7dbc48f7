/* Unit tests of routing: candidates, eligibility, every strategy of SPEC §6
 * with its ties (fastest and reliable on injected health), auto on easy and
 * hard prompts, estimates; and a benchmark on a 50-model catalog that prints
 * "bench: routing decisions/s N" (not asserted). */
#include "buf.h"
#include "complexity.h"
#include "config.h"
#include "health.h"
#include "job.h"
#include "router.h"
#include "timeutil.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A two-page PDF, as base64. */
#define TINY_PDF_B64                                                                               \
	"JVBERi0xLjQKMSAwIG9iajw8L1R5cGUgL0NhdGFsb2cgL1BhZ2VzIDIgMCBSPj5lbmRvYmogMiAwIG9iajw8L1R5" \
	"cGUg"                                                                                     \
	"L1BhZ2VzIC9LaWRzWzMgMCBSIDQgMCBSXS9Db3VudCAyPj5lbmRvYmogMyAwIG9iajw8L1R5cGUgL1BhZ2UgL1Bh" \
	"cmVu"                                                                                     \
	"dCAyIDAgUj4+ZW5kb2JqIDQgMCBvYmo8PC9UeXBlL1BhZ2UvUGFyZW50IDIgMCBSPj5lbmRvYmoKJSVFT0YK"

/* A six-model catalog on two providers; prices in USD per Mtok. */
static struct provider_conf providers[2] = {
        {.name = "a",
         .type = "openai",
         .base_url = "http://a",
         .api_key_env = "",
         .timeout_ms = 1000},
        {.name = "b",
         .type = "openai",
         .base_url = "http://b",
         .api_key_env = "B_KEY",
         .api_key = "k",
         .timeout_ms = 1000},
};

static struct model_conf model(const char *name, int provider, double in, double out, double q,
                               int64_t ctx, int64_t latency, unsigned caps)
{
	struct model_conf m = {.name = (char *)name,
	                       .provider = provider,
	                       .id = (char *)name,
	                       .context_tokens = ctx,
	                       .default_max_tokens = 100,
	                       .quality = q,
	                       .latency_ms = latency,
	                       .caps = caps};
	m.price.input_nusd_per_mtok = money_usd_to_nusd(in);
	m.price.cached_input_nusd_per_mtok = m.price.input_nusd_per_mtok;
	m.price.cache_write_nusd_per_mtok = -1;
	m.price.output_nusd_per_mtok = money_usd_to_nusd(out);
	return m;
}

static struct model_conf models[6];
static struct budget_conf budgets[1] = {
        {.name = "default", .limit_nusd = 1000000000, .parent = -1}};
static struct config cfg;

static void setup(void)
{
	models[0] = model("tiny", 0, 0.10, 0.40, 0.40, 8000, 300, 0);
	models[1] = model("small", 0, 0.15, 0.60, 0.62, 128000, 800, CAP_JSON);
	models[2] = model("mid", 1, 1.00, 4.00, 0.70, 128000, 1200, CAP_JSON | CAP_TOOLS);
	models[3] = model("big", 1, 3.00, 15.00, 0.85, 200000, 2000, CAP_JSON | CAP_VISION);
	models[4] =
	        model("twin", 0, 0.15, 0.60, 0.66, 128000, 700, CAP_JSON); /* same price as small */
	models[5] =
	        model("huge", 1, 10.00, 40.00, 0.90, 1000000, 5000, CAP_JSON | CAP_LONG_CONTEXT);
	cfg.providers = providers;
	cfg.n_providers = 2;
	cfg.models = models;
	cfg.n_models = 6;
	cfg.budgets = budgets;
	cfg.n_budgets = 1;
	cfg.worker.max_job_bytes = 1 << 20;
	cfg.worker.default_strategy = STRATEGY_BALANCED;
	cfg.worker.default_budget = "default";
	cfg.worker.max_retry_after_ms =
	        30000; /* the default: a throttle parks (health_throttle caps at it) */
	cfg.router.balanced_slack = 0.10;
	cfg.router.window_s = 300;
	cfg.router.breaker_failures = 5;
	cfg.router.breaker_cooldown_ms = 30000;
	cfg.router.auto_floor = 0.3;
	cfg.router.classifier_model = "";
	cfg.redis.key_prefix = "test:";
}

static void decode(const char *json, struct job *job)
{
	char err[256] = "";
	if (job_decode(&cfg, json, strlen(json), job, err, sizeof err) != 0)
		UNIT_FAIL("job_decode: %s", err);
}

/* Decodes json into job and routes it into r (zeroed or reused). */
static void route_ctx(const char *json, const struct route_context *ctx, struct route *r,
                      struct job *job)
{
	decode(json, job);
	router_route(&cfg, job, ctx, r);
}

static void route(const char *json, struct route *r, struct job *job)
{
	route_ctx(json, NULL, r, job);
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
	struct route r = {0};
	/* 12 bytes -> ceil(12/3)=4, + 4 per message + 3 = 11 tokens. */
	route("{\"id\":\"1\",\"prompt\":\"hello world!\",\"strategy\":\"cheapest\"}", &r, &job);
	CHECK_INT(r.est_input, 11);
	/* tiny: 11 x 100 nano + 100 x 400 nano = 1100 + 40000 */
	CHECK_INT(r.entries[0].estimate_nusd, 41100);
	router_route_clear(&r);
	job_clear(&job);
}

TEST(estimate_counts_images_pages_thinking_and_output_cap)
{
	struct job job;
	struct route r = {0};
	models[0].image_tokens = 1000;
	models[0].pdf_page_tokens = 2000;
	models[0].thinking_budget[EFFORT_LOW] = 50;
	models[0].max_output_tokens = 60;
	models[0].caps |= CAP_VISION | CAP_PDF | CAP_REASONING;
	/* "look" (4 bytes) and "hi" (2): joined "look\nhi" = 7 bytes -> 3, + 4 + 3 = 10
	 * text tokens; one image and a two-page PDF add 1000 + 2 x 2000 on tiny. */
	route("{\"id\":\"1\",\"strategy\":\"cheapest\",\"models\":[\"tiny\"],\"max_tokens\":80,"
	      "\"reasoning_effort\":\"low\",\"messages\":[{\"role\":\"user\",\"content\":["
	      "{\"type\":\"text\",\"text\":\"look\"},{\"type\":\"image\",\"url\":\"https://x/"
	      "i.png\"},"
	      "{\"type\":\"document\",\"data\":\"" TINY_PDF_B64
	      "\"},{\"type\":\"text\",\"text\":\"hi\"}]}]}",
	      &r, &job);
	CHECK_INT(r.est_input, 10);
	CHECK_INT(r.entries[0].est_input, 10 + 1000 + 4000);
	/* The call's output, thinking included, stays within max_output_tokens
	 * (60): the low budget (50) leaves 10 visible tokens of the 80 asked. */
	CHECK_INT(r.entries[0].max_tokens, 10);
	CHECK_INT(r.entries[0].output_tokens, 60);
	CHECK_INT(router_call_tokens(&r, 0), 5010 + 60);
	/* 5010 x 100 nano + 60 x 400 nano */
	CHECK_INT(r.entries[0].estimate_nusd, 501000 + 24000);
	CHECK_INT(r.n_chain, 1);
	router_route_clear(&r);
	job_clear(&job);
	/* tiny's context (8000) cannot hold two more such PDFs. */
	models[0].pdf_page_tokens = 4000;
	route("{\"id\":\"1\",\"models\":[\"tiny\"],\"messages\":[{\"role\":\"user\",\"content\":["
	      "{\"type\":\"document\",\"data\":\"" TINY_PDF_B64 "\"}]}]}",
	      &r, &job);
	CHECK_INT(r.entries[0].drop, DROP_CONTEXT);
	router_route_clear(&r);
	job_clear(&job);
	models[0] = model("tiny", 0, 0.10, 0.40, 0.40, 8000, 300, 0);
}

TEST(estimate_matches_money)
{
	/* The 64-bit fast path and money_cost_nusd agree, rounding included,
	 * and huge values take the 128-bit path. */
	int64_t inputs[] = {0, 1, 7, 11, 999, 123457, 350000, INT64_C(1) << 40};
	int64_t outs[] = {0, 1, 100, 4096, 1000000};
	for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		for (size_t j = 0; j < sizeof outs / sizeof outs[0]; j++) {
			for (size_t k = 0; k < 6; k++) {
				struct usage u = {.input_tokens = inputs[i],
				                  .output_tokens = outs[j]};
				CHECK_INT(router_estimate(&models[k], inputs[i], outs[j]),
				          money_cost_nusd(&models[k].price, &u));
			}
		}
	}
	struct model_conf m = models[0];
	m.price.input_nusd_per_mtok = INT64_C(9000000000000000000);
	struct usage u = {.input_tokens = 1000000, .output_tokens = 5};
	CHECK_INT(router_estimate(&m, 1000000, 5), money_cost_nusd(&m.price, &u));
}

TEST(cheapest_ties_by_quality_then_name)
{
	struct job job;
	struct route r = {0};
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\"}", &r, &job);
	/* small and twin cost the same: twin has the higher quality. */
	CHECK_STR(chain(&r), "tiny,twin,small,mid,big,huge");
	job_clear(&job);
	/* Same price and quality: by name ("small" < "twin"). */
	double q = models[1].quality;
	models[1].quality = models[4].quality;
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\"}", &r, &job);
	CHECK_STR(chain(&r), "tiny,small,twin,mid,big,huge");
	models[1].quality = q;
	router_route_clear(&r);
	job_clear(&job);
}

TEST(balanced_takes_cheapest_near_best)
{
	struct job job;
	struct route r = {0};
	route("{\"id\":\"1\",\"prompt\":\"hi\"}", &r, &job);
	/* best 0.90, slack 0.10: big (0.85) and huge (0.90) first, cheapest first. */
	CHECK_STR(chain(&r), "big,huge,tiny,twin,small,mid");
	CHECK_INT(r.strategy, STRATEGY_BALANCED);
	job_clear(&job);
	/* Slack 0.25 (floor 0.65): twin (0.66) is in the group, small (0.62) at
	 * the same price is not; each group in cheapest order. */
	cfg.router.balanced_slack = 0.25;
	route("{\"id\":\"1\",\"prompt\":\"hi\"}", &r, &job);
	CHECK_STR(chain(&r), "twin,mid,big,huge,tiny,small");
	job_clear(&job);
	/* The best is the best eligible: among tiny, small and mid it is mid
	 * (0.70); small (0.62) is within 0.10 of it, tiny (0.40) is not. */
	cfg.router.balanced_slack = 0.10;
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"models\":[\"tiny\",\"small\",\"mid\"]}", &r, &job);
	CHECK_STR(chain(&r), "small,mid,tiny");
	router_route_clear(&r);
	job_clear(&job);
}

TEST(fastest_uses_configured_latency)
{
	struct job job;
	struct route r = {0};
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"fastest\"}", &r, &job);
	CHECK_STR(chain(&r), "tiny,twin,small,mid,big,huge");
	router_route_clear(&r);
	job_clear(&job);
}

TEST(fastest_prefers_observed_medians)
{
	struct health *h = health_new(NULL, NULL, &cfg, NULL);
	struct health_model_view v = {.median_ms = 5000, .ok = 10};
	health_set_view(h, 0, &v); /* tiny observed slow: 5000, as huge's config */
	v.median_ms = 100;
	health_set_view(h, 3, &v); /* big observed fast */
	struct route_context ctx = {.cost_left_nusd = -1, .health = h};
	struct job job;
	struct route r = {0};
	route_ctx("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"fastest\"}", &ctx, &r, &job);
	/* big 100 (observed), twin 700, small 800, mid 1200 (configured), then
	 * tiny and huge at 5000: a tie, by cheapest. */
	CHECK_STR(chain(&r), "big,twin,small,mid,tiny,huge");
	job_clear(&job);
	/* Latency rises on big: it falls behind. */
	v.median_ms = 3000;
	health_set_view(h, 3, &v);
	route_ctx("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"fastest\"}", &ctx, &r, &job);
	CHECK_STR(chain(&r), "twin,small,mid,big,tiny,huge");
	router_route_clear(&r);
	job_clear(&job);
	health_free(h);
}

TEST(fastest_counts_calls_in_flight_without_observations)
{
	struct health *h = health_new(NULL, NULL, &cfg, NULL);
	int64_t now = time_mono_ms();
	struct route_context ctx = {.cost_left_nusd = -1, .health = h, .now_ms = now};
	struct job job;
	struct route r = {0};
	/* tiny (configured 300) has a call out for 1 s and nothing observed:
	 * it is at least that slow. */
	struct health_call c1 = {0}, c2 = {0};
	health_call_begin(h, 0, &c1);
	c1.start_ms = now - 1000;
	health_call_begin(h, 0, &c2);
	c2.start_ms = now - 10;
	route_ctx("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"fastest\"}", &ctx, &r, &job);
	CHECK_STR(chain(&r), "twin,small,tiny,mid,big,huge");
	job_clear(&job);
	/* The old call ends: the young one is under the configured latency. */
	health_call_end(h, &c1);
	health_call_end(h, &c1); /* twice: nothing */
	route_ctx("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"fastest\"}", &ctx, &r, &job);
	CHECK_STR(chain(&r), "tiny,twin,small,mid,big,huge");
	job_clear(&job);
	/* With observations, the median rules, not the calls out. */
	health_call_begin(h, 0, &c1);
	c1.start_ms = now - 4000;
	struct health_model_view v = {.median_ms = 50, .ok = 10};
	health_set_view(h, 0, &v);
	route_ctx("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"fastest\"}", &ctx, &r, &job);
	CHECK_STR(chain(&r), "tiny,twin,small,mid,big,huge");
	health_call_end(h, &c1);
	health_call_end(h, &c2);
	router_route_clear(&r);
	job_clear(&job);
	health_free(h);
}

TEST(reliable_orders_by_success_rate)
{
	struct health *h = health_new(NULL, NULL, &cfg, NULL);
	struct health_model_view v = {.median_ms = -1};
	v.ok = 90, v.fail = 10;
	health_set_view(h, 0, &v); /* tiny 0.90 */
	v.ok = 99, v.fail = 1;
	health_set_view(h, 4, &v); /* twin 0.99 */
	v.ok = 198, v.fail = 2;
	health_set_view(h, 1, &v); /* small 0.99 too: a tie, and twin is the cheaper (quality) */
	v.ok = 50, v.fail = 50;
	health_set_view(h, 3, &v); /* big 0.50 */
	v.ok = 1, v.fail = 0;
	health_set_view(h, 5, &v); /* huge 1.0 */
	/* mid: no calls in the window, counts as 1.0 */
	struct route_context ctx = {.cost_left_nusd = -1, .health = h};
	struct job job;
	struct route r = {0};
	route_ctx("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"reliable\"}", &ctx, &r, &job);
	CHECK_STR(chain(&r), "mid,huge,twin,small,tiny,big");
	job_clear(&job);
	/* Without health every model counts as 1.0: cheapest. */
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"reliable\"}", &r, &job);
	CHECK_STR(chain(&r), "tiny,twin,small,mid,big,huge");
	router_route_clear(&r);
	job_clear(&job);
	health_free(h);
}

TEST(auto_follows_complexity)
{
	struct job job;
	struct route r = {0};
	struct route_context ctx = {.cost_left_nusd = -1, .has_complexity = true};
	const char *j = "{\"id\":\"1\",\"prompt\":\"x\",\"strategy\":\"auto\"}";
	/* floor 0.3: score 0 asks 0.30 -> tiny (0.40). */
	ctx.complexity = 0;
	route_ctx(j, &ctx, &r, &job);
	CHECK_STR(chain(&r), "tiny,twin,small,mid,big,huge");
	job_clear(&job);
	/* score 0.5 asks 0.65 -> twin (0.66), the rest by cheapest. */
	ctx.complexity = 0.5;
	route_ctx(j, &ctx, &r, &job);
	CHECK_STR(chain(&r), "twin,tiny,small,mid,big,huge");
	CHECK(r.auto_min_quality > 0.649 && r.auto_min_quality < 0.651);
	job_clear(&job);
	/* score 0.8 asks 0.86 -> huge (0.90). */
	ctx.complexity = 0.8;
	route_ctx(j, &ctx, &r, &job);
	CHECK_STR(chain(&r), "huge,tiny,twin,small,mid,big");
	CHECK(!r.auto_fallback);
	job_clear(&job);
	/* Exactly on a quality: 0.3 + s x 0.7 = 0.70 (mid) at s = 4/7. */
	ctx.complexity = 4.0 / 7.0;
	route_ctx(j, &ctx, &r, &job);
	CHECK_STR(models[r.chain[0]].name, "mid");
	job_clear(&job);
	/* score 1 asks 1.0: none qualifies, the highest quality first. */
	ctx.complexity = 1;
	route_ctx(j, &ctx, &r, &job);
	CHECK_STR(chain(&r), "huge,tiny,twin,small,mid,big");
	CHECK(r.auto_fallback);
	job_clear(&job);
	/* None qualifies among the candidates: mid is the best of them. */
	route_ctx("{\"id\":\"1\",\"prompt\":\"x\",\"strategy\":\"auto\","
	          "\"models\":[\"tiny\",\"small\",\"mid\"]}",
	          &ctx, &r, &job);
	CHECK_STR(chain(&r), "mid,tiny,small");
	router_route_clear(&r);
	job_clear(&job);
}

TEST(auto_on_easy_and_hard_prompts)
{
	struct job job;
	struct route r = {0};
	route("{\"id\":\"1\",\"prompt\":\"What is the capital of France?\",\"strategy\":\"auto\"}",
	      &r, &job);
	CHECK(r.complexity >= 0 && r.complexity < COMPLEXITY_EASY_BELOW);
	CHECK_STR(models[r.chain[0]].name, "tiny");
	job_clear(&job);
	route("{\"id\":\"1\",\"prompt\":\"Prove that there are infinitely many primes of the form "
	      "4k+3. Give a complete, rigorous proof, justify every step, and analyze why the "
	      "same argument fails for 4k+1.\",\"strategy\":\"auto\"}",
	      &r, &job);
	CHECK(r.complexity >= COMPLEXITY_HARD_FROM);
	CHECK(models[r.chain[0]].quality >= 0.85);
	CHECK_INT(r.n_chain, 6);
	job_clear(&job);
	/* A medium prompt lands between. */
	route("{\"id\":\"1\",\"prompt\":\"Write a Python function that returns the n-th Fibonacci "
	      "number iteratively.\",\"strategy\":\"auto\"}",
	      &r, &job);
	CHECK(r.complexity >= COMPLEXITY_EASY_BELOW && r.complexity < COMPLEXITY_HARD_FROM);
	CHECK(models[r.chain[0]].quality > 0.5 && models[r.chain[0]].quality < 0.85);
	router_route_clear(&r);
	job_clear(&job);
}

TEST(classifier_when_configured)
{
	struct job job;
	struct route r = {0};
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"auto\"}", &r, &job);
	CHECK_INT(router_classifier(&cfg, &job, &r), -1); /* none configured */
	cfg.router.classifier_model = "small";
	CHECK_INT(router_classifier(&cfg, &job, &r), 1);
	job_clear(&job);
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\"}", &r, &job);
	CHECK_INT(router_classifier(&cfg, &job, &r), -1); /* not auto */
	job_clear(&job);
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"auto\",\"model\":\"mid\"}", &r, &job);
	CHECK_INT(router_classifier(&cfg, &job, &r), -1); /* pinned */
	job_clear(&job);
	cfg.router.classifier_model = "big";
	providers[1].api_key = NULL;
	providers[1].missing_env = "B_KEY";
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"auto\"}", &r, &job);
	CHECK_INT(router_classifier(&cfg, &job, &r), -1); /* its key is missing */
	providers[1].api_key = "k";
	providers[1].missing_env = NULL;
	job_clear(&job);
	/* The classifier's answer routes the job: 0.8 -> huge. */
	cfg.router.classifier_model = "small";
	decode("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"auto\"}", &job);
	double score;
	CHECK_INT(complexity_parse_reply("0.8\n", 4, &score), 0);
	struct route_context ctx = {
	        .cost_left_nusd = -1, .has_complexity = true, .complexity = score};
	router_route(&cfg, &job, &ctx, &r);
	CHECK_STR(models[r.chain[0]].name, "huge");
	cfg.router.classifier_model = "";
	router_route_clear(&r);
	job_clear(&job);
}

TEST(capabilities_and_context_filter)
{
	struct job job;
	struct route r = {0};
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\",\"capabilities\":["
	      "\"vision\"]}",
	      &r, &job);
	CHECK_STR(chain(&r), "big");
	CHECK_INT(r.entries[0].drop, DROP_CAPABILITY);
	job_clear(&job);
	/* max_tokens 7995 + the input (8) do not fit tiny's 8000 tokens. */
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\",\"max_tokens\":7995}", &r,
	      &job);
	CHECK_INT(r.entries[0].drop, DROP_CONTEXT);
	CHECK(r.n_chain == 5);
	router_route_clear(&r);
	job_clear(&job);
}

TEST(pin_and_fallbacks)
{
	struct job job;
	struct route r = {0};
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"model\":\"mid\"}", &r, &job);
	CHECK_STR(chain(&r), "mid");
	job_clear(&job);
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"model\":\"mid\",\"allow_fallbacks\":true,"
	      "\"strategy\":\"cheapest\"}",
	      &r, &job);
	CHECK_STR(chain(&r), "mid,tiny,twin,small,big,huge");
	job_clear(&job);
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"models\":[\"huge\",\"small\"],\"strategy\":"
	      "\"cheapest\"}",
	      &r, &job);
	CHECK_STR(chain(&r), "small,huge");
	CHECK_INT(r.entries[2].drop, DROP_NOT_CANDIDATE);
	router_route_clear(&r);
	job_clear(&job);
}

TEST(cost_cap_budget_and_missing_key)
{
	struct job job;
	struct route r = {0};
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\"}", &r, &job);
	/* The cap leaves only models whose estimate fits. */
	struct route_context ctx = {.cost_left_nusd = r.entries[1].estimate_nusd};
	router_route(&cfg, &job, &ctx, &r);
	CHECK_STR(chain(&r), "tiny,twin,small");
	CHECK_INT(r.entries[2].drop, DROP_COST_CAP);
	ctx.cost_left_nusd = 1;
	router_route(&cfg, &job, &ctx, &r);
	CHECK(r.n_chain == 0);
	CHECK_INT(router_empty_reason(&cfg, &r), DROP_COST_CAP);
	/* What is left of the budget works the same way. */
	ctx.cost_left_nusd = -1;
	ctx.has_budget_left = true;
	ctx.budget_left_nusd = r.entries[2].estimate_nusd;
	router_route(&cfg, &job, &ctx, &r);
	CHECK_STR(chain(&r), "tiny,twin,small,mid");
	CHECK_INT(r.entries[3].drop, DROP_BUDGET);
	ctx.budget_left_nusd = 0;
	router_route(&cfg, &job, &ctx, &r);
	CHECK_INT(router_empty_reason(&cfg, &r), DROP_BUDGET);
	/* Provider b's key missing: its models are not eligible. */
	providers[1].api_key = NULL;
	providers[1].missing_env = "B_KEY";
	router_route(&cfg, &job, NULL, &r);
	CHECK_STR(chain(&r), "tiny,twin,small");
	CHECK_INT(r.entries[3].drop, DROP_NO_KEY);
	providers[1].api_key = "k";
	providers[1].missing_env = NULL;
	/* Models already tried. */
	bool tried[6] = {true, false, false, false, true, false};
	struct route_context ctx2 = {.cost_left_nusd = -1, .excluded = tried};
	router_route(&cfg, &job, &ctx2, &r);
	CHECK_STR(chain(&r), "small,mid,big,huge");
	CHECK_INT(r.entries[0].drop, DROP_TRIED);
	router_route_clear(&r);
	job_clear(&job);
}

TEST(circuits_and_rate_limits)
{
	struct health *h = health_new(NULL, NULL, &cfg, NULL);
	struct health_model_view v = {.median_ms = -1, .circuit = HEALTH_OPEN, .open_ms = 60000};
	health_set_view(h, 1, &v); /* small: open */
	v.circuit = HEALTH_PROBE_ALLOWED;
	health_set_view(h, 4, &v); /* twin: cooled down, a probe may go */
	struct route_context ctx = {.cost_left_nusd = -1, .health = h};
	struct job job;
	struct route r = {0};
	route_ctx("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\"}", &ctx, &r, &job);
	CHECK_STR(chain(&r), "tiny,twin,mid,big,huge");
	CHECK_INT(r.entries[1].drop, DROP_CIRCUIT);
	CHECK(r.entries[4].probe);
	CHECK(!r.entries[0].probe);
	/* Provider a throttled: its models are skipped while b's are there. */
	health_throttle(h, 0, 60000);
	router_route(&cfg, &job, &ctx, &r);
	CHECK_STR(chain(&r), "mid,big,huge");
	CHECK_INT(r.entries[0].drop, DROP_RATE_LIMIT);
	CHECK(!r.all_limited);
	/* Only a's models are candidates: they stay, and the job waits. */
	job_clear(&job);
	route_ctx("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\","
	          "\"models\":[\"tiny\",\"twin\"]}",
	          &ctx, &r, &job);
	CHECK_STR(chain(&r), "tiny,twin");
	CHECK(r.all_limited);
	CHECK(r.entries[0].limited);
	/* Every circuit open: nothing eligible, and the reason says so. */
	v.circuit = HEALTH_OPEN;
	health_set_view(h, 0, &v);
	health_set_view(h, 4, &v);
	router_route(&cfg, &job, &ctx, &r);
	CHECK_INT(r.n_chain, 0);
	CHECK_INT(router_empty_reason(&cfg, &r), DROP_CIRCUIT);
	router_route_clear(&r);
	job_clear(&job);
	health_free(h);
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
	struct route r = {0};
	route("{\"id\":\"1\",\"prompt\":\"x\",\"metadata\":{\"task\":\"summarize\"}}", &r, &job);
	CHECK_INT(r.rule, 0);
	CHECK_INT(r.strategy, STRATEGY_CHEAPEST);
	job_clear(&job);
	route("{\"id\":\"1\",\"messages\":[{\"role\":\"system\",\"content\":\"review\"},"
	      "{\"role\":\"user\",\"content\":\"#include <stdio.h>\"}]}",
	      &r, &job);
	CHECK_INT(r.rule, 1);
	CHECK_STR(chain(&r), "mid");
	job_clear(&job);
	/* The regex sees the messages joined: a match across them counts. */
	route("{\"id\":\"1\",\"messages\":[{\"role\":\"user\",\"content\":\"def\"},"
	      "{\"role\":\"user\",\"content\":\" x\"}]}",
	      &r, &job);
	CHECK_INT(r.rule, -1); /* "def\n x": the newline is not the space */
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

TEST(route_storage_is_reused)
{
	struct job job;
	struct route r = {0};
	route("{\"id\":\"1\",\"prompt\":\"hi\",\"strategy\":\"cheapest\"}", &r, &job);
	void *mem = r.mem;
	for (int i = 0; i < 100; i++)
		router_route(&cfg, &job, NULL, &r);
	CHECK(r.mem == mem);
	CHECK_STR(chain(&r), "tiny,twin,small,mid,big,huge");
	router_route_clear(&r);
	CHECK(r.mem == NULL && r.n_chain == 0);
	router_route_clear(&r); /* twice is safe */
	job_clear(&job);
}

/* ---------------------------------------------------------------- bench */

#define BENCH_MODELS 50

static double cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One strategy on the fixed workload: the route of its first decision
 * (copied), whether every later decision was the same, and decisions per
 * second of this thread's CPU time, from the fastest of many short rounds
 * (the machine may be shared, and a round that another process disturbed
 * says nothing about the router). */
struct bench_run {
	int chain[BENCH_MODELS];
	size_t n_chain;
	int64_t est_input, max_tokens;
	long decisions, differing;
	double rate;
};

static void bench_strategy(const struct config *c, const char *json, const struct health *h,
                           double seconds, struct bench_run *out)
{
	struct job job;
	char err[256];
	memset(out, 0, sizeof *out);
	if (job_decode(c, json, strlen(json), &job, err, sizeof err) != 0) {
		UNIT_FAIL("bench job: %s", err);
		return;
	}
	struct route r = {0};
	struct route_context ctx = {.cost_left_nusd = -1, .health = h, .now_ms = time_mono_ms()};
	if (job.strategy == STRATEGY_AUTO) {
		/* The engine computes the score once per job, not per decision. */
		ctx.has_complexity = true;
		ctx.complexity = complexity_score(&job, NULL);
	}
	router_route(c, &job, &ctx, &r);
	out->n_chain = r.n_chain < BENCH_MODELS ? r.n_chain : BENCH_MODELS;
	memcpy(out->chain, r.chain, out->n_chain * sizeof *r.chain);
	out->est_input = r.est_input;
	out->max_tokens = job.max_tokens;
	enum { ROUND = 2000 };
	double spent = 0;
	/* PROMPTYARD_BENCH_ROUNDS: a fixed number of rounds (for callgrind). */
	int rounds =
	        getenv("PROMPTYARD_BENCH_ROUNDS") ? atoi(getenv("PROMPTYARD_BENCH_ROUNDS")) : 0;
	for (int round = 0; rounds ? round < rounds : spent < seconds; round++) {
		double t0 = cpu_seconds();
		for (int i = 0; i < ROUND; i++) {
			router_route(c, &job, &ctx, &r);
			out->differing += r.n_chain != out->n_chain || r.chain[0] != out->chain[0];
		}
		double dt = cpu_seconds() - t0;
		spent += dt;
		out->decisions += ROUND;
		if (dt > 0 && (out->rate == 0 || ROUND / dt > out->rate))
			out->rate = ROUND / dt;
	}
	router_route_clear(&r);
	job_clear(&job);
}

/* cheapest, worked out apart from the router: every model, by estimate,
 * then higher quality, then name. */
static const struct config *oracle_cfg;
static int64_t oracle_est_input, oracle_max_tokens;

static int64_t oracle_estimate(int i)
{
	const struct model_conf *m = &oracle_cfg->models[i];
	return router_estimate(m, oracle_est_input,
	                       oracle_max_tokens > 0 ? oracle_max_tokens : m->default_max_tokens);
}

static int by_cheapest(const void *a, const void *b)
{
	int i = *(const int *)a, j = *(const int *)b;
	int64_t ei = oracle_estimate(i), ej = oracle_estimate(j);
	const struct model_conf *mi = &oracle_cfg->models[i], *mj = &oracle_cfg->models[j];
	if (ei != ej)
		return ei < ej ? -1 : 1;
	if (mi->quality != mj->quality)
		return mi->quality > mj->quality ? -1 : 1;
	return strcmp(mi->name, mj->name);
}

/* The routing decisions of a fixed workload (50 models on 5 providers, a
 * shared health view): each strategy picks the model pinned here, decides
 * the same every time it is asked, and cheapest orders the whole catalog as
 * the oracle above does. The rate is printed for make bench (tests/bench.py
 * reads "bench: routing decisions/s"), never judged. */
TEST(bench_routing)
{
	/* 50 models on 5 providers with scattered prices, qualities, latencies. */
	static struct provider_conf bp[5];
	static struct model_conf bm[BENCH_MODELS];
	static char names[BENCH_MODELS][16];
	struct config c = cfg;
	uint32_t seed = 12345;
	for (int i = 0; i < 5; i++)
		bp[i] = (struct provider_conf){.name = "p",
		                               .type = "openai",
		                               .base_url = "http://p",
		                               .api_key_env = "",
		                               .timeout_ms = 1000};
	for (int i = 0; i < BENCH_MODELS; i++) {
		seed = seed * 1103515245u + 12345u;
		double in = 0.05 + (double)(seed >> 16 & 0x3ff) / 100;
		seed = seed * 1103515245u + 12345u;
		double q = 0.3 + (double)(seed >> 16 & 0xff) / 400;
		snprintf(names[i], sizeof names[i], "m%02d", i);
		bm[i] = model(names[i], i % 5, in, in * 4, q, 128000, 200 + (seed >> 8 & 0xfff),
		              CAP_JSON);
	}
	c.providers = bp;
	c.n_providers = 5;
	c.models = bm;
	c.n_models = BENCH_MODELS;
	struct health *h = health_new(NULL, NULL, &c, NULL);
	for (int i = 0; i < BENCH_MODELS; i += 2) {
		struct health_model_view v = {
		        .median_ms = 100 + i * 37 % 900, .ok = 100 - i, .fail = i};
		health_set_view(h, i, &v);
	}
	static const char *const strategies[] = {"cheapest", "balanced", "fastest", "reliable",
	                                         "auto"};
	/* cheapest: as the oracle below; fastest: m00 is the one model with a
	 * 100 ms median (the others' are 162 ms or more, or 200 ms configured);
	 * the rest as the router decided when this was written. */
	static const char *const first[] = {"m33", "m04", "m00", "m33", "m33"};
	double secs = getenv("PROMPTYARD_BENCH_S") ? atof(getenv("PROMPTYARD_BENCH_S")) : 0.2;
	double worst = 0;
	for (size_t i = 0; i < 5; i++) {
		char json[256];
		struct bench_run run;
		snprintf(json, sizeof json,
		         "{\"id\":\"b\",\"prompt\":\"Summarize this paragraph about the quarterly "
		         "results in two sentences.\",\"strategy\":\"%s\"}",
		         strategies[i]);
		bench_strategy(&c, json, h, secs, &run);
		if (run.n_chain == 0 || strcmp(bm[run.chain[0]].name, first[i]) != 0)
			UNIT_FAIL("%s: first choice %s, expected %s", strategies[i],
			          run.n_chain ? bm[run.chain[0]].name : "none", first[i]);
		if (run.differing)
			UNIT_FAIL("%s: %ld of %ld decisions differ from the first", strategies[i],
			          run.differing, run.decisions);
		if (i == 0) {
			int want[BENCH_MODELS];
			for (int k = 0; k < BENCH_MODELS; k++)
				want[k] = k;
			oracle_cfg = &c;
			oracle_est_input = run.est_input;
			oracle_max_tokens = run.max_tokens;
			qsort(want, BENCH_MODELS, sizeof *want, by_cheapest);
			CHECK_INT(run.n_chain, BENCH_MODELS);
			CHECK(memcmp(want, run.chain, sizeof want) == 0);
		}
		printf("  bench: %s on %d models: %.0f decisions/s (%.2f us each)\n", strategies[i],
		       BENCH_MODELS, run.rate, 1e6 / run.rate);
		if (worst == 0 || run.rate < worst)
			worst = run.rate;
	}
	printf("bench: routing decisions/s %.0f\n", worst);
	health_free(h);
}

int main(void)
{
	setup();
	RUN(estimate_is_spec);
	RUN(estimate_counts_images_pages_thinking_and_output_cap);
	RUN(estimate_matches_money);
	RUN(cheapest_ties_by_quality_then_name);
	RUN(balanced_takes_cheapest_near_best);
	RUN(fastest_uses_configured_latency);
	RUN(fastest_prefers_observed_medians);
	RUN(fastest_counts_calls_in_flight_without_observations);
	RUN(reliable_orders_by_success_rate);
	RUN(auto_follows_complexity);
	RUN(auto_on_easy_and_hard_prompts);
	RUN(classifier_when_configured);
	RUN(capabilities_and_context_filter);
	RUN(pin_and_fallbacks);
	RUN(cost_cap_budget_and_missing_key);
	RUN(circuits_and_rate_limits);
	RUN(rules_regex_and_metadata);
	RUN(route_storage_is_reused);
	RUN(bench_routing);
	return unit_done();
}
