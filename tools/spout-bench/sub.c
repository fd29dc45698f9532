/*
 * sub.c - subscriber connections: connect, send the GET, read the response
 * head, then hand the body to sse.c; slow subscribers park after their head;
 * churn slots close after it.
 *
 * Subscriber numbering is global so that the scenario does not depend on
 * the number of processes: checked subscriber g (0 <= g < -s) takes topic
 * g % T and lives in process g % P; slow subscriber k likewise. A process
 * holds its checked subscribers first, then its slow ones.
 *
 * Sockets are level-triggered and each readable event gets one read() of at
 * most RBUF_SIZE bytes, so one busy subscriber cannot starve the others or
 * the publisher's pacing. Event-loop thread only.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"
#include "sub.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

struct sub *subs;
uint32_t nslots;

static uint32_t *free_slots;    /* churn only: stack of free slot indices */
static uint32_t nfree;
static char **req_buf;          /* the GET request for each topic */
static uint32_t *req_len;
static uint32_t next_src;

static uint64_t sub_tag(const struct sub *s)
{
	return ((uint64_t)s->gen << 32) | (uint32_t)(s - subs);
}

/* Builds each topic's request. Only nchan needs the Accept header (its
 * subscriber location serves several protocols); spout's request stays
 * byte for byte what it always was. */
static void build_requests(void)
{
	const char *ver = opt.http10 ? "1.0" : "1.1";
	const char *accept = opt.target == TARGET_SPOUT ? "" : "Accept: text/event-stream\r\n";

	req_buf = xcalloc(opt.topics, sizeof *req_buf);
	req_len = xcalloc(opt.topics, sizeof *req_len);
	for (unsigned long t = 0; t < opt.topics; t++) {
		int n = asprintf(&req_buf[t], "GET %s%s HTTP/%s\r\nHost: %s\r\n%s\r\n",
				 opt.sub_path, topic_name[t], ver, opt.http_addr, accept);
		if (n == -1)
			die("out of memory");
		req_len[t] = (uint32_t)n;
	}
}

/* Sizes this process's slots from run.my_subs / run.my_slow (or its share
 * of the churn cycles). */
void subs_setup(void)
{
	if (opt.churn) {
		run.total = share_of(opt.churn_cycles, run.nprocs, run.proc);
		nslots = (uint32_t)(run.concurrency < run.total ? run.concurrency : run.total);
		free_slots = xcalloc(nslots, sizeof *free_slots);
		for (uint32_t i = 0; i < nslots; i++)
			free_slots[nfree++] = nslots - 1 - i;
	} else {
		run.total = run.my_subs + run.my_slow;
		nslots = (uint32_t)run.total;
	}
	subs = xcalloc(nslots, sizeof *subs);
	for (uint32_t i = 0; i < nslots; i++)
		subs[i].fd = -1;
	build_requests();
}

static void sub_close(struct sub *s)
{
	if (s->fd != -1) {
		/* close() errors on a socket say nothing we could act on. */
		(void)close(s->fd);
		s->fd = -1;
	}
	s->gen++;
	free(s->head);
	s->head = NULL;
	free(s->gaps);
	s->gaps = NULL;
	s->ngaps = 0;
	s->state = SS_CLOSED;
}

void subs_free(void)
{
	for (uint32_t i = 0; i < nslots; i++)
		sub_close(&subs[i]);
	for (unsigned long t = 0; req_buf && t < opt.topics; t++)
		free(req_buf[t]);
	free(req_buf);
	free(req_len);
	free(subs);
	free(free_slots);
	subs = NULL;
	req_buf = NULL;
	req_len = NULL;
	free_slots = NULL;
	nslots = 0;
}

static void slot_free(struct sub *s)
{
	s->state = SS_FREE;
	free_slots[nfree++] = (uint32_t)(s - subs);
}

enum fail_kind { FAIL_ERRNO, FAIL_TIMEOUT, FAIL_STATUS, FAIL_EOF, FAIL_BADHEAD };

/* A subscription that never got its 200 head. */
static void sub_fail(struct sub *s, enum fail_kind k, int code)
{
	switch (k) {
	case FAIL_ERRNO: st.fail_errno[code > 0 && code < ERRNO_SLOTS ? code : 0]++; break;
	case FAIL_TIMEOUT: st.fail_timeout++; break;
	case FAIL_STATUS: st.fail_status[code >= 0 && code < STATUS_SLOTS ? code : 0]++; break;
	case FAIL_EOF: st.fail_eof++; break;
	case FAIL_BADHEAD: st.fail_badhead++; break;
	}
	st.failed++;
	if (s->kind == SK_SLOW)
		st.slow_failed++;
	run.inflight--;
	sub_close(s);
	if (s->kind == SK_CHURN)
		slot_free(s);
}

