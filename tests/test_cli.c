/*
 * Integration: the `breaker` CLI against a real breakerd. watch, reconcile,
 * the status additions (rule warnings, engine acks, cut latch reasons), and
 * the exit statuses scripts rely on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_mode.h"
#include "bk_tel.h"

extern char **environ;

/* heartbeat off: the tests' engines beat once, not every few ms */
#define STRATS                                                                           \
	"[strategies]\nnames = alpha, beta, gamma\n[rules]\nheartbeat.enabled = false\n"

static char out[65536];

static struct bk_h *up(struct bk_h *h, const char *tag)
{
	bk_h_init(h, tag, STRATS);
	bk_h_start(h);
	return h;
}

/* bk_h_fini leaves the telemetry segment behind: remove it too. */
static void down(struct bk_h *h)
{
	bk_h_fini(h);
	bk_tel_unlink(h->instance);
}

static void path_in(const struct bk_h *h, char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", h->dir, name);
}

/* The CLI in the background: stdout to <dir>/<tag>.out, stderr to .err. */
static pid_t spawn_cli(struct bk_h *h, const char *tag, ...)
{
	const char *bin = getenv("BREAKER_CLI") ? getenv("BREAKER_CLI") : "breaker";
	char *argv[32] = {(char *)bin, "--config", h->config};
	char o[256], e[256], name[64];
	posix_spawn_file_actions_t fa;
	int argc = 3;
	va_list ap;
	pid_t pid;

	va_start(ap, tag);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	snprintf(name, sizeof(name), "%s.out", tag);
	path_in(h, o, sizeof(o), name);
	snprintf(name, sizeof(name), "%s.err", tag);
	path_in(h, e, sizeof(e), name);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, o, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, e, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_eq(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0, "spawn %s",
	             bin);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

/* Exit code of pid within ms (-1 on a signal), or -2 if it is still running. */
static int try_wait(pid_t pid, int ms)
{
	int st;

	for (int i = 0; i < ms / 10; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		usleep(10000);
	}
	return -2;
}

/* Exit code of pid within ms (-1 on a signal); killed and failed after. */
static int wait_exit(pid_t pid, int ms)
{
	int st, rv = try_wait(pid, ms);

	if (rv != -2)
		return rv;
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	cr_assert_fail("the CLI did not exit within %d ms", ms);
	return -1;
}

static void slurp_tag(struct bk_h *h, const char *tag, const char *ext, char *buf,
                      size_t len)
{
	char p[256], name[64];

	snprintf(name, sizeof(name), "%s.%s", tag, ext);
	path_in(h, p, sizeof(p), name);
	bk_h_slurp(p, buf, len);
}

/* Wait until a background watch has subscribed (it says so on stderr). */
static void wait_watching(struct bk_h *h, const char *tag)
{
	char err[4096];

	for (int i = 0; i < 500; i++) {
		slurp_tag(h, tag, "err", err, sizeof(err));
		if (strstr(err, "watching breakerd events")) {
			/* the dial is done; give breakerd's side of the pipe a moment */
			usleep(100000);
			return;
		}
		usleep(10000);
	}
	cr_assert_fail("watch never subscribed: %s", err);
}

/* Run a shell command on a file in h->dir; its exit status. */
static int sh_on(struct bk_h *h, const char *fmt, const char *name)
{
	char p[256], cmd[1024];

	path_in(h, p, sizeof(p), name);
	snprintf(cmd, sizeof(cmd), fmt, p);
	return system(cmd);
}

/* status until its output has needle (rules are evaluated every tick). */
static void status_until(struct bk_h *h, const char *needle)
{
	for (int i = 0; i < 200; i++) {
		cr_assert_eq(bk_h_cli(h, out, sizeof(out), "status", NULL), 0);
		if (strstr(out, needle))
			return;
		usleep(10000);
	}
	cr_assert_fail("status never showed '%s':\n%s", needle, out);
}

/* ---- watch ----------------------------------------------------------------- */

Test(cli, watch_prints_the_trip)
{
	struct bk_h h;
	char line[512];
	pid_t w;

	up(&h, "cwatch");
	w = spawn_cli(&h, "watch", "watch", "--count", "1", "--timeout-ms", "5000", NULL);
	wait_watching(&h, "watch");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", "--reason",
	                      "watch me trip", NULL),
	             0, "%s", out);
	cr_assert_eq(wait_exit(w, 10000), 0, "--count 1: exit 0 after one event");
	slurp_tag(&h, "watch", "out", out, sizeof(out));
	snprintf(line, sizeof(line), "uid=%u", (unsigned)geteuid());
	cr_assert(strstr(out, " TRIP "), "the kind: %s", out);
	cr_assert(strstr(out, " global "), "the scope: %s", out);
	cr_assert(strstr(out, "ACTIVE->HALTED"), "from->to: %s", out);
	cr_assert(strstr(out, "manual_halt"), "the reason code: %s", out);
	cr_assert(strstr(out, line), "the actor: %s", out);
	cr_assert(strstr(out, "seq="), "the audit seq: %s", out);
	cr_assert(strchr(out, '\n') == out + strlen(out) - 1, "one line: %s", out);
	down(&h);
}

