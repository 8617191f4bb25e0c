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
		/* 2 s of heartbeat age: a loaded box stalls the loop past the 50 ms
		 * default; what is asserted is the word and valid_until */
		if (bk_check_live(&o->c, BK_GLOBAL_ONLY, bk_now_mono_ns(),
		                  2000000000ull) == want)
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
	/* b's own hash-chained log says what it applied: revision, key, value hash */
	rc = bk_h_cli(&b.h, out, sizeof(out), "audit", "--json", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "FIRM_APPLIED"), "%s", out);
	cr_assert(strstr(out, "/breaker/v1/c1/latch/global/manual_halt"), "%s", out);
	cr_assert(strstr(out, "firm_value_sha256"), "%s", out);

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

Test(firm, partition_goes_reduce_only_then_halted_and_only_a_resume_clears_it,
     .timeout = 180)
{
	struct bk_ec ec;
	struct host a;
	char out[8192];
	int rc;

	bk_ec_start(&ec, "fp");
	char extra[256];
	int port = bk_h_free_port();
	snprintf(extra, sizeof(extra),
	         "authority_t1_ms = 1000\nauthority_t2_ms = 2500\n[metrics]\nlisten = "
	         "127.0.0.1:%d\n",
	         port);
	host_up(&a, &ec, "fp-a", "c2", extra);
	cr_assert(live_within(&a, BK_ACTIVE, WAIT_MS), "host never ACTIVE");
	cr_assert_gt(atomic_load(&a.c.shm->valid_until_ns), 0);

	/* two of three members frozen: the third has no quorum; the host's
	 * linearizable reads fail wherever it asks */
	bk_ec_signal(&ec, 1, SIGSTOP);
	bk_ec_signal(&ec, 2, SIGSTOP);
	cr_assert(live_within(&a, BK_REDUCE_ONLY, WAIT_MS), "no REDUCE_ONLY after T1");
	cr_assert_eq(global_reason(&a), BK_R_AUTHORITY_LOST);
	cr_assert(live_within(&a, BK_HALTED, WAIT_MS), "no HALTED after T2");
	cr_assert_eq(global_reason(&a), BK_R_AUTHORITY_LOST);
	/* what monitoring sees (the BreakerFirmAuthorityLost alert's input) */
	static char page[1 << 20];
	const char *body;
	cr_assert_eq(bk_h_http_get(port, "/metrics", page, sizeof(page), &body), 200);
	cr_assert(
	    strstr(body,
	           "breaker_latch_active{scope=\"global\",reason=\"authority_lost\"} 1"),
	    "%s", body);
	cr_assert(strstr(body, "breaker_firm_contact_age_seconds "), "%s", body);

	/* no resume while contact is not back */
	rc = bk_h_cli_all(&a.h, out, sizeof(out), "resume", "--reason-code",
	                  "authority_lost", "--reason", "etcd looks fine to me", NULL);
	cr_assert_eq(rc, 1, "resume without contact: %d: %s", rc, out);
	cr_assert(strstr(out, "no contact with the etcd quorum"), "%s", out);

	/* contact returning alone clears nothing */
	bk_ec_signal(&ec, 1, SIGCONT);
	bk_ec_signal(&ec, 2, SIGCONT);
	cr_assert(bk_ec_healthy(&ec, WAIT_MS), "cluster did not heal");
	uint64_t end = bk_h_mono_ms() + 2000;
	while (bk_h_mono_ms() < end) {
		cr_assert_eq(bk_check(&a.c, BK_GLOBAL_ONLY), BK_HALTED,
		             "contact alone released the host");
		usleep(20000);
	}
	/* an operator's resume does, stage by stage, once contact is proven */
	for (int i = 0; i < 3; i++) {
		end = bk_h_mono_ms() + WAIT_MS;
		do {
			rc = bk_h_cli_all(&a.h, out, sizeof(out), "resume",
			                  "--reason-code", "authority_lost", "--reason",
			                  "etcd healed", NULL);
		} while (rc != 0 && bk_h_mono_ms() < end && usleep(100000) == 0);
		cr_assert_eq(rc, 0, "resume stage %d: %s", i, out);
	}
	cr_assert(live_within(&a, BK_ACTIVE, WAIT_MS), "not ACTIVE after the resumes");
	rc = bk_h_cli(&a.h, out, sizeof(out), "audit", NULL);
	cr_assert(strstr(out, "FIRM_LINK"), "no record of the regained contact: %s", out);

	host_down(&a);
	bk_ec_stop(&ec);
}

