/*
 * router_pub.c - the router's publisher connections: accept, read, parse
 * (src/lineproto.c), execute through router_route(), reply in order, and
 * pause when a worker's frame ring is full (the caller, router.c, resumes).
 * Router thread only.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "spout/auth.h"
#include "spout/log.h"
#include "spout/sys.h"
#include "router_internal.h"

#define PUB_IN_MIN 16384
#define PUB_OUT_HIGH ((size_t)256 * 1024)   /* stop parsing while replies back up */
#define PUB_READ_BUDGET ((size_t)256 * 1024) /* per publisher per loop iteration */
#define PUB_INFLIGHT_MAX 4096       /* cluster: publishes waiting for Redis */

enum svc { SVC_DONE, SVC_MORE, SVC_STALL, SVC_WAIT };

static int out_reserve(struct pubconn *pc, size_t need)
{
	if (pc->out_len + need <= pc->out_cap)
		return 0;
	if (pc->out_off > 0) {
		memmove(pc->out, pc->out + pc->out_off, pc->out_len - pc->out_off);
		pc->out_len -= pc->out_off;
		pc->out_off = 0;
		if (pc->out_len + need <= pc->out_cap)
			return 0;
	}
	size_t cap = pc->out_cap ? pc->out_cap : 4096;
	while (cap < pc->out_len + need)
		cap *= 2;
	char *p = realloc(pc->out, cap);
	if (p == NULL)
		return -ENOMEM;
	pc->out = p;
	pc->out_cap = cap;
	return 0;
}

static void reply(struct sp_router *r, struct pubconn *pc, const char *fmt,
		  const char *s, uint64_t n)
{
	char line[256];
	int len = s ? snprintf(line, sizeof(line), fmt, s)
		    : snprintf(line, sizeof(line), fmt, (unsigned long long)n);

	if (len < 0 || (size_t)len >= sizeof(line) || out_reserve(pc, (size_t)len) != 0) {
		pc->dead = true;
		return;
	}
	memcpy(pc->out + pc->out_len, line, (size_t)len);
	pc->out_len += (size_t)len;
}

static void reply_err(struct sp_router *r, struct pubconn *pc, const char *reason)
{
	sp_stat_add(&r->stats.pub_errors, 1);
	reply(r, pc, "ERR %s\n", reason, 0);
}

/* AUTH: with --pub-token, the first thing a publisher must send. A wrong
 * token closes the connection, so guessing costs a connection per try. */
static void auth(struct sp_router *r, struct pubconn *pc, const struct sp_lp_cmd *cmd)
{
	const char *want = r->broker->cfg->pub_token;

	if (want[0] == '\0') {
		reply_err(r, pc, "auth not enabled");
	} else if (sp_auth_pub_token_equal(want, cmd->data, cmd->data_len)) {
		pc->authed = true;
		sp_list_move_tail(&r->local->idle, &pc->timer_link);
		reply(r, pc, "OK\n", NULL, 0);
	} else {
		sp_stat_add(&r->stats.pub_auth_failures, 1);
		reply_err(r, pc, "auth failed");
		pc->quit = true;
	}
}

/* --pub-max-rate: a token bucket holding up to one second's worth.
 * Takes a token and returns true, or false (nothing taken). */
static bool rate_allows(const struct sp_config *cfg, struct pubconn *pc, uint64_t now_ns)
{
	double rate = cfg->pub_max_rate;

	if (cfg->pub_max_rate == 0)
		return true;
	pc->tokens += (double)(now_ns - pc->bucket_ns) * rate / 1e9;
	if (pc->tokens > rate)
		pc->tokens = rate;
	pc->bucket_ns = now_ns;
	if (pc->tokens < 1.0)
		return false;
	pc->tokens -= 1.0;
	return true;
}

/* Parse and execute buffered commands. */
static enum svc process(struct sp_router *r, struct pubconn *pc)
{
	struct sp_router_local *L = r->local;
	const struct sp_config *cfg = r->broker->cfg;
	size_t off = 0;
	enum svc res = SVC_DONE;
	uint64_t now_ns = cfg->pub_max_rate ? sp_now_ns() : 0;

