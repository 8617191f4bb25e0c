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
 *   cannot be read, 5 trip in effect but its audit record not durable yet,
 *   6 a global resume proposed, awaiting a second operator (two-person rule).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "bk_rpc.h"
#include "bk_trust.h"
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
	O_COUNT,
	O_TIMEOUT_MS,
	O_UNTIL,
	O_FORMAT,
	O_WIDE,
	O_TELEMETRY,
	O_AS_OF_FILLS,
	O_AS_OF,
	O_WITHDRAW,
	O_INCIDENT,
	O_SEVERITY,
	O_TITLE,
	O_COMMANDER,
	O_RESOLUTION,
	O_GROUP, /* repeatable, like --strategy for trip */
	O_FIRM,
	O_REVISION,
	O_ANCHORS, /* audit --anchors (breaker_anchor.c) */
	O_HOST,
	O_LOG, /* incident export --log (repeatable; breaker_incident_merge.c) */
};

/* clang-format off */
#define OPT_COMMON {"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, O_JSON}
#define OPT(name, val) {name, required_argument, NULL, val}
#define FLAG(name, val) {name, no_argument, NULL, val}
#define OPT_END {NULL, 0, NULL, 0}

static const struct option trip_opts[] = {OPT_COMMON, OPT("strategy", O_STRATEGY),
					  OPT("group", O_GROUP), OPT("mode", O_MODE),
					  OPT("reason", O_REASON), OPT("incident", O_INCIDENT),
					  FLAG("firm", O_FIRM), OPT_END};
static const struct option estop_opts[] = {OPT_COMMON, OPT("reason", O_REASON),
	OPT("incident", O_INCIDENT), FLAG("firm", O_FIRM), OPT_END};
static const struct option kill_opts[] = {OPT_COMMON, OPT("reason", O_REASON),
					  OPT("group", O_GROUP), OPT("incident", O_INCIDENT),
					  FLAG("firm", O_FIRM), OPT_END};
static const struct option group_opts[] = {OPT_COMMON, OPT("reason", O_REASON), OPT_END};
static const struct option resume_opts[] = {OPT_COMMON, OPT("strategy", O_STRATEGY),
	OPT("group", O_GROUP),
	OPT("reason-code", O_REASON_CODE), OPT("to", O_TO), OPT("reason", O_REASON),
	FLAG("force", O_FORCE), OPT("incident", O_INCIDENT), FLAG("firm", O_FIRM),
	OPT("revision", O_REVISION), OPT_END};
static const struct option plain_opts[] = {OPT_COMMON, OPT_END};
static const struct option status_opts[] = {OPT_COMMON, FLAG("firm", O_FIRM), OPT_END};
static const struct option rules_opts[] = {OPT_COMMON, OPT("reason", O_REASON), OPT_END};
static const struct option register_opts[] = {OPT_COMMON, OPT("telemetry", O_TELEMETRY),
					      OPT("group", O_GROUP), OPT_END};
static const struct option reconcile_opts[] = {OPT_COMMON, OPT("as-of-fills", O_AS_OF_FILLS),
	OPT("as-of", O_AS_OF), FLAG("withdraw", O_WITHDRAW), OPT("incident", O_INCIDENT), OPT_END};
static const struct option audit_opts[] = {OPT_COMMON, FLAG("verify", O_VERIFY),
					   OPT("since", O_SINCE), OPT("file", O_FILE),
					   FLAG("anchors", O_ANCHORS), OPT("host", O_HOST), OPT_END};
static const struct option watch_opts[] = {OPT_COMMON, OPT("count", O_COUNT),
					   OPT("timeout-ms", O_TIMEOUT_MS), FLAG("wide", O_WIDE), OPT_END};
static const struct option incident_opts[] = {OPT_COMMON, OPT("since", O_SINCE),
	OPT("until", O_UNTIL), OPT("format", O_FORMAT), OPT("file", O_FILE),
	OPT("severity", O_SEVERITY), OPT("title", O_TITLE), OPT("commander", O_COMMANDER),
	OPT("resolution", O_RESOLUTION), OPT("log", O_LOG), FLAG("anchors", O_ANCHORS), OPT_END};
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
    {BREAKER__STATUS__ERR_UNKNOWN_GROUP,
     "'breaker status' lists the groups; 'breaker register NAME --group G' or "
     "'breaker group add NAME G' puts a strategy in one (docs/groups.md)"},
    {BREAKER__STATUS__ERR_NOT_TRIPPED,
     "no such latch holds that scope; 'breaker status' shows the latches"},
    {BREAKER__STATUS__ERR_STAGE_SKIP,
     "stages: HALTED -> REDUCE_ONLY -> CAUTIOUS -> ACTIVE; --force is audited as forced"},
    {BREAKER__STATUS__ERR_NOT_A_RESUME,
     "--to must be less restrictive than the scope's mode now ('breaker status')"},
    {BREAKER__STATUS__ERR_AMBIGUOUS,
     "several latches hold this scope: name one with --reason-code "
     "('breaker status' lists them), or --force to lower every latch together by one "
     "stage (add --to active to release them all at once)"},
    {BREAKER__STATUS__ERR_UNAUTHORISED,
     "who may trip, kill, resume and force is set in breakerd's config: [auth] "
     "for local users, [tls] roles for certificates (docs/security.md); the "
     "refusal is in the audit log"},
    {BREAKER__STATUS__ERR_CONDITION_HOLDS,
     "the rule that set this latch still fails, or (reject_rate, to active) has "
     "too few fresh orders to show it holds: 'breaker status' shows its "
     "utilisation; fix the cause, probe with --to reduce-only/cautious, 'breaker "
     "rules rebase' a drawdown or balance base, or --force (audited as forced; "
     "the rule stays armed)"},
    {BREAKER__STATUS__ERR_REQUEST_ID_REUSED,
     "nothing was applied: that request id belongs to another command; run it "
     "again without BREAKER_REQUEST_ID (a fresh id)"},
    {BREAKER__STATUS__ERR_NOT_DURABLE,
     "breakerd's audit log is failing, and a resume needs its record on disk first"},
    {BREAKER__STATUS__ERR_LATCHED,
     "release every latch first ('breaker resume --strategy S ...' down to ACTIVE)"},
    {BREAKER__STATUS__ERR_ENGINE_ATTACHED,
     "stop the engine trading this strategy first (docs/cli.md, unregister)"},
    {BREAKER__STATUS__ERR_STAGE_TOO_SOON,
     "[limits] <mode>.min_stage_ms in breakerd's config holds each stage; wait, "
     "or --force (audited as forced)"},
};

