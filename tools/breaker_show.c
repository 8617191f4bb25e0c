/*
 * breaker status / breaker strategies: what breakerd says the halt state is.
 * Read-only requests; every string from the reply is printed escaped.
 */
#include <inttypes.h>
#include <string.h>

#include "bk_mode.h"
#include "bk_state.h"
#include "breaker.h"

static const char *opt_mode(protobuf_c_boolean has, int mode)
{
	return has ? mode_name(mode) : "?";
}

static void put_u32(FILE *f, protobuf_c_boolean has, uint32_t v)
{
	if (has)
		fprintf(f, "%" PRIu32, v);
	else
		fputc('?', f);
}

/*
 * "  latch manual_halt: HALTED by alice (uid 1000, pid 4242) at
 *  2026-11-23T09:00:01.123Z, audit seq 42: "why""  (one line)
 */
static void put_latch(FILE *f, const Breaker__Latch *l)
{
	char t[BX_TIME_LEN];

	fprintf(f, "  latch %s: %s by ",
	        l->has_reason_code ? reason_name(l->reason_code) : "?",
	        opt_mode(l->has_mode, l->mode));
	put_name(f, l->actor_name ? l->actor_name : "?");
	if (l->has_actor_uid && l->actor_uid == UINT32_MAX) {
		/* a certificate (or TCP) caller has no uid or pid: its name is
		 * "tls:<CN>" (the audit record has the whole CN) */
		fputs(" (certificate, no uid", f);
	} else {
		fputs(" (uid ", f);
		put_u32(f, l->has_actor_uid, l->actor_uid);
		fputs(", pid ", f);
		put_u32(f, l->has_actor_pid, l->actor_pid);
	}
	fprintf(f, ") at %s",
	        l->has_since_wall_ns ? fmt_time(t, l->since_wall_ns, 3) : "?");
	if (l->has_audit_seq)
		fprintf(f, ", audit seq %" PRIu64, l->audit_seq);
	fputs(": ", f);
	if (l->reason)
		json_str(f, l->reason);
	else
		fputs("(no reason)", f);
	/* breakerd keeps BK_LATCH_REASON_MAX - 1 bytes; the audit log has it all */
	if (l->reason && strlen(l->reason) == BK_LATCH_REASON_MAX - 1) {
		fputs(" … (truncated; full text: breaker audit", f);
		if (l->has_audit_seq)
			fprintf(f, ", seq %" PRIu64, l->audit_seq);
		fputc(')', f);
	}
	fputc('\n', f);
}

/* "  limits: size x0.25, max qty 100, max notional 50000" ([limits], published) */
static void put_limits(FILE *f, const Breaker__ScopeLimits *l)
{
	char n[BX_NUM_LEN];
	const char *sep = "";

	if (!l || !(l->has_size_factor || l->has_max_qty || l->has_max_notional))
		return;
	fputs("  limits:", f);
	if (l->has_size_factor) {
		fprintf(f, " size x%s", fmt_num(n, l->size_factor));
		sep = ",";
	}
	if (l->has_max_qty) {
		fprintf(f, "%s max qty %s", sep, fmt_num(n, l->max_qty));
		sep = ",";
	}
	if (l->has_max_notional)
		fprintf(f, "%s max notional %s", sep, fmt_num(n, l->max_notional));
	fputc('\n', f);
}

/* "global: HALTED" / "strategy momo-eu-1: REDUCE_ONLY (effective HALTED: global)" */
static void put_scope_state(FILE *f, const Breaker__Scope *s, int global_mode)
{
	if (s->group) {
		fputs("group ", f);
		put_name(f, s->group);
	} else if (s->strategy) {
		fputs("strategy ", f);
		put_name(f, s->strategy);
	} else {
		fputs("global", f);
	}
	fprintf(f, ": %s", opt_mode(s->has_mode, s->mode));
	if (s->strategy && s->has_mode && global_mode > (int)s->mode &&
	    !(s->has_effective_mode && (int)s->effective_mode >= global_mode))
		fprintf(f, " (effective %s: global)", mode_name(global_mode));
	else if (s->has_effective_mode && s->held_by && s->effective_mode > s->mode)
		fprintf(f, " (effective %s: group %s)", mode_name(s->effective_mode),
		        s->held_by);
	if (s->n_latches == 0)
		fputs(" (no latches)", f);
	if (s->has_members)
		fprintf(f, " [%" PRIu32 " member%s]", s->members,
		        s->members == 1 ? "" : "s");
	if (s->n_groups) {
		fputs(" groups:", f);
		for (size_t i = 0; i < s->n_groups; i++) {
			fputc(' ', f);
			put_name(f, s->groups[i]);
		}
	}
	fputc('\n', f);
	for (size_t i = 0; i < s->n_latches; i++)
		put_latch(f, s->latches[i]);
	put_limits(f, s->limits);
}

