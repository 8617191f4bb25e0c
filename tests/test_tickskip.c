/*
 * The tick skips a strategy whose telemetry did not move and whose rules
 * have no deadline before the next tick (bk_tickskip.h). These scenarios pin
 * that a skipped strategy still trips, steps down and re-arms on time alone:
 * 4,096 strategies registered, nearly all idle (static telemetry), one or
 * two engines doing the scenario, then going quiet. Real breakerd, real CLI,
 * real client writing telemetry. Waits poll with generous deadlines; nothing
 * here asserts a latency.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_mode.h"
#include "bk_rpc.h"
#include "bk_tel.h"

#define FILL     4094u  /* idle strategies registered besides alpha and beta */
#define WAIT_MS  20000u /* generous: a starved test process is not a failure */
#define IDLE_NAM "idle%u"

static char out[1 << 16];

static void register_one(struct bk_rpc *rpc, const char *name, const char *group,
                         uint64_t id)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__RegisterStrategy rg = BREAKER__REGISTER_STRATEGY__INIT;
	Breaker__Reply *rep = NULL;
	char *groups[1] = {(char *)group};

	req.has_request_id = 1;
	req.request_id = id;
	req.cmd_case = BREAKER__REQUEST__CMD_REGISTER;
	req.register_ = &rg;
	rg.strategy = (char *)name;
	if (group) {
		rg.n_groups = 1;
		rg.groups = groups;
	}
	cr_assert_eq(bk_rpc_call(rpc, &req, &rep), 0, "register %s", name);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK, "register %s: %s", name,
	             rep->error ? rep->error : "");
	breaker__reply__free_unpacked(rep, NULL);
}

/*
 * alpha, beta from the config, then `extra` (NULL-terminated, each
 * "name" or "name@group"), then idle strategies up to 4,096 in all, each
 * with a static gross exposure written once: telemetry that never moves.
 */
static void up(struct bk_rig *r, const char *tag, const char *ini, const char **extra)
{
	struct bk_rpc rpc;
	uint64_t id = 1000;
	unsigned n = 2;

	bk_rig_up(r, tag, ini);
	cr_assert_eq(bk_rpc_open(&rpc, r->h.cfg.cmd_url, 10000), 0);
	for (; extra && *extra; extra++, n++) {
		char name[64], *at;

		snprintf(name, sizeof(name), "%s", *extra);
		if ((at = strchr(name, '@')))
			*at++ = '\0';
		register_one(&rpc, name, at, id++);
	}
	for (unsigned i = 0; n < 2 + FILL; i++, n++) {
		char name[32];
		int slot;

		snprintf(name, sizeof(name), IDLE_NAM, i);
		register_one(&rpc, name, NULL, id++);
		slot = bk_client_resolve(&r->c, name);
		cr_assert_geq(slot, 0, "%s", name);
		bk_report_marks(&r->t, slot, 0, 10, 0);
	}
	/* the connection stays open: libnng's client close can hang */
	bk_h_cli(&r->h, out, sizeof(out), "status", NULL);
}

/* A counter's value in the latest /metrics rendering (fails the test if absent). */
static double metric(int port, const char *name)
{
	static char buf[1 << 20];
	const char *body = NULL, *at = NULL;
	char needle[96];

	snprintf(needle, sizeof(needle), "\n%s ", name);
	cr_assert_eq(bk_h_http_get(port, "/metrics", buf, sizeof(buf), &body), 200);
	cr_assert(body && (at = strstr(body, needle)), "%s in /metrics", name);
	return strtod(at + strlen(needle), NULL);
}

/* The tick does skip: over half a second of nothing moving, far more
 * strategy-ticks left alone than evaluated (the rendering is 100 ms old at
 * most, so the window is wide). */
static void skipping(int port)
{
	double ev0 = metric(port, "breaker_tick_rule_evaluations_total");
	double sk0 = metric(port, "breaker_tick_rule_skips_total");
	double ev, sk;

	usleep(500 * 1000);
	ev = metric(port, "breaker_tick_rule_evaluations_total") - ev0;
	sk = metric(port, "breaker_tick_rule_skips_total") - sk0;
	cr_assert_gt(sk, 5 * ev, "skipped %.0f, evaluated %.0f strategy-ticks", sk, ev);
}

static int slot_of(struct bk_rig *r, const char *name)
{
	int s = bk_client_resolve(&r->c, name);

	cr_assert_geq(s, 0, "%s is registered", name);
	return s;
}

