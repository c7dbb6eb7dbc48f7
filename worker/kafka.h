/* kafka: the worker's consumer and producer, on the libuv loop.
 *
 * librdkafka runs its own threads; what it hands the application (messages,
 * rebalances, delivery reports, errors) waits in queues. Each queue writes a
 * byte to a pipe when it becomes non-empty (rd_kafka_queue_io_event_enable),
 * the loop watches the pipe, and everything is then served on the loop's one
 * thread. */
#ifndef PROMPTYARD_KAFKA_H
#define PROMPTYARD_KAFKA_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <uv.h>

struct kafka;

struct kafka_handlers {
	/* A consumed message (taken: the handler destroys it). */
	void (*message)(void *opaque, rd_kafka_message_t *msg);
	/* Partitions were added to the assignment. parts is borrowed. */
	void (*assigned)(void *opaque, const rd_kafka_topic_partition_list_t *parts);
	/* Partitions are being revoked (lost = taken away without a clean revoke).
	 * The handler must call kafka_release(parts) once their jobs are done, or
	 * at once. parts is borrowed. */
	void (*revoked)(void *opaque, const rd_kafka_topic_partition_list_t *parts, bool lost);
	/* The delivery report of a kafka_produce (err 0 = acknowledged). */
	void (*delivered)(void *opaque, void *msg_opaque, rd_kafka_resp_err_t err);
	/* The producer hit a fatal error and was rebuilt: every message produced
	 * and not yet reported is lost and must be produced again. */
	void (*producer_reset)(void *opaque);
};

/* Builds consumer and producer from cfg. Returns NULL with errstr on a bad
 * property or a failure to create a client. */
struct kafka *kafka_new(uv_loop_t *loop, const struct config *cfg, const struct kafka_handlers *h,
                        void *opaque, char *errstr, size_t errstr_size);

/* Blocking check of start-up: can the brokers be reached within timeout_ms? */
int kafka_probe(struct kafka *k, int timeout_ms, char *errstr, size_t errstr_size);

/* Subscribes to the input topics and starts serving the queues. */
int kafka_start(struct kafka *k, char *errstr, size_t errstr_size);

/* Produces value (borrowed: it must live until delivered() runs for
 * msg_opaque) with key (copied) and headers (taken; may be NULL). Returns 0 or
 * an error from librdkafka; on error nothing was taken. */
rd_kafka_resp_err_t kafka_produce(struct kafka *k, const char *topic, const void *key,
                                  size_t key_len, const void *value, size_t value_len,
                                  rd_kafka_headers_t *headers, void *msg_opaque);

/* Stores the offset to commit for a partition (enable.auto.offset.store=false). */
void kafka_store_offset(struct kafka *k, const char *topic, int32_t partition, int64_t offset);

/* Holding: no message is taken from librdkafka's queue, which keeps what it
 * fetched (up to queued.max.messages.kbytes, then it stops fetching), so a
 * worker full for a moment goes on at once, without a refetch. Rebalances
 * and errors wait in that queue too: a long hold must become a pause,
 * which keeps serving them. */
void kafka_hold(struct kafka *k, bool hold);
bool kafka_held(const struct kafka *k);

/* Pauses every assigned partition (remembering which) / resumes only those. */
void kafka_pause(struct kafka *k);
void kafka_resume(struct kafka *k);
bool kafka_paused(const struct kafka *k);

/* Pauses these partitions (a revoke in progress): no more of their messages. */
void kafka_pause_partitions(struct kafka *k, const rd_kafka_topic_partition_list_t *parts);
/* Commits the given offsets without waiting (the revoked partitions' watermarks). */
void kafka_commit_async(struct kafka *k, const rd_kafka_topic_partition_list_t *offsets);

/* Completes a revoke announced by revoked(). */
void kafka_release(struct kafka *k, const rd_kafka_topic_partition_list_t *parts, bool lost);

/* Whether the consumer has a non-empty assignment or is an idle member of the group. */
bool kafka_member(const struct kafka *k);
/* The producer works (it is not being rebuilt after a fatal error). */
bool kafka_producer_healthy(const struct kafka *k);
/* Partitions assigned to this member. */
int kafka_assigned(const struct kafka *k);
/* Messages produced and not yet reported. */
int kafka_outq_len(const struct kafka *k);

/* Stops fetching (for a drain): no more messages are handed over. */
void kafka_stop_fetching(struct kafka *k);

/* Commits stored offsets, leaves the group, flushes the producer (up to
 * 10 s for what was produced to be acknowledged; delivery reports run
 * meanwhile), closes both clients (this blocks, for shutdown only) and
 * releases the loop handles; the loop must run after. Returns how many
 * produced messages were still unacknowledged when the flush gave up (0:
 * none); NULL is safe and returns 0. */
int kafka_close(struct kafka *k);

#endif
