/* engine_intake: messages in, and backpressure.
 *
 * A message taken from Kafka starts a task when a slot is free, else waits
 * in the backlog; when the backlog is full the worker holds, then pauses
 * (engine_flow_check explains the rules). */
#include "engine_int.h"

#include "buf.h"
#include "metrics.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
void engine_in_flight_gauge(struct engine *e)
{
	metrics_series_set(e->m_in_flight, e->in_flight + e->acking);
}

/* How long the worker may hold (stop taking from librdkafka's queue) before
 * it pauses instead, so that rebalances and errors are served again. */
#define HOLD_MAX_MS 10000

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
void engine_flow_check(struct engine *e)
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
void engine_backlog_drop(struct engine *e, const rd_kafka_topic_partition_list_t *parts)
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
	t->track = track_ref(engine_track_get(e, topic, m->partition));
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
	task_link(t);

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

/* Starts backlogged messages while there are free slots. */
void engine_backlog_start(struct engine *e)
{
	if (e->backlog_starting)
		return; /* a job that ended at once: the loop below goes on */
	e->backlog_starting = true;
	while (e->backlog_len && slot_free(e) && !e->draining && !e->closing)
		start_message(e, backlog_pop(e));
	e->backlog_starting = false;
	engine_flow_check(e);
}

void engine_on_message(void *opaque, rd_kafka_message_t *m)
{
	struct engine *e = opaque;
	size_t idx;
	if (e->draining || e->closing ||
	    !engine_track_find(e, rd_kafka_topic_name(m->rkt), m->partition, &idx) ||
	    e->revoking_flags[idx]) {
		/* Not started (draining, or its partition is being revoked or no
		 * longer ours): its offset is not stored, the group reads it again. */
		rd_kafka_message_destroy(m);
		return;
	}
	if (e->backlog_len || !slot_free(e)) {
		backlog_push(e, m);
		engine_flow_check(e);
		return;
	}
	start_message(e, m);
}