/*
 * "warning: strategy alpha rule reconciliation at 82% (measured 820 /
 * threshold 1000)", and " VIOLATED" once over the threshold.
 */
static void put_warning(FILE *f, const Breaker__RuleState *w)
{
	char m[BX_NUM_LEN], t[BX_NUM_LEN], u[BX_NUM_LEN];

	fputs("warning: strategy ", f);
	put_name(f, w->strategy ? w->strategy : "?");
	fputs(" rule ", f);
	put_name(f, w->rule ? w->rule : "?");
	fprintf(f, " at %s (measured %s / threshold %s)",
	        w->has_utilisation ? fmt_pct(u, w->utilisation) : "?%",
	        w->has_measured ? fmt_num(m, w->measured) : "?",
	        w->has_threshold ? fmt_num(t, w->threshold) : "?");
	if (w->has_violated && w->violated)
		fputs(" VIOLATED", f);
	/* forced past while violated: it is not blind, say when it trips */
	if (w->has_rearmed && w->rearmed) {
		fprintf(f, " (forced resume: re-armed, trips again above %s",
		        w->has_rearm_util ? fmt_pct(u, w->rearm_util) : "?%");
		if (w->has_rearm_in_ms)
			fprintf(f, " or in %" PRIu64 " ms if still violated",
			        w->rearm_in_ms);
		fputc(')', f);
	}
	fputc('\n', f);
}

static void put_warnings(FILE *f, const Breaker__StatusInfo *in)
{
	if (in->n_warnings == 0) {
		fputs("rule warnings: none\n", f);
		return;
	}
	for (size_t i = 0; i < in->n_warnings; i++)
		put_warning(f, in->warnings[i]);
}

/* "  strategy alpha: engine 5100, reconciled 2100, break 3000, limit 1000: break" */
static void put_reconciliations(FILE *f, const Breaker__StatusInfo *in)
{
	char a[BX_NUM_LEN], b[BX_NUM_LEN], c[BX_NUM_LEN], d[BX_NUM_LEN];

	if (in->n_reconciliations == 0)
		return;
	fputs("reconciliations (latest per strategy):\n", f);
	for (size_t i = 0; i < in->n_reconciliations; i++) {
		const Breaker__RuleState *rs = in->reconciliations[i];

		fputs("  strategy ", f);
		put_name(f, rs->strategy ? rs->strategy : "?");
		fprintf(f, ": engine %s, reconciled %s, break %s, limit %s: %s\n",
		        rs->has_engine_position ? fmt_num(a, rs->engine_position) : "?",
		        rs->has_reconciled ? fmt_num(b, rs->reconciled) : "?",
		        rs->has_measured ? fmt_num(c, rs->measured) : "?",
		        rs->has_threshold ? fmt_num(d, rs->threshold) : "?",
		        rs->verdict ? rs->verdict : "?");
	}
}

/* "  strategy alpha pid 4242: acked in 1.23 ms" / "NOT ACKED (seq 6 < 7)" */
static void put_ack(FILE *f, const Breaker__EngineAck *a, uint32_t want)
{
	char b[32];

	fputs("  strategy ", f);
	put_name(f, a->strategy ? a->strategy : "?");
	fputs(" pid ", f);
	put_u32(f, a->has_pid, a->pid);
	if (!a->has_acked || !a->acked) {
		fputs(": NOT ACKED (seq ", f);
		put_u32(f, a->has_ack_seq, a->ack_seq);
		fprintf(f, " < %" PRIu32 ")\n", want);
	} else if (a->has_ack_latency_ns) {
		fprintf(f, ": acked in %s\n", fmt_dur(b, sizeof(b), a->ack_latency_ns));
	} else {
		fputs(": acked (seq ", f);
		put_u32(f, a->has_ack_seq, a->ack_seq);
		fputs(")\n", f);
	}
}

