/*
 * breaker incident open|ack|note|resolve|list|stats (docs/incidents.md).
 *
 * open/ack/note/resolve are commands to breakerd, which audits them next to
 * the trips (and refuses an unknown id, a second ack or resolve). list and
 * stats read the audit log itself, like export: they work with breakerd down.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bk_audit.h"
#include "bk_incident.h"
#include "breaker.h"

#define ID_HELP  "INC-YYYY-NNN (3 to 6 digits), e.g. INC-2026-001"
#define LIST_MAX 1024

/* ---- open, ack, note, resolve -------------------------------------------------- */

static void say_incident(const struct cli_args *a, const Breaker__Reply *r)
{
	const char *op = a->pos[0];

	printf("incident ");
	put_name(stdout, r->incident ? r->incident : a->npos > 1 ? a->pos[1] : "?");
	printf(" %s", strcmp(op, "open") == 0   ? "opened"
	              : strcmp(op, "ack") == 0  ? "acknowledged"
	              : strcmp(op, "note") == 0 ? "noted"
	                                        : "resolved");
}

int cmd_incident_life(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__IncidentCmd m = BREAKER__INCIDENT_CMD__INIT;
	const char *op = a->pos[0];
	int want = strcmp(op, "note") == 0 ? 3 : 2, rv;

	if (strcmp(op, "open") && strcmp(op, "ack") && strcmp(op, "note") &&
	    strcmp(op, "resolve"))
		return cli_usage_error(
		    a->cmd,
		    "unknown subcommand '%s': export, open, ack, note, "
		    "resolve, list or stats",
		    op);
	if (a->npos != want && !(strcmp(op, "open") == 0 && a->npos == 1))
		return cli_usage_error(a->cmd, "%s takes %s", op,
		                       want == 3 ? "ID TEXT" : "ID");
	if (a->npos > 1 && !bk_incident_id_valid(a->pos[1]))
		return cli_usage_error(a->cmd, "bad incident id '%s': " ID_HELP,
		                       a->pos[1]);
	if (strcmp(op, "open") == 0) {
		if (!bk_incident_severity_parse(a->severity))
			return cli_usage_error(
			    a->cmd, "open needs --severity P1, P2, P3 or P4%s%s",
			    a->severity ? ", not " : "", a->severity ? a->severity : "");
		if (!a->title || !*a->title)
			return cli_usage_error(a->cmd, "open needs --title TEXT");
	} else if (a->severity || a->title || a->commander) {
		return cli_usage_error(a->cmd, "--severity, --title and --commander go "
		                               "with open");
	}
	if (strcmp(op, "resolve") == 0 && (!a->resolution || !*a->resolution))
		return cli_usage_error(a->cmd, "resolve needs --resolution TEXT");
	if (strcmp(op, "resolve") && a->resolution)
		return cli_usage_error(a->cmd, "--resolution goes with resolve");
	if ((rv = cli_config(c)))
		return rv;
	m.op = (char *)op;
	m.id = a->npos > 1 ? a->pos[1] : NULL;
	m.severity = a->severity;
	m.title = a->title;
	m.commander = a->commander;
	m.text = want == 3 ? a->pos[2] : a->resolution;
	req.cmd_case = BREAKER__REQUEST__CMD_INCIDENT;
	req.incident = &m;
	return send_simple(c, a, &req, say_incident);
}

/* ---- list and stats: from the log -------------------------------------------- */

struct inc_row {
	char id[16], sev[4], title[96], commander[64], opened_by[32];
	uint64_t opened, first_trip, detect, acked, all_clear, resolved;
	uint64_t ttd_ns;
	unsigned trips;
	bool auto_opened, have_ttd;
	int held; /* scopes held under it now (trip +1 per scope, resume to ACTIVE -1) */
};

struct inc_list {
	struct inc_row *rows;
	unsigned n;
	uint64_t since;
};

static struct inc_row *row_of(struct inc_list *l, const char *id, bool add)
{
	for (unsigned i = 0; i < l->n; i++)
		if (strcmp(l->rows[i].id, id) == 0)
			return &l->rows[i];
	if (!add || l->n == LIST_MAX)
		return NULL;
	memset(&l->rows[l->n], 0, sizeof(l->rows[0]));
	snprintf(l->rows[l->n].id, sizeof(l->rows[0].id), "%s", id);
	return &l->rows[l->n++];
}

/* A rule trip's time to detect, as export computes it (docs/incidents.md). */
static uint64_t rule_ttd(const Breaker__AuditRecord *rec)
{
	const char *p;
	unsigned ms;

	if (strcmp(rec->rule, "heartbeat") == 0 && rec->has_measured &&
	    rec->measured >= 0)
		return (uint64_t)(rec->measured * 1e6);
	if (rec->evidence &&
	    (((p = strstr(rec->evidence, " over ")) &&
	      sscanf(p, " over %u ms", &ms) == 1) ||
	     ((p = strstr(rec->evidence, " in ")) && sscanf(p, " in %u ms", &ms) == 1)))
		return (uint64_t)ms * 1000000ull;
	return 0;
}

