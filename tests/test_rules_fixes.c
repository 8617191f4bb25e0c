/*
 * Rule fixes end to end (forced resumes, the balance base, rate-rule resumes,
 * drawdown units, --force): a test engine writes telemetry
 * through the client header into a real breakerd; operators use the real
 * CLI. Each test reproduces what an operator saw, then demands what they
 * should have seen.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bk_audit.h"
#include "bk_harness.h"
#include "bk_mode.h"
#include "bk_tel.h"

static char out[262144];

/* tick in µs (0: the default, 100 µs); extra INI lines after [rules] */
static void rig_up(struct bk_rig *r, const char *tag, unsigned tick_us, const char *extra)
{
	char ini[4096];

	snprintf(ini, sizeof(ini), "%s%u\n[strategies]\nnames = alpha, beta\n[rules]\n%s",
	         tick_us ? "tick_period_us = " : "# default tick ", tick_us,
	         extra ? extra : "");
	bk_rig_up(r, tag, ini);
}

/* Holds want for the whole of ms (no trip in that time). */
static bool mode_stays(struct bk_rig *r, int slot, enum bk_mode want, unsigned ms)
{
	uint64_t end = bk_h_mono_ms() + ms;

	do {
		if (bk_check(&r->c, slot) != want)
			return false;
		usleep(500);
	} while (bk_h_mono_ms() < end);
	return true;
}

static void beat(struct bk_rig *r, int slot)
{
	bk_report_heartbeat(&r->t, slot, bk_now_mono_ns());
}

/* Retry a CLI command until it exits 0 (a rule's view settling), up to ms. */
static int cli_until_ok(struct bk_rig *r, unsigned ms, const char *a1, const char *a2,
                        const char *a3, const char *a4, const char *a5, const char *a6,
                        const char *a7, const char *a8)
{
	uint64_t end = bk_h_mono_ms() + ms;
	int rv;

	do {
		rv = bk_h_cli_all(&r->h, out, sizeof(out), a1, a2, a3, a4, a5, a6, a7, a8,
		                  NULL);
		if (rv == 0)
			return 0;
		usleep(20000);
	} while (bk_h_mono_ms() < end);
	return rv;
}

/* `breaker CMD` (status, audit) until its output shows needle, up to ms. */
static bool shows_within(struct bk_rig *r, const char *cmd, const char *needle,
                         unsigned ms)
{
	uint64_t end = bk_h_mono_ms() + ms;

	do {
		if (bk_h_cli(&r->h, out, sizeof(out), cmd, NULL) == 0 &&
		    strstr(out, needle))
			return true;
		usleep(10000);
	} while (bk_h_mono_ms() < end);
	return false;
}

/* ---- a forced resume never makes a rule blind -------------------------- */

Test(rules_fixes, forced_resume_keeps_the_balance_invariant_armed)
{
	struct bk_rig r;

	/* only worsening re-trips here: the grace has its own test */
	rig_up(&r, "rf-inv", 1000, "invariant.rearm_ms = 0\nheartbeat.enabled = false\n");
	bk_report_opening_balance(&r.t, r.alpha, 100000);
	beat(&r, r.alpha);
	bk_report_fill(&r.t, r.alpha, -1000, 2, 98998, 1000);
	cr_assert(mode_stays(&r, -1, BK_ACTIVE, 50), "a fill explains the balance");
	bk_report_fill(&r.t, r.alpha, 0, 0, 98998 - 75, 1000); /* 75 gone */
	cr_assert(bk_rig_mode_within(&r, -1, BK_HALTED, 2000), "the leak halts global");
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--to", "active",
	                          "--force", "--reason", "investigating, keep trading",
	                          NULL),
	             0, "%s", out);
	cr_assert(mode_stays(&r, -1, BK_ACTIVE, 100), "forced: active while as bad");
	/* the forced resume's record says what it did to the rule */
	cr_assert(bk_rig_mode_within(&r, -1, BK_ACTIVE, 10));
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0);
	cr_assert(strstr(out, "invariant for alpha stays armed"), "%s", out);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "status", NULL), 0);
	cr_assert(strstr(out, "VIOLATED"), "status still says violated: %s", out);
	cr_assert(strstr(out, "re-armed"), "and that it is armed: %s", out);
	/* a second unexplained 75.00 debit: trips again */
	bk_report_fill(&r.t, r.alpha, 0, 0, 98998 - 150, 1000);
	cr_assert(bk_rig_mode_within(&r, -1, BK_HALTED, 2000),
	          "worse than at the force: HALTED again");
	bk_rig_down(&r);
}

