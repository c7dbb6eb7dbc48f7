/* health: the local view, the batches sent to Redis, the probe claims and
 * the rate-limit credit cache. See health.h for the model and the keys. */
#include "health.h"

#include "buf.h"
#include "log.h"
#include "timeutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const char lua_health_flush[], lua_health_view[], lua_health_probe[], lua_ratelimit[];

/* An admission asked while Redis is unreachable is retried after this. */
#define REDIS_DOWN_RETRY_MS 250
/* A probe claim's lease beyond the provider's timeout. */
#define PROBE_LEASE_MARGIN_MS 5000
/* Demand is counted over windows of this length to size credit batches. */
#define DEMAND_WINDOW_MS 250

/* ---------------------------------------------------------------- state */

/* Outcomes recorded since the last flush, for one model. */
struct hbatch {
	int64_t ok, fail;
	int64_t trail; /* failures after the last success */
	int64_t tokens;
	int probe;  /* 0, or this worker's probe outcome: 1 success, 2 failure */
	bool force; /* open the circuit now (401/403) */
	bool has_hist;
	uint32_t hist[HEALTH_BINS];
};

struct hmodel {
	/* The shared view, as of the last refresh (times on the monotonic clock). */
	int64_t median_ms; /* -1: none */
	int64_t ok, fail, tokens, consec;
	int64_t open_until;  /* 0: closed; else the cooldown ends then */
	int64_t probe_until; /* a probe is held (by anyone) until then */

	/* This worker's own knowledge, ahead of the view. */
	int64_t local_consec;     /* consecutive failures seen here */
	int64_t local_open_until; /* opened here (own failures, 401/403) until then */
	uint64_t local_open_gen;  /* the batch that carries the opening */
	bool claiming;            /* a probe claim is in flight */
	bool probe_held;          /* this worker holds the probe: the next record is its outcome */
	/* Slow start: a model with no success in the window ("cold") takes one
	 * call at a time across all workers, claimed like a probe, so a provider
	 * that fails from the start gets breaker_failures calls, not a burst. */
	bool warm;          /* a success was seen here */
	bool cold_claiming; /* a cold claim is in flight */
	bool cold_held;     /* this worker holds the cold call: the next record is its outcome */

	struct health_call *calls, *calls_tail; /* this worker's calls, oldest first */

	bool dirty;
	struct hbatch pend;
	char *ckey, *wkey; /* circuit and window keys */
	size_t ckey_len, wkey_len;
};

static bool is_cold(const struct hmodel *m)
{
	return !m->warm && m->ok == 0 && m->open_until == 0;
}

/* Redis' clock and ours both count whole ms. */
#define CLOCK_ROUNDING_MS 2

/* How soon to ask again while another call holds a cold model. */
#define COLD_RETRY_MS 50

/* An admission waiting for Redis: rate credits, then possibly a probe claim. */
struct admit {
	struct health *h;
	int model;
	int64_t tokens;
	health_admit_cb *cb;
	void *opaque;
	int64_t req, tok; /* credits taken, given back if the call does not happen */
	bool cancelled;
	bool in_claim;             /* a probe claim for it is in flight */
	bool cold;                 /* the claim is a slow-start (cold) one */
	bool waits;                /* health_wait: stays queued while the provider holds back */
	struct admit *qnext;       /* in a provider's queue */
	struct admit *next, *prev; /* every live admission, for cancel */
};

struct hprov {
	struct health *h;
	int index;
	int64_t rpm, tpm;               /* 0 = unlimited */
	int64_t burst_req, burst_tok;   /* as ratelimit.lua computes them */
	int64_t credit_req, credit_tok; /* local credits */
	int64_t credit_expires;         /* monotonic ms */
	int64_t dry_until;              /* the shared bucket said wait until then */
	int64_t throttled_until;        /* the provider said 429 */
	bool taking;                    /* a take is in flight */
	struct admit *qhead, *qtail;
	size_t qlen;
	uv_timer_t wake; /* for the waiters: when the bucket or the throttle allows */
	int64_t demand_start, demand_req, demand_tok, last_req, last_tok;
	char *key;
	size_t key_len;
};

/* A flush in flight: the batches sent, kept to merge back on failure. */
struct flush_call {
	struct health *h;
	uint64_t gen;
	size_t n;
	int *models;
	struct hbatch *batches;
};

