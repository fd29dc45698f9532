/*
 * test_outq.c - per-connection out-queue: bounds, overflow policies, partial
 * writes, and the wref reference counting that frees frames exactly once.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "spout/outq.h"
#include "sanitizers.h"

static struct sp_wref_pool pool;

static void teardown(void)
{
	sp_wref_pool_destroy(&pool);
}

TestSuite(outq, .fini = teardown);

/* A chunk-framed frame with <n> payload bytes of <c>, id <id>. */
static struct sp_frame *mkframe(char c, size_t n, uint64_t id)
{
	char buf[4096];
	memset(buf, c, n);
	struct sp_frame *f = sp_frame_new_chunk(buf, n);
	cr_assert_not_null(f);
	f->id = id;
	return f;
}

static struct sp_outq_limits lim(uint32_t ev, uint64_t bytes, enum sp_overflow p)
{
	return (struct sp_outq_limits){ .max_events = ev, .max_bytes = bytes, .policy = p };
}

/* Concatenate what sp_outq_iov would write. */
static size_t gather(struct sp_outq *q, bool chunked, char *out, size_t cap)
{
	struct iovec iov[64];
	int n = sp_outq_iov(q, chunked, iov, 64);
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		cr_assert(len + iov[i].iov_len <= cap);
		memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	return len;
}

Test(outq, empty_queue_is_all_zero_and_clear_is_safe)
{
	struct sp_outq q = { 0 };
	struct iovec iov[4];
	cr_assert_eq(sp_outq_iov(&q, true, iov, 4), 0);
	sp_outq_clear(&q, &pool);
	cr_assert_eq(q.count, 0);
	cr_assert_null(q.slot);
}

Test(outq, fifo_and_identity_view)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(16, 1 << 20, SP_OVERFLOW_DISCONNECT);
	struct sp_outq_drops dropped = { 0 };
	for (int i = 0; i < 5; i++) {
		struct sp_wref *w = sp_wref_get(&pool, mkframe((char)('a' + i), 3, (uint64_t)i + 1), 1);
		cr_assert_eq(sp_outq_push(&q, &pool, w, false, &l, &dropped), 0);
	}
	char out[256];
	size_t n = gather(&q, false, out, sizeof(out));
	cr_assert_eq(n, 15);
	cr_assert(memcmp(out, "aaabbbcccdddeee", 15) == 0);
	cr_assert_eq(q.bytes, 15);
	cr_assert_eq(sp_outq_consume(&q, &pool, 15, false, NULL, 0), 5);
	cr_assert_eq(q.count, 0);
	cr_assert_eq(q.bytes, 0);
	sp_outq_clear(&q, &pool);
}

Test(outq, partial_write_resumes_mid_frame)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(16, 1 << 20, SP_OVERFLOW_DISCONNECT);
	struct sp_outq_drops dropped = { 0 };
	sp_outq_push(&q, &pool, sp_wref_get(&pool, mkframe('x', 10, 1), 1), true, &l, &dropped);
	sp_outq_push(&q, &pool, sp_wref_get(&pool, mkframe('y', 10, 2), 1), true, &l, &dropped);
	/* chunked: "a\r\n" + 10 + "\r\n" = 15 bytes each */
	cr_assert_eq(q.bytes, 30);
	cr_assert_eq(sp_outq_consume(&q, &pool, 7, true, NULL, 0), 0);
	cr_assert_eq(q.head_off, 7);
	char out[64];
	size_t n = gather(&q, true, out, sizeof(out));
	cr_assert_eq(n, 23);
	cr_assert(memcmp(out, "xxxxxx\r\na\r\nyyyyyyyyyy\r\n", 23) == 0);
	cr_assert_eq(sp_outq_consume(&q, &pool, 8, true, NULL, 0), 1);
	cr_assert_eq(q.head_off, 0);
	cr_assert_eq(q.count, 1);
	sp_outq_clear(&q, &pool);
}