Test(cli, watch_json_shows_a_rule_warning)
{
	struct bk_h h;
	int rv = -2;
	pid_t w;

	up(&h, "cwjson");
	/* three events: the RECONCILE records' events and the warning arrive in
	 * either order (durable record vs next tick), so any three in a row of
	 * the sequence below hold one warning */
	w = spawn_cli(&h, "wj", "watch", "--json", "--count", "3", "--timeout-ms", "5000",
	              NULL);
	wait_watching(&h, "wj");
	/*
	 * The engine says 0, the venue 600: 60% of the 1000 break limit, a
	 * warning. PUB drops events for a subscriber whose pipe nng has not
	 * attached yet, so on a slow machine the warning is raised again
	 * (cleared with 0, then 600) until the watcher has seen one.
	 */
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(
		    bk_h_cli(&h, out, sizeof(out), "reconcile", "alpha=600", NULL), 0,
		    "%s", out);
		if ((rv = try_wait(w, 1000)) != -2)
			break;
		cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "reconcile", "alpha=0", NULL),
		             0, "%s", out);
	}
	cr_assert_eq(rv == -2 ? wait_exit(w, 10000) : rv, 0);
	cr_assert_eq(
	    sh_on(&h,
	          "python3 -c 'import json,sys; es=[json.loads(l) for l in sys.stdin]; "
	          "assert all(e[\"wall_utc\"].endswith(\"Z\") for e in es), es; "
	          "assert any(e.get(\"warning\") is True and e[\"rule\"] == "
	          "\"reconciliation\" and e[\"strategy\"] == \"alpha\" and "
	          "abs(e[\"utilisation\"] - 0.6) < 1e-9 for e in es), es' < %s",
	          "wj.out"),
	    0, "one JSON event per line: %s",
	    (slurp_tag(&h, "wj", "out", out, sizeof(out)), out));
	down(&h);
}

/* Widest line of text, in columns (UTF-8 code points). */
static int widest_line(const char *text)
{
	int w = 0, c = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '\n') {
			w = c > w ? c : w;
			c = 0;
		} else if ((*p & 0xc0) != 0x80) {
			c++;
		}
	}
	return c > w ? c : w;
}

/* The line of text that holds needle (copied into line); fails if none. */
static const char *line_with(const char *text, const char *needle, char *line, size_t len)
{
	const char *p = strstr(text, needle), *b, *e;

	cr_assert_not_null(p, "no line with '%s' in:\n%s", needle, text);
	for (b = p; b > text && b[-1] != '\n'; b--)
		;
	e = strchr(p, '\n');
	snprintf(line, len, "%.*s", (int)(e ? e - b : (long)strlen(b)), b);
	return line;
}

