/*
 * ptriebench.c - sp_ptrie_match throughput against the number of stored
 * patterns, with a linear scan of sp_pattern_match as the baseline.
 *
 * For each pattern count N (100, 10,000, 100,000 by default) it stores N
 * patterns of a realistic mix, i = 0..N-1 by i % 10:
 *
 *   0-3  tenant<i>.orders.*.created      '*' in the middle
 *   4-6  metrics.host<i>.>               '>' at the end
 *   7-8  events.user<i>.login            exact
 *   9    *.svc<i>.health                 '*' at the root
 *
 * then matches a fixed list of published topics, depth 3 to 5, with ids j
 * drawn from 0..N-1, so that about a quarter of them match something:
 *
 *   35%  tenant<j>.orders.<region>.created      matches if j % 10 in 0-3
 *   10%  tenant<j>.orders.<region>.updated.v2   never (walks 3 levels)
 *   20%  metrics.host<j>.cpu[.<k>]              matches if j % 10 in 4-6
 *   15%  events.user<j>.login                   matches if j % 10 in 7-8
 *   15%  <region>.svc<j>.health                 matches if j % 10 == 9
 *    5%  billing.<region>.invoice<j>            never
 *
 * "topics/s" counts sp_ptrie_match calls, each with all its visits, on one
 * core; the median of <reps> passes is printed. Ids drawn from all of 0..N-1
 * touch N patterns' nodes, so past the CPU caches that column measures
 * memory latency as much as the trie; "hot top/s" runs the same mix over
 * 100 ids fixed per N, which isolates the algorithmic cost (it should stay
 * flat as N grows). "visits" is the mean number of visit calls per topic,
 * "hit" the share of topics with at least one. The scan baseline ("scan
 * ns", per topic) runs sp_pattern_match over every pattern for the first
 * 20,000 topics and must count the same visits as the trie (else MISMATCH).
 * "ins ns"/"del ns" are per sp_ptrie_slot/sp_ptrie_remove, "B/pat" is
 * sp_ptrie.bytes per pattern (malloc overhead not included).
 *
 *   build: gcc -O2 -std=gnu11 -D_GNU_SOURCE -Iinclude tools/ptriebench.c \
 *              src/ptrie.c src/topic.c -lxxhash -o /tmp/ptriebench
 *   run:   /tmp/ptriebench [topics=1000000] [reps=5] [N ...]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spout/ptrie.h"

#define SCAN_TOPICS 20000
#define HOT_IDS 100

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545F4914F6CDD1DULL) >> 32) % n;
}

static const char *const regions[] = { "eu", "us", "ap", "sa", "af", "me" };
#define REGION regions[rnd(sizeof(regions) / sizeof(regions[0]))]

/* Names stored back to back, each found by offset and length. */
struct names {
	char *buf;
	uint32_t *off;
	uint8_t *len;
	size_t n, used, cap;
};

