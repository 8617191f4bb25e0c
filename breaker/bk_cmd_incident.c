/*
 * bk_cmd_incident - incidents on commands (docs/incidents.md): the id a
 * trip, resume or reconciliation goes under, and `breaker incident
 * open|ack|note|resolve` as audited records. A trip is refused only for a
 * malformed id (the CLI checks it first); an unknown well-formed id on a trip
 * opens that incident, so paperwork never stands between an operator and a
 * halt. Resume and reconcile must name a known incident.
 */
#include <stdio.h>
#include <string.h>

#include "bk_cmd.h"
#include "bk_log.h"
#include "bk_text.h"

#define ID_FORMAT "incident id must be INC-YYYY-NNN (3 to 6 digits), e.g. INC-2026-001"

static bool held(const struct bk_daemon *d, int slot)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, slot);

	return sc && bk_scope_mode(sc) != BK_ACTIVE;
}

bool bk_cmd_incident_check(struct bk_cmd *c, const char *id, bool must_exist)
{
	if (!id)
		return true;
	if (!bk_incident_id_valid(id)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST, ID_FORMAT);
		return false;
	}
	if (must_exist && !bk_incident_find(&c->d->incidents, id)) {
		snprintf(c->why, sizeof(c->why),
		         "unknown incident %s ('breaker incident list'; open it with "
		         "'breaker incident open')",
		         id);
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_UNKNOWN_INCIDENT, c->why);
		return false;
	}
	return true;
}

/*
 * No incident of its own scope or of global: while any scope is still held
 * under an unresolved incident, a trip with no id is part of that situation
 * (the newest such incident). Only a breaker with nothing held under an open
 * incident opens a new one; --incident separates them by hand.
 */
static void join_held(struct bk_daemon *d, struct bk_trip_incident *ti)
{
	const struct bk_incident *best = NULL;
	uint32_t n = d->state.n_strategies;

	for (int slot = BK_GLOBAL; slot < (int)n; slot++) {
		const char *id =
		    held(d, slot) ? bk_incident_of_scope(&d->incidents, slot) : NULL;
		const struct bk_incident *x =
		    id ? bk_incident_find(&d->incidents, id) : NULL;
		if (x && (!best || x->opened_wall_ns > best->opened_wall_ns))
			best = x;
	}
	if (best) {
		snprintf(ti->id, sizeof(ti->id), "%s", best->id);
		ti->opened = false;
	}
}

void bk_incident_trip_plan(struct bk_daemon *d, int slot, const char *given,
                           struct bk_trip_incident *ti)
{
	struct bk_incident *x = given ? bk_incident_find(&d->incidents, given) : NULL;

	if (given) {
		snprintf(ti->id, sizeof(ti->id), "%s", given);
		ti->opened = !x;
		return;
	}
	bk_incident_for_trip(&d->incidents, slot, held(d, slot), held(d, BK_GLOBAL),
	                     bk_now_wall_ns(), ti->id, &ti->opened);
	if (ti->opened)
		join_held(d, ti);
}

void bk_incident_trip_record(struct bk_daemon *d, int slot, unsigned reason,
                             struct bk_trip_incident *ti, Breaker__AuditRecord *rec)
{
	rec->incident = ti->id;
	if (ti->opened) {
		unsigned sev =
		    reason < BK_REASON_COUNT ? d->cfg.incident_severity[reason] : 1;
		rec->severity = (char *)bk_incident_severity_name((int)sev);
		rec->has_incident_opened = rec->incident_opened = 1;
	}
	bk_incident_apply(&d->incidents, rec, slot);
}

const char *bk_incident_resume_id(struct bk_daemon *d, int slot, const char *given)
{
	const char *id;

	if (given)
		return given;
	/* only while held: a routine reconciliation after the all clear is not
	 * part of the incident, even if nobody resolved it yet */
	id = held(d, slot) ? bk_incident_of_scope(&d->incidents, slot) : NULL;
	return id || !held(d, BK_GLOBAL) ? id
	                                 : bk_incident_of_scope(&d->incidents, BK_GLOBAL);
}

/* ---- breaker incident open|ack|note|resolve ---------------------------------- */

