/*
 * router_bp.c - cluster mode: the Redis backplane, on the router thread.
 *
 * Two hiredis connections per node (src/rlink.c), driven from the router's
 * loop: <cmd> runs the publish and replay scripts (router_bp_lua.h) and the
 * heartbeat PUBLISH, pipelined; <sub> holds this node's SUBSCRIBEs. A
 * publish goes to Redis first, which assigns the id (one counter for the
 * cluster), stores the event in the topic's stream and PUBLISHes it; the
 * publisher gets OK only after that. Every node, this one included, then
 * receives the event on <sub> and routes it through the same SPSC path as
 * a single node. So all nodes deliver the same events, in the same order,
 * with the same ids.
 *
 * A node subscribes to a topic's channel (a pattern's glob) only while a
 * local client wants it. A SUB ack, and so a client's stream head, waits
 * for Redis to confirm the subscription: an event published after a client
 * saw its head is never missed.
 *
 * Resumption (router_bp_replay.c) reads the shared history after the
 * subscriptions are confirmed, and the answer is completed with the local
 * history when it enters the worker's ring (router.c, finish_replay):
 * every event is in the Redis read, or was received live before the
 * answer (then it is in local history), or arrives after it - no gap, and
 * duplicates between the two reads are dropped by id.
 *
 * Health: each node PUBLISHes a heartbeat to itself every --redis-probe-ms
 * over <cmd> and must see it come back over <sub>. /readyz is 503 when it
 * does not (stalled) or when the links are down; the links are re-made,
 * with backoff, when a command makes no progress for --redis-timeout-ms or
 * the heartbeat stays away twice as long as the stall limit.
 *
 * Router thread only, except the counters in sp_router.bp and bp_health.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "spout/log.h"
#include "spout/ptrie.h"
#include "spout/rlink.h"
#include "spout/sys.h"
#include "spout/topic.h"
#include "router_bp_lua.h"
#include "router_bp_internal.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define INBOX_HIGH 65536          /* received events waiting: stop reading Redis */

static bool str_is(const redisReply *r, const char *s)
{
	return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
	       r->len == strlen(s) && strncasecmp(r->str, s, r->len) == 0;
}

static void set_health(struct sp_bp *bp, enum sp_bp_health h)
{
	struct sp_router *r = bp->r;

	atomic_store_explicit(&r->bp_health, h, memory_order_relaxed);
	sp_stat_set(&r->bp.up, bp->up);
	sp_stat_set(&r->bp.ready, h == SP_BP_READY);
}

/* --- names ---------------------------------------------------------------
 * A topic's channel is "<prefix>:e:<topic>". A pattern becomes a Redis glob
 * over those channels: '*' stays '*' and a final '>' becomes "?*" (one or
 * more characters), so every pattern has its own glob (the mapping can be
 * undone) and the glob matches at least what the pattern does; the router
 * filters exactly, as for local topics. Topics never contain '?' or '*'. */
static size_t channel_of(const struct sp_bp *bp, const struct rtopic *t, char *out)
{
	size_t n = bp->chan_len;

	memcpy(out, bp->chan, n);
	memcpy(out + n, t->node.name, t->node.len);
	n += t->node.len;
	if (t->wild && out[n - 1] == '>') {
		out[n - 1] = '?';
		out[n++] = '*';
	}
	out[n] = '\0';
	return n;
}

/* The rtopic a confirmed channel or glob names, or NULL. */
static struct rtopic *rtopic_by_channel(struct sp_bp *bp, const char *s, size_t len, bool glob)
{
	char name[SP_TOPIC_MAX + 2];

	if (len <= bp->chan_len || memcmp(s, bp->chan, bp->chan_len) != 0)
		return NULL;
	s += bp->chan_len;
	len -= bp->chan_len;
	if (len > SP_TOPIC_MAX + 1)
		return NULL;
	memcpy(name, s, len);
	if (glob && len >= 2 && name[len - 2] == '?' && name[len - 1] == '*')
		name[--len - 1] = '>';
	struct sp_tnode *n = sp_tmap_find(&bp->r->local->topics, sp_topic_hash(name, len), name, len);
	return n ? sp_container_of(n, struct rtopic, node) : NULL;
}

