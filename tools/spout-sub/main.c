/*
 * main.c - spout-sub: connect, read one stream, and when it ends or
 * breaks, connect again and resume after the last event seen, as
 * EventSource does:
 *
 *   - the delay is the stream's retry: value (spoutd sends it at the
 *     start, already jittered per connection), then doubles with each
 *     failed attempt up to 30 s, drawn at random in its upper half so
 *     that clients cut off together do not come back in step;
 *   - a 429 or 503 answer to a reconnection waits at least Retry-After;
 *   - Last-Event-ID carries the id of the last event seen, so the broker
 *     replays exactly what was missed (or says spout-gap).
 *
 * The first connection is not retried: a wrong address, a bad topic or a
 * missing token is reported at once with its own exit status. Refusals
 * that a retry cannot fix (400, 401, 403, 404) end spout-sub at any time.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sub.h"

#define READ_SIZE (64 * 1024)

volatile sig_atomic_t sub_interrupted;

/* Why a connection attempt ended. */
enum outcome {
	OUT_CONNECT_FAILED,   /* no TCP connection (or no head) */
	OUT_HTTP_ERROR,       /* a status other than 200 */
	OUT_ENDED,            /* the stream ended: cleanly, cut, reset or idle */
	OUT_BROKEN,           /* a malformed response: not worth retrying */
	OUT_COUNT,            /* --count events printed */
	OUT_TIMEOUT,          /* --timeout passed */
	OUT_SIGNAL,
	OUT_OUTPUT,           /* stdout failed */
};

/* Stop codes returned by the event callback through the parsers. */
#define STOP_COUNT 1
#define STOP_OUTPUT 2

struct state {
	struct sse sse;
	const char *topic;    /* the one literal topic, else NULL */
	char *token;          /* current token, or NULL */
	uint64_t received;    /* events counted for --count */
	int64_t deadline;     /* --timeout, 0 = none */
	bool established;     /* a 200 stream has been seen */
	bool auth_expired;    /* this stream said spout-auth-expired */
	/* details of the last attempt, for messages */
	struct http_resp resp;
	char why[512];
};

static void on_signal(int sig)
{
	(void)sig;
	sub_interrupted = 1;
}

static int on_event(void *ctx, const struct sse_event *ev)
{
	struct state *st = ctx;

	if (out_event(ev, st->topic) != 0)
		return STOP_OUTPUT;
	if (strcmp(ev->type, "spout-gap") == 0) {
		if (!opt.quiet)
			cli_say("gap: history does not reach back to the last event seen; some "
				"events are missing (%s)", ev->data);
	} else if (strcmp(ev->type, "spout-auth-expired") == 0) {
		st->auth_expired = true;
	} else if (strncmp(ev->type, "spout-", 6) != 0) {
		st->received++;
		if (opt.count > 0 && st->received >= opt.count)
			return STOP_COUNT;
	}
	return 0;
}

static int feed_sse(void *ctx, const char *p, size_t n)
{
	struct state *st = ctx;

	return sse_feed(&st->sse, p, n, on_event, st);
}

