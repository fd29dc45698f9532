/*
 * http.c - HTTP/1.x request head parsing and spout's fixed responses.
 *
 * Parsing is delegated to Debian's http-parser (2.9.x, built non-strict),
 * fed the complete head in one http_parser_execute() call so that every
 * callback sees its field whole and <req> can point into the caller's
 * buffer. The non-strict build lets through things RFC 7230 says a server
 * must reject (whitespace before ':', obs-fold, tabs and 8-bit bytes in
 * the target), so the callbacks add those checks back.
 *
 * Nothing here allocates or keeps state; any thread may call it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "spout/http.h"
#include "spout/ptrie.h"

/* Longest request line that can still carry a target within
 * SP_HTTP_URI_MAX: method (http-parser's longest is 11 bytes) + 2 SP +
 * "HTTP/1.1" + CR, rounded up. Past it with no LF: 414. */
#define REQLINE_SLACK 32

/* http-parser knows no method longer than this ("UNSUBSCRIBE"); a longer
 * run of method characters cannot be a request we could parse. */
#define METHOD_MAX 16

/* Length of the run of CR/LF bytes at the start of <buf>. RFC 7230 3.5:
 * a server SHOULD ignore empty lines before the request line; http-parser
 * does, so the framing and early checks here must too. */
static size_t skip_empty_lines(const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
		i++;
	return i;
}

size_t sp_http_head_end(const char *buf, size_t len)
{
	size_t i = skip_empty_lines(buf, len);

	/* The head ends at the first empty line: an LF followed by LF or
	 * CRLF. That covers CRLFCRLF, LFLF and the two mixes, all of which
	 * http-parser accepts. */
	while (i < len) {
		const char *lf = memchr(buf + i, '\n', len - i);
		if (lf == NULL)
			return 0;
		i = (size_t)(lf - buf) + 1;
		if (i < len && buf[i] == '\n')
			return i + 1;
		if (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n')
			return i + 2;
	}
	return 0;
}

/* True if the request line starting at <buf>[start] is already too long to
 * carry a target of at most SP_HTTP_URI_MAX bytes. */
static bool reqline_too_long(const char *buf, size_t len, size_t start)
{
	size_t limit = SP_HTTP_URI_MAX + REQLINE_SLACK;

	if (len - start <= limit)
		return false;
	return memchr(buf + start, '\n', limit) == NULL;
}

int sp_http_check_partial(const char *buf, size_t len)
{
	size_t start = skip_empty_lines(buf, len);

	/* The method must be a run of uppercase letters (or '-', for
	 * M-SEARCH) ended by SP. This is what turns away a TLS ClientHello
	 * (0x16) or other protocols on the first read instead of waiting
	 * for a head that never comes. At most METHOD_MAX bytes are looked
	 * at, so the check stays cheap on every read. */
	for (size_t i = start; i < len && i - start <= METHOD_MAX; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == ' ' && i > start)
			break;
		if (i - start == METHOD_MAX)
			return 400;
		if (!(c >= 'A' && c <= 'Z') && !(c == '-' && i > start))
			return 400;
	}
	if (reqline_too_long(buf, len, start))
		return 414;
	if (len > SP_HTTP_HEAD_MAX)
		return 431;
	return 0;
}

/*
 * Headers spout looks at. Each may appear once: a second copy is either
 * request smuggling (Host, Content-Length) or an ambiguity we would have
 * to resolve by guessing (which Origin or Authorization is the real one?),
 * and <req> can hold only one pointer anyway.
 */
enum hdr_id {
	HDR_HOST,
	HDR_ORIGIN,
	HDR_LAST_EVENT_ID,
	HDR_AUTHORIZATION,
	HDR_COOKIE,
	HDR_CONTENT_LENGTH,
	HDR_TRANSFER_ENCODING,
	HDR_X_FORWARDED_FOR,
	HDR_EXPECT,
	HDR_SPOUT_EVENT,
	HDR_IDEMPOTENCY_KEY,
	HDR_COUNT,
	HDR_NONE = -1,
};

