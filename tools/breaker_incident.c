/*
 * breaker incident export: the post-mortem skeleton of a period, from the
 * audit log alone (bk_audit_scan, as breaker audit: works with breakerd
 * down). Two passes over the file: the first follows every scope's mode from
 * the start of the log and computes the figures, the second prints the
 * timeline (bounded by the last seq the first pass saw, so a log that grows
 * meanwhile does not skew them). docs/runbook.md defines each figure.
 *
 * `export ID` (docs/incidents.md) runs the same passes over one incident:
 * the records under its id, and the records of no incident (boots, config
 * reloads, refusals) between its first and last record; other incidents'
 * trips and resumes are left out. The period form lists the incidents in
 * the period, each with its own figures from such a pass.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bk_audit.h"
#include "bk_hash.h"
#include "bk_mode.h"
#include "bk_incident.h"
#include "breaker.h"

#define SCOPE_SLOTS 8192 /* open addressing, > 2x (4096 strategies + global) */
#define ACTORS_MAX  64
#define LIST_MAX    8 /* scope names kept per reason / per list */
#define DAEMON_USER "breakerd"
#define INC_IDS     32 /* incidents listed in a period export */
#define POS_MAX     16 /* reconciled positions listed in an incident's impact */

enum basis { TTD_NONE, TTD_HEARTBEAT, TTD_WINDOW, TTD_TICK };

struct scope {
	char name[BK_NAME_MAX + 1]; /* "" is global; "@kind:value" a group */
	bool used;
	bool in_period; /* tripped in the period: its resume counts for "resolved" */
	uint8_t mode;   /* the scope's mode after the latest record */
	uint8_t worst;  /* the worst mode it reached in the period */
	uint64_t held_since, blocked_ns; /* time not ACTIVE in the period */
};

/* What the incident's own records say (export ID). */
struct incmeta {
	char id[16], severity[4], title[96], commander[64], opened_by[32];
	char resolution[1024], resolved_by[32];
	uint64_t opened, acked, resolved;
	bool auto_opened;
	struct {
		char strategy[BK_NAME_MAX], verdict[16];
		double engine, reconciled;
		bool has_engine;
	} pos[POS_MAX];
	unsigned n_pos;
};

struct actor {
	char user[32];
	uint32_t uid;
	unsigned trips, resumes, forced, reconciles, other;
};

struct event {
	uint64_t seq, wall;
	char scope[BK_NAME_MAX + 9]; /* "global" or "strategy NAME" */
	char what[48];               /* reason code or rule */
	char user[32];
};

struct reason_agg {
	unsigned trips;
	unsigned n_scopes;
	char scopes[LIST_MAX][BK_NAME_MAX + 9];
};

struct inc {
	uint64_t since, until;
	bool json;
	const char *only; /* export ID: this incident's records (and context) */
	struct incmeta *meta;
	char ids[INC_IDS][16]; /* the period's incidents, in order of first record */
	unsigned n_ids;
	bool ack_explicit;   /* an INCIDENT_ACK set ack */
	struct event halted; /* the first record that took a scope to HALTED */
	/* pass 1 */
	struct scope *tab;
	uint64_t records, last_seq;
	unsigned held_in_period; /* scopes tripped in the period, not ACTIVE now */
	unsigned trips, rule_trips, boot_trips, resumes, forced, reconciles, boots,
	    scopes_tripped;
	uint8_t worst;
	char worst_scope[BK_NAME_MAX + 9];
	struct event first_trip, detect, ack, resolved;
	enum basis basis;
	uint64_t ttd_ns;
	/* the first FLAT record in the period (bk_orders.h): the exchanges'
	 * time to block (last engine acked) and time to flat (last at 0 working) */
	bool flat_seen, block_seen;
	uint64_t flat_ns, block_ns, flat_seq;
	uint32_t flat_engines;
	char before[LIST_MAX][BK_NAME_MAX + 16]; /* held when the period began */
	unsigned n_before;
	bool started; /* a record in the period was seen */
	struct reason_agg reasons[BK_REASON_COUNT];
	struct actor actors[ACTORS_MAX];
	int n_actors;
	/* pass 2 */
	uint64_t limit_seq;
	unsigned rows;
	uint64_t prev_wall; /* the row before: a BOOT's gap is breakerd's stop */
};

/* ---- scopes ------------------------------------------------------------------- */

static struct scope *scope_of(struct inc *x, const char *name)
{
	uint32_t h = bk_fnv1a(name);

	for (uint32_t i = 0; i < SCOPE_SLOTS; i++) {
		struct scope *s = &x->tab[(h + i) & (SCOPE_SLOTS - 1)];
		if (!s->used) {
			s->used = true;
			snprintf(s->name, sizeof(s->name), "%s", name);
			return s;
		}
		if (strcmp(s->name, name) == 0)
			return s;
	}
	return NULL; /* more names than a breaker can register: ignored */
}

/* A group scope's key in the scope table: '@' is in no strategy name. */
static const char *scope_key(const Breaker__AuditRecord *rec, char *buf, size_t len)
{
	if (rec->group && (rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP ||
	                   rec->kind == BREAKER__AUDIT_RECORD__KIND__RESUME)) {
		snprintf(buf, len, "@%s", rec->group);
		return buf;
	}
	return rec->strategy;
}

static void scope_label(char *buf, size_t len, const char *strategy)
{
	if (strategy && strategy[0] == '@')
		snprintf(buf, len, "group %s", strategy + 1);
	else if (strategy)
		snprintf(buf, len, "strategy %s", strategy);
	else
		snprintf(buf, len, "global");
}

static bool by_daemon(const Breaker__AuditRecord *rec)
{
	return rec->user && strcmp(rec->user, DAEMON_USER) == 0;
}

/* export ID: the incident's records, and records of no incident that are not
 * trips, resumes or reconciliations (boot, config, refusals, proposals) */
static bool belongs(const struct inc *x, const Breaker__AuditRecord *rec)
{
	if (!x->only)
		return true;
	if (rec->incident)
		return strcmp(rec->incident, x->only) == 0;
	return rec->kind != BREAKER__AUDIT_RECORD__KIND__TRIP &&
	       rec->kind != BREAKER__AUDIT_RECORD__KIND__RESUME &&
	       rec->kind != BREAKER__AUDIT_RECORD__KIND__RECONCILE;
}

static bool in_period(const struct inc *x, const Breaker__AuditRecord *rec)
{
	return rec->has_wall_ns && rec->wall_ns >= x->since && rec->wall_ns <= x->until &&
	       belongs(x, rec);
}

/* ---- pass 1: figures ---------------------------------------------------------- */

static void note_event(struct event *e, const Breaker__AuditRecord *rec, const char *what)
{
	e->seq = rec->seq;
	e->wall = rec->wall_ns;
	char key[BK_NAME_MAX + 2];

	scope_label(e->scope, sizeof(e->scope), scope_key(rec, key, sizeof(key)));
	snprintf(e->what, sizeof(e->what), "%s", what);
	snprintf(e->user, sizeof(e->user), "%s", rec->user ? rec->user : "?");
}

