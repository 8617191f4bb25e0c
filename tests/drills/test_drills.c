/*
 * The runbooks as drills (tests/drills/README.md): each scenario injects one
 * fault into a trading engine next to a healthy one, against a real breakerd
 * and the real CLI, and asserts that
 *   - what should trip trips, within its bound (generous: a shared CI
 *     machine; the measured figure is printed),
 *   - nothing else trips (the export's TRIP records are exactly the expected),
 *   - the runbook's recovery works (guards refuse too-early resumes; the
 *     staged resume reaches ACTIVE; the engine trades again),
 *   - `breaker incident export` figures match the injected fault's time.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_tel.h"
#include "drill.h"

/* reject window 1 s, drawdown 5000: the rules the drills hit. The heartbeat
 * bound is 1 s (the default) but in the engine-death drill (300 ms): a
 * healthy engine thread starved for 300 ms on a loaded CI machine is not the
 * false trip the drills look for. */
#define RULES                                                                            \
	"[strategies]\nnames = alpha, beta\n[rules]\n"                                   \
	"reject_rate.window_ms = 1000\ndrawdown.max = 5000\n"

/* A slack for a shared 2-CPU CI machine on every bound below: a bound says a
 * trip came, not how fast (the export's figures say how fast). */
#define SLACK_MS 1500

static char out[1 << 16];

static void up_hb(struct bk_h *h, const char *tag, const char *extra, int hb_ms)
{
	char ini[2048];

	snprintf(ini, sizeof(ini), RULES "heartbeat.max = %d\n%s", hb_ms,
	         extra ? extra : "");
	bk_h_init(h, tag, ini);
	bk_h_start(h);
}

static void up(struct bk_h *h, const char *tag, const char *extra)
{
	up_hb(h, tag, extra, 1000);
}

static void down(struct bk_h *h)
{
	bk_h_fini(h);
	bk_tel_unlink(h->instance);
}

static void ms_sleep(unsigned ms)
{
	usleep(ms * 1000u);
}

