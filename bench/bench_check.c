/*
 * bench_check - what an engine pays per order to ask "may I trade?".
 *
 * bk_check and bk_check_live against a real breakerd's segment, in a tight
 * loop, timed in batches of calls (one clock read per batch, so the clock's
 * own cost and resolution vanish) and reported per call. Peers in the same
 * run: the same flag read as a file (pread, stat) and as a key from a real
 * redis-server over loopback TCP (one GET per sample).
 *
 * The daemon and redis-server run on CPU 0, this reader on CPU 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define SECTION "check"

struct ctx {
	bool quick;
	struct bk_client c;
	int slot;
	int fd;         /* the file flag, for pread */
	char path[192]; /* the file flag, for stat */
	struct resp redis;
	char get[64]; /* the encoded GET */
	size_t get_len;
	double *v;
	size_t cap;
};

typedef double (*batch_fn)(struct ctx *x, unsigned batch);

/* One batch of calls of expr, timed as a whole; ns per call. */
#define BATCH(name, expr)                                                                \
	static double name(struct ctx *x, unsigned batch)                                \
	{                                                                                \
		uint64_t acc = 0, t0 = bench_now(), t1;                                  \
		(void)x;                                                                 \
		for (unsigned i = 0; i < batch; i++)                                     \
			acc += (uint64_t)(expr);                                         \
		t1 = bench_now();                                                        \
		bench_sink(acc);                                                         \
		return (double)(t1 - t0) / batch;                                        \
	}

BATCH(b_check, bk_check(&x->c, x->slot))
BATCH(b_check_global, bk_check(&x->c, -1))
/* An engine that reads the clock once per event passes that time in. */
BATCH(b_live_cached, bk_check_live(&x->c, x->slot, t0, 0))
BATCH(b_live_clock, bk_check_live(&x->c, x->slot, bk_now_mono_ns(), 0))
BATCH(b_clock, bk_now_mono_ns())

static double b_pread(struct ctx *x, unsigned batch)
{
	uint64_t acc = 0, t0 = bench_now(), t1;
	char buf[8];

	for (unsigned i = 0; i < batch; i++)
		acc += pread(x->fd, buf, sizeof(buf), 0) > 0 && buf[0] != '0';
	t1 = bench_now();
	bench_sink(acc);
	return (double)(t1 - t0) / batch;
}

static double b_stat(struct ctx *x, unsigned batch)
{
	uint64_t acc = 0, t0 = bench_now(), t1;
	struct stat st;

	for (unsigned i = 0; i < batch; i++)
		acc += stat(x->path, &st) == 0 && st.st_size > 0;
	t1 = bench_now();
	bench_sink(acc);
	return (double)(t1 - t0) / batch;
}

static double b_redis(struct ctx *x, unsigned batch)
{
	uint64_t t0 = bench_now(), t1;
	char val[16];

	for (unsigned i = 0; i < batch; i++)
		if (resp_call(&x->redis, x->get, x->get_len, val, sizeof(val)) < 0)
			return -1;
	t1 = bench_now();
	return (double)(t1 - t0) / batch;
}

/* samples batches after samples/10 of warm-up; stats in ns per call. */
static int measure(struct ctx *x, batch_fn fn, unsigned batch, size_t samples,
                   struct bench_stats *s)
{
	samples = bench_scale(x->quick, samples);
	if (samples > x->cap)
		samples = x->cap;
	for (size_t i = 0; i < samples / 10; i++)
		if (fn(x, batch) < 0)
			return -EIO;
	for (size_t i = 0; i < samples; i++)
		if ((x->v[i] = fn(x, batch)) < 0)
			return -EIO;
	bench_stats(x->v, samples, s);
	return 0;
}

static void ratio(const char *name, const struct bench_stats *num,
                  const struct bench_stats *den)
{
	bench_pair(SECTION, name, "x", num->p50 / den->p50, num->p99 / den->p99,
	           "ratio of p50s and of p99s");
}

struct results {
	struct bench_stats check, global, live, live_clock, clock, pread, stat, redis;
	bool have_redis;
};

