/*
 * test_rlink.c - hiredis connections on the level-triggered set: connect,
 * replies larger than one hiredis read (the reason for the set), pausing,
 * the progress watchdog, and a peer that goes away.
 *
 * The peer is a plain TCP socket in this process that writes RESP bytes:
 * what is under test is our adapter around the real hiredis.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "spout/rlink.h"
#include "spout/sys.h"
#include "sanitizers.h"

struct peer {
	int lfd, fd;
	unsigned port;
};

static void peer_listen(struct peer *p)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(p->lfd, 0);
	cr_assert_eq(bind(p->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(p->lfd, 4), 0);
	cr_assert_eq(getsockname(p->lfd, (struct sockaddr *)&a, &len), 0);
	p->port = ntohs(a.sin_port);
	p->fd = -1;
}

static void peer_accept(struct peer *p)
{
	struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
	cr_assert_eq(poll(&pf, 1, 2000), 1, "no connection came");
	p->fd = accept(p->lfd, NULL, NULL);
	cr_assert_geq(p->fd, 0);
}

static void peer_send(struct peer *p, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t k = write(p->fd, s, n);
		cr_assert_gt(k, 0);
		s += k;
		n -= (size_t)k;
	}
}

/* Read until <n> bytes of commands arrived (or 2 s). */
static size_t peer_read(struct peer *p, char *buf, size_t cap)
{
	struct pollfd pf = { .fd = p->fd, .events = POLLIN };
	size_t got = 0;

	while (got < cap && poll(&pf, 1, 200) == 1) {
		ssize_t k = read(p->fd, buf + got, cap - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	buf[got < cap ? got : cap - 1] = '\0';
	return got;
}

struct got {
	int calls;
	int nulls;
	long long len;
	struct sp_rlink *l;
};

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct got *g = priv;
	redisReply *r = reply;

	g->calls++;
	if (r == NULL) {
		g->nulls++;
		return;
	}
	g->len = r->type == REDIS_REPLY_STRING ? (long long)r->len : -1;
	sp_rlink_replied(g->l, sp_now_ms());
}

/* Poll the set until <cond> or 2 s. */
#define SERVE_UNTIL(set, cond)                                          \
	do {                                                            \
		uint64_t until_ = sp_now_ms() + 2000;                   \
		while (!(cond) && sp_now_ms() < until_) {               \
			struct pollfd pf_ = { .fd = (set)->epfd, .events = POLLIN }; \
			poll(&pf_, 1, 10);                              \
			sp_rlink_set_poll(set);                         \
		}                                                       \
	} while (0)

static void command(struct sp_rlink *l, struct got *g, const char *a, const char *b)
{
	const char *argv[] = { a, b };
	size_t lens[] = { strlen(a), strlen(b) };
	cr_assert_eq(sp_rlink_command(l, on_reply, g, 2, argv, lens, sp_now_ms()), 0);
}

Test(rlink, connects_and_takes_a_reply_larger_than_one_read)
{
	struct sp_rlink_set set;
	struct sp_rlink l;
	struct peer p;
	struct got g = { .l = &l };
	char buf[256];
	size_t big = 200000;   /* hiredis reads 16 KiB at a time */

	peer_listen(&p);
	cr_assert_eq(sp_rlink_set_init(&set), 0);
	cr_assert_eq(sp_rlink_open(&l, &set, "test", "127.0.0.1", p.port, sp_now_ms()), 0);
	command(&l, &g, "GET", "k");
	peer_accept(&p);
	SERVE_UNTIL(&set, l.state == SP_RLINK_OPEN);
	cr_assert_eq(l.state, SP_RLINK_OPEN);
	cr_assert_gt(peer_read(&p, buf, sizeof(buf)), 0);
	cr_assert(strstr(buf, "GET") != NULL, "the command went out: %s", buf);

	char *reply = malloc(big + 32);
	int n = sprintf(reply, "$%zu\r\n", big);
	memset(reply + n, 'x', big);
	memcpy(reply + n + big, "\r\n", 2);
	peer_send(&p, reply, (size_t)n + big + 2);
	free(reply);
	SERVE_UNTIL(&set, g.calls == 1);
	cr_assert_eq(g.calls, 1, "a level-triggered set reads the whole reply");
	cr_assert_eq(g.len, (long long)big);
	cr_assert_eq(l.outstanding, 0);
	sp_rlink_close(&l);
	sp_rlink_set_close(&set);
	close(p.fd);
	close(p.lfd);
}

Test(rlink, paused_reads_wait_then_resume)
{
	struct sp_rlink_set set;
	struct sp_rlink l;
	struct peer p;
	struct got g = { .l = &l };
	char buf[256];

	peer_listen(&p);
	cr_assert_eq(sp_rlink_set_init(&set), 0);
	cr_assert_eq(sp_rlink_open(&l, &set, "test", "127.0.0.1", p.port, sp_now_ms()), 0);
	command(&l, &g, "GET", "a");
	peer_accept(&p);
	SERVE_UNTIL(&set, l.state == SP_RLINK_OPEN);
	peer_read(&p, buf, sizeof(buf));
	sp_rlink_pause_read(&l, true);
	peer_send(&p, "$2\r\nok\r\n", 8);
	uint64_t until = sp_now_ms() + 300;
	while (sp_now_ms() < until)
		sp_rlink_set_poll(&set);
	cr_assert_eq(g.calls, 0, "nothing is read while paused");
	sp_rlink_pause_read(&l, false);
	SERVE_UNTIL(&set, g.calls == 1);
	cr_assert_eq(g.calls, 1);
	cr_assert_eq(g.len, 2);
	sp_rlink_close(&l);
	sp_rlink_set_close(&set);
	close(p.fd);
	close(p.lfd);
}

Test(rlink, watchdog_and_peer_loss)
{
	struct sp_rlink_set set;
	struct sp_rlink l;
	struct peer p;
	struct got g = { .l = &l };
	char buf[256];

	peer_listen(&p);
	cr_assert_eq(sp_rlink_set_init(&set), 0);
	uint64_t t0 = sp_now_ms();
	cr_assert_eq(sp_rlink_open(&l, &set, "test", "127.0.0.1", p.port, t0), 0);
	command(&l, &g, "GET", "a");
	peer_accept(&p);
	SERVE_UNTIL(&set, l.state == SP_RLINK_OPEN);
	peer_read(&p, buf, sizeof(buf));
	/* No answer: stuck once the timeout has passed, not before. */
	cr_assert_not(sp_rlink_stuck(&l, l.progress_ms + 100, 500));
	cr_assert(sp_rlink_stuck(&l, l.progress_ms + 501, 500));
	/* The peer goes away: the link is dead with a reason, and closing it
	 * runs the pending callback with no reply. */
	close(p.fd);
	SERVE_UNTIL(&set, sp_rlink_dead(&l));
	cr_assert(sp_rlink_dead(&l));
	cr_assert_neq(l.why[0], '\0');
	sp_rlink_close(&l);
	cr_assert_eq(g.calls, 1, "pending callback ran once");
	cr_assert_eq(g.nulls, 1, "with no reply");
	cr_assert_eq(sp_rlink_command(&l, on_reply, &g, 2, (const char *[]){ "GET", "a" },
				      (size_t[]){ 3, 1 }, sp_now_ms()), -1, "a closed link takes nothing");
	sp_rlink_set_close(&set);
	close(p.lfd);
}

Test(rlink, refused_connect_is_dead)
{
	struct sp_rlink_set set;
	struct sp_rlink l;
	struct peer p;

	peer_listen(&p);
	unsigned port = p.port;
	close(p.lfd);   /* nothing listens there now */
	cr_assert_eq(sp_rlink_set_init(&set), 0);
	cr_assert_eq(sp_rlink_open(&l, &set, "test", "127.0.0.1", port, sp_now_ms()), 0);
	/* hiredis learns of the failure at the first write event, which a
	 * queued command asks for. */
	struct got g = { .l = &l };
	command(&l, &g, "PING", "x");
	SERVE_UNTIL(&set, sp_rlink_dead(&l));
	cr_assert(sp_rlink_dead(&l), "state %d", l.state);
	cr_assert_neq(l.why[0], '\0');
	sp_rlink_close(&l);
	sp_rlink_set_close(&set);
}
