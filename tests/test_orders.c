/*
 * Cancel-all, confirmed (issue 14 item 4): after a halt, breaker status
 * says per engine whether it is flat, still working orders, or unconfirmed
 * (dead or silent: cancel at the venue), and the audit log records when the
 * last engine went flat. A real breakerd, the real CLI, the client header.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_rpc.h"
#include "bk_mode.h"
#include "bk_tel.h"

#define BASE                                                                             \
	"tick_period_us = 1000\n[strategies]\nnames = alpha, beta\n"                     \
	"[rules]\nheartbeat.max = 2000\n"

static char out[65536];

static void rig_up(struct bk_rig *r, const char *tag)
{
	bk_rig_up(r, tag, BASE);
}

static void beat(struct bk_rig *r, int slot)
{
	bk_report_heartbeat(&r->t, slot, bk_now_mono_ns());
}

static void working(struct bk_rig *r, int slot, uint64_t n)
{
	bk_report_working(&r->t, slot, n, bk_now_mono_ns());
}

/* Poll `breaker status` (beating for the live slots) until its working-orders
 * section shows needle; out then holds that section. */
static bool status_shows(struct bk_rig *r, const char *needle, int beat_mask, unsigned ms)
{
	uint64_t end = bk_h_mono_ms() + ms;

	do {
		if (beat_mask & 1)
			beat(r, r->alpha);
		if (beat_mask & 2)
			beat(r, r->beta);
		char *sec;

		if (bk_h_cli(&r->h, out, sizeof(out), "status", NULL) == 0 &&
		    (sec = strstr(out, "working orders after the halt:")) &&
		    strstr(sec, needle)) {
			memmove(out, sec, strlen(sec) + 1);
			return true;
		}
		usleep(20000);
	} while (bk_h_mono_ms() < end);
	return false;
}

/* The number after needle in out (ms), or -1. */
static double number_after(const char *needle)
{
	const char *p = strstr(out, needle);

	return p ? strtod(p + strlen(needle), NULL) : -1;
}

Test(orders, an_engine_that_stops_cancelling_shows_its_working_orders)
{
	struct bk_rig r;

	rig_up(&r, "ord-stuck");
	beat(&r, r.alpha);
	beat(&r, r.beta);
	working(&r, r.alpha, 3);
	working(&r, r.beta, 1);
	usleep(20000);
	cr_assert_eq(
	    bk_h_cli(&r.h, out, sizeof(out), "kill", "alpha", "--reason", "drill", NULL),
	    0, "%s", out);
	/* the fault: alpha acts on the halt but its cancels never happen */
	working(&r, r.alpha, 3);
	cr_assert(status_shows(&r, "alpha pid", 3, 5000), "%s", out);
	cr_assert(strstr(out, "0 of 1 engines flat"), "only the halted engine: %s", out);
	cr_assert(strstr(out, ": 3 working orders, "), "%s", out);
	cr_assert(number_after(": 3 working orders, ") >= 0, "%s", out);
	cr_assert(strstr(out, "ms after the halt"), "%s", out);
	cr_assert_null(strstr(out, "strategy beta pid"), "beta is not halted: %s", out);
	bk_rig_down(&r);
}

/* A scrape of /metrics until it has needle (body in out), or false. */
static bool metrics_show(struct bk_rig *r, int port, const char *needle, unsigned ms)
{
	uint64_t end = bk_h_mono_ms() + ms;
	static char buf[1 << 20];
	const char *body;

	do {
		beat(r, r->alpha);
		if (bk_h_http_get(port, "/metrics", buf, sizeof(buf), &body) == 200 &&
		    strstr(body, needle)) {
			snprintf(out, sizeof(out), "%s", body);
			return true;
		}
		usleep(50000);
	} while (bk_h_mono_ms() < end);
	snprintf(out, sizeof(out), "%s", buf);
	return false;
}

