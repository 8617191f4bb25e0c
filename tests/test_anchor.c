/*
 * test_anchor - audit chain heads anchored in etcd (docs/audit-log.md), on a
 * real 3-member etcd cluster and a real breakerd, checked by the real CLI.
 *
 * The attacker is a local root on the host: breakerd stopped, the log
 * rewritten (or cut) AND re-chained consistently (every prev_hash, every
 * CRC, the head file), so that plain `breaker audit --verify` passes. Only
 * the anchors in etcd can tell.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/sha.h>

#include "bk_anchor.h"
#include "bk_audit.h"
#include "bk_etcd_harness.h"
#include "bk_etcd_kv.h"
#include "bk_harness.h"
#include "bk_shm.h"

#define WAIT_MS  20000
#define MAX_RECS 512

static char out[65536];

/* The log as records (payloads unpacked), for the attacker to edit. */
struct log {
	uint8_t hdr[BK_AUDIT_HDR_SIZE];
	Breaker__AuditRecord *rec[MAX_RECS];
	size_t n;
	off_t file_len;
};

static void log_read(const char *path, struct log *l)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	uint8_t *m;
	size_t off = BK_AUDIT_HDR_SIZE;

	cr_assert(fd >= 0 && fstat(fd, &st) == 0);
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	cr_assert(m != MAP_FAILED);
	memcpy(l->hdr, m, sizeof(l->hdr));
	l->n = 0;
	l->file_len = st.st_size;
	while (off + BK_AUDIT_FRAME_HDR <= (size_t)st.st_size) {
		uint32_t len;
		memcpy(&len, m + off, 4);
		if (!len)
			break; /* the preallocated zeros */
		cr_assert(l->n < MAX_RECS);
		l->rec[l->n] = breaker__audit_record__unpack(
		    NULL, len, m + off + BK_AUDIT_FRAME_HDR);
		cr_assert(l->rec[l->n], "record at %zu does not unpack", off);
		l->n++;
		off += BK_AUDIT_FRAME_HDR + len;
	}
	munmap(m, (size_t)st.st_size);
	close(fd);
}

/* Write records [0, n) re-chained (prev_hash, CRC), zeros to the old size,
 * and a head file that agrees: what a careful attacker does. */
static void log_write_rechained(const char *path, struct log *l, size_t n)
{
	uint8_t prev[BK_AUDIT_HASH_LEN] = {0}, buf[BK_AUDIT_RECORD_MAX + 8];
	int fd = open(path, O_WRONLY | O_TRUNC);
	struct bk_audit_head h = {0};
	uint64_t end = BK_AUDIT_HDR_SIZE;
	char hp[256];

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, l->hdr, sizeof(l->hdr)), (ssize_t)sizeof(l->hdr));
	for (size_t i = 0; i < n; i++) {
		Breaker__AuditRecord *r = l->rec[i];
		ProtobufCBinaryData was = r->prev_hash;
		protobuf_c_boolean had = r->has_prev_hash;
		r->has_prev_hash = 1;
		r->prev_hash.len = BK_AUDIT_HASH_LEN;
		r->prev_hash.data = prev;
		size_t len = breaker__audit_record__pack(r, buf + 8);
		uint32_t l32 = (uint32_t)len, crc = bk_crc32c(0, buf + 8, len);
		memcpy(buf, &l32, 4);
		memcpy(buf + 4, &crc, 4);
		cr_assert_eq(write(fd, buf, len + 8), (ssize_t)(len + 8));
		SHA256(buf + 8, len, prev);
		end += len + 8;
		h.seq = r->seq;
		r->prev_hash = was; /* not our stack: log_free frees it */
		r->has_prev_hash = had;
	}
	cr_assert_eq(ftruncate(fd, l->file_len), 0); /* the zeros, as before */
	close(fd);
	h.end = end;
	memcpy(h.hash, prev, sizeof(prev));
	cr_assert_eq(bk_audit_head_path(path, hp, sizeof(hp)), 0);
	fd = open(hp, O_WRONLY | O_TRUNC);
	cr_assert(fd >= 0);
	for (h.gen = 0; h.gen < 2; h.gen++) {
		uint8_t slot[BK_AUDIT_HEAD_SLOT];
		bk_audit_head_encode(&h, slot);
		cr_assert_eq(
		    pwrite(fd, slot, sizeof(slot), (off_t)(h.gen * sizeof(slot))),
		    (ssize_t)sizeof(slot));
	}
	close(fd);
}

static void log_free(struct log *l)
{
	for (size_t i = 0; i < l->n; i++)
		breaker__audit_record__free_unpacked(l->rec[i], NULL);
}

