/* kafka: consumer and producer served from the loop. */
#include "kafka.h"

#include "buf.h"
#include "log.h"
#include "testhook.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A queue whose non-empty transitions wake the loop through a pipe. */
struct qwatch {
	uv_poll_t poll;
	int fds[2];
	struct kafka *k;
	void (*serve)(struct kafka *k);
};

struct kafka {
	uv_loop_t *loop;
	const struct config *cfg;
	struct kafka_handlers h;
	void *opaque;

	rd_kafka_t *consumer;
	rd_kafka_t *producer;
	rd_kafka_queue_t *cq; /* the consumer queue */
	rd_kafka_queue_t *pq; /* the producer's main queue */
	struct qwatch cw, pw;
	uv_timer_t tick;         /* safety net: serve the queues even without a wakeup */
	uv_timer_t again;        /* serve again soon when a batch stopped early */
	rd_kafka_conf_t *pconf;  /* the producer's configuration, for a rebuild */
	uv_timer_t rebuild;      /* a fatal producer error is handled off the callback */
	struct retired *retired; /* old producers being destroyed off the loop */
	bool producer_fatal;
	bool closing;
	long fatal_after; /* test hook: raise a fatal error after this many reports */
	long reports;
	rd_kafka_topic_partition_list_t *paused;
	bool held;
	/* The assignment as the rebalance callbacks built it: asking librdkafka
	 * (rd_kafka_assignment) blocks on its group thread, which may itself
	 * wait for our unassign call during an outage: a deadlock. */
	rd_kafka_topic_partition_list_t *assignment;
	bool fetching;
	bool member; /* joined the group (assignment may be empty) */
	int assigned;
	int open_handles; /* loop handles, and old producers being destroyed */
};

/* A producer replaced after a fatal error, destroyed on libuv's thread pool:
 * rd_kafka_destroy() joins librdkafka's threads, which takes a while. */
struct retired {
	uv_work_t work;
	rd_kafka_t *rk;
	struct kafka *k;
	uv_sem_t gone; /* posted once rd_kafka_destroy() returned */
	int64_t since_ms;
	struct retired *next;
};

/* ---------------------------------------------------------------- configuration */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                    size_t errstr_size)
{
	char err[256];
	if (rd_kafka_conf_set(conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
		snprintf(errstr, errstr_size, "kafka property %s: %s", key, err);
		return -1;
	}
	return 0;
}

static bool user_sets(const struct config *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->kafka.n_properties; i++)
		if (strcmp(cfg->kafka.property_keys[i], key) == 0)
			return true;
	return false;
}

static void kafka_rebuild_producer(uv_timer_t *t);

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	enum log_level l = level <= 3   ? LOG_ERROR
	                   : level <= 4 ? LOG_WARN
	                   : level <= 6 ? LOG_INFO
	                                : LOG_DEBUG;
	if (l < log_min_level)
		return;
	log_msg(l, "librdkafka", "facility", fac, "text", buf, NULL);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kafka *k = opaque;
	char code[16];
	snprintf(code, sizeof code, "%d", err);
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char why[512];
		rd_kafka_fatal_error(rk, why, sizeof why);
		log_error("kafka fatal error", "reason", why, NULL);
		if (k && rk == k->producer && !k->producer_fatal) {
			/* librdkafka 2.0.2's idempotent producer cannot recover from
			 * this: build a new one and produce again what was not
			 * acknowledged (off this callback, from the loop). */
			k->producer_fatal = true;
			uv_timer_start(&k->rebuild, (uv_timer_cb)kafka_rebuild_producer, 0, 0);
		}
		return;
	}
	/* Transport errors come and go with brokers; librdkafka retries them. */
	log_warn("kafka error", "code", code, "reason", reason, NULL);
}

