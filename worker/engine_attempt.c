/* engine_attempt: the attempt cycle, from choosing a model to deciding
 * what the call's outcome means.
 *
 *   task_attempt: the next model of the chain that the job's cap and budget
 *       allow -> health admits it (circuit, rate limit) -> a slot of its
 *       provider (task_call) -> its estimate reserved on the budget
 *       (send_reserve) -> the HTTP call -> settled at its actual cost ->
 *       task_decide: done, the same model again, or the next one (failover).
 *
 * Auto's classifier call (engine_classify.c) takes the same path from
 * task_call on; t->classifying marks what differs after it.
 *
 * A model passed over is remembered with its reason (task_skip): when the
 * chain runs out, the last reason is the job's error, or, out of budget in
 * pause mode, the job parks until the budget has room. */
#include "engine_int.h"

#include "complexity.h"

#include "buf.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "timeutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void task_skip(struct task *t, int model, enum error_code why, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void task_out_of_models(struct task *t);
static int task_admit(struct task *t, int model);
static void on_admitted(void *opaque, enum health_verdict v, int64_t retry_ms);
static void send_reserve(struct task *t);
static void on_reserved(void *opaque, redisReply *reply);
static void on_http_done(void *opaque, const struct http_response *resp);
static void settle_attempt(struct task *t);
void task_settle(struct task *t)
{
	t->settle_tries = 0;
	settle_attempt(t);
}
static void on_settled(void *opaque, redisReply *reply);
static void on_attempt_timer(uv_timer_t *timer);

/* ---------------------------------------------------------------- choosing the model */

/* Starts the next attempt: the model at route.chain[chain_pos] or the first
 * after it that can still be tried, reserved on the budget first. */
void task_attempt(struct task *t)
{
	struct engine *e = t->e;
	const struct config *cfg = e->cfg;
	if (!redis_ready(e->redis)) {
		/* Fail closed: no attempt starts while the spend cannot be recorded. */
		t->next_wait = e->wait_redis;
		e->wait_redis = t;
		return;
	}
	for (; t->chain_pos < t->route.n_chain; t->chain_pos++) {
		int mi = t->route.chain[t->chain_pos];
		const struct model_conf *m = &cfg->models[mi];
		const struct provider_conf *p = &cfg->providers[m->provider];
		int64_t estimate = t->route.entries[mi].estimate_nusd;
		if (t->tried[mi])
			continue;
		if (t->job.max_cost_nusd && t->cost_nusd + estimate > t->job.max_cost_nusd) {
			task_skip(t, mi, ERR_COST_CAP_EXCEEDED,
			          "max_cost_usd: %s's estimate exceeds what is left of the cap",
			          m->name);
			continue;
		}
		if (t->refused_estimate_nusd && estimate >= t->refused_estimate_nusd) {
			task_skip(t, mi, ERR_BUDGET_EXHAUSTED,
			          "budget: %s cannot cover %s's estimate either",
			          t->job.budget_name, m->name);
			continue;
		}
		/* A URL part this provider cannot take by URL goes as its bytes:
		 * fetched now, once for the job, before health, a slot or money
		 * is asked for (engine_fetch.c). */
		if (task_fetch(t, p->ops->url_parts, task_attempt))
			return;
		if (task_batch_wanted(t, mi)) {
			/* A provider batch (engine_batch.c): reserved like a call,
			 * without a slot or health's admission. */
			t->batching = true;
			t->pending_model = mi;
			t->pending_estimate_nusd = estimate;
			task_call(t);
			return;
		}
		if (t->admitted_model != mi) {
			int rc = task_admit(t, mi);
			if (rc < 0)
				return; /* waiting: for Redis, or for the rate limit */
			if (rc == 0)
				continue; /* skipped: circuit open, or limited with others left */
		}
		t->admitted_model = -1;
		char err[256];
		http_request_clear(&t->pending_req);
		if (p->ops->build_request(p, m, &t->job, t->route.entries[mi].max_tokens,
		                          &t->pending_req, err, sizeof err)) {
			/* This format cannot express the job (e.g. only system
			 * messages for Anthropic): skip the model. */
			http_request_clear(&t->pending_req);
			health_release(e->health, mi);
			task_skip(t, mi, ERR_NO_ELIGIBLE_MODEL, "%s cannot take this job: %s",
			          m->name, err);
			continue;
		}
		t->pending_model = mi;
		t->pending_estimate_nusd = estimate;
		task_call(t);
		return;
	}
	task_out_of_models(t);
}

