/*
 * test_firm - firm-wide halts on a real 3-member etcd cluster (loopback):
 * two breakerd instances on one machine are two "hosts"; engines are the
 * real client header; operators the real CLI. Deadlines are generous: the
 * tests assert outcomes, never latencies.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "bk_etcd_harness.h"
#include "bk_etcd_kv.h"
#include "bk_harness.h"
#include "bk_mode.h"

#define WAIT_MS 20000 /* any outcome: a loaded 2-CPU CI box is slow */

/* A host: a breakerd on the cluster, and an engine attached to it. */
struct host {
	struct bk_h h;
	struct bk_client c;
};

static void host_up(struct host *o, struct bk_ec *ec, const char *tag,
                    const char *cluster, const char *extra)
{
	char ini[1024];

	bk_ec_ini(ec, cluster, tag, extra, ini, sizeof(ini));
	bk_h_init(&o->h, tag, ini);
	bk_h_start(&o->h);
	bk_h_attach(&o->h, &o->c);
}

static void host_down(struct host *o)
{
	bk_client_detach(&o->c);
	bk_h_fini(&o->h);
}

/* The engine's view (bk_check_live, global alone) reaches want within ms. */
static bool live_within(struct host *o, enum bk_mode want, unsigned ms)
{
	uint64_t end = bk_h_mono_ms() + ms;

	do {
		if (bk_check_live(&o->c, BK_GLOBAL_ONLY, bk_now_mono_ns(), 0) == want)
			return true;
		usleep(5000);
	} while (bk_h_mono_ms() < end);
	return false;
}

static unsigned global_reason(struct host *o)
{
	return BK_STATE_REASON(atomic_load(&o->c.shm->global.state));
}

/* "mod_revision N" of the first latch line in `status --firm` output. */
static long long mod_rev_of(const char *status)
{
	const char *p = strstr(status, "mod_revision ");

	return p ? atoll(p + 13) : -1;
}

Test(firm, trip_reaches_every_host_and_a_stale_resume_is_refused, .timeout = 180)
{
	struct bk_ec ec;
	struct host a, b;
	char out[8192];
	long long rev;
	int rc;

	bk_ec_start(&ec, "fa");
	host_up(&a, &ec, "fa-a", "c1", NULL);
	host_up(&b, &ec, "fa-b", "c1", NULL);
	/* mirrored and in contact: ACTIVE on both */
	cr_assert(live_within(&a, BK_ACTIVE, WAIT_MS), "host a never ACTIVE");
	cr_assert(live_within(&b, BK_ACTIVE, WAIT_MS), "host b never ACTIVE");

	rc = bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm", "--reason",
	              "desk-wide incident", NULL);
	cr_assert_eq(rc, 0, "trip --firm: %d: %s", rc, out);
	cr_assert(strstr(out, "applied on 2 of 2 hosts"), "%s", out);
	/* engines on both hosts see it, with its reason code */
	cr_assert(live_within(&a, BK_HALTED, WAIT_MS));
	cr_assert(live_within(&b, BK_HALTED, WAIT_MS));
	cr_assert_eq(global_reason(&b), BK_R_MANUAL_HALT);
	cr_assert_gt(atomic_load(&b.c.shm->firm_revision), 0);

	rc = bk_h_cli(&b.h, out, sizeof(out), "status", "--firm", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "global/manual_halt"), "%s", out);
	cr_assert(strstr(out, "applied on 2 of 2 hosts"), "%s", out);
	rev = mod_rev_of(out);
	cr_assert_gt(rev, 0, "%s", out);

	/* someone trips again (same latch): the revision the operator saw is stale */
	rc = bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm", "--reason",
	              "again", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	char seen[32];
	snprintf(seen, sizeof(seen), "%lld", rev);
	rc = bk_h_cli_all(&b.h, out, sizeof(out), "resume", "--firm", "--revision", seen,
	                  "--reason", "all clear", NULL);
	cr_assert_eq(rc, 1, "a stale resume must be refused: %d: %s", rc, out);
	cr_assert(strstr(out, "changed since revision"), "%s", out);
	usleep(300 * 1000);
	cr_assert_eq(bk_check(&a.c, BK_GLOBAL_ONLY), BK_HALTED, "stale resume changed a");
	cr_assert_eq(bk_check(&b.c, BK_GLOBAL_ONLY), BK_HALTED, "stale resume changed b");

	/* with the revision as it is now: released on every host */
	rc = bk_h_cli(&b.h, out, sizeof(out), "status", "--firm", NULL);
	snprintf(seen, sizeof(seen), "%lld", mod_rev_of(out));
	rc = bk_h_cli_all(&b.h, out, sizeof(out), "resume", "--firm", "--revision", seen,
	                  "--to", "active", "--force", "--reason", "all clear", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "applied on 2 of 2 hosts"), "%s", out);
	cr_assert(live_within(&a, BK_ACTIVE, WAIT_MS));
	cr_assert(live_within(&b, BK_ACTIVE, WAIT_MS));

	host_down(&a);
	host_down(&b);
	bk_ec_stop(&ec);
}
