/*
 * util.c - messages and exits, the clock, allocation, number parsing and
 * token files for spout-pub and spout-sub (single-threaded).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

const char *cli_prog = "spout";

int64_t cli_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * CLI_NS_PER_S + ts.tv_nsec;
}

static void vsay(const char *fmt, va_list ap)
{
	/* One fprintf per piece, but stderr is unbuffered: build the line
	 * first so that it reaches a terminal (or a pipe read by a test)
	 * in one write and is never split by another message. */
	char line[2048];
	int n = snprintf(line, sizeof line, "%s: ", cli_prog);

	if (n < 0)
		return;
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	size_t len = strlen(line);
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}

void cli_say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

void cli_die(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	exit(status);
}

void *cli_xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		cli_die(1, "out of memory (%zu bytes)", size);
	return p;
}

void *cli_xrealloc(void *p, size_t size)
{
	void *q = realloc(p, size ? size : 1);

	if (q == NULL)
		cli_die(1, "out of memory (%zu bytes)", size);
	return q;
}

char *cli_xstrdup(const char *s)
{
	return cli_xstrndup(s, strlen(s));
}

char *cli_xstrndup(const char *s, size_t n)
{
	char *p = cli_xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;   /* strtoull would accept " 5", "+5" and "-5" */
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int cli_parse_number(const char *s, double max, double *out)
{
	char *end;
	double v;

	if (s == NULL || ((*s < '0' || *s > '9') && *s != '.'))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0 && v <= max))
		return -EINVAL;
	*out = v;
	return 0;
}

bool cli_token_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e)
			return false;
	return n >= 1 && n <= CLI_TOKEN_MAX;
}

int cli_read_token_file(const char *path, char **out, char *err, size_t errlen)
{
	char buf[CLI_TOKEN_MAX + 3];
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1) {
		int e = errno;

		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			int e = errno;

			snprintf(err, errlen, "%s: %s", path, strerror(e));
			close(fd);
			return -e;
		}
		if (n == 0 || (len += (size_t)n) == sizeof buf - 1)
			break;
	}
	close(fd);
	buf[len] = '\0';
	/* The first line only: a file may carry a comment or a second key
	 * below, as spoutd's --pub-token-file allows. */
	len = strcspn(buf, "\n");
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len == 0 || len > CLI_TOKEN_MAX) {
		snprintf(err, errlen, "%s: %s", path,
			 len == 0 ? "empty first line, no token" : "first line too long for a token");
		return -EINVAL;
	}
	*out = cli_xstrndup(buf, len);
	return 0;
}