static rd_kafka_conf_t *base_conf(const struct config *cfg, char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	if (conf_set(conf, "bootstrap.servers", cfg->kafka.brokers, errstr, errstr_size) ||
	    conf_set(conf, "client.id", "promptyard", errstr, errstr_size))
		goto fail;
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

/* The user's properties come last so that they win, except those that would
 * break the delivery guarantees, which are refused by config. */
static int apply_user(rd_kafka_conf_t *conf, const struct config *cfg, bool consumer, char *errstr,
                      size_t errstr_size)
{
	static const char *const consumer_only[] = {
	        "group.id",
	        "auto.offset.reset",
	        "enable.auto.commit",
	        "auto.commit.interval.ms",
	        "session.timeout.ms",
	        "max.poll.interval.ms",
	        "heartbeat.interval.ms",
	        "partition.assignment.strategy",
	        "fetch.wait.max.ms",
	        "fetch.min.bytes",
	        "fetch.max.bytes",
	        "max.partition.fetch.bytes",
	        "queued.min.messages",
	        "queued.max.messages.kbytes",
	        "isolation.level",
	        "group.instance.id",
	        "enable.partition.eof",
	        "check.crcs",
	        "fetch.message.max.bytes",
	};
	static const char *const producer_only[] = {
	        "acks",
	        "request.required.acks",
	        "linger.ms",
	        "queue.buffering.max.ms",
	        "batch.num.messages",
	        "batch.size",
	        "compression.type",
	        "compression.codec",
	        "message.timeout.ms",
	        "delivery.timeout.ms",
	        "retries",
	        "message.send.max.retries",
	        "retry.backoff.ms",
	        "queue.buffering.max.messages",
	        "queue.buffering.max.kbytes",
	        "enable.idempotence",
	        "max.in.flight.requests.per.connection",
	        "max.in.flight",
	        "transactional.id",
	        "enable.gapless.guarantee",
	        "sticky.partitioning.linger.ms",
	        "partitioner",
	};
	for (size_t i = 0; i < cfg->kafka.n_properties; i++) {
		const char *key = cfg->kafka.property_keys[i];
		const char *const *skip = consumer ? producer_only : consumer_only;
		size_t n = consumer ? sizeof producer_only / sizeof *producer_only
		                    : sizeof consumer_only / sizeof *consumer_only;
		bool skipped = false;
		for (size_t j = 0; j < n; j++)
			skipped = skipped || strcmp(skip[j], key) == 0;
		if (skipped)
			continue;
		if (conf_set(conf, key, cfg->kafka.property_values[i], errstr, errstr_size))
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- queue wakeups */

static void on_qwatch(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	struct qwatch *w = (struct qwatch *)p;
	char drain[256];
	while (read(w->fds[0], drain, sizeof drain) > 0)
		;
	w->serve(w->k);
}

static int qwatch_init(struct kafka *k, struct qwatch *w, rd_kafka_queue_t *q,
                       void (*serve)(struct kafka *k), char *errstr, size_t errstr_size)
{
	if (pipe2(w->fds, O_NONBLOCK | O_CLOEXEC) != 0) {
		snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
		return -1;
	}
	w->k = k;
	w->serve = serve;
	uv_poll_init(k->loop, &w->poll, w->fds[0]);
	w->poll.data = k;
	k->open_handles++;
	uv_poll_start(&w->poll, UV_READABLE, on_qwatch);
	rd_kafka_queue_io_event_enable(q, w->fds[1], "1", 1);
	return 0;
}

/* ---------------------------------------------------------------- consumer */

#define SERVE_BATCH 512

static void serve_consumer(struct kafka *k);

static void on_again(uv_timer_t *t)
{
	serve_consumer(t->data);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct kafka *k = opaque;
	k->member = true;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
		if (e) {
			log_error("kafka assign failed", "error", rd_kafka_error_string(e), NULL);
			rd_kafka_error_destroy(e);
			return;
		}
		k->assigned += parts->cnt;
		for (int i = 0; i < parts->cnt; i++)
			rd_kafka_topic_partition_list_add(k->assignment, parts->elems[i].topic,
			                                  parts->elems[i].partition);
		for (int i = 0; i < parts->cnt; i++) {
			char p[16];
			snprintf(p, sizeof p, "%d", (int)parts->elems[i].partition);
			log_info("partition assigned", "topic", parts->elems[i].topic, "partition",
			         p, NULL);
		}
		if (!k->fetching || k->paused) {
			/* New partitions start paused while the worker is full or draining. */
			rd_kafka_pause_partitions(rk, parts);
			if (k->fetching) {
				for (int i = 0; i < parts->cnt; i++)
					rd_kafka_topic_partition_list_add(
					        k->paused, parts->elems[i].topic,
					        parts->elems[i].partition);
			}
		} else {
			/* librdkafka keeps a partition's pause across an unassign: one
			 * paused when it was lost would come back paused for good. */
			rd_kafka_resume_partitions(rk, parts);
		}
		k->h.assigned(k->opaque, parts);
	} else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		bool lost = rd_kafka_assignment_lost(rk);
		for (int i = 0; i < parts->cnt; i++) {
			char p[16];
			snprintf(p, sizeof p, "%d", (int)parts->elems[i].partition);
			log_info(lost ? "partition lost" : "partition revoked", "topic",
			         parts->elems[i].topic, "partition", p, NULL);
			if (k->paused)
				rd_kafka_topic_partition_list_del(k->paused, parts->elems[i].topic,
				                                  parts->elems[i].partition);
		}
		k->h.revoked(k->opaque, parts, lost);
	} else {
		log_error("kafka rebalance error", "error", rd_kafka_err2str(err), NULL);
		rd_kafka_assign(rk, NULL);
	}
}

void kafka_release(struct kafka *k, const rd_kafka_topic_partition_list_t *parts, bool lost)
{
	(void)lost;
	/* Paused here (full, or revoking): cleared before it goes, so that it
	 * is not paused if it comes back (messages fetched meanwhile are not
	 * ours: the engine drops them). */
	rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(parts);
	rd_kafka_resume_partitions(k->consumer, copy);
	rd_kafka_topic_partition_list_destroy(copy);
	rd_kafka_error_t *e = rd_kafka_incremental_unassign(k->consumer, parts);
	if (e) {
		log_warn("kafka unassign failed", "error", rd_kafka_error_string(e), NULL);
		rd_kafka_error_destroy(e);
		return;
	}
	k->assigned -= parts->cnt;
	if (k->assigned < 0)
		k->assigned = 0;
	for (int i = 0; i < parts->cnt; i++)
		rd_kafka_topic_partition_list_del(k->assignment, parts->elems[i].topic,
		                                  parts->elems[i].partition);
}

static void serve_consumer(struct kafka *k)
{
	for (int n = 0; n < SERVE_BATCH; n++) {
		if (k->held)
			return;
		rd_kafka_message_t *m = rd_kafka_consumer_poll(k->consumer, 0);
		if (!m)
			return;
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				log_warn("kafka consume error", "error", rd_kafka_message_errstr(m),
				         NULL);
			rd_kafka_message_destroy(m);
			continue;
		}
		/* A message fetched before a pause or a stop is still handed over:
		 * its position was consumed, so dropping it would lose it. */
		k->h.message(k->opaque, m);
	}
	/* More may be waiting, and the pipe only fires on an empty queue. */
	uv_timer_start(&k->again, on_again, 0, 0);
}

