/* promptyard status: budgets, job counts and consumer lag (SPEC §10).
 *
 *   promptyard status -c CFG [--json] [--max-results N] [--brokers LIST]
 *                     [--redis HOST:PORT]
 *
 * Budgets come from Redis (cli_spend.c): limit, spent and reserved of each
 * budget's current window. So do the provider batches in flight (SPEC §14,
 * cli_batches_read): how many, and the batched jobs they hold (their
 * requests; a job's offset is committed once it is batched, so these jobs
 * are in no lag), with the requests answered and failed so far.
 *
 * Job counts come from the results topic, the only record of outcomes the
 * worker keeps (it writes no counters to Redis, and its metrics are per
 * process). Reading a topic costs time in proportion to its size, so status
 * reads at most --max-results of the newest results (default 100000, spread
 * over the partitions; 0 skips the count) and says how many of how many it
 * read. Results are counted per distinct job id with collect's rule: an ok
 * result wins over errors of the same id.
 *
 * Lag is per partition of every input topic: the high watermark minus the
 * offset the workers' group (kafka.group) committed, read without joining
 * the group, so running status never disturbs the workers.
 *
 * Exit 0 when everything could be read; 1 when Redis or Kafka could not be
 * (what could be read is still shown). */
#include "cli.h"

#include "buf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_RESULTS 100000

struct counts {
	json_t *ids; /* id -> true (ok) / false (error) */
	uint64_t read;
	struct cli_progress prog;
};

static int on_result(void *opaque, const rd_kafka_message_t *m)
{
	struct counts *c = opaque;
	json_t *root = json_loadb(m->payload ? m->payload : "", m->len, 0, NULL);
	const char *id = json_string_value(json_object_get(root, "id"));
	const char *status = json_string_value(json_object_get(root, "status"));
	c->read++;
	if (id && status) {
		bool ok = strcmp(status, "ok") == 0;
		json_t *prev = json_object_get(c->ids, id);
		if (!prev || !json_is_true(prev)) {
			/* Errors are counted by code at the end: keep the latest one. */
			if (ok)
				json_object_set_new_nocheck(c->ids, id, json_true());
			else
				json_object_set_nocheck(c->ids, id,
				                        json_object_get(root, "error")
				                                ? json_object_get(root, "error")
				                                : json_false());
		}
	}
	json_decref(root);
	cli_progress_update(&c->prog, c->read);
	return 0;
}

static int on_tick(void *opaque)
{
	struct counts *c = opaque;
	cli_progress_update(&c->prog, c->read);
	return 0;
}

/* {"topic","records","read","distinct_ids","ok","error","by_code"} or NULL
 * with errstr. */
static json_t *job_counts(rd_kafka_t *rk, const struct config *cfg, int64_t max, bool quiet,
                          char *errstr, size_t errstr_size)
{
	const char *topic = cfg->kafka.results_topic;
	int32_t *parts = NULL;
	size_t n = 0;
	uint64_t records = 0, in_range = 0;
	if (cli_kafka_partitions(rk, topic, &parts, &n, errstr, errstr_size) != 0)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int64_t lo = 0, hi = 0;
		if (rd_kafka_query_watermark_offsets(rk, topic, parts[i], &lo, &hi,
		                                     CLI_KAFKA_TIMEOUT_MS) == 0)
			records += (uint64_t)(hi - lo);
	}
	free(parts);
	struct counts c = {.ids = json_object()};
	json_t *by_code = json_object();
	uint64_t ok = 0, error = 0;
	if (max > 0) {
		struct cli_read r = {
		        .topic = topic,
		        .to_end = true,
		        .last_n = (max + (int64_t)n - 1) / (int64_t)n,
		        .total = &in_range,
		        .message = on_result,
		        .tick = on_tick,
		        .opaque = &c,
		};
		cli_progress_start(&c.prog, "status: reading results", records);
		c.prog.quiet = quiet;
		int got = cli_kafka_read(rk, &r, errstr, errstr_size);
		if (!quiet && c.prog.drawn)
			cli_progress_finish(&c.prog);
		if (got != 0) {
			if (got > 0)
				snprintf(errstr, errstr_size, "interrupted while reading %s",
				         topic);
			json_decref(c.ids);
			json_decref(by_code);
			return NULL;
		}
		const char *id;
		json_t *v;
		json_object_foreach (c.ids, id, v) {
			if (json_is_true(v)) {
				ok++;
				continue;
			}
			error++;
			const char *code = json_string_value(json_object_get(v, "code"));
			if (!code)
				code = "unknown";
			json_t *k = json_object_get(by_code, code);
			json_object_set_new(by_code, code,
			                    json_integer(k ? json_integer_value(k) + 1 : 1));
		}
	}
	json_t *out =
	        json_pack("{s:s, s:I, s:I, s:b, s:I, s:I, s:I, s:o}", "topic", topic, "records",
	                  (json_int_t)records, "read", (json_int_t)c.read, "complete",
	                  c.read >= records, "distinct_ids", (json_int_t)json_object_size(c.ids),
	                  "ok", (json_int_t)ok, "error", (json_int_t)error, "by_code", by_code);
	json_decref(c.ids);
	return out;
}

