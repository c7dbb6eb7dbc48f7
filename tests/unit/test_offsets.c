/* Unit tests of the per-partition watermark. */
#include "offsets.h"
#include "unit.h"

TEST(watermark_out_of_order)
{
	struct partition_track *pt = track_new("jobs", 3);
	uint64_t t[5];
	for (int i = 0; i < 5; i++)
		t[i] = track_add(pt, 100 + i);
	CHECK_INT(track_watermark(pt), 100);
	CHECK(!track_done(pt, t[2])); /* 102 done, 100 still open */
	CHECK(!track_done(pt, t[1]));
	CHECK_INT(track_watermark(pt), 100);
	CHECK(track_done(pt, t[0])); /* 100, 101, 102 done -> 103 */
	CHECK_INT(track_watermark(pt), 103);
	CHECK(track_dirty(pt));
	track_clear_dirty(pt);
	CHECK(track_done(pt, t[4]) == false);
	CHECK(track_done(pt, t[3]));
	CHECK_INT(track_watermark(pt), 105);
	CHECK_INT(track_in_flight(pt), 0);
	track_release(pt);
}

TEST(watermark_gaps_and_growth)
{
	/* Offsets need not be contiguous (compaction, control records). */
	struct partition_track *pt = track_new("jobs", 0);
	uint64_t tickets[1000];
	for (int i = 0; i < 1000; i++)
		tickets[i] = track_add(pt, 10 + 2 * i);
	for (int i = 999; i >= 1; i--)
		track_done(pt, tickets[i]);
	CHECK_INT(track_watermark(pt), 10);
	CHECK(track_done(pt, tickets[0]));
	CHECK_INT(track_watermark(pt), 10 + 2 * 999 + 1);
	/* A ticket done twice changes nothing. */
	CHECK(!track_done(pt, tickets[5]));
	track_release(pt);
}

TEST(revoked_stores_nothing)
{
	struct partition_track *pt = track_new("jobs", 1);
	uint64_t a = track_add(pt, 7);
	track_set_revoked(pt);
	CHECK(!track_done(pt, a));
	CHECK(!track_dirty(pt));
	track_release(pt);
}

TEST(released_track_lives_while_a_task_holds_it)
{
	/* The engine's order when a revoke timed out (or the partition was
	 * lost) with jobs in flight: the assignment lets go first, the jobs
	 * end later, and the last one still reads the track after marking its
	 * offset done (is the partition drained?). ASan checks that nothing
	 * is freed under it. */
	struct partition_track *pt = track_new("jobs", 2);
	struct partition_track *job1 = track_ref(pt), *job2 = track_ref(pt);
	uint64_t a = track_add(job1, 7), b = track_add(job2, 8);
	track_release(pt);
	CHECK(track_revoked(job1));
	CHECK(!track_done(job1, a));
	CHECK_INT(track_in_flight(job1), 1);
	track_unref(job1);
	CHECK(!track_done(job2, b));
	CHECK_INT(track_in_flight(job2), 0);
	CHECK(!track_dirty(job2)); /* released: nothing to store */
	track_unref(job2);         /* the last holder: freed here */
	track_unref(NULL);
	track_release(NULL);
}

int main(void)
{
	RUN(watermark_out_of_order);
	RUN(watermark_gaps_and_growth);
	RUN(revoked_stores_nothing);
	RUN(released_track_lives_while_a_task_holds_it);
	return unit_done();
}
