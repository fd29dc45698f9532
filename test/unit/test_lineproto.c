/*
 * test_lineproto.c - unit tests for the publisher line protocol parser
 * (src/lineproto.c, grammar in docs/protocol.md).
 *
 * Three kinds of test:
 *   - tables of single commands, good and bad, with the exact result;
 *   - the prefix property: every prefix of an input either asks for more
 *     bytes (SP_LP_PARTIAL) or gives the verdict the whole input gives, since
 *     a stateless parser only works over TCP if the split does not matter;
 *   - a model caller (struct drv) that buffers, skips and discards the way
 *     the server must, fed one stream in many different chunkings: the
 *     transcripts of replies must be identical.
 * Every parse runs on a heap copy of exactly <len> bytes so ASan catches any
 * read beyond <len>.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spout/lineproto.h"
#include "sanitizers.h"

/* Small limits so the boundaries are cheap to reach. */
static const struct sp_lp_limits LIM = { .max_line = 64, .max_payload = 32 };

#define S(lit) (lit), (sizeof(lit) - 1)   /* string literal, NULs and all */

/* ---- single parses ---------------------------------------------------- */

/* A parse result with pointers turned into offsets (-1 for NULL), so results
 * from different buffers holding the same bytes compare equal. */
struct snap {
	ssize_t rc;
	enum sp_lp_type type;
	ptrdiff_t topic, event, data;
	size_t topic_len, event_len, data_len, skip;
	const char *err;
};

static ptrdiff_t off(const char *p, const char *base)
{
	return p == NULL ? -1 : p - base;
}

/* Parse <s>[0..n) from a private copy of exactly n bytes. The command is
 * poisoned first so a field the parser forgets to set shows up. */
static struct snap parse_snap(const char *s, size_t n,
			      const struct sp_lp_limits *lim)
{
	char *b = malloc(n ? n : 1);
	struct sp_lp_cmd c;
	struct snap r;

	cr_assert_not_null(b);
	if (n)
		memcpy(b, s, n);
	memset(&c, 0xa5, sizeof(c));
	memset(&r, 0, sizeof(r));
	r.rc = sp_lp_parse(n ? b : NULL, n, lim, &c);
	if (r.rc > 0) {
		cr_assert_leq((size_t)r.rc, n, "consumed more than given");
		r.type = c.type;
		r.topic = off(c.topic, b);
		r.event = off(c.event, b);
		r.data = off(c.data, b);
		r.topic_len = c.topic_len;
		r.event_len = c.event_len;
		r.data_len = c.data_len;
		r.skip = c.skip;
		r.err = c.err;
		/* Whatever is pointed at lies inside the consumed bytes. */
		if (c.topic)
			cr_assert_leq((size_t)r.topic + r.topic_len, (size_t)r.rc);
		if (c.event)
			cr_assert_leq((size_t)r.event + r.event_len, (size_t)r.rc);
		if (c.data)
			cr_assert_leq((size_t)r.data + r.data_len, (size_t)r.rc);
		if (c.type == SP_LP_ERROR) {
			cr_assert_not_null(c.err);
			cr_assert_null(c.topic);
			cr_assert_null(c.data);
		} else {
			cr_assert_null(c.err);
			cr_assert_eq(c.skip, 0);
		}
		if (c.event == NULL)
			cr_assert_eq(c.event_len, 0);
		if (c.topic == NULL)
			cr_assert_eq(c.topic_len, 0);
	}
	free(b);
	return r;
}

/* Same verdict: for an oversized EVENT the split between "consumed now" and
 * "skip later" depends on how much had arrived, their sum does not. */
static bool snap_equiv(const struct snap *a, const struct snap *b)
{
	if (a->rc <= 0 || b->rc <= 0)
		return a->rc == b->rc;
	if ((a->err == NULL) != (b->err == NULL))
		return false;
	if (a->err && strcmp(a->err, b->err) != 0)
		return false;
	return a->type == b->type && a->topic == b->topic &&
	       a->topic_len == b->topic_len && a->event == b->event &&
	       a->event_len == b->event_len && a->data == b->data &&
	       a->data_len == b->data_len &&
	       (size_t)a->rc + a->skip == (size_t)b->rc + b->skip;
}

/* Every prefix of <s>[0..n) is PARTIAL or equivalent to the whole, and once
 * a prefix has a verdict every longer one has it too. */
static void check_prefixes(const char *s, size_t n,
			   const struct sp_lp_limits *lim)
{
	struct snap full = parse_snap(s, n, lim);
	bool decided = false;

	for (size_t p = 0; p <= n; p++) {
		struct snap r = parse_snap(s, p, lim);

		if (r.rc == SP_LP_PARTIAL) {
			cr_assert(!decided, "prefix %zu of \"%.*s\" went back "
				  "to PARTIAL", p, (int)n, s);
			continue;
		}
		decided = true;
		cr_assert(snap_equiv(&r, &full), "prefix %zu of \"%.*s\": rc "
			  "%zd err %s, whole: rc %zd err %s", p, (int)n, s,
			  r.rc, r.err ? r.err : "-", full.rc,
			  full.err ? full.err : "-");
	}
}

static bool field_is(const char *buf, ptrdiff_t o, size_t len, const char *want)
{
	if (want == NULL)
		return o == -1 && len == 0;
	return o >= 0 && len == strlen(want) && memcmp(buf + o, want, len) == 0;
}

