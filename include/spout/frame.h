/*
 * frame.h - immutable, reference-counted, pre-formatted SSE frames.
 *
 * The router formats each published event exactly once into one sp_frame and
 * hands the same pointer to every worker that has subscribers for the topic.
 * Nobody writes to a frame after it is published; it is freed by whoever drops
 * the last reference.
 *
 * Buffer layout (one allocation; the topic name follows the bytes):
 *
 *   buf: "<hex len>\r\n" "id: 42\nevent: t\ndata: a\ndata: b\n\n" "\r\n"
 *         |<-- pre -->|  |<----------- SSE event --------------->| post
 *
 * An HTTP/1.1 stream uses chunked transfer-coding and writes the whole buffer;
 * an HTTP/1.0 stream writes only the SSE event (sp_frame_view). So the same
 * bytes serve both, with no per-connection copy.
 *
 * Reference counting: the router sets <refs> to the number of workers it
 * pushes the frame to, before publishing it (a plain store, ordered by the
 * ring's release). Each worker keeps its own non-atomic count per frame
 * (struct sp_wref in worker) and calls sp_frame_release once when its last
 * connection is done: one atomic per worker per event.
 */
#ifndef SPOUT_FRAME_H
#define SPOUT_FRAME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define SP_EVENT_TYPE_MAX 64

struct sp_frame {
	_Atomic uint32_t refs;
	uint32_t len;        /* bytes in buf, chunk framing included */
	uint16_t pre;        /* chunk-size line ("1a\r\n"); 0 if not chunked */
	uint16_t post;       /* trailing "\r\n" of a chunk; 0 if not chunked */
	uint16_t topic_len;
	uint16_t flags;
	uint64_t topic_hash;
	uint64_t id;         /* event id, 0 for non-event frames */
	uint64_t born_ns;    /* CLOCK_MONOTONIC when the router got the event */
	const char *topic;   /* points into this allocation, NUL-terminated */
	char buf[];
};

/* sp_frame.flags */
#define SP_FRAME_STATIC 0x1 /* never freed (heartbeat); refs ignored */
/* bits 4-5: the topic's overflow policy (enum sp_overflow), set by the
 * router so workers need no policy lookup per event */
#define SP_FRAME_POLICY_SHIFT 4
#define SP_FRAME_POLICY_MASK (0x3u << SP_FRAME_POLICY_SHIFT)

/* Describes one event before framing. data may contain \r, \n or \r\n line
 * breaks; each line becomes its own "data:" field. event may be NULL. */
struct sp_event {
	const char *topic;
	size_t topic_len;
	uint64_t topic_hash;
	const char *event;
	size_t event_len;
	const char *data;
	size_t data_len;
	uint64_t id;
};

/* Format <ev> as a chunk-framed SSE event into a new frame with refs = 1.
 * Returns NULL on allocation failure. Any thread; allocates. */
struct sp_frame *sp_frame_new_event(const struct sp_event *ev);

/* New frame holding <len> raw bytes (an HTTP response head or body), not
 * chunk-framed, refs = 1. Any thread; allocates. */
struct sp_frame *sp_frame_new_raw(const void *bytes, size_t len);

/* New frame holding <len> bytes as one HTTP chunk (pre/post set). */
struct sp_frame *sp_frame_new_chunk(const void *bytes, size_t len);

/* Size of the SSE text sp_frame_new_event would produce, without framing. */
size_t sp_frame_event_size(const struct sp_event *ev);

/* Free a frame whose last reference is gone; use sp_frame_release. */
void sp_frame_destroy(struct sp_frame *f);

/* Drop one reference; frees on the last. Any thread. */
static inline void sp_frame_release(struct sp_frame *f)
{
	if (f->flags & SP_FRAME_STATIC)
		return;
	/* acq_rel: our reads of the frame happen before the free by whichever
	 * thread drops the last reference. */
	if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
		sp_frame_destroy(f);
}

/* The bytes a connection writes: everything when <chunked>, else only the
 * payload between the chunk framing. */
static inline struct iovec sp_frame_view(const struct sp_frame *f, bool chunked)
{
	struct iovec v;

	if (chunked) {
		v.iov_base = (void *)f->buf;
		v.iov_len = f->len;
	} else {
		v.iov_base = (void *)(f->buf + f->pre);
		v.iov_len = f->len - f->pre - f->post;
	}
	return v;
}

static inline int sp_frame_policy(const struct sp_frame *f)
{
	return (f->flags & SP_FRAME_POLICY_MASK) >> SP_FRAME_POLICY_SHIFT;
}

static inline void sp_frame_set_policy(struct sp_frame *f, int policy)
{
	f->flags = (uint16_t)((f->flags & ~SP_FRAME_POLICY_MASK) |
			      ((unsigned)policy << SP_FRAME_POLICY_SHIFT));
}

/* Validate an SSE event type: 1..SP_EVENT_TYPE_MAX printable ASCII bytes
 * without spaces, CR or LF. Returns true if valid. */
bool sp_event_type_valid(const char *s, size_t len);

#endif
