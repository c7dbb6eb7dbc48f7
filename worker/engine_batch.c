/* engine_batch: batch mode (SPEC §14): which jobs go to provider batches,
 * their groups, and a submission's way from prepare to record.
 *
 * The state machine of a submission (token T), with where a worker may die
 * and what recovers each step. Redis keys are in ledger.h ("batches").
 *
 *   join      a job reserves its estimate at the batch price, with a lease
 *             like a sync call's, and joins its model's group. A crash here
 *             leaves a lease that the reaper charges (the job was never
 *             committed: Kafka runs it again).
 *   prepare   batch_prepare.lua: bsub:T "submitting" (due for the orphan
 *             search after its lease), every job "submitting" (a Kafka copy
 *             waits), every lease marked with T (the reaper skips it).
 *             Stop: batch_before_submit. Recovery: the orphan search finds
 *             no batch, abandons T (leases released at zero, jobs cleared),
 *             and the Kafka copies run the jobs anew.
 *   submit    the provider's steps (OpenAI: upload, create). Stop:
 *             batch_after_accept (accepted, not recorded). Recovery: the
 *             orphan search finds the batch by its token and records it
 *             (adopts it): the same as record below, by another worker.
 *   record    batch_record.lua: T "recorded" with its batch id, jobs
 *             "batched" (their offsets may be committed: the task leaves,
 *             holding no slot), leases extended to complete_by + 1 h.
 *             Stop: batch_after_record. Recovery: the Kafka copies find
 *             the jobs "batched" and are skipped; T falls due and another
 *             worker claims it (batch_claim.lua) and collects it.
 *   poll      engine_collect.c: the holder renews its claim every poll; a
 *             batch not ended fallback_lead_s before complete_by is
 *             canceled. Recovery of a dead holder: the claim falls due.
 *   collect   results streamed, each request's job run on from Redis: an
 *             answer settled once per (job, attempt) with its outputs kept
 *             (stop: batch_mid_collect), produced (stop: batch_mid_produce:
 *             produced, not marked done); a failed request released at zero
 *             and its job taken on (the next batch of the model, or sync).
 *             Recovery: the next holder reads the results again: a job done
 *             or finished (pending: re-sent) is not bought twice; a settle
 *             is a repeat. T is finished (batch_finish.lua) only when every
 *             request's job is over or in another recorded submission.
 *
 * At most one live batch per job: a job is "submitting" from prepare to
 * record or abandon, and no copy of it runs meanwhile; a collector's job
 * that goes into a next submission keeps its old one (sub) until the new
 * one is recorded (batch_abandon.lua gives it back otherwise). */
#include "engine_int.h"

#include "buf.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "testhook.h"
#include "timeutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long, once draining, a group waits for the jobs whose reservations
 * were out when the drain began (task_batch_join). */
#define DRAIN_JOIN_MS 20

static void group_submit(struct engine *e, int model);
static void sub_prepare(struct batch_sub *s);
static void sub_submit_step(struct batch_sub *s);

/* ---------------------------------------------------------------- the test stops */

void batch_stop_at(const char *step)
{
	static const char *want;
	static bool read;
	if (!read) {
		read = true;
		want = testhook_getenv("PROMPTYARD_TEST_STOP_AT");
	}
	if (want && strcmp(want, step) == 0) {
		log_warn("test stop: exiting at a step of batch mode", "step", step, NULL);
		_exit(3);
	}
}

/* ---------------------------------------------------------------- which jobs */

bool engine_batch_mode(const struct engine *e, const struct job *job)
{
	const struct config *cfg = e->cfg;
	switch (job->mode) {
	case MODE_SYNC: return false;
	case MODE_BATCH: break;
	case MODE_AUTO:
		if (job->complete_by_ms - time_now_ms() < cfg->batch.min_lead_s * 1000)
			return false;
		break;
	}
	for (size_t i = 0; i < cfg->n_providers; i++)
		if (cfg->providers[i].batch && cfg->providers[i].ops->batch)
			return true;
	return false;
}

