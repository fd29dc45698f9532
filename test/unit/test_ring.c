/*
 * test_ring.c - unit and two-thread tests for the SPSC ring (src/ring.c,
 * include/spout/ring.h).
 *
 * Threading: the single-threaded tests use the ring from the test thread
 * only. The two-thread tests (stress, wake_protocol_eventfd,
 * wake_protocol_litmus) start one producer thread and use the test thread
 * as the consumer, exactly the SPSC contract; setup happens before
 * pthread_create and the final checks after pthread_join, which order them.
 *
 *   stress                strict 1..N sequence through a 1024-slot ring,
 *                         plus a plain-memory payload so TSan checks the
 *                         release/acquire pairs (it catches either one
 *                         weakened to relaxed)
 *   wake_protocol_eventfd the sleep/wake flag with a real eventfd and poll();
 *                         a 2 s wait counts as a lost wake-up
 *   wake_protocol_litmus  the same flag as a store-buffering litmus test;
 *                         fails within one run if either seq_cst fence in
 *                         ring.h is removed (the eventfd test does not)
 *
 * Apart from the from-zero cases, rings start with their indices near
 * UINT32_MAX (style.md §12), so the multi-item tests cross the 2^32 wrap.
 *
 * SP_RING_STRESS_N (default 10,000,000) sets the stress test's item count.
 * On 2 cores the default takes ~0.2-1 s plain or ASan and ~2-5 s under TSan
 * (gcc 12 and clang 14), so the TSan run can keep it too.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "spout/ring.h"
#include "sanitizers.h"

#define WRAP_START (UINT32_MAX - 10)

/* Put every index of a fresh, empty ring at <start>; test thread only. */
static void ring_set_indices(struct sp_ring *r, uint32_t start)
{
	atomic_store(&r->head, start);
	atomic_store(&r->tail, start);
	r->tail_cache = start;
	r->head_cache = start;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* ------------------------------------------------------------------ */
/* single-threaded behaviour                                          */

Test(ring, init_rejects_bad_sizes)
{
	struct sp_ring r;
	const uint32_t bad[] = { 0, 1, 3, 6, 1000, UINT32_MAX };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(sp_ring_init(&r, bad[i]), -EINVAL, "size %" PRIu32,
			     bad[i]);
}

Test(ring, init_capacity)
{
	const uint32_t good[] = { 2, 4, 8, 1024, 65536 };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct sp_ring r;

		cr_assert_eq(sp_ring_init(&r, good[i]), 0);
		cr_expect_eq(sp_ring_capacity(&r), good[i]);
		cr_expect_eq(sp_ring_count_any(&r), 0);
		cr_expect_eq(sp_ring_count_consumer(&r), 0);
		cr_expect_eq(sp_ring_free_producer(&r), good[i]);
		sp_ring_destroy(&r);
		cr_expect_null(r.slots);
	}
}

Test(ring, destroy_zeroed_and_twice)
{
	struct sp_ring r = { 0 };

	sp_ring_destroy(&r);
	cr_assert_eq(sp_ring_init(&r, 4), 0);
	sp_ring_destroy(&r);
	sp_ring_destroy(&r); /* slots is NULL now: must be harmless */
}

Test(ring, empty_pop_and_peek_fail)
{
	struct sp_ring r;
	uintptr_t v = 12345;

	cr_assert_eq(sp_ring_init(&r, 8), 0);
	cr_expect_not(sp_ring_pop_consumer(&r, &v));
	cr_expect_not(sp_ring_peek_consumer(&r, &v));
	cr_expect_eq(v, 12345, "a failed pop/peek must not write *v");
	sp_ring_destroy(&r);
}

/* Fill to exactly capacity, check full, drain in FIFO order, check empty;
 * several rounds so the indices move around the slots. */
