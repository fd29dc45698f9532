/*
 * report.c - the figures of a run, printed as text or as one JSON object
 * (docs/spout-bench.md explains each). JSON keys are an interface: add
 * new ones, never rename or drop one. Runs once, in the process that
 * reports (a single process, or the parent after merging its children).
 */
#include <inttypes.h>
#include <string.h>

#include "bench.h"
#include "pub.h"
#include "sub.h"

struct figures {
	double wall_s, cpu_s, cpu_share, proc_share_max, connect_per_s, deliveries_per_s;
	double delivery_span_s, publish_s, published_per_s, churn_per_s;
	double p50, p95, p99, p999, max;   /* ms */
	uint64_t dropped, unacked;
};

static double ns_to_ms(uint64_t v)
{
	return (double)v / 1e6;
}

/* Lost: for each topic, what its established checked subscribers should
 * have had (every event of the topic not rejected) and did not. A parent
 * has the children's per-topic sums already; others add up their own. */
void report_compute_lost(void)
{
	if (run.role != ROLE_PARENT) {
		memset(topic_uniq, 0, opt.topics * sizeof *topic_uniq);
		subs_sum_unique(topic_uniq);
	}
	st.lost = 0;
	for (unsigned long t = 0; t < opt.topics; t++) {
		uint64_t want = (topic_seq[t] - topic_err[t]) * topic_nsubs[t];
		if (topic_uniq[t] < want)
			st.lost += want - topic_uniq[t];
	}
}

static void compute(struct figures *f)
{
	memset(f, 0, sizeof *f);
	f->wall_s = secs(run.t_end - run.t0);
	/* From t0, so that option parsing and set-up count in neither. */
	double own = cpu_now() - run.cpu0;
	f->cpu_s = own + run.cpu_kids;
	f->cpu_share = f->wall_s > 0 ? f->cpu_s / f->wall_s : 0;
	f->proc_share_max = f->wall_s > 0 ? own / f->wall_s : 0;
	if (run.cpu_max_share > f->proc_share_max)
		f->proc_share_max = run.cpu_max_share;
	if (st.connected > 0 && run.t_last_head > run.t_first_connect)
		f->connect_per_s = per_s(st.connected, run.t_last_head - run.t_first_connect);
	if (run.pub_start) {
		int64_t end = run.pub_end ? run.pub_end : run.t_end;
		f->publish_s = secs(end - run.pub_start);
		f->published_per_s = per_s(st.published, end - run.pub_start);
		f->deliveries_per_s = per_s(st.received_in_window, end - run.pub_start);
		if (run.last_rx > run.pub_start)
			f->delivery_span_s = secs(run.last_rx - run.pub_start);
	}
	if (opt.churn)
		f->churn_per_s = st.churn_done && run.t_last_head > run.t_first_connect
			? per_s(st.churn_done, run.t_last_head - run.t_first_connect) : 0;
	f->p50 = ns_to_ms(hist_quantile(&lat, 0.50));
	f->p95 = ns_to_ms(hist_quantile(&lat, 0.95));
	f->p99 = ns_to_ms(hist_quantile(&lat, 0.99));
	f->p999 = ns_to_ms(hist_quantile(&lat, 0.999));
	f->max = ns_to_ms(lat.max);
	f->dropped = st.dropped_eof + st.dropped_err + st.dropped_proto;
	f->unacked = st.published - pub_replies();
}

static void print_fail_detail(FILE *o, bool json)
{
	bool first = true;

	if (json) {
		fputs(",\"failed_status\":{", o);
		for (int i = 0; i < STATUS_SLOTS; i++)
			if (st.fail_status[i]) {
				fprintf(o, "%s\"%d\":%" PRIu64, first ? "" : ",", i, st.fail_status[i]);
				first = false;
			}
		fputs("},\"failed_errno\":{", o);
		first = true;
		for (int i = 0; i < ERRNO_SLOTS; i++)
			if (st.fail_errno[i]) {
				fprintf(o, "%s\"%s\":%" PRIu64, first ? "" : ",",
					i ? errname(i) : "other", st.fail_errno[i]);
				first = false;
			}
		fputc('}', o);
		return;
	}
	fputs("  failures     ", o);
	if (st.fail_timeout)
		fprintf(o, " timeout %" PRIu64, st.fail_timeout);
	if (st.fail_eof)
		fprintf(o, " closed-before-head %" PRIu64, st.fail_eof);
	if (st.fail_badhead)
		fprintf(o, " bad-head %" PRIu64, st.fail_badhead);
	for (int i = 0; i < STATUS_SLOTS; i++)
		if (st.fail_status[i])
			fprintf(o, " status-%d %" PRIu64, i, st.fail_status[i]);
	for (int i = 0; i < ERRNO_SLOTS; i++)
		if (st.fail_errno[i])
			fprintf(o, " %s %" PRIu64, i ? errname(i) : "other-errno", st.fail_errno[i]);
	fputc('\n', o);
}

