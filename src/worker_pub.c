/*
 * worker_pub.c - HTTP publish, the worker's half (--http-publish):
 *
 *   POST /publish/<topic>            body = the event's data
 *        ?event=<type> or Spout-Event: <type>
 *        Authorization: Bearer <--pub-token>   (when one is set)
 *   -> 201 {"id":"<id>","topic":"<topic>"}   Spout-Event-Id: <id>
 *
 * The request head is checked here (token, topic, type, length), the body
 * is read into a struct sp_pubreq, which goes to the router on the ctl
 * ring; the router routes it like a line-protocol PUB (router_hpub.c) and
 * hands it back with the id or a refusal. The line protocol stays the
 * primary way to publish: one persistent connection, pipelined, no HTTP
 * per event. Worker thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <xxhash.h>

#include "spout/frame.h"
#include "spout/topic.h"
#include "worker_internal.h"

#define PUBLISH_PREFIX "/publish/"
#define IDEM_KEY_MAX 128

/* The request's idempotency key (?id= or Idempotency-Key) as a hash of
 * topic and key, in <*out> (0: none). Returns 0, or -1 when answered 400. */
static int idempotency_key(struct sp_worker *w, struct conn *c, const struct sp_http_req *req,
			   const char *topic, size_t tl, uint64_t *out)
{
	char key[SP_TOPIC_MAX + 1 + IDEM_KEY_MAX + 1];
	ssize_t kl;

	*out = 0;
	/* The key counts per topic: the same key on two topics is two events. */
	memcpy(key, topic, tl);
	key[tl] = '\0';
	if (req->idempotency_key != NULL) {
		kl = req->idempotency_key_len <= IDEM_KEY_MAX ? (ssize_t)req->idempotency_key_len : -1;
		if (kl > 0)
			memcpy(key + tl + 1, req->idempotency_key, (size_t)kl);
	} else {
		kl = sp_http_query_param(req, "id", key + tl + 1, IDEM_KEY_MAX + 1);
		if (kl == -ENOENT)
			return 0;
	}
	bool ok = kl > 0 && kl <= IDEM_KEY_MAX;
	for (ssize_t i = 0; ok && i < kl; i++)
		ok = (unsigned char)key[tl + 1 + i] > 0x20 && (unsigned char)key[tl + 1 + i] < 0x7f;
	if (!ok) {
		http_fail(w, c, 400, "invalid idempotency key (id): 1..128 printable bytes, no spaces");
		return -1;
	}
	if (w->broker->cfg->publish_dedup_s == 0) {
		http_fail(w, c, 400, "idempotency keys are off (--publish-dedup-s 0)");
		return -1;
	}
	uint64_t h = XXH3_64bits(key, tl + 1 + (size_t)kl);
	*out = h ? h : 1;   /* 0 means none */
	return 0;
}

/* Send the complete request to the router; the answer comes back as an
 * ack (pub_on_answer). */
static void submit(struct sp_worker *w, struct conn *c)
{
	struct sp_pubreq *req = c->pub;

	c->pub = NULL;
	c->pub_inflight = true;
	c->state = CS_PUBLISHING;
	sp_list_del(&c->timer_link);   /* the router answers; no header timeout */
	sub_send_ctl(w, &req->hdr);
}

/* Check the head of POST /publish/<topic>; on success <c> waits for the
 * body in <c->pub>. Returns 0, or -1 when it was answered. */
static int check_head(struct sp_worker *w, struct conn *c, const struct sp_http_req *req,
		      struct sp_pubreq **out)
{
	const struct sp_config *cfg = w->broker->cfg;
	char topic[SP_TOPIC_MAX + 1], event[SP_EVENT_TYPE_MAX + 1];
	ssize_t tl, el = 0;
	const char *why;