static void fill_drain_rounds(uint32_t size, uint32_t start, int rounds)
{
	struct sp_ring r;
	uintptr_t next_in = 1, next_out = 1, v;

	cr_assert_eq(sp_ring_init(&r, size), 0);
	ring_set_indices(&r, start);
	for (int round = 0; round < rounds; round++) {
		for (uint32_t i = 0; i < size; i++) {
			cr_assert_eq(sp_ring_free_producer(&r), size - i);
			cr_assert(sp_ring_push_producer(&r, next_in++),
				  "push %" PRIu32 " of %" PRIu32, i, size);
			cr_assert_eq(sp_ring_count_any(&r), i + 1);
		}
		cr_assert_not(sp_ring_push_producer(&r, 0xdead), "push when full");
		cr_assert_eq(sp_ring_free_producer(&r), 0);
		cr_assert_eq(sp_ring_count_consumer(&r), size);

		for (uint32_t i = 0; i < size; i++) {
			cr_assert(sp_ring_peek_consumer(&r, &v));
			cr_assert_eq(v, next_out);
			cr_assert(sp_ring_peek_consumer(&r, &v), "peek twice");
			cr_assert_eq(v, next_out, "peek does not consume");
			cr_assert(sp_ring_pop_consumer(&r, &v));
			cr_assert_eq(v, next_out, "FIFO");
			next_out++;
			cr_assert_eq(sp_ring_count_consumer(&r), size - i - 1);
		}
		cr_assert_not(sp_ring_pop_consumer(&r, &v), "pop when empty");
		cr_assert_not(sp_ring_peek_consumer(&r, &v));
		cr_assert_eq(sp_ring_count_any(&r), 0);
	}
	sp_ring_destroy(&r);
}

Test(ring, fill_drain_from_zero)
{
	fill_drain_rounds(8, 0, 5);
	fill_drain_rounds(2, 0, 5);
}

Test(ring, fill_drain_across_wrap)
{
	/* WRAP_START is 11 below 2^32, so for each size the wrap falls at a
	 * different point of a fill/drain round. */
	fill_drain_rounds(2, WRAP_START, 12);
	fill_drain_rounds(8, WRAP_START, 4);
	fill_drain_rounds(16, WRAP_START, 3);
	fill_drain_rounds(1024, WRAP_START, 2);
}

/* Interleave pushes and pops in uneven steps across the wrap, tracking
 * the expected occupancy; catches an off-by-one in full/empty tests that
 * only shows when head and tail sit on opposite sides of 2^32. */
Test(ring, interleaved_across_wrap)
{
	struct sp_ring r;
	uintptr_t next_in = 1, next_out = 1, v;
	uint32_t queued = 0;

	cr_assert_eq(sp_ring_init(&r, 8), 0);
	ring_set_indices(&r, WRAP_START);
	for (int step = 0; step < 200; step++) {
		uint32_t pushes = (uint32_t)(step * 7 % 11);
		uint32_t pops = (uint32_t)(step * 5 % 9);

		for (uint32_t i = 0; i < pushes; i++) {
			bool ok = sp_ring_push_producer(&r, next_in);

			cr_assert_eq(ok, queued < 8, "step %d queued %" PRIu32,
				     step, queued);
			if (ok) {
				next_in++;
				queued++;
			}
		}
		cr_assert_eq(sp_ring_count_consumer(&r), queued);
		/* free_producer may be stale-low (it only reloads tail when
		 * its cached view says full), but never high, and 0 only when
		 * the ring really is full. */
		uint32_t fr = sp_ring_free_producer(&r);
		cr_assert_leq(fr, 8 - queued);
		cr_assert_eq(fr == 0, queued == 8);
		for (uint32_t i = 0; i < pops; i++) {
			bool ok = sp_ring_pop_consumer(&r, &v);

			cr_assert_eq(ok, queued > 0);
			if (ok) {
				cr_assert_eq(v, next_out);
				next_out++;
				queued--;
			}
		}
	}
	/* The indices did cross: 200 steps moved far more than 11 slots. */
	cr_assert_lt(atomic_load(&r.tail), WRAP_START);
	sp_ring_destroy(&r);
}

/* The router waits for a quarter of a full ring to drain before it reads
 * publishers again. With only the cached count it would wait forever once
 * it had seen a few slots free: the regression behind this test. */
