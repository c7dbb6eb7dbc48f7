/* ledger: the budget keys in Redis and the atomic steps on them (SPEC §7).
 *
 * Key layout (every key of one atomic step carries the {ledger} hash tag, so
 * a Redis Cluster keeps them in one slot):
 *   <prefix>{ledger}:b:<budget>:<window>       hash: spent (nano-USD)
 *   <prefix>{ledger}:settled:<job_id>:<attempt> settle marker, with a TTL
 *   <prefix>{ledger}:job:<job_id>              dedupe hash: attempts used, state
 *                                              (pending|done), outputs; TTL
 *                                              worker.dedupe_ttl_s
 * The job hashes share the tag because the attempt that answers settles its
 * cost and stores its outputs in one atomic step.
 * <window> is "all" for period none, "YYYY-MM-DD" for day, "YYYY-MM" for
 * month, in UTC. */
#ifndef PROMPTYARD_LEDGER_H
#define PROMPTYARD_LEDGER_H

#include "buf.h"
#include "config.h"
#include "redis.h"

#include <stdint.h>

struct ledger;

/* A ledger on connection r (borrowed) for cfg (borrowed); registers its Lua
 * scripts with r, so it must be made before redis_start(). */
struct ledger *ledger_new(struct redis *r, const struct config *cfg);
void ledger_free(struct ledger *l);

/* Writes the window of period p at unix_ms ("all", "2026-11-22", "2026-11"). */
void ledger_window(enum period p, int64_t unix_ms, char *out, size_t out_size);
/* Appends the spend key of budget b for the window holding unix_ms. */
void ledger_budget_key(struct buf *key, const struct config *cfg, int budget, int64_t unix_ms);

/* Charges cost_nusd of (job_id, attempt) to budget and its parents, once, and
 * records the attempt number as used. outputs (the job's finished outputs,
 * one JSON per line, result first) are kept for a re-send when not NULL.
 * cb gets the reply (integer 1 charged, 0 repeat) or NULL if Redis could not
 * be reached: the caller retries, the step being idempotent. */
void ledger_settle(struct ledger *l, int budget, const char *job_id,
		   int attempt, int64_t cost_nusd, const struct buf *outputs, redis_reply_cb *cb,
		   void *opaque);

/* Looks n jobs up (dedupe_check.lua): the reply is an array of n entries
 * {"new", attempts} | {"pending", outputs} | {"done"}. */
void ledger_dedupe_check(struct ledger *l, const char *const *job_ids,
			 size_t n, redis_reply_cb *cb, void *opaque);
/* Marks n jobs done (their ok result was acknowledged). */
void ledger_dedupe_done(struct ledger *l, const char *const *job_ids,
			size_t n, redis_reply_cb *cb, void *opaque);

#endif
