/* engine_int: the state the engine's files share. Only worker/engine*.c
 * include it; everything else sees engine.h.
 *
 * The engine is one subsystem split by idea (as redis' server.h serves
 * networking.c, ae.c, ...):
 *
 *   engine.c          life cycle: build, start, signals, readiness, drain, stop
 *   engine_task.c     a task's life: begin (route), fail, finish, done, free
 *   engine_intake.c   messages in: the backlog, holds and pauses (backpressure)
 *   engine_dedupe.c   one id is one job: id claims, lookups, done-marks, re-sends
 *   engine_attempt.c  the attempt cycle: admission, provider slots, reserve,
 *                     call, settle, decide, failover
 *   engine_classify.c auto's classifier call (attempt 0)
 *   engine_outbox.c   outputs: build, produce, delivery reports, producer rebuild
 *   engine_assign.c   assignment and rebalance: partition tracks, revokes
 *   engine_upkeep.c   timers of its own: leases of dead workers, the budget poll
 *   engine_pools.c    each provider's HTTP pool, made from its configuration
 *   engine_fetch.c    the bytes of URL parts, for providers that take no URL
 *   engine_batch.c    batch mode (SPEC §14): the mode of a job, groups per
 *                     model, a submission's prepare, submit and record, the
 *                     claims of submissions that need a worker, the test stops
 *   engine_collect.c  a recorded batch: polls, the deadline's cancel, the
 *                     results streamed, each request's job run on from Redis
 *   engine_orphan.c   a submission whose worker died before recording it:
 *                     found at the provider (adopted) or abandoned
 *
 * Names: task_* act on one task, engine_* on the engine; whatever one file
 * alone uses is static there. */
#ifndef PROMPTYARD_ENGINE_INT_H
#define PROMPTYARD_ENGINE_INT_H

#include "engine.h"
#include "health.h"
#include "http.h"
#include "job.h"
#include "kafka.h"
#include "offsets.h"
#include "output.h"
#include "provider.h"
#include "provider_batch.h"
#include "router.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Attempt records a job may have, calls and skipped models together. */
#define MAX_CHAIN_ATTEMPTS 32

struct task;
struct fetch; /* engine_fetch.c */
struct batch_sub;
struct batcher;

/* One message to produce for a task, kept until Kafka acknowledged it so that
 * it can be produced again after a failure. */
struct out_msg {
	struct task *task; /* NULL for a reaped lease's cost record (see reaper) */
	const char *topic;
	char *value;
	size_t len;
	bool is_result;
	bool acked;
	bool retry_pending; /* a produce_later timer will produce it */
	int64_t sent_ms;    /* first produced, monotonic ms */
	struct out_msg *next_unacked, *prev_unacked;
};

/* The cost record of a lease this worker reaped: produced on its own, and
 * acknowledged to the ledger once Kafka has it. */
struct reaped_out {
	struct out_msg out; /* first: an out_msg with task == NULL is one of these */
	char *job_id;
	int attempt;
};

struct task {
	struct engine *e;
	struct partition_track *track; /* a reference (track_ref), dropped by task_free */
	uint64_t ticket;
	int32_t partition;
	int64_t offset;
	char *key;
	size_t key_len;
	rd_kafka_headers_t *headers; /* the input's, for the DLQ record */
	char *raw;                   /* the value, kept only when it did not parse */
	size_t raw_len;
	struct job job;
	char *id; /* the job's id or topic:partition:offset (new) */
	int64_t started_mono_ms;

	/* Redis said this job is neither done nor pending (SPEC §9): a dedupe
	 * lookup, or the first reservation, which looks it up in the same step.
	 * Until then no call, no classifier and no output goes out. */
	bool looked_up;
	bool finish_after_lookup; /* ended before its first reservation: look up, then finish */
	uint64_t serial;          /* for reservation tokens (reserve_token) */
	int reserve_seq;          /* the reservation being asked for: its token's last part */
	int waits;                /* reservations deferred for others in a row */
	size_t n_calls;           /* attempts that went to a provider (max_attempts) */
	int admitted_model;       /* health said GO for this model (-1: none yet) */
	bool admit_pending;
	struct http_request pending_req; /* built, waiting for its reservation */
	int pending_model;               /* -1 when none */
	int64_t pending_estimate_nusd;   /* what the pending call reserves */
	int64_t call_estimate_nusd;      /* what the call in flight reserved */
	int64_t pending_tokens;          /* the classifier's est_input + max_tokens (rpm/tpm) */
	bool classifying;                /* the pending or running call is auto's classifier */
	int64_t refused_estimate_nusd;   /* the budget refused this estimate: any
	                                    model at least as costly cannot fit */
	enum error_code last_skip;       /* why the last model was passed over */
	char *skip_message;
	bool parked;   /* budget exhausted, waiting (pause mode) */
	bool replayed; /* outputs re-sent from Redis, no call made */

