/*
 * bk_cmd_auth - may this caller do this? The permission a command needs,
 * the refusal (audited, rate-limited per caller: bk_auth.h) when it may not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_cmd.h"
#include "bk_log.h"
#include "bk_text.h"

static bool is_kill(const Breaker__Request *req)
{
	return req->trip->has_reason_code &&
	       req->trip->reason_code == BREAKER__REASON_CODE__KILL_SWITCH;
}

/* The command as the CLI names it: a kill is a trip with kill_switch. */
static const char *command_name(const Breaker__Request *req)
{
	static const char *const names[] = {
	    "trip", "resume", "status", "strategies", "register", "report", "reconcile"};

	if (req->cmd_case == BREAKER__REQUEST__CMD_TRIP && is_kill(req))
		return "kill";
	if (req->cmd_case == BREAKER__REQUEST__CMD_REBASE)
		return "rules rebase";
	if (req->cmd_case == BREAKER__REQUEST__CMD_INCIDENT)
		return "incident";
	if (req->cmd_case == BREAKER__REQUEST__CMD_GROUP)
		return req->group->has_remove && req->group->remove ? "group remove"
		                                                    : "group add";
	if (req->cmd_case == BREAKER__REQUEST__CMD_UNREGISTER)
		return "unregister";
	if (req->cmd_case == BREAKER__REQUEST__CMD_RENAME)
		return "rename";
	if (req->cmd_case >= BREAKER__REQUEST__CMD_TRIP &&
	    req->cmd_case <= BREAKER__REQUEST__CMD_RECONCILE)
		return names[req->cmd_case - BREAKER__REQUEST__CMD_TRIP];
	return "unknown";
}

static bool is_resolve(const Breaker__Request *req)
{
	return req->incident && req->incident->op &&
	       !strcmp(req->incident->op, "resolve");
}

/* ... and as a refusal says it: "uid 1001 may not <verb>", for what is missing. */
static const char *command_verb(const Breaker__Request *req, unsigned missing)
{
	switch (req->cmd_case) {
	case BREAKER__REQUEST__CMD_TRIP:
		return is_kill(req) ? "kill" : "trip";
	case BREAKER__REQUEST__CMD_RESUME:
		return missing & BK_PERM_RESUME ? "resume" : "force a resume";
	case BREAKER__REQUEST__CMD_REGISTER:
		return "register strategies";
	case BREAKER__REQUEST__CMD_GROUP:
		return "change a strategy's groups";
	case BREAKER__REQUEST__CMD_UNREGISTER:
	case BREAKER__REQUEST__CMD_RENAME:
		return "unregister or rename strategies";
	case BREAKER__REQUEST__CMD_RECONCILE:
		return "post reconciliations (they can clear a break)";
	case BREAKER__REQUEST__CMD_REPORT:
		return "report telemetry (it feeds the rules)";
	case BREAKER__REQUEST__CMD_REBASE:
		return "rebase a rule (it can clear a violation, like a forced resume)";
	case BREAKER__REQUEST__CMD_INCIDENT:
		return is_resolve(req) ? "resolve incidents (as resume: the all-clear)"
		                       : "record incidents (as trip)";
	default:
		return "query breakerd";
	}
}

static unsigned perms_needed(const Breaker__Request *req)
{
	switch (req->cmd_case) {
	case BREAKER__REQUEST__CMD_TRIP:
		return is_kill(req) ? BK_PERM_KILL : BK_PERM_TRIP;
	case BREAKER__REQUEST__CMD_RESUME:
		return BK_PERM_RESUME |
		       (req->resume->has_force && req->resume->force ? BK_PERM_FORCE : 0);
	case BREAKER__REQUEST__CMD_REGISTER:
	case BREAKER__REQUEST__CMD_RECONCILE:
	case BREAKER__REQUEST__CMD_GROUP: /* as register: it changes who is held */
	case BREAKER__REQUEST__CMD_UNREGISTER:
	case BREAKER__REQUEST__CMD_RENAME:
		return BK_PERM_RESUME;
	case BREAKER__REQUEST__CMD_REPORT: /* it can keep a rule from tripping */
		return BK_PERM_REPORT;
	case BREAKER__REQUEST__CMD_REBASE: /* it clears a violation: as forcing */
		return BK_PERM_RESUME | BK_PERM_FORCE;
	case BREAKER__REQUEST__CMD_INCIDENT: /* paperwork of a halt: as trip; */
		return is_resolve(req) ? BK_PERM_RESUME : BK_PERM_TRIP; /* all-clear */
	default:
		return BK_PERM_QUERY;
	}
}

/* A refused trip or resume of a group names the (first valid) group, so the
 * REFUSED record does not read as an attempt on global. */
