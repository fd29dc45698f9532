/*
 * procs.c - subscriber processes: how many, forking them, and their
 * messages (protocol in procs.h) over the channels of chan.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "chan.h"
#include "procs.h"

enum msg_type { MSG_CONNECTED = 1, MSG_START, MSG_END, MSG_FINAL, MSG_RESULT };

struct msg_connected { uint64_t connected, failed; };  /* + T x nsubs */
struct msg_start { int64_t pub_start; };
struct msg_end { int64_t pub_end, drain_deadline; };
struct msg_final { uint64_t stop; };                    /* + T x want */
struct msg_result {
	int64_t t_first_connect, t_last_head, last_rx;
	double cpu_s;
	uint64_t stopped;       /* 0, 1 --max-seconds, 2 signal */
	struct stats st;
	struct hist lat;
};                                                      /* + T x unique */

_Static_assert(sizeof(struct stats) % sizeof(uint64_t) == 0,
	       "struct stats must hold only uint64_t: it is merged as an array");

struct kid {
	pid_t pid;
	struct chan ch;
	bool connected, done, gone;
	uint64_t n_connected, n_failed;
};

static struct kid *kids;        /* parent: one per child */
static struct chan parent_ch = { .fd = -1 };   /* child: to the parent */

static size_t topics_bytes(void)
{
	return opt.topics * sizeof(uint64_t);
}

/* Raises the soft RLIMIT_NOFILE to the hard one; returns the soft limit. */
static uint64_t fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		die("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			say("setrlimit(RLIMIT_NOFILE, %llu): %s",
			    (unsigned long long)rl.rlim_max, strerror(errno));
		if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
			die("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	}
	return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}

/* Sockets process <k> of <n> holds at most. */
static uint64_t socks_of(uint32_t n, uint32_t k)
{
	if (opt.churn) {
		uint64_t conc = share_of(opt.concurrency, n, k);
		uint64_t cycles = share_of(opt.churn_cycles, n, k);
		return conc < cycles ? conc : cycles;
	}
	return share_of(opt.subs, n, k) + share_of(opt.slow, n, k);
}

void procs_plan(void)
{
	uint64_t limit = fd_limit();
	/* The HTTP publishers' connections come on top of FD_MARGIN. */
	uint64_t extra = opt.target == TARGET_SPOUT ? 0 : opt.pub_conns;
	uint64_t cap = limit > FD_MARGIN ? limit - FD_MARGIN : 1;
	uint32_t n = (uint32_t)opt.procs;

	if (n == 0) {
		uint64_t socks = socks_of(1, 0);
		n = 1;
		if (socks + extra > cap) {
			uint64_t want = (socks + cap - 1) / cap;
			n = want < 2 ? 2 : (want > PROCS_MAX ? PROCS_MAX + 1 : (uint32_t)want);
		}
	}
	uint64_t need = socks_of(n, 0) + FD_MARGIN + (n == 1 ? extra : 0);
	if (n <= PROCS_MAX && need <= limit && (n == 1 || extra + n + FD_MARGIN <= limit)) {
		run.nprocs = n;
		opt.procs = n;
		return;
	}
	die("need %" PRIu64 " file descriptors per process (%" PRIu64 " sockets + %d spare) "
	    "but the open-files limit is %llu; use more processes (--procs, at most %d) "
	    "or raise the hard limit", need, need - FD_MARGIN, FD_MARGIN,
	    (unsigned long long)limit, PROCS_MAX);
}

/* ---- forking ---------------------------------------------------------- */

static void become_child(uint32_t k, int fd, pid_t parent)
{
	static char name[32];

	/* Die with the parent, even if it is killed outright. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		_exit(2);
	for (uint32_t i = 0; i < k; i++)
		chan_close(&kids[i].ch);
	free(kids);
	kids = NULL;
	snprintf(name, sizeof name, "spout-bench[%u]", k);
	prog = name;
	run.role = ROLE_CHILD;
	run.proc = k;
	parent_ch.fd = fd;
	parent_ch.tag = TAG_CHAN;
	/* The parent stops everyone at --max-seconds; this is the fallback
	 * if its word never comes. */
	run.hard_deadline += 2 * NS_PER_S;
	run.cpu0 = cpu_now();
}

void procs_spawn(void)
{
	pid_t parent = getpid();

	if (run.nprocs < 2)
		return;
	kids = xcalloc(run.nprocs, sizeof *kids);
	/* Nothing buffered may be written twice, by parent and child. */
	fflush(stdout);
	fflush(stderr);
	for (uint32_t k = 0; k < run.nprocs; k++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1)
			die("socketpair: %s", strerror(errno));
		pid_t pid = fork();
		if (pid == -1)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			(void)close(sv[0]);
			become_child(k, sv[1], parent);
			return;
		}
		(void)close(sv[1]);
		kids[k].pid = pid;
		kids[k].ch.fd = sv[0];
		kids[k].ch.tag = TAG_KID + k;
	}
	run.role = ROLE_PARENT;
	if (opt.verbose)
		say("%u subscriber processes started", run.nprocs);
}

