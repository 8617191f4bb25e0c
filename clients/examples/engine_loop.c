/*
 * engine_loop - a minimal trading engine loop using breaker_client.h.
 *
 * Attach read-only, resolve the strategy once, then before EVERY simulated
 * order ask bk_check_live() (fails closed: a dead daemon or unknown layout
 * reads HALTED) and act on the answer:
 *   HALTED       send nothing new, cancel every working order
 *   REDUCE_ONLY  only orders that bring the position towards zero
 *   CAUTIOUS     new orders at the breaker's published size factor (a
 *                quarter, our own convention, if it publishes none)
 *   ACTIVE       normal
 * In every mode, orders are sized by the limits the breaker publishes
 * (bk_limits: size factor, max order quantity and notional), re-read
 * whenever its change sequence moves.
 * Every mode change is printed with the reason the breaker gives (or "not
 * live" when the daemon's heartbeat is stale). Same behaviour and output as
 * engine_loop.py.
 *
 * It also writes its telemetry (bk_tel_attach, read-write), which the
 * daemon's rules judge on every tick: a heartbeat every iteration (the
 * dead-man switch: stop beating and the strategy trips stale_heartbeat), every
 * order sent and every cancel, every fill with the cash balance and position
 * after it (the simulated venue fills at a fixed price), marks, and an ack of
 * every change_seq it has acted on, which `breaker status` shows per trip.
 *
 * usage: engine_loop [--instance NAME] [--strategy NAME] [--seconds S]
 *                    [--iterations N] [--interval-us U]
 * exit: 0 after the bounded run; 1 cannot attach (state or telemetry segment)
 *       or unknown layout; 2 strategy not registered (refuses to trade) or
 *       bad usage.
 */
/* usleep/useconds_t are not ISO C: ask for them even under -std=c11 */
#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE 1
#endif
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "breaker_client.h"

#define BASE_SIZE       100
#define MAX_WORKING     8
#define PRICE           10.0 /* the simulated venue fills everything at this price... */
#define FEE_RATE        0.01 /* ...for this fee per unit */
#define OPENING_BALANCE 1000000.0

/* Reason code names, as in docs/shm-layout.md ("Reason codes"). */
static const char *const reason_names[] = {
    "none",
    "manual_halt",
    "emergency_stop",
    "kill_switch",
    "reject_rate",
    "order_rate",
    "invariant_violation",
    "reconciliation_break",
    "drawdown",
    "exposure_limit",
    "stale_heartbeat",
    "audit_corrupt",
    "market_data_stale",
    "exchange_down",
    "authority_lost",
};

static const char *reason_str(unsigned code)
{
	if (code < sizeof(reason_names) / sizeof(reason_names[0]))
		return reason_names[code];
	return "unknown";
}

struct order {
	int qty; /* signed: > 0 buy, < 0 sell */
};

struct engine {
	struct bk_tel_client tel;
	int slot;
	double balance;
	long position;
	struct order working[MAX_WORKING];
	int nworking;
	long sent, cancelled, skipped;
	struct bk_limit_values lim; /* the breaker's limits, as of the last change */
};

/*
 * An order's size under the breaker's limits: its size factor (in CAUTIOUS
 * without one, our own quarter), then its max quantity and max notional.
 */
static int sized(const struct engine *e, enum bk_mode mode, int want)
{
	double f = e->lim.flags & BK_LIMIT_SIZE_FACTOR ? e->lim.size_factor
	           : mode == BK_CAUTIOUS               ? 0.25
	                                               : 1.0;
	double q = (want < 0 ? -want : want) * f;

	if (e->lim.flags & BK_LIMIT_MAX_QTY && q > e->lim.max_qty)
		q = e->lim.max_qty;
	if (e->lim.flags & BK_LIMIT_MAX_NOTIONAL && q * PRICE > e->lim.max_notional)
		q = e->lim.max_notional / PRICE;
	return want < 0 ? -(int)q : (int)q;
}

/* The simulated exchange fills the oldest working order. */
static void fill_one(struct engine *e)
{
	int qty;
	double cash, fee, notional;

	if (e->nworking == 0)
		return;
	qty = e->working[0].qty;
	e->position += qty;
	memmove(&e->working[0], &e->working[1],
	        sizeof(e->working[0]) * (size_t)(e->nworking - 1));
	e->nworking--;
	cash = -qty * PRICE;
	fee = abs(qty) * FEE_RATE;
	e->balance += cash - fee;
	/* one fill: its cash and fee, and the balance and position after it, together */
	notional = (double)e->position * PRICE;
	bk_report_fill(&e->tel, e->slot, cash, fee, e->balance, notional);
	bk_report_marks(&e->tel, e->slot, notional, notional < 0 ? -notional : notional,
	                e->balance + notional - OPENING_BALANCE);
}

/* Cancels are always allowed, in every mode. */
static int cancel_all(struct engine *e)
{
	int n = e->nworking;

	e->cancelled += n;
	e->nworking = 0;
	if (n)
		bk_report_cancel(&e->tel, e->slot, (uint64_t)n);
	return n;
}

