/*
 * breaker audit: print or verify the audit log by reading the file itself
 * (bk_audit_scan), so that it works when breakerd is down. The log is also
 * compared with its durable head (the head file beside it and, for the
 * configured instance, the segment header): a log cut at a record boundary
 * or rolled back fails. Records past the first damage are shown after it,
 * marked UNVERIFIED (resynced on the next whole frame); the exit is 4.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bk_audit.h"
#include "bk_tail.h"
#include "breaker.h"

#define NS 1000000000ull

struct audit_ctx {
	uint64_t since_ns; /* 0: every record */
	bool json;
	bool unverified; /* printing records after the damage */
	uint64_t shown;
};

/* "-> 123" digits of a fraction of a second as ns; -1 if none or too many. */
static int parse_frac(const char **p, uint64_t *ns)
{
	const char *s = *p;
	uint64_t scale = NS / 10;
	int n = 0;

	*ns = 0;
	for (; isdigit((unsigned char)*s) && n < 9; s++, n++, scale /= 10)
		*ns += (uint64_t)(*s - '0') * scale;
	if (n == 0 || isdigit((unsigned char)*s))
		return -1;
	*p = s;
	return 0;
}

/* "2026-11-23T09:00:00[.123][Z]" (also with a space, or no seconds), UTC. */
static int parse_iso(const char *s, uint64_t *out)
{
	static const char *const fmts[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
	                                   "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M",
	                                   "%Y-%m-%d"};

	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		struct tm tm = {0};
		const char *p = strptime(s, fmts[i], &tm);
		uint64_t frac = 0;
		time_t t;

		if (!p)
			continue;
		if (i < 2 && *p == '.' && (p++, parse_frac(&p, &frac) < 0))
			return -1;
		if (*p == 'Z' && i < 4)
			p++;
		if (*p)
			continue;
		if ((t = timegm(&tm)) < 0)
			return -1;
		*out = (uint64_t)t * NS + frac;
		return 0;
	}
	return -1;
}

/*
 * --since: an ISO-8601 UTC time, unix seconds ("1795338000"), or an age
 * ("30s", "10m", "2h", "1d") before now_ns. 0 or -1.
 */
int parse_since(const char *s, uint64_t now_ns, uint64_t *out)
{
	unsigned long long v;
	uint64_t unit = 0;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == 0 && *end == '\0') {
		if (v > UINT64_MAX / NS)
			return -1;
		*out = v * NS;
		return 0;
	}
	if (errno == 0 && end[0] && !end[1])
		unit = end[0] == 's'   ? 1
		       : end[0] == 'm' ? 60
		       : end[0] == 'h' ? 3600
		       : end[0] == 'd' ? 86400
		                       : 0;
	if (unit) {
		if (v > UINT64_MAX / NS / unit)
			return -1;
		*out = v * unit * NS > now_ns ? 0 : now_ns - v * unit * NS;
		return 0;
	}
	return parse_iso(s, out);
}

static void put_actor(FILE *f, const Breaker__AuditRecord *rec)
{
	put_name(f, rec->user ? rec->user : "?");
	if (rec->has_uid && rec->uid == UINT32_MAX) /* TCP: no uid, maybe a CN */
		fputs("(-)", f);
	else if (rec->has_uid)
		fprintf(f, "(%" PRIu32 ")", rec->uid);
	else
		fputs("(?)", f);
	if (rec->has_pid)
		fprintf(f, "/%" PRIu32, rec->pid);
	else
		fputs("/?", f);
	fputc('@', f);
	put_name(f, rec->host ? rec->host : "?");
}

