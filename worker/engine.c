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
#include "complexity.h"
#include "health.h"
#include "http.h"
#include "idmap.h"
#include "job.h"
#include "kafka.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "offsets.h"
#include "output.h"
#include "provider.h"
#include "redis.h"
#include "router.h"
#include "testhook.h"
#include "timeutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CHAIN_ATTEMPTS 32

struct task;

/* One message to produce for a task, kept until Kafka acknowledged it so that
 * it can be produced again after a failure. */
struct out_msg {
	struct task *task; /* NULL for a reaped lease's cost record (see reaper) */
	const char *topic;
	char *value;
	size_t len;
	bool is_result;
	bool acked;
	bool retry_pending; /* a produce_later timer will produce it */
	int64_t sent_ms;    /* first produced, monotonic ms */
	struct out_msg *next_unacked, *prev_unacked;
};

/* The cost record of a lease this worker reaped: produced on its own, and
 * acknowledged to the ledger once Kafka has it. */
struct reaped_out {
	struct out_msg out; /* first: an out_msg with task == NULL is one of these */
	char *job_id;
	int attempt;
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

	/* Redis said this job is neither done nor pending (SPEC §9): a dedupe
	 * lookup, or the first reservation, which looks it up in the same step.
	 * Until then no call, no classifier and no output goes out. */
	bool looked_up;
	bool finish_after_lookup; /* ended before its first reservation: look up, then finish */
	uint64_t serial;          /* for reservation tokens (reserve_token) */
	int reserve_seq;          /* the reservation being asked for: its token's last part */
	int waits;                /* reservations deferred for others in a row */
	size_t n_calls;           /* attempts that went to a provider (max_attempts) */
	int admitted_model;       /* health said GO for this model (-1: none yet) */
	bool admit_pending;
	struct http_request pending_req; /* built, waiting for its reservation */
	int pending_model;               /* -1 when none */
	int64_t refused_estimate_nusd;   /* the budget refused this estimate: any
	                                    model at least as costly cannot fit */
	enum error_code last_skip;       /* why the last model was passed over */
	char *skip_message;
	bool parked;                /* budget exhausted, waiting (pause mode) */
	struct job *classifier_job; /* auto's classifier call (attempt 0), in flight */
	bool replayed;              /* outputs re-sent from Redis, no call made */

	struct route route;
	size_t chain_pos;
	int same_retries;
	bool *tried;                  /* per model */
	struct attempt_rec *attempts; /* grown on demand, at most MAX_CHAIN_ATTEMPTS */
	size_t n_attempts, cap_attempts;
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
	bool acking; /* its outputs are with Kafka: it holds no slot (see slot_free) */

	bool id_holder;    /* this task holds its id in engine.ids */
	struct task *dups; /* copies of the same id consumed meanwhile, waiting */
	struct task *next_dup;

	struct health_call call;  /* the HTTP call in flight, for health */
	uv_timer_t *timer;        /* for delays (Retry-After, retries); NULL when unused */
	struct task *next, *prev; /* the engine's live list */
	struct task *next_wait;   /* waiting for Redis */
	struct task *next_slot;   /* waiting for a connection to its provider */
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
	struct health *health;
	struct http_pool **pools;             /* per provider */
	int *calls;                           /* per provider: calls under way, at most
	                                         http_pool_capacity() */
	struct task **slot_head, **slot_tail; /* per provider: calls waiting, FIFO */
	struct metrics *metrics;
	struct metrics_server *metrics_server;
	struct metrics_series *m_in_flight;
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
	int in_flight;           /* jobs holding a slot: taken, not yet handed to Kafka */
	int acking;              /* jobs whose outputs wait for Kafka's acknowledgement */
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
	uint64_t serial;
	int n_parked; /* jobs waiting for budget (on_budget_exhausted = pause) */
	/* Messages taken while max_in_flight jobs run, oldest first (a ring). */
	rd_kafka_message_t **backlog;
	size_t backlog_head, backlog_len, backlog_cap, backlog_max;
	bool backlog_starting; /* backlog_start() is on the stack */
	uv_timer_t reaper;     /* reaps expired leases of dead workers */
	bool reaping;
	uv_timer_t budget_poll;      /* budget gauges, and the budgets Redis knows */
	int64_t unacked_warned_ms;   /* the last warning of outputs Kafka has not taken */
	uv_timer_t hold_timer;       /* turns a long hold into a pause */
	struct idmap *redis_budgets; /* names (keys owned by budget_names) */
	char **budget_names;
	size_t n_budget_names;
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
	http_request_clear(&t->pending_req);
	free(t->skip_message);
	if (t->classifier_job) {
		job_clear(t->classifier_job);
		free(t->classifier_job);
	}
	if (t->admit_pending && e->health)
		health_admit_cancel(e->health, t);
	health_call_end(e->health, &t->call);
	if (t->parked)
		e->n_parked--;
	free(t->tried);
	free(t->attempts);
	free(t->error_message);
	free(t->key);
	free(t->raw);
	free(t->id);
	free(t);
}

/* The next attempt record (zeroed), or NULL when the job has had
 * MAX_CHAIN_ATTEMPTS. Most jobs need one or two: the array grows. */
