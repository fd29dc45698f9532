/*
 * sse.c - what a checked subscriber reads after its 200 head: the body
 * (raw, or chunked), then SSE lines, then events, then the sequence check.
 * Input may split anywhere, including inside the chunk framing.
 *
 * The SSE parser is lenient on purpose, so that the same check runs against
 * every broker: lines may end in LF or CRLF; comments (":" lines, the
 * heartbeats), "id:" (spout's numbers, nchan's "1700000000:0"), "event:" and
 * "retry:" are skipped; an event ends at its blank line and its one "data:"
 * line must be one of our payloads, "<seq>:<send_ns>:" then padding. The
 * order check uses that seq, never the broker's id.
 *
 * Event-loop thread only.
 */
#include <string.h>

#include "bench.h"
#include "sub.h"

/* Records that [lo, hi] was skipped. When GAP_MAX gaps are open the oldest is
 * forgotten: its events stay lost, and if they arrive after all they count
 * as duplicates (st.gaps_forgotten says when that happened). */
static void gap_add(struct sub *s, uint64_t lo, uint64_t hi)
{
	if (!s->gaps)
		s->gaps = xcalloc(GAP_MAX, sizeof *s->gaps);
	if (s->ngaps == GAP_MAX) {
		memmove(s->gaps, s->gaps + 1, (GAP_MAX - 1) * sizeof *s->gaps);
		s->ngaps--;
		st.gaps_forgotten++;
	}
	s->gaps[s->ngaps++] = (struct gap){ lo, hi };
}

/* Returns true if <seq> was in a gap (a late arrival), removing it. */
static bool gap_take(struct sub *s, uint64_t seq)
{
	for (unsigned i = 0; i < s->ngaps; i++) {
		struct gap *g = &s->gaps[i];

		if (seq < g->lo || seq > g->hi)
			continue;
		if (g->lo == g->hi) {
			memmove(g, g + 1, (s->ngaps - i - 1) * sizeof *g);
			s->ngaps--;
		} else if (seq == g->lo) {
			g->lo++;
		} else if (seq == g->hi) {
			g->hi--;
		} else {
			struct gap upper = { seq + 1, g->hi };

			g->hi = seq - 1;
			if (s->ngaps == GAP_MAX) {
				/* Full: forget the oldest gap, or the upper half
				 * if the oldest is the one being split. */
				st.gaps_forgotten++;
				if (i == 0)
					return true;
				memmove(s->gaps, s->gaps + 1, (GAP_MAX - 1) * sizeof *g);
				s->ngaps--;
				i--;
			}
			memmove(&s->gaps[i + 2], &s->gaps[i + 1], (s->ngaps - i - 1) * sizeof *g);
			s->gaps[i + 1] = upper;
			s->ngaps++;
		}
		return true;
	}
	return false;
}

/* One parsed event for checked subscriber <s>. <vlen> is the length of the
 * data value, <plen> that of its "<seq>:<ns>:" prefix. */
static void deliver(struct sub *s, uint64_t seq, uint64_t sent_ns,
		    uint32_t vlen, uint32_t plen, int64_t rx_ns)
{
	uint32_t want = opt.size > plen ? (uint32_t)opt.size : plen;

	/* Sent before this run started: an earlier run's event that the
	 * broker replays from its history (nchan gives a new subscriber its
	 * buffered messages by default). Same CLOCK_MONOTONIC, same boot. */
	if ((int64_t)sent_ns < run.t0) {
		st.stale++;
		return;
	}
	st.received++;
	if (run.phase == PH_PUBLISH)
		st.received_in_window++;
	run.last_rx = rx_ns;
	if (vlen != want)
		st.bad_payload++;
	if (seq >= s->next_seq) {
		if (seq > s->next_seq)
			gap_add(s, s->next_seq, seq - 1);
		s->next_seq = seq + 1;
	} else if (gap_take(s, seq)) {
		st.out_of_order++;
	} else {
		st.duplicated++;
		return;
	}
	s->unique++;
	st.unique++;
	/* Same host, same CLOCK_MONOTONIC: negative only if the payload lies. */
	hist_record(&lat, rx_ns > (int64_t)sent_ns ? (uint64_t)(rx_ns - (int64_t)sent_ns) : 0);
}