static void note_actor(struct inc *x, const Breaker__AuditRecord *rec)
{
	struct actor *a = NULL;
	const char *user = rec->user ? rec->user : "?";

	for (int i = 0; i < x->n_actors && !a; i++)
		if (x->actors[i].uid == rec->uid && strcmp(x->actors[i].user, user) == 0)
			a = &x->actors[i];
	if (!a && x->n_actors < ACTORS_MAX) {
		a = &x->actors[x->n_actors++];
		snprintf(a->user, sizeof(a->user), "%s", user);
		a->uid = rec->uid;
	}
	if (!a)
		return;
	switch (rec->kind) {
	case BREAKER__AUDIT_RECORD__KIND__TRIP:
		a->trips++;
		break;
	case BREAKER__AUDIT_RECORD__KIND__RESUME:
		a->resumes++;
		a->forced += rec->forced;
		break;
	case BREAKER__AUDIT_RECORD__KIND__RECONCILE:
		a->reconciles++;
		break;
	default:
		a->other++;
		break;
	}
}

/* "... over 1000 ms ..." / "... in 1000 ms ...": a rate rule's window, ns; 0 if none. */
static uint64_t evidence_window(const char *ev)
{
	const char *p;
	unsigned ms;

	if (!ev)
		return 0;
	if (((p = strstr(ev, " over ")) && sscanf(p, " over %u ms", &ms) == 1) ||
	    ((p = strstr(ev, " in ")) && sscanf(p, " in %u ms", &ms) == 1))
		return (uint64_t)ms * 1000000ull;
	return 0;
}

/* How long before this rule trip its breach began, as far as the record shows. */
static void time_to_detect(struct inc *x, const Breaker__AuditRecord *rec)
{
	x->basis = TTD_TICK;
	x->ttd_ns = 0;
	if (strcmp(rec->rule, "heartbeat") == 0 && rec->has_measured &&
	    rec->measured >= 0) {
		/* measured is the engine heartbeat's age: it went quiet that long ago */
		x->basis = TTD_HEARTBEAT;
		x->ttd_ns = (uint64_t)(rec->measured * 1e6);
	} else if ((x->ttd_ns = evidence_window(rec->evidence)) != 0) {
		x->basis = TTD_WINDOW;
	}
}

static void note_trip(struct inc *x, const Breaker__AuditRecord *rec, struct scope *s)
{
	struct reason_agg *r =
	    rec->reason_code < BK_REASON_COUNT ? &x->reasons[rec->reason_code] : NULL;
	char label[BK_NAME_MAX + 9], key[BK_NAME_MAX + 2];
	unsigned i;

	x->trips++;
	scope_label(label, sizeof(label), scope_key(rec, key, sizeof(key)));
	if (!x->first_trip.seq)
		note_event(&x->first_trip, rec, reason_name(rec->reason_code));
	if (!rec->rule && by_daemon(rec))
		x->boot_trips++; /* audit_corrupt at a fail-closed boot */
	if (rec->rule) {
		x->rule_trips++;
		if (!x->detect.seq) {
			note_event(&x->detect, rec, rec->rule);
			time_to_detect(x, rec);
		}
	}
	if (rec->to_mode > x->worst ||
	    (rec->to_mode == x->worst && !rec->strategy && !rec->group)) {
		x->worst = (uint8_t)rec->to_mode;
		snprintf(x->worst_scope, sizeof(x->worst_scope), "%s", label);
	}
	if (s && !s->in_period) {
		s->in_period = true;
		x->scopes_tripped++;
		if (s->mode != BK_ACTIVE) {
			x->held_in_period++; /* held before: now this period's too */
			s->held_since = rec->wall_ns;
		}
	}
	if (!r)
		return;
	r->trips++;
	for (i = 0; i < r->n_scopes && strcmp(r->scopes[i], label); i++)
		;
	if (i == r->n_scopes && r->n_scopes < LIST_MAX)
		snprintf(r->scopes[r->n_scopes++], sizeof(r->scopes[0]), "%s", label);
}

/* The scope's mode after rec; keeps the count of period scopes still held. */
static void follow_mode(struct inc *x, struct scope *s, const Breaker__AuditRecord *rec)
{
	uint8_t to = rec->has_to_mode ? (uint8_t)rec->to_mode : s->mode;

	if (s->in_period && (s->mode != BK_ACTIVE) != (to != BK_ACTIVE)) {
		x->held_in_period += to != BK_ACTIVE ? 1 : -1;
		if (to != BK_ACTIVE)
			s->held_since = rec->wall_ns;
		else if (s->held_since)
			s->blocked_ns += rec->wall_ns - s->held_since;
	}
	if (s->in_period && to > s->worst && to <= BK_HALTED)
		s->worst = to;
	if (s->in_period && to == BK_HALTED && !x->halted.seq)
		note_event(&x->halted, rec, "halted");
	s->mode = to;
}

/* The period begins: which scopes were already held? */
static void period_starts(struct inc *x)
{
	x->started = true;
	for (uint32_t i = 0; i < SCOPE_SLOTS && x->n_before < LIST_MAX; i++) {
		const struct scope *s = &x->tab[i];
		if (s->used && s->mode != BK_ACTIVE)
			snprintf(x->before[x->n_before++], sizeof(x->before[0]),
			         "%s%s %s",
			         s->name[0] == '@' ? "group "
			         : s->name[0]      ? "strategy "
			                           : "global",
			         s->name + (s->name[0] == '@'),
			         mode_name(s->mode <= BK_HALTED ? s->mode : BK_HALTED));
	}
}

static void note_opening(struct incmeta *m, const Breaker__AuditRecord *rec)
{
	if (!m->opened) {
		m->opened = rec->wall_ns;
		snprintf(m->opened_by, sizeof(m->opened_by), "%s",
		         rec->user ? rec->user : "?");
		m->auto_opened = rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP;
	}
	if (rec->severity)
		snprintf(m->severity, sizeof(m->severity), "%s", rec->severity);
	if (rec->title)
		snprintf(m->title, sizeof(m->title), "%s", rec->title);
	if (rec->commander)
		snprintf(m->commander, sizeof(m->commander), "%s", rec->commander);
	if (!m->title[0] && rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP)
		snprintf(m->title, sizeof(m->title), "%s trip of %s%s",
		         reason_name(rec->reason_code),
		         rec->group      ? "group "
		         : rec->strategy ? "strategy "
		                         : "global",
		         rec->group      ? rec->group
		         : rec->strategy ? rec->strategy
		                         : "");
}

/* The incident's own facts (export ID), and the period's list of incidents. */
static void note_incident(struct inc *x, const Breaker__AuditRecord *rec)
{
	struct incmeta *m = x->meta;
	unsigned i;

	if (!rec->incident)
		return;
	for (i = 0; i < x->n_ids && strcmp(x->ids[i], rec->incident); i++)
		;
	if (i == x->n_ids && x->n_ids < INC_IDS)
		snprintf(x->ids[x->n_ids++], sizeof(x->ids[0]), "%s", rec->incident);
	if (!m)
		return;
	if (!m->opened || rec->kind == BREAKER__AUDIT_RECORD__KIND__INCIDENT_OPEN ||
	    rec->incident_opened)
		note_opening(m, rec);
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__INCIDENT_ACK && !m->acked)
		m->acked = rec->wall_ns;
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__INCIDENT_RESOLVE) {
		m->resolved = rec->wall_ns;
		snprintf(m->resolution, sizeof(m->resolution), "%s",
		         rec->reason ? rec->reason : "");
		snprintf(m->resolved_by, sizeof(m->resolved_by), "%s",
		         rec->user ? rec->user : "?");
	}
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__RECONCILE && rec->strategy &&
	    m->n_pos < POS_MAX) {
		typeof(m->pos[0]) *p = &m->pos[m->n_pos++];
		snprintf(p->strategy, sizeof(p->strategy), "%s", rec->strategy);
		snprintf(p->verdict, sizeof(p->verdict), "%s",
		         rec->verdict ? rec->verdict : "?");
		p->engine = rec->engine_position;
		p->has_engine = rec->has_engine_position;
		p->reconciled = rec->measured;
	}
}