/* Compact etcd's history up to its current revision (physical). */
static void compact_now(struct bk_ec *ec)
{
	struct bk_etcd_conn conn;
	char body[96];
	cJSON *rep;
	int64_t rev;

	cr_assert_eq(bk_etcd_conn_init(&conn, ec->endpoints, 5000), 0);
	cr_assert_eq(bk_etcd_range_prefix(&conn, "/x/", false, false, &rep, &rev), 0);
	cJSON_Delete(rep);
	snprintf(body, sizeof(body), "{\"revision\":\"%lld\",\"physical\":true}",
	         (long long)rev);
	cr_assert_eq(bk_etcd_post(&conn, "/v3/kv/compaction", body, true, &rep), 0, "%s",
	             conn.err);
	cJSON_Delete(rep);
	bk_etcd_conn_free(&conn);
}

/* A host stopped while a firm trip happened catches up when it restarts: from
 * its saved revision when etcd still has the history, by a whole read when
 * etcd compacted it away. */
static void restart_case(bool compact, const char *tag, const char *cluster)
{
	struct bk_ec ec;
	struct host a, b;
	char out[8192], log[65536], ta[16], tb[16];
	int rc;

	snprintf(ta, sizeof(ta), "%s-a", tag);
	snprintf(tb, sizeof(tb), "%s-b", tag);
	bk_ec_start(&ec, tag);
	host_up(&a, &ec, ta, cluster, NULL);
	host_up(&b, &ec, tb, cluster, NULL);
	cr_assert(live_within(&b, BK_ACTIVE, WAIT_MS));
	/* b has applied something: a latch tripped and released */
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "kill", "alpha", "--firm",
	                      "--reason", "warm-up", NULL),
	             0, "%s", out);
	cr_assert(strstr(out, "applied on 2 of 2 hosts"), "%s", out);
	bk_client_detach(&b.c);
	cr_assert_eq(bk_h_stop(&b.h), 0);

	rc = bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm", "--reason",
	              "while b was down", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "applied on 1 of 1 hosts"), "%s", out);
	if (compact)
		compact_now(&ec);

	bk_h_start(&b.h);
	bk_h_attach(&b.h, &b.c);
	cr_assert(live_within(&b, BK_HALTED, WAIT_MS), "restarted b missed the trip");
	usleep(200 * 1000);
	cr_assert_eq(global_reason(&b), BK_R_MANUAL_HALT);
	bk_h_slurp(b.h.log, log, sizeof(log));
	cr_assert(strstr(log, "watching from revision"),
	          "b did not restart from its revision");
	if (compact)
		cr_assert(strstr(log, "compact_revision"),
		          "no whole read after compaction: %s", log);
	else
		cr_assert_null(strstr(log, "compact_revision"), "%s", log);
	rc = bk_h_cli(&a.h, out, sizeof(out), "status", "--firm", NULL);
	cr_assert(strstr(out, "global/manual_halt"), "%s", out);
	cr_assert(strstr(out, "applied on 2 of 2 hosts"), "%s", out);

	host_down(&a);
	host_down(&b);
	bk_ec_stop(&ec);
}

Test(firm, a_restarted_host_catches_up_from_its_revision, .timeout = 180)
{
	restart_case(false, "fr", "c3");
}

Test(firm, compaction_past_a_hosts_revision_forces_a_whole_read, .timeout = 180)
{
	restart_case(true, "fc", "c4");
}

/* What the Python client's check_live says (max_age_ns 1 hour: the
 * heartbeat alone would not fail it). */
static char py_live(struct host *o)
{
	char cmd[1024], out[64] = "";
	FILE *p;

	snprintf(
	    cmd, sizeof(cmd),
	    "PYTHONPATH=%s/clients/python python3 -c 'import breaker_client as b; "
	    "print(b.attach(\"%s\").check_live(None, max_age_ns=3600 * 10**9).name)'",
	    BK_SOURCE_DIR, o->h.instance);
	cr_assert_not_null(p = popen(cmd, "r"));
	if (!fgets(out, sizeof(out), p))
		out[0] = '\0';
	pclose(p);
	return out[0]; /* 'A'CTIVE, 'H'ALTED, ... */
}

