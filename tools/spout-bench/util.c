/*
 * util.c - clock, error exits, allocation, epoll registration: the helpers
 * every module of spout-bench uses. Event-loop thread only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"

const char *prog = "spout-bench";

int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* User + system CPU seconds of this process so far; 0 if unknown. */
double cpu_now(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void vsay(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* Bad usage or an unusable environment: message on stderr, exit status 2. */
void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	exit(2);
}

/* One line on stderr, prefixed with the process name. */
void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *xrealloc(void *p, size_t size)
{
	void *q = realloc(p, size ? size : 1);

	if (!q)
		die("out of memory (%zu bytes)", size);
	return q;
}

const char *errname(int err)
{
	const char *s = strerrorname_np(err);

	return s ? s : "E?";
}

/* Writes <v> in decimal at <out>, returns the digit count (1..20). */
size_t u64_dec(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

double secs(int64_t ns)
{
	return (double)ns / (double)NS_PER_S;
}

double per_s(uint64_t n, int64_t span_ns)
{
	return span_ns > 0 ? (double)n / secs(span_ns) : 0.0;
}

void ep_ctl(int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	/* Every fd here is ours and valid; failure is a bug or ENOMEM. */
	if (epoll_ctl(run.ep, op, fd, &ev) == -1)
		die("epoll_ctl(%d, fd %d): %s", op, fd, strerror(errno));
}

/* How many of the items 0..n-1 have index % parts == k: item i goes to
 * process i % parts, which keeps topics and per-topic counts identical
 * whatever the number of processes. */
uint64_t share_of(uint64_t n, uint32_t parts, uint32_t k)
{
	return n > k ? (n - k - 1) / parts + 1 : 0;
}
