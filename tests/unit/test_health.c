/* Unit tests of health against a real redis-server, started by the test on a
 * free loopback port in a temp dir (killed at exit, and by the kernel if the
 * test dies: PR_SET_PDEATHSIG), with two struct health on two connections
 * standing for two workers on one uv loop:
 *   - the breaker opens after breaker_failures and lets exactly one probe
 *     through across both workers per cooldown; probe failure reopens it,
 *     probe success closes it;
 *   - a probe given back (no verdict, or a 429) goes to another worker;
 *   - a 401/403 opens a provider's models everywhere;
 *   - rpm = 600 and tpm shared by both workers hold within 5% over a window
 *     (the limits' period shortened to one second for the test);
 *   - medians and success rates converge to the samples of both workers;
 *   - the router's `fastest` order follows the observed latencies;
 *   - with Redis hung or gone, the last view stays and samples wait locally.
 * Skipped (one PASS line saying so) when redis-server is not installed. */
#include "buf.h"
#include "config.h"
#include "health.h"
#include "job.h"
#include "log.h"
#include "redis.h"
#include "router.h"
#include "timeutil.h"
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- redis-server */

static pid_t redis_pid = -1;
static int redis_port;
static char redis_dir[256];

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(a.sin_port);
}

static void redis_stop(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
		redis_pid = -1;
	}
}

static void redis_cleanup(void)
{
	redis_stop();
	if (redis_dir[0]) {
		char path[300];
		snprintf(path, sizeof path, "%s/redis.log", redis_dir);
		unlink(path);
		rmdir(redis_dir);
		redis_dir[0] = '\0';
	}
}

static redisContext *redis_sync(void)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* Starts redis-server on redis_port (picking one the first time) and waits
 * for its PING. Returns 0, or -1 if it cannot be started. */
static int redis_start_server(void)
{
	if (!redis_dir[0]) {
		const char *tmp = getenv("PROMPTYARD_TMP") ? getenv("PROMPTYARD_TMP") : "/tmp";
		snprintf(redis_dir, sizeof redis_dir, "%s/test_health.XXXXXX", tmp);
		if (!mkdtemp(redis_dir)) {
			redis_dir[0] = '\0';
			return -1;
		}
		redis_port = free_port();
	}
	char port[16], log[300];
	snprintf(port, sizeof port, "%d", redis_port);
	snprintf(log, sizeof log, "%s/redis.log", redis_dir);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* Dies with the test, however the test ends. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--dir", redis_dir, "--logfile", log,
		       (char *)NULL);
		_exit(127);
	}
	redis_pid = pid;
	for (int i = 0; i < 500; i++) {
		redisContext *c = redis_sync();
		if (c) {
			redisReply *r = redisCommand(c, "PING");
			bool ok = r && r->type == REDIS_REPLY_STATUS;
			if (r)
				freeReplyObject(r);
			redisFree(c);
			if (ok)
				return 0;
		}
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			redis_pid = -1;
			return -1;
		}
		usleep(10000);
	}
	return -1;
}

static void redis_flushall(void)
{
	redisContext *c = redis_sync();
	if (!c) {
		UNIT_FAIL("redis unreachable");
		return;
	}
	redisReply *r = redisCommand(c, "FLUSHALL");
	if (r)
		freeReplyObject(r);
	redisFree(c);
}

/* ---------------------------------------------------------------- the two workers */

static struct provider_conf providers[3] = {
        {.name = "p",
         .type = "openai",
         .base_url = "http://p",
         .api_key_env = "",
         .timeout_ms = 1000,
         .rpm = 600},
        {.name = "q",
         .type = "openai",
         .base_url = "http://q",
         .api_key_env = "",
         .timeout_ms = 1000},
        {.name = "t",
         .type = "openai",
         .base_url = "http://t",
         .api_key_env = "",
         .timeout_ms = 1000,
         .tpm = 60000},
};
static struct model_conf models[4];
static struct budget_conf budgets[1] = {
        {.name = "default", .limit_nusd = 1000000000, .parent = -1}};
static struct config cfg;

static struct model_conf model(const char *name, int provider, double in, double q, int64_t latency)
{
	struct model_conf m = {.name = (char *)name,
	                       .provider = provider,
	                       .id = (char *)name,
	                       .context_tokens = 128000,
	                       .default_max_tokens = 100,
	                       .quality = q,
	                       .latency_ms = latency};
	m.price.input_nusd_per_mtok = money_usd_to_nusd(in);
	m.price.cached_input_nusd_per_mtok = m.price.input_nusd_per_mtok;
	m.price.cache_write_nusd_per_mtok = -1;
	m.price.output_nusd_per_mtok = money_usd_to_nusd(in * 4);
	return m;
}

