/*
 * bk_hash - FNV-1a (32-bit) over a NUL-terminated string: the one string hash
 * of the tree, for the daemon's strategy index and the CLI's tables. Names
 * are short and few; no adversary chooses them beyond the registration rules.
 */
#ifndef BK_HASH_H
#define BK_HASH_H

#include <stdint.h>

static inline uint32_t bk_fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

#endif
