/*
 * test_firmcmd - `--firm` commands forwarded through breakerd, on a real
 * 3-member etcd cluster (loopback): a resent request id applied once, a
 * trip of several scopes as one etcd transaction, a resume whose audit
 * record cannot be made durable, TLS certificate roles, and the pending
 * two-person proposal in `status`. Real breakerd, real CLI, real client
 * header; deadlines are generous: outcomes are asserted, never latencies.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "bk_etcd_harness.h"
#include "bk_etcd_kv.h"
#include "bk_harness.h"
#include "bk_mode.h"

#define WAIT_MS 20000 /* any outcome: a loaded 2-CPU CI box is slow */

static char out[1 << 16];

struct host {
	struct bk_h h;
	struct bk_client c;
};

static void host_init(struct host *o, struct bk_ec *ec, const char *tag,
                      const char *cluster, const char *extra)
{
	char ini[4096];

	bk_ec_ini(ec, cluster, tag, extra, ini, sizeof(ini));
	bk_h_init(&o->h, tag, ini);
}

static void host_start(struct host *o)
{
	bk_h_start(&o->h);
	bk_h_attach(&o->h, &o->c);
}

static void host_up(struct host *o, struct bk_ec *ec, const char *tag,
                    const char *cluster, const char *extra)
{
	host_init(o, ec, tag, cluster, extra);
	host_start(o);
}

static void host_down(struct host *o)
{
	bk_client_detach(&o->c);
	bk_h_fini(&o->h);
}

/* Scope slot (-1: global) reads want within ms. */
static bool mode_within(struct host *o, int slot, enum bk_mode want, unsigned ms)
{
	uint64_t end = bk_h_mono_ms() + ms;

	do {
		if (bk_check(&o->c, slot) == want)
			return true;
		usleep(5000);
	} while (bk_h_mono_ms() < end);
	return false;
}

/* "mod_revision N" of the latch line naming key in `status --firm`; -1: none. */
static long long mod_rev_of(const char *status, const char *key)
{
	const char *p = strstr(status, key);

	if (!p || !(p = strstr(p, "mod_revision ")))
		return -1;
	return atoll(p + 13);
}

static long long firm_mod_rev(struct host *o, const char *key)
{
	cr_assert_eq(bk_h_cli(&o->h, out, sizeof(out), "status", "--firm", NULL), 0, "%s",
	             out);
	return mod_rev_of(out, key);
}

/* "at etcd revision N" in the CLI's output; -1 if absent. */
static long long at_rev(const char *text)
{
	const char *p = strstr(text, "at etcd revision ");

	return p ? atoll(p + 17) : -1;
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* Lines of text holding both a and b. */
static int lines_with(const char *text, const char *a, const char *b)
{
	int n = 0;

	for (const char *l = text; l && *l;) {
		const char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l) : strlen(l);
		const char *pa = memmem(l, len, a, strlen(a)),
		           *pb = memmem(l, len, b, strlen(b));
		n += pa && pb;
		l = e ? e + 1 : NULL;
	}
	return n;
}

/* The CLI as us with BREAKER_REQUEST_ID=id. */
static int cli_id(struct host *o, const char *id, char **args)
{
	return bk_h_cli_as(&o->h, -1, -1, id, args, out, sizeof(out));
}

/*
 * Issue 15: a resent forwarded command (nng's REQ resends on reconnect; the
 * operator's retry with BREAKER_REQUEST_ID) is applied once: the resend gets
 * the first answer (its revision) and makes no second etcd write nor a
 * second FIRM_FORWARDED record. The id reused with another payload is
 * refused, as for a local command.
 */
