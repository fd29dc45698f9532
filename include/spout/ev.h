/*
 * ev.h - the readiness loop each thread runs (acceptor, workers, router).
 *
 * A deliberately small API in the shape of redis' ae: the threads call only
 * these functions, and the backend behind them is epoll (always available).
 * Readiness is edge-triggered: the caller reads/writes until EAGAIN, or
 * remembers that it stopped early. Errors and hang-ups are reported as both
 * READ and WRITE so they surface in the normal I/O path.
 *
 * Each struct sp_ev belongs to one thread.
 */
#ifndef SPOUT_EV_H
#define SPOUT_EV_H

#include <stdint.h>

#define SP_EV_READ  0x1u
#define SP_EV_WRITE 0x2u
#define SP_EV_HUP   0x4u   /* peer hung up or error; READ|WRITE also set */

struct sp_ev {
	int fd;                 /* epoll instance */
};

struct sp_ev_event {
	void *ptr;
	uint32_t events;        /* SP_EV_* */
};

/* Returns 0 or -errno. */
int sp_ev_init(struct sp_ev *ev);
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
