/*
 * test_frame.c - unit tests for SSE framing (src/frame.c,
 * include/spout/frame.h).
 *
 * Single-threaded. Frames are checked byte for byte, then a small SSE parser
 * written from the WHATWG "event stream interpretation" rules (HTML
 * §9.2.6) reads the identity view of frames built from random payloads and
 * must get the payload back with its line breaks normalised to "\n". A
 * small chunked-coding decoder checks that the chunked view decodes to the
 * identity view.
 *
 * Under ASan, tests that free frames end with an explicit LeakSanitizer
 * check: Criterion runs each test in a child and only looks at assertions,
 * so a leak report printed at the child's exit would not fail anything.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spout/frame.h"
#include "sanitizers.h"

/* ------------------------------------------------------------------ */
/* sanitizer plumbing                                                 */

/* ASSERT_NO_LEAKS catches a frame nobody points to any more; a pointer
 * still on the stack hides a leak from it, so the refcount test asks the
 * allocator directly whether the block was freed (ASSERT_LIVE/FREED). */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* From the sanitizer allocator interface (gcc 12 ships no header for it):
 * non-zero iff <p> came from the allocator and is not yet freed. */
int __sanitizer_get_ownership(const volatile void *p);
#define ASSERT_NO_LEAKS()                                                    \
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,                  \
		     "LeakSanitizer found leaks (report above)")
