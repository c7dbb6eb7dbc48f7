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
/* Exit status the process should return once the loop ran out: 1 when the
 * stop failed, that is, the producer could not deliver every output it had
 * been handed before the worker closed it (brokers unreachable at the stop:
 * kafka_close() gave up with messages left); else 0. The jobs of those
 * outputs have no offset committed, so they run again, served from Redis
 * where they finished (SPEC §9). Jobs a drain could not finish within
 * worker.drain_timeout_ms also run again, but that is the drain working as
 * SPEC §9 says (exit 0), not a failure. */
int engine_exit_code(const struct engine *e);

#endif
