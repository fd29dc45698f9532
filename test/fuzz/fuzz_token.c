/*
 * fuzz_token.c - a token as an attacker would send it, through JWT
 * verification (libjwt, jansson, our claim checks) with both an HMAC
 * secret and an EC public key configured, then the grant checks.
 *
 * Oracle: a random input is never accepted (it would need a valid
 * signature), except inputs that are a genuine token minted below, which
 * must be. Sanitizers watch libjwt's and jansson's parsing too.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spout/auth.h"
#include "spout/config.h"

static struct sp_auth *auth;
static struct sp_config cfg;

static const char ec_public[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEd2lY8Y4FEfR1pwXY3ldV1vYi/cGU\n"
	"7XqcEQAltfpYYNogWDi8YUbE5XWItMqzbhOO68jYSet1dgtrnk5hwRgRyw==\n"
	"-----END PUBLIC KEY-----\n";

/* One genuine HS256 token for the secret below (no exp, topics ["a.>"]),
 * so the fuzzer also starts from a valid shape. */
#define GENUINE \
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b3BpY3MiOlsiYS4-Il19." \
	"zoFsApiNAWLPXjrBZcb0di2eedWR9pAgqJTfhmYZpRo"

static void setup(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/spout-fuzz-ec-%d.pem", (int)getpid());
	FILE *f = fopen(path, "w");
	if (f == NULL)
		abort();
	fputs(ec_public, f);
	fclose(f);
	char *argv[] = { "spoutd", "--jwt-secret", "fuzz-secret-0123456789abcdef0123456789",
			 "--jwt-public-key", path, "--auth", "optional", "--public-topics", "pub.>",
			 NULL };
	FILE *null = fopen("/dev/null", "w");
	if (sp_config_parse(&cfg, 9, argv, null) != 0 || sp_auth_new(&cfg, &auth, null) != 0)
		abort();
	fclose(null);
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (auth == NULL)
		setup();
	if (size >= SP_AUTH_TOKEN_MAX)
		return 0;
	char tok[SP_AUTH_TOKEN_MAX];
	memcpy(tok, data, size);
	tok[size] = '\0';
	struct sp_grant g;
	const char *why = NULL;
	int rc = sp_auth_verify(auth, tok, 1700000000, &g, &why);
	bool genuine = strcmp(tok, GENUINE) == 0;
	if ((rc == 0) != genuine)
		abort();
	if (rc != 0 && why == NULL)
		abort();
	if (rc == 0) {
		if (!sp_auth_allows(auth, &g, "a.b", 3) || sp_auth_allows(auth, &g, "b", 1))
			abort();
	}
	(void)sp_auth_allows(auth, NULL, tok, strnlen(tok, 128));
	return 0;
}
