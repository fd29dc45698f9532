/*
 * stream.c - publishing a stream of lines: a window of commands in flight,
 * optional pacing, and every reply matched to the line that caused it.
 *
 * The broker answers every command with exactly one line, in order
 * (docs/protocol.md 1.2 and 1.5), so a FIFO of what was sent is enough to
 * know which input line each OK or ERR belongs to. Entries are events or
 * the keep-alive PINGs sent while the input is quiet.
 *
 *     input ──lines──> record ──bytes──> conn.out ──> broker
 *                        │                              │
 *                      fifo: (line number, kind) <──replies
 *
 * Lines refused locally (unreadable JSON, a topic that cannot be framed)
 * are reported and counted without being sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pub.h"

enum pending_kind { PENDING_EVENT, PENDING_PING, PENDING_INVALID };

struct pending {
	uint64_t lineno;
	uint64_t end_off;            /* input consumed through this line */
	enum pending_kind kind;
	char *why;                   /* PENDING_INVALID: the reason, malloc'd */
};

/* Ring of what was sent and not yet answered, in input order. A line
 * refused locally also takes a place, so that every failure is reported
 * in line order, when the replies before it have come. Grows as needed;
 * at most opt.window events are in it. */
static struct pending *fifo;
static size_t fifo_cap, fifo_head, fifo_n, fifo_nevents;

static void fifo_push(uint64_t lineno, uint64_t end_off, enum pending_kind kind, char *why)
{
	if (fifo_n == fifo_cap) {
		size_t cap = fifo_cap ? fifo_cap * 2 : 256;
		struct pending *f = cli_xmalloc(cap * sizeof *f);

		for (size_t i = 0; i < fifo_n; i++)
			f[i] = fifo[(fifo_head + i) % fifo_cap];
		free(fifo);
		fifo = f;
		fifo_cap = cap;
		fifo_head = 0;
	}
	fifo[(fifo_head + fifo_n) % fifo_cap] = (struct pending){ lineno, end_off, kind, why };
	fifo_n++;
	fifo_nevents += kind == PENDING_EVENT;
}

static struct pending fifo_pop(void)
{
	struct pending p = fifo[fifo_head];

	fifo_head = (fifo_head + 1) % fifo_cap;
	fifo_n--;
	fifo_nevents -= p.kind == PENDING_EVENT;
	return p;
}

static void fifo_free(void)
{
	while (fifo_n > 0)
		free(fifo_pop().why);
	free(fifo);
	fifo = NULL;
	fifo_cap = fifo_head = 0;
}

/* A failed line, on stderr, without tearing the progress line. */
static void report_line(uint64_t lineno, const char *reason, const char *what)
{
	progress_clear();
	cli_say("line %" PRIu64 ": %s%s", lineno, reason, what);
}

/* Reports the locally refused lines at the head of the queue: every
 * reply before them has come. */
static void drain_invalid(struct tally *t)
{
	while (fifo_n > 0 && fifo[fifo_head].kind == PENDING_INVALID) {
		struct pending p = fifo_pop();

		report_line(p.lineno, p.why, " (not sent)");
		free(p.why);
		t->done_bytes = p.end_off;
	}
}

/* Ends the stream with a summary; returns <status>. */
static int finish(const struct tally *t, int status, const char *ending)
{
	progress_update(t, true);
	progress_clear();
	fflush(stdout);
	progress_summary(t, ending);
	return status;
}

/* The connection ended or stalled with commands unanswered: say which
 * lines may or may not have been published. */
static int lost(const struct tally *t, const char *why)
{
	progress_clear();
	if (fifo_n > 0) {
		uint64_t first = 0, last = 0;

		for (size_t i = 0; i < fifo_n; i++) {
			const struct pending *p = &fifo[(fifo_head + i) % fifo_cap];

			if (p->kind != PENDING_EVENT)
				continue;
			if (first == 0)
				first = p->lineno;
			last = p->lineno;
		}
		if (first != 0)
			cli_say("%s; %zu event(s) unanswered, lines %" PRIu64 "-%" PRIu64
				" (each may or may not have been published)", why, fifo_nevents,
				first, last);
		else
			cli_say("%s", why);
	} else {
		cli_say("%s", why);
	}
	return finish(t, PUB_EXIT_CONN, " (connection lost)");
}

