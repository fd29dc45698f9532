/*
 * test_auth.c - subscriber tokens (src/auth.c): where a request carries
 * one, JWT verification (signature, algorithm, exp/nbf/aud/iss, the
 * topics claim), the attacks that must fail, and topic grants.
 *
 * Tokens are minted here with libjwt itself; test/integration/
 * test_security.py mints them independently (Python's hmac, the openssl
 * command) so the two sides are not the same code.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jwt.h>

#include "spout/auth.h"
#include "spout/config.h"
#include "sanitizers.h"

#define SECRET "0123456789abcdef0123456789abcdef-test-only"

/* A P-256 key pair made for these tests only. */
static const char ec_private[] =
	"-----BEGIN EC PRIVATE KEY-----\n"
	"MHcCAQEEIDRqf0ye3GmrjOqZeOjgyMVp6wtxDqYlCt9ufMnmhbx1oAoGCCqGSM49\n"
	"AwEHoUQDQgAEd2lY8Y4FEfR1pwXY3ldV1vYi/cGU7XqcEQAltfpYYNogWDi8YUbE\n"
	"5XWItMqzbhOO68jYSet1dgtrnk5hwRgRyw==\n"
	"-----END EC PRIVATE KEY-----\n";
static const char ec_public[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEd2lY8Y4FEfR1pwXY3ldV1vYi/cGU\n"
	"7XqcEQAltfpYYNogWDi8YUbE5XWItMqzbhOO68jYSet1dgtrnk5hwRgRyw==\n"
	"-----END PUBLIC KEY-----\n";

static char pubkey_path[64];

static const char *write_pubkey(void)
{
	snprintf(pubkey_path, sizeof(pubkey_path), "/tmp/spout-test-ec-%d.pem", (int)getpid());
	FILE *f = fopen(pubkey_path, "w");
	cr_assert_not_null(f);
	fputs(ec_public, f);
	fclose(f);
	return pubkey_path;
}

static struct sp_config cfg;

/* An sp_auth from flags (argv style), failing the test if refused. */
static struct sp_auth *auth_from(const char *const *flags, int n)
{
	char *argv[32] = { "spoutd" };
	struct sp_auth *a = NULL;

	for (int i = 0; i < n; i++)
		argv[i + 1] = (char *)flags[i];
	cr_assert_eq(sp_config_parse(&cfg, n + 1, argv, stderr), 0);
	cr_assert_eq(sp_auth_new(&cfg, &a, stderr), 0);
	return a;
}

/* Mint a token: <alg> with <key>, claims as JSON. */
static char *mint(jwt_alg_t alg, const char *key, const char *claims)
{
	jwt_t *j = NULL;

	cr_assert_eq(jwt_new(&j), 0);
	if (claims != NULL)
		cr_assert_eq(jwt_add_grants_json(j, claims), 0, "claims %s", claims);
	cr_assert_eq(jwt_set_alg(j, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0), 0);
	char *t = jwt_encode_str(j);
	jwt_free(j);
	cr_assert_not_null(t);
	return t;
}

static int verify(struct sp_auth *a, const char *tok, struct sp_grant *g, const char **why)
{
	return sp_auth_verify(a, tok, (uint64_t)time(NULL), g, why);
}

Test(auth, off_unless_a_key_is_set)
{
	struct sp_auth *a = (struct sp_auth *)1;

	cr_assert_eq(sp_config_parse(&cfg, 1, (char *[]){ "spoutd" }, stderr), 0);
	cr_assert_eq(sp_auth_new(&cfg, &a, stderr), 0);
	cr_expect_null(a, "no key, auto: off");
	const char *f[] = { "--jwt-secret", SECRET };
	a = auth_from(f, 2);
	cr_assert_not_null(a);
	cr_expect_eq(sp_auth_mode(a), SP_AUTH_REQUIRED, "a key, auto: required");
	sp_auth_free(a);
	const char *g[] = { "--jwt-secret", SECRET, "--auth", "optional" };
	a = auth_from(g, 4);
	cr_expect_eq(sp_auth_mode(a), SP_AUTH_OPTIONAL);
	sp_auth_free(a);
}

Test(auth, refuses_bad_settings)
{
	struct sp_auth *a = NULL;
	FILE *null = fopen("/dev/null", "w");
	char *short_secret[] = { "spoutd", "--jwt-secret", "short" };
	char *required_no_key[] = { "spoutd", "--auth", "required" };
	char *missing_file[] = { "spoutd", "--jwt-public-key", "/nonexistent/key.pem" };
	char *both[] = { "spoutd", "--jwt-secret", SECRET, "--jwt-secret-file", "/etc/hostname" };
	char *not_pem[] = { "spoutd", "--jwt-public-key", "/etc/hostname" };

	cr_assert_eq(sp_config_parse(&cfg, 3, short_secret, null), 0);
	cr_expect_eq(sp_auth_new(&cfg, &a, null), -EINVAL, "a secret under 32 bytes");
	cr_assert_eq(sp_config_parse(&cfg, 3, required_no_key, null), 0);
	cr_expect_eq(sp_auth_new(&cfg, &a, null), -EINVAL, "required without a key");
	cr_assert_eq(sp_config_parse(&cfg, 3, missing_file, null), 0);
	cr_expect_eq(sp_auth_new(&cfg, &a, null), -EINVAL);
	cr_assert_eq(sp_config_parse(&cfg, 5, both, null), 0);
	cr_expect_eq(sp_auth_new(&cfg, &a, null), -EINVAL);
	cr_assert_eq(sp_config_parse(&cfg, 3, not_pem, null), 0);
	cr_expect_eq(sp_auth_new(&cfg, &a, null), -EINVAL);
	cr_expect_null(a);
	fclose(null);
}

Test(auth, hs256_grants_and_claims)
{
	const char *f[] = { "--jwt-secret", SECRET };
	struct sp_auth *a = auth_from(f, 2);
	struct sp_grant g;
	const char *why = NULL;
	char claims[256];

	snprintf(claims, sizeof(claims), "{\"sub\":\"u1\",\"exp\":%lld,\"topics\":[\"news\",\"orders.>\"]}",
		 (long long)time(NULL) + 600);
	char *t = mint(JWT_ALG_HS256, SECRET, claims);
	cr_assert_eq(verify(a, t, &g, &why), 0, "%s", why);
	cr_expect_eq(g.n, 2);
	cr_expect_str_eq(g.pat[0], "news");
	cr_expect_str_eq(g.pat[1], "orders.>");
	cr_expect_eq(g.exp_s, (uint64_t)time(NULL) + 600, "exp kept for the stream's end");
	cr_expect(sp_auth_allows(a, &g, "news", 4));
	cr_expect(sp_auth_allows(a, &g, "orders.eu.created", 17));
	cr_expect(sp_auth_allows(a, &g, "orders.*", 8), "a pattern inside the grant");
	cr_expect_not(sp_auth_allows(a, &g, "sport", 5));
	cr_expect_not(sp_auth_allows(a, &g, "news.x", 6));
	cr_expect_not(sp_auth_allows(a, &g, ">", 1), "a wider pattern than granted");
	cr_expect_not(sp_auth_allows(a, NULL, "news", 4), "no token, no public topics");
	free(t);
	/* space-separated string form, HS384/HS512 too */
	t = mint(JWT_ALG_HS512, SECRET, "{\"topics\":\"a  b.* \"}");
	cr_assert_eq(verify(a, t, &g, &why), 0, "%s", why);
	cr_expect_eq(g.n, 2);
	cr_expect_eq(g.exp_s, 0, "no exp: never expires");
	cr_expect(sp_auth_allows(a, &g, "b.c", 3));
	free(t);
	/* no topics claim: valid, grants nothing */
	t = mint(JWT_ALG_HS384, SECRET, "{\"sub\":\"x\"}");
	cr_assert_eq(verify(a, t, &g, &why), 0, "%s", why);
	cr_expect_eq(g.n, 0);
	free(t);
	sp_auth_free(a);
}

struct bad_claims {
	const char *claims;   /* %lld = now */
	const char *reason;
};

Test(auth, claims_refused)
{
	const char *f[] = { "--jwt-secret", SECRET, "--jwt-audience", "spout",
			    "--jwt-issuer", "https://id.example", "--jwt-leeway-s", "5" };
	struct sp_auth *a = auth_from(f, 8);
	const struct bad_claims bad[] = {
		{ "{\"aud\":\"spout\",\"iss\":\"https://id.example\",\"exp\":%lld}", "token expired" },
		{ "{\"aud\":\"spout\",\"iss\":\"https://id.example\",\"nbf\":%lld9}", "token not valid yet (nbf)" },
		{ "{\"aud\":\"other\",\"iss\":\"https://id.example\",\"x\":%lld}", "token audience (aud) is not this service" },
		{ "{\"aud\":[\"a\",\"b\"],\"iss\":\"https://id.example\",\"x\":%lld}", "token audience (aud) is not this service" },
		{ "{\"iss\":\"https://id.example\",\"x\":%lld}", "token audience (aud) is not this service" },
		{ "{\"aud\":\"spout\",\"iss\":\"https://evil\",\"x\":%lld}", "token issuer (iss) not accepted" },
		{ "{\"aud\":\"spout\",\"iss\":\"https://id.example\",\"exp\":\"%lld\"}", "exp/nbf must be numbers" },
		{ "{\"aud\":\"spout\",\"iss\":\"https://id.example\",\"x\":%lld,\"topics\":[\"a b\"]}", "topics claim is not a list of valid topic patterns" },
		{ "{\"aud\":\"spout\",\"iss\":\"https://id.example\",\"x\":%lld,\"topics\":[1]}", "topics claim is not a list of valid topic patterns" },
		{ "{\"aud\":\"spout\",\"iss\":\"https://id.example\",\"x\":%lld,\"topics\":{\"a\":1}}", "topics claim is not a list of valid topic patterns" },
		{ "{\"aud\":\"spout\",\"iss\":\"https://id.example\",\"x\":%lld,\"topics\":\"a..b\"}", "topics claim is not a list of valid topic patterns" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char claims[512];
		struct sp_grant g;
		const char *why = NULL;
		/* "expired" is 10 s ago, past the 5 s leeway */
		snprintf(claims, sizeof(claims), bad[i].claims, (long long)time(NULL) - 10);
		char *t = mint(JWT_ALG_HS256, SECRET, claims);
		cr_expect_eq(verify(a, t, &g, &why), -EACCES, "%s", claims);
		cr_expect_str_eq(why ? why : "", bad[i].reason, "%s", claims);
		free(t);
	}
	/* within the leeway: still good; aud as an array containing ours */
	char claims[256];
	struct sp_grant g;
	const char *why = NULL;
	snprintf(claims, sizeof(claims),
		 "{\"aud\":[\"x\",\"spout\"],\"iss\":\"https://id.example\",\"exp\":%lld}",
		 (long long)time(NULL) - 2);
	char *t = mint(JWT_ALG_HS256, SECRET, claims);
	cr_expect_eq(verify(a, t, &g, &why), 0, "%s", why);
	free(t);
	sp_auth_free(a);
}

Test(auth, attacks_refused)
{
	const char *pk = write_pubkey();
	const char *f[] = { "--jwt-public-key", pk };
	struct sp_auth *a = auth_from(f, 2);
	struct sp_grant g;
	const char *why = NULL;

	/* the genuine ES256 token passes */
	char *good = mint(JWT_ALG_ES256, ec_private, "{\"topics\":[\"news\"]}");
	cr_assert_eq(verify(a, good, &g, &why), 0, "%s", why);
	/* alg none */
	char *none = mint(JWT_ALG_NONE, NULL, "{\"topics\":[\">\"]}");
	cr_expect_eq(verify(a, none, &g, &why), -EACCES);
	cr_expect_str_eq(why, "token algorithm not accepted");
	/* HS256 signed with the public key text as the HMAC secret */
	char *confused = mint(JWT_ALG_HS256, ec_public, "{\"topics\":[\">\"]}");
	cr_expect_eq(verify(a, confused, &g, &why), -EACCES);
	cr_expect_str_eq(why, "token algorithm not accepted");
	/* a payload swapped under a genuine signature */
	char *other = mint(JWT_ALG_ES256, ec_private, "{\"topics\":[\">\"]}");
	char spliced[2048];
	const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
	const char *o1 = strchr(other, '.'), *o2 = strrchr(other, '.');
	snprintf(spliced, sizeof(spliced), "%.*s%.*s%s", (int)(d1 - good), good,
		 (int)(o2 - o1), o1, d2);
	cr_expect_eq(verify(a, spliced, &g, &why), -EACCES);
	cr_expect_str_eq(why, "token signature invalid");
	/* garbage of many shapes */
	const char *junk[] = { "", "a", "a.b", "a.b.c", "...", "eyJ.eyJ.sig", "\xff\xfe.x.y",
			       "eyJhbGciOiJFUzI1NiJ9" };
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		cr_expect_eq(verify(a, junk[i], &g, &why), -EACCES, "junk %zu", i);
	free(good);
	free(none);
	free(confused);
	free(other);
	sp_auth_free(a);
	unlink(pk);
}

Test(auth, public_topics)
{
	const char *f[] = { "--jwt-secret", SECRET, "--auth", "optional", "--public-topics",
			    "public.>,status" };
	struct sp_auth *a = auth_from(f, 6);

	cr_expect(sp_auth_allows(a, NULL, "public.news", 11));
	cr_expect(sp_auth_allows(a, NULL, "public.*", 8));
	cr_expect(sp_auth_allows(a, NULL, "status", 6));
	cr_expect_not(sp_auth_allows(a, NULL, "status.x", 8));
	cr_expect_not(sp_auth_allows(a, NULL, "private", 7));
	cr_expect_not(sp_auth_allows(a, NULL, ">", 1));
	sp_auth_free(a);
}

/* ---- where the token is ------------------------------------------------ */

static ssize_t extract(struct sp_http_req *r, const char *cookie, char *out, size_t cap,
		       const char **why)
{
	return sp_auth_token(r, cookie, out, cap, why);
}

#define HDR(field, s) do { r.field = (s); r.field##_len = strlen(s); } while (0)

Test(auth, token_places_and_priority)
{
	struct sp_http_req r;
	char out[64];
	const char *why = NULL;

	memset(&r, 0, sizeof(r));
	cr_expect_eq(extract(&r, "tk", out, sizeof(out), &why), 0, "none anywhere");
	HDR(query, "topic=a&token=q%2Eq");
	cr_expect_eq(extract(&r, "tk", out, sizeof(out), &why), 3);
	cr_expect_str_eq(out, "q.q", "query, percent-decoded");
	HDR(cookie, "a=1; tk=\"c.c\"; b=2");
	cr_expect_eq(extract(&r, "tk", out, sizeof(out), &why), 3);
	cr_expect_str_eq(out, "c.c", "the cookie wins over the query");
	cr_expect_eq(extract(&r, "", out, sizeof(out), &why), 3, "no cookie name: query");
	cr_expect_str_eq(out, "q.q");
	HDR(authorization, "bearer   h.h");
	cr_expect_eq(extract(&r, "tk", out, sizeof(out), &why), 3);
	cr_expect_str_eq(out, "h.h", "the header wins; scheme case-insensitive");
}

Test(auth, token_place_errors)
{
	struct sp_http_req r;
	char out[16];
	const char *why = NULL;

	memset(&r, 0, sizeof(r));
	HDR(authorization, "Basic dXNlcjpwYXNz");
	cr_expect_eq(extract(&r, NULL, out, sizeof(out), &why), -EINVAL);
	cr_expect_str_eq(why, "Authorization must be \"Bearer <token>\"");
	HDR(authorization, "Bearer ");
	cr_expect_eq(extract(&r, NULL, out, sizeof(out), &why), -EINVAL);
	cr_expect_str_eq(why, "empty token");
	HDR(authorization, "Bearer 0123456789abcdef");
	cr_expect_eq(extract(&r, NULL, out, sizeof(out), &why), -ENOSPC, "16 bytes do not fit 16");
	memset(&r, 0, sizeof(r));
	HDR(query, "token=%zz");
	cr_expect_eq(extract(&r, NULL, out, sizeof(out), &why), -EINVAL);
	HDR(query, "token=");
	cr_expect_eq(extract(&r, NULL, out, sizeof(out), &why), -EINVAL);
	cr_expect_str_eq(why, "empty token");
	HDR(query, "token=%00x");
	cr_expect_eq(extract(&r, NULL, out, sizeof(out), &why), -EINVAL, "a NUL in the token");
	memset(&r, 0, sizeof(r));
	HDR(cookie, "tk=; other=1");
	cr_expect_eq(extract(&r, "tk", out, sizeof(out), &why), -EINVAL);
	HDR(cookie, "xtk=1; tkx=2");
	cr_expect_eq(extract(&r, "tk", out, sizeof(out), &why), 0, "names must match whole");
}