/* Why a model was passed over; when the chain runs out, the last one is the
 * job's error. */
static void task_skip(struct task *t, int model, enum error_code why, const char *fmt, ...)
{
	struct buf b = {0};
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	free(t->skip_message);
	t->skip_message = buf_take(&b);
	t->last_skip = why;
	t->tried[model] = true;
}

/* Drops a job without an outcome: its offset is never stored, so it stays in
 * Kafka for a later run (a drain while out of budget in pause mode). Copies
 * that waited for it go with it. */
static void task_abandon(struct task *t)
{
	struct engine *e = t->e;
	/* It stays on the live list, inert and not counted, until the stop
	 * frees what is left. */
	for (struct task *d = t->dups; d; d = d->next_dup)
		e->in_flight--;
	t->dups = NULL;
	if (t->timer)
		uv_timer_stop(t->timer);
	e->in_flight--;
	engine_in_flight_gauge(e);
	engine_maybe_finish_stop(e);
}

static void on_unpark(uv_timer_t *timer)
{
	struct task *t = timer->data;
	struct engine *e = t->e;
	t->parked = false;
	e->n_parked--;
	if (e->draining) {
		task_abandon(t);
		return;
	}
	/* The budget may have been raised, reset or rolled over: start again
	 * from the top of the chain with the models it refused. */
	t->refused_estimate_nusd = 0;
	memset(t->tried, 0, e->cfg->n_models * sizeof *t->tried);
	t->chain_pos = 0;
	t->last_skip = ERR_NONE;
	engine_flow_check(e);
	task_attempt(t);
}

/* The chain ran out: fail with the last reason, or, when that is the budget
 * and the worker is to pause, wait for money with the job still in flight. */
static void task_out_of_models(struct task *t)
{
	struct engine *e = t->e;
	bool pause = e->cfg->worker.on_budget_exhausted == ON_EXHAUSTED_PAUSE;
	if (t->last_skip == ERR_BUDGET_EXHAUSTED && pause && e->draining) {
		task_abandon(t);
		return;
	}
	if (t->last_skip == ERR_BUDGET_EXHAUSTED && pause) {
		if (!t->parked) {
			t->parked = true;
			if (e->n_parked++ == 0)
				log_warn("budget exhausted: pausing consumption", "budget",
				         t->job.budget_name, NULL);
			engine_flow_check(e);
		}
		task_later(t, 2000, on_unpark);
		return;
	}
	enum error_code code = t->last_skip != ERR_NONE ? t->last_skip : ERR_PROVIDERS_FAILED;
	task_fail(t, code, "%s", t->skip_message ? t->skip_message : "no model left to try");
}

/* ---------------------------------------------------------------- health: circuits and rate limits */

/* Lists a model passed over without a call (circuit open, rate limited). */
static void add_skipped_attempt(struct task *t, int model, enum outcome outcome)
{
	struct attempt_rec *a = task_attempt_new(t);
	if (!a)
		return;
	a->model = model;
	a->outcome = outcome;
	const struct model_conf *m = &t->e->cfg->models[model];
	char name[32];
	output_outcome(name, sizeof name, a);
	metrics_add(t->e->metrics, METRIC_ATTEMPTS_TOTAL,
	            (const char *[]){t->e->cfg->providers[m->provider].name, m->name, name}, 1);
}

