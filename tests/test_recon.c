/*
 * End to end: reconciliation as of a point, judged once;
 * stale, withdrawn and replayed reconciliations never trip; reconcile before
 * resume; rule baselines that survive a restart; CONFIG records on SIGHUP.
 * A real breakerd, the real CLI, an engine writing telemetry through the
 * client header.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_mode.h"
#include "bk_rpc.h"
#include "bk_tel.h"

#define TICK_US 1000
/* only the rules under test: no heartbeat dead-man, no balance invariant */
#define BASE                                                                             \
	"tick_period_us = 1000\n[strategies]\nnames = alpha, beta\n"                     \
	"[rules]\nheartbeat.enabled = false\ninvariant.enabled = false\n"

static char out[1 << 17], report[4096];

static void rig_up(struct bk_rig *r, const char *tag, const char *extra)
{
	char ini[2048];

	snprintf(ini, sizeof(ini), "%s%s", BASE, extra ? extra : "");
	bk_rig_up(r, tag, ini);
}

/* Restart breakerd on the same instance (state dir, log, telemetry kept). */
static void restart(struct bk_rig *r)
{
	bk_client_detach(&r->c);
	cr_assert_eq(bk_h_stop(&r->h), 0);
	bk_h_start(&r->h);
	bk_h_attach(&r->h, &r->c);
}

/* Wait up to max_ticks daemon ticks for slot's mode to reach want. */
static int ticks_until(struct bk_rig *r, int slot, enum bk_mode want, int max_ticks)
{
	return bk_rig_ticks_until(r, slot, want, max_ticks, TICK_US);
}

/* Let the daemon run n ticks' worth of time (lower bound: ticks may overrun). */
static void run_ticks(int n)
{
	usleep((useconds_t)n * TICK_US);
}

/* One fill that moves alpha's net position to pos (no cash: the invariant holds). */
static void fill_to(struct bk_rig *r, int slot, double pos)
{
	bk_report_fill(&r->t, slot, 0, 0, 0, pos);
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* How many TRIP records by the reconciliation rule the log holds. */
static int recon_trips(struct bk_rig *r)
{
	char line[4096];
	int n = 0;

	cr_assert_eq(bk_h_cli(&r->h, out, sizeof(out), "audit", "--json", NULL), 0);
	for (const char *l = out; *l;) {
		size_t len = strcspn(l, "\n");

		snprintf(line, sizeof(line), "%.*s", (int)len, l);
		n += strstr(line, "\"kind\":\"TRIP\"") &&
		     strstr(line, "\"rule\":\"reconciliation\"");
		l += len + (l[len] ? 1 : 0);
	}
	return n;
}

/* ---- as of a point ------------------------------------------------------ */

Test(recon, fills_after_the_post_do_not_trip)
{
	struct bk_rig r;

	rig_up(&r, "rafter", NULL);
	fill_to(&r, r.alpha, 100); /* fill 1 */
	run_ticks(20);
	fill_to(&r, r.alpha, 5100); /* fill 2, before the reconciler's post lands */
	run_ticks(20);
	/* the venue says 100 as of fill 1: true, and the engine has moved on */
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=100",
	                      "--as-of-fills", "1", NULL),
	             0, "%s", out);
	snprintf(report, sizeof(report), "%s", out);
	for (int i = 0; i < 5; i++) { /* and more fills after the post */
		fill_to(&r, r.alpha, 9100 + i * 1000);
		run_ticks(20);
	}
	cr_assert_eq(bk_check(&r.c, -1), BK_ACTIVE, "no false global halt");
	cr_assert_eq(recon_trips(&r), 0);
	cr_assert(strstr(report, "engine 100, reconciled 100, break 0, limit 1000: ok"),
	          "the break report: %s", report);
	bk_rig_down(&r);
}

/* The drill that gave five false SEV-1 halts: trading on while a lagging
 * reconciler posts; every posted position is right as of its point. */
