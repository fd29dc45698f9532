/*
 * log.c - logfmt logging to stderr. Any thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spout/log.h"

static _Atomic int log_level = SP_LOG_INFO;

static const char *level_name[] = { "debug", "info", "warn", "error" };

void sp_log_set_level(enum sp_log_level lvl)
{
	atomic_store(&log_level, (int)lvl);
}

int sp_log_parse_level(const char *s, enum sp_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_name[i]) == 0) {
			*out = (enum sp_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void sp_log(enum sp_log_level lvl, const char *msg, const char *fmt, ...)
{
	if ((int)lvl < atomic_load_explicit(&log_level, memory_order_relaxed))
		return;

	char line[1024];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line),
			 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"%s\"",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
			 level_name[lvl], msg);
	if (n < 0)
		return;
	if (fmt != NULL && fmt[0] != '\0' && (size_t)n < sizeof(line) - 2) {
		va_list ap;
		line[n++] = ' ';
		va_start(ap, fmt);
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		va_end(ap);
		if (m > 0)
			n += m;
	}
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line keeps lines from different threads whole. */
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

_Noreturn void sp_fatal_(const char *file, int line, const char *msg)
{
	sp_log(SP_LOG_ERROR, "fatal", "where=%s:%d what=\"%s\"", file, line, msg);
	abort();
}
