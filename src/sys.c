/*
 * sys.c - CPU and file-descriptor limits of this process. Any thread.
 */
#include <sched.h>
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
