/*
 * cli.h - helpers shared by the command-line clients spout-pub and
 * spout-sub: messages and exits, the clock, allocation, number and address
 * parsing, connecting with a deadline, token files.
 *
 * Both tools are single-threaded; nothing here locks.
 *
 *   util.c   messages, clock, allocation, number parsing, token files
 *   net.c    HOST:PORT parsing, connect with a deadline, poll helpers
 */
#ifndef SPOUT_CLI_H
#define SPOUT_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pollfd;

#define CLI_NS_PER_S 1000000000LL
#define CLI_NS_PER_MS 1000000LL

#define CLI_TOKEN_MAX 16384   /* a token file longer than this is not a token */

/* Exit statuses both tools share; each tool adds its own above these. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_USAGE 2

/* Name used as the prefix of every message ("spout-pub"). Set by main. */
extern const char *cli_prog;

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t cli_now_ns(void);

/* "<prog>: <message>\n" on stderr. */
void cli_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cli_say(), then exit(<status>). */
void cli_die(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

/* Allocation that exits (status 1) rather than return NULL: these tools
 * hold one connection's worth of buffers, and running out is fatal. */
void *cli_xmalloc(size_t size);
void *cli_xrealloc(void *p, size_t size);
char *cli_xstrdup(const char *s);
char *cli_xstrndup(const char *s, size_t n);

/* Parses a decimal integer in [min, max] (no sign, no spaces). Returns 0,
 * or -EINVAL with *out untouched. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parses a non-negative decimal number ("0.5", "10") no larger than <max>.
 * Returns 0 or -EINVAL. */
int cli_parse_number(const char *s, double max, double *out);

/*
 * Reads a token from the first line of <path> (one trailing "\n" or "\r\n"
 * is not part of it). On success returns 0 and a malloc'd string in *out.
 * On failure returns a negative errno and writes a sentence to <err>:
 * -ENOENT and the like from open/read, -EINVAL for an empty first line or
 * a file longer than CLI_TOKEN_MAX.
 */
int cli_read_token_file(const char *path, char **out, char *err, size_t errlen);

/* True if <s> is usable as a bearer or publisher token on one line of a
 * protocol: 1..CLI_TOKEN_MAX bytes, printable ASCII, no space. */
bool cli_token_ok(const char *s);

/*
 * Splits "HOST:PORT", "[V6]:PORT", "HOST" or ":PORT" (an optional
 * "http://" prefix and a trailing "/" are allowed when <allow_url>) into
 * malloc'd *host and *port, filling in <def_host> and <def_port> for the
 * parts left out. A wildcard host ("0.0.0.0", "::", as in spoutd's own
 * listen address variables) means this machine: it is replaced by the
 * loopback address. Returns 0, or -EINVAL with a sentence in <err>.
 */
int cli_parse_hostport(const char *spec, const char *def_host, const char *def_port,
		       bool allow_url, char **host, char **port, char *err, size_t errlen);

/*
 * Resolves <host>/<port> and connects to the first address that answers,
 * each try bounded by <deadline_ns> (cli_now_ns() clock). Returns a
 * connected, non-blocking, close-on-exec TCP socket with TCP_NODELAY, or
 * -errno with a sentence in <err> ("Connection refused", "timed out",
 * the resolver's message).
 */
int cli_connect(const char *host, const char *port, int64_t deadline_ns,
		char *err, size_t errlen);

/* Milliseconds from now until <deadline_ns>, for poll(): 0 if it has
 * passed, -1 (wait forever) if <deadline_ns> is 0, capped at <cap_ms>
 * when <cap_ms> >= 0. */
int cli_poll_ms(int64_t deadline_ns, int cap_ms);

/*
 * Makes SIGINT and SIGTERM call <handler> and interrupt waits reliably:
 * they are blocked except inside cli_poll() and cli_sleep_until(), which
 * unblock them atomically (ppoll), so a signal that arrives between a
 * check of the handler's flag and the wait cannot be missed. Without this
 * call those waits are plain ones.
 */
void cli_signals_init(void (*handler)(int));

/* poll() that is interrupted (-1, EINTR) by the signals above. */
int cli_poll(struct pollfd *fds, unsigned long nfds, int timeout_ms);

/* Writes all of <buf> to non-blocking socket <fd>, waiting for it to take
 * the bytes until <deadline_ns>. Returns 0, -ETIMEDOUT or -errno. */
int cli_send_all(int fd, const void *buf, size_t len, int64_t deadline_ns);

/* Sleeps until <deadline_ns> or until one of the signals above arrives. */
void cli_sleep_until(int64_t deadline_ns);

#endif
