/*
 * bk_incident - incidents in the audit log (docs/incidents.md).
 *
 * An incident id is INC-YYYY-NNN (3-6 digits). breakerd keeps the recent
 * incidents' state (open, acknowledged, resolved) rebuilt from the log at
 * boot, so that `breaker incident ack|resolve` can be refused when the id is
 * unknown or the step was taken already, and so that a trip with no id
 * joins the incident of a scope it holds or opens a new one (id assigned,
 * severity from [incidents] in the config). The loop thread only.
 */
#ifndef BK_INCIDENT_H
#define BK_INCIDENT_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_mode.h"
#include "breaker.pb-c.h"

#define BK_INCIDENT_ID_MAX 16  /* "INC-2026-123456" + NUL */
#define BK_INCIDENTS       256 /* the most recent kept; older ones are in the log */
#define BK_INC_TITLE_MAX   96

enum bk_inc_state { BK_INC_OPEN = 0, BK_INC_ACKED = 1, BK_INC_RESOLVED = 2 };

struct bk_incident {
	char id[BK_INCIDENT_ID_MAX];
	char title[BK_INC_TITLE_MAX];
	uint8_t severity; /* 1..4: P1..P4 */
	uint8_t state;    /* enum bk_inc_state */
	uint64_t opened_wall_ns, acked_wall_ns, resolved_wall_ns;
};

struct bk_incidents {
	struct bk_incident tab[BK_INCIDENTS]; /* ring by opening order */
	uint32_t n;                           /* ever opened (tab[n % BK_INCIDENTS]) */
	uint32_t year, last_num;              /* the latest id's year and number */
	/* per scope (0 = global, 1+slot): the incident its latest trip was under */
	char scope[BK_MAX_STRATEGIES + 1][BK_INCIDENT_ID_MAX];
};

/* The incident a trip goes under (bk_cmd_incident.c). */
struct bk_trip_incident {
	char id[BK_INCIDENT_ID_MAX];
	bool opened; /* the trip opens it (its record carries the severity) */
};

/* "INC-2026-001": the format, and its year and number. */
bool bk_incident_id_valid(const char *id);
/* "P1".."P4" (or "SEV-1".."SEV-4") to 1..4; 0 if not one. */
int bk_incident_severity_parse(const char *s);
/* 1..4 to "P1".."P4". */
const char *bk_incident_severity_name(int sev);

/* The incident with this id, or NULL. */
struct bk_incident *bk_incident_find(struct bk_incidents *t, const char *id);

/* Apply one record (a live one once staged, or at replay); slot: its scope
 * (BK_GLOBAL, a strategy slot, or anything else when unknown). */
void bk_incident_apply(struct bk_incidents *t, const Breaker__AuditRecord *rec, int slot);

/*
 * The incident a trip of scope slot (BK_GLOBAL or a slot) goes under when it
 * names none: the scope's own or global's, if that scope is held now and the
 * incident is not resolved; else a new id (*opened set). id gets it.
 */
void bk_incident_for_trip(struct bk_incidents *t, int slot, bool scope_held,
                          bool global_held, uint64_t wall_ns, char *id, bool *opened);

/* The scope's incident if one is not resolved; NULL otherwise. */
const char *bk_incident_of_scope(struct bk_incidents *t, int slot);

#endif
