/*
 * Audit tail integrity, against a real breakerd and the real CLI: what
 * someone with the daemon's uid can do to the log's end (cut it at a record
 * boundary, flip a byte, zero records, roll it back to an earlier copy, unlink
 * or replace it under a running daemon) is caught by the durable head (head
 * file beside the log, segment header), and records after a damaged one are
 * still shown, marked unverified.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bk_audit.h"
#include "bk_harness.h"
#include "bk_mode.h"
#include "bk_shm.h"

#define STRATS "[strategies]\nnames = alpha, beta, gamma\n"

static char out[65536];

static void up(struct bk_h *h, const char *tag)
{
	bk_h_init(h, tag, STRATS);
	bk_h_start(h);
}

/* Each test process its own /healthz port (test_ops uses 20000-39999). */
static int port(void)
{
	return 40000 + (int)(getpid() % 20000);
}

static void up_metrics(struct bk_h *h, const char *tag)
{
	char ini[256];

	snprintf(ini, sizeof(ini), "%s[metrics]\nlisten = 127.0.0.1:%d\n", STRATS,
	         port());
	bk_h_init(h, tag, ini);
	bk_h_start(h);
}

/* /healthz's status once it is want (rendered every 100 ms; up to 5 s). */
static int healthz_until(int want, const char **body)
{
	static char buf[8192];
	int st = -1;

	for (int i = 0; i < 500; i++) {
		if ((st = bk_h_http_get(port(), "/healthz", buf, sizeof(buf), body)) ==
		    want)
			break;
		usleep(10000);
	}
	return st;
}

struct offs {
	uint64_t off[4096];
	uint64_t n;
};

static int note_off(const Breaker__AuditRecord *rec, uint64_t off, void *arg)
{
	struct offs *o = arg;

	(void)rec;
	if (o->n < 4096)
		o->off[o->n++] = off;
	return 0;
}

/* Frame offsets of the (verifying) log; fails the test if it does not verify. */
static void offsets(const char *path, struct offs *o, uint64_t *len)
{
	struct bk_audit_scan sc;

	o->n = 0;
	cr_assert_eq(bk_audit_scan(path, note_off, o, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_gt(o->n, 1);
	*len =
	    sc.data_len; /* the records' end: the zeros preallocated after them are not */
}

static uint64_t size_of(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return (uint64_t)st.st_size;
}

static void copy_file(const char *from, const char *to)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "cp %s %s", from, to);
	cr_assert_eq(system(cmd), 0);
}

/* How many files match pattern; the first one's name in first (may be NULL). */
static size_t matches(const char *pattern, char *first, size_t len)
{
	glob_t g;
	size_t n;

	if (glob(pattern, 0, NULL, &g) != 0)
		return 0;
	n = g.gl_pathc;
	if (first && n)
		snprintf(first, len, "%s", g.gl_pathv[0]);
	globfree(&g);
	return n;
}

/* Booted fail-closed: global HALTED under audit_corrupt, and the reason says so. */
static void expect_corrupt_boot(struct bk_h *h, struct bk_client *c, const char *why)
{
	struct bk_reason r;

	cr_assert_eq(bk_check(c, -1), BK_HALTED, "global must be HALTED");
	bk_read_reason(c, -1, &r);
	cr_assert_eq(r.reason_code, (unsigned)BK_R_AUDIT_CORRUPT);
	bk_h_slurp(h->log, out, sizeof(out));
	cr_assert(strstr(out, "FAIL-CLOSED BOOT"), "%s", out);
	if (why)
		cr_assert(strstr(out, why), "boot log names '%s': %s", why, out);
}

/* The log, at rest, fails --verify; breakerd then boots fail-closed saying why. */
static void verify_fails_then_boot_is_halted(struct bk_h *h, const char *why)
{
	struct bk_client c;

	cr_assert_eq(bk_h_cli_all(h, out, sizeof(out), "audit", "--verify", NULL), 4,
	             "%s", out);
	bk_h_start(h);
	bk_h_attach(h, &c);
	expect_corrupt_boot(h, &c, why);
	bk_client_detach(&c);
}

/* ---- truncation at a record boundary --------------------------------------------- */

