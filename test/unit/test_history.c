/*
 * test_history.c - bounded per-topic history: bounds, eviction order, gap
 * reporting, replay collection and frame reference counting.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "spout/history.h"
#include "spout/topic.h"
#include "sanitizers.h"

static struct sp_frame *ev(const char *topic, uint64_t id)
{
	char data[32];
	snprintf(data, sizeof(data), "d%llu", (unsigned long long)id);
	struct sp_event e = { .topic = topic, .topic_len = strlen(topic),
			      .topic_hash = sp_topic_hash(topic, strlen(topic)),
			      .data = data, .data_len = strlen(data), .id = id };
	struct sp_frame *f = sp_frame_new_event(&e);
	cr_assert_not_null(f);
	return f;
}

static struct sp_history_limits lim(uint32_t per, uint64_t bytes, uint64_t ttl)
{
	return (struct sp_history_limits){ .per_topic = per, .max_bytes = bytes, .ttl_ms = ttl };
}

/* Collect on one or more topics; returns the ids as a string "1,2,3". */
static char *ids_of(struct sp_history *h, const char *const *topics, unsigned n,
		    uint64_t after, enum sp_gap *gap)
{
	static char out[1024];
	uint16_t lens[8];
	struct sp_frame **v;
	size_t cnt;
	for (unsigned i = 0; i < n; i++)
		lens[i] = (uint16_t)strlen(topics[i]);
	cr_assert_eq(sp_history_collect(h, topics, lens, n, after, &v, &cnt, gap), 0);
	out[0] = '\0';
	for (size_t i = 0; i < cnt; i++) {
		char num[24];
		snprintf(num, sizeof(num), "%s%llu", i ? "," : "", (unsigned long long)v[i]->id);
		strcat(out, num);
		sp_frame_release(v[i]);   /* the reference collect gave us */
	}
	free(v);
	return out;
}

Test(history, per_topic_bound_keeps_newest)
{
	struct sp_history h;
	struct sp_history_limits l = lim(3, 1 << 20, 0);
	cr_assert_eq(sp_history_init(&h, &l), 0);
	for (uint64_t id = 1; id <= 10; id++)
		cr_assert_eq(sp_history_add(&h, ev(id % 2 ? "odd" : "even", id), 0), 0);
	enum sp_gap gap;
	const char *odd[] = { "odd" }, *both[] = { "odd", "even" };
	cr_assert_str_eq(ids_of(&h, odd, 1, 0, &gap), "5,7,9");
	cr_assert_eq(gap, SP_GAP_EVICTED, "ids 1 and 3 were dropped");
	cr_assert_str_eq(ids_of(&h, odd, 1, 5, &gap), "7,9");
	cr_assert_eq(gap, SP_GAP_NONE, "nothing after 5 was dropped");
	cr_assert_str_eq(ids_of(&h, both, 2, 4, &gap), "5,6,7,8,9,10", "merged in id order");
	cr_assert_eq(gap, SP_GAP_NONE);
	cr_assert_str_eq(ids_of(&h, both, 2, 10, &gap), "");
	cr_assert_eq(h.count, 6);
	sp_history_destroy(&h);
}

Test(history, byte_budget_drops_globally_oldest)
{
	struct sp_history h;
	struct sp_frame *probe = ev("a", 1);
	size_t cost = sp_history_cost(probe);
	sp_frame_release(probe);
	struct sp_history_limits l = lim(100, cost * 4 + cost / 2, 0);
	cr_assert_eq(sp_history_init(&h, &l), 0);
	const char *names[] = { "a", "b", "c" };
	for (uint64_t id = 1; id <= 9; id++)
		sp_history_add(&h, ev(names[id % 3], id), 0);
	cr_assert_eq(h.count, 4, "budget of 4.5 entries keeps 4");
	cr_assert_leq(h.bytes, l.max_bytes);
	enum sp_gap gap;
	const char *all[] = { "a", "b", "c" };
	cr_assert_str_eq(ids_of(&h, all, 3, 0, &gap), "6,7,8,9");
	cr_assert_eq(gap, SP_GAP_EVICTED);
	cr_assert_eq(h.evicted_upto, 5);
	sp_history_destroy(&h);
}

