/*
 * topic.h - topic names: validation, percent-decoding and hashing.
 *
 * A topic is 1..SP_TOPIC_MAX bytes of dot-separated segments; each segment is
 * non-empty and made of [A-Za-z0-9] and "_-:@~+=". '*' and '>' are reserved
 * for subscription patterns (see docs/protocol.md). Pure functions; any
 * thread.
 */
#ifndef SPOUT_TOPIC_H
#define SPOUT_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SP_TOPIC_MAX 128

/* Returns NULL if <s>[0..len) is a valid topic, else a short reason. */
const char *sp_topic_check(const char *s, size_t len);

static inline bool sp_topic_valid(const char *s, size_t len)
{
	return sp_topic_check(s, len) == NULL;
}

/* Percent-decode <len> bytes of <in> into <out> (capacity <cap>). '+' is
 * kept as '+'. Returns the decoded length, or -EINVAL for a malformed escape
 * or a decoded NUL, -ENOSPC if <out> is too small. <out> may equal <in>. */
ssize_t sp_percent_decode(const char *in, size_t len, char *out, size_t cap);

/* xxHash3 of the topic name; the key of every topic table. */
uint64_t sp_topic_hash(const char *s, size_t len);

#endif