static void in_period_record(struct inc *x, const Breaker__AuditRecord *rec,
                             struct scope *s)
{
	bool change = rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP ||
	              rec->kind == BREAKER__AUDIT_RECORD__KIND__RESUME;
	unsigned held;

	x->records++;
	note_actor(x, rec);
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP) {
		note_trip(x, rec, s);
	} else if (rec->kind == BREAKER__AUDIT_RECORD__KIND__RESUME) {
		x->resumes++;
		x->forced += rec->forced;
	} else if (rec->kind == BREAKER__AUDIT_RECORD__KIND__RECONCILE)
		x->reconciles++;
	else if (rec->kind == BREAKER__AUDIT_RECORD__KIND__BOOT ||
	         rec->kind == BREAKER__AUDIT_RECORD__KIND__LOG_REPAIR)
		x->boots++;
	else if (rec->kind == BREAKER__AUDIT_RECORD__KIND__FLAT && !x->flat_seen) {
		x->flat_seen = rec->has_flat_after_ns;
		x->flat_ns = rec->flat_after_ns;
		x->block_seen = rec->has_block_after_ns;
		x->block_ns = rec->block_after_ns;
		x->flat_seq = rec->seq;
		x->flat_engines = rec->engines_flat;
		return; /* breakerd's own observation: no one's action, no mode */
	}
	note_incident(x, rec);
	/* an incident's acknowledgement; else the first operator act once
	 * something tripped (the trip itself, if theirs) */
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__INCIDENT_ACK && !x->ack_explicit &&
	    x->first_trip.seq) {
		x->ack_explicit = true;
		note_event(&x->ack, rec, "acknowledged");
	} else if (x->first_trip.seq && !x->ack.seq && !by_daemon(rec)) {
		note_event(&x->ack, rec, kind_name(rec->kind));
	}
	held = x->held_in_period;
	if (s && change)
		follow_mode(x, s, rec);
	/* the resume that released the last scope tripped in the period */
	if (held && !x->held_in_period)
		note_event(&x->resolved, rec, "all clear");
	else if (x->held_in_period)
		x->resolved.seq = 0; /* tripped again: not resolved (yet) */
}

static int pass1(const Breaker__AuditRecord *rec, uint64_t offset, void *arg)
{
	struct inc *x = arg;
	bool change = rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP ||
	              rec->kind == BREAKER__AUDIT_RECORD__KIND__RESUME;
	char key[BK_NAME_MAX + 2];
	const char *name = scope_key(rec, key, sizeof(key));
	struct scope *s = change ? scope_of(x, name ? name : "") : NULL;

	(void)offset;
	x->last_seq = rec->seq;
	if (rec->has_wall_ns && rec->wall_ns > x->until)
		return 0;
	if (!in_period(x, rec)) {
		if (s && rec->has_to_mode)
			s->mode = (uint8_t)rec->to_mode;
		return 0;
	}
	if (!x->started)
		period_starts(x);
	in_period_record(x, rec, s);
	return 0;
}

/* ---- figures -------------------------------------------------------------------- */

struct figures {
	uint64_t start; /* the problem's start as far as the log shows */
	bool ttd, ack, resolved, halt;
	uint64_t ttd_ns, tta_ns, halted_ns, mttr_ns, tth_ns;
};

static void compute(const struct inc *x, struct figures *f)
{
	memset(f, 0, sizeof(*f));
	if (!x->first_trip.seq)
		return;
	f->start = x->first_trip.wall;
	if ((f->ttd = x->detect.seq != 0)) {
		f->ttd_ns = x->ttd_ns;
		if (x->detect.wall - x->ttd_ns < f->start)
			f->start = x->detect.wall - x->ttd_ns;
	}
	if ((f->ack = x->ack.seq != 0))
		f->tta_ns = x->ack.wall - x->first_trip.wall;
	if ((f->resolved = x->resolved.seq != 0 && !x->held_in_period)) {
		f->halted_ns = x->resolved.wall - x->first_trip.wall;
		f->mttr_ns = x->resolved.wall - f->start;
	}
	if ((f->halt = x->halted.seq != 0 && x->halted.wall >= f->start))
		f->tth_ns = x->halted.wall - f->start;
}

static const char *basis_text(enum basis b)
{
	switch (b) {
	case TTD_HEARTBEAT:
		return "heartbeat rule: the engine's last beat was this long before the "
		       "trip";
	case TTD_WINDOW:
		return "rate rule: the evidence covers the rule's window; the breach "
		       "began at "
		       "most this long before the trip";
	case TTD_TICK:
		return "level rule: evaluated every tick, tripped on the first tick that "
		       "saw "
		       "the breach";
	default:
		return "no rule trip: an operator detected it; the log cannot say when "
		       "the "
		       "problem began";
	}
}

static const char *basis_name(enum basis b)
{
	static const char *const n[] = {"none", "heartbeat", "window", "tick"};

	return n[b];
}

/* ---- Markdown ---------------------------------------------------------------- */

static const char *dur(char *buf, size_t len, bool have, uint64_t ns)
{
	return have ? fmt_dur(buf, len, ns) : "n/a";
}

static void md_event_line(const char *title, const struct event *e)
{
	char t[BX_TIME_LEN];

	printf("- %s: %s, %s, ", title, fmt_time(t, e->wall, 3), e->scope);
	put_md(stdout, e->what);
	fputs(" by ", stdout);
	put_md(stdout, e->user);
	printf(" (audit seq %" PRIu64 ")\n", e->seq);
}

static void md_summary(const struct inc *x, const char *path)
{
	char a[BX_TIME_LEN], b[BX_TIME_LEN];

	printf("# Incident report: %s to %s (UTC)\n\n", fmt_time(a, x->since, 0),
	       fmt_time(b, x->until, 0));
	printf("Built by `breaker incident export` from the audit log `");
	put_md(stdout, path);
	printf("` alone: %" PRIu64 " records in the period. Rule warnings are not in the "
	       "log; see the monitoring's history for them.\n\n## Summary\n\n",
	       x->records);
	if (!x->trips) {
		printf("- No trips in this period.\n");
	} else {
		printf("- Trips: %u (%u by rules, %u by people", x->trips, x->rule_trips,
		       x->trips - x->rule_trips - x->boot_trips);
		if (x->boot_trips)
			printf(", %u by breakerd at a fail-closed boot", x->boot_trips);
		printf(") on %u scope%s; worst mode %s (%s).\n", x->scopes_tripped,
		       x->scopes_tripped == 1 ? "" : "s", mode_name(x->worst),
		       x->worst_scope);
		md_event_line("First trip", &x->first_trip);
		if (x->detect.seq)
			md_event_line("First rule trip (detection)", &x->detect);
		if (x->ack.seq)
			md_event_line("First action by a person", &x->ack);
	}
	printf("- Resumes: %u (%u forced); reconciliations: %u; breakerd starts: %u.\n",
	       x->resumes, x->forced, x->reconciles, x->boots);
	if (x->resolved.seq && !x->held_in_period)
		md_event_line("Resolved (every scope tripped in the period ACTIVE again)",
		              &x->resolved);
	else if (x->trips)
		printf("- **NOT RESOLVED** by the end of the period: %u scope%s still "
		       "held.\n",
		       x->held_in_period, x->held_in_period == 1 ? "" : "s");
	for (unsigned i = 0; i < x->n_before; i++)
		printf("%s%s",
		       i ? ", " : "- Already held when the period began: ", x->before[i]);
	if (x->n_before)
		printf(".\n");
}