void procs_register(void)
{
	if (run.role == ROLE_CHILD)
		ep_ctl(EPOLL_CTL_ADD, parent_ch.fd, EPOLLIN, TAG_CHAN);
	for (uint32_t k = 0; kids && k < run.nprocs; k++)
		ep_ctl(EPOLL_CTL_ADD, kids[k].ch.fd, EPOLLIN, kids[k].ch.tag);
}

/* ---- parent side ------------------------------------------------------ */

static void kid_gone(struct kid *kd)
{
	if (!kd->done && !kd->gone) {
		run.procs_failed++;
		say("subscriber process %u (pid %d) ended without its result",
		    (unsigned)(kd - kids), (int)kd->pid);
	}
	kd->gone = true;
	chan_close(&kd->ch);
}

static void merge_result(struct kid *kd, const struct msg_result *r, const uint64_t *uniq)
{
	uint64_t *to = (uint64_t *)&st;
	const uint64_t *from = (const uint64_t *)&r->st;

	for (size_t i = 0; i < sizeof st / sizeof *to; i++)
		to[i] += from[i];
	hist_merge(&lat, &r->lat);
	for (unsigned long t = 0; t < opt.topics; t++)
		topic_uniq[t] += uniq[t];
	if (r->t_first_connect && (!run.t_first_connect || r->t_first_connect < run.t_first_connect))
		run.t_first_connect = r->t_first_connect;
	if (r->t_last_head > run.t_last_head)
		run.t_last_head = r->t_last_head;
	if (r->last_rx > run.last_rx)
		run.last_rx = r->last_rx;
	double share = r->cpu_s / secs(now_ns() - run.t0);
	if (share > run.cpu_max_share)
		run.cpu_max_share = share;
	if (!run.stopped && r->stopped) {
		run.stopped = r->stopped == 1 ? "--max-seconds" : "signal";
		run.stopped_phase = run.phase;
	}
	kd->done = true;
}

static void parent_msg(void *who, uint32_t type, const char *p, size_t len)
{
	struct kid *kd = who;

	if (type == MSG_CONNECTED && len == sizeof(struct msg_connected) + topics_bytes()) {
		struct msg_connected m;
		const uint64_t *nsubs = (const uint64_t *)(p + sizeof m);

		memcpy(&m, p, sizeof m);
		kd->n_connected = m.connected;
		kd->n_failed = m.failed;
		for (unsigned long t = 0; t < opt.topics; t++)
			topic_nsubs[t] += nsubs[t];
		kd->connected = true;
	} else if (type == MSG_RESULT && len == sizeof(struct msg_result) + topics_bytes()) {
		struct msg_result *r = xcalloc(1, sizeof *r);   /* 58 KiB: not on the stack */

		memcpy(r, p, sizeof *r);
		merge_result(kd, r, (const uint64_t *)(p + sizeof *r));
		free(r);
		chan_close(&kd->ch);
	} else {
		say("bad message %u (%zu bytes) from subscriber process %u", type, len,
		    (unsigned)(kd - kids));
		kid_gone(kd);
	}
}

bool procs_all_connected(void)
{
	for (uint32_t k = 0; k < run.nprocs; k++)
		if (!kids[k].connected && !kids[k].gone && !kids[k].done)
			return false;
	return true;
}

bool procs_all_done(void)
{
	for (uint32_t k = 0; k < run.nprocs; k++)
		if (!kids[k].done && !kids[k].gone)
			return false;
	return true;
}

uint64_t procs_connected(void)
{
	uint64_t n = 0;

	for (uint32_t k = 0; kids && k < run.nprocs; k++)
		n += kids[k].n_connected;
	return n;
}

uint64_t procs_failed_subs(void)
{
	uint64_t n = 0;

	for (uint32_t k = 0; kids && k < run.nprocs; k++)
		n += kids[k].n_failed;
	return n;
}

/* Queues the same message for every child still running, and writes. */
static void broadcast(uint32_t type, const void *m, size_t mlen, const uint64_t *arr)
{
	for (uint32_t k = 0; k < run.nprocs; k++) {
		struct kid *kd = &kids[k];

		if (kd->ch.fd == -1)
			continue;
		chan_begin(&kd->ch, type, mlen + (arr ? topics_bytes() : 0));
		chan_put(&kd->ch, m, mlen);
		if (arr)
			chan_put(&kd->ch, arr, topics_bytes());
		if (chan_flush(&kd->ch) == -1)
			kid_gone(kd);
	}
}

void procs_send_start(int64_t pub_start)
{
	struct msg_start m = { pub_start };

	broadcast(MSG_START, &m, sizeof m, NULL);
}

void procs_send_end(int64_t pub_end, int64_t drain_deadline)
{
	struct msg_end m = { pub_end, drain_deadline };

	broadcast(MSG_END, &m, sizeof m, NULL);
}

/* Tells the children what to expect per topic: every event published and
 * not rejected. With <stop>, they report at once instead. */
