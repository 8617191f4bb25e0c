/*
 * breaker_anchor.c - `breaker audit --verify --anchors`: the local log
 * against the chain heads its breakerd anchored in etcd (bk_anchor.h,
 * docs/audit-log.md#anchors-in-etcd).
 *
 * An anchor says "record N of host H hashed to X at time T". The log must
 * still hold record N with that hash: the hash of record N is the next
 * record's prev_hash (or the scan's last hash for the last record), and it
 * covers every record before N through the chain, so a log rewritten
 * anywhere at or before N (even re-chained so that it verifies alone), cut
 * below N, or replaced by a fork fails. A log merely ahead of its newest
 * anchor is fine. An anchor key that etcd says was written more than once
 * (version > 1) was overwritten, and anchors whose etcd revisions do not
 * grow with their seqs were deleted and written again; breakerd does
 * neither: tampered too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bk_anchor.h"
#include "bk_etcd_kv.h"
#include "breaker.h"

struct anch {
	const struct bk_anchor_rec *r;
	size_t n, i; /* anchors; the next one to compare */
	size_t bad;  /* index of the first that does not match (n: none) */
	uint8_t got[BK_AUDIT_HASH_LEN];
};

static void hex(char out[65], const uint8_t h[BK_AUDIT_HASH_LEN])
{
	for (unsigned i = 0; i < BK_AUDIT_HASH_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Record s carries the hash of record s - 1: compare the anchors there. */
static void compare(struct anch *x, uint64_t seq, const uint8_t *hash)
{
	while (x->i < x->n && x->r[x->i].seq <= seq) {
		const struct bk_anchor_rec *r = &x->r[x->i];
		if (r->seq == seq && x->bad == x->n &&
		    memcmp(r->hash, hash, BK_AUDIT_HASH_LEN) != 0) {
			x->bad = x->i;
			memcpy(x->got, hash, BK_AUDIT_HASH_LEN);
		}
		x->i++;
	}
}

static int on_record(const Breaker__AuditRecord *rec, uint64_t offset, void *arg)
{
	struct anch *x = arg;

	(void)offset;
	if (rec->seq > 1 && rec->has_prev_hash && rec->prev_hash.len == BK_AUDIT_HASH_LEN)
		compare(x, rec->seq - 1, rec->prev_hash.data);
	return 0;
}

static int tampered(const char *path, const char *host, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int tampered(const char *path, const char *host, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr,
	        "audit log %s does NOT match its anchors in etcd (host %s): ", path,
	        host);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nthe log was changed after its breakerd anchored it: keep a copy for the "
	      "investigation; the anchors are in etcd under anchors/<host>/\n",
	      stderr);
	return BX_AUDIT;
}

/* The anchors, judged; the scan verified the chain alone already. */
static int judge(const char *path, const char *host, const struct anch *x,
                 const struct bk_audit_scan *s, bool json, bool quiet)
{
	char t[BX_TIME_LEN], want[65], got[65];
	const struct bk_anchor_rec *r;

	for (size_t i = 0; i < x->n; i++) {
		r = &x->r[i];
		if (r->bad)
			return tampered(path, host,
			                "the anchor at etcd revision %" PRId64
			                " cannot be read (not an anchor's JSON)",
			                r->mod_rev);
		if (r->version > 1)
			return tampered(path, host,
			                "the anchor of record %" PRIu64
			                " was overwritten in etcd (version %" PRId64
			                "; breakerd writes each anchor once)",
			                r->seq, r->version);
	}
	if (x->bad < x->n) {
		r = &x->r[x->bad];
		hex(want, r->hash);
		hex(got, x->got);
		return tampered(
		    path, host,
		    "record %" PRIu64 " hashes to %s, but it was anchored as %s "
		    "at %s (etcd revision %" PRId64
		    "): the log was rewritten at or before record %" PRIu64,
		    r->seq, got, want, fmt_time(t, r->time_ns, 3), r->mod_rev, r->seq);
	}
	r = &x->r[x->n - 1];
	if (r->seq > s->last_seq)
		return tampered(path, host,
		                "the log ends at record %" PRIu64 ", but record %" PRIu64
		                " was anchored at %s (etcd revision %" PRId64
		                "): records were cut off, or the log was rolled back",
		                s->last_seq, r->seq, fmt_time(t, r->time_ns, 3),
		                r->mod_rev);
	/* breakerd anchors one chain in seq order: a later etcd revision for
	 * an older record means that anchor was deleted and written again, or
	 * a second chain (a fork) was anchored under this host */
	for (size_t i = 1; i < x->n; i++)
		if (x->r[i].mod_rev <= x->r[i - 1].mod_rev)
			return tampered(path, host,
			                "the anchor of record %" PRIu64
			                " was written after the anchor of record %" PRIu64
			                " (etcd revisions %" PRId64 " and %" PRId64
			                "): anchors were deleted and written again, or "
			                "another log was anchored as this host's",
			                x->r[i - 1].seq, x->r[i].seq, x->r[i - 1].mod_rev,
			                x->r[i].mod_rev);
	if (quiet)
		return BX_OK;
	if (json)
		printf("{\"anchors_ok\":true,\"host\":\"%s\",\"anchors\":%zu,\"newest_"
		       "seq\":%" PRIu64 ",\"newest_time_ns\":%" PRIu64
		       ",\"last_seq\":%" PRIu64 "}\n",
		       host, x->n, r->seq, r->time_ns, s->last_seq);
	else
		printf("audit log matches its anchors in etcd: %zu anchor%s of host %s, "
		       "newest record %" PRIu64 " anchored at %s; the log is %" PRIu64
		       " record%s ahead of it\n",
		       x->n, x->n == 1 ? "" : "s", host, r->seq,
		       fmt_time(t, r->time_ns, 3), s->last_seq - r->seq,
		       s->last_seq - r->seq == 1 ? "" : "s");
	return BX_OK;
}

int cli_anchors_check(struct cli *c, const char *path, const char *host_arg, bool json,
                      bool quiet)
{
	char host[64], prefix[BK_ETCD_KEY_MAX];
	struct bk_anchor_rec *r = NULL;
	struct bk_etcd_conn conn;
	struct bk_audit_scan s;
	struct anch x = {0};
	size_t n = 0;
	int rv;

	if ((rv = cli_firm_conn(c, "audit", &conn)))
		return rv;
	if (host_arg)
		snprintf(host, sizeof(host), "%s", host_arg);
	else
		bk_anchor_host(host, sizeof(host), &c->cfg);
	if (bk_anchor_prefix(prefix, sizeof(prefix), c->cfg.cluster_name, host) < 0) {
		bk_etcd_conn_free(&conn);
		return cli_usage_error("audit", "--host '%s' is too long", host);
	}
	if ((rv = bk_anchor_read(&conn, prefix, &r, &n)) < 0) {
		fprintf(stderr, "breaker: etcd: %s (%s): the anchors could not be read\n",
		        conn.err[0] ? conn.err : "no answer", strerror(-rv));
		bk_etcd_conn_free(&conn);
		return rv == -EACCES ? BX_REFUSED : BX_UNREACHABLE;
	}
	bk_etcd_conn_free(&conn);
	if (n == 0) {
		fprintf(
		    stderr,
		    "breaker: no anchors of host %s in etcd (%s): nothing to check "
		    "the log against (is [cluster] host the log's host? --host NAME)\n",
		    host, prefix);
		return BX_AUDIT;
	}
	x.r = r;
	x.n = n;
	x.bad = n;
	memset(&s, 0, sizeof(s));
	rv = bk_audit_scan(path, on_record, &x, &s);
	if (rv != 0 || s.verdict != BK_AUDIT_OK) {
		fprintf(stderr,
		        "breaker: %s does not verify on its own: see "
		        "'breaker audit --verify'\n",
		        path);
		free(r);
		return BX_AUDIT;
	}
	if (s.last_seq)
		compare(&x, s.last_seq, s.last_hash);
	rv = judge(path, host, &x, &s, json, quiet);
	free(r);
	return rv;
}

int cli_audit_anchors(struct cli *c, const struct cli_args *a, const char *path)
{
	return cli_anchors_check(c, path, a->host, a->json, false);
}
