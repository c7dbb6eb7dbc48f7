/* promptyard route: explain the routing decision for one job (SPEC §6, §10).
 *
 *   promptyard route -c CFG JOB.json [--json] [--assume-keys]
 *                    [--brokers LIST] [--redis HOST:PORT]
 *
 * JOB.json holds one job (SPEC §2), "-" for stdin. It is decoded as a worker
 * would (an invalid job exits 2 with the field's message) and routed with
 * the worker's router without calling anything. The live health (circuits,
 * observed latencies and success rates, rate limits known to be spent) is
 * read once from Redis when Redis answers, and so is what is left of the
 * job's budget; otherwise the decision is made on the configuration alone
 * (circuits closed, configured latencies, configured budget limits) and the
 * output says so. API keys are judged by this process's environment, like a
 * worker started here; --assume-keys takes every key as present.
 *
 * Text output: the job, strategy, rule, health and budget lines, then one
 * row per catalog model (its rank in the chain or why it was dropped, with
 * the estimate in USD and nano-USD), then the chosen model and the fallback
 * chain.
 *
 * --json prints one object:
 *   {"job_id": str, "strategy": str, "strategy_source": "job"|"rule"|"default",
 *    "rule": str|null, "est_input_tokens": int,
 *    "complexity": num|null, "auto_min_quality": num|null,  (auto only)
 *    "classifier": str|null,       (the model a worker would ask first)
 *    "health": "redis"|"config", "budget": {"name", "left_nusd", "left_usd",
 *    "source": "redis"|"config"}, "cost_cap_nusd": int|null,
 *    "chosen": str|null, "chain": [str...], "all_rate_limited": bool,
 *    "empty_reason": str|null,     (drop reason explaining an empty chain)
 *    "models": [{"name", "provider", "eligible": bool, "rank": int|null
 *                (1 = chosen), "estimate_nusd", "estimate_usd", "max_tokens",
 *                "input_tokens" (est_input with the job's images and pages on
 *                this model), "media_tokens" (those images and pages alone),
 *                "output_tokens" (max_tokens plus any thinking budget),
 *                "reason": null|"not_candidate"|"no_api_key"|"capability"|
 *                "context"|"cost_cap"|"budget"|"circuit_open"|"rate_limited",
 *                "detail": str|null, "quality", "latency_ms",
 *                "latency_source": "observed"|"config",
 *                "success_rate": num|null, "calls": int,
 *                "circuit": "closed"|"open"|"probe"}]}
 * in catalog order. Exit status: 0 when the decision was printed (even if
 * no model is eligible: "chosen" is then null), 2 for a usage, configuration
 * or job error. */
#include "cli.h"

#include "buf.h"
#include "complexity.h"
#include "health.h"
#include "job.h"
#include "router.h"
#include "timeutil.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fputs("usage: promptyard route -c CFG JOB.json [--json] [--assume-keys]\n"
	      "                        [--brokers LIST] [--redis HOST:PORT]\n",
	      out);
}

/* The budget's chain: limit - spent, the tightest (SPEC §7: exhausted when
 * spent + estimate > limit anywhere on the chain). */
static int64_t budget_left(const struct config *cfg, int budget,
                           const struct cli_budget_view *views, size_t n_views)
{
	int64_t left = INT64_MAX;
	const char *name = cfg->budgets[budget].name;
	for (int depth = 0; name && *name && depth < 8; depth++) {
		const struct cli_budget_view *v = cli_budgets_find(views, n_views, name);
		if (!v)
			break;
		if (v->limit_nusd - v->spent_nusd < left)
			left = v->limit_nusd - v->spent_nusd;
		name = v->parent;
	}
	return left;
}

