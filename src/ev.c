/*
 * ev.c - backend selection and dispatch for the readiness loop (ev.h).
 *
 * Each open loop remembers the ops table it was opened with (ev->_ops), so
 * a loop keeps its backend for life and a closed loop (NULL ops, e.g. an
 * all-zero struct) is recognisable without a sentinel fd.
 *
 * Threading: ev_default is written only by sp_ev_set_backend, which main
 * calls before any thread exists; pthread_create orders that write before
 * every read in the threads. The rest runs on the loop's owning thread.
 */
#include <errno.h>
#include <stddef.h>

#include "ev_internal.h"

static const struct sp_ev_ops *ev_default = &sp_ev_epoll_ops;

int sp_ev_set_backend(enum sp_ev_backend b)
{
	switch (b) {
	case SP_EV_EPOLL:
		ev_default = &sp_ev_epoll_ops;
		return 0;
	case SP_EV_URING:
#ifdef SP_HAVE_URING
		if (sp_ev_uring_probe() != 0)
			return -ENOTSUP;
		ev_default = &sp_ev_uring_ops;
		return 0;
#else
		return -ENOTSUP;
#endif
	}
	return -EINVAL;
}

const char *sp_ev_backend_name(void)
{
	return ev_default->name;
}

int sp_ev_init(struct sp_ev *ev)
{
	const struct sp_ev_ops *ops = ev_default;

	ev->_ops = NULL;
	int rc = ops->init(ev);
	if (rc == 0)
		ev->_ops = ops;
	return rc;
}

void sp_ev_close(struct sp_ev *ev)
{
	if (ev->_ops == NULL)
		return;
	ev->_ops->close(ev);
	ev->_ops = NULL;
}

int sp_ev_add(struct sp_ev *ev, int fd, uint32_t events, void *ptr)
{
	if (ev->_ops == NULL)
		return -EBADF;
	return ev->_ops->add(ev, fd, events, ptr);
}

int sp_ev_mod(struct sp_ev *ev, int fd, uint32_t events, void *ptr)
{
	if (ev->_ops == NULL)
		return -EBADF;
	return ev->_ops->mod(ev, fd, events, ptr);
}

int sp_ev_del(struct sp_ev *ev, int fd)
{
	if (ev->_ops == NULL)
		return -EBADF;
	return ev->_ops->del(ev, fd);
}

int sp_ev_wait(struct sp_ev *ev, struct sp_ev_event *out, int max, int timeout_ms)
{
	if (ev->_ops == NULL)
		return -EBADF;
	if (max <= 0)
		return -EINVAL;
	return ev->_ops->wait(ev, out, max, timeout_ms);
}
