/*
 * bench_group - what groups (issue 14) cost the engines and the trip path.
 *
 * 1. bk_check for a strategy in 4 groups, next to one in no group, against
 *    a real breakerd: breakerd folds group latches into the member's word,
 *    so the check is the same two loads (batches of 1000 calls, per call).
 * 2. A trip of a group of 1,000 strategies: from "send the trip" until a
 *    spinning reader on the other core has seen every one of the 1,000
 *    member words HALTED, next to a single-strategy trip (send -> its one
 *    word seen), same daemon, same transport (the local fast path),
 *    interleaved. Each iteration:
 *    random 100-300 us pause, trip, ack, forced resume (durable first),
 *    reader sees ACTIVE again.
 *
 * breakerd and the sender on CPU 0, the reader thread on CPU 1. The reader is
 * a thread of this process (no fork after nng), spinning on the segment like
 * an engine. Never asserts on times.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define SECTION "group"
#define MEMBERS 1000
#define BENCH_LIMITS_INI                                                                 \
	"[strategies]\nnames = single, plain\n"                                          \
	"[limits]\nhalted.size_factor = 0\nreduce_only.size_factor = 0.1\n"              \
	"cautious.size_factor = 0.25\n[limits:venue:BENCH]\nhalted.max_qty = 0\n"        \
	"[limits:single]\nhalted.max_notional = 0\n"
#define GROUP "venue:BENCH"

struct ctx {
	bool quick;
	struct bk_client c;
	struct bk_rpc r;
	int members[MEMBERS];
	int single;
	/* the reader: armed with (what to watch, the mode to wait for) */
	_Atomic int watch; /* 0 idle, 1 members, 2 single, -1 quit */
	_Atomic int want;
	_Atomic uint64_t seen_ns;
	uint64_t id;
};

static bool all_at(struct ctx *x, const int *slots, int n, unsigned mode)
{
	for (int i = 0; i < n; i++)
		if (bk_check(&x->c, slots[i]) != (enum bk_mode)mode)
			return false;
	return true;
}

static void *reader(void *arg)
{
	struct ctx *x = arg;
	int w;

	bench_pin(BENCH_CPU_OBSERVER);
	while ((w = atomic_load(&x->watch)) >= 0) {
		unsigned mode = (unsigned)atomic_load(&x->want);
		const int *slots = w == 1 ? x->members : &x->single;
		int n = w == 1 ? MEMBERS : 1;

		if (w == 0 || atomic_load(&x->seen_ns))
			continue;
		if (all_at(x, slots, n, mode))
			atomic_store(&x->seen_ns, bench_now());
	}
	return NULL;
}

static int call(struct ctx *x, Breaker__Request *req)
{
	Breaker__Reply *rep = NULL;
	int rv;

	req->has_request_id = 1;
	req->request_id = ++x->id;
	rv = bk_rpc_call(&x->r, req, &rep);
	if (rv == 0 && rep->status != BREAKER__STATUS__OK) {
		fprintf(stderr, "bench_group: refused (%d): %s\n", rep->status,
		        rep->error ? rep->error : "");
		rv = -EPROTO;
	}
	if (rep)
		breaker__reply__free_unpacked(rep, NULL);
	return rv;
}

static int reg(struct ctx *x, const char *name, size_t n, char **groups)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__RegisterStrategy rs = BREAKER__REGISTER_STRATEGY__INIT;

	req.cmd_case = BREAKER__REQUEST__CMD_REGISTER;
	req.register_ = &rs;
	rs.strategy = (char *)name;
	rs.n_groups = n;
	rs.groups = groups;
	return call(x, &req);
}

static int trip(struct ctx *x, bool group)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;
	char *g[] = {GROUP};

	req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req.trip = &t;
	t.has_reason_code = 1;
	t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
	t.reason = "bench trip";
	if (group) {
		t.n_groups = 1;
		t.groups = g;
	} else {
		t.strategy = "single";
	}
	return call(x, &req);
}

static int resume(struct ctx *x, bool group)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Resume s = BREAKER__RESUME__INIT;

	req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
	req.resume = &s;
	if (group)
		s.group = GROUP;
	else
		s.strategy = "single";
	s.has_to = s.has_force = s.force = 1;
	s.to = BREAKER__MODE__MODE_ACTIVE;
	s.reason = "bench resume";
	return call(x, &req);
}

/* Arm the reader, run f, wait until it saw want; ns from t0, or -1. */
static double one(struct ctx *x, bool group, unsigned want, uint64_t *t0)
{
	uint64_t deadline;
	int rv;

	atomic_store(&x->seen_ns, 0);
	atomic_store(&x->want, (int)want);
	atomic_store(&x->watch, group ? 1 : 2);
	*t0 = bench_now();
	rv = want == BK_HALTED ? trip(x, group) : resume(x, group);
	deadline = bench_now() + 5000000000ull;
	while (rv == 0 && !atomic_load(&x->seen_ns) && bench_now() < deadline)
		bench_sleep_us(20);
	atomic_store(&x->watch, 0);
	if (rv < 0 || !atomic_load(&x->seen_ns))
		return -1;
	return (double)(atomic_load(&x->seen_ns) - *t0);
}