/* ---- good and bad tables ---------------------------------------------- */

struct good {
	const char *in;
	size_t in_len;
	ssize_t rc;
	enum sp_lp_type type;
	const char *topic, *event, *data;  /* NULL: pointer must be NULL */
};

#define GOOD(lit, n, t, tp, ev, d) { (lit), sizeof(lit) - 1, (n), (t), (tp), (ev), (d) }

static const struct good goods[] = {
	GOOD("PUB a hello\n", 12, SP_LP_PUB, "a", NULL, "hello"),
	GOOD("PUB a.b hello world\n", 20, SP_LP_PUB, "a.b", NULL, "hello world"),
	GOOD("PUB a.b hello world\r\n", 21, SP_LP_PUB, "a.b", NULL, "hello world"),
	GOOD("PUB a  two  spaces \n", 20, SP_LP_PUB, "a", NULL, " two  spaces "),
	GOOD("PUB a\n", 6, SP_LP_PUB, "a", NULL, ""),
	GOOD("PUB a \n", 7, SP_LP_PUB, "a", NULL, ""),
	GOOD("PUB a \r\n", 8, SP_LP_PUB, "a", NULL, ""),
	GOOD("PUB a\r\n", 7, SP_LP_PUB, "a", NULL, ""),
	/* only one \r belongs to the terminator; a bare \r is data */
	GOOD("PUB a x\r\r\n", 10, SP_LP_PUB, "a", NULL, "x\r"),
	GOOD("PUB a x\ry\n", 10, SP_LP_PUB, "a", NULL, "x\ry"),
	GOOD("PUB Ab9_-:@~+=.x y\n", 19, SP_LP_PUB, "Ab9_-:@~+=.x", NULL, "y"),
	GOOD("PUB a {\"k\": [1, 2]}\n", 20, SP_LP_PUB, "a", NULL, "{\"k\": [1, 2]}"),
	GOOD("PUB a \xc3\xa9t\xc3\xa9\n", 12, SP_LP_PUB, "a", NULL, "\xc3\xa9t\xc3\xa9"),
	GOOD("EVENT a - 5\nhello\n", 18, SP_LP_EVENT, "a", NULL, "hello"),
	GOOD("EVENT a - 5\r\nhello\r\n", 20, SP_LP_EVENT, "a", NULL, "hello"),
	GOOD("EVENT a - 5\r\nhello\n", 19, SP_LP_EVENT, "a", NULL, "hello"),
	GOOD("EVENT a - 5\nhello\r\n", 19, SP_LP_EVENT, "a", NULL, "hello"),
	GOOD("EVENT a.b tick 3\nx y\n", 21, SP_LP_EVENT, "a.b", "tick", "x y"),
	GOOD("EVENT a - 0\n\n", 13, SP_LP_EVENT, "a", NULL, ""),
	GOOD("EVENT a - 0\r\n\r\n", 15, SP_LP_EVENT, "a", NULL, ""),
	GOOD("EVENT a - 007\nsevenxx\n", 22, SP_LP_EVENT, "a", NULL, "sevenxx"),
	GOOD("EVENT a t 4\na\r\nb\n", 17, SP_LP_EVENT, "a", "t", "a\r\nb"),
	GOOD("EVENT a t 2\n\r\n\n", 15, SP_LP_EVENT, "a", "t", "\r\n"),
	GOOD("EVENT a t 1\n\n\n", 14, SP_LP_EVENT, "a", "t", "\n"),
	GOOD("EVENT a !\"#$%&'()*+,/:;<=>?@[]^_`{|}~ 1\nx\n", 42, SP_LP_EVENT,
	     "a", "!\"#$%&'()*+,/:;<=>?@[]^_`{|}~", "x"),
	GOOD("EVENT a - 8\nPUB b c\n\n", 21, SP_LP_EVENT, "a", NULL, "PUB b c\n"),
	GOOD("PING\n", 5, SP_LP_PING, NULL, NULL, NULL),
	GOOD("PING\r\n", 6, SP_LP_PING, NULL, NULL, NULL),
	GOOD("QUIT\n", 5, SP_LP_QUIT, NULL, NULL, NULL),
	GOOD("QUIT\r\n", 6, SP_LP_QUIT, NULL, NULL, NULL),
	/* only the first command is parsed */
	GOOD("PING\nQUIT\n", 5, SP_LP_PING, NULL, NULL, NULL),
	GOOD("PUB a b\nPING\n", 8, SP_LP_PUB, "a", NULL, "b"),
	GOOD("AUTH s3cr3t\n", 12, SP_LP_AUTH, NULL, NULL, "s3cr3t"),
	GOOD("AUTH s3cr3t\r\n", 13, SP_LP_AUTH, NULL, NULL, "s3cr3t"),
	GOOD("AUTH !~x\nPUB a b\n", 9, SP_LP_AUTH, NULL, NULL, "!~x"),
};

Test(lineproto, good_commands)
{
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		struct snap r;

		r = parse_snap(g->in, g->in_len, &LIM);
		cr_assert_eq(r.rc, g->rc, "row %zu \"%s\": rc %zd want %zd (%s)",
			     i, g->in, r.rc, g->rc, r.err ? r.err : "-");
		cr_assert_eq(r.type, g->type, "row %zu", i);
		cr_assert(field_is(g->in, r.topic, r.topic_len, g->topic),
			  "row %zu topic", i);
		cr_assert(field_is(g->in, r.event, r.event_len, g->event),
			  "row %zu event", i);
		cr_assert(field_is(g->in, r.data, r.data_len, g->data),
			  "row %zu data", i);
		cr_assert_eq(r.skip, 0, "row %zu", i);
		check_prefixes(g->in, g->in_len, &LIM);
	}
}

