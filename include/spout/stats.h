/*
 * stats.h - counters that one thread writes and any thread may read.
 *
 * Every counter has exactly one writer (its owner thread), so an increment is
 * a relaxed load plus a relaxed store: a plain add on x86, no lock prefix,
 * yet well-defined (and ThreadSanitizer-clean) when /metrics reads it from
 * another thread. Never call sp_stat_add on a counter you do not own.
 */
#ifndef SPOUT_STATS_H
#define SPOUT_STATS_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t sp_counter;

static inline void sp_stat_add(sp_counter *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void sp_stat_set(sp_counter *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

static inline uint64_t sp_stat_get(sp_counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

#endif
