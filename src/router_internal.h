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

struct pubconn {
	int fd;
	struct sp_list ready_link;    /* on L->ready while there is work */
	struct sp_list all_link;
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
};

struct sp_router_local {
	struct sp_ev ev;
	struct sp_tmap topics;        /* topics and patterns, by name */
	struct sp_ptrie patterns;     /* wild rtopics, by what they match */
	uint64_t *route_bits;         /* scratch: workers one event goes to */
	unsigned words;               /* uint64_t words per worker bitset */
	struct sp_list ready;         /* publishers with input to process */
	struct sp_list all;
	bool *dirty;                  /* frame rings pushed this iteration */
	int stalled_on;               /* worker whose full ring stalls us, or -1 */
	uint64_t stall_start_ns;
	struct sp_lp_limits limits;
	size_t in_max;
	struct sp_history hist;
	bool accept_retry;            /* EMFILE on the publisher listener */
	struct sp_tmap tstats;        /* topic -> struct tstat_ref (--topic-metrics) */
	uint32_t tstats_used;
};

struct tstat_ref {
	struct sp_tnode node;
	struct sp_topic_stat *slot;
};

/* router.c: route one event to the interested workers and into history.
 * Returns 0 with <*id> set, -EAGAIN when a frame ring is full (nothing was
 * done: retry after the stall), -ENOMEM. */
int router_route(struct sp_router *r, struct sp_event *ev, uint64_t *id);

/* router_pub.c */
void pub_accept(struct sp_router *r);       /* accept until EAGAIN */
void pub_serve_ready(struct sp_router *r);  /* serve publishers with work */
void pub_flush(struct pubconn *pc);         /* write pending replies */
void pub_close(struct sp_router *r, struct pubconn *pc);

#endif
