/*
 * kill -9 at random moments during trip/resume cycles. After every restart:
 * every acknowledged command is in the audit log, the chain verifies, and
 * the state is never less restrictive than the last acknowledged command
 * implies. BK_CRASH_CYCLES sets the number of commands (default 300; the
 * long run, `ctest -L long`, uses 2000).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bk_audit.h"
#include "bk_harness.h"
#include "bk_mode.h"

struct killer {
	pid_t pid;
	unsigned delay_us;
};

static void *kill_later(void *arg)
{
	struct killer *k = arg;

	usleep(k->delay_us);
	kill(k->pid, SIGKILL);
	return NULL;
}

struct seen {
	uint64_t *ids;
	size_t n, cap;
	size_t repairs; /* LOG_REPAIR records: torn tails the crashes left */
};

static int collect(const Breaker__AuditRecord *rec, uint64_t off, void *arg)
{
	struct seen *s = arg;

	(void)off;
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__LOG_REPAIR)
		s->repairs++;
	if (rec->has_request_id && s->n < s->cap)
		s->ids[s->n++] = rec->request_id;
	return 0;
}

static bool in_log(const struct seen *s, uint64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ids[i] == id)
			return true;
	return false;
}

/* One command: a global trip (odd ids) or a forced resume to ACTIVE (even ids). */
static int send_cmd(struct bk_h *h, uint64_t id, bool trip, Breaker__Status *st)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;
	Breaker__Resume r = BREAKER__RESUME__INIT;
	Breaker__Reply *rep = NULL;
	struct bk_rpc rpc;
	int rv;

	req.has_request_id = 1;
	req.request_id = id;
	if (trip) {
		req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
		req.trip = &t;
		t.has_reason_code = 1;
		t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
		t.reason = "crash test";
	} else {
		req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
		req.resume = &r;
		r.has_to = r.has_force = 1;
		r.to = BREAKER__MODE__MODE_ACTIVE;
		r.force = 1;
		r.reason = "crash test";
	}
	if ((rv = bk_rpc_open(&rpc, h->cfg.cmd_url, 2000)) < 0)
		return rv;
	rv = bk_rpc_call(&rpc, &req, &rep);
	if (rv == 0) {
		*st = rep->status;
		breaker__reply__free_unpacked(rep, NULL);
	}
	bk_rpc_close(&rpc);
	return rv;
}

/*
 * The last acknowledged trip must hold unless a resume after it reached the
 * log: a resume whose record is durable may take effect even if the crash
 * ate its acknowledgement. Ids are odd for trips, even for resumes.
 */
static bool resumed_after(const struct seen *s, uint64_t trip_id)
{
	size_t i = s->n;

	while (i > 0 && s->ids[i - 1] != trip_id)
		i--;
	for (; i < s->n; i++)
		if (s->ids[i] % 2 == 0)
			return true;
	return false;
}

static void verify(struct bk_h *h, struct bk_client *c, const uint64_t *acked,
                   size_t n_acked, uint64_t last_trip, struct seen *s)
{
	static char logbuf[1 << 20];
	struct bk_audit_scan scan;
	struct bk_reason r;

	s->n = s->repairs = 0;
	cr_assert_eq(bk_audit_scan(h->cfg.audit_path, collect, s, &scan), 0);
	cr_assert_eq(scan.verdict, BK_AUDIT_OK, "chain verifies: %s", scan.why);
	for (size_t i = 0; i < n_acked; i++)
		cr_assert(in_log(s, acked[i]), "acknowledged request %llu is in the log",
		          (unsigned long long)acked[i]);
	/* a crash between the log's fsync and the head file's write is no
	 * tampering: the head lags, never leads (docs/audit-log.md) */
	bk_read_reason(c, -1, &r);
	cr_assert_neq(r.reason_code, (unsigned)BK_R_AUDIT_CORRUPT,
	              "kill -9 must never look like a damaged log");
	cr_assert_eq(bk_h_slurp(h->log, logbuf, sizeof(logbuf)) >= 0, true);
	cr_assert_null(strstr(logbuf, "FAIL-CLOSED"), "%s", logbuf);
	if (last_trip && !resumed_after(s, last_trip))
		cr_assert_eq(
		    bk_check(c, -1), BK_HALTED,
		    "never less restrictive than the last acknowledged trip (%llu)",
		    (unsigned long long)last_trip);
}

