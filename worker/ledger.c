/* ledger: budget keys and the scripts that change them. */
#include "ledger.h"

#include "timeutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <stdlib.h>

extern const char lua_settle[], lua_dedupe_check[], lua_dedupe_done[];

struct ledger {
	struct redis *r;
	const struct config *cfg;
	size_t settle, dedupe_check, dedupe_done; /* script ids */
};

struct ledger *ledger_new(struct redis *r, const struct config *cfg)
{
	struct ledger *l = xcalloc(1, sizeof *l);
	l->r = r;
	l->cfg = cfg;
	l->settle = redis_add_script(r, "settle", lua_settle);
	l->dedupe_check = redis_add_script(r, "dedupe_check", lua_dedupe_check);
	l->dedupe_done = redis_add_script(r, "dedupe_done", lua_dedupe_done);
	return l;
}

void ledger_free(struct ledger *l)
{
	free(l);
}

static void job_key(struct buf *key, const struct config *cfg, const char *job_id)
{
	buf_printf(key, "%s{ledger}:job:%s", cfg->redis.key_prefix, job_id);
}

void ledger_window(enum period p, int64_t unix_ms, char *out, size_t out_size)
{
	time_t secs = (time_t)(unix_ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	switch (p) {
	case PERIOD_DAY:
		snprintf(out, out_size, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
		break;
	case PERIOD_MONTH:
		snprintf(out, out_size, "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
		break;
	case PERIOD_NONE:
		snprintf(out, out_size, "all");
		break;
	}
}

void ledger_budget_key(struct buf *key, const struct config *cfg, int budget, int64_t unix_ms)
{
	char window[16];
	const struct budget_conf *b = &cfg->budgets[budget];
	ledger_window(b->period, unix_ms, window, sizeof window);
	buf_printf(key, "%s{ledger}:b:%s:%s", cfg->redis.key_prefix, b->name, window);
}

/* Settle markers outlive any redelivery of the job: a week. */
#define SETTLE_MARKER_TTL_S "604800"

void ledger_settle(struct ledger *l, int budget, const char *job_id,
		   int attempt, int64_t cost_nusd, const struct buf *outputs, redis_reply_cb *cb,
		   void *opaque)
{
	enum { MAX_KEYS = 2 + 8 };
	struct buf keys[MAX_KEYS] = {{0}};
	const char *argv[MAX_KEYS + 5];
	size_t lens[MAX_KEYS + 5];
	char cost[24], attempt_s[16], ttl[24];
	int n = 0;
	int64_t now = time_now_ms();
	const struct config *cfg = l->cfg;

	buf_printf(&keys[n++], "%s{ledger}:settled:%s:%d", cfg->redis.key_prefix, job_id, attempt);
	job_key(&keys[n++], cfg, job_id);
	for (int b = budget, depth = 0; b >= 0 && depth < 8; b = cfg->budgets[b].parent, depth++)
		ledger_budget_key(&keys[n++], cfg, b, now);
	for (int i = 0; i < n; i++) {
		argv[i] = keys[i].data;
		lens[i] = keys[i].len;
	}
	snprintf(cost, sizeof cost, "%lld", (long long)cost_nusd);
	snprintf(attempt_s, sizeof attempt_s, "%d", attempt);
	snprintf(ttl, sizeof ttl, "%lld", (long long)cfg->worker.dedupe_ttl_s);
	const char *args[5] = {cost, SETTLE_MARKER_TTL_S, attempt_s, ttl,
			       outputs && outputs->data ? outputs->data : ""};
	for (int i = 0; i < 5; i++) {
		argv[n + i] = args[i];
		lens[n + i] = i == 4 && outputs ? outputs->len : strlen(args[i]);
	}
	redis_eval(l->r, l->settle, cb, opaque, n, n + 5, argv, lens);
	for (int i = 0; i < n; i++)
		buf_free(&keys[i]);
}

/* One script call over the job hashes of job_ids, with extra trailing args. */
static void eval_jobs(struct ledger *l, size_t script,
		      const char *const *job_ids, size_t n, const char *arg, redis_reply_cb *cb,
		      void *opaque)
{
	const struct config *cfg = l->cfg;
	struct buf *keys = xcalloc(n, sizeof *keys);
	const char **argv = xcalloc(n + 1, sizeof *argv);
	size_t *lens = xcalloc(n + 1, sizeof *lens);
	for (size_t i = 0; i < n; i++) {
		job_key(&keys[i], cfg, job_ids[i]);
		argv[i] = keys[i].data;
		lens[i] = keys[i].len;
	}
	if (arg) {
		argv[n] = arg;
		lens[n] = strlen(arg);
	}
	redis_eval(l->r, script, cb, opaque, (int)n, (int)n + (arg ? 1 : 0), argv, lens);
	for (size_t i = 0; i < n; i++)
		buf_free(&keys[i]);
	free(keys);
	free(argv);
	free(lens);
}

void ledger_dedupe_check(struct ledger *l, const char *const *job_ids,
			 size_t n, redis_reply_cb *cb, void *opaque)
{
	eval_jobs(l, l->dedupe_check, job_ids, n, NULL, cb, opaque);
}

void ledger_dedupe_done(struct ledger *l, const char *const *job_ids,
			size_t n, redis_reply_cb *cb, void *opaque)
{
	char ttl[24];
	snprintf(ttl, sizeof ttl, "%lld", (long long)l->cfg->worker.dedupe_ttl_s);
	eval_jobs(l, l->dedupe_done, job_ids, n, ttl, cb, opaque);
}
