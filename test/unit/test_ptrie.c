/*
 * test_ptrie.c - subscription patterns and the pattern trie (src/ptrie.c).
 *
 * sp_pattern_match is pinned by a table; the trie is then checked against
 * it on random patterns and topics, where any disagreement is a trie bug.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "spout/ptrie.h"
#include "spout/topic.h"
#include "sanitizers.h"

/* Criterion runs each test in a re-executed copy of this binary, where a
 * PIE's addresses differ, so parameters must not hold pointers into static
 * data: pass indices into a file-scope table instead. */
#define INDEX_PARAMS(table)                                                  \
	do {                                                                 \
		static size_t idx_[sizeof(table) / sizeof((table)[0])];      \
		for (size_t i_ = 0; i_ < sizeof(idx_) / sizeof(idx_[0]); i_++) \
			idx_[i_] = i_;                                       \
		return cr_make_param_array(size_t, idx_,                     \
					   sizeof(idx_) / sizeof(idx_[0]));  \
	} while (0)

/* ---- validation ------------------------------------------------------- */

struct check_case {
	const char *s;
	size_t len;          /* 0: strlen(s) */
	const char *reason;  /* NULL: valid */
	bool wild;           /* sp_pattern_is_wild, valid patterns only */
};

static const struct check_case check_cases[] = {
	{ "a", 0, NULL, false },
	{ "news.sport.football", 0, NULL, false },
	{ "AZaz09_-:@~+=", 0, NULL, false },
	{ "user@example.com", 0, NULL, false },
	{ "*", 0, NULL, true },
	{ ">", 0, NULL, true },
	{ "*.*", 0, NULL, true },
	{ "*.>", 0, NULL, true },
	{ "a.*", 0, NULL, true },
	{ "a.>", 0, NULL, true },
	{ "*.a", 0, NULL, true },
	{ "orders.*.created", 0, NULL, true },
	{ "metrics.>", 0, NULL, true },
	{ "a.*.b.*.>", 0, NULL, true },
	{ "+.=.~", 0, NULL, false },
	{ ".a", 0, "empty pattern segment", false },
	{ "a.", 0, "empty pattern segment", false },
	{ "a..b", 0, "empty pattern segment", false },
	{ ".", 0, "empty pattern segment", false },
	{ "*.", 0, "empty pattern segment", false },
	{ "..>", 0, "empty pattern segment", false },
	{ "a*", 0, "wildcard must be a whole segment", false },
	{ "*a", 0, "wildcard must be a whole segment", false },
	{ "a.b*", 0, "wildcard must be a whole segment", false },
	{ "**", 0, "wildcard must be a whole segment", false },
	{ "a.b>", 0, "wildcard must be a whole segment", false },
	{ ">a", 0, "wildcard must be a whole segment", false },
	{ ">>", 0, "wildcard must be a whole segment", false },
	{ "*>", 0, "wildcard must be a whole segment", false },
	{ "a.*b.c", 0, "wildcard must be a whole segment", false },
	{ ">.a", 0, "'>' must be the last segment", false },
	{ "a.>.b", 0, "'>' must be the last segment", false },
	{ ">.>", 0, "'>' must be the last segment", false },
	{ ">.*", 0, "'>' must be the last segment", false },
	{ "a b", 0, "invalid character in pattern", false },
	{ "a/b", 0, "invalid character in pattern", false },
	{ "a.#", 0, "invalid character in pattern", false },
	{ "a.?.>", 0, "invalid character in pattern", false },
	{ "a%2A", 0, "invalid character in pattern", false },
	{ "\xc3\xa9.*", 0, "invalid character in pattern", false },
	{ "a\x7f", 0, "invalid character in pattern", false },
	/* an embedded NUL counts, it does not end the pattern */
	{ "a\0b", 3, "invalid character in pattern", false },
	{ "*\0", 2, "wildcard must be a whole segment", false },
	/* the first fault from the left is the one reported */
	{ "a b.>.c", 0, "invalid character in pattern", false },
	{ "a.>.c d", 0, "'>' must be the last segment", false },
};

ParameterizedTestParameters(pattern, check)
{
	INDEX_PARAMS(check_cases);
}