static void setup(void)
{
	models[0] = model("limited", 0, 0.10, 0.5, 300);
	models[1] = model("quick", 1, 0.20, 0.6, 300);
	models[2] = model("slow", 1, 0.30, 0.7, 800);
	models[3] = model("tokens", 2, 0.40, 0.8, 500);
	cfg.providers = providers;
	cfg.n_providers = 3;
	cfg.models = models;
	cfg.n_models = 4;
	cfg.budgets = budgets;
	cfg.n_budgets = 1;
	cfg.worker.max_job_bytes = 1 << 20;
	cfg.worker.default_strategy = STRATEGY_CHEAPEST;
	cfg.worker.default_budget = "default";
	cfg.worker.max_retry_after_ms = 30000;
	cfg.router.balanced_slack = 0.1;
	cfg.router.window_s = 10;
	cfg.router.breaker_failures = 3;
	cfg.router.breaker_cooldown_ms = 400;
	cfg.router.auto_floor = 0.3;
	cfg.router.classifier_model = "";
	cfg.redis.key_prefix = "test:";
}

struct world {
	uv_loop_t loop;
	struct redis *r[2];
	struct health *h[2];
	/* Of the last run_until: how long the loop was held up (a 2 ms timer
	 * late by more than 10 ms), by a busy or descheduled process. A rate
	 * limiter cannot hand out what its callers were not there to take. */
	int64_t stalled_ms;
};

/* Two workers; rpm/tpm counted per period_ms. */
static void world_open_period(struct world *w, int64_t period_ms)
{
	memset(w, 0, sizeof *w);
	uv_loop_init(&w->loop);
	struct redis_options ro = {.host = "127.0.0.1", .port = redis_port, .timeout_ms = 1000};
	for (int i = 0; i < 2; i++) {
		char id[16];
		snprintf(id, sizeof id, "w%d", i + 1);
		struct health_options ho = {.worker_id = id,
		                            .flush_ms = 20,
		                            .refresh_ms = 50,
		                            .rate_period_ms = period_ms};
		w->r[i] = redis_new(&w->loop, &ro, NULL, NULL);
		w->h[i] = health_new(&w->loop, w->r[i], &cfg, &ho);
		redis_start(w->r[i]);
	}
}

static void world_open(struct world *w)
{
	world_open_period(w, 1000);
}

static void world_close(struct world *w)
{
	for (int i = 0; i < 2; i++) {
		health_free(w->h[i]);
		redis_free(w->r[i]);
	}
	uv_run(&w->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&w->loop) != 0)
		UNIT_FAIL("handles left open on the loop");
}

/* Runs the loop until pred(w, arg) holds or timeout_ms pass. */
struct waiter {
	struct world *w;
	bool (*pred)(struct world *, void *);
	void *arg;
	bool met;
	int64_t deadline;
	int64_t last, stalled; /* the last check, and time lost to stalls */
};

static void on_check(uv_timer_t *t)
{
	struct waiter *wt = t->data;
	int64_t now = time_mono_ms();
	if (wt->last && now - wt->last > 10)
		wt->stalled += now - wt->last - 2;
	wt->last = now;
	if (wt->pred && wt->pred(wt->w, wt->arg)) {
		wt->met = true;
		uv_stop(t->loop);
	} else if (time_mono_ms() >= wt->deadline) {
		uv_stop(t->loop);
	}
}

static bool run_until(struct world *w, bool (*pred)(struct world *, void *), void *arg,
                      int64_t timeout_ms)
{
	struct waiter wt = {
	        .w = w, .pred = pred, .arg = arg, .deadline = time_mono_ms() + timeout_ms};
	uv_timer_t t;
	uv_timer_init(&w->loop, &t);
	t.data = &wt;
	uv_timer_start(&t, on_check, 2, 2);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&w->loop, UV_RUN_NOWAIT);
	w->stalled_ms = wt.stalled;
	return wt.met;
}

static void run_for(struct world *w, int64_t ms)
{
	run_until(w, NULL, NULL, ms);
}

static bool both_ready(struct world *w, void *arg)
{
	(void)arg;
	return redis_ready(w->r[0]) && redis_ready(w->r[1]) && health_view_age_ms(w->h[0]) >= 0 &&
	       health_view_age_ms(w->h[1]) >= 0;
}

/* An empty Redis and two workers, both with a view of it: false if they
 * did not get one within 3 s. */
static bool world_start(struct world *w)
{
	redis_flushall();
	world_open(w);
	return run_until(w, both_ready, NULL, 3000);
}

struct circuit_want {
	int model;
	enum health_circuit c;
};

static bool both_circuit(struct world *w, void *arg)
{
	struct circuit_want *cw = arg;
	int64_t now = time_mono_ms();
	return health_circuit(w->h[0], cw->model, now) == cw->c &&
	       health_circuit(w->h[1], cw->model, now) == cw->c;
}

/* ---------------------------------------------------------------- admissions */

struct tally {
	int go, limited, open, pending;
};

static void on_admit(void *opaque, enum health_verdict v, int64_t retry_after_ms)
{
	struct tally *t = opaque;
	(void)retry_after_ms;
	t->pending--;
	if (v == HEALTH_GO)
		t->go++;
	else if (v == HEALTH_LIMITED)
		t->limited++;
	else if (v == HEALTH_CIRCUIT_OPEN)
		t->open++;
}

static void admit_count(struct health *h, int model, struct tally *t)
{
	int64_t retry;
	enum health_verdict v = health_admit(h, model, 10, on_admit, t, &retry);
	t->pending++;
	if (v != HEALTH_PENDING)
		on_admit(t, v, retry);
}

static bool settled(struct world *w, void *arg)
{
	const struct tally *t = arg;
	(void)w;
	return t->pending == 0;
}

