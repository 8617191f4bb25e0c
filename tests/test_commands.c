/*
 * Integration: command handling against a real
 * breakerd and the real CLI. Request ids that de-duplicate only a genuine
 * resend, remote reports as their own permission and declared source,
 * operator-owned latches, and the smaller bad inputs.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_mode.h"
#include "bk_tel.h"

#define NOBODY 65534
#define STRATS                                                                           \
	"[strategies]\nnames = s1, s2\n[rules]\nheartbeat.enabled = false\n"             \
	"[metrics]\nlisten =\n"

static char out[1 << 16];

/*
 * The CLI as uid/gid (uid < 0: as us), with BREAKER_REQUEST_ID=id when id
 * is non-NULL; stdout and stderr in out. The exit code, -1 on a signal.
 */
static int cli_as(struct bk_h *h, int uid, const char *id, char **args)
{
	return bk_h_cli_as(h, uid, uid, id, args, out, sizeof(out));
}

#define cli(h, ...)            cli_as(h, -1, NULL, (char *[]){__VA_ARGS__, NULL})
#define cli_id(h, id, ...)     cli_as(h, -1, id, (char *[]){__VA_ARGS__, NULL})
#define cli_nobody(h, id, ...) cli_as(h, NOBODY, id, (char *[]){__VA_ARGS__, NULL})

static struct bk_h *up(struct bk_h *h, const char *tag, const char *extra)
{
	bk_h_init(h, tag, extra);
	bk_h_start(h);
	return h;
}

static void down(struct bk_h *h)
{
	bk_h_fini(h);
	bk_tel_unlink(h->instance);
}

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: runs the CLI as another user");
}

/* ---- request ids de-duplicate only a genuine resend ----------------------- */

