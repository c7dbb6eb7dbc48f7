/* health: the local view, the batches sent to Redis, the circuit breaker's
 * probe claims and admission; the rate-limit client is health_rate.c. See
 * health.h for the model and the keys. */
#include "health_int.h"

#include "buf.h"
#include "log.h"
#include "timeutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const char lua_health_flush[], lua_health_view[], lua_health_probe[];

/* A probe claim's lease beyond the provider's timeout. */
#define PROBE_LEASE_MARGIN_MS 5000

/* Redis' clock and ours both count whole ms. */
#define CLOCK_ROUNDING_MS 2

/* Cold (no success in the window, none here, never opened) and its last
 * call here failed: the first wave of a model nothing has been seen of is
 * failing (health_held_off, health_admit). */
static bool cold_failing(const struct hmodel *m)
{
	return !m->warm && m->ok == 0 && m->open_until == 0 && m->local_consec > 0;
}

/* May a fresh call go on model now? Not on a cold failing model while a
 * call of it is out here (or admitted and not yet started): its outcome
 * comes first, so the calls admitted after the first failures came back
 * are one at a time, fewer than breaker_failures before the breaker opens. */
static bool cold_gate_shut(const struct hmodel *m, int64_t now)
{
	return cold_failing(m) && (m->calls || m->cold_turn_until > now);
}

/* A fresh call goes on model: on a cold failing model it holds the turn
 * until it starts (health_call_begin) or ends, at most one timeout. */
static void cold_turn_take(struct health *h, int model, int64_t now)
{
	struct hmodel *m = &h->models[model];
	if (!cold_failing(m))
		return;
	const struct config *cfg = h->cfg;
	m->cold_turn_until = now + cfg->providers[cfg->models[model].provider].timeout_ms +
	                     PROBE_LEASE_MARGIN_MS;
}

static const char *const circuit_names[] = {"closed", "open", "probe"};
static const char *const verdict_names[] = {"go", "pending", "limited", "circuit_open"};

const char *health_circuit_name(enum health_circuit c)
{
	return (unsigned)c < 3 ? circuit_names[c] : "?";
}

const char *health_verdict_name(enum health_verdict v)
{
	return (unsigned)v < 4 ? verdict_names[v] : "?";
}

/* Latency bin b holds [1.1^b - 1, 1.1^(b+1) - 1) ms. */
static int latency_bin(int64_t ms)
{
	if (ms <= 0)
		return 0;
	int b = (int)(log((double)ms + 1) / log(1.1));
	return b < 0 ? 0 : b >= HEALTH_BINS ? HEALTH_BINS - 1 : b;
}

/* The middle of bin b (geometric), in ms. */
static int64_t bin_ms(int b)
{
	return (int64_t)llround(pow(1.1, b + 0.5) - 1);
}

static void flush_send(struct health *h);

bool health_redis_up(const struct health *h)
{
	return h->r && !h->dead && redis_ready(h->r);
}

/* ---------------------------------------------------------------- construction */

static void on_flush_timer(uv_timer_t *t);
static void on_refresh_timer(uv_timer_t *t);

/* FNV-1a of the catalog's model names: the view cache's name, so workers
 * with different catalogs do not read each other's views. */
static uint32_t catalog_hash(const struct config *cfg)
{
	uint32_t x = 2166136261u;
	for (size_t i = 0; i < cfg->n_models; i++) {
		for (const char *p = cfg->models[i].name; *p; p++)
			x = (x ^ (unsigned char)*p) * 16777619u;
		x = (x ^ 0xff) * 16777619u;
	}
	return x;
}

char *health_key(const struct config *cfg, const char *kind, const char *name, size_t *len)
{
	struct buf b = {0};
	buf_printf(&b, "%s{health}:%s:%s", cfg->redis.key_prefix, kind, name);
	*len = b.len;
	return buf_take(&b);
}

