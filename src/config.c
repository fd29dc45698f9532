/*
 * config.c - flags, SPOUT_* environment variables and defaults.
 *
 * One table describes every option: its flag, its environment variable
 * (derived: "--write-timeout-ms" -> SPOUT_WRITE_TIMEOUT_MS), its default and
 * how to parse it, so --help, the environment and argv cannot drift apart.
 * Runs on the main thread before any other thread exists.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "spout/config.h"
#include "spout/http.h"
#include "spout/ptrie.h"

enum opt_kind { OPT_ADDR, OPT_U32, OPT_OVERFLOW, OPT_STR, OPT_LEVEL, OPT_U64, OPT_IO,
		OPT_POLICY, OPT_TOPIC_METRICS, OPT_BOOL, OPT_REDIS, OPT_PREFIX, OPT_TOKEN,
		OPT_PATH, OPT_AUTH, OPT_PUBLIC, OPT_CIDRS };

struct opt {
	const char *flag;           /* without the leading "--" */
	enum opt_kind kind;
	size_t off;                 /* offset of the field in sp_config */
	uint64_t min, max;          /* numeric bounds; OPT_STR: max = field size */
	const char *def;            /* default, as text */
	const char *help;
};

#define OFF(f) offsetof(struct sp_config, f)

static const struct opt opts[] = {
	{ "http", OPT_ADDR, OFF(http), 0, 0, "0.0.0.0:8080",
	  "HTTP (SSE subscribe) listen address" },
	{ "pub", OPT_ADDR, OFF(pub), 0, 0, "127.0.0.1:7400",
	  "publisher line-protocol listen address" },
	{ "pub-token", OPT_TOKEN, OFF(pub_token), 0, 0, "",
	  "publishers must send AUTH <token> first (1..256 bytes of 0x21-0x7E); prefer "
	  "--pub-token-file, which keeps it out of ps and /proc" },
	{ "pub-token-file", OPT_PATH, OFF(pub_token_file), 0, 0, "",
	  "read the publisher token from the first line of this file" },
	{ "pub-insecure", OPT_BOOL, OFF(pub_insecure), 0, 0, "no",
	  "allow --pub on a non-loopback address without a token (anyone who can reach "
	  "it can publish)" },
	{ "pub-idle-timeout-ms", OPT_U32, OFF(pub_idle_timeout_ms), 0, 86400000, "300000",
	  "close a publisher connection that sends nothing this long (PING keeps it open; "
	  "before AUTH, --header-timeout-ms applies); 0 = never" },
	{ "pub-max-rate", OPT_U32, OFF(pub_max_rate), 0, 100000000, "0",
	  "events per second one publisher connection may publish (bursts of one second's "
	  "worth); past it `ERR rate limit`; 0 = no cap" },
	{ "pub-max-conns", OPT_U32, OFF(pub_max_conns), 1, 1000000, "1024",
	  "publisher connections open at once; past it `ERR too many publisher connections`" },
	{ "http-publish", OPT_BOOL, OFF(http_publish), 0, 0, "no",
	  "also accept POST /publish/<topic> on --http (same token, limits and ids as the "
	  "line protocol); off a loopback --http it needs --pub-token or --pub-insecure" },
	{ "publish-dedup-s", OPT_U32, OFF(publish_dedup_s), 0, 86400, "600",
	  "how long POST /publish remembers an idempotency key (?id= or Idempotency-Key), "
	  "answering a retry with the first id instead of publishing twice; 0 = keys refused" },
	{ "dashboard", OPT_BOOL, OFF(dashboard), 0, 0, "yes",
	  "serve the live dashboard at GET /dashboard (operational data, like /metrics: "
	  "keep both away from the public side of a load balancer)" },
	{ "auth", OPT_AUTH, OFF(auth_mode), 0, 0, "auto",
	  "subscriber auth: off | optional (token checked if sent; without one, public "
	  "topics only) | required; auto = required when a JWT key is set, else off" },
	{ "jwt-secret", OPT_STR, OFF(jwt_secret), 0, SP_JWT_SECRET_MAX, "",
	  "HS256/384/512 key, at least 32 bytes; prefer --jwt-secret-file (ps, /proc)" },
	{ "jwt-secret-file", OPT_PATH, OFF(jwt_secret_file), 0, 0, "",
	  "read the HS* key from this file (one trailing line break is not part of it)" },
	{ "jwt-public-key", OPT_PATH, OFF(jwt_public_key), 0, 0, "",
	  "PEM public key file: RSA for RS256/384/512, EC P-256/P-384 for ES256/384" },
	{ "jwt-topics-claim", OPT_STR, OFF(jwt_topics_claim), 0, SP_JWT_NAME_MAX, "topics",
	  "claim with the topic patterns a token grants (JSON array, or space-separated)" },
	{ "jwt-cookie", OPT_STR, OFF(jwt_cookie), 0, SP_JWT_NAME_MAX, "",
	  "also take the token from this cookie (after Authorization, before ?token=)" },
	{ "jwt-audience", OPT_STR, OFF(jwt_audience), 0, SP_JWT_TEXT_MAX, "",
	  "require this value in the token's aud claim; empty = not checked" },
	{ "jwt-issuer", OPT_STR, OFF(jwt_issuer), 0, SP_JWT_TEXT_MAX, "",
	  "require this iss claim; empty = not checked" },
	{ "jwt-leeway-s", OPT_U32, OFF(jwt_leeway_s), 0, 3600, "5",
	  "clock skew allowed when checking exp and nbf, seconds" },
	{ "public-topics", OPT_PUBLIC, OFF(public_topics), 0, 0, "",
	  "PATTERN, repeatable (env: comma-separated): topics any valid token may read, "
	  "and with --auth optional anyone" },
	{ "trusted-proxy", OPT_CIDRS, OFF(trusted_proxies), 0, 0, "",
	  "ADDR[/BITS], repeatable (env: comma-separated): load balancers whose PROXY "
	  "header or X-Forwarded-For names the client" },
	{ "proxy-protocol", OPT_BOOL, OFF(proxy_protocol), 0, 0, "no",
	  "connections from --trusted-proxy start with a PROXY v1/v2 header (else their "
	  "X-Forwarded-For is read)" },
	{ "max-conns-per-ip", OPT_U32, OFF(max_conns_per_ip), 0, 100000000, "1024",
	  "HTTP connections open per client address (IPv6: per /64); 429 past it; 0 = no cap" },
	{ "max-request-bytes", OPT_U32, OFF(max_request_bytes), 1024, SP_HTTP_HEAD_MAX, "8192",
	  "largest request head (request line + headers), bytes; 431 past it" },
	{ "max-headers", OPT_U32, OFF(max_headers), 4, 1000, "64",
	  "most header fields in one request; 431 past it" },
	{ "workers", OPT_U32, OFF(workers), 0, SP_WORKERS_MAX, "0",
	  "worker threads; 0 = CPUs this process may use (affinity, cgroup quota)" },
	{ "queue", OPT_U32, OFF(queue_events), 1, 1u << 20, "512",
	  "per-connection out-queue bound, in events" },
	{ "queue-bytes", OPT_U64, OFF(queue_bytes), 4096, 1ull << 32, "1048576",
	  "per-connection out-queue bound, in bytes" },
	{ "overflow", OPT_OVERFLOW, OFF(overflow), 0, 0, "disconnect",
	  "what a full out-queue does: disconnect | drop-oldest | latest" },
	{ "policy", OPT_POLICY, OFF(policies), 0, 0, "",
	  "PATTERN=POLICY, repeatable (env: comma-separated): overflow policy for "
	  "matching topics, first match wins, e.g. 'prices.>=latest'" },
	{ "sndbuf", OPT_U32, OFF(sndbuf), 0, 16u << 20, "65536",
	  "SO_SNDBUF of SSE sockets, bytes (the kernel doubles it); bounds kernel memory "
	  "per slow client; 0 = kernel autotuning (up to net.ipv4.tcp_wmem max)" },
	{ "write-timeout-ms", OPT_U32, OFF(write_timeout_ms), 10, 3600000, "10000",
	  "close a connection whose pending writes make no progress this long" },
	{ "heartbeat-ms", OPT_U32, OFF(heartbeat_ms), 10, 3600000, "15000",
	  "send a comment line to streams idle this long" },
	{ "header-timeout-ms", OPT_U32, OFF(header_timeout_ms), 10, 600000, "5000",
	  "408 and close a request head not complete within this time" },
	{ "max-conns", OPT_U32, OFF(max_conns), 0, 100000000, "0",
	  "HTTP connections open at once (503 past it); 0 = open-files limit - (64 + 4 per worker)" },
	{ "max-topics", OPT_U32, OFF(max_topics), 1, 64, "16",
	  "topics one SSE connection may subscribe to" },
	{ "max-line", OPT_U32, OFF(max_line), 64, 16u << 20, "65536",
	  "longest publisher command line, in bytes" },
	{ "max-payload", OPT_U32, OFF(max_payload), 1, 16u << 20, "65536",
	  "largest event payload, in bytes" },
	{ "history", OPT_U32, OFF(history), 0, 1u << 20, "100",
	  "events kept per topic for Last-Event-ID resumption; 0 = off" },
	{ "history-ttl", OPT_U32, OFF(history_ttl_s), 0, 31536000, "3600",
	  "seconds an event stays in history; 0 = no age limit" },
	{ "history-bytes", OPT_U64, OFF(history_bytes), 0, 1ull << 40, "0",
	  "memory all history may use (frames + bookkeeping), bytes; "
	  "0 = 64 MiB, or 1/8 of the cgroup memory limit if that is less" },
	{ "retry-ms", OPT_U32, OFF(retry_ms), 0, 3600000, "3000",
	  "reconnect delay sent as retry: (plus up to 50% per-connection jitter); 0 = none" },
	{ "topic-metrics", OPT_TOPIC_METRICS, OFF(topic_metrics), 0, 0, "",
	  "PATTERN, repeatable (env: comma-separated): count publishes per topic for "
	  "matching topics in /metrics (opt-in, bounded by --topic-metrics-max)" },
	{ "topic-metrics-max", OPT_U32, OFF(topic_metrics_max), 1, 10000, "100",
	  "most topics with their own series; later ones are counted as overflow" },
	{ "drain-ms", OPT_U32, OFF(drain_ms), 0, 600000, "10000",
	  "on SIGTERM, close streams spread over this long (readyz 503 at once); 0 = at once" },
	{ "max-accept-rate", OPT_U32, OFF(max_accept_rate), 0, 10000000, "0",
	  "new HTTP connections per second; past it 503 + jittered Retry-After; 0 = no cap" },
	{ "storm-threshold", OPT_U32, OFF(storm_threshold), 0, 10000000, "200",
	  "reconnects (requests with Last-Event-ID) per second, over 10 s, that signal a storm" },
	{ "memory-high-pct", OPT_U32, OFF(memory_high_pct), 10, 100, "90",
	  "refuse new connections (503) above this % of the cgroup memory limit" },
	{ "ring-size", OPT_U32, OFF(ring_size), 16, 1u << 22, "16384",
	  "router->worker frame ring slots (power of two); a full ring pauses publishers" },
	{ "cors-origin", OPT_STR, OFF(cors_origin), 0, 256, "",
	  "Access-Control-Allow-Origin value (\"*\" or an origin); empty = no CORS" },
	{ "log-level", OPT_LEVEL, OFF(log_level), 0, 0, "info",
	  "debug | info | warn | error" },
	{ "redis", OPT_REDIS, OFF(redis), 0, 0, "",
	  "cluster mode: the Redis backplane, HOST:PORT or redis://[:PASSWORD@]HOST[:PORT][/DB]; "
	  "empty = a single node on its own (docs/cluster.md)" },
	{ "redis-prefix", OPT_PREFIX, OFF(redis_prefix), 0, 0, "spout",
	  "prefix of every Redis key and channel ([A-Za-z0-9_.:-], 1..64 bytes): one per cluster" },
	{ "redis-timeout-ms", OPT_U32, OFF(redis_timeout_ms), 50, 600000, "2000",
	  "a Redis connect or command outstanding this long declares the link down (reconnect)" },
	{ "redis-probe-ms", OPT_U32, OFF(redis_probe_ms), 10, 600000, "1000",
	  "period of the heartbeat each node sends itself through Redis; none back within "
	  "max(3 periods, --redis-timeout-ms) = stalled, not ready" },
	{ "ready-without-redis", OPT_BOOL, OFF(ready_without_redis), 0, 0, "no",
	  "answer /readyz 200 \"degraded\" while the backplane is down (default: 503)" },
	{ "io", OPT_IO, OFF(io), 0, 0, "auto",
	  "I/O: auto = wait on epoll, batch each loop's socket writes into one io_uring "
	  "submit when this build and kernel allow it (else writev); epoll = epoll + writev; "
	  "uring = io_uring for waiting too (multishot poll; needs a liburing build)" },
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

int sp_addr_parse(const char *s, struct sp_addr *a)
{
	char host[128];
	const char *port;
	size_t hl;

	if (strlen(s) >= sizeof(a->text))
		return -EINVAL;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return -EINVAL;
		hl = (size_t)(end - s - 1);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hl);
		port = end + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon == NULL)
			return -EINVAL;
		hl = (size_t)(colon - s);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, hl);
		port = colon + 1;
	}
	host[hl] = '\0';
	char *end;
	errno = 0;
	unsigned long p = strtoul(port, &end, 10);
	if (*port == '\0' || *end != '\0' || errno != 0 || p > 65535)
		return -EINVAL;

	struct addrinfo hints = { .ai_flags = AI_NUMERICSERV | AI_PASSIVE,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	if (getaddrinfo(hl ? host : NULL, port, &hints, &res) != 0 || res == NULL)
		return -EINVAL;
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	strcpy(a->text, s);
	return 0;
}

