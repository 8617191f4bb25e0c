/*
 * test_audit - the audit log: format, chain, torn tails, corruption, repair,
 * and the staged/batched flush. Each test works in its own temporary
 * directory so that Criterion can run them in parallel.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bk_audit.h"

#define MAXR 4096 /* records a test looks at */

/* Each test runs in its own process: these are per test. */
static char dir[64];
static char log_path[128];

static void setup(void)
{
	strcpy(dir, "/tmp/bkaudit.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(log_path, sizeof(log_path), "%s/audit.log", dir);
}

static void teardown(void)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

TestSuite(audit, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------------ */

static uint8_t *read_all(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc(st.st_size + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(read(fd, buf, st.st_size), st.st_size);
	close(fd);
	*len = st.st_size;
	return buf;
}

static void write_all(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void write_at(const char *path, uint64_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
	return st.st_size;
}

static void sha256(const void *buf, size_t len, uint8_t out[32])
{
	unsigned int n = 0;

	cr_assert(EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL));
	cr_assert_eq(n, 32);
}

/* Record i carries these fields, so a scan can check what came back. */
static void fill(Breaker__AuditRecord *rec, char *reason, size_t size, uint64_t i)
{
	breaker__audit_record__init(rec);
	snprintf(reason, size, "reason for record %" PRIu64, i);
	rec->reason = reason;
	rec->strategy = "momo-eu-1";
	rec->has_kind = 1;
	rec->kind = BREAKER__AUDIT_RECORD__KIND__TRIP;
	rec->has_wall_ns = 1;
	rec->wall_ns = 1000000 + i;
	rec->has_uid = 1;
	rec->uid = 1000 + (uint32_t)i;
}

static int64_t stage(struct bk_audit *a, uint64_t i)
{
	Breaker__AuditRecord rec;
	char reason[64];

	fill(&rec, reason, sizeof(reason), i);
	return bk_audit_stage(a, &rec);
}

/* Stage records first..last and flush them. */
static void append(struct bk_audit *a, uint64_t first, uint64_t last)
{
	for (uint64_t i = first; i <= last; i++)
		cr_assert_eq(stage(a, i), (int64_t)i);
	cr_assert_eq(bk_audit_flush_sync(a), 0);
	cr_assert_eq(a->durable_seq, last);
	cr_assert_eq(a->end, file_size(log_path));
}

/* A new log at log_path holding records 1..n. */
static void write_log(uint64_t n)
{
	struct bk_audit a;

	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	append(&a, 1, n);
	bk_audit_close(&a);
}

struct seen {
	uint64_t n;
	uint64_t seq[MAXR];
	uint64_t off[MAXR];
};

/* Checks each record's fields against fill() and notes its seq and offset. */
static int collect(const Breaker__AuditRecord *rec, uint64_t off, void *arg)
{
	struct seen *s = arg;
	char want[64];

	cr_assert_lt(s->n, MAXR);
	cr_assert(rec->has_seq);
	snprintf(want, sizeof(want), "reason for record %" PRIu64, (uint64_t)rec->seq);
	cr_assert_str_eq(rec->reason, want);
	cr_assert_str_eq(rec->strategy, "momo-eu-1");
	cr_assert(rec->has_kind && rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP);
	cr_assert(rec->has_wall_ns && rec->wall_ns == 1000000 + rec->seq);
	cr_assert(rec->has_uid && rec->uid == 1000 + rec->seq);
	s->seq[s->n] = rec->seq;
	s->off[s->n] = off;
	s->n++;
	return 0;
}

static struct seen *scan(struct bk_audit_scan *sc)
{
	struct seen *s = calloc(1, sizeof(*s));

	cr_assert_not_null(s);
	cr_assert_eq(bk_audit_scan(log_path, collect, s, sc), 0);
	cr_assert_eq(s->n, sc->records);
	for (uint64_t i = 0; i < s->n; i++)
		cr_assert_eq(s->seq[i], i + 1, "record %" PRIu64 " has seq %" PRIu64,
		             i + 1, s->seq[i]);
	return s;
}

/* The log's frames, parsed here independently of bk_audit_scan. */
struct frames {
	uint8_t *buf;
	size_t len;
	int n;
	size_t off[MAXR];
	uint32_t plen[MAXR];
};

static void parse(struct frames *f)
{
	size_t off = BK_AUDIT_HDR_SIZE;

	f->buf = read_all(log_path, &f->len);
	f->n = 0;
	cr_assert_geq(f->len, BK_AUDIT_HDR_SIZE);
	while (off < f->len) {
		cr_assert_lt(f->n, MAXR);
		cr_assert_leq(off + 8, f->len);
		f->off[f->n] = off;
		memcpy(&f->plen[f->n], f->buf + off, 4); /* the tests run little-endian */
		off += 8 + f->plen[f->n];
		f->n++;
	}
	cr_assert_eq(off, f->len, "frames do not end at the end of the file");
}

static const uint8_t *payload(const struct frames *f, int k)
{
	return f->buf + f->off[k] + 8;
}

static Breaker__AuditRecord *unpack(const struct frames *f, int k)
{
	Breaker__AuditRecord *rec =
	    breaker__audit_record__unpack(NULL, f->plen[k], payload(f, k));

	cr_assert_not_null(rec);
	return rec;
}

/* Write the log again with frame k replaced by rec (valid CRC), or dropped. */
static void rewrite_frame(const struct frames *f, int k, const Breaker__AuditRecord *rec)
{
	size_t len = rec ? breaker__audit_record__get_packed_size(rec) : 0;
	size_t end_k = f->off[k] + 8 + f->plen[k];
	uint8_t *out = malloc(f->len + len + 8);
	size_t o = f->off[k];
	uint32_t v;

	cr_assert_not_null(out);
	memcpy(out, f->buf, f->off[k]);
	if (rec) {
		breaker__audit_record__pack(rec, out + o + 8);
		v = len;
		memcpy(out + o, &v, 4);
		v = bk_crc32c(0, out + o + 8, len);
		memcpy(out + o + 4, &v, 4);
		o += 8 + len;
	}
	memcpy(out + o, f->buf + end_k, f->len - end_k);
	write_all(log_path, out, o + f->len - end_k);
	free(out);
}

static void assert_why(const struct bk_audit_scan *sc, const char *part)
{
	cr_assert_not_null(strstr(sc->why, part), "why \"%s\" does not say \"%s\"",
	                   sc->why, part);
}

/* ---- CRC32C ------------------------------------------------------------------- */

Test(audit, crc32c_known_vectors)
{
	uint8_t zeros[32] = {0}, ones[32], inc[32];

	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = i;
	cr_assert_eq(bk_crc32c(0, "123456789", 9), 0xE3069283u);
	/* RFC 3720 (iSCSI) B.4 */
	cr_assert_eq(bk_crc32c(0, zeros, 32), 0x8A9136AAu);
	cr_assert_eq(bk_crc32c(0, ones, 32), 0x62A8AB43u);
	cr_assert_eq(bk_crc32c(0, inc, 32), 0x46DD794Eu);
	cr_assert_eq(bk_crc32c(0, "", 0), 0u);
	/* piecewise equals whole */
	cr_assert_eq(bk_crc32c(bk_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

/* ---- writing and scanning ----------------------------------------------------- */

Test(audit, write_then_scan)
{
	struct bk_audit_scan sc;
	struct frames f;
	struct seen *s;
	uint8_t h[32];

	write_log(50);
	s = scan(&sc);
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 50);
	cr_assert_eq(sc.last_seq, 50);
	cr_assert_eq(sc.file_len, file_size(log_path));
	cr_assert_eq(sc.valid_len, sc.file_len);
	parse(&f);
	cr_assert_eq(f.n, 50);
	for (int k = 0; k < 50; k++)
		cr_assert_eq(s->off[k], f.off[k]);
	sha256(payload(&f, 49), f.plen[49], h);
	cr_assert_arr_eq(sc.last_hash, h, 32);
	free(f.buf);
	free(s);
}

/* The bytes on disk, checked against the format alone. */
Test(audit, format_on_disk)
{
	static const uint8_t hdr[16] = {'B', 'K', 'A', 'U', 'D', 'I', 'T', '1',
	                                1,   0,   0,   0,   0,   0,   0,   0};
	uint8_t prev[32] = {0};
	struct frames f;
	uint32_t crc;

	write_log(20);
	parse(&f);
	cr_assert_arr_eq(f.buf, hdr, 16);
	cr_assert_eq(f.n, 20);
	for (int k = 0; k < f.n; k++) {
		Breaker__AuditRecord *rec = unpack(&f, k);

		memcpy(&crc, f.buf + f.off[k] + 4, 4);
		cr_assert_eq(crc, bk_crc32c(0, payload(&f, k), f.plen[k]));
		cr_assert(rec->has_seq && rec->seq == (uint64_t)k + 1);
		cr_assert(rec->has_prev_hash && rec->prev_hash.len == 32);
		cr_assert_arr_eq(rec->prev_hash.data, prev, 32, "record %d: prev_hash",
		                 k + 1);
		sha256(payload(&f, k), f.plen[k], prev);
		breaker__audit_record__free_unpacked(rec, NULL);
	}
	free(f.buf);
}

Test(audit, reopen_continues_chain)
{
	struct bk_audit_scan sc;
	struct bk_audit a;
	struct seen *s;

	write_log(10);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK);
	cr_assert_eq(bk_audit_open(&a, log_path, &sc), 0);
	cr_assert_eq(a.next_seq, 11);
	cr_assert_eq(a.durable_seq, 10);
	cr_assert_eq(a.end, sc.valid_len);
	cr_assert_arr_eq(a.last_hash, sc.last_hash, 32);
	append(&a, 11, 15);
	bk_audit_close(&a);
	s = scan(&sc);
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 15);
	cr_assert_eq(s->seq[14], 15);
	free(s);
}

/* Many batches, and a file several times the scan's read-ahead. */
Test(audit, long_log)
{
	struct bk_audit_scan sc;
	struct bk_audit a;

	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	for (uint64_t i = 1; i <= 3000; i += 500)
		append(&a, i, i + 499);
	bk_audit_close(&a);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 3000);
	cr_assert_gt(sc.file_len, 3 * 64 * 1024);
}

Test(audit, stage_sets_seq_and_clears_prev_hash)
{
	Breaker__AuditRecord rec;
	struct bk_audit a;
	char reason[64];

	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	fill(&rec, reason, sizeof(reason), 1);
	cr_assert_eq(bk_audit_stage(&a, &rec), 1);
	cr_assert(rec.has_seq && rec.seq == 1);
	cr_assert(!rec.has_prev_hash && rec.prev_hash.data == NULL);
	cr_assert_eq(a.next_seq, 2);
	cr_assert_eq(a.durable_seq, 0, "staged is not durable");
	bk_audit_close(&a);
}

/* ---- torn tails ----------------------------------------------------------------- */

Test(audit, torn_mid_record_is_cut_back)
{
	struct bk_audit_scan sc;
	struct bk_audit a;
	struct seen *s;
	uint64_t off10;

	write_log(10);
	s = scan(&sc);
	off10 = s->off[9];
	free(s);
	cr_assert_eq(truncate(log_path, off10 + 8 + 5), 0);
	s = scan(&sc);
	cr_assert_eq(sc.verdict, BK_AUDIT_TORN_TAIL, "%s", sc.why);
	cr_assert_eq(sc.records, 9);
	cr_assert_eq(sc.last_seq, 9);
	cr_assert_eq(sc.valid_len, off10);
	cr_assert_eq(sc.file_len, off10 + 13);
	assert_why(&sc, "record 10");
	free(s);

	cr_assert_eq(bk_audit_truncate(log_path, &sc), 0);
	cr_assert_eq(file_size(log_path), off10);
	cr_assert_eq(bk_audit_truncate(log_path, &sc), 0, "cutting again is harmless");
	/* the scan still describes the cut file: open with it and go on */
	cr_assert_eq(bk_audit_open(&a, log_path, &sc), 0);
	append(&a, 10, 12);
	bk_audit_close(&a);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 12);
}

Test(audit, torn_in_frame_header)
{
	struct bk_audit_scan sc;
	struct seen *s;
	uint64_t off10;

	write_log(10);
	s = scan(&sc);
	off10 = s->off[9];
	free(s);
	cr_assert_eq(truncate(log_path, off10 + 3), 0);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_TORN_TAIL, "%s", sc.why);
	cr_assert_eq(sc.valid_len, off10);
	cr_assert_eq(sc.records, 9);
}

