/*
 * Red team of the trust, transport, command and rules fixes: variations the
 * fixes' own tests do not play, each against a real breakerd and the real CLI. Each test
 * here reproduced a failure before its fix.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_mode.h"
#include "bk_rpc.h"
#include "bk_tel.h"

static char out[262144];

/* tick 1 ms; extra INI lines after [rules] */
static void rig_up(struct bk_rig *r, const char *tag, const char *extra)
{
	char ini[4096];

	snprintf(ini, sizeof(ini),
	         "tick_period_us = 1000\n[strategies]\nnames = alpha, beta\n[rules]\n%s",
	         extra ? extra : "");
	bk_rig_up(r, tag, ini);
}

/* `breaker resume --reason WHY` until it exits 0 (the window emptying), up to ms. */
static int resume_until_ok(struct bk_rig *r, unsigned ms, const char *why)
{
	uint64_t end = bk_h_mono_ms() + ms;
	int rv;

	do {
		rv = bk_h_cli_all(&r->h, out, sizeof(out), "resume", "--reason", why,
		                  NULL);
		if (rv == 0)
			return 0;
		usleep(20000);
	} while (bk_h_mono_ms() < end);
	return rv;
}

/*
 * Rate-rule resume variation: a global reject_rate latch that alpha tripped. During the
 * probe, alpha's venue still rejects 4 of its 5 orders (too few for alpha's
 * own rule to judge), while beta sends 25 clean orders. Before the fix the
 * global resume to ACTIVE was accepted on beta's evidence: the orders of a
 * strategy that never tripped cleared the latch of one still rejected.
 */
Test(redteam, global_reject_resume_needs_the_tripping_strategys_own_orders)
{
	struct bk_rig r;

	rig_up(&r, "rt-rejx",
	       "reject_rate.max = 0.2\nreject_rate.min_orders = 20\n"
	       "reject_rate.window_ms = 1000\nreject_rate.scope = global\n"
	       "heartbeat.enabled = false\n");
	bk_rig_ticked(&r);
	bk_report_order(&r.t, r.alpha, 40);
	bk_report_reject(&r.t, r.alpha, 30);
	cr_assert(bk_rig_mode_within(&r, -1, BK_HALTED, 2000));
	cr_assert_eq(resume_until_ok(&r, 6000, "probe"), 0, "%s", out);
	cr_assert_eq(resume_until_ok(&r, 2000, "probe"), 0, "%s", out);
	cr_assert_eq(bk_check(&r.c, -1), BK_CAUTIOUS);
	/* alpha still rejected, on few orders; beta clean and busy */
	bk_report_order(&r.t, r.alpha, 5);
	bk_report_reject(&r.t, r.alpha, 4);
	bk_report_order(&r.t, r.beta, 25);
	bk_rig_ticked(&r);
	int rc = bk_h_cli_all(&r.h, out, sizeof(out), "resume", "--reason",
	                      "beta looks fine", NULL);
	cr_assert_eq(rc, 1, "beta's orders must not clear alpha's latch: %s", out);
	cr_assert(strstr(out, "ERR_CONDITION_HOLDS"), "%s", out);
	cr_assert(strstr(out, "alpha"), "names the strategy lacking evidence: %s", out);
	cr_assert_eq(bk_check(&r.c, -1), BK_CAUTIOUS, "nothing changed");
	bk_rig_down(&r);
}

/* breakerd --check-config on a config of extra INI lines; its output in out; the exit
 * code. (bk_h_init would load the config itself and fail the test first.) */
