/*
 * bk_config - the daemon's and the CLI's configuration.
 *
 * Embedded defaults work with no file at all, for root and for any other
 * user: root gets /run/breaker and /var/lib/breaker; others get
 * $XDG_RUNTIME_DIR/breaker (or /tmp/breaker-<uid>) and
 * $XDG_STATE_HOME/breaker (or ~/.local/state/breaker). A file (INI, parsed by
 * libinih) overrides them; unknown sections/keys and out-of-range values are
 * errors that name the line. The CLI loads the same file to find the daemon.
 */
#ifndef BK_CONFIG_H
#define BK_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bk_mode.h"
#include "bk_limits.h"
#include "bk_rules.h"
#include "bk_venue.h"
#include "breaker_client.h"

#define BK_URL_MAX        (PATH_MAX + 16)
#define BK_AUTH_MAX       32
#define BK_CFG_STRATEGIES 256
#define BK_CFG_GROUPS     256 /* [strategies] groups: strategy=kind:value pairs */
#define BK_LISTEN_MAX     64  /* "[v6 address]:port" */
#define BK_TLS_ROLES      64
#define BK_CN_MAX         64 /* a certificate CN, NUL included (X.509: 64 chars) */

/* What a caller may be allowed to do ([auth] keys, one list pair each). */
enum bk_act {
	BK_ACT_TRIP,
	BK_ACT_KILL,
	BK_ACT_RESUME,
	BK_ACT_FORCE,
	BK_ACT_REPORT, /* send remote telemetry (Report): an engine's act */
	BK_ACT_COUNT
};

/* [tls] roles: operator may do everything but report telemetry, trader may
 * trip and kill, engine may report telemetry. */
enum bk_role { BK_ROLE_NONE, BK_ROLE_TRADER, BK_ROLE_OPERATOR, BK_ROLE_ENGINE };

struct bk_tls_role {
	char cn[BK_CN_MAX];
	uint8_t role; /* enum bk_role */
};

/* One act's [auth] lists: <act>_uids and <act>_gids. */
struct bk_acl_lists {
	uid_t uids[BK_AUTH_MAX];
	int n_uids;
	gid_t gids[BK_AUTH_MAX];
	int n_gids;
};

/* One act's lists, as views into struct bk_config. */
struct bk_acl {
	const uid_t *uids;
	int n_uids;
	const gid_t *gids;
	int n_gids;
	bool any;
};

