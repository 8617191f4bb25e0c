/*
 * drill - the runbooks (docs/runbook.md) as executable scenarios: a real
 * breakerd (tests/bk_harness), the real CLI, and fault-injecting engines.
 *
 * An engine is a thread trading one strategy through the C client
 * (clients/c/breaker_client.h): every millisecond it beats, reads its mode,
 * acknowledges the change sequence, marks its PnL and, when its mode allows,
 * sends orders that the simulated venue fills or rejects. It obeys the modes
 * as an engine must (HALTED: nothing; REDUCE_ONLY: only fills that shrink the
 * position; CAUTIOUS: smaller orders). Faults are switched on by the drill and
 * the engine stamps the wall time each one first took effect, so the drill can
 * hold the audit log's figures against the truth.
 */
#ifndef BK_DRILL_H
#define BK_DRILL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bk_harness.h"

enum drill_fault {
	DF_REJECT_STORM = 1 << 0, /* the venue rejects every order */
	DF_DRAWDOWN = 1 << 1,     /* PnL bleeds dd_per_ms every millisecond */
	DF_LOST_FILLS = 1 << 2,   /* the venue fills, the engine never hears of it */
	DF_DEAD = 1 << 3,         /* the engine stops beating (and trading): hung */
	DF_LEAK = 1 << 4,         /* one unexplained debit of leak_amount */
};

/* What the venue knew at one moment, for a reconciler that lags behind it. */
struct drill_point {
	uint64_t wall_ns;
	uint64_t fills;   /* the engine's fill counter then */
	double venue_pos; /* the venue's position then */
};

#define DRILL_HISTORY 4096 /* points, one per engine step (~4 s) */

struct drill_engine {
	struct bk_h *h;
	char name[40];
	int slot;
	struct bk_client c;
	struct bk_tel_client t;
	pthread_t th;
	uint64_t seed;
	/* knobs: set by the drill before start or via drill_fault() */
	double reject_p;     /* normal reject ratio (0.02) */
	double dd_per_ms;    /* drawdown bleed under DF_DRAWDOWN */
	double dd_limit;     /* the drawdown rule's max: the breach is stamped */
	double break_limit;  /* the reconciliation rule's max: the breach is stamped */
	double leak_amount;  /* DF_LEAK's debit */
	int orders_per_ms;   /* orders per step when trading (1) */
	bool opening_stated; /* state the opening balance with the rules' word */
	_Atomic int faults;
	_Atomic bool stop;
	/* the engine's own book (thread-owned; read by others only via atomics) */
	double position, balance, pnl, cash, fees;
	/* observable from the drill thread */
	_Atomic uint64_t fills, orders, rejects, lost;
	_Atomic uint64_t steps, halted_steps;
	_Atomic uint64_t last_beat_wall_ns;
	_Atomic uint64_t fault_wall_ns; /* when the current fault first took effect */
	_Atomic int mode_seen;          /* the mode at the last step */
	_Atomic uint64_t venue_pos_bits, engine_pos_bits; /* doubles */
	/* venue history for a lagging reconciler: written by the engine */
	struct drill_point hist[DRILL_HISTORY];
	_Atomic uint64_t hist_n;
	/* asks to the engine thread, done on its next step */
	_Atomic bool want_resync; /* book the lost fills from the drop copy */
	_Atomic bool want_open;   /* state the opening balance (a new day) */
	double lost_cash, lost_fees, lost_pos; /* the fills it never heard of */
};

/*
 * A reconciler: every period_ms, for each engine, the venue's position as it
 * was lag_ms ago (lag drawn from [lag_min, lag_max]) posted with the engine's
 * fill count at that point (`breaker reconcile S=POS --as-of-fills N`), each
 * verdict from the break report counted.
 */
struct drill_reconciler {
	struct bk_h *h;
	struct drill_engine *e[8];
	int n;
	unsigned period_ms, lag_min, lag_max;
	pthread_t th;
	pthread_mutex_t lock; /* held for a round of posts: hold it to restart engines */
	_Atomic bool stop, paused;
	_Atomic uint64_t posted, ok, unknown, brk, failed;
	char last_out[2048]; /* the last refused or unparsed reply */
	uint64_t seed;
};

void drill_reconciler_start(struct drill_reconciler *r);
void drill_reconciler_stop(struct drill_reconciler *r);
/* Post one reconciliation of e as of its current point; its verdict in out. */
int drill_reconcile_now(struct bk_h *h, struct drill_engine *e, unsigned lag_ms,
                        char *out, size_t len);

/* Attach to h's instance and resolve strategy (the engine is set up, not
 * trading: set knobs, then drill_engine_go). */
void drill_engine_start(struct drill_engine *e, struct bk_h *h, const char *strategy,
                        uint64_t seed);
/* State the opening balance and start the trading thread. */
void drill_engine_go(struct drill_engine *e);
/* The engine process dies cleanly and a new one takes over the same book. */
void drill_engine_restart(struct drill_engine *e);
/* Stop the thread and detach (a clean stop disarms the heartbeat rule). */
void drill_engine_stop(struct drill_engine *e);
/* Switch faults on (set) or off; returns the wall time of the switch. */
uint64_t drill_fault(struct drill_engine *e, int faults, bool on);

double drill_venue_pos(struct drill_engine *e);
/* The venue point at least lag_ms old (the newest such): false if none yet. */
bool drill_point_ago(struct drill_engine *e, unsigned lag_ms, struct drill_point *p);

/* Wall clock, ns. */
uint64_t drill_wall_ns(void);
/* Poll bk_check(e's strategy) until want (or stricter); ms it took, -1 on deadline. */
long drill_wait_mode(struct drill_engine *e, int want, int deadline_ms);
/* Poll the global word alone until want; ms it took, -1 on deadline. */
long drill_wait_global(struct drill_engine *e, int want, int deadline_ms);

/* Run the CLI (--config h->config ...); fail the test unless it exits want. */
void drill_cli(struct bk_h *h, int want, ...) __attribute__((sentinel));
/* The same, output into out (stdout and stderr). */
int drill_cli_out(struct bk_h *h, char *out, size_t len, ...) __attribute__((sentinel));

/*
 * `breaker incident export --format json` into <dir>/<tag>.json, then
 * tests/drills/check_incident.py on it with the given arguments (NULL-ended);
 * fails the test with the checker's words unless it passes.
 */
void drill_check_incident(struct bk_h *h, const char *tag, ...) __attribute__((sentinel));

/* Staged resume of a scope (NULL: global) to ACTIVE, stage by stage. */
void drill_staged_resume(struct bk_h *h, const char *strategy, const char *reason);

#endif
