/* engine_upkeep: what the engine does on timers of its own.
 *
 * The reaper (every second) charges the expired leases of dead workers at
 * their estimates and publishes their cost records (SPEC §7). The budget poll
 * (every second) sets the budget and circuit gauges, learns the budgets
 * Redis knows beyond the config, warns of outputs Kafka has not taken and
 * checks the flow (a worker left paused with nothing in flight). */
#include "engine_int.h"

#include "buf.h"
#include "idmap.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- leases of dead workers */

static void on_reap_timer(uv_timer_t *timer);

static void reaped_free(struct reaped_out *r)
{
	free(r->out.value);
	free(r->job_id);
	free(r);
}

void engine_reaped_acked(struct engine *e, struct reaped_out *r)
{
	/* The record is in Kafka: the lease can be forgotten. */
	ledger_reap_ack(e->ledger, r->job_id, r->attempt, NULL, NULL);
	reaped_free(r);
}

void engine_reaped_forget(struct engine *e)
{
	for (struct out_msg *o = e->unacked, *next; o; o = next) {
		next = o->next_unacked;
		if (!o->task) {
			engine_unacked_unlink(e, o);
			reaped_free((struct reaped_out *)o);
		}
	}
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
		engine_outbox_send(e, &r->out);
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

/* ---------------------------------------------------------------- budgets */

/* job_decode's lookup: is name a budget Redis knows (as of the last poll)? */
bool engine_budget_known(void *opaque, const char *name)
{
	struct engine *e = opaque;
	return e->redis_budgets && idmap_get(e->redis_budgets, name) != NULL;
}

void engine_budget_names_free(struct engine *e)
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
		engine_budget_names_free(e);
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

static void on_budget_poll(uv_timer_t *timer)
{
	struct engine *e = timer->data;
	/* Flow control is driven by jobs ending; this catches a worker left
	 * paused with nothing in flight (e.g. after partitions were lost). */
	engine_flow_check(e);
	int64_t now = time_mono_ms();
	engine_unacked_warn(e, now);
	for (size_t i = 0; i < e->cfg->n_models && e->health; i++)
		metrics_set(e->metrics, METRIC_CIRCUIT_OPEN,
		            (const char *[]){e->cfg->models[i].name},
		            health_circuit(e->health, (int)i, now) == HEALTH_OPEN);
	if (!e->closing && redis_ready(e->redis))
		ledger_budget_list(e->ledger, on_budgets, e);
}

void engine_upkeep_start(struct engine *e)
{
	uv_timer_init(e->loop, &e->reaper);
	e->reaper.data = e;
	uv_timer_start(&e->reaper, on_reap_timer, 1000, 1000);
	uv_timer_init(e->loop, &e->budget_poll);
	e->budget_poll.data = e;
	uv_timer_start(&e->budget_poll, on_budget_poll, 500, 1000);
}
