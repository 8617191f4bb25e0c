/*
 * bk_cmd_group - the commands that touch groups (bk_group.h), and trips of
 * several scopes at once.
 *
 * - A group's latches fold into every member's published word: publishing a
 *   group republishes its members; the caller bumps change_seq once, so all
 *   members flip together before the reply.
 * - A trip of several scopes (strategies and/or groups) validates every name
 *   and plans every latch first: one bad name refuses the whole command with
 *   nothing changed. Then all latch, all publish, one change_seq bump, then
 *   one audit record per scope; the reply waits for the last (the log is
 *   sequential, so all are durable by then).
 * - Joining a group only ever makes a member stricter: published at once.
 *   Leaving one is refused while the group holds (or still publishes) a
 *   latch: it would release the member without a resume.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bk_cmd.h"
#include "bk_log.h"
#include "bk_suggest.h"
#include "bk_text.h"

#define BK_TRIP_SCOPES_MAX 64 /* scopes in one trip command */

void bk_group_publish(struct bk_daemon *d, int g)
{
	const struct bk_state *st = &d->state;
	uint64_t since, word;
	uint32_t mask;

	if (g < 0 || (uint32_t)g >= st->n_groups)
		return;
	word = bk_scope_published(&st->groups[g], d->audit.durable_seq, &since, &mask);
	bk_etcd_fold_group(d, g, &word, &mask, &since); /* firm latches; no-op without */
	bk_shm_publish_group(&d->shm, g, word, mask, since);
	if (!st->group_size[g])
		return;
	for (uint32_t i = 0; i < st->n_strategies; i++)
		if (bk_group_has(st, (int)i, g))
			bk_publish_scope(d, (int)i);
}

Breaker__Status bk_cmd_resolve_group(const struct bk_daemon *d, const char *tag,
                                     int *slot, char *why, size_t len)
{
	const char *bad;
	int g;

	if (bk_group_tag_check(tag, &bad) < 0) {
		snprintf(why, len, "group '%s': %s", tag ? tag : "", bad);
		return BREAKER__STATUS__ERR_BAD_REQUEST;
	}
	g = bk_group_find(&d->state, tag);
	if (g < 0) {
		const char *names[BK_MAX_GROUPS];
		char near[160];
		uint32_t n = 0;

		/* a mistyped venue gets the groups it is near, like a strategy */
		for (uint32_t i = 0; i < d->state.n_groups && n < BK_MAX_GROUPS; i++)
			names[n++] = d->state.groups[i].name;
		if (bk_suggest(tag, names, n, near, sizeof(near)))
			snprintf(why, len, "unknown group '%s': did you mean %s?", tag,
			         near);
		else
			snprintf(why, len,
			         "unknown group '%s' (no strategy was ever put in it: "
			         "register --group or group add)",
			         tag);
		return BREAKER__STATUS__ERR_UNKNOWN_GROUP;
	}
	*slot = BK_GROUP_SLOT(g);
	return BREAKER__STATUS__OK;
}

Breaker__Status bk_cmd_groups_check(const struct bk_daemon *d, size_t n, char **tags,
                                    char *why, size_t len)
{
	const char *bad;
	size_t fresh = 0;

	if (n > BK_GROUP_TAGS_MAX) {
		snprintf(why, len, "%zu groups: a strategy belongs to at most %d", n,
		         BK_GROUP_TAGS_MAX);
		return BREAKER__STATUS__ERR_BAD_REQUEST;
	}
	for (size_t i = 0; i < n; i++) {
		if (bk_group_tag_check(tags[i], &bad) < 0) {
			snprintf(why, len, "group '%s': %s", tags[i] ? tags[i] : "", bad);
			return BREAKER__STATUS__ERR_BAD_REQUEST;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(tags[i], tags[j]) == 0) {
				snprintf(why, len, "group '%s' given twice", tags[i]);
				return BREAKER__STATUS__ERR_BAD_REQUEST;
			}
		fresh += bk_group_find(&d->state, tags[i]) < 0;
	}
	if (d->state.n_groups + fresh > BK_MAX_GROUPS) {
		snprintf(why, len, "group table is full (%u groups)", BK_MAX_GROUPS);
		return BREAKER__STATUS__ERR_TABLE_FULL;
	}
	return BREAKER__STATUS__OK;
}

/* Make (if new) and publish group tag; its slot. Checked before: cannot fail. */
static int make_group(struct bk_daemon *d, const char *tag)
{
	uint32_t before = d->state.n_groups;
	int g = bk_group_make(&d->state, tag);

	if (g >= 0 && d->state.n_groups != before) {
		bk_shm_add_group(&d->shm, g, tag);
		bk_group_publish(d, g);
	}
	return g;
}

