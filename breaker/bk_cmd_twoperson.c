/*
 * bk_cmd_twoperson - [auth] two_person_global_resume: a global resume takes
 * two operators, the first one's proposal audited and open for a while.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_cmd.h"
#include "bk_log.h"
#include "bk_text.h"

static bool same_plan(const struct bk_proposal *pr, const struct bk_plan *p)
{
	return pr->reason == p->reason && pr->all == p->all && pr->forced == p->forced &&
	       pr->target == p->target && pr->firm == p->firm;
}

/* The first operator's resume: audited as a proposal, answered PENDING. */
static void propose(struct bk_cmd *c, const struct bk_plan *p, const struct bk_actor *who,
                    const char *me, uint64_t replaced, uint64_t lapsed)
{
	struct bk_daemon *d = c->d;
	struct bk_proposal *pr = &d->auth.proposal;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	uint64_t wall = bk_now_wall_ns(),
	         window = d->cfg.confirm_window_s * 1000000000ull;
	char note[96] = "";

	bk_cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__RESUME_PROPOSED, who, wall);
	bk_record_plan(&rec, p, NULL);
	rec.reason = c->req->resume->reason;
	rec.command = p->firm ? "resume --firm" : "resume";
	if (lapsed || replaced)
		snprintf(note, sizeof(note), "the proposal at audit seq %llu %s",
		         (unsigned long long)(lapsed ? lapsed : replaced),
		         lapsed ? "lapsed unconfirmed" : "is replaced (another target)");
	rec.evidence = note[0] ? note : NULL;
	if (bk_audit_stage(&d->audit, &rec) < 0) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_NOT_DURABLE,
		              "its audit record could not be staged: nothing changed");
		return;
	}
	*pr = (struct bk_proposal){.active = true,
	                           .seq = rec.seq,
	                           .actor = *who,
	                           .expires_mono_ns = bk_now_mono_ns() + window,
	                           .expires_wall_ns = wall + window,
	                           .reason = p->reason,
	                           .all = p->all,
	                           .forced = p->forced,
	                           .target = p->target,
	                           .firm = p->firm};
	snprintf(pr->who, sizeof(pr->who), "%s", me);
	snprintf(c->why, sizeof(c->why),
	         "two-person rule: this global resume is proposed (audit seq %llu), "
	         "not applied; a different authorised operator must send the same "
	         "resume within %u s%s%s",
	         (unsigned long long)rec.seq, d->cfg.confirm_window_s,
	         note[0] ? "; " : "", note);
	c->rep.status = BREAKER__STATUS__PENDING_CONFIRMATION;
	c->rep.error = c->why;
	c->rep.has_from_mode = c->rep.has_to_mode = 1;
	c->rep.from_mode = (Breaker__Mode)p->from_mode;
	c->rep.to_mode = (Breaker__Mode)p->to_mode;
	c->rep.has_confirm_by_wall_ns = 1;
	c->rep.confirm_by_wall_ns = pr->expires_wall_ns;
	c->rep.has_audit_seq = 1;
	c->rep.audit_seq = rec.seq;
	bk_pending_add(d, &c->route, &c->rep, &rec, BK_GLOBAL, false,
	               false); /* watchers see it */
}

/*
 * A global resume under the two-person rule: true if it goes ahead now, with
 * *ok the proposal it confirms; false if it was answered here (proposed,
 * or refused because its proposer sent it again).
 */
bool bk_cmd_two_person(struct bk_cmd *c, const struct bk_plan *p,
                       const struct bk_actor *who, struct bk_proposal *ok)
{
	struct bk_proposal *pr = &c->d->auth.proposal;
	uint64_t lapsed = 0;
	char me[BK_WHO_MAX];

	bk_auth_who(&c->peer, me, sizeof(me));
	if (pr->active && bk_now_mono_ns() >= pr->expires_mono_ns) {
		lapsed = pr->seq;
		pr->active = false;
	}
	if (!pr->active || !same_plan(pr, p)) {
		propose(c, p, who, me, pr->active ? pr->seq : 0, lapsed);
		return false;
	}
	if (strcmp(pr->who, me) != 0) {
		*ok = *pr;
		pr->active = false;
		return true;
	}
	snprintf(c->why, sizeof(c->why),
	         "two-person rule: %s proposed this global resume (audit seq %llu); a "
	         "different authorised operator must confirm it",
	         me, (unsigned long long)pr->seq);
	bk_cmd_refuse_unauthorised(c, c->why);
	return false;
}
