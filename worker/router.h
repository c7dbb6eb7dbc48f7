/* router: which model a job calls first and where it fails over to (SPEC §6).
 *
 * router_route() narrows the catalog to the job's candidates (pin, `models`,
 * the first matching rule), drops the ineligible with a reason, orders the
 * rest by the strategy, and returns every model's verdict so that
 * `promptyard route` can explain the decision. It allocates nothing per call
 * beyond the route it fills, and blocks on nothing. */
#ifndef PROMPTYARD_ROUTER_H
#define PROMPTYARD_ROUTER_H

#include "config.h"
#include "job.h"

#include <stdint.h>

enum drop_reason {
	DROP_NONE,         /* eligible */
	DROP_NOT_CANDIDATE, /* outside the pin, `models` or the matching rule */
	DROP_NO_KEY,       /* the provider's API key is not set */
	DROP_CAPABILITY,   /* lacks a required capability */
	DROP_CONTEXT,      /* context_tokens < est_input + max_tokens */
	DROP_COST_CAP,     /* estimate > what is left of max_cost_usd */
	DROP_BUDGET,       /* estimate > what is left of the budget */
	DROP_CIRCUIT,      /* the model's circuit is open */
	DROP_RATE_LIMIT,   /* the provider's rpm/tpm is spent for now */
	DROP_TRIED,        /* already failed for this job */
};
const char *drop_reason_name(enum drop_reason r);

struct route_entry {
	int64_t estimate_nusd;
	int64_t max_tokens; /* the job's, else the model's default */
	enum drop_reason drop;
};

struct route {
	struct route_entry *entries; /* one per catalog model (new) */
	int *chain;                  /* eligible model indexes, best first (new) */
	size_t n_chain;
	int64_t est_input;           /* SPEC §6 token estimate of the input */
	enum strategy strategy;      /* after rules */
	int rule;                    /* the matching rule, -1 if none */
};

/* What the router needs to know about the world beyond the config: spend
 * left, circuits and limits. NULL fields mean "no restriction". */
struct route_context {
	int64_t cost_left_nusd;            /* of max_cost_usd; <0: no cap */
	const bool *excluded;              /* per model: already tried/failed, or NULL */
};

/* Routes job. Returns 0 with out filled (router_route_clear() it), the chain
 * possibly empty; the first dropped reason explains an empty chain. */
int router_route(const struct config *cfg, const struct job *job, const struct route_context *ctx,
		 struct route *out);
void router_route_clear(struct route *r);

/* SPEC §6: ceil(UTF-8 bytes of all contents / 3) + 4 per message + 3. */
int64_t router_est_input(const struct job *job);
/* est_input x input price + max_tokens x output price, in nano-USD. */
int64_t router_estimate(const struct model_conf *m, int64_t est_input, int64_t max_tokens);
/* The reason the chain is empty: the most telling drop reason among candidates. */
enum drop_reason router_empty_reason(const struct config *cfg, const struct route *r);

#endif