/*
 * Zeros where frames should be: not a crash of breakerd's (a write cut short
 * leaves a frame cut short, never zeros), so corruption, even at the very
 * end; nothing is cut by the scan.
 */
Test(audit, zero_filled_tail_is_corrupt)
{
	static uint8_t zeros[200 * 1024];
	struct bk_audit_scan sc;
	uint64_t size;

	write_log(5);
	size = file_size(log_path);
	write_at(log_path, size, zeros, sizeof(zeros)); /* more than the read-ahead */
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	cr_assert_eq(sc.valid_len, size);
	cr_assert_eq(sc.records, 5);
	cr_assert_eq(bk_audit_truncate(log_path, &sc), -EINVAL, "never cut: quarantined");
}

/* A whole last frame whose payload is zeros (or a flipped byte): corruption. */
Test(audit, zeroed_last_payload_is_corrupt)
{
	uint8_t zeros[BK_AUDIT_RECORD_MAX] = {0};
	struct bk_audit_scan sc;
	struct frames f;

	write_log(6);
	parse(&f);
	write_at(log_path, f.off[5] + 8, zeros, f.plen[5]);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	cr_assert_eq(sc.valid_len, f.off[5]);
	cr_assert_eq(sc.records, 5);
	assert_why(&sc, "CRC mismatch");
	free(f.buf);
}

