/*
 * Faults an operator meets in production, with a real breakerd, the real CLI
 * and the real client header:
 *
 *  - the audit log's disk fills up (ENOSPC on a small tmpfs in a private
 *    mount namespace) or the file hits its size limit (RLIMIT_FSIZE set on
 *    the daemon with prlimit): a trip still takes effect and says it is not
 *    durable, a resume is refused, the daemon keeps serving; once there is
 *    room again the record reaches the disk and a resume goes through;
 *  - the daemon dies (SIGKILL): engines fail closed within two heartbeat
 *    bounds, and a restarted daemon takes over the same segment under the
 *    engines' existing mappings (test_daemon.c covers the plain restart).
 *
 * Waits are bounded with generous deadlines that only matter when something
 * is broken; nothing here measures how fast a loaded machine is.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bk_audit.h"
#include "bk_harness.h"
#include "bk_mode.h"

#define MS       (1000ull * 1000)
#define DEADLINE (20000 * MS) /* only reached when something is broken */

extern char **environ;

static char out[1 << 16];

static int port(void)
{
	/* below the ephemeral ports, clear of test_ops.c's 20000-39999 */
	return 10000 + (int)(getpid() % 10000);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* The CLI, stdout and stderr both into out: an operator sees both, and the
 * not-durable warning goes to stderr. */
#define cli(h, ...) bk_h_cli_all(h, out, sizeof(out), __VA_ARGS__)

/* Scrape /metrics until it holds needle (a rendering is made every 100 ms). */
static void metrics_until(const char *needle)
{
	static char buf[1 << 18];
	const char *body = buf;
	uint64_t end = bk_now_mono_ns() + DEADLINE;

	do {
		if (bk_h_http_get(port(), "/metrics", buf, sizeof(buf), &body) == 200 &&
		    strstr(body, needle))
			return;
		sleep_ms(20);
	} while (bk_now_mono_ns() < end);
	cr_assert_fail("/metrics never showed '%s':\n%.3000s", needle, body);
}

/* ---- the audit log stops taking writes ---------------------------------------- */

struct fault {
	const char *name;
	char mnt[192];     /* tmpfs: the state dir it is mounted on */
	char filler[256];  /* tmpfs: the file that takes the free space */
	struct rlimit old; /* prlimit: the daemon's limit before */
};

#define DRILL "disk full drill"

struct find {
	const char *reason;
	bool found;
};

static int find_reason(const Breaker__AuditRecord *rec, uint64_t off, void *arg)
{
	struct find *f = arg;

	(void)off;
	if (rec->reason && strcmp(rec->reason, f->reason) == 0)
		f->found = true;
	return 0;
}

/* The log verifies and holds a record with this reason. */
static bool in_log(struct bk_h *h, const char *reason)
{
	struct bk_audit_scan scan;
	struct find f = {.reason = reason};

	/* a flush may be half written while we read: that is a torn tail */
	return bk_audit_scan(h->cfg.audit_path, find_reason, &f, &scan) == 0 &&
	       scan.verdict == BK_AUDIT_OK && f.found;
}

/* Until in_log(); false at the deadline. */
static bool wait_durable(struct bk_h *h, const char *reason)
{
	uint64_t end = bk_now_mono_ns() + DEADLINE;

	do {
		if (in_log(h, reason))
			return true;
		sleep_ms(10);
	} while (bk_now_mono_ns() < end);
	return false;
}

/* breakerd did not die of the failing writes (SIGXFSZ kills by default). */
static void alive(struct bk_h *h, const struct fault *f)
{
	int st;

	if (waitpid(h->pid, &st, WNOHANG) != h->pid)
		return;
	h->pid = 0;
	cr_assert_fail("%s: breakerd died (%s %d); see %s", f->name,
	               WIFSIGNALED(st) ? "signal" : "exit",
	               WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), h->log);
}

/*
 * The scenario, whatever makes the writes fail. fail() is called with the
 * daemon up and idle; heal() gives the room back.
 */
