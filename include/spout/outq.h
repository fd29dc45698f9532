/*
 * outq.h - a connection's bounded out-queue of frame references.
 *
 * A worker receives each frame once from the router and wraps it in one
 * struct sp_wref whose plain (non-atomic) count is the number of local
 * connections that queued it. Connections queue the wref pointer, never a
 * copy. When the last local connection is done with it, the worker drops
 * its single atomic reference on the frame (sp_frame_release).
 *
 *   router --frame--> worker: wref{frame, refs = local subscribers}
 *                      |          ^   ^   ^
 *                      |   conn A.q   B.q  C.q  (pointers to the same wref)
 *
 * The queue is a ring of pointers that grows on demand (doubling, up to the
 * --queue bound), so an idle subscriber holds no queue memory at all; only a
 * connection that falls behind pays for slots, and keeps them.
 *
 * Only the head entry can be partly written (<head_off> bytes already sent).
 * Everything here runs on the owning worker thread.
 */
#ifndef SPOUT_OUTQ_H
#define SPOUT_OUTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "spout/config.h"
#include "spout/frame.h"
#include "spout/hist.h"

struct sp_wref {
	struct sp_frame *frame;
	uint32_t refs;         /* local connections holding it */
	bool pinned;           /* never recycled (the heartbeat) */
	bool replayed;         /* history replay: not a live delivery */
	struct sp_wref *next;  /* freelist link */
};

/* Per-worker freelist of wrefs: no malloc per event once warm. */
struct sp_wref_slab;
struct sp_wref_pool {
	struct sp_wref *free;
	struct sp_wref_slab *slabs;
};

/* A wref for <frame> with <refs> references, taking over one frame ref.
 * Returns NULL on allocation failure. */
struct sp_wref *sp_wref_get(struct sp_wref_pool *p, struct sp_frame *frame,
			    uint32_t refs);
/* Drop one reference; on the last, release the frame and recycle. */
void sp_wref_put(struct sp_wref_pool *p, struct sp_wref *w);
/* Free every slab; all wrefs must be back in the pool. */
void sp_wref_pool_destroy(struct sp_wref_pool *p);

struct sp_outq {
	struct sp_wref **slot;
	uint32_t cap;          /* power of two or 0 */
	uint32_t head;         /* index of the oldest entry */
	uint32_t count;
	uint32_t head_off;     /* bytes of the head entry already written */
	uint64_t bytes;        /* unwritten bytes queued */
};

struct sp_outq_limits {
	uint32_t max_events;
	uint64_t max_bytes;
	enum sp_overflow policy;
};

static inline size_t sp_outq_len_of(const struct sp_wref *w, bool chunked)
{
	return sp_frame_view(w->frame, chunked).iov_len;
}

/* Events a push discarded, by reason (the caller adds them to metrics). */
struct sp_outq_drops {
	uint64_t oldest;       /* dropped to make room (drop-oldest, latest) */
	uint64_t conflated;    /* replaced by a newer event of the same topic */
};

/* Queue <w> (the caller's reference moves into the queue).
 * Returns 0; or -ENOBUFS when the queue is over a bound and the policy is
 * disconnect (<w> is not queued and the caller still owns its reference);
 * or -ENOMEM. Under drop-oldest, the oldest unwritten entries are dropped
 * to make room. Under latest, a queue that already holds an unwritten
 * event of the same topic has it replaced by <w> (the connection lags: it
 * only needs the newest), and past a bound the oldest are dropped. A single
 * entry larger than max_bytes is still accepted into an empty queue. */
int sp_outq_push(struct sp_outq *q, struct sp_wref_pool *pool, struct sp_wref *w,
		 bool chunked, const struct sp_outq_limits *lim, struct sp_outq_drops *drops);

/* Fill up to <max> iovecs with the unwritten bytes, oldest first. */
int sp_outq_iov(const struct sp_outq *q, bool chunked, struct iovec *iov, int max);

/* Account <n> written bytes: complete entries are popped and released.
 * Returns the number of completed live deliveries: event frames (id != 0)
 * not replayed from history; heartbeats and HTTP responses do not count.
 * For each, if <lat> is not NULL, records <now_ns> minus the frame's birth
 * (publish to fully written) in <lat>. */
uint32_t sp_outq_consume(struct sp_outq *q, struct sp_wref_pool *pool, size_t n,
			 bool chunked, struct sp_hist *lat, uint64_t now_ns);

/* Release every entry and the slot array; leaves an all-zero queue. */
void sp_outq_clear(struct sp_outq *q, struct sp_wref_pool *pool);

#endif
