/*
 * bk_tick - the tick: heartbeat, then every registered strategy's telemetry
 * read, its rules evaluated when it moved or something is due
 * (bk_tickskip.h), and the daemon's own trips, warnings and cooldown steps.
 * Runs in the loop thread; nothing here allocates or blocks (audit records
 * are staged, not written).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bk_daemon.h"
#include "bk_incident_log.h"
#include "bk_log.h"
#include "bk_tickskip.h"

#define BK_VERDICTS_MAX                                                                  \
	(2 * BK_RULE_COUNT) /* a trip, or a warning and a step, per rule */

static void publish_warning(struct bk_daemon *d, int slot, const struct bk_verdict *v)
{
	struct bk_warning_event w = {.strategy = d->state.strategies[slot].name,
	                             .rule = bk_rule_name(v->rule),
	                             .evidence = v->evidence,
	                             .reason_code = bk_rule_reason(v->rule),
	                             .util = v->util};

	bk_incident_log_publish(d, &w);
}

static void rule_record(Breaker__AuditRecord *rec, const struct bk_verdict *v,
                        const char *strategy, char *text, size_t len)
{
	snprintf(text, len, "rule %s (strategy %s): %s", bk_rule_name(v->rule), strategy,
	         v->evidence);
	rec->rule = (char *)bk_rule_name(v->rule);
	rec->has_threshold = rec->has_measured = 1;
	rec->threshold = v->threshold;
	rec->measured = v->measured;
	rec->evidence = (char *)v->evidence;
	rec->reason = text;
}

static void act(struct bk_daemon *d, int slot, const struct bk_rule_cfg *rules,
                const struct bk_verdict *v)
{
	const struct bk_rule_cfg *r = &rules[v->rule];
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	const char *name = d->state.strategies[slot].name;
	int scope = r->global ? BK_GLOBAL : slot;
	char text[400], source[96];

	switch (v->kind) {
	case BK_V_TRIP:
		bk_warn("rule %s tripped %s to %s: %s", bk_rule_name(v->rule),
		        r->global ? "global" : name, bk_mode_str((enum bk_mode)r->action),
		        v->evidence);
		rule_record(&rec, v, name, text, sizeof(text));
		bk_protect_trip(d, scope, bk_rule_reason(v->rule), r->action, &rec,
		                false);
		break;
	case BK_V_WARN:
		bk_info("rule %s at %.0f%% for %s: %s", bk_rule_name(v->rule),
		        v->util * 100, name, v->evidence);
		publish_warning(d, slot, v);
		bk_incident_log_warning(d, slot, v); /* for the incident timeline */
		break;
	case BK_V_COOLDOWN:
		if (!r->cooldown_to)
			break;
		/* A step judges from the declared source only; a remote strategy
		 * that has sent nothing yet has shown nothing to step on. */
		if (d->slots[slot].is_remote && !d->slots[slot].remote.heartbeat_ns)
			break;
		rule_record(&rec, v, name, text, sizeof(text));
		if (d->slots[slot].is_remote) {
			snprintf(source, sizeof(source), "report from %s",
			         d->slots[slot].remote_from);
			rec.telemetry_source = source;
		} else {
			rec.telemetry_source = "segment";
		}
		bk_protect_step(d, scope, bk_rule_reason(v->rule), r->cooldown_to, &rec);
		break;
	}
}

/* One strategy's rules on snap, and when they must be judged again at the latest. */
static void eval_slot(struct bk_daemon *d, int i, const struct bk_tel_snap *snap,
                      uint64_t sig, uint64_t now)
{
	struct bk_verdict v[BK_VERDICTS_MAX];
	struct bk_slot_rules *sr = &d->slots[i];
	uint64_t next;
	bool hb_fwd_ok;
	int n;

	n = bk_rules_eval(sr->rules, d->cfg.rules.warn, &sr->eval, &d->recon_hist[i],
	                  snap, now, v, BK_VERDICTS_MAX);
	for (int k = 0; k < n; k++)
		act(d, i, sr->rules, &v[k]);
	bk_rulestate_tick(d, i, now);
	next = bk_rules_next_ns(sr->rules, d->cfg.rules.warn, &sr->eval, snap, now,
	                        &hb_fwd_ok);
	if (bk_rulestate_due(d, i) < next) /* a record held back by its rate limit */
		next = bk_rulestate_due(d, i);
	bk_tickskip_done(&d->skip, i, sig, snap, sr->is_remote, hb_fwd_ok, next, now);
}

