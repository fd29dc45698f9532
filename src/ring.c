/*
 * ring.c - allocation for the SPSC ring; the hot functions are inline in
 * include/spout/ring.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spout/ring.h"

int sp_ring_init(struct sp_ring *r, uint32_t size)
{
	if (size < 2 || (size & (size - 1)) != 0)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->slots = calloc(size, sizeof(*r->slots));
	if (r->slots == NULL)
		return -ENOMEM;
	r->mask = size - 1;
	return 0;
}

void sp_ring_destroy(struct sp_ring *r)
{
	free((void *)r->slots);
	r->slots = NULL;
}