static int parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out);

/* Percent-decode a URL's password in place; -EINVAL on a bad escape. */
static int url_unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (*s != '%') {
			*o++ = *s;
			continue;
		}
		if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
			return -EINVAL;
		char hex[3] = { s[1], s[2], 0 };
		*o = (char)strtoul(hex, NULL, 16);
		if (*o++ == '\0')
			return -EINVAL;
		s += 2;
	}
	*o = '\0';
	return 0;
}

int sp_redis_url_parse(const char *s, struct sp_redis_url *u)
{
	char buf[sizeof(u->text)];
	uint64_t n;

	memset(u, 0, sizeof(*u));
	if (s[0] == '\0')
		return 0;                      /* cluster mode off */
	if (strlen(s) >= sizeof(buf) || strpbrk(s, " \t\r\n") != NULL)
		return -EINVAL;
	strcpy(buf, s);
	u->port = 6379;
	char *hostport = buf;
	bool url = strncmp(buf, "redis://", 8) == 0;
	if (url) {
		hostport = buf + 8;
		char *slash = strchr(hostport, '/');
		if (slash != NULL) {
			*slash = '\0';
			if (slash[1] != '\0') {
				if (parse_u64(slash + 1, 0, 1000000, &n) != 0)
					return -EINVAL;
				u->db = (unsigned)n;
			}
		}
		char *at = strrchr(hostport, '@');
		if (at != NULL) {
			*at = '\0';
			/* redis://:pw@h (legacy) or redis://user:pw@h: the
			 * password is after the first ':'; users need ACLs
			 * (Redis 6) and are not supported by this client. */
			char *colon = strchr(hostport, ':');
			if (colon == NULL || colon != hostport)
				return -EINVAL;
			if (strlen(colon + 1) >= sizeof(u->password))
				return -EINVAL;
			strcpy(u->password, colon + 1);
			if (url_unescape(u->password) != 0 || u->password[0] == '\0')
				return -EINVAL;
			hostport = at + 1;
		}
	}
	char *port = NULL;
	if (hostport[0] == '[') {
		char *end = strchr(hostport, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return -EINVAL;
		*end = '\0';
		port = end[1] == ':' ? end + 2 : NULL;
		hostport++;
	} else {
		char *colon = strrchr(hostport, ':');
		if (colon != NULL) {
			*colon = '\0';
			port = colon + 1;
		} else if (!url) {
			return -EINVAL;             /* plain form: HOST:PORT */
		}
	}
	if (hostport[0] == '\0' || strlen(hostport) >= sizeof(u->host) ||
	    strpbrk(hostport, "/@?#") != NULL)
		return -EINVAL;
	strcpy(u->host, hostport);
	if (port != NULL) {
		if (parse_u64(port, 1, 65535, &n) != 0)
			return -EINVAL;
		u->port = (unsigned)n;
	}
	/* For logs: the URL with the password masked. */
	if (u->password[0] != '\0')
		snprintf(u->text, sizeof(u->text), "redis://:***@%s:%u/%u", u->host, u->port, u->db);
	else
		snprintf(u->text, sizeof(u->text), "%s:%u/%u", u->host, u->port, u->db);
	return 0;
}

static int parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)v[0]))
		return -EINVAL;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (*end != '\0' || errno != 0 || n < min || n > max)
		return -EINVAL;
	*out = n;
	return 0;
}

