/*
 * worker_dash.c - the live dashboard's two endpoints on a worker
 * (--dashboard, dashboard.h):
 *
 *   GET /dashboard          the page (text/html, compiled in)
 *   GET /dashboard/events   SSE: "event: stats" with a JSON snapshot now,
 *                           then once a second
 *
 * A stats stream is an ordinary stream for the timers (heartbeats, write
 * timeout, drain), just not subscribed to any topic. The worker renders
 * one snapshot per second for all its viewers. Worker thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spout/dashboard.h"
#include "spout/frame.h"
#include "worker_internal.h"

#define DASH_PERIOD_MS 1000

/* Queue one snapshot as an SSE event on every viewer of this worker. */
static void send_stats(struct sp_worker *w)
{
	struct sp_worker_local *L = w->local;
	size_t len;

	if (L->dash_prev == NULL && (L->dash_prev = calloc(1, sizeof(*L->dash_prev))) == NULL)
		return;
	char *json = sp_dash_render(w->broker, L->dash_prev, &len);
	if (json == NULL)
		return;
	size_t cap = len + 32;
	char *ev = malloc(cap);
	int n = ev ? snprintf(ev, cap, "event: stats\ndata: %s\n\n", json) : -1;
	free(json);
	for (unsigned i = 0; n > 0 && i < L->ndash; i++) {
		struct conn *c = L->dash[i];
		struct sp_frame *f = c->chunked ? sp_frame_new_chunk(ev, (size_t)n)
						: sp_frame_new_raw(ev, (size_t)n);
		if (f == NULL || conn_queue_response(w, c, f) != 0)
			conn_close(w, c, CLOSE_ERROR);
	}
	free(ev);
}

void dash_tick(struct sp_worker *w)
{
	struct sp_worker_local *L = w->local;

	if (L->ndash == 0 || L->now_ms < L->dash_next_ms)
		return;
	L->dash_next_ms = L->now_ms + DASH_PERIOD_MS;
	send_stats(w);
}

void dash_forget(struct sp_worker *w, struct conn *c)
{
	struct sp_worker_local *L = w->local;

	for (unsigned i = 0; i < L->ndash; i++) {
		if (L->dash[i] == c) {
			L->dash[i] = L->dash[--L->ndash];
			break;
		}
	}
	c->dash = false;
}

void dash_on_request(struct sp_worker *w, struct conn *c, const struct sp_http_req *req,
		     bool events)
{
	struct sp_worker_local *L = w->local;
	bool head = req->method == SP_HTTP_HEAD;

	if (!w->broker->cfg->dashboard) {
		http_fail(w, c, 404, "the dashboard is off (spoutd --dashboard=no)");
		return;
	}
	if (req->method != SP_HTTP_GET && !head) {
		http_fail_with(w, c, 405, "Allow: GET, HEAD\r\n", "method not allowed");
		return;
	}
	if (!events) {
		/* Everything is inline; the policy keeps it that way, and keeps
		 * the page from loading or sending anything elsewhere. */
		http_respond_head(w, c, 200, "text/html; charset=utf-8",
				  "Cache-Control: no-cache\r\n"
				  "Content-Security-Policy: default-src 'none'; script-src "
				  "'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'\r\n"
				  "X-Content-Type-Options: nosniff\r\n",
				  sp_dash_html, sp_dash_html_len, head);
		return;
	}
	if (head || L->ndash == SP_DASH_VIEWERS) {
		if (head)
			http_respond_head(w, c, 200, "text/event-stream", NULL, NULL, 0, true);
		else
			http_fail_with(w, c, 503, "Retry-After: 5\r\n",
				       "too many dashboard viewers on this worker");
		return;
	}
	sp_list_del(&c->timer_link);   /* no header timeout from here */
	c->chunked = req->http_minor >= 1;
	c->dash = true;
	L->dash[L->ndash++] = c;
	http_start_stream(w, c);
	if (c->state == CS_STREAMING) {
		/* the first snapshot at once (its rates start from the
		 * previous one this worker took, or are 0) */
		L->dash_next_ms = 0;
		dash_tick(w);
	}
}
