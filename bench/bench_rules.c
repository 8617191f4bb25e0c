/*
 * bench_rules - the automated side:
 *
 *  1. tick cost against the number of strategies (1, 64, 1024, 4096): the
 *     daemon's own bk_tick() on a booted daemon context in this process,
 *     every default rule plus exposure on, telemetry live and healthy; ns per
 *     strategy per tick.
 *  2. detection latency: an engine (this process, pinned apart from the
 *     daemon) writes a violating gross exposure into its telemetry slot; how
 *     long until the same engine's bk_check() says HALTED. The daemon's tick
 *     period bounds it; the peer is the tick period itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bk_boot.h"
#include "bk_daemon.h"
#include "bk_log.h"

static const unsigned counts[] = {1, 64, 1024, 4096};

static int boot_in_process(struct bk_daemon *d, char *dir, size_t dirlen, unsigned n)
{
	struct bk_boot_report rep;
	char ini[PATH_MAX + 64], err[512];
	FILE *f;

	if (bench_tmpdir(dir, dirlen, "tick") < 0)
		return -1;
	snprintf(ini, sizeof(ini), "%s/breaker.ini", dir);
	if (!(f = fopen(ini, "w")))
		return -1;
	fprintf(f,
	        "[breaker]\ninstance = bt%d-%u\nrun_dir = %s/run\nstate_dir = %s/state\n"
	        "[rules]\nexposure.max = 1e9\n",
	        (int)getpid(), n, dir, dir);
	fclose(f);
	memset(d, 0, sizeof(*d));
	if (bk_config_defaults(&d->cfg, NULL) < 0 ||
	    bk_config_load(&d->cfg, ini, err, sizeof(err)) < 0 ||
	    bk_boot(d, &rep, err, sizeof(err))) {
		fprintf(stderr, "bench_rules: boot: %s\n", err);
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		char name[32];
		int slot;

		snprintf(name, sizeof(name), "s%u", i);
		slot = bk_state_register(&d->state, name);
		bk_shm_add_strategy(&d->shm, slot, name);
		bk_reload_bind_slot(d, slot);
	}
	return 0;
}

#define TRADING 64u /* strategies trading in the "rest beating" load */

/*
 * Healthy, moving telemetry: every rule has work to do and none trips. With
 * beating: only the first TRADING strategies trade; the others are engines
 * alive and idle, their heartbeat alone moving every tick (the tick skips
 * their rules, bk_tickskip.h).
 */
