/*
 * auth.c - subscriber tokens: extraction, JWT verification, topic grants
 * (see include/spout/auth.h).
 *
 * libjwt 1.10 does the signature work. It takes the algorithm from the
 * token's header and the key from us, so the header is read first (a
 * decode without a key verifies nothing and is used for that alone), the
 * key is chosen by the algorithm's family, and a family without a
 * configured key is refused before any verification. The claims are then
 * read from libjwt's JSON with jansson: exp, nbf, aud, iss and the topics
 * claim. Nothing here keeps state between calls.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <jwt.h>

#include "spout/auth.h"

struct sp_auth {
	enum sp_auth_mode mode;
	unsigned char *secret;     /* HS*: NULL when not configured */
	size_t secret_len;
	unsigned char *pubkey;     /* RS* / ES*: PEM text, NUL-ended */
	size_t pubkey_len;
	char topics_claim[SP_JWT_NAME_MAX];
	char audience[SP_JWT_TEXT_MAX];
	char issuer[SP_JWT_TEXT_MAX];
	uint32_t leeway_s;
	unsigned npublic;
	const char (*public_topics)[SP_PATTERN_MAX + 1];   /* into the config */
};

enum alg_family { FAM_NONE, FAM_HMAC, FAM_PUBKEY };

static enum alg_family family_of(const char *alg)
{
	static const char *const hmac[] = { "HS256", "HS384", "HS512" };
	static const char *const pub[] = { "RS256", "RS384", "RS512", "ES256", "ES384" };

	for (size_t i = 0; alg != NULL && i < sizeof(hmac) / sizeof(hmac[0]); i++)
		if (strcmp(alg, hmac[i]) == 0)
			return FAM_HMAC;
	for (size_t i = 0; alg != NULL && i < sizeof(pub) / sizeof(pub[0]); i++)
		if (strcmp(alg, pub[i]) == 0)
			return FAM_PUBKEY;
	return FAM_NONE;
}

