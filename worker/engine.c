/* engine: tasks from message to committed offset.
 *
 * Life of a task (one job):
 *
 *   message -> decode -> route -> attempt -> (settle) -> decide -+-> finish -> produce -> acks -> done
 *                                    ^                           |
 *                                    +------ next model ---------+
 *
 * Everything runs on the loop; a task waits only on callbacks (HTTP, Redis,
 * Kafka delivery, a timer), never blocks. */
#include "engine.h"

#include "buf.h"
#include "http.h"
#include "idmap.h"
#include "job.h"
#include "kafka.h"
#include "ledger.h"
#include "log.h"
#include "offsets.h"
#include "output.h"
#include "provider.h"
#include "redis.h"
#include "router.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CHAIN_ATTEMPTS 32

struct task;

/* One message to produce for a task, kept until Kafka acknowledged it so that
 * it can be produced again after a failure. */
struct out_msg {
	struct task *task;
	const char *topic;
	char *value;
	size_t len;
	bool is_result;
	bool acked;
	struct out_msg *next_unacked, *prev_unacked;
};

struct task {
	struct engine *e;
	struct partition_track *track;
	uint64_t ticket;
	int32_t partition;
	int64_t offset;
	char *key;
	size_t key_len;
	rd_kafka_headers_t *headers; /* the input's, for the DLQ record */
	char *raw;                   /* the value, kept only when it did not parse */
	size_t raw_len;
	struct job job;
	char *id; /* the job's id or topic:partition:offset (new) */
	int64_t started_mono_ms;

	int attempt_base; /* attempt numbers used by earlier runs of this job */
	bool replayed;    /* outputs re-sent from Redis, no call made */

	struct route route;
	size_t chain_pos;
	int same_retries;
	bool *tried; /* per model */
	struct attempt_rec *attempts;
	size_t n_attempts;
	int64_t cost_nusd;

	/* The attempt being decided. */
	struct completion completion;
	enum response_class cls;
	int64_t retry_after_ms;
	int settle_tries;

	/* The end. */
	enum error_code error;
	char *error_message;
	struct out_msg *outs;
	size_t n_outs;
	int acks_pending;

	bool id_holder;    /* this task holds its id in engine.ids */
	struct task *dups; /* copies of the same id consumed meanwhile, waiting */
	struct task *next_dup;

	uv_timer_t *timer;        /* for delays (Retry-After, retries); NULL when unused */
	struct task *next, *prev; /* the engine's live list */
	struct task *next_wait;   /* waiting for Redis */
};

/* Partitions being revoked: they take no new jobs, and are released once
 * their in-flight jobs are done or the drain timeout passes (SPEC §9). */
struct revoking {
	struct engine *e;
	rd_kafka_topic_partition_list_t *parts;
	uv_timer_t timer;
	struct revoking *next;
};

struct engine {
	uv_loop_t *loop;
	const struct config *cfg;
	struct kafka *kafka;
	struct redis *redis;
	struct ledger *ledger;
	struct http_pool **pools; /* per provider */
	char worker_id[128];

	struct partition_track **tracks; /* assigned partitions */
	size_t n_tracks, cap_tracks;

	bool *revoking_flags; /* parallel to tracks: the partition is being revoked */
	struct revoking *revokes;

	struct idmap *ids;   /* id -> the task running it (one id is one job) */
	struct task **check; /* decoded jobs waiting for their dedupe lookup */
	size_t n_check, cap_check;
	char **done_ids; /* ok jobs acknowledged, to be marked done */
	size_t n_done, cap_done;

	struct task *live;
	int in_flight;
	struct task *wait_redis; /* tasks held while Redis is unreachable */
	struct out_msg *unacked;

	uv_prepare_t store_offsets;
	uv_signal_t sigterm, sigint;
	uv_timer_t drain_timer;
	int signals;
	bool draining;
	bool closing;
	int exit_code;
	uint64_t jobs_ok, jobs_error, jobs_skipped, jobs_resent;
};

static void task_attempt(struct task *t);
static void task_finish(struct task *t);
static void produce_out(struct engine *e, struct out_msg *o);
static void maybe_finish_stop(struct engine *e);

/* ---------------------------------------------------------------- tasks */

static void timer_closed(uv_handle_t *h)
{
	free(h);
}

static void task_free(struct task *t)
{
	struct engine *e = t->e;
	if (t->id_holder)
		idmap_del(e->ids, t->id);
	if (t->prev)
		t->prev->next = t->next;
	else
		e->live = t->next;
	if (t->next)
		t->next->prev = t->prev;
	if (t->timer) {
		uv_close((uv_handle_t *)t->timer, timer_closed);
		t->timer = NULL;
	}
	for (size_t i = 0; i < t->n_outs; i++)
		free(t->outs[i].value);
	free(t->outs);
	if (t->headers)
		rd_kafka_headers_destroy(t->headers);
	job_clear(&t->job);
	router_route_clear(&t->route);
	completion_clear(&t->completion);
	free(t->tried);
	free(t->attempts);
	free(t->error_message);
	free(t->key);
	free(t->raw);
	free(t->id);
	free(t);
}

