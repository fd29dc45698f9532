/*
 * worker_sub.c - a worker's topic table, its subscriptions and the fan-out
 * of frames from the router to local connections.
 *
 * A worker tells the router about a topic only when its local subscriber
 * count goes 0 -> 1 (SUB) or 1 -> 0 (UNSUB), so the router's table holds
 * workers, not connections, and a worker with no subscriber for a topic never
 * sees its frames.
 *
 * Fan-out cost per event on this worker: one hash lookup, one wref from the
 * pool, one pointer queued per subscriber, one atomic (the final release).
 * Worker thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "worker_internal.h"

static struct wtopic *wtopic_of(struct sp_tnode *n)
{
	return sp_container_of(n, struct wtopic, node);
}

static struct sp_ctl *ctl_get(struct sp_worker_local *L)
{
	struct sp_ctl *c = L->ctl_free;

	if (c != NULL) {
		L->ctl_free = c->next;
		c->next = NULL;
		return c;
	}
	return calloc(1, sizeof(*c));
}

static void ctl_put(struct sp_worker_local *L, struct sp_ctl *c)
{
	c->next = L->ctl_free;
	L->ctl_free = c;
}

/* Send <c> to the router now, or keep it in order behind earlier ones. */
void sub_send_ctl(struct sp_worker *w, struct sp_ctl *c)
{
	struct sp_worker_local *L = w->local;

	if (L->backlog == NULL && sp_ring_push_producer(&w->ctl_ring, (uintptr_t)c)) {
		L->ctl_pushed = true;
		return;
	}
	sp_stat_add(&w->stats.ctl_backlog, 1);
	c->next = NULL;
	if (L->backlog_tail != NULL)
		L->backlog_tail->next = c;
	else
		L->backlog = c;
	L->backlog_tail = c;
}

void sub_flush_ctl(struct sp_worker *w)
{
	struct sp_worker_local *L = w->local;

	while (L->backlog != NULL &&
	       sp_ring_push_producer(&w->ctl_ring, (uintptr_t)L->backlog)) {
		L->backlog = L->backlog->next;
		L->ctl_pushed = true;
	}
	if (L->backlog == NULL)
		L->backlog_tail = NULL;
	if (L->ctl_pushed) {
		L->ctl_pushed = false;
		if (sp_ring_push_done_producer(&w->ctl_ring))
			sp_wake(w->broker->router.wake_fd);
	}
}

static struct sp_ctl *ctl_new(struct sp_worker *w, enum sp_ctl_type type,
			      const struct wtopic *t)
{
	struct sp_ctl *c = ctl_get(w->local);

	if (c == NULL)
		return NULL;
	c->type = type;
	c->topic_hash = t->node.hash;
	c->topic_len = t->node.len;
	memcpy(c->topic, t->node.name, t->node.len);
	c->topic[t->node.len] = '\0';
	return c;
}

static struct wtopic *wtopic_get(struct sp_worker *w, const char *name, size_t len)
{
	struct sp_worker_local *L = w->local;
	uint64_t h = sp_topic_hash(name, len);
	struct sp_tnode *n = sp_tmap_find(&L->topics, h, name, len);

	if (n != NULL)
		return wtopic_of(n);
	struct wtopic *t = calloc(1, sizeof(*t) + len + 1);
	if (t == NULL)
		return NULL;
	memcpy(t->name, name, len);
	t->node.hash = h;
	t->node.name = t->name;
	t->node.len = (uint16_t)len;
	t->wild = sp_pattern_is_wild(name, len);
	if (t->wild) {
		void **slot = sp_ptrie_slot(&L->patterns, name, len);
		if (slot == NULL) {
			free(t);
			return NULL;
		}
		*slot = t;
	}
	t->pending = ctl_new(w, SP_CTL_SUB, t);
	if (t->pending == NULL) {
		if (t->wild)
			sp_ptrie_remove(&L->patterns, name, len);
		free(t);
		return NULL;
	}
	sp_tmap_insert(&L->topics, &t->node);
	sub_send_ctl(w, t->pending);
	return t;
}

static int wtopic_add(struct wtopic *t, struct sub *s)
{
	if (t->nsubs == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 4;
		struct sub **p = realloc(t->subs, cap * sizeof(*p));
		if (p == NULL)
			return -ENOMEM;
		t->subs = p;
		t->cap = cap;
	}
	s->idx = t->nsubs;
	t->subs[t->nsubs++] = s;
	return 0;
}

/* Forget a topic nobody here wants any more, and tell the router. */
static void wtopic_release_if_empty(struct sp_worker *w, struct wtopic *t)
{
	if (t->nsubs != 0)
		return;
	sp_tmap_remove(&w->local->topics, &t->node);
	if (t->wild)
		sp_ptrie_remove(&w->local->patterns, t->name, t->node.len);
	/* Even if our SUB is still in flight the router gets SUB then UNSUB,
	 * in order, and its ack will find no matching wtopic. */
	struct sp_ctl *c = ctl_new(w, SP_CTL_UNSUB, t);
	if (c != NULL)
		sub_send_ctl(w, c);
	else
		sp_log(SP_LOG_ERROR, "out of memory: UNSUB lost", "topic=%s", t->name);
	free(t->subs);
	free(t);
}