static void md_figures(const struct inc *x, const struct figures *f)
{
	char b[32], t[BX_TIME_LEN];

	printf("\n## Figures\n\n| figure | value | from → to |\n|---|---|---|\n");
	printf("| time to detect | %s%s | breach → first rule trip: %s |\n",
	       f->ttd && x->basis == TTD_WINDOW ? "≤ " : "",
	       dur(b, sizeof(b), f->ttd, f->ttd_ns),
	       basis_text(f->ttd ? x->basis : TTD_NONE));
	printf("| time to acknowledge | %s | first trip → first action by a person |\n",
	       dur(b, sizeof(b), f->ack, f->tta_ns));
	printf(
	    "| time halted | %s | first trip → the resume that released the last scope "
	    "tripped in the period |\n",
	    dur(b, sizeof(b), f->resolved, f->halted_ns));
	printf("| time to full resume (MTTR) | %s%s | start (%s) → the same resume |\n",
	       f->resolved && x->basis == TTD_WINDOW ? "≤ " : "",
	       dur(b, sizeof(b), f->resolved, f->mttr_ns),
	       f->start ? fmt_time(t, f->start, 3) : "n/a");
	printf("| time to block | %s | a halt's flip → the last engine acknowledged it "
	       "(FLAT record seq %" PRIu64 ") |\n",
	       dur(b, sizeof(b), x->block_seen, x->block_ns), x->flat_seq);
	printf("| time to flat | %s | a halt's flip → the last of its %" PRIu32
	       " engines reported 0 working orders |\n",
	       dur(b, sizeof(b), x->flat_seen, x->flat_ns), x->flat_engines);
}

static void md_tables(const struct inc *x)
{
	printf("\n## Reasons\n\n| reason code | trips | scopes |\n|---|---|---|\n");
	for (unsigned r = 1; r < BK_REASON_COUNT; r++) {
		if (!x->reasons[r].trips)
			continue;
		printf("| %s | %u | ", reason_name((int)r), x->reasons[r].trips);
		for (unsigned i = 0; i < x->reasons[r].n_scopes; i++) {
			fputs(i ? ", " : "", stdout);
			put_md(stdout, x->reasons[r].scopes[i]);
		}
		printf("%s |\n", x->reasons[r].n_scopes == LIST_MAX ? ", …" : "");
	}
	printf("\n## Who acted\n\n| user | uid | trips | resumes | forced | "
	       "reconciliations | "
	       "other |\n|---|---|---|---|---|---|---|\n");
	for (int i = 0; i < x->n_actors; i++) {
		const struct actor *a = &x->actors[i];
		fputs("| ", stdout);
		put_md(stdout, a->user);
		printf("%s | ", strcmp(a->user, DAEMON_USER) ? "" : " (rules, boot)");
		if (a->uid == UINT32_MAX) /* a certificate: its CN is in the name */
			fputs("certificate", stdout);
		else
			printf("%" PRIu32, a->uid);
		printf(" | %u | %u | %u | %u | %u |\n", a->trips, a->resumes, a->forced,
		       a->reconciles, a->other);
	}
	printf("\n## Timeline\n\n| seq | time (UTC) | +t | event | scope | mode | reason "
	       "| by | "
	       "detail |\n|---|---|---|---|---|---|---|---|---|\n");
}

static void md_footer(void)
{
	printf("\n## To fill in\n\n- Impact (orders, positions, money, clients):\n"
	       "- Root cause:\n- What went well:\n- What went badly:\n"
	       "- Action items (owner, date):\n");
}

/* ---- the timeline (pass 2) ----------------------------------------------------- */

static void event_name(char *buf, size_t len, const Breaker__AuditRecord *rec)
{
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP && rec->rule)
		snprintf(buf, len, "TRIP by rule %.32s", rec->rule);
	else if (rec->kind == BREAKER__AUDIT_RECORD__KIND__RESUME)
		snprintf(buf, len, "RESUME%s%s%s",
		         by_daemon(rec) ? " (rule cooldown)" : "",
		         rec->forced ? ", FORCED" : "",
		         rec->proposer_user ? ", CONFIRMED (two-person)" : "");
	else if (rec->kind == BREAKER__AUDIT_RECORD__KIND__REFUSED && rec->command)
		snprintf(buf, len, "REFUSED %.32s", rec->command);
	else if (rec->kind == BREAKER__AUDIT_RECORD__KIND__WARNING && rec->rule)
		snprintf(buf, len, "WARNING rule %.24s at %.0f%%", rec->rule,
		         rec->utilisation * 100);

	else
		snprintf(buf, len, "%s", kind_name(rec->kind));
}

/* "+1.25 s" / "-300.00 ms" from the first trip (or from --since without one). */
static const char *offset(char *buf, size_t len, const struct inc *x, uint64_t wall)
{
	uint64_t zero = x->first_trip.seq ? x->first_trip.wall : x->since;
	char d[32];

	snprintf(buf, len, "%s%s", wall >= zero ? "+" : "-",
	         fmt_dur(d, sizeof(d), wall >= zero ? wall - zero : zero - wall));
	return buf;
}

/* What a row's detail says before the reason: the incident, why a refusal
 * was refused, who proposed a confirmed resume, an incident's own fields. */
static void md_detail_prefix(const Breaker__AuditRecord *rec)
{
	if (rec->incident) {
		fputc('[', stdout);
		put_md(stdout, rec->incident);
		if (rec->incident_opened)
			printf(" opened, %s", rec->severity ? rec->severity : "P1");
		fputs("] ", stdout);
	}
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__REFUSED) {
		printf("refused %s: ", rec->has_status ? status_name(rec->status) : "");
		put_md(stdout, rec->refusal ? rec->refusal : "(no reason recorded)");
		if (rec->suppressed)
			printf(" (%" PRIu32 " more not recorded one by one)",
			       rec->suppressed);
		fputs(rec->reason ? "; their reason: " : "", stdout);
	}
	if (rec->proposer_user) {
		fputs("proposed by ", stdout);
		put_md(stdout, rec->proposer_user);
		printf(" (uid %" PRIu32 ", seq %" PRIu64 "), confirmed by ",
		       rec->proposer_uid, rec->proposal_seq);
		put_md(stdout, rec->user ? rec->user : "?");
		fputs(": ", stdout);
	}
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__INCIDENT_OPEN) {
		printf("%s ", rec->severity ? rec->severity : "");
		put_md(stdout, rec->title ? rec->title : "");
		if (rec->commander) {
			fputs(", commander ", stdout);
			put_md(stdout, rec->commander);
		}
		fputs(rec->reason ? "; " : "", stdout);
	}
}