/*
 * Handles one reply line. Returns 0, or an exit status to stop at once
 * (auth required, a reply that matches nothing).
 */
static int on_reply(const char *reply, struct tally *t, bool *stopping)
{
	uint64_t id;

	/* drain_invalid() keeps the head an event or a PING: fifo_n > 0
	 * means a reply is due. */
	if (fifo_n == 0) {
		/* Unasked: the broker closing this connection ("ERR idle
		 * timeout", "ERR too many publisher connections"). */
		progress_clear();
		cli_say("the broker says: %s", reply);
		return PUB_EXIT_CONN;
	}
	struct pending p = fifo_pop();

	if (p.kind == PENDING_PING) {
		if (strcmp(reply, "PONG") != 0) {
			progress_clear();
			cli_say("unexpected reply to PING: '%s'", reply);
			return PUB_EXIT_CONN;
		}
		return 0;
	}
	t->done_bytes = p.end_off;
	if (reply_ok_id(reply, &id) == 0) {
		t->ok++;
		if (opt.print_ids)
			printf("%" PRIu64 "\n", id);
		return 0;
	}
	if (strncmp(reply, "ERR ", 4) != 0) {
		progress_clear();
		cli_say("line %" PRIu64 ": unexpected reply '%s' (is %s:%s spoutd's publisher port?)",
			p.lineno, reply, opt.host, opt.port);
		return PUB_EXIT_CONN;
	}
	t->refused++;
	if (strncmp(reply + 4, "auth required", 13) == 0) {
		/* Every other line would get the same answer. */
		report_line(p.lineno, reply + 4, "");
		progress_clear();
		cli_say("the broker requires a publisher token: give --token, --token-file or "
			"SPOUT_PUB_TOKEN");
		return PUB_EXIT_AUTH;
	}
	report_line(p.lineno, reply + 4, "");
	if (opt.stop_on_error)
		*stopping = true;
	return 0;
}