/* ---------------------------------------------------------------- producer */

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka *k = opaque;
	if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
		return; /* purged by a rebuild, which produces them again */
	k->h.delivered(k->opaque, m->_private, m->err);
	if (k->fatal_after > 0 && ++k->reports == k->fatal_after && rk == k->producer)
		rd_kafka_test_fatal_error(
		        rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
		        "promptyard test hook (PROMPTYARD_TEST_FATAL_PRODUCER_AFTER)");
}

static void serve_producer(struct kafka *k);

static void retire_work(uv_work_t *w)
{
	struct retired *r = w->data;
	rd_kafka_destroy(r->rk);
	uv_sem_post(&r->gone);
}

static void retire_done(uv_work_t *w, int status)
{
	struct retired *r = w->data;
	struct kafka *k = r->k;
	(void)status;
	for (struct retired **p = &k->retired; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	char ms[24];
	snprintf(ms, sizeof ms, "%lld", (long long)(time_mono_ms() - r->since_ms));
	log_info("old kafka producer destroyed", "ms", ms, NULL);
	uv_sem_destroy(&r->gone);
	free(r);
	if (--k->open_handles == 0 && k->closing) {
		free(k);
		return;
	}
	if (!k->closing)
		serve_producer(k); /* the acknowledgements that waited */
}

/* Hands a producer to libuv's thread pool to be destroyed. */
static void retire(struct kafka *k, rd_kafka_t *rk)
{
	struct retired *r = xcalloc(1, sizeof *r);
	r->rk = rk;
	r->k = k;
	r->since_ms = time_mono_ms();
	uv_sem_init(&r->gone, 0);
	r->work.data = r;
	r->next = k->retired;
	k->retired = r;
	k->open_handles++;
	uv_queue_work(k->loop, &r->work, retire_work, retire_done);
}

/* Replaces a producer in a fatal state. What it had acknowledged is reported
 * first; the rest is purged and the owner produces it again on the new one.
 * The old producer is destroyed off the loop (retire). Until it is gone, the
 * new producer's delivery reports wait in its queue (serve_producer): the
 * owner frees an output's value once it is acknowledged, and the old
 * producer may still hold that very value (librdkafka sends a value above
 * msg.copy.max.bytes without copying it, and the owner re-produces the same
 * pointers). */
static void kafka_rebuild_producer(uv_timer_t *t)
{
	struct kafka *k = t->data;
	char err[512];
	rd_kafka_t *old = k->producer;
	rd_kafka_queue_io_event_enable(k->pq, -1, NULL, 0);
	rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
	                            RD_KAFKA_PURGE_F_NON_BLOCKING);
	while (rd_kafka_poll(old, 0) > 0)
		;
	rd_kafka_queue_destroy(k->pq);
	k->pq = NULL;
	retire(k, old);
	k->producer = NULL;

	rd_kafka_conf_t *conf = rd_kafka_conf_dup(k->pconf);
	k->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (!k->producer) {
		/* Nothing sensible is left to do: the supervisor restarts us and
		 * the uncommitted jobs are taken again. */
		log_error("kafka producer rebuild failed", "error", err, NULL);
		rd_kafka_conf_destroy(conf);
		abort();
	}
	k->pq = rd_kafka_queue_get_main(k->producer);
	rd_kafka_queue_io_event_enable(k->pq, k->pw.fds[1], "1", 1);
	k->producer_fatal = false;
	k->fatal_after = 0;
	log_warn("kafka producer rebuilt after a fatal error", NULL);
	k->h.producer_reset(k->opaque);
}

