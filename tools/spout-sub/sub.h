/*
 * sub.h - spout-sub, the subscriber command line: one SSE stream over
 * HTTP/1.1 (chunked or not) from spoutd, printed as it arrives, resumed
 * with Last-Event-ID after the connection drops.
 *
 * Single-threaded, blocking in poll() on one socket at a time.
 *
 * Module map (docs/man/spout-sub.1 has the user's view):
 *   main.c   connect, read, reconnect with back-off; exit statuses
 *   opts.c   command line and environment
 *   url.c    the request: topics percent-encoded into the query, headers
 *   http.c   response head, body framing (chunked, length, until close)
 *   sse.c    the WHATWG event-stream parser
 *   out.c    printing events: JSON Lines, or readable on a terminal
 *   text.c   UTF-8 made safe for JSON strings and for terminals
 *   ../clilib/  helpers shared with spout-pub
 */
#ifndef SPOUT_SUB_H
#define SPOUT_SUB_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"

/* Exit statuses (docs/man/spout-sub.1, EXIT STATUS). */
#define SUB_EXIT_NET 1        /* cannot connect, connection lost, not SSE */
#define SUB_EXIT_REFUSED 3    /* other HTTP error: 400 bad topic, 404, 5xx ... */
#define SUB_EXIT_401 4        /* no valid token, or it expired */
#define SUB_EXIT_403 5        /* the token does not grant a topic */
#define SUB_EXIT_429 6        /* too many connections from this address */
#define SUB_EXIT_503 7        /* broker full, draining or starting */
#define SUB_EXIT_TIMEOUT 124  /* --timeout passed (as timeout(1)) */
#define SUB_EXIT_SIGNAL 130

#define SUB_DEFAULT_HOST "127.0.0.1"
#define SUB_DEFAULT_PORT "8080"
#define SUB_RETRY_DEFAULT_MS 3000   /* until the stream sends retry: */
#define SUB_BACKOFF_MAX_MS 30000
#define SUB_HEAD_MAX 16384          /* response head */
#define SUB_EVENT_MAX (16u << 20)   /* data of one event */
#define SUB_ID_MAX 1024             /* an id longer than this is not resumable */

struct sub_opts {
	const char **topics;
	size_t ntopics;
	const char *host_spec;
	char *host, *port;
	const char *path;            /* --path, default /events */
	const char *token_arg;       /* --token or SPOUT_SUB_TOKEN */
	const char *token_file;      /* --token-file or SPOUT_SUB_TOKEN_FILE; re-read per connect */
	const char *token_from;
	const char *last_event_id;   /* --last-event-id */
	uint64_t count;              /* 0 = no limit */
	double timeout_s;            /* 0 = none */
	double idle_s;               /* silence (not even a heartbeat) before reconnecting */
	double connect_timeout_s;
	bool json, text, no_reconnect, quiet, verbose;
};

extern struct sub_opts opt;
extern volatile sig_atomic_t sub_interrupted;

/* opts.c */
void opts_parse(int argc, char **argv);

/* url.c */
/* The request for one connection (malloc'd): GET with every topic
 * percent-encoded, Host, Accept, Authorization when <token>, and
 * Last-Event-ID when <last_id> is non-empty. */
char *url_request(const char *token, const char *last_id, size_t *len);
/* Percent-encodes <s> for a query value: every byte but A-Z a-z 0-9
 * - . _ ~ becomes %XX. Returns a malloc'd string. */
char *url_encode(const char *s);
/* The topic if the subscription is one literal topic (no * or >
 * segment), else NULL: then every event's topic is known. */
const char *url_single_topic(void);

/* ---- http.c ---- */
struct http_resp {
	int status;
	int minor;                   /* HTTP/1.<minor> */
	char reason[64];
	bool chunked;
	int64_t content_length;      /* -1: not given */
	char content_type[128];
	long retry_after_s;          /* -1: not given */
};

