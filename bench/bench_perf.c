/*
 * bench_perf - count the fsyncs of one file while a benchmark runs, so that
 * "records per fsync" is counted rather than guessed.
 *
 * breakerd's fsyncs are io_uring operations (often run by an io-wq worker),
 * invisible to strace and to syscall counters; the ext4 tracepoint
 * ext4_sync_file_enter sees them all. One counter per CPU (pid -1), filtered
 * on the file's inode, so other fsyncs on the machine do not count.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

static long tracepoint_id(const char *event)
{
	static const char *const roots[] = {"/sys/kernel/tracing",
	                                    "/sys/kernel/debug/tracing"};
	char path[256], buf[32];
	long id = -ENOENT;

	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]) && id < 0; i++) {
		int fd;
		ssize_t n;

		snprintf(path, sizeof(path), "%s/events/%s/id", roots[i], event);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			id = strtol(buf, NULL, 10);
		}
	}
	return id;
}

static int open_cpu(long id, int cpu, const char *filter)
{
	struct perf_event_attr a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_TRACEPOINT;
	a.size = sizeof(a);
	a.config = (unsigned long long)id;
	a.disabled = 1;
	fd = (int)syscall(SYS_perf_event_open, &a, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, PERF_EVENT_IOC_SET_FILTER, filter) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int bench_fsyncs_open(struct bench_fsyncs *f, const char *path)
{
	long id = tracepoint_id("ext4/ext4_sync_file_enter");
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char filter[64];
	struct stat st;
	int fd;

	f->n = 0;
	if (id < 0)
		return (int)id;
	if (stat(path, &st) < 0)
		return -errno;
	if (strcmp(bench_fs_name(path), "ext4") != 0)
		return -ENOTSUP;
	snprintf(filter, sizeof(filter), "ino == %llu", (unsigned long long)st.st_ino);
	for (int cpu = 0; cpu < ncpu && f->n < (int)(sizeof(f->fds) / sizeof(f->fds[0]));
	     cpu++) {
		if ((fd = open_cpu(id, cpu, filter)) < 0) {
			bench_fsyncs_close(f);
			return fd;
		}
		f->fds[f->n++] = fd;
	}
	return 0;
}

void bench_fsyncs_start(struct bench_fsyncs *f)
{
	for (int i = 0; i < f->n; i++) {
		ioctl(f->fds[i], PERF_EVENT_IOC_RESET, 0);
		ioctl(f->fds[i], PERF_EVENT_IOC_ENABLE, 0);
	}
}

long long bench_fsyncs_stop(struct bench_fsyncs *f)
{
	long long sum = 0;
	uint64_t v;

	if (f->n == 0)
		return -1;
	for (int i = 0; i < f->n; i++) {
		ioctl(f->fds[i], PERF_EVENT_IOC_DISABLE, 0);
		if (read(f->fds[i], &v, sizeof(v)) == (ssize_t)sizeof(v))
			sum += (long long)v;
	}
	return sum;
}

void bench_fsyncs_close(struct bench_fsyncs *f)
{
	for (int i = 0; i < f->n; i++)
		close(f->fds[i]);
	f->n = 0;
}