static struct attempt_rec *attempt_new(struct task *t)
{
	if (t->n_attempts == MAX_CHAIN_ATTEMPTS)
		return NULL;
	if (t->n_attempts == t->cap_attempts) {
		t->cap_attempts = t->cap_attempts ? t->cap_attempts * 2 : 2;
		t->attempts = xrealloc(t->attempts, t->cap_attempts * sizeof *t->attempts);
	}
	struct attempt_rec *a = &t->attempts[t->n_attempts++];
	memset(a, 0, sizeof *a);
	return a;
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

static void on_held_too_long(uv_timer_t *timer)
{
	struct engine *e = timer->data;
	if (!kafka_held(e->kafka) || e->draining || e->closing)
		return;
	/* Full for long: pause, so that polling (and with it rebalances and
	 * max.poll.interval.ms) goes on. */
	kafka_pause(e->kafka);
	kafka_hold(e->kafka, false);
}

/* How long the worker may hold (stop taking from librdkafka's queue) before
 * it pauses instead, so that rebalances and errors are served again. */
#define HOLD_MAX_MS 10000

/* Whether a job may start. A job holds one of max_in_flight slots from the
 * moment it is taken until its outputs are handed to the producer; waiting
 * for Kafka's acknowledgement (the producer's linger and round trip) it
 * holds none, so a slot's turn is the job's own work, and the producer may
 * linger long enough to send large batches (its broker thread's cost is per
 * batch). Jobs waiting for acknowledgement are capped at max_in_flight too:
 * a producer that falls behind stops the intake rather than fill memory. */
static bool slot_free(const struct engine *e)
{
	int max = e->cfg->worker.max_in_flight;
	return e->in_flight < max && e->acking < max;
}

/* The gauge counts every job in the worker, slotted or acking. */
static void in_flight_gauge(struct engine *e)
{
	metrics_series_set(e->m_in_flight, e->in_flight + e->acking);
}

/* Backpressure. At max_in_flight a message taken from Kafka waits in the
 * backlog and starts, in order, the moment a job ends; polling goes on, so
 * rebalances and errors are served. When the backlog reaches backlog_max
 * the worker holds: it takes nothing more from librdkafka, whose queue
 * keeps the prefetch (it stops fetching at queued.max.messages.kbytes), and
 * takes again once the backlog is half empty: a worker full for a moment
 * never waits for a refetch. A hold that lasts HOLD_MAX_MS becomes a pause
 * of the assigned partitions (what librdkafka prefetched is dropped and
 * fetched again later), resumed (only those paused here) the same way. Out
 * of budget in pause mode, they pause until the budget has room.
 *
 * A backlogged message has no ticket in its partition's track, so the
 * watermark never passes it: dropping it (its partition revoked, a drain)
 * loses nothing, the group reads it again from the committed offset. */
static void flow_check(struct engine *e)
{
	if (e->draining || e->closing)
		return;
	if (e->n_parked > 0) {
		kafka_pause(e->kafka);
		kafka_hold(e->kafka, false);
		uv_timer_stop(&e->hold_timer);
		return;
	}
	bool low = e->backlog_len <= e->backlog_max / 2;
	if (e->backlog_len >= e->backlog_max) {
		if (!kafka_held(e->kafka) && !kafka_paused(e->kafka)) {
			kafka_hold(e->kafka, true);
			uv_timer_start(&e->hold_timer, on_held_too_long, HOLD_MAX_MS, 0);
		}
	} else if (low && kafka_held(e->kafka)) {
		kafka_hold(e->kafka, false);
		uv_timer_stop(&e->hold_timer);
	}
	if (low && kafka_paused(e->kafka))
		kafka_resume(e->kafka);
}

static void backlog_push(struct engine *e, rd_kafka_message_t *m)
{
	if (e->backlog_len == e->backlog_cap) {
		size_t cap = e->backlog_cap ? e->backlog_cap * 2 : 64;
		rd_kafka_message_t **ring = xmalloc(cap * sizeof *ring);
		for (size_t i = 0; i < e->backlog_len; i++)
			ring[i] = e->backlog[(e->backlog_head + i) % e->backlog_cap];
		free(e->backlog);
		e->backlog = ring;
		e->backlog_cap = cap;
		e->backlog_head = 0;
	}
	e->backlog[(e->backlog_head + e->backlog_len++) % e->backlog_cap] = m;
}

static rd_kafka_message_t *backlog_pop(struct engine *e)
{
	rd_kafka_message_t *m = e->backlog[e->backlog_head];
	e->backlog_head = (e->backlog_head + 1) % e->backlog_cap;
	e->backlog_len--;
	return m;
}

/* Drops the backlogged messages of parts (all of them when parts is NULL). */
static void backlog_drop(struct engine *e, const rd_kafka_topic_partition_list_t *parts)
{
	size_t kept = 0, n = e->backlog_len;
	for (size_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = e->backlog[(e->backlog_head + i) % e->backlog_cap];
		if (!parts || rd_kafka_topic_partition_list_find(parts, rd_kafka_topic_name(m->rkt),
		                                                 m->partition))
			rd_kafka_message_destroy(m);
		else
			e->backlog[(e->backlog_head + kept++) % e->backlog_cap] = m;
	}
	e->backlog_len = kept;
}

static void start_message(struct engine *e, rd_kafka_message_t *m);

/* Starts backlogged messages while there are free slots. */
static void backlog_start(struct engine *e)
{
	if (e->backlog_starting)
		return; /* a job that ended at once: the loop below goes on */
	e->backlog_starting = true;
	while (e->backlog_len && slot_free(e) && !e->draining && !e->closing)
		start_message(e, backlog_pop(e));
	e->backlog_starting = false;
	flow_check(e);
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

static void task_begin(struct task *t);

/* One id is one job: a copy consumed while the same id is in flight waits for
 * it. A job consumed begins at once: its first reservation looks it up. A
 * copy that waited for its twin is looked up first, after the twin's
 * done-mark (dedupe_flush sends those before the lookups, and Redis answers
 * in order), and so is skipped once that one is done. */
static void task_claim(struct task *t, bool waited)
{
	struct task *holder = idmap_get(t->e->ids, t->id);
	if (holder) {
		t->next_dup = holder->dups;
		holder->dups = t;
		return;
	}
	idmap_put(t->e->ids, t->id, t);
	t->id_holder = true;
	if (waited)
		check_later(t);
	else
		task_begin(t);
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
		task_claim(d, true);
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
	if (!t->replayed) {
		const char *labels[] = {t->error == ERR_NONE ? "ok" : "error",
		                        t->error == ERR_NONE ? "" : error_code_name(t->error)};
		metrics_add(e->metrics, METRIC_JOBS_TOTAL, labels, 1);
	}
	struct partition_track *pt = t->track;
	track_done(pt, t->ticket);
	release_dups(t);
	if (t->acking)
		e->acking--;
	else
		e->in_flight--;
	task_free(t);
	in_flight_gauge(e);
	if (e->revokes && track_in_flight(pt) == 0)
		revokes_check(e);
	backlog_start(e);
	maybe_finish_stop(e);
}

/* ---------------------------------------------------------------- producing */

static void unacked_link(struct engine *e, struct out_msg *o)
{
	o->sent_ms = time_mono_ms();
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
	if (!r->e->closing) {
		r->out->retry_pending = false;
		produce_out(r->e, r->out);
	}
	uv_close((uv_handle_t *)timer, timer_closed);
}

static void produce_later(struct engine *e, struct out_msg *o, int64_t delay_ms)
{
	struct retry_produce *r = xcalloc(1, sizeof *r);
	r->e = e;
	r->out = o;
	o->retry_pending = true;
	uv_timer_init(e->loop, &r->timer);
	uv_timer_start(&r->timer, on_retry_produce, (uint64_t)delay_ms, 0);
}

static void produce_out(struct engine *e, struct out_msg *o)
{
	struct task *t = o->task;
	if (!t) {
		struct reaped_out *r = (struct reaped_out *)o;
		rd_kafka_resp_err_t err =
		        kafka_produce(e->kafka, o->topic, r->job_id, strlen(r->job_id), o->value,
		                      o->len, NULL, o);
		if (err)
			produce_later(e, o, 100);
		return;
	}
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

static void reaped_acked(struct engine *e, struct reaped_out *r);

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
	if (!t) {
		reaped_acked(e, (struct reaped_out *)o);
		return;
	}
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
	/* An output waiting for its retry timer is produced by the timer: sent
	 * here as well, it could be acknowledged and freed before the timer. */
	for (struct out_msg *o = e->unacked; o; o = o->next_unacked)
		if (!o->retry_pending)
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
	/* Its slot goes to the next job (slot_free). */
	t->acking = true;
	e->in_flight--;
	e->acking++;
	backlog_start(e);
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
	        .budget = t->job.root && t->error != ERR_INVALID_JOB ? t->job.budget_name : NULL,
	        .attempts = t->attempts,
	        .n_attempts = t->n_attempts,
	        .latency_ms = time_mono_ms() - t->started_mono_ms,
	        .metadata_json = t->error != ERR_INVALID_JOB ? t->job.metadata_json : NULL,
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
		output_cost(&b, cfg, t->id, &t->attempts[i], t->job.budget_name, false, now);
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
	if (!t->looked_up) {
		/* Ended before asking Redis (expired, nothing eligible, ...): a
		 * copy of a job done before must not get a second result. */
		t->finish_after_lookup = true;
		check_later(t);
		return;
	}
	if (!t->outs)
		task_build_outputs(t);
	task_produce(t);
}

/* ---------------------------------------------------------------- attempts */

static void settle_attempt(struct task *t);
static void task_decide(struct task *t);
static void on_attempt_timer(uv_timer_t *timer);
static void record_health(struct task *t, const struct attempt_rec *a, const struct model_conf *m);
static enum outcome outcome_of(const struct http_response *resp, enum response_class cls);
static void task_skip(struct task *t, int model, enum error_code why, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void slot_release(struct engine *e, int p);

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
	slot_release(e, m->provider);
	health_call_end(e->health, &t->call);

	completion_clear(&t->completion);
	t->cls = RESPONSE_RETRYABLE;
	if (resp->error == HTTP_OK)
		t->cls = ops->parse_response(m, resp->status, resp->body, resp->body_len,
		                             &t->completion);
	a->outcome = outcome_of(resp, t->cls);
	a->http_status = resp->error == HTTP_OK ? resp->status : 0;
	a->latency_ms = resp->latency_ms;
	t->retry_after_ms = resp->retry_after_ms;
	record_health(t, a, m);
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
		a->cost_nusd = money_cost_nusd(&m->price, &a->usage);
		t->cost_nusd += a->cost_nusd;
		metrics_add(e->metrics, METRIC_SPEND_USD_TOTAL,
		            (const char *[]){t->job.budget_name, provider, m->name}, a->cost_nusd);
		metrics_add(e->metrics, METRIC_COST_RECORDS_TOTAL, (const char *[]){"false"}, 1);
		if (a->outcome == OUTCOME_OK)
			task_build_outputs(t);
	}
	/* Every call settles, an unbilled one at 0: that frees its reservation
	 * now, rather than leaving it for a reaper to charge at its estimate. */
	t->settle_tries = 0;
	settle_attempt(t);
}

/* ---------------------------------------------------------------- attempts: money */

/* Why a model was passed over; when the chain runs out, the last one is the
 * job's error. */
static void task_skip(struct task *t, int model, enum error_code why, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

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
	in_flight_gauge(e);
	maybe_finish_stop(e);
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
	flow_check(e);
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
			flow_check(e);
		}
		task_later(t, 2000, on_unpark);
		return;
	}
	enum error_code code = t->last_skip != ERR_NONE ? t->last_skip : ERR_PROVIDERS_FAILED;
	task_fail(t, code, "%s", t->skip_message ? t->skip_message : "no model left to try");
}

