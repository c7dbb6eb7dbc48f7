/* offsets: per-partition tracking of in-flight offsets and the contiguous
 * watermark of finished ones (SPEC §9).
 *
 * Jobs of a partition are added in offset order and finish in any order. The
 * watermark is the offset to commit: one past the highest offset below which
 * every job has finished. A slow job holds back only its own partition.
 *
 * Ownership: a track is counted. The assignment holds one reference (from
 * track_new, dropped by track_release) and so does each task of the
 * partition (track_ref, track_unref): a track released while jobs of it
 * run lives until the last of them lets go, and nothing frees it under a
 * holder's feet. */
#ifndef PROMPTYARD_OFFSETS_H
#define PROMPTYARD_OFFSETS_H

#include <stdbool.h>
#include <stdint.h>

struct partition_track;

/* A new track for topic/partition (topic copied), with one reference: the
 * assignment's, which track_release() drops. */
struct partition_track *track_new(const char *topic, int32_t partition);
/* Takes a reference for another holder (a task); returns pt. */
struct partition_track *track_ref(struct partition_track *pt);
/* Drops a reference; the last one frees pt. NULL is safe. */
void track_unref(struct partition_track *pt);

/* Records offset as in flight and returns its ticket, which track_done takes. */
uint64_t track_add(struct partition_track *pt, int64_t offset);

/* Marks the ticket's job finished. Returns true when the watermark moved
 * (and may be stored: never for a revoked track). Never frees pt. */
bool track_done(struct partition_track *pt, uint64_t ticket);

/* The offset to commit: the first unfinished offset, or one past the last
 * finished one when nothing is in flight; -1 before anything was added. */
int64_t track_watermark(const struct partition_track *pt);
/* Jobs added and not done. */
uint64_t track_in_flight(const struct partition_track *pt);
const char *track_topic(const struct partition_track *pt);
int32_t track_partition(const struct partition_track *pt);

/* A revoked (or lost) partition's track stores no offset any more. */
void track_set_revoked(struct partition_track *pt);
bool track_revoked(const struct partition_track *pt);
/* Whether the watermark changed since the last track_clear_dirty(). */
bool track_dirty(const struct partition_track *pt);
void track_clear_dirty(struct partition_track *pt);
/* The partition's assignment ended (revoked, lost, the stop): pt is marked
 * revoked and the assignment's reference dropped, so pt is freed now unless
 * a task still holds it. NULL is safe. */
void track_release(struct partition_track *pt);

#endif
