/*
 * Rules, one at a time: just below, at and just above each threshold, the
 * minimum-count guard, window expiry, warnings, NaN, cooldown.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "bk_rules.h"

#define MS 1000000ull

static struct bk_rules_cfg cfg;
static struct bk_rule_eval ev;
static struct bk_recon_hist hist; /* ev's reconciliation history */
static struct bk_tel_snap snap;
static struct bk_verdict v[8];
static uint64_t now;

static void setup(void)
{
	bk_rules_defaults(&cfg);
	memset(&ev, 0, sizeof(ev));
	memset(&snap, 0, sizeof(snap));
	snap.consistent = true;
	now = 1000 * MS;
}

TestSuite(rules, .init = setup);

/* Only one rule on, so verdicts are unambiguous. */
static struct bk_rule_cfg *only(enum bk_rule_id id)
{
	for (int i = 0; i < BK_RULE_COUNT; i++)
		cfg.dflt[i].enabled = false;
	cfg.dflt[id].enabled = true;
	return &cfg.dflt[id];
}

/* t is absolute; `now` stays the test's start time */
static int eval_at(uint64_t t)
{
	return bk_rules_eval(cfg.dflt, cfg.warn, &ev, &hist, &snap, t, v, 8);
}

static int trips(int n)
{
	int t = 0;

	for (int i = 0; i < n; i++)
		t += v[i].kind == BK_V_TRIP;
	return t;
}

/* 100 orders and r rejects inside the window; return trips verdicts. */
static int reject_case(uint64_t orders, uint64_t rejects)
{
	setup();
	struct bk_rule_cfg *r = only(BK_RULE_REJECT_RATE);
	r->max = 0.2;
	r->min_orders = 50;
	r->window_ms = 1000;
	eval_at(now); /* first snapshot: baseline */
	snap.orders = orders;
	snap.rejects = rejects;
	return trips(eval_at(now + 10 * MS));
}

Test(rules, reject_rate_threshold)
{
	cr_assert_eq(reject_case(100, 19), 0, "below");
	cr_assert_eq(reject_case(100, 20), 0, "at the threshold is not a breach");
	cr_assert_eq(reject_case(100, 21), 1, "above trips");
}

Test(rules, reject_rate_min_orders_guard)
{
	cr_assert_eq(reject_case(49, 49), 0, "100%% rejects but too few orders");
	cr_assert_eq(reject_case(50, 49), 1, "enough orders now");
}

Test(rules, reject_rate_window_expires)
{
	struct bk_rule_cfg *r = only(BK_RULE_REJECT_RATE);
	int n;

	r->max = 0.2;
	r->min_orders = 10;
	r->window_ms = 1000;
	eval_at(now);
	snap.orders = 100;
	snap.rejects = 15; /* 15%: fine */
	cr_assert_eq(trips(eval_at(now + MS)), 0);
	/* 1.5 s later the old orders have left the window; 10 new with 9 rejects */
	snap.orders = 110;
	snap.rejects = 24;
	n = eval_at(now + 1500 * MS);
	cr_assert_eq(trips(n), 1, "old orders expired, new ones are 90%% rejects");
	cr_assert(strstr(v[0].evidence, "9 rejects / 10 orders"), "evidence: %s",
	          v[0].evidence);
	cr_assert_float_eq(v[0].measured, 0.9, 1e-9);
	cr_assert_float_eq(v[0].threshold, 0.2, 1e-9);
}

Test(rules, trip_once_then_latched_until_clear)
{
	struct bk_rule_cfg *r = only(BK_RULE_EXPOSURE);

	r->max = 1000;
	snap.gross = 1500;
	cr_assert_eq(trips(eval_at(now)), 1);
	cr_assert_eq(trips(eval_at(now + MS)), 0,
	             "no second verdict while it stays breached");
	cr_assert(ev.violating[BK_RULE_EXPOSURE]);
	snap.gross = 10;
	eval_at(now + 2 * MS);
	cr_assert(!ev.violating[BK_RULE_EXPOSURE], "condition cleared");
	snap.gross = 2000;
	cr_assert_eq(trips(eval_at(now + 3 * MS)), 1, "a new breach is a new verdict");
}

