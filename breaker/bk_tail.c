/*
 * bk_tail - the audit log's durable head and identity while breakerd runs
 * (see bk_tail.h for what and why).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "bk_daemon.h"
#include "bk_log.h"
#include "bk_tail.h"

#define RLX memory_order_relaxed

bool bk_tail_judge(struct bk_audit_scan *scan, const struct bk_audit_head *file,
                   const struct bk_audit_head *shm)
{
	const struct bk_audit_head *hi = shm;
	const char *what = "segment header's audit head";

	if (!shm || (file && file->seq > shm->seq)) {
		hi = file;
		what = "head file";
	}
	if (hi && bk_audit_check_head(scan, hi, what))
		return true;
	if (!file || !shm || file->seq != shm->seq ||
	    !memcmp(file->hash, shm->hash, BK_AUDIT_HASH_LEN) ||
	    scan->verdict == BK_AUDIT_CORRUPT || scan->verdict == BK_AUDIT_BAD_HEADER)
		return false;
	scan->verdict = BK_AUDIT_CORRUPT;
	snprintf(scan->why, sizeof(scan->why),
	         "the head file and the segment header disagree about record %" PRIu64,
	         file->seq);
	return true;
}

bool bk_tail_shm_head(const struct bk_shm *shm, struct bk_audit_head *h)
{
	struct bk_shm *s = (struct bk_shm *)shm; /* atomics: loads only */
	uint32_t l1, l2;

	memset(h, 0, sizeof(*h));
	for (int tries = 0; tries < 100; tries++) {
		l1 = atomic_load_explicit(&s->audit_lock, memory_order_acquire);
		if (l1 & 1u)
			continue;
		h->seq = atomic_load_explicit(&s->audit_seq, RLX);
		h->end = atomic_load_explicit(&s->audit_end, RLX);
		for (int i = 0; i < 4; i++) {
			uint64_t w = atomic_load_explicit(&s->audit_hash[i], RLX);
			memcpy(h->hash + 8 * i, &w, 8);
		}
		atomic_thread_fence(memory_order_acquire);
		l2 = atomic_load_explicit(&s->audit_lock, RLX);
		if (l1 == l2)
			return h->seq != 0;
	}
	/* a writer died mid-update: its numbers are not to be trusted */
	memset(h, 0, sizeof(*h));
	return false;
}

void bk_tail_publish(struct bk_daemon *d)
{
	struct bk_shm *s = d->shm.shm;
	uint32_t l = atomic_load_explicit(&s->audit_lock, RLX);

	atomic_store_explicit(&s->audit_lock, l + 1, RLX);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&s->audit_seq, d->audit.durable_seq, RLX);
	atomic_store_explicit(&s->audit_end, d->audit.end, RLX);
	for (int i = 0; i < 4; i++) {
		uint64_t w;
		memcpy(&w, d->audit.durable_hash + 8 * i, 8);
		atomic_store_explicit(&s->audit_hash[i], w, RLX);
	}
	atomic_store_explicit(&s->audit_lock, l + 2, memory_order_release);
}

static void current_head(const struct bk_daemon *d, uint64_t gen, struct bk_audit_head *h)
{
	h->gen = gen;
	h->seq = d->audit.durable_seq;
	h->end = d->audit.end;
	memcpy(h->hash, d->audit.durable_hash, BK_AUDIT_HASH_LEN);
}

