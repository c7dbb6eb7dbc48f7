/* engine: the worker's job pipeline on one libuv loop.
 *
 * A consumed message becomes a task: decode, route, call (failing over along
 * the chain), charge the spend in Redis, produce the result, its cost records
 * and any DLQ record, and once Kafka acknowledged them all, mark the offset
 * finished so that the partition's watermark can be stored. */
#ifndef PROMPTYARD_ENGINE_H
#define PROMPTYARD_ENGINE_H

#include "config.h"

#include <uv.h>

struct engine;

/* Builds the engine on loop for cfg (borrowed; must outlive the engine) and
 * checks that Kafka and Redis can be reached. Returns NULL with errstr set. */
struct engine *engine_new(uv_loop_t *loop, const struct config *cfg, char *errstr,
                          size_t errstr_size);
/* Subscribes and starts taking jobs. */
int engine_start(struct engine *e, char *errstr, size_t errstr_size);
/* Begins a graceful stop: no new jobs, in-flight ones finish within
 * worker.drain_timeout_ms, offsets are committed, everything is closed; the
 * loop then runs out. Calling it again is harmless. */
void engine_stop(struct engine *e);
/* Frees what is left once the loop has run out. NULL is safe. */
void engine_free(struct engine *e);
/* Exit status the process should return once the loop ran out: 0 when the
 * stop completed (every job taken finished and its outputs were acknowledged
 * by Kafka, or it was left to Kafka on purpose: jobs parked out of budget in
 * pause mode); 1 when the stop failed, that is, worker.drain_timeout_ms
 * passed with jobs still in flight or their outputs not yet acknowledged.
 * Their offsets are not committed, so they run again (SPEC §9); exit 1 says
 * that the drain did not finish them. */
int engine_exit_code(const struct engine *e);

#endif