Test(orders, metrics_show_working_orders_and_how_long_a_halt_is_unconfirmed)
{
	struct bk_rig r;
	char ini[512];
	int port = bk_h_free_port();
	double secs;

	snprintf(ini, sizeof(ini), "%s[metrics]\nlisten = 127.0.0.1:%d\n", BASE, port);
	bk_rig_up(&r, "ord-metrics", ini);
	beat(&r, r.alpha);
	working(&r, r.alpha, 3);
	cr_assert(metrics_show(&r, port, "breaker_working_orders{strategy=\"alpha\"} 3\n",
	                       5000),
	          "%s", out);
	cr_assert(
	    strstr(out, "breaker_halted_working_orders_seconds{strategy=\"alpha\"} 0\n"),
	    "not halted: 0: %s", out);
	cr_assert_eq(
	    bk_h_cli(&r.h, out, sizeof(out), "kill", "alpha", "--reason", "drill", NULL),
	    0, "%s", out);
	working(&r, r.alpha, 3); /* acts on the halt; its cancels never land */
	/* the unconfirmed time grows: poll until it passed 0.1 s (never an upper bound)
	 */
	secs = 0;
	for (uint64_t end = bk_h_mono_ms() + 5000; secs <= 0.1 && bk_h_mono_ms() < end;) {
		const char *k =
		    "breaker_halted_working_orders_seconds{strategy=\"alpha\"} ";
		if (metrics_show(&r, port, k, 1000))
			secs = strtod(strstr(out, k) + strlen(k), NULL);
	}
	cr_assert(secs > 0.1, "%f\n%s", secs, out);
	/* past 5 s unconfirmed, /healthz and `breaker health` say so (degraded) */
	bool degraded = false;
	for (uint64_t end = bk_h_mono_ms() + 20000; !degraded && bk_h_mono_ms() < end;) {
		beat(&r, r.alpha);
		bk_h_cli(&r.h, out, sizeof(out), "health", NULL);
		degraded =
		    strstr(out, "HALTED engine not confirmed flat after 5 s (alpha") !=
		    NULL;
		if (!degraded)
			usleep(100000);
	}
	cr_assert(degraded, "%s", out);
	cr_assert(strstr(out, "degraded: "), "%s", out);
	working(&r, r.alpha, 0);
	cr_assert(
	    metrics_show(&r, port,
	                 "breaker_halted_working_orders_seconds{strategy=\"alpha\"} 0\n",
	                 5000),
	    "flat: 0 again: %s", out);
	bk_rig_down(&r);
}

Test(orders, an_engine_that_goes_flat_shows_the_time_and_the_audit_records_it)
{
	struct bk_rig r;
	double ms;

	rig_up(&r, "ord-flat");
	beat(&r, r.alpha);
	working(&r, r.alpha, 2);
	usleep(20000);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "trip", "manual_halt", "--reason",
	                      "drill", NULL),
	             0, "%s", out);
	bk_report_ack(&r.t, r.alpha, bk_change_seq(&r.c), bk_now_mono_ns()); /* blocked */
	working(&r, r.alpha, 2); /* acts on the halt: cancels sent, not yet done */
	cr_assert(status_shows(&r, "alpha pid", 1, 5000), "%s", out);
	cr_assert(strstr(out, ": 2 working orders, "), "not flat yet: %s", out);
	usleep(30000);
	working(&r, r.alpha, 0); /* cancels confirmed by the venue */
	cr_assert(status_shows(&r, "flat (0 working) after ", 1, 5000), "%s", out);
	ms = number_after("flat (0 working) after ");
	cr_assert(ms >= 30 && ms < 60000, "time to flat from the flip: %.1f ms\n%s", ms,
	          out);
	cr_assert(strstr(out, "1 of 1 engines flat"), "%s", out);
	/* the audit log: FLAT with both figures */
	uint64_t end = bk_h_mono_ms() + 5000;
	do {
		bk_h_cli(&r.h, out, sizeof(out), "audit", "--json", NULL);
		if (strstr(out, "\"FLAT\""))
			break;
		usleep(20000);
	} while (bk_h_mono_ms() < end);
	cr_assert(strstr(out, "\"kind\":\"FLAT\""), "%s", out);
	cr_assert(strstr(out, "\"flat_after_ns\""), "%s", out);
	cr_assert(strstr(out, "\"engines_flat\":1"), "%s", out);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0, "%s", out);
	cr_assert(strstr(out, " time-to-flat-ns="), "the text listing: %s", out);
	cr_assert(strstr(out, " time-to-block-ns="), "%s", out);
	cr_assert_eq(
	    bk_h_cli(&r.h, out, sizeof(out), "incident", "export", "--since", "1h", NULL),
	    0, "%s", out);
	cr_assert(strstr(out, "| time to flat | "), "%s", out);
	cr_assert_null(strstr(out, "| time to flat | n/a"), "%s", out);
	cr_assert(strstr(out, "| time to block | "), "%s", out);
	cr_assert_null(strstr(out, "| time to block | n/a"), "the engine acked: %s", out);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "incident", "export", "--since",
	                      "1h", "--format", "json", NULL),
	             0, "%s", out);
	cr_assert(strstr(out, "\"time_to_flat_ns\":"), "%s", out);
	cr_assert(strstr(out, "\"time_to_block_ns\":"), "%s", out);
	bk_rig_down(&r);
}