/* Runs fn(t) after delay_ms on the loop. */
static void task_later(struct task *t, int64_t delay_ms, uv_timer_cb fn)
{
	if (!t->timer) {
		t->timer = xcalloc(1, sizeof *t->timer);
		uv_timer_init(t->e->loop, t->timer);
		t->timer->data = t;
	}
	uv_timer_start(t->timer, fn, (uint64_t)(delay_ms > 0 ? delay_ms : 0), 0);
}

static void task_fail(struct task *t, enum error_code code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void task_fail(struct task *t, enum error_code code, const char *fmt, ...)
{
	struct buf b = {0};
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	t->error = code;
	free(t->error_message);
	t->error_message = buf_take(&b);
	task_finish(t);
}

/* ---------------------------------------------------------------- offsets */

static struct partition_track *track_find(struct engine *e, const char *topic, int32_t partition,
                                          size_t *index)
{
	for (size_t i = 0; i < e->n_tracks; i++) {
		struct partition_track *pt = e->tracks[i];
		if (track_partition(pt) == partition && strcmp(track_topic(pt), topic) == 0) {
			if (index)
				*index = i;
			return pt;
		}
	}
	return NULL;
}

static struct partition_track *track_get(struct engine *e, const char *topic, int32_t partition)
{
	struct partition_track *pt = track_find(e, topic, partition, NULL);
	if (pt)
		return pt;
	if (e->n_tracks == e->cap_tracks) {
		e->cap_tracks = e->cap_tracks ? e->cap_tracks * 2 : 16;
		e->tracks = xrealloc(e->tracks, e->cap_tracks * sizeof *e->tracks);
		e->revoking_flags =
		        xrealloc(e->revoking_flags, e->cap_tracks * sizeof *e->revoking_flags);
	}
	pt = track_new(topic, partition);
	e->revoking_flags[e->n_tracks] = false;
	e->tracks[e->n_tracks++] = pt;
	return pt;
}

static void store_track(struct engine *e, struct partition_track *pt)
{
	if (!track_dirty(pt))
		return;
	track_clear_dirty(pt);
	kafka_store_offset(e->kafka, track_topic(pt), track_partition(pt), track_watermark(pt));
}

static void dedupe_flush(struct engine *e);

/* Before the loop sleeps: store the watermarks that moved, one call each, and
 * send this turn's batched Redis lookups. */
static void on_before_sleep(uv_prepare_t *p)
{
	struct engine *e = p->data;
	for (size_t i = 0; i < e->n_tracks; i++)
		store_track(e, e->tracks[i]);
	if (!e->closing)
		dedupe_flush(e);
}

/* ---------------------------------------------------------------- flow control */

static void flow_check(struct engine *e)
{
	int max = e->cfg->worker.max_in_flight;
	if (e->draining)
		return;
	if (e->in_flight >= max) {
		kafka_pause(e->kafka);
	} else if (kafka_paused(e->kafka) && e->in_flight <= max - max / 10 - 1) {
		/* Hysteresis: resume once a tenth of the slots are free again. */
		kafka_resume(e->kafka);
	}
}

static void revokes_check(struct engine *e);

/* Queues t for this turn's dedupe lookup (dedupe_flush). */
static void check_later(struct task *t)
{
	struct engine *e = t->e;
	if (e->n_check == e->cap_check) {
		e->cap_check = e->cap_check ? e->cap_check * 2 : 64;
		e->check = xrealloc(e->check, e->cap_check * sizeof *e->check);
	}
	e->check[e->n_check++] = t;
}

/* One id is one job: a copy consumed while the same id is in flight waits for
 * it, then is looked up like any other (and so skipped once that one is done). */
static void task_claim(struct task *t)
{
	struct task *holder = idmap_get(t->e->ids, t->id);
	if (holder) {
		t->next_dup = holder->dups;
		holder->dups = t;
		return;
	}
	idmap_put(t->e->ids, t->id, t);
	t->id_holder = true;
	check_later(t);
}

/* Hands the id over to the copies that waited for t. */
static void release_dups(struct task *t)
{
	struct task *d = t->dups;
	t->dups = NULL;
	if (t->id_holder) {
		idmap_del(t->e->ids, t->id);
		t->id_holder = false;
	}
	while (d) {
		struct task *next = d->next_dup;
		d->next_dup = NULL;
		task_claim(d);
		d = next;
	}
}

static void task_done(struct task *t)
{
	struct engine *e = t->e;
	if (t->error == ERR_NONE)
		e->jobs_ok++;
	else
		e->jobs_error++;
	struct partition_track *pt = t->track;
	track_done(pt, t->ticket);
	release_dups(t);
	task_free(t);
	e->in_flight--;
	if (e->revokes && track_in_flight(pt) == 0)
		revokes_check(e);
	flow_check(e);
	maybe_finish_stop(e);
}

/* ---------------------------------------------------------------- producing */

static void unacked_link(struct engine *e, struct out_msg *o)
{
	o->prev_unacked = NULL;
	o->next_unacked = e->unacked;
	if (e->unacked)
		e->unacked->prev_unacked = o;
	e->unacked = o;
}

static void unacked_unlink(struct engine *e, struct out_msg *o)
{
	if (o->prev_unacked)
		o->prev_unacked->next_unacked = o->next_unacked;
	else
		e->unacked = o->next_unacked;
	if (o->next_unacked)
		o->next_unacked->prev_unacked = o->prev_unacked;
	o->next_unacked = o->prev_unacked = NULL;
}

struct retry_produce {
	uv_timer_t timer;
	struct engine *e;
	struct out_msg *out; /* not to be touched once the engine is closing */
};

static void on_retry_produce(uv_timer_t *timer)
{
	struct retry_produce *r = (struct retry_produce *)timer;
	if (!r->e->closing)
		produce_out(r->e, r->out);
	uv_close((uv_handle_t *)timer, timer_closed);
}

static void produce_later(struct engine *e, struct out_msg *o, int64_t delay_ms)
{
	struct retry_produce *r = xcalloc(1, sizeof *r);
	r->e = e;
	r->out = o;
	uv_timer_init(e->loop, &r->timer);
	uv_timer_start(&r->timer, on_retry_produce, (uint64_t)delay_ms, 0);
}

static void produce_out(struct engine *e, struct out_msg *o)
{
	struct task *t = o->task;
	const char *key = t->key ? t->key : t->id;
	size_t key_len = t->key ? t->key_len : strlen(t->id);
	rd_kafka_headers_t *h = NULL;
	if (o->is_result) {
		h = rd_kafka_headers_new(1);
		rd_kafka_header_add(h, "promptyard-job-id", -1, t->id, -1);
	} else if (o->topic == e->cfg->kafka.dlq_topic && t->headers) {
		h = rd_kafka_headers_copy(t->headers);
	}
	rd_kafka_resp_err_t err =
	        kafka_produce(e->kafka, o->topic, key, key_len, o->value, o->len, h, o);
	if (err) {
		if (h)
			rd_kafka_headers_destroy(h);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			log_warn("produce failed, retrying", "topic", o->topic, "error",
			         rd_kafka_err2str(err), NULL);
		produce_later(e, o, 100);
	}
}

static void on_delivered(void *opaque, void *msg_opaque, rd_kafka_resp_err_t err)
{
	struct engine *e = opaque;
	struct out_msg *o = msg_opaque;
	if (err) {
		/* Not acknowledged: produce it again (never drop an output). */
		log_warn("delivery failed, producing again", "topic", o->topic, "error",
		         rd_kafka_err2str(err), NULL);
		if (!e->closing)
			produce_later(e, o, 200);
		return;
	}
	if (o->acked)
		return;
	o->acked = true;
	unacked_unlink(e, o);
	struct task *t = o->task;
	if (--t->acks_pending == 0) {
		if (t->error == ERR_NONE) {
			if (e->n_done == e->cap_done) {
				e->cap_done = e->cap_done ? e->cap_done * 2 : 64;
				e->done_ids =
				        xrealloc(e->done_ids, e->cap_done * sizeof *e->done_ids);
			}
			e->done_ids[e->n_done++] = xstrdup(t->id);
		}
		task_done(t);
	}
}

static void on_producer_reset(void *opaque)
{
	struct engine *e = opaque;
	for (struct out_msg *o = e->unacked; o; o = o->next_unacked)
		produce_out(e, o);
}

static struct out_msg *add_out(struct task *t, const char *topic, struct buf *value, bool is_result)
{
	struct out_msg *o = &t->outs[t->n_outs++];
	o->task = t;
	o->topic = topic;
	o->len = value->len;
	o->value = buf_take(value);
	o->is_result = is_result;
	return o;
}

/* Produces every output of the task (built already). */
static void task_produce(struct task *t)
{
	struct engine *e = t->e;
	t->acks_pending = (int)t->n_outs;
	if (t->n_outs == 0) {
		task_done(t);
		return;
	}
	for (size_t i = 0; i < t->n_outs; i++) {
		unacked_link(e, &t->outs[i]);
		produce_out(e, &t->outs[i]);
	}
}

/* The outputs as Redis keeps them for a re-send: one JSON per line, result first. */
static void outputs_blob(const struct task *t, struct buf *b)
{
	for (size_t i = 0; i < t->n_outs; i++) {
		if (t->outs[i].topic == t->e->cfg->kafka.dlq_topic)
			continue;
		if (b->len)
			buf_puts(b, "\n");
		buf_append(b, t->outs[i].value, t->outs[i].len);
	}
}

/* Builds every output of the task: the result, a cost record per billed
 * attempt and, for an error, the DLQ record. */
static void task_build_outputs(struct task *t)
{
	struct engine *e = t->e;
	const struct config *cfg = e->cfg;
	int64_t now = time_now_ms();
	size_t billed = 0;
	for (size_t i = 0; i < t->n_attempts; i++)
		billed += t->attempts[i].billed;
	t->outs = xcalloc(2 + billed, sizeof *t->outs);

	struct result_info r = {
	        .id = t->id,
	        .error = t->error,
	        .error_message = t->error_message,
	        .content = t->completion.content,
	        .finish_reason = t->completion.finish_reason,
	        .model = t->n_attempts ? t->attempts[t->n_attempts - 1].model : -1,
	        .cost_nusd = t->cost_nusd,
	        .budget = t->job.root && t->error != ERR_INVALID_JOB ? t->job.budget : -1,
	        .attempts = t->attempts,
	        .n_attempts = t->n_attempts,
	        .latency_ms = time_mono_ms() - t->started_mono_ms,
	        .metadata = t->error != ERR_INVALID_JOB ? t->job.metadata : NULL,
	        .worker = e->worker_id,
	        .completed_ms = now,
	};
	if (t->error == ERR_NONE) {
		r.usage = t->attempts[t->n_attempts - 1].usage;
	} else {
		for (size_t i = 0; i < t->n_attempts; i++) {
			r.usage.input_tokens += t->attempts[i].usage.input_tokens;
			r.usage.output_tokens += t->attempts[i].usage.output_tokens;
			r.usage.cached_input_tokens += t->attempts[i].usage.cached_input_tokens;
		}
	}
	struct buf b = {0};
	output_result(&b, cfg, &r);
	add_out(t, cfg->kafka.results_topic, &b, true);
	for (size_t i = 0; i < t->n_attempts; i++) {
		if (!t->attempts[i].billed)
			continue;
		output_cost(&b, cfg, t->id, &t->attempts[i], t->job.budget, false, now);
		add_out(t, cfg->kafka.costs_topic, &b, false);
	}
	if (t->error != ERR_NONE) {
		output_dlq(&b, t->job.root, t->raw, t->raw_len, t->error, t->error_message,
		           track_topic(t->track), t->partition, t->offset, now);
		add_out(t, cfg->kafka.dlq_topic, &b, false);
		log_info("job failed", "id", t->id, "code", error_code_name(t->error), NULL);
	}
	buf_free(&b);
}

static void task_finish(struct task *t)
{
	if (!t->outs)
		task_build_outputs(t);
	task_produce(t);
}

/* ---------------------------------------------------------------- attempts */

static void on_settled(void *opaque, redisReply *reply);

/* Settles the last attempt; the one that answered carries the job's outputs. */
static void settle_attempt(struct task *t)
{
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	struct buf blob = {0};
	if (a->outcome == OUTCOME_OK)
		outputs_blob(t, &blob);
	ledger_settle(t->e->ledger, t->job.budget, t->id, a->number, a->cost_nusd,
	              a->outcome == OUTCOME_OK ? &blob : NULL, on_settled, t);
	buf_free(&blob);
}

static void on_settle_retry(uv_timer_t *timer)
{
	struct task *t = timer->data;
	settle_attempt(t);
}

static void task_decide(struct task *t);

static void on_settled(void *opaque, redisReply *reply)
{
	struct task *t = opaque;
	if (t->e->closing)
		return;
	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		/* Fail closed: the spend must be recorded before anything else
		 * happens to the job. Settling is idempotent, so retry until
		 * Redis answers. */
		if (t->settle_tries++ % 50 == 0)
			log_warn("settle pending, redis unavailable", "id", t->id, NULL);
		task_later(t, t->settle_tries < 10 ? 100 : 500, on_settle_retry);
		return;
	}
	task_decide(t);
}

