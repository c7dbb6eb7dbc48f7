/* ledger: the C side of the budget scripts: it builds their keys and
 * arguments, sends them on the worker's Redis connection and reads their
 * replies. What each step does is stated, and done, in its worker/<name>.lua.
 *
 * One file past 900 lines because it is one idea: every function below is
 * the same three moves (keys and arguments through the cmd helpers, one
 * script call, its reply read into a plain struct) for one step of the
 * ledger, and they share the helpers, the key layout and the script ids
 * of struct ledger. The steps of batch mode (the last banner) are the
 * largest group that could stand apart, and would take that whole shared
 * part with them into an internal header. */
#include "ledger.h"

#include "log.h"
#include "timeutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern const char lua_settle[], lua_dedupe_check[], lua_dedupe_done[], lua_reserve[], lua_release[],
        lua_reap[], lua_reap_ack[], lua_stats_jobs[], lua_batch_prepare[], lua_batch_record[],
        lua_batch_claim[], lua_batch_touch[], lua_batch_jobs[], lua_batch_finish[],
        lua_batch_abandon[];

/* Settle markers outlive any redelivery of the job: a week. */
#define SETTLE_MARKER_TTL_S "604800"

enum sync_state { SYNC_NONE, SYNC_SENT, SYNC_DONE, SYNC_FAILED };

struct ledger {
	struct redis *r;
	const struct config *cfg;
	char *base; /* "<prefix>{ledger}:" */
	char *worker;
	enum sync_state sync;
	/* script ids */
	size_t settle, dedupe_check, dedupe_done, reserve, release, reap, reap_ack, budget_sync,
	        budget_state, stats_jobs;
	size_t batch_prepare, batch_record, batch_claim, batch_touch, batch_jobs, batch_finish,
	        batch_abandon;
};

struct ledger *ledger_new(struct redis *r, const struct config *cfg)
{
	struct ledger *l = xcalloc(1, sizeof *l);
	struct buf base = {0};
	char host[128] = "worker", worker[160];
	l->r = r;
	l->cfg = cfg;
	ledger_key_base(&base, cfg);
	l->base = buf_take(&base);
	gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = '\0';
	snprintf(worker, sizeof worker, "%s-%d", host, (int)getpid());
	l->worker = xstrdup(worker);
	/* The steps every attempt takes go in batches: one EVALSHA per loop
	 * turn for all of them (redis_add_batch_script). */
	l->settle = redis_add_batch_script(r, "settle", lua_settle);
	l->dedupe_check = redis_add_script(r, "dedupe_check", lua_dedupe_check);
	l->dedupe_done = redis_add_script(r, "dedupe_done", lua_dedupe_done);
	l->reserve = redis_add_batch_script(r, "reserve", lua_reserve);
	l->release = redis_add_batch_script(r, "release", lua_release);
	l->reap = redis_add_script(r, "reap", lua_reap);
	l->reap_ack = redis_add_script(r, "reap_ack", lua_reap_ack);
	l->budget_sync = redis_add_script(r, "budget_sync", lua_budget_sync);
	l->budget_state = redis_add_script(r, "budget_state", lua_budget_state);
	l->stats_jobs = redis_add_script(r, "stats_jobs", lua_stats_jobs);
	l->batch_prepare = redis_add_script(r, "batch_prepare", lua_batch_prepare);
	l->batch_record = redis_add_script(r, "batch_record", lua_batch_record);
	l->batch_claim = redis_add_script(r, "batch_claim", lua_batch_claim);
	l->batch_touch = redis_add_script(r, "batch_touch", lua_batch_touch);
	l->batch_jobs = redis_add_script(r, "batch_jobs", lua_batch_jobs);
	l->batch_finish = redis_add_script(r, "batch_finish", lua_batch_finish);
	l->batch_abandon = redis_add_script(r, "batch_abandon", lua_batch_abandon);
	/* The writes the worker acts on wait, with sentinels, until the
	 * replicas have them (SPEC §15); the reads need not. */
	size_t durable[] = {l->settle,        l->dedupe_done,  l->reserve,     l->release,
	                    l->reap,          l->reap_ack,     l->budget_sync, l->stats_jobs,
	                    l->batch_prepare, l->batch_record, l->batch_claim, l->batch_touch,
	                    l->batch_finish,  l->batch_abandon};
	for (size_t i = 0; i < sizeof durable / sizeof durable[0]; i++)
		redis_set_durable(r, durable[i]);
	return l;
}

void ledger_set_worker(struct ledger *l, const char *worker_id)
{
	free(l->worker);
	l->worker = xstrdup(worker_id);
}

void ledger_free(struct ledger *l)
{
	if (!l)
		return;
	free(l->base);
	free(l->worker);
	free(l);
}

/* ------------------------------------------------------------ keys, windows */

void ledger_window(enum period p, int64_t unix_ms, char *out, size_t out_size)
{
	char w[32] = "all";
	/* "YYYY-MM-DD" is the date part of the RFC 3339 form, "YYYY-MM" its start. */
	if (p != PERIOD_NONE) {
		time_format_rfc3339(unix_ms, w, sizeof w);
		w[p == PERIOD_DAY ? 10 : 7] = '\0';
	}
	snprintf(out, out_size, "%s", w);
}