void procs_send_final(bool stop)
{
	struct msg_final m = { stop };
	uint64_t *want = xcalloc(opt.topics, sizeof *want);

	for (unsigned long t = 0; t < opt.topics; t++)
		want[t] = topic_seq[t] - topic_err[t];
	broadcast(MSG_FINAL, &m, sizeof m, want);
	free(want);
}

/* Waits a little for every child to exit, then kills the rest (by pid: they
 * are ours), and adds the children's CPU time to the run's. */
void procs_reap(void)
{
	int64_t deadline = now_ns() + NS_PER_S;

	for (uint32_t k = 0; k < run.nprocs; k++) {
		int status;
		pid_t r;

		while ((r = waitpid(kids[k].pid, &status, WNOHANG)) == 0 && now_ns() < deadline)
			usleep(5000);
		if (r == 0) {
			(void)kill(kids[k].pid, SIGKILL);
			(void)waitpid(kids[k].pid, &status, 0);
		}
		chan_close(&kids[k].ch);
	}
	struct rusage ru;
	if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
		run.cpu_kids = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	free(kids);
	kids = NULL;
}

/* ---- child side ------------------------------------------------------- */

static void child_msg(void *who, uint32_t type, const char *p, size_t len)
{
	(void)who;
	if (type == MSG_START && len == sizeof(struct msg_start)) {
		struct msg_start m;

		memcpy(&m, p, sizeof m);
		run.pub_start = m.pub_start;
		if (run.phase == PH_READY)
			run.phase = PH_PUBLISH;
	} else if (type == MSG_END && len == sizeof(struct msg_end)) {
		struct msg_end m;

		memcpy(&m, p, sizeof m);
		run.pub_end = m.pub_end;
		run.drain_deadline = m.drain_deadline;
		if (run.phase == PH_READY || run.phase == PH_PUBLISH)
			run.phase = PH_DRAIN;
	} else if (type == MSG_FINAL && len == sizeof(struct msg_final) + topics_bytes()) {
		struct msg_final m;
		const uint64_t *want = (const uint64_t *)(p + sizeof m);

		memcpy(&m, p, sizeof m);
		if (m.stop) {
			phase_stop(now_ns());
			return;
		}
		run.expected = 0;
		for (unsigned long t = 0; t < opt.topics; t++)
			run.expected += topic_nsubs[t] * want[t];
		run.got_final = true;
	} else {
		say("bad message %u (%zu bytes) from the parent", type, len);
		phase_stop(now_ns());
	}
}

void procs_event(uint32_t idx, uint32_t events)
{
	struct chan *c;
	chan_handler *handle;
	void *who;

	if (idx == TAG_CHAN) {
		c = &parent_ch;
		handle = child_msg;
		who = NULL;
	} else {
		if (!kids || idx >= run.nprocs)
			return;
		c = &kids[idx].ch;
		handle = parent_msg;
		who = &kids[idx];
	}
	if (c->fd == -1)
		return;
	if ((events & EPOLLOUT) && chan_flush(c) == -1)
		events |= EPOLLHUP;
	if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || chan_read(c, handle, who) == 0)
		return;
	if (who) {
		kid_gone(who);
	} else {
		/* The parent is gone: nobody to report to. */
		chan_close(c);
		phase_stop(now_ns());
	}
}

void procs_child_connected(void)
{
	struct msg_connected m = { st.connected, st.failed };

	chan_begin(&parent_ch, MSG_CONNECTED, sizeof m + topics_bytes());
	chan_put(&parent_ch, &m, sizeof m);
	chan_put(&parent_ch, topic_nsubs, topics_bytes());
	if (chan_flush(&parent_ch) == -1)
		phase_stop(now_ns());
}

/* Sends this child's figures, waiting (bounded) until they are written:
 * the child exits right after. */
void procs_child_result(void)
{
	struct msg_result *r = xcalloc(1, sizeof *r);

	r->t_first_connect = run.t_first_connect;
	r->t_last_head = run.t_last_head;
	r->last_rx = run.last_rx;
	r->cpu_s = cpu_now() - run.cpu0;
	r->stopped = !run.stopped ? 0 : strcmp(run.stopped, "signal") == 0 ? 2 : 1;
	r->st = st;
	r->lat = lat;
	chan_begin(&parent_ch, MSG_RESULT, sizeof *r + topics_bytes());
	chan_put(&parent_ch, r, sizeof *r);
	chan_put(&parent_ch, topic_uniq, topics_bytes());
	free(r);

	int64_t deadline = now_ns() + 2 * NS_PER_S;
	while (parent_ch.fd != -1 && parent_ch.out_len > 0 && now_ns() < deadline) {
		struct pollfd pfd = { .fd = parent_ch.fd, .events = POLLOUT };

		if (chan_flush(&parent_ch) == -1)
			break;
		if (parent_ch.out_len > 0)
			(void)poll(&pfd, 1, 100);
	}
	chan_close(&parent_ch);
}
