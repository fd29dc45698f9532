/*
 * rlink.c - hiredis asynchronous connections on a level-triggered epoll set
 * (see include/spout/rlink.h for why a set of their own).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "spout/rlink.h"

#define POLL_BUDGET 64   /* hiredis reads of 16 KiB per poll call */

int sp_rlink_set_init(struct sp_rlink_set *s)
{
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	return s->epfd == -1 ? -errno : 0;
}

void sp_rlink_set_close(struct sp_rlink_set *s)
{
	if (s->epfd != -1)
		close(s->epfd);
	s->epfd = -1;
}

static void update(struct sp_rlink *l)
{
	struct epoll_event e = { .data.ptr = l };

	if (l->fd == -1)
		return;
	if (l->want_read && !l->paused)
		e.events |= EPOLLIN;
	if (l->want_write)
		e.events |= EPOLLOUT;
	epoll_ctl(l->set->epfd, EPOLL_CTL_MOD, l->fd, &e);
}

/* hiredis' event-library hooks: <p> is the link. */
static void hook_add_read(void *p)
{
	struct sp_rlink *l = p;
	l->want_read = true;
	update(l);
}

static void hook_del_read(void *p)
{
	struct sp_rlink *l = p;
	l->want_read = false;
	update(l);
}

static void hook_add_write(void *p)
{
	struct sp_rlink *l = p;
	l->want_write = true;
	update(l);
}

static void hook_del_write(void *p)
{
	struct sp_rlink *l = p;
	l->want_write = false;
	update(l);
}

/* The context is being freed (by us or by hiredis after an error). */
static void hook_cleanup(void *p)
{
	struct sp_rlink *l = p;

	if (l->fd != -1)
		epoll_ctl(l->set->epfd, EPOLL_CTL_DEL, l->fd, NULL);
	l->fd = -1;
	l->want_read = l->want_write = false;
	l->ac = NULL;
}

void sp_rlink_fail(struct sp_rlink *l, const char *why)
{
	if (l->state == SP_RLINK_DEAD || l->state == SP_RLINK_CLOSED)
		return;
	snprintf(l->why, sizeof(l->why), "%s", why);
	l->state = SP_RLINK_DEAD;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct sp_rlink *l = ac->data;

	if (status == REDIS_OK) {
		if (l->state == SP_RLINK_CONNECTING)
			l->state = SP_RLINK_OPEN;
		return;
	}
	/* hiredis frees the context after this returns */
	sp_rlink_fail(l, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct sp_rlink *l = ac->data;

	if (l == NULL)
		return;
	sp_rlink_fail(l, status == REDIS_OK ? "closed" :
		      ac->errstr[0] ? ac->errstr : "connection lost");
}

int sp_rlink_open(struct sp_rlink *l, struct sp_rlink_set *s, const char *name,
		  const char *host, unsigned port, uint64_t now_ms)
{
	memset(l, 0, sizeof(*l));
	l->set = s;
	l->fd = -1;
	l->name = name;
	l->state = SP_RLINK_CONNECTING;
	l->opened_ms = l->progress_ms = now_ms;
	redisAsyncContext *ac = redisAsyncConnect(host, (int)port);
	if (ac == NULL) {
		sp_rlink_fail(l, "out of memory");
		return -1;
	}
	if (ac->err) {
		sp_rlink_fail(l, ac->errstr);
		redisAsyncFree(ac);
		return -1;
	}
	struct epoll_event e = { .events = 0, .data.ptr = l };
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, ac->c.fd, &e) != 0) {
		sp_rlink_fail(l, strerror(errno));
		redisAsyncFree(ac);
		return -1;
	}
	l->ac = ac;
	l->fd = ac->c.fd;
	ac->data = l;
	ac->ev.data = l;
	ac->ev.addRead = hook_add_read;
	ac->ev.delRead = hook_del_read;
	ac->ev.addWrite = hook_add_write;
	ac->ev.delWrite = hook_del_write;
	ac->ev.cleanup = hook_cleanup;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	return 0;
}

void sp_rlink_close(struct sp_rlink *l)
{
	if (l->ac != NULL) {
		redisAsyncContext *ac = l->ac;
		/* Our own free: the disconnect callback must not mark the link
		 * dead again, and every pending callback sees a NULL reply. */
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	l->ac = NULL;
	l->fd = -1;
	l->state = SP_RLINK_CLOSED;
	l->outstanding = 0;
}

int sp_rlink_command(struct sp_rlink *l, void (*cb)(struct redisAsyncContext *, void *, void *),
		     void *privdata, int argc, const char **argv, const size_t *lens,
		     uint64_t now_ms)
{
	if (l->ac == NULL || (l->state != SP_RLINK_OPEN && l->state != SP_RLINK_CONNECTING))
		return -1;
	if (redisAsyncCommandArgv(l->ac, cb, privdata, argc, argv, lens) != REDIS_OK) {
		sp_rlink_fail(l, "command refused by the client library");
		return -1;
	}
	if (l->outstanding++ == 0)
		l->progress_ms = now_ms;
	return 0;
}

void sp_rlink_replied(struct sp_rlink *l, uint64_t now_ms)
{
	if (l->outstanding > 0)
		l->outstanding--;
	l->progress_ms = now_ms;
}

bool sp_rlink_stuck(const struct sp_rlink *l, uint64_t now_ms, uint64_t timeout_ms)
{
	if (l->state == SP_RLINK_CONNECTING)
		return now_ms - l->opened_ms > timeout_ms;
	return l->outstanding > 0 && now_ms - l->progress_ms > timeout_ms;
}

void sp_rlink_pause_read(struct sp_rlink *l, bool paused)
{
	if (l->paused == paused)
		return;
	l->paused = paused;
	update(l);
}

bool sp_rlink_set_poll(struct sp_rlink_set *s)
{
	struct epoll_event evs[4];

	for (int round = 0; round < POLL_BUDGET; round++) {
		int n = epoll_wait(s->epfd, evs, 4, 0);
		if (n <= 0)
			return false;
		for (int i = 0; i < n; i++) {
			struct sp_rlink *l = evs[i].data.ptr;
			/* An earlier event of this batch may have freed it. */
			if (l->ac == NULL)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				redisAsyncHandleRead(l->ac);
			if (l->ac != NULL && (evs[i].events & (EPOLLOUT | EPOLLERR)))
				redisAsyncHandleWrite(l->ac);
		}
	}
	return true;
}