int stream_run(struct conn *c, struct input *in)
{
	struct tally t = { .t0 = cli_now_ns() };
	const int64_t timeout = (int64_t)(opt.timeout_s * (double)CLI_NS_PER_S);
	const int64_t interval = opt.rate > 0 ? (int64_t)((double)CLI_NS_PER_S / opt.rate) : 0;
	const int64_t keepalive = (int64_t)(opt.keepalive_s * (double)CLI_NS_PER_S);
	int64_t next_send = t.t0, last_reply = t.t0, last_sent = t.t0;
	bool stopping = false, input_done = false;
	char *enc = NULL;
	size_t enc_len = 0, enc_cap = 0;
	int status;

	progress_init(in->size);

	for (;;) {
		int64_t now = cli_now_ns();
		bool need_input = false, paced = false;

		if (pub_interrupted)
			stopping = true;

		/* 1. Turn input lines into commands while the window and the
		 * pace allow. */
		while (!stopping && !input_done && fifo_nevents < opt.window) {
			const char *line;
			size_t len;
			struct record rec;
			char why[512];

			if (interval > 0 && now < next_send) {
				paced = true;
				break;
			}
			int r = input_next_line(in, &line, &len);
			if (r == -E2BIG) {
				report_line(in->lineno + 1, "longer than 64 MiB", ", not sent; stopping");
				t.invalid++;
				stopping = true;
				break;
			}
			if (r == 0) {
				if (in->eof)
					input_done = true;
				else
					need_input = true;
				break;
			}
			t.lines++;
			int pr = record_parse(line, len, opt.format, &rec, why, sizeof why);
			const char *bad = pr < 0 ? why : pr > 0 ? record_check(&rec) : NULL;
			if (pr == 0 || bad != NULL) {
				if (bad != NULL) {
					fifo_push(in->lineno, in->consumed, PENDING_INVALID,
						  cli_xstrdup(bad));
					t.invalid++;
					if (opt.stop_on_error)
						stopping = true;
				} else if (fifo_n == 0) {
					t.done_bytes = in->consumed;
				}
				record_free(&rec);
				drain_invalid(&t);
				continue;
			}
			enc_len = 0;
			record_encode(&rec, &enc, &enc_len, &enc_cap);
			record_free(&rec);
			conn_append(c, enc, enc_len);
			fifo_push(in->lineno, in->consumed, PENDING_EVENT, NULL);
			t.sent++;
			last_sent = now;
			if (interval > 0) {
				/* Catch up after a stall by at most 100 ms worth of
				 * events, not with a burst of everything missed. */
				if (next_send < now - 100 * CLI_NS_PER_MS)
					next_send = now - 100 * CLI_NS_PER_MS;
				next_send += interval;
			}
		}

		/* Keep a quiet stream open: spoutd closes a publisher that
		 * sends nothing for --pub-idle-timeout-ms (5 min). */
		if (keepalive > 0 && !stopping && !input_done && fifo_n == 0 &&
		    now - last_sent >= keepalive) {
			conn_append(c, "PING\n", 5);
			fifo_push(in->lineno, t.done_bytes, PENDING_PING, NULL);
			last_sent = now;
		}

		int rc = conn_flush(c);
		if (rc != 0) {
			status = lost(&t, rc == -EPIPE || rc == -ECONNRESET
					      ? "the broker closed the connection"
					      : strerror(-rc));
			goto out;
		}
		if ((input_done || stopping) && fifo_n == 0 && c->out_len == 0)
			break;

		/* 2. Wait for the socket, the input, the pace or a timer. */
		struct pollfd pfd[2] = {
			{ .fd = c->fd, .events = POLLIN | (c->out_len > 0 ? POLLOUT : 0) },
			{ .fd = in->fd, .events = POLLIN },
		};
		nfds_t nfds = need_input ? 2 : 1;
		int64_t wake = 0;
		if (paced)
			wake = next_send;
		if (fifo_n > 0 && (wake == 0 || last_reply + timeout < wake))
			wake = last_reply + timeout;
		if (keepalive > 0 && fifo_n == 0 && !input_done && !stopping &&
		    (wake == 0 || last_sent + keepalive < wake))
			wake = last_sent + keepalive;
		if (opt.print_ids)
			fflush(stdout);
		int n = cli_poll(pfd, nfds, cli_poll_ms(wake, progress_update(&t, false)));
		if (n == -1 && errno != EINTR)
			cli_die(PUB_EXIT_CONN, "poll: %s", strerror(errno));
		now = cli_now_ns();

		/* 3. Replies. */
		if (n > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t r = conn_fill(c);
			char *reply;

			if (r < 0) {
				status = lost(&t, strerror((int)-r));
				goto out;
			}
			if (r > 0)
				last_reply = now;
			while ((reply = conn_reply(c)) != NULL) {
				int st = on_reply(reply, &t, &stopping);

				drain_invalid(&t);
				if (st != 0) {
					status = finish(&t, st, "");
					goto out;
				}
			}
			if (c->eof) {
				if (fifo_n == 0 && (input_done || stopping))
					break;
				status = lost(&t, "the broker closed the connection");
				goto out;
			}
		}
		if (fifo_n > 0 && now - last_reply >= timeout) {
			char why[128];

			snprintf(why, sizeof why, "no reply from the broker for %g s (--timeout)",
				 opt.timeout_s);
			status = lost(&t, why);
			goto out;
		}

		/* 4. More input. */
		if (n > 0 && nfds == 2 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t r = input_fill(in);

			if (r < 0 && r != -EINTR) {
				progress_clear();
				cli_say("reading %s: %s", in->name, strerror((int)-r));
				stopping = true;
				t.invalid++;
			}
		}
	}
	if (pub_interrupted)
		status = PUB_EXIT_SIGNAL;
	else
		status = t.refused + t.invalid > 0 ? PUB_EXIT_FAILED : 0;
	status = finish(&t, status, pub_interrupted ? " (interrupted)" : "");
out:
	free(enc);
	fifo_free();
	return status;
}
