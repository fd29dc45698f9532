/*
 * history.c - per-topic bounded history of shared frames (see history.h).
 * Router thread only.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "spout/history.h"
#include "spout/ptrie.h"
#include "spout/topic.h"

struct htopic {
	struct sp_tnode node;
	struct sp_list entries;       /* oldest first */
	uint32_t n;
	uint64_t evicted_upto;        /* highest id of this topic dropped */
	char name[];
};

struct hentry {
	struct sp_list all_link;
	struct sp_list topic_link;
	struct sp_frame *frame;
	struct htopic *topic;
	uint64_t at_ms;
	struct hentry *next_free;
};

int sp_history_init(struct sp_history *h, const struct sp_history_limits *lim)
{
	memset(h, 0, sizeof(*h));
	h->lim = *lim;
	sp_list_init(&h->all);
	return sp_tmap_init(&h->topics, 256);
}

size_t sp_history_cost(const struct sp_frame *f)
{
	return sizeof(*f) + f->len + f->topic_len + 1 + sizeof(struct hentry);
}

static struct htopic *htopic_get(struct sp_history *h, const struct sp_frame *f)
{
	struct sp_tnode *n = sp_tmap_find(&h->topics, f->topic_hash, f->topic, f->topic_len);

	if (n != NULL)
		return sp_container_of(n, struct htopic, node);
	struct htopic *t = calloc(1, sizeof(*t) + f->topic_len + 1);
	if (t == NULL)
		return NULL;
	memcpy(t->name, f->topic, f->topic_len);
	t->node.hash = f->topic_hash;
	t->node.name = t->name;
	t->node.len = f->topic_len;
	sp_list_init(&t->entries);
	sp_tmap_insert(&h->topics, &t->node);
	return t;
}

static void evict(struct sp_history *h, struct hentry *e)
{
	struct htopic *t = e->topic;

	sp_list_del(&e->all_link);
	sp_list_del(&e->topic_link);
	/* e->frame is NULL only once e is on the free list, which no list
	 * walk reaches (clang-analyzer cannot see that: list.h) */
	if (e->frame->id > t->evicted_upto) // NOLINT(clang-analyzer-core.NullDereference)
		t->evicted_upto = e->frame->id;
	if (e->frame->id > h->evicted_upto)
		h->evicted_upto = e->frame->id;
	h->bytes -= sp_history_cost(e->frame);
	h->count--;
	h->evicted++;
	sp_frame_release(e->frame);
	e->frame = NULL;
	e->next_free = h->free;
	h->free = e;
	/* A topic with nothing retained is forgotten; h->evicted_upto keeps
	 * a replay on it honest. */
	if (--t->n == 0) {
		sp_tmap_remove(&h->topics, &t->node);
		free(t);
	}
}

static struct hentry *oldest(struct sp_list *list, size_t off)
{
	struct sp_list *first = sp_list_first(list);

	return first ? (struct hentry *)((char *)first - off) : NULL;
}

#define OLDEST_ALL(h) oldest(&(h)->all, offsetof(struct hentry, all_link))

int sp_history_add(struct sp_history *h, struct sp_frame *f, uint64_t now_ms)
{
	struct htopic *t = htopic_get(h, f);
	struct hentry *e = h->free;

	if (t == NULL)
		return -ENOMEM;
	if (e != NULL) {
		h->free = e->next_free;
	} else if ((e = malloc(sizeof(*e))) == NULL) {
		if (t->n == 0) {
			sp_tmap_remove(&h->topics, &t->node);
			free(t);
		}
		return -ENOMEM;
	}
	memset(e, 0, sizeof(*e));
	e->frame = f;
	e->topic = t;
	e->at_ms = now_ms;
	sp_list_add_tail(&h->all, &e->all_link);
	sp_list_add_tail(&t->entries, &e->topic_link);
	t->n++;
	h->count++;
	h->bytes += sp_history_cost(f);

	if (t->n > h->lim.per_topic)
		evict(h, sp_container_of(sp_list_first(&t->entries), struct hentry, topic_link));
	/* The newest entry always stays, even if alone over the budget. */
	while (h->bytes > h->lim.max_bytes && OLDEST_ALL(h) != e)
		evict(h, OLDEST_ALL(h));
	sp_history_expire(h, now_ms);
	return 0;
}

