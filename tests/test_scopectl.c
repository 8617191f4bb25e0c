/*
 * Integration (issue 14 items 3 and 5): unregister and rename a strategy,
 * "did you mean" for a mistyped strategy, command or reason code, against
 * a real breakerd, the real CLI and the real client header.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_limits.h"
#include "bk_suggest.h"
#include "bk_tel.h"

extern char **environ;

#define PLAIN "[rules]\nheartbeat.enabled = false\n[metrics]\nlisten =\n"

static char out[1 << 16];

#define cli(h, ...) bk_h_cli_all(h, out, sizeof(out), __VA_ARGS__, NULL)

static void up(struct bk_h *h, const char *tag, const char *extra)
{
	bk_h_init(h, tag, extra ? extra : PLAIN);
	bk_h_start(h);
}

static void down(struct bk_h *h)
{
	bk_h_fini(h);
	bk_tel_unlink(h->instance);
}

/* Slot of name as an engine resolves it (-ENOENT: not registered). */
static int engine_slot(struct bk_h *h, const char *name)
{
	struct bk_client c;
	int slot;

	bk_h_attach(h, &c);
	slot = bk_client_resolve(&c, name);
	bk_client_detach(&c);
	return slot;
}

static enum bk_mode engine_mode(struct bk_h *h, int slot)
{
	struct bk_client c;
	enum bk_mode m;

	bk_h_attach(h, &c);
	m = bk_check(&c, slot);
	bk_client_detach(&c);
	return m;
}

