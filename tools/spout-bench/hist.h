/*
 * hist.h - latency histogram: log-linear buckets over nanoseconds, the
 * HdrHistogram layout with 128 sub-buckets per power of two:
 *
 *   value v < 256             bucket v                (exact, 1 ns wide)
 *   2^m <= v < 2^(m+1), m>=8  bucket 128*(m-7) + (v >> (m-7))
 *                             (128 buckets, each 2^(m-7) ns wide)
 *
 * A bucket is at most 1/128 of its lowest value wide, so reporting its
 * midpoint is within 0.4% of the true value. The table covers all of
 * uint64_t (7424 counters, 58 KiB), so nothing is ever clamped. An all-zero
 * struct is an empty histogram, and two histograms merge exactly by adding
 * their counters: merged percentiles are true percentiles.
 */
#ifndef SPOUT_BENCH_HIST_H
#define SPOUT_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_LEN (HIST_SUB * (64 - HIST_SUB_BITS + 1))

struct hist {
	uint64_t count[HIST_LEN];
	uint64_t n, max;
};

void hist_record(struct hist *h, uint64_t v);
/* Adds every sample of <from> to <into>. */
void hist_merge(struct hist *into, const struct hist *from);
/* Value at quantile <q> in (0, 1]; 0 when empty; never above the maximum. */
uint64_t hist_quantile(const struct hist *h, double q);

#endif
