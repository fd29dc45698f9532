/*
 * broker.h - the threads of one spoutd process and the queues between them.
 *
 *                 accept4()                      PUB/EVENT lines
 *   clients ---> [acceptor] --fd ring--+         publishers ---> [router]
 *                                      |                          |  ^
 *                                      v                          |  |
 *                    +------------ [worker 0..N-1] <--frame ring--+  |
 *                    |  epoll loop, owns its connections  --ctl ring-+
 *                    v
 *                 SSE streams
 *
 * Every ring is single-producer/single-consumer (ring.h):
 *   acceptor -> worker  accept ring : accepted fds (uintptr_t)
 *   router   -> worker  frame ring  : (--ring-size) struct sp_frame *, or a returned
 *                                     struct sp_ctl * tagged with bit 0 (ack)
 *   worker   -> router  ctl ring    : struct sp_ctl * (subscribe/unsubscribe)
 *
 * Ownership crossing threads:
 *   - an fd pushed on an accept ring belongs to the worker from then on;
 *   - a frame pushed on a frame ring carries one reference for that worker;
 *   - an sp_ctl belongs to the router from push until the router pushes it
 *     back as an ack, then to the worker again (which recycles it).
 * See docs/threads.md for the full list.
 */
#ifndef SPOUT_BROKER_H
#define SPOUT_BROKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "spout/config.h"
#include "spout/connlimit.h"
#include "spout/frame.h"
#include "spout/hist.h"
#include "spout/ring.h"
#include "spout/stats.h"
#include "spout/topic.h"

#define SP_ACCEPT_RING 4096
#define SP_CTL_RING 4096

/* A request from a worker to the router, answered on the frame ring. */
enum sp_ctl_type { SP_CTL_SUB = 1, SP_CTL_UNSUB, SP_CTL_REPLAY, SP_CTL_PUBLISH };

struct sp_ctl {
	enum sp_ctl_type type;
	uint16_t topic_len;
	uint64_t topic_hash;
	struct sp_ctl *next;          /* worker-local backlog / freelist; router:
				       * parked-ack and outbox chains */
	unsigned from;                /* router: the worker it came from */
	char topic[SP_TOPIC_MAX + 1];
};

#define SP_REPLAY_TOPICS_MAX 64

/*
 * SP_CTL_REPLAY: one connection resuming after <after> (its Last-Event-ID).
 * The worker fills the request half; the router fills the answer half and
 * pushes the message back. Because the answer travels on the frame ring in
 * order, every frame published after <upto> reaches the worker after the
 * answer, and every frame up to <upto> on these topics is in <frames> (or
 * reported lost through <gap>): replay and live traffic meet with no gap
 * and no duplicate.
 */
struct sp_replay {
	struct sp_ctl hdr;            /* hdr.type == SP_CTL_REPLAY */
	/* request (worker) */
	void *conn;                   /* the worker's cookie; router ignores it */
	uint64_t after;
	unsigned ntopics;
	const char *topic[SP_REPLAY_TOPICS_MAX];  /* point into names[] */
	uint16_t len[SP_REPLAY_TOPICS_MAX];
	/* answer (router) */
	struct sp_frame **frames;     /* malloc'd; one reference each */
	size_t nframes;
	int gap;                      /* enum sp_gap */
	uint64_t upto;                /* newest id published when answered */
	/* Router, cluster mode: <frames> came from Redis; merge local history
	 * and set <upto> at the moment the answer enters the frame ring. */
	bool merge_local;
	char names[];
};

/*
 * SP_CTL_PUBLISH: an HTTP publish (POST /publish/<topic>, worker_pub.c).
 * The worker fills the request half; the router routes the event (through
 * Redis in cluster mode) and pushes the message back on the frame ring,
 * after the event's own frame, with the answer filled in.
 */