/* Parses "<seq>:<ns>:" at the start of <p>[0..n). Returns the prefix length,
 * 0 if it is not one of our payloads. */
static uint32_t parse_payload(const char *p, size_t n, uint64_t *seq, uint64_t *ns)
{
	uint64_t v[2];
	size_t i = 0;

	for (int f = 0; f < 2; f++) {
		size_t start = i;

		v[f] = 0;
		while (i < n && p[i] >= '0' && p[i] <= '9') {
			if (i - start >= 19)
				return 0;   /* more than fits: not ours */
			v[f] = v[f] * 10 + (uint64_t)(p[i] - '0');
			i++;
		}
		if (i == start || i >= n || p[i] != ':')
			return 0;
		i++;
	}
	if (v[0] == 0)
		return 0;           /* sequences start at 1 */
	*seq = v[0];
	*ns = v[1];
	return (uint32_t)i;
}

static void sse_dispatch(struct sub *s, int64_t rx_ns)
{
	if (s->ev_data) {
		if (s->ev_ok)
			deliver(s, s->ev_seq, s->ev_ns, s->ev_len, s->ev_plen, rx_ns);
		else
			st.foreign++;
	}
	s->ev_data = s->ev_ok = false;
}

/* A complete line is in s->line (first LINE_KEEP bytes) / s->line_len. */
static void sse_line(struct sub *s, int64_t rx_ns)
{
	uint32_t len = s->line_len;

	if (len > 0 && s->line_last == '\r')
		len--;
	if (len == 0) {
		sse_dispatch(s, rx_ns);
		return;
	}
	uint32_t kept = len < LINE_KEEP ? len : LINE_KEEP;
	/* Everything but data: is framing the check does not need. */
	if (kept < 5 || memcmp(s->line, "data:", 5) != 0)
		return;
	uint32_t off = (kept > 5 && s->line[5] == ' ') ? 6 : 5;
	if (s->ev_data) {
		s->ev_ok = false;   /* our events have one data line */
		return;
	}
	s->ev_data = true;
	s->ev_plen = parse_payload(s->line + off, kept - off, &s->ev_seq, &s->ev_ns);
	s->ev_ok = s->ev_plen > 0;
	s->ev_len = len - off;
}

static void sse_feed(struct sub *s, const char *p, size_t len, int64_t rx_ns)
{
	while (len > 0) {
		const char *nl = memchr(p, '\n', len);
		size_t n = nl ? (size_t)(nl - p) : len;

		if (n > 0) {
			if (s->line_len < LINE_KEEP) {
				size_t k = LINE_KEEP - s->line_len;
				memcpy(s->line + s->line_len, p, k < n ? k : n);
			}
			s->line_len = n > UINT32_MAX - s->line_len ? UINT32_MAX
								    : s->line_len + (uint32_t)n;
			s->line_last = p[n - 1];
		}
		if (!nl)
			return;
		sse_line(s, rx_ns);
		s->line_len = 0;
		s->line_last = 0;
		p = nl + 1;
		len -= n + 1;
	}
}

struct feed_ctx {
	struct sub *s;
	int64_t rx_ns;
};

static void chunk_sink(void *arg, const char *p, size_t n)
{
	struct feed_ctx *f = arg;

	sse_feed(f->s, p, n, f->rx_ns);
}

void sub_reset_parser(struct sub *s)
{
	s->line_len = 0;
	s->line_last = 0;
	s->ch = (struct http_chunked){ 0 };
	s->ev_data = s->ev_ok = false;
}

/* Feeds response body bytes to <s>, read at <rx_ns>. Returns 0, 1 when the
 * server ended the stream (last chunk), -1 on a framing error. */
int sub_body_feed(struct sub *s, const char *p, size_t len, int64_t rx_ns)
{
	if (!s->chunked) {
		sse_feed(s, p, len, rx_ns);
		return 0;
	}
	struct feed_ctx f = { s, rx_ns };
	size_t used;
	return http_chunked_feed(&s->ch, p, len, &used, chunk_sink, &f);
}