static int check_config(const char *extra)
{
	const char *bin = getenv("BREAKERD");
	char dir[64] = "/tmp/bk-rt-check-XXXXXX", path[128], ini[128];
	char *argv[] = {(char *)(bin && *bin ? bin : "breakerd"), "--config", ini,
	                "--check-config", NULL};
	FILE *f;
	int rv;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(ini, sizeof(ini), "%s/breaker.ini", dir);
	cr_assert_not_null(f = fopen(ini, "w"));
	fprintf(
	    f,
	    "[breaker]\ninstance = rtcheck\nrun_dir = %s/run\nstate_dir = %s/state\n%s",
	    dir, dir, extra);
	fclose(f);
	rv = bk_h_run_in(dir, -1, -1, NULL, argv, out, sizeof(out));
	snprintf(path, sizeof(path), "%s/cli.out", dir);
	unlink(path);
	unlink(ini);
	rmdir(dir);
	return rv;
}

/*
 * Forged telemetry through the segment: telemetry_mode = 0666 was accepted (documented
 * range 0600 .. 0666). Then any local user writes any strategy's counters:
 * uid 65534 adding 1,000 clean orders a millisecond to alpha's slot kept
 * alpha ACTIVE while its engine had 80% of its orders rejected (reproduced
 * by hand with the daemon and CLI; without the writer alpha tripped). The
 * forged remote Report, minus the permission check. Telemetry is the
 * engines': a group, never everyone.
 */
Test(redteam, world_writable_telemetry_mode_is_refused)
{
	cr_assert_eq(check_config("telemetry_mode = 0666\n"), 2,
	             "0666 must be refused: %s", out);
	cr_assert(strstr(out, "telemetry_mode"), "names the key: %s", out);
	cr_assert(strstr(out, "writable by others"), "says why: %s", out);
	cr_assert_eq(check_config("telemetry_mode = 0662\n"), 2, "0662 too: %s", out);
	/* the documented ones stay */
	cr_assert_eq(check_config("telemetry_mode = 0664\n"), 0, "0664: %s", out);
	cr_assert_eq(check_config("telemetry_mode = 0660\n"), 0, "0660: %s", out);
}

/*
 * Squatted segments, for the telemetry segment: with no daemon running (after a reboot),
 * uid 65534 makes /dev/shm/breaker.<instance>.tel with a valid header. The
 * engine's bk_tel_attach took it (no owner check, unlike the state
 * segment's): its numbers then went where breakerd never reads (breakerd
 * replaces a foreign telemetry segment at start, the engine keeps the old
 * mapping), so no rule could see it, not even the heartbeat (never armed).
 * Attach must refuse a telemetry segment breakerd did not make.
 */
static void forge_telemetry_and_attach(mode_t mode);

Test(redteam, engine_refuses_a_telemetry_segment_another_user_made)
{
	for (int i = 0; i < 2; i++) /* others may write it; only its owner may */
		forge_telemetry_and_attach(i ? 0600 : 0666);
}

static void forge_telemetry_and_attach(mode_t mode)
{
	char name[96];
	struct bk_tel_client t;
	pid_t pid;
	int st, rv;

	snprintf(name, sizeof(name), "/breaker.t%d-rt-telforge.tel", (int)getpid());
	shm_unlink(name);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) { /* the hostile user: no nng here */
		struct bk_tel *f;
		int fd;

		bk_h_become(65534, 65534, 10);
		fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0666);
		if (fd < 0 || fchmod(fd, mode) || ftruncate(fd, BK_TEL_SIZE))
			_exit(11);
		f = mmap(NULL, BK_TEL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (f == MAP_FAILED)
			_exit(12);
		f->hdr.magic = BK_TEL_MAGIC;
		f->hdr.slot_size = sizeof(struct bk_tel_slot);
		f->hdr.capacity = BK_MAX_STRATEGIES;
		f->hdr.segment_size = BK_TEL_SIZE;
		BK_STORE_REL(&f->hdr.version, BK_TEL_VERSION);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "forger: %d", st);
	snprintf(name, sizeof(name), "t%d-rt-telforge", (int)getpid());
	rv = bk_tel_attach(&t, name);
	if (rv == 0)
		bk_tel_detach(&t);
	bk_tel_unlink(name);
	cr_assert_eq(
	    rv, -EPERM,
	    "a telemetry segment of uid 65534, mode %o, must be refused (got %d)",
	    (unsigned)mode, rv);
}

