/*
 * sys.c - CPU and file-descriptor limits of this process. Any thread.
 */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <sched.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "spout/sys.h"

/* cgroup v2 "cpu.max": "<quota> <period>" or "max <period>". Returns the
 * quota in CPUs rounded up, or 0 for no limit / unknown. */
static unsigned cgroup_v2_cpus(void)
{
	FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
	char quota[32];
	unsigned long period;
	unsigned n = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%31s %lu", quota, &period) == 2 && strcmp(quota, "max") != 0 &&
	    period > 0) {
		unsigned long q = strtoul(quota, NULL, 10);
		n = (unsigned)((q + period - 1) / period);
	}
	fclose(f);
	return n;
}

static unsigned cgroup_v1_cpus(void)
{
	FILE *fq = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r");
	FILE *fp = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r");
	long q = -1, p = 0;
	unsigned n = 0;

	if (fq != NULL && fp != NULL && fscanf(fq, "%ld", &q) == 1 &&
	    fscanf(fp, "%ld", &p) == 1 && q > 0 && p > 0)
		n = (unsigned)((q + p - 1) / p);
	if (fq != NULL)
		fclose(fq);
	if (fp != NULL)
		fclose(fp);
	return n;
}

unsigned sp_sys_cpus(void)
{
	cpu_set_t set;
	unsigned n = 1;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = (unsigned)CPU_COUNT(&set);
	unsigned q = cgroup_v2_cpus();
	if (q == 0)
		q = cgroup_v1_cpus();
	if (q != 0 && q < n)
		n = q;
	return n ? n : 1;
}

uint64_t sp_sys_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (uint64_t)rl.rlim_cur;
}

/* First number in a one-line file, or 0 (also for "max"). */
static uint64_t read_u64(const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned long long v = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

uint64_t sp_sys_memory_limit(void)
{
	uint64_t v = read_u64("/sys/fs/cgroup/memory.max");

	if (v == 0) {
		v = read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes");
		if (v >= (1ull << 62))   /* v1 "unlimited" is a huge number */
			v = 0;
	}
	return v;
}

uint64_t sp_sys_memory_current(void)
{
	uint64_t v = read_u64("/sys/fs/cgroup/memory.current");

	return v ? v : read_u64("/sys/fs/cgroup/memory/memory.usage_in_bytes");
}

uint64_t sp_sys_rss(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long size, res = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return res * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t sp_sys_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	uint64_t n = 0;

	if (d == NULL)
		return 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n > 3 ? n - 3 : 0;   /* ".", ".." and the DIR's own fd */
}

int sp_sys_cpu_throttled(uint64_t *periods, uint64_t *usec)
{
	FILE *f = fopen("/sys/fs/cgroup/cpu.stat", "r");
	bool v1 = false;
	char key[64];
	unsigned long long val;

	if (f == NULL) {
		f = fopen("/sys/fs/cgroup/cpu/cpu.stat", "r");
		v1 = true;
	}
	if (f == NULL)
		return -ENOENT;
	*periods = *usec = 0;
	while (fscanf(f, "%63s %llu", key, &val) == 2) {
		if (strcmp(key, "nr_throttled") == 0)
			*periods = val;
		else if (!v1 && strcmp(key, "throttled_usec") == 0)
			*usec = val;
		else if (v1 && strcmp(key, "throttled_time") == 0)
			*usec = val / 1000;
	}
	fclose(f);
	return 0;
}