void bp_stream_key(const struct sp_bp *bp, const char *topic, size_t len, char *out)
{
	snprintf(out, KEY_MAX, "{%s}:s:%.*s", bp->cfg->redis_prefix, (int)len, topic);
}

/* --- subscriptions ------------------------------------------------------ */

static int sub_command(struct sp_bp *bp, const char *verb, const char *arg, size_t len);

static void release_parked(struct sp_router *r, struct rtopic *t)
{
	while (t->parked != NULL) {
		struct sp_ctl *c = t->parked;
		t->parked = c->next;
		c->next = NULL;
		router_ack(r, c->from, c);
	}
}

static void subscribe(struct sp_bp *bp, struct rtopic *t)
{
	char ch[KEY_MAX];
	size_t n = channel_of(bp, t, ch);
	char key[KEY_MAX + 1];

	key[0] = t->wild ? 'p' : 'c';
	memcpy(key + 1, ch, n + 1);
	if (sp_tmap_find(&bp->unsubs, sp_topic_hash(key, n + 1), key, n + 1) != NULL) {
		t->bp = BPS_WAIT_UNSUB;
		return;
	}
	if (sub_command(bp, t->wild ? "PSUBSCRIBE" : "SUBSCRIBE", ch, n) == 0)
		t->bp = BPS_PENDING;
}

static void unsubscribe(struct sp_bp *bp, struct rtopic *t)
{
	char ch[KEY_MAX];
	size_t n = channel_of(bp, t, ch);
	struct unsub *u = malloc(sizeof(*u) + n + 2);

	if (u == NULL || sub_command(bp, t->wild ? "PUNSUBSCRIBE" : "UNSUBSCRIBE", ch, n) != 0) {
		/* Without the record a quick re-subscribe could lose the
		 * channel: fail the link instead, the reconnect starts clean. */
		free(u);
		sp_rlink_fail(&bp->sub, "out of memory tracking an unsubscribe");
		return;
	}
	u->name[0] = t->wild ? 'p' : 'c';
	memcpy(u->name + 1, ch, n + 1);
	u->node.name = u->name;
	u->node.len = (uint16_t)(n + 1);
	u->node.hash = sp_topic_hash(u->name, n + 1);
	sp_tmap_insert(&bp->unsubs, &u->node);
}

bool bp_topic_added(struct sp_router *r, struct rtopic *t)
{
	struct sp_bp *bp = r->local->bp;

	t->bp = BPS_NONE;
	t->parked = NULL;
	if (bp->up) {
		subscribe(bp, t);
		sp_stat_add(&r->bp.subscriptions, 1);
	}
	return !bp_topic_waits(r, t);
}

bool bp_topic_waits(const struct sp_router *r, const struct rtopic *t)
{
	/* Down: the stream opens at once and gets events once Redis is back
	 * (it is told nothing else; a resume will report what it missed). */
	return t->bp == BPS_PENDING || t->bp == BPS_WAIT_UNSUB;
}

void bp_topic_removed(struct sp_router *r, struct rtopic *t)
{
	struct sp_bp *bp = r->local->bp;

	release_parked(r, t);
	if (bp->up && (t->bp == BPS_PENDING || t->bp == BPS_LIVE))
		unsubscribe(bp, t);
	if (bp->up)
		sp_stat_add(&r->bp.subscriptions, (uint64_t)-1);
	t->bp = BPS_NONE;
}

static void subscribe_each(struct sp_tnode *n, void *arg)
{
	struct sp_bp *bp = arg;

	subscribe(bp, sp_container_of(n, struct rtopic, node));
}

static void forget_each(struct sp_tnode *n, void *arg)
{
	struct sp_bp *bp = arg;
	struct rtopic *t = sp_container_of(n, struct rtopic, node);

	t->bp = BPS_NONE;
	release_parked(bp->r, t);
}

/* --- receiving ---------------------------------------------------------- */

