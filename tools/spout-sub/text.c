/*
 * text.c - event data made printable. spoutd does not check that payloads
 * are UTF-8 (docs/protocol.md 1.1), so what arrives may be anything: JSON
 * output must still be valid JSON, and a terminal must not execute escape
 * sequences a publisher slipped into an event.
 */
#include <stdio.h>

#include "sub.h"

/*
 * Decodes one UTF-8 sequence at <s> (n > 0 bytes left). Returns its length
 * and the code point in *cp, or 0 for an invalid or truncated sequence
 * (overlong forms, surrogates and values past U+10FFFF included).
 */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

void text_json(FILE *f, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	fputc('"', f);
	while (i < n) {
		uint32_t cp;
		size_t len = utf8_next(s + i, n - i, &cp);

		if (len == 0) {
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		switch (cp) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (cp < 0x20 || cp == 0x7f)
				fprintf(f, "\\u%04x", cp);
			else
				fwrite(s + i, 1, len, f);
		}
		i += len;
	}
	fputc('"', f);
}

void text_term(FILE *f, const char *str, size_t n, const char *indent)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		size_t len = utf8_next(s + i, n - i, &cp);

		if (len == 0) {
			fputs("\xef\xbf\xbd", f);   /* U+FFFD */
			i++;
			continue;
		}
		if (cp == '\n') {
			fputc('\n', f);
			fputs(indent, f);
		} else if (cp == '\t') {
			fputc('\t', f);
		} else if (cp < 0x20) {
			fprintf(f, "^%c", (char)(cp + '@'));
		} else if (cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
			/* DEL and the C1 controls (0x9b is a CSI on some
			 * terminals). */
			fprintf(f, "<U+%04X>", cp);
		} else {
			fwrite(s + i, 1, len, f);
		}
		i += len;
	}
}