/*
 * A resume shows the resumer's reason, a reconciliation of two
 * strategies is two events with no mode change, every default line fits 100
 * columns (a long reason ends in "…"), and --json carries the whole reason.
 */
Test(cli, watch_lines_say_who_and_fit_100_columns)
{
	struct bk_h h;
	char line[1024], longr[301], check[1024];
	pid_t w, wj, ww;

	memset(longr, 'r', 300);
	longr[300] = '\0';
	memcpy(longr, "LONG-", 5);
	memcpy(longr + 295, "-TAIL", 5);
	up(&h, "cwlines");
	/* a 39-byte name: cut to 20 columns in the default line */
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "register",
	                      "a-strategy-name-that-is-39-bytes-long-x", NULL),
	             0, "%s", out);
	w = spawn_cli(&h, "wl", "watch", "--count", "6", "--timeout-ms", "10000", NULL);
	wj = spawn_cli(&h, "wlj", "watch", "--json", "--count", "6", "--timeout-ms",
	               "10000", NULL);
	ww = spawn_cli(&h, "wlw", "watch", "--wide", "--count", "6", "--timeout-ms",
	               "10000", NULL);
	wait_watching(&h, "wl");
	wait_watching(&h, "wlj");
	wait_watching(&h, "wlw");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "kill", "alpha", "--reason",
	                      "runaway algo", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "resume", "--strategy", "alpha",
	                      "--reason", "venue fixed", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", "--reason",
	                      longr, NULL),
	             0, "%s", out);
	cr_assert_eq(
	    bk_h_cli(&h, out, sizeof(out), "reconcile", "alpha=0", "beta=5", NULL), 0,
	    "%s", out);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "kill",
	                      "a-strategy-name-that-is-39-bytes-long-x", "--reason",
	                      longr, NULL),
	             0, "%s", out);
	cr_assert_eq(wait_exit(w, 15000), 0, "6 events");
	cr_assert_eq(wait_exit(wj, 15000), 0, "6 events");
	cr_assert_eq(wait_exit(ww, 15000), 0, "6 events");
	slurp_tag(&h, "wl", "out", out, sizeof(out));
	cr_assert_eq(bk_h_count(out, "\n"), 6, "%s", out);
	line_with(out, "a-strategy-name-tha…", line, sizeof(line));
	cr_assert(strstr(line, " kill_switch "), "%s", line);
	cr_assert_leq(widest_line(out), 100, "every line fits 100 columns:\n%s", out);
	line_with(out, " RESUME ", line, sizeof(line));
	cr_assert(strstr(line, "\"venue fixed\""), "the resumer's reason: %s", line);
	cr_assert(!strstr(line, "runaway"), "not the trip's: %s", line);
	cr_assert(strstr(line, "HALTED->REDUCE_ONLY"), "%s", line);
	line_with(out, " TRIP      alpha", line, sizeof(line));
	cr_assert(strstr(line, "\"runaway algo\""), "%s", line);
	line_with(out, " global         ACTIVE->HALTED", line, sizeof(line));
	cr_assert(strstr(line, "\"LONG-"), "%s", line);
	cr_assert(strstr(line, "…\""), "a cut reason is marked: %s", line);
	cr_assert(!strstr(line, "-TAIL"), "%s", line);
	cr_assert_eq(bk_h_count(out, " RECONCILE "), 2, "one event per strategy:\n%s",
	             out);
	line_with(out, " RECONCILE alpha", line, sizeof(line));
	cr_assert(!strstr(line, "->"), "a reconciliation changes no mode: %s", line);
	cr_assert(strstr(line, "reconciled position"), "%s", line);
	line_with(out, " RECONCILE beta", line, sizeof(line));
	cr_assert(strstr(line, "reconciled position"), "%s", line);
	/* --wide: the whole reason on one line */
	slurp_tag(&h, "wlw", "out", out, sizeof(out));
	line_with(out, "LONG-", line, sizeof(line));
	cr_assert(strstr(line, longr), "--wide has the whole reason: %s", line);
	/* --json: the whole reason, the resumer's */
	snprintf(
	    check, sizeof(check),
	    "python3 -c 'import json,sys; ev=[json.loads(l) for l in sys.stdin]; "
	    "k=[e[\"kind\"] for e in ev]; "
	    "assert "
	    "k==[\"TRIP\",\"RESUME\",\"TRIP\",\"RECONCILE\",\"RECONCILE\",\"TRIP\"],k; "
	    "assert ev[1][\"reason\"]==\"venue fixed\", ev[1]; "
	    "r=ev[2][\"reason\"]; assert len(r)==300 and r.endswith(\"-TAIL\"), r; "
	    "assert \"from_mode\" not in ev[3] and \"to_mode\" not in ev[3], ev[3]; "
	    "assert [e[\"strategy\"] for e in ev[3:5]]==[\"alpha\",\"beta\"]' < %%s");
	cr_assert_eq(sh_on(&h, check, "wlj.out"), 0, "--json");
	down(&h);
}

