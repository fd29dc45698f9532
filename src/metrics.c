/*
 * metrics.c - the Prometheus text exposition of GET /metrics.
 *
 * Counters live with the thread that updates them (per-worker, router,
 * acceptor); a scrape sums them with relaxed loads, so collection costs the
 * hot path nothing. Called on whichever worker serves the request.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef SP_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "spout/broker.h"
#include "spout/hist.h"
#include "spout/sys.h"


static void metric(FILE *f, const char *name, const char *type, const char *help,
		   uint64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
		(unsigned long long)v);
}

#define SUM(field) sum_workers(b, offsetof(struct sp_worker_stats, field))

static uint64_t sum_workers(struct sp_broker *b, size_t off)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < b->nworkers; i++)
		s += sp_stat_get((sp_counter *)((char *)&b->workers[i].stats + off));
	return s;
}

static uint64_t max_workers(struct sp_broker *b, size_t off)
{
	uint64_t m = 0;

	for (unsigned i = 0; i < b->nworkers; i++) {
		uint64_t v = sp_stat_get((sp_counter *)((char *)&b->workers[i].stats + off));
		if (v > m)
			m = v;
	}
	return m;
}

/* --topic-metrics: per-topic publish counts for a bounded set of topics. */
static void topic_series(FILE *f, struct sp_broker *b)
{
	struct sp_router *r = &b->router;

	if (r->topic_stats == NULL)
		return;
	fprintf(f, "# HELP spout_topic_events_published_total Events published, per topic "
		   "(--topic-metrics, at most --topic-metrics-max topics).\n"
		   "# TYPE spout_topic_events_published_total counter\n");
	for (uint32_t i = 0; i < b->cfg->topic_metrics_max; i++) {
		struct sp_topic_stat *t = &r->topic_stats[i];
		if (!atomic_load_explicit(&t->used, memory_order_acquire))
			break;   /* slots fill in order */
		fprintf(f, "spout_topic_events_published_total{topic=\"%s\"} %llu\n", t->name,
			(unsigned long long)sp_stat_get(&t->published));
	}
	metric(f, "spout_topic_metrics_overflow_total", "counter",
	       "Publishes on matching topics beyond --topic-metrics-max.",
	       sp_stat_get(&r->topic_stats_overflow));
}

/* Process and container pressure, read at scrape time. */
/* Cluster mode only: the Redis backplane (docs/cluster.md). */
static void backplane(FILE *f, struct sp_broker *b)
{
	struct sp_bp_stats *s = &b->router.bp;

	if (!sp_config_cluster(b->cfg))
		return;
	metric(f, "spout_backplane_up", "gauge", "1 while both Redis links are set up.",
	       sp_stat_get(&s->up));
	metric(f, "spout_backplane_ready", "gauge",
	       "1 while the heartbeat through Redis comes back in time.", sp_stat_get(&s->ready));
	metric(f, "spout_backplane_connects_total", "counter", "Times the backplane came up.",
	       sp_stat_get(&s->connects));
	metric(f, "spout_backplane_errors_total", "counter",
	       "Link failures, timeouts and error replies from Redis.", sp_stat_get(&s->errors));
	metric(f, "spout_backplane_publishes_total", "counter",
	       "Events stored through Redis and acknowledged.", sp_stat_get(&s->publishes));
	metric(f, "spout_backplane_publish_errors_total", "counter",
	       "Publishes answered ERR because of the backplane.", sp_stat_get(&s->publish_errors));
	metric(f, "spout_backplane_events_received_total", "counter",
	       "Events received from Redis pub/sub.", sp_stat_get(&s->events_received));
	metric(f, "spout_backplane_duplicates_total", "counter",
	       "Events received twice (via a topic and a pattern) and dropped once.",
	       sp_stat_get(&s->duplicates));
	metric(f, "spout_backplane_subscriptions", "gauge",
	       "Redis channels and patterns this node holds.", sp_stat_get(&s->subscriptions));
	fprintf(f, "# HELP spout_backplane_probe_rtt_seconds Last heartbeat round trip through Redis.\n"
		   "# TYPE spout_backplane_probe_rtt_seconds gauge\n"
		   "spout_backplane_probe_rtt_seconds %.6f\n",
		(double)sp_stat_get(&s->probe_rtt_ns) / 1e9);
	metric(f, "spout_backplane_replays_total", "counter",
	       "Resumptions answered from Redis history.", sp_stat_get(&s->replays));
	metric(f, "spout_backplane_resets_total", "counter",
	       "Times Redis' id counter was seen starting a new epoch (data lost).",
	       sp_stat_get(&s->resets));
	metric(f, "spout_backplane_inbox", "gauge",
	       "Received events waiting for worker ring room.", sp_stat_get(&s->inbox));
}

