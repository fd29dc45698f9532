/*
 * lineproto.c - parser for the publisher line protocol (docs/protocol.md).
 *
 * Pure and stateless: every call looks only at <buf>[0..len), fills the
 * caller's struct with pointers into that buffer and allocates nothing, so
 * any thread may call it. Because nothing is remembered between calls, the
 * result for a byte stream must not depend on how it was split into reads:
 * every check below either needs bytes that are already present or returns
 * SP_LP_PARTIAL, and a verdict reached on a prefix is the verdict the whole
 * stream gets (test_lineproto.c feeds streams byte by byte to prove it).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "spout/frame.h"
#include "spout/lineproto.h"
#include "spout/topic.h"

/* Longest <nbytes> field of EVENT. 18 digits stay below 10^18, so the
 * length, the header and the line break add up without overflow in 64 bits;
 * more digits than that can only be a broken client. */
#define LP_NBYTES_DIGITS 18

/* Fill <cmd> as an SP_LP_ERROR that occupies <used> bytes and asks the
 * caller to drop <skip> more. <reason> is a static string. */
static ssize_t lp_error(struct sp_lp_cmd *cmd, const char *reason, size_t used,
			size_t skip)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->type = SP_LP_ERROR;
	cmd->err = reason;
	cmd->skip = skip;
	return (ssize_t)used;
}

/* Find the first line of <buf>[0..len). On 1, <*content> is its length
 * without the terminator and <*term> the terminator's length: 2 for \r\n,
 * 1 for \n (only one \r is part of the terminator). Returns 0 when the line
 * is incomplete but may still fit, -E2BIG when it cannot fit <max_line>.
 *
 * Only the first max_line + 2 bytes are searched: a \n further on cannot end
 * a line that fits, so a peer streaming garbage costs O(max_line) per call. */
static int lp_line(const char *buf, size_t len, size_t max_line,
		   size_t *content, size_t *term)
{
	size_t window = max_line > SIZE_MAX - 2 ? SIZE_MAX : max_line + 2;
	size_t scan = len < window ? len : window;
	const char *nl = memchr(buf, '\n', scan);

	if (nl != NULL) {
		size_t n = (size_t)(nl - buf);

		*term = 1;
		if (n > 0 && buf[n - 1] == '\r') {
			n--;
			*term = 2;
		}
		*content = n;
		return n > max_line ? -E2BIG : 1;
	}
	if (len >= window)
		return -E2BIG;
	/* max_line + 1 bytes are already too many unless the last one is the
	 * \r of a \r\n still in flight. Deciding E2BIG here rather than waiting
	 * for the \n keeps the verdict the same however the bytes arrive. */
	if (len > max_line && buf[len - 1] != '\r')
		return -E2BIG;
	return 0;
}

/* PUB <topic> SP <data>, where <rest> follows "PUB" (and its space, if
 * any) on a line of <used> bytes. */
static ssize_t lp_parse_pub(const char *rest, size_t rest_len, size_t used,
			    const struct sp_lp_limits *limits,
			    struct sp_lp_cmd *cmd)
{
	const char *sp = memchr(rest, ' ', rest_len);
	size_t topic_len = sp != NULL ? (size_t)(sp - rest) : rest_len;
	const char *why;

	if (topic_len == 0)
		return lp_error(cmd, "missing topic", used, 0);
	why = sp_topic_check(rest, topic_len);
	if (why != NULL)
		return lp_error(cmd, why, used, 0);
	/* "PUB t" and "PUB t " both publish an empty payload: a publisher
	 * that formats "PUB %s %s" with an empty string gets what it meant. */
	const char *data = sp != NULL ? sp + 1 : rest + rest_len;
	size_t data_len = (size_t)(rest + rest_len - data);
	if (data_len > limits->max_payload)
		return lp_error(cmd, "payload too large", used, 0);

	memset(cmd, 0, sizeof(*cmd));
	cmd->type = SP_LP_PUB;
	cmd->topic = rest;
	cmd->topic_len = topic_len;
	cmd->data = data;
	cmd->data_len = data_len;
	return (ssize_t)used;
}

