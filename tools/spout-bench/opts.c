/*
 * opts.c - the command line: options, per-target defaults, addresses and
 * --src-addrs. Runs once, before any process is forked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct options opt = {
	.subs = 100,
	.topics = 10,
	.churn_cycles = 1000,
	.window = 1000,
	.concurrency = 256,
	.prefix = "bench",
	.rate = 1000,
	.duration_s = 10,
	.size = 128,
	.connect_timeout_ms = 30000,
	.drain_ms = 2000,
	.slow_check_ms = 1000,
	.max_seconds = 120,
};

struct sockaddr_storage http_sa, pub_sa;
socklen_t http_salen, pub_salen;
struct sockaddr_storage *src;
socklen_t *src_len;
uint32_t nsrc;

/* What each --target talks to when the command line does not say. */
static const struct target_defaults {
	const char *name, *http_addr, *pub_addr, *sub_path, *pub_path;
} target_defaults[] = {
	[TARGET_SPOUT] = { "spout", "127.0.0.1:8080", "127.0.0.1:7400", "/events/", NULL },
	/* nchan: publisher and subscriber locations on the same nginx */
	[TARGET_NCHAN] = { "nchan", "127.0.0.1:8080", NULL, "/sub/", "/pub/" },
	[TARGET_PUSHPIN] = { "pushpin", "127.0.0.1:7999", "127.0.0.1:5561", "/stream/",
			     "/publish/" },
};

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

/* Keeps process <k>'s share of --src-addrs: a disjoint slice when there are
 * at least <parts> addresses, else one address shared round-robin. */
void src_take_share(uint32_t k, uint32_t parts)
{
	if (nsrc == 0 || parts <= 1)
		return;
	if (nsrc < parts) {
		src[0] = src[k % nsrc];
		src_len[0] = src_len[k % nsrc];
		nsrc = 1;
		return;
	}
	uint32_t lo = (uint32_t)((uint64_t)nsrc * k / parts);
	uint32_t hi = (uint32_t)((uint64_t)nsrc * (k + 1) / parts);
	memmove(src, src + lo, (hi - lo) * sizeof *src);
	memmove(src_len, src_len + lo, (hi - lo) * sizeof *src_len);
	nsrc = hi - lo;
}

static void usage(FILE *f)
{
	fputs(
"usage: spout-bench [options]\n"
"\n"
"Load generator and delivery checker for spout (and, for comparison, nchan\n"
"and Pushpin): opens SSE subscribers, publishes sequenced, timestamped\n"
"events and checks every delivery for loss, duplicates, order and latency.\n"
"See docs/spout-bench.md.\n"
"\n"
"Target\n"
"      --target T             spout (default), nchan or pushpin: sets the\n"
"                             subscribe path, the publish protocol and the\n"
"                             default addresses below\n"
"\n"
"Subscribers\n"
"  -s, --subscribers N        checked subscribers (default 100)\n"
"  -t, --topics N             topics <prefix>.0 .. <prefix>.N-1; subscriber j\n"
"                             gets topic j % N (default 10)\n"
"      --topic-prefix STR     topic name prefix, [A-Za-z0-9._-] (default bench);\n"
"                             give each concurrent run its own\n"
"      --http ADDR:PORT       the broker's HTTP address (default 127.0.0.1:8080;\n"
"                             pushpin: 127.0.0.1:7999)\n"
"      --sub-path PREFIX      subscribe with GET PREFIX<topic> (default\n"
"                             /events/; nchan /sub/; pushpin /stream/)\n"
"      --http10               send HTTP/1.0 requests (raw body, no chunking)\n"
"      --src-addrs LIST       bind each socket to the next source address of\n"
"                             LIST, round-robin, port 0; LIST is comma-separated\n"
"                             addresses and IPv4 ranges (127.0.0.2-127.0.0.40)\n"
"      --connect-concurrency N\n"
"                             connections at most between connect() and their\n"
"                             200 head, over all processes (default 256)\n"
"      --connect-timeout MS   budget of the whole connect phase; subscribers\n"
"                             without a 200 head by then fail (default 30000);\n"
"                             with --churn: budget of each cycle\n"
"\n"
"Publishing\n"
"      --pub ADDR:PORT        where to publish (default: spout 127.0.0.1:7400,\n"
"                             line protocol; nchan the --http address; pushpin\n"
"                             127.0.0.1:5561, its HTTP control API)\n"
"      --pub-path PREFIX      nchan: POST PREFIX<topic> (default /pub/);\n"
"                             pushpin: POST PREFIX (default /publish/)\n"
"      --pub-conns K          nchan, pushpin: keep-alive HTTP connections, one\n"
"                             request in flight on each (default 8)\n"
"      --unordered-pub        nchan, pushpin: let one topic have several\n"
"                             requests in flight (the broker may reorder them);\n"
"                             by default a topic waits for its previous reply\n"
"  -r, --rate R               events/s over all topics, round-robin (default\n"
"                             1000); 0 = as fast as --window or --pub-conns allow\n"
"  -d, --duration SEC         publish for SEC seconds (default 10; fractions ok)\n"
"  -n, --events N             publish exactly N events instead of -d\n"
"      --size BYTES           payload bytes: \"<seq>:<send_ns>:\" padded with 'x'\n"
"                             (default 128, at most 1048576)\n"
"      --window N             spout, with -r 0: PUBs in flight without an OK/ERR\n"
"                             reply (default 1000)\n"
"      --settle-ms MS         wait MS after the connect phase before publishing\n"
"                             (default 0)\n"
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
"      --procs N              subscriber processes: 1 = one process does it\n"
"                             all; N >= 2 = N children hold the subscribers,\n"
"                             the parent publishes and merges the results;\n"
"                             0 = the fewest the open-files limit allows\n"
"                             (default 0)\n"
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
"enough file descriptors, the publisher failed, or a subscriber process\n"
"died; 3 stopped by --max-seconds or a signal.\n", f);
}