struct bk_config {
	char instance[BK_INSTANCE_MAX];
	char run_dir[PATH_MAX];   /* sockets live here; 0750 */
	char state_dir[PATH_MAX]; /* audit log, lock, marker */
	/* [breaker] daemon_user: the uid breakerd runs as, which clients (the
	 * CLI) require of the server end; unset: see bk_trust_expect() */
	uid_t daemon_uid;
	bool daemon_uid_set;
	char audit_path[PATH_MAX];
	/* BK_CFG_SET_*: paths the file gave; bk_config_derive leaves them be */
	unsigned explicit_set;
	char cmd_url[BK_URL_MAX]; /* REP: ipc://<run_dir>/<instance>.cmd */
	char pub_url[BK_URL_MAX]; /* PUB: ipc://<run_dir>/<instance>.pub */
	/* the fast path: unix://<run_dir>/<instance>.sock; "" = off */
	char local_url[BK_URL_MAX];
	char tcp_url[BK_URL_MAX]; /* "" = no TCP listener (default) */
	uint64_t tick_ns;         /* tick period; default 100 us */
	uint64_t idle_tick_ns; /* tick period with nothing moving (bk_idle.h); 0 = off */
	uint64_t heartbeat_bound_ns; /* engines fail closed past this; default 50 ms */
	bool busy_poll;      /* the loop spins (a core of its own), never sleeps */
	int rt_priority;     /* SCHED_FIFO priority of the loop thread; 0 = off */
	uint32_t max_msg;    /* largest accepted command, bytes */
	uint32_t reason_max; /* longest reason text, bytes */
	mode_t shm_mode;     /* state segment; never writable but by the daemon */
	mode_t sock_mode;    /* IPC socket files */
	/* connection exhaustion (docs/security.md): local socket connections
	 * idle this long are closed; each uid but root's and the daemon's may
	 * hold this many connections per listener (local socket, nng sockets) */
	uint32_t idle_timeout_ms;
	uint32_t max_conns_per_uid;
	/*
	 * [auth]: who may do what (docs/security.md), one entry per enum bk_act.
	 * A caller may if its uid is listed, or its primary gid, or it is a
	 * member of a listed group. Resume also gates register and reconcile;
	 * force needs resume too. Defaults: kill follows trip, force follows
	 * resume; report is the telemetry segment's owner and group (our euid,
	 * egid), like the engines that may write the segment.
	 */
	struct bk_acl_lists acl[BK_ACT_COUNT];
	unsigned auth_any;             /* bit 1 << enum bk_act: anyone who can reach us */
	bool two_person_global_resume; /* a global resume needs two operators */
	uint32_t confirm_window_s;     /* ... the second within this many seconds */
	bool allow_plaintext_loopback; /* tcp:// on a loopback address: trip only */
	/* [tls]: tls+tcp:// command listener, client certificates mapped to roles */
	char tls_cert[PATH_MAX], tls_key[PATH_MAX], tls_ca[PATH_MAX];
	struct bk_tls_role tls_roles[BK_TLS_ROLES];
	int n_tls_roles;
	/* [tls] client_*: what the CLI presents when it dials tls+tcp:// */
	char tls_client_cert[PATH_MAX], tls_client_key[PATH_MAX], tls_client_ca[PATH_MAX];
	char strategies[BK_CFG_STRATEGIES][BK_NAME_MAX]; /* registered at boot */
	int n_strategies;
	/* [strategies] remote: fed by Report, not the segment (bk_config_remote) */
	char remote[BK_CFG_STRATEGIES][BK_NAME_MAX];
	int n_remote;
	/* [strategies] groups: each strategy joins its groups at start if it is
	 * not in them yet (audited GROUP_ADD by breakerd; bk_group.h) */
	struct {
		char strategy[BK_NAME_MAX], group[BK_NAME_MAX];
	} groups[BK_CFG_GROUPS];
	int n_groups;
	mode_t tel_mode;             /* telemetry segment: engines write it */
	struct bk_rules_cfg rules;   /* [rules] defaults, [rules:NAME] per strategy */
	struct bk_limits_cfg limits; /* [limits], [limits:NAME] (bk_limits.h) */
	/* [metrics]: /metrics and /healthz over HTTP; "" = off */
	char metrics_listen[BK_LISTEN_MAX]; /* "127.0.0.1:9464", "[::1]:9464" */
	bool metrics_allow_remote;          /* else only a loopback address */
	/* [incidents] <reason_code> = P1..P4: the severity of an incident a trip
	 * with no --incident opens (docs/incidents.md has the defaults) */
	uint8_t incident_severity[BK_REASON_COUNT];
	/* [cluster]: firm-wide latches in etcd (docs/firmwide.md, bk_etcd.h);
	 * cluster_name "" = single-host mode, exactly as without the section */
	char cluster_name[64];
	char cluster_endpoints[1024]; /* "http://a:2379,http://b:2379" */
	char cluster_host[64];        /* this host's name in hosts/ and acks/ */
	uint64_t cluster_t1_ns;       /* no quorum contact this long: REDUCE_ONLY */
	uint64_t cluster_t2_ns;       /* ... this long: HALTED */
	uint64_t cluster_probe_ns;    /* a linearizable read this often */
	uint64_t cluster_probe_timeout_ns;
	uint32_t cluster_lease_s; /* hosts/ and acks/ keys' lease */
	/* the audit chain head in etcd (bk_anchor.h): at most this often while
	 * only minor records arrive (0: off), the newest anchor_keep kept */
	uint64_t cluster_anchor_period_ns;
	uint32_t cluster_anchor_keep;
	/* etcd authentication: this user, its password in this file ("": none) */
	char cluster_user[64];
	char cluster_password_file[PATH_MAX];
	/* etcd client TLS: certificate and key to present (both or neither),
	 * the CA to trust on https:// endpoints ("": the system's store) */
	char cluster_cert_file[PATH_MAX], cluster_key_file[PATH_MAX];
	char cluster_ca_file[PATH_MAX];
	int cluster_line; /* of the section, for messages */
	/* [venues]: the venue rules (bk_venue.h), judged per venue:* group */
	struct bk_venue_cfg venues;
};

