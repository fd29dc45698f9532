/*
 * router_hpub.c - HTTP publishes at the router (POST /publish/<topic>; the
 * worker side is worker_pub.c).
 *
 * A worker sends a struct sp_pubreq on its ctl ring; the router applies
 * --pub-max-rate per client address, routes the event exactly as a line-
 * protocol PUB (router_route, or bp_publish through Redis in cluster mode)
 * and hands the request back with its id or a refusal, in the worker's ack
 * order. A full frame ring holds a request back (in order) until it
 * drains, as it pauses line-protocol publishers. Router thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "spout/log.h"
#include "spout/sys.h"
#include "router_internal.h"

/*
 * The per-address buckets: a fixed table indexed by a hash of the address.
 * Two addresses that meet in one slot share it until one's bucket is
 * overwritten, which only ever gives the other a fresh (full) bucket: the
 * table bounds memory whatever the number of clients, at the price of
 * being generous under a flood of distinct addresses. Each address is
 * still capped at --pub-max-rate once it has the slot.
 */
#define RATE_SLOTS 4096

struct rate_slot {
	struct sp_ipaddr addr;
	double tokens;
	uint64_t ns;
	bool used;
};

struct hpub_rate {
	struct rate_slot slot[RATE_SLOTS];
};

/*
 * Idempotency keys seen (single node; in cluster mode Redis keeps them, and
 * this table only saves a round trip): a 4-way set-associative cache of
 * (key hash, id, until). A set full of live keys gives up its oldest, so
 * a key can be forgotten early only when more than 4 keys of one set
 * (1 in 16384) are live at once; 1.5 MiB, allocated with the first key.
 */
#define DEDUP_SETS 16384
#define DEDUP_WAYS 4

struct dedup_slot {
	uint64_t key, id, until_ms;
};

struct hpub_dedup {
	struct dedup_slot set[DEDUP_SETS][DEDUP_WAYS];
};

static uint64_t dedup_lookup(struct sp_router_local *L, uint64_t key, uint64_t now)
{
	if (L->hpub_dedup == NULL)
		return 0;
	struct dedup_slot *s = L->hpub_dedup->set[key % DEDUP_SETS];
	for (int i = 0; i < DEDUP_WAYS; i++)
		if (s[i].key == key && s[i].until_ms > now)
			return s[i].id;
	return 0;
}

static void dedup_remember(struct sp_router *r, uint64_t key, uint64_t id, uint64_t now)
{
	struct sp_router_local *L = r->local;

	if (L->hpub_dedup == NULL && (L->hpub_dedup = calloc(1, sizeof(*L->hpub_dedup))) == NULL)
		return;   /* no memory: Redis (cluster) or nothing dedupes */
	struct dedup_slot *s = L->hpub_dedup->set[key % DEDUP_SETS], *victim = &s[0];
	for (int i = 0; i < DEDUP_WAYS; i++) {
		if (s[i].key == key || s[i].until_ms <= now) {
			victim = &s[i];
			break;
		}
		if (s[i].until_ms < victim->until_ms)
			victim = &s[i];
	}
	*victim = (struct dedup_slot){ .key = key, .id = id,
				       .until_ms = now + (uint64_t)r->broker->cfg->publish_dedup_s * 1000 };
}

/* An HTTP publish in flight at the router. */
struct hpub {
	struct pub_waiter wt;         /* cluster mode: Redis' answer arrives here */
	struct sp_list link;          /* on L->hpub_wait while a full ring holds it */
	unsigned worker;
	struct sp_pubreq *req;
};

static bool rate_allows(struct sp_router *r, const struct sp_ipaddr *a)
{
	struct sp_router_local *L = r->local;
	uint32_t rate = r->broker->cfg->pub_max_rate;

	if (rate == 0)
		return true;
	if (L->hpub_rate == NULL && (L->hpub_rate = calloc(1, sizeof(*L->hpub_rate))) == NULL)
		return true;   /* no memory for the table: fail open, as --pub-max-rate 0 */
	uint64_t now = sp_now_ns();
	size_t i = XXH3_64bits(a->b, sizeof(a->b)) % RATE_SLOTS;
	struct rate_slot *s = &L->hpub_rate->slot[i];
	if (!s->used || memcmp(s->addr.b, a->b, sizeof(a->b)) != 0) {
		s->used = true;
		s->addr = *a;
		s->tokens = rate;
		s->ns = now;
	}
	s->tokens += (double)(now - s->ns) * rate / 1e9;
	if (s->tokens > rate)
		s->tokens = rate;
	s->ns = now;
	if (s->tokens < 1.0)
		return false;
	s->tokens -= 1.0;
	return true;
}

