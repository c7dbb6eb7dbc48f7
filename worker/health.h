/* health: live model health and provider rate limits, shared by every worker
 * through Redis (SPEC §6), without a Redis round trip per job.
 *
 * What is shared, per model: a sliding window (router.window_s) of call
 * outcomes and latencies, and a circuit breaker; per provider: the rpm/tpm
 * token buckets. What each worker keeps: a local view of the shared state,
 * refreshed every refresh_ms (one script call for all models), the samples
 * recorded since the last flush (sent every flush_ms in one script call),
 * and a small cache of rate-limit credits taken from the shared buckets in
 * batches. Every question the router asks (health_circuit, health_limited,
 * health_model_latency_ms, ...) is answered from memory.
 *
 * The breaker: router.breaker_failures consecutive failures (counted across
 * workers) open a model's circuit for router.breaker_cooldown_ms; then
 * exactly one probe call is let through, across all workers (an atomic claim
 * in Redis, with a lease so that a worker that dies does not hold it); a
 * probe success closes the circuit, a failure opens it again. A worker opens
 * its local view as soon as its own failures reach the threshold, before
 * Redis has heard of them.
 *
 * No slow start: a model with no observations is called at full
 * concurrency (SPEC §6). Failures count as calls end, and the calls of one
 * wave end together, so a provider that is down or hangs from the start
 * opens its breaker as the wave's first breaker_failures failures come
 * back, one timeout after the wave went out. What it costs, per worker:
 * the calls in flight then (at most the provider's pool capacity), plus
 * fewer than breaker_failures after them: once a call of a cold model
 * failed here, the calls queued for a slot behind the wave stay off it
 * (health_held_off) and fresh calls go one at a time (health_admit), each
 * one's failure counting, until the breaker opens. The half-open circuit
 * after a cooldown is the same for a cold model as for a warm one: one
 * probe across all workers.
 *
 * Rate limits: a provider's rpm and tpm are token buckets in Redis that
 * refill continuously (limit per rate_period_ms) and hold at most a
 * sixtieth of the period's limit (one second's worth for a per-minute
 * limit), so any window of W ms sees at most limit x W / period plus that
 * burst and one request. A request is let through once the bucket holds half a burst (or
 * the request, if smaller) and may leave it in debt, which keeps the
 * long-run rate exact whatever the requests' sizes. Workers
 * take credits in small batches (at most a quarter of the burst, sized by
 * their recent demand) that expire after a sixtieth of the period; an
 * expired credit is lost, never given twice, so the limit is never exceeded
 * because of the cache.
 *
 * With Redis down the last view is kept, samples are recorded locally and
 * sent once Redis is back, and admissions that need Redis answer
 * HEALTH_LIMITED (retry later) or HEALTH_CIRCUIT_OPEN (no probe without the
 * claim).
 *
 * Redis keys (every one carries the {health} hash tag, so each script
 * touches one Redis Cluster slot):
 *   <prefix>{health}:c:<model>      hash: consec, open_until, probe_until,
 *                                    probe_owner (times in Redis ms)
 *   <prefix>{health}:w:<model>      hash: the window as a ring of
 *                                    HEALTH_SLOTS slots, fields <i>:id,
 *                                    <i>:ok, <i>:fail, <i>:tok, <i>:h (a
 *                                    latency histogram "bin:count ...")
 *   <prefix>{health}:rl:<provider>  hash: req_level, req_ts, tok_level,
 *                                    tok_ts
 *   <prefix>{health}:view:<hash>    the last view (JSON), a cache valid for
 *                                    half a refresh so that N workers cost
 *                                    Redis one computation; <hash> names the
 *                                    catalog
 * Scripts: health_flush.lua (samples, breaker), health_view.lua (the view),
 * health_probe.lua (the probe claim), ratelimit.lua (bucket take).
 *
 * Latency medians come from a log-scale histogram (bins 10% wide), so a
 * median is exact to about 5%. Only successful calls contribute latency.
 * Counts are at least once: a batch whose reply was lost is sent again.
 *
 * How the engine uses it:
 *   - make it with the loop's struct redis before redis_start(); pass it to
 *     the router (route_context.health); health_free() it when stopping;
 *   - before each attempt, health_admit(model, est_input + max_tokens): GO
 *     starts the call; LIMITED moves to the next model of the chain that
 *     is not health_limited() (attempt outcome rate_limited), or, when none
 *     is, waits retry_after_ms and asks again; CIRCUIT_OPEN skips the model
 *     (outcome circuit_open); PENDING waits for the callback, and a task
 *     freed meanwhile calls health_admit_cancel();
 *   - a call admitted that had to wait for a slot of its provider asks
 *     health_held_off() before it goes: true moves it on (circuit_open);
 *   - after the call: health_record(ok) for a success or a retryable
 *     failure; health_throttle() for a throttle (429); health_open_provider()
 *     for a 401/403; health_release() for anything else (the job's own 4xx). */
