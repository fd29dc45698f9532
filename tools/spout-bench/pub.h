/*
 * pub.h - publishing. pub.c decides when the next event goes out (pacing,
 * round-robin over topics, sequence numbers) and counts replies; an adapter
 * per --target only moves bytes to the broker:
 *
 *   pub_spout.c  one pipelined connection, "PUB <topic> <data>" -> OK / ERR
 *   pub_http.c   K keep-alive HTTP/1.1 connections, one POST in flight on
 *                each (nchan: POST <path><topic>; pushpin: POST <path> JSON)
 *
 * Only a single process or the parent of --procs publishes. Event-loop
 * thread only.
 */
#ifndef SPOUT_BENCH_PUB_H
#define SPOUT_BENCH_PUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pub_adapter {
	void (*open)(void);                 /* start connecting */
	bool (*ready)(void);                /* connected: publishing may start */
	bool (*can_send)(uint32_t topic);   /* an event for <topic> may go now */
	void (*send)(uint32_t topic, uint64_t seq); /* send or queue one event */
	void (*flush)(void);                /* write what is queued */
	bool (*idle)(void);                 /* nothing queued or unanswered */
	void (*event)(uint32_t idx, uint32_t gen, uint32_t events);
	void (*close)(void);                /* close every connection */
	void (*release)(void);              /* close, and free the memory */
};

extern struct pub_adapter pub_spout_adapter, pub_http_adapter;

/* pub.c: for the phases and the loop */
void pub_open(void);
bool pub_ready(void);
bool pub_idle(void);
void pub_start(int64_t now);
void pub_pump(int64_t now);
void pub_event(uint32_t idx, uint32_t gen, uint32_t events);
void pub_release(void);
void pub_timer_off(void);
uint64_t pub_replies(void);
const char *pub_first_err(void);

/* pub.c: for the adapters */
size_t pub_payload_max(void);
size_t pub_payload(char *out, uint64_t seq);
void pub_reply_ok(void);
void pub_reply_err(uint32_t topic, const char *text, size_t len);
void pub_failure(const char *what, int err);

#endif
