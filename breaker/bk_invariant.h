/*
 * bk_invariant - what the code assumes, checked: a broken assumption stops
 * the daemon at once, saying where (file:line), instead of going on to a NULL
 * dereference or worse. Stopping is the safe side: the heartbeat stops and
 * engines treat a silent daemon as HALTED. Not compiled out under NDEBUG.
 */
#ifndef BK_INVARIANT_H
#define BK_INVARIANT_H

#include <stdlib.h>

#include "bk_log.h"

#define BK_INVARIANT(cond)                                                               \
	do {                                                                             \
		if (__builtin_expect(!(cond), 0)) {                                      \
			bk_err("invariant broken at %s:%d: %s", __FILE__, __LINE__,      \
			       #cond);                                                   \
			abort();                                                         \
		}                                                                        \
	} while (0)

#endif