/* A proposed resume (two-person rule) shows the proposer's reason. */
Test(cli, watch_proposed_resume_shows_the_proposers_reason)
{
	struct bk_h h;
	char line[1024];
	pid_t w, wj;

	bk_h_init(&h, "cwprop", STRATS "[auth]\ntwo_person_global_resume = true\n");
	bk_h_start(&h);
	w = spawn_cli(&h, "wp", "watch", "--count", "2", "--timeout-ms", "10000", NULL);
	wj = spawn_cli(&h, "wpj", "watch", "--json", "--count", "2", "--timeout-ms",
	               "10000", NULL);
	wait_watching(&h, "wp");
	wait_watching(&h, "wpj");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", "--reason",
	                      "the trip's words", NULL),
	             0, "%s", out);
	bk_h_cli(&h, out, sizeof(out), "resume", "--reason", "proposer says go", NULL);
	cr_assert(strstr(out, "propos") || strstr(out, "PROPOS"), "a proposal: %s", out);
	cr_assert_eq(wait_exit(w, 15000), 0);
	cr_assert_eq(wait_exit(wj, 15000), 0);
	slurp_tag(&h, "wp", "out", out, sizeof(out));
	line_with(out, " PROPOSED ", line, sizeof(line));
	cr_assert(strstr(line, "\"proposer says go\""), "%s", line);
	cr_assert(!strstr(line, "trip's"), "not the trip's reason: %s", line);
	cr_assert(strstr(line, "HALTED->REDUCE_ONLY"), "%s", line);
	cr_assert_eq(sh_on(&h,
	                   "python3 -c 'import json,sys; ev=[json.loads(l) for l in "
	                   "sys.stdin]; assert ev[1][\"kind\"]==\"RESUME_PROPOSED\" and "
	                   "ev[1][\"reason\"]==\"proposer says go\", ev' < %s",
	                   "wpj.out"),
	             0, "--json");
	down(&h);
}

Test(cli, watch_exits_quietly_on_timeout_and_on_sigint)
{
	struct bk_h h;
	struct timespec t0, t1;
	long ms;
	pid_t w;

	up(&h, "cwquiet");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "watch", "--timeout-ms", "300", NULL),
	             0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	cr_assert_geq(ms, 300, "waited the whole quiet period: %ld ms", ms);
	cr_assert_str_empty(out, "no event, no output: %s", out);
	/* the timeout only ends a watch left behind by a failed assertion */
	w = spawn_cli(&h, "wint", "watch", "--timeout-ms", "30000", NULL);
	wait_watching(&h, "wint");
	kill(w, SIGINT);
	cr_assert_eq(wait_exit(w, 5000), 0, "Ctrl-C is a normal end");
	down(&h);
}

