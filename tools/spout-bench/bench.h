/*
 * bench.h - state shared by the modules of spout-bench: options, run
 * counters, phases, topics, and small helpers.
 *
 * Threading: each process of spout-bench has one thread and one epoll loop,
 * and every global here belongs to that thread. With --procs N >= 2 the
 * parent and its children each hold their own copy (after fork) and talk
 * only through the messages of procs.c.
 *
 * Module map (docs/spout-bench.md has the user's view):
 *   main.c      set-up and the event loop
 *   phase.c     phase transitions (connect, publish, drain, ...)
 *   opts.c      command line
 *   util.c      clock, errors, allocation, epoll
 *   hist.c      latency histogram
 *   http.c      response heads and the chunked decoder
 *   sub.c       subscriber connections
 *   sse.c       SSE parsing and the sequence check
 *   pub.c       pacing and publish accounting, over one adapter:
 *   pub_spout.c   spout's line protocol
 *   pub_http.c    HTTP POST publishers (nchan, Pushpin)
 *   procs.c     subscriber processes and merging their results
 *   chan.c        their message channels
 *   report.c    figures, text and JSON report
 */
#ifndef SPOUT_BENCH_H
#define SPOUT_BENCH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "hist.h"

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL

#define RBUF_SIZE (64 * 1024)   /* one read() per readable event */
#define HEAD_MAX 8192           /* response head larger than this: failure */
#define MAX_EVENTS 512          /* epoll_wait batch */
#define PUMP_EVERY 64           /* events handled between two pacing checks */
#define FD_MARGIN 64            /* fds besides sockets: stdio, epoll, timer, pub */
#define SIZE_MAX_OPT (1u << 20) /* --size upper bound */
#define SRC_MAX 4096            /* --src-addrs entries */
#define TOPIC_MAX 128           /* spout's topic length limit */
#define PATH_MAX_OPT 200        /* --sub-path / --pub-path length bound */
#define PUB_CONNS_MAX 1024      /* --pub-conns upper bound */
#define PROCS_MAX 64            /* --procs upper bound */

/*
 * epoll tags: data.u64 is (generation << 32) | index. Subscribers use their
 * slot index, below TAG_KID; the rest use fixed ranges above it. The
 * generation tells a stale event (fd closed earlier in the same batch) apart.
 */
#define TAG_TIMER UINT32_MAX
#define TAG_PUB (UINT32_MAX - 1)    /* spout publisher connection */
#define TAG_CHAN (UINT32_MAX - 2)   /* child: its channel to the parent */
#define TAG_HTTP_PUB 0xF0000000u    /* + HTTP publisher connection index */
#define TAG_KID 0xE0000000u         /* parent: + child index */

enum target { TARGET_SPOUT, TARGET_NCHAN, TARGET_PUSHPIN };

struct options {
	unsigned long subs, topics, slow, churn_cycles, window, concurrency;
	unsigned long pub_conns;   /* HTTP publisher connections */
	unsigned long procs;       /* 0 = auto (opts.c), then the resolved count */
	const char *prefix;
	double rate;               /* events/s over all topics; 0 = window mode */
	double duration_s;
	unsigned long long events; /* 0: use duration_s */
	unsigned long size;
	enum target target;
	const char *target_name;
	const char *http_addr, *pub_addr, *src_spec;
	const char *sub_path, *pub_path;
	bool http10, churn, expect_no_loss, json, verbose, unordered_pub;
	unsigned long connect_timeout_ms, drain_ms, slow_check_ms, settle_ms;
	unsigned long slow_rcvbuf;
	double max_seconds;
};

/*
 * Phases, in order. A parent (--procs >= 2) goes CONNECT, SETTLE, PUBLISH,
 * DRAIN, COLLECT; a child CONNECT, READY, PUBLISH, DRAIN, SLOWCHK; a single
 * process CONNECT, SETTLE, PUBLISH, DRAIN, SLOWCHK. --churn is CHURN alone
 * (COLLECT in the parent). All end in REPORT.
 */
enum phase {
	PH_CONNECT, PH_SETTLE, PH_READY, PH_PUBLISH, PH_DRAIN, PH_SLOWCHK,
	PH_CHURN, PH_COLLECT, PH_REPORT,
};
extern const char *const phase_name[];

