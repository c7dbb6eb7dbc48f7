/* Unit tests of the budget ledger (SPEC §7) against a real redis-server.
 *
 * A throwaway redis-server runs on a free loopback port in a temp dir (as
 * hiredis' test.sh does); it dies with this process (PR_SET_PDEATHSIG) and is
 * killed and removed at exit. Each test opens its own connections and ledgers
 * on one uv loop, with its own key prefix, and drives the asynchronous API by
 * running the loop until each reply is in. The wall clock is shifted with
 * time_set_offset_ms() to cross midnight and month ends. */
#include "ledger.h"
#include "log.h"
#include "redis.h"
#include "servers.h"
#include "timeutil.h"
#include "unit.h"
#include "uvpool.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* ---------------------------------------------------------------- server */

static pid_t server_pid = -1;
static int server_port;
static char server_dir[64];

static void server_stop(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
	}
	if (server_dir[0]) {
		char path[128];
		snprintf(path, sizeof path, "%s/redis.log", server_dir);
		unlink(path);
		snprintf(path, sizeof path, "%s/dump.rdb", server_dir);
		unlink(path);
		rmdir(server_dir);
		server_dir[0] = '\0';
	}
}

static redisContext *admin_connect(void)
{
	struct timeval tv = {.tv_sec = 2};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", server_port, tv);
	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* Starts redis-server and waits for its PING. Returns 0 or -1. */
static int server_start(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(server_dir, sizeof server_dir, "%s/ledger-redis-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(server_dir)) {
		server_dir[0] = '\0';
		return -1;
	}
	for (int tries = 0; tries < 3; tries++) {
		char port[16], log[128];
		server_port = loopback_free_port();
		snprintf(port, sizeof port, "%d", server_port);
		snprintf(log, sizeof log, "%s/redis.log", server_dir);
		server_pid = fork();
		if (server_pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			execlp("redis-server", "redis-server", "--port", port, "--bind",
			       "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", server_dir,
			       "--logfile", log, (char *)NULL);
			_exit(127);
		}
		if (server_pid < 0)
			return -1;
		for (int i = 0; i < 200; i++) {
			redisContext *c = admin_connect();
			redisReply *r = c ? redisCommand(c, "PING") : NULL;
			bool up = r && r->type == REDIS_REPLY_STATUS;
			if (r)
				freeReplyObject(r);
			if (c)
				redisFree(c);
			if (up)
				return 0;
			if (waitpid(server_pid, NULL, WNOHANG) == server_pid)
				break; /* exited: the port was taken, try another */
			usleep(25000);
		}
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
	}
	return -1;
}

/* Runs a command on a fresh blocking connection; returns the reply (free it). */
static redisReply *admin(const char *fmt, ...)
{
	va_list ap;
	redisContext *c = admin_connect();
	redisReply *r = NULL;
	if (!c)
		return NULL;
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	redisFree(c);
	return r;
}

static long long admin_int(const char *fmt, const char *a, const char *b)
{
	return reply_number(admin(fmt, a, b));
}

/* ---------------------------------------------------------------- fixture */

#define MAX_CONN 2

struct fx {
	uv_loop_t loop;
	struct config cfg;
	struct redis *r[MAX_CONN];
	struct ledger *l[MAX_CONN];
	int n;
	int ready;
};

static void on_state(void *opaque, bool ready)
{
	struct fx *f = opaque;
	f->ready += ready ? 1 : -1;
}

static void on_state_count(void *opaque, bool ready)
{
	*(int *)opaque += ready ? 1 : -1;
}

/* n ledgers (one connection each) with key prefix prefix and the config's
 * budgets (borrowed). port 0: the test server. */
static int fx_open(struct fx *f, const char *prefix, int n, struct budget_conf *budgets,
                   size_t n_budgets, int port)
{
	memset(f, 0, sizeof *f);
	uv_loop_init(&f->loop);
	f->cfg.redis.key_prefix = (char *)prefix;
	f->cfg.worker.dedupe_ttl_s = 3600;
	f->cfg.budgets = budgets;
	f->cfg.n_budgets = n_budgets;
	f->n = n;
	struct redis_options opt = {
	        .host = "127.0.0.1", .port = port ? port : server_port, .timeout_ms = 10000};
	for (int i = 0; i < n; i++) {
		f->r[i] = redis_new(&f->loop, &opt, on_state, f);
		f->l[i] = ledger_new(f->r[i], &f->cfg);
		redis_start(f->r[i]);
	}
	if (port)
		return 0;
	int64_t deadline = time_mono_ms() + 5000;
	while (f->ready < n && time_mono_ms() < deadline)
		uv_run(&f->loop, UV_RUN_ONCE);
	return f->ready == n ? 0 : -1;
}

static void fx_close(struct fx *f)
{
	for (int i = 0; i < f->n; i++)
		redis_free(f->r[i]);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	for (int i = 0; i < f->n; i++)
		ledger_free(f->l[i]);
	uv_loop_close(&f->loop);
}

struct waiter {
	bool done;
	redisReply *reply; /* copy; NULL if Redis was unreachable */
};

static void on_reply(void *opaque, redisReply *reply)
{
	struct waiter *w = opaque;
	w->reply = reply ? redis_reply_copy(reply) : NULL;
	w->done = true;
}

static redisReply *wait_for(struct fx *f, struct waiter *w)
{
	int64_t deadline = time_mono_ms() + 10000;
	while (!w->done && time_mono_ms() < deadline)
		uv_run(&f->loop, UV_RUN_ONCE);
	return w->reply;
}

static void reply_free(redisReply *r)
{
	if (r)
		freeReplyObject(r);
}

/* ---------------------------------------------------------------- steps */

/* The result of a reserve (budget copied out of the reply). */
struct rsv {
	int rc;
	struct ledger_reservation res;
	char budget[64];
	char outputs[64];
	char err[256];
};

/* A reserve; with lookup, the job is looked up first (outputs of a pending
 * one copied to out.outputs). */
static struct rsv reserve_full(struct fx *f, int li, const char *budget, const char *job,
                               int64_t est, int64_t lease_ms, const char *token, bool lookup,
                               bool classifier)
{
	struct waiter w = {0};
	struct rsv out = {0};
	struct ledger_reserve_req req = {.budget = budget,
	                                 .job_id = job,
	                                 .estimate_nusd = est,
	                                 .lease_ms = lease_ms,
	                                 .token = token,
	                                 .model = "m-small",
	                                 .provider = "p-one",
	                                 .lookup = lookup,
	                                 .classifier = classifier};
	ledger_reserve(f->l[li], &req, on_reply, &w);
	redisReply *r = wait_for(f, &w);
	out.rc = ledger_reserve_result(r, &out.res, out.err, sizeof out.err);
	if (out.rc == LEDGER_OK && out.res.budget)
		snprintf(out.budget, sizeof out.budget, "%s", out.res.budget);
	if (out.rc == LEDGER_OK && out.res.outputs)
		snprintf(out.outputs, sizeof out.outputs, "%.*s", (int)out.res.outputs_len,
		         out.res.outputs);
	out.res.budget = NULL;
	out.res.outputs = NULL;
	reply_free(r);
	return out;
}

static struct rsv reserve_req(struct fx *f, int li, const char *budget, const char *job,
                              int64_t est, int64_t lease_ms, const char *token, bool lookup)
{
	return reserve_full(f, li, budget, job, est, lease_ms, token, lookup, false);
}

static struct rsv reserve_tok(struct fx *f, int li, const char *budget, const char *job,
                              int64_t est, int64_t lease_ms, const char *token)
{
	return reserve_req(f, li, budget, job, est, lease_ms, token, false);
}

static struct rsv reserve(struct fx *f, const char *budget, const char *job, int64_t est)
{
	return reserve_tok(f, 0, budget, job, est, 60000, NULL);
}

struct stl {
	int rc;
	struct ledger_settlement s;
	char err[256];
};

static struct stl settle(struct fx *f, const char *budget, const char *job, int attempt,
                         int64_t cost)
{
	struct waiter w = {0};
	struct stl out = {0};
	ledger_settle_budget(f->l[0], budget, job, attempt, cost, NULL, NULL, on_reply, &w);
	redisReply *r = wait_for(f, &w);
	out.rc = ledger_settle_result(r, &out.s, out.err, sizeof out.err);
	reply_free(r);
	return out;
}

/* The integer reply of release or reap_ack; -1 for anything else. */
static long long int_reply(struct fx *f, struct waiter *w)
{
	redisReply *r = wait_for(f, w);
	long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	reply_free(r);
	return v;
}

static long long release(struct fx *f, const char *job, int attempt)
{
	struct waiter w = {0};
	ledger_release(f->l[0], job, attempt, on_reply, &w);
	return int_reply(f, &w);
}

struct bstate {
	int rc;
	bool known;
	enum period period;
	int64_t limit, spent, reserved, start_ms;
	char window[16], parent[64];
};

static struct bstate state(struct fx *f, const char *name)
{
	struct waiter w = {0};
	struct bstate out = {0};
	struct ledger_budget b;
	char err[256];
	ledger_budget_state(f->l[0], name, on_reply, &w);
	redisReply *r = wait_for(f, &w);
	out.rc = ledger_budget_result(r, 0, &b, err, sizeof err);
	if (out.rc == LEDGER_OK) {
		out.known = b.known;
		out.period = b.period;
		out.limit = b.limit_nusd;
		out.spent = b.spent_nusd;
		out.reserved = b.reserved_nusd;
		out.start_ms = b.window_start_ms;
		snprintf(out.window, sizeof out.window, "%s", b.known ? b.window : "");
		snprintf(out.parent, sizeof out.parent, "%s", b.known ? b.parent : "");
	} else {
		printf("     state %s: %s\n", name, err);
	}
	reply_free(r);
	return out;
}

static int sync_budgets(struct fx *f, int li, char *err, size_t err_size)
{
	struct waiter w = {0};
	ledger_sync_budgets(f->l[li], on_reply, &w);
	redisReply *r = wait_for(f, &w);
	int rc = ledger_sync_result(r, err, err_size);
	reply_free(r);
	return rc;
}

/* Defines a budget straight through budget_sync (what `budget set` does).
 * Returns 0, or -1 if the script refused it. */
static int define(const char *prefix, const char *name, long long limit, const char *period,
                  const char *parent)
{
	char base[64], lim[32];
	snprintf(base, sizeof base, "%s{ledger}:", prefix);
	snprintf(lim, sizeof lim, "%lld", limit);
	char key[96];
	snprintf(key, sizeof key, "%sbudgets", base);
	const char *argv[] = {"EVAL", lua_budget_sync, "1", key,    base,  "0",
	                      name,   "lpa",           lim, period, parent};
	redisContext *c = admin_connect();
	redisReply *r = c ? redisCommandArgv(c, 11, argv, NULL) : NULL;
	int rc =
	        r && r->type == REDIS_REPLY_ARRAY && strcmp(r->element[0]->str, "ok") == 0 ? 0 : -1;
	reply_free(r);
	if (c)
		redisFree(c);
	return rc;
}

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {.tm_year = y - 1900,
	                .tm_mon = mo - 1,
	                .tm_mday = d,
	                .tm_hour = h,
	                .tm_min = mi,
	                .tm_sec = s};
	return (int64_t)timegm(&tm) * 1000;
}

