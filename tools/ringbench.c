/*
 * ringbench.c - spout's SPSC ring (sp_ring) against Concurrency Kit's
 * ck_ring_enqueue_spsc/ck_ring_dequeue_spsc, in the same process and run.
 *
 * One producer thread pushes 1..N, one consumer thread pops and checks the
 * sequence (so neither loop can be optimised away), both spinning with
 * `pause` on full/empty. The threads are pinned to CPUs 0 and 1 when the
 * machine has two. The two rings take turns, so drift in machine load hits
 * both alike; each prints its runs, then the medians and the ratio.
 *
 *   build: gcc -O2 -std=gnu11 -D_GNU_SOURCE -Iinclude tools/ringbench.c \
 *              src/ring.c -pthread -o /tmp/ringbench
 *          (ck_ring is header-only; Debian package libck-dev)
 *   run:   /tmp/ringbench [items=50000000] [reps=5] [ring=4096]
 *
 * "items/s" counts values moved from producer to consumer (one push plus
 * one pop each). Note ck_ring holds size-1 values, sp_ring holds size.
 */
#include <ck_ring.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spout/ring.h"

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

enum kind { K_SP, K_CK };

static const char *const kind_name[] = { "sp_ring", "ck_ring" };

struct bench {
	enum kind kind;
	uint64_t n;
	struct sp_ring sp;
	struct ck_ring ck;
	ck_ring_buffer_t *ck_buf;
	_Alignas(SP_CACHELINE) _Atomic int ready; /* threads at the start line */
	_Atomic int go;
	uint64_t bad; /* consumer-private until join */
};

static void pin(int cpu)
{
	cpu_set_t set;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	/* Best effort: a restricted cpuset just means unpinned numbers. */
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void start_line(struct bench *b)
{
	atomic_fetch_add(&b->ready, 1);
	while (!atomic_load_explicit(&b->go, memory_order_acquire))
		cpu_relax();
}

static void *producer(void *arg)
{
	struct bench *b = arg;
	const uint64_t n = b->n;

	pin(0);
	start_line(b);
	if (b->kind == K_SP) {
		for (uint64_t i = 1; i <= n; i++)
			while (!sp_ring_push_producer(&b->sp, (uintptr_t)i))
				cpu_relax();
	} else {
		for (uint64_t i = 1; i <= n; i++)
			while (!ck_ring_enqueue_spsc(&b->ck, b->ck_buf,
						     (void *)(uintptr_t)i))
				cpu_relax();
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct bench *b = arg;
	const uint64_t n = b->n;
	uint64_t bad = 0;

	pin(1);
	start_line(b);
	if (b->kind == K_SP) {
		for (uint64_t i = 1; i <= n; i++) {
			uintptr_t v;

			while (!sp_ring_pop_consumer(&b->sp, &v))
				cpu_relax();
			bad += v != i;
		}
	} else {
		for (uint64_t i = 1; i <= n; i++) {
			void *v;

			while (!ck_ring_dequeue_spsc(&b->ck, b->ck_buf, &v))
				cpu_relax();
			bad += (uintptr_t)v != i;
		}
	}
	b->bad = bad;
	return NULL;
}

/* One timed transfer of <n> values; returns items per second. */
static double run_once(enum kind kind, uint64_t n, uint32_t size)
{
	static struct bench b; /* 64-byte aligned members: keep off the stack */
	pthread_t p, c;
	int rc;

	memset(&b, 0, sizeof(b));
	b.kind = kind;
	b.n = n;
	if (kind == K_SP) {
		rc = sp_ring_init(&b.sp, size);
		if (rc != 0) {
			fprintf(stderr, "sp_ring_init: %s\n", strerror(-rc));
			exit(1);
		}
	} else {
		b.ck_buf = aligned_alloc(SP_CACHELINE,
					 size * sizeof(ck_ring_buffer_t));
		if (b.ck_buf == NULL) {
			perror("aligned_alloc");
			exit(1);
		}
		ck_ring_init(&b.ck, size);
	}

	if ((rc = pthread_create(&c, NULL, consumer, &b)) != 0 ||
	    (rc = pthread_create(&p, NULL, producer, &b)) != 0) {
		fprintf(stderr, "pthread_create: %s\n", strerror(rc));
		exit(1);
	}
	while (atomic_load(&b.ready) != 2)
		cpu_relax();
	uint64_t t0 = now_ns();
	atomic_store_explicit(&b.go, 1, memory_order_release);
	pthread_join(p, NULL);
	pthread_join(c, NULL);
	uint64_t dt = now_ns() - t0;

	if (b.bad != 0) {
		fprintf(stderr, "%s: %llu values out of sequence\n",
			kind_name[kind], (unsigned long long)b.bad);
		exit(1);
	}
	if (kind == K_SP)
		sp_ring_destroy(&b.sp);
	else
		free(b.ck_buf);
	return (double)n * 1e9 / (double)dt;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static unsigned long long arg_num(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0' || v == 0) {
		fprintf(stderr, "ringbench: bad %s '%s'\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? arg_num(argv[1], "item count") : 50000000;
	int reps = argc > 2 ? (int)arg_num(argv[2], "repetitions") : 5;
	uint32_t size = argc > 3 ? (uint32_t)arg_num(argv[3], "ring size") : 4096;
	double r[2][64];

	if (reps > 64 || (size & (size - 1)) != 0 || size < 2) {
		fprintf(stderr, "usage: ringbench [items] [reps<=64] "
				"[ring=power of two]\n");
		return 2;
	}
	printf("ringbench: %llu items, ring %u, %d reps, %ld CPUs online\n",
	       (unsigned long long)n, size, reps,
	       sysconf(_SC_NPROCESSORS_ONLN));

	/* One untimed warm-up of each, then alternate which goes first. */
	run_once(K_SP, n / 10 + 1, size);
	run_once(K_CK, n / 10 + 1, size);
	for (int i = 0; i < reps; i++) {
		enum kind first = i % 2 ? K_CK : K_SP;

		for (int j = 0; j < 2; j++) {
			enum kind k = j == 0 ? first : (enum kind)(1 - first);

			r[k][i] = run_once(k, n, size);
			printf("  rep %d  %-7s %8.2f M items/s\n", i + 1,
			       kind_name[k], r[k][i] / 1e6);
			fflush(stdout);
		}
	}
	/* Ratio within each rep (both ran back to back, so slow drift in
	 * machine load mostly cancels), before median() sorts the arrays. */
	double pair[64];
	for (int i = 0; i < reps; i++)
		pair[i] = r[K_SP][i] / r[K_CK][i];

	double m_sp = median(r[K_SP], reps), m_ck = median(r[K_CK], reps);

	printf("median  sp_ring %8.2f M items/s   (best %8.2f, worst %8.2f)\n",
	       m_sp / 1e6, r[K_SP][reps - 1] / 1e6, r[K_SP][0] / 1e6);
	printf("median  ck_ring %8.2f M items/s   (best %8.2f, worst %8.2f)\n",
	       m_ck / 1e6, r[K_CK][reps - 1] / 1e6, r[K_CK][0] / 1e6);
	printf("ratio   sp_ring / ck_ring: of medians %.3f, of bests %.3f, "
	       "median per-rep %.3f\n",
	       m_sp / m_ck, r[K_SP][reps - 1] / r[K_CK][reps - 1],
	       median(pair, reps));
	return 0;
}
