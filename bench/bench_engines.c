/*
 * bench_engines - the adaptive tick (issue 16 item 2): a breakerd's CPU and
 * its rule detection latency with 0, 1 and 64 engines writing telemetry.
 *
 * One breakerd (default config: tick 100 us, idle_tick_period_us 2 ms) with
 * 64 registered strategies on CPU 0. This process, on CPU 1, plays the
 * engines: "n active" means it writes the heartbeat of n strategies every
 * 500 us (what a live engine does); the others stay silent.
 *
 *   CPU: breakerd's utime + stime over 3 s (all threads), % of one core.
 *   Detection: the exposure rule's limit crossed on strategy 0, then spin on
 *   bk_check until HALTED (violation -> HALTED seen); then back under the
 *   limit and a forced resume. With 0 active engines every sample follows a
 *   quiet spell of 150 ms (> the 100 ms hold): the first detection after
 *   idle. Peer: the same with idle_tick_period_us = 0 (a fixed 100 us tick).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bk_log.h"
#include "bk_tel.h"

#define SECTION  "engines"
#define N_STRATS 64
#define CPU_MS   3000

struct rig {
	struct bench_daemon bd;
	struct bk_client c;
	struct bk_tel_client t;
	struct bk_rpc r;
	int slot[N_STRATS];
	uint64_t req_id; /* each resume its own request id */
};

static int rig_up(struct rig *g, bool adaptive)
{
	char ini[2048];
	int rv = -EAGAIN;

	snprintf(ini, sizeof(ini),
	         "idle_tick_period_us = %u\n[rules]\nexposure.max = "
	         "1000\n[metrics]\nlisten =\n",
	         adaptive ? 2000u : 0u);
	if (bench_daemon_start(&g->bd, "eng", ini, BENCH_CPU_SERVER) < 0)
		return -1;
	/* the CLI, exec'd (a names = line of 64 would be too long) */
	for (int i = 0; i < N_STRATS; i++) {
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "BREAKER_CONFIG=%s %s register e%d >/dev/null",
		         g->bd.config, BENCH_CLI, i);
		if (system(cmd) != 0)
			return -1;
	}
	if (bench_daemon_attach(&g->bd, &g->c) < 0 ||
	    bk_rpc_open(&g->r, g->bd.cfg.cmd_url, 5000) < 0)
		return -1;
	for (int i = 0; i < 200 && rv; i++)
		if ((rv = bk_tel_attach(&g->t, g->bd.cfg.instance)) != 0)
			bench_sleep_us(10000);
	for (int i = 0; i < N_STRATS && rv == 0; i++) {
		char name[16];

		snprintf(name, sizeof(name), "e%d", i);
		if ((g->slot[i] = bk_client_resolve(&g->c, name)) < 0)
			rv = -ENOENT;
	}
	return rv;
}

static void rig_down(struct rig *g)
{
	bk_rpc_close(&g->r);
	bk_tel_detach(&g->t);
	bk_client_detach(&g->c);
	bk_tel_unlink(g->bd.cfg.instance);
	bench_daemon_stop(&g->bd);
}

/* n engines beat for us microseconds, every 500 us (n = 0: just wait). */
static void beat_for(struct rig *g, int n, unsigned us)
{
	uint64_t end = bench_now() + (uint64_t)us * 1000;

	if (!n) {
		bench_sleep_us(us);
		return;
	}
	while (bench_now() < end) {
		uint64_t now = bench_now();

		for (int i = 0; i < n; i++)
			bk_report_heartbeat(&g->t, g->slot[i], now);
		bench_sleep_us(500);
	}
}