ParameterizedTest(size_t *i, pattern, check)
{
	const struct check_case *c = &check_cases[*i];
	size_t len = c->len ? c->len : strlen(c->s);
	const char *got = sp_pattern_check(c->s, len);

	if (c->reason == NULL) {
		cr_expect_null(got, "\"%s\": rejected: %s", c->s, got);
		cr_expect(sp_pattern_valid(c->s, len));
		cr_expect_eq(sp_pattern_is_wild(c->s, len), c->wild,
			     "\"%s\": is_wild", c->s);
		/* a wildcard-free pattern is exactly a topic */
		cr_expect_eq(sp_topic_valid(c->s, len), !c->wild, "\"%s\"",
			     c->s);
	} else {
		cr_assert_not_null(got, "\"%s\": accepted", c->s);
		cr_expect_str_eq(got, c->reason, "\"%s\"", c->s);
		cr_expect_not(sp_pattern_valid(c->s, len));
	}
}

Test(pattern, check_empty_and_length)
{
	char s[SP_PATTERN_MAX + 2];

	cr_expect_str_eq(sp_pattern_check("", 0), "empty pattern");
	cr_expect_str_eq(sp_pattern_check("*", 0), "empty pattern");
	cr_expect_null(sp_pattern_check("a.*", 1), "only <len> bytes count");

	memset(s, 'x', sizeof(s));
	cr_expect_null(sp_pattern_check(s, SP_PATTERN_MAX));
	cr_expect_str_eq(sp_pattern_check(s, SP_PATTERN_MAX + 1),
			 "pattern too long");
	/* 63 '*' and a final '>': 64 segments in 127 bytes */
	for (size_t i = 0; i < SP_PATTERN_MAX; i += 2) {
		s[i] = '*';
		s[i + 1] = '.';
	}
	cr_expect_null(sp_pattern_check(s, SP_PATTERN_MAX - 1));
	cr_expect_str_eq(sp_pattern_check(s, SP_PATTERN_MAX),
			 "empty pattern segment");
	s[SP_PATTERN_MAX - 2] = '>';
	cr_expect_null(sp_pattern_check(s, SP_PATTERN_MAX - 1));
	cr_expect_str_eq(sp_pattern_check(s, SP_PATTERN_MAX),
			 "'>' must be the last segment");
	s[SP_PATTERN_MAX - 2] = '*';
	s[SP_PATTERN_MAX - 1] = '>';
	cr_expect_str_eq(sp_pattern_check(s, SP_PATTERN_MAX),
			 "wildcard must be a whole segment");
}

/* ---- reference matcher ------------------------------------------------ */

struct match_case {
	const char *pat;
	const char *topic;
	bool match;
};

static const struct match_case match_cases[] = {
	/* literal: equality */
	{ "a", "a", true },
	{ "a", "b", false },
	{ "a", "ab", false },
	{ "ab", "a", false },
	{ "a.b", "a.b", true },
	{ "a.b", "a", false },
	{ "a", "a.b", false },
	{ "a.b", "a.bc", false },
	{ "a.bc", "a.b", false },
	{ "a.b", "a.b.c", false },
	{ "news.sport", "news.Sport", false },
	/* '*': exactly one segment */
	{ "*", "a", true },
	{ "*", "abc", true },
	{ "*", "a.b", false },
	{ "orders.*.created", "orders.eu.created", true },
	{ "orders.*.created", "orders.us-west.created", true },
	{ "orders.*.created", "orders.created", false },
	{ "orders.*.created", "orders.eu.x.created", false },
	{ "orders.*.created", "orders.eu.updated", false },
	{ "orders.*.created", "orders.eu.created.x", false },
	{ "orders.*.created", "order.eu.created", false },
	{ "*.b", "a.b", true },
	{ "*.b", "b", false },
	{ "*.b", "a.c", false },
	{ "a.*", "a.b", true },
	{ "a.*", "a", false },
	{ "a.*", "a.b.c", false },
	{ "*.*", "a.b", true },
	{ "*.*", "a", false },
	{ "*.*", "a.b.c", false },
	{ "*.*.*", "x.y.z", true },
	/* '>': one or more trailing segments */
	{ ">", "a", true },
	{ ">", "a.b.c.d", true },
	{ "metrics.>", "metrics.cpu", true },
	{ "metrics.>", "metrics.cpu.0", true },
	{ "metrics.>", "metrics", false },
	{ "metrics.>", "metricsx.cpu", false },
	{ "metrics.>", "metric.cpu", false },
	{ "metrics.>", "cpu.metrics", false },
	{ "a.b.>", "a.b.c", true },
	{ "a.b.>", "a.b", false },
	{ "a.b.>", "a.c.d", false },
	{ "*.>", "a", false },
	{ "*.>", "a.b", true },
	{ "*.>", "a.b.c", true },
	{ "a.*.>", "a.b.c", true },
	{ "a.*.>", "a.b", false },
	{ "*.*.>", "a.b.c.d.e", true },
};

