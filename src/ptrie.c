/*
 * ptrie.c - subscription patterns and the pattern trie. The sp_pattern_*
 * functions are pure; a trie has one owner thread (see ptrie.h).
 *
 * Invariants the matcher relies on:
 *  - every node but the root is non-empty: it holds a stored pattern or has
 *    a child. sp_ptrie_remove and a failed sp_ptrie_slot prune upwards to
 *    keep it so, which also returns the trie to zero nodes when it empties;
 *  - a '>' node is a leaf (sp_ptrie_slot only stores valid patterns), hence
 *    a stored one;
 *  - a literal child's label is never empty, "*" or ">", so a literal
 *    lookup can never land on a wildcard node.
 *
 * Literal children: a chained hash table per node, keyed by the segment's
 * sp_topic_hash, grown at load 1 and shrunk at load 1/4. A sorted array with
 * binary search was measured with tools/ptriebench (2-core EPYC VM, shared):
 * no faster even with 100 patterns (67-87 vs 54-72 ns a topic), and with
 * 100,000 the wide nodes (root, "metrics": 10^4-10^5 children) made it
 * 2.5x slower on a hot topic set (~150 vs ~58 ns) and about 2x on a uniform
 * one (650-1260 vs 320-680 ns): its cost grows with log(N), which the hash
 * avoids, and each removal from a wide node is a memmove (~2 vs ~0.4 us). The
 * hash costs one XXH3 per topic segment looked up, computed lazily and
 * once per match (about 15% of a match on a hot set).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spout/ptrie.h"

struct sp_pnode {
	struct sp_pnode *parent;    /* NULL for the root */
	struct sp_pnode *next;      /* next literal sibling in the same bucket */
	struct sp_pnode **kids;     /* literal children's buckets, NULL if none */
	struct sp_pnode *star;      /* '*' child */
	struct sp_pnode *gt;        /* '>' child, a stored leaf */
	void *value;
	uint64_t hash;              /* sp_topic_hash(label), literal nodes */
	uint32_t nkids;             /* literal children */
	uint32_t kmask;             /* buckets - 1, when kids != NULL */
	uint8_t len;                /* label bytes; segments are <= 128 */
	bool stored;                /* a pattern ends here */
	char label[];
};

/* Most nodes have one literal child (tenant1 -> orders): start small. */
#define KIDS_MIN 2u
#define KIDS_MAX (1u << 30)

/* Length of the segment that starts <s>: up to the next '.' or <len>. */
static size_t seg_len(const char *s, size_t len)
{
	const char *dot = memchr(s, '.', len);

	return dot != NULL ? (size_t)(dot - s) : len;
}

static bool is_star(const char *s, size_t n)
{
	return n == 1 && s[0] == '*';
}

static bool is_gt(const char *s, size_t n)
{
	return n == 1 && s[0] == '>';
}

/* ---- patterns ---------------------------------------------------------- */

const char *sp_pattern_check(const char *s, size_t len)
{
	size_t i = 0;

	if (len == 0)
		return "empty pattern";
	if (len > SP_PATTERN_MAX)
		return "pattern too long";
	for (;;) {
		const char *seg = s + i;
		size_t n = seg_len(seg, len - i);
		bool last = i + n == len;

		if (n == 0)
			return "empty pattern segment";
		if (is_gt(seg, n)) {
			/* '>' swallows the rest, so nothing may follow it */
			if (!last)
				return "'>' must be the last segment";
		} else if (!is_star(seg, n)) {
			if (memchr(seg, '*', n) != NULL || memchr(seg, '>', n) != NULL)
				return "wildcard must be a whole segment";
			/* the segment has no '.', so only its bytes can be
			 * wrong: one set of character rules for both */
			if (sp_topic_check(seg, n) != NULL)
				return "invalid character in pattern";
		}
		if (last)
			return NULL;
		i += n + 1;
	}
}

bool sp_pattern_is_wild(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = seg_len(s + i, len - i);

		if (is_star(s + i, n) || is_gt(s + i, n))
			return true;
		i += n + 1;
	}
	return false;
}

