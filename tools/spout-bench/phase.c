/*
 * phase.c - when a run moves from one phase to the next (the order is in
 * bench.h), for each role:
 *
 *   CONNECT  S checked + K slow subscribers, at most --connect-concurrency
 *            of them between connect() and their 200 head; ends when each
 *            has its head or has failed, or when --connect-timeout passes.
 *            A parent waits for every child's CONNECTED; a child then
 *            waits (READY) for the parent's START.
 *   SETTLE   --settle-ms of nothing, for brokers whose subscriptions go
 *            live a little after the response head.
 *   PUBLISH  pub.c paces events for -d seconds or -n events.
 *   DRAIN    until every expected delivery has arrived and every publish
 *            has its reply, or --drain-ms. A parent then sends FINAL and
 *            waits for the children's results (COLLECT).
 *   SLOWCHK  read what the slow subscribers have, to see which ones the
 *            broker closed (EOF or RST).
 *
 * --churn replaces all of these with one CHURN phase. --max-seconds and
 * SIGINT/SIGTERM cut any phase short (phase_stop). Event-loop thread only.
 */
#include <inttypes.h>

#include "bench.h"
#include "procs.h"
#include "pub.h"
#include "sub.h"

const char *const phase_name[] = {
	"connect", "settle", "ready", "publish", "drain", "slow-check", "churn",
	"collect", "report",
};

static void start_publish(int64_t now)
{
	if (opt.verbose)
		say("%" PRIu64 " subscribed, %" PRIu64 " failed in %.3f s; publishing",
		    run.role == ROLE_PARENT ? procs_connected() : st.connected,
		    run.role == ROLE_PARENT ? procs_failed_subs() : st.failed, secs(now - run.t0));
	pub_start(now);
	if (run.role == ROLE_PARENT)
		procs_send_start(now);
}

static void connect_done(int64_t now)
{
	if (opt.settle_ms == 0) {
		start_publish(now);
		return;
	}
	run.phase = PH_SETTLE;
	run.settle_end = now + (int64_t)opt.settle_ms * NS_PER_MS;
}

void phase_end_publish(int64_t now)
{
	run.pub_end = now;
	pub_timer_off();
	run.phase = PH_DRAIN;
	run.drain_deadline = now + (int64_t)opt.drain_ms * NS_PER_MS;
	if (opt.verbose)
		say("published %" PRIu64 " events in %.3f s; draining", st.published,
		    secs(now - run.pub_start));
	if (run.role == ROLE_PARENT)
		procs_send_end(now, run.drain_deadline);
}

/* A parent whose run cannot go on: children report what they have. */
static void parent_abort(int64_t now)
{
	procs_send_final(true);
	run.phase = PH_COLLECT;
	run.collect_deadline = now + NS_PER_S;
}

/* Cut short: by --max-seconds or a signal (run.stopped says which), or in a
 * child by its parent. Report what there is. */
void phase_stop(int64_t now)
{
	if (run.role == ROLE_PARENT) {
		parent_abort(now);
		return;
	}
	if (run.phase == PH_SLOWCHK)
		st.slow_open = run.slow_pending;
	run.phase = PH_REPORT;
}

/* Subscribers of this process: true once the connect phase is over. */
static bool subs_connected(int64_t now)
{
	if (run.launched == run.total && run.inflight == 0)
		return true;
	if (now < run.connect_deadline)
		return false;
	subs_fail_stale(now);
	subs_fail_unlaunched();
	return true;
}

