/*
 * breaker - the operator CLI for breakerd.
 *
 *   breaker [--config PATH] [--instance NAME] [--url URL] [--timeout MS] <command> ...
 *
 * Operators run this in the middle of an incident, so every message says
 * exactly what happened: applied (with the audit seq), refused (with
 * breakerd's status and why), never sent (bad usage, daemon unreachable), or
 * sent with no answer (may have been applied: check status).
 *
 * Exit status (also in the usage text; see breaker.h):
 *   0 ok, 1 refused by breakerd, 2 bad usage (nothing sent), 3 breakerd
 *   unreachable or no reply in time, 4 audit log failed verification or
 *   cannot be read, 5 trip in effect but its audit record not durable yet.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "bk_mode.h"
#include "bk_rpc.h"
#include "breaker.h"

/* ---- options ------------------------------------------------------------ */

enum {
	O_JSON = 0x100, /* values from here on index the duplicate check */
	O_STRATEGY,
	O_MODE,
	O_REASON,
	O_REASON_CODE,
	O_TO,
	O_FORCE,
	O_VERIFY,
	O_SINCE,
	O_FILE,
};

/* clang-format off */
#define OPT_COMMON {"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, O_JSON}
#define OPT(name, val) {name, required_argument, NULL, val}
#define FLAG(name, val) {name, no_argument, NULL, val}
#define OPT_END {NULL, 0, NULL, 0}

static const struct option trip_opts[] = {OPT_COMMON, OPT("strategy", O_STRATEGY),
					  OPT("mode", O_MODE), OPT("reason", O_REASON), OPT_END};
static const struct option estop_opts[] = {OPT_COMMON, OPT("reason", O_REASON), OPT_END};
static const struct option resume_opts[] = {OPT_COMMON, OPT("strategy", O_STRATEGY),
	OPT("reason-code", O_REASON_CODE), OPT("to", O_TO), OPT("reason", O_REASON),
	FLAG("force", O_FORCE), OPT_END};
static const struct option plain_opts[] = {OPT_COMMON, OPT_END};
static const struct option audit_opts[] = {OPT_COMMON, FLAG("verify", O_VERIFY),
					   OPT("since", O_SINCE), OPT("file", O_FILE), OPT_END};
/* clang-format on */

/* ---- messages ----------------------------------------------------------- */

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "breaker%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nnothing was sent; see 'breaker %s%s--help'\n", cmd ? cmd : "",
	        cmd ? " " : "");
	return BX_USAGE;
}

static const struct {
	int status;
	const char *hint;
} refusal_hints[] = {
    {BREAKER__STATUS__ERR_UNKNOWN_STRATEGY,
     "'breaker strategies' lists registered strategies; 'breaker register NAME' adds "
     "one"},
    {BREAKER__STATUS__ERR_NOT_TRIPPED,
     "no such latch holds that scope; 'breaker status' shows the latches"},
    {BREAKER__STATUS__ERR_STAGE_SKIP,
     "resume one stage at a time (HALTED -> REDUCE_ONLY -> CAUTIOUS -> ACTIVE), "
     "or add --force (audited as forced)"},
    {BREAKER__STATUS__ERR_NOT_A_RESUME,
     "--to must be less restrictive than the scope's mode now ('breaker status')"},
    {BREAKER__STATUS__ERR_AMBIGUOUS,
     "several latches hold this scope: name one with --reason-code "
     "('breaker status' lists them), or --force to release them all"},
    {BREAKER__STATUS__ERR_UNAUTHORISED,
     "resume is restricted to [auth] resume_uids/resume_gids in breakerd's config"},
    {BREAKER__STATUS__ERR_NOT_DURABLE,
     "breakerd could not write the audit log: nothing was changed (no audit, no resume)"},
};