Test(commands, reused_request_id_for_another_command_is_refused)
{
	struct bk_h h;

	up(&h, "rid-other", STRATS);
	cr_assert_eq(cli_id(&h, "777001", "kill", "s1", "--reason", "first"), 0, "%s",
	             out);
	/* a new emergency stop that happens to carry the same id */
	int rc = cli_id(&h, "777001", "emergency-stop", "--reason", "second");
	cr_assert_neq(rc, 0, "a reused id must not succeed: %s", out);
	cr_assert(strstr(out, "ERR_REQUEST_ID_REUSED"), "%s", out);
	cr_assert_null(strstr(out, "already applied"), "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_ACTIVE, "nothing applied");
	/* the same command with a fresh id goes through */
	cr_assert_eq(cli(&h, "emergency-stop", "--reason", "second"), 0, "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED);
	down(&h);
}

Test(commands, genuine_resend_still_deduplicates_to_ok)
{
	struct bk_h h;

	up(&h, "rid-same", STRATS);
	cr_assert_eq(cli_id(&h, "777002", "kill", "s1", "--reason", "x"), 0, "%s", out);
	cr_assert_eq(cli_id(&h, "777002", "kill", "s1", "--reason", "x"), 0, "%s", out);
	cr_assert(strstr(out, "already applied"), "%s", out);
	/* one KILL record, not two */
	cr_assert_eq(cli(&h, "audit", "--json"), 0, "%s", out);
	cr_assert_eq(bk_h_count(out, "\"request_id\":777002,"), 1, "%s", out);
	down(&h);
}

Test(commands, reused_request_id_is_refused_across_a_restart)
{
	struct bk_h h;

	up(&h, "rid-restart", STRATS);
	cr_assert_eq(cli_id(&h, "777003", "kill", "s1", "--reason", "first"), 0, "%s",
	             out);
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_h_start(&h);
	cr_assert_neq(cli_id(&h, "777003", "emergency-stop"), 0, "%s", out);
	cr_assert(strstr(out, "ERR_REQUEST_ID_REUSED"), "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_ACTIVE);
	/* the genuine resend, after the restart, is still the same command */
	cr_assert_eq(cli_id(&h, "777003", "kill", "s1", "--reason", "first"), 0, "%s",
	             out);
	cr_assert(strstr(out, "already applied"), "%s", out);
	down(&h);
}

Test(commands, reused_request_id_is_refused_across_callers)
{
	struct bk_h h;

	need_root();
	up(&h, "rid-callers",
	   STRATS "[commands]\nsocket_mode = 0666\n"
	          "[auth]\ntrip_uids = 0, 65534\nkill_uids = 0, 65534\n");
	bk_h_open_dirs(&h);
	cr_assert_eq(cli_nobody(&h, "777004", "kill", "s2", "--reason", "nobody's"), 0,
	             "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, "s2"), BK_HALTED);
	/* root's kill of s1 with the id nobody used for s2 */
	cr_assert_neq(cli_id(&h, "777004", "kill", "s1", "--reason", "root's"), 0, "%s",
	              out);
	cr_assert(strstr(out, "ERR_REQUEST_ID_REUSED"), "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, "s1"), BK_ACTIVE);
	/* and the same payload from another caller is not "the same" either */
	cr_assert_neq(cli_id(&h, "777004", "kill", "s2", "--reason", "nobody's"), 0, "%s",
	              out);
	cr_assert(strstr(out, "ERR_REQUEST_ID_REUSED"), "%s", out);
	down(&h);
}

/* ---- a latch an operator set belongs to the operator ------------------------ */

#define EXPOSURE                                                                         \
	"tick_period_us = 1000\n[metrics]\nlisten =\n[strategies]\nnames = s1, s2\n"     \
	"[rules]\nheartbeat.enabled = false\nexposure.max = 1000\n"                      \
	"exposure.cooldown_ms = 100\nexposure.cooldown_to = reduce-only\n"

struct engine {
	struct bk_client c;
	struct bk_tel_client t;
	int s1;
};

static void engine_up(struct bk_h *h, struct engine *e)
{
	int rv = -EAGAIN;

	bk_h_attach(h, &e->c);
	for (int i = 0; i < 200 && rv; i++)
		if ((rv = bk_tel_attach(&e->t, h->instance)) != 0)
			usleep(10000);
	cr_assert_eq(rv, 0, "telemetry attach: %s", strerror(-rv));
	e->s1 = bk_client_resolve(&e->c, "s1");
	cr_assert_geq(e->s1, 0);
}

static void engine_down(struct engine *e)
{
	bk_tel_detach(&e->t);
	bk_client_detach(&e->c);
}

/* Poll (5 s at most) until slot's mode is want; true if it got there. */
static bool mode_becomes(struct engine *e, int slot, int want)
{
	for (int i = 0; i < 1000; i++) {
		if ((int)bk_check(&e->c, slot) == want)
			return true;
		usleep(5000);
	}
	return false;
}

/* The rig itself: the exposure rule trips, and its cooldown steps it down. */
Test(commands, exposure_cooldown_steps_its_own_latch)
{
	struct bk_h h;
	struct engine e;

	up(&h, "own-cool", EXPOSURE);
	engine_up(&h, &e);
	bk_report_marks(&e.t, e.s1, 0, 5000, 0);
	cr_assert(mode_becomes(&e, e.s1, BK_HALTED), "the exposure rule trips");
	bk_report_marks(&e.t, e.s1, 0, 0, 0);
	cr_assert(mode_becomes(&e, e.s1, BK_REDUCE_ONLY), "its cooldown steps it");
	engine_down(&e);
	down(&h);
}

Test(commands, operator_retrip_of_a_rule_latch_is_not_released_by_cooldown)
{
	struct bk_h h;
	struct engine e;

	up(&h, "own-op", EXPOSURE);
	engine_up(&h, &e);
	bk_report_marks(&e.t, e.s1, 0, 5000, 0);
	cr_assert(mode_becomes(&e, e.s1, BK_HALTED), "the exposure rule trips");
	/* the operator trips the same latch: from now on it is theirs */
	cr_assert_eq(cli(&h, "trip", "exposure_limit", "--strategy", "s1", "--reason",
	                 "desk holds it"),
	             0, "%s", out);
	bk_report_marks(&e.t, e.s1, 0, 0, 0); /* the condition clears */
	usleep(600 * 1000);                   /* six cooldowns */
	cr_assert_eq(bk_check(&e.c, e.s1), BK_HALTED, "still the operator's halt");
	/* ... also once replayed from the log */
	engine_down(&e);
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_h_start(&h);
	engine_up(&h, &e);
	bk_report_marks(&e.t, e.s1, 0, 0, 0);
	usleep(600 * 1000);
	cr_assert_eq(bk_check(&e.c, e.s1), BK_HALTED, "still held after a restart");
	cr_assert_eq(cli(&h, "audit", "--json"), 0, "%s", out);
	cr_assert_eq(bk_h_count(out, "\"kind\":\"RESUME\""), 0, "no automatic resume: %s",
	             out);
	/* the operator releases it, a stage at a time */
	cr_assert_eq(cli(&h, "resume", "--strategy", "s1", "--reason", "desk done"), 0,
	             "%s", out);
	cr_assert(mode_becomes(&e, e.s1, BK_REDUCE_ONLY));
	engine_down(&e);
	down(&h);
}

/* ---- reporting is its own permission; one declared telemetry source --------- */

static Breaker__Status send_report(struct bk_rpc *rpc, const char *strategy,
                                   uint64_t orders, uint64_t rejects, double gross,
                                   char *why, size_t whylen)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Report r = BREAKER__REPORT__INIT;
	Breaker__Reply *rep = NULL;
	Breaker__Status st;

	r.strategy = (char *)strategy;
	r.has_orders = r.has_rejects = r.has_gross = 1;
	r.orders = orders;
	r.rejects = rejects;
	r.gross = gross;
	req.cmd_case = BREAKER__REQUEST__CMD_REPORT;
	req.report = &r;
	if (bk_rpc_call(rpc, &req, &rep) != 0)
		return (Breaker__Status)-1;
	st = rep->status;
	if (why)
		snprintf(why, whylen, "%s", rep->error ? rep->error : "");
	breaker__reply__free_unpacked(rep, NULL);
	return st;
}

/*
 * The attacker: uid 65534 (query only). Sends Report{strategy, orders 0}
 * every 100 ms for BK_FORGE_MS. Exits 0 if every report was refused as
 * unauthorised, 1 if one was accepted, 2 if it never got an answer. Run as
 * this binary re-executed (nng is not fork-safe), before Criterion's main.
 */
__attribute__((constructor)) static void forger_main(void)
{
	const char *url = getenv("BK_FORGE_URL"), *strategy = getenv("BK_FORGE_STRATEGY");
	struct bk_rpc rpc;
	int answered = 0, ms;

	if (!url || !strategy)
		return;
	ms = atoi(getenv("BK_FORGE_MS") ? getenv("BK_FORGE_MS") : "3000");
	for (int i = 0; i < 500; i++) { /* the daemon is starting */
		if (bk_rpc_open(&rpc, url, 1000) == 0)
			break;
		usleep(10000);
	}
	for (int t = 0; t < ms; t += 100) {
		Breaker__Status st = send_report(&rpc, strategy, 0, 0, 0, NULL, 0);
		if (st == BREAKER__STATUS__OK)
			_exit(1);
		answered += st == BREAKER__STATUS__ERR_UNAUTHORISED;
		usleep(100000);
	}
	_exit(answered ? 0 : 2);
}

static pid_t forge_reports(struct bk_h *h, const char *strategy, int ms)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char buf[16];

		snprintf(buf, sizeof(buf), "%d", ms);
		setenv("BK_FORGE_URL", h->cfg.cmd_url, 1);
		setenv("BK_FORGE_STRATEGY", strategy, 1);
		setenv("BK_FORGE_MS", buf, 1);
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
			_exit(125);
		execl("/proc/self/exe", "test_commands", (char *)NULL);
		_exit(127);
	}
	return pid;
}

#define REJECTS                                                                          \
	"tick_period_us = 1000\n[metrics]\nlisten =\n[strategies]\nnames = s1, s2\n"     \
	"[commands]\nsocket_mode = 0666\n[rules]\nheartbeat.enabled = false\n"           \
	"reject_rate.max = 0.2\nreject_rate.window_ms = 500\nreject_rate.min_orders = "  \
	"20\n"

Test(commands, forged_reports_from_a_query_user_do_not_blind_the_reject_rule)
{
	struct bk_h h;
	struct engine e;
	pid_t attacker;
	int st;
	bool tripped = false;

	need_root();
	bk_h_init(&h, "forge", REJECTS);
	attacker = forge_reports(&h, "s1", 3000);
	bk_h_start(&h);
	bk_h_open_dirs(&h);
	engine_up(&h, &e);
	/* the real engine: 80% rejects, written in the segment */
	for (int i = 0; i < 300 && !tripped; i++) {
		bk_report_order(&e.t, e.s1, 10);
		bk_report_reject(&e.t, e.s1, 8);
		usleep(10000);
		tripped = bk_check(&e.c, e.s1) == BK_HALTED;
	}
	cr_assert(tripped, "the reject-rate rule trips on the segment's numbers");
	cr_assert_eq(waitpid(attacker, &st, 0), attacker);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "every forged report refused (attacker exit %d)",
	          WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	/* the refusals are in the audit log */
	cr_assert_eq(cli(&h, "audit", "--json"), 0, "%s", out);
	cr_assert(strstr(out, "\"kind\":\"REFUSED\"") &&
	              strstr(out, "\"command\":\"report\""),
	          "%s", out);
	cr_assert(strstr(out, "may not report telemetry"), "%s", out);
	engine_down(&e);
	down(&h);
}

Test(commands, report_for_a_segment_strategy_is_refused_even_from_an_engine)
{
	struct bk_h h;
	struct bk_rpc rpc;
	char why[512];

	up(&h, "src-seg", STRATS);
	cr_assert_eq(bk_rpc_open(&rpc, h.cfg.cmd_url, 3000), 0);
	cr_assert_eq(send_report(&rpc, "s1", 0, 0, 0, why, sizeof(why)),
	             BREAKER__STATUS__ERR_TELEMETRY_SOURCE, "%s", why);
	cr_assert(strstr(why, "segment"), "%s", why);
	bk_rpc_close(&rpc);
	down(&h);
}

#define REMOTE_EXPOSURE                                                                  \
	"tick_period_us = 1000\n[metrics]\nlisten =\n[strategies]\nnames = s1, s2\n"     \
	"remote = s2\n[rules]\nheartbeat.enabled = false\nexposure.max = 1000\n"         \
	"exposure.cooldown_ms = 100\nexposure.cooldown_to = reduce-only\n"

Test(commands, remote_strategy_reads_only_reports_and_its_step_names_the_source)
{
	struct bk_h h;
	struct engine e;
	struct bk_rpc rpc;
	char why[512];
	int s2;

	up(&h, "src-remote", REMOTE_EXPOSURE);
	engine_up(&h, &e);
	s2 = bk_client_resolve(&e.c, "s2");
	/* the segment says nothing for s2 counts: only Reports do */
	bk_report_marks(&e.t, s2, 0, 99999, 0);
	usleep(100000);
	cr_assert_eq(bk_check(&e.c, s2), BK_ACTIVE, "the segment is not s2's source");
	cr_assert_eq(bk_rpc_open(&rpc, h.cfg.cmd_url, 3000), 0);
	cr_assert_eq(send_report(&rpc, "s2", 0, 0, 5000, why, sizeof(why)),
	             BREAKER__STATUS__OK, "%s", why);
	cr_assert(mode_becomes(&e, s2, BK_HALTED),
	          "the exposure rule trips on the report");
	cr_assert_eq(send_report(&rpc, "s2", 0, 0, 0, why, sizeof(why)),
	             BREAKER__STATUS__OK, "%s", why);
	cr_assert(mode_becomes(&e, s2, BK_REDUCE_ONLY), "the cooldown steps it");
	bk_rpc_close(&rpc);
	usleep(50000);
	cr_assert_eq(cli(&h, "audit", "--json"), 0, "%s", out);
	cr_assert(strstr(out, "\"telemetry_source\":\"report from uid 0\""), "%s", out);
	engine_down(&e);
	down(&h);
}

Test(commands, register_telemetry_remote_is_declared_and_replayed)
{
	struct bk_h h;
	struct bk_rpc rpc;
	char why[512];

	up(&h, "src-reg", STRATS);
	cr_assert_eq(cli(&h, "register", "r1", "--telemetry", "remote"), 0, "%s", out);
	cr_assert_eq(cli(&h, "register", "r2"), 0, "%s", out);
	cr_assert_eq(cli(&h, "register", "r3", "--telemetry", "sideways"), 2, "%s", out);
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_h_start(&h);
	cr_assert_eq(bk_rpc_open(&rpc, h.cfg.cmd_url, 3000), 0);
	cr_assert_eq(send_report(&rpc, "r1", 1, 0, 0, why, sizeof(why)),
	             BREAKER__STATUS__OK, "%s", why);
	cr_assert_eq(send_report(&rpc, "r2", 1, 0, 0, why, sizeof(why)),
	             BREAKER__STATUS__ERR_TELEMETRY_SOURCE, "%s", why);
	bk_rpc_close(&rpc);
	down(&h);
}

/* ---- the config file, as breakerd loads it --------------------------------
 */

/* Load text (len bytes: it may hold NULs) over the defaults; 0 or -errno, err set. */
static int load_config(const char *text, size_t len, struct bk_config *c, char *err,
                       size_t errlen)
{
	char path[64];
	FILE *f;
	int rv;

	snprintf(path, sizeof(path), "/tmp/bk-cmdcfg-%d.ini", (int)getpid());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, len, f), len);
	fclose(f);
	cr_assert_eq(bk_config_defaults(c, NULL), 0);
	err[0] = '\0';
	rv = bk_config_load(c, path, err, errlen);
	unlink(path);
	return rv;
}

