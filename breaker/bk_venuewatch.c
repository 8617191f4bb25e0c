#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_daemon.h"
#include "bk_incident_log.h"
#include "bk_log.h"
#include "bk_venuewatch.h"

#define NS_PER_MS       1000000ull
#define DEAD_DEFAULT_NS (1000 * NS_PER_MS)
#define VERDICTS_MAX    BK_VENUE_RULES

/* ---- membership: the venue groups (bk_group.h) ---------------------------- */

static uint32_t group_count(const struct bk_daemon *d)
{
	return d->state.n_groups;
}

static const char *group_name(const struct bk_daemon *d, uint32_t g)
{
	return d->state.groups[g].name;
}

/* Strategy slot's k-th group, or -1 past its last. */
static int group_of(const struct bk_daemon *d, int slot, int k)
{
	const struct bk_member *m = &d->state.members[slot];

	return k < m->n ? m->g[k] : -1;
}

static int group_scope(uint32_t g)
{
	return BK_GROUP_SLOT(g);
}

static int scope_group(int slot)
{
	return BK_SLOT_IS_GROUP(slot) ? BK_SLOT_GROUP(slot) : -1;
}

/* ---- the tick ---------------------------------------------------------------- */

static uint64_t dead_after_ns(const struct bk_daemon *d, int slot)
{
	const struct bk_rule_cfg *r = d->slots[slot].rules;

	if (r && r[BK_RULE_HEARTBEAT].enabled && r[BK_RULE_HEARTBEAT].max > 0)
		return (uint64_t)(r[BK_RULE_HEARTBEAT].max * (double)NS_PER_MS);
	return DEAD_DEFAULT_NS;
}

static void member_of(const struct bk_daemon *d, int slot, const struct bk_tel_snap *s,
                      struct bk_venue_member *m)
{
	m->name = d->state.strategies[slot].name;
	m->hb_ns = s->heartbeat_ns;
	m->md_ns = s->md_ns;
	m->session = s->session;
	m->session_ns = s->session_ns;
	m->dead_after_ns = dead_after_ns(d, slot);
}

void bk_venues_begin(struct bk_daemon *d, uint64_t now)
{
	struct bk_venues *v = &d->venues;
	uint32_t n = group_count(d);

	v->active = (d->cfg.venues.md_stale_ms || d->cfg.venues.session_down) && n &&
	            now >= v->next_ns;
	if (!v->active)
		return;
	v->next_ns = now + BK_VENUE_PERIOD_NS;
	for (uint32_t g = 0; g < n; g++) {
		v->is_venue[g] = strncmp(group_name(d, g), "venue:", 6) == 0;
		memset(&v->agg[g], 0, sizeof(v->agg[g]));
	}
}

void bk_venues_slot(struct bk_daemon *d, int slot, const struct bk_tel_snap *snap,
                    uint64_t now)
{
	struct bk_venues *v = &d->venues;
	struct bk_venue_member m;
	int g;

	if (!v->active)
		return;
	member_of(d, slot, snap, &m);
	for (int k = 0; (g = group_of(d, slot, k)) >= 0; k++)
		if (v->is_venue[g])
			bk_venue_add(&v->agg[g], &m, now);
}

static bool is_member(const struct bk_daemon *d, int slot, uint32_t g)
{
	int x;

	for (int k = 0; (x = group_of(d, slot, k)) >= 0; k++)
		if ((uint32_t)x == g)
			return true;
	return false;
}

/* The verdict's evidence, member by member (rare: a trip or a warning). */
static void add_evidence(struct bk_daemon *d, uint32_t g, struct bk_venue_verdict *vd,
                         uint64_t now)
{
	struct bk_venue_member m;
	struct bk_tel_snap s;

	for (uint32_t i = 0; i < d->state.n_strategies; i++)
		if (is_member(d, (int)i, g) && bk_tick_snapshot(d, (int)i, &s) == 0) {
			member_of(d, (int)i, &s, &m);
			bk_venue_evidence(vd, &m, now);
		}
}

