/*
 * fuzz_audit - the audit log as breakerd reads it at boot: scan and verify,
 * replay every verified record into the halt state, repair (cut a torn tail,
 * quarantine a damaged log), append the boot record, and read it back.
 *
 * bk_boot.c keeps replay_log/repair_log static, so their few lines of
 * decision (a record the state refuses makes the log CORRUPT at that record)
 * are mirrored here over the same public calls: bk_audit_scan,
 * bk_state_replay, bk_audit_truncate, bk_audit_quarantine, bk_audit_open,
 * bk_audit_stage, bk_audit_flush_sync.
 *
 * Input: a file that starts with "BK" is written as is (framing, CRCs, torn
 * tails, the header's magic and version). Anything else is a recipe, so that mutated
 * records still pass the CRC and the hash chain and reach the replay: byte 0: flags
 * (FL_*); then chunks of u16 length (LE) + payload. Each payload that decodes as an
 * AuditRecord gets seq = its position and the right prev_hash (unless a flag says not),
 * is repacked and framed with a good CRC; one that does not decode is framed as it is.
 * Bytes left over after the last whole chunk are appended raw: a torn tail.
 *
 * Promises checked: repair always yields a log that verifies; the appended
 * record continues the chain; replaying the repaired log gives exactly the
 * state the daemon booted with.
 */
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdint.h>

#include "bk_audit.h"
#include "bk_state.h"
#include "fuzz_util.h"

#define FL_KEEP_SEQ  0x01 /* keep the record's own seq */
#define FL_KEEP_HASH 0x02 /* keep the record's own prev_hash */
#define FL_BAD_CRC   0x04 /* the last frame's CRC is off by one */
#define FL_V2_HEADER 0x08 /* a header of another version */
#define FL_NO_HEADER 0x10 /* no file header at all */

static char dir[256];
static char path[320];
static struct bk_state st_boot, st_again;
static uint8_t file[4u << 20];

