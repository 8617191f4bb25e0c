/*
 * The venue rules end to end (issue 14 item 6): engines report market-data
 * ticks and their order-entry session in telemetry; breakerd trips the
 * venue group (market_data_stale, exchange_down) with evidence, never a
 * bystander on another venue, never on an engine that reports nothing, and
 * refuses a resume until the venue recovered. Real breakerd, CLI, client.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_rpc.h"
#include "bk_mode.h"
#include "bk_tel.h"

/*
 * Generous bounds: a test process starved of CPU for a while is, to the
 * daemon, exactly a stale feed or a dead engine. The session test turns
 * md_stale off so that only the rule under test can trip.
 */
#define INI_WITH(md)                                                                     \
	"tick_period_us = 1000\n[strategies]\nnames = alpha, beta\n"                     \
	"[rules]\nheartbeat.max = 5000\n[venues]\nmd_stale_ms = " md "\n"
#define INI INI_WITH("1500")

static char out[65536];

struct venue_rig {
	struct bk_rig r;
	int x1, x2, y1;
};

static int slot_of(struct bk_rig *r, const char *name)
{
	int s = bk_client_resolve(&r->c, name);

	cr_assert_geq(s, 0, "%s is registered", name);
	return s;
}

/* x1, x2 at XETR; y1 at XLON (the bystander); alpha and beta in no venue. */
static void up_with(struct venue_rig *v, const char *tag, const char *ini)
{
	bk_rig_up(&v->r, tag, ini);
	cr_assert_eq(bk_h_cli(&v->r.h, out, sizeof(out), "register", "x1", "--group",
	                      "venue:XETR", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_h_cli(&v->r.h, out, sizeof(out), "register", "x2", "--group",
	                      "venue:XETR", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_h_cli(&v->r.h, out, sizeof(out), "register", "y1", "--group",
	                      "venue:XLON", NULL),
	             0, "%s", out);
	v->x1 = slot_of(&v->r, "x1");
	v->x2 = slot_of(&v->r, "x2");
	v->y1 = slot_of(&v->r, "y1");
}

static void up(struct venue_rig *v, const char *tag)
{
	up_with(v, tag, INI);
}

/* One engine iteration for slot: alive, and optionally a fresh tick. */
static void beat(struct venue_rig *v, int slot, bool tick)
{
	uint64_t now = bk_now_mono_ns();

	bk_report_heartbeat(&v->r.t, slot, now);
	if (tick)
		bk_report_md_tick(&v->r.t, slot, now);
}

/* Run the engines for ms: mask bit 0 x1 ticks, 1 x2 ticks, 2 y1 ticks. */
static void run(struct venue_rig *v, unsigned ms, int ticks)
{
	for (uint64_t end = bk_h_mono_ms() + ms; bk_h_mono_ms() < end;) {
		beat(v, v->x1, ticks & 1);
		beat(v, v->x2, ticks & 2);
		beat(v, v->y1, ticks & 4);
		beat(v, v->r.alpha, false);
		usleep(5000);
	}
}

/* Run until x1's effective mode is want (or ms passed). */
static bool run_until(struct venue_rig *v, int slot, enum bk_mode want, unsigned ms,
                      int ticks)
{
	for (uint64_t end = bk_h_mono_ms() + ms; bk_h_mono_ms() < end;) {
		run(v, 20, ticks);
		if (bk_check(&v->r.c, slot) == want)
			return true;
	}
	return false;
}

Test(venue_live, stale_market_data_trips_the_venue_group_not_a_bystander)
{
	struct venue_rig v;
	struct bk_reason why;

	up(&v, "ven-md");
	run(&v, 200, 7); /* every feed ticks */
	cr_assert_eq(bk_check(&v.r.c, v.x1), BK_ACTIVE);
	/* XETR's feed stops for both its engines; XLON's keeps ticking */
	cr_assert(run_until(&v, v.x1, BK_HALTED, 20000, 4), "XETR halted");
	cr_assert_eq(bk_check(&v.r.c, v.x2), BK_HALTED, "every XETR member");
	cr_assert_eq(bk_check(&v.r.c, v.y1), BK_ACTIVE, "XLON is not touched");
	cr_assert_eq(bk_check(&v.r.c, v.r.alpha), BK_ACTIVE,
	             "nor a strategy in no venue");
	cr_assert_eq(bk_check(&v.r.c, -1), BK_ACTIVE, "nor global");
	bk_read_reason(&v.r.c, v.x1, &why);
	cr_assert_eq(why.reason_code, (unsigned)BK_R_MARKET_DATA_STALE);
	/* the evidence, in the audit log */
	run(&v, 100, 4);
	cr_assert_eq(bk_h_cli(&v.r.h, out, sizeof(out), "audit", "--json", NULL), 0);
	cr_assert(strstr(out, "\"rule\":\"md_stale\""), "%s", out);
	cr_assert(strstr(out, "venue:XETR: freshest tick "), "%s", out);
	cr_assert(strstr(out, "among 2 live engines reporting market data (max 1500 ms)"),
	          "%s", out);
	/* resume refused while still stale */
	cr_assert_neq(bk_h_cli_all(&v.r.h, out, sizeof(out), "resume", "--group",
	                           "venue:XETR", "--reason", "feed back?", NULL),
	              0, "%s", out);
	cr_assert(strstr(out, "md_stale"), "the refusal names the rule: %s", out);
	/* the feed recovers: the staged resume goes through */
	run(&v, 100, 7);
	cr_assert_eq(bk_h_cli_all(&v.r.h, out, sizeof(out), "resume", "--group",
	                          "venue:XETR", "--reason", "feed back", NULL),
	             0, "%s", out);
	bk_rig_down(&v.r);
}

Test(venue_live, engines_that_never_report_market_data_are_not_judged)
{
	struct venue_rig v;

	up(&v, "ven-blind");
	/* everyone alive, nobody reports ticks: nothing to judge, nothing trips */
	run(&v, 2500, 0); /* longer than md_stale_ms */
	cr_assert_eq(bk_check(&v.r.c, v.x1), BK_ACTIVE);
	cr_assert_eq(bk_check(&v.r.c, v.y1), BK_ACTIVE);
	cr_assert_eq(bk_check(&v.r.c, -1), BK_ACTIVE, "no false global halt");
	cr_assert_eq(bk_h_cli(&v.r.h, out, sizeof(out), "status", NULL), 0);
	cr_assert_null(strstr(out, "venue rules:"), "nothing judged: %s", out);
	bk_rig_down(&v.r);
}

Test(venue_live, one_fresh_member_keeps_the_venue_fresh)
{
	struct venue_rig v;
	int port = bk_h_free_port();
	static char buf[1 << 20];
	const char *body = "";
	char ini[512];

	snprintf(ini, sizeof(ini), "%s[metrics]\nlisten = 127.0.0.1:%d\n", INI, port);
	up_with(&v, "ven-fresh", ini);
	run(&v, 200, 7);
	/* x2's own feed stops, x1 still ticks: the venue's freshest tick is fresh */
	run(&v, 2500, 5);
	cr_assert_eq(bk_check(&v.r.c, v.x1), BK_ACTIVE);
	cr_assert_eq(bk_check(&v.r.c, v.x2), BK_ACTIVE);
	cr_assert_eq(bk_h_cli(&v.r.h, out, sizeof(out), "status", NULL), 0);
	cr_assert(strstr(out, "venue:XETR md_stale: freshest tick "), "%s", out);
	cr_assert_null(strstr(out, "VIOLATED"), "%s", out);
	/* /metrics: the venue's utilisation, XLON's too (renders every 100 ms) */
	for (uint64_t end = bk_h_mono_ms() + 5000; bk_h_mono_ms() < end;) {
		run(&v, 50, 5);
		if (bk_h_http_get(port, "/metrics", buf, sizeof(buf), &body) == 200 &&
		    strstr(body,
		           "breaker_venue_rule_utilisation_ratio{group=\"venue:XLON\""))
			break;
	}
	cr_assert(strstr(body,
	                 "breaker_venue_rule_utilisation_ratio{group=\"venue:XETR\","
	                 "rule=\"md_stale\"} 0"),
	          "%s", body);
	bk_rig_down(&v.r);
}

Test(venue_live, session_down_trips_exchange_down_on_the_venue_group)
{
	struct venue_rig v;
	struct bk_reason why;

	up_with(&v, "ven-sess", INI_WITH("0"));
	bk_report_session(&v.r.t, v.x1, 1, bk_now_mono_ns());
	bk_report_session(&v.r.t, v.x2, 1, bk_now_mono_ns());
	bk_report_session(&v.r.t, v.y1, 1, bk_now_mono_ns());
	run(&v, 100, 7);
	bk_report_session(&v.r.t, v.x1, 0, bk_now_mono_ns());
	run(&v, 200, 7);
	cr_assert_eq(bk_check(&v.r.c, v.x1), BK_ACTIVE, "x2's session is still up");
	bk_report_session(&v.r.t, v.x2, 0, bk_now_mono_ns());
	cr_assert(run_until(&v, v.x1, BK_HALTED, 20000, 7), "XETR down");
	cr_assert_eq(bk_check(&v.r.c, v.x2), BK_HALTED);
	cr_assert_eq(bk_check(&v.r.c, v.y1), BK_ACTIVE, "XLON is up");
	bk_read_reason(&v.r.c, v.x2, &why);
	cr_assert_eq(why.reason_code, (unsigned)BK_R_EXCHANGE_DOWN);
	run(&v, 50, 7);
	cr_assert_eq(bk_h_cli(&v.r.h, out, sizeof(out), "audit", "--json", NULL), 0);
	cr_assert(strstr(out, "session down for all 2 live engines reporting one"), "%s",
	          out);
	/* the venue's latch is in the audit log: it survives a restart */
	cr_assert_eq(bk_h_stop(&v.r.h), 0);
	bk_h_start(&v.r.h);
	cr_assert_eq(bk_h_mode_of(&v.r.h, "x1"), BK_HALTED, "still held after a restart");
	cr_assert_eq(bk_h_mode_of(&v.r.h, "y1"), BK_ACTIVE);
	run(&v, 50, 7);
	/* cancel-all follows the group's halt: x1 confirms flat, x2 says nothing */
	bk_report_working(&v.r.t, v.x1, 0, bk_now_mono_ns());
	run(&v, 50, 7);
	cr_assert_eq(bk_h_cli(&v.r.h, out, sizeof(out), "status", NULL), 0);
	cr_assert(strstr(out, "working orders after the halt: 1 of 2 engines flat"), "%s",
	          out);
	cr_assert(strstr(out, "strategy x2 pid "), "%s", out);
	cr_assert(strstr(out, "UNCONFIRMED: no working-orders count ever reported"), "%s",
	          out);
	/* sessions back: resume */
	bk_report_session(&v.r.t, v.x1, 1, bk_now_mono_ns());
	bk_report_session(&v.r.t, v.x2, 1, bk_now_mono_ns());
	run(&v, 100, 7);
	cr_assert_eq(bk_h_cli_all(&v.r.h, out, sizeof(out), "resume", "--group",
	                          "venue:XETR", "--reason", "session back", NULL),
	             0, "%s", out);
	bk_rig_down(&v.r);
}

extern char **environ;

/* `breaker watch --json --count 1` in the background (exec: no nng here). */
static pid_t spawn_watch(struct bk_h *h, char *outp, size_t len)
{
	char *argv[] = {bk_h_cli_bin(), "--config", h->config,      "watch", "--json",
	                "--count",      "1",        "--timeout-ms", "20000", NULL};
	posix_spawn_file_actions_t fa;
	char errp[256];
	pid_t pid;

	snprintf(outp, len, "%s/watch.out", h->dir);
	snprintf(errp, sizeof(errp), "%s/watch.err", h->dir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC,
	                                 0600);
	posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC,
	                                 0600);
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 500; i++) { /* subscribed: it says so on stderr */
		if (bk_h_slurp(errp, out, sizeof(out)) > 0 &&
		    strstr(out, "watching breakerd events")) {
			usleep(100000);
			return pid;
		}
		usleep(10000);
	}
	cr_assert_fail("watch never subscribed: %s", out);
	return -1;
}

