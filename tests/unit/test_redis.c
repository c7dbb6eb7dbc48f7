/* Unit tests of the Redis connection's SPEC §15 parts against real servers:
 * an ACL user, discovery through a real sentinel, a failover followed, and
 * the replica acknowledgement (WAIT) of durable calls, batched per turn.
 *
 * The servers are throwaway redis-server processes on free loopback ports
 * in one temp dir: a primary, its replica and a sentinel (redis-server
 * --sentinel) that monitors them, plus a server with an ACL user. Each dies
 * with this process (PR_SET_PDEATHSIG) and is killed at exit. WAITs are
 * counted with INFO commandstats on the primary. */
#include "buf.h"
#include "ledger.h"
#include "log.h"
#include "redis.h"
#include "servers.h"
#include "timeutil.h"
#include "unit.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#define MASTER_NAME "pymaster"
#define PASSWORD    "hunter2-secret"

/* ---------------------------------------------------------------- servers */

struct server {
	pid_t pid;
	int port;
	char name[32];
};

static char tmp_dir[128];
static struct server primary, replica, sentinel, acl;

static redisReply *admin_v(int port, const char *fmt, va_list ap)
{
	struct timeval tv = {.tv_sec = 2};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r = NULL;
	if (!c || c->err)
		goto out;
	redisSetTimeout(c, tv);
	r = redisCommand(c, "AUTH %s", PASSWORD); /* refused where none is needed */
	if (r)
		freeReplyObject(r);
	r = redisvCommand(c, fmt, ap);
out:
	if (c)
		redisFree(c);
	return r;
}

/* A command on a fresh blocking connection; returns the reply
 * (freeReplyObject it) or NULL. */
static redisReply *admin(int port, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = admin_v(port, fmt, ap);
	va_end(ap);
	return r;
}

/* The same for a command whose reply is a number (an integer, or a string
 * holding one; nil is 0); -1 for anything else. */
static long long admin_int(int port, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = admin_v(port, fmt, ap);
	va_end(ap);
	return reply_number(r);
}

/* An integer field of an INFO section ("cmdstat_wait:calls=3,..." gives 3
 * for field "cmdstat_wait:calls="); 0 when absent. */
static long long info_field(int port, const char *section, const char *field)
{
	redisReply *r = admin(port, "INFO %s", section);
	long long v = 0;
	const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, field) : NULL;
	if (p)
		v = atoll(p + strlen(field));
	if (r)
		freeReplyObject(r);
	return v;
}

static bool info_has(int port, const char *section, const char *needle)
{
	redisReply *r = admin(port, "INFO %s", section);
	bool has = r && r->type == REDIS_REPLY_STRING && strstr(r->str, needle);
	if (r)
		freeReplyObject(r);
	return has;
}

static bool answers(int port)
{
	redisReply *r = admin(port, "PING");
	bool up = r != NULL; /* NOAUTH counts: it is up */
	if (r)
		freeReplyObject(r);
	return up;
}

/* Starts redis-server with argv (after the program name; "--port" and the
 * port are added) and waits until it answers. Returns 0 or -1. */
static int server_start(struct server *s, const char *name, const char *const *args)
{
	snprintf(s->name, sizeof s->name, "%s", name);
	for (int tries = 0; tries < 3; tries++) {
		char port[16];
		if (!s->port || tries > 0)
			s->port = loopback_free_port();
		snprintf(port, sizeof port, "%d", s->port);
		const char *argv[48] = {"redis-server"};
		int argc = 1;
		for (; args[argc - 1]; argc++)
			argv[argc] = args[argc - 1];
		argv[argc++] = "--port";
		argv[argc++] = port;
		argv[argc] = NULL;
		pid_t parent = getpid();
		s->pid = fork();
		if (s->pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			if (chdir(tmp_dir) != 0)
				_exit(1);
			execvp("redis-server", (char *const *)argv);
			_exit(127);
		}
		if (s->pid < 0)
			return -1;
		for (int i = 0; i < 400; i++) {
			if (answers(s->port))
				return 0;
			if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
				break; /* the port was taken: another */
			usleep(25000);
		}
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = -1;
	}
	return -1;
}

