/* health_int: the state health.c and health_rate.c share. Only those two
 * include it; everything else sees health.h.
 *
 *   health.c       the local view, the batches of outcomes sent to Redis,
 *                  the circuit breaker and its probe claims, admission
 *   health_rate.c  the rate-limit client: rpm/tpm token buckets in Redis,
 *                  the local credits taken from them, and each provider's
 *                  queue of calls waiting for the bucket
 *
 * Names: health_rate_* are health_rate.c's, the other health_* here are
 * health.c's; whatever one file alone uses is static there. */
#ifndef PROMPTYARD_HEALTH_INT_H
#define PROMPTYARD_HEALTH_INT_H

#include "health.h"

#include <stdbool.h>
#include <stdint.h>

/* An admission asked while Redis is unreachable is retried after this. */
#define REDIS_DOWN_RETRY_MS 250

/* Outcomes recorded since the last flush, for one model. */
struct hbatch {
	int64_t ok, fail;
	int64_t trail; /* failures after the last success */
	int64_t tokens;
	int probe;  /* 0, or this worker's probe outcome: 1 success, 2 failure */
	bool force; /* open the circuit now (401/403) */
	bool has_hist;
	uint32_t hist[HEALTH_BINS];
};

struct hmodel {
	/* The shared view, as of the last refresh (times on the monotonic clock). */
	int64_t median_ms; /* -1: none */
	int64_t ok, fail, tokens, consec;
	int64_t open_until;  /* 0: closed; else the cooldown ends then */
	int64_t probe_until; /* a probe is held (by anyone) until then */

	/* This worker's own knowledge, ahead of the view. */
	int64_t local_consec;     /* consecutive failures seen here */
	int64_t local_open_until; /* opened here (own failures, 401/403) until then */
	uint64_t local_open_gen;  /* the batch that carries the opening */
	bool claiming;            /* a probe claim is in flight */
	bool probe_held;          /* this worker holds the probe: the next record is its outcome */
	bool warm;                /* a success was seen here (health_held_off) */
	int64_t cold_turn_until;  /* a call admitted on the cold failing model
	                             (cold_failing) has yet to start or end: no
	                             other is admitted until then */

	struct health_call *calls, *calls_tail; /* this worker's calls, oldest first */

	bool dirty;
	struct hbatch pend;
	char *ckey, *wkey; /* circuit and window keys */
	size_t ckey_len, wkey_len;
};

/* An admission waiting for Redis: rate credits, then possibly a probe claim. */
struct admit {
	struct health *h;
	int model;
	int64_t tokens;
	health_admit_cb *cb;
	void *opaque;
	int64_t req, tok; /* credits taken, given back if the call does not happen */
	bool cancelled;
	bool in_claim;             /* a probe claim for it is in flight */
	bool waits;                /* health_wait: stays queued while the provider holds back */
	struct admit *qnext;       /* in a provider's queue */
	struct admit *next, *prev; /* every live admission, for cancel */
};

struct hprov {
	struct health *h;
	int index;
	int64_t rpm, tpm;               /* 0 = unlimited */
	int64_t burst_req, burst_tok;   /* as ratelimit.lua computes them */
	int64_t credit_req, credit_tok; /* local credits */
	int64_t credit_expires;         /* monotonic ms */
	int64_t dry_until;              /* the shared bucket said wait until then */
	int64_t throttled_until;        /* the provider said 429 */
	bool taking;                    /* a take is in flight */
	struct admit *qhead, *qtail;
	size_t qlen;
	uv_timer_t wake; /* for the waiters: when the bucket or the throttle allows */
	int64_t demand_start, demand_req, demand_tok, last_req, last_tok;
	char *key;
	size_t key_len;
};

/* A flush in flight: the batches sent, kept to merge back on failure. */
struct flush_call {
	struct health *h;
	uint64_t gen;
	size_t n;
	int *models;
	struct hbatch *batches;
};

struct health {
	uv_loop_t *loop;
	struct redis *r;
	const struct config *cfg;
	struct health_options opt;
	char worker_id[128];
	size_t s_flush, s_view, s_probe, s_rate; /* script ids */
	struct hmodel *models;
	struct hprov *provs;
	char *view_key;
	size_t view_key_len;
	int64_t window_ms, credit_ttl_ms;

	uv_timer_t flush_timer, refresh_timer;
	int open_handles; /* timers not yet closed */
	int calls;        /* Redis calls not yet answered */
	bool dead;        /* health_free() was called */

	bool flushing, viewing, urgent;
	uint64_t batch_gen;      /* generation of the batch being recorded */
	uint64_t acked_gen;      /* the last generation Redis acknowledged */
	uint64_t view_acked_gen; /* acked_gen when the view in flight was asked */
	int64_t view_at;         /* monotonic ms of the last view, -1 for none */
	struct admit *admits;    /* live admissions */
};

/* ---------------------------------------------------------------- health.c */

/* "<prefix>{health}:<kind>:<name>" (new), its length in *len. */
char *health_key(const struct config *cfg, const char *kind, const char *name, size_t *len);
/* Redis can be asked (and health_free() was not called). */
bool health_redis_up(const struct health *h);
/* Frees h once it is dead and its last Redis call and handle are done. */
void health_maybe_free(struct health *h);
/* A live admission of model for cb(opaque) (new; linked on h->admits). */
struct admit *health_admission_new(struct health *h, int model, int64_t tokens, health_admit_cb *cb,
                                   void *opaque);
/* Delivers a verdict (unless cancelled) and forgets the admission (freed). */
void health_admission_done(struct health *h, struct admit *a, enum health_verdict v,
                           int64_t retry_ms);
/* Unlinks and frees a without a verdict. */
void health_admission_unlink(struct health *h, struct admit *a);
/* The rate credits are there: claims the probe if one is due, else goes. */
void health_admission_proceed(struct health *h, struct admit *a);

/* ---------------------------------------------------------------- health_rate.c */

/* Sets up h->provs from the config (health_new). */
void health_rate_init(struct health *h);
/* Starts the providers' wake timers on h->loop (each counts in open_handles). */
void health_rate_start(struct health *h);
/* The health is dying: queued admissions are cancelled and dropped, and the
 * wake timers (if started) are closed. */
void health_rate_stop(struct health *h);
/* Frees h->provs. */
void health_rate_free(struct health *h);
/* The rate-limit part of health_admit: LIMITED with *retry_after_ms (a 429's
 * throttle, a dry bucket, Redis away), PENDING (queued for a take from the
 * bucket: cb brings the verdict), or GO with the credits taken in *req and
 * *tok (0 for an unlimited provider), which health_rate_give_back() returns
 * if the call does not happen. */
enum health_verdict health_rate_admit(struct health *h, int model, int64_t tokens,
                                      health_admit_cb *cb, void *opaque, int64_t *req, int64_t *tok,
                                      int64_t *retry_after_ms);
/* Returns credits taken for a call that does not happen. */
void health_rate_give_back(struct health *h, int model, int64_t req, int64_t tok);
/* Returns the credits an admission holds (a->req, a->tok, then zeroed). */
void health_rate_refund(struct health *h, struct admit *a);

#endif