Test(recon, a_lagging_reconciler_never_false_trips)
{
	struct bk_rig r;
	int posts = 0, ok = 0, unknown = 0, brk = 0;

	rig_up(&r, "rsoak", NULL);
	for (long f = 1; f <= 600; f++) {
		fill_to(&r, r.alpha, (double)f * 700); /* each fill: +700 */
		usleep(2000);
		if (f % 50 == 0 && f > 100) { /* 100 fills behind */
			Breaker__Reply *rep = bk_h_reconcile(
			    &r.h, "alpha", (double)(f - 100) * 700, f - 100, 0);
			const char *v = rep->info && rep->info->n_reconciliations
			                    ? rep->info->reconciliations[0]->verdict
			                    : "";

			cr_assert_eq(rep->status, BREAKER__STATUS__OK);
			posts++;
			ok += strcmp(v, "ok") == 0;
			unknown += strcmp(v, "unknown") == 0;
			brk += strcmp(v, "break") == 0;
			breaker__reply__free_unpacked(rep, NULL);
		}
	}
	run_ticks(50);
	cr_assert_eq(bk_check(&r.c, -1), BK_ACTIVE, "no false global halt");
	cr_assert_eq(recon_trips(&r), 0);
	cr_assert_eq(brk, 0, "false breaks");
	cr_assert_eq(ok + unknown, posts, "every reply has its verdict");
	fprintf(stderr, "recon: lagging reconciler: %d posts, %d ok, %d unknown\n", posts,
	        ok, unknown);
	cr_assert_gt(ok, 0, "judged: %d ok, %d unknown", ok, unknown);
	bk_rig_down(&r);
}

Test(recon, a_real_break_at_the_as_of_point_trips_exactly_once)
{
	struct bk_rig r;

	rig_up(&r, "ronce", NULL);
	fill_to(&r, r.alpha, 5000); /* fill 1 */
	fill_to(&r, r.alpha, 7000); /* fill 2 */
	run_ticks(20);
	/* the venue had 2000 after fill 2: a $5000 break, lost fills */
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=2000",
	                      "--as-of-fills", "2", NULL),
	             0, "%s", out);
	snprintf(report, sizeof(report), "%s", out);
	cr_assert_geq(ticks_until(&r, -1, BK_HALTED, 3000), 0, "SEV-1: global HALTED");
	run_ticks(200); /* hundreds of ticks with the break standing */
	/* the engine's later fills come and go: the verdict was about fill 2 */
	fill_to(&r, r.alpha, 2000);
	run_ticks(30);
	fill_to(&r, r.alpha, 9000);
	run_ticks(30);
	cr_assert_eq(recon_trips(&r), 1, "one trip per posted reconciliation:\n%s", out);
	cr_assert(
	    strstr(report, "engine 7000, reconciled 2000, break 5000, limit 1000: break"),
	    "%s", report);
	cr_assert(strstr(out, "\"verdict\":\"break\""), "audited verdict: %s", out);
	/* resume refused while the verdict stands */
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "resume", "--reason", "x", NULL),
	             1);
	/* a reconciliation that cannot be judged does not clear it (fail safe) */
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=9000",
	                      "--as-of-fills", "99", NULL),
	             0, "%s", out);
	cr_assert(strstr(out, "the earlier break stands"), "%s", out);
	run_ticks(30);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "resume", "--reason", "x", NULL),
	             1);
	/* a new reconciliation judged ok clears it */
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=7000",
	                      "--as-of-fills", "2", NULL),
	             0, "%s", out);
	run_ticks(20);
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--reason",
	                          "reconciled", NULL),
	             0, "%s", out);
	cr_assert_eq(recon_trips(&r), 1);
	bk_rig_down(&r);
}