static void server_kill(struct server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGCONT);
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = -1;
	}
}

static void servers_stop(void)
{
	server_kill(&sentinel);
	server_kill(&replica);
	server_kill(&primary);
	server_kill(&acl);
	if (tmp_dir[0]) {
		char cmd[200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmp_dir);
		tmp_dir[0] = '\0';
	}
}

/* The primary and replica with a password, and a sentinel that needs none
 * (so the worker's AUTH to it is refused, and it answers anyway). */
static int start_replicated(void)
{
	char port[16], log[200];
	snprintf(log, sizeof log, "%s/primary.log", tmp_dir);
	const char *p_args[] = {"--bind",
	                        "127.0.0.1",
	                        "--save",
	                        "",
	                        "--appendonly",
	                        "no",
	                        "--logfile",
	                        log,
	                        "--dbfilename",
	                        "primary.rdb",
	                        "--requirepass",
	                        PASSWORD,
	                        "--masterauth",
	                        PASSWORD,
	                        NULL};
	if (server_start(&primary, "primary", p_args) != 0)
		return -1;
	snprintf(port, sizeof port, "%d", primary.port);
	snprintf(log, sizeof log, "%s/replica.log", tmp_dir);
	const char *r_args[] = {"--bind",       "127.0.0.1",   "--save",        "",
	                        "--appendonly", "no",          "--logfile",     log,
	                        "--dbfilename", "replica.rdb", "--requirepass", PASSWORD,
	                        "--masterauth", PASSWORD,      "--replicaof",   "127.0.0.1",
	                        port,           NULL};
	if (server_start(&replica, "replica", r_args) != 0)
		return -1;
	char conf[200];
	snprintf(conf, sizeof conf, "%s/sentinel.conf", tmp_dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f,
	        "bind 127.0.0.1\ndir %s\nlogfile %s/sentinel.log\n"
	        "sentinel monitor %s 127.0.0.1 %d 1\n"
	        "sentinel auth-pass %s %s\n"
	        "sentinel down-after-milliseconds %s 1000\n"
	        "sentinel failover-timeout %s 5000\n",
	        tmp_dir, tmp_dir, MASTER_NAME, primary.port, MASTER_NAME, PASSWORD, MASTER_NAME,
	        MASTER_NAME);
	fclose(f);
	const char *s_args[] = {conf, "--sentinel", NULL};
	if (server_start(&sentinel, "sentinel", s_args) != 0)
		return -1;
	/* Ready for a failover: the replica in sync, and known to the sentinel. */
	for (int i = 0; i < 400; i++) {
		redisReply *r = admin(sentinel.port, "SENTINEL replicas %s", MASTER_NAME);
		bool known = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
		if (r)
			freeReplyObject(r);
		if (known && info_has(replica.port, "replication", "master_link_status:up") &&
		    info_field(primary.port, "replication", "connected_slaves:") == 1)
			return 0;
		usleep(50000);
	}
	return -1;
}

/* ---------------------------------------------------------------- loop */

struct fx {
	uv_loop_t loop;
	uv_timer_t tick; /* wakes the loop while a test waits */
	int ready, unready;
};

static void on_state(void *opaque, bool ready)
{
	struct fx *f = opaque;
	if (ready)
		f->ready++;
	else
		f->unready++;
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof *f);
	uv_loop_init(&f->loop);
	uv_timer_init(&f->loop, &f->tick);
	uv_timer_start(&f->tick, on_tick, 10, 10);
}

/* Runs the loop until *flag is true or timeout_ms pass. */
static bool run_until(struct fx *f, const bool *flag, int64_t timeout_ms)
{
	int64_t deadline = time_mono_ms() + timeout_ms;
	while (!*flag && time_mono_ms() < deadline)
		uv_run(&f->loop, UV_RUN_ONCE);
	return *flag;
}

