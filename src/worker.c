/*
 * worker.c - one worker thread: its loop, reading, timers and connection
 * lifetime (writing is in worker_write.c).
 *
 * A worker owns its connections from the moment the acceptor hands over the
 * fd until it closes it: it alone reads, writes and frees them. Closing is
 * deferred to the end of the loop iteration (conn_close only marks), so no
 * pointer held by the current iteration - an epoll event, a topic's
 * subscriber array being walked - can dangle.
 *
 * One loop iteration:
 *   1. wait for readiness (0 ms if work is left over from the last round);
 *   2. handle socket events (read requests, notice writability);
 *   3. adopt new fds from the acceptor;
 *   4. drain the router's frame ring (bounded) into connection out-queues;
 *   5. flush every connection with queued bytes (worker_write.c): one
 *      io_uring submit for all of them when available, else a writev each;
 *   6. send subscribe/unsubscribe messages, then run the timers;
 *   7. free the connections closed during this iteration.
 *
 * Timers cost O(expired), not O(connections): each timer list is kept in
 * deadline order by moving a connection to the tail whenever its clock
 * restarts (request start, last write, last write progress).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "spout/frame.h"
#include "spout/log.h"
#include "spout/proxyproto.h"
#include "spout/sys.h"
#include "worker_internal.h"

#define ACCEPT_BUDGET 256
#define FRAME_BUDGET 4096
#define TICK_MS 50

static char wake_tag;

void conn_want_flush(struct sp_worker *w, struct conn *c)
{
	if (!c->want_flush && c->state != CS_CLOSING) {
		c->want_flush = true;
		sp_list_add_tail(&w->local->pending, &c->pending_link);
	}
}

/* One line per shed connection, at most 10 per second per worker: a storm
 * of sheds must not become a storm of log lines. What was held back is
 * counted and reported in the next second's first line. */
static void log_shed(struct sp_worker *w, struct conn *c, enum close_reason why)
{
	struct sp_worker_local *L = w->local;
	uint64_t second = L->now_ms / 1000;

	if (second != L->log_window_ms) {
		L->log_window_ms = second;
		L->log_lines = 0;
	}
	if (L->log_lines >= 10) {
		L->log_suppressed++;
		sp_stat_add(&w->stats.sheds_logged_suppressed, 1);
		return;
	}
	L->log_lines++;
	sp_log(SP_LOG_INFO, "shed slow consumer", "worker=%u fd=%d reason=%s queued=%u suppressed=%u",
	       w->id, c->fd, why == CLOSE_OVERFLOW ? "overflow" : "write_timeout", c->q.count,
	       L->log_suppressed);
	L->log_suppressed = 0;
}