/* Is there a model after chain_pos that could be called now? */
static bool other_model_free(struct task *t, int model)
{
	int64_t now = time_mono_ms();
	for (size_t i = t->chain_pos + 1; i < t->route.n_chain; i++) {
		int mi = t->route.chain[i];
		int64_t tokens = router_call_tokens(&t->route, mi);
		if (mi != model && !t->tried[mi] &&
		    health_circuit(t->e->health, mi, now) != HEALTH_OPEN &&
		    !health_limited(t->e->health, mi, tokens, now))
			return true;
	}
	return false;
}

/* Acts on health's verdict for model: 1 go, 0 skipped (the caller moves on),
 * -1 the task waits (a timer calls task_attempt again). */
static int admit_verdict(struct task *t, int model, enum health_verdict v, int64_t retry_ms)
{
	const struct model_conf *m = &t->e->cfg->models[model];
	switch (v) {
	case HEALTH_GO: return 1;
	case HEALTH_CIRCUIT_OPEN:
		add_skipped_attempt(t, model, OUTCOME_CIRCUIT_OPEN);
		task_skip(t, model, ERR_PROVIDERS_FAILED,
		          "every candidate model failed (last: %s, %s)", m->name, "circuit_open");
		return 0;
	case HEALTH_LIMITED: {
		if (other_model_free(t, model)) {
			add_skipped_attempt(t, model, OUTCOME_RATE_LIMITED);
			task_skip(t, model, ERR_PROVIDERS_FAILED,
			          "every candidate model failed (last: %s, %s)", m->name,
			          "rate_limited");
			return 0;
		}
		/* The only way left: the job waits for the limit (SPEC §6), in
		 * the provider's queue. */
		int64_t tokens = router_call_tokens(&t->route, model);
		v = health_wait(t->e->health, model, tokens, on_admitted, t, &retry_ms);
		if (v == HEALTH_PENDING) {
			t->admit_pending = true;
			return -1;
		}
		if (v == HEALTH_CIRCUIT_OPEN)
			return admit_verdict(t, model, v, 0);
		task_later(t, retry_ms > 0 ? (retry_ms < 5000 ? retry_ms : 5000) : 100,
		           on_attempt_timer);
		return -1;
	}
	case HEALTH_PENDING: break;
	}
	return -1;
}

static void on_admitted(void *opaque, enum health_verdict v, int64_t retry_ms)
{
	struct task *t = opaque;
	t->admit_pending = false;
	int model = t->route.chain[t->chain_pos];
	int rc = admit_verdict(t, model, v, retry_ms);
	if (rc == 1)
		t->admitted_model = model;
	if (rc >= 0)
		task_attempt(t);
}

/* Asks health whether model may be called now. */
static int task_admit(struct task *t, int model)
{
	int64_t tokens = router_call_tokens(&t->route, model);
	int64_t retry_ms = 0;
	enum health_verdict v =
	        health_admit(t->e->health, model, tokens, on_admitted, t, &retry_ms);
	if (v == HEALTH_PENDING) {
		t->admit_pending = true;
		return -1;
	}
	return admit_verdict(t, model, v, retry_ms);
}

/* ---------------------------------------------------------------- provider slots */

/* A call reserves its budget only once it can go out at once: curl never
 * times out a transfer waiting for a connection, and a lease should cover a
 * call that is running, not one in a queue. So calls wait here, per provider,
 * for one of its slots. */
void task_call(struct task *t)
{
	struct engine *e = t->e;
	t->reserve_seq++;
	if (t->batching) {
		send_reserve(t);
		return;
	}
	int p = e->cfg->models[t->pending_model].provider;
	if (e->calls[p] < http_pool_capacity(e->pools[p]) && !e->slot_head[p]) {
		e->calls[p]++;
		send_reserve(t);
		return;
	}
	t->next_slot = NULL;
	if (e->slot_tail[p])
		e->slot_tail[p]->next_slot = t;
	else
		e->slot_head[p] = t;
	e->slot_tail[p] = t;
}

