/*
 * bk_cmd - command handling: decode, validate, authorise, apply, audit, ack.
 *
 * Ordering is the product's promise:
 *   trip:   flip the shm word, stage the audit record, ack once durable;
 *   resume: stage the audit record, ack and flip once durable.
 * Every refusal is a typed reply that changed nothing.
 *
 * Here: decode and dispatch, and the handlers (validate, plan, apply,
 * stage). Beside it: bk_cmd_auth.c (authorise), bk_cmd_dedupe.c (resends),
 * bk_cmd_twoperson.c (the two-person rule); around it: bk_pending.c (replies
 * waiting for durability), bk_record.c (actors, record fields), bk_text.c
 * (text checks), bk_protect.c (the daemon's own trips and steps),
 * bk_reconrep.c (reconciliation reports).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include "bk_cmd.h"
#include "bk_etcd_fwd.h"
#include "bk_log.h"
#include "bk_suggest.h"
#include "bk_text.h"

/* ---- validation ------------------------------------------------------------ */

/* A varint at *p (before end); false if it runs past end or 10 bytes. */
static bool wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/*
 * Does a string field of this message (or of one inside it) hold a NUL
 * byte? protobuf-c hands strings over as char *: "s1\0/evil" would be read
 * as "s1" and act on s1. Walks the wire bytes with the descriptors; the
 * message has unpacked already, so it is well-formed.
 */
static bool wire_has_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
                         size_t len, int depth)
{
	const uint8_t *end = p + len;
	uint64_t key, n;

	while (p < end) {
		if (!wire_varint(&p, end, &key))
			return false;
		switch (key & 7) {
		case 0:
			if (!wire_varint(&p, end, &n))
				return false;
			break;
		case 1:
			p += 8;
			break;
		case 5:
			p += 4;
			break;
		case 2: {
			const ProtobufCFieldDescriptor *f =
			    protobuf_c_message_descriptor_get_field(desc,
			                                            (unsigned)(key >> 3));
			if (!wire_varint(&p, end, &n) || n > (uint64_t)(end - p))
				return false;
			if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, n))
				return true;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 8 &&
			    wire_has_nul(f->descriptor, p, n, depth + 1))
				return true;
			p += n;
			break;
		}
		default: /* groups: protobuf-c would not have unpacked them */
			return false;
		}
	}
	return false;
}

/* Strategy field to slot: absent or "" is global. */
static Breaker__Status resolve_scope(const struct bk_daemon *d, const char *name,
                                     int *slot, char *why, size_t len)
{
	if (!name || !*name) {
		*slot = BK_GLOBAL;
		return BREAKER__STATUS__OK;
	}
	if (!bk_strategy_name_valid(name)) {
		snprintf(why, len, "invalid strategy name: 1-%u bytes of [A-Za-z0-9._:-]",
		         BK_NAME_MAX - 1);
		return BREAKER__STATUS__ERR_BAD_REQUEST;
	}
	*slot = bk_state_find(&d->state, name);
	if (*slot < 0) {
		char near[200];

		/* a typo is refused (never registered) with the names it was near */
		if (bk_suggest_strategies(&d->state, name, near, sizeof(near)))
			snprintf(why, len, "unknown strategy '%s': did you mean %s?",
			         name, near);
		else
			snprintf(why, len, "unknown strategy '%s' (register it first)",
			         name);
		return BREAKER__STATUS__ERR_UNKNOWN_STRATEGY;
	}
	return BREAKER__STATUS__OK;
}

Breaker__Status bk_cmd_resolve_scope(const struct bk_daemon *d, const char *name,
                                     int *slot, char *why, size_t len)
{
	return resolve_scope(d, name, slot, why, len);
}

/* ---- staging (the wait for durability: bk_pending.c) -------------------------- */

/* Stage rec and queue the ack; on failure answer at once. True if staged. */
static bool stage_and_pend(struct bk_daemon *d, struct bk_route *route,
                           Breaker__Reply *rep, Breaker__AuditRecord *rec, int slot,
                           bool republish)
{
	int64_t seq = bk_audit_stage(&d->audit, rec);

	if (seq < 0) {
		bk_err("audit staging failed (%s): command not durable",
		       strerror((int)-seq));
		rep->status = BREAKER__STATUS__ERR_NOT_DURABLE;
		rep->error =
		    rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP
		        ? "the halt IS in effect, but its audit record could not "
		          "be staged"
		        : "its audit record could not be staged: nothing changed";
		bk_reply_now(d, route, rep);
		return false;
	}
	rep->has_audit_seq = 1;
	rep->audit_seq = (uint64_t)seq;
	bk_cmd_remember(d, rec);
	bk_pending_add(d, route, rep, rec, slot, republish, false);
	return true;
}

bool bk_cmd_stage_and_pend(struct bk_cmd *c, Breaker__AuditRecord *rec, int slot,
                           bool republish)
{
	return stage_and_pend(c->d, &c->route, &c->rep, rec, slot, republish);
}