static enum outcome outcome_of(const struct http_response *resp, enum response_class cls)
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

	completion_clear(&t->completion);
	t->cls = RESPONSE_RETRYABLE;
	if (resp->error == HTTP_OK)
		t->cls = ops->parse_response(m, resp->status, resp->body, resp->body_len,
		                             &t->completion);
	a->outcome = outcome_of(resp, t->cls);
	a->http_status = resp->error == HTTP_OK ? resp->status : 0;
	a->latency_ms = resp->latency_ms;
	t->retry_after_ms = resp->retry_after_ms;
	if (t->completion.has_usage) {
		a->billed = true;
		a->usage = t->completion.usage;
		a->cost_nusd = money_cost_nusd(&m->price, &a->usage);
		t->cost_nusd += a->cost_nusd;
		t->settle_tries = 0;
		if (a->outcome == OUTCOME_OK)
			task_build_outputs(t);
		settle_attempt(t);
		return;
	}
	task_decide(t);
}

static void on_attempt_timer(uv_timer_t *timer)
{
	task_attempt(timer->data);
}

/* After an attempt (and its settlement): done, or where to go next. */
static void task_decide(struct task *t)
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
	if ((int)t->n_attempts >= cfg->worker.max_attempts) {
		task_fail(t, ERR_PROVIDERS_FAILED, "%zu attempts failed (worker.max_attempts)",
		          t->n_attempts);
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
	/* Move along the chain; a context overflow only to a larger context. */
	t->tried[a->model] = true;
	t->same_retries = 0;
	for (t->chain_pos++; t->chain_pos < t->route.n_chain; t->chain_pos++) {
		int next = t->route.chain[t->chain_pos];
		if (t->tried[next])
			continue;
		if (t->cls == RESPONSE_CONTEXT_OVERFLOW &&
		    cfg->models[next].context_tokens <= m->context_tokens)
			continue;
		break;
	}
	if (t->chain_pos >= t->route.n_chain) {
		task_fail(t, ERR_PROVIDERS_FAILED, "every candidate model failed (last: %s, %s)",
		          m->name,
		          t->completion.error_message ? "provider error" : "transport error");
		return;
	}
	task_attempt(t);
}