enum role {
	ROLE_SOLO,    /* one process: subscribes and publishes */
	ROLE_PARENT,  /* publishes; its children hold the subscribers */
	ROLE_CHILD,   /* holds a share of the subscribers; never publishes */
};

#define ERRNO_SLOTS 256
#define STATUS_SLOTS 1000

/*
 * Counters. Only uint64_t fields: procs.c merges two of these by adding
 * them up as an array, so a field of any other type would break the merge.
 */
struct stats {
	uint64_t connected, failed, slow_connected, slow_failed;
	uint64_t fail_timeout, fail_eof, fail_badhead;
	uint64_t fail_errno[ERRNO_SLOTS];
	uint64_t fail_status[STATUS_SLOTS];
	uint64_t dropped_eof, dropped_err, dropped_proto;
	uint64_t published, pub_ok, pub_err, pub_unexpected, pub_reconnects;
	uint64_t received, received_in_window, unique;
	uint64_t duplicated, out_of_order, lost, foreign, bad_payload, stale;
	uint64_t gaps_forgotten;
	uint64_t slow_closed, slow_open;
	uint64_t churn_done;
};

struct run {
	enum phase phase;
	enum role role;
	uint32_t proc, nprocs;    /* this child's index / subscriber processes */
	int ep, tfd;
	int64_t t0, t_end, hard_deadline, connect_deadline;
	int64_t t_first_connect, t_last_head;
	int64_t pub_start, pub_end, drain_deadline, slow_deadline;
	int64_t settle_end, collect_deadline;
	int64_t last_progress, last_scan, last_rx;
	uint64_t my_subs, my_slow;  /* checked / slow subscribers of this process */
	uint64_t concurrency;       /* this process's share of --connect-concurrency */
	uint64_t total, launched, inflight;
	uint64_t expected;
	uint64_t slow_pending;
	double tokens, burst;
	int64_t tok_last;
	double cpu0;                /* CPU seconds used before t0 */
	double cpu_kids;            /* parent: CPU seconds of its children */
	double cpu_max_share;       /* parent: highest CPU share of one child */
	bool timer_armed, pub_failed, pub_dead, got_final;
	uint32_t procs_failed;      /* children that exited without a result */
	const char *stopped;        /* why the run was cut short, or NULL */
	enum phase stopped_phase;   /* the phase it was cut short in */
};

extern struct options opt;
extern struct stats st;
extern struct run run;
extern struct hist lat;

/* Topics: <prefix>.<t> for t < opt.topics. */
extern char **topic_name;
extern uint32_t *topic_len;
extern uint64_t *topic_seq;     /* last sequence published per topic */
extern uint64_t *topic_err;     /* rejected publishes per topic */
extern uint64_t *topic_nsubs;   /* established checked subscribers per topic */
extern uint64_t *topic_uniq;    /* distinct deliveries per topic, at the end */

extern struct sockaddr_storage http_sa, pub_sa;
extern socklen_t http_salen, pub_salen;
extern struct sockaddr_storage *src;   /* --src-addrs, this process's share */
extern socklen_t *src_len;
extern uint32_t nsrc;

extern char rbuf[RBUF_SIZE];    /* scratch for every read() */
extern volatile sig_atomic_t stop_signal;
extern const char *prog;        /* "spout-bench", or "spout-bench[k]" in child k */

/* util.c */
int64_t now_ns(void);
double cpu_now(void);
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
const char *errname(int err);
size_t u64_dec(char *out, uint64_t v);
double secs(int64_t ns);
double per_s(uint64_t n, int64_t span_ns);
void ep_ctl(int op, int fd, uint32_t events, uint64_t tag);
uint64_t share_of(uint64_t n, uint32_t parts, uint32_t k);

/* opts.c */
void parse_options(int argc, char **argv);
void src_take_share(uint32_t k, uint32_t parts);

/* phase.c */
void phase_step(int64_t now);
void phase_end_publish(int64_t now);
void phase_progress(int64_t now);
void phase_stop(int64_t now);

/* report.c */
void report_compute_lost(void);
void report_print(void);
int report_exit_status(void);

#endif