static void on_reserved(void *opaque, redisReply *reply);
static void send_reserve(struct task *t);

/* What Redis knows of a job (SPEC §9), from a lookup or a reservation. */
enum job_state { JOB_NEW, JOB_DONE, JOB_PENDING };
static void task_found(struct task *t, enum job_state st, const char *outputs, size_t len);

/* A call reserves its budget only once it can go out at once: curl never
 * times out a transfer waiting for a connection, and a lease should cover a
 * call that is running, not one in a queue. So calls wait here, per provider,
 * for one of its slots. */
static void slot_acquire(struct task *t)
{
	struct engine *e = t->e;
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
		e->calls[p]++;
		send_reserve(t);
	}
}

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
	        .estimate_nusd = t->route.entries[mi].estimate_nusd,
	        /* The attempt's timeout, plus room for settling it afterwards. */
	        .lease_ms = p->timeout_ms + 15000,
	        .token = token,
	        .model = m->name,
	        .provider = p->name,
	        .lookup = !t->looked_up,
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

static void on_attempt_timer(uv_timer_t *timer)
{
	task_attempt(timer->data);
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
	if (res.status == LEDGER_JOB_DONE || res.status == LEDGER_JOB_PENDING) {
		/* Nothing was reserved: the call does not go out. */
		http_request_clear(&t->pending_req);
		t->pending_model = -1;
		slot_release(e, m->provider);
		health_release(e->health, mi);
		task_found(t, res.status == LEDGER_JOB_DONE ? JOB_DONE : JOB_PENDING, res.outputs,
		           res.outputs_len);
		return;
	}
	t->looked_up = true;
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
	case LEDGER_JOB_PENDING: break; /* above */
	case LEDGER_EXHAUSTED: {
		char spent[32], limit[32], est[32];
		money_format_usd(res.spent_nusd, spent, sizeof spent);
		money_format_usd(res.limit_nusd, limit, sizeof limit);
		money_format_usd(t->route.entries[mi].estimate_nusd, est, sizeof est);
		task_skip(t, mi, ERR_BUDGET_EXHAUSTED,
		          "budget: %s cannot cover %s's estimate (spent $%s + estimate $%s > limit "
		          "$%s)",
		          res.budget ? res.budget : "?", m->name, spent, est, limit);
		int64_t estimate = t->route.entries[mi].estimate_nusd;
		if (!t->refused_estimate_nusd || estimate < t->refused_estimate_nusd)
			t->refused_estimate_nusd = estimate;
		http_request_clear(&t->pending_req);
		t->pending_model = -1;
		slot_release(e, m->provider);
		health_release(e->health, mi);
		task_attempt(t); /* a cheaper model may still fit */
		return;
	}
	}
	struct attempt_rec *a = attempt_new(t);
	if (!a) {
		/* Skipped models fill the record too; give the lease back. */
		ledger_release(e->ledger, t->id, res.attempt, NULL, NULL);
		http_request_clear(&t->pending_req);
		t->pending_model = -1;
		slot_release(e, m->provider);
		task_fail(t, ERR_PROVIDERS_FAILED, "too many attempts");
		return;
	}
	a->number = res.attempt;
	a->model = mi;
	t->n_calls++;
	struct http_request req = t->pending_req;
	memset(&t->pending_req, 0, sizeof t->pending_req);
	t->pending_model = -1;
	health_call_begin(e->health, mi, &t->call);
	http_pool_start(e->pools[m->provider], &req, e->cfg->providers[m->provider].timeout_ms,
	                on_http_done, t);
}