Test(firmcmd, a_resent_forwarded_command_is_applied_once, .timeout = 180)
{
	struct bk_ec ec;
	struct host a;
	char *trip[] = {"trip",     "manual_halt",   "--firm",
	                "--reason", "desk incident", NULL};
	char *other[] = {"trip", "manual_halt", "--firm", "--reason", "another", NULL};
	long long r1, r2;
	char seen[32];
	int rc;

	bk_ec_start(&ec, "xd");
	host_up(&a, &ec, "xd-a", "d1", NULL);
	cr_assert(mode_within(&a, -1, BK_ACTIVE, WAIT_MS), "host never ACTIVE");

	rc = cli_id(&a, "4242", trip);
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	cr_assert_gt(r1 = at_rev(out), 0, "%s", out);
	cr_assert(mode_within(&a, -1, BK_HALTED, WAIT_MS));
	/* the resend: the same answer, the same revision, etcd untouched */
	rc = cli_id(&a, "4242", trip);
	cr_assert_eq(rc, 0, "resend: %d: %s", rc, out);
	cr_assert_eq(at_rev(out), r1, "a resend is not a second put: %s", out);
	cr_assert_eq(firm_mod_rev(&a, "global/manual_halt"), r1, "%s", out);
	/* the same id with another payload: refused, nothing changed */
	rc = cli_id(&a, "4242", other);
	cr_assert_eq(rc, 1, "a reused id must be refused: %d: %s", rc, out);
	cr_assert(strstr(out, "ERR_REQUEST_ID_REUSED"), "%s", out);
	cr_assert_eq(firm_mod_rev(&a, "global/manual_halt"), r1, "%s", out);
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "audit", "--json", NULL), 0);
	cr_assert_eq(count_of(out, "\"kind\":\"FIRM_FORWARDED\""), 1,
	             "one record for the trip and its resend: %s", out);

	/* a resume resent: the first answer again, not "changed since revision" */
	snprintf(seen, sizeof(seen), "%lld", r1);
	char *resume[] = {"resume",   "--firm", "--revision", seen,
	                  "--reason", "clear",  NULL};
	rc = cli_id(&a, "5151", resume);
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	cr_assert(strstr(out, "HALTED -> REDUCE_ONLY"), "%s", out);
	cr_assert_gt(r2 = at_rev(out), r1, "%s", out);
	rc = cli_id(&a, "5151", resume);
	cr_assert_eq(rc, 0, "resent resume: %d: %s", rc, out);
	cr_assert(strstr(out, "HALTED -> REDUCE_ONLY"), "%s", out);
	cr_assert_eq(at_rev(out), r2, "%s", out);
	cr_assert_eq(firm_mod_rev(&a, "global/manual_halt"), r2, "%s", out);
	cr_assert(strstr(out, "REDUCE_ONLY"), "one stage down, not two: %s", out);
	/* a local command with a firm command's id: refused too */
	rc = bk_h_cli_as(&a.h, -1, -1, "5151",
	                 (char *[]){"trip", "manual_halt", "--reason", "local", NULL},
	                 out, sizeof(out));
	cr_assert_eq(rc, 1, "%d: %s", rc, out);
	cr_assert(strstr(out, "ERR_REQUEST_ID_REUSED"), "%s", out);
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "audit", "--json", NULL), 0);
	cr_assert_eq(count_of(out, "\"kind\":\"FIRM_FORWARDED\""), 2, "%s", out);

	/* after a restart the answer is gone but the id is not (replayed from
	 * the log): the resend is refused, never sent to etcd again */
	bk_client_detach(&a.c);
	cr_assert_eq(bk_h_stop(&a.h), 0);
	host_start(&a);
	cr_assert(mode_within(&a, -1, BK_REDUCE_ONLY, WAIT_MS), "not mirrored again");
	rc = cli_id(&a, "5151", resume);
	cr_assert_eq(rc, 1, "%d: %s", rc, out);
	cr_assert(strstr(out, "ERR_FIRM") && strstr(out, "forwarded already"), "%s", out);
	cr_assert_eq(firm_mod_rev(&a, "global/manual_halt"), r2, "%s", out);

	host_down(&a);
	bk_ec_stop(&ec);
}

#define STRATS                                                                           \
	"[strategies]\nnames = alpha, beta, gamma, delta\n"                              \
	"groups = alpha=venue:XETR, beta=desk:rates\n"

/*
 * Issue 15: a firm trip of several scopes is ONE etcd transaction: every
 * latch at the same revision, or none (a bad scope refuses the whole
 * command before anything reaches etcd). The other host applies them all.
 */