Test(rules_fixes, forced_resume_retrips_after_the_grace)
{
	struct bk_rig r;
	uint64_t t0;

	rig_up(
	    &r, "rf-dd", 1000,
	    "drawdown.max = 500\ndrawdown.rearm_ms = 300\nheartbeat.enabled = false\n");
	bk_report_marks(&r.t, r.alpha, 0, 0, 10000);
	bk_rig_ticked(&r);                          /* the peak is seen */
	bk_report_marks(&r.t, r.alpha, 0, 0, 9000); /* 1000 down */
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_HALTED, 2000));
	t0 = bk_h_mono_ms(); /* before the force: the grace cannot end before t0 + 300 */
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--strategy", "alpha",
	                          "--to", "active", "--force", "--reason", "manual check",
	                          NULL),
	             0, "%s", out);
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_ACTIVE, 100));
	bk_report_marks(&r.t, r.alpha, 0, 0, 9100); /* better, still violated */
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_HALTED, 5000),
	          "still violated after the 300 ms grace: HALTED again");
	cr_assert_geq(bk_h_mono_ms() - t0, 300, "not before the grace");
	/* drawdown worsening after a second force: at once */
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--strategy", "alpha",
	                          "--to", "active", "--force", "--reason", "again", NULL),
	             0, "%s", out);
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_ACTIVE, 100));
	bk_report_marks(&r.t, r.alpha, 0, 0, 8000);
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_HALTED, 200), "worse: at once");
	bk_rig_down(&r);
}

Test(rules_fixes, rebase_is_audited_restricted_and_replayed_at_boot)
{
	struct bk_rig r;

	rig_up(&r, "rf-rebase", 1000, "heartbeat.enabled = false\n");
	bk_report_opening_balance(&r.t, r.alpha, 1000);
	bk_report_fill(&r.t, r.alpha, 0, 0, 925, 0); /* a 75 debit: true loss */
	cr_assert(bk_rig_mode_within(&r, -1, BK_HALTED, 2000));
	/* bad input: refused, changes nothing */
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "rules", "rebase", "alpha",
	                          "exposure", "--reason", "x", NULL),
	             2, "%s", out);
	cr_assert(strstr(out, "has no base"), "%s", out);
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "rules", "rebase", "nosuch",
	                          "invariant", "--reason", "x", NULL),
	             1, "%s", out);
	cr_assert(strstr(out, "ERR_UNKNOWN_STRATEGY"), "%s", out);
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "rules", "rebase", "alpha",
	                          "invariant", NULL),
	             2, "--reason is required: %s", out);
	/* the loss is booked: the balance base starts again from here */
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "rules", "rebase", "alpha",
	                          "invariant", "--reason", "75 fee booked, INC-9", NULL),
	             0, "%s", out);
	cr_assert(strstr(out, "rebased rule invariant of strategy alpha"), "%s", out);
	cr_assert_eq(cli_until_ok(&r, 2000, "resume", "--to", "active", "--force",
	                          "--reason", "rebased", NULL, NULL),
	             0, "%s", out);
	cr_assert(bk_rig_mode_within(&r, -1, BK_ACTIVE, 100));
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0);
	cr_assert(strstr(out, "REBASE"), "%s", out);
	cr_assert(strstr(out, "balance base 1000.0000 -> 925.0000"), "%s", out);
	cr_assert(strstr(out, "75 fee booked, INC-9"), "%s", out);
	/* armed from the new base */
	bk_report_fill(&r.t, r.alpha, 0, 0, 900, 0);
	cr_assert(bk_rig_mode_within(&r, -1, BK_HALTED, 2000), "a new leak still trips");
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "rules", "rebase", "alpha",
	                          "invariant", "--reason", "booked too", NULL),
	             0, "%s", out);
	cr_assert_eq(cli_until_ok(&r, 2000, "resume", "--to", "active", "--force",
	                          "--reason", "rebased", NULL, NULL),
	             0, "%s", out);
	/* a restart: the rebase is replayed, the engine's older statement is not
	 * taken over it (that would halt at boot with 100 unexplained) */
	cr_assert_eq(bk_h_stop(&r.h), 0);
	bk_client_detach(&r.c);
	bk_h_start(&r.h);
	bk_h_attach(&r.h, &r.c);
	cr_assert(mode_stays(&r, -1, BK_ACTIVE, 300), "no trip at boot");
	bk_rig_down(&r);
}