static bool run_until_ready(struct fx *f, struct redis *r, int64_t timeout_ms)
{
	int64_t deadline = time_mono_ms() + timeout_ms;
	while (!redis_ready(r) && time_mono_ms() < deadline)
		uv_run(&f->loop, UV_RUN_ONCE);
	return redis_ready(r);
}

static void fx_close(struct fx *f, struct redis *r)
{
	redis_free(r);
	uv_timer_stop(&f->tick);
	uv_close((uv_handle_t *)&f->tick, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	CHECK_INT(uv_loop_close(&f->loop), 0);
}

struct got {
	bool done;
	bool null;
	long long value;      /* an integer reply */
	long long on_replica; /* the key on the replica when the callback ran */
};

static const char *incr_key = "t:count";

/* Runs the loop until g[0..n) are all done (10 s at most). */
static bool run_until_all(struct fx *f, const struct got *g, int n)
{
	int64_t deadline = time_mono_ms() + 10000;
	for (int i = 0; i < n; i++)
		while (!g[i].done && time_mono_ms() < deadline)
			uv_run(&f->loop, UV_RUN_ONCE);
	for (int i = 0; i < n; i++)
		if (!g[i].done)
			return false;
	return true;
}

static void on_got(void *opaque, redisReply *reply)
{
	struct got *g = opaque;
	g->done = true;
	g->null = reply == NULL;
	g->value = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
	/* What the worker acts on must be on the replica already. */
	g->on_replica = admin_int(replica.port, "GET %s", incr_key);
}

static char sentinel_addr[32];

static struct redis_options sentinel_options(void)
{
	static const char *list[2];
	snprintf(sentinel_addr, sizeof sentinel_addr, "127.0.0.1:%d", sentinel.port);
	list[0] = "127.0.0.1:1"; /* first in order, and refused */
	list[1] = sentinel_addr;
	return (struct redis_options){.password = PASSWORD,
	                              .timeout_ms = 1000,
	                              .sentinels = list,
	                              .n_sentinels = 2,
	                              .sentinel_master = MASTER_NAME,
	                              .min_replicas_acked = 1};
}

static const char incr_lua[] = "return redis.call('INCR', KEYS[1])";
static const char get_lua[] = "return tonumber(redis.call('GET', KEYS[1]) or '0')";

/* A loop and a connection through the sentinel with the durable script
 * incr_lua (its id in *incr), ready. */
static struct redis *open_via_sentinel(struct fx *f, size_t *incr)
{
	fx_init(f);
	struct redis_options opt = sentinel_options();
	struct redis *r = redis_new(&f->loop, &opt, on_state, f);
	*incr = redis_add_script(r, "incr", incr_lua);
	redis_set_durable(r, *incr);
	redis_start(r);
	CHECK(run_until_ready(f, r, 10000));
	return r;
}

/* ---------------------------------------------------------------- RESP */

/* Checks that redis_format_command writes what redisFormatCommandArgv
 * writes for argv (argvlen NULL: C strings), into a buffer reused. */
static void check_format(struct buf *out, int argc, const char **argv, const size_t *argvlen)
{
	char *want = NULL;
	long long want_len = redisFormatCommandArgv(&want, argc, argv, argvlen);
	redis_format_command(out, argc, argv, argvlen);
	CHECK(want_len >= 0);
	CHECK_INT((long long)out->len, want_len);
	CHECK(want && out->len == (size_t)want_len && memcmp(out->data, want, out->len) == 0);
	free(want);
}

TEST(commands_are_formatted_as_hiredis_formats_them)
{
	struct buf out = {0};
	const char *c_strings[] = {"SET", "key:1", "a value with spaces", ""};
	check_format(&out, 4, c_strings, NULL);
	check_format(&out, 1, c_strings, NULL); /* shorter: the buffer is reset */

	/* Binary arguments with lengths: NULs, CR LF, an empty one, lengths of
	 * one to five digits. */
	static char big[12345];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 7);
	const char *bin[] = {"EVALSHA", "a\0b", "\r\n$3\r\n", "", big, "x"};
	const size_t lens[] = {7, 3, 7, 0, sizeof big, 1};
	check_format(&out, 6, bin, lens);
	const size_t lens2[] = {7, 3, 7, 0, 99, 1};
	check_format(&out, 6, bin, lens2);
	/* Many arguments (a batch's): a count of several digits. */
	enum { MANY = 1500 };
	static const char *many[MANY];
	static size_t many_lens[MANY];
	for (int i = 0; i < MANY; i++) {
		many[i] = big + i;
		many_lens[i] = (size_t)i % 40;
	}
	check_format(&out, MANY, many, many_lens);
	buf_free(&out);
}