static void inbox_drain(struct sp_bp *bp)
{
	while (bp->in_n > 0 && bp->r->local->stalled_on < 0) {
		struct sp_frame *f = bp->inbox[bp->in_head];
		if (router_route_frame(bp->r, f) == -EAGAIN)
			break;
		bp->in_head = (bp->in_head + 1) % bp->in_cap;
		bp->in_n--;
	}
	if (bp->in_n < INBOX_HIGH / 2)
		sp_rlink_pause_read(&bp->sub, false);
	sp_stat_set(&bp->r->bp.inbox, bp->in_n);
}

static int inbox_push(struct sp_bp *bp, struct sp_frame *f)
{
	if (bp->in_n == bp->in_cap) {
		size_t cap = bp->in_cap ? bp->in_cap * 2 : 1024;
		struct sp_frame **v = malloc(cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < bp->in_n; i++)
			v[i] = bp->inbox[(bp->in_head + i) % bp->in_cap];
		free(bp->inbox);
		bp->inbox = v;
		bp->in_head = 0;
		bp->in_cap = cap;
	}
	bp->inbox[(bp->in_head + bp->in_n) % bp->in_cap] = f;
	if (++bp->in_n >= INBOX_HIGH)
		sp_rlink_pause_read(&bp->sub, true);   /* TCP pushes back on Redis */
	return 0;
}

/* An event from Redis: "<id> <base>\n<event>\n<data>" on "<prefix>:e:<topic>". */
static void receive(struct sp_bp *bp, const redisReply *channel, const redisReply *msg)
{
	struct sp_router *r = bp->r;
	const char *p = msg->str, *end = msg->str + msg->len;
	uint64_t id = 0, base = 0;

	if (channel->len <= bp->chan_len || memcmp(channel->str, bp->chan, bp->chan_len) != 0) {
		sp_stat_add(&r->bp.errors, 1);
		return;
	}
	const char *topic = channel->str + bp->chan_len;
	size_t tlen = channel->len - bp->chan_len;

	while (p < end && *p >= '0' && *p <= '9')
		id = id * 10 + (uint64_t)(*p++ - '0');
	if (p < end && *p == ' ')
		p++;
	while (p < end && *p >= '0' && *p <= '9')
		base = base * 10 + (uint64_t)(*p++ - '0');
	const char *ev_name = p + 1;
	const char *nl = p < end && *p == '\n' ? memchr(ev_name, '\n', (size_t)(end - ev_name)) : NULL;
	if (id == 0 || nl == NULL || sp_topic_check(topic, tlen) != NULL) {
		/* Not ours: someone else PUBLISHed on our channels. */
		sp_stat_add(&r->bp.errors, 1);
		return;
	}
	if (base != bp->epoch) {
		if (bp->epoch != 0) {
			sp_stat_add(&r->bp.resets, 1);
			sp_log(SP_LOG_WARN, "backplane id counter restarted (Redis lost its data?)",
			       "first_id=%llu", (unsigned long long)base);
			r->last_id = id - 1;   /* ids from the new epoch are not duplicates */
		}
		bp->epoch = base;
	}
	if (id <= r->last_id) {
		sp_stat_add(&r->bp.duplicates, 1);   /* via a topic and a pattern */
		return;
	}
	struct sp_event ev = { .topic = topic, .topic_len = tlen,
			       .event = nl > ev_name ? ev_name : NULL,
			       .event_len = (size_t)(nl - ev_name),
			       .data = nl + 1, .data_len = (size_t)(end - nl - 1), .id = id };
	ev.topic_hash = sp_topic_hash(topic, tlen);
	struct sp_frame *f = sp_frame_new_event(&ev);
	if (f == NULL) {
		sp_log(SP_LOG_ERROR, "out of memory: event from the backplane lost", "id=%llu",
		       (unsigned long long)id);
		return;
	}
	f->born_ns = sp_now_ns();
	/* Ids only grow from here, so later copies are recognised even while
	 * this one waits in the inbox. */
	r->last_id = id;
	if (id > bp->floor)
		bp->floor = id;
	sp_stat_add(&r->bp.events_received, 1);
	if ((bp->in_n > 0 || router_route_frame(r, f) == -EAGAIN) && inbox_push(bp, f) != 0) {
		sp_log(SP_LOG_ERROR, "out of memory: event from the backplane lost", "id=%llu",
		       (unsigned long long)id);
		sp_frame_release(f);
	}
}

