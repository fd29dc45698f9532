/*
 * netaddr.h - client addresses: the form spout keys per-client limits on,
 * CIDR lists (--trusted-proxy), and the X-Forwarded-For walk.
 *
 * An IPv4 address is kept as its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so
 * one 16-byte compare serves both families and a v4 client that reaches a
 * dual-stack listener is the same client either way. Pure functions; any
 * thread.
 */
#ifndef SPOUT_NETADDR_H
#define SPOUT_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct sp_ipaddr {
	uint8_t b[16];              /* network order; v4 as ::ffff:a.b.c.d */
};

struct sp_cidr {
	struct sp_ipaddr net;       /* masked */
	uint8_t bits;               /* prefix length over the 128-bit form */
};

#define SP_IPADDR_TEXT 46           /* INET6_ADDRSTRLEN */
#define SP_CIDR_MAX 32              /* --trusted-proxy entries */

/* From a socket address (AF_INET or AF_INET6). Returns 0 or -EAFNOSUPPORT. */
int sp_ipaddr_from_sockaddr(const struct sockaddr *sa, struct sp_ipaddr *out);

/* Parse a numeric address, v4 or v6 (no brackets, no port, no zone), from
 * <s>[0..len). Surrounding spaces/tabs are skipped. Returns 0 or -EINVAL. */
int sp_ipaddr_parse(const char *s, size_t len, struct sp_ipaddr *out);

/* Text form into <out> (at least SP_IPADDR_TEXT bytes): dotted for v4. */
void sp_ipaddr_format(const struct sp_ipaddr *a, char *out, size_t cap);

bool sp_ipaddr_is_v4(const struct sp_ipaddr *a);
bool sp_ipaddr_is_loopback(const struct sp_ipaddr *a);

/* The key per-client limits count on: the address itself for IPv4, its
 * /64 for IPv6 (one subscriber line gets a /64; counting single v6
 * addresses would let one client take 2^64 slots). */
void sp_ipaddr_limit_key(const struct sp_ipaddr *a, struct sp_ipaddr *key);

/* "ADDR" or "ADDR/BITS" (v4 bits 0..32, v6 0..128). Returns 0 or -EINVAL. */
int sp_cidr_parse(const char *s, struct sp_cidr *out);

bool sp_cidr_match(const struct sp_cidr *c, const struct sp_ipaddr *a);

/* True if <a> is inside any of <n> ranges. */
bool sp_cidr_list_match(const struct sp_cidr *list, unsigned n, const struct sp_ipaddr *a);

/*
 * The client behind a chain of proxies, from X-Forwarded-For values: each
 * proxy appends the address it received the request from, so read the
 * list right to left and skip addresses of trusted proxies; the first one
 * that is not trusted is the client (anything left of it could have been
 * written by that client). <values> are the header's occurrences in
 * request order (several lines form one list). If every entry is a
 * trusted proxy, the leftmost is the client (as nginx's real_ip_recursive
 * does). Returns 1 with <*out> set; 0 if there is no entry; -EINVAL if an
 * entry that must be read is not an address.
 */
int sp_xff_client(const char *const *values, const size_t *lens, unsigned nvalues,
		  const struct sp_cidr *trusted, unsigned ntrusted, struct sp_ipaddr *out);

#endif