/* Remove <s> from its topic; the last one out tells the router. */
static void wtopic_del(struct sp_worker *w, struct sub *s)
{
	struct wtopic *t = s->topic;

	t->subs[s->idx] = t->subs[--t->nsubs];
	t->subs[s->idx]->idx = s->idx;
	s->topic = NULL;
	wtopic_release_if_empty(w, t);
}

int sub_subscribe(struct sp_worker *w, struct conn *c, const struct sp_http_topics *tl)
{
	c->subs = calloc(tl->n, sizeof(*c->subs));
	if (c->subs == NULL)
		return -ENOMEM;
	/* On failure the subscriptions made so far stay in c->subs[0..nsubs)
	 * and conn_close undoes them like any others. */
	for (unsigned i = 0; i < tl->n; i++) {
		struct wtopic *t = wtopic_get(w, tl->name[i], tl->len[i]);
		struct sub *s = &c->subs[i];
		if (t == NULL)
			return -ENOMEM;
		s->conn = c;
		s->topic = t;
		if (wtopic_add(t, s) != 0) {
			s->topic = NULL;
			wtopic_release_if_empty(w, t);
			return -ENOMEM;
		}
		c->nsubs++;
		if (t->pending != NULL)
			c->nwaiting++;
	}
	return 0;
}

void sub_unsubscribe_all(struct sp_worker *w, struct conn *c)
{
	for (unsigned i = 0; i < c->nsubs; i++)
		wtopic_del(w, &c->subs[i]);
	free(c->subs);
	c->subs = NULL;
	c->nsubs = 0;
}

int sub_request_replay(struct sp_worker *w, struct conn *c, uint64_t after)
{
	size_t names = 0;

	for (unsigned i = 0; i < c->nsubs; i++)
		names += c->subs[i].topic->node.len + 1u;
	struct sp_replay *rp = calloc(1, sizeof(*rp) + names);
	if (rp == NULL)
		return -ENOMEM;
	rp->hdr.type = SP_CTL_REPLAY;
	rp->conn = c;
	rp->after = after;
	char *p = rp->names;
	for (unsigned i = 0; i < c->nsubs && i < SP_REPLAY_TOPICS_MAX; i++) {
		const struct sp_tnode *n = &c->subs[i].topic->node;
		memcpy(p, n->name, n->len);
		p[n->len] = '\0';
		rp->topic[i] = p;
		rp->len[i] = n->len;
		p += n->len + 1;
		rp->ntopics++;
	}
	c->replay_inflight = true;
	c->nwaiting++;
	sub_send_ctl(w, &rp->hdr);
	return 0;
}

void sub_replay_free(struct sp_replay *rp)
{
	for (size_t i = 0; i < rp->nframes; i++)
		sp_frame_release(rp->frames[i]);
	free(rp->frames);
	free(rp);
}

/* The router's answer to a REPLAY. SUB acks for the same connection were
 * sent earlier on the same rings, so they have all arrived: the stream
 * starts now, unless the connection closed meanwhile (a zombie kept only
 * for this moment). */
static void on_replay(struct sp_worker *w, struct sp_replay *rp)
{
	struct conn *c = rp->conn;

	c->replay_inflight = false;
	if (c->state == CS_ZOMBIE) {
		sp_list_del(&c->all_link);   /* on the zombie list */
		sub_replay_free(rp);
		free(c);
		return;
	}
	if (c->state == CS_CLOSING) {        /* reaped at the end of this round */
		sub_replay_free(rp);
		return;
	}
	c->replay = rp;
	if (c->state == CS_SUBSCRIBING && --c->nwaiting == 0)
		http_start_stream(w, c);
}

void sub_on_ack(struct sp_worker *w, struct sp_ctl *ctl)
{
	struct sp_worker_local *L = w->local;

	if (ctl->type == SP_CTL_REPLAY) {
		on_replay(w, (struct sp_replay *)ctl);
		return;
	}
	if (ctl->type == SP_CTL_PUBLISH) {
		pub_on_answer(w, (struct sp_pubreq *)ctl);
		return;
	}
	if (ctl->type == SP_CTL_SUB) {
		struct sp_tnode *n = sp_tmap_find(&L->topics, ctl->topic_hash, ctl->topic,
						  ctl->topic_len);
		struct wtopic *t = n ? wtopic_of(n) : NULL;
		if (t != NULL && t->pending == ctl) {
			t->pending = NULL;
			for (uint32_t i = 0; i < t->nsubs; i++) {
				struct conn *c = t->subs[i]->conn;
				if (c->state == CS_SUBSCRIBING && --c->nwaiting == 0)
					http_start_stream(w, c);
			}
		}
	}
	ctl_put(L, ctl);
}

