/* metrics: a fixed registry of counters, gauges and one histogram, rendered
 * in Prometheus text format, and the HTTP endpoint that serves it from the
 * worker's libuv loop. */
#include "metrics.h"

#include "httpd.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metric_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM };

struct metric_def {
	const char *name;
	enum metric_type type;
	const char *help;
	size_t n_labels;
	const char *labels[METRICS_MAX_LABELS];
	/* Stored integer = shown value x scale: 1 for counts, 1000 for ms shown
	 * as seconds, 1e9 for nano-USD shown as USD. */
	int64_t scale;
};

/* The names of SPEC §11 are fixed: dashboards and alerts are written against them. */
static const struct metric_def defs[METRIC_COUNT] = {
        [METRIC_JOBS_TOTAL] =
                {"promptyard_jobs_total",
                 TYPE_COUNTER,
                 "Jobs finished, by status (ok, error) and error code (empty for ok).",
                 2,
                 {"status", "code"},
                 1},
        [METRIC_ATTEMPTS_TOTAL] = {"promptyard_attempts_total",
                                   TYPE_COUNTER,
                                   "Provider attempts, by provider, model and outcome "
                                   "(ok, http_<status>, timeout, connect_error, invalid_response, "
                                   "rate_limited, circuit_open).",
                                   3,
                                   {"provider", "model", "outcome"},
                                   1},
        [METRIC_SPEND_USD_TOTAL] =
                {"promptyard_spend_usd_total",
                 TYPE_COUNTER,
                 "Spend charged to budgets in USD (kept exactly in nano-USD), by "
                 "budget, provider and model.",
                 3,
                 {"budget", "provider", "model"},
                 1000000000},
        [METRIC_IN_FLIGHT_JOBS] = {"promptyard_in_flight_jobs",
                                   TYPE_GAUGE,
                                   "Jobs taken from Kafka and not yet finished.",
                                   0,
                                   {NULL},
                                   1},
        [METRIC_PROVIDER_LATENCY] =
                {"promptyard_provider_latency_seconds",
                 TYPE_HISTOGRAM,
                 "Wall time of provider calls in seconds, by provider and model.",
                 2,
                 {"provider", "model"},
                 1000},
        [METRIC_BUDGET_REMAINING_USD] = {"promptyard_budget_remaining_usd",
                                         TYPE_GAUGE,
                                         "What is left of each budget's current window in USD, as "
                                         "last seen in Redis.",
                                         1,
                                         {"budget"},
                                         1000000000},
        [METRIC_CIRCUIT_OPEN] = {"promptyard_circuit_open",
                                 TYPE_GAUGE,
                                 "1 while the model's circuit breaker is open, else 0.",
                                 1,
                                 {"model"},
                                 1},
        [METRIC_READY] = {"promptyard_ready",
                          TYPE_GAUGE,
                          "1 when /readyz answers 200 (evaluated at each scrape), else 0.",
                          0,
                          {NULL},
                          1},
        [METRIC_REDIS_CONNECTED] = {"promptyard_redis_connected",
                                    TYPE_GAUGE,
                                    "1 while the Redis connection is up and ready, else 0.",
                                    0,
                                    {NULL},
                                    1},
        [METRIC_ASSIGNED_PARTITIONS] = {"promptyard_assigned_partitions",
                                        TYPE_GAUGE,
                                        "Input topic partitions assigned to this worker.",
                                        0,
                                        {NULL},
                                        1},
        [METRIC_PAUSED] = {"promptyard_paused",
                           TYPE_GAUGE,
                           "1 while consumption is paused (on_budget_exhausted = pause), else 0.",
                           0,
                           {NULL},
                           1},
        [METRIC_COST_RECORDS_TOTAL] = {"promptyard_cost_records_total",
                                       TYPE_COUNTER,
                                       "Cost records produced; estimated=\"true\" for orphaned "
                                       "reservations charged at their estimate.",
                                       1,
                                       {"estimated"},
                                       1},
        [METRIC_BATCHES] = {"promptyard_batches",
                            TYPE_GAUGE,
                            "Provider batches this worker holds (SPEC 14), by state: submitting "
                            "(prepared, sent, being recorded or searched for), polling "
                            "(recorded, not ended), collecting (ended, its answers being "
                            "settled and produced).",
                            1,
                            {"state"},
                            1},
        [METRIC_BATCHES_TOTAL] = {"promptyard_batches_total",
                                  TYPE_COUNTER,
                                  "Provider batches that reached a state on this worker: "
                                  "recorded (accepted and recorded, or adopted), canceled "
                                  "(a cancel sent: deadline or operator), collected, abandoned "
                                  "(no provider batch holds it).",
                                  3,
                                  {"provider", "model", "state"},
                                  1},
        [METRIC_BATCHED_JOBS_TOTAL] = {"promptyard_batched_jobs_total",
                                       TYPE_COUNTER,
                                       "Jobs handed to recorded provider batches (state batched: "
                                       "their offsets may be committed).",
                                       2,
                                       {"provider", "model"},
                                       1},
        [METRIC_BATCH_SPEND_USD_TOTAL] = {"promptyard_batch_spend_usd_total",
                                          TYPE_COUNTER,
                                          "Spend of provider batches' answers at batch prices "
                                          "in USD (part of promptyard_spend_usd_total), by "
                                          "budget, provider and model.",
                                          3,
                                          {"budget", "provider", "model"},
                                          1000000000},
};

