/*
 * bench_tput - audited commands acknowledged per second, and how batching
 * several audit records under one fsync carries the load.
 *
 * 1, 4 and 8 client processes (this binary again, "--helper ..."), each with
 * its own connection (nng REQ over IPC, or breakerd's local seqpacket socket:
 * the fast path) and its own strategy, alternate trip and forced resume
 * as fast as acks come back. Every command is one audit record that is
 * durable (write + fdatasync) before its ack. The fsyncs of the audit log are
 * counted with the ext4 tracepoint, so records per fsync is measured, not
 * inferred. Peer in the same run: redis-server with appendfsync always (each
 * SET durable before its reply, fsync shared by the commands of one event
 * loop turn), the same client counts.
 *
 * The server (breakerd or redis-server) runs on CPU 0, all clients on CPU 1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bk_audit.h"

#define SECTION     "throughput"
#define MAX_CLIENTS 8
#define TOTAL_CMDS  4000 /* per configuration, split between the clients */
#define WARM_CMDS   50   /* per client, before the start line */

/* Board layout: t[2c], t[2c+1] = client c's start/end; then per-command ns. */
#define T_LAT(c, n, k) (2 * MAX_CLIENTS + (size_t)(c) * (n) + (k))

struct client {
	int (*cmd)(void *arg, size_t k);
	void *arg;
};