struct health *health_new(uv_loop_t *loop, struct redis *r, const struct config *cfg,
                          const struct health_options *opt)
{
	struct health *h = xcalloc(1, sizeof *h);
	h->loop = loop;
	h->r = r;
	h->cfg = cfg;
	if (opt)
		h->opt = *opt;
	if (h->opt.flush_ms <= 0)
		h->opt.flush_ms = 200;
	if (h->opt.refresh_ms <= 0)
		h->opt.refresh_ms = 1000;
	if (h->opt.rate_period_ms <= 0)
		h->opt.rate_period_ms = 60000;
	if (h->opt.worker_id) {
		snprintf(h->worker_id, sizeof h->worker_id, "%s", h->opt.worker_id);
	} else {
		char host[64] = "worker";
		gethostname(host, sizeof host - 1);
		snprintf(h->worker_id, sizeof h->worker_id, "%s-%d", host, (int)getpid());
	}
	h->opt.worker_id = h->worker_id;
	h->window_ms = cfg->router.window_s * 1000;
	h->credit_ttl_ms = h->opt.rate_period_ms / 60 > 10 ? h->opt.rate_period_ms / 60 : 10;
	h->view_at = -1;
	h->batch_gen = 1;

	h->models = xcalloc(cfg->n_models ? cfg->n_models : 1, sizeof *h->models);
	for (size_t i = 0; i < cfg->n_models; i++) {
		struct hmodel *m = &h->models[i];
		m->median_ms = -1;
		m->ckey = health_key(cfg, "c", cfg->models[i].name, &m->ckey_len);
		m->wkey = health_key(cfg, "w", cfg->models[i].name, &m->wkey_len);
	}
	char hash[16];
	snprintf(hash, sizeof hash, "%08x", (unsigned)catalog_hash(cfg));
	h->view_key = health_key(cfg, "view", hash, &h->view_key_len);

	if (r) {
		h->s_flush = redis_add_script(r, "health_flush", lua_health_flush);
		h->s_view = redis_add_script(r, "health_view", lua_health_view);
		h->s_probe = redis_add_script(r, "health_probe", lua_health_probe);
	}
	health_rate_init(h);
	if (loop && r) {
		uv_timer_init(loop, &h->flush_timer);
		uv_timer_init(loop, &h->refresh_timer);
		h->flush_timer.data = h->refresh_timer.data = h;
		h->open_handles = 2;
		health_rate_start(h);
		uv_timer_start(&h->flush_timer, on_flush_timer, (uint64_t)h->opt.flush_ms,
		               (uint64_t)h->opt.flush_ms);
		/* The timer ticks at least every 100 ms so that the first view
		 * comes as soon as Redis is ready; it asks only every refresh_ms. */
		uint64_t tick = (uint64_t)(h->opt.refresh_ms < 100 ? h->opt.refresh_ms : 100);
		uv_timer_start(&h->refresh_timer, on_refresh_timer, 10, tick);
	}
	return h;
}

void health_admission_unlink(struct health *h, struct admit *a)
{
	if (a->prev)
		a->prev->next = a->next;
	else
		h->admits = a->next;
	if (a->next)
		a->next->prev = a->prev;
	free(a);
}

static void really_free(struct health *h)
{
	while (h->admits)
		health_admission_unlink(h, h->admits);
	for (size_t i = 0; i < h->cfg->n_models; i++) {
		free(h->models[i].ckey);
		free(h->models[i].wkey);
	}
	health_rate_free(h);
	free(h->models);
	free(h->view_key);
	free(h);
}

void health_maybe_free(struct health *h)
{
	if (h->dead && h->calls == 0 && h->open_handles == 0)
		really_free(h);
}

static void on_timer_closed(uv_handle_t *handle)
{
	struct health *h = handle->data;
	h->open_handles--;
	health_maybe_free(h);
}

void health_free(struct health *h)
{
	if (!h)
		return;
	/* What was recorded since the last flush goes now, if it can. */
	flush_send(h);
	h->dead = true;
	/* Queued admissions have no Redis call: they go now. Those in a claim
	 * are freed when their reply comes. */
	health_rate_stop(h);
	struct admit *a = h->admits;
	while (a) {
		struct admit *next = a->next;
		if (!a->in_claim)
			health_admission_unlink(h, a);
		a = next;
	}
	if (h->open_handles) {
		uv_timer_stop(&h->flush_timer);
		uv_timer_stop(&h->refresh_timer);
		uv_close((uv_handle_t *)&h->flush_timer, on_timer_closed);
		uv_close((uv_handle_t *)&h->refresh_timer, on_timer_closed);
	}
	health_maybe_free(h);
}

/* ---------------------------------------------------------------- flushing */

static void batch_merge(struct hbatch *older, const struct hbatch *newer)
{
	older->trail = newer->ok > 0 ? newer->trail : older->trail + newer->fail;
	older->ok += newer->ok;
	older->fail += newer->fail;
	older->tokens += newer->tokens;
	if (newer->probe)
		older->probe = newer->probe;
	older->force = older->force || newer->force;
	if (newer->has_hist) {
		for (int b = 0; b < HEALTH_BINS; b++)
			older->hist[b] += newer->hist[b];
		older->has_hist = true;
	}
}