Test(recon, as_of_time_and_unknown_points)
{
	struct bk_rig r;
	Breaker__Reply *rep;
	uint64_t t1;

	rig_up(&r, "rtime", NULL);
	run_ticks(50);
	fill_to(&r, r.alpha, 100);
	run_ticks(50);
	t1 = wall_ns(); /* the engine shows 100 here */
	run_ticks(50);
	fill_to(&r, r.alpha, 8100);
	run_ticks(50);
	rep = bk_h_reconcile(&r.h, "alpha", 100, -1, t1);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK, "%s",
	             rep->error ? rep->error : "");
	cr_assert(rep->info && rep->info->n_reconciliations == 1);
	cr_assert_str_eq(rep->info->reconciliations[0]->verdict, "ok");
	cr_assert_float_eq(rep->info->reconciliations[0]->engine_position, 100, 1e-9);
	breaker__reply__free_unpacked(rep, NULL);
	/* before the daemon's history began: unknown, and the reply says why */
	rep = bk_h_reconcile(&r.h, "alpha", 0, -1, t1 - 3600ull * 1000000000ull);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK);
	cr_assert_str_eq(rep->info->reconciliations[0]->verdict, "unknown");
	cr_assert(rep->error && strstr(rep->error, "older than the history"), "%s",
	          rep->error ? rep->error : "(none)");
	breaker__reply__free_unpacked(rep, NULL);
	/* a fill count the engine has not reached */
	rep = bk_h_reconcile(&r.h, "alpha", 0, 99, 0);
	cr_assert_str_eq(rep->info->reconciliations[0]->verdict, "unknown");
	cr_assert(rep->error && strstr(rep->error, "not yet 99"), "%s", rep->error);
	breaker__reply__free_unpacked(rep, NULL);
	/* both points at once, or a time in the future: refused, nothing changes */
	rep = bk_h_reconcile(&r.h, "alpha", 0, 1, t1);
	cr_assert_eq(rep->status, BREAKER__STATUS__ERR_BAD_REQUEST);
	breaker__reply__free_unpacked(rep, NULL);
	rep = bk_h_reconcile(&r.h, "alpha", 0, -1, wall_ns() + 60ull * 1000000000ull);
	cr_assert_eq(rep->status, BREAKER__STATUS__ERR_BAD_REQUEST);
	breaker__reply__free_unpacked(rep, NULL);
	run_ticks(50);
	cr_assert_eq(bk_check(&r.c, -1), BK_ACTIVE, "unknown never trips");
	bk_rig_down(&r);
}

Test(recon, a_stale_snapshot_never_trips)
{
	struct bk_rig r;
	Breaker__Reply *rep;
	uint64_t t0;

	rig_up(&r, "rstale", "reconcile_max_age_ms = 200\n");
	fill_to(&r, r.alpha, 5000);
	run_ticks(20);
	t0 = wall_ns();
	usleep(400000); /* the reconciler's view is 400 ms old when it lands */
	rep = bk_h_reconcile(&r.h, "alpha", 0, -1, t0);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK);
	cr_assert_str_eq(rep->info->reconciliations[0]->verdict, "unknown");
	cr_assert(rep->error && strstr(rep->error, "reconcile_max_age_ms"), "%s",
	          rep->error ? rep->error : "(none)");
	breaker__reply__free_unpacked(rep, NULL);
	run_ticks(100);
	cr_assert_eq(bk_check(&r.c, -1), BK_ACTIVE, "a stale view never trips");
	/* a current "ok" goes stale by itself; status says so */
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=5000", NULL),
	             0);
	usleep(400000);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "status", NULL), 0);
	cr_assert(strstr(out, "strategy alpha: engine 5000, reconciled 5000, break 0, "
	                      "limit 1000: stale"),
	          "%s", out);
	bk_rig_down(&r);
}

Test(recon, a_restart_does_not_trip_from_an_old_snapshot)
{
	struct bk_rig r;

	rig_up(&r, "rboot", NULL);
	fill_to(&r, r.alpha, 5000);
	run_ticks(20);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=5000",
	                      "--as-of-fills", "1", NULL),
	             0, "%s", out);
	run_ticks(20);
	cr_assert_eq(bk_h_stop(&r.h), 0);
	bk_client_detach(&r.c);
	/* the engine trades on while breakerd is down */
	fill_to(&r, r.alpha, 20000);
	fill_to(&r, r.alpha, 35000);
	bk_h_start(&r.h);
	bk_h_attach(&r.h, &r.c);
	run_ticks(200);
	cr_assert_eq(bk_check(&r.c, -1), BK_ACTIVE, "no trip at boot from old values");
	cr_assert_eq(recon_trips(&r), 0);
	/* the reconciliation is still shown, as it was judged */
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "status", NULL), 0);
	cr_assert(strstr(out, "strategy alpha: engine 5000, reconciled 5000, break 0, "
	                      "limit 1000: ok"),
	          "%s", out);
	bk_rig_down(&r);
}