Test(crash, kill9_at_random_moments, .timeout = 600)
{
	const char *env = getenv("BK_CRASH_CYCLES");
	size_t cycles = env ? strtoul(env, NULL, 10) : 300;
	uint64_t *acked = calloc(cycles, sizeof(*acked));
	struct seen s = {.ids = calloc(cycles + 16, sizeof(uint64_t)),
	                 .cap = cycles + 16};
	size_t n_acked = 0, kills = 0;
	uint64_t last_trip = 0; /* id of the last acknowledged command, if a trip */
	struct bk_client c;
	struct bk_h h;

	srand((unsigned)getpid());
	bk_h_init(&h, "crash9", NULL);
	bk_h_start(&h);
	bk_h_attach(&h, &c);
	for (size_t i = 0; i < cycles; i++) {
		bool trip = (i % 2) == 0;
		bool do_kill = rand() % 8 == 0;
		struct killer k = {.pid = h.pid, .delay_us = (unsigned)(rand() % 3000)};
		Breaker__Status st = BREAKER__STATUS__ERR_INTERNAL;
		pthread_t t;

		if (do_kill)
			pthread_create(&t, NULL, kill_later, &k);
		if (send_cmd(&h, i + 1, trip, &st) == 0 && st == BREAKER__STATUS__OK) {
			acked[n_acked++] = i + 1;
			last_trip = trip ? i + 1 : 0;
		}
		if (!do_kill)
			continue;
		pthread_join(t, NULL);
		kills++;
		waitpid(h.pid, NULL, 0);
		h.pid = 0;
		bk_h_start(&h);
		verify(&h, &c, acked, n_acked, last_trip, &s);
	}
	bk_h_stop(&h);
	verify(&h, &c, acked, n_acked, last_trip, &s);
	fprintf(
	    stderr,
	    "crash: %zu commands, %zu acknowledged, %zu kill -9, %zu records checked, "
	    "%zu torn tails repaired\n",
	    cycles, n_acked, kills, s.n, s.repairs);
	cr_assert_gt(kills, 0);
	bk_client_detach(&c);
	bk_h_fini(&h);
	free(acked);
	free(s.ids);
}

/*
 * ---- kill -9 under four concurrent fast-path clients -----------------------
 *
 * Group commit (several callers' records under one durable write, the
 * next batch gathered while one is on its way: bk_loop.c) must not change
 * what an ack means. Four threads, each its own fast-path connection and
 * strategy, trip and force-resume as fast as acks come back while breakerd
 * is killed at random moments. After every restart: each acknowledged
 * command is in the log, the chain verifies, nothing looks damaged, and a
 * strategy whose last acknowledged command was a trip is HALTED unless a
 * resume of it reached the log after that trip.
 */
#define CONC_CLIENTS 4
#define CONC_CAP     8192

struct conc {
	struct bk_h *h;
	char strategy[16];
	uint64_t base, n; /* ids base | n: n odd trips, n even resumes */
	uint64_t *acked;  /* CONC_CAP */
	size_t n_acked;
	uint64_t last_acked;
};

static bool conc_trip(uint64_t id)
{
	return (id & 0xffffffffu) % 2 == 1;
}

static void *conc_run(void *arg)
{
	struct conc *c = arg;
	struct bk_rpc r;

	if (bk_rpc_open(&r, c->h->cfg.local_url, 2000) < 0)
		return NULL;
	for (;;) {
		Breaker__Request req = BREAKER__REQUEST__INIT;
		Breaker__Trip t = BREAKER__TRIP__INIT;
		Breaker__Resume s = BREAKER__RESUME__INIT;
		Breaker__Reply *rep = NULL;
		uint64_t id = c->base | ++c->n;

		req.has_request_id = 1;
		req.request_id = id;
		if (conc_trip(id)) {
			req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
			req.trip = &t;
			t.strategy = c->strategy;
			t.has_reason_code = 1;
			t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
			t.reason = "concurrent crash test";
		} else {
			req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
			req.resume = &s;
			s.strategy = c->strategy;
			s.has_to = s.has_force = 1;
			s.to = BREAKER__MODE__MODE_ACTIVE;
			s.force = 1;
			s.reason = "concurrent crash test";
		}
		if (bk_rpc_call(&r, &req, &rep) != 0)
			break; /* killed */
		if (rep->status == BREAKER__STATUS__OK && c->n_acked < CONC_CAP) {
			c->acked[c->n_acked++] = id;
			c->last_acked = id;
		}
		breaker__reply__free_unpacked(rep, NULL);
	}
	bk_rpc_close(&r);
	return NULL;
}