/* Hand the request back to its worker with the answer and forget it. */
static void answer(struct sp_router *r, struct hpub *h, uint64_t id, int status,
		   const char *err)
{
	struct sp_pubreq *req = h->req;

	req->id = id;
	req->status = status;
	req->err = err;
	if (id != 0 && !req->dup)
		sp_stat_add(&r->stats.http_publishes, 1);
	else if (id == 0)
		sp_stat_add(&r->stats.http_publish_errors, 1);
	if (id != 0 && req->dedup != 0 && !req->dup)
		dedup_remember(r, req->dedup, id, sp_now_ms());
	router_ack(r, h->worker, &req->hdr);
	free(h);
}

static void on_redis_answer(struct pub_waiter *wt, uint64_t id, bool dup, const char *reason)
{
	struct hpub *h = (struct hpub *)wt;   /* wt is the first member */

	h->req->dup = dup;
	if (id != 0 && !dup)
		sp_stat_add(&wt->r->stats.events_published, 1);
	/* The reason's text is Redis' and gone after this call: the HTTP
	 * answer says what the line protocol would, in a fixed string. */
	answer(wt->r, h, id, id ? 0 : 503,
	       reason != NULL && strncmp(reason, "backplane error", 15) == 0
	       ? "backplane error (Redis refused the event)"
	       : "backplane unavailable (the event may or may not be stored)");
}

/* Route one request. Returns false if a full ring holds it back. */
static bool try_publish(struct sp_router *r, struct hpub *h)
{
	struct sp_pubreq *req = h->req;
	struct sp_event ev = { .topic = req->hdr.topic, .topic_len = req->hdr.topic_len,
			       .event = req->event_len ? req->event : NULL,
			       .event_len = req->event_len,
			       .data = req->data, .data_len = req->data_len };
	uint64_t id;

	if (req->dedup != 0) {
		uint64_t prev = dedup_lookup(r->local, req->dedup, sp_now_ms());
		if (prev != 0) {   /* a retry: the first publish's id, nothing new */
			req->dup = true;
			answer(r, h, prev, 0, NULL);
			return true;
		}
	}
	if (r->local->bp != NULL) {
		int rc = bp_publish(r, &h->wt, &ev, req->dedup);
		if (rc == -ENOTCONN)
			answer(r, h, 0, 503, "backplane unavailable");
		else if (rc != 0)
			answer(r, h, 0, 503, "out of memory");
		return true;
	}
	int rc = router_route(r, &ev, &id);
	if (rc == -EAGAIN)
		return false;
	if (rc != 0)
		answer(r, h, 0, 503, "out of memory");
	else
		answer(r, h, id, 0, NULL);
	return true;
}

void hpub_submit(struct sp_router *r, unsigned w, struct sp_pubreq *req)
{
	struct sp_router_local *L = r->local;
	struct hpub *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		req->id = 0;
		req->status = 503;
		req->err = "out of memory";
		router_ack(r, w, &req->hdr);
		return;
	}
	h->wt = (struct pub_waiter){ .r = r, .done = on_redis_answer };
	h->worker = w;
	h->req = req;
	if (!rate_allows(r, &req->client)) {
		sp_stat_add(&r->stats.pub_rate_limited, 1);
		answer(r, h, 0, 429, "rate limit: too many events per second from your address "
		       "(--pub-max-rate)");
		return;
	}
	/* Behind requests a full ring already holds, in arrival order. */
	if (!sp_list_empty(&L->hpub_wait) || !try_publish(r, h))
		sp_list_add_tail(&L->hpub_wait, &h->link);
}

void hpub_retry(struct sp_router *r)
{
	struct sp_router_local *L = r->local;
	struct sp_list *it;

	while ((it = sp_list_first(&L->hpub_wait)) != NULL) {
		struct hpub *h = sp_container_of(it, struct hpub, link);
		sp_list_del(it);
		if (!try_publish(r, h)) {
			sp_list_add(&L->hpub_wait, it);   /* still full: first again */
			return;
		}
	}
}

void hpub_teardown(struct sp_router *r)
{
	struct sp_router_local *L = r->local;
	struct sp_list *it;

	while ((it = sp_list_first(&L->hpub_wait)) != NULL) {
		struct hpub *h = sp_container_of(it, struct hpub, link);
		sp_list_del(it);
		free(h->req);
		free(h);
	}
	free(L->hpub_rate);
	L->hpub_rate = NULL;
	free(L->hpub_dedup);
	L->hpub_dedup = NULL;
}