/*
 * Reads the response head from <fd> into buf[0..cap) until <deadline_ns>.
 * Returns the head's length (the body starts there; *got says how many
 * bytes were read in all), or -ETIMEDOUT, -EPROTO (with <err>), -E2BIG,
 * -ECONNRESET/-errno, or -EPIPE for a close before the head.
 */
int http_read_head(int fd, char *buf, size_t cap, size_t *got, int64_t deadline_ns,
		   struct http_resp *r, char *err, size_t errlen);

enum body_mode { BODY_UNTIL_CLOSE, BODY_LENGTH, BODY_CHUNKED };

struct body {
	enum body_mode mode;
	uint64_t left;               /* LENGTH: bytes to go; CHUNKED: of this chunk */
	int state;                   /* chunked decoder state (http.c) */
	char line[256];              /* chunk-size or trailer line so far */
	size_t line_len;
	bool done;                   /* the body ended inside the framing */
};

void body_init(struct body *b, const struct http_resp *r);
/* Decodes <n> input bytes, handing the payload to <emit>. Returns 0, or
 * -EPROTO on broken framing. Bytes after the end are ignored. */
int body_feed(struct body *b, const char *in, size_t n,
	      int (*emit)(void *ctx, const char *p, size_t n), void *ctx);

/* Reads and decodes a short error body (at most <cap>-1 bytes kept) of
 * response <r> whose first <have> bytes are at <buf>, until <deadline_ns>.
 * The result is NUL-terminated in <out>, line breaks made spaces. */
void http_error_body(int fd, const struct http_resp *r, const char *buf, size_t have,
		     int64_t deadline_ns, char *out, size_t cap);

/* ---- sse.c ---- */
struct sse_event {
	const char *type;            /* "message" unless an event: field said */
	const char *data;            /* NUL-terminated; data_len without it */
	size_t data_len;
	const char *id;              /* the last event ID (WHATWG: persists) */
	bool has_id;                 /* this event had its own id: field */
};

struct sse {
	char *line;                  /* the line being read */
	size_t line_len, line_cap;
	char *data;                  /* data lines, each followed by \n */
	size_t data_len, data_cap;
	char type[128];
	bool type_set, has_id, after_cr, bom_checked;
	char last_id[SUB_ID_MAX + 1];
	long retry_ms;               /* last retry: value, -1 if none yet */
};

void sse_init(struct sse *s, const char *last_id);
/* A new connection: a partial line or event of the old one is dropped;
 * the last event ID and the retry value stay (WHATWG). */
void sse_restart(struct sse *s);
/* Parses <n> bytes. Calls <on_event> for each complete event; a non-zero
 * return from it stops parsing and is returned. Returns 0, or -E2BIG for
 * a line or event larger than SUB_EVENT_MAX. */
int sse_feed(struct sse *s, const char *p, size_t n,
	     int (*on_event)(void *ctx, const struct sse_event *ev), void *ctx);
void sse_free(struct sse *s);

/* ---- out.c ---- */
/* Chooses the format: JSON Lines with --json or when stdout is not a
 * terminal (unless --text), readable text otherwise (colour unless
 * NO_COLOR or TERM=dumb). */
void out_init(void);
/* Prints one event and flushes, so a pipe sees it at once. Returns 0 or
 * -EIO when stdout cannot be written. */
int out_event(const struct sse_event *ev, const char *topic);

/* ---- text.c ---- */
/* <s>[0..n) as a JSON string with its quotes. Invalid UTF-8 becomes
 * U+FFFD, as a browser's EventSource decodes it. */
void text_json(FILE *f, const char *s, size_t n);
/* <s>[0..n) for a terminal: invalid UTF-8 becomes U+FFFD and control
 * characters (which could move the cursor or retitle the window) are
 * shown as ^X or <U+XXXX>; each line break is followed by <indent>. */
void text_term(FILE *f, const char *s, size_t n, const char *indent);

#endif