static void on_redis_state(void *opaque, bool ready)
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

/* Starts the attempt on route.chain[chain_pos]. */
static void task_attempt(struct task *t)
{
	struct engine *e = t->e;
	const struct config *cfg = e->cfg;
	if (!redis_ready(e->redis)) {
		/* Fail closed: no attempt starts while the spend cannot be recorded. */
		t->next_wait = e->wait_redis;
		e->wait_redis = t;
		return;
	}
	int mi = t->route.chain[t->chain_pos];
	const struct model_conf *m = &cfg->models[mi];
	const struct provider_conf *p = &cfg->providers[m->provider];
	struct http_request req = {0};
	char err[256];
	if (p->ops->build_request(p, m, &t->job, t->route.entries[mi].max_tokens, &req, err,
	                          sizeof err)) {
		/* This format cannot express the job (e.g. only system messages for
		 * Anthropic): the model is skipped, the chain goes on. */
		http_request_clear(&req);
		t->tried[mi] = true;
		while (t->chain_pos < t->route.n_chain && t->tried[t->route.chain[t->chain_pos]])
			t->chain_pos++;
		if (t->chain_pos >= t->route.n_chain) {
			task_fail(t, ERR_NO_ELIGIBLE_MODEL, "%s cannot take this job: %s", m->name,
			          err);
			return;
		}
		task_attempt(t);
		return;
	}
	if (t->n_attempts == MAX_CHAIN_ATTEMPTS) {
		http_request_clear(&req);
		task_fail(t, ERR_PROVIDERS_FAILED, "too many attempts");
		return;
	}
	struct attempt_rec *a = &t->attempts[t->n_attempts++];
	memset(a, 0, sizeof *a);
	a->number = t->attempt_base + (int)t->n_attempts;
	a->model = mi;
	http_pool_start(e->pools[m->provider], &req, p->timeout_ms, on_http_done, t);
}