/* Position once every working order fills. */
static long exposure(const struct engine *e)
{
	long x = e->position;

	for (int k = 0; k < e->nworking; k++)
		x += e->working[k].qty;
	return x;
}

/* Going reduce-only: cancel working orders that would grow the position. */
static int cancel_increasing(struct engine *e)
{
	int n = 0, k = 0;

	for (int j = 0; j < e->nworking; j++) {
		if (e->position == 0 || (e->working[j].qty > 0) == (e->position > 0))
			n++;
		else
			e->working[k++] = e->working[j];
	}
	e->nworking = k;
	e->cancelled += n;
	if (n)
		bk_report_cancel(&e->tel, e->slot, (uint64_t)n);
	return n;
}

static void send_order(struct engine *e, int qty)
{
	if (e->nworking == MAX_WORKING)
		fill_one(e);
	e->working[e->nworking++].qty = qty;
	e->sent++;
	bk_report_order(&e->tel, e->slot, 1);
}

/* What the strategy would like to do on iteration i: a simple oscillation. */
static int wanted_qty(long i)
{
	return (i / 4) % 2 == 0 ? BASE_SIZE : -BASE_SIZE;
}

static void trade(struct engine *e, enum bk_mode mode, long i)
{
	int want = wanted_qty(i);
	long x;

	switch (mode) {
	case BK_HALTED:
		e->skipped++;
		return;
	case BK_REDUCE_ONLY:
		/* only towards flat, and never past it (counting working orders) */
		x = exposure(e);
		if (x == 0 || (x > 0) == (want > 0)) {
			e->skipped++;
			return;
		}
		if (labs(x) < abs(want))
			want = (int)-x;
		break;
	case BK_CAUTIOUS:
	case BK_ACTIVE:
		break;
	}
	want = sized(e, mode, want);
	if (want == 0) { /* a size factor or limit of 0: nothing to send */
		e->skipped++;
		return;
	}
	send_order(e, want);
}

static void report_mode(const struct bk_client *c, int slot, enum bk_mode mode, bool dead,
                        struct engine *e)
{
	struct bk_reason r;

	if (dead) {
		printf("mode HALTED (breakerd not live: fail closed): stop sending, "
		       "cancelled %d working orders\n",
		       cancel_all(e));
		return;
	}
	bk_read_reason(c, slot, &r);
	printf("mode %s reason=%s uid=%u", bk_mode_str(mode), reason_str(r.reason_code),
	       (unsigned)r.actor_uid);
	if (r.scope == BK_SCOPE_GROUP) /* held by a group the strategy is in */
		printf(" group=%s", r.scope_name);
	printf(": ");
	switch (mode) {
	case BK_HALTED:
		printf("stop sending, cancelled %d working orders\n", cancel_all(e));
		break;
	case BK_REDUCE_ONLY:
		printf("reducing orders only, cancelled %d increasing orders (position "
		       "%ld)\n",
		       cancel_increasing(e), e->position);
		break;
	case BK_CAUTIOUS:
		printf("size %d (of %d)\n", sized(e, mode, BASE_SIZE), BASE_SIZE);
		break;
	case BK_ACTIVE:
		printf("normal trading, size %d\n", sized(e, mode, BASE_SIZE));
		break;
	}
}

static int attach(struct bk_client *c, const char *instance)
{
	int rv = -EAGAIN;

	/* the daemon may still be creating the segment: retry for 2 s */
	for (int i = 0; i < 200; i++) {
		rv = bk_client_attach(c, instance);
		if (rv != -EAGAIN && rv != -ENOENT)
			break;
		usleep(10000);
	}
	if (rv == -EPROTO)
		fprintf(stderr,
		        "breaker instance %s: unknown segment layout: refusing to trade "
		        "(fail closed)\n",
		        instance);
	else if (rv < 0)
		fprintf(stderr,
		        "breaker instance %s: cannot attach: %s: refusing to trade\n",
		        instance, strerror(-rv));
	return rv;
}

/*
 * The telemetry segment, read-write; retried for 2 s like the state segment.
 * Without it the daemon's rules cannot watch this engine (no heartbeat, no
 * reject rate, no balance check): the example refuses to trade.
 */
static int attach_telemetry(struct bk_tel_client *t, const char *instance)
{
	int rv = -EAGAIN;

	for (int i = 0; i < 200; i++) {
		rv = bk_tel_attach(t, instance);
		if (rv != -EAGAIN && rv != -ENOENT)
			break;
		usleep(10000);
	}
	if (rv < 0)
		fprintf(stderr,
		        "breaker instance %s: cannot attach telemetry: %s: refusing to "
		        "trade\n",
		        instance, rv == -EPROTO ? "unknown layout" : strerror(-rv));
	return rv;
}