/* ---- commands ----------------------------------------------------------------- */

static void count_command(struct bk_daemon *d, unsigned type, unsigned status)
{
	d->ctr.commands[type][status < BK_STATUS_COUNT ? status
	                                               : BREAKER__STATUS__ERR_INTERNAL]++;
}

/* ---- the handlers: validate, plan, apply, stage ------------------------------- */

static void do_trip(struct bk_cmd *c)
{
	const Breaker__Trip *t = c->req->trip;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	const char *reason = t->reason ? t->reason : "", *why = NULL;
	struct bk_trip_incident ti;
	struct bk_actor who;
	struct bk_plan p;
	Breaker__Status st;
	uint64_t wall = bk_now_wall_ns(), seq;
	bool named;
	int slot;

	if (t->n_strategies || t->n_groups) { /* several scopes, or a group */
		bk_cmd_trip_many(c);
		return;
	}
	if ((st = resolve_scope(c->d, t->strategy, &slot, c->why, sizeof(c->why)))) {
		bk_cmd_refuse(c, st, c->why);
		return;
	}
	if (!t->has_reason_code || !bk_reason_operator(t->reason_code)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_UNKNOWN_REASON,
		              "a trip needs a known reason code (e.g. manual_halt)");
		return;
	}
	if (!bk_text_valid(reason, c->d->cfg.reason_max)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "reason text must be UTF-8 without control characters, "
		              "within the configured length");
		return;
	}
	if (!bk_cmd_incident_check(c, t->incident, false))
		return;
	st = bk_state_plan_trip(&c->d->state, slot, (int)t->reason_code, (int)t->mode, &p,
	                        &why);
	if (st) {
		bk_cmd_refuse(c, st, why);
		return;
	}
	bk_incident_trip_plan(c->d, slot, t->incident, &ti); /* before the flip */
	p.by_operator = true; /* the latch is the operator's, even if a rule held it */
	named = bk_actor_cached(c->d, &c->peer, &who);
	/* The halt takes effect now; durability and the ack follow. */
	seq = c->d->audit.next_seq;
	bk_state_apply(&c->d->state, &p, &who, wall, reason, seq, c->d->audit.durable_seq,
	               true);
	bk_publish_scope(c->d, slot);
	bk_shm_changed(&c->d->shm);
	if (!named) { /* engines see the halt already; now the name, for people */
		struct bk_latch *l =
		    &bk_state_scope(&c->d->state, slot)->latches[p.reason];

		bk_actor_lookup(c->d, &who);
		if (l->audit_seq == seq) /* this trip raised it (not an earlier one) */
			memcpy(l->actor.name, who.name, sizeof(who.name));
	}
	bk_protect_note_trip(c->d);
	bk_count_trip(c->d, slot, p.reason);
	if (slot == BK_GLOBAL) /* the situation changed: propose again */
		c->d->auth.proposal.active = false;
	bk_cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__TRIP, &who, wall);
	bk_record_plan(&rec, &p, t->strategy);
	rec.has_operator_latch = rec.operator_latch = 1;
	rec.reason = (char *)reason;
	bk_incident_trip_record(c->d, slot, p.reason, &ti, &rec);
	c->rep.incident = ti.id;
	bk_cmd_request_id(c, &rec);
	c->rep.has_from_mode = c->rep.has_to_mode = 1;
	c->rep.from_mode = (Breaker__Mode)p.from_mode;
	c->rep.to_mode = (Breaker__Mode)p.to_mode;
	stage_and_pend(c->d, &c->route, &c->rep, &rec, slot, false);
}

/* A rule's latch stays until the rule holds again (or force). */
static bool condition_holds(const struct bk_daemon *d, const struct bk_plan *p, char *why,
                            size_t len)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, p->slot);
	const char *rule = NULL;

	for (unsigned r = 1; r < BK_REASON_COUNT; r++) {
		if (!(sc->active & (1u << r)) || (!p->all && r != p->reason))
			continue;
		/* [cluster]: quorum contact back and the mirror caught up */
		if (r == BK_R_AUTHORITY_LOST && !bk_etcd_may_resume(d, why, len))
			return true;
		if (bk_rulecheck_holds(d, p->slot, r, &rule)) {
			snprintf(why, len,
			         "rule %s still fails for %s: the %s latch stays until "
			         "it holds again (or --force, audited as forced: the "
			         "rule stays armed)",
			         rule, sc->name[0] ? sc->name : "global",
			         bk_reason_name(r));
			return true;
		}
	}
	return false;
}

/* [cluster]: authority_lost among the latches this resume releases while
 * quorum contact is not proven. Checked even with --force (which skips only
 * the mirror's catch-up check): the loop would latch it again a tick later,
 * engines reading ACTIVE in between with no contact (test_netns).
 * Break-glass without etcd is to leave the cluster (firmwide.md). */
