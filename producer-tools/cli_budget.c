/* promptyard budget: set, show and reset budgets in Redis (SPEC §7, §10).
 *
 *   promptyard budget set NAME --limit-usd X [--period P] [--parent B] -c CFG [--redis HOST:PORT]
 *   promptyard budget show [NAME] [--json] -c CFG [--redis HOST:PORT]
 *   promptyard budget reset NAME -c CFG [--redis HOST:PORT]
 *
 * Each step is the worker's own Lua script (worker/budget_sync.lua,
 * budget_state.lua, budget_reset.lua) sent with EVAL over a blocking
 * connection, so there is one implementation of each. Exit status: 0 done, 1
 * Redis unreachable or failing, 2 bad usage, an unknown budget or a budget
 * definition Redis refuses (a parent that does not exist, a chain longer than
 * 4 or a cycle). */
#include "cli.h"

#include "buf.h"
#include "ledger.h"
#include "timeutil.h"

#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fputs("usage: promptyard budget set NAME --limit-usd X [--period none|day|month]\n"
	      "                         [--parent B] -c CFG [--redis HOST:PORT]\n"
	      "       promptyard budget show [NAME] [--json] -c CFG [--redis HOST:PORT]\n"
	      "       promptyard budget reset NAME -c CFG [--redis HOST:PORT]\n"
	      "\n"
	      "set    creates NAME or changes it: --limit-usd (up to 9 decimals, at most\n"
	      "       2^53 - 1 nano-USD, about 9.007 million) is required;\n"
	      "       --period (default none for a new budget) and --parent (\"\" for none)\n"
	      "       keep their values in Redis when left out. Spend is never touched.\n"
	      "       A worker that starts writes its config's budgets over these.\n"
	      "show   every budget (or NAME) in its current UTC window: limit, spent,\n"
	      "       reserved (held by attempts in flight) and what is left; --json for\n"
	      "       {\"budgets\":[{name, period, window_start, parent, limit_nusd, spent_nusd,\n"
	      "       reserved_nusd, limit_usd, spent_usd, reserved_usd}]}.\n"
	      "reset  sets the spent of NAME's current window to zero (its parents are not\n"
	      "       touched). Reservations outstanding are kept: their attempts settle\n"
	      "       or expire later and take their own amounts back. The amount\n"
	      "       zeroed is added to the window's reset_nusd, for audits.\n"
	      "\n"
	      "Budgets of the config that Redis does not have yet are written to it first\n"
	      "(as a worker does when it starts, but never over what Redis has).\n",
	      out);
}

/* ------------------------------------------------------------ helpers */

/* The arguments of one EVAL: "EVAL", the script, the key count, then keys
 * and arguments (copied). */
struct eval {
	int argc, cap;
	char **argv;
};

static void eval_add(struct eval *e, const char *s)
{
	if (e->argc == e->cap) {
		e->cap = e->cap ? 2 * e->cap : 16;
		e->argv = xrealloc(e->argv, (size_t)e->cap * sizeof *e->argv);
	}
	e->argv[e->argc++] = xstrdup(s);
}