void bk_cmd_groups_join(struct bk_daemon *d, int slot, size_t n, char **tags)
{
	for (size_t i = 0; i < n; i++) {
		int g = make_group(d, tags[i]);
		if (g >= 0)
			bk_group_join(&d->state, slot, g);
	}
	bk_publish_scope(d, slot);
}

/* ---- [strategies] groups in the config --------------------------------------- */

/* Can slot join tag (not in it yet)? Else why not, logged. */
static bool may_join_configured(struct bk_daemon *d, int slot, const char *strategy,
                                const char *tag)
{
	struct bk_state *st = &d->state;
	int g = bk_group_find(st, tag);

	if (slot < 0) {
		bk_warn("[strategies] groups: '%s' is not registered: not put in %s",
		        strategy, tag);
		return false;
	}
	if (g >= 0 && bk_group_has(st, slot, g))
		return false;
	if (st->members[slot].n >= BK_GROUP_TAGS_MAX ||
	    (g < 0 && st->n_groups >= BK_MAX_GROUPS)) {
		bk_err("[strategies] groups: cannot put '%s' in %s: %s", strategy, tag,
		       g < 0 && st->n_groups >= BK_MAX_GROUPS
		           ? "the group table is full"
		           : "it is in 8 groups already");
		return false;
	}
	return true;
}

int bk_groups_join_configured(struct bk_daemon *d, const struct bk_config *cfg,
                              const char *reason, bool live)
{
	for (int i = 0; i < cfg->n_groups; i++) {
		Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
		char *tag = (char *)cfg->groups[i].group;
		const char *name = cfg->groups[i].strategy;
		int slot = bk_state_find(&d->state, name);

		if (!may_join_configured(d, slot, name, tag))
			continue;
		if (live) /* stricter only: visible now, durable next (like a trip) */
			bk_cmd_groups_join(d, slot, 1, &tag);
		else /* boot publishes everything once the log is replayed */
			bk_group_join(&d->state, slot, bk_group_make(&d->state, tag));
		rec.has_kind = 1;
		rec.kind = BREAKER__AUDIT_RECORD__KIND__GROUP_ADD;
		rec.strategy = (char *)name;
		rec.group = tag;
		rec.reason = (char *)reason;
		if (bk_record_stage_system(d, &rec) < 0)
			return -EIO;
	}
	if (live)
		bk_shm_changed(&d->shm);
	return 0;
}

/* ---- breaker group add|remove ------------------------------------------------ */

static Breaker__Status check_leave(const struct bk_daemon *d, int slot, int g, char *why,
                                   size_t len)
{
	const struct bk_scope *sc = &d->state.groups[g];
	uint64_t since, word;
	uint32_t mask;

	if (!bk_group_has(&d->state, slot, g)) {
		snprintf(why, len, "%s is not in group %s",
		         d->state.strategies[slot].name, sc->name);
		return BREAKER__STATUS__ERR_UNKNOWN_GROUP;
	}
	word = bk_scope_published(sc, d->audit.durable_seq, &since, &mask);
	if (sc->active || BK_STATE_MODE(word) != BK_ACTIVE) {
		snprintf(why, len,
		         "group %s is %s: leaving it would release %s without a resume "
		         "(resume the group first)",
		         sc->name, bk_mode_str((enum bk_mode)BK_STATE_MODE(word)),
		         d->state.strategies[slot].name);
		return BREAKER__STATUS__ERR_CONDITION_HOLDS;
	}
	return BREAKER__STATUS__OK;
}