static void host_up(struct bk_h *h, struct bk_ec *ec, const char *tag, const char *extra)
{
	char ini[1024];

	bk_ec_ini(ec, "ca", tag, extra, ini, sizeof(ini));
	bk_h_init(h, tag, ini);
	bk_h_start(h);
}

/* `audit --verify --anchors` passes with the log 0 records ahead: breakerd
 * anchored its last durable record. */
static void anchored_up_to_date(struct bk_h *h)
{
	uint64_t end = bk_h_mono_ms() + WAIT_MS;
	int rc;

	do {
		rc = bk_h_cli_all(h, out, sizeof(out), "audit", "--verify", "--anchors",
		                  NULL);
		if (rc == 0 && strstr(out, "is 0 records ahead"))
			return;
		usleep(50 * 1000);
	} while (bk_h_mono_ms() < end);
	cr_assert_fail("never anchored up to date: %d: %s", rc, out);
}

/* A trip, a note and a resume: records to rewrite. */
static void some_history(struct bk_h *h)
{
	int rc = bk_h_cli(h, out, sizeof(out), "trip", "manual_halt", "--reason",
	                  "fat finger on desk 4", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	rc = bk_h_cli(h, out, sizeof(out), "resume", "--to", "active", "--force",
	              "--reason", "all clear", NULL);
	cr_assert_eq(rc, 0, "%s", out);
}

/* Stop breakerd, as the attacker would, and drop its segment (root can):
 * the segment's head copy is gone then, only the head file is left. */
static void stop_and_drop(struct bk_h *h)
{
	cr_assert_eq(bk_h_stop(h), 0);
	bk_shm_unlink(h->instance);
}

static size_t find_kind(const struct log *l, Breaker__AuditRecord__Kind k)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->rec[i]->kind == k)
			return i;
	cr_assert_fail("no record of kind %d", k);
	return 0;
}

Test(anchor, a_rewritten_and_rechained_log_fails_against_its_anchors, .timeout = 180)
{
	struct bk_ec ec;
	struct bk_h h;
	struct log l;
	int rc;

	bk_ec_start(&ec, "aa");
	host_up(&h, &ec, "aa-a", NULL);
	some_history(&h);
	anchored_up_to_date(&h); /* an untouched log passes */
	cr_assert(strstr(out, "audit log matches its anchors in etcd"), "%s", out);
	stop_and_drop(&h);
	/* the last head (the STOP record) is anchored on the way out */
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", "--anchors", NULL);
	cr_assert_eq(rc, 0, "untouched log after stop: %d: %s", rc, out);
	cr_assert(strstr(out, "is 0 records ahead"), "%s", out);

	/* the attacker rewrites the trip's reason and re-chains everything */
	log_read(h.cfg.audit_path, &l);
	size_t t = find_kind(&l, BREAKER__AUDIT_RECORD__KIND__TRIP);
	free(l.rec[t]->reason); /* unpacked with the default allocator: malloc */
	l.rec[t]->reason = strdup("scheduled test halt");
	log_write_rechained(h.cfg.audit_path, &l, l.n);
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", NULL);
	cr_assert_eq(rc, 0, "the re-chained log must verify alone: %d: %s", rc, out);
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", NULL);
	cr_assert(strstr(out, "scheduled test halt"), "%s", out);

	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", "--anchors", NULL);
	cr_assert_eq(rc, 4, "a rewritten log must fail against its anchors: %d: %s", rc,
	             out);
	cr_assert(strstr(out, "does NOT match its anchors in etcd"), "%s", out);
	cr_assert(strstr(out, "the log was rewritten at or before record"), "%s", out);
	log_free(&l);
	bk_h_fini(&h);
	bk_ec_stop(&ec);
}