static void refused_group(const Breaker__Request *req, Breaker__AuditRecord *rec)
{
	const char *why;

	if (req->cmd_case == BREAKER__REQUEST__CMD_TRIP) {
		for (size_t i = 0; i < req->trip->n_groups && !rec->group; i++)
			if (bk_group_tag_check(req->trip->groups[i], &why) == 0)
				rec->group = req->trip->groups[i];
		for (size_t i = 0; i < req->trip->n_strategies && !rec->strategy; i++)
			if (bk_strategy_name_valid(req->trip->strategies[i]))
				rec->strategy = req->trip->strategies[i];
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_RESUME && req->resume->group &&
	           bk_group_tag_check(req->resume->group, &why) == 0) {
		rec->group = req->resume->group;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_GROUP && req->group->group &&
	           bk_group_tag_check(req->group->group, &why) == 0) {
		rec->group = req->group->group;
	}
}

/* What the refused caller tried, where it can be told without trusting it. */
static void refused_attempt(struct bk_cmd *c, Breaker__AuditRecord *rec)
{
	const Breaker__Request *req = c->req;
	const char *scope = NULL, *reason = NULL;
	int code = -1;

	if (req->cmd_case == BREAKER__REQUEST__CMD_TRIP) {
		scope = req->trip->strategy;
		reason = req->trip->reason;
		code = req->trip->has_reason_code ? (int)req->trip->reason_code : -1;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_RESUME) {
		scope = req->resume->strategy;
		reason = req->resume->reason;
		code = req->resume->has_reason_code ? (int)req->resume->reason_code : -1;
		rec->has_forced = 1;
		rec->forced = req->resume->has_force && req->resume->force;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_REGISTER) {
		scope = req->register_->strategy;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_GROUP) {
		scope = req->group->strategy;
		reason = req->group->reason;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_REPORT) {
		scope = req->report->strategy;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_REBASE) {
		scope = req->rebase->strategy;
		reason = req->rebase->reason;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_UNREGISTER) {
		scope = req->unregister->strategy;
		reason = req->unregister->reason;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_RENAME) {
		scope = req->rename->strategy;
		reason = req->rename->reason;
	}
	rec->strategy = scope && bk_strategy_name_valid(scope) ? (char *)scope : NULL;
	refused_group(req, rec);
	rec->has_reason_code = code >= 0 && code < BK_REASON_COUNT;
	rec->reason_code = rec->has_reason_code ? (Breaker__ReasonCode)code : 0;
	rec->reason =
	    reason && bk_text_valid(reason, c->d->cfg.reason_max) ? (char *)reason : NULL;
}

/*
 * Refused for want of authorisation: nothing changes, the caller is told
 * why, and the refusal is audited (rate-limited per caller: bk_auth.h). An
 * audited refusal is answered once its record is durable.
 */
void bk_cmd_refuse_unauthorised(struct bk_cmd *c, const char *why)
{
	struct bk_daemon *d = c->d;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	struct bk_auth_bucket due;
	struct bk_actor who;
	bool record = bk_auth_admit(&d->auth, &c->peer, bk_now_mono_ns(), &due);

	d->ctr.auth_refusals++;
	c->refused = BREAKER__STATUS__ERR_UNAUTHORISED;
	c->rep.status = BREAKER__STATUS__ERR_UNAUTHORISED;
	c->rep.error = (char *)why;
	if (due.suppressed)
		bk_refusal_summary(d, &due);
	if (!record) {
		d->ctr.auth_suppressed++;
		bk_reply_now(d, &c->route, &c->rep);
		return;
	}
	bk_actor_of(d, &c->peer, &who);
	bk_cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__REFUSED, &who,
	              bk_now_wall_ns());
	refused_attempt(c, &rec);
	rec.command = (char *)command_name(c->req);
	rec.has_status = 1;
	rec.status = BREAKER__STATUS__ERR_UNAUTHORISED;
	rec.refusal = (char *)why;
	if (bk_audit_stage(&d->audit, &rec) < 0) {
		bk_reply_now(d, &c->route, &c->rep);
		return;
	}
	c->rep.has_audit_seq = 1;
	c->rep.audit_seq = rec.seq;
	if (d->flush_err) { /* the log is failing: no waiting for it */
		bk_reply_now(d, &c->route, &c->rep);
		return;
	}
	bk_pending_add(d, &c->route, &c->rep, &rec, BK_NO_SCOPE, false, true);
}

/* May c's caller do what it asks? If not, refused (and audited) here. */
bool bk_cmd_authorised(struct bk_cmd *c)
{
	unsigned need = perms_needed(c->req);
	unsigned missing = need & ~bk_auth_perms(&c->d->auth, &c->d->cfg, &c->peer);

	if (!missing)
		return true;
	bk_auth_why(&c->d->cfg, &c->peer, missing, command_verb(c->req, missing), c->why,
	            sizeof(c->why));
	bk_cmd_refuse_unauthorised(c, c->why);
	return false;
}
