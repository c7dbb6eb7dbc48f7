/* promptyard dev: the embedded stack of SPEC §12.
 *
 *   promptyard dev [--jobs FILE] [--count N] [--timeout S] [--keep] [--dashboard ADDR]
 *
 * Needs no outside service. In one temporary directory it starts
 *   - Kafka: librdkafka's mock cluster, in this process, with the topics;
 *   - Redis: a redis-server child on a free loopback port (no persistence);
 *   - providers: the simulator, a child speaking the OpenAI, Anthropic and
 *     Gemini wire formats with 200-1500 ms latency, realistic usage and a
 *     few failures (about 2% 503/529/429, Retry-After on the 429s; a fifth
 *     of Gemini's structured answers broken);
 *   - a worker (promptyard-worker) on a generated config: three providers on
 *     the simulator, seven models across them (images, PDFs, schemas, tools
 *     and reasoning in each format), a "demo" budget under an "org" budget,
 *     and a rule sending code reviews to the stronger models;
 * then submits the sample jobs (deploy/samples/jobs.jsonl, documents
 * included, or --jobs FILE; strategies rotated over the jobs that name
 * none), shows progress as the results come in, stops the worker (it
 * drains and commits), prints the results by status and code, what the
 * rich jobs brought back (parsed JSON, tool calls, refusals, broken
 * answers), the spend per model and per budget, and stops
 * everything it started. With --dashboard ADDR it also serves `promptyard
 * dashboard` on the stack from the start, and after the summary keeps Redis
 * and the dashboard up until Ctrl-C, for a look (or a screenshot) at the
 * finished run.
 *
 * The simulator and the worker are the programs built next to this one
 * (bin/fake_provider is the test suite's fake provider: one implementation
 * of the three wire formats serves both the tests and the demo, instead of a
 * second copy compiled in here). Children run in their own process groups, so
 * a Ctrl-C on the terminal reaches only this process, which then stops them
 * in order (worker first, so it can drain); a second Ctrl-C kills them at
 * once. Each child also gets PR_SET_PDEATHSIG, so even a SIGKILL of this
 * process leaves no child running. The temporary directory is removed on
 * every exit path that runs (not after SIGKILL), unless --keep. */
#include "cli.h"

#include "buf.h"
#include "timeutil.h"

#include <librdkafka/rdkafka_mock.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEV_PARTITIONS    4
#define START_TIMEOUT_MS  15000
#define DRAIN_TIMEOUT_MS  8000 /* the worker's worker.drain_timeout_ms */
#define DEFAULT_TIMEOUT_S 600
#define STOP_WAIT_MS      5000

extern char **environ;

static const char *const strategies[] = {"cheapest", "balanced", "fastest",
                                         "reliable", "auto",     NULL};

/* ---------------------------------------------------------------- signals */

/* 1: stop cleanly (drain the worker); 2 or more: kill the children at once. */
static volatile sig_atomic_t signals_seen;

static void on_signal(int sig)
{
	(void)sig;
	signals_seen++;
	cli_interrupted = 1;
}

static void catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---------------------------------------------------------------- children */

struct child {
	const char *name;
	pid_t pid; /* 0: not running */
	int status;
	char log[PATH_MAX];
};

/* Starts path with argv and envp (both NULL-terminated, prepared by the
 * caller: only async-signal-safe calls happen between fork and exec, since
 * librdkafka's threads may hold locks). stdout goes to out_fd (-1:
 * /dev/null), stderr to the file c->log. Returns 0 or -1 with errno. */
static int spawn(struct child *c, const char *path, char *const argv[], char *const envp[],
                 int out_fd)
{
	int err_fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	pid_t parent = getpid();
	if (err_fd < 0 || null_fd < 0)
		goto fail;
	pid_t pid = fork();
	if (pid < 0)
		goto fail;
	if (pid == 0) {
		/* Its own process group: a terminal's Ctrl-C is for the parent,
		 * which stops the children in order. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127); /* the parent died before prctl */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		for (int s = 1; s < NSIG; s++)
			sigaction(s, &dfl, NULL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(null_fd, STDIN_FILENO);
		dup2(out_fd >= 0 ? out_fd : null_fd, STDOUT_FILENO);
		dup2(err_fd, STDERR_FILENO);
		execve(path, argv, envp);
		_exit(127);
	}
	setpgid(pid, pid); /* also from here: no race with a kill of the group */
	c->pid = pid;
	close(err_fd);
	close(null_fd);
	return 0;
fail:
	if (err_fd >= 0)
		close(err_fd);
	if (null_fd >= 0)
		close(null_fd);
	return -1;
}

/* Has the child exited? Reaps it if so. */
static bool child_exited(struct child *c)
{
	if (!c->pid)
		return true;
	pid_t got = waitpid(c->pid, &c->status, WNOHANG);
	if (got == c->pid || (got < 0 && errno == ECHILD)) {
		c->pid = 0;
		return true;
	}
	return false;
}

static const char *exit_text(const struct child *c, char *out, size_t out_size)
{
	if (WIFEXITED(c->status))
		snprintf(out, out_size, "exited with status %d", WEXITSTATUS(c->status));
	else if (WIFSIGNALED(c->status))
		snprintf(out, out_size, "killed by signal %d", WTERMSIG(c->status));
	else
		snprintf(out, out_size, "ended");
	return out;
}

/* Prints the last lines of a child's log (why it failed). */
static void show_log_tail(const struct child *c, int lines)
{
	FILE *f = fopen(c->log, "rb");
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	long from = size > 8192 ? size - 8192 : 0;
	fseek(f, from, SEEK_SET);
	char *text = xcalloc(8193, 1);
	size_t n = fread(text, 1, 8192, f);
	fclose(f);
	text[n] = '\0';
	const char *p = text + n;
	for (int seen = 0; p > text && seen <= lines; p--)
		if (p[-1] == '\n')
			seen++;
	fprintf(stderr, "---- last lines of %s:\n%s%s----\n", c->log, p,
	        n && text[n - 1] != '\n' ? "\n" : "");
	free(text);
}

/* SIGTERM, wait up to wait_ms (less once a second signal came), SIGKILL. */
static void child_stop(struct child *c, int64_t wait_ms)
{
	if (child_exited(c))
		return;
	kill(c->pid, signals_seen > 1 ? SIGKILL : SIGTERM);
	int64_t until = time_mono_ms() + wait_ms;
	while (!child_exited(c)) {
		if (time_mono_ms() >= until || signals_seen > 1) {
			kill(-c->pid, SIGKILL); /* the group: nothing it started survives */
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &c->status, 0);
			c->pid = 0;
			return;
		}
		poll(NULL, 0, 20);
	}
}

