/*
 * breaker - the operator CLI. Internal interfaces shared by tools/breaker*.c.
 *
 * breaker.c        main, global options, command table, RPC and its errors
 * breaker_change.c trip, emergency-stop, kill, resume, register, reconcile
 * breaker_show.c   status, strategies
 * breaker_watch.c  watch (breakerd's event stream)
 * breaker_audit.c  audit (reads the log file itself: works with breakerd down)
 * breaker_health.c health (Status, and breakerd's /healthz when configured)
 * breaker_incident.c incident export (post-mortem skeleton from the audit log)
 * breaker_scope.c  unregister, rename, "did you mean" for a command
 * breaker_fmt.c    JSON, times, durations, enum names
 */
#ifndef BREAKER_CLI_H
#define BREAKER_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <limits.h>

#include "bk_audit.h"
#include "bk_config.h"
#include "breaker.pb-c.h"

/*
 * Exit status. Scripts and runbooks depend on these: keep them stable.
 *   0  ok
 *   1  refused by breakerd (any non-OK reply status); health: failing
 *   2  bad usage: unknown command/option/reason code/mode, missing argument;
 *      nothing was sent
 *   3  breakerd unreachable, or no reply in time
 *   4  audit log failed verification, or cannot be read
 *   5  a trip IS in effect, but its audit record is not durable yet
 *   6  a global resume is proposed, not applied: the two-person rule wants a
 *      second operator (PENDING_CONFIRMATION)
 */
enum {
	BX_OK = 0,
	BX_REFUSED = 1,
	BX_USAGE = 2,
	BX_UNREACHABLE = 3,
	BX_AUDIT = 4,
	BX_NOT_DURABLE = 5,
	BX_PENDING = 6,
};

#define BX_TIMEOUT_MS 5000

struct bk_etcd_conn;

/* Global options and the configuration they lead to. Lives in main(). */
struct cli {
	const char *config_path; /* --config; NULL: embedded defaults */
	const char *instance;    /* --instance */
	const char *url;         /* --url; else cfg.cmd_url once loaded */
	bool url_given;          /* --url: no choice of transport */
	int timeout_ms;
	/* tls+tcp://: --tls-cert/--tls-key/--tls-ca, else [tls] client_* */
	const char *tls_cert, *tls_key, *tls_ca;
	bool cfg_loaded;
	struct bk_config cfg;
};

#define BX_LOGS_MAX   32 /* incident export --log: hosts merged */
#define BX_SCOPES_MAX 64 /* scopes in one command: breakerd's limit */

/* One command's parsed options and arguments. */
struct cli_args {
	const char *cmd; /* "trip", for messages */
	char **pos;      /* the arguments, in order (points into argv) */
	int npos;
	char *strategy, *mode, *reason, *reason_code, *to, *since, *file;
	char *count, *timeout_ms;  /* watch */
	char *until, *format;      /* incident export */
	char *telemetry;           /* register: segment | remote */
	char *as_of_fills, *as_of; /* reconcile */
	bool withdraw;
	char *incident;                     /* --incident INC-YYYY-NNN */
	char *severity, *title, *commander; /* incident open */
	char *resolution;                   /* incident resolve */
	bool json, force, verify, help, wide;
	bool firm;      /* --firm: the firm-wide latch in etcd (breaker_firm.c) */
	char *revision; /* resume --firm: the latch's mod_revision as seen */
	bool anchors;   /* audit --anchors: check the log against etcd */
	char *host;     /* audit --anchors --host: whose anchors */
	char *logs[BX_LOGS_MAX]; /* incident export --log (several hosts) */
	int n_logs;
	/* --strategy (trip: repeatable) and --group (repeatable) */
	char *strategies[BX_SCOPES_MAX], *groups[BX_SCOPES_MAX];
	int n_strategies, n_groups;
};

/* breaker.c */
int cli_config(struct cli *c);
int cli_call(struct cli *c, const char *cmd, Breaker__Request *req,
             Breaker__Reply **reply, bool changes_state);
int cli_refused(const Breaker__Reply *r);
int cli_query_pages(struct cli *c, const char *cmd, Breaker__Request *req,
                    Breaker__Reply **reply);
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* breaker_change.c */
void list_reasons(FILE *f, bool trip);
int cmd_trip(struct cli *c, const struct cli_args *a);
int cmd_estop(struct cli *c, const struct cli_args *a);
int cmd_kill(struct cli *c, const struct cli_args *a);
int cmd_resume(struct cli *c, const struct cli_args *a);
int cmd_register(struct cli *c, const struct cli_args *a);
int cmd_reconcile(struct cli *c, const struct cli_args *a);
int cmd_rules(struct cli *c, const struct cli_args *a);
/* A command answered OK or refused: say() describes what was done. */
int send_simple(struct cli *c, const struct cli_args *a, Breaker__Request *req,
                void (*say)(const struct cli_args *a, const Breaker__Reply *r));

