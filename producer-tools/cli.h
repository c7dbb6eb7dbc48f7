/* cli: what the subcommands of bin/promptyard share.
 *
 * Each subcommand is one file, cli_<name>.c, exporting
 * `int cli_<name>(int argc, char **argv)` (argv[0] is the subcommand's name)
 * and one line in main.c's table. Exit status: 0 success, 1 runtime failure,
 * 2 usage or configuration error (SPEC §1). */
#ifndef PROMPTYARD_CLI_H
#define PROMPTYARD_CLI_H

#include "config.h"

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cli_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

#define PROMPTYARD_VERSION "0.1.0"

/* Loads the configuration at path for a command line tool (API keys are not
 * required) and applies the --brokers / --redis HOST:PORT overrides (either
 * may be NULL). On error prints "promptyard SUB: FILE:LINE: KEY: problem" on
 * stderr and returns NULL: the caller exits 2. */
struct config *cli_config(const char *sub, const char *path, const char *brokers,
                          const char *redis);

/* A blocking Redis connection for a tool (authenticated, db selected). On
 * error prints "promptyard SUB: redis HOST:PORT: why" and returns NULL: the
 * caller exits 1. */
redisContext *cli_redis(const char *sub, const struct config *cfg);
/* The same, quiet: NULL with errstr set ("redis HOST:PORT: why"). */
redisContext *cli_redis_connect(const struct config *cfg, char *errstr, size_t errstr_size);

/* Reads path ("-": stdin) whole into a new NUL-terminated buffer (its length,
 * the NUL not counted, in *len), or returns NULL with errno set. */
char *cli_read_file(const char *path, size_t *len);

/* Whether stderr is a terminal (progress bars) or not (plain progress lines). */
bool cli_tty(void);

/* ---------------------------------------------------------------- signals (cli_signal.c) */

/* Set by SIGINT, SIGTERM or SIGHUP once cli_catch_signals() ran: long
 * commands stop at the next check, report what they have and exit 1. A
 * second signal exits at once (status 1). */
extern volatile sig_atomic_t cli_interrupted;
void cli_catch_signals(void);

/* ---------------------------------------------------------------- Kafka (cli_kafka.c) */

/* How long a tool waits for the brokers to answer a metadata or watermark
 * request before it calls them unreachable (exit 1). */
#define CLI_KAFKA_TIMEOUT_MS 10000

/* An idempotent producer (acks=all) on cfg's brokers and properties; dr, if
 * not NULL, gets every delivery report with opaque. NULL with errstr set on
 * a bad property. */
rd_kafka_t *cli_kafka_producer(const struct config *cfg,
                               void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               void *opaque, char *errstr, size_t errstr_size);
/* A consumer that only ever assigns partitions and never commits. group is
 * the group.id (NULL: a throwaway one); naming the workers' group lets
 * rd_kafka_committed() read their offsets without joining the group. */
rd_kafka_t *cli_kafka_consumer(const struct config *cfg, const char *group, char *errstr,
                               size_t errstr_size);
/* The partition ids of topic (new array). -1 with errstr when the brokers
 * cannot be reached within CLI_KAFKA_TIMEOUT_MS or the topic does not exist. */
int cli_kafka_partitions(rd_kafka_t *rk, const char *topic, int32_t **parts, size_t *n,
                         char *errstr, size_t errstr_size);
/* The last error librdkafka reported, for a message ("no answer" if none). */
const char *cli_kafka_last_error(void);

/* Reading a whole topic from the beginning of every partition. */
struct cli_read {
	const char *topic;
	bool to_end;         /* stop once every partition reached its end (and until() holds) */
	int64_t last_n;      /* > 0: start at most this many messages before each end */
	int64_t deadline_ms; /* time_mono_ms() to give up at; 0 = none */
	uint64_t *total;     /* if not NULL: set to the messages in range when reading starts */
	/* With to_end: checked whenever every partition is at its end; false
	 * keeps waiting for more messages (until the deadline). NULL: true. */
	bool (*until)(void *opaque);
	/* Called for each message (borrowed for the call); non-zero stops the read. */
	int (*message)(void *opaque, const rd_kafka_message_t *m);
	/* Called after every poll (~10 per second), may be NULL; non-zero stops the read. */
	int (*tick)(void *opaque);
	void *opaque;
};
/* Returns 0 when the end was reached or message() or tick() stopped it, 1 at
 * the deadline or on cli_interrupted, -1 with errstr on a Kafka error. */
int cli_kafka_read(rd_kafka_t *rk, const struct cli_read *r, char *errstr, size_t errstr_size);
/* A copy of m's headers (new), NULL if it has none. */
rd_kafka_headers_t *cli_kafka_headers_copy(const rd_kafka_message_t *m);

/* ---------------------------------------------------------------- progress (cli_progress.c) */

struct cli_progress {
	const char *label;
	uint64_t total; /* 0: unknown, no bar or ETA */
	uint64_t done;
	char extra[64]; /* shown after the counts, e.g. "12 errors" */
	bool tty, drawn, quiet;
	int64_t start_ms, last_ms;
};
void cli_progress_start(struct cli_progress *p, const char *label, uint64_t total);
/* Redraws at most 10 times a second on a terminal, every 5 s otherwise. */
void cli_progress_update(struct cli_progress *p, uint64_t done);
void cli_progress_finish(struct cli_progress *p);