/* Moves the wall clock to unix_ms. */
static void clock_at(int64_t unix_ms)
{
	time_set_offset_ms(0);
	time_set_offset_ms(unix_ms - time_now_ms());
}

/* ---------------------------------------------------------------- tests */

TEST(reserve_settle_release)
{
	struct fx f;
	CHECK(fx_open(&f, "t1:", 1, NULL, 0, 0) == 0);
	CHECK(define("t1:", "b", 1000, "none", "") == 0);

	struct rsv a = reserve(&f, "b", "job-1", 300);
	CHECK_INT(a.rc, LEDGER_OK);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	CHECK_INT(a.res.attempt, 1);
	struct bstate s = state(&f, "b");
	CHECK(s.known);
	CHECK_INT(s.limit, 1000);
	CHECK_INT(s.reserved, 300);
	CHECK_INT(s.spent, 0);
	CHECK_STR(s.window, "all");
	CHECK_INT(admin_int("ZCARD %s%s", "t1:{ledger}:", "leases"), 1);

	struct stl st = settle(&f, "b", "job-1", 1, 200);
	CHECK_INT(st.rc, LEDGER_OK);
	CHECK(st.s.now);
	CHECK_INT(st.s.charged_nusd, 200);
	CHECK_INT(st.s.how, LEDGER_CHARGED_ACTUAL);
	s = state(&f, "b");
	CHECK_INT(s.spent, 200);
	CHECK_INT(s.reserved, 0);
	CHECK_INT(admin_int("ZCARD %s%s", "t1:{ledger}:", "leases"), 0);
	CHECK_INT(admin_int("EXISTS %s%s", "t1:{ledger}:", "lease:job-1:1"), 0);

	/* A repeat is answered as one and charges nothing. */
	st = settle(&f, "b", "job-1", 1, 999);
	CHECK_INT(st.rc, LEDGER_OK);
	CHECK(!st.s.now);
	CHECK_INT(st.s.charged_nusd, 200);
	CHECK_INT(state(&f, "b").spent, 200);

	/* The next attempt gets the next number; released, it costs nothing. */
	a = reserve(&f, "b", "job-1", 400);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	CHECK_INT(a.res.attempt, 2);
	CHECK_INT(state(&f, "b").reserved, 400);
	CHECK_INT(release(&f, "job-1", 2), 1);
	CHECK_INT(release(&f, "job-1", 2), 0);
	s = state(&f, "b");
	CHECK_INT(s.reserved, 0);
	CHECK_INT(s.spent, 200);
	st = settle(&f, "b", "job-1", 2, 50);
	CHECK(!st.s.now);
	CHECK_INT(st.s.how, LEDGER_CHARGED_NOTHING);
	CHECK_INT(st.s.charged_nusd, 0);
	CHECK_INT(state(&f, "b").spent, 200);
	/* Releasing a settled attempt changes nothing. */
	CHECK_INT(release(&f, "job-1", 1), 0);
	CHECK_INT(state(&f, "b").spent, 200);
	fx_close(&f);
}

/* A job's first reservation looks it up: done or pending reserves nothing. */
TEST(reserve_looks_the_job_up)
{
	struct fx f;
	CHECK(fx_open(&f, "t9:", 1, NULL, 0, 0) == 0);
	CHECK(define("t9:", "b", 1000, "none", "") == 0);
	reply_free(admin("HSET t9:{ledger}:job:done-1 state done attempts 1"));
	reply_free(admin("HSET t9:{ledger}:job:pend-1 state pending attempts 1 outputs %s",
	                 "{\"r\":1}\n{\"c\":2}"));
	reply_free(admin("HSET t9:{ledger}:job:pend-2 state pending attempts 1"));

	struct rsv a = reserve_req(&f, 0, "b", "done-1", 300, 60000, "tok-1", true);
	CHECK_INT(a.rc, LEDGER_OK);
	CHECK_INT(a.res.status, LEDGER_JOB_DONE);
	a = reserve_req(&f, 0, "b", "pend-1", 300, 60000, "tok-2", true);
	CHECK_INT(a.res.status, LEDGER_JOB_PENDING);
	CHECK_STR(a.outputs, "{\"r\":1}\n{\"c\":2}");
	CHECK_INT(state(&f, "b").reserved, 0);
	CHECK_INT(admin_int("ZCARD %s%s", "t9:{ledger}:", "leases"), 0);
	CHECK_INT(admin_int("HGET %s%s attempts", "t9:{ledger}:", "job:done-1"), 1);

	/* Pending without outputs, a new job, or no lookup asked: reserved. */
	a = reserve_req(&f, 0, "b", "pend-2", 300, 60000, "tok-3", true);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	CHECK_INT(a.res.attempt, 2);
	a = reserve_req(&f, 0, "b", "new-1", 300, 60000, "tok-4", true);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	CHECK_INT(a.res.attempt, 1);
	a = reserve_req(&f, 0, "b", "done-1", 300, 60000, "tok-5", false);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	CHECK_INT(a.res.attempt, 2);
	CHECK_INT(state(&f, "b").reserved, 900);
	fx_close(&f);
}

/* The classifier's call is attempt 0 of a new job (SPEC §6); asked again
 * after a crash it is a new attempt, reserved and charged like any. */
TEST(classifier_attempt_numbers)
{
	struct fx f;
	CHECK(fx_open(&f, "t13:", 1, NULL, 0, 0) == 0);
	CHECK(define("t13:", "b", 100000, "none", "") == 0);
	struct rsv a = reserve_full(&f, 0, "b", "job-c", 500, 60000, "tok-1", true, true);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	CHECK_INT(a.res.attempt, 0);
	/* A lost reply: the same token gets the same attempt 0. */
	a = reserve_full(&f, 0, "b", "job-c", 500, 60000, "tok-1", true, true);
	CHECK_INT(a.res.attempt, 0);
	CHECK_INT(state(&f, "b").reserved, 500);
	struct stl s = settle(&f, "b", "job-c", 0, 300);
	CHECK_INT(s.rc, LEDGER_OK);
	CHECK(s.s.now);
	/* The job's first real attempt is 1. */
	a = reserve_full(&f, 0, "b", "job-c", 500, 60000, "tok-2", false, false);
	CHECK_INT(a.res.attempt, 1);
	/* The job runs again (a crash): its classifier call is attempt 2, and
	 * its settlement charges again. */
	a = reserve_full(&f, 0, "b", "job-c", 500, 60000, "tok-3", true, true);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	CHECK_INT(a.res.attempt, 2);
	s = settle(&f, "b", "job-c", 2, 300);
	CHECK(s.s.now);
	CHECK_INT(state(&f, "b").spent, 600);
	fx_close(&f);
}

