/* engine_outbox: a task's outputs (result, cost records, DLQ record), from
 * building them to Kafka's acknowledgement.
 *
 * Every output is kept, on the unacknowledged list, until Kafka acknowledged
 * it: a failed delivery is produced again, and after a fatal producer error
 * (the producer is rebuilt) every output not yet acknowledged is. */
#include "engine_int.h"

#include "buf.h"
#include "log.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void produce_out(struct engine *e, struct out_msg *o);

/* Builds every output of the task: the result, a cost record per billed
 * attempt and, for an error, the DLQ record. */
void task_keep_prior_costs(struct task *t, const redisReply *costs)
{
	if (t->prior_costs || !costs || costs->type != REDIS_REPLY_ARRAY || !costs->elements)
		return;
	t->prior_costs = xcalloc(costs->elements, sizeof *t->prior_costs);
	for (size_t i = 0; i < costs->elements; i++)
		if (costs->element[i]->type == REDIS_REPLY_STRING)
			t->prior_costs[t->n_prior_costs++] =
			        xstrndup(costs->element[i]->str, costs->element[i]->len);
}

void task_drop_outputs(struct task *t)
{
	for (size_t i = 0; i < t->n_outs; i++)
		free(t->outs[i].value);
	free(t->outs);
	t->outs = NULL;
	t->n_outs = 0;
}

void task_build_outputs(struct task *t)
{
	struct engine *e = t->e;
	const struct config *cfg = e->cfg;
	int64_t now = time_now_ms();
	size_t billed = 0;
	for (size_t i = 0; i < t->n_attempts; i++)
		billed += t->attempts[i].billed;
	t->outs = xcalloc(2 + billed + t->n_prior_costs, sizeof *t->outs);

	struct result_info r = {
	        .id = t->id,
	        .error = t->error,
	        .error_message = t->error_message,
	        .content = t->completion.content,
	        .parsed_json = t->parsed_json,
	        .tool_calls = t->completion.tool_calls,
	        .n_tool_calls = t->completion.n_tool_calls,
	        .refusal = t->completion.refusal,
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
			r.usage.cache_write_tokens += t->attempts[i].usage.cache_write_tokens;
			r.usage.reasoning_tokens += t->attempts[i].usage.reasoning_tokens;
		}
	}
	struct buf b = {0};
	output_result(&b, cfg, &r);
	task_add_out(t, cfg->kafka.results_topic, &b, true);
	for (size_t i = 0; i < t->n_attempts; i++) {
		if (!t->attempts[i].billed)
			continue;
		output_cost(&b, cfg, t->id, &t->attempts[i], t->job.budget_name, false, now);
		task_add_out(t, cfg->kafka.costs_topic, &b, false);
	}
	/* Billed attempts of earlier runs that died before their outputs went
	 * out: charged then, published now (SPEC §4: a record per billed call;
	 * a second copy of a record is the same (job_id, attempt), which the
	 * invariant counts once). */
	for (size_t i = 0; i < t->n_prior_costs; i++) {
		buf_puts(&b, t->prior_costs[i]);
		task_add_out(t, cfg->kafka.costs_topic, &b, false);
	}
	if (t->error != ERR_NONE) {
		output_dlq(&b, t->job.root, t->raw, t->raw_len, t->error, t->error_message,
		           t->track ? track_topic(t->track) : t->src_topic, t->partition, t->offset,
		           now);
		task_add_out(t, cfg->kafka.dlq_topic, &b, false);
		log_info("job failed", "id", t->id, "code", error_code_name(t->error), NULL);
	}
	buf_free(&b);
}

struct out_msg *task_add_out(struct task *t, const char *topic, struct buf *value, bool is_result)
{
	struct out_msg *o = &t->outs[t->n_outs++];
	o->task = t;
	o->topic = topic;
	o->len = value->len;
	o->value = buf_take(value);
	o->is_result = is_result;
	return o;
}

/* The outputs as Redis keeps them for a re-send: one JSON per line, result first. */
void task_outputs_blob(const struct task *t, struct buf *b)
{
	for (size_t i = 0; i < t->n_outs; i++) {
		if (t->outs[i].topic == t->e->cfg->kafka.dlq_topic)
			continue;
		if (b->len)
			buf_puts(b, "\n");
		buf_append(b, t->outs[i].value, t->outs[i].len);
	}
}

/* Produces every output of the task (built already). */
void task_produce(struct task *t)
{
	struct engine *e = t->e;
	t->acks_pending = (int)t->n_outs;
	if (t->n_outs == 0) {
		task_done(t);
		return;
	}
	for (size_t i = 0; i < t->n_outs; i++)
		engine_outbox_send(e, &t->outs[i]);
	/* Its slot goes to the next job (engine_intake.c, slot_free). */
	t->acking = true;
	e->in_flight--;
	e->acking++;
	engine_backlog_start(e);
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

void engine_outbox_send(struct engine *e, struct out_msg *o)
{
	unacked_link(e, o);
	produce_out(e, o);
}

void engine_unacked_unlink(struct engine *e, struct out_msg *o)
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
	uv_close((uv_handle_t *)timer, engine_timer_closed);
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

void engine_on_delivered(void *opaque, void *msg_opaque, rd_kafka_resp_err_t err)
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
	engine_unacked_unlink(e, o);
	struct task *t = o->task;
	if (!t) {
		engine_reaped_acked(e, (struct reaped_out *)o);
		return;
	}
	if (--t->acks_pending == 0) {
		if (t->bsub)
			batch_stop_at("batch_mid_produce");
		if (t->error == ERR_NONE)
			engine_dedupe_mark_done(e, t->id);
		task_done(t);
	}
}

void engine_on_producer_reset(void *opaque)
{
	struct engine *e = opaque;
	/* An output waiting for its retry timer is produced by the timer: sent
	 * here as well, it could be acknowledged and freed before the timer. */
	for (struct out_msg *o = e->unacked; o; o = o->next_unacked)
		if (!o->retry_pending)
			produce_out(e, o);
}

/* ---------------------------------------------------------------- outputs Kafka has not taken */

/* Outputs wait for Kafka as long as message.timeout.ms (300 s), and their jobs
 * hold their slots meanwhile: a worker that stops for that reason says so. */
#define UNACKED_WARN_MS       5000
#define UNACKED_WARN_EVERY_MS 10000

void engine_unacked_warn(struct engine *e, int64_t now)
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
