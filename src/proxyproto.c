/*
 * proxyproto.c - PROXY protocol v1/v2 header parser (see proxyproto.h and
 * https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt).
 *
 * Strict where it costs nothing: a v1 line must use the exact single-space
 * layout and numeric addresses of its family, a v2 header must carry
 * version 2 and enough address bytes for its family. Whatever a header
 * says beyond the source address (destination, TLVs) is ignored. Pure.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "spout/proxyproto.h"

static const uint8_t v2_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

static ssize_t bad(const char **reason, const char *why)
{
	*reason = why;
	return -EINVAL;
}

/* True if <buf>[0..len) is a prefix of <want>[0..wlen) (or the reverse). */
static bool prefix_of(const uint8_t *buf, size_t len, const void *want, size_t wlen)
{
	return memcmp(buf, want, len < wlen ? len : wlen) == 0;
}

/* The next space-ended field of a v1 line: [*pos, space). */
static bool v1_field(const char *line, size_t end, size_t *pos, const char **f, size_t *flen)
{
	size_t i = *pos;

	while (i < end && line[i] != ' ')
		i++;
	if (i == *pos)
		return false;
	*f = line + *pos;
	*flen = i - *pos;
	*pos = i < end ? i + 1 : i;
	return true;
}

static bool v1_port(const char *s, size_t n, unsigned short *out)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (unsigned short)v;
	return true;
}

static ssize_t parse_v1(const char *buf, size_t len, struct sp_proxy_info *out,
			const char **reason)
{
	size_t scan = len < SP_PROXY_V1_MAX ? len : SP_PROXY_V1_MAX;
	const char *lf = memchr(buf, '\n', scan);

	if (lf == NULL)
		return len < SP_PROXY_V1_MAX ? 0 : bad(reason, "PROXY v1 line too long");
	size_t total = (size_t)(lf - buf) + 1;
	if (total < 8 || buf[total - 2] != '\r')
		return bad(reason, "PROXY v1 line must end in CRLF");
	size_t end = total - 2, pos = 6;   /* after "PROXY " */
	const char *proto, *src, *dst, *sport, *dport;
	size_t plen, slen, dlen, splen, dplen;

	if (!v1_field(buf, end, &pos, &proto, &plen))
		return bad(reason, "PROXY v1: missing protocol");
	if (plen == 7 && memcmp(proto, "UNKNOWN", 7) == 0) {
		out->has_addr = false;   /* the rest of the line is ignored */
		return (ssize_t)total;
	}
	bool v4 = plen == 4 && memcmp(proto, "TCP4", 4) == 0;
	if (!v4 && !(plen == 4 && memcmp(proto, "TCP6", 4) == 0))
		return bad(reason, "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN");
	if (!v1_field(buf, end, &pos, &src, &slen) || !v1_field(buf, end, &pos, &dst, &dlen) ||
	    !v1_field(buf, end, &pos, &sport, &splen) || !v1_field(buf, end, &pos, &dport, &dplen) ||
	    dport + dplen != buf + end)
		return bad(reason, "PROXY v1: expected 4 fields after the protocol");
	struct sp_ipaddr d;
	unsigned short dp;
	if (sp_ipaddr_parse(src, slen, &out->src) != 0 || sp_ipaddr_parse(dst, dlen, &d) != 0 ||
	    sp_ipaddr_is_v4(&out->src) != v4 || sp_ipaddr_is_v4(&d) != v4)
		return bad(reason, "PROXY v1: bad address for the protocol");
	if (!v1_port(sport, splen, &out->src_port) || !v1_port(dport, dplen, &dp))
		return bad(reason, "PROXY v1: bad port");
	out->has_addr = true;
	return (ssize_t)total;
}

static ssize_t parse_v2(const uint8_t *b, size_t len, struct sp_proxy_info *out,
			const char **reason)
{
	if (len < 16)
		return 0;
	if ((b[12] & 0xf0) != 0x20)
		return bad(reason, "PROXY v2: unsupported version");
	unsigned cmd = b[12] & 0x0f;
	unsigned fam = b[13] >> 4;
	size_t body = (size_t)b[14] << 8 | b[15];
	if (16 + body > SP_PROXY_V2_MAX)
		return bad(reason, "PROXY v2 header too large");
	if (cmd > 1)
		return bad(reason, "PROXY v2: unknown command");
	if (len < 16 + body)
		return 0;
	out->has_addr = false;
	if (cmd == 0)            /* LOCAL: the proxy's own connection (health check) */
		return (ssize_t)(16 + body);
	if (fam == 1) {          /* AF_INET: src, dst, sport, dport */
		if (body < 12)
			return bad(reason, "PROXY v2: short IPv4 address block");
		struct sp_ipaddr a;
		memcpy(a.b, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12);
		memcpy(a.b + 12, b + 16, 4);
		out->src = a;
		out->src_port = (unsigned short)(b[24] << 8 | b[25]);
		out->has_addr = true;
	} else if (fam == 2) {   /* AF_INET6 */
		if (body < 36)
			return bad(reason, "PROXY v2: short IPv6 address block");
		memcpy(out->src.b, b + 16, 16);
		out->src_port = (unsigned short)(b[48] << 8 | b[49]);
		out->has_addr = true;
	}
	/* AF_UNSPEC and AF_UNIX: no address to use; keep the peer's. */
	return (ssize_t)(16 + body);
}

ssize_t sp_proxy_parse(const void *buf, size_t len, struct sp_proxy_info *out,
		       const char **reason)
{
	const uint8_t *b = buf;

	if (len == 0)
		return 0;
	if (b[0] == 'P') {
		if (!prefix_of(b, len, "PROXY ", 6))
			return bad(reason, "not a PROXY protocol header");
		return len < 6 ? 0 : parse_v1(buf, len, out, reason);
	}
	if (!prefix_of(b, len, v2_sig, sizeof(v2_sig)))
		return bad(reason, "not a PROXY protocol header");
	return len < sizeof(v2_sig) ? 0 : parse_v2(b, len, out, reason);
}