static void audit_log_failure(struct bk_h *h, struct fault *f,
                              void (*fail)(struct bk_h *, struct fault *),
                              void (*heal)(struct bk_h *, struct fault *))
{
	static char pad[901];
	struct bk_client c;
	struct bk_reason r;
	int rv = 0, i;

	bk_h_start(h);
	bk_h_attach(h, &c);
	fail(h, f);
	/*
	 * A filesystem gives out whole pages: the log's last page still takes a
	 * few KiB after the disk is full. Strategy trips with long reasons use it
	 * up; the one that does not fit is the first not durable (four fit at most).
	 */
	memset(pad, 'p', sizeof(pad) - 1);
	for (i = 0; i < 8 && (rv = cli(h, "kill", "pad", "--reason", pad, NULL)) == 0;
	     i++)
		;
	cr_assert_eq(rv, 5, "%s: a trip that cannot be written is not durable: %s",
	             f->name, out);
	alive(h, f);

	/* The operator halts everything: in effect at once, and said not durable. */
	cr_assert_eq(cli(h, "trip", "manual_halt", "--reason", DRILL, NULL), 5,
	             "%s: exit 5 (not durable): %s", f->name, out);
	cr_assert(strstr(out, "TRIP IN EFFECT") && strstr(out, "IS NOT ON DISK YET"),
	          "%s", out);
	cr_assert_eq(bk_check(&c, -1), BK_HALTED, "the halt is in effect for engines");
	cr_assert_eq(bk_check(&c, bk_client_resolve(&c, "alpha")), BK_HALTED);
	bk_read_reason(&c, -1, &r);
	cr_assert_eq(r.reason_code, (unsigned)BK_R_MANUAL_HALT);

	/* No record, no resume: refused, and the halt stays. */
	cr_assert_eq(
	    cli(h, "resume", "--to", "reduce-only", "--reason", "too early", NULL), 1,
	    "%s", out);
	cr_assert(strstr(out, "ERR_NOT_DURABLE") && strstr(out, "audit log is failing"),
	          "%s", out);
	cr_assert_eq(bk_check(&c, -1), BK_HALTED);

	/* The daemon lives on, serves status, and says what is wrong. */
	alive(h, f);
	cr_assert_eq(cli(h, "status", NULL), 0, "%s", out);
	cr_assert(strstr(out, "HALTED"), "%s", out);
	metrics_until("breaker_audit_write_failing 1\n");
	rv = cli(h, "health", NULL);
	cr_assert(rv == 0 || rv == 1, "degraded, or failing once stalled: %d %s", rv,
	          out);
	cr_assert(strstr(out, "audit log write failing"), "%s", out);
	cr_assert(!in_log(h, DRILL), "not on disk while the disk is full");

	/* Room again: the retries put the records on disk, in order, chained. */
	heal(h, f);
	cr_assert(wait_durable(h, DRILL), "%s: the trip's record never became durable",
	          f->name);
	cr_assert_eq(cli(h, "audit", "--verify", NULL), 0, "%s", out);
	cr_assert(strstr(out, "audit log OK"), "%s", out);
	cr_assert_eq(cli(h, "audit", NULL), 0, "%s", out);
	cr_assert(strstr(out, DRILL) && strstr(out, "manual_halt"),
	          "the trip is in the timeline: %s", out);
	metrics_until("breaker_audit_write_failing 0\n");
	cr_assert_eq(
	    cli(h, "resume", "--to", "reduce-only", "--reason", "disk freed", NULL), 0,
	    "%s", out);
	cr_assert_eq(bk_check(&c, -1), BK_REDUCE_ONLY);
	cr_assert_eq(cli(h, "audit", "--verify", NULL), 0, "%s", out);
	bk_client_detach(&c);
}

#define FAULT_INI "[strategies]\nnames = alpha, pad\n[metrics]\nlisten = 127.0.0.1:%d\n"

