/*
 * test_proxyproto.c - PROXY protocol v1/v2 parsing (src/proxyproto.c):
 * every valid form, every byte-by-byte prefix, and the refusals.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "spout/proxyproto.h"
#include "sanitizers.h"

static const char *fmt(const struct sp_ipaddr *a)
{
	static char buf[SP_IPADDR_TEXT];

	sp_ipaddr_format(a, buf, sizeof(buf));
	return buf;
}

/* Every strict prefix of a valid header must ask for more bytes. */
static void prefixes_incomplete(const void *buf, size_t len)
{
	struct sp_proxy_info pi;
	const char *why = NULL;

	for (size_t i = 0; i < len; i++)
		cr_assert_eq(sp_proxy_parse(buf, i, &pi, &why), 0, "prefix of %zu bytes", i);
}

Test(proxyproto, v1_tcp4_and_trailing_request)
{
	const char h[] = "PROXY TCP4 203.0.113.9 10.0.0.1 56324 8080\r\nGET / HTTP/1.1\r\n";
	struct sp_proxy_info pi;
	const char *why = NULL;
	size_t hl = strlen("PROXY TCP4 203.0.113.9 10.0.0.1 56324 8080\r\n");

	cr_assert_eq(sp_proxy_parse(h, sizeof(h) - 1, &pi, &why), (ssize_t)hl);
	cr_expect(pi.has_addr);
	cr_expect_str_eq(fmt(&pi.src), "203.0.113.9");
	cr_expect_eq(pi.src_port, 56324);
	prefixes_incomplete(h, hl);
}

Test(proxyproto, v1_tcp6_and_unknown)
{
	const char h6[] = "PROXY TCP6 2001:db8::9 2001:db8::1 1 65535\r\n";
	const char hu[] = "PROXY UNKNOWN\r\n";
	const char hu2[] = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
	struct sp_proxy_info pi;
	const char *why = NULL;

	cr_assert_eq(sp_proxy_parse(h6, sizeof(h6) - 1, &pi, &why), (ssize_t)sizeof(h6) - 1);
	cr_expect(pi.has_addr);
	cr_expect_str_eq(fmt(&pi.src), "2001:db8::9");
	cr_assert_eq(sp_proxy_parse(hu, sizeof(hu) - 1, &pi, &why), (ssize_t)sizeof(hu) - 1);
	cr_expect_not(pi.has_addr, "UNKNOWN: keep the peer's address");
	cr_assert_eq(sp_proxy_parse(hu2, sizeof(hu2) - 1, &pi, &why), (ssize_t)sizeof(hu2) - 1);
	cr_expect_not(pi.has_addr);
}

Test(proxyproto, v1_refusals)
{
	const char *bad[] = {
		"GET / HTTP/1.1\r\n",
		"PROXZ TCP4 1.2.3.4 1.2.3.4 1 2\r\n",
		"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",            /* LF without CR */
		"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",         /* double space */
		"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",            /* a field missing */
		"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n",        /* one too many */
		"PROXY TCP4 2001:db8::1 1.2.3.4 1 2\r\n",      /* v6 in TCP4 */
		"PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n",      /* v4 in TCP6 */
		"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n",
		"PROXY \r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\r\n",
	};
	struct sp_proxy_info pi;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;
		cr_expect_eq(sp_proxy_parse(bad[i], strlen(bad[i]), &pi, &why), -EINVAL, "%s",
			     bad[i]);
		cr_expect_not_null(why, "a reason for %s", bad[i]);
	}
}

Test(proxyproto, v1_line_too_long)
{
	char h[200];
	struct sp_proxy_info pi;
	const char *why = NULL;

	memset(h, 'x', sizeof(h));
	memcpy(h, "PROXY UNKNOWN ", 14);
	cr_expect_eq(sp_proxy_parse(h, SP_PROXY_V1_MAX - 1, &pi, &why), 0);
	cr_expect_eq(sp_proxy_parse(h, SP_PROXY_V1_MAX, &pi, &why), -EINVAL);
	cr_expect_eq(sp_proxy_parse(h, sizeof(h), &pi, &why), -EINVAL);
	/* exactly 107 bytes including CRLF is the longest allowed */
	h[SP_PROXY_V1_MAX - 2] = '\r';
	h[SP_PROXY_V1_MAX - 1] = '\n';
	cr_expect_eq(sp_proxy_parse(h, SP_PROXY_V1_MAX, &pi, &why), SP_PROXY_V1_MAX);
}

static const unsigned char sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				       0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

