/*
 * sys.h - what the process may use: CPUs (affinity and cgroup quota), open
 * files, time. Any thread.
 */
#ifndef SPOUT_SYS_H
#define SPOUT_SYS_H

#include <stdint.h>
#include <time.h>

/* CPUs this process may use: sched_getaffinity, reduced by a cgroup v2
 * cpu.max (or v1 cfs) quota, rounded up; at least 1. */
unsigned sp_sys_cpus(void);

/* The cgroup memory limit (v2 memory.max, v1 memory.limit_in_bytes) in
 * bytes, or 0 when there is none. */
uint64_t sp_sys_memory_limit(void);

/* The cgroup's current memory use in bytes (v2 memory.current, v1
 * memory.usage_in_bytes), or 0 when unknown. */
uint64_t sp_sys_memory_current(void);

/* Process resident set size in bytes (from /proc/self/statm). */
uint64_t sp_sys_rss(void);

/* Open file descriptors of this process (counts /proc/self/fd). */
uint64_t sp_sys_open_fds(void);

/* cgroup CPU throttling (cpu.stat nr_throttled, throttled_usec; v1
 * throttled_time in ns is converted). Returns 0, or -ENOENT. */
int sp_sys_cpu_throttled(uint64_t *periods, uint64_t *usec);

/* Raise RLIMIT_NOFILE's soft limit to the hard limit. Returns the soft
 * limit now in force. */
uint64_t sp_sys_raise_nofile(void);

static inline uint64_t sp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t sp_now_ms(void)
{
	return sp_now_ns() / 1000000u;
}

#endif