/* A call that waited for a slot, which health now keeps off its model
 * (health_held_off: its circuit opened meanwhile, or the cold model's wave
 * it waited behind is failing): it does not go out, and the job moves on
 * as past an open circuit. */
static void task_held_off(struct task *t)
{
	int mi = t->pending_model;
	http_request_clear(&t->pending_req);
	t->pending_model = -1;
	health_release(t->e->health, mi);
	if (t->classifying) {
		task_classifier_end(t, false);
		return;
	}
	admit_verdict(t, mi, HEALTH_CIRCUIT_OPEN, 0);
	task_attempt(t);
}

/* A call of provider p is over (or never went out): the next ones may go,
 * as many as the pool has room for (it grows when HTTP/2 is found). */
static void slot_release(struct engine *e, int p)
{
	e->calls[p]--;
	while (e->slot_head[p] && !e->closing && e->calls[p] < http_pool_capacity(e->pools[p])) {
		struct task *t = e->slot_head[p];
		e->slot_head[p] = t->next_slot;
		if (!e->slot_head[p])
			e->slot_tail[p] = NULL;
		t->next_slot = NULL;
		if (health_held_off(e->health, t->pending_model, time_mono_ms())) {
			task_held_off(t);
			continue;
		}
		e->calls[p]++;
		send_reserve(t);
	}
}

/* ---------------------------------------------------------------- reserving the estimate */

/* The token of t's current reservation, the same on every retry of it (a
 * lost reply): "<worker>:<serial>:<reserve_seq>". Made when sent, not kept. */
static void reserve_token(const struct task *t, char *out, size_t out_size)
{
	snprintf(out, out_size, "%s:%llu:%d", t->e->worker_id, (unsigned long long)t->serial,
	         t->reserve_seq);
}

static void send_reserve(struct task *t)
{
	struct engine *e = t->e;
	char token[256];
	reserve_token(t, token, sizeof token);
	int mi = t->pending_model;
	const struct model_conf *m = &e->cfg->models[mi];
	const struct provider_conf *p = &e->cfg->providers[m->provider];
	struct ledger_reserve_req req = {
	        .budget = t->job.budget_name,
	        .job_id = t->id,
	        .estimate_nusd = t->pending_estimate_nusd,
	        /* The attempt's timeout, plus room for settling it afterwards. */
	        .lease_ms = p->timeout_ms + 15000,
	        .token = token,
	        .model = m->name,
	        .provider = p->name,
	        .lookup = !t->looked_up,
	        .classifier = t->classifying,
	};
	ledger_reserve(e->ledger, &req, on_reserved, t);
}

/* A job that waited this many times (about 20 s) for other reservations is
 * logged, and again every as many. */
#define WAIT_WARN_EVERY 25

static void on_reserve_retry(uv_timer_t *timer)
{
	struct task *t = timer->data;
	if (t->pending_model < 0)
		return;
	if (!redis_ready(t->e->redis)) {
		task_later(t, 200, on_reserve_retry);
		return;
	}
	send_reserve(t);
}

/* The pending call does not go out: its request, its slot and any probe
 * or cold model's turn health gave it go back. */
static void pending_drop(struct task *t)
{
	struct engine *e = t->e;
	int mi = t->pending_model;
	http_request_clear(&t->pending_req);
	t->pending_model = -1;
	if (t->batching) {
		t->batching = false; /* it held no slot and no turn */
		return;
	}
	slot_release(e, e->cfg->models[mi].provider);
	health_release(e->health, mi);
}

