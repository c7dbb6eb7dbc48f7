/* router: which model a job calls first and where it fails over to (SPEC §6).
 *
 * router_route() narrows the catalog to the job's candidates (pin, `models`,
 * the first matching rule), drops the ineligible with a reason, orders the
 * rest by the strategy, and returns every model's verdict so that
 * `promptyard route` can explain the decision. It blocks on nothing and,
 * once a route has been filled, allocates nothing when routing into it
 * again (the route keeps its storage; only a multi-message job matched
 * against a rule's regex may grow its text buffer); it reads the live
 * health from a struct health's local view, never from Redis.
 *
 * Strategies (SPEC §6), over the eligible models:
 *   cheapest  lowest estimate; ties: higher quality, then name
 *   balanced  quality >= best eligible quality - router.balanced_slack,
 *             cheapest first; then the rest by cheapest
 *   fastest   lowest observed median latency (health), else the model's
 *             configured latency_ms; ties by cheapest
 *   reliable  highest observed success rate over router.window_s; a model
 *             with no calls in the window counts as 1 (no failure seen);
 *             ties by cheapest
 *   auto      the cheapest model whose quality >= auto_floor + score x
 *             (1 - auto_floor), score the job's complexity (complexity.h,
 *             or a classifier's answer); the rest by cheapest. If no model
 *             is good enough, the highest-quality one first (ties by
 *             cheapest), the rest by cheapest.
 * A pinned model with allow_fallbacks goes first, the strategy orders the
 * fallbacks after it. Qualities are compared to 1e-9 (0.72 - 0.10 >= 0.62). */
#ifndef PROMPTYARD_ROUTER_H
#define PROMPTYARD_ROUTER_H

#include "config.h"
#include "job.h"

#include <stdbool.h>
#include <stdint.h>

struct health;

/* Why a model is not in the chain, in the order they are checked. */
enum drop_reason {
	DROP_NONE,          /* eligible */
	DROP_NOT_CANDIDATE, /* outside the pin, `models` or the matching rule */
	DROP_NO_KEY,        /* the provider's API key is not set */
	DROP_CAPABILITY,    /* lacks a required capability */
	DROP_CONTEXT,       /* context_tokens < est_input + max_tokens */
	DROP_COST_CAP,      /* estimate > what is left of max_cost_usd */
	DROP_BUDGET,        /* estimate > what is left of the budget */
	DROP_CIRCUIT,       /* the model's circuit is open */
	DROP_RATE_LIMIT,    /* the provider's rpm/tpm is spent for now, and another model is not */
	DROP_TRIED,         /* already failed for this job */
};
/* "eligible", "not_candidate", "no_api_key", "capability", "context",
 * "cost_cap", "budget", "circuit_open", "rate_limited", "tried". */
const char *drop_reason_name(enum drop_reason r);

struct route_entry {
	int64_t estimate_nusd;
	int64_t max_tokens;    /* the job's, else the model's default; at most max_output_tokens */
	int64_t est_input;     /* route.est_input plus the job's images and pages on this model */
	int64_t output_tokens; /* the call's output limit: max_tokens plus the thinking
	                          budget of the job's reasoning_effort (SPEC §13) */
	enum drop_reason drop;
	bool probe;   /* eligible, its circuit waiting for a probe: health_admit claims it */
	bool limited; /* rate-limited now; in the chain only when every eligible model is */
};

struct route {
	struct route_entry *entries; /* one per catalog model */
	int *chain;                  /* eligible model indexes, best first */
	size_t n_chain;
	int64_t est_input;       /* SPEC §6 token estimate of the input's text (and tool
	                            definitions, calls and schema); images and PDF
	                            pages are added per model (route_entry.est_input) */
	enum strategy strategy;  /* after rules */
	int rule;                /* the matching rule, -1 if none */
	double complexity;       /* auto: the score used, else -1 */
	double auto_min_quality; /* auto: the quality asked for, else -1 */
	bool auto_fallback;      /* auto: no model was good enough (highest quality first) */
	bool all_limited;        /* every eligible model is rate-limited: the job waits */

	/* Storage, owned by the route and reused by the next router_route(). */
	void *mem;
	size_t mem_bytes;
	char *text;
	size_t text_cap;
};

/* What the router needs to know about the world beyond the config. Zeroed
 * with cost_left_nusd = -1, it means: no cap, nothing tried, no budget
 * limit known, the configuration only (no health), the heuristic score. */
struct route_context {
	int64_t cost_left_nusd;      /* of max_cost_usd; <0: no cap (0 is a cap of 0) */
	const bool *excluded;        /* per model: already tried/failed, or NULL */
	const struct health *health; /* live health (borrowed), or NULL for the config only */
	int64_t now_ms;              /* monotonic now for the circuits; 0: read the clock */
	bool has_budget_left;        /* budget_left_nusd is known */
	int64_t budget_left_nusd;    /* limit - spent, the tightest along the budget's chain */
	bool batch_prices;           /* estimate models with has_batch_price at their
					batch_price (a job sent in a provider batch, SPEC §14) */
	bool has_complexity;         /* auto: use complexity (a classifier's answer, or a
					 score computed before) instead of the heuristic */
	double complexity;
};

/* Routes job into out, which must be zeroed or hold an earlier route (its
 * storage is then reused). Returns 0 with out filled, the chain possibly
 * empty: router_empty_reason() explains an empty chain. cfg, job and ctx
 * (may be NULL) are borrowed. router_route_clear() frees the storage. */
int router_route(const struct config *cfg, const struct job *job, const struct route_context *ctx,
                 struct route *out);
/* Frees the route's storage and zeroes it. Safe on a zeroed route. */
void router_route_clear(struct route *r);

/* SPEC §6: ceil(UTF-8 bytes of all contents / 3) + 4 per message + 3. */
int64_t router_est_input(const struct job *job);
/* The tokens a call of model counts against tpm and the context window:
 * its entry's est_input + output_tokens. */
int64_t router_call_tokens(const struct route *r, int model);
/* est_input x input price + max_tokens x output price, in nano-USD, rounded
 * up (money_cost_nusd() of those usages). */
int64_t router_estimate(const struct model_conf *m, int64_t est_input, int64_t max_tokens);
/* The reason the chain is empty: the most telling drop reason among candidates. */
enum drop_reason router_empty_reason(const struct config *cfg, const struct route *r);

/* The classifier of router.classifier_model: its catalog index when the
 * engine should ask it for the job's complexity before the first attempt,
 * else -1. That is when r (routed with the heuristic) has strategy auto,
 * more than one model in its chain, the job is not pinned without
 * fallbacks, and the classifier's provider has its key. The engine then
 * calls it as attempt 0 on complexity_classifier_job() (complexity.h),
 * charges its cost to the job, reads the reply with complexity_parse_reply()
 * and routes again with ctx.has_complexity and ctx.complexity set; if the
 * call fails or the reply is not a score, it keeps r (the heuristic's). */
int router_classifier(const struct config *cfg, const struct job *job, const struct route *r);

#endif