struct echo {
	bool done;
	redisReply *reply; /* a copy */
};

static void on_echo(void *opaque, redisReply *reply)
{
	struct echo *e = opaque;
	e->done = true;
	e->reply = reply ? redis_reply_copy(reply) : NULL;
}

/* True when reply is an array of n strings equal to want[0..n). */
static bool strings_are(const redisReply *reply, size_t n, const char *const *want,
                        const size_t *lens)
{
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		const redisReply *e = reply->element[i];
		if (e->type != REDIS_REPLY_STRING || e->len != lens[i] ||
		    memcmp(e->str, want[i], lens[i]) != 0)
			return false;
	}
	return true;
}

/* The bytes of every argument reach Redis as given, through a plain
 * command, an eval, and the batch path (many calls of one turn in one
 * EVALSHA, each given back its own keys and arguments). */
TEST(arguments_reach_redis_intact_through_every_path)
{
	struct fx f;
	fx_init(&f);
	struct redis_options opt = {.host = "127.0.0.1",
	                            .port = acl.port,
	                            .username = "alice",
	                            .password = "wonderland-pw",
	                            .timeout_ms = 2000};
	struct redis *r = redis_new(&f.loop, &opt, on_state, &f);
	static const char echo_lua[] = "local out = {}\n"
	                               "for i = 1, #KEYS do out[#out + 1] = KEYS[i] end\n"
	                               "for i = 1, #ARGV do out[#out + 1] = ARGV[i] end\n"
	                               "return out";
	size_t echo = redis_add_script(r, "echo", echo_lua);
	size_t echo_batch = redis_add_batch_script(r, "echo_batch", echo_lua);
	redis_start(r);
	CHECK(run_until_ready(&f, r, 5000));

	/* C strings. */
	struct echo set = {0}, get = {0};
	const char *set_argv[] = {"SET", "t:format", "plain text"};
	const char *get_argv[] = {"GET", "t:format"};
	redis_command(r, on_echo, &set, 3, set_argv, NULL);
	redis_command(r, on_echo, &get, 2, get_argv, NULL);
	CHECK(run_until(&f, &get.done, 5000));
	CHECK(set.reply && set.reply->type == REDIS_REPLY_STATUS);
	CHECK(get.reply && get.reply->type == REDIS_REPLY_STRING &&
	      strcmp(get.reply->str, "plain text") == 0);

	/* Binary, through an eval and the batch path. */
	enum { N = 30 };
	struct echo e[N + 1];
	memset(e, 0, sizeof e);
	char keys[N][16], args[N][24];
	const char *argv[N][3];
	size_t lens[N][3];
	for (int i = 0; i < N; i++) {
		int k = snprintf(keys[i], sizeof keys[i], "t:\r\n%d", i);
		int a = snprintf(args[i], sizeof args[i], "a%cb\r\n$%d", '\0', i);
		argv[i][0] = keys[i];
		lens[i][0] = (size_t)k;
		argv[i][1] = args[i];
		lens[i][1] = (size_t)a;
		argv[i][2] = "";
		lens[i][2] = 0;
		redis_eval_batch(r, echo_batch, on_echo, &e[i], 1, i % 2 ? 3 : 1, argv[i], lens[i]);
	}
	redis_eval(r, echo, on_echo, &e[N], 1, 3, argv[3], lens[3]);
	for (int i = 0; i <= N; i++)
		CHECK(run_until(&f, &e[i].done, 5000));
	for (int i = 0; i < N; i++)
		CHECK(strings_are(e[i].reply, i % 2 ? 3 : 1, argv[i], lens[i]));
	CHECK(strings_are(e[N].reply, 3, argv[3], lens[3]));

	for (int i = 0; i <= N; i++)
		if (e[i].reply)
			freeReplyObject(e[i].reply);
	if (set.reply)
		freeReplyObject(set.reply);
	if (get.reply)
		freeReplyObject(get.reply);
	fx_close(&f, r);
}

