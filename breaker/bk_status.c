/*
 * bk_status - Status and ListStrategies replies. Not on any hot path: it
 * allocates, and frees everything in bk_status_free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_daemon.h"

static Breaker__Latch *latch_msg(const struct bk_latch *l, unsigned r)
{
	Breaker__Latch *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	breaker__latch__init(m);
	m->has_reason_code = m->has_mode = m->has_actor_uid = m->has_actor_pid = 1;
	m->has_since_wall_ns = m->has_audit_seq = 1;
	m->reason_code = (Breaker__ReasonCode)r;
	m->mode = (Breaker__Mode)l->mode;
	m->actor_uid = l->actor.uid;
	m->actor_pid = l->actor.pid;
	m->actor_name = (char *)l->actor.name;
	m->since_wall_ns = l->since_wall_ns;
	m->reason = (char *)l->reason;
	m->audit_seq = l->audit_seq;
	return m;
}

/* A strategy's groups, and its mode folded with theirs (what its engine reads). */
static void groups_msg(struct bk_daemon *d, int slot, Breaker__Scope *m)
{
	const struct bk_member *mb = &d->state.members[slot];
	uint64_t since, word;
	uint32_t mask;

	if (!mb->n)
		return;
	word = bk_group_folded(&d->state, slot, d->audit.durable_seq, &since, &mask);
	m->has_effective_mode = 1;
	m->effective_mode = (Breaker__Mode)BK_STATE_MODE(word);
	if (BK_STATE_HOLDER(word))
		m->held_by = d->state.groups[BK_STATE_HOLDER(word) - 1].name;
	if (!(m->groups = calloc(mb->n, sizeof(*m->groups))))
		return;
	for (unsigned i = 0; i < mb->n; i++)
		m->groups[m->n_groups++] = d->state.groups[mb->g[i]].name;
}

/* A scope as engines see it now (published, so a pending resume shows as held). */
/* The limits the scope's engines are held to now (its published entry). */
static void limits_msg(const struct bk_daemon *d, int slot, Breaker__Scope *m)
{
	struct bk_limit_set l;
	Breaker__ScopeLimits *lm;

	bk_limits_in_force(d, slot, &l);
	if (!l.flags || !(lm = calloc(1, sizeof(*lm))))
		return;
	breaker__scope_limits__init(lm);
	lm->has_size_factor = !!(l.flags & BK_LIMIT_SIZE_FACTOR);
	lm->size_factor = l.size_factor;
	lm->has_max_qty = !!(l.flags & BK_LIMIT_MAX_QTY);
	lm->max_qty = l.max_qty;
	lm->has_max_notional = !!(l.flags & BK_LIMIT_MAX_NOTIONAL);
	lm->max_notional = l.max_notional;
	m->limits = lm;
}

static Breaker__Scope *scope_msg(struct bk_daemon *d, int slot, bool latches)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, slot);
	Breaker__Scope *m = calloc(1, sizeof(*m));
	uint64_t since, word;
	uint32_t mask;

	if (!m)
		return NULL;
	breaker__scope__init(m);
	word = bk_scope_published(sc, d->audit.durable_seq, &since, &mask);
	m->strategy = slot < 0 ? NULL : (char *)sc->name;
	m->has_mode = 1;
	m->mode = (Breaker__Mode)BK_STATE_MODE(word);
	m->has_slot = slot != BK_GLOBAL;
	m->slot = slot == BK_GLOBAL ? 0 : (uint32_t)slot;
	if (BK_SLOT_IS_GROUP(slot)) {
		m->group = (char *)sc->name;
		m->slot = (uint32_t)BK_SLOT_GROUP(slot);
		m->has_members = 1;
		m->members = d->state.group_size[BK_SLOT_GROUP(slot)];
	} else if (slot >= 0) {
		groups_msg(d, slot, m);
	}
	limits_msg(d, slot, m);
	if (!latches || !sc->active)
		return m;
	m->latches = calloc(BK_REASON_COUNT, sizeof(*m->latches));
	for (unsigned r = 1; m->latches && r < BK_REASON_COUNT; r++)
		if ((sc->active & (1u << r)) &&
		    (m->latches[m->n_latches] = latch_msg(&sc->latches[r], r)))
			m->n_latches++;
	return m;
}

