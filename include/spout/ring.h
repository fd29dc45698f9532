/*
 * ring.h - lock-free, wait-free single-producer/single-consumer ring of
 * pointer-sized values.
 *
 * Threading: exactly one thread may call the *_producer functions and exactly
 * one (other) thread may call the *_consumer functions, for the ring's whole
 * life. sp_ring_init/sp_ring_destroy run before/after both threads use it.
 *
 * Layout (size is a power of two; the indices run freely and wrap at 2^32;
 * they are only ever compared by subtraction, so wraparound is harmless):
 *
 *        cache line 0          cache line 1          cache line 2
 *   +--------------------+ +--------------------+ +-----------------+
 *   | head (producer)    | | tail (consumer)    | | mask, slots ... |
 *   | tail_cache         | | head_cache         | |                 |
 *   +--------------------+ +--------------------+ +-----------------+
 *
 *   slots[tail & mask] ... slots[(head - 1) & mask] hold queued values.
 *
 * Each side keeps a private copy of the other side's index (`*_cache`) and
 * only reloads the shared one when the copy says "full" (producer) or
 * "empty" (consumer). In steady state a push or pop touches one shared cache
 * line, not two.
 *
 * Why not Concurrency Kit's ck_ring_*_spsc: ck_pr implements its index
 * loads and stores with inline assembly, which ThreadSanitizer cannot see, so
 * a TSan run reports a race on every slot ck_ring copies (checked: see
 * docs/benchmarks.md). With C11 release/acquire TSan checks the slot
 * hand-off; TSan ignores fences, so the wake-up fences below are covered by
 * the litmus test in test/unit/test_ring.c instead. Speed is not the reason:
 * tools/ringbench measures the two within noise of each other here.
 *
 * Wake-ups: the ring itself never sleeps. sp_ring_sleep_consumer() and
 * sp_ring_push_done_producer() implement the "tell me when you publish" flag
 * that lets a consumer block in epoll on an eventfd without lost wake-ups
 * (see the comments on those functions).
 */
#ifndef SPOUT_RING_H
#define SPOUT_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SP_CACHELINE 64

struct sp_ring {
	/* producer side */
	_Alignas(SP_CACHELINE) _Atomic uint32_t head; /* next slot to write */
	uint32_t tail_cache;                          /* producer's view of tail */
	/* consumer side */
	_Alignas(SP_CACHELINE) _Atomic uint32_t tail; /* next slot to read */
	uint32_t head_cache;                          /* consumer's view of head */
	/* shared, read-only after init */
	_Alignas(SP_CACHELINE) uint32_t mask;
	/* 1 while the consumer is about to block; see sp_ring_sleep_consumer */
	_Atomic uint32_t sleeping;
	_Atomic uintptr_t *slots;
};

/* Allocate a ring for <size> values; <size> must be a power of two >= 2.
 * Returns 0 or -EINVAL / -ENOMEM. */
int sp_ring_init(struct sp_ring *r, uint32_t size);

/* Free the slots. Values still queued are not touched: the owner drains
 * them first. Safe on an all-zero ring. */
void sp_ring_destroy(struct sp_ring *r);

static inline uint32_t sp_ring_capacity(const struct sp_ring *r)
{
	return r->mask + 1;
}

/* Free slots as the producer sees them (may be stale-low, never high). */
static inline uint32_t sp_ring_free_producer(struct sp_ring *r)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t used = head - r->tail_cache;

	if (used > r->mask) {
		/* Acquire pairs with the consumer's release in pop: once we see
		 * the slot as free, the consumer has finished reading it. */
		r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
		used = head - r->tail_cache;
	}
	return r->mask + 1 - used;
}

/* Free slots, re-reading the consumer's index first. Use this where the
 * answer must track the consumer's progress (waiting for room to come
 * back): sp_ring_free_producer only re-reads when its copy says "full", so
 * once it has seen a few free slots it can keep reporting that many. */
static inline uint32_t sp_ring_free_fresh_producer(struct sp_ring *r)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);

	r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
	return r->mask + 1 - (head - r->tail_cache);
}

/* Queue <v>. Returns true, or false when the ring is full. Wait-free. */
static inline bool sp_ring_push_producer(struct sp_ring *r, uintptr_t v)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);

	if (head - r->tail_cache > r->mask) {
		r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
		if (head - r->tail_cache > r->mask)
			return false;
	}
	atomic_store_explicit(&r->slots[head & r->mask], v, memory_order_relaxed);
	/* Release: the slot write above becomes visible before the new head;
	 * the consumer's acquire load of head is its licence to read it. */
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
	return true;
}

/* Take the oldest value into <*v>. Returns true, or false when empty. */
static inline bool sp_ring_pop_consumer(struct sp_ring *r, uintptr_t *v)
{
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

	if (tail == r->head_cache) {
		r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
		if (tail == r->head_cache)
			return false;
	}
	*v = atomic_load_explicit(&r->slots[tail & r->mask], memory_order_relaxed);
	/* Release: our read of the slot is done before the producer may see the
	 * slot as free and overwrite it. */
	atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
	return true;
}

/* Look at the oldest value without taking it. Returns false when empty. */
static inline bool sp_ring_peek_consumer(struct sp_ring *r, uintptr_t *v)
{
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

	if (tail == r->head_cache) {
		r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
		if (tail == r->head_cache)
			return false;
	}
	*v = atomic_load_explicit(&r->slots[tail & r->mask], memory_order_relaxed);
	return true;
}

/* Number of queued values as the consumer sees them right now. */
static inline uint32_t sp_ring_count_consumer(struct sp_ring *r)
{
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

	r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
	return r->head_cache - tail;
}

/* Approximate occupancy for metrics, callable from any thread. */
static inline uint32_t sp_ring_count_any(struct sp_ring *r)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

	return head - tail;
}

/*
 * Lost-wake-up protocol (the store-buffer pattern, made safe by two seq_cst
 * fences):
 *
 *   consumer: sleeping = 1; fence; if ring non-empty -> don't block
 *   producer: push;         fence; if sleeping -> clear it and signal
 *
 * At least one side sees the other's store, so either the consumer notices
 * the new value or the producer signals. The producer signals at most once
 * per sleep, so an eventfd is written only when the consumer may be blocked.
 */

/* Consumer: call when the ring looked empty and you are about to block.
 * Returns true if it is safe to block (the producer will signal), false if
 * values arrived meanwhile (drain again instead). */
static inline bool sp_ring_sleep_consumer(struct sp_ring *r)
{
	atomic_store_explicit(&r->sleeping, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (sp_ring_count_consumer(r) != 0) {
		atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
		return false;
	}
	return true;
}

/* Consumer: call after waking, before draining. */
static inline void sp_ring_wake_consumer(struct sp_ring *r)
{
	atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
}

/* Producer: call after one or more pushes. Returns true if the consumer may
 * be blocked and must be signalled (the caller writes its eventfd). */
static inline bool sp_ring_push_done_producer(struct sp_ring *r)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->sleeping, memory_order_relaxed) == 0)
		return false;
	return atomic_exchange_explicit(&r->sleeping, 0, memory_order_relaxed) == 1;
}

#endif
