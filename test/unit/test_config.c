/*
 * test_config.c - flags, SPOUT_* environment variables and defaults.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spout/config.h"
#include "sanitizers.h"

/* Parse argv (NULL-terminated list after the program name); capture what
 * goes to the error stream into <errbuf>. */
static int parse(struct sp_config *cfg, char *errbuf, size_t cap, ...)
{
	char *argv[32] = { "spoutd" };
	int argc = 1;
	va_list ap;
	va_start(ap, cap);
	for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
		argv[argc++] = a;
	va_end(ap);
	FILE *err = fmemopen(errbuf, cap, "w");
	cr_assert_not_null(err);
	int rc = sp_config_parse(cfg, argc, argv, err);
	fclose(err);
	return rc;
}

static void clear_env(void)
{
	unsetenv("SPOUT_HEARTBEAT_MS");
	unsetenv("SPOUT_WORKERS");
	unsetenv("SPOUT_OVERFLOW");
	unsetenv("SPOUT_REDIS");
	unsetenv("SPOUT_REDIS_URL");
}

TestSuite(config, .init = clear_env, .fini = clear_env);

Test(config, defaults)
{
	struct sp_config c;
	char err[256] = "";
	cr_assert_eq(parse(&c, err, sizeof(err), NULL), 0, "%s", err);
	cr_assert_str_eq(c.http.text, "0.0.0.0:8080");
	cr_assert_str_eq(c.pub.text, "127.0.0.1:7400");
	cr_assert_eq(c.workers, 0);
	cr_assert_eq(c.queue_events, 512);
	cr_assert_eq(c.queue_bytes, 1048576);
	cr_assert_eq(c.overflow, SP_OVERFLOW_DISCONNECT);
	cr_assert_eq(c.write_timeout_ms, 10000);
	cr_assert_eq(c.heartbeat_ms, 15000);
	cr_assert_eq(c.header_timeout_ms, 5000);
	cr_assert_eq(c.max_topics, 16);
	cr_assert_str_eq(c.cors_origin, "");
	cr_assert_eq(c.log_level, SP_LOG_INFO);
	cr_assert_eq(c.io, SP_IO_AUTO);
	cr_assert_eq(c.sndbuf, 65536);
	const struct sockaddr_in *pub = (const struct sockaddr_in *)&c.pub.ss;
	cr_assert_eq(pub->sin_family, AF_INET);
	cr_assert_eq(ntohs(pub->sin_port), 7400);
	cr_assert_eq(ntohl(pub->sin_addr.s_addr), INADDR_LOOPBACK,
		     "the publisher listener binds to loopback by default");
}

Test(config, flags_both_spellings)
{
	struct sp_config c;
	char err[256] = "";
	cr_assert_eq(parse(&c, err, sizeof(err), "--workers", "3", "--overflow=drop-oldest",
			   "--cors-origin", "*", "--log-level", "warn", NULL), 0, "%s", err);
	cr_assert_eq(c.workers, 3);
	cr_assert_eq(c.overflow, SP_OVERFLOW_DROP_OLDEST);
	cr_assert_str_eq(c.cors_origin, "*");
	cr_assert_eq(c.log_level, SP_LOG_WARN);
}

Test(config, io_backends_and_send_buffer)
{
	struct sp_config c;
	char err[256] = "";
	cr_assert_eq(parse(&c, err, sizeof(err), "--io", "epoll", "--sndbuf", "0", NULL), 0,
		     "%s", err);
	cr_assert_eq(c.io, SP_IO_EPOLL);
	cr_assert_eq(c.sndbuf, 0, "0 leaves the send buffer to kernel autotuning");
	cr_assert_eq(parse(&c, err, sizeof(err), "--io=uring", NULL), 0, "%s", err);
	cr_assert_eq(c.io, SP_IO_URING);
	cr_assert_eq(parse(&c, err, sizeof(err), "--io", "kqueue", NULL), -EINVAL);
	cr_assert(strstr(err, "not auto, epoll or uring") != NULL, "%s", err);
	cr_assert_neq(parse(&c, err, sizeof(err), "--sndbuf", "99999999999", NULL), 0);
}