static void runtime(FILE *f, struct sp_broker *b)
{
	uint64_t periods, usec;

	metric(f, "spout_process_resident_bytes", "gauge", "Resident set size.", sp_sys_rss());
	metric(f, "spout_open_fds", "gauge", "Open file descriptors.", sp_sys_open_fds());
#ifdef SP_HAVE_JEMALLOC
	uint64_t epoch = 1;
	size_t esz = sizeof(epoch), allocated = 0, resident = 0, sz = sizeof(size_t);
	/* jemalloc's stats are a snapshot refreshed by bumping the epoch. */
	if (mallctl("epoch", &epoch, &esz, &epoch, esz) == 0 &&
	    mallctl("stats.allocated", &allocated, &sz, NULL, 0) == 0 &&
	    mallctl("stats.resident", &resident, &sz, NULL, 0) == 0) {
		metric(f, "spout_jemalloc_allocated_bytes", "gauge",
		       "Bytes allocated by the application (jemalloc).", allocated);
		metric(f, "spout_jemalloc_resident_bytes", "gauge",
		       "Bytes in physically resident allocator pages (jemalloc).", resident);
	}
#endif
	if (b->memory_limit != 0) {
		metric(f, "spout_cgroup_memory_limit_bytes", "gauge", "cgroup memory limit.",
		       b->memory_limit);
		metric(f, "spout_cgroup_memory_current_bytes", "gauge", "cgroup memory in use.",
		       sp_sys_memory_current());
	}
	if (sp_sys_cpu_throttled(&periods, &usec) == 0) {
		metric(f, "spout_cgroup_cpu_throttled_periods_total", "counter",
		       "cgroup CPU periods throttled (cpu.stat nr_throttled).", periods);
		fprintf(f, "# HELP spout_cgroup_cpu_throttled_seconds_total Time throttled (cpu.stat).\n"
			   "# TYPE spout_cgroup_cpu_throttled_seconds_total counter\n"
			   "spout_cgroup_cpu_throttled_seconds_total %.6f\n", (double)usec / 1e6);
	}
}

/* Limits and authentication (docs/security.md): every refusal counted. */
static void security(FILE *f, struct sp_broker *b)
{
	struct sp_router_stats *r = &b->router.stats;

	fprintf(f, "# HELP spout_limit_rejections_total Requests and connections refused by a limit.\n"
		   "# TYPE spout_limit_rejections_total counter\n"
		   "spout_limit_rejections_total{limit=\"conns_per_ip\"} %llu\n"
		   "spout_limit_rejections_total{limit=\"request_head\"} %llu\n"
		   "spout_limit_rejections_total{limit=\"header_timeout\"} %llu\n"
		   "spout_limit_rejections_total{limit=\"proxy_header\"} %llu\n"
		   "spout_limit_rejections_total{limit=\"pub_rate\"} %llu\n"
		   "spout_limit_rejections_total{limit=\"pub_conns\"} %llu\n"
		   "spout_limit_rejections_total{limit=\"pub_idle\"} %llu\n",
		(unsigned long long)SUM(rejected_per_ip), (unsigned long long)SUM(rejected_headers),
		(unsigned long long)SUM(header_timeouts), (unsigned long long)SUM(proxy_errors),
		(unsigned long long)sp_stat_get(&r->pub_rate_limited),
		(unsigned long long)sp_stat_get(&r->pub_rejected_conns),
		(unsigned long long)sp_stat_get(&r->pub_idle_closed));
	fprintf(f, "# HELP spout_auth_total Stream requests checked by --auth, by result.\n"
		   "# TYPE spout_auth_total counter\n"
		   "spout_auth_total{result=\"ok\"} %llu\n"
		   "spout_auth_total{result=\"missing\"} %llu\n"
		   "spout_auth_total{result=\"invalid\"} %llu\n"
		   "spout_auth_total{result=\"forbidden\"} %llu\n",
		(unsigned long long)SUM(auth_ok), (unsigned long long)SUM(auth_missing),
		(unsigned long long)SUM(auth_invalid), (unsigned long long)SUM(auth_forbidden));
	metric(f, "spout_client_addresses", "gauge",
	       "Client addresses (IPv6: /64s) with connections open, when --max-conns-per-ip is on.",
	       sp_connlimit_keys(&b->per_ip));
}