static void cleanup(void)
{
	bk_state_free(&st_boot);
	bk_state_free(&st_again);
	fz_rm_tree(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_tmpdir(dir, sizeof(dir), "audit");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	if (bk_state_init(&st_boot) < 0 || bk_state_init(&st_again) < 0)
		fz_fail("bk_state_init");
	atexit(cleanup);
	return 0;
}

/* bk_state_init's result without a 10 MiB calloc per input. */
static void state_reset(struct bk_state *st)
{
	struct bk_state keep = *st;

	memset(keep.strategies, 0, st->n_strategies * sizeof(*keep.strategies));
	memset(keep.groups, 0, BK_MAX_GROUPS * sizeof(*keep.groups));
	memset(keep.members, 0, BK_MAX_STRATEGIES * sizeof(*keep.members));
	memset(st, 0, sizeof(*st));
	/* the arrays bk_state_init allocated stay (else each input leaks them) */
	st->strategies = keep.strategies;
	st->groups = keep.groups;
	st->members = keep.members;
}

static bool state_equal(const struct bk_state *a, const struct bk_state *b)
{
	return a->n_strategies == b->n_strategies &&
	       !memcmp(&a->global, &b->global, sizeof(a->global)) &&
	       !memcmp(a->index, b->index, sizeof(a->index)) &&
	       !memcmp(a->strategies, b->strategies,
	               a->n_strategies * sizeof(*a->strategies));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Append one frame (payload already in place after 8 header bytes). */
static size_t frame_at(size_t off, size_t len, bool bad_crc)
{
	put_le32(file + off, (uint32_t)len);
	put_le32(file + off + 4, bk_crc32c(0, file + off + 8, len) + (bad_crc ? 1 : 0));
	return off + 8 + len;
}

/* The recipe format (see the top of the file) to log bytes. */
static size_t build(const uint8_t *data, size_t size)
{
	uint8_t hash[BK_AUDIT_HASH_LEN] = {0};
	uint8_t flags = size ? data[0] : 0;
	size_t in = 1, off = 0, last = 0;
	uint64_t seq = 0;

	if (!(flags & FL_NO_HEADER)) {
		memcpy(file, BK_AUDIT_MAGIC, 8);
		put_le32(file + 8, flags & FL_V2_HEADER ? 2 : 1);
		put_le32(file + 12, 0);
		off = BK_AUDIT_HDR_SIZE;
	}
	while (in + 2 <= size) {
		size_t len = (size_t)data[in] | (size_t)data[in + 1] << 8, out = len;
		Breaker__AuditRecord *rec;

		if (len > size - in - 2 || off + 8 + 2 * len + 64 > sizeof(file))
			break;
		in += 2;
		last = off;
		rec = breaker__audit_record__unpack(NULL, len, data + in);
		if (rec) {
			ProtobufCBinaryData own = rec->prev_hash; /* freed with rec */
			protobuf_c_boolean had = rec->has_prev_hash;

			if (!(flags & FL_KEEP_SEQ)) {
				rec->has_seq = 1;
				rec->seq = ++seq;
			}
			if (!(flags & FL_KEEP_HASH)) {
				rec->has_prev_hash = 1;
				rec->prev_hash.len = sizeof(hash);
				rec->prev_hash.data = hash;
			}
			if (breaker__audit_record__get_packed_size(rec) <= 2 * len + 56)
				out = breaker__audit_record__pack(rec, file + off + 8);
			else
				memcpy(file + off + 8, data + in, len);
			rec->prev_hash = own;
			rec->has_prev_hash = had;
			breaker__audit_record__free_unpacked(rec, NULL);
		} else {
			memcpy(file + off + 8, data + in, len);
		}
		SHA256(file + off + 8, out, hash);
		off = frame_at(off, out, false);
		in += len;
	}
	if ((flags & FL_BAD_CRC) && last)
		file[last + 4] ^= 1;
	if (size > in && off + (size - in) <= sizeof(file)) {
		memcpy(file + off, data + in, size - in);
		off += size - in;
	}
	return off;
}

struct replay {
	struct bk_state *st;
	uint64_t bad_offset;
	uint64_t records;
	bool half_applied; /* the refused record changed the state anyway */
};

/* As bk_boot's replay_one: a record the state refuses stops the scan. */
static int replay_one(const Breaker__AuditRecord *rec, uint64_t offset, void *arg)
{
	struct replay *r = arg;
	uint32_t n = r->st->n_strategies;

	if (bk_state_replay(r->st, rec) == 0) {
		r->records++;
		return 0;
	}
	r->bad_offset = offset;
	r->half_applied = r->st->n_strategies != n;
	return 1;
}

/*
 * Found by this target and fixed (tests/fuzz/crashes/README.md): a REGISTER
 * record refused on replay was half-applied. Fatal now; BK_FUZZ_STRICT=0
 * tolerates it again, for a build from before the fix.
 */
static bool known_half_register(const struct replay *r)
{
	static bool told;
	const char *strict = getenv("BK_FUZZ_STRICT");

	if (!r->half_applied || !(strict && *strict == '0'))
		return false;
	if (!told)
		fprintf(stderr, "fuzz_audit: known bug seen (half-applied REGISTER on "
		                "replay); tolerated because BK_FUZZ_STRICT=0\n");
	told = true;
	return true;
}

/* The log file holds only zeros from off to its end. */
static bool zeros_from(uint64_t off)
{
	uint8_t buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool zero = fd >= 0;

	while (zero && (n = pread(fd, buf, sizeof(buf), (off_t)off)) > 0) {
		for (ssize_t i = 0; i < n && zero; i++)
			zero = !buf[i];
		off += (uint64_t)n;
	}
	if (fd >= 0)
		close(fd);
	return zero;
}

static void check_scan(const struct bk_audit_scan *s, const char *when)
{
	if (s->valid_len > s->file_len || !fz_terminated(s->why, sizeof(s->why)))
		fz_fail("%s: valid_len %llu > file_len %llu, or why unterminated", when,
		        (unsigned long long)s->valid_len,
		        (unsigned long long)s->file_len);
	if (s->valid_len > s->data_len || s->data_len > s->file_len)
		fz_fail("%s: valid_len %llu, data_len %llu, file_len %llu out of order",
		        when, (unsigned long long)s->valid_len,
		        (unsigned long long)s->data_len, (unsigned long long)s->file_len);
	/* OK: every byte verified, but a preallocated log's zeros after them */
	if (s->verdict == BK_AUDIT_OK && s->valid_len != s->data_len)
		fz_fail("%s: OK but valid_len %llu != data_len %llu", when,
		        (unsigned long long)s->valid_len,
		        (unsigned long long)s->data_len);
	if (s->verdict == BK_AUDIT_OK && s->data_len < s->file_len &&
	    !zeros_from(s->data_len))
		fz_fail("%s: OK with non-zero bytes after data_len %llu", when,
		        (unsigned long long)s->data_len);
	if (s->verdict != BK_AUDIT_OK && !s->why[0])
		fz_fail("%s: verdict %d without a why", when, s->verdict);
	if (s->records && s->last_seq != s->records)
		fz_fail("%s: %llu records but last seq %llu", when,
		        (unsigned long long)s->records, (unsigned long long)s->last_seq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Breaker__AuditRecord boot = BREAKER__AUDIT_RECORD__INIT;
	struct replay r = {.st = &st_boot};
	struct replay again = {.st = &st_again};
	struct bk_audit_scan scan, after, again_scan;
	struct bk_audit a;
	char aside[PATH_MAX + 64];
	int rv;

	if (size >= 2 && data[0] == 'B' && data[1] == 'K') {
		fz_write_file(path, data, size);
	} else {
		size_t len = build(data, size);
		const char *dump = getenv("BK_FUZZ_AUDIT_DUMP");

		/* the log a recipe makes, to try on a real breakerd */
		if (dump && *dump)
			fz_write_file(dump, file, len);
		fz_write_file(path, file, len);
	}
	state_reset(&st_boot);
	state_reset(&st_again);

	/* boot: scan + replay */
	rv = bk_audit_scan(path, replay_one, &r, &scan);
	if (rv < 0)
		fz_fail("scan: %s", strerror(-rv));
	if (rv == 0) /* a callback's stop leaves the scan half-filled: boot overrides */
		check_scan(&scan, "scan");
	if (rv == 0 && scan.verdict != BK_AUDIT_BAD_HEADER && r.records != scan.records)
		fz_fail("replayed %llu of %llu verified records",
		        (unsigned long long)r.records, (unsigned long long)scan.records);
	if (rv == 1) {
		scan.verdict = BK_AUDIT_CORRUPT;
		scan.valid_len = r.bad_offset;
		snprintf(scan.why, sizeof(scan.why), "record contradicts the state");
	}

	/* repair, as bk_boot's repair_log */
	switch (scan.verdict) {
	case BK_AUDIT_OK:
		break;
	case BK_AUDIT_TORN_TAIL:
		if ((rv = bk_audit_truncate(path, &scan)) < 0)
			fz_fail("truncate: %s", strerror(-rv));
		break;
	case BK_AUDIT_CORRUPT:
	case BK_AUDIT_BAD_HEADER:
		if ((rv = bk_audit_quarantine(path, &scan, aside, sizeof(aside))) < 0)
			fz_fail("quarantine: %s", strerror(-rv));
		break;
	}
	/* the repaired log verifies, and replays to the state the boot has */
	rv = bk_audit_scan(path, replay_one, &again, &after);
	if (rv != 0 || !(after.verdict == BK_AUDIT_OK ||
	                 (after.verdict == BK_AUDIT_TORN_TAIL && after.valid_len == 0)))
		fz_fail(
		    "repaired log does not verify: rv %d verdict %d (%s), was %d (%s)",
		    rv, after.verdict, after.why, scan.verdict, scan.why);
	check_scan(&after, "after repair");
	if (after.records != again.records ||
	    (!state_equal(&st_boot, &st_again) && !known_half_register(&r)))
		fz_fail("replaying the repaired log gives another state than the boot "
		        "had (%u vs %u strategies; first verdict %d: %s)",
		        st_boot.n_strategies, st_again.n_strategies, scan.verdict,
		        scan.why);

	/*
	 * The daemon goes on writing: its boot record continues the chain. One
	 * input in 32 (by its bytes): bk_audit_open's two 2 MiB buffers cost
	 * ASan fresh mappings (and this VM slow page faults) each time, some
	 * 30 times the rest of the input.
	 */
	if (bk_crc32c(0, data, size) & 31) {
		fz_empty_dir(dir);
		return 0;
	}
	if ((rv = bk_audit_open(&a, path, &after)) < 0)
		fz_fail("open after repair: %s", strerror(-rv));
	boot.has_kind = 1;
	boot.kind = BREAKER__AUDIT_RECORD__KIND__BOOT;
	boot.reason = "fuzz boot";
	if (bk_audit_stage(&a, &boot) != (int64_t)after.records + 1)
		fz_fail("boot record seq %llu after %llu records",
		        (unsigned long long)boot.seq, (unsigned long long)after.records);
	if ((rv = bk_audit_flush_sync(&a)) < 0)
		fz_fail("flush: %s", strerror(-rv));
	bk_audit_close(&a);
	rv = bk_audit_scan(path, NULL, NULL, &again_scan);
	if (rv != 0 || again_scan.verdict != BK_AUDIT_OK ||
	    again_scan.records != after.records + 1)
		fz_fail(
		    "log after the boot record does not verify: rv %d verdict %d (%s)",
		    rv, again_scan.verdict, again_scan.why);
	fz_empty_dir(dir);
	return 0;
}
