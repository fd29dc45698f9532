/*
 * ev_uring.c - io_uring backend of the readiness loop (see ev.h; dispatched
 * by ev.c through sp_ev_uring_ops). Always compiled so the Makefile's
 * wildcard works; the body exists only with SP_HAVE_URING (liburing found,
 * URING=0 not given).
 *
 * Threading: the owning thread of each struct sp_ev only;
 * sp_ev_uring_probe runs on the main thread before any other exists.
 *
 * Mapping ev.h onto io_uring
 * --------------------------
 * Each registration is one multishot IORING_OP_POLL_ADD. The kernel holds
 * the request (and a reference to the file) and posts a CQE with
 * IORING_CQE_F_MORE on every wakeup that matches the mask; that is
 * wakeup-driven, i.e. edge-triggered like EPOLLET (EPOLLET is also put in
 * the mask: kernels >= 5.19 honour it and it is their default; older ones
 * ignore the bit). When the request is armed it checks the current state
 * once, like EPOLL_CTL_ADD/MOD do, so an fd that is already readable
 * reports at once. A CQE without F_MORE means the kernel ended the request
 * (CQ overflow, EPOLL_URING_WAKE, ...): it is re-armed if the fd is still
 * registered, unless the CQE was an error or a full hang-up (final; re-
 * arming would report it on every wait, i.e. level-triggered).
 *
 * SQEs (arm, remove) are only queued by add/mod/del and by the harvest;
 * sp_ev_wait submits them all with the wait, in one io_uring_enter.
 *
 * Stale CQEs (the use-after-free trap)
 * ------------------------------------
 * Callers free their object right after sp_ev_del + close, yet CQEs for
 * that registration may already sit in the CQ, be queued as task work, or
 * be posted before the POLL_REMOVE (submitted at the next wait) lands.
 * Closing the fd does not end the request either: it holds its own file
 * reference. So a CQE never carries a caller pointer. user_data is
 *
 *     63            32 31             0
 *    +----------------+----------------+
 *    |      gen       |       fd       |
 *    +----------------+----------------+
 *
 * and the caller's ptr lives in slots[fd], a table indexed by fd number.
 * Each arm bumps slots[fd].gen; del clears .active. A CQE is delivered only
 * if slots[fd] is active and its gen matches, and then with the ptr the
 * slot holds *now*. Everything else (deleted, modified, fd number reused
 * by a new registration, the -ECANCELED that the remove produces) is
 * dropped without touching any caller memory. Removes and liburing's
 * internal timeouts use user_data whose fd half is >= 0xfffffffe, beyond
 * any table, so they fall out of the same lookup. gen is 32 bits per fd:
 * a stale request dies within one loop iteration (its remove goes out with
 * the next wait), far before 2^32 re-registrations of one fd number.
 */
#ifdef SP_HAVE_URING

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "ev_internal.h"
#include "spout/log.h"

#define EV_SQ_ENTRIES 256       /* changes queued per iteration before a flush */
#define EV_CQ_ENTRIES 4096      /* ready registrations buffered per wait */
#define EV_SLOTS_MIN  64

#define UD_POLL(fd, gen) (((uint64_t)(gen) << 32) | (uint32_t)(fd))
#define UD_FD(ud)        ((uint32_t)(ud))
#define UD_GEN(ud)       ((uint32_t)((ud) >> 32))
#define UD_REMOVE        UINT64_C(0xfffffffe)   /* fd half beyond any table */

/* One fd number's registration. All zero = not registered. */
struct ev_slot {
	void *ptr;              /* the caller's, returned in events */
	uint32_t gen;           /* of the latest poll request armed */
	uint32_t events;        /* SP_EV_READ|WRITE asked for */
	uint32_t batch;         /* sp_ev_wait call that last reported it */
	int out_idx;            /* its index in that call's out[] */
	bool active;            /* between add and del */
	bool armed;             /* request <gen> may still be in the kernel */
	bool rearm;             /* re-arm failed (SQ full): retry next wait */
};

struct sp_ev_uring {
	struct io_uring ring;
	struct ev_slot *slots;  /* indexed by fd; NULL until the first add */
	uint32_t nslots;
	uint32_t batch;         /* sp_ev_wait calls, never 0 once waited */
	uint32_t nrearm;        /* slots with .rearm set */
	unsigned remove_flags;  /* IOSQE_CQE_SKIP_SUCCESS if the kernel has it */
};

