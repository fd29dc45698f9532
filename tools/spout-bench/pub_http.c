/*
 * pub_http.c - the HTTP publisher adapter, for nchan and Pushpin.
 *
 *   nchan    POST <pub-path><topic>, the payload as a text/plain body;
 *            201 or 202 (with a small status body) means accepted
 *   pushpin  POST <pub-path> to the control API, a JSON body:
 *            {"items":[{"channel":"<topic>","formats":{"http-stream":
 *              {"content":"event: message\ndata: <payload>\n\n"}}}]}
 *            200 means accepted
 *
 * --pub-conns K keep-alive HTTP/1.1 connections, each with at most one
 * request in flight: no pipelining, which not every server supports. A
 * response is read to its end by Content-Length, chunked coding, or the
 * close of the connection. Any 2xx is an OK; anything else is a rejection
 * (pub_errors). When the server closes a connection between requests (or
 * says Connection: close, as Pushpin's control API does after every
 * response) it is opened again, counted in pub_reconnects; after
 * Connection: close it first waits (briefly) for the server's FIN, so that
 * the TIME_WAIT of a connection per request stays on the server's side.
 * Any other connection failure is a publisher failure.
 *
 * Order: events of one topic are numbered in publish order, but two
 * requests in flight on two connections may be applied in either order. So
 * by default a topic's next event waits until its previous one has its
 * reply (at most min(K, T) requests in flight); --unordered-pub lifts that.
 *
 * Event-loop thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"
#include "http.h"
#include "pub.h"

enum hc_state {
	HC_DOWN,
	HC_CONNECTING,
	HC_IDLE,
	HC_BUSY,        /* a request in flight */
	HC_CLOSING,     /* answered with Connection: close: waiting for the
			 * server's FIN, so that TIME_WAIT stays on its side */
};

#define CLOSING_WAIT_NS (200 * NS_PER_MS)   /* then we close first after all */

struct hconn {
	int fd;                 /* -1 when closed */
	uint32_t gen;           /* bumped on close: tells stale epoll events apart */
	uint8_t state;
	bool pollout;           /* EPOLLOUT armed */
	bool was_up;            /* connected at least once */
	bool in_idle;           /* its index is on the idle stack */
	bool resend;            /* reconnecting to send the request in flight again */
	bool retried;           /* the request in flight was sent again already */
	uint32_t topic;         /* topic of the request in flight */
	uint64_t nreq;          /* requests started on this TCP connection */
	int64_t closing_until;  /* HC_CLOSING: when to stop waiting */
	char *req;              /* the request in flight; req[off..len) unsent */
	size_t req_off, req_len, req_cap;
	struct http_resp resp;  /* its response so far */
};

static struct hconn *hc;
static uint32_t nhc, nup_once, nidle_state, nclosing;
static uint32_t *idle_stack;    /* connections that became idle, newest last */
static uint32_t nidle_stack;
static bool *topic_busy;        /* a request of this topic is in flight */
static char *pay, *body;        /* payload and request body scratch */
static size_t body_cap;

static uint64_t hc_tag(const struct hconn *c)
{
	return ((uint64_t)c->gen << 32) | (TAG_HTTP_PUB + (uint32_t)(c - hc));
}

static void set_state(struct hconn *c, enum hc_state s)
{
	if (c->state == HC_IDLE)
		nidle_state--;
	if (c->state == HC_CLOSING)
		nclosing--;
	if (s == HC_CLOSING)
		nclosing++;
	if (s == HC_IDLE) {
		nidle_state++;
		if (!c->in_idle) {
			c->in_idle = true;
			idle_stack[nidle_stack++] = (uint32_t)(c - hc);
		}
	}
	c->state = (uint8_t)s;
}

static void set_pollout(struct hconn *c, bool want)
{
	if (c->fd == -1 || want == c->pollout)
		return;
	c->pollout = want;
	ep_ctl(EPOLL_CTL_MOD, c->fd, EPOLLIN | (want ? EPOLLOUT : 0), hc_tag(c));
}

static void close_fd(struct hconn *c)
{
	if (c->fd != -1) {
		/* close() errors on a socket say nothing we could act on. */
		(void)close(c->fd);
		c->fd = -1;
	}
	c->gen++;
	c->pollout = false;
	http_resp_reset(&c->resp);
	set_state(c, HC_DOWN);
}

static void hc_connect(struct hconn *c)
{
	c->fd = socket(pub_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		pub_failure("socket", errno);
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&pub_sa, pub_salen) == -1 && errno != EINPROGRESS) {
		int err = errno;
		close_fd(c);
		pub_failure("connect", err);
		return;
	}
	c->nreq = 0;
	c->pollout = true;
	set_state(c, HC_CONNECTING);
	ep_ctl(EPOLL_CTL_ADD, c->fd, EPOLLOUT, hc_tag(c));
}

/* The server closed <c> between requests, or asked to: open it again while
 * there may be more to send. */
static void reconnect(struct hconn *c)
{
	close_fd(c);
	if (run.phase > PH_PUBLISH && !c->resend)
		return;
	st.pub_reconnects++;
	hc_connect(c);
}