TEST(same_settle_three_times)
{
	struct fx f;
	struct waiter w[3] = {{0}};
	struct buf outputs = {0};
	CHECK(fx_open(&f, "t2:", 1, NULL, 0, 0) == 0);
	CHECK(define("t2:", "b", 1000000, "none", "") == 0);
	struct rsv a = reserve(&f, "b", "job-3x", 5000);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	buf_puts(&outputs, "{\"id\":\"job-3x\"}\n");
	/* Sent three times before any reply, as a retry loop might. */
	for (int i = 0; i < 3; i++)
		ledger_settle_budget(f.l[0], "b", "job-3x", a.res.attempt, 4200, &outputs, NULL,
		                     on_reply, &w[i]);
	int charged = 0;
	for (int i = 0; i < 3; i++) {
		struct ledger_settlement s;
		redisReply *r = wait_for(&f, &w[i]);
		CHECK_INT(ledger_settle_result(r, &s, NULL, 0), LEDGER_OK);
		charged += s.now;
		CHECK_INT(s.charged_nusd, 4200);
		reply_free(r);
	}
	CHECK_INT(charged, 1);
	struct bstate s = state(&f, "b");
	CHECK_INT(s.spent, 4200);
	CHECK_INT(s.reserved, 0);
	/* The job hash keeps the outputs and the attempt count. */
	redisReply *r = admin("HGET t2:{ledger}:job:job-3x outputs");
	CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, outputs.data) == 0);
	reply_free(r);
	CHECK_INT(admin_int("HGET %s%s attempts", "t2:{ledger}:", "job:job-3x"), 1);
	buf_free(&outputs);
	fx_close(&f);
}

TEST(parent_binds_and_refusals)
{
	struct fx f;
	CHECK(fx_open(&f, "t3:", 1, NULL, 0, 0) == 0);
	CHECK(define("t3:", "org", 1000, "none", "") == 0);
	CHECK(define("t3:", "team", 5000, "none", "org") == 0);

	struct rsv a = reserve(&f, "team", "j1", 600);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	CHECK_INT(state(&f, "org").reserved, 600);
	CHECK_INT(state(&f, "team").reserved, 600);
	CHECK_STR(state(&f, "team").parent, "org");

	/* Fits the team, and the org but for the reservation: wait. */
	struct rsv b = reserve(&f, "team", "j2", 600);
	CHECK_INT(b.rc, LEDGER_OK);
	CHECK_INT(b.res.status, LEDGER_WAIT);
	CHECK_STR(b.budget, "org");
	CHECK_INT(b.res.limit_nusd, 1000);
	CHECK_INT(b.res.spent_nusd, 0);
	CHECK_INT(b.res.reserved_nusd, 600);
	/* Nothing was held for the refused one. */
	CHECK_INT(state(&f, "org").reserved, 600);
	CHECK_INT(admin_int("HGET %s%s attempts", "t3:{ledger}:", "job:j2"), 0);

	/* Once spent, it will never fit this window: exhausted, naming the org. */
	CHECK(settle(&f, "team", "j1", a.res.attempt, 600).s.now);
	b = reserve(&f, "team", "j2", 600);
	CHECK_INT(b.res.status, LEDGER_EXHAUSTED);
	CHECK_STR(b.budget, "org");
	CHECK_INT(b.res.spent_nusd, 600);
	/* A smaller one fits. */
	b = reserve(&f, "team", "j2", 400);
	CHECK_INT(b.res.status, LEDGER_RESERVED);
	/* The parent alone can be exhausted by its own job too. */
	struct rsv c = reserve(&f, "org", "j3", 1);
	CHECK_INT(c.res.status, LEDGER_WAIT);
	CHECK(settle(&f, "team", "j2", b.res.attempt, 400).s.now);
	c = reserve(&f, "org", "j3", 1);
	CHECK_INT(c.res.status, LEDGER_EXHAUSTED);
	CHECK_INT(state(&f, "org").spent, 1000);
	CHECK_INT(state(&f, "team").spent, 1000);

	/* The child's own limit binds too. */
	CHECK(define("t3:", "org", 100000, "none", "") == 0);
	CHECK(define("t3:", "team", 1500, "none", "org") == 0);
	c = reserve(&f, "team", "j4", 501);
	CHECK_INT(c.res.status, LEDGER_EXHAUSTED);
	CHECK_STR(c.budget, "team");

	/* Unknown budgets, the job's or a parent. */
	c = reserve(&f, "nope", "j5", 1);
	CHECK_INT(c.rc, LEDGER_OK);
	CHECK_INT(c.res.status, LEDGER_UNKNOWN_BUDGET);
	CHECK_STR(c.budget, "nope");
	reply_free(admin("HSET t3:{ledger}:meta:orphan limit_nusd 10 period none parent ghost"));
	c = reserve(&f, "orphan", "j5", 1);
	CHECK_INT(c.res.status, LEDGER_UNKNOWN_BUDGET);
	CHECK_STR(c.budget, "ghost");
	CHECK(!state(&f, "nope").known);

	/* Bad amounts are refused with an error, nothing held. */
	c = reserve(&f, "team", "j6", MONEY_MAX_NUSD + 1);
	CHECK_INT(c.rc, LEDGER_ERROR);
	CHECK_HAS(c.err, "9007199254740991");
	c = reserve(&f, "team", "j6", MONEY_MAX_NUSD);
	CHECK_INT(c.res.status, LEDGER_EXHAUSTED);
	struct stl st = settle(&f, "team", "j6", 1, -5);
	CHECK_INT(st.rc, LEDGER_ERROR);
	fx_close(&f);
}

/* The scripts share money.h's bound: an amount or a limit above
 * MONEY_MAX_NUSD (2^53 - 1) is refused, and at the bound every comparison
 * is exact. A limit of 2^53, which budget_sync took before, would let
 * spent 2^53 - 1 plus an estimate of 2 "fit" (2^53 + 1 rounds to 2^53). */
TEST(amounts_at_the_bound)
{
	struct fx f;
	CHECK(fx_open(&f, "t13:", 1, NULL, 0, 0) == 0);
	CHECK(define("t13:", "over", MONEY_MAX_NUSD + 1, "none", "") != 0);
	CHECK(define("t13:", "big", MONEY_MAX_NUSD, "none", "") == 0);
	/* The cost money_cost_nusd() saturates at is one settle accepts. */
	struct stl st = settle(&f, "big", "j1", 0, MONEY_MAX_NUSD - 1);
	CHECK_INT(st.rc, LEDGER_OK);
	st = settle(&f, "big", "j2", 0, MONEY_MAX_NUSD + 1);
	CHECK_INT(st.rc, LEDGER_ERROR);
	CHECK_HAS(st.err, "9007199254740991");
	CHECK_INT(state(&f, "big").spent, MONEY_MAX_NUSD - 1);
	CHECK_INT(reserve(&f, "big", "j3", 2).res.status, LEDGER_EXHAUSTED);
	CHECK_INT(reserve(&f, "big", "j3", 1).res.status, LEDGER_RESERVED);
	CHECK_INT(reserve(&f, "big", "j4", 1).res.status, LEDGER_WAIT);
	fx_close(&f);
}