/* ---- the balance base is stated, not guessed from tick timing ---------- */

Test(rules_fixes, opening_balance_and_first_fill_back_to_back_never_trip, .timeout = 120)
{
	enum { REPS = 1000 };
	struct bk_rig r;
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__RegisterStrategy reg = BREAKER__REGISTER_STRATEGY__INIT;
	Breaker__Reply *rep;
	struct bk_rpc rpc;
	char name[32];
	int slot[REPS];
	uint64_t t0 = bk_h_mono_ms();

	/* the default tick (100 µs), as in the report */
	rig_up(&r, "rf-open", 0, "heartbeat.enabled = false\n");
	cr_assert_eq(bk_rpc_open(&rpc, r.h.cfg.cmd_url, 5000), 0);
	req.cmd_case = BREAKER__REQUEST__CMD_REGISTER;
	req.register_ = &reg;
	reg.strategy = name;
	for (int i = 0; i < REPS; i++) {
		snprintf(name, sizeof(name), "eng-%d", i);
		cr_assert_eq(bk_rpc_call(&rpc, &req, &rep), 0);
		cr_assert_eq(rep->status, BREAKER__STATUS__OK, "%s",
		             rep->error ? rep->error : "");
		breaker__reply__free_unpacked(rep, NULL);
	}
	bk_rpc_close(&rpc);
	for (int i = 0; i < REPS; i++) {
		snprintf(name, sizeof(name), "eng-%d", i);
		for (int k = 0; k < 500 && (slot[i] = bk_client_resolve(&r.c, name)) < 0;
		     k++)
			usleep(1000);
		cr_assert_geq(slot[i], 0, "%s in the segment", name);
	}
	for (int i = 0; i < REPS; i++) {
		/* an earlier heartbeat, seen by the daemon (a few ticks) ... */
		beat(&r, slot[i]);
		usleep(300);
		/* ... then the opening balance and the first fill, back to back */
		bk_report_opening_balance(&r.t, slot[i], 1000000.0);
		bk_report_fill(&r.t, slot[i], -2500.0, 1.25, 1000000.0 - 2501.25, 2500.0);
		if (bk_check(&r.c, -1) != BK_ACTIVE)
			break;
	}
	cr_assert(mode_stays(&r, -1, BK_ACTIVE, 100), "zero false trips in %d", REPS);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0);
	cr_assert_eq(bk_h_count(out, " TRIP "), 0, "no trip recorded: %s", out);
	cr_assert_lt(bk_h_mono_ms() - t0, 60000, "bounded runtime");
	bk_rig_down(&r);
}

/* ---- a rate rule's resume needs evidence, not an empty window ------------ */

Test(rules_fixes, reject_rate_resume_to_active_needs_fresh_orders)
{
	struct bk_rig r;

	rig_up(&r, "rf-rej", 1000,
	       "reject_rate.max = 0.2\nreject_rate.min_orders = 20\n"
	       "reject_rate.window_ms = 1000\nheartbeat.enabled = false\n");
	bk_rig_ticked(&r); /* counters are deltas from breakerd's first look */
	bk_report_order(&r.t, r.alpha, 40);
	bk_report_reject(&r.t, r.alpha, 30); /* the venue rejects */
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_HALTED, 2000));
	/* halted: nothing is sent, the window empties; a probe stage is fine */
	cr_assert_eq(cli_until_ok(&r, 6000, "resume", "--strategy", "alpha", "--reason",
	                          "probe", NULL, NULL, NULL),
	             0, "%s", out);
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--strategy", "alpha",
	                          "--reason", "probe", NULL),
	             0, "to cautious: %s", out);
	cr_assert_eq(bk_check(&r.c, r.alpha), BK_CAUTIOUS);
	/* to active on an empty window: refused, saying why */
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--strategy", "alpha",
	                          "--reason", "looks quiet", NULL),
	             1, "%s", out);
	cr_assert(strstr(out, "ERR_CONDITION_HOLDS"), "%s", out);
	cr_assert(strstr(out, "not enough evidence: 0 of 20 orders"), "%s", out);
	cr_assert_eq(bk_check(&r.c, r.alpha), BK_CAUTIOUS, "nothing changed");
	/* the probe trades: 30 orders, 2 rejects, inside one window */
	bk_report_order(&r.t, r.alpha, 30);
	bk_report_reject(&r.t, r.alpha, 2);
	bk_rig_ticked(&r);
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--strategy", "alpha",
	                          "--reason", "30 orders, 2 rejects", NULL),
	             0, "evidence below the limit: %s", out);
	cr_assert_eq(bk_check(&r.c, r.alpha), BK_ACTIVE);
	bk_rig_down(&r);
}

