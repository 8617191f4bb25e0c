/*
 * bk_time - the daemon's two clocks. Monotonic for every interval and
 * deadline (bk_now_mono_ns, shared with the engines via breaker_client.h);
 * the wall clock only for what people read (records, events).
 */
#ifndef BK_TIME_H
#define BK_TIME_H

#include <stdint.h>
#include <time.h>

#include "breaker_client.h" /* bk_now_mono_ns */

static inline uint64_t bk_now_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