	/* URL parts being fetched (engine_fetch.c). */
	struct fetch *fetches;              /* one per part of the job, made on the first fetch */
	int fetches_pending;                /* started or waiting, not yet answered */
	char *fetch_error;                  /* the first failure (new): the job's invalid_job */
	void (*fetch_then)(struct task *t); /* what goes on once every fetch is in */

	struct route route;
	size_t chain_pos;
	int same_retries;
	bool *tried;                  /* per model */
	struct attempt_rec *attempts; /* grown on demand, at most MAX_CHAIN_ATTEMPTS */
	size_t n_attempts, cap_attempts;
	int64_t cost_nusd;

	/* Cost records of this job's billed attempts that did not answer, in
	 * runs before this one (a crash came before their job's outputs went
	 * out): published with this run's outputs (new strings). */
	char **prior_costs;
	size_t n_prior_costs;

	/* The attempt being decided. */
	struct completion completion;
	char *parsed_json; /* json jobs: the answer's content parsed, compact (new), or NULL */
	enum response_class cls;
	int64_t retry_after_ms;
	int settle_tries;

	/* The end. */
	enum error_code error;
	char *error_message;
	struct out_msg *outs;
	size_t n_outs;
	int acks_pending;
	bool acking; /* its outputs are with Kafka: it holds no slot (engine_intake.c) */

	bool id_holder;    /* this task holds its id in engine.ids */
	struct task *dups; /* copies of the same id consumed meanwhile, waiting */
	struct task *next_dup;

	/* Batch mode (SPEC §14, engine_batch.c). */
	bool batch_mode;        /* its attempts may go in provider batches */
	bool batching;          /* the pending reservation is for a batch: no slot, no call */
	struct batch_sub *bsub; /* a collector's task: the submission it came from, which
	                           stays open until the task is over; else NULL */
	char *batch_outputs;    /* a collector's task of a finished job: its kept outputs (new) */
	size_t batch_outputs_len;
	char *src_topic; /* a task without a track: its Kafka source's topic (new) */

	struct health_call call;  /* the HTTP call in flight, for health */
	uv_timer_t *timer;        /* for delays (Retry-After, retries); NULL when unused */
	struct task *next, *prev; /* the engine's live list */
	struct task *next_wait;   /* waiting for Redis */
	struct task *next_slot;   /* waiting for a connection to its provider */
};

/* Partitions being revoked: they take no new jobs, and are released once
 * their in-flight jobs are done or the drain timeout passes (SPEC §9). */
struct revoking {
	struct engine *e;
	rd_kafka_topic_partition_list_t *parts;
	uv_timer_t timer;
	struct revoking *next;
};

struct engine {
	uv_loop_t *loop;
	const struct config *cfg;
	struct kafka *kafka;
	struct redis *redis;
	struct ledger *ledger;
	struct health *health;
	struct http_pool **pools;              /* per provider (engine_pools.c) */
	int *calls;                            /* per provider: calls under way, at most
	                                         http_pool_capacity() */
	struct task **slot_head, **slot_tail;  /* per provider: calls waiting, FIFO */
	struct http_pool *fetch_pool;          /* URL parts' fetches (engine_fetch.c) */
	int fetching;                          /* fetches in flight */
	struct fetch *fetch_head, *fetch_tail; /* fetches waiting for a connection, FIFO */
	struct metrics *metrics;
	struct metrics_server *metrics_server;
	struct metrics_series *m_in_flight;
	char worker_id[128];

	struct partition_track **tracks; /* assigned partitions */
	size_t n_tracks, cap_tracks;

	bool *revoking_flags; /* parallel to tracks: the partition is being revoked */
	struct revoking *revokes;