bool sp_pattern_match(const char *pat, size_t plen, const char *topic,
		      size_t tlen)
{
	size_t p = 0, q = 0;

	if (plen == 0 || tlen == 0)
		return false;
	for (;;) {
		size_t pn = seg_len(pat + p, plen - p);
		size_t tn = seg_len(topic + q, tlen - q);

		/* reached with segment q still unread: one or more remain */
		if (is_gt(pat + p, pn))
			return true;
		if (!is_star(pat + p, pn) &&
		    (pn != tn || memcmp(pat + p, topic + q, pn) != 0))
			return false;
		p += pn;
		q += tn;
		if (p == plen || q == tlen)
			return p == plen && q == tlen;
		p++; /* the dots */
		q++;
	}
}

bool sp_pattern_covers(const char *grant, size_t glen, const char *want, size_t wlen)
{
	size_t p = 0, q = 0;

	if (glen == 0 || wlen == 0)
		return false;
	for (;;) {
		size_t gn = seg_len(grant + p, glen - p);
		size_t wn = seg_len(want + q, wlen - q);

		/* one or more segments of <want> remain, whatever they are */
		if (is_gt(grant + p, gn))
			return true;
		if (is_star(grant + p, gn)) {
			if (is_gt(want + q, wn))
				return false;   /* '>' may be several segments */
		} else if (gn != wn || memcmp(grant + p, want + q, gn) != 0) {
			return false;           /* a literal covers only itself */
		}
		p += gn;
		q += wn;
		if (p == glen || q == wlen)
			return p == glen && q == wlen;
		p++;
		q++;
	}
}

/* ---- nodes ------------------------------------------------------------- */

static struct sp_pnode *node_new(struct sp_ptrie *t, struct sp_pnode *parent,
				 const char *label, size_t len, uint64_t hash)
{
	/* sizeof, not offsetof(label): the struct's tail padding stays ours */
	size_t size = sizeof(struct sp_pnode) + len;
	struct sp_pnode *n = calloc(1, size);

	if (n == NULL)
		return NULL;
	n->parent = parent;
	n->hash = hash;
	n->len = (uint8_t)len;
	memcpy(n->label, label, len);
	t->nodes++;
	t->bytes += size;
	return n;
}

static void node_free(struct sp_ptrie *t, struct sp_pnode *n)
{
	t->nodes--;
	t->bytes -= sizeof(*n) + n->len;
	free(n);
}

static struct sp_pnode *kid_find(const struct sp_pnode *n, uint64_t hash,
				 const char *s, size_t len)
{
	for (struct sp_pnode *c = n->kids[hash & n->kmask]; c != NULL; c = c->next)
		if (c->hash == hash && c->len == len &&
		    memcmp(c->label, s, len) == 0)
			return c;
	return NULL;
}

/* Rehash <n>'s literal children into <buckets> buckets. Best effort: if the
 * allocation fails the old table stays, only more or less loaded. */
static void kid_resize(struct sp_ptrie *t, struct sp_pnode *n, uint32_t buckets)
{
	struct sp_pnode **b = calloc(buckets, sizeof(*b));

	if (b == NULL)
		return;
	for (uint32_t i = 0; i <= n->kmask; i++) {
		struct sp_pnode *c = n->kids[i];

		while (c != NULL) {
			struct sp_pnode *next = c->next;

			c->next = b[c->hash & (buckets - 1)];
			b[c->hash & (buckets - 1)] = c;
			c = next;
		}
	}
	t->bytes -= (n->kmask + 1) * sizeof(*b);
	t->bytes += buckets * sizeof(*b);
	free(n->kids);
	n->kids = b;
	n->kmask = buckets - 1;
}

/* Returns 0, or -ENOMEM if <n> had no table and none could be made. */
static int kid_add(struct sp_ptrie *t, struct sp_pnode *n, struct sp_pnode *c)
{
	if (n->kids == NULL) {
		n->kids = calloc(KIDS_MIN, sizeof(*n->kids));
		if (n->kids == NULL)
			return -ENOMEM;
		n->kmask = KIDS_MIN - 1;
		t->bytes += KIDS_MIN * sizeof(*n->kids);
	} else if (n->nkids > n->kmask && n->kmask + 1 < KIDS_MAX) {
		kid_resize(t, n, (n->kmask + 1) * 2);
	}
	struct sp_pnode **b = &n->kids[c->hash & n->kmask];
	c->next = *b;
	*b = c;
	n->nkids++;
	return 0;
}

