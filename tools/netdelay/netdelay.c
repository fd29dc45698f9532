/*
 * netdelay - a small userspace stand-in for `tc qdisc ... netem delay/loss`,
 * built on NFQUEUE (Debian's libnetfilter-queue).
 *
 * Why it exists: test/integration/test_chaos.py puts an SSE client in a
 * network namespace behind a slow, lossy link. The natural tool is netem,
 * but some kernels (this project's VMs among them) are built without
 * sch_netem, and `tc qdisc add ... netem` fails with "Specified qdisc kind is
 * unknown". Every such kernel we met still had iptables' NFQUEUE target, so
 * the test sends the namespace's packets to a queue instead and this program
 * plays the link: each packet is dropped with probability --loss, or held
 * for --delay (+- --jitter) milliseconds and then accepted. The test uses
 * real netem where the kernel has it.
 *
 *   netdelay --queue 7 --delay 50 --loss 2 --seed 1 --max-seconds 120
 *
 * Run it in the namespace whose iptables rules feed the queue (queues are
 * per network namespace): `ip netns exec NS netdelay ...`. It prints
 * "netdelay: ready ..." once bound, and one summary line on exit.
 *
 * Properties the test relies on:
 *  - reproducible: the drop decisions come from a seeded PRNG (--seed), so
 *    the same packet sequence sees the same losses;
 *  - order: without jitter every packet is held for the same time and
 *    released first-in first-out, so packets of a flow stay in order (with
 *    jitter they may be reordered, as with netem);
 *  - bounded: at most --max-held packets are held (beyond that a packet is
 *    dropped and counted as overflow), and it exits by itself after
 *    --max-seconds (or on SIGTERM/SIGINT), accepting what it still holds.
 *    If it is gone, the iptables rules (installed without --queue-bypass)
 *    drop everything: a dead impairment shows as a dead link, never as a
 *    silently healthy one.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

struct held {
	uint64_t due_us;   /* when to accept it */
	uint64_t seq;      /* arrival order: ties (and no jitter) stay FIFO */
	uint32_t id;       /* the kernel's packet id */
};

static struct {
	/* options */
	unsigned queue;
	double delay_ms, jitter_ms, loss_pct;
	uint64_t seed;
	size_t max_held;
	double max_seconds;
	/* state */
	struct nfq_q_handle *qh;
	struct held *heap;
	size_t nheld, max_seen_held;
	uint64_t rng, seq;
	/* counters */
	unsigned long long seen, delayed, dropped_loss, dropped_overflow, verdict_errors,
		released_at_exit, recv_overruns;
} S;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* splitmix64: small, seedable, good enough for drop decisions. */
static uint64_t rng_next(void)
{
	uint64_t z = (S.rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static double rng_unit(void)
{
	return (double)(rng_next() >> 11) / 9007199254740992.0;
}

/* ---- min-heap on (due_us, seq) */

static int held_before(const struct held *a, const struct held *b)
{
	return a->due_us < b->due_us || (a->due_us == b->due_us && a->seq < b->seq);
}

static void heap_push(struct held h)
{
	size_t i = S.nheld++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!held_before(&h, &S.heap[p]))
			break;
		S.heap[i] = S.heap[p];
		i = p;
	}
	S.heap[i] = h;
	if (S.nheld > S.max_seen_held)
		S.max_seen_held = S.nheld;
}

static struct held heap_pop(void)
{
	struct held top = S.heap[0];
	struct held last = S.heap[--S.nheld];
	size_t i = 0, n = S.nheld;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const struct held *best = &last;
		if (l < n && held_before(&S.heap[l], best)) {
			m = l;
			best = &S.heap[l];
		}
		if (r < n && held_before(&S.heap[r], best))
			m = r;
		if (m == i)
			break;
		S.heap[i] = S.heap[m];
		i = m;
	}
	if (n > 0)
		S.heap[i] = last;
	return top;
}

static void verdict(uint32_t id, uint32_t v)
{
	if (nfq_set_verdict(S.qh, id, v, 0, NULL) < 0)
		S.verdict_errors++;
}