static void task_begin(struct task *t)
{
	struct engine *e = t->e;
	const struct config *cfg = e->cfg;
	if (t->job.deadline_ms && time_now_ms() > t->job.deadline_ms) {
		task_fail(t, ERR_EXPIRED, "deadline: passed before the first attempt");
		return;
	}
	struct route_context ctx = {.cost_left_nusd =
	                                    t->job.max_cost_nusd ? t->job.max_cost_nusd : -1};
	router_route(cfg, &t->job, &ctx, &t->route);
	if (t->route.n_chain == 0) {
		enum drop_reason why = router_empty_reason(cfg, &t->route);
		if (why == DROP_COST_CAP)
			task_fail(t, ERR_COST_CAP_EXCEEDED,
			          "max_cost_usd: every eligible model's estimate exceeds the cap");
		else if (why == DROP_BUDGET)
			task_fail(t, ERR_BUDGET_EXHAUSTED,
			          "budget: cannot cover any eligible model");
		else
			task_fail(t, ERR_NO_ELIGIBLE_MODEL, "no model is eligible (%s)",
			          drop_reason_name(why));
		return;
	}
	t->tried = xcalloc(cfg->n_models, sizeof *t->tried);
	t->attempts = xcalloc(MAX_CHAIN_ATTEMPTS, sizeof *t->attempts);
	task_attempt(t);
}

/* ---------------------------------------------------------------- consuming */

static void on_message(void *opaque, rd_kafka_message_t *m)
{
	struct engine *e = opaque;
	const struct config *cfg = e->cfg;
	struct task *t = xcalloc(1, sizeof *t);
	const char *topic = rd_kafka_topic_name(m->rkt);
	char err[512];

	t->e = e;
	t->started_mono_ms = time_mono_ms();
	t->track = track_get(e, topic, m->partition);
	t->ticket = track_add(t->track, m->offset);
	t->partition = m->partition;
	t->offset = m->offset;
	if (m->key) {
		t->key = xstrndup(m->key, m->key_len);
		t->key_len = m->key_len;
	}
	rd_kafka_headers_t *hdrs = NULL;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs)
		t->headers = rd_kafka_headers_copy(hdrs);
	t->next = e->live;
	if (e->live)
		e->live->prev = t;
	e->live = t;
	e->in_flight++;

	int rc = job_decode(cfg, m->payload ? m->payload : "", m->len, &t->job, err, sizeof err);
	if (t->job.id) {
		t->id = xstrdup(t->job.id);
	} else {
		char id[512];
		snprintf(id, sizeof id, "%s:%d:%lld", topic, (int)m->partition,
		         (long long)m->offset);
		t->id = xstrdup(id);
	}
	if (rc != 0 && !t->job.root) {
		t->raw = xmalloc(m->len + 1);
		memcpy(t->raw, m->payload ? m->payload : "", m->len);
		t->raw[m->len] = '\0';
		t->raw_len = m->len;
	}
	rd_kafka_message_destroy(m);
	flow_check(e);
	if (rc != 0) {
		task_fail(t, ERR_INVALID_JOB, "%s", err);
		return;
	}
	task_claim(t);
}

