/*
 * worker_http.c - what a worker does with a complete request head: route it,
 * answer the small endpoints, or start an SSE stream.
 *
 *   GET  /events/<topic>, /events?topic=a&topic=b   SSE stream
 *   OPTIONS /events...                              CORS preflight
 *   GET  /healthz                                   liveness
 *   GET  /readyz                                    readiness (503 draining)
 *   GET  /metrics                                   Prometheus text
 *
 * Every answer other than a stream closes the connection after it is
 * written (Connection: close), which keeps the worker's state machine to one
 * request per connection. Worker thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <errno.h>

#include "spout/frame.h"
#include "spout/history.h"
#include "spout/log.h"
#include "worker_internal.h"

#define RESP_MAX 2048

static bool path_is(const struct sp_http_req *r, const char *p)
{
	size_t n = strlen(p);

	return r->path_len == n && memcmp(r->path, p, n) == 0;
}

static bool path_is_events(const struct sp_http_req *r)
{
	return path_is(r, "/events") ||
	       (r->path_len >= 8 && memcmp(r->path, "/events/", 8) == 0);
}

/* CORS headers for every response, per --cors-origin. */
static int cors_headers(const struct sp_config *cfg, char *out, size_t cap)
{
	if (cfg->cors_origin[0] == '\0')
		return snprintf(out, cap, "%s", "");
	return snprintf(out, cap, "Access-Control-Allow-Origin: %s\r\n%s", cfg->cors_origin,
			strcmp(cfg->cors_origin, "*") == 0 ? "" : "Vary: Origin\r\n");
}

/* Queue a complete response and close once it is written. */
static void respond(struct sp_worker *w, struct conn *c, int status, const char *ctype,
		    const char *extra, const char *body, size_t body_len, bool head_only)
{
	char headers[512];
	char small[RESP_MAX];
	size_t cap = body_len + 1024;
	char *buf = cap <= sizeof(small) ? small : malloc(cap);
	int hl = cors_headers(w->broker->cfg, headers, sizeof(headers));

	if (extra != NULL && hl >= 0 && (size_t)hl < sizeof(headers))
		snprintf(headers + hl, sizeof(headers) - (size_t)hl, "%s", extra);
	sp_list_del(&c->timer_link);
	c->state = CS_RESPONDING;
	c->chunked = false;
	if (buf == NULL) {
		conn_close(w, c, CLOSE_ERROR);
		return;
	}
	ssize_t n = sp_http_format_response(buf, cap, status, ctype, headers, body, body_len,
					    head_only);
	struct sp_frame *f = n > 0 ? sp_frame_new_raw(buf, (size_t)n) : NULL;
	if (buf != small)
		free(buf);
	if (f == NULL || conn_queue_response(w, c, f) != 0)
		conn_close(w, c, CLOSE_ERROR);
}

void http_respond(struct sp_worker *w, struct conn *c, int status, const char *ctype,
		  const char *extra, const char *body, size_t body_len)
{
	respond(w, c, status, ctype, extra, body, body_len, false);
}

void http_respond_head(struct sp_worker *w, struct conn *c, int status, const char *ctype,
		       const char *extra, const char *body, size_t body_len, bool head_only)
{
	respond(w, c, status, ctype, extra, body, body_len, head_only);
}

/* An error answer with a one-line reason as the body. */
void http_fail_with(struct sp_worker *w, struct conn *c, int status, const char *extra,
		    const char *reason)
{
	char body[320];
	int n = snprintf(body, sizeof(body), "%s\n", reason);

	if (n < 0 || (size_t)n >= sizeof(body))
		n = (int)sizeof(body) - 1;
	sp_stat_add(&w->stats.bad_requests, 1);
	c->bad_request = true;
	respond(w, c, status, NULL, extra, body, (size_t)n, false);
}

void http_fail(struct sp_worker *w, struct conn *c, int status, const char *reason)
{
	http_fail_with(w, c, status, NULL, reason);
}

/* The first body bytes: a comment, so buffering intermediaries pass the
 * head on at once, and the reconnection delay with up to 50% jitter per
 * connection, so clients cut off together do not come back together. */
static uint32_t jittered_retry(struct sp_worker *w)
{
	uint32_t retry = w->broker->cfg->retry_ms;
	uint64_t x = w->local->rng;   /* xorshift64 */

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	w->local->rng = x;
	return retry + (uint32_t)(x % ((uint64_t)retry / 2 + 1));
}