/* ---------------------------------------------------------------- auto's classifier */

/* Routes again on the classifier's score (or keeps the heuristic route) and
 * starts the first real attempt. */
static void classifier_done(struct task *t, bool have_score, double score)
{
	if (t->classifier_job) {
		job_clear(t->classifier_job);
		free(t->classifier_job);
		t->classifier_job = NULL;
	}
	if (have_score) {
		struct route_context ctx = {
		        .cost_left_nusd =
		                t->job.max_cost_nusd ? t->job.max_cost_nusd - t->cost_nusd : -1,
		        .health = t->e->health,
		        .now_ms = time_mono_ms(),
		        .has_complexity = true,
		        .complexity = score,
		};
		router_route(t->e->cfg, &t->job, &ctx, &t->route);
	}
	task_attempt(t);
}

static void on_classifier_settled(void *opaque, redisReply *reply);

static void settle_classifier(struct task *t)
{
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	ledger_settle_budget(t->e->ledger, t->job.budget_name, t->id, 0, a->cost_nusd, NULL,
	                     on_classifier_settled, t);
}

static void on_classifier_settle_retry(uv_timer_t *timer)
{
	settle_classifier(timer->data);
}

static void on_classifier_settled(void *opaque, redisReply *reply)
{
	struct task *t = opaque;
	if (t->e->closing)
		return;
	struct ledger_settlement st;
	char err[256];
	if (ledger_settle_result(reply, &st, err, sizeof err) != LEDGER_OK) {
		task_later(t, 200, on_classifier_settle_retry);
		return;
	}
	double score = 0;
	bool have = t->completion.content &&
	            complexity_parse_reply(t->completion.content, strlen(t->completion.content),
	                                   &score) == 0;
	completion_clear(&t->completion);
	classifier_done(t, have, score);
}

static void on_classified(void *opaque, const struct http_response *resp)
{
	struct task *t = opaque;
	struct engine *e = t->e;
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	const struct model_conf *m = &e->cfg->models[a->model];
	health_call_end(e->health, &t->call);
	completion_clear(&t->completion);
	t->cls = RESPONSE_RETRYABLE;
	if (resp->error == HTTP_OK)
		t->cls = e->cfg->providers[m->provider].ops->parse_response(
		        m, resp->status, resp->body, resp->body_len, &t->completion);
	a->outcome = outcome_of(resp, t->cls);
	a->http_status = resp->error == HTTP_OK ? resp->status : 0;
	a->latency_ms = resp->latency_ms;
	record_health(t, a, m);
	if (!t->completion.has_usage) {
		completion_clear(&t->completion);
		classifier_done(t, false, 0);
		return;
	}
	/* Charged to the job as attempt 0 (SPEC §6). */
	a->billed = true;
	a->usage = t->completion.usage;
	a->cost_nusd = money_cost_nusd(&m->price, &a->usage);
	t->cost_nusd += a->cost_nusd;
	metrics_add(
	        e->metrics, METRIC_SPEND_USD_TOTAL,
	        (const char *[]){t->job.budget_name, e->cfg->providers[m->provider].name, m->name},
	        a->cost_nusd);
	settle_classifier(t);
}