static int parse_overflow(const char *v, enum sp_overflow *out)
{
	static const char *const names[] = { "disconnect", "drop-oldest", "latest" };

	for (int i = 0; i < 3; i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = (enum sp_overflow)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Call <add> for each item of a comma-separated list (flag values of the
 * repeatable options; in the environment they come comma-separated). */
static int each_item(struct sp_config *cfg, const char *v, const char *source, const char *flag,
		     FILE *err, int (*add)(struct sp_config *, char *, const char *, FILE *))
{
	char buf[1024];

	if (strlen(v) >= sizeof(buf)) {
		fprintf(err, "spoutd: %s %s: value too long\n", source, flag);
		return -EINVAL;
	}
	strcpy(buf, v);
	for (char *save = NULL, *item = strtok_r(buf, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save))
		if (add(cfg, item, source, err) != 0)
			return -EINVAL;
	return 0;
}

/* PATTERN=POLICY, appended in order (first match wins). */
static int add_policy(struct sp_config *cfg, char *rule, const char *source, FILE *err)
{
	char *eq = strrchr(rule, '=');
	struct sp_policy_rule *r = &cfg->policies[cfg->npolicies];

	if (cfg->npolicies == SP_POLICIES_MAX) {
		fprintf(err, "spoutd: %s policy: more than %d rules\n", source, SP_POLICIES_MAX);
		return -EINVAL;
	}
	if (eq == NULL || parse_overflow(eq + 1, &r->policy) != 0) {
		fprintf(err, "spoutd: %s policy: '%s' is not PATTERN=disconnect|drop-oldest|latest\n",
			source, rule);
		return -EINVAL;
	}
	*eq = '\0';
	const char *why = sp_pattern_check(rule, strlen(rule));
	if (why != NULL) {
		fprintf(err, "spoutd: %s policy: '%s': %s\n", source, rule, why);
		return -EINVAL;
	}
	strcpy(r->pattern, rule);
	cfg->npolicies++;
	return 0;
}

/* Append pattern <p> to a list of SP_POLICIES_MAX (--topic-metrics,
 * --public-topics). */
static int add_pattern(char (*list)[129], unsigned *n, const char *flag, char *p,
		       const char *source, FILE *err)
{
	const char *why = sp_pattern_check(p, strlen(p));

	if (why != NULL || *n == SP_POLICIES_MAX) {
		fprintf(err, "spoutd: %s %s: '%s': %s\n", source, flag, p,
			why ? why : "too many patterns");
		return -EINVAL;
	}
	strcpy(list[(*n)++], p);
	return 0;
}

static int add_topic_metric(struct sp_config *cfg, char *p, const char *source, FILE *err)
{
	return add_pattern(cfg->topic_metrics, &cfg->ntopic_metrics, "topic-metrics", p, source, err);
}

static int add_public_topic(struct sp_config *cfg, char *p, const char *source, FILE *err)
{
	return add_pattern(cfg->public_topics, &cfg->npublic_topics, "public-topics", p, source, err);
}

/* A --trusted-proxy address or range. */
static int add_trusted_proxy(struct sp_config *cfg, char *p, const char *source, FILE *err)
{
	if (cfg->ntrusted_proxies == SP_CIDR_MAX ||
	    sp_cidr_parse(p, &cfg->trusted_proxies[cfg->ntrusted_proxies]) != 0) {
		fprintf(err, "spoutd: %s trusted-proxy: '%s': %s\n", source, p,
			cfg->ntrusted_proxies == SP_CIDR_MAX ? "too many entries"
							     : "not ADDR or ADDR/BITS");
		return -EINVAL;
	}
	cfg->ntrusted_proxies++;
	return 0;
}

bool sp_config_topic_metrics_for(const struct sp_config *cfg, const char *topic, size_t len)
{
	for (unsigned i = 0; i < cfg->ntopic_metrics; i++)
		if (sp_pattern_match(cfg->topic_metrics[i], strlen(cfg->topic_metrics[i]), topic, len))
			return true;
	return false;
}

int sp_config_overflow_for(const struct sp_config *cfg, const char *topic, size_t len)
{
	for (unsigned i = 0; i < cfg->npolicies; i++) {
		const struct sp_policy_rule *r = &cfg->policies[i];
		if (sp_pattern_match(r->pattern, strlen(r->pattern), topic, len))
			return (int)r->policy;
	}
	return (int)cfg->overflow;
}

static int set_opt(struct sp_config *cfg, const struct opt *o, const char *v,
		   const char *source, FILE *err)
{
	void *field = (char *)cfg + o->off;
	uint64_t n;

	switch (o->kind) {
	case OPT_ADDR:
		if (sp_addr_parse(v, field) == 0)
			return 0;
		fprintf(err, "spoutd: %s %s: '%s' is not HOST:PORT\n", source,
			o->flag, v);
		return -EINVAL;
	case OPT_U32:
	case OPT_U64:
		if (parse_u64(v, o->min, o->max, &n) == 0) {
			if (o->kind == OPT_U32)
				*(uint32_t *)field = (uint32_t)n;
			else
				*(uint64_t *)field = n;
			return 0;
		}
		fprintf(err, "spoutd: %s %s: '%s' is not a whole number in %llu..%llu\n",
			source, o->flag, v, (unsigned long long)o->min,
			(unsigned long long)o->max);
		return -EINVAL;
	case OPT_OVERFLOW:
		if (parse_overflow(v, field) == 0)
			return 0;
		fprintf(err, "spoutd: %s %s: '%s' is not disconnect, drop-oldest or latest\n",
			source, o->flag, v);
		return -EINVAL;
	case OPT_POLICY:
		return each_item(cfg, v, source, o->flag, err, add_policy);
	case OPT_TOPIC_METRICS:
		return each_item(cfg, v, source, o->flag, err, add_topic_metric);
	case OPT_STR:
		if (strlen(v) < o->max && strpbrk(v, "\r\n") == NULL) {
			strcpy(field, v);
			return 0;
		}
		fprintf(err, "spoutd: %s %s: value too long or has a line break\n",
			source, o->flag);
		return -EINVAL;
	case OPT_BOOL:
		if (strcmp(v, "yes") == 0 || strcmp(v, "1") == 0 || strcmp(v, "true") == 0) {
			*(bool *)field = true;
			return 0;
		}
		if (strcmp(v, "no") == 0 || strcmp(v, "0") == 0 || strcmp(v, "false") == 0) {
			*(bool *)field = false;
			return 0;
		}
		fprintf(err, "spoutd: %s %s: '%s' is not yes or no\n", source, o->flag, v);
		return -EINVAL;
	case OPT_REDIS:
		if (sp_redis_url_parse(v, field) == 0)
			return 0;
		fprintf(err, "spoutd: %s %s: '%s' is not HOST:PORT or "
			"redis://[:PASSWORD@]HOST[:PORT][/DB]\n", source, o->flag, v);
		return -EINVAL;
	case OPT_PREFIX:
		if (v[0] != '\0' && strlen(v) <= SP_REDIS_PREFIX_MAX &&
		    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") ==
		    strlen(v)) {
			strcpy(field, v);
			return 0;
		}
		fprintf(err, "spoutd: %s %s: '%s' must be 1..%d bytes of [A-Za-z0-9_.:-]\n",
			source, o->flag, v, SP_REDIS_PREFIX_MAX);
		return -EINVAL;
	case OPT_TOKEN:
		if (v[0] == '\0' || sp_token_valid(v, strlen(v))) {
			strcpy(field, v);
			return 0;
		}
		fprintf(err, "spoutd: %s %s: must be 1..%d bytes of printable ASCII without spaces\n",
			source, o->flag, SP_TOKEN_MAX);
		return -EINVAL;
	case OPT_PATH:
		if (strlen(v) < SP_PATH_MAX) {
			strcpy(field, v);
			return 0;
		}
		fprintf(err, "spoutd: %s %s: path longer than %d bytes\n", source, o->flag,
			SP_PATH_MAX - 1);
		return -EINVAL;
	case OPT_AUTH:
		for (int i = 0; i < 4; i++) {
			static const char *const names[] = { "auto", "off", "optional", "required" };
			if (strcmp(v, names[i]) == 0) {
				*(enum sp_auth_mode *)field = (enum sp_auth_mode)i;
				return 0;
			}
		}
		fprintf(err, "spoutd: %s %s: '%s' is not off, optional, required or auto\n",
			source, o->flag, v);
		return -EINVAL;
	case OPT_PUBLIC:
		return each_item(cfg, v, source, o->flag, err, add_public_topic);
	case OPT_CIDRS:
		return each_item(cfg, v, source, o->flag, err, add_trusted_proxy);
	case OPT_LEVEL:
		if (sp_log_parse_level(v, field) == 0)
			return 0;
		fprintf(err, "spoutd: %s %s: '%s' is not debug|info|warn|error\n",
			source, o->flag, v);
		return -EINVAL;
	case OPT_IO:
		/* Availability is main's check (sp_ev_set_backend), not ours. */
		if (strcmp(v, "auto") == 0) {
			*(enum sp_io *)field = SP_IO_AUTO;
			return 0;
		}
		if (strcmp(v, "epoll") == 0) {
			*(enum sp_io *)field = SP_IO_EPOLL;
			return 0;
		}
		if (strcmp(v, "uring") == 0) {
			*(enum sp_io *)field = SP_IO_URING;
			return 0;
		}
		fprintf(err, "spoutd: %s %s: '%s' is not auto, epoll or uring\n",
			source, o->flag, v);
		return -EINVAL;
	}
	return -EINVAL;
}

/* "write-timeout-ms" -> "SPOUT_WRITE_TIMEOUT_MS" */
static void env_name(const char *flag, char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "SPOUT_");
	for (; *flag && n + 1 < cap; flag++)
		out[n++] = *flag == '-' ? '_' : (char)toupper((unsigned char)*flag);
	out[n] = '\0';
}

/* A SPOUT_* variable no option reads is a typo or a setting this version
 * does not have (e.g. one from a newer release): warn, so it is not
 * silently ignored, but keep running - the environment is often shared
 * by several versions during a rollout. */
static void warn_unknown_env(FILE *err)
{
	extern char **environ;
	char env[64];

	for (char **e = environ; e != NULL && *e != NULL; e++) {
		const char *eq = strchr(*e, '=');
		if (strncmp(*e, "SPOUT_", 6) != 0 || eq == NULL)
			continue;
		size_t n = (size_t)(eq - *e);
		/* the command-line clients' own variables (spout-sub(1)), and
		 * the test runner's; SPOUT_PUB_TOKEN[_FILE] is both spoutd's
		 * and spout-pub's */
		static const char *const clients[] = { "SPOUT_SUB_TOKEN", "SPOUT_SUB_TOKEN_FILE",
							"SPOUT_PUB_BIN", "SPOUT_SUB_BIN",
							"SPOUT_BENCH" };
		bool known = false;
		for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]) && !known; i++)
			known = strlen(clients[i]) == n && strncmp(clients[i], *e, n) == 0;
		for (size_t i = 0; i < NOPTS && !known; i++) {
			env_name(opts[i].flag, env, sizeof(env));
			known = strlen(env) == n && strncmp(env, *e, n) == 0;
		}
		if (!known)
			fprintf(err, "spoutd: warning: environment variable %.*s is not a spoutd "
				"setting; ignored (see --help)\n", (int)n, *e);
	}
}