/* Runs the loop until every admission counted in t has its answer. */
static void settle(struct world *w, struct tally *t)
{
	if (!run_until(w, settled, t, 3000))
		UNIT_FAIL("admissions still pending after 3 s");
}

/* Both workers ask for model every 5 ms for ms; returns the GOs by worker. */
static void admit_storm(struct world *w, int model, int64_t ms, struct tally t[2])
{
	int64_t end = time_mono_ms() + ms;
	while (time_mono_ms() < end) {
		admit_count(w->h[0], model, &t[0]);
		admit_count(w->h[1], model, &t[1]);
		run_for(w, 5);
	}
	settle(w, &t[0]);
	settle(w, &t[1]);
}

static int who_probes(const struct tally t[2])
{
	return t[0].go ? 0 : 1;
}

TEST(breaker_opens_and_lets_one_probe_through)
{
	struct world w;
	CHECK(world_start(&w));
	const int m = 1; /* quick, on an unlimited provider */
	int64_t now = time_mono_ms();
	CHECK_INT(health_circuit(w.h[0], m, now), HEALTH_CLOSED);
	/* Two failures here and one there: three consecutive across workers. */
	health_record(w.h[0], m, false, 100, 0);
	health_record(w.h[0], m, false, 100, 0);
	run_for(&w, 60);
	CHECK_INT(health_circuit(w.h[0], m, time_mono_ms()), HEALTH_CLOSED);
	health_record(w.h[1], m, false, 100, 0);
	struct circuit_want open = {m, HEALTH_OPEN}, probe = {m, HEALTH_PROBE_ALLOWED},
	                    closed = {m, HEALTH_CLOSED};
	CHECK(run_until(&w, both_circuit, &open, 1000));
	struct health_model_view v;
	health_model_view(w.h[0], m, time_mono_ms(), &v);
	CHECK(v.consec_failures >= 3);
	CHECK(v.open_ms > 0 && v.open_ms <= 400);
	/* While it cools down, nobody is let through. */
	struct tally t[2] = {{0}};
	admit_storm(&w, m, 100, t);
	CHECK_INT(t[0].go + t[1].go, 0);
	CHECK(t[0].open > 0 && t[1].open > 0);

	/* Cooled down: both see it, both try; exactly one call goes. */
	CHECK(run_until(&w, both_circuit, &probe, 1000));
	memset(t, 0, sizeof t);
	admit_storm(&w, m, 200, t);
	CHECK_INT(t[0].go + t[1].go, 1);
	CHECK_INT(t[0].pending + t[1].pending, 0);
	/* The probe fails: open again for another cooldown. */
	int p = who_probes(t);
	health_record(w.h[p], m, false, 100, 0);
	CHECK(run_until(&w, both_circuit, &open, 1000));
	CHECK(run_until(&w, both_circuit, &probe, 1000));
	memset(t, 0, sizeof t);
	admit_storm(&w, m, 200, t);
	CHECK_INT(t[0].go + t[1].go, 1);
	/* This probe succeeds: closed for everyone. */
	p = who_probes(t);
	health_record(w.h[p], m, true, 100, 0);
	CHECK(run_until(&w, both_circuit, &closed, 1000));
	memset(t, 0, sizeof t);
	admit_storm(&w, m, 30, t);
	CHECK(t[0].go > 1 && t[1].go > 1);
	CHECK_INT(t[0].open + t[1].open, 0);
	world_close(&w);
}

TEST(probe_lease_expires_when_the_prober_never_answers)
{
	/* A worker that claims the probe and never records it (it died) does not
	 * hold the model forever: the lease (the provider's timeout_ms + 5 s)
	 * passes. The test shortens the lease to 200 ms through timeout_ms. */
	struct world w;
	redis_flushall();
	int64_t saved = providers[1].timeout_ms;
	providers[1].timeout_ms = -4800; /* lease = 200 ms */
	world_open(&w);
	CHECK(run_until(&w, both_ready, NULL, 3000));
	const int m = 2;
	for (int i = 0; i < 3; i++)
		health_record(w.h[0], m, false, 100, 0);
	struct circuit_want probe = {m, HEALTH_PROBE_ALLOWED};
	CHECK(run_until(&w, both_circuit, &probe, 2000));
	struct tally t[2] = {{0}};
	admit_count(w.h[0], m, &t[0]);
	settle(&w, &t[0]);
	CHECK_INT(t[0].go, 1);
	/* w1 "dies" with the probe: forget it by freeing that health. */
	health_free(w.h[0]);
	w.h[0] = health_new(&w.loop, NULL, &cfg, NULL); /* offline stand-in */
	run_for(&w, 300);
	int go = 0;
	for (int i = 0; i < 40 && !go; i++) {
		struct tally u = {0};
		admit_count(w.h[1], m, &u);
		settle(&w, &u);
		go = u.go;
		if (!go)
			run_for(&w, 20);
	}
	CHECK_INT(go, 1);
	world_close(&w);
	providers[1].timeout_ms = saved;
}

