/* engine: the worker's life cycle. engine_new builds the clients (Kafka,
 * Redis, health, HTTP pools) and checks the brokers and Redis; engine_start
 * subscribes and starts the timers; a signal begins the drain, and the stop
 * closes everything once the drain is over or timed out.
 *
 * The job pipeline itself is in the engine_*.c files (engine_int.h lists
 * them). */
#include "engine_int.h"

#include "buf.h"
#include "idmap.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "testhook.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Before the loop sleeps: store the watermarks that moved, one call each, and
 * send this turn's batched Redis lookups. */
static void on_before_sleep(uv_prepare_t *p)
{
	struct engine *e = p->data;
	engine_store_offsets(e);
	if (!e->closing)
		engine_dedupe_flush(e);
}

/* /readyz: a partition assignment or an idle group member, Redis reachable,
 * the producer healthy (SPEC §11). */
static bool engine_ready(void *opaque, char *reason, size_t reason_size)
{
	struct engine *e = opaque;
	const char *why = NULL;
	if (e->draining)
		why = "draining";
	else if (!e->redis)
		why = "redis unreachable";
	else if (!redis_ready(e->redis))
		why = redis_unready_reason(e->redis);
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
	job_set_budget_lookup(engine_budget_known, e);
	e->metrics = metrics_new();
	e->m_in_flight = metrics_series(e->metrics, METRIC_IN_FLIGHT_JOBS, NULL);
	char host[64] = "worker";
	gethostname(host, sizeof host - 1);
	snprintf(e->worker_id, sizeof e->worker_id, "%s-%d", host, (int)getpid());

	struct redis_options ropt = redis_options_from_config(cfg);
	if (redis_probe(&ropt, errstr, errstr_size) != 0)
		goto fail;
	struct kafka_handlers h = {
	        .message = engine_on_message,
	        .assigned = engine_on_assigned,
	        .revoked = engine_on_revoked,
	        .delivered = engine_on_delivered,
	        .producer_reset = engine_on_producer_reset,
	};
	e->kafka = kafka_new(loop, cfg, &h, e, errstr, errstr_size);
	if (!e->kafka)
		goto fail;
	if (kafka_probe(e->kafka, 10000, errstr, errstr_size) != 0)
		goto fail;
	e->redis = redis_new(loop, &ropt, engine_on_redis_state, e);
	e->ledger = ledger_new(e->redis, cfg);
	const char *period = testhook_getenv("PROMPTYARD_TEST_RATE_PERIOD_MS");
	struct health_options hopt = {.worker_id = e->worker_id,
	                              .rate_period_ms = period ? atoll(period) : 0};
	e->health = health_new(loop, e->redis, cfg, &hopt);
	ledger_set_worker(e->ledger, e->worker_id);
	e->calls = xcalloc(cfg->n_providers, sizeof *e->calls);
	e->slot_head = xcalloc(cfg->n_providers, sizeof *e->slot_head);
	e->slot_tail = xcalloc(cfg->n_providers, sizeof *e->slot_tail);
	e->pools = engine_pools_new(loop, cfg, errstr, errstr_size);
	if (!e->pools || engine_fetch_init(e, errstr, errstr_size) != 0)
		goto fail;
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
	uv_timer_init(e->loop, &e->hold_timer);
	e->hold_timer.data = e;
	engine_upkeep_start(e);
	engine_batch_start(e);
	log_info("worker started", "worker", e->worker_id, "group", e->cfg->kafka.group, NULL);
	return 0;
}

static void finish_stop(struct engine *e)
{
	if (e->closing)
		return;
	e->closing = true;
	uv_timer_stop(&e->drain_timer);
	engine_revokes_finish(e);
	engine_dedupe_flush(e);
	on_before_sleep(&e->store_offsets);
	engine_backlog_drop(e, NULL); /* librdkafka wants its messages back before it closes */
	/* Outputs still unacknowledged are flushed by kafka_close(); their jobs'
	 * offsets are not stored, so another worker takes them again. Outputs
	 * Kafka never took fail the stop (engine.h). */
	if (kafka_close(e->kafka) > 0)
		e->exit_code = 1;
	e->kafka = NULL;
	engine_reaped_forget(e);
	health_free(e->health);
	e->health = NULL;
	redis_free(e->redis);
	e->redis = NULL;
	engine_pools_free(e->pools, e->cfg->n_providers);
	e->pools = NULL;
	engine_fetch_close(e);
	engine_batch_free(e); /* no callback of Redis or HTTP can reach it now */
	/* What is left never finished: its offsets were not stored. */
	while (e->live)
		task_free(e->live);
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
void engine_maybe_finish_stop(struct engine *e)
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
	engine_backlog_drop(e, NULL);
	engine_batch_drain(e);
	uv_timer_start(&e->drain_timer, on_drain_timeout, (uint64_t)e->cfg->worker.drain_timeout_ms,
	               0);
	engine_maybe_finish_stop(e);
}

int engine_exit_code(const struct engine *e)
{
	return e->exit_code;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	engine_pools_free(e->pools, e->cfg->n_providers);
	engine_fetch_close(e);
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
	engine_budget_names_free(e);
	metrics_free(e->metrics);
	ledger_free(e->ledger);
	for (size_t i = 0; i < e->n_done; i++)
		free(e->done_ids[i]);
	free(e->done_ids);
	free(e);
}