static void names_init(struct names *s, size_t n)
{
	s->cap = n * 48;
	s->buf = malloc(s->cap);
	s->off = malloc(n * sizeof(*s->off));
	s->len = malloc(n * sizeof(*s->len));
	s->n = 0;
	s->used = 0;
	if (s->buf == NULL || s->off == NULL || s->len == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
}

static void names_free(struct names *s)
{
	free(s->buf);
	free(s->off);
	free(s->len);
}

static void names_add(struct names *s, const char *name, int len)
{
	memcpy(s->buf + s->used, name, (size_t)len);
	s->off[s->n] = (uint32_t)s->used;
	s->len[s->n] = (uint8_t)len;
	s->used += (size_t)len;
	s->n++;
}

static int make_pattern(char *out, size_t cap, uint32_t i)
{
	switch (i % 10) {
	case 0: case 1: case 2: case 3:
		return snprintf(out, cap, "tenant%u.orders.*.created", i);
	case 4: case 5: case 6:
		return snprintf(out, cap, "metrics.host%u.>", i);
	case 7: case 8:
		return snprintf(out, cap, "events.user%u.login", i);
	default:
		return snprintf(out, cap, "*.svc%u.health", i);
	}
}

static int make_topic(char *out, size_t cap, uint32_t j)
{
	uint32_t r = rnd(100);

	if (r < 35)
		return snprintf(out, cap, "tenant%u.orders.%s.created", j, REGION);
	if (r < 45)
		return snprintf(out, cap, "tenant%u.orders.%s.updated.v2", j,
				REGION);
	if (r < 55)
		return snprintf(out, cap, "metrics.host%u.cpu", j);
	if (r < 65)
		return snprintf(out, cap, "metrics.host%u.cpu.%u", j, rnd(16));
	if (r < 80)
		return snprintf(out, cap, "events.user%u.login", j);
	if (r < 95)
		return snprintf(out, cap, "%s.svc%u.health", REGION, j);
	return snprintf(out, cap, "billing.%s.invoice%u", REGION, j);
}

struct acc {
	uint64_t visits;
	uintptr_t sum; /* uses the values, so no visit is optimised away */
};

static void visit(void *value, void *arg)
{
	struct acc *a = arg;

	a->visits++;
	a->sum += (uintptr_t)value;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Times <reps> passes of sp_ptrie_match over <topics>; returns the median
 * and leaves the last pass's totals in <a>. */
static uint64_t median_pass(const struct sp_ptrie *t, const struct names *topics,
			    int reps, uint64_t *pass, struct acc *a)
{
	for (int r = 0; r < reps; r++) {
		struct acc pa = { 0 };
		uint64_t t0 = now_ns();

		for (size_t k = 0; k < topics->n; k++)
			sp_ptrie_match(t, topics->buf + topics->off[k],
				       topics->len[k], visit, &pa);
		pass[r] = now_ns() - t0;
		*a = pa;
	}
	qsort(pass, (size_t)reps, sizeof(*pass), cmp_u64);
	return pass[reps / 2];
}

static void run(uint32_t npat, size_t ntopics, int reps)
{
	struct sp_ptrie t;
	struct names pats, topics, hot;
	uint32_t hot_ids[HOT_IDS];
	char s[64];
	uint64_t t0, build_ns, remove_ns;
	uint64_t *pass = calloc((size_t)reps, sizeof(*pass));
	struct acc a = { 0 };
	uint64_t hit_topics = 0, scan_visits = 0, trie_scan_visits = 0;

	if (pass == NULL)
		exit(1);
	names_init(&pats, npat);
	names_init(&topics, ntopics);
	for (uint32_t i = 0; i < npat; i++)
		names_add(&pats, s, make_pattern(s, sizeof(s), i));
	for (size_t k = 0; k < ntopics; k++)
		names_add(&topics, s, make_topic(s, sizeof(s), rnd(npat)));
	/* the same topic mix over at most HOT_IDS ids, whatever N */
	names_init(&hot, ntopics);
	for (size_t k = 0; k < HOT_IDS; k++)
		hot_ids[k] = rnd(npat);
	for (size_t k = 0; k < ntopics; k++)
		names_add(&hot, s, make_topic(s, sizeof(s),
					      hot_ids[rnd(HOT_IDS)]));

	sp_ptrie_init(&t);
	t0 = now_ns();
	for (uint32_t i = 0; i < npat; i++) {
		void **slot = sp_ptrie_slot(&t, pats.buf + pats.off[i],
					    pats.len[i]);
		if (slot == NULL) {
			fprintf(stderr, "sp_ptrie_slot failed\n");
			exit(1);
		}
		*slot = (void *)(uintptr_t)(i + 1);
	}
	build_ns = now_ns() - t0;

	uint64_t med = median_pass(&t, &topics, reps, pass, &a);
	struct acc hot_acc;
	uint64_t hot_med = median_pass(&t, &hot, reps, pass, &hot_acc);

	/* per-topic figures, outside the timed passes */
	for (size_t k = 0; k < ntopics; k++) {
		struct acc one = { 0 };

		sp_ptrie_match(&t, topics.buf + topics.off[k], topics.len[k],
			       visit, &one);
		hit_topics += one.visits != 0;
		if (k < SCAN_TOPICS)
			trie_scan_visits += one.visits;
	}

	size_t nscan = ntopics < SCAN_TOPICS ? ntopics : SCAN_TOPICS;
	t0 = now_ns();
	for (size_t k = 0; k < nscan; k++)
		for (uint32_t i = 0; i < npat; i++)
			scan_visits += sp_pattern_match(
				pats.buf + pats.off[i], pats.len[i],
				topics.buf + topics.off[k], topics.len[k]);
	uint64_t scan_ns = now_ns() - t0;

	size_t nodes = t.nodes, bytes = t.bytes;
	t0 = now_ns();
	for (uint32_t i = 0; i < npat; i++)
		sp_ptrie_remove(&t, pats.buf + pats.off[i], pats.len[i]);
	remove_ns = now_ns() - t0;
	if (t.nodes != 0 || t.bytes != 0)
		fprintf(stderr, "nodes left after removing all: %zu\n", t.nodes);
	sp_ptrie_destroy(&t, NULL);

	printf("%7u %8zu %6.1f %6.0f %6.0f %10.0f %6.1f %10.0f %6.1f "
	       "%6.2f %5.1f%% %8.0f%s\n",
	       npat, nodes, (double)bytes / npat,
	       (double)build_ns / npat, (double)remove_ns / npat,
	       (double)ntopics * 1e9 / (double)med,
	       (double)med / (double)ntopics,
	       (double)ntopics * 1e9 / (double)hot_med,
	       (double)hot_med / (double)ntopics,
	       (double)a.visits / (double)ntopics,
	       100.0 * (double)hit_topics / (double)ntopics,
	       (double)scan_ns / (double)nscan,
	       scan_visits == trie_scan_visits ? "" : "  MISMATCH");
	if (a.sum + hot_acc.sum == 42)
		putchar(' ');
	names_free(&pats);
	names_free(&topics);
	names_free(&hot);
	free(pass);
}

int main(int argc, char **argv)
{
	size_t ntopics = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	static const uint32_t dflt[] = { 100, 10000, 100000 };

	if (ntopics == 0 || reps <= 0) {
		fprintf(stderr, "usage: %s [topics] [reps] [patterns ...]\n",
			argv[0]);
		return 2;
	}
	printf("%zu topics, median of %d passes\n", ntopics, reps);
	printf("%7s %8s %6s %6s %6s %10s %6s %10s %6s %6s %6s %8s\n",
	       "pattern", "nodes", "B/pat", "ins ns", "del ns", "topics/s",
	       "ns/top", "hot top/s", "ns/top", "visits", "hit", "scan ns");
	if (argc > 3) {
		for (int i = 3; i < argc; i++)
			run((uint32_t)strtoul(argv[i], NULL, 0), ntopics, reps);
	} else {
		for (size_t i = 0; i < sizeof(dflt) / sizeof(dflt[0]); i++)
			run(dflt[i], ntopics, reps);
	}
	return 0;
}
