/*
 * lineproto.h - parser for the publisher line protocol (docs/protocol.md).
 *
 *   PUB <topic> <data>\n                 -> OK <id>
 *   EVENT <topic> <type|-> <nbytes>\n    followed by exactly <nbytes> bytes
 *     <payload>\n                           and a line break -> OK <id>
 *   PING\n                               -> PONG
 *   QUIT\n                               -> OK bye, then close
 *   AUTH <token>\n                       -> OK (with --pub-token; see router_pub.c)
 *
 * Every line may end in \r\n instead of \n. Command names are case-sensitive
 * upper case. The parser is pure: it looks at a buffer, fills a struct
 * pointing into that buffer and allocates nothing. Any thread.
 */
#ifndef SPOUT_LINEPROTO_H
#define SPOUT_LINEPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum sp_lp_type {
	SP_LP_PUB = 1,   /* topic, data (event NULL) */
	SP_LP_EVENT,     /* topic, event (NULL for "-"), data (may hold \n) */
	SP_LP_PING,
	SP_LP_QUIT,
	SP_LP_ERROR,     /* err holds the reason; skip bytes were consumed */
	SP_LP_AUTH,      /* data = the token: 1..SP_LP_TOKEN_MAX bytes of 0x21-0x7E */
};

#define SP_LP_TOKEN_MAX 256    /* = SP_TOKEN_MAX (config.h) */

struct sp_lp_cmd {
	enum sp_lp_type type;
	const char *topic;
	size_t topic_len;
	const char *event;
	size_t event_len;
	const char *data;
	size_t data_len;
	const char *err;     /* SP_LP_ERROR: reason for "ERR <reason>" */
	/* SP_LP_ERROR only: bytes beyond the returned count that the caller
	 * must still discard to resynchronise (an oversized EVENT payload that
	 * has not fully arrived). 0 otherwise. */
	size_t skip;
};

struct sp_lp_limits {
	size_t max_line;     /* longest command line, terminator excluded */
	size_t max_payload;  /* longest data, both forms */
};

#define SP_LP_PARTIAL 0

/* Parse one command at the start of <buf>[0..len).
 * Returns the number of bytes the command occupies (> 0) with <cmd> filled
 * (possibly SP_LP_ERROR: answer ERR and go on after those bytes);
 * SP_LP_PARTIAL when more bytes are needed;
 * -E2BIG when no line terminator appears within limits->max_line bytes: the
 * caller answers "ERR line too long" and discards input up to and including
 * the next \n (sp_lp_skip_line helps).
 * Topic and event type are validated here; data is not interpreted. */
ssize_t sp_lp_parse(const char *buf, size_t len,
		    const struct sp_lp_limits *limits, struct sp_lp_cmd *cmd);

/* Returns the number of bytes up to and including the first \n in
 * <buf>[0..len), or 0 if there is none. */
size_t sp_lp_skip_line(const char *buf, size_t len);

#endif