struct health {
	uv_loop_t *loop;
	struct redis *r;
	const struct config *cfg;
	struct health_options opt;
	char worker_id[128];
	size_t s_flush, s_view, s_probe, s_rate; /* script ids */
	struct hmodel *models;
	struct hprov *provs;
	char *view_key;
	size_t view_key_len;
	int64_t window_ms, credit_ttl_ms;

	uv_timer_t flush_timer, refresh_timer;
	int open_handles; /* timers not yet closed */
	int calls;        /* Redis calls not yet answered */
	bool dead;        /* health_free() was called */

	bool flushing, viewing, urgent;
	uint64_t batch_gen;      /* generation of the batch being recorded */
	uint64_t acked_gen;      /* the last generation Redis acknowledged */
	uint64_t view_acked_gen; /* acked_gen when the view in flight was asked */
	int64_t view_at;         /* monotonic ms of the last view, -1 for none */
	struct admit *admits;    /* live admissions */
};

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

static void maybe_free(struct health *h);
static void flush_send(struct health *h);

static bool redis_up(const struct health *h)
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

static char *make_key(const struct config *cfg, const char *kind, const char *name, size_t *len)
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
		m->ckey = make_key(cfg, "c", cfg->models[i].name, &m->ckey_len);
		m->wkey = make_key(cfg, "w", cfg->models[i].name, &m->wkey_len);
	}
	h->provs = xcalloc(cfg->n_providers ? cfg->n_providers : 1, sizeof *h->provs);
	for (size_t i = 0; i < cfg->n_providers; i++) {
		struct hprov *p = &h->provs[i];
		p->h = h;
		p->index = (int)i;
		p->rpm = cfg->providers[i].rpm > 0 ? cfg->providers[i].rpm : 0;
		p->tpm = cfg->providers[i].tpm > 0 ? cfg->providers[i].tpm : 0;
		p->burst_req = p->rpm / 60 > 1 ? p->rpm / 60 : 1;
		p->burst_tok = p->tpm / 60 > 1 ? p->tpm / 60 : 1;
		p->key = make_key(cfg, "rl", cfg->providers[i].name, &p->key_len);
	}
	char hash[16];
	snprintf(hash, sizeof hash, "%08x", (unsigned)catalog_hash(cfg));
	h->view_key = make_key(cfg, "view", hash, &h->view_key_len);

	if (r) {
		h->s_flush = redis_add_script(r, "health_flush", lua_health_flush);
		h->s_view = redis_add_script(r, "health_view", lua_health_view);
		h->s_probe = redis_add_script(r, "health_probe", lua_health_probe);
		h->s_rate = redis_add_script(r, "ratelimit", lua_ratelimit);
	}
	if (loop && r) {
		uv_timer_init(loop, &h->flush_timer);
		uv_timer_init(loop, &h->refresh_timer);
		h->flush_timer.data = h->refresh_timer.data = h;
		h->open_handles = 2;
		for (size_t i = 0; i < cfg->n_providers; i++) {
			uv_timer_init(loop, &h->provs[i].wake);
			h->provs[i].wake.data = &h->provs[i];
			h->open_handles++;
		}
		uv_timer_start(&h->flush_timer, on_flush_timer, (uint64_t)h->opt.flush_ms,
		               (uint64_t)h->opt.flush_ms);
		/* The timer ticks at least every 100 ms so that the first view
		 * comes as soon as Redis is ready; it asks only every refresh_ms. */
		uint64_t tick = (uint64_t)(h->opt.refresh_ms < 100 ? h->opt.refresh_ms : 100);
		uv_timer_start(&h->refresh_timer, on_refresh_timer, 10, tick);
	}
	return h;
}

static void admit_unlink(struct health *h, struct admit *a)
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
		admit_unlink(h, h->admits);
	for (size_t i = 0; i < h->cfg->n_models; i++) {
		free(h->models[i].ckey);
		free(h->models[i].wkey);
	}
	for (size_t i = 0; i < h->cfg->n_providers; i++)
		free(h->provs[i].key);
	free(h->models);
	free(h->provs);
	free(h->view_key);
	free(h);
}

static void maybe_free(struct health *h)
{
	if (h->dead && h->calls == 0 && h->open_handles == 0)
		really_free(h);
}

static void on_timer_closed(uv_handle_t *handle)
{
	struct health *h = handle->data;
	h->open_handles--;
	maybe_free(h);
}