static void maybe_up(struct sp_bp *bp);

/* Everything the subscription link says: confirmations and messages. */
static void on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
	struct sp_bp *bp = priv;
	const redisReply *rep = reply;
	uint64_t now = now_ms();

	if (rep == NULL)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		char why[128];
		snprintf(why, sizeof(why), "subscribe: %s", rep->str);
		sp_rlink_fail(&bp->sub, why);
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
		return;
	const redisReply *kind = rep->element[0], *name = rep->element[1];
	if (name->type != REDIS_REPLY_STRING || kind->type != REDIS_REPLY_STRING)
		return;
	bool pat = kind->len > 0 && (kind->str[0] == 'p' || kind->str[0] == 'P');
	if (str_is(kind, "message") || str_is(kind, "pmessage")) {
		if (pat && rep->elements < 4)
			return;
		const redisReply *channel = pat ? rep->element[2] : name;
		const redisReply *msg = rep->element[pat ? 3 : 2];
		if (channel->len == strlen(bp->hb) && memcmp(channel->str, bp->hb, channel->len) == 0) {
			uint64_t sent = reply_u64(msg);
			uint64_t ns = sp_now_ns();
			bp->probe_ok_ms = now;
			if (sent != 0 && ns >= sent)
				sp_stat_set(&bp->r->bp.probe_rtt_ns, ns - sent);
			return;
		}
		if (channel->type == REDIS_REPLY_STRING && msg->type == REDIS_REPLY_STRING)
			receive(bp, channel, msg);
		return;
	}
	sp_rlink_replied(&bp->sub, now);
	if (str_is(kind, "subscribe") || str_is(kind, "psubscribe")) {
		if (!pat && name->len == strlen(bp->hb) && memcmp(name->str, bp->hb, name->len) == 0) {
			bp->sub_ready = true;
			maybe_up(bp);
			return;
		}
		struct rtopic *t = rtopic_by_channel(bp, name->str, name->len, pat);
		if (t != NULL && t->bp == BPS_PENDING) {
			t->bp = BPS_LIVE;
			release_parked(bp->r, t);
			bp_kick_replays(bp);
		}
	} else if (str_is(kind, "unsubscribe") || str_is(kind, "punsubscribe")) {
		char key[KEY_MAX + 1];
		if (name->len > KEY_MAX - 1)
			return;
		key[0] = pat ? 'p' : 'c';
		memcpy(key + 1, name->str, name->len);
		struct sp_tnode *n = sp_tmap_find(&bp->unsubs, sp_topic_hash(key, name->len + 1),
						  key, name->len + 1);
		if (n != NULL) {
			sp_tmap_remove(&bp->unsubs, n);
			free(sp_container_of(n, struct unsub, node));
		}
		struct rtopic *t = rtopic_by_channel(bp, name->str, name->len, pat);
		if (t != NULL && t->bp == BPS_WAIT_UNSUB)
			subscribe(bp, t);
	}
}

static int sub_command(struct sp_bp *bp, const char *verb, const char *arg, size_t len)
{
	const char *argv[2] = { verb, arg };
	size_t lens[2] = { strlen(verb), len };

	/* One callback for everything on this link; hiredis stores it per
	 * channel and calls it for the confirmation and every message. */
	return sp_rlink_command(&bp->sub, on_sub, bp, 2, argv, lens, now_ms());
}

/* --- publishing and the probe ------------------------------------------- */

