/*
 * pub.h - spout-pub, the publisher command line: one event from the
 * command line, or a stream of them from a file or stdin, sent over
 * spoutd's publisher line protocol (docs/protocol.md 1) with a window of
 * commands in flight and every reply matched to its input line.
 *
 * Single-threaded: one poll() loop over the input and the socket.
 *
 * Module map (docs/man/spout-pub.1 has the user's view):
 *   main.c      set-up, AUTH, the single-event mode, exit statuses
 *   opts.c      command line and environment
 *   input.c     reading lines from a file or stdin without blocking the loop
 *   record.c    a line (JSON Lines or plain) -> an event -> PUB/EVENT bytes
 *   conn.c      the connection: buffered writes, reply lines
 *   stream.c    the pipelined loop: window, pacing, replies to lines
 *   progress.c  progress bar or counter on a terminal, the summary
 *   ../clilib/  helpers shared with spout-sub
 */
#ifndef SPOUT_PUB_H
#define SPOUT_PUB_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"

/* Exit statuses (docs/man/spout-pub.1, EXIT STATUS). */
#define PUB_EXIT_FAILED 1     /* the broker refused an event, or a line was invalid */
#define PUB_EXIT_CONN 3       /* cannot connect, connection lost, no reply in time */
#define PUB_EXIT_AUTH 4       /* token refused, or the broker wants one */
#define PUB_EXIT_SIGNAL 130   /* interrupted (SIGINT/SIGTERM) */

#define PUB_DEFAULT_HOST "127.0.0.1"
#define PUB_DEFAULT_PORT "7400"
#define PUB_WINDOW_MAX 65536
#define PUB_LINE_MAX (64u << 20)    /* longest input line accepted */
#define PUB_REPLY_MAX 65536         /* longest reply line accepted */
#define PUB_PUB_DATA_MAX 4096       /* longer data goes as EVENT (see record.c) */

enum pub_format { FORMAT_AUTO, FORMAT_JSONL, FORMAT_PLAIN };

struct pub_opts {
	const char *host_spec;       /* --host, else SPOUT_PUB, else the default */
	char *host, *port;           /* parsed from host_spec */
	char *token;                 /* --token / --token-file / SPOUT_PUB_TOKEN[_FILE] */
	const char *token_from;      /* where the token came from, for messages */
	const char *topic;           /* --topic: plain lines' topic, JSON default */
	const char *event_type;      /* --event: type for events without one */
	const char *file;            /* -f; NULL or "-" = stdin */
	enum pub_format format;
	double rate;                 /* events/s; 0 = as fast as the window allows */
	unsigned long window;        /* commands in flight */
	double timeout_s;            /* connect, and the longest wait for a reply */
	double keepalive_s;          /* PING a quiet stream this often; 0 = never */
	bool quiet, stop_on_error, print_ids, progress_forced;
	/* single-event mode: spout-pub TOPIC DATA */
	const char *one_topic, *one_data;
};

extern struct pub_opts opt;

/* Set by the SIGINT/SIGTERM handler (main.c); the loops stop reading input. */
extern volatile sig_atomic_t pub_interrupted;

/* opts.c */
void opts_parse(int argc, char **argv);

/* ---- input.c ---- */
struct input {
	int fd;
	const char *name;            /* "stdin" or the path, for messages */
	char *buf;
	size_t cap, start, end;      /* unread bytes are buf[start..end) */
	bool eof;
	uint64_t size;               /* regular file: its size; else 0 */
	uint64_t consumed;           /* bytes handed out as lines so far */
	uint64_t lineno;             /* number of the last line handed out */
};

int input_open(struct input *in, const char *path);
/* Reads what the fd has (once). Returns bytes read, 0 at EOF, -errno. */
ssize_t input_fill(struct input *in);
/* The next complete line (without its "\n"; a last line without one
 * counts at EOF). Returns 1 and sets *line and *len, 0 if more input is
 * needed (or none is left: see in->eof), -E2BIG past PUB_LINE_MAX. */
