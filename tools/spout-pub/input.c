/*
 * input.c - the lines spout-pub publishes, from a file or stdin.
 *
 * The fd is read only when poll() says it has something (stream.c), one
 * read() at a time, so a slow pipe (tail -f | spout-pub) never stops the
 * loop from reading replies or sending keep-alive PINGs. The buffer holds
 * at most one partial line plus one read; a line longer than
 * PUB_LINE_MAX is refused rather than buffered without bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pub.h"

#define READ_CHUNK ((size_t)64 * 1024)

int input_open(struct input *in, const char *path)
{
	struct stat st;

	memset(in, 0, sizeof *in);
	if (path == NULL || strcmp(path, "-") == 0) {
		in->fd = STDIN_FILENO;
		in->name = "stdin";
	} else {
		in->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (in->fd == -1)
			return -errno;
		in->name = path;
	}
	/* A regular file (also stdin redirected from one) has a known size:
	 * the progress bar can show a fraction and an ETA. */
	if (fstat(in->fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
		off_t pos = lseek(in->fd, 0, SEEK_CUR);

		in->size = (uint64_t)st.st_size - (pos > 0 ? (uint64_t)pos : 0);
	}
	in->cap = READ_CHUNK * 2;
	in->buf = cli_xmalloc(in->cap);
	return 0;
}

ssize_t input_fill(struct input *in)
{
	if (in->eof)
		return 0;
	/* Keep the unread bytes at the front, then make room for a read. */
	if (in->start > 0) {
		memmove(in->buf, in->buf + in->start, in->end - in->start);
		in->end -= in->start;
		in->start = 0;
	}
	if (in->cap - in->end < READ_CHUNK) {
		in->cap = in->end + READ_CHUNK;
		in->buf = cli_xrealloc(in->buf, in->cap);
	}
	for (;;) {
		ssize_t n = read(in->fd, in->buf + in->end, in->cap - in->end);

		if (n == -1 && errno == EINTR) {
			if (pub_interrupted)
				return -EINTR;
			continue;
		}
		if (n == -1)
			return errno == EAGAIN ? 0 : -errno;
		if (n == 0)
			in->eof = true;
		in->end += (size_t)n;
		return n;
	}
}

int input_next_line(struct input *in, const char **line, size_t *len)
{
	char *p = in->buf + in->start;
	size_t avail = in->end - in->start;
	char *nl = memchr(p, '\n', avail);
	size_t n, used;

	if (nl != NULL) {
		n = (size_t)(nl - p);
		used = n + 1;
	} else if (avail >= PUB_LINE_MAX) {
		return -E2BIG;
	} else if (in->eof && avail > 0) {
		n = avail;                  /* the last line, without a line break */
		used = avail;
	} else {
		return 0;
	}
	if (n > PUB_LINE_MAX)
		return -E2BIG;
	*line = p;
	*len = n;
	in->start += used;
	in->consumed += used;
	in->lineno++;
	return 1;
}

void input_close(struct input *in)
{
	if (in->fd > STDIN_FILENO)
		close(in->fd);
	free(in->buf);
	in->buf = NULL;
}