ParameterizedTestParameters(pattern, match)
{
	INDEX_PARAMS(match_cases);
}

ParameterizedTest(size_t *i, pattern, match)
{
	const struct match_case *c = &match_cases[*i];

	cr_assert_null(sp_pattern_check(c->pat, strlen(c->pat)), "%s", c->pat);
	cr_assert_null(sp_topic_check(c->topic, strlen(c->topic)), "%s",
		       c->topic);
	cr_expect_eq(sp_pattern_match(c->pat, strlen(c->pat), c->topic,
				      strlen(c->topic)),
		     c->match, "\"%s\" ~ \"%s\"", c->pat, c->topic);
}

Test(pattern, match_respects_lengths)
{
	/* only <plen>/<tlen> bytes count */
	cr_expect(sp_pattern_match("a.bX", 3, "a.bY", 3));
	cr_expect_not(sp_pattern_match("a.b", 3, "a.b", 1));
	cr_expect(sp_pattern_match("a.*", 1, "a.b", 1));
	cr_expect_not(sp_pattern_match("a", 0, "a", 1));
	cr_expect_not(sp_pattern_match("a", 1, "a", 0));
	cr_expect_not(sp_pattern_match(">", 1, "", 0));
}

/* ---- trie: helpers ---------------------------------------------------- */

/* Values are small integers cast to pointers; visits add to a counter per
 * value, so "each exactly once" is a count of 1. */
#define V(i) ((void *)(uintptr_t)(i))

struct hits {
	unsigned *count;    /* per value */
	size_t size;
	size_t total;
};

static void count_visit(void *value, void *arg)
{
	struct hits *h = arg;
	uintptr_t v = (uintptr_t)value;

	h->total++;
	cr_assert_lt(v, h->size, "visited an unknown value %zu", (size_t)v);
	h->count[v]++;
}

static void store_n(struct sp_ptrie *t, const char *pat, size_t len,
		    uintptr_t v)
{
	void **slot = sp_ptrie_slot(t, pat, len);

	cr_assert_not_null(slot, "slot(%.*s)", (int)len, pat);
	*slot = V(v);
}

static void store(struct sp_ptrie *t, const char *pat, uintptr_t v)
{
	store_n(t, pat, strlen(pat), v);
}

/* The sorted values visited for <topic>, as a string "1,4,7". */
static const char *visited(const struct sp_ptrie *t, const char *topic)
{
	static char out[256];
	unsigned count[64] = { 0 };
	struct hits h = { count, 64, 0 };
	size_t o = 0;

	sp_ptrie_match(t, topic, strlen(topic), count_visit, &h);
	out[0] = '\0';
	for (size_t i = 0; i < 64; i++) {
		cr_assert_leq(count[i], 1, "%s: value %zu visited %u times",
			      topic, i, count[i]);
		if (count[i] != 0)
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%zu",
					      o ? "," : "", i);
	}
	return out;
}

/* ---- trie: basics ----------------------------------------------------- */

Test(ptrie, zero_is_empty)
{
	struct sp_ptrie t = { 0 };

	cr_expect_eq(sp_ptrie_count(&t), 0);
	cr_expect_str_eq(visited(&t, "a"), "");
	cr_expect_null(sp_ptrie_get(&t, "a", 1));
	cr_expect_eq(sp_ptrie_remove(&t, "a", 1), -ENOENT);
	sp_ptrie_destroy(&t, NULL);
	cr_expect_eq(t.nodes, 0);
	cr_expect_eq(t.bytes, 0);
}