static void eval_addf(struct eval *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void eval_addf(struct eval *e, const char *fmt, ...)
{
	struct buf b = {0};
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	eval_add(e, b.data ? b.data : "");
	buf_free(&b);
}

static void eval_start(struct eval *e, const char *script, int nkeys)
{
	e->argc = 0;
	eval_add(e, "EVAL");
	eval_add(e, script);
	eval_addf(e, "%d", nkeys);
}

static void eval_free(struct eval *e)
{
	for (int i = 0; i < e->argc; i++)
		free(e->argv[i]);
	free(e->argv);
	*e = (struct eval){0};
}

/* Runs e and frees it. Returns the reply, or NULL with errstr set. */
static redisReply *eval_try(redisContext *c, const struct config *cfg, struct eval *e, char *errstr,
                            size_t errstr_size)
{
	redisReply *r = redisCommandArgv(c, e->argc, (const char **)e->argv, NULL);
	eval_free(e);
	if (!r) {
		snprintf(errstr, errstr_size, "redis %s:%d: %s", cfg->redis.host, cfg->redis.port,
		         c->errstr[0] ? c->errstr : "no reply");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(errstr, errstr_size, "redis %s:%d: %s", cfg->redis.host, cfg->redis.port,
		         r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* As eval_try, printing why on failure (the caller exits 1). */
static redisReply *eval_run(redisContext *c, const struct config *cfg, struct eval *e)
{
	char err[512];
	redisReply *r = eval_try(c, cfg, e, err, sizeof err);
	if (!r)
		fprintf(stderr, "promptyard budget: %s\n", err);
	return r;
}

/* KEYS[1] <base>budgets and ARGV[1] <base>, which every budget script takes. */
static void eval_base(struct eval *e, const struct config *cfg)
{
	struct buf base = {0};
	ledger_key_base(&base, cfg);
	eval_addf(e, "%sbudgets", base.data);
	eval_add(e, base.data);
	buf_free(&base);
}

static void eval_windows(struct eval *e, int64_t now_ms)
{
	char day[LEDGER_WINDOW_SIZE], month[LEDGER_WINDOW_SIZE];
	ledger_windows(now_ms, day, month);
	eval_add(e, day);
	eval_add(e, month);
}

/* Writes the config's budgets that Redis lacks. Returns 0, 1 (Redis failed,
 * message printed). A refusal (the config conflicts with Redis) is a warning:
 * the command may be what fixes it. */
static int sync_config(redisContext *c, const struct config *cfg, int64_t now_ms)
{
	struct eval e = {0};
	char err[512];
	if (cfg->n_budgets == 0)
		return 0;
	eval_start(&e, lua_budget_sync, 1);
	eval_base(&e, cfg);
	eval_addf(&e, "%lld", (long long)now_ms);
	for (size_t i = 0; i < cfg->n_budgets; i++) {
		const struct budget_conf *b = &cfg->budgets[i];
		eval_add(&e, b->name);
		eval_add(&e, "clpa");
		eval_addf(&e, "%lld", (long long)b->limit_nusd);
		eval_add(&e, period_name(b->period));
		eval_add(&e, b->parent >= 0 ? cfg->budgets[b->parent].name : "");
	}
	redisReply *r = eval_run(c, cfg, &e);
	if (!r)
		return 1;
	if (ledger_sync_result(r, err, sizeof err) != LEDGER_OK)
		fprintf(stderr, "promptyard budget: warning: the config's budgets: %s\n", err);
	freeReplyObject(r);
	return 0;
}

/* ------------------------------------------------------------ set */

static int do_set(redisContext *c, const struct config *cfg, const char *name, int64_t limit,
                  const char *period, const char *parent, int64_t now_ms)
{
	struct eval e = {0};
	char err[512], usd[40];
	eval_start(&e, lua_budget_sync, 1);
	eval_base(&e, cfg);
	eval_addf(&e, "%lld", (long long)now_ms);
	eval_add(&e, name);
	eval_addf(&e, "l%s%s", period ? "p" : "", parent ? "a" : "");
	eval_addf(&e, "%lld", (long long)limit);
	eval_add(&e, period ? period : "");
	eval_add(&e, parent ? parent : "");
	redisReply *r = eval_run(c, cfg, &e);
	if (!r)
		return 1;
	int sync = ledger_sync_result(r, err, sizeof err);
	freeReplyObject(r);
	if (sync == LEDGER_REFUSED) {
		fprintf(stderr, "promptyard budget set: %s\n", err);
		return 2;
	}
	if (sync != LEDGER_OK) {
		fprintf(stderr, "promptyard budget set: %s\n", err);
		return 1;
	}
	cli_usd(limit, usd, sizeof usd);
	printf("budget %s set: limit %s%s%s%s%s\n", name, usd, period ? ", period " : "",
	       period ? period : "", parent ? ", parent " : "",
	       parent ? (parent[0] ? parent : "none") : "");
	return 0;
}

/* ------------------------------------------------------------ show */

static void show_table(const struct ledger_budget *b, size_t n)
{
	const char *head[] = {"NAME",  "PERIOD", "WINDOW",   "PARENT",
	                      "LIMIT", "SPENT",  "RESERVED", "LEFT"};
	enum { COLS = 8 };
	int width[COLS];
	char(*cell)[COLS][48] = xcalloc(n ? n : 1, sizeof *cell);
	for (int k = 0; k < COLS; k++)
		width[k] = (int)strlen(head[k]);
	for (size_t i = 0; i < n; i++) {
		int64_t left = b[i].limit_nusd - b[i].spent_nusd - b[i].reserved_nusd;
		snprintf(cell[i][0], sizeof cell[i][0], "%s", b[i].name);
		snprintf(cell[i][1], sizeof cell[i][1], "%s", period_name(b[i].period));
		snprintf(cell[i][2], sizeof cell[i][2], "%s", b[i].window);
		snprintf(cell[i][3], sizeof cell[i][3], "%s", b[i].parent[0] ? b[i].parent : "-");
		cli_usd(b[i].limit_nusd, cell[i][4], sizeof cell[i][4]);
		cli_usd(b[i].spent_nusd, cell[i][5], sizeof cell[i][5]);
		cli_usd(b[i].reserved_nusd, cell[i][6], sizeof cell[i][6]);
		cli_usd(left > 0 ? left : 0, cell[i][7], sizeof cell[i][7]);
		for (int k = 0; k < COLS; k++)
			if ((int)strlen(cell[i][k]) > width[k])
				width[k] = (int)strlen(cell[i][k]);
	}
	/* Names and words left-aligned, amounts right-aligned. */
	for (int k = 0; k < COLS; k++)
		printf(k < 4 ? "%-*s%s" : "%*s%s", width[k], head[k], k + 1 < COLS ? "  " : "\n");
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < COLS; k++)
			printf(k < 4 ? "%-*s%s" : "%*s%s", width[k], cell[i][k],
			       k + 1 < COLS ? "  " : "\n");
	if (n == 0)
		printf("(no budgets)\n");
	free(cell);
}

/* The budgets as `budget show --json` lists them (new). */
static json_t *budgets_json(const struct ledger_budget *b, size_t n)
{
	json_t *list = json_array();
	char start[32];
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();
		time_format_rfc3339(b[i].window_start_ms, start, sizeof start);
		json_object_set_new(o, "name", json_string(b[i].name));
		json_object_set_new(o, "period", json_string(period_name(b[i].period)));
		json_object_set_new(o, "window_start", json_string(start));
		json_object_set_new(o, "parent", json_string(b[i].parent));
		json_object_set_new(o, "limit_nusd", json_integer(b[i].limit_nusd));
		json_object_set_new(o, "spent_nusd", json_integer(b[i].spent_nusd));
		json_object_set_new(o, "reserved_nusd", json_integer(b[i].reserved_nusd));
		json_object_set_new(o, "limit_usd", cli_json_usd(b[i].limit_nusd));
		json_object_set_new(o, "spent_usd", cli_json_usd(b[i].spent_nusd));
		json_object_set_new(o, "reserved_usd", cli_json_usd(b[i].reserved_nusd));
		json_array_append_new(list, o);
	}
	return list;
}

/* Reads every budget (or name) in its current window with budget_state.lua:
 * *reply (new) holds the strings of the n entries of *out (new). Returns 0;
 * 1 with errstr when Redis fails; 2 with errstr when name is not a budget. */
static int read_budgets(redisContext *c, const struct config *cfg, const char *name, int64_t now_ms,
                        redisReply **reply, struct ledger_budget **out, size_t *n_out, char *errstr,
                        size_t errstr_size)
{
	struct eval e = {0};
	eval_start(&e, lua_budget_state, 1);
	eval_base(&e, cfg);
	eval_windows(&e, now_ms);
	if (name)
		eval_add(&e, name);
	redisReply *r = eval_try(c, cfg, &e, errstr, errstr_size);
	if (!r)
		return 1;
	size_t n = ledger_reply_entries(r);
	struct ledger_budget *b = xcalloc(n ? n : 1, sizeof *b);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (ledger_budget_result(r, i, &b[i], errstr, errstr_size) != LEDGER_OK) {
			rc = 1;
		} else if (!b[i].known) {
			snprintf(errstr, errstr_size, "unknown budget \"%s\"", b[i].name);
			rc = 2;
		}
	}
	if (rc != 0) {
		free(b);
		freeReplyObject(r);
		return rc;
	}
	*reply = r;
	*out = b;
	*n_out = n;
	return 0;
}

int cli_budgets_show(redisContext *c, const struct config *cfg, const char *name, int64_t now_ms,
                     json_t **out, char *errstr, size_t errstr_size)
{
	redisReply *r = NULL;
	struct ledger_budget *b = NULL;
	size_t n = 0;
	int rc = read_budgets(c, cfg, name, now_ms, &r, &b, &n, errstr, errstr_size);
	if (rc != 0)
		return rc;
	*out = budgets_json(b, n);
	free(b);
	freeReplyObject(r);
	return 0;
}

static int do_show(redisContext *c, const struct config *cfg, const char *name, bool json,
                   int64_t now_ms)
{
	redisReply *r = NULL;
	struct ledger_budget *b = NULL;
	size_t n = 0;
	char err[512];
	int rc = read_budgets(c, cfg, name, now_ms, &r, &b, &n, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "promptyard budget show: %s\n", err);
		return rc;
	}
	if (json) {
		json_t *root = json_pack("{s:o}", "budgets", budgets_json(b, n));
		char *text = json_dumps(root, CLI_JSON_FLAGS);
		json_decref(root);
		if (text)
			printf("%s\n", text);
		else
			rc = 1;
		free(text);
	} else {
		show_table(b, n);
	}
	free(b);
	freeReplyObject(r);
	return rc;
}

