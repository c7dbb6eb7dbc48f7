/* router: candidates, eligibility and strategy order. */
#include "router.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>

const char *drop_reason_name(enum drop_reason r)
{
	static const char *names[] = {"eligible", "not_candidate", "no_api_key", "capability",
				      "context",  "cost_cap",      "budget",     "circuit_open",
				      "rate_limited", "tried"};
	return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

int64_t router_est_input(const struct job *job)
{
	return (int64_t)((job->content_bytes + 2) / 3) + 4 * (int64_t)job->n_messages + 3;
}

int64_t router_estimate(const struct model_conf *m, int64_t est_input, int64_t max_tokens)
{
	struct usage u = {.input_tokens = est_input, .output_tokens = max_tokens};
	return money_cost_nusd(&m->price, &u);
}

/* Does a metadata rule match: every key present in the job with an equal value? */
static bool metadata_matches(const json_t *want, const json_t *have)
{
	const char *key;
	json_t *v;
	if (!json_is_object(have))
		return false;
	json_object_foreach((json_t *)want, key, v)
	{
		json_t *h = json_object_get(have, key);
		/* 1 and 1.0 are the same value to a user (json_equal says no). */
		if (json_is_number(v) && json_is_number(h)) {
			if (json_number_value(v) != json_number_value(h))
				return false;
		} else if (!json_equal(v, h)) {
			return false;
		}
	}
	return true;
}

static int match_rule(const struct config *cfg, const struct job *job)
{
	char *text = NULL;
	int found = -1;
	for (size_t i = 0; i < cfg->n_rules && found < 0; i++) {
		const struct rule_conf *r = &cfg->rules[i];
		if (r->metadata && !metadata_matches(r->metadata, job->metadata))
			continue;
		if (r->match) {
			if (!text) {
				struct buf b = {0};
				for (size_t m = 0; m < job->n_messages; m++) {
					if (m)
						buf_puts(&b, "\n");
					buf_append(&b, job->messages[m].content, job->messages[m].content_len);
				}
				text = buf_take(&b);
			}
			if (regexec(&r->re, text, 0, NULL, 0) != 0)
				continue;
		}
		found = (int)i;
	}
	free(text);
	return found;
}

/* Order of `cheapest`: lower estimate, then higher quality, then name. */
static const struct config *sort_cfg;
static const struct route *sort_route;

static int cmp_cheapest(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	int64_t ex = sort_route->entries[x].estimate_nusd, ey = sort_route->entries[y].estimate_nusd;
	if (ex != ey)
		return ex < ey ? -1 : 1;
	double qx = sort_cfg->models[x].quality, qy = sort_cfg->models[y].quality;
	if (qx != qy)
		return qx > qy ? -1 : 1;
	return strcmp(sort_cfg->models[x].name, sort_cfg->models[y].name);
}

static int cmp_fastest(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	int64_t lx = sort_cfg->models[x].latency_ms, ly = sort_cfg->models[y].latency_ms;
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return cmp_cheapest(a, b);
}

/* `balanced`: those within balanced_slack of the best quality, cheapest first,
 * then the rest by `cheapest`. */
static void order_balanced(const struct config *cfg, struct route *r)
{
	double best = -1;
	for (size_t i = 0; i < r->n_chain; i++)
		if (cfg->models[r->chain[i]].quality > best)
			best = cfg->models[r->chain[i]].quality;
	/* A small epsilon keeps 0.72 - 0.10 >= 0.62 true in binary floating point. */
	double floor = best - cfg->router.balanced_slack - 1e-9;
	size_t top = 0;
	for (size_t i = 0; i < r->n_chain; i++) {
		if (cfg->models[r->chain[i]].quality >= floor) {
			int t = r->chain[top];
			r->chain[top] = r->chain[i];
			r->chain[i] = t;
			top++;
		}
	}
	qsort(r->chain, top, sizeof *r->chain, cmp_cheapest);
	qsort(r->chain + top, r->n_chain - top, sizeof *r->chain, cmp_cheapest);
}

int router_route(const struct config *cfg, const struct job *job, const struct route_context *ctx,
		 struct route *out)
{
	memset(out, 0, sizeof *out);
	out->entries = xcalloc(cfg->n_models, sizeof *out->entries);
	out->chain = xcalloc(cfg->n_models, sizeof *out->chain);
	out->est_input = router_est_input(job);
	out->strategy = job->strategy;
	out->rule = match_rule(cfg, job);

	/* Candidates: the pin (with fallbacks: everything else after it), the
	 * job's `models`, else the rule's models, else the catalog. */
	const struct rule_conf *rule = out->rule >= 0 ? &cfg->rules[out->rule] : NULL;
	if (rule && rule->strategy >= 0 && !job->strategy_set)
		out->strategy = (enum strategy)rule->strategy;
	bool *cand = xcalloc(cfg->n_models, sizeof *cand);
	if (job->n_models) {
		for (size_t i = 0; i < job->n_models; i++)
			cand[job->models[i]] = true;
	} else if (rule && rule->n_models && job->model < 0) {
		for (size_t i = 0; i < rule->n_models; i++)
			cand[rule->models[i]] = true;
	} else {
		for (size_t i = 0; i < cfg->n_models; i++)
			cand[i] = true;
	}
	if (job->model >= 0 && !job->allow_fallbacks) {
		memset(cand, 0, cfg->n_models * sizeof *cand);
		cand[job->model] = true;
	} else if (job->model >= 0) {
		cand[job->model] = true;
	}

	for (size_t i = 0; i < cfg->n_models; i++) {
		const struct model_conf *m = &cfg->models[i];
		struct route_entry *e = &out->entries[i];
		const struct provider_conf *p = &cfg->providers[m->provider];
		e->max_tokens = job->max_tokens ? job->max_tokens : m->default_max_tokens;
		e->estimate_nusd = router_estimate(m, out->est_input, e->max_tokens);
		if (!cand[i])
			e->drop = DROP_NOT_CANDIDATE;
		else if (ctx && ctx->excluded && ctx->excluded[i])
			e->drop = DROP_TRIED;
		else if (p->api_key_env[0] && !p->api_key)
			e->drop = DROP_NO_KEY;
		else if ((m->caps & job->caps) != job->caps)
			e->drop = DROP_CAPABILITY;
		else if (m->context_tokens < out->est_input + e->max_tokens)
			e->drop = DROP_CONTEXT;
		else if (ctx && ctx->cost_left_nusd >= 0 && e->estimate_nusd > ctx->cost_left_nusd)
			e->drop = DROP_COST_CAP;
		else
			out->chain[out->n_chain++] = (int)i;
	}
	free(cand);

	sort_cfg = cfg;
	sort_route = out;
	switch (out->strategy) {
	case STRATEGY_BALANCED:
		order_balanced(cfg, out);
		break;
	case STRATEGY_FASTEST:
		qsort(out->chain, out->n_chain, sizeof *out->chain, cmp_fastest);
		break;
	case STRATEGY_CHEAPEST:
	case STRATEGY_RELIABLE:
	case STRATEGY_AUTO:
		qsort(out->chain, out->n_chain, sizeof *out->chain, cmp_cheapest);
		break;
	}
	/* A pinned model goes first; the rest of the order is its fallback chain. */
	if (job->model >= 0) {
		for (size_t i = 0; i < out->n_chain; i++) {
			if (out->chain[i] == job->model) {
				memmove(out->chain + 1, out->chain, i * sizeof *out->chain);
				out->chain[0] = job->model;
				break;
			}
		}
	}
	return 0;
}

enum drop_reason router_empty_reason(const struct config *cfg, const struct route *r)
{
	/* The furthest a candidate got decides: a cap or budget refusal says more
	 * than a missing capability. */
	enum drop_reason best = DROP_NOT_CANDIDATE;
	for (size_t i = 0; i < cfg->n_models; i++) {
		enum drop_reason d = r->entries[i].drop;
		if (d != DROP_NOT_CANDIDATE && d > best)
			best = d;
	}
	return best;
}

void router_route_clear(struct route *r)
{
	free(r->entries);
	free(r->chain);
	memset(r, 0, sizeof *r);
}