static void on_reserved(void *opaque, redisReply *reply)
{
	struct task *t = opaque;
	struct engine *e = t->e;
	if (e->closing)
		return;
	struct ledger_reservation res;
	char err[256];
	int rc = ledger_reserve_result(reply, &res, err, sizeof err);
	if (rc == LEDGER_UNREACHABLE) {
		/* The script may have run: ask again with the same token. */
		task_later(t, 200, on_reserve_retry);
		return;
	}
	int mi = t->pending_model;
	const struct model_conf *m = &e->cfg->models[mi];
	if (rc != LEDGER_OK) {
		log_error("reservation failed", "id", t->id, "error", err, NULL);
		task_later(t, 1000, on_reserve_retry);
		return;
	}
	if (res.status == LEDGER_JOB_DONE || res.status == LEDGER_JOB_PENDING ||
	    res.status == LEDGER_JOB_BATCHED || res.status == LEDGER_JOB_SUBMITTING) {
		/* Nothing was reserved: the call does not go out. */
		pending_drop(t);
		t->classifying = false;
		task_found(t,
		           res.status == LEDGER_JOB_DONE      ? JOB_DONE
		           : res.status == LEDGER_JOB_PENDING ? JOB_PENDING
		           : res.status == LEDGER_JOB_BATCHED ? JOB_BATCHED
		                                              : JOB_SUBMITTING,
		           res.outputs, res.outputs_len);
		return;
	}
	if (!t->looked_up)
		task_keep_prior_costs(t, res.costs);
	t->looked_up = true;
	if (t->classifying && (res.status == LEDGER_WAIT || res.status == LEDGER_EXHAUSTED)) {
		/* The classifier is worth no wait and no refusal: the heuristic's
		 * score stands, and the job's own attempts ask the budget. */
		pending_drop(t);
		task_classifier_end(t, false);
		return;
	}
	switch (res.status) {
	case LEDGER_RESERVED: t->waits = 0; break;
	case LEDGER_WAIT:
		/* Only other jobs' reservations stand in the way: they settle
		 * below their estimates, so wait for them (SPEC §7). The slot is
		 * kept: the call goes out as soon as the money is there. */
		t->reserve_seq++;
		/* Back off (50 ms doubling to 800 ms, with jitter) so that a crowd
		 * of waiting jobs does not flood Redis. */
		int shift = t->waits < 4 ? t->waits : 4;
		t->waits++;
		if (t->waits % WAIT_WARN_EVERY == 0) {
			/* Reservations that never end would hold it for good: say so. */
			char waits[16], spent[32], reserved[32], limit[32];
			snprintf(waits, sizeof waits, "%d", t->waits);
			money_format_usd(res.spent_nusd, spent, sizeof spent);
			money_format_usd(res.reserved_nusd, reserved, sizeof reserved);
			money_format_usd(res.limit_nusd, limit, sizeof limit);
			log_warn("job still waiting for other reservations on its budget", "id",
			         t->id, "budget", res.budget, "waits", waits, "spent_usd", spent,
			         "reserved_usd", reserved, "limit_usd", limit, NULL);
		}
		task_later(t, (50 << shift) + (int64_t)(t->serial % 50), on_reserve_retry);
		return;
	case LEDGER_UNKNOWN_BUDGET:
		/* Redis lost the config's budgets; the ledger writes them again. */
		task_later(t, 500, on_reserve_retry);
		return;
	case LEDGER_JOB_DONE:
	case LEDGER_JOB_PENDING:
	case LEDGER_JOB_BATCHED:
	case LEDGER_JOB_SUBMITTING: break; /* above */
	case LEDGER_EXHAUSTED: {
		char spent[32], limit[32], est[32];
		int64_t estimate = t->pending_estimate_nusd;
		money_format_usd(res.spent_nusd, spent, sizeof spent);
		money_format_usd(res.limit_nusd, limit, sizeof limit);
		money_format_usd(estimate, est, sizeof est);
		task_skip(t, mi, ERR_BUDGET_EXHAUSTED,
		          "budget: %s cannot cover %s's estimate (spent $%s + estimate $%s > limit "
		          "$%s)",
		          res.budget ? res.budget : "?", m->name, spent, est, limit);
		if (!t->refused_estimate_nusd || estimate < t->refused_estimate_nusd)
			t->refused_estimate_nusd = estimate;
		pending_drop(t);
		task_attempt(t); /* a cheaper model may still fit */
		return;
	}
	}
	struct attempt_rec *a = task_attempt_new(t);
	if (!a) {
		/* Skipped models fill the record too; give the lease back. */
		ledger_release(e->ledger, t->id, res.attempt, NULL, NULL);
		pending_drop(t);
		task_fail(t, ERR_PROVIDERS_FAILED, "too many attempts");
		return;
	}
	a->number = res.attempt;
	a->model = mi;
	t->call_estimate_nusd = t->pending_estimate_nusd;
	if (!t->classifying)
		t->n_calls++; /* worker.max_attempts counts the chain's calls, not attempt 0 */
	if (t->batching) {
		t->batching = false;
		t->pending_model = -1;
		a->batch = true;
		task_batch_join(t);
		return;
	}
	struct http_request req = t->pending_req;
	memset(&t->pending_req, 0, sizeof t->pending_req);
	t->pending_model = -1;
	health_call_begin(e->health, mi, &t->call);
	http_pool_start(e->pools[m->provider], &req, e->cfg->providers[m->provider].timeout_ms,
	                on_http_done, t);
}