/* A checked subscriber lost mid-stream: what it misses counts as lost. */
static void sub_drop(struct sub *s, uint64_t *counter)
{
	(*counter)++;
	s->dropped = true;
	if (opt.verbose && st.dropped_eof + st.dropped_err + st.dropped_proto == 1)
		say("first subscriber dropped mid-stream (topic %s)", topic_name[s->topic]);
	uint64_t unique = s->unique;
	sub_close(s);
	s->unique = unique;
}

static void sub_established(struct sub *s, int64_t rx_ns)
{
	run.inflight--;
	run.t_last_head = rx_ns;
	st.connected++;
	switch (s->kind) {
	case SK_SLOW:
		st.slow_connected++;
		s->state = SS_PARKED;
		/* Level-triggered EPOLLIN would fire forever on a socket we
		 * refuse to read. */
		ep_ctl(EPOLL_CTL_DEL, s->fd, 0, 0);
		break;
	case SK_CHURN:
		st.churn_done++;
		sub_close(s);
		slot_free(s);
		break;
	default:
		s->state = SS_STREAM;
		s->established = true;
		s->next_seq = 1;
		topic_nsubs[s->topic]++;
		break;
	}
}

static void sub_send_req(struct sub *s)
{
	const char *r = req_buf[s->topic];
	uint32_t rl = req_len[s->topic];

	while (s->req_off < rl) {
		ssize_t n = send(s->fd, r + s->req_off, rl - s->req_off, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				sub_fail(s, FAIL_ERRNO, errno);
			return;
		}
		s->req_off += (uint32_t)n;
	}
	s->state = SS_HEAD;
	ep_ctl(EPOLL_CTL_MOD, s->fd, EPOLLIN, sub_tag(s));
}

static void sub_read_head(struct sub *s)
{
	if (!s->head)
		s->head = xcalloc(1, HEAD_MAX);
	ssize_t n = read(s->fd, s->head + s->head_len, HEAD_MAX - s->head_len);
	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			sub_fail(s, FAIL_ERRNO, errno);
		return;
	}
	if (n == 0) {
		sub_fail(s, FAIL_EOF, 0);
		return;
	}
	int64_t rx = now_ns();
	size_t from = s->head_len > 3 ? s->head_len - 3 : 0;
	s->head_len += (uint32_t)n;
	size_t end = http_head_end(s->head, s->head_len, from);
	if (end == 0) {
		if (s->head_len == HEAD_MAX)
			sub_fail(s, FAIL_BADHEAD, 0);
		return;
	}
	int status = http_head_status(s->head, end);
	if (status < 0) {
		sub_fail(s, FAIL_BADHEAD, 0);
		return;
	}
	if (status != 200) {
		sub_fail(s, FAIL_STATUS, status);
		return;
	}
	s->chunked = http_head_has(s->head, end, "transfer-encoding", "chunked");
	sub_established(s, rx);
	if (s->state == SS_STREAM && s->head_len > end) {
		int r = sub_body_feed(s, s->head + end, s->head_len - end, rx);
		if (r != 0) {
			sub_drop(s, r < 0 ? &st.dropped_proto : &st.dropped_eof);
			return;
		}
	}
	free(s->head);
	s->head = NULL;
}

static void sub_read_stream(struct sub *s)
{
	ssize_t n = read(s->fd, rbuf, sizeof rbuf);

	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			sub_drop(s, &st.dropped_err);
		return;
	}
	if (n == 0) {
		sub_drop(s, &st.dropped_eof);
		return;
	}
	int r = sub_body_feed(s, rbuf, (size_t)n, now_ns());
	if (r != 0)
		sub_drop(s, r < 0 ? &st.dropped_proto : &st.dropped_eof);
}

/* End-of-run read of a slow subscriber: it drains what the kernel holds,
 * since a close by the broker (FIN) queues behind all the data it sent. A
 * bounded number of reads per call keeps the loop fair. */
static void slow_read(struct sub *s)
{
	for (int i = 0; i < 16; i++) {
		ssize_t n = read(s->fd, rbuf, sizeof rbuf);

		if (n > 0)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		st.slow_closed++;      /* EOF, or RST (ECONNRESET) */
		run.slow_pending--;
		sub_close(s);
		return;
	}
}

/* Readiness <events> on subscriber <s> (EPOLLERR/HUP already folded into
 * IN|OUT by the caller). */
void sub_event(struct sub *s, uint32_t events)
{
	switch (s->state) {
	case SS_CONNECTING: {
		int err = 0;
		socklen_t l = sizeof err;

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) == -1)
			err = errno;
		if (err) {
			sub_fail(s, FAIL_ERRNO, err);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		s->state = SS_SENDING;
		sub_send_req(s);
		return;
	}
	case SS_SENDING:
		sub_send_req(s);
		return;
	case SS_HEAD:
		sub_read_head(s);
		return;
	case SS_STREAM:
		sub_read_stream(s);
		return;
	case SS_SLOWCHK:
		slow_read(s);
		return;
	default:
		return;
	}
}