static void on_published(redisAsyncContext *ac, void *reply, void *priv)
{
	struct pub_waiter *wt = priv;
	struct sp_router *r = wt->r;
	struct sp_bp *bp = r->local->bp;
	const redisReply *rep = reply;

	if (rep == NULL) {
		sp_stat_add(&r->bp.publish_errors, 1);
		wt->done(wt, 0, false, "backplane unavailable (the event may or may not be stored)");
		return;
	}
	sp_rlink_replied(&bp->cmd, now_ms());
	uint64_t id = rep->type == REDIS_REPLY_ARRAY && (rep->elements == 2 || rep->elements == 3)
		      ? reply_u64(rep->element[0]) : 0;
	bool dup = id != 0 && rep->elements == 3;
	if (id == 0) {
		sp_stat_add(&r->bp.publish_errors, 1);
		sp_stat_add(&r->bp.errors, 1);
		char why[160];
		snprintf(why, sizeof(why), "backplane error: %.120s",
			 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
		/* A Redis that lost our script (restart, failover) answers
		 * NOSCRIPT: reconnecting loads it again. */
		if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0)
			sp_rlink_fail(&bp->cmd, "NOSCRIPT: Redis lost the scripts");
		wt->done(wt, 0, false, why);
		return;
	}
	if (id > bp->floor)
		bp->floor = id;
	if (!dup)
		sp_stat_add(&r->bp.publishes, 1);
	wt->done(wt, id, dup, NULL);
}

int bp_publish(struct sp_router *r, struct pub_waiter *wt, const struct sp_event *ev,
	       uint64_t dedup)
{
	struct sp_bp *bp = r->local->bp;
	char stream[KEY_MAX], channel[KEY_MAX], floor[24], dkey[KEY_MAX], dttl[16];

	if (!bp->up)
		return -ENOTCONN;
	bp_stream_key(bp, ev->topic, ev->topic_len, stream);
	int cl = snprintf(channel, sizeof(channel), "%s%.*s", bp->chan, (int)ev->topic_len, ev->topic);
	snprintf(floor, sizeof(floor), "%llu", (unsigned long long)bp->floor);
	snprintf(dkey, sizeof(dkey), "{%s}:d:%016llx", bp->cfg->redis_prefix,
		 (unsigned long long)dedup);
	snprintf(dttl, sizeof(dttl), "%u", bp->cfg->publish_dedup_s);
	/* argv[2] (the key count) and the dedup pair at the end are dropped
	 * for a publish without an idempotency key: argc below. */
	const char *argv[] = { "EVALSHA", bp->sha_publish, dedup ? "5" : "4", bp->key_seq,
			       bp->key_base, bp->key_topics, stream, dkey, floor, bp->history,
			       channel, ev->topic, ev->event ? ev->event : "", ev->data,
			       bp->ttl_ms, dttl };
	size_t lens[sizeof(argv) / sizeof(argv[0])];
	/* topic, event and data point into the publisher's input buffer and
	 * are not NUL-terminated: their lengths are set below, not measured. */
	for (size_t i = 0; i < sizeof(argv) / sizeof(argv[0]); i++)
		lens[i] = i >= 11 && i <= 13 ? 0 : strlen(argv[i]);
	lens[10] = (size_t)cl;
	lens[11] = ev->topic_len;
	lens[12] = ev->event ? ev->event_len : 0;
	lens[13] = ev->data_len;
	int argc = (int)(sizeof(argv) / sizeof(argv[0]));
	if (dedup == 0) {   /* no KEYS[5], no ARGV[8] */
		memmove(&argv[7], &argv[8], (size_t)(argc - 8) * sizeof(argv[0]));
		memmove(&lens[7], &lens[8], (size_t)(argc - 8) * sizeof(lens[0]));
		argc -= 2;
	}
	if (sp_rlink_command(&bp->cmd, on_published, wt, argc, argv, lens, now_ms()) != 0)
		return -ENOTCONN;
	return 0;
}

/* hiredis' callback type fixes the signature (reply is not ours to make const) */
// cppcheck-suppress constParameter
static void on_probe_sent(redisAsyncContext *ac, void *reply, void *priv)
{
	struct sp_bp *bp = priv;

	if (reply != NULL)
		sp_rlink_replied(&bp->cmd, now_ms());
}