/* ---- the durable head ----------------------------------------------------------- */

static int at_seq(uint64_t seq, struct bk_audit_scan *sc)
{
	return bk_audit_scan_to(log_path, NULL, NULL, seq, sc);
}

Test(audit, head_file_round_trip_takes_the_newer_slot)
{
	uint8_t slot[BK_AUDIT_HEAD_SLOT];
	struct bk_audit_head h = {.gen = 7, .seq = 42, .end = 4242}, got;
	char hp[160];

	memset(h.hash, 0xab, sizeof(h.hash));
	cr_assert_eq(bk_audit_head_path(log_path, hp, sizeof(hp)), 0);
	write_all(hp, "", 0);
	bk_audit_head_encode(&h, slot);
	write_at(hp, (h.gen & 1) * BK_AUDIT_HEAD_SLOT, slot, sizeof(slot));
	h.gen = 6;
	h.seq = 41;
	bk_audit_head_encode(&h, slot);
	write_at(hp, (h.gen & 1) * BK_AUDIT_HEAD_SLOT, slot, sizeof(slot));
	cr_assert_eq(bk_audit_head_read(hp, &got), 0);
	cr_assert_eq(got.gen, 7);
	cr_assert_eq(got.seq, 42);
	cr_assert_eq(got.end, 4242);
	/* a torn write of the newer slot leaves the older one */
	slot[20] ^= 1;
	write_at(hp, BK_AUDIT_HEAD_SLOT, slot, sizeof(slot)); /* gen 7's slot, bad */
	cr_assert_eq(bk_audit_head_read(hp, &got), 0);
	cr_assert_eq(got.seq, 41);
	write_at(hp, 0, slot, sizeof(slot));
	cr_assert_eq(bk_audit_head_read(hp, &got), -EBADMSG, "no valid slot");
}

/* A log of n records, and a head that matches it (seq, end, hash). */
static void log_and_its_head(int n, struct bk_audit_head *h, struct bk_audit_scan *sc)
{
	write_log(n);
	free(scan(sc));
	h->seq = sc->last_seq;
	h->end = sc->valid_len;
	memcpy(h->hash, sc->last_hash, sizeof(h->hash));
}

Test(audit, log_shorter_than_its_head_is_corrupt)
{
	struct bk_audit_head h = {.gen = 1};
	struct bk_audit_scan sc;
	struct frames f;

	log_and_its_head(10, &h, &sc);
	parse(&f);
	/* exactly at a frame boundary: the file alone verifies */
	cr_assert_eq(truncate(log_path, (off_t)f.off[9]), 0);
	cr_assert_eq(at_seq(h.seq, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_OK);
	cr_assert(bk_audit_check_head(&sc, &h, "head file"));
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT);
	assert_why(&sc, "head file says seq 10");
	free(f.buf);
}

Test(audit, torn_tail_below_the_head_is_corrupt)
{
	struct bk_audit_head h = {.gen = 1};
	struct bk_audit_scan sc;
	struct frames f;

	log_and_its_head(10, &h, &sc);
	parse(&f);
	cr_assert_eq(truncate(log_path, (off_t)f.off[9] + 12), 0);
	cr_assert_eq(at_seq(h.seq, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_TORN_TAIL, "%s", sc.why);
	cr_assert(bk_audit_check_head(&sc, &h, "head file"),
	          "an acknowledged record is never a torn tail");
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT);
	free(f.buf);
}

Test(audit, head_may_lag_the_log)
{
	struct bk_audit_head h = {.gen = 1};
	struct bk_audit_scan sc;
	struct bk_audit a;

	log_and_its_head(5, &h, &sc);
	cr_assert_eq(bk_audit_open(&a, log_path, &sc), 0);
	append(&a, 6, 9); /* durable, the head not yet written */
	bk_audit_close(&a);
	cr_assert_eq(at_seq(h.seq, &sc), 0);
	cr_assert(!bk_audit_check_head(&sc, &h, "head file"), "%s", sc.why);
	cr_assert_eq(sc.verdict, BK_AUDIT_OK);
	cr_assert_eq(sc.records, 9);
}