static const struct hdr_desc {
	const char *name;       /* lowercase */
	size_t name_len;
	const char *dup_reason; /* NULL: repeats are allowed */
} hdr_table[HDR_COUNT] = {
	[HDR_HOST] = { "host", 4, "duplicate Host header" },
	[HDR_ORIGIN] = { "origin", 6, "duplicate Origin header" },
	[HDR_LAST_EVENT_ID] = { "last-event-id", 13,
				"duplicate Last-Event-ID header" },
	[HDR_AUTHORIZATION] = { "authorization", 13,
				"duplicate Authorization header" },
	[HDR_COOKIE] = { "cookie", 6, "duplicate Cookie header" },
	/* http-parser itself parses Content-Length and rejects it next to
	 * Transfer-Encoding; we only need the duplicate check, done before
	 * the value so the reason is ours. Several Transfer-Encoding lines
	 * form one list (RFC 7230 3.2.2); http-parser tracks whether the
	 * final coding is chunked. */
	[HDR_CONTENT_LENGTH] = { "content-length", 14,
				 "duplicate Content-Length header" },
	[HDR_TRANSFER_ENCODING] = { "transfer-encoding", 17, NULL },
	/* Each proxy may add its own line (HAProxy's `option forwardfor`
	 * does): the lines form one list, read right to left (netaddr.h). */
	[HDR_X_FORWARDED_FOR] = { "x-forwarded-for", 15, NULL },
	/* POST /publish: "Expect: 100-continue" (curl sends it for bodies
	 * over 1 KiB) and the event type of the published event. */
	[HDR_EXPECT] = { "expect", 6, "duplicate Expect header" },
	[HDR_SPOUT_EVENT] = { "spout-event", 11, "duplicate Spout-Event header" },
	[HDR_IDEMPOTENCY_KEY] = { "idempotency-key", 15, "duplicate Idempotency-Key header" },
};

/* Store the value of header <h> in <req>; headers without a field there
 * (Content-Length, Transfer-Encoding) are read from http-parser. */
static void store_header(struct sp_http_req *req, int h, const char *v,
			 size_t n)
{
	switch (h) {
	case HDR_HOST:
		req->host = v;
		req->host_len = n;
		break;
	case HDR_ORIGIN:
		req->origin = v;
		req->origin_len = n;
		break;
	case HDR_LAST_EVENT_ID:
		req->last_event_id = v;
		req->last_event_id_len = n;
		break;
	case HDR_AUTHORIZATION:
		req->authorization = v;
		req->authorization_len = n;
		break;
	case HDR_COOKIE:
		req->cookie = v;
		req->cookie_len = n;
		break;
	case HDR_EXPECT:
		req->expect = v;
		req->expect_len = n;
		break;
	case HDR_SPOUT_EVENT:
		req->spout_event = v;
		req->spout_event_len = n;
		break;
	case HDR_IDEMPOTENCY_KEY:
		req->idempotency_key = v;
		req->idempotency_key_len = n;
		break;
	case HDR_X_FORWARDED_FOR:
		/* on_header_field counted this line; fill its slot */
		req->xff[req->nxff - 1] = v;
		req->xff_len[req->nxff - 1] = n;
		break;
	default:
		break;
	}
}

/* Which data callback ran last: http-parser reports an obs-fold
 * continuation line as a second value in a row. */
enum last_cb { CB_NONE, CB_FIELD, CB_VALUE };

/* State of one sp_http_parse() call, reached through parser->data. */
struct parse_ctx {
	struct sp_http_req *req;
	int status;                 /* first failure, 0 if none */
	const char *reason;
	const char *url;
	size_t url_len;
	unsigned seen;              /* bit per enum hdr_id */
	int cur;                    /* enum hdr_id of the pending value */
	enum last_cb last;
	bool url_done;
	bool complete;              /* on_headers_complete ran */
};

/* Record the first failure and tell http-parser to stop. */
static int fail(struct parse_ctx *ctx, int status, const char *reason)
{
	if (ctx->status == 0) {
		ctx->status = status;
		ctx->reason = reason;
	}
	return -1;
}

/* RFC 7230 tchar: what a header name may contain. The non-strict parser
 * lets SP through, and "Content-Length : 5" must not slip past as an
 * unknown header. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 3986 reg-name / IP-literal / port characters. RFC 7230 5.4 wants a
 * 400 for an invalid Host, and this keeps CTLs, '/' and the like out of
 * anything that later echoes the host. */
static bool is_host_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("-._~!$&'()*+,;=%:[]", c) != NULL;
}

/* Version checks come first so that an HTTP/2 client gets 505, not a 400
 * about some header it sent. Called at the first point the version is
 * known (the first header name, or the end of the head). */
