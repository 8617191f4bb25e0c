/*
 * breakerd - the breaker daemon: authoritative halt state in shared memory,
 * commands over nng, every change in a durable hash-chained audit log.
 * Runs in the foreground (systemd, a terminal, or a test harness).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_boot.h"
#include "bk_log.h"
#include "bk_loop.h"

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: breakerd [--config FILE] [--instance NAME] [--log-file FILE]\n"
	       "                [--check-config] [--verbose] [--help]\n"
	       "\n"
	       "Runs in the foreground. The config: --config FILE, else $BREAKER_CONFIG\n"
	       "(set but empty: none), else " BK_CONFIG_DEFAULT_PATH " if it exists,\n"
	       "else embedded defaults: "
	       "instance 'default', tick 100 us, sockets in /run/breaker (root) or\n"
	       "$XDG_RUNTIME_DIR/breaker, audit log in /var/lib/breaker/<instance>\n"
	       "(root) or ~/.local/state/breaker/<instance>.\n"
	       "Signals: TERM/INT stop (state stays); HUP reloads the config's rules\n"
	       "(audited; other settings need a restart) and reopens --log-file.\n"
	       "Exit: 0 clean stop, 1 start-up failed, 2 bad usage or config.\n");
}

struct opts {
	const char *config;
	const char *config_from; /* --config, BREAKER_CONFIG, the default path */
	const char *instance;
	const char *log_file;
	int check_only;
	int verbose;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"instance", required_argument, NULL, 'i'},
	    {"log-file", required_argument, NULL, 'l'},
	    {"check-config", no_argument, NULL, 'C'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:i:l:Cvh", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'i':
			o->instance = optarg;
			break;
		case 'l':
			o->log_file = optarg;
			break;
		case 'C':
			o->check_only = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "breakerd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	o->config = bk_config_pick(o->config, &o->config_from);
	return 0;
}

static int load_config(struct bk_config *cfg, const struct opts *o)
{
	char err[512];

	if (bk_config_defaults(cfg, o->instance) < 0) {
		fprintf(stderr, "breakerd: invalid instance name '%s'\n", o->instance);
		return -EINVAL;
	}
	if (o->config && bk_config_load(cfg, o->config, err, sizeof(err)) < 0) {
		fprintf(stderr, "breakerd: config %s (from %s): %s\n", o->config,
		        o->config_from, err);
		return -EINVAL;
	}
	/* --instance beats the file; derived paths follow it, explicit ones stay. */
	if (o->config && o->instance && strcmp(cfg->instance, o->instance)) {
		snprintf(cfg->instance, sizeof(cfg->instance), "%s", o->instance);
		bk_config_derive(cfg);
	}
	return 0;
}

static void report_boot(const struct bk_daemon *d, const struct bk_boot_report *r)
{
	if (r->corrupt)
		bk_err(
		    "FAIL-CLOSED BOOT: %s. Global is HALTED under audit_corrupt; examine "
		    "the log, then: breaker resume --reason-code audit_corrupt --force",
		    r->why);
	else if (r->torn_bytes)
		bk_warn("audit log had a torn tail: %llu bytes cut (%s)",
		        (unsigned long long)r->torn_bytes, r->why);
	bk_info("instance '%s' ready: %llu audit records replayed, %u strategies, global "
	        "%s, tick %llu us",
	        d->cfg.instance, (unsigned long long)r->scan.records,
	        d->state.n_strategies,
	        bk_mode_str((enum bk_mode)bk_scope_mode(&d->state.global)),
	        (unsigned long long)(d->cfg.tick_ns / 1000));
	bk_info("commands %s%s%s, events %s%s%s, shm %s%s, audit %s", d->cfg.cmd_url,
	        d->cfg.local_url[0] ? " and " : "", d->cfg.local_url, d->cfg.pub_url,
	        d->cfg.tcp_url[0] ? ", tcp " : "", d->cfg.tcp_url, BK_SHM_PREFIX,
	        d->cfg.instance, d->cfg.audit_path);
}

int main(int argc, char **argv)
{
	static struct bk_daemon d; /* the one context; large, so not on the stack */
	struct bk_boot_report report;
	struct opts o = {0};
	sigset_t sigs;
	char err[1024] = "";
	int rv;

	if (parse_args(argc, argv, &o) < 0 || load_config(&d.cfg, &o) < 0)
		return 2;
	d.config_path = o.config;
	if (o.check_only) {
		printf("config OK: instance %s, commands %s, audit %s, metrics %s\n",
		       d.cfg.instance, d.cfg.cmd_url, d.cfg.audit_path,
		       d.cfg.metrics_listen[0] ? d.cfg.metrics_listen : "off");
		printf("config file: %s (%s)\n", o.config ? o.config : "none",
		       o.config_from);
		return 0;
	}
	if (o.log_file && !freopen(o.log_file, "a", stderr))
		return 1;
	setvbuf(stderr, NULL, _IOLBF, 0);
	bk_loop_signals(&sigs);
	/*
	 * A write past RLIMIT_FSIZE (systemd's LimitFSIZE=, ulimit -f) raises
	 * SIGXFSZ, which kills by default: ignored, the write fails with EFBIG
	 * like any other audit write error, trips hold and resumes wait.
	 */
	signal(SIGXFSZ, SIG_IGN);
	bk_log_set_level(o.verbose ? BK_LOG_DEBUG : BK_LOG_INFO);
	/* Boot before any nng call: nng is not fork-safe, and boot may fail early. */
	if (bk_boot(&d, &report, err, sizeof(err)) < 0) {
		bk_err("cannot start: %s", err);
		return 1;
	}
	/* Group members now (NSS may be slow): never looked up on the loop. */
	bk_auth_init(&d.auth, &d.cfg);
	/* Metrics first, the command socket last: a command that finds breakerd
	 * listening is answered by a loop that starts at once. */
	if (bk_metrics_start(&d) < 0) {
		bk_err("cannot start: no memory for the metrics buffers");
		bk_boot_close(&d);
		return 1;
	}
	if (bk_server_open(&d.srv, &d.cfg, err, sizeof(err)) < 0) {
		bk_err("cannot start: %s", err);
		bk_boot_close(&d);
		return 1;
	}
	report_boot(&d, &report);
	/* [cluster]: threads after boot (which may fork), before the loop */
	if ((rv = bk_etcd_start(&d)) < 0) {
		bk_err("cannot start the firm-wide threads: %s", strerror(-rv));
		bk_boot_close(&d);
		return 1;
	}
	rv = bk_loop_run(&d, o.log_file);
	bk_etcd_stop(&d);
	bk_boot_close(&d);
	bk_info("stopped");
	return rv < 0 ? 1 : 0;
}
