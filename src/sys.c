/*
 * sys.c - CPU and file-descriptor limits of this process. Any thread.
 */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "spout/sys.h"

/* This process's cgroup directory for a v1 <controller> (e.g. "cpu"), or
 * for cgroup v2 when <controller> is NULL: the mount point joined with the
 * path /proc/self/cgroup names. Returns 0 or -ENOENT. In a container with
 * its own cgroup namespace the path is "/"; under a child cgroup it is not,
 * and the limits live there (or on an ancestor). */
static int cgroup_dir(const char *controller, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[512];
	int rc = -ENOENT;

	if (f == NULL)
		return -ENOENT;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL)
			continue;
		*c2 = '\0';
		char *path = c2 + 1;
		path[strcspn(path, "\n")] = '\0';
		const char *ctrls = c1 + 1;
		bool hit = false;
		if (controller == NULL) {
			hit = ctrls[0] == '\0';
		} else {
			char tmp[128];
			snprintf(tmp, sizeof(tmp), "%s", ctrls);
			for (char *sv = NULL, *t = strtok_r(tmp, ",", &sv); t && !hit;
			     t = strtok_r(NULL, ",", &sv))
				hit = strcmp(t, controller) == 0;
		}
		if (!hit)
			continue;
		if (controller == NULL)
			snprintf(out, cap, "/sys/fs/cgroup%s", strcmp(path, "/") ? path : "");
		else
			snprintf(out, cap, "/sys/fs/cgroup/%s%s", ctrls, strcmp(path, "/") ? path : "");
		rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

/* Cut the last path component; false at the mount point. */
static bool parent_dir(char *dir, size_t mount_len)
{
	char *slash = strrchr(dir, '/');

	if (slash == NULL || (size_t)(slash - dir) < mount_len)
		return false;
	*slash = '\0';
	return true;
}

/* The smallest CPU quota (in CPUs, rounded up) on the way from this
 * process's cgroup up to the root; 0 for none. */
static unsigned cgroup_cpus(void)
{
	char dir[512], file[600];
	unsigned best = 0;
	size_t mount_len;

	if (cgroup_dir(NULL, dir, sizeof(dir)) == 0 && access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
		mount_len = strlen("/sys/fs/cgroup");
		do {
			snprintf(file, sizeof(file), "%s/cpu.max", dir);
			FILE *f = fopen(file, "r");
			if (f != NULL) {
				char quota[32];
				unsigned long period;
				if (fscanf(f, "%31s %lu", quota, &period) == 2 &&
				    strcmp(quota, "max") != 0 && period > 0) {
					unsigned n = (unsigned)((strtoul(quota, NULL, 10) + period - 1) / period);
					if (best == 0 || n < best)
						best = n;
				}
				fclose(f);
			}
		} while (parent_dir(dir, mount_len));
		return best;
	}
	if (cgroup_dir("cpu", dir, sizeof(dir)) != 0)
		return 0;
	mount_len = (size_t)(strchr(dir + strlen("/sys/fs/cgroup/"), '/') ?
		     strchr(dir + strlen("/sys/fs/cgroup/"), '/') - dir : (ptrdiff_t)strlen(dir));
	do {
		long q = -1, per = 0;
		snprintf(file, sizeof(file), "%s/cpu.cfs_quota_us", dir);
		FILE *fq = fopen(file, "r");
		snprintf(file, sizeof(file), "%s/cpu.cfs_period_us", dir);
		FILE *fp = fopen(file, "r");
		if (fq != NULL && fp != NULL && fscanf(fq, "%ld", &q) == 1 &&
		    fscanf(fp, "%ld", &per) == 1 && q > 0 && per > 0) {
			unsigned n = (unsigned)((q + per - 1) / per);
			if (best == 0 || n < best)
				best = n;
		}
		if (fq != NULL)
			fclose(fq);
		if (fp != NULL)
			fclose(fp);
	} while (parent_dir(dir, mount_len));
	return best;
}

unsigned sp_sys_cpus(void)
{
	cpu_set_t set;
	unsigned n = 1;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = (unsigned)CPU_COUNT(&set);
	unsigned q = cgroup_cpus();
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

/* <file> in this process's cgroup dir (v2 when mounted, else the v1
 * <controller>), into <out>. */
static int cgroup_file(const char *controller, const char *v2, const char *v1, char *out,
		       size_t cap)
{
	char dir[512];

	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 &&
	    cgroup_dir(NULL, dir, sizeof(dir)) == 0)
		return snprintf(out, cap, "%s/%s", dir, v2) < (int)cap ? 0 : -ENAMETOOLONG;
	if (cgroup_dir(controller, dir, sizeof(dir)) == 0)
		return snprintf(out, cap, "%s/%s", dir, v1) < (int)cap ? 0 : -ENAMETOOLONG;
	return -ENOENT;
}

uint64_t sp_sys_memory_limit(void)
{
	char dir[512], file[600];
	bool v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
	uint64_t best = 0;

	if (cgroup_dir(v2 ? NULL : "memory", dir, sizeof(dir)) != 0)
		return 0;
	/* The tightest limit on the way up: a parent's limit binds us too. */
	size_t mount_len = v2 ? strlen("/sys/fs/cgroup") : strlen("/sys/fs/cgroup/memory");
	do {
		snprintf(file, sizeof(file), "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
		uint64_t v = read_u64(file);
		if (v != 0 && v < (1ull << 62) && (best == 0 || v < best))
			best = v;   /* v1 "unlimited" is a huge number, v2 "max" reads 0 */
	} while (parent_dir(dir, mount_len));
	return best;
}

uint64_t sp_sys_memory_current(void)
{
	char path[600];

	if (cgroup_file("memory", "memory.current", "memory.usage_in_bytes", path, sizeof(path)) != 0)
		return 0;
	return read_u64(path);
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
	char path[600];
	bool v1 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) != 0;
	char key[64];
	unsigned long long val;

	if (cgroup_file("cpu", "cpu.stat", "cpu.stat", path, sizeof(path)) != 0)
		return -ENOENT;
	FILE *f = fopen(path, "r");
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