static int check_version(struct parse_ctx *ctx, const http_parser *p)
{
	if (p->http_major != 1)
		return fail(ctx, 505, "HTTP version not supported");
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	struct parse_ctx *ctx = p->data;

	/* One execute over a complete head delivers the target in one
	 * piece; a second call means the head was not what we framed. */
	if (ctx->url_done)
		return fail(ctx, 400, "malformed request line");
	if (n > SP_HTTP_URI_MAX)
		return fail(ctx, 414, "request target too long");
	ctx->url = at;
	ctx->url_len = n;
	ctx->url_done = true;
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	struct parse_ctx *ctx = p->data;

	if (check_version(ctx, p) != 0)
		return -1;
	/* One execute over a complete head delivers each name whole. */
	if (ctx->last == CB_FIELD)
		return fail(ctx, 400, "malformed header");
	ctx->last = CB_FIELD;
	ctx->cur = HDR_NONE;
	ctx->req->nheaders++;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)at[i]))
			return fail(ctx, 400, "invalid header name");

	for (int h = 0; h < HDR_COUNT; h++) {
		const struct hdr_desc *d = &hdr_table[h];
		if (n != d->name_len || strncasecmp(at, d->name, n) != 0)
			continue;
		if ((ctx->seen & (1u << h)) && d->dup_reason != NULL)
			return fail(ctx, 400, d->dup_reason);
		ctx->seen |= 1u << h;
		ctx->cur = h;
		if (h == HDR_X_FORWARDED_FOR && ctx->req->nxff++ == SP_HTTP_XFF_MAX)
			return fail(ctx, 400, "too many X-Forwarded-For headers");
		/* Present-but-empty must differ from absent (an empty Host
		 * is legal): point at a zero-length spot until the value
		 * arrives. */
		store_header(ctx->req, h, at + n, 0);
		break;
	}
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
	struct parse_ctx *ctx = p->data;

	/* The non-strict parser reports a folded continuation line as a
	 * second value callback. RFC 7230 3.2.4 lets us reject obs-fold
	 * with 400, which beats splicing two pieces of the buffer. */
	if (ctx->last != CB_FIELD)
		return fail(ctx, 400, "obsolete header line folding");
	ctx->last = CB_VALUE;

	/* http-parser strips leading OWS but keeps trailing OWS. */
	while (n > 0 && (at[n - 1] == ' ' || at[n - 1] == '\t'))
		n--;

	if (ctx->cur == HDR_HOST)
		for (size_t i = 0; i < n; i++)
			if (!is_host_char((unsigned char)at[i]))
				return fail(ctx, 400, "invalid Host header");
	store_header(ctx->req, ctx->cur, at, n);
	return 0;
}

/* Split the target into path and query. Origin-form is split here;
 * absolute-form (RFC 7230 5.3.2 says a server MUST accept it) goes
 * through http_parser_parse_url and only its path and query are kept:
 * <req>->host stays the Host header. */
