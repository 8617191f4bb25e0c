/*
 * bk_incident - the incident table: ids, states, per-scope incident, and the
 * id a trip goes under (bk_incident.h). Applied from records only, live and
 * at replay alike, so a restart rebuilds the same table.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bk_incident.h"
#include "bk_state.h"

bool bk_incident_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0, i;

	if (n < 12 || n > 15 || strncmp(id, "INC-", 4) != 0 || id[8] != '-')
		return false;
	for (i = 4; i < n; i++)
		if (i != 8 && !isdigit((unsigned char)id[i]))
			return false;
	return true;
}

int bk_incident_severity_parse(const char *s)
{
	if (!s)
		return 0;
	if (s[0] == 'P' && s[1] >= '1' && s[1] <= '4' && !s[2])
		return s[1] - '0';
	if (strncmp(s, "SEV-", 4) == 0 && s[4] >= '1' && s[4] <= '4' && !s[5])
		return s[4] - '0';
	return 0;
}

const char *bk_incident_severity_name(int sev)
{
	static const char *const n[] = {"P1", "P2", "P3", "P4"};

	return sev >= 1 && sev <= 4 ? n[sev - 1] : "P1";
}

struct bk_incident *bk_incident_find(struct bk_incidents *t, const char *id)
{
	uint32_t kept = t->n < BK_INCIDENTS ? t->n : BK_INCIDENTS;

	if (!id)
		return NULL;
	for (uint32_t i = 0; i < kept; i++) {
		struct bk_incident *x = &t->tab[(t->n - 1 - i) % BK_INCIDENTS];
		if (strcmp(x->id, id) == 0)
			return x;
	}
	return NULL;
}

/* The scope's row in t->scope: global 0, strategy slot s at 1 + s; -1 for
 * anything else (a group scope has no row: its trips take a member's or
 * global's incident, or a new one). */
static int scope_index(int slot)
{
	if (slot == BK_GLOBAL)
		return 0;
	return slot >= 0 && slot < (int)BK_MAX_STRATEGIES ? slot + 1 : -1;
}

/* Keep the year and number of the newest id seen, for the next assigned. */
static void note_number(struct bk_incidents *t, const char *id)
{
	unsigned year = (unsigned)atoi(id + 4), num = (unsigned)atoi(id + 9);

	if (year > t->year || (year == t->year && num > t->last_num)) {
		t->year = year;
		t->last_num = num;
	}
}

static struct bk_incident *open_one(struct bk_incidents *t, const char *id, int sev,
                                    const char *title, uint64_t wall)
{
	struct bk_incident *x = &t->tab[t->n++ % BK_INCIDENTS];

	memset(x, 0, sizeof(*x));
	snprintf(x->id, sizeof(x->id), "%s", id);
	snprintf(x->title, sizeof(x->title), "%s", title ? title : "");
	x->severity = (uint8_t)(sev ? sev : 1);
	x->opened_wall_ns = wall;
	note_number(t, id);
	return x;
}

void bk_incident_apply(struct bk_incidents *t, const Breaker__AuditRecord *rec, int slot)
{
	struct bk_incident *x;

	if (!rec->incident || !bk_incident_id_valid(rec->incident))
		return;
	x = bk_incident_find(t, rec->incident);
	switch (rec->kind) {
	case BREAKER__AUDIT_RECORD__KIND__INCIDENT_OPEN:
		if (!x)
			open_one(t, rec->incident,
			         bk_incident_severity_parse(rec->severity), rec->title,
			         rec->wall_ns);
		return;
	case BREAKER__AUDIT_RECORD__KIND__INCIDENT_ACK:
		if (x && x->state == BK_INC_OPEN) {
			x->state = BK_INC_ACKED;
			x->acked_wall_ns = rec->wall_ns;
		}
		return;
	case BREAKER__AUDIT_RECORD__KIND__INCIDENT_RESOLVE:
		if (x) {
			x->state = BK_INC_RESOLVED;
			x->resolved_wall_ns = rec->wall_ns;
		}
		return;
	case BREAKER__AUDIT_RECORD__KIND__TRIP:
		if (!x) { /* opened by this trip: named after it */
			char title[BK_INC_TITLE_MAX];
			const char *r = bk_reason_name(rec->reason_code);
			snprintf(title, sizeof(title), "%s trip of %s%s", r ? r : "?",
			         rec->group      ? "group "
			         : rec->strategy ? "strategy "
			                         : "global",
			         rec->group      ? rec->group
			         : rec->strategy ? rec->strategy
			                         : "");
			x = open_one(t, rec->incident,
			             bk_incident_severity_parse(rec->severity),
			             rec->title ? rec->title : title, rec->wall_ns);
		} else if (x->state == BK_INC_RESOLVED)
			x->state = BK_INC_OPEN; /* tripped again under it: reopened */
		if (scope_index(slot) >= 0)
			snprintf(t->scope[scope_index(slot)], BK_INCIDENT_ID_MAX, "%s",
			         rec->incident);
		return;
	default:
		return;
	}
}

const char *bk_incident_of_scope(struct bk_incidents *t, int slot)
{
	int i = scope_index(slot);
	const char *id = i >= 0 ? t->scope[i] : "";
	struct bk_incident *x = id[0] ? bk_incident_find(t, id) : NULL;

	return x && x->state != BK_INC_RESOLVED ? x->id : NULL;
}

void bk_incident_for_trip(struct bk_incidents *t, int slot, bool scope_held,
                          bool global_held, uint64_t wall_ns, char *id, bool *opened)
{
	const char *own = scope_held ? bk_incident_of_scope(t, slot) : NULL;
	time_t secs = (time_t)(wall_ns / 1000000000ull);
	struct tm tm;
	unsigned year;

	if (!own && global_held)
		own = bk_incident_of_scope(t, BK_GLOBAL);
	*opened = !own;
	if (own) {
		snprintf(id, BK_INCIDENT_ID_MAX, "%s", own);
		return;
	}
	gmtime_r(&secs, &tm);
	year = (unsigned)tm.tm_year + 1900;
	snprintf(id, BK_INCIDENT_ID_MAX, "INC-%04u-%03u", year,
	         year == t->year ? t->last_num + 1 : 1u);
}
