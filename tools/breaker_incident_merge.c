/*
 * breaker_incident_merge.c - `breaker incident export --log [HOST=]PATH
 * --log ...`: several hosts' audit logs merged into one timeline
 * (docs/incidents.md#several-hosts).
 *
 * Each log is verified first, as `breaker audit --verify --file PATH` does
 * (chain, CRCs, the head file beside it); one that does not verify is
 * reported and left out of the merge, never merged silently, and the exit
 * status is 4. The records of the rest are ordered by wall-clock time (then
 * host, then seq), each line naming its host. A firm latch change is one
 * etcd revision: the FIRM_APPLIED records of every host with the same
 * (revision, key, release) are shown as ONE firm event "applied on N of M
 * hosts", with the spread of the apply times (first to last host) and the
 * hosts that did not record it; two hosts that read different values for
 * the same revision are flagged. Wall clocks of different hosts are only as
 * close as their NTP: the spread includes the clocks' offset.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bk_audit.h"
#include "breaker.h"

#define MERGE_RECS_MAX (4u << 20)

struct mlog {
	char label[64];
	const char *path;
	bool ok;
	bool anchored;    /* --anchors: it matches its host's anchors in etcd */
	bool off_anchors; /* --anchors: it does not (or there are none) */
	struct bk_audit_scan scan;
	size_t records; /* in the period */
};

struct mrec {
	Breaker__AuditRecord *rec; /* our own copy */
	int host;                  /* index into logs */
	int group;                 /* FIRM_APPLIED: its firm event, else -1 */
};

struct fevent {
	uint64_t rev;
	const char *key;
	bool deleted;
	uint64_t first, last; /* wall ns of the first and last host's apply */
	int first_host, last_host;
	uint32_t hosts;     /* bit per log */
	bool value_differs; /* two hosts read different value hashes */
	const char *sha;    /* the first host's */
	int mode;           /* the latch's mode (-1: a release or unknown) */
	bool shown;
};

struct merge {
	struct mlog logs[BX_LOGS_MAX];
	int n_logs;
	struct mrec *r;
	size_t n, cap;
	struct fevent *ev;
	size_t n_ev, cap_ev;
	uint64_t since, until;
	int cur; /* the log being read */
	bool json, oom, anchors;
};

/* A copy of rec that outlives the scan's callback. */
static Breaker__AuditRecord *copy_rec(const Breaker__AuditRecord *rec)
{
	size_t len = breaker__audit_record__get_packed_size(rec);
	uint8_t *buf = malloc(len ? len : 1);
	Breaker__AuditRecord *c;

	if (!buf)
		return NULL;
	breaker__audit_record__pack(rec, buf);
	c = breaker__audit_record__unpack(NULL, len, buf);
	free(buf);
	return c;
}

static int collect(const Breaker__AuditRecord *rec, uint64_t offset, void *arg)
{
	struct merge *m = arg;

	(void)offset;
	if (!rec->has_wall_ns || rec->wall_ns < m->since || rec->wall_ns > m->until)
		return 0;
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 1024;
		struct mrec *r =
		    cap <= MERGE_RECS_MAX ? realloc(m->r, cap * sizeof(*r)) : NULL;
		if (!r) {
			m->oom = true;
			return -ENOMEM;
		}
		m->r = r;
		m->cap = cap;
	}
	if (!(m->r[m->n].rec = copy_rec(rec))) {
		m->oom = true;
		return -ENOMEM;
	}
	m->r[m->n].host = m->cur;
	m->r[m->n].group = -1;
	m->n++;
	m->logs[m->cur].records++;
	return 0;
}

static int by_time(const void *x, const void *y)
{
	const struct mrec *a = x, *b = y;

	if (a->rec->wall_ns != b->rec->wall_ns)
		return a->rec->wall_ns < b->rec->wall_ns ? -1 : 1;
	if (a->host != b->host)
		return a->host < b->host ? -1 : 1;
	return a->rec->seq < b->rec->seq ? -1 : a->rec->seq > b->rec->seq;
}

static bool is_applied(const Breaker__AuditRecord *r)
{
	return r->has_kind && r->kind == BREAKER__AUDIT_RECORD__KIND__FIRM_APPLIED &&
	       r->has_firm_revision && r->firm_key;
}

