/* promptyard batches: the provider batches of batch mode (SPEC §14).
 *
 *   promptyard batches -c CFG [--json] [--redis HOST:PORT]
 *   promptyard batches cancel -c CFG ID [--json] [--redis HOST:PORT]
 *
 * The list is read from Redis, where the workers keep every batch they
 * recorded (worker/ledger.h, "batches"): the batches in flight (sorted set
 * <base>batches, a hash <base>batch:<id> each) and, below them, those that
 * ended in the last day (<base>batches_ended, their hashes kept a day). Each
 * row: provider, model, batch id, state (the provider's last word, or the
 * batch's end: collected, abandoned), requests done/failed/total, the
 * earliest complete_by of its jobs, reserved and spent (nano-USD exact in
 * --json, USD in the table). A batch in flight reserves what its jobs'
 * estimates at the batch price add up to until it is collected; spent is
 * what its answers were charged, written by its collector as it settles
 * them.
 *
 * cancel marks the batch in Redis (worker/batch_cancel.lua): no provider
 * key is needed here, and the cancel takes the path a deadline's cancel
 * takes. The worker holding the batch sees the mark when it next renews its
 * claim (every batch.poll_interval_s), cancels the batch at its provider,
 * and collects it: what it answered is used (results and cost records at the
 * batch price), and each job it did not answer runs sync. A dead holder's
 * batch is claimed by another worker, which sees the mark the same way.
 * Exit status: 0 when the cancel is requested (or was before), 1 when the
 * batch has already ended or Redis fails, 2 for an ID no batch has. */
#include "cli.h"

#include "buf.h"
#include "ledger.h"
#include "timeutil.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fputs("usage: promptyard batches -c CFG [--json] [--redis HOST:PORT]\n"
	      "       promptyard batches cancel -c CFG ID [--json] [--redis HOST:PORT]\n",
	      out);
}

/* ---------------------------------------------------------------- reading */

