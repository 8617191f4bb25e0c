/*
 * The commands that change state: trip, emergency-stop, kill, resume,
 * register, reconcile. Everything is checked before anything is sent; each outcome
 * (applied, refused, in effect but not durable) has its own message and exit
 * status.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bk_mode.h"
#include "bk_suggest.h"
#include "bk_incident.h"
#include "breaker.h"

/* ---- argument checks ---------------------------------------------------- */

void list_reasons(FILE *f, bool trip)
{
	int col = fprintf(f, "valid reason codes:");

	for (int i = 1; i < BK_REASON_COUNT; i++) {
		const char *name = bk_reason_name((unsigned)i);

		if (!name || (trip && !bk_reason_operator((unsigned)i)))
			continue;
		if (col + 1 + (int)strlen(name) > 79)
			col = fprintf(f, "\n ");
		col += fprintf(f, " %s", name);
	}
	fputc('\n', f);
}

/* "did you mean 'manual_halt'?" for a mistyped reason code, if one is near. */
static void suggest_reason(FILE *f, const char *typed, bool trip)
{
	const char *names[BK_REASON_COUNT];
	char near[160];
	size_t n = 0;

	for (int i = 1; i < BK_REASON_COUNT; i++)
		if (!trip || bk_reason_operator((unsigned)i))
			names[n++] = bk_reason_name((unsigned)i);
	if (bk_suggest(typed, names, n, near, sizeof(near)))
		fprintf(f, "did you mean %s?\n", near);
}

/* Reason code by name ("manual_halt"; case and '-' for '_' forgiven), or -1. */
static int parse_reason(const char *cmd, const char *name, bool trip)
{
	char buf[64];
	size_t i;
	int code = -1;

	for (i = 0; name[i] && i < sizeof(buf) - 1; i++)
		buf[i] = name[i] == '-' ? '_' : (char)tolower((unsigned char)name[i]);
	buf[i] = '\0';
	if (!name[i])
		code = bk_reason_parse(buf);
	if (code >= 0 && (!trip || bk_reason_operator((unsigned)code)))
		return code;
	fprintf(stderr, "breaker %s: ", cmd);
	if (code >= 0) {
		fprintf(stderr,
		        "reason code %s is set by breakerd itself, not by operators\n",
		        buf);
	} else {
		fputs("unknown reason code ", stderr);
		json_str(stderr, name);
		fputc('\n', stderr);
		suggest_reason(stderr, buf, trip);
	}
	list_reasons(stderr, trip);
	fprintf(stderr, "nothing was sent; see 'breaker %s --help'\n", cmd);
	return -1;
}

/* A trip's --mode (halted, reduce-only, cautious) or a resume's --to. */
static int parse_mode(const char *cmd, const char *opt, const char *s, bool trip)
{
	int m = bk_mode_parse(s);

	if (m < 0)
		cli_usage_error(cmd, "unknown mode '%s' for %s: use %s", s, opt,
		                trip ? "halted, reduce-only or cautious"
		                     : "reduce-only, cautious or active");
	else if (trip && m == BK_ACTIVE)
		cli_usage_error(cmd, "a trip cannot set ACTIVE; to lift a halt, use "
		                     "'breaker resume'");
	else if (!trip && m == BK_HALTED)
		cli_usage_error(cmd, "resume --to halted is not a resume; to halt, use "
		                     "'breaker trip'");
	else
		return m;
	return -1;
}

static int check_strategy(const char *cmd, const char *s)
{
	if (!s)
		return 0;
	if (!*s)
		return cli_usage_error(cmd, "empty strategy name");
	if (strlen(s) >= BK_NAME_MAX)
		return cli_usage_error(cmd,
		                       "strategy name too long: %zu bytes, at most %u",
		                       strlen(s), BK_NAME_MAX - 1);
	return 0;
}

static int check_reason(struct cli *c, const char *cmd, const char *s, bool required)
{
	const char *p = s;

	while (p && isspace((unsigned char)*p))
		p++;
	if (required && (!p || !*p))
		return cli_usage_error(cmd,
		                       "--reason TEXT is required: say why, it goes in "
		                       "the audit log");
	if (s && strlen(s) > c->cfg.reason_max)
		return cli_usage_error(cmd, "reason text too long: %zu bytes, at most %u",
		                       strlen(s), c->cfg.reason_max);
	return 0;
}