	struct idmap *ids;   /* id -> the task running it (one id is one job) */
	struct task **check; /* decoded jobs waiting for their dedupe lookup */
	size_t n_check, cap_check;
	char **done_ids; /* ok jobs acknowledged, to be marked done */
	size_t n_done, cap_done;

	struct task *live;
	int in_flight;           /* jobs holding a slot: taken, not yet handed to Kafka */
	int acking;              /* jobs whose outputs wait for Kafka's acknowledgement */
	struct task *wait_redis; /* tasks held while Redis is unreachable */
	struct out_msg *unacked;

	uv_prepare_t store_offsets;
	uv_signal_t sigterm, sigint;
	uv_timer_t drain_timer;
	int signals;
	bool draining;
	bool closing;
	int exit_code;
	uint64_t jobs_ok, jobs_error, jobs_skipped, jobs_resent;
	/* Jobs finished since the last flush to the day's stats, by error code
	 * (ERR_NONE: ok): ledger_stats_jobs, next to the done-marks. */
	int64_t jobs_finished[ERR_EXPIRED + 1];
	uint64_t serial;
	int n_parked; /* jobs waiting for budget (on_budget_exhausted = pause) */
	/* Messages taken while max_in_flight jobs run, oldest first (a ring). */
	rd_kafka_message_t **backlog;
	size_t backlog_head, backlog_len, backlog_cap, backlog_max;
	bool backlog_starting; /* engine_backlog_start() is on the stack */
	uv_timer_t reaper;     /* reaps expired leases of dead workers */
	bool reaping;
	uv_timer_t budget_poll;      /* budget gauges, and the budgets Redis knows */
	int64_t unacked_warned_ms;   /* the last warning of outputs Kafka has not taken */
	uv_timer_t hold_timer;       /* turns a long hold into a pause */
	struct idmap *redis_budgets; /* names (keys owned by budget_names) */
	char **budget_names;
	size_t n_budget_names;
	struct batcher *batcher; /* batch mode's state (engine_batch.c) */
};

/* What Redis knows of a job (SPEC §9), from a lookup or a reservation. */
enum job_state { JOB_NEW, JOB_DONE, JOB_PENDING, JOB_BATCHED, JOB_SUBMITTING };

/* ---------------------------------------------------------------- engine.c */

/* A uv_close callback that frees the handle (allocated on its own). */
void engine_timer_closed(uv_handle_t *h);
/* Ends a drain once nothing is left in flight (on a fresh loop turn). */
void engine_maybe_finish_stop(struct engine *e);

/* ---------------------------------------------------------------- engine_task.c */

/* Starts a task whose id it holds: routes it, asks the classifier or starts
 * the first attempt. */
void task_begin(struct task *t);
/* The next attempt record (zeroed), or NULL when the job has had
 * MAX_CHAIN_ATTEMPTS. */
struct attempt_rec *task_attempt_new(struct task *t);
/* Runs fn(t) after delay_ms on the loop (one timer per task: a later call
 * replaces an earlier one). */
void task_later(struct task *t, int64_t delay_ms, uv_timer_cb fn);
/* Ends the job with an error result. */
/* Keeps the cost records a lookup found of the job's earlier runs
 * (costs: an array of strings, borrowed; NULL or empty for none), once. */
void task_keep_prior_costs(struct task *t, const redisReply *costs);
/* Frees the outputs built for t (an answer whose charge changed). */
void task_drop_outputs(struct task *t);
/* A settle the ledger refused this many times, with an error that is not a
 * passing state of Redis (ledger_error_transient), ends its attempt. */
