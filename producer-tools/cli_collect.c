/* promptyard collect: results into a file (SPEC §10).
 *
 *   promptyard collect -c CFG --out FILE [--expect N | --ids FILE] [--timeout S]
 *                      [--format native|openai-batch] [--topic T]
 *
 * Reads the results topic from the beginning of every partition (assigned,
 * not subscribed: no group, nothing committed, any number of collects may run)
 * and keeps one result per distinct id:
 *   - the first `ok` result of an id is kept; later copies (a redelivery after
 *     a crash) are dropped;
 *   - an `error` result is replaced by any later result of the same id, so a
 *     job replayed from the DLQ that succeeded shows its success, and one that
 *     failed again shows its latest failure.
 * It reads to the end of the topic; with --expect N it then waits until N
 * distinct ids are in, with --ids FILE until every listed id is in (other
 * ids are ignored); with neither it stops there. Reading always goes on to
 * the end, so a success further on replaces an error read before it. At
 * --timeout (or Ctrl-C) it writes what it has and exits 1.
 * The file is written once, at the end (FILE.tmp renamed over FILE), in the
 * order of --ids, else in the order results first arrived. */
#include "cli.h"

#include "buf.h"
#include "timeutil.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct entry {
	char *id;
	char *value; /* the result as read (new), NULL until one arrived */
	size_t len;
	bool ok;
};

struct collect {
	json_t *index; /* id -> entry number */
	struct entry *v;
	size_t n, cap;
	bool fixed_ids; /* --ids: only these */
	size_t have;    /* entries with a result */
	size_t errors;  /* of which error results */
	uint64_t expect;
	uint64_t read, unreadable;
	struct cli_progress prog;
};

static struct entry *entry_add(struct collect *c, const char *id)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 1024;
		c->v = xrealloc(c->v, c->cap * sizeof *c->v);
	}
	struct entry *e = &c->v[c->n];
	memset(e, 0, sizeof *e);
	e->id = xstrdup(id);
	json_object_set_new_nocheck(c->index, id, json_integer((json_int_t)c->n));
	c->n++;
	return e;
}

static int on_result(void *opaque, const rd_kafka_message_t *m)
{
	struct collect *c = opaque;
	json_t *root = json_loadb(m->payload ? m->payload : "", m->len, 0, NULL);
	const char *id = json_string_value(json_object_get(root, "id"));
	const char *status = json_string_value(json_object_get(root, "status"));
	c->read++;
	if (!id || !status) {
		c->unreadable++;
		goto out;
	}
	json_t *idx = json_object_get(c->index, id);
	struct entry *e;
	if (idx)
		e = &c->v[json_integer_value(idx)];
	else if (c->fixed_ids)
		goto out; /* not one of ours */
	else
		e = entry_add(c, id);
	if (e->value && e->ok)
		goto out; /* the first ok stays */
	if (!e->value)
		c->have++;
	else
		c->errors--;
	free(e->value);
	e->value = xmalloc(m->len + 1);
	memcpy(e->value, m->payload, m->len);
	e->value[m->len] = '\0';
	e->len = m->len;
	e->ok = strcmp(status, "ok") == 0;
	if (!e->ok)
		c->errors++;
out:
	json_decref(root);
	if (c->errors)
		snprintf(c->prog.extra, sizeof c->prog.extra, "%zu error%s", c->errors,
		         c->errors == 1 ? "" : "s");
	cli_progress_update(&c->prog, c->expect ? c->have : c->read);
	return 0;
}

/* Done once every expected id is in. Checked only at the end of the topic:
 * a later result further on (a DLQ replay that succeeded) must still get the
 * chance to replace an error read earlier. */
static bool complete(void *opaque)
{
	const struct collect *c = opaque;
	return c->have >= c->expect;
}

static int on_tick(void *opaque)
{
	struct collect *c = opaque;
	cli_progress_update(&c->prog, c->expect ? c->have : c->read);
	return 0;
}

/* ---------------------------------------------------------------- OpenAI Batch output */

static uint64_t fnv64(const char *s, uint64_t h)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static const char *openai_finish(const char *f)
{
	static const char *const known[] = {"stop", "length", "content_filter", "tool_calls"};
	for (size_t i = 0; f && i < sizeof known / sizeof *known; i++)
		if (strcmp(f, known[i]) == 0)
			return known[i];
	return "stop";
}

