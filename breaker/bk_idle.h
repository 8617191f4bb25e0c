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
static inline uint64_t bk_idle_bits(double x)
{
	uint64_t u;

	__builtin_memcpy(&u, &x, 8);
	return u;
}

static inline uint64_t bk_idle_note(struct bk_idle *s, int slot,
                                    const struct bk_tel_snap *t, uint64_t now)
{
	/*
	 * Every word an engine writes, each times its own odd constant, summed:
	 * a change of any one word changes the sum (an odd multiplier is a
	 * bijection mod 2^64), several at once cancel out with odds of about
	 * 2^-64. Independent products, not a chain of multiplies: the tick
	 * computes this for every strategy, and a serial chain cost ~15 ns.
	 */
	uint64_t a =
	    t->orders * 0x9e3779b97f4a7c15ull + t->rejects * 0xbf58476d1ce4e5b9ull +
	    t->fills * 0x94d049bb133111ebull + t->cancels * 0xd6e8feb86659fd93ull;
	uint64_t b = bk_idle_bits(t->fill_cash) * 0xa0761d6478bd642full +
	             bk_idle_bits(t->fees) * 0xe7037ed1a0b428dbull +
	             bk_idle_bits(t->balance) * 0x8ebc6af09c88c6e3ull +
	             bk_idle_bits(t->position) * 0x589965cc75374cc3ull;
	uint64_t c =
	    bk_idle_bits(t->gross) * 0x1d8e4e27c47d124full +
	    bk_idle_bits(t->pnl) * 0xc2b2ae3d27d4eb4full +
	    bk_idle_bits(t->opening_base) * 0x165667b19e3779f9ull +
	    (t->opening_fills ^ ((uint64_t)t->opening_seq << 32)) * 0x27d4eb2f165667c5ull;
	/* telemetry v2: the engine's view of its venue */
	uint64_t v =
	    t->working * 0x85ebca77c2b2ae63ull + t->working_ns * 0xff51afd7ed558ccdull +
	    t->md_ns * 0xc4ceb9fe1a85ec53ull +
	    (t->session_ns ^ ((uint64_t)t->session << 56)) * 0x2545f4914f6cdd1dull;
	uint64_t h = a + b + c + v;
	/* the heartbeat last: h is every word but it */
	uint64_t full = h + t->heartbeat_ns * 0x9fb21c651e98df25ull;

	if (full != s->sig[slot]) {
		s->sig[slot] = full;
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