TEST(chain_longer_than_four_refused)
{
	struct fx f;
	char err[256] = "";
	/* Five budgets e <- d <- c <- b <- a from a config: the sync refuses. */
	struct budget_conf five[5] = {
	        {.name = "a", .limit_nusd = 100, .period = PERIOD_NONE, .parent = 1},
	        {.name = "b", .limit_nusd = 100, .period = PERIOD_NONE, .parent = 2},
	        {.name = "c", .limit_nusd = 100, .period = PERIOD_NONE, .parent = 3},
	        {.name = "d", .limit_nusd = 100, .period = PERIOD_NONE, .parent = 4},
	        {.name = "e", .limit_nusd = 100, .period = PERIOD_NONE, .parent = -1},
	};
	CHECK(fx_open(&f, "t4:", 1, five, 5, 0) == 0);
	CHECK_INT(sync_budgets(&f, 0, err, sizeof err), LEDGER_REFUSED);
	CHECK_HAS(err, "longer than 4");
	CHECK_INT(admin_int("SCARD %s%s", "t4:{ledger}:", "budgets"), 0);
	fx_close(&f);

	/* Four are fine. */
	CHECK(fx_open(&f, "t4:", 1, five + 1, 4, 0) == 0);
	five[1].parent = 1; /* indexes are into the array handed over: b->c is now [0]->[1] */
	five[2].parent = 2;
	five[3].parent = 3;
	CHECK_INT(sync_budgets(&f, 0, err, sizeof err), LEDGER_OK);
	struct rsv r = reserve(&f, "b", "j1", 10);
	CHECK_INT(r.res.status, LEDGER_RESERVED);
	CHECK_INT(state(&f, "e").reserved, 10);

	/* Made five by hand (behind the sync's back): reserve refuses with an error. */
	CHECK(define("t4:", "a", 100, "none", "") == 0);
	reply_free(admin("HSET t4:{ledger}:meta:a parent b"));
	r = reserve(&f, "a", "j2", 10);
	CHECK_INT(r.rc, LEDGER_ERROR);
	CHECK_HAS(r.err, "longer than 4");
	/* A cycle, likewise. */
	reply_free(admin("HSET t4:{ledger}:meta:e parent c"));
	r = reserve(&f, "b", "j3", 10);
	CHECK_INT(r.rc, LEDGER_ERROR);
	CHECK_HAS(r.err, "cycle");
	CHECK_INT(state(&f, "e").reserved, 10);
	/* budget set refuses a cycle too. */
	reply_free(admin("HSET t4:{ledger}:meta:e parent %s", ""));
	CHECK(define("t4:", "e", 100, "none", "b") == -1);
	CHECK_STR(state(&f, "e").parent, "");
	CHECK(define("t4:", "x", 100, "none", "ghost") == -1);
	CHECK(!state(&f, "x").known);
	fx_close(&f);
}

TEST(day_window_rolls_over)
{
	struct fx f;
	CHECK(fx_open(&f, "t5:", 1, NULL, 0, 0) == 0);
	CHECK(define("t5:", "daily", 1000, "day", "") == 0);
	clock_at(utc_ms(2026, 11, 22, 23, 59, 0));
	struct rsv a = reserve(&f, "daily", "j1", 800);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	CHECK(settle(&f, "daily", "j1", a.res.attempt, 800).s.now);
	CHECK_INT(reserve(&f, "daily", "j2", 300).res.status, LEDGER_EXHAUSTED);
	/* Reserved before midnight, settled after: charged to the day it reserved in. */
	a = reserve(&f, "daily", "j3", 150);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	struct bstate s = state(&f, "daily");
	CHECK_STR(s.window, "2026-11-22");
	CHECK_INT(s.start_ms, utc_ms(2026, 11, 22, 0, 0, 0));

	clock_at(utc_ms(2026, 11, 23, 0, 0, 30));
	struct rsv b = reserve(&f, "daily", "j2", 300);
	CHECK_INT(b.res.status, LEDGER_RESERVED);
	CHECK(settle(&f, "daily", "j3", a.res.attempt, 100).s.now);
	s = state(&f, "daily");
	CHECK_STR(s.window, "2026-11-23");
	CHECK_INT(s.spent, 0);
	CHECK_INT(s.reserved, 300);
	CHECK_INT(admin_int("HGET %s%s spent", "t5:{ledger}:", "b:daily:2026-11-22"), 900);
	CHECK_INT(admin_int("HGET %s%s reserved", "t5:{ledger}:", "b:daily:2026-11-22"), 0);
	time_set_offset_ms(0);
	fx_close(&f);
}

TEST(month_window_rolls_over)
{
	struct fx f;
	CHECK(fx_open(&f, "t6:", 1, NULL, 0, 0) == 0);
	CHECK(define("t6:", "monthly", 1000, "month", "") == 0);
	CHECK(define("t6:", "daily", 100000, "day", "monthly") == 0);
	clock_at(utc_ms(2026, 11, 30, 23, 59, 59));
	struct rsv a = reserve(&f, "daily", "j1", 1000);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	CHECK(settle(&f, "daily", "j1", a.res.attempt, 1000).s.now);
	struct rsv b = reserve(&f, "daily", "j2", 1);
	CHECK_INT(b.res.status, LEDGER_EXHAUSTED);
	CHECK_STR(b.budget, "monthly");
	CHECK_STR(state(&f, "monthly").window, "2026-11");

	clock_at(utc_ms(2026, 12, 1, 0, 0, 1));
	b = reserve(&f, "daily", "j2", 1);
	CHECK_INT(b.res.status, LEDGER_RESERVED);
	struct bstate s = state(&f, "monthly");
	CHECK_STR(s.window, "2026-12");
	CHECK_INT(s.start_ms, utc_ms(2026, 12, 1, 0, 0, 0));
	CHECK_INT(s.reserved, 1);
	CHECK_INT(s.spent, 0);
	CHECK_STR(state(&f, "daily").window, "2026-12-01");
	time_set_offset_ms(0);
	fx_close(&f);
}

/* The cost records a worker would publish, keyed by (job_id, attempt). */
#define MAX_RECORDS 16
struct records {
	char key[MAX_RECORDS][64];
	int64_t cost[MAX_RECORDS];
	int n;
};

static void record(struct records *rec, const char *job, int attempt, int64_t cost)
{
	char key[64];
	snprintf(key, sizeof key, "%s#%d", job, attempt);
	for (int i = 0; i < rec->n; i++)
		if (strcmp(rec->key[i], key) == 0) {
			/* A duplicate must be the same record. */
			CHECK_INT(rec->cost[i], cost);
			return;
		}
	snprintf(rec->key[rec->n], sizeof rec->key[0], "%s", key);
	rec->cost[rec->n++] = cost;
}

static int64_t records_sum(const struct records *rec)
{
	int64_t sum = 0;
	for (int i = 0; i < rec->n; i++)
		sum += rec->cost[i];
	return sum;
}

/* Reaps on ledgers [0, n) at once; adds what was reaped to rec. Returns the
 * number of entries charged by these calls (first), *total all entries. */
static int reap_all(struct fx *f, int n, struct records *rec, int *total)
{
	struct waiter w[MAX_CONN] = {{0}};
	int first = 0;
	*total = 0;
	for (int i = 0; i < n; i++)
		ledger_reap(f->l[i], 100, on_reply, &w[i]);
	for (int i = 0; i < n; i++) {
		redisReply *r = wait_for(f, &w[i]);
		struct ledger_reaped e;
		size_t k = ledger_reply_entries(r);
		CHECK(r && r->type == REDIS_REPLY_ARRAY);
		for (size_t j = 0; j < k; j++) {
			CHECK_INT(ledger_reaped_result(r, j, &e, NULL, 0), LEDGER_OK);
			CHECK_STR(e.budget, "b");
			CHECK_STR(e.model, "m-small");
			CHECK_STR(e.provider, "p-one");
			CHECK_STR(e.worker, "worker-a");
			if (rec)
				record(rec, e.job_id, e.attempt, e.estimate_nusd);
			first += e.first;
			(*total)++;
		}
		reply_free(r);
	}
	return first;
}

