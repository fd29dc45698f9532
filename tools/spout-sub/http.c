/*
 * http.c - the client half of HTTP/1.1 that an SSE stream needs: the
 * response head (status and the few headers that matter), and the body's
 * framing: chunked (spoutd's HTTP/1.1 streams, one event per chunk),
 * Content-Length, or until the connection closes (HTTP/1.0).
 *
 * The chunked decoder is incremental: a chunk-size line, the CRLF after
 * the data and the trailer may each be split across reads.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "sub.h"

/* Case-insensitive: does the comma-separated list <v> end in token <tok>? */
static bool last_coding_is(const char *v, const char *tok)
{
	const char *last = strrchr(v, ',');

	last = last ? last + 1 : v;
	while (*last == ' ' || *last == '\t')
		last++;
	size_t n = strlen(tok);
	return strncasecmp(last, tok, n) == 0 &&
	       (last[n] == '\0' || last[n] == ' ' || last[n] == '\t' || last[n] == ';');
}

/* Parses the head in buf[0..len) (ending in the blank line). */
static int parse_head(char *buf, size_t len, struct http_resp *r, char *err, size_t errlen)
{
	char *line = buf, *end = buf + len;

	memset(r, 0, sizeof *r);
	r->content_length = -1;
	r->retry_after_s = -1;
	if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[7] < '0' || buf[7] > '9' ||
	    buf[8] != ' ') {
		snprintf(err, errlen, "not an HTTP/1.x response: '%.20s'", buf);
		return -EPROTO;
	}
	r->minor = buf[7] - '0';
	if (buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0' ||
	    buf[11] > '9') {
		snprintf(err, errlen, "bad status line '%.40s'", buf);
		return -EPROTO;
	}
	r->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	for (;;) {
		char *eol = memchr(line, '\n', (size_t)(end - line));

		if (eol == NULL)
			break;
		size_t n = (size_t)(eol - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		line[n] = '\0';
		if (line == buf) {
			const char *reason = line + 12;

			while (*reason == ' ')
				reason++;
			snprintf(r->reason, sizeof r->reason, "%s", reason);
		} else if (n == 0) {
			break;
		} else {
			char *colon = strchr(line, ':');

			if (colon != NULL) {
				char *v = colon + 1;

				*colon = '\0';
				while (*v == ' ' || *v == '\t')
					v++;
				for (char *t = v + strlen(v); t > v && (t[-1] == ' ' || t[-1] == '\t');)
					*--t = '\0';
				if (strcasecmp(line, "Transfer-Encoding") == 0) {
					r->chunked = last_coding_is(v, "chunked");
				} else if (strcasecmp(line, "Content-Length") == 0) {
					uint64_t cl;

					if (cli_parse_u64(v, 0, INT64_MAX, &cl) != 0) {
						snprintf(err, errlen, "bad Content-Length '%.30s'", v);
						return -EPROTO;
					}
					r->content_length = (int64_t)cl;
				} else if (strcasecmp(line, "Content-Type") == 0) {
					snprintf(r->content_type, sizeof r->content_type, "%s", v);
				} else if (strcasecmp(line, "Retry-After") == 0) {
					uint64_t s;

					/* Seconds only; an HTTP date is left to
					 * the back-off. */
					if (cli_parse_u64(v, 0, 86400, &s) == 0)
						r->retry_after_s = (long)s;
				}
			}
		}
		line = eol + 1;
	}
	return 0;
}

int http_read_head(int fd, char *buf, size_t cap, size_t *got, int64_t deadline_ns,
		   struct http_resp *r, char *err, size_t errlen)
{
	size_t len = 0, from = 0;

	for (;;) {
		/* Look for the blank line: "\r\n\r\n", or "\n\n" from a
		 * lenient server. It may straddle two reads, so each scan
		 * starts a little before the new bytes. */
		for (size_t i = from; i < len; i++) {
			if (buf[i] != '\n')
				continue;
			size_t next = i + 1;
			if (next < len && buf[next] == '\r')
				next++;
			if (next < len && buf[next] == '\n') {
				size_t head = next + 1;
				int rc;

				*got = len;
				rc = parse_head(buf, head, r, err, errlen);
				return rc < 0 ? rc : (int)head;
			}
		}
		from = len >= 3 ? len - 3 : 0;
		if (len == cap)
			return -E2BIG;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int n = cli_poll(&pfd, 1, cli_poll_ms(deadline_ns, -1));
		if (n == 0)
			return -ETIMEDOUT;
		if (n == -1) {
			if (errno == EINTR && !sub_interrupted)
				continue;
			return -errno;
		}
		ssize_t rd = recv(fd, buf + len, cap - len, 0);
		if (rd == 0)
			return -EPIPE;
		if (rd == -1) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		len += (size_t)rd;
	}
}

