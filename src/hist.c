/*
 * hist.c - Prometheus rendering of the power-of-two latency histograms.
 * Any thread (reads owners' counters relaxed).
 */
#include "spout/hist.h"

void sp_hist_render(FILE *f, const char *name, const char *help,
		    struct sp_hist *const *hists, unsigned n)
{
	sp_hist_render_scaled(f, name, help, hists, n, SP_HIST_MIN_SHIFT, 1e9);
}

void sp_hist_render_scaled(FILE *f, const char *name, const char *help,
			   struct sp_hist *const *hists, unsigned n, unsigned shift,
			   double scale)
{
	uint64_t cum = 0, count = 0, sum = 0;

	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (unsigned i = 0; i < SP_HIST_BUCKETS; i++) {
		for (unsigned k = 0; k < n; k++)
			cum += sp_stat_get(&hists[k]->bucket[i]);
		fprintf(f, "%s_bucket{le=\"%.12g\"} %llu\n", name,
			(double)(1ull << (shift + i)) / scale, (unsigned long long)cum);
	}
	for (unsigned k = 0; k < n; k++) {
		cum += sp_stat_get(&hists[k]->inf);
		count += sp_stat_get(&hists[k]->count);
		sum += sp_stat_get(&hists[k]->sum_ns);
	}
	/* Counters are read one by one while owners keep adding, so the +Inf
	 * bucket is the summed buckets, which Prometheus requires to be <= the
	 * count only if read atomically; report the larger so it stays valid. */
	if (count > cum)
		cum = count;
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n", name,
		(unsigned long long)cum, name, (double)sum / scale, name,
		(unsigned long long)cum);
}
