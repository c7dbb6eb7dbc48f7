/* ledger: budget keys and the scripts that change them. */
#include "ledger.h"

#include "timeutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

extern const char lua_settle[];

struct redis_script ledger_scripts[LEDGER_N_SCRIPTS] = {
	[LEDGER_SETTLE] = {.name = "settle", .source = lua_settle},
};

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

void ledger_settle(struct redis *r, const struct config *cfg, int budget, const char *job_id,
		   int attempt, int64_t cost_nusd, redis_reply_cb *cb, void *opaque)
{
	struct buf keys[1 + 8] = {{0}};
	const char *argv[1 + 8 + 2];
	size_t lens[1 + 8 + 2];
	char cost[24];
	int n = 0;
	int64_t now = time_now_ms();

	buf_printf(&keys[n], "%s{ledger}:settled:%s:%d", cfg->redis.key_prefix, job_id, attempt);
	n++;
	for (int b = budget, depth = 0; b >= 0 && depth < 8; b = cfg->budgets[b].parent, depth++)
		ledger_budget_key(&keys[n++], cfg, b, now);
	for (int i = 0; i < n; i++) {
		argv[i] = keys[i].data;
		lens[i] = keys[i].len;
	}
	snprintf(cost, sizeof cost, "%lld", (long long)cost_nusd);
	argv[n] = cost;
	lens[n] = strlen(cost);
	argv[n + 1] = SETTLE_MARKER_TTL_S;
	lens[n + 1] = strlen(SETTLE_MARKER_TTL_S);
	redis_eval(r, LEDGER_SETTLE, cb, opaque, n, n + 2, argv, lens);
	for (int i = 0; i < n; i++)
		buf_free(&keys[i]);
}
