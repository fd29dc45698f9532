/*
 * worker_internal.h - state private to one worker thread, shared by
 * worker.c (loop, reading, timers), worker_write.c (socket writes),
 * worker_http.c (requests and responses) and worker_sub.c (subscriptions
 * and fan-out).
 *
 * Everything reachable from struct sp_worker_local is owned by that worker
 * thread alone: no locks, no atomics, except the stats counters.
 */
#ifndef SPOUT_WORKER_INTERNAL_H
#define SPOUT_WORKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "spout/auth.h"
#include "spout/broker.h"
#include "spout/dashboard.h"
#include "spout/ev.h"
#include "spout/heap.h"
#include "spout/http.h"
#include "spout/netaddr.h"
#include "spout/list.h"
#include "spout/outq.h"
#include "spout/ptrie.h"
#include "spout/stats.h"
#include "spout/tmap.h"
#include "spout/uwrite.h"

enum conn_state {
	CS_READING,      /* waiting for the request head */
	CS_SUBSCRIBING,  /* head parsed, waiting for the router's acks */
	CS_STREAMING,    /* SSE stream open */
	CS_RESPONDING,   /* one response queued; close once it is written */
	CS_CLOSING,      /* on the close list; freed at the end of the loop */
	CS_ZOMBIE,       /* freed but for the struct: a REPLAY or PUBLISH answer is due */
	CS_BODY,         /* POST /publish: reading the body into <pub> */
	CS_PUBLISHING,   /* POST /publish: the router has the event */
};

enum close_reason {
	CLOSE_CLIENT,        /* peer closed or reset */
	CLOSE_ERROR,         /* unexpected socket error */
	CLOSE_DONE,          /* response written */
	CLOSE_OVERFLOW,      /* out-queue over its bound, policy disconnect */
	CLOSE_WRITE_TIMEOUT, /* pending writes made no progress */
	CLOSE_SHUTDOWN,
	CLOSE_TOKEN_EXPIRED, /* its token expired before the stream started */
};

#define SP_DASH_VIEWERS 32   /* dashboard streams per worker */

struct conn;
struct wtopic;

/* One topic of one connection; lives in conn->subs[]. */
struct sub {
	struct conn *conn;
	struct wtopic *topic;
	uint32_t idx;            /* position in topic->subs */
};

/* A topic with subscribers on this worker. */
struct wtopic {
	struct sp_tnode node;
	struct sub **subs;
	uint32_t nsubs, cap;
	/* The SUB still travelling to the router, or NULL once the router has
	 * acked it and frames flow. Identity (not just non-NULL) matters: an
	 * ack only activates the wtopic whose SUB it answers. */
	struct sp_ctl *pending;
	bool wild;               /* a pattern: also in sp_worker_local.patterns */
	char name[];
};

struct conn {
	int fd;
	enum conn_state state;
	bool chunked;            /* HTTP/1.1 stream: chunked transfer-coding */
	bool blocked;            /* write hit EAGAIN; wait for writable */
	bool want_flush;         /* on the pending list */
	bool bad_request;        /* answered with an error status */
	bool peer_trusted;       /* the peer is a --trusted-proxy */
	bool proxy_pending;      /* a PROXY header must come first */
	bool limit_held;         /* holds a --max-conns-per-ip slot for <client> */
	bool over_limit;         /* <client> was at its limit: 429 once the head is in */
	uint16_t nsubs;
	uint16_t nwaiting;       /* acks (and a replay answer) still to come */
	bool replay_inflight;    /* a REPLAY is with the router: see conn_free */
	bool pub_inflight;       /* a PUBLISH is with the router: see conn_free */
	bool dash;               /* a dashboard stats stream, in L->dash */
	uint8_t gap;             /* enum sp_gap to announce when streaming starts */
	uint32_t rlen;           /* READING: bytes in rbuf; BODY: body bytes in pub */
	uint32_t expiry_pos;     /* token expiry: place in L->expiring, or SP_HEAP_NONE */
	uint64_t last_id;        /* newest event id queued: no duplicates */
	uint64_t resume_after;   /* the client's Last-Event-ID, for spout-gap */
	struct sp_ipaddr client; /* the peer, or who a trusted proxy says it is */
	struct sp_replay *replay;/* answered replay waiting for the stream head */
	struct sp_pubreq *pub;   /* POST /publish while its body is read */
	uint64_t t_ms;           /* READING: accept time; STREAMING: last write */
	uint64_t progress_ms;    /* last write progress while blocked */
	struct sp_outq q;
	struct sub *subs;
	char *rbuf;              /* partial request head, only if it came in pieces */
	struct sp_list timer_link;   /* reading list or idle list, by t_ms */
	struct sp_list blocked_link; /* blocked list, by progress_ms */
	struct sp_list pending_link; /* pending-flush list */
	struct sp_list all_link;     /* every connection of the worker */
	struct conn *next_close;
};

