/*
 * router_bp_replay.c - cluster mode: resuming a stream (Last-Event-ID)
 * from the history Redis keeps, on the router thread.
 *
 * A replay waits until every one of the client's topics is subscribed and
 * confirmed at Redis (so nothing published after the read can be missed),
 * then runs the replay script (router_bp_lua.h) over the topics' streams;
 * patterns first list the topics published since the client's id. The
 * answer goes to the worker sorted by id and is completed with local
 * history as it enters the ring (router.c). Whenever Redis cannot answer,
 * local history answers alone and the client is told (spout-gap).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "spout/log.h"
#include "spout/ptrie.h"
#include "spout/topic.h"
#include "router_bp_internal.h"

#define PATTERN_TOPICS_MAX 1024   /* topics one pattern replay reads */

static void replay_read(struct bp_replay *br, const char *const *names, const uint16_t *lens,
			unsigned n, bool list);

static void replay_free(struct bp_replay *br)
{
	for (size_t i = 0; i < br->n; i++)
		sp_frame_release(br->frames[i]);
	free(br->frames);
	free(br);
}

/* Answer from local history only (Redis away or failing): the client is
 * told it may have missed events unless it is fully up to date. */
void bp_replay_fallback(struct bp_replay *br)
{
	struct sp_router *r = br->bp->r;
	struct sp_replay *rp = br->rp;

	router_replay_local(r, rp);
	if (rp->gap == SP_GAP_NONE && (rp->after == 0 || rp->after < r->last_id))
		rp->gap = SP_GAP_EVICTED;
	router_ack(r, br->worker, &rp->hdr);
	replay_free(br);
}

static int cmp_frame_id(const void *a, const void *b)
{
	uint64_t x = (*(struct sp_frame *const *)a)->id, y = (*(struct sp_frame *const *)b)->id;
	return x < y ? -1 : x > y;
}

static void replay_finish(struct bp_replay *br)
{
	struct sp_replay *rp = br->rp;
	struct sp_router *r = br->bp->r;

	/* A frame reached through two names (a topic and a pattern) once.
	 * Frames newer than the first read's counter were published after
	 * it, so they reach this node live (router.c, finish_replay). */
	if (br->n > 1)
		qsort(br->frames, br->n, sizeof(*br->frames), cmp_frame_id);
	size_t k = 0;
	for (size_t i = 0; i < br->n; i++) {
		if (br->frames[i]->id > br->snap ||
		    (k > 0 && br->frames[k - 1]->id == br->frames[i]->id))
			sp_frame_release(br->frames[i]);
		else
			br->frames[k++] = br->frames[i];
	}
	rp->frames = br->frames;
	rp->nframes = k;
	rp->gap = br->gap;
	rp->upto = br->snap;
	rp->merge_local = true;
	br->frames = NULL;
	br->n = 0;
	sp_stat_add(&r->bp.replays, 1);
	sp_stat_add(&r->stats.replays, 1);
	if (rp->gap != SP_GAP_NONE)
		sp_stat_add(&r->stats.replay_gaps, 1);
	router_ack(r, br->worker, &rp->hdr);
	replay_free(br);
}

static int replay_keep(struct bp_replay *br, struct sp_frame *f)
{
	if (br->n == br->cap) {
		size_t cap = br->cap ? br->cap * 2 : 64;
		struct sp_frame **v = realloc(br->frames, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		br->frames = v;
		br->cap = cap;
	}
	br->frames[br->n++] = f;
	return 0;
}

/* One topic's part of a REPLAY answer: {name, last id, entries}. */
static int replay_topic(struct bp_replay *br, const redisReply *t)
{
	uint64_t after = br->rp->after;

	if (t->type != REDIS_REPLY_ARRAY || t->elements != 3 ||
	    t->element[0]->type != REDIS_REPLY_STRING || t->element[2]->type != REDIS_REPLY_ARRAY)
		return -EPROTO;
	const redisReply *name = t->element[0], *entries = t->element[2];
	if (entries->elements == 0) {
		/* Nothing retained after <after>: lost only if the topic had
		 * events after it (its stream expired or was dropped). */
		if (reply_u64(t->element[1]) > after)
			br->gap = SP_GAP_EVICTED;
		return 0;
	}
	for (size_t i = 0; i < entries->elements; i++) {
		const redisReply *e = entries->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements != 6)
			return -EPROTO;
		const redisReply *fv = e->element[1];
		uint64_t id = reply_u64(e->element[0]);
		if (id == 0)
			return -EPROTO;
		/* The first entry after <after> should follow it directly on
		 * this topic; if its predecessor is newer, trimming took some. */
		if (i == 0 && reply_u64(fv->element[1]) > after)
			br->gap = SP_GAP_EVICTED;
		struct sp_event ev = { .topic = name->str, .topic_len = name->len,
				       .event = fv->element[3]->len ? fv->element[3]->str : NULL,
				       .event_len = fv->element[3]->len,
				       .data = fv->element[5]->str, .data_len = fv->element[5]->len,
				       .id = id };
		ev.topic_hash = sp_topic_hash(ev.topic, ev.topic_len);
		struct sp_frame *f = sp_frame_new_event(&ev);
		if (f == NULL)
			return -ENOMEM;
		if (replay_keep(br, f) != 0) {
			sp_frame_release(f);
			return -ENOMEM;
		}
	}
	return 0;
}