char *sp_metrics_render(struct sp_broker *b, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	struct sp_router_stats *r = &b->router.stats;
	struct sp_acceptor_stats *a = &b->acceptor.stats;

	if (f == NULL)
		return NULL;
	metric(f, "spout_connections_open", "gauge", "HTTP connections open now.",
	       atomic_load_explicit(&b->open_conns, memory_order_relaxed));
	metric(f, "spout_connections_max", "gauge", "Connection cap (--max-conns).", b->max_conns);
	metric(f, "spout_connections_accepted_total", "counter", "HTTP connections accepted.",
	       sp_stat_get(&a->accepted));
	fprintf(f, "# HELP spout_connections_rejected_total Connections answered 503 by the acceptor.\n"
		   "# TYPE spout_connections_rejected_total counter\n"
		   "spout_connections_rejected_total{reason=\"max_conns\"} %llu\n"
		   "spout_connections_rejected_total{reason=\"queue_full\"} %llu\n"
		   "spout_connections_rejected_total{reason=\"accept_rate\"} %llu\n"
		   "spout_connections_rejected_total{reason=\"memory\"} %llu\n",
		(unsigned long long)sp_stat_get(&a->rejected_max_conns),
		(unsigned long long)sp_stat_get(&a->rejected_queue_full),
		(unsigned long long)sp_stat_get(&a->rejected_accept_rate),
		(unsigned long long)sp_stat_get(&a->rejected_memory));
	metric(f, "spout_accept_errors_total", "counter", "accept4() failures (EMFILE etc.).",
	       sp_stat_get(&a->accept_errors));
	metric(f, "spout_requests_total", "counter", "HTTP request heads parsed.", SUM(requests));
	metric(f, "spout_bad_requests_total", "counter", "Requests answered with an error status.",
	       SUM(bad_requests));
	metric(f, "spout_streams_opened_total", "counter", "SSE streams started.",
	       SUM(streams_opened));
	metric(f, "spout_events_published_total", "counter", "Events accepted from publishers.",
	       sp_stat_get(&r->events_published));
	metric(f, "spout_events_unrouted_total", "counter",
	       "Events published to a topic with no subscriber.", sp_stat_get(&r->events_unrouted));
	metric(f, "spout_frames_routed_total", "counter",
	       "Frames pushed router->worker (one per interested worker per event).",
	       sp_stat_get(&r->frames_routed));
	metric(f, "spout_frames_delivered_total", "counter",
	       "Live event frames completely written to a subscriber socket (replays not included).", SUM(deliveries));
	metric(f, "spout_bytes_written_total", "counter", "Bytes written to HTTP clients.",
	       SUM(bytes_out));
	metric(f, "spout_events_dropped_total", "counter",
	       "Queued event deliveries discarded (overflow, shed connections).",
	       SUM(events_dropped));
	fprintf(f, "# HELP spout_event_drops_total Undelivered events, by reason.\n"
		   "# TYPE spout_event_drops_total counter\n"
		   "spout_event_drops_total{reason=\"drop_oldest\"} %llu\n"
		   "spout_event_drops_total{reason=\"conflated\"} %llu\n"
		   "spout_event_drops_total{reason=\"overflow_disconnect\"} %llu\n"
		   "spout_event_drops_total{reason=\"write_timeout\"} %llu\n",
		(unsigned long long)SUM(drops_oldest), (unsigned long long)SUM(drops_conflated),
		(unsigned long long)SUM(drops_overflow), (unsigned long long)SUM(drops_write_timeout));
	fprintf(f, "# HELP spout_connections_shed_total Connections closed by the broker as slow consumers.\n"
		   "# TYPE spout_connections_shed_total counter\n"
		   "spout_connections_shed_total{reason=\"overflow\"} %llu\n"
		   "spout_connections_shed_total{reason=\"write_timeout\"} %llu\n",
		(unsigned long long)SUM(shed_overflow), (unsigned long long)SUM(shed_write_timeout));
	fprintf(f, "# HELP spout_connections_closed_total Connections closed, by reason.\n"
		   "# TYPE spout_connections_closed_total counter\n"
		   "spout_connections_closed_total{reason=\"client\"} %llu\n"
		   "spout_connections_closed_total{reason=\"error\"} %llu\n"
		   "spout_connections_closed_total{reason=\"overflow\"} %llu\n"
		   "spout_connections_closed_total{reason=\"write_timeout\"} %llu\n"
		   "spout_connections_closed_total{reason=\"shutdown\"} %llu\n"
		   "spout_connections_closed_total{reason=\"drain\"} %llu\n"
		   "spout_connections_closed_total{reason=\"bad_request\"} %llu\n"
		   "spout_connections_closed_total{reason=\"token_expired\"} %llu\n"
		   "spout_connections_closed_total{reason=\"max_conns\"} %llu\n",
		(unsigned long long)SUM(closed_client), (unsigned long long)SUM(closed_error),
		(unsigned long long)SUM(shed_overflow), (unsigned long long)SUM(shed_write_timeout),
		(unsigned long long)SUM(closed_shutdown), (unsigned long long)SUM(closed_drain),
		(unsigned long long)SUM(closed_bad_request), (unsigned long long)SUM(closed_token_expired),
		(unsigned long long)sp_stat_get(&a->rejected_max_conns));
	metric(f, "spout_reconnects_total", "counter",
	       "Stream requests carrying Last-Event-ID (header or lastEventId).", SUM(reconnects));
	metric(f, "spout_reconnect_rate", "gauge",
	       "Reconnects per second over the last 10 s.", sp_stat_get(&b->reconnect_rate));
	metric(f, "spout_reconnect_storm", "gauge",
	       "1 while the reconnect rate is above --storm-threshold.",
	       sp_stat_get(&b->reconnect_storm));
	int phase = atomic_load_explicit(&b->phase, memory_order_relaxed);
	metric(f, "spout_ready", "gauge", "1 while /readyz answers 200.", phase == SP_PHASE_RUNNING);
	metric(f, "spout_draining", "gauge", "1 after SIGTERM, while streams are being closed.",
	       phase == SP_PHASE_DRAINING);
	metric(f, "spout_log_lines_suppressed_total", "counter",
	       "Shed log lines held back by the 10/s per worker limit.",
	       SUM(sheds_logged_suppressed));
	metric(f, "spout_header_timeouts_total", "counter",
	       "Requests closed with 408 for a slow head.", SUM(header_timeouts));
	metric(f, "spout_heartbeats_total", "counter", "Heartbeat comments sent.", SUM(heartbeats));
	metric(f, "spout_write_eagain_total", "counter", "Writes that hit a full socket buffer.",
	       SUM(write_eagain));
	metric(f, "spout_out_queue_depth_max", "gauge",
	       "Deepest per-connection out-queue seen, in events.",
	       max_workers(b, offsetof(struct sp_worker_stats, queue_depth_hwm)));
	metric(f, "spout_ctl_backlog_total", "counter",
	       "Subscribe/unsubscribe messages that waited for ring room.", SUM(ctl_backlog));
	metric(f, "spout_router_stalls_total", "counter",
	       "Times a full worker ring paused publisher reads.", sp_stat_get(&r->stalls));
	fprintf(f, "# HELP spout_router_stall_seconds_total Time publishers were paused.\n"
		   "# TYPE spout_router_stall_seconds_total counter\n"
		   "spout_router_stall_seconds_total %.6f\n",
		(double)sp_stat_get(&r->stall_ns) / 1e9);
	metric(f, "spout_history_events", "gauge", "Events retained for resumption.",
	       sp_stat_get(&r->history_events));
	metric(f, "spout_history_bytes", "gauge",
	       "Memory retained by history (frames + bookkeeping).", sp_stat_get(&r->history_bytes));
	metric(f, "spout_history_budget_bytes", "gauge",
	       "The history memory bound in force (--history-bytes, or sized to the cgroup).",
	       sp_stat_get(&r->history_budget));
	metric(f, "spout_history_evicted_total", "counter",
	       "Events dropped from history by the per-topic, byte or age bound.",
	       sp_stat_get(&r->history_evicted));
	metric(f, "spout_replays_total", "counter", "Last-Event-ID resumptions answered.",
	       sp_stat_get(&r->replays));
	metric(f, "spout_replayed_events_total", "counter", "Events sent by resumptions.",
	       sp_stat_get(&r->replayed_events));
	metric(f, "spout_replay_gaps_total", "counter",
	       "Resumptions that could not be exact (spout-gap sent).", sp_stat_get(&r->replay_gaps));
	metric(f, "spout_topics", "gauge", "Topics with at least one subscriber.",
	       sp_stat_get(&r->topics));
	metric(f, "spout_publishers_open", "gauge", "Publisher connections open now.",
	       sp_stat_get(&r->pub_conns_open));
	metric(f, "spout_publishers_accepted_total", "counter", "Publisher connections accepted.",
	       sp_stat_get(&r->pub_conns_total));
	metric(f, "spout_publish_errors_total", "counter", "ERR replies sent to publishers.",
	       sp_stat_get(&r->pub_errors));
	metric(f, "spout_publisher_auth_failures_total", "counter",
	       "Wrong publisher tokens: AUTH (closes its connection) and POST /publish.",
	       sp_stat_get(&r->pub_auth_failures) + SUM(pub_auth_failures));
	metric(f, "spout_http_publishes_total", "counter",
	       "POST /publish answered with an event id (also in spout_events_published_total).",
	       sp_stat_get(&r->http_publishes));
	metric(f, "spout_http_publish_errors_total", "counter",
	       "POST /publish refused by the router: rate limit, backplane, memory.",
	       sp_stat_get(&r->http_publish_errors));
	security(f, b);
	fprintf(f, "# HELP spout_worker_ring_occupancy Frames waiting in each worker's ring.\n"
		   "# TYPE spout_worker_ring_occupancy gauge\n");
	for (unsigned i = 0; i < b->nworkers; i++)
		fprintf(f, "spout_worker_ring_occupancy{worker=\"%u\"} %u\n", i,
			sp_ring_count_any(&b->workers[i].frame_ring));
	fprintf(f, "# HELP spout_worker_connections Connections owned by each worker.\n"
		   "# TYPE spout_worker_connections gauge\n");
	for (unsigned i = 0; i < b->nworkers; i++)
		fprintf(f, "spout_worker_connections{worker=\"%u\"} %llu\n", i,
			(unsigned long long)sp_stat_get(&b->workers[i].stats.conns_open));
	struct sp_hist *lat[SP_WORKERS_MAX];
	for (unsigned i = 0; i < b->nworkers; i++)
		lat[i] = &b->workers[i].lat_delivery;
	sp_hist_render(f, "spout_delivery_latency_seconds",
		       "Publish received by the router to frame fully written, live events.",
		       lat, b->nworkers);
	for (unsigned i = 0; i < b->nworkers; i++)
		lat[i] = &b->workers[i].lat_queue;
	sp_hist_render(f, "spout_queue_wait_seconds",
		       "Router push to worker pop, per frame per worker.", lat, b->nworkers);
	for (unsigned i = 0; i < b->nworkers; i++)
		lat[i] = &b->workers[i].lat_loop;
	sp_hist_render(f, "spout_worker_loop_seconds",
		       "Worker loop lag: readiness returned to all of it handled, per round.",
		       lat, b->nworkers);
	for (unsigned i = 0; i < b->nworkers; i++)
		lat[i] = &b->workers[i].queue_depth;
	sp_hist_render_scaled(f, "spout_out_queue_depth_events",
			      "Per-connection out-queue depth, sampled at every flush.",
			      lat, b->nworkers, 0, 1.0);
	topic_series(f, b);
	backplane(f, b);
	runtime(f, b);
	metric(f, "spout_workers", "gauge", "Worker threads.", b->nworkers);
	metric(f, "spout_open_files_limit", "gauge", "RLIMIT_NOFILE in force.", b->nofile_limit);
	fprintf(f, "# HELP spout_uptime_seconds Seconds since start.\n"
		   "# TYPE spout_uptime_seconds gauge\n"
		   "spout_uptime_seconds %.3f\n",
		(double)(sp_now_ns() - b->started_ns) / 1e9);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