/* {"group","partitions":[...],"total"} or NULL with errstr. */
static json_t *lag(const struct config *cfg, char *errstr, size_t errstr_size)
{
	rd_kafka_t *rk = cli_kafka_consumer(cfg, cfg->kafka.group, errstr, errstr_size);
	if (!rk)
		return NULL;
	json_t *rows = json_array();
	int64_t total = 0;
	json_t *out = NULL;
	for (size_t t = 0; t < cfg->kafka.n_input_topics; t++) {
		const char *topic = cfg->kafka.input_topics[t];
		int32_t *parts = NULL;
		size_t n = 0;
		if (cli_kafka_partitions(rk, topic, &parts, &n, errstr, errstr_size) != 0)
			goto out;
		rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
		for (size_t i = 0; i < n; i++)
			rd_kafka_topic_partition_list_add(list, topic, parts[i]);
		free(parts);
		rd_kafka_resp_err_t err = rd_kafka_committed(rk, list, CLI_KAFKA_TIMEOUT_MS);
		if (err) {
			snprintf(errstr, errstr_size, "group %s: committed offsets: %s",
			         cfg->kafka.group, rd_kafka_err2str(err));
			rd_kafka_topic_partition_list_destroy(list);
			goto out;
		}
		for (int i = 0; i < list->cnt; i++) {
			const rd_kafka_topic_partition_t *p = &list->elems[i];
			int64_t lo = 0, hi = 0;
			err = rd_kafka_query_watermark_offsets(rk, topic, p->partition, &lo, &hi,
			                                       CLI_KAFKA_TIMEOUT_MS);
			if (err) {
				snprintf(errstr, errstr_size, "%s [%d]: watermarks: %s", topic,
				         (int)p->partition, rd_kafka_err2str(err));
				rd_kafka_topic_partition_list_destroy(list);
				goto out;
			}
			/* No commit yet: the group starts at the earliest offset (SPEC §9). */
			bool committed = p->offset >= 0;
			int64_t l = hi - (committed ? p->offset : lo);
			if (l < 0)
				l = 0;
			total += l;
			json_array_append_new(
			        rows, json_pack("{s:s, s:i, s:o, s:I, s:I, s:I}", "topic", topic,
			                        "partition", (int)p->partition, "committed",
			                        committed ? json_integer(p->offset) : json_null(),
			                        "start", (json_int_t)lo, "end", (json_int_t)hi,
			                        "lag", (json_int_t)l));
		}
		rd_kafka_topic_partition_list_destroy(list);
	}
	out = json_pack("{s:s, s:O, s:I}", "group", cfg->kafka.group, "partitions", rows, "total",
	                (json_int_t)total);
out:
	json_decref(rows);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return out;
}

static json_t *budgets_json(const struct cli_budget_view *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		int64_t left = v[i].limit_nusd - v[i].spent_nusd - v[i].reserved_nusd;
		json_array_append_new(
		        a,
		        json_pack(
		                "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:s}",
		                "name", v[i].name, "period", v[i].period, "window", v[i].window,
		                "parent", v[i].parent, "limit_nusd", (json_int_t)v[i].limit_nusd,
		                "spent_nusd", (json_int_t)v[i].spent_nusd, "reserved_nusd",
		                (json_int_t)v[i].reserved_nusd, "remaining_nusd", (json_int_t)left,
		                "limit_usd", cli_json_usd(v[i].limit_nusd), "spent_usd",
		                cli_json_usd(v[i].spent_nusd), "reserved_usd",
		                cli_json_usd(v[i].reserved_nusd), "remaining_usd",
		                cli_json_usd(left), "source", v[i].in_redis ? "redis" : "config"));
	}
	return a;
}

/* {"in_flight","batched_jobs","requests_done","requests_failed","reserved_nusd",
 * "spent_nusd"} over the batches in flight, or NULL with errstr. */