/* ---- trip, emergency-stop, kill, resume, register ----------------------- */

/* What a state change asked for, to describe the reply. */
struct change {
	const char *strategy; /* NULL: global (or group) */
	const char *group;    /* a group scope */
	size_t n_scopes;      /* a trip of several: how many */
	int reason_code;      /* -1: not named (resume) */
	int mode;             /* trip: the latch's mode */
	bool forced;
};

static void put_scope(FILE *f, const char *strategy)
{
	if (!strategy) {
		fputs("global", f);
		return;
	}
	fputs("strategy ", f);
	put_name(f, strategy);
}

static const char *reply_mode(protobuf_c_boolean has, int mode)
{
	return has ? mode_name(mode) : "?";
}

static void put_seq(FILE *f, const Breaker__Reply *r)
{
	if (r->has_audit_seq)
		fprintf(f, " — audit seq %" PRIu64 "\n", r->audit_seq);
	else
		fputs(" — (no audit seq in the reply)\n", f);
}

/* The scope(s) a change names: "global", "strategy a", "group venue:XETR",
 * "3 scopes" */
static void put_change_scope(FILE *f, const struct change *ch)
{
	if (ch->n_scopes > 1) {
		fprintf(f, "%zu scopes", ch->n_scopes);
	} else if (ch->group) {
		fputs("group ", f);
		put_name(f, ch->group);
	} else {
		put_scope(f, ch->strategy);
	}
}

/* "HALTED global (manual_halt, was ACTIVE) — audit seq 42" */
static void put_trip(FILE *f, const struct change *ch, const Breaker__Reply *r)
{
	fprintf(f, "%s ", reply_mode(r->has_to_mode, r->to_mode));
	put_change_scope(f, ch);
	fprintf(f, " (%s", reason_name(ch->reason_code));
	if (r->has_to_mode && (int)r->to_mode > ch->mode)
		fprintf(f, " at %s, held %s by another latch", mode_name(ch->mode),
		        mode_name(r->to_mode));
	fprintf(f, ", was %s)", reply_mode(r->has_from_mode, r->from_mode));
	if (r->incident) {
		fputs(" incident ", f);
		put_name(f, r->incident);
	}
	put_seq(f, r);
}

/* "strategy momo-eu-1: HALTED -> REDUCE_ONLY (resume, reason_code manual_halt) — ..." */
static void put_resume(FILE *f, const struct change *ch, const Breaker__Reply *r)
{
	put_change_scope(f, ch);
	fprintf(f, ": %s -> %s (resume%s", reply_mode(r->has_from_mode, r->from_mode),
	        reply_mode(r->has_to_mode, r->to_mode), ch->forced ? " FORCED" : "");
	if (ch->reason_code >= 0)
		fprintf(f, ", reason_code %s", reason_name(ch->reason_code));
	if (r->has_from_mode && r->has_to_mode && r->from_mode == r->to_mode &&
	    r->to_mode != BREAKER__MODE__MODE_ACTIVE)
		fprintf(f, "; another latch still holds %s", mode_name(r->to_mode));
	fputc(')', f);
	put_seq(f, r);
}

/*
 * The trip holds although its record is not on disk: say so, loudly. The
 * reply may carry no modes (breakerd answers all waiting trips at once when
 * a flush fails), so this leans only on what was asked.
 */
static int not_durable(const struct cli *c, const struct change *ch,
                       const Breaker__Reply *r)
{
	fputs("!!! TRIP IN EFFECT: ", stderr);
	put_change_scope(stderr, ch);
	if (r->has_to_mode)
		fprintf(stderr, " is %s", mode_name(r->to_mode));
	else
		fprintf(stderr, " is at least %s", mode_name(ch->mode));
	fprintf(stderr, " (%s)\n!!! BUT ITS AUDIT RECORD", reason_name(ch->reason_code));
	if (r->has_audit_seq)
		fprintf(stderr, " (seq %" PRIu64 ")", r->audit_seq);
	fputs(" IS NOT ON DISK YET\n!!! breakerd: ERR_NOT_DURABLE: ", stderr);
	put_text(stderr, r->error && *r->error ? r->error : "(no detail)");
	fprintf(stderr,
	        "\n!!! the trip holds; breakerd retries the write. Check the disk "
	        "holding %s\n",
	        c->cfg.audit_path);
	return BX_NOT_DURABLE;
}

