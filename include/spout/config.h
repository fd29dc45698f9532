/*
 * config.h - command-line flags and their SPOUT_* environment variables.
 *
 * Parsed once by main before any thread starts; read-only afterwards, so
 * every thread may read it without synchronisation.
 */
#ifndef SPOUT_CONFIG_H
#define SPOUT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "spout/ev.h"
#include "spout/log.h"
#include "spout/netaddr.h"

#define SP_VERSION "0.1.0"
#define SP_WORKERS_MAX 256

/* --io: io_uring (batched writes + multishot poll) when this build and
 * kernel have it, else epoll; or one of them by name. */
enum sp_io {
	SP_IO_AUTO = 0,
	SP_IO_EPOLL,
	SP_IO_URING,
};

/* What a connection's full out-queue does (--overflow, --policy). */
enum sp_overflow {
	SP_OVERFLOW_DISCONNECT = 0,  /* shed the connection */
	SP_OVERFLOW_DROP_OLDEST,     /* drop the oldest unwritten events */
	SP_OVERFLOW_LATEST,          /* conflate: keep only the newest pending event per topic */
};

#define SP_POLICIES_MAX 32

/* --policy PATTERN=POLICY: the first rule whose pattern matches a topic
 * decides its overflow policy; topics no rule matches use --overflow. */
struct sp_policy_rule {
	char pattern[129];
	enum sp_overflow policy;
};

struct sp_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[128];             /* as given, for logs */
};

#define SP_REDIS_PREFIX_MAX 64
#define SP_TOKEN_MAX 256
#define SP_PATH_MAX 512
#define SP_JWT_NAME_MAX 64          /* claim and cookie names */
#define SP_JWT_TEXT_MAX 256         /* --jwt-audience, --jwt-issuer */
#define SP_JWT_SECRET_MAX 1024

/* --auth: who may open a stream. AUTO resolves at start-up: REQUIRED when
 * a JWT key is configured, else OFF. */
enum sp_auth_mode {
	SP_AUTH_AUTO = 0,
	SP_AUTH_OFF,                /* no checks; tokens ignored */
	SP_AUTH_OPTIONAL,           /* a token is checked if sent; without one, public topics only */
	SP_AUTH_REQUIRED,           /* every stream needs a valid token */
};

/* --redis: where the backplane is. host[0] == 0: cluster mode off. */
struct sp_redis_url {
	char host[256];
	unsigned port;
	unsigned db;
	char password[256];
	char text[600];             /* for logs, password masked */
};

struct sp_config {
	struct sp_addr http;
	struct sp_addr pub;
	char pub_token[SP_TOKEN_MAX + 1];   /* "" = publishers need no AUTH */
	char pub_token_file[SP_PATH_MAX];
	bool pub_insecure;
	uint32_t pub_idle_timeout_ms;   /* 0 = none */
	uint32_t pub_max_rate;          /* events/s per publisher connection; 0 = no cap */
	uint32_t pub_max_conns;
	bool http_publish;          /* POST /publish/<topic> on the HTTP listener */
	uint32_t publish_dedup_s;   /* how long an HTTP publish's idempotency key is kept */
	bool dashboard;             /* GET /dashboard and its stats stream */
	/* subscribers: authentication (auth.c) */
	enum sp_auth_mode auth_mode;
	char jwt_secret[SP_JWT_SECRET_MAX];
	char jwt_secret_file[SP_PATH_MAX];
	char jwt_public_key[SP_PATH_MAX];
	char jwt_topics_claim[SP_JWT_NAME_MAX];
	char jwt_cookie[SP_JWT_NAME_MAX];
	char jwt_audience[SP_JWT_TEXT_MAX];
	char jwt_issuer[SP_JWT_TEXT_MAX];
	uint32_t jwt_leeway_s;
	char public_topics[SP_POLICIES_MAX][129];
	unsigned npublic_topics;
	/* subscribers: client addresses and per-client limits */
	struct sp_cidr trusted_proxies[SP_CIDR_MAX];
	unsigned ntrusted_proxies;
	bool proxy_protocol;        /* trusted proxies send a PROXY header */
	uint32_t max_conns_per_ip;  /* 0 = no cap */
	uint32_t max_request_bytes; /* request head, <= SP_HTTP_HEAD_MAX */
	uint32_t max_headers;
	unsigned workers;           /* 0 = auto (resolved by main) */
	uint32_t queue_events;      /* per-connection out-queue bound */
	uint64_t queue_bytes;
	enum sp_overflow overflow;
	struct sp_policy_rule policies[SP_POLICIES_MAX];
	unsigned npolicies;
	char topic_metrics[SP_POLICIES_MAX][129];   /* --topic-metrics patterns */
	unsigned ntopic_metrics;
	uint32_t topic_metrics_max;
	uint32_t sndbuf;            /* SO_SNDBUF of SSE sockets; 0 = kernel's */
	uint32_t write_timeout_ms;
	uint32_t heartbeat_ms;
	uint32_t header_timeout_ms;
	uint32_t max_conns;         /* 0 = auto (resolved by main) */
	uint32_t max_topics;
	uint32_t max_line;
	uint32_t max_payload;
	uint32_t ring_size;         /* frame ring slots per worker */
	uint32_t history;           /* events per topic; 0 = off */
	uint32_t history_ttl_s;
	uint64_t history_bytes;
	uint32_t retry_ms;
	uint32_t drain_ms;
	uint32_t max_accept_rate;
	uint32_t storm_threshold;
	uint32_t memory_high_pct;
	char cors_origin[256];      /* "" = no CORS headers */
	enum sp_log_level log_level;
	enum sp_io io;              /* I/O backend (--io) */
	struct sp_redis_url redis;  /* cluster mode when redis.host[0] */
	char redis_prefix[SP_REDIS_PREFIX_MAX + 1];
	uint32_t redis_timeout_ms;
	uint32_t redis_probe_ms;
	bool ready_without_redis;
};

static inline bool sp_config_cluster(const struct sp_config *cfg)
{
	return cfg->redis.host[0] != '\0';
}

/* Fill <cfg> with defaults, then SPOUT_* environment variables, then argv.
 * Returns 0; 1 when --help/--version printed (exit 0); -EINVAL after
 * printing a message to <err> (exit 2). */
int sp_config_parse(struct sp_config *cfg, int argc, char **argv, FILE *err);

/* The overflow policy of <topic>: the first --policy rule that matches,
 * else --overflow. Any thread (cfg is read-only). */
int sp_config_overflow_for(const struct sp_config *cfg, const char *topic, size_t len);

/* True if <topic> matches a --topic-metrics pattern. Any thread. */
bool sp_config_topic_metrics_for(const struct sp_config *cfg, const char *topic, size_t len);

/* Parse --redis: "" (off), "HOST:PORT" or
 * "redis://[:PASSWORD@]HOST[:PORT][/DB]" (port 6379, db 0 by default; a
 * password may be percent-encoded). Returns 0 or -EINVAL. */
int sp_redis_url_parse(const char *s, struct sp_redis_url *u);

/* A publisher token: 1..SP_TOKEN_MAX bytes of 0x21-0x7E. */
bool sp_token_valid(const char *s, size_t len);

/* Print --help. */
void sp_config_usage(FILE *out);

/* Parse "HOST:PORT" ("[v6]:port" too) into <a>. Returns 0 or -EINVAL. */
int sp_addr_parse(const char *s, struct sp_addr *a);

#endif