Test(recon, a_break_survives_a_restart_without_tripping_again)
{
	struct bk_rig r;

	rig_up(&r, "rbboot", NULL);
	fill_to(&r, r.alpha, 5000);
	run_ticks(20);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=0", NULL), 0);
	cr_assert_geq(ticks_until(&r, -1, BK_HALTED, 3000), 0);
	run_ticks(20);
	restart(&r);
	run_ticks(200);
	cr_assert_eq(bk_check(&r.c, -1), BK_HALTED, "the trip stays");
	cr_assert_eq(recon_trips(&r), 1, "no second trip from the replayed verdict");
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "resume", "--reason", "x", NULL), 1,
	             "the verdict still holds the latch");
	bk_rig_down(&r);
}

Test(recon, sighup_reenabling_the_rule_does_not_trip)
{
	struct bk_rig r;

	rig_up(&r, "rhup", "reconciliation.enabled = false\n");
	fill_to(&r, r.alpha, 5000);
	run_ticks(20);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=0", NULL), 0);
	run_ticks(50);
	cr_assert_eq(bk_check(&r.c, -1), BK_ACTIVE, "rule off");
	bk_h_write_config(&r.h, r.h.config, BASE);
	kill(r.h.pid, SIGHUP);
	run_ticks(300);
	cr_assert_eq(bk_check(&r.c, -1), BK_ACTIVE,
	             "the old snapshot is not judged again");
	cr_assert_eq(recon_trips(&r), 0);
	/* the rule is armed: a new break trips */
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=0", NULL), 0);
	cr_assert_geq(ticks_until(&r, -1, BK_HALTED, 3000), 0);
	bk_rig_down(&r);
}

Test(recon, withdraw_is_audited_and_ends_the_verdict)
{
	struct bk_rig r;

	rig_up(&r, "rwd", NULL);
	fill_to(&r, r.alpha, 5000);
	run_ticks(20);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=0", NULL), 0);
	cr_assert_geq(ticks_until(&r, -1, BK_HALTED, 3000), 0);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "resume", "--reason", "x", NULL),
	             1);
	/* the reconciler's file was wrong: withdraw it */
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "reconcile", "--withdraw",
	                          "alpha", NULL),
	             0, "%s", out);
	cr_assert(strstr(out, "withdrew 1 reconciliation"), "%s", out);
	cr_assert(strstr(out, "alpha: reconciliation withdrawn"), "%s", out);
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--reason",
	                          "bad reconciler file", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0);
	cr_assert(strstr(out, "\"reconciliation withdrawn\""), "audited: %s", out);
	/* bad withdrawals change nothing */
	cr_assert_eq(
	    bk_h_cli(&r.h, out, sizeof(out), "reconcile", "--withdraw", "nosuch", NULL),
	    1);
	cr_assert_eq(
	    bk_h_cli(&r.h, out, sizeof(out), "reconcile", "--withdraw", "alpha=1", NULL),
	    2);
	bk_rig_down(&r);
}

Test(recon, resume_requires_a_reconciliation_newer_than_the_trip)
{
	struct bk_rig r;

	rig_up(&r, "rreq", "resume_requires_reconcile = true\n");
	fill_to(&r, r.alpha, 5000);
	run_ticks(20);
	/* reconciled before the trip: not enough */
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=5000", NULL),
	             0);
	run_ticks(5);
	cr_assert_eq(
	    bk_h_cli(&r.h, out, sizeof(out), "emergency-stop", "--reason", "drill", NULL),
	    0);
	cr_assert_eq(
	    bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--reason", "ok now", NULL), 1,
	    "%s", out);
	cr_assert(strstr(out, "ERR_RECONCILE_REQUIRED") ||
	              strstr(out, "resume_requires_reconcile"),
	          "%s", out);
	cr_assert(strstr(out, "alpha"), "names the strategy: %s", out);
	cr_assert_eq(bk_check(&r.c, -1), BK_HALTED);
	/* a reconciliation judged ok after the trip: the resume goes */
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "reconcile", "alpha=5000",
	                      "--as-of-fills", "1", NULL),
	             0);
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--reason",
	                          "reconciled", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_check(&r.c, -1), BK_REDUCE_ONLY);
	bk_rig_down(&r);
}

/* ---- durable rule state, audited rule changes ------------------------- */

