/*
 * ev_epoll.c - epoll backend of the readiness loop (see ev.h).
 */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "spout/ev.h"

#define EV_BATCH 256

int sp_ev_init(struct sp_ev *ev)
{
	ev->fd = epoll_create1(EPOLL_CLOEXEC);
	return ev->fd == -1 ? -errno : 0;
}

void sp_ev_close(struct sp_ev *ev)
{
	if (ev->fd >= 0)
		close(ev->fd);
	ev->fd = -1;
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

int sp_ev_add(struct sp_ev *ev, int fd, uint32_t events, void *ptr)
{
	struct epoll_event e = { .events = to_epoll(events), .data.ptr = ptr };

	return epoll_ctl(ev->fd, EPOLL_CTL_ADD, fd, &e) == -1 ? -errno : 0;
}

int sp_ev_mod(struct sp_ev *ev, int fd, uint32_t events, void *ptr)
{
	struct epoll_event e = { .events = to_epoll(events), .data.ptr = ptr };

	return epoll_ctl(ev->fd, EPOLL_CTL_MOD, fd, &e) == -1 ? -errno : 0;
}

int sp_ev_del(struct sp_ev *ev, int fd)
{
	return epoll_ctl(ev->fd, EPOLL_CTL_DEL, fd, NULL) == -1 ? -errno : 0;
}

int sp_ev_wait(struct sp_ev *ev, struct sp_ev_event *out, int max, int timeout_ms)
{
	struct epoll_event evs[EV_BATCH];

	if (max > EV_BATCH)
		max = EV_BATCH;
	int n = epoll_wait(ev->fd, evs, max, timeout_ms);
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