/* The record's scope, from->to and latch, in aligned columns. */
static void put_change(FILE *f, const Breaker__AuditRecord *rec)
{
	char modes[40];
	int cols;

	if (rec->group) { /* a group scope's trip/resume, or a member joining/leaving */
		cols = fprintf(f, "group:");
		cols += put_name(f, rec->group);
		if (rec->strategy) {
			cols += fprintf(f, " ");
			cols += put_name(f, rec->strategy);
		}
	} else if (rec->strategy) {
		cols = fprintf(f, "strategy:");
		cols += put_name(f, rec->strategy);
	} else {
		cols = fprintf(f, "global");
	}
	put_pad(f, cols, 24);
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__REFUSED && rec->has_suppressed)
		snprintf(modes, sizeof(modes), "%" PRIu32 " not recorded",
		         rec->suppressed);
	else if (rec->kind == BREAKER__AUDIT_RECORD__KIND__REFUSED)
		snprintf(modes, sizeof(modes), "%.20s?",
		         rec->command ? rec->command : "");
	else if (rec->has_from_mode || rec->has_to_mode)
		snprintf(modes, sizeof(modes), "%s->%s",
		         rec->has_from_mode ? mode_name(rec->from_mode) : "?",
		         rec->has_to_mode ? mode_name(rec->to_mode) : "?");
	else
		snprintf(modes, sizeof(modes), "-");
	cols = fprintf(f, " %-22s ", modes);
	if (!rec->has_reason_code)
		cols = fprintf(f, "-");
	else if (rec->reason_code == BREAKER__REASON_CODE__REASON_NONE && rec->forced)
		cols = fprintf(f, "every-latch"); /* each lowered to latch_mode */
	else
		cols = fprintf(f, "%s", reason_name(rec->reason_code));
	/* the latch's own mode, when it is not the scope's (always for every-latch) */
	if (rec->has_latch_mode && rec->has_reason_code && !rec->reason_code &&
	    rec->forced)
		cols += fprintf(f, "(each to %s)", mode_name(rec->latch_mode));
	else if (rec->has_latch_mode &&
	         (!rec->has_to_mode || rec->latch_mode != rec->to_mode))
		cols += fprintf(f, "(latch %s)", mode_name(rec->latch_mode));
	put_pad(f, cols, 20);
}

/* After the actor: a refusal's status, a proposal's state, who confirmed. */
static void put_auth(FILE *f, const Breaker__AuditRecord *rec)
{
	if (rec->peer_cn) {
		fputs(" cn=", f);
		json_str(f, rec->peer_cn);
	}
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__REFUSED && rec->has_status) {
		const char *st = status_name(rec->status);
		fprintf(f, " %s", st ? st : "STATUS_UNKNOWN");
	}
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__RESUME_PROPOSED)
		fputs(" AWAITS-SECOND-OPERATOR", f);
	if (rec->has_proposal_seq) {
		fprintf(f, " confirms seq=%" PRIu64 " proposed-by=", rec->proposal_seq);
		put_name(f, rec->proposer_user ? rec->proposer_user : "?");
		if (rec->has_proposer_uid && rec->proposer_uid != UINT32_MAX)
			fprintf(f, "(%" PRIu32 ")", rec->proposer_uid);
	}
}

/* A reconciliation's break report; a reload's hash and diff; baselines. */
static void put_rule_change(FILE *f, const Breaker__AuditRecord *rec)
{
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__RECONCILE && rec->evidence) {
		fputs(" report=", f);
		json_str(f, rec->evidence);
	}
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__CONFIG) {
		fputs(" rules-hash=", f);
		json_str(f, rec->rules_hash ? rec->rules_hash : "?");
		if (rec->config_diff) {
			fputs(" diff=", f);
			json_str(f, rec->config_diff);
		}
	}
	if (rec->incident) { /* docs/incidents.md */
		fputs(" incident=", f);
		put_name(f, rec->incident);
		if (rec->severity)
			fprintf(f, " severity=%s", rec->severity);
		if (rec->title) {
			fputs(" title=", f);
			json_str(f, rec->title);
		}
	}
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__WARNING && rec->has_utilisation)
		fprintf(f, " utilisation=%.0f%%", rec->utilisation * 100);
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__RULE_STATE) {
		if (rec->has_peak_pnl)
			fprintf(f, " peak-pnl=%.17g", rec->peak_pnl);
		if (rec->has_base_balance)
			fprintf(f, " base-balance=%.17g", rec->base_balance);
	}
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__FLAT) { /* cancel-all, confirmed */
		if (rec->has_halt_seq)
			fprintf(f, " halt-seq=%" PRIu64, rec->halt_seq);
		if (rec->has_block_after_ns)
			fprintf(f, " time-to-block-ns=%" PRIu64, rec->block_after_ns);
		if (rec->has_flat_after_ns)
			fprintf(f, " time-to-flat-ns=%" PRIu64, rec->flat_after_ns);
	}
}