static void on_wake_closed(uv_handle_t *handle)
{
	struct hprov *p = handle->data;
	p->h->open_handles--;
	maybe_free(p->h);
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
	for (size_t i = 0; i < h->cfg->n_providers; i++) {
		struct hprov *p = &h->provs[i];
		for (struct admit *a = p->qhead; a; a = a->qnext)
			a->cancelled = true;
		p->qhead = p->qtail = NULL;
		p->qlen = 0;
	}
	struct admit *a = h->admits;
	while (a) {
		struct admit *next = a->next;
		if (!a->in_claim)
			admit_unlink(h, a);
		a = next;
	}
	if (h->open_handles) {
		uv_timer_stop(&h->flush_timer);
		uv_timer_stop(&h->refresh_timer);
		uv_close((uv_handle_t *)&h->flush_timer, on_timer_closed);
		uv_close((uv_handle_t *)&h->refresh_timer, on_timer_closed);
		for (size_t i = 0; i < h->cfg->n_providers; i++) {
			uv_timer_stop(&h->provs[i].wake);
			uv_close((uv_handle_t *)&h->provs[i].wake, on_wake_closed);
		}
	}
	maybe_free(h);
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
	maybe_free(h);
}

/* Sends every model's pending batch in one script call. */
static void flush_send(struct health *h)
{
	const struct config *cfg = h->cfg;
	if (h->flushing || !redis_up(h))
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
	if (ok)
		m->warm = true;
	if (m->cold_held) {
		/* The outcome of a slow-start call: a success warms the model for
		 * everyone; a failure gives the turn back and counts toward the
		 * breaker (health_flush.lua, probe outcome 4). */
		m->cold_held = false;
		b->probe = ok ? 1 : 4;
		flush_soon(h);
	}
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
	if (m->cold_held) {
		m->cold_held = false;
		if (!m->pend.probe)
			m->pend.probe = 3;
		m->dirty = true;
		flush_soon(h);
	}
	if (!m->probe_held)
		return;
	m->probe_held = false;
	m->probe_until = 0;
	if (!m->pend.probe)
		m->pend.probe = 3;
	m->dirty = true;
	flush_soon(h);
}

