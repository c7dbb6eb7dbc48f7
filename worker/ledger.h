/* ledger: budgets, reservations and spend in Redis, and the atomic steps on
 * them (SPEC §7), plus the jobs' dedupe hashes (SPEC §9).
 *
 * Key layout. <base> is "<redis.key_prefix>{ledger}:"; the {ledger} hash tag
 * puts every key in one Redis Cluster slot, so each step is one script:
 *   <base>budgets                     set: the names of all budgets
 *   <base>meta:<name>                 hash: limit_nusd, period (none|day|month),
 *                                     parent ("" for none), since_ms
 *   <base>b:<name>:<window>           hash: spent, reserved (nano-USD), and
 *                                     reset_nusd (spent zeroed by a reset)
 *   <base>leases                      sorted set: "<job_id>:<attempt>" scored by
 *                                     the lease's expiry (unix ms)
 *   <base>lease:<job_id>:<attempt>    hash: the reservation (budget, estimate,
 *                                     the chain's names and windows, model,
 *                                     provider, worker, state live|reaped)
 *   <base>settled:<job_id>:<attempt>  string: what the attempt was charged, a
 *                                     week's TTL; makes every step on it once
 *   <base>job:<job_id>                hash: attempts (numbers handed out), state
 *                                     (pending|done), outputs; TTL
 *                                     worker.dedupe_ttl_s
 *   <base>stats:d:<YYYY-MM-DD>        hash: the fleet's stats of a day (below);
 *                                     TTL LEDGER_STATS_TTL_S
 * <window> is "all" for period none, "YYYY-MM-DD" for day, "YYYY-MM" for
 * month, in UTC by the worker's clock (time_now_ms(), which tests can shift).
 * The scripts walk a budget's parent chain from the meta hashes (at most 4
 * budgets), so a budget defined only with `promptyard budget set` works.
 *
 * Stats, for the dashboard (SPEC §15), kept as money moves so that no reader
 * has to go through Kafka. Fields of a stats hash:
 *   spend:<provider>:<model>   nano-USD charged to attempts of the model
 *   calls:<provider>:<model>   attempts charged: settled (billed or not) or
 *                              reaped; a released attempt (it never reached
 *                              the provider) is no call
 *   jobs:ok, jobs:error:<code> jobs finished (ledger_stats_jobs)
 * settle.lua and reap.lua add spend and calls in the same step that charges
 * the attempt, never on a repeat, in the day of the worker's clock when the
 * step runs (a budget's own window is the lease's, so at midnight a lease
 * reserved on one day and settled on the next counts in the next day's
 * stats). An attempt without a lease is recorded under the model and
 * provider the caller names, "" when unknown ("spend::"). Only days are
 * kept, two HINCRBY per charge on the hot path; a month is the sum of its
 * days (ledger_stats_days), which outlive any month.
 *
 * Money is integer nano-USD. Counters change only by HINCRBY of decimal
 * strings (exact int64); the scripts compare amounts as Lua doubles, which is
 * exact for amounts up to MONEY_MAX_NUSD (money.h: 2^53 - 1 nano-USD, about
 * $9.007M), and reject estimates, costs and limits above it.
 *
 * Every step is asynchronous on the ledger's struct redis: cb gets the reply
 * (borrowed for the call), or NULL when Redis could not be reached, and the
 * caller retries: every step is idempotent (reserve through its token). The
 * ledger_*_result() functions read the replies; strings they hand out are
 * borrowed from the reply. */
#ifndef PROMPTYARD_LEDGER_H
#define PROMPTYARD_LEDGER_H

#include "buf.h"
#include "config.h"
#include "money.h"
#include "redis.h"

#include <stdbool.h>
#include <stdint.h>

/* Room for a window string ("2026-11-22") and its NUL. */
#define LEDGER_WINDOW_SIZE 16
/* A reaped lease not acknowledged (ledger_reap_ack) is reported again after this. */
#define LEDGER_REAP_REPORT_MS 60000
/* A day's stats hash lives this long from its first call of a model (set
 * once per model and day): 39 to 40 days after the day ends, so that every
 * day of the current and the last month is there. */
#define LEDGER_STATS_TTL_S (40 * 86400)

struct ledger;

/* What the ledger_*_result() functions return. */
enum ledger_rc {
	LEDGER_OK = 0,
	LEDGER_UNREACHABLE = -1, /* reply NULL: Redis not reached; retry */
	LEDGER_ERROR = -2,       /* an error reply or a malformed one (errstr says) */
	LEDGER_REFUSED = -3,     /* budget definitions refused (errstr says why) */
};