struct sp_pubreq {
	struct sp_ctl hdr;            /* hdr.topic, topic_len, topic_hash: the topic */
	/* request (worker) */
	void *conn;                   /* the worker's cookie; router ignores it */
	struct sp_ipaddr client;      /* --pub-max-rate counts per address */
	uint16_t event_len;           /* 0: no event type */
	char event[SP_EVENT_TYPE_MAX + 1];
	uint64_t dedup;               /* hash of topic + idempotency key; 0 = none */
	size_t data_len;
	/* answer (router) */
	uint64_t id;                  /* the event's id, or 0 when refused */
	bool dup;                     /* <id> is an earlier publish's: same key */
	int status;                   /* HTTP status of a refusal */
	const char *err;              /* static reason of a refusal */
	char data[];
};

#define SP_RING_TAG_CTL ((uintptr_t)1)

/* Counters a worker owns (written only by it; read by /metrics). */
struct sp_worker_stats {
	sp_counter conns_open;        /* gauge */
	sp_counter requests;
	sp_counter streams_opened;
	sp_counter frames_in;         /* frames received from the router */
	sp_counter deliveries;        /* event frames fully written to a socket */
	sp_counter bytes_out;
	sp_counter events_dropped;    /* queued events never delivered (all reasons) */
	sp_counter drops_oldest;      /* ... dropped to make room (drop-oldest/latest) */
	sp_counter drops_conflated;   /* ... replaced by a newer one (latest) */
	sp_counter drops_overflow;    /* ... lost with a connection shed on overflow */
	sp_counter drops_write_timeout; /* ... lost with a connection that timed out */
	sp_counter shed_overflow;
	sp_counter shed_write_timeout;
	sp_counter closed_client;
	sp_counter closed_error;
	sp_counter closed_shutdown;
	sp_counter bad_requests;      /* 4xx/5xx answers to malformed requests */
	sp_counter header_timeouts;
	sp_counter heartbeats;
	sp_counter write_eagain;
	sp_counter ctl_backlog;       /* sub/unsub that waited for ctl-ring room */
	sp_counter queue_depth_hwm;   /* deepest out-queue seen (high-water mark) */
	sp_counter reconnects;        /* stream requests carrying Last-Event-ID */
	sp_counter closed_bad_request;
	sp_counter closed_drain;
	sp_counter sheds_logged_suppressed; /* shed log lines over the rate limit */
	/* limits and auth (docs/security.md) */
	sp_counter rejected_per_ip;   /* 429: --max-conns-per-ip */
	sp_counter rejected_headers;  /* 431: --max-request-bytes / --max-headers */
	sp_counter proxy_errors;      /* 400: bad PROXY header or X-Forwarded-For */
	sp_counter auth_ok;           /* streams opened with a valid token */
	sp_counter auth_missing;      /* 401: no token where one is needed */
	sp_counter auth_invalid;      /* 401: bad, expired or refused token */
	sp_counter auth_forbidden;    /* 403: a topic the token does not grant */
	sp_counter closed_token_expired; /* streams ended when their token expired */
	sp_counter pub_auth_failures; /* POST /publish with a wrong --pub-token */
};

struct sp_router_stats {
	sp_counter events_published;
	sp_counter events_unrouted;   /* published with no subscriber anywhere */
	sp_counter frames_routed;     /* frame pushes, one per worker per event */
	sp_counter pub_conns_open;    /* gauge */
	sp_counter pub_conns_total;
	sp_counter pub_errors;        /* ERR replies */
	sp_counter pub_auth_failures; /* wrong AUTH tokens (connection closed) */
	sp_counter pub_rate_limited;  /* ERR rate limit (--pub-max-rate) */
	sp_counter pub_idle_closed;   /* closed by --pub-idle-timeout-ms (or no AUTH in time) */
	sp_counter pub_rejected_conns;/* refused past --pub-max-conns */
	sp_counter http_publishes;    /* POST /publish answered with an id */
	sp_counter http_publish_errors; /* ... refused by the router (rate, backplane) */
	sp_counter stalls;            /* times a full frame ring paused publishers */
	sp_counter stall_ns;
	sp_counter topics;            /* gauge: topics with subscribers */
	sp_counter subs_processed;
	sp_counter replays;           /* Last-Event-ID resumptions answered */
	sp_counter replayed_events;   /* frames handed out by those */
	sp_counter replay_gaps;       /* resumptions that could not be exact */
	sp_counter history_events;    /* gauge */
	sp_counter history_bytes;     /* gauge */
	sp_counter history_evicted;
	sp_counter history_budget;    /* gauge: the --history-bytes in force */
};