void health_throttle(struct health *h, int provider, int64_t retry_after_ms)
{
	struct hprov *p = &h->provs[provider];
	p->throttled_until = time_mono_ms() + (retry_after_ms > 0 ? retry_after_ms : 1000);
	p->credit_req = p->credit_tok = 0;
	/* A 429 says nothing of the model's health: a probe goes back. */
	for (size_t i = 0; i < h->cfg->n_models; i++)
		if (h->cfg->models[i].provider == provider)
			health_release(h, (int)i);
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
	maybe_free(h);
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
	if (h->viewing || !redis_up(h))
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

/* ---------------------------------------------------------------- rate limits */

static bool limited_provider(const struct hprov *p)
{
	return p->rpm > 0 || p->tpm > 0;
}

static void credits_expire(struct hprov *p, int64_t now)
{
	if (p->credit_expires <= now)
		p->credit_req = p->credit_tok = 0;
}

static bool credits_cover(const struct hprov *p, int64_t tokens)
{
	return (p->rpm == 0 || p->credit_req >= 1) && (p->tpm == 0 || p->credit_tok >= tokens);
}

static void credits_take(struct hprov *p, struct admit *a, int64_t tokens)
{
	int64_t req = p->rpm ? 1 : 0, tok = p->tpm ? tokens : 0;
	p->credit_req -= req;
	p->credit_tok -= tok;
	if (a) {
		a->req = req;
		a->tok = tok;
	}
}

static void credits_refund(struct health *h, struct admit *a)
{
	struct hprov *p = &h->provs[h->cfg->models[a->model].provider];
	p->credit_req += a->req;
	p->credit_tok += a->tok;
	a->req = a->tok = 0;
}

bool health_cold(const struct health *h, int model)
{
	return is_cold(&h->models[model]);
}

bool health_limited(const struct health *h, int model, int64_t tokens, int64_t now_ms)
{
	const struct hprov *p = &h->provs[h->cfg->models[model].provider];
	if (p->throttled_until > now_ms)
		return true;
	if (!limited_provider(p))
		return false;
	if (p->credit_expires > now_ms && credits_cover(p, tokens))
		return false;
	return p->dry_until > now_ms;
}

bool health_provider_may_limit(const struct health *h, int provider, int64_t now_ms)
{
	const struct hprov *p = &h->provs[provider];
	return p->throttled_until > now_ms || (limited_provider(p) && p->dry_until > now_ms);
}

static void demand_note(struct hprov *p, int64_t tokens, int64_t now)
{
	if (now - p->demand_start >= DEMAND_WINDOW_MS) {
		p->last_req = p->demand_req;
		p->last_tok = p->demand_tok;
		p->demand_req = p->demand_tok = 0;
		p->demand_start = now;
	}
	p->demand_req++;
	p->demand_tok += tokens;
}

static void take_send(struct health *h, struct hprov *p);
static void claim_send(struct health *h, struct admit *a);

static struct admit *admit_new(struct health *h, int model, int64_t tokens, health_admit_cb *cb,
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
static void admit_done(struct health *h, struct admit *a, enum health_verdict v, int64_t retry)
{
	if (!a->cancelled && !h->dead)
		a->cb(a->opaque, v, retry);
	admit_unlink(h, a);
}

/* The credits are there: claim the probe if one is due, else go. */
static void admit_proceed(struct health *h, struct admit *a)
{
	enum health_circuit c = health_circuit(h, a->model, time_mono_ms());
	if (c == HEALTH_OPEN || (c == HEALTH_PROBE_ALLOWED && !redis_up(h))) {
		credits_refund(h, a);
		admit_done(h, a, HEALTH_CIRCUIT_OPEN, 0);
	} else if (c == HEALTH_PROBE_ALLOWED) {
		claim_send(h, a);
	} else {
		admit_done(h, a, HEALTH_GO, 0);
	}
}

static void queue_push(struct hprov *p, struct admit *a)
{
	a->qnext = NULL;
	if (p->qtail)
		p->qtail->qnext = a;
	else
		p->qhead = a;
	p->qtail = a;
	p->qlen++;
}

/* Until when (monotonic ms) the provider holds back a call needing tokens:
 * a 429's throttle, or the shared bucket dry with no local credit for it.
 * 0: it may go (or take from the bucket) now. */
static int64_t held_until(const struct hprov *p, int64_t tokens, int64_t now)
{
	int64_t until = p->throttled_until > now ? p->throttled_until : 0;
	if (limited_provider(p) && p->dry_until > now && p->dry_until > until &&
	    !(p->credit_expires > now && credits_cover(p, tokens)))
		until = p->dry_until;
	return until;
}

static void on_wake(uv_timer_t *timer);

/* What the queue needs next: the wake timer while the provider holds back,
 * else a take (or, unlimited, nothing to wait for). */
static void queue_next(struct health *h, struct hprov *p)
{
	if (!p->qhead || h->dead)
		return;
	int64_t now = time_mono_ms();
	int64_t until = held_until(p, p->qhead->tokens, now);
	if (until > 0 && h->loop) {
		uv_timer_start(&p->wake, on_wake, (uint64_t)(until - now), 0);
	} else if (!p->taking) {
		take_send(h, p);
	}
}

/* Serves the queue in order while the credits last (after a take's answer,
 * or when the wake timer fires). wait_ms > 0: the bucket is dry; admissions
 * are told to retry, waiters stay. failed: Redis did not answer. */
static void queue_serve(struct health *h, struct hprov *p, int64_t wait_ms, bool failed)
{
	struct admit *a = p->qhead;
	int64_t now = time_mono_ms();
	int64_t throttled = p->throttled_until > now ? p->throttled_until - now : 0;
	p->qhead = p->qtail = NULL;
	p->qlen = 0;
	while (a) {
		struct admit *next = a->qnext;
		if (a->cancelled) {
			admit_unlink(h, a);
		} else if (throttled > 0) {
			if (a->waits && !failed)
				queue_push(p, a);
			else
				admit_done(h, a, HEALTH_LIMITED,
				           failed ? REDIS_DOWN_RETRY_MS : throttled);
		} else if (credits_cover(p, a->tokens)) {
			credits_take(p, a, a->tokens);
			admit_proceed(h, a);
		} else if (failed) {
			admit_done(h, a, HEALTH_LIMITED, REDIS_DOWN_RETRY_MS);
		} else if (wait_ms > 0 && !a->waits) {
			admit_done(h, a, HEALTH_LIMITED, wait_ms);
		} else {
			queue_push(p, a);
		}
		a = next;
	}
	queue_next(h, p);
}

static void on_wake(uv_timer_t *timer)
{
	struct hprov *p = timer->data;
	struct health *h = p->h;
	int64_t now = time_mono_ms();
	if (h->dead || !p->qhead)
		return;
	if (!redis_up(h) && limited_provider(p)) {
		queue_serve(h, p, 0, true);
		return;
	}
	credits_expire(p, now);
	/* Unlimited (a 429 held it) or credits left: serve; else take. */
	if (!limited_provider(p) || credits_cover(p, p->qhead->tokens))
		queue_serve(h, p, 0, false);
	else
		queue_next(h, p);
}

static void on_take(void *opaque, redisReply *reply)
{
	struct hprov *p = opaque;
	struct health *h = p->h;
	h->calls--;
	p->taking = false;
	if (h->dead) {
		maybe_free(h);
		return;
	}
	int64_t now = time_mono_ms();
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER ||
	    reply->element[1]->type != REDIS_REPLY_INTEGER ||
	    reply->element[2]->type != REDIS_REPLY_INTEGER) {
		if (reply && reply->type == REDIS_REPLY_ERROR)
			log_warn("rate limit script failed", "error", reply->str, NULL);
		queue_serve(h, p, 0, true);
		return;
	}
	int64_t wait = reply->element[2]->integer;
	if (wait > 0) {
		p->dry_until = now + wait;
	} else {
		credits_expire(p, now);
		p->credit_req += reply->element[0]->integer;
		p->credit_tok += reply->element[1]->integer;
		p->credit_expires = now + h->credit_ttl_ms;
		p->dry_until = 0;
	}
	queue_serve(h, p, wait, false);
}

/* Asks the shared buckets for what the queue's head needs, plus a batch
 * sized by recent demand (at most a quarter of the burst). */
static void take_send(struct health *h, struct hprov *p)
{
	struct admit *head = p->qhead;
	while (head && head->cancelled)
		head = head->qnext;
	if (!head)
		return;
	if (!redis_up(h)) {
		queue_serve(h, p, 0, true);
		return;
	}
	int64_t need_req = p->rpm ? 1 : 0, need_tok = p->tpm ? head->tokens : 0;
	int64_t more_req = p->last_req > p->demand_req ? p->last_req : p->demand_req;
	int64_t more_tok = p->last_tok > p->demand_tok ? p->last_tok : p->demand_tok;
	if (more_req < (int64_t)p->qlen - 1)
		more_req = (int64_t)p->qlen - 1;
	if (more_req > p->burst_req / 4)
		more_req = p->burst_req / 4;
	if (more_tok > p->burst_tok / 4)
		more_tok = p->burst_tok / 4;
	char vals[7][24];
	const char *argv[8];
	size_t lens[8];
	long long v[7] = {h->opt.rate_period_ms,
	                  p->rpm,
	                  p->tpm,
	                  need_req,
	                  need_tok,
	                  p->rpm ? need_req + more_req : 0,
	                  p->tpm ? need_tok + more_tok : 0};
	argv[0] = p->key;
	lens[0] = p->key_len;
	for (int i = 0; i < 7; i++) {
		snprintf(vals[i], sizeof vals[i], "%lld", v[i]);
		argv[i + 1] = vals[i];
		lens[i + 1] = strlen(vals[i]);
	}
	p->taking = true;
	h->calls++;
	redis_eval(h->r, h->s_rate, on_take, p, 1, 8, argv, lens);
}

static void on_claim(void *opaque, redisReply *reply)
{
	struct admit *a = opaque;
	struct health *h = a->h;
	struct hmodel *m = &h->models[a->model];
	h->calls--;
	if (a->cold)
		m->cold_claiming = false;
	else
		m->claiming = false;
	if (h->dead) {
		admit_unlink(h, a);
		maybe_free(h);
		return;
	}
	int64_t now = time_mono_ms();
	long long r = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
	if (a->cold) {
		if (r == 1) {
			m->cold_held = !a->cancelled;
			admit_done(h, a, HEALTH_GO, 0);
		} else {
			/* Another worker's call on the cold model is out (or Redis is
			 * away): wait for its outcome rather than pile on. */
			credits_refund(h, a);
			admit_done(h, a, HEALTH_LIMITED, COLD_RETRY_MS);
		}
		return;
	}
	if (r == 1) {
		/* Held: other calls here wait for its outcome (health_record). */
		const struct config *cfg = h->cfg;
		int64_t lease = cfg->providers[cfg->models[a->model].provider].timeout_ms +
		                PROBE_LEASE_MARGIN_MS;
		m->probe_until = now + lease;
		m->probe_held = !a->cancelled;
		admit_done(h, a, HEALTH_GO, 0);
	} else if (r == 2) {
		m->open_until = 0; /* someone closed it meanwhile */
		admit_done(h, a, HEALTH_GO, 0);
	} else {
		/* Another worker probes (or Redis is away): closed to us until the
		 * next view says otherwise. */
		m->probe_until = now + h->opt.refresh_ms;
		credits_refund(h, a);
		admit_done(h, a, HEALTH_CIRCUIT_OPEN, 0);
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
	const char *mode = a->cold ? "cold" : "probe";
	const char *argv[5] = {m->ckey, h->view_key, h->worker_id, lease, mode};
	size_t lens[5] = {m->ckey_len, h->view_key_len, strlen(h->worker_id), strlen(lease),
	                  strlen(mode)};
	if (a->cold)
		m->cold_claiming = true;
	else
		m->claiming = true;
	a->in_claim = true;
	h->calls++;
	redis_eval(h->r, h->s_probe, on_claim, a, 2, 5, argv, lens);
}

enum health_verdict health_admit(struct health *h, int model, int64_t tokens, health_admit_cb *cb,
                                 void *opaque, int64_t *retry_after_ms)
{
	struct hprov *p = &h->provs[h->cfg->models[model].provider];
	int64_t now = time_mono_ms();
	*retry_after_ms = 0;
	enum health_circuit c = health_circuit(h, model, now);
	if (c == HEALTH_OPEN)
		return HEALTH_CIRCUIT_OPEN;
	if (p->throttled_until > now) {
		*retry_after_ms = p->throttled_until - now;
		return HEALTH_LIMITED;
	}
	int64_t req = 0, tok = 0;
	if (limited_provider(p)) {
		credits_expire(p, now);
		demand_note(p, tokens, now);
		if (p->qhead || !credits_cover(p, tokens)) {
			if (p->dry_until > now && !p->taking) {
				*retry_after_ms = p->dry_until - now;
				return HEALTH_LIMITED;
			}
			if (!redis_up(h)) {
				*retry_after_ms = REDIS_DOWN_RETRY_MS;
				return HEALTH_LIMITED;
			}
			struct admit *a = admit_new(h, model, tokens, cb, opaque);
			queue_push(p, a);
			if (!p->taking)
				take_send(h, p);
			return HEALTH_PENDING;
		}
		req = p->rpm ? 1 : 0;
		tok = p->tpm ? tokens : 0;
		credits_take(p, NULL, tokens);
	}
	struct hmodel *hm = &h->models[model];
	if (c == HEALTH_CLOSED && is_cold(hm)) {
		if (hm->cold_claiming || hm->cold_held || !redis_up(h)) {
			p->credit_req += req;
			p->credit_tok += tok;
			*retry_after_ms = COLD_RETRY_MS;
			return HEALTH_LIMITED;
		}
		struct admit *a = admit_new(h, model, tokens, cb, opaque);
		a->req = req;
		a->tok = tok;
		a->cold = true;
		claim_send(h, a);
		return HEALTH_PENDING;
	}
	if (c == HEALTH_PROBE_ALLOWED) {
		if (!redis_up(h)) {
			p->credit_req += req;
			p->credit_tok += tok;
			return HEALTH_CIRCUIT_OPEN;
		}
		struct admit *a = admit_new(h, model, tokens, cb, opaque);
		a->req = req;
		a->tok = tok;
		claim_send(h, a);
		return HEALTH_PENDING;
	}
	return HEALTH_GO;
}

enum health_verdict health_wait(struct health *h, int model, int64_t tokens, health_admit_cb *cb,
                                void *opaque, int64_t *retry_after_ms)
{
	struct hprov *p = &h->provs[h->cfg->models[model].provider];
	int64_t now = time_mono_ms();
	*retry_after_ms = 0;
	if (health_circuit(h, model, now) == HEALTH_OPEN)
		return HEALTH_CIRCUIT_OPEN;
	int64_t until = held_until(p, tokens, now);
	if (until == 0 || !h->loop) {
		*retry_after_ms = until > now ? until - now : 1;
		return HEALTH_LIMITED;
	}
	if (!redis_up(h)) {
		*retry_after_ms = REDIS_DOWN_RETRY_MS;
		return HEALTH_LIMITED;
	}
	struct admit *a = admit_new(h, model, tokens, cb, opaque);
	a->waits = true;
	queue_push(p, a);
	if (!p->taking)
		queue_next(h, p);
	return HEALTH_PENDING;
}

void health_admit_cancel(struct health *h, void *opaque)
{
	for (struct admit *a = h->admits; a; a = a->next)
		if (a->opaque == opaque)
			a->cancelled = true;
}