/* The FIRM_APPLIED records, grouped by (revision, key, release). */
static int correlate(struct merge *m)
{
	for (size_t i = 0; i < m->n; i++) {
		const Breaker__AuditRecord *r = m->r[i].rec;
		bool del = r->has_firm_deleted && r->firm_deleted;
		size_t g;

		if (!is_applied(r))
			continue;
		for (g = 0; g < m->n_ev; g++)
			if (m->ev[g].rev == r->firm_revision && m->ev[g].deleted == del &&
			    strcmp(m->ev[g].key, r->firm_key) == 0)
				break;
		if (g == m->n_ev) {
			if (m->n_ev == m->cap_ev) {
				size_t cap = m->cap_ev ? 2 * m->cap_ev : 64;
				struct fevent *e = realloc(m->ev, cap * sizeof(*e));
				if (!e)
					return -ENOMEM;
				m->ev = e;
				m->cap_ev = cap;
			}
			m->ev[g] = (struct fevent){
			    .rev = r->firm_revision,
			    .key = r->firm_key,
			    .deleted = del,
			    .first = r->wall_ns,
			    .first_host = m->r[i].host,
			    .sha = r->firm_value_sha256,
			    .mode = r->has_latch_mode && !del ? (int)r->latch_mode : -1};
			m->n_ev++;
		}
		struct fevent *e = &m->ev[g];
		m->r[i].group = (int)g;
		if (e->hosts & 1u << m->r[i].host)
			continue; /* a restart records the held latches again */
		e->hosts |= 1u << m->r[i].host;
		e->last = r->wall_ns; /* in time order: the latest host's first apply */
		e->last_host = m->r[i].host;
		if (e->sha && r->firm_value_sha256 &&
		    strcmp(e->sha, r->firm_value_sha256))
			e->value_differs = true;
	}
	return 0;
}

static void put_hosts(FILE *f, const struct merge *m, uint32_t mask, bool in)
{
	bool first = true;

	for (int h = 0; h < m->n_logs; h++)
		if (m->logs[h].ok && !(mask & 1u << h) == !in) {
			fprintf(f, "%s%s", first ? "" : ", ", m->logs[h].label);
			first = false;
		}
}

static int ok_hosts(const struct merge *m)
{
	int n = 0;

	for (int h = 0; h < m->n_logs; h++)
		n += m->logs[h].ok;
	return n;
}

static void md_event(const struct merge *m, const struct fevent *e)
{
	char t[BX_TIME_LEN], d[32];
	int n = __builtin_popcount(e->hosts), of = ok_hosts(m);

	fmt_dur(d, sizeof(d), e->last - e->first);
	fprintf(stdout,
	        "%-16s   FIRM %s revision %" PRIu64 " %s applied on %d of %d hosts (",
	        "*", e->deleted ? "RELEASE" : "LATCH", e->rev, e->key, n, of);
	put_hosts(stdout, m, e->hosts, true);
	fprintf(stdout, "); spread %s, first %s at %s", d, m->logs[e->first_host].label,
	        fmt_time(t, e->first, 6));
	fprintf(stdout, ", last %s at %s", m->logs[e->last_host].label,
	        fmt_time(t, e->last, 6));
	if (n < of) {
		fputs("; NOT on ", stdout);
		put_hosts(stdout, m, e->hosts, false);
	}
	if (e->value_differs)
		fputs("; VALUE DIFFERS between hosts (firm_value_sha256)", stdout);
	fputc('\n', stdout);
}

static void json_event(const struct merge *m, const struct fevent *e)
{
	printf("{\"firm_event\":{\"revision\":%" PRIu64 ",\"key\":", e->rev);
	json_str(stdout, e->key);
	printf(",\"release\":%s,\"hosts\":%d,\"of\":%d,\"first_ns\":%" PRIu64
	       ",\"last_ns\":%" PRIu64 ",\"spread_ns\":%" PRIu64 ",\"value_differs\":%s,"
	       "\"applied_on\":[",
	       e->deleted ? "true" : "false", __builtin_popcount(e->hosts), ok_hosts(m),
	       e->first, e->last, e->last - e->first,
	       e->value_differs ? "true" : "false");
	for (int h = 0, k = 0; h < m->n_logs; h++)
		if (e->hosts & 1u << h) {
			fputs(k++ ? "," : "", stdout);
			json_str(stdout, m->logs[h].label);
		}
	fputs("]}}\n", stdout);
}