/* ---------------------------------------------------------------- ACL */

TEST(acl_user_authenticates_and_a_wrong_password_names_the_user)
{
	char err[512] = "";
	struct redis_options ok = {.host = "127.0.0.1",
	                           .port = acl.port,
	                           .username = "alice",
	                           .password = "wonderland-pw",
	                           .timeout_ms = 2000};
	CHECK_INT(redis_probe(&ok, err, sizeof err), 0);
	redisContext *c = redis_connect_blocking(&ok, err, sizeof err);
	CHECK(c != NULL);
	redisReply *who = c ? redisCommand(c, "ACL WHOAMI") : NULL;
	CHECK(who && who->type == REDIS_REPLY_STRING && strcmp(who->str, "alice") == 0);
	if (who)
		freeReplyObject(who);
	if (c)
		redisFree(c);

	struct redis_options bad = ok;
	bad.password = "not-the-password-xyz";
	CHECK_INT(redis_probe(&bad, err, sizeof err), -1);
	CHECK_HAS(err, "user \"alice\"");
	CHECK_HAS(err, "authentication failed");
	CHECK(strstr(err, "not-the-password-xyz") == NULL);

	/* The default user is off on this server: no user, no entry. */
	struct redis_options none = ok;
	none.username = NULL;
	none.password = NULL;
	CHECK_INT(redis_probe(&none, err, sizeof err), -1);

	/* The loop's connection: ready with the user, never with a wrong password. */
	struct fx f;
	fx_init(&f);
	struct redis *r = redis_new(&f.loop, &ok, on_state, &f);
	redis_start(r);
	CHECK(run_until_ready(&f, r, 5000));
	fx_close(&f, r);

	fx_init(&f);
	r = redis_new(&f.loop, &bad, on_state, &f);
	redis_start(r);
	CHECK(!run_until_ready(&f, r, 600));
	CHECK_INT(f.ready, 0);
	fx_close(&f, r);
}

/* ---------------------------------------------------------------- sentinel */

TEST(blocking_connect_asks_the_sentinels)
{
	struct redis_options opt = sentinel_options();
	char err[1024] = "";
	redisContext *c = redis_connect_blocking(&opt, err, sizeof err);
	CHECK(c != NULL);
	redisReply *role = c ? redisCommand(c, "ROLE") : NULL;
	CHECK(role && role->type == REDIS_REPLY_ARRAY &&
	      strcmp(role->element[0]->str, "master") == 0);
	if (role)
		freeReplyObject(role);
	if (c)
		redisFree(c);

	opt.sentinel_master = "nobody-monitors-this";
	CHECK(redis_connect_blocking(&opt, err, sizeof err) == NULL);
	CHECK_HAS(err, "no sentinel named the redis master \"nobody-monitors-this\"");
	CHECK_HAS(err, "127.0.0.1:1: ");            /* the refused one, with its error */
	CHECK_HAS(err, "does not know the master"); /* the one that answered */

	opt = sentinel_options();
	opt.n_sentinels = 1; /* only the refused one */
	CHECK(redis_connect_blocking(&opt, err, sizeof err) == NULL);
	CHECK_HAS(err, "127.0.0.1:1");
	CHECK(strstr(err, PASSWORD) == NULL);
}

/* Durable calls made in one turn wait for one WAIT between them, and run
 * only once the replica has their writes; reads wait for nothing; without
 * sentinels no WAIT is sent at all. */