static void send_probe(struct sp_bp *bp)
{
	char ns[24];

	snprintf(ns, sizeof(ns), "%llu", (unsigned long long)sp_now_ns());
	const char *argv[] = { "PUBLISH", bp->hb, ns };
	size_t lens[] = { 7, strlen(bp->hb), strlen(ns) };
	sp_rlink_command(&bp->cmd, on_probe_sent, bp, 3, argv, lens, now_ms());
}

/* --- connection life ---------------------------------------------------- */

static void on_setup(redisAsyncContext *ac, void *reply, void *priv)
{
	struct sp_bp *bp = ac->data ? sp_container_of((struct sp_rlink *)ac->data, struct sp_bp, cmd)
				    : NULL;
	const redisReply *rep = reply;

	if (rep == NULL || bp == NULL)
		return;
	sp_rlink_replied(&bp->cmd, now_ms());
	if (rep->type == REDIS_REPLY_ERROR) {
		char why[160];
		snprintf(why, sizeof(why), "%s: %.120s", (const char *)priv, rep->str);
		sp_rlink_fail(&bp->cmd, why);
		return;
	}
	if (strcmp(priv, "SCRIPT LOAD publish") == 0 && rep->type == REDIS_REPLY_STRING)
		snprintf(bp->sha_publish, sizeof(bp->sha_publish), "%s", rep->str);
	if (strcmp(priv, "SCRIPT LOAD replay") == 0 && rep->type == REDIS_REPLY_STRING)
		snprintf(bp->sha_replay, sizeof(bp->sha_replay), "%s", rep->str);
	if (--bp->setup_left == 0) {
		bp->cmd_ready = true;
		maybe_up(bp);
	}
}

static void on_sub_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	struct sp_bp *bp = priv;
	const redisReply *rep = reply;

	if (rep == NULL)
		return;
	sp_rlink_replied(&bp->sub, now_ms());
	if (rep->type == REDIS_REPLY_ERROR) {
		char why[160];
		snprintf(why, sizeof(why), "AUTH: %.120s", rep->str);
		sp_rlink_fail(&bp->sub, why);
	}
}

static void setup_command(struct sp_bp *bp, const char *what, int argc, const char **argv)
{
	size_t lens[4];

	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	if (sp_rlink_command(&bp->cmd, on_setup, (void *)what, argc, argv, lens, now_ms()) == 0)
		bp->setup_left++;
}

static void connect_links(struct sp_bp *bp)
{
	const struct sp_redis_url *u = &bp->cfg->redis;
	uint64_t now = now_ms();

	bp->open = true;
	bp->cmd_ready = bp->sub_ready = bp->up = false;
	bp->setup_left = 0;
	/* After a failure this is a retry: still down, as /readyz says. */
	set_health(bp, bp->why[0] != '\0' ? SP_BP_DOWN : SP_BP_CONNECTING);
	if (sp_rlink_open(&bp->cmd, &bp->set, "commands", u->host, u->port, now) != 0 ||
	    sp_rlink_open(&bp->sub, &bp->set, "subscriptions", u->host, u->port, now) != 0)
		return;   /* bp_tick sees the dead link */
	if (u->password[0] != '\0') {
		setup_command(bp, "AUTH", 2, (const char *[]){ "AUTH", u->password });
		const char *argv[] = { "AUTH", u->password };
		size_t lens[] = { 4, strlen(u->password) };
		sp_rlink_command(&bp->sub, on_sub_auth, bp, 2, argv, lens, now);
	}
	if (u->db != 0) {
		char db[16];
		snprintf(db, sizeof(db), "%u", u->db);
		setup_command(bp, "SELECT", 2, (const char *[]){ "SELECT", db });
	}
	setup_command(bp, "SCRIPT LOAD publish", 3,
		      (const char *[]){ "SCRIPT", "LOAD", bp_lua_publish });
	setup_command(bp, "SCRIPT LOAD replay", 3,
		      (const char *[]){ "SCRIPT", "LOAD", bp_lua_replay });
	sub_command(bp, "SUBSCRIBE", bp->hb, strlen(bp->hb));
}

