/*
 * bench - shared pieces of the benchmark programs: clocks and
 * statistics, the CSV rows every program prints, CPU pinning, child
 * processes, a real breakerd in its own temp directory, a real redis-server,
 * a minimal RESP client, and a shared "board" where helper processes leave
 * their timestamps.
 *
 * Benchmarks measure; they never assert on times. Output rows go to stdout
 * as CSV (bench/run.sh turns them into bench/results/RESULTS.md); progress
 * and errors go to stderr.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bk_config.h"
#include "bk_rpc.h"
#include "breaker_client.h"

/* The two cores of the reference machine: the daemon / servers on one, the
 * observer (the spinning engine) or the load clients on the other. */
#define BENCH_CPU_SERVER   0
#define BENCH_CPU_OBSERVER 1

/* ---- time and statistics (bench_util.c) --------------------------------- */

static inline uint64_t bench_now(void)
{
	return bk_now_mono_ns();
}

struct bench_stats {
	size_t n;
	double p50, p99, p999, max, mean;
};

/* Sorts v in place; nearest-rank percentiles. */
void bench_stats(double *v, size_t n, struct bench_stats *s);

/* Keep a value alive without a store the compiler could drop. */
static inline void bench_sink(uint64_t v)
{
	__asm__ volatile("" : : "r"(v) : "memory");
}

/*
 * One CSV row: section,case,unit,n,p50,p99,p99.9,max,setup. A value-only row
 * (throughput, CPU %) fills p50 and leaves the rest empty; NAN prints empty.
 */
void bench_row(const char *section, const char *name, const char *unit,
               const struct bench_stats *s, const char *setup);
void bench_value(const char *section, const char *name, const char *unit, double v,
                 const char *setup);
void bench_pair(const char *section, const char *name, const char *unit, double p50,
                double p99, const char *setup);

/* Divide iteration counts by 10 with --quick (a smoke run, not a result). */
bool bench_quick(int argc, char **argv);
static inline size_t bench_scale(bool quick, size_t n)
{
	return quick ? (n / 10 ? n / 10 : 1) : n;
}

/* ---- processes (bench_util.c) -------------------------------------------- */

/* Pin the calling thread (and the threads it creates later) to one CPU. */
int bench_pin(int cpu);

/*
 * fork + exec argv (argv[0] is a path, or a name looked up in PATH),
 * pinned to cpu (-1: not pinned), stdout/stderr to out_path (NULL: /dev/null).
 * Safe after nng has started threads: the child only pins, redirects, execs.
 */
pid_t bench_spawn(char *const argv[], int cpu, const char *out_path);

/* Run this binary again in helper mode: argv = {"--helper", mode, ...}. */
pid_t bench_spawn_self(char *const args[], int cpu);

/* SIGTERM (then SIGKILL after 3 s) and reap; returns the exit status or -1. */
int bench_stop_child(pid_t pid);
int bench_wait_child(pid_t pid);

/* Context switches (voluntary + not) of all threads of pid so far; -1 on error. */
double bench_ctxsw(pid_t pid);

/* CPU time (utime + stime, all threads, exited ones too) of pid, seconds. */
double bench_cpu_s(pid_t pid);
/* The same from one /proc/.../stat file (a process or a thread); comm may be NULL. */
double bench_stat_cpu_s(const char *stat_path, char *comm, size_t comm_len);

/* Busy and total time of each CPU from /proc/stat (first 2 CPUs), in ticks. */
struct bench_cpus {
	double busy[2], total[2];
};
void bench_cpus_sample(struct bench_cpus *c);
/* Percent of cpu busy between two samples. */
double bench_cpus_pct(const struct bench_cpus *a, const struct bench_cpus *b, int cpu);

/* Sleep a number of microseconds (nanosleep). */
void bench_sleep_us(unsigned us);

/* A private temp directory on a real filesystem ($BENCH_TMPDIR, /var/tmp). */
int bench_tmpdir(char *buf, size_t len, const char *tag);
void bench_rmtree(const char *dir);
/* "ext4", "tmpfs", ... for the filesystem holding path. */
const char *bench_fs_name(const char *path);

/* ---- the shared board (bench_util.c) -------------------------------------- */