/*
 * Two-person rule: the resume is only proposed. Say so, and what the second
 * operator has to run (the same resume, from another account or certificate).
 */
static int pending(FILE *f, const struct cli_args *a, const struct change *ch,
                   const Breaker__Reply *r)
{
	char t[BX_TIME_LEN];

	fputs("PROPOSED, NOT APPLIED: ", f);
	put_scope(f, ch->strategy);
	fprintf(f, ": %s -> %s (resume%s, two-person rule)",
	        reply_mode(r->has_from_mode, r->from_mode),
	        reply_mode(r->has_to_mode, r->to_mode), ch->forced ? " FORCED" : "");
	put_seq(f, r);
	fputs("breakerd: ", f);
	put_text(f, r->error && *r->error ? r->error : "(no detail)");
	fputc('\n', f);
	if (r->has_confirm_by_wall_ns)
		fprintf(f, "a different operator must confirm before %s with:\n",
		        fmt_time(t, r->confirm_by_wall_ns, 0));
	else
		fputs("a different operator must confirm with:\n", f);
	fputs("  breaker resume", f);
	if (ch->reason_code >= 0)
		fprintf(f, " --reason-code %s", reason_name(ch->reason_code));
	if (a->to)
		fprintf(f, " --to %s", a->to);
	if (ch->forced)
		fputs(" --force", f);
	fputs(" --reason TEXT\n", f);
	return BX_PENDING;
}

static int send_change(struct cli *c, const struct cli_args *a, Breaker__Request *req,
                       const struct change *ch)
{
	bool trip = req->cmd_case == BREAKER__REQUEST__CMD_TRIP;
	Breaker__Reply *r;
	int rv;

	if ((rv = cli_call(c, a->cmd, req, &r, true)))
		return rv;
	if (a->json)
		json_reply(stdout, r);
	if (r->status == BREAKER__STATUS__OK && !r->has_to_mode && r->error &&
	    *r->error) {
		/* a genuine resend (same id, caller, command): the first record */
		if (!a->json) {
			fputs("already applied (a resend of the same command): ", stdout);
			put_text(stdout, r->error);
			put_seq(stdout, r);
		}
		rv = BX_OK;
	} else if (r->status == BREAKER__STATUS__OK) {
		if (!a->json)
			(trip ? put_trip : put_resume)(stdout, ch, r);
		rv = BX_OK;
	} else if (trip && r->status == BREAKER__STATUS__ERR_NOT_DURABLE) {
		rv = not_durable(c, ch, r);
	} else if (!trip && r->status == BREAKER__STATUS__PENDING_CONFIRMATION) {
		rv = pending(a->json ? stderr : stdout, a, ch, r);
	} else {
		rv = cli_refused(r);
	}
	breaker__reply__free_unpacked(r, NULL);
	return rv;
}

static int send_trip(struct cli *c, const struct cli_args *a, Breaker__Trip *t)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	struct change ch = {t->strategy,         NULL,         1,
	                    (int)t->reason_code, (int)t->mode, false};
	int rv;

	if ((rv = cli_config(c)) || (rv = check_strategy(a->cmd, t->strategy)) ||
	    (rv = check_reason(c, a->cmd, t->reason, false)))
		return rv;
	if (a->incident && !bk_incident_id_valid(a->incident))
		return cli_usage_error(
		    a->cmd,
		    "bad --incident '%s': INC-YYYY-NNN (3 to 6 digits), "
		    "e.g. INC-2026-001",
		    a->incident);
	t->incident = a->incident;
	for (size_t i = 0; i < t->n_strategies; i++)
		if ((rv = check_strategy(a->cmd, t->strategies[i])))
			return rv;
	for (size_t i = 0; i < t->n_groups; i++)
		if ((rv = cli_check_group(a->cmd, t->groups[i])))
			return rv;
	ch.n_scopes = (t->strategy != NULL) + t->n_strategies + t->n_groups;
	if (ch.n_scopes == 1 && t->n_groups == 1)
		ch.group = t->groups[0];
	if (ch.n_scopes == 1 && t->n_strategies == 1)
		ch.strategy = t->strategies[0];
	req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req.trip = t;
	return send_change(c, a, &req, &ch);
}