/* ---- which config file -------------------------------------------------- */

/* bin (breakerd if daemon, else the CLI) with argv and no --config, under
 * BREAKER_CONFIG=env (NULL: unset); stdout+stderr in out; its exit code. */
static int run_noconfig(struct bk_h *h, bool daemon, const char *env, char **args)
{
	const char *bin = getenv(daemon ? "BREAKERD" : "BREAKER_CLI");
	char *argv[16] = {(char *)bin}, p[256];
	posix_spawn_file_actions_t fa;
	int argc = 1, st;
	pid_t pid;

	for (; args[argc - 1] && argc < 15; argc++)
		argv[argc] = args[argc - 1];
	argv[argc] = NULL;
	if (env)
		setenv("BREAKER_CONFIG", env, 1);
	else
		unsetenv("BREAKER_CONFIG");
	path_in(h, p, sizeof(p), "noconf.out");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	cr_assert_eq(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	setenv("BREAKER_CONFIG", "", 1); /* as the harness left it */
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	bk_h_slurp(p, out, sizeof(out));
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(cli, breaker_config_env_is_read_and_config_wins)
{
	struct bk_h h;
	char want[256];

	up(&h, "cenv");
	/* BREAKER_CONFIG alone: the CLI finds this daemon (its instance, sockets) */
	cr_assert_eq(run_noconfig(&h, false, h.config, (char *[]){"status", NULL}), 0,
	             "status under BREAKER_CONFIG: %s", out);
	cr_assert(strstr(out, "global"), "%s", out);
	/* breakerd reads it too (the same instance) */
	snprintf(want, sizeof(want), "config OK: instance %s,", h.instance);
	cr_assert_eq(run_noconfig(&h, true, h.config, (char *[]){"--check-config", NULL}),
	             0, "%s", out);
	cr_assert(strstr(out, want), "%s", out);
	cr_assert(strstr(out, "(BREAKER_CONFIG)"), "says where it came from: %s", out);
	/* a named file that is not there is an error naming the variable */
	cr_assert_eq(
	    run_noconfig(&h, false, "/nonexistent/b.ini", (char *[]){"status", NULL}), 2,
	    "%s", out);
	cr_assert(strstr(out, "/nonexistent/b.ini (from BREAKER_CONFIG)"), "%s", out);
	cr_assert_eq(run_noconfig(&h, true, "/nonexistent/b.ini",
	                          (char *[]){"--check-config", NULL}),
	             2, "%s", out);
	/* --config beats the variable */
	cr_assert_eq(run_noconfig(&h, false, "/nonexistent/b.ini",
	                          (char *[]){"--config", h.config, "status", NULL}),
	             0, "%s", out);
	/* set but empty: the embedded defaults (instance "default") */
	cr_assert_eq(run_noconfig(&h, true, "", (char *[]){"--check-config", NULL}), 0,
	             "%s", out);
	cr_assert(strstr(out, "config OK: instance default,"), "%s", out);
	down(&h);
}

/* ---- reconcile -------------------------------------------------------------- */

Test(cli, reconcile_garbage_is_usage_and_sends_nothing)
{
	static const char *const bad[] = {
	    "alpha=abc",       "alpha=",      "alpha=nan",  "alpha=inf",
	    "alpha=-Infinity", "alpha=1e999", "alpha=0x10", "alpha= 5",
	    "alpha=5 ",        "alpha=1,5",   "alpha",      "=5",
	};
	struct bk_h h;

	up(&h, "crecbad");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "reconcile", bad[i], NULL), 2,
		             "%s", bad[i]);
	/* a good entry with a bad one: nothing at all is sent */
	cr_assert_eq(
	    bk_h_cli(&h, out, sizeof(out), "reconcile", "alpha=600", "beta=12abc", NULL),
	    2);
	cr_assert_eq(
	    bk_h_cli(&h, out, sizeof(out), "reconcile", "alpha=600", "alpha=700", NULL),
	    2, "the same strategy twice");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "reconcile", NULL), 2, "no position");
	usleep(50000); /* hundreds of ticks */
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", NULL), 0);
	cr_assert(strstr(out, "rule warnings: none"),
	          "alpha=600 never reached breakerd:\n%s", out);
	/* and the good one alone is applied */
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "reconcile", "alpha=600", NULL), 0);
	cr_assert(strstr(out, "reconciled 1 position\n"), "%s", out);
	status_until(&h, "warning: strategy alpha rule reconciliation at 60% "
	                 "(measured 600 / threshold 1000)\n");
	down(&h);
}

