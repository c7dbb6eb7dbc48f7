/* promptyard estimate: what a JSONL file of jobs would cost (SPEC §10).
 *
 *   promptyard estimate -c CFG FILE [--strategy S] [--json]
 *                       [--brokers LIST] [--redis HOST:PORT]
 *
 * Every job is checked as submit checks it, then routed with the worker's
 * router on the config alone: no provider is called, no Kafka is needed.
 * The chosen model's estimate (SPEC §6: input overestimated at bytes/3 plus
 * overheads, and the whole max_tokens as output) is the job's projected cost,
 * so the totals are upper bounds. Budgets are compared with what is left of
 * their current window in Redis when Redis answers, else with the configured
 * limits alone; the output says which.
 *
 * Each job is routed twice, side by side (SPEC §14): at sync prices, and as
 * a job sent in a provider batch would be (models whose provider has
 * `batch = true` at their batch prices, the others at their sync prices,
 * so the strategy may pick another model). The batch column is what the
 * file costs when every job goes in a batch, whatever its `mode` says.
 *
 * The router is given no live state: circuits are taken as closed, rate
 * limits as free and `fastest` orders by the configured latency_ms. API keys
 * are assumed present (they are the workers' business, not this machine's). */
#include "cli.h"

#include "buf.h"
#include "job.h"
#include "router.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct model_sum {
	size_t jobs;
	int64_t input_tokens, output_tokens, nusd;
	size_t batch_jobs;  /* routed to it at batch prices */
	int64_t batch_nusd; /* their estimates at batch prices */
};

struct budget_sum {
	size_t jobs;        /* charged to this budget directly */
	int64_t nusd;       /* charged to it or to a budget below it (its chain) */
	int64_t batch_nusd; /* the same, every job in a provider batch */
};

static void usage(FILE *out)
{
	fputs("usage: promptyard estimate -c CFG FILE [--strategy S] [--json]\n"
	      "                           [--brokers LIST] [--redis HOST:PORT]\n",
	      out);
}

/* Why a job has no model: the cost cap, or nothing eligible (SPEC §3's codes). */
static const char *empty_reason(const struct config *cfg, const struct route *r)
{
	bool cap = false;
	for (size_t i = 0; i < cfg->n_models; i++)
		cap = cap || r->entries[i].drop == DROP_COST_CAP;
	return cap ? "cost_cap_exceeded" : "no_eligible_model";
}