Test(firmcmd, a_multi_scope_firm_trip_is_one_transaction, .timeout = 180)
{
	struct bk_ec ec;
	struct host a, b;
	int alpha, beta, gamma, delta, rc;
	long long rev;

	bk_ec_start(&ec, "xm");
	host_up(&a, &ec, "xm-a", "d2", STRATS);
	host_up(&b, &ec, "xm-b", "d2", STRATS);
	cr_assert(mode_within(&b, -1, BK_ACTIVE, WAIT_MS), "host b never ACTIVE");
	cr_assert_geq(alpha = bk_client_resolve(&b.c, "alpha"), 0);
	cr_assert_geq(beta = bk_client_resolve(&b.c, "beta"), 0);
	cr_assert_geq(gamma = bk_client_resolve(&b.c, "gamma"), 0);
	cr_assert_geq(delta = bk_client_resolve(&b.c, "delta"), 0);

	/* one bad scope among good ones: refused whole, nothing in etcd */
	rc = bk_h_cli_all(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm",
	                  "--strategy", "gamma", "--strategy", "bad name!", NULL);
	cr_assert_eq(rc, 1, "%d: %s", rc, out);
	cr_assert(strstr(out, "ERR_BAD_REQUEST") && strstr(out, "bad scope 'bad name!'"),
	          "%s", out);
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "status", "--firm", NULL), 0);
	cr_assert(strstr(out, "no firm latches"), "all or nothing: %s", out);

	rc = bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm", "--group",
	              "venue:XETR", "--group", "desk:rates", "--strategy", "gamma",
	              "--reason", "three at once", NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	cr_assert_gt(rev = at_rev(out), 0, "%s", out);
	cr_assert_eq(count_of(out, "at etcd revision"), 1, "one revision: %s", out);
	cr_assert(strstr(out, "group/venue:XETR") && strstr(out, "group/desk:rates") &&
	              strstr(out, "strategy/gamma"),
	          "%s", out);
	cr_assert(strstr(out, "applied on 2 of 2 hosts"), "%s", out);
	/* etcd: three latches, one mod_revision */
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "status", "--firm", NULL), 0);
	cr_assert_eq(mod_rev_of(out, "group/venue:XETR/manual_halt"), rev, "%s", out);
	cr_assert_eq(mod_rev_of(out, "group/desk:rates/manual_halt"), rev, "%s", out);
	cr_assert_eq(mod_rev_of(out, "strategy/gamma/manual_halt"), rev, "%s", out);
	/* the other host: all three applied, at that revision */
	cr_assert(mode_within(&b, alpha, BK_HALTED, WAIT_MS));
	cr_assert(mode_within(&b, beta, BK_HALTED, WAIT_MS));
	cr_assert(mode_within(&b, gamma, BK_HALTED, WAIT_MS));
	cr_assert_eq(bk_check(&b.c, delta), BK_ACTIVE, "delta is in no scope");
	cr_assert_eq(bk_check(&b.c, -1), BK_ACTIVE, "global untouched");
	cr_assert_geq(atomic_load(&b.c.shm->firm_revision), (uint64_t)rev);
	cr_assert_eq(bk_h_cli(&b.h, out, sizeof(out), "audit", "--json", NULL), 0);
	char want[64];
	snprintf(want, sizeof(want), "\"firm_revision\":%lld", rev);
	cr_assert_eq(count_of(out, want), 3, "three FIRM_APPLIED at %lld: %s", rev, out);
	/* the forwarding host's one record names every key */
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "audit", "--json", NULL), 0);
	cr_assert_eq(count_of(out, "\"kind\":\"FIRM_FORWARDED\""), 1, "%s", out);
	cr_assert(strstr(out, "/breaker/v1/d2/latch/strategy/gamma/manual_halt"), "%s",
	          out);
	cr_assert(strstr(out, "/breaker/v1/d2/latch/group/desk:rates/manual_halt"), "%s",
	          out);

	/* kill of two strategies: one transaction too */
	rc = bk_h_cli(&a.h, out, sizeof(out), "kill", "alpha", "delta", "--firm",
	              "--reason", "two", NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	cr_assert_eq(count_of(out, "at etcd revision"), 1, "%s", out);
	cr_assert(mode_within(&b, delta, BK_HALTED, WAIT_MS));

	host_down(&a);
	host_down(&b);
	bk_ec_stop(&ec);
}

/*
 * Issue 15: a firm resume goes to etcd only once its FIRM_FORWARDED record
 * is durable. The log's disk full for real (a 256 KiB tmpfs under the state
 * dir, in a private mount namespace, filled up as tests/test_faults.c does):
 * ERR_NOT_DURABLE, exit 1, the latch untouched in etcd; a firm trip still
 * halts (fail safe). Room again: the resume goes through.
 */
