/*
 * test_topic.c - topic validation, percent-decoding and hashing
 * (src/topic.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "spout/topic.h"
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

/* ---- validation ------------------------------------------------------- */

struct check_case {
	const char *s;
	size_t len;          /* 0: strlen(s) (an empty name is tested apart) */
	const char *reason;  /* NULL: valid */
};

static const struct check_case check_cases[] = {
	{ "a", 0, NULL },
	{ "news", 0, NULL },
	{ "news.sport.football", 0, NULL },
	{ "AZaz09_-:@~+=", 0, NULL },
	{ "orders:eu-west.42", 0, NULL },
	{ "user@example.com", 0, NULL },
	{ "a.b.c.d.e.f.g", 0, NULL },
	{ ".a", 0, "empty topic segment" },
	{ "a.", 0, "empty topic segment" },
	{ "a..b", 0, "empty topic segment" },
	{ ".", 0, "empty topic segment" },
	{ "a b", 0, "invalid character in topic" },
	{ "a/b", 0, "invalid character in topic" },
	{ "a?b", 0, "invalid character in topic" },
	{ "a%41", 0, "invalid character in topic" },
	{ "a\tb", 0, "invalid character in topic" },
	{ "a\nb", 0, "invalid character in topic" },
	{ "\xc3\xa9", 0, "invalid character in topic" },
	{ "a\x7f", 0, "invalid character in topic" },
	/* pattern characters are reserved */
	{ "*", 0, "invalid character in topic" },
	{ "a.*", 0, "invalid character in topic" },
	{ "a.>", 0, "invalid character in topic" },
	/* an embedded NUL counts, it does not end the name */
	{ "a\0b", 3, "invalid character in topic" },
};

ParameterizedTestParameters(topic, check)
{
	INDEX_PARAMS(check_cases);
}

ParameterizedTest(size_t *i, topic, check)
{
	const struct check_case *c = &check_cases[*i];
	size_t len = c->len ? c->len : strlen(c->s);
	const char *got = sp_topic_check(c->s, len);

	if (c->reason == NULL) {
		cr_expect_null(got, "\"%s\": rejected: %s", c->s, got);
		cr_expect(sp_topic_valid(c->s, len));
	} else {
		cr_assert_not_null(got, "\"%s\": accepted", c->s);
		cr_expect_str_eq(got, c->reason, "\"%s\"", c->s);
		cr_expect_not(sp_topic_valid(c->s, len));
	}
}

Test(topic, check_empty)
{
	cr_expect_str_eq(sp_topic_check("", 0), "empty topic");
	/* the length rules, not the NUL */
	cr_expect_str_eq(sp_topic_check("abc", 0), "empty topic");
	cr_expect_null(sp_topic_check("abc", 2));
}

Test(topic, check_length)
{
	char s[SP_TOPIC_MAX + 2];

	memset(s, 'x', sizeof(s));
	cr_expect_null(sp_topic_check(s, SP_TOPIC_MAX));
	cr_expect_str_eq(sp_topic_check(s, SP_TOPIC_MAX + 1),
			 "topic too long");
	/* many short segments up to the limit */
	for (size_t i = 1; i < SP_TOPIC_MAX; i += 2)
		s[i] = '.';
	cr_expect_null(sp_topic_check(s, SP_TOPIC_MAX - 1));
	cr_expect_str_eq(sp_topic_check(s, SP_TOPIC_MAX),
			 "empty topic segment");
}

/* ---- percent-decoding ------------------------------------------------- */

struct decode_case {
	const char *in;
	const char *out;     /* NULL: expect <err> */
	ssize_t err;
};

static const struct decode_case decode_cases[] = {
	{ "", "", 0 },
	{ "abc", "abc", 0 },
	{ "%41", "A", 0 },
	{ "%4a%4A", "JJ", 0 },
	{ "a%2Eb", "a.b", 0 },
	{ "a+b", "a+b", 0 },          /* '+' is not a space here */
	{ "%2B", "+", 0 },
	{ "%20", " ", 0 },
	{ "%25", "%", 0 },
	{ "%2541", "%41", 0 },        /* decoded once only */
	{ "%C3%A9", "\xc3\xa9", 0 },
	{ "%ff", "\xff", 0 },
	{ "%", NULL, -EINVAL },
	{ "a%", NULL, -EINVAL },
	{ "%4", NULL, -EINVAL },
	{ "ab%4", NULL, -EINVAL },
	{ "%zz", NULL, -EINVAL },
	{ "%g0", NULL, -EINVAL },
	{ "%0g", NULL, -EINVAL },
	{ "%-1", NULL, -EINVAL },
	{ "%00", NULL, -EINVAL },     /* decoded NUL */
	{ "a%00b", NULL, -EINVAL },
};

