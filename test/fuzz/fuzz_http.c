/*
 * fuzz_http.c - the HTTP request head path a worker runs on every
 * connection: framing (sp_http_head_end), early refusal
 * (sp_http_check_partial), parsing (sp_http_parse), then what the request
 * is used for: topics, query parameters, the token and the client address.
 *
 * Oracles besides the sanitizers: every pointer <req> returns lies inside
 * the input; framing never claims more bytes than it was given; decoded
 * topics are valid topics or patterns.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spout/auth.h"
#include "spout/http.h"
#include "spout/netaddr.h"
#include "spout/ptrie.h"

static void inside(const char *p, size_t n, const char *buf, size_t len)
{
	if (p != NULL && (p < buf || p + n > buf + len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy, exactly sized, so ASan sees any overread */
	char *buf = malloc(size ? size : 1);
	static struct sp_http_topics topics;
	struct sp_http_req req;
	const char *reason;
	char out[256];

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	(void)sp_http_check_partial(buf, size);
	size_t head = sp_http_head_end(buf, size);
	if (head > size)
		abort();
	if (head > 0 && sp_http_parse(buf, head, &req, &reason) == 0) {
		inside(req.path, req.path_len, buf, head);
		inside(req.query, req.query_len, buf, head);
		inside(req.host, req.host_len, buf, head);
		inside(req.authorization, req.authorization_len, buf, head);
		inside(req.cookie, req.cookie_len, buf, head);
		inside(req.expect, req.expect_len, buf, head);
		inside(req.spout_event, req.spout_event_len, buf, head);
		inside(req.idempotency_key, req.idempotency_key_len, buf, head);
		for (unsigned i = 0; i < req.nxff; i++)
			inside(req.xff[i], req.xff_len[i], buf, head);
		if (sp_http_parse_topics(&req, SP_HTTP_TOPICS_MAX, &topics, &reason) == 0)
			for (unsigned i = 0; i < topics.n; i++)
				if (!sp_pattern_valid(topics.name[i], topics.len[i]))
					abort();
		(void)sp_http_query_param(&req, "lastEventId", out, sizeof(out));
		(void)sp_auth_token(&req, "tk", out, sizeof(out), &reason);
		struct sp_cidr trusted;
		struct sp_ipaddr client;
		sp_cidr_parse("10.0.0.0/8", &trusted);
		(void)sp_xff_client(req.xff, req.xff_len, req.nxff, &trusted, 1, &client);
	}
	free(buf);
	return 0;
}
