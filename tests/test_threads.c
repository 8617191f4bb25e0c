/*
 * An engine with many threads against a live breakerd: futex waiters
 * (bk_wait_change), a thread polling bk_check_live and bk_read_reason, and a
 * thread asking Status over its own bk_rpc socket, while the main thread
 * trips and resumes. Every waiter must see the last change, and every check
 * must answer a mode the commands made.
 *
 * Plain C without Criterion: Criterion's shared arena is mapped at random
 * addresses that ThreadSanitizer's memory layout refuses, and this is the
 * test `tools/dev.sh tsan` instruments on the engine side (the daemon and
 * the CLI are instrumented by running the Criterion suites against
 * build-tsan's binaries). BREAKERD names the daemon to start.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bk_config.h"
#include "bk_rpc.h"
#include "bk_shm.h"
#include "bk_tel.h"
#include "breaker_client.h"

#define WAITERS 4
#define CYCLES  40 /* trip + resume each */

static int failed, passed;

#define CHECK(cond, ...)                                                                 \
	do {                                                                             \
		if (cond) {                                                              \
			passed++;                                                        \
		} else {                                                                 \
			failed++;                                                        \
			fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);            \
			fprintf(stderr, __VA_ARGS__);                                    \
			fputc('\n', stderr);                                             \
		}                                                                        \
	} while (0)

/* Can't go on: report and stop (the daemon dies with us: PDEATHSIG). */
static void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("test_threads: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static struct bk_client client;
static struct bk_config cfg;
static atomic_int stop;       /* set once final_seq is known */
static atomic_uint final_seq; /* change_seq after the last command */

struct waiter {
	pthread_t t;
	int slot;
	unsigned wakes;
	uint32_t last_seq;
	int bad_mode; /* a mode no command made: -1 if none */
};

/* An engine thread that sleeps until the breaker changes, then checks. */
static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct timespec ts = {.tv_sec = 1};
	uint32_t seen = bk_change_seq(&client);
	struct bk_reason r;

	/* until stopped and the last change seen (a change may come after it) */
	while (!atomic_load(&stop) || (int32_t)(seen - atomic_load(&final_seq)) < 0) {
		int rv = bk_wait_change(&client, seen, &ts);

		if (rv == -ETIMEDOUT || rv == -EINTR)
			continue;
		if (rv != 0)
			fatal("bk_wait_change: %s", strerror(-rv));
		seen = bk_change_seq(&client);
		w->wakes++;
		/* global trips to HALTED and resumes to ACTIVE: nothing in between */
		enum bk_mode m = bk_check(&client, w->slot);
		if (m != BK_ACTIVE && m != BK_HALTED)
			w->bad_mode = (int)m;
		bk_read_reason(&client, w->slot, &r);
		if (r.mode != BK_ACTIVE && r.mode != BK_HALTED)
			w->bad_mode = (int)r.mode;
	}
	w->last_seq = seen;
	return NULL;
}

struct poller {
	pthread_t t;
	unsigned long polls;
	int bad_mode; /* a mode no command made: -1 if none */
};

/* An engine's order path: bk_check_live before every "order". */
static void *poller_main(void *arg)
{
	struct poller *p = arg;
	int n = (int)atomic_load(&client.shm->hdr.strategy_count);

	while (!atomic_load(&stop)) {
		for (int s = -1; s < n; s++) {
			/* a stalled daemon is HALTED too: still one of the two */
			enum bk_mode m = bk_check_live(&client, s, bk_now_mono_ns(), 0);
			if (m != BK_ACTIVE && m != BK_HALTED)
				p->bad_mode = (int)m;
			p->polls++;
		}
	}
	return NULL;
}

struct asker {
	pthread_t t;
	unsigned ok, errors;
};

/* Status over its own socket, concurrently with the main thread's commands. */
static void *asker_main(void *arg)
{
	struct asker *a = arg;
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__StatusRequest st = BREAKER__STATUS_REQUEST__INIT;
	Breaker__Reply *rep;
	struct bk_rpc r;

	req.cmd_case = BREAKER__REQUEST__CMD_STATUS;
	req.status = &st;
	if (bk_rpc_open(&r, cfg.cmd_url, 10000) < 0)
		fatal("asker: cannot open %s", cfg.cmd_url);
	while (!atomic_load(&stop)) {
		if (bk_rpc_call(&r, &req, &rep) == 0) {
			a->ok += rep->status == BREAKER__STATUS__OK;
			a->errors += rep->status != BREAKER__STATUS__OK;
			breaker__reply__free_unpacked(rep, NULL);
		} else {
			a->errors++;
		}
	}
	bk_rpc_close(&r);
	return NULL;
}

