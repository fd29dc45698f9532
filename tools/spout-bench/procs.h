/*
 * procs.h - several subscriber processes (--procs N >= 2).
 *
 * The parent forks N children before anything connects. Each child holds
 * its share of the subscribers (subscriber g goes to child g % N) and of
 * --src-addrs; the parent publishes. They talk over one AF_UNIX stream
 * socketpair per child:
 *
 *   child -> parent  CONNECTED  connect phase over; per-topic subscribers
 *   parent -> child  START      publishing began (deliveries from now on
 *                               count as "while publishing")
 *   parent -> child  END        publishing ended; drain deadline
 *   parent -> child  FINAL      every reply is in (or the drain timed out):
 *                               per-topic events to expect; or "stop now"
 *   child -> parent  RESULT     counters, raw histogram, per-topic distinct
 *                               deliveries, times
 *
 * The parent merges counters by adding them and histograms bucket by bucket,
 * so the report's percentiles are those of all deliveries together.
 * Children die with the parent (PR_SET_PDEATHSIG) and stop on their own a
 * little after --max-seconds. Event-loop thread of each process only.
 */
#ifndef SPOUT_BENCH_PROCS_H
#define SPOUT_BENCH_PROCS_H

#include <stdbool.h>
#include <stdint.h>

/* Raises the open-files limit and settles run.nprocs (1 = no children). */
void procs_plan(void);
/* Forks the children if run.nprocs >= 2; each child returns from here
 * with run.role == ROLE_CHILD. */
void procs_spawn(void);
/* Adds the channels to the epoll set (after epoll_create). */
void procs_register(void);
/* Readiness on channel <idx> (a child index in the parent; TAG_CHAN in a
 * child). */
void procs_event(uint32_t idx, uint32_t events);

/* parent */
bool procs_all_connected(void);
bool procs_all_done(void);
uint64_t procs_connected(void);
uint64_t procs_failed_subs(void);
void procs_send_start(int64_t pub_start);
void procs_send_end(int64_t pub_end, int64_t drain_deadline);
void procs_send_final(bool stop);
void procs_reap(void);

/* child */
void procs_child_connected(void);
void procs_child_result(void);

#endif