static void sub_open(struct sub *s, int64_t now)
{
	int fd;

	if (run.t_first_connect == 0)
		run.t_first_connect = now;
	run.inflight++;
	s->state = SS_CONNECTING;
	s->t_open = now;
	s->req_off = s->head_len = 0;
	sub_reset_parser(s);
	s->chunked = false;
	s->established = s->dropped = false;
	s->unique = 0;
	s->next_seq = 1;

	fd = socket(http_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		sub_fail(s, FAIL_ERRNO, errno);
		return;
	}
	s->fd = fd;
	if (nsrc > 0) {
		int one = 1;
		const uint32_t i = next_src++ % nsrc;

		/* Pick the port at connect() from the whole 4-tuple, not at
		 * bind() per address: bind() alone would reserve the port
		 * against every destination. */
		if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) == -1 &&
		    next_src == 1)
			say("IP_BIND_ADDRESS_NO_PORT: %s", strerror(errno));
		if (bind(fd, (struct sockaddr *)&src[i], src_len[i]) == -1) {
			sub_fail(s, FAIL_ERRNO, errno);
			return;
		}
	}
	if (s->kind == SK_SLOW && opt.slow_rcvbuf > 0) {
		int v = (int)opt.slow_rcvbuf;
		/* Before connect(), so that the window scale matches it. */
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) == -1)
			say("SO_RCVBUF: %s", strerror(errno));
	}
	if (connect(fd, (struct sockaddr *)&http_sa, http_salen) == -1) {
		if (errno != EINPROGRESS) {
			sub_fail(s, FAIL_ERRNO, errno);
			return;
		}
		ep_ctl(EPOLL_CTL_ADD, fd, EPOLLOUT, sub_tag(s));
		return;
	}
	s->state = SS_SENDING;
	ep_ctl(EPOLL_CTL_ADD, fd, EPOLLOUT, sub_tag(s));
	sub_send_req(s);
}

/* Opens subscribers until this process's concurrency share or its total is
 * reached. Local slot j maps to global index proc + j * nprocs. */
void subs_launch(void)
{
	if (run.phase != PH_CONNECT && run.phase != PH_CHURN)
		return;
	int64_t now = now_ns();
	while (run.inflight < run.concurrency && run.launched < run.total) {
		struct sub *s;
		uint64_t j = run.launched++;

		if (opt.churn) {
			if (nfree == 0)
				break;   /* cannot happen: slots == concurrency */
			s = &subs[free_slots[--nfree]];
			s->kind = SK_CHURN;
		} else {
			s = &subs[j];
			s->kind = j < run.my_subs ? SK_NORMAL : SK_SLOW;
			if (j >= run.my_subs)
				j -= run.my_subs;
		}
		s->topic = (uint32_t)((run.proc + j * run.nprocs) % opt.topics);
		sub_open(s, now);
	}
}

/* Fails every subscriber still between connect() and head whose deadline
 * (<opened_before>) has passed. */
void subs_fail_stale(int64_t opened_before)
{
	for (uint32_t i = 0; i < nslots; i++) {
		struct sub *s = &subs[i];

		if ((s->state == SS_CONNECTING || s->state == SS_SENDING || s->state == SS_HEAD) &&
		    s->t_open <= opened_before)
			sub_fail(s, FAIL_TIMEOUT, 0);
	}
}

/* The connect phase is over: subscribers never opened fail as timeouts. */
void subs_fail_unlaunched(void)
{
	st.fail_timeout += run.total - run.launched;
	st.failed += run.total - run.launched;
	for (uint64_t j = run.launched; j < run.total; j++)
		if (j >= run.my_subs)
			st.slow_failed++;
	run.launched = run.total;
}

/* End of the drain: close the checked streams so that nothing read later
 * counts, keeping what each one received. */
void subs_freeze(void)
{
	for (uint32_t i = 0; i < nslots; i++)
		if (subs[i].state == SS_STREAM) {
			uint64_t unique = subs[i].unique;
			sub_close(&subs[i]);
			subs[i].unique = unique;
		}
}

void subs_start_slowcheck(void)
{
	for (uint32_t i = 0; i < nslots; i++) {
		struct sub *s = &subs[i];

		if (s->state != SS_PARKED)
			continue;
		s->state = SS_SLOWCHK;
		run.slow_pending++;
		if (opt.slow_rcvbuf > 0) {
			/* A FIN queues behind all the data the broker's kernel
			 * still holds; a small receive window would make
			 * draining it take seconds. */
			int v = 1 << 20;
			if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) == -1)
				say("SO_RCVBUF: %s", strerror(errno));
		}
		ep_ctl(EPOLL_CTL_ADD, s->fd, EPOLLIN, sub_tag(s));
		slow_read(s);
	}
}

/* Adds each established checked subscriber's distinct deliveries to its
 * topic's entry of <per_topic>. */
void subs_sum_unique(uint64_t *per_topic)
{
	for (uint32_t i = 0; i < nslots; i++) {
		const struct sub *s = &subs[i];

		if (s->kind == SK_NORMAL && s->established)
			per_topic[s->topic] += s->unique;
	}
}