/* ---------------------------------------------------------------- helpers */

/* A loopback TCP port free right now (the caller retries on the rare race). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* The executable's directory (the worker and the simulator are next to it). */
static int exe_dir(char *out, size_t out_size)
{
	char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
	if (n <= 0)
		return -1;
	path[n] = '\0';
	char *slash = strrchr(path, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	snprintf(out, out_size, "%s", path);
	return 0;
}

/* name looked up in PATH into out; 0 or -1. */
static int find_on_path(const char *name, char *out, size_t out_size)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t len = colon ? (size_t)(colon - path) : strlen(path);
		snprintf(out, out_size, "%.*s/%s", (int)len, path, name);
		if (len && access(out, X_OK) == 0)
			return 0;
		path += len + (colon ? 1 : 0);
	}
	return -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("dev: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---------------------------------------------------------------- the stack */

struct dev {
	char dir[PATH_MAX];
	char bin[PATH_MAX];
	char cfg_path[PATH_MAX];
	bool keep;

	rd_kafka_t *mock_rk;
	rd_kafka_mock_cluster_t *mc;
	char bootstrap[256];

	struct child redis, sim, worker, dashboard;
	int redis_port, sim_port, metrics_port;
	const char *dashboard_listen; /* --dashboard, or NULL */
	char dashboard_url[300];
	struct config *cfg;
};

static void mock_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	(void)level;
	(void)fac;
	(void)buf; /* the mock cluster's chatter is not the user's business */
}

/* librdkafka 2.0.2's mock cluster waits 3 s before a group's first join
 * completes; newer versions export a setter, looked up at run time (as
 * tests/tools/mockcluster.c does). */
static void lower_rebalance_delay(rd_kafka_mock_cluster_t *mc)
{
	void (*set_delay)(rd_kafka_mock_cluster_t *, int) = NULL;
	void *sym = dlsym(RTLD_DEFAULT, "rd_kafka_mock_group_initial_rebalance_delay_ms");
	if (!sym)
		return;
	memcpy(&set_delay, &sym, sizeof set_delay);
	set_delay(mc, 100);
}

static int start_kafka(struct dev *d)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, mock_log);
	/* The cluster needs a client instance for its bookkeeping. */
	d->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (!d->mock_rk) {
		rd_kafka_conf_destroy(conf);
		say("kafka: %s", err);
		return -1;
	}
	d->mc = rd_kafka_mock_cluster_new(d->mock_rk, 1);
	if (!d->mc) {
		say("kafka: cannot start librdkafka's mock cluster");
		return -1;
	}
	lower_rebalance_delay(d->mc);
	const char *topics[] = {"llm.jobs", "llm.results", "llm.costs", "llm.dlq"};
	for (size_t i = 0; i < 4; i++) {
		rd_kafka_resp_err_t e =
		        rd_kafka_mock_topic_create(d->mc, topics[i], DEV_PARTITIONS, 1);
		if (e) {
			say("kafka: topic %s: %s", topics[i], rd_kafka_err2str(e));
			return -1;
		}
	}
	snprintf(d->bootstrap, sizeof d->bootstrap, "%s", rd_kafka_mock_cluster_bootstraps(d->mc));
	return 0;
}

static bool redis_pings(int port)
{
	struct timeval tv = {0, 200000};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	bool ok = false;
	if (c && !c->err) {
		redisReply *r = redisCommand(c, "PING");
		ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
		if (r)
			freeReplyObject(r);
	}
	if (c)
		redisFree(c);
	return ok;
}

static int start_redis(struct dev *d)
{
	char path[PATH_MAX];
	if (find_on_path("redis-server", path, sizeof path) != 0) {
		say("redis-server is not on PATH (Debian: apt-get install redis-server)");
		return -1;
	}
	snprintf(d->redis.log, sizeof d->redis.log, "%.3800s/redis.log", d->dir);
	for (int attempt = 0; attempt < 3; attempt++) {
		char port[16];
		d->redis_port = free_port();
		snprintf(port, sizeof port, "%d", d->redis_port);
		/* No persistence: the demo's ledger lives and dies with it. */
		char *argv[] = {path,        "--port",       port,         "--bind",
		                "127.0.0.1", "--dir",        d->dir,       "--save",
		                "",          "--appendonly", "no",         "--daemonize",
		                "no",        "--logfile",    d->redis.log, NULL};
		if (spawn(&d->redis, path, argv, environ, -1) != 0) {
			say("redis-server: %s", strerror(errno));
			return -1;
		}
		int64_t until = time_mono_ms() + START_TIMEOUT_MS;
		while (!cli_interrupted && time_mono_ms() < until) {
			if (redis_pings(d->redis_port))
				return 0;
			if (child_exited(&d->redis))
				break; /* the port was taken meanwhile: try another */
			poll(NULL, 0, 50);
		}
		if (cli_interrupted || d->redis.pid)
			break;
	}
	child_stop(&d->redis, 1000);
	say("redis-server did not start");
	show_log_tail(&d->redis, 10);
	return -1;
}

