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
	uint64_t a = track_add(pt, 7), b = track_add(pt, 8);
	track_set_revoked(pt);
	CHECK(!track_done(pt, a));
	CHECK(!track_dirty(pt));
	/* Released with one job in flight: freed when it finishes (ASan checks). */
	track_release(pt);
	CHECK(!track_done(pt, b));
}

int main(void)
{
	RUN(watermark_out_of_order);
	RUN(watermark_gaps_and_growth);
	RUN(revoked_stores_nothing);
	return unit_done();
}