static int note_identity(struct bk_daemon *d)
{
	struct stat st;

	if (fstat(d->audit.fd, &st) < 0)
		return -errno;
	d->tail.dev = st.st_dev;
	d->tail.ino = st.st_ino;
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rv = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return -ENAMETOOLONG;
	else
		snprintf(dir, sizeof(dir), "%.*s",
		         slash == path ? 1 : (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rv = -errno;
	close(fd);
	return rv;
}

/* Open (create) the head file and write the current head to both slots. */
static int head_file_write(struct bk_daemon *d, uint64_t gen)
{
	uint8_t slot[BK_AUDIT_HEAD_SLOT];
	char path[PATH_MAX + 16];
	struct bk_audit_head h;
	int fd, rv;

	if ((rv = bk_audit_head_path(d->cfg.audit_path, path, sizeof(path))) < 0)
		return rv;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return -errno;
	/* both slots: whichever a reader prefers says the same */
	current_head(d, gen, &h);
	bk_audit_head_encode(&h, slot);
	if (pwrite(fd, slot, sizeof(slot), 0) != (ssize_t)sizeof(slot) ||
	    pwrite(fd, slot, sizeof(slot), BK_AUDIT_HEAD_SLOT) != (ssize_t)sizeof(slot) ||
	    fdatasync(fd) < 0) {
		rv = errno ? -errno : -EIO;
		close(fd);
		return rv;
	}
	/* the head file's name must survive a power cut like its content: the
	 * marker written after it says it exists */
	if ((rv = fsync_dir_of(path)) < 0) {
		close(fd);
		return rv;
	}
	if (d->tail.head_fd >= 0)
		close(d->tail.head_fd);
	d->tail.head_fd = fd;
	d->tail.head_gen = h.gen;
	d->tail.head_written = h.seq;
	return 0;
}

int bk_tail_boot(struct bk_daemon *d)
{
	char path[PATH_MAX + 16];
	struct bk_audit_head old;
	int rv;

	d->tail.head_fd = -1;
	d->tail.next_check_ns = bk_now_mono_ns() + BK_TAIL_CHECK_NS;
	if ((rv = note_identity(d)) < 0)
		return rv;
	bk_tail_publish(d);
	if ((rv = bk_audit_head_path(d->cfg.audit_path, path, sizeof(path))) < 0)
		return rv;
	bk_audit_head_read(path, &old); /* only for its gen: boot judged it already */
	return head_file_write(d, old.gen + 1);
}

bool bk_tail_check_head(struct bk_daemon *d)
{
	char path[PATH_MAX + 16];
	struct stat fs, ps;
	int rv;

	if (d->tail.head_fd < 0 || fstat(d->tail.head_fd, &fs) < 0 ||
	    bk_audit_head_path(d->cfg.audit_path, path, sizeof(path)) < 0)
		return false;
	if (fs.st_nlink > 0 && stat(path, &ps) == 0 && ps.st_dev == fs.st_dev &&
	    ps.st_ino == fs.st_ino)
		return false;
	/* a replacement is not ours to keep: the log itself is the evidence */
	if (fs.st_nlink > 0 || lstat(path, &ps) == 0)
		unlink(path);
	rv = head_file_write(d, d->tail.head_gen + 1);
	if (rv < 0)
		bk_err("audit head file %s was removed or replaced under breakerd and "
		       "cannot be written anew: %s (the next boot will fail closed)",
		       path, strerror(-rv));
	else
		bk_warn("audit head file %s was removed or replaced under breakerd: "
		        "written anew (seq %" PRIu64 ")",
		        path, d->tail.head_written);
	return true;
}

bool bk_tail_head_next(struct bk_daemon *d, uint8_t buf[BK_AUDIT_HEAD_SLOT],
                       uint64_t *off, uint64_t *seq)
{
	struct bk_audit_head h;

	if (d->tail.head_fd < 0 || d->audit.durable_seq == d->tail.head_written)
		return false;
	current_head(d, d->tail.head_gen + 1, &h);
	bk_audit_head_encode(&h, buf);
	*off = (h.gen & 1u) * BK_AUDIT_HEAD_SLOT;
	*seq = h.seq;
	d->tail.head_gen = h.gen;
	return true;
}

void bk_tail_head_done(struct bk_daemon *d, uint64_t seq, int res)
{
	if (res < 0) {
		/* The log itself is durable; the next flush writes the head again. */
		if (!d->tail.head_err)
			bk_warn("audit head file write failed: %s", strerror(-res));
		d->tail.head_err = res;
		return;
	}
	if (d->tail.head_err)
		bk_info("audit head file writable again");
	d->tail.head_err = 0;
	d->tail.head_written = seq;
}

/*
 * The identity only (inode, links, device), never the times: asking for
 * mtime/ctime (fstat, stat) marks them queried, so the next write takes a
 * fine-grained timestamp and dirties the inode, and every fdatasync then
 * wrote an ext4 journal block too (one more disk round trip per flush;
 * bench/README.md, issue 16).
 */
static int identity(int dirfd, const char *path, int flags, struct statx *sx)
{
	return statx(dirfd, path, flags, STATX_INO | STATX_NLINK, sx) < 0 ? -errno : 0;
}

bool bk_tail_check(struct bk_daemon *d)
{
	struct statx fs, ps;

	if (d->tail.lost)
		return true;
	if (d->audit.fd < 0 || identity(d->audit.fd, "", AT_EMPTY_PATH, &fs) < 0)
		return false; /* cannot tell: the flush reports real I/O errors */
	if (fs.stx_nlink == 0)
		snprintf(d->tail.why, sizeof(d->tail.why),
		         "audit log %s was unlinked under breakerd (inode %llu)",
		         d->cfg.audit_path, (unsigned long long)fs.stx_ino);
	else if (identity(AT_FDCWD, d->cfg.audit_path, 0, &ps) < 0)
		snprintf(d->tail.why, sizeof(d->tail.why),
		         "audit log %s is gone from its path (%s)", d->cfg.audit_path,
		         strerror(errno));
	else if (makedev(ps.stx_dev_major, ps.stx_dev_minor) != d->tail.dev ||
	         ps.stx_ino != d->tail.ino)
		snprintf(
		    d->tail.why, sizeof(d->tail.why),
		    "audit log %s was replaced under breakerd (inode %llu, was %llu)",
		    d->cfg.audit_path, (unsigned long long)ps.stx_ino,
		    (unsigned long long)d->tail.ino);
	else
		return false;
	d->tail.lost = true;
	bk_err("%s: trips hold but are not durable, resumes are refused; "
	       "SIGHUP breakerd (systemctl reload) to write the log anew at its path",
	       d->tail.why);
	bk_pending_flush_failed(d, -ESTALE);
	return true;
}

int bk_tail_relink(struct bk_daemon *d)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	char aside[PATH_MAX + 64], text[768];
	int rv;

	d->tail.relink_wanted = false;
	if (!d->tail.lost)
		return 0;
	rv = bk_audit_relink(&d->audit, d->cfg.audit_path, aside, sizeof(aside));
	if (rv == 0)
		rv = note_identity(d);
	if (rv < 0) {
		bk_err("cannot write the audit log anew at %s: %s (still lost)",
		       d->cfg.audit_path, strerror(-rv));
		return rv;
	}
	snprintf(text, sizeof(text),
	         "%s; rewritten at its path from breakerd's open copy (seq 1-%" PRIu64
	         ", %" PRIu64 " bytes)%s%s",
	         d->tail.why, d->audit.durable_seq, d->audit.end,
	         aside[0] ? "; the file found there is kept as " : "", aside);
	rec.has_kind = 1;
	rec.kind = BREAKER__AUDIT_RECORD__KIND__LOG_RELINKED;
	rec.reason = text;
	if (aside[0])
		rec.log_aside = aside;
	d->tail.lost = false;
	d->tail.why[0] = '\0';
	bk_warn("%s", text);
	if (bk_record_stage_system(d, &rec) < 0)
		bk_err("cannot stage the LOG_RELINKED record");
	return 0;
}

void bk_tail_close(struct bk_daemon *d)
{
	if (d->tail.head_fd >= 0)
		close(d->tail.head_fd);
	d->tail.head_fd = -1;
}