	while (off < pc->in_len && !pc->quit && !pc->dead) {
		char *p = pc->in + off;
		size_t avail = pc->in_len - off;

		if (pc->discard > 0) {
			size_t k = avail < pc->discard ? avail : pc->discard;
			pc->discard -= k;
			off += k;
			continue;
		}
		if (pc->discard_line) {
			size_t k = sp_lp_skip_line(p, avail);
			if (k == 0) {
				off = pc->in_len;
				break;
			}
			pc->discard_line = false;
			off += k;
			continue;
		}
		if (pc->out_len - pc->out_off > PUB_OUT_HIGH) {
			res = SVC_MORE;   /* resumes when replies drain */
			break;
		}
		struct sp_lp_cmd cmd;
		ssize_t n = sp_lp_parse(p, avail, &L->limits, &cmd);
		if (n == SP_LP_PARTIAL)
			break;
		/* Cluster mode: replies go out in command order, so anything but
		 * another publish waits for the publishes Redis still holds;
		 * and a publisher far ahead of Redis waits too. */
		if (pc->inflight > 0 && (n < 0 || (cmd.type != SP_LP_PUB && cmd.type != SP_LP_EVENT) ||
					 pc->inflight >= PUB_INFLIGHT_MAX)) {
			res = SVC_WAIT;
			break;
		}
		if (n == -E2BIG) {
			reply_err(r, pc, "line too long");
			pc->discard_line = true;
			continue;
		}
		if (n < 0) {
			reply_err(r, pc, "bad command");
			pc->discard_line = true;
			continue;
		}
		uint64_t id;
		int rc;
		struct sp_event ev;
		/* Before AUTH: AUTH, QUIT, and PING (a load balancer's health
		 * check cannot authenticate; PONG tells nothing a connect does
		 * not, and the AUTH deadline still runs). */
		if (!pc->authed && cmd.type != SP_LP_AUTH && cmd.type != SP_LP_QUIT &&
		    cmd.type != SP_LP_PING && cmd.type != SP_LP_ERROR) {
			reply_err(r, pc, "auth required: send AUTH <token> first");
			off += (size_t)n;
			continue;
		}
		switch (cmd.type) {
		case SP_LP_AUTH:
			auth(r, pc, &cmd);
			break;
		case SP_LP_PUB:
		case SP_LP_EVENT:
			if (!rate_allows(cfg, pc, now_ns)) {
				if (pc->inflight > 0) {
					/* answer in order, after Redis' answers */
					res = SVC_WAIT;
					goto out;
				}
				sp_stat_add(&r->stats.pub_rate_limited, 1);
				reply_err(r, pc, "rate limit: too many events per second on this "
					  "connection (--pub-max-rate)");
				break;
			}
			ev = (struct sp_event){ .topic = cmd.topic,
						.topic_len = cmd.topic_len,
						.event = cmd.event,
						.event_len = cmd.event ? cmd.event_len : 0,
						.data = cmd.data,
						.data_len = cmd.data_len };
			if (L->bp != NULL) {
				rc = bp_publish(r, &pc->waiter, &ev, 0);
				if (rc == 0)
					pc->inflight++;
				if (rc != 0 && pc->inflight > 0) {
					/* Refused now, but earlier ones are still
					 * in Redis: answer after them, in order. */
					res = SVC_WAIT;
					goto out;
				}
				if (rc == -ENOTCONN)
					reply_err(r, pc, "backplane unavailable");
				else if (rc != 0)
					reply_err(r, pc, "out of memory");
				break;
			}
			rc = router_route(r, &ev, &id);
			if (rc == -EAGAIN) {
				res = SVC_STALL;
				goto out;
			}
			if (rc != 0)
				reply_err(r, pc, "out of memory");
			else
				reply(r, pc, "OK %llu\n", NULL, id);
			break;
		case SP_LP_PING:
			reply(r, pc, "PONG\n", NULL, 0);
			break;
		case SP_LP_QUIT:
			reply(r, pc, "OK bye\n", NULL, 0);
			pc->quit = true;
			break;
		case SP_LP_ERROR:
			reply_err(r, pc, cmd.err);
			pc->discard = cmd.skip;
			break;
		}
		off += (size_t)n;
	}
out:
	if (off > 0) {
		memmove(pc->in, pc->in + off, pc->in_len - off);
		pc->in_len -= off;
	}
	return res;
}

void pub_flush(struct pubconn *pc)
{
	while (pc->out_off < pc->out_len) {
		ssize_t n = write(pc->fd, pc->out + pc->out_off, pc->out_len - pc->out_off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				pc->dead = true;
			return;
		}
		pc->out_off += (size_t)n;
	}
	pc->out_off = pc->out_len = 0;
}