struct bad {
	const char *in;
	size_t in_len;
	ssize_t rc;        /* bytes consumed */
	const char *err;
	size_t skip;
};

#define BAD(lit, n, e) { (lit), sizeof(lit) - 1, (n), (e), 0 }
#define BADSKIP(lit, n, e, k) { (lit), sizeof(lit) - 1, (n), (e), (k) }

static const struct bad bads[] = {
	BAD("\n", 1, "empty line"),
	BAD("\r\n", 2, "empty line"),
	BAD(" \n", 2, "unknown command"),
	BAD("pub a b\n", 8, "unknown command"),
	BAD("PUBLISH a b\n", 12, "unknown command"),
	BAD("PUB\ta b\n", 8, "unknown command"),
	BAD("\rPING\n", 6, "unknown command"),
	BAD(" PING\n", 6, "unknown command"),
	BAD("PONG\n", 5, "unknown command"),
	BAD("PING \n", 6, "unexpected argument"),
	BAD("PING x\n", 7, "unexpected argument"),
	BAD("QUIT now\r\n", 10, "unexpected argument"),
	BAD("PINGPING\n", 9, "unknown command"),
	BAD("PING\r\r\n", 7, "unknown command"),
	/* PUB */
	BAD("PUB\n", 4, "missing topic"),
	BAD("PUB \n", 5, "missing topic"),
	BAD("PUB \r\n", 6, "missing topic"),
	BAD("PUB  x\n", 7, "missing topic"),
	BAD("PUB a\tb\n", 8, "invalid character in topic"),
	BAD("PUB a..b x\n", 11, "empty topic segment"),
	BAD("PUB .a x\n", 9, "empty topic segment"),
	BAD("PUB a. x\n", 9, "empty topic segment"),
	BAD("PUB a* x\n", 9, "invalid character in topic"),
	BAD("PUB a.> x\n", 10, "invalid character in topic"),
	BAD("PUB a/b x\n", 10, "invalid character in topic"),
	BAD("PUB a\r x\n", 9, "invalid character in topic"),
	BAD("PUB a x\0y\n", 10, "NUL byte in line"),
	BAD("\0\n", 2, "NUL byte in line"),
	BAD("PUB a\0 x\n", 9, "NUL byte in line"),
	BAD("PUB a 0123456789012345678901234567890123\n", 41, "payload too large"),
	/* EVENT header: without a readable length only the header goes */
	BAD("EVENT\n", 6, "missing topic"),
	BAD("EVENT \n", 7, "missing topic"),
	BAD("EVENT a\n", 8, "missing event type"),
	BAD("EVENT a \n", 9, "missing event type"),
	BAD("EVENT  -\n", 9, "missing topic"),
	BAD("EVENT a -\n", 10, "missing payload length"),
	BAD("EVENT a - \n", 11, "missing payload length"),
	BAD("EVENT a - x\nxxxx\n", 12, "invalid payload length"),
	BAD("EVENT a - +5\nhello\n", 13, "invalid payload length"),
	BAD("EVENT a - -5\nhello\n", 13, "invalid payload length"),
	BAD("EVENT a - 5a\nhello\n", 13, "invalid payload length"),
	BAD("EVENT a - 0x5\nhello\n", 14, "invalid payload length"),
	BAD("EVENT a - 5 \nhello\n", 13, "missing payload length"),
	BAD("EVENT a - 5 x\nhello\n", 14, "invalid payload length"),
	BAD("EVENT a - 1000000000000000000\nx\n", 30, "invalid payload length"),
	BAD("EVENTS a - 1\nx\n", 13, "unknown command"),
	BAD("event a - 1\nx\n", 12, "unknown command"),
	/* EVENT with a readable length: the payload goes too */
	BAD("EVENT  - 5\nhello\nPING\n", 17, "missing topic"),
	BAD("EVENT a* - 5\nhello\n", 19, "invalid character in topic"),
	BAD("EVENT a..b - 5\nhello\n", 21, "empty topic segment"),
	BAD("EVENT a b - 5\nhello\n", 20, "invalid character in topic"),
	BAD("EVENT a\0 - 5\nhello\n", 19, "invalid character in topic"),
	BAD("EVENT a  5\nhello\n", 17, "missing event type"),
	BAD("EVENT a t\x7f 5\nhello\n", 19, "invalid event type"),
	BAD("EVENT a t\0 5\nhello\n", 19, "invalid event type"),
	BAD("EVENT a \xc3\xa9 5\nhello\n", 19, "invalid event type"),
	BAD("EVENT a* - 5\r\nhello\r\n", 21, "invalid character in topic"),
	/* the declared length is trusted: no break, resume after payload */
	BAD("EVENT a - 5\nhelloPING\n", 17, "missing line break after payload"),
	BAD("EVENT a - 5\nhello\rPING\n", 17, "missing line break after payload"),
	BAD("EVENT a - 4\nhello\n", 16, "missing line break after payload"),
	BAD("EVENT a* - 5\nhelloX", 18, "invalid character in topic"),
	/* oversized: answered as soon as the header is complete */
	BADSKIP("EVENT a - 33\n", 13, "payload too large", 34),
	BADSKIP("EVENT a - 33\r\n", 14, "payload too large", 35),
	BADSKIP("EVENT a - 33\nabc", 16, "payload too large", 31),
	BADSKIP("EVENT a - 999999999999999999\n", 29, "payload too large",
		999999999999999999ull + 1),
	BADSKIP("EVENT a* - 33\n", 14, "payload too large", 34),
	BAD("AUTH\n", 5, "missing token"),
	BAD("AUTH \n", 6, "missing token"),
	BAD("AUTH a b\n", 9, "invalid character in token"),
	BAD("AUTH \xc3\xa9\n", 8, "invalid character in token"),
	BAD("AUTHX\n", 6, "unknown command"),
	BAD("auth x\n", 7, "unknown command"),
};

