/*
 * test_heap.c - the deadline min-heap (src/heap.c), against a sorted
 * reference under random pushes and removals.
 */
#include <stdlib.h>

#include <criterion/criterion.h>

#include "spout/heap.h"
#include "sanitizers.h"

#define N 2000

struct item {
	int id;
	uint32_t pos;
};

Test(heap, empty_and_single)
{
	struct sp_heap h = { 0 };
	struct item a = { .id = 1, .pos = SP_HEAP_NONE };
	uint64_t key;

	cr_expect_null(sp_heap_min(&h, &key));
	sp_heap_remove(&h, &a.pos);   /* not in it: nothing happens */
	cr_assert_eq(sp_heap_push(&h, &a, &a.pos, 7), 0);
	cr_expect_neq(a.pos, SP_HEAP_NONE);
	cr_expect_eq(sp_heap_min(&h, &key), &a);
	cr_expect_eq(key, 7);
	sp_heap_remove(&h, &a.pos);
	cr_expect_null(sp_heap_min(&h, &key));
	cr_expect_eq(a.pos, SP_HEAP_NONE);
	sp_heap_remove(&h, &a.pos);   /* twice: still nothing */
	sp_heap_free(&h);
}

Test(heap, random_push_remove_pop_in_order)
{
	static struct item items[N];
	struct sp_heap h = { 0 };
	unsigned seed = 12345;

	for (int i = 0; i < N; i++) {
		items[i] = (struct item){ .id = i, .pos = SP_HEAP_NONE };
		cr_assert_eq(sp_heap_push(&h, &items[i], &items[i].pos,
					  (uint64_t)(rand_r(&seed) % 500)), 0);
	}
	/* remove a third of them from anywhere */
	for (int i = 0; i < N; i += 3)
		sp_heap_remove(&h, &items[i].pos);
	cr_expect_eq(h.n, (uint32_t)(N - (N + 2) / 3));
	uint64_t last = 0, key;
	uint32_t popped = 0;
	struct item *it;
	while ((it = sp_heap_min(&h, &key)) != NULL) {
		cr_assert_geq(key, last, "keys come out in order");
		cr_assert_neq(it->id % 3, 0, "a removed item came back");
		cr_assert_eq(h.v[it->pos].item, it, "the item's position is right");
		last = key;
		sp_heap_remove(&h, &it->pos);
		popped++;
	}
	cr_expect_eq(popped, (uint32_t)(N - (N + 2) / 3));
	sp_heap_free(&h);
}
