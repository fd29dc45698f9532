/*
 * worker_write.c - a worker's socket writes: out-queues to sockets, the
 * accounting of what went out, and what a short or failed write means
 * (blocked, shed, closed).
 *
 * Two paths with the same accounting (conn_wrote, conn_flushed):
 *   - writev: conn_flush writes one connection until EAGAIN or a budget;
 *   - io_uring (--io auto/uring, when available): conn_flush_pending queues
 *     one sendmsg per pending connection and submits them all in one
 *     system call (src/uwrite.c); a connection with more left goes to the
 *     next round.
 *
 * Threading: the worker thread only, like everything in worker_internal.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "spout/log.h"
#include "spout/sys.h"
#include "worker_internal.h"

#define WRITE_BUDGET ((size_t)256 * 1024)  /* writev: bytes per connection per round */
#define IOV_BATCH 64               /* frames per write */
#define UWRITE_BATCH 256           /* io_uring writes per system call */

void conn_write_init(struct sp_worker *w)
{
	const struct sp_config *cfg = w->broker->cfg;
	struct sp_worker_local *L = w->local;
	int err;

	if (cfg->io == SP_IO_EPOLL)
		return;
	L->uw = sp_uwrite_new(UWRITE_BATCH, IOV_BATCH, &err);
	/* With auto, a kernel or seccomp profile without io_uring (Docker's
	 * and Kubernetes' default profiles block it) is normal, but it costs
	 * CPU, so say so once per worker: an operator should know. */
	if (L->uw == NULL)
		sp_log(cfg->io == SP_IO_URING ? SP_LOG_WARN : SP_LOG_INFO,
		       "io_uring write path unavailable; using writev",
		       "worker=%u err=\"%s\"", w->id, strerror(-err));
}

/* Peer-caused errors are routine; anything else is worth a log line. */
enum close_reason io_error_reason(int err)
{
	switch (err) {
	case ECONNRESET:
	case EPIPE:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENETUNREACH:
		return CLOSE_CLIENT;
	default:
		return CLOSE_ERROR;
	}
}

/* Account for one write's outcome: <k> bytes, or -errno. Returns false
 * when the connection cannot take more now (blocked or closed). */
static bool conn_wrote(struct sp_worker *w, struct conn *c, ssize_t k)
{
	struct sp_worker_local *L = w->local;

	if (k < 0) {
		if (k == -EAGAIN) {
			sp_stat_add(&w->stats.write_eagain, 1);
			if (!c->blocked) {
				c->blocked = true;
				c->progress_ms = L->now_ms;
				sp_list_move_tail(&L->blocked, &c->blocked_link);
			}
			return false;
		}
		if (io_error_reason((int)-k) == CLOSE_ERROR)
			sp_log(SP_LOG_INFO, "write failed", "fd=%d errno=%d", c->fd, (int)-k);
		conn_close(w, c, io_error_reason((int)-k));
		return false;
	}
	uint32_t events = sp_outq_consume(&c->q, &L->pool, (size_t)k, c->chunked,
					  &w->lat_delivery, sp_now_ns());
	sp_stat_add(&w->stats.deliveries, events);
	sp_stat_add(&w->stats.bytes_out, (uint64_t)k);
	if (c->blocked) {
		c->progress_ms = L->now_ms;
		sp_list_move_tail(&L->blocked, &c->blocked_link);
	}
	return true;
}

/* After a flush wrote <written> bytes: timers, and what comes next. */
static void conn_flushed(struct sp_worker *w, struct conn *c, size_t written)
{
	struct sp_worker_local *L = w->local;

	if (c->state == CS_CLOSING)
		return;
	if (written > 0 && c->state == CS_STREAMING) {
		c->t_ms = L->now_ms;
		sp_list_move_tail(&L->idle, &c->timer_link);
	}
	if (c->q.count == 0) {
		if (c->blocked) {
			c->blocked = false;
			sp_list_del(&c->blocked_link);
		}
		if (c->state == CS_RESPONDING)
			conn_close(w, c, CLOSE_DONE);
	} else if (!c->blocked) {
		conn_want_flush(w, c);   /* budget used up: continue next round */
	}
}