/* A ledger on connection r (borrowed) for cfg (borrowed; both outlive the
 * ledger); registers its Lua scripts with r, so it must be made before
 * redis_start(). Before its first budget step the ledger writes the config's
 * budgets to Redis (ledger_sync_budgets), again after a try Redis did not
 * answer. Free the ledger after redis_free(r) (whose pending callbacks may
 * still use it). */
struct ledger *ledger_new(struct redis *r, const struct config *cfg);
/* The worker named in leases (copied); default "<hostname>-<pid>". */
void ledger_set_worker(struct ledger *l, const char *worker_id);
void ledger_free(struct ledger *l);

/* ------------------------------------------------------------ keys, windows */

/* Writes the window of period p at unix_ms ("all", "2026-11-22", "2026-11"). */
void ledger_window(enum period p, int64_t unix_ms, char *out, size_t out_size);
/* Writes the day and the month window of unix_ms (LEDGER_WINDOW_SIZE bytes each). */
void ledger_windows(int64_t unix_ms, char *day, char *month);
/* The start (unix ms) of a window: midnight UTC of a day, the first of a
 * month, since_ms for "all". Returns 0, or -1 if window is none of those. */
int ledger_window_start_ms(const char *window, int64_t since_ms, int64_t *start_ms);
/* Appends "<prefix>{ledger}:", the start of every ledger key. */
void ledger_key_base(struct buf *out, const struct config *cfg);
/* Appends the spend key of config budget b for the window holding unix_ms. */
void ledger_budget_key(struct buf *key, const struct config *cfg, int budget, int64_t unix_ms);
/* Appends the stats key of the day holding unix_ms:
 * "<prefix>{ledger}:stats:d:2026-11-22". */
void ledger_stats_key(struct buf *key, const struct config *cfg, int64_t unix_ms);
/* Writes the days of the month holding unix_ms, from its first to that of
 * unix_ms, as windows ("2026-11-01" ... "2026-11-22"; LEDGER_WINDOW_SIZE
 * bytes each, at most 31) and returns how many: the stats days a month's
 * figures are the sum of. */
size_t ledger_stats_days(int64_t unix_ms, char (*days)[LEDGER_WINDOW_SIZE]);

/* The scripts' texts, for a caller that sends them itself with EVAL over a
 * blocking connection (the command line): their KEYS and ARGV are documented
 * at the top of worker/<name>.lua. */
extern const char lua_budget_sync[], lua_budget_state[], lua_budget_reset[];
/* The operator's cancel of a batch in flight (`promptyard batches cancel`). */
extern const char lua_batch_cancel[];

/* ------------------------------------------------------------ budgets */

/* Writes limit, period and parent of every budget of the config to Redis,
 * leaving spent and reserved alone (SPEC §7: the config's values win when a
 * worker starts). Read the reply with ledger_sync_result(); cb may be NULL. */
void ledger_sync_budgets(struct ledger *l, redis_reply_cb *cb, void *opaque);
/* LEDGER_OK, or an error (LEDGER_REFUSED: a parent unknown, a chain longer
 * than 4, a bad limit) with errstr set. */
int ledger_sync_result(const redisReply *reply, char *errstr, size_t errstr_size);

struct ledger_budget {
	const char *name; /* borrowed from the reply */
	bool known;       /* false: not in Redis (only name is set) */
	enum period period;
	const char *parent; /* "" for none; borrowed */
	const char *window; /* "all", "2026-11-22" or "2026-11"; borrowed */
	int64_t window_start_ms;
	int64_t limit_nusd, spent_nusd, reserved_nusd; /* of that window */
};

/* Reads one budget (name borrowed) in its current window. */
void ledger_budget_state(struct ledger *l, const char *name, redis_reply_cb *cb, void *opaque);
/* Reads every budget in Redis, sorted by name. */
void ledger_budget_list(struct ledger *l, redis_reply_cb *cb, void *opaque);
/* The number of entries of a budget state, budget list or reap reply (0 for
 * NULL or an error). */
size_t ledger_reply_entries(const redisReply *reply);
/* Entry i of a budget state or list reply. LEDGER_OK or LEDGER_ERROR. */
int ledger_budget_result(const redisReply *reply, size_t i, struct ledger_budget *out, char *errstr,
                         size_t errstr_size);

/* ------------------------------------------------------------ attempts */

