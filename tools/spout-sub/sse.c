/*
 * sse.c - the event-stream parser, after the WHATWG HTML standard,
 * "Server-sent events", 9.2.6 Interpreting an event stream:
 *
 *   - lines end in CRLF, LF or a lone CR (a CR at the end of one read
 *     may be the first half of a CRLF split across reads: after_cr);
 *   - a UTF-8 BOM at the start of the stream is skipped;
 *   - ":" lines are comments (spoutd's heartbeats) and are ignored;
 *   - "field: value" drops one space after the colon; a line without a
 *     colon is a field with an empty value;
 *   - data lines are joined with "\n"; a blank line dispatches the event,
 *     unless no data line came (then the type is reset and nothing is
 *     dispatched);
 *   - id sets the last event ID, which persists across events and
 *     connections (an id with a NUL is ignored); retry with only digits
 *     sets the reconnection time; unknown fields are ignored.
 *
 * Input arrives in arbitrary pieces (after the chunked decoder), so every
 * state is kept in struct sse between calls. Memory is bounded by
 * SUB_EVENT_MAX per line and per event.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sub.h"

void sse_init(struct sse *s, const char *last_id)
{
	memset(s, 0, sizeof *s);
	s->retry_ms = -1;
	if (last_id != NULL)
		snprintf(s->last_id, sizeof s->last_id, "%s", last_id);
}

void sse_restart(struct sse *s)
{
	s->line_len = 0;
	s->data_len = 0;
	s->type_set = false;
	s->has_id = false;
	s->after_cr = false;
	s->bom_checked = false;
}

void sse_free(struct sse *s)
{
	free(s->line);
	free(s->data);
	s->line = s->data = NULL;
}

static int grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	if (need > SUB_EVENT_MAX + 2)
		return -E2BIG;
	size_t c = *cap ? *cap : 1024;
	while (c < need)
		c *= 2;
	*buf = cli_xrealloc(*buf, c);
	*cap = c;
	return 0;
}

static int dispatch(struct sse *s, int (*on_event)(void *, const struct sse_event *), void *ctx)
{
	int rc = 0;

	if (s->data_len > 0) {
		struct sse_event ev = {
			.type = s->type_set && s->type[0] != '\0' ? s->type : "message",
			.data = s->data,
			.data_len = s->data_len - 1,   /* the last "\n" is not data */
			.id = s->last_id,
			.has_id = s->has_id,
		};

		s->data[s->data_len - 1] = '\0';
		rc = on_event(ctx, &ev);
	}
	s->data_len = 0;
	s->type_set = false;
	s->has_id = false;
	return rc;
}

/* One complete line, without its line break. */
static int process_line(struct sse *s, const char *line, size_t len,
			int (*on_event)(void *, const struct sse_event *), void *ctx)
{
	if (len == 0)
		return dispatch(s, on_event, ctx);
	if (line[0] == ':')
		return 0;

	const char *colon = memchr(line, ':', len);
	size_t flen = colon ? (size_t)(colon - line) : len;
	const char *value = colon ? colon + 1 : line + len;
	size_t vlen = colon ? len - flen - 1 : 0;

	if (vlen > 0 && value[0] == ' ') {
		value++;
		vlen--;
	}
	if (flen == 4 && memcmp(line, "data", 4) == 0) {
		if (grow(&s->data, &s->data_cap, s->data_len + vlen + 2) != 0)
			return -E2BIG;
		memcpy(s->data + s->data_len, value, vlen);
		s->data_len += vlen;
		s->data[s->data_len++] = '\n';
	} else if (flen == 5 && memcmp(line, "event", 5) == 0) {
		/* Longer types are cut: they are shown, never sent back. */
		size_t n = vlen < sizeof s->type - 1 ? vlen : sizeof s->type - 1;

		memcpy(s->type, value, n);
		s->type[n] = '\0';
		s->type_set = true;
	} else if (flen == 2 && memcmp(line, "id", 2) == 0) {
		/* An id too long to keep cannot be resumed from either:
		 * ignore it, as one with a NUL, rather than cut it. */
		if (memchr(value, '\0', vlen) == NULL && vlen <= SUB_ID_MAX) {
			memcpy(s->last_id, value, vlen);
			s->last_id[vlen] = '\0';
			s->has_id = true;
		}
	} else if (flen == 5 && memcmp(line, "retry", 5) == 0) {
		long v = 0;
		size_t i;

		for (i = 0; i < vlen && value[i] >= '0' && value[i] <= '9'; i++)
			v = v < 100000000 ? v * 10 + (value[i] - '0') : v;
		if (i == vlen && vlen > 0)
			s->retry_ms = v;
	}
	return 0;
}

int sse_feed(struct sse *s, const char *p, size_t n,
	     int (*on_event)(void *, const struct sse_event *), void *ctx)
{
	size_t i = 0;

	if (!s->bom_checked) {
		/* The BOM may itself be split across reads: wait for three
		 * bytes (or a line break) before deciding. */
		static const char bom[3] = { '\xef', '\xbb', '\xbf' };
		size_t have = s->line_len;

		while (i < n && have + i < 3 && p[i] == bom[have + i])
			i++;
		if (have + i < 3 && i == n) {
			if (grow(&s->line, &s->line_cap, have + i + 1) != 0)
				return -E2BIG;
			memcpy(s->line + have, p, i);
			s->line_len += i;
			return 0;
		}
		s->bom_checked = true;
		if (have + i == 3) {
			s->line_len = 0;       /* a BOM: drop it */
		} else {
			/* Not a BOM: what was held back is ordinary text. */
			i = 0;
		}
		p += i;
		n -= i;
		i = 0;
	}
	while (i < n) {
		if (s->after_cr) {
			s->after_cr = false;
			if (p[i] == '\n') {
				i++;
				continue;
			}
		}
		size_t j = i;
		while (j < n && p[j] != '\n' && p[j] != '\r')
			j++;
		if (j == n) {
			if (grow(&s->line, &s->line_cap, s->line_len + (n - i) + 1) != 0)
				return -E2BIG;
			memcpy(s->line + s->line_len, p + i, n - i);
			s->line_len += n - i;
			return 0;
		}
		const char *line = p + i;
		size_t len = j - i;
		if (s->line_len > 0) {
			if (grow(&s->line, &s->line_cap, s->line_len + len + 1) != 0)
				return -E2BIG;
			memcpy(s->line + s->line_len, p + i, len);
			line = s->line;
			len += s->line_len;
			s->line_len = 0;
		}
		if (p[j] == '\r')
			s->after_cr = true;
		i = j + 1;
		int rc = process_line(s, line, len, on_event, ctx);
		if (rc != 0)
			return rc;
	}
	return 0;
}