/* "refused: <STATUS>: <breakerd's text>" and a hint. Returns BX_REFUSED. */
int cli_refused(const Breaker__Reply *r)
{
	fprintf(stderr, "refused: %s: ", status_name(r->status));
	if (r->error && *r->error)
		put_text(stderr, r->error);
	else
		fputs("(breakerd gave no detail)", stderr);
	fputc('\n', stderr);
	for (size_t i = 0; i < sizeof(refusal_hints) / sizeof(refusal_hints[0]); i++)
		if (refusal_hints[i].status == (int)r->status)
			fprintf(stderr, "hint: %s\n", refusal_hints[i].hint);
	return BX_REFUSED;
}

/* ---- config and RPC ----------------------------------------------------- */

/* Load the configuration once: embedded defaults, then --config. */
int cli_config(struct cli *c)
{
	char err[512];
	int rv;

	if (c->cfg_loaded)
		return 0;
	if (bk_config_defaults(&c->cfg, c->instance) != 0)
		return cli_usage_error(
		    NULL, "bad --instance '%s': use 1-63 of [A-Za-z0-9._-]", c->instance);
	if (c->config_path) {
		rv = bk_config_load(&c->cfg, c->config_path, err, sizeof(err));
		if (rv == -EINVAL)
			return cli_usage_error(NULL, "config %s: %s", c->config_path,
			                       err);
		if (rv)
			return cli_usage_error(NULL, "cannot read config %s: %s",
			                       c->config_path, strerror(-rv));
		if (c->instance && strcmp(c->instance, c->cfg.instance) != 0)
			return cli_usage_error(
			    NULL, "--instance %s conflicts with instance = %s in %s",
			    c->instance, c->cfg.instance, c->config_path);
	}
	if (!c->url)
		c->url = c->cfg.cmd_url;
	c->cfg_loaded = true;
	return 0;
}

static uint64_t request_id(void)
{
	uint64_t id = 0;

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
		id = now_wall_ns() ^ ((uint64_t)getpid() << 32);
	return id ? id : 1;
}

static int unreachable(const struct cli *c, const char *cmd, int err, bool sent,
                       bool changes_state)
{
	if (err == -EINVAL)
		return cli_usage_error(cmd, "invalid command URL '%s'", c->url);
	if (!sent)
		fprintf(stderr, "breaker %s: cannot reach breakerd at %s: %s\n", cmd,
		        c->url, strerror(-err));
	else if (err == -ETIMEDOUT)
		fprintf(stderr, "breaker %s: no reply from breakerd at %s within %d ms\n",
		        cmd, c->url, c->timeout_ms);
	else if (err == -EBADMSG)
		fprintf(stderr, "breaker %s: undecodable reply from %s (not breakerd?)\n",
		        cmd, c->url);
	else
		fprintf(stderr, "breaker %s: no reply from breakerd at %s: %s\n", cmd,
		        c->url, strerror(-err));
	fputs("is breakerd running?", stderr);
	if (err == -EACCES || err == -EPERM)
		fputs(" may you use its socket (group, directory permissions)?", stderr);
	if (!sent)
		fputs(" nothing was sent.\n", stderr);
	else if (changes_state)
		fputs("\nthe command was sent and MAY HAVE BEEN APPLIED: check 'breaker "
		      "status'"
		      " before repeating it.\n",
		      stderr);
	else
		fputc('\n', stderr);
	return BX_UNREACHABLE;
}

/*
 * One request, one reply. On failure prints what happened and returns
 * BX_UNREACHABLE (or BX_USAGE for a bad URL or config); *reply is then NULL.
 */
int cli_call(struct cli *c, const char *cmd, Breaker__Request *req,
             Breaker__Reply **reply, bool changes_state)
{
	struct bk_rpc rpc;
	int rv;

	*reply = NULL;
	if ((rv = cli_config(c)))
		return rv;
	req->has_request_id = 1;
	req->request_id = request_id();
	if ((rv = bk_rpc_open(&rpc, c->url, c->timeout_ms)))
		return unreachable(c, cmd, rv, false, changes_state);
	rv = bk_rpc_call(&rpc, req, reply);
	bk_rpc_close(&rpc);
	if (rv)
		return unreachable(c, cmd, rv, true, changes_state);
	return 0;
}