Test(rules, order_rate)
{
	struct bk_rule_cfg *r = only(BK_RULE_ORDER_RATE);

	r->max = 100; /* per second */
	r->window_ms = 1000;
	eval_at(now);
	snap.orders = 100;
	cr_assert_eq(trips(eval_at(now + MS)), 0, "100/s is at the limit");
	snap.orders = 101;
	cr_assert_eq(trips(eval_at(now + 2 * MS)), 1, "101/s is over");
}

Test(rules, drawdown_abs_and_pct)
{
	struct bk_rule_cfg *r = only(BK_RULE_DRAWDOWN);

	r->max = 500;
	snap.pnl = 1000;
	eval_at(now);
	snap.pnl = 500; /* 500 down from the peak: at the limit */
	cr_assert_eq(trips(eval_at(now + MS)), 0);
	snap.pnl = 499.99;
	cr_assert_eq(trips(eval_at(now + 2 * MS)), 1);
	setup();
	r = only(BK_RULE_DRAWDOWN);
	r->max = 1e9;
	r->max_pct = 0.10;
	snap.pnl = 2000;
	eval_at(now);
	snap.pnl = 1800; /* 10% */
	cr_assert_eq(trips(eval_at(now + MS)), 0);
	snap.pnl = 1799;
	cr_assert_eq(trips(eval_at(now + 2 * MS)), 1, "just over 10%% of peak");
}

/* What bk_cmd's reconcile does: judge once, then let the next tick see it. */
static int post(double pos, bool has_fills, uint64_t fills, uint64_t wall, uint64_t t)
{
	int rv = bk_recon_post(&ev.recon, &hist, pos, has_fills, fills, wall,
	                       cfg.dflt[BK_RULE_RECONCILIATION].max, 60000, t,
	                       /* wall clock = mono + 1e18 in these tests */
	                       t + 1000000000000000000ull);
	if (!ev.recon.kept_break)
		ev.violating[BK_RULE_RECONCILIATION] = false;
	return rv;
}

Test(rules, reconciliation_needs_a_reconciled_view)
{
	struct bk_rule_cfg *r = only(BK_RULE_RECONCILIATION);

	cr_assert_float_eq(r->max, 1000, 1e-9, "seeds: $1K");
	cr_assert(r->global, "seeds: global HALTED");
	snap.position = 50000;
	snap.fills = 10;
	cr_assert_eq(trips(eval_at(now)), 0, "no reconciler view yet");
	cr_assert_eq(post(49000, true, 10, 0, now + MS), BK_RV_OK);
	cr_assert_eq(trips(eval_at(now + MS)), 0, "a $1000 break is at the limit");
	cr_assert_eq(post(48999, true, 10, 0, now + 2 * MS), BK_RV_BREAK);
	cr_assert_eq(trips(eval_at(now + 2 * MS)), 1);
	cr_assert_eq(trips(eval_at(now + 3 * MS)), 0, "once per posted reconciliation");
	cr_assert_eq(post(50000, true, 10, 0, now + 4 * MS), BK_RV_OK);
	eval_at(now + 4 * MS);
	cr_assert(!bk_rules_violating(&ev, BK_RULE_RECONCILIATION), "reconciled again");
}