Test(tail, truncation_at_a_record_boundary_is_corruption)
{
	struct bk_h h;
	struct bk_client c;
	struct offs o;
	uint64_t len;
	char aside[512], pat[300];

	up(&h, "cut");
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "emergency-stop", "--reason", "fire", NULL),
	             0);
	cr_assert_eq(bk_h_stop(&h), 0);
	offsets(h.cfg.audit_path, &o, &len);
	/* the emergency stop and the clean stop's STOP record after it go,
	 * exactly at the emergency stop's frame start */
	cr_assert_eq(truncate(h.cfg.audit_path, (off_t)o.off[o.n - 2]), 0);
	cr_assert_eq(bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", NULL), 4,
	             "a log shorter than its durable head must fail --verify: %s", out);
	cr_assert(strstr(out, "head"), "says why: %s", out);
	cr_assert_eq(bk_h_cli_all(&h, out, sizeof(out), "incident", "export", "--since",
	                          "1d", NULL),
	             4, "the export says the log did not verify: %s", out);
	cr_assert(strstr(out, "did NOT verify"), "%s", out);
	bk_h_start(&h);
	expect_corrupt_boot(&h, &c, "head");
	snprintf(pat, sizeof(pat), "%s.corrupt.*", h.cfg.audit_path);
	cr_assert_eq(matches(pat, aside, sizeof(aside)), 1,
	             "the short log is kept aside");
	bk_client_detach(&c);
	bk_h_fini(&h);
}

/* After a reboot the segment is gone: the head file alone must catch it. */
Test(tail, truncation_after_reboot_is_caught_by_the_head_file)
{
	struct bk_h h;
	struct offs o;
	uint64_t len;

	up(&h, "cutboot");
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "alpha", "--reason", "x", NULL), 0);
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_shm_unlink(h.instance);
	offsets(h.cfg.audit_path, &o, &len);
	cr_assert_eq(truncate(h.cfg.audit_path, (off_t)o.off[o.n - 1]), 0);
	verify_fails_then_boot_is_halted(&h, "head");
	bk_h_fini(&h);
}

/* ---- a flipped byte / zeroed records at the tail ------------------------------- */

Test(tail, flipped_byte_in_the_last_record_is_corruption_and_kept)
{
	struct bk_h h;
	struct bk_client c;
	struct offs o;
	uint64_t len;
	char aside[512], pat[300];
	int fd;
	uint8_t b;

	up(&h, "flip");
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "beta", "--reason", "x", NULL), 0);
	cr_assert_eq(bk_h_stop(&h), 0);
	offsets(h.cfg.audit_path, &o, &len);
	len = size_of(h.cfg.audit_path);
	fd = open(h.cfg.audit_path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &b, 1, (off_t)o.off[o.n - 1] + 12), 1);
	b ^= 0x20;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)o.off[o.n - 1] + 12), 1);
	close(fd);
	cr_assert_eq(bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", NULL), 4);
	cr_assert(strstr(out, "CORRUPT"), "not a torn tail: %s", out);
	bk_h_start(&h);
	expect_corrupt_boot(&h, &c, NULL);
	snprintf(pat, sizeof(pat), "%s.corrupt.*", h.cfg.audit_path);
	cr_assert_eq(matches(pat, aside, sizeof(aside)), 1);
	cr_assert_eq(size_of(aside), len, "every byte is kept aside");
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(tail, zeroed_records_at_the_tail_are_corruption)
{
	static uint8_t zeros[8192];
	struct bk_h h;
	struct bk_client c;
	struct offs o;
	uint64_t len;
	char aside[512], pat[300];
	int fd;

	up(&h, "zero");
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "beta", "--reason", "x", NULL), 0);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "gamma", "--reason", "y", NULL), 0);
	cr_assert_eq(bk_h_stop(&h), 0);
	offsets(h.cfg.audit_path, &o, &len);
	fd = open(h.cfg.audit_path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_leq(len - o.off[o.n - 2], sizeof(zeros));
	cr_assert_eq(pwrite(fd, zeros, len - o.off[o.n - 2], (off_t)o.off[o.n - 2]),
	             (ssize_t)(len - o.off[o.n - 2]));
	close(fd);
	len = size_of(h.cfg.audit_path); /* the whole file is kept */
	cr_assert_eq(bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", NULL), 4);
	cr_assert(strstr(out, "CORRUPT"), "not a torn tail: %s", out);
	bk_h_start(&h);
	expect_corrupt_boot(&h, &c, NULL);
	snprintf(pat, sizeof(pat), "%s.corrupt.*", h.cfg.audit_path);
	cr_assert_eq(matches(pat, aside, sizeof(aside)), 1);
	cr_assert_eq(size_of(aside), len);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

/* ---- rollback to an earlier copy --------------------------------------------------- */

Test(tail, rollback_to_an_earlier_copy_is_corruption)
{
	struct bk_h h;
	char copy[300];

	up(&h, "rollback");
	snprintf(copy, sizeof(copy), "%s/early.log", h.dir);
	copy_file(h.cfg.audit_path, copy);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "emergency-stop", "--reason", "fire", NULL),
	             0);
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_shm_unlink(h.instance); /* a reboot: only the head file remembers */
	copy_file(copy, h.cfg.audit_path);
	verify_fails_then_boot_is_halted(&h, "head");
	bk_h_fini(&h);
}