static void http_open(void)
{
	nhc = (uint32_t)opt.pub_conns;
	hc = xcalloc(nhc, sizeof *hc);
	idle_stack = xcalloc(nhc, sizeof *idle_stack);
	topic_busy = xcalloc(opt.topics, sizeof *topic_busy);
	pay = xcalloc(1, pub_payload_max());
	for (uint32_t i = 0; i < nhc; i++) {
		hc[i].fd = -1;
		hc[i].resp.head = xcalloc(1, HEAD_MAX);
		hc[i].resp.head_cap = HEAD_MAX;
	}
	for (uint32_t i = 0; i < nhc && !run.pub_dead; i++)
		hc_connect(&hc[i]);
}

/* Closes every connection; the memory stays until http_release, since the
 * caller may be in the middle of handling one of them. */
static void http_close(void)
{
	for (uint32_t i = 0; i < nhc; i++)
		close_fd(&hc[i]);
}

static void http_release(void)
{
	http_close();
	for (uint32_t i = 0; i < nhc; i++) {
		free(hc[i].req);
		free(hc[i].resp.head);
	}
	free(hc);
	free(idle_stack);
	free(topic_busy);
	free(pay);
	free(body);
	hc = NULL;
	idle_stack = NULL;
	topic_busy = NULL;
	pay = body = NULL;
	nhc = nidle_state = nidle_stack = nclosing = 0;
	body_cap = 0;
}

static bool http_ready(void)
{
	return nhc > 0 && nup_once == nhc;
}

static bool http_can_send(uint32_t topic)
{
	return nidle_state > 0 && (opt.unordered_pub || !topic_busy[topic]);
}

static bool http_idle(void)
{
	return pub_replies() == st.published;
}

/* Requests are written when sent, and continued on EPOLLOUT; what is left
 * is to stop waiting for a FIN that does not come. */
static void http_flush(void)
{
	if (nclosing == 0)
		return;
	int64_t now = now_ns();
	for (uint32_t i = 0; i < nhc; i++)
		if (hc[i].state == HC_CLOSING && now >= hc[i].closing_until)
			reconnect(&hc[i]);
}

static void lost(struct hconn *c, int err);

static void hc_write(struct hconn *c)
{
	while (c->req_off < c->req_len) {
		ssize_t n = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				set_pollout(c, true);
				return;
			}
			lost(c, errno);
			return;
		}
		c->req_off += (size_t)n;
	}
	set_pollout(c, false);
}

/* Escapes <s>[0..n) as the inside of a JSON string at <out> (room for 6n
 * bytes); returns the length written. */
static size_t json_escape(char *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\') {
			*p++ = '\\';
			*p++ = (char)ch;
		} else if (ch == '\n') {
			*p++ = '\\';
			*p++ = 'n';
		} else if (ch < 0x20) {
			memcpy(p, "\\u00", 4);
			p[4] = hex[ch >> 4];
			p[5] = hex[ch & 15];
			p += 6;
		} else {
			*p++ = (char)ch;
		}
	}
	return (size_t)(p - out);
}

static void body_room(size_t n)
{
	if (body_cap < n) {
		body_cap = n;
		body = xrealloc(body, body_cap);
	}
}

/* Builds the body of event <seq> of <topic> into `body`; returns its length
 * and sets *ctype. */
static size_t build_body(uint32_t topic, uint64_t seq, const char **ctype)
{
	static const char pre[] = "{\"items\":[{\"channel\":\"";
	static const char mid[] = "\",\"formats\":{\"http-stream\":{\"content\":"
				  "\"event: message\\ndata: ";
	static const char post[] = "\\n\\n\"}}}]}";
	size_t plen = pub_payload(pay, seq);

	if (opt.target == TARGET_NCHAN) {
		*ctype = "text/plain";
		body_room(plen);
		memcpy(body, pay, plen);
		return plen;
	}
	*ctype = "application/json";
	body_room(sizeof pre + sizeof mid + sizeof post + 6 * (topic_len[topic] + plen));
	char *p = body;
	memcpy(p, pre, sizeof pre - 1);
	p += sizeof pre - 1;
	p += json_escape(p, topic_name[topic], topic_len[topic]);
	memcpy(p, mid, sizeof mid - 1);
	p += sizeof mid - 1;
	p += json_escape(p, pay, plen);
	memcpy(p, post, sizeof post - 1);
	p += sizeof post - 1;
	return (size_t)(p - body);
}

static void http_send(uint32_t topic, uint64_t seq)
{
	struct hconn *c = NULL;

	while (nidle_stack > 0) {
		c = &hc[idle_stack[--nidle_stack]];
		c->in_idle = false;
		if (c->state == HC_IDLE)
			break;
		c = NULL;   /* closed since it became idle */
	}
	if (!c)   /* can_send said there was one */
		die("%s:%d: no idle publisher connection", __FILE__, __LINE__);

	const char *ctype;
	size_t blen = build_body(topic, seq, &ctype);
	size_t need = blen + 256 + PATH_MAX_OPT + TOPIC_MAX + strlen(opt.pub_addr);
	if (c->req_cap < need) {
		c->req_cap = need;
		c->req = xrealloc(c->req, c->req_cap);
	}
	int hl = snprintf(c->req, c->req_cap,
			  "POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
			  "Content-Length: %zu\r\n\r\n", opt.pub_path,
			  opt.target == TARGET_NCHAN ? topic_name[topic] : "", opt.pub_addr,
			  ctype, blen);
	memcpy(c->req + hl, body, blen);
	c->req_len = (size_t)hl + blen;
	c->req_off = 0;
	c->topic = topic;
	c->retried = false;
	c->nreq++;
	topic_busy[topic] = true;
	http_resp_reset(&c->resp);
	set_state(c, HC_BUSY);
	hc_write(c);
}