static void kid_del(struct sp_ptrie *t, struct sp_pnode *n, struct sp_pnode *c)
{
	for (struct sp_pnode **p = &n->kids[c->hash & n->kmask]; *p != NULL;
	     p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			c->next = NULL;
			n->nkids--;
			break;
		}
	}
	if (n->nkids == 0) {
		/* an empty node must cost nothing beyond itself */
		t->bytes -= (n->kmask + 1) * sizeof(*n->kids);
		free(n->kids);
		n->kids = NULL;
		n->kmask = 0;
	} else if (n->kmask + 1 > KIDS_MIN && n->nkids * 4 <= n->kmask + 1) {
		/* a root that once had 100k tenants should not keep 1 MiB */
		kid_resize(t, n, (n->kmask + 1) / 2);
	}
}

/* Free <n> and then each ancestor that has become empty, so that every
 * node but a root kept by its children is non-empty again. */
static void prune(struct sp_ptrie *t, struct sp_pnode *n)
{
	while (n != NULL && !n->stored && n->nkids == 0 && n->star == NULL &&
	       n->gt == NULL) {
		struct sp_pnode *p = n->parent;

		if (p == NULL)
			t->root = NULL;
		else if (p->star == n)
			p->star = NULL;
		else if (p->gt == n)
			p->gt = NULL;
		else
			kid_del(t, p, n);
		node_free(t, n);
		n = p;
	}
}

/* The node of exactly the pattern <pat>[0..len), stored or not, or NULL. */
static struct sp_pnode *find_exact(const struct sp_ptrie *t, const char *pat,
				   size_t len)
{
	struct sp_pnode *n = t->root;
	size_t i = 0;

	if (n == NULL || len == 0 || len > SP_PATTERN_MAX)
		return NULL;
	for (;;) {
		const char *s = pat + i;
		size_t sn = seg_len(s, len - i);

		if (is_star(s, sn))
			n = n->star;
		else if (is_gt(s, sn))
			n = n->gt;
		else if (n->nkids != 0)
			n = kid_find(n, sp_topic_hash(s, sn), s, sn);
		else
			n = NULL;
		if (n == NULL)
			return NULL;
		i += sn;
		if (i == len)
			return n;
		i++;
	}
}

/* ---- trie -------------------------------------------------------------- */

static void free_tree(struct sp_pnode *n, void (*free_value)(void *value))
{
	if (n->stored && n->value != NULL && free_value != NULL)
		free_value(n->value);
	if (n->star != NULL)
		free_tree(n->star, free_value);
	if (n->gt != NULL)
		free_tree(n->gt, free_value);
	if (n->kids != NULL) {
		for (uint32_t i = 0; i <= n->kmask; i++) {
			struct sp_pnode *c = n->kids[i];

			while (c != NULL) {
				struct sp_pnode *next = c->next;

				free_tree(c, free_value);
				c = next;
			}
		}
		free(n->kids);
	}
	free(n);
}

void sp_ptrie_destroy(struct sp_ptrie *t, void (*free_value)(void *value))
{
	/* recursion depth: one frame per pattern segment, <= 65 */
	if (t->root != NULL)
		free_tree(t->root, free_value);
	*t = (struct sp_ptrie){ 0 };
}

void **sp_ptrie_slot(struct sp_ptrie *t, const char *pat, size_t len)
{
	struct sp_pnode *n;
	size_t i = 0;

	/* an invalid pattern would break the invariants above ("a.>.b"
	 * would give '>' a child): refuse it here, not in the matcher */
	if (sp_pattern_check(pat, len) != NULL)
		return NULL;
	if (t->root == NULL) {
		t->root = node_new(t, NULL, "", 0, 0);
		if (t->root == NULL)
			return NULL;
	}
	n = t->root;
	for (;;) {
		const char *s = pat + i;
		size_t sn = seg_len(s, len - i);
		struct sp_pnode **wild = is_star(s, sn) ? &n->star :
					 is_gt(s, sn)   ? &n->gt : NULL;
		struct sp_pnode *c;

		if (wild != NULL) {
			c = *wild;
			if (c == NULL) {
				c = node_new(t, n, s, sn, 0);
				if (c == NULL)
					goto fail;
				*wild = c;
			}
		} else {
			uint64_t h = sp_topic_hash(s, sn);

			c = n->nkids != 0 ? kid_find(n, h, s, sn) : NULL;
			if (c == NULL) {
				c = node_new(t, n, s, sn, h);
				if (c == NULL)
					goto fail;
				if (kid_add(t, n, c) != 0) {
					node_free(t, c);
					goto fail;
				}
			}
		}
		n = c;
		i += sn;
		if (i == len)
			break;
		i++;
	}
	if (!n->stored) {
		n->stored = true;
		n->value = NULL;
		t->count++;
	}
	return &n->value;
fail:
	/* <n> is the last node reached: new and empty, or an existing
	 * non-empty one where pruning stops at once */
	prune(t, n);
	return NULL;
}