/*
 * Strategy i, this tick: its rules if anything they judge by moved or is due
 * (bk_tickskip.h); the orders table while it is HALTED (or just might be:
 * any new word comes with bk_tickskip_all); the venue watch always. all:
 * every strategy (set at the tick's start, or by a trip during it).
 */
static void tick_slot(struct bk_daemon *d, int i, bool all, uint64_t now)
{
	struct bk_skip_slot *e = &d->skip.s[i];
	struct bk_tel_snap snap;
	bool due = all || d->skip.all || now >= e->next_ns;
	bool remote = due ? d->slots[i].is_remote : e->remote;
	uint64_t sig;

	if (!due && e->gone)
		return;
	if (due && d->state.strategies[i].gone) { /* unregistered: nothing to judge */
		e->gone = true;
		e->next_ns = UINT64_MAX;
		return;
	}
	if (remote)
		snap = d->slots[i].remote;
	else
		bk_tel_read(&d->tel, i, &snap);
	sig = bk_idle_note(&d->idle, i, &snap, now);
	if (!due && bk_tickskip_quiet(e, sig, &snap, now)) {
		d->skip.skipped++;
		if (!e->halted && !d->orders.global_halted)
			goto venues; /* its orders entry holds what it would write */
	} else {
		d->skip.evaluated++;
		eval_slot(d, i, &snap, sig, now);
	}
	bk_orders_tick(d, i, &snap, now);
	e->halted = d->orders.s[i].halt_ns != 0;
venues:
	bk_venues_slot(d, i, &snap, now);
}

/* Every rule for every strategy. -ENOENT when the telemetry is lost. */
static int tick_rules(struct bk_daemon *d, uint64_t now)
{
	struct bk_tel *seg = d->tel.tel;
	char err[256];
	bool all;

	/* every 1024 ticks (~0.1 s): an fstat per tick cost more than the rules */
	if (!d->tel.tel ||
	    ((d->tick_count & 1023) == 1 &&
	     bk_tel_check(&d->tel, d->cfg.instance, d->cfg.tel_mode) < 0)) {
		/* no telemetry: rules cannot see, so they cannot say all is well */
		if ((d->tick_count & 1023) == 1) { /* not every tick */
			bk_err(
			    "telemetry segment lost and not recreated: rules are blind");
			if (!d->tel.tel)
				bk_tel_open(&d->tel, d->cfg.instance, d->cfg.tel_mode,
				            err, sizeof(err));
		}
		bk_tickskip_all(&d->skip); /* whatever it shows once back is new */
		return -ENOENT;
	}
	if (d->tel.tel != seg) /* replaced: every slot reads afresh */
		bk_tickskip_all(&d->skip);
	all = d->skip.all;
	d->skip.all = false;
	bk_venues_begin(d, now);
	bk_orders_tick_begin(d);
	for (uint32_t i = 0; i < d->state.n_strategies; i++)
		tick_slot(d, (int)i, all, now);
	bk_orders_tick_done(d, now);
	bk_venues_end(d, now);
	return 0;
}

void bk_tick(struct bk_daemon *d, uint64_t now)
{
	bk_shm_heartbeat(&d->shm, now);
	d->last_tick_ns = now;
	d->tick_count++;
	d->ctr.tel_blind = tick_rules(d, now) < 0;
	bk_protect_refusals(d, now); /* refusals held back by the rate limit */
	bk_etcd_tick(d, now);        /* [cluster]: firm latches, quorum contact */
	/* a bounded slice of the /metrics rendering, every tick while one is due */
	bk_metrics_tick(d, now);
	bk_metrics_tick_done(d, bk_now_mono_ns() - now);
}

/* ---- forced resumes and rebases -------------------------------------------- */

int bk_tick_snapshot(struct bk_daemon *d, int slot, struct bk_tel_snap *snap)
{
	if (slot < 0 || (uint32_t)slot >= d->state.n_strategies)
		return -ENOENT;
	if (d->slots[slot].is_remote) {
		*snap = d->slots[slot].remote;
		return 0;
	}
	if (!d->tel.tel)
		return -ENOENT;
	bk_tel_read(&d->tel, slot, snap);
	return 0;
}

