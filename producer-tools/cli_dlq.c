/* promptyard dlq replay: re-produce dead-lettered jobs (SPEC §5, §10).
 *
 *   promptyard dlq replay -c CFG [--code CODE] [--max N] [--topic T] [--dry-run]
 *                         [--brokers LIST] [--redis HOST:PORT]
 *
 * Reads the DLQ topic from the beginning to its current end and produces the
 * original job of each record to the first input topic (or --topic), with the
 * record's key and headers (the original message's, SPEC §5):
 *   - "job_base64" present: its bytes exactly (the original was not UTF-8);
 *   - "job" a string: that string (the original did not parse as JSON);
 *   - "job" anything else: its JSON (compact).
 * The DLQ keeps every failure, so a job that failed twice has two records:
 * each job (by id, else by its source topic:partition:offset) is replayed
 * once per run, from its latest record. Without --code every code but
 * invalid_job is replayed: an invalid job fails the same way until it is
 * changed, unless the config changed (a budget or model added), and then
 * --code invalid_job replays them on purpose. Jobs whose ok result exists
 * are skipped by the workers' dedupe markers, so a second replay of the same
 * DLQ costs no provider call for them. */
#include "cli.h"

#include "buf.h"
#include "output.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pending {
	char *dedupe; /* job id, or source coordinates */
	char *value;
	size_t len;
	char *key;
	size_t key_len;
	rd_kafka_headers_t *headers;
	char code[32];
	bool superseded; /* a later record of the same job is replayed instead */
};

struct replay {
	const char *code; /* NULL: all but invalid_job */
	json_t *index;    /* dedupe -> pending number */
	struct pending *v;
	size_t n, cap;
	uint64_t read, other_code, unreadable, duplicates;
	struct cli_progress prog;
};

/* Standard base64 (with padding) into out. Returns 0, or -1 if s is not base64. */
static int base64_decode(const char *s, struct buf *out)
{
	uint32_t acc = 0;
	int bits = 0;
	static const char tbl[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (; *s && *s != '='; s++) {
		const char *p = strchr(tbl, *s);
		if (!p)
			return -1;
		acc = (acc << 6) | (uint32_t)(p - tbl);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			char byte = (char)((acc >> bits) & 0xff);
			buf_append(out, &byte, 1);
		}
	}
	return 0;
}

static int on_record(void *opaque, const rd_kafka_message_t *m)
{
	struct replay *r = opaque;
	json_t *root = json_loadb(m->payload ? m->payload : "", m->len, 0, NULL);
	json_t *job = json_object_get(root, "job");
	const char *code =
	        json_string_value(json_object_get(json_object_get(root, "error"), "code"));
	const char *b64 = json_string_value(json_object_get(root, "job_base64"));
	struct buf value = {0}, dedupe = {0};
	r->read++;
	if (!job || !code) {
		r->unreadable++;
		goto out;
	}
	if (r->code ? strcmp(code, r->code) != 0 : strcmp(code, "invalid_job") == 0) {
		r->other_code++;
		goto out;
	}
	if (b64) {
		if (base64_decode(b64, &value) != 0) {
			r->unreadable++;
			goto out;
		}
	} else if (json_is_string(job)) {
		buf_append(&value, json_string_value(job), json_string_length(job));
	} else {
		char *s = json_dumps(job, JSON_COMPACT | JSON_ENCODE_ANY);
		buf_puts(&value, s ? s : "");
		free(s);
	}
	const char *id = json_string_value(json_object_get(job, "id"));
	json_t *src = json_object_get(root, "source");
	if (id)
		buf_printf(&dedupe, "id:%s", id);
	else
		buf_printf(&dedupe, "src:%s:%lld:%lld",
		           json_string_value(json_object_get(src, "topic"))
		                   ? json_string_value(json_object_get(src, "topic"))
		                   : "?",
		           (long long)json_integer_value(json_object_get(src, "partition")),
		           (long long)json_integer_value(json_object_get(src, "offset")));
	json_t *prev = json_object_get(r->index, dedupe.data);
	if (prev) {
		r->v[json_integer_value(prev)].superseded = true;
		r->duplicates++;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->v = xrealloc(r->v, r->cap * sizeof *r->v);
	}
	struct pending *p = &r->v[r->n];
	memset(p, 0, sizeof *p);
	p->dedupe = buf_take(&dedupe);
	p->len = value.len;
	p->value = value.data ? buf_take(&value) : xstrdup("");
	if (m->key) {
		p->key = xmalloc(m->key_len + 1);
		memcpy(p->key, m->key, m->key_len);
		p->key_len = m->key_len;
	}
	p->headers = cli_kafka_headers_copy(m);
	snprintf(p->code, sizeof p->code, "%s", code);
	json_object_set_new_nocheck(r->index, p->dedupe, json_integer((json_int_t)r->n));
	r->n++;
out:
	buf_free(&value);
	buf_free(&dedupe);
	json_decref(root);
	cli_progress_update(&r->prog, r->read);
	return 0;
}

