/*
 * broker.c - start and stop the threads of one spoutd and the queues
 * between them (see broker.h for the picture). Main thread only.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "spout/auth.h"
#include "spout/broker.h"
#include "spout/frame.h"
#include "spout/log.h"
#include "spout/sys.h"

#define LISTEN_BACKLOG 4096
#define FD_RESERVE 64     /* listeners, epoll, eventfds, publishers, logs */

void sp_wake(int efd)
{
	uint64_t one = 1;
	ssize_t n = write(efd, &one, sizeof(one));
	(void)n;  /* EAGAIN means the counter is already non-zero: awake */
}

static int listen_on(const struct sp_addr *a, const char *what)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd == -1)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1)
		goto fail;
	return fd;
fail:;
	int err = errno;
	sp_log(SP_LOG_ERROR, "cannot listen", "what=%s addr=%s error=\"%s\"", what, a->text,
	       strerror(err));
	if (fd != -1)
		close(fd);
	return -err;
}

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	return fd == -1 ? -errno : fd;
}

static int workers_init(struct sp_broker *b)
{
	b->workers = calloc(b->nworkers, sizeof(*b->workers));
	if (b->workers == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < b->nworkers; i++) {
		struct sp_worker *w = &b->workers[i];
		w->id = i;
		w->broker = b;
		w->wake_fd = new_eventfd();
		if (w->wake_fd < 0)
			return w->wake_fd;
		if (sp_ring_init(&w->accept_ring, SP_ACCEPT_RING) != 0 ||
		    sp_ring_init(&w->frame_ring, b->cfg->ring_size) != 0 ||
		    sp_ring_init(&w->ctl_ring, SP_CTL_RING) != 0)
			return -ENOMEM;
	}
	return 0;
}