Test(lineproto, bad_commands)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];
		struct snap r = parse_snap(b->in, b->in_len, &LIM);

		cr_assert_eq(r.rc, b->rc, "row %zu \"%s\": rc %zd want %zd (%s)",
			     i, b->in, r.rc, b->rc, r.err ? r.err : "-");
		cr_assert_eq(r.type, SP_LP_ERROR, "row %zu", i);
		cr_assert_str_eq(r.err, b->err, "row %zu \"%s\"", i, b->in);
		cr_assert_eq(r.skip, b->skip, "row %zu: skip %zu want %zu", i,
			     r.skip, b->skip);
		check_prefixes(b->in, b->in_len, &LIM);
	}
}

Test(lineproto, partial_inputs)
{
	static const char *const partial[] = {
		"", "P", "PU", "PUB", "PUB ", "PUB a", "PUB a b", "PUB a b\r",
		"PING", "PING\r", "QUIT", "\r", "garbage", "EVENT a - 5",
		"EVENT a - 5\r", "EVENT a - 5\n", "EVENT a - 5\nhell",
		"EVENT a - 5\nhello", "EVENT a - 5\nhello\r",
		"EVENT a - 5\r\nhello", "EVENT a* - 5\nhello",
		"EVENT a - 0\n", "EVENT a - 0\n\r", "EVENT a t 2\n\r\n\r",
	};

	for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
		struct snap r = parse_snap(partial[i], strlen(partial[i]), &LIM);

		cr_assert_eq(r.rc, SP_LP_PARTIAL, "\"%s\": rc %zd", partial[i],
			     r.rc);
	}
}

/* The parser fills the whole struct: no stale pointer survives an error. */
Test(lineproto, fields_reset_between_calls)
{
	struct sp_lp_cmd c;
	ssize_t rc;

	rc = sp_lp_parse(S("EVENT a t 1\nx\n"), &LIM, &c);
	cr_assert_eq(rc, 14);
	cr_assert_not_null(c.event);
	rc = sp_lp_parse(S("PUB a* x\n"), &LIM, &c);
	cr_assert_eq(rc, 9);
	cr_assert_eq(c.type, SP_LP_ERROR);
	cr_assert_null(c.topic);
	cr_assert_null(c.event);
	cr_assert_null(c.data);
	cr_assert_eq(c.skip, 0);
	rc = sp_lp_parse(S("PING\n"), &LIM, &c);
	cr_assert_eq(rc, 5);
	cr_assert_eq(c.type, SP_LP_PING);
	cr_assert_null(c.err);
	cr_assert_null(c.topic);
}

/* ---- pipelining --------------------------------------------------------- */

Test(lineproto, pipelined_loop)
{
	static const char in[] =
		"PUB a one\n"
		"PUB b two words\r\n"
		"EVENT c tick 6\nx\r\ny\nz\n"
		"PING\n"
		"nope\n"
		"\r\n"
		"EVENT d - 3\r\nabc\r\n"
		"QUIT\r\n"
		"PUB e tail";             /* incomplete: stays in the buffer */
	static const struct {
		enum sp_lp_type type;
		const char *topic, *event, *data, *err;
	} want[] = {
		{ SP_LP_PUB, "a", NULL, "one", NULL },
		{ SP_LP_PUB, "b", NULL, "two words", NULL },
		{ SP_LP_EVENT, "c", "tick", "x\r\ny\nz", NULL },
		{ SP_LP_PING, NULL, NULL, NULL, NULL },
		{ SP_LP_ERROR, NULL, NULL, NULL, "unknown command" },
		{ SP_LP_ERROR, NULL, NULL, NULL, "empty line" },
		{ SP_LP_EVENT, "d", NULL, "abc", NULL },
		{ SP_LP_QUIT, NULL, NULL, NULL, NULL },
	};
	size_t pos = 0, n = sizeof(in) - 1, i = 0;

	for (;;) {
		struct snap r = parse_snap(in + pos, n - pos, &LIM);

		if (r.rc == SP_LP_PARTIAL)
			break;
		cr_assert_gt(r.rc, 0);
		cr_assert_lt(i, sizeof(want) / sizeof(want[0]));
		cr_assert_eq(r.type, want[i].type, "command %zu", i);
		cr_assert(field_is(in + pos, r.topic, r.topic_len, want[i].topic));
		cr_assert(field_is(in + pos, r.event, r.event_len, want[i].event));
		cr_assert(field_is(in + pos, r.data, r.data_len, want[i].data));
		if (want[i].err)
			cr_assert_str_eq(r.err, want[i].err);
		pos += (size_t)r.rc;
		i++;
	}
	cr_assert_eq(i, sizeof(want) / sizeof(want[0]));
	cr_assert_str_eq(in + pos, "PUB e tail");
}

