/* promptyard dashboard: the control center (SPEC §15).
 *
 *   promptyard dashboard -c CFG [--listen ADDR] [--redis HOST:PORT]
 *
 * Serves on ADDR (default 127.0.0.1:8377; port 0 picks one) from one libuv
 * loop (worker/httpd.h):
 *   GET /             one self-contained page (producer-tools/dashboard.html,
 *                     compiled in) that draws the summary and refreshes it
 *   GET /api/summary  the fleet from Redis, as JSON (below)
 * and 404 to anything else. It prints "dashboard: http://HOST:PORT/" on
 * stdout once it listens, and stops on SIGINT or SIGTERM (exit 0).
 *
 * The summary: {"generated_at", "day", "month",
 *   "budgets":  [as `budget show --json`, every budget Redis holds],
 *   "models":   [{model, provider, spend_today_usd, spend_month_usd,
 *                 calls_today, spend_today_nusd, spend_month_nusd,
 *                 calls_month}] with a call this month, most spent today first,
 *   "jobs":     {"today": {ok, error, by_code: {code: n}}, "month": {...}},
 *   "circuits": [{model, provider, state (closed|open|probe),
 *                 consecutive_failures, open_ms, ok, fail,
 *                 median_latency_ms (null: none)}] per configured model,
 *   "rate_limits": [{provider, rpm, tpm, requests_available, burst_requests,
 *                 tokens_available, burst_tokens}] per provider with a limit,
 *   "batches":  [batches in flight, see read_batches()]}
 * Spend, calls and jobs are the fleet's stats that the ledger keeps per day
 * (worker/ledger.h, "Stats"); a month is the sum of its days. Circuits are
 * the workers' shared health view (worker/health.h), rate limits their
 * shared buckets. Nothing here writes to Redis, and no secret (key,
 * password, header) is read or shown.
 *
 * Redis is read with a blocking connection on the loop: a request waits for
 * Redis (at most redis.timeout_ms per command) and so does every other
 * request meanwhile. A summary is kept for SUMMARY_CACHE_MS, so any number
 * of open pages costs Redis one read a second. A Redis failure answers 503
 * with {"error"}; the connection is made again at the next request. */
#include "cli.h"

#include "buf.h"
#include "health.h"
#include "httpd.h"
#include "ledger.h"
#include "timeutil.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define DEFAULT_LISTEN   "127.0.0.1:8377"
#define SUMMARY_CACHE_MS 1000
/* The period of rpm and tpm (ratelimit.lua's ARGV[1] as the workers send it). */
#define RATE_PERIOD_MS 60000.0

extern const char dashboard_html[];

struct dashboard {
	struct config *cfg;
	redisContext *redis; /* NULL until connected, and after a failure */
	struct health *health;
	char *summary; /* the last summary's text, and when it was made */
	int64_t summary_mono_ms;
	bool redis_down; /* the last try failed (said once on stderr) */
};

/* ---------------------------------------------------------------- reading Redis */

static int64_t reply_i64(const redisReply *r)
{
	if (r && r->type == REDIS_REPLY_INTEGER)
		return r->integer;
	if (r && r->type == REDIS_REPLY_STRING)
		return strtoll(r->str, NULL, 10);
	return 0;
}