static void expect_reason(struct bk_rig *r, int slot, unsigned code)
{
	struct bk_reason why;

	bk_read_reason(&r->c, slot, &why);
	cr_assert_eq(why.reason_code, code, "reason %u, want %u", why.reason_code, code);
}

static void idle_untouched(struct bk_rig *r)
{
	for (unsigned i = 0; i < FILL; i += 97) {
		char name[32];

		snprintf(name, sizeof(name), IDLE_NAM, i);
		cr_assert_eq(bk_check(&r->c, slot_of(r, name)), BK_ACTIVE, "%s", name);
	}
	cr_assert_eq(bk_check(&r->c, -1), BK_ACTIVE, "global");
}

/* Beat fut and back (at their offsets) every 2 ms until slot's mode is want. */
static bool beat_two_until(struct bk_rig *r, int fut, long fut_ms, int back, long back_ms,
                           int slot, enum bk_mode want)
{
	for (uint64_t end = bk_h_mono_ms() + WAIT_MS; bk_h_mono_ms() < end;) {
		uint64_t now = bk_now_mono_ns();

		bk_report_heartbeat(&r->t, fut, now + (uint64_t)(fut_ms * 1000000ll));
		bk_report_heartbeat(&r->t, back, now + (uint64_t)(back_ms * 1000000ll));
		if (bk_check(&r->c, slot) == want)
			return true;
		usleep(2000);
	}
	return false;
}

/* The same Report for strategy every 5 ms for ms over nng; false if one is refused. */
static bool report_for(struct bk_rig *r, const char *strategy, unsigned ms)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Report rp = BREAKER__REPORT__INIT;
	struct bk_rpc rpc;
	bool ok = true;

	req.cmd_case = BREAKER__REQUEST__CMD_REPORT;
	req.report = &rp;
	rp.strategy = (char *)strategy;
	rp.has_orders = rp.has_gross = 1;
	rp.orders = 10;
	rp.gross = 10;
	cr_assert_eq(bk_rpc_open(&rpc, r->h.cfg.cmd_url, 10000), 0);
	for (uint64_t end = bk_h_mono_ms() + ms; ok && bk_h_mono_ms() < end;) {
		Breaker__Reply *rep = NULL;

		ok = bk_rpc_call(&rpc, &req, &rep) == 0 &&
		     rep->status == BREAKER__STATUS__OK;
		if (rep)
			breaker__reply__free_unpacked(rep, NULL);
		usleep(5000);
	}
	/* left open: libnng's client close can hang */
	return ok;
}

Test(tickskip, heartbeat_rules_trip_once_the_engine_goes_quiet)
{
	static const char *extra[] = {"future", "back", "rm", NULL};
	struct bk_rig r;
	int fut, back;

	/* 1.5 s: a test process starved that long would look like a dead engine */
	up(&r, "tsk-hb",
	   "[strategies]\nnames = alpha, beta\nremote = rm\n[rules]\nheartbeat.max = "
	   "1500\n",
	   extra);
	fut = slot_of(&r, "future");
	back = slot_of(&r, "back");
	for (uint64_t end = bk_h_mono_ms() + 300; bk_h_mono_ms() < end;) {
		bk_report_heartbeat(&r.t, r.alpha, bk_now_mono_ns());
		usleep(2000);
	}
	cr_assert_eq(bk_check(&r.c, r.alpha), BK_ACTIVE);

	/* alpha stops beating: nothing of its telemetry moves from now on */
	cr_assert(beat_two_until(&r, fut, 0, back, 0, r.alpha, BK_HALTED),
	          "a silent engine's heartbeat rule trips on time alone");
	expect_reason(&r, r.alpha, BK_R_STALE_HEARTBEAT);
	cr_assert_eq(bk_check(&r.c, fut), BK_ACTIVE, "fut beats");
	cr_assert_eq(bk_check(&r.c, back), BK_ACTIVE, "back beats");

	/* only the heartbeats move: fut's from a clock 5 s ahead, back's 5 s
	 * behind the one seen before; both are stale */
	cr_assert(beat_two_until(&r, fut, 5000, back, -5000, fut, BK_HALTED),
	          "a heartbeat 5 s in the future counts as stale");
	expect_reason(&r, fut, BK_R_STALE_HEARTBEAT);
	cr_assert(beat_two_until(&r, fut, 5000, back, -5000, back, BK_HALTED),
	          "a heartbeat that went 5 s backwards is stale");
	expect_reason(&r, back, BK_R_STALE_HEARTBEAT);

	/* a remote engine (Report messages): identical reports, so only the
	 * heartbeat (their receipt) moves; then they stop */
	cr_assert(report_for(&r, "rm", 300), "reports accepted");
	cr_assert_eq(bk_check(&r.c, slot_of(&r, "rm")), BK_ACTIVE);
	cr_assert(bk_rig_mode_within(&r, slot_of(&r, "rm"), BK_HALTED, WAIT_MS),
	          "a remote engine that stops reporting trips on time alone");
	expect_reason(&r, slot_of(&r, "rm"), BK_R_STALE_HEARTBEAT);

	cr_assert_eq(bk_check(&r.c, r.beta), BK_ACTIVE, "beta never beat: not judged");
	idle_untouched(&r);
	bk_rig_down(&r);
}

