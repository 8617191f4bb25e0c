/*
 * bench_idle - what an idle breakerd costs the host: CPU and memory at tick
 * periods of 10 us, 100 us (the default) and 1 ms, and the heartbeat age an
 * engine sees (what bk_check_live compares with its bound).
 *
 * CPU comes from /proc/<pid>/stat (utime + stime, all threads; clock ticks)
 * and, finer, from the per-thread schedstat run times; wake-ups from the
 * threads' voluntary context switches. Peer: an idle redis-server.
 * The server runs on CPU 0; this sampler (1 sample per ms) on CPU 1.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define SECTION   "idle"
#define WINDOW_MS 3000
#define SETTLE_MS 1000

struct proc_sample {
	uint64_t wall_ns;
	double cpu_s;   /* utime + stime */
	double run_ns;  /* sum of threads' schedstat run time */
	double wakeups; /* sum of threads' voluntary context switches */
	long rss_kib;
	int threads;
};

static int read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return 0;
}

static long status_field(const char *path, const char *key)
{
	char buf[4096], *p;

	if (read_file(path, buf, sizeof(buf)) < 0 || !(p = strstr(buf, key)))
		return -1;
	return strtol(p + strlen(key), NULL, 10);
}

static void sample_threads(pid_t pid, struct proc_sample *s)
{
	char dir[64], path[128], buf[128];
	struct dirent *e;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	if (!(dp = opendir(dir)))
		return;
	while ((e = readdir(dp))) {
		if (e->d_name[0] == '.')
			continue;
		s->threads++;
		snprintf(path, sizeof(path), "%s/%s/schedstat", dir, e->d_name);
		if (read_file(path, buf, sizeof(buf)) == 0)
			s->run_ns += strtod(buf, NULL);
		snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
		s->wakeups += (double)status_field(path, "voluntary_ctxt_switches:");
	}
	closedir(dp);
}

static void sample(pid_t pid, struct proc_sample *s)
{
	char path[64];

	memset(s, 0, sizeof(*s));
	s->wall_ns = bench_now();
	s->cpu_s = bench_cpu_s(pid);
	sample_threads(pid, s);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	s->rss_kib = status_field(path, "VmRSS:");
}

/* Sleep in 1 ms steps for the window; sample the heartbeat age at each. */
static size_t watch(const struct bk_client *c, double *age_us, size_t cap)
{
	uint64_t end = bench_now() + WINDOW_MS * 1000000ull, hb, now;
	size_t n = 0;

	while ((now = bench_now()) < end) {
		if (c && n < cap) {
			hb = atomic_load_explicit(&c->shm->heartbeat_ns,
			                          memory_order_acquire);
			age_us[n++] = now > hb ? (double)(now - hb) / 1000.0 : 0;
		}
		bench_sleep_us(1000);
	}
	return n;
}

static void report(const char *who, const struct proc_sample *a,
                   const struct proc_sample *b, const char *setup)
{
	double wall = (double)(b->wall_ns - a->wall_ns);
	char name[128];

	snprintf(name, sizeof(name), "%s: CPU (/proc stat utime+stime)", who);
	bench_value(SECTION, name, "%", (b->cpu_s - a->cpu_s) * 1e9 / wall * 100, setup);
	snprintf(name, sizeof(name), "%s: CPU (schedstat run time)", who);
	bench_value(SECTION, name, "%", (b->run_ns - a->run_ns) / wall * 100, setup);
	snprintf(name, sizeof(name), "%s: wake-ups per second", who);
	bench_value(SECTION, name, "1/s", (b->wakeups - a->wakeups) * 1e9 / wall, setup);
	snprintf(name, sizeof(name), "%s: RSS (%d threads)", who, b->threads);
	bench_value(SECTION, name, "KiB", (double)b->rss_kib, setup);
}