/* Write as much of the out-queue as the socket takes, up to a budget. */
void conn_flush(struct sp_worker *w, struct conn *c)
{
	struct iovec iov[IOV_BATCH];
	size_t written = 0;

	/* Depth distribution: one sample per flush of a connection. */
	sp_hist_add_shift(&w->queue_depth, c->q.count, 0);
	while (c->state != CS_CLOSING && written < WRITE_BUDGET) {
		int n = sp_outq_iov(&c->q, c->chunked, iov, IOV_BATCH);
		if (n == 0)
			break;
		ssize_t k = writev(c->fd, iov, n);
		if (k == -1 && errno == EINTR)
			continue;
		if (!conn_wrote(w, c, k == -1 ? -errno : k))
			return;
		written += (size_t)k;
	}
	conn_flushed(w, c, written);
}

/* One io_uring write came back: the same accounting as a writev. A
 * connection gets one write per round here; if more remains,
 * conn_flushed puts it on the next round. */
static void uwrite_done(void *arg, void *tag, ssize_t res)
{
	struct sp_worker *w = arg;
	struct conn *c = tag;   /* valid: connections are freed only in reap() */

	if (c->state == CS_CLOSING)
		return;
	if (res == -EINTR) {
		conn_want_flush(w, c);   /* nothing written: again next round */
		return;
	}
	if (conn_wrote(w, c, res))
		conn_flushed(w, c, (size_t)res);
}

static void uwrite_submit(struct sp_worker *w)
{
	struct sp_worker_local *L = w->local;
	int rc = sp_uwrite_submit(L->uw, uwrite_done, w);

	if (rc < 0) {
		/* The connections whose writes are unaccounted for were closed
		 * by uwrite_done (their bytes may or may not have gone out). */
		sp_log(SP_LOG_WARN, "io_uring write batch failed; using writev from now on",
		       "worker=%u err=\"%s\"", w->id, strerror(-rc));
		sp_uwrite_free(L->uw);
		L->uw = NULL;
	}
}

/* io_uring available: one sendmsg per connection, all in one submit. The
 * out-queue's iovecs are built in the batch's own array: no copy. */
static void flush_round_uring(struct sp_worker *w, struct sp_list *round)
{
	struct sp_worker_local *L = w->local;
	struct sp_list *it;

	while ((it = sp_list_first(round)) != NULL) {
		struct conn *c = sp_container_of(it, struct conn, pending_link);
		sp_list_del(it);
		c->want_flush = false;
		if (c->blocked || c->state == CS_CLOSING)
			continue;
		struct iovec *iov = L->uw ? sp_uwrite_next(L->uw) : NULL;
		if (iov == NULL && L->uw != NULL) {
			uwrite_submit(w);     /* batch full */
			iov = L->uw ? sp_uwrite_next(L->uw) : NULL;
		}
		if (iov == NULL) {
			conn_flush(w, c);     /* the write path failed: writev */
			continue;
		}
		sp_hist_add_shift(&w->queue_depth, c->q.count, 0);
		int n = sp_outq_iov(&c->q, c->chunked, iov, (int)sp_uwrite_iov_max(L->uw));
		if (n == 0)
			conn_flushed(w, c, 0);
		else
			sp_uwrite_queue(L->uw, c->fd, n, c);   /* room checked by _next */
	}
	if (L->uw != NULL)
		uwrite_submit(w);
}

void conn_flush_pending(struct sp_worker *w)
{
	struct sp_worker_local *L = w->local;
	struct sp_list round;

	/* Detach this round so connections that re-queue go to the next. */
	sp_list_take(&round, &L->pending);

	if (L->uw != NULL) {
		flush_round_uring(w, &round);
		return;
	}
	struct sp_list *it;
	while ((it = sp_list_first(&round)) != NULL) {
		struct conn *c = sp_container_of(it, struct conn, pending_link);
		sp_list_del(it);
		c->want_flush = false;
		if (!c->blocked)
			conn_flush(w, c);
	}
}
