/*
 * rlink.h - one hiredis asynchronous connection, driven from a thread's own
 * event loop (the router's, for the cluster backplane).
 *
 * hiredis reads at most 16 KiB per redisAsyncHandleRead and cannot tell its
 * caller that more is waiting, which does not fit the edge-triggered sp_ev
 * loops. So links live in a small level-triggered epoll set of their own
 * (struct sp_rlink_set); the owner registers the set's fd in its sp_ev and
 * calls sp_rlink_set_poll whenever that fd fires, and again while it says
 * there is more. Reading can be paused (sp_rlink_pause_read) to push back on
 * Redis when the owner cannot take more input.
 *
 * A link never frees itself under the owner's feet: when hiredis drops the
 * connection (error, EOF) the link records why and goes to SP_RLINK_DEAD;
 * the owner notices (sp_rlink_dead) and calls sp_rlink_close outside any
 * hiredis callback.
 *
 * Threading: a set and its links belong to one thread.
 */
#ifndef SPOUT_RLINK_H
#define SPOUT_RLINK_H

#include <stdbool.h>
#include <stdint.h>

struct redisAsyncContext;

struct sp_rlink_set {
	int epfd;                   /* level-triggered; -1 when closed */
};

enum sp_rlink_state { SP_RLINK_CLOSED = 0, SP_RLINK_CONNECTING, SP_RLINK_OPEN, SP_RLINK_DEAD };

struct sp_rlink {
	struct redisAsyncContext *ac;   /* NULL unless CONNECTING or OPEN */
	struct sp_rlink_set *set;
	enum sp_rlink_state state;
	int fd;
	bool want_read, want_write;     /* what hiredis asked for */
	bool paused;                    /* owner: stop reading for now */
	const char *name;               /* for logs: "commands", "subscriptions" */
	char why[128];                  /* why it died, for logs and metrics */
	/* Progress watchdog: commands sent and not yet answered, and when the
	 * link last made progress (a reply, or the first command after an
	 * idle spell). A link with outstanding commands and no progress for
	 * the owner's timeout is dead even if TCP says nothing. */
	uint32_t outstanding;
	uint64_t progress_ms;
	uint64_t opened_ms;
};

int sp_rlink_set_init(struct sp_rlink_set *s);
void sp_rlink_set_close(struct sp_rlink_set *s);

/* Serve whatever the set's links are ready for, up to a budget. Returns
 * true if it stopped with work left (call again soon). */
bool sp_rlink_set_poll(struct sp_rlink_set *s);

/* Start a non-blocking connect to <host>:<port> (a name is resolved with
 * getaddrinfo, which blocks: give an address where that matters). The link
 * is CONNECTING until hiredis reports the connect (OPEN) or failure (DEAD).
 * Commands may be queued at once; they go out when connected. Returns 0 or
 * -1 with <why> set (the link is then DEAD). */
int sp_rlink_open(struct sp_rlink *l, struct sp_rlink_set *s, const char *name,
		  const char *host, unsigned port, uint64_t now_ms);

/* Free the hiredis context: every pending callback runs with a NULL reply
 * (so callers' privdata is released there). Idempotent. Not from inside a
 * hiredis callback of this link. */
void sp_rlink_close(struct sp_rlink *l);

static inline bool sp_rlink_dead(const struct sp_rlink *l)
{
	return l->state == SP_RLINK_DEAD;
}

/* Mark the link dead with a reason (first reason wins). */
void sp_rlink_fail(struct sp_rlink *l, const char *why);

/* Queue a command (argv form, binary safe) with its callback. Counts it for
 * the watchdog; the callback must call sp_rlink_replied. Returns 0, or -1
 * when the link cannot take commands (not connecting/open). */
int sp_rlink_command(struct sp_rlink *l, void (*cb)(struct redisAsyncContext *, void *, void *),
		     void *privdata, int argc, const char **argv, const size_t *lens,
		     uint64_t now_ms);

/* A reply for a counted command arrived. */
void sp_rlink_replied(struct sp_rlink *l, uint64_t now_ms);

/* True when commands are outstanding and nothing moved for <timeout_ms>. */
bool sp_rlink_stuck(const struct sp_rlink *l, uint64_t now_ms, uint64_t timeout_ms);

/* Stop or restart reading (back-pressure towards Redis). */
void sp_rlink_pause_read(struct sp_rlink *l, bool paused);

#endif