Test(rules_fixes, global_reject_rate_counts_every_strategys_fresh_orders)
{
	struct bk_rig r;

	rig_up(&r, "rf-rejg", 1000,
	       "reject_rate.max = 0.2\nreject_rate.min_orders = 20\n"
	       "reject_rate.window_ms = 1000\nreject_rate.scope = global\n"
	       "heartbeat.enabled = false\n");
	bk_rig_ticked(&r);
	bk_report_order(&r.t, r.alpha, 40);
	bk_report_reject(&r.t, r.alpha, 30);
	cr_assert(bk_rig_mode_within(&r, -1, BK_HALTED, 2000));
	cr_assert_eq(cli_until_ok(&r, 6000, "resume", "--reason", "probe", NULL, NULL,
	                          NULL, NULL, NULL),
	             0, "%s", out);
	cr_assert_eq(
	    bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--reason", "probe", NULL), 0,
	    "%s", out);
	cr_assert_eq(
	    bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--reason", "quiet", NULL), 1,
	    "%s", out);
	cr_assert(strstr(out,
	                 "not enough evidence: 0 of 20 orders in the last 1000 ms for "
	                 "reject_rate on global"),
	          "%s", out);
	/* 10 + 15 fresh orders from two strategies, 1 reject: enough together */
	bk_report_order(&r.t, r.alpha, 10);
	bk_report_order(&r.t, r.beta, 15);
	bk_report_reject(&r.t, r.beta, 1);
	bk_rig_ticked(&r);
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--reason",
	                          "25 orders, 1 reject", NULL),
	             0, "%s", out);
	cr_assert(bk_rig_mode_within(&r, -1, BK_ACTIVE, 100));
	bk_rig_down(&r);
}

/* ---- drawdown in one unit, naming the limit that fired ------------------- */

Test(rules_fixes, drawdown_warning_and_evidence_in_money)
{
	struct bk_rig r;

	rig_up(
	    &r, "rf-ddu", 1000,
	    "drawdown.max = 25000\ndrawdown.max_pct = 20\nheartbeat.enabled = false\n");
	bk_report_marks(&r.t, r.alpha, 0, 0, 2500);
	bk_rig_ticked(&r);                          /* the peak is seen */
	bk_report_marks(&r.t, r.alpha, 0, 0, 2100); /* 400 of the 500 pct limit */
	bk_rig_ticked(&r);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "status", NULL), 0);
	cr_assert(strstr(out, "rule drawdown at 80% (measured 400 / threshold 500)"),
	          "one unit: %s", out);
	bk_report_marks(&r.t, r.alpha, 0, 0, 1956);
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_HALTED, 2000));
	cr_assert(shows_within(&r, "audit",
	                       "drawdown 544.00 against the pct limit 500.00 (max_pct "
	                       "20.00% of peak; absolute max 25000.00)",
	                       3000),
	          "the evidence names the limit: %s", out);
	bk_rig_down(&r);
}

/* ---- --force says what it does, and does it ---------------------------- */