/* A rule a forced resume left armed: when it trips again. */
static void rearm_msg(const struct bk_daemon *d, const struct bk_slot_rules *sr, int r,
                      Breaker__RuleState *w)
{
	uint64_t due, now = d->last_tick_ns;

	if (!sr->eval.forced[r])
		return;
	w->has_rearmed = w->has_rearm_util = 1;
	w->rearmed = 1;
	w->rearm_util = sr->eval.forced_util[r];
	if (sr->rules[r].rearm_ms) {
		due =
		    sr->eval.forced_ns[r] + (uint64_t)sr->rules[r].rearm_ms * 1000000ull;
		w->has_rearm_in_ms = 1;
		w->rearm_in_ms = due > now ? (due - now) / 1000000ull : 0;
	}
}

/* Limit rules at or above the first warning level, per strategy. */
static void warnings_msg(struct bk_daemon *d, Breaker__StatusInfo *info)
{
	size_t cap = 64;

	info->warnings = calloc(cap, sizeof(*info->warnings));
	for (uint32_t i = 0; info->warnings && i < d->state.n_strategies; i++) {
		const struct bk_slot_rules *sr = &d->slots[i];
		for (int r = 0; r < BK_RULE_COUNT && info->n_warnings < cap; r++) {
			Breaker__RuleState *w;
			if (!sr->rules || !sr->rules[r].enabled ||
			    (sr->eval.util[r] < d->cfg.rules.warn[0] &&
			     !sr->eval.violating[r]))
				continue;
			if (!(w = calloc(1, sizeof(*w))))
				return;
			breaker__rule_state__init(w);
			w->rule = (char *)bk_rule_name((enum bk_rule_id)r);
			w->strategy = d->state.strategies[i].name;
			w->has_measured = w->has_threshold = w->has_utilisation =
			    w->has_violated = 1;
			w->measured = sr->eval.measured[r];
			/* the limit it was judged against (drawdown: in money) */
			w->threshold = sr->eval.threshold[r];
			w->utilisation = sr->eval.util[r];
			w->violated = sr->eval.violating[r];
			rearm_msg(d, sr, r, w);
			info->warnings[info->n_warnings++] = w;
		}
	}
}

/* Which engines (telemetry slots with a pid) acted on the latest trip. */
static void acks_msg(struct bk_daemon *d, Breaker__StatusInfo *info)
{
	uint32_t want = d->last_trip_change_seq;

	info->has_last_trip_change_seq = want != 0;
	info->last_trip_change_seq = want;
	if (!want)
		return;
	info->acks = calloc(d->state.n_strategies + 1, sizeof(*info->acks));
	for (uint32_t i = 0; info->acks && i < d->state.n_strategies; i++) {
		Breaker__EngineAck *a;
		uint32_t seq, pid;
		uint64_t ns;

		bk_tel_ack(&d->tel, (int)i, &seq, &ns, &pid);
		if (pid == 0 || !(a = calloc(1, sizeof(*a))))
			continue;
		breaker__engine_ack__init(a);
		a->strategy = d->state.strategies[i].name;
		a->has_pid = a->has_acked = a->has_ack_seq = 1;
		a->pid = pid;
		a->ack_seq = seq;
		/* sequence numbers wrap: compare by signed distance */
		a->acked = (int32_t)(seq - want) >= 0;
		a->has_ack_latency_ns = a->acked && ns >= d->last_trip_mono_ns;
		a->ack_latency_ns = a->has_ack_latency_ns ? ns - d->last_trip_mono_ns : 0;
		info->acks[info->n_acks++] = a;
	}
}

