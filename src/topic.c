/*
 * topic.c - topic validation, percent-decoding and hashing. Stateless.
 */
#include <errno.h>
#include <xxhash.h>

#include "spout/topic.h"

static bool seg_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '_': case '-': case ':': case '@': case '~': case '+': case '=':
		return true;
	default:
		return false;
	}
}

const char *sp_topic_check(const char *s, size_t len)
{
	if (len == 0)
		return "empty topic";
	if (len > SP_TOPIC_MAX)
		return "topic too long";
	size_t seg = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (seg == 0)
				return "empty topic segment";
			seg = 0;
			continue;
		}
		if (!seg_char(c))
			return "invalid character in topic";
		seg++;
	}
	if (seg == 0)
		return "empty topic segment";
	return NULL;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

ssize_t sp_percent_decode(const char *in, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '%') {
			if (len - i < 3)
				return -EINVAL;
			int hi = hexval((unsigned char)in[i + 1]);
			int lo = hexval((unsigned char)in[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (unsigned char)(hi << 4 | lo);
			if (c == 0)
				return -EINVAL;
			i += 2;
		}
		if (o >= cap)
			return -ENOSPC;
		out[o++] = (char)c;
	}
	return (ssize_t)o;
}

uint64_t sp_topic_hash(const char *s, size_t len)
{
	return XXH3_64bits(s, len);
}