void bk_cmd_group(struct bk_cmd *c)
{
	const Breaker__GroupChange *r = c->req->group;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	struct bk_daemon *d = c->d;
	bool leave = r->has_remove && r->remove;
	struct bk_actor who;
	Breaker__Status st;
	char *tag = r->group;
	int slot, g;

	if (!r->strategy || !bk_strategy_name_valid(r->strategy)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "group add|remove needs a strategy name (1-39 bytes of "
		              "[A-Za-z0-9._:-])");
		return;
	}
	if ((slot = bk_state_find(&d->state, r->strategy)) < 0) {
		snprintf(c->why, sizeof(c->why), "unknown strategy '%s'", r->strategy);
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_UNKNOWN_STRATEGY, c->why);
		return;
	}
	if (r->reason && !bk_text_valid(r->reason, d->cfg.reason_max)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "reason text must be UTF-8 without control characters, "
		              "within the configured length");
		return;
	}
	if (leave) {
		if ((st = bk_cmd_resolve_group(d, tag, &g, c->why, sizeof(c->why))) ||
		    (st = check_leave(d, slot, BK_SLOT_GROUP(g), c->why,
		                      sizeof(c->why)))) {
			bk_cmd_refuse(c, st, c->why);
			return;
		}
		bk_group_leave(&d->state, slot, BK_SLOT_GROUP(g));
		bk_publish_scope(d, slot);
	} else {
		if ((st = bk_cmd_groups_check(d, 1, &tag, c->why, sizeof(c->why)))) {
			bk_cmd_refuse(c, st, c->why);
			return;
		}
		g = bk_group_find(&d->state, tag);
		if (g >= 0 && bk_group_has(&d->state, slot, g)) {
			snprintf(c->why, sizeof(c->why), "%s is in group %s already",
			         r->strategy, tag);
			bk_cmd_refuse(c, BREAKER__STATUS__ERR_EXISTS, c->why);
			return;
		}
		if (d->state.members[slot].n >= BK_GROUP_TAGS_MAX) {
			snprintf(
			    c->why, sizeof(c->why),
			    "%s is in %d groups already: the most a strategy may have",
			    r->strategy, BK_GROUP_TAGS_MAX);
			bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST, c->why);
			return;
		}
		/* stricter only: visible now, durable next (like a trip) */
		bk_cmd_groups_join(d, slot, 1, &tag);
	}
	bk_shm_changed(&d->shm);
	bk_actor_of(d, &c->peer, &who);
	bk_cmd_record(c, &rec,
	              leave ? BREAKER__AUDIT_RECORD__KIND__GROUP_REMOVE
	                    : BREAKER__AUDIT_RECORD__KIND__GROUP_ADD,
	              &who, bk_now_wall_ns());
	rec.strategy = r->strategy;
	rec.group = tag;
	rec.reason = r->reason;
	bk_cmd_request_id(c, &rec);
	bk_cmd_stage_and_pend(c, &rec, slot, false);
}

/* ---- trips of several scopes --------------------------------------------------- */

struct target {
	int slot;
	const char *strategy; /* NULL for a group */
	const char *group;    /* NULL for a strategy */
	struct bk_plan plan;
};

static bool listed(const struct target *t, size_t n, int slot)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].slot == slot)
			return true;
	return false;
}

/* Every name resolved, or the command refused (false). */
static bool collect(struct bk_cmd *c, struct target *t, size_t *n)
{
	const Breaker__Trip *tr = c->req->trip;
	size_t total = (tr->strategy && *tr->strategy) + tr->n_strategies + tr->n_groups;
	Breaker__Status st;
	int slot;

	*n = 0;
	if (total > BK_TRIP_SCOPES_MAX) {
		snprintf(c->why, sizeof(c->why), "%zu scopes in one trip: at most %d",
		         total, BK_TRIP_SCOPES_MAX);
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST, c->why);
		return false;
	}
	for (size_t i = 0; i < tr->n_strategies + 1; i++) {
		const char *name = i ? tr->strategies[i - 1] : tr->strategy;

		if (!i && (!name || !*name))
			continue;
		if (!name || !bk_strategy_name_valid(name)) {
			snprintf(
			    c->why, sizeof(c->why),
			    "invalid strategy name '%s': 1-%u bytes of [A-Za-z0-9._:-] "
			    "(nothing changed)",
			    name ? name : "", BK_NAME_MAX - 1);
			bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST, c->why);
			return false;
		}
		if ((slot = bk_state_find(&c->d->state, name)) < 0) {
			snprintf(
			    c->why, sizeof(c->why),
			    "unknown strategy '%s' (nothing changed: no scope of this "
			    "command was tripped)",
			    name);
			bk_cmd_refuse(c, BREAKER__STATUS__ERR_UNKNOWN_STRATEGY, c->why);
			return false;
		}
		if (!listed(t, *n, slot))
			t[(*n)++] = (struct target){.slot = slot, .strategy = name};
	}
	for (size_t i = 0; i < tr->n_groups; i++) {
		if ((st = bk_cmd_resolve_group(c->d, tr->groups[i], &slot, c->why,
		                               sizeof(c->why)))) {
			strncat(c->why, " (nothing changed)",
			        sizeof(c->why) - strlen(c->why) - 1);
			bk_cmd_refuse(c, st, c->why);
			return false;
		}
		if (!c->d->state.group_size[BK_SLOT_GROUP(slot)]) {
			snprintf(
			    c->why, sizeof(c->why),
			    "group %s has no members: nothing to trip (a typo? nothing "
			    "changed)",
			    tr->groups[i]);
			bk_cmd_refuse(c, BREAKER__STATUS__ERR_UNKNOWN_GROUP, c->why);
			return false;
		}
		if (!listed(t, *n, slot))
			t[(*n)++] = (struct target){.slot = slot, .group = tr->groups[i]};
	}
	return true;
}