static int stream_preamble(struct sp_worker *w, char *out, size_t cap)
{
	if (w->broker->cfg->retry_ms == 0)
		return snprintf(out, cap, ":ok\n\n");
	return snprintf(out, cap, ":ok\nretry: %u\n\n", jittered_retry(w));
}

/* End a stream with <text>[0..tl) as its last bytes, counted in
 * <counter>: one frame, on HTTP/1.1 the chunk and the terminating chunk;
 * the connection closes once it is written. */
static void end_stream_with(struct sp_worker *w, struct conn *c, const char *text, int tl,
			    sp_counter *counter)
{
	char body[160];
	int n = c->chunked ? snprintf(body, sizeof(body), "%x\r\n%.*s\r\n0\r\n\r\n", tl, tl, text)
			   : snprintf(body, sizeof(body), "%.*s", tl, text);
	struct sp_frame *f = n > 0 && (size_t)n < sizeof(body) ? sp_frame_new_raw(body, (size_t)n)
							       : NULL;

	sp_list_del(&c->timer_link);
	c->state = CS_RESPONDING;
	if (f == NULL || conn_queue_response(w, c, f) != 0) {
		conn_close(w, c, CLOSE_ERROR);
		return;
	}
	sp_stat_add(counter, 1);
}

void http_end_stream(struct sp_worker *w, struct conn *c)
{
	/* The client should come back (to another node), not stay away. */
	uint32_t retry = w->broker->cfg->retry_ms ? jittered_retry(w) : 1000;
	char text[48];
	int tl = snprintf(text, sizeof(text), ":drain\nretry: %u\n\n", retry);

	end_stream_with(w, c, text, tl, &w->stats.closed_drain);
}

/* The token of a stream expired (auth.h): tell the client why with an
 * event it can listen for (to fetch a new token), end the stream. */
void http_expire_stream(struct sp_worker *w, struct conn *c)
{
	static const char text[] = "event: spout-auth-expired\ndata: {\"reason\":\"token expired\"}\n\n";

	end_stream_with(w, c, text, (int)sizeof(text) - 1, &w->stats.closed_token_expired);
}

static const char *gap_reason(int gap)
{
	switch (gap) {
	case SP_GAP_EVICTED: return "evicted";
	case SP_GAP_UNKNOWN_ID: return "unknown-id";
	case SP_GAP_MALFORMED_ID: return "malformed-id";
	default: return "none";
	}
}

/* Tell a resuming client that replay could not be exact (docs/protocol.md,
 * "Resuming"): a named event it can listen for to resync. */
static int queue_gap_event(struct sp_worker *w, struct conn *c)
{
	char body[160];
	int n;

	if (c->gap == SP_GAP_MALFORMED_ID)
		n = snprintf(body, sizeof(body),
			     "event: spout-gap\ndata: {\"reason\":\"%s\"}\n\n", gap_reason(c->gap));
	else
		n = snprintf(body, sizeof(body),
			     "event: spout-gap\ndata: {\"reason\":\"%s\",\"last_event_id\":\"%llu\"}\n\n",
			     gap_reason(c->gap), (unsigned long long)c->resume_after);
	struct sp_frame *f = sp_frame_new_chunk(body, (size_t)n);
	return f == NULL ? -ENOMEM : conn_queue_response(w, c, f);
}

/* Queue the replayed frames (their references move into wrefs). */
static int queue_replay(struct sp_worker *w, struct conn *c)
{
	struct sp_replay *rp = c->replay;
	int rc = 0;

	c->gap = (uint8_t)rp->gap;
	if (rp->gap != SP_GAP_NONE)
		rc = queue_gap_event(w, c);
	for (size_t i = 0; i < rp->nframes; i++) {
		if (rc == 0)
			rc = conn_queue_response(w, c, rp->frames[i]);
		else
			sp_frame_release(rp->frames[i]);
	}
	rp->nframes = 0;
	/* Everything up to <upto> was either replayed or not on our topics;
	 * live frames with smaller ids may still be in the ring behind us. */
	c->last_id = rp->upto;
	sub_replay_free(rp);
	c->replay = NULL;
	return rc;
}

/* The subscription is live (every topic acked, any replay answered): send
 * the stream head, then what the client missed. From here on, any event
 * published is delivered. */