Test(outq, disconnect_policy_refuses_past_event_bound)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(4, 1 << 20, SP_OVERFLOW_DISCONNECT);
	struct sp_outq_drops dropped = { 0 };
	for (int i = 0; i < 4; i++)
		cr_assert_eq(sp_outq_push(&q, &pool, sp_wref_get(&pool, mkframe('a', 1, 1), 1),
					  true, &l, &dropped), 0);
	struct sp_wref *w = sp_wref_get(&pool, mkframe('b', 1, 2), 1);
	cr_assert_eq(sp_outq_push(&q, &pool, w, true, &l, &dropped), -ENOBUFS);
	cr_assert_eq(dropped.oldest, 0);
	cr_assert_eq(q.count, 4);
	sp_wref_put(&pool, w);   /* still ours after a refusal */
	sp_outq_clear(&q, &pool);
}

Test(outq, disconnect_policy_refuses_past_byte_bound)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(100, 40, SP_OVERFLOW_DISCONNECT);
	struct sp_outq_drops dropped = { 0 };
	/* identity view: 15 bytes each; 2 fit in 40, the third does not */
	cr_assert_eq(sp_outq_push(&q, &pool, sp_wref_get(&pool, mkframe('a', 15, 1), 1), false, &l, &dropped), 0);
	cr_assert_eq(sp_outq_push(&q, &pool, sp_wref_get(&pool, mkframe('a', 15, 2), 1), false, &l, &dropped), 0);
	struct sp_wref *w = sp_wref_get(&pool, mkframe('a', 15, 3), 1);
	cr_assert_eq(sp_outq_push(&q, &pool, w, false, &l, &dropped), -ENOBUFS);
	sp_wref_put(&pool, w);
	sp_outq_clear(&q, &pool);
}

Test(outq, oversized_single_frame_accepted_into_empty_queue)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(100, 10, SP_OVERFLOW_DISCONNECT);
	struct sp_outq_drops dropped = { 0 };
	cr_assert_eq(sp_outq_push(&q, &pool, sp_wref_get(&pool, mkframe('a', 100, 1), 1), false, &l, &dropped), 0);
	sp_outq_clear(&q, &pool);
}

Test(outq, drop_oldest_keeps_newest_and_counts)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(3, 1 << 20, SP_OVERFLOW_DROP_OLDEST);
	struct sp_outq_drops dropped = { 0 };
	for (int i = 0; i < 10; i++)
		cr_assert_eq(sp_outq_push(&q, &pool, sp_wref_get(&pool, mkframe((char)('0' + i), 1, (uint64_t)i + 1), 1),
					  false, &l, &dropped), 0);
	cr_assert_eq(dropped.oldest, 7);
	cr_assert_eq(q.count, 3);
	char out[16];
	cr_assert_eq(gather(&q, false, out, sizeof(out)), 3);
	cr_assert(memcmp(out, "789", 3) == 0);
	sp_outq_clear(&q, &pool);
}

Test(outq, drop_oldest_never_drops_a_half_written_head)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(3, 1 << 20, SP_OVERFLOW_DROP_OLDEST);
	struct sp_outq_drops dropped = { 0 };
	for (int i = 0; i < 3; i++)
		sp_outq_push(&q, &pool, sp_wref_get(&pool, mkframe((char)('a' + i), 4, (uint64_t)i + 1), 1), false, &l, &dropped);
	sp_outq_consume(&q, &pool, 2, false, NULL, 0);   /* "aa" of "aaaa" went out */
	for (int i = 0; i < 3; i++)
		sp_outq_push(&q, &pool, sp_wref_get(&pool, mkframe((char)('x' + i), 4, (uint64_t)i + 10), 1), false, &l, &dropped);
	cr_assert_eq(dropped.oldest, 3);
	char out[64];
	size_t n = gather(&q, false, out, sizeof(out));
	/* the rest of the partial head, then the two newest */
	cr_assert_eq(n, 10);
	cr_assert(memcmp(out, "aayyyyzzzz", 10) == 0);
	sp_outq_clear(&q, &pool);
}