#define LOAD(text, c, err) load_config(text, sizeof(text) - 1, c, err, sizeof(err))

Test(commands, duplicate_config_key_is_refused_with_both_lines)
{
	static struct bk_config c;
	char err[512];

	cr_assert_eq(
	    LOAD("[auth]\nresume_uids = 0\n; a comment\nresume_uids = 65534\n", &c, err),
	    -EINVAL, "the second one must not silently win");
	cr_assert(strstr(err, "resume_uids") && strstr(err, "lines 2 and 4"), "%s", err);
	/* the same key in a section given again */
	cr_assert_eq(LOAD("[breaker]\ntick_period_us = 100\n[auth]\nresume_uids = 0\n"
	                  "[breaker]\ntick_period_us = 200\n",
	                  &c, err),
	             -EINVAL);
	cr_assert(strstr(err, "lines 2 and 6"), "%s", err);
	/* in a [rules:NAME] section too */
	cr_assert_eq(LOAD("[rules:s1]\nexposure.max = 5\nexposure.max = 6\n", &c, err),
	             -EINVAL);
	cr_assert(strstr(err, "lines 2 and 3"), "%s", err);
	/* the same key name in different sections is fine */
	cr_assert_eq(
	    LOAD("[rules]\nexposure.max = 5\n[rules:s1]\nexposure.max = 6\n", &c, err), 0,
	    "%s", err);
}