/* What a live engine leaves in its telemetry slot: a heartbeat and its pid. */
static void engine_beats(struct bk_h *h, int slot, uint32_t pid)
{
	char name[128];
	struct bk_tel *t;
	struct timespec ts;
	int fd;

	snprintf(name, sizeof(name), "%s%s%s", BK_SHM_PREFIX, h->instance, BK_TEL_SUFFIX);
	fd = shm_open(name, O_RDWR, 0);
	cr_assert_geq(fd, 0, "%s: %s", name, strerror(errno));
	t = mmap(NULL, BK_TEL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(t, MAP_FAILED);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	atomic_store(&t->slots[slot].pid, pid);
	atomic_store(&t->slots[slot].heartbeat_ns,
	             (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
	munmap(t, BK_TEL_SIZE);
}

/* ---- unregister ----------------------------------------------------------- */

Test(scopectl, unregister_refused_while_a_latch_holds)
{
	struct bk_h h;
	int slot;

	up(&h, "unreg-latch", NULL);
	cr_assert_eq(cli(&h, "register", "momo-eu-1"), 0, "%s", out);
	cr_assert_eq(cli(&h, "kill", "momo-eu-1", "--reason", "runaway"), 0, "%s", out);
	cr_assert_eq(cli(&h, "unregister", "momo-eu-1", "--reason", "retire"), 1, "%s",
	             out);
	cr_assert(strstr(out, "ERR_LATCHED"), "%s", out);
	cr_assert(strstr(out, "holds a latch"), "%s", out);
	/* nothing changed: still registered, still HALTED for its engine */
	slot = engine_slot(&h, "momo-eu-1");
	cr_assert_geq(slot, 0);
	cr_assert_eq(engine_mode(&h, slot), BK_HALTED);
	cr_assert_eq(cli(&h, "strategies"), 0, "%s", out);
	cr_assert(strstr(out, "momo-eu-1"), "%s", out);
	down(&h);
}

Test(scopectl, unregister_refused_while_an_engine_is_attached)
{
	struct bk_h h;

	up(&h, "unreg-attached", NULL);
	cr_assert_eq(cli(&h, "register", "momo-eu-1"), 0, "%s", out);
	engine_beats(&h, 0, (uint32_t)getpid());
	cr_assert_eq(cli(&h, "unregister", "momo-eu-1", "--reason", "retire"), 1, "%s",
	             out);
	cr_assert(strstr(out, "ERR_ENGINE_ATTACHED"), "%s", out);
	cr_assert(strstr(out, "engine is attached"), "%s", out);
	cr_assert_eq(cli(&h, "rename", "momo-eu-1", "momo-eu-2", "--reason", "x"), 1,
	             "%s", out);
	cr_assert(strstr(out, "ERR_ENGINE_ATTACHED"), "%s", out);
	cr_assert_eq(engine_slot(&h, "momo-eu-1"), 0);
	down(&h);
}

Test(scopectl, unregister_refused_for_a_configured_strategy)
{
	struct bk_h h;

	up(&h, "unreg-cfg", "[strategies]\nnames = s1\n" PLAIN);
	cr_assert_eq(cli(&h, "unregister", "s1", "--reason", "retire"), 1, "%s", out);
	cr_assert(strstr(out, "[strategies]"), "%s", out);
	cr_assert_eq(engine_slot(&h, "s1"), 0);
	down(&h);
}

Test(scopectl, unregistered_slot_is_a_halted_tombstone_never_reused)
{
	struct bk_h h;
	int slot;

	up(&h, "unreg-tomb", NULL);
	cr_assert_eq(cli(&h, "register", "momo-eu-1"), 0, "%s", out);
	cr_assert_eq(cli(&h, "register", "arb-us-2"), 0, "%s", out);
	slot = engine_slot(&h, "momo-eu-1");
	cr_assert_eq(slot, 0);
	cr_assert_eq(engine_mode(&h, slot), BK_ACTIVE);
	cr_assert_eq(cli(&h, "unregister", "momo-eu-1", "--reason", "retired, t-88"), 0,
	             "%s", out);
	cr_assert(strstr(out, "unregistered strategy momo-eu-1"), "%s", out);
	/* an engine that cached the slot is stopped; a new one cannot find it */
	cr_assert_eq(engine_mode(&h, slot), BK_HALTED);
	cr_assert_eq(engine_slot(&h, "momo-eu-1"), -ENOENT);
	cr_assert_eq(cli(&h, "strategies"), 0, "%s", out);
	cr_assert_null(strstr(out, "momo-eu-1"), "%s", out);
	cr_assert(strstr(out, "arb-us-2"), "%s", out);
	cr_assert_eq(cli(&h, "status"), 0, "%s", out);
	cr_assert(strstr(out, "strategies: 1 registered"), "%s", out);
	cr_assert_eq(cli(&h, "kill", "momo-eu-1", "--reason", "x"), 1, "%s", out);
	cr_assert(strstr(out, "ERR_UNKNOWN_STRATEGY"), "%s", out);
	/* the name again: a new slot, never the tombstone */
	cr_assert_eq(cli(&h, "register", "momo-eu-1"), 0, "%s", out);
	cr_assert_eq(engine_slot(&h, "momo-eu-1"), 2);
	cr_assert_eq(engine_mode(&h, slot), BK_HALTED);
	/* replayed at boot: the same after a restart */
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_h_start(&h);
	cr_assert_eq(engine_slot(&h, "momo-eu-1"), 2);
	cr_assert_eq(engine_mode(&h, slot), BK_HALTED);
	cr_assert_eq(engine_mode(&h, 2), BK_ACTIVE);
	cr_assert_eq(engine_slot(&h, "arb-us-2"), 1);
	cr_assert_eq(cli(&h, "audit", "--verify"), 0, "%s", out);
	cr_assert_eq(cli(&h, "audit"), 0, "%s", out);
	cr_assert(strstr(out, "UNREGISTER"), "%s", out);
	cr_assert(strstr(out, "retired, t-88"), "%s", out);
	down(&h);
}

/* ---- rename --------------------------------------------------------------- */

Test(scopectl, rename_keeps_the_slot_and_history_and_forgets_the_old_name)
{
	struct bk_h h;

	up(&h, "rename", NULL);
	cr_assert_eq(cli(&h, "register", "momo-eu-1"), 0, "%s", out);
	cr_assert_eq(cli(&h, "kill", "momo-eu-1", "--reason", "runaway"), 0, "%s", out);
	cr_assert_eq(cli(&h, "rename", "momo-eu-1", "momo-xetr-1", "--reason", "r"), 1,
	             "%s", out);
	cr_assert(strstr(out, "ERR_LATCHED"), "%s", out);
	cr_assert_eq(cli(&h, "resume", "--strategy", "momo-eu-1", "--to", "active",
	                 "--force", "--reason", "fixed"),
	             0, "%s", out);
	cr_assert_eq(cli(&h, "rename", "momo-eu-1", "momo-xetr-1", "--reason",
	                 "venue in the name"),
	             0, "%s", out);
	cr_assert(strstr(out, "renamed strategy momo-eu-1 to momo-xetr-1"), "%s", out);
	cr_assert_eq(engine_slot(&h, "momo-xetr-1"), 0);
	cr_assert_eq(engine_slot(&h, "momo-eu-1"), -ENOENT);
	cr_assert_eq(engine_mode(&h, 0), BK_ACTIVE);
	/* the old name is unknown, with the new one offered */
	cr_assert_eq(cli(&h, "kill", "momo-eu-1", "--reason", "x"), 1, "%s", out);
	cr_assert(strstr(out, "ERR_UNKNOWN_STRATEGY"), "%s", out);
	cr_assert_eq(cli(&h, "kill", "momo-xetr-1", "--reason", "again"), 0, "%s", out);
	cr_assert_eq(engine_mode(&h, 0), BK_HALTED);
	/* a name that exists is refused */
	cr_assert_eq(cli(&h, "register", "arb-1"), 0, "%s", out);
	cr_assert_eq(cli(&h, "rename", "arb-1", "momo-xetr-1", "--reason", "r"), 1, "%s",
	             out);
	cr_assert(strstr(out, "ERR_EXISTS"), "%s", out);
	/* replayed: the history before the rename still applies to the slot */
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_h_start(&h);
	cr_assert_eq(engine_slot(&h, "momo-xetr-1"), 0);
	cr_assert_eq(engine_slot(&h, "momo-eu-1"), -ENOENT);
	cr_assert_eq(engine_mode(&h, 0), BK_HALTED);
	cr_assert_eq(cli(&h, "audit"), 0, "%s", out);
	cr_assert(strstr(out, "RENAME"), "%s", out);
	cr_assert(strstr(out, "new_name=momo-xetr-1"), "%s", out);
	cr_assert(strstr(out, "runaway"), "%s", out);
	cr_assert_eq(cli(&h, "audit", "--verify"), 0, "%s", out);
	down(&h);
}

/* ---- did you mean ---------------------------------------------------------- */

Test(scopectl, typo_strategy_is_refused_with_a_hint_and_never_registered)
{
	struct bk_h h;

	up(&h, "typo", NULL);
	cr_assert_eq(cli(&h, "register", "momo-eu-1"), 0, "%s", out);
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--strategy", "momo-eu1"), 1, "%s",
	             out);
	cr_assert(strstr(out, "ERR_UNKNOWN_STRATEGY"), "%s", out);
	cr_assert(strstr(out, "did you mean 'momo-eu-1'"), "%s", out);
	cr_assert_eq(cli(&h, "kill", "mom-eu-1", "--reason", "x"), 1, "%s", out);
	cr_assert(strstr(out, "did you mean 'momo-eu-1'"), "%s", out);
	/* nothing registered, nothing tripped */
	cr_assert_eq(engine_slot(&h, "momo-eu1"), -ENOENT);
	cr_assert_eq(engine_slot(&h, "mom-eu-1"), -ENOENT);
	cr_assert_eq(engine_mode(&h, 0), BK_ACTIVE);
	cr_assert_eq(cli(&h, "status"), 0, "%s", out);
	cr_assert(strstr(out, "ACTIVE"), "%s", out);
	cr_assert_eq(cli(&h, "audit"), 0, "%s", out);
	cr_assert_eq(bk_h_count(out, "REGISTER"), 1, "%s", out);
	down(&h);
}

Test(scopectl, typo_group_is_refused_with_a_hint)
{
	struct bk_h h;

	up(&h, "typo-group", NULL);
	cr_assert_eq(cli(&h, "register", "momo-eu-1", "--group", "venue:XETR"), 0, "%s",
	             out);
	cr_assert_eq(cli(&h, "trip", "exchange_down", "--group", "venue:XTER"), 1, "%s",
	             out);
	cr_assert(strstr(out, "ERR_UNKNOWN_GROUP"), "%s", out);
	cr_assert(strstr(out, "did you mean 'venue:XETR'"), "%s", out);
	cr_assert_eq(engine_mode(&h, engine_slot(&h, "momo-eu-1")), BK_ACTIVE);
	down(&h);
}

Test(scopectl, typo_command_and_reason_code_get_a_hint)
{
	struct bk_h h;

	bk_h_init(&h, "typo-cli", PLAIN); /* nothing is sent: no daemon needed */
	cr_assert_eq(cli(&h, "emergency_stop"), 2, "%s", out);
	cr_assert(strstr(out, "did you mean 'emergency-stop'"), "%s", out);
	cr_assert_eq(cli(&h, "halt"), 2, "%s", out);
	cr_assert(strstr(out, "trip manual_halt"), "%s", out);
	cr_assert(strstr(out, "emergency-stop"), "%s", out);
	cr_assert_eq(cli(&h, "stauts"), 2, "%s", out);
	cr_assert(strstr(out, "did you mean 'status'"), "%s", out);
	cr_assert_eq(cli(&h, "trip", "manual_hlt"), 2, "%s", out);
	cr_assert(strstr(out, "did you mean 'manual_halt'"), "%s", out);
	cr_assert_eq(cli(&h, "resume", "--reason-code", "rejct_rate", "--reason", "x"), 2,
	             "%s", out);
	cr_assert(strstr(out, "did you mean 'reject_rate'"), "%s", out);
	down(&h);
}

/* ---- published limits (item 5) -------------------------------------------- */

#define LIMITS                                                                           \
	"[limits]\ncautious.size_factor = 0.25\nreduce_only.size_factor = 0\n"           \
	"[limits:momo-eu-1]\ncautious.max_qty = 100\ncautious.max_notional = 50000\n"

static struct bk_limit_values c_limits(struct bk_h *h, int slot)
{
	struct bk_limit_values v;
	struct bk_client c;

	bk_h_attach(h, &c);
	cr_assert_eq(bk_limits(&c, slot, &v), 0);
	bk_client_detach(&c);
	return v;
}

/* What the Python client's limits() says, as "flags size max_qty max_notional". */
static void py_limits(struct bk_h *h, const char *strategy, char *buf, size_t len)
{
	char cmd[1024];
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd),
	         "PYTHONPATH=%s/clients/python python3 -c '"
	         "import breaker_client as bk\n"
	         "c = bk.attach(\"%s\")\n"
	         "l = c.limits(c.resolve(\"%s\"))\n"
	         "print(l.flags, l.size_factor, l.max_qty, l.max_notional)' 2>&1",
	         BK_SOURCE_DIR, h->instance, strategy);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(buf, 1, len - 1, p);
	buf[n] = '\0';
	cr_assert_eq(pclose(p), 0, "%s", buf);
}