/* ---- argument checks ---------------------------------------------------- */

static void list_reasons(FILE *f, bool trip)
{
	int col = fprintf(f, "valid reason codes:");

	for (int i = 1; i < BK_REASON_COUNT; i++) {
		const char *name = bk_reason_name((unsigned)i);

		if (trip && !bk_reason_operator((unsigned)i))
			continue;
		if (col + 1 + (int)strlen(name) > 79)
			col = fprintf(f, "\n ");
		col += fprintf(f, " %s", name);
	}
	fputc('\n', f);
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
	if (code >= 0)
		fprintf(stderr,
		        "reason code %s is set by breakerd itself, not by operators\n",
		        buf);
	else {
		fputs("unknown reason code ", stderr);
		json_str(stderr, name);
		fputc('\n', stderr);
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
	const char *strategy; /* NULL: global */
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

/* "HALTED global (manual_halt, was ACTIVE) — audit seq 42" */
static void put_trip(FILE *f, const struct change *ch, const Breaker__Reply *r)
{
	fprintf(f, "%s ", reply_mode(r->has_to_mode, r->to_mode));
	put_scope(f, ch->strategy);
	fprintf(f, " (%s", reason_name(ch->reason_code));
	if (r->has_to_mode && (int)r->to_mode > ch->mode)
		fprintf(f, " at %s, held %s by another latch", mode_name(ch->mode),
		        mode_name(r->to_mode));
	fprintf(f, ", was %s)", reply_mode(r->has_from_mode, r->from_mode));
	put_seq(f, r);
}

/* "strategy momo-eu-1: HALTED -> REDUCE_ONLY (resume, reason_code manual_halt) — ..." */
static void put_resume(FILE *f, const struct change *ch, const Breaker__Reply *r)
{
	put_scope(f, ch->strategy);
	fprintf(f, ": %s -> %s (resume%s", reply_mode(r->has_from_mode, r->from_mode),
	        reply_mode(r->has_to_mode, r->to_mode), ch->forced ? " FORCED" : "");
	if (ch->reason_code >= 0)
		fprintf(f, ", reason_code %s", reason_name(ch->reason_code));
	fputc(')', f);
	put_seq(f, r);
}

/* The halt holds although the record is not on disk: say so, loudly. */
static int not_durable(const struct cli *c, const struct change *ch,
                       const Breaker__Reply *r)
{
	fputs("!!! ", stderr);
	put_trip(stderr, ch, r);
	fputs("!!! THE TRIP IS IN EFFECT, BUT ITS AUDIT RECORD IS NOT ON DISK YET\n"
	      "!!! breakerd: ERR_NOT_DURABLE: ",
	      stderr);
	put_text(stderr, r->error && *r->error ? r->error : "(no detail)");
	fprintf(stderr,
	        "\n!!! breakerd keeps the record and retries the write; check the disk"
	        " holding %s\n",
	        c->cfg.audit_path);
	return BX_NOT_DURABLE;
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
	if (r->status == BREAKER__STATUS__OK) {
		if (!a->json)
			(trip ? put_trip : put_resume)(stdout, ch, r);
		rv = BX_OK;
	} else if (trip && r->status == BREAKER__STATUS__ERR_NOT_DURABLE) {
		rv = not_durable(c, ch, r);
	} else {
		rv = cli_refused(r);
	}
	breaker__reply__free_unpacked(r, NULL);
	return rv;
}

static int send_trip(struct cli *c, const struct cli_args *a, Breaker__Trip *t)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	struct change ch = {t->strategy, (int)t->reason_code, (int)t->mode, false};
	int rv;

	if ((rv = cli_config(c)) || (rv = check_strategy(a->cmd, t->strategy)) ||
	    (rv = check_reason(c, a->cmd, t->reason, false)))
		return rv;
	req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req.trip = t;
	return send_change(c, a, &req, &ch);
}

static int cmd_trip(struct cli *c, const struct cli_args *a)
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
	t.strategy = a->strategy;
	t.has_mode = 1;
	t.mode = (Breaker__Mode)mode;
	t.has_reason_code = 1;
	t.reason_code = (Breaker__ReasonCode)code;
	t.reason = a->reason ? a->reason : "(no reason given)";
	return send_trip(c, a, &t);
}

