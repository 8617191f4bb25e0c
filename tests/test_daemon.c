/*
 * Integration: a real breakerd, the real `breaker` CLI, the real client
 * header. Each test has its own instance, sockets and state directory.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bk_audit.h"
#include "bk_harness.h"
#include "bk_mode.h"

#define STRATS "[strategies]\nnames = alpha, beta, gamma\n"

static char out[65536];

static struct bk_h *up(struct bk_h *h, const char *tag, const char *extra)
{
	bk_h_init(h, tag, extra ? extra : STRATS);
	bk_h_start(h);
	return h;
}

static int slot_of(struct bk_client *c, const char *name)
{
	int s = bk_client_resolve(c, name);

	cr_assert_geq(s, 0, "strategy %s not in shm", name);
	return s;
}

/* Live again within 5 s: a slow machine (sanitizers) may be late to beat;
 * only a daemon that never beats fails this. */
static int live_soon(struct bk_client *c, int slot, uint64_t bound_ns)
{
	int m = BK_HALTED;

	for (int i = 0; i < 500 && (m = bk_check_live(c, slot, bk_now_mono_ns(),
	                                              bound_ns)) == BK_HALTED;
	     i++)
		usleep(10000);
	return m;
}

Test(daemon, trip_is_seen_by_the_engine)
{
	struct bk_h h;
	struct bk_client c;
	struct bk_reason r;

	up(&h, "trip", NULL);
	bk_h_attach(&h, &c);
	int a = slot_of(&c, "alpha");
	cr_assert_eq(bk_check(&c, a), BK_ACTIVE);
	cr_assert_eq(live_soon(&c, a, 0), BK_ACTIVE);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", "--reason",
	                      "Emergency halt by operator", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_check(&c, a), BK_HALTED);
	cr_assert_eq(bk_check(&c, -1), BK_HALTED);
	bk_read_reason(&c, a, &r);
	cr_assert_eq(r.reason_code, (unsigned)BK_R_MANUAL_HALT,
	             "engine can name the reason");
	cr_assert_eq(r.actor_uid, (uint32_t)geteuid(), "actor is the caller's uid");
	cr_assert_gt(r.since_wall_ns, 0u);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(daemon, kill_one_strategy_leaves_others_active)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "kill", NULL);
	bk_h_attach(&h, &c);
	cr_assert_eq(
	    bk_h_cli(&h, out, sizeof(out), "kill", "beta", "--reason", "runaway", NULL),
	    0, "%s", out);
	cr_assert_eq(bk_check(&c, slot_of(&c, "beta")), BK_HALTED);
	cr_assert_eq(bk_check(&c, slot_of(&c, "alpha")), BK_ACTIVE);
	cr_assert_eq(bk_check(&c, slot_of(&c, "gamma")), BK_ACTIVE);
	cr_assert_eq(bk_check(&c, -1), BK_ACTIVE);
	/* an unknown strategy is refused and changes nothing */
	cr_assert_eq(
	    bk_h_cli(&h, out, sizeof(out), "kill", "nosuch", "--reason", "x", NULL), 1);
	cr_assert_eq(bk_check(&c, slot_of(&c, "alpha")), BK_ACTIVE);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(daemon, two_latches_resume_one_stays_halted)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "latch", NULL);
	bk_h_attach(&h, &c);
	int a = slot_of(&c, "alpha");
	cr_assert_eq(
	    bk_h_cli(&h, NULL, 0, "trip", "manual_halt", "--strategy", "alpha", NULL), 0);
	cr_assert_eq(
	    bk_h_cli(&h, NULL, 0, "trip", "reject_rate", "--strategy", "alpha", NULL), 0);
	/* without naming a latch the resume is ambiguous: refused */
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "resume", "--strategy", "alpha",
	                      "--to", "reduce-only", "--reason", "x", NULL),
	             1);
	cr_assert_eq(bk_check(&c, a), BK_HALTED);
	/* release manual_halt completely (forced): reject_rate still holds HALTED */
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "resume", "--strategy", "alpha",
	                      "--reason-code", "manual_halt", "--to", "active", "--force",
	                      "--reason", "ops ok", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_check(&c, a), BK_HALTED);
	struct bk_reason r;
	bk_read_reason(&c, a, &r);
	cr_assert_eq(r.reason_code, (unsigned)BK_R_REJECT_RATE);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(daemon, staged_resume_and_refused_skip)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "stage", NULL);
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "emergency-stop", NULL), 0);
	cr_assert_eq(bk_check(&c, -1), BK_HALTED);
	/* skipping stages without --force is refused and changes nothing */
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "resume", "--to", "active",
	                      "--reason", "x", NULL),
	             1);
	cr_assert_eq(bk_check(&c, -1), BK_HALTED);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "resume", "--to", "reduce-only",
	                      "--reason", "stage 1", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_check(&c, -1), BK_REDUCE_ONLY);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "resume", "--to", "cautious", "--reason",
	                      "stage 2", NULL),
	             0);
	cr_assert_eq(bk_check(&c, -1), BK_CAUTIOUS);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "resume", "--to", "active", "--reason",
	                      "stage 3", NULL),
	             0);
	cr_assert_eq(bk_check(&c, -1), BK_ACTIVE);
	/* nothing left to resume */
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "resume", "--reason", "again", NULL), 1);
	/* the audit log tells the story, and verifies */
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", "--verify", NULL), 0, "%s",
	             out);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(daemon, kill9_after_trip_restart_still_halted)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "crash", NULL);
	bk_h_attach(&h, &c);
	cr_assert_eq(
	    bk_h_cli(&h, NULL, 0, "kill", "gamma", "--reason", "bad fills", NULL), 0);
	cr_assert_eq(
	    bk_h_cli(&h, NULL, 0, "trip", "manual_halt", "--mode", "reduce-only", NULL),
	    0);
	bk_h_kill9(&h);
	/* the engine keeps its mapping; the daemon is gone so liveness fails closed */
	usleep(20000);
	cr_assert_eq(bk_check_live(&c, slot_of(&c, "alpha"), bk_now_mono_ns(), 10000000),
	             BK_HALTED);
	bk_h_start(&h);
	/* same segment, same slots: no reattach needed */
	cr_assert_eq(bk_check(&c, slot_of(&c, "gamma")), BK_HALTED);
	cr_assert_eq(bk_check(&c, slot_of(&c, "alpha")), BK_REDUCE_ONLY);
	cr_assert_eq(bk_check_live(&c, slot_of(&c, "alpha"), bk_now_mono_ns(), 0),
	             BK_REDUCE_ONLY);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", "--verify", NULL), 0, "%s",
	             out);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(daemon, dead_or_stopped_daemon_fails_closed)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "hb", NULL);
	bk_h_attach(&h, &c);
	int a = slot_of(&c, "alpha");
	cr_assert_eq(live_soon(&c, a, 0), BK_ACTIVE);
	/* a frozen daemon stops beating: HALTED once the bound passes */
	kill(h.pid, SIGSTOP);
	usleep(30000);
	cr_assert_eq(bk_check_live(&c, a, bk_now_mono_ns(), 10 * 1000 * 1000), BK_HALTED);
	cr_assert_eq(bk_check(&c, a), BK_ACTIVE,
	             "the plain check still shows the last word");
	kill(h.pid, SIGCONT);
	cr_assert_eq(live_soon(&c, a, 10 * 1000 * 1000), BK_ACTIVE, "beats again");
	/* a clean stop zeroes the heartbeat: HALTED at once */
	cr_assert_eq(bk_h_stop(&h), 0);
	cr_assert_eq(bk_check_live(&c, a, bk_now_mono_ns(), 60ull * 1000000000ull),
	             BK_HALTED);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

