/* engine_task: a task's life, from its beginning (routing) to its end
 * (done, freed). A task is one job:
 *
 *   message -> decode -> route -> attempt -> (settle) -> decide -+-> finish -> produce -> acks -> done
 *                                    ^                           |
 *                                    +------ next model ---------+
 *
 * Everything runs on the loop; a task waits only on callbacks (HTTP, Redis,
 * Kafka delivery, a timer), never blocks. */
#include "engine_int.h"

#include "buf.h"
#include "idmap.h"
#include "metrics.h"
#include "timeutil.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void task_begin(struct task *t)
{
	struct engine *e = t->e;
	const struct config *cfg = e->cfg;
	if (t->job.deadline_ms && time_now_ms() > t->job.deadline_ms) {
		task_fail(t, ERR_EXPIRED, "deadline: passed before the first attempt");
		return;
	}
	/* A document by URL is fetched first: its pages are part of every
	 * model's estimate (SPEC §13). Images wait for a model that needs
	 * their bytes (task_attempt). */
	if (task_fetch(t, 1u << PART_IMAGE, task_begin))
		return;
	t->batch_mode = engine_batch_mode(e, &t->job);
	task_route(t);
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
	t->tried = xcalloc(cfg->n_models, sizeof *t->tried);
	if (ci >= 0)
		task_classify(t, ci); /* its reservation looks the job up, as any first one */
	else
		task_attempt(t);
}

void task_route(struct task *t)
{
	struct route_context ctx = {.cost_left_nusd =
	                                    t->job.max_cost_nusd ? t->job.max_cost_nusd : -1,
	                            .health = t->e->health,
	                            .now_ms = time_mono_ms(),
	                            .batch_prices = t->batch_mode};
	router_route(t->e->cfg, &t->job, &ctx, &t->route);
}

/* The next attempt record (zeroed), or NULL when the job has had
 * MAX_CHAIN_ATTEMPTS. Most jobs need one or two: the array grows. */
struct attempt_rec *task_attempt_new(struct task *t)
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
void task_later(struct task *t, int64_t delay_ms, uv_timer_cb fn)
{
	if (!t->timer) {
		t->timer = xcalloc(1, sizeof *t->timer);
		uv_timer_init(t->e->loop, t->timer);
		t->timer->data = t;
	}
	uv_timer_start(t->timer, fn, (uint64_t)(delay_ms > 0 ? delay_ms : 0), 0);
}

void task_fail(struct task *t, enum error_code code, const char *fmt, ...)
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

void task_finish(struct task *t)
{
	if (!t->looked_up) {
		/* Ended before asking Redis (expired, nothing eligible, ...): a
		 * copy of a job done before must not get a second result. */
		t->finish_after_lookup = true;
		task_check_later(t);
		return;
	}
	if (!t->outs)
		task_build_outputs(t);
	task_produce(t);
}

static void task_leave(struct task *t);

void task_done(struct task *t)
{
	struct engine *e = t->e;
	if (t->error == ERR_NONE)
		e->jobs_ok++;
	else
		e->jobs_error++;
	/* The day's job counts (the dashboard): a job once, when its result
	 * is in Kafka; a copy skipped as done has no output and is not one. */
	if (t->n_outs)
		e->jobs_finished[t->error]++;
	if (!t->replayed) {
		const char *labels[] = {t->error == ERR_NONE ? "ok" : "error",
		                        t->error == ERR_NONE ? "" : error_code_name(t->error)};
		metrics_add(e->metrics, METRIC_JOBS_TOTAL, labels, 1);
	}
	task_leave(t);
}

void task_handed_over(struct task *t)
{
	task_leave(t);
}

/* The end of t in this worker: its offset finished (a task from Kafka),
 * its id passed on, its slot freed, t freed. */
static void task_leave(struct task *t)
{
	struct engine *e = t->e;
	/* A task a collector runs from Redis has no partition to finish. */
	if (t->track)
		track_done(t->track, t->ticket);
	/* A revoke may wait for the partition's last job. Asked now: the track
	 * may go with t (released, its last holder). */
	bool drained = t->track && track_in_flight(t->track) == 0;
	task_release_dups(t);
	if (t->acking)
		e->acking--;
	else
		e->in_flight--;
	task_free(t);
	engine_in_flight_gauge(e);
	if (e->revokes && drained)
		engine_revokes_check(e);
	engine_backlog_start(e);
	engine_maybe_finish_stop(e);
}

void engine_timer_closed(uv_handle_t *h)
{
	free(h);
}

void task_link(struct task *t)
{
	struct engine *e = t->e;
	t->next = e->live;
	if (e->live)
		e->live->prev = t;
	e->live = t;
	e->in_flight++;
	engine_in_flight_gauge(e);
}

void task_free(struct task *t)
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
		uv_close((uv_handle_t *)t->timer, engine_timer_closed);
		t->timer = NULL;
	}
	task_drop_outputs(t);
	task_fetch_forget(t);
	if (t->bsub)
		task_batch_gone(t);
	for (size_t i = 0; i < t->n_attempts; i++)
		free(t->attempts[i].batch_id);
	free(t->src_topic);
	free(t->batch_outputs);
	if (t->headers)
		rd_kafka_headers_destroy(t->headers);
	job_clear(&t->job);
	router_route_clear(&t->route);
	completion_clear(&t->completion);
	free(t->parsed_json);
	for (size_t i = 0; i < t->n_prior_costs; i++)
		free(t->prior_costs[i]);
	free(t->prior_costs);
	http_request_clear(&t->pending_req);
	free(t->skip_message);
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
	track_unref(t->track);
	free(t);
}