/* 50 ms to 2 minutes: a cached short answer to a long generation. */
const int64_t metrics_latency_bounds_ms[METRICS_LATENCY_BUCKETS] = {
        50, 100, 250, 500, 1000, 2000, 4000, 8000, 15000, 30000, 45000, 60000, 90000, 120000};

struct metrics_series {
	const struct metric_def *def;
	struct metrics_series *next; /* creation order */
	uint64_t hash;
	char *labels[METRICS_MAX_LABELS];
	char *rendered;    /* "a=\"x\",b=\"y\"" with values escaped; "" when unlabelled */
	int64_t value;     /* counter or gauge; a histogram's sum */
	uint64_t count;    /* histogram observations */
	uint64_t *buckets; /* histogram: per bucket, not cumulative; [N] is +Inf */
};

/* One metric's series: an open-addressing table for lookups and a list for
 * a stable rendering order. */
struct family {
	struct metrics_series **slots;
	size_t cap; /* a power of two */
	size_t n;
	struct metrics_series *first, *last;
};

struct metrics {
	struct family fam[METRIC_COUNT];
};

/* ---------------------------------------------------------------- registry */

const char *metrics_name(enum metric_id id)
{
	return (unsigned)id < METRIC_COUNT ? defs[id].name : "?";
}

size_t metrics_label_count(enum metric_id id)
{
	return (unsigned)id < METRIC_COUNT ? defs[id].n_labels : 0;
}

static const char *label_at(const char *const *labels, size_t i)
{
	return labels && labels[i] ? labels[i] : "";
}

static uint64_t labels_hash(const struct metric_def *d, const char *const *labels)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < d->n_labels; i++) {
		for (const unsigned char *p = (const unsigned char *)label_at(labels, i); *p; p++) {
			h ^= *p;
			h *= 1099511628211ull;
		}
		h ^= 0xff; /* separator: ("ab","") differs from ("a","b") */
		h *= 1099511628211ull;
	}
	return h;
}

static bool labels_equal(const struct metrics_series *s, const char *const *labels)
{
	for (size_t i = 0; i < s->def->n_labels; i++)
		if (strcmp(s->labels[i], label_at(labels, i)) != 0)
			return false;
	return true;
}

/* A label value as the text format wants it: \ " and newline escaped. */
static void put_label_value(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			buf_puts(b, "\\\\");
		else if (*v == '"')
			buf_puts(b, "\\\"");
		else if (*v == '\n')
			buf_puts(b, "\\n");
		else
			buf_append(b, v, 1);
	}
}

static void family_grow(struct family *f)
{
	size_t cap = f->cap ? f->cap * 2 : 16;
	struct metrics_series **slots = xcalloc(cap, sizeof *slots);
	for (struct metrics_series *s = f->first; s; s = s->next) {
		size_t i = (size_t)s->hash & (cap - 1);
		while (slots[i])
			i = (i + 1) & (cap - 1);
		slots[i] = s;
	}
	free(f->slots);
	f->slots = slots;
	f->cap = cap;
}

static struct metrics_series *series_new(const struct metric_def *d, const char *const *labels,
                                         uint64_t hash)
{
	struct metrics_series *s = xcalloc(1, sizeof *s);
	struct buf r = {0};
	s->def = d;
	s->hash = hash;
	for (size_t i = 0; i < d->n_labels; i++) {
		s->labels[i] = xstrdup(label_at(labels, i));
		buf_printf(&r, "%s%s=\"", i ? "," : "", d->labels[i]);
		put_label_value(&r, s->labels[i]);
		buf_puts(&r, "\"");
	}
	s->rendered = r.data ? buf_take(&r) : xstrdup("");
	if (d->type == TYPE_HISTOGRAM)
		s->buckets = xcalloc(METRICS_LATENCY_BUCKETS + 1, sizeof *s->buckets);
	return s;
}

