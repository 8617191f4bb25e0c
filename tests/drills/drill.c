/*
 * drill - see drill.h. The engine thread, and the drills' shared steps.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drill.h"

extern char **environ;

#define STEP_NS        1000000ull /* one engine step: 1 ms */
#define OPENING        1000000.0  /* every engine opens with this balance */
#define POS_SOFT_LIMIT 2000.0     /* the engine leans back toward flat beyond it */

uint64_t drill_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double bits_f(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

static uint64_t f_bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

/* xorshift64*: a deterministic venue per seed */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static double rnd01(uint64_t *s)
{
	return (double)(rnd(s) >> 11) / (double)(1ull << 53);
}

/* The first time a fault takes effect; later effects keep the first stamp. */
static void stamp(struct drill_engine *e, uint64_t wall)
{
	uint64_t zero = 0;

	atomic_compare_exchange_strong(&e->fault_wall_ns, &zero, wall);
}

static void record_point(struct drill_engine *e, uint64_t wall, double venue_pos)
{
	uint64_t n = atomic_load_explicit(&e->hist_n, memory_order_relaxed);
	struct drill_point *p = &e->hist[n % DRILL_HISTORY];

	p->wall_ns = wall;
	/* the slot's own counter: it carries on across engine restarts, and it
	 * is what --as-of-fills means */
	p->fills =
	    atomic_load_explicit(&e->t.tel->slots[e->slot].fills, memory_order_relaxed);
	p->venue_pos = venue_pos;
	atomic_store_explicit(&e->hist_n, n + 1, memory_order_release);
}

/* One order: the venue rejects or fills it; the engine hears of the fill or not. */
static void one_order(struct drill_engine *e, int mode, int faults, uint64_t wall,
                      double *venue_pos)
{
	double q = mode == BK_CAUTIOUS ? 100.0 : 100.0 * (double)(1 + rnd(&e->seed) % 5);
	double side, d, cash, fee;

	if (faults & DF_LOST_FILLS)
		side = 1; /* it believes it is flat, and keeps buying */
	else if (e->position > POS_SOFT_LIMIT)
		side = -1;
	else if (e->position < -POS_SOFT_LIMIT)
		side = 1;
	else
		side = rnd01(&e->seed) < 0.5 ? -1 : 1;
	d = side * q;
	/* REDUCE_ONLY: only orders that bring the position toward flat */
	if (mode == BK_REDUCE_ONLY && fabs(e->position + d) >= fabs(e->position))
		return;
	bk_report_order(&e->t, e->slot, 1);
	atomic_fetch_add(&e->orders, 1);
	if ((faults & DF_REJECT_STORM) || rnd01(&e->seed) < e->reject_p) {
		bk_report_reject(&e->t, e->slot, 1);
		atomic_fetch_add(&e->rejects, 1);
		if (faults & DF_REJECT_STORM)
			stamp(e, wall);
		return;
	}
	*venue_pos += d;
	atomic_store(&e->venue_pos_bits, f_bits(*venue_pos));
	cash = -d; /* buying spends cash */
	fee = q * 1e-4;
	if (faults & DF_LOST_FILLS) { /* the drop copy never comes */
		atomic_fetch_add(&e->lost, 1);
		e->lost_cash += cash;
		e->lost_fees += fee;
		e->lost_pos += d;
		if (fabs(*venue_pos - e->position) > e->break_limit)
			stamp(e, wall); /* the break, as a reconciliation would see it */
		return;
	}
	e->position += d;
	e->balance += cash - fee;
	e->cash += cash;
	e->fees += fee;
	bk_report_fill(&e->t, e->slot, cash, fee, e->balance, e->position);
	atomic_fetch_add(&e->fills, 1);
	atomic_store(&e->engine_pos_bits, f_bits(e->position));
}

/* The engine's opening balance, as a statement breakerd takes its balance
 * base from, never from which tick saw what. */
static void drill_state_opening(struct drill_engine *e)
{
	bk_report_opening_balance(&e->t, e->slot, e->balance);
}

static void *engine_main(void *arg)
{
	struct drill_engine *e = arg;
	struct timespec next;
	double venue_pos = drill_venue_pos(e), peak = e->pnl, pnl_before_fault = 0;
	bool leaked = false, bleeding = false;

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&e->stop)) {
		uint64_t mono, wall;
		int faults, mode;

		next.tv_nsec += (long)STEP_NS;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		mono = bk_now_mono_ns();
		wall = drill_wall_ns();
		faults = atomic_load(&e->faults);
		atomic_fetch_add(&e->steps, 1);
		if (faults & DF_DEAD) /* hung: no beat, no orders */
			continue;
		bk_report_heartbeat(&e->t, e->slot, mono);
		atomic_store(&e->last_beat_wall_ns, wall);
		/* fail closed while breakerd is down (a restart) */
		mode = bk_check_live(&e->c, e->slot, mono, 0);
		bk_report_ack(&e->t, e->slot, bk_change_seq(&e->c), mono);
		atomic_store(&e->mode_seen, mode);
		/* marks: a small random walk; a bleed under DF_DRAWDOWN, undone
		 * (the bad marks corrected) when the fault is switched off */
		if (faults & DF_DRAWDOWN) {
			if (!bleeding)
				pnl_before_fault = e->pnl;
			bleeding = true;
			e->pnl -= e->dd_per_ms;
			if (peak - e->pnl >
			    e->dd_limit) /* the breach, as the rule sees it */
				stamp(e, wall);
		} else {
			if (bleeding)
				e->pnl = pnl_before_fault;
			bleeding = false;
			e->pnl += rnd01(&e->seed) - 0.5;
		}
		peak = e->pnl > peak ? e->pnl : peak;
		bk_report_marks(&e->t, e->slot, e->position, fabs(e->position), e->pnl);
		if (atomic_exchange(&e->want_resync, false) && e->lost_pos != 0) {
			/* the missed fills, booked from the drop copy as one */
			e->position += e->lost_pos;
			e->balance += e->lost_cash - e->lost_fees;
			e->cash += e->lost_cash;
			e->fees += e->lost_fees;
			bk_report_fill(&e->t, e->slot, e->lost_cash, e->lost_fees,
			               e->balance, e->position);
			atomic_fetch_add(&e->fills, 1);
			atomic_store(&e->engine_pos_bits, f_bits(e->position));
			e->lost_cash = e->lost_fees = e->lost_pos = 0;
		}
		if (atomic_exchange(&e->want_open, false))
			drill_state_opening(e);
		if ((faults & DF_LEAK) && !leaked) { /* money gone, no fill to show */
			leaked = true;
			e->balance -= e->leak_amount;
			bk_report_balance(&e->t, e->slot, e->balance);
			stamp(e, wall);
		}
		if (mode == BK_HALTED) {
			atomic_fetch_add(&e->halted_steps, 1);
		} else {
			for (int i = 0; i < e->orders_per_ms; i++)
				one_order(e, mode, faults, wall, &venue_pos);
		}
		record_point(e, wall, venue_pos);
	}
	return NULL;
}

