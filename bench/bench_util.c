/*
 * bench_util - statistics, CSV rows, pinning, child processes, temp
 * directories and the shared board.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* ---- statistics ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double rank(const double *v, size_t n, double q)
{
	size_t i = (size_t)ceil(q * (double)n);

	return v[i ? i - 1 : 0];
}

void bench_stats(double *v, size_t n, struct bench_stats *s)
{
	double sum = 0;

	memset(s, 0, sizeof(*s));
	s->n = n;
	if (n == 0) {
		s->p50 = s->p99 = s->p999 = s->max = s->mean = NAN;
		return;
	}
	qsort(v, n, sizeof(*v), cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	s->p50 = rank(v, n, 0.50);
	s->p99 = rank(v, n, 0.99);
	s->p999 = rank(v, n, 0.999);
	s->max = v[n - 1];
	s->mean = sum / (double)n;
}

/* ---- CSV rows ------------------------------------------------------------ */

/* Enough digits to be honest, no more. */
static void num(char *buf, size_t len, double v)
{
	double a = fabs(v);

	if (isnan(v))
		buf[0] = '\0';
	else if (a >= 1000)
		snprintf(buf, len, "%.0f", v);
	else if (a >= 100)
		snprintf(buf, len, "%.1f", v);
	else if (a >= 10)
		snprintf(buf, len, "%.2f", v);
	else
		snprintf(buf, len, "%.3f", v);
}

/* Commas would split the CSV field: they become semicolons. */
static void field(const char *s)
{
	for (; s && *s; s++)
		putchar(*s == ',' || *s == '\n' ? ';' : *s);
	putchar(',');
}

static void emit(const char *section, const char *name, const char *unit, size_t n,
                 const double v[4], const char *setup)
{
	char b[4][32];

	for (int i = 0; i < 4; i++)
		num(b[i], sizeof(b[i]), v[i]);
	field(section);
	field(name);
	field(unit);
	if (n)
		printf("%zu", n);
	printf(",%s,%s,%s,%s,", b[0], b[1], b[2], b[3]);
	for (; setup && *setup; setup++)
		putchar(*setup == ',' || *setup == '\n' ? ';' : *setup);
	putchar('\n');
	fflush(stdout);
}

void bench_row(const char *section, const char *name, const char *unit,
               const struct bench_stats *s, const char *setup)
{
	const double v[4] = {s->p50, s->p99, s->p999, s->max};

	emit(section, name, unit, s->n, v, setup);
	fprintf(stderr, "  %-52s p50 %10.3f  p99 %10.3f  max %10.3f %s\n", name, s->p50,
	        s->p99, s->max, unit);
}

void bench_value(const char *section, const char *name, const char *unit, double v,
                 const char *setup)
{
	const double vals[4] = {v, NAN, NAN, NAN};

	emit(section, name, unit, 0, vals, setup);
	fprintf(stderr, "  %-52s %10.3f %s\n", name, v, unit);
}

void bench_pair(const char *section, const char *name, const char *unit, double p50,
                double p99, const char *setup)
{
	const double v[4] = {p50, p99, NAN, NAN};

	emit(section, name, unit, 0, v, setup);
	fprintf(stderr, "  %-52s p50 %10.3f  p99 %10.3f %s\n", name, p50, p99, unit);
}

bool bench_quick(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--quick") == 0)
			return true;
	return false;
}

/* ---- processes ----------------------------------------------------------- */

int bench_pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

/* Only async-signal-safe calls between fork and exec: nng may run threads. */
static void child_exec(char *const argv[], int cpu, const char *out_path)
{
	cpu_set_t set;
	int fd;

	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	if (out_path) {
		fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
	} else {
		dup2(2, 1); /* stdout is the CSV: helpers talk on stderr only */
	}
	execv(argv[0], argv);
	_exit(127);
}

pid_t bench_spawn(char *const argv[], int cpu, const char *out_path)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0)
		child_exec(argv, cpu, out_path);
	return pid < 0 ? -errno : pid;
}

pid_t bench_spawn_self(char *const args[], int cpu)
{
	char *argv[16] = {"/proc/self/exe"};
	int i;

	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	return bench_spawn(argv, cpu, NULL);
}

int bench_wait_child(pid_t pid)
{
	int st;

	if (pid <= 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int bench_stop_child(pid_t pid)
{
	int st;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		bench_sleep_us(10000);
	}
	kill(pid, SIGKILL);
	return bench_wait_child(pid);
}

static double thread_ctxsw(const char *path)
{
	char line[128];
	double sum = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "voluntary_ctxt_switches:")) /* and nonvoluntary_ */
			sum += strtod(strchr(line, ':') + 1, NULL);
	fclose(f);
	return sum;
}