int cli_batches_read(redisContext *c, const struct config *cfg, const char *set, json_t *list,
                     char *errstr, size_t errstr_size)
{
	struct buf base = {0};
	ledger_key_base(&base, cfg);
	int rc = -1;
	redisReply *ids = redisCommand(c, "ZRANGE %s%s 0 -1", base.data, set);
	if (!ids || ids->type != REDIS_REPLY_ARRAY) {
		snprintf(errstr, errstr_size, "redis: %s",
		         ids && ids->type == REDIS_REPLY_ERROR ? ids->str
		         : c->errstr[0]                        ? c->errstr
		                                               : "no reply");
		goto out;
	}
	for (size_t i = 0; i < ids->elements; i++) {
		const char *id = ids->element[i]->str;
		if (!id)
			continue;
		redisReply *r = redisCommand(c, "HGETALL %sbatch:%s", base.data, id);
		if (!r || r->type != REDIS_REPLY_ARRAY) {
			snprintf(errstr, errstr_size, "redis: %s",
			         r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
			if (r)
				freeReplyObject(r);
			goto out;
		}
		if (r->elements == 0) { /* its hash expired meanwhile */
			freeReplyObject(r);
			continue;
		}
		json_t *o = json_pack("{s:s}", "id", id);
		for (size_t k = 0; k + 1 < r->elements; k += 2) {
			const char *f = r->element[k]->str, *v = r->element[k + 1]->str;
			if (!f || !v)
				continue;
			char *end;
			long long n = strtoll(v, &end, 10);
			json_object_set_new(o, f, *v && !*end ? json_integer(n) : json_string(v));
		}
		json_array_append_new(list, o);
		freeReplyObject(r);
	}
	rc = 0;
out:
	if (ids)
		freeReplyObject(ids);
	buf_free(&base);
	return rc;
}

static int64_t field_i64(const json_t *o, const char *name)
{
	return json_integer_value(json_object_get(o, name));
}

static const char *field_str(const json_t *o, const char *name)
{
	const char *s = json_string_value(json_object_get(o, name));
	return s ? s : "";
}

/* A raw batch (cli_batches_read) as `batches --json` shows it (new). */
static json_t *batch_row(const json_t *b, bool in_flight)
{
	int64_t reserved = field_i64(b, "reserved_nusd"), spent = field_i64(b, "spent_nusd");
	json_t *cancel = json_object_get(b, "cancel_requested_ms");
	json_t *ended = json_object_get(b, "ended_ms");
	char when[40];
	json_t *ended_at = json_null();
	if (json_is_integer(ended)) {
		time_format_rfc3339(json_integer_value(ended), when, sizeof when);
		ended_at = json_string(when);
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:s, s:I, s:I, s:o, s:o, "
	                 "s:o}",
	                 "id", field_str(b, "id"), "provider", field_str(b, "provider"), "model",
	                 field_str(b, "model"), "state", field_str(b, "state"), "in_flight",
	                 in_flight, "cancel_requested", json_is_integer(cancel), "requests_done",
	                 (json_int_t)field_i64(b, "requests_done"), "requests_failed",
	                 (json_int_t)field_i64(b, "requests_failed"), "requests_total",
	                 (json_int_t)field_i64(b, "requests_total"), "complete_by",
	                 field_str(b, "complete_by"), "reserved_nusd", (json_int_t)reserved,
	                 "spent_nusd", (json_int_t)spent, "reserved_usd", cli_json_usd(reserved),
	                 "spent_usd", cli_json_usd(spent), "ended_at", ended_at);
}

/* {"batches":[...]}: in flight first (oldest first), then the ended. */
static int batches_list(redisContext *c, const struct config *cfg, bool as_json)
{
	char err[512];
	json_t *flying = json_array(), *ended = json_array(), *rows = json_array();
	int rc = 1;
	if (cli_batches_read(c, cfg, "batches", flying, err, sizeof err) != 0 ||
	    cli_batches_read(c, cfg, "batches_ended", ended, err, sizeof err) != 0) {
		fprintf(stderr, "promptyard batches: %s\n", err);
		goto out;
	}
	size_t i;
	json_t *b;
	json_array_foreach (flying, i, b)
		json_array_append_new(rows, batch_row(b, true));
	/* Newest ended first. */
	for (i = json_array_size(ended); i-- > 0;)
		json_array_append_new(rows, batch_row(json_array_get(ended, i), false));
	if (as_json) {
		json_t *doc = json_pack("{s:O}", "batches", rows);
		char *s = json_dumps(doc, CLI_JSON_FLAGS);
		puts(s);
		free(s);
		json_decref(doc);
		rc = 0;
		goto out;
	}
	if (json_array_size(rows) == 0) {
		printf("no provider batches in flight or ended in the last day\n");
		rc = 0;
		goto out;
	}
	printf("%-12s %-20s %-36s %-22s %6s %6s %6s  %-24s %14s %14s\n", "PROVIDER", "MODEL", "ID",
	       "STATE", "DONE", "FAILED", "TOTAL", "COMPLETE_BY", "RESERVED", "SPENT");
	json_array_foreach (rows, i, b) {
		char reserved[40], spent[40], state[64];
		cli_usd(field_i64(b, "reserved_nusd"), reserved, sizeof reserved);
		cli_usd(field_i64(b, "spent_nusd"), spent, sizeof spent);
		snprintf(state, sizeof state, "%s%s", field_str(b, "state"),
		         json_is_true(json_object_get(b, "cancel_requested")) &&
		                         json_is_true(json_object_get(b, "in_flight"))
		                 ? " (cancel asked)"
		                 : "");
		printf("%-12s %-20s %-36s %-22s %6lld %6lld %6lld  %-24s %14s %14s\n",
		       field_str(b, "provider"), field_str(b, "model"), field_str(b, "id"), state,
		       (long long)field_i64(b, "requests_done"),
		       (long long)field_i64(b, "requests_failed"),
		       (long long)field_i64(b, "requests_total"), field_str(b, "complete_by"),
		       reserved, spent);
	}
	rc = 0;
out:
	json_decref(flying);
	json_decref(ended);
	json_decref(rows);
	return rc;
}

/* ---------------------------------------------------------------- cancel */

static int batches_cancel(redisContext *c, const struct config *cfg, const char *id, bool as_json)
{
	struct buf base = {0}, set = {0}, hash = {0};
	char now[24];
	int rc = 1;
	ledger_key_base(&base, cfg);
	buf_printf(&set, "%sbatches", base.data);
	buf_printf(&hash, "%sbatch:%s", base.data, id);
	snprintf(now, sizeof now, "%lld", (long long)time_now_ms());
	const char *argv[] = {"EVAL", lua_batch_cancel, "2", set.data, hash.data, id, now};
	redisReply *r = redisCommandArgv(c, 7, argv, NULL);
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !r->element[0]->str ||
	    !r->element[1]->str) {
		fprintf(stderr, "promptyard batches cancel: redis: %s\n",
		        r && r->type == REDIS_REPLY_ERROR ? r->str
		        : c->errstr[0]                    ? c->errstr
		                                          : "unexpected reply");
		goto out;
	}
	const char *what = r->element[0]->str, *state = r->element[1]->str;
	if (strcmp(what, "unknown") == 0) {
		fprintf(stderr,
		        "promptyard batches cancel: no batch \"%s\" (see promptyard batches)\n",
		        id);
		rc = 2;
		goto out;
	}
	bool asked = strcmp(what, "requested") == 0 || strcmp(what, "already") == 0;
	if (as_json) {
		json_t *doc =
		        json_pack("{s:s, s:s, s:s}", "id", id, "cancel", what, "state", state);
		char *s = json_dumps(doc, CLI_JSON_FLAGS);
		puts(s);
		free(s);
		json_decref(doc);
	} else if (asked) {
		printf("batch %s (%s): cancel %s; the worker holding it cancels it at the provider "
		       "at its next poll, uses what it answered and runs its other jobs sync\n",
		       id, state,
		       strcmp(what, "already") == 0 ? "was requested before" : "requested");
	}
	if (!asked)
		fprintf(stderr, "promptyard batches cancel: batch %s has already ended (%s)\n", id,
		        state);
	rc = asked ? 0 : 1;
out:
	if (r)
		freeReplyObject(r);
	buf_free(&base);
	buf_free(&set);
	buf_free(&hash);
	return rc;
}