Test(config, unknown_spout_environment_is_warned_not_fatal)
{
	struct sp_config c;
	char err[512] = "";
	setenv("SPOUT_REDIS_URL", "127.0.0.1:6379", 1);   /* a typo of SPOUT_REDIS */
	cr_assert_eq(parse(&c, err, sizeof(err), NULL), 0, "%s", err);
	cr_assert(strstr(err, "SPOUT_REDIS_URL is not a spoutd setting") != NULL, "%s", err);
	setenv("SPOUT_WORKERS", "2", 1);
	unsetenv("SPOUT_REDIS_URL");
	err[0] = '\0';
	cr_assert_eq(parse(&c, err, sizeof(err), NULL), 0, "%s", err);
	cr_assert_eq(strstr(err, "SPOUT_WORKERS"), NULL, "a known variable is not warned about: %s", err);
}

Test(config, environment_then_flag_wins)
{
	struct sp_config c;
	char err[256] = "";
	setenv("SPOUT_HEARTBEAT_MS", "250", 1);
	setenv("SPOUT_WORKERS", "2", 1);
	cr_assert_eq(parse(&c, err, sizeof(err), "--workers", "5", NULL), 0, "%s", err);
	cr_assert_eq(c.heartbeat_ms, 250);
	cr_assert_eq(c.workers, 5);
}

Test(config, bad_environment_is_an_error)
{
	struct sp_config c;
	char err[256] = "";
	setenv("SPOUT_OVERFLOW", "sometimes", 1);
	cr_assert_eq(parse(&c, err, sizeof(err), NULL), -EINVAL);
	cr_assert(strstr(err, "SPOUT_OVERFLOW") != NULL, "message names the variable: %s", err);
}

struct bad_case {
	const char *a, *b;
	const char *needle;
};

Test(config, bad_flags_say_why)
{
	static const struct bad_case cases[] = {
		{ "--workers", "abc", "whole number" },
		{ "--workers", "-1", "whole number" },
		{ "--workers", "1000", "whole number" },
		{ "--queue", "0", "whole number" },
		{ "--write-timeout-ms", "18446744073709551616", "whole number" },
		{ "--overflow", "nope", "disconnect" },
		{ "--http", "8080", "HOST:PORT" },
		{ "--http", "127.0.0.1:99999", "HOST:PORT" },
		{ "--pub", "[::1", "HOST:PORT" },
		{ "--log-level", "loud", "debug" },
		{ "--bogus", NULL, "unknown option" },
		{ "stray", NULL, "unexpected argument" },
		{ "--cors-origin", "a\r\nX-Evil: 1", "line break" },
		{ "--ring-size", "1000", "power of two" },
		{ "--policy", "prices.>", "PATTERN=" },
		{ "--policy", "prices.>=sometimes", "PATTERN=" },
		{ "--policy", "pri*ces=latest", "" },
		{ "--policy", "a.>.b=latest", "" },
		{ "--ring-size", "8", "whole number" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_config c;
		char err[256] = "";
		int rc = parse(&c, err, sizeof(err), cases[i].a, cases[i].b, NULL);
		cr_expect_eq(rc, -EINVAL, "%s %s accepted", cases[i].a, cases[i].b ? cases[i].b : "");
		cr_expect(strstr(err, cases[i].needle) != NULL, "%s %s: message \"%s\" lacks \"%s\"",
			  cases[i].a, cases[i].b ? cases[i].b : "", err, cases[i].needle);
	}
}

Test(config, missing_value)
{
	struct sp_config c;
	char err[256] = "";
	cr_assert_eq(parse(&c, err, sizeof(err), "--queue", NULL), -EINVAL);
	cr_assert(strstr(err, "needs a value") != NULL, "%s", err);
}

Test(config, addresses)
{
	struct sp_addr a;
	cr_assert_eq(sp_addr_parse("[::1]:9000", &a), 0);
	cr_assert_eq(((struct sockaddr_in6 *)&a.ss)->sin6_family, AF_INET6);
	cr_assert_eq(ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port), 9000);
	cr_assert_eq(sp_addr_parse(":7400", &a), 0, "empty host = any address");
	cr_assert_eq(sp_addr_parse("127.0.0.1:", &a), -EINVAL);
	cr_assert_eq(sp_addr_parse("127.0.0.1:12x", &a), -EINVAL);
}

Test(config, help_and_version_stop_without_error)
{
	struct sp_config c;
	char err[64] = "";
	cr_redirect_stdout();
	cr_assert_eq(parse(&c, err, sizeof(err), "--help", NULL), 1);
	cr_assert_eq(parse(&c, err, sizeof(err), "--version", NULL), 1);
}

