/*
 * test_hist.c - power-of-two latency histogram: bucket choice and the
 * Prometheus rendering (cumulative, +Inf == count, sum in seconds).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "spout/hist.h"
#include "sanitizers.h"

Test(hist, bucket_edges)
{
	static struct sp_hist h;
	sp_hist_add(&h, 0);            /* < 1.024 us: bucket 0 */
	sp_hist_add(&h, 1023);
	sp_hist_add(&h, 1024);         /* == 2^10: bucket 1 (< 2^11) */
	sp_hist_add(&h, 2047);
	sp_hist_add(&h, 2048);         /* bucket 2 */
	sp_hist_add(&h, 1ull << 40);   /* past 2^36: +Inf */
	cr_assert_eq(sp_stat_get(&h.bucket[0]), 2);
	cr_assert_eq(sp_stat_get(&h.bucket[1]), 2);
	cr_assert_eq(sp_stat_get(&h.bucket[2]), 1);
	cr_assert_eq(sp_stat_get(&h.inf), 1);
	cr_assert_eq(sp_stat_get(&h.count), 6);
	cr_assert_eq(sp_stat_get(&h.sum_ns), 0 + 1023 + 1024 + 2047 + 2048 + (1ull << 40));
	/* the last finite bucket holds values < 2^36 ns */
	static struct sp_hist g;
	sp_hist_add(&g, (1ull << 36) - 1);
	cr_assert_eq(sp_stat_get(&g.bucket[SP_HIST_BUCKETS - 1]), 1);
}

Test(hist, render_sums_histograms_cumulatively)
{
	static struct sp_hist a, b;
	sp_hist_add(&a, 500);          /* bucket 0 */
	sp_hist_add(&b, 3000);         /* bucket 2 (< 4096) */
	sp_hist_add(&b, 5000000);      /* 5 ms */
	struct sp_hist *hs[] = { &a, &b };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	sp_hist_render(f, "x_seconds", "test", hs, 2);
	fclose(f);
	cr_assert(strstr(buf, "# TYPE x_seconds histogram\n") != NULL);
	cr_assert(strstr(buf, "x_seconds_bucket{le=\"1.024e-06\"} 1\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "x_seconds_bucket{le=\"2.048e-06\"} 1\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "x_seconds_bucket{le=\"4.096e-06\"} 2\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "x_seconds_bucket{le=\"0.008388608\"} 3\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "x_seconds_bucket{le=\"+Inf\"} 3\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "x_seconds_count 3\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "x_seconds_sum 0.0050035") != NULL, "%s", buf);
	free(buf);
}

/* The dashboard's quantiles over a window between two snapshots. */
Test(hist, window_quantiles)
{
	static struct sp_hist h;
	struct sp_hist *hs[1] = { &h };
	struct sp_hist_window w0, w1, w2;

	sp_hist_add(&h, 100000000);              /* before the window: ignored */
	sp_hist_snapshot(&w0, hs, 1);
	cr_expect_eq(sp_hist_window_quantile(&w0, &w0, 0.5), 0, "nothing recorded: 0");
	for (int i = 0; i < 98; i++)
		sp_hist_add(&h, 3000);               /* bucket 2: [2048, 4096) ns */
	sp_hist_add(&h, 1000000);                /* bucket 10: [2^19, 2^20) ns */
	sp_hist_add(&h, 1000000);
	sp_hist_snapshot(&w1, hs, 1);
	double p50 = sp_hist_window_quantile(&w0, &w1, 0.5);
	cr_expect(p50 >= 2048 && p50 <= 4096, "p50 in the 3 us bucket: %f", p50);
	double p99 = sp_hist_window_quantile(&w0, &w1, 0.99);
	cr_expect(p99 >= 524288 && p99 <= 1048576, "p99 in the 1 ms bucket: %f", p99);
	cr_expect(sp_hist_window_quantile(&w0, &w1, 0.0) <= sp_hist_window_quantile(&w0, &w1, 1.0));
	/* the +Inf bucket answers the last bound */
	sp_hist_add(&h, 1ull << 40);
	sp_hist_snapshot(&w2, hs, 1);
	cr_expect_eq(sp_hist_window_quantile(&w1, &w2, 0.5), (double)sp_hist_bound_ns(SP_HIST_BUCKETS - 1));
}
