/*
 * bk_cmd_scope - unregister and rename a strategy.
 *
 * Contract (docs/cli.md, docs/shm-layout.md):
 * - Both are audited (UNREGISTER, RENAME records, replayed at boot) and need
 *   the resume permission, like register.
 * - Both are refused, with nothing changed, while the strategy holds any
 *   latch (ERR_LATCHED: release it first, so no halt is lost with a name),
 *   while an engine is attached to its slot (ERR_ENGINE_ATTACHED, see
 *   engine_attached), and for a strategy the config's [strategies] declares
 *   (the next boot would register it again).
 * - A slot is never reused. Unregister leaves a tombstone: no name, never
 *   resolved again, published HALTED (kill_switch) for ever, so an engine
 *   that cached the slot stays stopped and can never alias a later strategy
 *   (a later register of the same name gets a new slot). Rename keeps the
 *   slot, its latches' history and its rule state; only the name changes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "bk_cmd.h"
#include "bk_text.h"

/* An engine's telemetry heartbeat younger than this means it is attached. */
#define BK_ATTACH_FRESH_NS (10ull * 1000 * 1000 * 1000)

/*
 * Is an engine attached to the slot? Judged from what engines leave in
 * the telemetry slot (or a remote engine's Reports): a heartbeat within
 * BK_ATTACH_FRESH_NS, or the pid it wrote still alive. A reused pid errs
 * on the safe side (refused). An engine that only reads the state segment
 * and never writes telemetry cannot be seen: docs/cli.md says so.
 */
static bool engine_attached(const struct bk_daemon *d, int slot, char *why, size_t len)
{
	const struct bk_slot_rules *sr = &d->slots[slot];
	uint64_t now = bk_now_mono_ns(), hb = 0;
	uint32_t pid = 0;

	if (sr->is_remote) {
		hb = sr->remote.heartbeat_ns;
	} else if (d->tel.tel) {
		const struct bk_tel_slot *t = &d->tel.tel->slots[slot];

		hb = atomic_load_explicit(&t->heartbeat_ns, memory_order_relaxed);
		pid = atomic_load_explicit(&t->pid, memory_order_relaxed);
	}
	if (hb && (hb > now || now - hb < BK_ATTACH_FRESH_NS)) {
		snprintf(why, len,
		         "an engine is attached to %s: its telemetry heartbeat is "
		         "%llu ms old (stop it; attached means younger than %llu s)",
		         d->state.strategies[slot].name,
		         (unsigned long long)(hb > now ? 0 : (now - hb) / 1000000),
		         BK_ATTACH_FRESH_NS / 1000000000ull);
		return true;
	}
	if (pid && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
		snprintf(why, len,
		         "an engine is attached to %s: pid %u, which wrote its "
		         "telemetry slot, is alive (stop it first)",
		         d->state.strategies[slot].name, pid);
		return true;
	}
	return false;
}

/* What both commands check before anything changes. */
static bool scope_change_allowed(struct bk_cmd *c, const char *name, const char *reason,
                                 int *slot)
{
	struct bk_daemon *d = c->d;
	Breaker__Status st;

	if (!name || !*name) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST, "name a strategy");
		return false;
	}
	if ((st = bk_cmd_resolve_scope(d, name, slot, c->why, sizeof(c->why)))) {
		bk_cmd_refuse(c, st, c->why);
		return false;
	}
	if (!reason || !*reason || !bk_text_valid(reason, d->cfg.reason_max)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "a reason is required: UTF-8 text without control "
		              "characters, within the configured length");
		return false;
	}
	if (d->flush_err) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_NOT_DURABLE,
		              "the audit log is failing: nothing changes without its "
		              "record on disk");
		return false;
	}
	for (int i = 0; i < d->cfg.n_strategies; i++)
		if (strcmp(d->cfg.strategies[i], name) == 0) {
			snprintf(c->why, sizeof(c->why),
			         "strategy %s is declared in the config's [strategies]: "
			         "take it out there and restart breakerd first (else the "
			         "next boot registers it again)",
			         name);
			bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST, c->why);
			return false;
		}
	if (d->state.strategies[*slot].active) {
		snprintf(c->why, sizeof(c->why),
		         "strategy %s holds a latch: resume it to ACTIVE first ('breaker "
		         "status' shows its latches)",
		         name);
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_LATCHED, c->why);
		return false;
	}
	if (engine_attached(d, *slot, c->why, sizeof(c->why))) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_ENGINE_ATTACHED, c->why);
		return false;
	}
	return true;
}