static void put_line(struct merge *m, struct mrec *x)
{
	if (x->group >= 0) { /* a firm event: once, at its first apply */
		struct fevent *e = &m->ev[x->group];
		if (e->shown)
			return;
		e->shown = true;
		if (m->json)
			json_event(m, e);
		else
			md_event(m, e);
		return;
	}
	if (m->json) {
		fputs("{\"host\":", stdout);
		json_str(stdout, m->logs[x->host].label);
		fputs(",\"record\":", stdout);
		json_msg(stdout, &x->rec->base);
		fputs("}\n", stdout);
		return;
	}
	fprintf(stdout, "%-16s ", m->logs[x->host].label);
	audit_put_line(stdout, x->rec);
}

/* "HOST=PATH" (HOST has no '/') or "PATH"; the label then is the records'
 * host, made unique. */
static void parse_log(struct merge *m, const char *arg, struct mlog *l)
{
	const char *eq = strchr(arg, '=');

	if (eq && eq != arg && !memchr(arg, '/', (size_t)(eq - arg))) {
		snprintf(l->label, sizeof(l->label), "%.*s", (int)(eq - arg), arg);
		l->path = eq + 1;
	} else {
		l->path = arg;
	}
	(void)m;
}

/* A log with no label: the host its first record names, made unique. */
static void label_from(struct merge *m, int h, const char *host)
{
	struct mlog *l = &m->logs[h];
	bool taken;

	if (l->label[0])
		return;
	for (int n = 1;; n++) {
		if (n == 1)
			snprintf(l->label, sizeof(l->label), "%.60s", host ? host : "?");
		else
			snprintf(l->label, sizeof(l->label), "%.50s#%d",
			         host ? host : "?", n);
		taken = false;
		for (int i = 0; i < h; i++)
			taken |= strcmp(m->logs[i].label, l->label) == 0;
		if (!taken)
			return;
	}
}

/* A log that is not merged: drop what was collected from it. */
static void drop(struct merge *m, struct mlog *l, size_t before)
{
	for (size_t i = before; i < m->n; i++)
		breaker__audit_record__free_unpacked(m->r[i].rec, NULL);
	m->n = before;
	l->records = 0;
}

/* Verify one log (chain, CRCs, its head file), then read its records. */
static int read_one(struct cli *c, struct merge *m, int h)
{
	struct mlog *l = &m->logs[h];
	struct audit_heads hd;
	size_t before = m->n;
	int rv;

	audit_heads_read(c, l->path, false, &hd);
	memset(&l->scan, 0, sizeof(l->scan));
	m->cur = h;
	rv = bk_audit_scan_to(l->path, collect, m, audit_heads_seq(&hd), &l->scan);
	if (rv == 0)
		audit_heads_judge(&hd, &l->scan);
	l->ok = rv == 0 && l->scan.verdict == BK_AUDIT_OK;
	label_from(m, h, m->n > before ? m->r[before].rec->host : NULL);
	if (l->ok && m->anchors) { /* and against its host's anchors in etcd */
		int arv = cli_anchors_check(c, l->path, l->label, false, true);
		if (arv != BX_OK && arv != BX_AUDIT)
			return arv; /* etcd unreachable, refused: no half answer */
		l->ok = arv == BX_OK;
		l->anchored = l->ok;
		l->off_anchors = !l->ok;
		if (!l->ok) {
			drop(m, l, before);
			fprintf(
			    stderr,
			    "breaker incident: host %s: audit log %s does not match its "
			    "anchors in etcd: NOT merged\n",
			    l->label, l->path);
			return 0;
		}
	}
	if (l->ok)
		return 0;
	drop(m, l, before); /* not merged */
	if (m->oom)
		return -ENOMEM;
	fprintf(stderr, "breaker incident: host %s: audit log %s FAILED verification (",
	        l->label, l->path);
	put_text(stderr, rv ? strerror(rv < 0 ? -rv : EIO) : l->scan.why);
	fprintf(stderr, "): NOT merged; see 'breaker audit --verify --file %s'\n",
	        l->path);
	return 0;
}

/* JSON: the first line says which logs were merged. */
static void json_head(const struct merge *m)
{
	fputs("{\"logs\":[", stdout);
	for (int h = 0; h < m->n_logs; h++) {
		const struct mlog *l = &m->logs[h];
		fputs(h ? ",{\"host\":" : "{\"host\":", stdout);
		json_str(stdout, l->label);
		fputs(",\"path\":", stdout);
		json_str(stdout, l->path);
		printf(",\"verified\":%s,\"anchors\":\"%s\",\"last_seq\":%" PRIu64
		       ",\"records\":%zu,\"merged\":%s}",
		       l->ok || l->off_anchors ? "true" : "false",
		       l->anchored      ? "match"
		       : l->off_anchors ? "MISMATCH"
		                        : "unchecked",
		       l->scan.last_seq, l->records, l->ok ? "true" : "false");
	}
	fputs("]}\n", stdout);
}