static bool authority_unproven(const struct bk_daemon *d, const struct bk_plan *p,
                               char *why, size_t len)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, p->slot);

	if (!sc || !(sc->active & (1u << BK_R_AUTHORITY_LOST)) ||
	    (!p->all && p->reason != BK_R_AUTHORITY_LOST))
		return false;
	return !bk_etcd_in_contact(d, why, len);
}

/*
 * What a forced resume does, in words, for its audit record:
 * which latches go where, and which rules stay armed.
 */
static void forced_text(struct bk_daemon *d, const struct bk_plan *p, bool has_to,
                        char *buf, size_t len)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, p->slot);
	char held[200] = "", armed[400];
	size_t off = 0;

	buf[0] = '\0';
	if (!p->forced || !sc)
		return;
	for (unsigned r = 1; r < BK_REASON_COUNT && off < sizeof(held); r++)
		if ((sc->active & (1u << r)) && (p->all || r == p->reason))
			off += (size_t)snprintf(held + off, sizeof(held) - off, "%s%s",
			                        off ? ", " : "", bk_reason_name(r));
	bk_tick_rearm(d, p->slot, p->reason, p->all, false, armed, sizeof(armed));
	snprintf(buf, len, "forced: %s (%s) lowered to %s%s%s%s",
	         p->all ? "every latch" : "latch", held,
	         bk_mode_str((enum bk_mode)p->target),
	         has_to ? "" : " (one stage, no --to)", armed[0] ? "; " : "", armed);
}

/*
 * To ACTIVE, a rate rule's latch needs evidence that the rule holds, not
 * the empty window of a halted engine: see bk_rulecheck_lacks_evidence.
 */
static bool lacks_evidence(const struct bk_daemon *d, const struct bk_plan *p, char *why,
                           size_t len)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, p->slot);

	if (p->target != BK_ACTIVE)
		return false; /* a probe (reduce-only, cautious) is how evidence comes */
	for (unsigned r = 1; r < BK_REASON_COUNT; r++)
		if ((sc->active & (1u << r)) && (p->all || r == p->reason) &&
		    bk_rulecheck_lacks_evidence(d, p->slot, r, why, len))
			return true;
	return false;
}

static void do_resume(struct bk_cmd *c)
{
	const Breaker__Resume *r = c->req->resume;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	uint64_t wall = bk_now_wall_ns();
	struct bk_proposal pr = {0};
	struct bk_actor who;
	struct bk_plan p;
	Breaker__Status st;
	char rearm[400] = "";
	int slot;

	if (r->group && r->strategy) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "resume one scope: a strategy or a group, not both");
		return;
	}
	if ((st =
	         r->group
	             ? bk_cmd_resolve_group(c->d, r->group, &slot, c->why, sizeof(c->why))
	             : resolve_scope(c->d, r->strategy, &slot, c->why, sizeof(c->why)))) {
		bk_cmd_refuse(c, st, c->why);
		return;
	}
	if (!r->reason || !*r->reason ||
	    !bk_text_valid(r->reason, c->d->cfg.reason_max)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "a resume needs a reason: UTF-8 text without control "
		              "characters, within the configured length");
		return;
	}
	if (c->d->flush_err) {
		bk_cmd_refuse(
		    c, BREAKER__STATUS__ERR_NOT_DURABLE,
		    "the audit log is failing: no resume without its record on disk");
		return;
	}
	/* protobuf-c does not check enums: an explicit value must be a real one */
	if (r->has_reason_code && !bk_reason_operator(r->reason_code) &&
	    r->reason_code != BREAKER__REASON_CODE__AUDIT_CORRUPT &&
	    r->reason_code != BREAKER__REASON_CODE__AUTHORITY_LOST) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_UNKNOWN_REASON,
		              "unknown reason code");
		return;
	}
	if (r->has_to && !bk_mode_valid(r->to)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST, "unknown target mode");
		return;
	}
	if (!bk_cmd_incident_check(c, r->incident, true))
		return;
	st = bk_state_plan_resume(&c->d->state, slot,
	                          r->has_reason_code ? (int)r->reason_code : -1,
	                          r->has_to ? (int)r->to : -1, r->has_force && r->force,
	                          &p, c->why, sizeof(c->why));
	if (st) {
		bk_cmd_refuse(c, st, c->why);
		return;
	}
	if ((c->rep.retry_after_ms =
	         bk_limits_stage_wait_ms(c->d, &p, wall, c->why, sizeof(c->why)))) {
		c->rep.has_retry_after_ms = 1;
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_STAGE_TOO_SOON, c->why);
		return;
	}
	bk_etcd_link_check(c->d); /* FIRM_LINK before a resume that relies on it */
	if (authority_unproven(c->d, &p, c->why, sizeof(c->why))) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_CONDITION_HOLDS, c->why);
		return;
	}
	/* strategy rules trip strategies and global; the venue rules
	 * (bk_venuewatch.h) trip venue groups: a group has no rate evidence */
	if (!p.forced && (condition_holds(c->d, &p, c->why, sizeof(c->why)) ||
	                  (!BK_SLOT_IS_GROUP(slot) &&
	                   lacks_evidence(c->d, &p, c->why, sizeof(c->why))))) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_CONDITION_HOLDS, c->why);
		return;
	}
	if (slot == BK_GLOBAL && !p.forced &&
	    bk_recon_resume_blocked(c->d, c->why, sizeof(c->why))) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_RECONCILE_REQUIRED, c->why);
		return;
	}
	bk_actor_of(c->d, &c->peer, &who);
	if (slot == BK_GLOBAL && c->d->cfg.two_person_global_resume &&
	    !bk_cmd_two_person(c, &p, &who, &pr))
		return;
	bk_cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__RESUME, &who, wall);
	bk_record_plan(&rec, &p, r->strategy);
	if (pr.active) { /* confirmed: the record names both operators */
		rec.has_proposer_uid = rec.has_proposal_seq = 1;
		rec.proposer_uid = pr.actor.uid;
		rec.proposer_user = pr.actor.name;
		rec.proposal_seq = pr.seq;
	}
	rec.reason = r->reason;
	rec.incident = (char *)bk_incident_resume_id(c->d, slot, r->incident);
	c->rep.incident = rec.incident;
	rec.group = r->group;
	bk_cmd_request_id(c, &rec);
	if (!BK_SLOT_IS_GROUP(slot))
		forced_text(c->d, &p, r->has_to, rearm, sizeof(rearm));
	rec.evidence = rearm[0] ? rearm : NULL;
	c->rep.has_from_mode = c->rep.has_to_mode = 1;
	c->rep.from_mode = (Breaker__Mode)p.from_mode;
	c->rep.to_mode = (Breaker__Mode)p.to_mode;
	/* The record first: a resume that cannot be audited changes nothing
	 * (and a proposal it would have confirmed still waits). */
	if (!stage_and_pend(c->d, &c->route, &c->rep, &rec, slot, true)) {
		if (pr.active)
			c->d->auth.proposal = pr;
		return;
	}
	/* A forced resume never leaves a violated rule blind. */
	if (p.forced && !BK_SLOT_IS_GROUP(slot))
		bk_tick_rearm(c->d, slot, p.reason, p.all, true, rearm, sizeof(rearm));
	/* Applied now for later commands' checks; published only once durable. */
	bk_state_apply(&c->d->state, &p, &who, wall, r->reason, rec.seq,
	               c->d->audit.durable_seq, true);
}