Test(ring, fresh_free_count_tracks_consumer_progress)
{
	struct sp_ring r;
	uintptr_t v;

	cr_assert_eq(sp_ring_init(&r, 16), 0);
	ring_set_indices(&r, WRAP_START);
	for (uintptr_t i = 0; i < 16; i++)
		cr_assert(sp_ring_push_producer(&r, i));
	cr_assert_eq(sp_ring_free_producer(&r), 0);
	for (int i = 0; i < 3; i++)
		cr_assert(sp_ring_pop_consumer(&r, &v));
	cr_assert_eq(sp_ring_free_producer(&r), 3, "a full copy is refreshed");
	for (int i = 0; i < 9; i++)
		cr_assert(sp_ring_pop_consumer(&r, &v));
	cr_assert_leq(sp_ring_free_producer(&r), 12, "may lag, never over-report");
	cr_assert_eq(sp_ring_free_fresh_producer(&r), 12, "the fresh count sees all progress");
	cr_assert_eq(sp_ring_free_producer(&r), 12, "and refreshes the cached copy");
	sp_ring_destroy(&r);
}

Test(ring, values_are_full_width)
{
	struct sp_ring r;
	const uintptr_t vals[] = { 0, UINTPTR_MAX, (uintptr_t)&r, 1 };
	uintptr_t v;

	cr_assert_eq(sp_ring_init(&r, 4), 0);
	ring_set_indices(&r, WRAP_START);
	for (int i = 0; i < 4; i++)
		cr_assert(sp_ring_push_producer(&r, vals[i]));
	for (int i = 0; i < 4; i++) {
		cr_assert(sp_ring_pop_consumer(&r, &v));
		cr_assert_eq(v, vals[i]);
	}
	sp_ring_destroy(&r);
}

/* The flag protocol, single-threaded: each sleep earns at most one signal. */
Test(ring, wake_protocol_sequential)
{
	struct sp_ring r;
	uintptr_t v;

	cr_assert_eq(sp_ring_init(&r, 4), 0);
	ring_set_indices(&r, WRAP_START);

	cr_expect_not(sp_ring_push_done_producer(&r), "nobody asleep yet");

	cr_assert(sp_ring_sleep_consumer(&r), "empty ring: may block");
	cr_assert(sp_ring_push_producer(&r, 1));
	cr_expect(sp_ring_push_done_producer(&r), "consumer asleep: signal");
	cr_expect_not(sp_ring_push_done_producer(&r), "signal only once");
	sp_ring_wake_consumer(&r);
	cr_assert(sp_ring_pop_consumer(&r, &v));

	/* Values arrived before the consumer committed to sleep. */
	cr_assert(sp_ring_push_producer(&r, 2));
	cr_expect_not(sp_ring_sleep_consumer(&r), "non-empty: drain instead");
	cr_expect_not(sp_ring_push_done_producer(&r), "flag was withdrawn");
	cr_assert(sp_ring_pop_consumer(&r, &v));

	/* Woken for another reason (no push): wake clears the flag. */
	cr_assert(sp_ring_sleep_consumer(&r));
	sp_ring_wake_consumer(&r);
	cr_assert(sp_ring_push_producer(&r, 3));
	cr_expect_not(sp_ring_push_done_producer(&r));
	sp_ring_destroy(&r);
}

/* ------------------------------------------------------------------ */
/* two-thread stress: strict sequence, no loss, no duplicate          */

#define STRESS_RING 1024
/*
 * Side payload written with plain stores, so that ThreadSanitizer checks the
 * ring's orderings and not just its atomics (the slots themselves are
 * _Atomic and can never show up as a race). The producer writes
 * payload[i % STRESS_PAYLOAD] before pushing i, the consumer reads it after
 * popping i. With STRESS_PAYLOAD >= ring size + 2 the producer can only
 * reuse an entry after pushing an item that needed the consumer to pop a
 * later item first, so a correct ring makes this race-free, while a
 * missing release/acquire on head (slot -> payload) or on tail (consumer
 * done -> producer overwrites) is a race TSan reports.
 */
#define STRESS_PAYLOAD (2 * STRESS_RING)

struct stress {
	struct sp_ring ring;
	uint64_t n;
	uint64_t full_spins; /* producer-private until join */
	uint64_t payload[STRESS_PAYLOAD];
};