static int split_target(struct parse_ctx *ctx)
{
	struct sp_http_req *req = ctx->req;
	const char *u = ctx->url;
	size_t n = ctx->url_len;

	/* The non-strict parser passes tabs, DEL and 8-bit bytes; none is
	 * legal in a target and all are trouble in logs. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];
		if (c <= 0x20 || c >= 0x7f)
			return fail(ctx, 400,
				    "invalid character in request target");
	}

	if (n > 0 && u[0] == '/') {
		size_t end = n;
		const char *hash = memchr(u, '#', n);
		if (hash != NULL)
			end = (size_t)(hash - u);
		const char *q = memchr(u, '?', end);
		req->path = u;
		if (q == NULL) {
			req->path_len = end;
		} else {
			req->path_len = (size_t)(q - u);
			req->query = q + 1;
			req->query_len = end - req->path_len - 1;
		}
		return 0;
	}

	/* Asterisk-form (OPTIONS *) and authority-form (CONNECT) are legal
	 * HTTP but name no resource spout serves; refusing them keeps the
	 * promise that <req>->path starts with '/'. */
	struct http_parser_url pu;
	http_parser_url_init(&pu);
	unsigned want = (1u << UF_SCHEMA) | (1u << UF_HOST) | (1u << UF_PATH);
	if (http_parser_parse_url(u, n, 0, &pu) != 0 ||
	    (pu.field_set & want) != want)
		return fail(ctx, 400, "request target must be a path");
	if (pu.field_set & (1u << UF_USERINFO))
		return fail(ctx, 400, "userinfo in request target");
	const char *scheme = u + pu.field_data[UF_SCHEMA].off;
	size_t scheme_len = pu.field_data[UF_SCHEMA].len;
	if (!(scheme_len == 4 && strncasecmp(scheme, "http", 4) == 0) &&
	    !(scheme_len == 5 && strncasecmp(scheme, "https", 5) == 0))
		return fail(ctx, 400, "unsupported URI scheme");
	req->path = u + pu.field_data[UF_PATH].off;
	req->path_len = pu.field_data[UF_PATH].len;
	if (pu.field_set & (1u << UF_QUERY)) {
		req->query = u + pu.field_data[UF_QUERY].off;
		req->query_len = pu.field_data[UF_QUERY].len;
	}
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct parse_ctx *ctx = p->data;
	struct sp_http_req *req = ctx->req;

	if (check_version(ctx, p) != 0)
		return -1;
	ctx->complete = true;

	switch (p->method) {
	case HTTP_GET:
		req->method = SP_HTTP_GET;
		break;
	case HTTP_HEAD:
		req->method = SP_HTTP_HEAD;
		break;
	case HTTP_OPTIONS:
		req->method = SP_HTTP_OPTIONS;
		break;
	case HTTP_POST:
		req->method = SP_HTTP_POST;
		break;
	default:
		req->method = SP_HTTP_OTHER;
		break;
	}
	req->http_major = p->http_major;
	req->http_minor = p->http_minor;
	req->keep_alive = http_should_keep_alive(p) != 0;

	/* RFC 7230 5.4: HTTP/1.1 requires Host; 1.0 predates it. */
	if (p->http_minor >= 1 && !(ctx->seen & (1u << HDR_HOST)))
		return fail(ctx, 400, "missing Host header");

	if ((ctx->seen & (1u << HDR_CONTENT_LENGTH)) &&
	    p->content_length != UINT64_MAX)
		req->content_length = p->content_length;
	req->chunked_body = (p->flags & F_CHUNKED) != 0;
	/* RFC 7230 3.3.3: a request whose final coding is not chunked has
	 * no knowable length. */
	if ((ctx->seen & (1u << HDR_TRANSFER_ENCODING)) && !req->chunked_body)
		return fail(ctx, 400, "unsupported Transfer-Encoding");

	if (!ctx->url_done)
		return fail(ctx, 400, "malformed request line");
	if (split_target(ctx) != 0)
		return -1;
	/* Stop at the end of the head: spout never reads a body and
	 * answers Connection: close, so bytes past the head (a body, a
	 * pipelined request, or a caller passing its whole buffer) must not
	 * be parsed as a second request. http-parser allows pausing from a
	 * callback; the return of 1 ("no body") is then moot but honest. */
	http_parser_pause(p, 1);
	return 1;
}

/* Reason for a parser error that no callback claimed. */
static const char *hpe_reason(enum http_errno e)
{
	switch (e) {
	case HPE_INVALID_METHOD:
		return "unknown method";
	case HPE_INVALID_VERSION:
		return "malformed HTTP version";
	case HPE_INVALID_URL:
	case HPE_INVALID_HOST:
	case HPE_INVALID_PORT:
	case HPE_INVALID_PATH:
	case HPE_INVALID_QUERY_STRING:
	case HPE_INVALID_FRAGMENT:
		return "invalid request target";
	case HPE_INVALID_HEADER_TOKEN:
		return "invalid character in header";
	case HPE_INVALID_CONTENT_LENGTH:
		return "invalid Content-Length";
	case HPE_UNEXPECTED_CONTENT_LENGTH:
		return "Content-Length with Transfer-Encoding";
	case HPE_INVALID_TRANSFER_ENCODING:
		return "unsupported Transfer-Encoding";
	case HPE_LF_EXPECTED:
		return "bare CR in request head";
	default:
		return "malformed request";
	}
}

/* "GET /path" with no version at all: an HTTP/0.9 request. */
static bool is_http09(const char *line, const char *sp, size_t n)
{
	if (sp == line || sp[1] != '/' || memchr(line, '\t', n) != NULL)
		return false;
	for (const char *p = line; p < sp; p++)
		if (*p < 'A' || *p > 'Z')
			return false;
	return true;
}

/* http-parser (built lenient in Debian) checks only the leading 'H' of the
 * version and tolerates repeated spaces, so the request line's shape is
 * checked here first: METHOD SP target SP "HTTP/" DIGIT "." DIGIT, single
 * spaces, nothing after the version but the line break. Returns 0, or a
 * status with <*reason> set. */