Test(config, policies_first_match_wins)
{
	struct sp_config c;
	char err[256] = "";
	setenv("SPOUT_POLICY", "prices.>=latest,news.*=drop-oldest", 1);
	cr_assert_eq(parse(&c, err, sizeof(err), "--policy", "prices.fx=drop-oldest", "--overflow",
			   "disconnect", NULL), 0, "%s", err);
	unsetenv("SPOUT_POLICY");
	cr_assert_eq(c.npolicies, 3);
	cr_assert_eq(sp_config_overflow_for(&c, "prices.fx", 9), SP_OVERFLOW_LATEST,
		     "the environment's rules come first");
	cr_assert_eq(sp_config_overflow_for(&c, "news.eu", 7), SP_OVERFLOW_DROP_OLDEST);
	cr_assert_eq(sp_config_overflow_for(&c, "news.eu.x", 9), SP_OVERFLOW_DISCONNECT);
	cr_assert_eq(sp_config_overflow_for(&c, "prices", 6), SP_OVERFLOW_DISCONNECT,
		     "'>' needs at least one more segment");
}

Test(config, redis_url_forms)
{
	struct sp_redis_url u;

	cr_assert_eq(sp_redis_url_parse("", &u), 0);
	cr_assert_eq(u.host[0], '\0', "empty = cluster mode off");
	cr_assert_eq(sp_redis_url_parse("10.0.0.5:6380", &u), 0);
	cr_assert_str_eq(u.host, "10.0.0.5");
	cr_assert_eq(u.port, 6380);
	cr_assert_eq(u.db, 0);
	cr_assert_str_eq(u.password, "");
	cr_assert_eq(sp_redis_url_parse("redis://cache.internal", &u), 0);
	cr_assert_str_eq(u.host, "cache.internal");
	cr_assert_eq(u.port, 6379, "default port");
	cr_assert_eq(sp_redis_url_parse("redis://:s%40cret@[::1]:7000/3", &u), 0);
	cr_assert_str_eq(u.host, "::1");
	cr_assert_eq(u.port, 7000);
	cr_assert_eq(u.db, 3);
	cr_assert_str_eq(u.password, "s@cret", "percent-decoded");
	cr_assert(strstr(u.text, "s@cret") == NULL, "the password never reaches logs: %s", u.text);
	cr_assert(strstr(u.text, "***") != NULL);
	cr_assert_eq(sp_redis_url_parse("redis://:p@h/", &u), 0);
	cr_assert_eq(u.db, 0);
}