/* Is there time for a batch before complete_by: the wait for the group, a
 * poll, and the fallback's lead before the deadline? */
static bool batch_time_allows(const struct engine *e, const struct task *t)
{
	const struct config *cfg = e->cfg;
	int64_t need = cfg->batch.fallback_lead_s * 1000 + cfg->batch.max_wait_ms +
	               cfg->batch.poll_interval_s * 1000;
	return t->job.complete_by_ms - time_now_ms() > need;
}

bool task_batch_wanted(const struct task *t, int model)
{
	const struct engine *e = t->e;
	const struct model_conf *m = &e->cfg->models[model];
	const struct provider_conf *p = &e->cfg->providers[m->provider];
	return t->batch_mode && p->batch && p->ops->batch && m->has_batch_price &&
	       !e->batcher->draining && batch_time_allows(e, t);
}

/* t leaves batch mode: routed again at sync prices, from the top of its
 * chain (the models it tried stay tried). */
static void task_to_sync(struct task *t)
{
	t->batch_mode = false;
	task_route(t);
	t->chain_pos = 0;
}

bool task_batch_decide(struct task *t, struct attempt_rec *a)
{
	struct engine *e = t->e;
	if (a->outcome == OUTCOME_OK || t->cls == RESPONSE_REJECTED || t->cls == RESPONSE_AUTH ||
	    t->cls == RESPONSE_CONTEXT_OVERFLOW)
		return false;
	if ((int)t->n_calls >= e->cfg->worker.max_attempts)
		return false;
	bool canceled = a->outcome == OUTCOME_BATCH_CANCELED;
	if (t->batch_mode && !canceled && task_batch_wanted(t, a->model)) {
		/* The same model's next batch: not a retry_same, not a failover. */
		task_attempt(t);
		return true;
	}
	task_to_sync(t);
	if (canceled) {
		/* Canceled for the deadline: the model did nothing wrong. */
		task_attempt(t);
		return true;
	}
	return false; /* §6's failover, sync */
}

/* ---------------------------------------------------------------- submissions */

int64_t batch_claim_lease_ms(const struct engine *e)
{
	return 2 * e->cfg->batch.poll_interval_s * 1000 + 10000;
}

struct batch_sub *batch_sub_new(struct engine *e)
{
	struct batcher *b = e->batcher;
	struct batch_sub *s = xcalloc(1, sizeof *s);
	s->e = e;
	s->model = s->provider = -1;
	s->next = b->subs;
	if (b->subs)
		b->subs->prev = s;
	b->subs = s;
	return s;
}

void batch_sub_free(struct batch_sub *s)
{
	struct batcher *b = s->e->batcher;
	if (s->touches > 0 && !s->e->closing) {
		/* A renewal's reply is on its way (the claim is renewed on a
		 * timer while collecting, so one may follow batch_finish.lua):
		 * it frees s. Nothing else runs on s meanwhile. */
		s->free_pending = true;
		if (s->timer)
			uv_timer_stop(s->timer);
		if (s->renew)
			uv_timer_stop(s->renew);
		if (s->jobs_timer)
			uv_timer_stop(s->jobs_timer);
		return;
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		b->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->timer)
		uv_close((uv_handle_t *)s->timer, engine_timer_closed);
	if (s->renew)
		uv_close((uv_handle_t *)s->renew, engine_timer_closed);
	if (s->jobs_timer)
		uv_close((uv_handle_t *)s->jobs_timer, engine_timer_closed);
	provider_batch_submission_clear(&s->psub);
	free(s->tasks);
	free(s->prev_id);
	free(s->batch_id);
	buf_free(&s->status);
	buf_free(&s->line);
	free(s->req_flags);
	batch_waits_clear(s->wait + s->wait_head, s->n_wait);
	free(s->wait);
	batch_waits_clear(s->asked, s->n_asked);
	free(s->asked);
	for (size_t i = 0; i < s->n_results; i++)
		free(s->results[i]);
	free(s);
}