Test(firmcmd, a_firm_resume_that_cannot_be_made_durable_changes_nothing, .timeout = 180)
{
	static char pad[901];
	static const char chunk[4096];
	char mnt[256], filler[300], seen[32];
	struct bk_ec ec;
	struct host a;
	long long rev;
	int rc, fd, i;

	if (unshare(CLONE_NEWNS) < 0)
		cr_skip("no mount namespace here (%s; needs root)", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s",
	             strerror(errno));
	bk_ec_start(&ec, "xn");
	host_init(&a, &ec, "xn-a", "d3", "[strategies]\nnames = alpha, pad\n");
	snprintf(mnt, sizeof(mnt), "%s/state", a.h.dir);
	cr_assert_eq(mkdir(mnt, 0750), 0);
	cr_assert_eq(
	    mount("bk-full", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,mode=0750"),
	    0, "tmpfs: %s", strerror(errno));
	host_start(&a);
	cr_assert(mode_within(&a, -1, BK_ACTIVE, WAIT_MS), "host never ACTIVE");
	rc = bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm", NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	cr_assert(mode_within(&a, -1, BK_HALTED, WAIT_MS));
	cr_assert_gt(rev = firm_mod_rev(&a, "global/manual_halt"), 0, "%s", out);

	/* the disk full, and the log's last page used up (test_faults.c) */
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	cr_assert_geq(fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	for (i = 0; i < 1024; i++)
		if (write(fd, chunk, sizeof(chunk)) < 0)
			break;
	cr_assert_eq(errno, ENOSPC);
	close(fd);
	memset(pad, 'p', sizeof(pad) - 1);
	for (i = 0; i < 8 && (rc = bk_h_cli(&a.h, out, sizeof(out), "kill", "pad",
	                                    "--reason", pad, NULL)) == 0;
	     i++)
		;
	cr_assert_eq(rc, 5, "a trip that cannot be written is not durable: %s", out);

	/* the resume, and its resend (same id) while the first waits for the
	 * disk: one job, both refused with its answer */
	snprintf(seen, sizeof(seen), "%lld", rev);
	char *resume[] = {"resume",   "--firm",    "--revision", seen,
	                  "--reason", "disk full", NULL};
	char first[300];
	snprintf(first, sizeof(first), "%s/first.out", a.h.dir);
	pid_t p = fork();
	cr_assert_geq(p, 0);
	if (p == 0) { /* the first send (the test process has made no nng call) */
		int r = cli_id(&a, "6161", resume);
		FILE *f = fopen(first, "w");
		fprintf(f, "rc %d\n%s", r, out);
		fclose(f);
		_exit(0);
	}
	usleep(500 * 1000);
	rc = cli_id(&a, "6161", resume);
	cr_assert_eq(rc, 1, "%d: %s", rc, out);
	cr_assert(strstr(out, "ERR_NOT_DURABLE") && strstr(out, "nothing was changed"),
	          "%s", out);
	cr_assert_eq(waitpid(p, NULL, 0), p);
	static char fout[1 << 16];
	bk_h_slurp(first, fout, sizeof(fout));
	cr_assert(strncmp(fout, "rc 1\n", 5) == 0 && strstr(fout, "ERR_NOT_DURABLE"),
	          "the first send: %s", fout);
	usleep(500 * 1000);
	cr_assert_eq(firm_mod_rev(&a, "global/manual_halt"), rev,
	             "the latch must be untouched in etcd: %s", out);
	cr_assert(strstr(out, "HALTED"), "%s", out);
	cr_assert_eq(bk_check(&a.c, -1), BK_HALTED);
	/* a firm trip still halts, and says its record is not on disk */
	rc = bk_h_cli_all(&a.h, out, sizeof(out), "kill", "alpha", "--firm", "--reason",
	                  "while full", NULL);
	cr_assert_eq(rc, 5, "%d: %s", rc, out);
	cr_assert(strstr(out, "IN EFFECT") && strstr(out, "NOT ON DISK"), "%s", out);
	cr_assert(mode_within(&a, bk_client_resolve(&a.c, "alpha"), BK_HALTED, WAIT_MS));

	/* room again: the resume goes through */
	cr_assert_eq(unlink(filler), 0);
	uint64_t end = bk_h_mono_ms() + WAIT_MS;
	/* once the log is written again: ONE record for the resume and its resend */
	uint64_t end0 = bk_h_mono_ms() + WAIT_MS;
	do
		bk_h_cli(&a.h, out, sizeof(out), "audit", "--json", NULL);
	while (!strstr(out, "while full") && bk_h_mono_ms() < end0 &&
	       usleep(100000) == 0);
	cr_assert(strstr(out, "while full"), "the staged records never reached the disk");
	cr_assert_eq(
	    lines_with(out, "\"kind\":\"FIRM_FORWARDED\"", "\"command\":\"resume\""), 1,
	    "a resend in flight is no second record: %s", out);
	/* the same id again: etcd never had it, so it is sent (not "applied") */
	do
		rc = cli_id(&a, "6161", resume);
	while (rc != 0 && bk_h_mono_ms() < end && usleep(200000) == 0);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "HALTED -> REDUCE_ONLY"), "%s", out);
	cr_assert(mode_within(&a, -1, BK_REDUCE_ONLY, WAIT_MS));

	bk_client_detach(&a.c);
	bk_h_stop(&a.h);
	umount2(mnt, MNT_DETACH);
	bk_h_fini(&a.h);
	bk_ec_stop(&ec);
}