/* ---- a torn tail is still repaired, and the cut bytes are kept ------------------------
 */

Test(tail, torn_tail_is_cut_kept_aside_and_logged_with_its_own_seq)
{
	struct offs o;
	uint64_t len;
	struct bk_h h;
	struct bk_client c;
	char pat[300], aside[512];
	int fd;

	up(&h, "torn");
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "alpha", "--reason", "x", NULL), 0);
	cr_assert_eq(bk_h_stop(&h), 0);
	/* a write cut short past the preallocated zeros (an append): the file
	 * ends at the last record, then the cut frame */
	offsets(h.cfg.audit_path, &o, &len);
	cr_assert_eq(truncate(h.cfg.audit_path, (off_t)len), 0);
	fd = open(h.cfg.audit_path, O_WRONLY | O_APPEND);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "\xc8\x00\x00\x00\x01\x02\x03\x04hello", 13), 13);
	close(fd);
	bk_h_start(&h);
	bk_h_slurp(h.log, out, sizeof(out));
	cr_assert_eq(bk_check(&c, -1), BK_ACTIVE, "a torn tail is not corruption: %s",
	             out);
	cr_assert_eq(bk_check(&c, bk_client_resolve(&c, "alpha")), BK_HALTED);
	snprintf(pat, sizeof(pat), "%s.torn.*", h.cfg.audit_path);
	cr_assert_eq(matches(pat, aside, sizeof(aside)), 1, "the cut bytes are kept");
	cr_assert_eq(size_of(aside), 13);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", NULL), 0);
	cr_assert_eq(bk_h_count(out, " LOG_REPAIR "), 1, "%s", out);
	cr_assert_eq(bk_h_count(out, " BOOT "), 2, "the repair is its own record: %s",
	             out);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", "--verify", NULL), 0, "%s",
	             out);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

/* ---- preallocation: zeros written ahead of the records ------------------------------
 */

/* Acked records overwrite zeros written ahead (no size change for fdatasync to
 * journal); the zeros are no torn record at the next boot. */
Test(tail, prezeroed_log_keeps_its_size_and_boots_clean)
{
	struct bk_h h;
	struct bk_client c;
	struct offs o;
	uint64_t size, len;
	char pat[300], aside[512];

	up(&h, "prezero");
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "alpha", "--reason", "x", NULL), 0);
	size = size_of(h.cfg.audit_path);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "beta", "--reason", "y", NULL), 0);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "gamma", "--reason", "z", NULL), 0);
	cr_assert_eq(size_of(h.cfg.audit_path), size,
	             "acked records went into the zeros");
	cr_assert_eq(bk_h_stop(&h), 0);
	offsets(h.cfg.audit_path, &o, &len);
	cr_assert_gt(size_of(h.cfg.audit_path), len, "zeros after the records");
	cr_assert_eq(bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", NULL), 0,
	             "%s", out);
	bk_h_start(&h);
	cr_assert_eq(bk_check(&c, -1), BK_ACTIVE, "no corruption");
	cr_assert_eq(bk_check(&c, bk_client_resolve(&c, "alpha")), BK_HALTED);
	snprintf(pat, sizeof(pat), "%s.torn.*", h.cfg.audit_path);
	cr_assert_eq(matches(pat, aside, sizeof(aside)), 0, "nothing cut");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", NULL), 0);
	cr_assert_eq(bk_h_count(out, " LOG_REPAIR "), 0, "%s", out);
	cr_assert_eq(bk_h_count(out, " BOOT "), 2, "%s", out);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

