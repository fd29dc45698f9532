/*
 * url.c - the request spout-sub sends: GET <path>?topic=a&topic=b with
 * each topic percent-encoded. spoutd percent-decodes topics and leaves
 * '+' as '+' (docs/protocol.md 2.1), so encoding everything outside the
 * unreserved set is always safe: "orders.>" goes as "orders.%3E", and a
 * topic with '+', '=' or '@' cannot be read as query syntax by a proxy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sub.h"

#ifndef SPOUT_VERSION
#define SPOUT_VERSION "unknown"
#endif

char *url_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = cli_xmalloc(strlen(s) * 3 + 1), *o = out;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

const char *url_single_topic(void)
{
	if (opt.ntopics != 1)
		return NULL;
	const char *t = opt.topics[0];
	/* A wildcard is a whole segment: "*" or ">" between dots. */
	for (const char *p = t; *p; p++)
		if ((*p == '*' || *p == '>') && (p == t || p[-1] == '.') &&
		    (p[1] == '\0' || p[1] == '.'))
			return NULL;
	return t;
}

/* Appends printf-style text to the growing buffer *buf. */
static void add(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < *cap - *len)
			break;
		*cap = (*cap + (size_t)(n > 0 ? n : 0) + 1) * 2;
		*buf = cli_xrealloc(*buf, *cap);
	}
	*len += (size_t)n;
}

char *url_request(const char *token, const char *last_id, size_t *len)
{
	size_t cap = 1024;
	char *req = cli_xmalloc(cap);
	bool v6 = strchr(opt.host, ':') != NULL;

	*len = 0;
	add(&req, len, &cap, "GET %s", opt.path);
	for (size_t i = 0; i < opt.ntopics; i++) {
		char *enc = url_encode(opt.topics[i]);

		add(&req, len, &cap, "%ctopic=%s", i == 0 ? '?' : '&', enc);
		free(enc);
	}
	add(&req, len, &cap,
	    " HTTP/1.1\r\n"
	    "Host: %s%s%s:%s\r\n"
	    "User-Agent: spout-sub/%s\r\n"
	    "Accept: text/event-stream\r\n"
	    "Cache-Control: no-cache\r\n",
	    v6 ? "[" : "", opt.host, v6 ? "]" : "", opt.port, SPOUT_VERSION);
	if (token != NULL)
		add(&req, len, &cap, "Authorization: Bearer %s\r\n", token);
	if (last_id != NULL && last_id[0] != '\0')
		add(&req, len, &cap, "Last-Event-ID: %s\r\n", last_id);
	add(&req, len, &cap, "\r\n");
	return req;
}
