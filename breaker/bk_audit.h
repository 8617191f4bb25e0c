/*
 * bk_audit - the append-only, hash-chained audit log.
 *
 * File: a 16-byte header ("BKAUDIT1", u32 version = 1, u32 reserved = 0),
 * then frames: u32 len (LE) | u32 crc32c(payload) (LE) | payload, where the
 * payload is a packed breaker.AuditRecord of at most BK_AUDIT_RECORD_MAX
 * bytes. Each record's prev_hash is the SHA-256 of the previous payload (32
 * zero bytes for the first), and seq counts up from 1 without gaps, so loss,
 * reordering or tampering anywhere breaks the chain.
 *
 * Writing is split so that the daemon's io_uring loop does the I/O: records
 * are staged into a buffer (bk_audit_stage), the loop takes the staged bytes
 * (bk_audit_flush_begin), writes and fsyncs them, and reports the result
 * (bk_audit_flush_done). One flush may cover many records: that is the batched
 * fsync. bk_audit_flush_sync does the same with plain syscalls (boot, tests).
 */
#ifndef BK_AUDIT_H
#define BK_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "breaker.pb-c.h"

#define BK_AUDIT_MAGIC       "BKAUDIT1"
#define BK_AUDIT_HDR_SIZE    16u
#define BK_AUDIT_FRAME_HDR   8u
#define BK_AUDIT_RECORD_MAX  4096u /* payload bytes; records are small by design */
#define BK_AUDIT_HASH_LEN    32u   /* SHA-256 */
#define BK_AUDIT_BATCH_BYTES (2u * 1024u * 1024u) /* > 4096 rule trips in one tick */

/*
 * Preallocation (header word at 12, bit 0 = BK_AUDIT_F_PREZERO; logs made
 * before it have 0 there and stay append-only). The file is kept
 * BK_AUDIT_PREZERO_CHUNK of written zeros ahead of the last record, so a
 * flush overwrites blocks that are already allocated and the file's size
 * does not change: fdatasync then flushes the data alone, with no journal
 * commit for a new size (as PostgreSQL does with its WAL segments). The log
 * ends where zeros start at a frame boundary; a frame that fails its checks
 * and runs past the page boundary where the zeros begin is a write cut
 * short (torn tail); anything else stays corruption (docs/audit-log.md).
 */
#define BK_AUDIT_F_PREZERO     1u
#define BK_AUDIT_PREZERO_CHUNK (1u << 20)   /* zeros written per extension */
#define BK_AUDIT_PREZERO_LOW   (512u << 10) /* extend when less is left */

/* What a scan of a log found. */
enum bk_audit_verdict {
	BK_AUDIT_OK = 0,    /* every frame whole, every CRC and link good */
	BK_AUDIT_TORN_TAIL, /* the last frame is cut short: cut back at valid_len */
	BK_AUDIT_CORRUPT, /* bad CRC/chain/seq before the end: do not trust past valid_len
	                   */
	BK_AUDIT_BAD_HEADER, /* not an audit log at all */
};

struct bk_audit_scan {
	enum bk_audit_verdict verdict;
	uint64_t records;   /* whole, verified records before valid_len */
	uint64_t last_seq;  /* seq of the last verified record (0: none) */
	uint64_t valid_len; /* bytes of the file that verify (header included) */
	uint64_t file_len;
	/* file_len less a preallocated log's zeros (== file_len otherwise) */
	uint64_t data_len;
	uint8_t last_hash[BK_AUDIT_HASH_LEN]; /* SHA-256 of the last verified payload */
	char why[160]; /* for TORN_TAIL/CORRUPT/BAD_HEADER: what and where */
	/* bk_audit_scan_to: the verified record at_seq, if the scan reached it */
	bool at_found;
	uint64_t at_end; /* file offset after it */
	uint8_t at_hash[BK_AUDIT_HASH_LEN];
};

/*
 * Called for each verified record in order; offset is the frame's file
 * offset. A non-zero return stops the scan and is returned by bk_audit_scan.
 */
typedef int (*bk_audit_record_fn)(const Breaker__AuditRecord *rec, uint64_t offset,
                                  void *arg);