/* Why model i was dropped, in words. */
static void drop_detail(const struct config *cfg, const struct job *job, const struct route *r,
                        const struct route_context *ctx, const struct health *h, size_t i,
                        struct buf *out)
{
	const struct model_conf *m = &cfg->models[i];
	const struct route_entry *e = &r->entries[i];
	const struct rule_conf *rule = r->rule >= 0 ? &cfg->rules[r->rule] : NULL;
	char a[40], b[64];
	switch (e->drop) {
	case DROP_NONE: break;
	case DROP_NOT_CANDIDATE:
		if (job->model >= 0 && !job->allow_fallbacks)
			buf_printf(out, "the job is pinned to %s", cfg->models[job->model].name);
		else if (job->n_models)
			buf_puts(out, "not in the job's models");
		else if (rule)
			buf_printf(out, "not in rule \"%s\"'s models", rule->name);
		break;
	case DROP_NO_KEY:
		buf_printf(out, "$%s is not set", cfg->providers[m->provider].missing_env);
		break;
	case DROP_CAPABILITY:
		buf_printf(out, "lacks %s", capability_list(job->caps & ~m->caps, b, sizeof b));
		break;
	case DROP_CONTEXT:
		buf_printf(out, "needs %lld tokens, context_tokens %lld",
		           (long long)(e->est_input + e->output_tokens),
		           (long long)m->context_tokens);
		break;
	case DROP_COST_CAP:
		cli_usd(ctx->cost_left_nusd, a, sizeof a);
		buf_printf(out, "estimate above max_cost_usd (%s)", a);
		break;
	case DROP_BUDGET:
		cli_usd(ctx->budget_left_nusd, a, sizeof a);
		buf_printf(out, "estimate above what is left of budget \"%s\" (%s)",
		           cfg->budgets[job->budget].name, a);
		break;
	case DROP_CIRCUIT: {
		struct health_model_view v;
		health_model_view(h, (int)i, time_mono_ms(), &v);
		buf_printf(out, "open after %lld consecutive failures; a probe in %lld ms",
		           (long long)v.consec_failures, (long long)v.open_ms);
		break;
	}
	case DROP_RATE_LIMIT:
		buf_printf(out, "%s's rpm/tpm is spent for now; another model is free",
		           cfg->providers[m->provider].name);
		break;
	case DROP_TRIED: break;
	}
}

struct model_row {
	int rank; /* 1-based, 0 if dropped */
	int64_t latency_ms;
	bool observed;
	double success; /* -1: no calls */
	int64_t calls;
	enum health_circuit circuit;
	char *detail; /* new, NULL if none */
};