void drill_engine_start(struct drill_engine *e, struct bk_h *h, const char *strategy,
                        uint64_t seed)
{
	int rv = -EAGAIN;

	memset(e, 0, sizeof(*e));
	e->h = h;
	snprintf(e->name, sizeof(e->name), "%s", strategy);
	e->seed = seed ? seed : 88172645463325252ull;
	e->reject_p = 0.02;
	e->orders_per_ms = 1;
	e->break_limit = 1000;
	e->balance = OPENING;
	bk_h_attach(h, &e->c);
	for (int i = 0; i < 200 && rv; i++)
		if ((rv = bk_tel_attach(&e->t, h->instance)) != 0)
			usleep(10000);
	cr_assert_eq(rv, 0, "telemetry segment: %s", strerror(-rv));
	e->slot = bk_client_resolve(&e->c, strategy);
	cr_assert_geq(e->slot, 0, "strategy %s is registered", strategy);
}

void drill_engine_go(struct drill_engine *e)
{
	drill_state_opening(e);
	bk_report_heartbeat(&e->t, e->slot, bk_now_mono_ns());
	/* the first fill may come right after the statement */
	cr_assert_eq(pthread_create(&e->th, NULL, engine_main, e), 0);
}

void drill_engine_restart(struct drill_engine *e)
{
	struct drill_engine *old = malloc(sizeof(*old));
	double venue;

	cr_assert_not_null(old);
	drill_engine_stop(e);
	memcpy(old, e, sizeof(*old));
	venue = drill_venue_pos(old);
	drill_engine_start(e, old->h, old->name, old->seed);
	/* the new process rebuilds its book from the venue: the account's
	 * balance and position carry on (they do not reset with the process) */
	e->position = old->position;
	e->balance = old->balance;
	e->cash = old->cash;
	e->fees = old->fees;
	e->pnl = old->pnl;
	e->reject_p = old->reject_p;
	e->orders_per_ms = old->orders_per_ms;
	e->dd_per_ms = old->dd_per_ms;
	e->dd_limit = old->dd_limit;
	e->break_limit = old->break_limit;
	atomic_store(&e->fills, atomic_load(&old->fills));
	atomic_store(&e->orders, atomic_load(&old->orders));
	atomic_store(&e->rejects, atomic_load(&old->rejects));
	atomic_store(&e->lost, atomic_load(&old->lost));
	atomic_store(&e->venue_pos_bits, atomic_load(&old->venue_pos_bits));
	atomic_store(&e->engine_pos_bits, atomic_load(&old->engine_pos_bits));
	(void)venue;
	free(old);
	drill_engine_go(e);
}