static void serve_producer(struct kafka *k)
{
	if (k->retired)
		return; /* see kafka_rebuild_producer */
	for (int n = 0; n < 64; n++)
		if (rd_kafka_poll(k->producer, 0) == 0)
			break;
}

static void on_tick(uv_timer_t *t)
{
	struct kafka *k = t->data;
	serve_producer(k);
	serve_consumer(k);
}

/* ---------------------------------------------------------------- life cycle */

struct kafka *kafka_new(uv_loop_t *loop, const struct config *cfg, const struct kafka_handlers *h,
                        void *opaque, char *errstr, size_t errstr_size)
{
	struct kafka *k = xcalloc(1, sizeof *k);
	rd_kafka_conf_t *cconf = NULL, *pconf = NULL;
	char err[512];
	k->loop = loop;
	k->cfg = cfg;
	k->h = *h;
	k->opaque = opaque;

	cconf = base_conf(cfg, errstr, errstr_size);
	if (!cconf)
		goto fail;
	if (conf_set(cconf, "group.id", cfg->kafka.group, errstr, errstr_size) ||
	    conf_set(cconf, "enable.auto.offset.store", "false", errstr, errstr_size) ||
	    conf_set(cconf, "enable.auto.commit", "true", errstr, errstr_size) ||
	    conf_set(cconf, "auto.commit.interval.ms", "1000", errstr, errstr_size) ||
	    conf_set(cconf, "partition.assignment.strategy", "cooperative-sticky", errstr,
	             errstr_size) ||
	    conf_set(cconf, "queued.max.messages.kbytes", "2048", errstr, errstr_size) ||
	    conf_set(cconf, "enable.partition.eof", "false", errstr, errstr_size))
		goto fail;
	if (!user_sets(cfg, "auto.offset.reset") &&
	    conf_set(cconf, "auto.offset.reset", "earliest", errstr, errstr_size))
		goto fail;
	if (apply_user(cconf, cfg, true, errstr, errstr_size))
		goto fail;
	/* Offsets are ours to store: a user property must not turn it back on. */
	if (conf_set(cconf, "enable.auto.offset.store", "false", errstr, errstr_size))
		goto fail;
	rd_kafka_conf_set_rebalance_cb(cconf, rebalance_cb);
	rd_kafka_conf_set_opaque(cconf, k);

	pconf = base_conf(cfg, errstr, errstr_size);
	if (!pconf)
		goto fail;
	/* librdkafka sends a batch per partition, and its broker thread's cost
	 * is per batch: with outputs keyed over many partitions, a linger of
	 * 1 ms cost 12-18 us of that thread per job in make bench (b), 10 ms
	 * 2-5, 20 ms 1-2. A job's slot is not held while its outputs wait for
	 * the acknowledgement (engine.c, slot_free), so the linger is not part
	 * of a call's turn in the latency-bound bench (a) either (README,
	 * Performance); a result comes at most 20 ms later. */
	if (conf_set(pconf, "linger.ms", "20", errstr, errstr_size) ||
	    conf_set(pconf, "message.timeout.ms", "300000", errstr, errstr_size))
		goto fail;
	if (apply_user(pconf, cfg, false, errstr, errstr_size))
		goto fail;
	/* SPEC §9: acks=all and the idempotent producer, whatever the properties say. */
	if (conf_set(pconf, "enable.idempotence", "true", errstr, errstr_size) ||
	    conf_set(pconf, "acks", "all", errstr, errstr_size))
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(pconf, dr_msg_cb);
	rd_kafka_conf_set_opaque(pconf, k);
	k->pconf = rd_kafka_conf_dup(pconf);
	const char *fa = testhook_getenv("PROMPTYARD_TEST_FATAL_PRODUCER_AFTER");
	k->fatal_after = fa ? atol(fa) : 0;

	k->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, err, sizeof err);
	if (!k->consumer) {
		snprintf(errstr, errstr_size, "kafka consumer: %s", err);
		goto fail;
	}
	cconf = NULL;
	k->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof err);
	if (!k->producer) {
		snprintf(errstr, errstr_size, "kafka producer: %s", err);
		goto fail;
	}
	pconf = NULL;
	rd_kafka_poll_set_consumer(k->consumer);
	k->cq = rd_kafka_queue_get_consumer(k->consumer);
	k->pq = rd_kafka_queue_get_main(k->producer);
	k->paused = NULL;
	k->assignment = rd_kafka_topic_partition_list_new(16);
	return k;