/*
 * Durable rule state variation: RULE_STATE records are rate-limited (one per strategy per
 * second), and a clean stop wrote none of the pending ones. A drawdown peak
 * reached less than a second before `systemctl restart breakerd` was lost:
 * PnL 1000 (recorded), 3000 (the peak, not yet recorded), restart, PnL 2000
 * - a drawdown of 1000 against a limit of 500 - and the restarted daemon saw
 * the peak as 2000 (no trip). A clean stop records what changed.
 */
Test(redteam, drawdown_peak_just_before_a_clean_restart_survives_it)
{
	struct bk_rig r;

	rig_up(&r, "rt-peak",
	       "drawdown.max = 500\nheartbeat.enabled = false\n"
	       "invariant.enabled = false\n");
	bk_report_marks(&r.t, r.alpha, 0, 0, 1000);
	bk_rig_ticked(&r); /* the first RULE_STATE: peak 1000 */
	bk_report_marks(&r.t, r.alpha, 0, 0, 3000);
	bk_rig_ticked(&r); /* peak 3000, inside the record's one-second rate limit */
	bk_client_detach(&r.c);
	cr_assert_eq(bk_h_stop(&r.h), 0);
	bk_report_marks(&r.t, r.alpha, 0, 0, 2000); /* while breakerd restarts */
	bk_h_start(&r.h);
	bk_h_attach(&r.h, &r.c);
	cr_assert(
	    bk_rig_mode_within(&r, r.alpha, BK_HALTED, 3000),
	    "drawdown 1000 from the peak 3000 (limit 500) must trip after the restart");
	bk_rig_down(&r);
}

/*
 * rules.md cooldown across a restart: the cooldown counts from the
 * trip, which only the running daemon knew (tripped_ns, not replayed). A
 * rule's own latch whose condition had cleared when breakerd restarted was
 * never stepped again: the configured half-open never came (HALTED until an
 * operator resumed). It also made the restart half of
 * operator_retrip_of_a_rule_latch_is_not_released_by_cooldown unable to fail.
 */
Test(redteam, rule_cooldown_still_steps_its_own_latch_after_a_restart)
{
	struct bk_rig r;

	rig_up(&r, "rt-cool",
	       "heartbeat.enabled = false\ninvariant.enabled = false\n"
	       "exposure.max = 1000\nexposure.cooldown_ms = 1500\n"
	       "exposure.cooldown_to = reduce-only\n");
	bk_report_marks(&r.t, r.alpha, 0, 5000, 0);
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_HALTED, 3000),
	          "the exposure rule trips");
	bk_report_marks(&r.t, r.alpha, 0, 0, 0); /* the condition clears */
	bk_rig_ticked(&r);
	bk_client_detach(&r.c);
	cr_assert_eq(bk_h_stop(&r.h), 0);
	bk_h_start(&r.h);
	bk_h_attach(&r.h, &r.c);
	cr_assert_eq(bk_check(&r.c, r.alpha), BK_HALTED, "the latch is replayed");
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_REDUCE_ONLY, 6000),
	          "its cooldown steps it after the restart too");
	/* and an operator's latch still is not stepped after a restart */
	cr_assert_eq(bk_h_cli_all(&r.h, out, sizeof(out), "trip", "exposure_limit",
	                          "--strategy", "alpha", "--reason", "desk holds it",
	                          NULL),
	             0, "%s", out);
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_HALTED, 2000));
	bk_client_detach(&r.c);
	cr_assert_eq(bk_h_stop(&r.h), 0);
	bk_h_start(&r.h);
	bk_h_attach(&r.h, &r.c);
	usleep(3000 * 1000); /* two cooldowns */
	cr_assert_eq(bk_check(&r.c, r.alpha), BK_HALTED, "the operator's halt stays");
	bk_rig_down(&r);
}