struct waiter {
	struct bk_client *c;
	uint32_t seen;
	_Atomic int rv; /* the main thread looks while the waiter may write */
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct timespec ts = {.tv_sec = 10};

	w->rv = bk_wait_change(w->c, w->seen, &ts);
	return NULL;
}

Test(daemon, futex_waiter_is_woken_by_a_trip)
{
	struct bk_h h;
	struct bk_client c;
	struct waiter w;
	pthread_t t;

	up(&h, "futex", NULL);
	bk_h_attach(&h, &c);
	w.c = &c;
	w.seen = bk_change_seq(&c);
	w.rv = 1;
	cr_assert_eq(pthread_create(&t, NULL, wait_thread, &w), 0);
	usleep(50000);
	cr_assert_eq(w.rv, 1, "the waiter sleeps while nothing changes");
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "emergency-stop", NULL), 0);
	pthread_join(t, NULL);
	cr_assert_eq(w.rv, 0, "woken by the change, not the timeout");
	cr_assert_eq(bk_check(&c, -1), BK_HALTED);
	struct timespec short_ts = {.tv_nsec = 20 * 1000 * 1000};
	cr_assert_eq(bk_wait_change(&c, bk_change_seq(&c), &short_ts), -ETIMEDOUT);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

/* ---- bad input over the wire ------------------------------------------------ */