static int cmd_estop(struct cli *c, const struct cli_args *a)
{
	Breaker__Trip t = BREAKER__TRIP__INIT;

	t.has_mode = 1;
	t.mode = BREAKER__MODE__MODE_HALTED;
	t.has_reason_code = 1;
	t.reason_code = BREAKER__REASON_CODE__EMERGENCY_STOP;
	t.reason = a->reason ? a->reason : "emergency stop";
	return send_trip(c, a, &t);
}

static int cmd_kill(struct cli *c, const struct cli_args *a)
{
	Breaker__Trip t = BREAKER__TRIP__INIT;
	int rv;

	if ((rv = cli_config(c)) || (rv = check_reason(c, a->cmd, a->reason, true)))
		return rv;
	t.strategy = a->pos[0];
	t.has_mode = 1;
	t.mode = BREAKER__MODE__MODE_HALTED;
	t.has_reason_code = 1;
	t.reason_code = BREAKER__REASON_CODE__KILL_SWITCH;
	t.reason = a->reason;
	return send_trip(c, a, &t);
}

static int cmd_resume(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Resume rs = BREAKER__RESUME__INIT;
	struct change ch = {a->strategy, -1, -1, a->force};
	int rv;

	if ((rv = cli_config(c)) || (rv = check_strategy(a->cmd, a->strategy)) ||
	    (rv = check_reason(c, a->cmd, a->reason, true)))
		return rv;
	if (a->reason_code &&
	    (ch.reason_code = parse_reason(a->cmd, a->reason_code, false)) < 0)
		return BX_USAGE;
	if (a->to && (ch.mode = parse_mode(a->cmd, "--to", a->to, false)) < 0)
		return BX_USAGE;
	rs.strategy = a->strategy;
	rs.has_reason_code = ch.reason_code >= 0;
	rs.reason_code = rs.has_reason_code ? (Breaker__ReasonCode)ch.reason_code : 0;
	rs.has_to = ch.mode >= 0;
	rs.to = rs.has_to ? (Breaker__Mode)ch.mode : 0;
	rs.reason = a->reason;
	rs.has_force = a->force;
	rs.force = a->force;
	req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
	req.resume = &rs;
	return send_change(c, a, &req, &ch);
}

static int cmd_register(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__RegisterStrategy reg = BREAKER__REGISTER_STRATEGY__INIT;
	Breaker__Reply *r;
	int rv;

	if ((rv = check_strategy(a->cmd, a->pos[0])))
		return rv;
	reg.strategy = a->pos[0];
	req.cmd_case = BREAKER__REQUEST__CMD_REGISTER;
	req.register_ = &reg;
	if ((rv = cli_call(c, a->cmd, &req, &r, true)))
		return rv;
	if (a->json)
		json_reply(stdout, r);
	if (r->status != BREAKER__STATUS__OK) {
		rv = cli_refused(r);
	} else if (!a->json) {
		fputs("registered ", stdout);
		put_scope(stdout, a->pos[0]);
		if (r->n_strategies == 1 && r->strategies[0]->has_slot)
			printf(" (slot %" PRIu32 ")", r->strategies[0]->slot);
		put_seq(stdout, r);
	}
	breaker__reply__free_unpacked(r, NULL);
	return rv;
}

/* ---- command table ------------------------------------------------------ */