TEST(durable_calls_of_a_turn_share_one_wait)
{
	struct fx f;
	fx_init(&f);
	struct redis_options opt = sentinel_options();
	struct redis *r = redis_new(&f.loop, &opt, on_state, &f);
	size_t incr = redis_add_script(r, "incr", incr_lua);
	size_t incr_batch = redis_add_batch_script(r, "incr_batch", incr_lua);
	size_t get = redis_add_script(r, "get", get_lua); /* a read: not durable */
	redis_set_durable(r, incr);
	redis_set_durable(r, incr_batch);
	redis_start(r);
	CHECK(run_until_ready(&f, r, 10000));
	admin_int(primary.port, "DEL %s", incr_key);
	long long waits0 = info_field(primary.port, "commandstats", "cmdstat_wait:calls=");

	enum { N = 40 };
	struct got g[N];
	memset(g, 0, sizeof g);
	const char *argv[] = {incr_key};
	for (int i = 0; i < N; i++)
		if (i % 2)
			redis_eval(r, incr, on_got, &g[i], 1, 1, argv, NULL);
		else
			redis_eval_batch(r, incr_batch, on_got, &g[i], 1, 1, argv, NULL);
	CHECK(run_until_all(&f, g, N));
	long long max = 0;
	for (int i = 0; i < N; i++) {
		CHECK(!g[i].null);
		CHECK(g[i].on_replica >= g[i].value); /* acted on only once replicated */
		if (g[i].value > max)
			max = g[i].value;
	}
	CHECK_INT(max, N);
	CHECK_INT(info_field(primary.port, "commandstats", "cmdstat_wait:calls=") - waits0, 1);

	/* A read: no WAIT. */
	struct got rd = {0};
	redis_eval(r, get, on_got, &rd, 1, 1, argv, NULL);
	CHECK(run_until(&f, &rd.done, 5000));
	CHECK_INT(rd.value, N);
	CHECK_INT(info_field(primary.port, "commandstats", "cmdstat_wait:calls=") - waits0, 1);
	fx_close(&f, r);

	/* Straight to the primary, without sentinels: no WAIT whatever is durable. */
	fx_init(&f);
	struct redis_options plain = {.host = "127.0.0.1",
	                              .port = primary.port,
	                              .password = PASSWORD,
	                              .timeout_ms = 1000,
	                              .min_replicas_acked = 1};
	r = redis_new(&f.loop, &plain, on_state, &f);
	incr = redis_add_script(r, "incr", incr_lua);
	redis_set_durable(r, incr);
	redis_start(r);
	CHECK(run_until_ready(&f, r, 5000));
	waits0 = info_field(primary.port, "commandstats", "cmdstat_wait:calls=");
	struct got p = {0};
	redis_eval(r, incr, on_got, &p, 1, 1, argv, NULL);
	CHECK(run_until(&f, &p.done, 5000));
	CHECK_INT(p.value, N + 1);
	CHECK_INT(info_field(primary.port, "commandstats", "cmdstat_wait:calls=") - waits0, 0);
	fx_close(&f, r);
}

/* The ledger's steps are durable: reserves of one turn are one EVALSHA and
 * one WAIT; the settles of the next turn one more of each. */