/* ---- the log unlinked or replaced under a running daemon ------------------------------
 */

static void expect_lost_then_relinked(struct bk_h *h, struct bk_client *c)
{
	const char *body = "";

	cr_assert_eq(
	    bk_h_cli_all(h, out, sizeof(out), "kill", "alpha", "--reason", "x", NULL), 5,
	    "a trip into a lost log is not durable: %s", out);
	cr_assert_eq(bk_check(c, bk_client_resolve(c, "alpha")), BK_HALTED,
	             "but the halt is in effect");
	cr_assert_eq(bk_h_cli_all(h, out, sizeof(out), "health", NULL), 1, "%s", out);
	cr_assert(strncmp(out, "failing", 7) == 0, "%s", out);
	cr_assert(strstr(out, "audit log"), "%s", out);
	cr_assert_eq(healthz_until(503, &body), 503, "/healthz fails too");
	cr_assert(strstr(body, "failing") && strstr(body, "audit log"), "%s", body);
	cr_assert_eq(bk_h_cli(h, out, sizeof(out), "status", NULL), 0);
	cr_assert(strstr(out, "AUDIT LOG LOST"), "status says so: %s", out);
	/* resumes wait for a log: refused, not durable */
	cr_assert_eq(bk_h_cli_all(h, out, sizeof(out), "resume", "--strategy", "alpha",
	                          "--reason-code", "kill_switch", "--to", "active",
	                          "--force", "--reason", "r", NULL),
	             1, "%s", out);
	cr_assert(strstr(out, "ERR_NOT_DURABLE"), "%s", out);
	cr_assert_eq(bk_check(c, bk_client_resolve(c, "alpha")), BK_HALTED);
	/* the operator puts a new log in place: SIGHUP */
	cr_assert_eq(kill(h->pid, SIGHUP), 0);
	for (int i = 0; i < 500; i++) {
		if (bk_h_cli(h, NULL, 0, "health", NULL) == 0)
			break;
		usleep(10000);
	}
	cr_assert_eq(bk_h_cli_all(h, out, sizeof(out), "health", NULL), 0, "%s", out);
	cr_assert_eq(healthz_until(200, &body), 200, "%s", body);
	cr_assert_eq(bk_h_cli(h, out, sizeof(out), "kill", "beta", "--reason", "y", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_h_cli(h, out, sizeof(out), "audit", NULL), 0);
	cr_assert_eq(bk_h_count(out, " LOG_RELINKED "), 1, "%s", out);
	cr_assert(strstr(out, "strategy:alpha"), "the unacknowledged trip is kept: %s",
	          out);
	cr_assert_eq(bk_h_cli(h, out, sizeof(out), "audit", "--verify", NULL), 0, "%s",
	             out);
	/* and the new log carries the state across a restart */
	cr_assert_eq(bk_h_stop(h), 0);
	bk_h_start(h);
	cr_assert_eq(bk_check(c, -1), BK_ACTIVE, "%s", out);
	cr_assert_eq(bk_check(c, bk_client_resolve(c, "alpha")), BK_HALTED);
	cr_assert_eq(bk_check(c, bk_client_resolve(c, "beta")), BK_HALTED);
}

Test(tail, unlinked_log_fails_health_and_trips_are_not_durable)
{
	struct bk_h h;
	struct bk_client c;

	up_metrics(&h, "unlink");
	bk_h_attach(&h, &c);
	cr_assert_eq(unlink(h.cfg.audit_path), 0);
	expect_lost_then_relinked(&h, &c);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(tail, replaced_log_fails_health_and_is_kept_aside)
{
	struct bk_h h;
	struct bk_client c;
	char copy[300], pat[300];

	up_metrics(&h, "replace");
	bk_h_attach(&h, &c);
	snprintf(copy, sizeof(copy), "%s/other.log", h.dir);
	copy_file(h.cfg.audit_path, copy);
	cr_assert_eq(rename(copy, h.cfg.audit_path), 0);
	expect_lost_then_relinked(&h, &c);
	snprintf(pat, sizeof(pat), "%s.replaced.*", h.cfg.audit_path);
	cr_assert_eq(matches(pat, NULL, 0), 1, "what was put in its place is kept");
	bk_client_detach(&c);
	bk_h_fini(&h);
}

/* Detected without a flush too: the periodic check (about once a second). */
Test(tail, unlinked_log_is_noticed_while_idle)
{
	struct bk_h h;
	int rv = 0;

	up(&h, "idle");
	cr_assert_eq(unlink(h.cfg.audit_path), 0);
	for (int i = 0; i < 1000 && (rv = bk_h_cli(&h, NULL, 0, "health", NULL)) == 0;
	     i++)
		usleep(10000);
	cr_assert_eq(rv, 1, "health must fail within 10 s");
	bk_h_fini(&h);
}

/* ---- records after a damaged one are shown, unverified -------------
 */

Test(tail, records_after_damage_are_shown_marked_unverified)
{
	struct bk_h h;
	struct offs o;
	uint64_t len;
	int fd;
	uint8_t b;

	up(&h, "resync");
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "alpha", "--reason", "first", NULL),
	             0);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "beta", "--reason", "second", NULL),
	             0);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "gamma", "--reason", "third", NULL),
	             0);
	cr_assert_eq(bk_h_stop(&h), 0);
	offsets(h.cfg.audit_path, &o, &len);
	/* damage the 'second' trip (third from the end: the clean stop's STOP
	 * record is last) */
	fd = open(h.cfg.audit_path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &b, 1, (off_t)o.off[o.n - 3] + 10), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)o.off[o.n - 3] + 10), 1);
	close(fd);
	cr_assert_eq(bk_h_cli_all(&h, out, sizeof(out), "audit", NULL), 4, "%s", out);
	cr_assert(strstr(out, "\"first\""), "%s", out);
	cr_assert(strstr(out, "\"third\""), "the record after the damage is shown: %s",
	          out);
	cr_assert(strstr(out, "UNVERIFIED"), "and marked: %s", out);
	cr_assert_eq(bk_h_cli_all(&h, out, sizeof(out), "audit", "--json", NULL), 4);
	cr_assert(strstr(out, "\"unverified\":true"), "%s", out);
	cr_assert(strstr(out, "third"), "%s", out);
	cr_assert_eq(bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", NULL), 4,
	             "--verify still fails: %s", out);
	cr_assert_neq(bk_h_cli_all(&h, out, sizeof(out), "incident", "export", "--since",
	                           "1d", NULL),
	              0);
	cr_assert(strstr(out, "third"), "incident export shows it too: %s", out);
	cr_assert(strstr(out, "UNVERIFIED"), "%s", out);
	bk_h_fini(&h);
}