void sp_history_expire(struct sp_history *h, uint64_t now_ms)
{
	struct hentry *e;

	if (h->lim.ttl_ms == 0)
		return;
	while ((e = OLDEST_ALL(h)) != NULL && e->at_ms + h->lim.ttl_ms <= now_ms)
		evict(h, e);
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = (*(struct sp_frame *const *)a)->id;
	uint64_t y = (*(struct sp_frame *const *)b)->id;

	return x < y ? -1 : x > y;
}

/* Append <f> to the growing array <*v>. */
static int push_frame(struct sp_frame ***v, size_t *cnt, size_t *cap, struct sp_frame *f)
{
	if (*cnt == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct sp_frame **nv = realloc(*v, ncap * sizeof(*nv));
		if (nv == NULL)
			return -ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*cnt)++] = f;
	return 0;
}

/* Entries after <after> on one exact topic: a walk back from its newest. */
static int collect_topic(struct sp_history *h, const char *name, uint16_t len, uint64_t after,
			 struct sp_frame ***v, size_t *cnt, size_t *cap, enum sp_gap *gap)
{
	struct sp_tnode *node = sp_tmap_find(&h->topics, sp_topic_hash(name, len), name, len);

	if (node == NULL) {
		if (h->evicted_upto > after)
			*gap = SP_GAP_EVICTED;
		return 0;
	}
	struct htopic *t = sp_container_of(node, struct htopic, node);
	if (t->evicted_upto > after)
		*gap = SP_GAP_EVICTED;
	struct sp_list *it = t->entries.prev;
	while (it != &t->entries && sp_container_of(it, struct hentry, topic_link)->frame->id > after)
		it = it->prev;
	for (it = it->next; it != &t->entries; it = it->next)
		if (push_frame(v, cnt, cap, sp_container_of(it, struct hentry, topic_link)->frame) != 0)
			return -ENOMEM;
	return 0;
}

/* Entries after <after> whose topic matches a pattern: the global list,
 * walked back only as far as <after>. Any eviction after <after> may have
 * dropped a match. */
static int collect_pattern(struct sp_history *h, const char *pat, uint16_t len, uint64_t after,
			   struct sp_frame ***v, size_t *cnt, size_t *cap, enum sp_gap *gap)
{
	if (h->evicted_upto > after)
		*gap = SP_GAP_EVICTED;
	struct sp_list *it = h->all.prev;
	while (it != &h->all && sp_container_of(it, struct hentry, all_link)->frame->id > after)
		it = it->prev;
	for (it = it->next; it != &h->all; it = it->next) {
		struct sp_frame *f = sp_container_of(it, struct hentry, all_link)->frame;
		if (sp_pattern_match(pat, len, f->topic, f->topic_len) &&
		    push_frame(v, cnt, cap, f) != 0)
			return -ENOMEM;
	}
	return 0;
}

int sp_history_collect(struct sp_history *h, const char *const *topics,
		       const uint16_t *lens, unsigned n, uint64_t after,
		       struct sp_frame ***out, size_t *nout, enum sp_gap *gap)
{
	struct sp_frame **v = NULL;
	size_t cnt = 0, cap = 0;

	*out = NULL;
	*nout = 0;
	*gap = SP_GAP_NONE;
	for (unsigned i = 0; i < n; i++) {
		int rc = sp_pattern_is_wild(topics[i], lens[i])
			 ? collect_pattern(h, topics[i], lens[i], after, &v, &cnt, &cap, gap)
			 : collect_topic(h, topics[i], lens[i], after, &v, &cnt, &cap, gap);
		if (rc != 0) {
			free(v);
			return rc;
		}
	}
	/* Merge by id; a frame reached through two names (a topic and a
	 * pattern, or two patterns) is kept once. */
	if (n > 1 && cnt > 1) {
		qsort(v, cnt, sizeof(*v), cmp_id);
		size_t k = 0;
		for (size_t i = 0; i < cnt; i++)
			if (k == 0 || v[k - 1] != v[i])
				v[k++] = v[i];
		cnt = k;
	}
	for (size_t i = 0; i < cnt; i++)
		atomic_fetch_add_explicit(&v[i]->refs, 1, memory_order_relaxed);
	*out = v;
	*nout = cnt;
	return 0;
}

void sp_history_destroy(struct sp_history *h)
{
	struct hentry *e;

	while ((e = OLDEST_ALL(h)) != NULL)
		evict(h, e);
	while (h->free != NULL) {
		e = h->free;
		h->free = e->next_free;
		free(e);
	}
	if (h->topics.buckets != NULL)
		sp_tmap_destroy(&h->topics);
	memset(h, 0, sizeof(*h));
}