TEST(reap_once_by_two_workers)
{
	struct fx f;
	struct records rec = {0};
	int total = 0;
	CHECK(fx_open(&f, "t7:", 2, NULL, 0, 0) == 0);
	ledger_set_worker(f.l[0], "worker-a");
	ledger_set_worker(f.l[1], "worker-b");
	CHECK(define("t7:", "b", 100000, "day", "") == 0);
	int64_t t0 = utc_ms(2026, 11, 22, 12, 0, 0);
	clock_at(t0);

	/* Worker a holds three short leases and one long one, then "dies". */
	struct rsv r1 = reserve_tok(&f, 0, "b", "j1", 100, 1000, NULL);
	struct rsv r2 = reserve_tok(&f, 0, "b", "j2", 200, 1000, NULL);
	struct rsv r3 = reserve_tok(&f, 0, "b", "j3", 300, 1000, NULL);
	struct rsv r4 = reserve_tok(&f, 0, "b", "j4", 400, 3600000, NULL);
	CHECK_INT(r1.res.status, LEDGER_RESERVED);
	CHECK_INT(r2.res.status, LEDGER_RESERVED);
	CHECK_INT(r3.res.status, LEDGER_RESERVED);
	CHECK_INT(r4.res.status, LEDGER_RESERVED);
	CHECK_INT(state(&f, "b").reserved, 1000);
	/* Nothing is due yet. */
	CHECK_INT(reap_all(&f, 2, &rec, &total), 0);
	CHECK_INT(total, 0);

	/* Both reap at once after the short leases ran out: each is charged once. */
	clock_at(t0 + 5000);
	CHECK_INT(reap_all(&f, 2, &rec, &total), 3);
	CHECK_INT(total, 3);
	struct bstate s = state(&f, "b");
	CHECK_INT(s.spent, 600);
	CHECK_INT(s.reserved, 400);

	/* A late settle of a reaped attempt is a repeat: the estimate stays. */
	struct stl st = settle(&f, "b", "j1", r1.res.attempt, 40);
	CHECK_INT(st.rc, LEDGER_OK);
	CHECK(!st.s.now);
	CHECK_INT(st.s.how, LEDGER_CHARGED_ESTIMATE);
	CHECK_INT(st.s.charged_nusd, 100);
	record(&rec, "j1", r1.res.attempt, st.s.charged_nusd);
	st = settle(&f, "b", "j2", r2.res.attempt, 900);
	CHECK(!st.s.now);
	CHECK_INT(st.s.charged_nusd, 200);
	record(&rec, "j2", r2.res.attempt, st.s.charged_nusd);
	/* A release cannot take a reaped one back either. */
	CHECK_INT(release(&f, "j3", r3.res.attempt), 0);
	/* The live lease settles normally. */
	st = settle(&f, "b", "j4", r4.res.attempt, 350);
	CHECK(st.s.now);
	record(&rec, "j4", r4.res.attempt, st.s.charged_nusd);
	s = state(&f, "b");
	CHECK_INT(s.spent, 950);
	CHECK_INT(s.reserved, 0);
	/* SPEC §4: spent = the sum over distinct (job_id, attempt) cost records. */
	CHECK_INT(records_sum(&rec), s.spent);

	/* Unacknowledged reaps are reported again later, charging nothing. */
	CHECK_INT(reap_all(&f, 2, &rec, &total), 0);
	CHECK_INT(total, 0);
	clock_at(t0 + 5000 + LEDGER_REAP_REPORT_MS + 1000);
	CHECK_INT(reap_all(&f, 2, &rec, &total), 0);
	CHECK_INT(total, 3);
	CHECK_INT(state(&f, "b").spent, 950);
	CHECK_INT(records_sum(&rec), 950);
	/* Acknowledged, they are gone. */
	const char *jobs[] = {"j1", "j2", "j3"};
	int attempts[] = {r1.res.attempt, r2.res.attempt, r3.res.attempt};
	for (int i = 0; i < 3; i++) {
		struct waiter w = {0};
		ledger_reap_ack(f.l[1], jobs[i], attempts[i], on_reply, &w);
		CHECK_INT(int_reply(&f, &w), 1);
	}
	clock_at(t0 + 5000 + 3 * LEDGER_REAP_REPORT_MS);
	CHECK_INT(reap_all(&f, 2, &rec, &total), 0);
	CHECK_INT(total, 0);
	CHECK_INT(admin_int("ZCARD %s%s", "t7:{ledger}:", "leases"), 0);
	time_set_offset_ms(0);
	fx_close(&f);
}

TEST(reserve_token_is_idempotent)
{
	struct fx f;
	CHECK(fx_open(&f, "t8:", 1, NULL, 0, 0) == 0);
	CHECK(define("t8:", "b", 1000, "none", "") == 0);
	struct rsv a = reserve_tok(&f, 0, "b", "j1", 300, 60000, "w1:7:1");
	struct rsv b = reserve_tok(&f, 0, "b", "j1", 300, 60000, "w1:7:1");
	CHECK_INT(b.res.status, LEDGER_RESERVED);
	CHECK_INT(b.res.attempt, a.res.attempt);
	CHECK_INT(b.res.expires_ms, a.res.expires_ms);
	CHECK_INT(state(&f, "b").reserved, 300);
	/* Another token is another reservation. */
	struct rsv c = reserve_tok(&f, 0, "b", "j1", 300, 60000, "w1:7:2");
	CHECK_INT(c.res.attempt, a.res.attempt + 1);
	CHECK_INT(state(&f, "b").reserved, 600);
	/* Once its lease is settled, the token reserves anew. */
	CHECK(settle(&f, "b", "j1", a.res.attempt, 10).s.now);
	struct rsv d = reserve_tok(&f, 0, "b", "j1", 300, 60000, "w1:7:1");
	CHECK_INT(d.res.status, LEDGER_RESERVED);
	CHECK_INT(d.res.attempt, a.res.attempt + 2);
	fx_close(&f);
}

TEST(settle_without_reservation)
{
	struct fx f;
	CHECK(fx_open(&f, "t9:", 1, NULL, 0, 0) == 0);
	CHECK(define("t9:", "org", 1000, "month", "") == 0);
	CHECK(define("t9:", "team", 1000, "day", "org") == 0);
	/* The classifier's attempt 0 reserves nothing: charged on the chain now. */
	struct stl st = settle(&f, "team", "j1", 0, 70);
	CHECK_INT(st.rc, LEDGER_OK);
	CHECK(st.s.now);
	CHECK_INT(state(&f, "team").spent, 70);
	CHECK_INT(state(&f, "org").spent, 70);
	CHECK(!settle(&f, "team", "j1", 0, 70).s.now);
	CHECK_INT(state(&f, "org").spent, 70);
	st = settle(&f, "ghost", "j2", 0, 70);
	CHECK_INT(st.rc, LEDGER_ERROR);
	CHECK_HAS(st.err, "unknown budget");
	fx_close(&f);
}

/* A day's stats follow the charges: a settle or a reap
 * that charges adds spend and a call to its model, a repeat or a release
 * adds nothing, attempt 0 counts under the classifier. */
TEST(stats_follow_charges)
{
	struct fx f;
	struct records rec = {0};
	int total = 0;
	const char *day = "t20:{ledger}:stats:d:2026-11-22";
	struct provider_conf providers[] = {{.name = "p-one"}, {.name = "p-two"}};
	struct model_conf models[] = {{.name = "m-small", .provider = 0},
	                              {.name = "m-judge", .provider = 1}};
	CHECK(fx_open(&f, "t20:", 1, NULL, 0, 0) == 0);
	f.cfg.providers = providers;
	f.cfg.n_providers = 2;
	f.cfg.models = models;
	f.cfg.n_models = 2;
	f.cfg.router.classifier_model = "m-judge";
	ledger_set_worker(f.l[0], "worker-a");
	CHECK(define("t20:", "b", 1000000, "day", "") == 0);
	int64_t t0 = utc_ms(2026, 11, 22, 12, 0, 0);
	clock_at(t0);

	struct rsv a = reserve(&f, "b", "j1", 500);
	CHECK(settle(&f, "b", "j1", a.res.attempt, 200).s.now);
	CHECK_INT(admin_int("HGET %s %s", day, "spend:p-one:m-small"), 200);
	CHECK_INT(admin_int("HGET %s %s", day, "calls:p-one:m-small"), 1);
	long long ttl = admin_int("TTL %s%s", day, "");
	CHECK(ttl > LEDGER_STATS_TTL_S - 60 && ttl <= LEDGER_STATS_TTL_S);

	/* A repeat adds nothing; a release is no call; an unbilled call is one. */
	CHECK(!settle(&f, "b", "j1", a.res.attempt, 200).s.now);
	a = reserve(&f, "b", "j2", 500);
	CHECK_INT(release(&f, "j2", a.res.attempt), 1);
	CHECK(!settle(&f, "b", "j2", a.res.attempt, 300).s.now);
	a = reserve(&f, "b", "j3", 500);
	CHECK(settle(&f, "b", "j3", a.res.attempt, 0).s.now);
	CHECK_INT(admin_int("HGET %s %s", day, "spend:p-one:m-small"), 200);
	CHECK_INT(admin_int("HGET %s %s", day, "calls:p-one:m-small"), 2);

	/* Attempt 0 holds no lease: the classifier's model. Another attempt
	 * without a lease has no model to name. */
	CHECK(settle(&f, "b", "j4", 0, 70).s.now);
	CHECK(!settle(&f, "b", "j4", 0, 70).s.now);
	CHECK_INT(admin_int("HGET %s %s", day, "spend:p-two:m-judge"), 70);
	CHECK_INT(admin_int("HGET %s %s", day, "calls:p-two:m-judge"), 1);
	CHECK(settle(&f, "b", "j5", 3, 5).s.now);
	CHECK_INT(admin_int("HGET %s %s", day, "spend::"), 5);

	/* A reap charges the estimate once; the late settle is a repeat. */
	a = reserve_tok(&f, 0, "b", "j6", 900, 1000, NULL);
	clock_at(t0 + 5000);
	CHECK_INT(reap_all(&f, 1, &rec, &total), 1);
	CHECK_INT(admin_int("HGET %s %s", day, "spend:p-one:m-small"), 1100);
	CHECK_INT(admin_int("HGET %s %s", day, "calls:p-one:m-small"), 3);
	clock_at(t0 + 5000 + LEDGER_REAP_REPORT_MS + 1000);
	CHECK_INT(reap_all(&f, 1, &rec, &total), 0);
	CHECK_INT(total, 1);
	CHECK(!settle(&f, "b", "j6", a.res.attempt, 40).s.now);
	CHECK_INT(admin_int("HGET %s %s", day, "spend:p-one:m-small"), 1100);
	CHECK_INT(admin_int("HGET %s %s", day, "calls:p-one:m-small"), 3);

	/* The budget's spend is the sum of the day's stats. */
	CHECK_INT(state(&f, "b").spent, 1100 + 70 + 5);

	/* The next day has its own hash. */
	clock_at(utc_ms(2026, 11, 23, 0, 0, 1));
	a = reserve(&f, "b", "j7", 500);
	CHECK(settle(&f, "b", "j7", a.res.attempt, 11).s.now);
	CHECK_INT(admin_int("HGET %s %s", "t20:{ledger}:stats:d:2026-11-23", "spend:p-one:m-small"),
	          11);
	CHECK_INT(admin_int("HGET %s %s", day, "spend:p-one:m-small"), 1100);
	struct buf key = {0};
	ledger_stats_key(&key, &f.cfg, t0);
	CHECK_STR(key.data, day);
	buf_free(&key);
	time_set_offset_ms(0);
	fx_close(&f);
}

