/* cli_spend: budgets as Redis holds them now, read-only, for status and
 * estimate.
 *
 * Keys read (layout of worker/ledger.h and the budget scripts):
 *   <prefix>{ledger}:budgets              set of budget names
 *   <prefix>{ledger}:meta:<name>          hash limit_nusd, period, parent
 *   <prefix>{ledger}:b:<name>:<window>    hash spent, reserved (nano-USD)
 * A budget of the config that Redis has no meta hash for (no worker started
 * yet) is shown with the config's limit, period and parent. The reads are
 * not one atomic step: this is a view for people, not an input to a charge. */
#include "cli.h"

#include "buf.h"
#include "ledger.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t reply_int(const redisReply *r)
{
	if (!r)
		return 0;
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer;
	if (r->type == REDIS_REPLY_STRING)
		return strtoll(r->str, NULL, 10);
	return 0;
}

static const char *reply_str(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_STRING ? r->str : NULL;
}

static struct cli_budget_view *add_row(struct cli_budget_view **rows, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*rows)[i].name, name) == 0)
			return NULL;
	*rows = xrealloc(*rows, (*n + 1) * sizeof **rows);
	struct cli_budget_view *v = &(*rows)[(*n)++];
	memset(v, 0, sizeof *v);
	v->name = xstrdup(name);
	return v;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cli_budgets_view(redisContext *c, const struct config *cfg, struct cli_budget_view **out,
                     size_t *n_out, char *errstr, size_t errstr_size)
{
	struct cli_budget_view *rows = NULL;
	size_t n = 0;
	struct buf key = {0};
	redisReply *r = NULL;
	char **extra = NULL;
	size_t n_extra = 0;
	int64_t now = time_now_ms();

	/* The config's budgets first, in its order; then those only Redis knows. */
	for (size_t i = 0; i < cfg->n_budgets; i++)
		add_row(&rows, &n, cfg->budgets[i].name);
	buf_printf(&key, "%s{ledger}:budgets", cfg->redis.key_prefix);
	r = redisCommand(c, "SMEMBERS %s", key.data);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		snprintf(errstr, errstr_size, "redis: SMEMBERS %s: %s", key.data,
		         r ? r->str : c->errstr);
		goto fail;
	}
	if (r->type == REDIS_REPLY_ARRAY) {
		extra = xcalloc(r->elements + 1, sizeof *extra);
		for (size_t i = 0; i < r->elements; i++)
			if (reply_str(r->element[i]) &&
			    config_budget_index(cfg, r->element[i]->str) < 0)
				extra[n_extra++] = xstrdup(r->element[i]->str);
		qsort(extra, n_extra, sizeof *extra, cmp_names);
		for (size_t i = 0; i < n_extra; i++)
			add_row(&rows, &n, extra[i]);
	}
	freeReplyObject(r);
	r = NULL;

	for (size_t i = 0; i < n; i++) {
		struct cli_budget_view *v = &rows[i];
		buf_reset(&key);
		buf_printf(&key, "%s{ledger}:meta:%s", cfg->redis.key_prefix, v->name);
		r = redisCommand(c, "HMGET %s limit_nusd period parent", key.data);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
			snprintf(errstr, errstr_size, "redis: HMGET %s: %s", key.data,
			         r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
			goto fail;
		}
		int ci = config_budget_index(cfg, v->name);
		enum period p = PERIOD_NONE;
		if (reply_str(r->element[0])) {
			v->in_redis = true;
			v->limit_nusd = reply_int(r->element[0]);
			if (!reply_str(r->element[1]) || period_parse(r->element[1]->str, &p) != 0)
				p = PERIOD_NONE;
			v->parent = xstrdup(reply_str(r->element[2]) ? r->element[2]->str : "");
		} else if (ci >= 0) {
			const struct budget_conf *b = &cfg->budgets[ci];
			v->limit_nusd = b->limit_nusd;
			p = b->period;
			v->parent = xstrdup(b->parent >= 0 ? cfg->budgets[b->parent].name : "");
		} else {
			v->parent = xstrdup("");
		}
		freeReplyObject(r);
		r = NULL;
		v->period = xstrdup(period_name(p));
		ledger_window(p, now, v->window, sizeof v->window);

		buf_reset(&key);
		buf_printf(&key, "%s{ledger}:b:%s:%s", cfg->redis.key_prefix, v->name, v->window);
		r = redisCommand(c, "HMGET %s spent reserved", key.data);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			snprintf(errstr, errstr_size, "redis: HMGET %s: %s", key.data,
			         r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
			goto fail;
		}
		v->spent_nusd = reply_int(r->element[0]);
		v->reserved_nusd = reply_int(r->element[1]);
		freeReplyObject(r);
		r = NULL;
	}
	for (size_t i = 0; i < n_extra; i++)
		free(extra[i]);
	free(extra);
	buf_free(&key);
	*out = rows;
	*n_out = n;
	return 0;
fail:
	if (r)
		freeReplyObject(r);
	for (size_t i = 0; i < n_extra; i++)
		free(extra[i]);
	free(extra);
	buf_free(&key);
	cli_budgets_view_free(rows, n);
	*out = NULL;
	*n_out = 0;
	return -1;
}

void cli_budgets_view_config(const struct config *cfg, struct cli_budget_view **out, size_t *n_out)
{
	struct cli_budget_view *rows = NULL;
	size_t n = 0;
	int64_t now = time_now_ms();
	for (size_t i = 0; i < cfg->n_budgets; i++) {
		const struct budget_conf *b = &cfg->budgets[i];
		struct cli_budget_view *v = add_row(&rows, &n, b->name);
		v->limit_nusd = b->limit_nusd;
		v->period = xstrdup(period_name(b->period));
		v->parent = xstrdup(b->parent >= 0 ? cfg->budgets[b->parent].name : "");
		ledger_window(b->period, now, v->window, sizeof v->window);
	}
	*out = rows;
	*n_out = n;
}

void cli_budgets_view_free(struct cli_budget_view *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].period);
		free(v[i].parent);
	}
	free(v);
}

const struct cli_budget_view *cli_budgets_find(const struct cli_budget_view *v, size_t n,
                                               const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

void cli_usd(int64_t nusd, char *out, size_t out_size)
{
	char s[32];
	money_format_usd(nusd < 0 ? -nusd : nusd, s, sizeof s);
	snprintf(out, out_size, "%s$%s", nusd < 0 ? "-" : "", s);
}

json_t *cli_json_usd(int64_t nusd)
{
	return json_real(money_nusd_to_usd(nusd));
}
