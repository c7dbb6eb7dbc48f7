/* engine_assign: the partitions assigned to this worker, and rebalances
 * (SPEC §9).
 *
 * Each assigned partition has a track of its in-flight offsets (offsets.h).
 * A revoked partition takes no new jobs; it is released (its watermark
 * committed) once its jobs are done or worker.drain_timeout_ms passed. A
 * lost one is released at once, storing nothing. */
#include "engine_int.h"

#include "buf.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

struct partition_track *engine_track_find(struct engine *e, const char *topic, int32_t partition,
                                          size_t *index)
{
	for (size_t i = 0; i < e->n_tracks; i++) {
		struct partition_track *pt = e->tracks[i];
		if (track_partition(pt) == partition && strcmp(track_topic(pt), topic) == 0) {
			if (index)
				*index = i;
			return pt;
		}
	}
	return NULL;
}

struct partition_track *engine_track_get(struct engine *e, const char *topic, int32_t partition)
{
	struct partition_track *pt = engine_track_find(e, topic, partition, NULL);
	if (pt)
		return pt;
	if (e->n_tracks == e->cap_tracks) {
		e->cap_tracks = e->cap_tracks ? e->cap_tracks * 2 : 16;
		e->tracks = xrealloc(e->tracks, e->cap_tracks * sizeof *e->tracks);
		e->revoking_flags =
		        xrealloc(e->revoking_flags, e->cap_tracks * sizeof *e->revoking_flags);
	}
	pt = track_new(topic, partition);
	e->revoking_flags[e->n_tracks] = false;
	e->tracks[e->n_tracks++] = pt;
	return pt;
}

static void store_track(struct engine *e, struct partition_track *pt)
{
	if (!track_dirty(pt))
		return;
	track_clear_dirty(pt);
	kafka_store_offset(e->kafka, track_topic(pt), track_partition(pt), track_watermark(pt));
}

void engine_store_offsets(struct engine *e)
{
	for (size_t i = 0; i < e->n_tracks; i++)
		store_track(e, e->tracks[i]);
}

void engine_on_assigned(void *opaque, const rd_kafka_topic_partition_list_t *parts)
{
	struct engine *e = opaque;
	for (int i = 0; i < parts->cnt; i++)
		engine_track_get(e, parts->elems[i].topic, parts->elems[i].partition);
	/* New partitions start paused if the worker was paused (kafka.c), and
	 * resume with the others; the budget poll runs engine_flow_check() each second
	 * besides, from outside librdkafka's callback. */
}

/* ---------------------------------------------------------------- revokes */

/* Stores (unless lost) and forgets the tracks of parts, then hands the
 * partitions back to the group. */
static void release_partitions(struct engine *e, const rd_kafka_topic_partition_list_t *parts,
                               bool lost)
{
	rd_kafka_topic_partition_list_t *commit = rd_kafka_topic_partition_list_new(parts->cnt);
	for (int i = 0; i < parts->cnt; i++) {
		size_t idx;
		struct partition_track *pt = engine_track_find(e, parts->elems[i].topic,
		                                               parts->elems[i].partition, &idx);
		if (!pt)
			continue;
		if (!lost && track_watermark(pt) >= 0) {
			store_track(e, pt);
			rd_kafka_topic_partition_list_add(commit, track_topic(pt),
			                                  track_partition(pt))
			        ->offset = track_watermark(pt);
		}
		e->n_tracks--;
		e->tracks[idx] = e->tracks[e->n_tracks];
		e->revoking_flags[idx] = e->revoking_flags[e->n_tracks];
		/* Late completions of this partition store nothing. */
		track_release(pt);
	}
	/* Commit what the drain reached before the new owner starts reading. */
	if (!lost)
		kafka_commit_async(e->kafka, commit);
	rd_kafka_topic_partition_list_destroy(commit);
	kafka_release(e->kafka, parts, lost);
}

static void revoke_closed(uv_handle_t *h)
{
	struct revoking *rv = h->data;
	rd_kafka_topic_partition_list_destroy(rv->parts);
	free(rv);
}

static void revoke_complete(struct engine *e, struct revoking *rv)
{
	for (struct revoking **pp = &e->revokes; *pp; pp = &(*pp)->next) {
		if (*pp == rv) {
			*pp = rv->next;
			break;
		}
	}
	release_partitions(e, rv->parts, false);
	uv_timer_stop(&rv->timer);
	uv_close((uv_handle_t *)&rv->timer, revoke_closed);
}

static bool revoke_drained(struct engine *e, const struct revoking *rv)
{
	for (int i = 0; i < rv->parts->cnt; i++) {
		struct partition_track *pt = engine_track_find(e, rv->parts->elems[i].topic,
		                                               rv->parts->elems[i].partition, NULL);
		if (pt && track_in_flight(pt) > 0)
			return false;
	}
	return true;
}

void engine_revokes_check(struct engine *e)
{
	struct revoking *rv = e->revokes;
	while (rv) {
		struct revoking *next = rv->next;
		if (revoke_drained(e, rv))
			revoke_complete(e, rv);
		rv = next;
	}
}

void engine_revokes_finish(struct engine *e)
{
	while (e->revokes)
		revoke_complete(e, e->revokes);
}

static void on_revoke_timeout(uv_timer_t *timer)
{
	struct revoking *rv = timer->data;
	log_warn("revoke drain timeout: releasing partitions with jobs in flight", NULL);
	revoke_complete(rv->e, rv);
}

void engine_on_revoked(void *opaque, const rd_kafka_topic_partition_list_t *parts, bool lost)
{
	struct engine *e = opaque;
	engine_backlog_drop(e, parts);
	if (lost || e->closing) {
		/* Lost: another member may own them already; store nothing. Closing:
		 * whatever could finish has finished. */
		release_partitions(e, parts, lost);
		return;
	}
	/* Stop taking their jobs; finish those in flight, then release. */
	kafka_pause_partitions(e->kafka, parts);
	for (int i = 0; i < parts->cnt; i++) {
		size_t idx;
		if (engine_track_find(e, parts->elems[i].topic, parts->elems[i].partition, &idx))
			e->revoking_flags[idx] = true;
	}
	struct revoking *rv = xcalloc(1, sizeof *rv);
	rv->e = e;
	rv->parts = rd_kafka_topic_partition_list_copy(parts);
	uv_timer_init(e->loop, &rv->timer);
	rv->timer.data = rv;
	rv->next = e->revokes;
	e->revokes = rv;
	if (revoke_drained(e, rv)) {
		revoke_complete(e, rv);
		return;
	}
	uv_timer_start(&rv->timer, on_revoke_timeout, (uint64_t)e->cfg->worker.drain_timeout_ms, 0);
}