/* Read a whole (small) file; NUL-ended. */
static unsigned char *slurp(const char *path, size_t *len, FILE *err, const char *flag)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t n = 0;

	if (f == NULL) {
		fprintf(err, "spoutd: %s %s: %s\n", flag, path, strerror(errno));
		return NULL;
	}
	buf = malloc(65536 + 1);
	if (buf != NULL)
		n = fread(buf, 1, 65536 + 1, f);
	fclose(f);
	if (buf == NULL || n == 0 || n > 65536) {
		fprintf(err, "spoutd: %s %s: %s\n", flag, path,
			buf == NULL ? "out of memory" : n == 0 ? "empty" : "larger than 64 KiB");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int load_secret(struct sp_auth *a, const struct sp_config *cfg, FILE *err)
{
	if (cfg->jwt_secret[0] != '\0' && cfg->jwt_secret_file[0] != '\0') {
		fprintf(err, "spoutd: jwt-secret and jwt-secret-file: give one, not both\n");
		return -EINVAL;
	}
	if (cfg->jwt_secret[0] != '\0') {
		a->secret_len = strlen(cfg->jwt_secret);
		a->secret = (unsigned char *)strdup(cfg->jwt_secret);
	} else if (cfg->jwt_secret_file[0] != '\0') {
		a->secret = slurp(cfg->jwt_secret_file, &a->secret_len, err, "jwt-secret-file");
		if (a->secret == NULL)
			return -EINVAL;
		/* one trailing line break is the file's, not the secret's */
		if (a->secret_len > 0 && a->secret[a->secret_len - 1] == '\n')
			a->secret[--a->secret_len] = '\0';
		if (a->secret_len > 0 && a->secret[a->secret_len - 1] == '\r')
			a->secret[--a->secret_len] = '\0';
	} else {
		return 0;
	}
	if (a->secret == NULL)
		return -ENOMEM;
	/* RFC 7518 3.2: a key at least as long as the hash output. */
	if (a->secret_len < 32) {
		fprintf(err, "spoutd: jwt-secret: %zu bytes; HS256 needs at least 32\n",
			a->secret_len);
		return -EINVAL;
	}
	return 0;
}

static int load_pubkey(struct sp_auth *a, const struct sp_config *cfg, FILE *err)
{
	if (cfg->jwt_public_key[0] == '\0')
		return 0;
	a->pubkey = slurp(cfg->jwt_public_key, &a->pubkey_len, err, "jwt-public-key");
	if (a->pubkey == NULL)
		return -EINVAL;
	if (strstr((char *)a->pubkey, "-----BEGIN PUBLIC KEY-----") == NULL) {
		fprintf(err, "spoutd: jwt-public-key %s: not a PEM public key "
			"(-----BEGIN PUBLIC KEY-----; e.g. `openssl pkey -pubout`)\n",
			cfg->jwt_public_key);
		return -EINVAL;
	}
	return 0;
}

int sp_auth_new(const struct sp_config *cfg, struct sp_auth **out, FILE *err)
{
	bool keyed = cfg->jwt_secret[0] || cfg->jwt_secret_file[0] || cfg->jwt_public_key[0];
	enum sp_auth_mode mode = cfg->auth_mode;

	*out = NULL;
	if (mode == SP_AUTH_AUTO)
		mode = keyed ? SP_AUTH_REQUIRED : SP_AUTH_OFF;
	if (mode == SP_AUTH_OFF) {
		if (keyed)
			fprintf(err, "spoutd: note: --auth off: the JWT key is not used\n");
		return 0;
	}
	if (!keyed) {
		fprintf(err, "spoutd: auth %s needs a key: --jwt-secret(-file) or --jwt-public-key\n",
			mode == SP_AUTH_REQUIRED ? "required" : "optional");
		return -EINVAL;
	}
	struct sp_auth *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->mode = mode;
	a->leeway_s = cfg->jwt_leeway_s;
	snprintf(a->topics_claim, sizeof(a->topics_claim), "%s", cfg->jwt_topics_claim);
	snprintf(a->audience, sizeof(a->audience), "%s", cfg->jwt_audience);
	snprintf(a->issuer, sizeof(a->issuer), "%s", cfg->jwt_issuer);
	a->npublic = cfg->npublic_topics;
	a->public_topics = cfg->public_topics;
	if (load_secret(a, cfg, err) != 0 || load_pubkey(a, cfg, err) != 0) {
		sp_auth_free(a);
		return -EINVAL;
	}
	/* jansson seeds its hash function on first use; do it here, on the
	 * main thread, not racing in the workers. */
	json_object_seed(0);
	*out = a;
	return 0;
}

void sp_auth_free(struct sp_auth *a)
{
	if (a == NULL)
		return;
	if (a->secret != NULL) {
		memset(a->secret, 0, a->secret_len);
		free(a->secret);
	}
	free(a->pubkey);
	free(a);
}

enum sp_auth_mode sp_auth_mode(const struct sp_auth *a)
{
	return a->mode;
}

/* ---- where the token is ---------------------------------------------- */

static ssize_t copy_token(const char *s, size_t n, char *out, size_t cap, const char **reason)
{
	if (n == 0) {
		*reason = "empty token";
		return -EINVAL;
	}
	if (n >= cap)
		return -ENOSPC;
	memcpy(out, s, n);
	out[n] = '\0';
	return (ssize_t)n;
}

/* The value of cookie <name> in a Cookie header ("a=1; b=2"). */
static bool find_cookie(const char *h, size_t hl, const char *name, const char **v, size_t *vl)
{
	size_t nl = strlen(name), i = 0;

	while (i < hl) {
		while (i < hl && (h[i] == ' ' || h[i] == '\t' || h[i] == ';'))
			i++;
		size_t start = i;
		while (i < hl && h[i] != ';')
			i++;
		const char *pair = h + start;
		size_t pl = i - start;
		if (pl > nl && memcmp(pair, name, nl) == 0 && pair[nl] == '=') {
			*v = pair + nl + 1;
			*vl = pl - nl - 1;
			while (*vl > 0 && ((*v)[*vl - 1] == ' ' || (*v)[*vl - 1] == '\t'))
				(*vl)--;
			if (*vl >= 2 && (*v)[0] == '"' && (*v)[*vl - 1] == '"') {
				(*v)++;
				*vl -= 2;
			}
			return true;
		}
	}
	return false;
}

ssize_t sp_auth_token(const struct sp_http_req *req, const char *cookie, char *out, size_t cap,
		      const char **reason)
{
	if (req->authorization != NULL) {
		const char *s = req->authorization;
		size_t n = req->authorization_len;
		if (n < 7 || strncasecmp(s, "Bearer ", 7) != 0) {
			*reason = "Authorization must be \"Bearer <token>\"";
			return -EINVAL;
		}
		s += 7;
		n -= 7;
		while (n > 0 && *s == ' ') {
			s++;
			n--;
		}
		return copy_token(s, n, out, cap, reason);
	}
	const char *v;
	size_t vl;
	if (cookie != NULL && cookie[0] != '\0' && req->cookie != NULL &&
	    find_cookie(req->cookie, req->cookie_len, cookie, &v, &vl))
		return copy_token(v, vl, out, cap, reason);
	ssize_t k = sp_http_query_param(req, "token", out, cap);
	if (k == -ENOENT)
		return 0;
	if (k == -EINVAL) {
		*reason = "malformed percent-encoding in token";
		return -EINVAL;
	}
	if (k < 0)
		return k;
	if ((size_t)k >= cap)
		return -ENOSPC;
	out[k] = '\0';
	if (k == 0 || memchr(out, '\0', (size_t)k) != NULL) {
		*reason = "empty token";
		return -EINVAL;
	}
	return k;
}

/* ---- verification ------------------------------------------------------ */

static int deny(const char **reason, const char *why)
{
	*reason = why;
	return -EACCES;
}

/* A NumericDate claim: absent (0, true), a number (true), else false. */
static bool numeric_date(json_t *claims, const char *name, uint64_t *out)
{
	json_t *v = json_object_get(claims, name);

	*out = 0;
	if (v == NULL)
		return true;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return true;
	}
	if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 1e15) {
		*out = (uint64_t)json_real_value(v);
		return true;
	}
	return false;
}

