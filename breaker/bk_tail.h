/*
 * bk_tail - the audit log's tail integrity while breakerd runs.
 *
 * The durable head (last durable seq, the log's size after it, that record's
 * hash) is published in the segment header at every durable flush, and
 * written to "<log>.head" (fsynced) after it, so that a log cut at a record
 * boundary, rolled back or replaced is caught at the next boot and by
 * `breaker audit --verify`. The head never leads the log: it is taken from
 * what a completed fsync made durable; the head file is written when the log
 * is quiet (1 ms) or 20 ms behind (bk_loop.c), so it may lag by that much.
 *
 * The log's identity (device, inode) is checked after every flush and about
 * once a second: a log unlinked (st_nlink 0) or replaced at its path is
 * "lost": health fails, trips are answered ERR_NOT_DURABLE and resumes are
 * refused until SIGHUP makes breakerd write the log anew at its path from
 * its own open copy (bk_tail_relink).
 */
#ifndef BK_TAIL_H
#define BK_TAIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bk_audit.h"

struct bk_daemon;
struct bk_shm;

#define BK_TAIL_CHECK_NS 1000000000ull /* identity check while idle */

struct bk_tail {
	int head_fd; /* "<log>.head", -1 if it could not be opened */
	uint64_t head_gen;
	uint64_t head_written; /* durable seq the head file holds */
	int head_err;          /* last head-file write error, 0 when fine */
	dev_t dev;
	ino_t ino;
	uint64_t next_check_ns;
	bool lost;          /* the log's path no longer names our file */
	bool relink_wanted; /* SIGHUP while lost: rewrite the log */
	char why[320];      /* what happened to it, for health and status */
};

/*
 * Judge a scan made with bk_audit_scan_to(..., max of the heads' seqs, ...)
 * against the head file's head and the segment's (either may be NULL): a
 * log shorter than a head, or whose record at the higher head's seq differs
 * (or where both heads name the same seq with different hashes), is made
 * CORRUPT with why saying so. True if it was.
 */
bool bk_tail_judge(struct bk_audit_scan *scan, const struct bk_audit_head *file,
                   const struct bk_audit_head *shm);

/* Read the segment's head (seqlock); false if none or being written. */
bool bk_tail_shm_head(const struct bk_shm *shm, struct bk_audit_head *h);

/* Publish the audit log's durable head in the segment header. */
void bk_tail_publish(struct bk_daemon *d);

/*
 * Boot: open (create) the head file, write the current durable head to both
 * slots and fsync; note the log's identity. 0 or -errno.
 */
int bk_tail_boot(struct bk_daemon *d);

/*
 * The next head-file write, if the head file lags the log: the slot's bytes
 * in buf and its offset. False when nothing is to be written.
 */
bool bk_tail_head_next(struct bk_daemon *d, uint8_t buf[BK_AUDIT_HEAD_SLOT],
                       uint64_t *off, uint64_t *seq);
/* That write ended (res 0: written and fsynced). */
void bk_tail_head_done(struct bk_daemon *d, uint64_t seq, int res);

/*
 * Is the log file still at its path? Marks it lost (answering waiting
 * trips ERR_NOT_DURABLE) the first time it is not. Returns true if lost.
 */
bool bk_tail_check(struct bk_daemon *d);

/*
 * Is the head file still at its path? If it was unlinked or replaced, write
 * it anew there (the current head, both slots, fsynced with its directory)
 * and say so: a boot must not find it missing. No head write may be in
 * flight. Returns true if it had to be rewritten.
 */
bool bk_tail_check_head(struct bk_daemon *d);

/* Rewrite a lost log at its path (no flush may be in flight). 0 or -errno. */
int bk_tail_relink(struct bk_daemon *d);

void bk_tail_close(struct bk_daemon *d);

#endif
