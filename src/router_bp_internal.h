/*
 * router_bp_internal.h - the backplane's state, shared by router_bp.c
 * (links, subscriptions, receiving, publishing, health) and
 * router_bp_replay.c (resuming from Redis' history). Router thread only.
 */
#ifndef SPOUT_ROUTER_BP_INTERNAL_H
#define SPOUT_ROUTER_BP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "spout/rlink.h"
#include "spout/sys.h"
#include "router_internal.h"

#define KEY_MAX (SP_REDIS_PREFIX_MAX + SP_TOPIC_MAX + 16)

/* rtopic.bp: where this node's Redis subscription for the name stands. */
enum bp_sub {
	BPS_NONE = 0,       /* not subscribed (backplane down) */
	BPS_WAIT_UNSUB,     /* an UNSUBSCRIBE of the same name is in flight */
	BPS_PENDING,        /* SUBSCRIBE sent */
	BPS_LIVE,           /* confirmed: every later event reaches us */
};

/* A name whose UNSUBSCRIBE is in flight. hiredis keeps one callback per
 * channel and drops it on the unsubscribe confirmation, so subscribing
 * again before that confirmation would lose the channel's messages. */
struct unsub {
	struct sp_tnode node;
	char name[];
};

struct bp_replay {
	struct sp_list link;          /* on bp->waiting */
	struct sp_bp *bp;
	struct sp_replay *rp;
	unsigned worker;
	int gap;
	uint64_t snap;                /* Redis' counter when the first read ran */
	bool listing;                 /* the read in flight also lists topics */
	struct sp_frame **frames;
	size_t n, cap;
};

struct sp_bp {
	struct sp_router *r;
	const struct sp_config *cfg;
	struct sp_rlink_set set;
	struct sp_rlink cmd, sub;
	bool open;                    /* links exist (connecting or up) */
	bool cmd_ready, sub_ready, up;
	int setup_left;               /* <cmd> set-up replies still due */
	char sha_publish[48], sha_replay[48];
	uint64_t retry_at_ms, backoff_ms;
	uint64_t next_probe_ms, probe_ok_ms;  /* probe_ok 0: none back yet */
	uint64_t up_ms;
	uint64_t floor;               /* highest id this node saw or handed out */
	uint64_t epoch;               /* <base> of the newest event received */
	bool more;                    /* the links have unread input */
	struct sp_tmap unsubs;
	struct sp_list waiting;       /* replays waiting for live subscriptions */
	struct sp_frame **inbox;      /* received, waiting for ring room */
	size_t in_head, in_n, in_cap;
	char key_seq[KEY_MAX], key_base[KEY_MAX], key_topics[KEY_MAX];
	char chan[KEY_MAX];           /* "<prefix>:e:" */
	size_t chan_len;
	char hb[KEY_MAX];             /* "<prefix>:hb:<node>" */
	char history[16], ttl_ms[24];
	char why[160];                /* the last failure, for the down log */
};

static inline uint64_t now_ms(void)
{
	return sp_now_ms();
}

/* A decimal uint64 from a reply (string or integer); 0 when it is not one. */
static inline uint64_t reply_u64(const redisReply *r)
{
	if (r == NULL)
		return 0;
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer > 0 ? (uint64_t)r->integer : 0;
	if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
		return 0;
	uint64_t v = 0;
	for (size_t i = 0; i < r->len; i++) {
		if (r->str[i] < '0' || r->str[i] > '9')
			return i > 0 && r->str[i] == '-' ? v : 0;   /* "123-0" stream ids */
		v = v * 10 + (uint64_t)(r->str[i] - '0');
	}
	return v;
}

/* The Redis key of <topic>'s stream: "{prefix}:s:<topic>". */
void bp_stream_key(const struct sp_bp *bp, const char *topic, size_t len, char *out);

/* router_bp_replay.c: start the waiting replays whose subscriptions are
 * confirmed; answer one from local history alone (Redis away). */
void bp_kick_replays(struct sp_bp *bp);
void bp_replay_fallback(struct bp_replay *br);

#endif