/* ---------------------------------------------------------------- the command */

int cli_batches(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"redis", required_argument, NULL, 'r'},
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *redis = NULL, *id = NULL;
	bool as_json = false, cancel = false;
	struct config *cfg = NULL;
	redisContext *c = NULL;
	int ch, rc = 2;

	if (argc >= 2 && argv[1][0] != '-') {
		if (strcmp(argv[1], "cancel") != 0) {
			fprintf(stderr, "promptyard batches: unknown action \"%s\" (cancel)\n",
			        argv[1]);
			usage(stderr);
			return 2;
		}
		cancel = true;
		argc--;
		argv++;
	}
	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'r': redis = optarg; break;
		case 'j': as_json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (cancel && optind < argc)
		id = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "promptyard batches: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (cancel && !id) {
		fprintf(stderr, "promptyard batches cancel: ID is required\n");
		usage(stderr);
		return 2;
	}
	cfg = cli_config("batches", path, NULL, redis);
	if (!cfg)
		goto out;
	c = cli_redis("batches", cfg);
	if (!c) {
		rc = 1;
		goto out;
	}
	rc = cancel ? batches_cancel(c, cfg, id, as_json) : batches_list(c, cfg, as_json);
out:
	if (c)
		redisFree(c);
	config_free(cfg);
	return rc;
}
