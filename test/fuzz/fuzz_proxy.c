/*
 * fuzz_proxy.c - the PROXY protocol header parser, fed growing prefixes of
 * the input as a socket would deliver them.
 *
 * Oracles: once a prefix is complete (a length) or refused, every longer
 * prefix gives the same answer; a length never exceeds the bytes given;
 * an incomplete answer never comes for an input past the largest header.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spout/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	ssize_t decided = 0;
	size_t at = 0;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	for (size_t n = 0; n <= size; n++) {
		struct sp_proxy_info pi;
		const char *why = NULL;
		ssize_t r = sp_proxy_parse(buf, n, &pi, &why);
		if (r > 0 && (size_t)r > n)
			abort();
		if (r < 0 && why == NULL)
			abort();
		if (r == 0 && n > SP_PROXY_V2_MAX)
			abort();
		if (decided != 0 && r != decided)
			abort();   /* more bytes changed a decision */
		if (decided == 0 && r != 0) {
			decided = r;
			at = n;
		}
		if (decided != 0 && n > at + 64)
			break;     /* enough to show it is stable */
	}
	free(buf);
	return 0;
}