Test(rules, reconciliation_is_judged_as_of_its_point)
{
	only(BK_RULE_RECONCILIATION);
	snap.position = 100;
	snap.fills = 1;
	eval_at(now);
	snap.position = 5100; /* fill 2: +5000 */
	snap.fills = 2;
	eval_at(now + 10 * MS);
	/* the venue's view as of fill 1 agrees; the engine has moved on since */
	cr_assert_eq(post(100, true, 1, 0, now + 20 * MS), BK_RV_OK);
	cr_assert_eq(trips(eval_at(now + 20 * MS)), 0, "a later fill is not a break");
	snap.position = 9100; /* and another after the post */
	snap.fills = 3;
	cr_assert_eq(trips(eval_at(now + 30 * MS)), 0, "the verdict stands");
	/* as of a time: between fill 1 and fill 2 the engine showed 100 */
	cr_assert_eq(
	    post(100, false, 0, now + 5 * MS + 1000000000000000000ull, now + 40 * MS),
	    BK_RV_OK);
	cr_assert_float_eq(ev.recon.engine, 100, 1e-9);
	/* a real break at that point trips once */
	cr_assert_eq(post(2100, true, 2, 0, now + 50 * MS), BK_RV_BREAK);
	cr_assert_float_eq(ev.recon.brk, 3000, 1e-9, "5100 at fill 2 vs 2100");
	cr_assert_eq(trips(eval_at(now + 50 * MS)), 1);
	/* unknown points never trip */
	cr_assert_eq(post(0, true, 7, 0, now + 60 * MS), BK_RV_UNKNOWN,
	             "not yet at fill 7");
	cr_assert_eq(trips(eval_at(now + 60 * MS)), 0);
	cr_assert_eq(post(0, false, 0, 1000000000000000000ull, now + 70 * MS),
	             BK_RV_UNKNOWN, "older than the history");
	/* a verdict expires */
	cr_assert_eq(post(0, true, 3, 0, now + 80 * MS), BK_RV_BREAK);
	cr_assert_eq(trips(eval_at(now + 80 * MS)), 1);
	eval_at(now + 80 * MS + 60001 * MS);
	cr_assert(!bk_rules_violating(&ev, BK_RULE_RECONCILIATION), "stale after 60 s");
	/* fills 4 and 5 seen only as 5, in one tick: 4 has no position of its own */
	snap.fills = 5;
	snap.position = 9600;
	eval_at(now + 61 * 1000 * MS);
	cr_assert_eq(post(0, true, 4, 0, now + 62 * 1000 * MS), BK_RV_UNKNOWN);
	cr_assert(strstr(ev.recon.why, "not seen on its own"), "%s", ev.recon.why);
	/* the engine restarts: fill 3 of the old session is not fill 3 of the new */
	snap.fills = 1;
	eval_at(now + 63 * 1000 * MS);
	cr_assert_eq(post(0, true, 3, 0, now + 64 * 1000 * MS), BK_RV_UNKNOWN);
}

Test(rules, stale_heartbeat)
{
	struct bk_rule_cfg *r = only(BK_RULE_HEARTBEAT);

	r->max = 100; /* ms */
	cr_assert_eq(trips(eval_at(now)), 0, "an engine that never beat is not watched");
	snap.heartbeat_ns = now;
	cr_assert_eq(trips(eval_at(now + 100 * MS)), 0, "exactly at the bound");
	cr_assert_eq(trips(eval_at(now + 101 * MS)), 1, "past it");
}

Test(rules, heartbeat_from_another_clock_is_stale_not_forever_fresh)
{
	struct bk_rule_cfg *r = only(BK_RULE_HEARTBEAT);

	r->max = 100;                            /* ms */
	snap.heartbeat_ns = now + 50 * MS / 100; /* written just after our tick began */
	cr_assert_eq(trips(eval_at(now)), 0, "a little ahead is a fresh beat");
	snap.heartbeat_ns = now + 1700000000ull * 1000000000ull; /* CLOCK_REALTIME */
	cr_assert_eq(trips(eval_at(now + MS)), 1, "the wrong clock disarms nothing");
}

Test(rules, balance_conservation)
{
	only(BK_RULE_INVARIANT);
	snap.heartbeat_ns = now;
	snap.balance = 10000;
	snap.opening_seq = 1; /* the engine states its opening balance */
	snap.opening_base = 10000;
	eval_at(now);
	/* buy: cash -500, fee 1 -> balance 9499 */
	snap.fills = 1;
	snap.fill_cash = -500;
	snap.fees = 1;
	snap.balance = 9499;
	cr_assert_eq(trips(eval_at(now + MS)), 0, "explained by the fill");
	snap.balance = 9499.005; /* within 0.01 tolerance */
	cr_assert_eq(trips(eval_at(now + 2 * MS)), 0);
	snap.balance = 9600; /* 101 appeared from nowhere */
	cr_assert_eq(trips(eval_at(now + 3 * MS)), 1);
	cr_assert(strstr(v[0].evidence, "unexplained 101"), "%s", v[0].evidence);
}

Test(rules, torn_money_snapshot_is_not_judged)
{
	only(BK_RULE_INVARIANT);
	snap.heartbeat_ns = now;
	snap.balance = 100;
	snap.opening_seq = 1;
	snap.opening_base = 100;
	snap.fills = 1;
	eval_at(now);
	snap.balance = 1e6;
	snap.consistent = false; /* seqlock never settled this tick */
	cr_assert_eq(trips(eval_at(now + MS)), 0);
}

