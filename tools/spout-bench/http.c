/*
 * http.c - response heads and the chunked decoder (see http.h).
 */
#include <string.h>
#include <strings.h>

#include "http.h"

size_t http_head_end(const char *b, size_t n, size_t from)
{
	for (size_t i = from; i < n; i++) {
		if (b[i] != '\n')
			continue;
		if (i + 1 < n && b[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

int http_head_status(const char *b, size_t n)
{
	if (n < 12 || memcmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ')
		return -1;
	int v = 0;
	for (int i = 9; i < 12; i++) {
		if (b[i] < '0' || b[i] > '9')
			return -1;
		v = v * 10 + (b[i] - '0');
	}
	return v;
}

/* Steps through the header lines of a head: starts after the status line
 * when <p> is NULL, else after line <p> of length *ll. Returns the next line
 * (its length, without LF, in *ll), or NULL at the end. */
static const char *next_line(const char *b, size_t n, const char *p, size_t *ll)
{
	const char *line = p ? p + *ll + 1 : memchr(b, '\n', n);

	if (!p) {
		if (!line)
			return NULL;
		line++;     /* skip the status line */
	}
	if ((size_t)(line - b) >= n)
		return NULL;
	size_t rest = n - (size_t)(line - b);
	const char *eol = memchr(line, '\n', rest);
	*ll = eol ? (size_t)(eol - line) : rest;
	return line;
}

const char *http_head_value(const char *b, size_t n, const char *name, size_t *vlen)
{
	size_t nl = strlen(name), ll = 0;

	for (const char *line = next_line(b, n, NULL, &ll); line;
	     line = next_line(b, n, line, &ll)) {
		if (ll <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
			continue;
		const char *v = line + nl + 1, *end = line + ll;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*vlen = (size_t)(end - v);
		return v;
	}
	return NULL;
}

static bool mem_has_ci(const char *p, size_t n, const char *tok)
{
	size_t tl = strlen(tok);

	for (size_t i = 0; i + tl <= n; i++)
		if (strncasecmp(p + i, tok, tl) == 0)
			return true;
	return false;
}

bool http_head_has(const char *b, size_t n, const char *name, const char *token)
{
	size_t nl = strlen(name), ll = 0;

	for (const char *line = next_line(b, n, NULL, &ll); line;
	     line = next_line(b, n, line, &ll))
		if (ll > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0 &&
		    mem_has_ci(line + nl + 1, ll - nl - 1, token))
			return true;
	return false;
}

enum {
	CH_SIZE,        /* hex digits of the chunk size */
	CH_EXT,         /* chunk extension, up to LF */
	CH_SIZE_LF,     /* CR seen after the size */
	CH_DATA,
	CH_DATA_CR,     /* CRLF after the data */
	CH_DATA_LF,
	CH_TRL_START,   /* after the last chunk: start of a trailer line */
	CH_TRL_CR,      /* CR at the start of a trailer line */
	CH_TRL_LINE,    /* inside a trailer line */
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int http_chunked_feed(struct http_chunked *c, const char *p, size_t len, size_t *used,
		      http_sink *sink, void *arg)
{
	const char *start = p;

	while (len > 0) {
		char ch = *p;

		if (c->state == CH_DATA) {
			size_t n = len < c->left ? len : (size_t)c->left;

			sink(arg, p, n);
			p += n, len -= n;
			c->left -= n;
			if (c->left == 0)
				c->state = CH_DATA_CR;
			continue;
		}
		p++, len--;
		switch (c->state) {
		case CH_SIZE: {
			int d = hexval(ch);

			if (d >= 0) {
				if (c->left >> 40)
					return -1;  /* a terabyte chunk: garbage */
				c->left = c->left * 16 + (uint64_t)d;
				c->digits = true;
				continue;
			}
			if (!c->digits)
				return -1;
			if (ch == ';' || ch == ' ' || ch == '\t')
				c->state = CH_EXT;
			else if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if (ch == '\n')
				goto size_done;
			else
				return -1;
			continue;
		}
		case CH_EXT:
			if (ch == '\n')
				goto size_done;
			continue;
		case CH_SIZE_LF:
			if (ch != '\n')
				return -1;
			goto size_done;
		case CH_DATA_CR:
			if (ch == '\r')
				c->state = CH_DATA_LF;
			else if (ch == '\n')
				c->state = CH_SIZE;
			else
				return -1;
			continue;
		case CH_DATA_LF:
			if (ch != '\n')
				return -1;
			c->state = CH_SIZE;
			continue;
		case CH_TRL_START:
			if (ch == '\r')
				c->state = CH_TRL_CR;
			else if (ch == '\n')
				goto body_done;
			else
				c->state = CH_TRL_LINE;
			continue;
		case CH_TRL_CR:
			if (ch == '\n')
				goto body_done;
			c->state = CH_TRL_LINE;
			continue;
		case CH_TRL_LINE:
			if (ch == '\n')
				c->state = CH_TRL_START;
			continue;
		default:
			return -1;
		}
size_done:
		c->digits = false;
		c->state = c->left == 0 ? CH_TRL_START : CH_DATA;
	}
	return 0;
body_done:
	*used = (size_t)(p - start);
	return 1;
}

void http_resp_reset(struct http_resp *r)
{
	r->head_len = 0;
	r->status = 0;
	r->in_body = r->chunked = r->to_eof = r->close_after = false;
	r->body_left = 0;
	r->ch = (struct http_chunked){ 0 };
}

/* A complete head of <end> bytes is in r->head: how does the body end? */
static int resp_head(struct http_resp *r, size_t end)
{
	int status = http_head_status(r->head, end);
	size_t vl;

	if (status < 0)
		return HTTP_RESP_BAD_HEAD;
	if (status < 200) {
		r->head_len = 0;    /* interim response: the final one follows */
		return 0;
	}
	r->status = status;
	r->in_body = true;
	/* HTTP/1.0 closes unless it says keep-alive. */
	r->close_after = http_head_has(r->head, end, "connection", "close") ||
			 (r->head[7] == '0' &&
			  !http_head_has(r->head, end, "connection", "keep-alive"));
	r->chunked = http_head_has(r->head, end, "transfer-encoding", "chunked");
	const char *cl = http_head_value(r->head, end, "content-length", &vl);
	if (status == 204 || status == 304) {
		r->chunked = false;     /* no body, whatever the head says */
		return 0;
	}
	if (r->chunked)
		return 0;
	if (!cl) {
		r->to_eof = r->close_after = true;
		return 0;
	}
	if (vl == 0)
		return HTTP_RESP_BAD_LENGTH;
	for (size_t i = 0; i < vl; i++) {
		if (cl[i] < '0' || cl[i] > '9' || r->body_left > (UINT64_MAX - 9) / 10)
			return HTTP_RESP_BAD_LENGTH;
		r->body_left = r->body_left * 10 + (uint64_t)(cl[i] - '0');
	}
	return 0;
}

static void discard(void *arg, const char *p, size_t n)
{
	(void)arg, (void)p, (void)n;
}

int http_resp_feed(struct http_resp *r, const char *p, size_t len, size_t *used)
{
	const char *start = p;

	while (!r->in_body) {
		if (len == 0) {
			*used = (size_t)(p - start);
			return 0;
		}
		size_t from = r->head_len > 3 ? r->head_len - 3 : 0;
		size_t k = len < r->head_cap - r->head_len ? len : r->head_cap - r->head_len;

		memcpy(r->head + r->head_len, p, k);
		r->head_len += k;
		size_t end = http_head_end(r->head, r->head_len, from);
		if (end == 0) {
			if (r->head_len == r->head_cap)
				return HTTP_RESP_BIG_HEAD;
			*used = (size_t)(p + k - start);
			return 0;
		}
		/* Bytes past the head are body: go back to them. */
		size_t extra = r->head_len - end;
		p += k - extra;
		len -= k - extra;
		int rc = resp_head(r, end);
		if (rc < 0)
			return rc;
	}
	if (r->chunked) {
		size_t n = 0;
		int rc = http_chunked_feed(&r->ch, p, len, &n, discard, NULL);

		if (rc < 0)
			return HTTP_RESP_BAD_CHUNK;
		*used = (size_t)(p - start) + (rc ? n : len);
		return rc;
	}
	if (r->to_eof) {
		*used = (size_t)(p - start) + len;
		return 0;
	}
	size_t n = len < r->body_left ? len : (size_t)r->body_left;
	r->body_left -= n;
	*used = (size_t)(p - start) + n;
	return r->body_left == 0;
}

bool http_resp_eof_ends(const struct http_resp *r)
{
	return r->in_body && r->to_eof;
}

const char *http_resp_strerror(int err)
{
	switch (err) {
	case HTTP_RESP_BAD_HEAD: return "sent a malformed response head";
	case HTTP_RESP_BIG_HEAD: return "sent a response head over 8 KiB";
	case HTTP_RESP_BAD_LENGTH: return "sent a bad Content-Length";
	case HTTP_RESP_BAD_CHUNK: return "sent a bad chunked body";
	default: return "sent a bad response";
	}
}

size_t http_resp_status_line(const struct http_resp *r)
{
	size_t n = 0;

	while (n < r->head_len && r->head[n] != '\r' && r->head[n] != '\n')
		n++;
	return n;
}
