/* cli_kafka: the command line's Kafka clients, and reading a topic from the
 * beginning.
 *
 * The tools are short-lived and run one thing at a time, so they use
 * librdkafka's blocking calls (metadata, watermarks, flush) directly: there
 * is no event loop to keep free here, unlike in the worker. */
#include "cli.h"

#include "buf.h"
#include "log.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last error librdkafka reported (all brokers down, ...), for messages,
 * and the brokers of the last client made, to name them in messages. */
static char last_error[256];
static bool all_brokers_down;
static char brokers_named[256];

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	/* Connection refused and the like are level 3 and repeat every second
	 * while a broker is down: the tool reports the outcome instead. */
	if (level <= 2)
		log_msg(LOG_ERROR, "librdkafka", "facility", fac, "text", buf, NULL);
	else
		log_debug("librdkafka", "facility", fac, "text", buf, NULL);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		all_brokers_down = true;
	snprintf(last_error, sizeof last_error, "%s", reason);
}

const char *cli_kafka_last_error(void)
{
	return last_error[0] ? last_error : "no answer";
}

static int set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
               size_t errstr_size)
{
	char err[256];
	if (rd_kafka_conf_set(conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
		snprintf(errstr, errstr_size, "kafka property %s: %s", key, err);
		return -1;
	}
	return 0;
}

/* The config's brokers and properties; the caller's settings come after and win. */
static rd_kafka_conf_t *base_conf(const struct config *cfg, char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	snprintf(brokers_named, sizeof brokers_named, "%s", cfg->kafka.brokers);
	if (set(conf, "bootstrap.servers", cfg->kafka.brokers, errstr, errstr_size) ||
	    set(conf, "client.id", "promptyard-cli", errstr, errstr_size))
		goto fail;
	for (size_t i = 0; i < cfg->kafka.n_properties; i++)
		if (set(conf, cfg->kafka.property_keys[i], cfg->kafka.property_values[i], errstr,
		        errstr_size))
			goto fail;
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

rd_kafka_t *cli_kafka_producer(const struct config *cfg,
                               void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               void *opaque, char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf = base_conf(cfg, errstr, errstr_size);
	if (!conf)
		return NULL;
	/* SPEC §9's producer: nothing is lost or doubled by a retry. */
	if (set(conf, "enable.idempotence", "true", errstr, errstr_size) ||
	    set(conf, "acks", "all", errstr, errstr_size) ||
	    set(conf, "linger.ms", "20", errstr, errstr_size) ||
	    set(conf, "message.timeout.ms", "120000", errstr, errstr_size)) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	if (dr)
		rd_kafka_conf_set_dr_msg_cb(conf, dr);
	rd_kafka_conf_set_opaque(conf, opaque);
	char err[512];
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (!rk) {
		snprintf(errstr, errstr_size, "kafka producer: %s", err);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

rd_kafka_t *cli_kafka_consumer(const struct config *cfg, const char *group, char *errstr,
                               size_t errstr_size)
{
	rd_kafka_conf_t *conf = base_conf(cfg, errstr, errstr_size);
	char own[64];
	if (!conf)
		return NULL;
	if (!group) {
		/* Partitions are assigned, never subscribed: this group never
		 * joins, and commits nothing. */
		snprintf(own, sizeof own, "promptyard-cli-%ld", (long)time_now_ms());
		group = own;
	}
	if (set(conf, "group.id", group, errstr, errstr_size) ||
	    set(conf, "enable.auto.commit", "false", errstr, errstr_size) ||
	    set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) ||
	    set(conf, "enable.partition.eof", "true", errstr, errstr_size) ||
	    set(conf, "auto.offset.reset", "earliest", errstr, errstr_size)) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	char err[512];
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!rk) {
		snprintf(errstr, errstr_size, "kafka consumer: %s", err);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

int cli_kafka_partitions(rd_kafka_t *rk, const char *topic, int32_t **parts, size_t *n,
                         char *errstr, size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
	int64_t start = time_mono_ms();
	*parts = NULL;
	*n = 0;
	errstr[0] = '\0';
	/* In slices, serving error events in between: when every broker refuses
	 * connections for a while, say so now rather than after the timeout. */
	while (time_mono_ms() - start < CLI_KAFKA_TIMEOUT_MS) {
		err = rd_kafka_metadata(rk, 0, rkt, &md, 1000);
		if (!err)
			break;
		rd_kafka_poll(rk, 0);
		if (all_brokers_down && time_mono_ms() - start >= 2000)
			break;
	}
	rd_kafka_topic_destroy(rkt);
	if (err) {
		snprintf(errstr, errstr_size, "kafka %s: cannot reach the brokers (%s)",
		         brokers_named, last_error[0] ? last_error : rd_kafka_err2str(err));
		return -1;
	}
	int rc = -1;
	for (int i = 0; i < md->topic_cnt; i++) {
		const rd_kafka_metadata_topic_t *t = &md->topics[i];
		if (strcmp(t->topic, topic) != 0)
			continue;
		if (t->err || t->partition_cnt == 0) {
			snprintf(errstr, errstr_size, "topic %s: %s", topic,
			         t->err ? rd_kafka_err2str(t->err) : "no partitions");
			break;
		}
		*parts = xcalloc((size_t)t->partition_cnt, sizeof **parts);
		for (int p = 0; p < t->partition_cnt; p++)
			(*parts)[p] = t->partitions[p].id;
		*n = (size_t)t->partition_cnt;
		rc = 0;
	}
	if (rc != 0 && !*errstr)
		snprintf(errstr, errstr_size, "topic %s: not in the cluster's metadata", topic);
	rd_kafka_metadata_destroy(md);
	return rc;
}

int cli_kafka_read(rd_kafka_t *rk, const struct cli_read *r, char *errstr, size_t errstr_size)
{
	int32_t *parts = NULL;
	size_t n = 0;
	int rc = -1;
	rd_kafka_topic_partition_list_t *list = NULL;
	bool *eof = NULL;
	errstr[0] = '\0';
	if (cli_kafka_partitions(rk, r->topic, &parts, &n, errstr, errstr_size) != 0)
		return -1;
	list = rd_kafka_topic_partition_list_new((int)n);
	eof = xcalloc(n, sizeof *eof);
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t lo = 0, hi = 0;
		rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
		        rk, r->topic, parts[i], &lo, &hi, CLI_KAFKA_TIMEOUT_MS);
		if (err) {
			snprintf(errstr, errstr_size, "topic %s [%d]: watermarks: %s", r->topic,
			         (int)parts[i], rd_kafka_err2str(err));
			goto out;
		}
		int64_t start = RD_KAFKA_OFFSET_BEGINNING;
		if (r->last_n > 0 && hi - lo > r->last_n) {
			start = hi - r->last_n;
			lo = start;
		}
		total += (uint64_t)(hi - lo);
		rd_kafka_topic_partition_list_add(list, r->topic, parts[i])->offset = start;
		/* An empty partition has nothing to read: it is at its end already. */
		eof[i] = hi == lo;
	}
	if (r->total)
		*r->total = total;
	rd_kafka_resp_err_t err = rd_kafka_assign(rk, list);
	if (err) {
		snprintf(errstr, errstr_size, "topic %s: assign: %s", r->topic,
		         rd_kafka_err2str(err));
		goto out;
	}
	for (;;) {
		if (r->to_end) {
			size_t at_end = 0;
			for (size_t i = 0; i < n; i++)
				at_end += eof[i];
			if (at_end == n && (!r->until || r->until(r->opaque))) {
				rc = 0;
				break;
			}
		}
		if (cli_interrupted) {
			rc = 1;
			break;
		}
		if (r->deadline_ms && time_mono_ms() >= r->deadline_ms) {
			rc = 1;
			break;
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (r->tick && r->tick(r->opaque) != 0) {
			if (m)
				rd_kafka_message_destroy(m);
			rc = 0;
			break;
		}
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			for (size_t i = 0; i < n; i++)
				if (parts[i] == m->partition)
					eof[i] = true;
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err) {
			/* Transient (a broker restarting): librdkafka retries. */
			log_debug("kafka read", "error", rd_kafka_message_errstr(m), NULL);
			rd_kafka_message_destroy(m);
			continue;
		}
		/* Not at the end of this partition any more: its next EOF says when. */
		for (size_t i = 0; i < n; i++)
			if (parts[i] == m->partition)
				eof[i] = false;
		int verdict = r->message(r->opaque, m);
		rd_kafka_message_destroy(m);
		if (verdict != 0) {
			rc = 0;
			break;
		}
	}
out:
	rd_kafka_assign(rk, NULL);
	if (list)
		rd_kafka_topic_partition_list_destroy(list);
	free(eof);
	free(parts);
	return rc;
}

rd_kafka_headers_t *cli_kafka_headers_copy(const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *h = NULL;
	/* rd_kafka_message_headers() parses lazily and so wants a non-const message. */
	if (rd_kafka_message_headers((rd_kafka_message_t *)m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    !h)
		return NULL;
	return rd_kafka_headers_copy(h);
}