#define ASSERT_LIVE(p)                                                       \
	cr_assert(__sanitizer_get_ownership(p), "%s was freed", #p)
#define ASSERT_FREED(p)                                                      \
	cr_assert_not(__sanitizer_get_ownership(p), "%s was not freed", #p)
#else
#define ASSERT_NO_LEAKS() ((void)0)
#define ASSERT_LIVE(p) ((void)(p))
#define ASSERT_FREED(p) ((void)(p))
#endif

/* ------------------------------------------------------------------ */
/* helpers                                                            */

static struct sp_event ev_make(uint64_t id, const char *event, const char *data,
			       size_t data_len)
{
	struct sp_event ev = {
		.topic = "news",
		.topic_len = 4,
		.topic_hash = 0x1234abcdu,
		.event = event,
		.event_len = event ? strlen(event) : 0,
		.data = data,
		.data_len = data_len,
		.id = id,
	};
	return ev;
}

static struct iovec iov_of(const struct sp_frame *f, bool chunked)
{
	return sp_frame_view(f, chunked);
}

/* Check every byte of an event frame against <sse>, the SSE text it must
 * carry, and the invariants that tie the fields together. Frees <f>. */
static void check_event_frame(struct sp_frame *f, const struct sp_event *ev,
			      const char *sse, size_t sse_len)
{
	char pre[32];
	int pre_len = snprintf(pre, sizeof(pre), "%zx\r\n", sse_len);

	cr_assert_not_null(f);
	cr_assert_eq(atomic_load(&f->refs), 1);
	cr_assert_eq(f->flags, 0);
	cr_assert_eq(f->id, ev->id);
	cr_assert_eq(f->topic_hash, ev->topic_hash);
	cr_assert_eq(f->topic_len, ev->topic_len);
	cr_assert_str_eq(f->topic, "news");
	cr_assert_eq(f->pre, (uint16_t)pre_len);
	cr_assert_eq(f->post, 2);
	cr_assert_eq(f->len, (uint32_t)(pre_len + sse_len + 2));
	cr_assert_eq(sp_frame_event_size(ev), sse_len);

	cr_assert_arr_eq(f->buf, pre, (size_t)pre_len, "chunk-size line");
	cr_assert_arr_eq(f->buf + pre_len, sse, sse_len,
			 "SSE text: got \"%.*s\"", (int)sse_len, f->buf + pre_len);
	cr_assert_arr_eq(f->buf + pre_len + sse_len, "\r\n", 2, "chunk end");

	struct iovec id = iov_of(f, false);
	cr_assert_eq(id.iov_len, sse_len);
	cr_assert_eq(id.iov_base, (void *)(f->buf + pre_len));

	struct iovec ch = iov_of(f, true);
	cr_assert_eq(ch.iov_len, f->len);
	cr_assert_eq(ch.iov_base, (void *)f->buf);

	sp_frame_release(f);
}

#define CHECK_EVENT(id, event, data, sse)                                     \
	do {                                                                 \
		struct sp_event ev_ = ev_make((id), (event), (data),        \
					      sizeof(data) - 1);            \
		check_event_frame(sp_frame_new_event(&ev_), &ev_, (sse),    \
				  sizeof(sse) - 1);                         \
	} while (0)

/* ------------------------------------------------------------------ */
/* exact bytes                                                        */

Test(frame, id_and_data)
{
	CHECK_EVENT(42, NULL, "hello", "id: 42\ndata: hello\n\n");
	CHECK_EVENT(1, NULL, "x", "id: 1\ndata: x\n\n");
	CHECK_EVENT(UINT64_MAX, NULL, "x",
		    "id: 18446744073709551615\ndata: x\n\n");
	CHECK_EVENT(1000000000, NULL, "x", "id: 1000000000\ndata: x\n\n");
	ASSERT_NO_LEAKS();
}

Test(frame, id_event_and_data)
{
	CHECK_EVENT(7, "update", "{\"a\":1}",
		    "id: 7\nevent: update\ndata: {\"a\":1}\n\n");
	CHECK_EVENT(9, "a:b", " lead", "id: 9\nevent: a:b\ndata:  lead\n\n");
	ASSERT_NO_LEAKS();
}

Test(frame, id_zero_is_omitted)
{
	CHECK_EVENT(0, NULL, "x", "data: x\n\n");
	CHECK_EVENT(0, "ping", "x", "event: ping\ndata: x\n\n");
	ASSERT_NO_LEAKS();
}

Test(frame, multiline_data)
{
	CHECK_EVENT(1, NULL, "a\nb", "id: 1\ndata: a\ndata: b\n\n");
	CHECK_EVENT(1, NULL, "a\r\nb", "id: 1\ndata: a\ndata: b\n\n");
	CHECK_EVENT(1, NULL, "a\rb", "id: 1\ndata: a\ndata: b\n\n");
	CHECK_EVENT(1, NULL, "a\nb\r\nc\rd",
		    "id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
	/* A trailing break ends a line, so an empty last line follows. */
	CHECK_EVENT(1, NULL, "a\n", "id: 1\ndata: a\ndata: \n\n");
	CHECK_EVENT(1, NULL, "a\r\n", "id: 1\ndata: a\ndata: \n\n");
	CHECK_EVENT(1, NULL, "a\r", "id: 1\ndata: a\ndata: \n\n");
	/* "\n\r" is two breaks, "\r\n" one. */
	CHECK_EVENT(1, NULL, "\n\r", "id: 1\ndata: \ndata: \ndata: \n\n");
	CHECK_EVENT(1, NULL, "\r\n", "id: 1\ndata: \ndata: \n\n");
	CHECK_EVENT(1, NULL, "a\r\r\nb", "id: 1\ndata: a\ndata: \ndata: b\n\n");
	CHECK_EVENT(1, NULL, "\n\n", "id: 1\ndata: \ndata: \ndata: \n\n");
	ASSERT_NO_LEAKS();
}

Test(frame, empty_data)
{
	/* One empty data line: a browser still dispatches it (data ""). */
	CHECK_EVENT(5, NULL, "", "id: 5\ndata: \n\n");
	CHECK_EVENT(0, NULL, "", "data: \n\n");
	CHECK_EVENT(0, "e", "", "event: e\ndata: \n\n");
	ASSERT_NO_LEAKS();
}

Test(frame, empty_data_null_pointer)
{
	/* data may be NULL when data_len is 0 (nothing to point at). */
	struct sp_event ev = ev_make(3, NULL, NULL, 0);

	check_event_frame(sp_frame_new_event(&ev), &ev, "id: 3\ndata: \n\n",
			  strlen("id: 3\ndata: \n\n"));
	ASSERT_NO_LEAKS();
}

Test(frame, topic_is_kept_outside_the_bytes)
{
	struct sp_event ev = ev_make(1, NULL, "x", 1);
	struct sp_frame *f;

	ev.topic = "a/long/topic/name";
	ev.topic_len = strlen(ev.topic);
	f = sp_frame_new_event(&ev);
	cr_assert_not_null(f);
	cr_assert_eq(f->topic_len, ev.topic_len);
	cr_assert_str_eq(f->topic, "a/long/topic/name");
	cr_assert_neq(f->topic, ev.topic, "topic is copied into the frame");
	cr_assert_eq(f->topic, f->buf + f->len, "topic follows the bytes");
	sp_frame_release(f);

	ev.topic = NULL;
	ev.topic_len = 0;
	f = sp_frame_new_event(&ev);
	cr_assert_not_null(f);
	cr_assert_str_eq(f->topic, "");
	sp_frame_release(f);
	ASSERT_NO_LEAKS();
}

/* The chunk-size line is the lowercase hex of the SSE text's length, no
 * leading zeros, then CRLF; probe lengths on every hex-digit boundary. */
Test(frame, chunk_header_hex)
{
	const size_t bodies[] = { 8,    9,     15,    16,    17,
				  255,  256,   4095,  4096,  4097,
				  65535, 65536, 65537, 1048575, 1048576,
				  3000017 };

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		/* no id, no event: body = "data: " + payload + "\n" "\n" */
		size_t body = bodies[i], plen = body - 8;
		char *payload = malloc(plen + 1);

		cr_assert_not_null(payload);
		memset(payload, 'x', plen);
		struct sp_event ev = ev_make(0, NULL, payload, plen);
		struct sp_frame *f = sp_frame_new_event(&ev);

		cr_assert_not_null(f);
		cr_assert_eq(sp_frame_event_size(&ev), body);

		char want[32];
		int wlen = snprintf(want, sizeof(want), "%zx\r\n", body);
		cr_assert_eq(f->pre, (uint16_t)wlen, "body %zu", body);
		cr_assert_arr_eq(f->buf, want, (size_t)wlen, "body %zu", body);

		/* And it parses back the way an HTTP client reads it. */
		char *end;
		unsigned long long n = strtoull(f->buf, &end, 16);
		cr_assert_eq(n, body);
		cr_assert_eq(end, f->buf + f->pre - 2);
		cr_assert_arr_eq(end, "\r\n", 2);
		cr_assert(f->buf[0] != '0', "no leading zero");
		for (const char *c = f->buf; c < end; c++)
			cr_assert((*c >= '0' && *c <= '9') ||
				  (*c >= 'a' && *c <= 'f'));

		cr_assert_eq(iov_of(f, false).iov_len, body);
		cr_assert_arr_eq(f->buf + f->len - 4, "\n\n\r\n", 4);
		sp_frame_release(f);
		free(payload);
	}
	ASSERT_NO_LEAKS();
}

/* ------------------------------------------------------------------ */
/* raw and chunk frames                                               */

Test(frame, new_raw)
{
	static const char head[] = "HTTP/1.1 200 OK\r\n"
				   "Content-Type: text/event-stream\r\n\r\n";
	struct sp_frame *f = sp_frame_new_raw(head, sizeof(head) - 1);

	cr_assert_not_null(f);
	cr_assert_eq(atomic_load(&f->refs), 1);
	cr_assert_eq(f->len, sizeof(head) - 1);
	cr_assert_eq(f->pre, 0);
	cr_assert_eq(f->post, 0);
	cr_assert_eq(f->id, 0);
	cr_assert_eq(f->flags, 0);
	cr_assert_eq(f->topic_len, 0);
	cr_assert_str_eq(f->topic, "");
	cr_assert_arr_eq(f->buf, head, sizeof(head) - 1);

	/* Not chunk-framed: both views are the whole buffer. */
	struct iovec a = iov_of(f, true), b = iov_of(f, false);
	cr_assert_eq(a.iov_base, (void *)f->buf);
	cr_assert_eq(a.iov_len, f->len);
	cr_assert_eq(b.iov_base, (void *)f->buf);
	cr_assert_eq(b.iov_len, f->len);
	sp_frame_release(f);

	f = sp_frame_new_raw(NULL, 0);
	cr_assert_not_null(f);
	cr_assert_eq(f->len, 0);
	cr_assert_eq(iov_of(f, false).iov_len, 0);
	sp_frame_release(f);
	ASSERT_NO_LEAKS();
}

Test(frame, new_chunk)
{
	struct sp_frame *f = sp_frame_new_chunk("hello", 5);

	cr_assert_not_null(f);
	cr_assert_eq(f->len, 10);
	cr_assert_eq(f->pre, 3);
	cr_assert_eq(f->post, 2);
	cr_assert_arr_eq(f->buf, "5\r\nhello\r\n", 10);
	struct iovec v = iov_of(f, false);
	cr_assert_eq(v.iov_len, 5);
	cr_assert_arr_eq(v.iov_base, "hello", 5);
	cr_assert_eq(iov_of(f, true).iov_len, 10);
	sp_frame_release(f);

	/* 0x1a = 26 bytes: multi-digit, lowercase hex. */
	f = sp_frame_new_chunk("abcdefghijklmnopqrstuvwxyz", 26);
	cr_assert_not_null(f);
	cr_assert_arr_eq(f->buf, "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n", 32);
	cr_assert_eq(f->len, 32);
	sp_frame_release(f);

	/* Zero bytes give "0\r\n\r\n", which on the wire is the LAST chunk:
	 * it ends a chunked response. Pinned here so that nobody uses it as
	 * an empty keep-alive by accident. */
	f = sp_frame_new_chunk(NULL, 0);
	cr_assert_not_null(f);
	cr_assert_eq(f->len, 5);
	cr_assert_arr_eq(f->buf, "0\r\n\r\n", 5);
	cr_assert_eq(iov_of(f, false).iov_len, 0);
	sp_frame_release(f);
	ASSERT_NO_LEAKS();
}

/* ------------------------------------------------------------------ */
/* reference counting                                                 */

Test(frame, release_frees_on_last_reference)
{
	struct sp_event ev = ev_make(1, NULL, "x", 1);
	struct sp_frame *f = sp_frame_new_event(&ev);
	volatile char sink;

	cr_assert_not_null(f);
	atomic_store(&f->refs, 3); /* the router's store for three workers */

	sp_frame_release(f);
	ASSERT_LIVE(f);
	cr_assert_eq(atomic_load(&f->refs), 2);
	sink = f->buf[f->len - 1]; /* ASan: use-after-free if freed early */
	sp_frame_release(f);
	ASSERT_LIVE(f);
	cr_assert_eq(atomic_load(&f->refs), 1);
	sink = f->buf[0];
	sp_frame_release(f); /* the last reference: now it is freed */
	ASSERT_FREED(f);
	(void)sink;
	ASSERT_NO_LEAKS();
}

Test(frame, static_frame_is_never_freed)
{
	struct sp_frame *f = sp_frame_new_raw(":\n\n", 3);

	cr_assert_not_null(f);
	f->flags |= SP_FRAME_STATIC;
	for (int i = 0; i < 5; i++)
		sp_frame_release(f);
	cr_assert_eq(atomic_load(&f->refs), 1, "refs untouched");
	ASSERT_LIVE(f);
	cr_assert_arr_eq(f->buf, ":\n\n", 3);
	f->flags = 0;
	sp_frame_release(f);
	ASSERT_FREED(f);
	ASSERT_NO_LEAKS();
}

/* ------------------------------------------------------------------ */
/* event type validation                                              */

Test(frame, event_type_valid_table)
{
	char max[SP_EVENT_TYPE_MAX + 1];

	memset(max, 'a', sizeof(max));
	const struct {
		const char *s;
		size_t len;
		bool ok;
	} t[] = {
		{ "", 0, false },
		{ "a", 1, true },
		{ "update", 6, true },
		{ "user.created", 12, true },
		{ "a-b_c:d/e", 9, true },
		{ "!~", 2, true },
		{ max, SP_EVENT_TYPE_MAX, true },
		{ max, SP_EVENT_TYPE_MAX + 1, false },
		{ "a b", 3, false },
		{ " a", 2, false },
		{ "a\t", 2, false },
		{ "a\n", 2, false },
		{ "a\r", 2, false },
		{ "a\0b", 3, false },
		{ "a\x7f", 2, false },
		{ "\x01", 1, false },
		{ "caf\xc3\xa9", 5, false }, /* non-ASCII */
		{ "\xff", 1, false },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_expect_eq(sp_event_type_valid(t[i].s, t[i].len), t[i].ok,
			     "row %zu: \"%.*s\" (len %zu)", i, (int)t[i].len,
			     t[i].s, t[i].len);
}

/* ------------------------------------------------------------------ */
/* a WHATWG event-stream parser, for the round trip                   */

struct sse_event {
	char *type;
	char *data;
	size_t data_len;
	char *last_id;
};

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		cr_assert_not_null(b->p);
	}
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static char *str_dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	cr_assert_not_null(d);
	if (n)
		memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

struct sse_parser {
	struct buf data, type, last_id_buf;
	char *last_id; /* the "last event ID string" */
	struct sse_event ev[8];
	size_t nev;
};

static void sse_dispatch(struct sse_parser *p)
{
	/* 1. last event ID string = last event ID buffer */
	free(p->last_id);
	p->last_id = str_dup_n(p->last_id_buf.p ? p->last_id_buf.p : "",
			       p->last_id_buf.len);
	/* 2. empty data buffer: reset and do not dispatch */
	if (p->data.len == 0) {
		p->type.len = 0;
		return;
	}
	/* 3. drop one trailing LF */
	if (p->data.p[p->data.len - 1] == '\n')
		p->data.len--;
	cr_assert_lt(p->nev, sizeof(p->ev) / sizeof(p->ev[0]));
	struct sse_event *e = &p->ev[p->nev++];
	e->data = str_dup_n(p->data.p, p->data.len);
	e->data_len = p->data.len;
	e->type = p->type.len ? str_dup_n(p->type.p, p->type.len)
			      : str_dup_n("message", 7);
	e->last_id = str_dup_n(p->last_id, strlen(p->last_id));
	p->data.len = 0;
	p->type.len = 0;
}

static void sse_field(struct sse_parser *p, const char *name, size_t nlen,
		      const char *val, size_t vlen)
{
	if (nlen == 5 && memcmp(name, "event", 5) == 0) {
		p->type.len = 0;
		buf_put(&p->type, val, vlen);
	} else if (nlen == 4 && memcmp(name, "data", 4) == 0) {
		buf_put(&p->data, val, vlen);
		buf_put(&p->data, "\n", 1);
	} else if (nlen == 2 && memcmp(name, "id", 2) == 0) {
		if (memchr(val, '\0', vlen) == NULL) {
			p->last_id_buf.len = 0;
			buf_put(&p->last_id_buf, val, vlen);
		}
	}
	/* "retry" and unknown fields: nothing the round trip looks at */
}

/* Interpret a complete stream. Lines end in CRLF, LF or CR; an event left
 * without its blank line at the end of the stream is discarded. */
static void sse_parse(struct sse_parser *p, const char *s, size_t len)
{
	size_t i = 0;

	if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		i = 3; /* one leading BOM is ignored */
	while (i < len) {
		size_t start = i;

		while (i < len && s[i] != '\r' && s[i] != '\n')
			i++;
		if (i == len)
			break; /* unterminated last line: not a line yet */
		size_t end = i;
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
			i++;
		i++;

		const char *line = s + start;
		size_t llen = end - start;
		const char *colon = memchr(line, ':', llen);

		if (llen == 0) {
			sse_dispatch(p);
		} else if (colon == line) {
			/* comment */
		} else if (colon != NULL) {
			const char *v = colon + 1;
			size_t vlen = llen - (size_t)(v - line);

			if (vlen && *v == ' ') {
				v++;
				vlen--;
			}
			sse_field(p, line, (size_t)(colon - line), v, vlen);
		} else {
			sse_field(p, line, llen, "", 0);
		}
	}
}

static void sse_free(struct sse_parser *p)
{
	for (size_t i = 0; i < p->nev; i++) {
		free(p->ev[i].type);
		free(p->ev[i].data);
		free(p->ev[i].last_id);
	}
	free(p->data.p);
	free(p->type.p);
	free(p->last_id_buf.p);
	free(p->last_id);
	memset(p, 0, sizeof(*p));
}

/* Decode HTTP/1.1 chunked coding (no extensions, no trailers expected). */
static void dechunk(const char *s, size_t len, struct buf *out)
{
	size_t i = 0;

	while (i < len) {
		char *end;
		unsigned long n = strtoul(s + i, &end, 16);

		cr_assert_neq(end, s + i, "chunk-size missing at %zu", i);
		i = (size_t)(end - s);
		cr_assert_leq(i + 2, len);
		cr_assert_arr_eq(s + i, "\r\n", 2, "chunk-size line end");
		i += 2;
		cr_assert_leq(i + n + 2, len, "chunk overruns the buffer");
		buf_put(out, s + i, n);
		i += n;
		cr_assert_arr_eq(s + i, "\r\n", 2, "chunk data end");
		i += 2;
	}
}

/* The parser itself, on streams the framer never produces. */
Test(frame, sse_parser_self_check)
{
	struct sse_parser p = { 0 };
	static const char s[] = "\xef\xbb\xbf: comment\r\n"
				"data:a\r\n"
				"data: b\r"
				"data\n"
				"id: 7\n"
				"event: t\n"
				"retry: 10\n"
				"\n"
				"data: lost\n\n"
				"id\n"
				"\n"
				"data: unterminated\n";

	sse_parse(&p, s, sizeof(s) - 1);
	cr_assert_eq(p.nev, 2);
	cr_assert_str_eq(p.ev[0].data, "a\nb\n");
	cr_assert_str_eq(p.ev[0].type, "t");
	cr_assert_str_eq(p.ev[0].last_id, "7");
	cr_assert_str_eq(p.ev[1].data, "lost");
	cr_assert_str_eq(p.ev[1].type, "message");
	cr_assert_str_eq(p.ev[1].last_id, "7");
	cr_assert_str_eq(p.last_id, "", "a bare \"id\" line resets the id");
	sse_free(&p);
	ASSERT_NO_LEAKS();
}

/* ------------------------------------------------------------------ */
/* random round trip                                                  */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* What a conforming client must see for <payload>: every CRLF, CR and LF
 * becomes LF. */
static void normalise_breaks(const char *s, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r') {
			buf_put(out, "\n", 1);
			if (i + 1 < len && s[i + 1] == '\n')
				i++;
		} else {
			buf_put(out, s + i, 1);
		}
	}
	buf_put(out, "", 0); /* a NUL-terminated empty buffer, too */
}