/* Runs a command; NULL with errstr on an error reply or a lost connection. */
static redisReply *command(redisContext *c, char *errstr, size_t errstr_size, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static redisReply *command(redisContext *c, char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r) {
		snprintf(errstr, errstr_size, "redis: %s", c->errstr[0] ? c->errstr : "no reply");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(errstr, errstr_size, "redis: %s", r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* Splits "<provider>:<model>" (a stats field after its "spend:" or "calls:"):
 * the longest configured provider that the text starts with, else the text
 * up to the first ':' (model names may hold ':', Bedrock ids do). */
static void split_pm(const struct config *cfg, const char *pm, struct buf *provider,
                     const char **model)
{
	size_t best = 0;
	bool found = false;
	for (size_t i = 0; i < cfg->n_providers; i++) {
		size_t n = strlen(cfg->providers[i].name);
		if ((!found || n > best) && strncmp(pm, cfg->providers[i].name, n) == 0 &&
		    pm[n] == ':') {
			best = n;
			found = true;
		}
	}
	if (!found) {
		const char *colon = strchr(pm, ':');
		best = colon ? (size_t)(colon - pm) : strlen(pm);
	}
	buf_reset(provider);
	buf_append(provider, pm, best);
	*model = pm[best] == ':' ? pm + best + 1 : "";
}

/* Adds n to the integer under key of obj. */
static void bump(json_t *obj, const char *key, json_int_t n)
{
	json_t *v = json_object_get(obj, key);
	json_object_set_new(obj, key, json_integer((v ? json_integer_value(v) : 0) + n));
}

static json_t *jobs_new(void)
{
	return json_pack("{s:I, s:I, s:{}}", "ok", (json_int_t)0, "error", (json_int_t)0,
	                 "by_code");
}

/* Adds one day's stats hash (an HGETALL reply) to models (key
 * "<provider>\n<model>" -> row) and jobs; today also fills the today columns. */
static void add_day(const struct config *cfg, const redisReply *r, bool today, json_t *models,
                    json_t *jobs_month, json_t *jobs_today)
{
	struct buf provider = {0}, key = {0};
	json_t *jobs[2] = {jobs_month, today ? jobs_today : NULL};
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
		const char *field = r->element[i]->str;
		json_int_t v = reply_i64(r->element[i + 1]);
		if (!field)
			continue;
		bool spend = strncmp(field, "spend:", 6) == 0,
		     calls = strncmp(field, "calls:", 6) == 0;
		if (spend || calls) {
			const char *model;
			split_pm(cfg, field + 6, &provider, &model);
			buf_reset(&key);
			buf_printf(&key, "%s\n%s", provider.data ? provider.data : "", model);
			json_t *row = json_object_get(models, key.data);
			if (!row) {
				row = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "model", model,
				                "provider", provider.data ? provider.data : "",
				                "spend_today_nusd", (json_int_t)0,
				                "spend_month_nusd", (json_int_t)0, "calls_today",
				                (json_int_t)0, "calls_month", (json_int_t)0);
				json_object_set_new(models, key.data, row);
			}
			bump(row, spend ? "spend_month_nusd" : "calls_month", v);
			if (today)
				bump(row, spend ? "spend_today_nusd" : "calls_today", v);
			continue;
		}
		for (size_t k = 0; k < 2 && jobs[k]; k++) {
			if (strcmp(field, "jobs:ok") == 0) {
				bump(jobs[k], "ok", v);
			} else if (strncmp(field, "jobs:error:", 11) == 0) {
				bump(jobs[k], "error", v);
				bump(json_object_get(jobs[k], "by_code"), field + 11, v);
			}
		}
	}
	buf_free(&provider);
	buf_free(&key);
}

static int cmp_models(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	static const char *const order[] = {"spend_today_nusd", "spend_month_nusd", "calls_month"};
	for (size_t i = 0; i < 3; i++) {
		json_int_t u = json_integer_value(json_object_get(x, order[i]));
		json_int_t v = json_integer_value(json_object_get(y, order[i]));
		if (u != v)
			return u > v ? -1 : 1;
	}
	int c = strcmp(json_string_value(json_object_get(x, "provider")),
	               json_string_value(json_object_get(y, "provider")));
	return c ? c
	         : strcmp(json_string_value(json_object_get(x, "model")),
	                  json_string_value(json_object_get(y, "model")));
}

/* "models" and "jobs" from the stats of every day of the month so far, read
 * in one pipeline. Returns 0, or -1 with errstr. */
static int read_stats(struct dashboard *d, int64_t now_ms, json_t *summary, char *errstr,
                      size_t errstr_size)
{
	char days[31][LEDGER_WINDOW_SIZE];
	size_t n = ledger_stats_days(now_ms, days);
	struct buf key = {0};
	json_t *models = json_object(), *month = jobs_new(), *today = jobs_new();
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		buf_reset(&key);
		ledger_key_base(&key, d->cfg);
		buf_printf(&key, "stats:d:%s", days[i]);
		redisAppendCommand(d->redis, "HGETALL %s", key.data);
	}
	for (size_t i = 0; i < n; i++) {
		void *reply = NULL;
		if (redisGetReply(d->redis, &reply) != REDIS_OK || !reply) {
			snprintf(errstr, errstr_size, "redis: %s", d->redis->errstr);
			goto out;
		}
		redisReply *r = reply;
		if (r->type == REDIS_REPLY_ERROR) {
			/* Read the rest of the pipeline before failing. */
			snprintf(errstr, errstr_size, "redis: %s", r->str);
			rc = -2;
		} else {
			add_day(d->cfg, r, i + 1 == n, models, month, today);
		}
		freeReplyObject(r);
	}
	if (rc == -2)
		goto out;
	size_t count = json_object_size(models), k = 0;
	json_t **rows = xcalloc(count ? count : 1, sizeof *rows);
	const char *name;
	json_t *row;
	json_object_foreach (models, name, row) {
		rows[k++] = row;
	}
	qsort(rows, count, sizeof *rows, cmp_models);
	/* SPEC §15's fields first, then the exact amounts and the month's calls. */
	json_t *list = json_array();
	for (size_t i = 0; i < count; i++) {
		json_int_t today_nusd =
		        json_integer_value(json_object_get(rows[i], "spend_today_nusd"));
		json_int_t month_nusd =
		        json_integer_value(json_object_get(rows[i], "spend_month_nusd"));
		json_array_append_new(
		        list, json_pack("{s:O, s:O, s:o, s:o, s:O, s:I, s:I, s:O}", "model",
		                        json_object_get(rows[i], "model"), "provider",
		                        json_object_get(rows[i], "provider"), "spend_today_usd",
		                        cli_json_usd(today_nusd), "spend_month_usd",
		                        cli_json_usd(month_nusd), "calls_today",
		                        json_object_get(rows[i], "calls_today"), "spend_today_nusd",
		                        today_nusd, "spend_month_nusd", month_nusd, "calls_month",
		                        json_object_get(rows[i], "calls_month")));
	}
	free(rows);
	json_object_set_new(summary, "models", list);
	json_object_set_new(summary, "jobs",
	                    json_pack("{s:O, s:O}", "today", today, "month", month));
	rc = 0;
out:
	json_decref(models);
	json_decref(month);
	json_decref(today);
	buf_free(&key);
	return rc < 0 ? -1 : 0;
}