enum {
	O_PREFIX = 256, O_HTTP, O_PUB, O_HTTP10, O_SRC, O_CONC, O_CTIMEOUT, O_SIZE,
	O_WINDOW, O_DRAIN, O_SLOW, O_SLOW_RCVBUF, O_SLOW_CHECK, O_CHURN,
	O_CHURN_CYCLES, O_MAXSEC, O_EXPECT, O_JSON, O_TARGET, O_SUB_PATH, O_PUB_PATH,
	O_PUB_CONNS, O_UNORDERED, O_SETTLE, O_PROCS,
};

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
	{ "target", required_argument, NULL, O_TARGET },
	{ "sub-path", required_argument, NULL, O_SUB_PATH },
	{ "pub-path", required_argument, NULL, O_PUB_PATH },
	{ "pub-conns", required_argument, NULL, O_PUB_CONNS },
	{ "unordered-pub", no_argument, NULL, O_UNORDERED },
	{ "settle-ms", required_argument, NULL, O_SETTLE },
	{ "procs", required_argument, NULL, O_PROCS },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static enum target parse_target(const char *s)
{
	for (unsigned i = 0; i < sizeof target_defaults / sizeof target_defaults[0]; i++)
		if (strcmp(s, target_defaults[i].name) == 0)
			return (enum target)i;
	die("--target: expected spout, nchan or pushpin, got '%s'", s);
}

/* A path prefix goes into the request line as is: no spaces or controls. */
static void check_path(const char *p, const char *name)
{
	size_t n = strlen(p);

	if (n == 0 || p[0] != '/' || n > PATH_MAX_OPT)
		die("%s: must start with '/' and be at most %d bytes", name, PATH_MAX_OPT);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f)
			die("%s: spaces and control characters are not allowed", name);
}

static void check_prefix(void)
{
	size_t pl = strlen(opt.prefix);

	if (pl == 0 || pl + 1 + 8 > TOPIC_MAX)
		die("--topic-prefix: must be 1..%d bytes", TOPIC_MAX - 9);
	for (size_t i = 0; i < pl; i++) {
		char ch = opt.prefix[i];
		/* These need no percent-encoding in a path, nor escaping in JSON. */
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			die("--topic-prefix: '%c' not allowed (use [A-Za-z0-9._-])", ch);
	}
}

void parse_options(int argc, char **argv)
{
	/* Far above anything one process can hold; keeps products in range. */
	const unsigned long big = 10000000;
	bool conns_given = false;
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
		case O_TARGET: opt.target = parse_target(optarg); break;
		case O_SUB_PATH: opt.sub_path = optarg; break;
		case O_PUB_PATH: opt.pub_path = optarg; break;
		case O_PUB_CONNS:
			opt.pub_conns = parse_ulong(optarg, "--pub-conns", 1, PUB_CONNS_MAX);
			conns_given = true;
			break;
		case O_UNORDERED: opt.unordered_pub = true; break;
		case O_SETTLE: opt.settle_ms = parse_ulong(optarg, "--settle-ms", 0, 86400000); break;
		case O_PROCS: opt.procs = parse_ulong(optarg, "--procs", 0, PROCS_MAX); break;
		case 'v': opt.verbose = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);

	const struct target_defaults *td = &target_defaults[opt.target];
	opt.target_name = td->name;
	if (!opt.http_addr)
		opt.http_addr = td->http_addr;
	if (!opt.pub_addr)
		opt.pub_addr = td->pub_addr ? td->pub_addr : opt.http_addr;
	if (!opt.sub_path)
		opt.sub_path = td->sub_path;
	if (opt.target == TARGET_SPOUT) {
		if (conns_given && opt.pub_conns != 1)
			die("--pub-conns: only for --target nchan or pushpin (spout's "
			    "publisher is one pipelined connection)");
		if (opt.pub_path)
			die("--pub-path: only for --target nchan or pushpin");
		opt.pub_conns = 1;
	} else {
		if (!opt.pub_path)
			opt.pub_path = td->pub_path;
		if (!conns_given)
			opt.pub_conns = 8;
		check_path(opt.pub_path, "--pub-path");
	}
	check_path(opt.sub_path, "--sub-path");
	check_prefix();
	parse_hostport(opt.http_addr, "--http", &http_sa, &http_salen);
	if (!opt.churn)
		parse_hostport(opt.pub_addr, "--pub", &pub_sa, &pub_salen);
	if (opt.src_spec)
		parse_src_addrs(opt.src_spec);
}