/* ---- EVENT -------------------------------------------------------------- */

Test(lineproto, event_multiline_payload_with_crlf)
{
	static const char in[] = "EVENT feed.x msg 16\r\nline1\r\nline2\rl3\n\r\n";
	struct snap r = parse_snap(in, sizeof(in) - 1, &LIM);

	cr_assert_eq(r.rc, (ssize_t)sizeof(in) - 1);
	cr_assert_eq(r.type, SP_LP_EVENT);
	cr_assert(field_is(in, r.data, r.data_len, "line1\r\nline2\rl3\n"));
	cr_assert(field_is(in, r.event, r.event_len, "msg"));
	check_prefixes(in, sizeof(in) - 1, &LIM);
}

/* Payload bytes are opaque: NULs and lines that look like commands are
 * data, and the payload does not count against max_line. */
Test(lineproto, event_payload_is_opaque)
{
	struct sp_lp_limits lim = { .max_line = 64, .max_payload = 200 };
	char in[256];
	int h = snprintf(in, sizeof(in), "EVENT a - 150\n");
	size_t n = (size_t)h;

	for (size_t i = 0; i < 150; i++)
		in[n++] = (i % 10 == 9) ? '\n' : (i == 3 ? '\0' : 'x');
	memcpy(in + n, "\n", 1);
	n++;

	struct snap r = parse_snap(in, n, &lim);
	cr_assert_eq(r.rc, (ssize_t)n);
	cr_assert_eq(r.type, SP_LP_EVENT);
	cr_assert_eq(r.data_len, 150);
	cr_assert_eq(r.data, h);
	check_prefixes(in, n, &lim);
}

/* The oversized verdict is given as soon as the header is complete; what
 * has arrived is consumed and the rest is left to <skip>. The total is the
 * header, nbytes and a line break of the header's kind. */
Test(lineproto, event_oversized_skip_counts)
{
	static const char lf[] = "EVENT a - 40\n";
	static const char crlf[] = "EVENT a - 40\r\n";
	char in[128];

	for (int k = 0; k < 2; k++) {
		const char *hdr = k ? crlf : lf;
		size_t hl = strlen(hdr), total = hl + 40 + (k ? 2 : 1);

		memcpy(in, hdr, hl);
		memset(in + hl, 'p', 40);
		memcpy(in + hl + 40, k ? "\r\nPING\n" : "\nPING\n", k ? 7 : 6);
		for (size_t p = 0; p <= total + 5; p++) {
			struct snap r = parse_snap(in, p, &LIM);

			if (p < hl) {
				cr_assert_eq(r.rc, SP_LP_PARTIAL, "p %zu", p);
				continue;
			}
			cr_assert_eq(r.type, SP_LP_ERROR);
			cr_assert_str_eq(r.err, "payload too large");
			size_t used = p < total ? p : total;
			cr_assert_eq(r.rc, (ssize_t)used, "k %d p %zu", k, p);
			cr_assert_eq(r.skip, total - used, "k %d p %zu", k, p);
		}
	}
}

/* The boundary: max_payload bytes are fine, one more is skipped. */
Test(lineproto, payload_limits)
{
	char in[256];
	int n;
	struct snap r;

	n = snprintf(in, sizeof(in), "EVENT a - 32\n%32s\n", "");
	r = parse_snap(in, (size_t)n, &LIM);
	cr_assert_eq(r.type, SP_LP_EVENT);
	cr_assert_eq(r.data_len, 32);
	cr_assert_eq(r.rc, n);

	n = snprintf(in, sizeof(in), "EVENT a - 33\n%33s\n", "");
	r = parse_snap(in, (size_t)n, &LIM);
	cr_assert_eq(r.type, SP_LP_ERROR);
	cr_assert_str_eq(r.err, "payload too large");
	cr_assert_eq(r.rc, n);
	cr_assert_eq(r.skip, 0);

	n = snprintf(in, sizeof(in), "PUB a %032d\n", 7);
	r = parse_snap(in, (size_t)n, &LIM);
	cr_assert_eq(r.type, SP_LP_PUB);
	cr_assert_eq(r.data_len, 32);

	n = snprintf(in, sizeof(in), "PUB a %033d\n", 7);
	r = parse_snap(in, (size_t)n, &LIM);
	cr_assert_eq(r.type, SP_LP_ERROR);
	cr_assert_str_eq(r.err, "payload too large");
	cr_assert_eq(r.rc, n);
}

Test(lineproto, topic_and_type_lengths)
{
	struct sp_lp_limits lim = { .max_line = 512, .max_payload = 32 };
	char in[600];
	int n;
	struct snap r;

	n = snprintf(in, sizeof(in), "PUB %0128d x\n", 0);
	r = parse_snap(in, (size_t)n, &lim);
	cr_assert_eq(r.type, SP_LP_PUB);
	cr_assert_eq(r.topic_len, 128);

	n = snprintf(in, sizeof(in), "PUB %0129d x\n", 0);
	r = parse_snap(in, (size_t)n, &lim);
	cr_assert_str_eq(r.err, "topic too long");

	n = snprintf(in, sizeof(in), "EVENT a %064d 1\nx\n", 0);
	r = parse_snap(in, (size_t)n, &lim);
	cr_assert_eq(r.type, SP_LP_EVENT);
	cr_assert_eq(r.event_len, 64);

	n = snprintf(in, sizeof(in), "EVENT a %065d 1\nx\n", 0);
	r = parse_snap(in, (size_t)n, &lim);
	cr_assert_str_eq(r.err, "invalid event type");
	cr_assert_eq(r.rc, n);
}