/* "circuits": the shared health view of every configured model. */
static int read_circuits(struct dashboard *d, json_t *summary, char *errstr, size_t errstr_size)
{
	const struct config *cfg = d->cfg;
	if (health_load_view_sync(d->health, d->redis, errstr, errstr_size) != 0)
		return -1;
	json_t *list = json_array();
	int64_t now = time_mono_ms();
	for (size_t i = 0; i < cfg->n_models; i++) {
		struct health_model_view v;
		health_model_view(d->health, (int)i, now, &v);
		json_array_append_new(
		        list,
		        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "model",
		                  cfg->models[i].name, "provider",
		                  cfg->providers[cfg->models[i].provider].name, "state",
		                  health_circuit_name(v.circuit), "consecutive_failures",
		                  (json_int_t)v.consec_failures, "open_ms", (json_int_t)v.open_ms,
		                  "ok", (json_int_t)v.ok, "fail", (json_int_t)v.fail,
		                  "median_latency_ms",
		                  v.median_ms >= 0 ? json_integer(v.median_ms) : json_null()));
	}
	json_object_set_new(summary, "circuits", list);
	return 0;
}

/* What a shared bucket holds now: ratelimit.lua's refill (limit per period,
 * up to a burst of max(1, limit / 60)) applied to its stored level. */
static json_int_t bucket_now(const redisReply *level, const redisReply *ts, int64_t limit,
                             int64_t redis_now_ms, json_int_t *burst)
{
	double b = limit / 60 > 1 ? (double)(limit / 60) : 1;
	*burst = (json_int_t)b;
	if (!level || level->type != REDIS_REPLY_STRING)
		return (json_int_t)b; /* untouched: full */
	double v = strtod(level->str, NULL);
	double t = ts && ts->type == REDIS_REPLY_STRING ? strtod(ts->str, NULL) : redis_now_ms;
	if (redis_now_ms > t)
		v = fmin(b, v + (redis_now_ms - t) * (double)limit / RATE_PERIOD_MS);
	return (json_int_t)floor(v);
}

