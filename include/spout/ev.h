/*
 * ev.h - the readiness loop each thread runs (acceptor, workers, router).
 *
 * A deliberately small API in the shape of redis' ae: the threads call only
 * these functions. Two backends sit behind it (src/ev.c dispatches):
 *   - epoll (default, always built);
 *   - io_uring multishot poll (only when built with liburing,
 *     SP_HAVE_URING, and chosen with sp_ev_set_backend()).
 * Both give the same contract:
 *   - Readiness is edge-triggered: the caller reads/writes until EAGAIN, or
 *     remembers that it stopped early. An event may carry fewer bits than
 *     the fd's full state (io_uring reports the bits that woke it), and a
 *     spurious event is possible; neither matters to an edge-triggered
 *     caller.
 *   - Errors and hang-ups are reported as HUP|READ|WRITE so they surface in
 *     the normal I/O path, where read/write return the real error.
 *   - One event per registration per sp_ev_wait, carrying the <ptr> of the
 *     registration current when sp_ev_wait was called.
 *   - Once sp_ev_del(fd) returns, no later sp_ev_wait reports that
 *     registration's ptr, even if the fd is closed and its number reused.
 *     Always sp_ev_del before close(): io_uring keeps a closed file
 *     watched (and open) until it is deleted.
 *
 * Threading: each struct sp_ev belongs to one thread, which alone calls
 * the functions below on it. sp_ev_set_backend is called once by main
 * before any thread starts; the loops opened afterwards use that backend.
 */
#ifndef SPOUT_EV_H
#define SPOUT_EV_H

#include <stdint.h>

#define SP_EV_READ  0x1u
#define SP_EV_WRITE 0x2u
#define SP_EV_HUP   0x4u   /* peer hung up or error; READ|WRITE also set */

enum sp_ev_backend { SP_EV_EPOLL, SP_EV_URING };

struct sp_ev_ops;           /* src/ev_internal.h */
struct sp_ev_uring;         /* src/ev_uring.c */

/* All zero is a valid closed loop: sp_ev_close on it does nothing. Fields
 * starting with '_' are private to src/ev*.c. */
struct sp_ev {
	const struct sp_ev_ops *_ops;      /* NULL = not open */
	union {
		int epfd;                   /* epoll instance */
		struct sp_ev_uring *uring;  /* ring + registration table */
	} _u;
};

struct sp_ev_event {
	void *ptr;
	uint32_t events;        /* SP_EV_* */
};

/* Choose the backend of every sp_ev_init from now on. Main thread only,
 * before any loop is opened. SP_EV_URING is probed once (a ring is set up
 * and a multishot poll tried). Returns 0, -ENOTSUP (not built with
 * liburing, or this kernel refuses io_uring) or -EINVAL. On error the
 * backend stays what it was. */
int sp_ev_set_backend(enum sp_ev_backend b);

/* "epoll" or "uring": the backend sp_ev_init uses now. Any thread. */
const char *sp_ev_backend_name(void);

/* Open <ev> on the current backend. Returns 0 or -errno (<ev> stays
 * closed). */
int sp_ev_init(struct sp_ev *ev);
/* Close <ev> (idempotent; all-zero is fine). */
void sp_ev_close(struct sp_ev *ev);

/* Watch <fd> for <events> (SP_EV_READ/WRITE), edge-triggered; <ptr> comes
 * back in sp_ev_event. Returns 0 or -errno. */
int sp_ev_add(struct sp_ev *ev, int fd, uint32_t events, void *ptr);
int sp_ev_mod(struct sp_ev *ev, int fd, uint32_t events, void *ptr);
int sp_ev_del(struct sp_ev *ev, int fd);

/* Wait up to <timeout_ms> (-1 forever, 0 poll). Returns the number of
 * events (0 on timeout or EINTR) or -errno. */
int sp_ev_wait(struct sp_ev *ev, struct sp_ev_event *out, int max, int timeout_ms);

#endif