Test(orders, a_zero_reported_before_the_halt_does_not_confirm_flat)
{
	struct bk_rig r;

	rig_up(&r, "ord-early");
	beat(&r, r.alpha);
	working(&r, r.alpha, 0);
	usleep(20000);
	cr_assert_eq(
	    bk_h_cli(&r.h, out, sizeof(out), "kill", "alpha", "--reason", "drill", NULL),
	    0, "%s", out);
	cr_assert(status_shows(&r, "alpha pid", 1, 5000), "%s", out);
	cr_assert(strstr(out, "UNCONFIRMED: no count reported since the halt"), "%s",
	          out);
	cr_assert(strstr(out, "cancel them at the venue"), "%s", out);
	working(&r, r.alpha, 0); /* restated when acting on the halt */
	cr_assert(status_shows(&r, "flat (0 working) after ", 1, 5000), "%s", out);
	bk_rig_down(&r);
}

Test(orders, a_dead_engines_orders_are_unconfirmed_with_the_runbook_step)
{
	struct bk_rig r;

	rig_up(&r, "ord-dead");
	beat(&r, r.alpha);
	beat(&r, r.beta);
	working(&r, r.alpha, 4);
	/* beta never reports a count: unknown, not flat */
	usleep(20000);
	cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "trip", "manual_halt", "--reason",
	                      "drill", NULL),
	             0, "%s", out);
	/* alpha dies: no beat, no count; beta beats on */
	cr_assert(status_shows(&r, "alpha pid", 2, 5000), "%s", out);
	/* dead once its heartbeat is older than heartbeat.max (2 s): waits for it */
	cr_assert(status_shows(&r, "UNCONFIRMED: engine dead", 2, 20000), "%s", out);
	cr_assert(strstr(out, "last reported 4 working: cancel them at the venue"), "%s",
	          out);
	cr_assert(strstr(out, "UNCONFIRMED: no working-orders count ever reported"),
	          "beta: %s", out);
	cr_assert(strstr(out, "0 of 2 engines flat"), "%s", out);
	bk_rig_down(&r);
}

/* A remote engine reports its working orders over Report (field 140). */
static void remote_working(struct bk_rig *r, uint64_t n)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Report rp = BREAKER__REPORT__INIT;
	Breaker__Reply *rep;
	struct bk_rpc rpc;

	rp.strategy = "beta";
	rp.has_working_orders = 1;
	rp.working_orders = n;
	req.cmd_case = BREAKER__REQUEST__CMD_REPORT;
	req.report = &rp;
	cr_assert_eq(bk_rpc_open(&rpc, r->h.cfg.cmd_url, 3000), 0);
	cr_assert_eq(bk_rpc_call(&rpc, &req, &rep), 0);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK, "%s",
	             rep->error ? rep->error : "");
	breaker__reply__free_unpacked(rep, NULL);
	/* the process exits soon: no client-side close (libnng 1.5.2 can hang) */
}

Test(orders, a_remote_engine_confirms_flat_over_report)
{
	struct bk_rig r;
	char ini[512];

	/* its heartbeat is its last Report: a long bound, so that a slow run
	 * never shows it dead between two reports */
	snprintf(ini, sizeof(ini),
	         "tick_period_us = 1000\n[strategies]\nnames = alpha, beta\n"
	         "remote = beta\n[rules]\nheartbeat.max = 600000\n");
	bk_rig_up(&r, "ord-remote", ini);
	remote_working(&r, 5);
	cr_assert_eq(
	    bk_h_cli(&r.h, out, sizeof(out), "kill", "beta", "--reason", "drill", NULL),
	    0, "%s", out);
	remote_working(&r, 5);
	cr_assert(status_shows(&r, "beta: 5 working orders, ", 0, 5000), "%s", out);
	remote_working(&r, 0);
	cr_assert(status_shows(&r, "beta: flat (0 working) after ", 0, 5000), "%s", out);
	bk_rig_down(&r);
}