/* ------------------------------------------------------------ reset */

static int do_reset(redisContext *c, const struct config *cfg, const char *name, int64_t now_ms)
{
	struct eval e = {0};
	char usd[40];
	int64_t old = 0;
	eval_start(&e, lua_budget_reset, 1);
	eval_base(&e, cfg);
	eval_windows(&e, now_ms);
	eval_addf(&e, "%lld", (long long)now_ms);
	eval_add(&e, name);
	redisReply *r = eval_run(c, cfg, &e);
	if (!r)
		return 1;
	int rc = 1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		fprintf(stderr, "promptyard budget reset: unexpected reply from redis\n");
	} else if (strcmp(r->element[0]->str, "unknown") == 0) {
		fprintf(stderr, "promptyard budget reset: unknown budget \"%s\"\n", name);
		rc = 2;
	} else if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_STRING) {
		old = strtoll(r->element[2]->str, NULL, 10);
		cli_usd(old, usd, sizeof usd);
		printf("budget %s: window %s reset (spent was %s; reservations kept)\n", name,
		       r->element[1]->str, usd);
		rc = 0;
	}
	freeReplyObject(r);
	return rc;
}

/* ------------------------------------------------------------ main */

int cli_budget(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"redis", required_argument, NULL, 'r'},
	        {"limit-usd", required_argument, NULL, 'l'},
	        {"period", required_argument, NULL, 'p'},
	        {"parent", required_argument, NULL, 'a'},
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *redis = NULL, *limit_s = NULL, *period = NULL, *parent = NULL;
	const char *action = NULL, *name = NULL;
	struct config *cfg = NULL;
	redisContext *c = NULL;
	bool json = false;
	int64_t limit = 0;
	enum period p;
	int ch, rc = 2;

	if (argc >= 2 && argv[1][0] != '-') {
		action = argv[1];
		argc--;
		argv++;
	}
	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'r': redis = optarg; break;
		case 'l': limit_s = optarg; break;
		case 'p': period = optarg; break;
		case 'a': parent = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!action) {
		fputs("promptyard budget: expected set, show or reset\n", stderr);
		usage(stderr);
		return 2;
	}
	bool is_set = strcmp(action, "set") == 0, is_show = strcmp(action, "show") == 0,
	     is_reset = strcmp(action, "reset") == 0;
	if (!is_set && !is_show && !is_reset) {
		fprintf(stderr, "promptyard budget: unknown action \"%s\" (set, show or reset)\n",
		        action);
		return 2;
	}
	if (optind < argc)
		name = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "promptyard budget %s: unexpected argument \"%s\"\n", action,
		        argv[optind]);
		return 2;
	}
	if (!name && !is_show) {
		fprintf(stderr, "promptyard budget %s: NAME is required\n", action);
		return 2;
	}
	if (name && (!name[0] || strlen(name) > 200)) {
		fprintf(stderr, "promptyard budget %s: NAME must be 1-200 bytes\n", action);
		return 2;
	}
	if (!is_set && (limit_s || period || parent)) {
		fprintf(stderr,
		        "promptyard budget %s: --limit-usd, --period and --parent go with set\n",
		        action);
		return 2;
	}
	if (json && !is_show) {
		fprintf(stderr, "promptyard budget %s: --json goes with show\n", action);
		return 2;
	}
	if (is_set) {
		if (!limit_s) {
			fputs("promptyard budget set: --limit-usd X is required\n", stderr);
			return 2;
		}
		if (money_parse_usd(limit_s, &limit) != 0) {
			char max[32];
			money_format_usd(MONEY_MAX_NUSD, max, sizeof max);
			fprintf(stderr,
			        "promptyard budget set: --limit-usd: expected USD from 0 to %s "
			        "with at most 9 decimals, got \"%s\"\n",
			        max, limit_s);
			return 2;
		}
		if (period && period_parse(period, &p) != 0) {
			fprintf(stderr,
			        "promptyard budget set: --period: none, day or month, not \"%s\"\n",
			        period);
			return 2;
		}
		if (parent && strcmp(parent, name) == 0) {
			fprintf(stderr,
			        "promptyard budget set: budget \"%s\" cannot be its own parent\n",
			        name);
			return 2;
		}
	}

	cfg = cli_config("budget", path, NULL, redis);
	if (!cfg)
		return 2;
	c = cli_redis("budget", cfg);
	if (!c) {
		rc = 1;
		goto out;
	}
	int64_t now = time_now_ms();
	rc = sync_config(c, cfg, now);
	if (rc != 0)
		goto out;
	if (is_set)
		rc = do_set(c, cfg, name, limit, period, parent, now);
	else if (is_show)
		rc = do_show(c, cfg, name, json, now);
	else
		rc = do_reset(c, cfg, name, now);
out:
	if (c)
		redisFree(c);
	config_free(cfg);
	return rc;
}