Test(firm, a_stuck_breakerd_fails_closed_past_valid_until, .timeout = 180)
{
	struct bk_ec ec;
	struct host a;
	uint64_t hour = 3600ull * 1000000000ull, end;

	bk_ec_start(&ec, "fv");
	host_up(&a, &ec, "fv-a", "c5",
	        "authority_t1_ms = 1000\nauthority_t2_ms = 2000\n");
	cr_assert(live_within(&a, BK_ACTIVE, WAIT_MS), "host never ACTIVE");
	cr_assert_eq(py_live(&a), 'A', "python check_live not ACTIVE");

	/* breakerd frozen: its heartbeat is old, but an engine that allows an
	 * hour of heartbeat age still stops once the contact is T2 old */
	kill(a.h.pid, SIGSTOP);
	cr_assert_eq(bk_check_live(&a.c, BK_GLOBAL_ONLY, bk_now_mono_ns(), hour),
	             BK_ACTIVE);
	end = bk_h_mono_ms() + WAIT_MS;
	while (bk_check_live(&a.c, BK_GLOBAL_ONLY, bk_now_mono_ns(), hour) != BK_HALTED &&
	       bk_h_mono_ms() < end)
		usleep(10000);
	cr_assert_eq(bk_check_live(&a.c, BK_GLOBAL_ONLY, bk_now_mono_ns(), hour),
	             BK_HALTED, "valid_until_ns not honoured by bk_check_live");
	cr_assert_eq(bk_check(&a.c, BK_GLOBAL_ONLY), BK_ACTIVE,
	             "the word itself is unchanged");
	cr_assert_eq(py_live(&a), 'H', "python check_live ignores valid_until_ns");
	kill(a.h.pid, SIGCONT);

	host_down(&a);
	bk_ec_stop(&ec);
}

Test(firm, a_bad_cluster_section_is_refused)
{
	static const char *const bad[] = {
	    "[cluster]\nname = x\n",
	    "[cluster]\nendpoints = http://127.0.0.1:2379\n",
	    "[cluster]\nname = x\nendpoints = ftp://127.0.0.1:2379\n",
	    "[cluster]\nname = a/b\nendpoints = http://127.0.0.1:2379\n",
	    "[cluster]\nname = x\nendpoints = http://127.0.0.1:2379\nauthority_t1_ms = "
	    "6000\n",
	    "[cluster]\nname = x\nendpoints = http://127.0.0.1:2379\nprobe_timeout_ms = "
	    "3500\n", /* = the default T1 */
	};
	char path[] = "/tmp/bk-firm-cfg-XXXXXX", err[256];
	struct bk_config cfg;
	int fd;

	cr_assert_geq(fd = mkstemp(path), 0);
	close(fd);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *f = fopen(path, "w");
		fputs(bad[i], f);
		fclose(f);
		cr_assert_eq(bk_config_defaults(&cfg, NULL), 0);
		cr_assert_eq(bk_config_load(&cfg, path, err, sizeof(err)), -EINVAL,
		             "accepted: %s", bad[i]);
		cr_assert_eq(cfg.cluster_name[0], '\0',
		             "a refused file changed the config");
	}
	FILE *f = fopen(path, "w");
	fputs(
	    "[cluster]\nname = x\nendpoints = http://127.0.0.1:2379, http://[::1]:2379\n",
	    f);
	fclose(f);
	cr_assert_eq(bk_config_load(&cfg, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(cfg.cluster_name, "x");
	unlink(path);
}

/* Firm latches on a strategy and on a group reach the member strategies on
 * every host (a strategy's word is the strictest of its own and its groups'). */
Test(firm, strategy_and_group_latches_reach_members_on_every_host, .timeout = 180)
{
	static const char *strat = "[strategies]\nnames = alpha, beta\n"
	                           "groups = alpha=venue:XETR\n";
	struct bk_ec ec;
	struct host a, b;
	char out[8192];
	int alpha, beta, rc;

	bk_ec_start(&ec, "fg");
	host_up(&a, &ec, "fg-a", "c6", strat);
	host_up(&b, &ec, "fg-b", "c6", strat);
	cr_assert(live_within(&b, BK_ACTIVE, WAIT_MS));
	cr_assert_geq(alpha = bk_client_resolve(&b.c, "alpha"), 0);
	cr_assert_geq(beta = bk_client_resolve(&b.c, "beta"), 0);

	rc = bk_h_cli(&a.h, out, sizeof(out), "kill", "--group", "venue:XETR", "--firm",
	              "--reason", "XETR runaway", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "firm group/venue:XETR kill_switch"), "%s", out);
	uint64_t end = bk_h_mono_ms() + WAIT_MS;
	while (bk_check(&b.c, alpha) != BK_HALTED && bk_h_mono_ms() < end)
		usleep(5000);
	cr_assert_eq(bk_check(&b.c, alpha), BK_HALTED, "member alpha not halted on b");
	cr_assert_eq(bk_check(&b.c, beta), BK_ACTIVE, "beta is no member");
	cr_assert_eq(bk_check(&b.c, BK_GLOBAL_ONLY), BK_ACTIVE);

	rc = bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--strategy", "beta",
	              "--mode", "reduce-only", "--firm", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	end = bk_h_mono_ms() + WAIT_MS;
	while (bk_check(&b.c, beta) != BK_REDUCE_ONLY && bk_h_mono_ms() < end)
		usleep(5000);
	cr_assert_eq(bk_check(&b.c, beta), BK_REDUCE_ONLY, "strategy latch not on b");
	cr_assert_eq(bk_check(&a.c, beta), BK_REDUCE_ONLY, "strategy latch not on a");

	host_down(&a);
	host_down(&b);
	bk_ec_stop(&ec);
}