static void feed(struct bk_daemon *d, unsigned n, uint64_t now, uint64_t k, bool beating)
{
	for (unsigned i = 0; i < n; i++) {
		struct bk_tel_slot *s = &d->tel.tel->slots[i];
		bool trades = !beating || i < TRADING;

		atomic_store(&s->orders, trades ? 100 * k : 100);
		atomic_store(&s->rejects, trades ? k : 1);
		atomic_store(&s->heartbeat_ns, now);
		atomic_store(&s->gross, bk_f2u(1e6));
		atomic_store(&s->pnl, bk_f2u(trades ? (double)(k % 100) : 0));
	}
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* n strategies, one load: ns per strategy per tick, wall and on-CPU. */
static void tick_case(struct bk_daemon *d, bool quick, unsigned n, bool beating)
{
	size_t iters = bench_scale(quick, n >= 1024 ? 2000 : 20000);
	double *per = calloc(iters, sizeof(*per)), *cpu = calloc(iters, sizeof(*cpu));
	struct bench_stats st;
	char dir[256], setup[160], name[96];
	uint64_t ev0 = 0, sk0 = 0;

	if (!per || !cpu || boot_in_process(d, dir, sizeof(dir), n) < 0)
		exit(1);
	for (size_t i = 0; i < iters + 100; i++) {
		uint64_t now = bench_now();
		feed(d, n, now, i, beating);
		uint64_t c0 = thread_cpu_ns();
		uint64_t t0 = bench_now();
		bk_tick(d, t0);
		uint64_t t1 = bench_now();
		uint64_t c1 = thread_cpu_ns();
		if (i == 99) { /* warm-up done */
			ev0 = d->skip.evaluated;
			sk0 = d->skip.skipped;
		}
		if (i >= 100) {
			per[i - 100] = (double)(t1 - t0) / n;
			cpu[i - 100] = (double)(c1 - c0) / n;
		}
	}
	snprintf(setup, sizeof(setup),
	         "%u strategies%s, 5 rules on, in-process bk_tick; rules evaluated for "
	         "%.1f%% of strategy-ticks",
	         n, beating ? " (64 trading, the rest beating only)" : " (all trading)",
	         100.0 * (double)(d->skip.evaluated - ev0) /
	             (double)(d->skip.evaluated - ev0 + d->skip.skipped - sk0));
	snprintf(name, sizeof(name), "%u %s%s", n, n == 1 ? "strategy" : "strategies",
	         beating ? ": 64 trading + 4032 beating" : "");
	bench_stats(per, iters, &st);
	bench_row("tick", name, "ns/strategy/tick", &st, setup);
	/* the same ticks in the thread's own CPU time: what a preemption by
	 * another process adds to the wall time above is not in it */
	strncat(name, " (on-CPU)", sizeof(name) - strlen(name) - 1);
	bench_stats(cpu, iters, &st);
	bench_row("tick", name, "ns/strategy/tick", &st, setup);
	bk_boot_close(d);
	bk_shm_unlink(d->cfg.instance);
	bk_tel_unlink(d->cfg.instance);
	bench_rmtree(dir);
	free(per);
	free(cpu);
}

static void tick_cost(bool quick)
{
	static struct bk_daemon d; /* large; one at a time */

	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
		tick_case(&d, quick, counts[c], false);
	tick_case(&d, quick, 4096, true);
}

enum loop_kind { SLEEPS, SPINS, REALTIME };

static const char *const kind_name[] = {"", ", busy_poll", ", realtime_priority 50"};

/* How the daemon's loop waits: sleeps in io_uring (default), spins on its
 * own core ([breaker] busy_poll), or sleeps at SCHED_FIFO priority. */
static void detection(bool quick, unsigned tick_us, enum loop_kind kind)
{
	struct bench_daemon bd;
	struct bk_client c;
	struct bk_tel_client t;
	struct bk_rpc r;
	struct bench_stats st;
	char ini[256], setup[128], name[64];
	size_t iters = bench_scale(quick, 2000);
	double *lat = calloc(iters, sizeof(*lat));
	int slot, rv = -EAGAIN;

	snprintf(ini, sizeof(ini),
	         "tick_period_us = %u\nbusy_poll = %s\nrealtime_priority = %d\n"
	         "[strategies]\nnames = det\n[rules]\nexposure.max = 1000\n",
	         tick_us, kind == SPINS ? "true" : "false", kind == REALTIME ? 50 : 0);
	if (!lat || bench_daemon_start(&bd, "det", ini, BENCH_CPU_SERVER) < 0)
		exit(1);
	bench_pin(BENCH_CPU_OBSERVER);
	if (bench_daemon_attach(&bd, &c) < 0 || bk_rpc_open(&r, bd.cfg.cmd_url, 5000) < 0)
		exit(1);
	for (int i = 0; i < 200 && rv; i++)
		if ((rv = bk_tel_attach(&t, bd.cfg.instance)) != 0)
			bench_sleep_us(10000);
	slot = bk_client_resolve(&c, "det");
	if (rv || slot < 0)
		exit(1);
	for (size_t i = 0; i < iters; i++) {
		bk_report_heartbeat(&t, slot, bench_now());
		uint64_t t0 = bench_now();
		bk_report_marks(&t, slot, 0, 2000, 0); /* 2x the limit */
		while (bk_check(&c, slot) != BK_HALTED)
			;
		lat[i] = (double)(bench_now() - t0) / 1000.0;
		bk_report_marks(&t, slot, 0, 0, 0);
		bench_sleep_us(3 * tick_us); /* the rule sees the breach cleared */
		while (bench_resume(&r, "det", 1000000 + i) != 0)
			bench_sleep_us(tick_us);
		while (bk_check(&c, slot) != BK_ACTIVE)
			;
	}
	bench_stats(lat, iters, &st);
	snprintf(setup, sizeof(setup), "tick %u us%s; engine on cpu %d, daemon on cpu %d",
	         tick_us, kind_name[kind], BENCH_CPU_OBSERVER, BENCH_CPU_SERVER);
	snprintf(name, sizeof(name), "violation -> HALTED seen (tick %u us%s)", tick_us,
	         kind_name[kind]);
	bench_row("detect", name, "us", &st, setup);
	bench_value("detect", "bound: one tick period", "us", tick_us,
	            "the target: p99 <= tick + 20 us");
	bk_rpc_close(&r);
	bk_tel_detach(&t);
	bk_client_detach(&c);
	bk_tel_unlink(bd.cfg.instance);
	bench_daemon_stop(&bd);
	free(lat);
}

int main(int argc, char **argv)
{
	bool quick = bench_quick(argc, argv);

	bk_log_set_level(BK_LOG_ERR);
	tick_cost(quick);
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--tick-only") == 0) /* the tick rows alone */
			return 0;
	detection(quick, 100, SLEEPS);
	detection(quick, 100, SPINS);
	if (geteuid() == 0) /* SCHED_FIFO needs CAP_SYS_NICE */
		detection(quick, 100, REALTIME);
	detection(quick, 1000, SLEEPS);
	return 0;
}
