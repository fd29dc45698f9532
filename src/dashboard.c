/*
 * dashboard.c - the JSON snapshot behind the live dashboard (dashboard.h).
 *
 * One line of JSON per second per viewing worker, built from the same
 * counters /metrics renders: gauges as they are, counters as totals and as
 * per-second rates over the interval since the previous snapshot, latency
 * as p50/p99 of that interval. Any thread; allocates the line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spout/broker.h"
#include "spout/dashboard.h"
#include "spout/sys.h"

#define WSUM(b, field) wsum(b, offsetof(struct sp_worker_stats, field))

static uint64_t wsum(struct sp_broker *b, size_t off)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < b->nworkers; i++)
		n += sp_stat_get((sp_counter *)((char *)&b->workers[i].stats + off));
	return n;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static double rate(uint64_t now, uint64_t then, double secs)
{
	return secs > 0 && now >= then ? (double)(now - then) / secs : 0;
}

static const char *backplane_state(struct sp_broker *b)
{
	static const char *const names[] = { "off", "ready", "connecting", "down", "stalled" };
	int h = atomic_load_explicit(&b->router.bp_health, memory_order_relaxed);

	return h >= 0 && h < 5 ? names[h] : "?";
}

static void workers(FILE *f, struct sp_broker *b, struct sp_dash_prev *prev, double secs)
{
	fputs(",\"workers\":[", f);
	for (unsigned i = 0; i < b->nworkers; i++) {
		struct sp_worker *w = &b->workers[i];
		struct sp_hist *loop = &w->lat_loop;
		struct sp_hist_window now;
		uint64_t d = sp_stat_get(&w->stats.deliveries);

		sp_hist_snapshot(&now, &loop, 1);
		fprintf(f, "%s{\"id\":%u,\"conns\":%llu,\"deliveries_per_s\":%.1f,"
			"\"loop_p99_ms\":%.3f,\"ring\":%u}", i ? "," : "", i,
			(unsigned long long)sp_stat_get(&w->stats.conns_open),
			rate(d, prev->worker_deliveries[i], secs),
			sp_hist_window_quantile(&prev->loop[i], &now, 0.99) / 1e6,
			sp_ring_count_any(&w->frame_ring));
		prev->worker_deliveries[i] = d;
		prev->loop[i] = now;
	}
	fputc(']', f);
}

char *sp_dash_render(struct sp_broker *b, struct sp_dash_prev *prev, size_t *len)
{
	struct sp_router_stats *r = &b->router.stats;
	struct sp_acceptor_stats *a = &b->acceptor.stats;
	uint64_t now_ns = sp_now_ns();
	double secs = prev->ns ? (double)(now_ns - prev->ns) / 1e9 : 0;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (f == NULL)
		return NULL;
	uint64_t published = sp_stat_get(&r->events_published), deliveries = WSUM(b, deliveries);
	uint64_t bytes_out = WSUM(b, bytes_out), accepted = sp_stat_get(&a->accepted);
	uint64_t reconnects = WSUM(b, reconnects);
	uint64_t d_oldest = WSUM(b, drops_oldest), d_confl = WSUM(b, drops_conflated);
	uint64_t d_over = WSUM(b, drops_overflow), d_wt = WSUM(b, drops_write_timeout);
	uint64_t s_over = WSUM(b, shed_overflow), s_wt = WSUM(b, shed_write_timeout);
	struct sp_hist *lat[SP_WORKERS_MAX];
	struct sp_hist_window lat_now;

	for (unsigned i = 0; i < b->nworkers; i++)
		lat[i] = &b->workers[i].lat_delivery;
	sp_hist_snapshot(&lat_now, lat, b->nworkers);
	int phase = atomic_load_explicit(&b->phase, memory_order_relaxed);

	fprintf(f, "{\"t\":%llu,\"uptime_s\":%.0f,\"ready\":%s,\"draining\":%s,\"backplane\":\"%s\"",
		(unsigned long long)wall_ms(),
		(double)(now_ns - b->started_ns) / 1e9, phase == SP_PHASE_RUNNING ? "true" : "false",
		phase == SP_PHASE_DRAINING ? "true" : "false", backplane_state(b));
	fprintf(f, ",\"conns\":%u,\"conns_max\":%u,\"publishers\":%llu,\"topics\":%llu,"
		"\"history_events\":%llu,\"rss_bytes\":%llu",
		atomic_load_explicit(&b->open_conns, memory_order_relaxed), b->max_conns,
		(unsigned long long)sp_stat_get(&r->pub_conns_open),
		(unsigned long long)sp_stat_get(&r->topics),
		(unsigned long long)sp_stat_get(&r->history_events),
		(unsigned long long)sp_sys_rss());
	fprintf(f, ",\"published_per_s\":%.1f,\"deliveries_per_s\":%.1f,\"bytes_out_per_s\":%.0f,"
		"\"accepts_per_s\":%.1f,\"reconnects_per_s\":%.1f",
		rate(published, prev->published, secs), rate(deliveries, prev->deliveries, secs),
		rate(bytes_out, prev->bytes_out, secs), rate(accepted, prev->accepted, secs),
		rate(reconnects, prev->reconnects, secs));
	fprintf(f, ",\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f}",
		sp_hist_window_quantile(&prev->latency, &lat_now, 0.50) / 1e6,
		sp_hist_window_quantile(&prev->latency, &lat_now, 0.99) / 1e6);
	fprintf(f, ",\"drops\":{\"drop_oldest\":%llu,\"conflated\":%llu,"
		"\"overflow_disconnect\":%llu,\"write_timeout\":%llu}"
		",\"sheds\":{\"overflow\":%llu,\"write_timeout\":%llu}"
		",\"drops_per_s\":%.1f,\"sheds_per_s\":%.1f",
		(unsigned long long)d_oldest, (unsigned long long)d_confl,
		(unsigned long long)d_over, (unsigned long long)d_wt,
		(unsigned long long)s_over, (unsigned long long)s_wt,
		rate(d_oldest + d_confl + d_over + d_wt, prev->drops, secs),
		rate(s_over + s_wt, prev->sheds, secs));
	fprintf(f, ",\"refused\":{\"max_conns\":%llu,\"accept_rate\":%llu,\"memory\":%llu,"
		"\"per_ip\":%llu,\"auth\":%llu}",
		(unsigned long long)sp_stat_get(&a->rejected_max_conns),
		(unsigned long long)sp_stat_get(&a->rejected_accept_rate),
		(unsigned long long)sp_stat_get(&a->rejected_memory),
		(unsigned long long)WSUM(b, rejected_per_ip),
		(unsigned long long)(WSUM(b, auth_missing) + WSUM(b, auth_invalid) +
				     WSUM(b, auth_forbidden)));
	workers(f, b, prev, secs);
	fputs("}", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	prev->ns = now_ns;
	prev->published = published;
	prev->deliveries = deliveries;
	prev->bytes_out = bytes_out;
	prev->accepted = accepted;
	prev->reconnects = reconnects;
	prev->drops = d_oldest + d_confl + d_over + d_wt;
	prev->sheds = s_over + s_wt;
	prev->latency = lat_now;
	return buf;
}