/* "rate_limits": every provider with rpm or tpm, its shared buckets now. */
static int read_rate_limits(struct dashboard *d, json_t *summary, char *errstr, size_t errstr_size)
{
	const struct config *cfg = d->cfg;
	json_t *list = json_array();
	json_object_set_new(summary, "rate_limits", list);
	redisReply *t = command(d->redis, errstr, errstr_size, "TIME");
	if (!t)
		return -1;
	int64_t now = t->type == REDIS_REPLY_ARRAY && t->elements == 2
	                      ? reply_i64(t->element[0]) * 1000 + reply_i64(t->element[1]) / 1000
	                      : 0;
	freeReplyObject(t);
	for (size_t i = 0; i < cfg->n_providers; i++) {
		const struct provider_conf *p = &cfg->providers[i];
		if (p->rpm <= 0 && p->tpm <= 0)
			continue;
		redisReply *r = command(d->redis, errstr, errstr_size,
		                        "HMGET %s{health}:rl:%s req_level req_ts tok_level tok_ts",
		                        cfg->redis.key_prefix, p->name);
		if (!r)
			return -1;
		json_int_t req_burst = 0, tok_burst = 0, req = 0, tok = 0;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
			req = bucket_now(r->element[0], r->element[1], p->rpm, now, &req_burst);
			tok = bucket_now(r->element[2], r->element[3], p->tpm, now, &tok_burst);
		}
		freeReplyObject(r);
		json_array_append_new(list, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
		                                      "provider", p->name, "rpm",
		                                      (json_int_t)p->rpm, "tpm", (json_int_t)p->tpm,
		                                      "requests_available", p->rpm > 0 ? req : 0,
		                                      "burst_requests", p->rpm > 0 ? req_burst : 0,
		                                      "tokens_available", p->tpm > 0 ? tok : 0,
		                                      "burst_tokens", p->tpm > 0 ? tok_burst : 0));
	}
	return 0;
}

/* "batches": the provider batches in flight (SPEC §14), as batch mode records
 * them (cli_batches_read: every field of each batch's hash, a decimal
 * integer as a number); a batch that ends leaves the set. Empty until batch
 * mode writes them. */
static int read_batches(struct dashboard *d, json_t *summary, char *errstr, size_t errstr_size)
{
	json_t *list = json_array();
	json_object_set_new(summary, "batches", list);
	return cli_batches_read(d->redis, d->cfg, "batches", list, errstr, errstr_size);
}

/* The summary's text (new), or NULL with errstr. */
static char *summary_make(struct dashboard *d, char *errstr, size_t errstr_size)
{
	int64_t now = time_now_ms();
	char day[LEDGER_WINDOW_SIZE], month[LEDGER_WINDOW_SIZE], at[40];
	json_t *budgets = NULL, *s = NULL;
	char *text = NULL;
	if (!d->redis) {
		d->redis = cli_redis_connect(d->cfg, errstr, errstr_size);
		if (!d->redis)
			return NULL;
	}
	ledger_windows(now, day, month);
	time_format_rfc3339(now, at, sizeof at);
	if (cli_budgets_show(d->redis, d->cfg, NULL, now, &budgets, errstr, errstr_size) != 0)
		goto out;
	s = json_pack("{s:s, s:s, s:s, s:o}", "generated_at", at, "day", day, "month", month,
	              "budgets", budgets);
	if (read_stats(d, now, s, errstr, errstr_size) != 0 ||
	    read_circuits(d, s, errstr, errstr_size) != 0 ||
	    read_rate_limits(d, s, errstr, errstr_size) != 0 ||
	    read_batches(d, s, errstr, errstr_size) != 0)
		goto out;
	text = json_dumps(s, JSON_COMPACT | JSON_REAL_PRECISION(15));
out:
	json_decref(s);
	/* After a failure the connection may be out of step: make a new one. */
	if (!text && d->redis) {
		redisFree(d->redis);
		d->redis = NULL;
	}
	return text;
}

/* ---------------------------------------------------------------- HTTP */

static void on_request(void *opaque, const char *path, struct httpd_response *out)
{
	struct dashboard *d = opaque;
	if (strcmp(path, "/") == 0) {
		free(out->body);
		out->status = 200;
		out->content_type = "text/html; charset=utf-8";
		out->body = xstrdup(dashboard_html);
		out->len = strlen(dashboard_html);
		return;
	}
	if (strcmp(path, "/api/summary") != 0) {
		httpd_text(out, 404, "not found: try / or /api/summary\n");
		return;
	}
	int64_t now = time_mono_ms();
	if (!d->summary || now - d->summary_mono_ms >= SUMMARY_CACHE_MS) {
		char err[512];
		char *text = summary_make(d, err, sizeof err);
		if (!text) {
			json_t *e = json_pack("{s:s}", "error", err);
			char *body = json_dumps(e, JSON_COMPACT);
			json_decref(e);
			if (!d->redis_down)
				fprintf(stderr, "promptyard dashboard: %s\n", err);
			d->redis_down = true;
			httpd_text(out, 503, body);
			out->content_type = "application/json";
			free(body);
			return;
		}
		if (d->redis_down)
			fprintf(stderr, "promptyard dashboard: redis is back\n");
		d->redis_down = false;
		free(d->summary);
		d->summary = text;
		d->summary_mono_ms = now;
	}
	httpd_text(out, 200, d->summary);
	out->content_type = "application/json";
}