/* Warm up, report ready, wait for the start line, run n commands, stamp each. */
static int client_run(struct bench_board *b, int idx, size_t n, const struct client *c)
{
	uint64_t t0;

	for (size_t k = 0; k < WARM_CMDS; k++)
		if (c->cmd(c->arg, k) < 0)
			return 1;
	bench_add_u32(&b->ready, 1);
	if (bench_wait_u32(&b->go, 1, 60000) < 0 || atomic_load(&b->quit))
		return 1;
	b->t[2 * idx] = bench_now();
	for (size_t k = 0; k < n; k++) {
		t0 = bench_now();
		if (c->cmd(c->arg, k) < 0)
			return 1;
		b->t[T_LAT(idx, n, k)] = bench_now() - t0;
	}
	b->t[2 * idx + 1] = bench_now();
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

struct bk_arg {
	struct bk_rpc r;
	char strategy[32];
	uint64_t id;
};

/* Even: trip; odd: forced resume. WARM_CMDS is even, so it pairs up. */
static int bk_cmd(void *a, size_t k)
{
	struct bk_arg *x = a;

	return k % 2 == 0 ? bench_trip(&x->r, x->strategy, ++x->id)
	                  : bench_resume(&x->r, x->strategy, ++x->id);
}

struct redis_arg {
	struct resp c;
	char cmd[2][96];
	size_t len[2];
};

static int redis_cmd(void *a, size_t k)
{
	struct redis_arg *x = a;

	return resp_call(&x->c, x->cmd[k % 2], x->len[k % 2], NULL, 0);
}

/* --helper bk-client|redis-client TARGET IDX N BOARDFD */
static int helper(int argc, char **argv)
{
	struct bench_board *b;
	struct client c;
	struct bk_arg bk = {.id = 0};
	struct redis_arg rd = {.c = {.fd = -1}};
	int idx;

	if (argc < 7 || !(b = bench_board_map(atoi(argv[6]))))
		return 2;
	idx = atoi(argv[4]);
	if (strcmp(argv[2], "bk-client") == 0) {
		snprintf(bk.strategy, sizeof(bk.strategy), "bench-%d", idx);
		bk.id = (uint64_t)idx << 32;
		if (bk_rpc_open(&bk.r, argv[3], 5000) < 0)
			return 1;
		c = (struct client){bk_cmd, &bk};
	} else {
		char key[32];
		const char *s1[] = {"SET", key, "1"}, *s0[] = {"SET", key, "0"};

		snprintf(key, sizeof(key), "breaker:bench-%d", idx);
		rd.len[0] = resp_encode(rd.cmd[0], sizeof(rd.cmd[0]), 3, s1);
		rd.len[1] = resp_encode(rd.cmd[1], sizeof(rd.cmd[1]), 3, s0);
		if (resp_connect(&rd.c, atoi(argv[3])) < 0)
			return 1;
		c = (struct client){redis_cmd, &rd};
	}
	return client_run(b, idx, strtoul(argv[5], NULL, 10), &c);
}

/* ---- the driver ---------------------------------------------------------- */

struct ctx {
	bool quick;
	bool fast_only; /* --fast: the fast path, Redis and the bare peers only */
	char dir[160];
	struct bench_board *b;
	char board_arg[16];
	double *v;
	size_t rec_bytes; /* mean audit frame of the breakerd runs */
};

struct result {
	size_t cmds;
	double tput;            /* acknowledged commands per second */
	struct bench_stats lat; /* per command, us */
	long long fsyncs;       /* of the log during the run; -1 unknown */
	double server_cpu_us;   /* server's CPU time per command */
	double busy[2];         /* CPU 0 and CPU 1 busy, percent */
	struct roles *roles;    /* breakerd only: its CPU per command by thread role */
};

/* breakerd's CPU by thread: its loop (main thread), nng's threads, io-wq workers. */
struct roles {
	double loop, nng, iowq, other; /* seconds; per command once divided */
	double tick;                   /* the loop's idle (tick) share, per command */
};

static double read_num(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return strtod(buf, NULL);
}

/* Run time (schedstat, ns precision) of each live thread, by role. */
static void roles_sample(pid_t pid, struct roles *r)
{
	char dir[64], path[128], comm[32];
	struct dirent *e;
	double ns;
	DIR *dp;

	memset(r, 0, sizeof(*r));
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	if (!(dp = opendir(dir)))
		return;
	while ((e = readdir(dp))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/schedstat", dir, e->d_name);
		ns = read_num(path, comm, sizeof(comm)) / 1e9;
		snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
		read_num(path, comm, sizeof(comm));
		if (atoi(e->d_name) == (int)pid)
			r->loop += ns;
		else if (strncmp(comm, "nng:", 4) == 0)
			r->nng += ns;
		else if (strncmp(comm, "iou-wrk", 7) == 0)
			r->iowq += ns;
		else
			r->other += ns;
	}
	closedir(dp);
}

/* The loop's CPU per second when idle: its ticks. */
static double tick_rate(pid_t pid)
{
	struct roles a, b;
	uint64_t t0 = bench_now();

	roles_sample(pid, &a);
	bench_sleep_us(300000);
	roles_sample(pid, &b);
	return (b.loop - a.loop) * 1e9 / (double)(bench_now() - t0);
}

static void collect(struct ctx *x, int nc, size_t n, struct result *r)
{
	uint64_t start = UINT64_MAX, end = 0;

	for (int c = 0; c < nc; c++) {
		start = x->b->t[2 * c] < start ? x->b->t[2 * c] : start;
		end = x->b->t[2 * c + 1] > end ? x->b->t[2 * c + 1] : end;
		for (size_t k = 0; k < n; k++)
			x->v[(size_t)c * n + k] =
			    (double)x->b->t[T_LAT(c, n, k)] / 1000.0;
	}
	r->cmds = (size_t)nc * n;
	r->tput = end > start ? (double)r->cmds * 1e9 / (double)(end - start) : 0;
	bench_stats(x->v, r->cmds, &r->lat);
}

static int spawn_clients(struct ctx *x, const char *kind, const char *target, int nc,
                         size_t n, pid_t *pids)
{
	char idx[MAX_CLIENTS][8], n_arg[16];

	snprintf(n_arg, sizeof(n_arg), "%zu", n);
	atomic_store(&x->b->ready, 0);
	atomic_store(&x->b->go, 0);
	atomic_store(&x->b->quit, 0);
	for (int c = 0; c < nc; c++) {
		char *args[] = {"--helper",   (char *)kind, (char *)target, idx[c], n_arg,
		                x->board_arg, NULL};

		snprintf(idx[c], sizeof(idx[c]), "%d", c);
		if ((pids[c] = bench_spawn_self(args, BENCH_CPU_OBSERVER)) < 0)
			return (int)pids[c];
	}
	return bench_wait_u32(&x->b->ready, (uint32_t)nc, 10000);
}

/* Where the time goes: the server's CPU per command, each CPU's load. */
static void usage(pid_t server, double cpu0, const struct bench_cpus *c0,
                  struct result *r)
{
	struct bench_cpus c1;

	bench_cpus_sample(&c1);
	r->server_cpu_us = (bench_cpu_s(server) - cpu0) * 1e6 / (double)r->cmds;
	r->busy[0] = bench_cpus_pct(c0, &c1, 0);
	r->busy[1] = bench_cpus_pct(c0, &c1, 1);
}

/* Per command, us; the loop's share without its ticks (idle rate x duration). */
static void roles_done(pid_t server, const struct roles *a, double idle_rate, double secs,
                       struct result *r)
{
	struct roles b;
	double k = 1e6 / (double)r->cmds;

	roles_sample(server, &b);
	r->roles->tick = idle_rate * secs * k;
	r->roles->loop = (b.loop - a->loop) * k - r->roles->tick;
	r->roles->nng = (b.nng - a->nng) * k;
	r->roles->iowq = (b.iowq - a->iowq) * k;
	r->roles->other = (b.other - a->other) * k;
}

/* nc clients of kind against server's target; fsyncs of fsync_path counted meanwhile. */
static int run_clients(struct ctx *x, const char *kind, const char *target, int nc,
                       pid_t server, const char *fsync_path, struct result *r)
{
	size_t n = bench_scale(x->quick, TOTAL_CMDS) / (size_t)nc;
	pid_t pids[MAX_CLIENTS] = {0};
	struct bench_fsyncs fs = {.n = 0};
	struct bench_cpus c0;
	struct roles ro;
	double cpu0, idle = 0;
	uint64_t t0;
	int rv, bad = 0;

	if ((rv = spawn_clients(x, kind, target, nc, n, pids)) < 0) {
		atomic_store(&x->b->quit, 1);
		for (int c = 0; c < nc; c++)
			bench_stop_child(pids[c]);
		return rv;
	}
	if (bench_fsyncs_open(&fs, fsync_path) == 0)
		bench_fsyncs_start(&fs);
	if (r->roles)
		idle = tick_rate(server);
	roles_sample(server, &ro);
	cpu0 = bench_cpu_s(server);
	bench_cpus_sample(&c0);
	t0 = bench_now();
	bench_post_u32(&x->b->go, 1);
	for (int c = 0; c < nc; c++)
		bad |= bench_wait_child(pids[c]) != 0;
	r->fsyncs = bench_fsyncs_stop(&fs);
	bench_fsyncs_close(&fs);
	if (bad)
		return -ECHILD;
	collect(x, nc, n, r);
	usage(server, cpu0, &c0, r);
	if (r->roles)
		roles_done(server, &ro, idle, (double)(bench_now() - t0) / 1e9, r);
	return 0;
}

static void report(const char *who, int nc, const struct result *r, const char *fs)
{
	char name[96], setup[160];

	snprintf(setup, sizeof(setup),
	         "%s cpu%d; %d client process%s cpu%d; %zu commands; %s", who,
	         BENCH_CPU_SERVER, nc, nc > 1 ? "es" : "", BENCH_CPU_OBSERVER, r->cmds,
	         fs);
	snprintf(name, sizeof(name), "%s with %d client%s: commands acked per second",
	         who, nc, nc > 1 ? "s" : "");
	bench_value(SECTION, name, "cmd/s", r->tput, setup);
	snprintf(name, sizeof(name), "%s with %d client%s: latency per command", who, nc,
	         nc > 1 ? "s" : "");
	bench_row(SECTION, name, "us", &r->lat, setup);
	snprintf(name, sizeof(name), "%s with %d client%s: records per fsync", who, nc,
	         nc > 1 ? "s" : "");
	if (r->fsyncs > 0)
		bench_value(
		    SECTION, name, "rec/fsync", (double)r->cmds / (double)r->fsyncs,
		    "counted: ext4_sync_file_enter tracepoint on the log's inode");
	else
		bench_value(SECTION, name, "rec/fsync", NAN,
		            "n/a: fsyncs not countable here");
	snprintf(name, sizeof(name), "%s with %d client%s: server CPU per command", who,
	         nc, nc > 1 ? "s" : "");
	snprintf(setup, sizeof(setup),
	         "all its threads (/proc stat); cpu0 %.0f%% busy, cpu1 "
	         "%.0f%% busy during the run",
	         r->busy[0], r->busy[1]);
	bench_value(SECTION, name, "us", r->server_cpu_us, setup);
	if (!r->roles)
		return;
	snprintf(name, sizeof(name),
	         "%s with %d client%s: CPU per command: loop / nng / io-wq", who, nc,
	         nc > 1 ? "s" : "");
	snprintf(setup, sizeof(setup),
	         "us per command (schedstat): loop %.0f + nng threads "
	         "%.0f + io-wq (fsync) %.0f + other %.0f; plus ticks %.0f",
	         r->roles->loop, r->roles->nng, r->roles->iowq, r->roles->other,
	         r->roles->tick);
	bench_value(SECTION, name, "us",
	            r->roles->loop + r->roles->nng + r->roles->iowq + r->roles->other,
	            setup);
}

static const int client_counts[] = {1, 4, 8};
#define N_COUNTS (sizeof(client_counts) / sizeof(client_counts[0]))

/* One daemon, nc clients; who names it in the rows. */
static int run_breakerd_one(struct ctx *x, const char *who, unsigned tick_us, bool local,
                            int nc, struct result *res, struct roles *roles)
{
	char ini[256];
	struct bench_daemon d;
	int rv;

	snprintf(ini, sizeof(ini),
	         "tick_period_us = %u\n[strategies]\nnames = bench-0, bench-1, bench-2, "
	         "bench-3, bench-4, bench-5, bench-6, bench-7\n",
	         tick_us);
	if ((rv = bench_daemon_start(&d, "tput", ini, BENCH_CPU_SERVER)) < 0)
		return rv;
	res->roles = roles;
	rv = run_clients(x, "bk-client", local ? d.cfg.local_url : d.cfg.cmd_url, nc,
	                 d.pid, d.cfg.audit_path, res);
	if (rv == 0)
		report(who, nc, res, bench_fs_name(d.cfg.audit_path));
	if (rv == 0 && !x->rec_bytes) { /* the peer below writes records this size */
		struct bk_audit_scan sc;

		if (bk_audit_scan(d.cfg.audit_path, NULL, NULL, &sc) == 0 && sc.records)
			x->rec_bytes =
			    (size_t)((sc.valid_len - BK_AUDIT_HDR_SIZE) / sc.records);
	} else
		fprintf(stderr, "bench_tput: %s, %d clients: %s; see %s\n", who, nc,
		        strerror(-rv), d.log);
	bench_daemon_stop(&d);
	return rv;
}

/*
 * 1, 4, 8 clients at the default tick, over nng and over the fast path; then
 * 8 at a 1 ms tick (the tick's share).
 */
static int run_breakerd(struct ctx *x, struct result *res, struct result *fast,
                        struct roles *roles)
{
	struct result slow = {0};
	struct roles slow_roles, fast_roles;
	int rv = 0;

	for (size_t i = 0; i < N_COUNTS && rv == 0 && !x->fast_only; i++)
		rv = run_breakerd_one(x, "breakerd", 100, false, client_counts[i],
		                      &res[i], &roles[i]);
	for (size_t i = 0; i < N_COUNTS && rv == 0; i++)
		rv = run_breakerd_one(x, "breakerd fast path", 100, true,
		                      client_counts[i], &fast[i], &fast_roles);
	if (rv == 0 && !x->fast_only)
		run_breakerd_one(x, "breakerd tick 1 ms", 1000, false, MAX_CLIENTS, &slow,
		                 &slow_roles);
	return rv;
}

/* Redis 7 keeps its AOF in appendonlydir/, the live part named *.incr.aof. */
static int redis_aof(const char *dir, char *path, size_t len)
{
	char sub[224];
	struct dirent *e;
	DIR *dp;
	int rv = -ENOENT;

	snprintf(sub, sizeof(sub), "%s/appendonlydir", dir);
	if (!(dp = opendir(sub)))
		return -errno;
	while ((e = readdir(dp)) && rv < 0)
		if (strstr(e->d_name, ".incr.aof")) {
			snprintf(path, len, "%s/%s", sub, e->d_name);
			rv = 0;
		}
	closedir(dp);
	return rv;
}

static int run_redis(struct ctx *x, struct result *res)
{
	struct bench_redis srv;
	char port[16], aof[320] = "";
	int rv;

	if ((rv = bench_redis_start(&srv, x->dir, BENCH_CPU_SERVER, true)) < 0)
		return rv;
	redis_aof(x->dir, aof, sizeof(aof));
	snprintf(port, sizeof(port), "%d", srv.port);
	for (size_t i = 0; i < N_COUNTS && rv == 0; i++) {
		rv = run_clients(x, "redis-client", port, client_counts[i], srv.pid, aof,
		                 &res[i]);
		if (rv == 0)
			report("redis appendfsync always", client_counts[i], &res[i],
			       bench_fs_name(x->dir));
	}
	bench_redis_stop(&srv);
	return rv;
}

/*
 * The floor of a durable ack: one write of a record's size + fdatasync, one at a
 * time, on the same filesystem, from CPU 0 like the daemon: appending (the
 * file grows: fdatasync commits the new size too) and into zeros written and
 * fsynced ahead (no size change: what breakerd's preallocated log does).
 */
static void bare_fsync(struct ctx *x, bool prezeroed, struct bench_stats *st)
{
	size_t n = bench_scale(x->quick, 2000), sz = x->rec_bytes ? x->rec_bytes : 256;
	char path[224], name[128], setup[160];
	static uint8_t rec[4096], zeros[1 << 20];
	double *lat = calloc(n, sizeof(*lat));
	int fd;

	snprintf(path, sizeof(path), "%s/bare-%d", x->dir, (int)prezeroed);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !lat || sz > sizeof(rec)) {
		free(lat);
		if (fd >= 0)
			close(fd);
		return;
	}
	memset(rec, 'r', sz);
	for (size_t off = 0; prezeroed && off < n * sz + sizeof(zeros);
	     off += sizeof(zeros))
		if (pwrite(fd, zeros, sizeof(zeros), (off_t)off) < 0)
			break;
	fsync(fd);
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = bench_now();

		if (pwrite(fd, rec, sz, (off_t)(i * sz)) != (ssize_t)sz ||
		    fdatasync(fd) < 0)
			break;
		lat[i] = (double)(bench_now() - t0) / 1000.0;
	}
	close(fd);
	unlink(path);
	bench_stats(lat, n, st);
	snprintf(name, sizeof(name), "peer: bare %zu-byte write + fdatasync, %s", sz,
	         prezeroed ? "into zeros written ahead" : "appending");
	snprintf(setup, sizeof(setup),
	         "one at a time, cpu%d; %s; the record size of the breakerd runs",
	         BENCH_CPU_SERVER, bench_fs_name(x->dir));
	bench_row(SECTION, name, "us", st, setup);
	free(lat);
}

