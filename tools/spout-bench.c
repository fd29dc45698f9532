/*
 * spout-bench.c - load generator and delivery checker for spout.
 *
 * One process, one thread, one epoll loop, nothing but libc and libm. It
 * opens many SSE subscribers, publishes sequenced and timestamped events over
 * the publisher line protocol and checks every delivery: loss, duplicates,
 * order, latency. docs/spout-bench.md explains the options and each figure.
 *
 * Why one thread: every figure comes from clock reads in one place, with no
 * locks and no per-thread results to merge. The price is one core per
 * process; the report shows the tool's own CPU share so that a run limited by
 * the tool rather than by spout is visible, and callers that need more run
 * several processes, each with its own --topic-prefix.
 *
 * A run goes through these phases, in order:
 *
 *   CONNECT  S checked + K slow subscribers, at most --connect-concurrency
 *            of them between connect() and their 200 head; ends when each
 *            has its head or has failed, or when --connect-timeout passes.
 *   PUBLISH  token bucket refilled on a 1 ms timerfd (-r R), or a window of
 *            unacknowledged PUBs (-r 0), for -d seconds or -n events.
 *   DRAIN    until every expected delivery has arrived, or --drain-ms.
 *   SLOWCHK  read what the slow subscribers have, to see which ones the
 *            broker closed (EOF or RST).
 *
 * --churn replaces all of these with one CHURN phase. --max-seconds and
 * SIGINT/SIGTERM cut any phase short; the report is printed regardless.
 *
 * Sockets are level-triggered and each readable event gets one read() of at
 * most RBUF_SIZE bytes, so one busy subscriber cannot starve the others or
 * the publisher's pacing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL

#define RBUF_SIZE (64 * 1024)   /* one read() per readable event */
#define HEAD_MAX 8192           /* response head larger than this: failure */
#define LINE_KEEP 64            /* SSE line bytes kept; "data: <seq>:<ns>:" fits */
#define GAP_MAX 32              /* sequence gaps remembered per subscriber */
#define MAX_EVENTS 512          /* epoll_wait batch */
#define PUMP_EVERY 64           /* events handled between two pacing checks */
#define FD_MARGIN 64            /* fds besides sockets: stdio, epoll, timer, pub */
#define PUB_OUT_CAP (4u << 20)  /* unsent PUB bytes before pacing holds back */
#define SIZE_MAX_OPT (1u << 20) /* --size upper bound */
#define SRC_MAX 4096            /* --src-addrs entries */
#define TOPIC_MAX 128           /* spout's topic length limit */

/* epoll tags for the two fds that are not subscribers */
#define TAG_TIMER UINT32_MAX
#define TAG_PUB (UINT32_MAX - 1)

/* ---------------------------------------------------------------------- */
/* Options                                                                 */

struct options {
	unsigned long subs, topics, slow, churn_cycles, window, concurrency;
	const char *prefix;
	double rate;              /* events/s over all topics; 0 = window mode */
	double duration_s;
	unsigned long long events; /* 0: use duration_s */
	unsigned long size;
	const char *http_addr, *pub_addr, *src_spec;
	bool http10, churn, expect_no_loss, json, verbose;
	unsigned long connect_timeout_ms, drain_ms, slow_check_ms;
	unsigned long slow_rcvbuf;
	double max_seconds;
};

static struct options opt = {
	.subs = 100,
	.topics = 10,
	.slow = 0,
	.churn_cycles = 1000,
	.window = 1000,
	.concurrency = 256,
	.prefix = "bench",
	.rate = 1000,
	.duration_s = 10,
	.events = 0,
	.size = 128,
	.http_addr = "127.0.0.1:8080",
	.pub_addr = "127.0.0.1:7400",
	.connect_timeout_ms = 30000,
	.drain_ms = 2000,
	.slow_check_ms = 1000,
	.max_seconds = 120,
};

/* ---------------------------------------------------------------------- */
/* Latency histogram
 *
 * Log-linear buckets over nanoseconds, the HdrHistogram layout with 128
 * sub-buckets per power of two:
 *
 *   value v < 256           bucket v                (exact, 1 ns wide)
 *   2^m <= v < 2^(m+1), m>=8  bucket 128*(m-7) + (v >> (m-7))
 *                           (128 buckets, each 2^(m-7) ns wide)
 *
 * A bucket is at most 1/128 of its lowest value wide, so reporting its
 * midpoint is within 0.4% of the true value. The table covers all of
 * uint64_t (7424 counters, 58 KiB), so nothing is ever clamped: 60 s needs
 * only the first 3840.
 */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_LEN (HIST_SUB * (64 - HIST_SUB_BITS + 1))

struct hist {
	uint64_t count[HIST_LEN];
	uint64_t n, max;
};

static unsigned hist_index(uint64_t v)
{
	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63 - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - HIST_SUB_BITS;
	return HIST_SUB * shift + (unsigned)(v >> shift);
}

