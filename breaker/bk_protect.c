/*
 * bk_protect - the daemon's own actions, called by the tick and boot: its
 * trips (flip, stage, pend), its cooldown steps (durable before visible),
 * and the summaries of refusals held back by the rate limit.
 */
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_daemon.h"
#include "bk_invariant.h"
#include "bk_log.h"

void bk_count_trip(struct bk_daemon *d, int slot, unsigned reason)
{
	if (reason < BK_REASON_COUNT)
		d->ctr.trips[slot != BK_GLOBAL][reason]++;
}

/* The summary of a caller's refusals that were not recorded one by one. */
void bk_refusal_summary(struct bk_daemon *d, const struct bk_auth_bucket *b)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	struct bk_actor who;
	char text[160];

	bk_actor_of(d, &b->peer, &who);
	bk_record_fill(d, &rec, BREAKER__AUDIT_RECORD__KIND__REFUSED, &who,
	               bk_now_wall_ns());
	snprintf(text, sizeof(text),
	         "%u further refusals from %s not recorded one by one (rate limit: %d "
	         "at once, then %d a second)",
	         b->suppressed, b->who, BK_AUTH_BURST, BK_AUTH_RATE);
	rec.refusal = text;
	rec.has_suppressed = rec.has_status = 1;
	rec.suppressed = b->suppressed;
	rec.status = BREAKER__STATUS__ERR_UNAUTHORISED;
	rec.peer_cn = b->peer.tls ? (char *)b->peer.cn : NULL;
	if (bk_audit_stage(&d->audit, &rec) < 0)
		bk_warn("audit staging failed: a summary of %u refusals is lost",
		        b->suppressed);
}

void bk_protect_refusals(struct bk_daemon *d, uint64_t now_mono_ns)
{
	struct bk_auth_bucket due;

	while (d->auth.suppressing && bk_pending_can_accept(d) &&
	       bk_auth_due(&d->auth, now_mono_ns, &due))
		bk_refusal_summary(d, &due);
}

void bk_protect_note_trip(struct bk_daemon *d)
{
	d->last_trip_change_seq = atomic_load(&d->shm.shm->change_seq);
	d->last_trip_mono_ns = bk_now_mono_ns();
	/* the TRIP record about to be staged takes the next seq */
	bk_orders_note_trip(d, d->audit.next_seq);
}

int bk_protect_trip(struct bk_daemon *d, int slot, unsigned reason, int mode,
                    Breaker__AuditRecord *rec, bool always)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, slot);
	struct bk_actor self;
	const char *why;
	struct bk_plan p;
	uint64_t wall = bk_now_wall_ns();
	static struct bk_trip_incident ti; /* the record is staged before reuse */

	if (bk_state_plan_trip(&d->state, slot, (int)reason, mode, &p, &why))
		return -EINVAL;
	BK_INVARIANT(sc); /* a slot the plan accepts has a scope */
	if (!always && p.target <= sc->latches[reason].mode)
		return 0; /* already latched at least this far: nothing new to record */
	bk_actor_self(&self);
	if (slot == BK_GLOBAL) /* the situation changed: propose again */
		d->auth.proposal.active = false;
	bk_incident_trip_plan(d, slot, NULL, &ti);
	bk_state_apply(&d->state, &p, &self, wall, rec->reason, d->audit.next_seq,
	               d->audit.durable_seq, true);
	bk_publish_scope(d, slot);
	bk_shm_changed(&d->shm);
	bk_protect_note_trip(d);
	bk_count_trip(d, slot, reason);
	bk_record_fill(d, rec, BREAKER__AUDIT_RECORD__KIND__TRIP, &self, wall);
	bk_record_plan(rec, &p, sc->name);
	bk_incident_trip_record(d, slot, reason, &ti, rec);
	if (bk_audit_stage(&d->audit, rec) < 0) {
		bk_err("audit staging failed for the daemon's own trip: it is in effect");
		return -EIO;
	}
	bk_pending_add(d, NULL, NULL, rec, slot, false, false);
	return 0;
}

void bk_protect_step(struct bk_daemon *d, int slot, unsigned reason, int to,
                     Breaker__AuditRecord *rec)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, slot);
	struct bk_actor self;
	struct bk_plan p;
	char why[256];
	uint64_t wall = bk_now_wall_ns();

	const char *rule;

	BK_INVARIANT(sc); /* the tick steps only the scopes it evaluates */
	/* Only a latch the daemon raised itself and no operator tripped since,
	 * and only once no strategy still breaks the rule (a global latch may
	 * be held up by several). */
	if (!(sc->active & (1u << reason)) || sc->latches[reason].mode <= to ||
	    sc->latches[reason].operator_owned ||
	    strcmp(sc->latches[reason].actor.name, "breakerd") != 0 ||
	    bk_rulecheck_holds(d, slot, reason, &rule) || !bk_pending_can_accept(d))
		return;
	/* forced: a step may skip a stage (HALTED -> CAUTIOUS), and says so */
	if (bk_state_plan_resume(&d->state, slot, (int)reason, to, true, &p, why,
	                         sizeof(why)))
		return;
	bk_actor_self(&self);
	bk_record_fill(d, rec, BREAKER__AUDIT_RECORD__KIND__RESUME, &self, wall);
	bk_record_plan(rec, &p, sc->name);
	if (bk_audit_stage(&d->audit, rec) < 0)
		return;
	bk_state_apply(&d->state, &p, &self, wall, rec->reason, rec->seq,
	               d->audit.durable_seq, true);
	bk_pending_add(d, NULL, NULL, rec, slot, true, false);
	bk_info("rule cooldown: %s %s latch stepped to %s once durable",
	        sc->name[0] ? sc->name : "global", bk_reason_name(reason),
	        bk_mode_str((enum bk_mode)to));
}