static json_t *batch_counts(redisContext *c, const struct config *cfg, char *errstr,
                            size_t errstr_size)
{
	json_t *list = json_array();
	json_t *out = NULL;
	int64_t jobs = 0, done = 0, failed = 0, reserved = 0, spent = 0;
	if (cli_batches_read(c, cfg, "batches", list, errstr, errstr_size) == 0) {
		size_t i;
		json_t *b;
		json_array_foreach (list, i, b) {
			jobs += json_integer_value(json_object_get(b, "requests_total"));
			done += json_integer_value(json_object_get(b, "requests_done"));
			failed += json_integer_value(json_object_get(b, "requests_failed"));
			reserved += json_integer_value(json_object_get(b, "reserved_nusd"));
			spent += json_integer_value(json_object_get(b, "spent_nusd"));
		}
		out = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "in_flight",
		                (json_int_t)json_array_size(list), "batched_jobs", (json_int_t)jobs,
		                "requests_done", (json_int_t)done, "requests_failed",
		                (json_int_t)failed, "reserved_nusd", (json_int_t)reserved,
		                "spent_nusd", (json_int_t)spent);
	}
	json_decref(list);
	return out;
}

static void print_table(const json_t *budgets, const json_t *batches, const json_t *jobs,
                        const json_t *lag_doc, const json_t *errors)
{
	char a[40], b[40], c[40], d[40];
	size_t i;
	json_t *row;
	if (budgets) {
		printf("%-20s %-6s %-11s %14s %14s %14s %14s  %s\n", "BUDGET", "PERIOD", "WINDOW",
		       "LIMIT", "SPENT", "RESERVED", "LEFT", "PARENT");
		json_array_foreach (budgets, i, row) {
			cli_usd(json_integer_value(json_object_get(row, "limit_nusd")), a,
			        sizeof a);
			cli_usd(json_integer_value(json_object_get(row, "spent_nusd")), b,
			        sizeof b);
			cli_usd(json_integer_value(json_object_get(row, "reserved_nusd")), c,
			        sizeof c);
			cli_usd(json_integer_value(json_object_get(row, "remaining_nusd")), d,
			        sizeof d);
			const char *parent = json_string_value(json_object_get(row, "parent"));
			printf("%-20s %-6s %-11s %14s %14s %14s %14s  %s%s\n",
			       json_string_value(json_object_get(row, "name")),
			       json_string_value(json_object_get(row, "period")),
			       json_string_value(json_object_get(row, "window")), a, b, c, d,
			       parent && parent[0] ? parent : "-",
			       strcmp(json_string_value(json_object_get(row, "source")), "redis") ==
			                       0
			               ? ""
			               : "  (not in Redis yet: config)");
		}
		printf("\n");
	}
	if (batches) {
		cli_usd(json_integer_value(json_object_get(batches, "reserved_nusd")), a, sizeof a);
		printf("BATCHES (provider batches in flight)\n  %lld batch%s holding %lld batched "
		       "job%s (%lld answered, %lld failed so far), %s reserved\n\n",
		       (long long)json_integer_value(json_object_get(batches, "in_flight")),
		       json_integer_value(json_object_get(batches, "in_flight")) == 1 ? "" : "es",
		       (long long)json_integer_value(json_object_get(batches, "batched_jobs")),
		       json_integer_value(json_object_get(batches, "batched_jobs")) == 1 ? "" : "s",
		       (long long)json_integer_value(json_object_get(batches, "requests_done")),
		       (long long)json_integer_value(json_object_get(batches, "requests_failed")),
		       a);
	}
	if (jobs) {
		long long records = (long long)json_integer_value(json_object_get(jobs, "records"));
		long long read = (long long)json_integer_value(json_object_get(jobs, "read"));
		printf("JOBS (%s: %lld result%s", json_string_value(json_object_get(jobs, "topic")),
		       records, records == 1 ? "" : "s");
		if (read < records)
			printf(", the newest %lld read", read);
		printf(")\n  %lld ok, %lld error",
		       (long long)json_integer_value(json_object_get(jobs, "ok")),
		       (long long)json_integer_value(json_object_get(jobs, "error")));
		const char *code;
		json_t *v;
		bool first = true;
		json_object_foreach (json_object_get(jobs, "by_code"), code, v) {
			printf("%s%s %lld", first ? " (" : ", ", code,
			       (long long)json_integer_value(v));
			first = false;
		}
		printf("%s  (distinct job ids)\n\n", first ? "" : ")");
	}
	if (lag_doc) {
		printf("LAG (group %s)\n%-24s %9s %12s %12s %10s\n",
		       json_string_value(json_object_get(lag_doc, "group")), "TOPIC", "PARTITION",
		       "COMMITTED", "END", "LAG");
		json_array_foreach (json_object_get(lag_doc, "partitions"), i, row) {
			json_t *cm = json_object_get(row, "committed");
			char cs[24] = "-";
			if (json_is_integer(cm))
				snprintf(cs, sizeof cs, "%lld", (long long)json_integer_value(cm));
			printf("%-24s %9lld %12s %12lld %10lld\n",
			       json_string_value(json_object_get(row, "topic")),
			       (long long)json_integer_value(json_object_get(row, "partition")), cs,
			       (long long)json_integer_value(json_object_get(row, "end")),
			       (long long)json_integer_value(json_object_get(row, "lag")));
		}
		printf("%-24s %9s %12s %12s %10lld\n", "total", "", "", "",
		       (long long)json_integer_value(json_object_get(lag_doc, "total")));
	}
	json_array_foreach (errors, i, row) {
		fprintf(stderr, "promptyard status: %s\n", json_string_value(row));
	}
}