/* The earlier of <a> and <b>, where 0 means "none". */
static int64_t earliest(int64_t a, int64_t b)
{
	return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

/* Reads the body of a 200 stream until it ends, --count, --timeout, a
 * signal or a broken frame. <pre> holds body bytes read with the head. */
static enum outcome read_stream(struct state *st, int fd, const char *pre, size_t npre)
{
	static char buf[READ_SIZE];
	struct body body;
	int64_t idle = (int64_t)(opt.idle_s * (double)CLI_NS_PER_S);
	int64_t last_byte = cli_now_ns();
	int rc;

	body_init(&body, &st->resp);
	sse_restart(&st->sse);
	rc = body_feed(&body, pre, npre, feed_sse, st);
	for (;;) {
		if (rc == STOP_COUNT)
			return OUT_COUNT;
		if (rc == STOP_OUTPUT)
			return OUT_OUTPUT;
		if (rc == -E2BIG) {
			snprintf(st->why, sizeof st->why, "an event or line larger than %u MiB",
				 SUB_EVENT_MAX >> 20);
			return OUT_BROKEN;
		}
		if (rc < 0) {
			snprintf(st->why, sizeof st->why, "malformed chunked encoding");
			return OUT_BROKEN;
		}
		if (body.done) {
			snprintf(st->why, sizeof st->why, "the stream ended");
			return OUT_ENDED;
		}

		int64_t wake = earliest(st->deadline, idle > 0 ? last_byte + idle : 0);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int n = cli_poll(&pfd, 1, cli_poll_ms(wake, -1));
		if (sub_interrupted)
			return OUT_SIGNAL;
		if (n == -1 && errno == EINTR)
			continue;
		int64_t now = cli_now_ns();
		if (st->deadline != 0 && now >= st->deadline)
			return OUT_TIMEOUT;
		if (n == 0) {
			snprintf(st->why, sizeof st->why,
				 "nothing received for %g s, not even a heartbeat (--idle-timeout)",
				 opt.idle_s);
			return OUT_ENDED;
		}
		ssize_t rd = recv(fd, buf, sizeof buf, 0);
		if (rd == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (rd <= 0) {
			/* Without framing (HTTP/1.0) the close is the end. */
			if (rd == 0 && body.mode == BODY_UNTIL_CLOSE)
				snprintf(st->why, sizeof st->why, "the stream ended");
			else
				snprintf(st->why, sizeof st->why, "connection %s",
					 rd == 0 ? "closed in mid-stream" : strerror(errno));
			return OUT_ENDED;
		}
		last_byte = now;
		rc = body_feed(&body, buf, (size_t)rd, feed_sse, st);
	}
}

/* One connection: request, head, and the stream or the refusal. */
static enum outcome attempt(struct state *st)
{
	char head[SUB_HEAD_MAX];
	int64_t limit = earliest(st->deadline, cli_now_ns() +
				 (int64_t)(opt.connect_timeout_s * (double)CLI_NS_PER_S));
	size_t got = 0, len;
	enum outcome out;

	if (opt.verbose)
		cli_say("connecting to %s:%s%s%s", opt.host, opt.port,
			st->sse.last_id[0] ? ", Last-Event-ID " : "", st->sse.last_id);
	int fd = cli_connect(opt.host, opt.port, limit, st->why, sizeof st->why);
	if (fd < 0)
		return sub_interrupted ? OUT_SIGNAL : OUT_CONNECT_FAILED;

	char *req = url_request(st->token, st->sse.last_id, &len);
	int rc = cli_send_all(fd, req, len, limit);
	free(req);
	if (rc == 0)
		rc = http_read_head(fd, head, sizeof head, &got, limit, &st->resp, st->why,
				    sizeof st->why);
	if (rc < 0) {
		close(fd);
		if (sub_interrupted)
			return OUT_SIGNAL;
		if (st->deadline != 0 && cli_now_ns() >= st->deadline)
			return OUT_TIMEOUT;
		if (rc == -EPROTO)
			return OUT_BROKEN;
		snprintf(st->why, sizeof st->why, "%s",
			 rc == -ETIMEDOUT ? "no response in time (--connect-timeout)"
			 : rc == -EPIPE   ? "closed before a response"
			 : rc == -E2BIG   ? "response head too large"
					  : strerror(-rc));
		return rc == -E2BIG ? OUT_BROKEN : OUT_CONNECT_FAILED;
	}
	size_t body_at = (size_t)rc;

	if (st->resp.status != 200) {
		http_error_body(fd, &st->resp, head + body_at, got - body_at,
				earliest(st->deadline, cli_now_ns() + 2 * CLI_NS_PER_S), st->why,
				sizeof st->why);
		close(fd);
		return OUT_HTTP_ERROR;
	}
	if (strncasecmp(st->resp.content_type, "text/event-stream", 17) != 0) {
		snprintf(st->why, sizeof st->why, "not an event stream (Content-Type: %s)",
			 st->resp.content_type[0] ? st->resp.content_type : "none");
		close(fd);
		return OUT_BROKEN;
	}
	st->established = true;
	st->auth_expired = false;
	if (opt.verbose)
		cli_say("connected (HTTP/1.%d 200), waiting for events", st->resp.minor);
	out = read_stream(st, fd, head + body_at, got - body_at);
	close(fd);
	return out;
}

/* Exit status for an HTTP refusal. */
static int status_exit(int status)
{
	switch (status) {
	case 401: return SUB_EXIT_401;
	case 403: return SUB_EXIT_403;
	case 429: return SUB_EXIT_429;
	case 503: return SUB_EXIT_503;
	default: return SUB_EXIT_REFUSED;
	}
}

/* What to do about it, said once. */
static const char *status_hint(int status, bool have_token)
{
	switch (status) {
	case 400: return " (check the topic or pattern names)";
	case 401: return have_token ? " (get a new token)"
				    : " (give a token with --token or --token-file)";
	case 403: return " (the token does not grant this topic)";
	case 429: return " (close other streams from this address, or try later)";
	case 503: return " (the broker is full, starting or draining; try again later)";
	default: return "";
	}
}

static int64_t random_ms(int64_t below)
{
	return below > 0 ? (int64_t)arc4random_uniform((uint32_t)(below > UINT32_MAX ? UINT32_MAX
								    : below))
			 : 0;
}

/* Delay before attempt number <failures> + 1 since the last good stream. */
static int64_t backoff_ms(unsigned failures, long retry_ms, long retry_after_s)
{
	int64_t base = retry_ms >= 0 ? retry_ms : SUB_RETRY_DEFAULT_MS, d;

	if (failures == 0) {
		/* The broker's retry: is already jittered per connection;
		 * a little more covers brokers that do not. */
		d = base + random_ms(base / 4 + 1);
	} else {
		/* Never a tight loop, even after "retry: 0". */
		int64_t b = base < 250 ? 250 : base;

		d = b << (failures < 8 ? failures : 8);
		if (d > SUB_BACKOFF_MAX_MS)
			d = b > SUB_BACKOFF_MAX_MS ? b : SUB_BACKOFF_MAX_MS;
		d = d / 2 + random_ms(d / 2 + 1);
	}
	if (retry_after_s >= 0 && d < retry_after_s * 1000)
		d = retry_after_s * 1000 + random_ms(1000);
	return d;
}

/* The token for the next connection: --token, or the token file read
 * again (a sidecar may have renewed it). Returns false if the file cannot
 * be read, with the reason said. */
static bool load_token(struct state *st)
{
	char err[512];
	char *tok;

	if (opt.token_file == NULL) {
		if (opt.token_arg != NULL && st->token == NULL)
			st->token = cli_xstrdup(opt.token_arg);
		return true;
	}
	if (cli_read_token_file(opt.token_file, &tok, err, sizeof err) != 0) {
		cli_say("cannot read the token: %s", err);
		return false;
	}
	if (!cli_token_ok(tok)) {
		cli_say("the token in %s must be printable ASCII without spaces", opt.token_file);
		free(tok);
		return false;
	}
	free(st->token);
	st->token = tok;
	return true;
}

static void finish(struct state *st, int status)
{
	fflush(stdout);
	sse_free(&st->sse);
	free(st->token);
	free(opt.host);
	free(opt.port);
	exit(status);
}

int main(int argc, char **argv)
{
	struct state st = { 0 };
	unsigned failures = 0;

	cli_prog = "spout-sub";
	opts_parse(argc, argv);
	out_init();
	sse_init(&st.sse, opt.last_event_id);
	st.topic = url_single_topic();
	if (opt.timeout_s > 0)
		st.deadline = cli_now_ns() + (int64_t)(opt.timeout_s * (double)CLI_NS_PER_S);
	cli_signals_init(on_signal);

	if (!load_token(&st))
		finish(&st, CLI_EXIT_USAGE);
	for (;;) {
		enum outcome out = attempt(&st);
		long retry_after = -1;
		bool good = st.established && failures == 0;

		switch (out) {
		case OUT_COUNT:
			finish(&st, 0);
			break;
		case OUT_TIMEOUT:
			if (!opt.quiet)
				cli_say("timed out after %g s (--timeout), %llu event(s)", opt.timeout_s,
					(unsigned long long)st.received);
			finish(&st, SUB_EXIT_TIMEOUT);
			break;
		case OUT_SIGNAL:
			finish(&st, SUB_EXIT_SIGNAL);
			break;
		case OUT_OUTPUT:
			cli_say("cannot write to stdout");
			finish(&st, SUB_EXIT_NET);
			break;
		case OUT_BROKEN:
			cli_say("%s:%s: %s", opt.host, opt.port, st.why);
			finish(&st, SUB_EXIT_NET);
			break;
		case OUT_CONNECT_FAILED:
			if (!st.established || opt.no_reconnect) {
				cli_say("cannot connect to spoutd at %s:%s: %s (is spoutd running? set the "
					"address with --host or SPOUT_HTTP)", opt.host, opt.port, st.why);
				finish(&st, SUB_EXIT_NET);
			}
			break;
		case OUT_HTTP_ERROR: {
			int s = st.resp.status;
			bool transient = s == 429 || s == 503 || s == 502 || s == 504;

			if (!st.established || !transient || opt.no_reconnect) {
				cli_say("HTTP %d %s: %s%s", s, st.resp.reason,
					st.why[0] ? st.why : "(no reason given)",
					status_hint(s, st.token != NULL));
				finish(&st, status_exit(s));
			}
			retry_after = st.resp.retry_after_s;
			break;
		}
		case OUT_ENDED:
			failures = 0;
			good = true;
			if (st.auth_expired) {
				char *old = st.token ? cli_xstrdup(st.token) : NULL;
				bool renewed = opt.token_file != NULL && load_token(&st) &&
					       (old == NULL || strcmp(old, st.token) != 0);

				free(old);
				if (!renewed) {
					cli_say("the token expired (spout-auth-expired) and %s; start again "
						"with a new one%s%s", opt.token_file
						? "the token file holds no new one" : "it cannot be renewed",
						st.sse.last_id[0] ? " and --last-event-id " : "",
						st.sse.last_id);
					finish(&st, SUB_EXIT_401);
				}
				if (!opt.quiet)
					cli_say("token expired; reconnecting with the new one from %s",
						opt.token_file);
				continue;   /* at once: nothing is wrong with the broker */
			}
			if (opt.no_reconnect) {
				bool clean = strcmp(st.why, "the stream ended") == 0;

				if (!clean || !opt.quiet)
					cli_say("%s", st.why);
				finish(&st, clean ? 0 : SUB_EXIT_NET);
			}
			break;
		}

		/* Wait, then try again. */
		int64_t delay = backoff_ms(good ? 0 : failures, st.sse.retry_ms, retry_after);
		failures++;
		if (!opt.quiet) {
			char what[700];

			if (out == OUT_HTTP_ERROR)
				snprintf(what, sizeof what, "HTTP %d %s: %s", st.resp.status,
					 st.resp.reason, st.why);
			else
				snprintf(what, sizeof what, "%s%s",
					 out == OUT_CONNECT_FAILED ? "cannot connect: " : "", st.why);
			cli_say("%s; reconnecting in %.1f s%s%s", what, (double)delay / 1000.0,
				st.sse.last_id[0] ? " after event " : "", st.sse.last_id);
		}
		int64_t wake = cli_now_ns() + delay * CLI_NS_PER_MS;
		if (st.deadline != 0 && wake >= st.deadline) {
			cli_sleep_until(st.deadline);
			if (sub_interrupted)
				finish(&st, SUB_EXIT_SIGNAL);
			if (!opt.quiet)
				cli_say("timed out after %g s (--timeout), %llu event(s)", opt.timeout_s,
					(unsigned long long)st.received);
			finish(&st, SUB_EXIT_TIMEOUT);
		}
		while (!sub_interrupted && cli_now_ns() < wake)
			cli_sleep_until(wake);
		if (sub_interrupted)
			finish(&st, SUB_EXIT_SIGNAL);
		if (!load_token(&st) && st.token == NULL)
			finish(&st, SUB_EXIT_401);
	}
}
