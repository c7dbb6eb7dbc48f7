/* health_rate: the rate-limit client of health (see health.h, "Rate
 * limits"): each provider's rpm and tpm are token buckets in Redis
 * (ratelimit.lua), taken from in small batches of local credits; a call that
 * finds no credit waits in its provider's queue, in order, with one wake
 * timer per provider for when the bucket refills or a 429's Retry-After
 * ends. */
#include "health_int.h"

#include "buf.h"
#include "log.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char lua_ratelimit[];

/* Demand is counted over windows of this length to size credit batches. */
#define DEMAND_WINDOW_MS 250

static void take_send(struct health *h, struct hprov *p);

/* ---------------------------------------------------------------- set-up */

void health_rate_init(struct health *h)
{
	const struct config *cfg = h->cfg;
	h->provs = xcalloc(cfg->n_providers ? cfg->n_providers : 1, sizeof *h->provs);
	for (size_t i = 0; i < cfg->n_providers; i++) {
		struct hprov *p = &h->provs[i];
		p->h = h;
		p->index = (int)i;
		p->rpm = cfg->providers[i].rpm > 0 ? cfg->providers[i].rpm : 0;
		p->tpm = cfg->providers[i].tpm > 0 ? cfg->providers[i].tpm : 0;
		p->burst_req = p->rpm / 60 > 1 ? p->rpm / 60 : 1;
		p->burst_tok = p->tpm / 60 > 1 ? p->tpm / 60 : 1;
		p->key = health_key(cfg, "rl", cfg->providers[i].name, &p->key_len);
	}
	if (h->r)
		h->s_rate = redis_add_script(h->r, "ratelimit", lua_ratelimit);
}

void health_rate_start(struct health *h)
{
	for (size_t i = 0; i < h->cfg->n_providers; i++) {
		uv_timer_init(h->loop, &h->provs[i].wake);
		h->provs[i].wake.data = &h->provs[i];
		h->open_handles++;
	}
}

static void on_wake_closed(uv_handle_t *handle)
{
	struct hprov *p = handle->data;
	p->h->open_handles--;
	health_maybe_free(p->h);
}

void health_rate_stop(struct health *h)
{
	for (size_t i = 0; i < h->cfg->n_providers; i++) {
		struct hprov *p = &h->provs[i];
		for (struct admit *a = p->qhead; a; a = a->qnext)
			a->cancelled = true;
		p->qhead = p->qtail = NULL;
		p->qlen = 0;
		if (h->loop && h->r) {
			uv_timer_stop(&p->wake);
			uv_close((uv_handle_t *)&p->wake, on_wake_closed);
		}
	}
}

void health_rate_free(struct health *h)
{
	for (size_t i = 0; i < h->cfg->n_providers; i++)
		free(h->provs[i].key);
	free(h->provs);
}

/* ---------------------------------------------------------------- credits */

static bool limited_provider(const struct hprov *p)
{
	return p->rpm > 0 || p->tpm > 0;
}

static void credits_expire(struct hprov *p, int64_t now)
{
	if (p->credit_expires <= now)
		p->credit_req = p->credit_tok = 0;
}

static bool credits_cover(const struct hprov *p, int64_t tokens)
{
	return (p->rpm == 0 || p->credit_req >= 1) && (p->tpm == 0 || p->credit_tok >= tokens);
}

static void credits_take(struct hprov *p, struct admit *a, int64_t tokens)
{
	int64_t req = p->rpm ? 1 : 0, tok = p->tpm ? tokens : 0;
	p->credit_req -= req;
	p->credit_tok -= tok;
	if (a) {
		a->req = req;
		a->tok = tok;
	}
}

void health_rate_give_back(struct health *h, int model, int64_t req, int64_t tok)
{
	struct hprov *p = &h->provs[h->cfg->models[model].provider];
	p->credit_req += req;
	p->credit_tok += tok;
}

void health_rate_refund(struct health *h, struct admit *a)
{
	health_rate_give_back(h, a->model, a->req, a->tok);
	a->req = a->tok = 0;
}

bool health_limited(const struct health *h, int model, int64_t tokens, int64_t now_ms)
{
	const struct hprov *p = &h->provs[h->cfg->models[model].provider];
	if (p->throttled_until > now_ms)
		return true;
	if (!limited_provider(p))
		return false;
	if (p->credit_expires > now_ms && credits_cover(p, tokens))
		return false;
	return p->dry_until > now_ms;
}

bool health_provider_may_limit(const struct health *h, int provider, int64_t now_ms)
{
	const struct hprov *p = &h->provs[provider];
	return p->throttled_until > now_ms || (limited_provider(p) && p->dry_until > now_ms);
}