/* ---- line length -------------------------------------------------------- */

/* "PUB a " plus x's, <content> bytes before the terminator <term>. */
static size_t long_pub(char *out, size_t content, const char *term)
{
	memcpy(out, "PUB a ", 6);
	memset(out + 6, 'x', content - 6);
	memcpy(out + content, term, strlen(term));
	return content + strlen(term);
}

Test(lineproto, max_line_boundaries)
{
	struct sp_lp_limits lim = { .max_line = 64, .max_payload = 1000 };
	char in[128];
	size_t n;
	struct snap r;

	/* exactly max_line: fine with either terminator */
	n = long_pub(in, 64, "\n");
	r = parse_snap(in, n, &lim);
	cr_assert_eq(r.rc, 65);
	cr_assert_eq(r.data_len, 58);
	check_prefixes(in, n, &lim);
	n = long_pub(in, 64, "\r\n");
	r = parse_snap(in, n, &lim);
	cr_assert_eq(r.rc, 66);
	cr_assert_eq(r.data_len, 58);
	check_prefixes(in, n, &lim);

	/* ...and while it is still arriving */
	cr_assert_eq(parse_snap(in, 64, &lim).rc, SP_LP_PARTIAL);
	cr_assert_eq(parse_snap(in, 65, &lim).rc, SP_LP_PARTIAL); /* ends \r */

	/* max_line + 1: too long, complete or not, with either terminator */
	n = long_pub(in, 65, "\n");
	cr_assert_eq(parse_snap(in, n, &lim).rc, -E2BIG);
	cr_assert_eq(parse_snap(in, 65, &lim).rc, -E2BIG);
	cr_assert_eq(parse_snap(in, 64, &lim).rc, SP_LP_PARTIAL);
	check_prefixes(in, n, &lim);
	n = long_pub(in, 65, "\r\n");
	cr_assert_eq(parse_snap(in, n, &lim).rc, -E2BIG);
	check_prefixes(in, n, &lim);

	/* a line of max_line bytes whose last byte is \r, then not \n */
	n = long_pub(in, 64, "\rx\n");
	cr_assert_eq(parse_snap(in, n, &lim).rc, -E2BIG);
	check_prefixes(in, n, &lim);

	/* no terminator at all */
	memset(in, 'z', sizeof(in));
	cr_assert_eq(parse_snap(in, sizeof(in), &lim).rc, -E2BIG);
	check_prefixes(in, sizeof(in), &lim);
}

/* The EVENT header is a line like any other; the payload is not. */
Test(lineproto, max_line_event_header)
{
	struct sp_lp_limits lim = { .max_line = 16, .max_payload = 100 };
	struct snap r;

	/* 16 bytes of header */
	r = parse_snap(S("EVENT abcd xy 10\n0123456789\n"), &lim);
	cr_assert_eq(r.type, SP_LP_EVENT);
	cr_assert_eq(r.data_len, 10);
	r = parse_snap(S("EVENT abcd xyz 10\n0123456789\n"), &lim);
	cr_assert_eq(r.rc, -E2BIG);
	check_prefixes(S("EVENT abcd xyz 10\n0123456789\n"), &lim);
}

/* ---- sp_lp_skip_line ---------------------------------------------------- */

Test(lineproto, skip_line)
{
	cr_assert_eq(sp_lp_skip_line(S("")), 0);
	cr_assert_eq(sp_lp_skip_line(S("abc")), 0);
	cr_assert_eq(sp_lp_skip_line(S("abc\r")), 0);
	cr_assert_eq(sp_lp_skip_line(S("\n")), 1);
	cr_assert_eq(sp_lp_skip_line(S("abc\ndef\n")), 4);
	cr_assert_eq(sp_lp_skip_line(S("abc\r\ndef")), 5);
	cr_assert_eq(sp_lp_skip_line(S("a\0c\nx")), 4);
}

/* ---- a model caller ----------------------------------------------------- */

/* What the server's publisher connection does with the parser: keep the
 * unparsed bytes, answer every verdict, drop <skip> bytes after an oversized
 * EVENT and everything up to the next \n after -E2BIG. The replies go to a
 * transcript, one per line, with the data escaped. */
struct drv {
	const struct sp_lp_limits *lim;
	char *buf;
	size_t len, cap;
	size_t skip;
	bool discard;
	FILE *out;
	char *text;
	size_t text_len;
	size_t max_pending;   /* most bytes ever held while PARTIAL */
};