/* Writes <s> as a JSON string; ours hold no quotes, backslashes or
 * controls, which are replaced to keep the object valid regardless. */
static void json_str(FILE *o, const char *s)
{
	fputc('"', o);
	for (; *s; s++)
		fputc(*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 ? '?' : *s, o);
	fputc('"', o);
}

static void report_json(const struct figures *f)
{
	FILE *o = stdout;

	fprintf(o, "{\"connected\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"connect_per_s\":%.1f,"
		"\"published\":%" PRIu64 ",\"pub_errors\":%" PRIu64 ",\"expected\":%" PRIu64
		",\"received\":%" PRIu64 ",\"deliveries_per_s\":%.1f,\"lost\":%" PRIu64
		",\"duplicated\":%" PRIu64 ",\"out_of_order\":%" PRIu64 ",\"p50_ms\":%.3f,"
		"\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
		"\"cpu_s\":%.3f,\"cpu_share\":%.3f,\"slow_closed\":%" PRIu64
		",\"churn_cycles\":%" PRIu64 ",\"churn_per_s\":%.1f",
		st.connected, st.failed, f->connect_per_s, st.published, st.pub_err,
		run.expected, st.received, f->deliveries_per_s, st.lost, st.duplicated,
		st.out_of_order, f->p50, f->p95, f->p99, f->p999, f->max, f->cpu_s,
		f->cpu_share, st.slow_closed, st.churn_done, f->churn_per_s);
	fprintf(o, ",\"mode\":\"%s\",\"subscribers\":%lu,\"topics\":%lu,\"slow\":%lu"
		",\"slow_connected\":%" PRIu64 ",\"slow_open\":%" PRIu64
		",\"dropped\":%" PRIu64 ",\"failed_timeout\":%" PRIu64
		",\"failed_eof\":%" PRIu64 ",\"failed_bad_head\":%" PRIu64,
		opt.churn ? "churn" : "publish", opt.churn ? 0 : opt.subs, opt.topics,
		opt.churn ? 0 : opt.slow, st.slow_connected, st.slow_open, f->dropped,
		st.fail_timeout, st.fail_eof, st.fail_badhead);
	print_fail_detail(o, true);
	fprintf(o, ",\"pub_ok\":%" PRIu64 ",\"unacked\":%" PRIu64 ",\"pub_unexpected\":%" PRIu64
		",\"publish_s\":%.3f,\"published_per_s\":%.1f,\"delivery_span_s\":%.3f"
		",\"samples\":%" PRIu64 ",\"foreign\":%" PRIu64 ",\"bad_payload\":%" PRIu64
		",\"gaps_forgotten\":%" PRIu64 ",\"wall_s\":%.3f,\"pub_failed\":%s",
		st.pub_ok, f->unacked, st.pub_unexpected, f->publish_s, f->published_per_s,
		f->delivery_span_s, lat.n, st.foreign, st.bad_payload, st.gaps_forgotten,
		f->wall_s, run.pub_failed ? "true" : "false");
	fputs(",\"target\":", o);
	json_str(o, opt.target_name);
	fputs(",\"sub_path\":", o);
	json_str(o, opt.sub_path);
	fprintf(o, ",\"pub_conns\":%lu,\"pub_reconnects\":%" PRIu64 ",\"stale\":%" PRIu64
		",\"procs\":%u,\"procs_failed\":%u,\"proc_cpu_share_max\":%.3f,\"stopped\":",
		opt.pub_conns, st.pub_reconnects, st.stale, run.nprocs, run.procs_failed,
		f->proc_share_max);
	if (run.stopped)
		fprintf(o, "\"%s\"}\n", run.stopped);
	else
		fputs("null}\n", o);
}