Test(cli, reconcile_unknown_strategy_is_refused)
{
	struct bk_h h;

	up(&h, "crecunk");
	cr_assert_eq(
	    bk_h_cli(&h, out, sizeof(out), "reconcile", "alpha=1", "nosuch=5", NULL), 1);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "reconcile", "alpha=-1250.5",
	                      "beta=1.2e3", NULL),
	             0, "%s", out);
	cr_assert(strstr(out, "reconciled 2 positions\n"), "%s", out);
	/* the break report (engines report 0 here) */
	cr_assert(
	    strstr(out, "strategy alpha: engine 0, reconciled -1250.5, break 1250.5"),
	    "%s", out);
	cr_assert(strstr(out, "strategy beta: engine 0, reconciled 1200, break 1200"),
	          "%s", out);
	down(&h);
}

/* ---- status ----------------------------------------------------------------- */

Test(cli, status_shows_warnings_acks_and_valid_json)
{
	struct bk_h h;
	struct bk_client c;
	struct bk_tel_client t;
	char want[256];
	int rv = -EAGAIN;
	uint32_t seq;

	up(&h, "cstatus");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", NULL), 0);
	cr_assert(strstr(out, "engine acks: no trip since breakerd started\n"), "%s",
	          out);
	bk_h_attach(&h, &c);
	for (int i = 0; i < 200 && rv == -EAGAIN; i++)
		if ((rv = bk_tel_attach(&t, h.instance)) == -EAGAIN)
			usleep(10000);
	cr_assert_eq(rv, 0, "telemetry segment: %s", strerror(-rv));
	/* two engines with telemetry; only alpha's acts on the trip */
	int a = bk_client_resolve(&c, "alpha"), b = bk_client_resolve(&c, "beta");
	bk_report_heartbeat(&t, a, bk_now_mono_ns());
	bk_report_heartbeat(&t, b, bk_now_mono_ns());
	cr_assert_eq(
	    bk_h_cli(&h, out, sizeof(out), "reconcile", "alpha=2500", "beta=800", NULL),
	    0);
	/* alpha's break trips global by itself; the trip that counts comes after */
	status_until(&h, "warning: strategy alpha rule reconciliation at 250% "
	                 "(measured 2500 / threshold 1000) VIOLATED\n");
	cr_assert(strstr(out, "warning: strategy beta rule reconciliation at 80% "
	                      "(measured 800 / threshold 1000)\n"),
	          "%s", out);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", "--strategy",
	                      "gamma", NULL),
	             0);
	seq = bk_change_seq(&c);
	bk_report_ack(&t, a, seq, bk_now_mono_ns());
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", NULL), 0);
	snprintf(want, sizeof(want), "1 of 2 engines acknowledged change seq %u", seq);
	cr_assert(strstr(out, want), "want '%s' in:\n%s", want, out);
	snprintf(want, sizeof(want), "  strategy alpha pid %d: acked in ", (int)getpid());
	cr_assert(strstr(out, want), "want '%s' in:\n%s", want, out);
	snprintf(want, sizeof(want), "  strategy beta pid %d: NOT ACKED (seq 0 < %u)\n",
	         (int)getpid(), seq);
	cr_assert(strstr(out, want), "want '%s' in:\n%s", want, out);
	/* JSON: every field, parseable */
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", "--json", NULL), 0);
	cr_assert(strstr(out, "\"global\""), "%s", out);
	cr_assert_eq(sh_on(&h, "python3 -c 'import json,sys; json.load(sys.stdin)' < %s",
	                   "cli.out"),
	             0, "status --json is valid JSON:\n%s", out);
	cr_assert_eq(
	    sh_on(
	        &h,
	        "python3 -c 'import json,sys; i=json.load(sys.stdin)[\"info\"]; "
	        "assert \"global\" in i and len(i[\"acks\"]) == 2 and "
	        "{w[\"strategy\"] for w in i[\"warnings\"]} == {\"alpha\", \"beta\"} and "
	        "i[\"last_trip_change_seq\"] > 0, i' < %s",
	        "cli.out"),
	    0, "warnings and acks in the JSON:\n%s", out);
	bk_tel_detach(&t);
	bk_client_detach(&c);
	down(&h);
}

