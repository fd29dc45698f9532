/*
 * pub_spout.c - the spout publisher adapter: one TCP connection (with
 * TCP_NODELAY) to spout's publisher port, "PUB <topic> <payload>\n" lines
 * pipelined, one "OK <id>" or "ERR ..." reply line each, in order.
 *
 * Lines wait in an output buffer; pacing holds back while more than
 * PUB_OUT_CAP bytes are unsent. Event-loop thread only.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"
#include "pub.h"

#define PUB_OUT_CAP (4u << 20)  /* unsent PUB bytes before pacing holds back */

static struct {
	int fd;
	bool up, pollout;
	char *out;              /* PUB lines not yet written: out[off..len) */
	size_t off, len, cap;
	uint64_t replies;       /* reply lines read */
	char line[128];         /* start of the reply line being read */
	size_t line_len;
} pub = { .fd = -1 };

static void set_pollout(bool want)
{
	if (pub.fd == -1 || !pub.up || want == pub.pollout)
		return;
	pub.pollout = want;
	ep_ctl(EPOLL_CTL_MOD, pub.fd, EPOLLIN | (want ? EPOLLOUT : 0), TAG_PUB);
}

static void spout_close(void)
{
	pub.up = false;
	if (pub.fd != -1) {
		(void)close(pub.fd);
		pub.fd = -1;
	}
	pub.off = pub.len = 0;
}

static void spout_release(void)
{
	spout_close();
	free(pub.out);
	pub.out = NULL;
}

static void spout_open(void)
{
	pub.cap = PUB_OUT_CAP + 64 + TOPIC_MAX + pub_payload_max();
	pub.out = xcalloc(1, pub.cap);
	pub.fd = socket(pub_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pub.fd == -1)
		die("publisher socket: %s", strerror(errno));
	if (connect(pub.fd, (struct sockaddr *)&pub_sa, pub_salen) == -1 && errno != EINPROGRESS) {
		pub_failure("connect", errno);
		return;
	}
	ep_ctl(EPOLL_CTL_ADD, pub.fd, EPOLLOUT, TAG_PUB);
}

static bool spout_ready(void)
{
	return pub.up;
}

static bool spout_can_send(uint32_t topic)
{
	(void)topic;   /* one connection carries every topic, in order */
	if (!pub.up || pub.len - pub.off >= PUB_OUT_CAP)
		return false;
	return opt.rate > 0 || st.published - pub.replies < opt.window;
}

static void spout_flush(void)
{
	while (pub.up && pub.off < pub.len) {
		ssize_t n = send(pub.fd, pub.out + pub.off, pub.len - pub.off, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			pub_failure("write", errno);
			return;
		}
		pub.off += (size_t)n;
	}
	if (pub.off == pub.len)
		pub.off = pub.len = 0;
	set_pollout(pub.off < pub.len);
}

static bool spout_idle(void)
{
	return pub.off == pub.len && pub.replies == st.published;
}

/* Appends one PUB line to the output buffer; spout_flush writes it. */
static void spout_send(uint32_t topic, uint64_t seq)
{
	if (pub.cap - pub.len < pub.cap - PUB_OUT_CAP) {
		memmove(pub.out, pub.out + pub.off, pub.len - pub.off);
		pub.len -= pub.off;
		pub.off = 0;
	}
	char *p = pub.out + pub.len;

	memcpy(p, "PUB ", 4);
	p += 4;
	memcpy(p, topic_name[topic], topic_len[topic]);
	p += topic_len[topic];
	*p++ = ' ';
	p += pub_payload(p, seq);
	*p++ = '\n';
	pub.len = (size_t)(p - pub.out);
}

static void reply_line(void)
{
	size_t n = pub.line_len < sizeof pub.line ? pub.line_len : sizeof pub.line;

	if (n > 0 && pub.line[n - 1] == '\r')
		n--;
	if (pub.replies >= st.published) {
		st.pub_unexpected++;   /* a reply to nothing we sent */
		return;
	}
	/* Replies come in order, and PUB k went to topic k % T. */
	uint32_t t = (uint32_t)(pub.replies++ % opt.topics);
	if (n >= 2 && memcmp(pub.line, "OK", 2) == 0)
		pub_reply_ok();
	else
		pub_reply_err(t, pub.line, n);
}

static void spout_read(void)
{
	ssize_t n = read(pub.fd, rbuf, sizeof rbuf);

	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			pub_failure("read", errno);
		return;
	}
	if (n == 0) {
		pub_failure("closed the connection", 0);
		return;
	}
	const char *p = rbuf;
	size_t len = (size_t)n;
	while (len > 0) {
		const char *nl = memchr(p, '\n', len);
		size_t k = nl ? (size_t)(nl - p) : len;

		if (pub.line_len < sizeof pub.line) {
			size_t room = sizeof pub.line - pub.line_len;
			memcpy(pub.line + pub.line_len, p, k < room ? k : room);
		}
		pub.line_len += k;
		if (!nl)
			break;
		reply_line();
		pub.line_len = 0;
		p = nl + 1;
		len -= k + 1;
	}
}

static void spout_event(uint32_t idx, uint32_t gen, uint32_t events)
{
	(void)idx, (void)gen;   /* one connection, never reopened */
	if (pub.fd == -1)
		return;
	if (!pub.up) {
		int err = 0;
		socklen_t l = sizeof err;

		if (getsockopt(pub.fd, SOL_SOCKET, SO_ERROR, &err, &l) == -1)
			err = errno;
		if (err) {
			pub_failure("connect", err);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		int one = 1;
		/* Each PUB is a small write whose latency we measure: Nagle
		 * would hold it back waiting for the previous OK. */
		if (setsockopt(pub.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1)
			say("TCP_NODELAY: %s", strerror(errno));
		pub.up = true;
		pub.pollout = true;
		set_pollout(false);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		spout_read();
	if (pub.fd != -1 && (events & EPOLLOUT))
		spout_flush();
}

struct pub_adapter pub_spout_adapter = {
	.open = spout_open,
	.ready = spout_ready,
	.can_send = spout_can_send,
	.send = spout_send,
	.flush = spout_flush,
	.idle = spout_idle,
	.event = spout_event,
	.close = spout_close,
	.release = spout_release,
};
