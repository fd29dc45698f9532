/*
 * chan.h - a message channel between the parent and one child (procs.c):
 * one end of an AF_UNIX stream socketpair, non-blocking, buffered both
 * ways, so that neither side ever waits for the other inside its loop.
 *
 * A message is a struct chan_hdr then <len> payload bytes. Payloads are
 * plain structs and arrays written as they are in memory: both ends are the
 * same binary (fork), so layout and byte order match.
 *
 * Event-loop thread of the owning process only.
 */
#ifndef SPOUT_BENCH_CHAN_H
#define SPOUT_BENCH_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chan_hdr {
	uint32_t type, pad;
	uint64_t len;           /* payload bytes after the header */
};

/* All zero but fd = -1: closed. */
struct chan {
	int fd;
	uint32_t tag;           /* epoll tag (bench.h) */
	bool pollout;           /* EPOLLOUT armed */
	char *out, *in;
	size_t out_off, out_len, out_cap, in_len, in_cap;
};

typedef void chan_handler(void *who, uint32_t type, const char *p, size_t len);

/* Appends the header of a message of <len> payload bytes, then its parts. */
void chan_begin(struct chan *c, uint32_t type, size_t len);
void chan_put(struct chan *c, const void *p, size_t n);
/* Writes what is buffered without blocking, arming EPOLLOUT for the rest.
 * Returns 0, or -1 when the other end is gone. */
int chan_flush(struct chan *c);
/* Reads what has arrived and hands each complete message to <handle>, which
 * may close the channel. Returns 0, or -1 at EOF, on an error or once
 * closed. */
int chan_read(struct chan *c, chan_handler *handle, void *who);
/* Closes the fd and frees the buffers (the fd stays -1). */
void chan_close(struct chan *c);

#endif