/* One strategy's rules behind a released latch: kept armed, and said so. */
static size_t rearm_slot(struct bk_daemon *d, int slot, unsigned reason, bool all,
                         uint64_t now, bool apply, char *buf, size_t len)
{
	struct bk_slot_rules *sr = &d->slots[slot];
	size_t off = 0;

	for (int id = 0; id < BK_RULE_COUNT && sr->rules; id++) {
		const struct bk_rule_cfg *r = &sr->rules[id];
		int n;

		if (!(all || bk_rule_reason((enum bk_rule_id)id) == reason) ||
		    !sr->eval.violating[id])
			continue;
		if (apply)
			bk_rules_rearm(&sr->eval, (enum bk_rule_id)id, now);
		/* in the rule's own unit: what it measured at the force, and its limit */
		n = snprintf(buf + off, len - off,
		             "%s%s for %s stays armed: trips again when worse than "
		             "%.4f (now; limit %.4f)",
		             off ? "; " : "", bk_rule_name((enum bk_rule_id)id),
		             d->state.strategies[slot].name, sr->eval.measured[id],
		             sr->eval.threshold[id]);
		if (n > 0 && r->rearm_ms && (size_t)n < len - off)
			n += snprintf(buf + off + n, len - off - (size_t)n,
			              ", or in %u ms if still violated", r->rearm_ms);
		if (n > 0)
			off = (size_t)n < len - off ? off + (size_t)n : len - 1;
	}
	return off;
}

size_t bk_tick_rearm(struct bk_daemon *d, int slot, unsigned reason, bool all, bool apply,
                     char *buf, size_t len)
{
	uint64_t now = bk_now_mono_ns();
	size_t off = 0;

	buf[0] = '\0';
	if (slot != BK_GLOBAL)
		return rearm_slot(d, slot, reason, all, now, apply, buf, len);
	/* a global latch: every strategy whose rule trips the global scope */
	for (uint32_t i = 0; i < d->state.n_strategies && off + 1 < len; i++) {
		const struct bk_rule_cfg *rules = d->slots[i].rules;
		bool any = false;

		for (int id = 0; rules && id < BK_RULE_COUNT; id++)
			any |= rules[id].global &&
			       (all || bk_rule_reason((enum bk_rule_id)id) == reason);
		if (any)
			off += rearm_slot(d, (int)i, reason, all, now, apply, buf + off,
			                  len - off);
	}
	return off;
}

void bk_tick_replay_rebase(struct bk_daemon *d, const Breaker__AuditRecord *rec)
{
	int slot, id;

	if (rec->kind != BREAKER__AUDIT_RECORD__KIND__REBASE || !rec->strategy ||
	    !rec->rule || !rec->has_base_after || !isfinite(rec->base_after))
		return;
	if ((slot = bk_state_find(&d->state, rec->strategy)) < 0 ||
	    (id = bk_rule_parse(rec->rule)) < 0)
		return;
	bk_rules_rebase_set(&d->slots[slot].eval, (enum bk_rule_id)id, rec->base_after,
	                    rec->opening_seq);
}

/* Strategy i's rule id held the latch of scope slot (itself, or global). */
static bool rule_feeds(const struct bk_daemon *d, uint32_t i, int slot, int id)
{
	const struct bk_rule_cfg *r = d->slots[i].rules ? &d->slots[i].rules[id] : NULL;

	if (!r || !r->enabled || !r->cooldown_ms || !r->cooldown_to)
		return false;
	return slot == BK_GLOBAL ? r->global : (!r->global && (int)i == slot);
}

void bk_tick_restore_cooldowns(struct bk_daemon *d)
{
	uint64_t mono = bk_now_mono_ns(), wall = bk_now_wall_ns();

	for (int slot = BK_GLOBAL; slot < (int)d->state.n_strategies; slot++) {
		const struct bk_scope *sc = bk_state_cscope(&d->state, slot);

		for (int id = 0; id < BK_RULE_COUNT; id++) {
			unsigned reason = bk_rule_reason((enum bk_rule_id)id);
			const struct bk_latch *l = &sc->latches[reason];
			uint64_t age, at;

			/* only a latch the rule raised and no operator re-tripped:
			 * bk_cmd_system_step judges that again before any step */
			if (!(sc->active & (1u << reason)) || l->operator_owned ||
			    strcmp(l->actor.name, "breakerd") != 0)
				continue;
			/* a clock stepped back: count the whole cooldown from now */
			age = wall > l->since_wall_ns ? wall - l->since_wall_ns : 0;
			at = age < mono ? mono - age : 1;
			for (uint32_t i = 0; i < d->state.n_strategies; i++)
				if (rule_feeds(d, i, slot, id) &&
				    !d->slots[i].eval.tripped_ns[id])
					d->slots[i].eval.tripped_ns[id] = at ? at : 1;
		}
	}
}