Test(anchor, a_log_cut_below_its_anchor_fails_even_when_rechained, .timeout = 180)
{
	struct bk_ec ec;
	struct bk_h h;
	struct log l;
	int rc;

	bk_ec_start(&ec, "ab");
	host_up(&h, &ec, "ab-a", NULL);
	some_history(&h);
	anchored_up_to_date(&h);
	stop_and_drop(&h);

	/* the attacker cuts the log back to before the trip, head file and all */
	log_read(h.cfg.audit_path, &l);
	size_t t = find_kind(&l, BREAKER__AUDIT_RECORD__KIND__TRIP);
	log_write_rechained(h.cfg.audit_path, &l, t);
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", NULL);
	cr_assert_eq(rc, 0, "the cut log must verify alone: %d: %s", rc, out);
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", "--anchors", NULL);
	cr_assert_eq(rc, 4, "a cut log must fail against its anchors: %d: %s", rc, out);
	cr_assert(strstr(out, "records were cut off"), "%s", out);
	log_free(&l);

	/* breakerd started on the cut log writes a fork (new records at the
	 * anchored seqs): its puts are refused (create-only) and logged, and
	 * the check fails on the fork */
	bk_h_start(&h);
	rc = bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", "--reason", "fork",
	              NULL);
	cr_assert_eq(rc, 0, "%s", out);
	static char dlog[1 << 16];
	uint64_t end = bk_h_mono_ms() + WAIT_MS;
	while (bk_h_slurp(h.log, dlog, sizeof(dlog)) >= 0 &&
	       !strstr(dlog, "already in etcd with hash") && bk_h_mono_ms() < end)
		usleep(50 * 1000);
	cr_assert(strstr(dlog, "already in etcd with hash"), "%s", dlog);
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", "--anchors", NULL);
	cr_assert_eq(rc, 4, "a fork must fail against its anchors: %d: %s", rc, out);
	cr_assert(strstr(out, "the log was rewritten at or before record"), "%s", out);
	bk_h_fini(&h);
	bk_ec_stop(&ec);
}

/* A forger with etcd write access replaces the newest anchor with the
 * rewritten log's head: the overwrite shows (etcd's version), and host b's
 * breakerd writes only under its own key. */