/* The simulator's behaviour: per provider, latency 200-1500 ms, realistic
 * output sizes, and every Nth call failing with a retryable status; Gemini
 * also breaks a fifth of its structured answers (a required field missing
 * or of the wrong type), which the worker takes for invalid_output: charged,
 * and retried on the next model. */
static const char sim_rules[] =
        "[\n"
        " {\"prefix\": \"/openai/v1\", \"latency_ms\": 200, \"jitter_ms\": 1300,\n"
        "  \"output_tokens\": 180, \"fail_every\": 50, \"status\": 503,\n"
        "  \"comment\": \"2% overloaded\"},\n"
        " {\"prefix\": \"/anthropic/v1\", \"latency_ms\": 250, \"jitter_ms\": 1250,\n"
        "  \"output_tokens\": 220, \"cached_tokens\": 0, \"fail_every\": 40, \"status\": 529,\n"
        "  \"comment\": \"2.5% overloaded_error\"},\n"
        " {\"prefix\": \"/gemini/v1beta\", \"latency_ms\": 200, \"jitter_ms\": 1000,\n"
        "  \"output_tokens\": 150, \"fail_every\": 45, \"status\": 429, \"retry_after_s\": 1,\n"
        "  \"break_schema_share\": 0.2,\n"
        "  \"comment\": \"2% rate limited, Retry-After 1 s; a fifth of schema answers broken\"}\n"
        "]\n";

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int rc = fputs(text, f) < 0 ? -1 : 0;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

/* Reads the first line a child prints on fd within the start timeout.
 * Returns 0, or -1 (it exited, said nothing, or the line is too long). */
static int read_first_line(int fd, struct child *c, char *line, size_t size)
{
	size_t n = 0;
	int64_t until = time_mono_ms() + START_TIMEOUT_MS;
	while (n < size - 1 && time_mono_ms() < until && !cli_interrupted) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0) {
			if (child_exited(c))
				return -1;
			continue;
		}
		ssize_t got = read(fd, line + n, 1);
		if (got <= 0)
			return -1;
		if (line[n] == '\n') {
			line[n] = '\0';
			return 0;
		}
		n++;
	}
	return -1;
}

/* Reads "port=N" from the simulator's stdout. */
static int read_port(int fd, struct child *c)
{
	char line[64];
	if (read_first_line(fd, c, line, sizeof line) != 0 || strncmp(line, "port=", 5) != 0)
		return -1;
	return atoi(line + 5);
}

static int start_simulator(struct dev *d)
{
	char path[PATH_MAX], rules[PATH_MAX];
	snprintf(path, sizeof path, "%.3800s/fake_provider", d->bin);
	snprintf(rules, sizeof rules, "%.3800s/simulator.json", d->dir);
	snprintf(d->sim.log, sizeof d->sim.log, "%.3800s/simulator.log", d->dir);
	if (access(path, X_OK) != 0) {
		say("the provider simulator %s is missing (it is built by make, next to "
		    "promptyard)",
		    path);
		return -1;
	}
	if (write_file(rules, sim_rules) != 0) {
		say("%s: %s", rules, strerror(errno));
		return -1;
	}
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	char *argv[] = {path, "--port", "0", "--rules", rules, NULL};
	int rc = spawn(&d->sim, path, argv, environ, fds[1]);
	close(fds[1]);
	if (rc == 0)
		d->sim_port = read_port(fds[0], &d->sim);
	close(fds[0]);
	if (rc != 0 || d->sim_port <= 0) {
		say("the provider simulator did not start");
		show_log_tail(&d->sim, 10);
		return -1;
	}
	return 0;
}

/* The demo's catalog: the three wire formats, cheap and strong models on
 * each, prices as deploy/models.cfg has them (the simulator bills like the
 * real APIs), and the capabilities of SPEC §13 in every format, so that the
 * document jobs (images, PDFs, schemas, tools, reasoning) have models in
 * each. Anthropic has no JSON mode, so extraction jobs (json_object) go to
 * OpenAI or Gemini; code reviews go to Claude by the rule below. */
struct dev_model {
	const char *name, *provider, *id;
	const char *input_usd, *cached_usd, *output_usd; /* per Mtok, as written in a config */
	long context_tokens;
	const char *quality;
	int latency_ms;
	const char *caps;
};

#define DOCS "\"json_schema\", \"tools\", \"vision\", \"pdf\""
static const struct dev_model dev_models[] = {
        {"gpt-4o-mini", "openai-sim", "gpt-4o-mini", "0.15", "0.075", "0.60", 128000, "0.62", 400,
         "\"json\", " DOCS},
        {"gpt-4o", "openai-sim", "gpt-4o", "2.50", "1.25", "10.00", 128000, "0.80", 1000,
         "\"json\", " DOCS},
        {"o4-mini", "openai-sim", "o4-mini", "1.10", "0.275", "4.40", 200000, "0.84", 2500,
         "\"json\", " DOCS ", \"reasoning\", \"long_context\""},
        {"claude-haiku", "anthropic-sim", "claude-3-5-haiku-latest", "0.80", "0.08", "4.00", 200000,
         "0.66", 450, DOCS ", \"long_context\""},
        {"claude-sonnet", "anthropic-sim", "claude-sonnet-4-0", "3.00", "0.30", "15.00", 200000,
         "0.86", 1200, DOCS ", \"reasoning\", \"long_context\""},
        {"gemini-flash", "gemini-sim", "gemini-2.0-flash", "0.10", "0.025", "0.40", 1048576, "0.60",
         600, "\"json\", " DOCS ", \"long_context\""},
        {"gemini-pro", "gemini-sim", "gemini-2.5-pro", "1.25", "0.31", "10.00", 1048576, "0.84",
         1500, "\"json\", " DOCS ", \"reasoning\", \"long_context\""},
};
#undef DOCS