static uint64_t arg_u64(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (!*s || *end) {
		fprintf(stderr, "not a number: %s\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"instance", required_argument, NULL, 'i'},
	    {"strategy", required_argument, NULL, 's'},
	    {"seconds", required_argument, NULL, 't'},
	    {"iterations", required_argument, NULL, 'n'},
	    {"interval-us", required_argument, NULL, 'u'},
	    {NULL, 0, NULL, 0},
	};
	const char *instance = "default", *strategy = "momo-eu-1";
	uint64_t seconds = 10, iterations = 0, interval_us = 1000, end;
	struct engine e;
	struct bk_client c;
	int last = -1; /* no mode seen yet */
	uint32_t acked = 0;
	bool any_acked = false;
	bool last_dead = false;
	int opt, slot;
	long i;

	/* = {0} warns in C++ (-Wmissing-field-initializers); memset is both */
	memset(&e, 0, sizeof(e));
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			instance = optarg;
			break;
		case 's':
			strategy = optarg;
			break;
		case 't':
			seconds = arg_u64(optarg);
			break;
		case 'n':
			iterations = arg_u64(optarg);
			break;
		case 'u':
			interval_us = arg_u64(optarg);
			break;
		default:
			fprintf(
			    stderr,
			    "usage: %s [--instance NAME] [--strategy NAME] [--seconds S] "
			    "[--iterations N] [--interval-us U]\n",
			    argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* !c.shm: bk_client_attach returns -errno of a failed mmap, which the
	 * compiler cannot prove non-zero; say it, or GCC warns of a NULL load */
	if (attach(&c, instance) < 0 || !c.shm)
		return 1;
	slot = bk_client_resolve(&c, strategy);
	if (slot < 0) {
		fprintf(stderr,
		        "strategy %s is not registered with breaker instance %s: "
		        "refusing to trade\n",
		        strategy, instance);
		bk_client_detach(&c);
		return 2;
	}
	if (attach_telemetry(&e.tel, instance) < 0 || !e.tel.tel) {
		bk_client_detach(&c);
		return 1;
	}
	e.slot = slot;
	e.balance = OPENING_BALANCE;
	if (BK_LOAD_ACQ(&e.tel.tel->slots[slot].fills))
		/* an earlier run of this strategy reported fills: the (simulated)
		 * account carries on from its balance, so conservation still holds */
		e.balance = bk_u2f(BK_LOAD_ACQ(&e.tel.tel->slots[slot].balance));
	else
		bk_report_opening_balance(&e.tel, slot,
		                          e.balance); /* conservation's base */
	/* the simulated venue's order-entry session is up (bk_report_session) */
	bk_report_session(&e.tel, slot, 1, bk_now_mono_ns());
	printf("engine: instance %s strategy %s slot %d\n", instance, strategy, slot);
	end = bk_now_mono_ns() + seconds * 1000000000ull;
	for (i = 0; (!iterations || (uint64_t)i < iterations) && bk_now_mono_ns() < end;
	     i++) {
		uint32_t seen;
		enum bk_mode mode;
		bool dead;

		/* alive: the daemon's dead-man switch */
		bk_report_heartbeat(&e.tel, slot, bk_now_mono_ns());
		seen = bk_change_seq(&c);
		/* before every order: the breaker's answer, failing closed */
		mode = bk_check_live(&c, slot, bk_now_mono_ns(), 0);
		/* HALTED only because breakerd is not live (off the fast path) */
		dead = mode == BK_HALTED && bk_check(&c, slot) != BK_HALTED;

		/* the limits change with the mode (or a reload): re-read them
		 * when the breaker says something changed (-EBUSY fails closed) */
		if (!any_acked || seen != acked)
			bk_limits(&c, slot, &e.lim);
		if ((int)mode != last || dead != last_dead)
			report_mode(&c, slot, mode, dead, &e);
		last = (int)mode;
		last_dead = dead;
		trade(&e, mode, i);
		if (i % 3 == 0) /* the simulated venue fills slower than we send */
			fill_one(&e);
		/* the venue's view, every iteration (plain stores): a market-data
		 * tick arrived, and what is working now -- after acting on a halt,
		 * this is what `breaker status` confirms "flat" from */
		bk_report_md_tick(&e.tel, slot, bk_now_mono_ns());
		bk_report_working(&e.tel, slot, (uint64_t)e.nworking, bk_now_mono_ns());
		if (!any_acked || seen != acked) {
			/* acted (above) on a state at least as new as change_seq
			 * seen: say so, and `breaker status` counts this engine as
			 * having acked */
			bk_report_ack(&e.tel, slot, seen, bk_now_mono_ns());
			acked = seen;
			any_acked = true;
		}
		if (mode == BK_HALTED) {
			/* nothing to send: sleep until the breaker publishes a change
			 * (bounded, to keep checking the daemon's heartbeat) */
			struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
			bk_wait_change(&c, seen, &ts);
		} else if (interval_us) {
			usleep((useconds_t)interval_us);
		}
	}
	printf("done: iterations %ld, sent %ld, held back %ld, cancelled %ld, position "
	       "%ld\n",
	       i, e.sent, e.skipped, e.cancelled, e.position);
	bk_tel_detach(&e.tel);
	bk_client_detach(&c);
	return 0;
}
