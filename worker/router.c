/* router: candidates, eligibility and strategy order.
 *
 * Orders are sorts of 64-bit integer keys (a value above the model's index),
 * so a sort compares integers and needs no comparator context: by the
 * strategy's primary value, then runs of equal primary by estimate; quality
 * and name break the rare exact ties in a last pass. `balanced` and `auto` are
 * linear passes over the cheapest order. All scratch space lives in the
 * route, reused from one call to the next. */
#include "router.h"

#include "buf.h"
#include "complexity.h"
#include "health.h"
#include "timeutil.h"

#include <stdlib.h>
#include <string.h>

/* Qualities closer than this are equal (0.72 - 0.10 >= 0.62 in binary floating point). */
#define QUALITY_EPSILON 1e-9

const char *drop_reason_name(enum drop_reason r)
{
	static const char *names[] = {"eligible",     "not_candidate", "no_api_key", "capability",
	                              "context",      "cost_cap",      "budget",     "circuit_open",
	                              "rate_limited", "tried"};
	return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

int64_t router_est_input(const struct job *job)
{
	return (int64_t)((job->content_bytes + job->extra_bytes + 2) / 3) +
	       4 * (int64_t)job->n_messages + 3;
}

int64_t router_call_tokens(const struct route *r, int model)
{
	return r->entries[model].est_input + r->entries[model].output_tokens;
}

static inline int64_t estimate_at(const struct price *price, int64_t est_input, int64_t max_tokens)
{
	/* The common case in 64 bits (a division by a constant is a multiply);
	 * the same rounding as money_cost_nusd(), which takes the rest. */
	uint64_t in, out, sum;
	if (est_input >= 0 && max_tokens >= 0 && price->input_nusd_per_mtok >= 0 &&
	    price->output_nusd_per_mtok >= 0 &&
	    !__builtin_mul_overflow((uint64_t)est_input, (uint64_t)price->input_nusd_per_mtok,
	                            &in) &&
	    !__builtin_mul_overflow((uint64_t)max_tokens, (uint64_t)price->output_nusd_per_mtok,
	                            &out) &&
	    !__builtin_add_overflow(in, out, &sum) && sum <= (uint64_t)INT64_MAX)
		return (int64_t)((sum + 999999) / 1000000);
	struct usage u = {.input_tokens = est_input, .output_tokens = max_tokens};
	return money_cost_nusd(price, &u);
}

static inline int64_t estimate(const struct model_conf *m, int64_t est_input, int64_t max_tokens)
{
	return estimate_at(&m->price, est_input, max_tokens);
}

int64_t router_estimate(const struct model_conf *m, int64_t est_input, int64_t max_tokens)
{
	return estimate(m, est_input, max_tokens);
}

/* ---------------------------------------------------------------- rules */

/* Does a metadata rule match: every key present in the job with an equal value? */
static bool metadata_matches(const json_t *want, const json_t *have)
{
	const char *key;
	json_t *v;
	if (!json_is_object(have))
		return false;
	json_object_foreach ((json_t *)want, key, v) {
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

/* The text a rule's regex sees: the contents joined by newlines. One
 * message is used in place (job strings are NUL-terminated and hold no NUL);
 * more are joined in the route's reusable buffer. */
static const char *rule_text(const struct job *job, struct route *r)
{
	if (job->n_messages == 1)
		return job->messages[0].content;
	size_t need = 1;
	for (size_t m = 0; m < job->n_messages; m++)
		need += job->messages[m].content_len + 1;
	if (need > r->text_cap) {
		free(r->text);
		r->text = xmalloc(need);
		r->text_cap = need;
	}
	size_t n = 0;
	for (size_t m = 0; m < job->n_messages; m++) {
		if (m)
			r->text[n++] = '\n';
		memcpy(r->text + n, job->messages[m].content, job->messages[m].content_len);
		n += job->messages[m].content_len;
	}
	r->text[n] = '\0';
	return r->text;
}

static int match_rule(const struct config *cfg, const struct job *job, struct route *r)
{
	const char *text = NULL;
	for (size_t i = 0; i < cfg->n_rules; i++) {
		const struct rule_conf *rule = &cfg->rules[i];
		if (rule->metadata && !metadata_matches(rule->metadata, job->metadata))
			continue;
		if (rule->match) {
			if (!text)
				text = rule_text(job, r);
			if (regexec(&rule->re, text, 0, NULL, 0) != 0)
				continue;
		}
		return (int)i;
	}
	return -1;
}

/* ---------------------------------------------------------------- sorting */

/* Sorts 64-bit keys: blocks of 8 by a sorting network, then branch-free
 * merges between keys and tmp. Random keys mispredict the branches of an
 * insertion sort, and a misprediction costs more than a compare; a network
 * and the merges compile to conditional moves. */
#define SORT_BLOCK 8

/* Compare-and-swap of two locals: min in a, max in b. */
#define CAS(a, b)                                                                                  \
	do {                                                                                       \
		uint64_t lo_ = a < b ? a : b, hi_ = a < b ? b : a;                                 \
		a = lo_;                                                                           \
		b = hi_;                                                                           \
	} while (0)

/* Knuth's 19-comparator network for 8 (checked on all 0-1 inputs), on
 * registers. */
static void sort8(uint64_t *k)
{
	uint64_t k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6],
	         k7 = k[7];
	CAS(k0, k2);
	CAS(k1, k3);
	CAS(k4, k6);
	CAS(k5, k7);
	CAS(k0, k4);
	CAS(k1, k5);
	CAS(k2, k6);
	CAS(k3, k7);
	CAS(k0, k1);
	CAS(k2, k3);
	CAS(k4, k5);
	CAS(k6, k7);
	CAS(k2, k4);
	CAS(k3, k5);
	CAS(k1, k4);
	CAS(k3, k6);
	CAS(k1, k2);
	CAS(k3, k4);
	CAS(k5, k6);
	k[0] = k0, k[1] = k1, k[2] = k2, k[3] = k3, k[4] = k4, k[5] = k5, k[6] = k6, k[7] = k7;
}

static void sort64(uint64_t *keys, uint64_t *tmp, size_t n)
{
	for (size_t lo = 0; lo < n; lo += SORT_BLOCK) {
		size_t len = n - lo < SORT_BLOCK ? n - lo : SORT_BLOCK;
		if (len == SORT_BLOCK) {
			sort8(keys + lo);
		} else {
			/* A short last block: padded with the largest key. */
			uint64_t b[SORT_BLOCK];
			for (size_t i = 0; i < SORT_BLOCK; i++)
				b[i] = i < len ? keys[lo + i] : UINT64_MAX;
			sort8(b);
			memcpy(keys + lo, b, len * sizeof *b);
		}
	}
	uint64_t *src = keys, *dst = tmp;
	for (size_t width = SORT_BLOCK; width < n; width *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * width) {
			size_t mid = lo + width < n ? lo + width : n;
			size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
			size_t a = lo, b = mid, o = lo;
			while (a < mid && b < hi) {
				bool take_b = src[b] < src[a];
				dst[o++] = take_b ? src[b] : src[a];
				b += take_b;
				a += !take_b;
			}
			while (a < mid)
				dst[o++] = src[a++];
			while (b < hi)
				dst[o++] = src[b++];
		}
		uint64_t *t = src;
		src = dst;
		dst = t;
	}
	if (src != keys)
		memcpy(keys, src, n * sizeof *keys);
}

/* Quality as a descending 32-bit key: higher quality, smaller key. */
static uint32_t quality_key(double q)
{
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	return UINT32_MAX - (uint32_t)(q * 4.0e9);
}

/* Per-call scratch, carved out of route.mem. */
struct scratch {
	uint64_t *keys, *tmp;
};

/* Does a come before b on (primary, estimate, quality desc, name)? primary
 * may be NULL (cheapest). */
static bool before(const struct config *cfg, const struct route *r, const uint64_t *primary, int a,
                   int b)
{
	if (primary && primary[a] != primary[b])
		return primary[a] < primary[b];
	int64_t ea = r->entries[a].estimate_nusd, eb = r->entries[b].estimate_nusd;
	if (ea != eb)
		return ea < eb;
	uint32_t qa = quality_key(cfg->models[a].quality), qb = quality_key(cfg->models[b].quality);
	if (qa != qb)
		return qa < qb;
	return strcmp(cfg->models[a].name, cfg->models[b].name) < 0;
}

/* Orders r->chain by primary[m] ascending (if primary), then `cheapest`:
 * estimate, quality (higher first), name. Sorts of 64-bit keys (the value
 * above 8 bits of model index): by primary, then each run of equal primary
 * by estimate; models equal on both (rare) are then put in order by quality
 * and name. */
static void order_chain(const struct config *cfg, struct route *r, struct scratch *s,
                        const uint64_t *primary)
{
	size_t n = r->n_chain;
	bool narrow = cfg->n_models <= 256;
	for (size_t i = 0; narrow && i < n; i++) {
		int m = r->chain[i];
		narrow = (uint64_t)r->entries[m].estimate_nusd < UINT64_C(1) << 56 &&
		         (!primary || primary[m] < UINT64_C(1) << 56);
	}
	uint64_t *k = s->keys, *tmp = s->tmp;
	if (narrow && !primary) {
		for (size_t i = 0; i < n; i++)
			k[i] = (uint64_t)r->entries[r->chain[i]].estimate_nusd << 8 |
			       (uint64_t)r->chain[i];
		sort64(k, tmp, n);
		for (size_t i = 0; i < n; i++)
			r->chain[i] = (int)(k[i] & 0xff);
	} else if (narrow) {
		/* By primary; then each run of equal primary by estimate. */
		for (size_t i = 0; i < n; i++)
			k[i] = primary[r->chain[i]] << 8 | (uint64_t)r->chain[i];
		sort64(k, tmp, n);
		for (size_t i = 0; i < n; i++)
			r->chain[i] = (int)(k[i] & 0xff);
		for (size_t lo = 0, hi; lo < n; lo = hi) {
			for (hi = lo + 1; hi < n && primary[r->chain[hi]] == primary[r->chain[lo]];)
				hi++;
			if (hi - lo < 2)
				continue;
			for (size_t i = lo; i < hi; i++)
				k[i] = (uint64_t)r->entries[r->chain[i]].estimate_nusd << 8 |
				       (uint64_t)r->chain[i];
			sort64(k + lo, tmp, hi - lo);
			for (size_t i = lo; i < hi; i++)
				r->chain[i] = (int)(k[i] & 0xff);
		}
	} else {
		/* Beyond 2^56 nano-USD or 256 models: the chain sorted with a
		 * comparison (slower, never seen in practice). */
		for (size_t i = 1; i < n; i++) {
			int m = r->chain[i];
			size_t j = i;
			while (j > 0 && before(cfg, r, primary, m, r->chain[j - 1])) {
				r->chain[j] = r->chain[j - 1];
				j--;
			}
			r->chain[j] = m;
		}
		return;
	}
	/* Equal primary and estimate: quality and name decide. */
	for (size_t i = 1; i < n; i++) {
		int m = r->chain[i], p = r->chain[i - 1];
		if (r->entries[m].estimate_nusd != r->entries[p].estimate_nusd ||
		    (primary && primary[m] != primary[p]))
			continue;
		size_t j = i;
		while (j > 0 && before(cfg, r, primary, m, r->chain[j - 1])) {
			r->chain[j] = r->chain[j - 1];
			j--;
		}
		r->chain[j] = m;
	}
}

/* Moves the chain's element at pos to the front, the others keeping their order. */
static void move_to_front(struct route *r, size_t pos)
{
	int m = r->chain[pos];
	memmove(r->chain + 1, r->chain, pos * sizeof *r->chain);
	r->chain[0] = m;
}

/* `balanced`: those within balanced_slack of the best quality first, each
 * group in cheapest order (a stable partition of the cheapest order). */
static void order_balanced(const struct config *cfg, struct route *r, struct scratch *s)
{
	double best = -1;
	for (size_t i = 0; i < r->n_chain; i++)
		if (cfg->models[r->chain[i]].quality > best)
			best = cfg->models[r->chain[i]].quality;
	double floor = best - cfg->router.balanced_slack - QUALITY_EPSILON;
	int *rest = (int *)s->tmp;
	size_t top = 0, n_rest = 0;
	for (size_t i = 0; i < r->n_chain; i++) {
		int m = r->chain[i];
		if (cfg->models[m].quality >= floor)
			r->chain[top++] = m;
		else
			rest[n_rest++] = m;
	}
	memcpy(r->chain + top, rest, n_rest * sizeof *rest);
}

/* `auto`: the cheapest good enough first, else the best. */
static void order_auto(const struct config *cfg, const struct job *job,
                       const struct route_context *ctx, struct route *r)
{
	double score = ctx && ctx->has_complexity ? ctx->complexity : complexity_score(job, NULL);
	if (!(score >= 0))
		score = 0;
	if (score > 1)
		score = 1;
	double floor = cfg->router.auto_floor;
	r->complexity = score;
	r->auto_min_quality = floor + score * (1 - floor);
	for (size_t i = 0; i < r->n_chain; i++) {
		if (cfg->models[r->chain[i]].quality >= r->auto_min_quality - QUALITY_EPSILON) {
			move_to_front(r, i);
			return;
		}
	}
	if (r->n_chain == 0)
		return;
	/* None good enough: the highest quality (the first of them in cheapest order). */
	size_t best = 0;
	for (size_t i = 1; i < r->n_chain; i++)
		if (cfg->models[r->chain[i]].quality > cfg->models[r->chain[best]].quality)
			best = i;
	r->auto_fallback = true;
	move_to_front(r, best);
}

/* ---------------------------------------------------------------- routing */

/* route.mem holds, for n models: keys and tmp, the strategies'
 * primary values, entries and chain; then a byte per provider. */
static size_t storage_bytes(size_t n_models, size_t n_providers)
{
	return n_models * (sizeof(struct route_entry) + 2 * sizeof(uint64_t) + sizeof(int) +
	                   sizeof(uint64_t)) +
	       n_providers;
}

static void route_storage(struct route *r, size_t n, size_t n_providers)
{
	size_t need = storage_bytes(n, n_providers);
	if (r->mem && r->mem_bytes >= need)
		return;
	free(r->mem);
	r->mem = xmalloc(need);
	r->mem_bytes = need;
}

/* Per provider, computed once per call. */
enum { PROV_KEY_MISSING = 1, PROV_MAY_LIMIT = 2 };

static void route_carve(struct route *r, size_t n, struct scratch *s, uint64_t **primary,
                        uint8_t **prov)
{
	char *p = r->mem;
	s->keys = (uint64_t *)p;
	p += n * sizeof(uint64_t);
	s->tmp = (uint64_t *)p;
	p += n * sizeof(uint64_t);
	*primary = (uint64_t *)p;
	p += n * sizeof(uint64_t);
	r->entries = (struct route_entry *)p;
	p += n * sizeof(struct route_entry);
	r->chain = (int *)p;
	p += n * sizeof(int);
	*prov = (uint8_t *)p;
}

/* Candidates are marked by leaving drop at DROP_NONE. */
static void mark_candidates(const struct config *cfg, const struct job *job, const struct route *r)
{
	const struct rule_conf *rule = r->rule >= 0 ? &cfg->rules[r->rule] : NULL;
	size_t n = cfg->n_models;
	for (size_t i = 0; i < n; i++)
		r->entries[i].drop = DROP_NOT_CANDIDATE;
	if (job->model >= 0 && !job->allow_fallbacks) {
		r->entries[job->model].drop = DROP_NONE;
		return;
	}
	if (job->n_models) {
		for (size_t i = 0; i < job->n_models; i++)
			r->entries[job->models[i]].drop = DROP_NONE;
	} else if (rule && rule->n_models && job->model < 0) {
		for (size_t i = 0; i < rule->n_models; i++)
			r->entries[rule->models[i]].drop = DROP_NONE;
	} else {
		for (size_t i = 0; i < n; i++)
			r->entries[i].drop = DROP_NONE;
	}
	if (job->model >= 0)
		r->entries[job->model].drop = DROP_NONE;
}

int router_route(const struct config *cfg, const struct job *job, const struct route_context *ctx,
                 struct route *out)
{
	size_t n = cfg->n_models;
	struct scratch s;
	uint64_t *primary;
	uint8_t *prov;
	route_storage(out, n, cfg->n_providers);
	route_carve(out, n, &s, &primary, &prov);
	out->n_chain = 0;
	out->est_input = router_est_input(job);
	out->strategy = job->strategy;
	out->complexity = out->auto_min_quality = -1;
	out->auto_fallback = out->all_limited = false;
	out->rule = match_rule(cfg, job, out);
	const struct rule_conf *rule = out->rule >= 0 ? &cfg->rules[out->rule] : NULL;
	if (rule && rule->strategy >= 0 && !job->strategy_set)
		out->strategy = (enum strategy)rule->strategy;
	mark_candidates(cfg, job, out);

	const struct health *h = ctx ? ctx->health : NULL;
	int64_t now = h ? (ctx->now_ms ? ctx->now_ms : time_mono_ms()) : 0;
	for (size_t i = 0; i < cfg->n_providers; i++) {
		const struct provider_conf *p = &cfg->providers[i];
		prov[i] = (p->missing_env ? PROV_KEY_MISSING : 0) |
		          (h && health_provider_may_limit(h, (int)i, now) ? PROV_MAY_LIMIT : 0);
	}
	size_t n_limited = 0;
	/* The context's limits as plain numbers: no cap is the largest cap. */
	const bool *excluded = ctx ? ctx->excluded : NULL;
	int64_t cap = ctx && ctx->cost_left_nusd >= 0 ? ctx->cost_left_nusd : INT64_MAX;
	int64_t left = ctx && ctx->has_budget_left ? ctx->budget_left_nusd : INT64_MAX;
	bool batch_prices = ctx && ctx->batch_prices;
	unsigned want_caps = job->caps;
	for (size_t i = 0; i < n; i++) {
		const struct model_conf *m = &cfg->models[i];
		struct route_entry *e = &out->entries[i];
		/* The call's output limit, thinking included, stays within the
		 * model's max_output_tokens: the visible part gives way. */
		int64_t thinking = job->effort != EFFORT_NONE ? m->thinking_budget[job->effort] : 0;
		e->max_tokens = job->max_tokens ? job->max_tokens : m->default_max_tokens;
		if (m->max_output_tokens && e->max_tokens > m->max_output_tokens - thinking)
			e->max_tokens = m->max_output_tokens - thinking;
		e->output_tokens = e->max_tokens + thinking;
		e->est_input = out->est_input;
		if (job->n_images || job->n_documents)
			e->est_input += job_media_tokens(job, m);
		e->estimate_nusd = estimate_at(batch_prices && m->has_batch_price ? &m->batch_price
		                                                                  : &m->price,
		                               e->est_input, e->output_tokens);
		e->probe = e->limited = false;
		if (e->drop != DROP_NONE)
			continue;
		if (excluded && excluded[i])
			e->drop = DROP_TRIED;
		else if (prov[m->provider] & PROV_KEY_MISSING)
			e->drop = DROP_NO_KEY;
		else if ((m->caps & want_caps) != want_caps)
			e->drop = DROP_CAPABILITY;
		else if (m->context_tokens < e->est_input + e->output_tokens)
			e->drop = DROP_CONTEXT;
		else if (e->estimate_nusd > cap)
			e->drop = DROP_COST_CAP;
		else if (e->estimate_nusd > left)
			e->drop = DROP_BUDGET;
		if (e->drop != DROP_NONE)
			continue;
		if (h) {
			enum health_circuit c = health_circuit(h, (int)i, now);
			if (c == HEALTH_OPEN) {
				e->drop = DROP_CIRCUIT;
				continue;
			}
			e->probe = c == HEALTH_PROBE_ALLOWED;
			e->limited =
			        (prov[m->provider] & PROV_MAY_LIMIT) &&
			        health_limited(h, (int)i, e->est_input + e->output_tokens, now);
			n_limited += e->limited;
		}
		out->chain[out->n_chain++] = (int)i;
	}
	/* A limited model is skipped while another candidate exists; when all
	 * are limited they stay, and the job waits on the first (health_admit). */
	if (n_limited && n_limited < out->n_chain) {
		size_t k = 0;
		for (size_t i = 0; i < out->n_chain; i++) {
			int m = out->chain[i];
			if (out->entries[m].limited) {
				out->entries[m].drop = DROP_RATE_LIMIT;
				out->entries[m].limited = false;
			} else {
				out->chain[k++] = m;
			}
		}
		out->n_chain = k;
	} else if (n_limited) {
		out->all_limited = true;
	}

	switch (out->strategy) {
	case STRATEGY_CHEAPEST: order_chain(cfg, out, &s, NULL); break;
	case STRATEGY_BALANCED:
		order_chain(cfg, out, &s, NULL);
		order_balanced(cfg, out, &s);
		break;
	case STRATEGY_FASTEST:
		for (size_t i = 0; i < out->n_chain; i++) {
			int m = out->chain[i];
			int64_t l =
			        h ? health_latency_estimate(h, m, cfg->models[m].latency_ms, now)
			          : cfg->models[m].latency_ms;
			primary[m] = l > 0 ? (uint64_t)l : 0;
		}
		order_chain(cfg, out, &s, primary);
		break;
	case STRATEGY_RELIABLE:
		/* Descending success rate as a 32.32 fixed-point fraction. A
		 * division is correctly rounded, so equal fractions (99/100 and
		 * 198/200) give equal keys and their tie falls to cheapest. */
		for (size_t i = 0; i < out->n_chain; i++) {
			int m = out->chain[i];
			int64_t ok = 1, calls = 1;
			if (h && !health_success_counts(h, m, &ok, &calls))
				ok = calls = 1;
			double rate = calls > 0 && ok >= 0 && ok <= calls
			                      ? (double)ok / (double)calls
			                      : 0;
			primary[m] = (UINT64_C(1) << 32) - (uint64_t)(rate * 4294967296.0);
		}
		order_chain(cfg, out, &s, primary);
		break;
	case STRATEGY_AUTO:
		order_chain(cfg, out, &s, NULL);
		order_auto(cfg, job, ctx, out);
		break;
	}
	/* A pinned model goes first; the rest of the order is its fallback chain. */
	if (job->model >= 0) {
		for (size_t i = 0; i < out->n_chain; i++) {
			if (out->chain[i] == job->model) {
				move_to_front(out, i);
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
	free(r->mem);
	free(r->text);
	memset(r, 0, sizeof *r);
}

int router_classifier(const struct config *cfg, const struct job *job, const struct route *r)
{
	if (!*cfg->router.classifier_model || r->strategy != STRATEGY_AUTO || r->n_chain < 2)
		return -1;
	if (job->model >= 0 && !job->allow_fallbacks)
		return -1;
	int c = config_model_index(cfg, cfg->router.classifier_model);
	if (c < 0)
		return -1;
	const struct provider_conf *p = &cfg->providers[cfg->models[c].provider];
	if (p->missing_env)
		return -1;
	return c;
}