/* "refused: <STATUS>: <breakerd's text>" and a hint. Returns BX_REFUSED. */
int cli_refused(const Breaker__Reply *r)
{
	const char *name = status_name(r->status);

	if (name)
		fprintf(stderr, "refused: %s: ", name);
	else
		fprintf(stderr,
		        "refused: STATUS_%d (unknown to this breaker): ", (int)r->status);
	if (r->error && *r->error)
		put_text(stderr, r->error);
	else
		fputs("(breakerd gave no detail)", stderr);
	fputc('\n', stderr);
	if (r->status == BREAKER__STATUS__ERR_UNAUTHORISED && r->error &&
	    strncmp(r->error, "two-person rule", 15) == 0) {
		fputs("hint: another operator (a different uid or certificate) must send "
		      "the same resume\n",
		      stderr);
		return BX_REFUSED;
	}
	for (size_t i = 0; i < sizeof(refusal_hints) / sizeof(refusal_hints[0]); i++)
		if (refusal_hints[i].status == (int)r->status)
			fprintf(stderr, "hint: %s\n", refusal_hints[i].hint);
	return BX_REFUSED;
}

/* ---- config and RPC ----------------------------------------------------- */

/* Load the configuration once: embedded defaults, then the file bk_config_pick
 * names (--config, $BREAKER_CONFIG, /etc/breaker/breaker.ini). */