static void md_row(struct inc *x, const Breaker__AuditRecord *rec)
{
	char t[BX_TIME_LEN], o[40], ev[64], b[BX_NUM_LEN], c[BX_NUM_LEN];

	/* breakerd was not running between the row before and this start */
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__BOOT && x->prev_wall &&
	    rec->wall_ns >= x->prev_wall) {
		char d[32];
		printf(
		    "| | %s | %s | **breakerd STOPPED** (or died) after this | | | | | "
		    "down %s, until the start below |\n",
		    fmt_time(t, x->prev_wall, 3), offset(o, sizeof(o), x, x->prev_wall),
		    fmt_dur(d, sizeof(d), rec->wall_ns - x->prev_wall));
	}
	event_name(ev, sizeof(ev), rec);
	printf("| %" PRIu64 " | %s | %s | %s%s | ", rec->seq,
	       fmt_time(t, rec->wall_ns, 3), offset(o, sizeof(o), x, rec->wall_ns), ev,
	       rec->seq == x->ack.seq ? " (first action by a person)" : "");
	if (rec->group)
		fputs("group ", stdout);
	else if (rec->strategy)
		fputs("strategy ", stdout);
	put_md(stdout, rec->group      ? rec->group
	               : rec->strategy ? rec->strategy
	                               : "global");
	if (rec->has_from_mode && rec->has_to_mode)
		printf(" | %s → %s | ", mode_name(rec->from_mode),
		       mode_name(rec->to_mode));
	else
		printf(" | | ");
	if (rec->has_reason_code &&
	    rec->reason_code == BREAKER__REASON_CODE__REASON_NONE && rec->forced)
		fputs("every latch", stdout);
	else if (rec->has_reason_code)
		fputs(reason_name(rec->reason_code), stdout);
	fputs(" | ", stdout);
	put_md(stdout, rec->user ? rec->user : "?");
	if (rec->peer_cn) { /* a certificate caller: no uid, its CN */
		fputs(" (cn ", stdout);
		put_md(stdout, rec->peer_cn);
		fputs(") | ", stdout);
	} else if (rec->has_uid && rec->uid == UINT32_MAX) {
		fputs(" (no uid) | ", stdout);
	} else {
		printf(" (uid %" PRIu32 ") | ", rec->uid);
	}
	md_detail_prefix(rec);
	if (rec->rule && rec->has_measured && rec->has_threshold)
		printf("measured %s, threshold %s: ", fmt_num(b, rec->measured),
		       fmt_num(c, rec->threshold));
	put_md(stdout, rec->rule && rec->evidence ? rec->evidence : rec->reason);
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__CONFIG && rec->config_diff) {
		fputs("; changed: ", stdout);
		put_md(stdout, rec->config_diff);
	}
	fputs(" |\n", stdout);
	if (rec->seq == x->resolved.seq && !x->held_in_period)
		printf("| | %s | %s | **RESOLVED** | every scope tripped in the period | "
		       "ACTIVE "
		       "| | | |\n",
		       fmt_time(t, rec->wall_ns, 3), o);
}

static void json_row(struct inc *x, const Breaker__AuditRecord *rec)
{
	uint64_t zero = x->first_trip.seq ? x->first_trip.wall : x->since;
	char ev[64];

	event_name(ev, sizeof(ev), rec);
	printf("%s{\"offset_ns\":%s%" PRIu64
	       ",\"event\":\"%s\",\"first_operator_action\":%s,"
	       "\"resolves\":%s,\"record\":",
	       x->rows ? "," : "", rec->wall_ns >= zero ? "" : "-",
	       rec->wall_ns >= zero ? rec->wall_ns - zero : zero - rec->wall_ns, ev,
	       rec->seq == x->ack.seq ? "true" : "false",
	       rec->seq == x->resolved.seq && !x->held_in_period ? "true" : "false");
	json_msg(stdout, &rec->base);
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__BOOT && x->prev_wall &&
	    rec->wall_ns >= x->prev_wall) /* breakerd was down before this start */
		printf(",\"breakerd_stopped_after_ns\":%" PRIu64
		       ",\"breakerd_down_ns\":%" PRIu64,
		       x->prev_wall, rec->wall_ns - x->prev_wall);
	fputc('}', stdout);
}

/* One row of the timeline, in the output's format. */
static void put_row(struct inc *x, const Breaker__AuditRecord *rec)
{
	if (x->json)
		json_row(x, rec);
	else
		md_row(x, rec);
	x->rows++;
	/* after a clean STOP the log says so itself: no "STOPPED (or died)" row */
	x->prev_wall = rec->kind == BREAKER__AUDIT_RECORD__KIND__STOP ? 0 : rec->wall_ns;
}

static int pass2(const Breaker__AuditRecord *rec, uint64_t offset, void *arg)
{
	struct inc *x = arg;

	(void)offset;
	if (rec->seq > x->limit_seq || !in_period(x, rec))
		return 0;
	put_row(x, rec);
	return 0;
}

/* ---- JSON ------------------------------------------------------------------------ */

static void json_time(const char *key, uint64_t ns, bool have)
{
	char t[BX_TIME_LEN];

	if (have)
		printf(",\"%s\":\"%s\",\"%s_ns\":%" PRIu64, key, fmt_time(t, ns, 9), key,
		       ns);
	else
		printf(",\"%s\":null,\"%s_ns\":null", key, key);
}

static void json_dur(const char *key, uint64_t ns, bool have)
{
	if (have)
		printf(",\"%s\":%" PRIu64, key, ns);
	else
		printf(",\"%s\":null", key);
}

static void json_summary(const struct inc *x, const char *path)
{
	printf("{\"log\":");
	json_str(stdout, path);
	json_time("since", x->since, true);
	json_time("until", x->until, true);
	printf(",\"records\":%" PRIu64 ",\"summary\":{\"trips\":%u,\"rule_trips\":%u,"
	       "\"operator_trips\":%u,\"boot_trips\":%u,\"scopes_tripped\":%u,"
	       "\"worst_mode\":\"%s\",\"worst_scope\":",
	       x->records, x->trips, x->rule_trips,
	       x->trips - x->rule_trips - x->boot_trips, x->boot_trips, x->scopes_tripped,
	       mode_name(x->worst));
	json_str(stdout, x->worst_scope);
	printf(",\"resumes\":%u,\"forced_resumes\":%u,\"reconciliations\":%u,"
	       "\"daemon_starts\":%u,\"resolved\":%s,\"still_held\":%u,\"held_before\":[",
	       x->resumes, x->forced, x->reconciles, x->boots,
	       x->resolved.seq && !x->held_in_period ? "true" : "false",
	       x->held_in_period);
	for (unsigned i = 0; i < x->n_before; i++) {
		fputs(i ? "," : "", stdout);
		json_str(stdout, x->before[i]);
	}
	fputs("]}", stdout);
}

static void json_figures(const struct inc *x, const struct figures *f)
{
	fputs(",\"figures\":{\"first_trip_seq\":", stdout);
	printf("%" PRIu64, x->first_trip.seq);
	json_time("started", f->start, x->first_trip.seq != 0);
	json_time("first_trip", x->first_trip.wall, x->first_trip.seq != 0);
	json_time("detected", x->detect.wall, f->ttd);
	json_time("acknowledged", x->ack.wall, f->ack);
	json_time("resolved", x->resolved.wall, f->resolved);
	json_dur("time_to_detect_ns", f->ttd_ns, f->ttd);
	printf(",\"time_to_detect_basis\":\"%s\",\"time_to_detect_is_upper_bound\":%s",
	       basis_name(f->ttd ? x->basis : TTD_NONE),
	       f->ttd && x->basis == TTD_WINDOW ? "true" : "false");
	json_dur("time_to_acknowledge_ns", f->tta_ns, f->ack);
	printf(",\"time_to_acknowledge_basis\":\"%s\"", !f->ack ? "none"
	                                                : x->ack_explicit
	                                                    ? "incident_ack"
	                                                    : "first_person_action");
	json_dur("time_halted_ns", f->halted_ns, f->resolved);
	json_dur("mttr_ns", f->mttr_ns, f->resolved);
	json_dur("time_to_halt_ns", f->tth_ns, f->halt);
	json_dur("time_to_block_ns", x->block_ns, x->block_seen);
	json_dur("time_to_flat_ns", x->flat_ns, x->flat_seen);
	fputc('}', stdout);
}