/* Cluster mode (--redis); all zero on a single node. Router writes. */
struct sp_bp_stats {
	sp_counter up;                /* gauge: both Redis links set up */
	sp_counter ready;             /* gauge: up and the probe comes back */
	sp_counter connects;          /* times the backplane came up */
	sp_counter errors;            /* link failures, timeouts, error replies */
	sp_counter publishes;         /* events stored through Redis (OK sent) */
	sp_counter publish_errors;    /* publishes answered ERR by the backplane */
	sp_counter events_received;   /* events from Redis pub/sub */
	sp_counter duplicates;        /* same event twice (topic + pattern) */
	sp_counter subscriptions;     /* gauge: channels + patterns held */
	sp_counter probe_rtt_ns;      /* gauge: last heartbeat round trip */
	sp_counter replays;           /* resumptions answered from Redis */
	sp_counter resets;            /* Redis id epochs seen change */
	sp_counter inbox;             /* gauge: received events waiting for ring room */
};

/* What /readyz says about the backplane (sp_router.bp_health). */
enum sp_bp_health { SP_BP_OFF = 0, SP_BP_READY, SP_BP_CONNECTING, SP_BP_DOWN, SP_BP_STALLED };

struct sp_acceptor_stats {
	sp_counter accepted;
	sp_counter rejected_max_conns;
	sp_counter rejected_queue_full;
	sp_counter rejected_accept_rate;
	sp_counter rejected_memory;
	sp_counter accept_errors;
};

/* Lifecycle, for /readyz: 503 unless RUNNING. */
enum sp_phase { SP_PHASE_STARTING = 0, SP_PHASE_RUNNING, SP_PHASE_DRAINING };

struct sp_broker;
struct sp_worker_local;   /* worker.c */
struct sp_router_local;   /* router.c */

struct sp_worker {
	unsigned id;
	struct sp_broker *broker;
	pthread_t thread;
	int wake_fd;                  /* eventfd: any producer -> this worker */
	_Atomic bool stop;            /* main -> worker */
	struct sp_ring accept_ring;   /* acceptor -> worker */
	struct sp_ring frame_ring;    /* router -> worker */
	struct sp_ring ctl_ring;      /* worker -> router */
	struct sp_worker_stats stats;
	struct sp_hist lat_delivery;  /* publish -> fully written, live events */
	struct sp_hist lat_queue;     /* router push -> worker pop */
	struct sp_hist lat_loop;      /* epoll return -> round handled */
	struct sp_hist queue_depth;   /* out-queue depth at each flush (events) */
	struct sp_worker_local *local;/* the worker thread's private state */
};

/* A per-topic series for --topic-metrics. The router fills <name> once,
 * then publishes the slot with a release store of <used>; /metrics reads
 * <used> with acquire before <name>. */
struct sp_topic_stat {
	_Atomic int used;
	char name[SP_TOPIC_MAX + 1];
	sp_counter published;
};

struct sp_router {
	struct sp_broker *broker;
	pthread_t thread;
	int listen_fd;
	int wake_fd;                  /* eventfd: workers' ctl rings -> router */
	_Atomic bool stop;
	uint64_t last_id;             /* newest id assigned; router thread only */
	uint64_t first_id;            /* first id of this process (see ids_init) */
	struct sp_router_stats stats;
	struct sp_bp_stats bp;
	_Atomic int bp_health;        /* enum sp_bp_health; router writes */
	struct sp_topic_stat *topic_stats;   /* cfg->topic_metrics_max slots */
	sp_counter topic_stats_overflow;     /* publishes on topics past the cap */
	struct sp_router_local *local;
};