static const char *op_invalid(struct bk_cmd *c, const Breaker__IncidentCmd *m, int *op,
                              char *assigned)
{
	static const char *const ops[] = {"open", "ack", "note", "resolve"};
	struct bk_incident *x;
	bool opened;

	for (*op = 0; *op < 4 && (!m->op || strcmp(m->op, ops[*op])); (*op)++)
		;
	if (*op == 4)
		return "incident command must be open, ack, note or resolve";
	if (m->id && !bk_incident_id_valid(m->id))
		return ID_FORMAT;
	if (*op == 0) {
		if (!bk_incident_severity_parse(m->severity))
			return "open needs --severity P1, P2, P3 or P4";
		if (!m->title || !*m->title ||
		    !bk_text_valid(m->title, BK_INC_TITLE_MAX - 1))
			return "open needs --title: 1-95 bytes of UTF-8 text without "
			       "control characters";
		if (m->commander && !bk_text_valid(m->commander, 63))
			return "--commander: up to 63 bytes of text";
		if (m->id && bk_incident_find(&c->d->incidents, m->id)) {
			c->refused = BREAKER__STATUS__ERR_INCIDENT_STATE;
			return "that incident is open already (ids are never reused)";
		}
		if (!m->id) /* a new id, as a trip would get */
			bk_incident_for_trip(&c->d->incidents, BK_GLOBAL, false, false,
			                     bk_now_wall_ns(), assigned, &opened);
		return NULL;
	}
	if (!m->id)
		return "name the incident: INC-YYYY-NNN";
	if (!(x = bk_incident_find(&c->d->incidents, m->id))) {
		c->refused = BREAKER__STATUS__ERR_UNKNOWN_INCIDENT;
		return "unknown incident ('breaker incident list' shows them)";
	}
	if ((*op == 2 || *op == 3) &&
	    (!m->text || !*m->text || !bk_text_valid(m->text, c->d->cfg.reason_max)))
		return *op == 2 ? "a note needs its text: UTF-8 without control "
		                  "characters, within the configured length"
		                : "resolve needs --resolution: UTF-8 text without "
		                  "control characters, within the configured length";
	if ((*op == 1 || *op == 3) && x->state == BK_INC_RESOLVED) {
		c->refused = BREAKER__STATUS__ERR_INCIDENT_STATE;
		return "that incident is resolved already";
	}
	if (*op == 1 && x->state == BK_INC_ACKED) {
		c->refused = BREAKER__STATUS__ERR_INCIDENT_STATE;
		return "that incident is acknowledged already";
	}
	return NULL;
}

void bk_cmd_do_incident(struct bk_cmd *c)
{
	static const Breaker__AuditRecord__Kind kinds[] = {
	    BREAKER__AUDIT_RECORD__KIND__INCIDENT_OPEN,
	    BREAKER__AUDIT_RECORD__KIND__INCIDENT_ACK,
	    BREAKER__AUDIT_RECORD__KIND__INCIDENT_NOTE,
	    BREAKER__AUDIT_RECORD__KIND__INCIDENT_RESOLVE};
	const Breaker__IncidentCmd *m = c->req->incident;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	char id[BK_INCIDENT_ID_MAX] = "";
	struct bk_actor who;
	const char *why;
	int64_t seq;
	int op;

	c->refused = BREAKER__STATUS__OK;
	if ((why = op_invalid(c, m, &op, id))) {
		bk_cmd_refuse(
		    c, c->refused ? c->refused : BREAKER__STATUS__ERR_BAD_REQUEST, why);
		return;
	}
	if (c->d->flush_err) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_NOT_DURABLE,
		              "the audit log is failing: nothing recorded");
		return;
	}
	bk_actor_of(c->d, &c->peer, &who);
	bk_cmd_record(c, &rec, kinds[op], &who, bk_now_wall_ns());
	rec.incident = m->id ? m->id : id;
	if (op == 0) {
		rec.severity = (char *)bk_incident_severity_name(
		    bk_incident_severity_parse(m->severity));
		rec.title = m->title;
		rec.commander = m->commander;
	}
	rec.reason = m->text;
	bk_cmd_request_id(c, &rec);
	if ((seq = bk_audit_stage(&c->d->audit, &rec)) < 0) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_NOT_DURABLE,
		              "its audit record could not be staged: nothing changed");
		return;
	}
	c->rep.has_audit_seq = 1;
	c->rep.audit_seq = (uint64_t)seq;
	bk_incident_apply(&c->d->incidents, &rec, BK_GLOBAL);
	bk_cmd_remember(c->d, &rec);
	c->rep.incident = rec.incident; /* an open's assigned id */
	bk_pending_add(c->d, &c->route, &c->rep, &rec, BK_GLOBAL, false, false);
	c->rep.incident = NULL;
}
