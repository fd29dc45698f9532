/*
 * router.c - the topic router thread.
 *
 * Owns the publisher listener and connections and the topic table. For each
 * published event it assigns the id, formats the SSE frame once and pushes
 * the same pointer into the frame ring of every worker with subscribers for
 * the topic. Workers tell it which topics they want through their ctl rings;
 * the router answers each ctl with an ack on the frame ring, so a worker
 * knows exactly from which frame on a new subscription is live.
 *
 * Back-pressure: when an interested worker's frame ring is full the router
 * stops reading publishers (their kernel buffers fill and TCP pushes back)
 * until the ring has room again; each such stall is counted.
 *
 * Publisher connections (reading, parsing, replies) are in router_pub.c.
 *
 * Threading: everything in this file runs on the router thread, except the
 * counters in sp_router.stats, which /metrics reads.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "spout/broker.h"
#include "spout/ev.h"
#include "spout/frame.h"
#include "spout/history.h"
#include "spout/lineproto.h"
#include "spout/list.h"
#include "spout/log.h"
#include "spout/ptrie.h"
#include "spout/sys.h"
#include "spout/tmap.h"
#include "router_internal.h"

#define CTL_BUDGET 1024

/* --topic-metrics: count a publish on a matching topic, in its own series
 * while fewer than --topic-metrics-max topics have one. Opt-in, so the
 * pattern checks cost nothing unless configured. */
static void count_topic(struct sp_router *r, const struct sp_event *ev)
{
	struct sp_router_local *L = r->local;
	const struct sp_config *cfg = r->broker->cfg;

	if (!sp_config_topic_metrics_for(cfg, ev->topic, ev->topic_len))
		return;
	struct sp_tnode *n = sp_tmap_find(&L->tstats, ev->topic_hash, ev->topic, ev->topic_len);
	if (n == NULL) {
		struct tstat_ref *ref;
		if (L->tstats_used == cfg->topic_metrics_max ||
		    (ref = calloc(1, sizeof(*ref))) == NULL) {
			sp_stat_add(&r->topic_stats_overflow, 1);
			return;
		}
		struct sp_topic_stat *slot = &r->topic_stats[L->tstats_used++];
		memcpy(slot->name, ev->topic, ev->topic_len);
		slot->name[ev->topic_len] = '\0';
		/* release: /metrics sees the name complete once it sees used */
		atomic_store_explicit(&slot->used, 1, memory_order_release);
		ref->slot = slot;
		ref->node.hash = ev->topic_hash;
		ref->node.name = slot->name;
		ref->node.len = (uint16_t)ev->topic_len;
		sp_tmap_insert(&L->tstats, &ref->node);
		n = &ref->node;
	}
	sp_stat_add(&sp_container_of(n, struct tstat_ref, node)->slot->published, 1);
}

static char listen_tag, wake_tag;

static struct rtopic *rtopic_of(struct sp_tnode *n)
{
	return sp_container_of(n, struct rtopic, node);
}

