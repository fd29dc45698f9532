/*
 * history.h - the bounded store of recent events that resumption replays.
 *
 * The router keeps, per topic, the last --history events, within a global
 * byte budget (--history-bytes) and an age limit (--history-ttl). It stores
 * the same immutable frames the fan-out sends (one reference each), never a
 * copy. Entries sit on two lists at once:
 *
 *   all:    e1 -> e2 -> e3 -> e4 -> e5      publish (= id) order, all topics
 *   topic a:   e1 ---------> e4            per topic, same order
 *   topic b:         e2 -> e3 ------> e5
 *
 * so every eviction is O(1): the per-topic bound drops a topic's oldest,
 * the byte and age bounds drop the globally oldest, and each unlinks from
 * both lists. Because ids grow with publish order, both lists are sorted by
 * id and a replay walks back from the newest entry only as far as the
 * client's Last-Event-ID.
 *
 * Threading: the router thread owns a history; nothing here is shared.
 */
#ifndef SPOUT_HISTORY_H
#define SPOUT_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spout/frame.h"
#include "spout/list.h"
#include "spout/tmap.h"

struct sp_history_limits {
	uint32_t per_topic;        /* events kept per topic; 0 = history off */
	uint64_t max_bytes;        /* frames + bookkeeping, all topics */
	uint64_t ttl_ms;           /* 0 = no age limit */
};

struct sp_history {
	struct sp_history_limits lim;
	struct sp_tmap topics;     /* name -> struct htopic */
	struct sp_list all;        /* every entry, oldest first */
	uint64_t bytes;            /* accounted as sp_history_cost() */
	uint64_t count;
	uint64_t evicted;          /* entries dropped by any bound (a counter) */
	/* Highest id ever evicted, any topic: a replay on a topic we no longer
	 * know must assume a gap after it. */
	uint64_t evicted_upto;
	struct hentry *free;       /* recycled entries */
};

/* Why a replay could not be exact. */
enum sp_gap {
	SP_GAP_NONE = 0,
	SP_GAP_EVICTED,            /* events after the id were dropped by a bound */
	SP_GAP_UNKNOWN_ID,         /* the id is newer than any event (a restart?) */
	SP_GAP_MALFORMED_ID,       /* not a decimal event id: nothing replayed */
};

/* Returns 0 or -ENOMEM. */
int sp_history_init(struct sp_history *h, const struct sp_history_limits *lim);

/* Release every frame and free everything; leaves <h> zeroed. */
void sp_history_destroy(struct sp_history *h);

static inline bool sp_history_enabled(const struct sp_history *h)
{
	return h->lim.per_topic != 0;
}

/* Bytes one retained frame costs: the frame allocation plus bookkeeping. */
size_t sp_history_cost(const struct sp_frame *f);

/* Retain <f> (an event frame with id and topic set), taking over one of its
 * references, then apply the bounds. On -ENOMEM the reference stays the
 * caller's. <now_ms> stamps the entry for the age limit. */
int sp_history_add(struct sp_history *h, struct sp_frame *f, uint64_t now_ms);

/* Drop entries older than the age limit. Cheap when nothing expired. */
void sp_history_expire(struct sp_history *h, uint64_t now_ms);

/* Frames with id > <after> on any of the <n> topics or patterns (a pattern
 * scans the global list back to <after>), in id order, each once,
 * each with a new reference for the caller (atomic increment). The array
 * is malloc'd (*out, *nout); NULL/0 when nothing matched. <*gap> tells
 * whether events after <after> on these topics may have been dropped.
 * Returns 0 or -ENOMEM (nothing allocated, no references taken). */
int sp_history_collect(struct sp_history *h, const char *const *topics,
		       const uint16_t *lens, unsigned n, uint64_t after,
		       struct sp_frame ***out, size_t *nout, enum sp_gap *gap);

#endif