static void on_flushed(void *opaque, redisReply *reply)
{
	struct flush_call *fc = opaque;
	struct health *h = fc->h;
	h->calls--;
	h->flushing = false;
	if (!h->dead) {
		if (reply && reply->type == REDIS_REPLY_INTEGER) {
			h->acked_gen = fc->gen;
		} else {
			/* Not recorded: put the batch back in front of what came since. */
			for (size_t i = 0; i < fc->n; i++) {
				struct hmodel *m = &h->models[fc->models[i]];
				struct hbatch newer = m->pend;
				m->pend = fc->batches[i];
				batch_merge(&m->pend, &newer);
				m->dirty = true;
				if (m->local_open_until && m->local_open_gen == fc->gen)
					m->local_open_gen = h->batch_gen;
			}
		}
		if (h->urgent)
			flush_send(h);
	}
	free(fc->models);
	free(fc->batches);
	free(fc);
	health_maybe_free(h);
}

/* Sends every model's pending batch in one script call. */
static void flush_send(struct health *h)
{
	const struct config *cfg = h->cfg;
	if (h->flushing || !health_redis_up(h))
		return;
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_models; i++)
		n += h->models[i].dirty;
	h->urgent = false;
	if (n == 0)
		return;
	struct flush_call *fc = xcalloc(1, sizeof *fc);
	fc->h = h;
	fc->gen = h->batch_gen++;
	fc->models = xcalloc(n, sizeof *fc->models);
	fc->batches = xcalloc(n, sizeof *fc->batches);

	size_t argc = 1 + 2 * n + 4 + 7 * n;
	const char **argv = xcalloc(argc, sizeof *argv);
	size_t *lens = xcalloc(argc, sizeof *lens);
	struct buf *vals = xcalloc(4 + 7 * n, sizeof *vals);
	size_t k = 0, v = 0;
	argv[k] = h->view_key;
	lens[k++] = h->view_key_len;
	for (size_t i = 0, j = 0; i < cfg->n_models; i++) {
		struct hmodel *m = &h->models[i];
		if (!m->dirty)
			continue;
		argv[k] = m->ckey;
		lens[k++] = m->ckey_len;
		argv[k] = m->wkey;
		lens[k++] = m->wkey_len;
		fc->models[j] = (int)i;
		fc->batches[j++] = m->pend;
		memset(&m->pend, 0, sizeof m->pend);
		m->dirty = false;
	}
	buf_printf(&vals[v++], "%lld", (long long)h->window_ms);
	buf_printf(&vals[v++], "%d", HEALTH_SLOTS);
	buf_printf(&vals[v++], "%d", cfg->router.breaker_failures);
	buf_printf(&vals[v++], "%lld", (long long)cfg->router.breaker_cooldown_ms);
	for (size_t j = 0; j < n; j++) {
		const struct hbatch *b = &fc->batches[j];
		buf_printf(&vals[v++], "%lld", (long long)b->ok);
		buf_printf(&vals[v++], "%lld", (long long)b->fail);
		buf_printf(&vals[v++], "%lld", (long long)b->trail);
		buf_printf(&vals[v++], "%d", b->probe);
		buf_printf(&vals[v++], "%d", b->force ? 1 : 0);
		buf_printf(&vals[v++], "%lld", (long long)b->tokens);
		for (int bin = 0; b->has_hist && bin < HEALTH_BINS; bin++)
			if (b->hist[bin])
				buf_printf(&vals[v], "%s%d:%u", vals[v].len ? " " : "", bin,
				           (unsigned)b->hist[bin]);
		v++;
	}
	for (size_t i = 0; i < v; i++) {
		argv[k] = vals[i].data ? vals[i].data : "";
		lens[k++] = vals[i].len;
	}
	h->flushing = true;
	h->calls++;
	redis_eval(h->r, h->s_flush, on_flushed, fc, (int)(1 + 2 * n), (int)k, argv, lens);
	for (size_t i = 0; i < v; i++)
		buf_free(&vals[i]);
	free(vals);
	free(argv);
	free(lens);
}

static void on_flush_timer(uv_timer_t *t)
{
	flush_send(t->data);
}