static void record_trip(struct bk_cmd *c, const struct target *t,
                        const struct bk_actor *who, uint64_t wall, bool last,
                        struct bk_trip_incident *ti)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	const Breaker__Trip *tr = c->req->trip;
	int64_t seq;

	bk_cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__TRIP, who, wall);
	bk_record_plan(&rec, &t->plan, t->strategy);
	rec.group = (char *)t->group;
	rec.has_operator_latch = rec.operator_latch = 1;
	rec.reason = tr->reason ? tr->reason : "";
	/* one incident for the command (docs/incidents.md): the first record
	 * opens it if it is new, the others go under it */
	bk_incident_trip_record(c->d, t->slot, t->plan.reason, ti, &rec);
	ti->opened = false;
	c->rep.incident = ti->id;
	bk_cmd_request_id(c, &rec);
	if (last) {
		bk_cmd_stage_and_pend(c, &rec, t->slot, false);
		return;
	}
	/* the others: durable before the last, so the one reply covers them */
	seq = bk_audit_stage(&c->d->audit, &rec);
	if (seq > 0)
		bk_pending_add(c->d, NULL, &c->rep, &rec, t->slot, false, false);
}

void bk_cmd_trip_many(struct bk_cmd *c)
{
	const Breaker__Trip *tr = c->req->trip;
	struct target t[BK_TRIP_SCOPES_MAX];
	struct bk_daemon *d = c->d;
	const char *reason = tr->reason ? tr->reason : "", *why = NULL;
	uint64_t wall = bk_now_wall_ns(), seq;
	struct bk_trip_incident ti;
	struct bk_actor who;
	Breaker__Status st;
	size_t n;
	bool named;

	if (!collect(c, t, &n))
		return;
	if (!bk_cmd_incident_check(c, tr->incident, false))
		return;
	if (!tr->has_reason_code || !bk_reason_operator(tr->reason_code)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_UNKNOWN_REASON,
		              "a trip needs a known reason code (e.g. manual_halt)");
		return;
	}
	if (!bk_text_valid(reason, d->cfg.reason_max)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "reason text must be UTF-8 without control characters, "
		              "within the configured length");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		st = bk_state_plan_trip(&d->state, t[i].slot, (int)tr->reason_code,
		                        (int)tr->mode, &t[i].plan, &why);
		if (st) {
			bk_cmd_refuse(c, st, why);
			return;
		}
		t[i].plan.by_operator = true;
	}
	if (!bk_pending_can_stage(d, n)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_NOT_DURABLE,
		              "too many answers wait for the audit log: nothing changed, "
		              "retry");
		return;
	}
	bk_incident_trip_plan(d, t[0].slot, tr->incident, &ti); /* before the flip */
	named = bk_actor_cached(d, &c->peer, &who);
	/* Every scope latched and published, then one change_seq bump. */
	seq = d->audit.next_seq;
	for (size_t i = 0; i < n; i++)
		bk_state_apply(&d->state, &t[i].plan, &who, wall, reason, seq + i,
		               d->audit.durable_seq, true);
	for (size_t i = 0; i < n; i++)
		bk_publish_scope(d, t[i].slot);
	bk_shm_changed(&d->shm);
	if (!named) {
		bk_actor_lookup(d, &who);
		for (size_t i = 0; i < n; i++) {
			struct bk_latch *l = &bk_state_scope(&d->state, t[i].slot)
			                          ->latches[t[i].plan.reason];
			if (l->audit_seq == seq + i)
				memcpy(l->actor.name, who.name, sizeof(who.name));
		}
	}
	bk_protect_note_trip(d);
	for (size_t i = 0; i < n; i++) {
		bk_count_trip(d, t[i].slot, t[i].plan.reason);
		if (t[i].slot == BK_GLOBAL)
			d->auth.proposal.active = false;
	}
	c->rep.has_from_mode = c->rep.has_to_mode = 1;
	c->rep.from_mode = (Breaker__Mode)t[0].plan.from_mode;
	c->rep.to_mode = (Breaker__Mode)t[0].plan.to_mode;
	for (size_t i = 0; i < n; i++)
		record_trip(c, &t[i], &who, wall, i + 1 == n, &ti);
}