TEST(a_probe_given_back_goes_to_another_worker)
{
	struct world w;
	CHECK(world_start(&w));
	const int m = 2;
	for (int i = 0; i < 3; i++)
		health_record(w.h[0], m, false, 100, 0);
	struct circuit_want probe = {m, HEALTH_PROBE_ALLOWED};
	CHECK(run_until(&w, both_circuit, &probe, 2000));
	struct tally t = {0};
	admit_count(w.h[0], m, &t);
	settle(&w, &t);
	CHECK_INT(t.go, 1);
	/* The probe call was the job's own fault (a 400): no verdict, given back. */
	health_release(w.h[0], m);
	CHECK(run_until(&w, both_circuit, &probe, 1000));
	struct tally u = {0};
	admit_count(w.h[1], m, &u);
	settle(&w, &u);
	CHECK_INT(u.go, 1);
	/* A 429 gives a probe back too, and makes the provider limited here. */
	health_throttle(w.h[1], 1, 500);
	CHECK(health_limited(w.h[1], m, 10, time_mono_ms()));
	CHECK(health_provider_may_limit(w.h[1], 1, time_mono_ms()));
	CHECK(!health_limited(w.h[0], m, 10, time_mono_ms()));
	int64_t retry;
	CHECK_INT(health_admit(w.h[1], 1, 10, on_admit, &u, &retry), HEALTH_LIMITED);
	CHECK(retry > 0 && retry <= 500);
	CHECK(run_until(&w, both_circuit, &probe, 1000));
	world_close(&w);
}

TEST(unauthorized_opens_the_provider_everywhere)
{
	struct world w;
	CHECK(world_start(&w));
	health_open_provider(w.h[0], 1); /* q: quick and slow */
	int64_t now = time_mono_ms();
	CHECK_INT(health_circuit(w.h[0], 1, now), HEALTH_OPEN);
	CHECK_INT(health_circuit(w.h[0], 2, now), HEALTH_OPEN);
	CHECK_INT(health_circuit(w.h[0], 0, now), HEALTH_CLOSED);
	struct circuit_want a = {1, HEALTH_OPEN}, b = {2, HEALTH_OPEN};
	CHECK(run_until(&w, both_circuit, &a, 1000));
	CHECK(run_until(&w, both_circuit, &b, 1000));
	CHECK_INT(health_circuit(w.h[1], 0, time_mono_ms()), HEALTH_CLOSED);
	world_close(&w);
}

/* Virtual jobs that call as fast as the limit lets them. */
struct vjob {
	struct world *w;
	struct health *h;
	int model;
	int64_t tokens;
	int *count;
	bool *stop;
	bool waits;    /* on LIMITED, health_wait as the engine does (else ask again later) */
	int64_t *asks; /* health_admit and health_wait calls */
	uv_timer_t timer;
};

static void vjob_next(struct vjob *j, int64_t delay);

static void vjob_verdict(void *opaque, enum health_verdict v, int64_t retry_after_ms)
{
	struct vjob *j = opaque;
	if (v == HEALTH_GO)
		(*j->count)++;
	if (v == HEALTH_LIMITED && j->waits && !*j->stop) {
		(*j->asks)++;
		v = health_wait(j->h, j->model, j->tokens, vjob_verdict, j, &retry_after_ms);
		if (v == HEALTH_PENDING)
			return;
		if (v == HEALTH_GO)
			(*j->count)++;
	}
	vjob_next(j, v == HEALTH_GO ? 0 : retry_after_ms > 0 ? retry_after_ms : 1);
}

static void vjob_fire(uv_timer_t *t)
{
	struct vjob *j = t->data;
	if (*j->stop)
		return;
	int64_t retry;
	(*j->asks)++;
	enum health_verdict v = health_admit(j->h, j->model, j->tokens, vjob_verdict, j, &retry);
	if (v != HEALTH_PENDING)
		vjob_verdict(j, v, retry);
}

static void vjob_next(struct vjob *j, int64_t delay)
{
	if (!*j->stop)
		uv_timer_start(&j->timer, vjob_fire, (uint64_t)delay, 0);
}

/* Runs jobs_per_worker virtual jobs on each worker for ms; counts the calls
 * let through per worker, and the admissions asked (asks, may be NULL). With
 * waits, a limited job queues with health_wait. */
static void rate_run_mode(struct world *w, int model, int64_t tokens, int jobs_per_worker,
                          int64_t ms, int counts[2], bool waits, int64_t *asks)
{
	struct vjob *jobs = calloc((size_t)(2 * jobs_per_worker), sizeof *jobs);
	bool stop = false;
	int64_t asked = 0;
	for (int i = 0; i < 2 * jobs_per_worker; i++) {
		struct vjob *j = &jobs[i];
		j->w = w;
		j->h = w->h[i % 2];
		j->model = model;
		j->tokens = tokens;
		j->count = &counts[i % 2];
		j->stop = &stop;
		j->waits = waits;
		j->asks = &asked;
		uv_timer_init(&w->loop, &j->timer);
		j->timer.data = j;
		vjob_next(j, 0);
	}
	run_for(w, ms);
	stop = true;
	for (int i = 0; i < 2 * jobs_per_worker; i++) {
		uv_timer_stop(&jobs[i].timer);
		uv_close((uv_handle_t *)&jobs[i].timer, NULL);
		health_admit_cancel(jobs[i].h, &jobs[i]);
	}
	uv_run(&w->loop, UV_RUN_NOWAIT);
	free(jobs);
	if (asks)
		*asks = asked;
}