/* The CLI over tls+tcp:// as certificate who, with the host's config. */
static int tls_cli(struct host *o, const struct bk_pki *k, const char *who, char **args)
{
	char ca[128], cert[128], key[128];
	char *argv[40] = {bk_h_cli_bin(), "--config",  o->h.config, "--url",
	                  (char *)k->url, "--tls-ca",  ca,          "--tls-cert",
	                  cert,           "--tls-key", key};
	int n = 11;

	snprintf(ca, sizeof(ca), "%s/ca.pem", k->dir);
	snprintf(cert, sizeof(cert), "%s/%s.pem", k->dir, who);
	snprintf(key, sizeof(key), "%s/%s.key", k->dir, who);
	while (*args && n < 39)
		argv[n++] = *args++;
	argv[n] = NULL;
	return bk_h_run_as(&o->h, -1, -1, NULL, argv, out, sizeof(out));
}

#define tls(o, k, who, ...) tls_cli(o, k, who, (char *[]){__VA_ARGS__, NULL})

/*
 * Issue 15: TLS certificate roles gate --firm as they gate the local
 * command: a certificate with no role, or a trader's resume, is refused by
 * breakerd and nothing reaches etcd; a trader trips, an operator resumes.
 */
Test(firmcmd, tls_roles_gate_firm_commands, .timeout = 180)
{
	struct bk_ec ec;
	struct bk_pki k;
	struct host a;
	char extra[1024], seen[32];
	long long rev;

	bk_ec_start(&ec, "xt");
	bk_pki_make(&k, "xtpki",
	            "ca ca; crt server 127.0.0.1 ca; crt trader trader1 ca\n"
	            "crt op1 op1 ca; crt stranger stranger ca\n");
	snprintf(extra, sizeof(extra),
	         "[commands]\ntcp_url = %s\n[tls]\ncert_file = %s/server.pem\n"
	         "key_file = %s/server.key\nca_file = %s/ca.pem\n"
	         "roles = trader1:trader, op1:operator\n",
	         k.url, k.dir, k.dir, k.dir);
	host_up(&a, &ec, "xt-a", "d4", extra);
	cr_assert(mode_within(&a, -1, BK_ACTIVE, WAIT_MS), "host never ACTIVE");

	cr_assert_eq(tls(&a, &k, "stranger", "trip", "manual_halt", "--firm"), 1, "%s",
	             out);
	cr_assert(strstr(out, "ERR_UNAUTHORISED") &&
	              strstr(out, "'stranger' has no role"),
	          "%s", out);
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "status", "--firm", NULL), 0);
	cr_assert(strstr(out, "no firm latches"), "nothing may reach etcd: %s", out);

	cr_assert_eq(
	    tls(&a, &k, "trader", "trip", "manual_halt", "--firm", "--reason", "by cert"),
	    0, "%s", out);
	cr_assert(mode_within(&a, -1, BK_HALTED, WAIT_MS));
	cr_assert_gt(rev = firm_mod_rev(&a, "global/manual_halt"), 0, "%s", out);
	cr_assert(strstr(out, "tls:trader1"), "the latch names the certificate: %s", out);
	snprintf(seen, sizeof(seen), "%lld", rev);
	cr_assert_eq(tls(&a, &k, "trader", "resume", "--firm", "--revision", seen,
	                 "--reason", "mine"),
	             1, "%s", out);
	cr_assert(strstr(out, "role trader, which may not resume"), "%s", out);
	cr_assert_eq(firm_mod_rev(&a, "global/manual_halt"), rev, "%s", out);
	cr_assert_eq(tls(&a, &k, "op1", "resume", "--firm", "--revision", seen,
	                 "--reason", "checked"),
	             0, "%s", out);
	cr_assert(mode_within(&a, -1, BK_REDUCE_ONLY, WAIT_MS));
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "audit", "--json", NULL), 0);
	cr_assert(strstr(out, "\"peer_cn\":\"stranger\""), "refusal audited: %s", out);

	host_down(&a);
	bk_pki_remove(&k);
	bk_ec_stop(&ec);
}

