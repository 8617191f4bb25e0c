/*
 * bk_rulecheck - questions about the rules in force, asked of the daemon's
 * evaluation state: does a latch's rule still hold, is there evidence yet.
 */
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_daemon.h"
#include "bk_log.h"

bool bk_rulecheck_holds(const struct bk_daemon *d, int slot, unsigned reason,
                        const char **rule)
{
	int id;

	if (bk_venue_rule_of_reason(reason) >= 0) /* a venue group's latch */
		return bk_venues_holds(d, slot, reason, rule);
	if (slot < 0 && slot != BK_GLOBAL) /* a group: no strategy rule trips one */
		return false;
	for (id = 0; id < BK_RULE_COUNT; id++)
		if (bk_rule_reason((enum bk_rule_id)id) == reason)
			break;
	if (id == BK_RULE_COUNT)
		return false;
	*rule = bk_rule_name((enum bk_rule_id)id);
	if (slot != BK_GLOBAL)
		return d->slots[slot].eval.violating[id];
	for (uint32_t i = 0; i < d->state.n_strategies; i++)
		if (d->slots[i].rules && d->slots[i].rules[id].global &&
		    d->slots[i].eval.violating[id])
			return true;
	return false;
}

/*
 * A global reject_rate latch: the strategies' fresh orders count together
 * toward min_orders, but a strategy whose rule tripped while the latch held
 * (or raised it) must show some of its own, at or below the limit. Summed
 * alone, other strategies' clean orders let a resume to ACTIVE through while
 * the strategy that tripped still had 4 of its 5 orders rejected.
 */
static bool tripper_lacks_evidence(const struct bk_daemon *d, char *why, size_t len)
{
	const struct bk_scope *g = bk_state_cscope(&d->state, BK_GLOBAL);
	unsigned reason = bk_rule_reason(BK_RULE_REJECT_RATE);
	uint64_t mono = bk_now_mono_ns(), wall = bk_now_wall_ns(), since;

	if (!(g->active & (1u << reason)))
		return false;
	/* the latch's raise on the monotonic clock, 1 s early: a trip of the
	 * same tick counts whatever the clocks did in between */
	since = wall - g->latches[reason].since_wall_ns + 1000000000ull;
	since = since < mono ? mono - since : 0;
	for (uint32_t i = 0; i < d->state.n_strategies; i++) {
		const struct bk_slot_rules *sr = &d->slots[i];
		const struct bk_window *w = &sr->eval.rej_win;
		uint64_t t;
		const struct bk_rule_cfg *r;

		if (!sr->rules)
			continue;
		r = &sr->rules[BK_RULE_REJECT_RATE];
		t = sr->eval.tripped_ns[BK_RULE_REJECT_RATE];
		if (!r->enabled || !r->global || !t || t < since)
			continue;
		if (w->sum_orders &&
		    (double)w->sum_rejects <= r->max * (double)w->sum_orders)
			continue;
		snprintf(why, len,
		         "not enough evidence: strategy %s tripped reject_rate on global "
		         "and its own last %u ms show %llu rejects in %llu orders (limit "
		         "%.4f); other strategies' orders do not show its venue accepts "
		         "again. Let it trade as a probe (reduce-only or cautious), then "
		         "resume to active (or --force, audited as forced)",
		         d->state.strategies[i].name, r->window_ms,
		         (unsigned long long)w->sum_rejects,
		         (unsigned long long)w->sum_orders, r->max);
		return true;
	}
	return false;
}

bool bk_rulecheck_lacks_evidence(const struct bk_daemon *d, int slot, unsigned reason,
                                 char *why, size_t len)
{
	const struct bk_rule_cfg *r = NULL;
	uint64_t orders = 0, rejects = 0;
	uint32_t need;

	if (reason != bk_rule_reason(BK_RULE_REJECT_RATE))
		return false; /* an empty order-rate window is the limit holding */
	for (uint32_t i = 0; i < d->state.n_strategies; i++) {
		const struct bk_slot_rules *sr = &d->slots[i];

		if (!sr->rules || !sr->rules[BK_RULE_REJECT_RATE].enabled ||
		    (slot != BK_GLOBAL && (int)i != slot) ||
		    (slot == BK_GLOBAL && !sr->rules[BK_RULE_REJECT_RATE].global))
			continue;
		/* strategies may override the rule: the most demanding counts */
		if (!r || sr->rules[BK_RULE_REJECT_RATE].min_orders > r->min_orders)
			r = &sr->rules[BK_RULE_REJECT_RATE];
		orders += sr->eval.rej_win.sum_orders;
		rejects += sr->eval.rej_win.sum_rejects;
	}
	if (!r)
		return false; /* the rule is off: nothing to judge with */
	need = r->min_orders ? r->min_orders : 1;
	if (orders >= need)
		return slot == BK_GLOBAL && tripper_lacks_evidence(d, why, len);
	snprintf(why, len,
	         "not enough evidence: %llu of %u orders in the last %u ms for "
	         "reject_rate on %s (%llu rejected); an empty window while halted "
	         "shows nothing. Resume to reduce-only or cautious as a probe, then "
	         "to active once %u orders show the reject rate at or below %.4f "
	         "(or --force, audited as forced)",
	         (unsigned long long)orders, need, r->window_ms,
	         slot == BK_GLOBAL ? "global" : d->state.strategies[slot].name,
	         (unsigned long long)rejects, need, r->max);
	return true;
}