void http_start_stream(struct sp_worker *w, struct conn *c)
{
	char head[RESP_MAX];
	char cors[320];
	char pre[64];
	int n, pl;

	cors_headers(w->broker->cfg, cors, sizeof(cors));
	pl = stream_preamble(w, pre, sizeof(pre));
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 200 OK\r\n"
		     "Content-Type: text/event-stream\r\n"
		     "Cache-Control: no-cache\r\n"
		     "X-Accel-Buffering: no\r\n"
		     "%s"
		     "%s"
		     "\r\n",
		     c->chunked ? "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n" : "",
		     cors);
	if (c->chunked)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "%x\r\n%s\r\n", pl, pre);
	else
		n += snprintf(head + n, sizeof(head) - (size_t)n, "%s", pre);
	struct sp_frame *f = sp_frame_new_raw(head, (size_t)n);
	c->state = CS_STREAMING;
	c->t_ms = w->local->now_ms;
	sp_list_move_tail(&w->local->idle, &c->timer_link);
	int rc = f == NULL ? -ENOMEM : conn_queue_response(w, c, f);
	if (rc == 0 && c->replay != NULL)
		rc = queue_replay(w, c);
	else if (rc == 0 && c->gap != SP_GAP_NONE)
		rc = queue_gap_event(w, c);
	if (rc != 0) {
		conn_close(w, c, CLOSE_ERROR);
		return;
	}
	sp_stat_add(&w->stats.streams_opened, 1);
}

/* The client's Last-Event-ID: the header, else ?lastEventId= (EventSource
 * cannot set headers on a first connection). Returns 1 with <*id> set,
 * 0 when absent or empty, -1 when malformed. */
static int last_event_id(const struct sp_http_req *req, uint64_t *id)
{
	char buf[32];
	const char *s = req->last_event_id;
	size_t len = req->last_event_id_len;

	if (s == NULL) {
		ssize_t k = sp_http_query_param(req, "lastEventId", buf, sizeof(buf));
		if (k == -ENOENT)
			return 0;
		if (k < 0)
			return -1;
		s = buf;
		len = (size_t)k;
	}
	if (len == 0)
		return 0;
	if (len > 20)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*id = v;
	return 1;
}

/* 401/403 with the RFC 6750 challenge, counted by <counter>. */
static void auth_fail(struct sp_worker *w, struct conn *c, int status, sp_counter *counter,
		      const char *error, const char *reason)
{
	char hdr[256];

	sp_stat_add(counter, 1);
	if (error != NULL)
		snprintf(hdr, sizeof(hdr), "WWW-Authenticate: Bearer realm=\"spout\", error=\"%s\"\r\n",
			 error);
	else
		snprintf(hdr, sizeof(hdr), "WWW-Authenticate: Bearer realm=\"spout\"\r\n");
	http_fail_with(w, c, status, hdr, reason);
}

/* --auth: may this request read its topics? Returns 0 to go on, -1 when
 * it was answered 401/403. A token that expires is remembered, so the
 * stream ends when it does (run_timers, http_expire_stream). */
static int authorize(struct sp_worker *w, struct conn *c, const struct sp_http_req *req)
{
	const struct sp_auth *a = w->broker->auth;
	struct sp_worker_local *L = w->local;
	struct sp_worker_stats *st = &w->stats;
	const struct sp_grant *g = NULL;
	const char *reason = "malformed token";
	char why[SP_TOPIC_MAX + 64];

	if (a == NULL)
		return 0;
	ssize_t n = sp_auth_token(req, w->broker->cfg->jwt_cookie, L->token, sizeof(L->token),
				  &reason);
	if (n < 0) {
		auth_fail(w, c, 401, &st->auth_invalid, "invalid_request",
			  n == -ENOSPC ? "token too long" : reason);
		return -1;
	}
	uint64_t now_s = (uint64_t)time(NULL);
	if (n > 0) {
		if (sp_auth_verify(a, L->token, now_s, &L->grant, &reason) != 0) {
			auth_fail(w, c, 401, &st->auth_invalid, "invalid_token", reason);
			return -1;
		}
		g = &L->grant;
	} else if (sp_auth_mode(a) == SP_AUTH_REQUIRED) {
		auth_fail(w, c, 401, &st->auth_missing, NULL,
			  "token required (Authorization: Bearer, or ?token=)");
		return -1;
	}
	const struct sp_http_topics *t = &L->req_topics;
	for (unsigned i = 0; i < t->n; i++) {
		if (sp_auth_allows(a, g, t->name[i], t->len[i]))
			continue;
		snprintf(why, sizeof(why), "%s for topic %.*s",
			 g == NULL ? "token required" : "token does not grant", (int)t->len[i],
			 t->name[i]);
		if (g == NULL)
			auth_fail(w, c, 401, &st->auth_missing, NULL, why);
		else
			auth_fail(w, c, 403, &st->auth_forbidden, "insufficient_scope", why);
		return -1;
	}
	if (g != NULL) {
		sp_stat_add(&st->auth_ok, 1);
		if (g->exp_s != 0) {
			/* exp is wall-clock; the timers run on the monotonic
			 * clock: convert the time left. */
			uint64_t end_s = g->exp_s + w->broker->cfg->jwt_leeway_s;
			uint64_t left_ms = end_s > now_s ? (end_s - now_s) * 1000 : 0;
			if (sp_heap_push(&L->expiring, c, &c->expiry_pos, L->now_ms + left_ms) != 0) {
				http_fail(w, c, 503, "out of memory");
				return -1;
			}
		}
	}
	return 0;
}