/*
 * Read and verify the log at path without changing it. fn may be NULL.
 * Returns 0 (see scan->verdict), a callback's non-zero value, or -errno
 * (-ENOENT for a missing file). A 0-byte file (created, header never
 * written) is TORN_TAIL with valid_len 0: truncate, then open writes the
 * header. Only a last frame cut short (what a crash leaves) is TORN_TAIL; a
 * whole frame with a bad CRC or length, zeros, or a CRC-valid frame that does
 * not decode or link is CORRUPT, also at the very end. What the file alone
 * cannot show (a cut at a frame boundary, a rollback) the durable head does:
 * bk_audit_check_head.
 */
int bk_audit_scan(const char *path, bk_audit_record_fn fn, void *arg,
                  struct bk_audit_scan *scan);

/* The same, also noting the hash and end of the verified record at_seq. */
int bk_audit_scan_to(const char *path, bk_audit_record_fn fn, void *arg, uint64_t at_seq,
                     struct bk_audit_scan *scan);

/*
 * After a scan that stopped at damage (CORRUPT), look past it: resync on the
 * next whole, CRC-valid, decodable frame and hand each such record to fn,
 * unverified (its chain is not checked: it comes after the damage). Returns
 * the number of records handed out, or -errno.
 */
long bk_audit_scan_rest(const char *path, const struct bk_audit_scan *scan,
                        bk_audit_record_fn fn, void *arg);

/*
 * The durable head: the last seq known durable, the end of its frame and its
 * hash, kept where someone who edits the log must also forge it consistently
 * (a head file beside the log, "<log>.head", and the segment header). It may
 * lag the log (written after the log's fsync), never lead it: a log shorter
 * than its head, or whose record at the head's seq differs, was cut, rolled
 * back or replaced.
 *
 * Head file: two 128-byte slots, each "BKHEAD01" | u64 gen | u64 seq | u64
 * end | hash[32] | zeros | u32 crc32c of bytes 0-123 at 124 (all LE). Writers
 * alternate slots (gen even: slot 0), so a torn slot write leaves the other;
 * readers take the valid slot with the higher gen.
 */
#define BK_AUDIT_HEAD_SLOT 128u
#define BK_AUDIT_HEAD_SIZE (2u * BK_AUDIT_HEAD_SLOT)

struct bk_audit_head {
	uint64_t gen;
	uint64_t seq; /* 0: nothing recorded */
	uint64_t end;
	uint8_t hash[BK_AUDIT_HASH_LEN];
};

/* "<log>.head". 0 or -ENAMETOOLONG. */
int bk_audit_head_path(const char *log, char *buf, size_t len);

/* One slot's bytes for h (written at (h->gen & 1) * BK_AUDIT_HEAD_SLOT). */
void bk_audit_head_encode(const struct bk_audit_head *h, uint8_t out[BK_AUDIT_HEAD_SLOT]);

/* Read a head file: 0, -ENOENT, -EBADMSG (no valid slot) or -errno. */
int bk_audit_head_read(const char *head_path, struct bk_audit_head *h);

/*
 * Judge a scan (made with bk_audit_scan_to(..., h->seq, ...)) against a head:
 * a log that ends before h->seq, or whose record h->seq has another hash or
 * end, turns the verdict CORRUPT with why naming what (e.g. "head file").
 * Returns true if the scan was changed.
 */
bool bk_audit_check_head(struct bk_audit_scan *scan, const struct bk_audit_head *h,
                         const char *what);

struct bk_audit {
	int fd;
	uint64_t next_seq;    /* seq the next staged record gets */
	uint64_t durable_seq; /* last seq known to be on disk */
	uint64_t end;         /* file offset after the last durable byte */
	uint8_t last_hash[BK_AUDIT_HASH_LEN];    /* of the last staged record */
	uint8_t durable_hash[BK_AUDIT_HASH_LEN]; /* of record durable_seq */
	uint8_t flight_hash[BK_AUDIT_HASH_LEN];  /* of the flight's last record */
	uint8_t *staged; /* frames staged, not yet handed to a flush */
	size_t staged_len;
	uint64_t staged_last_seq;
	uint8_t *flight; /* frames handed to the current flush, or kept for its retry */
	size_t flight_len;
	uint64_t flight_last_seq;
	bool in_flight;
	bool prezero;       /* BK_AUDIT_F_PREZERO: keep zeros ahead of the records */
	uint64_t alloc_end; /* zeros written and durable up to here */
};

/*
 * Open the log for appending, creating it (with its header, fsynced, and the
 * directory fsynced) if missing. The log must already verify as OK: callers
 * scan first and repair (bk_audit_truncate / bk_audit_quarantine). scan NULL
 * means a new log (file absent, empty or a bare header). Returns 0 or -errno;
 * -EINVAL if the file is not exactly what scan verified.
 */