Test(recon, a_restart_keeps_the_drawdown_peak)
{
	struct bk_rig r;

	rig_up(&r, "rpeak", "drawdown.max = 1000\n");
	bk_report_marks(&r.t, r.alpha, 0, 0, 5000); /* the peak */
	run_ticks(50);
	bk_report_marks(&r.t, r.alpha, 0, 0, 3500); /* 1500 down */
	cr_assert_geq(ticks_until(&r, r.alpha, BK_HALTED, 3000), 0);
	run_ticks(50); /* the baselines' record becomes durable */
	restart(&r);
	run_ticks(100);
	cr_assert_eq(bk_check(&r.c, r.alpha), BK_HALTED);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "status", "--json", NULL), 0);
	cr_assert(strstr(out, "\"rule\":\"drawdown\",\"strategy\":\"alpha\""),
	          "drawdown still shown after restart: %s", out);
	cr_assert(strstr(out, "\"violated\":true"), "still VIOLATED: %s", out);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "resume", "--strategy", "alpha",
	                      "--reason", "x", NULL),
	             1, "the drawdown still fails: no resume");
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0);
	cr_assert(strstr(out, "RULE_STATE") && strstr(out, "peak-pnl=5000"), "%s", out);
	bk_rig_down(&r);
}

Test(recon, a_restart_keeps_the_balance_baseline)
{
	struct bk_rig r;

	bk_rig_up(&r, "rbase",
	          "tick_period_us = 1000\n[strategies]\nnames = alpha, beta\n"
	          "[rules]\nheartbeat.enabled = false\n");
	bk_report_balance(&r.t, r.alpha, 100000);
	bk_report_heartbeat(&r.t, r.alpha, bk_now_mono_ns());
	run_ticks(20);
	bk_report_fill(&r.t, r.alpha, -1000, 2, 98998, 10); /* explained */
	run_ticks(50);
	cr_assert_eq(bk_check(&r.c, -1), BK_ACTIVE);
	cr_assert_eq(bk_h_stop(&r.h), 0);
	bk_client_detach(&r.c);
	/* while breakerd is down, 1000 appears from nowhere */
	bk_report_fill(&r.t, r.alpha, 0, 0, 99998, 10);
	bk_h_start(&r.h);
	bk_h_attach(&r.h, &r.c);
	cr_assert_geq(ticks_until(&r, -1, BK_HALTED, 3000), 0,
	              "the restored baseline sees the unexplained 1000");
	bk_rig_down(&r);
}

Test(recon, sighup_writes_a_config_record_with_the_diff)
{
	struct bk_rig r;
	FILE *f;

	rig_up(&r, "rcfg", "reject_rate.max = 0.2\n");
	bk_h_write_config(&r.h, r.h.config,
	                  BASE "reject_rate.max = 0.3\nexposure.max = 100\n");
	kill(r.h.pid, SIGHUP);
	for (int i = 0; i < 200; i++) {
		cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0);
		if (strstr(out, "CONFIG"))
			break;
		usleep(10000);
	}
	cr_assert(strstr(out, "CONFIG"), "a CONFIG record: %s", out);
	cr_assert(strstr(out, "reject_rate.max: 0.2 -> 0.3"), "the diff: %s", out);
	cr_assert(strstr(out, "exposure.enabled: false -> true"), "%s", out);
	cr_assert(strstr(out, "exposure.max: 0 -> 100"), "%s", out);
	cr_assert(strstr(out, "rules-hash=\""), "%s", out);
	{ /* the hash status reports is the one the record names */
		char hash[32] = "", *at = strstr(out, "rules-hash=\"") + 12;

		snprintf(hash, sizeof(hash), "\"rules_hash\":\"%.16s\"", at);
		cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "status", "--json", NULL),
		             0);
		cr_assert(strstr(out, hash), "%s in %s", hash, out);
		cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0);
	}
	cr_assert(strstr(out, "SIGHUP from pid"), "the sender: %s", out);
	/* a broken file: refused, and audited too (the CLI reads the same file:
	 * put the good one back before asking) */
	f = fopen(r.h.config, "a");
	fputs("exposure.max = lots\n", f);
	fclose(f);
	kill(r.h.pid, SIGHUP);
	for (int i = 0; i < 200; i++) {
		bk_h_slurp(r.h.log, out, sizeof(out));
		if (strstr(out, "running rules stay"))
			break;
		usleep(10000);
	}
	bk_h_write_config(&r.h, r.h.config,
	                  BASE "reject_rate.max = 0.3\nexposure.max = 100\n");
	usleep(50000);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0);
	cr_assert(strstr(out, "reload refused"), "%s", out);
	cr_assert_eq(bk_h_count(out, "CONFIG"), 2, "%s", out);
	/* and in the incident export's timeline */
	cr_assert_eq(
	    bk_h_cli(&r.h, out, sizeof(out), "incident", "export", "--since", "1h", NULL),
	    0, "%s", out);
	cr_assert(strstr(out, "| CONFIG |") && strstr(out, "max: 0.2 -\\> 0.3"), "%s",
	          out);
	bk_rig_down(&r);
}