/* ---------------------------------------------------------------- the call */

enum outcome engine_outcome_of(const struct http_response *resp, enum response_class cls)
{
	switch (resp->error) {
	case HTTP_OK:
		if (cls == RESPONSE_OK)
			return OUTCOME_OK;
		if (cls == RESPONSE_INVALID)
			return OUTCOME_INVALID_RESPONSE;
		return OUTCOME_HTTP;
	case HTTP_TIMEOUT: return OUTCOME_TIMEOUT;
	case HTTP_CONNECT_ERROR: return OUTCOME_CONNECT_ERROR;
	case HTTP_TOO_LARGE:
	case HTTP_OTHER_ERROR: break;
	}
	return OUTCOME_INVALID_RESPONSE;
}

static void on_http_done(void *opaque, const struct http_response *resp)
{
	struct task *t = opaque;
	struct engine *e = t->e;
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	const struct model_conf *m = &e->cfg->models[a->model];
	const struct provider *ops = e->cfg->providers[m->provider].ops;
	health_call_end(e->health, &t->call);

	completion_clear(&t->completion);
	t->cls = RESPONSE_RETRYABLE;
	if (resp->error == HTTP_OK)
		t->cls = ops->parse_response(m, resp->status, resp->body, resp->body_len,
		                             &t->completion);
	a->outcome = engine_outcome_of(resp, t->cls);
	a->http_status = resp->error == HTTP_OK ? resp->status : 0;
	a->latency_ms = resp->latency_ms;
	t->retry_after_ms = resp->retry_after_ms;
	/* The call's limits: its route entry's, or the classifier's. */
	int64_t est_input = t->classifying ? t->pending_tokens - COMPLEXITY_CLASSIFIER_MAX_TOKENS
	                                   : t->route.entries[a->model].est_input;
	int64_t out_limit = t->classifying ? COMPLEXITY_CLASSIFIER_MAX_TOKENS
	                                   : t->route.entries[a->model].output_tokens;
	task_judge_usage(t, a, m, est_input, out_limit);
	task_record_health(t, a, m);
	/* After the record: the calls waiting for this slot go knowing how this
	 * one ended (health_held_off). */
	slot_release(e, m->provider);
	if (!t->classifying)
		task_judge_output(t, a);
	const char *provider = e->cfg->providers[m->provider].name;
	char outcome[32];
	output_outcome(outcome, sizeof outcome, a);
	metrics_add(e->metrics, METRIC_ATTEMPTS_TOTAL, (const char *[]){provider, m->name, outcome},
	            1);
	metrics_observe(e->metrics, METRIC_PROVIDER_LATENCY, (const char *[]){provider, m->name},
	                a->latency_ms);
	if (t->completion.has_usage) {
		a->billed = true;
		a->usage = t->completion.usage;
		a->cost_nusd = a->estimated ? t->call_estimate_nusd
		                            : money_cost_nusd(&m->price, &a->usage);
		t->cost_nusd += a->cost_nusd;
		metrics_add(e->metrics, METRIC_SPEND_USD_TOTAL,
		            (const char *[]){t->job.budget_name, provider, m->name}, a->cost_nusd);
		metrics_add(e->metrics, METRIC_COST_RECORDS_TOTAL, (const char *[]){"false"}, 1);
		if (a->outcome == OUTCOME_OK && !t->classifying)
			task_build_outputs(t);
	}
	/* Every call settles, an unbilled one at 0: that frees its reservation
	 * now, rather than leaving it for a reaper to charge at its estimate. */
	t->settle_tries = 0;
	settle_attempt(t);
}