Test(scopectl, limits_follow_the_mode_for_c_and_python_engines)
{
	struct bk_limit_values v;
	struct bk_h h;
	char py[256];
	int slot;

	up(&h, "limits", LIMITS PLAIN);
	cr_assert_eq(cli(&h, "register", "momo-eu-1"), 0, "%s", out);
	cr_assert_eq(cli(&h, "register", "arb-1"), 0, "%s", out);
	slot = engine_slot(&h, "momo-eu-1");
	v = c_limits(&h, slot);
	cr_assert_eq(v.flags, 0, "ACTIVE: no limits");
	cr_assert_float_eq(v.size_factor, 1.0, 1e-12);
	/* CAUTIOUS: [limits] default size and the strategy's own maxima */
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--strategy", "momo-eu-1", "--mode",
	                 "cautious", "--reason", "restart with reduced sizes"),
	             0, "%s", out);
	v = c_limits(&h, slot);
	cr_assert_eq(v.flags,
	             BK_LIMIT_SIZE_FACTOR | BK_LIMIT_MAX_QTY | BK_LIMIT_MAX_NOTIONAL);
	cr_assert_float_eq(v.size_factor, 0.25, 1e-12);
	cr_assert_float_eq(v.max_qty, 100, 1e-9);
	cr_assert_float_eq(v.max_notional, 50000, 1e-9);
	py_limits(&h, "momo-eu-1", py, sizeof(py));
	cr_assert_str_eq(py, "7 0.25 100.0 50000.0\n");
	/* the other strategy is untouched */
	cr_assert_eq(c_limits(&h, engine_slot(&h, "arb-1")).flags, 0);
	cr_assert_eq(cli(&h, "status"), 0, "%s", out);
	cr_assert(strstr(out, "limits: size x0.25, max qty 100, max notional 50000"),
	          "%s", out);
	/* resumed to ACTIVE: none again, for both clients */
	cr_assert_eq(cli(&h, "resume", "--strategy", "momo-eu-1", "--reason", "calm"), 0,
	             "%s", out);
	v = c_limits(&h, slot);
	cr_assert_eq(v.flags, 0);
	py_limits(&h, "momo-eu-1", py, sizeof(py));
	cr_assert_str_eq(py, "0 1.0 None None\n");
	/* global CAUTIOUS holds every engine to global's entry */
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--mode", "cautious"), 0, "%s", out);
	v = c_limits(&h, engine_slot(&h, "arb-1"));
	cr_assert_eq(v.flags, BK_LIMIT_SIZE_FACTOR);
	cr_assert_float_eq(v.size_factor, 0.25, 1e-12);
	/* kept across a restart (published at boot) */
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_h_start(&h);
	v = c_limits(&h, engine_slot(&h, "arb-1"));
	cr_assert_float_eq(v.size_factor, 0.25, 1e-12);
	down(&h);
}