/* A resume of the same client's strategy in the log after trip_id? */
static bool conc_resumed_after(const struct seen *s, uint64_t trip_id)
{
	size_t i = s->n;

	while (i > 0 && s->ids[i - 1] != trip_id)
		i--;
	for (; i < s->n; i++)
		if (s->ids[i] >> 32 == trip_id >> 32 && !conc_trip(s->ids[i]))
			return true;
	return false;
}

static void conc_verify(struct bk_h *h, struct conc *cs, struct seen *s)
{
	static char logbuf[1 << 20];
	struct bk_audit_scan scan;
	struct bk_client c;
	struct bk_reason r;

	s->n = s->repairs = 0;
	cr_assert_eq(bk_audit_scan(h->cfg.audit_path, collect, s, &scan), 0);
	cr_assert_eq(scan.verdict, BK_AUDIT_OK, "chain verifies: %s", scan.why);
	cr_assert_lt(s->n, s->cap, "every record fits the check");
	bk_h_attach(h, &c);
	bk_read_reason(&c, -1, &r);
	cr_assert_neq(r.reason_code, (unsigned)BK_R_AUDIT_CORRUPT,
	              "kill -9 must never look like a damaged log");
	cr_assert_eq(bk_h_slurp(h->log, logbuf, sizeof(logbuf)) >= 0, true);
	cr_assert_null(strstr(logbuf, "FAIL-CLOSED"), "%s", logbuf);
	for (int k = 0; k < CONC_CLIENTS; k++) {
		struct conc *x = &cs[k];

		for (size_t i = 0; i < x->n_acked; i++)
			cr_assert(in_log(s, x->acked[i]),
			          "acknowledged request %#llx (%s) is in the log",
			          (unsigned long long)x->acked[i], x->strategy);
		if (x->last_acked && conc_trip(x->last_acked) &&
		    !conc_resumed_after(s, x->last_acked))
			cr_assert_eq(bk_check(&c, bk_client_resolve(&c, x->strategy)),
			             BK_HALTED,
			             "%s: never less restrictive than its last "
			             "acknowledged trip %#llx",
			             x->strategy, (unsigned long long)x->last_acked);
	}
	bk_client_detach(&c);
}

Test(crash, kill9_under_four_concurrent_fast_path_clients, .timeout = 600)
{
	struct conc cs[CONC_CLIENTS];
	struct seen s = {.ids = calloc(1 << 17, sizeof(uint64_t)), .cap = 1 << 17};
	size_t rounds = 12, acked = 0;
	struct bk_h h;

	srand((unsigned)getpid());
	bk_h_init(&h, "crashc", "[strategies]\nnames = conc-0, conc-1, conc-2, conc-3\n");
	bk_h_start(&h);
	for (int k = 0; k < CONC_CLIENTS; k++) {
		cs[k] = (struct conc){.h = &h,
		                      .base = (uint64_t)(k + 1) << 32,
		                      .acked = calloc(CONC_CAP, sizeof(uint64_t))};
		snprintf(cs[k].strategy, sizeof(cs[k].strategy), "conc-%d", k);
	}
	for (size_t round = 0; round < rounds; round++) {
		pthread_t t[CONC_CLIENTS];

		for (int k = 0; k < CONC_CLIENTS; k++)
			pthread_create(&t[k], NULL, conc_run, &cs[k]);
		usleep(5000 + (unsigned)(rand() % 40000));
		kill(h.pid, SIGKILL);
		for (int k = 0; k < CONC_CLIENTS; k++)
			pthread_join(t[k], NULL);
		waitpid(h.pid, NULL, 0);
		h.pid = 0;
		bk_h_start(&h);
		conc_verify(&h, cs, &s);
	}
	for (int k = 0; k < CONC_CLIENTS; k++) {
		acked += cs[k].n_acked;
		free(cs[k].acked);
	}
	fprintf(stderr,
	        "crash: 4 concurrent clients, %zu kill -9, %zu commands acknowledged, "
	        "%zu records checked, %zu torn tails repaired\n",
	        rounds, acked, s.n, s.repairs);
	cr_assert_gt(acked, 100, "the clients got work done between the kills");
	bk_h_stop(&h);
	bk_h_fini(&h);
	free(s.ids);
}