Test(tickskip, windows_cooldowns_and_rearm_run_on_time_alone)
{
	static const char *extra[] = {"rj", "ra", "cd", NULL};
	struct bk_rig r;
	int rj, ra, cd, port = bk_h_free_port();
	char ini[1024];

	snprintf(
	    ini, sizeof(ini), "[metrics]\nlisten = 127.0.0.1:%d\n%s", port,
	    "[strategies]\nnames = alpha, beta\n[rules]\nexposure.max = 1000\n"
	    "[rules:rj]\nreject_rate.window_ms = 400\nreject_rate.min_orders = 20\n"
	    "reject_rate.cooldown_ms = 300\nreject_rate.cooldown_to = cautious\n"
	    "[rules:ra]\nexposure.rearm_ms = 300\n"
	    "[rules:cd]\nexposure.cooldown_ms = 500\nexposure.cooldown_to = cautious\n");
	up(&r, "tsk-win", ini, extra);
	rj = slot_of(&r, "rj");
	ra = slot_of(&r, "ra");
	cd = slot_of(&r, "cd");

	/* reject rate: 30 of 40 rejected, written once; the window empties by
	 * itself, then the cooldown steps the latch down to CAUTIOUS */
	bk_report_order(&r.t, rj, 40);
	bk_report_reject(&r.t, rj, 30);
	cr_assert(bk_rig_mode_within(&r, rj, BK_HALTED, WAIT_MS), "reject rate trips");
	expect_reason(&r, rj, BK_R_REJECT_RATE);
	cr_assert(bk_rig_mode_within(&r, rj, BK_CAUTIOUS, WAIT_MS),
	          "the window expired and the cooldown stepped down with no telemetry "
	          "moving");

	/* exposure with a cooldown: breach, back under, then nothing moves */
	bk_report_marks(&r.t, cd, 0, 2000, 0);
	cr_assert(bk_rig_mode_within(&r, cd, BK_HALTED, WAIT_MS), "exposure trips");
	bk_report_marks(&r.t, cd, 0, 500, 0);
	cr_assert(bk_rig_mode_within(&r, cd, BK_CAUTIOUS, WAIT_MS),
	          "the cooldown expires on time alone");

	/* re-arm: forced resume while still in breach; nothing moves after */
	bk_report_marks(&r.t, ra, 0, 2000, 0);
	cr_assert(bk_rig_mode_within(&r, ra, BK_HALTED, WAIT_MS), "exposure trips");
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--strategy", "ra",
	                          "--to", "active", "--force", "--reason", "test re-arm",
	                          NULL),
	             0, "%s", out);
	cr_assert(bk_rig_mode_within(&r, ra, BK_HALTED, WAIT_MS),
	          "re-armed: trips again after rearm_ms with no telemetry moving");
	expect_reason(&r, ra, BK_R_EXPOSURE_LIMIT);

	cr_assert_eq(bk_check(&r.c, r.alpha), BK_ACTIVE);
	idle_untouched(&r);
	skipping(port);
	bk_rig_down(&r);
}

Test(tickskip, market_data_goes_stale_while_only_the_heartbeat_moves)
{
	static const char *extra[] = {"vx@venue:XETR", NULL};
	struct bk_rig r;
	int vx;

	up(&r, "tsk-md",
	   "[strategies]\nnames = alpha, beta\n[rules]\nheartbeat.max = 5000\n"
	   "[venues]\nmd_stale_ms = 500\n",
	   extra);
	vx = slot_of(&r, "vx");
	for (uint64_t end = bk_h_mono_ms() + 300; bk_h_mono_ms() < end;) {
		bk_report_heartbeat(&r.t, vx, bk_now_mono_ns());
		bk_report_md_tick(&r.t, vx, bk_now_mono_ns());
		usleep(2000);
	}
	cr_assert_eq(bk_check(&r.c, vx), BK_ACTIVE);
	/* the feed stops; the engine stays alive */
	cr_assert(beat_two_until(&r, vx, 0, vx, 0, vx, BK_HALTED),
	          "market data stale trips the venue");
	expect_reason(&r, vx, BK_R_MARKET_DATA_STALE);
	idle_untouched(&r);
	bk_rig_down(&r);
}