Test(audit, other_log_of_the_same_length_fails_the_head)
{
	struct bk_audit_head h = {.gen = 1};
	struct bk_audit_scan sc;
	struct bk_audit a;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;

	log_and_its_head(5, &h, &sc);
	/* a different history with as many records */
	cr_assert_eq(unlink(log_path), 0);
	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	for (int i = 0; i < 5; i++) {
		rec.has_kind = 1;
		rec.kind = BREAKER__AUDIT_RECORD__KIND__BOOT;
		rec.reason = "forged";
		cr_assert_gt(bk_audit_stage(&a, &rec), 0);
	}
	cr_assert_eq(bk_audit_flush_sync(&a), 0);
	bk_audit_close(&a);
	cr_assert_eq(at_seq(h.seq, &sc), 0);
	cr_assert(bk_audit_check_head(&sc, &h, "head file"));
	assert_why(&sc, "record 5 is not the one");
}

Test(audit, flush_tracks_the_durable_hash)
{
	struct bk_audit_scan sc;
	struct bk_audit a;

	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	append(&a, 1, 3);
	stage(&a, 4); /* staged, not durable */
	free(scan(&sc));
	cr_assert_eq(a.durable_seq, 3);
	cr_assert_eq(memcmp(a.durable_hash, sc.last_hash, BK_AUDIT_HASH_LEN), 0);
	cr_assert_neq(memcmp(a.last_hash, sc.last_hash, BK_AUDIT_HASH_LEN), 0);
	bk_audit_close(&a);
}

/* ---- keeping cut bytes, relinking, past the damage --------------------------------- */

Test(audit, torn_bytes_are_kept_before_the_cut)
{
	struct bk_audit_scan sc;
	char aside[256];
	uint8_t *kept;
	size_t n;
	uint64_t size;

	write_log(3);
	size = file_size(log_path);
	write_at(log_path, size,
	         "\x40\x00\x00\x00"
	         "abcdefg",
	         11);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_TORN_TAIL, "%s", sc.why);
	cr_assert_eq(bk_audit_keep_tail(log_path, &sc, aside, sizeof(aside)), 0);
	cr_assert(strstr(aside, "audit.log.torn."), "%s", aside);
	kept = read_all(aside, &n);
	cr_assert_eq(n, 11);
	cr_assert_eq(memcmp(kept,
	                    "\x40\x00\x00\x00"
	                    "abcdefg",
	                    11),
	             0);
	free(kept);
	cr_assert_eq(bk_audit_truncate(log_path, &sc), 0);
	cr_assert_eq(file_size(log_path), size);
}

Test(audit, relink_rewrites_an_unlinked_log_from_the_open_copy)
{
	struct bk_audit_scan sc;
	struct bk_audit a;
	char aside[256];

	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	append(&a, 1, 4);
	cr_assert_eq(unlink(log_path), 0);
	cr_assert_eq(bk_audit_relink(&a, log_path, aside, sizeof(aside)), 0);
	cr_assert_eq(aside[0], '\0', "nothing was at the path");
	append(&a, 5, 6);
	bk_audit_close(&a);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 6, "one chain across the relink");
}

Test(audit, relink_keeps_a_replacement_aside)
{
	struct bk_audit_scan sc;
	struct bk_audit a;
	char aside[256];

	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	append(&a, 1, 4);
	cr_assert_eq(unlink(log_path), 0);
	write_all(log_path, "not a log", 9);
	cr_assert_eq(bk_audit_relink(&a, log_path, aside, sizeof(aside)), 0);
	cr_assert(strstr(aside, "audit.log.replaced."), "%s", aside);
	cr_assert_eq(file_size(aside), 9);
	bk_audit_close(&a);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 4);
}

static int count_rest(const Breaker__AuditRecord *rec, uint64_t off, void *arg)
{
	struct seen *s = arg;

	(void)off;
	s->seq[s->n++] = rec->seq;
	return 0;
}

Test(audit, records_after_damage_are_found_by_resync)
{
	static struct seen rest;
	struct bk_audit_scan sc;
	struct frames f;
	uint8_t b;

	write_log(10);
	parse(&f);
	b = f.buf[f.off[4] + 8 + 2] ^ 0x10;
	write_at(log_path, f.off[4] + 8 + 2, &b, 1);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT);
	cr_assert_eq(bk_audit_scan_rest(log_path, &sc, count_rest, &rest), 5);
	cr_assert_eq(rest.n, 5);
	cr_assert_eq(rest.seq[0], 6, "the damaged record itself is skipped");
	cr_assert_eq(rest.seq[4], 10);
	free(f.buf);
}

/* ---- corruption and tampering ------------------------------------------------- */

Test(audit, flipped_byte_in_middle_is_corrupt)
{
	struct bk_audit_scan sc;
	struct frames f;
	struct seen *s;
	char where[64];
	uint8_t b;

	write_log(10);
	parse(&f);
	b = f.buf[f.off[4] + 8 + 2] ^ 0x10;
	write_at(log_path, f.off[4] + 8 + 2, &b, 1);
	s = scan(&sc);
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	cr_assert_eq(sc.records, 4, "only records before the damage are handed out");
	cr_assert_eq(s->n, 4);
	cr_assert_eq(sc.valid_len, f.off[4]);
	snprintf(where, sizeof(where), "record 5 at offset %zu", f.off[4]);
	assert_why(&sc, where);
	assert_why(&sc, "CRC mismatch");
	cr_assert_eq(bk_audit_truncate(log_path, &sc), -EINVAL,
	             "corrupt logs are quarantined");
	cr_assert_eq(file_size(log_path), f.len);
	free(s);
	free(f.buf);
}

/* Zeros are only a torn tail when nothing but zeros follows. */
Test(audit, zeroed_middle_record_is_corrupt)
{
	uint8_t zeros[BK_AUDIT_RECORD_MAX + 8] = {0};
	struct bk_audit_scan sc;
	struct frames f;

	write_log(10);
	parse(&f);
	write_at(log_path, f.off[4], zeros, 8 + f.plen[4]);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	cr_assert_eq(sc.valid_len, f.off[4]);
	assert_why(&sc, "record 5");
	free(f.buf);
}

/* A zero run longer than the read-ahead, then one stray byte: not a torn tail. */
Test(audit, zeros_then_data_is_corrupt)
{
	static uint8_t tail[200 * 1024];
	struct bk_audit_scan sc;
	uint64_t size;

	write_log(3);
	size = file_size(log_path);
	tail[sizeof(tail) - 1] = 1;
	write_at(log_path, size, tail, sizeof(tail));
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	cr_assert_eq(sc.valid_len, size);
	cr_assert_eq(sc.records, 3);
}

