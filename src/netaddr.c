/*
 * netaddr.c - client addresses, CIDR lists and the X-Forwarded-For walk
 * (see include/spout/netaddr.h). Pure functions; any thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "spout/netaddr.h"

static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static void set_v4(struct sp_ipaddr *a, const void *four)
{
	memcpy(a->b, v4_mapped, 12);
	memcpy(a->b + 12, four, 4);
}

int sp_ipaddr_from_sockaddr(const struct sockaddr *sa, struct sp_ipaddr *out)
{
	if (sa->sa_family == AF_INET) {
		set_v4(out, &((const struct sockaddr_in *)sa)->sin_addr);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return 0;
	}
	return -EAFNOSUPPORT;
}

int sp_ipaddr_parse(const char *s, size_t len, struct sp_ipaddr *out)
{
	char buf[SP_IPADDR_TEXT];
	uint8_t raw[16];

	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, raw) == 1) {
		set_v4(out, raw);
		return 0;
	}
	if (inet_pton(AF_INET6, buf, raw) == 1) {
		memcpy(out->b, raw, 16);
		return 0;
	}
	return -EINVAL;
}

bool sp_ipaddr_is_v4(const struct sp_ipaddr *a)
{
	return memcmp(a->b, v4_mapped, 12) == 0;
}

void sp_ipaddr_format(const struct sp_ipaddr *a, char *out, size_t cap)
{
	const char *r = sp_ipaddr_is_v4(a) ? inet_ntop(AF_INET, a->b + 12, out, (socklen_t)cap)
					   : inet_ntop(AF_INET6, a->b, out, (socklen_t)cap);
	if (r == NULL && cap > 0)
		out[0] = '\0';
}

bool sp_ipaddr_is_loopback(const struct sp_ipaddr *a)
{
	static const uint8_t v6_loop[16] = { [15] = 1 };

	if (sp_ipaddr_is_v4(a))
		return a->b[12] == 127;
	return memcmp(a->b, v6_loop, 16) == 0;
}

void sp_ipaddr_limit_key(const struct sp_ipaddr *a, struct sp_ipaddr *key)
{
	*key = *a;
	if (!sp_ipaddr_is_v4(a))
		memset(key->b + 8, 0, 8);
}

static void mask(struct sp_ipaddr *a, unsigned bits)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
		a->b[i] &= (uint8_t)(0xff00u >> keep);
	}
}

int sp_cidr_parse(const char *s, struct sp_cidr *out)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);

	if (sp_ipaddr_parse(s, alen, &out->net) != 0)
		return -EINVAL;
	unsigned max = sp_ipaddr_is_v4(&out->net) ? 32 : 128;
	unsigned bits = max;
	if (slash != NULL) {
		char *end;
		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		unsigned long v = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || v > max)
			return -EINVAL;
		bits = (unsigned)v;
	}
	out->bits = (uint8_t)(max == 32 ? bits + 96 : bits);
	mask(&out->net, out->bits);
	return 0;
}

bool sp_cidr_match(const struct sp_cidr *c, const struct sp_ipaddr *a)
{
	struct sp_ipaddr m = *a;

	mask(&m, c->bits);
	return memcmp(m.b, c->net.b, 16) == 0;
}

bool sp_cidr_list_match(const struct sp_cidr *list, unsigned n, const struct sp_ipaddr *a)
{
	for (unsigned i = 0; i < n; i++)
		if (sp_cidr_match(&list[i], a))
			return true;
	return false;
}

int sp_xff_client(const char *const *values, const size_t *lens, unsigned nvalues,
		  const struct sp_cidr *trusted, unsigned ntrusted, struct sp_ipaddr *out)
{
	bool any = false;

	for (unsigned v = nvalues; v-- > 0;) {
		const char *s = values[v];
		size_t end = lens[v];
		/* Entries right to left: each ends at <end>, starts after the
		 * previous comma. Empty entries ("a,,b") are skipped. */
		while (end > 0) {
			size_t start = end;
			while (start > 0 && s[start - 1] != ',')
				start--;
			size_t n = end - start;
			end = start > 0 ? start - 1 : 0;
			const char *e = s + start;
			while (n > 0 && (*e == ' ' || *e == '\t')) {
				e++;
				n--;
			}
			if (n == 0)
				continue;
			if (sp_ipaddr_parse(e, n, out) != 0)
				return -EINVAL;
			any = true;
			if (!sp_cidr_list_match(trusted, ntrusted, out))
				return 1;
		}
	}
	return any ? 1 : 0;   /* all trusted: <out> holds the leftmost */
}