static void do_register(struct bk_cmd *c)
{
	const char *name = c->req->register_->strategy;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	size_t n_groups = c->req->register_->n_groups;
	char **groups = c->req->register_->groups;
	struct bk_actor who;
	Breaker__Status st;
	int slot;

	if (!name || !bk_strategy_name_valid(name)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "strategy name must be 1-39 bytes of [A-Za-z0-9._:-]");
		return;
	}
	if ((st = bk_cmd_groups_check(c->d, n_groups, groups, c->why, sizeof(c->why)))) {
		bk_cmd_refuse(c, st, c->why); /* before the slot: nothing changed */
		return;
	}
	slot = bk_state_register(&c->d->state, name);
	if (slot == -EEXIST) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_EXISTS,
		              "strategy already registered");
		return;
	}
	if (slot < 0) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_TABLE_FULL,
		              "strategy table is full");
		return;
	}
	bk_shm_add_strategy(&c->d->shm, slot, name);
	bk_cmd_groups_join(c->d, slot, n_groups, groups); /* publishes the slot */
	bk_shm_changed(&c->d->shm); /* waiters learn of the new slot too */
	c->d->remote_declared[slot] = c->req->register_->has_remote_telemetry &&
	                              c->req->register_->remote_telemetry;
	bk_reload_bind_slot(c->d, slot);
	bk_actor_of(c->d, &c->peer, &who);
	bk_cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__REGISTER, &who,
	              bk_now_wall_ns());
	rec.strategy = (char *)name;
	rec.has_slot = 1;
	rec.slot = (uint32_t)slot;
	rec.has_remote_telemetry = c->d->remote_declared[slot];
	rec.remote_telemetry = c->d->remote_declared[slot];
	rec.n_groups = n_groups;
	rec.groups = groups;
	bk_cmd_request_id(c, &rec);
	stage_and_pend(c->d, &c->route, &c->rep, &rec, slot, false);
}

