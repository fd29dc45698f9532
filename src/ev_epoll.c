/*
 * ev_epoll.c - epoll backend of the readiness loop (see ev.h; dispatched
 * by ev.c through sp_ev_epoll_ops). Always built, and the default.
 *
 * Threading: the owning thread of each struct sp_ev only.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ev_internal.h"

#define EV_BATCH 256

static int ev_epoll_init(struct sp_ev *ev)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);

	if (fd == -1)
		return -errno;
	ev->_u.epfd = fd;
	return 0;
}

static void ev_epoll_close(struct sp_ev *ev)
{
	close(ev->_u.epfd);
	ev->_u.epfd = -1;
}

static uint32_t to_epoll(uint32_t events)
{
	uint32_t e = EPOLLET | EPOLLRDHUP;

	if (events & SP_EV_READ)
		e |= EPOLLIN;
	if (events & SP_EV_WRITE)
		e |= EPOLLOUT;
	return e;
}

static int ev_epoll_add(struct sp_ev *ev, int fd, uint32_t events, void *ptr)
{
	struct epoll_event e = { .events = to_epoll(events), .data.ptr = ptr };

	return epoll_ctl(ev->_u.epfd, EPOLL_CTL_ADD, fd, &e) == -1 ? -errno : 0;
}

static int ev_epoll_mod(struct sp_ev *ev, int fd, uint32_t events, void *ptr)
{
	struct epoll_event e = { .events = to_epoll(events), .data.ptr = ptr };

	return epoll_ctl(ev->_u.epfd, EPOLL_CTL_MOD, fd, &e) == -1 ? -errno : 0;
}

static int ev_epoll_del(struct sp_ev *ev, int fd)
{
	return epoll_ctl(ev->_u.epfd, EPOLL_CTL_DEL, fd, NULL) == -1 ? -errno : 0;
}

static int ev_epoll_wait(struct sp_ev *ev, struct sp_ev_event *out, int max,
			 int timeout_ms)
{
	struct epoll_event evs[EV_BATCH];

	if (max > EV_BATCH)
		max = EV_BATCH;
	int n = epoll_wait(ev->_u.epfd, evs, max, timeout_ms);
	if (n == -1)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		uint32_t e = evs[i].events, r = 0;
		if (e & EPOLLIN)
			r |= SP_EV_READ;
		if (e & EPOLLOUT)
			r |= SP_EV_WRITE;
		/* Like redis' aeApiPoll: errors go through the I/O path, where
		 * read/write return the actual error. */
		if (e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
			r |= SP_EV_HUP | SP_EV_READ | SP_EV_WRITE;
		out[i].ptr = evs[i].data.ptr;
		out[i].events = r;
	}
	return n;
}

const struct sp_ev_ops sp_ev_epoll_ops = {
	.name = "epoll",
	.init = ev_epoll_init,
	.close = ev_epoll_close,
	.add = ev_epoll_add,
	.mod = ev_epoll_mod,
	.del = ev_epoll_del,
	.wait = ev_epoll_wait,
};