Test(ptrie, slot_get_remove)
{
	struct sp_ptrie t;

	sp_ptrie_init(&t);
	void **s1 = sp_ptrie_slot(&t, "a.*.c", 5);
	cr_assert_not_null(s1);
	cr_expect_null(*s1, "a new pattern's value is NULL");
	cr_expect_eq(sp_ptrie_count(&t), 1);
	cr_expect_eq(t.nodes, 4, "root, a, *, c");
	*s1 = V(7);

	/* find-or-create: the same slot again, nothing new */
	cr_expect_eq(sp_ptrie_slot(&t, "a.*.c", 5), s1);
	cr_expect_eq(sp_ptrie_count(&t), 1);
	cr_expect_eq(sp_ptrie_get(&t, "a.*.c", 5), V(7));

	/* get is exact, not a wildcard match */
	cr_expect_null(sp_ptrie_get(&t, "a.b.c", 5));
	cr_expect_null(sp_ptrie_get(&t, "a.*", 3), "a prefix, not stored");
	cr_expect_null(sp_ptrie_get(&t, "a.*.c.d", 7));
	cr_expect_null(sp_ptrie_get(&t, "a.>", 3));
	cr_expect_null(sp_ptrie_get(&t, "a.*.c", 4), "only <len> bytes");

	/* a prefix node is not a stored pattern */
	cr_expect_eq(sp_ptrie_remove(&t, "a.*", 3), -ENOENT);
	cr_expect_eq(sp_ptrie_remove(&t, "a", 1), -ENOENT);
	cr_expect_eq(sp_ptrie_count(&t), 1);
	cr_expect_eq(t.nodes, 4);

	cr_expect_eq(sp_ptrie_remove(&t, "a.*.c", 5), 0);
	cr_expect_eq(sp_ptrie_remove(&t, "a.*.c", 5), -ENOENT);
	cr_expect_null(sp_ptrie_get(&t, "a.*.c", 5));
	cr_expect_eq(sp_ptrie_count(&t), 0);
	cr_expect_eq(t.nodes, 0);
	cr_expect_eq(t.bytes, 0);
	cr_expect_null(t.root);
	sp_ptrie_destroy(&t, NULL);
}

Test(ptrie, invalid_patterns_are_refused)
{
	static const char *const bad[] = {
		"", "a..b", "a.>.b", ">.*", "a*", "a b", ".", "a.",
	};
	struct sp_ptrie t = { 0 };

	store(&t, "a.b", 1);
	size_t nodes = t.nodes, bytes = t.bytes;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i]);

		cr_expect_null(sp_ptrie_slot(&t, bad[i], len), "\"%s\"", bad[i]);
		cr_expect_null(sp_ptrie_get(&t, bad[i], len), "\"%s\"", bad[i]);
		cr_expect_eq(sp_ptrie_remove(&t, bad[i], len), -ENOENT,
			     "\"%s\"", bad[i]);
	}
	char big[SP_PATTERN_MAX + 1];
	memset(big, 'a', sizeof(big));
	cr_expect_null(sp_ptrie_slot(&t, big, sizeof(big)));
	cr_expect_eq(sp_ptrie_count(&t), 1);
	cr_expect_eq(t.nodes, nodes, "a refused pattern leaves no node");
	cr_expect_eq(t.bytes, bytes);
	sp_ptrie_destroy(&t, NULL);
}

Test(ptrie, every_kind_of_match_once)
{
	static const char *const pats[] = {
		/* 0 unused */ "unused",
		"a.b", "a.*", "*.b", "*.*", "a.>", ">", "*.>", "a", "*",
		"a.b.c", "a.b.>", "a.*.c", "b.>", "a.c",
	};
	struct sp_ptrie t = { 0 };

	for (uintptr_t i = 1; i < sizeof(pats) / sizeof(pats[0]); i++)
		store(&t, pats[i], i);
	cr_expect_eq(sp_ptrie_count(&t), sizeof(pats) / sizeof(pats[0]) - 1);

	cr_expect_str_eq(visited(&t, "a.b"), "1,2,3,4,5,6,7");
	cr_expect_str_eq(visited(&t, "a"), "6,8,9");
	cr_expect_str_eq(visited(&t, "b"), "6,9");
	cr_expect_str_eq(visited(&t, "a.c"), "2,4,5,6,7,14");
	cr_expect_str_eq(visited(&t, "a.b.c"), "5,6,7,10,11,12");
	cr_expect_str_eq(visited(&t, "a.x.c"), "5,6,7,12");
	cr_expect_str_eq(visited(&t, "b.b"), "3,4,6,7,13");
	cr_expect_str_eq(visited(&t, "x.y.z"), "6,7");
	cr_expect_str_eq(visited(&t, "a.b.c.d"), "5,6,7,11");
	sp_ptrie_destroy(&t, NULL);
}