/* Parse the decimal <nbytes> field: 1..LP_NBYTES_DIGITS ASCII digits.
 * Returns false if it is anything else. */
static bool lp_nbytes(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > LP_NBYTES_DIGITS)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* EVENT <topic> SP <type|-> SP <nbytes>, then the payload and a line break.
 * <rest> follows "EVENT" (and its space) on a header line of <hl> bytes
 * whose terminator was <term> bytes long.
 *
 * The length is the LAST field and is read before anything else is judged:
 * once it is known the whole command can be consumed, so a header with a
 * bad topic or type costs one ERR and its payload is never parsed as
 * commands (a payload line "PUB x y" must not publish). Only when the
 * length itself is missing or unreadable is the header line consumed alone. */
static ssize_t lp_parse_event(const char *buf, size_t len, size_t hl,
			      size_t term, const char *rest, size_t rest_len,
			      const struct sp_lp_limits *limits,
			      struct sp_lp_cmd *cmd)
{
	const char *first = memchr(rest, ' ', rest_len);
	const char *last = first != NULL ? memrchr(rest, ' ', rest_len) : NULL;

	if (first == NULL)
		return lp_error(cmd, rest_len == 0 ? "missing topic" :
				"missing event type", hl, 0);
	if (first == last) {
		/* Two fields: say which one is missing, first to last. */
		if (first == rest)
			return lp_error(cmd, "missing topic", hl, 0);
		if (first + 1 == rest + rest_len)
			return lp_error(cmd, "missing event type", hl, 0);
		return lp_error(cmd, "missing payload length", hl, 0);
	}

	const char *num = last + 1;
	size_t num_len = (size_t)(rest + rest_len - num);
	uint64_t nbytes;

	if (num_len == 0)
		return lp_error(cmd, "missing payload length", hl, 0);
	if (!lp_nbytes(num, num_len, &nbytes) || nbytes > SIZE_MAX - hl - 2)
		return lp_error(cmd, "invalid payload length", hl, 0);

	if (nbytes > limits->max_payload) {
		/* The payload may be far larger than any buffer, so answer now
		 * and let the caller drop the rest as it arrives. The line
		 * break after the payload is assumed to be of the kind that
		 * ended the header: the payload is never looked at, so the
		 * total is fixed the moment the header is complete and the
		 * same however the bytes arrive. */
		size_t total = hl + (size_t)nbytes + term;
		size_t used = len < total ? len : total;
		return lp_error(cmd, "payload too large", used, total - used);
	}

	size_t end = hl + (size_t)nbytes;  /* first byte after the payload */
	size_t lb;                         /* line break after it, 0 if none */

	if (len <= end)
		return SP_LP_PARTIAL;
	if (buf[end] == '\n') {
		lb = 1;
	} else if (buf[end] == '\r') {
		if (len <= end + 1)
			return SP_LP_PARTIAL;
		lb = buf[end + 1] == '\n' ? 2 : 0;
	} else {
		lb = 0;
	}
	/* Without a line break the declared length is still trusted: the
	 * header and payload are consumed and parsing resumes right after the
	 * payload, where the break should have been. */
	size_t used = end + lb;

	const char *sp2 = memrchr(rest, ' ', (size_t)(last - rest));
	const char *topic = rest;
	size_t topic_len = (size_t)(sp2 - rest);
	const char *type = sp2 + 1;
	size_t type_len = (size_t)(last - type);
	const char *why;

	if (topic_len == 0)
		return lp_error(cmd, "missing topic", used, 0);
	why = sp_topic_check(topic, topic_len);
	if (why != NULL)
		return lp_error(cmd, why, used, 0);
	if (type_len == 0)
		return lp_error(cmd, "missing event type", used, 0);
	if (type_len == 1 && type[0] == '-') {
		type = NULL;
		type_len = 0;
	} else if (!sp_event_type_valid(type, type_len)) {
		return lp_error(cmd, "invalid event type", used, 0);
	}
	if (lb == 0)
		return lp_error(cmd, "missing line break after payload", used, 0);