static void *stress_producer(void *arg)
{
	struct stress *s = arg;

	for (uint64_t i = 1; i <= s->n; i++) {
		unsigned spins = 0;

		s->payload[i % STRESS_PAYLOAD] = i;
		while (!sp_ring_push_producer(&s->ring, (uintptr_t)i)) {
			s->full_spins++;
			/* With more threads than cores (sanitizer runs, CI)
			 * spinning forever would starve the consumer. */
			if (++spins % 256 == 0)
				sched_yield();
			else
				cpu_relax();
		}
	}
	return NULL;
}

static uint64_t stress_n(void)
{
	const char *e = getenv("SP_RING_STRESS_N");

	if (e != NULL && *e != '\0') {
		char *end;
		unsigned long long n = strtoull(e, &end, 10);

		if (*end == '\0' && n > 0)
			return n;
	}
	return 10000000;
}

Test(ring, stress_two_threads, .timeout = 120)
{
	static struct stress s; /* 16 KiB of payload: keep it off the stack */
	pthread_t tid;
	uint64_t expect = 1, empty_spins = 0, peeks = 0;
	uint64_t t0 = now_ns();

	s.n = stress_n();
	cr_assert_eq(sp_ring_init(&s.ring, STRESS_RING), 0);
	/* Start near the wrap so the run crosses 2^32 while both threads race. */
	ring_set_indices(&s.ring, UINT32_MAX - 5000);
	cr_assert_eq(pthread_create(&tid, NULL, stress_producer, &s), 0);

	while (expect <= s.n) {
		uintptr_t v, pv;
		unsigned spins = 0;

		/* Peek now and then: it must show what pop returns next. */
		bool peeked = (expect & 63) == 0 &&
			      sp_ring_peek_consumer(&s.ring, &pv);

		while (!sp_ring_pop_consumer(&s.ring, &v)) {
			empty_spins++;
			if (++spins % 256 == 0)
				sched_yield();
			else
				cpu_relax();
		}
		/* Not cr_assert_eq: its formatting would dominate the loop.
		 * A failure ends the test process, producer included. */
		if (v != expect)
			cr_assert_fail("got %" PRIuPTR ", expected %" PRIu64, v,
				       expect);
		if (s.payload[v % STRESS_PAYLOAD] != v)
			cr_assert_fail("payload of %" PRIuPTR " is %" PRIu64, v,
				       s.payload[v % STRESS_PAYLOAD]);
		if (peeked) {
			peeks++;
			cr_assert_eq(pv, v, "peek %" PRIuPTR " then pop %" PRIuPTR,
				     pv, v);
		}
		expect++;
	}
	cr_assert_eq(pthread_join(tid, NULL), 0);

	uintptr_t v;
	cr_assert_not(sp_ring_pop_consumer(&s.ring, &v), "extra item %" PRIuPTR,
		      v);
	cr_assert_eq(sp_ring_count_any(&s.ring), 0);
	cr_assert_eq(atomic_load(&s.ring.head),
		     (uint32_t)(UINT32_MAX - 5000 + s.n));
	cr_log_info("ring stress: %" PRIu64 " items in %.3f s, "
		    "producer full spins %" PRIu64 ", consumer empty spins %" PRIu64
		    ", peeks %" PRIu64 "\n",
		    s.n, (double)(now_ns() - t0) / 1e9, s.full_spins, empty_spins,
		    peeks);
	sp_ring_destroy(&s.ring);
}

/* ------------------------------------------------------------------ */
/* two-thread sleep/wake protocol with a real eventfd                 */

#define WAKE_N 200000
#define WAKE_TIMEOUT_MS 2000 /* a wait this long means a lost wake-up */

struct wake {
	struct sp_ring ring;
	int efd;
	uint64_t n;
	/* producer-private until join */
	uint64_t signals;
	int write_errno;
};

static void wake_signal(struct wake *w)
{
	uint64_t one = 1;

	w->signals++;
	if (write(w->efd, &one, sizeof(one)) == -1)
		w->write_errno = errno;
}