Test(ptrie, gt_needs_one_more_segment)
{
	struct sp_ptrie t = { 0 };

	store(&t, "metrics.>", 1);
	store(&t, "orders.*.created", 2);
	cr_expect_str_eq(visited(&t, "metrics"), "");
	cr_expect_str_eq(visited(&t, "metrics.cpu"), "1");
	cr_expect_str_eq(visited(&t, "metrics.cpu.0"), "1");
	cr_expect_str_eq(visited(&t, "orders.eu.created"), "2");
	cr_expect_str_eq(visited(&t, "orders.created"), "");
	cr_expect_str_eq(visited(&t, "orders.eu.x.created"), "");
	sp_ptrie_destroy(&t, NULL);
}

static void visit_null(void *value, void *arg)
{
	cr_expect_null(value);
	(*(int *)arg)++;
}

Test(ptrie, unfilled_slot_is_stored_with_null)
{
	struct sp_ptrie t = { 0 };
	int n = 0;

	cr_assert_not_null(sp_ptrie_slot(&t, "a.>", 3));
	cr_expect_eq(sp_ptrie_count(&t), 1);
	sp_ptrie_match(&t, "a.b", 3, visit_null, &n);
	cr_expect_eq(n, 1, "stored until removed, whatever the value");
	cr_expect_eq(sp_ptrie_remove(&t, "a.>", 3), 0);
	cr_expect_eq(t.nodes, 0);
	sp_ptrie_destroy(&t, NULL);
}

Test(ptrie, topic_limits)
{
	struct sp_ptrie t = { 0 };
	char s[SP_PATTERN_MAX];
	char topic[SP_TOPIC_MAX + 2];

	/* "a.a. ... .a": 64 one-byte segments in 127 bytes, the deepest
	 * pattern and topic there can be */
	for (size_t i = 0; i < SP_PATTERN_MAX; i += 2) {
		s[i] = 'a';
		s[i + 1] = '.';
	}
	memcpy(topic, s, SP_PATTERN_MAX - 1);
	store(&t, ">", 1);
	store(&t, "a.>", 2);
	store_n(&t, s, SP_PATTERN_MAX - 1, 3);
	for (size_t i = 0; i < SP_PATTERN_MAX; i += 2)
		s[i] = '*';
	store_n(&t, s, SP_PATTERN_MAX - 1, 4);          /* 64 x '*' */
	s[SP_PATTERN_MAX - 2] = '>';
	store_n(&t, s, SP_PATTERN_MAX - 1, 5);          /* 63 x '*', '>' */
	cr_expect_eq(sp_ptrie_count(&t), 5);
	/* root, '>', a-chain, '>' under the first a, *-chain, last '>' */
	cr_expect_eq(t.nodes, 1 + 1 + 64 + 1 + 64 + 1);

	cr_expect_str_eq(visited(&t, "a.a"), "1,2");
	cr_expect_str_eq(visited(&t, "a"), "1");
	cr_assert_null(sp_topic_check(topic, SP_TOPIC_MAX - 1));
	unsigned count[8] = { 0 };
	struct hits h = { count, 8, 0 };
	sp_ptrie_match(&t, topic, SP_TOPIC_MAX - 1, count_visit, &h);
	cr_expect_eq(h.total, 5);
	for (int i = 1; i <= 5; i++)
		cr_expect_eq(count[i], 1, "pattern %d", i);

	/* a topic over the limit matches nothing, nor does an invalid one
	 * with more segments than any pattern can have (129 empty ones) */
	h.total = 0;
	memset(topic, 'a', sizeof(topic));
	sp_ptrie_match(&t, topic, SP_TOPIC_MAX + 1, count_visit, &h);
	memset(topic, '.', sizeof(topic));
	sp_ptrie_match(&t, topic, SP_TOPIC_MAX, count_visit, &h);
	sp_ptrie_match(&t, "", 0, count_visit, &h);
	cr_expect_eq(h.total, 0);
	sp_ptrie_destroy(&t, NULL);
	cr_expect_eq(t.nodes, 0);
}

/* ---- trie: memory ----------------------------------------------------- */