/* ---------------------------------------------------------------- dedupe */

struct check_batch {
	struct engine *e;
	struct task **tasks;
	size_t n;
};

/* Re-sends outputs kept in Redis: a result finished and not acknowledged. */
static void task_replay(struct task *t, const char *blob, size_t len)
{
	const struct config *cfg = t->e->cfg;
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += blob[i] == '\n';
	t->outs = xcalloc(lines, sizeof *t->outs);
	t->replayed = true;
	const char *p = blob, *end = blob + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct buf b = {0};
		buf_append(&b, p, n);
		add_out(t, t->n_outs == 0 ? cfg->kafka.results_topic : cfg->kafka.costs_topic, &b,
		        t->n_outs == 0);
		p += n + 1;
	}
	t->e->jobs_resent++;
	log_info("job finished before: re-sending its outputs", "id", t->id, NULL);
	task_produce(t);
}

static void on_checked(void *opaque, redisReply *reply)
{
	struct check_batch *cb = opaque;
	struct engine *e = cb->e;
	if (e->closing)
		goto out;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != cb->n) {
		/* Fail closed: these jobs wait for Redis, first in the next batch. */
		for (size_t i = 0; i < cb->n; i++) {
			if (e->n_check == e->cap_check) {
				e->cap_check = e->cap_check ? e->cap_check * 2 : 64;
				e->check = xrealloc(e->check, e->cap_check * sizeof *e->check);
			}
			e->check[e->n_check++] = cb->tasks[i];
		}
		goto out;
	}
	for (size_t i = 0; i < cb->n; i++) {
		struct task *t = cb->tasks[i];
		redisReply *r = reply->element[i];
		const char *state = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
		                                    r->element[0]->type == REDIS_REPLY_STRING
		                            ? r->element[0]->str
		                            : "new";
		if (strcmp(state, "done") == 0) {
			/* Its ok result was acknowledged before: nothing to do. */
			e->jobs_skipped++;
			t->error = ERR_NONE;
			t->replayed = true;
			task_produce(t);
		} else if (strcmp(state, "pending") == 0 && r->elements > 1 &&
		           r->element[1]->type == REDIS_REPLY_STRING) {
			task_replay(t, r->element[1]->str, r->element[1]->len);
		} else {
			if (r->type == REDIS_REPLY_ARRAY && r->elements > 1 &&
			    r->element[1]->type == REDIS_REPLY_INTEGER)
				t->attempt_base = (int)r->element[1]->integer;
			task_begin(t);
		}
	}
out:
	free(cb->tasks);
	free(cb);
}

static void on_marked_done(void *opaque, redisReply *reply)
{
	(void)opaque;
	(void)reply; /* a lost mark only means a re-send if the job is delivered again */
}

/* Once per loop turn: one Redis call for the jobs consumed, one for those done. */
static void dedupe_flush(struct engine *e)
{
	/* Done-marks first: a copy that waited for its twin is looked up in the
	 * same turn, and Redis answers in order. */
	if (e->n_done && redis_ready(e->redis)) {
		ledger_dedupe_done(e->ledger, (const char *const *)e->done_ids, e->n_done,
		                   on_marked_done, NULL);
		for (size_t i = 0; i < e->n_done; i++)
			free(e->done_ids[i]);
		e->n_done = 0;
	}
	if (e->n_check && redis_ready(e->redis)) {
		struct check_batch *cb = xcalloc(1, sizeof *cb);
		cb->e = e;
		cb->tasks = e->check;
		cb->n = e->n_check;
		const char **ids = xcalloc(cb->n, sizeof *ids);
		for (size_t i = 0; i < cb->n; i++)
			ids[i] = cb->tasks[i]->id;
		e->check = NULL;
		e->n_check = e->cap_check = 0;
		ledger_dedupe_check(e->ledger, ids, cb->n, on_checked, cb);
		free(ids);
	}
}

static void on_assigned(void *opaque, const rd_kafka_topic_partition_list_t *parts)
{
	struct engine *e = opaque;
	for (int i = 0; i < parts->cnt; i++)
		track_get(e, parts->elems[i].topic, parts->elems[i].partition);
}

/* Stores (unless lost) and forgets the tracks of parts, then hands the
 * partitions back to the group. */