Test(commands, config_numbers_are_decimal)
{
	static struct bk_config c;
	char err[512];

	cr_assert_eq(LOAD("[breaker]\ntick_period_us = 0100\n", &c, err), 0, "%s", err);
	cr_assert_eq(c.tick_ns, 100000u, "0100 is one hundred, not octal 64");
	cr_assert_eq(LOAD("[breaker]\ntick_period_us = 0x100\n", &c, err), -EINVAL);
	cr_assert_eq(LOAD("[breaker]\ntick_period_us = +100\n", &c, err), -EINVAL);
	cr_assert_eq(LOAD("[rules]\nexposure.max = 0x10\n", &c, err), -EINVAL);
	/* modes are octal, as chmod's */
	cr_assert_eq(LOAD("[commands]\nsocket_mode = 0660\n", &c, err), 0, "%s", err);
	cr_assert_eq(c.sock_mode, 0660);
}

Test(commands, nul_byte_in_config_is_refused)
{
	static struct bk_config c;
	char err[512];

	cr_assert_eq(LOAD("[auth]\n\0resume_uids = 65534\n", &c, err), -EINVAL,
	             "a line starting with NUL must not be skipped silently");
	cr_assert(strstr(err, "line 2") && strstr(err, "NUL"), "%s", err);
	cr_assert_eq(LOAD("[auth]\nresume_uids = 0\0, 65534\n", &c, err), -EINVAL);
	cr_assert(strstr(err, "NUL"), "%s", err);
}