/* An SQE, flushing a full SQ first. NULL only if the kernel took none. */
static struct io_uring_sqe *ev_uring_sqe(struct sp_ev_uring *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (sqe == NULL) {
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

/* Queue a multishot poll for slot <s> of <fd> under a new generation.
 * Returns 0 or -EBUSY (no SQE). */
static int ev_uring_arm(struct sp_ev_uring *u, int fd, struct ev_slot *s)
{
	struct io_uring_sqe *sqe = ev_uring_sqe(u);
	uint32_t mask = EPOLLET | EPOLLRDHUP;   /* ERR and HUP are implied */

	if (sqe == NULL)
		return -EBUSY;
	if (s->events & SP_EV_READ)
		mask |= EPOLLIN;
	if (s->events & SP_EV_WRITE)
		mask |= EPOLLOUT;
	s->gen++;
	io_uring_prep_poll_multishot(sqe, fd, mask);
	io_uring_sqe_set_data64(sqe, UD_POLL(fd, s->gen));
	s->armed = true;
	return 0;
}

/* Queue the removal of <fd>'s current request, if any. Its later CQEs are
 * already unreachable (gen or active changes first); this only frees the
 * kernel side and its file reference. Returns 0 or -EBUSY. */
static int ev_uring_disarm(struct sp_ev_uring *u, int fd, struct ev_slot *s)
{
	struct io_uring_sqe *sqe;

	if (s->rearm) {
		s->rearm = false;
		u->nrearm--;
	}
	if (!s->armed)
		return 0;
	s->armed = false;
	sqe = ev_uring_sqe(u);
	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_poll_remove(sqe, UD_POLL(fd, s->gen));
	sqe->flags |= u->remove_flags;
	io_uring_sqe_set_data64(sqe, UD_REMOVE);
	return 0;
}

static int ev_uring_grow(struct sp_ev_uring *u, int fd)
{
	uint32_t n = u->nslots ? u->nslots : EV_SLOTS_MIN;

	if ((uint32_t)fd < u->nslots)
		return 0;
	while (n <= (uint32_t)fd)
		n *= 2;         /* fd < INT_MAX, so n <= 2^31: no overflow */
	struct ev_slot *s = realloc(u->slots, (size_t)n * sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	memset(s + u->nslots, 0, (size_t)(n - u->nslots) * sizeof(*s));
	u->slots = s;
	u->nslots = n;
	return 0;
}

static struct ev_slot *ev_uring_slot(struct sp_ev_uring *u, int fd)
{
	if (fd < 0 || (uint32_t)fd >= u->nslots || !u->slots[fd].active)
		return NULL;
	return &u->slots[fd];
}

static int ev_uring_init(struct sp_ev *ev)
{
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE,
				     .cq_entries = EV_CQ_ENTRIES };
	struct sp_ev_uring *u = calloc(1, sizeof(*u));

	if (u == NULL)
		return -ENOMEM;
	int rc = io_uring_queue_init_params(EV_SQ_ENTRIES, &u->ring, &p);
	if (rc < 0) {
		free(u);
		return rc;
	}
	if (p.features & IORING_FEAT_CQE_SKIP)
		u->remove_flags = IOSQE_CQE_SKIP_SUCCESS;
	ev->_u.uring = u;
	return 0;
}

static void ev_uring_close(struct sp_ev *ev)
{
	struct sp_ev_uring *u = ev->_u.uring;

	/* Tearing the ring down cancels every request and drops the file
	 * references they hold; no CQE can reach anyone afterwards. */
	io_uring_queue_exit(&u->ring);
	free(u->slots);
	free(u);
	ev->_u.uring = NULL;
}

static int ev_uring_add(struct sp_ev *ev, int fd, uint32_t events, void *ptr)
{
	struct sp_ev_uring *u = ev->_u.uring;

	if (fd < 0)
		return -EBADF;
	int rc = ev_uring_grow(u, fd);
	if (rc != 0)
		return rc;
	struct ev_slot *s = &u->slots[fd];
	/* epoll forgets an fd when it is closed; we cannot see closes, so an
	 * add on a number still registered means the old fd was closed
	 * without sp_ev_del. Replace it: its CQEs die with the old gen. */
	if (s->active)
		ev_uring_disarm(u, fd, s);
	s->ptr = ptr;
	s->events = events;
	s->active = true;
	rc = ev_uring_arm(u, fd, s);
	if (rc != 0) {
		s->active = false;
		s->ptr = NULL;
	}
	return rc;
}

/* Like EPOLL_CTL_MOD: new mask and ptr, and the current state is checked
 * again (a new request is armed), so a ready fd reports once more. */
static int ev_uring_mod(struct sp_ev *ev, int fd, uint32_t events, void *ptr)
{
	struct sp_ev_uring *u = ev->_u.uring;
	struct ev_slot *s = ev_uring_slot(u, fd);

	if (s == NULL)
		return -ENOENT;
	ev_uring_disarm(u, fd, s);
	s->ptr = ptr;
	s->events = events;
	int rc = ev_uring_arm(u, fd, s);
	if (rc != 0) {
		s->active = false;
		s->ptr = NULL;
	}
	return rc;
}

/* The registration is gone when this returns, whatever it returns: a
 * -EBUSY only means the kernel-side request (and the file it pins) lives
 * on until sp_ev_close. */
static int ev_uring_del(struct sp_ev *ev, int fd)
{
	struct sp_ev_uring *u = ev->_u.uring;
	struct ev_slot *s = ev_uring_slot(u, fd);

	if (s == NULL)
		return -ENOENT;
	s->active = false;
	s->ptr = NULL;
	return ev_uring_disarm(u, fd, s);
}

/* Retry the re-arms the harvest could not queue (SQ full and the kernel
 * took nothing). Rare, so a table scan is fine. */
static void ev_uring_rearm_pending(struct sp_ev_uring *u)
{
	for (uint32_t fd = 0; fd < u->nslots && u->nrearm > 0; fd++) {
		struct ev_slot *s = &u->slots[fd];
		if (!s->rearm)
			continue;
		if (ev_uring_arm(u, (int)fd, s) != 0)
			return;
		s->rearm = false;
		u->nrearm--;
	}
}

static uint32_t ev_uring_events(int res)
{
	uint32_t e = (uint32_t)res, r = 0;

	if (res < 0)
		return SP_EV_HUP | SP_EV_READ | SP_EV_WRITE;
	if (e & EPOLLIN)
		r |= SP_EV_READ;
	if (e & EPOLLOUT)
		r |= SP_EV_WRITE;
	/* As in the epoll backend: errors go through the I/O path. */
	if (e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
		r |= SP_EV_HUP | SP_EV_READ | SP_EV_WRITE;
	return r;
}

/* Turn one CQE into (part of) an event in out[0..*n). */
static void ev_uring_cqe(struct sp_ev_uring *u, const struct io_uring_cqe *cqe,
			 struct sp_ev_event *out, int *n)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	uint32_t fd = UD_FD(ud);

	if (fd >= u->nslots)
		return;                 /* a remove's result, a liburing timeout */
	struct ev_slot *s = &u->slots[fd];
	if (!s->active || s->gen != UD_GEN(ud))
		return;                 /* stale: deleted, modified or reused */
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		s->armed = false;
		if (cqe->res >= 0 && !(cqe->res & (EPOLLERR | EPOLLHUP)) &&
		    ev_uring_arm(u, (int)fd, s) != 0) {
			s->rearm = true;
			u->nrearm++;
		}
	}
	uint32_t r = ev_uring_events(cqe->res);
	if (r == 0)
		return;
	/* One event per registration per wait, as epoll gives: a second
	 * CQE (another wakeup) merges into the first. */
	if (s->batch == u->batch && s->out_idx < *n && out[s->out_idx].ptr == s->ptr) {
		out[s->out_idx].events |= r;
		return;
	}
	s->batch = u->batch;
	s->out_idx = *n;
	out[*n].ptr = s->ptr;
	out[*n].events = r;
	(*n)++;
}

/* Consume CQEs until <max> events are filled or the CQ is empty; CQEs past
 * that stay for the next wait. Sets *<seen> to the CQEs consumed. */
static int ev_uring_harvest(struct sp_ev_uring *u, struct sp_ev_event *out,
			    int max, unsigned *seen)
{
	struct io_uring_cqe *cqe;
	unsigned head, k = 0;
	int n = 0;

	io_uring_for_each_cqe(&u->ring, head, cqe) {
		if (n == max)
			break;
		ev_uring_cqe(u, cqe, out, &n);
		k++;
	}
	io_uring_cq_advance(&u->ring, k);
	*seen = k;
	return n;
}

static int64_t ev_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int ev_uring_wait(struct sp_ev *ev, struct sp_ev_event *out, int max,
			 int timeout_ms)
{
	struct sp_ev_uring *u = ev->_u.uring;
	int64_t deadline = timeout_ms > 0 ? ev_now_ns() + (int64_t)timeout_ms * 1000000 : 0;

	if (++u->batch == 0)
		u->batch = 1;
	if (u->nrearm > 0)
		ev_uring_rearm_pending(u);
	for (;;) {
		struct __kernel_timespec ts = { 0, 0 }, *tsp = NULL;
		struct io_uring_cqe *cqe;
		unsigned seen;

		if (timeout_ms >= 0) {
			int64_t left = timeout_ms > 0 ? deadline - ev_now_ns() : 0;
			if (left > 0) {
				ts.tv_sec = left / 1000000000;
				ts.tv_nsec = left % 1000000000;
			}
			tsp = &ts;
		}
		/* Submits every queued arm/remove and waits, one syscall. It
		 * may return the count submitted; only errors matter. */
		int rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, tsp, NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN &&
		    rc != -EBUSY)
			return rc;
		int n = ev_uring_harvest(u, out, max, &seen);
		if (n > 0 || rc == -EINTR || seen == 0 || timeout_ms == 0)
			return n;
		/* Only stale or bookkeeping CQEs: wait out the rest. */
		if (timeout_ms > 0 && deadline - ev_now_ns() <= 0)
			return 0;
	}
}