/* Which member leads: /v3/maintenance/status on each; -1 if none says so. */
static int leader_of(struct bk_ec *ec)
{
	for (int i = 0; i < BK_EC_MEMBERS; i++) {
		struct bk_etcd_conn conn;
		char url[64];
		cJSON *rep;

		bk_ec_url(ec, i, url, sizeof(url));
		cr_assert_eq(bk_etcd_conn_init(&conn, url, 2000), 0);
		if (bk_etcd_post(&conn, "/v3/maintenance/status", "{}", true, &rep) ==
		    0) {
			/* uint64 ids, as strings: bk_etcd_i64 (int64) saturates half
			 * of them, and then two members could both "lead" */
			const cJSON *me = cJSON_GetObjectItem(
			    cJSON_GetObjectItem(rep, "header"), "member_id");
			const cJSON *leader = cJSON_GetObjectItem(rep, "leader");
			bool is = cJSON_IsString(me) && cJSON_IsString(leader) &&
			          strcmp(me->valuestring, leader->valuestring) == 0;
			cJSON_Delete(rep);
			bk_etcd_conn_free(&conn);
			if (is)
				return i;
			continue;
		}
		bk_etcd_conn_free(&conn);
	}
	return -1;
}

/* The healthy side stays ACTIVE through a leader change (T1 = 1.5 election
 * timeouts, etcd's default 1000 ms, --pre-vote=true). */
Test(firm, a_leader_change_does_not_fail_closed, .timeout = 180)
{
	struct bk_ec ec;
	struct host a;
	char out[16384];
	int leader;
	uint64_t end;

	bk_ec_start(&ec, "fl");
	host_up(&a, &ec, "fl-a", "c7", NULL);
	cr_assert(live_within(&a, BK_ACTIVE, WAIT_MS));
	cr_assert_geq(leader = leader_of(&ec), 0, "no leader found");
	bk_ec_kill9(&ec, leader);
	uint64_t t0 = bk_h_mono_ms();
	end = t0 + 5000;
	while (bk_h_mono_ms() < end) {
		/* the heartbeat bound is not what this test is about (a loaded CI box
		 * can stall the loop past 50 ms): valid_until and the word are */
		enum bk_mode m =
		    bk_check_live(&a.c, BK_GLOBAL_ONLY, bk_now_mono_ns(), 2000000000ull);
		uint64_t now = bk_now_mono_ns(), hb = atomic_load(&a.c.shm->heartbeat_ns);
		uint64_t vu = atomic_load(&a.c.shm->valid_until_ns);
		cr_assert_eq(m, BK_ACTIVE,
		             "failed closed (%s, reason %u) %llu ms into a leader change "
		             "(heartbeat %lld us old, valid_until in %lld ms)",
		             bk_mode_name(m), global_reason(&a),
		             (unsigned long long)(bk_h_mono_ms() - t0),
		             (long long)(now - hb) / 1000,
		             ((long long)vu - (long long)now) / 1000000);
		usleep(5000);
	}
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "audit", NULL), 0);
	cr_assert_null(strstr(out, "authority_lost"), "%s", out);

	host_down(&a);
	bk_ec_stop(&ec);
}