double bench_ctxsw(pid_t pid)
{
	char dir[64], path[128];
	struct dirent *e;
	double sum = 0;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	if (!(dp = opendir(dir)))
		return -1;
	while ((e = readdir(dp)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
			sum += thread_ctxsw(path);
		}
	closedir(dp);
	return sum;
}

/* utime and stime are fields 14 and 15, counted after the ")" of comm. */
double bench_stat_cpu_s(const char *stat_path, char *comm, size_t comm_len)
{
	char buf[1024], *open_paren, *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;
	size_t n;

	if (!(f = fopen(stat_path, "r")))
		return NAN;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (!(open_paren = strchr(buf, '(')) || !(p = strrchr(buf, ')')) ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
	           &st) != 2)
		return NAN;
	if (comm)
		snprintf(comm, comm_len, "%.*s", (int)(p - open_paren - 1),
		         open_paren + 1);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double bench_cpu_s(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	return bench_stat_cpu_s(path, NULL, 0);
}

void bench_cpus_sample(struct bench_cpus *c)
{
	unsigned long long v[10];
	char line[256];
	FILE *f = fopen("/proc/stat", "r");
	int cpu;

	memset(c, 0, sizeof(*c));
	while (f && fgets(line, sizeof(line), f)) {
		memset(v, 0, sizeof(v));
		if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu,
		           &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 5 ||
		    cpu < 0 || cpu > 1)
			continue;
		for (int i = 0; i < 8; i++)
			c->total[cpu] += (double)v[i];
		c->busy[cpu] =
		    c->total[cpu] - (double)v[3] - (double)v[4]; /* idle, iowait */
	}
	if (f)
		fclose(f);
}

double bench_cpus_pct(const struct bench_cpus *a, const struct bench_cpus *b, int cpu)
{
	double t = b->total[cpu] - a->total[cpu];

	return t > 0 ? 100.0 * (b->busy[cpu] - a->busy[cpu]) / t : NAN;
}

void bench_sleep_us(unsigned us)
{
	struct timespec ts = {.tv_sec = us / 1000000,
	                      .tv_nsec = (long)(us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- directories --------------------------------------------------------- */

int bench_tmpdir(char *buf, size_t len, const char *tag)
{
	const char *base = getenv("BENCH_TMPDIR");

	if (!base || !*base)
		base = "/var/tmp";
	snprintf(buf, len, "%s/bkbench-%s-XXXXXX", base, tag);
	return mkdtemp(buf) ? 0 : -errno;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void bench_rmtree(const char *dir)
{
	if (dir[0] && !getenv("BENCH_KEEP_TMP"))
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *bench_fs_name(const char *path)
{
	struct statfs sf;

	if (statfs(path, &sf) < 0)
		return "unknown";
	switch ((unsigned long)sf.f_type) {
	case 0xEF53UL:
		return "ext4";
	case 0x58465342UL:
		return "xfs";
	case 0x9123683EUL:
		return "btrfs";
	case 0x01021994UL:
		return "tmpfs";
	case 0x794c7630UL:
		return "overlayfs";
	default:
		return "other";
	}
}

/* ---- board --------------------------------------------------------------- */

static size_t board_size(uint32_t slots)
{
	return sizeof(struct bench_board) + (size_t)slots * sizeof(uint64_t);
}

struct bench_board *bench_board_create(uint32_t slots, int *fd)
{
	struct bench_board *b;

	*fd = memfd_create("bench-board", 0); /* no CLOEXEC: helpers inherit it */
	if (*fd < 0)
		return NULL;
	if (ftruncate(*fd, (off_t)board_size(slots)) < 0) {
		close(*fd);
		return NULL;
	}
	b = bench_board_map(*fd);
	if (b)
		b->slots = slots;
	return b;
}

struct bench_board *bench_board_map(int fd)
{
	struct stat st;
	void *p;

	if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(struct bench_board))
		return NULL;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

void bench_board_free(struct bench_board *b)
{
	if (b)
		munmap(b, board_size(b->slots));
}

/* Shared (not _PRIVATE) futex: the board is a memfd mapped by several processes. */
static void futex(_Atomic uint32_t *w, int op, uint32_t val, const struct timespec *ts)
{
	syscall(SYS_futex, (void *)w, op, val, ts, NULL, 0);
}

int bench_wait_u32(_Atomic uint32_t *w, uint32_t want, unsigned timeout_ms)
{
	const struct timespec slice = {.tv_nsec = 10000000};
	uint64_t end = bench_now() + (uint64_t)timeout_ms * 1000000ull;
	uint32_t v;

	while ((v = atomic_load_explicit(w, memory_order_acquire)) != want) {
		if (bench_now() > end)
			return -ETIMEDOUT;
		futex(w, FUTEX_WAIT, v, &slice);
	}
	return 0;
}

void bench_post_u32(_Atomic uint32_t *w, uint32_t v)
{
	atomic_store_explicit(w, v, memory_order_release);
	futex(w, FUTEX_WAKE, INT32_MAX, NULL);
}

void bench_add_u32(_Atomic uint32_t *w, uint32_t v)
{
	atomic_fetch_add_explicit(w, v, memory_order_release);
	futex(w, FUTEX_WAKE, INT32_MAX, NULL);
}