int sp_broker_start(struct sp_broker *b, const struct sp_config *cfg,
		    const struct sp_auth *auth)
{
	int rc;

	memset(b, 0, sizeof(*b));
	b->cfg = cfg;
	b->auth = auth;
	b->started_ns = sp_now_ns();
	b->nworkers = cfg->workers ? cfg->workers : sp_sys_cpus();
	b->nofile_limit = sp_sys_raise_nofile();
	uint64_t reserve = FD_RESERVE + 4ull * b->nworkers;
	uint64_t auto_max = b->nofile_limit > reserve + 16 ? b->nofile_limit - reserve : 16;
	b->max_conns = cfg->max_conns ? cfg->max_conns : (uint32_t)auto_max;
	if (b->max_conns > auto_max)
		sp_log(SP_LOG_WARN, "max-conns exceeds what the open-files limit allows",
		       "max_conns=%u nofile=%llu", b->max_conns,
		       (unsigned long long)b->nofile_limit);
	b->router.broker = b;
	b->acceptor.broker = b;
	/* Everything the threads read is set before they start. */
	b->memory_limit = sp_sys_memory_limit();
	b->acceptor.rng = sp_now_ns() | 1;
	b->acceptor.tokens = cfg->max_accept_rate;
	b->acceptor.bucket_ns = sp_now_ns();
	b->router.listen_fd = b->acceptor.listen_fd = -1;
	b->router.wake_fd = b->acceptor.wake_fd = -1;

	if ((rc = sp_connlimit_init(&b->per_ip, cfg->max_conns_per_ip, b->max_conns)) != 0)
		return rc;
	if ((rc = workers_init(b)) != 0)
		return rc;
	if (cfg->ntopic_metrics > 0 &&
	    (b->router.topic_stats = calloc(cfg->topic_metrics_max, sizeof(*b->router.topic_stats))) == NULL)
		return -ENOMEM;
	if ((rc = b->acceptor.listen_fd = listen_on(&cfg->http, "http")) < 0)
		return rc;
	if ((rc = b->router.listen_fd = listen_on(&cfg->pub, "pub")) < 0)
		return rc;
	if ((rc = b->router.wake_fd = new_eventfd()) < 0)
		return rc;
	if ((rc = b->acceptor.wake_fd = new_eventfd()) < 0)
		return rc;

	if ((rc = pthread_create(&b->router.thread, NULL, sp_router_main, &b->router)) != 0)
		return -rc;
	for (unsigned i = 0; i < b->nworkers; i++)
		if ((rc = pthread_create(&b->workers[i].thread, NULL, sp_worker_main,
					 &b->workers[i])) != 0)
			return -rc;
	if ((rc = pthread_create(&b->acceptor.thread, NULL, sp_acceptor_main, &b->acceptor)) != 0)
		return -rc;
	/* Wait for every thread's set-up (a failing one exits the process):
	 * until then the listeners already queue connections, but "started"
	 * and a stable process (fds, memory) mean every thread is serving. */
	unsigned want = b->nworkers + 2;
	for (int waited_ms = 0; atomic_load(&b->threads_ready) < want; waited_ms++) {
		if (waited_ms == 30000)
			return -ETIMEDOUT;
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	atomic_store(&b->phase, SP_PHASE_RUNNING);
	sp_log(SP_LOG_INFO, "spoutd started",
	       "version=%s http=%s pub=%s workers=%u max_conns=%u nofile=%llu queue=%u "
	       "overflow=%s write_timeout_ms=%u heartbeat_ms=%u auth=%s pub_auth=%s",
	       SP_VERSION, cfg->http.text, cfg->pub.text, b->nworkers, b->max_conns,
	       (unsigned long long)b->nofile_limit, cfg->queue_events,
	       cfg->overflow == SP_OVERFLOW_DISCONNECT ? "disconnect" :
	       cfg->overflow == SP_OVERFLOW_DROP_OLDEST ? "drop-oldest" : "latest",
	       cfg->write_timeout_ms, cfg->heartbeat_ms,
	       auth == NULL ? "off" : sp_auth_mode(auth) == SP_AUTH_REQUIRED ? "required" : "optional",
	       cfg->pub_token[0] ? "token" : "none");
	return 0;
}

void sp_broker_thread_ready(struct sp_broker *b)
{
	atomic_fetch_add(&b->threads_ready, 1);
}

static void stop_thread(pthread_t *t, _Atomic bool *stop, int wake_fd)
{
	if (*t == 0)
		return;
	atomic_store_explicit(stop, true, memory_order_release);
	sp_wake(wake_fd);
	pthread_join(*t, NULL);
	*t = 0;
}

void sp_broker_drain(struct sp_broker *b)
{
	/* readyz answers 503 from now on and new streams get 503 + Retry-After,
	 * while the listener stays open so the load balancer can still read
	 * readyz and /metrics; it closes when the drain ends (sp_broker_stop). */
	atomic_store(&b->phase, SP_PHASE_DRAINING);
	atomic_store_explicit(&b->drain_start_ms, sp_now_ms(), memory_order_release);
	sp_log(SP_LOG_INFO, "draining", "drain_ms=%u open=%u", b->cfg->drain_ms, sp_broker_open(b));
}

void sp_broker_monitor(struct sp_broker *b)
{
	/* reconnects over the last 10 one-second samples */
	uint64_t *samples = b->reconnect_samples;
	unsigned n = b->nsamples;
	uint64_t total = 0;

	for (unsigned i = 0; i < b->nworkers; i++)
		total += sp_stat_get(&b->workers[i].stats.reconnects);
	samples[n % 11] = total;
	b->nsamples = ++n;
	if (n < 2)
		return;
	unsigned span = n < 11 ? n - 1 : 10;
	uint64_t rate = (total - samples[(n - 1 - span) % 11]) / span;
	sp_stat_set(&b->reconnect_rate, rate);
	bool storm = b->cfg->storm_threshold != 0 && rate > b->cfg->storm_threshold;
	if (storm != (sp_stat_get(&b->reconnect_storm) != 0)) {
		sp_stat_set(&b->reconnect_storm, storm);
		if (storm)
			sp_log(SP_LOG_WARN, "reconnect storm", "rate_per_s=%llu threshold=%u",
			       (unsigned long long)rate, b->cfg->storm_threshold);
		else
			sp_log(SP_LOG_INFO, "reconnect storm over", "rate_per_s=%llu",
			       (unsigned long long)rate);
	}
}

static void free_ctl(struct sp_ctl *c)
{
	if (c->type == SP_CTL_REPLAY) {
		struct sp_replay *rp = (struct sp_replay *)c;
		for (size_t i = 0; i < rp->nframes; i++)
			sp_frame_release(rp->frames[i]);
		free(rp->frames);
	}
	free(c);
}

/* After every thread has stopped: what is still queued is ours to free. */
static void drain_rings(struct sp_worker *w)
{
	uintptr_t v;

	while (sp_ring_pop_consumer(&w->accept_ring, &v))
		close((int)v);
	while (sp_ring_pop_consumer(&w->frame_ring, &v)) {
		if (v & SP_RING_TAG_CTL)
			free_ctl((struct sp_ctl *)(v & ~SP_RING_TAG_CTL));
		else
			sp_frame_release((struct sp_frame *)v);
	}
	while (sp_ring_pop_consumer(&w->ctl_ring, &v))
		free_ctl((struct sp_ctl *)v);
}

void sp_broker_stop(struct sp_broker *b)
{
	/* Acceptor first (no new connections), then the workers (they end
	 * their streams), then the router (publishers). */
	stop_thread(&b->acceptor.thread, &b->acceptor.stop, b->acceptor.wake_fd);
	for (unsigned i = 0; b->workers != NULL && i < b->nworkers; i++)
		stop_thread(&b->workers[i].thread, &b->workers[i].stop, b->workers[i].wake_fd);
	stop_thread(&b->router.thread, &b->router.stop, b->router.wake_fd);

	for (unsigned i = 0; b->workers != NULL && i < b->nworkers; i++) {
		struct sp_worker *w = &b->workers[i];
		if (w->accept_ring.slots != NULL)
			drain_rings(w);
		sp_ring_destroy(&w->accept_ring);
		sp_ring_destroy(&w->frame_ring);
		sp_ring_destroy(&w->ctl_ring);
		if (w->wake_fd >= 0)
			close(w->wake_fd);
	}
	free(b->workers);
	b->workers = NULL;
	free(b->router.topic_stats);
	b->router.topic_stats = NULL;
	sp_connlimit_destroy(&b->per_ip);
	int fds[] = { b->acceptor.listen_fd, b->acceptor.wake_fd, b->router.listen_fd,
		      b->router.wake_fd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
}