/* ---------------------------------------------------------------- jobs files (cli_jobs.c) */

/* One line of a JSON Lines file, checked and ready to produce. */
struct cli_job {
	char *value; /* the message value (new): the line itself, or its conversion */
	size_t len;
	char *id; /* the job's id (new) */
	int line; /* 1-based line number in the file */
};

struct cli_jobs {
	struct cli_job *v;
	size_t n, cap;
	size_t batch; /* how many lines were OpenAI Batch requests */
};

/* Applied to jobs that lack the field (--budget, --strategy); NULL: none. */
struct cli_job_defaults {
	const char *budget;
	const char *strategy;
	/* dev: strategies given in turn to jobs that have none (NULL-terminated). */
	const char *const *rotate_strategies;
};

/* Reads path ("-" for stdin) as JSON Lines of native jobs (SPEC §2) or
 * OpenAI Batch requests ({"custom_id","method","url","body"}, converted),
 * and checks every line with job_decode() against cfg. Blank lines are
 * skipped. Each bad line is reported on stderr as
 * "promptyard SUB: FILE:LINE: field: problem" (the first 20, then a count).
 * Returns 0 with out filled when every line is good, 2 when any is bad
 * (out is then empty), 1 when the file cannot be read. */
int cli_jobs_load(const char *sub, const struct config *cfg, const char *path,
                  const struct cli_job_defaults *d, struct cli_jobs *out);
void cli_jobs_free(struct cli_jobs *jobs);

/* Produces every job to topic (key = id) and waits for each delivery, with
 * progress on stderr. Returns 0 when all were acknowledged, else 1 with the
 * reason printed. *acked gets the count acknowledged. */
int cli_submit_produce(const char *sub, const struct config *cfg, const char *topic,
                       const struct cli_jobs *jobs, uint64_t *acked);

/* ---------------------------------------------------------------- budgets in Redis (cli_spend.c) */

/* One budget's current window, for display. */
struct cli_budget_view {
	char *name;
	char *period;    /* "none", "day", "month" */
	char *parent;    /* "" for none */
	char window[16]; /* "all", "2026-11-22", "2026-11" */
	int64_t limit_nusd, spent_nusd, reserved_nusd;
	bool in_redis; /* limit, period and parent came from Redis, not the config */
};

/* The config's budgets, then those only Redis lists, with their current
 * window's spend read from Redis (blocking). Returns 0 with *out new, or -1
 * with errstr on a Redis error. */
int cli_budgets_view(redisContext *c, const struct config *cfg, struct cli_budget_view **out,
                     size_t *n, char *errstr, size_t errstr_size);
/* The config's budgets alone, nothing spent (Redis unreachable). */
void cli_budgets_view_config(const struct config *cfg, struct cli_budget_view **out, size_t *n);
void cli_budgets_view_free(struct cli_budget_view *v, size_t n);
const struct cli_budget_view *cli_budgets_find(const struct cli_budget_view *v, size_t n,
                                               const char *name);
/* The budgets Redis holds, or only name (NULL: all), each in its current
 * window at now_ms, as `budget show --json` lists them (cli_budget.c): *out
 * is a new array of {name, period, window_start, parent, limit_nusd,
 * spent_nusd, reserved_nusd, limit_usd, spent_usd, reserved_usd}. Reads only.
 * Returns 0; 1 with errstr when Redis fails; 2 with errstr when name is not
 * a budget. */
int cli_budgets_show(redisContext *c, const struct config *cfg, const char *name, int64_t now_ms,
                     json_t **out, char *errstr, size_t errstr_size);
/* "$0.0001794", "-$1.5": exact, from nano-USD. out needs 40 bytes. */
void cli_usd(int64_t nusd, char *out, size_t out_size);
/* A USD amount for JSON output (derived for display; the *_nusd fields are exact). */
json_t *cli_json_usd(int64_t nusd);
/* json_dumps flags of machine output: reals with 15 significant digits, so
 * 0.0001794 prints as written rather than as 0.00017940000000000001. */
#define CLI_JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))

/* ---------------------------------------------------------------- batches (cli_batches.c) */

/* Appends to list one object per provider batch of the sorted set
 * <base><set> ("batches": in flight; "batches_ended": ended in the last
 * day), in the set's order: {"id", then every field of its hash
 * <base>batch:<id> as it is, a decimal integer as a number} (the fields:
 * worker/batch_record.lua). Blocking. 0, or -1 with errstr on a Redis error. */
int cli_batches_read(redisContext *c, const struct config *cfg, const char *set, json_t *list,
                     char *errstr, size_t errstr_size);

int cli_version(int argc, char **argv);
int cli_submit(int argc, char **argv);
int cli_collect(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_budget(int argc, char **argv);
int cli_estimate(int argc, char **argv);
int cli_route(int argc, char **argv);
int cli_dlq(int argc, char **argv);
int cli_dev(int argc, char **argv);
int cli_catalog(int argc, char **argv);
int cli_dashboard(int argc, char **argv);
int cli_batches(int argc, char **argv);

#endif