/* ---- one queued packet */

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfad,
		     void *data)
{
	(void)qh;
	(void)msg;
	(void)data;
	struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfad);
	if (ph == NULL)
		return 0;
	uint32_t id = ntohl(ph->packet_id);

	S.seen++;
	if (S.loss_pct > 0 && rng_unit() * 100.0 < S.loss_pct) {
		S.dropped_loss++;
		verdict(id, NF_DROP);
		return 0;
	}
	double d = S.delay_ms;
	if (S.jitter_ms > 0)
		d += (rng_unit() * 2.0 - 1.0) * S.jitter_ms;
	if (d <= 0) {
		verdict(id, NF_ACCEPT);
		return 0;
	}
	if (S.nheld >= S.max_held) {
		S.dropped_overflow++;
		verdict(id, NF_DROP);
		return 0;
	}
	S.delayed++;
	heap_push((struct held){ .due_us = now_us() + (uint64_t)(d * 1000.0), .seq = S.seq++,
				 .id = id });
	return 0;
}

static void release_due(uint64_t now)
{
	while (S.nheld > 0 && S.heap[0].due_us <= now)
		verdict(heap_pop().id, NF_ACCEPT);
}

/* ---- options */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: netdelay [--queue N] [--delay MS] [--jitter MS] [--loss PCT] [--seed S]\n"
		"                [--max-held N] [--max-seconds S]\n"
		"  --queue N        NFQUEUE number to bind (default 0)\n"
		"  --delay MS       hold every packet this long, then accept it (default 0)\n"
		"  --jitter MS      add a uniform -MS..+MS to each delay (reorders; default 0)\n"
		"  --loss PCT       drop this percentage of packets, 0-100 (default 0)\n"
		"  --seed S         PRNG seed, for reproducible drops (default 1)\n"
		"  --max-held N     packets held at once; more are dropped (default 10000)\n"
		"  --max-seconds S  exit after this long (default 600)\n");
}

