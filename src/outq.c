/*
 * outq.c - per-connection bounded out-queue of frame references.
 * Owner: the worker thread of the connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spout/outq.h"

#define WREF_SLAB 256

/* wrefs come in slabs so steady-state fan-out never reaches malloc. Slabs
 * live as long as the worker: wrefs are recycled, never freed one by one. */
struct sp_wref_slab {
	struct sp_wref_slab *next;
	struct sp_wref w[WREF_SLAB];
};

struct sp_wref *sp_wref_get(struct sp_wref_pool *p, struct sp_frame *frame,
			    uint32_t refs)
{
	struct sp_wref *w = p->free;

	if (w == NULL) {
		struct sp_wref_slab *slab = calloc(1, sizeof(*slab));
		if (slab == NULL)
			return NULL;
		slab->next = p->slabs;
		p->slabs = slab;
		for (int i = WREF_SLAB - 1; i >= 1; i--) {
			slab->w[i].next = p->free;
			p->free = &slab->w[i];
		}
		w = &slab->w[0];
	} else {
		p->free = w->next;
	}
	w->frame = frame;
	w->refs = refs;
	w->pinned = false;
	w->replayed = false;
	w->next = NULL;
	return w;
}

void sp_wref_put(struct sp_wref_pool *p, struct sp_wref *w)
{
	if (w->pinned)
		return;
	if (--w->refs != 0)
		return;
	sp_frame_release(w->frame);
	w->frame = NULL;
	w->next = p->free;
	p->free = w;
}

void sp_wref_pool_destroy(struct sp_wref_pool *p)
{
	while (p->slabs != NULL) {
		struct sp_wref_slab *next = p->slabs->next;
		free(p->slabs);
		p->slabs = next;
	}
	p->free = NULL;
}

static inline struct sp_wref *at(const struct sp_outq *q, uint32_t i)
{
	return q->slot[(q->head + i) & (q->cap - 1)];
}

static int grow(struct sp_outq *q)
{
	/* The bounds keep count <= max_events, so cap stops at the next
	 * power of two above it. */
	uint32_t ncap = q->cap ? q->cap * 2 : 4;
	struct sp_wref **s = malloc(ncap * sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->count; i++)
		s[i] = at(q, i);
	free(q->slot);
	q->slot = s;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

/* Drop the oldest entry that has not started to go out. */
static bool drop_oldest(struct sp_outq *q, struct sp_wref_pool *pool, bool chunked)
{
	uint32_t i = q->head_off ? 1 : 0;   /* a half-written head must finish */

	if (i >= q->count)
		return false;
	uint32_t pos = (q->head + i) & (q->cap - 1);
	struct sp_wref *w = q->slot[pos];
	q->bytes -= sp_outq_len_of(w, chunked);
	sp_wref_put(pool, w);
	if (i == 0) {
		q->head = (q->head + 1) & (q->cap - 1);
	} else {
		/* keep the partial head where it is: shift it one slot on */
		q->slot[pos] = q->slot[q->head];
		q->head = (q->head + 1) & (q->cap - 1);
	}
	q->count--;
	return true;
}

static bool same_topic(const struct sp_frame *a, const struct sp_frame *b)
{
	return a->topic_hash == b->topic_hash && a->topic_len == b->topic_len &&
	       memcmp(a->topic, b->topic, a->topic_len) == 0;
}

/* latest: replace the newest unwritten entry of <w>'s topic, if any. The
 * scan only runs on a connection that already lags (count > 0) and stops
 * at the --queue bound. */
static bool conflate(struct sp_outq *q, struct sp_wref_pool *pool, struct sp_wref *w,
		     bool chunked)
{
	uint32_t first = q->head_off ? 1 : 0;   /* a half-written head stays */

	for (uint32_t i = q->count; i-- > first;) {
		uint32_t pos = (q->head + i) & (q->cap - 1);
		struct sp_wref *old = q->slot[pos];
		if (old->frame->id == 0 || !same_topic(old->frame, w->frame))
			continue;
		q->bytes -= sp_outq_len_of(old, chunked);
		q->bytes += sp_outq_len_of(w, chunked);
		sp_wref_put(pool, old);
		/* Ids then stay increasing only if nothing newer sits behind
		 * the slot: move the new entry to the tail instead. */
		for (uint32_t j = i; j + 1 < q->count; j++)
			q->slot[(q->head + j) & (q->cap - 1)] = q->slot[(q->head + j + 1) & (q->cap - 1)];
		q->slot[(q->head + q->count - 1) & (q->cap - 1)] = w;
		return true;
	}
	return false;
}

int sp_outq_push(struct sp_outq *q, struct sp_wref_pool *pool, struct sp_wref *w,
		 bool chunked, const struct sp_outq_limits *lim, struct sp_outq_drops *drops)
{
	size_t len = sp_outq_len_of(w, chunked);

	if (lim->policy == SP_OVERFLOW_LATEST && q->count > 0 && w->frame->id != 0 &&
	    conflate(q, pool, w, chunked)) {
		drops->conflated++;
		return 0;
	}
	while (q->count > 0 &&
	       (q->count >= lim->max_events || q->bytes + len > lim->max_bytes)) {
		if (lim->policy == SP_OVERFLOW_DISCONNECT)
			return -ENOBUFS;
		if (!drop_oldest(q, pool, chunked))
			break;       /* only a partly written head is left */
		drops->oldest++;
	}
	if (q->count == q->cap && grow(q) != 0)
		return -ENOMEM;
	q->slot[(q->head + q->count) & (q->cap - 1)] = w;
	q->count++;
	q->bytes += len;
	return 0;
}

int sp_outq_iov(const struct sp_outq *q, bool chunked, struct iovec *iov, int max)
{
	int n = 0;

	for (uint32_t i = 0; i < q->count && n < max; i++, n++) {
		iov[n] = sp_frame_view(at(q, i)->frame, chunked);
		if (i == 0) {
			iov[n].iov_base = (char *)iov[n].iov_base + q->head_off;
			iov[n].iov_len -= q->head_off;
		}
	}
	return n;
}

uint32_t sp_outq_consume(struct sp_outq *q, struct sp_wref_pool *pool, size_t n,
			 bool chunked, struct sp_hist *lat, uint64_t now_ns)
{
	uint32_t done = 0;

	q->bytes -= n;
	while (n > 0 && q->count > 0) {
		struct sp_wref *w = at(q, 0);
		size_t left = sp_outq_len_of(w, chunked) - q->head_off;
		if (n < left) {
			q->head_off += (uint32_t)n;
			break;
		}
		n -= left;
		q->head_off = 0;
		q->head = (q->head + 1) & (q->cap - 1);
		q->count--;
		if (w->frame->id != 0 && !w->replayed) {
			done++;
			if (lat != NULL)
				sp_hist_add(lat, now_ns - w->frame->born_ns);
		}
		sp_wref_put(pool, w);
	}
	return done;
}

void sp_outq_clear(struct sp_outq *q, struct sp_wref_pool *pool)
{
	for (uint32_t i = 0; i < q->count; i++)
		sp_wref_put(pool, at(q, i));
	free(q->slot);
	memset(q, 0, sizeof(*q));
}
