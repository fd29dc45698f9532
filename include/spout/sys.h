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
