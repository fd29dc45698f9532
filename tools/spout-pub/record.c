/*
 * record.c - one input line to one event, and one event to the bytes of
 * its command (docs/protocol.md 1.1).
 *
 * JSON Lines are parsed with jansson (Debian's libjansson, which spoutd
 * already links for JWTs). A "data" string is sent as its bytes; any other
 * JSON value as its compact JSON text, so {"data": {"id": 1}} publishes
 * {"id":1} and a subscriber can JSON.parse() it.
 *
 * The checks here are only those that keep the command framed: a topic or
 * type with a space or a line break would turn the rest of it into data or
 * into another command. Everything else (topic rules, sizes) the broker
 * judges, and its ERR reason is what the user sees.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pub.h"

/* Fetches string member <key> of <obj> into *out (NULL if absent or null).
 * Returns 0, or -EINVAL with the reason in <why>. */
static int string_member(json_t *obj, const char *key, const char **out, char *why,
			 size_t whylen)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		snprintf(why, whylen, "\"%s\" must be a string", key);
		return -EINVAL;
	}
	/* An embedded NUL (\u0000) would cut the C string short and publish
	 * to a different topic than the one written. */
	if (memchr(json_string_value(v), '\0', json_string_length(v)) != NULL) {
		snprintf(why, whylen, "NUL byte in \"%s\"", key);
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

static int parse_json(const char *line, size_t len, struct record *rec, char *why,
		      size_t whylen)
{
	json_error_t jerr;
	json_t *root = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
	json_t *data;

	if (root == NULL) {
		snprintf(why, whylen, "invalid JSON: %s (column %d)", jerr.text, jerr.column);
		return -EINVAL;
	}
	rec->json = root;
	if (!json_is_object(root)) {
		snprintf(why, whylen, "expected a JSON object {\"topic\": ..., \"data\": ...}");
		return -EINVAL;
	}
	if (string_member(root, "topic", &rec->topic, why, whylen) != 0 ||
	    string_member(root, "event", &rec->type, why, whylen) != 0)
		return -EINVAL;
	if (rec->topic == NULL)
		rec->topic = opt.topic;
	if (rec->topic == NULL) {
		snprintf(why, whylen, "missing \"topic\" (give it in the line, or --topic)");
		return -EINVAL;
	}
	if (rec->type == NULL)
		rec->type = opt.event_type;
	data = json_object_get(root, "data");
	if (data == NULL) {
		snprintf(why, whylen, "missing \"data\"");
		return -EINVAL;
	}
	if (json_is_string(data)) {
		rec->data = json_string_value(data);
		rec->data_len = json_string_length(data);
		return 1;
	}
	rec->dumped = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
	if (rec->dumped == NULL) {
		snprintf(why, whylen, "cannot encode \"data\" as JSON");
		return -EINVAL;
	}
	rec->data = rec->dumped;
	rec->data_len = strlen(rec->dumped);
	return 1;
}

int record_parse(const char *line, size_t len, enum pub_format fmt, struct record *rec,
		 char *why, size_t whylen)
{
	memset(rec, 0, sizeof *rec);
	/* CRLF input (a file from Windows, a terminal in raw mode): the CR
	 * belongs to the line break, as in the protocol itself. */
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (fmt == FORMAT_PLAIN) {
		if (len == 0)
			return 0;
		rec->topic = opt.topic;
		rec->type = opt.event_type;
		rec->data = line;
		rec->data_len = len;
		return 1;
	}
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	if (i == len)
		return 0;
	return parse_json(line, len, rec, why, whylen);
}

void record_free(struct record *rec)
{
	if (rec->json != NULL)
		json_decref(rec->json);
	free(rec->dumped);
	memset(rec, 0, sizeof *rec);
}

/* True if <s> has a byte that cannot stand in a space-separated field. */
static bool unframeable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
			return true;
	return false;
}

const char *record_check(const struct record *rec)
{
	if (rec->topic == NULL || rec->topic[0] == '\0')
		return "missing topic";
	if (unframeable(rec->topic))
		return "invalid character in topic";
	if (rec->type != NULL && rec->type[0] == '\0')
		return "missing event type";
	if (rec->type != NULL && unframeable(rec->type))
		return "invalid event type";
	return NULL;
}

static void append(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (*cap - *len < n) {
		size_t want = *cap ? *cap : 4096;

		while (want - *len < n)
			want *= 2;
		*buf = cli_xrealloc(*buf, want);
		*cap = want;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
}

void record_encode(const struct record *rec, char **buf, size_t *len, size_t *cap)
{
	const char *d = rec->data;
	size_t n = rec->data_len;
	/* PUB carries one line of text: a CR or LF would end it (or be
	 * stripped as part of its line break), NUL is refused in command
	 * lines, and long data could pass --max-line on the broker although
	 * an EVENT of the same size fits --max-payload. */
	bool as_event = rec->type != NULL || n > PUB_PUB_DATA_MAX ||
			memchr(d, '\n', n) || memchr(d, '\r', n) || memchr(d, '\0', n);
	char head[64];

	if (!as_event) {
		append(buf, len, cap, "PUB ", 4);
		append(buf, len, cap, rec->topic, strlen(rec->topic));
		append(buf, len, cap, " ", 1);
		append(buf, len, cap, d, n);
		append(buf, len, cap, "\n", 1);
		return;
	}
	append(buf, len, cap, "EVENT ", 6);
	append(buf, len, cap, rec->topic, strlen(rec->topic));
	append(buf, len, cap, " ", 1);
	const char *type = rec->type ? rec->type : "-";
	append(buf, len, cap, type, strlen(type));
	int hl = snprintf(head, sizeof head, " %zu\n", n);
	append(buf, len, cap, head, (size_t)hl);
	append(buf, len, cap, d, n);
	append(buf, len, cap, "\n", 1);
}