Test(ptrie, prune_and_reinsert)
{
	struct sp_ptrie t = { 0 };

	store(&t, "a.b.c", 1);
	cr_expect_eq(t.nodes, 4);
	store(&t, "a.b", 2);
	cr_expect_eq(t.nodes, 4, "an inner node becomes a pattern");
	store(&t, "a.*.>", 3);
	cr_expect_eq(t.nodes, 6);
	size_t full = t.bytes;

	cr_expect_eq(sp_ptrie_remove(&t, "a.b.c", 5), 0);
	cr_expect_eq(t.nodes, 5, "c pruned, b still a pattern");
	cr_expect_str_eq(visited(&t, "a.b"), "2");
	cr_expect_str_eq(visited(&t, "a.b.c"), "3");
	cr_expect_eq(sp_ptrie_remove(&t, "a.b", 3), 0);
	cr_expect_eq(t.nodes, 4, "b pruned");
	cr_expect_eq(sp_ptrie_remove(&t, "a.*.>", 5), 0);
	cr_expect_eq(t.nodes, 0);
	cr_expect_eq(t.bytes, 0);
	cr_expect_null(t.root);

	for (int round = 0; round < 3; round++) {
		store(&t, "a.b", 2);
		store(&t, "a.*.>", 3);
		store(&t, "a.b.c", 1);
		cr_expect_eq(t.nodes, 6);
		cr_expect_eq(t.bytes, full, "same shape, same memory");
		cr_expect_str_eq(visited(&t, "a.b.c"), "1,3");
		/* a different removal order */
		cr_expect_eq(sp_ptrie_remove(&t, "a.b", 3), 0);
		cr_expect_eq(t.nodes, 6, "b kept for its child");
		cr_expect_eq(sp_ptrie_remove(&t, "a.*.>", 5), 0);
		cr_expect_eq(sp_ptrie_remove(&t, "a.b.c", 5), 0);
		cr_expect_eq(t.nodes, 0);
		cr_expect_eq(t.bytes, 0);
	}
	sp_ptrie_destroy(&t, NULL);
}

Test(ptrie, wide_node_grows_and_shrinks)
{
	enum { N = 20000 };
	struct sp_ptrie t = { 0 };
	char s[32];

	for (int i = 0; i < N; i++) {
		snprintf(s, sizeof(s), "tenant%d.x", i);
		store(&t, s, (uintptr_t)i);
	}
	cr_expect_eq(t.nodes, 1 + 2 * N);
	size_t full = t.bytes;
	for (int i = 0; i < N; i++) {
		snprintf(s, sizeof(s), "tenant%d.x", i);
		cr_assert_eq(sp_ptrie_get(&t, s, strlen(s)), V(i), "%s", s);
	}
	cr_expect_null(sp_ptrie_get(&t, "tenant20000.x", 13));
	/* keep one: the root's table shrinks with its children */
	for (int i = 1; i < N; i++) {
		snprintf(s, sizeof(s), "tenant%d.x", i);
		cr_assert_eq(sp_ptrie_remove(&t, s, strlen(s)), 0);
	}
	cr_expect_eq(t.nodes, 3);
	cr_expect_lt(t.bytes * 100, full, "%zu of %zu bytes kept", t.bytes,
		     full);
	cr_expect_eq(sp_ptrie_get(&t, "tenant0.x", 9), V(0));
	cr_expect_eq(sp_ptrie_remove(&t, "tenant0.x", 9), 0);
	cr_expect_eq(t.bytes, 0);
	sp_ptrie_destroy(&t, NULL);
}

static int freed;

static void free_value(void *value)
{
	freed++;
	free(value);
}

Test(ptrie, destroy_frees_values)
{
	struct sp_ptrie t = { 0 };
	static const char *const pats[] = {
		"a", "a.b", "a.*", "*", ">", "a.>", "x.y.z", "*.*.>",
	};

	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		void **slot = sp_ptrie_slot(&t, pats[i], strlen(pats[i]));

		cr_assert_not_null(slot);
		*slot = malloc(16);
	}
	cr_assert_not_null(sp_ptrie_slot(&t, "no.value", 8));
	freed = 0;
	sp_ptrie_destroy(&t, free_value);
	cr_expect_eq(freed, sizeof(pats) / sizeof(pats[0]),
		     "once per non-NULL value");
	cr_expect_eq(t.count, 0);
	cr_expect_eq(t.nodes, 0);
	cr_expect_null(t.root);
	/* reusable after destroy; ASan checks nothing leaked */
	store(&t, "a.b", 1);
	cr_expect_str_eq(visited(&t, "a.b"), "1");
	sp_ptrie_destroy(&t, NULL);
}