void drill_engine_stop(struct drill_engine *e)
{
	atomic_store(&e->stop, true);
	pthread_join(e->th, NULL);
	bk_report_heartbeat(&e->t, e->slot, 0); /* a clean stop disarms the switch */
	bk_tel_detach(&e->t);
	bk_client_detach(&e->c);
}

uint64_t drill_fault(struct drill_engine *e, int faults, bool on)
{
	uint64_t wall = drill_wall_ns();

	if (on) {
		atomic_store(&e->fault_wall_ns, 0);
		atomic_fetch_or(&e->faults, faults);
	} else {
		atomic_fetch_and(&e->faults, ~faults);
	}
	return wall;
}

double drill_venue_pos(struct drill_engine *e)
{
	return bits_f(atomic_load(&e->venue_pos_bits));
}

bool drill_point_ago(struct drill_engine *e, unsigned lag_ms, struct drill_point *out)
{
	uint64_t n = atomic_load_explicit(&e->hist_n, memory_order_acquire);
	uint64_t cut = drill_wall_ns() - (uint64_t)lag_ms * 1000000ull;

	for (uint64_t k = n; k > 0 && n - k < DRILL_HISTORY - 64; k--) {
		struct drill_point p = e->hist[(k - 1) % DRILL_HISTORY];
		if (p.wall_ns <= cut) {
			*out = p;
			/* not overwritten while we copied it */
			return atomic_load(&e->hist_n) - (k - 1) < DRILL_HISTORY;
		}
	}
	return false;
}

static long wait_mode(struct drill_engine *e, int slot, int want, int deadline_ms)
{
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		long ms =
		    (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if ((int)bk_check(&e->c, slot) == want)
			return ms;
		if (ms > deadline_ms)
			return -1;
		usleep(1000);
	}
}

long drill_wait_mode(struct drill_engine *e, int want, int deadline_ms)
{
	return wait_mode(e, e->slot, want, deadline_ms);
}

long drill_wait_global(struct drill_engine *e, int want, int deadline_ms)
{
	return wait_mode(e, BK_GLOBAL_ONLY, want, deadline_ms);
}

#define ARGS_MAX 24

/*
 * The CLI with --config h->config and args; stdout and stderr into out. Not
 * bk_h_cli: the reconciler thread runs the CLI while the drill does, and
 * each needs its own output file.
 */
