/*
 * bk_tickskip - which strategies the tick may leave unevaluated.
 *
 * Every tick still reads every strategy's telemetry (the adaptive tick's
 * signature, bk_idle_note), and still runs the per-strategy work that is not
 * a rule (bk_orders_tick, bk_venues_slot). The rules themselves are
 * evaluated for a strategy only when
 *   - its telemetry moved since its last evaluation (the signature of every
 *     word but the heartbeat changed; or the heartbeat moved in a way that
 *     could bring a verdict sooner: backwards, more than 1 s ahead of the
 *     daemon's clock, while the heartbeat rule is violated, or from none), or
 *   - its deadline passed: the earliest time at which the same telemetry
 *     could give another verdict (bk_rules_next_ns: heartbeat age crossing a
 *     warning level or the limit, a window bucket expiring while the window
 *     holds orders, a cooldown or re-arm coming due, a reconciliation
 *     expiring, a rule-state record due), capped at BK_SKIP_MAX_NS (plus a
 *     per-slot stagger) so that status and /metrics utilisation stay fresh
 *     and a mistake in a deadline costs at most that long, or
 *   - anything else changed what the rules judge by: any command but a
 *     Report (bk_tickskip_all), a reload, a telemetry segment replaced, or
 *     a new word published for any scope (bk_publish_scope: a trip by a
 *     rule, the venue watch or a firm latch); the rest of that tick and the
 *     next one then evaluate every strategy.
 * The orders table (bk_orders_tick) is updated for a skipped strategy only
 * while it is HALTED: otherwise its entry already holds what the tick would
 * write (the telemetry did not move), and a new HALTED word comes through
 * bk_publish_scope.
 * Conservative by construction: evaluating early is always correct (the
 * rules are pure functions of their state, the snapshot and the time), so
 * every deadline is rounded down and every doubt is "evaluate now".
 *
 * The state is one dense array of small entries, apart from the rule state:
 * the tick's walk over an idle strategy touches its telemetry slot and this
 * entry only (plus the orders table's), never its struct bk_slot_rules.
 */
#ifndef BK_TICKSKIP_H
#define BK_TICKSKIP_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_rules.h"

#define BK_SKIP_MAX_NS (75ull * 1000 * 1000) /* evaluate at least this often... */
#define BK_SKIP_SPREAD 256u                  /* ...+ (slot % this) x 100 us */
#define BK_SKIP_AHEAD_NS                                                                 \
	1000000000ull /* a heartbeat further ahead is stale (bk_rules.c) */

struct bk_skip_slot {
	uint64_t sig;     /* telemetry signature without the heartbeat, last evaluation */
	uint64_t hb_ns;   /* the heartbeat at the last evaluation */
	uint64_t next_ns; /* evaluate at or after this anyway; 0: next tick */
	bool hb_fwd_ok;   /* a heartbeat moving forward alone cannot bring a verdict */
	bool remote;      /* the rules read the Report snapshot (is_remote) */
	bool gone;        /* unregistered (a tombstone, never reused): never judged */
	bool halted;      /* HALTED at its last orders tick (bk_orders.h) */
};

struct bk_tickskip {
	struct bk_skip_slot s[BK_MAX_STRATEGIES];
	bool all;                    /* the next tick evaluates every strategy */
	uint64_t evaluated, skipped; /* strategy-ticks, for bench_rules */
};

/* Something the rules judge by changed outside the telemetry: evaluate all. */
static inline void bk_tickskip_all(struct bk_tickskip *k)
{
	k->all = true;
}

/* A slot (re)bound to its rules: evaluated on the next tick. */
static inline void bk_tickskip_reset(struct bk_tickskip *k, int slot)
{
	k->s[slot] = (struct bk_skip_slot){0};
}

/*
 * May the rules of this slot be left alone at now, given the snapshot just
 * read and its heartbeat-less signature sig? (Not for a slot due or after
 * bk_tickskip_all: the caller checks next_ns and all first.)
 */
static inline bool bk_tickskip_quiet(const struct bk_skip_slot *e, uint64_t sig,
                                     const struct bk_tel_snap *snap, uint64_t now)
{
	uint64_t hb = snap->heartbeat_ns;

	if (sig != e->sig)
		return false;
	if (hb == e->hb_ns)
		return true;
	/* forward from a heartbeat seen, the age only got smaller: the
	 * deadline computed from the older one comes first */
	return e->hb_fwd_ok && e->hb_ns && hb > e->hb_ns && hb <= now + BK_SKIP_AHEAD_NS;
}

/*
 * After an evaluation at now: remember what was judged and when to judge
 * again at the latest (next_ns from bk_rules_next_ns and the caller's own).
 */
void bk_tickskip_done(struct bk_tickskip *k, int slot, uint64_t sig,
                      const struct bk_tel_snap *snap, bool remote, bool hb_fwd_ok,
                      uint64_t next_ns, uint64_t now);

#endif