static bool bit_get(const uint64_t *b, unsigned i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

/* Apply one ctl from worker <w>. Returns false when its ack must wait
 * (cluster mode: parked on the topic until Redis confirms). */
static bool apply_ctl(struct sp_router *r, unsigned w, struct sp_ctl *c)
{
	struct sp_router_local *L = r->local;
	struct sp_tnode *n = sp_tmap_find(&L->topics, c->topic_hash, c->topic, c->topic_len);
	struct rtopic *t = n ? rtopic_of(n) : NULL;

	if (c->type == SP_CTL_SUB) {
		if (t == NULL) {
			size_t bits = L->words * sizeof(uint64_t);
			t = calloc(1, sizeof(*t) + bits + c->topic_len + 1);
			if (t == NULL) {
				/* The worker still gets its ack; the topic simply
				 * receives nothing until memory returns. Logged,
				 * because it is not a peer fault. */
				sp_log(SP_LOG_ERROR, "out of memory adding topic", "topic=%s", c->topic);
				return true;
			}
			char *name = (char *)t->workers + bits;
			memcpy(name, c->topic, c->topic_len + 1);
			t->node.hash = c->topic_hash;
			t->node.name = name;
			t->node.len = c->topic_len;
			t->policy = sp_config_overflow_for(r->broker->cfg, name, c->topic_len);
			t->wild = sp_pattern_is_wild(name, c->topic_len);
			if (t->wild) {
				void **slot = sp_ptrie_slot(&L->patterns, name, c->topic_len);
				if (slot == NULL) {
					sp_log(SP_LOG_ERROR, "out of memory adding pattern",
					       "pattern=%s", name);
					free(t);
					return true;
				}
				*slot = t;
			}
			sp_tmap_insert(&L->topics, &t->node);
			sp_stat_set(&r->stats.topics, L->topics.count);
			if (L->bp != NULL)
				bp_topic_added(r, t);
		}
		if (!bit_get(t->workers, w)) {
			t->workers[w / 64] |= 1ull << (w % 64);
			t->nworkers++;
		}
		sp_stat_add(&r->stats.subs_processed, 1);
		if (L->bp != NULL && bp_topic_waits(r, t)) {
			/* The worker starts streams when this ack arrives:
			 * not before Redis sends us the topic's events. */
			c->from = w;
			c->next = t->parked;
			t->parked = c;
			return false;
		}
		return true;
	} else if (t != NULL && bit_get(t->workers, w)) {
		t->workers[w / 64] &= ~(1ull << (w % 64));
		if (--t->nworkers == 0) {
			if (L->bp != NULL)
				bp_topic_removed(r, t);
			sp_tmap_remove(&L->topics, &t->node);
			if (t->wild)
				sp_ptrie_remove(&L->patterns, t->node.name, t->node.len);
			free(t);
			sp_stat_set(&r->stats.topics, L->topics.count);
		}
	}
	sp_stat_add(&r->stats.subs_processed, 1);
	return true;
}

/* Answer a resumption: everything retained after the client's id on its
 * topics. Runs between two publishes, so <upto> splits the stream exactly. */
void router_replay_local(struct sp_router *r, struct sp_replay *rp)
{
	struct sp_history *h = &r->local->hist;
	enum sp_gap gap = SP_GAP_NONE;

	rp->upto = r->last_id;
	rp->frames = NULL;
	rp->nframes = 0;
	if (rp->after > r->last_id) {
		gap = SP_GAP_UNKNOWN_ID;
	} else if (rp->after != 0 && rp->after < r->first_id) {
		/* An id from before this process started: whatever came after
		 * it in the previous run is gone. Replay what we hold. */
		gap = SP_GAP_EVICTED;
		if (sp_history_enabled(h) &&
		    sp_history_collect(h, rp->topic, rp->len, rp->ntopics, rp->after,
				       &rp->frames, &rp->nframes, &(enum sp_gap){ 0 }) != 0)
			rp->nframes = 0;
	} else if (!sp_history_enabled(h)) {
		gap = rp->after < r->last_id ? SP_GAP_EVICTED : SP_GAP_NONE;
	} else if (sp_history_collect(h, rp->topic, rp->len, rp->ntopics, rp->after,
				      &rp->frames, &rp->nframes, &gap) != 0) {
		gap = SP_GAP_EVICTED;   /* no memory to replay: say so */
	}
	rp->gap = gap;
	sp_stat_add(&r->stats.replays, 1);
	sp_stat_add(&r->stats.replayed_events, rp->nframes);
	if (gap != SP_GAP_NONE)
		sp_stat_add(&r->stats.replay_gaps, 1);
}

static int cmp_frame_id(const void *a, const void *b)
{
	uint64_t x = (*(struct sp_frame *const *)a)->id, y = (*(struct sp_frame *const *)b)->id;
	return x < y ? -1 : x > y;
}

/* Cluster mode: a replay answer read from Redis is completed here, as it
 * enters the ring. The Redis read ran after this node's subscriptions were
 * confirmed, so it holds every event on these topics up to the counter it
 * saw (rp->upto on entry, router_bp.c); every later event reaches this node
 * live, and those routed to workers so far (routed_id: not those still in
 * the backplane's inbox) are in local history. So: the union of
 * both, once each, and <upto> = the newer of the two bounds, so that the
 * copies of read events still on their way live are skipped by the worker. */
static void finish_replay(struct sp_router *r, struct sp_replay *rp)
{
	struct sp_history *h = &r->local->hist;
	struct sp_frame **local = NULL;
	size_t nlocal = 0, k;
	enum sp_gap ignored;

	rp->merge_local = false;
	if (rp->upto < r->local->routed_id)
		rp->upto = r->local->routed_id;
	sp_stat_add(&r->stats.replayed_events, rp->nframes);
	if (!sp_history_enabled(h) ||
	    sp_history_collect(h, rp->topic, rp->len, rp->ntopics, rp->after, &local, &nlocal,
			       &ignored) != 0 || nlocal == 0)
		return;
	struct sp_frame **all = realloc(rp->frames, (rp->nframes + nlocal) * sizeof(*all));
	if (all == NULL) {
		for (size_t i = 0; i < nlocal; i++)
			sp_frame_release(local[i]);
		free(local);
		return;
	}
	memcpy(all + rp->nframes, local, nlocal * sizeof(*local));
	free(local);
	size_t n = rp->nframes + nlocal;
	qsort(all, n, sizeof(*all), cmp_frame_id);
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && all[k - 1]->id == all[i]->id)
			sp_frame_release(all[i]);
		else
			all[k++] = all[i];
	}
	sp_stat_add(&r->stats.replayed_events, k - rp->nframes);
	rp->frames = all;
	rp->nframes = k;
}

