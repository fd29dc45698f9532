/*
 * test_ev.c - the readiness loop contract (include/spout/ev.h), run once
 * per backend: suite ev_epoll and suite ev_uring run the same bodies. The
 * uring cases skip (cr_skip_test) only when sp_ev_set_backend(SP_EV_URING)
 * says -ENOTSUP: a build without liburing, or a kernel that refuses it.
 *
 * Threading: single-threaded; Criterion forks one process per test, so
 * each test picks its backend before opening its loop, as main does.
 *
 * Sockets are AF_UNIX stream pairs, non-blocking: s[0] is registered, s[1]
 * plays the peer.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "spout/ev.h"
#include "sanitizers.h"

#define MAXEV 16

static void use_backend(enum sp_ev_backend b)
{
	int rc = sp_ev_set_backend(b);

	if (b == SP_EV_URING && rc == -ENOTSUP)
		cr_skip_test("io_uring backend unavailable (not built or kernel refuses it)");
	cr_assert_eq(rc, 0, "sp_ev_set_backend(%d) = %d", (int)b, rc);
}

/* Run body t_<name> under both backends. */
#define EV_TEST(name)                                                        \
	static void t_##name(void);                                          \
	Test(ev_epoll, name, .timeout = 10)                                  \
	{                                                                    \
		use_backend(SP_EV_EPOLL);                                    \
		cr_assert_str_eq(sp_ev_backend_name(), "epoll");             \
		t_##name();                                                  \
	}                                                                    \
	Test(ev_uring, name, .timeout = 10)                                  \
	{                                                                    \
		use_backend(SP_EV_URING);                                    \
		cr_assert_str_eq(sp_ev_backend_name(), "uring");             \
		t_##name();                                                  \
	}                                                                    \
	static void t_##name(void)

static void pair(int s[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
				0, s), 0, "socketpair: %s", strerror(errno));
}

static void put(int fd, const char *s)
{
	ssize_t n = send(fd, s, strlen(s), MSG_NOSIGNAL);
	cr_assert_eq(n, (ssize_t)strlen(s), "send: %s", strerror(errno));
}

static void open_ev(struct sp_ev *ev)
{
	memset(ev, 0, sizeof(*ev));
	cr_assert_eq(sp_ev_init(ev), 0);
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Wait, then check no event carries <banned> (NULL: no check). */
static int wait_ev(struct sp_ev *ev, struct sp_ev_event *out, int max, int ms,
		   const void *banned)
{
	int n = sp_ev_wait(ev, out, max, ms);

	cr_assert_geq(n, 0, "sp_ev_wait = %d", n);
	cr_assert_leq(n, max);
	for (int i = 0; banned != NULL && i < n; i++)
		cr_assert_neq(out[i].ptr, banned, "stale ptr reported (event %d, mask %#x)",
			      i, out[i].events);
	return n;
}

static int tag_a, tag_b, tag_c;

EV_TEST(read_event)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	int s[2];

	open_ev(&ev);
	pair(s);
	cr_assert_eq(sp_ev_add(&ev, s[0], SP_EV_READ, &tag_a), 0);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 0, NULL), 0, "READ without data");
	put(s[1], "hello");
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, NULL), 1);
	cr_assert_eq(out[0].ptr, &tag_a);
	cr_assert(out[0].events & SP_EV_READ);
	cr_assert_not(out[0].events & SP_EV_HUP);
	sp_ev_close(&ev);
	close(s[0]);
	close(s[1]);
}

EV_TEST(edge_triggered)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	char buf[16];
	int s[2];

	open_ev(&ev);
	pair(s);
	cr_assert_eq(sp_ev_add(&ev, s[0], SP_EV_READ, &tag_a), 0);
	put(s[1], "ab");
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, NULL), 1);
	/* Data still unread, but nothing new: an edge, not a level. */
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 50, NULL), 0);
	cr_assert_eq(read(s[0], buf, 1), 1);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 50, NULL), 0);
	put(s[1], "c");
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, NULL), 1);
	cr_assert_eq(out[0].ptr, &tag_a);
	cr_assert(out[0].events & SP_EV_READ);
	cr_assert_eq(read(s[0], buf, sizeof(buf)), 2);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 50, NULL), 0);
	sp_ev_close(&ev);
	close(s[0]);
	close(s[1]);
}