static void step_connect(int64_t now)
{
	switch (run.role) {
	case ROLE_CHILD:
		if (subs_connected(now)) {
			run.phase = PH_READY;
			procs_child_connected();
		}
		return;
	case ROLE_PARENT:
		if (run.pub_failed) {
			parent_abort(now);
		} else if (procs_all_connected() && pub_ready()) {
			connect_done(now);
		} else if (now >= run.connect_deadline && !pub_ready()) {
			pub_failure("connect timed out", 0);
			parent_abort(now);
		}
		return;
	case ROLE_SOLO:
		if (run.pub_failed) {
			run.phase = PH_REPORT;
			return;
		}
		bool late = now >= run.connect_deadline;
		if (!subs_connected(now) || (!pub_ready() && !late))
			return;
		if (!pub_ready()) {
			pub_failure("connect timed out", 0);
			run.phase = PH_REPORT;
			return;
		}
		connect_done(now);
		return;
	}
}

static void end_drain(int64_t now)
{
	/* Freeze the delivery figures: nothing read after this counts. */
	subs_freeze();
	if (opt.verbose)
		say("drain over after %.3f s", secs(now - run.pub_end));
	if (st.slow_connected == 0) {
		run.phase = PH_REPORT;
		return;
	}
	run.phase = PH_SLOWCHK;
	run.slow_deadline = now + (int64_t)opt.slow_check_ms * NS_PER_MS;
	subs_start_slowcheck();
}

static void step_drain(int64_t now)
{
	bool late = now >= run.drain_deadline;

	switch (run.role) {
	case ROLE_PARENT:
		if (pub_idle() || late) {
			procs_send_final(false);
			run.phase = PH_COLLECT;
		}
		return;
	case ROLE_CHILD:
		if ((run.got_final && st.unique >= run.expected) || late)
			end_drain(now);
		return;
	case ROLE_SOLO:
		if ((pub_idle() && st.unique >= run.expected) || late)
			end_drain(now);
		return;
	}
}

void phase_step(int64_t now)
{
	switch (run.phase) {
	case PH_CONNECT:
		step_connect(now);
		break;
	case PH_SETTLE:
		if (run.pub_failed)
			phase_stop(now);
		else if (now >= run.settle_end)
			start_publish(now);
		break;
	case PH_READY:
	case PH_PUBLISH:
		break;
	case PH_DRAIN:
		step_drain(now);
		break;
	case PH_SLOWCHK:
		if (run.slow_pending == 0 || now >= run.slow_deadline) {
			st.slow_open = run.slow_pending;
			run.phase = PH_REPORT;
		}
		break;
	case PH_CHURN:
		if (st.churn_done + st.failed >= run.total) {
			run.phase = PH_REPORT;
		} else if (now - run.last_scan >= 100 * NS_PER_MS) {
			run.last_scan = now;
			subs_fail_stale(now - (int64_t)opt.connect_timeout_ms * NS_PER_MS);
		}
		break;
	case PH_COLLECT:
		if (procs_all_done() || (run.collect_deadline && now >= run.collect_deadline))
			run.phase = PH_REPORT;
		break;
	case PH_REPORT:
		break;
	}
}

/* -v: one line a second on stderr. */
void phase_progress(int64_t now)
{
	if (!opt.verbose || now - run.last_progress < NS_PER_S)
		return;
	run.last_progress = now;
	if (run.role == ROLE_PARENT) {
		say("[%6.1f s] %-10s subscribed %" PRIu64 " failed %" PRIu64 " published %"
		    PRIu64 " acked %" PRIu64, secs(now - run.t0), phase_name[run.phase],
		    procs_connected(), procs_failed_subs(), st.published, pub_replies());
		return;
	}
	if (run.role == ROLE_CHILD) {
		say("[%6.1f s] %-10s subscribed %" PRIu64 " failed %" PRIu64 " in-flight %" PRIu64
		    " received %" PRIu64, secs(now - run.t0), phase_name[run.phase],
		    st.connected, st.failed, run.inflight, st.received);
		return;
	}
	say("[%6.1f s] %-10s subscribed %" PRIu64 " failed %" PRIu64 " in-flight %" PRIu64
	    " published %" PRIu64 " acked %" PRIu64 " received %" PRIu64, secs(now - run.t0),
	    phase_name[run.phase], st.connected, st.failed, run.inflight, st.published,
	    pub_replies(), st.received);
}