/* Sends at once, or as soon as the flush in flight is answered. */
static void flush_soon(struct health *h)
{
	h->urgent = true;
	flush_send(h);
}

void health_record(struct health *h, int model, bool ok, int64_t latency_ms, int64_t tokens)
{
	const struct config *cfg = h->cfg;
	struct hmodel *m = &h->models[model];
	struct hbatch *b = &m->pend;
	int64_t now = time_mono_ms();
	if (ok) {
		b->ok++;
		b->trail = 0;
		b->hist[latency_bin(latency_ms)]++;
		b->has_hist = true;
		m->local_consec = 0;
	} else {
		b->fail++;
		b->trail++;
		m->local_consec++;
	}
	if (tokens > 0)
		b->tokens += tokens;
	m->dirty = true;
	m->cold_turn_until = 0;
	if (ok)
		m->warm = true;
	if (m->probe_held) {
		m->probe_held = false;
		b->probe = ok ? 1 : 2;
		m->probe_until = 0;
		if (ok) {
			m->open_until = m->local_open_until = 0;
			m->consec = 0;
		} else {
			m->open_until = now + cfg->router.breaker_cooldown_ms;
		}
		flush_soon(h);
	} else if (!ok && m->local_consec >= cfg->router.breaker_failures &&
	           m->local_open_until <= now && m->open_until == 0) {
		/* Open here at once; the flush opens it for everyone. */
		m->local_open_until = now + cfg->router.breaker_cooldown_ms;
		m->local_open_gen = h->batch_gen;
		flush_soon(h);
	}
}

void health_open_provider(struct health *h, int provider)
{
	const struct config *cfg = h->cfg;
	int64_t now = time_mono_ms();
	for (size_t i = 0; i < cfg->n_models; i++) {
		if (cfg->models[i].provider != provider)
			continue;
		struct hmodel *m = &h->models[i];
		m->pend.force = true;
		m->dirty = true;
		m->local_open_until = now + cfg->router.breaker_cooldown_ms;
		m->local_open_gen = h->batch_gen;
	}
	flush_soon(h);
}

void health_release(struct health *h, int model)
{
	struct hmodel *m = &h->models[model];
	m->cold_turn_until = 0;
	if (!m->probe_held)
		return;
	m->probe_held = false;
	m->probe_until = 0;
	if (!m->pend.probe)
		m->pend.probe = 3;
	m->dirty = true;
	flush_soon(h);
}

/* ---------------------------------------------------------------- the view */

/* Applies a view reply ({now, json}) received at mono. Redis' times are
 * mapped to ours as if its clock was read when the reply came, plus the
 * rounding of two millisecond clocks: a deadline (a cooldown's end) then
 * falls no earlier here than in Redis, so a probe is not claimed before
 * Redis agrees it is due. Returns 0 or -1. */
static int view_apply(struct health *h, const redisReply *reply, int64_t mono, bool clear_local)
{
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER ||
	    reply->element[1]->type != REDIS_REPLY_STRING)
		return -1;
	int64_t rnow = reply->element[0]->integer;
	json_t *view = json_loadb(reply->element[1]->str, reply->element[1]->len, 0, NULL);
	if (!json_is_array(view) || json_array_size(view) != h->cfg->n_models) {
		json_decref(view);
		return -1;
	}
	for (size_t i = 0; i < h->cfg->n_models; i++) {
		json_t *row = json_array_get(view, i);
		int64_t f[7] = {-1, 0, 0, 0, 0, 0, 0};
		for (size_t j = 0; j < 7 && j < json_array_size(row); j++)
			f[j] = (int64_t)json_number_value(json_array_get(row, j));
		struct hmodel *m = &h->models[i];
		m->median_ms = f[0] >= 0 ? bin_ms((int)f[0]) : -1;
		m->ok = f[1];
		m->fail = f[2];
		m->tokens = f[3];
		m->consec = f[4];
		/* Redis' times onto this clock; a past time stays non-zero. */
		m->open_until = f[5] > 0 ? mono + (f[5] - rnow) + CLOCK_ROUNDING_MS : 0;
		if (f[5] > 0 && m->open_until == 0)
			m->open_until = -1;
		m->probe_until = f[6] > 0 ? mono + (f[6] - rnow) + CLOCK_ROUNDING_MS : 0;
		/* Once Redis has the batch that opened the circuit here, its
		 * view is the truth. */
		if (clear_local && m->local_open_until && m->local_open_gen <= h->view_acked_gen)
			m->local_open_until = 0;
	}
	json_decref(view);
	h->view_at = mono;
	return 0;
}