static void usage(FILE *out)
{
	fputs("usage: promptyard status -c CFG [--json] [--max-results N] [--brokers LIST]\n"
	      "                         [--redis HOST:PORT]\n",
	      out);
}

int cli_status(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"brokers", required_argument, NULL, 'b'},
	        {"redis", required_argument, NULL, 'r'},
	        {"json", no_argument, NULL, 'j'},
	        {"max-results", required_argument, NULL, 'm'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *brokers = NULL, *redis = NULL;
	bool as_json = false;
	long long max = DEFAULT_MAX_RESULTS;
	struct config *cfg = NULL;
	json_t *budgets = NULL, *batches = NULL, *jobs = NULL, *lag_doc = NULL;
	json_t *errors = json_array();
	char err[512], *end;
	int ch, rc = 2;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'b': brokers = optarg; break;
		case 'r': redis = optarg; break;
		case 'j': as_json = true; break;
		case 'm':
			max = strtoll(optarg, &end, 10);
			if (*end || max < 0) {
				fprintf(stderr, "promptyard status: --max-results: expected a "
				                "count >= 0\n");
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
	cfg = cli_config("status", path, brokers, redis);
	if (!cfg)
		goto out;
	cli_catch_signals();

	redisContext *rctx = cli_redis("status", cfg);
	if (rctx) {
		struct cli_budget_view *v = NULL;
		size_t n = 0;
		if (cli_budgets_view(rctx, cfg, &v, &n, err, sizeof err) == 0)
			budgets = budgets_json(v, n);
		else
			json_array_append_new(errors, json_string(err));
		cli_budgets_view_free(v, n);
		batches = batch_counts(rctx, cfg, err, sizeof err);
		if (!batches)
			json_array_append_new(errors, json_string(err));
		redisFree(rctx);
	} else {
		snprintf(err, sizeof err, "redis %s:%d: unreachable: budgets not shown",
		         cfg->redis.host, cfg->redis.port);
		json_array_append_new(errors, json_string(err));
	}

	rd_kafka_t *rk = cli_kafka_consumer(cfg, NULL, err, sizeof err);
	if (!rk) {
		fprintf(stderr, "promptyard status: %s\n", err);
		goto out;
	}
	jobs = job_counts(rk, cfg, max, as_json, err, sizeof err);
	if (!jobs)
		json_array_append_new(errors, json_string(err));
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	/* A second wait for brokers already known to be down helps nobody. */
	if (jobs || !strstr(err, "cannot reach the brokers")) {
		lag_doc = lag(cfg, err, sizeof err);
		if (!lag_doc)
			json_array_append_new(errors, json_string(err));
	}

	if (as_json) {
		json_t *doc =
		        json_pack("{s:O?, s:O?, s:O?, s:O?, s:O}", "budgets", budgets, "batches",
		                  batches, "jobs", jobs, "lag", lag_doc, "errors", errors);
		char *s = json_dumps(doc, CLI_JSON_FLAGS);
		puts(s);
		free(s);
		json_decref(doc);
		size_t i;
		json_t *e;
		json_array_foreach (errors, i, e) {
			fprintf(stderr, "promptyard status: %s\n", json_string_value(e));
		}
	} else {
		print_table(budgets, batches, jobs, lag_doc, errors);
	}
	rc = json_array_size(errors) ? 1 : 0;
out:
	json_decref(budgets);
	json_decref(batches);
	json_decref(jobs);
	json_decref(lag_doc);
	json_decref(errors);
	config_free(cfg);
	return rc;
}