static void rate_run(struct world *w, int model, int64_t tokens, int jobs_per_worker, int64_t ms,
                     int counts[2])
{
	rate_run_mode(w, model, tokens, jobs_per_worker, ms, counts, false, NULL);
}

TEST(rpm_is_shared_and_held)
{
	struct world w;
	CHECK(world_start(&w));
	/* rpm = 600 per (shortened) 1000 ms period: 600 calls a second in all. */
	int counts[2] = {0, 0};
	rate_run(&w, 0, 10, 8, 2000, counts);
	int total = counts[0] + counts[1];
	printf("  rpm 600/s over 2 s, two workers: %d + %d = %d calls (ideal 1200 + burst 10; "
	       "loop stalled %lld ms)\n",
	       counts[0], counts[1], total, (long long)w.stalled_ms);
	/* Never above the limit; at least 95% of it over the time the loop ran. */
	CHECK(total <= 1260);
	CHECK(total >= 0.95 * 600 * (2000 - w.stalled_ms) / 1000);
	CHECK(counts[0] > total / 5 && counts[1] > total / 5);
	/* The router sees the limit: when the bucket is dry, a limited model is
	 * skipped for another; alone, it stays and the job waits. */
	world_close(&w);
}

TEST(waiting_jobs_queue_instead_of_polling)
{
	struct world w;
	CHECK(world_start(&w));
	/* 500 jobs per worker on rpm = 600/s: each call let through should
	 * cost about one admission, not one per waiting job per refill. */
	int counts[2] = {0, 0};
	int64_t asks = 0;
	rate_run_mode(&w, 0, 10, 500, 2000, counts, true, &asks);
	int total = counts[0] + counts[1];
	printf("  rpm 600/s over 2 s, 1000 waiting jobs: %d + %d = %d calls, %lld admissions "
	       "asked (loop stalled %lld ms)\n",
	       counts[0], counts[1], total, (long long)asks, (long long)w.stalled_ms);
	CHECK(total <= 1260);
	CHECK(total >= 0.95 * 600 * (2000 - w.stalled_ms) / 1000);
	CHECK(counts[0] > total / 5 && counts[1] > total / 5);
	CHECK(asks <= 10 * total + 2000); /* polling asks some 800,000 times */
	world_close(&w);
}

TEST(tpm_is_shared_and_held)
{
	struct world w;
	CHECK(world_start(&w));
	/* tpm = 60000 per second, 1000 tokens a call: 60 calls a second. */
	int counts[2] = {0, 0};
	rate_run(&w, 3, 1000, 4, 2000, counts);
	int total = counts[0] + counts[1];
	printf("  tpm 60000/s over 2 s, 1000 tokens a call: %d + %d = %d calls (ideal 120 + 1; "
	       "loop stalled %lld ms)\n",
	       counts[0], counts[1], total, (long long)w.stalled_ms);
	CHECK(total <= 127);
	CHECK(total >= 0.95 * 60 * (2000 - w.stalled_ms) / 1000);
	world_close(&w);
}

struct counts_want {
	int model;
	int64_t ok, fail;
};

static bool both_counts(struct world *w, void *arg)
{
	struct counts_want *cw = arg;
	for (int i = 0; i < 2; i++) {
		struct health_model_view v;
		health_model_view(w->h[i], cw->model, time_mono_ms(), &v);
		if (v.ok != cw->ok || v.fail != cw->fail)
			return false;
	}
	return true;
}

TEST(medians_and_success_rates_converge)
{
	struct world w;
	CHECK(world_start(&w));
	const int m = 2;
	/* Worker 1: latencies 400..598, worker 2: 402..600; 80% ok on each. */
	for (int i = 0; i < 100; i++) {
		health_record(w.h[0], m, i % 5 != 0, 400 + 2 * i, 50);
		health_record(w.h[1], m, i % 5 != 4, 402 + 2 * i, 50);
		if (i % 10 == 0)
			run_for(&w, 5);
	}
	struct counts_want cw = {m, 160, 40};
	CHECK(run_until(&w, both_counts, &cw, 2000));
	for (int i = 0; i < 2; i++) {
		int64_t med = health_model_latency_ms(w.h[i], m);
		CHECK(med >= 475 && med <= 525);
		double rate = health_success_rate(w.h[i], m);
		CHECK(rate > 0.799 && rate < 0.801);
		struct health_model_view v;
		health_model_view(w.h[i], m, time_mono_ms(), &v);
		CHECK_INT(v.tokens, 10000);
		CHECK_INT(v.circuit, HEALTH_CLOSED); /* never 3 failures in a row */
	}
	/* A model nobody called has no median and no rate. */
	CHECK_INT(health_model_latency_ms(w.h[0], 1), -1);
	CHECK(health_success_rate(w.h[0], 1) < 0);
	world_close(&w);
}

static bool slow_seen(struct world *w, void *arg)
{
	(void)arg;
	return health_model_latency_ms(w->h[0], 1) > 1000 &&
	       health_model_latency_ms(w->h[0], 2) >= 0;
}