Test(outq, drop_oldest_under_byte_bound)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(100, 30, SP_OVERFLOW_DROP_OLDEST);
	struct sp_outq_drops dropped = { 0 };
	for (int i = 0; i < 5; i++)
		sp_outq_push(&q, &pool, sp_wref_get(&pool, mkframe((char)('a' + i), 10, (uint64_t)i + 1), 1), false, &l, &dropped);
	cr_assert_eq(q.count, 3);
	cr_assert_eq(q.bytes, 30);
	cr_assert_eq(dropped.oldest, 2);
	sp_outq_clear(&q, &pool);
}

Test(outq, queue_grows_across_wrap)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(1000, 1 << 20, SP_OVERFLOW_DISCONNECT);
	struct sp_outq_drops dropped = { 0 };
	uint64_t next_in = 1, next_out = 1;
	/* interleave pushes and pops so head wraps while the ring grows */
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 7; i++) {
			struct sp_frame *f = mkframe('a', 1, next_in++);
			cr_assert_eq(sp_outq_push(&q, &pool, sp_wref_get(&pool, f, 1), false, &l, &dropped), 0);
		}
		for (int i = 0; i < 5; i++) {
			struct iovec iov[1];
			cr_assert_eq(sp_outq_iov(&q, false, iov, 1), 1);
			cr_assert_eq(q.slot[q.head]->frame->id, next_out++);
			sp_outq_consume(&q, &pool, 1, false, NULL, 0);
		}
	}
	cr_assert_eq(q.count, 100);
	cr_assert_leq(q.cap, 128);
	sp_outq_clear(&q, &pool);
}

Test(outq, shared_wref_frees_frame_after_last_connection)
{
	/* Three connections share one wref: the frame must survive until the
	 * last one has written it (ASan catches a use-after-free or leak). */
	struct sp_outq a = { 0 }, b = { 0 }, c = { 0 };
	struct sp_outq_limits l = lim(8, 1 << 20, SP_OVERFLOW_DISCONNECT);
	struct sp_outq_drops dropped = { 0 };
	struct sp_wref *w = sp_wref_get(&pool, mkframe('z', 5, 1), 3);
	sp_outq_push(&a, &pool, w, false, &l, &dropped);
	sp_outq_push(&b, &pool, w, false, &l, &dropped);
	sp_outq_push(&c, &pool, w, false, &l, &dropped);
	cr_assert_eq(sp_outq_consume(&a, &pool, 5, false, NULL, 0), 1);
	cr_assert_eq(w->refs, 2);
	sp_outq_clear(&b, &pool);
	cr_assert_eq(w->refs, 1);
	char out[8];
	cr_assert_eq(gather(&c, false, out, sizeof(out)), 5);
	cr_assert_eq(sp_outq_consume(&c, &pool, 5, false, NULL, 0), 1);
	/* the wref went back to the pool: next get returns it */
	cr_assert_eq(sp_wref_get(&pool, mkframe('q', 1, 2), 1), w);
	sp_wref_put(&pool, w);
	sp_outq_clear(&a, &pool);
	sp_outq_clear(&c, &pool);
}

Test(outq, pinned_wref_is_never_recycled)
{
	struct sp_wref hb = { .frame = mkframe(':', 1, 0), .refs = 1, .pinned = true };
	hb.frame->flags |= SP_FRAME_STATIC;
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(8, 1 << 20, SP_OVERFLOW_DISCONNECT);
	struct sp_outq_drops dropped = { 0 };
	for (int i = 0; i < 3; i++) {
		sp_outq_push(&q, &pool, &hb, true, &l, &dropped);
		cr_assert_eq(sp_outq_consume(&q, &pool, hb.frame->len, true, NULL, 0), 0, "heartbeats are not deliveries");
	}
	cr_assert_eq(hb.refs, 1);
	sp_frame_destroy(hb.frame);
	sp_outq_clear(&q, &pool);
}

/* A chunk frame on <topic> with id <id>. */
static struct sp_frame *topic_frame(const char *topic, uint64_t id)
{
	struct sp_event e = { .topic = topic, .topic_len = strlen(topic),
			      .topic_hash = (uint64_t)topic[0] * 1000003u + strlen(topic),
			      .data = topic, .data_len = strlen(topic), .id = id };
	struct sp_frame *f = sp_frame_new_event(&e);
	cr_assert_not_null(f);
	return f;
}