Test(rules, nan_telemetry_is_a_breach)
{
	struct bk_rule_cfg *r = only(BK_RULE_EXPOSURE);

	r->max = 1000;
	snap.gross = NAN;
	cr_assert_eq(trips(eval_at(now)), 1, "NaN cannot show the limit holds");
}

Test(rules, warnings_at_levels_before_trip)
{
	struct bk_rule_cfg *r = only(BK_RULE_EXPOSURE);
	int n;

	r->max = 1000;
	snap.gross = 400;
	cr_assert_eq(eval_at(now), 0, "40%%: silent");
	snap.gross = 500;
	n = eval_at(now + MS);
	cr_assert_eq(n, 1);
	cr_assert_eq(v[0].kind, BK_V_WARN);
	cr_assert_float_eq(v[0].util, 0.5, 1e-9);
	cr_assert_eq(eval_at(now + 2 * MS), 0, "same level: no repeat");
	snap.gross = 950;
	n = eval_at(now + 3 * MS);
	cr_assert_eq(n, 1, "75%% and 90%% crossed at once: one warning");
	cr_assert_eq(ev.warned[BK_RULE_EXPOSURE], 3);
	snap.gross = 1001;
	n = eval_at(now + 4 * MS);
	cr_assert_eq(trips(n), 1);
}

Test(rules, cooldown_steps_after_clear)
{
	struct bk_rule_cfg *r = only(BK_RULE_EXPOSURE);
	int n;

	r->max = 1000;
	r->cooldown_ms = 100;
	r->cooldown_to = BK_REDUCE_ONLY;
	snap.gross = 2000;
	cr_assert_eq(trips(eval_at(now)), 1);
	snap.gross = 10;
	cr_assert_eq(eval_at(now + 50 * MS), 0, "before the cooldown");
	n = eval_at(now + 100 * MS);
	cr_assert_eq(n, 1);
	cr_assert_eq(v[0].kind, BK_V_COOLDOWN);
	cr_assert_eq(eval_at(now + 200 * MS), 0, "one step per trip");
}

Test(rules, per_strategy_override)
{
	snprintf(cfg.over[0].name, BK_NAME_MAX, "hot");
	memcpy(cfg.over[0].rule, cfg.dflt, sizeof(cfg.dflt));
	cfg.over[0].rule[BK_RULE_EXPOSURE].max = 5;
	cfg.n_over = 1;
	cr_assert_eq(bk_rules_for(&cfg, "hot")[BK_RULE_EXPOSURE].max, 5);
	cr_assert_eq(bk_rules_for(&cfg, "cold"), cfg.dflt);
}

/* the base is the engine's statement, never a tick's timing */
Test(rules, opening_balance_is_a_statement_not_a_tick)
{
	only(BK_RULE_INVARIANT);
	snap.heartbeat_ns = now;
	cr_assert_eq(trips(eval_at(now)), 0, "engine beats, nothing posted yet");
	/* opening balance and the first fill land within the same tick */
	snap.opening_seq = 1;
	snap.opening_base = 1e6; /* stated before the fill */
	snap.opening_fills = 0;
	snap.fills = 1;
	snap.fill_cash = -100;
	snap.fees = 0.5;
	snap.balance = 1e6 - 100.5;
	cr_assert_eq(trips(eval_at(now + MS)), 0, "%s", v[0].evidence);
	/* a new trading day: a new statement with fills already counted */
	snap.opening_seq = 2;
	snap.opening_base = 5e5 - (-100 - 0.5);
	snap.balance = 5e5;
	cr_assert_eq(trips(eval_at(now + 2 * MS)), 0, "a new statement, a new base");
	snap.balance = 5e5 - 75; /* an unexplained debit */
	cr_assert_eq(trips(eval_at(now + 3 * MS)), 1);
	cr_assert(strstr(v[0].evidence, "opening statement #2"), "%s", v[0].evidence);
	cr_assert(strstr(v[0].evidence, "unexplained 75.0000"), "%s", v[0].evidence);
}

Test(rules, unstated_opening_balance_is_zero)
{
	only(BK_RULE_INVARIANT);
	snap.heartbeat_ns = now;
	snap.fills = 1;
	snap.fill_cash = -10;
	snap.balance = 1e6 - 10; /* never stated: not silently taken as a base */
	cr_assert_eq(trips(eval_at(now)), 1);
	cr_assert(strstr(v[0].evidence, "no opening balance stated"), "%s",
	          v[0].evidence);
}