TEST(fastest_follows_observed_latency)
{
	struct world w;
	CHECK(world_start(&w));
	char err[256];
	struct job job;
	const char *j = "{\"id\":\"f\",\"prompt\":\"hi\",\"strategy\":\"fastest\","
	                "\"models\":[\"quick\",\"slow\"]}";
	CHECK_INT(job_decode(&cfg, j, strlen(j), &job, err, sizeof err), 0);
	struct route r = {0};
	struct route_context ctx = {.cost_left_nusd = -1, .health = w.h[0]};
	router_route(&cfg, &job, &ctx, &r);
	CHECK_INT(r.chain[0], 1); /* quick: 300 ms configured against 800 */
	/* Worker 2 sees quick slow down to 2 s and slow answer in 100 ms. */
	for (int i = 0; i < 20; i++) {
		health_record(w.h[1], 1, true, 2000, 10);
		health_record(w.h[1], 2, true, 100, 10);
	}
	CHECK(run_until(&w, slow_seen, NULL, 2000));
	router_route(&cfg, &job, &ctx, &r);
	CHECK_INT(r.chain[0], 2);
	CHECK_INT(r.chain[1], 1);
	router_route_clear(&r);
	job_clear(&job);
	world_close(&w);
}

static bool redis_down(struct world *w, void *arg)
{
	(void)arg;
	return !redis_ready(w->r[0]) && !redis_ready(w->r[1]);
}

TEST(redis_hung_keeps_the_view_and_the_samples)
{
	struct world w;
	CHECK(world_start(&w));
	const int m = 2;
	for (int i = 0; i < 10; i++)
		health_record(w.h[0], m, true, 700, 0);
	struct counts_want cw = {m, 10, 0};
	CHECK(run_until(&w, both_counts, &cw, 2000));
	/* Redis hangs: what is recorded meanwhile waits, the view stays. */
	kill(redis_pid, SIGSTOP);
	for (int i = 0; i < 5; i++)
		health_record(w.h[0], m, true, 700, 0);
	run_for(&w, 300);
	CHECK(health_model_latency_ms(w.h[1], m) > 600);
	CHECK_INT(health_circuit(w.h[1], m, time_mono_ms()), HEALTH_CLOSED);
	kill(redis_pid, SIGCONT);
	struct counts_want back = {m, 15, 0};
	CHECK(run_until(&w, both_counts, &back, 3000));
	world_close(&w);
}

/* Redis gone (killed): the view stays, samples are kept, admissions that
 * need Redis say "later". The test ends before reconnecting: hiredis'
 * libuv adapter never reports a refused connect, which leaves a reconnect
 * attempt to redis.c's watchdog (see the report on redis.c). */
TEST(redis_gone_keeps_the_view_and_the_samples)
{
	struct world w;
	CHECK(world_start(&w));
	const int m = 2;
	for (int i = 0; i < 10; i++)
		health_record(w.h[0], m, true, 700, 0);
	struct counts_want cw = {m, 10, 0};
	CHECK(run_until(&w, both_counts, &cw, 2000));
	redis_stop();
	CHECK(run_until(&w, redis_down, NULL, 500));
	for (int i = 0; i < 5; i++)
		health_record(w.h[0], m, false, 700, 0);
	run_for(&w, 100);
	CHECK(health_model_latency_ms(w.h[1], m) > 600);
	CHECK(health_success_rate(w.h[1], m) == 1);
	/* Five failures here: open locally, Redis or not. */
	CHECK_INT(health_circuit(w.h[0], m, time_mono_ms()), HEALTH_OPEN);
	CHECK_INT(health_circuit(w.h[1], m, time_mono_ms()), HEALTH_CLOSED);
	int64_t retry;
	struct tally t = {0};
	CHECK_INT(health_admit(w.h[0], 0, 10, on_admit, &t, &retry), HEALTH_LIMITED);
	CHECK_INT(retry, 250);
	CHECK_INT(health_admit(w.h[0], 1, 10, on_admit, &t, &retry), HEALTH_GO); /* unlimited */
	world_close(&w);
	CHECK_INT(redis_start_server(), 0);
}