/* What a call's outcome says of the model's health. */
void task_record_health(struct task *t, const struct attempt_rec *a, const struct model_conf *m)
{
	struct health *h = t->e->health;
	int64_t tokens = a->usage.input_tokens + a->usage.output_tokens;
	if (a->outcome == OUTCOME_OK) {
		health_record(h, a->model, true, a->latency_ms, tokens);
	} else if (t->cls == RESPONSE_AUTH) {
		health_open_provider(h, m->provider);
		health_release(h, a->model);
	} else if (a->http_status == 429 || t->completion.throttled) {
		health_throttle(h, m->provider, t->retry_after_ms);
		health_release(h, a->model);
	} else if (t->cls == RESPONSE_REJECTED || t->cls == RESPONSE_CONTEXT_OVERFLOW) {
		health_release(h, a->model); /* the job's fault, not the model's */
	} else {
		health_record(h, a->model, false, a->latency_ms, tokens);
	}
}

/* ---------------------------------------------------------------- settling and deciding */

/* Settles the last attempt (its actual cost, 0 when unbilled, which frees its
 * reservation); the one that answered carries the job's outputs. */
static void settle_attempt(struct task *t)
{
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	struct buf blob = {0};
	struct buf record = {0};
	bool answered = a->outcome == OUTCOME_OK && !t->classifying;
	if (answered)
		task_outputs_blob(t, &blob);
	else if (a->billed)
		/* Kept in Redis until the job's outputs are out: a run after a
		 * crash publishes it (task_keep_prior_costs). */
		output_cost(&record, t->e->cfg, t->id, a, t->job.budget_name, false, time_now_ms());
	ledger_settle_budget(t->e->ledger, t->job.budget_name, t->id, a->number, a->cost_nusd,
	                     answered ? &blob : NULL, a->billed ? &record : NULL, on_settled, t);
	buf_free(&blob);
	buf_free(&record);
}

static void on_settle_retry(uv_timer_t *timer)
{
	settle_attempt(timer->data);
}

/* A settle the ledger keeps refusing (its script said no, the same way each
 * time): retrying cannot help, and the job must not wait for ever. The
 * attempt's lease stays; when it expires the reaper charges its estimate
 * and publishes that cost record ("estimated": true), so spend is still
 * never under-counted and the attempt gets one record. The job cannot keep
 * its outputs in Redis either: an answer is given up (the job fails), any
 * other outcome moves on down the chain. */
static void settle_refused(struct task *t, struct attempt_rec *a, const char *err)
{
	log_error("the ledger refused to settle an attempt: its lease will be reaped at the "
	          "estimate",
	          "id", t->id, "error", err, NULL);
	t->cost_nusd += t->call_estimate_nusd - a->cost_nusd;
	a->cost_nusd = t->call_estimate_nusd;
	a->billed = false;
	a->estimated = true;
	task_drop_outputs(t);
	if (t->classifying) {
		task_classifier_end(t, false);
		return;
	}
	if (a->outcome == OUTCOME_OK) {
		task_fail(t, ERR_PROVIDERS_FAILED,
		          "the ledger refused to record the answer's cost: %s", err);
		return;
	}
	task_decide(t);
}

