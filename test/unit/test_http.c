/*
 * test_http.c - request head framing, parsing, topic extraction and the
 * fixed responses of src/http.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "spout/http.h"
#include "spout/ptrie.h"
#include "sanitizers.h"

/* Criterion runs each test in a re-executed copy of this binary, where a
 * PIE's addresses differ, so parameters must not hold pointers into static
 * data: pass indices into a file-scope table instead. */
#define INDEX_PARAMS(table)                                                  \
	do {                                                                 \
		static size_t idx_[sizeof(table) / sizeof((table)[0])];      \
		for (size_t i_ = 0; i_ < sizeof(idx_) / sizeof(idx_[0]); i_++) \
			idx_[i_] = i_;                                       \
		return cr_make_param_array(size_t, idx_,                     \
					   sizeof(idx_) / sizeof(idx_[0]));  \
	} while (0)

#define CRLF "\r\n"

/* Frame <raw> with sp_http_head_end (which must find the whole string) and
 * parse it. */
static int parse_whole(const char *raw, size_t len, struct sp_http_req *req,
		       const char **reason)
{
	cr_assert_eq(sp_http_head_end(raw, len), len,
		     "head_end did not frame %.60s", raw);
	*reason = NULL;
	return sp_http_parse(raw, len, req, reason);
}

/* Compare a (pointer, length) field with a C string; NULL means absent. */
static void expect_field(const char *what, const char *p, size_t n,
			 const char *want)
{
	if (want == NULL) {
		cr_expect_null(p, "%s: expected absent", what);
		cr_expect_eq(n, 0, "%s: absent but len %zu", what, n);
		return;
	}
	cr_assert_not_null(p, "%s: expected \"%s\"", what, want);
	cr_expect(n == strlen(want) && memcmp(p, want, n) == 0,
		  "%s: got \"%.*s\", want \"%s\"", what, (int)n, p, want);
}

/* Topics joined with '|', for table comparisons. */
static void join_topics(const struct sp_http_topics *t, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < t->n; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%.*s",
				      i ? "|" : "", (int)t->len[i],
				      t->name[i]);
}

/* ---- good requests ---------------------------------------------------- */

struct good_case {
	const char *raw;
	enum sp_http_method method;
	unsigned short major, minor;
	bool keep_alive;
	const char *path;
	const char *query;   /* NULL: absent */
	const char *host;    /* NULL: absent */
	const char *topics;  /* '|'-joined, NULL: not a subscribe request */
};