/* Read what the socket has, up to a budget. */
static void pub_read(struct sp_router *r, struct pubconn *pc)
{
	struct sp_router_local *L = r->local;
	size_t budget = PUB_READ_BUDGET;

	while (pc->readable && !pc->eof && budget > 0) {
		if (pc->in_len == pc->in_cap) {
			if (pc->in_cap >= L->in_max)
				return;   /* full: process() must consume first */
			size_t cap = pc->in_cap ? pc->in_cap * 2 : PUB_IN_MIN;
			if (cap > L->in_max)
				cap = L->in_max;
			char *p = realloc(pc->in, cap);
			if (p == NULL) {
				pc->dead = true;
				return;
			}
			pc->in = p;
			pc->in_cap = cap;
		}
		ssize_t n = read(pc->fd, pc->in + pc->in_len, pc->in_cap - pc->in_len);
		if (n > 0) {
			pc->in_len += (size_t)n;
			pc->heard_ms = sp_now_ms();
			if (pc->authed)
				sp_list_move_tail(&L->idle, &pc->timer_link);
			budget -= (size_t)n < budget ? (size_t)n : budget;
		} else if (n == 0) {
			pc->eof = true;
		} else if (errno == EAGAIN) {
			pc->readable = false;
		} else if (errno != EINTR) {
			pc->dead = true;
			return;
		}
	}
}

void pub_close(struct sp_router *r, struct pubconn *pc)
{
	if (!pc->closed) {
		sp_ev_del(&r->local->ev, pc->fd);
		close(pc->fd);
		sp_list_del(&pc->ready_link);
		sp_list_del(&pc->all_link);
		sp_list_del(&pc->timer_link);
		pc->closed = true;
		sp_stat_add(&r->stats.pub_conns_open, (uint64_t)-1);
	}
	/* Publishes still in Redis' hands come back to this struct. */
	if (pc->inflight > 0)
		return;
	free(pc->in);
	free(pc->out);
	free(pc);
}

/* cluster: a publish's Redis answer arrived (<id> 0 = failed, <reason>). */
static void pub_published(struct pub_waiter *wt, uint64_t id, bool dup, const char *reason)
{
	struct pubconn *pc = sp_container_of(wt, struct pubconn, waiter);
	struct sp_router *r = pc->r;

	pc->inflight--;
	if (pc->closed) {
		if (pc->inflight == 0)
			pub_close(r, pc);
		return;
	}
	if (id != 0) {
		sp_stat_add(&r->stats.events_published, 1);
		reply(r, pc, "OK %llu\n", NULL, id);
	} else {
		reply_err(r, pc, reason);
	}
	/* Serve it again: flush, and parse what waited for this answer. */
	if (!sp_list_linked(&pc->ready_link))
		sp_list_add_tail(&r->local->ready, &pc->ready_link);
}

/* Serve one publisher: read, execute, reply. */
static enum svc pub_service(struct sp_router *r, struct pubconn *pc)
{
	enum svc res;

	pub_read(r, pc);
	res = process(r, pc);
	pub_flush(pc);
	if (pc->dead || (pc->quit && pc->out_len == 0) ||
	    (pc->eof && res == SVC_DONE && pc->out_len == 0 && pc->inflight == 0)) {
		/* On EOF, a command cut off mid-line is simply dropped: a
		 * publisher that disconnects mid-line publishes nothing. */
		pub_close(r, pc);
		return SVC_DONE;
	}
	if (res == SVC_STALL)
		return res;
	if (res == SVC_WAIT)
		return SVC_DONE;   /* pub_published serves it again */
	/* More to do now? Unread socket data with room to read it, or
	 * replies to drain first (then the writable event brings us back). */
	if (pc->out_len - pc->out_off > PUB_OUT_HIGH)
		return SVC_DONE;
	if (pc->readable && pc->in_len < pc->in_cap)
		return SVC_MORE;
	if (pc->readable && pc->in_len < r->local->in_max)
		return SVC_MORE;
	return SVC_DONE;
}