/* ENOSPC: a 256 KiB tmpfs under the state dir, filled up. */
static void fill_tmpfs(struct bk_h *h, struct fault *f)
{
	static const char chunk[4096];
	int fd;

	snprintf(f->filler, sizeof(f->filler), "%s/filler", f->mnt);
	fd = open(f->filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", f->filler, strerror(errno));
	for (int i = 0; i < 1024; i++)
		if (write(fd, chunk, sizeof(chunk)) < 0)
			break;
	cr_assert_eq(errno, ENOSPC, "the tmpfs fills up: %s", strerror(errno));
	close(fd);
	(void)h;
}

static void free_tmpfs(struct bk_h *h, struct fault *f)
{
	(void)h;
	cr_assert_eq(unlink(f->filler), 0);
}

Test(faults, disk_full_trip_holds_resume_waits_for_the_disk)
{
	struct fault f = {.name = "tmpfs full (ENOSPC)"};
	char ini[256];
	struct bk_h h;

	snprintf(ini, sizeof(ini), FAULT_INI, port());
	/*
	 * A private mount namespace for this test process (and the daemon and
	 * CLIs it starts): the tmpfs disappears with them, even after a crash.
	 */
	if (unshare(CLONE_NEWNS) < 0)
		cr_skip("disk full: no mount namespace here (%s; needs root or "
		        "CAP_SYS_ADMIN); the RLIMIT_FSIZE test covers the write error",
		        strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s",
	             strerror(errno));
	bk_h_init(&h, "full", ini);
	snprintf(f.mnt, sizeof(f.mnt), "%s/state", h.dir);
	cr_assert_eq(mkdir(f.mnt, 0750), 0);
	if (mount("bk-full", f.mnt, "tmpfs", MS_NOSUID | MS_NODEV,
	          "size=256k,mode=0750") < 0) {
		int err = errno;
		bk_h_fini(&h);
		cr_skip("disk full: cannot mount a tmpfs (%s)", strerror(err));
	}
	audit_log_failure(&h, &f, fill_tmpfs, free_tmpfs);
	bk_h_stop(&h);
	umount2(f.mnt, MNT_DETACH);
	bk_h_fini(&h);
}

/*
 * EFBIG: the daemon's RLIMIT_FSIZE lowered to the log's size. The limit is
 * per process: breakerd's own --log-file is past it too, so its error line is
 * lost meanwhile; /metrics, /healthz and the CLI's replies still tell.
 */
static void limit_fsize(struct bk_h *h, struct fault *f)
{
	struct rlimit lim;
	struct stat st;

	struct bk_audit_scan sc;

	/* the zeros breakerd keeps ahead of the records (docs/audit-log.md) would
	 * take the next records within the limit: give them back first (the
	 * daemon is idle; its next records then grow the file) */
	cr_assert_eq(bk_audit_scan(h->cfg.audit_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(truncate(h->cfg.audit_path, (off_t)sc.data_len), 0);
	cr_assert_eq(stat(h->cfg.audit_path, &st), 0);
	cr_assert_eq(prlimit(h->pid, RLIMIT_FSIZE, NULL, &f->old), 0);
	lim.rlim_cur = (rlim_t)st.st_size;
	lim.rlim_max = f->old.rlim_max;
	cr_assert_eq(prlimit(h->pid, RLIMIT_FSIZE, &lim, NULL), 0, "%s", strerror(errno));
}

static void unlimit_fsize(struct bk_h *h, struct fault *f)
{
	cr_assert_eq(prlimit(h->pid, RLIMIT_FSIZE, &f->old, NULL), 0, "%s",
	             strerror(errno));
}

Test(faults, file_size_limit_trip_holds_and_breakerd_survives_sigxfsz)
{
	struct fault f = {.name = "RLIMIT_FSIZE (EFBIG, SIGXFSZ)"};
	struct rlimit probe;
	char ini[256];
	struct bk_h h;

	if (prlimit(getpid(), RLIMIT_FSIZE, NULL, &probe) < 0)
		cr_skip("file size limit: prlimit(2) unavailable: %s", strerror(errno));
	snprintf(ini, sizeof(ini), FAULT_INI, port());
	bk_h_init(&h, "fsize", ini);
	audit_log_failure(&h, &f, limit_fsize, unlimit_fsize);
	bk_h_fini(&h);
}

/* ---- the daemon dies ------------------------------------------------------------ */

struct waiter {
	struct bk_client *c;
	uint32_t seen;
	int rv;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct timespec ts = {.tv_sec = 30};

	w->rv = bk_wait_change(w->c, w->seen, &ts);
	return NULL;
}

/* Until bk_check_live answers want (the daemon's own bound); false at the deadline. */
static bool live_until(struct bk_client *c, int slot, enum bk_mode want)
{
	uint64_t end = bk_now_mono_ns() + DEADLINE;

	do {
		if (bk_check_live(c, slot, bk_now_mono_ns(), 0) == want)
			return true;
		sleep_ms(1);
	} while (bk_now_mono_ns() < end);
	return false;
}

Test(faults, dead_daemon_halts_engines_within_two_bounds_restart_takes_over)
{
	const uint64_t bound = 20 * MS;
	struct bk_client c;
	struct waiter w;
	struct bk_h h;
	pthread_t t;
	uint64_t t_kill, now;
	int a, b;

	bk_h_init(&h, "death",
	          "heartbeat_bound_ms = 20\n[strategies]\nnames = alpha, beta\n");
	bk_h_start(&h);
	bk_h_attach(&h, &c);
	cr_assert_eq(c.shm->hdr.heartbeat_bound_ns, bound,
	             "engines get the configured bound from the segment");
	a = bk_client_resolve(&c, "alpha");
	b = bk_client_resolve(&c, "beta");
	cr_assert(a >= 0 && b >= 0);
	cr_assert_eq(cli(&h, "kill", "alpha", "--reason", "before the crash", NULL), 0,
	             "%s", out);

	/* Alive: the engine trades beta (a loaded machine may stall a beat). */
	cr_assert(live_until(&c, b, BK_ACTIVE), "beta never live and ACTIVE");
	cr_assert_eq(bk_check_live(&c, a, bk_now_mono_ns(), 0), BK_HALTED);
	t_kill = bk_now_mono_ns();
	cr_assert_eq(kill(h.pid, SIGKILL), 0);
	cr_assert_eq(waitpid(h.pid, NULL, 0), h.pid);
	h.pid = 0;
	/*
	 * The last heartbeat is older than the kill, so two bounds after it the
	 * heartbeat is more than one bound old: the first poll must say HALTED.
	 */
	while ((now = bk_now_mono_ns()) < t_kill + 2 * bound)
		sleep_ms(1);
	cr_assert_eq(bk_check_live(&c, b, now, 0), BK_HALTED,
	             "a dead daemon halts engines within two heartbeat bounds");
	cr_assert_eq(bk_check(&c, b), BK_ACTIVE, "the plain check keeps the last word");

	/* A new daemon takes over the segment under the engine's old mapping. */
	bk_h_start(&h);
	cr_assert_eq(c.shm->hdr.daemon_pid, (uint32_t)h.pid, "the new daemon owns it");
	cr_assert(live_until(&c, b, BK_ACTIVE), "beta never live again after restart");
	cr_assert_eq(bk_check_live(&c, a, bk_now_mono_ns(), 0), BK_HALTED,
	             "the trip from before the crash still holds");

	/* A trip after the restart wakes a waiter sleeping on the old mapping. */
	w = (struct waiter){.c = &c, .seen = bk_change_seq(&c), .rv = 1};
	cr_assert_eq(pthread_create(&t, NULL, wait_thread, &w), 0);
	cr_assert_eq(cli(&h, "kill", "beta", "--reason", "after the restart", NULL), 0,
	             "%s", out);
	cr_assert_eq(bk_check(&c, b), BK_HALTED, "seen through the old mapping");
	pthread_join(t, NULL);
	cr_assert_eq(w.rv, 0, "the futex waiter is woken by the change, not the timeout");
	cr_assert_eq(cli(&h, "audit", "--verify", NULL), 0, "%s", out);
	bk_client_detach(&c);
	bk_h_fini(&h);
}
