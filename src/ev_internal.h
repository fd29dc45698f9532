/*
 * ev_internal.h - the private backend interface behind ev.h (redis' aeApi*
 * shape): src/ev.c dispatches every sp_ev_* call through the ops table the
 * loop was opened with; src/ev_epoll.c and src/ev_uring.c implement it.
 *
 * Threading: the ops tables are immutable. Each op is called only by the
 * thread that owns the struct sp_ev it is given.
 */
#ifndef SPOUT_EV_INTERNAL_H
#define SPOUT_EV_INTERNAL_H

#include "spout/ev.h"

/* One backend. Every op has the contract of the sp_ev_* function of the
 * same name in ev.h; <ev> has already been opened by <init> (ev->_ops is
 * set by ev.c after init succeeds, never by a backend). */
struct sp_ev_ops {
	const char *name;       /* as the --io flag spells it */
	int (*init)(struct sp_ev *ev);
	void (*close)(struct sp_ev *ev);
	int (*add)(struct sp_ev *ev, int fd, uint32_t events, void *ptr);
	int (*mod)(struct sp_ev *ev, int fd, uint32_t events, void *ptr);
	int (*del)(struct sp_ev *ev, int fd);
	int (*wait)(struct sp_ev *ev, struct sp_ev_event *out, int max,
		    int timeout_ms);
};

extern const struct sp_ev_ops sp_ev_epoll_ops;

#ifdef SP_HAVE_URING
extern const struct sp_ev_ops sp_ev_uring_ops;

/* Whether io_uring multishot poll works here (kernel, seccomp, sysctl
 * kernel.io_uring_disabled). Returns 0 or -ENOTSUP. Not thread-safe: main
 * calls it, through sp_ev_set_backend, before any thread starts. */
int sp_ev_uring_probe(void);
#endif

#endif
