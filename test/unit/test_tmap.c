/*
 * test_tmap.c - the topic hash map shared by the router and the workers.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spout/tmap.h"
#include "spout/topic.h"
#include "sanitizers.h"

struct entry {
	struct sp_tnode node;
	int value;
	char name[32];
};

static struct entry *mk(const char *name, int value)
{
	struct entry *e = calloc(1, sizeof(*e));
	cr_assert_not_null(e);
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->node.name = e->name;
	e->node.len = (uint16_t)strlen(name);
	e->node.hash = sp_topic_hash(name, e->node.len);
	e->value = value;
	return e;
}

static struct entry *find(struct sp_tmap *m, const char *name)
{
	size_t len = strlen(name);
	struct sp_tnode *n = sp_tmap_find(m, sp_topic_hash(name, len), name, len);
	return n ? (struct entry *)n : NULL;
}

Test(tmap, insert_find_remove_and_grow)
{
	struct sp_tmap m;
	cr_assert_eq(sp_tmap_init(&m, 4), 0);
	char name[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "t.%d", i);
		sp_tmap_insert(&m, &mk(name, i)->node);
	}
	cr_assert_eq(m.count, 5000);
	cr_assert_geq(m.mask + 1, 4096, "the table grows with its load");
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "t.%d", i);
		struct entry *e = find(&m, name);
		cr_assert_not_null(e, "%s", name);
		cr_assert_eq(e->value, i);
	}
	cr_assert_null(find(&m, "t.5000"));
	cr_assert_null(find(&m, "t"));
	for (int i = 0; i < 5000; i += 2) {
		snprintf(name, sizeof(name), "t.%d", i);
		struct entry *e = find(&m, name);
		sp_tmap_remove(&m, &e->node);
		free(e);
	}
	cr_assert_eq(m.count, 2500);
	cr_assert_null(find(&m, "t.0"));
	cr_assert_not_null(find(&m, "t.1"));
	struct sp_tnode *n;
	int popped = 0;
	while ((n = sp_tmap_pop_any(&m)) != NULL) {
		free(n);
		popped++;
	}
	cr_assert_eq(popped, 2500);
	cr_assert_eq(m.count, 0);
	sp_tmap_destroy(&m);
	cr_assert_null(m.buckets);
}

Test(tmap, same_hash_different_name_is_a_miss)
{
	/* Force a collision: a node whose hash matches but name differs must
	 * not be returned. */
	struct sp_tmap m;
	sp_tmap_init(&m, 16);
	struct entry *a = mk("alpha", 1);
	sp_tmap_insert(&m, &a->node);
	uint64_t h = a->node.hash;
	cr_assert_null(sp_tmap_find(&m, h, "alphb", 5));
	cr_assert_null(sp_tmap_find(&m, h, "alph", 4));
	cr_assert_eq(sp_tmap_find(&m, h, "alpha", 5), &a->node);
	sp_tmap_remove(&m, &a->node);
	free(a);
	sp_tmap_destroy(&m);
}

static void count_each(struct sp_tnode *n, void *arg)
{
	int *sum = arg;
	sum[0]++;
	sum[1] += ((struct entry *)n)->value;
}

Test(tmap, each_visits_every_entry_once)
{
	struct sp_tmap m;
	int sum[2] = { 0, 0 }, want = 0;
	char name[32];

	cr_assert_eq(sp_tmap_init(&m, 2), 0);
	sp_tmap_each(&m, count_each, sum);
	cr_assert_eq(sum[0], 0, "an empty map visits nothing");
	for (int i = 1; i <= 300; i++) {   /* several growths */
		snprintf(name, sizeof(name), "t.%d", i);
		sp_tmap_insert(&m, &mk(name, i)->node);
		want += i;
	}
	sp_tmap_each(&m, count_each, sum);
	cr_assert_eq(sum[0], 300);
	cr_assert_eq(sum[1], want, "each entry exactly once");
	struct sp_tnode *n;
	while ((n = sp_tmap_pop_any(&m)) != NULL)
		free(((struct entry *)n));
	sp_tmap_destroy(&m);
}