Test(rules_fixes, force_on_several_latches_steps_each_one_stage_and_says_so)
{
	struct bk_rig r;

	rig_up(&r, "rf-force", 1000, "heartbeat.enabled = false\n");
	cr_assert_eq(bk_h_cli(&r.h, NULL, 0, "kill", "alpha", "--reason", "k", NULL), 0);
	cr_assert_eq(bk_h_cli(&r.h, NULL, 0, "trip", "manual_halt", "--strategy", "alpha",
	                      "--reason", "m", NULL),
	             0);
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--strategy", "alpha",
	                          "--reason", "r", NULL),
	             1);
	cr_assert(strstr(out, "ERR_AMBIGUOUS"), "%s", out);
	cr_assert(strstr(out, "--force to lower every latch together by one stage"),
	          "the hint says what --force does: %s", out);
	cr_assert(strstr(out, "release them all") == NULL ||
	              strstr(out, "--to active to release them all"),
	          "and not what it does not: %s", out);
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--strategy", "alpha",
	                          "--force", "--reason", "both, one stage", NULL),
	             0, "%s", out);
	cr_assert(strstr(out, "HALTED -> REDUCE_ONLY (resume FORCED"), "%s", out);
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_REDUCE_ONLY, 100));
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0);
	cr_assert(strstr(out, "every-latch(each to REDUCE_ONLY)"), "%s", out);
	cr_assert(strstr(out, "forced: every latch (manual_halt, kill_switch) lowered to "
	                      "REDUCE_ONLY (one stage, no --to)"),
	          "%s", out);
	cr_assert(strstr(out, "all-latches") == NULL, "%s", out);
	/* with --to active: every latch released */
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--strategy", "alpha",
	                          "--force", "--to", "active", "--reason", "all", NULL),
	             0, "%s", out);
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_ACTIVE, 100));
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "resume", "--help", NULL), 0);
	cr_assert(strstr(out, "--to active\n") || strstr(out, "(--to active"), "help: %s",
	          out);
	bk_rig_down(&r);
}

/* A remote engine (Report over nng): its balance with fills = 0 is its statement. */
static void report_money(struct bk_rig *r, uint64_t fills, double cash, double balance)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Report rp = BREAKER__REPORT__INIT;
	Breaker__Reply *rep;
	struct bk_rpc rpc;

	rp.strategy = "beta";
	rp.has_fills = rp.has_fill_cash = rp.has_balance = 1;
	rp.fills = fills;
	rp.fill_cash = cash;
	rp.balance = balance;
	req.cmd_case = BREAKER__REQUEST__CMD_REPORT;
	req.report = &rp;
	cr_assert_eq(bk_rpc_open(&rpc, r->h.cfg.cmd_url, 3000), 0);
	cr_assert_eq(bk_rpc_call(&rpc, &req, &rep), 0);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK);
	breaker__reply__free_unpacked(rep, NULL);
	bk_rpc_close(&rpc);
}

Test(rules_fixes, remote_engine_states_its_opening_balance_with_fills_zero)
{
	struct bk_rig r;

	rig_up(&r, "rf-remote", 0,
	       "heartbeat.enabled = false\n[strategies]\nremote = beta\n");
	report_money(&r, 0, 0, 1e6);
	report_money(&r, 1, -100, 1e6 - 100); /* may land in the same tick */
	cr_assert(mode_stays(&r, -1, BK_ACTIVE, 100), "the statement explains it");
	report_money(&r, 1, -100, 1e6 - 175);
	cr_assert(bk_rig_mode_within(&r, -1, BK_HALTED, 2000), "a 75 leak trips");
	bk_rig_down(&r);
}

/* The CLI as uid/gid 65534 (nobody): fork, drop privileges, exec (no nng here). */
static int cli_as_nobody(struct bk_rig *r, char **args)
{
	return bk_h_cli_as(&r->h, 65534, 65534, NULL, args, out, sizeof(out));
}

Test(rules_fixes, rebase_needs_resume_and_force)
{
	struct bk_rig r;
	char run[256];

	if (geteuid() != 0)
		cr_skip_test("needs root: runs the CLI as another user");
	/* nobody may resume, but not force: and so not rebase */
	rig_up(&r, "rf-rbauth", 1000,
	       "heartbeat.enabled = false\n[commands]\nsocket_mode = 0666\n"
	       "[auth]\nresume_uids = 0, 65534\nforce_uids = 0\n");
	snprintf(run, sizeof(run), "%s/run", r.h.dir);
	cr_assert_eq(chmod(r.h.dir, 0755), 0);
	cr_assert_eq(chmod(run, 0755), 0);
	cr_assert_eq(cli_as_nobody(&r, (char *[]){"rules", "rebase", "alpha", "drawdown",
	                                          "--reason", "mine", NULL}),
	             1, "%s", out);
	cr_assert(strstr(out, "ERR_UNAUTHORISED") && strstr(out, "may not rebase a rule"),
	          "%s", out);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0);
	cr_assert(strstr(out, "REFUSED") && !strstr(out, "REBASE"),
	          "refused and audited, nothing rebased: %s", out);
	bk_rig_down(&r);
}