/* Job counts, once per loop turn: ok and each error code, per day. */
TEST(stats_jobs_counts)
{
	struct fx f;
	struct waiter w = {0};
	const char *day = "t21:{ledger}:stats:d:2026-12-31";
	CHECK(fx_open(&f, "t21:", 1, NULL, 0, 0) == 0);
	clock_at(utc_ms(2026, 12, 31, 23, 0, 0));
	struct ledger_job_count counts[] = {
	        {NULL, 3}, {"providers_failed", 2}, {"invalid_job", 0}, {"", 1}};
	ledger_stats_jobs(f.l[0], counts, 4, on_reply, &w);
	redisReply *r = wait_for(&f, &w);
	CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 3);
	reply_free(r);
	CHECK_INT(admin_int("HGET %s %s", day, "jobs:ok"), 4);
	CHECK_INT(admin_int("HGET %s %s", day, "jobs:error:providers_failed"), 2);
	CHECK_INT(admin_int("HEXISTS %s %s", day, "jobs:error:invalid_job"), 0);
	long long ttl = admin_int("TTL %s%s", day, "");
	CHECK(ttl > LEDGER_STATS_TTL_S - 60 && ttl <= LEDGER_STATS_TTL_S);

	/* Another turn adds to them; the new year has its own hashes. */
	w = (struct waiter){0};
	ledger_stats_jobs(f.l[0], counts + 1, 1, on_reply, &w);
	reply_free(wait_for(&f, &w));
	CHECK_INT(admin_int("HGET %s %s", day, "jobs:error:providers_failed"), 4);
	clock_at(utc_ms(2027, 1, 1, 0, 0, 1));
	w = (struct waiter){0};
	ledger_stats_jobs(f.l[0], counts, 1, on_reply, &w);
	reply_free(wait_for(&f, &w));
	CHECK_INT(admin_int("HGET %s %s", "t21:{ledger}:stats:d:2027-01-01", "jobs:ok"), 3);
	CHECK_INT(admin_int("HGET %s %s", day, "jobs:ok"), 4);

	/* A month's figures are the sum of its days so far. */
	char days[31][LEDGER_WINDOW_SIZE];
	CHECK_INT(ledger_stats_days(utc_ms(2026, 12, 31, 23, 0, 0), days), 31);
	CHECK_STR(days[0], "2026-12-01");
	CHECK_STR(days[30], "2026-12-31");
	CHECK_INT(ledger_stats_days(utc_ms(2027, 1, 1, 0, 0, 1), days), 1);
	CHECK_STR(days[0], "2027-01-01");
	CHECK_INT(ledger_stats_days(utc_ms(2028, 2, 29, 12, 0, 0), days), 29);
	CHECK_STR(days[28], "2028-02-29");
	time_set_offset_ms(0);
	fx_close(&f);
}

TEST(noscript_reload)
{
	struct fx f;
	CHECK(fx_open(&f, "t10:", 1, NULL, 0, 0) == 0);
	CHECK(define("t10:", "b", 1000, "none", "") == 0);
	CHECK_INT(reserve(&f, "b", "j1", 100).res.status, LEDGER_RESERVED);
	reply_free(admin("SCRIPT FLUSH"));
	struct rsv a = reserve(&f, "b", "j2", 100);
	CHECK_INT(a.rc, LEDGER_OK);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	reply_free(admin("SCRIPT FLUSH"));
	CHECK(settle(&f, "b", "j2", a.res.attempt, 100).s.now);
	reply_free(admin("SCRIPT FLUSH"));
	CHECK_INT(state(&f, "b").spent, 100);
	fx_close(&f);
}

TEST(sync_keeps_spend)
{
	struct fx f;
	char err[256] = "";
	struct budget_conf v1[2] = {
	        {.name = "org", .limit_nusd = 5000, .period = PERIOD_MONTH, .parent = -1},
	        {.name = "nightly", .limit_nusd = 1000, .period = PERIOD_DAY, .parent = 0},
	};
	CHECK(fx_open(&f, "t11:", 1, v1, 2, 0) == 0);
	/* No explicit sync: the ledger writes the config before its first step. */
	struct rsv a = reserve(&f, "nightly", "j1", 300);
	CHECK_INT(a.res.status, LEDGER_RESERVED);
	CHECK(settle(&f, "nightly", "j1", a.res.attempt, 200).s.now);
	CHECK_INT(reserve(&f, "nightly", "j2", 100).res.status, LEDGER_RESERVED);
	/* Set by hand in Redis (budget set): untouched by the sync. */
	CHECK(define("t11:", "adhoc", 77, "none", "org") == 0);
	fx_close(&f);

	/* A worker restarts with new limits and another parent. */
	struct budget_conf v2[3] = {
	        {.name = "org", .limit_nusd = 9000, .period = PERIOD_MONTH, .parent = -1},
	        {.name = "nightly", .limit_nusd = 4000, .period = PERIOD_DAY, .parent = 2},
	        {.name = "root", .limit_nusd = 100000, .period = PERIOD_NONE, .parent = -1},
	};
	CHECK(fx_open(&f, "t11:", 1, v2, 3, 0) == 0);
	CHECK_INT(sync_budgets(&f, 0, err, sizeof err), LEDGER_OK);
	struct bstate s = state(&f, "nightly");
	CHECK_INT(s.limit, 4000);
	CHECK_INT(s.period, PERIOD_DAY);
	CHECK_STR(s.parent, "root");
	CHECK_INT(s.spent, 200);
	CHECK_INT(s.reserved, 100);
	s = state(&f, "org");
	CHECK_INT(s.limit, 9000);
	CHECK_INT(s.spent, 200);
	CHECK_INT(s.reserved, 100);
	s = state(&f, "adhoc");
	CHECK(s.known);
	CHECK_INT(s.limit, 77);
	CHECK_STR(s.parent, "org");

	/* Redis restarted empty: a config budget is unknown once, then written again. */
	reply_free(admin("DEL t11:{ledger}:meta:nightly t11:{ledger}:meta:root"));
	CHECK_INT(reserve(&f, "nightly", "j3", 1).res.status, LEDGER_UNKNOWN_BUDGET);
	CHECK_INT(reserve(&f, "nightly", "j3", 1).res.status, LEDGER_RESERVED);
	CHECK_INT(state(&f, "nightly").limit, 4000);
	/* And an attempt whose lease went with the data: its settle is refused
	 * once, as a state that passes, then charged on the budgets written again. */
	reply_free(admin("DEL t11:{ledger}:meta:nightly t11:{ledger}:meta:root"));
	struct stl lost = settle(&f, "nightly", "j4", 1, 30);
	CHECK_INT(lost.rc, LEDGER_ERROR);
	CHECK_HAS(lost.err, "unknown budget");
	CHECK(ledger_error_transient(lost.err));
	lost = settle(&f, "nightly", "j4", 1, 30);
	CHECK_INT(lost.rc, LEDGER_OK);
	CHECK(lost.s.now);
	CHECK_INT(state(&f, "nightly").spent, 230);

	/* The list: every budget, sorted. */
	struct waiter w = {0};
	ledger_budget_list(f.l[0], on_reply, &w);
	redisReply *r = wait_for(&f, &w);
	CHECK_INT(ledger_reply_entries(r), 4);
	const char *want[] = {"adhoc", "nightly", "org", "root"};
	for (size_t i = 0; i < 4 && i < ledger_reply_entries(r); i++) {
		struct ledger_budget b;
		CHECK_INT(ledger_budget_result(r, i, &b, NULL, 0), LEDGER_OK);
		CHECK_STR(b.name, want[i]);
		CHECK(b.known);
	}
	reply_free(r);
	fx_close(&f);
}