int cli_estimate(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"brokers", required_argument, NULL, 'b'},
	        {"redis", required_argument, NULL, 'r'},
	        {"strategy", required_argument, NULL, 's'},
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *brokers = NULL, *redis = NULL;
	struct cli_job_defaults d = {0};
	bool as_json = false;
	struct config *cfg = NULL;
	struct cli_jobs jobs = {0};
	struct model_sum *ms = NULL;
	struct budget_sum *bs = NULL;
	struct cli_budget_view *views = NULL;
	size_t n_views = 0;
	json_t *unroutable = json_object();
	redisContext *rc_redis = NULL;
	int c, rc = 2;

	optind = 0;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'b': brokers = optarg; break;
		case 'r': redis = optarg; break;
		case 's': d.strategy = optarg; break;
		case 'j': as_json = true; break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default: usage(stderr); goto out;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "promptyard estimate: expected one FILE (or - for stdin)\n");
		usage(stderr);
		goto out;
	}
	const char *file = argv[optind];
	cfg = cli_config("estimate", path, brokers, redis);
	if (!cfg)
		goto out;
	enum strategy st;
	if (d.strategy && strategy_parse(d.strategy, &st) != 0) {
		fprintf(stderr, "promptyard estimate: --strategy: unknown strategy \"%s\"\n",
		        d.strategy);
		goto out;
	}
	/* Route as the workers would, with their keys. */
	config_assume_credentials(cfg);

	rc = cli_jobs_load("estimate", cfg, file, &d, &jobs);
	if (rc != 0)
		goto out;

	ms = xcalloc(cfg->n_models ? cfg->n_models : 1, sizeof *ms);
	bs = xcalloc(cfg->n_budgets ? cfg->n_budgets : 1, sizeof *bs);
	size_t routed = 0;
	int64_t total = 0, batch_total = 0;
	struct route route, broute;
	memset(&route, 0, sizeof route); /* reused by every router_route() below */
	memset(&broute, 0, sizeof broute);
	for (size_t i = 0; i < jobs.n; i++) {
		struct job job;
		char err[512];
		if (job_decode(cfg, jobs.v[i].value, jobs.v[i].len, &job, err, sizeof err) != 0) {
			job_clear(&job); /* checked by cli_jobs_load: cannot happen */
			continue;
		}
		struct route_context ctx = {.cost_left_nusd =
		                                    job.max_cost_nusd ? job.max_cost_nusd : -1};
		router_route(cfg, &job, &ctx, &route);
		ctx.batch_prices = true;
		router_route(cfg, &job, &ctx, &broute);
		if (broute.n_chain > 0) {
			int m = broute.chain[0];
			int64_t est = broute.entries[m].estimate_nusd;
			ms[m].batch_jobs++;
			ms[m].batch_nusd += est;
			batch_total += est;
			for (int b = job.budget, depth = 0; b >= 0 && depth < 8;
			     b = cfg->budgets[b].parent, depth++)
				bs[b].batch_nusd += est;
		}
		if (route.n_chain == 0) {
			const char *why = empty_reason(cfg, &route);
			json_t *v = json_object_get(unroutable, why);
			json_object_set_new(unroutable, why,
			                    json_integer(v ? json_integer_value(v) + 1 : 1));
		} else {
			int m = route.chain[0];
			int64_t est = route.entries[m].estimate_nusd;
			ms[m].jobs++;
			ms[m].input_tokens += route.entries[m].est_input;
			ms[m].output_tokens += route.entries[m].output_tokens;
			ms[m].nusd += est;
			total += est;
			routed++;
			if (job.budget >= 0) {
				bs[job.budget].jobs++;
				/* A charge lands on the budget and every parent. */
				for (int b = job.budget, depth = 0; b >= 0 && depth < 8;
				     b = cfg->budgets[b].parent, depth++)
					bs[b].nusd += est;
			}
		}
		job_clear(&job);
	}
	router_route_clear(&route);
	router_route_clear(&broute);

	/* What is left: Redis if it answers, else the configured limits. */
	char err[512];
	bool from_redis = false;
	rc_redis = cli_redis("estimate", cfg);
	if (rc_redis && cli_budgets_view(rc_redis, cfg, &views, &n_views, err, sizeof err) == 0) {
		from_redis = true;
	} else {
		if (rc_redis)
			fprintf(stderr, "promptyard estimate: %s\n", err);
		fprintf(stderr, "promptyard estimate: Redis unreachable: budgets are compared with "
		                "their configured limits alone\n");
		cli_budgets_view_config(cfg, &views, &n_views);
	}

	bool all_covered = true, all_covered_batch = true;
	json_t *jm = json_array(), *jb = json_array();
	for (size_t i = 0; i < cfg->n_models; i++) {
		if (!ms[i].jobs && !ms[i].batch_jobs)
			continue;
		const struct model_conf *m = &cfg->models[i];
		json_array_append_new(
		        jm,
		        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:o}", "model",
		                  m->name, "provider", cfg->providers[m->provider].name, "jobs",
		                  (json_int_t)ms[i].jobs, "input_tokens",
		                  (json_int_t)ms[i].input_tokens, "max_output_tokens",
		                  (json_int_t)ms[i].output_tokens, "estimate_nusd",
		                  (json_int_t)ms[i].nusd, "estimate_usd", cli_json_usd(ms[i].nusd),
		                  "batch_jobs", (json_int_t)ms[i].batch_jobs, "batch_estimate_nusd",
		                  (json_int_t)ms[i].batch_nusd, "batch_estimate_usd",
		                  cli_json_usd(ms[i].batch_nusd)));
	}
	for (size_t i = 0; i < cfg->n_budgets; i++) {
		if (!bs[i].nusd && !bs[i].jobs)
			continue;
		const struct cli_budget_view *v =
		        cli_budgets_find(views, n_views, cfg->budgets[i].name);
		int64_t limit = v ? v->limit_nusd : cfg->budgets[i].limit_nusd;
		int64_t left = limit - (v ? v->spent_nusd + v->reserved_nusd : 0);
		bool covered = bs[i].nusd <= left, covered_batch = bs[i].batch_nusd <= left;
		all_covered = all_covered && covered;
		all_covered_batch = all_covered_batch && covered_batch;
		json_t *row = json_pack(
		        "{s:s, s:s, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:o, s:b}", "name",
		        cfg->budgets[i].name, "window", v ? v->window : "all", "jobs",
		        (json_int_t)bs[i].jobs, "estimate_nusd", (json_int_t)bs[i].nusd,
		        "estimate_usd", cli_json_usd(bs[i].nusd), "limit_nusd", (json_int_t)limit,
		        "spent_nusd", (json_int_t)(v ? v->spent_nusd : 0), "reserved_nusd",
		        (json_int_t)(v ? v->reserved_nusd : 0), "remaining_nusd", (json_int_t)left,
		        "remaining_usd", cli_json_usd(left), "covered", covered);
		json_object_set_new(row, "batch_estimate_nusd", json_integer(bs[i].batch_nusd));
		json_object_set_new(row, "batch_estimate_usd", cli_json_usd(bs[i].batch_nusd));
		json_object_set_new(row, "batch_covered", json_boolean(covered_batch));
		json_array_append_new(jb, row);
	}

	if (as_json) {
		json_t *doc = json_pack("{s:I, s:I, s:O, s:b, s:I, s:o, s:s, s:O, s:O, s:b}",
		                        "jobs", (json_int_t)jobs.n, "routed", (json_int_t)routed,
		                        "unroutable", unroutable, "upper_bound", 1, "total_nusd",
		                        (json_int_t)total, "total_usd", cli_json_usd(total),
		                        "budget_source", from_redis ? "redis" : "config", "models",
		                        jm, "budgets", jb, "covered", all_covered);
		json_object_set_new(doc, "batch_total_nusd", json_integer(batch_total));
		json_object_set_new(doc, "batch_total_usd", cli_json_usd(batch_total));
		json_object_set_new(doc, "batch_covered", json_boolean(all_covered_batch));
		char *s = json_dumps(doc, CLI_JSON_FLAGS);
		puts(s);
		free(s);
		json_decref(doc);
	} else {
		char usd[40], usd2[40];
		printf("%zu jobs, %zu routed", jobs.n, routed);
		const char *key;
		json_t *v;
		json_object_foreach (unroutable, key, v) {
			printf(", %lld %s", (long long)json_integer_value(v), key);
		}
		printf("\n\n%-24s %-12s %7s %12s %12s %14s %7s %14s\n", "MODEL", "PROVIDER", "JOBS",
		       "IN TOKENS", "MAX OUT", "SYNC", "BATCHED", "BATCH");
		size_t i;
		json_t *row;
		json_array_foreach (jm, i, row) {
			cli_usd(json_integer_value(json_object_get(row, "estimate_nusd")), usd,
			        sizeof usd);
			cli_usd(json_integer_value(json_object_get(row, "batch_estimate_nusd")),
			        usd2, sizeof usd2);
			printf("%-24s %-12s %7lld %12lld %12lld %14s %7lld %14s\n",
			       json_string_value(json_object_get(row, "model")),
			       json_string_value(json_object_get(row, "provider")),
			       (long long)json_integer_value(json_object_get(row, "jobs")),
			       (long long)json_integer_value(json_object_get(row, "input_tokens")),
			       (long long)json_integer_value(
			               json_object_get(row, "max_output_tokens")),
			       usd,
			       (long long)json_integer_value(json_object_get(row, "batch_jobs")),
			       usd2);
		}
		cli_usd(total, usd, sizeof usd);
		cli_usd(batch_total, usd2, sizeof usd2);
		printf("%-24s %-12s %7zu %12s %12s %14s %7s %14s\n", "TOTAL", "", routed, "", "",
		       usd, "", usd2);
		printf("\nThese are upper bounds: input tokens are overestimated (bytes / 3) and "
		       "every "
		       "job is\ncounted at its full max_tokens of output. SYNC: every job on the "
		       "synchronous APIs;\nBATCH: every job in a provider batch (batch prices "
		       "where "
		       "the provider has batch = true),\nrouted again at those prices (JOBS and "
		       "BATCHED count the jobs each model gets).\n");
		printf("\n%-20s %-11s %7s %14s %14s %14s  %-7s %s\n", "BUDGET", "WINDOW", "JOBS",
		       "SYNC", "BATCH", "LEFT", "COVERED", "(BATCH)");
		json_array_foreach (jb, i, row) {
			char usd3[40];
			cli_usd(json_integer_value(json_object_get(row, "estimate_nusd")), usd,
			        sizeof usd);
			cli_usd(json_integer_value(json_object_get(row, "batch_estimate_nusd")),
			        usd3, sizeof usd3);
			cli_usd(json_integer_value(json_object_get(row, "remaining_nusd")), usd2,
			        sizeof usd2);
			printf("%-20s %-11s %7lld %14s %14s %14s  %-7s %s\n",
			       json_string_value(json_object_get(row, "name")),
			       json_string_value(json_object_get(row, "window")),
			       (long long)json_integer_value(json_object_get(row, "jobs")), usd,
			       usd3, usd2,
			       json_is_true(json_object_get(row, "covered")) ? "yes" : "NO",
			       json_is_true(json_object_get(row, "batch_covered")) ? "yes" : "NO");
		}
		printf("\nLeft = %s.\n",
		       from_redis
		               ? "limit - spent - reserved of the current window, read from Redis"
		               : "the configured limit (Redis was not reachable: spend unknown)");
	}
	json_decref(jm);
	json_decref(jb);
	rc = 0;
out:
	if (rc_redis)
		redisFree(rc_redis);
	cli_budgets_view_free(views, n_views);
	json_decref(unroutable);
	free(ms);
	free(bs);
	cli_jobs_free(&jobs);
	config_free(cfg);
	return rc;
}