static void on_settled(void *opaque, redisReply *reply)
{
	struct task *t = opaque;
	if (t->e->closing)
		return;
	struct ledger_settlement st;
	char err[256];
	int rc = ledger_settle_result(reply, &st, err, sizeof err);
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	if (rc != LEDGER_OK && (rc == LEDGER_UNREACHABLE || ledger_error_transient(err) ||
	                        t->settle_tries < SETTLE_REFUSALS_MAX)) {
		/* Fail closed: the spend must be recorded before anything else
		 * happens to the job. Settling is idempotent, so retry while
		 * Redis cannot answer (or answers that it cannot yet). */
		if (t->settle_tries++ % 50 == 0)
			log_warn("settle pending", "id", t->id, "error",
			         rc == LEDGER_UNREACHABLE ? "redis unreachable" : err, NULL);
		task_later(t, t->settle_tries < 10 ? 100 : 500, on_settle_retry);
		return;
	}
	if (rc != LEDGER_OK) {
		settle_refused(t, a, err);
		return;
	}
	if (st.how == LEDGER_CHARGED_ESTIMATE) {
		/* The lease expired first and a reaper charged (and reported) its
		 * estimate: that is what this attempt cost; publish no second record. */
		t->cost_nusd += st.charged_nusd - a->cost_nusd;
		a->cost_nusd = st.charged_nusd;
		a->billed = false;
		task_drop_outputs(t);
	}
	if (t->bsub)
		task_batch_settled(t);
	if (t->classifying)
		task_classifier_end(t, true);
	else
		task_decide(t);
}

static void on_attempt_timer(uv_timer_t *timer)
{
	task_attempt(timer->data);
}

/* After an attempt (and its settlement): done, or where to go next. */
void task_decide(struct task *t)
{
	struct engine *e = t->e;
	const struct config *cfg = e->cfg;
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	const struct model_conf *m = &cfg->models[a->model];

	if (a->outcome == OUTCOME_OK) {
		task_finish(t);
		return;
	}
	if (t->cls == RESPONSE_REJECTED) {
		task_fail(t, ERR_PROVIDER_REJECTED, "%s (%s) refused the request with HTTP %ld",
		          m->name, cfg->providers[m->provider].name, a->http_status);
		return;
	}
	if (a->batch && task_batch_decide(t, a))
		return;
	if ((int)t->n_calls >= cfg->worker.max_attempts) {
		task_fail(t, ERR_PROVIDERS_FAILED, "%zu attempts failed (worker.max_attempts)",
		          t->n_calls);
		return;
	}
	bool retryable = t->cls == RESPONSE_RETRYABLE || t->cls == RESPONSE_INVALID;
	if (retryable && t->same_retries < cfg->worker.retry_same) {
		t->same_retries++;
		int64_t delay = t->retry_after_ms > 0 ? t->retry_after_ms : 0;
		if (delay > cfg->worker.max_retry_after_ms)
			delay = cfg->worker.max_retry_after_ms;
		task_later(t, delay, on_attempt_timer);
		return;
	}
	/* Move along the chain; after a context overflow, only to a larger context. */
	char outcome[32];
	output_outcome(outcome, sizeof outcome, a);
	task_skip(t, a->model, ERR_PROVIDERS_FAILED, "every candidate model failed (last: %s, %s)",
	          m->name, outcome);
	t->same_retries = 0;
	if (t->cls == RESPONSE_CONTEXT_OVERFLOW) {
		for (size_t i = 0; i < t->route.n_chain; i++) {
			int next = t->route.chain[i];
			if (cfg->models[next].context_tokens <= m->context_tokens)
				t->tried[next] = true;
		}
	}
	task_attempt(t);
}

void engine_on_redis_state(void *opaque, bool ready)
{
	struct engine *e = opaque;
	if (!ready || e->closing)
		return;
	struct task *w = e->wait_redis;
	e->wait_redis = NULL;
	while (w) {
		struct task *next = w->next_wait;
		w->next_wait = NULL;
		task_attempt(w);
		w = next;
	}
}
