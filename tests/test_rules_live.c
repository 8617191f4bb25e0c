/*
 * Automated protection end to end: a test engine writes telemetry through
 * the client header into a real breakerd, which trips by itself.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bk_audit.h"
#include "bk_harness.h"
#include "bk_mode.h"
#include "bk_tel.h"

#define TICK_US 1000
#define BASE                                                                             \
	"tick_period_us = 1000\n[strategies]\nnames = alpha, beta\n"                     \
	"[rules]\nreject_rate.max = 0.2\nreject_rate.min_orders = 20\n"                  \
	"heartbeat.max = 200\n"

static char out[65536];

static void rig_up(struct bk_rig *r, const char *tag, const char *extra)
{
	char ini[2048];

	snprintf(ini, sizeof(ini), "%s%s", BASE, extra ? extra : "");
	/* bk_h_init writes [breaker] first; our keys continue that section */
	bk_rig_up(r, tag, ini);
}

/* Wait up to max_ticks daemon ticks for slot's effective mode to reach want. */
static int ticks_until(struct bk_rig *r, int slot, enum bk_mode want, int max_ticks)
{
	return bk_rig_ticks_until(r, slot, want, max_ticks, TICK_US);
}

/*
 * Run the CLI until it exits with want and its output holds needle (NULL: any),
 * for up to 10 s: a loaded machine can take many ticks to make a record
 * durable or to judge a reconciliation. Returns the last exit code.
 */
static int cli_until(struct bk_rig *r, int want, const char *needle, const char *a1,
                     const char *a2, const char *a3, const char *a4)
{
	uint64_t end = bk_h_mono_ms() + 10000;
	int rc;

	for (;;) {
		rc = bk_h_cli(&r->h, out, sizeof(out), a1, a2, a3, a4, NULL);
		if ((rc == want && (!needle || strstr(out, needle))) ||
		    bk_h_mono_ms() > end)
			return rc;
		usleep(5 * TICK_US);
	}
}

static void beat(struct bk_rig *r, int slot)
{
	bk_report_heartbeat(&r->t, slot, bk_now_mono_ns());
}

Test(rules_live, reject_rate_trips_the_strategy_with_evidence)
{
	struct bk_rig r;
	struct bk_reason why;

	rig_up(&r, "rej", NULL);
	beat(&r, r.alpha);
	bk_report_order(&r.t, r.alpha, 100);
	bk_report_reject(&r.t, r.alpha, 10); /* 10%: fine */
	usleep(20 * TICK_US);
	cr_assert_eq(bk_check(&r.c, r.alpha), BK_ACTIVE);
	bk_report_reject(&r.t, r.alpha, 20); /* 30% */
	cr_assert_geq(ticks_until(&r, r.alpha, BK_HALTED, 500), 0,
	              "tripped within 500 ticks");
	cr_assert_eq(bk_check(&r.c, r.beta), BK_ACTIVE, "other strategies untouched");
	cr_assert_eq(bk_check(&r.c, -1), BK_ACTIVE);
	bk_read_reason(&r.c, r.alpha, &why);
	cr_assert_eq(why.reason_code, (unsigned)BK_R_REJECT_RATE);
	/* the record becomes durable */
	cr_assert_eq(
	    cli_until(&r, 0, "\"rule\":\"reject_rate\"", "audit", "--json", NULL, NULL),
	    0);
	cr_assert(strstr(out, "\"rule\":\"reject_rate\""), "rule in the audit record: %s",
	          out);
	cr_assert(strstr(out, "30 rejects / 100 orders"),
	          "the numbers that caused it: %s", out);
	bk_rig_down(&r);
}

static void reconcile(struct bk_rig *r, const char *strategy, double position,
                      Breaker__Status want)
{
	Breaker__Reply *rep = bk_h_reconcile(&r->h, strategy, position, -1, 0);

	cr_assert_eq(rep->status, want, "reconcile: %s", rep->error ? rep->error : "");
	breaker__reply__free_unpacked(rep, NULL);
}

Test(rules_live, reconciliation_break_halts_global_until_reconciled)
{
	struct bk_rig r;

	rig_up(&r, "recon", NULL);
	beat(&r, r.beta);
	bk_report_marks(&r.t, r.beta, 50000, 50000, 0);
	reconcile(&r, "beta", 48500, BREAKER__STATUS__OK); /* $1500 break > $1K */
	cr_assert_geq(ticks_until(&r, -1, BK_HALTED, 500), 0, "SEV-1: global HALTED");
	cr_assert_eq(bk_check(&r.c, r.alpha), BK_HALTED, "every strategy is halted");
	/* resume is refused while the break is there */
	cr_assert_eq(
	    bk_h_cli(&r.h, out, sizeof(out), "resume", "--reason", "looks fine", NULL),
	    1);
	cr_assert_eq(bk_check(&r.c, -1), BK_HALTED);
	beat(&r, r.beta);
	reconcile(&r, "beta", 50000, BREAKER__STATUS__OK);
	/* judged on the daemon's next ticks: refused (nothing changed) until then */
	cr_assert_eq(cli_until(&r, 0, NULL, "resume", "--reason", "reconciled", NULL), 0,
	             "%s", out);
	cr_assert_eq(bk_check(&r.c, -1), BK_REDUCE_ONLY);
	/* reconciling an unknown strategy changes nothing */
	reconcile(&r, "nosuch", 1, BREAKER__STATUS__ERR_UNKNOWN_STRATEGY);
	bk_rig_down(&r);
}