Test(commands, config_strategy_names_follow_the_name_rules)
{
	static struct bk_config c;
	char err[512];

	cr_assert_eq(LOAD("[strategies]\nnames = good, bad!name\n", &c, err), -EINVAL);
	cr_assert(strstr(err, "bad!name") && strstr(err, "line 2"), "%s", err);
	cr_assert_eq(LOAD("[rules:bad!name]\nexposure.max = 5\n", &c, err), -EINVAL);
	cr_assert(strstr(err, "bad!name") && strstr(err, "line 2"), "%s", err);
	cr_assert_eq(LOAD("[strategies]\nremote = a/b\n", &c, err), -EINVAL);
	cr_assert_eq(
	    LOAD("[strategies]\nnames = ok-1, ok.2\n[rules:ok-1]\nexposure.max = 5\n", &c,
	         err),
	    0, "%s", err);
}

/* ---- an embedded NUL is refused, never cut ----------------------------------
 */

/* A length-delimited field (len < 128) at p; bytes written. */
static size_t wire_bytes(uint8_t *p, unsigned field, const void *s, size_t n)
{
	p[0] = (uint8_t)(field << 3 | 2);
	p[1] = (uint8_t)n;
	memcpy(p + 2, s, n);
	return n + 2;
}

/* Request{trip{strategy, reason_code manual_halt, reason}}, hand-encoded. */
static size_t wire_trip(uint8_t *msg, const char *strategy, size_t slen,
                        const char *reason, size_t rlen)
{
	uint8_t inner[256];
	size_t n = 0;

	if (strategy)
		n += wire_bytes(inner + n, 1, strategy, slen);
	inner[n++] = 3 << 3; /* reason_code, varint */
	inner[n++] = BREAKER__REASON_CODE__MANUAL_HALT;
	n += wire_bytes(inner + n, 4, reason, rlen);
	return wire_bytes(msg, 10, inner, n);
}

