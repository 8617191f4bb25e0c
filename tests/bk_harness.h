/*
 * bk_harness - integration-test harness: a real breakerd in its own temp
 * directory, instance and sockets (tests run in parallel), the real CLI, and
 * the real client header.
 */
#ifndef BK_HARNESS_H
#define BK_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "bk_config.h"
#include "bk_rpc.h"
#include "bk_tel.h"
#include "breaker_client.h"

struct bk_h {
	char dir[128];    /* temp dir: config, run/, state/ */
	char config[192]; /* path of the generated config file */
	char instance[64];
	char log[192];        /* daemon's stderr */
	struct bk_config cfg; /* the same config, parsed, for paths */
	pid_t pid;
};

/* Create dir + config (extra INI lines appended, may be NULL); no daemon yet. */
void bk_h_init(struct bk_h *h, const char *tag, const char *extra_ini);
/*
 * Write a config for h's daemon to path (h->config: replace it, say before a
 * SIGHUP): [breaker] with h's instance, run_dir and state_dir, then extra_ini
 * (may be NULL).
 */
void bk_h_write_config(const struct bk_h *h, const char *path, const char *extra_ini);
/* Start breakerd and wait until it answers Status (fails the test otherwise). */
void bk_h_start(struct bk_h *h);
/* SIGTERM and wait; returns the exit status. */
int bk_h_stop(struct bk_h *h);
/* SIGKILL and reap. */
void bk_h_kill9(struct bk_h *h);
/* Stop if running, unlink the segment, remove the temp dir. */
void bk_h_fini(struct bk_h *h);

/*
 * Run the CLI with --config h->config plus the given argv (NULL-terminated);
 * stdout goes to out (may be NULL). Returns the exit code (-1 on a signal).
 */
int bk_h_cli(struct bk_h *h, char *out, size_t outlen, ...) __attribute__((sentinel));
/* The same with stderr in out too (warnings, refusals, hints). */
int bk_h_cli_all(struct bk_h *h, char *out, size_t outlen, ...) __attribute__((sentinel));

/*
 * argv (argv[0] a path, NULL-terminated) in a forked child that, when uid >= 0,
 * drops to uid/gid with no supplementary groups before exec: "another local
 * user", with no nng call in the child. BREAKER_REQUEST_ID=request_id when
 * that is non-NULL, unset otherwise. stdout and stderr in out (may be NULL).
 * The exit code, -1 on a signal; 125 if the drop failed, 127 if exec did.
 */
int bk_h_run_as(struct bk_h *h, int uid, int gid, const char *request_id,
                char *const argv[], char *out, size_t outlen);
/* The same with its output through dir/cli.out, for a run with no bk_h. */
int bk_h_run_in(const char *dir, int uid, int gid, const char *request_id,
                char *const argv[], char *out, size_t outlen);
/*
 * In a forked child: become uid/gid with no supplementary groups (in that
 * order: groups and gid need the privilege the uid change gives up), or
 * _exit(fail_code). Before any nng call in that child.
 */
void bk_h_become(int uid, int gid, int fail_code);
/* The CLI (--config h->config, then args, NULL-terminated) through bk_h_run_as. */
int bk_h_cli_as(struct bk_h *h, int uid, int gid, const char *request_id,
                char *const args[], char *out, size_t outlen);
/* The CLI's path: $BREAKER_CLI, else "breaker". */
char *bk_h_cli_bin(void);

/* A loopback TCP port free a moment ago. */
int bk_h_free_port(void);

/* A throwaway PKI for TLS tests: its directory and a tls+tcp:// URL on a free port. */
struct bk_pki {
	char dir[64];
	char url[64];
};
/*
 * mkdtemp /tmp/bk-<tag>-XXXXXX, then run certs there: shell lines using
 * ca NAME (a self-signed CA NAME.pem/.key) and crt NAME CN CA (NAME.pem/.key
 * signed by CA, SAN localhost and 127.0.0.1). Fails the test if openssl does.
 */
void bk_pki_make(struct bk_pki *k, const char *tag, const char *certs);
/* Remove the PKI's directory. */
void bk_pki_remove(struct bk_pki *k);

/* Attach the C client to the instance (waits up to 2 s for the segment). */
void bk_h_attach(struct bk_h *h, struct bk_client *c);
/* The mode engines see for a strategy (NULL: global), through a client
 * attached for the question. */
int bk_h_mode_of(struct bk_h *h, const char *strategy);
/* Let other users reach the sockets: h's dir and run/ mode 0755 (the
 * sockets themselves need socket_mode = 0666 in the config). */
void bk_h_open_dirs(struct bk_h *h);

/* Read a whole file into buf (NUL-terminated); returns length or -errno. */
long bk_h_slurp(const char *path, char *buf, size_t len);

/* Send buf as one request over the nng command socket, unchecked; the reply
 * (the test fails if there is none). */
Breaker__Reply *bk_h_raw_call(struct bk_h *h, const void *buf, size_t len);

/* GET path from 127.0.0.1:port; the HTTP status (-errno if the connect
 * fails), the response in buf and *body pointing at its body. */
int bk_h_http_get(int port, const char *path, char *buf, size_t len, const char **body);

/* How many times needle occurs in hay (records in an audit listing, say). */
int bk_h_count(const char *hay, const char *needle);

/*
 * A live daemon with strategies alpha and beta, an engine reading modes (c)
 * and writing telemetry (t): what the rules tests drive.
 */
struct bk_rig {
	struct bk_h h;
	struct bk_client c;
	struct bk_tel_client t;
	int alpha, beta;
};

/* bk_h_init with ini (which must name alpha and beta), start, attach both
 * clients (telemetry: waits up to 2 s); fails the test otherwise. */
void bk_rig_up(struct bk_rig *r, const char *tag, const char *ini);
/* Detach, unlink the telemetry segment, bk_h_fini. */
void bk_rig_down(struct bk_rig *r);

/* CLOCK_MONOTONIC in ms. */
uint64_t bk_h_mono_ms(void);
/* Poll slot's effective mode (slot -1: global) until want, for up to ms. */
bool bk_rig_mode_within(struct bk_rig *r, int slot, enum bk_mode want, unsigned ms);
/* Wait up to max_ticks ticks of tick_us for slot's effective mode to reach
 * want, polling 4 times a tick: how many ticks it took, -1 if it did not. */
int bk_rig_ticks_until(struct bk_rig *r, int slot, enum bk_mode want, int max_ticks,
                       unsigned tick_us);
/* Until breakerd has ticked twice more (its heartbeat in the state segment
 * moved on twice; up to 5 s): what the engine wrote before has been read. */
void bk_rig_ticked(struct bk_rig *r);

/*
 * Reconcile one strategy's position over the nng command socket: as of a
 * fill count when fills >= 0, as of a wall time (ns) when wall != 0. The
 * reply (fails the test if there is none); the caller frees it.
 */
Breaker__Reply *bk_h_reconcile(struct bk_h *h, const char *strategy, double position,
                               long fills, uint64_t wall);

#endif
