/*
 * test_netns - partition scenarios of the firm-wide mode (issue 15 item 6):
 * a real 3-member etcd cluster and two real breakerd "hosts", each in a
 * network namespace of its own, links cut for real with nftables
 * (bk_netns_harness). Engines read the hosts' segments with the real client
 * header; operators use the real CLI (run inside the host's namespace).
 *
 * What is asserted comes from what a user sees: the engines' view
 * (bk_check_live), and each host's own audit log (`breaker audit --json`):
 *  - a host never stays ACTIVE past T1 without a quorum read: its
 *    authority_lost REDUCE_ONLY record comes at T1 (and HALTED at T2), never
 *    early, and only where contact was really lost;
 *  - a committed firm trip reaches every connected host (FIRM_APPLIED with
 *    its revision), or that host failed closed, within T2 of the commit;
 *  - nothing leaves HALTED without a resume: every release in a log is an
 *    operator's RESUME made after contact came back (FIRM_LINK), or a
 *    FIRM_APPLIED deletion at the revision of a firm resume the test made;
 *  - revisions are applied exactly once each and in order after a heal;
 *  - the healthy side never fails closed, leader change included, with the
 *    documented T1.
 * Bounds are generous (SLACK_MS): a loaded 2-CPU box stalls things; what is
 * asserted is the order of events and that bounds hold, not a latency.
 * Times measured are printed ("netns:" lines) for docs/firmwide.md.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "bk_etcd_kv.h"
#include "bk_harness.h"
#include "bk_mode.h"
#include "bk_netns_harness.h"

#define WAIT_MS  20000 /* any outcome: a loaded 2-CPU CI box is slow */
#define SLACK_MS 1500  /* on top of a bound: loop ticks, scheduling */
#define T1_SHORT 1500
#define T2_SHORT 3000
#define PROBE_MS 100 /* probe_period_ms default */
#define SHORT_T                                                                          \
	"authority_t1_ms = 1500\nauthority_t2_ms = 3000\n[strategies]\nnames = s0, "     \
	"s1, s2, s3, s4\n"
#define NSTRAT 5

static struct bk_nn W;
static struct host {
	struct bk_h h;
	struct bk_client c;
	bool up;
	uint64_t worst_contact_ms; /* longest quorum-contact gap the guard saw */
} H[BK_NN_HOSTS_MAX];
static unsigned T1 = 3500, T2 = 5000; /* this test's, for the checks */

static void world_down(void)
{
	for (int j = 0; j < BK_NN_HOSTS_MAX; j++)
		if (H[j].up) {
			bk_client_detach(&H[j].c);
			bk_h_fini(&H[j].h);
			H[j].up = false;
		}
	bk_nn_down(&W);
}