/* breaker_scope.c: unregister, rename; "did you mean" for a command */
int cmd_unregister(struct cli *c, const struct cli_args *a);
int cmd_rename(struct cli *c, const struct cli_args *a);
void suggest_command(FILE *f, const char *typed, const char *const *names, size_t n);

/* breaker_firm.c: --firm, through the local breakerd to etcd ([cluster]) */
int cli_firm_trip(struct cli *c, const struct cli_args *a, char *const *strategies,
                  int ns, char *const *groups, int ng, int reason, int mode,
                  const char *text);
int cli_firm_resume(struct cli *c, const struct cli_args *a, int reason, int to);
int cli_firm_status(struct cli *c, const struct cli_args *a);
/* A connection to the [cluster]'s etcd with its credentials: 0 or an exit code. */
int cli_firm_conn(struct cli *c, const char *cmd, struct bk_etcd_conn *conn);
/* breaker_group.c */
int cmd_group(struct cli *c, const struct cli_args *a);
int cli_check_group(const char *cmd, const char *tag);

/* breaker_show.c */
int cmd_status(struct cli *c, const struct cli_args *a);
int cmd_strategies(struct cli *c, const struct cli_args *a);

/* breaker_watch.c */
int cmd_watch(struct cli *c, const struct cli_args *a);

/* breaker_audit.c */
int cmd_audit(struct cli *c, const struct cli_args *a);
/* One record as `breaker audit` prints it (seq, time, kind, ...). */
void audit_put_line(FILE *f, const Breaker__AuditRecord *rec);
/* breaker_anchor.c: audit --anchors, the log against its anchors in etcd */
int cli_audit_anchors(struct cli *c, const struct cli_args *a, const char *path);
/* The same for any log and host (NULL: this config's): an exit code; quiet:
 * nothing on stdout when it matches (what is wrong still goes to stderr). */
int cli_anchors_check(struct cli *c, const char *path, const char *host, bool json,
                      bool quiet);

/* The audit log's durable heads (bk_tail.h), for audit and incident export. */
struct audit_heads {
	struct bk_audit_head file, shm;
	bool have_file, have_shm;
	char problem[PATH_MAX + 80];
};
/* configured: path is the config's log (the segment's head applies too). */
void audit_heads_read(struct cli *c, const char *path, bool configured,
                      struct audit_heads *h);
uint64_t audit_heads_seq(const struct audit_heads *h); /* scan to this seq */
/* A log shorter than or different from its heads becomes CORRUPT. */
void audit_heads_judge(const struct audit_heads *h, struct bk_audit_scan *scan);
int parse_since(const char *s, uint64_t now_ns, uint64_t *out);

/* breaker_health.c */
int cmd_health(struct cli *c, const struct cli_args *a);

/* breaker_orders.c: status's engines in HALTED scopes and their working orders */
void put_orders(FILE *f, const Breaker__StatusInfo *in);
void put_venues(FILE *f, const Breaker__StatusInfo *in);

/* breaker_incident.c */
int cmd_incident(struct cli *c, const struct cli_args *a);
/* breaker_incident_merge.c: export --log A --log B: several hosts, one timeline */
int cli_incident_merge(struct cli *c, const struct cli_args *a);

/* breaker_incidents.c: open, ack, note, resolve (audited by breakerd), list
 * and stats (from the audit log) */
int cmd_incident_life(struct cli *c, const struct cli_args *a);
int cmd_incident_list(struct cli *c, const struct cli_args *a);
int cmd_incident_stats(struct cli *c, const struct cli_args *a);

/* breaker_fmt.c */
#define BX_TIME_LEN 40
int json_str(FILE *f, const char *s);
void json_msg(FILE *f, const ProtobufCMessage *m);
void json_reply(FILE *f, const Breaker__Reply *r);
int put_name(FILE *f, const char *s);
int put_text(FILE *f, const char *s);
int put_md(FILE *f, const char *s);
void put_pad(FILE *f, int cols, int width);
const char *fmt_time(char buf[BX_TIME_LEN], uint64_t wall_ns, int decimals);
const char *fmt_dur(char *buf, size_t len, uint64_t ns);
#define BX_NUM_LEN 32
const char *fmt_num(char buf[BX_NUM_LEN], double v);
const char *fmt_pct(char buf[BX_NUM_LEN], double ratio);
const char *mode_name(int mode);
const char *reason_name(int code);
const char *status_name(int status);
const char *kind_name(int kind);
uint64_t now_wall_ns(void);

#endif
