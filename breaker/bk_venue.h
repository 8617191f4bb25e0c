/*
 * bk_venue - the venue rules (issue 14 item 6): market-data staleness and
 * venue connectivity, judged per venue group ("venue:XETR") from what its
 * member engines report in telemetry (slot.md_last_ns, slot.session), and
 * tripping the venue group with market_data_stale / exchange_down.
 *
 * Contract (docs/rules.md, "Venue rules"):
 * - Only live members are judged: an engine whose heartbeat is older than
 *   its heartbeat rule allows (or that never beat) says nothing about the
 *   venue. A member that never reported a tick (md) or a session state is
 *   not judged either: a rule never trips on silence it cannot interpret
 *   (the drills saw false global halts from blind rules).
 * - md_stale: the venue's freshest tick among its live reporting members is
 *   older than md_stale_ms. One member still receiving ticks keeps the
 *   venue fresh (a quiet instrument is not a dead feed).
 * - session_down: every live member that reports a session says DOWN.
 * - Edge-triggered like the other rules: one trip when a rule starts to
 *   fail; warnings when md staleness crosses a warn level upward.
 * Pure logic: no I/O, no allocation.
 */
#ifndef BK_VENUE_H
#define BK_VENUE_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_rules.h"

#define BK_VENUE_RULES 2

enum bk_venue_rule { BK_VR_MD_STALE, BK_VR_SESSION_DOWN };

struct bk_venue_cfg {
	uint32_t md_stale_ms; /* 0 = off */
	bool session_down;    /* trip exchange_down when every live session is down */
	uint8_t action;       /* mode to trip the venue group to (HALTED) */
};

/* One member strategy as read this tick. */
struct bk_venue_member {
	const char *name;
	uint64_t hb_ns, md_ns, session_ns;
	uint32_t session;
	uint64_t dead_after_ns; /* its heartbeat rule's bound */
};

/* A venue's members this tick, folded one by one (no member list kept). */
struct bk_venue_agg {
	int md_live;          /* live members that report market data */
	uint64_t freshest_md; /* their freshest tick */
	int sess_reporting;   /* live members that report a session state */
	int sess_down;        /* ... of which DOWN */
};

/* Per venue group: the edge detection and what status shows. */
struct bk_venue_eval {
	bool violating[BK_VENUE_RULES];
	uint8_t warned; /* md_stale warn levels crossed */
	bool judged[BK_VENUE_RULES];
	double measured[BK_VENUE_RULES]; /* md: age ms; session: members down */
	double threshold[BK_VENUE_RULES];
};

struct bk_venue_verdict {
	enum bk_verdict_kind kind; /* BK_V_TRIP or BK_V_WARN */
	enum bk_venue_rule rule;
	double measured, threshold, util;
	char evidence[BK_EVIDENCE_MAX];
	size_t len; /* of evidence, for bk_venue_evidence */
};

const char *bk_venue_rule_name(enum bk_venue_rule r); /* "md_stale", "session_down" */
unsigned bk_venue_rule_reason(enum bk_venue_rule r);  /* 12, 13 */
int bk_venue_rule_of_reason(unsigned reason);         /* -1 if neither */

/* Fold one member into its venue's aggregate. */
void bk_venue_add(struct bk_venue_agg *a, const struct bk_venue_member *m, uint64_t now);

/*
 * Judge venue (its group name) from its aggregate at now: up to max
 * verdicts into out (their evidence says the venue's figures), returns how
 * many.
 */
int bk_venue_judge(const struct bk_venue_cfg *cfg, const double warn[BK_WARN_LEVELS],
                   const char *venue, const struct bk_venue_agg *a, uint64_t now,
                   struct bk_venue_eval *ev, struct bk_venue_verdict *out, int max);

/* A verdict's evidence, member by member (its tick's age or its session). */
void bk_venue_evidence(struct bk_venue_verdict *v, const struct bk_venue_member *m,
                       uint64_t now);

#endif