void batch_sub_later(struct batch_sub *s, int64_t delay_ms, uv_timer_cb fn)
{
	if (!s->timer) {
		s->timer = xcalloc(1, sizeof *s->timer);
		uv_timer_init(s->e->loop, s->timer);
		s->timer->data = s;
	}
	uv_timer_start(s->timer, fn, (uint64_t)(delay_ms > 0 ? delay_ms : 0), 0);
}

static void make_token(char *out)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[PROVIDER_BATCH_TOKEN_LEN];
	if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0) {
		uint64_t x = (uint64_t)time_now_ms() ^ ((uint64_t)getpid() << 32);
		for (size_t i = 0; i < sizeof rnd; i++) {
			x = x * 6364136223846793005u + 1442695040888963407u;
			rnd[i] = (unsigned char)(x >> 56);
		}
	}
	for (size_t i = 0; i < PROVIDER_BATCH_TOKEN_LEN; i++)
		out[i] = alphabet[rnd[i] % 36];
	out[PROVIDER_BATCH_TOKEN_LEN] = '\0';
}

/* ---------------------------------------------------------------- groups */

/* A group's timer: its handle first (engine_timer_closed frees it). */
struct group_timer {
	uv_timer_t handle;
	struct engine *e;
	int model;
};

static void on_group_timer(uv_timer_t *timer)
{
	struct group_timer *gt = (struct group_timer *)timer;
	group_submit(gt->e, gt->model);
}

static uv_timer_t *group_timer_new(struct engine *e, int model)
{
	struct group_timer *gt = xcalloc(1, sizeof *gt);
	uv_timer_init(e->loop, &gt->handle);
	gt->e = e;
	gt->model = model;
	return &gt->handle;
}

static void group_open(struct engine *e, int model)
{
	struct batch_group *g = &e->batcher->groups[model];
	const struct model_conf *m = &e->cfg->models[model];
	char token[PROVIDER_BATCH_TOKEN_LEN + 1];
	make_token(token);
	provider_batch_submission_init(&g->psub, e->cfg->providers[m->provider].ops, m, token);
	if ((size_t)e->cfg->batch.max_requests < g->psub.max_requests)
		g->psub.max_requests = (size_t)e->cfg->batch.max_requests;
	g->open = true;
}

/* The reservation of t's last attempt goes back: the job cannot be in a
 * batch of this model after all. */
static void task_batch_unjoin(struct task *t, const char *why)
{
	struct engine *e = t->e;
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	log_warn("a job cannot go in a batch of its model", "id", t->id, "model",
	         e->cfg->models[a->model].name, "error", why, NULL);
	ledger_release(e->ledger, t->id, a->number, NULL, NULL);
	t->tried[a->model] = true;
	t->n_attempts--;
	t->n_calls--;
	task_to_sync(t);
	task_attempt(t);
}

void task_batch_join(struct task *t)
{
	struct engine *e = t->e;
	int model = t->attempts[t->n_attempts - 1].model;
	const struct model_conf *m = &e->cfg->models[model];
	const struct provider_conf *p = &e->cfg->providers[m->provider];
	struct batch_group *g = &e->batcher->groups[model];
	char err[256];
	for (int tries = 0; tries < 2; tries++) {
		if (!g->open)
			group_open(e, model);
		int rc = provider_batch_add(&g->psub, p, &t->job,
		                            t->route.entries[model].max_tokens, err, sizeof err);
		if (rc == PROVIDER_BATCH_FULL) {
			group_submit(e, model);
			continue;
		}
		if (rc != 0)
			break;
		if (g->n == g->cap) {
			g->cap = g->cap ? 2 * g->cap : 16;
			g->tasks = xrealloc(g->tasks, g->cap * sizeof *g->tasks);
		}
		g->tasks[g->n++] = t;
		if (g->n == 1) {
			/* Draining, the jobs whose reservations were out when the
			 * drain began still join: they go together a moment later,
			 * not each in a batch of its own. */
			uint64_t wait = (uint64_t)e->cfg->batch.max_wait_ms;
			if (e->batcher->draining && wait > DRAIN_JOIN_MS)
				wait = DRAIN_JOIN_MS;
			if (!g->timer)
				g->timer = group_timer_new(e, model);
			uv_timer_start(g->timer, on_group_timer, wait, 0);
		}
		if (g->n >= g->psub.max_requests)
			group_submit(e, model);
		return;
	}
	task_batch_unjoin(t, err[0] ? err : "the submission cannot take it");
}

