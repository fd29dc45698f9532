/*
 * dashboard.h - the live dashboard: GET /dashboard is one self-contained
 * HTML page (src/dashboard.html, compiled in); it subscribes to
 * GET /dashboard/events, an SSE stream on which the serving worker sends a
 * JSON snapshot of the whole broker once a second (event "stats").
 *
 * Rates and latency quantiles cover the interval since the previous
 * snapshot, so each snapshotting thread keeps its own struct sp_dash_prev.
 * Reading the counters is the same relaxed read /metrics does (stats.h).
 */
#ifndef SPOUT_DASHBOARD_H
#define SPOUT_DASHBOARD_H

#include <stddef.h>
#include <stdint.h>

#include "spout/config.h"
#include "spout/hist.h"

struct sp_broker;

/* Totals at the previous snapshot. Zeroed = none yet (rates then 0). */
struct sp_dash_prev {
	uint64_t ns;
	uint64_t published, deliveries, bytes_out, accepted, reconnects;
	uint64_t drops, sheds;
	uint64_t worker_deliveries[SP_WORKERS_MAX];
	struct sp_hist_window latency;            /* all workers' deliveries */
	struct sp_hist_window loop[SP_WORKERS_MAX];  /* each worker's loop lag */
};

/* The page (text/html, NUL-ended), generated from src/dashboard.html. */
extern const char sp_dash_html[];
extern const size_t sp_dash_html_len;

/* A snapshot as one line of JSON, malloc'd (length in <*len>), and <prev>
 * moved to now. NULL on ENOMEM. Any thread (one <prev> per thread). */
char *sp_dash_render(struct sp_broker *b, struct sp_dash_prev *prev, size_t *len);

#endif