/* Pattern phase: read the streams of the topics published since <after>
 * that one of the connection's patterns matches and no exact name covers. */
static bool replay_patterns(struct bp_replay *br, const redisReply *list)
{
	struct sp_replay *rp = br->rp;
	const char **names = malloc(PATTERN_TOPICS_MAX * sizeof(*names));
	uint16_t *lens = malloc(PATTERN_TOPICS_MAX * sizeof(*lens));
	unsigned n = 0;

	if (names == NULL || lens == NULL) {
		free(names);
		free(lens);
		br->gap = SP_GAP_EVICTED;
		return false;
	}
	for (size_t i = 0; i < list->elements; i++) {
		const redisReply *e = list->element[i];
		if (e->type != REDIS_REPLY_STRING || e->len > SP_TOPIC_MAX)
			continue;
		bool wanted = false, exact = false;
		for (unsigned k = 0; k < rp->ntopics; k++) {
			if (sp_pattern_is_wild(rp->topic[k], rp->len[k]))
				wanted |= sp_pattern_match(rp->topic[k], rp->len[k], e->str, e->len);
			else
				exact |= rp->len[k] == e->len && memcmp(rp->topic[k], e->str, e->len) == 0;
		}
		if (!wanted || exact)
			continue;
		if (n == PATTERN_TOPICS_MAX) {
			br->gap = SP_GAP_EVICTED;   /* too many to replay: say so */
			break;
		}
		names[n] = e->str;
		lens[n++] = (uint16_t)e->len;
	}
	if (list->elements >= 10000)
		br->gap = SP_GAP_EVICTED;           /* the script's LIMIT cut the list */
	if (n > 0)
		replay_read(br, names, lens, n, false);
	free(names);
	free(lens);
	return n > 0;
}

static void on_replay_read(redisAsyncContext *ac, void *reply, void *priv)
{
	struct bp_replay *br = priv;
	struct sp_bp *bp = br->bp;
	const redisReply *rep = reply;
	uint64_t after = br->rp->after;

	if (rep == NULL) {                  /* the link went away */
		bp_replay_fallback(br);
		return;
	}
	sp_rlink_replied(&bp->cmd, now_ms());
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
		sp_stat_add(&bp->r->bp.errors, 1);
		sp_log(SP_LOG_WARN, "backplane replay failed", "error=%s",
		       rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
		bp_replay_fallback(br);
		return;
	}
	uint64_t seq = reply_u64(rep->element[0]), base = reply_u64(rep->element[1]);
	if (br->snap == 0)
		br->snap = seq;                  /* the first read's, not the pattern phase's */
	if (after != 0 && seq != 0 && after > seq && br->gap == SP_GAP_NONE)
		br->gap = SP_GAP_UNKNOWN_ID;
	else if (after != 0 && (seq == 0 || after < base))
		br->gap = SP_GAP_EVICTED;   /* from before Redis' current counter */
	const redisReply *list = NULL;
	size_t end = rep->elements;
	if (br->listing) {
		list = rep->element[--end];         /* the topic list comes last */
		if (list->type != REDIS_REPLY_ARRAY || end < 2)
			list = NULL;
		br->listing = false;
	}
	for (size_t i = 2; i < end; i++) {
		int rc = replay_topic(br, rep->element[i]);
		if (rc != 0) {
			sp_stat_add(&bp->r->bp.errors, 1);
			sp_log(SP_LOG_WARN, "backplane replay failed", "error=%s",
			       rc == -ENOMEM ? "out of memory" : "unexpected reply");
			bp_replay_fallback(br);
			return;
		}
	}
	if (list != NULL && replay_patterns(br, list))
		return;   /* the pattern phase finishes it */
	replay_finish(br);
}