/* The group's jobs become a submission: prepared, submitted, recorded. */
static void group_submit(struct engine *e, int model)
{
	struct batch_group *g = &e->batcher->groups[model];
	if (g->timer)
		uv_timer_stop(g->timer);
	if (!g->open || g->n == 0)
		return;
	struct batch_sub *s = batch_sub_new(e);
	s->model = model;
	s->provider = e->cfg->models[model].provider;
	s->psub = g->psub;
	memcpy(s->token, g->psub.token, sizeof s->token);
	s->tasks = g->tasks;
	s->n_tasks = s->n = g->n;
	s->complete_by_ms = INT64_MAX;
	for (size_t i = 0; i < s->n; i++)
		if (s->tasks[i]->job.complete_by_ms < s->complete_by_ms)
			s->complete_by_ms = s->tasks[i]->job.complete_by_ms;
	memset(&g->psub, 0, sizeof g->psub);
	g->open = false;
	g->tasks = NULL;
	g->n = g->cap = 0;
	sub_prepare(s);
}

/* ---------------------------------------------------------------- prepare */

void batch_history_encode(const struct task *t, struct buf *out)
{
	const struct config *cfg = t->e->cfg;
	for (size_t i = 0; i + 1 < t->n_attempts; i++) {
		const struct attempt_rec *a = &t->attempts[i];
		buf_printf(out, "%d %s %d %ld %lld %d %lld %lld %lld %lld %lld %lld %d %d %s\n",
		           a->number, cfg->models[a->model].name, (int)a->outcome, a->http_status,
		           (long long)a->latency_ms, a->billed, (long long)a->cost_nusd,
		           (long long)a->usage.input_tokens,
		           (long long)a->usage.cached_input_tokens,
		           (long long)a->usage.cache_write_tokens,
		           (long long)a->usage.output_tokens, (long long)a->usage.reasoning_tokens,
		           a->estimated, a->batch, a->batch_id ? a->batch_id : "-");
	}
}

void batch_history_decode(struct task *t, const char *text)
{
	const struct config *cfg = t->e->cfg;
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		char model[256], batch_id[512];
		int number, outcome, billed, estimated, batch;
		long status;
		long long latency, cost, in, cached, cw, out, reasoning;
		if (sscanf(p, "%d %255s %d %ld %lld %d %lld %lld %lld %lld %lld %lld %d %d %511s",
		           &number, model, &outcome, &status, &latency, &billed, &cost, &in,
		           &cached, &cw, &out, &reasoning, &estimated, &batch, batch_id) == 15) {
			int mi = config_model_index(cfg, model);
			struct attempt_rec *a = mi >= 0 ? task_attempt_new(t) : NULL;
			if (a) {
				a->number = number;
				a->model = mi;
				a->outcome = (enum outcome)outcome;
				a->http_status = status;
				a->latency_ms = latency;
				a->billed = billed;
				a->cost_nusd = cost;
				a->usage = (struct usage){in, cached, cw, out, reasoning};
				a->estimated = estimated;
				a->batch = batch;
				a->batch_id = strcmp(batch_id, "-") ? xstrdup(batch_id) : NULL;
				t->cost_nusd += cost;
				if (number > 0)
					t->n_calls++;
			}
		}
		p = nl ? nl + 1 : NULL;
	}
}

/* Kafka headers as "name\thex(value)\n" lines (values may be any bytes). */
static void headers_encode(const rd_kafka_headers_t *h, struct buf *out)
{
	const char *name;
	const void *value;
	size_t len;
	for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &value, &len) == 0; i++) {
		buf_puts(out, name);
		buf_puts(out, "\t");
		for (size_t k = 0; k < len; k++)
			buf_printf(out, "%02x", ((const unsigned char *)value)[k]);
		buf_puts(out, "\n");
	}
}