/* ---- the deadline's promise, rule by rule (bk_rules_next_ns) ------------------ */

#define MS 1000000ull

static struct bk_rules_cfg dl_cfg;
static struct bk_rule_eval dl_ev;
static struct bk_recon_hist dl_hist;
static struct bk_tel_snap dl_snap;

static struct bk_rule_cfg *dl_only(enum bk_rule_id id)
{
	bk_rules_defaults(&dl_cfg);
	memset(&dl_ev, 0, sizeof(dl_ev));
	memset(&dl_snap, 0, sizeof(dl_snap));
	dl_snap.consistent = true;
	for (int i = 0; i < BK_RULE_COUNT; i++)
		dl_cfg.dflt[i].enabled = false;
	dl_cfg.dflt[id].enabled = true;
	return &dl_cfg.dflt[id];
}

static int dl_eval(uint64_t t, struct bk_verdict *v)
{
	return bk_rules_eval(dl_cfg.dflt, dl_cfg.warn, &dl_ev, &dl_hist, &dl_snap, t, v,
	                     2 * BK_RULE_COUNT);
}

/*
 * Between an evaluation at t0 and its deadline, the same telemetry judges the
 * same: no verdict, no rule starts or stops violating. Sampled at 64 points
 * and just before the deadline, each from a copy of the state. The deadline.
 */
static uint64_t quiet_until_deadline(uint64_t t0)
{
	struct bk_verdict v[2 * BK_RULE_COUNT];
	bool fwd;
	uint64_t next =
	    bk_rules_next_ns(dl_cfg.dflt, dl_cfg.warn, &dl_ev, &dl_snap, t0, &fwd);
	uint64_t end = next == UINT64_MAX ? t0 + 3600000 * MS : next;

	for (uint64_t k = 1; k <= 65 && end > t0 + 1; k++) {
		uint64_t t = k == 65 ? end - 1 : t0 + (end - t0) / 65 * k;
		struct bk_rule_eval copy = dl_ev;
		int n = bk_rules_eval(dl_cfg.dflt, dl_cfg.warn, &copy, &dl_hist, &dl_snap,
		                      t, v, 2 * BK_RULE_COUNT);

		cr_assert_eq(
		    n, 0,
		    "a verdict (%s, kind %d) at +%.3f ms, before the deadline +%.3f ms",
		    n ? bk_rule_name(v[0].rule) : "", n ? (int)v[0].kind : -1,
		    (double)(t - t0) / 1e6, (double)(end - t0) / 1e6);
		cr_assert(
		    !memcmp(copy.violating, dl_ev.violating, sizeof(copy.violating)),
		    "violation changed at +%.3f ms, before the deadline",
		    (double)(t - t0) / 1e6);
	}
	return next;
}

/* Evaluate at each deadline in turn (nothing else moving) until a verdict of
 * kind; the time it came, or 0 after 20 deadlines. */
static uint64_t run_to(uint64_t t, enum bk_verdict_kind kind)
{
	struct bk_verdict v[2 * BK_RULE_COUNT];

	for (int i = 0; i < 20; i++) {
		uint64_t next = quiet_until_deadline(t);

		if (next == UINT64_MAX)
			return 0;
		t = next > t ? next : t + 1;
		for (int k = 0, n = dl_eval(t, v); k < n; k++)
			if (v[k].kind == kind)
				return t;
	}
	return 0;
}

static bool hb_fwd(void)
{
	bool fwd;

	bk_rules_next_ns(dl_cfg.dflt, dl_cfg.warn, &dl_ev, &dl_snap, 0, &fwd);
	return fwd;
}

