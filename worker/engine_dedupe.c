/* engine_dedupe: one id is one job (SPEC §9).
 *
 * A copy consumed while its id is in flight waits for the task holding it.
 * A job is looked up in Redis before anything is bought or produced (its
 * first reservation does it in the same step; others are looked up in one
 * batch per loop turn): done is skipped, finished and not acknowledged is
 * re-sent from Redis. Acknowledged ok jobs are marked done, also in one
 * batch per turn. */
#include "engine_int.h"

#include "buf.h"
#include "idmap.h"
#include "ledger.h"
#include "log.h"
#include "redis.h"

#include <stdlib.h>
#include <string.h>

/* One id is one job: a copy consumed while the same id is in flight waits for
 * it. A job consumed begins at once: its first reservation looks it up. A
 * copy that waited for its twin is looked up first, after the twin's
 * done-mark (engine_dedupe_flush sends those before the lookups, and Redis answers
 * in order), and so is skipped once that one is done. */
void task_claim(struct task *t, bool waited)
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
		task_check_later(t);
	else
		task_begin(t);
}

/* Hands the id over to the copies that waited for t. */
void task_release_dups(struct task *t)
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

/* Queues t for this turn's dedupe lookup (engine_dedupe_flush). */
void task_check_later(struct task *t)
{
	struct engine *e = t->e;
	if (e->n_check == e->cap_check) {
		e->cap_check = e->cap_check ? e->cap_check * 2 : 64;
		e->check = xrealloc(e->check, e->cap_check * sizeof *e->check);
	}
	e->check[e->n_check++] = t;
}

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
		task_add_out(t, t->n_outs == 0 ? cfg->kafka.results_topic : cfg->kafka.costs_topic,
		             &b, t->n_outs == 0);
		p += n + 1;
	}
	t->e->jobs_resent++;
	log_info("job finished before: re-sending its outputs", "id", t->id, NULL);
	task_produce(t);
}

static void on_look_again(uv_timer_t *timer)
{
	task_check_later(timer->data);
}

/* What a lookup found (dedupe_check.lua, or a reservation that looked the
 * job up): done skips the job, pending with its outputs re-sends them, a
 * job a recorded provider batch holds is skipped (its collector answers
 * it), one in a batch being submitted is looked up again a second later
 * (SPEC §14: at most one live batch per job; the orphan search ends the
 * wait when its worker died), anything else lets it go on. */
void task_found(struct task *t, enum job_state st, const char *outputs, size_t len)
{
	if (st == JOB_SUBMITTING) {
		task_later(t, 1000, on_look_again);
		return;
	}
	if (st == JOB_DONE || st == JOB_BATCHED) {
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

/* ---------------------------------------------------------------- batches */

struct check_batch {
	struct engine *e;
	struct task **tasks;
	size_t n;
};

static void on_checked(void *opaque, redisReply *reply)
{
	struct check_batch *cb = opaque;
	struct engine *e = cb->e;
	if (e->closing)
		goto out;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != cb->n) {
		/* Fail closed: these jobs wait for Redis, first in the next batch. */
		for (size_t i = 0; i < cb->n; i++)
			task_check_later(cb->tasks[i]);
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
		enum job_state st = strcmp(state, "done") == 0         ? JOB_DONE
		                    : strcmp(state, "pending") == 0    ? JOB_PENDING
		                    : strcmp(state, "batched") == 0    ? JOB_BATCHED
		                    : strcmp(state, "submitting") == 0 ? JOB_SUBMITTING
		                                                       : JOB_NEW;
		if (st == JOB_NEW && r->type == REDIS_REPLY_ARRAY && r->elements > 2)
			task_keep_prior_costs(cb->tasks[i], r->element[2]);
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

void engine_dedupe_mark_done(struct engine *e, const char *id)
{
	if (e->n_done == e->cap_done) {
		e->cap_done = e->cap_done ? e->cap_done * 2 : 64;
		e->done_ids = xrealloc(e->done_ids, e->cap_done * sizeof *e->done_ids);
	}
	e->done_ids[e->n_done++] = xstrdup(id);
}

/* The jobs this turn finished, added to the day's stats in one call. Sent
 * with the done-marks, so that a job whose result went out before a crash
 * and is re-sent from Redis (task_replay) was, in all likelihood, counted
 * by neither worker until the re-send; a lost reply is not retried (a count
 * the dashboard shows must not be doubled). */
static void stats_flush(struct engine *e)
{
	struct ledger_job_count counts[ERR_EXPIRED + 1];
	size_t n = 0;
	for (int code = ERR_NONE; code <= ERR_EXPIRED; code++) {
		if (!e->jobs_finished[code])
			continue;
		counts[n].code = code == ERR_NONE ? NULL : error_code_name((enum error_code)code);
		counts[n++].n = e->jobs_finished[code];
		e->jobs_finished[code] = 0;
	}
	if (n)
		ledger_stats_jobs(e->ledger, counts, n, NULL, NULL);
}

/* Once per loop turn: one Redis call for the jobs consumed, one for those
 * done, one for the day's job counts. */
void engine_dedupe_flush(struct engine *e)
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
	if (redis_ready(e->redis))
		stats_flush(e);
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