static void on_trip(struct inc_row *x, const Breaker__AuditRecord *rec)
{
	x->trips++;
	if (!x->first_trip)
		x->first_trip = rec->wall_ns;
	if (rec->rule && !x->have_ttd) {
		x->have_ttd = true;
		x->ttd_ns = rule_ttd(rec);
		x->detect = rec->wall_ns;
	}
	if (rec->has_from_mode && rec->from_mode == BREAKER__MODE__MODE_ACTIVE)
		x->held++;
}

static int list_rec(const Breaker__AuditRecord *rec, uint64_t offset, void *arg)
{
	struct inc_list *l = arg;
	struct inc_row *x;
	bool open =
	    rec->kind == BREAKER__AUDIT_RECORD__KIND__INCIDENT_OPEN ||
	    (rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP && rec->incident_opened);

	(void)offset;
	if (!rec->incident || !(x = row_of(l, rec->incident, true)))
		return 0;
	if (!x->opened || open) {
		if (!x->opened) {
			x->opened = rec->wall_ns;
			snprintf(x->opened_by, sizeof(x->opened_by), "%s",
			         rec->user ? rec->user : "?");
		}
		if (rec->severity)
			snprintf(x->sev, sizeof(x->sev), "%s", rec->severity);
		if (rec->title)
			snprintf(x->title, sizeof(x->title), "%s", rec->title);
		if (rec->commander)
			snprintf(x->commander, sizeof(x->commander), "%s",
			         rec->commander);
		x->auto_opened = rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP;
		if (x->auto_opened && !x->title[0])
			snprintf(x->title, sizeof(x->title), "%s trip of %s%s",
			         reason_name(rec->reason_code),
			         rec->strategy ? "strategy " : "global",
			         rec->strategy ? rec->strategy : "");
	}
	switch (rec->kind) {
	case BREAKER__AUDIT_RECORD__KIND__TRIP:
		on_trip(x, rec);
		break;
	case BREAKER__AUDIT_RECORD__KIND__RESUME:
		if (rec->has_to_mode && rec->to_mode == BREAKER__MODE__MODE_ACTIVE &&
		    rec->from_mode != BREAKER__MODE__MODE_ACTIVE && --x->held <= 0 &&
		    !x->all_clear)
			x->all_clear = rec->wall_ns;
		break;
	case BREAKER__AUDIT_RECORD__KIND__INCIDENT_ACK:
		if (!x->acked)
			x->acked = rec->wall_ns;
		break;
	case BREAKER__AUDIT_RECORD__KIND__INCIDENT_RESOLVE:
		x->resolved = rec->wall_ns;
		break;
	default:
		break;
	}
	return 0;
}

static int scan_list(struct cli *c, const struct cli_args *a, struct inc_list *l)
{
	struct bk_audit_scan s;
	const char *path = a->file;
	int rv;

	if (!path) {
		if ((rv = cli_config(c)))
			return rv;
		path = c->cfg.audit_path;
	}
	if (!(l->rows = calloc(LIST_MAX, sizeof(*l->rows)))) {
		fputs("breaker incident: out of memory\n", stderr);
		return BX_AUDIT;
	}
	memset(&s, 0, sizeof(s));
	rv = bk_audit_scan_to(path, list_rec, l, 0, &s);
	if (rv != 0) {
		fprintf(stderr, "breaker incident: cannot read audit log %s: %s\n", path,
		        rv < 0 ? strerror(-rv) : "scan stopped");
		return BX_AUDIT;
	}
	if (s.verdict != BK_AUDIT_OK)
		fprintf(stderr,
		        "breaker incident: the audit log did NOT verify: only the "
		        "records before the damage are counted\n");
	return s.verdict == BK_AUDIT_OK ? 0 : BX_AUDIT;
}

static const char *state_of(const struct inc_row *x)
{
	return x->resolved ? "resolved" : x->acked ? "acknowledged" : "open";
}