Test(anchor, an_overwritten_anchor_shows_and_hosts_keep_to_their_keys, .timeout = 180)
{
	struct bk_etcd_conn conn;
	struct bk_anchor_rec *r = NULL;
	struct bk_ec ec;
	struct bk_h a, b;
	size_t n = 0;
	int rc;

	bk_ec_start(&ec, "ac");
	host_up(&a, &ec, "ac-a", NULL);
	host_up(&b, &ec, "ac-b", NULL);
	some_history(&a);
	anchored_up_to_date(&a);
	anchored_up_to_date(&b);
	cr_assert_eq(bk_etcd_conn_init(&conn, ec.endpoints, 5000), 0);
	cr_assert_eq(bk_anchor_read(&conn, "/breaker/v1/ca/anchors/ac-b/", &r, &n), 0);
	cr_assert_gt(n, 0);
	free(r);

	/* overwrite a's newest anchor with b's hash (a plausible forgery) */
	cr_assert_eq(bk_anchor_read(&conn, "/breaker/v1/ca/anchors/ac-a/", &r, &n), 0);
	cr_assert_gt(n, 0);
	char key[256], val[512];
	snprintf(key, sizeof(key), "/breaker/v1/ca/anchors/ac-a/%020llu",
	         (unsigned long long)r[n - 1].seq);
	snprintf(val, sizeof(val),
	         "{\"host\":\"ac-a\",\"seq\":\"%llu\",\"end\":\"1\",\"hash\":\"%064d\","
	         "\"time_ns\":\"1\"}",
	         (unsigned long long)r[n - 1].seq, 0);
	free(r);
	cr_assert_gt(bk_etcd_put(&conn, key, val, 0), 0);
	rc = bk_h_cli_all(&a, out, sizeof(out), "audit", "--verify", "--anchors", NULL);
	cr_assert_eq(rc, 4, "%d: %s", rc, out);
	cr_assert(strstr(out, "was overwritten in etcd"), "%s", out);
	/* b's own log still passes against b's anchors */
	rc = bk_h_cli_all(&b, out, sizeof(out), "audit", "--verify", "--anchors", NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	/* and a's log does not pass as b's */
	rc = bk_h_cli_all(&a, out, sizeof(out), "audit", "--verify", "--anchors",
	                  "--host", "ac-b", NULL);
	cr_assert_eq(rc, 4, "%d: %s", rc, out);
	bk_etcd_conn_free(&conn);
	bk_h_fini(&a);
	bk_h_fini(&b);
	bk_ec_stop(&ec);
}

/* "mod_revision N" of the first latch line in `status --firm` output. */
static long long mod_rev_of(const char *status)
{
	const char *p = strstr(status, "mod_revision ");

	return p ? atoll(p + 13) : -1;
}

static void flip_byte(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, &b, 1, at), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

/* Two hosts' logs from a real firm trip and release, merged: one timeline,
 * each line with its host, each firm revision one event on 2 of 2 hosts;
 * a log that does not verify is reported and left out, exit 4. */
Test(anchor, incident_export_merges_hosts_and_correlates_firm_revisions, .timeout = 180)
{
	static char all[1 << 18];
	char la[512], lb[512], seen[32];
	struct bk_ec ec;
	struct bk_h a, b;
	int rc;

	bk_ec_start(&ec, "am");
	host_up(&a, &ec, "mx-a", NULL);
	host_up(&b, &ec, "mx-b", NULL);
	uint64_t end = bk_h_mono_ms() + WAIT_MS;
	do { /* both hosts mirrored and acked: the trip reaches both */
		rc = bk_h_cli_all(&a, out, sizeof(out), "trip", "manual_halt", "--firm",
		                  "--reason", "desk-wide incident", NULL);
		if (rc == 0 && strstr(out, "applied on 2 of 2 hosts"))
			break;
		usleep(200 * 1000);
	} while (bk_h_mono_ms() < end);
	cr_assert(strstr(out, "applied on 2 of 2 hosts"), "%d: %s", rc, out);
	rc = bk_h_cli(&b, out, sizeof(out), "status", "--firm", NULL);
	snprintf(seen, sizeof(seen), "%lld", mod_rev_of(out));
	rc = bk_h_cli_all(&b, out, sizeof(out), "resume", "--firm", "--revision", seen,
	                  "--to", "active", "--force", "--reason", "all clear", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "applied on 2 of 2 hosts"), "%s", out);
	cr_assert_eq(bk_h_stop(&a), 0);
	cr_assert_eq(bk_h_stop(&b), 0);

	snprintf(la, sizeof(la), "mx-a=%s", a.cfg.audit_path);
	snprintf(lb, sizeof(lb), "mx-b=%s", b.cfg.audit_path);
	rc = bk_h_cli_all(&a, all, sizeof(all), "incident", "export", "--log", la,
	                  "--log", lb, NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, all);
	/* the trip (revision R) and the release: each one event on both hosts */
	cr_assert(strstr(all, "# Merged timeline of 2 hosts"), "%s", all);
	cr_assert_eq(bk_h_count(all, "applied on 2 of 2 hosts (mx-a, mx-b); spread "), 2,
	             "%s", all);
	cr_assert(strstr(all, "FIRM LATCH revision"), "%s", all);
	cr_assert(strstr(all, "FIRM RELEASE revision"), "%s", all);
	cr_assert(strstr(all, "/breaker/v1/ca/latch/global/manual_halt"), "%s", all);
	cr_assert_null(strstr(all, "FIRM_APPLIED"), "folded into the events: %s", all);
	/* each host's own records, named; in time order: forwarded, then applied */
	const char *fwd = strstr(all, "mx-a              ");
	cr_assert(strstr(all, "FIRM_FORWARDED"), "%s", all);
	cr_assert(fwd && strstr(all, "mx-b              "), "%s", all);
	cr_assert_lt(strstr(all, "FIRM_FORWARDED") - all, strstr(all, "FIRM LATCH") - all,
	             "%s", all);
	cr_assert_gt(bk_h_count(all, "BOOT"), 1, "%s", all);

	/* JSON: one object per line; the events with their spread */
	rc = bk_h_cli(&a, all, sizeof(all), "incident", "export", "--json", "--log", la,
	              "--log", lb, NULL);
	cr_assert_eq(rc, 0, "%s", all);
	cr_assert_eq(bk_h_count(all, "\"firm_event\""), 2, "%s", all);
	cr_assert(strstr(all, "\"applied_on\":[\"mx-a\",\"mx-b\"]"), "%s", all);
	cr_assert(strstr(all, "{\"logs\":[{\"host\":\"mx-a\""), "%s", all);
	cr_assert_eq(bk_h_count(all, "\"merged\":true"), 2, "%s", all);

	/* --anchors: each log checked against its host's anchors too */
	rc = bk_h_cli_all(&a, all, sizeof(all), "incident", "export", "--anchors",
	                  "--log", la, "--log", lb, NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, all);
	cr_assert_eq(bk_h_count(all, "matches its anchors in etcd"), 2, "%s", all);
	/* a's log rewritten and re-chained: merged without --anchors (it
	 * verifies alone), refused with them */
	struct log l;
	log_read(a.cfg.audit_path, &l);
	size_t f = find_kind(&l, BREAKER__AUDIT_RECORD__KIND__FIRM_FORWARDED);
	free(l.rec[f]->reason);
	l.rec[f]->reason = strdup("routine test");
	log_write_rechained(a.cfg.audit_path, &l, l.n);
	log_free(&l);
	rc = bk_h_cli_all(&a, all, sizeof(all), "incident", "export", "--log", la,
	                  "--log", lb, NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, all);
	cr_assert(strstr(all, "routine test"), "%s", all);
	rc = bk_h_cli_all(&a, all, sizeof(all), "incident", "export", "--anchors",
	                  "--log", la, "--log", lb, NULL);
	cr_assert_eq(rc, 4, "%d: %s", rc, all);
	cr_assert(strstr(all, "the log was rewritten at or before record"), "%s", all);
	cr_assert(strstr(all, "host mx-a: audit log"), "%s", all);
	cr_assert(strstr(all, "does not match its anchors in etcd: NOT merged"), "%s",
	          all);
	cr_assert(strstr(all, "| mx-a | "), "%s", all);
	cr_assert(strstr(all, "does NOT match its anchors in etcd: not merged |"), "%s",
	          all);
	cr_assert_null(strstr(all, "routine test"), "%s", all);
	cr_assert(strstr(all, "applied on 1 of 1 hosts (mx-b)"), "%s", all);

	/* b's log damaged: reported, not merged; a's still shown; exit 4 */
	flip_byte(b.cfg.audit_path, BK_AUDIT_HDR_SIZE + BK_AUDIT_FRAME_HDR + 3);
	rc = bk_h_cli_all(&a, all, sizeof(all), "incident", "export", "--log", la,
	                  "--log", lb, NULL);
	cr_assert_eq(rc, 4, "%d: %s", rc, all);
	cr_assert(strstr(all, "host mx-b: audit log"), "%s", all);
	cr_assert(strstr(all, "FAILED verification"), "%s", all);
	cr_assert(strstr(all, "NOT merged"), "%s", all);
	cr_assert_null(strstr(all, "mx-b              "), "%s", all);
	cr_assert(strstr(all, "applied on 1 of 1 hosts (mx-a)"), "%s", all);
	bk_h_fini(&a);
	bk_h_fini(&b);
	bk_ec_stop(&ec);
}