void body_init(struct body *b, const struct http_resp *r)
{
	memset(b, 0, sizeof *b);
	if (r->chunked) {
		b->mode = BODY_CHUNKED;
	} else if (r->content_length >= 0) {
		b->mode = BODY_LENGTH;
		b->left = (uint64_t)r->content_length;
		b->done = b->left == 0;
	} else {
		b->mode = BODY_UNTIL_CLOSE;
	}
}

enum { CH_SIZE, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER };

/* The chunk-size line in b->line: hex digits, then optional extensions. */
static int chunk_size(struct body *b)
{
	uint64_t v = 0;
	size_t i = 0;

	b->line[b->line_len] = '\0';
	for (; i < b->line_len; i++) {
		char c = b->line[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (d < 0)
			break;
		if (v > (UINT64_MAX >> 4))
			return -EPROTO;
		v = v * 16 + (uint64_t)d;
	}
	if (i == 0 || (i < b->line_len && b->line[i] != ';' && b->line[i] != ' ' &&
		       b->line[i] != '\t'))
		return -EPROTO;
	b->left = v;
	return 0;
}

int body_feed(struct body *b, const char *in, size_t n,
	      int (*emit)(void *ctx, const char *p, size_t n), void *ctx)
{
	size_t i = 0;
	int rc;

	if (b->mode == BODY_UNTIL_CLOSE)
		return n > 0 ? emit(ctx, in, n) : 0;
	if (b->mode == BODY_LENGTH) {
		size_t take = n < b->left ? n : (size_t)b->left;

		b->left -= take;
		b->done = b->left == 0;
		return take > 0 ? emit(ctx, in, take) : 0;
	}
	while (i < n && !b->done) {
		switch (b->state) {
		case CH_SIZE:
		case CH_TRAILER: {
			char c = in[i++];

			if (c == '\r')
				break;
			if (c != '\n') {
				if (b->line_len >= sizeof b->line - 1)
					return -EPROTO;
				b->line[b->line_len++] = c;
				break;
			}
			if (b->state == CH_TRAILER) {
				/* Trailer fields are ignored; the blank
				 * line ends the body. */
				if (b->line_len == 0)
					b->done = true;
				b->line_len = 0;
				break;
			}
			if (chunk_size(b) != 0)
				return -EPROTO;
			b->line_len = 0;
			b->state = b->left == 0 ? CH_TRAILER : CH_DATA;
			break;
		}
		case CH_DATA: {
			size_t take = n - i < b->left ? n - i : (size_t)b->left;

			if ((rc = emit(ctx, in + i, take)) != 0)
				return rc;
			i += take;
			b->left -= take;
			if (b->left == 0)
				b->state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
			/* CRLF after the data; a bare LF is accepted. */
			if (in[i] == '\r') {
				i++;
				b->state = CH_DATA_LF;
				break;
			}
			/* fall through */
		case CH_DATA_LF:
			if (in[i++] != '\n')
				return -EPROTO;
			b->state = CH_SIZE;
			break;
		}
	}
	return 0;
}

static int collect(void *ctx, const char *p, size_t n)
{
	char **cur = ctx;   /* cur[0] = write position, cur[1] = end */
	size_t room = (size_t)(cur[1] - cur[0]);

	if (n > room)
		n = room;
	memcpy(cur[0], p, n);
	cur[0] += n;
	return 0;
}

void http_error_body(int fd, const struct http_resp *r, const char *buf, size_t have,
		     int64_t deadline_ns, char *out, size_t cap)
{
	struct body b;
	char *cur[2] = { out, out + cap - 1 };

	body_init(&b, r);
	if (body_feed(&b, buf, have, collect, cur) == 0) {
		/* Whatever the framing, stop at the deadline or when the
		 * buffer is full: a reason is a sentence, not a document. */
		while (!b.done && cur[0] < cur[1]) {
			char tmp[4096];
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			int n = cli_poll(&pfd, 1, cli_poll_ms(deadline_ns, -1));
			ssize_t rd;

			if (n <= 0)
				break;
			rd = recv(fd, tmp, sizeof tmp, 0);
			if (rd <= 0 || body_feed(&b, tmp, (size_t)rd, collect, cur) != 0)
				break;
		}
	}
	*cur[0] = '\0';
	/* One line: line breaks become spaces, trailing space goes. */
	for (char *p = out; *p; p++)
		if (*p == '\r' || *p == '\n' || *p == '\t')
			*p = ' ';
	for (size_t n = strlen(out); n > 0 && out[n - 1] == ' ';)
		out[--n] = '\0';
}