struct ledger_reserve_req {
	const char *budget; /* the job's budget, by name */
	const char *job_id;
	int64_t estimate_nusd; /* 0 .. MONEY_MAX_NUSD */
	int64_t lease_ms;      /* the attempt's timeout plus a margin; > 0 */
	/* Identifies this reservation: the same string on a retry after a NULL
	 * reply (the script may have run), so that it is not held twice; unique
	 * otherwise, e.g. "<worker>:<task serial>:<n>". NULL: no retry safety. */
	const char *token;
	const char *model, *provider; /* for the cost record a reap would publish */
	/* Look the job up first (the first reservation of a job taken from
	 * Kafka, which then needs no ledger_dedupe_check): a job done, or
	 * finished and not acknowledged, reserves nothing and the reply says so. */
	bool lookup;
	/* The auto strategy's classifier call: attempt 0 when the job has had
	 * no attempt yet, else the next number (reserve.lua). */
	bool classifier;
};

enum ledger_reserve_status {
	LEDGER_RESERVED,       /* held: attempt and expires_ms are set */
	LEDGER_WAIT,           /* only other reservations stand in the way: retry later */
	LEDGER_EXHAUSTED,      /* spent + estimate > limit on budget: not this window */
	LEDGER_UNKNOWN_BUDGET, /* budget (the job's or a parent) is not in Redis; for a
				  budget of the config, Redis lost it (restarted empty):
				  the ledger writes the config's budgets again before its
				  next step, so retry */
	LEDGER_JOB_DONE,       /* (lookup) its ok result was acknowledged: skip it */
	LEDGER_JOB_PENDING,    /* (lookup) finished, not acknowledged: re-send outputs */
	LEDGER_JOB_BATCHED,    /* (lookup) a recorded provider batch holds it: skip */
	LEDGER_JOB_SUBMITTING, /* (lookup) a batch with it is being submitted: look again */
};

struct ledger_reservation {
	enum ledger_reserve_status status;
	int attempt;        /* RESERVED: the attempt's number, unique for the job (0
	                       only for a first classifier call) */
	int64_t expires_ms; /* RESERVED: the lease's expiry, unix ms */
	const char *budget; /* otherwise: the budget that refused; borrowed */
	int64_t limit_nusd, spent_nusd, reserved_nusd; /* WAIT, EXHAUSTED: its window */
	const char *outputs; /* JOB_PENDING: one JSON per line, result first; borrowed */
	size_t outputs_len;
	/* A reservation that looked the job up (req.lookup), but for DONE and
	 * PENDING: the cost records kept of the job's billed attempts that did
	 * not answer (an array of strings, borrowed from the reply), which its
	 * outputs must carry; NULL otherwise. */
	const redisReply *costs;
};

/* Reserves req->estimate_nusd for a new attempt of req->job_id on the budget
 * and every parent, atomically, if spent + reserved + estimate <= limit on
 * each (reserve.lua); the attempt number comes from the job's dedupe hash.
 * The lease must then be ended by ledger_settle_budget() or ledger_release()
 * before it expires, or a reap charges it at its estimate. All of req is
 * borrowed for the call only. */
void ledger_reserve(struct ledger *l, const struct ledger_reserve_req *req, redis_reply_cb *cb,
                    void *opaque);
/* LEDGER_OK with out filled, or an error (a chain longer than 4 or a cycle). */
int ledger_reserve_result(const redisReply *reply, struct ledger_reservation *out, char *errstr,
                          size_t errstr_size);

/* How a settled attempt was charged. */
enum ledger_charge {
	LEDGER_CHARGED_ACTUAL,   /* its actual cost (now or by an earlier settle) */
	LEDGER_CHARGED_ESTIMATE, /* a reap charged its estimate first: report that */
	LEDGER_CHARGED_NOTHING,  /* it was released */
};

struct ledger_settlement {
	bool now;             /* charged by this call; false: a repeat */
	int64_t charged_nusd; /* what the attempt is charged, now or before */
	enum ledger_charge how;
};