static void maybe_up(struct sp_bp *bp)
{
	struct sp_router *r = bp->r;

	if (bp->up || !bp->cmd_ready || !bp->sub_ready)
		return;
	bp->up = true;
	bp->backoff_ms = 0;
	bp->probe_ok_ms = 0;               /* ready only once a probe came back */
	bp->next_probe_ms = 0;
	bp->up_ms = now_ms();
	sp_stat_add(&r->bp.connects, 1);
	sp_stat_set(&r->bp.subscriptions, r->local->topics.count);
	sp_log(SP_LOG_INFO, "backplane up", "redis=%s topics=%u", bp->cfg->redis.text,
	       r->local->topics.count);
	sp_tmap_each(&r->local->topics, subscribe_each, bp);
}

static void unsub_free_all(struct sp_bp *bp)
{
	struct sp_tnode *n;

	while ((n = sp_tmap_pop_any(&bp->unsubs)) != NULL)
		free(sp_container_of(n, struct unsub, node));
}

/* Drop both links (a failure of either one, or shutdown). Publishes in
 * flight are answered ERR and replays fall back to local history by their
 * callbacks, which hiredis runs here with no reply. */
static void links_down(struct sp_bp *bp, const char *why)
{
	struct sp_router *r = bp->r;
	uint64_t now = now_ms();

	if (!bp->open)
		return;
	if (why != NULL) {
		sp_stat_add(&r->bp.errors, 1);
		if (bp->up || strcmp(why, bp->why) != 0)
			sp_log(SP_LOG_WARN, "backplane down", "redis=%s reason=\"%s\"",
			       bp->cfg->redis.text, why);
		snprintf(bp->why, sizeof(bp->why), "%s", why);
	}
	bp->up = bp->cmd_ready = bp->sub_ready = false;
	sp_rlink_close(&bp->cmd);
	sp_rlink_close(&bp->sub);
	bp->open = false;
	bp->more = false;
	unsub_free_all(bp);
	sp_tmap_each(&r->local->topics, forget_each, bp);
	sp_stat_set(&r->bp.subscriptions, 0);
	struct sp_list *it;
	while ((it = sp_list_first(&bp->waiting)) != NULL) {
		sp_list_del(it);
		bp_replay_fallback(sp_container_of(it, struct bp_replay, link));
	}
	/* Exponential backoff with jitter, so nodes cut off together do not
	 * all come back in the same millisecond. */
	bp->backoff_ms = bp->backoff_ms ? bp->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (bp->backoff_ms > BACKOFF_MAX_MS)
		bp->backoff_ms = BACKOFF_MAX_MS;
	uint32_t jitter;
	if (getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) != sizeof(jitter))
		jitter = (uint32_t)now;
	bp->retry_at_ms = now + bp->backoff_ms / 2 + jitter % (bp->backoff_ms / 2 + 1);
	set_health(bp, SP_BP_DOWN);
}

void bp_on_ready(struct sp_router *r)
{
	struct sp_bp *bp = r->local->bp;

	bp->more = sp_rlink_set_poll(&bp->set);
}

