/*
 * test_heap.c - the deadline min-heap (src/heap.c), against a sorted
 * reference under random pushes and removals.
 */
#include <stdlib.h>

#include <criterion/criterion.h>

#include "spout/heap.h"
#include "sanitizers.h"

#define N 2000

Test(heap, empty_and_single)
{
	struct sp_heap h = { 0 };
	struct sp_heap_node a;

	sp_heap_node_init(&a);
	cr_expect_null(sp_heap_min(&h));
	cr_expect_not(sp_heap_node_linked(&a));
	sp_heap_remove(&h, &a);   /* not in it: nothing happens */
	cr_assert_eq(sp_heap_push(&h, &a, 7), 0);
	cr_expect(sp_heap_node_linked(&a));
	cr_expect_eq(sp_heap_min(&h), &a);
	sp_heap_remove(&h, &a);
	cr_expect_null(sp_heap_min(&h));
	cr_expect_not(sp_heap_node_linked(&a));
	sp_heap_remove(&h, &a);   /* twice: still nothing */
	sp_heap_free(&h);
}

Test(heap, random_push_remove_pop_in_order)
{
	static struct sp_heap_node nodes[N];
	struct sp_heap h = { 0 };
	unsigned seed = 12345;

	for (int i = 0; i < N; i++) {
		sp_heap_node_init(&nodes[i]);
		cr_assert_eq(sp_heap_push(&h, &nodes[i], (uint64_t)(rand_r(&seed) % 500)), 0);
	}
	/* remove a third of them from anywhere */
	for (int i = 0; i < N; i += 3)
		sp_heap_remove(&h, &nodes[i]);
	cr_expect_eq(h.n, (uint32_t)(N - (N + 2) / 3));
	uint64_t last = 0;
	uint32_t popped = 0;
	struct sp_heap_node *nd;
	while ((nd = sp_heap_min(&h)) != NULL) {
		cr_assert_geq(nd->key, last, "keys come out in order");
		cr_assert_neq((nd - nodes) % 3, 0, "a removed node came back");
		last = nd->key;
		sp_heap_remove(&h, nd);
		popped++;
	}
	cr_expect_eq(popped, (uint32_t)(N - (N + 2) / 3));
	sp_heap_free(&h);
}