struct sp_acceptor {
	struct sp_broker *broker;
	pthread_t thread;
	int listen_fd;
	int wake_fd;                  /* main -> acceptor: stop */
	_Atomic bool stop;
	unsigned next;                /* round-robin tie-break */
	bool starved;                 /* EMFILE: retry accept on a timer */
	double tokens;                /* --max-accept-rate bucket */
	uint64_t bucket_ns;
	uint64_t rng;                 /* Retry-After jitter */
	uint64_t mem_checked_ns;      /* memory guard, re-read every 100 ms */
	bool mem_high;
	struct sp_acceptor_stats stats;
};

struct sp_auth;

struct sp_broker {
	const struct sp_config *cfg;
	const struct sp_auth *auth;   /* subscriber auth; NULL = off (read-only) */
	struct sp_connlimit per_ip;   /* --max-conns-per-ip, shared by the workers */
	unsigned nworkers;
	uint32_t max_conns;
	uint64_t nofile_limit;
	uint64_t started_ns;
	_Atomic uint32_t open_conns;  /* acceptor adds, workers subtract */
	/* Threads past their set-up (each adds 1 once): sp_broker_start
	 * returns only when all are, so "started" means serving. */
	_Atomic unsigned threads_ready;
	_Atomic int phase;            /* enum sp_phase; main writes */
	/* CLOCK_MONOTONIC ms when draining began, 0 before: main writes once,
	 * workers read it each loop round and close their streams spread
	 * over --drain-ms from then on. */
	_Atomic uint64_t drain_start_ms;
	uint64_t memory_limit;        /* cgroup memory.max, 0 = none */
	sp_counter reconnect_storm;   /* gauge 0/1, main thread's monitor */
	sp_counter reconnect_rate;    /* gauge: reconnects/s over 10 s */
	uint64_t reconnect_samples[11];/* main thread: one total per second */
	unsigned nsamples;
	struct sp_worker *workers;
	struct sp_router router;
	struct sp_acceptor acceptor;
};

/* Create the listeners, rings and threads. Returns 0 or -errno after
 * logging why. Main thread. */
/* Called once by each broker thread when its set-up is done. */
void sp_broker_thread_ready(struct sp_broker *b);

/* <auth>: from sp_auth_new, or NULL; it must outlive the broker. */
int sp_broker_start(struct sp_broker *b, const struct sp_config *cfg,
		    const struct sp_auth *auth);
/* Begin a graceful drain: readyz answers 503, new stream requests are told
 * to reconnect elsewhere, workers close their streams spread over
 * --drain-ms; the listener stays open until sp_broker_stop. Returns at
 * once. Main thread. */
void sp_broker_drain(struct sp_broker *b);
/* Connections still open. Any thread. */
static inline uint32_t sp_broker_open(struct sp_broker *b)
{
	return atomic_load_explicit(&b->open_conns, memory_order_relaxed);
}
/* Once a second from main: reconnect-storm signal (gauge + log line). */
void sp_broker_monitor(struct sp_broker *b);
/* Stop accepting, close every stream cleanly, join and free. Main thread. */
void sp_broker_stop(struct sp_broker *b);

/* Thread entry points (broker.c starts them). */
void *sp_worker_main(void *arg);
void *sp_router_main(void *arg);
void *sp_acceptor_main(void *arg);

/* Write 1 to an eventfd. Any thread. */
void sp_wake(int efd);

/* Render the Prometheus text exposition into a malloc'd buffer; sets <*len>.
 * Any worker thread (reads other threads' counters relaxed). NULL on ENOMEM. */
char *sp_metrics_render(struct sp_broker *b, size_t *len);

#endif