static int run_tick(unsigned tick_us, double *age, size_t cap)
{
	struct proc_sample a, b;
	struct bench_stats s;
	struct bench_daemon d;
	struct bk_client c;
	char ini[64], who[64], setup[128];
	size_t n;
	int rv;

	snprintf(ini, sizeof(ini), "tick_period_us = %u\n", tick_us);
	if ((rv = bench_daemon_start(&d, "idle", ini, BENCH_CPU_SERVER)) < 0)
		return rv;
	if ((rv = bench_daemon_attach(&d, &c)) < 0) {
		bench_daemon_stop(&d);
		return rv;
	}
	bench_sleep_us(SETTLE_MS * 1000);
	sample(d.pid, &a);
	n = watch(&c, age, cap);
	sample(d.pid, &b);
	snprintf(who, sizeof(who), "breakerd tick %u us%s", tick_us,
	         tick_us == 100 ? " (default)" : "");
	snprintf(setup, sizeof(setup),
	         "breakerd cpu%d; %d s window after %d s; no commands", BENCH_CPU_SERVER,
	         WINDOW_MS / 1000, SETTLE_MS / 1000);
	report(who, &a, &b, setup);
	bench_stats(age, n, &s);
	snprintf(who, sizeof(who), "breakerd tick %u us: heartbeat age seen by an engine",
	         tick_us);
	bench_row(SECTION, who, "us", &s, "sampled every 1 ms from cpu1");
	bk_client_detach(&c);
	bench_daemon_stop(&d);
	return 0;
}

/* --helper timer PERIOD_US: a bare absolute clock_nanosleep loop, the floor. */
static int helper_timer(const char *period)
{
	uint64_t tick = strtoull(period, NULL, 10) * 1000ull, next = bench_now(), now;
	volatile uint64_t heartbeat = 0;
	struct timespec ts;

	for (;;) {
		next += tick;
		ts.tv_sec = (time_t)(next / 1000000000ull);
		ts.tv_nsec = (long)(next % 1000000000ull);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		heartbeat = now = bench_now();
		if (next <= now) /* overran: skip ticks, as breakerd does */
			next = now;
	}
	return heartbeat == 0;
}

static int run_timer(unsigned tick_us)
{
	struct proc_sample a, b;
	char period[16], who[96], setup[96];
	char *args[] = {"--helper", "timer", period, NULL};
	pid_t pid;

	snprintf(period, sizeof(period), "%u", tick_us);
	if ((pid = bench_spawn_self(args, BENCH_CPU_SERVER)) < 0)
		return (int)pid;
	bench_sleep_us(200000);
	sample(pid, &a);
	watch(NULL, NULL, 0);
	sample(pid, &b);
	snprintf(who, sizeof(who), "peer: bare clock_nanosleep loop %u us", tick_us);
	snprintf(setup, sizeof(setup), "one thread cpu%d; %d s window", BENCH_CPU_SERVER,
	         WINDOW_MS / 1000);
	report(who, &a, &b, setup);
	bench_stop_child(pid);
	return 0;
}

static int run_redis(const char *dir)
{
	struct proc_sample a, b;
	struct bench_redis r;
	char setup[96];
	int rv;

	if ((rv = bench_redis_start(&r, dir, BENCH_CPU_SERVER, false)) < 0)
		return rv;
	bench_sleep_us(SETTLE_MS * 1000);
	sample(r.pid, &a);
	watch(NULL, NULL, 0);
	sample(r.pid, &b);
	snprintf(setup, sizeof(setup), "redis-server cpu%d (hz 10 default); no clients",
	         BENCH_CPU_SERVER);
	report("peer: redis-server idle", &a, &b, setup);
	bench_redis_stop(&r);
	return 0;
}

int main(int argc, char **argv)
{
	static const unsigned ticks[] = {10, 100, 1000};
	size_t cap = WINDOW_MS + 100;
	double *age = calloc(cap, sizeof(*age));
	char dir[160];

	if (argc > 3 && strcmp(argv[1], "--helper") == 0 && strcmp(argv[2], "timer") == 0)
		return helper_timer(argv[3]);
	if (!age || bench_tmpdir(dir, sizeof(dir), "idle") < 0)
		return 1;
	bench_pin(BENCH_CPU_OBSERVER);
	fprintf(stderr, "bench_idle: idle cost at three tick periods\n");
	for (size_t i = 0; i < sizeof(ticks) / sizeof(ticks[0]); i++) {
		if (run_tick(ticks[i], age, cap) < 0)
			fprintf(stderr, "bench_idle: tick %u us: daemon did not start\n",
			        ticks[i]);
		run_timer(ticks[i]);
	}
	run_redis(dir);
	bench_rmtree(dir);
	free(age);
	return 0;
}