static void publish_warning(struct bk_daemon *d, uint32_t g,
                            const struct bk_venue_verdict *vd)
{
	struct bk_warning_event w = {.group = group_name(d, g), /* the venue group */
	                             .rule = bk_venue_rule_name(vd->rule),
	                             .evidence = vd->evidence,
	                             .reason_code = bk_venue_rule_reason(vd->rule),
	                             .util = vd->util};

	bk_incident_log_publish(d, &w);
}

static void act(struct bk_daemon *d, uint32_t g, const struct bk_venue_verdict *vd)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	const char *rule = bk_venue_rule_name(vd->rule);
	char text[400];

	if (vd->kind == BK_V_WARN) {
		bk_info("venue rule %s at %.0f%%: %s", rule, vd->util * 100,
		        vd->evidence);
		publish_warning(d, g, vd);
		return;
	}
	bk_warn("venue rule %s tripped %s to %s: %s", rule, group_name(d, g),
	        bk_mode_str((enum bk_mode)d->cfg.venues.action), vd->evidence);
	snprintf(text, sizeof(text), "rule %s (group %s): %s", rule, group_name(d, g),
	         vd->evidence);
	rec.rule = (char *)rule;
	rec.has_threshold = rec.has_measured = 1;
	rec.threshold = vd->threshold;
	rec.measured = vd->measured;
	rec.evidence = (char *)vd->evidence;
	rec.reason = text;
	rec.telemetry_source = "segment and reports";
	bk_protect_trip(d, group_scope(g), bk_venue_rule_reason(vd->rule),
	                d->cfg.venues.action, &rec, false);
}

void bk_venues_end(struct bk_daemon *d, uint64_t now)
{
	struct bk_venues *v = &d->venues;
	struct bk_venue_verdict vd[VERDICTS_MAX];
	uint32_t n = group_count(d);

	if (!v->active)
		return;
	for (uint32_t g = 0; g < n; g++) {
		int k;

		if (!v->is_venue[g])
			continue;
		k = bk_venue_judge(&d->cfg.venues, d->cfg.rules.warn, group_name(d, g),
		                   &v->agg[g], now, &v->ev[g], vd, VERDICTS_MAX);
		for (int i = 0; i < k; i++) {
			add_evidence(d, g, &vd[i], now);
			act(d, g, &vd[i]);
		}
	}
}

bool bk_venues_holds(const struct bk_daemon *d, int slot, unsigned reason,
                     const char **rule)
{
	int r = bk_venue_rule_of_reason(reason), g = scope_group(slot);

	if (r < 0 || g < 0)
		return false;
	*rule = bk_venue_rule_name((enum bk_venue_rule)r);
	return d->venues.ev[g].violating[r];
}

/* ---- status -------------------------------------------------------------------- */

void bk_venues_status(struct bk_daemon *d, Breaker__StatusInfo *info)
{
	uint32_t n = group_count(d);

	for (uint32_t g = 0; g < n; g++) {
		const struct bk_venue_eval *ev = &d->venues.ev[g];

		for (int r = 0; r < BK_VENUE_RULES; r++) {
			Breaker__RuleState *w;

			if (!d->venues.is_venue[g] || !ev->judged[r])
				continue;
			if (!info->venues &&
			    !(info->venues =
			          calloc(2 * BK_MAX_GROUPS, sizeof(*info->venues))))
				return;
			if (!(w = calloc(1, sizeof(*w))))
				return;
			breaker__rule_state__init(w);
			w->rule = (char *)bk_venue_rule_name((enum bk_venue_rule)r);
			w->strategy = (char *)group_name(d, g); /* the venue group */
			w->has_measured = w->has_threshold = w->has_violated = 1;
			w->measured = ev->measured[r];
			w->threshold = ev->threshold[r];
			w->violated = ev->violating[r];
			if (r == BK_VR_MD_STALE && ev->threshold[r] > 0) {
				w->has_utilisation = 1;
				w->utilisation = ev->measured[r] / ev->threshold[r];
			}
			info->venues[info->n_venues++] = w;
		}
	}
}

void bk_venues_status_free(Breaker__StatusInfo *info)
{
	for (size_t i = 0; i < info->n_venues; i++)
		free(info->venues[i]);
	free(info->venues);
	info->venues = NULL;
	info->n_venues = 0;
}