fail:
	if (cconf)
		rd_kafka_conf_destroy(cconf);
	if (pconf)
		rd_kafka_conf_destroy(pconf);
	if (k->consumer)
		rd_kafka_destroy(k->consumer);
	if (k->producer)
		rd_kafka_destroy(k->producer);
	if (k->pconf)
		rd_kafka_conf_destroy(k->pconf);
	free(k);
	return NULL;
}

int kafka_probe(struct kafka *k, int timeout_ms, char *errstr, size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err = rd_kafka_metadata(k->producer, 0, NULL, &md, timeout_ms);
	if (err) {
		snprintf(errstr, errstr_size, "kafka brokers %s: %s", k->cfg->kafka.brokers,
		         rd_kafka_err2str(err));
		return -1;
	}
	rd_kafka_metadata_destroy(md);
	return 0;
}

int kafka_start(struct kafka *k, char *errstr, size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *topics =
	        rd_kafka_topic_partition_list_new((int)k->cfg->kafka.n_input_topics);
	for (size_t i = 0; i < k->cfg->kafka.n_input_topics; i++)
		rd_kafka_topic_partition_list_add(topics, k->cfg->kafka.input_topics[i],
		                                  RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t err = rd_kafka_subscribe(k->consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err) {
		snprintf(errstr, errstr_size, "kafka subscribe: %s", rd_kafka_err2str(err));
		return -1;
	}
	k->fetching = true;
	if (qwatch_init(k, &k->cw, k->cq, serve_consumer, errstr, errstr_size) ||
	    qwatch_init(k, &k->pw, k->pq, serve_producer, errstr, errstr_size))
		return -1;
	uv_timer_init(k->loop, &k->tick);
	uv_timer_init(k->loop, &k->again);
	uv_timer_init(k->loop, &k->rebuild);
	k->tick.data = k;
	k->again.data = k;
	k->rebuild.data = k;
	k->open_handles += 3;
	uv_timer_start(&k->tick, on_tick, 100, 100);
	return 0;
}

rd_kafka_resp_err_t kafka_produce(struct kafka *k, const char *topic, const void *key,
                                  size_t key_len, const void *value, size_t value_len,
                                  rd_kafka_headers_t *headers, void *msg_opaque)
{
	rd_kafka_resp_err_t err;
	if (headers) {
		err = rd_kafka_producev(
		        k->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
		        RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_HEADERS(headers),
		        RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
	} else {
		err = rd_kafka_producev(k->producer, RD_KAFKA_V_TOPIC(topic),
		                        RD_KAFKA_V_KEY(key, key_len),
		                        RD_KAFKA_V_VALUE((void *)value, value_len),
		                        RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
	}
	return err;
}

void kafka_store_offset(struct kafka *k, const char *topic, int32_t partition, int64_t offset)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
	rd_kafka_resp_err_t err = rd_kafka_offsets_store(k->consumer, l);
	if (err && err != RD_KAFKA_RESP_ERR__STATE)
		log_warn("kafka offset store failed", "topic", topic, "error",
		         rd_kafka_err2str(err), NULL);
	rd_kafka_topic_partition_list_destroy(l);
}

void kafka_pause(struct kafka *k)
{
	if (k->paused)
		return;
	rd_kafka_topic_partition_list_t *a = rd_kafka_topic_partition_list_copy(k->assignment);
	if (a->cnt)
		rd_kafka_pause_partitions(k->consumer, a);
	k->paused = a;
	char n[16];
	snprintf(n, sizeof n, "%d", a->cnt);
	log_debug("consumption paused", "partitions", n, NULL);
}

void kafka_pause_partitions(struct kafka *k, const rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(parts);
	rd_kafka_pause_partitions(k->consumer, copy);
	rd_kafka_topic_partition_list_destroy(copy);
}

void kafka_commit_async(struct kafka *k, const rd_kafka_topic_partition_list_t *offsets)
{
	if (offsets->cnt == 0)
		return;
	rd_kafka_resp_err_t err = rd_kafka_commit(k->consumer, offsets, 1);
	if (err)
		log_warn("kafka commit failed", "error", rd_kafka_err2str(err), NULL);
}

void kafka_hold(struct kafka *k, bool hold)
{
	if (k->held == hold)
		return;
	k->held = hold;
	log_debug(hold ? "consumption held" : "consumption taken up", NULL);
	if (!hold && k->open_handles)
		uv_timer_start(&k->again, on_again, 0, 0); /* take what waited */
}

bool kafka_held(const struct kafka *k)
{
	return k->held;
}

void kafka_resume(struct kafka *k)
{
	if (!k->paused || !k->fetching)
		return;
	char n[16];
	snprintf(n, sizeof n, "%d", k->paused->cnt);
	log_debug("consumption resumed", "partitions", n, NULL);
	rd_kafka_resume_partitions(k->consumer, k->paused);
	rd_kafka_topic_partition_list_destroy(k->paused);
	k->paused = NULL;
}

bool kafka_paused(const struct kafka *k)
{
	return k->paused != NULL;
}

void kafka_stop_fetching(struct kafka *k)
{
	if (!k->fetching)
		return;
	k->fetching = false;
	rd_kafka_topic_partition_list_t *a = rd_kafka_topic_partition_list_copy(k->assignment);
	if (a->cnt)
		rd_kafka_pause_partitions(k->consumer, a);
	rd_kafka_topic_partition_list_destroy(a);
	if (k->paused) {
		rd_kafka_topic_partition_list_destroy(k->paused);
		k->paused = NULL;
	}
}

bool kafka_producer_healthy(const struct kafka *k)
{
	return !k->producer_fatal;
}

int kafka_assigned(const struct kafka *k)
{
	return k->assigned;
}

bool kafka_member(const struct kafka *k)
{
	return k->member;
}

int kafka_outq_len(const struct kafka *k)
{
	return rd_kafka_outq_len(k->producer);
}

static void on_closed(uv_handle_t *h)
{
	struct kafka *k = h->data;
	/* A watched fd is closed only once libuv let go of it. */
	if (h == (uv_handle_t *)&k->cw.poll)
		close(k->cw.fds[0]);
	if (h == (uv_handle_t *)&k->pw.poll)
		close(k->pw.fds[0]);
	if (--k->open_handles == 0)
		free(k);
}

void kafka_close(struct kafka *k)
{
	if (!k)
		return;
	if (k->open_handles) {
		uv_timer_stop(&k->tick);
		uv_timer_stop(&k->again);
		uv_timer_stop(&k->rebuild);
	}
	/* The flush below hands acknowledgements over, after which the owner
	 * frees values an old producer may hold: wait until it is gone. */
	k->closing = true;
	for (struct retired *r = k->retired; r; r = r->next)
		uv_sem_wait(&r->gone);
	rd_kafka_queue_io_event_enable(k->cq, -1, NULL, 0);
	rd_kafka_queue_io_event_enable(k->pq, -1, NULL, 0);
	rd_kafka_resp_err_t err = rd_kafka_commit(k->consumer, NULL, 0);
	if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		log_warn("kafka final commit failed", "error", rd_kafka_err2str(err), NULL);
	rd_kafka_consumer_close(k->consumer);
	rd_kafka_flush(k->producer, 10000);
	if (k->paused)
		rd_kafka_topic_partition_list_destroy(k->paused);
	rd_kafka_topic_partition_list_destroy(k->assignment);
	rd_kafka_queue_destroy(k->cq);
	rd_kafka_queue_destroy(k->pq);
	rd_kafka_destroy(k->consumer);
	rd_kafka_destroy(k->producer);
	rd_kafka_conf_destroy(k->pconf);
	if (!k->open_handles) {
		free(k);
		return;
	}
	close(k->cw.fds[1]);
	close(k->pw.fds[1]);
	uv_close((uv_handle_t *)&k->cw.poll, on_closed);
	uv_close((uv_handle_t *)&k->pw.poll, on_closed);
	uv_close((uv_handle_t *)&k->tick, on_closed);
	uv_close((uv_handle_t *)&k->again, on_closed);
	uv_close((uv_handle_t *)&k->rebuild, on_closed);
}