static void do_report(struct bk_cmd *c)
{
	const Breaker__Report *r = c->req->report;
	struct bk_tel_snap *s;
	int slot;
	Breaker__Status st;

	if (!r->strategy || !*r->strategy) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "a report names its strategy");
		return;
	}
	if ((st = resolve_scope(c->d, r->strategy, &slot, c->why, sizeof(c->why)))) {
		bk_cmd_refuse(c, st, c->why);
		return;
	}
	if (!isfinite(r->position) || !isfinite(r->gross) || !isfinite(r->balance) ||
	    !isfinite(r->pnl) || !isfinite(r->fill_cash) || !isfinite(r->fees)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "report values must be finite numbers");
		return;
	}
	/* One declared source per strategy: a Report must not override what
	 * the engine writes in the segment (a rule would go blind). */
	if (!c->d->slots[slot].is_remote) {
		snprintf(
		    c->why, sizeof(c->why),
		    "strategy %s reads its telemetry from the segment: a Report for it "
		    "is refused (a remote engine's strategy is declared: [strategies] "
		    "remote in the config, or breaker register --telemetry remote)",
		    r->strategy);
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_TELEMETRY_SOURCE, c->why);
		return;
	}
	/* Remote engines report the same numbers; the tick reads them from here. */
	s = &c->d->slots[slot].remote;
	/* before this report: a statement taken, and the fill count (see below) */
	bool stated = s->opening_seq != 0;
	uint64_t prev_fills = s->fills;
	bk_auth_who(&c->peer, c->d->slots[slot].remote_from,
	            sizeof(c->d->slots[slot].remote_from));
	s->orders = r->orders;
	s->rejects = r->rejects;
	s->fills = r->fills;
	s->cancels = r->cancels;
	s->position = r->position;
	s->gross = r->gross;
	s->balance = r->balance;
	s->pnl = r->pnl;
	s->fill_cash = r->fill_cash;
	s->fees = r->fees;
	/* before its first fill, a remote engine's balance is its opening
	 * statement (as bk_report_balance): one message is one snapshot. Only
	 * its first such report (or the first after its fill count went back
	 * to 0: it restarted) states it: taking every fills-0 report as a new
	 * statement absorbed an unexplained 75.00 debit before the first fill. */
	if (r->has_balance && r->fills == 0 && (!stated || prev_fills > 0)) {
		s->opening_seq++;
		s->opening_base = r->balance - (r->fill_cash - r->fees);
		s->opening_fills = 0;
	}
	s->heartbeat_ns = bk_now_mono_ns();
	bk_orders_report(s, r, s->heartbeat_ns);
	s->consistent = true; /* one message is one snapshot */
	bk_reply_now(c->d, &c->route, &c->rep);
}

/* Validate one position's as-of point; NULL if good, else why. */
static const char *as_of_invalid(const Breaker__Reconcile__Position *p, uint64_t wall)
{
	if (p->has_as_of_fills && p->has_as_of_wall_ns)
		return "give one as-of point: fills or wall time, not both";
	if (p->has_as_of_wall_ns &&
	    (p->as_of_wall_ns == 0 || p->as_of_wall_ns > wall + 1000000000ull))
		return "as-of time is zero or more than 1 s in the future";
	return NULL;
}

/*
 * Reconciliation as of a point (bk_recon.h): each position is judged once,
 * here, against the engine's position at its as-of point; a break trips on
 * the next tick (the rule sees a new verdict), once. Withdrawals end a
 * verdict. Every entry is audited; the reply carries the break report.
 */
