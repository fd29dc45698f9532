/*
 * net.c - addresses and sockets for spout-pub and spout-sub: HOST:PORT
 * parsing, connecting with a deadline, sending with a deadline.
 * Single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_parse_hostport(const char *spec, const char *def_host, const char *def_port,
		       bool allow_url, char **host, char **port, char *err, size_t errlen)
{
	const char *h, *p = NULL;
	size_t hl, sl;

	if (allow_url && strncmp(spec, "http://", 7) == 0)
		spec += 7;
	else if (allow_url && strncmp(spec, "https://", 8) == 0) {
		snprintf(err, errlen, "https is not supported: spoutd speaks plain HTTP "
			 "(put a TLS proxy in front and connect to spoutd behind it)");
		return -EINVAL;
	}
	sl = strlen(spec);
	if (allow_url && sl > 0 && spec[sl - 1] == '/')
		sl--;
	if (sl > 0 && spec[0] == '[') {
		const char *close = memchr(spec, ']', sl);

		if (close == NULL) {
			snprintf(err, errlen, "'%s': missing ']' after the IPv6 address", spec);
			return -EINVAL;
		}
		h = spec + 1;
		hl = (size_t)(close - h);
		if (close + 1 < spec + sl) {
			if (close[1] != ':') {
				snprintf(err, errlen, "'%s': expected ':PORT' after ']'", spec);
				return -EINVAL;
			}
			p = close + 2;
		}
	} else {
		const char *colon = memchr(spec, ':', sl);

		/* More than one colon and no brackets: a bare IPv6 address. */
		if (colon != NULL && memchr(colon + 1, ':', sl - (size_t)(colon + 1 - spec)))
			colon = NULL;
		h = spec;
		hl = colon ? (size_t)(colon - spec) : sl;
		if (colon)
			p = colon + 1;
	}
	size_t pl = p ? sl - (size_t)(p - spec) : 0;
	if (p != NULL) {
		uint64_t v;
		char tmp[8];

		if (pl == 0 || pl >= sizeof tmp) {
			snprintf(err, errlen, "'%.*s': bad port", (int)sl, spec);
			return -EINVAL;
		}
		memcpy(tmp, p, pl);
		tmp[pl] = '\0';
		if (cli_parse_u64(tmp, 1, 65535, &v) != 0) {
			snprintf(err, errlen, "'%.*s': port must be a number in 1..65535", (int)sl,
				 spec);
			return -EINVAL;
		}
	}
	if (memchr(h, '/', hl) != NULL) {
		snprintf(err, errlen, "'%.*s': expected HOST:PORT, not a URL with a path", (int)sl,
			 spec);
		return -EINVAL;
	}
	if (hl == 0) {
		*host = cli_xstrdup(def_host);
	} else if ((hl == 7 && memcmp(h, "0.0.0.0", 7) == 0) || (hl == 2 && memcmp(h, "::", 2) == 0)) {
		/* spoutd's listen address (SPOUT_PUB=0.0.0.0:7400): the
		 * broker on this machine. */
		*host = cli_xstrdup(hl == 2 ? "::1" : "127.0.0.1");
	} else {
		*host = cli_xstrndup(h, hl);
	}
	*port = p ? cli_xstrndup(p, pl) : cli_xstrdup(def_port);
	return 0;
}

/* The mask waits run with: the caller's, SIGINT and SIGTERM unblocked. */
static sigset_t wait_mask;
static bool have_wait_mask;

void cli_signals_init(void (*handler)(int))
{
	struct sigaction sa = { .sa_handler = handler };
	sigset_t block;

	/* No SA_RESTART: a wait returns EINTR and the loop sees the flag. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &wait_mask);
	sigdelset(&wait_mask, SIGINT);
	sigdelset(&wait_mask, SIGTERM);
	have_wait_mask = true;
}

int cli_poll(struct pollfd *fds, unsigned long nfds, int timeout_ms)
{
	struct timespec ts = { .tv_sec = timeout_ms / 1000,
			       .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };

	return ppoll(fds, (nfds_t)nfds, timeout_ms < 0 ? NULL : &ts,
		     have_wait_mask ? &wait_mask : NULL);
}

int cli_poll_ms(int64_t deadline_ns, int cap_ms)
{
	if (deadline_ns == 0)
		return cap_ms;
	int64_t left = deadline_ns - cli_now_ns();

	if (left <= 0)
		return 0;
	/* Round up: waking a little early would spin until the deadline. */
	int64_t ms = (left + CLI_NS_PER_MS - 1) / CLI_NS_PER_MS;
	if (cap_ms >= 0 && ms > cap_ms)
		ms = cap_ms;
	return ms > 1000000 ? 1000000 : (int)ms;
}

/* One non-blocking connect to <ai>, waited for until <deadline_ns>.
 * Returns the socket or -errno. */
static int connect_one(const struct addrinfo *ai, int64_t deadline_ns)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	int one = 1;

	if (fd == -1)
		return -errno;
	/* Commands and requests are small and each waits for an answer:
	 * Nagle would hold the last one back for a round trip. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		int e = errno;

		close(fd);
		return -e;
	}
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int n = cli_poll(&pfd, 1, cli_poll_ms(deadline_ns, -1));

		if (n == -1 && errno == EINTR) {
			close(fd);
			return -EINTR;
		}
		if (n == -1) {
			int e = errno;

			close(fd);
			return -e;
		}
		if (n == 0) {
			close(fd);
			return -ETIMEDOUT;
		}
		break;
	}
	int soerr = 0;
	socklen_t len = sizeof soerr;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr != 0) {
		close(fd);
		return -soerr;
	}
	return fd;
}

int cli_connect(const char *host, const char *port, int64_t deadline_ns,
		char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	int rc = getaddrinfo(host, port, &hints, &res);

	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	}
	int fd = -ECONNREFUSED;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = connect_one(ai, deadline_ns);
		if (fd >= 0 || fd == -ETIMEDOUT || fd == -EINTR)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(err, errlen, "%s", fd == -ETIMEDOUT ? "timed out" : strerror(-fd));
	return fd;
}

int cli_send_all(int fd, const void *buf, size_t len, int64_t deadline_ns)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno != EAGAIN)
			return -errno;
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int r = cli_poll(&pfd, 1, cli_poll_ms(deadline_ns, -1));
		if (r == 0)
			return -ETIMEDOUT;
		if (r == -1)
			return -errno;   /* EINTR included: the caller sees its flag */
	}
	return 0;
}

void cli_sleep_until(int64_t deadline_ns)
{
	if (deadline_ns - cli_now_ns() > 0)
		cli_poll(NULL, 0, cli_poll_ms(deadline_ns, -1));   /* EINTR: see the flags */
}
