/*
 * proxyproto.h - the PROXY protocol header (HAProxy's spec, versions 1 and
 * 2) that a trusted load balancer sends before the HTTP request, so spout
 * sees the real client address (--trusted-proxy, --proxy-protocol).
 *
 *   v1: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n"   (text, <= 107 bytes)
 *       "PROXY TCP6 ...\r\n", "PROXY UNKNOWN ...\r\n"
 *   v2: "\r\n\r\n\0\r\nQUIT\n" + ver/cmd + family + length (16 bytes),
 *       then the addresses and optional TLVs (ignored).
 *
 * The parser is pure: it looks at the bytes received so far and says
 * complete, incomplete or invalid. Any thread.
 */
#ifndef SPOUT_PROXYPROTO_H
#define SPOUT_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "spout/netaddr.h"

#define SP_PROXY_V1_MAX 107
/* Largest v2 header accepted (16-byte preamble + addresses + TLVs). The
 * spec allows 64 KiB of TLVs; load balancers send well under 1 KiB. */
#define SP_PROXY_V2_MAX (16 + 2048)

struct sp_proxy_info {
	bool has_addr;              /* false: LOCAL (v2) or UNKNOWN (v1): use the peer */
	struct sp_ipaddr src;       /* the client, when has_addr */
	unsigned short src_port;
};

/* Parse a PROXY header at the start of <buf>[0..len). Returns the header's
 * length (> 0) with <*out> filled; 0 if more bytes are needed to decide;
 * -EINVAL with <*reason> set if the bytes are not a valid header (or not
 * one at all). */
ssize_t sp_proxy_parse(const void *buf, size_t len, struct sp_proxy_info *out,
		       const char **reason);

#endif