static Breaker__Reply *call(struct bk_h *h, Breaker__Request *req)
{
	uint8_t buf[8192];
	size_t n = breaker__request__pack(req, buf);

	return bk_h_raw_call(h, buf, n);
}

static void expect_status(Breaker__Reply *rep, Breaker__Status st, const char *needle)
{
	cr_assert_eq(rep->status, st, "status %d, error: %s", rep->status,
	             rep->error ? rep->error : "");
	cr_assert(rep->error && strstr(rep->error, needle), "error '%s' should say '%s'",
	          rep->error ? rep->error : "", needle);
	breaker__reply__free_unpacked(rep, NULL);
}

Test(daemon, bad_input_gets_a_clear_error_and_changes_nothing)
{
	struct bk_h h;
	struct bk_client c;
	static uint8_t big[20000];
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;
	Breaker__Resume rs = BREAKER__RESUME__INIT;
	uint32_t seq0;

	up(&h, "bad", NULL);
	bk_h_attach(&h, &c);
	seq0 = bk_change_seq(&c);
	expect_status(bk_h_raw_call(&h, "\xff\xff\xff garbage", 12),
	              BREAKER__STATUS__ERR_BAD_REQUEST, "malformed");
	memset(big, 'x', sizeof(big));
	expect_status(bk_h_raw_call(&h, big, sizeof(big)), BREAKER__STATUS__ERR_TOO_LARGE,
	              "limit");
	expect_status(bk_h_raw_call(&h, "", 0), BREAKER__STATUS__ERR_BAD_REQUEST,
	              "empty");
	req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req.trip = &t;
	t.has_reason_code = 1;
	t.reason_code = (Breaker__ReasonCode)99;
	expect_status(call(&h, &req), BREAKER__STATUS__ERR_UNKNOWN_REASON, "reason code");
	t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
	t.strategy = "nosuch";
	expect_status(call(&h, &req), BREAKER__STATUS__ERR_UNKNOWN_STRATEGY, "nosuch");
	t.strategy = "bad name!";
	expect_status(call(&h, &req), BREAKER__STATUS__ERR_BAD_REQUEST, "strategy name");
	t.strategy = NULL;
	t.reason = "bell\a";
	expect_status(call(&h, &req), BREAKER__STATUS__ERR_BAD_REQUEST, "control");
	t.reason = "\xc3\x28 not utf8";
	expect_status(call(&h, &req), BREAKER__STATUS__ERR_BAD_REQUEST, "UTF-8");
	t.reason = NULL;
	t.has_mode = 1;
	t.mode = (Breaker__Mode)7;
	expect_status(call(&h, &req), BREAKER__STATUS__ERR_BAD_REQUEST, "mode");
	req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
	req.resume = &rs;
	rs.reason = "nothing to resume";
	expect_status(call(&h, &req), BREAKER__STATUS__ERR_NOT_TRIPPED, "not tripped");
	/* none of it changed anything an engine can see */
	cr_assert_eq(bk_change_seq(&c), seq0);
	cr_assert_eq(bk_check(&c, -1), BK_ACTIVE);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(daemon, resume_needs_authorisation)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "auth", STRATS "[auth]\nresume_uids = 54321\n");
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "emergency-stop", NULL), 0,
	             "trip is open to all");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "resume", "--reason", "let me", NULL),
	             1);
	cr_assert_eq(bk_check(&c, -1), BK_HALTED,
	             "an unauthorised resume changes nothing");
	bk_client_detach(&c);
	bk_h_fini(&h);
}