	if (cfg->pub_token[0] != '\0') {
		const char *a = req->authorization;
		if (a == NULL || req->authorization_len < 7 || strncasecmp(a, "Bearer ", 7) != 0) {
			http_fail_with(w, c, 401, "WWW-Authenticate: Bearer realm=\"spout-publish\"\r\n",
				       "publisher token required (Authorization: Bearer <--pub-token>)");
			return -1;
		}
		if (!sp_auth_pub_token_equal(cfg->pub_token, a + 7, req->authorization_len - 7)) {
			sp_stat_add(&w->stats.pub_auth_failures, 1);
			http_fail_with(w, c, 401, "WWW-Authenticate: Bearer realm=\"spout-publish\", "
				       "error=\"invalid_token\"\r\n", "publisher token wrong");
			return -1;
		}
	}
	tl = sp_percent_decode(req->path + strlen(PUBLISH_PREFIX),
			       req->path_len - strlen(PUBLISH_PREFIX), topic, sizeof(topic) - 1);
	if (tl < 0) {
		http_fail(w, c, 400, tl == -ENOSPC ? "topic too long" : "malformed percent-encoding");
		return -1;
	}
	if ((why = sp_topic_check(topic, (size_t)tl)) != NULL) {
		http_fail(w, c, 400, why);   /* patterns too: one publishes to a topic */
		return -1;
	}
	if (req->spout_event != NULL) {
		if (req->spout_event_len >= sizeof(event)) {
			http_fail(w, c, 400, "invalid event type");
			return -1;
		}
		memcpy(event, req->spout_event, req->spout_event_len);
		el = (ssize_t)req->spout_event_len;
	} else {
		el = sp_http_query_param(req, "event", event, sizeof(event));
		if (el == -ENOENT)
			el = 0;
	}
	if (el < 0 || (el > 0 && !sp_event_type_valid(event, (size_t)el))) {
		http_fail(w, c, 400, "invalid event type (1..64 printable bytes, no spaces)");
		return -1;
	}
	uint64_t dedup;
	if (idempotency_key(w, c, req, topic, (size_t)tl, &dedup) != 0)
		return -1;
	if (req->chunked_body) {
		http_fail(w, c, 411, "Content-Length required (chunked bodies are not accepted)");
		return -1;
	}
	if (req->content_length > cfg->max_payload) {
		http_fail(w, c, 413, "payload too large (--max-payload)");
		return -1;
	}
	if (req->expect != NULL && (req->expect_len != 12 ||
				    strncasecmp(req->expect, "100-continue", 12) != 0)) {
		http_fail(w, c, 417, "only Expect: 100-continue is understood");
		return -1;
	}
	struct sp_pubreq *p = calloc(1, sizeof(*p) + req->content_length + 1);
	if (p == NULL) {
		http_fail(w, c, 503, "out of memory");
		return -1;
	}
	p->hdr.type = SP_CTL_PUBLISH;
	memcpy(p->hdr.topic, topic, (size_t)tl);
	p->hdr.topic_len = (uint16_t)tl;
	p->hdr.topic_hash = sp_topic_hash(topic, (size_t)tl);
	memcpy(p->event, event, (size_t)el);
	p->event_len = (uint16_t)el;
	p->data_len = req->content_length;
	p->dedup = dedup;
	p->conn = c;
	p->client = c->client;
	*out = p;
	return 0;
}

void pub_on_head(struct sp_worker *w, struct conn *c, const struct sp_http_req *req,
		 const char *body, size_t avail)
{
	if (!w->broker->cfg->http_publish) {
		http_fail(w, c, 404, "HTTP publishing is off (spoutd --http-publish)");
		return;
	}
	if (req->method == SP_HTTP_OPTIONS) {   /* CORS preflight of a browser publisher */
		http_respond(w, c, 204, NULL,
			     "Allow: POST, OPTIONS\r\n"
			     "Access-Control-Allow-Methods: POST, OPTIONS\r\n"
			     "Access-Control-Allow-Headers: Authorization, Content-Type, Spout-Event, "
			     "Idempotency-Key\r\n"
			     "Access-Control-Expose-Headers: Spout-Event-Id\r\n"
			     "Access-Control-Max-Age: 86400\r\n", NULL, 0);
		return;
	}
	if (req->method != SP_HTTP_POST) {
		http_fail_with(w, c, 405, "Allow: POST\r\n", "method not allowed: POST to publish");
		return;
	}
	struct sp_pubreq *p;
	if (check_head(w, c, req, &p) != 0)
		return;
	c->pub = p;
	c->rlen = avail < p->data_len ? avail : p->data_len;
	memcpy(p->data, body, c->rlen);
	if (c->rlen == p->data_len) {
		submit(w, c);
		return;
	}
	/* The body follows: read it within what is left of the header
	 * timeout (the clock still runs from the first byte). curl waits a
	 * second for this before a body over 1 KiB. */
	c->state = CS_BODY;
	if (req->expect != NULL) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		ssize_t k = write(c->fd, cont, sizeof(cont) - 1);
		(void)k;   /* a fresh socket takes 25 bytes; if not, the client sends anyway */
	}
}

void pub_on_body(struct sp_worker *w, struct conn *c, const char *buf, size_t len)
{
	struct sp_pubreq *p = c->pub;
	size_t take = p->data_len - c->rlen;

	if (take > len)
		take = len;
	memcpy(p->data + c->rlen, buf, take);
	c->rlen += take;
	if (c->rlen == p->data_len)
		submit(w, c);
}

void pub_on_answer(struct sp_worker *w, struct sp_pubreq *p)
{
	struct conn *c = p->conn;
	char body[SP_TOPIC_MAX + 96], hdr[64];

	c->pub_inflight = false;
	if (c->state == CS_ZOMBIE) {        /* the client left: nobody to tell */
		sp_list_del(&c->all_link);
		free(c);
	} else if (c->state == CS_PUBLISHING) {
		if (p->id != 0) {
			/* 201 for a new event; 200 and "duplicate" when the key was
			 * seen: the first publish's id, nothing published again */
			int n = snprintf(body, sizeof(body),
					 "{\"id\":\"%llu\",\"topic\":\"%.*s\"%s}\n",
					 (unsigned long long)p->id, (int)p->hdr.topic_len, p->hdr.topic,
					 p->dup ? ",\"duplicate\":true" : "");
			snprintf(hdr, sizeof(hdr), "Spout-Event-Id: %llu\r\n",
				 (unsigned long long)p->id);
			http_respond(w, c, p->dup ? 200 : 201, "application/json", hdr, body,
				     (size_t)n);
		} else {
			http_fail_with(w, c, p->status ? p->status : 503,
				       p->status == 429 ? "Retry-After: 1\r\n" : NULL,
				       p->err ? p->err : "not published");
		}
	}
	free(p);
}
