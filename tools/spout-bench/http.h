/*
 * http.h - the HTTP/1.1 response parsing that subscribers and HTTP
 * publishers share: finding and reading a response head, and an incremental
 * chunked decoder. Nothing here allocates or does I/O.
 */
#ifndef SPOUT_BENCH_HTTP_H
#define SPOUT_BENCH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the head (through its blank line) in <b>[0..n), or 0 if it is
 * not complete yet. <from>: where new bytes start, minus 3. */
size_t http_head_end(const char *b, size_t n, size_t from);

/* "HTTP/1.x NNN ...": returns NNN, -1 if the status line is malformed. */
int http_head_status(const char *b, size_t n);

/* Value of the first header <name> (any case, without the colon) in head
 * <b>[0..n), leading blanks and trailing CR/blanks removed; NULL if absent. */
const char *http_head_value(const char *b, size_t n, const char *name, size_t *vlen);

/* True if some header <name> contains <token> (any case). */
bool http_head_has(const char *b, size_t n, const char *name, const char *token);

/* Chunked transfer coding (RFC 9112 section 7.1). All zero: before the
 * first chunk-size line. */
struct http_chunked {
	uint64_t left;          /* chunk size being parsed, then bytes left */
	uint8_t state;
	bool digits;            /* a hex digit of the chunk size was seen */
};

typedef void http_sink(void *arg, const char *p, size_t n);

/* Decodes <p>[0..len) and hands each run of chunk data to <sink>. Returns 0
 * when every byte was used and the body goes on, 1 when the body ended (last
 * chunk, trailers and the blank line; *used says how many bytes that took),
 * -1 on a framing error. Input may split anywhere. */
int http_chunked_feed(struct http_chunked *c, const char *p, size_t len, size_t *used,
		      http_sink *sink, void *arg);

/*
 * One HTTP/1.x response, read incrementally: the head into <head> (a buffer
 * of head_cap bytes the caller owns), then the body, which ends by
 * Content-Length, by chunked coding, or (with neither) at the close of the
 * connection. Interim 1xx responses are skipped. The body is not kept.
 */
struct http_resp {
	char *head;
	size_t head_cap, head_len;
	int status;             /* of the final response, once its head is in */
	bool in_body, chunked, to_eof;
	bool close_after;       /* the server will close the connection after it */
	uint64_t body_left;     /* Content-Length bytes still to come */
	struct http_chunked ch;
};

enum {
	HTTP_RESP_BAD_HEAD = -1,    /* malformed status line */
	HTTP_RESP_BIG_HEAD = -2,    /* head larger than head_cap */
	HTTP_RESP_BAD_LENGTH = -3,  /* unparsable Content-Length */
	HTTP_RESP_BAD_CHUNK = -4,   /* broken chunked coding */
};

/* Starts over for the next response (keeps the head buffer). */
void http_resp_reset(struct http_resp *r);
/* Feeds <p>[0..len). Returns 1 when the response is complete (*used bytes
 * were taken), 0 when every byte was taken and more are needed, or an
 * HTTP_RESP_* error. */
int http_resp_feed(struct http_resp *r, const char *p, size_t len, size_t *used);
/* The server closed the connection: true if that ends the response. */
bool http_resp_eof_ends(const struct http_resp *r);
/* Text for an HTTP_RESP_* error. */
const char *http_resp_strerror(int err);
/* Length of the status line in the head (for messages). */
size_t http_resp_status_line(const struct http_resp *r);

#endif