static void do_reconcile(struct bk_cmd *c)
{
	const Breaker__Reconcile *r = c->req->reconcile;
	struct bk_daemon *d = c->d;
	Breaker__StatusInfo info = BREAKER__STATUS_INFO__INIT;
	Breaker__RuleState rs[64], *rsp[64];
	int slots[64], wslots[64];
	uint64_t wall = bk_now_wall_ns(), mono = bk_now_mono_ns();
	size_t i, n = r->n_positions, nw = r->n_withdraw, at = 0;
	char note[512] = "";
	const char *bad;

	if (n + nw == 0 || n > 64 || nw > 64 || n + nw > 64) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "a reconciliation carries 1-64 positions or withdrawals");
		return;
	}
	if (!bk_cmd_incident_check(c, r->incident, true))
		return;
	/* Validate all before applying any: a bad entry changes nothing. */
	for (i = 0; i < n; i++) {
		const Breaker__Reconcile__Position *p = r->positions[i];
		Breaker__Status st =
		    resolve_scope(d, p->strategy, &slots[i], c->why, sizeof(c->why));
		if (st == BREAKER__STATUS__OK && slots[i] == BK_GLOBAL)
			st = BREAKER__STATUS__ERR_BAD_REQUEST;
		if (st == BREAKER__STATUS__OK &&
		    (!p->has_position || !isfinite(p->position)))
			st = BREAKER__STATUS__ERR_BAD_REQUEST;
		if (st) {
			snprintf(c->why, sizeof(c->why),
			         "position %zu: needs a registered "
			         "strategy and a finite position",
			         i);
			bk_cmd_refuse(c, st, c->why);
			return;
		}
		if ((bad = as_of_invalid(p, wall))) {
			snprintf(c->why, sizeof(c->why), "position %zu: %s", i, bad);
			bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST, c->why);
			return;
		}
		for (size_t j = 0; j < i; j++)
			if (slots[j] == slots[i]) {
				snprintf(c->why, sizeof(c->why),
				         "position %zu: strategy given twice", i);
				bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
				              c->why);
				return;
			}
	}
	for (i = 0; i < nw; i++) {
		Breaker__Status st =
		    resolve_scope(d, r->withdraw[i], &wslots[i], c->why, sizeof(c->why));
		if (st == BREAKER__STATUS__OK && wslots[i] == BK_GLOBAL)
			st = BREAKER__STATUS__ERR_BAD_REQUEST;
		for (size_t j = 0; st == BREAKER__STATUS__OK && j < n; j++)
			if (slots[j] == wslots[i])
				st = BREAKER__STATUS__ERR_BAD_REQUEST;
		if (st) {
			snprintf(c->why, sizeof(c->why),
			         "withdraw %zu: needs a registered strategy not also "
			         "reconciled in the same command",
			         i);
			bk_cmd_refuse(c, st, c->why);
			return;
		}
	}
	/* All or nothing: room to stage every record before any position is
	 * applied (the loop only made sure of room for one command's two). */
	if (!bk_pending_can_stage(d, n + nw)) {
		snprintf(c->why, sizeof(c->why),
		         "busy: the audit log has no room to stage %zu records now; "
		         "nothing applied, retry",
		         n + nw);
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_INTERNAL, c->why);
		return;
	}
	/* Audited: a reconciliation can trip, clear a break and allow a resume. */
	for (i = 0; i < n + nw; i++) {
		Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
		const Breaker__Reconcile__Position *p = i < n ? r->positions[i] : NULL;
		int slot = p ? slots[i] : wslots[i - n];
		struct bk_slot_rules *sr = &d->slots[slot];
		struct bk_recon *rc = &sr->eval.recon;
		struct bk_actor who;
		char text[BK_EVIDENCE_MAX];

		enum bk_recon_verdict v = BK_RV_WITHDRAWN;

		if (p)
			v = bk_recon_post(
			    rc, &d->recon_hist[slot], p->position, p->has_as_of_fills,
			    p->as_of_fills, p->has_as_of_wall_ns ? p->as_of_wall_ns : 0,
			    sr->rules ? sr->rules[BK_RULE_RECONCILIATION].max : 0,
			    d->cfg.rules.recon_max_age_ms, mono, wall);
		else
			bk_recon_withdraw(rc, wall);
		/* a new verdict: a break trips on the next tick, once (an unknown
		 * one changed nothing: a standing break must not trip again) */
		if (!rc->kept_break)
			sr->eval.violating[BK_RULE_RECONCILIATION] = false;
		bk_recon_report(rc, d->state.strategies[slot].name, mono, &rs[i]);
		rsp[i] = &rs[i];
		if (v == BK_RV_UNKNOWN && at < sizeof(note)) {
			int k = snprintf(note + at, sizeof(note) - at,
			                 "%s%s: unknown, %s", at ? "; " : "",
			                 d->state.strategies[slot].name, rc->why);
			at += k > 0 ? (size_t)k : 0;
		}
		if (rc->kept_break)
			snprintf(text, sizeof(text),
			         "reconciled %.2f, verdict unknown: %s", p->position,
			         rc->why);
		else
			bk_recon_evidence(rc, text, sizeof(text));
		bk_actor_of(d, &c->peer, &who);
		bk_cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__RECONCILE, &who,
		              wall);
		rec.strategy = d->state.strategies[slot].name;
		rec.reason = p ? "reconciled position" : "reconciliation withdrawn";
		rec.evidence = text;
		rec.verdict = (char *)bk_recon_verdict_name(v);
		rec.rule = "reconciliation";
		rec.incident = (char *)bk_incident_resume_id(d, slot, r->incident);
		if (p) {
			rec.has_measured = rec.has_threshold = 1;
			rec.measured = p->position;
			rec.threshold = rc->limit;
			rec.has_as_of_fills = p->has_as_of_fills;
			rec.as_of_fills = p->as_of_fills;
			rec.has_as_of_wall_ns = 1;
			rec.as_of_wall_ns =
			    p->has_as_of_wall_ns ? p->as_of_wall_ns : wall;
			rec.has_engine_position = !rc->kept_break && isfinite(rc->engine);
			rec.engine_position = rc->engine;
		}
		bk_cmd_request_id(c, &rec);
		if (i + 1 < n + nw) {
			if (bk_audit_stage(&d->audit, &rec) < 0) {
				bk_cmd_refuse(c, BREAKER__STATUS__ERR_NOT_DURABLE,
				              "audit staging failed part way (a record "
				              "over the size limit): the positions "
				              "before it were applied");
				return;
			}
			/* one event per strategy; the reply waits on the last record */
			bk_pending_add(d, NULL, &c->rep, &rec, slot, false, false);
			continue;
		}
		info.n_reconciliations = n + nw;
		info.reconciliations = rsp;
		c->rep.info = &info;
		c->rep.error = note[0] ? note : NULL; /* why a verdict is unknown */
		stage_and_pend(d, &c->route, &c->rep, &rec, slot, false);
		c->rep.info = NULL;
	}
}