/* The CLI as root (uid < 0) or as uid, BREAKER_REQUEST_ID=id if given; all
 * output in out; the exit code. */
static int cli_as(struct bk_h *h, int uid, const char *id, char **args)
{
	return bk_h_cli_as(h, uid, uid, id, args, out, sizeof(out));
}

/*
 * Request id variation: request ids are remembered in a direct-mapped table
 * of 1,024 that every applied command writes, and trip is open to anyone. An
 * operator's resume whose answer was lost (exit 3, "may have been applied")
 * is resent under the same id - by hand as the hint says, or by the CLI's
 * retry over the other transport. If uid 65534 trips an already-halted
 * strategy 1,100 times meanwhile (each one a record), the id is forgotten
 * and the resend is applied again: two stages instead of one. Ids of
 * commands only resume holders may send must not be evictable by others.
 */
Test(redteam, trip_flood_by_another_user_does_not_make_a_resend_apply_twice,
     .timeout = 120)
{
	struct bk_h h;
	char run[256];
	pid_t pid;
	int st;

	bk_h_init(&h, "rt-evict",
	          "[commands]\nsocket_mode = 0666\n[metrics]\nlisten =\n"
	          "[strategies]\nnames = s1, s2\n[rules]\nheartbeat.enabled = false\n");
	bk_h_start(&h);
	snprintf(run, sizeof(run), "%s/run", h.dir);
	cr_assert_eq(chmod(h.dir, 0755), 0);
	cr_assert_eq(chmod(run, 0755), 0);
	cr_assert_eq(cli_as(&h, -1, NULL,
	                    (char *[]){"trip", "manual_halt", "--reason", "stop", NULL}),
	             0, "%s", out);
	cr_assert_eq(
	    cli_as(&h, -1, "424242", (char *[]){"resume", "--reason", "one stage", NULL}),
	    0, "%s", out);
	cr_assert(strstr(out, "HALTED -> REDUCE_ONLY"), "%s", out);
	/* the hostile user: trips on the unix socket (no nng in this child) */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct bk_rpc rpc;

		bk_h_become(65534, 65534, 10);
		for (uint64_t id = 1; id <= 1100; id++) {
			Breaker__Request req = BREAKER__REQUEST__INIT;
			Breaker__Trip t = BREAKER__TRIP__INIT;
			Breaker__Reply *rep = NULL;

			t.strategy = "s2";
			t.has_reason_code = 1;
			t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
			t.reason = "flood";
			req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
			req.trip = &t;
			req.has_request_id = 1;
			req.request_id = id;
			if (bk_rpc_open(&rpc, h.cfg.local_url, 5000) < 0)
				_exit(11);
			if (bk_rpc_call(&rpc, &req, &rep) < 0 || rep->status != 0)
				_exit(12);
			breaker__reply__free_unpacked(rep, NULL);
			bk_rpc_close(&rpc);
		}
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the flood ran: %d", st);
	/* the operator resends the resume whose answer it did not see */
	cr_assert_eq(
	    cli_as(&h, -1, "424242", (char *[]){"resume", "--reason", "one stage", NULL}),
	    0, "%s", out);
	cr_assert(strstr(out, "already applied"), "a resend, not a second resume: %s",
	          out);
	cr_assert_eq(cli_as(&h, -1, NULL, (char *[]){"status", NULL}), 0, "%s", out);
	cr_assert(strstr(out, "global: REDUCE_ONLY"), "one stage only: %.600s", out);
	bk_h_fini(&h);
	bk_tel_unlink(h.instance);
}

/*
 * Config reader variation (a careless operator): inih reads at most 199 bytes of a
 * line and the config reader handed it the rest as a line of its own. A
 * comment in [auth] whose 200th byte began "resume_uids = 65534" set it:
 * uid 65534 then resumed a global halt (reproduced with the daemon and CLI).
 * A line too long to read whole is refused, naming it.
 */