int bk_audit_open(struct bk_audit *a, const char *path, const struct bk_audit_scan *scan);
void bk_audit_close(struct bk_audit *a);

/*
 * Stage a record: sets rec->seq and rec->prev_hash, packs and frames it.
 * Returns the seq (> 0), -E2BIG if the record is over BK_AUDIT_RECORD_MAX,
 * or -ENOBUFS if the staging buffer is full (flush first). On return
 * rec->prev_hash is cleared (it pointed into *a) and rec->seq is kept.
 */
int64_t bk_audit_stage(struct bk_audit *a, Breaker__AuditRecord *rec);

/* True when bytes wait (staged, or a failed flush's) and no flush is in flight. */
bool bk_audit_flush_ready(const struct bk_audit *a);

/*
 * Hand the staged bytes to a flush: *buf and *len are to be written at
 * *offset and then fsynced. Only one flush is in flight at a time.
 */
void bk_audit_flush_begin(struct bk_audit *a, const uint8_t **buf, size_t *len,
                          uint64_t *offset);

/*
 * The flush ended: res 0 when all bytes are written and fsynced, else -errno.
 * On success durable_seq moves to the flushed records. On failure the bytes
 * stay in front of the staged ones (nothing is lost; the next flush_begin
 * hands out the same bytes at the same offset, the staged ones after them)
 * and durable_seq does not move.
 */
void bk_audit_flush_done(struct bk_audit *a, int res);

/*
 * Turn preallocation on for an open log with nothing staged (breakerd does
 * at boot; a log from before it is upgraded in place): set the header flag,
 * write the first BK_AUDIT_PREZERO_CHUNK of zeros after the records, fsync.
 * Plain syscalls. 0 or -errno (the log then stays as it was, append-only).
 */
int bk_audit_prezero(struct bk_audit *a);

/*
 * Preallocation by the loop: true when zeros should be written ahead now;
 * *off and *len say where (never below written_end, the end of every byte
 * written or being written). Then bk_audit_extend_done with the result.
 * bk_audit_zeros() is BK_AUDIT_PREZERO_CHUNK zero bytes to write from.
 */
bool bk_audit_extend_wanted(const struct bk_audit *a, uint64_t written_end, uint64_t *off,
                            size_t *len);
void bk_audit_extend_done(struct bk_audit *a, uint64_t off, size_t len, int res);
const uint8_t *bk_audit_zeros(void);
/* Free space on the log's filesystem for zeros ahead (8 chunks): a nearly full
 * disk keeps its last blocks for records, not for zeros. */
bool bk_audit_room_for_zeros(const struct bk_audit *a);

/* Write and fsync whatever is staged with plain syscalls. 0 or -errno. */
int bk_audit_flush_sync(struct bk_audit *a);

/* Cut a torn tail: truncate to scan->valid_len and fsync. 0 or -errno. */
int bk_audit_truncate(const char *path, const struct bk_audit_scan *scan);

/*
 * Before a torn tail is cut: copy its bytes [valid_len, file_len) to
 * "<path>.torn.<unix-time>" (fsynced; name in aside), so that a cut never
 * discards anything. 0 or -errno.
 */
int bk_audit_keep_tail(const char *path, const struct bk_audit_scan *scan, char *aside,
                       size_t aside_len);

/*
 * The log's path no longer names a->fd's file (unlinked, or replaced): write
 * the durable bytes [0, a->end) from a->fd to a new file at path (whatever
 * is at path now is linked aside as "<path>.replaced.<time>", named in aside,
 * "" if nothing was there), fsync it and its directory, and append from then
 * on to the new file. Must not be called with a flush in flight. 0 or -errno.
 */
int bk_audit_relink(struct bk_audit *a, const char *path, char *aside, size_t aside_len);

/*
 * A damaged log: rename it aside to "<path>.corrupt.<unix-time>" (kept for
 * the investigation; name in aside), and write a new log at path holding the
 * verified prefix [0, scan->valid_len) byte for byte, fsynced. The chain of
 * the new log is then intact and scan still describes it. 0 or -errno.
 */
int bk_audit_quarantine(const char *path, const struct bk_audit_scan *scan, char *aside,
                        size_t aside_len);

/* CRC32C (Castagnoli), as in the frame header. */
uint32_t bk_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
