/*
 * tmap.h - intrusive hash map from topic name to an owner's entry.
 *
 * Keys are (xxHash3 of the name, name bytes). Entries embed a struct
 * sp_tnode and own the name memory it points to. Chained buckets, power of
 * two, doubled when the load passes 1; lookups compare the 64-bit hash first
 * so a name comparison almost only happens on a hit.
 *
 * Used by the router (topic -> interested workers) and by each worker
 * (topic -> local subscribers). Single-threaded: each map has one owner.
 */
#ifndef SPOUT_TMAP_H
#define SPOUT_TMAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct sp_tnode {
	struct sp_tnode *next;
	uint64_t hash;
	const char *name;
	uint16_t len;
};

struct sp_tmap {
	struct sp_tnode **buckets;
	uint32_t mask;
	uint32_t count;
};

/* Returns 0 or -ENOMEM. */
int sp_tmap_init(struct sp_tmap *m, uint32_t initial_buckets);
/* Frees the bucket array only; the owner frees its entries first. */
void sp_tmap_destroy(struct sp_tmap *m);

static inline struct sp_tnode *sp_tmap_find(const struct sp_tmap *m, uint64_t hash,
					    const char *name, size_t len)
{
	for (struct sp_tnode *n = m->buckets[hash & m->mask]; n != NULL; n = n->next)
		if (n->hash == hash && n->len == len && memcmp(n->name, name, len) == 0)
			return n;
	return NULL;
}

/* Insert <n> (hash, name, len set; not already present). Growing may
 * allocate; if that fails the map stays valid, just more loaded. */
void sp_tmap_insert(struct sp_tmap *m, struct sp_tnode *n);

void sp_tmap_remove(struct sp_tmap *m, struct sp_tnode *n);

/* Call <fn> on every entry, in no particular order. <fn> must not insert
 * into or remove from <m>. */
void sp_tmap_each(const struct sp_tmap *m, void (*fn)(struct sp_tnode *n, void *arg), void *arg);

/* Remove and return any entry, or NULL when empty (for teardown). */
struct sp_tnode *sp_tmap_pop_any(struct sp_tmap *m);

#endif