/* [incidents]: the reason code -> severity defaults (the runbooks' seeds). */
void bk_config_incident_defaults(struct bk_config *cfg);

/* Embedded defaults for this user and instance (NULL: "default"). 0 or -EINVAL. */
int bk_config_defaults(struct bk_config *cfg, const char *instance);

/*
 * Apply the INI file at path over cfg. Returns 0, or -EINVAL with err naming
 * the line and the problem, or -errno if the file cannot be read. On error
 * cfg is unchanged.
 */
int bk_config_load(struct bk_config *cfg, const char *path, char *err, size_t errlen);

/* Paths a file may set explicitly (struct bk_config explicit_set). */
#define BK_CFG_SET_CMD_URL   (1u << 0)
#define BK_CFG_SET_PUB_URL   (1u << 1)
#define BK_CFG_SET_RUN_DIR   (1u << 2)
#define BK_CFG_SET_STATE_DIR (1u << 3)
#define BK_CFG_SET_LOCAL_URL (1u << 4)

/* Re-derive the paths that depend on instance/run_dir/state_dir, except the
 * ones the file set explicitly (explicit_set). */
void bk_config_derive(struct bk_config *cfg);

/*
 * Check a [metrics] listen value: a numeric IPv4 address or a bracketed IPv6
 * one, a colon, a port 1-65535 ("127.0.0.1:9464", "[::1]:9464"). 0 or
 * -EINVAL; *loopback tells whether the address is a loopback one.
 */
int bk_listen_parse(const char *v, bool *loopback);

/* The [auth] lists of one act. */
void bk_config_acl(const struct bk_config *cfg, enum bk_act act, struct bk_acl *acl);

/* "trip", "kill", "resume", "force", "report". */
const char *bk_act_name(enum bk_act act);

/* A certificate CN's role from [tls] roles; BK_ROLE_NONE if it has none. */
enum bk_role bk_config_role(const struct bk_config *cfg, const char *cn);

/* Is strategy name declared remote ([strategies] remote): its telemetry comes
 * only from Report messages, never from the segment? */
bool bk_config_remote(const struct bk_config *cfg, const char *name);

/* "operator", "trader", "engine", "none". */
const char *bk_role_name(enum bk_role role);

/* Where breakerd and the CLI look for their config without --config. */
#ifndef BK_CONFIG_DEFAULT_PATH
#define BK_CONFIG_DEFAULT_PATH "/etc/breaker/breaker.ini"
#endif
#define BK_CONFIG_ENV "BREAKER_CONFIG"

/*
 * The config file to read: given (--config) if not NULL; else $BREAKER_CONFIG
 * if set (set but empty: none); else BK_CONFIG_DEFAULT_PATH if it exists;
 * else NULL, the embedded defaults. *from names the source, for messages.
 */
const char *bk_config_pick(const char *given, const char **from);

/* "http://127.0.0.1:9464" for the [metrics] listener; "" when it is off. */
void bk_config_metrics_url(const struct bk_config *cfg, char *url, size_t len);

#endif