ParameterizedTestParameters(topic, decode)
{
	INDEX_PARAMS(decode_cases);
}

ParameterizedTest(size_t *i, topic, decode)
{
	const struct decode_case *c = &decode_cases[*i];
	char out[64];
	char inplace[64];
	size_t len = strlen(c->in);
	ssize_t n = sp_percent_decode(c->in, len, out, sizeof(out));

	if (c->out == NULL) {
		cr_expect_eq(n, c->err, "\"%s\": %zd", c->in, n);
		return;
	}
	cr_assert_eq(n, (ssize_t)strlen(c->out), "\"%s\": %zd", c->in, n);
	cr_expect(memcmp(out, c->out, (size_t)n) == 0, "\"%s\"", c->in);

	/* <out> may equal <in> */
	memcpy(inplace, c->in, len);
	n = sp_percent_decode(inplace, len, inplace, sizeof(inplace));
	cr_assert_eq(n, (ssize_t)strlen(c->out));
	cr_expect(memcmp(inplace, c->out, (size_t)n) == 0, "\"%s\" in place",
		  c->in);
}

Test(topic, decode_capacity)
{
	char out[8];

	memset(out, '#', sizeof(out));
	cr_expect_eq(sp_percent_decode("abcd", 4, out, 4), 4);
	cr_expect_eq(sp_percent_decode("abcde", 5, out, 4), -ENOSPC);
	cr_expect_eq(out[4], '#', "wrote past cap");
	/* capacity counts decoded bytes, not input bytes */
	cr_expect_eq(sp_percent_decode("%41%42%43%44", 12, out, 4), 4);
	cr_expect(memcmp(out, "ABCD", 4) == 0);
	cr_expect_eq(sp_percent_decode("%41%42%43%44%45", 15, out, 4),
		     -ENOSPC);
	cr_expect_eq(sp_percent_decode("", 0, out, 0), 0);
	cr_expect_eq(sp_percent_decode("a", 1, out, 0), -ENOSPC);
}

Test(topic, decode_respects_len)
{
	char out[8];

	/* the escape is cut by <len>: malformed, not read past the end */
	cr_expect_eq(sp_percent_decode("a%41", 3, out, sizeof(out)), -EINVAL);
	cr_expect_eq(sp_percent_decode("a%41", 1, out, sizeof(out)), 1);
}

/* ---- hashing ---------------------------------------------------------- */

/* The hash keys every topic table; a silent change of algorithm or seed
 * would still pass a "same input, same output" test, so pin values.
 * "" is XXH3-64's published empty-input value. */
Test(topic, hash_pinned_values)
{
	cr_expect_eq(sp_topic_hash("", 0), 0x2d06800538d394c2ULL);
	cr_expect_eq(sp_topic_hash("a", 1), 0xe6c632b61e964e1fULL);
	cr_expect_eq(sp_topic_hash("news.sport", 10), 0x5462f7e545c2b3c9ULL);
	cr_expect_eq(sp_topic_hash("orders:eu-west.42", 17),
		     0x788df7a7c4f08e35ULL);
}

Test(topic, hash_depends_on_bytes_only)
{
	static const char name[] = "news.sport.football";
	char *copy = malloc(sizeof(name) + 7);
	cr_assert_not_null(copy);

	/* different addresses and alignments, same bytes, same hash */
	for (size_t off = 0; off < 8; off++) {
		memcpy(copy + off, name, sizeof(name) - 1);
		cr_expect_eq(sp_topic_hash(copy + off, sizeof(name) - 1),
			     sp_topic_hash(name, sizeof(name) - 1),
			     "offset %zu", off);
	}
	free(copy);

	/* only <len> bytes count */
	cr_expect_eq(sp_topic_hash("news.x", 4), sp_topic_hash("news", 4));
	cr_expect_neq(sp_topic_hash("news", 4), sp_topic_hash("news.", 5));
	cr_expect_neq(sp_topic_hash("a", 1), sp_topic_hash("A", 1));
	cr_expect_neq(sp_topic_hash("a.b", 3), sp_topic_hash("b.a", 3));
}

/* Distinct short names do not collide (a smoke test, not a proof). */
Test(topic, hash_no_collisions_small_set)
{
	enum { N = 4096 };
	uint64_t *h = malloc(N * sizeof(*h));
	cr_assert_not_null(h);

	for (int i = 0; i < N; i++) {
		char s[32];
		int n = snprintf(s, sizeof(s), "t.%d", i);
		h[i] = sp_topic_hash(s, (size_t)n);
		for (int j = 0; j < i; j++)
			cr_assert_neq(h[i], h[j], "t.%d vs t.%d", i, j);
	}
	free(h);
}
