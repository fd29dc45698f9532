/*
 * heap.c - binary min-heap of deadlines (see include/spout/heap.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "spout/heap.h"

static void place(struct sp_heap *h, uint32_t i, struct sp_heap_entry e)
{
	h->v[i] = e;
	*e.pos = i;
}

static void sift_up(struct sp_heap *h, uint32_t i)
{
	struct sp_heap_entry e = h->v[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (h->v[parent].key <= e.key)
			break;
		place(h, i, h->v[parent]);
		i = parent;
	}
	place(h, i, e);
}

static void sift_down(struct sp_heap *h, uint32_t i)
{
	struct sp_heap_entry e = h->v[i];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1].key < h->v[c].key)
			c++;
		if (e.key <= h->v[c].key)
			break;
		place(h, i, h->v[c]);
		i = c;
	}
	place(h, i, e);
}

int sp_heap_push(struct sp_heap *h, void *item, uint32_t *pos, uint64_t key)
{
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 64;
		struct sp_heap_entry *v = realloc(h->v, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n] = (struct sp_heap_entry){ .key = key, .item = item, .pos = pos };
	*pos = h->n;
	sift_up(h, h->n++);
	return 0;
}

void sp_heap_remove(struct sp_heap *h, uint32_t *pos)
{
	uint32_t i = *pos;

	if (i == SP_HEAP_NONE || i >= h->n || h->v[i].pos != pos)
		return;
	*pos = SP_HEAP_NONE;
	struct sp_heap_entry last = h->v[--h->n];
	if (i == h->n)
		return;
	place(h, i, last);
	if (i > 0 && h->v[(i - 1) / 2].key > last.key)
		sift_up(h, i);
	else
		sift_down(h, i);
}

void sp_heap_free(struct sp_heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}
