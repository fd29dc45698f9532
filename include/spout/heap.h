/*
 * heap.h - a binary min-heap of deadlines, for timers whose durations
 * differ per item (a stream's token expiry): the ordered lists that serve
 * the fixed-duration timers would need an O(n) insert for those.
 *
 * Items embed a struct sp_heap_node; the heap keeps each node's index in
 * it, so removing an item that closes early is O(log n). Not thread-safe:
 * one owner (a worker thread).
 */
#ifndef SPOUT_HEAP_H
#define SPOUT_HEAP_H

#include <stdbool.h>
#include <stdint.h>

#define SP_HEAP_NONE UINT32_MAX

struct sp_heap_node {
	uint64_t key;               /* the deadline */
	uint32_t idx;               /* position in the heap, SP_HEAP_NONE if not in it */
};

struct sp_heap {
	struct sp_heap_node **v;
	uint32_t n, cap;
};

static inline void sp_heap_node_init(struct sp_heap_node *nd)
{
	nd->idx = SP_HEAP_NONE;
}

static inline bool sp_heap_node_linked(const struct sp_heap_node *nd)
{
	return nd->idx != SP_HEAP_NONE;
}

/* The node with the smallest key, or NULL when empty. */
static inline struct sp_heap_node *sp_heap_min(const struct sp_heap *h)
{
	return h->n > 0 ? h->v[0] : NULL;
}

/* Insert <nd> (not in a heap) with key <key>. Returns 0 or -ENOMEM. */
int sp_heap_push(struct sp_heap *h, struct sp_heap_node *nd, uint64_t key);

/* Remove <nd> if it is in the heap. */
void sp_heap_remove(struct sp_heap *h, struct sp_heap_node *nd);

void sp_heap_free(struct sp_heap *h);

#endif