Test(outq, latest_keeps_only_newest_pending_per_topic)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(100, 1 << 20, SP_OVERFLOW_LATEST);
	struct sp_outq_drops dropped = { 0 };
	const char *topics[] = { "px.a", "px.b", "px.a", "px.c", "px.a", "px.b" };
	for (int i = 0; i < 6; i++)
		cr_assert_eq(sp_outq_push(&q, &pool, sp_wref_get(&pool, topic_frame(topics[i], (uint64_t)i + 1), 1),
					  false, &l, &dropped), 0);
	cr_assert_eq(dropped.conflated, 3);
	cr_assert_eq(dropped.oldest, 0);
	cr_assert_eq(q.count, 3);
	/* newest per topic, still in id order: c(4), a(5), b(6) */
	uint64_t want[] = { 4, 5, 6 };
	for (uint32_t i = 0; i < 3; i++)
		cr_assert_eq(q.slot[(q.head + i) & (q.cap - 1)]->frame->id, want[i]);
	struct iovec iov[8];
	size_t total = 0;
	int n = sp_outq_iov(&q, false, iov, 8);
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	cr_assert_eq(q.bytes, total, "byte count follows replacements");
	sp_outq_clear(&q, &pool);
}

Test(outq, latest_never_replaces_a_half_written_head)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(100, 1 << 20, SP_OVERFLOW_LATEST);
	struct sp_outq_drops dropped = { 0 };
	sp_outq_push(&q, &pool, sp_wref_get(&pool, topic_frame("k", 1), 1), false, &l, &dropped);
	sp_outq_consume(&q, &pool, 3, false, NULL, 0);
	sp_outq_push(&q, &pool, sp_wref_get(&pool, topic_frame("k", 2), 1), false, &l, &dropped);
	cr_assert_eq(dropped.conflated, 0);
	cr_assert_eq(q.count, 2);
	sp_outq_push(&q, &pool, sp_wref_get(&pool, topic_frame("k", 3), 1), false, &l, &dropped);
	cr_assert_eq(dropped.conflated, 1, "the unwritten 2 is replaced, the partial 1 stays");
	cr_assert_eq(q.count, 2);
	cr_assert_eq(q.slot[(q.head + 1) & (q.cap - 1)]->frame->id, 3);
	sp_outq_clear(&q, &pool);
}

Test(outq, latest_past_the_bound_drops_oldest)
{
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(2, 1 << 20, SP_OVERFLOW_LATEST);
	struct sp_outq_drops dropped = { 0 };
	const char *topics[] = { "a", "bb", "ccc" };
	for (int i = 0; i < 3; i++)
		cr_assert_eq(sp_outq_push(&q, &pool, sp_wref_get(&pool, topic_frame(topics[i], (uint64_t)i + 1), 1),
					  false, &l, &dropped), 0, "latest never disconnects");
	cr_assert_eq(dropped.oldest, 1);
	cr_assert_eq(q.count, 2);
	sp_outq_clear(&q, &pool);
}

Test(outq, consume_records_live_latency_only)
{
	static struct sp_hist lat;
	struct sp_outq q = { 0 };
	struct sp_outq_limits l = lim(8, 1 << 20, SP_OVERFLOW_DISCONNECT);
	struct sp_outq_drops dropped = { 0 };
	struct sp_frame *live = mkframe('a', 2, 1), *old = mkframe('b', 2, 2);
	live->born_ns = 1000;
	old->born_ns = 10;
	struct sp_wref *wl = sp_wref_get(&pool, live, 1), *wo = sp_wref_get(&pool, old, 1);
	wo->replayed = true;
	sp_outq_push(&q, &pool, wl, false, &l, &dropped);
	sp_outq_push(&q, &pool, wo, false, &l, &dropped);
	cr_assert_eq(sp_outq_consume(&q, &pool, 4, false, &lat, 1000 + 5000), 1,
		     "the replayed frame is not a live delivery");
	cr_assert_eq(sp_stat_get(&lat.count), 1);
	cr_assert_eq(sp_stat_get(&lat.sum_ns), 5000);
	sp_outq_clear(&q, &pool);
}
