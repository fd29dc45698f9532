/*
 * acceptor.c - the acceptor thread: accept4() on the HTTP listener and hand
 * each fd to the least-loaded worker through that worker's accept ring.
 *
 * No parsing here. Past --max-conns, or when every worker's ring is full,
 * the acceptor itself writes a fixed 503 and closes (no parsing needed), so
 * an overload is answered, counted and cheap. Acceptor thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "spout/broker.h"
#include "spout/ev.h"
#include "spout/log.h"
#include "spout/sys.h"

#define ACCEPT_BATCH 256

static char listen_tag, stop_tag;

/* Answer 503 without reading the request (no parsing on the acceptor) and
 * close. <retry_s> becomes Retry-After. Best effort: a fresh socket's send
 * buffer always takes this much. */
static void reject(int fd, const char *why, unsigned retry_s)
{
	char buf[256];
	size_t blen = strlen(why) + 1;
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 503 Service Unavailable\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\n"
			 "Retry-After: %u\r\n"
			 "Connection: close\r\n"
			 "\r\n"
			 "%s\n", blen, retry_s, why);
	ssize_t k = write(fd, buf, (size_t)n);
	(void)k;
	close(fd);
}

/* Retry-After for a rate-limited client: 1..5 s, so a reconnect wave comes
 * back spread out rather than as the same wave a second later. */
static unsigned jittered_retry_after(struct sp_acceptor *a)
{
	a->rng ^= a->rng << 13;
	a->rng ^= a->rng >> 7;
	a->rng ^= a->rng << 17;
	return 1 + (unsigned)(a->rng % 5);
}

/* Token bucket for --max-accept-rate: up to one second's worth of burst. */
static bool rate_allows(struct sp_acceptor *a, uint64_t now_ns)
{
	uint32_t rate = a->broker->cfg->max_accept_rate;

	if (rate == 0)
		return true;
	double add = (double)(now_ns - a->bucket_ns) * rate / 1e9;
	a->bucket_ns = now_ns;
	a->tokens = a->tokens + add > rate ? rate : a->tokens + add;
	if (a->tokens < 1.0)
		return false;
	a->tokens -= 1.0;
	return true;
}

/* Above --memory-high-pct of the cgroup's memory limit, refuse new
 * connections rather than wait for the OOM killer. Re-read every 100 ms. */
static bool memory_allows(struct sp_acceptor *a, uint64_t now_ns)
{
	struct sp_broker *b = a->broker;

	if (b->memory_limit == 0)
		return true;
	if (now_ns - a->mem_checked_ns > 100000000u) {
		a->mem_checked_ns = now_ns;
		uint64_t cur = sp_sys_memory_current();
		a->mem_high = cur > b->memory_limit / 100 * b->cfg->memory_high_pct;
	}
	return !a->mem_high;
}

/* Least connections; ties go round-robin so an idle broker still spreads. */
static struct sp_worker *pick_worker(struct sp_acceptor *a)
{
	struct sp_broker *b = a->broker;
	struct sp_worker *best = NULL;
	uint64_t best_n = UINT64_MAX;

	for (unsigned i = 0; i < b->nworkers; i++) {
		struct sp_worker *w = &b->workers[(a->next + i) % b->nworkers];
		uint64_t n = sp_stat_get(&w->stats.conns_open) + sp_ring_count_any(&w->accept_ring);
		if (n < best_n) {
			best_n = n;
			best = w;
		}
	}
	a->next++;
	return best;
}

/* Hand <fd> over; false if every accept ring is full. */
static bool hand_over(struct sp_acceptor *a, int fd, bool *pushed)
{
	struct sp_broker *b = a->broker;
	struct sp_worker *w = pick_worker(a);

	for (unsigned i = 0; i <= b->nworkers; i++) {
		if (sp_ring_push_producer(&w->accept_ring, (uintptr_t)fd)) {
			pushed[w->id] = true;
			return true;
		}
		w = &b->workers[(w->id + 1) % b->nworkers];
	}
	return false;
}

