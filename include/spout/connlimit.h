/*
 * connlimit.h - open connections per client address (--max-conns-per-ip),
 * shared by every worker.
 *
 * A connection takes a slot when its client address is known (at accept,
 * or after the PROXY header / X-Forwarded-For of a trusted proxy) and gives
 * it back when it closes. Keys are sp_ipaddr_limit_key() forms (v4 address,
 * v6 /64). The table is split into stripes, each with its own mutex, so
 * workers rarely meet; a lock is taken only when a connection starts or
 * ends, never on the fan-out path. Entries exist only while their count is
 * above zero, so memory follows the open connections.
 */
#ifndef SPOUT_CONNLIMIT_H
#define SPOUT_CONNLIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "spout/netaddr.h"

#define SP_CONNLIMIT_STRIPES 64

struct sp_connlimit_entry;

struct sp_connlimit {
	uint32_t max;               /* per key; 0 = no limit (nothing is counted) */
	uint32_t nbuckets;          /* per stripe, a power of two */
	struct {
		pthread_mutex_t lock;
		struct sp_connlimit_entry **buckets;
		uint32_t entries;
	} stripe[SP_CONNLIMIT_STRIPES];
};

/* Returns 0 or -ENOMEM. <max> 0 makes every acquire succeed for free. */
int sp_connlimit_init(struct sp_connlimit *cl, uint32_t max, uint32_t expected_keys);
void sp_connlimit_destroy(struct sp_connlimit *cl);

/* Count one more connection for <key>. Returns 0, -EUSERS if the key is
 * at its limit (nothing counted), -ENOMEM. Any thread. */
int sp_connlimit_acquire(struct sp_connlimit *cl, const struct sp_ipaddr *key);

/* Give back a slot taken by a successful acquire. Any thread. */
void sp_connlimit_release(struct sp_connlimit *cl, const struct sp_ipaddr *key);

/* Connections counted for <key> (for tests and /metrics). Any thread. */
uint32_t sp_connlimit_count(struct sp_connlimit *cl, const struct sp_ipaddr *key);

/* Distinct keys with at least one connection. Any thread (approximate). */
uint32_t sp_connlimit_keys(struct sp_connlimit *cl);

#endif