TEST(ledger_steps_of_a_turn_share_one_wait)
{
	struct fx f;
	fx_init(&f);
	struct budget_conf budgets[] = {
	        {.name = "b", .limit_nusd = 1000000, .period = PERIOD_NONE, .parent = -1}};
	struct config cfg = {0};
	cfg.redis.key_prefix = "tw:";
	cfg.worker.dedupe_ttl_s = 3600;
	cfg.budgets = budgets;
	cfg.n_budgets = 1;
	struct redis_options opt = sentinel_options();
	struct redis *r = redis_new(&f.loop, &opt, on_state, &f);
	struct ledger *l = ledger_new(r, &cfg);
	redis_start(r);
	CHECK(run_until_ready(&f, r, 10000));
	/* The budgets go first, with their own WAIT. */
	struct got sync = {0};
	ledger_sync_budgets(l, on_got, &sync);
	CHECK(run_until(&f, &sync.done, 5000));
	CHECK(!sync.null);
	long long waits0 = info_field(primary.port, "commandstats", "cmdstat_wait:calls=");
	long long evals0 = info_field(primary.port, "commandstats", "cmdstat_evalsha:calls=");

	enum { N = 25 };
	struct got g[N];
	char ids[N][16];
	memset(g, 0, sizeof g);
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof ids[i], "j%d", i);
		struct ledger_reserve_req req = {.budget = "b",
		                                 .job_id = ids[i],
		                                 .estimate_nusd = 100,
		                                 .lease_ms = 60000,
		                                 .token = ids[i]};
		ledger_reserve(l, &req, on_got, &g[i]);
	}
	CHECK(run_until_all(&f, g, N));
	for (int i = 0; i < N; i++)
		CHECK(!g[i].null);
	CHECK_INT(info_field(primary.port, "commandstats", "cmdstat_evalsha:calls=") - evals0, 1);
	CHECK_INT(info_field(primary.port, "commandstats", "cmdstat_wait:calls=") - waits0, 1);

	memset(g, 0, sizeof g);
	for (int i = 0; i < N; i++)
		ledger_settle_budget(l, "b", ids[i], 1, 90, NULL, NULL, on_got, &g[i]);
	CHECK(run_until_all(&f, g, N));
	for (int i = 0; i < N; i++)
		CHECK(!g[i].null);
	CHECK_INT(info_field(primary.port, "commandstats", "cmdstat_evalsha:calls=") - evals0, 2);
	CHECK_INT(info_field(primary.port, "commandstats", "cmdstat_wait:calls=") - waits0, 2);
	/* The replica holds every charge. */
	CHECK_INT(admin_int(replica.port, "HGET tw:{ledger}:b:b:all spent"), 90 * N);
	fx_close(&f, r);
	ledger_free(l);
}

/* A replica that stops acknowledging: the steps of its turn get NULL (they
 * ran on the primary but may not survive a failover: the caller retries),
 * the connection turns not-ready, and ready again once the replica is back. */
TEST(fewer_replicas_hands_null_and_turns_not_ready)
{
	struct fx f;
	size_t incr;
	struct redis *r = open_via_sentinel(&f, &incr);
	admin_int(primary.port, "DEL %s", incr_key);
	int unready0 = f.unready;

	kill(replica.pid, SIGSTOP);
	struct got g = {0};
	const char *argv[] = {incr_key};
	redis_eval(r, incr, on_got, &g, 1, 1, argv, NULL);
	CHECK(run_until(&f, &g.done, 5000));
	CHECK(g.null); /* not acted on */
	CHECK(!redis_ready(r));
	CHECK_HAS(redis_unready_reason(r), "replicas");
	CHECK_INT(f.unready, unready0 + 1);
	CHECK_INT(admin_int(primary.port, "GET %s", incr_key), 1); /* it ran */

	/* While not ready, calls fail at once. */
	struct got g2 = {0};
	redis_eval(r, incr, on_got, &g2, 1, 1, argv, NULL);
	CHECK(run_until(&f, &g2.done, 5000));
	CHECK(g2.null);

	kill(replica.pid, SIGCONT);
	CHECK(run_until_ready(&f, r, 10000));
	struct got g3 = {0};
	redis_eval(r, incr, on_got, &g3, 1, 1, argv, NULL);
	CHECK(run_until(&f, &g3.done, 5000));
	CHECK(!g3.null);
	CHECK_INT(g3.value, 2);
	CHECK(g3.on_replica >= 2);
	fx_close(&f, r);
}

/* A failover (SENTINEL FAILOVER): the connection leaves the demoted server,
 * asks the sentinel, and is ready on the promoted one; the blocking connect
 * finds it too. Run last: it swaps primary and replica. */