/* Accept up to a batch. Returns true if more may be waiting (the batch ran
 * out, or we are out of fds and must retry shortly). */
static bool accept_batch(struct sp_acceptor *a, bool *pushed)
{
	struct sp_broker *b = a->broker;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return false;
			sp_stat_add(&a->stats.accept_errors, 1);
			if (errno == EMFILE || errno == ENFILE) {
				/* Out of fds: the pending connections stay in the
				 * backlog; retry after a pause (which also rate-
				 * limits this line). */
				sp_log(SP_LOG_WARN, "accept: out of file descriptors",
				       "limit=%llu open=%u", (unsigned long long)b->nofile_limit,
				       atomic_load(&b->open_conns));
				a->starved = true;
				return false;
			}
			sp_log(SP_LOG_WARN, "accept failed", "errno=%d", errno);
			return false;
		}
		sp_stat_add(&a->stats.accepted, 1);
		uint64_t now = sp_now_ns();
		if (!rate_allows(a, now)) {
			sp_stat_add(&a->stats.rejected_accept_rate, 1);
			reject(fd, "too many new connections, retry later", jittered_retry_after(a));
			continue;
		}
		if (!memory_allows(a, now)) {
			sp_stat_add(&a->stats.rejected_memory, 1);
			reject(fd, "memory limit near, retry later", jittered_retry_after(a));
			continue;
		}
		uint32_t open = atomic_fetch_add_explicit(&b->open_conns, 1, memory_order_relaxed);
		if (open >= b->max_conns) {
			atomic_fetch_sub_explicit(&b->open_conns, 1, memory_order_relaxed);
			sp_stat_add(&a->stats.rejected_max_conns, 1);
			reject(fd, "too many connections, retry", 1);
			continue;
		}
		if (!hand_over(a, fd, pushed)) {
			atomic_fetch_sub_explicit(&b->open_conns, 1, memory_order_relaxed);
			sp_stat_add(&a->stats.rejected_queue_full, 1);
			reject(fd, "too many connections, retry", 1);
		}
	}
	return true;
}

static void signal_workers(struct sp_acceptor *a, bool *pushed)
{
	struct sp_broker *b = a->broker;

	for (unsigned w = 0; w < b->nworkers; w++) {
		if (!pushed[w])
			continue;
		pushed[w] = false;
		if (sp_ring_push_done_producer(&b->workers[w].accept_ring))
			sp_wake(b->workers[w].wake_fd);
	}
}

void *sp_acceptor_main(void *arg)
{
	struct sp_acceptor *a = arg;
	struct sp_broker *b = a->broker;
	struct sp_ev ev;
	struct sp_ev_event evs[4];
	bool *pushed = calloc(b->nworkers, sizeof(*pushed));

	/* Set-up failures happen at start-up: exit rather than run a broker
	 * that looks alive and accepts nothing. */
	if (pushed == NULL || sp_ev_init(&ev) != 0 ||
	    sp_ev_add(&ev, a->listen_fd, SP_EV_READ, &listen_tag) != 0 ||
	    sp_ev_add(&ev, a->wake_fd, SP_EV_READ, &stop_tag) != 0) {
		sp_log_msg(SP_LOG_ERROR, "acceptor setup failed");
		exit(1);
	}
	sp_broker_thread_ready(a->broker);
	while (!atomic_load_explicit(&a->stop, memory_order_acquire)) {
		int n = sp_ev_wait(&ev, evs, 4, a->starved ? 100 : 1000);
		bool ready = a->starved;
		for (int i = 0; i < n; i++)
			if (evs[i].ptr == &listen_tag)
				ready = true;
		a->starved = false;
		/* Edge-triggered: accept until EAGAIN, in batches so the
		 * workers hear about new fds promptly. */
		while (ready && !atomic_load_explicit(&a->stop, memory_order_relaxed)) {
			ready = accept_batch(a, pushed);
			signal_workers(a, pushed);
		}
	}
	sp_ev_close(&ev);
	free(pushed);
	return NULL;
}