EV_TEST(write_ready)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	int s[2];

	open_ev(&ev);
	pair(s);
	cr_assert_eq(sp_ev_add(&ev, s[0], SP_EV_WRITE, &tag_a), 0);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, NULL), 1);
	cr_assert_eq(out[0].ptr, &tag_a);
	cr_assert(out[0].events & SP_EV_WRITE);
	cr_assert_not(out[0].events & SP_EV_READ, "only WRITE was asked for");
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 50, NULL), 0, "still writable: no new edge");
	sp_ev_close(&ev);
	close(s[0]);
	close(s[1]);
}

EV_TEST(peer_close_is_hup)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	int s[2];

	open_ev(&ev);
	pair(s);
	cr_assert_eq(sp_ev_add(&ev, s[0], SP_EV_READ, &tag_a), 0);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 0, NULL), 0);
	close(s[1]);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, NULL), 1);
	cr_assert_eq(out[0].ptr, &tag_a);
	cr_assert_eq(out[0].events & (SP_EV_HUP | SP_EV_READ | SP_EV_WRITE),
		     SP_EV_HUP | SP_EV_READ | SP_EV_WRITE, "events %#x", out[0].events);
	sp_ev_close(&ev);
	close(s[0]);
}

/* Several wakeups of one registration before a wait: one event. */
EV_TEST(one_event_per_fd)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	int s[2];

	open_ev(&ev);
	pair(s);
	cr_assert_eq(sp_ev_add(&ev, s[0], SP_EV_READ | SP_EV_WRITE, &tag_a), 0);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, NULL), 1);   /* writable */
	put(s[1], "x");
	put(s[1], "y");
	put(s[1], "z");
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, NULL), 1);
	cr_assert_eq(out[0].ptr, &tag_a);
	cr_assert(out[0].events & SP_EV_READ);
	sp_ev_close(&ev);
	close(s[0]);
	close(s[1]);
}

/* The use-after-free trap: the old registration's readiness is already
 * pending (or becomes so after close: io_uring pins the file until its
 * remove is submitted) when it is deleted, closed, and its fd number is
 * registered again with a new ptr. The old ptr must never come back. */
EV_TEST(del_close_reuse_no_stale_ptr)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	char buf[64];

	open_ev(&ev);
	for (int round = 0; round < 200; round++) {
		int a[2], b[2], c[2];
		pair(a);
		pair(b);
		cr_assert_eq(sp_ev_add(&ev, a[0], SP_EV_READ, &tag_a), 0);
		cr_assert_eq(sp_ev_add(&ev, b[0], SP_EV_READ, &tag_b), 0);
		cr_assert_eq(wait_ev(&ev, out, MAXEV, 0, NULL), 0);
		put(a[1], "a");
		put(b[1], "b");
		/* Take one of the two; the other stays pending in the loop. */
		cr_assert_eq(wait_ev(&ev, out, 1, 1000, NULL), 1);
		void *gone = out[0].ptr == &tag_a ? (void *)&tag_b : (void *)&tag_a;
		int *victim = gone == &tag_a ? a : b;
		int *keep = gone == &tag_a ? b : a;
		int old = victim[0];

		cr_assert_eq(sp_ev_del(&ev, old), 0);
		close(old);
		/* More wakeups for the deleted, closed (maybe pinned) socket. */
		send(victim[1], "late", 4, MSG_NOSIGNAL);
		pair(c);
		if (c[0] != old) {
			cr_assert_eq(dup2(c[0], old), old);
			close(c[0]);
			c[0] = old;
		}
		cr_assert_eq(sp_ev_add(&ev, c[0], SP_EV_READ, &tag_c), 0);
		/* Nothing written to c yet: no event at all, neither the old
		 * ptr nor the old socket's readiness under the new ptr. */
		cr_assert_eq(wait_ev(&ev, out, MAXEV, 0, gone), 0);
		cr_assert_eq(wait_ev(&ev, out, MAXEV, round % 8 == 0 ? 20 : 0, gone), 0);
		put(c[1], "c");
		int seen_c = 0;
		for (int tries = 0; tries < 10 && !seen_c; tries++) {
			int n = wait_ev(&ev, out, MAXEV, 1000, gone);
			for (int i = 0; i < n; i++)
				if (out[i].ptr == &tag_c)
					seen_c = 1;
		}
		cr_assert(seen_c, "new registration on the reused fd not reported");
		cr_assert_eq(sp_ev_del(&ev, c[0]), 0);
		cr_assert_eq(sp_ev_del(&ev, keep[0]), 0);
		cr_assert_eq(sp_ev_del(&ev, c[0]), -ENOENT, "double del");
		while (read(keep[0], buf, sizeof(buf)) > 0)
			;
		close(c[0]);
		close(c[1]);
		close(keep[0]);
		close(keep[1]);
		close(victim[1]);
		wait_ev(&ev, out, MAXEV, 0, gone);
	}
	sp_ev_close(&ev);
}