Test(redteam, text_past_a_long_lines_limit_never_becomes_a_setting)
{
	char ini[512];

	snprintf(ini, sizeof(ini), "[auth]\n; %.*s%s\n", 197,
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	         "resume_uids = 65534");
	cr_assert_eq(check_config(ini), 2, "a cut line must be refused: %s", out);
	cr_assert(strstr(out, "line 6") && strstr(out, "longer than"), "names it: %s",
	          out);
	/* the longest line inih reads whole (198 bytes and its newline) is fine */
	snprintf(ini, sizeof(ini), "[auth]\n; %.*s\nresume_uids = 0\n", 196,
	         "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
	         "yyyyyyyyyy"
	         "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
	         "yyyyyyyyyy"
	         "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
	cr_assert_eq(strchr(strchr(ini, ';'), '\n') - strchr(ini, ';'), 198, "198 bytes");
	cr_assert_eq(check_config(ini), 0, "%s", out);
	/* 199 bytes and its newline: inih gets the 199, then an empty line */
	snprintf(ini, sizeof(ini), "[auth]\n; %.*sz\nresume_uids = 0\n", 196,
	         "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
	         "yyyyyyyyyy"
	         "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
	         "yyyyyyyyyy"
	         "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
	cr_assert_eq(check_config(ini), 0, "%s", out);
}

/*
 * Reload variation (a careless operator): a reload applies [rules] only. An
 * operator who took a user out of resume_uids and ran `systemctl reload
 * breakerd` got a CONFIG record saying "no change", and the user could
 * still resume. The record (and the log) must say the [auth] change is not
 * in force until a restart.
 */
Test(redteam, reload_says_an_auth_change_is_not_applied)
{
	struct bk_h h;
	FILE *f;
	bool seen = false;

	static char ini[4096];
	char *at;

	bk_h_init(&h, "rt-hupauth",
	          "[metrics]\nlisten =\n[strategies]\nnames = s1\n[rules]\n"
	          "heartbeat.enabled = false\n[auth]\nresume_uids = 0, 65534\n");
	bk_h_start(&h);
	/* uid 65534 is revoked in the file, then the operator reloads */
	cr_assert_gt(bk_h_slurp(h.config, ini, sizeof(ini)), 0);
	cr_assert_not_null(at = strstr(ini, "0, 65534"));
	memcpy(at, "0\n", 3);
	at[3] = '\0';
	cr_assert_not_null(f = fopen(h.config, "w"));
	fputs(ini, f);
	fclose(f);
	cr_assert_eq(kill(h.pid, SIGHUP), 0);
	for (int i = 0; i < 100 && !seen; i++) {
		usleep(20000);
		cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", NULL), 0, "%s", out);
		seen = strstr(out, "CONFIG") != NULL;
	}
	cr_assert(seen, "a CONFIG record: %s", out);
	cr_assert(strstr(out, "[auth]") && strstr(out, "NOT applied") &&
	              strstr(out, "restart"),
	          "the record says the [auth] change waits for a restart: %s", out);
	bk_h_fini(&h);
	bk_tel_unlink(h.instance);
}

/*
 * Squatted segment variation: where fs.protected_hardlinks is 0 (older kernels without
 * systemd's default, some containers), any user may hard-link a file they
 * can read. /dev/shm/breaker.<prod> made as a hard link to a running test
 * instance's segment has the right owner, mode and layout, an ACTIVE word
 * and a fresh heartbeat: engines of <prod> attached it and traded on the
 * test instance's state, and a breakerd started for <prod> took it as its
 * own (two daemons writing one segment). The test makes the link as root
 * when this kernel protects hard links (what uid 65534 could do elsewhere).
 */
Test(redteam, a_hard_linked_segment_is_refused_by_engines_and_breakerd)
{
	struct bk_h test, prod;
	struct bk_client c;
	char from[128], to[128];
	int rv;

	bk_h_init(&test, "rt-hl-test", "[metrics]\nlisten =\n");
	bk_h_start(&test);
	bk_h_init(&prod, "rt-hl-prod", "[metrics]\nlisten =\n");
	snprintf(from, sizeof(from), "/dev/shm/breaker.%s", test.instance);
	snprintf(to, sizeof(to), "/dev/shm/breaker.%s", prod.instance);
	cr_assert_eq(link(from, to), 0, "link: %s", strerror(errno));
	rv = bk_client_attach(&c, prod.instance);
	if (rv == 0)
		bk_client_detach(&c);
	cr_assert_eq(rv, -EPERM,
	             "an engine must refuse a segment with two names (got %d)", rv);
	/* breakerd for prod refuses it too, saying why */
	{
		const char *bin = getenv("BREAKERD");
		char log[256];
		pid_t pid = fork();
		int st;

		cr_assert_geq(pid, 0);
		if (pid == 0) {
			int null = open("/dev/null", O_RDWR);
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			execl(bin && *bin ? bin : "breakerd", "breakerd", "--config",
			      prod.config, "--log-file", prod.log, (char *)NULL);
			_exit(127);
		}
		for (int i = 0; i < 300 && waitpid(pid, &st, WNOHANG) == 0; i++)
			usleep(10000);
		if (waitpid(pid, &st, WNOHANG) == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			unlink(to);
			cr_assert_fail(
			    "breakerd for prod started on the test instance's segment");
		}
		bk_h_slurp(prod.log, log, sizeof(log));
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "refused to start");
	}
	bk_h_slurp(prod.log, out, sizeof(out));
	cr_assert(strstr(out, "hard link"), "says why: %s", out);
	unlink(to);
	bk_h_fini(&prod);
	bk_h_fini(&test);
	bk_tel_unlink(test.instance);
}

static Breaker__Status report_balance(struct bk_rpc *rpc, const char *s, uint64_t fills,
                                      double balance)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Report r = BREAKER__REPORT__INIT;
	Breaker__Reply *rep = NULL;
	Breaker__Status st;

	r.strategy = (char *)s;
	r.has_fills = r.has_balance = r.has_fill_cash = r.has_fees = 1;
	r.fills = fills;
	r.balance = balance;
	req.cmd_case = BREAKER__REQUEST__CMD_REPORT;
	req.report = &r;
	if (bk_rpc_call(rpc, &req, &rep) != 0)
		return (Breaker__Status)-1;
	st = rep->status;
	breaker__reply__free_unpacked(rep, NULL);
	return st;
}