/* The response to the request in flight is complete. */
static void response_done(struct hconn *c)
{
	topic_busy[c->topic] = false;
	if (c->resp.status >= 200 && c->resp.status < 300)
		pub_reply_ok();
	else
		pub_reply_err(c->topic, c->resp.head, http_resp_status_line(&c->resp));
	if (c->resp.close_after) {
		/* Closing first would leave TIME_WAIT here, one per request
		 * against Pushpin: ephemeral ports would run out. */
		if (http_resp_eof_ends(&c->resp)) {
			reconnect(c);
		} else {
			c->closing_until = now_ns() + CLOSING_WAIT_NS;
			set_state(c, HC_CLOSING);
		}
		return;
	}
	http_resp_reset(&c->resp);
	set_state(c, HC_IDLE);
}

/* The server closed or reset <c> (<err> 0 for EOF). */
static void lost(struct hconn *c, int err)
{
	if (c->state == HC_IDLE || c->state == HC_CLOSING) {
		reconnect(c);
		return;
	}
	if (err == 0 && http_resp_eof_ends(&c->resp)) {
		response_done(c);
		return;
	}
	/* Closed as we reused a keep-alive connection, before any byte of a
	 * reply: the request was not taken. Send it again, once. */
	if (c->state == HC_BUSY && c->resp.head_len == 0 && !c->resp.in_body && c->nreq > 1 &&
	    !c->retried) {
		c->retried = true;
		c->resend = true;
		reconnect(c);
		return;
	}
	pub_failure(err ? "connection" : "closed the connection mid-response", err);
}

/* Response bytes <p>[0..len) arrived on <c>. */
static void input(struct hconn *c, const char *p, size_t len)
{
	uint32_t gen = c->gen;

	while (len > 0 && c->gen == gen && !run.pub_dead) {
		size_t used;

		if (c->state == HC_CLOSING)
			return;     /* after Connection: close: ignored */
		if (c->state != HC_BUSY) {
			pub_failure("sent bytes with no request in flight", 0);
			return;
		}
		int rc = http_resp_feed(&c->resp, p, len, &used);
		if (rc < 0) {
			pub_failure(http_resp_strerror(rc), 0);
			return;
		}
		p += used;
		len -= used;
		if (rc == 1)
			response_done(c);
	}
}

static void hc_read(struct hconn *c)
{
	ssize_t n = read(c->fd, rbuf, sizeof rbuf);

	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		lost(c, errno);
		return;
	}
	if (n == 0) {
		lost(c, 0);
		return;
	}
	input(c, rbuf, (size_t)n);
}

static void connected(struct hconn *c, uint32_t events)
{
	int err = 0, one = 1;
	socklen_t l = sizeof err;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) == -1)
		err = errno;
	if (err) {
		close_fd(c);
		pub_failure("connect", err);
		return;
	}
	if (!(events & EPOLLOUT))
		return;
	/* Each request is one small write whose latency we measure. */
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1)
		say("TCP_NODELAY: %s", strerror(errno));
	if (!c->was_up) {
		c->was_up = true;
		nup_once++;
	}
	c->pollout = false;
	ep_ctl(EPOLL_CTL_MOD, c->fd, EPOLLIN, hc_tag(c));
	if (c->resend) {
		c->resend = false;
		c->req_off = 0;
		c->nreq = 1;
		http_resp_reset(&c->resp);
		set_state(c, HC_BUSY);
		hc_write(c);
		return;
	}
	set_state(c, HC_IDLE);
}

static void http_event(uint32_t idx, uint32_t gen, uint32_t events)
{
	if (idx >= nhc)
		return;
	struct hconn *c = &hc[idx];
	if (c->gen != gen || c->fd == -1)
		return;
	/* Errors and hangups show up in the read and write paths. */
	if (events & (EPOLLERR | EPOLLHUP))
		events |= EPOLLIN | EPOLLOUT;
	if (c->state == HC_CONNECTING) {
		connected(c, events);
		return;
	}
	if (events & EPOLLIN)
		hc_read(c);
	if (c->gen == gen && c->fd != -1 && (events & EPOLLOUT) && c->state == HC_BUSY &&
	    c->req_off < c->req_len)
		hc_write(c);
}

struct pub_adapter pub_http_adapter = {
	.open = http_open,
	.ready = http_ready,
	.can_send = http_can_send,
	.send = http_send,
	.flush = http_flush,
	.idle = http_idle,
	.event = http_event,
	.close = http_close,
	.release = http_release,
};