static const struct good_case good_cases[] = {
	{ "GET /events/a HTTP/1.1" CRLF "Host: x" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/a", NULL, "x", "a" },
	{ "GET /events/a.b HTTP/1.0" CRLF CRLF,
	  SP_HTTP_GET, 1, 0, false, "/events/a.b", NULL, NULL,
	  "a.b" },
	{ "GET /events?topic=a&topic=b.c HTTP/1.1" CRLF
	  "Host: h:8080" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events", "topic=a&topic=b.c",
	  "h:8080", "a|b.c" },
	/* path topic first, then query order; dupes (also after
	 * decoding) kept once; other params ignored */
	{ "GET /events/a?x=1&topic=b&&topic=a&topic=%62&topic=c#frag"
	  " HTTP/1.1" CRLF "Host: x" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/a",
	  "x=1&topic=b&&topic=a&topic=%62&topic=c", "x", "a|b|c" },
	{ "GET /events/%41%3Ab%7e HTTP/1.1" CRLF "Host: x" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/%41%3Ab%7e", NULL, "x",
	  "A:b~" },
	/* '+' is a topic character, not a space */
	{ "GET /events/a+b?topic=c%2Bd HTTP/1.1" CRLF "Host: x" CRLF
	  CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/a+b", "topic=c%2Bd", "x",
	  "a+b|c+d" },
	/* patterns: '*' one segment, '>' the rest (%3E decodes to '>') */
	{ "GET /events/metrics.%3E?topic=orders.*.created HTTP/1.1" CRLF "Host: x" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/metrics.%3E", "topic=orders.*.created", "x",
	  "metrics.>|orders.*.created" },
	/* name must be exactly "topic" */
	{ "GET /events/a?topics=b&Topic=c&xtopic=d HTTP/1.1" CRLF
	  "Host: x" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/a",
	  "topics=b&Topic=c&xtopic=d", "x", "a" },
	{ "GET /events/a HTTP/1.1\nHost: x\n\n",
	  SP_HTTP_GET, 1, 1, true, "/events/a", NULL, "x", "a" },
	{ "GET /events/a HTTP/1.1\r\nHost: x\n\r\n",
	  SP_HTTP_GET, 1, 1, true, "/events/a", NULL, "x", "a" },
	{ "GET /events/a HTTP/1.1\nHost: x\r\n\n",
	  SP_HTTP_GET, 1, 1, true, "/events/a", NULL, "x", "a" },
	/* RFC 7230 3.5: empty lines before the request line */
	{ CRLF "GET /events/a HTTP/1.1" CRLF "Host: x" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/a", NULL, "x", "a" },
	{ "HEAD /events/a HTTP/1.1" CRLF "Host: x" CRLF CRLF,
	  SP_HTTP_HEAD, 1, 1, true, "/events/a", NULL, "x", "a" },
	{ "OPTIONS /events/a HTTP/1.1" CRLF "Host: x" CRLF
	  "Origin: https://app.example" CRLF
	  "Access-Control-Request-Method: GET" CRLF CRLF,
	  SP_HTTP_OPTIONS, 1, 1, true, "/events/a", NULL, "x", "a" },
	/* other methods parse; the caller answers 405 */
	{ "DELETE /events/a HTTP/1.1" CRLF "Host: x" CRLF CRLF,
	  SP_HTTP_OTHER, 1, 1, true, "/events/a", NULL, "x", NULL },
	{ "POST /publish HTTP/1.1" CRLF "Host: x" CRLF
	  "Content-Length: 5" CRLF CRLF,
	  SP_HTTP_POST, 1, 1, true, "/publish", NULL, "x", NULL },
	{ "GET /metrics?fmt=prom HTTP/1.1" CRLF "Host: x" CRLF
	  "Connection: close" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, false, "/metrics", "fmt=prom", "x",
	  NULL },
	{ "GET / HTTP/1.0" CRLF "Connection: keep-alive" CRLF CRLF,
	  SP_HTTP_GET, 1, 0, true, "/", NULL, NULL, NULL },
	/* an empty query is present, and empty */
	{ "GET /events/a? HTTP/1.1" CRLF "Host: x" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/a", "", "x", "a" },
	/* absolute-form (RFC 7230 5.3.2): path and query taken from
	 * the URL, host stays the Host header */
	{ "GET http://example.com:8080/events/a?topic=b#f HTTP/1.1"
	  CRLF "Host: example.com:8080" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/a", "topic=b",
	  "example.com:8080", "a|b" },
	/* an empty Host is legal (RFC 7230 5.4) and present */
	{ "GET /events/a HTTP/1.1" CRLF "Host:" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/a", NULL, "", "a" },
	{ "GET /events/a HTTP/1.1" CRLF "Host: [::1]:80  " CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/a", NULL, "[::1]:80",
	  "a" },
	/* Upgrade stops http-parser after the head; still a GET */
	{ "GET /events/a HTTP/1.1" CRLF "Host: x" CRLF
	  "Upgrade: websocket" CRLF "Connection: Upgrade" CRLF CRLF,
	  SP_HTTP_GET, 1, 1, true, "/events/a", NULL, "x", "a" },
};

ParameterizedTestParameters(http, good)
{
	INDEX_PARAMS(good_cases);
}

ParameterizedTest(size_t *i, http, good)
{
	const struct good_case *c = &good_cases[*i];
	struct sp_http_req req;
	const char *reason;
	size_t len = strlen(c->raw);

	int rc = parse_whole(c->raw, len, &req, &reason);
	cr_assert_eq(rc, 0, "%.60s: status %d (%s)", c->raw, rc,
		     reason ? reason : "-");
	cr_expect_eq(req.method, c->method);
	cr_expect_eq(req.http_major, c->major);
	cr_expect_eq(req.http_minor, c->minor);
	cr_expect_eq(req.keep_alive, c->keep_alive, "%.60s: keep_alive",
		     c->raw);
	expect_field("path", req.path, req.path_len, c->path);
	expect_field("query", req.query, req.query_len, c->query);
	expect_field("host", req.host, req.host_len, c->host);
	/* pointers refer into the caller's buffer */
	cr_expect(req.path >= c->raw &&
		  req.path + req.path_len <= c->raw + len);

	if (c->topics == NULL)
		return;
	struct sp_http_topics *t = malloc(sizeof(*t));
	cr_assert_not_null(t);
	rc = sp_http_parse_topics(&req, 8, t, &reason);
	cr_assert_eq(rc, 0, "%.60s: topics status %d (%s)", c->raw, rc,
		     rc ? reason : "-");
	char got[512];
	join_topics(t, got, sizeof(got));
	cr_expect_str_eq(got, c->topics);
	free(t);
}

/* ---- bad requests ----------------------------------------------------- */

enum stage { PARSE, TOPICS };

struct bad_case {
	const char *raw;
	size_t raw_len;      /* 0: strlen(raw); for bytes with NULs */
	enum stage stage;
	int status;
	const char *reason;  /* expected substring of the reason */
};

static const struct bad_case bad_cases[] = {
	/* TLS ClientHello start, then something head_end frames */
	{ "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n\n", 13,
	  PARSE, 400, "" },
	{ "hello world" CRLF CRLF, 0, PARSE, 400, "" },
	{ "get /events/a HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  PARSE, 400, "" },
	{ "BREW /pot HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, PARSE,
	  400, "method" },
	{ "GET /events/a HTTP/1.1" CRLF CRLF, 0, PARSE, 400,
	  "missing Host header" },
	{ "GET /events/a HTTP/1.1" CRLF "X-Host: x" CRLF CRLF, 0,
	  PARSE, 400, "missing Host header" },
	{ "GET /events/a HTTP/2.0" CRLF "Host: x" CRLF CRLF, 0, PARSE,
	  505, "version" },
	/* 505 wins over header errors */
	{ "GET /events/a HTTP/3.0" CRLF "Host: x" CRLF "Host: y" CRLF
	  CRLF, 0, PARSE, 505, "version" },
	{ "GET /events/a HTTP/2.0" CRLF CRLF, 0, PARSE, 505,
	  "version" },
	{ "PRI * HTTP/2.0" CRLF CRLF "SM" CRLF CRLF, 18, PARSE, 505,
	  "HTTP/2" },
	{ "GET /" CRLF CRLF, 0, PARSE, 505, "version" },  /* 0.9 */
	/* http-parser alone checks only the leading 'H' of the version */
	{ "GET /events/x HXXP/1.1" CRLF "Host: x" CRLF CRLF, 0, PARSE, 400, "version" },
	{ "GET /events/x HTTX/1.1" CRLF "Host: x" CRLF CRLF, 0, PARSE, 400, "version" },
	{ "GET /events/x HTTP-1.1" CRLF "Host: x" CRLF CRLF, 0, PARSE, 400, "version" },
	{ "GET /events/x HTTP/1.1x" CRLF "Host: x" CRLF CRLF, 0, PARSE, 400, "version" },
	{ "GET /events/x  HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, PARSE, 400, "malformed" },
	{ "GET  /events/x HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, PARSE, 400, "request line" },
	{ "GET / HTTP/1.12" CRLF "Host: x" CRLF CRLF, 0, PARSE, 400,
	  "version" },
	{ "GET / HTTP/1.1" CRLF "Host: x" CRLF "Content-Length: 1"
	  CRLF "Content-Length: 1" CRLF CRLF, 0, PARSE, 400,
	  "duplicate Content-Length" },
	{ "GET / HTTP/1.1" CRLF "Host: x" CRLF "content-length: 1"
	  CRLF "Content-Length: 2" CRLF CRLF, 0, PARSE, 400,
	  "duplicate Content-Length" },
	{ "GET / HTTP/1.1" CRLF "Host: x" CRLF "host: y" CRLF CRLF, 0,
	  PARSE, 400, "duplicate Host" },
	{ "GET / HTTP/1.0" CRLF "Host: x" CRLF "HOST: x" CRLF CRLF, 0,
	  PARSE, 400, "duplicate Host" },
	{ "GET / HTTP/1.1" CRLF "Host: x" CRLF "Authorization: a" CRLF
	  "Authorization: b" CRLF CRLF, 0, PARSE, 400,
	  "duplicate Authorization" },
	{ "GET / HTTP/1.1" CRLF "Host: x" CRLF "Content-Length: 1x"
	  CRLF CRLF, 0, PARSE, 400, "Content-Length" },
	{ "GET / HTTP/1.1" CRLF "Host: x" CRLF "Content-Length: 5"
	  CRLF "Transfer-Encoding: chunked" CRLF CRLF, 0, PARSE, 400,
	  "" },
	{ "GET / HTTP/1.1" CRLF "Host: x" CRLF
	  "Transfer-Encoding: gzip" CRLF CRLF, 0, PARSE, 400,
	  "Transfer-Encoding" },
	/* whitespace before ':' (RFC 7230 3.2.4) */
	{ "GET / HTTP/1.1" CRLF "Host : x" CRLF CRLF, 0, PARSE, 400,
	  "header name" },
	{ "GET / HTTP/1.1" CRLF "Host: x" CRLF "Content-Length : 5"
	  CRLF CRLF, 0, PARSE, 400, "header name" },
	/* obs-fold */
	{ "GET / HTTP/1.1" CRLF "Host: x" CRLF "X-A: a" CRLF " b" CRLF
	  CRLF, 0, PARSE, 400, "folding" },
	{ "GET / HTTP/1.1" CRLF "Host: x/y" CRLF CRLF, 0, PARSE, 400,
	  "Host" },
	{ "GET / HTTP/1.1" CRLF "Host: a b" CRLF CRLF, 0, PARSE, 400,
	  "Host" },
	{ "GET / HTTP/1.1" CRLF "Host: x" CRLF "X: a\x01" "b" CRLF
	  CRLF, 0, PARSE, 400, "" },
	{ "GET / HTTP/1.1\r\r\nHost: x" CRLF CRLF, 0, PARSE, 400, "" },
	{ "GET /a\tb HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, PARSE,
	  400, "request target" },
	{ "GET /a\x80 HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, PARSE,
	  400, "request target" },
	{ "OPTIONS * HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, PARSE,
	  400, "path" },
	{ "CONNECT x:443 HTTP/1.1" CRLF "Host: x:443" CRLF CRLF, 0,
	  PARSE, 400, "path" },
	{ "GET events/a HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, PARSE,
	  400, "" },
	{ "GET ftp://x/events/a HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  PARSE, 400, "scheme" },
	{ "GET http://u:p@x/events/a HTTP/1.1" CRLF "Host: x" CRLF
	  CRLF, 0, PARSE, 400, "userinfo" },
	{ "GET http://x HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, PARSE,
	  400, "" },
	/* topics */
	{ "GET /events/a%zz HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "malformed percent-encoding" },
	{ "GET /events/a%2 HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "malformed percent-encoding" },
	{ "GET /events?topic=a%00b HTTP/1.1" CRLF "Host: x" CRLF CRLF,
	  0, TOPICS, 400, "malformed percent-encoding" },
	{ "GET /events/a%20b HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "invalid character" },
	{ "GET /events/a%2Fb HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "invalid character" },
	/* patterns: wildcards must be whole segments, '>' only last */
	{ "GET /events?topic=a.b* HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "wildcard" },
	{ "GET /events/a.%3E.b HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "last segment" },
	{ "GET /events/%C3%A9 HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "invalid character" },
	{ "GET /events/a..b HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "empty topic segment" },
	{ "GET /events/.a HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "empty topic segment" },
	{ "GET /events?topic=a. HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "empty topic segment" },
	{ "GET /events/ HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, TOPICS,
	  400, "empty topic" },
	{ "GET /events?topic= HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "empty topic" },
	{ "GET /events?topic HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "empty topic" },
	{ "GET /events HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, TOPICS,
	  400, "no topic" },
	{ "GET /events?x=1&topics=a HTTP/1.1" CRLF "Host: x" CRLF CRLF,
	  0, TOPICS, 400, "no topic" },
	{ "GET /events/a/b HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0,
	  TOPICS, 400, "invalid topic path" },
	{ "GET /eventsa HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, TOPICS,
	  400, "invalid topic path" },
	{ "GET /other/a HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, TOPICS,
	  400, "invalid topic path" },
	/* the first failure in order wins */
	{ "GET /events/a?topic=b&topic=%zz&topic=a..b HTTP/1.1" CRLF
	  "Host: x" CRLF CRLF, 0, TOPICS, 400,
	  "malformed percent-encoding" },
};

ParameterizedTestParameters(http, bad)
{
	INDEX_PARAMS(bad_cases);
}

ParameterizedTest(size_t *i, http, bad)
{
	const struct bad_case *c = &bad_cases[*i];
	struct sp_http_req req;
	const char *reason = NULL;
	size_t len = c->raw_len ? c->raw_len : strlen(c->raw);
	size_t end = sp_http_head_end(c->raw, len);

	cr_assert_gt(end, 0, "%.60s: not framed", c->raw);
	int rc = sp_http_parse(c->raw, end, &req, &reason);
	if (c->stage == TOPICS) {
		cr_assert_eq(rc, 0, "%.60s: parse status %d (%s)", c->raw, rc,
			     reason ? reason : "-");
		struct sp_http_topics *t = malloc(sizeof(*t));
		cr_assert_not_null(t);
		rc = sp_http_parse_topics(&req, 8, t, &reason);
		free(t);
	}
	cr_expect_eq(rc, c->status, "%.60s: status %d, want %d (%s)", c->raw,
		     rc, c->status, reason ? reason : "-");
	cr_assert_not_null(reason, "%.60s: no reason", c->raw);
	cr_expect(strstr(reason, c->reason) != NULL,
		  "%.60s: reason \"%s\", want \"%s\"", c->raw, reason,
		  c->reason);
}

/* ---- headers ---------------------------------------------------------- */

Test(http, headers_captured)
{
	static const char raw[] =
		"GET /events/a HTTP/1.1" CRLF
		"host: example.org" CRLF
		"ORIGIN: https://app.example" CRLF
		"last-event-id: 42-7 " CRLF
		"Authorization:\tBearer abc.def\t" CRLF
		"cookie: s=1; t=2" CRLF
		"Content-Length: 0" CRLF
		"X-Other: ignored" CRLF
		"Accept: text/event-stream" CRLF CRLF;
	struct sp_http_req req;
	const char *reason;

	cr_assert_eq(parse_whole(raw, sizeof(raw) - 1, &req, &reason), 0);
	expect_field("host", req.host, req.host_len, "example.org");
	expect_field("origin", req.origin, req.origin_len,
		     "https://app.example");
	expect_field("last-event-id", req.last_event_id,
		     req.last_event_id_len, "42-7");
	expect_field("authorization", req.authorization,
		     req.authorization_len, "Bearer abc.def");
	expect_field("cookie", req.cookie, req.cookie_len, "s=1; t=2");
	cr_expect_eq(req.content_length, 0);
	cr_expect_not(req.chunked_body);
}

Test(http, headers_absent)
{
	static const char raw[] = "GET /events/a HTTP/1.0" CRLF CRLF;
	struct sp_http_req req;
	const char *reason;

	cr_assert_eq(parse_whole(raw, sizeof(raw) - 1, &req, &reason), 0);
	expect_field("host", req.host, req.host_len, NULL);
	expect_field("origin", req.origin, req.origin_len, NULL);
	expect_field("last-event-id", req.last_event_id,
		     req.last_event_id_len, NULL);
	expect_field("authorization", req.authorization,
		     req.authorization_len, NULL);
	expect_field("cookie", req.cookie, req.cookie_len, NULL);
	expect_field("query", req.query, req.query_len, NULL);
	cr_expect_eq(req.content_length, 0);
	cr_expect_not(req.chunked_body);
}

Test(http, empty_last_event_id_is_present)
{
	static const char raw[] =
		"GET /events/a HTTP/1.1" CRLF "Host: x" CRLF
		"Last-Event-ID:" CRLF "Origin:   " CRLF CRLF;
	struct sp_http_req req;
	const char *reason;

	cr_assert_eq(parse_whole(raw, sizeof(raw) - 1, &req, &reason), 0);
	expect_field("last-event-id", req.last_event_id,
		     req.last_event_id_len, "");
	expect_field("origin", req.origin, req.origin_len, "");
}

Test(http, body_framing_reported)
{
	static const char cl[] = "POST /x HTTP/1.1" CRLF "Host: x" CRLF
				 "Content-Length: 12345" CRLF CRLF;
	static const char te[] = "POST /x HTTP/1.1" CRLF "Host: x" CRLF
				 "Transfer-Encoding: gzip, chunked" CRLF CRLF;
	struct sp_http_req req;
	const char *reason;

	cr_assert_eq(parse_whole(cl, sizeof(cl) - 1, &req, &reason), 0);
	cr_expect_eq(req.content_length, 12345);
	cr_expect_not(req.chunked_body);
	cr_assert_eq(parse_whole(te, sizeof(te) - 1, &req, &reason), 0);
	cr_expect_eq(req.content_length, 0);
	cr_expect(req.chunked_body);
	cr_expect_eq(req.method, SP_HTTP_POST);
}

/* sp_http_parse reads up to the end of the head and no further, and a
 * head cut short is refused rather than half-filled. */
Test(http, parse_stops_at_head_end)
{
	static const char raw[] =
		"GET /events/a HTTP/1.1" CRLF "Host: x" CRLF
		"Content-Length: 3" CRLF CRLF "abcDELETE / HTTP/1.1" CRLF CRLF;
	struct sp_http_req req;
	const char *reason = NULL;

	cr_expect_eq(sp_http_parse(raw, sizeof(raw) - 1, &req, &reason), 0,
		     "%s", reason ? reason : "-");
	cr_expect_eq(req.method, SP_HTTP_GET);
	cr_expect_eq(req.content_length, 3);

	size_t head = sp_http_head_end(raw, sizeof(raw) - 1);
	cr_assert_gt(head, 0);
	for (size_t k = 0; k < head; k++) {
		reason = NULL;
		cr_expect_eq(sp_http_parse(raw, k, &req, &reason), 400,
			     "prefix %zu", k);
		cr_expect_not_null(reason);
	}
}

/* ---- framing ---------------------------------------------------------- */

/* Every proper prefix of a head is incomplete, the whole head is found,
 * and bytes after it (a body, a pipelined request) are not counted. */
static void check_split(const char *head)
{
	size_t n = strlen(head);
	char buf[256];

	cr_assert_lt(n + 8, sizeof(buf));
	for (size_t k = 0; k < n; k++)
		cr_expect_eq(sp_http_head_end(head, k), 0,
			     "prefix %zu of %zu reported complete", k, n);
	cr_expect_eq(sp_http_head_end(head, n), n);
	memcpy(buf, head, n);
	memcpy(buf + n, "abc\n\n\r\n", 7);
	for (size_t k = n; k <= n + 7; k++)
		cr_expect_eq(sp_http_head_end(buf, k), n,
			     "with %zu trailing bytes", k - n);
}

Test(http, head_end_split_positions)
{
	check_split("GET /events/a HTTP/1.1" CRLF "Host: x" CRLF CRLF);
	check_split("GET /events/a HTTP/1.1\nHost: x\n\n");
	check_split("GET /events/a HTTP/1.1\r\nHost: x\n\r\n");
	check_split("GET /events/a HTTP/1.1\nHost: x\r\n\n");
	check_split("GET / HTTP/1.0" CRLF CRLF);
	check_split(CRLF CRLF "GET / HTTP/1.0" CRLF CRLF);
	check_split("\n\nGET / HTTP/1.0\n\n");
}

Test(http, head_end_incomplete)
{
	cr_expect_eq(sp_http_head_end("", 0), 0);
	cr_expect_eq(sp_http_head_end(CRLF CRLF CRLF, 6), 0);
	cr_expect_eq(sp_http_head_end("GET / HTTP/1.1\r\n\r", 17), 0);
	/* a lone CR is not a line end */
	cr_expect_eq(sp_http_head_end("GET / HTTP/1.1\r\r", 16), 0);
	cr_expect_eq(sp_http_head_end("GET / HTTP/1.1\nX: y\r\r\n", 22), 0);
}

/* ---- early failure on partial heads ----------------------------------- */

Test(http, partial_prefixes_of_good_request_continue)
{
	static const char raw[] =
		CRLF "M-SEARCH /events/a HTTP/1.1" CRLF "Host: x" CRLF CRLF;

	for (size_t k = 0; k < sizeof(raw) - 1; k++)
		cr_expect_eq(sp_http_check_partial(raw, k), 0, "prefix %zu",
			     k);
}

Test(http, partial_rejects_non_http)
{
	static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc";

	cr_expect_eq(sp_http_check_partial(tls, 1), 400);
	cr_expect_eq(sp_http_check_partial(tls, sizeof(tls) - 1), 400);
	cr_expect_eq(sp_http_check_partial("get /", 5), 400);
	cr_expect_eq(sp_http_check_partial(" GET /", 6), 400);
	cr_expect_eq(sp_http_check_partial("-GET /", 6), 400);
	cr_expect_eq(sp_http_check_partial("G\0T /", 5), 400);
	cr_expect_eq(sp_http_check_partial("SSH-2.0-OpenSSH", 15), 400);
	cr_expect_eq(sp_http_check_partial("ABCDEFGHIJKLMNOPQ", 17), 400);
	cr_expect_eq(sp_http_check_partial("ABCDEFGHIJKLMNOP", 16), 0);
	cr_expect_eq(sp_http_check_partial("", 0), 0);
	cr_expect_eq(sp_http_check_partial(CRLF, 2), 0);
}

Test(http, partial_request_line_too_long_414)
{
	size_t cap = SP_HTTP_HEAD_MAX + 64;
	char *buf = malloc(cap);
	cr_assert_not_null(buf);
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', cap - 5);

	/* a target of exactly SP_HTTP_URI_MAX bytes is still fine */
	cr_expect_eq(sp_http_check_partial(buf, 4 + SP_HTTP_URI_MAX), 0);
	cr_expect_eq(sp_http_check_partial(buf, 4 + SP_HTTP_URI_MAX + 11),
		     0);
	cr_expect_eq(sp_http_check_partial(buf, SP_HTTP_URI_MAX + 100), 414);
	cr_expect_eq(sp_http_check_partial(buf, cap), 414);
	free(buf);
}

/* Many headers, no blank line yet: 431 once past SP_HTTP_HEAD_MAX. */
Test(http, partial_head_too_large_431)
{
	char *buf = malloc(SP_HTTP_HEAD_MAX + 128);
	cr_assert_not_null(buf);
	size_t n = (size_t)sprintf(buf, "GET /events/a HTTP/1.1" CRLF);
	while (n < SP_HTTP_HEAD_MAX + 64)
		n += (size_t)sprintf(buf + n, "X-Pad: 0123456789" CRLF);

	cr_expect_eq(sp_http_check_partial(buf, SP_HTTP_HEAD_MAX), 0);
	cr_expect_eq(sp_http_check_partial(buf, SP_HTTP_HEAD_MAX + 1), 431);
	cr_expect_eq(sp_http_head_end(buf, n), 0);
	free(buf);
}

/* ---- size limits on complete heads ------------------------------------ */

/* "GET <target> HTTP/1.1\r\nHost: x\r\n\r\n" with a target of <n> bytes. */
static char *make_target_request(size_t n, size_t *len)
{
	char *buf = malloc(n + 64);
	cr_assert_not_null(buf);
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', n - 1);
	*len = 4 + n;
	*len += (size_t)sprintf(buf + *len, " HTTP/1.1" CRLF "Host: x" CRLF
				CRLF);
	return buf;
}

Test(http, parse_target_limit)
{
	struct sp_http_req req;
	const char *reason;
	size_t len;
	char *buf = make_target_request(SP_HTTP_URI_MAX, &len);

	cr_expect_eq(parse_whole(buf, len, &req, &reason), 0);
	cr_expect_eq(req.path_len, SP_HTTP_URI_MAX);
	free(buf);

	buf = make_target_request(SP_HTTP_URI_MAX + 1, &len);
	cr_expect_eq(parse_whole(buf, len, &req, &reason), 414);
	cr_expect_str_eq(reason, "request target too long");
	free(buf);
}

Test(http, parse_head_limit)
{
	struct sp_http_req req;
	const char *reason;
	char *buf = malloc(SP_HTTP_HEAD_MAX + 64);
	cr_assert_not_null(buf);

	size_t n = (size_t)sprintf(buf, "GET /events/a HTTP/1.1" CRLF
				   "Host: x" CRLF "X-Pad: ");
	/* pad so that the head is exactly SP_HTTP_HEAD_MAX, then one more */
	size_t pad = SP_HTTP_HEAD_MAX - n - 4;
	memset(buf + n, 'p', pad);
	memcpy(buf + n + pad, CRLF CRLF, 4);
	cr_expect_eq(parse_whole(buf, SP_HTTP_HEAD_MAX, &req, &reason), 0);

	memset(buf + n, 'p', pad + 1);
	memcpy(buf + n + pad + 1, CRLF CRLF, 4);
	cr_expect_eq(parse_whole(buf, SP_HTTP_HEAD_MAX + 1, &req, &reason),
		     431);
	free(buf);
}

/* ---- topic limits ----------------------------------------------------- */

static int topics_of(const char *target, unsigned max,
		     struct sp_http_topics *t, const char **reason)
{
	static char raw[SP_HTTP_HEAD_MAX];
	struct sp_http_req req;

	int n = snprintf(raw, sizeof(raw), "GET %s HTTP/1.1" CRLF "Host: x"
			 CRLF CRLF, target);
	cr_assert(n > 0 && (size_t)n < sizeof(raw));
	int rc = parse_whole(raw, (size_t)n, &req, reason);
	cr_assert_eq(rc, 0, "parse: %d (%s)", rc, *reason);
	return sp_http_parse_topics(&req, max, t, reason);
}

Test(http, topic_length_limit)
{
	struct sp_http_topics *t = malloc(sizeof(*t));
	char target[1024], name[SP_TOPIC_MAX + 2];
	const char *reason;
	cr_assert_not_null(t);

	memset(name, 'x', sizeof(name));
	snprintf(target, sizeof(target), "/events/%.*s", SP_TOPIC_MAX, name);
	cr_expect_eq(topics_of(target, 4, t, &reason), 0);
	cr_expect_eq(t->n, 1);
	cr_expect_eq(t->len[0], SP_TOPIC_MAX);

	snprintf(target, sizeof(target), "/events?topic=%.*s",
		 SP_TOPIC_MAX + 1, name);
	cr_expect_eq(topics_of(target, 4, t, &reason), 400);
	cr_expect_str_eq(reason, "topic too long");

	/* the limit applies to the decoded name */
	size_t o = (size_t)snprintf(target, sizeof(target), "/events/");
	for (int i = 0; i < SP_TOPIC_MAX; i++)
		o += (size_t)snprintf(target + o, sizeof(target) - o, "%%61");
	cr_expect_eq(topics_of(target, 4, t, &reason), 0);
	cr_expect_eq(t->len[0], SP_TOPIC_MAX);
	snprintf(target + o, sizeof(target) - o, "%%61");
	cr_expect_eq(topics_of(target, 4, t, &reason), 400);
	cr_expect_str_eq(reason, "topic too long");
	free(t);
}

Test(http, topic_count_limit)
{
	struct sp_http_topics *t = malloc(sizeof(*t));
	char target[4096];
	const char *reason;
	cr_assert_not_null(t);

	size_t o = (size_t)snprintf(target, sizeof(target), "/events/t0?");
	for (int i = 1; i < 5; i++)
		o += (size_t)snprintf(target + o, sizeof(target) - o,
				      "topic=t%d&", i);
	cr_expect_eq(topics_of(target, 5, t, &reason), 0);
	cr_expect_eq(t->n, 5);
	cr_expect_eq(topics_of(target, 4, t, &reason), 400);
	cr_expect_str_eq(reason, "too many topics");
	cr_expect_eq(topics_of(target, 0, t, &reason), 400);

	/* duplicates do not count against the cap */
	o = (size_t)snprintf(target, sizeof(target), "/events/a?");
	for (int i = 0; i < 100; i++)
		o += (size_t)snprintf(target + o, sizeof(target) - o,
				      "topic=%s&", i % 2 ? "a" : "%61");
	cr_expect_eq(topics_of(target, 1, t, &reason), 0);
	cr_expect_eq(t->n, 1);
	free(t);
}

/* max_topics above the hard cap is clamped; the full cap of the longest
 * topics fits in buf. */
Test(http, topic_hard_cap)
{
	struct sp_http_topics *t = malloc(sizeof(*t));
	static char target[SP_HTTP_HEAD_MAX];
	const char *reason;
	cr_assert_not_null(t);

	/* 64 distinct topics of 50 bytes each stay under SP_HTTP_URI_MAX */
	size_t o = (size_t)snprintf(target, sizeof(target), "/events?");
	for (int i = 0; i < SP_HTTP_TOPICS_MAX + 1; i++)
		o += (size_t)snprintf(target + o, sizeof(target) - o,
				      "topic=%048d&", i);
	cr_assert_lt(o, (size_t)SP_HTTP_URI_MAX);
	cr_expect_eq(topics_of(target, 1000, t, &reason), 400);
	cr_expect_str_eq(reason, "too many topics");

	o = (size_t)snprintf(target, sizeof(target), "/events?");
	for (int i = 0; i < SP_HTTP_TOPICS_MAX; i++)
		o += (size_t)snprintf(target + o, sizeof(target) - o,
				      "topic=%048d&", i);
	cr_expect_eq(topics_of(target, 1000, t, &reason), 0);
	cr_expect_eq(t->n, SP_HTTP_TOPICS_MAX);
	char want[64];
	snprintf(want, sizeof(want), "%048d", SP_HTTP_TOPICS_MAX - 1);
	cr_expect(t->len[SP_HTTP_TOPICS_MAX - 1] == 48 &&
		  memcmp(t->name[SP_HTTP_TOPICS_MAX - 1], want, 48) == 0);
	free(t);
}

/* A hand-built request (not from sp_http_parse) with the largest allowed
 * topics must not overrun buf. */
Test(http, topic_buf_worst_case)
{
	struct sp_http_topics *t = malloc(sizeof(*t));
	size_t qcap = SP_HTTP_TOPICS_MAX * (6 + SP_TOPIC_MAX + 1) + 1;
	char *q = malloc(qcap);
	const char *reason;
	cr_assert(t != NULL && q != NULL);

	size_t o = 0;
	for (int i = 0; i < SP_HTTP_TOPICS_MAX; i++)
		o += (size_t)sprintf(q + o, "topic=%0*d&", SP_TOPIC_MAX, i);
	struct sp_http_req req = {
		.path = "/events", .path_len = 7, .query = q, .query_len = o,
	};
	cr_expect_eq(sp_http_parse_topics(&req, SP_HTTP_TOPICS_MAX, t,
					  &reason), 0);
	cr_expect_eq(t->n, SP_HTTP_TOPICS_MAX);
	free(q);
	free(t);
}

/* ---- responses -------------------------------------------------------- */

Test(http, format_response_exact)
{
	char out[256];
	ssize_t n = sp_http_format_response(out, sizeof(out), 404, NULL, NULL,
					    "no such topic\n", 14, false);
	static const char want[] =
		"HTTP/1.1 404 Not Found\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Length: 14\r\n"
		"Connection: close\r\n"
		"\r\n"
		"no such topic\n";

	cr_assert_eq(n, (ssize_t)sizeof(want) - 1);
	cr_expect(memcmp(out, want, (size_t)n) == 0, "got:\n%.*s", (int)n,
		  out);
}

Test(http, format_response_extra_headers_head_only)
{
	char out[256];
	ssize_t n = sp_http_format_response(
		out, sizeof(out), 204, "application/json",
		"Access-Control-Allow-Origin: *\r\nAllow: GET, HEAD\r\n",
		"{}", 2, true);
	static const char want[] =
		"HTTP/1.1 204 No Content\r\n"
		"Content-Type: application/json\r\n"
		"Content-Length: 2\r\n"
		"Connection: close\r\n"
		"Access-Control-Allow-Origin: *\r\n"
		"Allow: GET, HEAD\r\n"
		"\r\n";

	cr_assert_eq(n, (ssize_t)sizeof(want) - 1);
	cr_expect(memcmp(out, want, (size_t)n) == 0, "got:\n%.*s", (int)n,
		  out);
}

Test(http, format_response_enospc)
{
	char out[512];
	const char body[] = "0123456789";
	ssize_t full = sp_http_format_response(out, sizeof(out), 503, NULL,
					       NULL, body, 10, false);
	cr_assert_gt(full, 10);
	size_t head = (size_t)full - 10;

	/* exactly enough room succeeds and writes nothing past it */
	memset(out, '#', sizeof(out));
	cr_expect_eq(sp_http_format_response(out, (size_t)full, 503, NULL,
					     NULL, body, 10, false), full);
	cr_expect_eq(out[full], '#');
	cr_expect(memcmp(out + head, body, 10) == 0);

	for (size_t cap = 0; cap < (size_t)full; cap++) {
		memset(out, '#', sizeof(out));
		cr_expect_eq(sp_http_format_response(out, cap, 503, NULL,
						     NULL, body, 10, false),
			     -ENOSPC, "cap %zu", cap);
		cr_expect_eq(out[cap], '#', "wrote past cap %zu", cap);
	}
	/* HEAD needs room for the head only */
	cr_expect_eq(sp_http_format_response(out, head + 1, 503, NULL, NULL,
					     body, 10, true),
		     (ssize_t)head);
}

Test(http, status_text)
{
	static const int codes[] = { 200, 204, 400, 401, 403, 404, 405, 408,
				     413, 414, 429, 431, 500, 503, 505 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *t = sp_http_status_text(codes[i]);
		cr_assert_not_null(t);
		cr_expect_str_neq(t, "Unknown", "%d", codes[i]);
		for (size_t j = 0; j < i; j++)
			cr_expect_str_neq(t, sp_http_status_text(codes[j]));
	}
	cr_expect_str_eq(sp_http_status_text(200), "OK");
	cr_expect_str_eq(sp_http_status_text(404), "Not Found");
	cr_expect_str_eq(sp_http_status_text(431),
			 "Request Header Fields Too Large");
	cr_expect_not_null(sp_http_status_text(799));
	cr_expect_not_null(sp_http_status_text(-1));
}

/* ---- mutation smoke test ----------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Not a fuzzer, but cheap enough to run every time under ASan/UBSan:
 * mutate good requests byte-wise and check the invariants callers rely
 * on. */
Test(http, mutations_keep_invariants, .timeout = 60)
{
	static const char *seeds[] = {
		("GET /events/a.b?topic=c&topic=d%2Ee HTTP/1.1\r\nHost: h:1\r\n"
		 "Last-Event-ID: 7\r\nOrigin: https://o\r\n\r\n"),
		"GET http://h/events?topic=a HTTP/1.1\nHost: h\n\n",
		"HEAD /events/x HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
	};
	static const char alphabet[] = "\r\n :/?&=%.#*+-Aa0\t\x80\x16\x00";
	struct sp_http_topics *t = malloc(sizeof(*t));
	char buf[512];
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	cr_assert_not_null(t);

	for (int iter = 0; iter < 20000; iter++) {
		const char *seed = seeds[iter % 3];
		size_t len = strlen(seed);
		memcpy(buf, seed, len);
		int edits = 1 + (int)(xorshift(&rng) % 4);
		for (int e = 0; e < edits; e++) {
			size_t at = xorshift(&rng) % len;
			size_t pick = xorshift(&rng) % (sizeof(alphabet) - 1);
			char c = alphabet[pick];
			switch (xorshift(&rng) % 3) {
			case 0:         /* replace */
				buf[at] = c;
				break;
			case 1:         /* insert */
				if (len + 1 < sizeof(buf)) {
					memmove(buf + at + 1, buf + at,
						len - at);
					buf[at] = c;
					len++;
				}
				break;
			default:        /* delete */
				if (len > 1) {
					memmove(buf + at, buf + at + 1,
						len - at - 1);
					len--;
				}
				break;
			}
		}

		int pc = sp_http_check_partial(buf, len);
		cr_assert(pc == 0 || pc == 400 || pc == 414 || pc == 431);
		size_t end = sp_http_head_end(buf, len);
		cr_assert_leq(end, len);
		if (end == 0)
			continue;

		struct sp_http_req req;
		const char *reason = NULL;
		int rc = sp_http_parse(buf, end, &req, &reason);
		cr_assert(rc == 0 || rc == 400 || rc == 414 || rc == 431 ||
			  rc == 505, "status %d", rc);
		if (rc != 0) {
			cr_assert_not_null(reason);
			continue;
		}
		cr_assert(req.path != NULL && req.path_len > 0 &&
			  req.path[0] == '/');
		cr_assert(req.path >= buf &&
			  req.path + req.path_len <= buf + end);
		if (req.host != NULL)
			cr_assert(req.host >= buf &&
				  req.host + req.host_len <= buf + end);
		cr_assert_eq(req.http_major, 1);

		rc = sp_http_parse_topics(&req, 4, t, &reason);
		cr_assert(rc == 0 || rc == 400);
		if (rc != 0)
			continue;
		cr_assert(t->n >= 1 && t->n <= 4);
		for (unsigned i = 0; i < t->n; i++)
			cr_assert_null(sp_pattern_check(t->name[i], t->len[i]));
	}
	free(t);
}

/* ---- header count and X-Forwarded-For (security limits, netaddr.h) ---- */

Test(http, counts_header_fields)
{
	const char raw[] = "GET /events/a HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC:\r\n\r\n";
	struct sp_http_req req;
	const char *reason;

	cr_assert_eq(parse_whole(raw, sizeof(raw) - 1, &req, &reason), 0);
	cr_expect_eq(req.nheaders, 4);
	const char none[] = "GET /events/a HTTP/1.0\r\n\r\n";
	cr_assert_eq(parse_whole(none, sizeof(none) - 1, &req, &reason), 0);
	cr_expect_eq(req.nheaders, 0);
}

Test(http, keeps_every_x_forwarded_for_line)
{
	const char raw[] = "GET /events/a HTTP/1.1\r\nHost: x\r\n"
			   "X-Forwarded-For: 1.1.1.1, 10.0.0.1\r\n"
			   "x-forwarded-for:\r\n"
			   "X-FORWARDED-FOR:   10.0.0.2  \r\n\r\n";
	struct sp_http_req req;
	const char *reason;

	cr_assert_eq(parse_whole(raw, sizeof(raw) - 1, &req, &reason), 0);
	cr_assert_eq(req.nxff, 3);
	expect_field("xff[0]", req.xff[0], req.xff_len[0], "1.1.1.1, 10.0.0.1");
	expect_field("xff[1]", req.xff[1], req.xff_len[1], "");
	expect_field("xff[2]", req.xff[2], req.xff_len[2], "10.0.0.2");
}

Test(http, too_many_x_forwarded_for_lines)
{
	char raw[1024];
	int n = snprintf(raw, sizeof(raw), "GET /events/a HTTP/1.1\r\nHost: x\r\n");
	struct sp_http_req req;
	const char *reason;

	for (int i = 0; i < SP_HTTP_XFF_MAX; i++)
		n += snprintf(raw + n, sizeof(raw) - (size_t)n, "X-Forwarded-For: 10.0.0.%d\r\n", i);
	cr_assert_eq(parse_whole(raw, (size_t)n + (size_t)snprintf(raw + n, 3, "\r\n"), &req,
				 &reason), 0, "the most lines allowed");
	cr_expect_eq(req.nxff, SP_HTTP_XFF_MAX);
	n += snprintf(raw + n, sizeof(raw) - (size_t)n, "X-Forwarded-For: 10.0.0.99\r\n\r\n");
	cr_expect_eq(parse_whole(raw, (size_t)n, &req, &reason), 400);
	cr_expect_str_eq(reason, "too many X-Forwarded-For headers");
}

Test(http, post_with_expect_and_event_type)
{
	const char raw[] = "POST /publish/news HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
			   "Expect: 100-continue\r\nSpout-Event: alert\r\n"
			   "Idempotency-Key: order-17\r\n\r\n";
	struct sp_http_req req;
	const char *reason;

	cr_assert_eq(parse_whole(raw, sizeof(raw) - 1, &req, &reason), 0);
	cr_expect_eq(req.method, SP_HTTP_POST);
	cr_expect_eq(req.content_length, 5);
	expect_field("expect", req.expect, req.expect_len, "100-continue");
	expect_field("spout_event", req.spout_event, req.spout_event_len, "alert");
	expect_field("idempotency_key", req.idempotency_key, req.idempotency_key_len, "order-17");
	const char dup[] = "POST /publish/news HTTP/1.1\r\nHost: x\r\nSpout-Event: a\r\n"
			   "Spout-Event: b\r\n\r\n";
	cr_expect_eq(parse_whole(dup, sizeof(dup) - 1, &req, &reason), 400);
	cr_expect_str_eq(reason, "duplicate Spout-Event header");
}