static void push_ack(struct sp_router *r, unsigned w, struct sp_ctl *c)
{
	if (c->type == SP_CTL_REPLAY && ((struct sp_replay *)c)->merge_local)
		finish_replay(r, (struct sp_replay *)c);
	sp_ring_push_producer(&r->broker->workers[w].frame_ring, (uintptr_t)c | SP_RING_TAG_CTL);
	r->local->dirty[w] = true;
}

void router_ack(struct sp_router *r, unsigned w, struct sp_ctl *c)
{
	struct sp_router_local *L = r->local;

	if (L->outbox[w] == NULL && sp_ring_free_producer(&r->broker->workers[w].frame_ring) > 0) {
		push_ack(r, w, c);
		return;
	}
	c->next = NULL;
	if (L->outbox[w] != NULL)
		L->outbox_tail[w]->next = c;
	else
		L->outbox[w] = c;
	L->outbox_tail[w] = c;
}

/* Push queued acks, in order, while the ring has room. */
static void flush_outbox(struct sp_router *r, unsigned w)
{
	struct sp_router_local *L = r->local;
	struct sp_ring *ring = &r->broker->workers[w].frame_ring;

	while (L->outbox[w] != NULL && sp_ring_free_producer(ring) > 0) {
		struct sp_ctl *c = L->outbox[w];
		L->outbox[w] = c->next;
		c->next = NULL;
		push_ack(r, w, c);
	}
}

/* Take ctl messages from every worker and answer each on its frame ring.
 * An answer needs a frame-ring slot; without one the ctl waits in its ring. */
