/*
 * fuzz_topic.c - percent-decoding, topic and pattern validation, and the
 * two pattern relations (match, covers).
 *
 * Input: two strings split at the first NUL. Oracles: the decoder never
 * writes past its capacity and never yields a NUL; a valid topic is a
 * valid pattern; covers(g, w) with w a topic equals match(g, w); covers
 * is reflexive on valid patterns.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spout/ptrie.h"
#include "spout/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *nul = memchr(s, '\0', size);
	size_t alen = nul ? (size_t)(nul - s) : size;
	const char *b = nul ? nul + 1 : "";
	size_t blen = nul ? size - alen - 1 : 0;
	char dec[SP_TOPIC_MAX + 1];

	ssize_t n = sp_percent_decode(s, alen, dec, sizeof(dec));
	if (n >= 0) {
		if ((size_t)n > sizeof(dec) || memchr(dec, '\0', (size_t)n) != NULL)
			abort();
	} else if (n != -EINVAL && n != -ENOSPC) {
		abort();
	}
	bool at = sp_topic_valid(s, alen), ap = sp_pattern_valid(s, alen);
	bool bt = sp_topic_valid(b, blen), bp = sp_pattern_valid(b, blen);
	if ((at && !ap) || (bt && !bp))
		abort();
	(void)sp_topic_hash(s, alen);
	if (ap && bt && sp_pattern_covers(s, alen, b, blen) != sp_pattern_match(s, alen, b, blen))
		abort();
	if (ap && !sp_pattern_covers(s, alen, s, alen))
		abort();
	if (ap && bp)
		(void)sp_pattern_covers(s, alen, b, blen);
	return 0;
}
