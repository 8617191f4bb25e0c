/*
 * bk_audit - the append-only, hash-chained audit log (format: bk_audit.h).
 *
 * Nothing here keeps state outside struct bk_audit, and nothing on the
 * staging path (bk_audit_stage, flush_begin/flush_done) allocates: the two
 * batch buffers are allocated at open.
 */
/*
 * The low-level SHA256_Init/Update/Final are deprecated in OpenSSL 3 but not
 * removed. They are used on purpose: SHA256() and EVP_Digest() fetch the
 * algorithm and allocate a context on every call in 3.0 (three allocations
 * per call, measured), and the staging path must not allocate.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "bk_audit.h"

#define AUDIT_VERSION 1u
#define SCAN_BUF      (64u * 1024u) /* read-ahead of a scan: holds any whole frame */
#define COPY_BUF      (64u * 1024u)

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t get_le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void chain_hash(const uint8_t *payload, size_t len, uint8_t out[BK_AUDIT_HASH_LEN])
{
	SHA256_CTX c;

	SHA256_Init(&c);
	SHA256_Update(&c, payload, len);
	SHA256_Final(out, &c);
}

static void make_header(uint8_t hdr[BK_AUDIT_HDR_SIZE])
{
	memcpy(hdr, BK_AUDIT_MAGIC, 8);
	put_le32(hdr + 8, AUDIT_VERSION);
	put_le32(hdr + 12, 0);
}

static const uint8_t zero_chunk[BK_AUDIT_PREZERO_CHUNK];

const uint8_t *bk_audit_zeros(void)
{
	return zero_chunk;
}

/* Reads up to len bytes at off; fewer only at end of file. Bytes read or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(fd, (uint8_t *)buf + done, len - done, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

/* Writes all of buf at off, across short writes. 0 or -errno. */
static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* cannot happen for a regular file; never spin */
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

/* A new or renamed file is only durable once its directory entry is. */
static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, err = 0;

	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, slash - path);
		dir[slash - path] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

static bool header_ok(const uint8_t *h)
{
	return memcmp(h, BK_AUDIT_MAGIC, 8) == 0 && get_le32(h + 8) == AUDIT_VERSION &&
	       (get_le32(h + 12) & ~BK_AUDIT_F_PREZERO) == 0;
}

/*
 * Scanning.
 *
 * A crash (kill -9, a write cut short) can leave the end of the log
 * half-written: the last frame cut short. That is a torn tail, repaired by
 * cutting it off (the cut bytes are kept aside). Anything else is corruption
 * or tampering, also at the very end: a whole frame whose CRC fails, zeros
 * where frames were, a frame whose CRC holds but whose record does not decode
 * or does not link to the one before. The log is then only trusted up to the
 * frame before it. What the file alone cannot show (records cut off at a
 * frame boundary, a rollback to an earlier copy) the durable head shows:
 * bk_audit_check_head.
 */
struct scan_rd {
	int fd;
	uint64_t file_len;
	bool prezero;       /* the header says the file may end in zeros */
	uint64_t zero_from; /* prezero: only zeros from here to the end of the file */
	uint8_t *buf;       /* SCAN_BUF bytes */
	uint64_t base;      /* file offset of buf[0] */
	size_t have;
};

/*
 * Open path for reading through a scan buffer (r->fd, r->file_len, r->buf).
 * 0, or -errno with nothing left open; r->file_len is set once fstat said it.
 */
static int rd_open(struct scan_rd *r, const char *path)
{
	struct stat st;
	int err;

	memset(r, 0, sizeof(*r));
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	if (fstat(r->fd, &st) < 0) {
		err = -errno;
		close(r->fd);
		return err;
	}
	r->file_len = st.st_size;
	r->buf = malloc(SCAN_BUF);
	if (!r->buf) {
		close(r->fd);
		return -ENOMEM;
	}
	return 0;
}

static void rd_close(struct scan_rd *r)
{
	free(r->buf);
	close(r->fd);
}

/* Point *p at the file's bytes [off, off + len); the caller knows they exist. */
static int rd_get(struct scan_rd *r, uint64_t off, size_t len, const uint8_t **p)
{
	size_t want = SCAN_BUF;
	ssize_t n;

	if (off < r->base || off + len > r->base + r->have) {
		if (r->file_len - off < want)
			want = r->file_len - off;
		n = pread_full(r->fd, r->buf, want, off);
		if (n < 0)
			return n;
		if ((size_t)n < len)
			return -EIO; /* the file shrank under the scan */
		r->base = off;
		r->have = n;
	}
	*p = r->buf + (off - r->base);
	return 0;
}

/*
 * 1 if a whole, CRC-valid frame starts anywhere in [from, end of file), else
 * 0, or -errno. Only called on the short region after a frame that claims
 * to run past the end (< BK_AUDIT_RECORD_MAX + 8 bytes), so it is bounded.
 */
