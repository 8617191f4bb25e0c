/*
 * bk_incident_log - records breakerd makes by itself for the incident
 * timeline (docs/incidents.md): a rule's warning (rate-limited to one per
 * rule and strategy per second: a value hovering at a level must not flood
 * the log). Staged, never written here: the tick does no I/O.
 */
#include <stdio.h>
#include <string.h>

#include "bk_daemon.h"
#include "bk_incident_log.h"

#define WARN_AUDIT_GAP_NS 1000000000ull

void bk_incident_log_publish(struct bk_daemon *d, const struct bk_warning_event *w)
{
	Breaker__Event ev = BREAKER__EVENT__INIT;
	uint8_t buf[512];

	ev.strategy = (char *)w->strategy;
	ev.group = (char *)w->group;
	ev.rule = (char *)w->rule;
	ev.has_utilisation = ev.has_warning = ev.has_wall_ns = ev.has_reason_code = 1;
	ev.utilisation = w->util;
	ev.warning = 1;
	ev.wall_ns = bk_now_wall_ns();
	ev.reason_code = (Breaker__ReasonCode)w->reason_code;
	ev.reason = (char *)w->evidence;
	if (breaker__event__get_packed_size(&ev) <= sizeof(buf))
		bk_server_publish(&d->srv, buf, breaker__event__pack(&ev, buf));
}

void bk_incident_log_warning(struct bk_daemon *d, int slot, const struct bk_verdict *v)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	uint64_t now = bk_now_mono_ns(), *last;

	if (slot < 0 || slot >= (int)BK_MAX_STRATEGIES || v->rule >= BK_RULE_COUNT)
		return;
	last = &d->warn_audit_ns[slot][v->rule];
	if (*last && now - *last < WARN_AUDIT_GAP_NS)
		return;
	/* never take the room a storm of trips needs: the batch is sized for
	 * a trip per strategy in one tick; warnings use its first quarter only */
	if (d->audit.staged_len >= BK_AUDIT_BATCH_BYTES / 4)
		return;
	*last = now;
	rec.has_kind = 1;
	rec.kind = BREAKER__AUDIT_RECORD__KIND__WARNING;
	rec.strategy = d->state.strategies[slot].name;
	rec.rule = (char *)bk_rule_name(v->rule);
	rec.has_measured = rec.has_threshold = rec.has_utilisation = 1;
	rec.measured = v->measured;
	rec.threshold = v->threshold;
	rec.utilisation = v->util;
	rec.evidence = (char *)v->evidence;
	rec.has_reason_code = 1;
	rec.reason_code = (Breaker__ReasonCode)bk_rule_reason(v->rule);
	rec.incident = (char *)bk_incident_of_scope(&d->incidents, slot);
	bk_record_stage_system(d, &rec); /* a lost warning record costs no halt */
}