/* Charges cost_nusd to (job_id, attempt), once however often it is sent
 * (settle.lua): with a lease, spent += cost and reserved -= the lease's
 * estimate on the windows the lease holds; without one (an attempt that
 * reserved nothing), spent += cost on the chain of budget in the current
 * windows. After a reap the attempt stays charged at its estimate (see
 * settle.lua). Records the attempt number as used; outputs (the job's
 * finished outputs, one JSON per line, result first; may be NULL) are kept
 * for a re-send; cost_record (may be NULL), the attempt's cost record when it
 * was billed but did not answer, is kept in the job's hash until the job's
 * outputs are out, so that a run after a crash still publishes it (SPEC §4).
 * Everything is borrowed for the call only.
 * A charge counts in the stats under the lease's model and provider;
 * attempt 0, which holds no lease, is the classifier's call (SPEC §6) and
 * counts under router.classifier_model. */
void ledger_settle_budget(struct ledger *l, const char *budget, const char *job_id, int attempt,
                          int64_t cost_nusd, const struct buf *outputs,
                          const struct buf *cost_record, redis_reply_cb *cb, void *opaque);
/* The same with budget as an index into the config's budgets: what engine.c
 * calls today; remove once it passes names. */
void ledger_settle(struct ledger *l, int budget, const char *job_id, int attempt, int64_t cost_nusd,
                   const struct buf *outputs, redis_reply_cb *cb, void *opaque);
/* Whether the error text of a LEDGER_ERROR (errstr of a *_result call) is a
 * state Redis leaves by itself (loading its data, a busy script, a replica
 * or cluster that has no master yet): worth retrying for as long as it
 * lasts. Any other error reply is the script refusing, and says the same
 * however often it is asked. */
bool ledger_error_transient(const char *errstr);
int ledger_settle_result(const redisReply *reply, struct ledger_settlement *out, char *errstr,
                         size_t errstr_size);

/* Gives back the reservation of an attempt that never reached the provider
 * (release.lua): reserved -= estimate, lease removed, and a later settle or
 * reap of the attempt charges nothing. Reply: integer 1 released now, 0
 * nothing to release (done before, or already settled or reaped). */
void ledger_release(struct ledger *l, const char *job_id, int attempt, redis_reply_cb *cb,
                    void *opaque);

/* ------------------------------------------------------------ orphaned leases */

struct ledger_reaped {
	const char *job_id, *budget, *model, *provider, *worker; /* borrowed */
	int attempt;
	int64_t estimate_nusd; /* charged: the cost record's cost_nusd */
	bool first;            /* charged by this call (false: a repeated report) */
};

/* Charges up to max leases that expired before now at their estimate, each
 * exactly once whichever workers call it (reap.lua), and returns them: for
 * each, publish a cost record with "estimated": true, then call
 * ledger_reap_ack() once Kafka acknowledged it. An unacknowledged one is
 * returned again after LEDGER_REAP_REPORT_MS, uncharged, to whoever reaps. */
void ledger_reap(struct ledger *l, int max, redis_reply_cb *cb, void *opaque);
/* Entry i of a reap reply. LEDGER_OK or LEDGER_ERROR. */
int ledger_reaped_result(const redisReply *reply, size_t i, struct ledger_reaped *out, char *errstr,
                         size_t errstr_size);
/* Forgets a reaped lease whose cost record is acknowledged. Reply: integer 1
 * removed, 0 not a reaped lease (gone already, or live). */
void ledger_reap_ack(struct ledger *l, const char *job_id, int attempt, redis_reply_cb *cb,
                     void *opaque);

/* ------------------------------------------------------------ stats */

/* How many finished jobs had one outcome. */
struct ledger_job_count {
	const char *code; /* NULL or "" for ok results, else the error code (SPEC §3) */
	int64_t n;        /* > 0; others are skipped */
};

/* Adds finished jobs to today's stats (jobs:ok, jobs:error:<code>;
 * stats_jobs.lua), today by the worker's clock: one script call for all n counts (borrowed for the call), meant to be
 * made once per loop turn with what that turn finished. Reply: the integer
 * number of fields changed, or NULL when Redis was not reached (the counts
 * may or may not have been added: a caller that retries may count twice).
 * cb may be NULL. */
void ledger_stats_jobs(struct ledger *l, const struct ledger_job_count *counts, size_t n,
                       redis_reply_cb *cb, void *opaque);

/* ------------------------------------------------------------ jobs */

/* Looks n jobs up (dedupe_check.lua): the reply is an array of n entries
 * {"new", attempts} | {"pending", outputs} | {"done"}. */
void ledger_dedupe_check(struct ledger *l, const char *const *job_ids, size_t n, redis_reply_cb *cb,
                         void *opaque);
/* Marks n jobs done (their ok result was acknowledged). */
void ledger_dedupe_done(struct ledger *l, const char *const *job_ids, size_t n, redis_reply_cb *cb,
                        void *opaque);