Test(history, oversized_newest_entry_is_kept)
{
	struct sp_history h;
	struct sp_history_limits l = lim(10, 16, 0);
	cr_assert_eq(sp_history_init(&h, &l), 0);
	sp_history_add(&h, ev("a", 1), 0);
	sp_history_add(&h, ev("a", 2), 0);
	cr_assert_eq(h.count, 1);
	enum sp_gap gap;
	const char *a[] = { "a" };
	cr_assert_str_eq(ids_of(&h, a, 1, 0, &gap), "2");
	sp_history_destroy(&h);
}

Test(history, ttl_expires_oldest_first)
{
	struct sp_history h;
	struct sp_history_limits l = lim(100, 1 << 20, 1000);
	cr_assert_eq(sp_history_init(&h, &l), 0);
	sp_history_add(&h, ev("a", 1), 100);
	sp_history_add(&h, ev("b", 2), 600);
	sp_history_add(&h, ev("a", 3), 1200);
	cr_assert_eq(h.count, 2, "id 1 (t=100) expired at t=1200");
	sp_history_expire(&h, 1599);
	cr_assert_eq(h.count, 2);
	sp_history_expire(&h, 1600);
	cr_assert_eq(h.count, 1);
	enum sp_gap gap;
	const char *b[] = { "b" }, *a[] = { "a" };
	cr_assert_str_eq(ids_of(&h, b, 1, 0, &gap), "");
	cr_assert_eq(gap, SP_GAP_EVICTED, "topic b is forgotten but had events after 0");
	cr_assert_str_eq(ids_of(&h, a, 1, 1, &gap), "3");
	cr_assert_eq(gap, SP_GAP_NONE, "a's only drop is id 1, not after it");
	sp_history_destroy(&h);
}

Test(history, unknown_topic_without_evictions_is_no_gap)
{
	struct sp_history h;
	struct sp_history_limits l = lim(10, 1 << 20, 0);
	cr_assert_eq(sp_history_init(&h, &l), 0);
	sp_history_add(&h, ev("a", 1), 0);
	enum sp_gap gap;
	const char *z[] = { "zzz" };
	cr_assert_str_eq(ids_of(&h, z, 1, 0, &gap), "");
	cr_assert_eq(gap, SP_GAP_NONE);
	sp_history_destroy(&h);
}

Test(history, references_follow_ownership)
{
	/* The history holds one reference; collect adds one per copy handed
	 * out; eviction drops the history's. ASan proves no leak/double free. */
	struct sp_history h;
	struct sp_history_limits l = lim(1, 1 << 20, 0);
	cr_assert_eq(sp_history_init(&h, &l), 0);
	struct sp_frame *f = ev("a", 1);
	atomic_store(&f->refs, 2);              /* ours + the history's */
	sp_history_add(&h, f, 0);
	uint16_t len = 1;
	const char *t[] = { "a" };
	struct sp_frame **v;
	size_t n;
	enum sp_gap gap;
	cr_assert_eq(sp_history_collect(&h, t, &len, 1, 0, &v, &n, &gap), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(atomic_load(&f->refs), 3);
	sp_history_add(&h, ev("a", 2), 0);     /* evicts f */
	cr_assert_eq(atomic_load(&f->refs), 2);
	sp_frame_release(v[0]);
	free(v);
	cr_assert_eq(atomic_load(&f->refs), 1);
	sp_frame_release(f);
	sp_history_destroy(&h);
}

Test(history, patterns_scan_back_and_merge_without_duplicates)
{
	struct sp_history h;
	struct sp_history_limits l = lim(100, 1 << 20, 0);
	cr_assert_eq(sp_history_init(&h, &l), 0);
	const char *seq[] = { "orders.eu.created", "orders.us.created", "metrics.cpu",
			      "orders.eu.deleted", "metrics.cpu.0", "orders.eu.created" };
	for (uint64_t id = 1; id <= 6; id++)
		sp_history_add(&h, ev(seq[id - 1], id), 0);
	enum sp_gap gap;
	const char *p1[] = { "orders.*.created" };
	cr_assert_str_eq(ids_of(&h, p1, 1, 0, &gap), "1,2,6");
	cr_assert_eq(gap, SP_GAP_NONE);
	const char *p2[] = { "metrics.>" };
	cr_assert_str_eq(ids_of(&h, p2, 1, 3, &gap), "5", "only after id 3");
	/* a topic and a pattern reaching the same events: each once */
	const char *mix[] = { "orders.eu.created", "orders.*.created", "metrics.>" };
	cr_assert_str_eq(ids_of(&h, mix, 3, 0, &gap), "1,2,3,5,6");
	sp_history_destroy(&h);
}