int cmd_incident_list(struct cli *c, const struct cli_args *a)
{
	struct inc_list l = {0};
	char t[BX_TIME_LEN];
	int rv = scan_list(c, a, &l);

	if (rv && !l.rows)
		return rv;
	if (a->json)
		fputs("[", stdout);
	else
		printf("%-16s %-3s %-13s %-24s %s\n", "ID", "SEV", "STATE",
		       "OPENED (UTC)", "TITLE");
	for (unsigned i = 0; i < l.n; i++) {
		const struct inc_row *x = &l.rows[i];
		if (a->json) {
			printf(
			    "%s{\"id\":\"%s\",\"severity\":\"%s\",\"state\":\"%s\","
			    "\"opened_ns\":%" PRIu64 ",\"auto_opened\":%s,\"trips\":%u,"
			    "\"title\":",
			    i ? "," : "", x->id, x->sev[0] ? x->sev : "P1", state_of(x),
			    x->opened, x->auto_opened ? "true" : "false", x->trips);
			json_str(stdout, x->title);
			fputs(",\"commander\":", stdout);
			json_str(stdout, x->commander);
			putchar('}');
			continue;
		}
		printf("%-16s %-3s %-13s %-24s ", x->id, x->sev[0] ? x->sev : "P1",
		       state_of(x), fmt_time(t, x->opened, 0));
		put_text(stdout, x->title);
		putchar('\n');
	}
	if (a->json)
		fputs("]\n", stdout);
	free(l.rows);
	return rv;
}

/* ---- stats ------------------------------------------------------------------------ */

#define TARGET_MTTR_NS (30ull * 60 * 1000000000ull) /* the seeds: MTTR < 30 min */
#define TARGET_TTD_NS  (5ull * 60 * 1000000000ull)  /* TTD < 5 min */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct figure {
	uint64_t v[LIST_MAX];
	unsigned n;
};

static void fig_add(struct figure *f, uint64_t ns)
{
	if (f->n < LIST_MAX)
		f->v[f->n++] = ns;
}

static void fig_print(const char *name, struct figure *f, uint64_t target, bool json,
                      bool *first)
{
	uint64_t sum = 0, mean = 0, p90 = 0;
	char a[32], b[32], t[32];

	qsort(f->v, f->n, sizeof(f->v[0]), cmp_u64);
	for (unsigned i = 0; i < f->n; i++)
		sum += f->v[i];
	if (f->n) {
		mean = sum / f->n;
		p90 = f->v[(f->n * 9 + 9) / 10 - 1]; /* nearest rank */
	}
	if (json) {
		printf("%s\"%s\":{\"n\":%u,\"mean_ns\":%" PRIu64 ",\"p90_ns\":%" PRIu64
		       ",\"target_ns\":%" PRIu64 ",\"meets_target\":%s}",
		       *first ? "" : ",", name, f->n, mean, p90, target,
		       f->n && p90 < target ? "true"
		       : f->n               ? "false"
		                            : "null");
		*first = false;
		return;
	}
	if (!f->n) {
		printf("%-5s n/a (no incident with this figure)   target < %s\n", name,
		       fmt_dur(t, sizeof(t), target));
		return;
	}
	printf("%-5s mean %s, p90 %s over %u   target < %s: %s\n", name,
	       fmt_dur(a, sizeof(a), mean), fmt_dur(b, sizeof(b), p90), f->n,
	       fmt_dur(t, sizeof(t), target), p90 < target ? "MET" : "MISSED");
}

int cmd_incident_stats(struct cli *c, const struct cli_args *a)
{
	static struct figure ttd, mttr;
	struct inc_list l = {0};
	unsigned by_sev[5] = {0}, n = 0;
	uint64_t since, now = now_wall_ns();
	bool first = true;
	int rv;

	if (!a->since || parse_since(a->since, now, &since) < 0)
		return cli_usage_error(a->cmd, "stats needs --since (e.g. --since 30d)");
	if ((rv = scan_list(c, a, &l)) && !l.rows)
		return rv;
	for (unsigned i = 0; i < l.n; i++) {
		const struct inc_row *x = &l.rows[i];
		uint64_t start = x->first_trip;
		if (x->opened < since)
			continue;
		n++;
		by_sev[x->sev[0] == 'P' && x->sev[1] >= '1' && x->sev[1] <= '4'
		           ? x->sev[1] - '0'
		           : 1]++;
		if (x->have_ttd) {
			fig_add(&ttd, x->ttd_ns);
			start = x->detect - x->ttd_ns;
		}
		if (x->first_trip && x->all_clear)
			fig_add(&mttr, x->all_clear - start);
	}
	if (a->json) {
		printf("{\"since_ns\":%" PRIu64
		       ",\"incidents\":%u,\"by_severity\":{\"P1\":%u,"
		       "\"P2\":%u,\"P3\":%u,\"P4\":%u},",
		       since, n, by_sev[1], by_sev[2], by_sev[3], by_sev[4]);
		fig_print("ttd", &ttd, TARGET_TTD_NS, true, &first);
		fig_print("mttr", &mttr, TARGET_MTTR_NS, true, &first);
		fputs("}\n", stdout);
	} else {
		printf("incidents: %u (P1 %u, P2 %u, P3 %u, P4 %u)\n", n, by_sev[1],
		       by_sev[2], by_sev[3], by_sev[4]);
		fig_print("TTD", &ttd, TARGET_TTD_NS, false, &first);
		fig_print("MTTR", &mttr, TARGET_MTTR_NS, false, &first);
	}
	free(l.rows);
	return rv;
}