static void *wake_producer(void *arg)
{
	struct wake *w = arg;
	uint64_t i = 1, rnd = 0x9e3779b97f4a7c15u;

	while (i <= w->n) {
		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		/* Mostly single pushes a short, random spin apart: then the
		 * consumer empties the ring and calls sp_ring_sleep_consumer
		 * right as the next push lands, which is the race the fences
		 * exist for. Some bursts fill the ring; some pauses are long
		 * enough for the consumer to block in poll(). */
		bool bursty = rnd % 4 == 0;
		uint64_t burst = bursty ? 1 + (rnd >> 8) % 300 : 1;

		for (uint64_t b = 0; b < burst && i <= w->n; b++) {
			while (!sp_ring_push_producer(&w->ring, (uintptr_t)i)) {
				/* Full: publish what we have before waiting,
				 * or a sleeping consumer never drains it. */
				if (sp_ring_push_done_producer(&w->ring))
					wake_signal(w);
				sched_yield();
			}
			i++;
		}
		if (sp_ring_push_done_producer(&w->ring))
			wake_signal(w);
		if (bursty && (rnd >> 20) % 8 == 0) {
			usleep((useconds_t)((rnd >> 24) % 50));
		} else {
			for (uint64_t d = (rnd >> 32) % 1024; d > 0; d--)
				cpu_relax();
		}
	}
	return NULL;
}

Test(ring, wake_protocol_eventfd, .timeout = 30)
{
	struct wake w = { .n = WAKE_N };
	pthread_t tid;
	uint64_t expect = 1, sleeps = 0, no_sleeps = 0, wakes = 0;
	uint64_t t0 = now_ns();

	w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_neq(w.efd, -1, "eventfd: %s", strerror(errno));
	cr_assert_eq(sp_ring_init(&w.ring, 256), 0);
	ring_set_indices(&w.ring, UINT32_MAX - 3000);
	cr_assert_eq(pthread_create(&tid, NULL, wake_producer, &w), 0);

	while (expect <= w.n) {
		uintptr_t v;

		while (sp_ring_pop_consumer(&w.ring, &v)) {
			if (v != expect)
				cr_assert_fail("got %" PRIuPTR ", expected %" PRIu64,
					       v, expect);
			expect++;
		}
		if (expect > w.n)
			break;
		if (!sp_ring_sleep_consumer(&w.ring)) {
			no_sleeps++;
			continue;
		}
		sleeps++;

		struct pollfd pfd = { .fd = w.efd, .events = POLLIN };
		int rc = poll(&pfd, 1, WAKE_TIMEOUT_MS);

		if (rc == 0)
			cr_assert_fail("lost wake-up: blocked %d ms with item %" PRIu64
				       " of %" PRIu64 " outstanding, ring count %" PRIu32,
				       WAKE_TIMEOUT_MS, expect, w.n,
				       sp_ring_count_any(&w.ring));
		cr_assert_eq(rc, 1, "poll: %s", strerror(errno));

		uint64_t cnt;
		/* A signal may also be stale (the producer saw the flag just
		 * before we withdrew it); that only costs a spurious wake. */
		if (read(w.efd, &cnt, sizeof(cnt)) == -1)
			cr_assert_eq(errno, EAGAIN, "read: %s", strerror(errno));
		wakes++;
		sp_ring_wake_consumer(&w.ring);
	}
	cr_assert_eq(pthread_join(tid, NULL), 0);
	cr_assert_eq(w.write_errno, 0, "eventfd write: %s",
		     strerror(w.write_errno));

	uintptr_t v;
	cr_assert_not(sp_ring_pop_consumer(&w.ring, &v), "extra item");
	/* A wake-up is never needed without a sleep, so the producer's
	 * signals are bounded by the consumer's sleeps: no eventfd write per
	 * item. */
	cr_assert_leq(w.signals, sleeps + no_sleeps);
	cr_assert_gt(sleeps, 0, "the consumer never slept: test too weak");
	cr_log_info("ring wake: %" PRIu64 " items in %.3f s, sleeps %" PRIu64
		    ", aborted sleeps %" PRIu64 ", wakes %" PRIu64
		    ", signals %" PRIu64 "\n",
		    w.n, (double)(now_ns() - t0) / 1e9, sleeps, no_sleeps, wakes,
		    w.signals);
	close(w.efd);
	sp_ring_destroy(&w.ring);
}