static int check_request_line(const char *line, size_t len, const char **reason)
{
	const char *end = memchr(line, '\n', len);
	size_t n = end ? (size_t)(end - line) : len;

	if (n > 0 && line[n - 1] == '\r')
		n--;
	const char *sp1 = memchr(line, ' ', n);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line)) : NULL;
	if (end == NULL) {
		*reason = "incomplete request head";
		return 400;
	}
	if (sp1 != NULL && sp2 == NULL && is_http09(line, sp1, n)) {
		*reason = "HTTP version not supported";
		return 505;
	}
	if (sp1 == NULL || sp2 == NULL || sp1 == line || sp2 == sp1 + 1) {
		*reason = "malformed request line";
		return 400;
	}
	const char *v = sp2 + 1;
	size_t vlen = n - (size_t)(v - line);
	if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
	    v[6] != '.' || v[7] < '0' || v[7] > '9') {
		*reason = "malformed HTTP version";
		return 400;
	}
	if (v[5] != '1') {
		*reason = "HTTP version not supported";
		return 505;
	}
	return 0;
}

int sp_http_parse(const char *buf, size_t len, struct sp_http_req *req,
		  const char **reason)
{
	static const char h2_preface[] = "PRI * HTTP/2.0";
	size_t start = skip_empty_lines(buf, len);
	struct parse_ctx ctx = { .req = req, .cur = HDR_NONE };

	memset(req, 0, sizeof(*req));

	if (len > SP_HTTP_HEAD_MAX) {
		if (reqline_too_long(buf, len, start)) {
			*reason = "request target too long";
			return 414;
		}
		*reason = "request head too large";
		return 431;
	}
	/* http-parser rejects the HTTP/2 connection preface as a bad
	 * method; a prior-knowledge h2 client is better served by 505. */
	if (len - start >= sizeof(h2_preface) - 1 &&
	    memcmp(buf + start, h2_preface, sizeof(h2_preface) - 1) == 0) {
		*reason = "HTTP/2 not supported";
		return 505;
	}

	int st = check_request_line(buf + start, len - start, reason);
	if (st != 0)
		return st;

	http_parser_settings settings;
	http_parser_settings_init(&settings);
	settings.on_url = on_url;
	settings.on_header_field = on_header_field;
	settings.on_header_value = on_header_value;
	settings.on_headers_complete = on_headers_complete;

	http_parser p;
	http_parser_init(&p, HTTP_REQUEST);
	p.data = &ctx;
	(void)http_parser_execute(&p, &settings, buf, len);

	if (ctx.status != 0) {
		*reason = ctx.reason;
		return ctx.status;
	}
	/* Success is exactly "paused by on_headers_complete". */
	enum http_errno e = HTTP_PARSER_ERRNO(&p);
	if (e == HPE_PAUSED && ctx.complete)
		return 0;
	if (e != HPE_OK && e != HPE_PAUSED) {
		*reason = hpe_reason(e);
		return 400;
	}
	*reason = "incomplete request head";
	return 400;
}

/* Iterates "name=value&name2=value2" (raw, undecoded). */
struct qparam {
	const char *next, *end;
	const char *name, *val;
	size_t name_len, val_len;
};

static bool next_param(struct qparam *p)
{
	if (p->next == NULL || p->next >= p->end)
		return false;
	const char *amp = memchr(p->next, '&', (size_t)(p->end - p->next));
	const char *pend = amp == NULL ? p->end : amp;
	const char *eq = memchr(p->next, '=', (size_t)(pend - p->next));

	p->name = p->next;
	p->name_len = (size_t)((eq == NULL ? pend : eq) - p->next);
	p->val = eq == NULL ? pend : eq + 1;
	p->val_len = (size_t)(pend - p->val);
	p->next = amp == NULL ? NULL : amp + 1;
	return true;
}

ssize_t sp_http_query_param(const struct sp_http_req *req, const char *name, char *out,
			    size_t cap)
{
	struct qparam qp = { .next = req->query,
			     .end = req->query ? req->query + req->query_len : NULL };
	size_t nl = strlen(name);

	while (req->query != NULL && next_param(&qp))
		if (qp.name_len == nl && memcmp(qp.name, name, nl) == 0)
			return sp_percent_decode(qp.val, qp.val_len, out, cap);
	return -ENOENT;
}