/* Minor records wait for the period (a log ahead of its newest anchor is
 * fine); a trip is anchored at once and covers them. */
Test(anchor, a_log_ahead_of_its_anchor_passes_and_a_trip_is_anchored_at_once,
     .timeout = 180)
{
	struct bk_ec ec;
	struct bk_h h;
	int rc;

	char extra[256];
	int port = bk_h_free_port();

	bk_ec_start(&ec, "ad");
	snprintf(extra, sizeof(extra),
	         "anchor_period_ms = 3600000\n[metrics]\nlisten = 127.0.0.1:%d\n", port);
	host_up(&h, &ec, "ad-a", extra);
	anchored_up_to_date(&h); /* the BOOT record */
	rc = bk_h_cli(&h, out, sizeof(out), "register", "alpha", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	usleep(1000 * 1000); /* ten of the anchor thread's looks */
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", "--anchors", NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	cr_assert(strstr(out, "the log is 1 record ahead of it"), "%s", out);
	/* monitoring sees the same: anchored seq 1 of 2 durable */
	static char page[1 << 20];
	const char *body;
	cr_assert_eq(bk_h_http_get(port, "/metrics", page, sizeof(page), &body), 200);
	cr_assert(strstr(body, "\nbreaker_audit_anchored_seq 1\n"), "%s", body);
	cr_assert(strstr(body, "\nbreaker_audit_last_durable_seq 2\n"), "%s", body);
	rc = bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", "--reason", "x", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	anchored_up_to_date(&h);
	/* firm records too (FIRM_FORWARDED, FIRM_APPLIED) */
	rc = bk_h_cli(&h, out, sizeof(out), "register", "beta", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	rc = bk_h_cli(&h, out, sizeof(out), "trip", "kill_switch", "--firm", "--reason",
	              "y", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	uint64_t end = bk_h_mono_ms() + WAIT_MS; /* the watch brings it back */
	while (bk_h_cli(&h, out, sizeof(out), "audit", NULL) == 0 &&
	       !strstr(out, "FIRM_APPLIED") && bk_h_mono_ms() < end)
		usleep(50 * 1000);
	cr_assert(strstr(out, "FIRM_APPLIED"), "%s", out);
	anchored_up_to_date(&h);
	bk_h_fini(&h);
	bk_ec_stop(&ec);
}

/* anchor_keep bounds the anchors in etcd: the oldest go, the check still
 * passes; a restarted breakerd carries on anchoring the same log. */
Test(anchor, old_anchors_are_trimmed_and_a_restart_carries_on, .timeout = 180)
{
	struct bk_etcd_conn conn;
	struct bk_anchor_rec *r = NULL;
	struct bk_ec ec;
	struct bk_h h;
	size_t n = 0;
	char name[32];
	int rc;

	bk_ec_start(&ec, "ae");
	host_up(&h, &ec, "ae-a", "anchor_period_ms = 50\nanchor_keep = 16\n");
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		rc = bk_h_cli(&h, out, sizeof(out), "register", name, NULL);
		cr_assert_eq(rc, 0, "%s", out);
		anchored_up_to_date(&h);
	}
	cr_assert_eq(bk_etcd_conn_init(&conn, ec.endpoints, 5000), 0);
	cr_assert_eq(bk_anchor_read(&conn, "/breaker/v1/ca/anchors/ae-a/", &r, &n), 0);
	/* trimmed every 16 puts down to 16: never more than 16 + 15 */
	cr_assert(n >= 16 && n <= 31, "%zu anchors", n);
	cr_assert_gt(r[0].seq, 1, "the oldest anchors were not trimmed");
	free(r);
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_h_start(&h);
	rc = bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", "--reason", "x", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	anchored_up_to_date(&h);
	bk_etcd_conn_free(&conn);
	bk_h_fini(&h);
	bk_ec_stop(&ec);
}

/* Bad input: a clear error, exit 2, nothing read. */
Test(anchor, bad_anchor_and_merge_options_are_refused)
{
	struct bk_h h;
	int rc;

	bk_h_init(&h, "af-a", NULL); /* no [cluster] */
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", "--anchors", NULL);
	cr_assert_eq(rc, 2, "%d: %s", rc, out);
	cr_assert(strstr(out, "--anchors needs a [cluster] section"), "%s", out);
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--anchors", NULL);
	cr_assert_eq(rc, 2, "%d: %s", rc, out);
	cr_assert(strstr(out, "--anchors goes with --verify"), "%s", out);
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", "--host", "x", NULL);
	cr_assert_eq(rc, 2, "%d: %s", rc, out);
	rc = bk_h_cli_all(&h, out, sizeof(out), "incident", "list", "--log", "/x", NULL);
	cr_assert_eq(rc, 2, "%d: %s", rc, out);
	cr_assert(strstr(out, "--log goes with export"), "%s", out);
	rc = bk_h_cli_all(&h, out, sizeof(out), "incident", "export", "--since", "1h",
	                  "--anchors", NULL);
	cr_assert_eq(rc, 2, "%d: %s", rc, out);
	cr_assert(strstr(out, "--anchors goes with export --log"), "%s", out);
	rc = bk_h_cli_all(&h, out, sizeof(out), "incident", "export", "--anchors",
	                  "--log", "/x", NULL);
	cr_assert_eq(rc, 2, "%d: %s", rc, out);
	cr_assert(strstr(out, "--anchors needs a [cluster] section"), "%s", out);
	rc = bk_h_cli_all(&h, out, sizeof(out), "incident", "export", "INC-2026-001",
	                  "--log", "/x", NULL);
	cr_assert_eq(rc, 2, "%d: %s", rc, out);
	/* a log that is not there: reported, not merged, exit 4 */
	rc = bk_h_cli_all(&h, out, sizeof(out), "incident", "export", "--log",
	                  "h1=/nonexistent/audit.log", NULL);
	cr_assert_eq(rc, 4, "%d: %s", rc, out);
	cr_assert(strstr(out, "host h1: audit log /nonexistent/audit.log FAILED"), "%s",
	          out);
	bk_h_fini(&h);
}

/* etcd down: the anchors cannot be read, exit 3, never a pass. */
Test(anchor, verify_with_etcd_unreachable_says_so, .timeout = 60)
{
	struct bk_h h;
	char ini[512];
	int rc;

	snprintf(ini, sizeof(ini),
	         "[cluster]\nname = ca\nhost = ag-a\nendpoints = http://127.0.0.1:%d\n",
	         bk_h_free_port());
	bk_h_init(&h, "ag-a", ini);
	bk_h_start(&h); /* a log that verifies alone; its etcd is not there */
	rc = bk_h_cli_all(&h, out, sizeof(out), "--timeout", "500", "audit", "--verify",
	                  "--anchors", NULL);
	cr_assert_eq(rc, 3, "%d: %s", rc, out);
	cr_assert(strstr(out, "the anchors could not be read"), "%s", out);
	bk_h_fini(&h);
}

/* Deleting an older anchor and writing it again (version 1 again) shows:
 * its etcd revision is newer than a later record's anchor. */
Test(anchor, an_anchor_deleted_and_written_again_shows, .timeout = 180)
{
	struct bk_etcd_conn conn;
	struct bk_anchor_rec *r = NULL;
	struct bk_ec ec;
	struct bk_h h;
	char key[256], val[512], hex[65];
	size_t n = 0;
	int rc;

	bk_ec_start(&ec, "ah");
	host_up(&h, &ec, "ah-a", NULL);
	some_history(&h);
	anchored_up_to_date(&h);
	cr_assert_eq(bk_etcd_conn_init(&conn, ec.endpoints, 5000), 0);
	cr_assert_eq(bk_anchor_read(&conn, "/breaker/v1/ca/anchors/ah-a/", &r, &n), 0);
	cr_assert_geq(n, 2, "%zu anchors", n);
	snprintf(key, sizeof(key), "/breaker/v1/ca/anchors/ah-a/%020llu",
	         (unsigned long long)r[0].seq);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[0].hash[i]);
	snprintf(val, sizeof(val),
	         "{\"host\":\"ah-a\",\"seq\":\"%llu\",\"end\":\"%llu\",\"hash\":\"%s\","
	         "\"time_ns\":\"%llu\"}",
	         (unsigned long long)r[0].seq, (unsigned long long)r[0].end, hex,
	         (unsigned long long)r[0].time_ns);
	cr_assert_gt(bk_etcd_cas(&conn, key, r[0].mod_rev, NULL), 0); /* delete */
	cr_assert_gt(bk_etcd_put(&conn, key, val, 0), 0);
	free(r);
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", "--anchors", NULL);
	cr_assert_eq(rc, 4, "%d: %s", rc, out);
	cr_assert(strstr(out, "anchors were deleted and written again"), "%s", out);
	/* an anchor that is not an anchor's JSON: said, never skipped */
	cr_assert_gt(bk_etcd_put(&conn,
	                         "/breaker/v1/ca/anchors/ah-a/00000000000000099999",
	                         "not json", 0),
	             0);
	rc = bk_h_cli_all(&h, out, sizeof(out), "audit", "--verify", "--anchors", NULL);
	cr_assert_eq(rc, 4, "%d: %s", rc, out);
	cr_assert(strstr(out, "cannot be read (not an anchor's JSON)"), "%s", out);
	bk_etcd_conn_free(&conn);
	bk_h_fini(&h);
	bk_ec_stop(&ec);
}

/* The role security.md recommends for a host: read on the cluster's
 * prefix, read-write on its own anchors/, hosts/ and acks/ keys. */
static void host_role(struct bk_ec *ec, const char *host)
{
	char body[256], role[64], key[128];
	const char *own[] = {"anchors/%s/", "hosts/%s", "acks/%s"};

	snprintf(role, sizeof(role), "role-%s", host);
	snprintf(body, sizeof(body), "{\"name\":\"%s\"}", role);
	bk_ec_call(ec, "/v3/auth/role/add", body);
	bk_ec_grant(ec, role, "READ", "/breaker/v1/cr/");
	for (int i = 0; i < 3; i++) {
		char k[64];
		snprintf(k, sizeof(k), own[i], host);
		snprintf(key, sizeof(key), "/breaker/v1/cr/%s", k);
		bk_ec_grant(ec, role, "READWRITE", key);
	}
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"password\":\"%s-pw\"}", host,
	         host);
	bk_ec_call(ec, "/v3/auth/user/add", body);
	snprintf(body, sizeof(body), "{\"user\":\"%s\",\"role\":\"%s\"}", host, role);
	bk_ec_call(ec, "/v3/auth/user/grant", body);
}

