/*
 * bk_text - the one check for text that ends up in terminals, logs and
 * post-mortems (reasons, names): valid UTF-8 a terminal can be trusted with.
 */
#include <string.h>

#include "bk_text.h"

/*
 * Length of the UTF-8 sequence at p, or 0 if it is not one a terminal can be
 * trusted with: invalid, overlong, surrogate, above U+10FFFF, a C0/C1
 * control (tab excepted), DEL, or a bidirectional override.
 */
int bk_text_char_len(const unsigned char *p)
{
	if (*p < 0x80)
		return (*p >= 0x20 || *p == '\t') && *p != 0x7f;
	if (*p >= 0xc2 && *p <= 0xdf)
		return (p[1] & 0xc0) == 0x80 && !(*p == 0xc2 && p[1] < 0xa0) ? 2 : 0;
	if (*p >= 0xe0 && *p <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (*p == 0xe0 && p[1] < 0xa0) || (*p == 0xed && p[1] >= 0xa0))
			return 0;
		/* U+202A..U+202E, U+2066..U+2069: text that reorders the terminal */
		if (*p == 0xe2 && ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
		                   (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)))
			return 0;
		return 3;
	}
	if (*p >= 0xf0 && *p <= 0xf4)
		return (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 &&
		               (p[3] & 0xc0) == 0x80 && !(*p == 0xf0 && p[1] < 0x90) &&
		               !(*p == 0xf4 && p[1] >= 0x90)
		           ? 4
		           : 0;
	return 0;
}

/* Reason text ends up in terminals, logs and post-mortems. */
bool bk_text_valid(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	int n;

	if (strlen(s) > max)
		return false;
	for (; *p; p += n)
		if ((n = bk_text_char_len(p)) == 0)
			return false;
	return true;
}
