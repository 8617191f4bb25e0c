/*
 * bk_recon - reconciliation as of a point.
 *
 * A reconciler's position is true at a point: the engine's fill count N, or
 * a wall-clock time T. The daemon keeps, per strategy, a short ring of what
 * the engine's telemetry showed (fills, position, when), filled on the tick
 * when the fill count changes (a position change alone: at most one entry
 * per BK_RECON_COALESCE_NS, folded into the latest otherwise). A posted
 * reconciliation is judged ONCE against the engine's position at that same
 * point, and the verdict stands until the next reconciliation, a withdrawal,
 * or its expiry. An as-of point the ring no longer (or never) covered is
 * "unknown": never a trip. Pure logic on fixed-size state: nothing here
 * allocates.
 */
#ifndef BK_RECON_H
#define BK_RECON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BK_RECON_HIST 256 /* entries per strategy; power of 2 */
/* A position change without a fill (marks) is folded into the latest entry if
 * that is younger than this: a history of fills, not of price ticks. */
#define BK_RECON_COALESCE_NS 100000000ull
#define BK_RECON_MAX_AGE_MS  60000 /* [rules] reconcile_max_age_ms default */

enum bk_recon_verdict {
	BK_RV_NONE,      /* never reconciled (or restarted with nothing to restore) */
	BK_RV_OK,        /* break within the limit */
	BK_RV_BREAK,     /* break above the limit: the rule trips */
	BK_RV_UNKNOWN,   /* as-of point outside the history: no verdict, no trip */
	BK_RV_WITHDRAWN, /* withdrawn by an operator */
};

struct bk_recon_point {
	uint64_t fills;
	double position;
	uint64_t mono_ns; /* first tick that showed this (fills, position) */
};

struct bk_recon {
	/* the verdict first: the tick reads these, post() saves and restores them */
	uint8_t verdict;
	bool restored; /* from the audit log at boot: held, never judged again */
	bool has_fills;
	bool kept_break;      /* the last post was unknown: the break before it stands */
	double reconciled;    /* the reconciler's position */
	double engine;        /* the engine's position at the as-of point */
	double brk, limit;    /* |engine - reconciled|, the limit when judged */
	uint64_t as_of_fills; /* 0 with !has_fills */
	uint64_t as_of_wall_ns;
	uint64_t posted_wall_ns;
	uint64_t expires_mono_ns; /* the verdict counts until then; 0 = never */
	char why[96];             /* why unknown */
	/* last: what the tick reads; the ring itself lives apart (bk_recon_hist) */
	uint32_t n; /* entries written ever (ring index = n % BK_RECON_HIST) */
	struct bk_recon_point last; /* the latest entry (n > 0), as in the ring */
};

/*
 * The history ring, kept apart from struct bk_recon: 6 KiB per strategy that
 * the tick writes only when the fill count (or position) changes and a post
 * reads, never per tick. Inside the per-strategy rule state it spread the
 * tick's hot data two pages apart per strategy.
 */
struct bk_recon_hist {
	struct bk_recon_point p[BK_RECON_HIST];
};

/* The tick: remember (fills, position) if either changed. No allocation. */
void bk_recon_observe(struct bk_recon *r, struct bk_recon_hist *h, uint64_t fills,
                      double position, uint64_t now_mono_ns);

/*
 * Judge a posted position once. as_of_fills/as_of_wall_ns: 0 if not given
 * (both 0: as of now). limit: the rule's max. max_age_ms: 0 = no expiry.
 * Returns the verdict; r holds the report, except that an unknown verdict
 * leaves a standing break in place (r->kept_break, r->why says so).
 */
enum bk_recon_verdict bk_recon_post(struct bk_recon *r, const struct bk_recon_hist *h,
                                    double reconciled, bool has_fills,
                                    uint64_t as_of_fills, uint64_t as_of_wall_ns,
                                    double limit, uint32_t max_age_ms,
                                    uint64_t now_mono_ns, uint64_t now_wall_ns);

/* Withdrawn (audited by the caller): no verdict, no trip. */
void bk_recon_withdraw(struct bk_recon *r, uint64_t now_wall_ns);

/* Has the engine ever shown a fill or a position (does it need reconciling)? */
bool bk_recon_active(const struct bk_recon *r);

/* Does the verdict count now (ok or break, not expired)? */
bool bk_recon_current(const struct bk_recon *r, uint64_t now_mono_ns);

/* The break report in one line (audit evidence, trip records). */
void bk_recon_evidence(const struct bk_recon *r, char *buf, size_t len);

const char *bk_recon_verdict_name(unsigned v);
int bk_recon_verdict_parse(const char *s); /* -1 if unknown */

#endif