static void ratios(const struct result *bk, const struct result *fast,
                   const struct result *rd, bool have_redis)
{
	const char *how = "ratio of commands per second";
	bool have_nng = bk[0].tput > 0; /* not with --fast */

	for (size_t i = 1; i < N_COUNTS && have_nng; i++) {
		char name[96];

		snprintf(name, sizeof(name), "ratio: breakerd %d clients / 1 client",
		         client_counts[i]);
		bench_value(SECTION, name, "x", bk[i].tput / bk[0].tput, how);
	}
	for (size_t i = 0; have_redis && i < N_COUNTS; i++) {
		char name[96];

		snprintf(name, sizeof(name),
		         "ratio: breakerd / redis appendfsync always (%d client%s)",
		         client_counts[i], i ? "s" : "");
		if (have_nng)
			bench_value(SECTION, name, "x", bk[i].tput / rd[i].tput, how);
		snprintf(name, sizeof(name),
		         "ratio: breakerd fast path / redis appendfsync always (%d "
		         "client%s)",
		         client_counts[i], i ? "s" : "");
		bench_value(SECTION, name, "x", fast[i].tput / rd[i].tput, how);
	}
	for (size_t i = 0; i < N_COUNTS && have_nng; i++) {
		char name[96];

		snprintf(name, sizeof(name),
		         "ratio: breakerd fast path / nng (%d client%s)",
		         client_counts[i], i ? "s" : "");
		bench_value(SECTION, name, "x", fast[i].tput / bk[i].tput, how);
	}
}

