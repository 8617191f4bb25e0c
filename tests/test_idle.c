/*
 * The adaptive tick (bk_idle.h): a breakerd with no telemetry moving ticks
 * at the idle period, goes back to the full rate as soon as an engine
 * writes, and its rules still fire after a long idle. Waits poll with
 * generous deadlines; nothing here asserts a latency.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_mode.h"
#include "bk_tel.h"

static char out[1 << 18];

static void rig(struct bk_rig *r, const char *tag, int port, const char *extra)
{
	char ini[1024];

	snprintf(ini, sizeof(ini),
	         "%s[strategies]\nnames = alpha, beta\n[rules]\nexposure.max = 1000\n"
	         "[metrics]\nlisten = 127.0.0.1:%d\n",
	         extra ? extra : "", port);
	bk_rig_up(r, tag, ini);
}

/* Scrape until /metrics holds needle; while waiting, beat alpha if asked. */
static bool scrape_until(struct bk_rig *r, int port, const char *needle, bool beat)
{
	const char *body = NULL;
	uint64_t end = bk_h_mono_ms() + 10000;

	do {
		if (beat)
			bk_report_heartbeat(&r->t, r->alpha, bk_now_mono_ns());
		if (bk_h_http_get(port, "/metrics", out, sizeof(out), &body) == 200 &&
		    strstr(body, needle))
			return true;
		usleep(2000);
	} while (bk_h_mono_ms() < end);
	return false;
}

Test(idle, tick_slows_down_when_nothing_moves_and_speeds_up_on_telemetry)
{
	struct bk_rig r;
	int port = bk_h_free_port();

	rig(&r, "idle", port, NULL);
	cr_assert(scrape_until(&r, port, "\nbreaker_tick_period_seconds 0.0001\n", false),
	          "%s", out);
	cr_assert(
	    scrape_until(&r, port, "\nbreaker_tick_idle_period_seconds 0.002\n", false),
	    "%s", out);
	cr_assert(scrape_until(&r, port, "\nbreaker_tick_idle 1\n", false),
	          "idle with no telemetry moving: %s", out);
	cr_assert(scrape_until(&r, port, "\nbreaker_tick_idle 0\n", true),
	          "full rate while an engine beats: %s", out);
	/* the heartbeat kept being written all along */
	bk_rig_ticked(&r);
	bk_rig_down(&r);
}

Test(idle, a_rule_still_fires_after_a_long_idle)
{
	struct bk_rig r;
	int port = bk_h_free_port();

	rig(&r, "idlerule", port, NULL);
	cr_assert(scrape_until(&r, port, "\nbreaker_tick_idle 1\n", false), "%s", out);
	usleep(500 * 1000); /* a long quiet spell */
	cr_assert_eq(bk_check(&r.c, r.alpha), BK_ACTIVE);
	bk_report_marks(&r.t, r.alpha, 0, 2000, 0); /* gross 2000: twice the limit */
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_HALTED, 10000),
	          "the exposure rule trips after idle");
	cr_assert_eq(bk_check(&r.c, r.beta), BK_ACTIVE);
	for (int i = 0; i < 100; i++) { /* the record becomes durable */
		cr_assert_eq(bk_h_cli(&r.h, out, sizeof(out), "audit", NULL), 0);
		if (strstr(out, "rule=exposure") || strstr(out, "exposure"))
			break;
		usleep(20000);
	}
	cr_assert(strstr(out, "exposure"), "audited: %s", out);
	bk_rig_down(&r);
}

/* The heartbeat word is written every tick: the idle period stays within a
 * quarter of the bound engines judge it by. */
Test(idle, idle_period_stays_within_the_heartbeat_bound)
{
	struct bk_rig r;
	int port = bk_h_free_port();

	rig(&r, "idlebound", port,
	    "heartbeat_bound_ms = 4\nidle_tick_period_us = 5000\n");
	cr_assert(
	    scrape_until(&r, port, "\nbreaker_tick_idle_period_seconds 0.001\n", false),
	    "%s", out);
	bk_rig_down(&r);
}

Test(idle, zero_turns_it_off)
{
	struct bk_rig r;
	int port = bk_h_free_port();

	rig(&r, "idleoff", port, "idle_tick_period_us = 0\n");
	cr_assert(
	    scrape_until(&r, port, "\nbreaker_tick_idle_period_seconds 0.0001\n", false),
	    "%s", out);
	usleep(300 * 1000); /* well past the hold */
	cr_assert(scrape_until(&r, port, "\nbreaker_uptime_seconds", false));
	cr_assert(strstr(out, "\nbreaker_tick_idle 0\n"), "never idle: %s", out);
	bk_rig_down(&r);
}