Test(rules_live, broken_balance_conservation_halts_global)
{
	struct bk_rig r;

	rig_up(&r, "inv", NULL);
	bk_report_balance(&r.t, r.alpha, 100000);
	beat(&r, r.alpha);
	usleep(10 * TICK_US); /* the daemon takes its base */
	bk_report_fill(&r.t, r.alpha, -1000, 2, 98998, 1000);
	beat(&r, r.alpha);
	usleep(20 * TICK_US);
	cr_assert_eq(bk_check(&r.c, -1), BK_ACTIVE, "a fill explains the balance");
	bk_report_fill(&r.t, r.alpha, 0, 0, 99998, 1000); /* +1000 from nowhere */
	cr_assert_geq(ticks_until(&r, -1, BK_HALTED, 500), 0);
	struct bk_reason why;
	bk_read_reason(&r.c, -1, &why);
	cr_assert_eq(why.reason_code, (unsigned)BK_R_INVARIANT_VIOLATION);
	bk_rig_down(&r);
}

Test(rules_live, stale_engine_heartbeat_trips)
{
	struct bk_rig r;

	rig_up(&r, "hb", NULL);
	for (int i = 0; i < 20; i++) {
		beat(&r, r.alpha);
		usleep(5 * TICK_US);
	}
	cr_assert_eq(bk_check(&r.c, r.alpha), BK_ACTIVE);
	/* the engine stops beating: 200 ms bound */
	cr_assert_geq(ticks_until(&r, r.alpha, BK_HALTED, 2000), 0);
	struct bk_reason why;
	bk_read_reason(&r.c, r.alpha, &why);
	cr_assert_eq(why.reason_code, (unsigned)BK_R_STALE_HEARTBEAT);
	cr_assert_eq(bk_check(&r.c, r.beta), BK_ACTIVE, "beta never beat: not watched");
	bk_rig_down(&r);
}

Test(rules_live, remote_engine_report_over_nng)
{
	struct bk_rig r;
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Report rp = BREAKER__REPORT__INIT;
	Breaker__Reply *rep;
	struct bk_rpc rpc;

	/* beta's engine is off the host: its telemetry is declared remote */
	rig_up(&r, "remote", "[strategies]\nremote = beta\n");
	rp.strategy = "beta";
	rp.has_orders = rp.has_rejects = 1;
	req.cmd_case = BREAKER__REQUEST__CMD_REPORT;
	req.report = &rp;
	cr_assert_eq(bk_rpc_open(&rpc, r.h.cfg.cmd_url, 3000), 0);
	cr_assert_eq(bk_rpc_call(&rpc, &req, &rep), 0);
	breaker__reply__free_unpacked(rep, NULL);
	rp.orders = 40;
	rp.rejects = 30;
	cr_assert_eq(bk_rpc_call(&rpc, &req, &rep), 0);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK);
	breaker__reply__free_unpacked(rep, NULL);
	bk_rpc_close(&rpc);
	cr_assert_geq(ticks_until(&r, r.beta, BK_HALTED, 500), 0);
	bk_rig_down(&r);
}

Test(rules_live, engines_acknowledge_a_trip)
{
	struct bk_rig r;

	rig_up(&r, "ack", NULL);
	beat(&r, r.alpha);
	beat(&r, r.beta);
	cr_assert_eq(bk_h_cli(&r.h, NULL, 0, "emergency-stop", NULL), 0);
	/* alpha saw it and acts; beta does not */
	bk_report_ack(&r.t, r.alpha, bk_change_seq(&r.c), bk_now_mono_ns());
	beat(&r, r.alpha);
	beat(&r, r.beta);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "status", "--json", NULL), 0);
	cr_assert(strstr(out, "\"acks\""), "acks in status: %s", out);
	char *a = strstr(out, "\"strategy\":\"alpha\",\"pid\"");
	char *b = strstr(out, "\"strategy\":\"beta\",\"pid\"");
	cr_assert(a && b, "both engines listed: %s", out);
	cr_assert(strncmp(strstr(a, "\"acked\":"), "\"acked\":true", 12) == 0,
	          "alpha acked");
	cr_assert(strncmp(strstr(b, "\"acked\":"), "\"acked\":false", 13) == 0,
	          "beta not");
	bk_rig_down(&r);
}

Test(rules_live, sighup_reload_validates_first)
{
	struct bk_rig r;
	FILE *f;

	rig_up(&r, "hup", NULL);
	/* a broken file: refused, running rules stay */
	f = fopen(r.h.config, "a");
	fputs("[rules]\nexposure.max = lots\n", f);
	fclose(f);
	kill(r.h.pid, SIGHUP);
	usleep(50000);
	bk_h_slurp(r.h.log, out, sizeof(out));
	cr_assert(strstr(out, "exposure.max"), "the refusal names the key: %s", out);
	cr_assert(strstr(out, "running rules stay"), "%s", out);
	/* fix it: a tight exposure limit now applies */
	bk_h_write_config(&r.h, r.h.config, BASE "exposure.max = 100\n");
	kill(r.h.pid, SIGHUP);
	usleep(50000);
	beat(&r, r.alpha);
	bk_report_marks(&r.t, r.alpha, 0, 150, 0);
	cr_assert_geq(ticks_until(&r, r.alpha, BK_HALTED, 500), 0, "reloaded rule trips");
	bk_rig_down(&r);
}