Test(scopectl, min_stage_time_refuses_an_early_resume_with_the_time_left)
{
	struct bk_h h;
	uint64_t deadline;
	int rc;

	up(&h, "minstage",
	   "[limits]\nhalted.min_stage_ms = 600000\n"
	   "[limits:fast-1]\nhalted.min_stage_ms = 300\n" PLAIN);
	cr_assert_eq(cli(&h, "register", "slow-1"), 0, "%s", out);
	cr_assert_eq(cli(&h, "register", "fast-1"), 0, "%s", out);
	cr_assert_eq(cli(&h, "kill", "slow-1", "--reason", "x"), 0, "%s", out);
	cr_assert_eq(cli(&h, "resume", "--strategy", "slow-1", "--reason", "early"), 1,
	             "%s", out);
	cr_assert(strstr(out, "ERR_STAGE_TOO_SOON"), "%s", out);
	cr_assert(strstr(out, "halted.min_stage_ms is 600000"), "%s", out);
	cr_assert(strstr(out, "s left"), "%s", out);
	cr_assert_eq(engine_mode(&h, engine_slot(&h, "slow-1")), BK_HALTED);
	/* forced: audited as forced, no wait */
	cr_assert_eq(cli(&h, "resume", "--strategy", "slow-1", "--force", "--reason",
	                 "desk head says go"),
	             0, "%s", out);
	cr_assert_eq(engine_mode(&h, engine_slot(&h, "slow-1")), BK_REDUCE_ONLY);
	/* its own shorter stage: refused at first, accepted once it has passed */
	cr_assert_eq(cli(&h, "kill", "fast-1", "--reason", "x"), 0, "%s", out);
	deadline = bk_h_mono_ms() + 20000;
	do {
		rc = cli(&h, "resume", "--strategy", "fast-1", "--reason", "waited");
		if (rc != 0) {
			cr_assert(strstr(out, "ERR_STAGE_TOO_SOON"), "%s", out);
			usleep(50000);
		}
	} while (rc != 0 && bk_h_mono_ms() < deadline);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert_eq(engine_mode(&h, engine_slot(&h, "fast-1")), BK_REDUCE_ONLY);
	down(&h);
}