static int rd_frame_after(struct scan_rd *r, uint64_t from)
{
	const uint8_t *p = NULL;
	uint64_t off;
	uint32_t len;
	int err;

	for (off = from; off + BK_AUDIT_FRAME_HDR < r->file_len; off++) {
		if ((err = rd_get(r, off, BK_AUDIT_FRAME_HDR, &p)) != 0)
			return err;
		len = get_le32(p);
		if (len == 0 || len > BK_AUDIT_RECORD_MAX ||
		    r->file_len - off - BK_AUDIT_FRAME_HDR < len)
			continue;
		if ((err = rd_get(r, off, BK_AUDIT_FRAME_HDR + len, &p)) != 0)
			return err;
		if (bk_crc32c(0, p + BK_AUDIT_FRAME_HDR, len) == get_le32(p + 4))
			return 1;
	}
	return 0;
}

static int stop_at(struct bk_audit_scan *s, enum bk_audit_verdict v, uint64_t off,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Ends the scan at the frame at off; returns 1, "the scan stops here". */
static int stop_at(struct bk_audit_scan *s, enum bk_audit_verdict v, uint64_t off,
                   const char *fmt, ...)
{
	va_list ap;
	int n;

	s->verdict = v;
	n = snprintf(s->why, sizeof(s->why), "record %" PRIu64 " at offset %" PRIu64 ": ",
	             s->last_seq + 1, off);
	if (n < 0 || (size_t)n >= sizeof(s->why))
		return 1;
	va_start(ap, fmt);
	vsnprintf(s->why + n, sizeof(s->why) - n, fmt, ap);
	va_end(ap);
	return 1;
}

/*
 * A frame that fails its own checks (length, CRC) at off. The daemon writes
 * whole frames with one write and acknowledges nothing before the fsync, so
 * a crash (kill -9, a write cut short) leaves at most a frame cut short at
 * the end of the file: that is the only torn tail (check_frame). A whole
 * frame with a bad CRC, or zeros where frames were, is damage wherever it
 * is, also at the very end: cutting it would silently drop records that may
 * have been acknowledged (a byte flipped in, or zeros written over, the last
 * emergency stop). On filesystems that can expose zero-filled blocks after a
 * power cut (XFS, ext4 data=writeback) that fails closed too: see
 * docs/audit-log.md.
 */
static int bad_frame(struct bk_audit_scan *s, uint64_t off, const char *what)
{
	return stop_at(s, BK_AUDIT_CORRUPT, off, "%s", what);
}

/* A CRC-valid record that does not follow the last one was changed on purpose. */
static int check_link(struct bk_audit_scan *s, uint64_t off,
                      const Breaker__AuditRecord *rec)
{
	uint64_t want = s->last_seq + 1;

	if (!rec->has_seq)
		return stop_at(s, BK_AUDIT_CORRUPT, off, "no seq");
	if (rec->seq != want)
		return stop_at(s, BK_AUDIT_CORRUPT, off,
		               "seq is %" PRIu64 ", expected %" PRIu64,
		               (uint64_t)rec->seq, want);
	if (rec->has_prev_hash && rec->prev_hash.len == BK_AUDIT_HASH_LEN &&
	    memcmp(rec->prev_hash.data, s->last_hash, BK_AUDIT_HASH_LEN) == 0)
		return 0;
	if (want == 1)
		return stop_at(s, BK_AUDIT_CORRUPT, off,
		               "prev_hash of the first record is not zero");
	return stop_at(s, BK_AUDIT_CORRUPT, off,
	               "prev_hash does not match record %" PRIu64, s->last_seq);
}

/*
 * In a preallocated log a write cut short (kill -9 mid-write: the kernel
 * copies a page at a time) leaves the frame's bytes up to a page boundary
 * and the preallocated zeros after it, where an appended log would end. The
 * earliest such cut is the first page boundary at or after the last
 * non-zero byte: a frame that fails its checks and runs past it is a torn
 * tail; one that ends before it was written whole, and is damage.
 */
#define PREZERO_PAGE 4096u
static uint64_t prezero_cut(const struct scan_rd *r)
{
	return (r->zero_from + PREZERO_PAGE - 1) / PREZERO_PAGE * PREZERO_PAGE;
}

/* A verified frame, not yet counted in the scan. */
struct frame {
	Breaker__AuditRecord *rec; /* the caller frees it */
	uint64_t end;
	uint8_t hash[BK_AUDIT_HASH_LEN];
};

/*
 * Verifies the frame at off. Returns 0 with *f filled, 1 if the scan ends
 * here (verdict set), or -errno.
 */
static int check_frame(struct scan_rd *r, struct bk_audit_scan *s, uint64_t off,
                       struct frame *f)
{
	uint64_t left = r->file_len - off;
	Breaker__AuditRecord *rec;
	const uint8_t *p = NULL;
	char what[48];
	uint32_t len;
	int err;

	if (left < BK_AUDIT_FRAME_HDR)
		return stop_at(s, BK_AUDIT_TORN_TAIL, off,
		               "frame header cut short (%" PRIu64 " of 8 bytes)", left);
	if (r->prezero && off + BK_AUDIT_FRAME_HDR > prezero_cut(r))
		return stop_at(s, BK_AUDIT_TORN_TAIL, off,
		               "frame header cut short at offset %" PRIu64
		               " (zeros after it)",
		               prezero_cut(r));
	err = rd_get(r, off, BK_AUDIT_FRAME_HDR, &p);
	if (err)
		return err;
	len = get_le32(p);
	if (len == 0 || len > BK_AUDIT_RECORD_MAX) {
		snprintf(what, sizeof(what), "frame length %" PRIu32 " out of range",
		         len);
		return bad_frame(s, off, what);
	}
	if (left - BK_AUDIT_FRAME_HDR < len) {
		/* A length word bent past the end with whole records after it is
		 * damage, not a crash: a torn frame is the last thing written. */
		err = rd_frame_after(r, off + 1);
		if (err < 0)
			return err;
		if (err)
			return stop_at(s, BK_AUDIT_CORRUPT, off,
			               "frame length %" PRIu32 " runs past the end, but "
			               "whole records follow it",
			               len);
		return stop_at(s, BK_AUDIT_TORN_TAIL, off,
		               "frame cut short (%" PRIu32 "-byte record, %" PRIu64
		               " bytes left)",
		               len, left - BK_AUDIT_FRAME_HDR);
	}
	err = rd_get(r, off, BK_AUDIT_FRAME_HDR + len, &p);
	if (err)
		return err;
	if (bk_crc32c(0, p + BK_AUDIT_FRAME_HDR, len) != get_le32(p + 4)) {
		if (r->prezero && off + BK_AUDIT_FRAME_HDR + len > prezero_cut(r))
			return stop_at(s, BK_AUDIT_TORN_TAIL, off,
			               "frame cut short at offset %" PRIu64 " (%" PRIu32
			               "-byte record, zeros after it)",
			               prezero_cut(r), len);
		return bad_frame(s, off, "CRC mismatch");
	}
	/* A crash does not write a matching CRC over garbage: this was written so. */
	rec = breaker__audit_record__unpack(NULL, len, p + BK_AUDIT_FRAME_HDR);
	if (!rec)
		return stop_at(s, BK_AUDIT_CORRUPT, off,
		               "CRC matches but the record does not decode");
	if (check_link(s, off, rec)) {
		breaker__audit_record__free_unpacked(rec, NULL);
		return 1;
	}
	chain_hash(p + BK_AUDIT_FRAME_HDR, len, f->hash);
	f->end = off + BK_AUDIT_FRAME_HDR + len;
	f->rec = rec;
	return 0;
}

/*
 * A preallocated log (BK_AUDIT_F_PREZERO) ends in zeros written ahead of
 * the records: r->zero_from is where the last run of zeros to the end of
 * the file starts (never inside the header). Read backwards a buffer at a time.
 */
static int find_zero_tail(struct scan_rd *r)
{
	uint64_t end = r->file_len;

	while (end > BK_AUDIT_HDR_SIZE) {
		uint64_t from = end - BK_AUDIT_HDR_SIZE > SCAN_BUF ? end - SCAN_BUF
		                                                   : BK_AUDIT_HDR_SIZE;
		ssize_t n = pread_full(r->fd, r->buf, end - from, from);

		if (n < 0)
			return (int)n;
		if ((uint64_t)n != end - from)
			return -EIO; /* the file shrank under the scan */
		r->have = 0;         /* the read-ahead holds nothing now */
		for (size_t i = (size_t)n; i > 0; i--)
			if (r->buf[i - 1]) {
				r->zero_from = from + i;
				return 0;
			}
		end = from;
	}
	r->zero_from = BK_AUDIT_HDR_SIZE;
	return 0;
}

/*
 * Returns 1 when frames follow a good header, 0 when the verdict is already
 * known, or -errno. A 0-byte file is a log whose creation was cut short
 * before the header was durable: TORN_TAIL with valid_len 0, which
 * bk_audit_truncate leaves empty and bk_audit_open then gives a header. It
 * held no record, so nothing is lost; callers that must tell it from a log
 * wiped on purpose can look at scan->file_len == 0.
 */
static int check_header(struct scan_rd *r, struct bk_audit_scan *s)
{
	const uint8_t *h = NULL;
	int err;

	if (r->file_len == 0) {
		s->verdict = BK_AUDIT_TORN_TAIL;
		snprintf(s->why, sizeof(s->why),
		         "empty file: the header was never written");
		return 0;
	}
	s->verdict = BK_AUDIT_BAD_HEADER;
	if (r->file_len < BK_AUDIT_HDR_SIZE) {
		snprintf(s->why, sizeof(s->why),
		         "%" PRIu64 " bytes, too short for a header", r->file_len);
		return 0;
	}
	err = rd_get(r, 0, BK_AUDIT_HDR_SIZE, &h);
	if (err)
		return err;
	if (memcmp(h, BK_AUDIT_MAGIC, 8) != 0)
		snprintf(s->why, sizeof(s->why),
		         "no " BK_AUDIT_MAGIC " magic: not an audit log");
	else if (get_le32(h + 8) != AUDIT_VERSION)
		snprintf(s->why, sizeof(s->why), "unknown format version %" PRIu32,
		         get_le32(h + 8));
	else if ((get_le32(h + 12) & ~BK_AUDIT_F_PREZERO) != 0)
		snprintf(s->why, sizeof(s->why),
		         "reserved header word has unknown flags 0x%" PRIx32,
		         get_le32(h + 12));
	else {
		r->prezero = get_le32(h + 12) & BK_AUDIT_F_PREZERO;
		if (r->prezero && (err = find_zero_tail(r)) != 0)
			return err;
		s->data_len = r->zero_from;
		s->verdict = BK_AUDIT_OK;
		s->valid_len = BK_AUDIT_HDR_SIZE;
		return 1;
	}
	return 0;
}

/*
 * A record counts as verified once the callback has taken it: if the caller
 * refuses one, the scan describes the records before it.
 */
static int scan_frames(struct scan_rd *r, bk_audit_record_fn fn, void *arg,
                       uint64_t at_seq, struct bk_audit_scan *s)
{
	struct frame f;
	uint64_t off;
	int ret;

	for (off = s->valid_len; off < r->file_len; off = s->valid_len) {
		/* zeros from a frame boundary to the end: the preallocated space
		 * after the last record, not a record (zeros over records that
		 * were durable show against the durable head: bk_audit_check_head) */
		if (r->prezero && off >= r->zero_from)
			break;
		ret = check_frame(r, s, off, &f);
		if (ret)
			return ret < 0 ? ret : 0;
		ret = fn ? fn(f.rec, off, arg) : 0;
		breaker__audit_record__free_unpacked(f.rec, NULL);
		if (ret) {
			snprintf(s->why, sizeof(s->why),
			         "record %" PRIu64 " at offset %" PRIu64
			         ": scan stopped by the caller",
			         s->last_seq + 1, off);
			return ret;
		}
		memcpy(s->last_hash, f.hash, BK_AUDIT_HASH_LEN);
		s->last_seq++;
		s->records++;
		s->valid_len = f.end;
		if (at_seq && s->last_seq == at_seq) {
			s->at_found = true;
			s->at_end = f.end;
			memcpy(s->at_hash, f.hash, BK_AUDIT_HASH_LEN);
		}
	}
	s->verdict = BK_AUDIT_OK;
	return 0;
}

int bk_audit_scan(const char *path, bk_audit_record_fn fn, void *arg,
                  struct bk_audit_scan *scan)
{
	return bk_audit_scan_to(path, fn, arg, 0, scan);
}

int bk_audit_scan_to(const char *path, bk_audit_record_fn fn, void *arg, uint64_t at_seq,
                     struct bk_audit_scan *scan)
{
	struct scan_rd r;
	int err;

	memset(scan, 0, sizeof(*scan));
	err = rd_open(&r, path);
	scan->file_len = scan->data_len = r.file_len;
	r.zero_from = r.file_len;
	if (err)
		return err;
	err = check_header(&r, scan);
	if (err > 0)
		err = scan_frames(&r, fn, arg, at_seq, scan);
	/* a last record may itself end in zero bytes */
	if (scan->data_len < scan->valid_len)
		scan->data_len = scan->valid_len;
	rd_close(&r);
	return err;
}

/*
 * Opening.
 *
 * open never trusts a scan that no longer describes the file: the file must
 * be exactly the verified prefix, or else appending would chain onto bytes
 * nobody verified. -EINVAL then: repair or scan again.
 */

/* No verified record: the file must be empty (header written here) or a bare header. */
static int open_new(struct bk_audit *a, const char *path, uint64_t size)
{
	uint8_t hdr[BK_AUDIT_HDR_SIZE];
	ssize_t n;
	int err;

	a->next_seq = 1;
	a->end = BK_AUDIT_HDR_SIZE;
	if (size == BK_AUDIT_HDR_SIZE) {
		n = pread_full(a->fd, hdr, sizeof(hdr), 0);
		if (n < 0)
			return n;
		a->prezero =
		    n == sizeof(hdr) && (get_le32(hdr + 12) & BK_AUDIT_F_PREZERO);
		a->alloc_end = size;
		return n == sizeof(hdr) && header_ok(hdr) ? 0 : -EINVAL;
	}
	if (size != 0)
		return -EINVAL;
	make_header(hdr);
	err = pwrite_full(a->fd, hdr, sizeof(hdr), 0);
	if (err)
		return err;
	a->alloc_end = BK_AUDIT_HDR_SIZE;
	if (fsync(a->fd) < 0)
		return -errno;
	return fsync_parent(path);
}

static int open_existing(struct bk_audit *a, const struct bk_audit_scan *scan,
                         uint64_t size)
{
	uint8_t hdr[BK_AUDIT_HDR_SIZE];
	ssize_t n;

	/* a preallocated log: the scan saw only zeros after the records */
	if (size != scan->valid_len &&
	    (size != scan->file_len || scan->data_len != scan->valid_len))
		return -EINVAL;
	n = pread_full(a->fd, hdr, sizeof(hdr), 0);
	if (n < 0)
		return n;
	if (n != sizeof(hdr) || !header_ok(hdr))
		return -EINVAL;
	a->prezero = get_le32(hdr + 12) & BK_AUDIT_F_PREZERO;
	if (!a->prezero && size != scan->valid_len)
		return -EINVAL;
	a->alloc_end = size;
	a->next_seq = scan->last_seq + 1;
	a->durable_seq = scan->last_seq;
	a->staged_last_seq = scan->last_seq;
	a->end = scan->valid_len;
	memcpy(a->last_hash, scan->last_hash, BK_AUDIT_HASH_LEN);
	memcpy(a->durable_hash, scan->last_hash, BK_AUDIT_HASH_LEN);
	return 0;
}

/*
 * Not O_APPEND: the loop writes at explicit offsets, and a failed flush is
 * retried at the same offset over whatever part of it reached the file.
 * Only a new log is created: if a log with records vanished since its scan,
 * an empty file in its place would later pass for a harmless torn header.
 */
int bk_audit_open(struct bk_audit *a, const char *path, const struct bk_audit_scan *scan)
{
	bool fresh = !scan || scan->valid_len < BK_AUDIT_HDR_SIZE;
	struct stat st;
	int err;

	memset(a, 0, sizeof(*a));
	a->fd = -1;
	a->staged = malloc(BK_AUDIT_BATCH_BYTES);
	a->flight = malloc(BK_AUDIT_BATCH_BYTES);
	if (!a->staged || !a->flight) {
		err = -ENOMEM;
		goto err;
	}
	a->fd = open(path, O_RDWR | O_CLOEXEC | (fresh ? O_CREAT : 0), 0640);
	if (a->fd < 0) {
		err = -errno;
		goto err;
	}
	if (fstat(a->fd, &st) < 0) {
		err = -errno;
		goto err;
	}
	if (!S_ISREG(st.st_mode))
		err = -EINVAL;
	else if (fresh)
		err = open_new(a, path, st.st_size);
	else
		err = open_existing(a, scan, st.st_size);
	if (err)
		goto err;
	return 0;
err:
	bk_audit_close(a);
	return err;
}

void bk_audit_close(struct bk_audit *a)
{
	free(a->staged);
	free(a->flight);
	if (a->fd >= 0)
		close(a->fd);
	memset(a, 0, sizeof(*a));
	a->fd = -1;
}

/*
 * Staging and flushing.
 *
 * The two buffers are independent: records are staged into one while the
 * other is being written, so a slow fsync does not shrink what can be staged.
 * A failed flush keeps its bytes in the flight buffer (flight_len stays
 * non-zero, in_flight goes false) and the next flush_begin hands out exactly
 * those again, at the same offset, before anything staged since. Putting
 * them back into the staged buffer instead could need twice its room.
 */

/*
 * rec->prev_hash points at a->last_hash only while packing: the hash is
 * replaced by this record's right after, so it is cleared before returning
 * rather than left pointing at bytes that no longer mean what it says.
 * On failure nothing changes and rec->seq is cleared too.
 */
int64_t bk_audit_stage(struct bk_audit *a, Breaker__AuditRecord *rec)
{
	uint8_t *frame;
	size_t len;
	int64_t ret;

	rec->has_seq = 1;
	rec->seq = a->next_seq;
	rec->has_prev_hash = 1;
	rec->prev_hash.len = BK_AUDIT_HASH_LEN;
	rec->prev_hash.data = a->last_hash;
	len = breaker__audit_record__get_packed_size(rec);
	if (len > BK_AUDIT_RECORD_MAX) {
		ret = -E2BIG;
		goto out;
	}
	if (BK_AUDIT_FRAME_HDR + len > BK_AUDIT_BATCH_BYTES - a->staged_len) {
		ret = -ENOBUFS;
		goto out;
	}
	frame = a->staged + a->staged_len;
	breaker__audit_record__pack(rec, frame + BK_AUDIT_FRAME_HDR);
	put_le32(frame, len);
	put_le32(frame + 4, bk_crc32c(0, frame + BK_AUDIT_FRAME_HDR, len));
	chain_hash(frame + BK_AUDIT_FRAME_HDR, len, a->last_hash);
	a->staged_len += BK_AUDIT_FRAME_HDR + len;
	a->staged_last_seq = a->next_seq;
	ret = a->next_seq++;
out:
	rec->has_prev_hash = 0;
	rec->prev_hash.len = 0;
	rec->prev_hash.data = NULL;
	if (ret < 0) {
		rec->has_seq = 0;
		rec->seq = 0;
	}
	return ret;
}

bool bk_audit_flush_ready(const struct bk_audit *a)
{
	return !a->in_flight && (a->flight_len > 0 || a->staged_len > 0);
}

/* Called when not ready it hands out nothing (*len = 0) and changes nothing. */
void bk_audit_flush_begin(struct bk_audit *a, const uint8_t **buf, size_t *len,
                          uint64_t *offset)
{
	uint8_t *tmp;

	*offset = a->end;
	*buf = NULL;
	*len = 0;
	if (!bk_audit_flush_ready(a))
		return;
	if (a->flight_len == 0) {
		tmp = a->flight;
		a->flight = a->staged;
		a->flight_len = a->staged_len;
		a->flight_last_seq = a->staged_last_seq;
		/* everything staged goes: its last record is the chain's last */
		memcpy(a->flight_hash, a->last_hash, BK_AUDIT_HASH_LEN);
		a->staged = tmp;
		a->staged_len = 0;
	}
	a->in_flight = true;
	*buf = a->flight;
	*len = a->flight_len;
}

/*
 * On failure the retry rewrites the bytes rather than only fsyncing again:
 * after a failed fsync the kernel may have dropped the dirty pages, and a
 * second fsync can then succeed without them being on disk.
 */
void bk_audit_flush_done(struct bk_audit *a, int res)
{
	if (!a->in_flight)
		return;
	a->in_flight = false;
	if (res != 0)
		return;
	a->end += a->flight_len;
	a->durable_seq = a->flight_last_seq;
	memcpy(a->durable_hash, a->flight_hash, BK_AUDIT_HASH_LEN);
	a->flight_len = 0;
}

int bk_audit_prezero(struct bk_audit *a)
{
	uint8_t flags[4];
	uint64_t from = a->alloc_end > a->end ? a->alloc_end : a->end;
	int err;

	if (a->in_flight || a->flight_len || a->staged_len)
		return -EBUSY;
	if (!a->prezero) { /* one aligned 4-byte word: written whole or not */
		put_le32(flags, BK_AUDIT_F_PREZERO);
		if ((err = pwrite_full(a->fd, flags, sizeof(flags), 12)) != 0)
			return err;
		a->prezero = true;
	}
	if (a->alloc_end < a->end + BK_AUDIT_PREZERO_LOW && bk_audit_room_for_zeros(a)) {
		if ((err = pwrite_full(a->fd, zero_chunk, sizeof(zero_chunk), from)) !=
		    0) {
			/* give back what part of it took: a full disk stays as full */
			if (ftruncate(a->fd, (off_t)from) < 0)
				err = -errno;
			return err;
		}
		a->alloc_end = from + sizeof(zero_chunk);
	}
	return fdatasync(a->fd) < 0 ? -errno : 0;
}

bool bk_audit_room_for_zeros(const struct bk_audit *a)
{
	struct statvfs vfs;

	return fstatvfs(a->fd, &vfs) == 0 &&
	       (uint64_t)vfs.f_bavail * vfs.f_frsize >= 8ull * BK_AUDIT_PREZERO_CHUNK;
}

bool bk_audit_extend_wanted(const struct bk_audit *a, uint64_t written_end, uint64_t *off,
                            size_t *len)
{
	uint64_t from = a->alloc_end > written_end ? a->alloc_end : written_end;

	if (!a->prezero || a->fd < 0 || a->alloc_end > written_end + BK_AUDIT_PREZERO_LOW)
		return false;
	*off = from;
	*len = BK_AUDIT_PREZERO_CHUNK;
	return true;
}

void bk_audit_extend_done(struct bk_audit *a, uint64_t off, size_t len, int res)
{
	if (res == 0 && off + len > a->alloc_end)
		a->alloc_end = off + len;
	/* nothing was written at or past off but these zeros (bk_loop.c) */
	else if (res != 0 && ftruncate(a->fd, (off_t)off) < 0)
		return; /* the zeros stay: harmless, the next records overwrite them */
}

/* Flushes a failed flush's bytes first, then the staged ones. */
int bk_audit_flush_sync(struct bk_audit *a)
{
	const uint8_t *buf;
	uint64_t off;
	size_t len;
	int err;

	if (a->in_flight)
		return -EBUSY; /* the loop owns the flush in flight */
	while (bk_audit_flush_ready(a)) {
		bk_audit_flush_begin(a, &buf, &len, &off);
		err = pwrite_full(a->fd, buf, len, off);
		/* fdatasync covers the size change, which reading the data needs. */
		if (!err && fdatasync(a->fd) < 0)
			err = -errno;
		bk_audit_flush_done(a, err);
		if (err)
			return err;
	}
	return 0;
}

/*
 * Repair.
 *
 * Both refuse a scan that no longer describes the file (-EINVAL): cutting or
 * copying by a stale valid_len would lose or keep the wrong bytes.
 */

/*
 * Only a torn tail is cut: a corrupt log is evidence and goes through
 * bk_audit_quarantine. Cutting an already cut file again just fsyncs it.
 */
int bk_audit_truncate(const char *path, const struct bk_audit_scan *scan)
{
	struct stat st;
	int fd, err = 0;

	if (scan->verdict != BK_AUDIT_TORN_TAIL && scan->verdict != BK_AUDIT_OK)
		return -EINVAL;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size != scan->valid_len) {
		if ((uint64_t)st.st_size != scan->file_len) {
			err = -EINVAL;
			goto out;
		}
		if (ftruncate(fd, scan->valid_len) < 0) {
			err = -errno;
			goto out;
		}
	}
	if (fsync(fd) < 0)
		err = -errno;
out:
	close(fd);
	return err;
}