/* Record 5 edited and re-checksummed: record 6 no longer links to it. */
Test(audit, edited_record_breaks_chain)
{
	struct bk_audit_scan sc;
	struct frames f;
	char *orig;
	Breaker__AuditRecord *rec;

	write_log(10);
	parse(&f);
	rec = unpack(&f, 4);
	orig = rec->reason;
	rec->reason = "reason for record 5, edited";
	rewrite_frame(&f, 4, rec);
	rec->reason = orig;
	breaker__audit_record__free_unpacked(rec, NULL);
	memset(&sc, 0, sizeof(sc));
	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	cr_assert_eq(sc.records, 5, "record 5 itself still links to record 4");
	assert_why(&sc, "record 6");
	assert_why(&sc, "prev_hash does not match record 5");
	free(f.buf);
}

Test(audit, wrong_prev_hash_is_corrupt)
{
	struct bk_audit_scan sc;
	struct frames f;
	char where[64];
	Breaker__AuditRecord *rec;

	write_log(10);
	parse(&f);
	rec = unpack(&f, 4);
	rec->prev_hash.data[7] ^= 1;
	rewrite_frame(&f, 4, rec);
	breaker__audit_record__free_unpacked(rec, NULL);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	cr_assert_eq(sc.records, 4);
	cr_assert_eq(sc.valid_len, f.off[4]);
	snprintf(where, sizeof(where), "record 5 at offset %zu", f.off[4]);
	assert_why(&sc, where);
	assert_why(&sc, "prev_hash does not match record 4");
	free(f.buf);
}

Test(audit, first_record_needs_zero_prev_hash)
{
	struct bk_audit_scan sc;
	struct frames f;
	Breaker__AuditRecord *rec;

	write_log(3);
	parse(&f);
	rec = unpack(&f, 0);
	rec->prev_hash.data[0] = 1;
	rewrite_frame(&f, 0, rec);
	breaker__audit_record__free_unpacked(rec, NULL);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	cr_assert_eq(sc.records, 0);
	cr_assert_eq(sc.valid_len, BK_AUDIT_HDR_SIZE);
	assert_why(&sc, "record 1");
	free(f.buf);
}

/* A whole frame removed: the seq gap shows even though every frame is valid. */
Test(audit, missing_record_is_corrupt)
{
	struct bk_audit_scan sc;
	struct frames f;

	write_log(10);
	parse(&f);
	rewrite_frame(&f, 4, NULL);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	cr_assert_eq(sc.records, 4);
	cr_assert_eq(sc.valid_len, f.off[4]);
	assert_why(&sc, "seq is 6, expected 5");
	free(f.buf);
}

/* A matching CRC over bytes that do not decode was written so: never torn. */
Test(audit, undecodable_record_with_valid_crc_is_corrupt)
{
	/* field 6 (string), length 100, 2 bytes present */
	static const uint8_t bad[] = {0x32, 100, 'x', 'y'};
	uint8_t frame[8 + sizeof(bad)];
	struct bk_audit_scan sc;
	uint32_t v;
	uint64_t size;

	write_log(3);
	size = file_size(log_path);
	v = sizeof(bad);
	memcpy(frame, &v, 4);
	v = bk_crc32c(0, bad, sizeof(bad));
	memcpy(frame + 4, &v, 4);
	memcpy(frame + 8, bad, sizeof(bad));
	write_at(log_path, size, frame, sizeof(frame));
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "even as the last frame: %s", sc.why);
	cr_assert_eq(sc.valid_len, size);
	assert_why(&sc, "decode");
}

/* ---- headers -------------------------------------------------------------------- */

static void expect_bad_header(uint64_t off, const void *bytes, size_t len,
                              const char *why)
{
	struct bk_audit_scan sc;
	struct bk_audit a;

	write_log(3);
	write_at(log_path, off, bytes, len);
	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_BAD_HEADER, "%s", sc.why);
	cr_assert_eq(sc.records, 0);
	cr_assert_eq(sc.valid_len, 0);
	assert_why(&sc, why);
	cr_assert_eq(bk_audit_open(&a, log_path, &sc), -EINVAL,
	             "no appending to a bad log");
	cr_assert_eq(bk_audit_open(&a, log_path, NULL), -EINVAL);
}

Test(audit, bad_magic)
{
	expect_bad_header(0, "BKAUDIT2", 8, "magic");
}

Test(audit, bad_version)
{
	static const uint8_t v2[4] = {2, 0, 0, 0};

	expect_bad_header(8, v2, 4, "version 2");
}

Test(audit, bad_reserved)
{
	static const uint8_t r[4] = {0, 0, 0, 1};

	expect_bad_header(12, r, 4, "reserved");
}

Test(audit, short_file_is_bad_header)
{
	struct bk_audit_scan sc;

	write_all(log_path, "BKAUD", 5);
	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_BAD_HEADER, "%s", sc.why);
}

/* Created, then a crash before the header was durable. */
Test(audit, empty_file_is_torn_and_repaired)
{
	struct bk_audit_scan sc;
	struct bk_audit a;

	write_all(log_path, "", 0);
	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_TORN_TAIL, "%s", sc.why);
	cr_assert_eq(sc.valid_len, 0);
	cr_assert_eq(sc.file_len, 0);
	cr_assert_eq(sc.records, 0);
	cr_assert_eq(bk_audit_truncate(log_path, &sc), 0);
	cr_assert_eq(bk_audit_open(&a, log_path, &sc), 0);
	cr_assert_eq(file_size(log_path), BK_AUDIT_HDR_SIZE);
	append(&a, 1, 2);
	bk_audit_close(&a);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 2);
}

Test(audit, missing_file)
{
	struct bk_audit_scan sc;

	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), -ENOENT);
}