Test(cli, status_says_when_a_latch_reason_was_cut)
{
	struct bk_h h;
	char long_reason[201];

	up(&h, "ccut");
	memset(long_reason, 'x', sizeof(long_reason) - 1);
	long_reason[sizeof(long_reason) - 1] = '\0';
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", "--reason",
	                      long_reason, NULL),
	             0);
	cr_assert_eq(
	    bk_h_cli(&h, out, sizeof(out), "kill", "beta", "--reason", "short", NULL), 0);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", NULL), 0);
	cr_assert(strstr(out, "x\" … (truncated; full text: breaker audit, seq "), "%s",
	          out);
	cr_assert(strstr(out, ": \"short\"\n"), "a short reason is not marked:\n%s", out);
	cr_assert_null(strstr(strstr(out, "truncated") + 1, "truncated"),
	               "only once:\n%s", out);
	down(&h);
}

/* ---- exit statuses ---------------------------------------------------------- */

Test(cli, usage_errors_exit_2)
{
	const char *bin = getenv("BREAKER_CLI") ? getenv("BREAKER_CLI") : "breaker";
	struct bk_h h;
	char cmd[512];
	int st;

	bk_h_init(&h, "cusage", STRATS); /* no daemon: nothing may be sent anyway */
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "frobnicate", NULL), 2);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", "--bogus", NULL), 2);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", "extra", NULL), 2);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "trip", NULL), 2);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "trip", "no_such_reason", NULL), 2);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "watch", "--count", "0", NULL), 2);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "watch", "--count", "3x", NULL), 2);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "watch", "--timeout-ms", "-5", NULL),
	             2);
	cr_assert_eq(
	    bk_h_cli(&h, out, sizeof(out), "watch", "--count", "1", "--count", "2", NULL),
	    2);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "watch", "now", NULL), 2);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", "--count", "1", NULL), 2,
	             "watch's options are watch's");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "reconcile", "alpha=x", NULL), 2);
	/* 65 positions: over breakerd's limit of 64 */
	snprintf(cmd, sizeof(cmd), "%s --config %s reconcile $(seq -f 's%%g=1' 1 65)",
	         bin, h.config);
	st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "65 positions: status %d", st);
	down(&h);
}

Test(cli, unreachable_daemon_exits_3)
{
	struct bk_h h;

	bk_h_init(&h, "cunreach", STRATS); /* no daemon started */
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", NULL), 3);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", "--json", NULL), 3);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", NULL), 3);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "reconcile", "alpha=1", NULL), 3);
	cr_assert_eq(
	    bk_h_cli(&h, out, sizeof(out), "watch", "--timeout-ms", "3000", NULL), 3,
	    "watch fails at once, it does not wait for a daemon");
	down(&h);
}