/* Rewrite the config, SIGHUP, and wait for the n-th reload (each
 * reload done before the file changes again: signals coalesce). */
static void reload(struct bk_h *h, const char *ini, int n)
{
	uint64_t deadline = bk_h_mono_ms() + 20000;

	bk_h_write_config(h, h->config, ini);
	kill(h->pid, SIGHUP);
	do { /* breakerd logs each reload, applied or refused */
		if (bk_h_slurp(h->log, out, sizeof(out)) > 0 &&
		    bk_h_count(out, "SIGHUP: rules reloaded") +
		            bk_h_count(out, "the running rules stay in force") >=
		        n)
			return;
		usleep(20000);
	} while (bk_h_mono_ms() < deadline);
	cr_assert_fail("no CONFIG record %d: %s", n, out);
}

Test(scopectl, bad_limits_config_is_refused_and_a_reload_is_audited)
{
	struct bk_h h;
	int slot;

	up(&h, "limits-reload", LIMITS PLAIN);
	cr_assert_eq(cli(&h, "register", "momo-eu-1"), 0, "%s", out);
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--strategy", "momo-eu-1", "--mode",
	                 "cautious"),
	             0, "%s", out);
	slot = engine_slot(&h, "momo-eu-1");
	cr_assert_float_eq(c_limits(&h, slot).size_factor, 0.25, 1e-12);
	/* a size factor above 1 and an unknown key: refused, nothing changes */
	reload(&h, "[limits]\ncautious.size_factor = 1.5\n" PLAIN, 1);
	cr_assert_float_eq(c_limits(&h, slot).size_factor, 0.25, 1e-12);
	reload(&h, "[limits]\ncautious.size = 0.5\n" PLAIN, 2);
	cr_assert_float_eq(c_limits(&h, slot).size_factor, 0.25, 1e-12);
	cr_assert_eq(c_limits(&h, slot).flags,
	             BK_LIMIT_SIZE_FACTOR | BK_LIMIT_MAX_QTY | BK_LIMIT_MAX_NOTIONAL);
	/* a good one: applied and audited */
	reload(&h, "[limits]\ncautious.size_factor = 0.1\n" PLAIN, 3);
	cr_assert_float_eq(c_limits(&h, slot).size_factor, 0.1, 1e-12);
	cr_assert_eq(c_limits(&h, slot).flags, BK_LIMIT_SIZE_FACTOR,
	             "the strategy's maxima were taken out of the file");
	cr_assert_eq(cli(&h, "audit"), 0, "%s", out);
	cr_assert_geq(bk_h_count(out, "reload refused"), 2, "%s", out);
	cr_assert(strstr(out, "limits.cautious.size_factor"), "%s", out);
	down(&h);
}