/* Issue 15: `status` says a pending two-person proposal is a firm one. */
Test(firmcmd, status_names_a_firm_proposal, .timeout = 180)
{
	struct bk_ec ec;
	struct host a;
	char seen[32];
	int rc;

	bk_ec_start(&ec, "xp");
	host_up(&a, &ec, "xp-a", "d5",
	        "[auth]\nresume_uids = 0, 65534\ntwo_person_global_resume = true\n");
	cr_assert(mode_within(&a, -1, BK_ACTIVE, WAIT_MS), "host never ACTIVE");
	cr_assert_eq(
	    bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm", NULL), 0,
	    "%s", out);
	snprintf(seen, sizeof(seen), "%lld", firm_mod_rev(&a, "global/manual_halt"));
	rc = bk_h_cli_all(&a.h, out, sizeof(out), "resume", "--firm", "--revision", seen,
	                  "--reason", "clear", NULL);
	cr_assert(strstr(out, "two-person rule"), "%d: %s", rc, out);
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "status", NULL), 0, "%s", out);
	cr_assert(strstr(out, "PROPOSED firm global resume"), "%s", out);
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "status", "--json", NULL), 0);
	cr_assert(strstr(out, "\"firm\":true"), "%s", out);

	host_down(&a);
	bk_ec_stop(&ec);
}