static void measure_check(struct ctx *x, int slot, struct bench_stats *s, size_t samples)
{
	double *v = calloc(samples, sizeof(*v));

	bench_pin(BENCH_CPU_OBSERVER);
	for (size_t i = 0; i < samples + samples / 10; i++) {
		uint64_t acc = 0, t0 = bench_now(), t1;

		for (unsigned k = 0; k < 1000; k++)
			acc += (uint64_t)bk_check(&x->c, slot);
		t1 = bench_now();
		bench_sink(acc);
		if (i >= samples / 10) /* the first tenth warms up */
			v[i - samples / 10] = (double)(t1 - t0) / 1000.0;
	}
	bench_stats(v, samples, s);
	free(v);
	bench_pin(BENCH_CPU_SERVER);
}

int main(int argc, char **argv)
{
	static struct ctx x;
	char *four[] = {"venue:XETR", "desk:eu-delta", "account:ACC-7", "trader:T42"};
	char *bench_group[] = {GROUP};
	struct bench_daemon d;
	struct bench_stats s4, s0, sg, ss;
	char setup[200], name[32];
	size_t n, ok_g = 0, ok_s = 0;
	double *vg, *vs;
	pthread_t th;
	int slot4, slot0;

	const char *lenv = getenv("BENCH_GROUP_LIMITS");
	bool limits = lenv && *lenv && strcmp(lenv, "0") != 0;
	char ini[512] = "[strategies]\nnames = single, plain\n";

	x.quick = bench_quick(argc, argv);
	n = bench_scale(x.quick, 1000);
	bench_pin(BENCH_CPU_SERVER);
	/* BENCH_GROUP_LIMITS=1: the same with [limits] configured, so every
	 * publication also computes and writes the members' limits entries */
	if (limits)
		snprintf(ini, sizeof(ini), "%s", BENCH_LIMITS_INI);
	if (bench_daemon_start(&d, "group", ini, BENCH_CPU_SERVER) < 0 ||
	    bench_daemon_attach(&d, &x.c) < 0 ||
	    bk_rpc_open(&x.r, d.cfg.local_url, 5000) < 0) {
		fprintf(stderr, "bench_group: cannot start breakerd\n");
		return 1;
	}
	/* 1. bk_check */
	if (reg(&x, "in-four", 4, four) < 0)
		goto fail;
	slot4 = bk_client_resolve(&x.c, "in-four");
	slot0 = bk_client_resolve(&x.c, "plain");
	snprintf(setup, sizeof(setup),
	         "breakerd cpu%d; reader cpu%d; 1000 calls per sample; groups folded "
	         "by breakerd",
	         BENCH_CPU_SERVER, BENCH_CPU_OBSERVER);
	measure_check(&x, slot4, &s4, bench_scale(x.quick, 20000));
	bench_row(SECTION, "bk_check, strategy in 4 groups", "ns", &s4, setup);
	measure_check(&x, slot0, &s0, bench_scale(x.quick, 20000));
	bench_row(SECTION, "bk_check, strategy in no group (peer)", "ns", &s0, setup);

	/* 2. a group of 1,000 vs one strategy */
	for (int i = 0; i < MEMBERS; i++) {
		snprintf(name, sizeof(name), "m%04d", i);
		if (reg(&x, name, 1, bench_group) < 0)
			goto fail;
		x.members[i] = bk_client_resolve(&x.c, name);
	}
	x.single = bk_client_resolve(&x.c, "single");
	vg = calloc(n, sizeof(double));
	vs = calloc(n, sizeof(double));
	pthread_create(&th, NULL, reader, &x);
	for (size_t i = 0; i < n + n / 10; i++) {
		uint64_t t0;
		double g, s;

		bench_sleep_us(100 + (unsigned)(rand() % 200));
		g = one(&x, true, BK_HALTED, &t0);
		if (one(&x, true, BK_ACTIVE, &t0) < 0)
			break;
		bench_sleep_us(100 + (unsigned)(rand() % 200));
		s = one(&x, false, BK_HALTED, &t0);
		if (one(&x, false, BK_ACTIVE, &t0) < 0)
			break;
		if (i < n / 10 || g < 0 || s < 0)
			continue; /* warm-up */
		vg[ok_g++] = g / 1000.0;
		vs[ok_s++] = s / 1000.0;
	}
	atomic_store(&x.watch, -1);
	pthread_join(th, NULL);
	snprintf(setup, sizeof(setup),
	         "breakerd cpu%d (%s); reader spinning cpu%d; interleaved; forced "
	         "resume between%s",
	         BENCH_CPU_SERVER, d.cfg.local_url, BENCH_CPU_OBSERVER,
	         limits ? "; [limits] configured" : "");
	bench_stats(vg, ok_g, &sg);
	bench_row(SECTION, "group trip (1000 members): send -> all 1000 seen", "us", &sg,
	          setup);
	bench_stats(vs, ok_s, &ss);
	bench_row(SECTION, "single strategy trip: send -> seen (peer)", "us", &ss, setup);
	bench_pair(SECTION, "group - single (p50, p99)", "us", sg.p50 - ss.p50,
	           sg.p99 - ss.p99, setup);
	free(vg);
	free(vs);
	bk_client_detach(&x.c);
	bench_daemon_stop(&d);
	return 0;
fail:
	bench_daemon_stop(&d);
	return 1;
}