static void release_partitions(struct engine *e, const rd_kafka_topic_partition_list_t *parts,
                               bool lost)
{
	rd_kafka_topic_partition_list_t *commit = rd_kafka_topic_partition_list_new(parts->cnt);
	for (int i = 0; i < parts->cnt; i++) {
		size_t idx;
		struct partition_track *pt =
		        track_find(e, parts->elems[i].topic, parts->elems[i].partition, &idx);
		if (!pt)
			continue;
		if (!lost && track_watermark(pt) >= 0) {
			store_track(e, pt);
			rd_kafka_topic_partition_list_add(commit, track_topic(pt),
			                                  track_partition(pt))
			        ->offset = track_watermark(pt);
		}
		e->n_tracks--;
		e->tracks[idx] = e->tracks[e->n_tracks];
		e->revoking_flags[idx] = e->revoking_flags[e->n_tracks];
		/* Late completions of this partition store nothing. */
		track_release(pt);
	}
	/* Commit what the drain reached before the new owner starts reading. */
	if (!lost)
		kafka_commit_async(e->kafka, commit);
	rd_kafka_topic_partition_list_destroy(commit);
	kafka_release(e->kafka, parts, lost);
}

static void revoke_closed(uv_handle_t *h)
{
	struct revoking *rv = h->data;
	rd_kafka_topic_partition_list_destroy(rv->parts);
	free(rv);
}

static void revoke_complete(struct engine *e, struct revoking *rv)
{
	for (struct revoking **pp = &e->revokes; *pp; pp = &(*pp)->next) {
		if (*pp == rv) {
			*pp = rv->next;
			break;
		}
	}
	release_partitions(e, rv->parts, false);
	uv_timer_stop(&rv->timer);
	uv_close((uv_handle_t *)&rv->timer, revoke_closed);
}

static bool revoke_drained(struct engine *e, const struct revoking *rv)
{
	for (int i = 0; i < rv->parts->cnt; i++) {
		struct partition_track *pt = track_find(e, rv->parts->elems[i].topic,
		                                        rv->parts->elems[i].partition, NULL);
		if (pt && track_in_flight(pt) > 0)
			return false;
	}
	return true;
}

static void revokes_check(struct engine *e)
{
	struct revoking *rv = e->revokes;
	while (rv) {
		struct revoking *next = rv->next;
		if (revoke_drained(e, rv))
			revoke_complete(e, rv);
		rv = next;
	}
}

static void on_revoke_timeout(uv_timer_t *timer)
{
	struct revoking *rv = timer->data;
	log_warn("revoke drain timeout: releasing partitions with jobs in flight", NULL);
	revoke_complete(rv->e, rv);
}

static void on_revoked(void *opaque, const rd_kafka_topic_partition_list_t *parts, bool lost)
{
	struct engine *e = opaque;
	if (lost || e->closing) {
		/* Lost: another member may own them already; store nothing. Closing:
		 * whatever could finish has finished. */
		release_partitions(e, parts, lost);
		return;
	}
	/* Stop taking their jobs; finish those in flight, then release. */
	kafka_pause_partitions(e->kafka, parts);
	for (int i = 0; i < parts->cnt; i++) {
		size_t idx;
		if (track_find(e, parts->elems[i].topic, parts->elems[i].partition, &idx))
			e->revoking_flags[idx] = true;
	}
	struct revoking *rv = xcalloc(1, sizeof *rv);
	rv->e = e;
	rv->parts = rd_kafka_topic_partition_list_copy(parts);
	uv_timer_init(e->loop, &rv->timer);
	rv->timer.data = rv;
	rv->next = e->revokes;
	e->revokes = rv;
	if (revoke_drained(e, rv)) {
		revoke_complete(e, rv);
		return;
	}
	uv_timer_start(&rv->timer, on_revoke_timeout, (uint64_t)e->cfg->worker.drain_timeout_ms, 0);
}

/* ---------------------------------------------------------------- life cycle */

static void on_signal(uv_signal_t *s, int signum)
{
	struct engine *e = s->data;
	if (++e->signals > 1) {
		log_warn("second signal: exiting at once", NULL);
		_exit(1);
	}
	char sig[16];
	snprintf(sig, sizeof sig, "%d", signum);
	log_info("signal received: draining", "signal", sig, NULL);
	engine_stop(e);
}

struct engine *engine_new(uv_loop_t *loop, const struct config *cfg, char *errstr,
                          size_t errstr_size)
{
	struct engine *e = xcalloc(1, sizeof *e);
	e->loop = loop;
	e->cfg = cfg;
	e->ids = idmap_new();
	char host[64] = "worker";
	gethostname(host, sizeof host - 1);
	snprintf(e->worker_id, sizeof e->worker_id, "%s-%d", host, (int)getpid());

	struct redis_options ropt = {
	        .host = cfg->redis.host,
	        .port = cfg->redis.port,
	        .password = cfg->redis.password,
	        .db = cfg->redis.db,
	        .timeout_ms = cfg->redis.timeout_ms,
	};
	if (redis_probe(&ropt, errstr, errstr_size) != 0)
		goto fail;
	struct kafka_handlers h = {
	        .message = on_message,
	        .assigned = on_assigned,
	        .revoked = on_revoked,
	        .delivered = on_delivered,
	        .producer_reset = on_producer_reset,
	};
	e->kafka = kafka_new(loop, cfg, &h, e, errstr, errstr_size);
	if (!e->kafka)
		goto fail;
	if (kafka_probe(e->kafka, 10000, errstr, errstr_size) != 0)
		goto fail;
	e->redis = redis_new(loop, &ropt, on_redis_state, e);
	e->ledger = ledger_new(e->redis, cfg);
	e->pools = xcalloc(cfg->n_providers, sizeof *e->pools);
	for (size_t i = 0; i < cfg->n_providers; i++) {
		e->pools[i] =
		        http_pool_new(loop, cfg->providers[i].max_connections,
		                      (size_t)cfg->worker.max_response_bytes, errstr, errstr_size);
		if (!e->pools[i])
			goto fail;
	}
	return e;
fail:
	if (e->kafka) {
		kafka_close(e->kafka);
		e->kafka = NULL;
	}
	redis_free(e->redis);
	e->redis = NULL;
	ledger_free(e->ledger);
	e->ledger = NULL;
	engine_free(e);
	return NULL;
}