/* etcd's own roles on the prefix: a user with read-only rights cannot trip
 * firm-wide; the hosts and an operator with read-write can. */
Test(firm, etcd_roles_on_the_prefix_gate_firm_changes, .timeout = 180)
{
	struct bk_ec ec;
	struct host a;
	char out[8192], ini[512], cfg[256], pw[256];
	int rc;

	bk_ec_start(&ec, "fa2");
	bk_ec_role(&ec, "root", NULL, NULL);
	bk_ec_user(&ec, "root", "root");
	bk_ec_role(&ec, "breaker", "READWRITE", "/breaker/v1/c8/");
	bk_ec_role(&ec, "viewer", "READ", "/breaker/v1/c8/");
	bk_ec_user(&ec, "fv-host", "breaker");
	bk_ec_user(&ec, "ops", "breaker");
	bk_ec_user(&ec, "intern", "viewer");
	bk_ec_call(&ec, "/v3/auth/enable", "{}");

	char dir[] = "/tmp/bk-firm-pw-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	const char *users[] = {"fv-host", "ops", "intern"};
	for (int i = 0; i < 3; i++) {
		snprintf(pw, sizeof(pw), "%s/%s.pw", dir, users[i]);
		FILE *f = fopen(pw, "w");
		fprintf(f, "%s-pw\n", users[i]);
		fclose(f);
	}
	snprintf(ini, sizeof(ini), "user = fv-host\npassword_file = %s/fv-host.pw\n",
	         dir);
	host_up(&a, &ec, "fa2-a", "c8", ini);
	cr_assert(live_within(&a, BK_ACTIVE, WAIT_MS),
	          "host with etcd credentials never ACTIVE");

	/* breakerd makes the etcd change with ITS [cluster] user: a host whose user
	 * has the read-only role is refused by etcd; nothing changes anywhere */
	struct host b;
	snprintf(ini, sizeof(ini), "user = intern\npassword_file = %s/intern.pw\n", dir);
	host_up(&b, &ec, "fa2-b", "c8", ini);
	rc = bk_h_cli_all(&b.h, out, sizeof(out), "trip", "manual_halt", "--firm", NULL);
	cr_assert_eq(rc, 1, "read-only etcd user: %d: %s", rc, out);
	cr_assert(strstr(out, "ERR_FIRM") && strstr(out, "etcd refused"), "%s", out);
	usleep(300 * 1000);
	cr_assert_eq(bk_check(&a.c, BK_GLOBAL_ONLY), BK_ACTIVE);
	host_down(&b);

	/* the host with read-write trips, on an operator's forwarded command */
	rc = bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm", NULL);
	cr_assert_eq(rc, 0, "read-write host: %d: %s", rc, out);
	cr_assert(live_within(&a, BK_HALTED, WAIT_MS));

	host_down(&a);
	bk_ec_stop(&ec);
	snprintf(cfg, sizeof(cfg), "rm -rf %s", dir);
	cr_assert_eq(system(cfg), 0);
}

/* A follower killed (-9) and restarted: the hosts never notice; a firm trip
 * made while it was down reaches them, and the member catches up. */
