/*
 * test_netaddr.c - client addresses, CIDR lists and the X-Forwarded-For
 * walk (src/netaddr.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "spout/netaddr.h"
#include "sanitizers.h"

static struct sp_ipaddr ip(const char *s)
{
	struct sp_ipaddr a;

	cr_assert_eq(sp_ipaddr_parse(s, strlen(s), &a), 0, "parse %s", s);
	return a;
}

static const char *fmt(const struct sp_ipaddr *a)
{
	static char buf[SP_IPADDR_TEXT];

	sp_ipaddr_format(a, buf, sizeof(buf));
	return buf;
}

Test(netaddr, parse_and_format_round_trip)
{
	const char *ok[] = { "1.2.3.4", "0.0.0.0", "255.255.255.255", "::1", "2001:db8::7",
			     "fe80::1:2:3:4" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct sp_ipaddr a = ip(ok[i]);
		cr_expect_str_eq(fmt(&a), ok[i]);
	}
	struct sp_ipaddr a = ip("  10.0.0.9\t");
	cr_expect_str_eq(fmt(&a), "10.0.0.9", "surrounding blanks are skipped");
	cr_expect(sp_ipaddr_is_v4(&a));
	cr_expect_not(sp_ipaddr_is_v4(&(struct sp_ipaddr){ .b = { 0x20, 0x01 } }));
}

Test(netaddr, parse_rejects)
{
	const char *bad[] = { "", " ", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4:80",
			      "[::1]", "::1%eth0", "example.com", "1.2.3.4/8", "::g",
			      "01234567890123456789012345678901234567890123456789" };
	struct sp_ipaddr a;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(sp_ipaddr_parse(bad[i], strlen(bad[i]), &a), -EINVAL, "%s", bad[i]);
	/* only <len> bytes are read: "1.2.3.4" inside a longer buffer */
	cr_expect_eq(sp_ipaddr_parse("1.2.3.4,5.6.7.8", 7, &a), 0);
	cr_expect_str_eq(fmt(&a), "1.2.3.4");
}

Test(netaddr, from_sockaddr_maps_v4)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	struct sockaddr sa = { .sa_family = AF_UNIX };
	struct sp_ipaddr a;

	inet_pton(AF_INET, "192.0.2.7", &in.sin_addr);
	cr_assert_eq(sp_ipaddr_from_sockaddr((struct sockaddr *)&in, &a), 0);
	cr_expect_str_eq(fmt(&a), "192.0.2.7");
	cr_expect(memcmp(a.b, ip("::ffff:192.0.2.7").b, 16) == 0,
		  "v4 and v4-mapped v6 are the same client");
	inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
	cr_assert_eq(sp_ipaddr_from_sockaddr((struct sockaddr *)&in6, &a), 0);
	cr_expect_str_eq(fmt(&a), "2001:db8::1");
	cr_expect_eq(sp_ipaddr_from_sockaddr(&sa, &a), -EAFNOSUPPORT);
}

Test(netaddr, loopback)
{
	struct sp_ipaddr a;

	cr_expect(sp_ipaddr_is_loopback((a = ip("127.0.0.1"), &a)));
	cr_expect(sp_ipaddr_is_loopback((a = ip("127.255.0.9"), &a)));
	cr_expect(sp_ipaddr_is_loopback((a = ip("::1"), &a)));
	cr_expect_not(sp_ipaddr_is_loopback((a = ip("128.0.0.1"), &a)));
	cr_expect_not(sp_ipaddr_is_loopback((a = ip("::2"), &a)));
	cr_expect_not(sp_ipaddr_is_loopback((a = ip("0.0.0.0"), &a)));
}

Test(netaddr, limit_key_is_v6_slash_64)
{
	struct sp_ipaddr a = ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), b = ip("2001:db8:1:2::9"), k1, k2;

	sp_ipaddr_limit_key(&a, &k1);
	sp_ipaddr_limit_key(&b, &k2);
	cr_expect(memcmp(k1.b, k2.b, 16) == 0, "same /64, same key");
	b = ip("2001:db8:1:3::9");
	sp_ipaddr_limit_key(&b, &k2);
	cr_expect(memcmp(k1.b, k2.b, 16) != 0, "another /64");
	a = ip("10.1.2.3");
	b = ip("10.1.2.4");
	sp_ipaddr_limit_key(&a, &k1);
	sp_ipaddr_limit_key(&b, &k2);
	cr_expect(memcmp(k1.b, k2.b, 16) != 0, "v4: each address on its own");
	cr_expect(memcmp(k1.b, a.b, 16) == 0);
}

