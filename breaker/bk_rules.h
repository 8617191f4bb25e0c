/*
 * bk_rules - automated protection: per-strategy rules evaluated from
 * telemetry on every tick. Pure logic on preallocated state: no I/O, no
 * allocation, no lock. The daemon feeds a snapshot per strategy and acts on
 * the verdicts (trip, warn, cooldown step).
 *
 * Sliding windows are rings of BK_WIN_BUCKETS buckets, each window/16 wide:
 * the rate is exact to within one bucket, memory is fixed whatever the tick.
 */
#ifndef BK_RULES_H
#define BK_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_recon.h"
#include "breaker_client.h"

#define BK_WIN_BUCKETS    16
#define BK_WARN_LEVELS    3
#define BK_RULE_OVERRIDES 64
#define BK_EVIDENCE_MAX   240

enum bk_rule_id {
	BK_RULE_REJECT_RATE,
	BK_RULE_ORDER_RATE,
	BK_RULE_DRAWDOWN,
	BK_RULE_EXPOSURE,
	BK_RULE_RECONCILIATION,
	BK_RULE_HEARTBEAT,
	BK_RULE_INVARIANT, /* balance conservation; evaluated per strategy, trips global
	                    */
	BK_RULE_COUNT,
};

struct bk_rule_cfg {
	bool enabled;
	double max;         /* reject: ratio 0..1; orders/s; drawdown abs; notional; ms */
	double max_pct;     /* drawdown: fraction of peak PnL (0 = off) */
	uint32_t window_ms; /* reject/order rate */
	uint32_t min_orders;  /* reject rate: no verdict below this many orders */
	uint8_t action;       /* mode to trip to */
	bool global;          /* trip the global scope instead of the strategy */
	uint32_t cooldown_ms; /* 0 = latch until an operator resumes */
	uint8_t cooldown_to;  /* CAUTIOUS or REDUCE_ONLY */
	uint32_t rearm_ms;    /* after a forced resume while violated: trip again
	                       * after this long if still violated (0 = only on
	                       * worsening) */
};

struct bk_rules_cfg {
	struct bk_rule_cfg dflt[BK_RULE_COUNT];
	double warn[BK_WARN_LEVELS]; /* utilisation levels, ascending */
	int n_over;
	struct {
		char name[BK_NAME_MAX];
		struct bk_rule_cfg rule[BK_RULE_COUNT];
	} over[BK_RULE_OVERRIDES];
	/* reconciliation (bk_recon.h): a verdict counts this long after its
	 * as-of point (0 = no expiry); a global resume needs a fresh "ok" */
	uint32_t recon_max_age_ms;
	bool resume_requires_reconcile;
};

/* One strategy's telemetry, as read this tick. */
struct bk_tel_snap {
	uint64_t orders, rejects, fills, cancels;
	uint64_t heartbeat_ns;
	double fill_cash, fees, balance, position, gross, pnl;
	/*
	 * The engine's opening-balance statement (bk_report_opening_balance):
	 * opening_seq counts statements (0 = never stated), opening_base is
	 * the balance minus (fill_cash - fees) at the statement, opening_fills
	 * the fill count then. Read under the same seqlock as the money words.
	 */
	uint32_t opening_seq;
	uint64_t opening_fills;
	double opening_base;
	bool consistent; /* the money words were read under a stable seqlock */
	/*
	 * The engine's view of its venue (telemetry v2, Report fields 140-142):
	 * each *_ns is CLOCK_MONOTONIC on the daemon's host (a Report's receipt
	 * time, less the age it states); 0 = never reported = unknown.
	 */
	uint64_t working, working_ns; /* orders working at the venue */
	uint64_t md_ns;               /* the last market-data tick */
	uint32_t session;             /* BK_SESSION_* */
	uint64_t session_ns;
};

struct bk_window {
	uint32_t orders[BK_WIN_BUCKETS];
	uint32_t rejects[BK_WIN_BUCKETS];
	uint64_t sum_orders, sum_rejects;
	uint64_t bucket_start_ns;
	uint32_t head;
};

