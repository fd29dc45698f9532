/*
 * chan.c - parent/child message channels (see chan.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "chan.h"

static void chan_arm(struct chan *c, bool want)
{
	if (c->fd == -1 || want == c->pollout)
		return;
	c->pollout = want;
	ep_ctl(EPOLL_CTL_MOD, c->fd, EPOLLIN | (want ? EPOLLOUT : 0), c->tag);
}

void chan_close(struct chan *c)
{
	if (c->fd != -1) {
		(void)close(c->fd);
		c->fd = -1;
	}
	free(c->out);
	free(c->in);
	c->out = c->in = NULL;
	c->out_off = c->out_len = c->out_cap = c->in_len = c->in_cap = 0;
	c->pollout = false;
}

int chan_flush(struct chan *c)
{
	while (c->fd != -1 && c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	chan_arm(c, c->out_off < c->out_len);
	return 0;
}

void chan_put(struct chan *c, const void *p, size_t n)
{
	if (c->out_cap - c->out_len < n) {
		c->out_cap = (c->out_len + n) * 2;
		c->out = xrealloc(c->out, c->out_cap);
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

void chan_begin(struct chan *c, uint32_t type, size_t len)
{
	struct chan_hdr h = { .type = type, .len = len };

	chan_put(c, &h, sizeof h);
}

int chan_read(struct chan *c, chan_handler *handle, void *who)
{
	if (c->fd == -1)
		return -1;
	if (c->in_cap - c->in_len < RBUF_SIZE) {
		c->in_cap = c->in_len + 2 * RBUF_SIZE;
		c->in = xrealloc(c->in, c->in_cap);
	}
	ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
	if (n == -1)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	c->in_len += (size_t)n;
	size_t off = 0;
	while (c->in_len - off >= sizeof(struct chan_hdr)) {
		struct chan_hdr h;

		memcpy(&h, c->in + off, sizeof h);
		if (c->in_len - off - sizeof h < h.len)
			break;
		handle(who, h.type, c->in + off + sizeof h, h.len);
		if (c->fd == -1)
			return -1;  /* the handler closed it: c->in is gone */
		off += sizeof h + h.len;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}
