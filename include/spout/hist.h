/*
 * hist.h - latency histograms cheap enough for the delivery path.
 *
 * Buckets are powers of two of nanoseconds from 1.024 us (2^10 ns) to about
 * 68.7 s (2^36 ns), then +Inf: the bucket of a value is one
 * count-leading-zeros away, no search. Prometheus renders them as cumulative `le` buckets in seconds.
 *
 * Threading: one owner thread records (relaxed single-writer counters, see
 * stats.h); /metrics sums every owner's histogram on scrape.
 */
#ifndef SPOUT_HIST_H
#define SPOUT_HIST_H

#include <stdint.h>
#include <stdio.h>

#include "spout/stats.h"

#define SP_HIST_MIN_SHIFT 10          /* first bound: 2^10 ns */
#define SP_HIST_BUCKETS 27            /* bounds 2^10 .. 2^36 ns, then +Inf */

struct sp_hist {
	sp_counter bucket[SP_HIST_BUCKETS]; /* bucket[i]: value < 2^(10+i) ns */
	sp_counter inf;                     /* larger than the last bound */
	sp_counter count;
	sp_counter sum_ns;
};

/* Record one value whose first bucket bound is 2^<shift> (owner thread):
 * bucket i holds values below 2^(shift+i). */
static inline void sp_hist_add_shift(struct sp_hist *h, uint64_t value, unsigned shift)
{
	uint64_t v = value >> shift;
	/* value < 2^(shift+i)  <=>  v < 2^i  <=>  i = bit length of v */
	unsigned i = v == 0 ? 0 : 64u - (unsigned)__builtin_clzll(v);

	if (i < SP_HIST_BUCKETS)
		sp_stat_add(&h->bucket[i], 1);
	else
		sp_stat_add(&h->inf, 1);
	sp_stat_add(&h->count, 1);
	sp_stat_add(&h->sum_ns, value);
}

/* Record a duration in nanoseconds (first bound 1.024 us). */
static inline void sp_hist_add(struct sp_hist *h, uint64_t ns)
{
	sp_hist_add_shift(h, ns, SP_HIST_MIN_SHIFT);
}

/* Upper bound of bucket <i> for histograms fed by sp_hist_add, in ns. */
static inline uint64_t sp_hist_bound_ns(unsigned i)
{
	return 1ull << (SP_HIST_MIN_SHIFT + i);
}

/* Bucket counts of a sp_hist_add histogram over an interval: the live
 * dashboard's window (buckets then inf). */
struct sp_hist_window {
	uint64_t bucket[SP_HIST_BUCKETS + 1];
};

/* Add <n> histograms' current counts into <w> (zeroed first). Any thread. */
void sp_hist_snapshot(struct sp_hist_window *w, struct sp_hist *const *hists, unsigned n);

/* The <q> quantile (0..1) of what was recorded between snapshots <old> and
 * <now>, in ns: linear within the bucket it falls in, as Prometheus'
 * histogram_quantile does; the last bound for the +Inf bucket; 0 when
 * nothing was recorded. */
double sp_hist_window_quantile(const struct sp_hist_window *old,
			       const struct sp_hist_window *now, double q);

/* Write <n> duration histograms (sp_hist_add) summed as one Prometheus
 * histogram family <name> in seconds (with HELP and TYPE). Any thread. */
void sp_hist_render(FILE *f, const char *name, const char *help,
		    struct sp_hist *const *hists, unsigned n);

/* The same for histograms fed by sp_hist_add_shift(.., <shift>), with
 * bounds and sum divided by <scale> (1 for plain counts). */
void sp_hist_render_scaled(FILE *f, const char *name, const char *help,
			   struct sp_hist *const *hists, unsigned n, unsigned shift,
			   double scale);

#endif