Test(tickskip_deadline, heartbeat_age_warns_then_trips_at_its_deadlines)
{
	struct bk_rule_cfg *r = dl_only(BK_RULE_HEARTBEAT);
	struct bk_verdict v[2 * BK_RULE_COUNT];
	uint64_t t0 = 1000 * MS, t;

	r->max = 1000;
	dl_snap.heartbeat_ns = t0;
	cr_assert_eq(dl_eval(t0, v), 0);
	cr_assert(hb_fwd(), "young: a fresher heartbeat changes nothing");
	t = run_to(t0, BK_V_WARN);
	cr_assert_geq(t, t0 + 500 * MS, "the first warning at 50%%, not before");
	cr_assert(!hb_fwd(), "warned: a fresher heartbeat lowers the level, judged");
	t = run_to(t, BK_V_TRIP);
	cr_assert_geq(t, t0 + 1000 * MS, "trips once older than max");
	cr_assert_leq(t, t0 + 1001 * MS, "at its deadline");
	/* violated: only new telemetry (or a re-arm) changes anything */
	cr_assert_eq(quiet_until_deadline(t), UINT64_MAX);
}

Test(tickskip_deadline, a_heartbeat_ahead_of_the_clock_is_judged_every_tick)
{
	struct bk_rule_cfg *r = dl_only(BK_RULE_HEARTBEAT);
	struct bk_verdict v[2 * BK_RULE_COUNT];
	uint64_t t0 = 1000 * MS;
	bool fwd;

	r->max = 1000;
	dl_snap.heartbeat_ns = t0 + 500 * MS;
	dl_eval(t0, v);
	cr_assert_eq(
	    bk_rules_next_ns(dl_cfg.dflt, dl_cfg.warn, &dl_ev, &dl_snap, t0, &fwd), t0);
}

Test(tickskip_deadline, reject_window_empties_then_the_cooldown_steps)
{
	struct bk_rule_cfg *r = dl_only(BK_RULE_REJECT_RATE);
	struct bk_verdict v[2 * BK_RULE_COUNT];
	uint64_t t0 = 1000 * MS, t;

	r->max = 0.5;
	r->window_ms = 1000;
	r->min_orders = 20;
	r->cooldown_ms = 300;
	r->cooldown_to = BK_CAUTIOUS;
	dl_eval(t0, v);
	dl_snap.orders = 40;
	dl_snap.rejects = 30;
	cr_assert_eq(dl_eval(t0 + MS, v), 1);
	cr_assert_eq(v[0].kind, BK_V_TRIP);
	t = run_to(t0 + MS, BK_V_COOLDOWN);
	cr_assert_geq(t, t0 + 900 * MS, "only once the window no longer holds them");
	cr_assert_leq(t, t0 + 1100 * MS);
	cr_assert_eq(quiet_until_deadline(t), UINT64_MAX, "empty window, nothing due");
}

Test(tickskip_deadline, cooldown_and_rearm_come_due_on_time)
{
	struct bk_rule_cfg *r = dl_only(BK_RULE_EXPOSURE);
	struct bk_verdict v[2 * BK_RULE_COUNT];
	uint64_t t0 = 1000 * MS, t;

	r->max = 1000;
	r->cooldown_ms = 500;
	r->cooldown_to = BK_CAUTIOUS;
	r->rearm_ms = 300;
	dl_snap.gross = 2000;
	cr_assert_eq(dl_eval(t0, v), 1, "trips");
	/* forced resume while violated: trips again after rearm_ms */
	bk_rules_rearm(&dl_ev, BK_RULE_EXPOSURE, t0 + 10 * MS);
	t = run_to(t0 + 10 * MS, BK_V_TRIP);
	cr_assert_geq(t, t0 + 310 * MS);
	cr_assert_leq(t, t0 + 311 * MS);
	/* back under the limit: the cooldown counts from that trip */
	dl_snap.gross = 500;
	dl_eval(t + MS, v);
	cr_assert_eq(run_to(t + MS, BK_V_COOLDOWN), t + 500 * MS);
}

Test(tickskip_deadline, a_reconciliation_expires_at_its_deadline)
{
	struct bk_verdict v[2 * BK_RULE_COUNT];
	uint64_t t0 = 1000 * MS, wall = t0 + 1000000000000000000ull;

	dl_only(BK_RULE_RECONCILIATION);
	dl_snap.fills = 1;
	dl_snap.position = 100;
	dl_eval(t0, v);
	cr_assert_eq(bk_recon_post(&dl_ev.recon, &dl_hist, 5000, true, 1, 0, 1000, 2000,
	                           t0 + MS, wall + MS),
	             BK_RV_BREAK);
	cr_assert_eq(dl_eval(t0 + 2 * MS, v), 1, "the break trips");
	cr_assert_eq(quiet_until_deadline(t0 + 2 * MS), dl_ev.recon.expires_mono_ns,
	             "judged again when the verdict stops counting");
}