static int cli_argv(struct bk_h *h, char *out, size_t len, char **args)
{
	const char *bin = getenv("BREAKER_CLI") ? getenv("BREAKER_CLI") : "breaker";
	char *argv[ARGS_MAX + 4] = {(char *)bin, "--config", h->config};
	posix_spawn_file_actions_t fa;
	char path[256];
	int argc = 3, st;
	pid_t pid;

	for (int i = 0; args[i] && i < ARGS_MAX; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	snprintf(path, sizeof(path), "%s/cli-%ld.out", h->dir, (long)gettid());
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, path, O_WRONLY | O_CREAT | O_TRUNC,
	                                 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (posix_spawn(&pid, bin, &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		snprintf(out, len, "cannot run %s", bin);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	bk_h_slurp(path, out, len);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int cli_va(struct bk_h *h, char *out, size_t len, va_list ap)
{
	char *a[ARGS_MAX + 1] = {0};
	int n = 0;

	while (n < ARGS_MAX && (a[n] = va_arg(ap, char *)) != NULL)
		n++;
	a[n] = NULL;
	return cli_argv(h, out, len, a);
}

void drill_cli(struct bk_h *h, int want, ...)
{
	static char out[1 << 16];
	va_list ap;
	int rv;

	va_start(ap, want);
	rv = cli_va(h, out, sizeof(out), ap);
	va_end(ap);
	cr_assert_eq(rv, want, "breaker exited %d, not %d: %s", rv, want, out);
}

int drill_cli_out(struct bk_h *h, char *out, size_t len, ...)
{
	va_list ap;
	int rv;

	va_start(ap, len);
	rv = cli_va(h, out, len, ap);
	va_end(ap);
	return rv;
}

/*
 * Each incident of the drill's period, as its post-mortem (`breaker incident
 * export ID`, the template): in the template's shape, and kept in
 * $BK_DRILL_ARTIFACTS/drill-<tag>-<ID>.md to read.
 */
static void drill_postmortems(struct bk_h *h, const char *tag, const char *period)
{
	static char md[1 << 20];
	const char *dir = getenv("BK_DRILL_ARTIFACTS"),
	           *p = strstr(period, "\"incidents\":[");
	const char *end = p ? strstr(p, "],\"reasons\":") : NULL;
	char id[24], path[512];
	int n = 0;
	FILE *f;

	for (; p && (p = strstr(p, "{\"id\":\"")) != NULL && p < end; p += 7, n++) {
		snprintf(id, sizeof(id), "%.15s", p + 7);
		id[strcspn(id, "\"")] = '\0';
		cr_assert_eq(bk_h_cli(h, md, sizeof(md), "incident", "export", id, NULL),
		             0, "%s: export %s: %s", tag, id, md);
		cr_assert(strstr(md, "| Severity | P") && strstr(md, "## Impact") &&
		              strstr(md, "## Timeline") && strstr(md, "## Resolution") &&
		              strstr(md, "| # | action | owner | due date | status |"),
		          "%s: the post-mortem of %s is not the template:\n%s", tag, id,
		          md);
		if (!dir)
			continue;
		mkdir(dir, 0755);
		snprintf(path, sizeof(path), "%s/drill-%s-%s.md", dir, tag, id);
		if ((f = fopen(path, "w"))) {
			fputs(md, f);
			fclose(f);
		}
	}
	/* a trip always opens or joins an incident; a quiet period has none */
	if (strstr(period, "\"summary\":{\"trips\":0,"))
		cr_assert_eq(n, 0, "%s: incidents with no trip: %s", tag, period);
	else
		cr_assert_gt(n, 0, "%s: the period names no incident: %s", tag, period);
}

void drill_check_incident(struct bk_h *h, const char *tag, ...)
{
	static char out[1 << 20], cmd[4096], verdict[8192];
	const char *checker = getenv("BK_DRILL_CHECK");
	char path[256], vpath[300];
	size_t off;
	va_list ap;
	FILE *f;
	int rv;

	cr_assert_not_null(checker, "BK_DRILL_CHECK (check_incident.py) not set");
	rv = bk_h_cli(h, out, sizeof(out), "incident", "export", "--since", "1h",
	              "--format", "json", NULL);
	cr_assert_eq(rv, 0, "incident export: %s", out);
	snprintf(path, sizeof(path), "%s/%s.json", h->dir, tag);
	snprintf(vpath, sizeof(vpath), "%s/%s.verdict", h->dir, tag);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs(out, f);
	fclose(f);
	off = (size_t)snprintf(cmd, sizeof(cmd), "python3 %s %s", checker, path);
	va_start(ap, tag);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
		off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, " '%s'", a);
	va_end(ap);
	snprintf(cmd + off, sizeof(cmd) - off, " > %s 2>&1", vpath);
	rv = system(cmd);
	bk_h_slurp(vpath, verdict, sizeof(verdict));
	fprintf(stderr, "%s", verdict); /* the measured figures, pass or fail */
	cr_assert_eq(rv, 0, "%s: incident export does not match the drill:\n%s", tag,
	             verdict);
	drill_postmortems(h, tag, out);
}

void drill_staged_resume(struct bk_h *h, const char *strategy, const char *reason)
{
	static char out[1 << 16];
	char *scope[2] = {strategy ? "--strategy" : NULL, (char *)strategy};

	/* a stage may be refused for want of fresh evidence (a rate rule's
	 * guard): the engines trade at the stage reached, and it is retried */
	for (int stage = 0; stage < 3; stage++) {
		int rv = -1;
		for (int i = 0; i < 100 && rv != 0; i++) {
			rv = strategy
			         ? drill_cli_out(h, out, sizeof(out), "resume", scope[0],
			                         scope[1], "--reason", reason, NULL)
			         : drill_cli_out(h, out, sizeof(out), "resume",
			                         "--reason", reason, NULL);
			if (rv == 1 && strstr(out, "ERR_CONDITION_HOLDS"))
				usleep(100000);
			else if (rv != 0)
				break;
		}
		cr_assert_eq(rv, 0, "resume %s stage %d: %s",
		             strategy ? strategy : "global", stage + 1, out);
	}
}

/* ---- the reconciler -------------------------------------------------------- */

int drill_reconcile_now(struct bk_h *h, struct drill_engine *e, unsigned lag_ms,
                        char *out, size_t len)
{
	struct drill_point p;
	char pos[96], fills[32];

	if (!drill_point_ago(e, lag_ms, &p)) {
		snprintf(out, len, "no venue point %u ms old yet", lag_ms);
		return -1;
	}
	snprintf(pos, sizeof(pos), "%s=%.4f", e->name, p.venue_pos);
	snprintf(fills, sizeof(fills), "%llu", (unsigned long long)p.fills);
	return drill_cli_out(h, out, len, "reconcile", pos, "--as-of-fills", fills, NULL);
}

static void *reconciler_main(void *arg)
{
	struct drill_reconciler *r = arg;
	char out[2048];

	while (!atomic_load(&r->stop)) {
		for (unsigned slept = 0; slept < r->period_ms && !atomic_load(&r->stop);
		     slept += 10)
			usleep(10000);
		if (atomic_load(&r->paused) || atomic_load(&r->stop))
			continue;
		pthread_mutex_lock(&r->lock);
		for (int i = 0; i < r->n; i++) {
			unsigned lag = r->lag_min;
			int rv;

			if (r->lag_max > r->lag_min)
				lag += (unsigned)(rnd(&r->seed) %
				                  (r->lag_max - r->lag_min + 1));
			rv = drill_reconcile_now(r->h, r->e[i], lag, out, sizeof(out));
			atomic_fetch_add(&r->posted, 1);
			if (rv == 0 && strstr(out, ": ok"))
				atomic_fetch_add(&r->ok, 1);
			else if (rv == 0 && strstr(out, ": unknown"))
				atomic_fetch_add(&r->unknown, 1);
			else if (rv == 0 && strstr(out, ": break"))
				atomic_fetch_add(&r->brk, 1);
			else
				atomic_fetch_add(&r->failed, 1);
			if (rv != 0 || !strstr(out, ": ok"))
				snprintf(r->last_out, sizeof(r->last_out), "%s", out);
		}
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

void drill_reconciler_start(struct drill_reconciler *r)
{
	if (!r->seed)
		r->seed = 0x9e3779b97f4a7c15ull;
	pthread_mutex_init(&r->lock, NULL);
	cr_assert_eq(pthread_create(&r->th, NULL, reconciler_main, r), 0);
}

void drill_reconciler_stop(struct drill_reconciler *r)
{
	atomic_store(&r->stop, true);
	pthread_join(r->th, NULL);
}