void conn_close(struct sp_worker *w, struct conn *c, enum close_reason why)
{
	struct sp_worker_stats *st = &w->stats;

	if (c->state == CS_CLOSING)
		return;
	switch (why) {
	case CLOSE_CLIENT: sp_stat_add(&st->closed_client, 1); break;
	case CLOSE_ERROR: sp_stat_add(&st->closed_error, 1); break;
	case CLOSE_OVERFLOW: sp_stat_add(&st->shed_overflow, 1); break;
	case CLOSE_WRITE_TIMEOUT:
		sp_stat_add(&st->shed_write_timeout, 1);
		sp_stat_add(&st->events_dropped, c->q.count);
		sp_stat_add(&st->drops_write_timeout, c->q.count);
		break;
	case CLOSE_SHUTDOWN: sp_stat_add(&st->closed_shutdown, 1); break;
	case CLOSE_TOKEN_EXPIRED: sp_stat_add(&st->closed_token_expired, 1); break;
	case CLOSE_DONE:
		if (c->bad_request)
			sp_stat_add(&st->closed_bad_request, 1);
		break;
	}
	if (why == CLOSE_OVERFLOW || why == CLOSE_WRITE_TIMEOUT) {
		log_shed(w, c, why);
		/* Shed: reset rather than close. A plain close() leaves the
		 * unsent bytes (up to 2 x --sndbuf) with an orphan socket in
		 * FIN-WAIT-1 that retransmits into a dead link for minutes,
		 * outside anything spoutd counts; a reset frees them now. The
		 * client, slow or gone, reconnects either way. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (c->dash)
		dash_forget(w, c);
	c->state = CS_CLOSING;
	sp_list_del(&c->timer_link);
	sp_list_del(&c->blocked_link);
	sp_list_del(&c->pending_link);
	sp_heap_remove(&w->local->expiring, &c->expiry_pos);
	c->want_flush = false;
	c->next_close = w->local->close_list;
	w->local->close_list = c;
}

static void conn_free(struct sp_worker *w, struct conn *c)
{
	struct sp_worker_local *L = w->local;

	sp_ev_del(&L->ev, c->fd);
	close(c->fd);
	sp_list_del(&c->all_link);
	sub_unsubscribe_all(w, c);
	sp_outq_clear(&c->q, &L->pool);
	if (c->replay != NULL)
		sub_replay_free(c->replay);
	free(c->rbuf);
	free(c->pub);
	if (c->limit_held) {
		struct sp_ipaddr key;
		sp_ipaddr_limit_key(&c->client, &key);
		sp_connlimit_release(&w->broker->per_ip, &key);
	}
	atomic_fetch_sub_explicit(&w->broker->open_conns, 1, memory_order_relaxed);
	sp_stat_add(&w->stats.conns_open, (uint64_t)-1);
	if (c->replay_inflight || c->pub_inflight) {
		/* The router's answer names this struct: keep it (fd closed,
		 * nothing else held) until the answer arrives. */
		c->state = CS_ZOMBIE;
		sp_list_add_tail(&L->zombies, &c->all_link);
		return;
	}
	free(c);
}

int conn_queue_response(struct sp_worker *w, struct conn *c, struct sp_frame *f)
{
	struct sp_worker_local *L = w->local;
	struct sp_wref *wr = sp_wref_get(&L->pool, f, 1);
	struct sp_outq_drops none = { 0 };   /* unbounded: never drops */

	if (wr == NULL) {
		sp_frame_release(f);
		return -ENOMEM;
	}
	wr->replayed = true;   /* responses and replays: not live deliveries */
	if (sp_outq_push(&c->q, &L->pool, wr, c->chunked, &L->lim_response, &none) != 0) {
		sp_wref_put(&L->pool, wr);
		return -ENOMEM;
	}
	conn_want_flush(w, c);
	return 0;
}

void conn_admit(struct sp_worker *w, struct conn *c)
{
	struct sp_ipaddr key;

	sp_ipaddr_limit_key(&c->client, &key);
	if (sp_connlimit_acquire(&w->broker->per_ip, &key) == 0) {
		c->limit_held = w->broker->per_ip.max > 0;
	} else {
		c->over_limit = true;
		sp_stat_add(&w->stats.rejected_per_ip, 1);
	}
}

/* A trusted proxy's connection begins with a PROXY header: take the
 * client's address from it. Returns the header's length, 0 if it is not
 * complete yet, -1 if it was refused (a 400 is on its way). */
static ssize_t read_proxy_header(struct sp_worker *w, struct conn *c, const char *buf, size_t len)
{
	struct sp_proxy_info pi;
	const char *reason = NULL;
	ssize_t k = sp_proxy_parse(buf, len, &pi, &reason);

	if (k == 0)
		return 0;
	if (k < 0) {
		sp_stat_add(&w->stats.proxy_errors, 1);
		http_fail(w, c, 400, reason);
		return -1;
	}
	c->proxy_pending = false;
	if (pi.has_addr) {
		c->client = pi.src;
		conn_admit(w, c);
	}
	return k;
}

/* Keep the bytes of a head that came in pieces. Returns 0 or -ENOMEM.
 * Most requests arrive whole and never get here. */
