/* offsets: a ring of (offset, done) per partition, in consumption order.
 *
 * Tickets are sequence numbers: entry `ticket` lives at ring[ticket & mask]
 * while ticket >= head. Finishing the head pops every finished entry, so the
 * watermark costs O(1) amortized per job. */
#include "offsets.h"

#include "buf.h"

#include <stdlib.h>

struct entry {
	int64_t offset;
	bool done;
};

struct partition_track {
	char *topic;
	int32_t partition;
	struct entry *ring;
	uint64_t mask; /* capacity - 1, capacity a power of two */
	uint64_t head; /* ticket of the oldest entry in flight */
	uint64_t tail; /* next ticket */
	int64_t watermark;
	int refs; /* the assignment's and its tasks' */
	bool revoked;
	bool dirty;
};

struct partition_track *track_new(const char *topic, int32_t partition)
{
	struct partition_track *pt = xcalloc(1, sizeof *pt);
	pt->topic = xstrdup(topic);
	pt->partition = partition;
	pt->mask = 63;
	pt->ring = xcalloc(pt->mask + 1, sizeof *pt->ring);
	pt->watermark = -1;
	pt->refs = 1;
	return pt;
}

struct partition_track *track_ref(struct partition_track *pt)
{
	pt->refs++;
	return pt;
}

void track_unref(struct partition_track *pt)
{
	if (!pt || --pt->refs > 0)
		return;
	free(pt->topic);
	free(pt->ring);
	free(pt);
}

static void grow(struct partition_track *pt)
{
	uint64_t cap = (pt->mask + 1) * 2, mask = cap - 1;
	struct entry *ring = xcalloc(cap, sizeof *ring);
	for (uint64_t t = pt->head; t < pt->tail; t++)
		ring[t & mask] = pt->ring[t & pt->mask];
	free(pt->ring);
	pt->ring = ring;
	pt->mask = mask;
}

uint64_t track_add(struct partition_track *pt, int64_t offset)
{
	if (pt->tail - pt->head > pt->mask)
		grow(pt);
	uint64_t ticket = pt->tail++;
	pt->ring[ticket & pt->mask] = (struct entry){.offset = offset, .done = false};
	if (pt->head == ticket)
		pt->watermark = offset; /* nothing before it is unfinished */
	return ticket;
}

bool track_done(struct partition_track *pt, uint64_t ticket)
{
	if (ticket < pt->head || ticket >= pt->tail)
		return false;
	pt->ring[ticket & pt->mask].done = true;
	bool moved = false;
	int64_t last = -1;
	while (pt->head < pt->tail && pt->ring[pt->head & pt->mask].done) {
		last = pt->ring[pt->head & pt->mask].offset;
		pt->head++;
		moved = true;
	}
	if (moved) {
		pt->watermark =
		        pt->head < pt->tail ? pt->ring[pt->head & pt->mask].offset : last + 1;
		pt->dirty = true;
	}
	return moved && !pt->revoked;
}

int64_t track_watermark(const struct partition_track *pt)
{
	return pt->watermark;
}

uint64_t track_in_flight(const struct partition_track *pt)
{
	return pt->tail - pt->head;
}

const char *track_topic(const struct partition_track *pt)
{
	return pt->topic;
}

int32_t track_partition(const struct partition_track *pt)
{
	return pt->partition;
}

void track_set_revoked(struct partition_track *pt)
{
	pt->revoked = true;
}

bool track_revoked(const struct partition_track *pt)
{
	return pt->revoked;
}

bool track_dirty(const struct partition_track *pt)
{
	return pt->dirty && !pt->revoked;
}

void track_clear_dirty(struct partition_track *pt)
{
	pt->dirty = false;
}

void track_release(struct partition_track *pt)
{
	if (!pt)
		return;
	pt->revoked = true;
	track_unref(pt);
}