/* The two [rules]-wide keys: checked at load, only in [rules]. */
Test(recon, reconcile_config_keys_are_checked)
{
	static const struct {
		const char *ini, *want;
	} bad[] = {
	    {"[rules]\nreconcile_max_age_ms = -1\n", "reconcile_max_age_ms"},
	    {"[rules]\nreconcile_max_age_ms = 86400001\n", "reconcile_max_age_ms"},
	    {"[rules]\nreconcile_max_age_ms = 10s\n", "reconcile_max_age_ms"},
	    {"[rules]\nresume_requires_reconcile = yes\n", "true or false"},
	    {"[rules:alpha]\nresume_requires_reconcile = true\n", "unknown rule key"},
	    {"[rules:alpha]\nreconcile_max_age_ms = 5\n", "unknown rule key"},
	};
	char path[] = "/tmp/bk-recon-cfg-XXXXXX", err[512];
	struct bk_config c;
	int fd;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_geq(fd = mkstemp(path), 0);
		cr_assert_eq(write(fd, bad[i].ini, strlen(bad[i].ini)),
		             (ssize_t)strlen(bad[i].ini));
		close(fd);
		bk_config_defaults(&c, "t");
		cr_assert_lt(bk_config_load(&c, path, err, sizeof(err)), 0,
		             "accepted: %s", bad[i].ini);
		cr_assert(strstr(err, bad[i].want) && strstr(err, "line "), "%s: %s",
		          bad[i].ini, err);
		unlink(path);
		strcpy(path, "/tmp/bk-recon-cfg-XXXXXX");
	}
	cr_assert_geq(fd = mkstemp(path), 0);
	dprintf(fd,
	        "[rules]\nreconcile_max_age_ms = 0\nresume_requires_reconcile = true\n");
	close(fd);
	bk_config_defaults(&c, "t");
	cr_assert_eq(bk_config_load(&c, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.rules.recon_max_age_ms, 0u);
	cr_assert(c.rules.resume_requires_reconcile);
	unlink(path);
}

/* A reload is seen live (watch) and counted (/metrics). */
Test(recon, sighup_shows_in_watch_and_metrics)
{
	struct bk_rig r;
	char extra[256], cmd[1024], wfile[256];
	const char *cli = getenv("BREAKER_CLI"), *body = NULL;
	int port = 40000 + (int)(getpid() % 20000);
	bool seen = false;

	snprintf(extra, sizeof(extra), "[metrics]\nlisten = 127.0.0.1:%d\n", port);
	rig_up(&r, "rhupw", extra);
	snprintf(wfile, sizeof(wfile), "%s/watch.out", r.h.dir);
	snprintf(cmd, sizeof(cmd),
	         "'%s' --config '%s' watch --count 1 --timeout-ms 10000 > '%s' 2>&1 &",
	         cli ? cli : "breaker", r.h.config, wfile);
	cr_assert_eq(system(cmd), 0);
	/* PUB drops events until the watcher's pipe is attached: signal until seen */
	for (int i = 0; i < 50 && !seen; i++) {
		kill(r.h.pid, SIGHUP);
		usleep(100000);
		seen = bk_h_slurp(wfile, out, sizeof(out)) > 0 && strstr(out, "CONFIG");
	}
	cr_assert(seen, "watch shows the reload: %s", out);
	cr_assert(strstr(out, "no change"), "its diff: %s", out);
	for (int i = 0; i < 300; i++) {
		if (bk_h_http_get(port, "/metrics", out, sizeof(out), &body) == 200 &&
		    strstr(body, "breaker_config_reloads_total{result=\"applied\"}") &&
		    !strstr(body, "breaker_config_reloads_total{result=\"applied\"} 0\n"))
			break;
		body = NULL;
		usleep(10000);
	}
	cr_assert(body, "/metrics counts the reloads: %s", out);
	bk_rig_down(&r);
}