#ifndef PROMPTYARD_HEALTH_H
#define PROMPTYARD_HEALTH_H

#include "config.h"
#include "redis.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define HEALTH_SLOTS 10  /* the window is kept as this many slots */
#define HEALTH_BINS  128 /* latency histogram bins: bin b holds [1.1^b - 1, 1.1^(b+1) - 1) ms */

struct health;

struct health_options {
	const char *worker_id;  /* the probe owner's name in Redis; default "<host>-<pid>" */
	int64_t flush_ms;       /* samples are sent at most this often; default 200 */
	int64_t refresh_ms;     /* the view is refreshed this often; default 1000 */
	int64_t rate_period_ms; /* rpm/tpm are per this period; default 60000 (tests shorten it) */
};

/* A health on the connection r (borrowed) for cfg (borrowed, must outlive
 * it). Registers its scripts with r, so it must be made before
 * redis_start(); starts its timers on loop. With loop and r NULL it is an
 * offline health: no timers, no Redis, a view that only
 * health_load_view_sync() and health_set_view() change (command line tools,
 * tests). opt may be NULL for the defaults. */
struct health *health_new(uv_loop_t *loop, struct redis *r, const struct config *cfg,
                          const struct health_options *opt);
/* Sends what was recorded since the last flush (if Redis is up), stops the
 * timers and frees the health once its Redis calls have been answered
 * (redis_free() answers them). No callback runs after this: admit
 * callbacks still pending are dropped. NULL is safe. */
void health_free(struct health *h);

/* ---------------------------------------------------------------- recording */

/* Records one call's outcome on model: ok, its latency (used when ok) and
 * the tokens it used. Local and O(1); flushed in the next batch. Which
 * outcomes count as failures is the caller's choice; the engine records
 * retryable failures (5xx, 529, timeout, connect_error, invalid_response)
 * and successes, not the job's own faults (400/404/422, context overflow:
 * health_release) nor a provider's 429 (health_throttle). If this worker
 * holds model's probe (health_admit said GO on a probe), this record is the
 * probe's outcome: it closes or reopens the circuit and is flushed at once. */
void health_record(struct health *h, int model, bool ok, int64_t latency_ms, int64_t tokens);

/* A call on model ended without a verdict on the model's health (the job's
 * own 4xx, a context overflow, a call abandoned): if it was this worker's
 * probe, the probe is given back at once, for anyone to claim, instead of
 * when its lease ends. Otherwise nothing happens. */
void health_release(struct health *h, int model);

/* Opens the circuit of every model of provider, for every worker (a 401 or
 * a 403: the key is bad). Sent at once; the local view opens immediately. */
void health_open_provider(struct health *h, int provider);

/* The provider throttled a call (a 429, or a format's throttle that comes
 * with another status): its models count as rate-limited on this worker
 * for retry_after_ms (1000 if <= 0), at most worker.max_retry_after_ms (no
 * answer parks a provider longer, SPEC §6), and the local credits are
 * dropped. Local only; not a failure (a probe held on the provider is given
 * back, as by health_release). */
void health_throttle(struct health *h, int provider, int64_t retry_after_ms);

/* ---------------------------------------------------------------- the view */

enum health_circuit {
	HEALTH_CLOSED,        /* calls go through */
	HEALTH_OPEN,          /* no calls (cooling down, or another worker probes) */
	HEALTH_PROBE_ALLOWED, /* the cooldown passed: one probe may be claimed (health_admit) */
};
const char *health_circuit_name(enum health_circuit c); /* "closed", "open", "probe" */

/* now_ms is monotonic (time_mono_ms()). All are answered from memory. */
enum health_circuit health_circuit(const struct health *h, int model, int64_t now_ms);
/* The observed median latency over the window, or -1 without observations. */
int64_t health_model_latency_ms(const struct health *h, int model);
/* A call on a model, from its start to its end, as this worker sees it:
 * while a model has no observation in the window, the age of its oldest
 * call here is a lower bound on its latency (health_latency_estimate). The
 * struct lives in the caller's memory; end is a no-op when not begun. */
struct health_call {
	struct health_call *prev, *next;
	int64_t start_ms;
	int model;
	bool linked;
};
void health_call_begin(struct health *h, int model, struct health_call *c);
void health_call_end(struct health *h, struct health_call *c);
/* What strategy fastest orders by (SPEC §6): the observed median; without
 * observations, configured_ms, or the age of this worker's oldest call on
 * the model when that is longer (a model that stopped answering fast is not
 * taken for its configured latency while its calls hang). */
int64_t health_latency_estimate(const struct health *h, int model, int64_t configured_ms,
                                int64_t now_ms);
/* Successes / calls over the window, or -1 without calls. */
double health_success_rate(const struct health *h, int model);
/* The same as counts, exact (for comparisons): returns false without calls. */
bool health_success_counts(const struct health *h, int model, int64_t *ok, int64_t *calls);
/* Would a call on model needing tokens be refused by the rate limit right
 * now? True while the shared bucket is known to be dry (the last take said
 * wait) or the provider throttled us, and the local credits do not cover
 * it. False when nothing is known: the admission will ask Redis. */