/* ---- trie against the reference matcher ------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	/* xorshift64*: fixed seeds, so a failure replays */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32) % n;
}

/* Few segment names and short depths, so that random patterns and topics
 * meet often and patterns repeat (find-or-create on a stored pattern). */
static const char *const alphabet[] = { "a", "b", "c", "d", "ee" };

static size_t rand_name(char *out, bool pattern)
{
	unsigned depth = 1 + rnd(pattern ? 5 : 6);
	size_t o = 0;

	for (unsigned d = 0; d < depth; d++) {
		const char *seg;

		if (pattern && d == depth - 1 && rnd(6) == 0)
			seg = ">";
		else if (pattern && rnd(4) == 0)
			seg = "*";
		else
			seg = alphabet[rnd(sizeof(alphabet) / sizeof(alphabet[0]) -
					   !pattern)];
		/* topics also use the one name no pattern has: "ee" in a
		 * topic is always a miss for literal segments */
		if (!pattern && rnd(12) == 0)
			seg = "ee";
		o += (size_t)sprintf(out + o, "%s%s", d ? "." : "", seg);
	}
	return o;
}

struct pat {
	char s[32];
	size_t len;
	bool stored;
};

enum { NPAT = 2000, NTOPIC = 10000 };

/* Every topic: the visited set equals {stored p : sp_pattern_match(p)},
 * each visited once. Returns the number of (topic, pattern) matches. */
static size_t check_against_oracle(const struct sp_ptrie *t,
				   const struct pat *pats, size_t npats)
{
	unsigned *count = calloc(npats + 1, sizeof(*count));
	size_t matches = 0;

	cr_assert_not_null(count);
	for (int k = 0; k < NTOPIC; k++) {
		char topic[64];
		size_t tlen = rand_name(topic, false);
		struct hits h = { count, npats + 1, 0 };

		cr_assert_null(sp_topic_check(topic, tlen), "%s", topic);
		memset(count, 0, (npats + 1) * sizeof(*count));
		sp_ptrie_match(t, topic, tlen, count_visit, &h);
		for (size_t i = 0; i < npats; i++) {
			bool want = pats[i].stored &&
				    sp_pattern_match(pats[i].s, pats[i].len,
						     topic, tlen);

			cr_assert_eq(count[i + 1], (unsigned)want,
				     "topic %s, pattern %s: visited %u times, "
				     "oracle says %d", topic, pats[i].s,
				     count[i + 1], want);
		}
		matches += h.total;
	}
	free(count);
	return matches;
}

struct seed { uint64_t seed; };

ParameterizedTestParameters(ptrie, against_reference)
{
	static struct seed seeds[] = {
		{ 0x9e3779b97f4a7c15ULL }, { 1 }, { 0xdeadbeef }, { 42 },
	};
	return cr_make_param_array(struct seed, seeds,
				   sizeof(seeds) / sizeof(seeds[0]));
}

ParameterizedTest(struct seed *sd, ptrie, against_reference)
{
	struct sp_ptrie t = { 0 };
	struct pat *pats = calloc(NPAT, sizeof(*pats));
	size_t npats = 0, stored = 0;

	cr_assert_not_null(pats);
	rng_state = sd->seed;
	/* values are 1 + the index into <pats>: distinct patterns only, and
	 * a NULL value means the slot is new */
	for (int k = 0; k < NPAT; k++) {
		char s[32];
		size_t len = rand_name(s, true);
		void **slot;

		cr_assert_null(sp_pattern_check(s, len), "%s", s);
		slot = sp_ptrie_slot(&t, s, len);
		cr_assert_not_null(slot);
		if (*slot != NULL)
			continue;
		stored++;
		memcpy(pats[npats].s, s, len + 1);
		pats[npats].len = len;
		pats[npats].stored = true;
		npats++;
		*slot = V(npats);
	}
	cr_assert_eq(sp_ptrie_count(&t), stored);
	cr_assert_gt(npats, 500, "the alphabet should allow many patterns");

	size_t matches = check_against_oracle(&t, pats, npats);
	cr_expect_gt(matches, NTOPIC, "the test should see many matches");

	/* remove a random half, check again */
	for (size_t i = 0; i < npats; i++) {
		if (rnd(2) == 0)
			continue;
		cr_assert_eq(sp_ptrie_remove(&t, pats[i].s, pats[i].len), 0);
		pats[i].stored = false;
		stored--;
		cr_assert_eq(sp_ptrie_remove(&t, pats[i].s, pats[i].len),
			     -ENOENT);
	}
	cr_assert_eq(sp_ptrie_count(&t), stored);
	check_against_oracle(&t, pats, npats);

	/* remove the rest: nothing may be left behind */
	for (size_t i = 0; i < npats; i++)
		if (pats[i].stored)
			cr_assert_eq(sp_ptrie_remove(&t, pats[i].s,
						     pats[i].len), 0);
	cr_expect_eq(sp_ptrie_count(&t), 0);
	cr_expect_eq(t.nodes, 0);
	cr_expect_eq(t.bytes, 0);
	cr_expect_null(t.root);
	sp_ptrie_destroy(&t, NULL);
	free(pats);
}