static void report_text_publish(const struct figures *f)
{
	FILE *o = stdout;

	fprintf(o, "spout-bench: %lu subscribers (+%lu slow) over %lu topics, target %s, "
		"http %s%s%s, pub %s\n", opt.subs, opt.slow, opt.topics, opt.target_name,
		opt.http_addr, opt.sub_path, opt.http10 ? " (HTTP/1.0)" : "", opt.pub_addr);
	fprintf(o, "  subscribers   %" PRIu64 " connected, %" PRIu64 " failed, "
		"%.1f/s; %" PRIu64 " dropped mid-stream\n",
		st.connected, st.failed, f->connect_per_s, f->dropped);
	if (st.failed)
		print_fail_detail(o, false);
	fprintf(o, "  published     %" PRIu64 " events in %.3f s (%.1f/s), %" PRIu64
		" rejected, %" PRIu64 " unacked", st.published, f->publish_s,
		f->published_per_s, st.pub_err, f->unacked);
	if (st.pub_reconnects)
		fprintf(o, ", %" PRIu64 " reconnects", st.pub_reconnects);
	fputc('\n', o);
	if (pub_first_err()[0])
		fprintf(o, "  first error   %s\n", pub_first_err());
	fprintf(o, "  deliveries    %" PRIu64 " expected, %" PRIu64 " received; "
		"%.1f/s while publishing; last one %.3f s after the first publish\n",
		run.expected, st.received, f->deliveries_per_s, f->delivery_span_s);
	fprintf(o, "  check         lost %" PRIu64 ", duplicated %" PRIu64
		", out of order %" PRIu64 "", st.lost, st.duplicated, st.out_of_order);
	if (st.foreign || st.bad_payload)
		fprintf(o, ", foreign %" PRIu64 ", bad payload %" PRIu64,
			st.foreign, st.bad_payload);
	if (st.stale)
		fprintf(o, ", stale %" PRIu64 " (from an earlier run)", st.stale);
	fputc('\n', o);
	fprintf(o, "  latency ms    p50 %.3f  p95 %.3f  p99 %.3f  p99.9 %.3f  max %.3f"
		"  (%" PRIu64 " samples)\n", f->p50, f->p95, f->p99, f->p999, f->max, lat.n);
	if (opt.slow)
		fprintf(o, "  slow          %" PRIu64 " connected, %" PRIu64
			" closed by the server, %" PRIu64 " still open\n",
			st.slow_connected, st.slow_closed, st.slow_open);
}

static void report_text(const struct figures *f)
{
	FILE *o = stdout;

	if (opt.churn) {
		fprintf(o, "spout-bench churn: %lu cycles over %lu topics, target %s, %s%s%s\n",
			opt.churn_cycles, opt.topics, opt.target_name, opt.http_addr,
			opt.sub_path, opt.http10 ? " (HTTP/1.0)" : "");
		fprintf(o, "  cycles        %" PRIu64 " done, %" PRIu64 " failed, %.1f/s\n",
			st.churn_done, st.failed, f->churn_per_s);
		if (st.failed)
			print_fail_detail(o, false);
	} else {
		report_text_publish(f);
	}
	fprintf(o, "  tool cpu      %.3f s, %.1f%% of %.3f s wall", f->cpu_s,
		100.0 * f->cpu_share, f->wall_s);
	if (run.nprocs > 1)
		fprintf(o, " (%u subscriber processes and their parent; busiest %.1f%%)",
			run.nprocs, 100.0 * f->proc_share_max);
	fputc('\n', o);
	if (!opt.churn && opt.rate > 0 && f->publish_s > 0.5 &&
	    f->published_per_s < 0.98 * opt.rate)
		fprintf(o, "  note          published %.1f/s, below -r %.1f: the tool or the "
			"publisher connections could not keep up\n", f->published_per_s, opt.rate);
	if (f->proc_share_max > 0.9 && f->wall_s > 0.5)
		fprintf(o, "  note          a process of the tool used over 90%% of a core: its "
			"figures may be its own limits; use more --procs\n");
	if (st.gaps_forgotten)
		fprintf(o, "  note          %" PRIu64 " sequence gaps were forgotten (more than %d "
			"open per subscriber): late arrivals in them counted as duplicates\n",
			st.gaps_forgotten, GAP_MAX);
	if (run.procs_failed)
		fprintf(o, "  note          %u subscriber processes ended without a result: "
			"figures are partial\n", run.procs_failed);
	if (run.stopped)
		fprintf(o, "  STOPPED       by %s during the %s phase: figures are partial\n",
			run.stopped, phase_name[run.stopped_phase]);
}

void report_print(void)
{
	struct figures f;

	compute(&f);
	if (opt.json)
		report_json(&f);
	else
		report_text(&f);
	fflush(stdout);
}

int report_exit_status(void)
{
	if (run.stopped)
		return 3;
	if (run.pub_failed || run.procs_failed)
		return 2;
	if (opt.expect_no_loss &&
	    (st.lost || st.duplicated || st.out_of_order || st.failed ||
	     st.dropped_eof + st.dropped_err + st.dropped_proto))
		return 1;
	return 0;
}