TEST(follows_a_failover)
{
	struct fx f;
	size_t incr;
	struct redis *r = open_via_sentinel(&f, &incr);
	int ready0 = f.ready, unready0 = f.unready;

	/* The sentinel may still hold the replica for down after the last
	 * test stopped it ("NOGOODSLAVE"): ask until it agrees. */
	bool started = false;
	char why[256] = "";
	for (int i = 0; i < 200 && !started; i++) {
		redisReply *fo = admin(sentinel.port, "SENTINEL FAILOVER %s", MASTER_NAME);
		started = fo && fo->type == REDIS_REPLY_STATUS;
		if (fo && fo->type == REDIS_REPLY_ERROR)
			snprintf(why, sizeof why, "%s", fo->str);
		if (fo)
			freeReplyObject(fo);
		if (!started)
			usleep(100000);
	}
	if (!started)
		UNIT_FAIL("SENTINEL FAILOVER: %s", why);
	/* The sentinel turns the old primary into a replica of the new one
	 * only seconds later: do it now. */
	int64_t deadline = time_mono_ms() + 30000;
	bool moved = false;
	while (!moved && time_mono_ms() < deadline) {
		uv_run(&f.loop, UV_RUN_NOWAIT);
		redisReply *a =
		        admin(sentinel.port, "SENTINEL get-master-addr-by-name %s", MASTER_NAME);
		moved = a && a->type == REDIS_REPLY_ARRAY && a->elements == 2 &&
		        atoi(a->element[1]->str) == replica.port;
		if (a)
			freeReplyObject(a);
		if (!moved)
			usleep(20000);
	}
	CHECK(moved);
	admin_int(primary.port, "REPLICAOF 127.0.0.1 %d", replica.port);
	/* Not ready while it moves, then ready on the promoted replica. */
	while ((f.unready == unready0 || !redis_ready(r)) && time_mono_ms() < deadline)
		uv_run(&f.loop, UV_RUN_ONCE);
	CHECK(f.unready > unready0);
	CHECK(f.ready > ready0);
	CHECK(redis_ready(r));
	struct server old = primary;
	primary = replica;
	replica = old;
	CHECK(info_has(primary.port, "replication", "role:master"));

	struct got g = {0};
	const char *argv[] = {"t:after-failover"};
	redis_eval(r, incr, on_got, &g, 1, 1, argv, NULL);
	CHECK(run_until(&f, &g.done, 10000));
	CHECK(!g.null);
	CHECK_INT(admin_int(primary.port, "GET t:after-failover"), 1);
	fx_close(&f, r);

	char err[512];
	struct redis_options opt = sentinel_options();
	redisContext *c = redis_connect_blocking(&opt, err, sizeof err);
	CHECK(c != NULL);
	CHECK(c && c->tcp.port == primary.port);
	if (c)
		redisFree(c);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_set_level(getenv("TEST_REDIS_LOG") ? LOG_DEBUG : LOG_OFF);
	const char *tmp = getenv("PROMPTYARD_TMP") ? getenv("PROMPTYARD_TMP") : "/tmp";
	snprintf(tmp_dir, sizeof tmp_dir, "%s/test_redis.XXXXXX", tmp);
	atexit(servers_stop);
	char log[200];
	if (!mkdtemp(tmp_dir)) {
		tmp_dir[0] = '\0';
		goto fail;
	}
	snprintf(log, sizeof log, "%s/acl.log", tmp_dir);
	const char *acl_args[] = {"--bind", "127.0.0.1",      "--save", "",       "--appendonly",
	                          "no",     "--logfile",      log,      "--user", "alice",
	                          "on",     ">wonderland-pw", "~*",     "&*",     "+@all",
	                          "--user", "default",        "off",    NULL};
	if (server_start(&acl, "acl", acl_args) != 0 || start_replicated() != 0)
		goto fail;
	RUN(commands_are_formatted_as_hiredis_formats_them);
	RUN(arguments_reach_redis_intact_through_every_path);
	RUN(acl_user_authenticates_and_a_wrong_password_names_the_user);
	RUN(blocking_connect_asks_the_sentinels);
	RUN(durable_calls_of_a_turn_share_one_wait);
	RUN(ledger_steps_of_a_turn_share_one_wait);
	RUN(fewer_replicas_hands_null_and_turns_not_ready);
	RUN(follows_a_failover);
	int rc = unit_done();
	servers_stop();
	return rc;
fail:
	unit_cur = "redis_servers";
	UNIT_FAIL("cannot start the redis servers (see %s)", tmp_dir);
	unit_failed++;
	return unit_done();
}
