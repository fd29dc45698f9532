/*
 * heap.h - a binary min-heap of deadlines, for timers whose durations
 * differ per item (a stream's token expiry): the ordered lists that serve
 * the fixed-duration timers would need an O(n) insert for those.
 *
 * The heap holds (deadline, item) pairs and keeps each item's position in
 * a uint32_t the item owns (SP_HEAP_NONE while it is not in the heap), so
 * removing an item that closes early is O(log n) and an item pays 4 bytes,
 * not a node. Not thread-safe: one owner (a worker thread).
 */
#ifndef SPOUT_HEAP_H
#define SPOUT_HEAP_H

#include <stdint.h>

#define SP_HEAP_NONE UINT32_MAX

struct sp_heap_entry {
	uint64_t key;               /* the deadline */
	void *item;
	uint32_t *pos;              /* the item's record of where it is */
};

struct sp_heap {
	struct sp_heap_entry *v;
	uint32_t n, cap;
};

/* The item with the smallest key (its key in <*key>), or NULL when empty. */
static inline void *sp_heap_min(const struct sp_heap *h, uint64_t *key)
{
	if (h->n == 0)
		return NULL;
	*key = h->v[0].key;
	return h->v[0].item;
}

/* Insert <item>, whose position the heap keeps in <*pos> (which must be
 * SP_HEAP_NONE: not in a heap), with key <key>. Returns 0 or -ENOMEM. */
int sp_heap_push(struct sp_heap *h, void *item, uint32_t *pos, uint64_t key);

/* Remove the item whose position is kept in <*pos>, if it is in the heap;
 * <*pos> becomes SP_HEAP_NONE. */
void sp_heap_remove(struct sp_heap *h, uint32_t *pos);

void sp_heap_free(struct sp_heap *h);

#endif
