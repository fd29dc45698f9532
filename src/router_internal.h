/*
 * router_internal.h - state private to the router thread, shared by
 * router.c (topic table, routing, ctl and replay answers, the loop) and
 * router_pub.c (publisher connections). Router thread only.
 */
#ifndef SPOUT_ROUTER_INTERNAL_H
#define SPOUT_ROUTER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spout/broker.h"
#include "spout/ev.h"
#include "spout/frame.h"
#include "spout/history.h"
#include "spout/lineproto.h"
#include "spout/list.h"
#include "spout/ptrie.h"
#include "spout/tmap.h"

/* A topic, or a pattern (<wild>), with subscribers on at least one worker.
 * Patterns are also in the pattern trie, which finds them by topic. */
struct rtopic {
	struct sp_tnode node;
	uint32_t nworkers;            /* bits set in <workers> */
	int policy;                   /* enum sp_overflow, from --policy/--overflow */
	bool wild;
	uint8_t bp;                   /* cluster: enum bp_sub (router_bp.c) */
	struct sp_ctl *parked;        /* cluster: SUB acks waiting for Redis */
	uint64_t workers[];           /* bitset, then the name */
};

struct sp_bp;                     /* router_bp.c */
struct hpub_rate;                 /* router_hpub.c */

/* Who waits for a publish's answer from Redis (cluster mode): a publisher
 * connection (router_pub.c) or an HTTP publish (router_hpub.c). <done>
 * gets the event's id, or 0 and a reason; <dup>: the id of an earlier
 * publish with the same idempotency key (nothing was published now). It
 * runs on the router thread. */
struct pub_waiter {
	struct sp_router *r;
	void (*done)(struct pub_waiter *wt, uint64_t id, bool dup, const char *reason);
};

struct pubconn {
	struct pub_waiter waiter;     /* waiter.r: the router */
	struct sp_router *r;
	int fd;
	struct sp_list ready_link;    /* on L->ready while there is work */
	struct sp_list all_link;
	/* On L->unauthed (by accept time) until AUTH passes, then on L->idle
	 * (least recently heard from first): the idle timers' lists. */
	struct sp_list timer_link;
	uint64_t accepted_ms;         /* the AUTH deadline counts from here */
	uint64_t heard_ms;            /* accept, or the last bytes received */
	double tokens;                /* --pub-max-rate bucket */
	uint64_t bucket_ns;
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off, out_cap;
	size_t discard;               /* payload bytes still to throw away */
	bool discard_line;            /* throw away up to the next \n */
	bool readable;                /* the socket may hold unread bytes */
	bool eof;
	bool quit;                    /* close once replies are flushed */
	bool dead;
	bool closed;                  /* cluster: fd gone, freed when inflight is 0 */
	bool authed;                  /* AUTH passed, or no --pub-token */
	uint32_t inflight;            /* cluster: publishes waiting for Redis */
};

struct sp_router_local {
	struct sp_ev ev;
	struct sp_tmap topics;        /* topics and patterns, by name */
	struct sp_ptrie patterns;     /* wild rtopics, by what they match */
	uint64_t *route_bits;         /* scratch: workers one event goes to */
	unsigned words;               /* uint64_t words per worker bitset */
	struct sp_list ready;         /* publishers with input to process */
	struct sp_list all;
	struct sp_list unauthed;      /* waiting for AUTH, oldest first */
	struct sp_list idle;          /* authenticated, least recently heard first */
	bool *dirty;                  /* frame rings pushed this iteration */
	int stalled_on;               /* worker whose full ring stalls us, or -1 */
	uint64_t stall_start_ns;
	struct sp_lp_limits limits;
	size_t in_max;
	struct sp_history hist;
	bool accept_retry;            /* EMFILE on the publisher listener */
	struct sp_tmap tstats;        /* topic -> struct tstat_ref (--topic-metrics) */
	uint32_t tstats_used;
	/* Acks (sp_ctl) that found no room in a worker's frame ring, in
	 * order; nothing else goes to that worker before them. */
	struct sp_ctl **outbox, **outbox_tail;
	struct sp_bp *bp;             /* cluster mode, else NULL */
	struct sp_list hpub_wait;     /* HTTP publishes a full ring holds back, in order */
	struct hpub_rate *hpub_rate;  /* --pub-max-rate per HTTP client address */
	struct hpub_dedup *hpub_dedup;/* idempotency keys seen (router_hpub.c) */
	/* Cluster mode: newest id pushed to workers. r->last_id is the newest
	 * received, which may still wait in the backplane's inbox. */
	uint64_t routed_id;
};

struct tstat_ref {
	struct sp_tnode node;
	struct sp_topic_stat *slot;
};

/* router.c: route one event to the interested workers and into history.
 * Returns 0 with <*id> set, -EAGAIN when a frame ring is full (nothing was
 * done: retry after the stall), -ENOMEM. */
int router_route(struct sp_router *r, struct sp_event *ev, uint64_t *id);

/* router.c: route a framed event whose id is set (cluster mode: from
 * Redis). Takes over the caller's reference on 0; -EAGAIN leaves it. */
int router_route_frame(struct sp_router *r, struct sp_frame *f);

/* router.c: hand <c> back to worker <w> (an ack or a replay answer), now
 * if its frame ring has room and nothing is queued before it, else later
 * in order. */
void router_ack(struct sp_router *r, unsigned w, struct sp_ctl *c);

/* router.c: answer a replay from local history alone (single node, or
 * cluster mode while Redis is away). */
void router_replay_local(struct sp_router *r, struct sp_replay *rp);

/* router_bp.c: cluster mode. Without --redis, bp_init leaves L->bp NULL
 * and nothing else may be called. */
int bp_init(struct sp_router *r);                 /* 0 or -errno */
void bp_destroy(struct sp_router *r);
void bp_on_ready(struct sp_router *r);            /* its fd fired */
/* Timers, reconnects, queued input; returns the loop timeout to use. */
int bp_tick(struct sp_router *r, int timeout_ms);
/* A topic gained its first worker (true: its SUB acks may go now) or lost
 * its last (parked acks are released). */
bool bp_topic_added(struct sp_router *r, struct rtopic *t);
void bp_topic_removed(struct sp_router *r, struct rtopic *t);
/* Whether SUB acks for an existing topic must wait for Redis. */
bool bp_topic_waits(const struct sp_router *r, const struct rtopic *t);
/* Publish through Redis: 0 (<wt>->done runs with the answer later),
 * -ENOTCONN, -ENOMEM. <dedup>: an HTTP publish's idempotency key (hash of
 * topic and key), 0 for none: Redis then publishes it once per
 * --publish-dedup-s. */
int bp_publish(struct sp_router *r, struct pub_waiter *wt, const struct sp_event *ev,
	       uint64_t dedup);
/* Answer <rp> from worker <w> from Redis' history (eventually). */
void bp_replay(struct sp_router *r, unsigned w, struct sp_replay *rp);

/* router_pub.c */
void pub_accept(struct sp_router *r);       /* accept until EAGAIN */
void pub_expire_idle(struct sp_router *r);  /* --pub-idle-timeout-ms, AUTH deadline */
void pub_serve_ready(struct sp_router *r);  /* serve publishers with work */
void pub_flush(struct pubconn *pc);         /* write pending replies */
void pub_close(struct sp_router *r, struct pubconn *pc);

/* router_hpub.c: HTTP publishes (struct sp_pubreq from worker <w>). */
void hpub_submit(struct sp_router *r, unsigned w, struct sp_pubreq *req);
void hpub_retry(struct sp_router *r);        /* those a full ring held back */
void hpub_teardown(struct sp_router *r);

#endif