/* Deleted and closed, fd number left free: the peer keeps writing (io_uring
 * still holds the file until the remove goes out), nothing is reported. */
EV_TEST(del_close_then_silence)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	int s[2];

	open_ev(&ev);
	for (int round = 0; round < 50; round++) {
		pair(s);
		cr_assert_eq(sp_ev_add(&ev, s[0], SP_EV_READ | SP_EV_WRITE, &tag_a), 0);
		cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, NULL), 1);   /* writable */
		put(s[1], "pending");       /* an event now waits in the loop */
		cr_assert_eq(sp_ev_del(&ev, s[0]), 0);
		close(s[0]);
		send(s[1], "late", 4, MSG_NOSIGNAL);
		cr_assert_eq(wait_ev(&ev, out, MAXEV, round % 10 == 0 ? 20 : 0, &tag_a), 0);
		/* ...but that wait released it: the peer sees it gone (a reset,
		 * as it was closed with unread data), not EAGAIN. */
		char c;
		ssize_t r = read(s[1], &c, 1);
		cr_assert(r == 0 || (r == -1 && errno == ECONNRESET),
			  "deleted socket still open (read %zd: %s)", r, strerror(errno));
		close(s[1]);
		cr_assert_eq(wait_ev(&ev, out, MAXEV, 0, &tag_a), 0);
	}
	sp_ev_close(&ev);
}

/* More wakeups than the io_uring backend's CQ holds (4096) between two
 * waits: the kernel ends the multishot poll (a CQE without F_MORE) and the
 * backend must re-arm it, or the registration goes silent. */
EV_TEST(survives_many_wakeups_between_waits)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	char c;
	int s[2];

	open_ev(&ev);
	pair(s);
	cr_assert_eq(sp_ev_add(&ev, s[0], SP_EV_READ, &tag_a), 0);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 0, NULL), 0);
	for (int i = 0; i < 6000; i++) {
		put(s[1], "x");
		cr_assert_eq(read(s[0], &c, 1), 1);
	}
	for (int i = 0; i < 10 && wait_ev(&ev, out, MAXEV, 20, NULL) > 0; i++)
		cr_assert_eq(out[0].ptr, &tag_a);
	put(s[1], "y");
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, NULL), 1, "registration went silent");
	cr_assert_eq(out[0].ptr, &tag_a);
	cr_assert(out[0].events & SP_EV_READ);
	sp_ev_close(&ev);
	close(s[0]);
	close(s[1]);
}

EV_TEST(timeout_zero_returns_at_once)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	struct timespec t0;
	int s[2];

	open_ev(&ev);
	pair(s);
	cr_assert_eq(sp_ev_add(&ev, s[0], SP_EV_READ, &tag_a), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(wait_ev(&ev, out, MAXEV, 0, NULL), 0);
	cr_assert_lt(elapsed_ms(&t0), 100, "100 polls took %ld ms", elapsed_ms(&t0));
	sp_ev_close(&ev);
	close(s[0]);
	close(s[1]);
}