int cli_route(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"brokers", required_argument, NULL, 'b'},
	        {"redis", required_argument, NULL, 'r'},
	        {"json", no_argument, NULL, 'j'},
	        {"assume-keys", no_argument, NULL, 'k'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *brokers = NULL, *redis = NULL;
	bool as_json = false, assume_keys = false;
	struct config *cfg = NULL;
	struct job job = {.model = -1, .budget = -1};
	struct route route = {0};
	struct health *h = NULL;
	redisContext *rc_redis = NULL;
	struct cli_budget_view *views = NULL;
	size_t n_views = 0;
	struct model_row *rows = NULL;
	char *value = NULL;
	int c, rc = 2;

	optind = 0;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'b': brokers = optarg; break;
		case 'r': redis = optarg; break;
		case 'j': as_json = true; break;
		case 'k': assume_keys = true; break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default: usage(stderr); goto out;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "promptyard route: expected one JOB.json (or - for stdin)\n");
		usage(stderr);
		goto out;
	}
	const char *file = argv[optind];
	cfg = cli_config("route", path, brokers, redis);
	if (!cfg)
		goto out;
	if (assume_keys)
		config_assume_credentials(cfg);

	size_t len = 0;
	value = cli_read_file(file, &len);
	if (!value) {
		fprintf(stderr, "promptyard route: %s: cannot read\n", file);
		goto out;
	}
	char err[512];
	if (job_decode(cfg, value, len, &job, err, sizeof err) != 0) {
		fprintf(stderr, "promptyard route: %s: invalid job: %s\n", file, err);
		goto out;
	}

	/* The live state, if Redis answers; the configuration otherwise. */
	h = health_new(NULL, NULL, cfg, NULL);
	bool live = false, budget_live = false;
	rc_redis = cli_redis("route", cfg);
	if (rc_redis) {
		if (health_load_view_sync(h, rc_redis, err, sizeof err) == 0)
			live = true;
		else
			fprintf(stderr, "promptyard route: %s\n", err);
		if (cli_budgets_view(rc_redis, cfg, &views, &n_views, err, sizeof err) == 0)
			budget_live = true;
		else
			fprintf(stderr, "promptyard route: %s\n", err);
	}
	if (!live)
		fprintf(stderr, "promptyard route: no live health: routing on the configuration "
		                "alone (circuits closed, configured latencies, no rate limits)\n");
	if (!budget_live)
		cli_budgets_view_config(cfg, &views, &n_views);

	struct route_context ctx = {
	        .cost_left_nusd = job.max_cost_nusd ? job.max_cost_nusd : -1,
	        .health = live ? h : NULL,
	        .has_budget_left = job.budget >= 0,
	        .budget_left_nusd =
	                job.budget >= 0 ? budget_left(cfg, job.budget, views, n_views) : 0,
	};
	router_route(cfg, &job, &ctx, &route);
	int classifier = router_classifier(cfg, &job, &route);
	const struct rule_conf *rule = route.rule >= 0 ? &cfg->rules[route.rule] : NULL;
	const char *strategy_source = job.strategy_set              ? "job"
	                              : rule && rule->strategy >= 0 ? "rule"
	                                                            : "default";
	int64_t now = time_mono_ms();
	rows = xcalloc(cfg->n_models ? cfg->n_models : 1, sizeof *rows);
	for (size_t i = 0; i < route.n_chain; i++)
		rows[route.chain[i]].rank = (int)i + 1;
	for (size_t i = 0; i < cfg->n_models; i++) {
		struct model_row *row = &rows[i];
		struct health_model_view v;
		health_model_view(h, (int)i, now, &v);
		row->observed = live && v.median_ms >= 0;
		row->latency_ms = row->observed ? v.median_ms : cfg->models[i].latency_ms;
		row->calls = live ? v.ok + v.fail : 0;
		row->success = row->calls ? (double)v.ok / (double)row->calls : -1;
		row->circuit = live ? v.circuit : HEALTH_CLOSED;
		struct buf d = {0};
		drop_detail(cfg, &job, &route, &ctx, h, i, &d);
		row->detail = d.data ? buf_take(&d) : NULL;
	}
	const char *chosen = route.n_chain ? cfg->models[route.chain[0]].name : NULL;
	const char *empty =
	        route.n_chain ? NULL : drop_reason_name(router_empty_reason(cfg, &route));

	if (as_json) {
		json_t *chain = json_array(), *models = json_array();
		for (size_t i = 0; i < route.n_chain; i++)
			json_array_append_new(chain, json_string(cfg->models[route.chain[i]].name));
		for (size_t i = 0; i < cfg->n_models; i++) {
			const struct model_conf *m = &cfg->models[i];
			const struct route_entry *e = &route.entries[i];
			const struct model_row *row = &rows[i];
			json_array_append_new(
			        models,
			        json_pack("{s:s, s:s, s:b, s:o, s:I, s:o, s:I, s:I, s:I, s:I, s:o, "
			                  "s:o, "
			                  "s:f, s:I, s:s, s:o, s:I, s:s}",
			                  "name", m->name, "provider",
			                  cfg->providers[m->provider].name, "eligible",
			                  e->drop == DROP_NONE, "rank",
			                  row->rank ? json_integer(row->rank) : json_null(),
			                  "estimate_nusd", (json_int_t)e->estimate_nusd,
			                  "estimate_usd", cli_json_usd(e->estimate_nusd),
			                  "max_tokens", (json_int_t)e->max_tokens, "input_tokens",
			                  (json_int_t)e->est_input, "media_tokens",
			                  (json_int_t)(e->est_input - route.est_input),
			                  "output_tokens", (json_int_t)e->output_tokens, "reason",
			                  e->drop == DROP_NONE
			                          ? json_null()
			                          : json_string(drop_reason_name(e->drop)),
			                  "detail",
			                  row->detail ? json_string(row->detail) : json_null(),
			                  "quality", m->quality, "latency_ms",
			                  (json_int_t)row->latency_ms, "latency_source",
			                  row->observed ? "observed" : "config", "success_rate",
			                  row->success >= 0 ? json_real(row->success) : json_null(),
			                  "calls", (json_int_t)row->calls, "circuit",
			                  health_circuit_name(row->circuit)));
		}
		json_t *doc = json_pack(
		        "{s:s, s:s, s:s, s:o, s:I, s:o, s:o, s:o, s:s, s:{s:s, s:I, s:o, s:s}, "
		        "s:o, "
		        "s:o, s:o, s:b, s:o, s:o}",
		        "job_id", job.id ? job.id : "", "strategy", strategy_name(route.strategy),
		        "strategy_source", strategy_source, "rule",
		        rule ? json_string(rule->name) : json_null(), "est_input_tokens",
		        (json_int_t)route.est_input, "complexity",
		        route.complexity >= 0 ? json_real(route.complexity) : json_null(),
		        "auto_min_quality",
		        route.auto_min_quality >= 0 ? json_real(route.auto_min_quality)
		                                    : json_null(),
		        "classifier",
		        classifier >= 0 ? json_string(cfg->models[classifier].name) : json_null(),
		        "health", live ? "redis" : "config", "budget", "name",
		        cfg->budgets[job.budget].name, "left_nusd",
		        (json_int_t)ctx.budget_left_nusd, "left_usd",
		        cli_json_usd(ctx.budget_left_nusd), "source",
		        budget_live ? "redis" : "config", "cost_cap_nusd",
		        job.max_cost_nusd ? json_integer(job.max_cost_nusd) : json_null(), "chosen",
		        chosen ? json_string(chosen) : json_null(), "chain", chain,
		        "all_rate_limited", route.all_limited, "empty_reason",
		        empty ? json_string(empty) : json_null(), "models", models);
		if (!doc) {
			fprintf(stderr, "promptyard route: cannot encode the decision\n");
			rc = 1;
			goto out;
		}
		char *s = json_dumps(doc, CLI_JSON_FLAGS);
		puts(s);
		free(s);
		json_decref(doc);
	} else {
		char usd[40];
		printf("job          %s (%zu message%s, %zu bytes; est_input %lld tokens)\n",
		       job.id ? job.id : "", job.n_messages, job.n_messages == 1 ? "" : "s",
		       job.content_bytes, (long long)route.est_input);
		if (job.n_images || job.n_documents)
			printf("media        %zu image%s, %zu document%s (%lld page%s counted%s): "
			       "image_tokens and pdf_page_tokens of each model added to its "
			       "input\n",
			       job.n_images, job.n_images == 1 ? "" : "s", job.n_documents,
			       job.n_documents == 1 ? "" : "s", (long long)job.pdf_pages,
			       job.pdf_pages == 1 ? "" : "s",
			       job.pdf_unreadable_bytes ? "; unreadable ones as bytes / 3" : "");
		printf("strategy     %s (%s)\n", strategy_name(route.strategy),
		       strcmp(strategy_source, "default") == 0 ? "worker.default_strategy"
		       : strcmp(strategy_source, "rule") == 0  ? "set by the rule"
		                                               : "set by the job");
		if (rule)
			printf("rule         %s (#%d)\n", rule->name, route.rule + 1);
		else
			printf("rule         none matched\n");
		if (route.complexity >= 0) {
			struct complexity_features f;
			complexity_score(&job, &f);
			printf("complexity   %.2f (%s): length %.2f, code %.2f, math %.2f, "
			       "reasoning "
			       "%.2f, task %.2f, questions %.2f, constraints %.2f, easy -%.2f\n",
			       route.complexity, complexity_tier(route.complexity), f.length,
			       f.code, f.math, f.reasoning, f.task, f.questions_ev, f.constraints,
			       f.easy);
			printf("auto         quality >= %.3f%s\n", route.auto_min_quality,
			       route.auto_fallback ? ": none qualifies, the highest quality first"
			                           : "");
			if (classifier >= 0)
				printf("classifier   a worker asks %s first (attempt 0); the score "
				       "above is the heuristic's\n",
				       cfg->models[classifier].name);
		}
		if (live)
			printf("health       live, from Redis %s:%d\n", cfg->redis.host,
			       cfg->redis.port);
		else
			printf("health       none (Redis unreachable): circuits closed, configured "
			       "latencies\n");
		cli_usd(ctx.budget_left_nusd, usd, sizeof usd);
		printf("budget       %s: %s left (%s)\n", cfg->budgets[job.budget].name, usd,
		       budget_live ? "Redis" : "configured limit, nothing spent known");
		if (job.max_cost_nusd) {
			cli_usd(job.max_cost_nusd, usd, sizeof usd);
			printf("cost cap     %s (max_cost_usd)\n", usd);
		}
		printf("\n%-24s %-11s %-14s %9s %14s %14s %7s %11s %8s %-7s %s\n", "MODEL",
		       "PROVIDER", "VERDICT", "INPUT", "ESTIMATE", "NANO-USD", "QUALITY", "LATENCY",
		       "SUCCESS", "CIRCUIT", "WHY");
		for (size_t i = 0; i < cfg->n_models; i++) {
			const struct model_conf *m = &cfg->models[i];
			const struct route_entry *e = &route.entries[i];
			const struct model_row *row = &rows[i];
			char verdict[32], lat[24], succ[16];
			if (row->rank == 1)
				snprintf(verdict, sizeof verdict, "#1 chosen");
			else if (row->rank)
				snprintf(verdict, sizeof verdict, "#%d fallback", row->rank);
			else
				snprintf(verdict, sizeof verdict, "%s", drop_reason_name(e->drop));
			snprintf(lat, sizeof lat, "%lld ms%s", (long long)row->latency_ms,
			         row->observed ? "" : "*");
			if (row->success >= 0)
				snprintf(succ, sizeof succ, "%.1f%%", 100 * row->success);
			else
				snprintf(succ, sizeof succ, "-");
			cli_usd(e->estimate_nusd, usd, sizeof usd);
			printf("%-24s %-11s %-14s %9lld %14s %14lld %7.2f %11s %8s %-7s %s%s%s\n",
			       m->name, cfg->providers[m->provider].name, verdict,
			       (long long)e->est_input, usd, (long long)e->estimate_nusd,
			       m->quality, lat, succ, health_circuit_name(row->circuit),
			       row->detail ? row->detail : "",
			       e->probe ? "would be the circuit's probe" : "",
			       e->limited ? "rate-limited: the job would wait" : "");
		}
		printf("(* configured latency_ms: no observation)\n\n");
		if (chosen) {
			printf("chosen       %s\n", chosen);
			printf("fallbacks    ");
			for (size_t i = 1; i < route.n_chain; i++)
				printf("%s%s", i > 1 ? " -> " : "",
				       cfg->models[route.chain[i]].name);
			printf("%s\n", route.n_chain > 1 ? "" : "none");
			if (route.all_limited)
				printf("note         every eligible model is rate-limited: a "
				       "worker "
				       "would wait for the first\n");
		} else {
			printf("chosen       none: no model is eligible (%s)\n", empty);
		}
	}
	rc = 0;
out:
	if (rows)
		for (size_t i = 0; cfg && i < cfg->n_models; i++)
			free(rows[i].detail);
	free(rows);
	cli_budgets_view_free(views, n_views);
	if (rc_redis)
		redisFree(rc_redis);
	router_route_clear(&route);
	health_free(h);
	job_clear(&job);
	free(value);
	config_free(cfg);
	return rc;
}