void sp_config_usage(FILE *out)
{
	char env[64];

	fprintf(out,
		"usage: spoutd [options]\n"
		"spout %s - server-sent-events fan-out broker\n\n"
		"Every option can also be set by the environment variable shown;\n"
		"a flag wins over the environment, except the repeatable --policy,\n"
		"--topic-metrics, --public-topics and --trusted-proxy, whose environment\n"
		"entries come first and flags add to them.\n\n",
		SP_VERSION);
	for (size_t i = 0; i < NOPTS; i++) {
		env_name(opts[i].flag, env, sizeof(env));
		fprintf(out, "  --%-20s %s\n  %-22s (env %s, default \"%s\")\n",
			opts[i].flag, opts[i].help, "", env, opts[i].def);
	}
	fprintf(out, "  --%-20s %s\n  --%-20s %s\n", "help", "show this and exit",
		"version", "print the version and exit");
}

bool sp_token_valid(const char *s, size_t len)
{
	if (len == 0 || len > SP_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static bool addr_is_loopback(const struct sp_addr *a)
{
	struct sp_ipaddr ip;

	return sp_ipaddr_from_sockaddr((const struct sockaddr *)&a->ss, &ip) == 0 &&
	       sp_ipaddr_is_loopback(&ip);
}

/* Settings that only make sense together. */
static int check_subscriber_security(const struct sp_config *cfg, FILE *err)
{
	const char *c = cfg->jwt_cookie;

	if (c[0] != '\0' && strspn(c, "!#$%&'*+-.^_`|~0123456789"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != strlen(c)) {
		fprintf(err, "spoutd: jwt-cookie: '%s' is not a cookie name\n", c);
		return -EINVAL;
	}
	if (cfg->jwt_topics_claim[0] == '\0') {
		fprintf(err, "spoutd: jwt-topics-claim: must not be empty\n");
		return -EINVAL;
	}
	if (cfg->proxy_protocol && cfg->ntrusted_proxies == 0) {
		fprintf(err, "spoutd: proxy-protocol: needs --trusted-proxy (the load balancers "
			"that send the header)\n");
		return -EINVAL;
	}
	return 0;
}

/* --pub-token-file, then the rule that keeps an open publisher port off
 * the network by accident: a non-loopback --pub needs a token, or an
 * explicit --pub-insecure. */
static int check_pub_security(struct sp_config *cfg, FILE *err)
{
	if (cfg->pub_token_file[0] != '\0') {
		if (cfg->pub_token[0] != '\0') {
			fprintf(err, "spoutd: pub-token and pub-token-file: give one, not both\n");
			return -EINVAL;
		}
		FILE *f = fopen(cfg->pub_token_file, "r");
		char line[SP_TOKEN_MAX + 3];
		if (f == NULL) {
			fprintf(err, "spoutd: pub-token-file %s: %s\n", cfg->pub_token_file,
				strerror(errno));
			return -EINVAL;
		}
		bool ok = fgets(line, sizeof(line), f) != NULL;
		fclose(f);
		size_t n = ok ? strcspn(line, "\r\n") : 0;
		if (!ok || !sp_token_valid(line, n)) {
			fprintf(err, "spoutd: pub-token-file %s: the first line must be the token, "
				"1..%d bytes of printable ASCII without spaces\n",
				cfg->pub_token_file, SP_TOKEN_MAX);
			return -EINVAL;
		}
		memcpy(cfg->pub_token, line, n);
		cfg->pub_token[n] = '\0';
	}
	if (cfg->pub_token[0] == '\0' && !cfg->pub_insecure && !addr_is_loopback(&cfg->pub)) {
		fprintf(err, "spoutd: pub %s is not a loopback address: anyone who reaches it could "
			"publish. Set --pub-token (or --pub-token-file), or --pub-insecure if a "
			"firewall already guards it\n", cfg->pub.text);
		return -EINVAL;
	}
	if (cfg->http_publish && cfg->pub_token[0] == '\0' && !cfg->pub_insecure &&
	    !addr_is_loopback(&cfg->http)) {
		fprintf(err, "spoutd: http-publish on %s, not a loopback address: anyone who reaches "
			"it could publish. Set --pub-token (publishers then send Authorization: "
			"Bearer <token>), or --pub-insecure if a firewall already guards it\n",
			cfg->http.text);
		return -EINVAL;
	}
	return 0;
}

int sp_config_parse(struct sp_config *cfg, int argc, char **argv, FILE *err)
{
	char env[64];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NOPTS; i++)
		if (set_opt(cfg, &opts[i], opts[i].def, "default", err) != 0)
			return -EINVAL;
	for (size_t i = 0; i < NOPTS; i++) {
		env_name(opts[i].flag, env, sizeof(env));
		const char *v = getenv(env);
		if (v != NULL && set_opt(cfg, &opts[i], v, env, err) != 0)
			return -EINVAL;
	}
	warn_unknown_env(err);
	for (int a = 1; a < argc; a++) {
		const char *arg = argv[a];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			sp_config_usage(stdout);
			return 1;
		}
		if (strcmp(arg, "--version") == 0) {
			printf("spoutd %s\n", SP_VERSION);
			return 1;
		}
		if (strncmp(arg, "--", 2) != 0) {
			fprintf(err, "spoutd: unexpected argument '%s' (see --help)\n", arg);
			return -EINVAL;
		}
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t nl = eq ? (size_t)(eq - name) : strlen(name);
		const struct opt *o = NULL;
		for (size_t i = 0; i < NOPTS; i++)
			if (strlen(opts[i].flag) == nl && strncmp(opts[i].flag, name, nl) == 0)
				o = &opts[i];
		if (o == NULL) {
			fprintf(err, "spoutd: unknown option '%s' (see --help)\n", arg);
			return -EINVAL;
		}
		/* A yes/no option given bare means yes; --x=no still works. */
		const char *v = eq ? eq + 1 : o->kind == OPT_BOOL ? "yes"
			      : (a + 1 < argc ? argv[++a] : NULL);
		if (v == NULL) {
			fprintf(err, "spoutd: option '--%s' needs a value\n", o->flag);
			return -EINVAL;
		}
		if (set_opt(cfg, o, v, "option", err) != 0)
			return -EINVAL;
	}
	if ((cfg->ring_size & (cfg->ring_size - 1)) != 0) {
		fprintf(err, "spoutd: ring-size: %u is not a power of two\n", cfg->ring_size);
		return -EINVAL;
	}
	if (check_subscriber_security(cfg, err) != 0)
		return -EINVAL;
	return check_pub_security(cfg, err);
}