struct metrics_series *metrics_series(struct metrics *m, enum metric_id id,
                                      const char *const *labels)
{
	if ((unsigned)id >= METRIC_COUNT)
		return NULL;
	const struct metric_def *d = &defs[id];
	struct family *f = &m->fam[id];
	uint64_t h = labels_hash(d, labels);
	if (f->cap) {
		for (size_t i = (size_t)h & (f->cap - 1); f->slots[i]; i = (i + 1) & (f->cap - 1)) {
			struct metrics_series *s = f->slots[i];
			if (s->hash == h && labels_equal(s, labels))
				return s;
		}
	}
	/* New series: the only allocation an update can cause. */
	if ((f->n + 1) * 10 > f->cap * 7)
		family_grow(f);
	struct metrics_series *s = series_new(d, labels, h);
	size_t i = (size_t)h & (f->cap - 1);
	while (f->slots[i])
		i = (i + 1) & (f->cap - 1);
	f->slots[i] = s;
	f->n++;
	if (f->last)
		f->last->next = s;
	else
		f->first = s;
	f->last = s;
	return s;
}

struct metrics *metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof *m);
	/* Unlabelled metrics exist from the start, so a scrape shows them at 0. */
	for (int id = 0; id < METRIC_COUNT; id++)
		if (defs[id].n_labels == 0)
			metrics_series(m, (enum metric_id)id, NULL);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (int id = 0; id < METRIC_COUNT; id++) {
		struct metrics_series *s = m->fam[id].first;
		while (s) {
			struct metrics_series *next = s->next;
			for (size_t i = 0; i < s->def->n_labels; i++)
				free(s->labels[i]);
			free(s->rendered);
			free(s->buckets);
			free(s);
			s = next;
		}
		free(m->fam[id].slots);
	}
	free(m);
}

void metrics_series_add(struct metrics_series *s, int64_t delta)
{
	if (!s || s->def->type == TYPE_HISTOGRAM)
		return;
	if (s->def->type == TYPE_COUNTER && delta < 0)
		return; /* a counter never goes down */
	s->value += delta;
}

void metrics_series_set(struct metrics_series *s, int64_t value)
{
	if (s && s->def->type == TYPE_GAUGE)
		s->value = value;
}

void metrics_series_observe(struct metrics_series *s, int64_t value)
{
	if (!s || s->def->type != TYPE_HISTOGRAM)
		return;
	size_t i = 0;
	while (i < METRICS_LATENCY_BUCKETS && value > metrics_latency_bounds_ms[i])
		i++;
	s->buckets[i]++;
	s->count++;
	s->value += value;
}

int64_t metrics_series_value(const struct metrics_series *s)
{
	if (!s)
		return 0;
	return s->def->type == TYPE_HISTOGRAM ? (int64_t)s->count : s->value;
}

void metrics_add(struct metrics *m, enum metric_id id, const char *const *labels, int64_t delta)
{
	metrics_series_add(metrics_series(m, id, labels), delta);
}

void metrics_set(struct metrics *m, enum metric_id id, const char *const *labels, int64_t value)
{
	metrics_series_set(metrics_series(m, id, labels), value);
}

void metrics_observe(struct metrics *m, enum metric_id id, const char *const *labels, int64_t value)
{
	metrics_series_observe(metrics_series(m, id, labels), value);
}

/* ---------------------------------------------------------------- rendering */

/* Writes v / scale exactly, as a decimal with no trailing zeros ("0.0001794",
 * "12", "-0.5"). scale is 1 or a power of ten. */
static void put_scaled(struct buf *b, int64_t v, int64_t scale)
{
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	uint64_t sc = (uint64_t)scale;
	uint64_t whole = u / sc, frac = u % sc;
	buf_printf(b, "%s%llu", v < 0 ? "-" : "", (unsigned long long)whole);
	if (!frac)
		return;
	/* The fraction's digits, most significant first, trailing zeros dropped. */
	char f[24];
	size_t n = 0;
	for (uint64_t t = sc / 10; t > 0 && n < sizeof f; t /= 10) {
		f[n++] = (char)('0' + frac / t);
		frac %= t;
	}
	while (n > 0 && f[n - 1] == '0')
		n--;
	buf_puts(b, ".");
	buf_append(b, f, n);
}

/* HELP text escaping: backslash and newline. */
static void put_help(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(b, "\\\\");
		else if (*s == '\n')
			buf_puts(b, "\\n");
		else
			buf_append(b, s, 1);
	}
}