struct sp_worker_local {
	struct sp_ev ev;
	struct sp_uwrite *uw;        /* --io uring: batched writes; else NULL */
	struct sp_tmap topics;       /* topics and patterns, by name */
	struct sp_ptrie patterns;    /* wild wtopics, by what they match */
	struct sp_wref_pool pool;
	struct sp_wref heartbeat;    /* pinned; every connection shares it */
	struct sp_list reading;      /* CS_READING, oldest first */
	struct sp_list idle;         /* CS_STREAMING, least recently written first */
	struct sp_list blocked;      /* unwritten bytes + EAGAIN, least progress first */
	struct sp_list pending;      /* have queued bytes to try writing */
	struct sp_list all;          /* every open connection */
	struct sp_list zombies;      /* closed, but a REPLAY answer is still due */
	struct sp_heap expiring;     /* streams whose token expires, soonest first */
	struct conn *dash[SP_DASH_VIEWERS]; /* dashboard stats streams */
	unsigned ndash;
	uint64_t dash_next_ms;       /* next snapshot for them */
	struct sp_dash_prev *dash_prev; /* totals at the last snapshot (rates) */
	uint64_t rng;                /* xorshift state for retry jitter */
	uint64_t log_window_ms;      /* shed log rate limit: current second */
	uint32_t log_lines;          /* ... lines written in it */
	uint32_t log_suppressed;     /* ... lines held back in it */
	bool draining;               /* saw broker->drain_start_ms */
	uint32_t drain_total;        /* streams open when the drain began */
	uint32_t drain_done;         /* ... of which ended so far */
	struct conn *close_list;
	struct sp_ctl *ctl_free;     /* recycled ctl messages */
	struct sp_ctl *backlog, *backlog_tail; /* ctls waiting for ctl-ring room */
	bool ctl_pushed;             /* signal the router at the end of the loop */
	struct sp_outq_limits lim;
	struct sp_outq_limits lim_response;
	uint32_t flush_events;       /* write at once past half the bounds */
	uint64_t flush_bytes;
	uint64_t now_ms;
	uint32_t queue_depth_max;
	char scratch[SP_HTTP_HEAD_MAX + 1];
	struct sp_http_topics req_topics;
	char token[SP_AUTH_TOKEN_MAX];   /* the request's token, while it is checked */
	struct sp_grant grant;
};

/* worker.c */
void conn_close(struct sp_worker *w, struct conn *c, enum close_reason why);
/* <c>'s client address is known: take its --max-conns-per-ip slot, or
 * mark it over the limit (answered 429 once its head is read). */
void conn_admit(struct sp_worker *w, struct conn *c);
void conn_want_flush(struct sp_worker *w, struct conn *c);

/* worker_write.c */
/* Set up the io_uring write path if --io and the system allow it. */
void conn_write_init(struct sp_worker *w);
/* Write <c>'s out-queue with writev until EAGAIN or a budget. */
void conn_flush(struct sp_worker *w, struct conn *c);
/* Write every connection on the pending list (one round). */
void conn_flush_pending(struct sp_worker *w);
/* Why a read or write error closes a connection (peer vs our problem). */
enum close_reason io_error_reason(int err);
/* Queue an owned wref on <c> bypassing the stream bounds (responses). */
int conn_queue_response(struct sp_worker *w, struct conn *c, struct sp_frame *f);

/* worker_http.c */
/* A complete head of <len> bytes at <buf>; <avail> bytes were read in all
 * (a POST's body may follow the head). */
void http_on_head(struct sp_worker *w, struct conn *c, const char *buf, size_t len,
		  size_t avail);
void http_fail(struct sp_worker *w, struct conn *c, int status, const char *reason);
/* http_fail with extra header lines (each CRLF-ended; may be NULL). */
void http_fail_with(struct sp_worker *w, struct conn *c, int status, const char *extra,
		    const char *reason);
/* A complete response; the connection closes once it is written. */
void http_respond(struct sp_worker *w, struct conn *c, int status, const char *ctype,
		  const char *extra, const char *body, size_t body_len);
/* The same, for a HEAD request without the body when <head_only>. */
void http_respond_head(struct sp_worker *w, struct conn *c, int status, const char *ctype,
		       const char *extra, const char *body, size_t body_len, bool head_only);
void http_start_stream(struct sp_worker *w, struct conn *c);
/* Drain: tell a stream a jittered retry:, end it cleanly, close it. */
void http_end_stream(struct sp_worker *w, struct conn *c);
/* Its token expired: a spout-auth-expired event, then the end. */
void http_expire_stream(struct sp_worker *w, struct conn *c);

/* worker_sub.c */
int sub_subscribe(struct sp_worker *w, struct conn *c, const struct sp_http_topics *t);
void sub_unsubscribe_all(struct sp_worker *w, struct conn *c);
void sub_on_frame(struct sp_worker *w, struct sp_frame *f);
void sub_on_ack(struct sp_worker *w, struct sp_ctl *ctl);
/* Ask the router for what <c> missed after <after>; the stream starts when
 * the answer arrives. Returns 0 or -ENOMEM. */
int sub_request_replay(struct sp_worker *w, struct conn *c, uint64_t after);
void sub_replay_free(struct sp_replay *rp);
void sub_flush_ctl(struct sp_worker *w);
/* Send <c> to the router now, or behind earlier ones (ring full). */
void sub_send_ctl(struct sp_worker *w, struct sp_ctl *c);

/* worker_dash.c: GET /dashboard, /dashboard/events (--dashboard) */
void dash_on_request(struct sp_worker *w, struct conn *c, const struct sp_http_req *req,
		     bool events);
void dash_tick(struct sp_worker *w);                  /* once a second, if viewed */
void dash_forget(struct sp_worker *w, struct conn *c); /* a viewer closes */

/* worker_pub.c: POST /publish/<topic> (--http-publish) */
void pub_on_head(struct sp_worker *w, struct conn *c, const struct sp_http_req *req,
		 const char *body, size_t avail);
void pub_on_body(struct sp_worker *w, struct conn *c, const char *buf, size_t len);
void pub_on_answer(struct sp_worker *w, struct sp_pubreq *p);
void sub_teardown(struct sp_worker *w);

#endif