TEST(admission_on_a_dry_bucket_and_cancel)
{
	struct world w;
	redis_flushall();
	/* rpm 600 per 10 minutes: a burst of 10, then one a second. */
	world_open_period(&w, 600000);
	CHECK(run_until(&w, both_ready, NULL, 3000));
	/* Drain provider p's bucket from worker 1 until it says wait. */
	struct tally t = {0};
	int64_t retry = 0;
	enum health_verdict v = HEALTH_GO;
	for (int i = 0; i < 100 && v != HEALTH_LIMITED; i++) {
		v = health_admit(w.h[0], 0, 10, on_admit, &t, &retry);
		if (v == HEALTH_PENDING)
			run_for(&w, 20);
	}
	CHECK_INT(v, HEALTH_LIMITED);
	CHECK(retry > 0 && retry <= 1000);
	CHECK(t.go + (v == HEALTH_GO) <= 11);
	CHECK(health_limited(w.h[0], 0, 10, time_mono_ms()));
	/* The router skips the limited model for another... */
	char err[256];
	struct job job;
	const char *j = "{\"id\":\"d\",\"prompt\":\"hi\",\"strategy\":\"cheapest\","
	                "\"models\":[\"limited\",\"quick\"]}";
	CHECK_INT(job_decode(&cfg, j, strlen(j), &job, err, sizeof err), 0);
	struct route r = {0};
	struct route_context ctx = {.cost_left_nusd = -1, .health = w.h[0]};
	router_route(&cfg, &job, &ctx, &r);
	CHECK_INT(r.entries[0].drop, DROP_RATE_LIMIT);
	CHECK_INT(r.n_chain, 1);
	CHECK_INT(r.chain[0], 1);
	job_clear(&job);
	/* ...but alone it stays, and the job waits for it. */
	j = "{\"id\":\"d\",\"prompt\":\"hi\",\"model\":\"limited\"}";
	CHECK_INT(job_decode(&cfg, j, strlen(j), &job, err, sizeof err), 0);
	router_route(&cfg, &job, &ctx, &r);
	CHECK_INT(r.n_chain, 1);
	CHECK(r.all_limited);
	/* Worker 2 shares the bucket: its first ask goes to Redis and is told to wait. */
	struct tally c = {0};
	v = health_admit(w.h[1], 0, 10, on_admit, &c, &retry);
	CHECK_INT(v, HEALTH_PENDING);
	c.pending++;
	settle(&w, &c);
	CHECK_INT(c.limited, 1);
	/* A pending admission (worker 2 has no tpm credits yet) cancelled
	 * never calls back. */
	memset(&c, 0, sizeof c);
	v = health_admit(w.h[1], 3, 1000, on_admit, &c, &retry);
	CHECK_INT(v, HEALTH_PENDING);
	health_admit_cancel(w.h[1], &c);
	run_for(&w, 100);
	CHECK_INT(c.go + c.limited + c.open, 0);
	router_route_clear(&r);
	job_clear(&job);
	world_close(&w);
}

/* A model with no observations (a fleet's first run) is called at full
 * concurrency by every worker (SPEC §6): no call waits for another's
 * outcome. */
TEST(a_cold_model_is_called_at_full_concurrency)
{
	struct world w;
	CHECK(world_start(&w));
	const int m = 2; /* slow: on an unlimited provider, never called */
	struct tally t[2] = {{0}};
	for (int i = 0; i < 50; i++) {
		admit_count(w.h[0], m, &t[0]);
		admit_count(w.h[1], m, &t[1]);
	}
	/* Every answer came at once, from memory. */
	CHECK_INT(t[0].go, 50);
	CHECK_INT(t[1].go, 50);
	CHECK_INT(t[0].pending + t[1].pending + t[0].limited + t[1].limited, 0);
	CHECK(!health_held_off(w.h[0], m, time_mono_ms()));
	world_close(&w);
}

/* The first wave of a cold model fails (or hangs until its timeout): the
 * calls queued behind it stay off the model at once, the breaker opens on
 * the wave's failures as they come back, and a model that has answered
 * here is not held off for one failure. */
TEST(a_failing_cold_wave_holds_off_the_calls_queued_behind_it)
{
	struct world w;
	CHECK(world_start(&w));
	const int m = 2, warm = 1; /* both on provider q, unlimited */
	int64_t now = time_mono_ms();
	health_record(w.h[0], m, false, 2000, 0); /* the wave's first timeout */
	CHECK(health_held_off(w.h[0], m, now));
	CHECK(!health_held_off(w.h[1], m, now)); /* its own calls have not failed */
	/* Fresh admissions still go: the breaker needs their evidence. */
	int64_t retry;
	struct tally t = {0};
	CHECK_INT(health_admit(w.h[0], m, 10, on_admit, &t, &retry), HEALTH_GO);
	/* breaker_failures (3) failures of the wave, ended about together:
	 * open here at once, and everywhere once flushed. */
	health_record(w.h[0], m, false, 2000, 0);
	health_record(w.h[0], m, false, 2000, 0);
	CHECK_INT(health_circuit(w.h[0], m, time_mono_ms()), HEALTH_OPEN);
	CHECK_INT(health_admit(w.h[0], m, 10, on_admit, &t, &retry), HEALTH_CIRCUIT_OPEN);
	struct circuit_want open = {m, HEALTH_OPEN};
	CHECK(run_until(&w, both_circuit, &open, 1000));
	CHECK(health_held_off(w.h[1], m, time_mono_ms()));
	/* Cooled down, the probe is not held off by the open state it probes. */
	struct circuit_want probe = {m, HEALTH_PROBE_ALLOWED};
	CHECK(run_until(&w, both_circuit, &probe, 2000));
	CHECK(!health_held_off(w.h[1], m, time_mono_ms()));
	CHECK(!health_held_off(w.h[0], m, time_mono_ms()));
	/* A model that answered here: one failure holds nothing off. */
	health_record(w.h[0], warm, true, 100, 0);
	health_record(w.h[0], warm, false, 100, 0);
	CHECK(!health_held_off(w.h[0], warm, time_mono_ms()));
	world_close(&w);
}

/* Once a cold model's call failed here, fresh calls on it go one at a
 * time: none while a call of it is out here or admitted and not yet
 * started, so fewer than breaker_failures go after the wave's failures
 * came back. A warm model is not held to it, nor the other worker. */