/*
 * The stated balance base, for remote engines: every Report with fills = 0 was taken as a
 * new opening-balance statement, so a remote engine's balance falling 75.00 with no fill
 * (1000 then 925, fills 0) was absorbed as a new base and the balance invariant never
 * tripped (with fills = 1 the same debit tripped).
 */
Test(redteam, remote_leak_before_the_first_fill_trips_the_invariant)
{
	struct bk_rig r;
	struct bk_rpc rpc;
	bool tripped;

	rig_up(&r, "rt-rleak",
	       "heartbeat.enabled = false\ninvariant.enabled = true\n"
	       "[strategies]\nremote = beta\n");
	cr_assert_eq(bk_rpc_open(&rpc, r.h.cfg.cmd_url, 3000), 0);
	cr_assert_eq(report_balance(&rpc, "beta", 0, 1000.0), 0); /* the statement */
	bk_rig_ticked(&r);
	cr_assert_eq(report_balance(&rpc, "beta", 0, 925.0), 0); /* 75 gone, no fill */
	tripped = bk_rig_mode_within(&r, r.beta, BK_HALTED, 2000);
	bk_rpc_close(&rpc);
	cr_assert(tripped, "an unexplained 75.00 debit before the first fill must trip");
	bk_rig_down(&r);
}