static void hist_record(struct hist *h, uint64_t v)
{
	h->count[hist_index(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

/* Midpoint of bucket <i>: the reported value for any sample in it. */
static uint64_t hist_bucket_mid(unsigned i)
{
	if (i < 2 * HIST_SUB)
		return i;
	unsigned shift = (i >> HIST_SUB_BITS) - 1;
	uint64_t low = (uint64_t)(i - HIST_SUB * shift) << shift;
	return low + ((1ull << shift) >> 1);
}

/* Value at quantile <q> (0..1]: the smallest bucket holding at least
 * ceil(q * n) samples below or in it. Never above the exact maximum. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
	if (h->n == 0)
		return 0;
	uint64_t target = (uint64_t)ceil(q * (double)h->n);
	if (target < 1)
		target = 1;
	uint64_t cum = 0;
	for (unsigned i = 0; i < HIST_LEN; i++) {
		cum += h->count[i];
		if (cum >= target) {
			uint64_t v = hist_bucket_mid(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/* ---------------------------------------------------------------------- */
/* Subscribers                                                             */

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

/* Chunked transfer-coding decoder states (RFC 9112 section 7.1). */
enum ch_state { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_DONE };

struct gap {
	uint64_t lo, hi;        /* inclusive range of sequence numbers not seen */
};

struct sub {
	int fd;                 /* -1 when closed */
	uint32_t gen;           /* bumped on close: tells stale epoll events apart */
	uint8_t state, kind, ch_state;
	bool chunked, established, dropped;
	bool ch_digits;         /* a hex digit of the chunk size was seen */
	bool ev_data, ev_ok;    /* current event has a data line / it parsed */
	uint8_t ngaps;
	char line_last;         /* last byte of the line so far (for \r\n) */
	uint32_t topic;
	uint32_t req_off;       /* request bytes sent */
	uint32_t head_len;
	uint32_t line_len;      /* length of the SSE line so far (saturating) */
	uint32_t ev_len, ev_plen; /* data value length / "<seq>:<ns>:" length */
	char *head;             /* response head, only until it is complete */
	uint64_t ch_left;       /* chunk size being parsed, then bytes left */
	int64_t t_open;
	uint64_t ev_seq, ev_ns;
	uint64_t next_seq;      /* highest sequence seen + 1 */
	uint64_t unique;        /* distinct sequence numbers received */
	struct gap *gaps;       /* allocated at the first gap */
	char line[LINE_KEEP];
};

/* ---------------------------------------------------------------------- */
/* Run state and counters                                                  */

enum phase { PH_CONNECT, PH_PUBLISH, PH_DRAIN, PH_SLOWCHK, PH_CHURN, PH_REPORT };
static const char *const phase_name[] = {
	"connect", "publish", "drain", "slow-check", "churn", "report",
};

enum fail_kind { FAIL_ERRNO, FAIL_TIMEOUT, FAIL_STATUS, FAIL_EOF, FAIL_BADHEAD };

#define ERRNO_SLOTS 256
#define STATUS_SLOTS 1000

struct stats {
	uint64_t connected, failed, slow_connected, slow_failed;
	uint64_t fail_timeout, fail_eof, fail_badhead;
	uint64_t fail_errno[ERRNO_SLOTS];
	uint64_t fail_status[STATUS_SLOTS];
	uint64_t dropped_eof, dropped_err, dropped_proto;
	uint64_t published, pub_ok, pub_err, pub_unexpected;
	uint64_t received, received_in_window, unique;
	uint64_t duplicated, out_of_order, lost, foreign, bad_payload;
	uint64_t gaps_forgotten;
	uint64_t slow_closed, slow_open;
	uint64_t churn_done;
};

struct pubconn {
	int fd;
	bool up, dead, pollout;
	char *out;              /* PUB lines not yet written: out[off..len) */
	size_t off, len, cap;
	uint64_t replies;
	char line[128];         /* start of the reply line being read */
	size_t line_len;
	char first_err[128];
};

struct run {
	enum phase phase;
	int ep, tfd;
	int64_t t0, t_end, hard_deadline, connect_deadline;
	int64_t t_first_connect, t_last_head;
	int64_t pub_start, pub_end, drain_deadline, slow_deadline;
	int64_t last_progress, last_scan, last_rx;
	uint64_t total, launched, inflight;
	uint64_t expected;
	uint64_t slow_pending;
	double tokens, burst;
	int64_t tok_last;
	double cpu0;            /* CPU seconds used before t0 */
	bool timer_armed, pub_failed;
	const char *stopped;    /* why the run was cut short, or NULL */
};

static struct stats st;
static struct run run;
static struct pubconn pub = { .fd = -1 };
static struct hist lat;

static struct sub *subs;        /* checked + slow subscribers, or churn slots */
static uint32_t nslots;
static uint32_t *free_slots;    /* churn only: stack of free slot indices */
static uint32_t nfree;

static char **topic_name;
static uint32_t *topic_len;
static char **req_buf;          /* the GET request for each topic */
static uint32_t *req_len;
static uint64_t *topic_seq;     /* last sequence published per topic */
static uint64_t *topic_err;     /* ERR replies per topic */
static uint64_t *topic_nsubs;   /* established checked subscribers per topic */

static struct sockaddr_storage http_sa, pub_sa;
static socklen_t http_salen, pub_salen;
static struct sockaddr_storage *src;
static socklen_t *src_len;
static uint32_t nsrc, next_src;

static char rbuf[RBUF_SIZE];
static volatile sig_atomic_t stop_signal;

/* ---------------------------------------------------------------------- */
/* Small helpers                                                           */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("spout-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

static const char *errname(int err)
{
	const char *s = strerrorname_np(err);

	return s ? s : "E?";
}

/* Writes <v> in decimal at <out>, returns the digit count (1..20). */
static size_t u64_dec(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static double secs(int64_t ns)
{
	return (double)ns / (double)NS_PER_S;
}

static double per_s(uint64_t n, int64_t span_ns)
{
	return span_ns > 0 ? (double)n / secs(span_ns) : 0.0;
}

static void ep_ctl(int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	/* Every fd here is ours and valid; failure is a bug or ENOMEM. */
	if (epoll_ctl(run.ep, op, fd, &ev) == -1)
		die("epoll_ctl(%d, fd %d): %s", op, fd, strerror(errno));
}

static uint64_t sub_tag(const struct sub *s)
{
	return ((uint64_t)s->gen << 32) | (uint32_t)(s - subs);
}

/* ---------------------------------------------------------------------- */
/* Option parsing                                                          */

static unsigned long parse_ulong(const char *s, const char *name,
				 unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		die("%s: expected an integer in %lu..%lu, got '%s'", name, min, max, s);
	return v;
}

static double parse_double(const char *s, const char *name, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min && v <= max))
		die("%s: expected a number in %g..%g, got '%s'", name, min, max, s);
	return v;
}

/* Resolves "host:port" or "[v6]:port" (numeric port) into <sa>. */
static void parse_hostport(const char *spec, const char *name,
			   struct sockaddr_storage *sa, socklen_t *salen)
{
	char host[256];
	const char *port;
	size_t hl;

	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (!rb || rb[1] != ':')
			die("%s: expected [addr]:port, got '%s'", name, spec);
		hl = (size_t)(rb - spec - 1);
		if (hl >= sizeof host)
			die("%s: address too long", name);
		memcpy(host, spec + 1, hl);
		port = rb + 2;
	} else {
		const char *colon = strrchr(spec, ':');
		if (!colon)
			die("%s: expected addr:port, got '%s'", name, spec);
		hl = (size_t)(colon - spec);
		if (hl >= sizeof host)
			die("%s: address too long", name);
		memcpy(host, spec, hl);
		port = colon + 1;
	}
	host[hl] = 0;

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		die("%s: cannot resolve '%s': %s", name, spec, gai_strerror(rc));
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	*salen = res->ai_addrlen;
	freeaddrinfo(res);
}

static void src_add(const struct sockaddr_storage *sa, socklen_t len)
{
	if (nsrc == SRC_MAX)
		die("--src-addrs: more than %d addresses", SRC_MAX);
	src[nsrc] = *sa;
	src_len[nsrc] = len;
	nsrc++;
}

/* --src-addrs: comma-separated items, each an address or an IPv4 range
 * "a.b.c.d-e.f.g.h" (inclusive). Must match the family of --http. */
static void parse_src_addrs(const char *spec)
{
	char *copy = strdup(spec), *save = NULL;

	if (!copy)
		die("out of memory");
	src = xcalloc(SRC_MAX, sizeof *src);
	src_len = xcalloc(SRC_MAX, sizeof *src_len);
	for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(item, '-');
		struct sockaddr_storage sa;

		memset(&sa, 0, sizeof sa);
		if (dash) {
			struct in_addr a, b;

			*dash = 0;
			if (inet_pton(AF_INET, item, &a) != 1 || inet_pton(AF_INET, dash + 1, &b) != 1)
				die("--src-addrs: bad IPv4 range '%s-%s'", item, dash + 1);
			uint32_t lo = ntohl(a.s_addr), hi = ntohl(b.s_addr);
			if (lo > hi || hi - lo >= SRC_MAX)
				die("--src-addrs: bad range '%s-%s'", item, dash + 1);
			for (uint64_t v = lo; v <= hi; v++) {
				struct sockaddr_in *in = (struct sockaddr_in *)&sa;
				in->sin_family = AF_INET;
				in->sin_addr.s_addr = htonl((uint32_t)v);
				src_add(&sa, sizeof *in);
			}
		} else {
			struct sockaddr_in *in = (struct sockaddr_in *)&sa;
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;

			if (inet_pton(AF_INET, item, &in->sin_addr) == 1) {
				in->sin_family = AF_INET;
				src_add(&sa, sizeof *in);
			} else if (inet_pton(AF_INET6, item, &in6->sin6_addr) == 1) {
				in6->sin6_family = AF_INET6;
				src_add(&sa, sizeof *in6);
			} else {
				die("--src-addrs: bad address '%s'", item);
			}
		}
	}
	free(copy);
	if (nsrc == 0)
		die("--src-addrs: no address given");
	for (uint32_t i = 0; i < nsrc; i++)
		if (src[i].ss_family != http_sa.ss_family)
			die("--src-addrs: address family does not match --http %s", opt.http_addr);
}

static void usage(FILE *f)
{
	fputs(
"usage: spout-bench [options]\n"
"\n"
"Load generator and delivery checker for spout: opens SSE subscribers,\n"
"publishes sequenced, timestamped events and checks every delivery for\n"
"loss, duplicates, order and latency. See docs/spout-bench.md.\n"
"\n"
"Subscribers\n"
"  -s, --subscribers N        checked subscribers (default 100)\n"
"  -t, --topics N             topics <prefix>.0 .. <prefix>.N-1; subscriber j\n"
"                             gets topic j % N (default 10)\n"
"      --topic-prefix STR     topic name prefix, [A-Za-z0-9._-] (default bench);\n"
"                             give each process of a multi-process run its own\n"
"      --http ADDR:PORT       spout's HTTP address (default 127.0.0.1:8080)\n"
"      --http10               send HTTP/1.0 requests (raw body, no chunking)\n"
"      --src-addrs LIST       bind each socket to the next source address of\n"
"                             LIST, round-robin, port 0; LIST is comma-separated\n"
"                             addresses and IPv4 ranges (127.0.0.2-127.0.0.40)\n"
"      --connect-concurrency N\n"
"                             connections at most between connect() and their\n"
"                             200 head (default 256)\n"
"      --connect-timeout MS   budget of the whole connect phase; subscribers\n"
"                             without a 200 head by then fail (default 30000);\n"
"                             with --churn: budget of each cycle\n"
"\n"
"Publishing\n"
"      --pub ADDR:PORT        spout's publisher address (default 127.0.0.1:7400)\n"
"  -r, --rate R               events/s over all topics, round-robin (default\n"
"                             1000); 0 = as fast as --window allows\n"
"  -d, --duration SEC         publish for SEC seconds (default 10; fractions ok)\n"
"  -n, --events N             publish exactly N events instead of -d\n"
"      --size BYTES           payload bytes: \"<seq>:<send_ns>:\" padded with 'x'\n"
"                             (default 128, at most 1048576)\n"
"      --window N             with -r 0: PUBs in flight without an OK/ERR reply\n"
"                             (default 1000)\n"
"      --drain-ms MS          after the last publish, wait at most MS for the\n"
"                             missing deliveries (default 2000)\n"
"\n"
"Modes\n"
"      --slow K               K more subscribers that never read after the head;\n"
"                             not in the loss figures; reports how many the\n"
"                             broker closed\n"
"      --slow-rcvbuf BYTES    SO_RCVBUF of slow subscribers (default: kernel's)\n"
"      --slow-check-ms MS     how long the end-of-run check reads the slow\n"
"                             subscribers looking for EOF/RST (default 1000)\n"
"      --churn                connect, get the 200 head, close, repeat; no\n"
"                             publishing (-s, --slow, -r, -d, -n unused)\n"
"      --churn-cycles N       cycles in --churn mode (default 1000)\n"
"\n"
"Run\n"
"      --max-seconds SEC      hard stop of the whole run (default 120); the\n"
"                             report is printed and the exit status is 3\n"
"      --expect-no-loss       exit 1 if any delivery was lost, duplicated or out\n"
"                             of order, or any subscriber failed or was dropped\n"
"      --json                 print one JSON object on stdout instead of text\n"
"  -v, --verbose              phase changes and a progress line each second\n"
"                             on stderr\n"
"  -h, --help                 this text\n"
"\n"
"Exit status: 0 done; 1 --expect-no-loss check failed; 2 bad usage, not\n"
"enough file descriptors, or the publisher connection failed; 3 stopped by\n"
"--max-seconds or a signal.\n", f);
}

enum {
	O_PREFIX = 256, O_HTTP, O_PUB, O_HTTP10, O_SRC, O_CONC, O_CTIMEOUT, O_SIZE,
	O_WINDOW, O_DRAIN, O_SLOW, O_SLOW_RCVBUF, O_SLOW_CHECK, O_CHURN,
	O_CHURN_CYCLES, O_MAXSEC, O_EXPECT, O_JSON,
};

static void parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "subscribers", required_argument, NULL, 's' },
		{ "topics", required_argument, NULL, 't' },
		{ "topic-prefix", required_argument, NULL, O_PREFIX },
		{ "http", required_argument, NULL, O_HTTP },
		{ "pub", required_argument, NULL, O_PUB },
		{ "http10", no_argument, NULL, O_HTTP10 },
		{ "src-addrs", required_argument, NULL, O_SRC },
		{ "connect-concurrency", required_argument, NULL, O_CONC },
		{ "connect-timeout", required_argument, NULL, O_CTIMEOUT },
		{ "rate", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'd' },
		{ "events", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, O_SIZE },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "drain-ms", required_argument, NULL, O_DRAIN },
		{ "slow", required_argument, NULL, O_SLOW },
		{ "slow-rcvbuf", required_argument, NULL, O_SLOW_RCVBUF },
		{ "slow-check-ms", required_argument, NULL, O_SLOW_CHECK },
		{ "churn", no_argument, NULL, O_CHURN },
		{ "churn-cycles", required_argument, NULL, O_CHURN_CYCLES },
		{ "max-seconds", required_argument, NULL, O_MAXSEC },
		{ "expect-no-loss", no_argument, NULL, O_EXPECT },
		{ "json", no_argument, NULL, O_JSON },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* Far above anything one process can hold; keeps products in range. */
	const unsigned long big = 10000000;
	int c;

	while ((c = getopt_long(argc, argv, "s:t:r:d:n:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 's': opt.subs = parse_ulong(optarg, "-s", 0, big); break;
		case 't': opt.topics = parse_ulong(optarg, "-t", 1, big); break;
		case O_PREFIX: opt.prefix = optarg; break;
		case O_HTTP: opt.http_addr = optarg; break;
		case O_PUB: opt.pub_addr = optarg; break;
		case O_HTTP10: opt.http10 = true; break;
		case O_SRC: opt.src_spec = optarg; break;
		case O_CONC: opt.concurrency = parse_ulong(optarg, "--connect-concurrency", 1, big); break;
		case O_CTIMEOUT: opt.connect_timeout_ms = parse_ulong(optarg, "--connect-timeout", 1, 86400000); break;
		case 'r': opt.rate = parse_double(optarg, "-r", 0, 1e9); break;
		case 'd': opt.duration_s = parse_double(optarg, "-d", 0.001, 86400); break;
		case 'n': opt.events = parse_ulong(optarg, "-n", 1, ULONG_MAX); break;
		case O_SIZE: opt.size = parse_ulong(optarg, "--size", 0, SIZE_MAX_OPT); break;
		case O_WINDOW: opt.window = parse_ulong(optarg, "--window", 1, big); break;
		case O_DRAIN: opt.drain_ms = parse_ulong(optarg, "--drain-ms", 0, 86400000); break;
		case O_SLOW: opt.slow = parse_ulong(optarg, "--slow", 0, big); break;
		case O_SLOW_RCVBUF: opt.slow_rcvbuf = parse_ulong(optarg, "--slow-rcvbuf", 0, INT32_MAX); break;
		case O_SLOW_CHECK: opt.slow_check_ms = parse_ulong(optarg, "--slow-check-ms", 0, 86400000); break;
		case O_CHURN: opt.churn = true; break;
		case O_CHURN_CYCLES: opt.churn_cycles = parse_ulong(optarg, "--churn-cycles", 1, ULONG_MAX); break;
		case O_MAXSEC: opt.max_seconds = parse_double(optarg, "--max-seconds", 0.001, 86400 * 7); break;
		case O_EXPECT: opt.expect_no_loss = true; break;
		case O_JSON: opt.json = true; break;
		case 'v': opt.verbose = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);

	size_t pl = strlen(opt.prefix);
	if (pl == 0 || pl + 1 + 8 > TOPIC_MAX)
		die("--topic-prefix: must be 1..%d bytes", TOPIC_MAX - 9);
	for (size_t i = 0; i < pl; i++) {
		char ch = opt.prefix[i];
		/* These need no percent-encoding in the request path. */
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			die("--topic-prefix: '%c' not allowed (use [A-Za-z0-9._-])", ch);
	}
	parse_hostport(opt.http_addr, "--http", &http_sa, &http_salen);
	if (!opt.churn)
		parse_hostport(opt.pub_addr, "--pub", &pub_sa, &pub_salen);
	if (opt.src_spec)
		parse_src_addrs(opt.src_spec);
}

/* ---------------------------------------------------------------------- */
/* Sequence check                                                          */

/* Records that [lo, hi] was skipped. When GAP_MAX gaps are open the oldest is
 * forgotten: its events stay lost, and if they arrive after all they count
 * as duplicates (st.gaps_forgotten says when that happened). */
static void gap_add(struct sub *s, uint64_t lo, uint64_t hi)
{
	if (!s->gaps)
		s->gaps = xcalloc(GAP_MAX, sizeof *s->gaps);
	if (s->ngaps == GAP_MAX) {
		memmove(s->gaps, s->gaps + 1, (GAP_MAX - 1) * sizeof *s->gaps);
		s->ngaps--;
		st.gaps_forgotten++;
	}
	s->gaps[s->ngaps++] = (struct gap){ lo, hi };
}

/* Returns true if <seq> was in a gap (a late arrival), removing it. */
static bool gap_take(struct sub *s, uint64_t seq)
{
	for (unsigned i = 0; i < s->ngaps; i++) {
		struct gap *g = &s->gaps[i];

		if (seq < g->lo || seq > g->hi)
			continue;
		if (g->lo == g->hi) {
			memmove(g, g + 1, (s->ngaps - i - 1) * sizeof *g);
			s->ngaps--;
		} else if (seq == g->lo) {
			g->lo++;
		} else if (seq == g->hi) {
			g->hi--;
		} else {
			struct gap upper = { seq + 1, g->hi };

			g->hi = seq - 1;
			if (s->ngaps == GAP_MAX) {
				/* Full: forget the oldest gap, or the upper half
				 * if the oldest is the one being split. */
				st.gaps_forgotten++;
				if (i == 0)
					return true;
				memmove(s->gaps, s->gaps + 1, (GAP_MAX - 1) * sizeof *g);
				s->ngaps--;
				i--;
			}
			memmove(&s->gaps[i + 2], &s->gaps[i + 1], (s->ngaps - i - 1) * sizeof *g);
			s->gaps[i + 1] = upper;
			s->ngaps++;
		}
		return true;
	}
	return false;
}

/* One parsed event for checked subscriber <s>. <vlen> is the length of the
 * data value, <plen> that of its "<seq>:<ns>:" prefix. */
static void deliver(struct sub *s, uint64_t seq, uint64_t sent_ns,
		    uint32_t vlen, uint32_t plen, int64_t rx_ns)
{
	uint32_t want = opt.size > plen ? (uint32_t)opt.size : plen;

	st.received++;
	if (run.phase == PH_PUBLISH)
		st.received_in_window++;
	run.last_rx = rx_ns;
	if (vlen != want)
		st.bad_payload++;
	if (seq >= s->next_seq) {
		if (seq > s->next_seq)
			gap_add(s, s->next_seq, seq - 1);
		s->next_seq = seq + 1;
	} else if (gap_take(s, seq)) {
		st.out_of_order++;
	} else {
		st.duplicated++;
		return;
	}
	s->unique++;
	st.unique++;
	/* Same host, same CLOCK_MONOTONIC: negative only if the payload lies. */
	hist_record(&lat, rx_ns > (int64_t)sent_ns ? (uint64_t)(rx_ns - (int64_t)sent_ns) : 0);
}

/* ---------------------------------------------------------------------- */
/* SSE and chunked parsing (incremental: input may split anywhere)        */

/* Parses "<seq>:<ns>:" at the start of <p>[0..n). Returns the prefix length,
 * 0 if it is not one of our payloads. */
static uint32_t parse_payload(const char *p, size_t n, uint64_t *seq, uint64_t *ns)
{
	uint64_t v[2];
	size_t i = 0;

	for (int f = 0; f < 2; f++) {
		size_t start = i;

		v[f] = 0;
		while (i < n && p[i] >= '0' && p[i] <= '9') {
			if (i - start >= 19)
				return 0;   /* more than fits: not ours */
			v[f] = v[f] * 10 + (uint64_t)(p[i] - '0');
			i++;
		}
		if (i == start || i >= n || p[i] != ':')
			return 0;
		i++;
	}
	if (v[0] == 0)
		return 0;           /* sequences start at 1 */
	*seq = v[0];
	*ns = v[1];
	return (uint32_t)i;
}

static void sse_dispatch(struct sub *s, int64_t rx_ns)
{
	if (s->ev_data) {
		if (s->ev_ok)
			deliver(s, s->ev_seq, s->ev_ns, s->ev_len, s->ev_plen, rx_ns);
		else
			st.foreign++;
	}
	s->ev_data = s->ev_ok = false;
}

/* A complete line is in s->line (first LINE_KEEP bytes) / s->line_len. */
static void sse_line(struct sub *s, int64_t rx_ns)
{
	uint32_t len = s->line_len;

	if (len > 0 && s->line_last == '\r')
		len--;
	if (len == 0) {
		sse_dispatch(s, rx_ns);
		return;
	}
	uint32_t kept = len < LINE_KEEP ? len : LINE_KEEP;
	/* ':' starts a comment (heartbeat); id: and event: are not checked:
	 * the payload carries what the check needs. */
	if (kept < 5 || memcmp(s->line, "data:", 5) != 0)
		return;
	uint32_t off = (kept > 5 && s->line[5] == ' ') ? 6 : 5;
	if (s->ev_data) {
		s->ev_ok = false;   /* our events have one data line */
		return;
	}
	s->ev_data = true;
	s->ev_plen = parse_payload(s->line + off, kept - off, &s->ev_seq, &s->ev_ns);
	s->ev_ok = s->ev_plen > 0;
	s->ev_len = len - off;
}

static void sse_feed(struct sub *s, const char *p, size_t len, int64_t rx_ns)
{
	while (len > 0) {
		const char *nl = memchr(p, '\n', len);
		size_t n = nl ? (size_t)(nl - p) : len;

		if (n > 0) {
			if (s->line_len < LINE_KEEP) {
				size_t k = LINE_KEEP - s->line_len;
				memcpy(s->line + s->line_len, p, k < n ? k : n);
			}
			s->line_len = n > UINT32_MAX - s->line_len ? UINT32_MAX
								    : s->line_len + (uint32_t)n;
			s->line_last = p[n - 1];
		}
		if (!nl)
			return;
		sse_line(s, rx_ns);
		s->line_len = 0;
		s->line_last = 0;
		p = nl + 1;
		len -= n + 1;
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Feeds response body bytes to <s>. Returns 0, 1 when the server ended the
 * stream (last chunk), -1 on a framing error. */
static int body_feed(struct sub *s, const char *p, size_t len, int64_t rx_ns)
{
	if (!s->chunked) {
		sse_feed(s, p, len, rx_ns);
		return 0;
	}
	while (len > 0) {
		char c = *p;

		switch (s->ch_state) {
		case CH_SIZE: {
			int d = hexval(c);

			if (d >= 0) {
				if (s->ch_left >> 40)
					return -1;  /* a terabyte chunk: garbage */
				s->ch_left = s->ch_left * 16 + (uint64_t)d;
				s->ch_digits = true;
			} else if (!s->ch_digits) {
				return -1;
			} else if (c == ';' || c == ' ' || c == '\t') {
				s->ch_state = CH_EXT;
			} else if (c == '\r') {
				s->ch_state = CH_SIZE_LF;
			} else if (c == '\n') {
				goto size_done;
			} else {
				return -1;
			}
			p++, len--;
			continue;
		}
		case CH_EXT:
			p++, len--;
			if (c == '\n')
				goto size_done_consumed;
			continue;
		case CH_SIZE_LF:
			if (c != '\n')
				return -1;
			goto size_done;
		case CH_DATA: {
			size_t n = len < s->ch_left ? len : (size_t)s->ch_left;

			sse_feed(s, p, n, rx_ns);
			p += n, len -= n;
			s->ch_left -= n;
			if (s->ch_left == 0)
				s->ch_state = CH_DATA_CR;
			continue;
		}
		case CH_DATA_CR:
			p++, len--;
			if (c == '\r')
				s->ch_state = CH_DATA_LF;
			else if (c == '\n')
				s->ch_state = CH_SIZE;
			else
				return -1;
			continue;
		case CH_DATA_LF:
			p++, len--;
			if (c != '\n')
				return -1;
			s->ch_state = CH_SIZE;
			continue;
		case CH_DONE:
		default:
			return 1;
		}
size_done:
		p++, len--;
size_done_consumed:
		s->ch_digits = false;
		if (s->ch_left == 0) {
			s->ch_state = CH_DONE;
			return 1;
		}
		s->ch_state = CH_DATA;
	}
	/* A chunk's data ended exactly here: reset the size for the next one. */
	if (s->ch_state == CH_SIZE && !s->ch_digits)
		s->ch_left = 0;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Response head                                                           */

/* Returns the length of the head (through its blank line) in <b>[0..n), or 0
 * if it is not complete. <from> is where new bytes start, minus 3. */
static size_t head_end(const char *b, size_t n, size_t from)
{
	for (size_t i = from; i < n; i++) {
		if (b[i] != '\n')
			continue;
		if (i + 1 < n && b[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* "HTTP/1.x NNN ...": returns NNN, -1 if the status line is malformed. */
static int head_status(const char *b, size_t n)
{
	if (n < 12 || memcmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ')
		return -1;
	int v = 0;
	for (int i = 9; i < 12; i++) {
		if (b[i] < '0' || b[i] > '9')
			return -1;
		v = v * 10 + (b[i] - '0');
	}
	return v;
}

static bool mem_has_ci(const char *p, size_t n, const char *tok)
{
	size_t tl = strlen(tok);

	for (size_t i = 0; i + tl <= n; i++)
		if (strncasecmp(p + i, tok, tl) == 0)
			return true;
	return false;
}

/* True if a Transfer-Encoding header (any case) names chunked. */
static bool head_chunked(const char *b, size_t n)
{
	static const char name[] = "transfer-encoding:";
	const size_t nl = sizeof name - 1;
	const char *p = memchr(b, '\n', n);

	while (p && (size_t)(p + 1 - b) < n) {
		const char *line = p + 1;
		size_t rest = n - (size_t)(line - b);
		const char *eol = memchr(line, '\n', rest);
		size_t ll = eol ? (size_t)(eol - line) : rest;

		if (ll > nl && strncasecmp(line, name, nl) == 0 &&
		    mem_has_ci(line + nl, ll - nl, "chunked"))
			return true;
		p = eol;
	}
	return false;
}

/* ---------------------------------------------------------------------- */
/* Subscriber connections                                                  */

static void slot_free(struct sub *s)
{
	s->state = SS_FREE;
	free_slots[nfree++] = (uint32_t)(s - subs);
}

static void sub_close(struct sub *s)
{
	if (s->fd != -1) {
		/* close() errors on a socket say nothing we could act on. */
		(void)close(s->fd);
		s->fd = -1;
	}
	s->gen++;
	free(s->head);
	s->head = NULL;
	free(s->gaps);
	s->gaps = NULL;
	s->ngaps = 0;
	s->state = SS_CLOSED;
}

/* A subscription that never got its 200 head. */
static void sub_fail(struct sub *s, enum fail_kind k, int code)
{
	switch (k) {
	case FAIL_ERRNO: st.fail_errno[code > 0 && code < ERRNO_SLOTS ? code : 0]++; break;
	case FAIL_TIMEOUT: st.fail_timeout++; break;
	case FAIL_STATUS: st.fail_status[code >= 0 && code < STATUS_SLOTS ? code : 0]++; break;
	case FAIL_EOF: st.fail_eof++; break;
	case FAIL_BADHEAD: st.fail_badhead++; break;
	}
	st.failed++;
	if (s->kind == SK_SLOW)
		st.slow_failed++;
	run.inflight--;
	sub_close(s);
	if (s->kind == SK_CHURN)
		slot_free(s);
}

/* A checked subscriber lost mid-stream: what it misses counts as lost. */
static void sub_drop(struct sub *s, uint64_t *counter)
{
	(*counter)++;
	s->dropped = true;
	if (opt.verbose && st.dropped_eof + st.dropped_err + st.dropped_proto == 1)
		fprintf(stderr, "spout-bench: first subscriber dropped mid-stream (topic %s)\n",
			topic_name[s->topic]);
	uint64_t unique = s->unique;
	sub_close(s);
	s->unique = unique;
}

static void sub_established(struct sub *s, int64_t rx_ns)
{
	run.inflight--;
	run.t_last_head = rx_ns;
	st.connected++;
	switch (s->kind) {
	case SK_SLOW:
		st.slow_connected++;
		s->state = SS_PARKED;
		/* Level-triggered EPOLLIN would fire forever on a socket we
		 * refuse to read. */
		ep_ctl(EPOLL_CTL_DEL, s->fd, 0, 0);
		break;
	case SK_CHURN:
		st.churn_done++;
		sub_close(s);
		slot_free(s);
		break;
	default:
		s->state = SS_STREAM;
		s->established = true;
		s->next_seq = 1;
		topic_nsubs[s->topic]++;
		break;
	}
}

static void sub_send_req(struct sub *s)
{
	const char *r = req_buf[s->topic];
	uint32_t rl = req_len[s->topic];

	while (s->req_off < rl) {
		ssize_t n = send(s->fd, r + s->req_off, rl - s->req_off, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				sub_fail(s, FAIL_ERRNO, errno);
			return;
		}
		s->req_off += (uint32_t)n;
	}
	s->state = SS_HEAD;
	ep_ctl(EPOLL_CTL_MOD, s->fd, EPOLLIN, sub_tag(s));
}

static void sub_read_head(struct sub *s)
{
	if (!s->head)
		s->head = xcalloc(1, HEAD_MAX);
	ssize_t n = read(s->fd, s->head + s->head_len, HEAD_MAX - s->head_len);
	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			sub_fail(s, FAIL_ERRNO, errno);
		return;
	}
	if (n == 0) {
		sub_fail(s, FAIL_EOF, 0);
		return;
	}
	int64_t rx = now_ns();
	size_t from = s->head_len > 3 ? s->head_len - 3 : 0;
	s->head_len += (uint32_t)n;
	size_t end = head_end(s->head, s->head_len, from);
	if (end == 0) {
		if (s->head_len == HEAD_MAX)
			sub_fail(s, FAIL_BADHEAD, 0);
		return;
	}
	int status = head_status(s->head, end);
	if (status < 0) {
		sub_fail(s, FAIL_BADHEAD, 0);
		return;
	}
	if (status != 200) {
		sub_fail(s, FAIL_STATUS, status);
		return;
	}
	s->chunked = head_chunked(s->head, end);
	sub_established(s, rx);
	if (s->state == SS_STREAM && s->head_len > end) {
		int r = body_feed(s, s->head + end, s->head_len - end, rx);
		if (r != 0) {
			sub_drop(s, r < 0 ? &st.dropped_proto : &st.dropped_eof);
			return;
		}
	}
	free(s->head);
	s->head = NULL;
}

static void sub_read_stream(struct sub *s)
{
	ssize_t n = read(s->fd, rbuf, sizeof rbuf);

	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			sub_drop(s, &st.dropped_err);
		return;
	}
	if (n == 0) {
		sub_drop(s, &st.dropped_eof);
		return;
	}
	int r = body_feed(s, rbuf, (size_t)n, now_ns());
	if (r != 0)
		sub_drop(s, r < 0 ? &st.dropped_proto : &st.dropped_eof);
}

/* End-of-run read of a slow subscriber: it drains what the kernel holds,
 * since a close by the broker (FIN) queues behind all the data it sent. A
 * bounded number of reads per call keeps the loop fair. */
static void slow_read(struct sub *s)
{
	for (int i = 0; i < 16; i++) {
		ssize_t n = read(s->fd, rbuf, sizeof rbuf);

		if (n > 0)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		st.slow_closed++;      /* EOF, or RST (ECONNRESET) */
		run.slow_pending--;
		sub_close(s);
		return;
	}
}

static void sub_event(struct sub *s, uint32_t events)
{
	switch (s->state) {
	case SS_CONNECTING: {
		int err = 0;
		socklen_t l = sizeof err;

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) == -1)
			err = errno;
		if (err) {
			sub_fail(s, FAIL_ERRNO, err);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		s->state = SS_SENDING;
		sub_send_req(s);
		return;
	}
	case SS_SENDING:
		sub_send_req(s);
		return;
	case SS_HEAD:
		sub_read_head(s);
		return;
	case SS_STREAM:
		sub_read_stream(s);
		return;
	case SS_SLOWCHK:
		slow_read(s);
		return;
	default:
		return;
	}
}

static void sub_open(struct sub *s, int64_t now)
{
	int fd;

	if (run.t_first_connect == 0)
		run.t_first_connect = now;
	run.inflight++;
	s->state = SS_CONNECTING;
	s->t_open = now;
	s->req_off = s->head_len = 0;
	s->line_len = 0;
	s->ch_state = CH_SIZE;
	s->ch_left = 0;
	s->ch_digits = s->chunked = s->ev_data = s->ev_ok = false;
	s->established = s->dropped = false;
	s->unique = 0;
	s->next_seq = 1;

	fd = socket(http_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		sub_fail(s, FAIL_ERRNO, errno);
		return;
	}
	s->fd = fd;
	if (nsrc > 0) {
		int one = 1;
		const uint32_t i = next_src++ % nsrc;

		/* Pick the port at connect() from the whole 4-tuple, not at
		 * bind() per address: bind() alone would reserve the port
		 * against every destination. */
		if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) == -1 &&
		    next_src == 1)
			fprintf(stderr, "spout-bench: IP_BIND_ADDRESS_NO_PORT: %s\n", strerror(errno));
		if (bind(fd, (struct sockaddr *)&src[i], src_len[i]) == -1) {
			sub_fail(s, FAIL_ERRNO, errno);
			return;
		}
	}
	if (s->kind == SK_SLOW && opt.slow_rcvbuf > 0) {
		int v = (int)opt.slow_rcvbuf;
		/* Before connect(), so that the window scale matches it. */
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) == -1)
			fprintf(stderr, "spout-bench: SO_RCVBUF: %s\n", strerror(errno));
	}
	if (connect(fd, (struct sockaddr *)&http_sa, http_salen) == -1) {
		if (errno != EINPROGRESS) {
			sub_fail(s, FAIL_ERRNO, errno);
			return;
		}
		ep_ctl(EPOLL_CTL_ADD, fd, EPOLLOUT, sub_tag(s));
		return;
	}
	s->state = SS_SENDING;
	ep_ctl(EPOLL_CTL_ADD, fd, EPOLLOUT, sub_tag(s));
	sub_send_req(s);
}

/* Opens subscribers until the concurrency cap or the total is reached. */
static void launch_more(void)
{
	if (run.phase != PH_CONNECT && run.phase != PH_CHURN)
		return;
	int64_t now = now_ns();
	while (run.inflight < opt.concurrency && run.launched < run.total) {
		struct sub *s;
		uint64_t j = run.launched++;

		if (opt.churn) {
			if (nfree == 0)
				break;   /* cannot happen: slots == concurrency */
			s = &subs[free_slots[--nfree]];
			s->kind = SK_CHURN;
			s->topic = (uint32_t)(j % opt.topics);
		} else {
			s = &subs[j];
			s->kind = j < opt.subs ? SK_NORMAL : SK_SLOW;
			s->topic = (uint32_t)((j < opt.subs ? j : j - opt.subs) % opt.topics);
		}
		sub_open(s, now);
	}
}

/* Fails every subscriber still between connect() and head whose deadline
 * (<opened_before>) has passed. */
static void fail_stale(int64_t opened_before)
{
	for (uint32_t i = 0; i < nslots; i++) {
		struct sub *s = &subs[i];

		if ((s->state == SS_CONNECTING || s->state == SS_SENDING || s->state == SS_HEAD) &&
		    s->t_open <= opened_before)
			sub_fail(s, FAIL_TIMEOUT, 0);
	}
}

/* ---------------------------------------------------------------------- */
/* Publisher connection                                                    */

static void pub_set_pollout(bool want)
{
	if (pub.fd == -1 || !pub.up || want == pub.pollout)
		return;
	pub.pollout = want;
	ep_ctl(EPOLL_CTL_MOD, pub.fd, EPOLLIN | (want ? EPOLLOUT : 0), TAG_PUB);
}

static void end_publish(int64_t now);

static void pub_failure(const char *what, int err)
{
	if (pub.dead)
		return;
	pub.dead = true;
	pub.up = false;
	if (pub.fd != -1) {
		(void)close(pub.fd);
		pub.fd = -1;
	}
	/* Closed after every reply came in: the run is complete anyway. */
	if (run.phase >= PH_DRAIN && pub.replies == st.published)
		return;
	run.pub_failed = true;
	fprintf(stderr, "spout-bench: publisher %s %s%s%s\n", opt.pub_addr, what,
		err ? ": " : "", err ? strerror(err) : "");
	if (run.phase == PH_PUBLISH)
		end_publish(now_ns());
}

static void pub_open(void)
{
	pub.cap = PUB_OUT_CAP + 64 + TOPIC_MAX + (opt.size > 48 ? opt.size : 48);
	pub.out = xcalloc(1, pub.cap);
	pub.fd = socket(pub_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pub.fd == -1)
		die("publisher socket: %s", strerror(errno));
	if (connect(pub.fd, (struct sockaddr *)&pub_sa, pub_salen) == -1 && errno != EINPROGRESS) {
		pub_failure("connect", errno);
		return;
	}
	ep_ctl(EPOLL_CTL_ADD, pub.fd, EPOLLOUT, TAG_PUB);
}

static void pub_flush(void)
{
	while (pub.up && pub.off < pub.len) {
		ssize_t n = send(pub.fd, pub.out + pub.off, pub.len - pub.off, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			pub_failure("write", errno);
			return;
		}
		pub.off += (size_t)n;
	}
	if (pub.off == pub.len)
		pub.off = pub.len = 0;
	pub_set_pollout(pub.off < pub.len);
}

static void pub_reply(void)
{
	size_t n = pub.line_len < sizeof pub.line ? pub.line_len : sizeof pub.line;

	if (n > 0 && pub.line[n - 1] == '\r')
		n--;
	if (pub.replies >= st.published) {
		st.pub_unexpected++;   /* a reply to nothing we sent */
		return;
	}
	/* Replies come in order, and PUB k went to topic k % T. */
	uint32_t t = (uint32_t)(pub.replies++ % opt.topics);
	if (n >= 2 && memcmp(pub.line, "OK", 2) == 0) {
		st.pub_ok++;
		return;
	}
	/* Rejected: nobody should get it. */
	st.pub_err++;
	topic_err[t]++;
	run.expected -= topic_nsubs[t];
	if (pub.first_err[0] == 0) {
		size_t m = n < sizeof pub.first_err - 1 ? n : sizeof pub.first_err - 1;
		memcpy(pub.first_err, pub.line, m);
		pub.first_err[m] = 0;
	}
}

static void pub_read(void)
{
	ssize_t n = read(pub.fd, rbuf, sizeof rbuf);

	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			pub_failure("read", errno);
		return;
	}
	if (n == 0) {
		pub_failure("closed the connection", 0);
		return;
	}
	const char *p = rbuf;
	size_t len = (size_t)n;
	while (len > 0) {
		const char *nl = memchr(p, '\n', len);
		size_t k = nl ? (size_t)(nl - p) : len;

		if (pub.line_len < sizeof pub.line) {
			size_t room = sizeof pub.line - pub.line_len;
			memcpy(pub.line + pub.line_len, p, k < room ? k : room);
		}
		pub.line_len += k;
		if (!nl)
			break;
		pub_reply();
		pub.line_len = 0;
		p = nl + 1;
		len -= k + 1;
	}
}

static void pub_event(uint32_t events)
{
	if (pub.fd == -1)
		return;
	if (!pub.up) {
		int err = 0;
		socklen_t l = sizeof err;

		if (getsockopt(pub.fd, SOL_SOCKET, SO_ERROR, &err, &l) == -1)
			err = errno;
		if (err) {
			pub_failure("connect", err);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		int one = 1;
		/* Each PUB is a small write whose latency we measure: Nagle
		 * would hold it back waiting for the previous OK. */
		if (setsockopt(pub.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1)
			fprintf(stderr, "spout-bench: TCP_NODELAY: %s\n", strerror(errno));
		pub.up = true;
		pub.pollout = true;
		pub_set_pollout(false);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		pub_read();
	if (pub.fd != -1 && (events & EPOLLOUT))
		pub_flush();
}

/* Appends one PUB line for the next event to the output buffer. */
static void pub_emit(void)
{
	if (pub.cap - pub.len < pub.cap - PUB_OUT_CAP) {
		memmove(pub.out, pub.out + pub.off, pub.len - pub.off);
		pub.len -= pub.off;
		pub.off = 0;
	}
	uint32_t t = (uint32_t)(st.published % opt.topics);
	uint64_t seq = ++topic_seq[t];
	/* Expected as soon as it is sent: an event with no reply yet (or
	 * ever) was not rejected, so its absence is a loss. */
	run.expected += topic_nsubs[t];
	char *p = pub.out + pub.len;

	memcpy(p, "PUB ", 4);
	p += 4;
	memcpy(p, topic_name[t], topic_len[t]);
	p += topic_len[t];
	*p++ = ' ';
	char *payload = p;
	p += u64_dec(p, seq);
	*p++ = ':';
	p += u64_dec(p, (uint64_t)now_ns());
	*p++ = ':';
	size_t plen = (size_t)(p - payload);
	if (plen < opt.size) {
		memset(p, 'x', opt.size - plen);
		p += opt.size - plen;
	}
	*p++ = '\n';
	pub.len = (size_t)(p - pub.out);
	st.published++;
}

static bool more_to_publish(int64_t now)
{
	if (opt.events)
		return st.published < opt.events;
	return now < run.pub_start + (int64_t)(opt.duration_s * (double)NS_PER_S);
}

static void timer_arm(bool on)
{
	struct itimerspec its = { 0 };

	if (on) {
		its.it_interval.tv_nsec = NS_PER_MS;
		its.it_value.tv_nsec = NS_PER_MS;
	}
	if (timerfd_settime(run.tfd, 0, &its, NULL) == -1)
		die("timerfd_settime: %s", strerror(errno));
	run.timer_armed = on;
}

static void end_publish(int64_t now)
{
	run.pub_end = now;
	timer_arm(false);
	run.phase = PH_DRAIN;
	run.drain_deadline = now + (int64_t)opt.drain_ms * NS_PER_MS;
	if (opt.verbose)
		fprintf(stderr, "spout-bench: published %" PRIu64 " events in %.3f s; draining\n",
			st.published, secs(now - run.pub_start));
}

/* Publishes what pacing allows, then writes. Called after every batch of
 * events (and every PUMP_EVERY events within one), so the 1 ms timer only
 * guarantees a wakeup. The bucket holds 100 ms of events: on a busy host the
 * process is routinely descheduled for several ms, and those events must be
 * caught up, while a longer stall is not turned into a flood. Whatever is
 * not caught up shows as published/s below -r in the report. */
static void pub_pump(int64_t now)
{
	if (run.phase == PH_PUBLISH && pub.up) {
		if (opt.rate > 0) {
			run.tokens += secs(now - run.tok_last) * opt.rate;
			run.tok_last = now;
			if (run.tokens > run.burst)
				run.tokens = run.burst;
			while (run.tokens >= 1.0 && more_to_publish(now) &&
			       pub.len - pub.off < PUB_OUT_CAP) {
				pub_emit();
				run.tokens -= 1.0;
			}
		} else {
			while (st.published - pub.replies < opt.window && more_to_publish(now) &&
			       pub.len - pub.off < PUB_OUT_CAP)
				pub_emit();
		}
		pub_flush();
		if (!more_to_publish(now))
			end_publish(now);
		return;
	}
	pub_flush();
}

/* ---------------------------------------------------------------------- */
/* Phases                                                                  */

static void start_publish(int64_t now)
{
	if (opt.verbose)
		fprintf(stderr, "spout-bench: %" PRIu64 " subscribed, %" PRIu64
			" failed in %.3f s; publishing\n", st.connected, st.failed,
			secs(now - run.t0));
	run.phase = PH_PUBLISH;
	run.pub_start = now;
	run.tok_last = now;
	run.tokens = 1.0;   /* the first event goes out at once */
	run.burst = opt.rate / 10.0 < 1.0 ? 1.0 : opt.rate / 10.0;
	timer_arm(opt.rate > 0);
}

static void start_slowcheck(int64_t now)
{
	run.phase = PH_SLOWCHK;
	run.slow_deadline = now + (int64_t)opt.slow_check_ms * NS_PER_MS;
	for (uint32_t i = 0; i < nslots; i++) {
		struct sub *s = &subs[i];

		if (s->state != SS_PARKED)
			continue;
		s->state = SS_SLOWCHK;
		run.slow_pending++;
		if (opt.slow_rcvbuf > 0) {
			/* A FIN queues behind all the data the broker's kernel
			 * still holds; a small receive window would make
			 * draining it take seconds. */
			int v = 1 << 20;
			if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) == -1)
				fprintf(stderr, "spout-bench: SO_RCVBUF: %s\n", strerror(errno));
		}
		ep_ctl(EPOLL_CTL_ADD, s->fd, EPOLLIN, sub_tag(s));
		slow_read(s);
	}
}

static void end_drain(int64_t now)
{
	/* Freeze the delivery figures: nothing read after this counts. */
	for (uint32_t i = 0; i < nslots; i++)
		if (subs[i].state == SS_STREAM) {
			uint64_t unique = subs[i].unique;
			sub_close(&subs[i]);
			subs[i].unique = unique;
		}
	if (opt.verbose)
		fprintf(stderr, "spout-bench: drain over after %.3f s\n", secs(now - run.pub_end));
	if (st.slow_connected > 0)
		start_slowcheck(now);
	else
		run.phase = PH_REPORT;
}

static void phase_step(int64_t now)
{
	switch (run.phase) {
	case PH_CONNECT:
		if (run.pub_failed) {
			run.phase = PH_REPORT;
			break;
		}
		if (run.launched == run.total && run.inflight == 0 && pub.up) {
			start_publish(now);
		} else if (now >= run.connect_deadline) {
			fail_stale(now);
			st.fail_timeout += run.total - run.launched;
			st.failed += run.total - run.launched;
			for (uint64_t j = run.launched; j < run.total; j++)
				if (j >= opt.subs)
					st.slow_failed++;
			run.launched = run.total;
			if (!pub.up) {
				pub_failure("connect timed out", 0);
				run.phase = PH_REPORT;
				break;
			}
			start_publish(now);
		}
		break;
	case PH_PUBLISH:
		break;
	case PH_DRAIN:
		if ((pub.off == pub.len && pub.replies == st.published &&
		     st.unique >= run.expected) || now >= run.drain_deadline)
			end_drain(now);
		break;
	case PH_SLOWCHK:
		if (run.slow_pending == 0 || now >= run.slow_deadline) {
			st.slow_open = run.slow_pending;
			run.phase = PH_REPORT;
		}
		break;
	case PH_CHURN:
		if (st.churn_done + st.failed >= run.total) {
			run.phase = PH_REPORT;
		} else if (now - run.last_scan >= 100 * NS_PER_MS) {
			run.last_scan = now;
			fail_stale(now - (int64_t)opt.connect_timeout_ms * NS_PER_MS);
		}
		break;
	case PH_REPORT:
		break;
	}
}

static void progress(int64_t now)
{
	if (!opt.verbose || now - run.last_progress < NS_PER_S)
		return;
	run.last_progress = now;
	fprintf(stderr, "spout-bench: [%6.1f s] %-10s subscribed %" PRIu64 " failed %" PRIu64
		" in-flight %" PRIu64 " published %" PRIu64 " acked %" PRIu64
		" received %" PRIu64 "\n", secs(now - run.t0), phase_name[run.phase],
		st.connected, st.failed, run.inflight, st.published, pub.replies, st.received);
}

/* ---------------------------------------------------------------------- */
/* Report                                                                  */

struct figures {
	double wall_s, cpu_s, cpu_share, connect_per_s, deliveries_per_s;
	double delivery_span_s, publish_s, published_per_s, churn_per_s;
	double p50, p95, p99, p999, max;   /* ms */
	uint64_t dropped, unacked;
};

static double cpu_now(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double ns_to_ms(uint64_t v)
{
	return (double)v / 1e6;
}

static void compute(struct figures *f)
{
	memset(f, 0, sizeof *f);
	f->wall_s = secs(run.t_end - run.t0);
	/* Both from t0, so that setup (allocation, option parsing) counts in
	 * neither. */
	f->cpu_s = cpu_now() - run.cpu0;
	f->cpu_share = f->wall_s > 0 ? f->cpu_s / f->wall_s : 0;
	if (st.connected > 0 && run.t_last_head > run.t_first_connect)
		f->connect_per_s = per_s(st.connected, run.t_last_head - run.t_first_connect);
	if (run.pub_start) {
		int64_t end = run.pub_end ? run.pub_end : run.t_end;
		f->publish_s = secs(end - run.pub_start);
		f->published_per_s = per_s(st.published, end - run.pub_start);
		f->deliveries_per_s = per_s(st.received_in_window, end - run.pub_start);
		if (run.last_rx > run.pub_start)
			f->delivery_span_s = secs(run.last_rx - run.pub_start);
	}
	if (opt.churn)
		f->churn_per_s = st.churn_done && run.t_last_head > run.t_first_connect
			? per_s(st.churn_done, run.t_last_head - run.t_first_connect) : 0;
	f->p50 = ns_to_ms(hist_quantile(&lat, 0.50));
	f->p95 = ns_to_ms(hist_quantile(&lat, 0.95));
	f->p99 = ns_to_ms(hist_quantile(&lat, 0.99));
	f->p999 = ns_to_ms(hist_quantile(&lat, 0.999));
	f->max = ns_to_ms(lat.max);
	if (run.phase == PH_SLOWCHK)
		st.slow_open = run.slow_pending;   /* stopped during the check */
	f->dropped = st.dropped_eof + st.dropped_err + st.dropped_proto;
	f->unacked = st.published - pub.replies;

	/* Lost: what each established checked subscriber should have had
	 * (every event of its topic not answered with ERR) and did not. */
	st.lost = 0;
	for (uint32_t i = 0; i < nslots; i++) {
		const struct sub *s = &subs[i];

		if (s->kind != SK_NORMAL || !s->established)
			continue;
		uint64_t want = topic_seq[s->topic] - topic_err[s->topic];
		if (s->unique < want)
			st.lost += want - s->unique;
	}
}

static void print_fail_detail(FILE *o, bool json)
{
	bool first = true;

	if (json) {
		fputs(",\"failed_status\":{", o);
		for (int i = 0; i < STATUS_SLOTS; i++)
			if (st.fail_status[i]) {
				fprintf(o, "%s\"%d\":%" PRIu64, first ? "" : ",", i, st.fail_status[i]);
				first = false;
			}
		fputs("},\"failed_errno\":{", o);
		first = true;
		for (int i = 0; i < ERRNO_SLOTS; i++)
			if (st.fail_errno[i]) {
				fprintf(o, "%s\"%s\":%" PRIu64, first ? "" : ",",
					i ? errname(i) : "other", st.fail_errno[i]);
				first = false;
			}
		fputc('}', o);
		return;
	}
	fputs("  failures     ", o);
	if (st.fail_timeout)
		fprintf(o, " timeout %" PRIu64, st.fail_timeout);
	if (st.fail_eof)
		fprintf(o, " closed-before-head %" PRIu64, st.fail_eof);
	if (st.fail_badhead)
		fprintf(o, " bad-head %" PRIu64, st.fail_badhead);
	for (int i = 0; i < STATUS_SLOTS; i++)
		if (st.fail_status[i])
			fprintf(o, " status-%d %" PRIu64, i, st.fail_status[i]);
	for (int i = 0; i < ERRNO_SLOTS; i++)
		if (st.fail_errno[i])
			fprintf(o, " %s %" PRIu64, i ? errname(i) : "other-errno", st.fail_errno[i]);
	fputc('\n', o);
}

static void report_json(const struct figures *f)
{
	FILE *o = stdout;

	fprintf(o, "{\"connected\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"connect_per_s\":%.1f,"
		"\"published\":%" PRIu64 ",\"pub_errors\":%" PRIu64 ",\"expected\":%" PRIu64
		",\"received\":%" PRIu64 ",\"deliveries_per_s\":%.1f,\"lost\":%" PRIu64
		",\"duplicated\":%" PRIu64 ",\"out_of_order\":%" PRIu64 ",\"p50_ms\":%.3f,"
		"\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
		"\"cpu_s\":%.3f,\"cpu_share\":%.3f,\"slow_closed\":%" PRIu64
		",\"churn_cycles\":%" PRIu64 ",\"churn_per_s\":%.1f",
		st.connected, st.failed, f->connect_per_s, st.published, st.pub_err,
		run.expected, st.received, f->deliveries_per_s, st.lost, st.duplicated,
		st.out_of_order, f->p50, f->p95, f->p99, f->p999, f->max, f->cpu_s,
		f->cpu_share, st.slow_closed, st.churn_done, f->churn_per_s);
	fprintf(o, ",\"mode\":\"%s\",\"subscribers\":%lu,\"topics\":%lu,\"slow\":%lu"
		",\"slow_connected\":%" PRIu64 ",\"slow_open\":%" PRIu64
		",\"dropped\":%" PRIu64 ",\"failed_timeout\":%" PRIu64
		",\"failed_eof\":%" PRIu64 ",\"failed_bad_head\":%" PRIu64,
		opt.churn ? "churn" : "publish", opt.churn ? 0 : opt.subs, opt.topics,
		opt.churn ? 0 : opt.slow, st.slow_connected, st.slow_open, f->dropped,
		st.fail_timeout, st.fail_eof, st.fail_badhead);
	print_fail_detail(o, true);
	fprintf(o, ",\"pub_ok\":%" PRIu64 ",\"unacked\":%" PRIu64 ",\"pub_unexpected\":%" PRIu64
		",\"publish_s\":%.3f,\"published_per_s\":%.1f,\"delivery_span_s\":%.3f"
		",\"samples\":%" PRIu64 ",\"foreign\":%" PRIu64 ",\"bad_payload\":%" PRIu64
		",\"gaps_forgotten\":%" PRIu64 ",\"wall_s\":%.3f,\"pub_failed\":%s,\"stopped\":",
		st.pub_ok, f->unacked, st.pub_unexpected, f->publish_s, f->published_per_s,
		f->delivery_span_s, lat.n, st.foreign, st.bad_payload, st.gaps_forgotten,
		f->wall_s, run.pub_failed ? "true" : "false");
	if (run.stopped)
		fprintf(o, "\"%s\"}\n", run.stopped);
	else
		fputs("null}\n", o);
}

static void report_text(const struct figures *f)
{
	FILE *o = stdout;

	if (opt.churn) {
		fprintf(o, "spout-bench churn: %lu cycles over %lu topics, %s%s\n",
			opt.churn_cycles, opt.topics, opt.http_addr, opt.http10 ? " (HTTP/1.0)" : "");
		fprintf(o, "  cycles        %" PRIu64 " done, %" PRIu64 " failed, %.1f/s\n",
			st.churn_done, st.failed, f->churn_per_s);
		if (st.failed)
			print_fail_detail(o, false);
	} else {
		fprintf(o, "spout-bench: %lu subscribers (+%lu slow) over %lu topics, "
			"http %s%s, pub %s\n", opt.subs, opt.slow, opt.topics, opt.http_addr,
			opt.http10 ? " (HTTP/1.0)" : "", opt.pub_addr);
		fprintf(o, "  subscribers   %" PRIu64 " connected, %" PRIu64 " failed, "
			"%.1f/s; %" PRIu64 " dropped mid-stream\n",
			st.connected, st.failed, f->connect_per_s, f->dropped);
		if (st.failed)
			print_fail_detail(o, false);
		fprintf(o, "  published     %" PRIu64 " events in %.3f s (%.1f/s), %" PRIu64
			" ERR replies, %" PRIu64 " unacked\n", st.published, f->publish_s,
			f->published_per_s, st.pub_err, f->unacked);
		if (pub.first_err[0])
			fprintf(o, "  first error   %s\n", pub.first_err);
		fprintf(o, "  deliveries    %" PRIu64 " expected, %" PRIu64 " received; "
			"%.1f/s while publishing; last one %.3f s after the first PUB\n",
			run.expected, st.received, f->deliveries_per_s, f->delivery_span_s);
		fprintf(o, "  check         lost %" PRIu64 ", duplicated %" PRIu64
			", out of order %" PRIu64 "", st.lost, st.duplicated, st.out_of_order);
		if (st.foreign || st.bad_payload)
			fprintf(o, ", foreign %" PRIu64 ", bad payload %" PRIu64,
				st.foreign, st.bad_payload);
		fputc('\n', o);
		fprintf(o, "  latency ms    p50 %.3f  p95 %.3f  p99 %.3f  p99.9 %.3f  max %.3f"
			"  (%" PRIu64 " samples)\n", f->p50, f->p95, f->p99, f->p999, f->max, lat.n);
		if (opt.slow)
			fprintf(o, "  slow          %" PRIu64 " connected, %" PRIu64
				" closed by the server, %" PRIu64 " still open\n",
				st.slow_connected, st.slow_closed, st.slow_open);
	}
	fprintf(o, "  tool cpu      %.3f s, %.1f%% of %.3f s wall\n",
		f->cpu_s, 100.0 * f->cpu_share, f->wall_s);
	if (!opt.churn && opt.rate > 0 && f->publish_s > 0.5 &&
	    f->published_per_s < 0.98 * opt.rate)
		fprintf(o, "  note          published %.1f/s, below -r %.1f: the tool or the "
			"publisher connection could not keep up\n", f->published_per_s, opt.rate);
	if (f->cpu_share > 0.9 && f->wall_s > 0.5)
		fprintf(o, "  note          the tool used over 90%% of a core: its figures may "
			"be its own limits; split the load over several processes\n");
	if (st.gaps_forgotten)
		fprintf(o, "  note          %" PRIu64 " sequence gaps were forgotten (more than %d "
			"open per subscriber): late arrivals in them counted as duplicates\n",
			st.gaps_forgotten, GAP_MAX);
	if (run.stopped)
		fprintf(o, "  STOPPED       by %s during the %s phase: figures are partial\n",
			run.stopped, phase_name[run.phase]);
}

/* ---------------------------------------------------------------------- */
/* Setup and main loop                                                     */

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: epoll_wait must return EINTR so the loop sees it. */
	if (sigaction(SIGINT, &sa, NULL) == -1 || sigaction(SIGTERM, &sa, NULL) == -1)
		die("sigaction: %s", strerror(errno));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		die("sigaction: %s", strerror(errno));
}

/* Raises the soft fd limit to the hard one and checks that the run fits. */
static void setup_fd_limit(void)
{
	struct rlimit rl;
	uint64_t socks = opt.churn ? (opt.concurrency < opt.churn_cycles ? opt.concurrency
									 : opt.churn_cycles)
				   : (uint64_t)opt.subs + opt.slow;
	uint64_t need = socks + FD_MARGIN;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		die("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			fprintf(stderr, "spout-bench: setrlimit(RLIMIT_NOFILE, %llu): %s\n",
				(unsigned long long)rl.rlim_max, strerror(errno));
		if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
			die("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	}
	if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
		die("need %" PRIu64 " file descriptors (%" PRIu64 " sockets + %d spare) but the "
		    "open-files limit is %llu (hard %llu); split the load over several "
		    "processes, each with its own --topic-prefix", need, socks, FD_MARGIN,
		    (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
}

static void setup_topics(void)
{
	const char *ver = opt.http10 ? "1.0" : "1.1";
	char host[300];

	topic_name = xcalloc(opt.topics, sizeof *topic_name);
	topic_len = xcalloc(opt.topics, sizeof *topic_len);
	req_buf = xcalloc(opt.topics, sizeof *req_buf);
	req_len = xcalloc(opt.topics, sizeof *req_len);
	topic_seq = xcalloc(opt.topics, sizeof *topic_seq);
	topic_err = xcalloc(opt.topics, sizeof *topic_err);
	topic_nsubs = xcalloc(opt.topics, sizeof *topic_nsubs);
	snprintf(host, sizeof host, "%s", opt.http_addr);
	for (unsigned long t = 0; t < opt.topics; t++) {
		int n = asprintf(&topic_name[t], "%s.%lu", opt.prefix, t);
		if (n == -1)
			die("out of memory");
		topic_len[t] = (uint32_t)n;
		n = asprintf(&req_buf[t], "GET /events/%s HTTP/%s\r\nHost: %s\r\n\r\n",
			     topic_name[t], ver, host);
		if (n == -1)
			die("out of memory");
		req_len[t] = (uint32_t)n;
	}
}

static void free_all(void)
{
	for (uint32_t i = 0; i < nslots; i++)
		sub_close(&subs[i]);
	for (unsigned long t = 0; t < opt.topics; t++) {
		free(topic_name[t]);
		free(req_buf[t]);
	}
	free(topic_name);
	free(topic_len);
	free(req_buf);
	free(req_len);
	free(topic_seq);
	free(topic_err);
	free(topic_nsubs);
	free(subs);
	free(free_slots);
	free(src);
	free(src_len);
	free(pub.out);
	if (pub.fd != -1)
		(void)close(pub.fd);
	(void)close(run.tfd);
	(void)close(run.ep);
}

static void dispatch(const struct epoll_event *e)
{
	uint32_t idx = (uint32_t)e->data.u64;
	uint32_t gen = (uint32_t)(e->data.u64 >> 32);

	if (idx == TAG_TIMER) {
		uint64_t ticks;
		/* Only the wakeup matters; pub_pump reads the clock itself. */
		if (read(run.tfd, &ticks, sizeof ticks) == -1 && errno != EAGAIN)
			die("timerfd read: %s", strerror(errno));
		return;
	}
	if (idx == TAG_PUB) {
		pub_event(e->events);
		return;
	}
	if (idx >= nslots)
		return;
	struct sub *s = &subs[idx];
	/* Closed (and maybe reopened) earlier in this batch. */
	if (s->gen != gen || s->fd == -1)
		return;
	/* Errors and hangups show up in the read and write paths. */
	uint32_t ev = e->events;
	if (ev & (EPOLLERR | EPOLLHUP))
		ev |= EPOLLIN | EPOLLOUT;
	sub_event(s, ev);
}

int main(int argc, char **argv)
{
	static struct epoll_event evs[MAX_EVENTS];

	parse_options(argc, argv);
	setup_fd_limit();
	setup_signals();
	setup_topics();

	run.ep = epoll_create1(EPOLL_CLOEXEC);
	if (run.ep == -1)
		die("epoll_create1: %s", strerror(errno));
	run.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (run.tfd == -1)
		die("timerfd_create: %s", strerror(errno));
	ep_ctl(EPOLL_CTL_ADD, run.tfd, EPOLLIN, TAG_TIMER);

	if (opt.churn) {
		run.total = opt.churn_cycles;
		nslots = (uint32_t)(opt.concurrency < opt.churn_cycles ? opt.concurrency
								       : opt.churn_cycles);
		free_slots = xcalloc(nslots, sizeof *free_slots);
		for (uint32_t i = 0; i < nslots; i++)
			free_slots[nfree++] = nslots - 1 - i;
		run.phase = PH_CHURN;
	} else {
		run.total = opt.subs + opt.slow;
		nslots = (uint32_t)run.total;
		run.phase = PH_CONNECT;
	}
	subs = xcalloc(nslots, sizeof *subs);
	for (uint32_t i = 0; i < nslots; i++)
		subs[i].fd = -1;

	run.cpu0 = cpu_now();
	run.t0 = now_ns();
	run.hard_deadline = run.t0 + (int64_t)(opt.max_seconds * (double)NS_PER_S);
	run.connect_deadline = run.t0 + (int64_t)opt.connect_timeout_ms * NS_PER_MS;
	run.last_progress = run.last_scan = run.t0;
	if (!opt.churn)
		pub_open();
	launch_more();

	for (;;) {
		int64_t now = now_ns();

		if (stop_signal || now >= run.hard_deadline) {
			run.stopped = stop_signal ? "signal" : "--max-seconds";
			break;
		}
		phase_step(now);
		if (run.phase == PH_REPORT)
			break;
		progress(now);

		int n = epoll_wait(run.ep, evs, MAX_EVENTS, 10);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			dispatch(&evs[i]);
			if ((i + 1) % PUMP_EVERY == 0 && run.phase == PH_PUBLISH)
				pub_pump(now_ns());
		}
		launch_more();
		pub_pump(now_ns());
	}
	run.t_end = now_ns();

	struct figures f;
	compute(&f);
	if (opt.json)
		report_json(&f);
	else
		report_text(&f);
	fflush(stdout);

	int rc = 0;
	if (run.stopped)
		rc = 3;
	else if (run.pub_failed)
		rc = 2;
	else if (opt.expect_no_loss &&
		 (st.lost || st.duplicated || st.out_of_order || st.failed || f.dropped))
		rc = 1;
	free_all();
	return rc;
}