/* One result as a line of OpenAI's batch output format (new). */
static char *openai_line(const struct entry *e)
{
	json_t *r = json_loadb(e->value, e->len, 0, NULL);
	uint64_t h = fnv64(e->id, 1469598103934665603ull);
	const char *done_at = json_string_value(json_object_get(r, "completed_at"));
	uint64_t hr = fnv64(done_at ? done_at : "", h);
	char id[48], req[48], cmpl[48];
	snprintf(id, sizeof id, "batch_req_%016llx", (unsigned long long)h);
	snprintf(req, sizeof req, "req_%016llx", (unsigned long long)hr);
	snprintf(cmpl, sizeof cmpl, "chatcmpl-%016llx", (unsigned long long)hr);
	json_t *line;
	if (e->ok) {
		json_t *usage = json_object_get(r, "usage");
		json_int_t in = json_integer_value(json_object_get(usage, "input_tokens"));
		json_int_t out = json_integer_value(json_object_get(usage, "output_tokens"));
		json_int_t cached =
		        json_integer_value(json_object_get(usage, "cached_input_tokens"));
		int64_t ms = 0;
		if (done_at)
			time_parse_rfc3339(done_at, &ms);
		const char *content = json_string_value(json_object_get(r, "content"));
		const char *model = json_string_value(json_object_get(r, "model"));
		json_t *body = json_pack(
		        "{s:s, s:s, s:I, s:s?, s:[{s:i, s:{s:s, s:s, s:n}, s:n, s:s}], "
		        "s:{s:I, s:I, s:I, s:{s:I}}, s:n}",
		        "id", cmpl, "object", "chat.completion", "created", (json_int_t)(ms / 1000),
		        "model", model, "choices", "index", 0, "message", "role", "assistant",
		        "content", content ? content : "", "refusal", "logprobs", "finish_reason",
		        openai_finish(json_string_value(json_object_get(r, "finish_reason"))),
		        "usage", "prompt_tokens", in, "completion_tokens", out, "total_tokens",
		        in + out, "prompt_tokens_details", "cached_tokens", cached,
		        "system_fingerprint");
		line = json_pack("{s:s, s:s, s:{s:i, s:s, s:o}, s:n}", "id", id, "custom_id", e->id,
		                 "response", "status_code", 200, "request_id", req, "body", body,
		                 "error");
	} else {
		json_t *err = json_object_get(r, "error");
		const char *code = json_string_value(json_object_get(err, "code"));
		const char *msg = json_string_value(json_object_get(err, "message"));
		line = json_pack("{s:s, s:s, s:n, s:{s:s, s:s}}", "id", id, "custom_id", e->id,
		                 "response", "error", "code", code ? code : "unknown", "message",
		                 msg ? msg : "");
	}
	char *s = line ? json_dumps(line, JSON_COMPACT) : NULL;
	json_decref(line);
	json_decref(r);
	return s;
}

/* ---------------------------------------------------------------- files */

/* Reads --ids FILE: one id per line, or JSON Lines whose objects carry "id"
 * or "custom_id" (so the submitted file itself can be given). */