static void json_tables(const struct inc *x)
{
	int n = 0;

	fputs(",\"reasons\":[", stdout);
	for (unsigned r = 1; r < BK_REASON_COUNT; r++) {
		if (!x->reasons[r].trips)
			continue;
		printf("%s{\"reason_code\":\"%s\",\"trips\":%u,\"scopes\":[",
		       n++ ? "," : "", reason_name((int)r), x->reasons[r].trips);
		for (unsigned i = 0; i < x->reasons[r].n_scopes; i++) {
			fputs(i ? "," : "", stdout);
			json_str(stdout, x->reasons[r].scopes[i]);
		}
		fputs("]}", stdout);
	}
	fputs("],\"actors\":[", stdout);
	for (int i = 0; i < x->n_actors; i++) {
		const struct actor *a = &x->actors[i];
		fputs(i ? ",{\"user\":" : "{\"user\":", stdout);
		json_str(stdout, a->user);
		printf(",\"uid\":%" PRIu32 ",\"trips\":%u,\"resumes\":%u,\"forced\":%u,"
		       "\"reconciliations\":%u,\"other\":%u}",
		       a->uid, a->trips, a->resumes, a->forced, a->reconciles, a->other);
	}
	fputs("],\"timeline\":[", stdout);
}

/* ---- one incident (export ID) ------------------------------------------------ */

static const char *inc_state(const struct incmeta *m)
{
	return m->resolved ? "resolved" : m->acked ? "acknowledged" : "open";
}

static void md_incident_head(const struct inc *x, const struct figures *f)
{
	const struct incmeta *m = x->meta;
	char t[BX_TIME_LEN], d[32];

	printf("# %s: ", x->only);
	put_md(stdout, m->title[0] ? m->title : "(untitled)");
	printf("\n\n| | |\n|---|---|\n| Severity | %s |\n| Status | %s |\n",
	       m->severity[0] ? m->severity : "P1", inc_state(m));
	fputs("| Incident commander | ", stdout);
	put_md(stdout, m->commander[0] ? m->commander : "(not named)");
	printf(" |\n| Opened | %s by ", fmt_time(t, m->opened, 3));
	put_md(stdout, m->opened_by);
	printf("%s |\n", m->auto_opened ? " (automatically, by the trip)" : "");
	if (x->first_trip.seq)
		printf(
		    "| Duration | %s%s (first trip → %s) |\n",
		    fmt_dur(d, sizeof(d),
		            (m->resolved ? m->resolved : x->until) - x->first_trip.wall),
		    m->resolved ? "" : " so far", m->resolved ? "resolved" : "now");
	printf("\n## Summary\n\n");
	if (!x->first_trip.seq) {
		printf("No trip under this incident.");
	} else {
		printf("%s %s at %s (%s, by ", x->worst_scope, mode_name(x->worst),
		       fmt_time(t, x->first_trip.wall, 3), x->first_trip.what);
		put_md(stdout, x->first_trip.user);
		printf("); %u trip%s on %u scope%s; ", x->trips, x->trips == 1 ? "" : "s",
		       x->scopes_tripped, x->scopes_tripped == 1 ? "" : "s");
		if (f->resolved)
			printf("all clear after %s.",
			       fmt_dur(d, sizeof(d), f->halted_ns));
		else
			printf("**%u scope%s still held**.", x->held_in_period,
			       x->held_in_period == 1 ? "" : "s");
	}
	if (m->resolved) {
		fputs(" Resolved: ", stdout);
		put_md(stdout, m->resolution);
	}
	fputs("\n", stdout);
}

static void md_impact(const struct inc *x)
{
	const struct incmeta *m = x->meta;
	char d[32], f[32], b[BX_NUM_LEN], c[BX_NUM_LEN], lbl[BK_NAME_MAX + 16];

	printf("\n## Impact\n\n| scope | worst mode | time blocked | time to flat | "
	       "still held |\n|---|---|---|---|---|\n");
	for (uint32_t i = 0; i < SCOPE_SLOTS; i++) {
		const struct scope *s = &x->tab[i];
		uint64_t ns = s->blocked_ns;
		if (!s->used || !s->in_period)
			continue;
		if (s->mode != BK_ACTIVE && s->held_since)
			ns += x->until - s->held_since;
		scope_label(lbl, sizeof(lbl), s->name[0] ? s->name : NULL);
		fputs("| ", stdout);
		put_md(stdout, lbl);
		printf(" | %s | %s%s | %s | %s |\n", mode_name(s->worst),
		       fmt_dur(d, sizeof(d), ns), s->mode != BK_ACTIVE ? " so far" : "",
		       x->flat_seen ? fmt_dur(f, sizeof(f), x->flat_ns)
		                    : "n/a (no FLAT record)",
		       s->mode != BK_ACTIVE ? "**yes**" : "no");
	}
	printf("\nPositions affected (reconciliations under the incident):\n\n");
	if (!m->n_pos)
		printf("- none recorded: the engines' positions are in telemetry, not in "
		       "the log; add them by hand.\n");
	else
		printf(
		    "| strategy | engine position | reconciled | verdict |\n|---|---|---|"
		    "---|\n");
	for (unsigned i = 0; i < m->n_pos; i++) {
		fputs("| ", stdout);
		put_md(stdout, m->pos[i].strategy);
		printf(" | %s | %s | %s |\n",
		       m->pos[i].has_engine ? fmt_num(b, m->pos[i].engine) : "n/a",
		       fmt_num(c, m->pos[i].reconciled), m->pos[i].verdict);
	}
	printf("\n| money | amount |\n|---|---|\n| PnL impact | _to fill_ |\n| fees, "
	       "penalties | _to fill_ |\n| client impact | _to fill_ |\n");
}

static void md_incident_figures(const struct inc *x, const struct figures *f)
{
	char b[32], t[BX_TIME_LEN];
	bool ub = f->ttd && x->basis == TTD_WINDOW;

	printf("\n## Figures\n\nDefined in docs/incidents.md.\n\n| figure | value | "
	       "from → to |\n|---|---|---|\n");
	printf("| time to detect | %s%s | breach → first rule trip: %s |\n",
	       ub ? "≤ " : "", dur(b, sizeof(b), f->ttd, f->ttd_ns),
	       basis_text(f->ttd ? x->basis : TTD_NONE));
	printf("| time to acknowledge | %s | first trip → %s |\n",
	       dur(b, sizeof(b), f->ack, f->tta_ns),
	       x->ack_explicit ? "breaker incident ack"
	                       : "first action by a person (no incident ack)");
	printf("| time to halt | %s%s | start → the first scope HALTED |\n",
	       f->halt && ub ? "≤ " : "", dur(b, sizeof(b), f->halt, f->tth_ns));
	printf("| time to resume | %s | first trip → every scope tripped under it "
	       "ACTIVE again |\n",
	       dur(b, sizeof(b), f->resolved, f->halted_ns));
	printf("| MTTR | %s%s | start (%s) → the same resume |\n",
	       f->resolved && ub ? "≤ " : "", dur(b, sizeof(b), f->resolved, f->mttr_ns),
	       f->start ? fmt_time(t, f->start, 3) : "n/a");
	printf("| time to block | %s | the halt's flip → the last engine acknowledged it "
	       "(FLAT record) |\n",
	       dur(b, sizeof(b), x->block_seen, x->block_ns));
	printf("| time to flat | %s | the halt's flip → the last of its %" PRIu32
	       " engines reported 0 working orders (FLAT record) |\n",
	       dur(b, sizeof(b), x->flat_seen, x->flat_ns), x->flat_engines);
}