Test(scopectl, group_limits_fold_into_members_at_the_groups_mode)
{
	struct bk_limit_values v;
	struct bk_h h;
	int a, b;

	up(&h, "limits-group",
	   "[limits]\ncautious.size_factor = 0.5\n"
	   "[limits:venue:XETR]\ncautious.max_qty = 10\n" PLAIN);
	cr_assert_eq(cli(&h, "register", "momo-eu-1", "--group", "venue:XETR"), 0, "%s",
	             out);
	cr_assert_eq(cli(&h, "register", "arb-1"), 0, "%s", out);
	a = engine_slot(&h, "momo-eu-1");
	b = engine_slot(&h, "arb-1");
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--group", "venue:XETR", "--mode",
	                 "cautious", "--reason", "XETR reconnect"),
	             0, "%s", out);
	v = c_limits(&h, a);
	cr_assert_eq(v.flags, BK_LIMIT_SIZE_FACTOR | BK_LIMIT_MAX_QTY);
	cr_assert_float_eq(v.size_factor, 0.5, 1e-12);
	cr_assert_float_eq(v.max_qty, 10, 1e-9);
	cr_assert_eq(c_limits(&h, b).flags, 0, "not a member: untouched");
	cr_assert_eq(cli(&h, "resume", "--group", "venue:XETR", "--reason", "back"), 0,
	             "%s", out);
	cr_assert_eq(c_limits(&h, a).flags, 0);
	/* unregistering a member takes it out of its groups too */
	cr_assert_eq(cli(&h, "unregister", "momo-eu-1", "--reason", "retired"), 0, "%s",
	             out);
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--group", "venue:XETR"), 1, "%s",
	             out);
	cr_assert(strstr(out, "ERR_UNKNOWN_GROUP"), "a group of no members: %s", out);
	cr_assert_eq(engine_mode(&h, a), BK_HALTED);
	down(&h);
}