/* Asks router.classifier_model how hard the job is; false when it cannot be
 * asked (the heuristic's route stands). */
static bool task_classify(struct task *t, int ci)
{
	struct engine *e = t->e;
	const struct model_conf *m = &e->cfg->models[ci];
	const struct provider_conf *p = &e->cfg->providers[m->provider];
	char err[256];
	struct http_request req = {0};
	t->classifier_job = xcalloc(1, sizeof *t->classifier_job);
	if (complexity_classifier_job(e->cfg, &t->job, t->classifier_job, err, sizeof err) != 0 ||
	    p->ops->build_request(p, m, t->classifier_job, COMPLEXITY_CLASSIFIER_MAX_TOKENS, &req,
	                          err, sizeof err) != 0) {
		http_request_clear(&req);
		job_clear(t->classifier_job);
		free(t->classifier_job);
		t->classifier_job = NULL;
		return false;
	}
	struct attempt_rec *a = attempt_new(t); /* the first: never NULL */
	a->number = 0;
	a->model = ci;
	health_call_begin(e->health, ci, &t->call);
	http_pool_start(e->pools[m->provider], &req, p->timeout_ms, on_classified, t);
	return true;
}

/* ---------------------------------------------------------------- attempts: health */

/* Lists a model passed over without a call (circuit open, rate limited). */
static void add_skipped_attempt(struct task *t, int model, enum outcome outcome)
{
	struct attempt_rec *a = attempt_new(t);
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
		int64_t tokens = t->route.est_input + t->route.entries[mi].max_tokens;
		if (mi != model && !t->tried[mi] &&
		    health_circuit(t->e->health, mi, now) != HEALTH_OPEN &&
		    !health_limited(t->e->health, mi, tokens, now))
			return true;
	}
	return false;
}

/* Acts on health's verdict for model: 1 go, 0 skipped (the caller moves on),
 * -1 the task waits (a timer calls task_attempt again). */
static void on_admitted(void *opaque, enum health_verdict v, int64_t retry_ms);

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
	case HEALTH_LIMITED:
		if (!health_cold(t->e->health, model) && other_model_free(t, model)) {
			add_skipped_attempt(t, model, OUTCOME_RATE_LIMITED);
			task_skip(t, model, ERR_PROVIDERS_FAILED,
			          "every candidate model failed (last: %s, %s)", m->name,
			          "rate_limited");
			return 0;
		}
		/* The only way left: the job waits for the limit (SPEC §6), in
		 * the provider's queue; a cold model's turn is asked again soon. */
		if (!health_cold(t->e->health, model)) {
			int64_t tokens = t->route.est_input + t->route.entries[model].max_tokens;
			v = health_wait(t->e->health, model, tokens, on_admitted, t, &retry_ms);
			if (v == HEALTH_PENDING) {
				t->admit_pending = true;
				return -1;
			}
			if (v == HEALTH_CIRCUIT_OPEN)
				return admit_verdict(t, model, v, 0);
		}
		task_later(t, retry_ms > 0 ? (retry_ms < 5000 ? retry_ms : 5000) : 100,
		           on_attempt_timer);
		return -1;
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
	int64_t tokens = t->route.est_input + t->route.entries[model].max_tokens;
	int64_t retry_ms = 0;
	enum health_verdict v =
	        health_admit(t->e->health, model, tokens, on_admitted, t, &retry_ms);
	if (v == HEALTH_PENDING) {
		t->admit_pending = true;
		return -1;
	}
	return admit_verdict(t, model, v, retry_ms);
}

/* What a call's outcome says of the model's health. */
static void record_health(struct task *t, const struct attempt_rec *a, const struct model_conf *m)
{
	struct health *h = t->e->health;
	int64_t tokens = a->usage.input_tokens + a->usage.output_tokens;
	if (a->outcome == OUTCOME_OK) {
		health_record(h, a->model, true, a->latency_ms, tokens);
	} else if (t->cls == RESPONSE_AUTH) {
		health_open_provider(h, m->provider);
		health_release(h, a->model);
	} else if (a->http_status == 429) {
		health_throttle(h, m->provider, t->retry_after_ms);
		health_release(h, a->model);
	} else if (t->cls == RESPONSE_REJECTED || t->cls == RESPONSE_CONTEXT_OVERFLOW) {
		health_release(h, a->model); /* the job's fault, not the model's */
	} else {
		health_record(h, a->model, false, a->latency_ms, tokens);
	}
}

/* Starts the next attempt: the model at route.chain[chain_pos] or the first
 * after it that can still be tried, reserved on the budget first. */
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
		t->reserve_seq++;
		slot_acquire(t);
		return;
	}
	task_out_of_models(t);
}

/* ---------------------------------------------------------------- attempts: outcome */

static void on_settled(void *opaque, redisReply *reply);

/* Settles the last attempt (its actual cost, 0 when unbilled, which frees its
 * reservation); the one that answered carries the job's outputs. */
static void settle_attempt(struct task *t)
{
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	struct buf blob = {0};
	if (a->outcome == OUTCOME_OK)
		outputs_blob(t, &blob);
	ledger_settle_budget(t->e->ledger, t->job.budget_name, t->id, a->number, a->cost_nusd,
	                     a->outcome == OUTCOME_OK ? &blob : NULL, on_settled, t);
	buf_free(&blob);
}

static void on_settle_retry(uv_timer_t *timer)
{
	settle_attempt(timer->data);
}