int bp_tick(struct sp_router *r, int timeout)
{
	struct sp_bp *bp = r->local->bp;
	uint64_t now = now_ms();
	uint64_t stale = 3ull * bp->cfg->redis_probe_ms;
	int next;

	if (stale < bp->cfg->redis_timeout_ms)
		stale = bp->cfg->redis_timeout_ms;
	if (bp->more)
		bp->more = sp_rlink_set_poll(&bp->set);
	if (bp->in_n > 0)
		inbox_drain(bp);
	if (!bp->open) {
		if (now >= bp->retry_at_ms)
			connect_links(bp);
		else
			return (int)(bp->retry_at_ms - now) < timeout ? (int)(bp->retry_at_ms - now)
								       : timeout;
	}
	if (sp_rlink_dead(&bp->cmd) || sp_rlink_dead(&bp->sub)) {
		char why[300];
		const struct sp_rlink *l = sp_rlink_dead(&bp->cmd) ? &bp->cmd : &bp->sub;
		snprintf(why, sizeof(why), "%s link: %s", l->name, l->why);
		links_down(bp, why);
		return 0;
	}
	if (sp_rlink_stuck(&bp->cmd, now, bp->cfg->redis_timeout_ms) ||
	    sp_rlink_stuck(&bp->sub, now, bp->cfg->redis_timeout_ms)) {
		links_down(bp, "timeout: Redis did not answer within --redis-timeout-ms");
		return 0;
	}
	if (!bp->up) {
		next = 10;   /* connecting: watch the connect timeout */
	} else {
		if (now >= bp->next_probe_ms) {
			send_probe(bp);
			bp->next_probe_ms = now + bp->cfg->redis_probe_ms;
		}
		/* Not ready until the first heartbeat is back: a node that
		 * cannot hear Redis must not take clients. */
		uint64_t age = now - (bp->probe_ok_ms ? bp->probe_ok_ms : bp->up_ms);
		if (age > 2 * stale) {
			links_down(bp, "heartbeat through Redis did not come back");
			return 0;
		}
		set_health(bp, bp->probe_ok_ms == 0 ? (bp->why[0] ? SP_BP_DOWN : SP_BP_CONNECTING) :
			       age > stale ? SP_BP_STALLED : SP_BP_READY);
		next = (int)(bp->next_probe_ms - now);
	}
	if (bp->more || (bp->in_n > 0 && r->local->stalled_on < 0))
		next = 0;
	return next < timeout ? next : timeout;
}

int bp_init(struct sp_router *r)
{
	const struct sp_config *cfg = r->broker->cfg;
	struct sp_router_local *L = r->local;

	if (!sp_config_cluster(cfg))
		return 0;
	struct sp_bp *bp = calloc(1, sizeof(*bp));
	if (bp == NULL)
		return -ENOMEM;
	bp->set.epfd = -1;
	L->bp = bp;
	bp->r = r;
	bp->cfg = cfg;
	sp_list_init(&bp->waiting);
	if (sp_tmap_init(&bp->unsubs, 64) != 0 || sp_rlink_set_init(&bp->set) != 0)
		return -ENOMEM;
	const char *p = cfg->redis_prefix;
	snprintf(bp->key_seq, KEY_MAX, "{%s}:seq", p);
	snprintf(bp->key_base, KEY_MAX, "{%s}:base", p);
	snprintf(bp->key_topics, KEY_MAX, "{%s}:topics", p);
	bp->chan_len = (size_t)snprintf(bp->chan, KEY_MAX, "%s:e:", p);
	uint64_t node;
	if (getrandom(&node, sizeof(node), 0) != sizeof(node))
		node = sp_now_ns() ^ (uint64_t)getpid();
	snprintf(bp->hb, KEY_MAX, "%s:hb:%016llx", p, (unsigned long long)node);
	snprintf(bp->history, sizeof(bp->history), "%u", cfg->history);
	snprintf(bp->ttl_ms, sizeof(bp->ttl_ms), "%llu",
		 (unsigned long long)cfg->history_ttl_s * 1000ull);
	/* Ids this node sees come from Redis; dedupe starts from nothing. */
	r->last_id = 0;
	r->first_id = 1;
	set_health(bp, SP_BP_CONNECTING);
	return sp_ev_add(&L->ev, bp->set.epfd, SP_EV_READ, bp);
}

void bp_destroy(struct sp_router *r)
{
	struct sp_bp *bp = r->local->bp;

	if (bp == NULL)
		return;
	links_down(bp, NULL);
	while (bp->in_n > 0) {
		sp_frame_release(bp->inbox[bp->in_head]);
		bp->in_head = (bp->in_head + 1) % bp->in_cap;
		bp->in_n--;
	}
	free(bp->inbox);
	unsub_free_all(bp);
	if (bp->unsubs.buckets != NULL)
		sp_tmap_destroy(&bp->unsubs);
	if (bp->set.epfd != -1)
		sp_ev_del(&r->local->ev, bp->set.epfd);
	sp_rlink_set_close(&bp->set);
	free(bp);
	r->local->bp = NULL;
}