#define SETTLE_REFUSALS_MAX 3
void task_fail(struct task *t, enum error_code code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Ends the job (t->error says how): builds and produces its outputs, after
 * a lookup when it never asked Redis. */
void task_finish(struct task *t);
/* Every output acknowledged (or none to send): the offset is finished, the
 * id passes to its waiting copies, and t is freed. */
void task_done(struct task *t);
/* Frees t and unlinks it from the engine. */
/* Puts t (its e set) on the engine's live list, counted in flight. */
void task_link(struct task *t);
void task_free(struct task *t);
/* Routes t (again) into t->route: at batch prices while t->batch_mode. */
void task_route(struct task *t);
/* t's job is in a recorded provider batch, whose collector answers it: its
 * offset is finished and its slot freed, without outputs, and t is freed. */
void task_handed_over(struct task *t);

/* ---------------------------------------------------------------- engine_intake.c */

void engine_on_message(void *opaque, rd_kafka_message_t *m);
/* Starts backlogged messages while slots are free, then engine_flow_check(). */
void engine_backlog_start(struct engine *e);
/* Drops the backlogged messages of parts (all of them when parts is NULL). */
void engine_backlog_drop(struct engine *e, const rd_kafka_topic_partition_list_t *parts);
/* Holds, pauses or resumes consumption by the backlog and the budget. */
void engine_flow_check(struct engine *e);
/* Sets the in-flight gauge (jobs with a slot and jobs waiting for acks). */
void engine_in_flight_gauge(struct engine *e);

/* ---------------------------------------------------------------- engine_dedupe.c */

/* Takes t's id, or queues t behind the task holding it. waited: t waited
 * for a twin, so it is looked up before it begins. */
void task_claim(struct task *t, bool waited);
/* Hands t's id over to the copies that waited for it. */
void task_release_dups(struct task *t);
/* Queues t for this turn's dedupe lookup. */
void task_check_later(struct task *t);
/* What a lookup (or a first reservation) found: skip, re-send or go on. */
void task_found(struct task *t, enum job_state st, const char *outputs, size_t len);
/* Queues an acknowledged ok job's done-mark (id copied). */
void engine_dedupe_mark_done(struct engine *e, const char *id);
/* Sends this turn's done-marks, then its lookups (one Redis call each). */
void engine_dedupe_flush(struct engine *e);

/* ---------------------------------------------------------------- engine_attempt.c */

/* Starts the next attempt along the chain, or ends the job when none is left. */
void task_attempt(struct task *t);
/* Sends the call built in t->pending_req to model t->pending_model, which
 * health admitted: it waits for a slot of its provider, reserves
 * t->pending_estimate_nusd on the job's budget (looking the job up if it
 * never was), goes out, and is settled at its cost; then it is decided, or,
 * for the classifier (t->classifying), read (task_classifier_end). */
void task_call(struct task *t);
/* The attempt outcome of an HTTP answer whose body parse_response classed cls. */
enum outcome engine_outcome_of(const struct http_response *resp, enum response_class cls);
/* What a call's outcome says of the model's health. */
void task_record_health(struct task *t, const struct attempt_rec *a, const struct model_conf *m);
/* Redis came back (or went): the tasks held for it start their attempts. */
void engine_on_redis_state(void *opaque, bool ready);
/* Settles t's last attempt (its cost_nusd; the answer's outputs kept), then
 * decides what comes next, as after a call. */
void task_settle(struct task *t);
/* After an attempt and its settlement: done, or where to go next. */
void task_decide(struct task *t);

/* ---------------------------------------------------------------- engine_classify.c */

/* Asks router.classifier_model (model ci) how hard the job is, as attempt
 * 0, then starts the first attempt; when the classifier cannot be asked now,
 * the heuristic's route stands. */
void task_classify(struct task *t, int ci);
/* The classifier's call was settled (answered: read its score and route
 * again) or could not be reserved; either way the first attempt starts. */
void task_classifier_end(struct task *t, bool answered);

/* ---------------------------------------------------------------- engine_outbox.c */

/* Builds every output of the task: the result, a cost record per billed
 * attempt and, for an error, the DLQ record. */
void task_build_outputs(struct task *t);
/* Appends an output (value taken) to t->outs, which has room for it. */
struct out_msg *task_add_out(struct task *t, const char *topic, struct buf *value, bool is_result);
/* The outputs as Redis keeps them for a re-send: one JSON per line, result first. */
void task_outputs_blob(const struct task *t, struct buf *b);
/* Produces every output of the task (built already); its slot is freed. */
void task_produce(struct task *t);
/* Produces o and keeps it on the unacknowledged list until Kafka has it. */
void engine_outbox_send(struct engine *e, struct out_msg *o);
void engine_unacked_unlink(struct engine *e, struct out_msg *o);
/* Warns of outputs Kafka has not acknowledged for long (rate-limited). */
void engine_unacked_warn(struct engine *e, int64_t now);
void engine_on_delivered(void *opaque, void *msg_opaque, rd_kafka_resp_err_t err);
void engine_on_producer_reset(void *opaque);

/* ---------------------------------------------------------------- engine_assign.c */

/* The track of an assigned partition (and its index in e->tracks), or NULL. */
struct partition_track *engine_track_find(struct engine *e, const char *topic, int32_t partition,
                                          size_t *index);
/* The track of topic/partition, made if it has none yet. */
struct partition_track *engine_track_get(struct engine *e, const char *topic, int32_t partition);
/* Stores the watermarks that moved (one call each). */
void engine_store_offsets(struct engine *e);
/* Completes every revoke whose partitions have nothing left in flight. */
void engine_revokes_check(struct engine *e);
/* Completes every revoke now (the stop). */
void engine_revokes_finish(struct engine *e);
void engine_on_assigned(void *opaque, const rd_kafka_topic_partition_list_t *parts);
void engine_on_revoked(void *opaque, const rd_kafka_topic_partition_list_t *parts, bool lost);

/* ---------------------------------------------------------------- engine_upkeep.c */

/* Starts the reaper and the budget poll (their timers are e->reaper and
 * e->budget_poll; the stop closes them). */
void engine_upkeep_start(struct engine *e);
/* A reaped lease's cost record is in Kafka: the lease is forgotten. r is freed. */
void engine_reaped_acked(struct engine *e, struct reaped_out *r);
/* Frees the reaped leases' records never acknowledged (a later reap reports
 * them again). */
void engine_reaped_forget(struct engine *e);
/* job_decode's lookup: is name a budget Redis knows (as of the last poll)? */
bool engine_budget_known(void *opaque, const char *name);
void engine_budget_names_free(struct engine *e);

/* ---------------------------------------------------------------- engine_answer.c */

/* Impossible usage (SPEC §13): when t->completion's usage could not come
 * from a call of m (input above its context, output above output_limit,
 * counts that do not add up, or counts its format could not read:
 * completion.usage_impossible), the attempt is charged at its estimate
 * (a->estimated), with the estimate's counts (est_input, output_limit) as
 * its usage; an answer that was ok becomes invalid_response, a failure
 * keeps its outcome and class. */
void task_judge_usage(struct task *t, struct attempt_rec *a, const struct model_conf *m,
                      int64_t est_input, int64_t output_limit);
/* A json job's answer (SPEC §13): its content parsed into t->parsed_json, or
 * the attempt made invalid_output when it does not parse or validate. */
void task_judge_output(struct task *t, struct attempt_rec *a);

/* ---------------------------------------------------------------- engine_fetch.c */

/* Makes e->fetch_pool (worker.max_fetch_bytes, worker.fetch_ca_file);
 * -1 with errstr set. */
int engine_fetch_init(struct engine *e, char *errstr, size_t errstr_size);
/* Frees the fetch pool: fetches under way end without their callbacks, so
 * it goes before the tasks that wait for them. */
void engine_fetch_close(struct engine *e);
/* Starts fetching t's URL parts that have no bytes yet and whose kind is
 * not in url_kinds (bits 1u << PART_*: what the provider takes by URL).
 * Returns false when there is none to wait for. Otherwise true: then(t)
 * runs from the loop once every one is in, or, when one failed, t ends as
 * invalid_job naming the part. */
bool task_fetch(struct task *t, unsigned url_kinds, void (*then)(struct task *t));
/* Frees t's fetch state; a fetch still waiting for a connection is dropped
 * (t is being freed: only the stop frees a task that waits for one). */
void task_fetch_forget(struct task *t);

/* ---------------------------------------------------------------- engine_pools.c */

/* One http_pool per provider of cfg (a new array), or NULL with errstr set. */
struct http_pool **engine_pools_new(uv_loop_t *loop, const struct config *cfg, char *errstr,
                                    size_t errstr_size);
/* Closes and frees every provider's pool (n_providers of them). NULL is safe. */
void engine_pools_free(struct http_pool **pools, size_t n_providers);

/* ---------------------------------------------------------------- batch mode's state */

/* What a submission is doing in this worker (engine_batch.c tells the
 * whole state machine). */
enum bsub_phase {
	BSUB_PREPARING,  /* batch_prepare.lua sent */
	BSUB_SUBMITTING, /* the provider's submit steps */
	BSUB_RECORDING,  /* batch_record.lua sent */
	BSUB_POLLING,    /* recorded: polled every batch.poll_interval_s */
	BSUB_COLLECTING, /* ended: its requests read and their jobs run on */
	BSUB_SEARCHING,  /* the orphan search: the provider's batches listed */
	BSUB_ABANDONING, /* batch_abandon.lua sent */
	BSUB_FINISHING,  /* batch_finish.lua sent */
};

/* A request of a submission being collected, as batch_jobs.lua read it:
 * held only while its page is handled (engine_collect.c). */
struct breq {
	int attempt;
	char *job_id, *state, *sub, *next_sub; /* new */
	char *outputs;                         /* new: a pending job's, or NULL */
	size_t outputs_len;
	char *value, *key, *headers, *topic; /* new: the Kafka source */
	size_t value_len, key_len;
	int32_t partition;
	int64_t offset;
	int64_t complete_by_ms;
	char *history; /* new: the job's attempts before this one (batch_history_encode) */
};

/* A request of a submission being collected waiting for its job's record
 * (batch_jobs.lua reads them a page at a time), with its result. */
struct bwait {
	size_t i;                         /* the request */
	bool has_res;                     /* a result was read; else it has none */
	struct provider_batch_result res; /* has_res: taken (cleared once handled) */
};

/* A request's flags while its submission is collected (batch_sub.req_flags). */
#define BREQ_SEEN     1 /* its result was read (or it was dealt with) */
#define BREQ_DEFERRED 2 /* its job is being submitted elsewhere: looked at again later */

/* One submission that this worker holds: one it submits, or one it claimed
 * (to poll and collect, or to search for). */
struct batch_sub {
	struct engine *e;
	struct batch_sub *next, *prev; /* the batcher's list */
	char token[PROVIDER_BATCH_TOKEN_LEN + 1];
	int model, provider; /* catalog and provider indexes */
	enum bsub_phase phase;
	size_t n;               /* requests */
	int64_t complete_by_ms; /* the earliest of its jobs */
	int64_t created_ms;     /* prepared, unix ms */
	char *batch_id;         /* new: the provider's, once known */

	/* Submitting: the requests, and their tasks in the same order. */
	struct provider_batch_submission psub;
	struct task **tasks;
	size_t n_tasks;
	int step;
	char *prev_id; /* new: what the step before answered (OpenAI's file) */

	/* Polling. */
	uv_timer_t *timer; /* the next step's (batch_sub_later) */
	uv_timer_t *renew; /* collecting: the claim renewed every poll_interval_s */
	bool polling, cancel_sent, lost;
	bool cancel_asked; /* an operator's `promptyard batches cancel` (batch_touch.lua) */
	/* batch_touch.lua calls sent and not answered: their replies use s, so
	 * a free waits for them (free_pending). */
	int touches;
	bool free_pending;
	enum provider_batch_state pstate;
	int64_t done, failed;
	struct buf status; /* the last status body (Gemini's answers come in it) */
	bool status_too_large;
	bool inline_results;

	/* Collecting: a request's job is read (a page of COLLECT_PAGE at a
	 * time) once its result is, or once every result is (those without);
	 * the download pauses while COLLECT_PAGE wait or COLLECT_OPEN_MAX tasks
	 * are open, so memory stays flat whatever the batch's size. */
	unsigned char *req_flags;           /* per request: BREQ_* */
	struct bwait *wait;                 /* the requests waiting for their page, in order: */
	size_t wait_head, n_wait, cap_wait; /* wait[wait_head .. +n_wait] */
	struct bwait *asked;                /* the page being read (batch_jobs.lua sent) */
	size_t n_asked;
	bool asking;            /* batch_jobs.lua sent, not answered */
	bool streaming;         /* a results file is being downloaded */
	bool paused;            /* ... and paused (HTTP_CHUNK_PAUSE) */
	bool file_over;         /* ... and its download is over */
	bool sweeping;          /* the requests without a result are being taken */
	size_t sweep_i;         /* ... from this one on */
	uv_timer_t *jobs_timer; /* batch_jobs.lua asked again after a failure */
	char *results[2];
	size_t n_results, results_i;
	struct buf line;         /* the results file's line not ended yet */
	size_t open_tasks;       /* collector's tasks not over */
	size_t deferred;         /* requests waiting for their job's next submission */
	bool lines_done;         /* every result read, the missing ones dealt with */
	int64_t spent_nusd;      /* what its answers were charged, this collection */
	const char *final_state; /* batch_finish.lua's state (static text) */
};

/* The group of batch jobs of one model waiting for their submission. */
struct batch_group {
	struct provider_batch_submission psub;
	bool open; /* psub initialised */
	struct task **tasks;
	size_t n, cap;
	uv_timer_t *timer; /* batch.max_wait_ms after the first joined */
};

struct batcher {
	struct batch_group *groups; /* per catalog model */
	struct batch_sub *subs;
	uv_timer_t *claim_timer;
	bool claiming, draining;
	size_t settled; /* collector's tasks settled (the test stop) */
};

/* A task's attempts but its last, as text (one line each), and back: what a
 * job carries from one submission to the next through Redis, so that its
 * result lists every attempt. Decoding appends to t->attempts and adds
 * their cost and calls to t. */
void batch_history_encode(const struct task *t, struct buf *out);
void batch_history_decode(struct task *t, const char *text);
/* The claim lease of a submission: what its holder renews every poll. */
int64_t batch_claim_lease_ms(const struct engine *e);
/* A new submission held by this worker (linked; token, model and provider
 * set by the caller). */
struct batch_sub *batch_sub_new(struct engine *e);
/* Unlinks and frees s (its tasks are not touched). */
void batch_sub_free(struct batch_sub *s);
/* Runs fn(s) after delay_ms (one timer per submission). */
void batch_sub_later(struct batch_sub *s, int64_t delay_ms, uv_timer_cb fn);
/* batch_record.lua for s (its batch_id set): found at the provider. */
void batch_sub_record(struct batch_sub *s);
/* The submission is in no provider batch: batch_abandon.lua, then its
 * tasks in memory (if any) go on without it, and it is finished. */
void batch_sub_abandon(struct batch_sub *s);
/* batch_finish.lua with state, then s is freed. */
void batch_sub_finish(struct batch_sub *s, const char *state);
/* The orphan search of s (engine_orphan.c). */
void batch_orphan_search(struct batch_sub *s);
/* Polls s now and every poll_interval_s until it ends, then collects it
 * (engine_collect.c). */
void batch_collect_start(struct batch_sub *s);
/* A collector's submission whose tasks may all be over: finishes it. */
void batch_collect_check(struct batch_sub *s);
/* Frees what the n requests of w hold (not w). */
void batch_waits_clear(struct bwait *w, size_t n);

/* ---------------------------------------------------------------- engine_batch.c */

/* Starts the claims of submissions that need a worker (engine_start). */
void engine_batch_start(struct engine *e);
/* The drain: groups are submitted at once, no submission is claimed. */
void engine_batch_drain(struct engine *e);
/* Frees batch mode's state (the stop, after Redis and the pools closed). */
void engine_batch_free(struct engine *e);
/* Whether the job goes to provider batches (SPEC §14: its mode, and for
 * auto complete_by at least batch.min_lead_s away). */
bool engine_batch_mode(const struct engine *e, const struct job *job);
/* Whether t's attempt on model goes in a batch now: batch mode, a provider
 * with a batch API, and time before the job's complete_by for a batch. */
bool task_batch_wanted(const struct task *t, int model);
/* t's batch attempt is reserved (its last attempt record): it joins its
 * model's group. */
void task_batch_join(struct task *t);
/* After a batch attempt that did not answer: the same model's next batch
 * while the deadline allows, else sync (t re-routed at sync prices).
 * Returns true when it took t on, false for task_decide's usual way. */
bool task_batch_decide(struct task *t, struct attempt_rec *a);
/* A collector's task was settled (the test stop batch_mid_collect). */
void task_batch_settled(struct task *t);
/* A collector's task is over (freed): its submission may be finished. */
void task_batch_gone(struct task *t);
/* Exits the process at once when PROMPTYARD_TEST_STOP_AT names step
 * (test builds only): the crash tests' stops of the state machine. */
void batch_stop_at(const char *step);

#endif