/* ------------------------------------------------------------------ */
/* the wake protocol as a store-buffering litmus test                 */

/*
 * The eventfd test above shows the protocol works in practice, but the
 * exact interleaving the two seq_cst fences guard against (each side's
 * store still in its store buffer while it loads the other side's flag)
 * is rare there. Here both threads start each round together:
 *
 *   consumer: r1 = sp_ring_sleep_consumer()     (true: "I will block")
 *   producer: push; r2 = sp_ring_push_done_producer()  (true: "I signal")
 *
 * r1 && !r2 is a lost wake-up: the consumer would block with an item
 * queued and nobody to wake it. Without the fences x86 shows it within a
 * few thousand rounds.
 */
#define LITMUS_ROUNDS 200000

struct litmus {
	struct sp_ring ring;
	_Alignas(SP_CACHELINE) _Atomic uint32_t go;   /* round to start */
	_Alignas(SP_CACHELINE) _Atomic uint32_t done; /* round finished */
	_Atomic uint32_t signalled;                   /* r2 of that round */
};

static void *litmus_producer(void *arg)
{
	struct litmus *l = arg;
	uint64_t rnd = 0x2545f4914f6cdd1du;

	for (uint32_t k = 1; k <= LITMUS_ROUNDS; k++) {
		while (atomic_load_explicit(&l->go, memory_order_acquire) != k)
			cpu_relax();
		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		for (uint64_t d = rnd % 8; d > 0; d--)
			cpu_relax();
		while (!sp_ring_push_producer(&l->ring, k))
			cpu_relax();
		bool r2 = sp_ring_push_done_producer(&l->ring);
		atomic_store_explicit(&l->signalled, r2, memory_order_relaxed);
		atomic_store_explicit(&l->done, k, memory_order_release);
	}
	return NULL;
}

Test(ring, wake_protocol_litmus, .timeout = 60)
{
	static struct litmus l;
	pthread_t tid;
	uint64_t rnd = 0x9e3779b97f4a7c15u;
	uint64_t sleep_signal = 0, nosleep_nosignal = 0, nosleep_signal = 0;
	uint64_t lost = 0;

	cr_assert_eq(sp_ring_init(&l.ring, 4), 0);
	ring_set_indices(&l.ring, UINT32_MAX - 100);
	cr_assert_eq(pthread_create(&tid, NULL, litmus_producer, &l), 0);

	for (uint32_t k = 1; k <= LITMUS_ROUNDS; k++) {
		/* Round k-1 is over on both sides: drain and clear the flag. */
		uintptr_t v;

		while (sp_ring_pop_consumer(&l.ring, &v))
			;
		sp_ring_wake_consumer(&l.ring);

		atomic_store_explicit(&l.go, k, memory_order_release);
		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		/* The producer needs a moment to see go; start about then. */
		for (uint64_t d = 4 + rnd % 24; d > 0; d--)
			cpu_relax();
		bool r1 = sp_ring_sleep_consumer(&l.ring);

		while (atomic_load_explicit(&l.done, memory_order_acquire) != k)
			cpu_relax();
		bool r2 = atomic_load_explicit(&l.signalled,
					       memory_order_relaxed);
		if (r1 && !r2)
			lost++;
		else if (r1)
			sleep_signal++;
		else if (r2)
			nosleep_signal++; /* both saw each other: stale signal */
		else
			nosleep_nosignal++;
	}
	cr_assert_eq(pthread_join(tid, NULL), 0);
	cr_log_info("ring litmus: %d rounds: slept+signalled %" PRIu64
		    ", no sleep+no signal %" PRIu64
		    ", no sleep+signal (overlap) %" PRIu64 ", LOST %" PRIu64 "\n",
		    LITMUS_ROUNDS, sleep_signal, nosleep_nosignal,
		    nosleep_signal, lost);
	cr_assert_eq(lost, 0, "%" PRIu64 " lost wake-ups in %d rounds", lost,
		     LITMUS_ROUNDS);
	sp_ring_destroy(&l.ring);
}