/* A global resume waiting for its second operator (two-person rule). */
static void proposal_msg(struct bk_daemon *d, Breaker__StatusInfo *info)
{
	const struct bk_proposal *pr = &d->auth.proposal;
	Breaker__Proposal *m;

	if (!pr->active || bk_now_mono_ns() >= pr->expires_mono_ns ||
	    !(m = calloc(1, sizeof(*m))))
		return;
	breaker__proposal__init(m);
	m->has_audit_seq = m->has_uid = m->has_reason_code = m->has_to_mode = 1;
	m->has_forced = m->has_expires_wall_ns = 1;
	m->audit_seq = pr->seq;
	m->uid = pr->actor.uid;
	m->user = (char *)pr->actor.name;
	m->reason_code = (Breaker__ReasonCode)pr->reason;
	m->to_mode = (Breaker__Mode)pr->target;
	m->forced = pr->forced;
	m->expires_wall_ns = pr->expires_wall_ns;
	m->has_firm = pr->firm;
	m->firm = pr->firm;
	info->pending_resume = m;
}

/* The latest reconciliation of each strategy (the first 64), and the rules' hash. */
static void recon_msg(struct bk_daemon *d, Breaker__StatusInfo *info)
{
	uint64_t now = bk_now_mono_ns();
	size_t cap = 64;

	info->reconciliations = calloc(cap, sizeof(*info->reconciliations));
	for (uint32_t i = 0; info->reconciliations && i < d->state.n_strategies &&
	                     info->n_reconciliations < cap;
	     i++) {
		Breaker__RuleState *rs;

		if (d->slots[i].eval.recon.verdict == BK_RV_NONE ||
		    !(rs = calloc(1, sizeof(*rs))))
			continue;
		bk_recon_report(&d->slots[i].eval.recon, d->state.strategies[i].name, now,
		                rs);
		info->reconciliations[info->n_reconciliations++] = rs;
	}
	info->rules_hash = d->rules_hash;
}

/* Strategies an engine reads as held only because a group holds them: the
 * tripped list names strategies with latches of their own, so an operator
 * would otherwise read "0 tripped" while a venue group halts half the book. */
static uint32_t held_by_groups(struct bk_daemon *d)
{
	uint32_t n = 0;
	uint64_t since;
	uint32_t mask;

	for (uint32_t i = 0; i < d->state.n_strategies; i++)
		if (!d->state.strategies[i].gone && !d->state.strategies[i].active &&
		    d->state.members[i].n &&
		    BK_STATE_MODE(bk_group_folded(&d->state, (int)i, d->audit.durable_seq,
		                                  &since, &mask)))
			n++;
	return n;
}

static void info_msg(struct bk_daemon *d, Breaker__StatusInfo *info)
{
	uint64_t now = bk_now_mono_ns();
	uint64_t hb = atomic_load(&d->shm.shm->heartbeat_ns);

	breaker__status_info__init(info);
	info->instance = d->cfg.instance;
	info->global = scope_msg(d, BK_GLOBAL, true);
	info->has_strategy_count = info->has_heartbeat_age_ns = info->has_audit_seq = 1;
	info->has_daemon_pid = info->has_tick_period_ns = info->has_uptime_ns = 1;
	info->strategy_count = d->state.n_strategies - d->state.n_gone; /* live ones */
	info->has_held_by_groups = 1;
	info->held_by_groups = held_by_groups(d);
	info->heartbeat_age_ns = hb && now > hb ? now - hb : 0;
	info->audit_seq = d->audit.durable_seq;
	info->daemon_pid = (uint32_t)getpid();
	info->tick_period_ns = d->cfg.tick_ns;
	info->uptime_ns = now - d->boot_mono_ns;
	/* points into d, which outlives the reply's packing */
	if (d->tail.lost)
		info->audit_problem = d->tail.why;
	info->groups = calloc(d->state.n_groups + 1, sizeof(*info->groups));
	for (uint32_t g = 0; info->groups && g < d->state.n_groups; g++)
		if ((info->groups[info->n_groups] = scope_msg(d, BK_GROUP_SLOT(g), true)))
			info->n_groups++;
	warnings_msg(d, info);
	acks_msg(d, info);
	bk_orders_status(d, info, now);
	bk_venues_status(d, info);
	proposal_msg(d, info);
	recon_msg(d, info);
}

/*
 * Strategies per page: what the CLI's 1 MiB reply limit holds with room to
 * spare. A strategy weighs at most ~2.3 KB (eleven latches with 127-byte
 * reasons); the rest of the info (acks of 4,096 engines, 64 warnings) stays
 * under 400 KB.
 */