/* "aud": a string or an array of strings, one of which must be ours. */
static bool audience_ok(json_t *claims, const char *want)
{
	json_t *aud = json_object_get(claims, "aud");

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (json_is_array(aud)) {
		size_t i;
		json_t *v;
		json_array_foreach(aud, i, v)
			if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
				return true;
	}
	return false;
}

static int add_pattern(struct sp_grant *g, const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (g->n == SP_GRANT_MAX || n > SP_PATTERN_MAX || sp_pattern_check(s, n) != NULL)
		return -EINVAL;
	memcpy(g->pat[g->n], s, n);
	g->pat[g->n][n] = '\0';
	g->len[g->n++] = (uint8_t)n;
	return 0;
}

/* The topics claim: ["a", "b.>"] or "a b.>". Absent: grants nothing. */
static int read_topics(json_t *claims, const char *name, struct sp_grant *g)
{
	json_t *t = json_object_get(claims, name);

	if (t == NULL)
		return 0;
	if (json_is_string(t)) {
		const char *s = json_string_value(t);
		size_t len = json_string_length(t), i = 0;
		while (i < len) {
			while (i < len && s[i] == ' ')
				i++;
			size_t start = i;
			while (i < len && s[i] != ' ')
				i++;
			if (add_pattern(g, s + start, i - start) != 0)
				return -EINVAL;
		}
		return 0;
	}
	if (!json_is_array(t))
		return -EINVAL;
	size_t i;
	json_t *v;
	json_array_foreach(t, i, v) {
		if (!json_is_string(v) || add_pattern(g, json_string_value(v),
						      json_string_length(v)) != 0)
			return -EINVAL;
	}
	return 0;
}