/* a forced resume leaves the rule armed */
Test(rules, forced_resume_rearms_on_worsening)
{
	struct bk_rule_cfg *r = only(BK_RULE_INVARIANT);

	r->rearm_ms = 0; /* only worsening */
	snap.opening_seq = 1;
	snap.opening_base = 1000;
	snap.balance = 925; /* 75 gone */
	cr_assert_eq(trips(eval_at(now)), 1);
	bk_rules_rearm(&ev, BK_RULE_INVARIANT, now + MS);
	cr_assert(ev.forced[BK_RULE_INVARIANT]);
	cr_assert_eq(trips(eval_at(now + 2 * MS)), 0, "as bad as at the force");
	snap.balance = 850; /* a second 75 debit */
	cr_assert_eq(trips(eval_at(now + 3 * MS)), 1, "worse than at the force: trips");
	cr_assert_eq(trips(eval_at(now + 4 * MS)), 0, "once");
}

Test(rules, forced_resume_rearms_after_grace)
{
	struct bk_rule_cfg *r = only(BK_RULE_DRAWDOWN);

	r->max = 100;
	r->rearm_ms = 50;
	snap.pnl = 1000;
	eval_at(now);
	snap.pnl = 800;
	cr_assert_eq(trips(eval_at(now + MS)), 1);
	bk_rules_rearm(&ev, BK_RULE_DRAWDOWN, now + MS);
	snap.pnl = 810; /* better, still violated */
	cr_assert_eq(trips(eval_at(now + 20 * MS)), 0);
	cr_assert_eq(trips(eval_at(now + 51 * MS)), 1, "still violated after the grace");
	/* healed, then a fresh breach trips as ever */
	bk_rules_rearm(&ev, BK_RULE_DRAWDOWN, now + 52 * MS);
	snap.pnl = 1000;
	cr_assert_eq(trips(eval_at(now + 53 * MS)), 0);
	cr_assert(!ev.forced[BK_RULE_DRAWDOWN], "holding again clears the re-arm");
	snap.pnl = 850;
	cr_assert_eq(trips(eval_at(now + 54 * MS)), 1);
}

Test(rules, rebase_resets_peak_and_balance_base)
{
	struct bk_rule_cfg *r = only(BK_RULE_DRAWDOWN);
	double old, cur;

	r->max = 100;
	snap.pnl = 1000;
	eval_at(now);
	snap.pnl = 500;
	cr_assert_eq(trips(eval_at(now + MS)), 1);
	cr_assert_eq(bk_rules_rebase(&ev, BK_RULE_DRAWDOWN, &snap, &old, &cur), 0);
	cr_assert_float_eq(old, 1000, 1e-9);
	cr_assert_float_eq(cur, 500, 1e-9);
	cr_assert(ev.violating[BK_RULE_DRAWDOWN], "nothing changes before set");
	bk_rules_rebase_set(&ev, BK_RULE_DRAWDOWN, cur, snap.opening_seq);
	cr_assert_eq(trips(eval_at(now + 2 * MS)), 0);
	cr_assert(!ev.violating[BK_RULE_DRAWDOWN]);
	snap.pnl = 399; /* 101 below the new peak */
	cr_assert_eq(trips(eval_at(now + 3 * MS)), 1, "armed from the new peak");

	r = only(BK_RULE_INVARIANT);
	snap.fill_cash = -10;
	snap.balance = 700; /* unstated: 710 unexplained */
	cr_assert_eq(trips(eval_at(now + 4 * MS)), 1);
	cr_assert_eq(bk_rules_rebase(&ev, BK_RULE_INVARIANT, &snap, &old, &cur), 0);
	cr_assert_float_eq(cur, 710, 1e-9);
	bk_rules_rebase_set(&ev, BK_RULE_INVARIANT, cur, snap.opening_seq);
	cr_assert_eq(trips(eval_at(now + 5 * MS)), 0);
	snap.balance = 650;
	cr_assert_eq(trips(eval_at(now + 6 * MS)), 1);
	cr_assert(strstr(v[0].evidence, "rebased by an operator"), "%s", v[0].evidence);
	cr_assert_eq(bk_rules_rebase(&ev, BK_RULE_EXPOSURE, &snap, &old, &cur), -EINVAL);
}