static void drain_ctl(struct sp_router *r)
{
	struct sp_broker *b = r->broker;
	struct sp_router_local *L = r->local;

	for (unsigned w = 0; w < b->nworkers; w++) {
		struct sp_worker *wk = &b->workers[w];
		uintptr_t v;
		flush_outbox(r, w);
		for (int i = 0; i < CTL_BUDGET; i++) {
			if (L->outbox[w] != NULL || sp_ring_free_producer(&wk->frame_ring) == 0)
				break;
			if (!sp_ring_pop_consumer(&wk->ctl_ring, &v))
				break;
			struct sp_ctl *c = (struct sp_ctl *)v;
			if (c->type == SP_CTL_PUBLISH) {
				hpub_submit(r, w, (struct sp_pubreq *)c);
				continue;   /* answered (acked) by router_hpub.c */
			}
			if (c->type == SP_CTL_REPLAY && L->bp != NULL) {
				bp_replay(r, w, (struct sp_replay *)c);
				continue;
			}
			if (c->type == SP_CTL_REPLAY)
				router_replay_local(r, (struct sp_replay *)c);
			else if (!apply_ctl(r, w, c))
				continue;   /* parked; acked later */
			push_ack(r, w, c);
		}
	}
}

static void signal_workers(struct sp_router *r)
{
	struct sp_broker *b = r->broker;

	for (unsigned w = 0; w < b->nworkers; w++) {
		if (!r->local->dirty[w])
			continue;
		r->local->dirty[w] = false;
		if (sp_ring_push_done_producer(&b->workers[w].frame_ring))
			sp_wake(b->workers[w].wake_fd);
	}
}

static void or_pattern_workers(void *value, void *arg)
{
	struct sp_router_local *L = arg;
	const struct rtopic *p = value;

	for (unsigned i = 0; i < L->words; i++)
		L->route_bits[i] |= p->workers[i];
}

/* The workers an event on <t> (NULL: no exact subscriber) goes to: the
 * topic's own set, plus those of every pattern matching it. Without
 * patterns this is the topic's bitset itself, no copy. */
static const uint64_t *route_set(struct sp_router *r, const struct rtopic *t,
				 const struct sp_event *ev, uint32_t *count)
{
	struct sp_router_local *L = r->local;

	if (L->patterns.count == 0) {
		*count = t ? t->nworkers : 0;
		return t ? t->workers : NULL;
	}
	for (unsigned i = 0; i < L->words; i++)
		L->route_bits[i] = t ? t->workers[i] : 0;
	sp_ptrie_match(&L->patterns, ev->topic, ev->topic_len, or_pattern_workers, L);
	uint32_t n = 0;
	for (unsigned i = 0; i < L->words; i++)
		n += (uint32_t)__builtin_popcountll(L->route_bits[i]);
	*count = n;
	return n ? L->route_bits : NULL;
}

/* Which workers want <topic> and whether all their rings have room (an
 * event goes to all of them or to none). -EAGAIN: stalled on one. */
static int route_plan(struct sp_router *r, const struct sp_event *ev, struct rtopic **tp,
		      const uint64_t **setp, uint32_t *nworkers)
{
	struct sp_router_local *L = r->local;
	struct sp_broker *b = r->broker;
	struct sp_tnode *n = sp_tmap_find(&L->topics, ev->topic_hash, ev->topic, ev->topic_len);
	struct rtopic *t = n ? rtopic_of(n) : NULL;
	const uint64_t *set = route_set(r, t, ev, nworkers);

	for (unsigned w = 0; set != NULL && w < b->nworkers; w++) {
		if (bit_get(set, w) && (L->outbox[w] != NULL ||
		    sp_ring_free_producer(&b->workers[w].frame_ring) == 0)) {
			L->stalled_on = (int)w;
			return -EAGAIN;
		}
	}
	*tp = t;
	*setp = set;
	return 0;
}