/* With one etcd user per host and the role security.md recommends, each
 * breakerd mirrors, acks and anchors; one host's credentials cannot write
 * another host's anchors at all (etcd refuses). */
Test(anchor, per_host_etcd_roles_keep_hosts_off_each_others_anchors, .timeout = 180)
{
	struct bk_etcd_conn conn;
	struct bk_ec ec;
	struct bk_h a, b;
	char dir[] = "/tmp/bk-anchor-pw-XXXXXX", pw[128], ini[512];
	const char *hosts[] = {"ra", "rb"};

	bk_ec_start(&ec, "ar");
	bk_ec_call(&ec, "/v3/auth/role/add", "{\"name\":\"root\"}");
	bk_ec_call(&ec, "/v3/auth/user/add",
	           "{\"name\":\"root\",\"password\":\"root-pw\"}");
	bk_ec_call(&ec, "/v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}");
	host_role(&ec, "ra");
	host_role(&ec, "rb");
	bk_ec_call(&ec, "/v3/auth/enable", "{}");
	cr_assert_not_null(mkdtemp(dir));
	for (int i = 0; i < 2; i++) {
		snprintf(pw, sizeof(pw), "%s/%s.pw", dir, hosts[i]);
		FILE *f = fopen(pw, "w");
		cr_assert_not_null(f);
		fprintf(f, "%s-pw\n", hosts[i]);
		fclose(f);
	}
	char ca[1024];
	snprintf(ini, sizeof(ini), "user = ra\npassword_file = %s/ra.pw\n", dir);
	bk_ec_ini(&ec, "cr", "ra", ini, ca, sizeof(ca));
	bk_h_init(&a, "ra", ca);
	bk_h_start(&a);
	snprintf(ini, sizeof(ini), "user = rb\npassword_file = %s/rb.pw\n", dir);
	bk_ec_ini(&ec, "cr", "rb", ini, ca, sizeof(ca));
	bk_h_init(&b, "rb", ca);
	bk_h_start(&b);
	some_history(&a);
	anchored_up_to_date(&a);
	anchored_up_to_date(&b);

	/* rb's credentials (what a root on host rb holds) against ra's anchors */
	cr_assert_eq(bk_etcd_conn_init(&conn, ec.endpoints, 5000), 0);
	bk_etcd_conn_auth(&conn, "rb", "rb-pw");
	int64_t rv =
	    bk_etcd_put(&conn, "/breaker/v1/cr/anchors/ra/00000000000000000999", "{}", 0);
	cr_assert_lt(rv, 0, "etcd let rb write under ra's anchors");
	cr_assert_gt(
	    bk_etcd_put(&conn, "/breaker/v1/cr/anchors/rb/00000000000000000999", "{}", 0),
	    0, "%s", conn.err);
	bk_etcd_conn_free(&conn);
	/* ra's anchors untouched: still passes */
	int rc =
	    bk_h_cli_all(&a, out, sizeof(out), "audit", "--verify", "--anchors", NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, out);
	bk_h_fini(&a);
	bk_h_fini(&b);
	bk_ec_stop(&ec);
	snprintf(pw, sizeof(pw), "rm -rf %s", dir);
	cr_assert_eq(system(pw), 0);
}

