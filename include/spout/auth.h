/*
 * auth.h - subscriber authentication and authorisation (--auth, --jwt-*,
 * --public-topics): where a request carries its token, whether the token
 * is genuine and current, and which topics it lets its holder read.
 *
 * Tokens are JWTs (RFC 7519) verified by Debian's libjwt over OpenSSL:
 * HS256/384/512 with --jwt-secret[-file], RS256/384/512 and ES256/384 with
 * --jwt-public-key. The algorithm a token names picks the key, and only a
 * family with a configured key is accepted, so "alg":"none" and the
 * HS256-signed-with-the-public-key confusion are refused. A claim
 * (--jwt-topics-claim, "topics" by default) lists the topic patterns the
 * holder may subscribe to: a JSON array of strings, or one string of
 * space-separated patterns.
 *
 * struct sp_auth is built once by main and read-only afterwards: any
 * thread may call every function below concurrently.
 */
#ifndef SPOUT_AUTH_H
#define SPOUT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "spout/config.h"
#include "spout/http.h"
#include "spout/ptrie.h"

#define SP_GRANT_MAX 32            /* patterns one token may grant */
#define SP_AUTH_TOKEN_MAX 8192     /* longest token accepted */

/* What a verified token allows. */
struct sp_grant {
	uint64_t exp_s;            /* "exp" (seconds since the epoch); 0 = none */
	unsigned n;
	uint8_t len[SP_GRANT_MAX];
	char pat[SP_GRANT_MAX][SP_PATTERN_MAX + 1];
};

struct sp_auth;

/* Load the keys and settings of <cfg>. Returns 0 with <*out> set (NULL
 * when --auth resolves to off), or -EINVAL after printing why to <err>. */
int sp_auth_new(const struct sp_config *cfg, struct sp_auth **out, FILE *err);
void sp_auth_free(struct sp_auth *a);

/* SP_AUTH_OPTIONAL or SP_AUTH_REQUIRED (an sp_auth exists only then). */
enum sp_auth_mode sp_auth_mode(const struct sp_auth *a);

/*
 * The token of a request: "Authorization: Bearer <t>", else the cookie
 * named <cookie> (if not empty), else the "token" query parameter
 * (percent-decoded; EventSource cannot set headers). Copied, NUL-ended,
 * into <out> (capacity <cap>). Returns its length (> 0); 0 when the
 * request carries none; -EINVAL with <*reason> set when the place it is
 * in is malformed (another Authorization scheme, bad percent-encoding, an
 * empty value); -ENOSPC when it is longer than <cap> - 1.
 */
ssize_t sp_auth_token(const struct sp_http_req *req, const char *cookie, char *out, size_t cap,
		      const char **reason);

/* Verify <token> (NUL-ended) at time <now_s>. Returns 0 with <*g> filled,
 * or -EACCES with <*reason> set (a short phrase for the 401 body). */
int sp_auth_verify(const struct sp_auth *a, const char *token, uint64_t now_s,
		   struct sp_grant *g, const char **reason);

/* Is <got>[0..glen) the publisher token <want> (--pub-token)? In time that
 * depends on neither where they differ nor <want>'s length: every one of
 * the SP_TOKEN_MAX possible bytes is compared. Line protocol and HTTP
 * publish both. */
bool sp_auth_pub_token_equal(const char *want, const char *got, size_t glen);

/* May the holder of <g> (NULL: no token) subscribe to the topic or
 * pattern <want>[0..len)? True if a --public-topics pattern or one of the
 * grant's patterns covers it. */
bool sp_auth_allows(const struct sp_auth *a, const struct sp_grant *g, const char *want,
		    size_t len);

#endif