/* Push <f> (refs not yet set) to the planned workers and into history. */
static void route_commit(struct sp_router *r, struct sp_frame *f, const struct rtopic *t,
			 const uint64_t *set, uint32_t nworkers)
{
	struct sp_router_local *L = r->local;
	struct sp_broker *b = r->broker;
	bool keep = sp_history_enabled(&L->hist);

	if (nworkers == 0)
		sp_stat_add(&r->stats.events_unrouted, 1);
	if (nworkers != 0)
		sp_frame_set_policy(f, t != NULL ? t->policy :
				    sp_config_overflow_for(b->cfg, f->topic, f->topic_len));
	/* One reference per worker plus one for history, all set before the
	 * ring's release store publishes the pointer. */
	uint32_t refs = nworkers + (keep ? 1 : 0);
	if (refs == 0) {
		sp_frame_release(f);
		return;
	}
	atomic_store_explicit(&f->refs, refs, memory_order_relaxed);
	for (unsigned w = 0; set != NULL && w < b->nworkers; w++) {
		if (!bit_get(set, w))
			continue;
		sp_ring_push_producer(&b->workers[w].frame_ring, (uintptr_t)f);
		L->dirty[w] = true;
	}
	sp_stat_add(&r->stats.frames_routed, nworkers);
	if (keep && sp_history_add(&L->hist, f, f->born_ns / 1000000u) != 0) {
		sp_log(SP_LOG_WARN, "out of memory: event not kept in history", "id=%llu",
		       (unsigned long long)f->id);
		sp_frame_release(f);
	}
}

int router_route(struct sp_router *r, struct sp_event *ev, uint64_t *id)
{
	struct rtopic *t;
	const uint64_t *set;
	uint32_t nworkers;

	ev->topic_hash = sp_topic_hash(ev->topic, ev->topic_len);
	ev->id = r->last_id + 1;
	int rc = route_plan(r, ev, &t, &set, &nworkers);
	if (rc != 0)
		return rc;
	if (nworkers != 0 || sp_history_enabled(&r->local->hist)) {
		struct sp_frame *f = sp_frame_new_event(ev);
		if (f == NULL)
			return -ENOMEM;
		f->born_ns = sp_now_ns();
		route_commit(r, f, t, set, nworkers);
	} else {
		sp_stat_add(&r->stats.events_unrouted, 1);
	}
	if (r->topic_stats != NULL)
		count_topic(r, ev);
	r->last_id = ev->id;
	*id = ev->id;
	sp_stat_add(&r->stats.events_published, 1);
	return 0;
}

int router_route_frame(struct sp_router *r, struct sp_frame *f)
{
	struct rtopic *t;
	const uint64_t *set;
	uint32_t nworkers;
	struct sp_event ev = { .topic = f->topic, .topic_len = f->topic_len,
			       .topic_hash = f->topic_hash, .id = f->id };

	int rc = route_plan(r, &ev, &t, &set, &nworkers);
	if (rc != 0)
		return rc;
	route_commit(r, f, t, set, nworkers);
	r->local->routed_id = ev.id;
	if (r->topic_stats != NULL)
		count_topic(r, &ev);
	return 0;
}

static void check_stall(struct sp_router *r)
{
	struct sp_router_local *L = r->local;

	if (L->stalled_on < 0)
		return;
	struct sp_ring *ring = &r->broker->workers[L->stalled_on].frame_ring;
	/* Resume only with real room, not one slot, so we do not flap. The
	 * fresh read matters: a cached count would never see the room come. */
	if (sp_ring_free_fresh_producer(ring) >= sp_ring_capacity(ring) / 4) {
		sp_stat_add(&r->stats.stall_ns, sp_now_ns() - L->stall_start_ns);
		L->stalled_on = -1;
	}
}

/*
 * Event ids are decimal uint64 that only grow, also across restarts: a
 * process numbers its events from its start time in Unix microseconds on.
 * A restart therefore continues above every id the previous run handed out
 * unless that run averaged more than one event per microsecond, and a
 * client holding an older id is told it missed events (spout-gap) instead
 * of being replayed the wrong ones. Resumption within a run never looks at
 * a clock. The ids stay below 2^53 (until the year 2255), so JavaScript
 * numbers hold them exactly.
 */