TEST(unreachable_gives_null)
{
	struct fx f;
	struct waiter w = {0};
	char err[128];
	struct ledger_reservation res;
	fx_open(&f, "t12:", 1, NULL, 0, loopback_free_port());
	struct ledger_reserve_req req = {
	        .budget = "b", .job_id = "j", .estimate_nusd = 1, .lease_ms = 1000};
	ledger_reserve(f.l[0], &req, on_reply, &w);
	redisReply *r = wait_for(&f, &w);
	CHECK(w.done);
	CHECK(r == NULL);
	CHECK_INT(ledger_reserve_result(r, &res, err, sizeof err), LEDGER_UNREACHABLE);
	fx_close(&f);
}

/* ---------------------------------------------------------------- name lookups */

static void count_tick(uv_timer_t *t)
{
	(*(int *)t->data)++;
}

/* hiredis 0.14 resolves a host name inside redisAsyncConnect(), on the
 * loop. A name is now looked up on libuv's thread pool: with the pool held,
 * the loop keeps running its timers while the lookup of "localhost" waits,
 * and the connection is made once the pool is free. A connection freed
 * while its lookup waits cancels it (and leaks nothing). */
TEST(redis_resolves_off_the_loop)
{
	uv_loop_t loop;
	uv_timer_t tick;
	struct pool_hold hold;
	int ticks = 0, ready = 0;
	uv_loop_init(&loop);
	uv_timer_init(&loop, &tick);
	tick.data = &ticks;
	struct redis_options opt = {.host = "localhost", .port = server_port, .timeout_ms = 5000};

	pool_hold(&hold, &loop);
	struct redis *r = redis_new(&loop, &opt, on_state_count, &ready);
	struct redis *gone = redis_new(&loop, &opt, on_state_count, &ready);
	redis_start(r);
	redis_start(gone);
	CHECK(!redis_ready(r));
	uv_timer_start(&tick, count_tick, 5, 5);
	int64_t deadline = time_mono_ms() + 10000;
	while (ticks < 20 && time_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_INT(ticks, 20);
	CHECK(!redis_ready(r)); /* its lookup waits for the pool */
	redis_free(gone);

	pool_release(&hold, &loop);
	deadline = time_mono_ms() + 10000;
	while (!redis_ready(r) && time_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK(redis_ready(r));
	struct waiter w = {0};
	const char *argv[] = {"PING"};
	redis_command(r, on_reply, &w, 1, argv, NULL);
	deadline = time_mono_ms() + 10000;
	while (!w.done && time_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK(w.reply && w.reply->type == REDIS_REPLY_STATUS && strcmp(w.reply->str, "PONG") == 0);
	reply_free(w.reply);

	uv_timer_stop(&tick);
	uv_close((uv_handle_t *)&tick, NULL);
	redis_free(r);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(uv_loop_close(&loop), 0);
}

/* ---------------------------------------------------------------- bench */

struct bench {
	struct ledger *l;
	int settled, failed;
	char jobs[20000][24];
};

struct bench_job {
	struct bench *b;
	int i;
};

static void bench_settled(void *opaque, redisReply *reply)
{
	struct bench_job *j = opaque;
	struct ledger_settlement s;
	if (ledger_settle_result(reply, &s, NULL, 0) != LEDGER_OK || !s.now)
		j->b->failed++;
	j->b->settled++;
}

static void bench_reserved(void *opaque, redisReply *reply)
{
	struct bench_job *j = opaque;
	struct ledger_reservation res;
	if (ledger_reserve_result(reply, &res, NULL, 0) != LEDGER_OK ||
	    res.status != LEDGER_RESERVED) {
		j->b->failed++;
		j->b->settled++;
		return;
	}
	ledger_settle_budget(j->b->l, "bench", j->b->jobs[j->i], res.attempt, 900, NULL, NULL,
	                     bench_settled, j);
}

/* Not a test: 20000 reserve+settle pairs, all in flight at once on one
 * connection, as a worker with many jobs would pipeline them. */
static void bench_pairs(void)
{
	enum { N = 20000 };
	struct fx f;
	struct bench *b = calloc(1, sizeof *b);
	struct bench_job *jobs = calloc(N, sizeof *jobs);
	if (fx_open(&f, "bench:", 1, NULL, 0, 0) != 0) {
		printf("bench: redis not ready\n");
		goto out;
	}
	CHECK(define("bench:", "bench", 1000000000000, "day", "") == 0);
	b->l = f.l[0];
	int64_t t0 = time_mono_ms();
	for (int i = 0; i < N; i++) {
		snprintf(b->jobs[i], sizeof b->jobs[i], "bench-%d", i);
		jobs[i] = (struct bench_job){.b = b, .i = i};
		struct ledger_reserve_req req = {.budget = "bench",
		                                 .job_id = b->jobs[i],
		                                 .estimate_nusd = 1000,
		                                 .lease_ms = 60000,
		                                 .model = "m",
		                                 .provider = "p"};
		ledger_reserve(f.l[0], &req, bench_reserved, &jobs[i]);
	}
	while (b->settled < N && time_mono_ms() - t0 < 120000)
		uv_run(&f.loop, UV_RUN_ONCE);
	int64_t ms = time_mono_ms() - t0;
	printf("bench: reserve+settle pairs/s %lld (%d pairs in %lld ms, %d failed)\n",
	       (long long)(ms > 0 ? (int64_t)b->settled * 1000 / ms : 0), b->settled, (long long)ms,
	       b->failed);
	fx_close(&f);
out:
	free(jobs);
	free(b);
}

/* ---------------------------------------------------------------- batch steps (SPEC §14) */

/* Step 0 records, 1 abandons, 2 lists the jobs, 3 finishes "collected", 4
 * finishes "abandoned". */
static redisReply *batch_step(struct fx *f, int step, const char *token, const char *batch_id)
{
	struct waiter w = {0};
	if (step == 0)
		ledger_batch_record(f->l[0], token, batch_id, 60000, time_now_ms() + 7200000,
		                    on_reply, &w);
	else if (step == 1)
		ledger_batch_abandon(f->l[0], token, on_reply, &w);
	else if (step == 2)
		ledger_batch_jobs(f->l[0], token, (const size_t[]){1, 0, 5}, 3, on_reply, &w);
	else
		ledger_batch_finish(f->l[0], token, step == 3 ? "collected" : "abandoned",
		                    step == 3 ? 150 : -1, on_reply, &w);
	return wait_for(f, &w);
}

static void batch_prepare2(struct fx *f, const char *token, const char *j1, int a1, const char *j2,
                           int a2)
{
	struct waiter w = {0};
	struct ledger_batch_sub bs = {.token = token,
	                              .provider = "p-one",
	                              .model = "m-small",
	                              .lease_ms = 60000,
	                              .complete_by_ms = time_now_ms() + 7200000};
	struct ledger_batch_req reqs[2] = {{.job_id = j1,
	                                    .attempt = a1,
	                                    .value = "{\"id\":\"x\"}",
	                                    .value_len = 10,
	                                    .topic = "llm.jobs",
	                                    .partition = 1,
	                                    .offset = 7,
	                                    .complete_by_ms = bs.complete_by_ms},
	                                   {.job_id = j2,
	                                    .attempt = a2,
	                                    .value = "{}",
	                                    .value_len = 2,
	                                    .topic = "llm.jobs",
	                                    .complete_by_ms = bs.complete_by_ms}};
	ledger_batch_prepare(f->l[0], &bs, reqs, 2, on_reply, &w);
	redisReply *r = wait_for(f, &w);
	CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "submitting") == 0);
	reply_free(r);
}

TEST(batch_steps)
{
	struct fx f;
	struct records rec = {0};
	int total = 0;
	CHECK(fx_open(&f, "tb:", 1, NULL, 0, 0) == 0);
	ledger_set_worker(f.l[0], "worker-a");
	CHECK(define("tb:", "b", 100000, "none", "") == 0);

	/* Prepared, then its worker died: the leases expire, the reaper leaves
	 * them to the orphan search, and a copy of a job waits. */
	struct rsv r1 = reserve_tok(&f, 0, "b", "j1", 300, 1, NULL);
	struct rsv r2 = reserve_tok(&f, 0, "b", "j2", 200, 1, NULL);
	CHECK_INT(r1.res.status, LEDGER_RESERVED);
	batch_prepare2(&f, "tok000000001", "j1", r1.res.attempt, "j2", r2.res.attempt);
	usleep(5000);
	CHECK_INT(reap_all(&f, 1, &rec, &total), 0);
	CHECK_INT(total, 0);
	CHECK_INT(state(&f, "b").reserved, 500);
	CHECK_INT(state(&f, "b").spent, 0);
	struct rsv copy = reserve_req(&f, 0, "b", "j1", 300, 60000, NULL, true);
	CHECK_INT(copy.res.status, LEDGER_JOB_SUBMITTING);

	/* Not found at the provider: abandoned, released at zero, the copy runs. */
	redisReply *r = batch_step(&f, 1, "tok000000001", NULL);
	CHECK(r && r->type == REDIS_REPLY_ARRAY && strcmp(r->element[0]->str, "abandoned") == 0);
	reply_free(r);
	/* Abandoned, it waits in bsubs for its holder to finish it. */
	CHECK_INT(admin_int("ZCARD %s", "tb:{ledger}:bsubs", NULL), 1);
	r = batch_step(&f, 4, "tok000000001", NULL);
	CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
	reply_free(r);
	CHECK_INT(admin_int("ZCARD %s", "tb:{ledger}:bsubs", NULL), 0);
	CHECK_INT(state(&f, "b").reserved, 0);
	CHECK_INT(state(&f, "b").spent, 0);
	CHECK_INT(settle(&f, "b", "j1", r1.res.attempt, 999).s.how, LEDGER_CHARGED_NOTHING);
	copy = reserve_req(&f, 0, "b", "j1", 300, 60000, NULL, true);
	CHECK_INT(copy.res.status, LEDGER_RESERVED);
	CHECK_INT(release(&f, "j1", copy.res.attempt), 1);

	/* Prepared and recorded: the jobs are batched, the leases last past
	 * complete_by, the dashboard sees the batch; a late record is a repeat. */
	struct rsv r3 = reserve_tok(&f, 0, "b", "j3", 400, 1, NULL);
	struct rsv r4 = reserve_tok(&f, 0, "b", "j4", 100, 1, NULL);
	batch_prepare2(&f, "tok000000002", "j3", r3.res.attempt, "j4", r4.res.attempt);
	r = batch_step(&f, 0, "tok000000002", "batch_1");
	CHECK(r && r->type == REDIS_REPLY_ARRAY && strcmp(r->element[0]->str, "recorded") == 0);
	reply_free(r);
	r = batch_step(&f, 1, "tok000000002", NULL); /* the orphan search, too late */
	CHECK(r && r->type == REDIS_REPLY_ARRAY && strcmp(r->element[0]->str, "recorded") == 0);
	reply_free(r);
	usleep(5000);
	CHECK_INT(reap_all(&f, 1, &rec, &total), 0);
	CHECK_INT(state(&f, "b").reserved, 500);
	copy = reserve_req(&f, 0, "b", "j3", 400, 60000, NULL, true);
	CHECK_INT(copy.res.status, LEDGER_JOB_BATCHED);
	CHECK_INT(admin_int("ZCARD %s", "tb:{ledger}:batches", NULL), 1);
	CHECK_INT(admin_int("HGET %s %s", "tb:{ledger}:batch:batch_1", "reserved_nusd"), 500);
	r = batch_step(&f, 2, "tok000000002", NULL);
	/* The requests asked, in the order asked: 1, 0, and 5 that it lacks. */
	CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3);
	if (r && r->elements == 3 && r->element[1]->elements >= 14 &&
	    r->element[0]->elements >= 14 && r->element[2]->elements >= 14) {
		CHECK_STR(r->element[1]->element[1]->str, "j3");
		CHECK_STR(r->element[1]->element[2]->str, "batched");
		CHECK_STR(r->element[1]->element[3]->str, "tok000000002");
		CHECK_STR(r->element[1]->element[5]->str, "{\"id\":\"x\"}");
		CHECK_STR(r->element[1]->element[10]->str, "7");
		CHECK_STR(r->element[0]->element[1]->str, "j4");
		CHECK_STR(r->element[2]->element[0]->str, "0");
		CHECK_STR(r->element[2]->element[1]->str, "");
	}
	reply_free(r);

	/* An operator's cancel: the holder's next renewal says so. */
	{
		struct waiter w = {0};
		ledger_batch_touch(f.l[0], "tok000000002", "batch_1", 60000, "in_progress", 1, 0,
		                   -1, on_reply, &w);
		r = wait_for(&f, &w);
		CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
		reply_free(r);
		const char *argv[] = {"EVAL",
		                      lua_batch_cancel,
		                      "2",
		                      "tb:{ledger}:batches",
		                      "tb:{ledger}:batch:batch_1",
		                      "batch_1",
		                      "1000"};
		redisContext *c = admin_connect();
		r = c ? redisCommandArgv(c, 7, argv, NULL) : NULL;
		CHECK(r && r->type == REDIS_REPLY_ARRAY &&
		      strcmp(r->element[0]->str, "requested") == 0 &&
		      strcmp(r->element[1]->str, "in_progress") == 0);
		reply_free(r);
		r = c ? redisCommandArgv(c, 7, argv, NULL) : NULL;
		CHECK(r && r->type == REDIS_REPLY_ARRAY &&
		      strcmp(r->element[0]->str, "already") == 0);
		reply_free(r);
		if (c)
			redisFree(c);
		w = (struct waiter){0};
		ledger_batch_touch(f.l[0], "tok000000002", "batch_1", 60000, NULL, 0, 0, 42,
		                   on_reply, &w);
		r = wait_for(&f, &w);
		CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 2);
		reply_free(r);
		CHECK_INT(admin_int("HGET %s %s", "tb:{ledger}:batch:batch_1", "spent_nusd"), 42);
	}

	/* Answered: settled once; finished: off the books. */
	CHECK_INT(settle(&f, "b", "j3", r3.res.attempt, 150).s.how, LEDGER_CHARGED_ACTUAL);
	CHECK_INT(settle(&f, "b", "j3", r3.res.attempt, 150).s.now, 0);
	CHECK_INT(settle(&f, "b", "j4", r4.res.attempt, 0).s.how, LEDGER_CHARGED_ACTUAL);
	CHECK_INT(state(&f, "b").spent, 150);
	CHECK_INT(state(&f, "b").reserved, 0);
	r = batch_step(&f, 3, "tok000000002", NULL);
	CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
	reply_free(r);
	CHECK_INT(admin_int("ZCARD %s", "tb:{ledger}:batches", NULL), 0);
	CHECK_INT(admin_int("ZCARD %s", "tb:{ledger}:bsubs", NULL), 0);
	/* Kept a day among the ended batches, with what its answers cost. */
	CHECK_INT(admin_int("ZCARD %s", "tb:{ledger}:batches_ended", NULL), 1);
	CHECK_INT(admin_int("HGET %s %s", "tb:{ledger}:batch:batch_1", "spent_nusd"), 150);
	CHECK_INT(admin_int("HGET %s %s", "tb:{ledger}:batch:batch_1", "reserved_nusd"), 0);
	CHECK(admin_int("TTL %s", "tb:{ledger}:batch:batch_1", NULL) > 0);

	fx_close(&f);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_OFF);
	atexit(server_stop);
	if (server_start() != 0) {
		unit_cur = "redis_server";
		UNIT_FAIL("cannot start redis-server");
		unit_failed++;
		return unit_done();
	}
	RUN(reserve_settle_release);
	RUN(reserve_looks_the_job_up);
	RUN(classifier_attempt_numbers);
	RUN(same_settle_three_times);
	RUN(parent_binds_and_refusals);
	RUN(chain_longer_than_four_refused);
	RUN(amounts_at_the_bound);
	RUN(day_window_rolls_over);
	RUN(month_window_rolls_over);
	RUN(reap_once_by_two_workers);
	RUN(reserve_token_is_idempotent);
	RUN(settle_without_reservation);
	RUN(stats_follow_charges);
	RUN(stats_jobs_counts);
	RUN(noscript_reload);
	RUN(sync_keeps_spend);
	RUN(unreachable_gives_null);
	RUN(redis_resolves_off_the_loop);
	RUN(batch_steps);
	bench_pairs();
	int rc = unit_done();
	server_stop();
	return rc;
}