static void md_incident_footer(const struct inc *x)
{
	const struct incmeta *m = x->meta;
	char t[BX_TIME_LEN];

	printf("\n## Root cause\n\n_to fill_\n\n## Resolution\n\n");
	if (m->resolved) {
		put_md(stdout, m->resolution);
		printf(" (by ");
		put_md(stdout, m->resolved_by);
		printf(", %s)\n", fmt_time(t, m->resolved, 3));
	} else {
		printf(
		    "_not resolved yet_ (breaker incident resolve %s --resolution ...)\n",
		    x->only);
	}
	printf("\n## Lessons\n\n- What went well:\n- What went badly:\n- Where we got "
	       "lucky:\n\n## Action items\n\n| # | action | owner | due date | status "
	       "|\n|---|---|---|---|---|\n| 1 | | | | |\n");
}

static void json_incident(const struct inc *x, const struct figures *f)
{
	const struct incmeta *m = x->meta;
	char lbl[BK_NAME_MAX + 16];
	bool first = true;

	(void)f;
	printf(",\"incident\":{\"id\":\"%s\",\"severity\":\"%s\",\"state\":\"%s\","
	       "\"auto_opened\":%s,\"title\":",
	       x->only, m->severity[0] ? m->severity : "P1", inc_state(m),
	       m->auto_opened ? "true" : "false");
	json_str(stdout, m->title);
	fputs(",\"commander\":", stdout);
	json_str(stdout, m->commander);
	fputs(",\"opened_by\":", stdout);
	json_str(stdout, m->opened_by);
	json_time("opened", m->opened, true);
	json_time("acknowledged", m->acked, m->acked != 0);
	json_time("resolved", m->resolved, m->resolved != 0);
	fputs(",\"resolution\":", stdout);
	if (m->resolved)
		json_str(stdout, m->resolution);
	else
		fputs("null", stdout);
	printf(",\"root_cause\":null,\"lessons\":null,\"action_items\":[]}"
	       ",\"impact\":{\"scopes\":[");
	for (uint32_t i = 0; i < SCOPE_SLOTS; i++) {
		const struct scope *s = &x->tab[i];
		uint64_t ns = s->blocked_ns;
		if (!s->used || !s->in_period)
			continue;
		if (s->mode != BK_ACTIVE && s->held_since)
			ns += x->until - s->held_since;
		scope_label(lbl, sizeof(lbl), s->name[0] ? s->name : NULL);
		printf("%s{\"scope\":", first ? "" : ",");
		json_str(stdout, lbl);
		printf(",\"worst_mode\":\"%s\",\"blocked_ns\":%" PRIu64
		       ",\"still_held\":%s",
		       mode_name(s->worst), ns, s->mode != BK_ACTIVE ? "true" : "false");
		json_dur("time_to_flat_ns", x->flat_ns, x->flat_seen);
		putchar('}');
		first = false;
	}
	fputs("],\"positions\":[", stdout);
	for (unsigned i = 0; i < m->n_pos; i++) {
		printf("%s{\"strategy\":", i ? "," : "");
		json_str(stdout, m->pos[i].strategy);
		printf(",\"reconciled\":%.17g,\"verdict\":", m->pos[i].reconciled);
		json_str(stdout, m->pos[i].verdict);
		if (m->pos[i].has_engine)
			printf(",\"engine_position\":%.17g", m->pos[i].engine);
		putchar('}');
	}
	fputs("],\"money\":null}", stdout);
}

/* ---- the period's incidents, each with its own figures ------------------------ */

static int pass1(const Breaker__AuditRecord *rec, uint64_t offset, void *arg);

static void period_one(const struct inc *x, const char *path, struct inc *y,
                       struct figures *f)
{
	struct bk_audit_scan s;

	memset(&s, 0, sizeof(s));
	y->since = x->since;
	y->until = x->until;
	bk_audit_scan_to(path, pass1, y, 0, &s);
	compute(y, f);
}

static void period_row(const struct inc *y, const struct figures *f, bool first)
{
	const struct incmeta *m = y->meta;
	char a[32], b[32], c[32], d[32], t[BX_TIME_LEN];

	if (y->json) {
		printf("%s{\"id\":\"%s\",\"severity\":\"%s\",\"state\":\"%s\",\"title\":",
		       first ? "" : ",", y->only, m->severity[0] ? m->severity : "P1",
		       inc_state(m));
		json_str(stdout, m->title);
		json_figures(y, f);
		putchar('}');
		return;
	}
	printf("| %s | %s | ", y->only, m->severity[0] ? m->severity : "P1");
	put_md(stdout, m->title);
	printf(" | %s | %s%s | %s | %s | %s | %s |\n",
	       y->first_trip.seq ? fmt_time(t, y->first_trip.wall, 3) : "n/a",
	       f->ttd && y->basis == TTD_WINDOW ? "≤ " : "",
	       dur(a, sizeof(a), f->ttd, f->ttd_ns), dur(b, sizeof(b), f->ack, f->tta_ns),
	       dur(c, sizeof(c), f->resolved, f->halted_ns),
	       dur(d, sizeof(d), f->resolved, f->mttr_ns), inc_state(m));
}

static void period_incidents(const struct inc *x, const char *path)
{
	struct inc *y = calloc(1, sizeof(*y));
	struct figures f;

	if (x->json)
		fputs(",\"incidents\":[", stdout);
	else if (x->n_ids)
		printf(
		    "\n## Incidents in this period\n\nEach with its own figures "
		    "(`breaker incident export ID` for its post-mortem).\n\n| incident | "
		    "severity | title | first trip | time to detect | time to "
		    "acknowledge | time to resume | MTTR | state |\n|---|---|---|---|---|"
		    "---|---|---|---|\n");
	for (unsigned i = 0; y && i < x->n_ids; i++) {
		struct scope *tab = calloc(SCOPE_SLOTS, sizeof(*tab));
		struct incmeta *m = calloc(1, sizeof(*m));
		if (tab && m) {
			memset(y, 0, sizeof(*y));
			y->tab = tab;
			y->meta = m;
			y->only = x->ids[i];
			y->json = x->json;
			period_one(x, path, y, &f);
			period_row(y, &f, i == 0);
		}
		free(tab);
		free(m);
	}
	if (x->json)
		fputs("]", stdout);
	free(y);
}

/* ---- the command ------------------------------------------------------------------ */

static int parse_opts(const struct cli_args *a, struct inc *x)
{
	uint64_t now = now_wall_ns();

	if (strcmp(a->pos[0], "export") != 0)
		return cli_usage_error(a->cmd,
		                       "unknown subcommand '%s': the one there is "
		                       "is 'export'",
		                       a->pos[0]);
	if (a->npos == 2) { /* export ID: the window is the incident's */
		if (!bk_incident_id_valid(a->pos[1]))
			return cli_usage_error(
			    a->cmd,
			    "bad incident id '%s': INC-YYYY-NNN (3 to 6 "
			    "digits), e.g. INC-2026-001",
			    a->pos[1]);
		if (a->since || a->until)
			return cli_usage_error(a->cmd,
			                       "export ID takes no --since/--until: "
			                       "the incident's records set the period");
		x->only = a->pos[1];
		x->since = 0;
		x->until = now;
	} else if (a->npos > 2) {
		return cli_usage_error(a->cmd, "export takes one incident id at most");
	} else if (!a->since) {
		return cli_usage_error(a->cmd,
		                       "--since is required (e.g. --since 2h, or "
		                       "--since 2026-11-23T09:00:00Z), or name an "
		                       "incident: export INC-2026-001");
	}
	if (x->only)
		goto format;
	if (parse_since(a->since, now, &x->since) < 0)
		return cli_usage_error(a->cmd,
		                       "bad --since '%s': use 2026-11-23T09:00:00Z "
		                       "(UTC), unix seconds, or an age like 10m, 2h, 1d",
		                       a->since);
	x->until = now;
	if (a->until && parse_since(a->until, now, &x->until) < 0)
		return cli_usage_error(a->cmd, "bad --until '%s': same forms as --since",
		                       a->until);
	if (x->until < x->since)
		return cli_usage_error(a->cmd, "--until is before --since");
format:
	if (a->format && strcmp(a->format, "md") && strcmp(a->format, "json"))
		return cli_usage_error(a->cmd, "--format is md or json, not '%s'",
		                       a->format);
	if (a->json && a->format && strcmp(a->format, "json"))
		return cli_usage_error(a->cmd, "--json contradicts --format %s",
		                       a->format);
	x->json = a->json || (a->format && strcmp(a->format, "json") == 0);
	return 0;
}