static int stash_partial(struct conn *c, const char *buf, size_t len)
{
	if (c->rbuf != NULL)
		return 0;   /* read straight into it */
	c->rbuf = malloc(SP_HTTP_HEAD_MAX + 1);
	if (c->rbuf == NULL)
		return -ENOMEM;
	memcpy(c->rbuf, buf, len);
	c->rlen = (uint32_t)len;
	return 0;
}

/* Readable: parse the request head while reading it; afterwards only
 * watch for the peer closing (SSE clients send nothing more). */
static void conn_read(struct sp_worker *w, struct conn *c)
{
	struct sp_worker_local *L = w->local;

	while (c->state != CS_CLOSING) {
		char *dst = L->scratch;
		size_t room = sizeof(L->scratch);
		if (c->state == CS_READING && c->rbuf != NULL) {
			dst = c->rbuf + c->rlen;
			room = SP_HTTP_HEAD_MAX + 1 - c->rlen;
		}
		ssize_t n = read(c->fd, dst, room);
		if (n == 0) {
			conn_close(w, c, CLOSE_CLIENT);
			return;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_close(w, c, io_error_reason(errno));
			return;
		}
		if (c->state == CS_BODY) {
			pub_on_body(w, c, dst, (size_t)n);
			continue;
		}
		if (c->state != CS_READING)
			continue;   /* bytes after the head (or the body) are ignored */

		const char *buf = dst;
		size_t len = (size_t)n;
		if (c->rbuf != NULL) {
			c->rlen += (uint32_t)n;
			buf = c->rbuf;
			len = c->rlen;
		}
		if (c->proxy_pending) {
			ssize_t k = read_proxy_header(w, c, buf, len);
			if (k < 0)
				continue;
			if (k == 0) {
				if (stash_partial(c, buf, len) != 0) {
					conn_close(w, c, CLOSE_ERROR);
					return;
				}
				continue;
			}
			buf += k;
			len -= (size_t)k;
			if (c->rbuf != NULL) {
				memmove(c->rbuf, buf, len);
				c->rlen = (uint32_t)len;
				buf = c->rbuf;
			}
			if (len == 0)
				continue;
		}
		size_t head = sp_http_head_end(buf, len);
		if (head > 0) {
			http_on_head(w, c, buf, head, len);
			free(c->rbuf);
			c->rbuf = NULL;
			continue;
		}
		int status = sp_http_check_partial(buf, len);
		if (status == 0 && len > w->broker->cfg->max_request_bytes)
			status = 431;
		if (status != 0) {
			if (status == 431)
				sp_stat_add(&w->stats.rejected_headers, 1);
			http_fail(w, c, status, status == 414 ? "request target too long" :
					status == 431 ? "request head too large" :
					"not an HTTP request");
			continue;
		}
		if (stash_partial(c, buf, len) != 0) {
			conn_close(w, c, CLOSE_ERROR);
			return;
		}
	}
}

/* Who is on the other end: a client (counted against its address's
 * limit now), or a trusted proxy (the client is named later, by a PROXY
 * header or X-Forwarded-For). */
static void classify_peer(struct sp_worker *w, struct conn *c)
{
	const struct sp_config *cfg = w->broker->cfg;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == -1 ||
	    sp_ipaddr_from_sockaddr((struct sockaddr *)&ss, &c->client) != 0)
		return;   /* unix socket, or gone already: nothing to count */
	c->peer_trusted = sp_cidr_list_match(cfg->trusted_proxies, cfg->ntrusted_proxies,
					     &c->client);
	if (c->peer_trusted)
		c->proxy_pending = cfg->proxy_protocol;
	else
		conn_admit(w, c);
}