static void cpu(struct rig *g, int n, const char *how)
{
	double c0, c1;
	char name[96];

	beat_for(g, n, 300 * 1000); /* settle: past the hold */
	c0 = bench_cpu_s(g->bd.pid);
	beat_for(g, n, CPU_MS * 1000);
	c1 = bench_cpu_s(g->bd.pid);
	snprintf(name, sizeof(name), "breakerd CPU, %d active engine%s (%s)", n,
	         n == 1 ? "" : "s", how);
	bench_value(
	    SECTION, name, "% of a core", 100.0 * (c1 - c0) / (CPU_MS / 1000.0),
	    "64 strategies registered; engines beat every 500 us; utime+stime over 3 s");
}

static void detect(struct rig *g, int n, const char *how, bool quick)
{
	size_t iters = bench_scale(quick, n ? 1000 : 60);
	double *lat = calloc(iters, sizeof(*lat));
	struct bench_stats st;
	char name[128], setup[160];

	if (!lat)
		exit(1);
	for (size_t i = 0; i < iters; i++) {
		/* n = 0: a quiet spell past the hold; else engines keep beating */
		beat_for(g, n, n ? 1000 + (unsigned)(rand() % 2000) : 150 * 1000);
		uint64_t t0 = bench_now();
		bk_report_heartbeat(&g->t, g->slot[0], t0);
		bk_report_marks(&g->t, g->slot[0], 0, 2000, 0); /* 2x the limit */
		while (bk_check(&g->c, g->slot[0]) != BK_HALTED)
			if (bench_now() - t0 > 5000000000ull) {
				fprintf(stderr, "bench_engines: no trip in 5 s; see %s\n",
				        g->bd.log);
				exit(1);
			}
		lat[i] = (double)(bench_now() - t0) / 1000.0;
		bk_report_marks(&g->t, g->slot[0], 0, 0, 0);
		beat_for(g, n, 1000); /* the rule sees it cleared */
		/* engine 0 stays alive meanwhile: a stale heartbeat (a stall of the
		 * loaded machine) would hold its heartbeat rule, and refuse resumes */
		while (bench_resume(&g->r, "e0", ++g->req_id) != 0) {
			bk_report_heartbeat(&g->t, g->slot[0], bench_now());
			beat_for(g, n, 500);
		}
		while (bk_check(&g->c, g->slot[0]) != BK_ACTIVE)
			bench_sleep_us(100);
	}
	bench_stats(lat, iters, &st);
	snprintf(name, sizeof(name), "violation -> HALTED seen, %d active engine%s (%s)",
	         n, n == 1 ? "" : "s", how);
	snprintf(setup, sizeof(setup), "%s; daemon cpu%d, engines cpu%d; %s", how,
	         BENCH_CPU_SERVER, BENCH_CPU_OBSERVER,
	         n ? "engines beat every 500 us" : "each after 150 ms with no telemetry");
	bench_row(SECTION, name, "us", &st, setup);
	free(lat);
}

int main(int argc, char **argv)
{
	bool quick = bench_quick(argc, argv);
	static const int active[] = {0, 1, 64};
	struct rig g;

	bk_log_set_level(BK_LOG_ERR);
	srand(16);
	fprintf(stderr,
	        "bench_engines: CPU and detection with 0, 1, 64 active engines\n");
	for (int adaptive = 1; adaptive >= 0; adaptive--) {
		const char *how = adaptive ? "adaptive tick 100 us / idle 2 ms"
		                           : "fixed tick 100 us, idle_tick_period_us = 0";

		memset(&g, 0, sizeof(g));
		g.req_id = adaptive ? 3000000 : 4000000;
		if (rig_up(&g, adaptive) < 0) {
			fprintf(stderr, "bench_engines: no daemon; see %s\n", g.bd.log);
			return 1;
		}
		bench_pin(BENCH_CPU_OBSERVER);
		for (size_t k = 0; k < sizeof(active) / sizeof(active[0]); k++)
			cpu(&g, active[k], how);
		for (size_t k = 0; k < sizeof(active) / sizeof(active[0]); k++)
			detect(&g, active[k], how, quick);
		rig_down(&g);
	}
	bench_value(SECTION, "bound: tick + 20 us", "us", 120,
	            "target for detection p99 once engines write");
	return 0;
}