int cmd_trip(struct cli *c, const struct cli_args *a)
{
	Breaker__Trip t = BREAKER__TRIP__INIT;
	int code, mode = BK_HALTED;

	if (a->npos < 1) {
		fputs("breaker trip: missing <reason_code>\n", stderr);
		list_reasons(stderr, true);
		fputs("nothing was sent; see 'breaker trip --help'\n", stderr);
		return BX_USAGE;
	}
	if ((code = parse_reason(a->cmd, a->pos[0], true)) < 0)
		return BX_USAGE;
	if (a->mode && (mode = parse_mode(a->cmd, "--mode", a->mode, true)) < 0)
		return BX_USAGE;
	if (a->n_strategies == 1 && !a->n_groups) {
		t.strategy = a->strategy; /* one strategy: the request it always was */
	} else {
		t.n_strategies = (size_t)a->n_strategies;
		t.strategies = (char **)a->strategies;
		t.n_groups = (size_t)a->n_groups;
		t.groups = (char **)a->groups;
	}
	t.has_mode = 1;
	t.mode = (Breaker__Mode)mode;
	t.has_reason_code = 1;
	t.reason_code = (Breaker__ReasonCode)code;
	t.reason = a->reason ? a->reason : "(no reason given)";
	if (a->firm)
		return cli_firm_trip(c, a, a->strategies, a->n_strategies, a->groups,
		                     a->n_groups, code, mode, t.reason);
	return send_trip(c, a, &t);
}

int cmd_estop(struct cli *c, const struct cli_args *a)
{
	Breaker__Trip t = BREAKER__TRIP__INIT;

	t.has_mode = 1;
	t.mode = BREAKER__MODE__MODE_HALTED;
	t.has_reason_code = 1;
	t.reason_code = BREAKER__REASON_CODE__EMERGENCY_STOP;
	t.reason = a->reason ? a->reason : "emergency stop";
	if (a->firm)
		return cli_firm_trip(c, a, NULL, 0, NULL, 0, BK_R_EMERGENCY_STOP,
		                     BK_HALTED, t.reason);
	return send_trip(c, a, &t);
}

int cmd_kill(struct cli *c, const struct cli_args *a)
{
	Breaker__Trip t = BREAKER__TRIP__INIT;
	int rv;

	if ((rv = cli_config(c)) || (rv = check_reason(c, a->cmd, a->reason, true)))
		return rv;
	if (a->npos + a->n_groups == 0)
		return cli_usage_error(a->cmd, "missing <strategy> (or --group G)");
	if (a->npos == 1 && !a->n_groups) {
		t.strategy = a->pos[0];
	} else {
		t.n_strategies = (size_t)a->npos;
		t.strategies = a->pos;
		t.n_groups = (size_t)a->n_groups;
		t.groups = (char **)a->groups;
	}
	t.has_mode = 1;
	t.mode = BREAKER__MODE__MODE_HALTED;
	t.has_reason_code = 1;
	t.reason_code = BREAKER__REASON_CODE__KILL_SWITCH;
	t.reason = a->reason;
	if (a->firm)
		return cli_firm_trip(c, a, a->pos, a->npos, a->groups, a->n_groups,
		                     BK_R_KILL_SWITCH, BK_HALTED, t.reason);
	return send_trip(c, a, &t);
}