static void on_view(void *opaque, redisReply *reply)
{
	struct health *h = opaque;
	h->calls--;
	h->viewing = false;
	if (!h->dead && view_apply(h, reply, time_mono_ms(), true) != 0 && reply)
		log_warn("health view unreadable", NULL);
	health_maybe_free(h);
}

/* Keys and arguments of health_view.lua (argv holds borrowed pointers and
 * the three values in vals). */
static size_t view_args(const struct health *h, const char **argv, size_t *lens, char vals[3][24],
                        int64_t cache_ms)
{
	size_t k = 0;
	argv[k] = h->view_key;
	lens[k++] = h->view_key_len;
	for (size_t i = 0; i < h->cfg->n_models; i++) {
		argv[k] = h->models[i].ckey;
		lens[k++] = h->models[i].ckey_len;
		argv[k] = h->models[i].wkey;
		lens[k++] = h->models[i].wkey_len;
	}
	snprintf(vals[0], 24, "%lld", (long long)h->window_ms);
	snprintf(vals[1], 24, "%d", HEALTH_SLOTS);
	snprintf(vals[2], 24, "%lld", (long long)cache_ms);
	for (int i = 0; i < 3; i++) {
		argv[k] = vals[i];
		lens[k++] = strlen(vals[i]);
	}
	return k;
}

static void view_send(struct health *h)
{
	if (h->viewing || !health_redis_up(h))
		return;
	size_t n = 1 + 2 * h->cfg->n_models + 3;
	const char **argv = xcalloc(n, sizeof *argv);
	size_t *lens = xcalloc(n, sizeof *lens);
	char vals[3][24];
	int64_t cache = h->opt.refresh_ms / 2 < 500 ? h->opt.refresh_ms / 2 : 500;
	size_t k = view_args(h, argv, lens, vals, cache);
	h->viewing = true;
	h->view_acked_gen = h->acked_gen;
	h->calls++;
	redis_eval(h->r, h->s_view, on_view, h, (int)(1 + 2 * h->cfg->n_models), (int)k, argv,
	           lens);
	free(argv);
	free(lens);
}

static void on_refresh_timer(uv_timer_t *t)
{
	struct health *h = t->data;
	/* The first view comes as soon as Redis is ready, then every refresh_ms. */
	if (h->view_at < 0 || time_mono_ms() - h->view_at >= h->opt.refresh_ms - 5)
		view_send(h);
}

int health_load_view_sync(struct health *h, redisContext *c, char *errstr, size_t errstr_size)
{
	size_t n = 3 + 1 + 2 * h->cfg->n_models + 3;
	const char **argv = xcalloc(n, sizeof *argv);
	size_t *lens = xcalloc(n, sizeof *lens);
	char vals[3][24], nkeys[24];
	int rc = -1;
	snprintf(nkeys, sizeof nkeys, "%zu", 1 + 2 * h->cfg->n_models);
	argv[0] = "EVAL";
	lens[0] = 4;
	argv[1] = lua_health_view;
	lens[1] = strlen(lua_health_view);
	argv[2] = nkeys;
	lens[2] = strlen(nkeys);
	size_t k = 3 + view_args(h, argv + 3, lens + 3, vals, 0);
	redisReply *reply = redisCommandArgv(c, (int)k, argv, lens);
	if (!reply) {
		snprintf(errstr, errstr_size, "redis: %s", c->errstr);
	} else if (reply->type == REDIS_REPLY_ERROR) {
		snprintf(errstr, errstr_size, "redis: %.*s", (int)reply->len, reply->str);
	} else if (view_apply(h, reply, time_mono_ms(), false) != 0) {
		snprintf(errstr, errstr_size, "redis: unexpected health view");
	} else {
		rc = 0;
	}
	if (reply)
		freeReplyObject(reply);
	free(argv);
	free(lens);
	return rc;
}

enum health_circuit health_circuit(const struct health *h, int model, int64_t now_ms)
{
	const struct hmodel *m = &h->models[model];
	if (m->claiming || m->probe_held || m->local_open_until > now_ms)
		return HEALTH_OPEN;
	if (m->open_until == 0)
		return HEALTH_CLOSED;
	if (now_ms < m->open_until || m->probe_until > now_ms)
		return HEALTH_OPEN;
	return HEALTH_PROBE_ALLOWED;
}