/*
 * An operator's new base for a level rule: audited, restricted
 * like a forced resume, applied once staged (the latch is untouched: a
 * resume still has to release it), replayed at boot.
 */
static void do_rebase(struct bk_cmd *c)
{
	const Breaker__Rebase *r = c->req->rebase;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	struct bk_tel_snap snap;
	struct bk_actor who;
	double before, after;
	Breaker__Status st;
	char text[240];
	int slot, id;

	if ((st = resolve_scope(c->d, r->strategy, &slot, c->why, sizeof(c->why)))) {
		bk_cmd_refuse(c, st, c->why);
		return;
	}
	if (slot == BK_GLOBAL) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "a rebase names a strategy: rule bases are per strategy");
		return;
	}
	id = r->rule ? bk_rule_parse(r->rule) : -1;
	if (id != BK_RULE_DRAWDOWN && id != BK_RULE_INVARIANT) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "only drawdown (its peak PnL) and invariant (the "
		              "balance base) have a base to rebase");
		return;
	}
	if (!r->reason || !*r->reason ||
	    !bk_text_valid(r->reason, c->d->cfg.reason_max)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "a rebase needs a reason: UTF-8 text without control "
		              "characters, within the configured length");
		return;
	}
	if (c->d->flush_err) {
		bk_cmd_refuse(
		    c, BREAKER__STATUS__ERR_NOT_DURABLE,
		    "the audit log is failing: no rebase without its record on disk");
		return;
	}
	if (bk_tick_snapshot(c->d, slot, &snap) < 0 ||
	    bk_rules_rebase(&c->d->slots[slot].eval, (enum bk_rule_id)id, &snap, &before,
	                    &after) < 0) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_INTERNAL,
		              "the engine's money words are being written, missing "
		              "or not finite: nothing changed, retry");
		return;
	}
	bk_actor_of(c->d, &c->peer, &who);
	bk_cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__REBASE, &who,
	              bk_now_wall_ns());
	snprintf(text, sizeof(text),
	         id == BK_RULE_DRAWDOWN
	             ? "drawdown peak %.4f -> %.4f (the current pnl)"
	             : "balance base %.4f -> %.4f (balance %.4f less fill cash "
	               "%.4f plus fees %.4f)",
	         before, after, snap.balance, snap.fill_cash, snap.fees);
	rec.strategy = c->d->state.strategies[slot].name;
	/* modes unchanged, said so (watchers see the scope as it is) */
	rec.has_from_mode = rec.has_to_mode = 1;
	rec.from_mode = rec.to_mode =
	    (Breaker__Mode)bk_scope_mode(bk_state_cscope(&c->d->state, slot));
	rec.rule = (char *)bk_rule_name((enum bk_rule_id)id);
	rec.reason = r->reason;
	rec.evidence = text;
	rec.has_base_before = rec.has_base_after = rec.has_opening_seq = 1;
	rec.base_before = before;
	rec.base_after = after;
	rec.opening_seq = snap.opening_seq;
	bk_cmd_request_id(c, &rec);
	if (!stage_and_pend(c->d, &c->route, &c->rep, &rec, slot, false))
		return;
	bk_rules_rebase_set(&c->d->slots[slot].eval, (enum bk_rule_id)id, after,
	                    snap.opening_seq);
}

static void do_query(struct bk_cmd *c, bool all)
{
	const Breaker__Request *q = c->req;
	uint32_t offset = 0, limit = 0;

	if (!all && q->status) {
		offset = q->status->has_offset ? q->status->offset : 0;
		limit = q->status->has_limit ? q->status->limit : 0;
	} else if (all && q->list) {
		offset = q->list->has_offset ? q->list->offset : 0;
		limit = q->list->has_limit ? q->list->limit : 0;
	}
	bk_status_build(c->d, &c->rep, all, offset, limit);
	if (!all && q->status && q->status->page)
		bk_page_status(c->d, &c->rep); /* the status page's extras */
	bk_reply_now(c->d, &c->route, &c->rep);
	bk_page_status_free(&c->rep);
	bk_status_free(&c->rep);
}