Test(audit, new_log_is_created_with_header)
{
	struct bk_audit_scan sc;
	struct bk_audit a;
	struct stat st;

	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	bk_audit_close(&a);
	cr_assert_eq(stat(log_path, &st), 0);
	cr_assert_eq(st.st_size, BK_AUDIT_HDR_SIZE);
	cr_assert_eq(st.st_mode & 0027, 0, "not group-writable, not world-accessible");
	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 0);
	cr_assert_eq(sc.valid_len, BK_AUDIT_HDR_SIZE);
	/* a bare header is a new log too */
	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	cr_assert_eq(a.next_seq, 1);
	bk_audit_close(&a);
}

/* open refuses a scan that no longer describes the file. */
Test(audit, open_refuses_stale_scan)
{
	struct bk_audit_scan sc;
	struct bk_audit a;

	write_log(4);
	free(scan(&sc));
	cr_assert_eq(bk_audit_open(&a, log_path, NULL), -EINVAL, "records exist");
	cr_assert_eq(truncate(log_path, sc.valid_len + 3), 0);
	cr_assert_eq(bk_audit_open(&a, log_path, &sc), -EINVAL, "unverified tail");
	/* a log that vanished since its scan is not recreated empty */
	cr_assert_eq(unlink(log_path), 0);
	cr_assert_eq(bk_audit_open(&a, log_path, &sc), -ENOENT);
	cr_assert_eq(access(log_path, F_OK), -1);
}

/* ---- staging limits --------------------------------------------------------------- */

static size_t packed_with_reason(size_t n)
{
	static uint8_t hash[32];
	Breaker__AuditRecord rec;
	char *reason = malloc(n + 1);
	size_t len;

	cr_assert_not_null(reason);
	memset(reason, 'r', n);
	reason[n] = '\0';
	breaker__audit_record__init(&rec);
	rec.reason = reason;
	rec.has_seq = rec.has_prev_hash = 1;
	rec.seq = 1;
	rec.prev_hash.len = 32;
	rec.prev_hash.data = hash;
	len = breaker__audit_record__get_packed_size(&rec);
	free(reason);
	return len;
}

static int64_t stage_reason(struct bk_audit *a, size_t n)
{
	Breaker__AuditRecord rec;
	char *reason = malloc(n + 1);
	int64_t ret;

	cr_assert_not_null(reason);
	memset(reason, 'r', n);
	reason[n] = '\0';
	breaker__audit_record__init(&rec);
	rec.reason = reason;
	ret = bk_audit_stage(a, &rec);
	if (ret < 0)
		cr_assert(!rec.has_seq, "a refused record gets no seq");
	free(reason);
	return ret;
}

Test(audit, oversize_record_is_refused)
{
	struct bk_audit_scan sc;
	struct bk_audit a;
	size_t n = 4000;

	while (packed_with_reason(n) < BK_AUDIT_RECORD_MAX)
		n++;
	cr_assert_eq(packed_with_reason(n), BK_AUDIT_RECORD_MAX);
	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	cr_assert_eq(stage_reason(&a, n + 1), -E2BIG);
	cr_assert_eq(stage_reason(&a, 100000), -E2BIG);
	cr_assert_eq(a.staged_len, 0);
	cr_assert_eq(a.next_seq, 1);
	cr_assert_eq(stage_reason(&a, n), 1, "exactly BK_AUDIT_RECORD_MAX fits");
	cr_assert_eq(bk_audit_flush_sync(&a), 0);
	bk_audit_close(&a);
	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 1);
}

Test(audit, full_staging_buffer)
{
	struct bk_audit_scan sc;
	struct bk_audit a;
	int64_t seq, last = 0;

	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	while ((seq = stage_reason(&a, 3000)) > 0)
		last = seq;
	cr_assert_eq(seq, -ENOBUFS);
	cr_assert_gt(last, 80);
	cr_assert_leq(a.staged_len, BK_AUDIT_BATCH_BYTES);
	cr_assert_gt(a.staged_len + 8 + 3000, BK_AUDIT_BATCH_BYTES);
	cr_assert_eq(a.next_seq, (uint64_t)last + 1);
	cr_assert_eq(bk_audit_flush_sync(&a), 0);
	cr_assert_eq(stage_reason(&a, 3000), last + 1, "room again after the flush");
	cr_assert_eq(bk_audit_flush_sync(&a), 0);
	bk_audit_close(&a);
	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, (uint64_t)last + 1);
}

/* ---- the loop's flush: begin/done ----------------------------------------------- */

Test(audit, flush_begin_done)
{
	struct bk_audit_scan sc;
	struct bk_audit a;
	const uint8_t *buf;
	uint64_t off;
	size_t len;

	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	cr_assert(!bk_audit_flush_ready(&a));
	cr_assert_eq(stage(&a, 1), 1);
	cr_assert_eq(stage(&a, 2), 2);
	cr_assert(bk_audit_flush_ready(&a));
	bk_audit_flush_begin(&a, &buf, &len, &off);
	cr_assert_eq(off, BK_AUDIT_HDR_SIZE);
	cr_assert_gt(len, 0);
	cr_assert(!bk_audit_flush_ready(&a), "one flush at a time");
	cr_assert_eq(bk_audit_flush_sync(&a), -EBUSY);
	/* staging goes on while the flush is in flight */
	cr_assert_eq(stage(&a, 3), 3);
	cr_assert(!bk_audit_flush_ready(&a));
	cr_assert_eq(pwrite(a.fd, buf, len, off), (ssize_t)len);
	cr_assert_eq(fdatasync(a.fd), 0);
	bk_audit_flush_done(&a, 0);
	cr_assert_eq(a.durable_seq, 2);
	cr_assert_eq(a.end, off + len);
	cr_assert(bk_audit_flush_ready(&a), "record 3 waits");
	cr_assert_eq(bk_audit_flush_sync(&a), 0);
	cr_assert_eq(a.durable_seq, 3);
	bk_audit_close(&a);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 3);
}

/*
 * A flush fails after part of it reached the file: nothing is lost, the
 * retry rewrites the same bytes at the same offset, and records staged
 * meanwhile follow them in order.
 */