static int copy_prefix(int src, int dst, uint64_t len)
{
	uint8_t *buf = malloc(COPY_BUF);
	uint64_t off = 0;
	size_t n;
	ssize_t got;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	while (off < len) {
		n = len - off < COPY_BUF ? len - off : COPY_BUF;
		got = pread_full(src, buf, n, off);
		if (got >= 0 && (size_t)got != n)
			got = -EIO; /* the file shrank under us */
		if (got < 0) {
			err = got;
			break;
		}
		err = pwrite_full(dst, buf, n, off);
		if (err)
			break;
		off += n;
	}
	free(buf);
	return err;
}

/* The new log at tmp: the verified prefix, or a bare header if not even that. */
static int write_repaired(int src, const char *tmp, mode_t mode, uint64_t valid_len)
{
	uint8_t hdr[BK_AUDIT_HDR_SIZE];
	int fd, err;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode & 0777) < 0) {
		err = -errno;
		goto out;
	}
	if (valid_len < BK_AUDIT_HDR_SIZE) {
		make_header(hdr);
		err = pwrite_full(fd, hdr, sizeof(hdr), 0);
	} else {
		err = copy_prefix(src, fd, valid_len);
	}
	if (!err && fsync(fd) < 0)
		err = -errno;
out:
	close(fd);
	return err;
}