Test(venue_live, md_staleness_warns_before_it_trips)
{
	struct venue_rig v;
	char path[256];
	int status = 0;
	pid_t w;

	/* warns at half of 4 s: a starved test process stays far from the trip */
	up_with(&v, "ven-warn", INI_WITH("4000"));
	run(&v, 200, 7);
	w = spawn_watch(&v.r.h, path, sizeof(path));
	/* XETR's feed stops until the first event (the warning at 2 s) arrives */
	for (uint64_t end = bk_h_mono_ms() + 3500; bk_h_mono_ms() < end;) {
		run(&v, 50, 4);
		if (waitpid(w, &status, WNOHANG) == w)
			break;
	}
	run(&v, 100, 7); /* the feed is back before the trip */
	cr_assert_eq(bk_check(&v.r.c, v.x1), BK_ACTIVE, "warned, not tripped");
	waitpid(w, &status, 0);
	bk_h_slurp(path, out, sizeof(out));
	cr_assert(strstr(out, "\"warning\":true"), "%s", out);
	cr_assert(strstr(out, "\"rule\":\"md_stale\""), "%s", out);
	cr_assert(strstr(out, "\"group\":\"venue:XETR\""), "%s", out);
	cr_assert(strstr(out, "freshest tick "), "%s", out);
	bk_rig_down(&v.r);
}

