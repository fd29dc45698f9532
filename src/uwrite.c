/*
 * uwrite.c - batched socket writes through io_uring (see uwrite.h).
 *
 * Each queued write is one IORING_OP_SENDMSG whose user_data is its index
 * in the batch; the caller builds its iovecs directly in the batch's own
 * array (sp_uwrite_next), which lives until the submit.
 *
 * MSG_DONTWAIT is what makes the batch synchronous: a send the socket
 * cannot take at once completes with -EAGAIN, so every CQE is posted
 * during the submit and the wait that follows returns without sleeping.
 * O_NONBLOCK on the socket is NOT enough: io_uring parks a WRITEV that
 * would block on an internal poll and completes it only when the socket
 * drains (checked on 6.x kernels), which would stall the worker behind
 * its slowest client.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "spout/uwrite.h"

#ifdef SP_HAVE_URING
#include <liburing.h>

struct sp_uwrite {
	struct io_uring ring;
	unsigned ops;            /* batch capacity */
	unsigned iov_max;        /* iovecs per write */
	unsigned n;              /* queued */
	struct iovec *iov;       /* ops * iov_max */
	struct msghdr *msg;      /* ops */
	void **tag;              /* ops */
	ssize_t *res;            /* ops; filled from the CQEs */
};

struct sp_uwrite *sp_uwrite_new(unsigned ops, unsigned iov_max, int *err)
{
	struct sp_uwrite *u = calloc(1, sizeof(*u));

	*err = -ENOMEM;
	if (u == NULL)
		return NULL;
	u->ops = ops;
	u->iov_max = iov_max;
	u->iov = calloc((size_t)ops * iov_max, sizeof(*u->iov));
	u->msg = calloc(ops, sizeof(*u->msg));
	u->tag = calloc(ops, sizeof(*u->tag));
	u->res = calloc(ops, sizeof(*u->res));
	if (u->iov == NULL || u->msg == NULL || u->tag == NULL || u->res == NULL)
		goto fail;
	/* Twice the CQ room, so a full batch never overflows the CQ. */
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = 2 * ops };
	int rc = io_uring_queue_init_params(ops, &u->ring, &p);
	if (rc < 0) {
		*err = rc;      /* -EPERM (seccomp, io_uring_disabled), -ENOSYS, -ENOMEM */
		goto fail;
	}
	return u;
fail:
	free(u->iov);
	free(u->msg);
	free(u->tag);
	free(u->res);
	free(u);
	return NULL;
}

void sp_uwrite_free(struct sp_uwrite *u)
{
	if (u == NULL)
		return;
	io_uring_queue_exit(&u->ring);
	free(u->iov);
	free(u->msg);
	free(u->tag);
	free(u->res);
	free(u);
}

unsigned sp_uwrite_pending(const struct sp_uwrite *u)
{
	return u->n;
}

struct iovec *sp_uwrite_next(struct sp_uwrite *u)
{
	if (u->n == u->ops || io_uring_sq_space_left(&u->ring) == 0)
		return NULL;
	return u->iov + (size_t)u->n * u->iov_max;
}

unsigned sp_uwrite_iov_max(const struct sp_uwrite *u)
{
	return u->iov_max;
}

int sp_uwrite_queue(struct sp_uwrite *u, int fd, int n, void *tag)
{
	if (u->n == u->ops)
		return -ENOSPC;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (sqe == NULL)
		return -ENOSPC;
	if (n > (int)u->iov_max)
		n = (int)u->iov_max;
	struct msghdr *m = &u->msg[u->n];
	*m = (struct msghdr){ .msg_iov = u->iov + (size_t)u->n * u->iov_max,
			      .msg_iovlen = (size_t)n };
	io_uring_prep_sendmsg(sqe, fd, m, MSG_DONTWAIT | MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, u->n);
	u->tag[u->n] = tag;
	u->res[u->n] = -ECANCELED;
	u->n++;
	return 0;
}

int sp_uwrite_submit(struct sp_uwrite *u, sp_uwrite_done_fn *done, void *arg)
{
	unsigned want = u->n, got = 0;
	int rc = 0;

	if (want == 0)
		return 0;
	/* One io_uring_enter submits the batch; the writes run inline. The
	 * loop only repeats if a signal interrupts the wait. */
	rc = io_uring_submit_and_wait(&u->ring, want);
	while (rc >= 0 || rc == -EINTR) {
		struct io_uring_cqe *cqe;
		unsigned head, k = 0;

		io_uring_for_each_cqe(&u->ring, head, cqe) {
			uint64_t i = io_uring_cqe_get_data64(cqe);
			if (i < want)
				u->res[i] = cqe->res;
			k++;
		}
		io_uring_cq_advance(&u->ring, k);
		got += k;
		if (got >= want)
			break;
		rc = io_uring_wait_cqe_nr(&u->ring, &cqe, want - got);
	}
	for (unsigned i = 0; i < want; i++)
		done(arg, u->tag[i], rc < 0 && u->res[i] == -ECANCELED ? rc : u->res[i]);
	u->n = 0;
	return rc < 0 ? rc : (int)want;
}

#else /* !SP_HAVE_URING */

struct sp_uwrite *sp_uwrite_new(unsigned ops, unsigned iov_max, int *err)
{
	(void)ops;
	(void)iov_max;
	*err = -ENOTSUP;
	return NULL;
}

void sp_uwrite_free(struct sp_uwrite *u)
{
	(void)u;
}

unsigned sp_uwrite_pending(const struct sp_uwrite *u)
{
	(void)u;
	return 0;
}

struct iovec *sp_uwrite_next(struct sp_uwrite *u)
{
	(void)u;
	return NULL;
}

unsigned sp_uwrite_iov_max(const struct sp_uwrite *u)
{
	(void)u;
	return 0;
}

int sp_uwrite_queue(struct sp_uwrite *u, int fd, int n, void *tag)
{
	(void)u; (void)fd; (void)n; (void)tag;
	return -ENOTSUP;
}

int sp_uwrite_submit(struct sp_uwrite *u, sp_uwrite_done_fn *done, void *arg)
{
	(void)u; (void)done; (void)arg;
	return 0;
}

#endif /* SP_HAVE_URING */