/* One frame's fan-out on this worker: shared by every wtopic it reaches. */
struct fanout {
	struct sp_worker *w;
	struct sp_frame *f;
	struct sp_wref *wr;          /* created on first use; holds a guard ref */
	struct sp_outq_limits lim;
	struct sp_outq_drops drops;
	uint64_t shed;
};

/* Queue the frame on every streaming subscriber of <t>. */
static void fanout_topic(struct fanout *fo, struct wtopic *t)
{
	struct sp_worker *w = fo->w;
	struct sp_worker_local *L = w->local;
	struct sp_frame *f = fo->f;

	/* A wtopic whose SUB is not acked yet gets nothing: the frame was
	 * routed before the router saw the subscription. */
	if (t->pending != NULL || t->nsubs == 0)
		return;
	if (fo->wr == NULL && (fo->wr = sp_wref_get(&L->pool, f, 1)) == NULL) {
		sp_stat_add(&w->stats.events_dropped, t->nsubs);
		return;
	}
	for (uint32_t i = 0; i < t->nsubs; i++) {
		struct conn *c = t->subs[i]->conn;
		/* ids only grow, so <= last_id means this connection already
		 * has the event (replayed, or through another topic or pattern
		 * of the same connection). */
		if (c->state != CS_STREAMING || f->id <= c->last_id)
			continue;
		/* A burst (or a replay) can queue more than one loop round
		 * writes: write the backlog out before judging the bound, so
		 * the bound measures how far a consumer lags behind its socket
		 * buffer, not the size of a burst. */
		if (!c->blocked && (c->q.count >= L->flush_events || c->q.bytes >= L->flush_bytes)) {
			conn_flush(w, c);
			if (c->state != CS_STREAMING)
				continue;   /* the write failed and closed it */
		}
		c->last_id = f->id;
		fo->wr->refs++;
		int rc = sp_outq_push(&c->q, &L->pool, fo->wr, c->chunked, &fo->lim, &fo->drops);
		if (rc != 0) {
			fo->wr->refs--;
			/* disconnect policy (or no memory): everything this
			 * connection still had queued is lost with it */
			fo->shed += c->q.count + 1;
			conn_close(w, c, rc == -ENOBUFS ? CLOSE_OVERFLOW : CLOSE_ERROR);
			continue;
		}
		if (c->q.count > L->queue_depth_max)
			L->queue_depth_max = c->q.count;
		if (!c->blocked)
			conn_want_flush(w, c);
	}
}

static void fanout_pattern(void *value, void *arg)
{
	fanout_topic(arg, value);
}

void sub_on_frame(struct sp_worker *w, struct sp_frame *f)
{
	struct sp_worker_local *L = w->local;
	struct fanout fo = { .w = w, .f = f, .lim = L->lim };
	struct sp_tnode *n = sp_tmap_find(&L->topics, f->topic_hash, f->topic, f->topic_len);

	sp_stat_add(&w->stats.frames_in, 1);
	/* The router stamped the topic's overflow policy into the frame. */
	fo.lim.policy = sp_frame_policy(f);
	if (n != NULL)
		fanout_topic(&fo, wtopic_of(n));
	if (L->patterns.count != 0)
		sp_ptrie_match(&L->patterns, f->topic, f->topic_len, fanout_pattern, &fo);
	uint64_t lost = fo.drops.oldest + fo.drops.conflated + fo.shed;
	if (lost != 0) {
		sp_stat_add(&w->stats.events_dropped, lost);
		sp_stat_add(&w->stats.drops_oldest, fo.drops.oldest);
		sp_stat_add(&w->stats.drops_conflated, fo.drops.conflated);
		sp_stat_add(&w->stats.drops_overflow, fo.shed);
	}
	/* Nobody here wanted it (a topic we have left): the router routed it
	 * before it saw our UNSUB. */
	if (fo.wr != NULL)
		sp_wref_put(&L->pool, fo.wr);
	else
		sp_frame_release(f);
}

void sub_teardown(struct sp_worker *w)
{
	struct sp_worker_local *L = w->local;
	struct sp_tnode *n;

	while ((n = sp_tmap_pop_any(&L->topics)) != NULL) {
		struct wtopic *t = wtopic_of(n);
		free(t->subs);
		free(t);
	}
	sp_ptrie_destroy(&L->patterns, NULL);   /* values were the wtopics */
	while (L->backlog != NULL) {
		struct sp_ctl *next = L->backlog->next;
		if (L->backlog->type == SP_CTL_REPLAY)
			sub_replay_free((struct sp_replay *)L->backlog);
		else
			free(L->backlog);
		L->backlog = next;
	}
	while (L->ctl_free != NULL) {
		struct sp_ctl *next = L->ctl_free->next;
		free(L->ctl_free);
		L->ctl_free = next;
	}
}
