/*
 * connlimit.c - open connections per client address (see connlimit.h).
 *
 * Each stripe is a chained hash table under its own mutex. The stripe and
 * the bucket come from one xxHash of the key. An entry is freed when its
 * count drops to zero, so an attacker cycling through addresses holds
 * memory only for the connections it keeps open (which --max-conns bounds).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "spout/connlimit.h"

struct sp_connlimit_entry {
	struct sp_connlimit_entry *next;
	struct sp_ipaddr key;
	uint32_t count;
};

int sp_connlimit_init(struct sp_connlimit *cl, uint32_t max, uint32_t expected_keys)
{
	uint32_t per = expected_keys / SP_CONNLIMIT_STRIPES + 1;
	uint32_t nb = 16;

	memset(cl, 0, sizeof(*cl));
	cl->max = max;
	while (nb < per && nb < (1u << 16))
		nb <<= 1;
	cl->nbuckets = nb;
	if (max == 0)
		return 0;
	for (unsigned i = 0; i < SP_CONNLIMIT_STRIPES; i++) {
		cl->stripe[i].buckets = calloc(nb, sizeof(*cl->stripe[i].buckets));
		if (cl->stripe[i].buckets == NULL ||
		    pthread_mutex_init(&cl->stripe[i].lock, NULL) != 0) {
			free(cl->stripe[i].buckets);
			cl->stripe[i].buckets = NULL;
			sp_connlimit_destroy(cl);
			return -ENOMEM;
		}
	}
	return 0;
}

void sp_connlimit_destroy(struct sp_connlimit *cl)
{
	for (unsigned i = 0; i < SP_CONNLIMIT_STRIPES; i++) {
		if (cl->stripe[i].buckets == NULL)
			continue;
		for (uint32_t b = 0; b < cl->nbuckets; b++) {
			struct sp_connlimit_entry *e = cl->stripe[i].buckets[b];
			while (e != NULL) {
				struct sp_connlimit_entry *next = e->next;
				free(e);
				e = next;
			}
		}
		free(cl->stripe[i].buckets);
		cl->stripe[i].buckets = NULL;
		pthread_mutex_destroy(&cl->stripe[i].lock);
	}
}

/* The stripe (locked on return) and the bucket of <key>. */
static struct sp_connlimit_entry **lock_bucket(struct sp_connlimit *cl,
					       const struct sp_ipaddr *key, unsigned *stripe)
{
	uint64_t h = XXH3_64bits(key->b, sizeof(key->b));

	*stripe = (unsigned)(h % SP_CONNLIMIT_STRIPES);
	pthread_mutex_lock(&cl->stripe[*stripe].lock);
	return &cl->stripe[*stripe].buckets[(h >> 32) & (cl->nbuckets - 1)];
}

static struct sp_connlimit_entry **find(struct sp_connlimit_entry **slot,
					const struct sp_ipaddr *key)
{
	while (*slot != NULL && memcmp((*slot)->key.b, key->b, sizeof(key->b)) != 0)
		slot = &(*slot)->next;
	return slot;
}

int sp_connlimit_acquire(struct sp_connlimit *cl, const struct sp_ipaddr *key)
{
	unsigned s;
	int rc = 0;

	if (cl->max == 0)
		return 0;
	struct sp_connlimit_entry **slot = find(lock_bucket(cl, key, &s), key);
	if (*slot == NULL) {
		struct sp_connlimit_entry *e = malloc(sizeof(*e));
		if (e == NULL) {
			rc = -ENOMEM;
		} else {
			e->next = NULL;
			e->key = *key;
			e->count = 1;
			*slot = e;
			cl->stripe[s].entries++;
		}
	} else if ((*slot)->count >= cl->max) {
		rc = -EUSERS;
	} else {
		(*slot)->count++;
	}
	pthread_mutex_unlock(&cl->stripe[s].lock);
	return rc;
}

void sp_connlimit_release(struct sp_connlimit *cl, const struct sp_ipaddr *key)
{
	unsigned s;

	if (cl->max == 0)
		return;
	struct sp_connlimit_entry **slot = find(lock_bucket(cl, key, &s), key);
	struct sp_connlimit_entry *e = *slot;
	if (e != NULL && --e->count == 0) {
		*slot = e->next;
		cl->stripe[s].entries--;
		free(e);
	}
	pthread_mutex_unlock(&cl->stripe[s].lock);
}

uint32_t sp_connlimit_count(struct sp_connlimit *cl, const struct sp_ipaddr *key)
{
	unsigned s;

	if (cl->max == 0)
		return 0;
	struct sp_connlimit_entry *e = *find(lock_bucket(cl, key, &s), key);
	uint32_t n = e != NULL ? e->count : 0;
	pthread_mutex_unlock(&cl->stripe[s].lock);
	return n;
}

uint32_t sp_connlimit_keys(struct sp_connlimit *cl)
{
	uint32_t n = 0;

	if (cl->max == 0)
		return 0;
	for (unsigned i = 0; i < SP_CONNLIMIT_STRIPES; i++) {
		pthread_mutex_lock(&cl->stripe[i].lock);
		n += cl->stripe[i].entries;
		pthread_mutex_unlock(&cl->stripe[i].lock);
	}
	return n;
}
