/*
 * bk_idle - the adaptive tick. The tick runs at tick_period_us while anything
 * moves (an engine's telemetry, a command, a /metrics rendering in progress)
 * and for BK_IDLE_HOLD_NS after; with nothing moving it slows to the idle
 * period, so an idle breakerd costs a few wake-ups a millisecond instead of
 * ten. The idle period is [breaker] idle_tick_period_us (0: never slow down),
 * never shorter than the tick and never longer than a quarter of the
 * engines' heartbeat bound: the heartbeat word is written every tick, and
 * engines fail closed when it is older than heartbeat_bound_ms.
 *
 * Cost of the idle state: the first tick after a quiet spell comes at most
 * one idle period later than it would have, so a rule's first detection
 * after idle is bounded by idle period + tick (docs/config.md). Once the
 * telemetry moves, every tick is at the full rate again.
 *
 * Telemetry movement is seen per strategy from a 64-bit signature of its
 * snapshot (bk_idle_note), kept in a daemon-side array of its own: one
 * cache line holds eight strategies' signatures.
 */
#ifndef BK_IDLE_H
#define BK_IDLE_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_rules.h"

#define BK_IDLE_HOLD_NS (100ull * 1000 * 1000) /* full rate this long after a move */

struct bk_config;

struct bk_idle {
	uint64_t sig[BK_MAX_STRATEGIES]; /* per strategy: its last snapshot's signature */
	uint64_t active_until_ns;        /* full rate until then */
	bool idle;                       /* the last period chosen was the idle one */
};

/*
 * The snapshot of strategy slot, read at now: remember it, and note a move.
 * Returns the signature of every word but the heartbeat (bk_tickskip.h
 * tells a heartbeat-only move apart with it).
 */
static inline uint64_t bk_idle_note(struct bk_idle *s, int slot,
                                    const struct bk_tel_snap *t, uint64_t now)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h = t->orders;
	uint64_t w[8];

	/* every word an engine writes: any change is a move */
	__builtin_memcpy(&w[0], &t->fill_cash, 8);
	__builtin_memcpy(&w[1], &t->fees, 8);
	__builtin_memcpy(&w[2], &t->balance, 8);
	__builtin_memcpy(&w[3], &t->position, 8);
	__builtin_memcpy(&w[4], &t->gross, 8);
	__builtin_memcpy(&w[5], &t->pnl, 8);
	__builtin_memcpy(&w[6], &t->opening_base, 8);
	w[7] = t->opening_fills ^ ((uint64_t)t->opening_seq << 32);
	h = (h ^ t->rejects) * k;
	h = (h ^ t->fills) * k;
	h = (h ^ t->cancels) * k;
	/* telemetry v2: the engine's view of its venue */
	h = (h ^ t->working ^ (t->working_ns << 1)) * k;
	h = (h ^ t->md_ns ^ ((uint64_t)t->session << 48) ^ (t->session_ns << 2)) * k;
	for (int i = 0; i < 8; i++)
		h = (h ^ w[i]) * k;
	/* the heartbeat last: h so far is every word but it */
	if ((h ^ t->heartbeat_ns) * k != s->sig[slot]) {
		s->sig[slot] = (h ^ t->heartbeat_ns) * k;
		s->active_until_ns = now + BK_IDLE_HOLD_NS;
	}
	return h;
}

/* Something other than telemetry moved (a command, a rendering): full rate. */
static inline void bk_idle_poke(struct bk_idle *s, uint64_t now)
{
	s->active_until_ns = now + BK_IDLE_HOLD_NS;
}

/* The idle period in force for cfg (tick_ns when idling is off). */
uint64_t bk_idle_period_ns(const struct bk_config *cfg);

/* The period to the next tick after the one at now. */
uint64_t bk_idle_next_period(struct bk_idle *s, const struct bk_config *cfg,
                             uint64_t now);

#endif
