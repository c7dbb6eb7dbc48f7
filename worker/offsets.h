/* offsets: per-partition tracking of in-flight offsets and the contiguous
 * watermark of finished ones (SPEC §9).
 *
 * Jobs of a partition are added in offset order and finish in any order. The
 * watermark is the offset to commit: one past the highest offset below which
 * every job has finished. A slow job holds back only its own partition. */
#ifndef PROMPTYARD_OFFSETS_H
#define PROMPTYARD_OFFSETS_H

#include <stdbool.h>
#include <stdint.h>

struct partition_track;

/* A new track for topic/partition (topic copied). */
struct partition_track *track_new(const char *topic, int32_t partition);

/* Records offset as in flight and returns its ticket, which track_done takes. */
uint64_t track_add(struct partition_track *pt, int64_t offset);

/* Marks the ticket's job finished. Returns true when the watermark moved. */
bool track_done(struct partition_track *pt, uint64_t ticket);

/* The offset to commit: the first unfinished offset, or one past the last
 * finished one when nothing is in flight; -1 before anything was added. */
int64_t track_watermark(const struct partition_track *pt);
/* Jobs added and not done. */
uint64_t track_in_flight(const struct partition_track *pt);
const char *track_topic(const struct partition_track *pt);
int32_t track_partition(const struct partition_track *pt);

/* A revoked (or lost) partition's track stores no offset any more; it lives on
 * until its in-flight jobs are done. track_release() frees it then, or at once
 * when nothing is in flight. */
void track_set_revoked(struct partition_track *pt);
bool track_revoked(const struct partition_track *pt);
/* Whether the watermark changed since the last track_clear_dirty(). */
bool track_dirty(const struct partition_track *pt);
void track_clear_dirty(struct partition_track *pt);
/* Drops pt when it has nothing in flight, else when its last job is done
 * (track_done then returns false and frees it). */
void track_release(struct partition_track *pt);

#endif