void health_throttle(struct health *h, int provider, int64_t retry_after_ms)
{
	struct hprov *p = &h->provs[provider];
	int64_t park = retry_after_ms > 0 ? retry_after_ms : 1000;
	if (park > h->cfg->worker.max_retry_after_ms)
		park = h->cfg->worker.max_retry_after_ms;
	p->throttled_until = time_mono_ms() + park;
	p->credit_req = p->credit_tok = 0;
	/* A 429 says nothing of the model's health: a probe goes back. */
	for (size_t i = 0; i < h->cfg->n_models; i++)
		if (h->cfg->models[i].provider == provider)
			health_release(h, (int)i);
}

/* ---------------------------------------------------------------- the queue */

static void demand_note(struct hprov *p, int64_t tokens, int64_t now)
{
	if (now - p->demand_start >= DEMAND_WINDOW_MS) {
		p->last_req = p->demand_req;
		p->last_tok = p->demand_tok;
		p->demand_req = p->demand_tok = 0;
		p->demand_start = now;
	}
	p->demand_req++;
	p->demand_tok += tokens;
}

static void queue_push(struct hprov *p, struct admit *a)
{
	a->qnext = NULL;
	if (p->qtail)
		p->qtail->qnext = a;
	else
		p->qhead = a;
	p->qtail = a;
	p->qlen++;
}

/* Until when (monotonic ms) the provider holds back a call needing tokens:
 * a 429's throttle, or the shared bucket dry with no local credit for it.
 * 0: it may go (or take from the bucket) now. */
static int64_t held_until(const struct hprov *p, int64_t tokens, int64_t now)
{
	int64_t until = p->throttled_until > now ? p->throttled_until : 0;
	if (limited_provider(p) && p->dry_until > now && p->dry_until > until &&
	    !(p->credit_expires > now && credits_cover(p, tokens)))
		until = p->dry_until;
	return until;
}

static void on_wake(uv_timer_t *timer);

/* What the queue needs next: the wake timer while the provider holds back,
 * else a take (or, unlimited, nothing to wait for). */
static void queue_next(struct health *h, struct hprov *p)
{
	if (!p->qhead || h->dead)
		return;
	int64_t now = time_mono_ms();
	int64_t until = held_until(p, p->qhead->tokens, now);
	if (until > 0 && h->loop) {
		uv_timer_start(&p->wake, on_wake, (uint64_t)(until - now), 0);
	} else if (!p->taking) {
		take_send(h, p);
	}
}

/* Serves the queue in order while the credits last (after a take's answer,
 * or when the wake timer fires). wait_ms > 0: the bucket is dry; admissions
 * are told to retry, waiters stay. failed: Redis did not answer. */
static void queue_serve(struct health *h, struct hprov *p, int64_t wait_ms, bool failed)
{
	struct admit *a = p->qhead;
	int64_t now = time_mono_ms();
	int64_t throttled = p->throttled_until > now ? p->throttled_until - now : 0;
	p->qhead = p->qtail = NULL;
	p->qlen = 0;
	while (a) {
		struct admit *next = a->qnext;
		if (a->cancelled) {
			health_admission_unlink(h, a);
		} else if (throttled > 0) {
			if (a->waits && !failed)
				queue_push(p, a);
			else
				health_admission_done(h, a, HEALTH_LIMITED,
				                      failed ? REDIS_DOWN_RETRY_MS : throttled);
		} else if (credits_cover(p, a->tokens)) {
			credits_take(p, a, a->tokens);
			health_admission_proceed(h, a);
		} else if (failed) {
			health_admission_done(h, a, HEALTH_LIMITED, REDIS_DOWN_RETRY_MS);
		} else if (wait_ms > 0 && !a->waits) {
			health_admission_done(h, a, HEALTH_LIMITED, wait_ms);
		} else {
			queue_push(p, a);
		}
		a = next;
	}
	queue_next(h, p);
}

static void on_wake(uv_timer_t *timer)
{
	struct hprov *p = timer->data;
	struct health *h = p->h;
	int64_t now = time_mono_ms();
	if (h->dead || !p->qhead)
		return;
	if (!health_redis_up(h) && limited_provider(p)) {
		queue_serve(h, p, 0, true);
		return;
	}
	credits_expire(p, now);
	/* Unlimited (a 429 held it) or credits left: serve; else take. */
	if (!limited_provider(p) || credits_cover(p, p->qhead->tokens))
		queue_serve(h, p, 0, false);
	else
		queue_next(h, p);
}

