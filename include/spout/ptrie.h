/*
 * ptrie.h - subscription patterns: validation, a reference matcher, and a
 * trie that finds every stored pattern matching a published topic.
 *
 * A pattern is a topic (see topic.h) in which a whole segment may be a
 * wildcard:
 *
 *   '*'  matches exactly one segment, anywhere:
 *        orders.*.created  ~ orders.eu.created, not orders.created
 *   '>'  only as the last segment, matches one or more trailing segments:
 *        metrics.>         ~ metrics.cpu, metrics.cpu.0, not metrics
 *
 * '*' alone matches every one-segment topic, '>' alone every topic. A
 * pattern without wildcards matches only the topic equal to it. Patterns
 * are at most SP_PATTERN_MAX bytes, so at most SP_PATTERN_MAX_SEGS
 * segments.
 *
 * The trie has one node per pattern segment, shared by common prefixes:
 *
 *   root ─ tenant1 ─ orders ─ * ─ created      tenant1.orders.*.created
 *        │                  └ eu ─ created     tenant1.orders.eu.created
 *        ├ metrics ─ host7 ─ >                 metrics.host7.>
 *        └ * ─ health                          *.health
 *
 * Each node holds its literal children in a small hash table keyed by the
 * segment's sp_topic_hash, plus at most one '*' child and one '>' child
 * (a leaf). Matching a topic of d segments does one literal lookup per
 * segment per branch taken, and follows the '*' and '>' children: its cost
 * depends on d and on how many wildcard branches the topic walks into, not
 * on how many patterns are stored.
 *
 * Threading: sp_pattern_* are pure, any thread. A struct sp_ptrie belongs to
 * one owner thread, which alone may call the functions that take a
 * non-const trie; sp_ptrie_get/count/match write nothing, so they may run
 * concurrently with each other, never with a write.
 */
#ifndef SPOUT_PTRIE_H
#define SPOUT_PTRIE_H

#include <stdbool.h>
#include <stddef.h>

#include "spout/topic.h"

#define SP_PATTERN_MAX SP_TOPIC_MAX
#define SP_PATTERN_MAX_SEGS ((SP_PATTERN_MAX + 1) / 2)

/* Returns NULL if <s>[0..len) is a valid pattern, else a short reason. The
 * literal segments follow the topic rules (sp_topic_check). */
const char *sp_pattern_check(const char *s, size_t len);

static inline bool sp_pattern_valid(const char *s, size_t len)
{
	return sp_pattern_check(s, len) == NULL;
}

/* True if the valid pattern <s>[0..len) has a '*' or '>' segment, that is,
 * it may match a topic other than itself. */
bool sp_pattern_is_wild(const char *s, size_t len);

/* True if the valid pattern <pat>[0..plen) matches the valid topic
 * <topic>[0..tlen). One pass over both, no allocation. The reference
 * semantics: history replay filters with it and the tests check the trie
 * against it. Invalid inputs give an unspecified answer but are never read
 * beyond their lengths. */
bool sp_pattern_match(const char *pat, size_t plen, const char *topic,
		      size_t tlen);

/* True if the valid pattern <grant> allows subscribing to the valid
 * pattern (or topic) <want>: every topic <want> can match, <grant> matches
 * too. "orders.>" covers "orders.*.created" and "orders.eu"; "orders.*"
 * covers "orders.eu" and "orders.*" but not "orders.>". Used to check
 * subscriptions against the topic patterns a token grants. */
bool sp_pattern_covers(const char *grant, size_t glen, const char *want, size_t wlen);

struct sp_pnode; /* private to ptrie.c */

/* An all-zero struct sp_ptrie is a valid empty trie (the root node is
 * created by the first sp_ptrie_slot and freed when the trie empties).
 * Fields are read-only outside ptrie.c. */
struct sp_ptrie {
	struct sp_pnode *root;
	size_t count;  /* stored patterns */
	size_t nodes;  /* allocated nodes, the root included */
	size_t bytes;  /* heap bytes asked for: nodes, labels, child tables */
};

/* Makes <t> an empty trie. Allocates nothing. */
static inline void sp_ptrie_init(struct sp_ptrie *t)
{
	*t = (struct sp_ptrie){ 0 };
}

/* Frees every node. If <free_value> is not NULL it is called once with the
 * value of each stored pattern whose value is not NULL, in no particular
 * order. <t> is left empty and reusable. */
void sp_ptrie_destroy(struct sp_ptrie *t, void (*free_value)(void *value));

/* Finds or stores the pattern <pat>[0..len) and returns the address of its
 * value, which is NULL when the pattern is new. The pattern counts as stored
 * from this call until sp_ptrie_remove, whatever the value (a caller that
 * cannot fill a new slot removes the pattern again). The address stays
 * valid until that pattern is removed or the trie destroyed.
 * Returns NULL, leaving the trie as it was, if <pat> is not a valid pattern
 * or memory runs out; callers check patterns with sp_pattern_check at the
 * protocol boundary, so for them NULL means -ENOMEM. */
void **sp_ptrie_slot(struct sp_ptrie *t, const char *pat, size_t len);

/* The value stored for exactly the pattern <pat>[0..len) (no wildcard
 * matching: "a.*" finds the pattern "a.*" only), or NULL if it is not
 * stored or its value is NULL. */
void *sp_ptrie_get(const struct sp_ptrie *t, const char *pat, size_t len);

/* Removes exactly the pattern <pat>[0..len) and frees the nodes only it
 * used. Its value is not freed: take it with sp_ptrie_get first. Returns 0,
 * or -ENOENT if it is not stored (an invalid pattern never is). */
int sp_ptrie_remove(struct sp_ptrie *t, const char *pat, size_t len);

static inline size_t sp_ptrie_count(const struct sp_ptrie *t)
{
	return t->count;
}

/* Calls <visit>(value, <arg>) once for each stored pattern that matches the
 * valid topic <topic>[0..len), in no particular order; a stored pattern
 * equal to the topic is one of them. <visit> must not modify the trie.
 * Allocates nothing; recursion depth is at most the topic's segment count.
 * A topic longer than SP_TOPIC_MAX matches nothing. */
void sp_ptrie_match(const struct sp_ptrie *t, const char *topic, size_t len,
		    void (*visit)(void *value, void *arg), void *arg);

#endif