TEST(after_a_cold_failure_fresh_calls_go_one_at_a_time)
{
	struct world w;
	CHECK(world_start(&w));
	const int m = 2, warm = 1; /* both on provider q, unlimited */
	int64_t retry;
	struct tally t = {0};
	struct health_call wave = {0}, call = {0};
	health_call_begin(w.h[0], m, &wave);    /* a call of the wave still out */
	health_record(w.h[0], m, false, 20, 0); /* the wave's first failure */
	CHECK_INT(health_admit(w.h[0], m, 10, on_admit, &t, &retry), HEALTH_CIRCUIT_OPEN);
	CHECK_INT(health_admit(w.h[1], m, 10, on_admit, &t, &retry), HEALTH_GO);
	health_call_end(w.h[0], &wave);
	health_record(w.h[0], m, false, 20, 0);
	/* Nothing out: one call is admitted, and holds the turn until it ends. */
	CHECK_INT(health_admit(w.h[0], m, 10, on_admit, &t, &retry), HEALTH_GO);
	CHECK_INT(health_admit(w.h[0], m, 10, on_admit, &t, &retry), HEALTH_CIRCUIT_OPEN);
	health_call_begin(w.h[0], m, &call);
	CHECK_INT(health_admit(w.h[0], m, 10, on_admit, &t, &retry), HEALTH_CIRCUIT_OPEN);
	health_call_end(w.h[0], &call);
	health_record(w.h[0], m, false, 20, 0); /* the third: breaker_failures */
	CHECK_INT(health_circuit(w.h[0], m, time_mono_ms()), HEALTH_OPEN);
	/* A call admitted that never goes out (its job's own fault) gives the
	 * turn back. */
	health_record(w.h[1], warm, false, 20, 0);
	CHECK_INT(health_admit(w.h[1], warm, 10, on_admit, &t, &retry), HEALTH_GO);
	CHECK_INT(health_admit(w.h[1], warm, 10, on_admit, &t, &retry), HEALTH_CIRCUIT_OPEN);
	health_release(w.h[1], warm);
	CHECK_INT(health_admit(w.h[1], warm, 10, on_admit, &t, &retry), HEALTH_GO);
	/* A model that answered here is called at full concurrency after a
	 * failure. */
	health_record(w.h[0], warm, true, 20, 0);
	health_record(w.h[0], warm, false, 20, 0);
	for (int i = 0; i < 5; i++)
		CHECK_INT(health_admit(w.h[0], warm, 10, on_admit, &t, &retry), HEALTH_GO);
	settle(&w, &t);
	world_close(&w);
}

/* A 429's Retry-After parks the provider at most worker.max_retry_after_ms
 * (SPEC §6), however long the provider asks for. */
TEST(a_throttle_parks_no_longer_than_max_retry_after_ms)
{
	struct world w;
	redis_flushall();
	int64_t saved = cfg.worker.max_retry_after_ms;
	cfg.worker.max_retry_after_ms = 300;
	world_open(&w);
	CHECK(run_until(&w, both_ready, NULL, 3000));
	const int m = 1;
	health_throttle(w.h[0], 1, 86400 * 1000); /* Retry-After: 86400 */
	int64_t retry = 0;
	struct tally t = {0};
	CHECK_INT(health_admit(w.h[0], m, 10, on_admit, &t, &retry), HEALTH_LIMITED);
	CHECK(retry > 0 && retry <= 300);
	run_for(&w, 350);
	CHECK(!health_limited(w.h[0], m, 10, time_mono_ms()));
	CHECK_INT(health_admit(w.h[0], m, 10, on_admit, &t, &retry), HEALTH_GO);
	/* Without Retry-After: a second, within the cap too. */
	health_throttle(w.h[0], 1, -1);
	CHECK_INT(health_admit(w.h[0], m, 10, on_admit, &t, &retry), HEALTH_LIMITED);
	CHECK(retry > 0 && retry <= 300);
	world_close(&w);
	cfg.worker.max_retry_after_ms = saved;
}

int main(void)
{
	setup();
	log_set_level(LOG_ERROR);
	atexit(redis_cleanup);
	if (redis_start_server() != 0) {
		printf("PASS health_tests_skipped (redis-server not available)\n");
		printf("1 passed, 0 failed\n");
		return 0;
	}
	RUN(breaker_opens_and_lets_one_probe_through);
	RUN(probe_lease_expires_when_the_prober_never_answers);
	RUN(a_probe_given_back_goes_to_another_worker);
	RUN(unauthorized_opens_the_provider_everywhere);
	RUN(rpm_is_shared_and_held);
	RUN(waiting_jobs_queue_instead_of_polling);
	RUN(tpm_is_shared_and_held);
	RUN(medians_and_success_rates_converge);
	RUN(fastest_follows_observed_latency);
	RUN(admission_on_a_dry_bucket_and_cancel);
	RUN(a_cold_model_is_called_at_full_concurrency);
	RUN(a_failing_cold_wave_holds_off_the_calls_queued_behind_it);
	RUN(after_a_cold_failure_fresh_calls_go_one_at_a_time);
	RUN(a_throttle_parks_no_longer_than_max_retry_after_ms);
	RUN(redis_hung_keeps_the_view_and_the_samples);
	RUN(redis_gone_keeps_the_view_and_the_samples);
	return unit_done();
}