/* ------------------------------------------------------------ batches (SPEC §14) */

/* The batcher's steps (worker/batch_*.lua, each states its keys, arguments
 * and result; engine_batch.c says how they make the state machine). Keys:
 *   <base>bsub:<token>   hash: one submission (state submitting | recorded
 *                        | abandoned | collected, provider, model, worker,
 *                        collector, created_ms, complete_by, n, batch_id,
 *                        r:<i> = "<attempt> <job_id>")
 *   <base>bsubs          sorted set: token -> unix ms when a worker must look
 *                        at it (the holder's lease)
 *   <base>batches, <base>batch:<id>   the batches in flight, for the dashboard
 *                        and `promptyard batches` (cancel_requested_ms: an
 *                        operator's cancel, batch_cancel.lua)
 *   <base>batches_ended  sorted set: the batches ended in the last day (their
 *                        hashes kept a day), for `promptyard batches`
 * and in <base>job:<job_id>: state submitting | batched, sub, next_sub,
 * committed, complete_by and src_* (the job's Kafka source). */

/* A recorded batch's leases last this long past their job's complete_by. */
#define LEDGER_BATCH_LEASE_PAST_MS INT64_C(3600000)

struct ledger_batch_sub {
	const char *token, *provider, *model; /* borrowed */
	int64_t lease_ms;       /* "submitting" this long at most before it is an orphan */
	int64_t complete_by_ms; /* the earliest of its jobs */
};

/* One request of a submission. value NULL: the job came from an earlier
 * submission, whose source Redis has already. */
struct ledger_batch_req {
	const char *job_id;
	int attempt;
	const char *value, *key; /* the Kafka message's, or NULL */
	size_t value_len, key_len;
	const char *headers; /* batch_headers_encode's text, or NULL */
	const char *topic;
	int32_t partition;
	int64_t offset;
	int64_t complete_by_ms;
	const char *history; /* the job's earlier attempts (the engine's text), or NULL */
};

/* batch_prepare.lua. Everything is borrowed for the call. */
void ledger_batch_prepare(struct ledger *l, const struct ledger_batch_sub *s,
                          const struct ledger_batch_req *reqs, size_t n, redis_reply_cb *cb,
                          void *opaque);
/* batch_record.lua: lease_ms is how long the recorder holds it as collector. */
void ledger_batch_record(struct ledger *l, const char *token, const char *batch_id,
                         int64_t lease_ms, int64_t complete_by_ms, redis_reply_cb *cb,
                         void *opaque);
/* batch_claim.lua: up to max submissions due, each held lease_ms. */
void ledger_batch_claim(struct ledger *l, int64_t lease_ms, int max, redis_reply_cb *cb,
                        void *opaque);

struct ledger_batch_claimed {
	const char *token, *state, *provider, *model, *batch_id; /* borrowed */
	int64_t complete_by_ms, created_ms;
	size_t n;
};
/* Entry i of a claim reply (ledger_reply_entries entries). */
int ledger_batch_claimed_result(const redisReply *reply, size_t i, struct ledger_batch_claimed *out,
                                char *errstr, size_t errstr_size);
/* batch_touch.lua: renews the holder's lease for lease_ms; state (NULL to
 * leave it) and the counts, and spent_nusd (what the batch's answers were
 * charged so far; -1 to leave it), go to the dashboard's hash. Reply 1, 2
 * (renewed, and an operator asked for the batch's cancel) or 0. */
void ledger_batch_touch(struct ledger *l, const char *token, const char *batch_id, int64_t lease_ms,
                        const char *state, int64_t done, int64_t failed, int64_t spent_nusd,
                        redis_reply_cb *cb, void *opaque);
/* batch_jobs.lua: the n requests idx[] (indexes in the submission) and
 * their jobs, an entry each in that order. */
void ledger_batch_jobs(struct ledger *l, const char *token, const size_t *idx, size_t n,
                       redis_reply_cb *cb, void *opaque);
/* batch_finish.lua: spent_nusd is what its answers were charged (-1: not
 * known), kept a day with the batch's hash among the ended batches. */
void ledger_batch_finish(struct ledger *l, const char *token, const char *state, int64_t spent_nusd,
                         redis_reply_cb *cb, void *opaque);
/* batch_abandon.lua. */
void ledger_batch_abandon(struct ledger *l, const char *token, redis_reply_cb *cb, void *opaque);

#endif