void *sp_ptrie_get(const struct sp_ptrie *t, const char *pat, size_t len)
{
	const struct sp_pnode *n = find_exact(t, pat, len);

	return n != NULL && n->stored ? n->value : NULL;
}

int sp_ptrie_remove(struct sp_ptrie *t, const char *pat, size_t len)
{
	struct sp_pnode *n = find_exact(t, pat, len);

	if (n == NULL || !n->stored)
		return -ENOENT;
	n->stored = false;
	n->value = NULL;
	t->count--;
	prune(t, n);
	return 0;
}

/* ---- matching ---------------------------------------------------------- */

/* The topic split once per sp_ptrie_match. Segment hashes are computed on
 * first use: a topic whose first segment is unknown costs one hash, and a
 * segment looked up under both a literal and a '*' branch is hashed once. */
struct match {
	const char *topic;
	unsigned nsegs;
	uint64_t hashed;                        /* bit i: hash[i] is set */
	void (*visit)(void *value, void *arg);
	void *arg;
	uint8_t off[SP_PATTERN_MAX_SEGS];       /* offsets <= 128 */
	uint8_t len[SP_PATTERN_MAX_SEGS];       /* lengths <= 128 */
	uint64_t hash[SP_PATTERN_MAX_SEGS];
};

static uint64_t seg_hash(struct match *m, unsigned i)
{
	if ((m->hashed & (1ull << i)) == 0) {
		m->hash[i] = sp_topic_hash(m->topic + m->off[i], m->len[i]);
		m->hashed |= 1ull << i;
	}
	return m->hash[i];
}

/* Visit the patterns under <n> that match topic segments i.. . Recurses
 * only into '*' branches and loops down the literal one, so the depth is
 * at most the number of segments. */
static void walk(const struct sp_pnode *n, unsigned i, struct match *m)
{
	for (;;) {
		if (i == m->nsegs) {
			if (n->stored)
				m->visit(n->value, m->arg);
			return;
		}
		/* segment i exists, so a '>' here has its one-or-more */
		if (n->gt != NULL && n->gt->stored)
			m->visit(n->gt->value, m->arg);
		if (n->star != NULL)
			walk(n->star, i + 1, m);
		if (n->nkids == 0)
			return;
		n = kid_find(n, seg_hash(m, i), m->topic + m->off[i], m->len[i]);
		if (n == NULL)
			return;
		i++;
	}
}

void sp_ptrie_match(const struct sp_ptrie *t, const char *topic, size_t len,
		    void (*visit)(void *value, void *arg), void *arg)
{
	struct match m;

	if (t->root == NULL || len == 0 || len > SP_TOPIC_MAX)
		return;
	m.topic = topic;
	m.nsegs = 0;
	m.hashed = 0;
	m.visit = visit;
	m.arg = arg;
	/* a byte loop, not memchr: segments are a few bytes, and a libc
	 * call per segment was the largest single cost of a match */
	m.off[0] = 0;
	for (size_t i = 0; i < len; i++) {
		if (topic[i] != '.')
			continue;
		/* only an invalid topic ("a....") has more segments than
		 * fit; it matches nothing rather than overrun */
		if (m.nsegs == SP_PATTERN_MAX_SEGS - 1)
			return;
		m.len[m.nsegs] = (uint8_t)(i - m.off[m.nsegs]);
		m.off[++m.nsegs] = (uint8_t)(i + 1);
	}
	m.len[m.nsegs] = (uint8_t)(len - m.off[m.nsegs]);
	m.nsegs++;
	walk(t->root, 0, &m);
}