/* EVALSHA replay on <names>; with <list> also list recent topics. */
static void replay_read(struct bp_replay *br, const char *const *names, const uint16_t *lens,
			unsigned n, bool list)
{
	struct sp_bp *bp = br->bp;
	/* EVALSHA sha numkeys, 3 + n keys, after count list, n names */
	unsigned argc = 3 + 3 + n + 3 + n;
	const char **argv = calloc(argc, sizeof(*argv));
	size_t *alen = calloc(argc, sizeof(*alen));
	char *keys = malloc((size_t)n * KEY_MAX + 1);
	char nkeys[16], after[24], count[16];

	if (argv == NULL || alen == NULL || keys == NULL) {
		free(argv);
		free(alen);
		free(keys);
		bp_replay_fallback(br);
		return;
	}
	snprintf(nkeys, sizeof(nkeys), "%u", 3 + n);
	snprintf(after, sizeof(after), "%llu", (unsigned long long)br->rp->after);
	snprintf(count, sizeof(count), "%s", bp->history);
	unsigned a = 0;
	argv[a++] = "EVALSHA";
	argv[a++] = bp->sha_replay;
	argv[a++] = nkeys;
	argv[a++] = bp->key_seq;
	argv[a++] = bp->key_base;
	argv[a++] = bp->key_topics;
	for (unsigned i = 0; i < n; i++) {
		bp_stream_key(bp, names[i], lens[i], keys + (size_t)i * KEY_MAX);
		argv[a++] = keys + (size_t)i * KEY_MAX;
	}
	argv[a++] = after;
	argv[a++] = count;
	argv[a++] = list ? "1" : "0";
	for (unsigned i = 0; i < n; i++) {
		alen[a] = lens[i];
		argv[a++] = names[i];
	}
	for (unsigned i = 0; i < argc; i++)
		if (alen[i] == 0)
			alen[i] = strlen(argv[i]);
	br->listing = list;
	int rc = sp_rlink_command(&bp->cmd, on_replay_read, br, (int)argc, argv, alen, now_ms());
	free(argv);
	free(alen);
	free(keys);
	if (rc != 0)
		bp_replay_fallback(br);
}

static bool replay_ready(struct sp_bp *bp, const struct sp_replay *rp)
{
	struct sp_router_local *L = bp->r->local;

	for (unsigned i = 0; i < rp->ntopics; i++) {
		struct sp_tnode *n = sp_tmap_find(&L->topics, sp_topic_hash(rp->topic[i], rp->len[i]),
						  rp->topic[i], rp->len[i]);
		if (n != NULL && sp_container_of(n, struct rtopic, node)->bp != BPS_LIVE)
			return false;
	}
	return true;
}

static void replay_start(struct bp_replay *br)
{
	struct sp_replay *rp = br->rp;
	const char *names[SP_REPLAY_TOPICS_MAX];
	uint16_t lens[SP_REPLAY_TOPICS_MAX];
	unsigned n = 0;
	bool wild = false;

	for (unsigned i = 0; i < rp->ntopics; i++) {
		if (sp_pattern_is_wild(rp->topic[i], rp->len[i])) {
			wild = true;
			continue;
		}
		names[n] = rp->topic[i];
		lens[n++] = rp->len[i];
	}
	replay_read(br, names, lens, n, wild);
}

/* Start every waiting replay whose subscriptions are now confirmed. */
void bp_kick_replays(struct sp_bp *bp)
{
	struct sp_list round, *it;

	/* replay_start may fail over to a fallback that acks at once, but it
	 * never adds to <waiting>, so walking a taken copy is safe. */
	sp_list_take(&round, &bp->waiting);
	while ((it = sp_list_first(&round)) != NULL) {
		sp_list_del(it);
		struct bp_replay *br = sp_container_of(it, struct bp_replay, link);
		if (replay_ready(bp, br->rp))
			replay_start(br);
		else
			sp_list_add_tail(&bp->waiting, it);
	}
}

void bp_replay(struct sp_router *r, unsigned w, struct sp_replay *rp)
{
	struct sp_bp *bp = r->local->bp;
	struct bp_replay *br = calloc(1, sizeof(*br));

	if (br == NULL) {
		router_replay_local(r, rp);
		rp->gap = SP_GAP_EVICTED;
		router_ack(r, w, &rp->hdr);
		return;
	}
	br->bp = bp;
	br->rp = rp;
	br->worker = w;
	if (!bp->up) {
		bp_replay_fallback(br);
		return;
	}
	sp_list_add_tail(&bp->waiting, &br->link);
	bp_kick_replays(bp);
}
