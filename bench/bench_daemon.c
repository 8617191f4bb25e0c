/*
 * bench_daemon - a real breakerd in its own temp directory, instance and
 * sockets, pinned to a CPU; and the two commands the benchmarks send.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#ifndef BENCH_BREAKERD
#define BENCH_BREAKERD "breakerd"
#endif

static const char *breakerd_path(void)
{
	const char *p = getenv("BREAKERD");

	return p && *p ? p : BENCH_BREAKERD;
}

static int write_config(struct bench_daemon *d, const char *tag, const char *extra)
{
	char err[256];
	FILE *f;

	snprintf(d->config, sizeof(d->config), "%s/breaker.ini", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/breakerd.log", d->dir);
	f = fopen(d->config, "w");
	if (!f)
		return -errno;
	fprintf(
	    f,
	    "[breaker]\ninstance = bench%d-%s\nrun_dir = %s/run\nstate_dir = %s/state\n",
	    (int)getpid(), tag, d->dir, d->dir);
	if (extra)
		fputs(extra, f);
	fclose(f);
	if (bk_config_defaults(&d->cfg, NULL) < 0 ||
	    bk_config_load(&d->cfg, d->config, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench: config %s: %s\n", d->config, err);
		return -EINVAL;
	}
	return 0;
}

/* The state segment, and the telemetry one ("<segment>.tel") if there is one. */
static void unlink_segment(const struct bench_daemon *d)
{
	char name[BK_INSTANCE_MAX + 16], tel[BK_INSTANCE_MAX + 32];

	if (bk_shm_name(name, sizeof(name), d->cfg.instance) < 0)
		return;
	snprintf(tel, sizeof(tel), "%s.tel", name);
	shm_unlink(name);
	shm_unlink(tel);
}

int bench_daemon_start(struct bench_daemon *d, const char *tag, const char *extra_ini,
                       int cpu)
{
	char *argv[] = {
	    (char *)breakerd_path(), "--config", d->config, "--log-file", d->log, NULL};
	int rv, st;

	memset(d, 0, sizeof(*d));
	if ((rv = bench_tmpdir(d->dir, sizeof(d->dir), tag)) < 0 ||
	    (rv = write_config(d, tag, extra_ini)) < 0)
		return rv;
	unlink_segment(d);
	d->pid = bench_spawn(argv, cpu, d->log);
	if (d->pid < 0)
		return (int)d->pid;
	for (int i = 0; i < 500; i++) {
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			fprintf(stderr, "bench: breakerd (%s) exited at start; see %s\n",
			        argv[0], d->log);
			d->pid = 0;
			return -ECHILD;
		}
		if (bk_rpc_ping(d->cfg.cmd_url, 500))
			return 0;
		bench_sleep_us(10000);
	}
	fprintf(stderr, "bench: breakerd did not answer within 5 s; see %s\n", d->log);
	bench_daemon_stop(d);
	return -ETIMEDOUT;
}

void bench_daemon_stop(struct bench_daemon *d)
{
	if (d->pid > 0)
		bench_stop_child(d->pid);
	d->pid = 0;
	unlink_segment(d);
	bench_rmtree(d->dir);
}

int bench_daemon_attach(const struct bench_daemon *d, struct bk_client *c)
{
	int rv = -EAGAIN;

	for (int i = 0; i < 200 && (rv == -EAGAIN || rv == -ENOENT); i++) {
		rv = bk_client_attach(c, d->cfg.instance);
		if (rv == -EAGAIN || rv == -ENOENT)
			bench_sleep_us(10000);
	}
	return rv;
}

/* ---- commands ------------------------------------------------------------ */

static int call_ok(struct bk_rpc *r, Breaker__Request *req)
{
	Breaker__Reply *rep = NULL;
	int rv = bk_rpc_call(r, req, &rep);

	if (rv == 0 && rep->status != BREAKER__STATUS__OK) {
		fprintf(stderr, "bench: command refused (%d): %s\n", rep->status,
		        rep->error ? rep->error : "");
		rv = -EPROTO;
	}
	if (rep)
		breaker__reply__free_unpacked(rep, NULL);
	return rv;
}

int bench_trip(struct bk_rpc *r, const char *strategy, uint64_t id)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;

	req.has_request_id = 1;
	req.request_id = id;
	req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req.trip = &t;
	t.strategy = (char *)strategy;
	t.has_reason_code = 1;
	t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
	t.reason = "bench trip";
	return call_ok(r, &req);
}

int bench_resume(struct bk_rpc *r, const char *strategy, uint64_t id)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Resume s = BREAKER__RESUME__INIT;

	req.has_request_id = 1;
	req.request_id = id;
	req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
	req.resume = &s;
	s.strategy = (char *)strategy;
	s.has_to = 1;
	s.to = BREAKER__MODE__MODE_ACTIVE;
	s.has_force = 1;
	s.force = 1;
	s.reason = "bench resume";
	return call_ok(r, &req);
}