/* Another name for the damaged file, "<path>.<tag>.<time>[.<n>]", never taken. */
static int link_aside_as(const char *path, const char *tag, char *name, size_t size)
{
	long long now = time(NULL);
	int i, n;

	for (i = 0; i < 1000; i++) {
		if (i == 0)
			n = snprintf(name, size, "%s.%s.%lld", path, tag, now);
		else
			n = snprintf(name, size, "%s.%s.%lld.%d", path, tag, now, i);
		if (n < 0 || (size_t)n >= size)
			return -ENAMETOOLONG;
		if (link(path, name) == 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/*
 * The damaged file is hard-linked aside and the repaired copy renamed over
 * path, rather than renaming path away first: at every point of a crash path
 * names a whole log (the damaged one, or the repaired one) and the aside name
 * is the untouched original inode.
 */
int bk_audit_quarantine(const char *path, const struct bk_audit_scan *scan, char *aside,
                        size_t aside_len)
{
	char tmp[PATH_MAX], name[PATH_MAX];
	size_t name_len = aside && aside_len < sizeof(name) ? aside_len : sizeof(name);
	struct stat st;
	int src, err;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.repair", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return -errno;
	if (fstat(src, &st) < 0) {
		err = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size != scan->file_len || scan->valid_len > scan->file_len) {
		err = -EINVAL;
		goto out;
	}
	err = write_repaired(src, tmp, st.st_mode, scan->valid_len);
	if (!err)
		err = link_aside_as(path, "corrupt", name, name_len);
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		goto out;
	}
	err = fsync_parent(path);
	if (aside)
		memcpy(aside, name, strlen(name) + 1);
out:
	close(src);
	return err;
}

/*
 * Past the damage.
 *
 * Resync: from the byte after the damaged frame, the next offset where a
 * whole frame with a good CRC decodes as a record. A CRC-32C match by chance
 * on garbage is 1 in 4 billion per position, and the record must decode too.
 */
long bk_audit_scan_rest(const char *path, const struct bk_audit_scan *scan,
                        bk_audit_record_fn fn, void *arg)
{
	struct scan_rd r;
	Breaker__AuditRecord *rec;
	const uint8_t *p = NULL;
	uint64_t off;
	uint32_t len;
	long shown = 0;
	int err = 0;

	if (scan->verdict != BK_AUDIT_CORRUPT || scan->valid_len < BK_AUDIT_HDR_SIZE)
		return 0;
	if ((err = rd_open(&r, path)) != 0)
		return err;
	if (scan->data_len && scan->data_len < r.file_len)
		r.file_len = scan->data_len; /* a preallocated log's zeros: no frames */
	for (off = scan->valid_len + 1; off + BK_AUDIT_FRAME_HDR < r.file_len;) {
		if ((err = rd_get(&r, off, BK_AUDIT_FRAME_HDR, &p)) != 0)
			goto out;
		len = get_le32(p);
		if (len == 0 || len > BK_AUDIT_RECORD_MAX ||
		    r.file_len - off - BK_AUDIT_FRAME_HDR < len) {
			off++;
			continue;
		}
		if ((err = rd_get(&r, off, BK_AUDIT_FRAME_HDR + len, &p)) != 0)
			goto out;
		if (bk_crc32c(0, p + BK_AUDIT_FRAME_HDR, len) != get_le32(p + 4) ||
		    !(rec = breaker__audit_record__unpack(NULL, len,
		                                          p + BK_AUDIT_FRAME_HDR))) {
			off++;
			continue;
		}
		err = fn ? fn(rec, off, arg) : 0;
		breaker__audit_record__free_unpacked(rec, NULL);
		if (err)
			goto out;
		shown++;
		off += BK_AUDIT_FRAME_HDR + len;
	}
out:
	rd_close(&r);
	return err ? err : shown;
}

/* ---- the durable head ---------------------------------------------------------- */

#define HEAD_MAGIC  "BKHEAD01"
#define HEAD_CRC_AT (BK_AUDIT_HEAD_SLOT - 4)

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_le64(const uint8_t *p)
{
	return get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

int bk_audit_head_path(const char *log, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s.head", log);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

void bk_audit_head_encode(const struct bk_audit_head *h, uint8_t out[BK_AUDIT_HEAD_SLOT])
{
	memset(out, 0, BK_AUDIT_HEAD_SLOT);
	memcpy(out, HEAD_MAGIC, 8);
	put_le64(out + 8, h->gen);
	put_le64(out + 16, h->seq);
	put_le64(out + 24, h->end);
	memcpy(out + 32, h->hash, BK_AUDIT_HASH_LEN);
	put_le32(out + HEAD_CRC_AT, bk_crc32c(0, out, HEAD_CRC_AT));
}

static bool head_decode(const uint8_t *in, struct bk_audit_head *h)
{
	if (memcmp(in, HEAD_MAGIC, 8) != 0 ||
	    bk_crc32c(0, in, HEAD_CRC_AT) != get_le32(in + HEAD_CRC_AT))
		return false;
	h->gen = get_le64(in + 8);
	h->seq = get_le64(in + 16);
	h->end = get_le64(in + 24);
	memcpy(h->hash, in + 32, BK_AUDIT_HASH_LEN);
	return true;
}

int bk_audit_head_read(const char *head_path, struct bk_audit_head *h)
{
	uint8_t buf[BK_AUDIT_HEAD_SIZE];
	struct bk_audit_head s[2];
	bool ok[2];
	ssize_t n;
	int fd;

	memset(h, 0, sizeof(*h));
	fd = open(head_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread_full(fd, buf, sizeof(buf), 0);
	close(fd);
	if (n < 0)
		return (int)n;
	memset(buf + n, 0, sizeof(buf) - (size_t)n);
	ok[0] = head_decode(buf, &s[0]);
	ok[1] = head_decode(buf + BK_AUDIT_HEAD_SLOT, &s[1]);
	if (!ok[0] && !ok[1])
		return -EBADMSG;
	*h = s[ok[1] && (!ok[0] || s[1].gen > s[0].gen)];
	return 0;
}

bool bk_audit_check_head(struct bk_audit_scan *scan, const struct bk_audit_head *h,
                         const char *what)
{
	if (!h->seq || scan->verdict == BK_AUDIT_CORRUPT ||
	    scan->verdict == BK_AUDIT_BAD_HEADER)
		return false;
	if (scan->last_seq < h->seq)
		snprintf(scan->why, sizeof(scan->why),
		         "the log ends at seq %" PRIu64 " (%" PRIu64 " bytes), but the "
		         "%s says seq %" PRIu64 " was durable (%" PRIu64 " bytes): "
		         "records were cut off or the log rolled back",
		         scan->last_seq, scan->valid_len, what, h->seq, h->end);
	else if (!scan->at_found || scan->at_end != h->end ||
	         memcmp(scan->at_hash, h->hash, BK_AUDIT_HASH_LEN) != 0)
		snprintf(scan->why, sizeof(scan->why),
		         "record %" PRIu64 " is not the one the %s recorded as durable: "
		         "the log was replaced or rewritten",
		         h->seq, what);
	else
		return false;
	scan->verdict = BK_AUDIT_CORRUPT;
	return true;
}

/* ---- keeping cut bytes, relinking a lost log -------------------------------------- */

/* Copies src's [from, to) to a new file name (0640 like the log), fsynced. */
static int copy_range_to(int src, uint64_t from, uint64_t to, const char *name,
                         mode_t mode)
{
	uint8_t *buf = malloc(COPY_BUF);
	uint64_t off = from;
	ssize_t got;
	size_t n;
	int fd, err = 0;

	if (!buf)
		return -ENOMEM;
	fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	while (!err && off < to) {
		n = to - off < COPY_BUF ? to - off : COPY_BUF;
		got = pread_full(src, buf, n, off);
		if (got >= 0 && (size_t)got != n)
			got = -EIO;
		if (got < 0)
			err = (int)got;
		else
			err = pwrite_full(fd, buf, n, off - from);
		off += n;
	}
	if (!err && fsync(fd) < 0)
		err = -errno;
	close(fd);
	if (err)
		unlink(name);
out:
	free(buf);
	return err;
}

int bk_audit_keep_tail(const char *path, const struct bk_audit_scan *scan, char *aside,
                       size_t aside_len)
{
	long long now = time(NULL);
	struct stat st;
	int src, err = -EEXIST, n;

	if (aside_len)
		aside[0] = '\0';
	if (scan->data_len <= scan->valid_len)
		return 0;
	src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return -errno;
	if (fstat(src, &st) < 0 || (uint64_t)st.st_size != scan->file_len) {
		close(src);
		return -EINVAL;
	}
	for (int i = 0; i < 1000 && err == -EEXIST; i++) {
		n = i ? snprintf(aside, aside_len, "%s.torn.%lld.%d", path, now, i)
		      : snprintf(aside, aside_len, "%s.torn.%lld", path, now);
		if (n < 0 || (size_t)n >= aside_len) {
			err = -ENAMETOOLONG;
			break;
		}
		err = copy_range_to(src, scan->valid_len, scan->data_len, aside,
		                    st.st_mode & 0777);
	}
	close(src);
	if (!err)
		err = fsync_parent(path);
	return err;
}

int bk_audit_relink(struct bk_audit *a, const char *path, char *aside, size_t aside_len)
{
	char tmp[PATH_MAX];
	struct stat st;
	int fd, err;

	if (aside_len)
		aside[0] = '\0';
	if (a->in_flight)
		return -EBUSY;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.relink", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	if (fstat(a->fd, &st) < 0)
		return -errno;
	unlink(tmp); /* a previous attempt's, never a log */
	err = copy_range_to(a->fd, 0, a->end, tmp, st.st_mode & 0777);
	if (err)
		return err;
	if (lstat(path, &st) == 0)
		err = link_aside_as(path, "replaced", aside, aside_len);
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (!err)
		err = fsync_parent(path);
	if (err) {
		unlink(tmp);
		return err;
	}
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	close(a->fd);
	a->fd = fd;
	a->alloc_end = a->end; /* the copy has no zeros ahead: the loop writes them */
	return 0;
}