static void ids_init(struct sp_router *r)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	r->last_id = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	r->first_id = r->last_id + 1;
}

/* --history-bytes, or when 0 a default sized to the container: 64 MiB,
 * but never more than an eighth of the cgroup memory limit, so history
 * cannot push a small container into the OOM killer. */
static uint64_t history_budget(const struct sp_broker *b)
{
	uint64_t budget = b->cfg->history_bytes;

	if (budget == 0) {
		budget = 64ull << 20;
		if (b->memory_limit != 0 && b->memory_limit / 8 < budget)
			budget = b->memory_limit / 8 > 4096 ? b->memory_limit / 8 : 4096;
	}
	return budget;
}

static int router_setup(struct sp_router *r)
{
	struct sp_router_local *L = calloc(1, sizeof(*L));
	const struct sp_config *cfg = r->broker->cfg;

	if (L == NULL)
		return -ENOMEM;
	r->local = L;
	ids_init(r);
	L->words = (r->broker->nworkers + 63) / 64;
	L->dirty = calloc(r->broker->nworkers, sizeof(*L->dirty));
	L->route_bits = calloc(L->words, sizeof(*L->route_bits));
	L->outbox = calloc(r->broker->nworkers, sizeof(*L->outbox));
	L->outbox_tail = calloc(r->broker->nworkers, sizeof(*L->outbox_tail));
	if (L->route_bits == NULL || L->outbox == NULL || L->outbox_tail == NULL)
		return -ENOMEM;
	L->stalled_on = -1;
	L->limits.max_line = cfg->max_line;
	L->limits.max_payload = cfg->max_payload;
	/* Room for the longest line plus the largest EVENT payload. */
	L->in_max = (size_t)cfg->max_line + cfg->max_payload + 64;
	struct sp_history_limits hl = { .per_topic = cfg->history,
					.max_bytes = history_budget(r->broker),
					.ttl_ms = (uint64_t)cfg->history_ttl_s * 1000 };
	if (sp_history_init(&L->hist, &hl) != 0 || sp_tmap_init(&L->tstats, 64) != 0)
		return -ENOMEM;
	sp_stat_set(&r->stats.history_budget, hl.max_bytes);
	sp_list_init(&L->ready);
	sp_list_init(&L->all);
	sp_list_init(&L->unauthed);
	sp_list_init(&L->idle);
	sp_list_init(&L->hpub_wait);
	if (L->dirty == NULL || sp_tmap_init(&L->topics, 1024) != 0 || sp_ev_init(&L->ev) != 0)
		return -ENOMEM;
	if (sp_ev_add(&L->ev, r->listen_fd, SP_EV_READ, &listen_tag) != 0 ||
	    sp_ev_add(&L->ev, r->wake_fd, SP_EV_READ, &wake_tag) != 0)
		return -EIO;
	return bp_init(r);
}

static void router_teardown(struct sp_router *r)
{
	struct sp_router_local *L = r->local;
	struct sp_list *it;
	struct sp_tnode *n;

	if (L == NULL)
		return;
	/* The backplane first: dropping its links answers the publishes and
	 * replays still waiting for Redis. */
	bp_destroy(r);
	hpub_teardown(r);
	for (unsigned w = 0; L->outbox != NULL && w < r->broker->nworkers; w++) {
		while (L->outbox[w] != NULL) {
			struct sp_ctl *c = L->outbox[w];
			L->outbox[w] = c->next;
			if (c->type == SP_CTL_REPLAY) {
				struct sp_replay *rp = (struct sp_replay *)c;
				for (size_t i = 0; i < rp->nframes; i++)
					sp_frame_release(rp->frames[i]);
				free(rp->frames);
			}
			free(c);
		}
	}
	free(L->outbox);
	free(L->outbox_tail);
	while ((it = sp_list_first(&L->all)) != NULL)
		pub_close(r, sp_container_of(it, struct pubconn, all_link));
	if (L->topics.buckets != NULL) {
		while ((n = sp_tmap_pop_any(&L->topics)) != NULL)
			free(rtopic_of(n));
		sp_tmap_destroy(&L->topics);
	}
	sp_history_destroy(&L->hist);
	if (L->tstats.buckets != NULL) {
		while ((n = sp_tmap_pop_any(&L->tstats)) != NULL)
			free(sp_container_of(n, struct tstat_ref, node));
		sp_tmap_destroy(&L->tstats);
	}
	sp_ptrie_destroy(&L->patterns, NULL);   /* values are the rtopics, freed above */
	free(L->route_bits);
	sp_ev_close(&L->ev);
	free(L->dirty);
	free(L);
	r->local = NULL;
}