int input_next_line(struct input *in, const char **line, size_t *len);
void input_close(struct input *in);

/* ---- record.c ---- */
struct record {
	const char *topic;
	const char *type;            /* NULL: no event type */
	const char *data;
	size_t data_len;
	void *json;                  /* owned jansson values to free, or NULL */
	char *dumped;                /* owned compact JSON text of data, or NULL */
};

/*
 * Turns input <line> into <rec>: JSON Lines (an object with "topic",
 * "event", "data") or, with FORMAT_PLAIN, the line itself as the data of
 * --topic. Returns 1 with <rec> filled, 0 for a blank line (skipped), or
 * -EINVAL with the reason in <why>. Free with record_free().
 */
int record_parse(const char *line, size_t len, enum pub_format fmt, struct record *rec,
		 char *why, size_t whylen);
void record_free(struct record *rec);

/* Checks what the protocol needs for framing (docs/protocol.md 1.1):
 * a topic or type without spaces or control bytes. The broker judges the
 * rest and answers ERR with its reason. Returns NULL or the reason. */
const char *record_check(const struct record *rec);

/* Appends the command for <rec> to <buf>: "PUB topic data\n", or
 * "EVENT topic type nbytes\n<payload>\n" when the event has a type or its
 * data has a CR, LF or NUL, or is long. */
void record_encode(const struct record *rec, char **buf, size_t *len, size_t *cap);

/* ---- conn.c ---- */
struct conn {
	int fd;
	char *out;                   /* bytes not yet written */
	size_t out_len, out_off, out_cap;
	char in[PUB_REPLY_MAX + 1];  /* reply bytes not yet split into lines */
	size_t in_len;
	bool eof;
};

/* Connects to opt.host:opt.port (bounded by --timeout); exits with
 * PUB_EXIT_CONN and a clear message if it cannot. */
void conn_open(struct conn *c);
void conn_close(struct conn *c);
void conn_append(struct conn *c, const char *data, size_t len);
/* Writes what the socket takes now. Returns 0 or -errno. */
int conn_flush(struct conn *c);
/* Reads what the socket has now. Returns bytes read (0 = nothing now,
 * c->eof set at EOF) or -errno. */
ssize_t conn_fill(struct conn *c);
/* The next complete reply line, NUL-terminated, without "\r\n". Valid until
 * the next conn_* call. Returns NULL if none is complete; exits with
 * PUB_EXIT_CONN on a reply longer than PUB_REPLY_MAX. */
char *conn_reply(struct conn *c);
/* Sends <cmd> and waits (bounded by --timeout) for its reply line, which
 * is copied to <reply>. Returns 0, or exits with PUB_EXIT_CONN. */
void conn_roundtrip(struct conn *c, const char *cmd, size_t len, char *reply,
		    size_t replylen);

/* Parses "OK <id>". Returns 0 and *id, or -EINVAL. */
int reply_ok_id(const char *reply, uint64_t *id);

/* ---- stream.c ---- */
struct tally {
	uint64_t lines;              /* input lines read (blank ones included) */
	uint64_t sent, ok, refused;  /* events sent; OK and ERR replies to them */
	uint64_t invalid;            /* lines not sent: unreadable or unframeable */
	uint64_t done_bytes;         /* input bytes up to the last answered line */
	int64_t t0;
};

/* Publishes every line of <in> over <c>. Returns the exit status. */
int stream_run(struct conn *c, struct input *in);

/* ---- progress.c ---- */
/* Decides whether to draw (stderr a terminal, not --quiet) for an input of
 * <size> bytes (0 = unknown: a counter instead of a bar). */
void progress_init(uint64_t size);
/* Redraws, at most 10 times a second unless <force>. Returns how long
 * the caller may wait before calling again, in ms (-1: no limit, nothing
 * is drawn). */
int progress_update(const struct tally *t, bool force);
/* Erases the progress line so a message can be printed. */
void progress_clear(void);
/* The end-of-stream summary on stderr (unless --quiet). */
void progress_summary(const struct tally *t, const char *ending);

#endif