static void on_prepare_retry(uv_timer_t *timer)
{
	sub_prepare(timer->data);
}

static void on_prepared(void *opaque, redisReply *reply)
{
	struct batch_sub *s = opaque;
	if (s->e->closing)
		return;
	if (!reply || reply->type != REDIS_REPLY_STRING || strcmp(reply->str, "submitting") != 0) {
		/* Idempotent: ask again (a repeat finds the submission there). */
		log_warn("batch prepare failed, retrying", "token", s->token, NULL);
		batch_sub_later(s, 500, on_prepare_retry);
		return;
	}
	batch_stop_at("batch_before_submit");
	s->phase = BSUB_SUBMITTING;
	s->step = 0;
	sub_submit_step(s);
}

static void sub_prepare(struct batch_sub *s)
{
	struct engine *e = s->e;
	const struct provider_conf *p = &e->cfg->providers[s->provider];
	struct ledger_batch_req *reqs = xcalloc(s->n, sizeof *reqs);
	char **values = xcalloc(s->n, sizeof *values);
	struct buf *hdrs = xcalloc(s->n, sizeof *hdrs);
	struct buf *hist = xcalloc(s->n, sizeof *hist);
	s->phase = BSUB_PREPARING;
	s->created_ms = time_now_ms();
	for (size_t i = 0; i < s->n; i++) {
		struct task *t = s->tasks[i];
		struct ledger_batch_req *r = &reqs[i];
		r->job_id = t->id;
		r->attempt = t->attempts[t->n_attempts - 1].number;
		r->complete_by_ms = t->job.complete_by_ms;
		batch_history_encode(t, &hist[i]);
		r->history = hist[i].data;
		if (t->track) {
			/* From Kafka: its source goes to Redis, for any worker. */
			values[i] = json_dumps(t->job.root, JSON_COMPACT | JSON_ENCODE_ANY);
			r->value = values[i] ? values[i] : "";
			r->value_len = strlen(r->value);
			r->key = t->key;
			r->key_len = t->key_len;
			headers_encode(t->headers, &hdrs[i]);
			r->headers = hdrs[i].data ? hdrs[i].data : "";
			r->topic = track_topic(t->track);
			r->partition = t->partition;
			r->offset = t->offset;
		}
	}
	struct ledger_batch_sub bs = {
	        .token = s->token,
	        .provider = p->name,
	        .model = e->cfg->models[s->model].name,
	        .lease_ms = (int64_t)p->ops->batch->submit_steps * (p->timeout_ms + 15000),
	        .complete_by_ms = s->complete_by_ms,
	};
	ledger_batch_prepare(e->ledger, &bs, reqs, s->n, on_prepared, s);
	for (size_t i = 0; i < s->n; i++) {
		free(values[i]);
		buf_free(&hdrs[i]);
		buf_free(&hist[i]);
	}
	free(values);
	free(hdrs);
	free(hist);
	free(reqs);
}

/* ---------------------------------------------------------------- submit */

static void on_submit_answer(void *opaque, const struct http_response *resp)
{
	struct batch_sub *s = opaque;
	struct engine *e = s->e;
	const struct provider_conf *p = &e->cfg->providers[s->provider];
	if (e->closing)
		return;
	struct completion c = {0};
	char *id = NULL;
	enum response_class cls = RESPONSE_RETRYABLE;
	if (resp->error == HTTP_OK)
		cls = provider_batch_parse_answer(p, resp->status, resp->body, resp->body_len, &id,
		                                  &c);
	if (cls == RESPONSE_OK) {
		completion_clear(&c);
		if (s->step + 1 < p->ops->batch->submit_steps) {
			free(s->prev_id);
			s->prev_id = id;
			s->step++;
			sub_submit_step(s);
			return;
		}
		free(s->batch_id);
		s->batch_id = id;
		batch_stop_at("batch_after_accept");
		batch_sub_record(s);
		return;
	}
	char status[16];
	snprintf(status, sizeof status, "%ld", resp->error == HTTP_OK ? resp->status : 0L);
	log_warn("batch submission failed", "token", s->token, "provider", p->name, "status",
	         status, "error", c.error_message ? c.error_message : "no answer", NULL);
	completion_clear(&c);
	free(id);
	/* An answered refusal, or a failed step before the one that creates the
	 * batch, leaves no batch: abandon it. A create that got no answer may
	 * have made one: search the provider for it, as for an orphan. */
	if (resp->error == HTTP_OK || s->step + 1 < p->ops->batch->submit_steps)
		batch_sub_abandon(s);
	else
		batch_orphan_search(s);
}