int cmd_resume(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Resume rs = BREAKER__RESUME__INIT;
	struct change ch = {a->strategy, NULL, 1, -1, -1, a->force};
	int rv;

	if ((rv = cli_config(c)) || (rv = check_strategy(a->cmd, a->strategy)) ||
	    (rv = check_reason(c, a->cmd, a->reason, true)))
		return rv;
	if (a->n_groups > 1 || (a->n_groups && a->strategy))
		return cli_usage_error(a->cmd, "resume one scope: --strategy S or one "
		                               "--group G");
	if (a->n_groups && (rv = cli_check_group(a->cmd, a->groups[0])))
		return rv;
	ch.group = a->n_groups ? a->groups[0] : NULL;
	rs.group = (char *)ch.group;
	if (a->reason_code &&
	    (ch.reason_code = parse_reason(a->cmd, a->reason_code, false)) < 0)
		return BX_USAGE;
	if (a->to && (ch.mode = parse_mode(a->cmd, "--to", a->to, false)) < 0)
		return BX_USAGE;
	if (a->firm)
		return cli_firm_resume(c, a, ch.reason_code, ch.mode);
	rs.strategy = a->strategy;
	rs.has_reason_code = ch.reason_code >= 0;
	rs.reason_code = rs.has_reason_code ? (Breaker__ReasonCode)ch.reason_code : 0;
	rs.has_to = ch.mode >= 0;
	rs.to = rs.has_to ? (Breaker__Mode)ch.mode : 0;
	rs.reason = a->reason;
	rs.has_force = a->force;
	rs.force = a->force;
	if (a->incident && !bk_incident_id_valid(a->incident))
		return cli_usage_error(
		    a->cmd,
		    "bad --incident '%s': INC-YYYY-NNN (3 to 6 digits), "
		    "e.g. INC-2026-001",
		    a->incident);
	rs.incident = a->incident;
	req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
	req.resume = &rs;
	return send_change(c, a, &req, &ch);
}

/*
 * A command whose answer is OK or a refusal: --json prints the reply as it
 * is; otherwise say() describes what was done, then the record's seq.
 */
int send_simple(struct cli *c, const struct cli_args *a, Breaker__Request *req,
                void (*say)(const struct cli_args *a, const Breaker__Reply *r))
{
	Breaker__Reply *r;
	int rv;

	if ((rv = cli_call(c, a->cmd, req, &r, true)))
		return rv;
	if (a->json)
		json_reply(stdout, r);
	if (r->status != BREAKER__STATUS__OK) {
		rv = cli_refused(r);
	} else if (!a->json) {
		say(a, r);
		put_seq(stdout, r);
	}
	breaker__reply__free_unpacked(r, NULL);
	return rv;
}

static void say_registered(const struct cli_args *a, const Breaker__Reply *r)
{
	fputs("registered ", stdout);
	put_scope(stdout, a->pos[0]);
	if (r->n_strategies == 1 && r->strategies[0]->has_slot)
		printf(" (slot %" PRIu32 ")", r->strategies[0]->slot);
}

int cmd_register(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__RegisterStrategy reg = BREAKER__REGISTER_STRATEGY__INIT;
	int rv;

	if ((rv = check_strategy(a->cmd, a->pos[0])))
		return rv;
	if (a->telemetry && strcmp(a->telemetry, "segment") != 0 &&
	    strcmp(a->telemetry, "remote") != 0)
		return cli_usage_error(
		    a->cmd, "--telemetry is segment or remote, not '%s'", a->telemetry);
	for (int i = 0; i < a->n_groups; i++)
		if ((rv = cli_check_group(a->cmd, a->groups[i])))
			return rv;
	reg.n_groups = (size_t)a->n_groups;
	reg.groups = (char **)a->groups;
	reg.strategy = a->pos[0];
	reg.has_remote_telemetry = a->telemetry && strcmp(a->telemetry, "remote") == 0;
	reg.remote_telemetry = reg.has_remote_telemetry;
	req.cmd_case = BREAKER__REQUEST__CMD_REGISTER;
	req.register_ = &reg;
	return send_simple(c, a, &req, say_registered);
}

/* ---- reconcile ---------------------------------------------------------- */

#define BX_RECONCILE_MAX 64 /* positions per request: breakerd's limit */

/* A finite decimal: "1250", "-3.5", "1.2e6"; not nan, inf, hex or blanks. */
static bool parse_notional(const char *s, double *out)
{
	char *end;

	if (!*s || strspn(s, "0123456789+-.eE") != strlen(s))
		return false;
	errno = 0;
	*out = strtod(s, &end);
	return end != s && !*end && isfinite(*out);
}

/* "momo-eu-1=-1250.5" into name (BK_NAME_MAX) and *pos. */
static int parse_position(const char *cmd, const char *arg, char *name, double *pos)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : 0;

	if (!eq)
		return cli_usage_error(cmd, "'%s' is not <strategy>=<position>", arg);
	if (n == 0)
		return cli_usage_error(cmd, "'%s' names no strategy before '='", arg);
	if (n >= BK_NAME_MAX)
		return cli_usage_error(cmd,
		                       "strategy name too long in '%s': %zu bytes, at "
		                       "most %u",
		                       arg, n, BK_NAME_MAX - 1);
	memcpy(name, arg, n);
	name[n] = '\0';
	if (!parse_notional(eq + 1, pos))
		return cli_usage_error(cmd,
		                       "bad position in '%s': use a finite decimal "
		                       "notional, e.g. %s=-1250.5",
		                       arg, name);
	return 0;
}

