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

#include "bk_rules.h"
#include "breaker_client.h"

#define BK_URL_MAX        (PATH_MAX + 16)
#define BK_AUTH_MAX       32
#define BK_CFG_STRATEGIES 256
#define BK_LISTEN_MAX     64 /* "[v6 address]:port" */

struct bk_config {
	char instance[BK_INSTANCE_MAX];
	char run_dir[PATH_MAX];   /* sockets live here; 0750 */
	char state_dir[PATH_MAX]; /* audit log, lock, marker */
	char audit_path[PATH_MAX];
	char cmd_url[BK_URL_MAX];    /* REP: ipc://<run_dir>/<instance>.cmd */
	char pub_url[BK_URL_MAX];    /* PUB: ipc://<run_dir>/<instance>.pub */
	char local_url[BK_URL_MAX];  /* fast path: unix://<run_dir>/<instance>.sock; "" = off */
	char tcp_url[BK_URL_MAX];    /* "" = no TCP listener (default) */
	uint64_t tick_ns;            /* tick period; default 100 us */
	uint64_t heartbeat_bound_ns; /* engines fail closed past this; default 5 ms */
	bool busy_poll;              /* the loop spins (a core of its own), never sleeps */
	uint32_t max_msg;            /* largest accepted command, bytes */
	uint32_t reason_max;         /* longest reason text, bytes */
	mode_t shm_mode;             /* state segment; never writable but by the daemon */
	mode_t sock_mode;            /* IPC socket files */
	/* Who may resume / force. Trip is open to anyone who can reach the socket. */
	uid_t resume_uids[BK_AUTH_MAX];
	int n_resume_uids;
	gid_t resume_gids[BK_AUTH_MAX];
	int n_resume_gids;
	char strategies[BK_CFG_STRATEGIES][BK_NAME_MAX]; /* registered at boot */
	int n_strategies;
	mode_t tel_mode;           /* telemetry segment: engines write it */
	struct bk_rules_cfg rules; /* [rules] defaults, [rules:NAME] per strategy */
	/* [metrics]: /metrics and /healthz over HTTP; "" = off */
	char metrics_listen[BK_LISTEN_MAX]; /* "127.0.0.1:9464", "[::1]:9464" */
	bool metrics_allow_remote;          /* else only a loopback address */
};

/* Embedded defaults for this user and instance (NULL: "default"). 0 or -EINVAL. */
int bk_config_defaults(struct bk_config *cfg, const char *instance);

/*
 * Apply the INI file at path over cfg. Returns 0, or -EINVAL with err naming
 * the line and the problem, or -errno if the file cannot be read. On error
 * cfg is unchanged.
 */
int bk_config_load(struct bk_config *cfg, const char *path, char *err, size_t errlen);

/* Re-derive the paths that depend on instance/run_dir/state_dir. */
void bk_config_derive(struct bk_config *cfg);

/*
 * Check a [metrics] listen value: a numeric IPv4 address or a bracketed IPv6
 * one, a colon, a port 1-65535 ("127.0.0.1:9464", "[::1]:9464"). 0 or
 * -EINVAL; *loopback tells whether the address is a loopback one.
 */
int bk_listen_parse(const char *v, bool *loopback);

/* "http://127.0.0.1:9464" for the [metrics] listener; "" when it is off. */
void bk_config_metrics_url(const struct bk_config *cfg, char *url, size_t len);

#endif