/* ---- the head may lag: a crash between the log's fsync and the head's write ----------
 */

Test(tail, stale_head_file_after_a_crash_is_not_tampering)
{
	struct bk_h h;
	struct bk_client c;
	char head[300], copy[300];

	up(&h, "lag");
	snprintf(head, sizeof(head), "%s.head", h.cfg.audit_path);
	snprintf(copy, sizeof(copy), "%s/head.copy", h.dir);
	copy_file(head, copy);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "alpha", "--reason", "x", NULL), 0);
	bk_h_kill9(&h);
	/* as if the crash came before the head file caught up, after a reboot */
	copy_file(copy, head);
	bk_shm_unlink(h.instance);
	bk_h_start(&h);
	bk_h_attach(&h, &c);
	bk_h_slurp(h.log, out, sizeof(out));
	cr_assert_null(strstr(out, "FAIL-CLOSED"), "%s", out);
	cr_assert_eq(bk_check(&c, -1), BK_ACTIVE);
	cr_assert_eq(bk_check(&c, bk_client_resolve(&c, "alpha")), BK_HALTED);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", "--verify", NULL), 0, "%s",
	             out);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

/* A head file someone deleted (with the log cut) is itself evidence. */
Test(tail, deleted_head_file_is_corruption)
{
	struct bk_h h;
	char head[300];

	up(&h, "nohead");
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "alpha", "--reason", "x", NULL), 0);
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_shm_unlink(h.instance);
	snprintf(head, sizeof(head), "%s.head", h.cfg.audit_path);
	cr_assert_eq(unlink(head), 0);
	verify_fails_then_boot_is_halted(&h, "head file");
	bk_h_fini(&h);
}