#define BK_STATUS_PAGE_MAX   256u
#define BK_STATUS_PAGE_BYTES (576u * 1024u)

/* The page of slots [offset, ...): see bk_daemon.h. */
static void page_msg(struct bk_daemon *d, Breaker__Reply *rep, bool all, uint32_t offset,
                     uint32_t limit)
{
	static char more[96]; /* the loop thread's; the reply is packed before reuse */
	Breaker__StatusInfo *info = rep->info;
	uint32_t n = d->state.n_strategies, i, count = 0;
	uint32_t cap = limit && limit < BK_STATUS_PAGE_MAX ? limit : BK_STATUS_PAGE_MAX;
	size_t bytes = 0;

	if (!limit) /* an older client: as many as fit, then the marker */
		cap = UINT32_MAX;
	info->tripped = calloc(n + 1, sizeof(*info->tripped));
	if (all)
		rep->strategies = calloc(n + 1, sizeof(*rep->strategies));
	if (!info->tripped || (all && !rep->strategies))
		return;
	/* the groups (up to 256, with their latches) count against the page */
	for (size_t g = 0; g < info->n_groups; g++)
		bytes += breaker__scope__get_packed_size(info->groups[g]) + 8;
	for (i = offset; i < n; i++) {
		bool tripped = d->state.strategies[i].active != 0;
		Breaker__Scope *s;

		if ((!all && !tripped) || d->state.strategies[i].gone)
			continue;
		if (count == cap || (count && bytes >= BK_STATUS_PAGE_BYTES))
			break; /* at least one a page, or a client asking again loops */
		count++;
		if (tripped && (s = scope_msg(d, (int)i, true))) {
			info->tripped[info->n_tripped++] = s;
			bytes += breaker__scope__get_packed_size(s) + 8;
		}
		if (all && (s = scope_msg(d, (int)i, true))) {
			rep->strategies[rep->n_strategies++] = s;
			bytes += breaker__scope__get_packed_size(s) + 8;
		}
	}
	/* stopped short: is anything left for this kind of page? */
	for (uint32_t j = i; j < n; j++)
		if (all || d->state.strategies[j].active) {
			snprintf(more, sizeof(more), "truncated: more from slot %u", i);
			rep->error = more;
			break;
		}
}

void bk_status_build(struct bk_daemon *d, Breaker__Reply *rep, bool all, uint32_t offset,
                     uint32_t limit)
{
	rep->has_status = 1;
	rep->status = BREAKER__STATUS__OK;
	rep->info = calloc(1, sizeof(*rep->info));
	if (!rep->info)
		return;
	info_msg(d, rep->info);
	page_msg(d, rep, all, offset, limit);
}

static void scope_free(Breaker__Scope *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_latches; i++)
		free(m->latches[i]);
	free(m->latches);
	free(m->groups);
	free(m->limits);
	free(m);
}

void bk_status_free(Breaker__Reply *rep)
{
	if (rep->info) {
		scope_free(rep->info->global);
		for (size_t i = 0; i < rep->info->n_tripped; i++)
			scope_free(rep->info->tripped[i]);
		free(rep->info->tripped);
		for (size_t i = 0; i < rep->info->n_groups; i++)
			scope_free(rep->info->groups[i]);
		free(rep->info->groups);
		for (size_t i = 0; i < rep->info->n_warnings; i++)
			free(rep->info->warnings[i]);
		free(rep->info->warnings);
		bk_orders_status_free(rep->info);
		bk_venues_status_free(rep->info);
		for (size_t i = 0; i < rep->info->n_acks; i++)
			free(rep->info->acks[i]);
		free(rep->info->acks);
		free(rep->info->pending_resume);
		for (size_t i = 0; i < rep->info->n_reconciliations; i++)
			free(rep->info->reconciliations[i]);
		free(rep->info->reconciliations);
		free(rep->info);
		rep->info = NULL;
	}
	for (size_t i = 0; i < rep->n_strategies; i++)
		scope_free(rep->strategies[i]);
	free(rep->strategies);
	rep->strategies = NULL;
	rep->n_strategies = 0;
}