static void sub_submit_step(struct batch_sub *s)
{
	struct engine *e = s->e;
	const struct provider_conf *p = &e->cfg->providers[s->provider];
	struct http_request req = {0};
	provider_batch_submit_request(p, &s->psub, s->step, s->prev_id, &req);
	http_pool_start(e->pools[s->provider], &req, p->timeout_ms, on_submit_answer, s);
}

/* ---------------------------------------------------------------- record */

static void on_record_retry(uv_timer_t *timer)
{
	batch_sub_record(timer->data);
}

static void on_cancel_sent(void *opaque, const struct http_response *resp)
{
	(void)opaque;
	(void)resp; /* best effort: a batch nobody records is an orphan the search finds */
}

/* The tasks of a submission that no batch holds go on without it: their
 * batch attempt failed (its lease already released at zero) and they run
 * sync (a refused submission is no reason to try another batch). */
static void sub_tasks_go_on(struct batch_sub *s)
{
	for (size_t i = 0; i < s->n_tasks; i++) {
		struct task *t = s->tasks[i];
		struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
		/* Not the model's doing: the job runs sync from the top of its
		 * chain (task_batch_decide), as after a deadline's cancel. */
		a->outcome = OUTCOME_BATCH_CANCELED;
		t->cls = RESPONSE_RETRYABLE;
		t->batch_mode = false;
		task_settle(t);
	}
	free(s->tasks);
	s->tasks = NULL;
	s->n_tasks = 0;
}

static void on_recorded(void *opaque, redisReply *reply)
{
	struct batch_sub *s = opaque;
	struct engine *e = s->e;
	if (e->closing)
		return;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING) {
		batch_sub_later(s, 500, on_record_retry);
		return;
	}
	const char *state = reply->element[0]->str;
	if (strcmp(state, "recorded") != 0) {
		/* The orphan search came first and found no batch: this one is
		 * canceled, and its jobs go on. */
		log_warn("batch abandoned before it was recorded: canceling it", "token", s->token,
		         "batch", s->batch_id, "state", state, NULL);
		struct http_request req = {0};
		provider_batch_cancel_request(&e->cfg->providers[s->provider], s->batch_id, &req);
		http_pool_start(e->pools[s->provider], &req,
		                e->cfg->providers[s->provider].timeout_ms, on_cancel_sent, NULL);
		sub_tasks_go_on(s);
		batch_sub_free(s);
		return;
	}
	batch_stop_at("batch_after_record");
	const char *model = e->cfg->models[s->model].name;
	const char *provider = e->cfg->providers[s->provider].name;
	log_info("batch recorded", "token", s->token, "batch", s->batch_id, "model", model, NULL);
	metrics_add(e->metrics, METRIC_BATCHES_TOTAL, (const char *[]){provider, model, "recorded"},
	            1);
	metrics_add(e->metrics, METRIC_BATCHED_JOBS_TOTAL, (const char *[]){provider, model},
	            (int64_t)s->n_tasks);
	/* Its jobs are the batch's now: they leave this worker's slots and
	 * their partitions (SPEC §14). */
	for (size_t i = 0; i < s->n_tasks; i++) {
		struct task *t = s->tasks[i];
		t->attempts[t->n_attempts - 1].batch_id = xstrdup(s->batch_id);
		task_handed_over(t);
	}
	free(s->tasks);
	s->tasks = NULL;
	s->n_tasks = 0;
	provider_batch_submission_clear(&s->psub);
	batch_collect_start(s);
}