Test(firm, a_member_killed_and_restarted_changes_nothing, .timeout = 180)
{
	struct bk_ec ec;
	struct host a;
	char out[8192];
	int leader, victim;
	uint64_t end;

	bk_ec_start(&ec, "fk");
	host_up(&a, &ec, "fk-a", "c9", NULL);
	cr_assert(live_within(&a, BK_ACTIVE, WAIT_MS));
	cr_assert_geq(leader = leader_of(&ec), 0, "no leader found");
	victim = (leader + 1) % BK_EC_MEMBERS;
	bk_ec_kill9(&ec, victim);
	end = bk_h_mono_ms() + 3000;
	while (bk_h_mono_ms() < end) {
		cr_assert_eq(
		    bk_check_live(&a.c, BK_GLOBAL_ONLY, bk_now_mono_ns(), 2000000000ull),
		    BK_ACTIVE, "failed closed with one follower down");
		usleep(5000);
	}
	cr_assert_eq(
	    bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm", NULL), 0,
	    "%s", out);
	cr_assert(live_within(&a, BK_HALTED, WAIT_MS));
	bk_ec_member_start(&ec, victim, false);
	cr_assert(bk_ec_healthy(&ec, WAIT_MS));
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "audit", NULL), 0);
	cr_assert_null(strstr(out, "authority_lost"), "%s", out);

	host_down(&a);
	bk_ec_stop(&ec);
}

/* [auth] as for a local command: only root may trip or resume, and the
 * command socket is open to everyone (0666) */
#define AUTH_ROOT_ONLY                                                                   \
	"[commands]\nsocket_mode = 0666\n[auth]\ntrip_uids = 0\nresume_uids = 0\n"

/* Issue 15 item 1: breakerd authorises --firm as the local command. A user
 * not in [auth] is refused by breakerd and nothing reaches etcd; root's trip
 * is forwarded, audited (FIRM_FORWARDED) and mirrored. */
Test(firm, a_user_not_in_auth_is_refused_and_nothing_reaches_etcd, .timeout = 180)
{
	struct bk_ec ec;
	struct host a;
	char out[8192], seen[32];
	char *trip[] = {"trip", "manual_halt", "--firm", "--reason", "not mine", NULL};
	int rc;

	if (geteuid() != 0)
		cr_skip_test("needs root: runs the CLI as another user");
	bk_ec_start(&ec, "fu");
	host_up(&a, &ec, "fu-a", "c9", AUTH_ROOT_ONLY);
	bk_h_open_dirs(&a.h);
	cr_assert(live_within(&a, BK_ACTIVE, WAIT_MS), "host never ACTIVE");

	rc = bk_h_cli_as(&a.h, 65534, 65534, NULL, trip, out, sizeof(out));
	cr_assert_eq(rc, 1, "nobody's firm trip must be refused: %d: %s", rc, out);
	cr_assert(strstr(out, "ERR_UNAUTHORISED"), "%s", out);
	usleep(300 * 1000);
	cr_assert_eq(bk_check(&a.c, BK_GLOBAL_ONLY), BK_ACTIVE);
	rc = bk_h_cli(&a.h, out, sizeof(out), "status", "--firm", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "no firm latches"), "nothing may reach etcd: %s", out);
	rc = bk_h_cli(&a.h, out, sizeof(out), "audit", "--json", NULL);
	cr_assert(strstr(out, "\"kind\":\"REFUSED\""), "%s", out);
	cr_assert_null(strstr(out, "FIRM_FORWARDED"), "%s", out);

	/* root: forwarded, audited with its key, mirrored back */
	rc = bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm", "--reason",
	              "mine", NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	cr_assert(strstr(out, "at etcd revision"), "%s", out);
	cr_assert(live_within(&a, BK_HALTED, WAIT_MS));
	rc = bk_h_cli(&a.h, out, sizeof(out), "audit", "--json", NULL);
	cr_assert(strstr(out, "FIRM_FORWARDED"), "%s", out);
	cr_assert(strstr(out, "/breaker/v1/c9/latch/global/manual_halt"), "%s", out);

	/* nobody's resume of it: refused by breakerd; the latch stays */
	rc = bk_h_cli(&a.h, out, sizeof(out), "status", "--firm", NULL);
	snprintf(seen, sizeof(seen), "%lld", mod_rev_of(out));
	char *resume[] = {"resume", "--firm",  "--revision", seen,       "--to",
	                  "active", "--force", "--reason",   "mine now", NULL};
	rc = bk_h_cli_as(&a.h, 65534, 65534, NULL, resume, out, sizeof(out));
	cr_assert_eq(rc, 1, "nobody's firm resume must be refused: %d: %s", rc, out);
	cr_assert(strstr(out, "ERR_UNAUTHORISED"), "%s", out);
	rc = bk_h_cli(&a.h, out, sizeof(out), "status", "--firm", NULL);
	cr_assert(strstr(out, "global/manual_halt"), "the latch must stay: %s", out);
	usleep(300 * 1000);
	cr_assert_eq(bk_check(&a.c, BK_GLOBAL_ONLY), BK_HALTED);

	host_down(&a);
	bk_ec_stop(&ec);
}