static int load_ids(struct collect *c, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	if (!f) {
		fprintf(stderr, "promptyard collect: --ids %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((got = getline(&line, &cap, f)) >= 0) {
		size_t len = (size_t)got;
		while (len &&
		       (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
			len--;
		line[len] = '\0';
		if (!len)
			continue;
		const char *id = line;
		json_t *obj = NULL;
		if (line[0] == '{') {
			obj = json_loadb(line, len, 0, NULL);
			const char *v = json_string_value(json_object_get(obj, "id"));
			if (!v)
				v = json_string_value(json_object_get(obj, "custom_id"));
			if (v)
				id = v;
		}
		if (!json_object_get(c->index, id))
			entry_add(c, id);
		json_decref(obj);
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return 0;
}

static int write_out(const struct collect *c, const char *path, bool openai)
{
	bool to_stdout = strcmp(path, "-") == 0;
	struct buf tmp = {0};
	FILE *f = stdout;
	if (!to_stdout) {
		buf_printf(&tmp, "%s.tmp", path);
		f = fopen(tmp.data, "wb");
		if (!f) {
			fprintf(stderr, "promptyard collect: %s: %s\n", tmp.data, strerror(errno));
			buf_free(&tmp);
			return -1;
		}
	}
	for (size_t i = 0; i < c->n; i++) {
		const struct entry *e = &c->v[i];
		if (!e->value)
			continue;
		if (openai) {
			char *l = openai_line(e);
			if (l)
				fprintf(f, "%s\n", l);
			free(l);
		} else {
			fwrite(e->value, 1, e->len, f);
			fputc('\n', f);
		}
	}
	int rc = 0;
	if (to_stdout) {
		rc = fflush(f) == 0 ? 0 : -1;
	} else {
		if (fflush(f) != 0 || ferror(f))
			rc = -1;
		if (fclose(f) != 0)
			rc = -1;
		if (rc == 0 && rename(tmp.data, path) != 0)
			rc = -1;
		if (rc != 0) {
			fprintf(stderr, "promptyard collect: %s: %s\n", path, strerror(errno));
			unlink(tmp.data);
		}
	}
	buf_free(&tmp);
	return rc;
}

static void usage(FILE *out)
{
	fputs("usage: promptyard collect -c CFG --out FILE [--expect N | --ids FILE] [--timeout "
	      "S]\n"
	      "                          [--format native|openai-batch] [--topic T]\n"
	      "                          [--brokers LIST] [--redis HOST:PORT]\n",
	      out);
}

int cli_collect(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"brokers", required_argument, NULL, 'b'},
	        {"redis", required_argument, NULL, 'r'},
	        {"out", required_argument, NULL, 'o'},
	        {"expect", required_argument, NULL, 'e'},
	        {"ids", required_argument, NULL, 'i'},
	        {"timeout", required_argument, NULL, 't'},
	        {"format", required_argument, NULL, 'f'},
	        {"topic", required_argument, NULL, 'T'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *brokers = NULL, *redis = NULL, *out = NULL, *ids = NULL;
	const char *format = "native", *topic = NULL, *expect_s = NULL;
	double timeout_s = 0;
	struct config *cfg = NULL;
	rd_kafka_t *rk = NULL;
	struct collect c;
	char err[512], *end;
	int ch, rc = 2;

	memset(&c, 0, sizeof c);
	c.index = json_object();
	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'b': brokers = optarg; break;
		case 'r': redis = optarg; break;
		case 'o': out = optarg; break;
		case 'e': expect_s = optarg; break;
		case 'i': ids = optarg; break;
		case 'f': format = optarg; break;
		case 'T': topic = optarg; break;
		case 't':
			timeout_s = strtod(optarg, &end);
			if (*end || timeout_s <= 0) {
				fprintf(stderr,
				        "promptyard collect: --timeout: expected seconds > 0\n");
				goto done;
			}
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto done;
		default: usage(stderr); goto done;
		}
	}
	if (optind != argc || !out) {
		fprintf(stderr, "promptyard collect: %s\n",
		        !out ? "--out FILE is required" : "unexpected argument");
		usage(stderr);
		goto done;
	}
	if (expect_s && ids) {
		fprintf(stderr, "promptyard collect: --expect and --ids exclude each other\n");
		goto done;
	}
	if (expect_s) {
		long long n = strtoll(expect_s, &end, 10);
		if (*end || n < 1) {
			fprintf(stderr, "promptyard collect: --expect: expected a count >= 1\n");
			goto done;
		}
		c.expect = (uint64_t)n;
	}
	bool openai = strcmp(format, "openai-batch") == 0;
	if (!openai && strcmp(format, "native") != 0) {
		fprintf(stderr,
		        "promptyard collect: --format: native or openai-batch, not \"%s\"\n",
		        format);
		goto done;
	}
	cfg = cli_config("collect", path, brokers, redis);
	if (!cfg)
		goto done;
	if (ids) {
		if (load_ids(&c, ids) != 0)
			goto done;
		c.fixed_ids = true;
		c.expect = c.n;
		if (!c.n) {
			fprintf(stderr, "promptyard collect: --ids %s: no ids\n", ids);
			goto done;
		}
	}
	rc = 1;
	rk = cli_kafka_consumer(cfg, NULL, err, sizeof err);
	if (!rk) {
		fprintf(stderr, "promptyard collect: %s\n", err);
		rc = 2;
		goto done;
	}
	cli_catch_signals();
	uint64_t total = 0;
	struct cli_read r = {
	        .topic = topic ? topic : cfg->kafka.results_topic,
	        .to_end = true,
	        .until = complete,
	        .deadline_ms = timeout_s > 0 ? time_mono_ms() + (int64_t)(timeout_s * 1000) : 0,
	        .total = &total,
	        .message = on_result,
	        .tick = on_tick,
	        .opaque = &c,
	};
	cli_progress_start(&c.prog, "collect", c.expect);
	int got = cli_kafka_read(rk, &r, err, sizeof err);
	if (!c.expect)
		c.prog.total = total;
	cli_progress_finish(&c.prog);
	if (got < 0) {
		fprintf(stderr, "promptyard collect: %s\n", err);
		goto done;
	}
	if (write_out(&c, out, openai) != 0)
		goto done;
	bool complete = got == 0 && (!c.expect || c.have >= c.expect);
	/* With --out - the results are stdout: the summary goes to stderr. */
	fprintf(strcmp(out, "-") == 0 ? stderr : stdout,
	        "collected %zu result%s (%zu ok, %zu error) into %s\n", c.have,
	        c.have == 1 ? "" : "s", c.have - c.errors, c.errors, out);
	if (c.unreadable)
		fprintf(stderr,
		        "promptyard collect: %llu messages of %s were not results (skipped)\n",
		        (unsigned long long)c.unreadable, r.topic);
	if (!complete) {
		fprintf(stderr, "promptyard collect: %s: %zu of %llu results",
		        cli_interrupted ? "interrupted" : "timeout", c.have,
		        (unsigned long long)c.expect);
		if (c.fixed_ids) {
			size_t shown = 0;
			for (size_t i = 0; i < c.n && shown < 10; i++) {
				if (c.v[i].value)
					continue;
				fprintf(stderr, "%s%s", shown ? ", " : "; missing: ", c.v[i].id);
				shown++;
			}
			if (c.n - c.have > shown)
				fprintf(stderr, ", ...");
		}
		fputc('\n', stderr);
		goto done;
	}
	rc = 0;
done:
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	for (size_t i = 0; i < c.n; i++) {
		free(c.v[i].id);
		free(c.v[i].value);
	}
	free(c.v);
	json_decref(c.index);
	config_free(cfg);
	return rc;
}
