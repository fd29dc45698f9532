/*
 * test_uwrite.c - batched socket writes through io_uring (uwrite.h).
 *
 * The property that matters most: a batch never waits for a slow socket.
 * A send the socket cannot take completes at once with -EAGAIN; if it were
 * parked on an internal poll (what io_uring does with WRITEV on an
 * O_NONBLOCK socket) the worker would stall behind its slowest client, so
 * every case runs under a Criterion timeout.
 *
 * Cases skip only when sp_uwrite_new says io_uring is not there (-ENOTSUP:
 * built without liburing; -EPERM/-ENOSYS: the kernel or a seccomp profile
 * refuses it).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "spout/uwrite.h"
#include "sanitizers.h"

struct result {
	void *tag;
	ssize_t res;
};

struct results {
	struct result r[64];
	int n;
};

static void collect(void *arg, void *tag, ssize_t res)
{
	struct results *rs = arg;

	cr_assert_lt(rs->n, 64);
	rs->r[rs->n].tag = tag;
	rs->r[rs->n].res = res;
	rs->n++;
}

static struct sp_uwrite *new_or_skip(unsigned ops, unsigned iov_max)
{
	int err = 0;
	struct sp_uwrite *u = sp_uwrite_new(ops, iov_max, &err);

	if (u == NULL && (err == -ENOTSUP || err == -EPERM || err == -ENOSYS))
		cr_skip_test("io_uring unavailable (not built with liburing, or refused)");
	cr_assert_not_null(u, "sp_uwrite_new: %s", strerror(-err));
	return u;
}

/* Queue a send of iov[0..n): fill the batch's own array, then queue. */
static int queue(struct sp_uwrite *u, int fd, const struct iovec *iov, int n, void *tag)
{
	struct iovec *slot = sp_uwrite_next(u);

	if (slot == NULL)
		return -ENOSPC;
	int fit = n < (int)sp_uwrite_iov_max(u) ? n : (int)sp_uwrite_iov_max(u);
	memcpy(slot, iov, (size_t)fit * sizeof(*iov));
	return sp_uwrite_queue(u, fd, n, tag);
}

static void pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

static void fill(int fd)
{
	static char junk[65536];

	while (write(fd, junk, sizeof(junk)) > 0)
		;
	cr_assert_eq(errno, EAGAIN);
}

Test(uwrite, batch_writes_every_socket_in_queue_order, .timeout = 10)
{
	struct sp_uwrite *u = new_or_skip(8, 4);
	int a[2], b[2];
	char tag_a, tag_b, buf[64];
	struct iovec iov_a[2] = { { "hello ", 6 }, { "world", 5 } };
	struct iovec iov_b[1] = { { "second", 6 } };
	struct results rs = { .n = 0 };

	pair(a);
	pair(b);
	cr_assert_eq(queue(u, a[0], iov_a, 2, &tag_a), 0);
	cr_assert_eq(queue(u, b[0], iov_b, 1, &tag_b), 0);
	cr_assert_eq(sp_uwrite_pending(u), 2);
	cr_assert_eq(sp_uwrite_submit(u, collect, &rs), 2);
	cr_assert_eq(sp_uwrite_pending(u), 0);
	cr_assert_eq(rs.n, 2);
	cr_assert_eq(rs.r[0].tag, &tag_a);
	cr_assert_eq(rs.r[0].res, 11);
	cr_assert_eq(rs.r[1].tag, &tag_b);
	cr_assert_eq(rs.r[1].res, 6);
	cr_assert_eq(read(a[1], buf, sizeof(buf)), 11);
	cr_assert_eq(memcmp(buf, "hello world", 11), 0);
	cr_assert_eq(read(b[1], buf, sizeof(buf)), 6);
	cr_assert_eq(memcmp(buf, "second", 6), 0);
	sp_uwrite_free(u);
	close(a[0]); close(a[1]); close(b[0]); close(b[1]);
}

/* The regression this module exists to avoid: a full socket must not hold
 * the batch (nor the healthy socket queued after it). */
Test(uwrite, full_socket_answers_eagain_without_waiting, .timeout = 10)
{
	struct sp_uwrite *u = new_or_skip(8, 4);
	int full[2], ok[2];
	char tf, to;
	struct iovec iov = { "data", 4 };
	struct results rs = { .n = 0 };

	pair(full);
	pair(ok);
	fill(full[0]);
	cr_assert_eq(queue(u, full[0], &iov, 1, &tf), 0);
	cr_assert_eq(queue(u, ok[0], &iov, 1, &to), 0);
	cr_assert_eq(sp_uwrite_submit(u, collect, &rs), 2);
	cr_assert_eq(rs.r[0].tag, &tf);
	cr_assert_eq(rs.r[0].res, -EAGAIN);
	cr_assert_eq(rs.r[1].tag, &to);
	cr_assert_eq(rs.r[1].res, 4);
	/* A second batch on the same ring still works: nothing was left
	 * parked in the kernel to complete later. */
	rs.n = 0;
	cr_assert_eq(queue(u, ok[0], &iov, 1, &to), 0);
	cr_assert_eq(sp_uwrite_submit(u, collect, &rs), 1);
	cr_assert_eq(rs.n, 1);
	cr_assert_eq(rs.r[0].res, 4);
	sp_uwrite_free(u);
	close(full[0]); close(full[1]); close(ok[0]); close(ok[1]);
}

Test(uwrite, closed_peer_reports_the_error, .timeout = 10)
{
	struct sp_uwrite *u = new_or_skip(4, 4);
	int s[2];
	char t;
	struct iovec iov = { "x", 1 };
	struct results rs = { .n = 0 };

	pair(s);
	close(s[1]);
	cr_assert_eq(queue(u, s[0], &iov, 1, &t), 0);
	/* MSG_NOSIGNAL: EPIPE comes back as a result, not as SIGPIPE. */
	cr_assert_eq(sp_uwrite_submit(u, collect, &rs), 1);
	cr_assert_eq(rs.r[0].res, -EPIPE);
	sp_uwrite_free(u);
	close(s[0]);
}

Test(uwrite, full_batch_says_enospc_and_iovecs_are_capped, .timeout = 10)
{
	struct sp_uwrite *u = new_or_skip(2, 2);
	int s[2];
	char t, buf[16];
	struct iovec iov[3] = { { "ab", 2 }, { "cd", 2 }, { "ef", 2 } };
	struct results rs = { .n = 0 };

	pair(s);
	cr_assert_eq(queue(u, s[0], iov, 3, &t), 0);   /* capped to 2 */
	cr_assert_eq(queue(u, s[0], iov + 2, 1, &t), 0);
	cr_assert_eq(queue(u, s[0], iov, 1, &t), -ENOSPC);
	cr_assert_eq(sp_uwrite_submit(u, collect, &rs), 2);
	cr_assert_eq(rs.r[0].res, 4);
	cr_assert_eq(rs.r[1].res, 2);
	cr_assert_eq(read(s[1], buf, sizeof(buf)), 6);
	cr_assert_eq(memcmp(buf, "abcdef", 6), 0);
	sp_uwrite_free(u);
	close(s[0]); close(s[1]);
}

Test(uwrite, empty_submit_is_a_no_op, .timeout = 10)
{
	struct sp_uwrite *u = new_or_skip(2, 2);
	struct results rs = { .n = 0 };

	cr_assert_eq(sp_uwrite_submit(u, collect, &rs), 0);
	cr_assert_eq(rs.n, 0);
	sp_uwrite_free(u);
}