static double parse_num(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
		fprintf(stderr, "netdelay: %s: bad value '%s' (want %g..%g)\n", opt, s, lo, hi);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "queue", required_argument, NULL, 'q' },
		{ "delay", required_argument, NULL, 'd' },
		{ "jitter", required_argument, NULL, 'j' },
		{ "loss", required_argument, NULL, 'l' },
		{ "seed", required_argument, NULL, 's' },
		{ "max-held", required_argument, NULL, 'm' },
		{ "max-seconds", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	S.max_held = 10000;
	S.max_seconds = 600;
	S.seed = 1;
	int c;
	while ((c = getopt_long(argc, argv, "q:d:j:l:s:m:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'q': S.queue = (unsigned)parse_num("--queue", optarg, 0, 65535); break;
		case 'd': S.delay_ms = parse_num("--delay", optarg, 0, 60000); break;
		case 'j': S.jitter_ms = parse_num("--jitter", optarg, 0, 60000); break;
		case 'l': S.loss_pct = parse_num("--loss", optarg, 0, 100); break;
		case 's': S.seed = (uint64_t)parse_num("--seed", optarg, 0, 9007199254740992.0); break;
		case 'm': S.max_held = (size_t)parse_num("--max-held", optarg, 1, 1000000); break;
		case 't': S.max_seconds = parse_num("--max-seconds", optarg, 0.1, 86400); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(2);
	}
	S.rng = S.seed;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	S.heap = calloc(S.max_held, sizeof(*S.heap));
	if (S.heap == NULL) {
		fprintf(stderr, "netdelay: out of memory\n");
		return 1;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;   /* no SA_RESTART: poll() returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	struct nfq_handle *h = nfq_open();
	if (h == NULL) {
		perror("netdelay: nfq_open (needs CAP_NET_ADMIN)");
		return 1;
	}
	/* No-ops on kernels >= 3.8, needed on older ones; errors ignored. */
	nfq_unbind_pf(h, AF_INET);
	nfq_bind_pf(h, AF_INET);
	S.qh = nfq_create_queue(h, (uint16_t)S.queue, on_packet, NULL);
	if (S.qh == NULL) {
		fprintf(stderr, "netdelay: cannot bind queue %u (is another process bound to it?)\n",
			S.queue);
		nfq_close(h);
		return 1;
	}
	/* Metadata only: we never look at the payload. Without NFQA_CFG_F_GSO
	 * the kernel segments GSO packets first, so loss and delay apply per
	 * wire-sized packet, as on a link. */
	if (nfq_set_mode(S.qh, NFQNL_COPY_META, 0) < 0) {
		fprintf(stderr, "netdelay: cannot set copy mode\n");
		return 1;
	}
	/* The kernel's own bound on packets awaiting a verdict (default 1024)
	 * must not be the one that bites: ours is counted. */
	if (nfq_set_queue_maxlen(S.qh, (uint32_t)S.max_held + 1024) < 0)
		fprintf(stderr, "netdelay: cannot raise the queue length; kernel default applies\n");
	nfnl_rcvbufsiz(nfq_nfnlh(h), 4u << 20);

	int fd = nfq_fd(h);
	uint64_t t0 = now_us();
	uint64_t end = t0 + (uint64_t)(S.max_seconds * 1e6);
	printf("netdelay: ready queue=%u delay=%gms jitter=%gms loss=%g%% seed=%llu max_held=%zu "
	       "max_seconds=%g\n", S.queue, S.delay_ms, S.jitter_ms, S.loss_pct,
	       (unsigned long long)S.seed, S.max_held, S.max_seconds);
	fflush(stdout);

	static char buf[1 << 16] __attribute__((aligned));
	const char *why = "max-seconds";
	for (;;) {
		uint64_t now = now_us();
		release_due(now);
		if (stop_signal) {
			why = stop_signal == SIGTERM ? "SIGTERM" : stop_signal == SIGINT ? "SIGINT" : "SIGHUP";
			break;
		}
		if (now >= end)
			break;
		uint64_t wake = end;
		if (S.nheld > 0 && S.heap[0].due_us < wake)
			wake = S.heap[0].due_us;
		uint64_t wait_us = wake > now ? wake - now : 0;
		int timeout_ms = (int)((wait_us + 999) / 1000);
		if (timeout_ms > 100)
			timeout_ms = 100;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int n = poll(&pfd, 1, timeout_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("netdelay: poll");
			why = "error";
			break;
		}
		if (n == 0)
			continue;
		/* Drain what is there, a bounded number of reads per round so
		 * releases stay on time under a flood. */
		for (int i = 0; i < 256; i++) {
			ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (r > 0) {
				nfq_handle_packet(h, buf, (int)r);
				continue;
			}
			if (r < 0 && errno == ENOBUFS) {
				/* the socket overflowed and queue messages
				 * were lost: their packets wait in the kernel
				 * until the queue is unbound, then drop (as
				 * on an overrun link); counted */
				S.recv_overruns++;
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			break;
		}
	}

	/* Accept what is still held, so stopping the impairment never leaves
	 * packets stuck. */
	while (S.nheld > 0) {
		verdict(heap_pop().id, NF_ACCEPT);
		S.released_at_exit++;
	}
	nfq_destroy_queue(S.qh);
	nfq_close(h);
	printf("netdelay: exit=%s queue=%u seen=%llu delayed=%llu dropped=%llu (loss=%llu "
	       "overflow=%llu) released_at_exit=%llu max_held_seen=%zu recv_overruns=%llu "
	       "verdict_errors=%llu seconds=%.1f\n",
	       why, S.queue, S.seen, S.delayed, S.dropped_loss + S.dropped_overflow, S.dropped_loss,
	       S.dropped_overflow, S.released_at_exit, S.max_seen_held, S.recv_overruns,
	       S.verdict_errors, (double)(now_us() - t0) / 1e6);
	fflush(stdout);
	free(S.heap);
	return 0;
}