/* A global trip (manual_halt) or a forced resume to ACTIVE; its status. */
static int command(struct bk_rpc *r, bool trip, unsigned id)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;
	Breaker__Resume rs = BREAKER__RESUME__INIT;
	Breaker__Reply *rep;
	int rv;

	req.has_request_id = 1;
	req.request_id = id;
	if (trip) {
		req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
		req.trip = &t;
		t.has_reason_code = 1;
		t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
		t.reason = "threads test";
	} else {
		req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
		req.resume = &rs;
		rs.has_to = rs.has_force = 1;
		rs.to = BREAKER__MODE__MODE_ACTIVE;
		rs.force = 1;
		rs.reason = "threads test";
	}
	if ((rv = bk_rpc_call(r, &req, &rep)) < 0)
		return rv;
	rv = rep->status;
	breaker__reply__free_unpacked(rep, NULL);
	return rv;
}

static char dir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static pid_t start_daemon(void)
{
	const char *bin = getenv("BREAKERD") ? getenv("BREAKERD") : "breakerd";
	char config[128], log[128], err[256];
	pid_t pid;
	FILE *f;
	int rv = -EAGAIN;

	snprintf(dir, sizeof(dir), "/tmp/bk-threads-XXXXXX");
	if (!mkdtemp(dir))
		fatal("mkdtemp: %s", strerror(errno));
	snprintf(config, sizeof(config), "%s/breaker.ini", dir);
	snprintf(log, sizeof(log), "%s/breakerd.log", dir);
	if (!(f = fopen(config, "w")))
		fatal("%s: %s", config, strerror(errno));
	fprintf(f,
	        "[breaker]\ninstance = t%d-threads\nrun_dir = %s/run\n"
	        "state_dir = %s/state\n[strategies]\nnames = alpha, beta, gamma\n"
	        "[metrics]\nlisten =\n",
	        (int)getpid(), dir, dir);
	fclose(f);
	if (bk_config_defaults(&cfg, NULL) < 0 ||
	    bk_config_load(&cfg, config, err, sizeof(err)) < 0)
		fatal("config: %s", err);
	bk_shm_unlink(cfg.instance);
	/* fork before any nng call in this process (nng is not fork-safe) */
	if ((pid = fork()) < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(bin, bin, "--config", config, "--log-file", log, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 2000 && rv != 0; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			fatal("breakerd exited at start; see %s", log);
		if ((rv = bk_client_attach(&client, cfg.instance)) != 0)
			usleep(10000);
	}
	if (rv != 0)
		fatal("attach %s: %s", cfg.instance, strerror(-rv));
	for (int i = 0; i < 100 && !bk_rpc_ping(cfg.cmd_url, 1000); i++)
		usleep(10000);
	return pid;
}

int main(void)
{
	struct waiter w[WAITERS];
	struct poller p = {.bad_mode = -1};
	struct asker a = {0};
	struct bk_rpc r;
	pid_t pid = start_daemon();
	int st, halts = 0;

	for (int i = 0; i < WAITERS; i++) {
		w[i] = (struct waiter){.slot = i % 3, .bad_mode = -1};
		pthread_create(&w[i].t, NULL, waiter_main, &w[i]);
	}
	pthread_create(&p.t, NULL, poller_main, &p);
	pthread_create(&a.t, NULL, asker_main, &a);
	if (bk_rpc_open(&r, cfg.cmd_url, 10000) < 0)
		fatal("cannot open %s", cfg.cmd_url);
	for (unsigned i = 1; i <= 2 * CYCLES; i++) {
		int rv = command(&r, i % 2 == 1, i);

		CHECK(rv == BREAKER__STATUS__OK, "command %u: status %d", i, rv);
		halts += i % 2 == 1 && bk_check(&client, -1) == BK_HALTED;
	}
	CHECK(halts == CYCLES, "every acknowledged trip is seen at once (%d/%d)", halts,
	      CYCLES);
	/* the last command was a resume: one more trip, and everyone sees it */
	CHECK(command(&r, true, 2 * CYCLES + 1) == BREAKER__STATUS__OK, "last trip");
	bk_rpc_close(&r);
	atomic_store(&final_seq, bk_change_seq(&client));
	atomic_store(&stop, 1);
	for (int i = 0; i < WAITERS; i++) {
		pthread_join(w[i].t, NULL);
		CHECK(w[i].wakes > 0, "waiter %d was woken", i);
		CHECK((int32_t)(w[i].last_seq - atomic_load(&final_seq)) >= 0,
		      "waiter %d saw the last change (%u, last %u)", i, w[i].last_seq,
		      atomic_load(&final_seq));
		CHECK(w[i].bad_mode < 0, "waiter %d saw mode %d", i, w[i].bad_mode);
	}
	pthread_join(p.t, NULL);
	pthread_join(a.t, NULL);
	CHECK(p.polls > 0 && p.bad_mode < 0, "poller: %lu polls, mode %d", p.polls,
	      p.bad_mode);
	CHECK(a.ok > 0 && a.errors == 0, "status asker: %u ok, %u errors", a.ok,
	      a.errors);
	CHECK(bk_check(&client, -1) == BK_HALTED, "the last trip holds");
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "breakerd stops cleanly (%d)", st);
	bk_client_detach(&client);
	bk_shm_unlink(cfg.instance);
	bk_tel_unlink(cfg.instance);
	if (!failed)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	printf("threads: %d passed, %d failed\n", passed, failed);
	return failed != 0;
}
