/* Unit tests of the worker's Kafka clients (worker/kafka.c) against
 * librdkafka's mock cluster, in process. */
#include "kafka.h"
#include "log.h"
#include "timeutil.h"
#include "unit.h"
#include "uvpool.h"

#include <librdkafka/rdkafka_mock.h>
#include <stdint.h>
#include <stdlib.h>

#define N_MSGS 10

struct fx {
	uv_loop_t loop;
	struct config cfg;
	struct kafka *k;
	int ok[N_MSGS];
	int delivered, failed, resets, ticks;
};

static void on_message(void *opaque, rd_kafka_message_t *msg)
{
	(void)opaque;
	rd_kafka_message_destroy(msg);
}

static void on_assigned(void *opaque, const rd_kafka_topic_partition_list_t *parts)
{
	(void)opaque;
	(void)parts;
}

static void on_revoked(void *opaque, const rd_kafka_topic_partition_list_t *parts, bool lost)
{
	struct fx *f = opaque;
	kafka_release(f->k, parts, lost);
}

static void produce(struct fx *f, int i)
{
	static const char value[] = "an output";
	CHECK_INT(kafka_produce(f->k, "out", NULL, 0, value, sizeof value - 1, NULL,
	                        (void *)(intptr_t)i),
	          0);
}

static void on_delivered(void *opaque, void *msg_opaque, rd_kafka_resp_err_t err)
{
	struct fx *f = opaque;
	int i = (int)(intptr_t)msg_opaque;
	if (err) {
		f->failed++;
		produce(f, i);
		return;
	}
	f->ok[i]++;
	f->delivered++;
}

/* As the engine does: everything not acknowledged is produced again. */
static void on_producer_reset(void *opaque)
{
	struct fx *f = opaque;
	f->resets++;
	for (int i = 0; i < N_MSGS / 2; i++)
		if (!f->ok[i])
			produce(f, i);
}

static void on_tick(uv_timer_t *t)
{
	struct fx *f = t->data;
	f->ticks++;
}

/* Runs the loop until *cond is at least want, for at most 30 s. */
static void run_until(struct fx *f, const int *cond, int want)
{
	int64_t deadline = time_mono_ms() + 30000;
	while (*cond < want && time_mono_ms() < deadline)
		uv_run(&f->loop, UV_RUN_ONCE);
}

/* A fatal error of the idempotent producer (the test hook raises one after
 * two delivery reports) rebuilds it. The old producer is destroyed on libuv's
 * thread pool, held here: the loop goes on firing its timers meanwhile, and
 * the new producer's acknowledgements wait until the old one is gone (the
 * owner frees a value once it is acknowledged; the old producer may still
 * hold it). Once the pool is let go, every output is acknowledged. Before,
 * rd_kafka_destroy() ran on the loop inside the rebuild. */
TEST(fatal_producer_rebuilt_off_the_loop)
{
	struct fx f = {0};
	char err[512];
	static char *inputs[] = {"in"};
	rd_kafka_conf_t *mconf = rd_kafka_conf_new();
	rd_kafka_conf_set(mconf, "log_level", "3", err, sizeof err); /* the host needs no brokers */
	rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, err, sizeof err);
	rd_kafka_mock_cluster_t *mc = mrk ? rd_kafka_mock_cluster_new(mrk, 1) : NULL;
	if (!mc) {
		UNIT_FAIL("mock cluster: %s", err);
		return;
	}
	rd_kafka_mock_topic_create(mc, "in", 1, 1);
	rd_kafka_mock_topic_create(mc, "out", 1, 1);
	f.cfg.kafka.brokers = (char *)rd_kafka_mock_cluster_bootstraps(mc);
	f.cfg.kafka.group = "test-kafka";
	f.cfg.kafka.input_topics = inputs;
	f.cfg.kafka.n_input_topics = 1;
	uv_loop_init(&f.loop);
	struct kafka_handlers h = {.message = on_message,
	                           .assigned = on_assigned,
	                           .revoked = on_revoked,
	                           .delivered = on_delivered,
	                           .producer_reset = on_producer_reset};
	setenv("PROMPTYARD_TEST_FATAL_PRODUCER_AFTER", "2", 1);
	f.k = kafka_new(&f.loop, &f.cfg, &h, &f, err, sizeof err);
	unsetenv("PROMPTYARD_TEST_FATAL_PRODUCER_AFTER");
	CHECK(f.k != NULL);
	if (!f.k)
		goto out;
	CHECK_INT(kafka_start(f.k, err, sizeof err), 0);

	struct pool_hold hold;
	pool_hold(&hold, &f.loop);
	for (int i = 0; i < N_MSGS / 2; i++)
		produce(&f, i);
	run_until(&f, &f.resets, 1);
	CHECK_INT(f.resets, 1);
	int delivered_at_reset = f.delivered;

	/* Outputs of after the rebuild; the old producer waits for the pool. */
	for (int i = N_MSGS / 2; i < N_MSGS; i++)
		produce(&f, i);
	uv_timer_t tick;
	uv_timer_init(&f.loop, &tick);
	tick.data = &f;
	uv_timer_start(&tick, on_tick, 5, 5);
	run_until(&f, &f.ticks, 40);
	CHECK_INT(f.ticks, 40);
	CHECK_INT(f.delivered, delivered_at_reset);

	pool_release(&hold, &f.loop);
	int64_t deadline = time_mono_ms() + 30000;
	for (;;) {
		int all = 1;
		for (int i = 0; i < N_MSGS; i++)
			all = all && f.ok[i] > 0;
		if (all || time_mono_ms() > deadline)
			break;
		uv_run(&f.loop, UV_RUN_ONCE);
	}
	for (int i = 0; i < N_MSGS; i++)
		if (!f.ok[i])
			UNIT_FAIL("output %d never acknowledged", i);
	CHECK_INT(f.resets, 1);
	uv_timer_stop(&tick);
	uv_close((uv_handle_t *)&tick, NULL);

	kafka_stop_fetching(f.k);
	kafka_close(f.k);
	uv_run(&f.loop, UV_RUN_DEFAULT);
out:
	CHECK_INT(uv_loop_close(&f.loop), 0);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(mrk);
}

int main(void)
{
	log_set_level(getenv("PROMPTYARD_TEST_LOG") ? LOG_DEBUG : LOG_OFF);
	RUN(fatal_producer_rebuilt_off_the_loop);
	return unit_done();
}