Test(config, redis_url_rejects)
{
	struct sp_redis_url u;
	const char *bad[] = { "nonsense", "h:", "h:0", "h:99999", ":6379", "redis://",
			      "redis://h:x", "redis://user:pw@h", "redis://:@h", "redis://:p%zz@h",
			      "redis://:p%00@h", "redis://h/db", "redis://h/-1", "h :1",
			      "redis://h:1/2/3", "redis://[::1", "redis://h?x=1" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(sp_redis_url_parse(bad[i], &u), -EINVAL, "accepted '%s'", bad[i]);
}

Test(config, cluster_flags)
{
	struct sp_config c;
	char err[256] = "";

	cr_assert_eq(parse(&c, err, sizeof(err), NULL), 0, "%s", err);
	cr_assert_not(sp_config_cluster(&c), "single node by default");
	cr_assert_str_eq(c.redis_prefix, "spout");
	cr_assert_eq(c.redis_timeout_ms, 2000);
	cr_assert_eq(c.redis_probe_ms, 1000);
	cr_assert_not(c.ready_without_redis);
	cr_assert_eq(parse(&c, err, sizeof(err), "--redis", "127.0.0.1:6379", "--redis-prefix",
			   "app.prod:1", "--ready-without-redis", "--redis-probe-ms", "200", NULL),
		     0, "%s", err);
	cr_assert(sp_config_cluster(&c));
	cr_assert_str_eq(c.redis_prefix, "app.prod:1");
	cr_assert(c.ready_without_redis, "a bare yes/no flag means yes");
	cr_assert_eq(c.redis_probe_ms, 200);
	cr_assert_eq(parse(&c, err, sizeof(err), "--ready-without-redis=no", NULL), 0, "%s", err);
	cr_assert_not(c.ready_without_redis);
	setenv("SPOUT_REDIS", "redis://:pw@127.0.0.1:6390/2", 1);
	cr_assert_eq(parse(&c, err, sizeof(err), NULL), 0, "%s", err);
	cr_assert_eq(c.redis.port, 6390);
	cr_assert_eq(c.redis.db, 2);
	cr_assert_str_eq(c.redis.password, "pw");
}

Test(config, cluster_flags_refused_with_reason)
{
	struct sp_config c;
	char err[256];
	const char *bad[][2] = {
		{ "--redis", "nonsense" }, { "--redis", "redis://h:99999" },
		{ "--redis-prefix", "has space" }, { "--redis-prefix", "{tag}" },
		{ "--redis-prefix", "" }, { "--redis-timeout-ms", "10" },
		{ "--ready-without-redis=maybe", NULL },
		{ "--redis-prefix", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(err, 0, sizeof(err));
		cr_assert_eq(parse(&c, err, sizeof(err), bad[i][0], bad[i][1], NULL), -EINVAL,
			     "accepted %s %s", bad[i][0], bad[i][1] ? bad[i][1] : "");
		const char *flag = bad[i][0] + 2;
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(flag, "="), flag);
		cr_assert(strstr(err, name) != NULL, "message names the flag: %s", err);
	}
}

Test(config, security_defaults)
{
	struct sp_config c;
	char err[256] = "";

	cr_assert_eq(parse(&c, err, sizeof(err), NULL), 0, "%s", err);
	cr_expect_eq(c.auth_mode, SP_AUTH_AUTO);
	cr_expect_str_eq(c.jwt_topics_claim, "topics");
	cr_expect_eq(c.jwt_leeway_s, 5);
	cr_expect_eq(c.max_conns_per_ip, 1024);
	cr_expect_eq(c.max_request_bytes, 8192);
	cr_expect_eq(c.max_headers, 64);
	cr_expect_eq(c.pub_idle_timeout_ms, 300000);
	cr_expect_eq(c.pub_max_rate, 0);
	cr_expect_eq(c.pub_max_conns, 1024);
	cr_expect_eq(c.ntrusted_proxies, 0);
	cr_expect_not(c.proxy_protocol);
	cr_expect_eq(c.npublic_topics, 0);
}

Test(config, security_flags)
{
	struct sp_config c;
	char err[256] = "";

	cr_assert_eq(parse(&c, err, sizeof(err), "--auth", "optional", "--public-topics",
			   "public.>,status", "--public-topics", "news", "--trusted-proxy",
			   "10.0.0.0/8,2001:db8::/32", "--trusted-proxy", "192.0.2.1",
			   "--proxy-protocol", "--jwt-cookie", "sp_token", "--max-request-bytes",
			   "16384", NULL), 0, "%s", err);
	cr_expect_eq(c.auth_mode, SP_AUTH_OPTIONAL);
	cr_expect_eq(c.npublic_topics, 3);
	cr_expect_str_eq(c.public_topics[2], "news");
	cr_expect_eq(c.ntrusted_proxies, 3);
	cr_expect(c.proxy_protocol);
	cr_expect_eq(c.max_request_bytes, 16384);
}

Test(config, security_flags_refused_with_reason)
{
	static const struct {
		const char *flag, *value, *want;
	} bad[] = {
		{ "--auth", "maybe", "is not off, optional, required or auto" },
		{ "--public-topics", "a..b", "public-topics: 'a..b'" },
		{ "--trusted-proxy", "10.0.0.0/33", "not ADDR or ADDR/BITS" },
		{ "--trusted-proxy", "lb.example", "not ADDR or ADDR/BITS" },
		{ "--jwt-cookie", "a b", "is not a cookie name" },
		{ "--jwt-topics-claim", "", "must not be empty" },
		{ "--proxy-protocol=yes", NULL, "needs --trusted-proxy" },
		{ "--max-request-bytes", "100", "not a whole number in 1024..16384" },
		{ "--max-headers", "0", "not a whole number in 4..1000" },
		{ "--pub-max-conns", "0", "not a whole number" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sp_config c;
		char err[512] = "";
		cr_expect_eq(parse(&c, err, sizeof(err), bad[i].flag, bad[i].value, NULL), -EINVAL,
			     "%s %s", bad[i].flag, bad[i].value);
		cr_expect(strstr(err, bad[i].want) != NULL, "%s %s: %s", bad[i].flag, bad[i].value,
			  err);
	}
}