/* ---- boot: torn tail, corruption, missing log --------------------------------- */

static void stop_and_mangle(struct bk_h *h, void (*mangle)(const char *path))
{
	cr_assert_eq(bk_h_stop(h), 0);
	mangle(h->cfg.audit_path);
	bk_h_start(h);
}

static void append_torn(const char *path)
{
	struct bk_audit_scan sc;
	int fd;

	/* a cut append past the zeros breakerd keeps ahead (docs/audit-log.md):
	 * the file ends at the last record, then the cut frame */
	cr_assert_eq(bk_audit_scan(path, NULL, NULL, &sc), 0);
	cr_assert_eq(truncate(path, (off_t)sc.data_len), 0);
	fd = open(path, O_WRONLY | O_APPEND);

	cr_assert_geq(fd, 0);
	/* a frame header promising 200 bytes, then only 5 */
	cr_assert_eq(write(fd, "\xc8\x00\x00\x00\x01\x02\x03\x04hello", 13), 13);
	close(fd);
}

static void flip_middle_byte(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDWR);
	char b;

	cr_assert_geq(fd, 0);
	fstat(fd, &st);
	/* inside the first record's payload, well before the end */
	cr_assert_eq(pread(fd, &b, 1, 30), 1);
	b ^= 0x5a;
	cr_assert_eq(pwrite(fd, &b, 1, 30), 1);
	close(fd);
}

static void remove_log(const char *path)
{
	cr_assert_eq(unlink(path), 0);
}

Test(daemon, torn_tail_is_cut_and_state_kept)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "torn", NULL);
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "alpha", "--reason", "x", NULL), 0);
	stop_and_mangle(&h, append_torn);
	cr_assert_eq(bk_check(&c, slot_of(&c, "alpha")), BK_HALTED);
	cr_assert_eq(bk_check(&c, -1), BK_ACTIVE, "a torn tail is not corruption");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", "--verify", NULL), 0, "%s",
	             out);
	bk_h_slurp(h.log, out, sizeof(out));
	cr_assert(strstr(out, "torn tail"), "the cut is reported: %s", out);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

static void expect_fail_closed_boot(struct bk_h *h, struct bk_client *c)
{
	struct bk_reason r;

	cr_assert_eq(bk_check(c, -1), BK_HALTED);
	bk_read_reason(c, -1, &r);
	cr_assert_eq(r.reason_code, (unsigned)BK_R_AUDIT_CORRUPT);
	bk_h_slurp(h->log, out, sizeof(out));
	cr_assert(strstr(out, "FAIL-CLOSED BOOT"), "a clear message: %s", out);
	/* only a forced resume clears it */
	cr_assert_eq(bk_h_cli(h, NULL, 0, "resume", "--reason-code", "audit_corrupt",
	                      "--to", "reduce-only", "--reason", "checked", NULL),
	             1);
	cr_assert_eq(bk_h_cli(h, out, sizeof(out), "resume", "--reason-code",
	                      "audit_corrupt", "--to", "active", "--force", "--reason",
	                      "log examined", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_check(c, -1), BK_ACTIVE);
}

Test(daemon, corrupt_record_boots_halted_and_keeps_the_file)
{
	struct bk_h h;
	struct bk_client c;
	char aside[512];

	up(&h, "corrupt", NULL);
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "beta", "--reason", "x", NULL), 0);
	stop_and_mangle(&h, flip_middle_byte);
	expect_fail_closed_boot(&h, &c);
	snprintf(aside, sizeof(aside), "ls %s/state/audit.log.corrupt.* >/dev/null 2>&1",
	         h.dir);
	cr_assert_eq(system(aside), 0, "the damaged log is kept aside");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", "--verify", NULL), 0, "%s",
	             out);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(daemon, missing_log_boots_halted)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "missing", NULL);
	bk_h_attach(&h, &c);
	stop_and_mangle(&h, remove_log);
	expect_fail_closed_boot(&h, &c);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(daemon, second_daemon_on_the_same_instance_is_refused)
{
	struct bk_h h;
	char cmd[512];

	up(&h, "twice", NULL);
	snprintf(cmd, sizeof(cmd), "%s --config %s 2>%s/second.err",
	         getenv("BREAKERD") ? getenv("BREAKERD") : "breakerd", h.config, h.dir);
	cr_assert_neq(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/second.err", h.dir);
	bk_h_slurp(cmd, out, sizeof(out));
	cr_assert(strstr(out, "another breakerd"), "clear message: %s", out);
	bk_h_fini(&h);
}

static void bend_first_length(const char *path)
{
	int fd = open(path, O_RDWR);
	/* the first frame now claims 4000 bytes: past the end, whole frames after */
	uint8_t len[4] = {0xa0, 0x0f, 0, 0};

	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, len, 4, 16), 4);
	close(fd);
}

