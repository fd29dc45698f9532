/*
 * hist.c - latency histogram (layout in hist.h). Called from the event
 * loop's thread only.
 */
#include <math.h>

#include "hist.h"

static unsigned hist_index(uint64_t v)
{
	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63 - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - HIST_SUB_BITS;
	return HIST_SUB * shift + (unsigned)(v >> shift);
}

void hist_record(struct hist *h, uint64_t v)
{
	h->count[hist_index(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

void hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_LEN; i++)
		into->count[i] += from->count[i];
	into->n += from->n;
	if (from->max > into->max)
		into->max = from->max;
}

/* Midpoint of bucket <i>: the reported value for any sample in it. */
static uint64_t hist_bucket_mid(unsigned i)
{
	if (i < 2 * HIST_SUB)
		return i;
	unsigned shift = (i >> HIST_SUB_BITS) - 1;
	uint64_t low = (uint64_t)(i - HIST_SUB * shift) << shift;
	return low + ((1ull << shift) >> 1);
}

/* The smallest bucket holding at least ceil(q * n) samples below or in it. */
uint64_t hist_quantile(const struct hist *h, double q)
{
	if (h->n == 0)
		return 0;
	uint64_t target = (uint64_t)ceil(q * (double)h->n);
	if (target < 1)
		target = 1;
	uint64_t cum = 0;
	for (unsigned i = 0; i < HIST_LEN; i++) {
		cum += h->count[i];
		if (cum >= target) {
			uint64_t v = hist_bucket_mid(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}