/* breakerd names a bad entry by index ("position 1: ..."): show which it was. */
static void hint_position(const Breaker__Reply *r, const struct cli_args *a)
{
	unsigned long i;

	if (r->error && sscanf(r->error, "position %lu:", &i) == 1 &&
	    i < (unsigned long)a->npos) {
		fprintf(stderr, "hint: position %lu is ", i);
		json_str(stderr, a->pos[i]);
		fputc('\n', stderr);
	}
}

/* One strategy's break report, from the reply. */
static void print_report(const Breaker__RuleState *rs, const struct cli_args *a)
{
	char num[BX_NUM_LEN];

	fputs("  strategy ", stdout);
	put_name(stdout, rs->strategy);
	if (a->as_of_fills)
		printf(" as of fill %s", a->as_of_fills);
	else if (a->as_of)
		printf(" as of %s", a->as_of);
	if (rs->verdict && strcmp(rs->verdict, "withdrawn") == 0) {
		puts(": reconciliation withdrawn");
		return;
	}
	fputs(":", stdout);
	if (rs->has_engine_position)
		printf(" engine %s,", fmt_num(num, rs->engine_position));
	else
		fputs(" engine ?,", stdout);
	printf(" reconciled %s,", fmt_num(num, rs->reconciled));
	if (rs->has_measured)
		printf(" break %s,", fmt_num(num, rs->measured));
	else
		fputs(" break ?,", stdout);
	printf(" limit %s: %s", fmt_num(num, rs->threshold),
	       rs->verdict ? rs->verdict : "?");
	if (rs->verdict && strcmp(rs->verdict, "break") == 0)
		fputs(" (the reconciliation rule trips)", stdout);
	else if (rs->verdict && strcmp(rs->verdict, "unknown") == 0)
		fputs(" (no verdict: never a trip)", stdout);
	putchar('\n');
}

static int send_reconcile(struct cli *c, const struct cli_args *a, Breaker__Reconcile *rc)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Reply *r;
	size_t n = rc->n_positions + rc->n_withdraw;
	int rv;

	req.cmd_case = BREAKER__REQUEST__CMD_RECONCILE;
	req.reconcile = rc;
	if ((rv = cli_call(c, a->cmd, &req, &r, true)))
		return rv;
	if (a->json)
		json_reply(stdout, r);
	if (r->status != BREAKER__STATUS__OK) {
		rv = cli_refused(r);
		hint_position(r, a);
	} else if (!a->json) {
		printf("%s %zu %s%s\n", rc->n_withdraw ? "withdrew" : "reconciled", n,
		       rc->n_withdraw ? "reconciliation" : "position", n == 1 ? "" : "s");
		for (size_t i = 0; r->info && i < r->info->n_reconciliations; i++)
			print_report(r->info->reconciliations[i], a);
		if (r->error && *r->error) {
			fputs("note: ", stdout);
			put_text(stdout, r->error);
			putchar('\n');
		}
	}
	breaker__reply__free_unpacked(r, NULL);
	return rv;
}

/* --as-of-fills N / --as-of TIME into every position. */
static int parse_as_of(const struct cli_args *a, bool *has_fills, uint64_t *fills,
                       uint64_t *wall)
{
	char *end;

	*has_fills = false;
	*fills = *wall = 0;
	if (a->as_of_fills && a->as_of)
		return cli_usage_error(a->cmd,
		                       "give one as-of point: --as-of-fills or --as-of");
	if ((a->as_of_fills || a->as_of) && a->withdraw)
		return cli_usage_error(a->cmd, "--withdraw takes no as-of point");
	if (a->as_of_fills) {
		errno = 0;
		if (!isdigit((unsigned char)a->as_of_fills[0]) ||
		    (*fills = strtoull(a->as_of_fills, &end, 10), errno || *end))
			return cli_usage_error(a->cmd,
			                       "--as-of-fills takes the engine's fill "
			                       "count, a whole number, not '%s'",
			                       a->as_of_fills);
		*has_fills = true;
	}
	if (a->as_of && (parse_since(a->as_of, now_wall_ns(), wall) < 0 || !*wall))
		return cli_usage_error(a->cmd,
		                       "--as-of takes ISO-8601 UTC "
		                       "(2026-12-06T01:02:03.5Z), epoch seconds, or "
		                       "30s/5m/1h ago; not '%s'",
		                       a->as_of);
	return 0;
}