/* Decode one topic occurrence into <out>->buf and add it unless already
 * there. Decoding is capped at SP_TOPIC_MAX so that, with at most
 * SP_HTTP_TOPICS_MAX distinct topics, buf (SP_HTTP_HEAD_MAX bytes) can
 * never run out. */
static int add_topic(struct sp_http_topics *out, size_t *used,
		     unsigned max_topics, const char *raw, size_t raw_len,
		     const char **reason)
{
	char *dst = out->buf + *used;
	size_t room = sizeof(out->buf) - *used;
	size_t cap = room < SP_TOPIC_MAX ? room : SP_TOPIC_MAX;

	ssize_t n = sp_percent_decode(raw, raw_len, dst, cap);
	if (n == -ENOSPC) {
		*reason = "topic too long";
		return 400;
	}
	if (n < 0) {
		*reason = "malformed percent-encoding";
		return 400;
	}
	/* A name with '*' or '>' is a subscription pattern (docs/protocol.md);
	 * anything else must be a plain topic, with the topic's reasons. */
	bool wild = memchr(dst, '*', (size_t)n) != NULL || memchr(dst, '>', (size_t)n) != NULL;
	const char *why = wild ? sp_pattern_check(dst, (size_t)n) : sp_topic_check(dst, (size_t)n);
	if (why != NULL) {
		*reason = why;
		return 400;
	}
	for (unsigned i = 0; i < out->n; i++)
		if (out->len[i] == (size_t)n &&
		    memcmp(out->name[i], dst, (size_t)n) == 0)
			return 0;
	if (out->n >= max_topics) {
		*reason = "too many topics";
		return 400;
	}
	out->name[out->n] = dst;
	out->len[out->n] = (uint16_t)n;
	out->n++;
	*used += (size_t)n;
	return 0;
}

int sp_http_parse_topics(const struct sp_http_req *req, unsigned max_topics,
			 struct sp_http_topics *out, const char **reason)
{
	static const char prefix[] = "/events";
	const size_t plen = sizeof(prefix) - 1;
	size_t used = 0;
	int rc;

	out->n = 0;
	if (max_topics > SP_HTTP_TOPICS_MAX)
		max_topics = SP_HTTP_TOPICS_MAX;

	/* Defensive: the worker routes only /events paths here, but a
	 * stray "/eventsX" or "/events/a/b" must not become a topic. */
	if (req->path == NULL || req->path_len < plen ||
	    memcmp(req->path, prefix, plen) != 0 ||
	    (req->path_len > plen && req->path[plen] != '/')) {
		*reason = "invalid topic path";
		return 400;
	}
	if (req->path_len > plen) {
		const char *seg = req->path + plen + 1;
		size_t seg_len = req->path_len - plen - 1;
		if (memchr(seg, '/', seg_len) != NULL) {
			*reason = "invalid topic path";
			return 400;
		}
		/* "/events/" falls through to sp_topic_check's "empty
		 * topic" rather than meaning "query topics only": a
		 * trailing slash is more likely a client bug. */
		rc = add_topic(out, &used, max_topics, seg, seg_len, reason);
		if (rc != 0)
			return rc;
	}

	struct qparam qp = { .next = req->query,
			     .end = req->query ? req->query + req->query_len : NULL };
	while (req->query != NULL && next_param(&qp)) {
		if (qp.name_len == 5 && memcmp(qp.name, "topic", 5) == 0) {
			rc = add_topic(out, &used, max_topics, qp.val, qp.val_len, reason);
			if (rc != 0)
				return rc;
		}
	}

	if (out->n == 0) {
		*reason = "no topic";
		return 400;
	}
	return 0;
}

const char *sp_http_status_text(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

ssize_t sp_http_format_response(char *out, size_t cap, int status,
				const char *content_type,
				const char *extra_headers, const char *body,
				size_t body_len, bool head_only)
{
	if (content_type == NULL)
		content_type = "text/plain; charset=utf-8";
	if (extra_headers == NULL)
		extra_headers = "";

	/* snprintf needs room for its NUL, so the head must fit in cap - 1
	 * bytes; the body then overwrites that NUL. */
	int n = snprintf(out, cap,
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "Connection: close\r\n"
			 "%s"
			 "\r\n",
			 status, sp_http_status_text(status), content_type,
			 body_len, extra_headers);
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	size_t head = (size_t)n;
	if (head_only || body_len == 0)
		return (ssize_t)head;
	if (body_len > cap - head)
		return -ENOSPC;
	memcpy(out + head, body, body_len);
	return (ssize_t)(head + body_len);
}