/* A memfd shared with helpers (inherited across exec; its number in argv). */
struct bench_board {
	_Atomic uint32_t armed; /* observer: armed for iteration i stores i + 1 */
	_Atomic uint32_t seen;  /* observer: stamped iteration i stores i + 1 */
	_Atomic uint32_t ready; /* helpers that finished their set-up */
	_Atomic uint32_t go;    /* parent: start now */
	_Atomic uint32_t quit;  /* parent: stop now */
	uint32_t slots;         /* number of t[] entries */
	uint32_t pad[10];
	uint64_t t[]; /* helpers' timestamps / samples */
};

struct bench_board *bench_board_create(uint32_t slots, int *fd);
struct bench_board *bench_board_map(int fd);
void bench_board_free(struct bench_board *b);

/*
 * Wait (asleep on a shared futex, so that a waiter on the server's CPU does
 * not steal it from the server) until *w == want, or timeout_ms: 0 or
 * -ETIMEDOUT. The writer uses bench_post_u32 / bench_add_u32, which wake.
 */
int bench_wait_u32(_Atomic uint32_t *w, uint32_t want, unsigned timeout_ms);
void bench_post_u32(_Atomic uint32_t *w, uint32_t v);
void bench_add_u32(_Atomic uint32_t *w, uint32_t v);

/* ---- a breakerd of our own (bench_daemon.c) --------------------------------- */

struct bench_daemon {
	char dir[128]; /* temp dir: breaker.ini, run/, state/, breakerd.log */
	char config[192];
	char log[192];
	struct bk_config cfg; /* the same file, parsed: urls and paths */
	pid_t pid;
};

/* Write a config (extra INI lines may be NULL), start breakerd pinned to cpu
 * and wait until it answers Status. 0 or -errno (a message on stderr). */
int bench_daemon_start(struct bench_daemon *d, const char *tag, const char *extra_ini,
                       int cpu);
/* Stop it (SIGTERM), unlink its segment, remove its directory. */
void bench_daemon_stop(struct bench_daemon *d);
/* Attach the engine client, waiting for the segment. 0 or -errno. */
int bench_daemon_attach(const struct bench_daemon *d, struct bk_client *c);

/* Trip / forced resume to ACTIVE of a scope (NULL: global). 0 or -errno/-EPROTO. */
int bench_trip(struct bk_rpc *r, const char *strategy, uint64_t id);
int bench_resume(struct bk_rpc *r, const char *strategy, uint64_t id);

/* ---- redis (bench_redis.c) --------------------------------------------------- */

struct bench_redis {
	pid_t pid;
	int port;
	char dir[160];
};

/* Start redis-server on 127.0.0.1, pinned; aof_always: appendfsync always.
 * 0, -ENOENT when redis-server is not installed, or -errno. */
int bench_redis_start(struct bench_redis *r, const char *dir, int cpu, bool aof_always);
void bench_redis_stop(struct bench_redis *r);

struct resp {
	int fd;
	size_t len;
	char buf[512];
};

/* Encode a command (argc strings) as RESP into out; returns its length. */
size_t resp_encode(char *out, size_t cap, int argc, const char *const argv[]);
int resp_connect(struct resp *c, int port);
void resp_close(struct resp *c);
/*
 * Send one encoded command and read its reply. The value of a bulk or simple
 * string reply lands in val (NUL-terminated); 0, -EPROTO (error reply or
 * garbage) or -errno.
 */
int resp_call(struct resp *c, const char *cmd, size_t len, char *val, size_t vlen);

/* ---- fsync counting (bench_perf.c) ---------------------------------------------- */

/*
 * Counts ext4 fsyncs (tracepoint ext4:ext4_sync_file_enter) on one inode,
 * system-wide, through perf_event_open. Unavailable (no tracefs, not ext4,
 * not permitted): open returns -errno and the benchmark says "n/a".
 */
struct bench_fsyncs {
	int fds[64];
	int n;
};

int bench_fsyncs_open(struct bench_fsyncs *f, const char *path);
void bench_fsyncs_start(struct bench_fsyncs *f);
long long bench_fsyncs_stop(struct bench_fsyncs *f);
void bench_fsyncs_close(struct bench_fsyncs *f);

#endif