/* ---------------------------------------------------------------- main */

struct stopper {
	uv_signal_t sigint, sigterm;
	struct httpd *server;
};

static void on_signal(uv_signal_t *s, int signum)
{
	struct stopper *st = s->data;
	(void)signum;
	httpd_stop(st->server);
	st->server = NULL;
	uv_close((uv_handle_t *)&st->sigint, NULL);
	uv_close((uv_handle_t *)&st->sigterm, NULL);
}

/* Whether listen names a loopback address only ("127.0.0.1:8377", "[::1]:80",
 * "localhost:80"); ":PORT" is every interface. */
static bool is_loopback(const char *listen)
{
	const char *colon = strrchr(listen, ':');
	char host[256];
	size_t n = colon ? (size_t)(colon - listen) : 0;
	if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') {
		listen++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof host)
		return false;
	memcpy(host, listen, n);
	host[n] = '\0';
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
}

static void usage(FILE *out)
{
	fputs("usage: promptyard dashboard -c CFG [--listen ADDR] [--redis HOST:PORT]\n"
	      "Serves the control center: one web page (budgets, spend per model, jobs,\n"
	      "circuits, rate limits, batches in flight, from Redis) on ADDR "
	      "(default\n" DEFAULT_LISTEN
	      ") and the same as JSON at /api/summary. The page has no login:\n"
	      "keep it on loopback, or behind a proxy that authenticates. Ctrl-C stops.\n",
	      out);
}

int cli_dashboard(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"listen", required_argument, NULL, 'l'},
	        {"redis", required_argument, NULL, 'r'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *listen = DEFAULT_LISTEN, *redis = NULL;
	struct dashboard d = {0};
	struct stopper st = {0};
	uv_loop_t loop;
	char err[512];
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'l': listen = optarg; break;
		case 'r': redis = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	d.cfg = cli_config("dashboard", path, NULL, redis);
	if (!d.cfg)
		return 2;
	if (!is_loopback(listen))
		fprintf(stderr,
		        "promptyard dashboard: warning: %s is not a loopback address: anyone who "
		        "can reach it reads the page (it has no login)\n",
		        listen);
	d.health = health_new(NULL, NULL, d.cfg, NULL);
	uv_loop_init(&loop);
	st.server = httpd_start(&loop, listen, "--listen", on_request, &d, err, sizeof err);
	if (!st.server) {
		fprintf(stderr, "promptyard dashboard: %s\n", err);
		health_free(d.health);
		config_free(d.cfg);
		uv_loop_close(&loop);
		return 2;
	}
	uv_signal_init(&loop, &st.sigint);
	uv_signal_init(&loop, &st.sigterm);
	st.sigint.data = st.sigterm.data = &st;
	uv_signal_start(&st.sigint, on_signal, SIGINT);
	uv_signal_start(&st.sigterm, on_signal, SIGTERM);
	signal(SIGPIPE, SIG_IGN);

	char host[300];
	snprintf(host, sizeof host, "%s", listen);
	char *colon = strrchr(host, ':');
	if (colon)
		*colon = '\0';
	printf("dashboard: http://%s:%d/\n", host[0] ? host : "127.0.0.1", httpd_port(st.server));
	fflush(stdout);
	/* Say at once when Redis cannot be read, rather than at the first page. */
	d.redis = cli_redis_connect(d.cfg, err, sizeof err);
	if (!d.redis) {
		fprintf(stderr, "promptyard dashboard: %s (the page says so until it can)\n", err);
		d.redis_down = true;
	}

	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (d.redis)
		redisFree(d.redis);
	free(d.summary);
	health_free(d.health);
	config_free(d.cfg);
	return 0;
}
