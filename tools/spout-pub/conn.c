/*
 * conn.c - spout-pub's one connection to the broker: an output buffer
 * written as the socket takes it, and reply lines split from what it
 * reads. Non-blocking; stream.c decides when to wait.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pub.h"

static int64_t timeout_ns(void)
{
	return (int64_t)(opt.timeout_s * (double)CLI_NS_PER_S);
}

void conn_open(struct conn *c)
{
	char err[512];

	memset(c, 0, sizeof *c);
	c->fd = cli_connect(opt.host, opt.port, cli_now_ns() + timeout_ns(), err, sizeof err);
	if (c->fd < 0 && pub_interrupted)
		cli_die(PUB_EXIT_SIGNAL, "interrupted while connecting");
	if (c->fd < 0)
		cli_die(PUB_EXIT_CONN, "cannot connect to spoutd's publisher port at %s:%s: %s "
			"(is spoutd running? set the address with --host or SPOUT_PUB)",
			opt.host, opt.port, err);
}

void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
}

void conn_append(struct conn *c, const char *data, size_t len)
{
	/* Reclaim what was written before growing. */
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_cap - c->out_len < len) {
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		if (c->out_cap - c->out_len < len) {
			size_t want = c->out_cap ? c->out_cap : 65536;

			while (want - c->out_len < len)
				want *= 2;
			c->out = cli_xrealloc(c->out, want);
			c->out_cap = want;
		}
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
}

int conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL);

		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		return n == -1 ? -errno : -EIO;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

ssize_t conn_fill(struct conn *c)
{
	if (c->in_len == PUB_REPLY_MAX)
		cli_die(PUB_EXIT_CONN, "a reply from the broker is longer than %d bytes; is %s:%s "
			"spoutd's publisher port?", PUB_REPLY_MAX, opt.host, opt.port);
	for (;;) {
		ssize_t n = recv(c->fd, c->in + c->in_len, PUB_REPLY_MAX - c->in_len, 0);

		if (n > 0) {
			c->in_len += (size_t)n;
			return n;
		}
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : -errno;
	}
}

char *conn_reply(struct conn *c)
{
	static char line[PUB_REPLY_MAX + 1];
	char *nl = memchr(c->in, '\n', c->in_len);

	if (nl == NULL)
		return NULL;
	size_t n = (size_t)(nl - c->in);
	memcpy(line, c->in, n);
	line[n] = '\0';
	if (n > 0 && line[n - 1] == '\r')
		line[n - 1] = '\0';
	memmove(c->in, nl + 1, c->in_len - n - 1);
	c->in_len -= n + 1;
	return line;
}

void conn_roundtrip(struct conn *c, const char *cmd, size_t len, char *reply,
		    size_t replylen)
{
	int64_t deadline = cli_now_ns() + timeout_ns();
	int rc = cli_send_all(c->fd, cmd, len, deadline);
	char *line;

	if (rc != 0 && pub_interrupted)
		cli_die(PUB_EXIT_SIGNAL, "interrupted while sending");
	if (rc != 0)
		cli_die(PUB_EXIT_CONN, "sending to %s:%s: %s", opt.host, opt.port,
			rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
	while ((line = conn_reply(c)) == NULL) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int n;

		if (c->eof)
			cli_die(PUB_EXIT_CONN, "the broker closed the connection without a reply");
		n = cli_poll(&pfd, 1, cli_poll_ms(deadline, -1));
		if (n == 0)
			cli_die(PUB_EXIT_CONN, "no reply from the broker within %g s (--timeout)",
				opt.timeout_s);
		if (n == -1 && errno == EINTR) {
			if (pub_interrupted)
				cli_die(PUB_EXIT_SIGNAL, "interrupted while waiting for a reply");
			continue;
		}
		if (n == -1)
			cli_die(PUB_EXIT_CONN, "poll: %s", strerror(errno));
		ssize_t r = conn_fill(c);
		if (r < 0)
			cli_die(PUB_EXIT_CONN, "reading from %s:%s: %s", opt.host, opt.port,
				strerror((int)-r));
	}
	snprintf(reply, replylen, "%s", line);
}

int reply_ok_id(const char *reply, uint64_t *id)
{
	if (strncmp(reply, "OK ", 3) != 0)
		return -EINVAL;
	return cli_parse_u64(reply + 3, 0, UINT64_MAX, id);
}