static void on_events(struct sp_worker *w, struct conn *c, const struct sp_http_req *req)
{
	struct sp_worker_local *L = w->local;
	const char *reason;

	if (req->method == SP_HTTP_OPTIONS) {
		respond(w, c, 204, NULL,
			"Allow: GET, HEAD, OPTIONS\r\n"
			"Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n"
			"Access-Control-Allow-Headers: Last-Event-ID, Cache-Control, Authorization\r\n"
			"Access-Control-Max-Age: 86400\r\n",
			NULL, 0, false);
		return;
	}
	if (req->method != SP_HTTP_GET && req->method != SP_HTTP_HEAD) {
		sp_stat_add(&w->stats.bad_requests, 1);
		respond(w, c, 405, NULL, "Allow: GET, HEAD, OPTIONS\r\n",
			"method not allowed\n", 19, false);
		return;
	}
	if (atomic_load_explicit(&w->broker->phase, memory_order_relaxed) == SP_PHASE_DRAINING) {
		/* Not a 503: EventSource gives up for good on any status but
		 * 200. A stream that only says "retry in N ms" and ends makes it
		 * reconnect, through the load balancer, to another node. */
		char body[64];
		uint32_t retry = w->broker->cfg->retry_ms ? jittered_retry(w) : 1000;
		int n = snprintf(body, sizeof(body), ":draining\nretry: %u\n\n", retry);
		respond(w, c, 200, "text/event-stream", "Cache-Control: no-cache\r\n", body,
			(size_t)n, req->method == SP_HTTP_HEAD);
		sp_stat_add(&w->stats.closed_drain, 1);
		return;
	}
	int status = sp_http_parse_topics(req, w->broker->cfg->max_topics, &L->req_topics, &reason);
	if (status != 0) {
		http_fail(w, c, status, reason);
		return;
	}
	if (authorize(w, c, req) != 0)
		return;
	if (req->method == SP_HTTP_HEAD) {
		respond(w, c, 200, "text/event-stream", "Cache-Control: no-cache\r\n", NULL, 0, true);
		return;
	}
	c->chunked = req->http_minor >= 1;
	sp_list_del(&c->timer_link);   /* no header timeout while acks travel */
	c->state = CS_SUBSCRIBING;
	if (sub_subscribe(w, c, &L->req_topics) != 0) {
		conn_close(w, c, CLOSE_ERROR);
		return;
	}
	uint64_t after;
	int has_id = last_event_id(req, &after);
	if (has_id != 0)
		sp_stat_add(&w->stats.reconnects, 1);
	switch (has_id) {
	case 1:
		c->resume_after = after;
		if (sub_request_replay(w, c, after) != 0) {
			conn_close(w, c, CLOSE_ERROR);
			return;
		}
		break;
	case -1:
		c->gap = SP_GAP_MALFORMED_ID;
		break;
	}
	if (c->nwaiting == 0)
		http_start_stream(w, c);
}

static void on_simple(struct sp_worker *w, struct conn *c, const struct sp_http_req *req,
		      bool metrics)
{
	bool head = req->method == SP_HTTP_HEAD;

	if (req->method != SP_HTTP_GET && !head) {
		sp_stat_add(&w->stats.bad_requests, 1);
		respond(w, c, 405, NULL, "Allow: GET, HEAD\r\n", "method not allowed\n", 19, false);
		return;
	}
	if (!metrics) {
		respond(w, c, 200, NULL, NULL, "ok\n", 3, head);
		return;
	}
	size_t len;
	char *body = sp_metrics_render(w->broker, &len);
	if (body == NULL) {
		respond(w, c, 500, NULL, NULL, "out of memory\n", 14, head);
		return;
	}
	respond(w, c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, body, len, head);
	free(body);
}