void pub_accept(struct sp_router *r)
{
	struct sp_router_local *L = r->local;

	for (;;) {
		int fd = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE)
				L->accept_retry = true;   /* edge-triggered: poll again soon */
			if (errno != EAGAIN)
				sp_log(SP_LOG_WARN, "publisher accept failed", "errno=%d", errno);
			return;
		}
		const struct sp_config *cfg = r->broker->cfg;
		if (sp_stat_get(&r->stats.pub_conns_open) >= cfg->pub_max_conns) {
			static const char msg[] = "ERR too many publisher connections "
						  "(--pub-max-conns)\n";
			ssize_t k = write(fd, msg, sizeof(msg) - 1);
			(void)k;   /* best effort: a fresh socket takes this much */
			close(fd);
			sp_stat_add(&r->stats.pub_rejected_conns, 1);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct pubconn *pc = calloc(1, sizeof(*pc));
		if (pc == NULL) {
			close(fd);
			continue;
		}
		pc->fd = fd;
		pc->r = r;
		pc->waiter = (struct pub_waiter){ .r = r, .done = pub_published };
		pc->authed = cfg->pub_token[0] == '\0';
		pc->readable = true;
		pc->heard_ms = pc->accepted_ms = sp_now_ms();
		pc->bucket_ns = sp_now_ns();
		pc->tokens = cfg->pub_max_rate;
		if (sp_ev_add(&L->ev, fd, SP_EV_READ | SP_EV_WRITE, pc) != 0) {
			close(fd);
			free(pc);
			continue;
		}
		sp_list_add_tail(&L->all, &pc->all_link);
		sp_list_add_tail(&L->ready, &pc->ready_link);
		sp_list_add_tail(pc->authed ? &L->idle : &L->unauthed, &pc->timer_link);
		sp_stat_add(&r->stats.pub_conns_open, 1);
		sp_stat_add(&r->stats.pub_conns_total, 1);
	}
}

/* Close <pc> after telling it why (best effort: it is not reading, or
 * has gone quiet). */
static void expire(struct sp_router *r, struct pubconn *pc, const char *why)
{
	sp_stat_add(&r->stats.pub_idle_closed, 1);
	reply_err(r, pc, why);
	pub_flush(pc);
	pub_close(r, pc);
}

void pub_expire_idle(struct sp_router *r)
{
	struct sp_router_local *L = r->local;
	const struct sp_config *cfg = r->broker->cfg;
	uint64_t now = sp_now_ms();
	struct sp_list *it;

	while ((it = sp_list_first(&L->unauthed)) != NULL) {
		struct pubconn *pc = sp_container_of(it, struct pubconn, timer_link);
		if (pc->accepted_ms + cfg->header_timeout_ms > now)
			break;
		sp_list_del(it);
		expire(r, pc, "auth required: no AUTH in time");
	}
	if (cfg->pub_idle_timeout_ms == 0)
		return;
	while ((it = sp_list_first(&L->idle)) != NULL) {
		struct pubconn *pc = sp_container_of(it, struct pubconn, timer_link);
		if (pc->heard_ms + cfg->pub_idle_timeout_ms > now)
			break;
		if (pc->inflight > 0) {
			/* waiting on Redis for it is not idleness */
			pc->heard_ms = now;
			sp_list_move_tail(&L->idle, it);
			continue;
		}
		sp_list_del(it);
		expire(r, pc, "idle timeout");
	}
}

/* Serve every publisher with pending work, unless a full ring stalls us. */
void pub_serve_ready(struct sp_router *r)
{
	struct sp_router_local *L = r->local;
	struct sp_list round;

	/* Take the current ready list; publishers with more work go back on
	 * the tail, so one busy publisher cannot starve the rest. */
	sp_list_take(&round, &L->ready);

	struct sp_list *it;
	while ((it = sp_list_first(&round)) != NULL) {
		struct pubconn *pc = sp_container_of(it, struct pubconn, ready_link);
		sp_list_del(it);
		if (L->stalled_on >= 0) {
			sp_list_add_tail(&L->ready, it);
			continue;
		}
		switch (pub_service(r, pc)) {
		case SVC_STALL:
			L->stall_start_ns = sp_now_ns();
			sp_stat_add(&r->stats.stalls, 1);
			/* retry this publisher after the stall */
			__attribute__((fallthrough));
		case SVC_MORE:
			sp_list_add_tail(&L->ready, &pc->ready_link);
			break;
		case SVC_DONE:
		case SVC_WAIT:
			break;
		}
	}
}