struct bk_rule_eval {
	bool seen; /* a first snapshot was taken */
	uint64_t last_orders, last_rejects, last_fills;
	struct bk_window rej_win, ord_win;
	double peak_pnl;
	bool base_set;       /* a base was stated, rebased or replayed */
	double base_balance; /* balance conservation: balance - (fill_cash - fees) */
	bool violating[BK_RULE_COUNT];
	uint8_t warned[BK_RULE_COUNT]; /* warning levels crossed (0..3) */
	double util[BK_RULE_COUNT];    /* last measured / threshold */
	double measured[BK_RULE_COUNT];
	uint64_t tripped_ns[BK_RULE_COUNT]; /* when this rule last tripped; 0 = not */
	double threshold[BK_RULE_COUNT];    /* the limit measured[] was judged against */
	/*
	 * Balance conservation's base: balance - (fill_cash - fees) as the
	 * engine stated it (opening_seq_seen) or an operator rebased it; never
	 * taken from whichever tick happened to see what.
	 */
	uint32_t opening_seq_seen;
	uint64_t base_fills; /* fill count at the statement (evidence) */
	bool base_by_rebase; /* the base is an operator's rebase, not a statement */
	/*
	 * Re-armed by a forced resume while violated: trips again when the
	 * utilisation goes above forced_util, or at forced_ns + rearm_ms.
	 */
	bool forced[BK_RULE_COUNT];
	double forced_util[BK_RULE_COUNT];
	uint64_t forced_ns[BK_RULE_COUNT];
	/* the reconciler's view, judged as of its point; its history ring is
	 * kept apart (struct bk_recon_hist, passed to bk_rules_eval) */
	struct bk_recon recon;
};

enum bk_verdict_kind { BK_V_TRIP, BK_V_WARN, BK_V_COOLDOWN };

struct bk_verdict {
	enum bk_verdict_kind kind;
	enum bk_rule_id rule;
	double measured, threshold, util;
	char evidence[BK_EVIDENCE_MAX];
};

/* Defaults: reject rate, reconciliation, heartbeat and invariant on; others off. */
void bk_rules_defaults(struct bk_rules_cfg *cfg);

/* The rules in force for a strategy (its override, or the defaults). */
const struct bk_rule_cfg *bk_rules_for(const struct bk_rules_cfg *cfg, const char *name);

const char *bk_rule_name(enum bk_rule_id id);
int bk_rule_parse(const char *name);         /* -1 if unknown */
unsigned bk_rule_reason(enum bk_rule_id id); /* the latch a rule trips */

/*
 * Evaluate every rule for one strategy at now (hist: its reconciliation
 * history, written when the fill count or position moved). Writes up to max verdicts and
 * returns how many. A trip verdict is emitted when a rule starts violating
 * (not every tick it stays violated); warnings when utilisation crosses a
 * level upward; a cooldown step when a tripped rule's cooldown has passed and
 * it no longer violates.
 */
int bk_rules_eval(const struct bk_rule_cfg *rules, const double warn[BK_WARN_LEVELS],
                  struct bk_rule_eval *ev, struct bk_recon_hist *hist,
                  const struct bk_tel_snap *snap, uint64_t now_ns, struct bk_verdict *out,
                  int max);

/*
 * After bk_rules_eval at now with snap: the earliest time at which the same
 * snapshot could give another result (a heartbeat age crossing a warning
 * level or the limit, a window bucket expiring while the window holds
 * orders, a cooldown or re-arm due, a reconciliation expiring); UINT64_MAX
 * if only new telemetry can. Rounded down: early is always safe
 * (bk_tickskip.h). *hb_fwd_ok: a heartbeat that only moves forward (less
 * than 1 s ahead) changes nothing the rules hold before that time (false
 * while the heartbeat rule is violated or past a warning level).
 */
uint64_t bk_rules_next_ns(const struct bk_rule_cfg *rules,
                          const double warn[BK_WARN_LEVELS],
                          const struct bk_rule_eval *ev, const struct bk_tel_snap *snap,
                          uint64_t now_ns, bool *hb_fwd_ok);

/*
 * A forced resume released rule id's latch while it is violated: keep it
 * armed (trip again on worsening, or after rules->rearm_ms). No-op if the
 * rule is not violated.
 */
void bk_rules_rearm(struct bk_rule_eval *ev, enum bk_rule_id id, uint64_t now_ns);

/*
 * The new base a rebase of a level rule would set from snap (an operator's
 * audited statement): the drawdown peak becomes the current PnL; the
 * balance base the current balance minus (fill_cash - fees). *old and *now
 * get the value before and after; nothing changes until
 * bk_rules_rebase_set. -EINVAL for a rule that has no base, -EAGAIN if the
 * money words were not read consistently (or are not finite).
 */
int bk_rules_rebase(const struct bk_rule_eval *ev, enum bk_rule_id id,
                    const struct bk_tel_snap *snap, double *old, double *now);
/* Set a rebased base (now, or a REBASE record replayed at boot). */
void bk_rules_rebase_set(struct bk_rule_eval *ev, enum bk_rule_id id, double value,
                         uint32_t opening_seq);

/* Does rule still hold (violate) for this strategy right now? */
static inline bool bk_rules_violating(const struct bk_rule_eval *ev, enum bk_rule_id r)
{
	return ev->violating[r];
}

#endif