Test(audit, failed_flush_keeps_records_in_order)
{
	static const uint8_t junk[64] = {0xde, 0xad, 0xbe, 0xef};
	struct bk_audit_scan sc;
	struct bk_audit a;
	const uint8_t *buf, *buf2;
	uint64_t off, off2;
	size_t len, len2;
	uint8_t *copy;

	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	append(&a, 1, 2);
	for (uint64_t i = 3; i <= 5; i++)
		cr_assert_eq(stage(&a, i), (int64_t)i);
	bk_audit_flush_begin(&a, &buf, &len, &off);
	copy = malloc(len);
	cr_assert_not_null(copy);
	memcpy(copy, buf, len);
	/* half written, and garbage after it */
	cr_assert_eq(pwrite(a.fd, buf, len / 2, off), (ssize_t)(len / 2));
	cr_assert_eq(pwrite(a.fd, junk, sizeof(junk), off + len / 2),
	             (ssize_t)sizeof(junk));
	for (uint64_t i = 6; i <= 7; i++)
		cr_assert_eq(stage(&a, i), (int64_t)i);
	bk_audit_flush_done(&a, -EIO);
	cr_assert_eq(a.durable_seq, 2);
	cr_assert_eq(a.end, off);
	cr_assert(bk_audit_flush_ready(&a));

	bk_audit_flush_begin(&a, &buf2, &len2, &off2);
	cr_assert_eq(off2, off, "retried at the same offset");
	cr_assert_eq(len2, len);
	cr_assert_arr_eq(buf2, copy, len, "the same bytes, records 3..5");
	bk_audit_flush_done(&a, -EIO); /* fails again */
	cr_assert_eq(a.durable_seq, 2);

	cr_assert_eq(bk_audit_flush_sync(&a), 0);
	cr_assert_eq(a.durable_seq, 7);
	cr_assert_eq(a.end, file_size(log_path));
	cr_assert(!bk_audit_flush_ready(&a));
	bk_audit_close(&a);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 7);
	free(copy);
}

/* ---- quarantine ----------------------------------------------------------------- */

Test(audit, quarantine_keeps_evidence)
{
	char aside[PATH_MAX], prefix[PATH_MAX];
	struct bk_audit_scan sc, after;
	struct bk_audit a;
	struct frames f;
	uint8_t *orig, *kept, b;
	size_t orig_len, kept_len;

	write_log(10);
	parse(&f);
	b = f.buf[f.off[5] + 8 + 3] ^ 0x01;
	write_at(log_path, f.off[5] + 8 + 3, &b, 1);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	orig = read_all(log_path, &orig_len);

	cr_assert_eq(bk_audit_quarantine(log_path, &sc, aside, sizeof(aside)), 0);
	snprintf(prefix, sizeof(prefix), "%s.corrupt.", log_path);
	cr_assert_eq(strncmp(aside, prefix, strlen(prefix)), 0, "aside is %s", aside);
	kept = read_all(aside, &kept_len);
	cr_assert_eq(kept_len, orig_len);
	cr_assert_arr_eq(kept, orig, orig_len, "the damaged log is kept byte for byte");

	free(scan(&after));
	cr_assert_eq(after.verdict, BK_AUDIT_OK, "%s", after.why);
	cr_assert_eq(after.records, 5);
	cr_assert_eq(file_size(log_path), f.off[5]);
	/* the old scan describes the new file: open with it and go on */
	cr_assert_eq(bk_audit_open(&a, log_path, &sc), 0);
	append(&a, 6, 8);
	bk_audit_close(&a);
	free(scan(&after));
	cr_assert_eq(after.verdict, BK_AUDIT_OK, "%s", after.why);
	cr_assert_eq(after.records, 8);
	free(orig);
	free(kept);
	free(f.buf);
}

Test(audit, quarantine_never_replaces_an_aside)
{
	char aside[PATH_MAX], taken[PATH_MAX];
	struct bk_audit_scan sc;
	long long now = time(NULL);
	size_t len;
	uint8_t *buf;

	write_log(2);
	free(scan(&sc));
	/* every name the next few seconds could give is taken */
	for (long long t = now; t < now + 5; t++) {
		snprintf(taken, sizeof(taken), "%s.corrupt.%lld", log_path, t);
		write_all(taken, "older", 5);
	}
	cr_assert_eq(bk_audit_quarantine(log_path, &sc, aside, sizeof(aside)), 0);
	cr_assert_eq(strcmp(aside + strlen(aside) - 2, ".1"), 0, "aside is %s", aside);
	snprintf(taken, sizeof(taken), "%s.corrupt.%lld", log_path, now);
	buf = read_all(taken, &len);
	cr_assert(len == 5 && memcmp(buf, "older", 5) == 0);
	free(buf);
}

Test(audit, quarantine_bad_header_starts_a_new_log)
{
	char aside[PATH_MAX];
	struct bk_audit_scan sc;
	struct bk_audit a;
	size_t len;
	uint8_t *buf;

	write_all(log_path, "this is not an audit log at all\n", 32);
	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_BAD_HEADER, "%s", sc.why);
	cr_assert_eq(bk_audit_quarantine(log_path, &sc, aside, sizeof(aside)), 0);
	buf = read_all(aside, &len);
	cr_assert(len == 32 && memcmp(buf, "this is not an audit log at all\n", 32) == 0);
	free(buf);
	cr_assert_eq(file_size(log_path), BK_AUDIT_HDR_SIZE);
	cr_assert_eq(bk_audit_open(&a, log_path, &sc), 0);
	append(&a, 1, 3);
	bk_audit_close(&a);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 3);
}

Test(audit, quarantine_refuses_stale_scan)
{
	char aside[PATH_MAX];
	struct bk_audit_scan sc;
	struct bk_audit a;

	write_log(2);
	free(scan(&sc));
	cr_assert_eq(bk_audit_open(&a, log_path, &sc), 0);
	append(&a, 3, 3);
	bk_audit_close(&a);
	cr_assert_eq(bk_audit_quarantine(log_path, &sc, aside, sizeof(aside)), -EINVAL);
	free(scan(&sc));
	cr_assert_eq(sc.records, 3, "log untouched");
}

/* ---- callback ----------------------------------------------------------------- */

static int stop_at_3(const Breaker__AuditRecord *rec, uint64_t off, void *arg)
{
	(void)off;
	(*(int *)arg)++;
	return rec->seq == 3 ? 42 : 0;
}

