/*
 * bk_page - the loop's side of the status page (bk_page.h): the ring of
 * recent events, and the page's extras on a Status reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_daemon.h"
#include "bk_page.h"

void bk_page_note(struct bk_page_recent *r, const Breaker__Event *ev)
{
	struct bk_page_event *e = &r->ev[r->n++ % BK_PAGE_RECENT];

	memset(e, 0, sizeof(*e));
	e->seq = ev->audit_seq;
	e->wall_ns = ev->wall_ns;
	e->uid = ev->actor_uid;
	e->kind = (uint8_t)ev->kind;
	e->has_modes = ev->has_from_mode && ev->has_to_mode;
	e->from_mode = (uint8_t)ev->from_mode;
	e->to_mode = (uint8_t)ev->to_mode;
	e->reason_code = (uint8_t)ev->reason_code;
	e->forced = ev->forced;
	snprintf(e->scope, sizeof(e->scope), "%s", ev->strategy ? ev->strategy : "");
	snprintf(e->reason, sizeof(e->reason), "%s", ev->reason ? ev->reason : "");
}

static const char *const states[] = {"open", "acknowledged", "resolved"};

/* Incidents not resolved, then the latest resolved ones: at most 16. */
static void add_incidents(struct bk_daemon *d, Breaker__StatusInfo *info)
{
	struct bk_incidents *t = &d->incidents;
	uint32_t kept = t->n < BK_INCIDENTS ? t->n : BK_INCIDENTS;
	Breaker__IncidentInfo **v = calloc(16, sizeof(*v));

	if (!v)
		return;
	info->incidents = v;
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = 0; i < kept && info->n_incidents < 16; i++) {
			struct bk_incident *x = &t->tab[(t->n - 1 - i) % BK_INCIDENTS];
			Breaker__IncidentInfo *m;
			if ((x->state == BK_INC_RESOLVED) != (pass == 1) ||
			    (pass == 1 && info->n_incidents >= 8))
				continue;
			if (!(m = calloc(1, sizeof(*m))))
				return;
			breaker__incident_info__init(m);
			m->id = x->id;
			m->severity = (char *)bk_incident_severity_name(x->severity);
			m->title = x->title;
			m->state = (char *)states[x->state < 3 ? x->state : 0];
			m->has_opened_wall_ns = 1;
			m->opened_wall_ns = x->opened_wall_ns;
			m->has_acked_wall_ns = x->acked_wall_ns != 0;
			m->acked_wall_ns = x->acked_wall_ns;
			m->has_resolved_wall_ns = x->resolved_wall_ns != 0;
			m->resolved_wall_ns = x->resolved_wall_ns;
			v[info->n_incidents++] = m;
		}
}

/* The latest events, newest first. */
static void add_recent(struct bk_daemon *d, Breaker__StatusInfo *info)
{
	struct bk_page_recent *r = &d->page_recent;
	uint32_t n = r->n < BK_PAGE_RECENT ? r->n : BK_PAGE_RECENT;
	Breaker__Event **v = calloc(BK_PAGE_RECENT, sizeof(*v));

	if (!v)
		return;
	info->recent = v;
	for (uint32_t i = 0; i < n; i++) {
		struct bk_page_event *e = &r->ev[(r->n - 1 - i) % BK_PAGE_RECENT];
		Breaker__Event *m = calloc(1, sizeof(*m));
		if (!m)
			return;
		breaker__event__init(m);
		m->has_audit_seq = m->has_wall_ns = m->has_actor_uid = m->has_kind = 1;
		m->has_reason_code = m->has_forced = 1;
		m->audit_seq = e->seq;
		m->wall_ns = e->wall_ns;
		m->actor_uid = e->uid;
		m->kind = (Breaker__AuditRecord__Kind)e->kind;
		m->has_from_mode = m->has_to_mode = e->has_modes;
		m->from_mode = (Breaker__Mode)e->from_mode;
		m->to_mode = (Breaker__Mode)e->to_mode;
		m->reason_code = (Breaker__ReasonCode)e->reason_code;
		m->forced = e->forced;
		m->strategy = e->scope[0] ? e->scope : NULL;
		m->reason = e->reason[0] ? e->reason : NULL;
		v[info->n_recent++] = m;
	}
}

void bk_page_status(struct bk_daemon *d, Breaker__Reply *rep)
{
	if (!rep->info)
		return;
	add_incidents(d, rep->info);
	add_recent(d, rep->info);
}

void bk_page_status_free(Breaker__Reply *rep)
{
	Breaker__StatusInfo *info = rep->info;

	if (!info)
		return;
	for (size_t i = 0; i < info->n_incidents; i++)
		free(info->incidents[i]);
	for (size_t i = 0; i < info->n_recent; i++)
		free(info->recent[i]);
	free(info->incidents);
	free(info->recent);
	info->incidents = NULL;
	info->recent = NULL;
	info->n_incidents = info->n_recent = 0;
}