void ledger_windows(int64_t unix_ms, char *day, char *month)
{
	ledger_window(PERIOD_DAY, unix_ms, day, LEDGER_WINDOW_SIZE);
	ledger_window(PERIOD_MONTH, unix_ms, month, LEDGER_WINDOW_SIZE);
}

int ledger_window_start_ms(const char *window, int64_t since_ms, int64_t *start_ms)
{
	struct tm tm = {0};
	char tail;
	if (strcmp(window, "all") == 0) {
		*start_ms = since_ms;
		return 0;
	}
	if (sscanf(window, "%4d-%2d-%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tail) == 3) {
		/* a day */
	} else if (sscanf(window, "%4d-%2d%c", &tm.tm_year, &tm.tm_mon, &tail) == 2) {
		tm.tm_mday = 1;
	} else {
		return -1;
	}
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*start_ms = (int64_t)timegm(&tm) * 1000;
	return 0;
}

void ledger_key_base(struct buf *out, const struct config *cfg)
{
	buf_printf(out, "%s{ledger}:", cfg->redis.key_prefix);
}

void ledger_budget_key(struct buf *key, const struct config *cfg, int budget, int64_t unix_ms)
{
	char window[LEDGER_WINDOW_SIZE];
	const struct budget_conf *b = &cfg->budgets[budget];
	ledger_window(b->period, unix_ms, window, sizeof window);
	buf_printf(key, "%s{ledger}:b:%s:%s", cfg->redis.key_prefix, b->name, window);
}

void ledger_stats_key(struct buf *key, const struct config *cfg, int64_t unix_ms)
{
	char day[LEDGER_WINDOW_SIZE];
	ledger_window(PERIOD_DAY, unix_ms, day, sizeof day);
	buf_printf(key, "%s{ledger}:stats:d:%s", cfg->redis.key_prefix, day);
}

size_t ledger_stats_days(int64_t unix_ms, char (*days)[LEDGER_WINDOW_SIZE])
{
	char today[LEDGER_WINDOW_SIZE];
	ledger_window(PERIOD_DAY, unix_ms, today, sizeof today);
	int n = atoi(today + 8);
	for (int d = 1; d <= n; d++) {
		memcpy(days[d - 1], today, 8); /* "2026-11-" */
		days[d - 1][8] = (char)('0' + d / 10);
		days[d - 1][9] = (char)('0' + d % 10);
		days[d - 1][10] = '\0';
	}
	return (size_t)n;
}

/* ------------------------------------------------------------ script calls */

/* One script call being built: keys first, then arguments, all copied into
 * one buffer (one allocation for the whole call, not one per argument). */
#define CMD_INLINE_ARGS 24
struct cmd {
	int argc, nkeys;
	int cap;
	struct buf data;
	size_t *off, *len; /* argument i is data.data[off[i] .. off[i] + len[i]) */
	size_t off_inline[CMD_INLINE_ARGS], len_inline[CMD_INLINE_ARGS];
};

/* Records what was appended to c->data since start as the next argument. */
static void cmd_mark(struct cmd *c, size_t start)
{
	if (c->argc == c->cap) {
		if (!c->off) {
			c->off = c->off_inline;
			c->len = c->len_inline;
			c->cap = CMD_INLINE_ARGS;
			buf_reserve(&c->data, 512);
		} else {
			int cap = c->cap * 2;
			size_t *off = xmalloc((size_t)cap * sizeof *off);
			size_t *len = xmalloc((size_t)cap * sizeof *len);
			memcpy(off, c->off, (size_t)c->argc * sizeof *off);
			memcpy(len, c->len, (size_t)c->argc * sizeof *len);
			if (c->off != c->off_inline) {
				free(c->off);
				free(c->len);
			}
			c->off = off;
			c->len = len;
			c->cap = cap;
		}
	}
	c->off[c->argc] = start;
	c->len[c->argc++] = c->data.len - start;
}

static void cmd_mem(struct cmd *c, const void *data, size_t len)
{
	size_t start = c->data.len;
	buf_append(&c->data, data, len);
	cmd_mark(c, start);
}

static void cmd_str(struct cmd *c, const char *s)
{
	cmd_mem(c, s, strlen(s));
}

static void cmd_fmt(struct cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cmd_fmt(struct cmd *c, const char *fmt, ...)
{
	va_list ap;
	size_t start = c->data.len;
	va_start(ap, fmt);
	buf_vprintf(&c->data, fmt, ap);
	va_end(ap);
	cmd_mark(c, start);
}

/* A decimal integer, without printf (it is on every call's path). */
static void cmd_i64(struct cmd *c, int64_t v)
{
	size_t start = c->data.len;
	buf_i64(&c->data, v);
	cmd_mark(c, start);
}

/* A key: "<base><name>", then id when not NULL, then ":<attempt>" when
 * attempt >= 0 ("job:" j1 -1 gives "<base>job:j1"). Keys come before every
 * argument. Every key of the ledger has this shape; they were formatted
 * with printf, 8,000 instructions per job (callgrind, make bench b). */
static void cmd_key(struct cmd *c, const struct ledger *l, const char *name, const char *id,
                    int attempt)
{
	size_t start = c->data.len;
	buf_puts(&c->data, l->base);
	buf_puts(&c->data, name);
	if (id)
		buf_puts(&c->data, id);
	if (attempt >= 0) {
		buf_append(&c->data, ":", 1);
		buf_i64(&c->data, attempt);
	}
	cmd_mark(c, start);
	c->nkeys++;
}

/* The base and the windows of now: the arguments most scripts start with. */
static void cmd_base_windows(struct cmd *c, const struct ledger *l, int64_t now_ms)
{
	char day[LEDGER_WINDOW_SIZE], month[LEDGER_WINDOW_SIZE];
	ledger_windows(now_ms, day, month);
	cmd_str(c, l->base);
	cmd_str(c, day);
	cmd_str(c, month);
}

/* Sends c with script and frees it. */
static void cmd_send(struct ledger *l, size_t script, struct cmd *c, redis_reply_cb *cb,
                     void *opaque)
{
	const char *argv_inline[CMD_INLINE_ARGS];
	const char **argv =
	        c->argc <= CMD_INLINE_ARGS ? argv_inline : xmalloc((size_t)c->argc * sizeof *argv);
	for (int i = 0; i < c->argc; i++)
		argv[i] = c->data.data + c->off[i];
	redis_eval_batch(l->r, script, cb, opaque, c->nkeys, c->argc, argv, c->len);
	if (argv != argv_inline)
		free(argv);
	if (c->off != c->off_inline) {
		free(c->off);
		free(c->len);
	}
	buf_free(&c->data);
	*c = (struct cmd){0};
}

/* ------------------------------------------------------------ reply reading */

static int fail(char *errstr, size_t errstr_size, int rc, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int fail(char *errstr, size_t errstr_size, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (errstr && errstr_size)
		vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
	return rc;
}

/* The common checks: NULL, an error reply, not an array of at least n. */
static int check_array(const redisReply *reply, size_t n, const char *what, char *errstr,
                       size_t errstr_size)
{
	if (!reply)
		return fail(errstr, errstr_size, LEDGER_UNREACHABLE, "%s: redis unreachable", what);
	if (reply->type == REDIS_REPLY_ERROR)
		return fail(errstr, errstr_size, LEDGER_ERROR, "%s: %.*s", what, (int)reply->len,
		            reply->str);
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < n)
		return fail(errstr, errstr_size, LEDGER_ERROR, "%s: unexpected reply", what);
	return LEDGER_OK;
}

/* Element i as a string (borrowed), NULL if it is not one. */
static const char *elem_str(const redisReply *reply, size_t i)
{
	const redisReply *e = reply->element[i];
	return e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS ? e->str : NULL;
}

/* Element i as an integer (an integer reply or a decimal string). */
static int elem_i64(const redisReply *reply, size_t i, int64_t *out)
{
	const redisReply *e = reply->element[i];
	if (e->type == REDIS_REPLY_INTEGER) {
		*out = e->integer;
		return 0;
	}
	if (e->type != REDIS_REPLY_STRING || e->len == 0)
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(e->str, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static bool elem_is(const redisReply *reply, size_t i, const char *s)
{
	const char *v = elem_str(reply, i);
	return v && strcmp(v, s) == 0;
}

size_t ledger_reply_entries(const redisReply *reply)
{
	return reply && reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0;
}

/* ------------------------------------------------------------ budgets */

/* The budget_sync arguments of every config budget: all three values. */
static void cmd_sync_config(struct cmd *c, const struct ledger *l, int64_t now_ms)
{
	const struct config *cfg = l->cfg;
	cmd_key(c, l, "budgets", NULL, -1);
	cmd_str(c, l->base);
	cmd_i64(c, now_ms);
	for (size_t i = 0; i < cfg->n_budgets; i++) {
		const struct budget_conf *b = &cfg->budgets[i];
		cmd_str(c, b->name);
		cmd_str(c, "lpa");
		cmd_i64(c, b->limit_nusd);
		cmd_str(c, period_name(b->period));
		cmd_str(c, b->parent >= 0 ? cfg->budgets[b->parent].name : "");
	}
}

int ledger_sync_result(const redisReply *reply, char *errstr, size_t errstr_size)
{
	int rc = check_array(reply, 2, "budget sync", errstr, errstr_size);
	if (rc != LEDGER_OK)
		return rc;
	if (elem_is(reply, 0, "ok"))
		return LEDGER_OK;
	const char *what = elem_str(reply, 1);
	if (elem_is(reply, 0, "unknown"))
		return fail(errstr, errstr_size, LEDGER_REFUSED, "unknown budget \"%s\"",
		            what ? what : "?");
	return fail(errstr, errstr_size, LEDGER_REFUSED, "%s", what ? what : "refused");
}

/* What a sync the ledger sent carries to its reply. */
struct sync_call {
	struct ledger *l;
	redis_reply_cb *cb;
	void *opaque;
};

static void on_synced(void *opaque, redisReply *reply)
{
	struct sync_call *sc = opaque;
	struct ledger *l = sc->l;
	char err[256];
	int rc = ledger_sync_result(reply, err, sizeof err);
	if (rc == LEDGER_OK) {
		l->sync = SYNC_DONE;
	} else if (rc == LEDGER_UNREACHABLE) {
		l->sync = SYNC_NONE; /* again before the next step */
	} else {
		/* Retrying would not help: the config conflicts with budgets set
		 * in Redis. The steps use what Redis has. */
		if (l->sync != SYNC_FAILED)
			log_error("budgets not written to redis", "error", err, NULL);
		l->sync = SYNC_FAILED;
	}
	if (sc->cb)
		sc->cb(sc->opaque, reply);
	free(sc);
}

void ledger_sync_budgets(struct ledger *l, redis_reply_cb *cb, void *opaque)
{
	struct cmd c = {0};
	struct sync_call *sc = xcalloc(1, sizeof *sc);
	sc->l = l;
	sc->cb = cb;
	sc->opaque = opaque;
	if (l->sync != SYNC_DONE)
		l->sync = SYNC_SENT;
	cmd_sync_config(&c, l, time_now_ms());
	cmd_send(l, l->budget_sync, &c, on_synced, sc);
}

/* Before a budget step: the config's budgets go first, on the same connection,
 * so Redis runs the sync before the step. */
static void ensure_synced(struct ledger *l)
{
	if (l->sync == SYNC_NONE && l->cfg->n_budgets > 0)
		ledger_sync_budgets(l, NULL, NULL);
}

static void send_state(struct ledger *l, const char *name, redis_reply_cb *cb, void *opaque)
{
	struct cmd c = {0};
	ensure_synced(l);
	cmd_key(&c, l, "budgets", NULL, -1);
	cmd_base_windows(&c, l, time_now_ms());
	if (name)
		cmd_str(&c, name);
	cmd_send(l, l->budget_state, &c, cb, opaque);
}

void ledger_budget_state(struct ledger *l, const char *name, redis_reply_cb *cb, void *opaque)
{
	send_state(l, name, cb, opaque);
}

void ledger_budget_list(struct ledger *l, redis_reply_cb *cb, void *opaque)
{
	send_state(l, NULL, cb, opaque);
}

int ledger_budget_result(const redisReply *reply, size_t i, struct ledger_budget *out, char *errstr,
                         size_t errstr_size)
{
	int rc = check_array(reply, i + 1, "budget state", errstr, errstr_size);
	if (rc != LEDGER_OK)
		return rc;
	const redisReply *e = reply->element[i];
	int64_t since_ms = 0;
	*out = (struct ledger_budget){0};
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 || !elem_str(e, 0))
		return fail(errstr, errstr_size, LEDGER_ERROR, "budget state: unexpected entry");
	out->name = elem_str(e, 0);
	if (e->elements == 1)
		return LEDGER_OK;
	out->known = true;
	if (e->elements >= 8) {
		out->parent = elem_str(e, 3);
		out->window = elem_str(e, 4);
	}
	if (!out->parent || !out->window || elem_i64(e, 1, &out->limit_nusd) != 0 ||
	    period_parse(elem_str(e, 2) ? elem_str(e, 2) : "", &out->period) != 0 ||
	    elem_i64(e, 5, &out->spent_nusd) != 0 || elem_i64(e, 6, &out->reserved_nusd) != 0 ||
	    elem_i64(e, 7, &since_ms) != 0 ||
	    ledger_window_start_ms(out->window, since_ms, &out->window_start_ms) != 0)
		return fail(errstr, errstr_size, LEDGER_ERROR, "budget state: bad entry for \"%s\"",
		            out->name);
	return LEDGER_OK;
}

/* ------------------------------------------------------------ attempts */

/* What a reserve or a settle carries to its reply. */
struct reserve_call {
	struct ledger *l;
	redis_reply_cb *cb;
	void *opaque;
};

/* A budget of the config that Redis does not know: Redis lost its data (a
 * restart without persistence, a replica promoted before it had synced).
 * The config's budgets go again before the next step; the caller's retry
 * then finds them. */
static void budget_missing(struct ledger *l, const char *name)
{
	if (config_budget_index(l->cfg, name) >= 0 && l->sync == SYNC_DONE) {
		log_warn("budget missing in redis, writing the config's budgets again", "budget",
		         name, NULL);
		l->sync = SYNC_NONE;
	}
}

static void on_reserved(void *opaque, redisReply *reply)
{
	struct reserve_call *rc = opaque;
	if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
	    elem_is(reply, 0, "unknown") && elem_str(reply, 1))
		budget_missing(rc->l, elem_str(reply, 1));
	rc->cb(rc->opaque, reply);
	free(rc);
}

/* settle.lua refuses a budget it does not know (an attempt whose lease went
 * with Redis' data): the budgets go again, and the settle's retry finds
 * them (ledger_error_transient). */
static void on_settle_reply(void *opaque, redisReply *reply)
{
	struct reserve_call *sc = opaque;
	static const char unknown[] = "unknown budget \"";
	const char *at = reply && reply->type == REDIS_REPLY_ERROR && reply->str
	                         ? strstr(reply->str, unknown)
	                         : NULL;
	if (at) {
		char name[256];
		const char *from = at + sizeof unknown - 1, *end = strchr(from, '"');
		if (end && (size_t)(end - from) < sizeof name) {
			memcpy(name, from, (size_t)(end - from));
			name[end - from] = '\0';
			budget_missing(sc->l, name);
		}
	}
	sc->cb(sc->opaque, reply);
	free(sc);
}

void ledger_reserve(struct ledger *l, const struct ledger_reserve_req *req, redis_reply_cb *cb,
                    void *opaque)
{
	struct cmd c = {0};
	struct reserve_call *rc = xcalloc(1, sizeof *rc);
	int64_t now = time_now_ms();
	rc->l = l;
	rc->cb = cb;
	rc->opaque = opaque;
	ensure_synced(l);
	cmd_key(&c, l, "job:", req->job_id, -1);
	cmd_key(&c, l, "leases", NULL, -1);
	cmd_base_windows(&c, l, now);
	cmd_str(&c, req->budget);
	cmd_str(&c, req->job_id);
	cmd_i64(&c, req->estimate_nusd);
	cmd_i64(&c, now);
	cmd_i64(&c, req->lease_ms);
	cmd_str(&c, req->token ? req->token : "");
	cmd_str(&c, req->model ? req->model : "");
	cmd_str(&c, req->provider ? req->provider : "");
	cmd_str(&c, l->worker);
	cmd_i64(&c, l->cfg->worker.dedupe_ttl_s);
	cmd_str(&c, req->lookup ? "1" : "0");
	cmd_str(&c, req->classifier ? "1" : "0");
	cmd_send(l, l->reserve, &c, on_reserved, rc);
}

int ledger_reserve_result(const redisReply *reply, struct ledger_reservation *out, char *errstr,
                          size_t errstr_size)
{
	int rc = check_array(reply, 2, "reserve", errstr, errstr_size);
	int64_t attempt = 0;
	if (rc != LEDGER_OK)
		return rc;
	*out = (struct ledger_reservation){0};
	const redisReply *last = reply->element[reply->elements - 1];
	if (last->type == REDIS_REPLY_ARRAY)
		out->costs = last;
	if (elem_is(reply, 0, "reserved")) {
		out->status = LEDGER_RESERVED;
		if (reply->elements < 3 || elem_i64(reply, 1, &attempt) != 0 || attempt < 0 ||
		    attempt > INT32_MAX || elem_i64(reply, 2, &out->expires_ms) != 0)
			return fail(errstr, errstr_size, LEDGER_ERROR, "reserve: bad reply");
		out->attempt = (int)attempt;
		return LEDGER_OK;
	}
	if (elem_is(reply, 0, "done")) {
		out->status = LEDGER_JOB_DONE;
		return LEDGER_OK;
	}
	if (elem_is(reply, 0, "batched") || elem_is(reply, 0, "submitting")) {
		out->status =
		        elem_is(reply, 0, "batched") ? LEDGER_JOB_BATCHED : LEDGER_JOB_SUBMITTING;
		return LEDGER_OK;
	}
	if (elem_is(reply, 0, "pending")) {
		out->status = LEDGER_JOB_PENDING;
		out->outputs = elem_str(reply, 1);
		if (!out->outputs)
			return fail(errstr, errstr_size, LEDGER_ERROR, "reserve: bad reply");
		out->outputs_len = reply->element[1]->len;
		return LEDGER_OK;
	}
	out->budget = elem_str(reply, 1);
	if (!out->budget)
		return fail(errstr, errstr_size, LEDGER_ERROR, "reserve: bad reply");
	if (elem_is(reply, 0, "unknown")) {
		out->status = LEDGER_UNKNOWN_BUDGET;
		return LEDGER_OK;
	}
	if (elem_is(reply, 0, "wait"))
		out->status = LEDGER_WAIT;
	else if (elem_is(reply, 0, "exhausted"))
		out->status = LEDGER_EXHAUSTED;
	else
		return fail(errstr, errstr_size, LEDGER_ERROR, "reserve: bad reply");
	if (reply->elements < 5 || elem_i64(reply, 2, &out->limit_nusd) != 0 ||
	    elem_i64(reply, 3, &out->spent_nusd) != 0 ||
	    elem_i64(reply, 4, &out->reserved_nusd) != 0)
		return fail(errstr, errstr_size, LEDGER_ERROR, "reserve: bad reply");
	return LEDGER_OK;
}

/* settle.lua's stats arguments: the model and provider of an attempt without
 * a lease (attempt 0: the classifier's), then the stats hash's time to live. */
static void cmd_settle_stats(struct cmd *c, const struct ledger *l, int attempt)
{
	const struct config *cfg = l->cfg;
	int m = attempt == 0 && cfg->router.classifier_model
	                ? config_model_index(cfg, cfg->router.classifier_model)
	                : -1;
	cmd_str(c, m >= 0 ? cfg->models[m].name : "");
	cmd_str(c, m >= 0 ? cfg->providers[cfg->models[m].provider].name : "");
	cmd_i64(c, LEDGER_STATS_TTL_S);
}

void ledger_settle_budget(struct ledger *l, const char *budget, const char *job_id, int attempt,
                          int64_t cost_nusd, const struct buf *outputs,
                          const struct buf *cost_record, redis_reply_cb *cb, void *opaque)
{
	struct cmd c = {0};
	ensure_synced(l);
	cmd_key(&c, l, "settled:", job_id, attempt);
	cmd_key(&c, l, "job:", job_id, -1);
	cmd_key(&c, l, "leases", NULL, -1);
	cmd_key(&c, l, "lease:", job_id, attempt);
	cmd_base_windows(&c, l, time_now_ms());
	cmd_str(&c, budget);
	cmd_i64(&c, cost_nusd);
	cmd_str(&c, SETTLE_MARKER_TTL_S);
	cmd_i64(&c, attempt);
	cmd_i64(&c, l->cfg->worker.dedupe_ttl_s);
	if (outputs && outputs->data)
		cmd_mem(&c, outputs->data, outputs->len);
	else
		cmd_str(&c, "");
	cmd_settle_stats(&c, l, attempt);
	if (cost_record && cost_record->data)
		cmd_mem(&c, cost_record->data, cost_record->len);
	else
		cmd_str(&c, "");
	struct reserve_call *sc = xcalloc(1, sizeof *sc);
	*sc = (struct reserve_call){l, cb, opaque};
	cmd_send(l, l->settle, &c, on_settle_reply, sc);
}

void ledger_settle(struct ledger *l, int budget, const char *job_id, int attempt, int64_t cost_nusd,
                   const struct buf *outputs, redis_reply_cb *cb, void *opaque)
{
	const char *name = budget >= 0 && (size_t)budget < l->cfg->n_budgets
	                           ? l->cfg->budgets[budget].name
	                           : "";
	ledger_settle_budget(l, name, job_id, attempt, cost_nusd, outputs, NULL, cb, opaque);
}

bool ledger_error_transient(const char *errstr)
{
	static const char *const codes[] = {"LOADING",  "BUSY",       "TRYAGAIN",    "MASTERDOWN",
	                                    "READONLY", "NOREPLICAS", "CLUSTERDOWN", "NOSCRIPT"};
	const char *colon = strstr(errstr, ": ");
	const char *code = colon ? colon + 2 : errstr;
	if (strstr(errstr, "unknown budget \"")) /* Redis lost it: it goes again */
		return true;
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		size_t n = strlen(codes[i]);
		if (strncmp(code, codes[i], n) == 0 && (code[n] == ' ' || code[n] == '\0'))
			return true;
	}
	return false;
}

int ledger_settle_result(const redisReply *reply, struct ledger_settlement *out, char *errstr,
                         size_t errstr_size)
{
	int rc = check_array(reply, 3, "settle", errstr, errstr_size);
	if (rc != LEDGER_OK)
		return rc;
	*out = (struct ledger_settlement){0};
	out->now = elem_is(reply, 0, "charged");
	if (!out->now && !elem_is(reply, 0, "repeat"))
		return fail(errstr, errstr_size, LEDGER_ERROR, "settle: bad reply");
	if (elem_i64(reply, 1, &out->charged_nusd) != 0)
		return fail(errstr, errstr_size, LEDGER_ERROR, "settle: bad amount");
	if (elem_is(reply, 2, "settled"))
		out->how = LEDGER_CHARGED_ACTUAL;
	else if (elem_is(reply, 2, "reaped"))
		out->how = LEDGER_CHARGED_ESTIMATE;
	else if (elem_is(reply, 2, "released"))
		out->how = LEDGER_CHARGED_NOTHING;
	else
		return fail(errstr, errstr_size, LEDGER_ERROR, "settle: bad reply");
	return LEDGER_OK;
}

void ledger_release(struct ledger *l, const char *job_id, int attempt, redis_reply_cb *cb,
                    void *opaque)
{
	struct cmd c = {0};
	cmd_key(&c, l, "settled:", job_id, attempt);
	cmd_key(&c, l, "leases", NULL, -1);
	cmd_key(&c, l, "lease:", job_id, attempt);
	cmd_str(&c, l->base);
	cmd_str(&c, SETTLE_MARKER_TTL_S);
	cmd_send(l, l->release, &c, cb, opaque);
}

/* ------------------------------------------------------------ orphaned leases */

void ledger_reap(struct ledger *l, int max, redis_reply_cb *cb, void *opaque)
{
	struct cmd c = {0};
	char day[LEDGER_WINDOW_SIZE];
	int64_t now = time_now_ms();
	cmd_key(&c, l, "leases", NULL, -1);
	cmd_str(&c, l->base);
	cmd_i64(&c, now);
	cmd_fmt(&c, "%d", max > 0 ? max : 1);
	cmd_str(&c, SETTLE_MARKER_TTL_S);
	cmd_i64(&c, LEDGER_REAP_REPORT_MS);
	ledger_window(PERIOD_DAY, now, day, sizeof day);
	cmd_str(&c, day);
	cmd_i64(&c, LEDGER_STATS_TTL_S);
	cmd_send(l, l->reap, &c, cb, opaque);
}

int ledger_reaped_result(const redisReply *reply, size_t i, struct ledger_reaped *out, char *errstr,
                         size_t errstr_size)
{
	int rc = check_array(reply, i + 1, "reap", errstr, errstr_size);
	int64_t attempt = 0, first = 0;
	if (rc != LEDGER_OK)
		return rc;
	const redisReply *e = reply->element[i];
	*out = (struct ledger_reaped){0};
	if (e->type == REDIS_REPLY_ARRAY && e->elements >= 8) {
		out->job_id = elem_str(e, 0);
		out->budget = elem_str(e, 2);
		out->model = elem_str(e, 4);
		out->provider = elem_str(e, 5);
		out->worker = elem_str(e, 6);
	}
	if (!out->job_id || !out->budget || !out->model || !out->provider || !out->worker ||
	    elem_i64(e, 1, &attempt) != 0 || attempt < 0 || attempt > INT32_MAX ||
	    elem_i64(e, 3, &out->estimate_nusd) != 0 || elem_i64(e, 7, &first) != 0)
		return fail(errstr, errstr_size, LEDGER_ERROR, "reap: bad entry %zu", i);
	out->attempt = (int)attempt;
	out->first = first != 0;
	return LEDGER_OK;
}

void ledger_reap_ack(struct ledger *l, const char *job_id, int attempt, redis_reply_cb *cb,
                     void *opaque)
{
	struct cmd c = {0};
	cmd_key(&c, l, "leases", NULL, -1);
	cmd_key(&c, l, "lease:", job_id, attempt);
	cmd_fmt(&c, "%s:%d", job_id, attempt);
	cmd_send(l, l->reap_ack, &c, cb, opaque);
}

/* ------------------------------------------------------------ stats */

void ledger_stats_jobs(struct ledger *l, const struct ledger_job_count *counts, size_t n,
                       redis_reply_cb *cb, void *opaque)
{
	struct cmd c = {0};
	char day[LEDGER_WINDOW_SIZE];
	ledger_window(PERIOD_DAY, time_now_ms(), day, sizeof day);
	cmd_key(&c, l, "stats:d:", day, -1);
	cmd_i64(&c, LEDGER_STATS_TTL_S);
	for (size_t i = 0; i < n; i++) {
		if (counts[i].n <= 0)
			continue;
		if (counts[i].code && counts[i].code[0])
			cmd_fmt(&c, "jobs:error:%s", counts[i].code);
		else
			cmd_str(&c, "jobs:ok");
		cmd_i64(&c, counts[i].n);
	}
	cmd_send(l, l->stats_jobs, &c, cb, opaque);
}

/* ------------------------------------------------------------ jobs */

/* One script call over the job hashes of job_ids, with an optional trailing argument. */
static void eval_jobs(struct ledger *l, size_t script, const char *const *job_ids, size_t n,
                      const char *arg, redis_reply_cb *cb, void *opaque)
{
	struct cmd c = {0};
	for (size_t i = 0; i < n; i++)
		cmd_key(&c, l, "job:", job_ids[i], -1);
	if (arg)
		cmd_str(&c, arg);
	cmd_send(l, script, &c, cb, opaque);
}

void ledger_dedupe_check(struct ledger *l, const char *const *job_ids, size_t n, redis_reply_cb *cb,
                         void *opaque)
{
	eval_jobs(l, l->dedupe_check, job_ids, n, NULL, cb, opaque);
}

void ledger_dedupe_done(struct ledger *l, const char *const *job_ids, size_t n, redis_reply_cb *cb,
                        void *opaque)
{
	char ttl[24];
	snprintf(ttl, sizeof ttl, "%lld", (long long)l->cfg->worker.dedupe_ttl_s);
	eval_jobs(l, l->dedupe_done, job_ids, n, ttl, cb, opaque);
}

/* ------------------------------------------------------------ batches */

void ledger_batch_prepare(struct ledger *l, const struct ledger_batch_sub *s,
                          const struct ledger_batch_req *reqs, size_t n, redis_reply_cb *cb,
                          void *opaque)
{
	struct cmd c = {0};
	int64_t now = time_now_ms();
	cmd_key(&c, l, "bsub:", s->token, -1);
	cmd_key(&c, l, "bsubs", NULL, -1);
	cmd_str(&c, l->base);
	cmd_str(&c, s->token);
	cmd_str(&c, s->provider);
	cmd_str(&c, s->model);
	cmd_str(&c, l->worker);
	cmd_i64(&c, now);
	cmd_i64(&c, now + s->lease_ms);
	cmd_i64(&c, s->complete_by_ms);
	cmd_i64(&c, l->cfg->worker.dedupe_ttl_s);
	cmd_i64(&c, (int64_t)n);
	for (size_t i = 0; i < n; i++) {
		const struct ledger_batch_req *r = &reqs[i];
		cmd_str(&c, r->job_id);
		cmd_i64(&c, r->attempt);
		cmd_str(&c, r->value ? "1" : "0");
		cmd_mem(&c, r->value ? r->value : "", r->value ? r->value_len : 0);
		cmd_mem(&c, r->key ? r->key : "", r->key ? r->key_len : 0);
		cmd_str(&c, r->headers ? r->headers : "");
		cmd_str(&c, r->topic ? r->topic : "");
		cmd_i64(&c, r->partition);
		cmd_i64(&c, r->offset);
		cmd_i64(&c, r->complete_by_ms);
		cmd_str(&c, r->history ? r->history : "");
	}
	cmd_send(l, l->batch_prepare, &c, cb, opaque);
}

void ledger_batch_record(struct ledger *l, const char *token, const char *batch_id,
                         int64_t lease_ms, int64_t complete_by_ms, redis_reply_cb *cb, void *opaque)
{
	struct cmd c = {0};
	int64_t now = time_now_ms();
	char when[40];
	time_format_rfc3339(complete_by_ms, when, sizeof when);
	cmd_key(&c, l, "bsub:", token, -1);
	cmd_key(&c, l, "bsubs", NULL, -1);
	cmd_key(&c, l, "batches", NULL, -1);
	cmd_key(&c, l, "batch:", batch_id, -1);
	cmd_key(&c, l, "leases", NULL, -1);
	cmd_str(&c, l->base);
	cmd_str(&c, batch_id);
	cmd_i64(&c, now);
	cmd_i64(&c, now + lease_ms);
	cmd_str(&c, l->worker);
	cmd_i64(&c, LEDGER_BATCH_LEASE_PAST_MS);
	cmd_i64(&c, l->cfg->worker.dedupe_ttl_s);
	cmd_str(&c, when);
	cmd_send(l, l->batch_record, &c, cb, opaque);
}

void ledger_batch_claim(struct ledger *l, int64_t lease_ms, int max, redis_reply_cb *cb,
                        void *opaque)
{
	struct cmd c = {0};
	cmd_key(&c, l, "bsubs", NULL, -1);
	cmd_str(&c, l->base);
	cmd_i64(&c, time_now_ms());
	cmd_i64(&c, lease_ms);
	cmd_str(&c, l->worker);
	cmd_i64(&c, max);
	cmd_send(l, l->batch_claim, &c, cb, opaque);
}

int ledger_batch_claimed_result(const redisReply *reply, size_t i, struct ledger_batch_claimed *out,
                                char *errstr, size_t errstr_size)
{
	int rc = check_array(reply, i + 1, "batch claim", errstr, errstr_size);
	if (rc != LEDGER_OK)
		return rc;
	const redisReply *e = reply->element[i];
	*out = (struct ledger_batch_claimed){0};
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 8)
		return fail(errstr, errstr_size, LEDGER_ERROR, "batch claim: bad entry %zu", i);
	out->token = elem_str(e, 0);
	out->state = elem_str(e, 1);
	out->provider = elem_str(e, 2);
	out->model = elem_str(e, 3);
	out->batch_id = elem_str(e, 4);
	int64_t n = 0;
	if (!out->token || !out->state || !out->provider || !out->model || !out->batch_id ||
	    elem_i64(e, 5, &out->complete_by_ms) != 0 || elem_i64(e, 6, &out->created_ms) != 0 ||
	    elem_i64(e, 7, &n) != 0 || n < 0)
		return fail(errstr, errstr_size, LEDGER_ERROR, "batch claim: bad entry %zu", i);
	out->n = (size_t)n;
	return LEDGER_OK;
}