static void on_settled(void *opaque, redisReply *reply)
{
	struct task *t = opaque;
	if (t->e->closing)
		return;
	struct ledger_settlement st;
	char err[256];
	int rc = ledger_settle_result(reply, &st, err, sizeof err);
	if (rc != LEDGER_OK) {
		/* Fail closed: the spend must be recorded before anything else
		 * happens to the job. Settling is idempotent, so retry until
		 * Redis answers. */
		if (t->settle_tries++ % 50 == 0)
			log_warn("settle pending", "id", t->id, "error",
			         rc == LEDGER_UNREACHABLE ? "redis unreachable" : err, NULL);
		task_later(t, t->settle_tries < 10 ? 100 : 500, on_settle_retry);
		return;
	}
	struct attempt_rec *a = &t->attempts[t->n_attempts - 1];
	if (st.how == LEDGER_CHARGED_ESTIMATE) {
		/* The lease expired first and a reaper charged (and reported) its
		 * estimate: that is what this attempt cost; publish no second record. */
		t->cost_nusd += st.charged_nusd - a->cost_nusd;
		a->cost_nusd = st.charged_nusd;
		a->billed = false;
		if (t->outs) {
			for (size_t i = 0; i < t->n_outs; i++)
				free(t->outs[i].value);
			free(t->outs);
			t->outs = NULL;
			t->n_outs = 0;
		}
	}
	task_decide(t);
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

static void task_begin(struct task *t)
{
	struct engine *e = t->e;
	const struct config *cfg = e->cfg;
	if (t->job.deadline_ms && time_now_ms() > t->job.deadline_ms) {
		task_fail(t, ERR_EXPIRED, "deadline: passed before the first attempt");
		return;
	}
	struct route_context ctx = {.cost_left_nusd =
	                                    t->job.max_cost_nusd ? t->job.max_cost_nusd : -1,
	                            .health = e->health,
	                            .now_ms = time_mono_ms()};
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
	int ci = router_classifier(cfg, &t->job, &t->route);
	if (ci >= 0 && !t->looked_up) {
		/* The classifier's call is bought too: look the job up first. */
		check_later(t);
		return;
	}
	t->tried = xcalloc(cfg->n_models, sizeof *t->tried);
	if (ci >= 0 && task_classify(t, ci))
		return;
	task_attempt(t);
}

/* ---------------------------------------------------------------- leases of dead workers */

static void on_reap_timer(uv_timer_t *timer);

static void reaped_acked(struct engine *e, struct reaped_out *r)
{
	/* The record is in Kafka: the lease can be forgotten. */
	ledger_reap_ack(e->ledger, r->job_id, r->attempt, NULL, NULL);
	free(r->out.value);
	free(r->job_id);
	free(r);
}

static void on_reaped(void *opaque, redisReply *reply)
{
	struct engine *e = opaque;
	e->reaping = false;
	if (e->closing || !reply)
		return;
	size_t n = ledger_reply_entries(reply);
	for (size_t i = 0; i < n; i++) {
		struct ledger_reaped lr;
		char err[256];
		if (ledger_reaped_result(reply, i, &lr, err, sizeof err) != LEDGER_OK) {
			log_error("reap reply", "error", err, NULL);
			continue;
		}
		/* Charged at its estimate: spend is never under-counted (SPEC §7). */
		struct cost_info c = {.job_id = lr.job_id,
		                      .attempt = lr.attempt,
		                      .provider = lr.provider,
		                      .model = lr.model,
		                      .budget = lr.budget,
		                      .cost_nusd = lr.estimate_nusd,
		                      .estimated = true,
		                      .ts_ms = time_now_ms()};
		struct buf b = {0};
		output_cost_record(&b, &c);
		struct reaped_out *r = xcalloc(1, sizeof *r);
		r->job_id = xstrdup(lr.job_id);
		r->attempt = lr.attempt;
		r->out.topic = e->cfg->kafka.costs_topic;
		r->out.len = b.len;
		r->out.value = buf_take(&b);
		char attempt[16];
		snprintf(attempt, sizeof attempt, "%d", lr.attempt);
		log_warn("lease of a dead worker reaped at its estimate", "id", lr.job_id,
		         "attempt", attempt, "worker", lr.worker, NULL);
		metrics_add(e->metrics, METRIC_COST_RECORDS_TOTAL, (const char *[]){"true"}, 1);
		metrics_add(e->metrics, METRIC_SPEND_USD_TOTAL,
		            (const char *[]){lr.budget, lr.provider, lr.model}, lr.estimate_nusd);
		unacked_link(e, &r->out);
		produce_out(e, &r->out);
	}
	if (n == 100) /* more may have expired: go on at once */
		uv_timer_start(&e->reaper, on_reap_timer, 0, 1000);
}

static void on_reap_timer(uv_timer_t *timer)
{
	struct engine *e = timer->data;
	if (e->closing || e->reaping || !redis_ready(e->redis))
		return;
	e->reaping = true;
	ledger_reap(e->ledger, 100, on_reaped, e);
}

/* job_decode's lookup: is name a budget Redis knows (as of the last poll)? */
static bool budget_known(void *opaque, const char *name)
{
	struct engine *e = opaque;
	return e->redis_budgets && idmap_get(e->redis_budgets, name) != NULL;
}

static void budget_names_free(struct engine *e)
{
	for (size_t i = 0; i < e->n_budget_names; i++)
		free(e->budget_names[i]);
	free(e->budget_names);
	idmap_free(e->redis_budgets);
	e->budget_names = NULL;
	e->n_budget_names = 0;
	e->redis_budgets = NULL;
}

static void on_budgets(void *opaque, redisReply *reply)
{
	struct engine *e = opaque;
	if (e->closing)
		return;
	size_t n = ledger_reply_entries(reply);
	if (reply && n) {
		/* The budgets jobs may name beyond the config (promptyard budget set). */
		struct idmap *map = idmap_new();
		char **names = xcalloc(n, sizeof *names);
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			struct ledger_budget b;
			char err[128];
			if (ledger_budget_result(reply, i, &b, err, sizeof err) != LEDGER_OK ||
			    !b.known)
				continue;
			names[k] = xstrdup(b.name);
			idmap_put(map, names[k], names[k]);
			k++;
		}
		budget_names_free(e);
		e->redis_budgets = map;
		e->budget_names = names;
		e->n_budget_names = k;
	}
	for (size_t i = 0; i < n; i++) {
		struct ledger_budget b;
		char err[128];
		if (ledger_budget_result(reply, i, &b, err, sizeof err) != LEDGER_OK || !b.known)
			continue;
		metrics_set(e->metrics, METRIC_BUDGET_REMAINING_USD, (const char *[]){b.name},
		            b.limit_nusd - b.spent_nusd - b.reserved_nusd);
	}
}