struct cmd {
	const char *name;
	int (*run)(struct cli *c, const struct cli_args *a);
	const struct option *opts;
	int pos_min, pos_max;
	const char *pos_name; /* for "missing <strategy>" */
	const char *synopsis; /* after "breaker <name> " */
	const char *summary;  /* one line for 'breaker --help' */
	const char *help;     /* the rest of 'breaker <name> --help' */
	const char *exits;
	bool reasons; /* help lists the reason codes an operator may trip with */
};

static int cmd_help(struct cli *c, const struct cli_args *a);

#define EXITS_TRIP                                                                       \
	"0 applied; 1 refused by breakerd; 2 bad usage, nothing sent;\n"                 \
	"  3 breakerd unreachable (nothing sent) or no reply in time (may have been\n"   \
	"    applied: check 'breaker status');\n"                                        \
	"  5 the trip IS IN EFFECT but its audit record is not on disk yet"
#define EXITS_RPC                                                                        \
	"0 ok; 1 refused by breakerd; 2 bad usage, nothing sent;\n"                      \
	"  3 breakerd unreachable, or no reply in time"

static const struct cmd cmds[] = {
    {"trip", cmd_trip, trip_opts, 0, 1, "<reason_code>",
     "<reason_code> [--strategy S] [--reason TEXT]\n"
     "                    [--mode halted|reduce-only|cautious] [--json]",
     "trip global (or --strategy S) to HALTED, or to --mode",
     "Trip the global scope, or one strategy with --strategy, to HALTED (or to\n"
     "--mode). This sets the latch <reason_code> on that scope; it holds until a\n"
     "resume releases it. The trip takes effect before its audit record is written.\n"
     "\n"
     "  --strategy S   trip this strategy only (default: global, every strategy)\n"
     "  --mode M       halted (default), reduce-only or cautious\n"
     "  --reason TEXT  why, for the audit log (at most reason_max_bytes, 1024 by\n"
     "                 default; default text \"(no reason given)\")\n"
     "  --json         print breakerd's reply as one JSON object\n"
     "\n"
     "example: breaker trip manual_halt --reason \"Emergency halt by operator\"\n",
     EXITS_TRIP, true},
    {"emergency-stop", cmd_estop, estop_opts, 0, 0, NULL, "[--reason TEXT] [--json]",
     "HALT everything now (global, emergency_stop); asks nothing",
     "Trip the global scope to HALTED with reason code emergency_stop. Every\n"
     "strategy stops. Asks no questions.\n"
     "\n"
     "  --reason TEXT  why, for the audit log (default \"emergency stop\")\n"
     "  --json         print breakerd's reply as one JSON object\n",
     EXITS_TRIP, false},
    {"kill", cmd_kill, estop_opts, 1, 1, "<strategy>",
     "<strategy> --reason TEXT [--json]", "HALT one strategy (kill_switch)",
     "Trip one strategy to HALTED with reason code kill_switch.\n"
     "\n"
     "  --reason TEXT  why, for the audit log (required)\n"
     "  --json         print breakerd's reply as one JSON object\n"
     "\n"
     "example: breaker kill momo-eu-1 --reason \"runaway orders on XETR\"\n",
     EXITS_TRIP, false},
    {"resume", cmd_resume, resume_opts, 0, 0, NULL,
     "[--strategy S] [--reason-code C]\n"
     "                      [--to reduce-only|cautious|active] --reason TEXT\n"
     "                      [--force] [--json]",
     "release a latch by one stage, towards ACTIVE",
     "Release a latch on the global scope (or on --strategy S) by one stage:\n"
     "HALTED -> REDUCE_ONLY -> CAUTIOUS -> ACTIVE. A scope is ACTIVE again only once\n"
     "every latch on it is released. The audit record is on disk before the change\n"
     "takes effect. Only users allowed by breakerd's [auth] config may resume.\n"
     "\n"
     "  --strategy S     resume this strategy (default: global)\n"
     "  --reason-code C  the latch to release (default: the only one held;\n"
     "                   'breaker status' lists them)\n"
     "  --to MODE        reduce-only, cautious or active (default: the next stage)\n"
     "  --reason TEXT    why, for the audit log (required)\n"
     "  --force          skip stages, release every latch, or resume while an\n"
     "                   invariant still fails; audited as forced\n"
     "  --json           print breakerd's reply as one JSON object\n"
     "\n"
     "example: breaker resume --strategy momo-eu-1 --reason-code manual_halt \\\n"
     "             --reason \"positions reconciled, ticket 4711\"\n",
     EXITS_RPC, false},
    {"register", cmd_register, plain_opts, 1, 1, "<strategy>", "<strategy> [--json]",
     "register a strategy with breakerd",
     "Register a strategy: breakerd gives it a slot in the shared-memory table.\n"
     "\n"
     "  --json  print breakerd's reply as one JSON object\n",
     EXITS_RPC, false},
    {"status", cmd_status, plain_opts, 0, 0, NULL, "[--json]",
     "global mode, tripped strategies and their latches",
     "Show the global mode and its latches, each tripped strategy with its latches\n"
     "(reason code, mode, who, when, why), the number of strategies, breakerd's\n"
     "heartbeat age and the last durable audit seq.\n"
     "\n"
     "  --json  print breakerd's reply as one JSON object\n",
     EXITS_RPC, false},
    {"strategies", cmd_strategies, plain_opts, 0, 0, NULL, "[--json]",
     "every registered strategy and its mode",
     "List every registered strategy with its own mode and latches. An engine's\n"
     "effective mode is the more restrictive of its strategy's and the global mode.\n"
     "\n"
     "  --json  print breakerd's reply as one JSON object\n",
     EXITS_RPC, false},
    {"audit", cmd_audit, audit_opts, 0, 0, NULL,
     "[--verify] [--since TIME] [--file PATH] [--json]",
     "print or verify the audit log (works with breakerd down)",
     "Read the audit log file itself, so this works when breakerd is down. One line\n"
     "per record: seq, time (UTC), kind, scope, from->to, reason code,\n"
     "user(uid)/pid@host, FORCED, reason.\n"
     "\n"
     "  --verify     check every frame, CRC, hash link and seq; print the verdict\n"
     "               only: \"audit log OK: N records, last seq S\", or what is wrong\n"
     "  --since TIME records at or after TIME: 2026-11-23T09:00:00Z (UTC; the Z\n"
     "               and fractions of a second are optional), unix seconds\n"
     "               (1795338000), or an age: 30s, 10m, 2h, 1d\n"
     "  --file PATH  the log to read (default: the config's audit path)\n"
     "  --json       one JSON object per record (with --verify: the verdict)\n",
     "0 ok; 2 bad usage;\n"
     "  4 the log failed verification or cannot be read (the records before the\n"
     "    damage are still printed)",
     false},
    {"help", cmd_help, plain_opts, 0, 1, NULL, "[command]", "this text, or a command's",
     "Print the usage of breaker, or of one command.\n", "0 ok; 2 unknown command",
     false},
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const struct cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static void usage(FILE *f)
{
	fputs("usage: breaker [global options] <command> [options]\n"
	      "\n"
	      "Operator control of breakerd, the trading kill switch.\n"
	      "\n"
	      "commands:\n",
	      f);
	for (size_t i = 0; i < NCMDS; i++)
		fprintf(f, "  %-15s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(
	    f,
	    "\n"
	    "global options (before the command):\n"
	    "  --config PATH    INI config, the same file breakerd reads (default:\n"
	    "                   embedded defaults)\n"
	    "  --instance NAME  breaker instance (default \"default\")\n"
	    "  --url URL        breakerd's command socket (default: from the config,\n"
	    "                   ipc://<run_dir>/<instance>.cmd)\n"
	    "  --timeout MS     wait at most MS for a reply (default %d)\n"
	    "  -h, --help       this text\n"
	    "\n"
	    "Every command takes --help and --json: 'breaker trip --help'.\n"
	    "\n"
	    "exit status:\n"
	    "  0  ok\n"
	    "  1  refused by breakerd: \"refused: <STATUS>: <why>\"\n"
	    "  2  bad usage (unknown command, option, reason code or mode, missing\n"
	    "     argument); nothing was sent\n"
	    "  3  breakerd unreachable (nothing sent), or no reply in time (a trip or\n"
	    "     resume may have been applied: check 'breaker status')\n"
	    "  4  audit log failed verification, or cannot be read\n"
	    "  5  the trip IS in effect, but its audit record is not on disk yet\n",
	    BX_TIMEOUT_MS);
}

static void cmd_usage(FILE *f, const struct cmd *cmd)
{
	fprintf(f, "usage: breaker %s %s\n\n%s", cmd->name, cmd->synopsis, cmd->help);
	if (cmd->reasons) {
		fputc('\n', f);
		list_reasons(f, true);
	}
	fprintf(f, "\nexit status:\n  %s\n", cmd->exits);
}

static int cmd_help(struct cli *c, const struct cli_args *a)
{
	const struct cmd *cmd;

	(void)c;
	if (a->npos == 0) {
		usage(stdout);
		return BX_OK;
	}
	if (!(cmd = find_cmd(a->pos[0])))
		return cli_usage_error(NULL, "unknown command '%s'", a->pos[0]);
	cmd_usage(stdout, cmd);
	return BX_OK;
}

/* ---- parsing ------------------------------------------------------------ */

static const char *opt_name(const struct option *opts, int val)
{
	for (; opts->name; opts++)
		if (opts->val == val)
			return opts->name;
	return "?";
}

/* After getopt's own message: point at the global options if that was one. */
static int bad_option(const char *cmd, int argc, char **argv)
{
	static const char *const global[] = {"--config", "--instance", "--url",
	                                     "--timeout"};
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";

	for (size_t i = 0; i < sizeof(global) / sizeof(global[0]); i++)
		if (strncmp(arg, global[i], strlen(global[i])) == 0)
			fprintf(stderr,
			        "global options go before the command: "
			        "breaker %s ... %s ...\n",
			        global[i], cmd);
	fprintf(stderr, "nothing was sent; see 'breaker %s --help'\n", cmd);
	return BX_USAGE;
}

static int store_opt(struct cli_args *a, int o, char *arg)
{
	switch (o) {
	case 'h':
		a->help = true;
		break;
	case O_JSON:
		a->json = true;
		break;
	case O_STRATEGY:
		a->strategy = arg;
		break;
	case O_MODE:
		a->mode = arg;
		break;
	case O_REASON:
		a->reason = arg;
		break;
	case O_REASON_CODE:
		a->reason_code = arg;
		break;
	case O_TO:
		a->to = arg;
		break;
	case O_FORCE:
		a->force = true;
		break;
	case O_VERIFY:
		a->verify = true;
		break;
	case O_SINCE:
		a->since = arg;
		break;
	case O_FILE:
		a->file = arg;
		break;
	default:
		return -1;
	}
	return 0;
}

/* argv[0] is the command. Options may come before or after the arguments. */
static int parse_args(const struct cmd *cmd, int argc, char **argv, struct cli_args *a)
{
	unsigned seen = 0;
	int o;

	memset(a, 0, sizeof(*a));
	a->cmd = cmd->name;
	optind = 0; /* full reset: permute again after the global "+" parse */
	while ((o = getopt_long(argc, argv, "h", cmd->opts, NULL)) != -1) {
		if (o == '?' || store_opt(a, o, optarg) < 0)
			return bad_option(cmd->name, argc, argv);
		if (o >= O_JSON && (seen & 1u << (o - O_JSON)))
			return cli_usage_error(cmd->name, "--%s given twice",
			                       opt_name(cmd->opts, o));
		if (o >= O_JSON)
			seen |= 1u << (o - O_JSON);
	}
	if (a->help)
		return 0;
	for (; optind < argc; optind++) {
		if (a->npos == cmd->pos_max)
			return cli_usage_error(cmd->name, "unexpected argument '%s'%s",
			                       argv[optind],
			                       a->reason ? " (quote the whole reason: "
			                                   "--reason \"...\")"
			                                 : "");
		a->pos[a->npos++] = argv[optind];
	}
	if (a->npos < cmd->pos_min)
		return cli_usage_error(cmd->name, "missing %s", cmd->pos_name);
	return 0;
}

static int parse_timeout(struct cli *c, const char *s)
{
	char *end;
	long ms;

	errno = 0;
	ms = strtol(s, &end, 10);
	if (errno || end == s || *end || ms < 1 || ms > 600000)
		return cli_usage_error(
		    NULL, "--timeout takes milliseconds, 1 to 600000, not '%s'", s);
	c->timeout_ms = (int)ms;
	return 0;
}

static int parse_url(struct cli *c, const char *s)
{
	if (strncmp(s, "ipc://", 6) != 0 && strncmp(s, "tcp://", 6) != 0)
		return cli_usage_error(
		    NULL, "--url must start with ipc:// or tcp://, not '%s'", s);
	if (strlen(s) >= BK_URL_MAX)
		return cli_usage_error(NULL, "--url is too long");
	c->url = s;
	return 0;
}

/* Options before the command. Returns -1 to go on, else the exit status. */
static int parse_global(struct cli *c, int argc, char **argv)
{
	/* clang-format off */
	static const struct option opts[] = {OPT("config", 'c'), OPT("instance", 'i'),
		OPT("url", 'u'), OPT("timeout", 't'), FLAG("help", 'h'), OPT_END};
	/* clang-format on */
	unsigned seen = 0;
	int o, rv = 0;

	optind = 0;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (o == '?')
			return cli_usage_error(NULL, "bad global option");
		if (o != 'h' && (seen & 1u << (o & 31)))
			return cli_usage_error(NULL, "--%s given twice",
			                       opt_name(opts, o));
		seen |= 1u << (o & 31);
		if (o == 'h') {
			usage(stdout);
			return BX_OK;
		} else if (o == 'c') {
			c->config_path = optarg;
		} else if (o == 'i') {
			c->instance = optarg;
		} else if (o == 'u') {
			rv = parse_url(c, optarg);
		} else if (o == 't') {
			rv = parse_timeout(c, optarg);
		}
		if (rv)
			return rv;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct cli c = {.timeout_ms = BX_TIMEOUT_MS};
	char prog[] = "breaker", sub[64];
	const struct cmd *cmd;
	struct cli_args a;
	int rv;

	argv[0] = prog;
	if ((rv = parse_global(&c, argc, argv)) >= 0)
		return rv;
	if (optind >= argc) {
		usage(stderr);
		return cli_usage_error(NULL, "missing command");
	}
	if (!(cmd = find_cmd(argv[optind]))) {
		fprintf(stderr, "breaker: unknown command '%s'\ncommands:", argv[optind]);
		for (size_t i = 0; i < NCMDS; i++)
			fprintf(stderr, " %s", cmds[i].name);
		fputs("\nnothing was sent; see 'breaker --help'\n", stderr);
		return BX_USAGE;
	}
	argc -= optind;
	argv += optind;
	snprintf(sub, sizeof(sub), "breaker %s", cmd->name);
	argv[0] = sub; /* getopt's messages name the command */
	if ((rv = parse_args(cmd, argc, argv, &a)))
		return rv;
	if (a.help) {
		cmd_usage(stdout, cmd);
		return BX_OK;
	}
	rv = cmd->run(&c, &a);
	if (fflush(stdout) != 0) /* the exit status still says what breakerd did */
		fprintf(stderr, "breaker %s: cannot write output: %s\n", cmd->name,
		        strerror(errno));
	return rv;
}