int cli_config(struct cli *c)
{
	char err[512];
	int rv;

	const char *from;

	if (c->cfg_loaded)
		return 0;
	if (bk_config_defaults(&c->cfg, c->instance) != 0)
		return cli_usage_error(
		    NULL, "bad --instance '%s': use 1-63 of [A-Za-z0-9._-]", c->instance);
	/* the same file breakerd reads: --config, $BREAKER_CONFIG, /etc/... */
	c->config_path = bk_config_pick(c->config_path, &from);
	if (c->config_path) {
		rv = bk_config_load(&c->cfg, c->config_path, err, sizeof(err));
		if (rv == -EINVAL)
			return cli_usage_error(NULL, "config %s (from %s): %s",
			                       c->config_path, from, err);
		if (rv)
			return cli_usage_error(NULL,
			                       "cannot read config %s (from %s): %s",
			                       c->config_path, from, strerror(-rv));
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

/*
 * A fresh random id per command; BREAKER_REQUEST_ID=N resends a command
 * whose answer was lost under its first id (breakerd answers a genuine
 * resend from the same caller with the first record, and refuses the id
 * for anything else).
 */
static uint64_t request_id(void)
{
	const char *env = getenv("BREAKER_REQUEST_ID");
	uint64_t id = 0;

	if (env && *env) {
		char *end;
		errno = 0;
		id = strtoull(env, &end, 10);
		if (!errno && !*end && id && *env >= '0' && *env <= '9')
			return id;
		fprintf(stderr,
		        "breaker: ignoring BREAKER_REQUEST_ID='%s': not a "
		        "decimal id from 1 to 2^64-1\n",
		        env);
	}

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
		id = now_wall_ns() ^ ((uint64_t)getpid() << 32);
	return id ? id : 1;
}

static int unreachable(const struct cli *c, const char *cmd, int err, bool sent,
                       bool changes_state)
{
	static const char maybe_applied[] =
	    "\nthe command was sent and MAY HAVE BEEN APPLIED:\n"
	    "check 'breaker status' before repeating it.\n";

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
	if (err == -EACCES || err == -EPERM)
		fputs("is breakerd running, and may your user use its socket (group,"
		      " directory permissions)?",
		      stderr);
	else
		fputs("is breakerd running?", stderr);
	if (!sent)
		fputs(" nothing was sent.\n", stderr);
	else if (changes_state)
		fputs(maybe_applied, stderr);
	else
		fputc('\n', stderr);
	return BX_UNREACHABLE;
}

/* Dial tls+tcp:// with --tls-* or the config's [tls] client_* files. */
static int cli_open_tls(struct cli *c, struct bk_rpc *rpc)
{
	const struct bk_config *g = &c->cfg;
	struct bk_rpc_tls t = {
	    c->tls_cert             ? c->tls_cert
	    : g->tls_client_cert[0] ? g->tls_client_cert
	                            : NULL,
	    c->tls_key             ? c->tls_key
	    : g->tls_client_key[0] ? g->tls_client_key
	                           : NULL,
	    c->tls_ca             ? c->tls_ca
	    : g->tls_client_ca[0] ? g->tls_client_ca
	                          : NULL,
	};
	char err[512];
	int rv;

	if (!t.ca_file) {
		fputs("breaker: tls+tcp:// needs the CA that signed breakerd's "
		      "certificate:\n"
		      "--tls-ca FILE, or [tls] client_ca_file in the config\n",
		      stderr);
		return -ENOKEY;
	}
	if (!t.cert_file != !t.key_file) {
		fputs("breaker: --tls-cert and --tls-key go together\n", stderr);
		return -ENOKEY;
	}
	rv = bk_rpc_open_tls(rpc, c->url, c->timeout_ms, &t, err, sizeof(err));
	if (rv && err[0])
		fprintf(stderr, "breaker: %s\n", err);
	return rv;
}

/* Did breakerd answer "already applied" (this request id, an earlier try)? */
static bool duplicate_ack(const Breaker__Reply *r)
{
	return r->status == BREAKER__STATUS__OK && r->error &&
	       strstr(r->error, "duplicate request id");
}

/*
 * Dial c->url, proving on unix:// and ipc:// that the server end is breakerd's
 * before anything is sent (bk_trust.h). *distrust is set when it is not; the
 * reason is printed.
 */
static int cli_open(struct cli *c, const char *cmd, struct bk_rpc *rpc, bool *distrust)
{
	struct bk_trust t;
	char err[768] = "";
	int rv;

	*distrust = false;
	if (strncmp(c->url, "tls+", 4) == 0)
		return cli_open_tls(c, rpc);
	if (strncmp(c->url, "unix://", 7) && strncmp(c->url, "ipc://", 6))
		return bk_rpc_open(rpc, c->url, c->timeout_ms);
	if ((rv = bk_trust_expect(&c->cfg, &t, err, sizeof(err))) == 0)
		rv =
		    bk_rpc_open_trusted(rpc, c->url, c->timeout_ms, &t, err, sizeof(err));
	if (rv == -EPERM && err[0]) {
		*distrust = true;
		fprintf(stderr,
		        "breaker %s: refusing to send to %s: %s\n"
		        "nothing was sent.\n",
		        cmd, c->url, err);
	}
	return rv;
}

/*
 * One request, one reply. On failure prints what happened and returns
 * BX_UNREACHABLE (or BX_USAGE for a bad URL or config); *reply is then NULL.
 *
 * Transports: changes take the local fast path first, queries (replies can
 * be long) nng's ipc_url first; when one fails, for whatever reason, the
 * request goes again over the other WITH THE SAME REQUEST ID: breakerd
 * applies a request id once per caller, so a change that the first try did
 * apply is acknowledged as a duplicate, never applied twice (a flooded
 * local socket must not block a trip). An explicit --url is
 * used alone, as given.
 */
int cli_call(struct cli *c, const char *cmd, Breaker__Request *req,
             Breaker__Reply **reply, bool changes_state)
{
	const char *urls[2], *failed = NULL, *named = NULL;
	struct bk_rpc rpc;
	int n = 0, rv = 0, failed_err = 0;
	bool sent = false, failed_sent = false, distrust = false;

	*reply = NULL;
	if ((rv = cli_config(c)))
		return rv;
	req->has_request_id = 1;
	req->request_id = request_id();
	if (c->url_given) {
		urls[n++] = c->url;
	} else {
		if (changes_state && c->cfg.local_url[0])
			urls[n++] = c->cfg.local_url;
		urls[n++] = c->cfg.cmd_url;
		if (!changes_state && c->cfg.local_url[0])
			urls[n++] = c->cfg.local_url;
	}
	for (int i = 0; i < n; i++) {
		c->url = urls[i];
		sent = false;
		if ((rv = cli_open(c, cmd, &rpc, &distrust)) == 0) {
			rv = bk_rpc_call(&rpc, req, reply);
			bk_rpc_close(&rpc);
			sent = true;
			if (rv == 0)
				break;
		}
		/* the error names the transport that got furthest; if none had
		 * a socket, the first (ipc_url for queries) */
		if (!named || sent || rv != -ECONNREFUSED)
			named = c->url;
		/* a server end that is not breakerd's: said, and nothing more is
		 * sent anywhere (bk_trust.h) */
		if (distrust) {
			if (failed_sent && changes_state)
				fprintf(stderr,
				        "breaker %s: the try over %s (%s) may have been "
				        "applied\n",
				        cmd, failed, strerror(-failed_err));
			return BX_UNREACHABLE;
		}
		if (rv == -EINVAL || i + 1 == n)
			break;
		if (rv == -ECONNREFUSED && !sent)
			continue; /* no socket there (fast path off): nothing to say */
		/* say it now: the next try may be answered "already applied" */
		fprintf(stderr,
		        "breaker %s: %s over %s: %s; trying %s with the same request "
		        "id\n",
		        cmd, sent ? "sent, no reply" : "cannot send", c->url,
		        strerror(-rv), urls[i + 1]);
		failed = c->url;
		failed_err = rv;
		failed_sent = failed_sent || sent;
	}
	if (rv) {
		c->url = named;
		if (failed_sent && changes_state)
			fprintf(
			    stderr,
			    "breaker %s: the try over %s (%s) may have been applied\n",
			    cmd, failed, strerror(-failed_err));
		return unreachable(c, cmd, rv, sent || failed_sent, changes_state);
	}
	if (failed && changes_state)
		fprintf(stderr, "breaker %s: %s %s (request id %016" PRIx64 ")\n", cmd,
		        duplicate_ack(*reply) ? "applied by the earlier try over"
		                              : "applied over",
		        duplicate_ack(*reply) ? failed : c->url, req->request_id);
	return 0;
}

/* Move page's strategy scopes onto the end of *arr (n of them), page keeps none. */
static int take_scopes(Breaker__Scope ***arr, size_t *n, Breaker__Scope ***from,
                       size_t *nfrom)
{
	Breaker__Scope **grown;

	if (!*nfrom)
		return 0;
	if (!(grown = realloc(*arr, (*n + *nfrom) * sizeof(*grown))))
		return -ENOMEM;
	memcpy(grown + *n, *from, *nfrom * sizeof(*grown));
	*arr = grown;
	*n += *nfrom;
	*nfrom = 0; /* the page's array goes, its scopes now belong to *arr */
	return 0;
}

/*
 * A Status or ListStrategies, every page of it: breakerd answers a big table
 * in pages ("truncated: more from slot N"); they are asked for in turn and
 * joined into one reply, as if it had fitted. As cli_call.
 */
int cli_query_pages(struct cli *c, const char *cmd, Breaker__Request *req,
                    Breaker__Reply **reply)
{
	static const char more[] = "truncated: more from slot ";
	Breaker__Reply *page = NULL;
	uint32_t *offset, *limit;
	protobuf_c_boolean *has_offset, *has_limit;
	int rv;

	if (req->cmd_case == BREAKER__REQUEST__CMD_STATUS) {
		offset = &req->status->offset, has_offset = &req->status->has_offset;
		limit = &req->status->limit, has_limit = &req->status->has_limit;
	} else {
		offset = &req->list->offset, has_offset = &req->list->has_offset;
		limit = &req->list->limit, has_limit = &req->list->has_limit;
	}
	*has_limit = 1;
	*limit = 256; /* what breakerd sends at most per page */
	if ((rv = cli_call(c, cmd, req, reply, false)))
		return rv;
	while ((*reply)->status == BREAKER__STATUS__OK && (*reply)->error &&
	       strncmp((*reply)->error, more, sizeof(more) - 1) == 0) {
		char *end;
		unsigned long next =
		    strtoul((*reply)->error + sizeof(more) - 1, &end, 10);

		if (*end || next <= *offset || next > UINT32_MAX) {
			fprintf(stderr,
			        "breaker %s: breakerd's page marker is not understood: "
			        "%s\n",
			        cmd, (*reply)->error);
			break;
		}
		*has_offset = 1;
		*offset = (uint32_t)next;
		if ((rv = cli_call(c, cmd, req, &page, false))) {
			breaker__reply__free_unpacked(*reply, NULL);
			*reply = NULL;
			return rv;
		}
		if (page->status != BREAKER__STATUS__OK || !page->info ||
		    !(*reply)->info ||
		    take_scopes(&(*reply)->info->tripped, &(*reply)->info->n_tripped,
		                &page->info->tripped, &page->info->n_tripped) ||
		    take_scopes(&(*reply)->strategies, &(*reply)->n_strategies,
		                &page->strategies, &page->n_strategies)) {
			breaker__reply__free_unpacked(*reply, NULL);
			*reply = page; /* its refusal (or what it is) is the answer */
			return 0;
		}
		/* the last page's marker (or none) is the joined reply's */
		free((*reply)->error);
		(*reply)->error = page->error;
		page->error = NULL;
		breaker__reply__free_unpacked(page, NULL);
	}
	return 0;
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
#define EXITS_CHANGE                                                                     \
	"0 applied; 1 refused by breakerd; 2 bad usage, nothing sent;\n"                 \
	"  3 breakerd unreachable (nothing sent) or no reply in time (may have been\n"   \
	"    applied: check 'breaker status')"
#define EXITS_RESUME                                                                     \
	EXITS_CHANGE                                                                     \
	";\n"                                                                            \
	"  6 a global resume proposed, not applied: the two-person rule wants a\n"       \
	"    different operator to send the same resume"
#define EXITS_RPC                                                                        \
	"0 ok; 1 refused by breakerd; 2 bad usage, nothing sent;\n"                      \
	"  3 breakerd unreachable, or no reply in time"

static const struct cmd cmds[] = {
    {"trip", cmd_trip, trip_opts, 0, 1, "<reason_code>",
     "<reason_code> [--strategy S ...] [--group KIND:VALUE ...]\n"
     "                    [--reason TEXT] [--mode halted|reduce-only|cautious]\n"
     "                    [--incident ID] [--json]",
     "trip global (or strategies, groups) to HALTED, or to --mode",
     "Trip the global scope, or the strategies and groups named, to HALTED (or to\n"
     "--mode). This sets the latch <reason_code> on each scope; it holds until a\n"
     "resume releases it. The trip takes effect before its audit record is written.\n"
     "Several scopes are one command: all are latched and visible to engines\n"
     "before the reply, and one unknown name refuses the whole command.\n"
     "\n"
     "  --strategy S   trip this strategy (repeatable; default: global, every\n"
     "                 strategy)\n"
     "  --group G      trip this group, e.g. venue:XETR: every member strategy is\n"
     "                 held (repeatable; a group with no members is refused)\n"
     "  --mode M       halted (default), reduce-only or cautious\n"
     "  --reason TEXT  why, for the audit log (at most reason_max_bytes, 1024 by\n"
     "                 default; default text \"(no reason given)\")\n"
     "  --incident ID  the incident it belongs to, INC-YYYY-NNN (default: the\n"
     "                 incident a held scope is under, or a new one: docs/incidents.md)\n"
     "  --json         print breakerd's reply as one JSON object\n"
     "  --firm         the firm-wide latch in etcd ([cluster]): every host;\n"
     "                 several scopes are one etcd transaction; waits for the\n"
     "                 hosts' acks (docs/firmwide.md)\n"
     "\n"
     "example: breaker trip manual_halt --reason \"Emergency halt by operator\"\n",
     EXITS_TRIP, true},
    {"emergency-stop", cmd_estop, estop_opts, 0, 0, NULL,
     "[--reason TEXT] [--incident ID] [--json]",
     "HALT everything now (global, emergency_stop); asks nothing",
     "Trip the global scope to HALTED with reason code emergency_stop. Every\n"
     "strategy stops. Asks no questions.\n"
     "\n"
     "  --reason TEXT  why, for the audit log (default \"emergency stop\")\n"
     "  --json         print breakerd's reply as one JSON object\n"
     "  --firm         firm-wide, through etcd ([cluster]): every host\n",
     EXITS_TRIP, false},
    {"kill", cmd_kill, kill_opts, 0, BX_SCOPES_MAX, "<strategy>",
     "<strategy> ... [--group KIND:VALUE ...] --reason TEXT [--incident ID]\n"
     "                    [--json]",
     "HALT strategies or groups (kill_switch)",
     "Trip strategies (and/or groups) to HALTED with reason code kill_switch, in\n"
     "one command: all are latched and visible to engines before the reply, and\n"
     "one unknown name refuses the whole command with nothing changed.\n"
     "\n"
     "  --group G      kill this group, e.g. desk:eu-delta (repeatable)\n"
     "  --reason TEXT  why, for the audit log (required)\n"
     "  --json         print breakerd's reply as one JSON object\n"
     "  --firm         firm-wide, through etcd ([cluster]): on every host\n"
     "\n"
     "example: breaker kill momo-eu-1 arb-us-2 --reason \"runaway orders on XETR\"\n"
     "         breaker kill --group desk:eu-delta --reason \"desk limit breach\"\n",
     EXITS_TRIP, false},
    {"resume", cmd_resume, resume_opts, 0, 0, NULL,
     "[--strategy S | --group G] [--reason-code C]\n"
     "                      [--to reduce-only|cautious|active] --reason TEXT\n"
     "                      [--force] [--incident ID] [--json]",
     "release a latch by one stage, towards ACTIVE",
     "Release a latch on the global scope (or on --strategy S, or --group G) by\n"
     "one stage:\n"
     "HALTED -> REDUCE_ONLY -> CAUTIOUS -> ACTIVE. A scope is ACTIVE again only once\n"
     "every latch on it is released. The audit record is on disk before the change\n"
     "takes effect. Only users allowed by breakerd's [auth] config may resume.\n"
     "\n"
     "  --strategy S     resume this strategy (default: global)\n"
     "  --group G        resume this group (kind:value); its members are free of\n"
     "                   it once every latch of the group is released\n"
     "  --reason-code C  the latch to release (default: the only one held;\n"
     "                   'breaker status' lists them)\n"
     "  --to MODE        reduce-only, cautious or active (default: the next stage)\n"
     "  --reason TEXT    why, for the audit log (required)\n"
     "  --force          audited as forced; it lets a resume (each alone or together):\n"
     "                   - skip stages, with --to (else it goes one stage);\n"
     "                   - act on every latch at once when several hold and no\n"
     "                     --reason-code is given: each is lowered to one stage\n"
     "                     below the scope's mode, or to --to (--to active\n"
     "                     releases them all);\n"
     "                   - go ahead while a rule still fails: the rule stays\n"
     "                     armed and trips again if it gets worse, or after its\n"
     "                     rearm_ms if still failing\n"
     "  --json           print breakerd's reply as one JSON object\n"
     "  --firm           the firm-wide latch in etcd ([cluster]); needs\n"
     "  --revision N     its mod_revision as 'breaker status --firm' showed it:\n"
     "                   refused if the latch changed since\n"
     "\n"
     "example: breaker resume --strategy momo-eu-1 --reason-code manual_halt \\\n"
     "             --reason \"positions reconciled, ticket 4711\"\n",
     EXITS_RESUME, false},
    {"register", cmd_register, register_opts, 1, 1, "<strategy>",
     "<strategy> [--group KIND:VALUE ...] [--telemetry segment|remote] [--json]",
     "register a strategy with breakerd",
     "Register a strategy: breakerd gives it a slot in the shared-memory table.\n"
     "\n"
     "  --group G        put it in group G (kind:value; kinds: venue, desk,\n"
     "                   account, trader, host); repeatable, at most 8. A group\n"
     "                   is made on first use and kept, like a strategy slot.\n"
     "  --telemetry SRC  where its rules read telemetry: segment (default: the\n"
     "                   engine writes the telemetry segment on this host) or\n"
     "                   remote (Report messages from an engine elsewhere, sent\n"
     "                   by a user or certificate allowed to report); the other\n"
     "                   source is refused for this strategy\n"
     "  --json           print breakerd's reply as one JSON object\n",
     EXITS_CHANGE, false},
    {"group", cmd_group, group_opts, 3, 3, "add|remove <strategy> <kind:value>",
     "add|remove <strategy> <kind:value> [--reason TEXT] [--json]",
     "put a strategy in a group, or take it out (audited)",
     "Change a strategy's groups. A group (venue:XETR, desk:eu-delta,\n"
     "account:ACC-7, trader:T42, host:NAME) holds latches like a strategy; its\n"
     "members' engines see the strictest of global, their groups and their own.\n"
     "add: the strategy is held by the group's latches at once. remove: refused\n"
     "while the group holds a latch (resume the group first).\n"
     "\n"
     "  --reason TEXT  why, for the audit log\n"
     "  --json         print breakerd's reply as one JSON object\n"
     "\n"
     "example: breaker group add momo-eu-1 venue:XETR --reason \"moved to XETR\"\n",
     EXITS_CHANGE, false},
    {"unregister", cmd_unregister, estop_opts, 1, 1, "<strategy>",
     "<strategy> --reason TEXT [--json]", "retire a strategy (its slot is never reused)",
     "Retire a registered strategy. Refused while it holds any latch (resume it\n"
     "to ACTIVE first), while an engine is attached to its slot (a telemetry\n"
     "heartbeat younger than 10 s, or the pid that wrote its telemetry slot\n"
     "still alive), or while the config's [strategies] declares it. Its slot is\n"
     "never reused: it stays HALTED with no name, so an engine that cached it\n"
     "cannot trade on it. The name is free for a new registration (new slot).\n"
     "Audited; needs the resume permission, like register.\n"
     "\n"
     "  --reason TEXT  why, for the audit log (required)\n"
     "  --json         print breakerd's reply as one JSON object\n"
     "\n"
     "example: breaker unregister momo-eu-1 --reason \"strategy retired, ticket 88\"\n",
     EXITS_CHANGE, false},
    {"rename", cmd_rename, estop_opts, 2, 2, "<old> <new>",
     "<old> <new> --reason TEXT [--json]", "give a strategy's slot a new name",
     "Give a registered strategy a new name. It keeps its slot, its latches'\n"
     "history and its rule state; the old name is unknown from then on. Refused\n"
     "like unregister (a latch held, an engine attached, declared in the\n"
     "config), and when the new name exists. Audited; needs the resume\n"
     "permission.\n"
     "\n"
     "  --reason TEXT  why, for the audit log (required)\n"
     "  --json         print breakerd's reply as one JSON object\n"
     "\n"
     "example: breaker rename momo-eu-1 momo-eu-2 --reason \"new venue id\"\n",
     EXITS_CHANGE, false},
    {"reconcile", cmd_reconcile, reconcile_opts, 1, INT_MAX, "<strategy>=<position>",
     "<strategy>=<position> ... [--as-of-fills N | --as-of TIME]\n"
     "                   [--incident ID] [--json]\n"
     "       breaker reconcile --withdraw <strategy> ... [--json]",
     "post the venue's positions as of a point (reconciliation rule)",
     "Post the venue's (or back office's) net position of one or more strategies,\n"
     "as a notional, true as of a point: the engine's fill count (--as-of-fills)\n"
     "or a time (--as-of). breakerd judges each ONCE against the position the\n"
     "engine reported at that same point, and prints the break report: engine\n"
     "position at the as-of point, reconciled, break, limit, verdict. A break\n"
     "above the limit trips the rule (once); the verdict stands until the next\n"
     "reconciliation, a withdrawal, or [rules] reconcile_max_age_ms. A point\n"
     "breakerd's history no longer covers is \"unknown\": never a trip. Without\n"
     "an as-of point the position is taken as of its arrival. Every position is\n"
     "checked before anything is sent, and breakerd applies all of them or none.\n"
     "At most 64 per command; each is audited. Restricted like resume ([auth]).\n"
     "\n"
     "  <position>        a finite decimal number: 1250, -3.5, 1.2e6 (not nan, inf)\n"
     "  --as-of-fills N   true after the engine's Nth fill (its fills counter)\n"
     "  --as-of TIME      true at TIME: ISO-8601 UTC, epoch seconds, or 30s/5m ago\n"
     "  --withdraw        the arguments are strategies: withdraw their\n"
     "                    reconciliation (audited; no verdict, no trip)\n"
     "  --json            print breakerd's reply as one JSON object\n"
     "\n"
     "example: breaker reconcile momo-eu-1=-1250000 arb-us-2=0 --as-of-fills 4711\n",
     EXITS_CHANGE, false},
    {"rules", cmd_rules, rules_opts, 3, 3, "rebase <strategy> <rule>",
     "rebase <strategy> drawdown|invariant --reason TEXT [--json]",
     "give a level rule a new base (drawdown peak, balance base)",
     "rebase: an operator's audited new base for a level rule of one strategy:\n"
     "  drawdown   the peak PnL becomes the current PnL\n"
     "  invariant  the balance base becomes the current balance less fill cash\n"
     "             plus fees (as if the engine stated its opening balance now)\n"
     "Use it at the start of a trading day, or after an investigated loss, instead\n"
     "of forcing a resume past a violated rule: the rule is judged from the new\n"
     "base at once. Latches are not touched (resume releases them). Restricted\n"
     "like a forced resume ([auth] resume and force); audited; replayed at boot.\n"
     "\n"
     "  --reason TEXT  why, for the audit log (required)\n"
     "  --json         print breakerd's reply as one JSON object\n"
     "\n"
     "example: breaker rules rebase momo-eu-1 drawdown --reason \"new trading day\"\n",
     EXITS_CHANGE, false},
    {"status", cmd_status, status_opts, 0, 0, NULL, "[--json] [--firm]",
     "global mode, tripped strategies, rule warnings, engine acks",
     "Show the global mode and its latches, each tripped strategy with its latches\n"
     "(reason code, mode, who, when, why), the number of strategies, the limit\n"
     "rules at or above their first warning level, which engines acknowledged the\n"
     "latest trip and how fast, breakerd's heartbeat age and the last durable\n"
     "audit seq. breakerd keeps the first 127 bytes of a latch's reason: a cut one\n"
     "says so and names the audit seq holding the whole text.\n"
     "\n"
     "  --json  print breakerd's reply as one JSON object\n"
     "  --firm  the firm-wide latches in etcd ([cluster]) with their mod_revision,\n"
     "          and which hosts applied the latest (docs/firmwide.md)\n",
     EXITS_RPC, false},
    {"strategies", cmd_strategies, plain_opts, 0, 0, NULL, "[--json]",
     "every registered strategy and its mode",
     "List every registered strategy with its own mode and latches. An engine's\n"
     "effective mode is the more restrictive of its strategy's and the global mode.\n"
     "\n"
     "  --json  print breakerd's reply as one JSON object\n",
     EXITS_RPC, false},
    {"watch", cmd_watch, watch_opts, 0, 0, NULL,
     "[--count N] [--timeout-ms T] [--wide | --json]",
     "print trips, resumes and rule warnings as they happen",
     "Subscribe to breakerd's event socket (the config's pub_url) and print each\n"
     "event as it arrives, one line each, at most 100 columns: time of day (UTC,\n"
     "ms), kind (TRIP, RESUME, PROPOSED for a two-person resume, RECONCILE,\n"
     "REGISTER, or WARNING for a rule nearing its limit), scope, from->to (or\n"
     "util= for a warning), seq=audit seq, uid=actor, FORCED, reason code (or the\n"
     "rule), and the reason: the actor's own words (a resume shows the resumer's).\n"
     "A strategy name over 20 columns or a reason that does not fit ends in \"…\";\n"
     "--wide and --json have everything whole. Runs until interrupted (Ctrl-C,\n"
     "SIGTERM: exit 0). Events published while watch is not connected are not\n"
     "shown: the audit log is the record.\n"
     "\n"
     "  --count N       exit after N events\n"
     "  --timeout-ms T  exit when no event arrives for T ms (1 to 86400000)\n"
     "  --wide          full date and time (us), whole names and reasons, rule=\n"
     "  --json          one JSON object per event, every field whole\n"
     "\n"
     "example: breaker watch --count 1 --timeout-ms 60000\n",
     "0 interrupted, --count events seen, or --timeout-ms passed quietly;\n"
     "  2 bad usage; 3 breakerd's event socket unreachable",
     false},
    {"audit", cmd_audit, audit_opts, 0, 0, NULL,
     "[--verify [--anchors [--host NAME]]] [--since TIME] [--file PATH] [--json]",
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
     "  --json       one JSON object per record (with --verify: the verdict)\n"
     "  --anchors    with --verify and [cluster]: also check the log against the\n"
     "               chain heads breakerd anchored in etcd (anchors/<host>/): a\n"
     "               log rewritten (even re-chained), cut below an anchor, or an\n"
     "               anchor rewritten fails; a log ahead of its last anchor is fine\n"
     "  --host NAME  whose anchors (default: [cluster] host, else hostname:instance)\n",
     "0 ok; 2 bad usage; 3 (--anchors) etcd unreachable;\n"
     "  4 the log failed verification or cannot be read (the records before the\n"
     "    damage are still printed), or does not match its anchors",
     false},
    {"health", cmd_health, plain_opts, 0, 0, NULL, "[--json]",
     "quick check: ok, degraded or failing, and why",
     "The runbooks' quick status check. Asks breakerd for its Status and, when\n"
     "the config has [metrics] listen, reads breakerd's own verdict from /healthz\n"
     "(audit durability, tick overruns, rule warnings). The first line is the same\n"
     "as /healthz: \"ok\", \"degraded: <why>; <why>\" or \"failing: <why>\"; then\n"
     "the halt state in brief. A tripped breaker is not unhealthy: it is working.\n"
     "\n"
     "  --json  one JSON object: health, reasons, halt state, sources\n",
     "0 ok or degraded; 1 failing; 2 bad usage;\n"
     "  3 breakerd unreachable (prints \"failing: breakerd unreachable\")",
     false},
    {"incident", cmd_incident, incident_opts, 1, 3,
     "export|open|ack|note|resolve|list|stats",
     "export --since TIME [--until TIME] [--format md|json] [--file PATH]\n"
     "       breaker incident export ID [--format md|json] [--file PATH]\n"
     "       breaker incident export --log [HOST=]PATH --log ... [--anchors] [--since "
     "TIME]\n"
     "       breaker incident open [ID] --severity P1..P4 --title TEXT [--commander "
     "NAME]\n"
     "       breaker incident ack ID | note ID TEXT | resolve ID --resolution TEXT\n"
     "       breaker incident list [--file PATH] [--json]\n"
     "       breaker incident stats --since 30d [--file PATH] [--json]",
     "incidents: open/ack/note/resolve, list, stats, post-mortem export",
     "Build the post-mortem skeleton of an incident from the audit log alone (works\n"
     "with breakerd down): summary, figures (time to detect, to acknowledge, time\n"
     "halted, time to full resume), a timeline of every record in the period (trips\n"
     "with a rule's evidence, resume stages, forced flags, reconciliations, who\n"
     "acted), the reasons and the people involved. docs/runbook.md says exactly how\n"
     "each figure is computed.\n"
     "\n"
     "  --since TIME   start of the period: 2026-11-23T09:00:00Z (UTC), unix\n"
     "                 seconds, or an age: 30s, 10m, 2h, 1d (required)\n"
     "  --until TIME   end of the period (default: now)\n"
     "  --format F     md (Markdown, default) or json\n"
     "  --json         the same as --format json\n"
     "  --file PATH    the log to read (default: the config's audit path)\n"
     "  --log [HOST=]PATH  several hosts' logs (repeatable): one timeline ordered\n"
     "                 by time, each line naming its host; each log verified first\n"
     "                 (one that fails is reported and not merged: exit 4); a firm\n"
     "                 revision applied on several hosts is one line with the\n"
     "                 hosts and the spread of their apply times\n"
     "  --anchors      (with --log, [cluster]) also check each log against its\n"
     "                 host's anchors in etcd (HOST= is the [cluster] host name)\n"
     "\n"
     "Incidents (docs/incidents.md): ids INC-YYYY-NNN. open, ack, note and resolve\n"
     "are audited by breakerd next to the trips (an unknown id, a second ack or\n"
     "resolve is refused). A trip with no --incident joins the incident a held\n"
     "scope is under, or opens one (severity from [incidents] in the config).\n"
     "'export ID' is the post-mortem of one incident (template: severity, impact,\n"
     "timeline, figures, root cause, resolution, action items); the period form\n"
     "also lists the incidents in the period with their own figures. list and\n"
     "stats read the log (stats: count by severity, mean and p90 TTD and MTTR\n"
     "against the targets TTD < 5 min, MTTR < 30 min).\n"
     "\n"
     "  --severity P1..P4  --title TEXT  --commander NAME  (open)\n"
     "  --resolution TEXT  (resolve)\n"
     "\n"
     "example: breaker incident export --since 2h > postmortem.md\n"
     "         breaker incident export INC-2026-001 > INC-2026-001.md\n",
     "0 ok; 2 bad usage; 4 the log cannot be read or failed verification (the\n"
     "  export then covers the records before the damage, and says so)",
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
	    "                   $BREAKER_CONFIG if set, empty for none; else\n"
	    "                   /etc/breaker/breaker.ini if it exists; else the\n"
	    "                   embedded defaults)\n"
	    "  --instance NAME  breaker instance (default \"default\")\n"
	    "  --url URL        breakerd's command socket: unix:// (the local fast\n"
	    "                   path), ipc://, tcp:// or tls+tcp://. Default: changes\n"
	    "                   go over unix://<run_dir>/<instance>.sock, queries over\n"
	    "                   ipc://<run_dir>/<instance>.cmd; if that fails, over the\n"
	    "                   other, with the same request id (applied once)\n"
	    "  --timeout MS     wait at most MS for a reply, per transport (default %d)\n"
	    "  --tls-cert FILE  with a tls+tcp:// --url: our client certificate (PEM),\n"
	    "  --tls-key FILE   its key, and the CA that signed breakerd's certificate;\n"
	    "  --tls-ca FILE    default: the config's [tls] client_* files\n"
	    "  -h, --help       this text\n"
	    "\n"
	    "Every command takes --help and --json: 'breaker trip --help'.\n"
	    "\n"
	    "exit status:\n"
	    "  0  ok\n"
	    "  1  refused by breakerd: \"refused: <STATUS>: <why>\"; health: failing\n"
	    "  2  bad usage (unknown command, option, reason code or mode, missing\n"
	    "     argument); nothing was sent\n"
	    "  3  breakerd unreachable (nothing sent), or no reply in time (a trip or\n"
	    "     resume may have been applied: check 'breaker status')\n"
	    "  4  audit log failed verification, or cannot be read\n"
	    "  5  the trip IS in effect, but its audit record is not on disk yet\n"
	    "  6  a global resume is proposed, not applied: the two-person rule wants\n"
	    "     a different operator to send the same resume\n",
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
	static const char *const global[] = {"--config",  "--instance", "--url",
	                                     "--timeout", "--tls-cert", "--tls-key",
	                                     "--tls-ca"};
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
		if (a->n_strategies >= BX_SCOPES_MAX)
			return -1;
		a->strategy = a->strategy ? a->strategy : arg;
		a->strategies[a->n_strategies++] = arg;
		break;
	case O_GROUP:
		if (a->n_groups >= BX_SCOPES_MAX)
			return -1;
		a->groups[a->n_groups++] = arg;
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
	case O_FIRM:
		a->firm = true;
		break;
	case O_REVISION:
		a->revision = arg;
		break;
	case O_ANCHORS:
		a->anchors = true;
		break;
	case O_HOST:
		a->host = arg;
		break;
	case O_LOG:
		if (a->n_logs >= BX_LOGS_MAX)
			return -1;
		a->logs[a->n_logs++] = arg;
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
	case O_COUNT:
		a->count = arg;
		break;
	case O_TIMEOUT_MS:
		a->timeout_ms = arg;
		break;
	case O_UNTIL:
		a->until = arg;
		break;
	case O_FORMAT:
		a->format = arg;
		break;
	case O_WIDE:
		a->wide = true;
		break;
	case O_TELEMETRY:
		a->telemetry = arg;
		break;
	case O_AS_OF_FILLS:
		a->as_of_fills = arg;
		break;
	case O_AS_OF:
		a->as_of = arg;
		break;
	case O_WITHDRAW:
		a->withdraw = true;
		break;
	case O_INCIDENT:
		a->incident = arg;
		break;
	case O_SEVERITY:
		a->severity = arg;
		break;
	case O_TITLE:
		a->title = arg;
		break;
	case O_COMMANDER:
		a->commander = arg;
		break;
	case O_RESOLUTION:
		a->resolution = arg;
		break;
	default:
		return -1;
	}
	return 0;
}

/* argv[0] is the command. Options may come before or after the arguments. */
static int parse_args(const struct cmd *cmd, int argc, char **argv, struct cli_args *a)
{
	uint64_t seen = 0; /* one bit per option from O_JSON */
	int o;

	memset(a, 0, sizeof(*a));
	a->cmd = cmd->name;
	optind = 0; /* full reset: permute again after the global "+" parse */
	while ((o = getopt_long(argc, argv, "h", cmd->opts, NULL)) != -1) {
		if (o == '?' || store_opt(a, o, optarg) < 0)
			return bad_option(cmd->name, argc, argv);
		/* --group, and trip's --strategy, may be given again */
		if (o >= O_JSON && (seen & 1ull << (o - O_JSON)) && o != O_GROUP &&
		    o != O_LOG && !(o == O_STRATEGY && strcmp(cmd->name, "trip") == 0))
			return cli_usage_error(cmd->name, "--%s given twice",
			                       opt_name(cmd->opts, o));
		if (o >= O_JSON)
			seen |= 1ull << (o - O_JSON);
	}
	if (a->help)
		return 0;
	/* getopt has moved the arguments, in order, to the end of argv */
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos > cmd->pos_max)
		return cli_usage_error(cmd->name, "unexpected argument '%s'%s",
		                       a->pos[cmd->pos_max],
		                       a->reason ? " (quote the whole reason: "
		                                   "--reason \"...\")"
		                                 : "");
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
	if (strncmp(s, "ipc://", 6) != 0 && strncmp(s, "tcp://", 6) != 0 &&
	    strncmp(s, "unix://", 7) != 0 && strncmp(s, "tls+tcp://", 10) != 0)
		return cli_usage_error(NULL,
		                       "--url must start with unix://, ipc://, tcp:// or "
		                       "tls+tcp://, not '%s'",
		                       s);
	if (strlen(s) >= BK_URL_MAX)
		return cli_usage_error(NULL, "--url is too long");
	c->url = s;
	c->url_given = true;
	return 0;
}

/* Options before the command. Returns -1 to go on, else the exit status. */
static int parse_global(struct cli *c, int argc, char **argv)
{
	/* clang-format off */
	static const struct option opts[] = {OPT("config", 'c'), OPT("instance", 'i'),
		OPT("url", 'u'), OPT("timeout", 't'), OPT("tls-cert", 'E'),
		OPT("tls-key", 'k'), OPT("tls-ca", 'a'), FLAG("help", 'h'), OPT_END};
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
		} else if (o == 'E') {
			c->tls_cert = optarg;
		} else if (o == 'k') {
			c->tls_key = optarg;
		} else if (o == 'a') {
			c->tls_ca = optarg;
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
		const char *names[NCMDS];

		fprintf(stderr, "breaker: unknown command '%s'\n", argv[optind]);
		for (size_t i = 0; i < NCMDS; i++)
			names[i] = cmds[i].name;
		suggest_command(stderr, argv[optind], names, NCMDS);
		fputs("commands:", stderr);
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