static int scan(const char *path, bk_audit_record_fn fn, struct inc *x, uint64_t at_seq,
                struct bk_audit_scan *s)
{
	int rv;

	memset(s, 0, sizeof(*s));
	rv = bk_audit_scan_to(path, fn, x, at_seq, s);
	if (rv != 0) {
		fprintf(stderr, "breaker incident: cannot read audit log %s: %s\n", path,
		        rv < 0 ? strerror(-rv) : "scan stopped");
		return BX_AUDIT;
	}
	return 0;
}

/* Records past the damage (bk_audit_scan_rest): shown, never counted. */
static int pass_rest(const Breaker__AuditRecord *rec, uint64_t offset, void *arg)
{
	struct inc *x = arg;

	(void)offset;
	if (!in_period(x, rec))
		return 0;
	put_row(x, rec);
	return 0;
}

static void report_rest(struct inc *x, const char *path, const struct bk_audit_scan *dmg)
{
	x->rows = 0;
	if (x->json) {
		fputs("],\"unverified_after_damage\":[", stdout);
	} else {
		printf(
		    "\n## After the damage (UNVERIFIED)\n\nThe audit log is damaged at "
		    "offset %" PRIu64 " (",
		    dmg->valid_len);
		put_md(stdout, dmg->why);
		printf(
		    "). These records were found past the damage by resyncing on the "
		    "next whole frame: UNVERIFIED (their chain is not checked), not "
		    "counted in the figures above.\n\n| seq | time (UTC) | +t | event | "
		    "scope | mode | reason | by | detail |\n|---|---|---|---|---|---|---|"
		    "---|---|\n");
	}
	if (bk_audit_scan_rest(path, dmg, pass_rest, x) < 0)
		fprintf(stderr, "breaker incident: cannot read past the damage\n");
}

static void report(struct inc *x, const char *path, const struct bk_audit_scan *dmg)
{
	struct figures f;
	struct bk_audit_scan s;

	compute(x, &f);
	if (x->json) {
		json_summary(x, path);
		json_figures(x, &f);
		if (x->only)
			json_incident(x, &f);
		else
			period_incidents(x, path);
		json_tables(x);
	} else if (x->only) {
		md_incident_head(x, &f);
		md_impact(x);
		md_incident_figures(x, &f);
		md_tables(x);
	} else {
		md_summary(x, path);
		md_figures(x, &f);
		period_incidents(x, path);
		md_tables(x);
	}
	x->limit_seq = x->last_seq;
	scan(path, pass2, x, 0, &s);
	if (dmg->verdict == BK_AUDIT_CORRUPT)
		report_rest(x, path, dmg);
	if (x->json)
		fputs("]}\n", stdout);
	else if (x->only)
		md_incident_footer(x);
	else
		md_footer();
}

/* export ID: the incident's first and last record set the period. */
struct window {
	const char *id;
	uint64_t first, last;
	bool resolved;
};

static int window_rec(const Breaker__AuditRecord *rec, uint64_t offset, void *arg)
{
	struct window *w = arg;

	(void)offset;
	if (!rec->incident || strcmp(rec->incident, w->id) || !rec->has_wall_ns)
		return 0;
	if (!w->first)
		w->first = rec->wall_ns;
	w->last = rec->wall_ns;
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__INCIDENT_RESOLVE)
		w->resolved = true;
	else if (rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP)
		w->resolved = false; /* tripped again under it: open again */
	return 0;
}

static int incident_window(const char *path, struct inc *x)
{
	struct window w = {.id = x->only};
	struct bk_audit_scan s;

	memset(&s, 0, sizeof(s));
	bk_audit_scan_to(path, window_rec, &w, 0, &s);
	if (!w.first) {
		fprintf(stderr,
		        "breaker incident: no record of incident %s in %s "
		        "('breaker incident list' shows the incidents)\n",
		        x->only, path);
		return BX_REFUSED;
	}
	x->since = w.first;
	if (w.resolved)
		x->until = w.last;
	return 0;
}

int cmd_incident(struct cli *c, const struct cli_args *a)
{
	struct inc *x;
	struct bk_audit_scan s;
	struct audit_heads h;
	const char *path = a->file;
	int rv;

	if (a->n_logs && strcmp(a->pos[0], "export") != 0)
		return cli_usage_error(a->cmd, "--log goes with export");
	if (a->anchors && !a->n_logs)
		return cli_usage_error(a->cmd,
		                       "--anchors goes with export --log (for one "
		                       "log: breaker audit --verify --anchors)");
	if (strcmp(a->pos[0], "list") == 0 || strcmp(a->pos[0], "stats") == 0) {
		if (a->npos > 1)
			return cli_usage_error(a->cmd, "%s takes no argument", a->pos[0]);
		if (a->pos[0][0] == 'l' && a->since)
			return cli_usage_error(a->cmd,
			                       "list takes no --since (stats does)");
		return a->pos[0][0] == 'l' ? cmd_incident_list(c, a)
		                           : cmd_incident_stats(c, a);
	}
	if (strcmp(a->pos[0], "export") != 0)
		return cmd_incident_life(c, a);
	if (a->n_logs) /* several hosts' logs, one timeline */
		return cli_incident_merge(c, a);
	x = calloc(1, sizeof(*x));
	if (!x || !(x->tab = calloc(SCOPE_SLOTS, sizeof(*x->tab))) ||
	    !(x->meta = calloc(1, sizeof(*x->meta)))) {
		fputs("breaker incident: out of memory\n", stderr);
		if (x)
			free(x->tab);
		free(x);
		return BX_AUDIT;
	}
	if ((rv = parse_opts(a, x)) == 0 && !path && (rv = cli_config(c)) == 0)
		path = c->cfg.audit_path;
	if (rv == 0 && x->only)
		rv = incident_window(path, x);
	if (rv == 0)
		audit_heads_read(c, path, !a->file, &h);
	if (rv == 0 && (rv = scan(path, pass1, x, audit_heads_seq(&h), &s)) == 0) {
		audit_heads_judge(&h, &s); /* a log cut at a record boundary says so */
		if (!x->started)
			period_starts(x);
		report(x, path, &s);
		if (s.verdict != BK_AUDIT_OK) {
			fprintf(stderr,
			        "breaker incident: the audit log did NOT verify (");
			put_text(stderr, s.why);
			fprintf(
			    stderr,
			    "): the figures cover the %" PRIu64 " records before the "
			    "damage only; records after it are listed UNVERIFIED; see "
			    "'breaker audit --verify'\n",
			    s.records);
			rv = BX_AUDIT;
		}
	}
	free(x->meta);
	free(x->tab);
	free(x);
	return rv;
}