/* `breaker watch --count 1` in the background, its stdout/stderr in h->dir. */
static pid_t spawn_watch(struct bk_h *h)
{
	const char *bin = getenv("BREAKER_CLI") ? getenv("BREAKER_CLI") : "breaker";
	char *argv[] = {(char *)bin, "--config",     h->config, "watch", "--count",
	                "1",         "--timeout-ms", "10000",   NULL};
	char o[256], e[256];
	posix_spawn_file_actions_t fa;
	pid_t pid;

	snprintf(o, sizeof(o), "%s/watch.out", h->dir);
	snprintf(e, sizeof(e), "%s/watch.err", h->dir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, o, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, e, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_eq(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 500; i++) { /* subscribed: it says so on stderr */
		if (bk_h_slurp(e, out, sizeof(out)) > 0 &&
		    strstr(out, "watching breakerd events")) {
			usleep(100000); /* breakerd's side of the pipe */
			return pid;
		}
		usleep(10000);
	}
	cr_assert_fail("watch never subscribed: %s", out);
	return pid;
}

Test(scopectl, watch_names_the_unregistered_strategy)
{
	struct bk_h h;
	char path[256];
	int st = 0;
	pid_t w;

	up(&h, "unreg-watch", NULL);
	cr_assert_eq(cli(&h, "register", "momo-eu-1"), 0, "%s", out);
	w = spawn_watch(&h);
	cr_assert_eq(cli(&h, "unregister", "momo-eu-1", "--reason", "retired"), 0, "%s",
	             out);
	cr_assert_eq(waitpid(w, &st, 0), w);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(path, sizeof(path), "%s/watch.out", h.dir);
	bk_h_slurp(path, out, sizeof(out));
	cr_assert(strstr(out, "UNREGISTER"), "%s", out);
	cr_assert(strstr(out, "momo-eu-1"), "the event names it: %s", out);
	down(&h);
}

Test(scopectl, a_reused_request_id_names_its_unregister_or_rename)
{
	struct bk_h h;
	char *a[] = {"unregister", "momo-eu-1", "--reason", "retired", NULL};
	char *b[] = {"unregister", "arb-1", "--reason", "retired", NULL};
	char *r[] = {"rename", "arb-1", "arb-2", "--reason", "x", NULL};

	up(&h, "unreg-rid", NULL);
	cr_assert_eq(cli(&h, "register", "momo-eu-1"), 0, "%s", out);
	cr_assert_eq(cli(&h, "register", "arb-1"), 0, "%s", out);
	cr_assert_eq(bk_h_cli_as(&h, -1, -1, "4242001", a, out, sizeof(out)), 0, "%s",
	             out);
	/* the same id for another strategy is not "already applied" */
	cr_assert_eq(bk_h_cli_as(&h, -1, -1, "4242001", b, out, sizeof(out)), 1, "%s",
	             out);
	cr_assert(strstr(out, "ERR_REQUEST_ID_REUSED"), "%s", out);
	cr_assert_eq(bk_h_cli_as(&h, -1, -1, "4242001", r, out, sizeof(out)), 1, "%s",
	             out);
	cr_assert(strstr(out, "ERR_REQUEST_ID_REUSED"), "%s", out);
	cr_assert_eq(engine_slot(&h, "arb-1"), 1, "nothing applied");
	/* a genuine resend is answered, applied once */
	cr_assert_eq(bk_h_cli_as(&h, -1, -1, "4242001", a, out, sizeof(out)), 0, "%s",
	             out);
	down(&h);
}

Test(scopectl, another_local_user_may_not_unregister_or_rename)
{
	struct bk_h h;
	char *u[] = {"unregister", "momo-eu-1", "--reason", "mine now", NULL};
	char *r[] = {"rename", "momo-eu-1", "evil-1", "--reason", "mine now", NULL};

	if (geteuid() != 0)
		cr_skip_test("needs root: runs the CLI as another user");
	up(&h, "unreg-auth", "[commands]\nsocket_mode = 0666\n" PLAIN);
	bk_h_open_dirs(&h);
	cr_assert_eq(cli(&h, "register", "momo-eu-1"), 0, "%s", out);
	cr_assert_eq(bk_h_cli_as(&h, 65534, 65534, NULL, u, out, sizeof(out)), 1, "%s",
	             out);
	cr_assert(strstr(out, "ERR_UNAUTHORISED"), "%s", out);
	cr_assert_eq(bk_h_cli_as(&h, 65534, 65534, NULL, r, out, sizeof(out)), 1, "%s",
	             out);
	cr_assert(strstr(out, "ERR_UNAUTHORISED"), "%s", out);
	cr_assert_eq(engine_slot(&h, "momo-eu-1"), 0, "nothing changed");
	cr_assert_eq(engine_slot(&h, "evil-1"), -ENOENT);
	cr_assert_eq(cli(&h, "audit"), 0, "%s", out);
	cr_assert_eq(bk_h_count(out, "REFUSED"), 2, "both refusals audited: %s", out);
	down(&h);
}

/* ---- units: the limits keys, their merge, and "did you mean" -------------- */

Test(scopectl, limits_keys_are_validated_strictly)
{
	static struct bk_limits_cfg lc;
	static const char *const bad[][2] = {
	    {"cautious.size_factor", "1.5"}, {"cautious.size_factor", "-0.1"},
	    {"cautious.size_factor", "nan"}, {"cautious.max_qty", "inf"},
	    {"cautious.max_qty", "0x10"},    {"cautious.max_qty", "1e400"},
	    {"cautious.max_qty", ""},        {"cautious.max_qty", "12 "},
	    {"halted.min_stage_ms", "1.5"},  {"halted.min_stage_ms", "86400001"},
	    {"cautious.size", "0.5"},        {"careful.size_factor", "0.5"},
	    {"size_factor", "0.5"},          {"cautious.", "0.5"},
	};
	struct bk_limit_set e;
	char why[400];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&lc, 0, sizeof(lc));
		cr_assert_eq(
		    bk_limits_key(&lc, NULL, bad[i][0], bad[i][1], why, sizeof(why)),
		    -EINVAL, "%s = '%s' accepted", bad[i][0], bad[i][1]);
		cr_assert_eq(lc.global.mode[BK_CAUTIOUS].flags, 0, "nothing set");
		cr_assert(!lc.any);
	}
	memset(&lc, 0, sizeof(lc));
	cr_assert_eq(
	    bk_limits_key(&lc, "bad name", "cautious.max_qty", "1", why, sizeof(why)),
	    -EINVAL);
	cr_assert_eq(
	    bk_limits_key(&lc, NULL, "cautious.size_factor", "0.25", why, sizeof(why)), 0,
	    "%s", why);
	cr_assert_eq(
	    bk_limits_key(&lc, NULL, "cautious.max_qty", "500", why, sizeof(why)), 0,
	    "%s", why);
	cr_assert_eq(
	    bk_limits_key(&lc, "venue:XETR", "cautious.max_qty", "10", why, sizeof(why)),
	    0, "%s", why);
	cr_assert_eq(bk_limits_key(&lc, "venue:XETR", "halted.min_stage_ms", "0", why,
	                           sizeof(why)),
	             0, "%s", why);
	/* the override wins key by key; the default fills the rest */
	bk_limits_effective(&lc, "venue:XETR", BK_CAUTIOUS, &e);
	cr_assert_eq(e.flags, BK_LIMIT_SIZE_FACTOR | BK_LIMIT_MAX_QTY);
	cr_assert_float_eq(e.size_factor, 0.25, 1e-12);
	cr_assert_float_eq(e.max_qty, 10, 1e-12);
	bk_limits_effective(&lc, "other", BK_CAUTIOUS, &e);
	cr_assert_float_eq(e.max_qty, 500, 1e-12);
	bk_limits_effective(&lc, "other", BK_ACTIVE, &e);
	cr_assert_eq(e.flags, 0);
	cr_assert_eq(bk_limits_min_stage_ms(&lc, "venue:XETR", BK_HALTED), 0);
}

Test(scopectl, suggestions_are_near_and_few)
{
	static const char *const cmds[] = {"trip",    "emergency-stop", "kill",
	                                   "resume",  "status",         "strategies",
	                                   "register"};
	char out2[200];

	cr_assert_eq(bk_edit_distance("manual_hlt", "manual_halt", 3), 1);
	cr_assert_eq(bk_edit_distance("stauts", "status", 3), 1, "a swap is one edit");
	cr_assert_eq(bk_edit_distance("EMERGENCY_STOP", "emergency-stop", 3), 0);
	cr_assert_gt(bk_edit_distance("abcdef", "uvwxyz", 2), 2);
	cr_assert_eq(bk_suggest("emergency_stop", cmds, 7, out2, sizeof(out2)), 1);
	cr_assert_str_eq(out2, "'emergency-stop'");
	cr_assert_eq(bk_suggest("strat", cmds, 7, out2, sizeof(out2)), 1, "%s", out2);
	cr_assert_str_eq(out2, "'strategies'");
	cr_assert_eq(bk_suggest("xyzzy", cmds, 7, out2, sizeof(out2)), 0);
	cr_assert_eq(bk_suggest("a", cmds, 7, out2, sizeof(out2)), 0, "%s", out2);
}