static int check_claims(const struct sp_auth *a, json_t *claims, uint64_t now_s,
			struct sp_grant *g, const char **reason)
{
	uint64_t exp, nbf;

	if (!json_is_object(claims))
		return deny(reason, "malformed token claims");
	if (!numeric_date(claims, "exp", &exp) || !numeric_date(claims, "nbf", &nbf))
		return deny(reason, "exp/nbf must be numbers");
	if (exp != 0 && exp + a->leeway_s <= now_s)
		return deny(reason, "token expired");
	if (nbf > now_s + a->leeway_s)
		return deny(reason, "token not valid yet (nbf)");
	if (a->audience[0] != '\0' && !audience_ok(claims, a->audience))
		return deny(reason, "token audience (aud) is not this service");
	if (a->issuer[0] != '\0') {
		json_t *iss = json_object_get(claims, "iss");
		if (!json_is_string(iss) || strcmp(json_string_value(iss), a->issuer) != 0)
			return deny(reason, "token issuer (iss) not accepted");
	}
	g->exp_s = exp;
	if (read_topics(claims, a->topics_claim, g) != 0)
		return deny(reason, "topics claim is not a list of valid topic patterns");
	return 0;
}

int sp_auth_verify(const struct sp_auth *a, const char *token, uint64_t now_s,
		   struct sp_grant *g, const char **reason)
{
	jwt_t *jwt = NULL;
	memset(g, 0, offsetof(struct sp_grant, len));

	/* 1. Which algorithm does it claim? (No key: nothing verified.) */
	if (jwt_decode(&jwt, token, NULL, 0) != 0 || jwt == NULL)
		return deny(reason, "malformed token");
	const char *alg = jwt_get_header(jwt, "alg");
	enum alg_family fam = family_of(alg);
	jwt_free(jwt);
	jwt = NULL;
	/* 2. Only a family we hold a key for. */
	const unsigned char *key = fam == FAM_HMAC ? a->secret : fam == FAM_PUBKEY ? a->pubkey : NULL;
	size_t key_len = fam == FAM_HMAC ? a->secret_len : a->pubkey_len;
	if (key == NULL)
		return deny(reason, "token algorithm not accepted");
	/* 3. The signature, with that key. */
	if (jwt_decode(&jwt, token, key, (int)key_len) != 0 || jwt == NULL)
		return deny(reason, "token signature invalid");
	if (family_of(jwt_alg_str(jwt_get_alg(jwt))) != fam) {
		jwt_free(jwt);
		return deny(reason, "token algorithm not accepted");
	}
	/* 4. The claims. */
	char *text = jwt_get_grants_json(jwt, NULL);
	jwt_free(jwt);
	if (text == NULL)
		return deny(reason, "malformed token claims");
	json_t *claims = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	free(text);
	int rc = check_claims(a, claims, now_s, g, reason);
	json_decref(claims);
	return rc;
}

bool sp_auth_pub_token_equal(const char *want, const char *got, size_t glen)
{
	size_t wlen = strnlen(want, SP_TOKEN_MAX + 1);
	unsigned char d = wlen != glen;

	for (size_t i = 0; i < SP_TOKEN_MAX; i++) {
		unsigned char x = i < wlen ? (unsigned char)want[i] : 0;
		unsigned char y = i < glen ? (unsigned char)got[i] : 0;
		d |= x ^ y;
	}
	return d == 0 && glen <= SP_TOKEN_MAX;
}

bool sp_auth_allows(const struct sp_auth *a, const struct sp_grant *g, const char *want,
		    size_t len)
{
	for (unsigned i = 0; i < a->npublic; i++)
		if (sp_pattern_covers(a->public_topics[i], strlen(a->public_topics[i]), want, len))
			return true;
	for (unsigned i = 0; g != NULL && i < g->n; i++)
		if (sp_pattern_covers(g->pat[i], g->len[i], want, len))
			return true;
	return false;
}