/* A head file removed under a running daemon is written anew (about 1 s). */
Test(tail, head_file_removed_while_running_is_written_anew)
{
	struct bk_h h;
	struct bk_client c;
	char head[300];
	struct stat st;
	int i;

	up(&h, "headgone");
	snprintf(head, sizeof(head), "%s.head", h.cfg.audit_path);
	cr_assert_eq(unlink(head), 0);
	for (i = 0; i < 1000 && stat(head, &st) != 0; i++)
		usleep(10000);
	cr_assert_eq(stat(head, &st), 0, "written anew within 10 s");
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "kill", "alpha", "--reason", "x", NULL), 0);
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_shm_unlink(h.instance);
	bk_h_start(&h);
	bk_h_attach(&h, &c);
	bk_h_slurp(h.log, out, sizeof(out));
	cr_assert_null(strstr(out, "FAIL-CLOSED"), "%s", out);
	cr_assert(strstr(out, "written anew"), "and said so: %s", out);
	cr_assert_eq(bk_check(&c, -1), BK_ACTIVE);
	cr_assert_eq(bk_check(&c, bk_client_resolve(&c, "alpha")), BK_HALTED);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

/*
 * ---- the head file follows a burst once the log is quiet -------------------
 *
 * The head file is written when the log has been quiet for a moment or is
 * 20 ms behind, not after every flush (bk_loop.c): commands back to back
 * leave it behind for a while, and it must still catch up with the last one
 * while breakerd runs on, so that a crash after the burst loses no head.
 */
static int fast_cmd(struct bk_rpc *r, const char *strategy, uint64_t id, bool trip,
                    uint64_t *seq)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;
	Breaker__Resume s = BREAKER__RESUME__INIT;
	Breaker__Reply *rep = NULL;
	int rv;

	req.has_request_id = 1;
	req.request_id = id;
	if (trip) {
		req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
		req.trip = &t;
		t.strategy = (char *)strategy;
		t.has_reason_code = 1;
		t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
		t.reason = "burst";
	} else {
		req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
		req.resume = &s;
		s.strategy = (char *)strategy;
		s.has_to = s.has_force = 1;
		s.to = BREAKER__MODE__MODE_ACTIVE;
		s.force = 1;
		s.reason = "burst";
	}
	if ((rv = bk_rpc_call(r, &req, &rep)) != 0)
		return rv;
	rv = rep->status == BREAKER__STATUS__OK && rep->has_audit_seq ? 0 : -EPROTO;
	*seq = rep->audit_seq;
	breaker__reply__free_unpacked(rep, NULL);
	return rv;
}

Test(tail, head_file_catches_up_with_a_burst_while_running)
{
	struct bk_audit_head head = {.seq = 0};
	struct bk_rpc r;
	struct bk_h h;
	char path[300];
	uint64_t seq = 0;
	int i;

	up(&h, "burst");
	snprintf(path, sizeof(path), "%s.head", h.cfg.audit_path);
	cr_assert_eq(bk_rpc_open(&r, h.cfg.local_url, 5000), 0);
	for (i = 0; i < 20; i++)
		cr_assert_eq(fast_cmd(&r, "alpha", 9000 + (uint64_t)i, i % 2 == 0, &seq),
		             0, "command %d acknowledged with its audit seq", i);
	bk_rpc_close(&r);
	for (i = 0; i < 1000; i++) {
		if (bk_audit_head_read(path, &head) == 0 && head.seq >= seq)
			break;
		usleep(10000);
	}
	cr_assert_geq(head.seq, seq,
	              "the head file holds the last acknowledged record (%llu) "
	              "within 10 s, breakerd still running: it holds %llu",
	              (unsigned long long)seq, (unsigned long long)head.seq);
	bk_h_fini(&h);
}