static int run_shm(struct ctx *x, struct results *r)
{
	struct bench_daemon d;
	char setup[128];
	int rv;

	rv = bench_daemon_start(&d, "check", "[strategies]\nnames = bench-1\n",
	                        BENCH_CPU_SERVER);
	if (rv < 0)
		return rv;
	if ((rv = bench_daemon_attach(&d, &x->c)) < 0 ||
	    (x->slot = bk_client_resolve(&x->c, "bench-1")) < 0) {
		fprintf(stderr, "bench_check: attach: %s\n", strerror(rv ? -rv : ENOENT));
		bench_daemon_stop(&d);
		return rv ? rv : -ENOENT;
	}
	snprintf(setup, sizeof(setup),
	         "breakerd cpu%d (tick %llu us); reader cpu%d; 1000 "
	         "calls per sample",
	         BENCH_CPU_SERVER, (unsigned long long)(d.cfg.tick_ns / 1000),
	         BENCH_CPU_OBSERVER);
	measure(x, b_check, 1000, 20000, &r->check);
	bench_row(SECTION, "bk_check (global + strategy)", "ns", &r->check, setup);
	measure(x, b_check_global, 1000, 20000, &r->global);
	bench_row(SECTION, "bk_check (global only)", "ns", &r->global, setup);
	measure(x, b_live_cached, 1000, 20000, &r->live);
	bench_row(SECTION, "bk_check_live (caller's clock reading)", "ns", &r->live,
	          setup);
	measure(x, b_live_clock, 1000, 20000, &r->live_clock);
	bench_row(SECTION, "bk_check_live + clock_gettime per call", "ns", &r->live_clock,
	          setup);
	measure(x, b_clock, 1000, 20000, &r->clock);
	bench_row(SECTION, "reference: clock_gettime(MONOTONIC) alone", "ns", &r->clock,
	          setup);
	bk_client_detach(&x->c);
	bench_daemon_stop(&d);
	return 0;
}

static int run_file(struct ctx *x, struct results *r, const char *dir)
{
	char setup[128];

	snprintf(x->path, sizeof(x->path), "%s/halt.flag", dir);
	x->fd = open(x->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (x->fd < 0 || pwrite(x->fd, "0\n", 2, 0) != 2)
		return -errno;
	snprintf(setup, sizeof(setup),
	         "%s file (page cache); reader cpu%d; 100 calls per "
	         "sample",
	         bench_fs_name(dir), BENCH_CPU_OBSERVER);
	measure(x, b_pread, 100, 20000, &r->pread);
	bench_row(SECTION, "peer: pread of a flag file", "ns", &r->pread, setup);
	measure(x, b_stat, 100, 20000, &r->stat);
	bench_row(SECTION, "peer: stat of a flag file", "ns", &r->stat, setup);
	close(x->fd);
	return 0;
}

static int run_redis(struct ctx *x, struct results *r, const char *dir)
{
	static const char *const set[] = {"SET", "breaker:global", "0"};
	static const char *const get[] = {"GET", "breaker:global"};
	struct bench_redis srv;
	char setup[128], cmd[64];
	size_t n;
	int rv;

	if ((rv = bench_redis_start(&srv, dir, BENCH_CPU_SERVER, false)) < 0)
		return rv;
	if ((rv = resp_connect(&x->redis, srv.port)) < 0)
		goto out;
	n = resp_encode(cmd, sizeof(cmd), 3, set);
	x->get_len = resp_encode(x->get, sizeof(x->get), 2, get);
	if ((rv = resp_call(&x->redis, cmd, n, NULL, 0)) < 0 ||
	    (rv = measure(x, b_redis, 1, 20000, &r->redis)) < 0)
		goto out;
	snprintf(setup, sizeof(setup),
	         "redis-server cpu%d; client cpu%d; TCP loopback; 1 GET "
	         "per sample",
	         BENCH_CPU_SERVER, BENCH_CPU_OBSERVER);
	bench_row(SECTION, "peer: Redis GET of the flag", "ns", &r->redis, setup);
	r->have_redis = true;
out:
	resp_close(&x->redis);
	bench_redis_stop(&srv);
	return rv;
}

int main(int argc, char **argv)
{
	struct ctx x = {
	    .quick = bench_quick(argc, argv), .cap = 20000, .redis = {.fd = -1}};
	struct results r = {0};
	char dir[160];
	int rv;

	x.v = calloc(x.cap, sizeof(*x.v));
	if (!x.v || bench_tmpdir(dir, sizeof(dir), "check") < 0) {
		free(x.v);
		return 1;
	}
	bench_pin(BENCH_CPU_OBSERVER);
	fprintf(stderr, "bench_check: engine check cost and its peers\n");
	if ((rv = run_shm(&x, &r)) < 0 || (rv = run_file(&x, &r, dir)) < 0) {
		fprintf(stderr, "bench_check: %s\n", strerror(-rv));
		bench_rmtree(dir);
		free(x.v);
		return 1;
	}
	run_redis(&x, &r, dir);
	if (r.have_redis) {
		ratio("ratio: Redis GET / bk_check", &r.redis, &r.check);
		ratio("ratio: Redis GET / bk_check_live", &r.redis, &r.live);
	}
	ratio("ratio: pread / bk_check", &r.pread, &r.check);
	ratio("ratio: stat / bk_check", &r.stat, &r.check);
	bench_rmtree(dir);
	free(x.v);
	return 0;
}