#define ROUNDS 3000

Test(frame, random_round_trip)
{
	const char *seed_env = getenv("SP_FRAME_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x5eed5eedull;
	struct buf stream = { 0 }, chunked = { 0 };
	size_t streamed = 0;

	rng_state = seed ? seed : 1;
	cr_log_info("SSE round trip seed 0x%" PRIx64
		    " (set SP_FRAME_SEED to replay)\n", seed);

	for (int round = 0; round < ROUNDS; round++) {
		/* Payload: printable ASCII with a heavy share of CR and LF,
		 * so runs like "\r\r\n\n\r" come up often. */
		size_t len = (size_t)(rng() % 200);
		if (rng() % 8 == 0)
			len = (size_t)(rng() % 5000);
		char *payload = malloc(len + 1);
		cr_assert_not_null(payload);
		for (size_t i = 0; i < len; i++) {
			uint64_t r = rng() % 100;
			payload[i] = r < 12 ? '\n' : r < 24 ? '\r'
					     : (char)(0x20 + rng() % 95);
		}

		char type[SP_EVENT_TYPE_MAX + 1];
		const char *event = NULL;
		if (rng() % 2) {
			size_t tlen = 1 + (size_t)(rng() % SP_EVENT_TYPE_MAX);
			for (size_t i = 0; i < tlen; i++)
				type[i] = (char)(0x21 + rng() % 94);
			type[tlen] = '\0';
			cr_assert(sp_event_type_valid(type, tlen));
			event = type;
		}
		uint64_t id = rng() % 3 ? rng() >> (rng() % 64) : 0;

		struct sp_event ev = ev_make(id, event, payload, len);
		struct sp_frame *f = sp_frame_new_event(&ev);
		cr_assert_not_null(f);
		struct iovec v = iov_of(f, false);
		cr_assert_eq(v.iov_len, sp_frame_event_size(&ev));

		/* One frame on its own. */
		struct sse_parser p = { 0 };
		sse_parse(&p, v.iov_base, v.iov_len);
		cr_assert_eq(p.nev, 1, "round %d: %zu events", round, p.nev);

		struct buf want = { 0 };
		normalise_breaks(payload, len, &want);
		cr_assert_eq(p.ev[0].data_len, want.len,
			     "round %d: data length %zu, want %zu", round,
			     p.ev[0].data_len, want.len);
		cr_assert_arr_eq(p.ev[0].data, want.p, want.len,
				 "round %d: data differs", round);
		cr_assert_str_eq(p.ev[0].type, event ? event : "message");
		if (id != 0) {
			char idbuf[24];
			snprintf(idbuf, sizeof(idbuf), "%" PRIu64, id);
			cr_assert_str_eq(p.ev[0].last_id, idbuf);
		} else {
			cr_assert_str_eq(p.ev[0].last_id, "");
		}
		sse_free(&p);

		/* The chunked view decodes to exactly the identity view. */
		struct buf dec = { 0 };
		struct iovec c = iov_of(f, true);
		dechunk(c.iov_base, c.iov_len, &dec);
		cr_assert_eq(dec.len, v.iov_len);
		cr_assert_arr_eq(dec.p, v.iov_base, v.iov_len);
		free(dec.p);

		/* Keep the last few frames back to back, as on a connection. */
		if (round % 7 == 0) {
			stream.len = 0;
			chunked.len = 0;
			streamed = 0;
		}
		buf_put(&stream, v.iov_base, v.iov_len);
		buf_put(&chunked, c.iov_base, c.iov_len);
		streamed++;
		if (round % 7 == 6) {
			struct sse_parser q = { 0 };
			struct buf d = { 0 };

			sse_parse(&q, stream.p, stream.len);
			cr_assert_eq(q.nev, streamed, "frames run together");
			sse_free(&q);
			dechunk(chunked.p, chunked.len, &d);
			cr_assert_eq(d.len, stream.len);
			cr_assert_arr_eq(d.p, stream.p, stream.len);
			free(d.p);
		}

		free(want.p);
		sp_frame_release(f);
		free(payload);
	}
	free(stream.p);
	free(chunked.p);
	ASSERT_NO_LEAKS();
}