/* After the reason: why a refusal was refused; a proposal's note. */
static void put_why(FILE *f, const Breaker__AuditRecord *rec)
{
	if (rec->refusal) {
		fputs(" why=", f);
		json_str(f, rec->refusal);
	}
	if ((rec->kind == BREAKER__AUDIT_RECORD__KIND__RESUME_PROPOSED ||
	     rec->kind == BREAKER__AUDIT_RECORD__KIND__RESUME ||
	     rec->kind == BREAKER__AUDIT_RECORD__KIND__REBASE) &&
	    rec->evidence) {
		fputs(" note=", f);
		json_str(f, rec->evidence);
	}
	put_rule_change(f, rec);
}

/*
 * One line: seq, UTC time, kind, scope, from->to (a refusal: the command
 * attempted), reason code, user(uid)/pid@host, [cn=], [status], [FORCED],
 * [slot=N], "reason", [why=].
 */
static void put_record(FILE *f, const Breaker__AuditRecord *rec)
{
	char t[BX_TIME_LEN];

	if (rec->has_seq)
		fprintf(f, "%6" PRIu64, rec->seq);
	else
		fputs("     ?", f);
	fprintf(f, " %s %-10s ", rec->has_wall_ns ? fmt_time(t, rec->wall_ns, 6) : "?",
	        rec->has_kind ? kind_name(rec->kind) : "?");
	put_change(f, rec);
	fputc(' ', f);
	put_actor(f, rec);
	put_auth(f, rec);
	if (rec->has_forced && rec->forced)
		fputs(" FORCED", f);
	if (rec->has_slot)
		fprintf(f, " slot=%" PRIu32, rec->slot);
	if (rec->new_name) { /* RENAME */
		fputs(" new_name=", f);
		put_name(f, rec->new_name);
	}
	if (rec->reason) {
		fputc(' ', f);
		json_str(f, rec->reason);
	}
	put_why(f, rec);
	fputc('\n', f);
}

static int print_record(const Breaker__AuditRecord *rec, uint64_t offset, void *arg)
{
	struct audit_ctx *x = arg;

	(void)offset;
	if (x->since_ns && (!rec->has_wall_ns || rec->wall_ns < x->since_ns))
		return 0;
	x->shown++;
	if (x->json && x->unverified) {
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);

		if (!m)
			return -ENOMEM;
		json_msg(m, &rec->base);
		fclose(m);
		/* the record's own fields, with the mark first */
		printf("{\"unverified\":true,\"offset\":%" PRIu64 "%s%s\n", offset,
		       len > 2 ? "," : "}", len > 2 ? buf + 1 : "");
		free(buf);
	} else if (x->json) {
		json_msg(stdout, &rec->base);
		fputc('\n', stdout);
	} else {
		if (x->unverified)
			fputs("UNVERIFIED ", stdout);
		put_record(stdout, rec);
	}
	return 0;
}

/* The segment header's head for the configured instance; false if none. */
static bool shm_head(const char *instance, struct bk_audit_head *h)
{
	char name[BK_INSTANCE_MAX + 16];
	struct bk_shm *m;
	struct stat st;
	bool ok = false;
	int fd;

	if (bk_shm_name(name, sizeof(name), instance) < 0 ||
	    (fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0)) < 0)
		return false;
	if (fstat(fd, &st) == 0 && (size_t)st.st_size == BK_SHM_SIZE &&
	    (m = mmap(NULL, BK_SHM_SIZE, PROT_READ, MAP_SHARED, fd, 0)) != MAP_FAILED) {
		ok = m->hdr.magic == BK_SHM_MAGIC &&
		     atomic_load(&m->hdr.layout_version) == BK_LAYOUT_VERSION &&
		     bk_tail_shm_head(m, h);
		munmap(m, BK_SHM_SIZE);
	}
	close(fd);
	return ok;
}