EV_TEST(timeout_ms_waits)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	struct timespec t0;
	int s[2];

	open_ev(&ev);
	pair(s);
	cr_assert_eq(sp_ev_add(&ev, s[0], SP_EV_READ, &tag_a), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 100, NULL), 0);
	long ms = elapsed_ms(&t0);
	cr_assert(ms >= 90 && ms < 1000, "waited %ld ms for 100", ms);
	sp_ev_close(&ev);
	close(s[0]);
	close(s[1]);
}

static void on_alarm(int sig)
{
	(void)sig;
}

EV_TEST(eintr_is_zero)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	struct sigaction sa = { .sa_handler = on_alarm };   /* no SA_RESTART */
	struct itimerval it = { .it_value = { .tv_usec = 50000 } };

	open_ev(&ev);
	cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
	cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, -1, NULL), 0);
	sp_ev_close(&ev);
}

EV_TEST(mod_read_to_read_write)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	int s[2];

	open_ev(&ev);
	pair(s);
	cr_assert_eq(sp_ev_add(&ev, s[0], SP_EV_READ, &tag_a), 0);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 50, NULL), 0, "writable, but WRITE not asked");
	cr_assert_eq(sp_ev_mod(&ev, s[0], SP_EV_READ | SP_EV_WRITE, &tag_b), 0);
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, &tag_a), 1);
	cr_assert_eq(out[0].ptr, &tag_b);
	cr_assert(out[0].events & SP_EV_WRITE);
	put(s[1], "r");
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, &tag_a), 1);
	cr_assert_eq(out[0].ptr, &tag_b);
	cr_assert(out[0].events & SP_EV_READ);
	cr_assert_eq(sp_ev_mod(&ev, s[1], SP_EV_READ, &tag_c), -ENOENT, "mod unregistered");
	sp_ev_close(&ev);
	close(s[0]);
	close(s[1]);
}

EV_TEST(max_is_respected)
{
	struct sp_ev ev;
	struct sp_ev_event out[MAXEV];
	int s[3][2];
	int *tags[3] = { &tag_a, &tag_b, &tag_c };
	int seen[3] = { 0 };

	open_ev(&ev);
	for (int i = 0; i < 3; i++) {
		pair(s[i]);
		cr_assert_eq(sp_ev_add(&ev, s[i][0], SP_EV_READ, tags[i]), 0);
		put(s[i][1], "x");
	}
	cr_assert_eq(wait_ev(&ev, out, 2, 1000, NULL), 2);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 3; i++)
			seen[i] += out[k].ptr == tags[i];
	cr_assert_eq(wait_ev(&ev, out, MAXEV, 1000, NULL), 1);
	for (int i = 0; i < 3; i++)
		seen[i] += out[0].ptr == tags[i];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(seen[i], 1, "registration %d reported %d times", i, seen[i]);
	sp_ev_close(&ev);
	for (int i = 0; i < 3; i++) {
		close(s[i][0]);
		close(s[i][1]);
	}
}

EV_TEST(close_is_idempotent)
{
	struct sp_ev ev;
	int p[2];

	/* Make sure fd 0 is open, so closing it by mistake shows. */
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(dup2(p[0], 0), 0);
	memset(&ev, 0, sizeof(ev));
	sp_ev_close(&ev);       /* all zero: nothing to close (not fd 0) */
	cr_assert_neq(fcntl(0, F_GETFD), -1, "fd 0 was closed");
	open_ev(&ev);
	sp_ev_close(&ev);
	sp_ev_close(&ev);
	cr_assert_eq(sp_ev_add(&ev, 1, SP_EV_READ, &tag_a), -EBADF);
}

Test(ev, set_backend_rejects_unknown)
{
	cr_assert_eq(sp_ev_set_backend((enum sp_ev_backend)42), -EINVAL);
	cr_assert_str_eq(sp_ev_backend_name(), "epoll", "default unchanged");
}