/* Outputs wait for Kafka as long as message.timeout.ms (300 s), and their jobs
 * hold their slots meanwhile: a worker that stops for that reason says so. */
#define UNACKED_WARN_MS       5000
#define UNACKED_WARN_EVERY_MS 10000

static void unacked_check(struct engine *e, int64_t now)
{
	if (now - e->unacked_warned_ms < UNACKED_WARN_EVERY_MS)
		return;
	size_t n = 0;
	const struct out_msg *oldest = NULL;
	for (const struct out_msg *o = e->unacked; o; o = o->next_unacked) {
		if (now - o->sent_ms < UNACKED_WARN_MS)
			continue;
		n++;
		if (!oldest || o->sent_ms < oldest->sent_ms)
			oldest = o;
	}
	if (!n)
		return;
	e->unacked_warned_ms = now;
	char count[24], age[24];
	snprintf(count, sizeof count, "%zu", n);
	snprintf(age, sizeof age, "%lld", (long long)((now - oldest->sent_ms) / 1000));
	log_warn("outputs not acknowledged by Kafka", "count", count, "oldest_s", age, "topic",
	         oldest->topic, NULL);
}

static void on_budget_poll(uv_timer_t *timer)
{
	struct engine *e = timer->data;
	/* Flow control is driven by jobs ending; this catches a worker left
	 * paused with nothing in flight (e.g. after partitions were lost). */
	flow_check(e);
	int64_t now = time_mono_ms();
	unacked_check(e, now);
	for (size_t i = 0; i < e->cfg->n_models && e->health; i++)
		metrics_set(e->metrics, METRIC_CIRCUIT_OPEN,
		            (const char *[]){e->cfg->models[i].name},
		            health_circuit(e->health, (int)i, now) == HEALTH_OPEN);
	if (!e->closing && redis_ready(e->redis))
		ledger_budget_list(e->ledger, on_budgets, e);
}

/* ---------------------------------------------------------------- consuming */

static void on_message(void *opaque, rd_kafka_message_t *m)
{
	struct engine *e = opaque;
	size_t idx;
	if (e->draining || e->closing ||
	    !track_find(e, rd_kafka_topic_name(m->rkt), m->partition, &idx) ||
	    e->revoking_flags[idx]) {
		/* Not started (draining, or its partition is being revoked or no
		 * longer ours): its offset is not stored, the group reads it again. */
		rd_kafka_message_destroy(m);
		return;
	}
	if (e->backlog_len || !slot_free(e)) {
		backlog_push(e, m);
		flow_check(e);
		return;
	}
	start_message(e, m);
}