void bk_cmd_handle(struct bk_daemon *d, struct bk_request *in)
{
	struct bk_cmd c = {.d = d, .route = in->route, .rep = BREAKER__REPLY__INIT};
	Breaker__Request *req;
	size_t len = in->len;

	in->route.transport = BK_ROUTE_NONE; /* c holds it now */
	c.route.start_ns = bk_now_mono_ns();
	c.peer = in->peer;
	if (len > d->cfg.max_msg) {
		snprintf(c.why, sizeof(c.why),
		         "command of %zu bytes is over the %u-byte limit", len,
		         d->cfg.max_msg);
		count_command(d, BK_CMD_INVALID, BREAKER__STATUS__ERR_TOO_LARGE);
		bk_reply_refuse(d, &c.route, 0, BREAKER__STATUS__ERR_TOO_LARGE, c.why);
		return;
	}
	req = breaker__request__unpack(NULL, len, in->body);
	if (!req) {
		count_command(d, BK_CMD_INVALID, BREAKER__STATUS__ERR_BAD_REQUEST);
		bk_reply_refuse(d, &c.route, 0, BREAKER__STATUS__ERR_BAD_REQUEST,
		                "malformed command: not a breaker.Request");
		return;
	}
	c.req = req;
	c.rep.has_request_id = req->has_request_id;
	c.rep.request_id = req->request_id;
	c.rep.has_status = 1;
	if (wire_has_nul(&breaker__request__descriptor, in->body, len, 0)) {
		count_command(d, bk_metrics_cmd_type(req->cmd_case),
		              BREAKER__STATUS__ERR_BAD_REQUEST);
		bk_cmd_refuse(&c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "a name or text field holds a NUL byte: refused whole (it "
		              "would have been cut there)");
		breaker__request__free_unpacked(req, NULL);
		return;
	}
	if (!bk_cmd_authorised(&c)) {
		count_command(d, bk_metrics_cmd_type(req->cmd_case),
		              BREAKER__STATUS__ERR_UNAUTHORISED);
		breaker__request__free_unpacked(req, NULL);
		return;
	}
	if ((req->cmd_case == BREAKER__REQUEST__CMD_TRIP && req->trip->firm) ||
	    (req->cmd_case == BREAKER__REQUEST__CMD_RESUME && req->resume->firm)) {
		bk_fwd_command(&c); /* authorised as the local command, just above */
		count_command(d, bk_metrics_cmd_type(req->cmd_case),
		              c.refused ? (unsigned)c.refused
		                        : (unsigned)BREAKER__STATUS__OK);
		breaker__request__free_unpacked(req, NULL);
		return;
	}
	if (req->cmd_case == BREAKER__REQUEST__CMD_TRIP ||
	    req->cmd_case == BREAKER__REQUEST__CMD_RESUME ||
	    req->cmd_case == BREAKER__REQUEST__CMD_REGISTER ||
	    req->cmd_case == BREAKER__REQUEST__CMD_RECONCILE ||
	    req->cmd_case == BREAKER__REQUEST__CMD_REBASE ||
	    req->cmd_case == BREAKER__REQUEST__CMD_INCIDENT ||
	    req->cmd_case == BREAKER__REQUEST__CMD_GROUP ||
	    req->cmd_case == BREAKER__REQUEST__CMD_UNREGISTER ||
	    req->cmd_case == BREAKER__REQUEST__CMD_RENAME) {
		c.hash = bk_cmd_request_hash(&c);
		if (bk_cmd_answer_duplicate(&c)) {
			count_command(d, bk_metrics_cmd_type(req->cmd_case),
			              c.refused ? (unsigned)c.refused
			                        : (unsigned)BREAKER__STATUS__OK);
			breaker__request__free_unpacked(req, NULL);
			return;
		}
	}
	/* what the rules judge by may change (a re-arm, a reconciliation, a
	 * rebase, a registration): the next tick judges every strategy
	 * (bk_tickskip.h); a Report moves its own strategy's signature */
	if (req->cmd_case != BREAKER__REQUEST__CMD_REPORT)
		bk_tickskip_all(&d->skip);
	switch (req->cmd_case) {
	case BREAKER__REQUEST__CMD_TRIP:
		do_trip(&c);
		break;
	case BREAKER__REQUEST__CMD_RESUME:
		do_resume(&c);
		break;
	case BREAKER__REQUEST__CMD_REGISTER:
		do_register(&c);
		break;
	case BREAKER__REQUEST__CMD_STATUS:
		do_query(&c, false);
		break;
	case BREAKER__REQUEST__CMD_LIST:
		do_query(&c, true);
		break;
	case BREAKER__REQUEST__CMD_REPORT:
		do_report(&c);
		break;
	case BREAKER__REQUEST__CMD_RECONCILE:
		do_reconcile(&c);
		break;
	case BREAKER__REQUEST__CMD_REBASE:
		do_rebase(&c);
		break;
	case BREAKER__REQUEST__CMD_INCIDENT:
		bk_cmd_do_incident(&c);
		break;
	case BREAKER__REQUEST__CMD_GROUP:
		bk_cmd_group(&c);
		break;
	case BREAKER__REQUEST__CMD_UNREGISTER:
		bk_cmd_unregister(&c);
		break;
	case BREAKER__REQUEST__CMD_RENAME:
		bk_cmd_rename(&c);
		break;
	default:
		bk_cmd_refuse(&c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "empty or unknown command");
	}
	/* as decided now: a trip whose flush fails later is also a flush failure */
	count_command(d, bk_metrics_cmd_type(req->cmd_case),
	              c.refused ? (unsigned)c.refused : (unsigned)c.rep.status);
	breaker__request__free_unpacked(req, NULL);
}