static void put_esc(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			fputs("\\n", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c == '\\')
			fputs("\\\\", f);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

static void drv_emit(struct drv *d, const struct sp_lp_cmd *c)
{
	switch (c->type) {
	case SP_LP_PUB:
	case SP_LP_EVENT:
		fputs(c->type == SP_LP_PUB ? "PUB " : "EVENT ", d->out);
		put_esc(d->out, c->topic, c->topic_len);
		fputc(' ', d->out);
		if (c->type == SP_LP_EVENT) {
			if (c->event)
				put_esc(d->out, c->event, c->event_len);
			else
				fputc('-', d->out);
			fputc(' ', d->out);
		}
		fputc('[', d->out);
		put_esc(d->out, c->data, c->data_len);
		fputs("]\n", d->out);
		break;
	case SP_LP_PING:
		fputs("PONG\n", d->out);
		break;
	case SP_LP_QUIT:
		fputs("OK bye\n", d->out);
		break;
	case SP_LP_ERROR:
		fprintf(d->out, "ERR %s\n", c->err);
		break;
	default:
		cr_assert_fail("bad type %d", (int)c->type);
	}
}

static void drv_consume(struct drv *d, size_t n)
{
	memmove(d->buf, d->buf + n, d->len - n);
	d->len -= n;
}

static void drv_run(struct drv *d)
{
	for (;;) {
		/* a fresh copy of exactly len bytes for ASan */
		char *b = malloc(d->len ? d->len : 1);
		struct sp_lp_cmd c;
		ssize_t rc;

		cr_assert_not_null(b);
		if (d->len)
			memcpy(b, d->buf, d->len);
		rc = sp_lp_parse(d->len ? b : NULL, d->len, d->lim, &c);
		if (rc == SP_LP_PARTIAL) {
			if (d->len > d->max_pending)
				d->max_pending = d->len;
			free(b);
			return;
		}
		if (rc == -E2BIG) {
			size_t k = sp_lp_skip_line(b, d->len);

			fputs("ERR line too long\n", d->out);
			if (k == 0) {
				k = d->len;
				d->discard = true;
			}
			drv_consume(d, k);
			free(b);
			continue;
		}
		cr_assert_gt(rc, 0);
		cr_assert_leq((size_t)rc, d->len);
		drv_emit(d, &c);
		if (c.type == SP_LP_ERROR && c.skip) {
			/* only ever asked for once everything present is used */
			cr_assert_eq((size_t)rc, d->len);
			d->skip = c.skip;
		}
		drv_consume(d, (size_t)rc);
		free(b);
	}
}

static void drv_feed(struct drv *d, const char *p, size_t n)
{
	while (n > 0) {
		if (d->skip) {
			size_t k = n < d->skip ? n : d->skip;

			d->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		if (d->discard) {
			size_t k = sp_lp_skip_line(p, n);

			if (k == 0)
				return;
			d->discard = false;
			p += k;
			n -= k;
			continue;
		}
		if (d->len + n > d->cap) {
			d->cap = (d->len + n) * 2;
			d->buf = realloc(d->buf, d->cap);
			cr_assert_not_null(d->buf);
		}
		memcpy(d->buf + d->len, p, n);
		d->len += n;
		n = 0;
		drv_run(d);
	}
}

/* Feed <s>[0..n) in chunks of <chunk> bytes (0: all at once; SIZE_MAX:
 * random sizes from <seed>) and return the transcript (caller frees). */
static char *transcript(const char *s, size_t n, const struct sp_lp_limits *lim,
			size_t chunk, unsigned seed, size_t *max_pending)
{
	struct drv d = { .lim = lim };
	size_t pos = 0;

	d.out = open_memstream(&d.text, &d.text_len);
	cr_assert_not_null(d.out);
	srand(seed);
	while (pos < n) {
		size_t k = chunk == 0 ? n - pos :
			   chunk == SIZE_MAX ? (size_t)(rand() % 24) + 1 : chunk;

		if (k > n - pos)
			k = n - pos;
		drv_feed(&d, s + pos, k);
		pos += k;
	}
	if (d.len)
		fprintf(d.out, "(pending %zu)\n", d.len);
	if (d.skip)
		fprintf(d.out, "(skipping %zu)\n", d.skip);
	fclose(d.out);
	free(d.buf);
	if (max_pending)
		*max_pending = d.max_pending;
	return d.text;
}

/* The stream gives the same transcript in every chunking, and never holds
 * more than max_line + max_payload + 3 bytes while waiting: a connection
 * buffer of max_line + max_payload + 4 bytes is always enough. */
static void check_chunkings(const char *s, size_t n,
			    const struct sp_lp_limits *lim, const char *golden)
{
	size_t pend;
	char *whole = transcript(s, n, lim, 0, 0, &pend);

	if (golden)
		cr_assert_str_eq(whole, golden);
	for (size_t chunk = 1; chunk <= 17; chunk++) {
		char *t = transcript(s, n, lim, chunk, 0, &pend);

		cr_assert_str_eq(t, whole, "chunk %zu", chunk);
		cr_assert_leq(pend, lim->max_line + lim->max_payload + 3);
		free(t);
	}
	for (unsigned seed = 1; seed <= 20; seed++) {
		char *t = transcript(s, n, lim, SIZE_MAX, seed, &pend);

		cr_assert_str_eq(t, whole, "seed %u", seed);
		free(t);
	}
	free(whole);
}

Test(lineproto, stream_same_for_every_chunking)
{
	char in[2048];
	size_t n = 0;
	const char *parts[] = {
		"PUB a.b hello world\n",
		"PUB a.b hello\r\n",
		"PING\r\n",
		"EVENT news update 10\nline1\r\nl2\n\n",
		"\n",
		"EVENT big - 40\n", "0123456789012345678901234567890123456789", "\n",
		"PING\n",
		"EVENT big - 40\r\n", "0123456789012345678901234567890123456789", "\r\n",
		"PUB after.big x\r\n",
		"EVENT a* - 8\nPUB b c\n\n",
		"EVENT a - 5\nhelloPING\n",
		"PUB a ", "0123456789012345678901234567890123456789",
		"0123456789012345678901234567890123456789", "\n",
		"PUB x y\n",
		"PUB a ", "0123456789012345678901234567890123456789",
		"0123456789012345678901234567890123456789",
		"0123456789012345678901234567890123456789", "\r\n",
		"EVENT a - 0\r\n\r\n",
		"QUIT\n",
		"PUB late ignored-by-server-but-parsed\n",
		"PUB par",
	};
	static const char golden[] =
		"PUB a.b [hello world]\n"
		"PUB a.b [hello]\n"
		"PONG\n"
		"EVENT news update [line1\\r\\nl2\\n]\n"
		"ERR empty line\n"
		"ERR payload too large\n"
		"PONG\n"
		"ERR payload too large\n"
		"PUB after.big [x]\n"
		"ERR invalid character in topic\n"
		"ERR missing line break after payload\n"
		"PONG\n"
		"ERR line too long\n"
		"PUB x [y]\n"
		"ERR line too long\n"
		"EVENT a - []\n"
		"OK bye\n"
		"PUB late [ignored-by-server-but-parsed]\n"
		"(pending 7)\n";

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		size_t k = strlen(parts[i]);

		cr_assert_lt(n + k, sizeof(in));
		memcpy(in + n, parts[i], k);
		n += k;
	}
	check_chunkings(in, n, &LIM, golden);
}

/* An oversized payload far larger than any buffer, announced then dribbled
 * in; the connection resynchronises on the command after it. */
Test(lineproto, oversized_event_stream)
{
	struct sp_lp_limits lim = { .max_line = 64, .max_payload = 16 };
	static char in[8192];

	for (int crlf = 0; crlf < 2; crlf++) {
		int n = snprintf(in, sizeof(in), "PING\nEVENT t x 5000%s",
				 crlf ? "\r\n" : "\n");

		memset(in + n, 'P', 5000);   /* "PPPP..." must not be parsed */
		n += 5000;
		n += snprintf(in + n, sizeof(in) - (size_t)n,
			      "%sPUB t after\nPING\n", crlf ? "\r\n" : "\n");
		check_chunkings(in, (size_t)n, &lim,
				"PONG\nERR payload too large\nPUB t [after]\nPONG\n");
	}
}

/* Random streams built from protocol fragments: whatever they mean, the
 * transcript must not depend on the chunking, and ASan must stay quiet. */
Test(lineproto, random_streams_any_chunking)
{
	static const char *const frag[] = {
		"PUB ", "EVENT ", "PING", "QUIT", "a", "a.b", "*", " ", "  ",
		"-", "t", "0", "1", "5", "12", "99", "\r", "\n", "\r\n",
		"hello", "\0", "x", "..", "EVENT a - 3\n", "EVENT a t 2\r\n",
		"EVENT a - 20\n", "PUB a b\n",
		"0123456789012345678901234567890123456789",
	};
	struct sp_lp_limits lim = { .max_line = 24, .max_payload = 8 };
	char in[600];

	srand(12345);
	for (int iter = 0; iter < 300; iter++) {
		size_t n = 0;

		while (n < 400) {
			size_t f = (size_t)rand() % (sizeof(frag) / sizeof(frag[0]));
			size_t k = frag[f][0] ? strlen(frag[f]) : 1; /* "\0" */

			memcpy(in + n, frag[f], k);
			n += k;
		}
		size_t pend;
		char *whole = transcript(in, n, &lim, 0, 0, &pend);
		unsigned chunks[] = { 1, 2, 3, 5, 8 };

		for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
			char *t = transcript(in, n, &lim, chunks[c], 0, &pend);

			cr_assert_str_eq(t, whole, "iter %d chunk %u", iter,
					 chunks[c]);
			cr_assert_leq(pend, lim.max_line + lim.max_payload + 3);
			free(t);
		}
		char *t = transcript(in, n, &lim, SIZE_MAX, (unsigned)iter, &pend);
		cr_assert_str_eq(t, whole, "iter %d random", iter);
		free(t);
		free(whole);
		/* and the prefix property at the start of the stream */
		check_prefixes(in, n < 120 ? n : 120, &lim);
	}
}

Test(lineproto, auth_token_length_bound)
{
	char line[SP_LP_TOKEN_MAX + 16];
	struct sp_lp_cmd cmd;
	const struct sp_lp_limits wide = { .max_line = 1024, .max_payload = 1024 };

	memcpy(line, "AUTH ", 5);
	memset(line + 5, 'k', SP_LP_TOKEN_MAX);
	line[5 + SP_LP_TOKEN_MAX] = '\n';
	size_t n = 5 + SP_LP_TOKEN_MAX + 1;
	cr_assert_eq(sp_lp_parse(line, n, &wide, &cmd), (ssize_t)n);
	cr_assert_eq(cmd.type, SP_LP_AUTH);
	cr_assert_eq(cmd.data_len, SP_LP_TOKEN_MAX, "the longest token is accepted");
	line[5 + SP_LP_TOKEN_MAX] = 'k';
	line[6 + SP_LP_TOKEN_MAX] = '\n';
	cr_assert_eq(sp_lp_parse(line, n + 1, &wide, &cmd), (ssize_t)(n + 1));
	cr_assert_eq(cmd.type, SP_LP_ERROR);
	cr_assert_str_eq(cmd.err, "token too long");
}