const struct sp_ev_ops sp_ev_uring_ops = {
	.name = "uring",
	.init = ev_uring_init,
	.close = ev_uring_close,
	.add = ev_uring_add,
	.mod = ev_uring_mod,
	.del = ev_uring_del,
	.wait = ev_uring_wait,
};

/* Set up a ring and check a multishot poll really reports with F_MORE
 * (kernel >= 5.13; seccomp or kernel.io_uring_disabled may refuse it). */
static int ev_uring_try(void)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe = NULL;
	struct __kernel_timespec ts = { .tv_sec = 1 };
	uint64_t one = 1;
	int rc, efd;

	rc = io_uring_queue_init(4, &ring, 0);
	if (rc < 0) {
		sp_log(SP_LOG_WARN, "io_uring unavailable", "step=setup err=\"%s\"",
		       strerror(-rc));
		return -ENOTSUP;
	}
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	if (efd == -1 || sqe == NULL || write(efd, &one, sizeof(one)) != sizeof(one)) {
		rc = -ENOTSUP;
		goto out;
	}
	io_uring_prep_poll_multishot(sqe, efd, EPOLLIN | EPOLLET);
	io_uring_sqe_set_data64(sqe, 1);
	rc = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
	if (io_uring_peek_cqe(&ring, &cqe) != 0 || cqe == NULL) {
		sp_log(SP_LOG_WARN, "io_uring unavailable", "step=poll err=\"%s\"",
		       strerror(rc < 0 ? -rc : ETIME));
		rc = -ENOTSUP;
	} else if (cqe->res < 0 || !(cqe->res & EPOLLIN) ||
		   !(cqe->flags & IORING_CQE_F_MORE)) {
		sp_log(SP_LOG_WARN, "io_uring unavailable",
		       "step=multishot_poll res=%d flags=%u", cqe->res, cqe->flags);
		rc = -ENOTSUP;
	} else {
		rc = 0;
	}
out:
	io_uring_queue_exit(&ring);
	if (efd != -1)
		close(efd);
	return rc;
}

int sp_ev_uring_probe(void)
{
	static bool probed;
	static int result;

	if (!probed) {
		result = ev_uring_try();
		probed = true;
	}
	return result;
}

#else
/* Not built with liburing: ev.c never names this backend. Something must
 * remain, as ISO C has no empty translation unit. */
typedef int sp_ev_uring_absent;
#endif /* SP_HAVE_URING */