static bool has_arg(int argc, char **argv, const char *a)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], a) == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	struct result bk[N_COUNTS] = {0}, fast[N_COUNTS] = {0}, rd[N_COUNTS] = {0};
	struct roles roles[N_COUNTS];
	struct ctx x = {.quick = bench_quick(argc, argv),
	                .fast_only = has_arg(argc, argv, "--fast")};
	uint32_t slots = 2 * MAX_CLIENTS + TOTAL_CMDS + MAX_CLIENTS;
	bool have_redis;
	int fd = -1, rv = 1;

	if (argc > 2 && strcmp(argv[1], "--helper") == 0)
		return helper(argc, argv);
	x.v = calloc(slots, sizeof(*x.v));
	x.b = bench_board_create(slots, &fd);
	if (!x.v || !x.b || bench_tmpdir(x.dir, sizeof(x.dir), "tput") < 0)
		goto out;
	snprintf(x.board_arg, sizeof(x.board_arg), "%d", fd);
	bench_pin(BENCH_CPU_SERVER);
	fprintf(stderr,
	        "bench_tput: audited commands per second, batching under fsync\n");
	if (run_breakerd(&x, bk, fast, roles) == 0) {
		struct bench_stats app, pre;

		have_redis = run_redis(&x, rd) == 0;
		ratios(bk, fast, rd, have_redis);
		bare_fsync(&x, false, &app);
		bare_fsync(&x, true, &pre);
		bench_pair(
		    SECTION,
		    "ratio: fast path 1-client ack latency / bare write + fdatasync "
		    "(appending)",
		    "x", fast[0].lat.p50 / app.p50, fast[0].lat.p99 / app.p99,
		    "durable ack p50 / p99 over the bare append's; target p50 <= 1.15x");
		bench_pair(
		    SECTION,
		    "ratio: fast path 1-client ack latency / bare write + fdatasync "
		    "(into zeros)",
		    "x", fast[0].lat.p50 / pre.p50, fast[0].lat.p99 / pre.p99,
		    "the same over the preallocated-file floor");
		rv = 0;
	}
out:
	if (x.dir[0])
		bench_rmtree(x.dir);
	bench_board_free(x.b);
	if (fd >= 0)
		close(fd);
	free(x.v);
	return rv;
}