/* A remote engine's Report: its session and the age of its last tick. */
static void remote_report(struct bk_h *h, const char *strategy, bool up,
                          uint64_t md_age_ms)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Report rp = BREAKER__REPORT__INIT;
	Breaker__Reply *rep;
	struct bk_rpc rpc;

	rp.strategy = (char *)strategy;
	rp.has_session_up = rp.has_md_age_ns = 1;
	rp.session_up = up;
	rp.md_age_ns = md_age_ms * 1000000ull;
	req.cmd_case = BREAKER__REQUEST__CMD_REPORT;
	req.report = &rp;
	cr_assert_eq(bk_rpc_open(&rpc, h->cfg.cmd_url, 3000), 0);
	cr_assert_eq(bk_rpc_call(&rpc, &req, &rep), 0);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK, "%s",
	             rep->error ? rep->error : "");
	breaker__reply__free_unpacked(rep, NULL);
	/* the process exits soon: no client-side close (libnng 1.5.2 can hang) */
}

Test(venue_live, a_remote_engine_reports_its_session_over_report)
{
	struct venue_rig v;
	struct bk_reason why;
	int r1;

	up_with(&v, "ven-remote", INI_WITH("0"));
	cr_assert_eq(bk_h_cli(&v.r.h, out, sizeof(out), "register", "r1", "--telemetry",
	                      "remote", "--group", "venue:XREM", NULL),
	             0, "%s", out);
	r1 = slot_of(&v.r, "r1");
	remote_report(&v.r.h, "r1", true, 5);
	run(&v, 100, 7);
	cr_assert_eq(bk_check(&v.r.c, r1), BK_ACTIVE);
	remote_report(&v.r.h, "r1", false, 5); /* its session to XREM dropped */
	cr_assert(run_until(&v, r1, BK_HALTED, 20000, 7), "XREM down");
	bk_read_reason(&v.r.c, r1, &why);
	cr_assert_eq(why.reason_code, (unsigned)BK_R_EXCHANGE_DOWN);
	cr_assert_eq(bk_check(&v.r.c, v.x1), BK_ACTIVE, "XETR is not XREM");
	bk_rig_down(&v.r);
}
