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

void sp_hist_snapshot(struct sp_hist_window *w, struct sp_hist *const *hists, unsigned n)
{
	for (unsigned i = 0; i <= SP_HIST_BUCKETS; i++)
		w->bucket[i] = 0;
	for (unsigned k = 0; k < n; k++) {
		for (unsigned i = 0; i < SP_HIST_BUCKETS; i++)
			w->bucket[i] += sp_stat_get(&hists[k]->bucket[i]);
		w->bucket[SP_HIST_BUCKETS] += sp_stat_get(&hists[k]->inf);
	}
}

double sp_hist_window_quantile(const struct sp_hist_window *old,
			       const struct sp_hist_window *now, double q)
{
	uint64_t d[SP_HIST_BUCKETS + 1], total = 0;

	for (unsigned i = 0; i <= SP_HIST_BUCKETS; i++) {
		/* counters only grow; a reader racing an owner may see an old
		 * bucket and a newer one, never a smaller total */
		d[i] = now->bucket[i] > old->bucket[i] ? now->bucket[i] - old->bucket[i] : 0;
		total += d[i];
	}
	if (total == 0)
		return 0;
	double rank = q * (double)total, seen = 0;
	for (unsigned i = 0; i < SP_HIST_BUCKETS; i++) {
		if (seen + (double)d[i] >= rank && d[i] > 0) {
			double lo = i == 0 ? 0 : (double)sp_hist_bound_ns(i - 1);
			double hi = (double)sp_hist_bound_ns(i);
			return lo + (hi - lo) * (rank - seen) / (double)d[i];
		}
		seen += (double)d[i];
	}
	return (double)sp_hist_bound_ns(SP_HIST_BUCKETS - 1);
}