static void adopt(struct sp_worker *w, int fd)
{
	struct sp_worker_local *L = w->local;
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (c == NULL) {
		close(fd);
		atomic_fetch_sub_explicit(&w->broker->open_conns, 1, memory_order_relaxed);
		return;
	}
	/* SSE frames are small and latency matters more than packet count:
	 * with Nagle, an event written while the previous one is unacked
	 * would wait a round trip. Bursts are already batched by writev. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A fixed send buffer (no autotuning up to tcp_wmem's 4 MiB) bounds
	 * what a stalled client pins in the kernel, so the memory behind a
	 * slow consumer is --queue-bytes + 2 x --sndbuf, and it is shed
	 * after a predictable backlog. SSE needs little: 64 KiB is over
	 * 500 KB/s at 100 ms RTT. */
	int sndbuf = (int)w->broker->cfg->sndbuf;
	if (sndbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	c->fd = fd;
	c->state = CS_READING;
	c->t_ms = L->now_ms;
	c->expiry_pos = SP_HEAP_NONE;
	classify_peer(w, c);
	if (sp_ev_add(&L->ev, fd, SP_EV_READ | SP_EV_WRITE, c) != 0) {
		close(fd);
		free(c);
		atomic_fetch_sub_explicit(&w->broker->open_conns, 1, memory_order_relaxed);
		return;
	}
	sp_list_add_tail(&L->reading, &c->timer_link);
	sp_list_add_tail(&L->all, &c->all_link);
	sp_stat_add(&w->stats.conns_open, 1);
}

/* Returns true if the ring still had fds when the budget ran out. */
static bool drain_accept(struct sp_worker *w)
{
	uintptr_t v;

	for (int i = 0; i < ACCEPT_BUDGET; i++) {
		if (!sp_ring_pop_consumer(&w->accept_ring, &v))
			return false;
		adopt(w, (int)v);
	}
	return true;
}

static bool drain_frames(struct sp_worker *w)
{
	uintptr_t v;

	for (int i = 0; i < FRAME_BUDGET; i++) {
		if (!sp_ring_pop_consumer(&w->frame_ring, &v))
			return false;
		if (v & SP_RING_TAG_CTL) {
			sub_on_ack(w, (struct sp_ctl *)(v & ~SP_RING_TAG_CTL));
		} else {
			struct sp_frame *f = (struct sp_frame *)v;
			sp_hist_add(&w->lat_queue, sp_now_ns() - f->born_ns);
			sub_on_frame(w, f);
		}
	}
	return true;
}

static void run_timers(struct sp_worker *w)
{
	struct sp_worker_local *L = w->local;
	const struct sp_config *cfg = w->broker->cfg;
	uint64_t now = L->now_ms;
	struct sp_list *it;

	while ((it = sp_list_first(&L->reading)) != NULL) {
		struct conn *c = sp_container_of(it, struct conn, timer_link);
		if (c->t_ms + cfg->header_timeout_ms > now)
			break;
		sp_stat_add(&w->stats.header_timeouts, 1);
		http_fail(w, c, 408, "request head not received in time");
	}
	while ((it = sp_list_first(&L->blocked)) != NULL) {
		struct conn *c = sp_container_of(it, struct conn, blocked_link);
		if (c->progress_ms + cfg->write_timeout_ms > now)
			break;
		conn_close(w, c, CLOSE_WRITE_TIMEOUT);
	}
	dash_tick(w);
	struct conn *ex;
	uint64_t due;
	while ((ex = sp_heap_min(&L->expiring, &due)) != NULL && due <= now) {
		sp_heap_remove(&L->expiring, &ex->expiry_pos);
		if (ex->state == CS_STREAMING)
			http_expire_stream(w, ex);
		else
			conn_close(w, ex, CLOSE_TOKEN_EXPIRED);
	}
	while ((it = sp_list_first(&L->idle)) != NULL) {
		struct conn *c = sp_container_of(it, struct conn, timer_link);
		if (c->t_ms + cfg->heartbeat_ms > now)
			break;
		c->t_ms = now;
		sp_list_move_tail(&L->idle, &c->timer_link);
		/* A connection with bytes queued is not idle; the write
		 * timeout watches it instead. */
		if (c->q.count == 0) {
			struct sp_outq_drops none = { 0 };   /* empty queue: fits */
			sp_outq_push(&c->q, &L->pool, &L->heartbeat, c->chunked, &L->lim, &none);
			conn_want_flush(w, c);
			sp_stat_add(&w->stats.heartbeats, 1);
		}
	}
}

/* SIGTERM drain: end this worker's streams spread evenly over --drain-ms
 * (the share due by now, oldest-written first), so their clients come back
 * to other nodes a few at a time instead of all at once. New stream
 * requests get 503 meanwhile (worker_http.c). */
static void drain_step(struct sp_worker *w, uint64_t start_ms)
{
	struct sp_worker_local *L = w->local;
	uint64_t drain_ms = w->broker->cfg->drain_ms;
	struct sp_list *it;

	if (!L->draining) {
		L->draining = true;
		for (it = L->all.next; it != &L->all; it = it->next) {
			struct conn *c = sp_container_of(it, struct conn, all_link);
			if (c->state == CS_STREAMING)
				L->drain_total++;
		}
	}
	uint64_t elapsed = L->now_ms > start_ms ? L->now_ms - start_ms : 0;
	uint64_t due = elapsed >= drain_ms ? UINT32_MAX
					   : (uint64_t)L->drain_total * elapsed / drain_ms;
	while (L->drain_done < due && (it = sp_list_first(&L->idle)) != NULL) {
		http_end_stream(w, sp_container_of(it, struct conn, timer_link));
		L->drain_done++;
	}
}

static void reap(struct sp_worker *w)
{
	struct sp_worker_local *L = w->local;

	while (L->close_list != NULL) {
		struct conn *c = L->close_list;
		L->close_list = c->next_close;
		conn_free(w, c);
	}
}

static int worker_setup(struct sp_worker *w)
{
	const struct sp_config *cfg = w->broker->cfg;
	struct sp_worker_local *L = calloc(1, sizeof(*L));

	if (L == NULL)
		return -ENOMEM;
	w->local = L;
	sp_list_init(&L->reading);
	sp_list_init(&L->idle);
	sp_list_init(&L->blocked);
	sp_list_init(&L->pending);
	sp_list_init(&L->all);
	sp_list_init(&L->zombies);
	L->rng = sp_now_ns() ^ ((uint64_t)(w->id + 1) << 32) ^ 0x9e3779b97f4a7c15ull;
	L->lim.max_events = cfg->queue_events;
	L->lim.max_bytes = cfg->queue_bytes;
	L->lim.policy = cfg->overflow;
	L->flush_events = cfg->queue_events / 2 ? cfg->queue_events / 2 : 1;
	L->flush_bytes = cfg->queue_bytes / 2;
	L->lim_response.max_events = UINT32_MAX;
	L->lim_response.max_bytes = UINT64_MAX;
	L->lim_response.policy = SP_OVERFLOW_DISCONNECT;
	L->now_ms = sp_now_ms();
	/* One comment frame per worker, shared by every stream through a
	 * pinned wref that is never recycled. */
	L->heartbeat.frame = sp_frame_new_chunk(":\n\n", 3);
	if (L->heartbeat.frame == NULL)
		return -ENOMEM;
	L->heartbeat.frame->flags |= SP_FRAME_STATIC;
	L->heartbeat.pinned = true;
	if (sp_tmap_init(&L->topics, 1024) != 0 || sp_ev_init(&L->ev) != 0)
		return -ENOMEM;
	if (sp_ev_add(&L->ev, w->wake_fd, SP_EV_READ, &wake_tag) != 0)
		return -EIO;
	conn_write_init(w);
	return 0;
}

/* Stop: end every stream cleanly (the terminating chunk tells HTTP/1.1
 * clients the stream ended on purpose), give the kernel what we can
 * without blocking, close everything. */
static void worker_shutdown(struct sp_worker *w)
{
	struct sp_worker_local *L = w->local;
	struct sp_list *it;

	for (it = L->all.next; it != &L->all; it = it->next) {
		struct conn *c = sp_container_of(it, struct conn, all_link);
		if (c->state == CS_STREAMING && c->chunked && !c->blocked) {
			struct sp_frame *end = sp_frame_new_raw("0\r\n\r\n", 5);
			if (end != NULL && conn_queue_response(w, c, end) == 0)
				conn_flush(w, c);
		}
		conn_close(w, c, CLOSE_SHUTDOWN);
	}
	reap(w);
}

static void worker_teardown(struct sp_worker *w)
{
	struct sp_worker_local *L = w->local;

	if (L == NULL)
		return;
	struct sp_list *it;
	while ((it = sp_list_first(&L->zombies)) != NULL) {
		sp_list_del(it);
		free(sp_container_of(it, struct conn, all_link));
	}
	sub_teardown(w);
	sp_heap_free(&L->expiring);
	free(L->dash_prev);
	if (L->topics.buckets != NULL)
		sp_tmap_destroy(&L->topics);
	sp_wref_pool_destroy(&L->pool);
	if (L->heartbeat.frame != NULL)
		sp_frame_destroy(L->heartbeat.frame);
	sp_ev_close(&L->ev);
	sp_uwrite_free(L->uw);
	free(L);
	w->local = NULL;
}

void *sp_worker_main(void *arg)
{
	struct sp_worker *w = arg;
	struct sp_ev_event evs[256];
	bool more = false;

	if (worker_setup(w) != 0) {
		/* At start-up, so nothing to save: the acceptor would keep
		 * handing connections to a worker that never runs. */
		sp_log(SP_LOG_ERROR, "worker setup failed", "worker=%u", w->id);
		exit(1);
	}
	sp_broker_thread_ready(w->broker);
	struct sp_worker_local *L = w->local;
	while (!atomic_load_explicit(&w->stop, memory_order_acquire)) {
		int timeout = more || !sp_list_empty(&L->pending) ? 0 : TICK_MS;
		if (timeout != 0) {
			bool a = sp_ring_sleep_consumer(&w->frame_ring);
			bool b = sp_ring_sleep_consumer(&w->accept_ring);
			if (!a || !b)
				timeout = 0;
		}
		int n = sp_ev_wait(&L->ev, evs, 256, timeout);
		sp_ring_wake_consumer(&w->frame_ring);
		sp_ring_wake_consumer(&w->accept_ring);
		uint64_t round_ns = sp_now_ns();
		L->now_ms = round_ns / 1000000u;
		for (int i = 0; i < n; i++) {
			if (evs[i].ptr == &wake_tag) {
				uint64_t v;
				ssize_t k = read(w->wake_fd, &v, sizeof(v));
				(void)k;
				continue;
			}
			struct conn *c = evs[i].ptr;
			if (c->state == CS_CLOSING)
				continue;
			if (evs[i].events & SP_EV_READ)
				conn_read(w, c);
			if ((evs[i].events & SP_EV_WRITE) && c->blocked && c->state != CS_CLOSING) {
				c->blocked = false;
				sp_list_del(&c->blocked_link);
				conn_flush(w, c);
			}
		}
		more = drain_accept(w);
		more = drain_frames(w) || more;
		conn_flush_pending(w);
		sub_flush_ctl(w);
		run_timers(w);
		uint64_t drain_start = atomic_load_explicit(&w->broker->drain_start_ms,
							    memory_order_acquire);
		if (drain_start != 0)
			drain_step(w, drain_start);
		sp_stat_set(&w->stats.queue_depth_hwm, L->queue_depth_max);
		reap(w);
		sp_hist_add(&w->lat_loop, sp_now_ns() - round_ns);
	}
	worker_shutdown(w);
	worker_teardown(w);
	return NULL;
}