Test(commands, embedded_nul_in_a_name_or_reason_is_refused)
{
	struct bk_h h;
	uint8_t buf[512], inner[64];
	Breaker__Reply *rep;
	size_t n;

	up(&h, "nul", STRATS);
	/* a trip of "s1\0/evil" must not trip s1 */
	n = wire_trip(buf, "s1\0/evil", 8, "x", 1);
	rep = bk_h_raw_call(&h, buf, n);
	cr_assert_eq(rep->status, BREAKER__STATUS__ERR_BAD_REQUEST, "%s", rep->error);
	cr_assert(strstr(rep->error, "NUL"), "%s", rep->error);
	breaker__reply__free_unpacked(rep, NULL);
	cr_assert_eq(bk_h_mode_of(&h, "s1"), BK_ACTIVE);
	/* a reason with a hidden tail */
	n = wire_trip(buf, "s1", 2, "ok\0rm -rf", 9);
	rep = bk_h_raw_call(&h, buf, n);
	cr_assert_eq(rep->status, BREAKER__STATUS__ERR_BAD_REQUEST, "%s", rep->error);
	breaker__reply__free_unpacked(rep, NULL);
	cr_assert_eq(bk_h_mode_of(&h, "s1"), BK_ACTIVE);
	/* register "abc\0/.." must not register abc */
	n = wire_bytes(buf, 14, inner, wire_bytes(inner, 1, "abc\0/..", 7));
	rep = bk_h_raw_call(&h, buf, n);
	cr_assert_eq(rep->status, BREAKER__STATUS__ERR_BAD_REQUEST, "%s", rep->error);
	breaker__reply__free_unpacked(rep, NULL);
	cr_assert_eq(cli(&h, "strategies"), 0, "%s", out);
	cr_assert_null(strstr(out, "abc"), "%s", out);
	/* the well-formed trip still works (the encoder above is right) */
	n = wire_trip(buf, "s1", 2, "x", 1);
	rep = bk_h_raw_call(&h, buf, n);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK, "%s", rep->error);
	breaker__reply__free_unpacked(rep, NULL);
	cr_assert_eq(bk_h_mode_of(&h, "s1"), BK_HALTED);
	down(&h);
}

/* ---- a certificate caller is shown by its CN ---------------------------------
 */

/* A throwaway CA, breakerd's certificate (127.0.0.1), clients trader1, engine1. */
static void make_pki(struct bk_pki *k)
{
	bk_pki_make(k, "cpki",
	            "ca ca; crt server 127.0.0.1 ca; crt trader trader1-desk ca\n"
	            "crt engine fx-engine-7 ca; crt op op1 ca\n");
}