void ledger_batch_touch(struct ledger *l, const char *token, const char *batch_id, int64_t lease_ms,
                        const char *state, int64_t done, int64_t failed, int64_t spent_nusd,
                        redis_reply_cb *cb, void *opaque)
{
	struct cmd c = {0};
	cmd_key(&c, l, "bsub:", token, -1);
	cmd_key(&c, l, "bsubs", NULL, -1);
	cmd_key(&c, l, "batch:", batch_id ? batch_id : "", -1);
	cmd_str(&c, token);
	cmd_str(&c, l->worker);
	cmd_i64(&c, time_now_ms() + lease_ms);
	cmd_str(&c, state ? state : "");
	cmd_i64(&c, done);
	cmd_i64(&c, failed);
	if (spent_nusd >= 0)
		cmd_i64(&c, spent_nusd);
	else
		cmd_str(&c, "");
	cmd_send(l, l->batch_touch, &c, cb, opaque);
}

void ledger_batch_jobs(struct ledger *l, const char *token, const size_t *idx, size_t n,
                       redis_reply_cb *cb, void *opaque)
{
	struct cmd c = {0};
	cmd_key(&c, l, "bsub:", token, -1);
	cmd_str(&c, l->base);
	for (size_t k = 0; k < n; k++)
		cmd_i64(&c, (int64_t)idx[k]);
	cmd_send(l, l->batch_jobs, &c, cb, opaque);
}

void ledger_batch_finish(struct ledger *l, const char *token, const char *state, int64_t spent_nusd,
                         redis_reply_cb *cb, void *opaque)
{
	struct cmd c = {0};
	cmd_key(&c, l, "bsub:", token, -1);
	cmd_key(&c, l, "bsubs", NULL, -1);
	cmd_key(&c, l, "batches", NULL, -1);
	cmd_str(&c, l->base);
	cmd_str(&c, l->worker);
	cmd_str(&c, state);
	cmd_i64(&c, time_now_ms());
	if (spent_nusd >= 0)
		cmd_i64(&c, spent_nusd);
	else
		cmd_str(&c, "");
	cmd_send(l, l->batch_finish, &c, cb, opaque);
}

void ledger_batch_abandon(struct ledger *l, const char *token, redis_reply_cb *cb, void *opaque)
{
	struct cmd c = {0};
	cmd_key(&c, l, "bsub:", token, -1);
	cmd_key(&c, l, "leases", NULL, -1);
	cmd_str(&c, l->base);
	cmd_str(&c, SETTLE_MARKER_TTL_S);
	cmd_send(l, l->batch_abandon, &c, cb, opaque);
}
