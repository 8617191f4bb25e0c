/*
 * fuzz_util - what the libFuzzer targets share: a private scratch directory
 * (on tmpfs when there is one: the daemon fsyncs, and a disk would make every
 * input cost milliseconds; never shared with another run, which may be
 * cleaning up its own), whole-file writes, and a loud abort for a broken
 * invariant (libFuzzer keeps the input that caused it).
 */
#ifndef BK_FUZZ_UTIL_H
#define BK_FUZZ_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry points, which every target defines (-Wmissing-prototypes). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise of the code under test: print why, abort (a "crash"). */
__attribute__((format(printf, 1, 2), noreturn)) static inline void
fz_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "FUZZ INVARIANT BROKEN: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

/*
 * mkdtemp under $BK_FUZZ_TMP (tools/fuzz.sh: one directory per run, removed
 * after it), else /dev/shm (tmpfs), else $TMPDIR or /tmp.
 */
static inline void fz_tmpdir(char *buf, size_t len, const char *tag)
{
	const char *base = getenv("BK_FUZZ_TMP");
	struct stat st;

	if (!base || !*base || access(base, W_OK) != 0) {
		base = getenv("TMPDIR");
		if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
		    access("/dev/shm", W_OK) == 0)
			base = "/dev/shm";
		else if (!base || !*base)
			base = "/tmp";
	}
	snprintf(buf, len, "%s/bkfuzz-%s.XXXXXX", base, tag);
	if (!mkdtemp(buf))
		fz_fail("mkdtemp %s: %s", buf, strerror(errno));
}

static inline void fz_write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0)
		fz_fail("open %s: %s", path, strerror(errno));
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fz_fail("write %s: %s", path, strerror(errno));
		off += (size_t)n;
	}
	close(fd);
}

/* Remove every plain file in dir (one level: the targets make no subdirs). */
static inline void fz_empty_dir(const char *dir)
{
	char path[512];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
}

/* Empty and remove a scratch tree of at most two levels. */
static inline void fz_rm_tree(const char *dir)
{
	char sub[512];
	struct dirent *e;
	struct stat st;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
			fz_empty_dir(sub);
			rmdir(sub);
		} else {
			unlink(sub);
		}
	}
	closedir(d);
	rmdir(dir);
}

/* NUL within the first len bytes: a fixed-size string field is terminated. */
static inline int fz_terminated(const char *s, size_t len)
{
	return memchr(s, '\0', len) != NULL;
}

#endif
