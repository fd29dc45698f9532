/*
 * sub.h - subscribers: one SSE connection each, from connect() to the end
 * of the run. sub.c owns the connections, sse.c parses what they read and
 * checks every delivery. Event-loop thread only.
 */
#ifndef SPOUT_BENCH_SUB_H
#define SPOUT_BENCH_SUB_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"

#define LINE_KEEP 64            /* SSE line bytes kept; "data: <seq>:<ns>:" fits */
#define GAP_MAX 32              /* sequence gaps remembered per subscriber */

enum sub_state {
	SS_FREE = 0,    /* churn slot not in use, or not opened yet */
	SS_CONNECTING,  /* connect() in progress */
	SS_SENDING,     /* writing the GET request */
	SS_HEAD,        /* waiting for the whole response head */
	SS_STREAM,      /* checked subscriber reading events */
	SS_PARKED,      /* slow subscriber: has its head, not read, not polled */
	SS_SLOWCHK,     /* slow subscriber read at the end of the run */
	SS_CLOSED,
};

enum sub_kind { SK_NORMAL, SK_SLOW, SK_CHURN };

struct gap {
	uint64_t lo, hi;        /* inclusive range of sequence numbers not seen */
};

struct sub {
	int fd;                 /* -1 when closed */
	uint32_t gen;           /* bumped on close: tells stale epoll events apart */
	uint8_t state, kind;
	bool chunked, established, dropped;
	bool ev_data, ev_ok;    /* current event has a data line / it parsed */
	uint8_t ngaps;
	char line_last;         /* last byte of the line so far (for \r\n) */
	uint32_t topic;
	uint32_t req_off;       /* request bytes sent */
	uint32_t head_len;
	uint32_t line_len;      /* length of the SSE line so far (saturating) */
	uint32_t ev_len, ev_plen; /* data value length / "<seq>:<ns>:" length */
	char *head;             /* response head, only until it is complete */
	struct http_chunked ch;
	int64_t t_open;
	uint64_t ev_seq, ev_ns;
	uint64_t next_seq;      /* highest sequence seen + 1 */
	uint64_t unique;        /* distinct sequence numbers received */
	struct gap *gaps;       /* allocated at the first gap */
	char line[LINE_KEEP];
};

extern struct sub *subs;        /* checked + slow subscribers, or churn slots */
extern uint32_t nslots;

/* sub.c */
void subs_setup(void);
void subs_free(void);
void subs_launch(void);
void subs_fail_stale(int64_t opened_before);
void subs_fail_unlaunched(void);
void subs_freeze(void);
void subs_start_slowcheck(void);
void subs_sum_unique(uint64_t *per_topic);
void sub_event(struct sub *s, uint32_t events);

/* sse.c */
void sub_reset_parser(struct sub *s);
int sub_body_feed(struct sub *s, const char *p, size_t len, int64_t rx_ns);

#endif