/* Host j's CLI, run in its namespace: stdout and stderr in out. */
static int cli(int j, char *out, size_t len, ...)
{
	char *args[24];
	int n = 0, rc;
	va_list ap;

	va_start(ap, len);
	while (n < 23 && (args[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	args[n] = NULL;
	bk_nn_enter(&W, BK_NN_HOST(j));
	rc = bk_h_cli_as(&H[j].h, -1, -1, NULL, args, out, len);
	bk_nn_hub(&W);
	return rc;
}

/* The engine's view of global on host j (2 s of heartbeat allowance: a
 * loaded box stalls the loop; valid_until and the word are what counts). */
static enum bk_mode view(int j)
{
	return bk_check_live(&H[j].c, BK_GLOBAL_ONLY, bk_now_mono_ns(), 2000000000ull);
}

static bool auth_lost_on(int j)
{
	return atomic_load(&H[j].c.shm->global.latches) & (1u << BK_R_AUTHORITY_LOST);
}

/* Hosts in mask have the quorum: they must never fail closed. */
static void guard(unsigned mask)
{
	uint64_t now = bk_now_mono_ns();

	for (int j = 0; j < W.n_hosts; j++) {
		if (!(mask & (1u << j)))
			continue;
		uint64_t c = atomic_load(&H[j].c.shm->firm_contact_ns);
		uint64_t vu = atomic_load(&H[j].c.shm->valid_until_ns);
		uint64_t age = now > c ? (now - c) / 1000000 : 0;
		if (age > H[j].worst_contact_ms)
			H[j].worst_contact_ms = age;
		cr_assert(!auth_lost_on(j),
		          "host %d failed closed (authority_lost) though the quorum was "
		          "reachable; last contact %llu ms ago",
		          j, (unsigned long long)age);
		cr_assert_gt(vu, now, "host %d: valid_until passed (contact %llu ms ago)",
		             j, (unsigned long long)age);
	}
}

/* What host j's engines see and why, for a failure message. */
static const char *state_of(int j)
{
	static char buf[256];
	uint64_t now = bk_now_mono_ns(), w = atomic_load(&H[j].c.shm->global.state);
	uint64_t c = atomic_load(&H[j].c.shm->firm_contact_ns);

	snprintf(buf, sizeof(buf),
	         "host %d reads %s (word %s, reason %u, latches 0x%x), contact %lld ms "
	         "ago, firm revision %llu",
	         j, bk_mode_name(view(j)), bk_mode_name(BK_STATE_MODE(w)),
	         (unsigned)BK_STATE_REASON(w),
	         (unsigned)atomic_load(&H[j].c.shm->global.latches),
	         c ? (long long)(now - c) / 1000000 : -1LL,
	         (unsigned long long)atomic_load(&H[j].c.shm->firm_revision));
	return buf;
}

/* Poll until host j's engine reads want (global), guarding the others, up
 * to ms: the CLOCK_MONOTONIC ms when it did, 0 if it did not. */
static uint64_t until(int j, enum bk_mode want, unsigned ms, unsigned steady)
{
	uint64_t end = bk_h_mono_ms() + ms;

	do {
		guard(steady);
		if (view(j) == want)
			return bk_h_mono_ms();
		usleep(2000);
	} while (bk_h_mono_ms() < end);
	return 0;
}

/* Guard the hosts in steady for ms. */
static void steady_for(unsigned ms, unsigned steady)
{
	uint64_t end = bk_h_mono_ms() + ms;

	while (bk_h_mono_ms() < end) {
		guard(steady);
		usleep(5000);
	}
}

static void world_up(const char *tag, int n, const char *extra)
{
	char ini[1024], htag[32], name[16];

	bk_nn_up(&W, tag, n);
	for (int j = 0; j < n; j++) {
		snprintf(name, sizeof(name), "h%d", j);
		snprintf(htag, sizeof(htag), "%s-h%d", tag, j);
		bk_ec_ini(&W.ec, tag, name, extra, ini, sizeof(ini));
		bk_h_init(&H[j].h, htag, ini);
		bk_nn_enter(&W, BK_NN_HOST(j));
		bk_h_start(&H[j].h);
		bk_nn_hub(&W);
		H[j].up = true;
		bk_h_attach(&H[j].h, &H[j].c);
	}
	for (int j = 0; j < n; j++)
		cr_assert(until(j, BK_ACTIVE, WAIT_MS, 0), "never ACTIVE: %s",
		          state_of(j));
}

/* "... at etcd revision N" in a CLI's output; -1 if absent. */
static long long rev_in(const char *out)
{
	const char *p = strstr(out, "at etcd revision ");

	return p ? atoll(p + 17) : -1;
}

static char last_out[8192]; /* the last firm()'s CLI output */

/* A firm trip from host j: its revision. */
static long long firm(int j, const char *what, const char *arg)
{
	char *out = last_out;
	int rc;

	if (arg)
		rc = cli(j, out, sizeof(last_out), "--timeout", "2000", what, arg,
		         "--firm", "--reason", "netns", NULL);
	else
		rc = cli(j, out, sizeof(last_out), "--timeout", "2000", "trip", what,
		         "--firm", "--reason", "netns", NULL);
	cr_assert_eq(rc, 0, "%s --firm: %d: %s", what, rc, out);
	cr_assert_gt(rev_in(out), 0, "%s", out);
	return rev_in(out);
}

/* A firm release of global manual_halt at revision rev, from host j. */
static long long firm_release(int j, long long rev)
{
	static char out[8192];
	char seen[32];
	int rc;

	snprintf(seen, sizeof(seen), "%lld", rev);
	rc = cli(j, out, sizeof(out), "--timeout", "2000", "resume", "--firm",
	         "--revision", seen, "--to", "active", "--force", "--reason",
	         "netns: all clear", NULL);
	cr_assert_eq(rc, 0, "resume --firm: %d: %s", rc, out);
	cr_assert_gt(rev_in(out), rev, "%s", out);
	return rev_in(out);
}

/* The operator's resume of authority_lost on host j, retried while it is
 * refused (contact not proven yet, or the mirror not caught up). */
static void resume_authority(int j)
{
	static char out[8192];
	uint64_t end = bk_h_mono_ms() + WAIT_MS;
	int rc;

	do {
		rc = cli(j, out, sizeof(out), "resume", "--reason-code", "authority_lost",
		         "--to", "active", "--force", "--reason", "netns: healed", NULL);
	} while (rc != 0 && bk_h_mono_ms() < end && usleep(100000) == 0);
	cr_assert_eq(rc, 0, "host %d: resume authority_lost: %s", j, out);
	fprintf(stderr, "netns: host %d resume: %s", j, out);
}

/* ---- the audit log, as `breaker audit --json` prints it ---- */

#define RECS_MAX 512

struct rec {
	char kind[24], reason_code[24], latch_mode[16], from[16], to[16];
	char reason[256];
	bool global, deleted;
	uint64_t mono_ms;
	long long firm_rev;
	unsigned uid;
};

static void jstr(const cJSON *o, const char *k, char *buf, size_t len)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);

	snprintf(buf, len, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int audit_of(int j, struct rec *r)
{
	static char out[1 << 20];
	int n = 0, rc;

	rc = cli(j, out, sizeof(out), "audit", "--json", NULL);
	cr_assert_eq(rc, 0, "audit --json: %s", out);
	for (char *line = strtok(out, "\n"); line && n < RECS_MAX;
	     line = strtok(NULL, "\n")) {
		cJSON *o = line[0] == '{' ? cJSON_Parse(line) : NULL;
		if (!o)
			continue;
		struct rec *x = &r[n++];
		memset(x, 0, sizeof(*x));
		jstr(o, "kind", x->kind, sizeof(x->kind));
		jstr(o, "reason_code", x->reason_code, sizeof(x->reason_code));
		jstr(o, "latch_mode", x->latch_mode, sizeof(x->latch_mode));
		jstr(o, "from_mode", x->from, sizeof(x->from));
		jstr(o, "to_mode", x->to, sizeof(x->to));
		jstr(o, "reason", x->reason, sizeof(x->reason));
		x->global = !cJSON_GetObjectItem(o, "strategy") &&
		            !cJSON_GetObjectItem(o, "group");
		x->deleted = cJSON_IsTrue(cJSON_GetObjectItem(o, "firm_deleted"));
		x->mono_ms = (uint64_t)(jnum(o, "mono_ns") / 1e6);
		x->firm_rev = (long long)jnum(o, "firm_revision");
		x->uid = (unsigned)jnum(o, "uid");
		cJSON_Delete(o);
	}
	return n;
}

/* Host j's last records (kind, reason code, latch mode, reason), for a
 * failure message. */
static const char *log_tail(int j)
{
	static struct rec t[RECS_MAX];
	static char buf[4096];
	int n = audit_of(j, t), off = 0;

	buf[0] = '\0';
	for (int i = n > 12 ? n - 12 : 0; i < n && off < (int)sizeof(buf) - 1; i++)
		off +=
		    snprintf(buf + off, sizeof(buf) - (size_t)off, "\n  %llu %s %s %s %s",
		             (unsigned long long)t[i].mono_ms, t[i].kind,
		             t[i].reason_code, t[i].latch_mode, t[i].reason);
	return buf;
}

static bool is(const struct rec *x, const char *kind)
{
	return strcmp(x->kind, kind) == 0;
}

static bool auth_trip(const struct rec *x, const char *mode)
{
	return is(x, "TRIP") && x->global && !strcmp(x->reason_code, "authority_lost") &&
	       !strcmp(x->latch_mode, mode);
}

/* The age at the trip, as breakerd wrote it ("... for N ms (T1 ...") */
static long age_in(const struct rec *x)
{
	const char *p = strstr(x->reason, " for ");

	return p ? atol(p + 5) : -1;
}

static int count(const struct rec *r, int n, bool (*pred)(const struct rec *))
{
	int k = 0;

	for (int i = 0; i < n; i++)
		k += pred(&r[i]);
	return k;
}

static bool any_auth(const struct rec *x)
{
	return !strcmp(x->reason_code, "authority_lost") &&
	       (is(x, "TRIP") || is(x, "RESUME"));
}

/*
 * The properties every host's log must keep, whatever the scenario:
 *  - each authority_lost trip says an age past its stage's bound (never
 *    early) and within it plus slack (never late);
 *  - every RESUME of authority_lost comes after a FIRM_LINK (contact back)
 *    that follows the last authority_lost trip, and is an operator's;
 *  - every firm latch deletion applied is at a revision in releases[]
 *    (a resume the test made), and nothing else lowers global.
 */
static void log_properties(int j, const struct rec *r, int n, const long long *releases,
                           int n_rel)
{
	bool linked = true;
	uint64_t last_resume = 0;

	for (int i = 0; i < n; i++) {
		const struct rec *x = &r[i];
		if (auth_trip(x, "REDUCE_ONLY") || auth_trip(x, "HALTED")) {
			long bound = auth_trip(x, "HALTED") ? (long)T2 : (long)T1;
			cr_assert(age_in(x) >= bound && age_in(x) <= bound + SLACK_MS,
			          "host %d: %s at age %ld ms (bound %ld): %s", j,
			          x->latch_mode, age_in(x), bound, x->reason);
			linked = false;
		}
		if (is(x, "FIRM_LINK"))
			linked = true;
		/* a loss of contact that began well before the last resume of
		 * authority_lost: that resume was made without contact */
		if (last_resume &&
		    (auth_trip(x, "REDUCE_ONLY") || auth_trip(x, "HALTED")))
			cr_assert_geq(
			    (long long)x->mono_ms - age_in(x),
			    (long long)last_resume - (long long)T1,
			    "host %d: authority_lost resumed at %llu while contact "
			    "was lost since %lld: %s",
			    j, (unsigned long long)last_resume,
			    (long long)x->mono_ms - age_in(x), x->reason);
		if (is(x, "RESUME") && !strcmp(x->reason_code, "authority_lost")) {
			cr_assert(linked,
			          "host %d: authority_lost resumed before contact came "
			          "back (no FIRM_LINK after the trip)",
			          j);
			cr_assert_eq(x->uid, 0, "host %d: resume not by the operator", j);
			last_resume = x->mono_ms;
		}
		if (is(x, "FIRM_APPLIED") && x->deleted) {
			bool known = false;
			for (int k = 0; k < n_rel; k++)
				known |= releases[k] == x->firm_rev;
			cr_assert(known,
			          "host %d: firm latch released at revision %lld, "
			          "which no resume made",
			          j, x->firm_rev);
		}
		if (x->global && !strcmp(x->from, "HALTED") && x->to[0] &&
		    strcmp(x->to, "HALTED"))
			cr_assert(is(x, "RESUME"), "host %d: left HALTED by a %s record",
			          j, x->kind);
	}
}

/* Host j applied revision rev (FIRM_APPLIED) exactly once: the record's
 * CLOCK_MONOTONIC ms. */
static uint64_t applied_at(int j, const struct rec *r, int n, long long rev)
{
	uint64_t at = 0;
	int k = 0;

	for (int i = 0; i < n; i++)
		if (is(&r[i], "FIRM_APPLIED") && r[i].firm_rev == rev) {
			at = r[i].mono_ms;
			k++;
		}
	cr_assert_eq(k, 1, "host %d applied revision %lld %d times", j, rev, k);
	return at;
}

/* The first authority_lost trip of host j after t (ms), 0 if none. */
static uint64_t failed_closed_at(const struct rec *r, int n, uint64_t t)
{
	for (int i = 0; i < n; i++)
		if (auth_trip(&r[i], "REDUCE_ONLY") && r[i].mono_ms >= t)
			return r[i].mono_ms;
	return 0;
}

static struct rec R[RECS_MAX], R2[RECS_MAX];

/* No gaps: the cut host applied the same firm revisions, in the same order,
 * as the host that was never cut (it saw every change as it happened). */
static void same_applied(int healthy, int cut)
{
	int na = audit_of(healthy, R2), nb = audit_of(cut, R), i = 0, k = 0;

	for (;;) {
		while (i < na && !is(&R2[i], "FIRM_APPLIED"))
			i++;
		while (k < nb && !is(&R[k], "FIRM_APPLIED"))
			k++;
		if (i == na || k == nb)
			break;
		cr_assert_eq(R2[i].firm_rev, R[k].firm_rev,
		             "host %d applied revision %lld where host %d applied %lld",
		             cut, R[k].firm_rev, healthy, R2[i].firm_rev);
		i++, k++;
	}
	cr_assert(i == na && k == nb, "host %d applied %s revisions than host %d", cut,
	          i < na ? "fewer" : "more", healthy);
}

/* ---- scenarios ---- */

/* One member cut off both ways (victim: the leader or a follower). The
 * healthy hosts never fail closed; a firm trip made meanwhile reaches both
 * hosts; after the heal a firm resume releases both. */
static void member_cut(const char *tag, bool leader, bool peers_only)
{
	long long rels[1], trip, term0 = 0, term1 = 0;
	int lead = -1, victim, n;
	const char *what = leader       ? "leader"
	                   : peers_only ? "follower (from its peers only)"
	                                : "follower";

	/* the documented T1/T2 (3500/5000 ms): on this loaded 2-CPU box 2 of
	 * 22 leader cuts went past 2500 ms without contact, the default until
	 * then (docs/firmwide.md, "The documented T1 and a leader change"); the
	 * longest gap is printed each run */
	world_up(tag, 2, NULL);
	/* the same leader twice, half a second apart: a settled cluster */
	for (int k = 0, again = -2; k < 20 && lead != again; k++) {
		cr_assert_geq(lead = bk_nn_leader(&W, 0, &term0), 0, "no leader");
		usleep(500 * 1000);
		again = bk_nn_leader(&W, 0, NULL);
	}
	/* the follower cut is member 0, the first endpoint every host's watch,
	 * probe and forwarder start on: leadership moved away from it first */
	if (!leader && lead == 0) {
		cr_assert(bk_nn_move_leader(&W, 1), "could not move the leadership");
		for (int k = 0, again = -2; k < 20 && lead != again; k++) {
			cr_assert_geq(lead = bk_nn_leader(&W, 0, &term0), 0, "no leader");
			usleep(500 * 1000);
			again = bk_nn_leader(&W, 0, NULL);
		}
		cr_assert_neq(lead, 0);
	}
	victim = leader ? lead : 0;
	if (peers_only) { /* from the other members; hosts still reach it */
		int peers[] = {1, 2};
		bk_nn_cut_from(&W, victim, peers, 2);
	} else
		bk_nn_cut(&W, victim, BK_NN_BOTH);
	steady_for(T2 + 1000, 3);
	/* what happened in etcd, asked of the two members still reachable */
	int now = bk_nn_leader(&W, 1u << victim, &term1);
	fprintf(stderr,
	        "netns: %s cut: member %d cut; leader %d term %lld -> %d term %lld\n",
	        what, victim, lead, term0, now, term1);
	if (leader)
		cr_assert(now >= 0 && now != victim && term1 > term0,
		          "no new leader after the leader was cut");
	else
		cr_assert_eq(
		    now, lead,
		    "a cut follower deposed the leader"); /* past T2: neither host may
		                                             fail closed */
	uint64_t tc = bk_h_mono_ms();
	trip = firm(0, "manual_halt", NULL);
	uint64_t tcli = bk_h_mono_ms();
	for (int j = 0; j < 2; j++)
		cr_assert(until(j, BK_HALTED, WAIT_MS, 3), "missed the trip: %s",
		          state_of(j));
	bk_nn_heal(&W, victim);
	cr_assert(bk_ec_healthy(&W.ec, WAIT_MS));
	rels[0] = firm_release(1, trip);
	for (int j = 0; j < 2; j++)
		cr_assert(until(j, BK_ACTIVE, WAIT_MS, 3), "not released: %s",
		          state_of(j));
	uint64_t at[2], fwd = 0;
	for (int j = 0; j < 2; j++) {
		n = audit_of(j, R);
		cr_assert_eq(count(R, n, any_auth), 0, "host %d failed closed", j);
		log_properties(j, R, n, rels, 1);
		at[j] = applied_at(j, R, n, trip);
		applied_at(j, R, n, rels[0]);
		for (int i = 0; j == 0 && i < n && !fwd; i++)
			if (is(&R[i], "FIRM_FORWARDED") && R[i].mono_ms >= tc)
				fwd = R[i].mono_ms;
	}
	fprintf(stderr,
	        "netns: %s cut: worst contact gap h0 %llu ms, h1 %llu ms (T1 %u); firm "
	        "trip from CLI start: forwarded +%lld ms, applied h0 +%lld ms, h1 +%lld "
	        "ms, CLI done +%llu ms\n",
	        what, (unsigned long long)H[0].worst_contact_ms,
	        (unsigned long long)H[1].worst_contact_ms, T1,
	        fwd ? (long long)(fwd - tc) : -1LL, (long long)(at[0] - tc),
	        (long long)(at[1] - tc), (unsigned long long)(tcli - tc));
	fprintf(stderr, "netns: %s cut: the CLI said: %s", what, last_out);
	/* both hosts kept their contact: the trip must reach them before a host
	 * that had lost it would even go REDUCE_ONLY (T1). Before, every host's
	 * connections stayed on the cut member: the forward waited out its 2 s
	 * call timeout there, each watch hung there until the probe saw it
	 * behind for 1 s: ~3.4 s in all */
	for (int j = 0; j < 2; j++)
		cr_assert_lt(at[j] - tc, T1,
		             "host %d, in contact throughout, applied the trip %llu ms "
		             "after it was sent (T1 %u ms)",
		             j, (unsigned long long)(at[j] - tc), T1);
}

Test(netns, a_follower_cut_off_changes_nothing, .timeout = 240, .fini = world_down)
{
	member_cut("nf", false, false);
}

/* Member 0 cut from the other members only: the hosts still reach it, and
 * it answers them, but it has no leader (its linearizable reads fail, its
 * watches hear nothing new). Nothing may change for the hosts. */
Test(netns, a_member_cut_from_its_peers_only_changes_nothing, .timeout = 240,
     .fini = world_down)
{
	member_cut("ni", false, true);
}

/* The leader cut off: a leader change, which the documented T1 (2.5
 * election timeouts) rides out without a false fail-closed. */
Test(netns, a_leader_cut_off_does_not_fail_closed, .timeout = 240, .fini = world_down)
{
	member_cut("nl", true, false);
}

/*
 * Host b cut off (dirs) while the quorum is fine; a firm trip from a
 * meanwhile (global manual_halt, or kill of strategy strat when >= 0). b:
 * REDUCE_ONLY at T1, HALTED at T2 when want_halted; a never fails closed.
 * Heal: b applies the trip, contact is back (FIRM_LINK), the operator
 * resumes authority_lost on b. A global trip is then released firm-wide.
 * Returns the trip's revision; *rel the release's (0 if none).
 */
static long long cut_host(int b, int dirs, bool want_halted, int strat, long long *rel)
{
	unsigned healthy = 1u; /* host 0 */
	long long trip;
	char s[8];

	bk_nn_cut(&W, BK_NN_HOST(b), dirs);
	uint64_t t0 = bk_h_mono_ms();
	snprintf(s, sizeof(s), "s%d", strat);
	uint64_t tr = until(b, BK_REDUCE_ONLY, WAIT_MS, healthy);
	cr_assert(tr, "not failed closed: %s", state_of(b));
	cr_assert(auth_lost_on(b));
	/* a firm trip while b is cut off: it cannot reach b (the CLI waits up to
	 * 2 s for b's ack; what b's engines see meanwhile is in b's log) */
	trip = strat >= 0 ? firm(0, "kill", s) : firm(0, "manual_halt", NULL);
	uint64_t th = want_halted ? until(b, BK_HALTED, WAIT_MS, healthy) : 0;
	cr_assert(!want_halted || th, "not HALTED after T2: %s", state_of(b));
	/* an operator's forced resume while b is still cut off: refused, and b
	 * never reads ACTIVE (before: applied, and the loop latched
	 * authority_lost again a tick later; ACTIVE in between without contact) */
	static char out[8192];
	int rc = cli(b, out, sizeof(out), "resume", "--reason-code", "authority_lost",
	             "--to", "active", "--force", "--reason", "netns: still cut", NULL);
	cr_assert_eq(rc, 1, "a forced resume without contact: %d: %s", rc, out);
	cr_assert(strstr(out, "no contact with the etcd quorum"), "%s", out);
	for (uint64_t end = bk_h_mono_ms() + 300; bk_h_mono_ms() < end; usleep(1000))
		cr_assert_neq(view(b), BK_ACTIVE, "%s", state_of(b));
	/* b hears nothing through a cut inbound; with only its own packets
	 * dropped (host->members) the watch stream still delivers (TCP takes
	 * data in even while its acks are lost): applying a trip is fail-safe */
	if (dirs & BK_NN_IN)
		cr_assert_lt(atomic_load(&H[b].c.shm->firm_revision), (uint64_t)trip,
		             "host %d applied a trip through a cut", b);
	else
		fprintf(stderr, "netns: host->members cut: trip %s on the cut host\n",
		        atomic_load(&H[b].c.shm->firm_revision) >= (uint64_t)trip
		            ? "applied anyway (the watch still delivers)"
		            : "not applied");
	bk_nn_heal(&W, BK_NN_HOST(b));
	uint64_t th0 = bk_h_mono_ms();
	while (atomic_load(&H[b].c.shm->firm_revision) < (uint64_t)trip &&
	       bk_h_mono_ms() < th0 + WAIT_MS) {
		guard(healthy);
		usleep(2000);
	}
	cr_assert_geq(atomic_load(&H[b].c.shm->firm_revision), (uint64_t)trip,
	              "host %d did not catch up after the heal", b);
	uint64_t tcatch = bk_h_mono_ms();
	resume_authority(b);
	if (strat >= 0) {
		int slot = bk_client_resolve(&H[b].c, s);
		cr_assert_geq(slot, 0);
		cr_assert_eq(bk_check(&H[b].c, slot), BK_HALTED, "%s not halted on %d", s,
		             b);
		*rel = 0;
		cr_assert(until(b, BK_ACTIVE, WAIT_MS, healthy), "%s; log:%s",
		          state_of(b), log_tail(b));
	} else {
		cr_assert_eq(view(b), BK_HALTED, "the firm latch holds on %d", b);
		*rel = firm_release(0, trip);
		cr_assert(until(b, BK_ACTIVE, WAIT_MS, healthy), "%s; log:%s",
		          state_of(b), log_tail(b));
		cr_assert(until(0, BK_ACTIVE, WAIT_MS, healthy), "%s", state_of(0));
	}
	int n = audit_of(b, R);
	uint64_t lr = 0, lh = 0;
	for (int i = 0; i < n; i++) {
		if (!lr && R[i].mono_ms >= t0 && auth_trip(&R[i], "REDUCE_ONLY"))
			lr = R[i].mono_ms;
		if (!lh && R[i].mono_ms >= t0 && auth_trip(&R[i], "HALTED"))
			lh = R[i].mono_ms;
	}
	fprintf(stderr,
	        "netns: host cut (%s%s): engine read REDUCE_ONLY after %llu ms; log: "
	        "REDUCE_ONLY at %lld ms, HALTED at %lld ms; trip applied %llu ms after "
	        "the heal\n",
	        dirs == BK_NN_BOTH  ? "both ways"
	        : dirs == BK_NN_OUT ? "host->members"
	                            : "members->host",
	        strat >= 0 ? ", strategy trip" : "", (unsigned long long)(tr - t0),
	        lr ? (long long)(lr - t0) : -1LL, lh ? (long long)(lh - t0) : -1LL,
	        (unsigned long long)(tcatch - th0));
	return trip;
}

Test(netns, a_host_cut_off_from_every_member_fails_closed_alone, .timeout = 240,
     .fini = world_down)
{
	long long rel, trip;
	int n;

	T1 = T1_SHORT, T2 = T2_SHORT;
	world_up("nh", 2, SHORT_T);
	trip = cut_host(1, BK_NN_BOTH, true, -1, &rel);
	n = audit_of(1, R);
	log_properties(1, R, n, &rel, 1);
	cr_assert_eq(count(R, n, any_auth), 3, "REDUCE_ONLY, HALTED, one resume");
	applied_at(1, R, n, trip);
	applied_at(1, R, n, rel);
	n = audit_of(0, R);
	cr_assert_eq(count(R, n, any_auth), 0, "the healthy host failed closed");
	same_applied(0, 1);
	log_properties(0, R, n, &rel, 1);
}

Test(netns, one_way_cuts_fail_the_host_closed_either_way, .timeout = 240,
     .fini = world_down)
{
	long long rel[2], trip[2];
	int n;

	T1 = T1_SHORT, T2 = T2_SHORT;
	world_up("no", 2, SHORT_T);
	trip[0] = cut_host(1, BK_NN_OUT, true, -1, &rel[0]);
	trip[1] = cut_host(1, BK_NN_IN, true, -1, &rel[1]);
	n = audit_of(1, R);
	log_properties(1, R, n, rel, 2);
	cr_assert_eq(count(R, n, any_auth), 6, "two cuts: trips and resumes");
	for (int k = 0; k < 2; k++) {
		applied_at(1, R, n, trip[k]);
		applied_at(1, R, n, rel[k]);
	}
	n = audit_of(0, R);
	cr_assert_eq(count(R, n, any_auth), 0, "the healthy host failed closed");
	same_applied(0, 1);
}

Test(netns, repeated_cut_and_heal_applies_every_revision_in_order, .timeout = 300,
     .fini = world_down)
{
	long long trip[NSTRAT], rel;
	uint64_t prev = 0;
	int n;

	T1 = T1_SHORT, T2 = T2_SHORT;
	world_up("nr", 2, SHORT_T);
	for (int k = 0; k < NSTRAT; k++)
		trip[k] = cut_host(1, BK_NN_BOTH, true, k, &rel);
	n = audit_of(1, R);
	log_properties(1, R, n, NULL, 0);
	for (int k = 0; k < NSTRAT; k++) {
		uint64_t at = applied_at(1, R, n, trip[k]);
		cr_assert_geq(at, prev, "revision %lld applied before %lld", trip[k],
		              k ? trip[k - 1] : 0);
		prev = at;
		cr_assert(k == 0 || trip[k] > trip[k - 1]);
	}
	cr_assert_eq(count(R, n, any_auth), 3 * NSTRAT,
	             "each cut: REDUCE_ONLY, HALTED, one resume");
	n = audit_of(0, R);
	cr_assert_eq(count(R, n, any_auth), 0, "the healthy host failed closed");
	same_applied(0, 1);
}

/*
 * 25 % of host b's packets dropped each way at random: every firm trip
 * committed meanwhile reaches b (FIRM_APPLIED with its revision) or b fails
 * closed, within T2 of the commit; a never fails closed; once the loss ends
 * b has every latch.
 */
Test(netns, packet_loss_trips_reach_the_host_or_it_fails_closed, .timeout = 240,
     .fini = world_down)
{
	long long trip[NSTRAT];
	uint64_t tc[NSTRAT];
	int n, closed = 0;

	T1 = T1_SHORT, T2 = T2_SHORT;
	world_up("np", 2, SHORT_T);
	bk_nn_loss(&W, BK_NN_HOST(1), 25);
	for (int k = 0; k < NSTRAT; k++) {
		char s[8];
		snprintf(s, sizeof(s), "s%d", k);
		tc[k] = bk_h_mono_ms();
		trip[k] = firm(0, "kill", s);
		steady_for(1000, 1u);
	}
	steady_for(T2, 1u);
	bk_nn_heal(&W, BK_NN_HOST(1));
	uint64_t end = bk_h_mono_ms() + WAIT_MS;
	while (atomic_load(&H[1].c.shm->firm_revision) < (uint64_t)trip[NSTRAT - 1] &&
	       bk_h_mono_ms() < end)
		usleep(5000);
	cr_assert_geq(atomic_load(&H[1].c.shm->firm_revision), (uint64_t)trip[NSTRAT - 1],
	              "b did not catch up after the loss");
	if (auth_lost_on(1))
		resume_authority(1);
	n = audit_of(1, R);
	log_properties(1, R, n, NULL, 0);
	for (int k = 0; k < NSTRAT; k++) {
		uint64_t at = applied_at(1, R, n, trip[k]);
		uint64_t fc = failed_closed_at(R, n, tc[k] > T1 ? tc[k] - T1 : 0);
		uint64_t first = fc && fc < at ? fc : at;
		closed += fc && fc < at;
		cr_assert_leq(
		    first, tc[k] + T2 + SLACK_MS,
		    "trip %d (revision %lld): neither applied (%lld ms) nor failed "
		    "closed within T2",
		    k, trip[k], (long long)(at - tc[k]));
		fprintf(stderr,
		        "netns: 25%% loss: trip %d applied on b %lld ms after the "
		        "CLI started\n",
		        k, (long long)(at - tc[k]));
		char s[8];
		snprintf(s, sizeof(s), "s%d", k);
		cr_assert_eq(bk_check(&H[1].c, bk_client_resolve(&H[1].c, s)), BK_HALTED,
		             "%s not halted on b", s);
	}
	fprintf(stderr, "netns: 25%% loss: b failed closed before %d of %d trips\n",
	        closed, NSTRAT);
	n = audit_of(0, R);
	cr_assert_eq(count(R, n, any_auth), 0, "the healthy host failed closed");
	same_applied(0, 1);
}

/* Two members cut off: no quorum anywhere. Every host REDUCE_ONLY at T1,
 * HALTED at T2; the heal alone releases nothing; operator resumes do. */
Test(netns, quorum_lost_halts_every_host_by_t2, .timeout = 240, .fini = world_down)
{
	uint64_t tr[2], th[2];
	int n;

	T1 = T1_SHORT, T2 = T2_SHORT;
	world_up("nq", 2, SHORT_T);
	bk_nn_cut(&W, 1, BK_NN_BOTH);
	bk_nn_cut(&W, 2, BK_NN_BOTH);
	uint64_t t0 = bk_h_mono_ms();
	/* both engines watched at once: when each read REDUCE_ONLY, HALTED */
	memset(tr, 0, sizeof(tr));
	memset(th, 0, sizeof(th));
	for (uint64_t end = t0 + WAIT_MS; bk_h_mono_ms() < end && !(th[0] && th[1]);) {
		for (int j = 0; j < 2; j++) {
			enum bk_mode m = view(j);
			if (!tr[j] && m >= BK_REDUCE_ONLY)
				tr[j] = bk_h_mono_ms();
			if (!th[j] && m == BK_HALTED)
				th[j] = bk_h_mono_ms();
		}
		usleep(2000);
	}
	for (int j = 0; j < 2; j++) {
		cr_assert(tr[j] && th[j], "host %d: REDUCE_ONLY %llu, HALTED %llu", j,
		          (unsigned long long)tr[j], (unsigned long long)th[j]);
		cr_assert(auth_lost_on(j));
	}
	bk_nn_heal(&W, 1);
	bk_nn_heal(&W, 2);
	cr_assert(bk_ec_healthy(&W.ec, WAIT_MS), "cluster did not heal");
	uint64_t end = bk_h_mono_ms() + 1500;
	while (bk_h_mono_ms() < end)
		for (int j = 0; j < 2; j++)
			cr_assert_eq(bk_check(&H[j].c, BK_GLOBAL_ONLY), BK_HALTED,
			             "contact alone released host %d", j);
	for (int j = 0; j < 2; j++) {
		resume_authority(j);
		cr_assert(until(j, BK_ACTIVE, WAIT_MS, 0), "%s", state_of(j));
		n = audit_of(j, R);
		log_properties(j, R, n, NULL, 0);
		cr_assert_eq(count(R, n, any_auth), 3, "host %d", j);
		fprintf(stderr,
		        "netns: quorum lost: host %d engine REDUCE_ONLY after %llu ms, "
		        "HALTED after %llu ms (T1 %u, T2 %u)\n",
		        j, (unsigned long long)(tr[j] - t0),
		        (unsigned long long)(th[j] - t0), T1, T2);
	}
}

/*
 * Host b's watch is on member 0 (its first endpoint) and b's link to member
 * 0 is cut; member 1 is frozen (SIGSTOP: the kernel still completes a TCP
 * connect to it, nothing answers). b's probe proves contact through member
 * 2. A firm trip: the probe sees b's mirror behind, the stuck watch is
 * aborted and restarted on the next member, member 1, where it hangs. The
 * trip must still reach b (or b fail closed) within T2: a restarted watch
 * that stays silent is aborted again.
 */
Test(netns, a_watch_restarted_on_a_frozen_member_still_delivers, .timeout = 240,
     .fini = world_down)
{
	long long trip;
	uint64_t tc, end;

	world_up("nw", 2, NULL); /* documented T1/T2: member 1 may be the leader */
	bk_nn_cut_pair(&W, BK_NN_HOST(1), 0);
	bk_ec_signal(&W.ec, 1, SIGSTOP);
	steady_for(T1, 1u);
	tc = bk_h_mono_ms();
	trip = firm(0, "manual_halt", NULL);
	end = tc + T2 + SLACK_MS;
	while (atomic_load(&H[1].c.shm->firm_revision) < (uint64_t)trip &&
	       !auth_lost_on(1) && bk_h_mono_ms() < end)
		usleep(5000);
	uint64_t seen = bk_h_mono_ms();
	bool applied = atomic_load(&H[1].c.shm->firm_revision) >= (uint64_t)trip;
	if (applied) {
		int n = audit_of(1, R);
		seen = applied_at(1, R, n, trip);
	}
	fprintf(stderr, "netns: frozen member: b %s %llu ms after the trip started\n",
	        applied ? "applied the trip" : "failed closed or neither",
	        (unsigned long long)(seen - tc));
	cr_assert(applied || auth_lost_on(1),
	          "host b neither applied the trip (revision %lld, b at %llu) nor failed "
	          "closed within T2 + %u ms, and reads %s",
	          trip, (unsigned long long)atomic_load(&H[1].c.shm->firm_revision),
	          SLACK_MS, bk_mode_name(view(1)));
	bk_ec_signal(&W.ec, 1, SIGCONT);
	bk_nn_heal(&W, BK_NN_HOST(1));
}
