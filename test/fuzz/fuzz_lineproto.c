/*
 * fuzz_lineproto.c - the publisher line protocol, fed as a stream in the
 * pieces a socket might deliver, and every parsed event through the SSE
 * framer.
 *
 * The first input byte picks the split size; the rest is the stream.
 * Oracles: a command is never longer than the bytes given; the framed
 * event, read back the way a browser's EventSource does, carries exactly
 * the published data (line breaks normalised to \n), type and id; the
 * HTTP chunk size line matches the chunk.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spout/frame.h"
#include "spout/lineproto.h"

/* EventSource's view of one framed event: fields per line. */
static void check_frame(const struct sp_frame *f, const struct sp_lp_cmd *cmd, uint64_t id)
{
	struct iovec v = sp_frame_view(f, false);
	const char *p = v.iov_base, *end = p + v.iov_len;
	char *data = malloc(v.iov_len + 1);
	size_t dl = 0;
	bool got_event = false, got_id = false, first = true;

	if (data == NULL)
		return;
	if (v.iov_len < 2 || end[-1] != '\n' || end[-2] != '\n')
		abort();
	while (p < end - 1) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL || memchr(p, '\r', (size_t)(nl - p)) != NULL)
			abort();   /* every field on its own line, no stray CR */
		size_t n = (size_t)(nl - p);
		if (n >= 6 && memcmp(p, "data: ", 6) == 0) {
			if (!first)
				data[dl++] = '\n';
			memcpy(data + dl, p + 6, n - 6);
			dl += n - 6;
			first = false;
		} else if (n >= 7 && memcmp(p, "event: ", 7) == 0) {
			if (cmd->event == NULL || n - 7 != cmd->event_len ||
			    memcmp(p + 7, cmd->event, n - 7) != 0)
				abort();
			got_event = true;
		} else if (n >= 4 && memcmp(p, "id: ", 4) == 0) {
			char want[32];
			int wl = snprintf(want, sizeof(want), "%llu", (unsigned long long)id);
			if (n - 4 != (size_t)wl || memcmp(p + 4, want, (size_t)wl) != 0)
				abort();
			got_id = true;
		} else {
			abort();
		}
		p = nl + 1;
	}
	if (!got_id || got_event != (cmd->event != NULL && cmd->event_len > 0))
		abort();
	/* the published data with \r\n and \r turned into \n */
	char *want = malloc(cmd->data_len + 1);
	size_t wl = 0;
	for (size_t i = 0; want != NULL && i < cmd->data_len; i++) {
		if (cmd->data[i] == '\r') {
			want[wl++] = '\n';
			if (i + 1 < cmd->data_len && cmd->data[i + 1] == '\n')
				i++;
		} else {
			want[wl++] = cmd->data[i];
		}
	}
	if (want != NULL && (wl != dl || memcmp(want, data, dl) != 0))
		abort();
	/* chunk framing: "<hex>\r\n" <payload> "\r\n" */
	char pre[24];
	int pl = snprintf(pre, sizeof(pre), "%zx\r\n", v.iov_len);
	if (f->pre != pl || memcmp(f->buf, pre, (size_t)pl) != 0 ||
	    memcmp(f->buf + f->len - 2, "\r\n", 2) != 0)
		abort();
	free(want);
	free(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t step = 1 + data[0] % 64;
	const char *in = (const char *)data + 1;
	size_t len = size - 1, off = 0, avail = 0;
	const struct sp_lp_limits lim = { .max_line = 512, .max_payload = 256 };
	uint64_t id = 0;

	/* bytes arrive <step> at a time; parse whenever a command is complete */
	while (off < len) {
		avail = avail + step < len - off ? avail + step : len - off;
		struct sp_lp_cmd cmd;
		ssize_t n = sp_lp_parse(in + off, avail, &lim, &cmd);
		if (n == SP_LP_PARTIAL) {
			if (avail == len - off)
				break;
			continue;
		}
		if (n < 0) {   /* line too long: skip to the next line */
			size_t k = sp_lp_skip_line(in + off, len - off);
			if (k == 0)
				break;
			off += k;
			avail = 0;
			continue;
		}
		if ((size_t)n > avail)
			abort();
		if (cmd.type == SP_LP_ERROR) {
			n += (ssize_t)(cmd.skip < len - off - (size_t)n ? cmd.skip : len - off - (size_t)n);
		} else if (cmd.type == SP_LP_PUB || cmd.type == SP_LP_EVENT) {
			struct sp_event ev = { .topic = cmd.topic, .topic_len = cmd.topic_len,
					       .event = cmd.event,
					       .event_len = cmd.event ? cmd.event_len : 0,
					       .data = cmd.data, .data_len = cmd.data_len,
					       .id = ++id };
			struct sp_frame *f = sp_frame_new_event(&ev);
			if (f != NULL) {
				check_frame(f, &cmd, id);
				sp_frame_release(f);
			}
		}
		off += (size_t)n;
		avail = 0;
	}
	return 0;
}
