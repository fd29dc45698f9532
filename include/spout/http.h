/*
 * http.h - HTTP/1.x request head parsing (on top of Debian's http-parser)
 * and the small fixed responses spout sends.
 *
 * The worker accumulates bytes until sp_http_head_end() finds the end of the
 * head, then calls sp_http_parse() once on the complete head: every field
 * then arrives from http-parser in one piece and <req> can point straight
 * into the caller's buffer. Nothing here allocates or keeps state; any
 * thread may call it.
 */
#ifndef SPOUT_HTTP_H
#define SPOUT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spout/topic.h"

#define SP_HTTP_HEAD_MAX 16384  /* request line + headers, hard cap (--max-request-bytes lowers it); past it: 431 */
#define SP_HTTP_URI_MAX 4096    /* request target; past it: 414 */
#define SP_HTTP_TOPICS_MAX 64   /* hard cap; --max-topics is <= this */
#define SP_HTTP_XFF_MAX 8       /* X-Forwarded-For lines; more: 400 */

enum sp_http_method {
	SP_HTTP_GET = 1,
	SP_HTTP_HEAD,
	SP_HTTP_OPTIONS,
	SP_HTTP_POST,           /* POST /publish/<topic> only */
	SP_HTTP_OTHER,          /* any other method: 405 */
};

/* A parsed request head. Pointers refer into the buffer given to
 * sp_http_parse and stay valid as long as it does. Absent headers have
 * NULL pointers and zero lengths. */
struct sp_http_req {
	enum sp_http_method method;
	unsigned short http_major, http_minor;
	bool keep_alive;              /* http-parser's verdict */
	const char *path;             /* raw (not decoded), before '?' */
	size_t path_len;
	const char *query;            /* raw, after '?', without '#fragment' */
	size_t query_len;
	const char *host;
	size_t host_len;
	const char *origin;
	size_t origin_len;
	const char *last_event_id;
	size_t last_event_id_len;
	const char *authorization;
	size_t authorization_len;
	const char *cookie;
	size_t cookie_len;
	const char *expect;           /* Expect (POST /publish) */
	size_t expect_len;
	const char *spout_event;      /* Spout-Event: the published event's type */
	size_t spout_event_len;
	const char *idempotency_key;  /* Idempotency-Key (POST /publish) */
	size_t idempotency_key_len;
	const char *xff[SP_HTTP_XFF_MAX];  /* X-Forwarded-For lines, in order */
	size_t xff_len[SP_HTTP_XFF_MAX];
	unsigned nxff;
	unsigned nheaders;            /* header fields in the head */
	uint64_t content_length;      /* 0 when absent */
	bool chunked_body;            /* Transfer-Encoding: chunked */
};

/* Decoded topics of a subscribe request. */
struct sp_http_topics {
	unsigned n;
	const char *name[SP_HTTP_TOPICS_MAX];   /* point into buf, not NUL-ended */
	uint16_t len[SP_HTTP_TOPICS_MAX];
	char buf[SP_HTTP_HEAD_MAX];
};

/* Look for the blank line ending a request head in <buf>[0..len). Accepts
 * CRLFCRLF and bare LFLF. Returns the head length including the blank line,
 * or 0 if it is not complete yet. */
size_t sp_http_head_end(const char *buf, size_t len);

/* For an incomplete head of <len> bytes: the status to fail with now, or 0
 * to keep reading. 414 if the request line alone is already longer than
 * SP_HTTP_URI_MAX, 431 if the head is already longer than SP_HTTP_HEAD_MAX,
 * 400 if the bytes cannot start an HTTP request (e.g. a TLS ClientHello). */
int sp_http_check_partial(const char *buf, size_t len);

/* Parse the complete head <buf>[0..len) (len as returned by
 * sp_http_head_end). Returns 0 with <req> filled, or an HTTP status (400,
 * 414, 431, 505) with <*reason> set to a short static explanation. */
int sp_http_parse(const char *buf, size_t len, struct sp_http_req *req,
		  const char **reason);

/* Collect the topics of a subscribe request: the one in the path
 * ("/events/<topic>", percent-decoded) and every "topic=" query parameter
 * (percent-decoded, in order; other parameters ignored). Duplicates are
 * kept once. Returns 0, or 400 with <*reason> ("no topic", "too many
 * topics", "malformed percent-encoding", or the topic check's reason).
 * Accepts at most <max_topics> distinct topics. */
int sp_http_parse_topics(const struct sp_http_req *req, unsigned max_topics,
			 struct sp_http_topics *out, const char **reason);

/* The first query parameter called <name>, percent-decoded into <out>
 * (capacity <cap>). Returns its length, -ENOENT if absent, -EINVAL for bad
 * percent-encoding, -ENOSPC if it does not fit. */
ssize_t sp_http_query_param(const struct sp_http_req *req, const char *name, char *out,
			    size_t cap);

/* Reason phrase for <status> ("OK", "Not Found", ...). */
const char *sp_http_status_text(int status);

/* Format a complete, self-delimiting response into <out>:
 *   "HTTP/1.1 <status> <text>\r\n"
 *   "Content-Type: <content_type>\r\n"   (text/plain; charset=utf-8 if NULL)
 *   "Content-Length: <body_len>\r\n"
 *   "Connection: close\r\n"
 *   <extra_headers>                      (each line CRLF-terminated; may be NULL)
 *   "\r\n" <body>
 * When <head_only> (a HEAD request) the body is not copied but
 * Content-Length still reports it. Returns the length, or -ENOSPC. */
ssize_t sp_http_format_response(char *out, size_t cap, int status,
				const char *content_type,
				const char *extra_headers, const char *body,
				size_t body_len, bool head_only);

#endif
