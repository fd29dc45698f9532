/*
 * uwrite.h - many socket writes in one system call, through io_uring.
 *
 * A worker flushes hundreds of connections per loop iteration when an
 * event fans out; with writev that is one system call each. Here the
 * worker queues one sendmsg per connection and submits them all with a
 * single io_uring_enter. Each is sent with MSG_DONTWAIT, so the kernel runs
 * every write inline during the submit and completes it at once (with the
 * bytes written, or -EAGAIN when the socket buffer is full): no write is
 * left in flight when sp_uwrite_submit returns, so the caller's iovec
 * memory and out-queues need no pinning across loop iterations.
 *
 * Only built with liburing (SP_HAVE_URING); otherwise sp_uwrite_new
 * returns NULL with -ENOTSUP and the worker uses writev (as it does when
 * the kernel refuses io_uring).
 *
 * Threading: one struct sp_uwrite per worker thread, used by it alone.
 */
#ifndef SPOUT_UWRITE_H
#define SPOUT_UWRITE_H

#include <sys/types.h>
#include <sys/uio.h>

struct sp_uwrite;

/* A batcher of up to <ops> writes of at most <iov_max> iovecs each.
 * Returns NULL and sets *<err>: -ENOTSUP without liburing, else what
 * io_uring_setup said (-EPERM under a seccomp profile or with
 * kernel.io_uring_disabled, -ENOSYS on old kernels, -ENOMEM). */
struct sp_uwrite *sp_uwrite_new(unsigned ops, unsigned iov_max, int *err);
void sp_uwrite_free(struct sp_uwrite *u);

/* The iovec array of the next write, for the caller to fill in place (no
 * copy): up to sp_uwrite_iov_max() entries. NULL when the batch is full
 * (submit, then ask again). */
struct iovec *sp_uwrite_next(struct sp_uwrite *u);
unsigned sp_uwrite_iov_max(const struct sp_uwrite *u);

/* Queue a send on the socket <fd> of the first <n> iovecs of the array
 * sp_uwrite_next just returned; the bytes they point to must stay until
 * sp_uwrite_submit returns. <tag> comes back with the result. Returns 0,
 * or -ENOSPC when the batch is full. */
int sp_uwrite_queue(struct sp_uwrite *u, int fd, int n, void *tag);

/* Writes queued and not yet submitted. */
unsigned sp_uwrite_pending(const struct sp_uwrite *u);

/* The result of one queued write: bytes written, or -errno. */
typedef void sp_uwrite_done_fn(void *arg, void *tag, ssize_t res);

/* Submit every queued write in one system call, wait for all of them and
 * call <done> once per write, in queue order. Returns the number of writes
 * completed, or -errno if the submission itself failed (then <done> got
 * -errno for each write not completed, so no tag is forgotten). */
int sp_uwrite_submit(struct sp_uwrite *u, sp_uwrite_done_fn *done, void *arg);

#endif