static void put_sample(struct buf *b, const char *name, const char *suffix, const char *labels,
                       const char *extra_label, int64_t v, int64_t scale)
{
	buf_printf(b, "%s%s", name, suffix);
	if (labels[0] || extra_label) {
		buf_printf(b, "{%s", labels);
		if (extra_label)
			buf_printf(b, "%s%s", labels[0] ? "," : "", extra_label);
		buf_puts(b, "}");
	}
	buf_puts(b, " ");
	put_scaled(b, v, scale);
	buf_puts(b, "\n");
}

void metrics_render(const struct metrics *m, struct buf *out)
{
	static const char *type_names[] = {"counter", "gauge", "histogram"};
	for (int id = 0; id < METRIC_COUNT; id++) {
		const struct metric_def *d = &defs[id];
		buf_printf(out, "# HELP %s ", d->name);
		put_help(out, d->help);
		buf_printf(out, "\n# TYPE %s %s\n", d->name, type_names[d->type]);
		for (const struct metrics_series *s = m->fam[id].first; s; s = s->next) {
			if (d->type != TYPE_HISTOGRAM) {
				put_sample(out, d->name, "", s->rendered, NULL, s->value, d->scale);
				continue;
			}
			uint64_t cum = 0;
			char le[48];
			struct buf bound = {0};
			for (size_t i = 0; i <= METRICS_LATENCY_BUCKETS; i++) {
				cum += s->buckets[i];
				buf_reset(&bound);
				if (i < METRICS_LATENCY_BUCKETS)
					put_scaled(&bound, metrics_latency_bounds_ms[i], d->scale);
				snprintf(le, sizeof le, "le=\"%s\"",
				         i < METRICS_LATENCY_BUCKETS ? bound.data : "+Inf");
				put_sample(out, d->name, "_bucket", s->rendered, le, (int64_t)cum,
				           1);
			}
			buf_free(&bound);
			put_sample(out, d->name, "_sum", s->rendered, NULL, s->value, d->scale);
			put_sample(out, d->name, "_count", s->rendered, NULL, (int64_t)s->count, 1);
		}
	}
}

/* ---------------------------------------------------------------- HTTP */

struct metrics_server {
	struct httpd *h;
	struct metrics *m;
	metrics_ready_fn *ready;
	void *opaque;
};

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static bool is_ready(struct metrics_server *s, char *reason, size_t reason_size)
{
	reason[0] = '\0';
	bool ok = s->ready ? s->ready(s->opaque, reason, reason_size) : true;
	metrics_set(s->m, METRIC_READY, NULL, ok ? 1 : 0);
	return ok;
}

static void on_request(void *opaque, const char *path, struct httpd_response *out)
{
	struct metrics_server *s = opaque;
	char reason[256];
	if (strcmp(path, "/metrics") == 0) {
		struct buf b = {0};
		is_ready(s, reason, sizeof reason);
		metrics_render(s->m, &b);
		free(out->body);
		out->status = 200;
		out->content_type = METRICS_CONTENT_TYPE;
		out->len = b.len;
		out->body = buf_take(&b);
	} else if (strcmp(path, "/healthz") == 0) {
		httpd_text(out, 200, "ok\n");
	} else if (strcmp(path, "/readyz") == 0) {
		if (is_ready(s, reason, sizeof reason)) {
			httpd_text(out, 200, "ready\n");
		} else {
			struct buf b = {0};
			buf_printf(&b, "not ready: %s\n", reason[0] ? reason : "unknown");
			httpd_text(out, 503, b.data);
			buf_free(&b);
		}
	} else {
		httpd_text(out, 404, "not found: try /metrics, /healthz, /readyz\n");
	}
}

struct metrics_server *metrics_server_start(uv_loop_t *loop, struct metrics *m, const char *listen,
                                            metrics_ready_fn *ready, void *opaque, char *errstr,
                                            size_t errstr_size)
{
	struct metrics_server *s = xcalloc(1, sizeof *s);
	s->m = m;
	s->ready = ready;
	s->opaque = opaque;
	s->h = httpd_start(loop, listen, "worker.metrics_listen", on_request, s, errstr,
	                   errstr_size);
	if (!s->h) {
		free(s);
		return NULL;
	}
	char port_s[8];
	snprintf(port_s, sizeof port_s, "%d", httpd_port(s->h));
	log_info("metrics endpoint listening", "listen", listen, "port", port_s, NULL);
	return s;
}

int metrics_server_port(const struct metrics_server *s)
{
	return httpd_port(s->h);
}

void metrics_server_stop(struct metrics_server *s)
{
	if (!s)
		return;
	httpd_stop(s->h);
	free(s);
}