Test(commands, certificate_caller_is_shown_by_its_cn_not_uid_4294967295)
{
	struct bk_h h;
	struct bk_pki k;
	char ini[2048], ca[128], cert[128], key[128];

	make_pki(&k);
	snprintf(ini, sizeof(ini),
	         STRATS "[commands]\ntcp_url = %s\n[tls]\ncert_file = %s/server.pem\n"
	                "key_file = %s/server.key\nca_file = %s/ca.pem\n"
	                "roles = trader1-desk:trader\n",
	         k.url, k.dir, k.dir, k.dir);
	up(&h, "cn", ini);
	snprintf(ca, sizeof(ca), "%s/ca.pem", k.dir);
	snprintf(cert, sizeof(cert), "%s/trader.pem", k.dir);
	snprintf(key, sizeof(key), "%s/trader.key", k.dir);
	cr_assert_eq(cli(&h, "--url", k.url, "--tls-ca", ca, "--tls-cert", cert,
	                 "--tls-key", key, "kill", "s1", "--reason", "desk kill"),
	             0, "%s", out);
	cr_assert_eq(cli(&h, "status"), 0, "%s", out);
	cr_assert_null(strstr(out, "4294967295"), "%s", out);
	cr_assert(strstr(out, "trader1-desk"), "the CN: %s", out);
	cr_assert_eq(cli(&h, "audit"), 0, "%s", out);
	cr_assert_null(strstr(out, "4294967295"), "%s", out);
	cr_assert(strstr(out, "trader1-desk"), "the CN: %s", out);
	cr_assert_eq(cli(&h, "incident", "export", "--since", "1h"), 0, "%s", out);
	cr_assert_null(strstr(out, "4294967295"), "%s", out);
	cr_assert(strstr(out, "trader1-desk"), "the CN: %s", out);
	down(&h);
	bk_pki_remove(&k);
}

/* ---- after a removed log, the boot record says so -----------------------------
 */

Test(commands, boot_after_a_removed_log_says_it_was_removed_not_not_durable)
{
	struct bk_h h;

	up(&h, "rmlog", STRATS);
	cr_assert_eq(cli(&h, "emergency-stop", "--reason", "durable stop"), 0, "%s", out);
	bk_h_kill9(&h);
	cr_assert_eq(unlink(h.cfg.audit_path), 0);
	bk_h_start(&h);
	cr_assert_eq(cli(&h, "audit"), 0, "%s", out);
	/* the stop engines saw is restored under its own code, and said why */
	cr_assert(strstr(out, "emergency_stop"), "restored: %s", out);
	cr_assert_null(strstr(out, "not durable"),
	               "the stop was durable; its log was removed: %s", out);
	cr_assert(strstr(out, "restored at boot") && strstr(out, "log") &&
	              strstr(out, "missing"),
	          "%s", out);
	down(&h);
}

/* ---- status answers at the maximum table ------------------------------------
 */

static void rpc_ok(struct bk_rpc *rpc, Breaker__Request *req, uint64_t id)
{
	Breaker__Reply *rep = NULL;

	req->has_request_id = 1;
	req->request_id = id;
	cr_assert_eq(bk_rpc_call(rpc, req, &rep), 0);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK, "%s",
	             rep->error ? rep->error : "");
	breaker__reply__free_unpacked(rep, NULL);
}

