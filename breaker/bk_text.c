/*
 * bk_text - the one check for text that ends up in terminals, logs and
 * post-mortems (reasons, names): valid UTF-8 a terminal can be trusted with.
 */
#include <string.h>

#include "bk_text.h"

int bk_utf8_decode(const unsigned char *s, unsigned *cp)
{
	unsigned c = s[0], min;
	int n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, *cp = c & 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		n = 3, *cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, *cp = c & 0x07, min = 0x10000;
	else
		return 0;
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		*cp = *cp << 6 | (s[i] & 0x3f);
	}
	if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return n;
}

int bk_text_char_len(const unsigned char *p)
{
	unsigned cp;
	int n = bk_utf8_decode(p, &cp);

	if (n == 0)
		return 0;
	if ((cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp < 0xa0))
		return 0; /* C0 (tab excepted), DEL, C1 */
	/* U+202A..U+202E, U+2066..U+2069: text that reorders the terminal */
	if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
		return 0;
	return n;
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