Test(daemon, bent_length_word_is_corruption_not_a_torn_tail)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "bent", NULL);
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "alpha", "--reason", "x", NULL), 0);
	stop_and_mangle(&h, bend_first_length);
	expect_fail_closed_boot(&h, &c);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(daemon, wiped_state_dir_with_a_surviving_segment_boots_halted)
{
	struct bk_h h;
	struct bk_client c;
	char cmd[300];

	up(&h, "wiped", NULL);
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "emergency-stop", NULL), 0);
	bk_h_kill9(&h);
	snprintf(cmd, sizeof(cmd), "rm -rf %s/state", h.dir);
	cr_assert_eq(system(cmd), 0);
	bk_h_start(&h);
	cr_assert_eq(bk_check(&c, -1), BK_HALTED);
	bk_h_slurp(h.log, out, sizeof(out));
	cr_assert(strstr(out, "FAIL-CLOSED BOOT"), "a clear message: %s", out);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "resume", "--reason-code",
	                      "audit_corrupt", "--to", "active", "--force", "--reason",
	                      "log examined", NULL),
	             0, "%s", out);
	/* the emergency stop engines saw went with the log, but still holds:
	 * restored under its own latch, released on its own */
	cr_assert_eq(bk_check(&c, -1), BK_HALTED);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "resume", "--reason-code",
	                      "emergency_stop", "--to", "active", "--force", "--reason",
	                      "stop examined", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_check(&c, -1), BK_ACTIVE);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(daemon, a_trip_engines_saw_survives_a_lost_record)
{
	struct bk_h h;
	struct bk_client c;
	char name[128];
	struct bk_shm *rw;
	int fd;

	up(&h, "seen", NULL);
	bk_h_attach(&h, &c);
	int a = slot_of(&c, "alpha");
	cr_assert_eq(bk_h_stop(&h), 0);
	/* as if the daemon flipped alpha and died before its record was durable */
	bk_shm_name(name, sizeof(name), h.instance);
	fd = shm_open(name, O_RDWR, 0);
	cr_assert_geq(fd, 0);
	rw = mmap(NULL, BK_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(rw, MAP_FAILED);
	atomic_store(&rw->strategies[a].state,
	             BK_STATE_PACK(BK_HALTED, BK_R_KILL_SWITCH, 0));
	munmap(rw, BK_SHM_SIZE);
	bk_h_start(&h);
	cr_assert_eq(bk_check(&c, a), BK_HALTED,
	             "never less restrictive than engines saw");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", NULL), 0);
	cr_assert(strstr(out, "restored at boot"), "and it is audited: %s", out);
	bk_client_detach(&c);
	bk_h_fini(&h);
}
