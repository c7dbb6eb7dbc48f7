/* metrics: the worker's Prometheus metrics and its HTTP endpoint (SPEC §11).
 *
 * A fixed registry: every metric the worker exports is one row of the table
 * in metrics.c, named by an enum metric_id, with its label names. A series
 * (one combination of label values) is created on first use and lives as
 * long as the registry; after that, an update is a hash lookup and an
 * integer add, with no allocation. A caller on a hot path may keep the
 * series pointer (metrics_series()) and skip the lookup altogether.
 *
 * Values are kept as integers in the metric's base unit and converted
 * exactly when rendered: spend in nano-USD (shown as USD), latencies in
 * milliseconds (shown as seconds), counts as counts. No float is summed.
 *
 * The HTTP endpoint (httpd.h: libmicrohttpd on the worker's libuv loop,
 * without a thread of its own) serves every request on the loop's one
 * thread, between jobs. It answers
 *   GET /metrics   the registry in Prometheus text format 0.0.4
 *   GET /healthz   200 while the process runs
 *   GET /readyz    200 when the readiness callback says so, else 503 with
 *                  the reason it gave
 * and 404 (405 for a method other than GET or HEAD) to anything else. */
#ifndef PROMPTYARD_METRICS_H
#define PROMPTYARD_METRICS_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Every metric, in the order /metrics shows them. Label values are given in
 * the order written after each. */
enum metric_id {
	METRIC_JOBS_TOTAL,           /* counter {status, code}: jobs finished; code "" for ok */
	METRIC_ATTEMPTS_TOTAL,       /* counter {provider, model, outcome}: provider attempts */
	METRIC_SPEND_USD_TOTAL,      /* counter {budget, provider, model}: add nano-USD */
	METRIC_IN_FLIGHT_JOBS,       /* gauge {}: jobs taken and not finished */
	METRIC_PROVIDER_LATENCY,     /* histogram {provider, model}: observe milliseconds */
	METRIC_BUDGET_REMAINING_USD, /* gauge {budget}: set nano-USD */
	METRIC_CIRCUIT_OPEN,         /* gauge {model}: 1 open, 0 closed */
	/* Extensions (not in the SPEC's list). */
	METRIC_READY,               /* gauge {}: 1 when /readyz answers 200 (set at each scrape) */
	METRIC_REDIS_CONNECTED,     /* gauge {}: 1 while the Redis connection is ready */
	METRIC_ASSIGNED_PARTITIONS, /* gauge {}: input partitions assigned to this worker */
	METRIC_PAUSED,              /* gauge {}: 1 while consumption is paused (budget pause) */
	METRIC_COST_RECORDS_TOTAL, /* counter {estimated}: cost records produced ("true"/"false") */
	/* Batch mode (SPEC §14). */
	METRIC_BATCHES,            /* gauge {state}: provider batches this worker holds, by
	                                state (submitting, polling, collecting) */
	METRIC_BATCHES_TOTAL,      /* counter {provider, model, state}: batches that reached
	                                state (recorded, canceled, collected, abandoned) here */
	METRIC_BATCHED_JOBS_TOTAL, /* counter {provider, model}: jobs handed to recorded batches */
	METRIC_BATCH_SPEND_USD_TOTAL, /* counter {budget, provider, model}: add nano-USD of
	                                 batch answers (also in METRIC_SPEND_USD_TOTAL) */
	METRIC_COUNT
};

/* Histogram buckets of METRIC_PROVIDER_LATENCY, upper bounds in ms (the
 * +Inf bucket is implicit): LLM calls take from tens of ms to minutes. */
#define METRICS_LATENCY_BUCKETS 14
extern const int64_t metrics_latency_bounds_ms[METRICS_LATENCY_BUCKETS];

#define METRICS_MAX_LABELS 3

struct metrics;
struct metrics_series;

/* A new, empty registry (unlabelled gauges start at 0). Never NULL. */
struct metrics *metrics_new(void);
/* Frees the registry and every series. NULL is safe. */
void metrics_free(struct metrics *m);

/* The metric's full name ("promptyard_jobs_total") and number of labels. */
const char *metrics_name(enum metric_id id);
size_t metrics_label_count(enum metric_id id);

/* The series of metric id for labels (metrics_label_count(id) values,
 * borrowed; a NULL value is ""; labels may be NULL for an unlabelled
 * metric), created on first use. The pointer is borrowed and stays valid
 * until metrics_free(). */
struct metrics_series *metrics_series(struct metrics *m, enum metric_id id,
                                      const char *const *labels);

/* Updates through a series pointer: no lookup, no allocation.
 * add: counters and gauges (a counter ignores a negative delta);
 * set: gauges only (ignored on a counter or histogram);
 * observe: histograms only, value in the base unit (ms). */
void metrics_series_add(struct metrics_series *s, int64_t delta);
void metrics_series_set(struct metrics_series *s, int64_t value);
void metrics_series_observe(struct metrics_series *s, int64_t value);
/* The current value (counter or gauge; a histogram's count). */
int64_t metrics_series_value(const struct metrics_series *s);

/* Lookup and update in one call, e.g.
 *   metrics_add(m, METRIC_JOBS_TOTAL, (const char *[]){"error", "expired"}, 1);
 *   metrics_add(m, METRIC_SPEND_USD_TOTAL, (const char *[]){budget, provider, model}, cost_nusd);
 *   metrics_observe(m, METRIC_PROVIDER_LATENCY, (const char *[]){provider, model}, latency_ms);
 *   metrics_set(m, METRIC_IN_FLIGHT_JOBS, NULL, in_flight); */
void metrics_add(struct metrics *m, enum metric_id id, const char *const *labels, int64_t delta);
void metrics_set(struct metrics *m, enum metric_id id, const char *const *labels, int64_t value);
void metrics_observe(struct metrics *m, enum metric_id id, const char *const *labels,
                     int64_t value);

/* Appends the registry in Prometheus text format 0.0.4 to out: for every
 * metric a # HELP and a # TYPE line, then its series in creation order. */
void metrics_render(const struct metrics *m, struct buf *out);

/* ---------------------------------------------------------------- HTTP */

struct metrics_server;

/* Is the worker ready? On false, writes a short reason (one line, no
 * secret) to reason. Called on the loop for each /readyz and /metrics. */
typedef bool metrics_ready_fn(void *opaque, char *reason, size_t reason_size);

/* Serves m (borrowed; must outlive the server) on listen ("HOST:PORT",
 * "[V6]:PORT" or ":PORT" for every interface; port 0 picks a free one) from
 * loop. ready may be NULL (always ready). Returns NULL with errstr set when
 * the address is bad or cannot be bound. */
struct metrics_server *metrics_server_start(uv_loop_t *loop, struct metrics *m, const char *listen,
                                            metrics_ready_fn *ready, void *opaque, char *errstr,
                                            size_t errstr_size);
/* The port it listens on. */
int metrics_server_port(const struct metrics_server *s);
/* Closes the listener and every connection at once and frees the server once
 * libuv has closed its handles: the loop must run afterwards. NULL is safe. */
void metrics_server_stop(struct metrics_server *s);

#endif