/*
 * The durable heads, read before the scan: the log at scan time holds at
 * least what they say. The segment is read only for the configured log,
 * not for --file.
 */
void audit_heads_read(struct cli *c, const char *path, bool configured,
                      struct audit_heads *h)
{
	char hp[PATH_MAX + 16], marker[PATH_MAX + 32], buf[8] = "";
	int rv, fd;

	memset(h, 0, sizeof(*h));
	h->have_shm = configured && shm_head(c->cfg.instance, &h->shm);
	if (bk_audit_head_path(path, hp, sizeof(hp)) < 0)
		return;
	rv = bk_audit_head_read(hp, &h->file);
	h->have_file = rv == 0 && h->file.seq;
	if (rv == -EBADMSG)
		snprintf(h->problem, sizeof(h->problem),
		         "head file %s is damaged (no valid slot)", hp);
	if (rv != -ENOENT || !configured)
		return;
	snprintf(marker, sizeof(marker), "%s/audit.log.created", c->cfg.state_dir);
	if ((fd = open(marker, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if (read(fd, buf, sizeof(buf) - 1) > 0 && strncmp(buf, "head\n", 5) == 0)
		snprintf(h->problem, sizeof(h->problem),
		         "head file %s is missing, but the log had one", hp);
	close(fd);
}

uint64_t audit_heads_seq(const struct audit_heads *h)
{
	uint64_t f = h->have_file ? h->file.seq : 0, s = h->have_shm ? h->shm.seq : 0;

	return f > s ? f : s;
}

void audit_heads_judge(const struct audit_heads *h, struct bk_audit_scan *scan)
{
	if (!bk_tail_judge(scan, h->have_file ? &h->file : NULL,
	                   h->have_shm ? &h->shm : NULL) &&
	    h->problem[0] && scan->verdict == BK_AUDIT_OK) {
		scan->verdict = BK_AUDIT_CORRUPT;
		snprintf(scan->why, sizeof(scan->why), "%.150s", h->problem);
	}
}

static const char *verdict_name(enum bk_audit_verdict v)
{
	switch (v) {
	case BK_AUDIT_OK:
		return "OK";
	case BK_AUDIT_TORN_TAIL:
		return "TORN_TAIL";
	case BK_AUDIT_CORRUPT:
		return "CORRUPT";
	case BK_AUDIT_BAD_HEADER:
		return "BAD_HEADER";
	}
	return "UNKNOWN";
}

static void verdict_json(const char *path, const struct bk_audit_scan *s)
{
	fputs("{\"path\":", stdout);
	json_str(stdout, path);
	printf(",\"verdict\":\"%s\",\"ok\":%s,\"records\":%" PRIu64
	       ",\"last_seq\":%" PRIu64 ",\"valid_len\":%" PRIu64 ",\"file_len\":%" PRIu64
	       ",\"last_hash\":\"",
	       verdict_name(s->verdict), s->verdict == BK_AUDIT_OK ? "true" : "false",
	       s->records, s->last_seq, s->valid_len, s->file_len);
	for (unsigned i = 0; i < BK_AUDIT_HASH_LEN; i++)
		printf("%02x", s->last_hash[i]);
	fputs("\",\"why\":", stdout);
	json_str(stdout, s->verdict == BK_AUDIT_OK ? "" : s->why);
	fputs("}\n", stdout);
}

/* The log did not verify: say what, where, and what still holds. */
static void verdict_bad(const char *path, const struct bk_audit_scan *s)
{
	static const char torn[] =
	    "the last record is incomplete: a crash during a write (breakerd cuts\n"
	    "it back when it starts), or a write in flight right now (run again)\n";
	static const char corrupt[] =
	    "nothing after the verified bytes can be trusted: keep a copy of the\n"
	    "file for the investigation\n";

	fprintf(stderr, "audit log %s FAILED verification (%s): ", path,
	        verdict_name(s->verdict));
	put_text(stderr, s->why);
	fprintf(stderr,
	        "\nverified: %" PRIu64 " records, last seq %" PRIu64 ", first %" PRIu64
	        " of %" PRIu64 " bytes\n",
	        s->records, s->last_seq, s->valid_len, s->file_len);
	if (s->verdict == BK_AUDIT_TORN_TAIL && s->valid_len >= BK_AUDIT_HDR_SIZE)
		fputs(torn, stderr);
	else if (s->verdict == BK_AUDIT_CORRUPT)
		fputs(corrupt, stderr);
}

int cmd_audit(struct cli *c, const struct cli_args *a)
{
	struct audit_ctx x = {.json = a->json};
	struct bk_audit_scan scan;
	const char *path = a->file;
	char t[BX_TIME_LEN];
	struct audit_heads h;
	long rest;
	int rv;

	if (a->since && parse_since(a->since, now_wall_ns(), &x.since_ns) < 0)
		return cli_usage_error(a->cmd,
		                       "bad --since '%s': use 2026-11-23T09:00:00Z "
		                       "(UTC), unix seconds, or an age like 10m, 2h, 1d",
		                       a->since);
	if (a->host && !a->anchors)
		return cli_usage_error(a->cmd, "--host goes with --anchors");
	if (a->anchors && (a->since || !a->verify))
		return cli_usage_error(a->cmd,
		                       "--anchors goes with --verify (and no --since)");
	if ((!path || a->anchors) && (rv = cli_config(c)))
		return rv;
	if (a->anchors && !c->cfg.cluster_name[0])
		return cli_usage_error(a->cmd,
		                       "--anchors needs a [cluster] section (name, "
		                       "endpoints) in the config: the anchors are "
		                       "in its etcd");
	if (!path)
		path = c->cfg.audit_path;
	audit_heads_read(c, path, !a->file, &h);
	memset(&scan, 0, sizeof(scan));
	rv = bk_audit_scan_to(path, a->verify ? NULL : print_record, &x,
	                      audit_heads_seq(&h), &scan);
	if (rv != 0) {
		fprintf(stderr, "breaker audit: cannot read audit log %s: %s\n", path,
		        rv < 0 ? strerror(-rv) : "scan stopped");
		return BX_AUDIT;
	}
	audit_heads_judge(&h, &scan);
	if (!a->verify && scan.verdict == BK_AUDIT_CORRUPT) {
		x.unverified = true;
		if (!a->json)
			printf("---- damage at offset %" PRIu64
			       ": the records below come after it, UNVERIFIED ----\n",
			       scan.valid_len);
		rest = bk_audit_scan_rest(path, &scan, print_record, &x);
		if (rest < 0)
			fprintf(stderr, "breaker audit: reading past the damage: %s\n",
			        strerror((int)-rest));
		else
			fprintf(stderr,
			        "%ld record%s after the damage shown UNVERIFIED (their "
			        "chain is not checked)\n",
			        rest, rest == 1 ? "" : "s");
	}
	if (a->verify && a->json)
		verdict_json(path, &scan);
	else if (a->verify && scan.verdict == BK_AUDIT_OK)
		printf("audit log OK: %" PRIu64 " records, last seq %" PRIu64 "\n",
		       scan.records, scan.last_seq);
	if (scan.verdict != BK_AUDIT_OK) {
		verdict_bad(path, &scan);
		return BX_AUDIT;
	}
	if (a->anchors) /* the log verifies alone: now against etcd's anchors */
		return cli_audit_anchors(c, a, path);
	if (!a->verify && !a->json && x.since_ns && x.shown == 0)
		fprintf(stderr, "no records since %s (%" PRIu64 " in the log)\n",
		        fmt_time(t, x.since_ns, 0), scan.records);
	return BX_OK;
}

void audit_put_line(FILE *f, const Breaker__AuditRecord *rec)
{
	put_record(f, rec);
}
