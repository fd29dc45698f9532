/*
 * frame.c - SSE framing into immutable, chunk-framed, refcounted buffers.
 *
 * Called by the router once per event (and by workers for their own HTTP
 * responses). Nothing here keeps state; any thread may call it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spout/frame.h"

/* Longest chunk-size line: 8 hex digits + CRLF. */
#define CHUNK_PRE_MAX 10

static size_t count_lines(const char *s, size_t len)
{
	size_t n = 1;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n') {
			n++;
		} else if (s[i] == '\r') {
			n++;
			if (i + 1 < len && s[i + 1] == '\n')
				i++;
		}
	}
	return n;
}

static int dec_len(uint64_t v)
{
	int n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

size_t sp_frame_event_size(const struct sp_event *ev)
{
	size_t n = 0;

	if (ev->id != 0)
		n += 4 + (size_t)dec_len(ev->id) + 1;   /* "id: " N "\n" */
	if (ev->event_len != 0)
		n += 7 + ev->event_len + 1;             /* "event: " T "\n" */
	/* every line "data: " + line + "\n"; line breaks are replaced, so the
	 * payload bytes minus the break bytes, plus per-line overhead */
	size_t lines = count_lines(ev->data, ev->data_len);
	size_t breaks = 0;
	for (size_t i = 0; i < ev->data_len; i++)
		if (ev->data[i] == '\n' || ev->data[i] == '\r')
			breaks++;
	n += ev->data_len - breaks + lines * 7;
	return n + 1;                                   /* blank line */
}

static struct sp_frame *frame_alloc(size_t body, size_t pre, size_t post,
				    const char *topic, size_t topic_len)
{
	struct sp_frame *f;

	if (body > UINT32_MAX - CHUNK_PRE_MAX - 2 || topic_len > UINT16_MAX)
		return NULL;
	f = malloc(sizeof(*f) + pre + body + post + topic_len + 1);
	if (f == NULL)
		return NULL;
	atomic_init(&f->refs, 1);
	f->len = (uint32_t)(pre + body + post);
	f->pre = (uint16_t)pre;
	f->post = (uint16_t)post;
	f->topic_len = (uint16_t)topic_len;
	f->flags = 0;
	f->topic_hash = 0;
	f->id = 0;
	f->born_ns = 0;
	char *t = f->buf + f->len;
	if (topic_len)
		memcpy(t, topic, topic_len);
	t[topic_len] = '\0';
	f->topic = t;
	return f;
}

/* Write the chunk-size line for <body> bytes at <p>; returns its length. */
static size_t put_chunk_pre(char *p, size_t body)
{
	return (size_t)sprintf(p, "%zx\r\n", body);
}

static size_t chunk_pre_len(size_t body)
{
	char tmp[CHUNK_PRE_MAX + 8];

	return put_chunk_pre(tmp, body);
}

struct sp_frame *sp_frame_new_event(const struct sp_event *ev)
{
	size_t body = sp_frame_event_size(ev);
	size_t pre = chunk_pre_len(body);
	struct sp_frame *f = frame_alloc(body, pre, 2, ev->topic, ev->topic_len);

	if (f == NULL)
		return NULL;
	f->topic_hash = ev->topic_hash;
	f->id = ev->id;

	char *p = f->buf;
	p += put_chunk_pre(p, body);
	if (ev->id != 0)
		p += sprintf(p, "id: %llu\n", (unsigned long long)ev->id);
	if (ev->event_len != 0) {
		memcpy(p, "event: ", 7);
		memcpy(p + 7, ev->event, ev->event_len);
		p += 7 + ev->event_len;
		*p++ = '\n';
	}
	/* data may be NULL when data_len is 0: memcpy from NULL (even of 0
	 * bytes) and NULL + 0 are undefined, so point at "" instead. */
	const char *s = ev->data != NULL ? ev->data : "";
	const char *end = s + ev->data_len;
	for (;;) {
		const char *nl = s;
		while (nl < end && *nl != '\n' && *nl != '\r')
			nl++;
		memcpy(p, "data: ", 6);
		memcpy(p + 6, s, (size_t)(nl - s));
		p += 6 + (nl - s);
		*p++ = '\n';
		if (nl == end)
			break;
		s = nl + 1;
		if (*nl == '\r' && s < end && *s == '\n')
			s++;
	}
	*p++ = '\n';
	*p++ = '\r';
	*p++ = '\n';
	return f;
}

struct sp_frame *sp_frame_new_raw(const void *bytes, size_t len)
{
	struct sp_frame *f = frame_alloc(len, 0, 0, NULL, 0);

	if (f != NULL && len)
		memcpy(f->buf, bytes, len);
	return f;
}

struct sp_frame *sp_frame_new_chunk(const void *bytes, size_t len)
{
	size_t pre = chunk_pre_len(len);
	struct sp_frame *f = frame_alloc(len, pre, 2, NULL, 0);

	if (f == NULL)
		return NULL;
	put_chunk_pre(f->buf, len);
	if (len)
		memcpy(f->buf + pre, bytes, len);
	memcpy(f->buf + pre + len, "\r\n", 2);
	return f;
}

void sp_frame_destroy(struct sp_frame *f)
{
	free(f);
}

bool sp_event_type_valid(const char *s, size_t len)
{
	if (len == 0 || len > SP_EVENT_TYPE_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}
