/*
 * tmap.c - chained hash map of topics. Single owner thread per map.
 */
#include <errno.h>
#include <stdlib.h>

#include "spout/tmap.h"

int sp_tmap_init(struct sp_tmap *m, uint32_t initial_buckets)
{
	uint32_t n = 16;

	while (n < initial_buckets && n < (1u << 30))
		n <<= 1;
	m->buckets = calloc(n, sizeof(*m->buckets));
	if (m->buckets == NULL)
		return -ENOMEM;
	m->mask = n - 1;
	m->count = 0;
	return 0;
}

void sp_tmap_destroy(struct sp_tmap *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->mask = 0;
	m->count = 0;
}

static void grow(struct sp_tmap *m)
{
	uint32_t n = (m->mask + 1) * 2;
	struct sp_tnode **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return;
	for (uint32_t i = 0; i <= m->mask; i++) {
		struct sp_tnode *e = m->buckets[i];
		while (e != NULL) {
			struct sp_tnode *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->mask = n - 1;
}

void sp_tmap_insert(struct sp_tmap *m, struct sp_tnode *n)
{
	if (m->count >= m->mask + 1 && m->mask < (1u << 30) - 1)
		grow(m);
	struct sp_tnode **b = &m->buckets[n->hash & m->mask];
	n->next = *b;
	*b = n;
	m->count++;
}

void sp_tmap_remove(struct sp_tmap *m, struct sp_tnode *n)
{
	for (struct sp_tnode **p = &m->buckets[n->hash & m->mask]; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			n->next = NULL;
			m->count--;
			return;
		}
	}
}

struct sp_tnode *sp_tmap_pop_any(struct sp_tmap *m)
{
	if (m->count == 0)
		return NULL;
	for (uint32_t i = 0; i <= m->mask; i++) {
		if (m->buckets[i] != NULL) {
			struct sp_tnode *n = m->buckets[i];
			m->buckets[i] = n->next;
			n->next = NULL;
			m->count--;
			return n;
		}
	}
	return NULL;
}

void sp_tmap_each(const struct sp_tmap *m, void (*fn)(struct sp_tnode *n, void *arg), void *arg)
{
	for (uint32_t b = 0; m->buckets != NULL && b <= m->mask; b++) {
		struct sp_tnode *n = m->buckets[b];
		while (n != NULL) {
			struct sp_tnode *next = n->next;
			fn(n, arg);
			n = next;
		}
	}
}