	memset(cmd, 0, sizeof(*cmd));
	cmd->type = SP_LP_EVENT;
	cmd->topic = topic;
	cmd->topic_len = topic_len;
	cmd->event = type;
	cmd->event_len = type_len;
	cmd->data = buf + hl;
	cmd->data_len = (size_t)nbytes;
	return (ssize_t)used;
}

/* True if the line <s>[0..n) is command <name> alone or followed by a
 * space; <*rest> then points after "<name>" or "<name> ". */
static bool lp_is_cmd(const char *s, size_t n, const char *name,
		      const char **rest, size_t *rest_len)
{
	size_t k = strlen(name);

	if (n < k || memcmp(s, name, k) != 0)
		return false;
	if (n == k) {
		*rest = s + k;
		*rest_len = 0;
		return true;
	}
	if (s[k] != ' ')
		return false;
	*rest = s + k + 1;
	*rest_len = n - k - 1;
	return true;
}

ssize_t sp_lp_parse(const char *buf, size_t len,
		    const struct sp_lp_limits *limits, struct sp_lp_cmd *cmd)
{
	size_t content, term;
	const char *rest;
	size_t rest_len;
	int rc;

	if (len == 0)
		return SP_LP_PARTIAL;   /* and buf may be NULL */
	rc = lp_line(buf, len, limits->max_line, &content, &term);
	if (rc <= 0)
		return rc;
	size_t used = content + term;

	/* An empty line gets an answer like any other line, so a pipelining
	 * publisher that counts its lines can count its replies. */
	if (content == 0)
		return lp_error(cmd, "empty line", used, 0);
	/* EVENT goes first: a NUL in its header lands in a field that is
	 * rejected anyway, and judging it after the length is read keeps the
	 * payload from being parsed as commands. */
	if (lp_is_cmd(buf, content, "EVENT", &rest, &rest_len))
		return lp_parse_event(buf, len, used, term, rest, rest_len,
				      limits, cmd);
	/* Nothing downstream wants a NUL in a topic or in a "data:" line, and
	 * it is a sign of a client writing binary into a text protocol. */
	if (memchr(buf, '\0', content) != NULL)
		return lp_error(cmd, "NUL byte in line", used, 0);

	if (lp_is_cmd(buf, content, "PUB", &rest, &rest_len))
		return lp_parse_pub(rest, rest_len, used, limits, cmd);
	if (lp_is_cmd(buf, content, "AUTH", &rest, &rest_len)) {
		if (rest_len == 0)
			return lp_error(cmd, "missing token", used, 0);
		if (rest_len > SP_LP_TOKEN_MAX)
			return lp_error(cmd, "token too long", used, 0);
		for (size_t i = 0; i < rest_len; i++)
			if ((unsigned char)rest[i] < 0x21 || (unsigned char)rest[i] > 0x7e)
				return lp_error(cmd, "invalid character in token", used, 0);
		memset(cmd, 0, sizeof(*cmd));
		cmd->type = SP_LP_AUTH;
		cmd->data = rest;
		cmd->data_len = rest_len;
		return (ssize_t)used;
	}
	if (lp_is_cmd(buf, content, "PING", &rest, &rest_len) ||
	    lp_is_cmd(buf, content, "QUIT", &rest, &rest_len)) {
		if (content != 4)
			return lp_error(cmd, "unexpected argument", used, 0);
		memset(cmd, 0, sizeof(*cmd));
		cmd->type = buf[0] == 'P' ? SP_LP_PING : SP_LP_QUIT;
		return (ssize_t)used;
	}
	return lp_error(cmd, "unknown command", used, 0);
}

size_t sp_lp_skip_line(const char *buf, size_t len)
{
	const char *nl = memchr(buf, '\n', len);

	return nl != NULL ? (size_t)(nl - buf) + 1 : 0;
}