/* a rebase replayed at boot holds over the engine's older statement, not a newer one */
Test(rules, replayed_rebase_yields_only_to_a_newer_statement)
{
	only(BK_RULE_INVARIANT);
	snap.opening_seq = 1;
	snap.opening_base = 1000; /* the engine's statement, still in the slot */
	snap.balance = 900;
	bk_rules_rebase_set(&ev, BK_RULE_INVARIANT, 900, 1); /* replayed record */
	cr_assert_eq(trips(eval_at(now)), 0, "the rebase, not statement #1");
	snap.opening_seq = 2; /* a new trading day */
	snap.opening_base = 500;
	snap.balance = 500;
	cr_assert_eq(trips(eval_at(now + MS)), 0);
	cr_assert_float_eq(ev.base_balance, 500, 1e-9);
	cr_assert(!ev.base_by_rebase);
}

/* warnings and evidence in one unit, naming the limit in force */
Test(rules, drawdown_measured_in_money_names_its_limit)
{
	struct bk_rule_cfg *r = only(BK_RULE_DRAWDOWN);
	int n;

	r->max = 25000;
	r->max_pct = 0.20;
	snap.pnl = 2500;
	eval_at(now);
	snap.pnl = 2500 - 400; /* 400 of the 500 pct limit: 80% */
	n = eval_at(now + MS);
	cr_assert_eq(n, 1);
	cr_assert_eq(v[0].kind, BK_V_WARN);
	cr_assert_float_eq(v[0].measured, 400, 1e-9);
	cr_assert_float_eq(v[0].threshold, 500, 1e-9);
	cr_assert_float_eq(v[0].util, 0.8, 1e-9);
	cr_assert_float_eq(ev.threshold[BK_RULE_DRAWDOWN], 500, 1e-9);
	snap.pnl = 2500 - 544;
	cr_assert_eq(trips(eval_at(now + 2 * MS)), 1);
	cr_assert_float_eq(v[0].measured, 544, 1e-9);
	cr_assert(strstr(v[0].evidence, "drawdown 544.00 against the pct limit 500.00"),
	          "%s", v[0].evidence);
	/* a big peak: the absolute limit is the tighter one */
	setup();
	r = only(BK_RULE_DRAWDOWN);
	r->max = 25000;
	r->max_pct = 0.20;
	snap.pnl = 1e6;
	eval_at(now);
	snap.pnl = 1e6 - 30000;
	cr_assert_eq(trips(eval_at(now + MS)), 1);
	cr_assert_float_eq(v[0].threshold, 25000, 1e-9);
	cr_assert(strstr(v[0].evidence, "against the absolute limit 25000.00"), "%s",
	          v[0].evidence);
}

Test(rules, drawdown_with_only_a_percent_limit)
{
	struct bk_rule_cfg *r = only(BK_RULE_DRAWDOWN);

	r->max = 0;
	r->max_pct = 0.5;
	snap.pnl = -10; /* no peak yet: nothing to measure against */
	cr_assert_eq(trips(eval_at(now)), 0);
	snap.pnl = 100;
	eval_at(now + MS);
	snap.pnl = 49;
	cr_assert_eq(trips(eval_at(now + 2 * MS)), 1);
}

Test(rules, disabled_rule_releases_its_condition)
{
	struct bk_rule_cfg *r = only(BK_RULE_EXPOSURE);

	r->max = 10;
	snap.gross = 100;
	eval_at(now);
	cr_assert(ev.violating[BK_RULE_EXPOSURE]);
	r->enabled = false;
	eval_at(now + MS);
	cr_assert(!ev.violating[BK_RULE_EXPOSURE],
	          "a switched-off rule holds nothing up");
}

/* Marks every tick do not push the fills out of the reconciliation history. */
Test(rules, reconciliation_history_keeps_fills_not_price_ticks)
{
	only(BK_RULE_RECONCILIATION);
	snap.fills = 1;
	snap.position = 1000;
	eval_at(now);
	/* 10 s of a notional repriced every 100 us tick, no fill */
	for (int i = 1; i <= 100000; i++) {
		snap.position = 1000 + (i % 7);
		eval_at(now + (uint64_t)i * 100000ull);
	}
	cr_assert_leq(ev.recon.n, 102u, "one entry per 100 ms at most: %u", ev.recon.n);
	cr_assert_eq(post(1000, true, 1, 0, now + 100001ull * 100000ull), BK_RV_OK,
	             "fill 1 is still in the history");
}