Test(netaddr, cidr_match)
{
	struct sp_cidr c;
	struct sp_ipaddr a;

	cr_assert_eq(sp_cidr_parse("10.0.0.0/8", &c), 0);
	cr_expect(sp_cidr_match(&c, (a = ip("10.200.3.4"), &a)));
	cr_expect_not(sp_cidr_match(&c, (a = ip("11.0.0.1"), &a)));
	cr_expect_not(sp_cidr_match(&c, (a = ip("::a00:1"), &a)), "v4 range, v6 address");
	cr_assert_eq(sp_cidr_parse("10.1.2.3", &c), 0, "a bare address is /32");
	cr_expect(sp_cidr_match(&c, (a = ip("10.1.2.3"), &a)));
	cr_expect_not(sp_cidr_match(&c, (a = ip("10.1.2.4"), &a)));
	cr_assert_eq(sp_cidr_parse("10.1.2.99/24", &c), 0, "host bits are masked");
	cr_expect(sp_cidr_match(&c, (a = ip("10.1.2.1"), &a)));
	cr_assert_eq(sp_cidr_parse("0.0.0.0/0", &c), 0);
	cr_expect(sp_cidr_match(&c, (a = ip("203.0.113.1"), &a)));
	cr_expect_not(sp_cidr_match(&c, (a = ip("2001:db8::1"), &a)), "v4 /0 is all of v4 only");
	cr_assert_eq(sp_cidr_parse("2001:db8::/33", &c), 0);
	cr_expect(sp_cidr_match(&c, (a = ip("2001:db8:7fff::1"), &a)));
	cr_expect_not(sp_cidr_match(&c, (a = ip("2001:db8:8000::1"), &a)));
	cr_assert_eq(sp_cidr_parse("::/0", &c), 0);
	cr_expect(sp_cidr_match(&c, (a = ip("1.2.3.4"), &a)), "::/0 is everything");
	cr_assert_eq(sp_cidr_parse("10.0.0.0/31", &c), 0);
	cr_expect(sp_cidr_match(&c, (a = ip("10.0.0.1"), &a)));
	cr_expect_not(sp_cidr_match(&c, (a = ip("10.0.0.2"), &a)));
}

Test(netaddr, cidr_parse_rejects)
{
	const char *bad[] = { "", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1",
			      "10.0.0.0/8x", "10.0.0.0/ 8", "x/8", "10.0.0.0/08a" };
	struct sp_cidr c;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(sp_cidr_parse(bad[i], &c), -EINVAL, "%s", bad[i]);
}

/* X-Forwarded-For: rightmost untrusted address. */
static int xff(const char *const *v, unsigned n, const char *trusted, struct sp_ipaddr *out)
{
	struct sp_cidr t[4];
	unsigned nt = 0;
	size_t lens[8];
	char buf[128];

	snprintf(buf, sizeof(buf), "%s", trusted);
	for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save))
		cr_assert_eq(sp_cidr_parse(p, &t[nt++]), 0);
	for (unsigned i = 0; i < n; i++)
		lens[i] = strlen(v[i]);
	return sp_xff_client(v, lens, n, t, nt, out);
}

Test(netaddr, xff_rightmost_untrusted)
{
	struct sp_ipaddr a;
	const char *one[] = { "203.0.113.9, 10.0.0.2, 10.0.0.3" };

	cr_assert_eq(xff(one, 1, "10.0.0.0/8", &a), 1);
	cr_expect_str_eq(fmt(&a), "203.0.113.9");
	/* a client-forged entry left of the real client is not believed */
	const char *forged[] = { "1.1.1.1, 198.51.100.4, 10.0.0.2" };
	cr_assert_eq(xff(forged, 1, "10.0.0.0/8", &a), 1);
	cr_expect_str_eq(fmt(&a), "198.51.100.4");
	/* several lines are one list (HAProxy appends a line of its own) */
	const char *lines[] = { "6.6.6.6", "198.51.100.4", "10.9.9.9" };
	cr_assert_eq(xff(lines, 3, "10.0.0.0/8", &a), 1);
	cr_expect_str_eq(fmt(&a), "198.51.100.4");
	/* all trusted: the leftmost */
	const char *all[] = { "10.0.0.1,10.0.0.2" };
	cr_assert_eq(xff(all, 1, "10.0.0.0/8", &a), 1);
	cr_expect_str_eq(fmt(&a), "10.0.0.1");
	/* v6 and blanks and empty entries */
	const char *v6[] = { " 2001:db8::5 ,, \t10.0.0.7 " };
	cr_assert_eq(xff(v6, 1, "10.0.0.0/8", &a), 1);
	cr_expect_str_eq(fmt(&a), "2001:db8::5");
}

Test(netaddr, xff_errors_and_empty)
{
	struct sp_ipaddr a;
	const char *empty[] = { "", " , " };
	const char *junk[] = { "203.0.113.9, unknown" };
	const char *junk_left[] = { "garbage, 203.0.113.9" };
	const char *port[] = { "203.0.113.9:1234" };

	cr_expect_eq(xff(empty, 2, "10.0.0.0/8", &a), 0, "no entry at all");
	cr_expect_eq(xff(junk, 1, "10.0.0.0/8", &a), -EINVAL, "the entry that must be read");
	cr_expect_eq(xff(junk_left, 1, "10.0.0.0/8", &a), 1,
		     "junk left of the client is never read");
	cr_expect_str_eq(fmt(&a), "203.0.113.9");
	cr_expect_eq(xff(port, 1, "10.0.0.0/8", &a), -EINVAL, "addr:port is not an address");
}