int64_t health_model_latency_ms(const struct health *h, int model)
{
	return h->models[model].median_ms;
}

void health_call_begin(struct health *h, int model, struct health_call *c)
{
	struct hmodel *m = &h->models[model];
	health_call_end(h, c);
	c->model = model;
	c->start_ms = time_mono_ms();
	c->next = NULL;
	c->prev = m->calls_tail;
	if (m->calls_tail)
		m->calls_tail->next = c;
	else
		m->calls = c;
	m->calls_tail = c;
	c->linked = true;
	m->cold_turn_until = 0; /* the turn's call is out: m->calls holds the others */
}

void health_call_end(struct health *h, struct health_call *c)
{
	if (!h || !c->linked)
		return;
	struct hmodel *m = &h->models[c->model];
	if (c->prev)
		c->prev->next = c->next;
	else
		m->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		m->calls_tail = c->prev;
	c->prev = c->next = NULL;
	c->linked = false;
}

int64_t health_latency_estimate(const struct health *h, int model, int64_t configured_ms,
                                int64_t now_ms)
{
	const struct hmodel *m = &h->models[model];
	if (m->median_ms >= 0)
		return m->median_ms;
	int64_t age = m->calls ? now_ms - m->calls->start_ms : 0;
	return age > configured_ms ? age : configured_ms;
}

bool health_success_counts(const struct health *h, int model, int64_t *ok, int64_t *calls)
{
	const struct hmodel *m = &h->models[model];
	if (m->ok + m->fail <= 0)
		return false;
	*ok = m->ok;
	*calls = m->ok + m->fail;
	return true;
}

double health_success_rate(const struct health *h, int model)
{
	int64_t ok, calls;
	if (!health_success_counts(h, model, &ok, &calls))
		return -1;
	return (double)ok / (double)calls;
}

void health_model_view(const struct health *h, int model, int64_t now_ms,
                       struct health_model_view *out)
{
	const struct hmodel *m = &h->models[model];
	out->median_ms = m->median_ms;
	out->ok = m->ok;
	out->fail = m->fail;
	out->tokens = m->tokens;
	out->consec_failures = m->consec;
	out->circuit = health_circuit(h, model, now_ms);
	out->open_ms = 0;
	if (out->circuit == HEALTH_OPEN) {
		int64_t until = m->open_until;
		if (m->local_open_until > until)
			until = m->local_open_until;
		if (m->probe_until > until)
			until = m->probe_until;
		out->open_ms = until > now_ms ? until - now_ms : 0;
	}
}

void health_set_view(struct health *h, int model, const struct health_model_view *v)
{
	struct hmodel *m = &h->models[model];
	int64_t now = time_mono_ms();
	m->median_ms = v->median_ms;
	m->ok = v->ok;
	m->fail = v->fail;
	m->tokens = v->tokens;
	m->consec = v->consec_failures;
	m->probe_until = 0;
	m->local_open_until = 0;
	switch (v->circuit) {
	case HEALTH_CLOSED: m->open_until = 0; break;
	case HEALTH_OPEN: m->open_until = now + (v->open_ms > 0 ? v->open_ms : 1); break;
	case HEALTH_PROBE_ALLOWED:
		m->open_until = -1; /* cooled down: non-zero, in the past */
		break;
	}
	h->view_at = now;
}

int64_t health_view_age_ms(const struct health *h)
{
	return h->view_at < 0 ? -1 : time_mono_ms() - h->view_at;
}

bool health_held_off(const struct health *h, int model, int64_t now_ms)
{
	const struct hmodel *m = &h->models[model];
	if (m->local_open_until > now_ms || (m->open_until != 0 && now_ms < m->open_until))
		return true;
	/* The wave this call waited behind is failing. */
	return cold_failing(m);
}

static void claim_send(struct health *h, struct admit *a);

struct admit *health_admission_new(struct health *h, int model, int64_t tokens, health_admit_cb *cb,
                                   void *opaque)
{
	struct admit *a = xcalloc(1, sizeof *a);
	a->h = h;
	a->model = model;
	a->tokens = tokens;
	a->cb = cb;
	a->opaque = opaque;
	a->next = h->admits;
	if (a->next)
		a->next->prev = a;
	h->admits = a;
	return a;
}

