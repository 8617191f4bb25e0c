/*
 * bk_text - text a terminal can be trusted with: the one decoder, shared by
 * breakerd's request checks and the CLI's formatter.
 */
#ifndef BK_TEXT_H
#define BK_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one
 * (overlong forms, surrogates and values past U+10FFFF are not); *cp gets
 * the code point. The one decoder: the daemon's checks and the CLI's
 * escaping both read text through it.
 */
int bk_utf8_decode(const unsigned char *s, unsigned *cp);

/*
 * Length of the UTF-8 sequence at p, or 0 if it is not one a terminal can be
 * trusted with: invalid, overlong, surrogate, above U+10FFFF, a C0/C1
 * control (tab excepted), DEL, or a bidirectional override.
 */
int bk_text_char_len(const unsigned char *p);

/* At most max bytes, every one of them in a sequence bk_text_char_len takes. */
bool bk_text_valid(const char *s, size_t max);

#endif