bool health_limited(const struct health *h, int model, int64_t tokens, int64_t now_ms);

/* Should a call admitted earlier, that has waited since (for a slot of its
 * provider), stay off model now? True when model's circuit has opened
 * meanwhile (here or across workers; a circuit that cooled down and is
 * being probed is not counted: the probe itself may be the caller), or when
 * model is cold (no success in the window, none seen here) and its last
 * call here failed. A cold model is called at full concurrency (SPEC §6);
 * if its first wave fails, or hangs until its timeout, the calls queued
 * behind that wave would fail the same way after as long, so they move on
 * at once while the breaker counts the wave's failures. Fresh admissions
 * go one at a time (health_admit): the breaker needs their evidence, not
 * a second wave of it. */
bool health_held_off(const struct health *h, int model, int64_t now_ms);

/* Whether any model of provider may be rate-limited now (throttled, or its
 * shared bucket known to be dry): when false, health_limited() is false for
 * all of them and need not be asked. */
bool health_provider_may_limit(const struct health *h, int provider, int64_t now_ms);

/* One model's view, for display and tests. */
struct health_model_view {
	int64_t median_ms;       /* -1: no observation */
	int64_t ok, fail;        /* calls over the window */
	int64_t tokens;          /* tokens used over the window */
	int64_t consec_failures; /* shared count of consecutive failures */
	enum health_circuit circuit;
	int64_t open_ms; /* HEALTH_OPEN: ms until a probe may be claimed, else 0 */
};
void health_model_view(const struct health *h, int model, int64_t now_ms,
                       struct health_model_view *out);
/* Replaces model's shared view with v (median, counts, consec, circuit and
 * open_ms), as if a refresh had brought it. For tests and tools. */
void health_set_view(struct health *h, int model, const struct health_model_view *v);
/* Milliseconds since the last view arrived, -1 if none ever did. */
int64_t health_view_age_ms(const struct health *h);

/* Reads the shared view once with a blocking connection (command line tools
 * only, never on the worker's loop). Returns 0, or -1 with errstr set (the
 * view is then unchanged). */
int health_load_view_sync(struct health *h, redisContext *c, char *errstr, size_t errstr_size);

/* ---------------------------------------------------------------- admission */

enum health_verdict {
	HEALTH_GO,      /* call now (a rate credit is taken; a probe claimed if one was due) */
	HEALTH_PENDING, /* the answer needs Redis: cb will bring it */
	HEALTH_LIMITED, /* rate-limited: ask again after *retry_after_ms, or use another model */
	HEALTH_CIRCUIT_OPEN, /* the circuit is open, or another worker holds the probe: skip it */
};
const char *health_verdict_name(enum health_verdict v);

/* Receives a pending admission's verdict (never HEALTH_PENDING); runs on the
 * loop, never from health_admit's own stack. */
typedef void health_admit_cb(void *opaque, enum health_verdict v, int64_t retry_after_ms);

/* May a call of model needing tokens (the request's est_input + max_tokens,
 * as providers count them against tpm) start now? Answers at once from
 * memory in the common case: GO (the credit is taken: start the call, then
 * health_record it), LIMITED with *retry_after_ms, or CIRCUIT_OPEN (also
 * for a cold model whose last call here failed, while a call of it is out
 * here: health_call_begin to health_call_end, or from a GO to the call's
 * start, its record or a health_release, at most its timeout). When the
 * credits are spent or a probe must be claimed it returns PENDING and calls
 * cb(opaque, verdict, retry_after_ms) once Redis answered. A task that goes
 * away while pending calls health_admit_cancel(h, opaque). */
enum health_verdict health_admit(struct health *h, int model, int64_t tokens, health_admit_cb *cb,
                                 void *opaque, int64_t *retry_after_ms);
/* The job waits for model's provider: LIMITED by its rate limit or a 429's
 * Retry-After, with no other model to turn to (SPEC §6: "otherwise the job
 * waits"). The wait is queued in order behind the provider's other waiters,
 * with one timer per provider for when the bucket refills (not one per job:
 * a thousand waiting jobs do not wake every few ms to ask again). Returns
 * PENDING (cb brings GO, CIRCUIT_OPEN, or LIMITED when Redis cannot be
 * asked), or LIMITED with *retry_after_ms when it cannot queue (nothing
 * holds the provider back any more, no loop, Redis away): ask again then. */
enum health_verdict health_wait(struct health *h, int model, int64_t tokens, health_admit_cb *cb,
                                void *opaque, int64_t *retry_after_ms);
/* Forgets every pending admission of opaque: its cb will not run. A credit
 * or a probe already granted to it is not given back (the probe's lease
 * expires). */
void health_admit_cancel(struct health *h, void *opaque);

#endif