void batch_sub_record(struct batch_sub *s)
{
	s->phase = BSUB_RECORDING;
	ledger_batch_record(s->e->ledger, s->token, s->batch_id, batch_claim_lease_ms(s->e),
	                    s->complete_by_ms, on_recorded, s);
}

/* ---------------------------------------------------------------- abandon, finish */

static void on_abandon_retry(uv_timer_t *timer)
{
	batch_sub_abandon(timer->data);
}

static void on_abandoned(void *opaque, redisReply *reply)
{
	struct batch_sub *s = opaque;
	if (s->e->closing)
		return;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
	    reply->element[0]->type != REDIS_REPLY_STRING) {
		batch_sub_later(s, 500, on_abandon_retry);
		return;
	}
	const char *state = reply->element[0]->str;
	if (strcmp(state, "recorded") == 0) {
		/* Someone recorded it meanwhile: it stands; its holder collects it. */
		if (s->n_tasks) {
			for (size_t i = 0; i < s->n_tasks; i++)
				task_handed_over(s->tasks[i]);
			free(s->tasks);
			s->tasks = NULL;
			s->n_tasks = 0;
		}
		batch_sub_free(s);
		return;
	}
	log_info("batch submission abandoned: no provider batch holds it", "token", s->token, NULL);
	sub_tasks_go_on(s);
	batch_sub_finish(s, "abandoned");
}

void batch_sub_abandon(struct batch_sub *s)
{
	s->phase = BSUB_ABANDONING;
	ledger_batch_abandon(s->e->ledger, s->token, on_abandoned, s);
}

static void on_finish_retry(uv_timer_t *timer);

static void on_finished(void *opaque, redisReply *reply)
{
	struct batch_sub *s = opaque;
	if (s->e->closing)
		return;
	if (!reply) {
		batch_sub_later(s, 500, on_finish_retry);
		return;
	}
	batch_sub_free(s);
}

static void sub_finish_send(struct batch_sub *s)
{
	/* What its answers were charged is known when this worker collected
	 * every request of it. */
	bool collected = strcmp(s->final_state, "collected") == 0;
	ledger_batch_finish(s->e->ledger, s->token, s->final_state, collected ? s->spent_nusd : -1,
	                    on_finished, s);
}

static void on_finish_retry(uv_timer_t *timer)
{
	sub_finish_send(timer->data);
}

void batch_sub_finish(struct batch_sub *s, const char *state)
{
	struct engine *e = s->e;
	s->phase = BSUB_FINISHING;
	if (s->renew)
		uv_timer_stop(s->renew); /* no renewal after the finish */
	s->final_state = strcmp(state, "collected") == 0 ? "collected" : "abandoned";
	metrics_add(e->metrics, METRIC_BATCHES_TOTAL,
	            (const char *[]){e->cfg->providers[s->provider].name,
	                             e->cfg->models[s->model].name, s->final_state},
	            1);
	sub_finish_send(s);
}

/* ---------------------------------------------------------------- claims */

static struct batch_sub *sub_find(struct engine *e, const char *token)
{
	for (struct batch_sub *s = e->batcher->subs; s; s = s->next)
		if (strcmp(s->token, token) == 0)
			return s;
	return NULL;
}