/* Some key under prefix within WAIT_MS, read with the PKI's client cert. */
static bool anchored(struct bk_ec *ec, const struct bk_pki *k, const char *prefix)
{
	char cert[128], key[128], ca[128];
	struct bk_etcd_conn conn;
	uint64_t end = bk_h_mono_ms() + WAIT_MS;
	bool found = false;
	int64_t rev;
	cJSON *rep;

	snprintf(cert, sizeof(cert), "%s/client.pem", k->dir);
	snprintf(key, sizeof(key), "%s/client.key", k->dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", k->dir);
	cr_assert_eq(bk_etcd_conn_init(&conn, ec->endpoints, 2000), 0);
	bk_etcd_conn_tls(&conn, cert, key, ca);
	while (!found && bk_h_mono_ms() < end) {
		if (bk_etcd_range_prefix(&conn, prefix, false, true, &rep, &rev) == 0) {
			found = cJSON_GetArraySize(cJSON_GetObjectItem(rep, "kvs")) > 0;
			cJSON_Delete(rep);
		}
		if (!found)
			usleep(100000);
	}
	bk_etcd_conn_free(&conn);
	return found;
}

/*
 * etcd client certificates: members with --client-cert-auth trusting our
 * CA. A host with [cluster] cert_file/key_file/ca_file mirrors, and its
 * forwarded trip reaches etcd; a host without a certificate, or with one
 * from another CA, never gets contact (global HALTED, authority_lost) and
 * its firm trip is ERR_FIRM with nothing in etcd.
 */
Test(firmcmd, etcd_client_certificates, .timeout = 180)
{
	struct bk_ec ec;
	struct bk_pki k;
	struct host a, b;
	char extra[1024];
	int rc;

	bk_pki_make(
	    &k, "xcpki",
	    "ca ca; ca rogue; crt server localhost ca; crt client breaker-host ca\n"
	    "crt fake breaker-host rogue\n");
	bk_ec_start_tls(&ec, "xc", k.dir);
	snprintf(extra, sizeof(extra),
	         "cert_file = %s/client.pem\nkey_file = %s/client.key\nca_file = "
	         "%s/ca.pem\n",
	         k.dir, k.dir, k.dir);
	host_up(&a, &ec, "xc-a", "d6", extra);
	cr_assert(mode_within(&a, -1, BK_ACTIVE, WAIT_MS),
	          "a host with a client certificate never got contact");
	rc = bk_h_cli(&a.h, out, sizeof(out), "trip", "manual_halt", "--firm", NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	cr_assert(strstr(out, "applied on 1 of 1 hosts"), "%s", out);
	cr_assert(mode_within(&a, -1, BK_HALTED, WAIT_MS));
	/* the audit chain head is anchored with the certificate too (a trip is
	 * anchored at once) */
	cr_assert(anchored(&ec, &k, "/breaker/v1/d6/anchors/xc-a/"),
	          "no anchor in etcd from the host with a client certificate");

	/* a certificate from another CA: the TLS handshake fails, no contact */
	snprintf(extra, sizeof(extra),
	         "cert_file = %s/fake.pem\nkey_file = %s/fake.key\nca_file = "
	         "%s/ca.pem\n",
	         k.dir, k.dir, k.dir);
	host_up(&b, &ec, "xc-b", "d6", extra);
	usleep(1500 * 1000);
	cr_assert_eq(bk_check(&b.c, -1), BK_HALTED, "no contact: fail closed");
	cr_assert_eq(BK_STATE_REASON(atomic_load(&b.c.shm->global.state)),
	             BK_R_AUTHORITY_LOST);
	rc = bk_h_cli_all(&b.h, out, sizeof(out), "kill", "alpha", "--firm", "--reason",
	                  "x", NULL);
	cr_assert_neq(rc, 0, "%s", out);
	cr_assert_eq(bk_h_cli(&a.h, out, sizeof(out), "status", "--firm", NULL), 0, "%s",
	             out);
	cr_assert_null(strstr(out, "strategy/alpha"), "%s", out);
	host_down(&b);

	host_down(&a);
	bk_ec_stop(&ec);
	bk_pki_remove(&k);
}

/* [cluster] TLS keys: cert and key together, absolute paths, https only. */
Test(firmcmd, a_bad_cluster_tls_setting_is_refused)
{
	static const char *const bad[] = {
	    "[cluster]\nname = x\nendpoints = https://h:2379\ncert_file = /x/c.pem\n",
	    "[cluster]\nname = x\nendpoints = https://h:2379\nkey_file = /x/c.key\n",
	    "[cluster]\nname = x\nendpoints = https://h:2379\ncert_file = c.pem\n"
	    "key_file = /x/c.key\n",
	    "[cluster]\nname = x\nendpoints = https://h:2379,http://g:2379\n"
	    "cert_file = /x/c.pem\nkey_file = /x/c.key\n",
	    "[cluster]\nname = x\nendpoints = http://h:2379\nca_file = /x/ca.pem\n",
	};
	char path[] = "/tmp/bk-firmcmd-cfg-XXXXXX", err[256];
	struct bk_config cfg;
	FILE *f;
	int fd;

	cr_assert_geq(fd = mkstemp(path), 0);
	close(fd);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_not_null(f = fopen(path, "w"));
		fputs(bad[i], f);
		fclose(f);
		cr_assert_eq(bk_config_defaults(&cfg, NULL), 0);
		cr_assert_eq(bk_config_load(&cfg, path, err, sizeof(err)), -EINVAL,
		             "accepted: %s", bad[i]);
	}
	cr_assert_not_null(f = fopen(path, "w"));
	fputs("[cluster]\nname = x\nendpoints = https://h:2379\ncert_file = /x/c.pem\n"
	      "key_file = /x/c.key\nca_file = /x/ca.pem\n",
	      f);
	fclose(f);
	cr_assert_eq(bk_config_load(&cfg, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(cfg.cluster_cert_file, "/x/c.pem");
	cr_assert_str_eq(cfg.cluster_ca_file, "/x/ca.pem");
	unlink(path);
}