static const struct {
	const char *name, *type, *path, *key_env;
} dev_providers[] = {
        {"openai-sim", "openai", "/openai/v1", "PROMPTYARD_DEV_OPENAI_KEY"},
        {"anthropic-sim", "anthropic", "/anthropic/v1", "PROMPTYARD_DEV_ANTHROPIC_KEY"},
        {"gemini-sim", "gemini", "/gemini/v1beta", "PROMPTYARD_DEV_GEMINI_KEY"},
};

/* The simulator checks no key; the worker insists on having them. */
static char *const dev_keys[] = {"PROMPTYARD_DEV_OPENAI_KEY=sk-dev-simulator",
                                 "PROMPTYARD_DEV_ANTHROPIC_KEY=sk-ant-dev-simulator",
                                 "PROMPTYARD_DEV_GEMINI_KEY=dev-simulator"};

static int write_config(struct dev *d)
{
	struct buf b = {0};
	d->metrics_port = free_port();
	buf_puts(&b, "# Generated by promptyard dev: everything on loopback, nothing persisted.\n");
	buf_printf(&b,
	           "kafka: { brokers = \"%s\"; group = \"promptyard-dev\";\n"
	           "  input_topics = [\"llm.jobs\"]; results_topic = \"llm.results\";\n"
	           "  costs_topic = \"llm.costs\"; dlq_topic = \"llm.dlq\"; };\n",
	           d->bootstrap);
	buf_printf(&b,
	           "redis: { host = \"127.0.0.1\"; port = %d; key_prefix = \"dev:\"; "
	           "timeout_ms = 1000; };\n",
	           d->redis_port);
	buf_printf(&b,
	           "worker: { max_in_flight = 256; default_strategy = \"balanced\";\n"
	           "  default_budget = \"demo\"; max_attempts = 4; drain_timeout_ms = %d;\n"
	           "  metrics_listen = \"127.0.0.1:%d\"; log_level = \"info\"; };\n",
	           DRAIN_TIMEOUT_MS, d->metrics_port);
	buf_puts(&b, "router: { balanced_slack = 0.10; window_s = 300; breaker_failures = 5;\n"
	             "  breaker_cooldown_ms = 30000; auto_floor = 0.3; };\n");
	buf_puts(&b, "providers = (\n");
	for (size_t i = 0; i < sizeof dev_providers / sizeof *dev_providers; i++)
		buf_printf(
		        &b,
		        "  { name = \"%s\"; type = \"%s\"; base_url = \"http://127.0.0.1:%d%s\";\n"
		        "    api_key_env = \"%s\"; timeout_ms = 20000; }%s\n",
		        dev_providers[i].name, dev_providers[i].type, d->sim_port,
		        dev_providers[i].path, dev_providers[i].key_env,
		        i + 1 < sizeof dev_providers / sizeof *dev_providers ? "," : "");
	buf_puts(&b, ");\nmodels = (\n");
	for (size_t i = 0; i < sizeof dev_models / sizeof *dev_models; i++) {
		const struct dev_model *m = &dev_models[i];
		buf_printf(&b,
		           "  { name = \"%s\"; provider = \"%s\"; id = \"%s\";\n"
		           "    input_usd_per_mtok = %s; cached_input_usd_per_mtok = %s; "
		           "output_usd_per_mtok = %s;\n"
		           "    context_tokens = %ld; default_max_tokens = 512; quality = %s; "
		           "latency_ms = %d;\n"
		           "    capabilities = [%s]; }%s\n",
		           m->name, m->provider, m->id, m->input_usd, m->cached_usd, m->output_usd,
		           m->context_tokens, m->quality, m->latency_ms, m->caps,
		           i + 1 < sizeof dev_models / sizeof *dev_models ? "," : "");
	}
	buf_puts(&b,
	         ");\n"
	         "budgets = (\n"
	         "  { name = \"org\"; limit_usd = 50.0; period = \"month\"; parent = \"\"; },\n"
	         "  { name = \"demo\"; limit_usd = 5.0; period = \"day\"; parent = \"org\"; }\n"
	         ");\n"
	         "rules = (\n"
	         "  { name = \"code-review\"; metadata = { task = \"code_review\"; };\n"
	         "    models = [\"claude-sonnet\", \"claude-haiku\"]; strategy = \"balanced\"; }\n"
	         ");\n");
	snprintf(d->cfg_path, sizeof d->cfg_path, "%.3800s/promptyard.cfg", d->dir);
	int rc = write_file(d->cfg_path, b.data);
	buf_free(&b);
	if (rc != 0) {
		say("%s: %s", d->cfg_path, strerror(errno));
		return -1;
	}
	char err[1024];
	d->cfg = config_load(d->cfg_path, 0, err, sizeof err);
	if (!d->cfg) {
		say("generated config: %s", err);
		return -1;
	}
	return 0;
}