/* Delivers a verdict (unless cancelled) and forgets the admission. */
void health_admission_done(struct health *h, struct admit *a, enum health_verdict v, int64_t retry)
{
	if (!a->cancelled && !h->dead)
		a->cb(a->opaque, v, retry);
	health_admission_unlink(h, a);
}

/* The credits are there: claim the probe if one is due, else go. */
void health_admission_proceed(struct health *h, struct admit *a)
{
	int64_t now = time_mono_ms();
	enum health_circuit c = health_circuit(h, a->model, now);
	if (c == HEALTH_OPEN || (c == HEALTH_PROBE_ALLOWED && !health_redis_up(h)) ||
	    (c == HEALTH_CLOSED && cold_gate_shut(&h->models[a->model], now))) {
		health_rate_refund(h, a);
		health_admission_done(h, a, HEALTH_CIRCUIT_OPEN, 0);
	} else if (c == HEALTH_PROBE_ALLOWED) {
		claim_send(h, a);
	} else {
		if (!a->cancelled)
			cold_turn_take(h, a->model, now);
		health_admission_done(h, a, HEALTH_GO, 0);
	}
}

static void on_claim(void *opaque, redisReply *reply)
{
	struct admit *a = opaque;
	struct health *h = a->h;
	struct hmodel *m = &h->models[a->model];
	h->calls--;
	m->claiming = false;
	if (h->dead) {
		health_admission_unlink(h, a);
		health_maybe_free(h);
		return;
	}
	int64_t now = time_mono_ms();
	long long r = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
	if (r == 1) {
		/* Held: other calls here wait for its outcome (health_record). */
		const struct config *cfg = h->cfg;
		int64_t lease = cfg->providers[cfg->models[a->model].provider].timeout_ms +
		                PROBE_LEASE_MARGIN_MS;
		m->probe_until = now + lease;
		m->probe_held = !a->cancelled;
		health_admission_done(h, a, HEALTH_GO, 0);
	} else if (r == 2) {
		m->open_until = 0; /* someone closed it meanwhile */
		health_admission_done(h, a, HEALTH_GO, 0);
	} else {
		/* Another worker probes (or Redis is away): closed to us until the
		 * next view says otherwise. */
		m->probe_until = now + h->opt.refresh_ms;
		health_rate_refund(h, a);
		health_admission_done(h, a, HEALTH_CIRCUIT_OPEN, 0);
	}
}

static void claim_send(struct health *h, struct admit *a)
{
	const struct config *cfg = h->cfg;
	struct hmodel *m = &h->models[a->model];
	char lease[24];
	snprintf(lease, sizeof lease, "%lld",
	         (long long)(cfg->providers[cfg->models[a->model].provider].timeout_ms +
	                     PROBE_LEASE_MARGIN_MS));
	const char *argv[4] = {m->ckey, h->view_key, h->worker_id, lease};
	size_t lens[4] = {m->ckey_len, h->view_key_len, strlen(h->worker_id), strlen(lease)};
	m->claiming = true;
	a->in_claim = true;
	h->calls++;
	redis_eval(h->r, h->s_probe, on_claim, a, 2, 4, argv, lens);
}

enum health_verdict health_admit(struct health *h, int model, int64_t tokens, health_admit_cb *cb,
                                 void *opaque, int64_t *retry_after_ms)
{
	int64_t now = time_mono_ms();
	*retry_after_ms = 0;
	enum health_circuit c = health_circuit(h, model, now);
	if (c == HEALTH_OPEN || (c == HEALTH_CLOSED && cold_gate_shut(&h->models[model], now)))
		return HEALTH_CIRCUIT_OPEN;
	int64_t req = 0, tok = 0;
	enum health_verdict v =
	        health_rate_admit(h, model, tokens, cb, opaque, &req, &tok, retry_after_ms);
	if (v != HEALTH_GO)
		return v;
	if (c == HEALTH_PROBE_ALLOWED) {
		if (!health_redis_up(h)) {
			health_rate_give_back(h, model, req, tok);
			return HEALTH_CIRCUIT_OPEN;
		}
		struct admit *a = health_admission_new(h, model, tokens, cb, opaque);
		a->req = req;
		a->tok = tok;
		claim_send(h, a);
		return HEALTH_PENDING;
	}
	cold_turn_take(h, model, now);
	return HEALTH_GO;
}

void health_admit_cancel(struct health *h, void *opaque)
{
	for (struct admit *a = h->admits; a; a = a->next)
		if (a->opaque == opaque)
			a->cancelled = true;
}
