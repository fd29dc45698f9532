/*
 * out.c - one line per event on stdout (more for multi-line data on a
 * terminal), flushed at once so that a pipe (spout-sub | jq) sees every
 * event as it arrives.
 *
 * JSON Lines: {"id": "...", "topic": "...", "event": "...", "data": "..."}
 *   id     the event's own id: field, or null for an event without one
 *          (spout-gap); a string, as SSE ids are
 *   topic  only when the subscription is one literal topic: SSE frames do
 *          not carry the topic
 *   event  the type, "message" when the event has none
 *   data   the data lines joined with "\n"
 *
 * Terminal:  [1795567982123457] news message: hello
 *            [1795567982123458] news alert: line one
 *                line two
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sub.h"

static bool json, color;

void out_init(void)
{
	const char *term = getenv("TERM");
	bool tty = isatty(STDOUT_FILENO);

	json = opt.json || (!tty && !opt.text);
	color = !json && tty && getenv("NO_COLOR") == NULL &&
		!(term != NULL && strcmp(term, "dumb") == 0);
}

static bool is_control_event(const char *type)
{
	return strncmp(type, "spout-", 6) == 0;
}

int out_event(const struct sse_event *ev, const char *topic)
{
	FILE *f = stdout;

	if (json) {
		fputs("{\"id\":", f);
		if (ev->has_id)
			text_json(f, ev->id, strlen(ev->id));
		else
			fputs("null", f);
		if (topic != NULL) {
			fputs(",\"topic\":", f);
			text_json(f, topic, strlen(topic));
		}
		fputs(",\"event\":", f);
		text_json(f, ev->type, strlen(ev->type));
		fputs(",\"data\":", f);
		text_json(f, ev->data, ev->data_len);
		fputs("}\n", f);
	} else {
		const char *dim = color ? "\033[2m" : "", *off = color ? "\033[0m" : "";
		const char *hl = color ? (is_control_event(ev->type) ? "\033[33m" : "\033[1m") : "";

		fprintf(f, "%s[%s]%s ", dim, ev->has_id ? ev->id : "-", off);
		if (topic != NULL) {
			text_term(f, topic, strlen(topic), "");
			fputc(' ', f);
		}
		fputs(hl, f);
		text_term(f, ev->type, strlen(ev->type), "");
		fprintf(f, "%s: ", off);
		text_term(f, ev->data, ev->data_len, "    ");
		fputc('\n', f);
	}
	if (fflush(f) != 0 || ferror(f))
		return -EIO;
	return 0;
}