/* "2 of 3 engines acknowledged change seq 7", then one line per engine. */
static void put_acks(FILE *f, const Breaker__StatusInfo *in)
{
	size_t acked = 0;

	if (!in->has_last_trip_change_seq) {
		fputs("engine acks: no trip since breakerd started\n", f);
		return;
	}
	for (size_t i = 0; i < in->n_acks; i++)
		acked += in->acks[i]->has_acked && in->acks[i]->acked;
	fprintf(
	    f, "%zu of %zu engines acknowledged change seq %" PRIu32 " (the latest trip)",
	    acked, in->n_acks, in->last_trip_change_seq);
	if (in->n_acks == 0)
		fputs(": no engine reports telemetry", f);
	fputc('\n', f);
	for (size_t i = 0; i < in->n_acks; i++)
		put_ack(f, in->acks[i], in->last_trip_change_seq);
}

static void put_header(FILE *f, const Breaker__StatusInfo *in)
{
	char b[32];

	fputs("breakerd instance ", f);
	put_name(f, in->instance ? in->instance : "?");
	if (in->has_daemon_pid)
		fprintf(f, ", pid %" PRIu32, in->daemon_pid);
	if (in->has_uptime_ns)
		fprintf(f, ", up %s", fmt_dur(b, sizeof(b), in->uptime_ns));
	if (in->has_tick_period_ns)
		fprintf(f, ", tick %s", fmt_dur(b, sizeof(b), in->tick_period_ns));
	fputc('\n', f);
}

/* Two-person rule: a global resume waiting for its second operator. */
static void put_proposal(FILE *f, const Breaker__Proposal *p)
{
	char t[BX_TIME_LEN];

	fputs(p->firm ? "  PROPOSED firm global resume" : "  PROPOSED global resume", f);
	if (p->has_reason_code)
		fprintf(f, " of %s",
		        p->forced && !p->reason_code ? "every latch"
		                                     : reason_name(p->reason_code));
	if (p->has_to_mode)
		fprintf(f, " to %s", mode_name(p->to_mode));
	fprintf(f, "%s by ", p->forced ? " (FORCED)" : "");
	put_name(f, p->user ? p->user : "?");
	if (p->has_uid && p->uid != UINT32_MAX)
		fprintf(f, " (uid %" PRIu32 ")", p->uid);
	if (p->has_audit_seq)
		fprintf(f, ", audit seq %" PRIu64, p->audit_seq);
	if (p->has_expires_wall_ns)
		fprintf(f, ": a different operator may confirm until %s",
		        fmt_time(t, p->expires_wall_ns, 0));
	fputc('\n', f);
}

static void put_status(FILE *f, const struct cli *c, const Breaker__StatusInfo *in)
{
	int gmode = in->global && in->global->has_mode ? (int)in->global->mode : -1;
	char b[32];

	put_header(f, in);
	if (in->global)
		put_scope_state(f, in->global, gmode);
	else
		fputs("global: ? (not in the reply)\n", f);
	if (in->pending_resume)
		put_proposal(f, in->pending_resume);
	fputs("strategies: ", f);
	put_u32(f, in->has_strategy_count, in->strategy_count);
	fprintf(f, " registered, %zu tripped", in->n_tripped);
	if (in->held_by_groups)
		fprintf(f, ", %u more held by groups ('breaker strategies' lists them)",
		        in->held_by_groups);
	fputc('\n', f);
	for (size_t i = 0; i < in->n_tripped; i++)
		put_scope_state(f, in->tripped[i], gmode);
	if (in->n_groups) {
		fprintf(f, "groups: %zu\n", in->n_groups);
		for (size_t i = 0; i < in->n_groups; i++)
			put_scope_state(f, in->groups[i], gmode);
	}
	put_warnings(f, in);
	put_venues(f, in);
	put_reconciliations(f, in);
	put_acks(f, in);
	put_orders(f, in);
	fputs("daemon heartbeat: ", f);
	if (!in->has_heartbeat_age_ns)
		fputs("? (not in the reply)", f);
	else
		fprintf(f, "%s ago", fmt_dur(b, sizeof(b), in->heartbeat_age_ns));
	if (in->has_heartbeat_age_ns && in->heartbeat_age_ns > c->cfg.heartbeat_bound_ns)
		fprintf(f, " -- STALE: over the %s bound, engines fail closed (HALTED)",
		        fmt_dur(b, sizeof(b), c->cfg.heartbeat_bound_ns));
	fputs("\nlast durable audit seq: ", f);
	if (in->has_audit_seq)
		fprintf(f, "%" PRIu64 "\n", in->audit_seq);
	else
		fputs("? (not in the reply)\n", f);
	if (in->audit_problem) {
		fputs("AUDIT LOG LOST: ", f);
		put_text(f, in->audit_problem);
		fputs(" -- trips hold but are not durable, resumes are refused; SIGHUP "
		      "breakerd to write the log anew\n",
		      f);
	}
}

