/*
 * main.c - spout-bench: load generator and delivery checker for spout, and
 * for nchan and Pushpin to compare with. It opens many SSE subscribers,
 * publishes sequenced and timestamped events and checks every delivery:
 * loss, duplicates, order, latency. docs/spout-bench.md explains the options
 * and each figure; bench.h maps the modules.
 *
 * Why one thread per process: every figure comes from clock reads in one
 * place, with no locks. One process can use at most one core and about as
 * many sockets as the open-files limit, so --procs N forks N subscriber
 * processes and merges their results exactly (procs.h).
 *
 * This file: set-up, the event loop, and tear-down.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench.h"
#include "procs.h"
#include "pub.h"
#include "sub.h"

struct stats st;
struct run run;
struct hist lat;

char **topic_name;
uint32_t *topic_len;
uint64_t *topic_seq;
uint64_t *topic_err;
uint64_t *topic_nsubs;
uint64_t *topic_uniq;

char rbuf[RBUF_SIZE];
volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: epoll_wait must return EINTR so the loop sees it. */
	if (sigaction(SIGINT, &sa, NULL) == -1 || sigaction(SIGTERM, &sa, NULL) == -1)
		die("sigaction: %s", strerror(errno));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		die("sigaction: %s", strerror(errno));
}

static void setup_topics(void)
{
	topic_name = xcalloc(opt.topics, sizeof *topic_name);
	topic_len = xcalloc(opt.topics, sizeof *topic_len);
	topic_seq = xcalloc(opt.topics, sizeof *topic_seq);
	topic_err = xcalloc(opt.topics, sizeof *topic_err);
	topic_nsubs = xcalloc(opt.topics, sizeof *topic_nsubs);
	topic_uniq = xcalloc(opt.topics, sizeof *topic_uniq);
	for (unsigned long t = 0; t < opt.topics; t++) {
		int n = asprintf(&topic_name[t], "%s.%lu", opt.prefix, t);
		if (n == -1)
			die("out of memory");
		topic_len[t] = (uint32_t)n;
	}
}

/* This process's share of the scenario: everything for a single process,
 * an equal share for a child, no subscribers for a parent. */
static void setup_share(void)
{
	uint32_t n = run.nprocs, k = run.proc;   /* 1 and 0 for a single process */

	if (run.role == ROLE_PARENT)
		return;
	run.my_subs = share_of(opt.subs, n, k);
	run.my_slow = share_of(opt.slow, n, k);
	run.concurrency = share_of(opt.concurrency, n, k);
	if (run.concurrency == 0)
		run.concurrency = 1;
	src_take_share(k, n);
	subs_setup();
}

static void setup_loop(void)
{
	run.ep = epoll_create1(EPOLL_CLOEXEC);
	if (run.ep == -1)
		die("epoll_create1: %s", strerror(errno));
	run.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (run.tfd == -1)
		die("timerfd_create: %s", strerror(errno));
	ep_ctl(EPOLL_CTL_ADD, run.tfd, EPOLLIN, TAG_TIMER);
	procs_register();
}

static void free_all(void)
{
	subs_free();
	pub_release();
	for (unsigned long t = 0; t < opt.topics; t++)
		free(topic_name[t]);
	free(topic_name);
	free(topic_len);
	free(topic_seq);
	free(topic_err);
	free(topic_nsubs);
	free(topic_uniq);
	free(src);
	free(src_len);
	(void)close(run.tfd);
	(void)close(run.ep);
}

static void dispatch(const struct epoll_event *e)
{
	uint32_t idx = (uint32_t)e->data.u64;
	uint32_t gen = (uint32_t)(e->data.u64 >> 32);

	if (idx == TAG_TIMER) {
		uint64_t ticks;
		/* Only the wakeup matters; pub_pump reads the clock itself. */
		if (read(run.tfd, &ticks, sizeof ticks) == -1 && errno != EAGAIN)
			die("timerfd read: %s", strerror(errno));
		return;
	}
	if (idx == TAG_PUB) {
		pub_event(0, gen, e->events);
		return;
	}
	if (idx == TAG_CHAN) {
		procs_event(idx, e->events);
		return;
	}
	if (idx >= TAG_HTTP_PUB) {
		pub_event(idx - TAG_HTTP_PUB, gen, e->events);
		return;
	}
	if (idx >= TAG_KID) {
		procs_event(idx - TAG_KID, e->events);
		return;
	}
	if (idx >= nslots)
		return;
	struct sub *s = &subs[idx];
	/* Closed (and maybe reopened) earlier in this batch. */
	if (s->gen != gen || s->fd == -1)
		return;
	/* Errors and hangups show up in the read and write paths. */
	uint32_t ev = e->events;
	if (ev & (EPOLLERR | EPOLLHUP))
		ev |= EPOLLIN | EPOLLOUT;
	sub_event(s, ev);
}

static void loop(void)
{
	static struct epoll_event evs[MAX_EVENTS];

	for (;;) {
		int64_t now = now_ns();

		if (!run.stopped && (stop_signal || now >= run.hard_deadline)) {
			run.stopped = stop_signal ? "signal" : "--max-seconds";
			run.stopped_phase = run.phase;
			phase_stop(now);
		}
		phase_step(now);
		if (run.phase == PH_REPORT)
			break;
		phase_progress(now);

		int n = epoll_wait(run.ep, evs, MAX_EVENTS, 10);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			dispatch(&evs[i]);
			if ((i + 1) % PUMP_EVERY == 0 && run.phase == PH_PUBLISH)
				pub_pump(now_ns());
		}
		subs_launch();
		pub_pump(now_ns());
	}
}

int main(int argc, char **argv)
{
	parse_options(argc, argv);
	procs_plan();
	setup_signals();
	setup_topics();

	/* Before the fork: every process measures from the same start, and
	 * payloads sent before it are known to be from an earlier run. */
	run.cpu0 = cpu_now();
	run.t0 = now_ns();
	run.hard_deadline = run.t0 + (int64_t)(opt.max_seconds * (double)NS_PER_S);
	run.connect_deadline = run.t0 + (int64_t)opt.connect_timeout_ms * NS_PER_MS;
	run.last_progress = run.last_scan = run.t0;

	procs_spawn();
	setup_share();
	setup_loop();
	if (opt.churn)
		run.phase = run.role == ROLE_PARENT ? PH_COLLECT : PH_CHURN;
	else
		run.phase = PH_CONNECT;
	if (run.role != ROLE_CHILD && !opt.churn)
		pub_open();
	subs_launch();

	loop();
	run.t_end = now_ns();

	if (run.role == ROLE_CHILD) {
		report_compute_lost();
		procs_child_result();
		free_all();
		fflush(stderr);
		_exit(0);
	}
	if (run.role == ROLE_PARENT)
		procs_reap();
	report_compute_lost();
	report_print();
	int rc = report_exit_status();
	free_all();
	return rc;
}