/* A host that was down during a firm trip and release: the merged export
 * says on which hosts each revision was NOT applied. */
Test(anchor, incident_export_names_the_hosts_a_firm_revision_missed, .timeout = 180)
{
	static char all[1 << 18];
	char la[512], lb[512], seen[32];
	struct bk_ec ec;
	struct bk_h a, b;
	int rc;

	bk_ec_start(&ec, "an");
	host_up(&a, &ec, "nx-a", NULL);
	host_up(&b, &ec, "nx-b", NULL);
	cr_assert_eq(bk_h_stop(&b), 0);
	rc = bk_h_cli_all(&a, out, sizeof(out), "trip", "manual_halt", "--firm",
	                  "--reason", "b is down", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	rc = bk_h_cli(&a, out, sizeof(out), "status", "--firm", NULL);
	snprintf(seen, sizeof(seen), "%lld", mod_rev_of(out));
	rc = bk_h_cli_all(&a, out, sizeof(out), "resume", "--firm", "--revision", seen,
	                  "--to", "active", "--force", "--reason", "all clear", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	/* both revisions applied on a: wait for its FIRM_APPLIED records */
	uint64_t end = bk_h_mono_ms() + WAIT_MS;
	while (bk_h_cli(&a, out, sizeof(out), "audit", NULL) == 0 &&
	       bk_h_count(out, "FIRM_APPLIED") < 2 && bk_h_mono_ms() < end)
		usleep(50 * 1000);
	cr_assert_eq(bk_h_stop(&a), 0);
	snprintf(la, sizeof(la), "nx-a=%s", a.cfg.audit_path);
	snprintf(lb, sizeof(lb), "nx-b=%s", b.cfg.audit_path);
	rc = bk_h_cli_all(&a, all, sizeof(all), "incident", "export", "--log", la,
	                  "--log", lb, NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, all);
	cr_assert_eq(bk_h_count(all, "applied on 1 of 2 hosts (nx-a); spread "), 2, "%s",
	             all);
	cr_assert_eq(bk_h_count(all, "; NOT on nx-b"), 2, "%s", all);
	/* --since/--until bound the records merged */
	rc = bk_h_cli_all(&a, all, sizeof(all), "incident", "export", "--since", "1h",
	                  "--until", "30m", "--log", la, "--log", lb, NULL);
	cr_assert_eq(rc, 0, "%d: %s", rc, all);
	cr_assert_null(strstr(all, "FIRM LATCH"), "%s", all);
	cr_assert(strstr(all, "| nx-a | "), "%s", all);
	rc = bk_h_cli_all(&a, all, sizeof(all), "incident", "export", "--since", "30m",
	                  "--until", "1h", "--log", la, NULL);
	cr_assert_eq(rc, 2, "%d: %s", rc, all);
	cr_assert(strstr(all, "--until is before --since"), "%s", all);
	bk_h_fini(&a);
	bk_h_fini(&b);
	bk_ec_stop(&ec);
}