/* One read-only request; prints a refusal. 0 with *r set, or the exit status. */
static int query(struct cli *c, const char *cmd, Breaker__Request *req, bool json,
                 Breaker__Reply **r)
{
	int rv;

	if ((rv = cli_query_pages(c, cmd, req, r)))
		return rv;
	if (json)
		json_reply(stdout, *r);
	if ((*r)->status == BREAKER__STATUS__OK)
		return 0;
	rv = cli_refused(*r);
	breaker__reply__free_unpacked(*r, NULL);
	*r = NULL;
	return rv;
}

int cmd_status(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__StatusRequest sr = BREAKER__STATUS_REQUEST__INIT;
	Breaker__Reply *r;
	int rv;

	if (a->firm)
		return cli_firm_status(c, a);
	req.cmd_case = BREAKER__REQUEST__CMD_STATUS;
	req.status = &sr;
	if ((rv = query(c, a->cmd, &req, a->json, &r)))
		return rv;
	if (!r->info) {
		fprintf(stderr, "breaker status: breakerd's reply has no status info\n");
		rv = BX_UNREACHABLE;
	} else if (!a->json) {
		put_status(stdout, c, r->info);
		/* this host's latches above; the firm's are in etcd (and folded
		 * into what engines read) */
		if (c->cfg.cluster_name[0])
			printf("firm-wide latches (cluster %s): breaker status --firm\n",
			       c->cfg.cluster_name);
	}
	breaker__reply__free_unpacked(r, NULL);
	return rv;
}

static void put_strategy(FILE *f, const Breaker__Scope *s, int width)
{
	int cols;

	if (s->has_slot)
		fprintf(f, "%4" PRIu32 "  ", s->slot);
	else
		fputs("   ?  ", f);
	cols = put_name(f, s->strategy ? s->strategy : "?");
	put_pad(f, cols, width);
	fprintf(f, "  %-11s ", opt_mode(s->has_mode, s->mode));
	if (s->n_latches == 0)
		fputs(" -", f);
	for (size_t i = 0; i < s->n_latches; i++) {
		const Breaker__Latch *l = s->latches[i];

		fprintf(f, " %s:%s",
		        l->has_reason_code ? reason_name(l->reason_code) : "?",
		        opt_mode(l->has_mode, l->mode));
	}
	if (s->has_effective_mode && s->held_by && s->effective_mode > s->mode)
		fprintf(f, "  (effective %s: group %s)", mode_name(s->effective_mode),
		        s->held_by);
	if (s->n_groups) {
		fputs("  groups:", f);
		for (size_t i = 0; i < s->n_groups; i++) {
			fputc(' ', f);
			put_name(f, s->groups[i]);
		}
	}
	fputc('\n', f);
}

static void put_strategies(FILE *f, const Breaker__Reply *r)
{
	const Breaker__Scope *g = r->info ? r->info->global : NULL;
	int width = 8;

	if (r->n_strategies == 0) {
		fputs("no strategies registered\n", f);
		return;
	}
	for (size_t i = 0; i < r->n_strategies; i++) {
		const char *n = r->strategies[i]->strategy;
		int len = n ? (int)strlen(n) : 1;

		width = len > width ? len : width;
	}
	fprintf(f, "SLOT  %-*s  MODE         LATCHES\n", width, "STRATEGY");
	for (size_t i = 0; i < r->n_strategies; i++)
		put_strategy(f, r->strategies[i], width);
	fprintf(f, "%zu strategies. MODE is each strategy's own", r->n_strategies);
	if (!g || !g->has_mode)
		fputs("; the global mode also applies\n('breaker status')\n", f);
	else if (g->mode == BREAKER__MODE__MODE_ACTIVE)
		fputs("; global is ACTIVE\n", f);
	else
		fprintf(f, ";\nglobal is %s, so every strategy is at least %s\n",
		        mode_name(g->mode), mode_name(g->mode));
}

int cmd_strategies(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__ListStrategies ls = BREAKER__LIST_STRATEGIES__INIT;
	Breaker__Reply *r;
	int rv;

	req.cmd_case = BREAKER__REQUEST__CMD_LIST;
	req.list = &ls;
	if ((rv = query(c, a->cmd, &req, a->json, &r)))
		return rv;
	if (!a->json)
		put_strategies(stdout, r);
	breaker__reply__free_unpacked(r, NULL);
	return BX_OK;
}