static int start_worker(struct dev *d)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%.3800s/promptyard-worker", d->bin);
	snprintf(d->worker.log, sizeof d->worker.log, "%.3800s/worker.log", d->dir);
	if (access(path, X_OK) != 0) {
		say("%s is missing (make builds it next to promptyard)", path);
		return -1;
	}
	/* The environment plus the simulator's keys. */
	size_t n = 0;
	while (environ[n])
		n++;
	char **envp = xcalloc(n + 4, sizeof *envp);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "PROMPTYARD_DEV_", 15) != 0)
			envp[k++] = environ[i];
	for (size_t i = 0; i < sizeof dev_keys / sizeof *dev_keys; i++)
		envp[k++] = dev_keys[i];
	char *argv[] = {path, "-c", d->cfg_path, NULL};
	int rc = spawn(&d->worker, path, argv, envp, -1);
	free(envp);
	if (rc != 0) {
		say("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* `promptyard dashboard` (this program) on the stack's config, at
 * --dashboard; its URL from the line it prints once it listens. */
static int start_dashboard(struct dev *d)
{
	char path[PATH_MAX], line[320];
	snprintf(path, sizeof path, "%.3800s/promptyard", d->bin);
	snprintf(d->dashboard.log, sizeof d->dashboard.log, "%.3800s/dashboard.log", d->dir);
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	char *argv[] = {path,        "dashboard", "-c",
	                d->cfg_path, "--listen",  (char *)d->dashboard_listen,
	                NULL};
	int rc = spawn(&d->dashboard, path, argv, environ, fds[1]);
	close(fds[1]);
	if (rc == 0)
		rc = read_first_line(fds[0], &d->dashboard, line, sizeof line);
	close(fds[0]);
	if (rc != 0 || strncmp(line, "dashboard: ", 11) != 0) {
		say("the dashboard did not start on %s", d->dashboard_listen);
		show_log_tail(&d->dashboard, 10);
		return -1;
	}
	snprintf(d->dashboard_url, sizeof d->dashboard_url, "%.280s", line + 11);
	return 0;
}

/* --dashboard: the finished run stays on view until a signal. */
static void linger(struct dev *d)
{
	say("the dashboard stays up at %s with Redis at 127.0.0.1:%d: Ctrl-C stops everything",
	    d->dashboard_url, d->redis_port);
	while (!cli_interrupted && !child_exited(&d->dashboard))
		poll(NULL, 0, 200);
	if (!cli_interrupted)
		say("the dashboard exited");
}

static void stop_all(struct dev *d)
{
	if (d->worker.pid) {
		say("stopping the worker (it drains in-flight jobs)");
		child_stop(&d->worker, DRAIN_TIMEOUT_MS + 5000);
	}
	child_stop(&d->dashboard, STOP_WAIT_MS);
	child_stop(&d->sim, STOP_WAIT_MS);
	child_stop(&d->redis, STOP_WAIT_MS);
	if (d->mc)
		rd_kafka_mock_cluster_destroy(d->mc);
	d->mc = NULL;
	if (d->mock_rk)
		rd_kafka_destroy(d->mock_rk);
	d->mock_rk = NULL;
	config_free(d->cfg);
	d->cfg = NULL;
	if (d->dir[0]) {
		if (d->keep)
			say("kept %s", d->dir);
		else
			rm_tree(d->dir);
	}
}

/* ---------------------------------------------------------------- jobs */

/* The sample file: --jobs, else deploy/samples/jobs.jsonl near the binary
 * (bin/, build/san/bin/) or installed under share/. */
static int find_samples(const char *bin, char *out, size_t out_size)
{
	static const char *const rel[] = {
	        "../deploy/samples/jobs.jsonl", "../../deploy/samples/jobs.jsonl",
	        "../../../deploy/samples/jobs.jsonl", "../share/promptyard/samples/jobs.jsonl"};
	for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
		char p[PATH_MAX + 64];
		snprintf(p, sizeof p, "%s/%s", bin, rel[i]);
		if (access(p, R_OK) == 0 && realpath(p, out)) {
			(void)out_size;
			return 0;
		}
	}
	return -1;
}

/* Takes the first count jobs, or repeats the file with ids suffixed "~2",
 * "~3"... until count. */
static void fit_count(struct cli_jobs *jobs, size_t count)
{
	if (!count || !jobs->n)
		return;
	size_t have = jobs->n;
	for (size_t i = count; i < jobs->n; i++) {
		free(jobs->v[i].value);
		free(jobs->v[i].id);
	}
	if (count <= have) {
		jobs->n = count;
		return;
	}
	jobs->v = xrealloc(jobs->v, count * sizeof *jobs->v);
	jobs->cap = count;
	for (size_t i = have; i < count; i++) {
		const struct cli_job *src = &jobs->v[i % have];
		json_t *obj = json_loadb(src->value, src->len, 0, NULL);
		char id[256];
		snprintf(id, sizeof id, "%.200s~%zu", src->id, i / have + 1);
		json_object_set_new(obj, "id", json_string(id));
		struct cli_job *j = &jobs->v[i];
		j->value = json_dumps(obj, JSON_COMPACT);
		j->len = strlen(j->value);
		j->id = xstrdup(id);
		j->line = src->line;
		json_decref(obj);
	}
	jobs->n = count;
}

/* ---------------------------------------------------------------- results */

/* The ids of the jobs that ask for a json_schema answer (a new object). */
static json_t *schema_job_ids(const struct cli_jobs *jobs)
{
	json_t *ids = json_object();
	for (size_t i = 0; i < jobs->n; i++) {
		json_t *j = json_loadb(jobs->v[i].value, jobs->v[i].len, 0, NULL);
		const char *type = json_string_value(
		        json_object_get(json_object_get(j, "response_format"), "type"));
		if (type && strcmp(type, "json_schema") == 0)
			json_object_set_new(ids, jobs->v[i].id, json_true());
		json_decref(j);
	}
	return ids;
}

struct tally {
	json_t *seen; /* id -> true once counted */
	size_t want, have, ok, errors;
	/* What rich jobs (SPEC §13) brought back. */
	json_t *schema_ids;          /* ids of the json_schema jobs submitted */
	size_t parsed, validated;    /* results with parsed; those of json_schema jobs */
	size_t tool_calls, refusals; /* results with tool calls; with a refusal */
	uint64_t invalid_outputs;    /* attempts whose answer broke its format */
	json_t *by_code;             /* code -> count */
	json_t *by_model;            /* answering model -> count */
	uint64_t attempts, failovers;
	int64_t *latencies; /* ms, of ok results */
	size_t n_lat;
	struct dev *d;
	bool worker_died;
	struct cli_progress prog;
};

static void bump(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	json_object_set_new(obj, key, json_integer(v ? json_integer_value(v) + 1 : 1));
}

static int on_result(void *opaque, const rd_kafka_message_t *m)
{
	struct tally *t = opaque;
	json_t *r = json_loadb(m->payload ? m->payload : "", m->len, 0, NULL);
	const char *id = json_string_value(json_object_get(r, "id"));
	const char *status = json_string_value(json_object_get(r, "status"));
	if (id && status && !json_object_get(t->seen, id)) {
		json_object_set_new_nocheck(t->seen, id, json_true());
		t->have++;
		json_t *attempts = json_object_get(r, "attempts");
		size_t n = json_array_size(attempts);
		t->attempts += n;
		t->failovers += n > 1;
		for (size_t i = 0; i < n; i++) {
			const char *o = json_string_value(
			        json_object_get(json_array_get(attempts, i), "outcome"));
			t->invalid_outputs += o && strcmp(o, "invalid_output") == 0;
		}
		/* The worker validated parsed against the job's schema (SPEC
		 * §13): an ok json_schema job has it, or it would not be ok. */
		if (json_object_get(r, "parsed")) {
			t->parsed++;
			t->validated += json_object_get(t->schema_ids, id) != NULL;
		}
		t->tool_calls += json_array_size(json_object_get(r, "tool_calls")) > 0;
		t->refusals += json_is_string(json_object_get(r, "refusal"));
		if (strcmp(status, "ok") == 0) {
			t->ok++;
			const char *model = json_string_value(json_object_get(r, "model"));
			bump(t->by_model, model ? model : "?");
			t->latencies[t->n_lat++] =
			        json_integer_value(json_object_get(r, "latency_ms"));
		} else {
			t->errors++;
			const char *code = json_string_value(
			        json_object_get(json_object_get(r, "error"), "code"));
			bump(t->by_code, code ? code : "?");
			snprintf(t->prog.extra, sizeof t->prog.extra, "%zu error%s", t->errors,
			         t->errors == 1 ? "" : "s");
		}
	}
	json_decref(r);
	cli_progress_update(&t->prog, t->have);
	return t->have >= t->want;
}

static int on_tick(void *opaque)
{
	struct tally *t = opaque;
	cli_progress_update(&t->prog, t->have);
	if (child_exited(&t->d->worker)) {
		t->worker_died = true;
		return 1;
	}
	return 0;
}

struct spend {
	json_t *seen;    /* "job_id\nattempt" */
	json_t *models;  /* model -> {"provider", "nusd", "calls", "in", "out"} */
	json_t *budgets; /* budget -> nusd */
	int64_t total;
};

static int on_cost(void *opaque, const rd_kafka_message_t *m)
{
	struct spend *s = opaque;
	json_t *c = json_loadb(m->payload ? m->payload : "", m->len, 0, NULL);
	const char *job = json_string_value(json_object_get(c, "job_id"));
	const char *model = json_string_value(json_object_get(c, "model"));
	const char *budget = json_string_value(json_object_get(c, "budget"));
	json_t *nusd = json_object_get(c, "cost_nusd");
	if (job && model && budget && json_is_integer(nusd)) {
		char key[512];
		snprintf(key, sizeof key, "%.400s\n%lld", job,
		         (long long)json_integer_value(json_object_get(c, "attempt")));
		if (!json_object_get(s->seen, key)) {
			json_object_set_new_nocheck(s->seen, key, json_true());
			json_int_t v = json_integer_value(nusd);
			json_t *row = json_object_get(s->models, model);
			if (!row) {
				const char *prov =
				        json_string_value(json_object_get(c, "provider"));
				row = json_pack("{s:s, s:I, s:I, s:I, s:I}", "provider",
				                prov ? prov : "", "nusd", (json_int_t)0, "calls",
				                (json_int_t)0, "in", (json_int_t)0, "out",
				                (json_int_t)0);
				json_object_set_new(s->models, model, row);
			}
			json_object_set_new(
			        row, "nusd",
			        json_integer(json_integer_value(json_object_get(row, "nusd")) + v));
			json_object_set_new(
			        row, "calls",
			        json_integer(json_integer_value(json_object_get(row, "calls")) +
			                     1));
			json_object_set_new(
			        row, "in",
			        json_integer(
			                json_integer_value(json_object_get(row, "in")) +
			                json_integer_value(json_object_get(c, "input_tokens"))));
			json_object_set_new(
			        row, "out",
			        json_integer(
			                json_integer_value(json_object_get(row, "out")) +
			                json_integer_value(json_object_get(c, "output_tokens"))));
			json_t *b = json_object_get(s->budgets, budget);
			json_object_set_new(s->budgets, budget,
			                    json_integer((b ? json_integer_value(b) : 0) + v));
			s->total += v;
		}
	}
	json_decref(c);
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void print_summary(struct dev *d, struct tally *t, struct spend *s, bool have_spend,
                          double seconds)
{
	char a[40], b[40];
	const char *key;
	json_t *v;
	printf("\npromptyard dev: %zu of %zu jobs finished in %.1f s: %zu ok, %zu error\n", t->have,
	       t->want, seconds, t->ok, t->errors);
	json_object_foreach (t->by_code, key, v) {
		printf("  error %-22s %lld\n", key, (long long)json_integer_value(v));
	}
	printf("  provider attempts %llu (%llu job%s failed over to another model)\n",
	       (unsigned long long)t->attempts, (unsigned long long)t->failovers,
	       t->failovers == 1 ? "" : "s");
	printf("  structured output: %zu with parsed JSON (%zu validated against the job's "
	       "json_schema), %zu with tool calls, %zu refusal%s\n",
	       t->parsed, t->validated, t->tool_calls, t->refusals, t->refusals == 1 ? "" : "s");
	printf("  answers that broke their schema: %llu (invalid_output: charged, retried)\n",
	       (unsigned long long)t->invalid_outputs);
	if (t->n_lat) {
		qsort(t->latencies, t->n_lat, sizeof *t->latencies, cmp_i64);
		printf("  job latency p50 %lld ms, p95 %lld ms, max %lld ms\n",
		       (long long)t->latencies[t->n_lat / 2],
		       (long long)
		               t->latencies[(t->n_lat * 95) / 100 < t->n_lat ? (t->n_lat * 95) / 100
		                                                             : t->n_lat - 1],
		       (long long)t->latencies[t->n_lat - 1]);
	}
	if (!have_spend)
		return;
	printf("\n%-16s %-14s %7s %6s %10s %10s %14s\n", "MODEL", "PROVIDER", "ANSWERED", "CALLS",
	       "IN TOK", "OUT TOK", "SPEND");
	json_object_foreach (s->models, key, v) {
		cli_usd(json_integer_value(json_object_get(v, "nusd")), a, sizeof a);
		json_t *ans = json_object_get(t->by_model, key);
		printf("%-16s %-14s %7lld %6lld %10lld %10lld %14s\n", key,
		       json_string_value(json_object_get(v, "provider")),
		       (long long)(ans ? json_integer_value(ans) : 0),
		       (long long)json_integer_value(json_object_get(v, "calls")),
		       (long long)json_integer_value(json_object_get(v, "in")),
		       (long long)json_integer_value(json_object_get(v, "out")), a);
	}
	cli_usd(s->total, a, sizeof a);
	printf("%-16s %-14s %7s %6s %10s %10s %14s\n", "total", "", "", "", "", "", a);

	/* The ledger's view: what Redis charged, against the cost records. */
	redisContext *c = cli_redis("dev", d->cfg);
	struct cli_budget_view *views = NULL;
	size_t n = 0;
	char err[256];
	if (!c || cli_budgets_view(c, d->cfg, &views, &n, err, sizeof err) != 0) {
		if (c)
			redisFree(c);
		return;
	}
	printf("\n%-10s %-8s %-11s %14s %14s %18s\n", "BUDGET", "PERIOD", "WINDOW", "SPENT",
	       "LIMIT", "COST RECORDS");
	for (size_t i = 0; i < n; i++) {
		/* A parent is charged whatever its children are. */
		int64_t recorded = 0;
		json_object_foreach (s->budgets, key, v) {
			for (int bi = config_budget_index(d->cfg, key), depth = 0;
			     bi >= 0 && depth < 8; bi = d->cfg->budgets[bi].parent, depth++)
				if (strcmp(d->cfg->budgets[bi].name, views[i].name) == 0)
					recorded += json_integer_value(v);
		}
		cli_usd(views[i].spent_nusd, a, sizeof a);
		cli_usd(views[i].limit_nusd, b, sizeof b);
		char rec[48];
		cli_usd(recorded, rec, sizeof rec);
		printf("%-10s %-8s %-11s %14s %14s %18s%s\n", views[i].name, views[i].period,
		       views[i].window, a, b, rec,
		       recorded == views[i].spent_nusd ? "" : "  (differs: see SPEC §4)");
	}
	cli_budgets_view_free(views, n);
	redisFree(c);
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *out)
{
	fputs("usage: promptyard dev [--jobs FILE] [--count N] [--timeout S] [--keep]\n"
	      "                      [--dashboard ADDR]\n"
	      "Runs Kafka (mock cluster), Redis, a simulated provider and a worker locally,\n"
	      "submits the sample jobs (or FILE), shows progress and the spend, then stops\n"
	      "everything. --count N takes the first N jobs (repeating the file if needed);\n"
	      "--keep leaves the temporary directory (config, logs) in place;\n"
	      "--dashboard ADDR (e.g. 127.0.0.1:8377) serves `promptyard dashboard` on the\n"
	      "stack and keeps it and Redis up after the run until Ctrl-C.\n",
	      out);
}

int cli_dev(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"jobs", required_argument, NULL, 'j'},
	        {"count", required_argument, NULL, 'n'},
	        {"timeout", required_argument, NULL, 't'},
	        {"keep", no_argument, NULL, 'k'},
	        {"dashboard", required_argument, NULL, 'd'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *jobs_path = NULL;
	long long count = 0;
	double timeout_s = DEFAULT_TIMEOUT_S;
	struct dev d;
	struct cli_jobs jobs = {0};
	struct tally t;
	struct spend s;
	char samples[PATH_MAX], err[512], *end;
	rd_kafka_t *rk = NULL;
	int ch, rc = 2;

	memset(&d, 0, sizeof d);
	memset(&t, 0, sizeof t);
	memset(&s, 0, sizeof s);
	d.redis.name = "redis-server";
	d.sim.name = "simulator";
	d.worker.name = "worker";
	d.dashboard.name = "dashboard";
	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': jobs_path = optarg; break;
		case 'k': d.keep = true; break;
		case 'd': d.dashboard_listen = optarg; break;
		case 'n':
			count = strtoll(optarg, &end, 10);
			if (*end || count < 1 || count > 10000000) {
				fprintf(stderr, "promptyard dev: --count: expected a count >= 1\n");
				return 2;
			}
			break;
		case 't':
			timeout_s = strtod(optarg, &end);
			if (*end || timeout_s <= 0) {
				fprintf(stderr,
				        "promptyard dev: --timeout: expected seconds > 0\n");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (exe_dir(d.bin, sizeof d.bin) != 0) {
		fprintf(stderr, "promptyard dev: cannot tell where promptyard is installed\n");
		return 1;
	}
	if (!jobs_path) {
		if (find_samples(d.bin, samples, sizeof samples) != 0) {
			fprintf(stderr,
			        "promptyard dev: deploy/samples/jobs.jsonl not found near %s: "
			        "give --jobs FILE\n",
			        d.bin);
			return 2;
		}
		jobs_path = samples;
	}

	catch_signals();
	int64_t t0 = time_mono_ms();
	const char *tmp = getenv("TMPDIR");
	snprintf(d.dir, sizeof d.dir, "%s/promptyard-dev-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(d.dir)) {
		fprintf(stderr, "promptyard dev: %s: %s\n", d.dir, strerror(errno));
		d.dir[0] = '\0';
		return 1;
	}
	rc = 1;
	say("stack in %s", d.dir);
	if (start_kafka(&d) != 0)
		goto out;
	say("kafka (librdkafka mock cluster) at %s", d.bootstrap);
	if (cli_interrupted || start_redis(&d) != 0)
		goto out;
	say("redis-server on 127.0.0.1:%d (pid %d)", d.redis_port, (int)d.redis.pid);
	if (cli_interrupted || start_simulator(&d) != 0)
		goto out;
	say("provider simulator (OpenAI, Anthropic, Gemini formats) on 127.0.0.1:%d (pid %d)",
	    d.sim_port, (int)d.sim.pid);
	if (cli_interrupted || write_config(&d) != 0)
		goto out;

	struct cli_job_defaults defaults = {.rotate_strategies = strategies};
	int lrc = cli_jobs_load("dev", d.cfg, jobs_path, &defaults, &jobs);
	if (lrc != 0) {
		rc = lrc;
		goto out;
	}
	fit_count(&jobs, (size_t)count);
	if (!jobs.n) {
		say("no jobs in %s", jobs_path);
		goto out;
	}
	if (cli_interrupted || start_worker(&d) != 0)
		goto out;
	say("worker (pid %d), config %s, metrics http://127.0.0.1:%d/metrics", (int)d.worker.pid,
	    d.cfg_path, d.metrics_port);
	if (d.dashboard_listen) {
		if (cli_interrupted || start_dashboard(&d) != 0)
			goto out;
		say("dashboard at %s (pid %d)", d.dashboard_url, (int)d.dashboard.pid);
	}
	say("submitting %zu jobs from %s", jobs.n, jobs_path);
	uint64_t acked = 0;
	if (cli_submit_produce("dev: submit", d.cfg, "llm.jobs", &jobs, &acked) != 0)
		goto out;

	t.want = jobs.n;
	t.d = &d;
	t.seen = json_object();
	t.schema_ids = schema_job_ids(&jobs);
	t.by_code = json_object();
	t.by_model = json_object();
	t.latencies = xcalloc(jobs.n, sizeof *t.latencies);
	rk = cli_kafka_consumer(d.cfg, NULL, err, sizeof err);
	if (!rk) {
		say("%s", err);
		goto out;
	}
	struct cli_read r = {
	        .topic = "llm.results",
	        .deadline_ms = time_mono_ms() + (int64_t)(timeout_s * 1000),
	        .message = on_result,
	        .tick = on_tick,
	        .opaque = &t,
	};
	cli_progress_start(&t.prog, "dev: results", t.want);
	int got = cli_kafka_read(rk, &r, err, sizeof err);
	cli_progress_finish(&t.prog);
	if (got < 0)
		say("%s", err);
	else if (t.worker_died) {
		char why[64];
		say("the worker %s", exit_text(&d.worker, why, sizeof why));
		show_log_tail(&d.worker, 15);
	} else if (got > 0 && cli_interrupted)
		say("interrupted: stopping everything");
	else if (got > 0)
		say("timeout after %.0f s: %zu of %zu results", timeout_s, t.have, t.want);

	/* The worker drains and flushes its producer before it exits, so after
	 * this every cost record of every finished job is in Kafka. */
	if (d.worker.pid) {
		say("stopping the worker (it drains in-flight jobs)");
		child_stop(&d.worker, DRAIN_TIMEOUT_MS + 5000);
	}
	bool have_spend = false;
	if (!cli_interrupted) {
		s.seen = json_object();
		s.models = json_object();
		s.budgets = json_object();
		struct cli_read rc_costs = {
		        .topic = "llm.costs", .to_end = true, .message = on_cost, .opaque = &s};
		have_spend = cli_kafka_read(rk, &rc_costs, err, sizeof err) == 0;
	}
	print_summary(&d, &t, &s, have_spend, (double)(time_mono_ms() - t0) / 1000.0);
	if (got == 0 && !t.worker_died && t.have >= t.want)
		rc = 0;
	if (d.dashboard_listen && !cli_interrupted) {
		fflush(stdout);
		linger(&d);
	}
out:
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	/* A failure with the worker up: its log usually says why. */
	if (rc != 0 && d.worker.log[0] && !t.worker_died && !cli_interrupted)
		show_log_tail(&d.worker, 10);
	stop_all(&d);
	cli_jobs_free(&jobs);
	json_decref(t.seen);
	json_decref(t.schema_ids);
	json_decref(t.by_code);
	json_decref(t.by_model);
	free(t.latencies);
	json_decref(s.seen);
	json_decref(s.models);
	json_decref(s.budgets);
	if (cli_interrupted)
		say("stopped: nothing left running, %s removed", d.keep ? "nothing" : d.dir);
	return rc;
}