static int on_tick(void *opaque)
{
	struct replay *r = opaque;
	cli_progress_update(&r->prog, r->read);
	return 0;
}

struct acks {
	uint64_t ok, failed;
	char first_error[256];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct acks *a = opaque;
	(void)rk;
	if (m->err && !a->failed++)
		snprintf(a->first_error, sizeof a->first_error, "%s", rd_kafka_err2str(m->err));
	else if (!m->err)
		a->ok++;
}

static void usage(FILE *out)
{
	fputs("usage: promptyard dlq replay -c CFG [--code CODE] [--max N] [--topic T] "
	      "[--dry-run]\n"
	      "                             [--brokers LIST] [--redis HOST:PORT]\n"
	      "codes: invalid_job no_eligible_model cost_cap_exceeded budget_exhausted\n"
	      "       providers_failed provider_rejected expired\n"
	      "Without --code every code but invalid_job is replayed.\n",
	      out);
}

int cli_dlq(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"brokers", required_argument, NULL, 'b'},
	        {"redis", required_argument, NULL, 'r'},
	        {"code", required_argument, NULL, 'C'},
	        {"max", required_argument, NULL, 'm'},
	        {"topic", required_argument, NULL, 't'},
	        {"dry-run", no_argument, NULL, 'n'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *brokers = NULL, *redis = NULL, *topic = NULL;
	long long max = -1;
	bool dry = false;
	struct replay r;
	struct config *cfg = NULL;
	rd_kafka_t *consumer = NULL, *producer = NULL;
	struct acks acks = {0};
	char err[512], *end;
	int ch, rc = 2;

	memset(&r, 0, sizeof r);
	r.index = json_object();
	if (argc < 2 || strcmp(argv[1], "replay") != 0) {
		if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
			usage(stdout);
			rc = 0;
		} else {
			fprintf(stderr, "promptyard dlq: expected the action \"replay\"\n");
			usage(stderr);
		}
		goto out;
	}
	argc--;
	argv++;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'b': brokers = optarg; break;
		case 'r': redis = optarg; break;
		case 'C': r.code = optarg; break;
		case 't': topic = optarg; break;
		case 'n': dry = true; break;
		case 'm':
			max = strtoll(optarg, &end, 10);
			if (*end || max < 1) {
				fprintf(stderr, "promptyard dlq: --max: expected a count >= 1\n");
				goto out;
			}
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default: usage(stderr); goto out;
		}
	}
	if (optind != argc) {
		usage(stderr);
		goto out;
	}
	if (r.code) {
		bool known = false;
		for (int c = ERR_INVALID_JOB; c <= ERR_EXPIRED; c++)
			known = known || strcmp(r.code, error_code_name((enum error_code)c)) == 0;
		if (!known) {
			fprintf(stderr, "promptyard dlq: --code: unknown error code \"%s\"\n",
			        r.code);
			usage(stderr);
			goto out;
		}
	}
	cfg = cli_config("dlq", path, brokers, redis);
	if (!cfg)
		goto out;
	if (!topic)
		topic = cfg->kafka.input_topics[0];
	rc = 1;
	consumer = cli_kafka_consumer(cfg, NULL, err, sizeof err);
	producer = consumer ? cli_kafka_producer(cfg, on_delivery, &acks, err, sizeof err) : NULL;
	if (!producer) {
		fprintf(stderr, "promptyard dlq: %s\n", err);
		rc = 2;
		goto out;
	}
	cli_catch_signals();
	struct cli_read rd = {.topic = cfg->kafka.dlq_topic,
	                      .to_end = true,
	                      .message = on_record,
	                      .tick = on_tick,
	                      .opaque = &r};
	uint64_t total = 0;
	rd.total = &total;
	cli_progress_start(&r.prog, "dlq: reading", 0);
	int got = cli_kafka_read(consumer, &rd, err, sizeof err);
	r.prog.total = total;
	cli_progress_finish(&r.prog);
	if (got != 0) {
		fprintf(stderr, "promptyard dlq: %s\n",
		        got < 0 ? err : "interrupted: nothing replayed");
		goto out;
	}

	/* Check the target before producing anything to it. */
	int32_t *parts = NULL;
	size_t n_parts = 0;
	if (cli_kafka_partitions(producer, topic, &parts, &n_parts, err, sizeof err) != 0) {
		fprintf(stderr, "promptyard dlq: %s\n", err);
		goto out;
	}
	free(parts);
	json_t *by_code = json_object();
	uint64_t queued = 0;
	struct cli_progress prog;
	cli_progress_start(&prog, "dlq: replaying", 0);
	prog.quiet = dry;
	for (size_t i = 0; i < r.n && !cli_interrupted; i++) {
		struct pending *p = &r.v[i];
		if (p->superseded)
			continue;
		if (max >= 0 && (long long)queued >= max)
			break;
		json_t *k = json_object_get(by_code, p->code);
		json_object_set_new(by_code, p->code,
		                    json_integer(k ? json_integer_value(k) + 1 : 1));
		queued++;
		if (dry)
			continue;
		for (;;) {
			rd_kafka_resp_err_t e = rd_kafka_producev(
			        producer, RD_KAFKA_V_TOPIC(topic),
			        RD_KAFKA_V_KEY(p->key, p->key_len),
			        RD_KAFKA_V_VALUE(p->value, p->len), RD_KAFKA_V_MSGFLAGS(0),
			        RD_KAFKA_V_HEADERS(p->headers), RD_KAFKA_V_END);
			if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
				rd_kafka_poll(producer, 50);
				continue;
			}
			if (e) {
				acks.failed++;
				snprintf(acks.first_error, sizeof acks.first_error, "%s",
				         rd_kafka_err2str(e));
			} else {
				p->headers = NULL; /* taken by librdkafka */
			}
			break;
		}
		rd_kafka_poll(producer, 0);
		cli_progress_update(&prog, acks.ok);
	}
	while (!dry && rd_kafka_outq_len(producer) > 0) {
		rd_kafka_poll(producer, 100);
		cli_progress_update(&prog, acks.ok);
	}
	prog.total = queued;
	if (!dry)
		cli_progress_finish(&prog);

	printf("%s %llu job%s to %s (DLQ %s: %llu records; %llu other codes, %llu older copies, "
	       "%llu unreadable)\n",
	       dry ? "would replay" : "replayed", (unsigned long long)(dry ? queued : acks.ok),
	       (dry ? queued : acks.ok) == 1 ? "" : "s", topic, cfg->kafka.dlq_topic,
	       (unsigned long long)r.read, (unsigned long long)r.other_code,
	       (unsigned long long)r.duplicates, (unsigned long long)r.unreadable);
	const char *code;
	json_t *v;
	json_object_foreach (by_code, code, v) {
		printf("  %-20s %lld\n", code, (long long)json_integer_value(v));
	}
	json_decref(by_code);
	if (acks.failed) {
		fprintf(stderr, "promptyard dlq: %llu jobs were not acknowledged: %s\n",
		        (unsigned long long)acks.failed, acks.first_error);
		goto out;
	}
	if (cli_interrupted) {
		fprintf(stderr, "promptyard dlq: interrupted\n");
		goto out;
	}
	rc = 0;
out:
	if (producer)
		rd_kafka_destroy(producer);
	if (consumer) {
		rd_kafka_consumer_close(consumer);
		rd_kafka_destroy(consumer);
	}
	for (size_t i = 0; i < r.n; i++) {
		free(r.v[i].dedupe);
		free(r.v[i].value);
		free(r.v[i].key);
		if (r.v[i].headers)
			rd_kafka_headers_destroy(r.v[i].headers);
	}
	free(r.v);
	json_decref(r.index);
	config_free(cfg);
	return rc;
}