Test(commands, status_and_strategies_answer_at_the_maximum_table, .timeout = 240)
{
	struct bk_h h;
	struct bk_rpc rpc;
	static char reason[1025], big[1 << 23];
	char name[BK_NAME_MAX];
	long n;

	memset(reason, 'r', 1024);
	up(&h, "maxtable", "[metrics]\nlisten =\n");
	cr_assert_eq(bk_rpc_open(&rpc, h.cfg.cmd_url, 10000), 0);
	for (unsigned i = 0; i < BK_MAX_STRATEGIES; i++) {
		Breaker__Request req = BREAKER__REQUEST__INIT;
		Breaker__RegisterStrategy reg = BREAKER__REGISTER_STRATEGY__INIT;
		Breaker__Trip t = BREAKER__TRIP__INIT;

		/* the longest names too: 39 bytes */
		snprintf(name, sizeof(name), "strategy-%030u", i);
		reg.strategy = name;
		req.cmd_case = BREAKER__REQUEST__CMD_REGISTER;
		req.register_ = &reg;
		rpc_ok(&rpc, &req, 2 * i + 1);
		t.strategy = name;
		t.has_reason_code = 1;
		t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
		t.reason = reason;
		req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
		req.trip = &t;
		rpc_ok(&rpc, &req, 2 * i + 2);
	}
	bk_rpc_close(&rpc);
	/* the whole table, through the CLI's 1 MiB reply limit */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(bk_h_cli(&h, big, sizeof(big), "status", NULL), 0, "%.2000s", big);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(
	    stderr,
	    "commands: 'breaker status' of 4096 tripped strategies: %.1f ms, %zu bytes\n",
	    (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	        (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
	    strlen(big));
	cr_assert_eq(bk_h_count(big, "latch manual_halt: HALTED"), BK_MAX_STRATEGIES,
	             "every tripped strategy listed");
	cr_assert(strstr(big, "strategy-000000000000000000000000004095"));
	cr_assert_eq(bk_h_cli(&h, big, sizeof(big), "strategies", NULL), 0, "%.2000s",
	             big);
	cr_assert(strstr(big, "4096 strategies"), "%.2000s", big + strlen(big) - 500);
	n = bk_h_cli(&h, big, sizeof(big), "status", "--json", NULL);
	cr_assert_eq(n, 0);
	cr_assert_eq(bk_h_count(big, "\"reason_code\":\"manual_halt\""),
	             BK_MAX_STRATEGIES);
	cr_assert_eq(bk_h_cli(&h, big, sizeof(big), "health", NULL), 0, "%s", big);
	cr_assert(strstr(big, "4096 of 4096 strategies tripped"), "%s", big);
	/* a client that does not page still gets an answer, marked as cut */
	{
		Breaker__Request req = BREAKER__REQUEST__INIT;
		Breaker__ListStrategies ls = BREAKER__LIST_STRATEGIES__INIT;
		Breaker__Reply *rep = NULL;

		req.cmd_case = BREAKER__REQUEST__CMD_LIST;
		req.list = &ls;
		cr_assert_eq(bk_rpc_open(&rpc, h.cfg.cmd_url, 10000), 0);
		cr_assert_eq(bk_rpc_call(&rpc, &req, &rep), 0, "fits the 1 MiB limit");
		cr_assert_eq(rep->status, BREAKER__STATUS__OK);
		cr_assert(rep->error &&
		              strncmp(rep->error, "truncated: more from slot ", 26) == 0,
		          "%s", rep->error ? rep->error : "(no marker)");
		cr_assert_lt(rep->n_strategies, BK_MAX_STRATEGIES);
		breaker__reply__free_unpacked(rep, NULL);
		bk_rpc_close(&rpc);
	}
	down(&h);
}

/* Reports over TLS: an engine certificate may report, an operator's may not. */
Test(commands, engine_certificates_report_operators_do_not)
{
	struct bk_h h;
	struct bk_pki k;
	struct bk_rpc rpc;
	char ini[2048], ca[128], cert[128], key[128], err[512], why[512];
	struct bk_rpc_tls t = {cert, key, ca};

	make_pki(&k);
	snprintf(ini, sizeof(ini),
	         STRATS "[commands]\ntcp_url = %s\n[tls]\ncert_file = %s/server.pem\n"
	                "key_file = %s/server.key\nca_file = %s/ca.pem\n"
	                "roles = fx-engine-7:engine, op1:operator\n"
	                "[strategies]\nremote = s2\n",
	         k.url, k.dir, k.dir, k.dir);
	up(&h, "cnrep", ini);
	snprintf(ca, sizeof(ca), "%s/ca.pem", k.dir);
	snprintf(cert, sizeof(cert), "%s/engine.pem", k.dir);
	snprintf(key, sizeof(key), "%s/engine.key", k.dir);
	cr_assert_eq(bk_rpc_open_tls(&rpc, k.url, 5000, &t, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(send_report(&rpc, "s2", 10, 0, 0, why, sizeof(why)),
	             BREAKER__STATUS__OK, "%s", why);
	bk_rpc_close(&rpc);
	snprintf(cert, sizeof(cert), "%s/op.pem", k.dir);
	snprintf(key, sizeof(key), "%s/op.key", k.dir);
	cr_assert_eq(bk_rpc_open_tls(&rpc, k.url, 5000, &t, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(send_report(&rpc, "s2", 10, 0, 0, why, sizeof(why)),
	             BREAKER__STATUS__ERR_UNAUTHORISED, "%s", why);
	cr_assert(strstr(why, "engine may"), "%s", why);
	bk_rpc_close(&rpc);
	down(&h);
	bk_pki_remove(&k);
}