static char *num(char *buf, size_t len, uint64_t v)
{
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

/* alpha (the one the fault hits) and beta (a healthy bystander) trade. */
static void engines(struct bk_h *h, struct drill_engine *a, struct drill_engine *b,
                    uint64_t seed)
{
	drill_engine_start(a, h, "alpha", seed);
	drill_engine_start(b, h, "beta", seed + 1000);
	drill_engine_go(a);
	drill_engine_go(b);
}

/* The engine trades again: fills grow over the next 500 ms. */
static void trades_again(struct drill_engine *e)
{
	uint64_t f0 = atomic_load(&e->fills);

	for (int i = 0; i < 300 && atomic_load(&e->fills) <= f0 + 20; i++)
		ms_sleep(10);
	cr_assert_gt(atomic_load(&e->fills), f0 + 20, "%s trades again after the resume",
	             e->name);
}

/* ---- reject storm (runbook: 2. triage, 6. staged resume) ----------------------- */

Test(drills, reject_storm, .timeout = 60)
{
	struct bk_h h;
	struct drill_engine a, b;
	char fault[32];
	uint64_t t;
	long ms;

	up(&h, "dstorm", NULL);
	engines(&h, &a, &b, 1);
	ms_sleep(1200); /* a whole window of normal trading (2% rejects) */
	cr_assert_eq(bk_check(&a.c, a.slot), BK_ACTIVE, "normal trading trips nothing");
	drill_fault(&a, DF_REJECT_STORM, true);
	ms = drill_wait_mode(&a, BK_HALTED, 1000 + SLACK_MS);
	cr_assert_geq(ms, 0, "alpha HALTED within the 1 s window (+%d ms slack)",
	              SLACK_MS);
	t = atomic_load(&a.fault_wall_ns);
	fprintf(stderr, "drill reject_storm: alpha HALTED %ld ms after the storm began\n",
	        ms);
	cr_assert_eq(bk_check(&b.c, b.slot), BK_ACTIVE, "beta is not touched");
	cr_assert_eq(bk_check(&a.c, BK_GLOBAL_ONLY), BK_ACTIVE, "global is not touched");
	/* the venue recovers; the operator resumes stage by stage */
	drill_fault(&a, DF_REJECT_STORM, false);
	drill_staged_resume(&h, "alpha", "venue rejects cleared, ticket 101");
	cr_assert_geq(drill_wait_mode(&a, BK_ACTIVE, 1000), 0);
	trades_again(&a);
	cr_assert_eq(bk_check(&b.c, b.slot), BK_ACTIVE);
	drill_engine_stop(&a);
	drill_engine_stop(&b);
	drill_check_incident(
	    &h, "storm", "--trips", "alpha:reject_rate:reject_rate", "--fault-ns",
	    num(fault, sizeof(fault), t), "--detect-within-ms", "2500", "--basis",
	    "window", "--started-tol-ms", "1", "--resolved", "--stages",
	    "alpha:HALTED>REDUCE_ONLY>CAUTIOUS>ACTIVE", "--no-forced", NULL);
	down(&h);
}

/* ---- drawdown (a level rule: the resume waits for the condition) ---------------- */

Test(drills, drawdown, .timeout = 60)
{
	struct bk_h h;
	struct drill_engine a, b;
	char fault[32];
	uint64_t t;
	long ms;

	up(&h, "ddd", NULL);
	engines(&h, &a, &b, 3);
	a.dd_per_ms = 25;  /* bad marks: 25 a millisecond */
	a.dd_limit = 5000; /* the rule's max */
	ms_sleep(300);
	drill_fault(&a, DF_DRAWDOWN, true);
	ms = drill_wait_mode(&a, BK_HALTED, 200 + SLACK_MS);
	cr_assert_geq(ms, 0, "alpha HALTED by drawdown");
	t = atomic_load(&a.fault_wall_ns);
	cr_assert_neq(t, 0, "the engine saw its drawdown pass 5000");
	cr_assert_eq(bk_check(&b.c, b.slot), BK_ACTIVE, "beta is not touched");
	/* still bleeding: the resume is refused, the condition holds */
	cr_assert_eq(drill_cli_out(&h, out, sizeof(out), "resume", "--strategy", "alpha",
	                           "--reason", "too early", NULL),
	             1, "%s", out);
	cr_assert(strstr(out, "ERR_CONDITION_HOLDS"), "%s", out);
	/* the marks are corrected: PnL back where it was; resume stage by stage */
	drill_fault(&a, DF_DRAWDOWN, false);
	ms_sleep(50);
	drill_staged_resume(&h, "alpha", "bad marks corrected, ticket 102");
	trades_again(&a);
	drill_engine_stop(&a);
	drill_engine_stop(&b);
	/* tick basis: the trip is the detection; within the engine's step + a tick */
	drill_check_incident(&h, "dd", "--trips", "alpha:drawdown:drawdown", "--fault-ns",
	                     num(fault, sizeof(fault), t), "--detect-within-ms", "1000",
	                     "--basis", "tick", "--started-tol-ms", "1000", "--resolved",
	                     "--stages", "alpha:HALTED>REDUCE_ONLY>CAUTIOUS>ACTIVE",
	                     "--no-forced", NULL);
	down(&h);
}

/* ---- engine death (stale heartbeat; runbook: engine restart) -------------------- */

Test(drills, engine_death, .timeout = 60)
{
	struct bk_h h;
	struct drill_engine a, b;
	char fault[32];
	uint64_t t;
	long ms;

	up_hb(&h, "ddeath", NULL, 300);
	engines(&h, &a, &b, 5);
	ms_sleep(300);
	drill_fault(&a, DF_DEAD, true); /* hung: no beat from now on */
	ms_sleep(5);
	t = atomic_load(&a.last_beat_wall_ns);
	ms = drill_wait_mode(&a, BK_HALTED, 300 + SLACK_MS);
	cr_assert_geq(ms, 0, "alpha HALTED by its stale heartbeat");
	fprintf(stderr, "drill engine_death: HALTED %ld ms after the hang (max 300 ms)\n",
	        ms);
	cr_assert_eq(bk_check(&b.c, b.slot), BK_ACTIVE, "beta is not touched");
	/* still dead: a resume is refused */
	cr_assert_eq(drill_cli_out(&h, out, sizeof(out), "resume", "--strategy", "alpha",
	                           "--reason", "too early", NULL),
	             1, "%s", out);
	/* the runbook: restart the engine, then resume stage by stage */
	drill_engine_restart(&a);
	ms_sleep(50);
	drill_staged_resume(&h, "alpha", "engine restarted, ticket 103");
	trades_again(&a);
	drill_engine_stop(&a);
	drill_engine_stop(&b);
	/* the export's start is the last beat (trip time - the heartbeat's age) */
	drill_check_incident(
	    &h, "death", "--trips", "alpha:stale_heartbeat:heartbeat", "--fault-ns",
	    num(fault, sizeof(fault), t), "--detect-within-ms", "1800", "--basis",
	    "heartbeat", "--started-tol-ms", "5", "--resolved", "--stages",
	    "alpha:HALTED>REDUCE_ONLY>CAUTIOUS>ACTIVE", "--no-forced", NULL);
	down(&h);
}

/* ---- manual emergency stop, reconciliation, staged resume ----------------------- */

Test(drills, emergency_stop_and_staged_resume, .timeout = 60)
{
	struct bk_h h;
	struct drill_engine a, b;
	char fault[32], pa[64], pb[64];
	uint64_t t, fa, fb;
	long ms;

	up(&h, "destop", NULL);
	engines(&h, &a, &b, 8);
	ms_sleep(300);
	t = drill_wall_ns();
	drill_cli(&h, 0, "emergency-stop", "--reason", "drill: venue outage", NULL);
	ms = drill_wait_global(&a, BK_HALTED, 10);
	cr_assert_eq(ms, 0, "HALTED as soon as emergency-stop returns");
	/* both engines see it on their next step and stop trading */
	for (int i = 0; i < 200 && (atomic_load(&a.mode_seen) != BK_HALTED ||
	                            atomic_load(&b.mode_seen) != BK_HALTED);
	     i++)
		ms_sleep(5);
	cr_assert_eq(atomic_load(&a.mode_seen), BK_HALTED);
	cr_assert_eq(atomic_load(&b.mode_seen), BK_HALTED);
	ms_sleep(5); /* an order in flight at the flip is filled or not: then none */
	fa = atomic_load(&a.fills);
	fb = atomic_load(&b.fills);
	ms_sleep(300);
	cr_assert_eq(atomic_load(&a.fills), fa, "no fill while HALTED");
	cr_assert_eq(atomic_load(&b.fills), fb, "no fill while HALTED");
	/* the runbook: reconcile positions while nothing trades, then resume */
	snprintf(pa, sizeof(pa), "alpha=%.4f", drill_venue_pos(&a));
	snprintf(pb, sizeof(pb), "beta=%.4f", drill_venue_pos(&b));
	drill_cli(&h, 0, "reconcile", pa, pb, NULL);
	drill_staged_resume(&h, NULL, "venue back, positions reconciled");
	cr_assert_eq(bk_check(&a.c, a.slot), BK_ACTIVE);
	trades_again(&a);
	trades_again(&b);
	/* a second later, trading as usual, nothing else has tripped */
	ms_sleep(1000);
	cr_assert_eq(bk_check(&a.c, a.slot), BK_ACTIVE,
	             "trading after the reconciliation trips nothing");
	drill_engine_stop(&a);
	drill_engine_stop(&b);
	drill_check_incident(&h, "estop", "--trips", "global:emergency_stop",
	                     "--fault-ns", num(fault, sizeof(fault), t),
	                     "--detect-within-ms", "2000", "--resolved", "--stages",
	                     "global:HALTED>REDUCE_ONLY>CAUTIOUS>ACTIVE",
	                     "--reconciliations", "2", "--no-forced", NULL);
	down(&h);
}

/* ---- lost fills -> reconciliation break -> global halt -> reconcile -> resume --- */

/*
 * The reconciler posts each strategy every second, as of a point 20-150 ms
 * old (a drop copy's lag; breakerd keeps 256 (fills, position) points per
 * strategy, so a lag of more fills than that is "unknown" and never trips).
 * alpha's drop copy goes silent: the venue fills, alpha never hears of it.
 */
#define RECON_RULES "resume_requires_reconcile = true\n"

Test(drills, lost_fills_reconciliation_break, .timeout = 90)
{
	struct bk_h h;
	struct drill_engine a, b;
	struct drill_reconciler r = {0};
	char fault[32], rec[2048];
	uint64_t t;
	long ms;

	up(&h, "dlost", RECON_RULES);
	engines(&h, &a, &b, 10);
	r = (struct drill_reconciler){.h = &h,
	                              .e = {&a, &b},
	                              .n = 2,
	                              .period_ms = 1000,
	                              .lag_min = 20,
	                              .lag_max = 150};
	drill_reconciler_start(&r);
	for (int i = 0; i < 600 && atomic_load(&r.ok) < 4; i++)
		ms_sleep(10);
	cr_assert_geq(atomic_load(&r.ok), 4,
	              "reconciliations judged ok before the fault: %s", r.last_out);
	cr_assert_eq(bk_check(&a.c, a.slot), BK_ACTIVE,
	             "ok reconciliations trip nothing");
	drill_fault(&a, DF_LOST_FILLS, true);
	/* the break passes 1000 within a few fills; the next reconciliation
	 * (<= 1 s + lag) judges it and the rule halts everything */
	ms = drill_wait_global(&a, BK_HALTED, 1000 + 20 + SLACK_MS);
	atomic_store(&r.paused, true);
	pthread_mutex_lock(&r.lock); /* the round that tripped it has its answer */
	pthread_mutex_unlock(&r.lock);
	cr_assert_geq(ms, 0, "global HALTED by the reconciliation break: %s", r.last_out);
	t = atomic_load(&a.fault_wall_ns);
	cr_assert_neq(t, 0);
	cr_assert_geq(atomic_load(&r.brk), 1, "a verdict 'break': %s", r.last_out);
	fprintf(stderr, "drill lost_fills: %llu fills lost, global HALTED\n",
	        (unsigned long long)atomic_load(&a.lost));
	/* the runbook: fix the drop copy, book the missed fills, reconcile, and
	 * only then resume (resume_requires_reconcile: refused before) */
	drill_fault(&a, DF_LOST_FILLS, false);
	cr_assert_eq(drill_cli_out(&h, out, sizeof(out), "resume", "--reason-code",
	                           "reconciliation_break", "--reason", "too early", NULL),
	             1, "%s", out);
	atomic_store(&a.want_resync, true);
	for (int i = 0; i < 100 && atomic_load(&a.want_resync); i++)
		ms_sleep(5);
	ms_sleep(20);
	cr_assert_eq(drill_reconcile_now(&h, &a, 0, rec, sizeof(rec)), 0, "%s", rec);
	cr_assert(strstr(rec, ": ok"), "alpha reconciles after the resync: %s", rec);
	cr_assert_eq(drill_reconcile_now(&h, &b, 0, rec, sizeof(rec)), 0, "%s", rec);
	cr_assert(strstr(rec, ": ok"), "%s", rec);
	drill_staged_resume(&h, NULL, "drop copy fixed, missed fills booked, reconciled");
	atomic_store(&r.paused, false);
	trades_again(&a);
	trades_again(&b);
	ms_sleep(2200); /* two more rounds of reconciliations: all ok */
	cr_assert_eq(bk_check(&a.c, a.slot), BK_ACTIVE, "%s", r.last_out);
	drill_reconciler_stop(&r);
	drill_engine_stop(&a);
	drill_engine_stop(&b);
	fprintf(stderr,
	        "drill lost_fills: reconciliations posted %llu: ok %llu, unknown %llu, "
	        "break %llu, failed %llu\n",
	        (unsigned long long)r.posted, (unsigned long long)r.ok,
	        (unsigned long long)r.unknown, (unsigned long long)r.brk,
	        (unsigned long long)r.failed);
	cr_assert_eq(atomic_load(&r.failed), 0, "%s", r.last_out);
	/* tick basis: the trip is the verdict on the next reconciliation after
	 * the breach: within the reconciler's period + lag (stated tolerance) */
	drill_check_incident(
	    &h, "lost", "--trips", "global:reconciliation_break:reconciliation",
	    "--fault-ns", num(fault, sizeof(fault), t), "--detect-within-ms", "2600",
	    "--basis", "tick", "--started-tol-ms", "2600", "--resolved", "--stages",
	    "global:HALTED>REDUCE_ONLY>CAUTIOUS>ACTIVE", "--no-forced", NULL);
	down(&h);
}

/* ---- balance leak (invariant) -> global halt -> rebase -> resume ---------------- */

Test(drills, balance_leak, .timeout = 60)
{
	struct bk_h h;
	struct drill_engine a, b;
	char fault[32];
	uint64_t t;
	long ms;

	up(&h, "dleak", NULL);
	engines(&h, &a, &b, 20);
	a.leak_amount = 75.00; /* an unexplained debit: a fee nobody booked */
	ms_sleep(500);
	cr_assert_eq(bk_check(&a.c, BK_GLOBAL_ONLY), BK_ACTIVE,
	             "fills with their cash and fees trip nothing");
	drill_fault(&a, DF_LEAK, true);
	ms = drill_wait_global(&a, BK_HALTED, SLACK_MS);
	cr_assert_geq(ms, 0, "global HALTED by the balance invariant");
	t = atomic_load(&a.fault_wall_ns);
	fprintf(stderr, "drill balance_leak: global HALTED %ld ms after the debit\n", ms);
	/* still unexplained: refused */
	cr_assert_eq(
	    drill_cli_out(&h, out, sizeof(out), "resume", "--reason", "too early", NULL),
	    1, "%s", out);
	cr_assert(strstr(out, "ERR_CONDITION_HOLDS"), "%s", out);
	/* the runbook: the 75.00 is found and booked; the operator rebases */
	drill_cli(&h, 0, "rules", "rebase", "alpha", "invariant", "--reason",
	          "75.00 fee found and booked, INC-104", NULL);
	drill_staged_resume(&h, NULL, "balance explained, rebased");
	trades_again(&a);
	ms_sleep(300);
	cr_assert_eq(bk_check(&a.c, BK_GLOBAL_ONLY), BK_ACTIVE, "the rebased rule holds");
	drill_engine_stop(&a);
	drill_engine_stop(&b);
	drill_check_incident(
	    &h, "leak", "--trips", "global:invariant_violation:invariant", "--fault-ns",
	    num(fault, sizeof(fault), t), "--detect-within-ms", "1000", "--basis", "tick",
	    "--started-tol-ms", "1000", "--resolved", "--stages",
	    "global:HALTED>REDUCE_ONLY>CAUTIOUS>ACTIVE", "--no-forced", NULL);
	down(&h);
}

/* ---- the false-trip soak -------------------------------------------------------- */

static uint64_t total_fills(struct drill_engine *e, int n)
{
	uint64_t f = 0;

	for (int i = 0; i < n; i++)
		f += atomic_load(&e[i].fills);
	return f;
}

static void write_config(struct bk_h *h, const char *rules)
{
	char ini[2048];

	snprintf(ini, sizeof(ini),
	         "[strategies]\nnames = alpha, beta, gamma\n[rules]\n"
	         "heartbeat.max = 1000\nreject_rate.window_ms = 1000\n"
	         "drawdown.max = 5000\n%s",
	         rules);
	bk_h_write_config(h, h->config, ini);
}

/* A trip in the soak: stop the threads (they point into this test's stack),
 * then fail with the audit log's TRIP records, which say what tripped. */
static void soak_failed(struct bk_h *h, struct drill_engine *e,
                        struct drill_reconciler *r, const char *name, uint64_t fills)
{
	static char audit[1 << 16], trips[8192];
	size_t used = 0;

	drill_reconciler_stop(r);
	for (int i = 0; i < 3; i++)
		drill_engine_stop(&e[i]);
	drill_cli_out(h, audit, sizeof(audit), "audit", NULL);
	trips[0] = '\0';
	for (char *l = strtok(audit, "\n"); l && used < sizeof(trips) - 512;
	     l = strtok(NULL, "\n"))
		if (strstr(l, " TRIP "))
			used += (size_t)snprintf(trips + used, sizeof(trips) - used,
			                         "%.500s\n", l);
	cr_assert_fail("%s HALTED during the soak at %llu fills; reconciler's last "
	               "answer: %s\nTRIP records:\n%s",
	               name, (unsigned long long)fills, r->last_out, trips);
}

/*
 * Normal trading, everything an ordinary day does to the breaker, and not a
 * single trip: three engines trading with fills, a reconciler posting every
 * second with a lag, opening balances stated at start and at a "new day",
 * an engine restart each, two breakerd restarts, and SIGHUP reloads (one
 * switching the reconciliation rule off, one back on). BK_DRILL_SOAK_FILLS
 * (default 100000) fills at least.
 */
Test(drills, false_trip_soak, .timeout = 1800)
{
	const char *env = getenv("BK_DRILL_SOAK_FILLS");
	uint64_t target = env ? strtoull(env, NULL, 10) : 100000, f0;
	struct drill_engine e[3];
	struct drill_reconciler r = {0};
	static const char *const names[] = {"alpha", "beta", "gamma"};
	struct bk_h h;
	int phase = 0;

	bk_h_init(&h, "dsoak", NULL);
	write_config(&h, "resume_requires_reconcile = true\n");
	bk_h_start(&h);
	for (int i = 0; i < 3; i++)
		drill_engine_start(&e[i], &h, names[i], 100 + (uint64_t)i);
	for (int i = 0; i < 3; i++)
		drill_engine_go(&e[i]);
	r = (struct drill_reconciler){.h = &h,
	                              .e = {&e[0], &e[1], &e[2]},
	                              .n = 3,
	                              .period_ms = 1000,
	                              .lag_min = 20,
	                              .lag_max = 150};
	drill_reconciler_start(&r);
	/* each event at a fraction of the target */
	while ((f0 = total_fills(e, 3)) < target) {
		int next = (int)(f0 * 10 / target); /* 0..9 */

		for (; phase < next; phase++) {
			switch (phase) {
			case 1: /* breakerd restart (clean) */
				cr_assert_eq(bk_h_stop(&h), 0);
				bk_h_start(&h);
				break;
			case 2: /* an engine restart each */
				pthread_mutex_lock(&r.lock);
				for (int i = 0; i < 3; i++)
					drill_engine_restart(&e[i]);
				pthread_mutex_unlock(&r.lock);
				break;
			case 3: /* SIGHUP: reconciliation off, a rule limit changed */
				write_config(&h, "resume_requires_reconcile = true\n"
				                 "reconciliation.enabled = false\n"
				                 "reject_rate.max = 0.6\n");
				kill(h.pid, SIGHUP);
				break;
			case 5: /* SIGHUP: back on (this once halted at once) */
				write_config(&h, "resume_requires_reconcile = true\n");
				kill(h.pid, SIGHUP);
				break;
			case 6: /* a new trading day: every engine states its balance */
				for (int i = 0; i < 3; i++)
					atomic_store(&e[i].want_open, true);
				break;
			case 7: /* breakerd killed and restarted (a crash) */
				bk_h_kill9(&h);
				bk_h_start(&h);
				break;
			}
		}
		for (int i = 0; i < 3; i++)
			if (bk_check(&e[i].c, e[i].slot) == BK_HALTED)
				soak_failed(&h, e, &r, names[i], f0);
		ms_sleep(50);
	}
	drill_reconciler_stop(&r);
	for (int i = 0; i < 3; i++)
		drill_engine_stop(&e[i]);
	fprintf(stderr,
	        "drill soak: %llu fills (%llu + %llu + %llu), reconciliations posted "
	        "%llu: ok %llu, unknown %llu, break %llu, failed %llu (breakerd down)\n",
	        (unsigned long long)total_fills(e, 3), (unsigned long long)e[0].fills,
	        (unsigned long long)e[1].fills, (unsigned long long)e[2].fills,
	        (unsigned long long)r.posted, (unsigned long long)r.ok,
	        (unsigned long long)r.unknown, (unsigned long long)r.brk,
	        (unsigned long long)r.failed);
	cr_assert_eq(atomic_load(&r.brk), 0, "no break verdict: %s", r.last_out);
	/* judged, not waved through: most reconciliations had a verdict */
	cr_assert_geq(atomic_load(&r.ok) * 10, atomic_load(&r.posted) * 7,
	              "at least 70%% of reconciliations judged ok: %s", r.last_out);
	drill_check_incident(&h, "soak", "--trips", "", NULL);
	down(&h);
}