/* For load balancers: 200 only while the broker takes new streams. */
static void on_ready(struct sp_worker *w, struct conn *c, const struct sp_http_req *req)
{
	bool head = req->method == SP_HTTP_HEAD;
	int phase = atomic_load_explicit(&w->broker->phase, memory_order_relaxed);

	if (req->method != SP_HTTP_GET && !head) {
		sp_stat_add(&w->stats.bad_requests, 1);
		respond(w, c, 405, NULL, "Allow: GET, HEAD\r\n", "method not allowed\n", 19, false);
		return;
	}
	int bp = atomic_load_explicit(&w->broker->router.bp_health, memory_order_relaxed);
	if (phase == SP_PHASE_RUNNING && bp != SP_BP_OFF && bp != SP_BP_READY) {
		/* Cluster mode: a node that cannot hear Redis delivers nothing
		 * published elsewhere; say so, so the balancer moves clients. */
		static const char *const why[] = {
			[SP_BP_CONNECTING] = "backplane connecting\n",
			[SP_BP_DOWN] = "backplane down\n",
			[SP_BP_STALLED] = "backplane stalled: heartbeat through Redis late\n",
		};
		char body[96];
		int n = snprintf(body, sizeof(body), "%s%s",
				 w->broker->cfg->ready_without_redis ? "degraded: " : "", why[bp]);
		if (w->broker->cfg->ready_without_redis)
			respond(w, c, 200, NULL, NULL, body, (size_t)n, head);
		else
			respond(w, c, 503, NULL, "Retry-After: 1\r\n", body, (size_t)n, head);
	} else if (phase == SP_PHASE_RUNNING)
		respond(w, c, 200, NULL, NULL, "ready\n", 6, head);
	else if (phase == SP_PHASE_DRAINING)
		respond(w, c, 503, NULL, "Retry-After: 1\r\n", "draining\n", 9, head);
	else
		respond(w, c, 503, NULL, "Retry-After: 1\r\n", "starting\n", 9, head);
}

/* Limits on the head, the client behind a trusted proxy, and the
 * per-address cap. Returns 0 to go on, -1 when answered. */
static int check_client(struct sp_worker *w, struct conn *c, const struct sp_http_req *req,
			size_t len)
{
	const struct sp_config *cfg = w->broker->cfg;

	if (len > cfg->max_request_bytes || req->nheaders > cfg->max_headers) {
		sp_stat_add(&w->stats.rejected_headers, 1);
		http_fail(w, c, 431, len > cfg->max_request_bytes ? "request head too large"
								   : "too many header fields");
		return -1;
	}
	if (c->peer_trusted && !cfg->proxy_protocol && req->nxff > 0) {
		int rc = sp_xff_client(req->xff, req->xff_len, req->nxff, cfg->trusted_proxies,
				       cfg->ntrusted_proxies, &c->client);
		if (rc < 0) {
			sp_stat_add(&w->stats.proxy_errors, 1);
			http_fail(w, c, 400, "malformed X-Forwarded-For");
			return -1;
		}
		if (rc > 0)
			conn_admit(w, c);
	}
	if (c->over_limit) {
		http_fail_with(w, c, 429, "Retry-After: 10\r\n", "too many connections from your address");
		return -1;
	}
	return 0;
}

void http_on_head(struct sp_worker *w, struct conn *c, const char *buf, size_t len,
		  size_t avail)
{
	struct sp_http_req req;
	const char *reason;
	int status = sp_http_parse(buf, len, &req, &reason);

	sp_stat_add(&w->stats.requests, 1);
	if (status != 0) {
		http_fail(w, c, status, reason);
		return;
	}
	if (check_client(w, c, &req, len) != 0)
		return;
	if (path_is_events(&req))
		on_events(w, c, &req);
	else if (path_is(&req, "/healthz"))
		on_simple(w, c, &req, false);
	else if (path_is(&req, "/readyz"))
		on_ready(w, c, &req);
	else if (path_is(&req, "/metrics"))
		on_simple(w, c, &req, true);
	else if (path_is(&req, "/dashboard") || path_is(&req, "/dashboard/"))
		dash_on_request(w, c, &req, false);
	else if (path_is(&req, "/dashboard/events"))
		dash_on_request(w, c, &req, true);
	else if (req.path_len > 9 && memcmp(req.path, "/publish/", 9) == 0)
		pub_on_head(w, c, &req, buf + len, avail - len);
	else
		http_fail(w, c, 404, "not found; subscribe at /events/<topic>");
}