Test(audit, callback_stops_scan)
{
	struct bk_audit_scan sc;
	int calls = 0;

	write_log(6);
	cr_assert_eq(bk_audit_scan(log_path, stop_at_3, &calls, &sc), 42);
	cr_assert_eq(calls, 3);
	/* the scan describes the records the caller took */
	cr_assert_eq(sc.records, 2);
	cr_assert_eq(sc.last_seq, 2);
	assert_why(&sc, "record 3");
}

/* ---- preallocation (BK_AUDIT_F_PREZERO): zeros written ahead of the records ------- */

/* Stage records first..last and flush them, in a log that may be preallocated. */
static void append_any(struct bk_audit *a, uint64_t first, uint64_t last)
{
	for (uint64_t i = first; i <= last; i++)
		cr_assert_eq(stage(a, i), (int64_t)i);
	cr_assert_eq(bk_audit_flush_sync(a), 0);
	cr_assert_eq(a->durable_seq, last);
}

/* A log of n records with zeros written ahead of them. */
static void prezeroed_log(struct bk_audit *a, uint64_t n)
{
	cr_assert_eq(bk_audit_open(a, log_path, NULL), 0);
	append(a, 1, n);
	cr_assert_eq(bk_audit_prezero(a), 0);
	cr_assert_geq(file_size(log_path), a->end + BK_AUDIT_PREZERO_CHUNK);
}

/* Stage record i with a reason of reason_len bytes and flush it; its offset. */
static uint64_t append_long(struct bk_audit *a, uint64_t i, size_t reason_len)
{
	Breaker__AuditRecord rec;
	char reason[2048];
	uint64_t off = a->end;

	fill(&rec, reason, sizeof(reason), i);
	memset(reason, 'r', reason_len);
	reason[reason_len] = '\0';
	cr_assert_eq(bk_audit_stage(a, &rec), (int64_t)i);
	cr_assert_eq(bk_audit_flush_sync(a), 0);
	return off;
}

Test(audit, prezeroed_log_ends_where_the_zeros_start)
{
	struct bk_audit a;
	struct bk_audit_scan sc;
	uint64_t size, end;
	uint8_t hdr[BK_AUDIT_HDR_SIZE];
	int fd;

	prezeroed_log(&a, 5);
	size = file_size(log_path);
	append_any(&a, 6, 10);
	cr_assert_eq(file_size(log_path), size,
	             "flushes overwrite zeros: no size change");
	end = a.end;
	bk_audit_close(&a);
	fd = open(log_path, O_RDONLY);
	cr_assert_eq(pread(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	close(fd);
	cr_assert_eq(hdr[12], BK_AUDIT_F_PREZERO, "the header says so");
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK,
	             "zeros after the records are no torn record: %s", sc.why);
	cr_assert_eq(sc.records, 10);
	cr_assert_eq(sc.valid_len, end);
	cr_assert_eq(sc.data_len, end);
	cr_assert_eq(sc.file_len, size);
	/* opened again, it appends after record 10, over the zeros */
	cr_assert_eq(bk_audit_open(&a, log_path, &sc), 0);
	append_any(&a, 11, 12);
	bk_audit_close(&a);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK, "%s", sc.why);
	cr_assert_eq(sc.records, 12);
	cr_assert_eq(file_size(log_path), size);
}

/* Zeros over the last whole frame (it ends before the zeros' page): damage. */
Test(audit, prezeroed_whole_frame_with_zeros_is_corrupt)
{
	uint8_t zeros[16] = {0};
	struct bk_audit a;
	struct bk_audit_scan sc;
	uint64_t end;

	prezeroed_log(&a, 6);
	end = a.end;
	bk_audit_close(&a);
	cr_assert_lt(end, 4096, "the log fits its first page");
	write_at(log_path, end - sizeof(zeros), zeros, sizeof(zeros));
	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	cr_assert_eq(sc.records, 5);
	assert_why(&sc, "CRC mismatch");
}

/* A write cut at a page boundary: the frame's first bytes, zeros after. */
Test(audit, prezeroed_write_cut_at_a_page_is_a_torn_tail)
{
	static uint8_t zeros[4096];
	struct bk_audit a;
	struct bk_audit_scan sc;
	uint64_t i = 1, off, end;
	char aside[512];

	cr_assert_eq(bk_audit_open(&a, log_path, NULL), 0);
	cr_assert_eq(bk_audit_prezero(&a), 0);
	while (a.end < 4096 - 300)
		append_any(&a, i, i), i++;
	off = append_long(&a, i, 1000); /* runs over offset 4096 */
	end = a.end;
	cr_assert_gt(end, 4096);
	bk_audit_close(&a);
	write_at(log_path, 4096, zeros, end - 4096);
	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_TORN_TAIL, "%s", sc.why);
	cr_assert_eq(sc.valid_len, off);
	cr_assert_eq(sc.records, i - 1);
	cr_assert_leq(sc.data_len, 4096);
	cr_assert_gt(sc.data_len, off);
	cr_assert_eq(bk_audit_keep_tail(log_path, &sc, aside, sizeof(aside)), 0);
	cr_assert_eq(file_size(aside), sc.data_len - off, "the cut bytes, not the zeros");
	cr_assert_eq(bk_audit_truncate(log_path, &sc), 0);
	free(scan(&sc));
	cr_assert_eq(sc.verdict, BK_AUDIT_OK);
	cr_assert_eq(sc.records, i - 1);
	unlink(aside);
}

/* One stray byte far into the zeros: not the end of the log, damage. */
Test(audit, prezeroed_zeros_then_data_is_corrupt)
{
	struct bk_audit a;
	struct bk_audit_scan sc;
	uint64_t end;

	prezeroed_log(&a, 3);
	end = a.end;
	bk_audit_close(&a);
	write_at(log_path, end + 200 * 1024, "x", 1);
	cr_assert_eq(bk_audit_scan(log_path, NULL, NULL, &sc), 0);
	cr_assert_eq(sc.verdict, BK_AUDIT_CORRUPT, "%s", sc.why);
	cr_assert_eq(sc.valid_len, end);
	cr_assert_eq(sc.records, 3);
}