/* The two-person rule covers a firm global resume as a local one: the first
 * operator's resume is a proposal (nothing reaches etcd), the proposer
 * cannot confirm it, a second authorised uid does. */
Test(firm, a_firm_global_resume_needs_two_operators, .timeout = 180)
{
	struct bk_ec ec;
	struct host a;
	char out[8192], seen[32];
	int rc;

	if (geteuid() != 0)
		cr_skip_test("needs root: runs the CLI as another user");
	bk_ec_start(&ec, "f2");
	host_up(&a, &ec, "f2-a", "c10",
	        "[commands]\nsocket_mode = 0666\n[auth]\nresume_uids = 0, 65534\n"
	        "two_person_global_resume = true\nconfirm_window_s = 120\n");
	bk_h_open_dirs(&a.h);
	cr_assert(live_within(&a, BK_ACTIVE, WAIT_MS), "host never ACTIVE");
	rc = bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm", NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	cr_assert(live_within(&a, BK_HALTED, WAIT_MS));
	rc = bk_h_cli(&a.h, out, sizeof(out), "status", "--firm", NULL);
	snprintf(seen, sizeof(seen), "%lld", mod_rev_of(out));

	char *resume[] = {"resume",   "--firm", "--revision", seen,
	                  "--reason", "clear",  NULL};
	rc = bk_h_cli_as(&a.h, -1, -1, NULL, resume, out, sizeof(out));
	cr_assert(strstr(out, "two-person rule"), "%d: %s", rc, out);
	usleep(300 * 1000);
	rc = bk_h_cli(&a.h, out, sizeof(out), "status", "--firm", NULL);
	cr_assert(strstr(out, "HALTED"), "a proposal changes nothing in etcd: %s", out);
	cr_assert_eq(mod_rev_of(out), atoll(seen), "%s", out);
	/* the proposer again: refused */
	rc = bk_h_cli_as(&a.h, -1, -1, NULL, resume, out, sizeof(out));
	cr_assert_eq(rc, 1, "%d: %s", rc, out);
	cr_assert(strstr(out, "ERR_UNAUTHORISED"), "%s", out);
	/* a second authorised operator: applied firm-wide */
	rc = bk_h_cli_as(&a.h, 65534, 65534, NULL, resume, out, sizeof(out));
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	cr_assert(strstr(out, "HALTED -> REDUCE_ONLY at etcd revision"), "%s", out);
	cr_assert(live_within(&a, BK_REDUCE_ONLY, WAIT_MS));
	/* the host's log: the proposal, and the forwarded resume naming both */
	rc = bk_h_cli(&a.h, out, sizeof(out), "audit", "--json", NULL);
	cr_assert(strstr(out, "RESUME_PROPOSED"), "%s", out);
	const char *fw = strstr(out, "\"kind\":\"FIRM_FORWARDED\",");
	cr_assert(fw && (fw = strstr(fw + 1, "\"kind\":\"FIRM_FORWARDED\",")),
	          "a trip and a resume forwarded: %s", out);
	char line[4096];
	const char *bol = fw, *eol = strchr(fw, '\n');
	while (bol > out && bol[-1] != '\n')
		bol--;
	snprintf(line, sizeof(line), "%.*s", (int)(eol ? eol - bol : (long)strlen(bol)),
	         bol);
	cr_assert(strstr(line, "\"uid\":65534,") && strstr(line, "\"proposer_uid\":0,") &&
	              strstr(line, "\"command\":\"resume\""),
	          "%s", line);

	host_down(&a);
	bk_ec_stop(&ec);
}