static void record_scope(struct bk_cmd *c, Breaker__AuditRecord *rec,
                         Breaker__AuditRecord__Kind kind, const char *name, int slot,
                         const char *reason)
{
	struct bk_actor who;

	bk_actor_of(c->d, &c->peer, &who);
	bk_cmd_record(c, rec, kind, &who, bk_now_wall_ns());
	rec->strategy = (char *)name;
	rec->has_slot = 1;
	rec->slot = (uint32_t)slot;
	rec->reason = (char *)reason;
	bk_cmd_request_id(c, rec);
}

void bk_cmd_unregister(struct bk_cmd *c)
{
	const Breaker__Unregister *u = c->req->unregister;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	struct bk_daemon *d = c->d;
	char name[BK_NAME_MAX];
	int slot;

	if (!scope_change_allowed(c, u->strategy, u->reason, &slot))
		return;
	snprintf(name, sizeof(name), "%s", u->strategy);
	record_scope(c, &rec, BREAKER__AUDIT_RECORD__KIND__UNREGISTER, name, slot,
	             u->reason);
	/* the record first: if it cannot be staged, nothing changed */
	if (!bk_cmd_stage_and_pend(c, &rec, slot, false))
		return;
	bk_state_unregister(&d->state, slot);
	bk_shm_add_strategy(&d->shm, slot, "");
	bk_publish_scope(d, slot); /* HALTED for good: see the contract above */
	bk_shm_changed(&d->shm);
	/* no rule judges an empty slot; its telemetry starts clean */
	d->remote_declared[slot] = false;
	memset(&d->slots[slot], 0, sizeof(d->slots[slot])); /* rules NULL: none */
	if (d->tel.tel)
		memset(&d->tel.tel->slots[slot], 0, sizeof(d->tel.tel->slots[slot]));
}

void bk_cmd_rename(struct bk_cmd *c)
{
	const Breaker__Rename *r = c->req->rename;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	struct bk_daemon *d = c->d;
	char old[BK_NAME_MAX];
	int slot;

	if (!r->new_name || !bk_strategy_name_valid(r->new_name)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "the new name must be 1-39 bytes of [A-Za-z0-9._:-]");
		return;
	}
	if (bk_state_find(&d->state, r->new_name) >= 0) {
		snprintf(c->why, sizeof(c->why), "strategy %s exists already",
		         r->new_name);
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_EXISTS, c->why);
		return;
	}
	if (!scope_change_allowed(c, r->strategy, r->reason, &slot))
		return;
	snprintf(old, sizeof(old), "%s", r->strategy);
	record_scope(c, &rec, BREAKER__AUDIT_RECORD__KIND__RENAME, old, slot, r->reason);
	rec.new_name = r->new_name;
	if (!bk_cmd_stage_and_pend(c, &rec, slot, false))
		return;
	bk_state_rename(&d->state, slot, r->new_name);
	bk_shm_add_strategy(&d->shm, slot, r->new_name);
	/* rules and limits go by name: the new name's (state and history stay) */
	d->slots[slot].rules = bk_rules_for(&d->cfg.rules, r->new_name);
	d->slots[slot].is_remote =
	    d->remote_declared[slot] || bk_config_remote(&d->cfg, r->new_name);
	bk_publish_scope(d, slot);
	bk_shm_changed(&d->shm);
}