static void md_head(const struct merge *m)
{
	char t1[BX_TIME_LEN], t2[BX_TIME_LEN];

	printf("# Merged timeline of %d hosts", m->n_logs);
	if (m->since)
		printf(", %s .. %s", fmt_time(t1, m->since, 0),
		       fmt_time(t2, m->until, 0));
	printf("\n\n| host | audit log | chain | records |\n|---|---|---|---|\n");
	for (int h = 0; h < m->n_logs; h++) {
		const struct mlog *l = &m->logs[h];
		fputs("| ", stdout);
		put_md(stdout, l->label);
		fputs(" | ", stdout);
		put_md(stdout, l->path);
		fputs(" | ", stdout);
		if (l->ok)
			printf("OK, last seq %" PRIu64 "%s", l->scan.last_seq,
			       l->anchored ? ", matches its anchors in etcd" : "");
		else if (l->off_anchors)
			fputs("does NOT match its anchors in etcd: not merged", stdout);
		else
			fputs("FAILED verification: not merged", stdout);
		printf(" | %zu |\n", l->records);
	}
	printf("\nFirm events (one etcd revision applied on several hosts) are one line "
	       "marked *; wall clocks of different hosts differ by their NTP "
	       "offset.\n\n```\n");
}

int cli_incident_merge(struct cli *c, const struct cli_args *a)
{
	struct merge *m = calloc(1, sizeof(*m));
	int rv = 0, bad = 0;

	if (!m) {
		fputs("breaker incident: out of memory\n", stderr);
		return BX_AUDIT;
	}
	m->until = UINT64_MAX;
	m->json = a->json || (a->format && strcmp(a->format, "json") == 0);
	if (a->npos > 1 || a->file)
		rv = cli_usage_error(a->cmd,
		                     "export --log takes no incident id and no --file");
	else if (a->format && strcmp(a->format, "md") && strcmp(a->format, "json"))
		rv = cli_usage_error(a->cmd, "--format is md or json, not '%s'",
		                     a->format);
	else if (a->since && parse_since(a->since, now_wall_ns(), &m->since) < 0)
		rv = cli_usage_error(a->cmd, "bad --since '%s'", a->since);
	else if (a->until && parse_since(a->until, now_wall_ns(), &m->until) < 0)
		rv = cli_usage_error(a->cmd, "bad --until '%s'", a->until);
	else if (m->until < m->since)
		rv = cli_usage_error(a->cmd, "--until is before --since");
	m->anchors = a->anchors;
	if (rv == 0 && m->anchors && (rv = cli_config(c)) == 0 && !c->cfg.cluster_name[0])
		rv = cli_usage_error(a->cmd, "--anchors needs a [cluster] section (name, "
		                             "endpoints) in the config");
	m->n_logs = a->n_logs;
	for (int h = 0; rv == 0 && h < m->n_logs; h++) {
		parse_log(m, a->logs[h], &m->logs[h]);
		if ((rv = read_one(c, m, h)) < 0) {
			fputs("breaker incident: out of memory\n", stderr);
			rv = BX_AUDIT;
		}
		bad += !m->logs[h].ok;
	}
	if (rv == 0) {
		if (m->n) /* qsort(NULL, 0, ...) is undefined */
			qsort(m->r, m->n, sizeof(*m->r), by_time);
		if (correlate(m) < 0) {
			fputs("breaker incident: out of memory\n", stderr);
			rv = BX_AUDIT;
		}
	}
	if (rv == 0) {
		if (m->json)
			json_head(m);
		else
			md_head(m);
		for (size_t i = 0; i < m->n; i++)
			put_line(m, &m->r[i]);
		if (!m->json)
			fputs("```\n", stdout);
		rv = bad ? BX_AUDIT : BX_OK;
	}
	for (size_t i = 0; i < m->n; i++)
		breaker__audit_record__free_unpacked(m->r[i].rec, NULL);
	free(m->r);
	free(m->ev);
	free(m);
	return rv;
}