static bool outbox_waiting(const struct sp_router *r)
{
	for (unsigned w = 0; w < r->broker->nworkers; w++)
		if (r->local->outbox[w] != NULL)
			return true;
	return false;
}

/* Before blocking: every ctl ring must agree to wake us. */
static bool may_block(struct sp_router *r)
{
	bool ok = true;

	for (unsigned w = 0; w < r->broker->nworkers; w++)
		if (!sp_ring_sleep_consumer(&r->broker->workers[w].ctl_ring))
			ok = false;
	return ok;
}

void *sp_router_main(void *arg)
{
	struct sp_router *r = arg;
	struct sp_ev_event evs[256];

	if (router_setup(r) != 0) {
		/* At start-up, so nothing to save: a broker without its router
		 * must not look alive. */
		sp_log_msg(SP_LOG_ERROR, "router setup failed");
		exit(1);
	}
	sp_broker_thread_ready(r->broker);
	struct sp_router_local *L = r->local;
	int next_timeout = L->bp != NULL ? 0 : 1000;
	while (!atomic_load_explicit(&r->stop, memory_order_acquire)) {
		int timeout = L->accept_retry && next_timeout > 100 ? 100 : next_timeout;
		if (L->stalled_on >= 0 || outbox_waiting(r) || !sp_list_empty(&L->hpub_wait))
			timeout = 1;
		else if (!sp_list_empty(&L->ready))
			timeout = 0;
		if (timeout != 0 && !may_block(r))
			timeout = 0;
		int n = sp_ev_wait(&L->ev, evs, 256, timeout);
		for (unsigned w = 0; w < r->broker->nworkers; w++)
			sp_ring_wake_consumer(&r->broker->workers[w].ctl_ring);
		for (int i = 0; i < n; i++) {
			void *p = evs[i].ptr;
			if (p == &listen_tag) {
				pub_accept(r);
			} else if (p == &wake_tag) {
				uint64_t v;
				ssize_t k = read(r->wake_fd, &v, sizeof(v));
				(void)k;
			} else if (L->bp != NULL && p == (void *)L->bp) {
				bp_on_ready(r);
			} else {
				struct pubconn *pc = p;
				if (evs[i].events & SP_EV_READ)
					pc->readable = true;
				if (evs[i].events & SP_EV_WRITE)
					pub_flush(pc);
				if (!sp_list_linked(&pc->ready_link))
					sp_list_add_tail(&L->ready, &pc->ready_link);
			}
		}
		if (L->accept_retry) {
			L->accept_retry = false;
			pub_accept(r);
		}
		hpub_retry(r);
		drain_ctl(r);
		check_stall(r);
		pub_serve_ready(r);
		pub_expire_idle(r);
		next_timeout = L->bp != NULL ? bp_tick(r, 1000) : 1000;
		signal_workers(r);
		sp_history_expire(&L->hist, sp_now_ms());
		sp_stat_set(&r->stats.history_events, L->hist.count);
		sp_stat_set(&r->stats.history_bytes, L->hist.bytes);
		sp_stat_set(&r->stats.history_evicted, L->hist.evicted);
	}
	router_teardown(r);
	return NULL;
}