static size_t v2(unsigned char *out, unsigned char vercmd, unsigned char fam,
		 const unsigned char *body, size_t blen)
{
	memcpy(out, sig, 12);
	out[12] = vercmd;
	out[13] = fam;
	out[14] = (unsigned char)(blen >> 8);
	out[15] = (unsigned char)blen;
	if (blen > 0)
		memcpy(out + 16, body, blen);
	return 16 + blen;
}

Test(proxyproto, v2_inet_inet6_local_unspec)
{
	unsigned char buf[256];
	struct sp_proxy_info pi;
	const char *why = NULL;
	/* src 198.51.100.7, dst 10.0.0.1, sport 4660, dport 80, then a TLV */
	const unsigned char b4[] = { 198, 51, 100, 7, 10, 0, 0, 1, 0x12, 0x34, 0, 80,
				     0x04, 0x00, 0x01, 0xaa };
	size_t n = v2(buf, 0x21, 0x11, b4, sizeof(b4));

	cr_assert_eq(sp_proxy_parse(buf, n, &pi, &why), (ssize_t)n);
	cr_expect(pi.has_addr);
	cr_expect_str_eq(fmt(&pi.src), "198.51.100.7");
	cr_expect_eq(pi.src_port, 0x1234);
	prefixes_incomplete(buf, n);

	unsigned char b6[36] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 5, [16] = 0xfe, [17] = 0x80,
				 [32] = 0, [33] = 99 };
	n = v2(buf, 0x21, 0x21, b6, sizeof(b6));
	cr_assert_eq(sp_proxy_parse(buf, n, &pi, &why), (ssize_t)n);
	cr_expect_str_eq(fmt(&pi.src), "2001:db8::5");
	cr_expect_eq(pi.src_port, 99);

	n = v2(buf, 0x20, 0x11, b4, sizeof(b4));   /* LOCAL: addresses ignored */
	cr_assert_eq(sp_proxy_parse(buf, n, &pi, &why), (ssize_t)n);
	cr_expect_not(pi.has_addr);
	n = v2(buf, 0x21, 0x00, NULL, 0);          /* PROXY, AF_UNSPEC */
	cr_assert_eq(sp_proxy_parse(buf, n, &pi, &why), 16);
	cr_expect_not(pi.has_addr);
	n = v2(buf, 0x21, 0x31, b6, sizeof(b6));   /* AF_UNIX */
	cr_assert_eq(sp_proxy_parse(buf, n, &pi, &why), (ssize_t)n);
	cr_expect_not(pi.has_addr);
}

Test(proxyproto, v2_refusals)
{
	unsigned char buf[SP_PROXY_V2_MAX + 64];
	unsigned char body[SP_PROXY_V2_MAX] = { 0 };
	struct sp_proxy_info pi;
	const char *why = NULL;
	size_t n;

	n = v2(buf, 0x11, 0x11, body, 12);        /* version 1 in a v2 header */
	cr_expect_eq(sp_proxy_parse(buf, n, &pi, &why), -EINVAL);
	n = v2(buf, 0x22, 0x11, body, 12);        /* command 2 */
	cr_expect_eq(sp_proxy_parse(buf, n, &pi, &why), -EINVAL);
	n = v2(buf, 0x21, 0x11, body, 11);        /* short INET block */
	cr_expect_eq(sp_proxy_parse(buf, n, &pi, &why), -EINVAL);
	n = v2(buf, 0x21, 0x21, body, 35);        /* short INET6 block */
	cr_expect_eq(sp_proxy_parse(buf, n, &pi, &why), -EINVAL);
	/* too large is refused from the length field, before the body */
	n = v2(buf, 0x21, 0x11, body, SP_PROXY_V2_MAX - 15);
	cr_expect_eq(sp_proxy_parse(buf, 16, &pi, &why), -EINVAL);
	n = v2(buf, 0x21, 0x11, body, SP_PROXY_V2_MAX - 16);
	cr_expect_eq(sp_proxy_parse(buf, n, &pi, &why), (ssize_t)n, "the largest accepted");
	/* a broken signature */
	memcpy(buf, sig, 12);
	buf[7] = 'X';
	cr_expect_eq(sp_proxy_parse(buf, 16, &pi, &why), -EINVAL);
	cr_expect_eq(sp_proxy_parse(buf, 8, &pi, &why), -EINVAL, "refused at the first bad byte");
	cr_expect_eq(sp_proxy_parse("\x16\x03\x01", 3, &pi, &why), -EINVAL, "TLS is not PROXY");
}
