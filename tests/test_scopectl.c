/*
 * Integration (issue 14 items 3 and 5): unregister and rename a strategy,
 * "did you mean" for a mistyped strategy, command or reason code, against
 * a real breakerd, the real CLI and the real client header.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_tel.h"

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