static void on_take(void *opaque, redisReply *reply)
{
	struct hprov *p = opaque;
	struct health *h = p->h;
	h->calls--;
	p->taking = false;
	if (h->dead) {
		health_maybe_free(h);
		return;
	}
	int64_t now = time_mono_ms();
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER ||
	    reply->element[1]->type != REDIS_REPLY_INTEGER ||
	    reply->element[2]->type != REDIS_REPLY_INTEGER) {
		if (reply && reply->type == REDIS_REPLY_ERROR)
			log_warn("rate limit script failed", "error", reply->str, NULL);
		queue_serve(h, p, 0, true);
		return;
	}
	int64_t wait = reply->element[2]->integer;
	if (wait > 0) {
		p->dry_until = now + wait;
	} else {
		credits_expire(p, now);
		p->credit_req += reply->element[0]->integer;
		p->credit_tok += reply->element[1]->integer;
		p->credit_expires = now + h->credit_ttl_ms;
		p->dry_until = 0;
	}
	queue_serve(h, p, wait, false);
}

/* Asks the shared buckets for what the queue's head needs, plus a batch
 * sized by recent demand (at most a quarter of the burst). */
static void take_send(struct health *h, struct hprov *p)
{
	struct admit *head = p->qhead;
	while (head && head->cancelled)
		head = head->qnext;
	if (!head)
		return;
	if (!health_redis_up(h)) {
		queue_serve(h, p, 0, true);
		return;
	}
	int64_t need_req = p->rpm ? 1 : 0, need_tok = p->tpm ? head->tokens : 0;
	int64_t more_req = p->last_req > p->demand_req ? p->last_req : p->demand_req;
	int64_t more_tok = p->last_tok > p->demand_tok ? p->last_tok : p->demand_tok;
	if (more_req < (int64_t)p->qlen - 1)
		more_req = (int64_t)p->qlen - 1;
	if (more_req > p->burst_req / 4)
		more_req = p->burst_req / 4;
	if (more_tok > p->burst_tok / 4)
		more_tok = p->burst_tok / 4;
	char vals[7][24];
	const char *argv[8];
	size_t lens[8];
	long long v[7] = {h->opt.rate_period_ms,
	                  p->rpm,
	                  p->tpm,
	                  need_req,
	                  need_tok,
	                  p->rpm ? need_req + more_req : 0,
	                  p->tpm ? need_tok + more_tok : 0};
	argv[0] = p->key;
	lens[0] = p->key_len;
	for (int i = 0; i < 7; i++) {
		snprintf(vals[i], sizeof vals[i], "%lld", v[i]);
		argv[i + 1] = vals[i];
		lens[i + 1] = strlen(vals[i]);
	}
	p->taking = true;
	h->calls++;
	redis_eval(h->r, h->s_rate, on_take, p, 1, 8, argv, lens);
}

enum health_verdict health_rate_admit(struct health *h, int model, int64_t tokens,
                                      health_admit_cb *cb, void *opaque, int64_t *req, int64_t *tok,
                                      int64_t *retry_after_ms)
{
	struct hprov *p = &h->provs[h->cfg->models[model].provider];
	int64_t now = time_mono_ms();
	*req = *tok = 0;
	if (p->throttled_until > now) {
		*retry_after_ms = p->throttled_until - now;
		return HEALTH_LIMITED;
	}
	if (!limited_provider(p))
		return HEALTH_GO;
	credits_expire(p, now);
	demand_note(p, tokens, now);
	if (p->qhead || !credits_cover(p, tokens)) {
		if (p->dry_until > now && !p->taking) {
			*retry_after_ms = p->dry_until - now;
			return HEALTH_LIMITED;
		}
		if (!health_redis_up(h)) {
			*retry_after_ms = REDIS_DOWN_RETRY_MS;
			return HEALTH_LIMITED;
		}
		struct admit *a = health_admission_new(h, model, tokens, cb, opaque);
		queue_push(p, a);
		if (!p->taking)
			take_send(h, p);
		return HEALTH_PENDING;
	}
	*req = p->rpm ? 1 : 0;
	*tok = p->tpm ? tokens : 0;
	credits_take(p, NULL, tokens);
	return HEALTH_GO;
}

enum health_verdict health_wait(struct health *h, int model, int64_t tokens, health_admit_cb *cb,
                                void *opaque, int64_t *retry_after_ms)
{
	struct hprov *p = &h->provs[h->cfg->models[model].provider];
	int64_t now = time_mono_ms();
	*retry_after_ms = 0;
	if (health_circuit(h, model, now) == HEALTH_OPEN)
		return HEALTH_CIRCUIT_OPEN;
	int64_t until = held_until(p, tokens, now);
	if (until == 0 || !h->loop) {
		*retry_after_ms = until > now ? until - now : 1;
		return HEALTH_LIMITED;
	}
	if (!health_redis_up(h)) {
		*retry_after_ms = REDIS_DOWN_RETRY_MS;
		return HEALTH_LIMITED;
	}
	struct admit *a = health_admission_new(h, model, tokens, cb, opaque);
	a->waits = true;
	queue_push(p, a);
	if (!p->taking)
		queue_next(h, p);
	return HEALTH_PENDING;
}