/* ---- covers: may a grant pattern subscribe to a wanted pattern -------- */

struct cover_case {
	const char *grant, *want;
	bool covers;
};

static const struct cover_case cover_cases[] = {
	{ "news", "news", true },
	{ "news", "news.x", false },
	{ "news", "*", false },
	{ "*", "news", true },
	{ "*", "*", true },
	{ "*", ">", false },
	{ "*", "a.b", false },
	{ ">", "a", true },
	{ ">", "a.b.c", true },
	{ ">", "*", true },
	{ ">", ">", true },
	{ ">", "a.>", true },
	{ "orders.>", "orders", false },
	{ "orders.>", "orders.eu", true },
	{ "orders.>", "orders.*.created", true },
	{ "orders.>", "orders.>", true },
	{ "orders.>", "order.eu", false },
	{ "orders.*", "orders.eu", true },
	{ "orders.*", "orders.*", true },
	{ "orders.*", "orders.>", false },
	{ "orders.*", "orders.eu.x", false },
	{ "orders.*.created", "orders.eu.created", true },
	{ "orders.*.created", "orders.*.created", true },
	{ "orders.*.created", "orders.eu.*", false },
	{ "orders.eu.created", "orders.*.created", false },
	{ "a.*.c", "a.>", false },
};

Test(ptrie, covers_table)
{
	for (size_t i = 0; i < sizeof(cover_cases) / sizeof(cover_cases[0]); i++) {
		const struct cover_case *c = &cover_cases[i];
		cr_expect_eq(sp_pattern_covers(c->grant, strlen(c->grant), c->want, strlen(c->want)),
			     c->covers, "%s covers %s", c->grant, c->want);
	}
	cr_expect_not(sp_pattern_covers("", 0, "a", 1));
	cr_expect_not(sp_pattern_covers("a", 1, "", 0));
}

/* covers(g, w) must imply: every topic w matches, g matches too. Checked
 * over random small patterns and topics from a tiny alphabet, where
 * collisions are common. */
Test(ptrie, covers_implies_match)
{
	static const char *segs[] = { "a", "b", "*", ">" };
	unsigned seed = 7;
	char g[32], w[32], t[32];

	for (int round = 0; round < 20000; round++) {
		char *bufs[2] = { g, w };
		for (int k = 0; k < 2; k++) {
			int n = 1 + rand_r(&seed) % 3, len = 0;
			for (int s = 0; s < n; s++) {
				const char *seg = segs[rand_r(&seed) % (s == n - 1 ? 4 : 3)];
				len += sprintf(bufs[k] + len, "%s%s", s ? "." : "", seg);
			}
		}
		if (!sp_pattern_covers(g, strlen(g), w, strlen(w)))
			continue;
		for (int k = 0; k < 30; k++) {
			int n = 1 + rand_r(&seed) % 4, len = 0;
			for (int s = 0; s < n; s++)
				len += sprintf(t + len, "%s%s", s ? "." : "", segs[rand_r(&seed) % 2]);
			if (sp_pattern_match(w, strlen(w), t, strlen(t)))
				cr_assert(sp_pattern_match(g, strlen(g), t, strlen(t)),
					  "%s covers %s, which matches %s, but %s does not", g, w, t, g);
		}
	}
}