int engine_start(struct engine *e, char *errstr, size_t errstr_size)
{
	redis_start(e->redis);
	if (kafka_start(e->kafka, errstr, errstr_size) != 0)
		return -1;
	uv_prepare_init(e->loop, &e->store_offsets);
	e->store_offsets.data = e;
	uv_prepare_start(&e->store_offsets, on_before_sleep);
	uv_signal_init(e->loop, &e->sigterm);
	uv_signal_init(e->loop, &e->sigint);
	e->sigterm.data = e->sigint.data = e;
	uv_signal_start(&e->sigterm, on_signal, SIGTERM);
	uv_signal_start(&e->sigint, on_signal, SIGINT);
	uv_timer_init(e->loop, &e->drain_timer);
	e->drain_timer.data = e;
	log_info("worker started", "worker", e->worker_id, "group", e->cfg->kafka.group, NULL);
	return 0;
}

static void finish_stop(struct engine *e)
{
	if (e->closing)
		return;
	e->closing = true;
	uv_timer_stop(&e->drain_timer);
	while (e->revokes)
		revoke_complete(e, e->revokes);
	dedupe_flush(e);
	on_before_sleep(&e->store_offsets);
	/* Outputs still unacknowledged are flushed by kafka_close(); their jobs'
	 * offsets are not stored, so another worker takes them again. */
	kafka_close(e->kafka);
	e->kafka = NULL;
	redis_free(e->redis);
	e->redis = NULL;
	for (size_t i = 0; i < e->cfg->n_providers; i++) {
		http_pool_free(e->pools[i]);
		e->pools[i] = NULL;
	}
	while (e->live)
		task_free(e->live);
	uv_close((uv_handle_t *)&e->store_offsets, NULL);
	uv_close((uv_handle_t *)&e->sigterm, NULL);
	uv_close((uv_handle_t *)&e->sigint, NULL);
	uv_close((uv_handle_t *)&e->drain_timer, NULL);
	char ok[24], bad[24];
	snprintf(ok, sizeof ok, "%llu", (unsigned long long)e->jobs_ok);
	snprintf(bad, sizeof bad, "%llu", (unsigned long long)e->jobs_error);
	char skipped[24], resent[24];
	snprintf(skipped, sizeof skipped, "%llu", (unsigned long long)e->jobs_skipped);
	snprintf(resent, sizeof resent, "%llu", (unsigned long long)e->jobs_resent);
	log_info("worker stopped", "jobs_ok", ok, "jobs_error", bad, "skipped_done", skipped,
	         "resent", resent, NULL);
}

static void on_drained(uv_timer_t *timer)
{
	finish_stop(timer->data);
}

/* The last job may finish inside a librdkafka callback (a delivery report,
 * served by rd_kafka_poll): the clients are closed on a fresh loop turn, never
 * under their own feet. */
static void maybe_finish_stop(struct engine *e)
{
	if (e->draining && e->in_flight == 0 && !e->closing)
		uv_timer_start(&e->drain_timer, on_drained, 0, 0);
}

static void on_drain_timeout(uv_timer_t *timer)
{
	struct engine *e = timer->data;
	char n[24];
	snprintf(n, sizeof n, "%d", e->in_flight);
	log_warn("drain timeout: leaving unfinished jobs to be consumed again", "in_flight", n,
	         NULL);
	finish_stop(e);
}

void engine_stop(struct engine *e)
{
	if (e->draining)
		return;
	e->draining = true;
	kafka_stop_fetching(e->kafka);
	uv_timer_start(&e->drain_timer, on_drain_timeout, (uint64_t)e->cfg->worker.drain_timeout_ms,
	               0);
	maybe_finish_stop(e);
}

int engine_exit_code(const struct engine *e)
{
	return e->exit_code;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	if (e->pools) {
		for (size_t i = 0; i < e->cfg->n_providers; i++)
			http_pool_free(e->pools[i]);
		free(e->pools);
	}
	for (size_t i = 0; i < e->n_tracks; i++)
		track_release(e->tracks[i]);
	free(e->tracks);
	free(e->revoking_flags);
	free(e->check);
	idmap_free(e->ids);
	ledger_free(e->ledger);
	for (size_t i = 0; i < e->n_done; i++)
		free(e->done_ids[i]);
	free(e->done_ids);
	free(e);
}
