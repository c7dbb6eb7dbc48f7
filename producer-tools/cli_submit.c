/* promptyard submit: produce jobs from a JSON Lines file (SPEC §10).
 *
 *   promptyard submit -c CFG [--brokers LIST] [--redis HOST:PORT] [--topic T]
 *                     [--budget B] [--strategy S] FILE|-
 *
 * Every line is checked first (cli_jobs.c); one bad line and nothing is
 * produced (exit 2). Then each job is produced with its id as the key by an
 * idempotent producer (acks=all), and every delivery is waited for: exit 0
 * means Kafka acknowledged every job. */
#include "cli.h"

#include "buf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct produce_state {
	uint64_t acked, failed;
	char first_error[256];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct produce_state *st = opaque;
	(void)rk;
	if (m->err) {
		if (!st->failed++)
			snprintf(st->first_error, sizeof st->first_error, "%s",
			         rd_kafka_err2str(m->err));
	} else {
		st->acked++;
	}
}

int cli_submit_produce(const char *sub, const struct config *cfg, const char *topic,
                       const struct cli_jobs *jobs, uint64_t *acked)
{
	struct produce_state st = {0};
	char err[512] = "";
	int32_t *parts = NULL;
	size_t n_parts = 0;
	size_t sent = 0;
	int rc = 1;
	struct cli_progress prog;

	*acked = 0;
	rd_kafka_t *rk = cli_kafka_producer(cfg, on_delivery, &st, err, sizeof err);
	if (!rk) {
		fprintf(stderr, "promptyard %s: %s\n", sub, err);
		return 2;
	}
	/* Fails fast (and says why) when the brokers are down or the topic is
	 * missing, instead of waiting out message.timeout.ms per job. */
	if (cli_kafka_partitions(rk, topic, &parts, &n_parts, err, sizeof err) != 0) {
		fprintf(stderr, "promptyard %s: %s\n", sub, err);
		goto out;
	}
	free(parts);

	cli_progress_start(&prog, sub, jobs->n);
	while (sent < jobs->n && !cli_interrupted) {
		const struct cli_job *j = &jobs->v[sent];
		rd_kafka_resp_err_t e = rd_kafka_producev(
		        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(j->id, strlen(j->id)),
		        RD_KAFKA_V_VALUE(j->value, j->len), RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			rd_kafka_poll(rk, 50); /* let deliveries free the queue */
		} else if (e) {
			snprintf(err, sizeof err, "%s", rd_kafka_err2str(e));
			break;
		} else {
			sent++;
			rd_kafka_poll(rk, 0);
		}
		snprintf(prog.extra, sizeof prog.extra, "%llu queued",
		         (unsigned long long)(sent - st.acked - st.failed));
		cli_progress_update(&prog, st.acked);
	}
	/* Wait for every delivery report: librdkafka gives up on a message after
	 * message.timeout.ms, so this ends. */
	while (rd_kafka_outq_len(rk) > 0) {
		rd_kafka_poll(rk, 100);
		snprintf(prog.extra, sizeof prog.extra, "%llu waiting for acks",
		         (unsigned long long)(sent - st.acked - st.failed));
		cli_progress_update(&prog, st.acked);
	}
	prog.extra[0] = '\0';
	cli_progress_finish(&prog);
	*acked = st.acked;
	if (err[0]) {
		fprintf(stderr, "promptyard %s: produce to %s failed: %s\n", sub, topic, err);
	} else if (st.failed) {
		fprintf(stderr,
		        "promptyard %s: %llu of %zu jobs were not acknowledged by Kafka: %s\n", sub,
		        (unsigned long long)st.failed, jobs->n, st.first_error);
	} else if (cli_interrupted) {
		fprintf(stderr, "promptyard %s: interrupted: %llu of %zu jobs were produced\n", sub,
		        (unsigned long long)st.acked, jobs->n);
	} else {
		rc = 0;
	}
out:
	rd_kafka_destroy(rk);
	return rc;
}

static void usage(FILE *out)
{
	fputs("usage: promptyard submit -c CFG [--brokers LIST] [--redis HOST:PORT] [--topic T]\n"
	      "                         [--budget B] [--strategy S] FILE|-\n"
	      "Produces the jobs of a JSON Lines file (native jobs or OpenAI Batch requests)\n"
	      "after checking every line; one bad line and nothing is produced.\n",
	      out);
}

int cli_submit(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"brokers", required_argument, NULL, 'b'},
	        {"redis", required_argument, NULL, 'r'},
	        {"topic", required_argument, NULL, 't'},
	        {"budget", required_argument, NULL, 'B'},
	        {"strategy", required_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *brokers = NULL, *redis = NULL, *topic = NULL;
	struct cli_job_defaults d = {0};
	struct cli_jobs jobs = {0};
	struct config *cfg = NULL;
	int c, rc = 2;

	optind = 0;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'b': brokers = optarg; break;
		case 'r': redis = optarg; break;
		case 't': topic = optarg; break;
		case 'B': d.budget = optarg; break;
		case 's': d.strategy = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "promptyard submit: expected one FILE (or - for stdin)\n");
		usage(stderr);
		return 2;
	}
	const char *file = argv[optind];
	cfg = cli_config("submit", path, brokers, redis);
	if (!cfg)
		return 2;
	enum strategy s;
	if (d.strategy && strategy_parse(d.strategy, &s) != 0) {
		fprintf(stderr,
		        "promptyard submit: --strategy: unknown strategy \"%s\" (cheapest, "
		        "balanced, "
		        "fastest, reliable, auto)\n",
		        d.strategy);
		goto out;
	}
	if (d.budget && config_budget_index(cfg, d.budget) < 0) {
		fprintf(stderr, "promptyard submit: --budget: unknown budget \"%s\" (not in %s)\n",
		        d.budget, cfg->path);
		goto out;
	}
	if (!topic)
		topic = cfg->kafka.input_topics[0];

	rc = cli_jobs_load("submit", cfg, file, &d, &jobs);
	if (rc != 0)
		goto out;
	if (jobs.n == 0) {
		printf("no jobs in %s: nothing to submit\n", file);
		goto out;
	}
	cli_catch_signals();
	uint64_t acked = 0;
	rc = cli_submit_produce("submit", cfg, topic, &jobs, &acked);
	if (rc == 0) {
		printf("submitted %llu job%s to %s", (unsigned long long)acked,
		       acked == 1 ? "" : "s", topic);
		if (jobs.batch)
			printf(" (%zu from OpenAI Batch requests)", jobs.batch);
		printf("\n");
	}
out:
	cli_jobs_free(&jobs);
	config_free(cfg);
	return rc;
}