static void start_message(struct engine *e, rd_kafka_message_t *m)
{
	const struct config *cfg = e->cfg;
	struct task *t = xcalloc(1, sizeof *t);
	const char *topic = rd_kafka_topic_name(m->rkt);
	char err[512];

	t->e = e;
	t->serial = ++e->serial;
	t->pending_model = -1;
	t->admitted_model = -1;
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
	in_flight_gauge(e);

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
	if (rc != 0) {
		t->looked_up = true; /* an invalid job is answered, never looked up */
		task_fail(t, ERR_INVALID_JOB, "%s", err);
		return;
	}
	task_claim(t, false);
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

/* What a lookup found (dedupe_check.lua, or a reservation that looked the
 * job up): done skips the job, pending with its outputs re-sends them,
 * anything else lets it go on. */
static void task_found(struct task *t, enum job_state st, const char *outputs, size_t len)
{
	if (st == JOB_DONE) {
		/* Its ok result was acknowledged before: nothing to do. */
		t->e->jobs_skipped++;
		t->error = ERR_NONE;
		t->replayed = true;
		task_produce(t);
	} else if (st == JOB_PENDING && outputs) {
		task_replay(t, outputs, len);
	} else {
		t->looked_up = true;
		if (t->finish_after_lookup)
			task_finish(t);
		else
			task_begin(t);
	}
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
		redisReply *r = reply->element[i];
		bool has_str = r->type == REDIS_REPLY_ARRAY && r->elements > 1 &&
		               r->element[1]->type == REDIS_REPLY_STRING;
		const char *state = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
		                                    r->element[0]->type == REDIS_REPLY_STRING
		                            ? r->element[0]->str
		                            : "new";
		enum job_state st = strcmp(state, "done") == 0      ? JOB_DONE
		                    : strcmp(state, "pending") == 0 ? JOB_PENDING
		                                                    : JOB_NEW;
		task_found(cb->tasks[i], st, has_str ? r->element[1]->str : NULL,
		           has_str ? r->element[1]->len : 0);
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
	/* New partitions start paused if the worker was paused (kafka.c), and
	 * resume with the others; the budget poll runs flow_check() each second
	 * besides, from outside librdkafka's callback. */
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
	backlog_drop(e, parts);
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

/* /readyz: a partition assignment or an idle group member, Redis reachable,
 * the producer healthy (SPEC §11). */
static bool engine_ready(void *opaque, char *reason, size_t reason_size)
{
	struct engine *e = opaque;
	const char *why = NULL;
	if (e->draining)
		why = "draining";
	else if (!e->redis || !redis_ready(e->redis))
		why = "redis unreachable";
	else if (!e->kafka || !kafka_producer_healthy(e->kafka))
		why = "kafka producer rebuilding";
	else if (!kafka_member(e->kafka))
		why = "not yet a member of the consumer group";
	metrics_set(e->metrics, METRIC_REDIS_CONNECTED, NULL, e->redis && redis_ready(e->redis));
	metrics_set(e->metrics, METRIC_ASSIGNED_PARTITIONS, NULL,
	            e->kafka ? kafka_assigned(e->kafka) : 0);
	if (why)
		snprintf(reason, reason_size, "%s", why);
	return why == NULL;
}

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
	/* A quarter of the slots: enough to bridge a refetch after a resume. */
	e->backlog_max = (size_t)(cfg->worker.max_in_flight / 4);
	if (e->backlog_max < 16)
		e->backlog_max = 16;
	e->ids = idmap_new();
	job_set_budget_lookup(budget_known, e);
	e->metrics = metrics_new();
	e->m_in_flight = metrics_series(e->metrics, METRIC_IN_FLIGHT_JOBS, NULL);
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
	const char *period = testhook_getenv("PROMPTYARD_TEST_RATE_PERIOD_MS");
	struct health_options hopt = {.worker_id = e->worker_id,
	                              .rate_period_ms = period ? atoll(period) : 0};
	e->health = health_new(loop, e->redis, cfg, &hopt);
	ledger_set_worker(e->ledger, e->worker_id);
	e->pools = xcalloc(cfg->n_providers, sizeof *e->pools);
	e->calls = xcalloc(cfg->n_providers, sizeof *e->calls);
	e->slot_head = xcalloc(cfg->n_providers, sizeof *e->slot_head);
	e->slot_tail = xcalloc(cfg->n_providers, sizeof *e->slot_tail);
	for (size_t i = 0; i < cfg->n_providers; i++) {
		const struct provider_conf *p = &cfg->providers[i];
		struct http_pool_options popt = {
		        .max_connections = p->max_connections,
		        .max_body_bytes = (size_t)cfg->worker.max_response_bytes,
		        .ca_file = p->ca_file,
		        .tls = strncmp(p->base_url, "https://", 8) == 0,
		};
		e->pools[i] = http_pool_new(loop, &popt, errstr, errstr_size);
		if (!e->pools[i])
			goto fail;
	}
	return e;
fail:
	if (e->kafka) {
		kafka_close(e->kafka);
		e->kafka = NULL;
	}
	health_free(e->health);
	e->health = NULL;
	redis_free(e->redis);
	e->redis = NULL;
	ledger_free(e->ledger);
	e->ledger = NULL;
	engine_free(e);
	return NULL;
}

int engine_start(struct engine *e, char *errstr, size_t errstr_size)
{
	if (e->cfg->worker.metrics_listen[0]) {
		e->metrics_server =
		        metrics_server_start(e->loop, e->metrics, e->cfg->worker.metrics_listen,
		                             engine_ready, e, errstr, errstr_size);
		if (!e->metrics_server)
			return -1;
	}
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
	uv_timer_init(e->loop, &e->reaper);
	e->reaper.data = e;
	uv_timer_start(&e->reaper, on_reap_timer, 1000, 1000);
	uv_timer_init(e->loop, &e->budget_poll);
	e->budget_poll.data = e;
	uv_timer_init(e->loop, &e->hold_timer);
	e->hold_timer.data = e;
	uv_timer_start(&e->budget_poll, on_budget_poll, 500, 1000);
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
	backlog_drop(e, NULL); /* librdkafka wants its messages back before it closes */
	/* Outputs still unacknowledged are flushed by kafka_close(); their jobs'
	 * offsets are not stored, so another worker takes them again. */
	kafka_close(e->kafka);
	e->kafka = NULL;
	/* Reaped leases' records never acknowledged: a later reap reports them again. */
	for (struct out_msg *o = e->unacked, *next; o; o = next) {
		next = o->next_unacked;
		if (!o->task) {
			unacked_unlink(e, o);
			struct reaped_out *r = (struct reaped_out *)o;
			free(r->out.value);
			free(r->job_id);
			free(r);
		}
	}
	health_free(e->health);
	e->health = NULL;
	redis_free(e->redis);
	e->redis = NULL;
	for (size_t i = 0; i < e->cfg->n_providers; i++) {
		http_pool_free(e->pools[i]);
		e->pools[i] = NULL;
	}
	/* What is left never finished: its offsets were not stored. Its ticket
	 * is closed only so that a revoked partition's track can be freed. */
	while (e->live) {
		track_done(e->live->track, e->live->ticket);
		task_free(e->live);
	}
	metrics_server_stop(e->metrics_server);
	e->metrics_server = NULL;
	uv_close((uv_handle_t *)&e->store_offsets, NULL);
	uv_close((uv_handle_t *)&e->sigterm, NULL);
	uv_close((uv_handle_t *)&e->sigint, NULL);
	uv_close((uv_handle_t *)&e->drain_timer, NULL);
	uv_close((uv_handle_t *)&e->reaper, NULL);
	uv_close((uv_handle_t *)&e->budget_poll, NULL);
	uv_close((uv_handle_t *)&e->hold_timer, NULL);
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
	if (e->draining && e->in_flight == 0 && e->acking == 0 && !e->closing)
		uv_timer_start(&e->drain_timer, on_drained, 0, 0);
}

static void on_drain_timeout(uv_timer_t *timer)
{
	struct engine *e = timer->data;
	char n[24];
	snprintf(n, sizeof n, "%d", e->in_flight + e->acking);
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
	kafka_hold(e->kafka, false); /* paused now: serve what librdkafka hands over */
	uv_timer_stop(&e->hold_timer);
	backlog_drop(e, NULL);
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
	free(e->calls);
	free(e->slot_head);
	free(e->slot_tail);
	for (size_t i = 0; i < e->n_tracks; i++)
		track_release(e->tracks[i]);
	free(e->tracks);
	free(e->backlog);
	free(e->revoking_flags);
	free(e->check);
	idmap_free(e->ids);
	job_set_budget_lookup(NULL, NULL);
	budget_names_free(e);
	metrics_free(e->metrics);
	ledger_free(e->ledger);
	for (size_t i = 0; i < e->n_done; i++)
		free(e->done_ids[i]);
	free(e->done_ids);
	free(e);
}
