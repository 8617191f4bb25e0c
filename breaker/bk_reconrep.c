/*
 * bk_reconrep - reconciliation as commands and status see it: one
 * strategy's break report, and whether a global resume waits for one.
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

/* One strategy's break report, for the reply and for status. */
void bk_recon_report(const struct bk_recon *r, const char *strategy, uint64_t now_mono,
                     Breaker__RuleState *rs)
{
	bool current = bk_recon_current(r, now_mono);

	breaker__rule_state__init(rs);
	rs->rule = "reconciliation";
	rs->strategy = (char *)strategy;
	rs->verdict = (char *)bk_recon_verdict_name(r->verdict);
	if ((r->verdict == BK_RV_OK || r->verdict == BK_RV_BREAK) && !current)
		rs->verdict = "stale";
	rs->has_reconciled = r->verdict != BK_RV_WITHDRAWN && r->verdict != BK_RV_NONE;
	rs->reconciled = r->reconciled;
	rs->has_engine_position =
	    isfinite(r->engine) && rs->has_reconciled && r->verdict != BK_RV_UNKNOWN;
	rs->engine_position = r->engine;
	rs->has_measured = rs->has_engine_position;
	rs->measured = r->brk;
	rs->has_threshold = rs->has_reconciled;
	rs->threshold = r->limit;
	rs->has_utilisation = rs->has_measured && r->limit > 0;
	rs->utilisation = rs->has_utilisation ? r->brk / r->limit : 0;
	rs->has_violated = 1;
	rs->violated = current && r->verdict == BK_RV_BREAK;
}

/*
 * [rules] resume_requires_reconcile: a global resume needs, for every
 * strategy whose reconciliation rule is on and whose engine has shown a fill
 * or a position since breakerd started,
 * a current "ok" verdict posted after the global scope's latest trip.
 */
bool bk_recon_resume_blocked(const struct bk_daemon *d, char *why, size_t len)
{
	const struct bk_scope *g = bk_state_cscope(&d->state, BK_GLOBAL);
	uint64_t trip = 0, mono = bk_now_mono_ns();

	if (!d->cfg.rules.resume_requires_reconcile)
		return false;
	for (unsigned r = 1; r < BK_REASON_COUNT; r++)
		if ((g->active & (1u << r)) && g->latches[r].since_wall_ns > trip)
			trip = g->latches[r].since_wall_ns;
	for (uint32_t i = 0; i < d->state.n_strategies; i++) {
		const struct bk_slot_rules *sr = &d->slots[i];
		const struct bk_recon *rc = &sr->eval.recon;
		const char *name = d->state.strategies[i].name;

		if (!sr->rules || !sr->rules[BK_RULE_RECONCILIATION].enabled ||
		    !bk_recon_active(rc))
			continue;
		if (rc->verdict == BK_RV_OK && bk_recon_current(rc, mono) &&
		    rc->posted_wall_ns > trip)
			continue;
		snprintf(
		    why, len,
		    "resume_requires_reconcile: strategy %s has no reconciliation "
		    "judged ok since the trip (its latest: %s%s); post one with "
		    "'breaker reconcile %s=POS --as-of-fills N', or --force "
		    "(audited as forced)",
		    name, bk_recon_verdict_name(rc->verdict),
		    (rc->verdict == BK_RV_OK || rc->verdict == BK_RV_BREAK)
		        ? (bk_recon_current(rc, mono) ? ", before the trip" : ", stale")
		        : "",
		    name);
		return true;
	}
	return false;
}