int cmd_reconcile(struct cli *c, const struct cli_args *a)
{
	char names[BX_RECONCILE_MAX][BK_NAME_MAX];
	Breaker__Reconcile__Position pos[BX_RECONCILE_MAX], *pp[BX_RECONCILE_MAX];
	Breaker__Reconcile rc = BREAKER__RECONCILE__INIT;
	bool has_fills;
	uint64_t fills, wall;
	int rv;

	if (a->npos > BX_RECONCILE_MAX)
		return cli_usage_error(
		    a->cmd,
		    "%d positions: at most %d per reconcile (breakerd's "
		    "limit); split them",
		    a->npos, BX_RECONCILE_MAX);
	if ((rv = parse_as_of(a, &has_fills, &fills, &wall)))
		return rv;
	for (int i = 0; i < a->npos; i++) {
		if (a->withdraw) {
			if (strchr(a->pos[i], '='))
				return cli_usage_error(a->cmd,
				                       "--withdraw takes strategy names, "
				                       "not '%s'",
				                       a->pos[i]);
			for (int j = 0; j < i; j++)
				if (strcmp(a->pos[j], a->pos[i]) == 0)
					return cli_usage_error(
					    a->cmd, "strategy '%s' given twice",
					    a->pos[i]);
			continue;
		}
		breaker__reconcile__position__init(&pos[i]);
		if ((rv = parse_position(a->cmd, a->pos[i], names[i], &pos[i].position)))
			return rv;
		for (int j = 0; j < i; j++)
			if (strcmp(names[j], names[i]) == 0)
				return cli_usage_error(
				    a->cmd, "strategy '%s' given twice", names[i]);
		pos[i].strategy = names[i];
		pos[i].has_position = 1;
		pos[i].has_as_of_fills = has_fills;
		pos[i].as_of_fills = fills;
		pos[i].has_as_of_wall_ns = wall != 0;
		pos[i].as_of_wall_ns = wall;
		pp[i] = &pos[i];
	}
	if (a->incident && !bk_incident_id_valid(a->incident))
		return cli_usage_error(
		    a->cmd, "bad --incident '%s': INC-YYYY-NNN (3 to 6 digits)",
		    a->incident);
	rc.incident = a->incident;
	if (a->withdraw) {
		rc.n_withdraw = (size_t)a->npos;
		rc.withdraw = a->pos;
	} else {
		rc.n_positions = (size_t)a->npos;
		rc.positions = pp;
	}
	return send_reconcile(c, a, &rc);
}

/* ---- rules rebase ------------------------------------------------------- */

static void say_rebased(const struct cli_args *a, const Breaker__Reply *r)
{
	(void)r;
	printf("rebased rule %s of ", a->pos[2]);
	put_scope(stdout, a->pos[1]);
	fputs(" (old and new base in its audit record; latches untouched)", stdout);
}

int cmd_rules(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Rebase rb = BREAKER__REBASE__INIT;
	int rv;

	if (strcmp(a->pos[0], "rebase") != 0)
		return cli_usage_error(a->cmd, "unknown rules action '%s' (rebase)",
		                       a->pos[0]);
	if ((rv = cli_config(c)) || (rv = check_strategy(a->cmd, a->pos[1])) ||
	    (rv = check_reason(c, a->cmd, a->reason, true)))
		return rv;
	if (strcmp(a->pos[2], "drawdown") != 0 && strcmp(a->pos[2], "invariant") != 0)
		return cli_usage_error(a->cmd,
		                       "rule '%s' has no base: drawdown (its peak) or "
		                       "invariant (the balance base)",
		                       a->pos[2]);
	rb.strategy = a->pos[1];
	rb.rule = a->pos[2];
	rb.reason = a->reason;
	req.cmd_case = BREAKER__REQUEST__CMD_REBASE;
	req.rebase = &rb;
	return send_simple(c, a, &req, say_rebased);
}