static void on_claimed(void *opaque, redisReply *reply)
{
	struct engine *e = opaque;
	if (e->closing)
		return;
	e->batcher->claiming = false;
	size_t n = ledger_reply_entries(reply);
	for (size_t i = 0; i < n; i++) {
		struct ledger_batch_claimed c;
		char err[256];
		if (ledger_batch_claimed_result(reply, i, &c, err, sizeof err) != LEDGER_OK) {
			log_error("batch claim: bad entry", "error", err, NULL);
			continue;
		}
		if (sub_find(e, c.token) || !provider_batch_token_valid(c.token, strlen(c.token)))
			continue;
		int model = config_model_index(e->cfg, c.model);
		int provider = model >= 0 ? e->cfg->models[model].provider : -1;
		if (model < 0 || strcmp(e->cfg->providers[provider].name, c.provider) != 0 ||
		    !e->cfg->providers[provider].ops->batch) {
			log_error("batch claimed of a model or provider this worker lacks", "token",
			          c.token, "model", c.model, "provider", c.provider, NULL);
			continue;
		}
		struct batch_sub *s = batch_sub_new(e);
		memcpy(s->token, c.token, sizeof s->token);
		s->model = model;
		s->provider = provider;
		s->n = c.n;
		s->complete_by_ms = c.complete_by_ms;
		s->created_ms = c.created_ms;
		if (c.batch_id[0])
			s->batch_id = xstrdup(c.batch_id);
		log_info("batch claimed", "token", s->token, "state", c.state, NULL);
		if (strcmp(c.state, "submitting") == 0)
			batch_orphan_search(s);
		else if (strcmp(c.state, "recorded") == 0)
			batch_collect_start(s);
		else
			batch_sub_finish(
			        s, c.state); /* abandoned: its resolver died before finishing */
	}
}

/* The gauge of the batches this worker holds, by state. */
static void batch_gauges(struct engine *e)
{
	int64_t submitting = 0, polling = 0, collecting = 0;
	for (const struct batch_sub *s = e->batcher->subs; s; s = s->next) {
		if (s->phase == BSUB_POLLING)
			polling++;
		else if (s->phase == BSUB_COLLECTING || s->phase == BSUB_FINISHING)
			collecting++;
		else
			submitting++;
	}
	metrics_set(e->metrics, METRIC_BATCHES, (const char *[]){"submitting"}, submitting);
	metrics_set(e->metrics, METRIC_BATCHES, (const char *[]){"polling"}, polling);
	metrics_set(e->metrics, METRIC_BATCHES, (const char *[]){"collecting"}, collecting);
}

static void on_claim_timer(uv_timer_t *timer)
{
	struct engine *e = timer->data;
	struct batcher *b = e->batcher;
	batch_gauges(e);
	if (b->claiming || b->draining || e->closing || !redis_ready(e->redis))
		return;
	b->claiming = true;
	ledger_batch_claim(e->ledger, batch_claim_lease_ms(e), 16, on_claimed, e);
}

void engine_batch_start(struct engine *e)
{
	struct batcher *b = xcalloc(1, sizeof *b);
	e->batcher = b;
	b->groups = xcalloc(e->cfg->n_models, sizeof *b->groups);
	bool any = false;
	for (size_t i = 0; i < e->cfg->n_providers; i++)
		any |= e->cfg->providers[i].batch && e->cfg->providers[i].ops->batch;
	if (!any)
		return;
	b->claim_timer = xcalloc(1, sizeof *b->claim_timer);
	uv_timer_init(e->loop, b->claim_timer);
	b->claim_timer->data = e;
	uv_timer_start(b->claim_timer, on_claim_timer, 1000, 1000);
}

void engine_batch_drain(struct engine *e)
{
	struct batcher *b = e->batcher;
	if (!b)
		return;
	b->draining = true;
	for (size_t i = 0; i < e->cfg->n_models; i++)
		group_submit(e, (int)i);
}

void engine_batch_free(struct engine *e)
{
	struct batcher *b = e->batcher;
	if (!b)
		return;
	for (struct task *t = e->live; t; t = t->next)
		t->bsub = NULL;
	while (b->subs)
		batch_sub_free(b->subs);
	for (size_t i = 0; i < e->cfg->n_models; i++) {
		struct batch_group *g = &b->groups[i];
		if (g->timer)
			uv_close((uv_handle_t *)g->timer, engine_timer_closed);
		provider_batch_submission_clear(&g->psub);
		free(g->tasks);
	}
	free(b->groups);
	if (b->claim_timer)
		uv_close((uv_handle_t *)b->claim_timer, engine_timer_closed);
	free(b);
	e->batcher = NULL;
}
