/*
 * fuzz_cmd - commands as breakerd handles them. A daemon context is booted
 * for real, as breakerd does it (bk_boot: instance lock, state and telemetry
 * segments, audit log; bk_metrics_start without a listener; bk_server_open
 * on IPC sockets in a scratch directory). Each input is one nng message,
 * handed to bk_cmd_handle exactly as the loop hands a received request;
 * after it, what the loop would do: flush the audit log and run
 * bk_pending_durable, and every few inputs a tick.
 *
 * The caller is real: one request goes over the IPC socket at boot, and its
 * pipe (peer uid = ours, so allowed to resume) is set on each input. One
 * input in eight (by a hash of its bytes) comes without a pipe, as a TCP
 * caller would: no credentials, so no resume.
 *
 * Replies are caught on their way out by the daemon's reply function (set
 * here after boot; it then hands them to bk_server_reply) and events by ld
 * --wrap of bk_server_publish (the real function still runs), so that the
 * daemon's promises are checked on every input:
 *   - every request gets exactly one reply, a breaker.Reply with a known
 *     status and the request's id;
 *   - a refusal names the problem and changes nothing (no new strategy, no
 *     change engines see, no audit record but an unauthorised attempt's);
 *   - every event is a breaker.Event.
 * The daemon restarts every RESTART_EVERY inputs: alternately from its own
 * log (which must replay without repair, to the very same state) and from
 * nothing (so the strategy table and the log stay bounded).
 */
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "bk_boot.h"
#include "bk_log.h"
#include "fuzz_util.h"

#define RESTART_EVERY 20000
#define TICK_EVERY    16
#define FUZZ_ROUTE    0x7f /* an input's route: the reply is only checked */

static struct bk_daemon d;
static char dir[256], ini[320], instance[64];
static nng_socket cli;
static struct bk_peer peer; /* the IPC caller, as bk_server_recv saw it */
static unsigned long inputs, boots;

/* What the reply function and bk_server_publish saw during one input. */
static struct {
	bool on;
	int replies;
	Breaker__Status status;
	uint64_t request_id;
	bool has_request_id;
	bool error_named;
} seen;

void __real_bk_server_publish(struct bk_server *s, const void *buf, size_t len);

static void check_reply(void *ctx, struct bk_route *route, const uint8_t *buf, size_t len)
{
	Breaker__Reply *rep;

	if (seen.on && buf) {
		rep = breaker__reply__unpack(NULL, len, buf);
		if (!rep)
			fz_fail("the daemon sent a reply that is not a breaker.Reply");
		seen.replies++;
		seen.status = rep->has_status ? rep->status : BREAKER__STATUS__OK;
		seen.has_request_id = rep->has_request_id;
		seen.request_id = rep->request_id;
		seen.error_named = rep->error && rep->error[0];
		breaker__reply__free_unpacked(rep, NULL);
	}
	if (route->transport == FUZZ_ROUTE)
		route->transport = BK_ROUTE_NONE; /* an input's: nobody to send to */
	else
		bk_server_reply(ctx, route, buf, len); /* connect_client's */
}

/* -Wl,--wrap=bk_server_publish sends the daemon's calls here */
void __wrap_bk_server_publish(struct bk_server *s, const void *buf, size_t len);
void __wrap_bk_server_publish(struct bk_server *s, const void *buf, size_t len)
{
	Breaker__Event *ev = breaker__event__unpack(NULL, len, buf);

	if (!ev)
		fz_fail("the daemon published an event that is not a breaker.Event");
	breaker__event__free_unpacked(ev, NULL);
	__real_bk_server_publish(s, buf, len);
}

/* Rules that trip, warn and cool down by themselves while commands arrive. */
static const char ini_fmt[] = "[breaker]\n"
                              "instance = %s\n"
                              "run_dir = %s/run\n"
                              "state_dir = %s/state\n"
                              "[metrics]\n"
                              "listen =\n"
                              "[strategies]\n"
                              "names = s1, s2, momo-eu-1\n"
                              "[rules]\n"
                              "order_rate.max = 1000\n"
                              "drawdown.max = 1000\n"
                              "exposure.max = 1000000\n"
                              "exposure.cooldown_ms = 1\n"
                              "exposure.cooldown_to = reduce-only\n"
                              "heartbeat.max = 50\n"
                              "[rules:s2]\n"
                              "reject_rate.max = 0.1\n"
                              "reconciliation.scope = strategy\n";

/* The loop's part after a command: flush, then acks, publishes and events. */
static void settle(void)
{
	int rv;

	if (!bk_audit_flush_ready(&d.audit))
		return;
	if ((rv = bk_audit_flush_sync(&d.audit)) < 0)
		fz_fail("audit flush: %s", strerror(-rv));
	bk_pending_durable(&d);
}

/* One real request over IPC, to get a pipe with real peer credentials. */
static void connect_client(void)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__StatusRequest sr = BREAKER__STATUS_REQUEST__INIT;
	uint8_t buf[64];
	struct bk_request in;
	nng_msg *msg = NULL;
	size_t len;
	int rv;

	req.cmd_case = BREAKER__REQUEST__CMD_STATUS;
	req.status = &sr;
	len = breaker__request__pack(&req, buf);
	if ((rv = nng_req0_open(&cli)) != 0 ||
	    (rv = nng_setopt_ms(cli, NNG_OPT_RECVTIMEO, 5000)) != 0 ||
	    (rv = nng_dial(cli, d.cfg.cmd_url, NULL, 0)) != 0 ||
	    (rv = nng_send(cli, buf, len, 0)) != 0)
		fz_fail("client: %s", nng_strerror(rv));
	for (int i = 0; i < 5000 && (rv = bk_server_recv(&d.srv, &in)) < 0; i++)
		nng_msleep(1);
	if (rv < 0)
		fz_fail("no request arrived over %s", d.cfg.cmd_url);
	peer = in.peer;
	bk_cmd_handle(&d, &in);
	if ((rv = nng_recvmsg(cli, &msg, 0)) != 0)
		fz_fail("no status reply: %s", nng_strerror(rv));
	nng_msg_free(msg);
}

static void boot(void)
{
	struct bk_boot_report r;
	char err[1024] = "";

	if (bk_config_defaults(&d.cfg, instance) < 0 ||
	    bk_config_load(&d.cfg, ini, err, sizeof(err)) < 0)
		fz_fail("config: %s", err);
	d.config_path = ini;
	if (bk_boot(&d, &r, err, sizeof(err)) < 0)
		fz_fail("boot: %s", err);
	/* a log this daemon wrote itself replays whole */
	if (r.corrupt || r.torn_bytes)
		fz_fail("boot from the daemon's own log: %s", r.why);
	if (bk_metrics_start(&d) < 0)
		fz_fail("metrics start");
	if (bk_server_open(&d.srv, &d.cfg, err, sizeof(err)) < 0)
		fz_fail("server: %s", err);
	d.replier = (struct bk_replier){.send = check_reply, .ctx = &d.srv};
	connect_client();
	boots++;
}

static void shutdown_daemon(void)
{
	settle();
	nng_close(cli);
	bk_boot_close(&d);
}

static void wipe(void)
{
	char sub[300];

	bk_shm_unlink(instance);
	bk_tel_unlink(instance);
	snprintf(sub, sizeof(sub), "%s/state", dir);
	fz_empty_dir(sub);
}

static void cleanup(void)
{
	shutdown_daemon();
	wipe();
	fz_rm_tree(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char text[2048];
	int n;

	(void)argc;
	(void)argv;
	bk_log_set_level(BK_LOG_ERR); /* rule trips and warnings would flood stderr */
	fz_tmpdir(dir, sizeof(dir), "cmd");
	snprintf(instance, sizeof(instance), "fuzzcmd-%d", (int)getpid());
	snprintf(ini, sizeof(ini), "%s/breaker.ini", dir);
	n = snprintf(text, sizeof(text), ini_fmt, instance, dir, dir);
	fz_write_file(ini, (const uint8_t *)text, (size_t)n);
	wipe();
	boot();
	atexit(cleanup);
	return 0;
}

/* Halt state as the log records it (not the hold bookkeeping of resumes). */
static bool scope_same(const struct bk_scope *a, const struct bk_scope *b)
{
	if (strcmp(a->name, b->name) || a->active != b->active)
		return false;
	for (unsigned r = 0; r < BK_REASON_COUNT; r++) {
		const struct bk_latch *x = &a->latches[r], *y = &b->latches[r];
		if (x->mode != y->mode)
			return false;
		if (x->mode &&
		    (x->audit_seq != y->audit_seq ||
		     x->since_wall_ns != y->since_wall_ns ||
		     x->actor.uid != y->actor.uid || x->actor.pid != y->actor.pid ||
		     strcmp(x->actor.name, y->actor.name) ||
		     strcmp(x->reason, y->reason)))
			return false;
	}
	return true;
}

/* Stop, boot from the log just written, and demand the very same state. */
static void restart_from_log(void)
{
	static struct bk_scope before[BK_MAX_STRATEGIES];
	struct bk_scope global;
	uint32_t n;

	settle();
	n = d.state.n_strategies;
	global = d.state.global;
	memcpy(before, d.state.strategies, n * sizeof(before[0]));
	shutdown_daemon();
	memset(&d, 0, sizeof(d));
	boot();
	if (d.state.n_strategies != n)
		fz_fail("restart: %u strategies, had %u", d.state.n_strategies, n);
	if (!scope_same(&d.state.global, &global))
		fz_fail("restart: global scope differs from before the restart");
	for (uint32_t i = 0; i < n; i++)
		if (!scope_same(&d.state.strategies[i], &before[i]))
			fz_fail("restart: strategy %u (%s) differs", i, before[i].name);
}

static void restart_fresh(void)
{
	shutdown_daemon();
	wipe();
	memset(&d, 0, sizeof(d));
	boot();
}

static bool state_change(Breaker__Request__CmdCase c)
{
	return c == BREAKER__REQUEST__CMD_TRIP || c == BREAKER__REQUEST__CMD_RESUME ||
	       c == BREAKER__REQUEST__CMD_REGISTER ||
	       c == BREAKER__REQUEST__CMD_RECONCILE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Breaker__Request *req;
	uint64_t next_seq = d.audit.next_seq;
	uint32_t n_strategies = d.state.n_strategies;
	uint32_t change_seq = atomic_load(&d.shm.shm->change_seq);
	bool remote = (bk_crc32c(0, data, size) & 7) == 0;
	struct bk_request in = {.body = data, .len = size, .peer = peer};

	if (++inputs % RESTART_EVERY == 0) {
		if (boots & 1)
			restart_from_log();
		else
			restart_fresh();
		next_seq = d.audit.next_seq;
		n_strategies = d.state.n_strategies;
		change_seq = atomic_load(&d.shm.shm->change_seq);
	}
	in.route.transport = FUZZ_ROUTE;
	if (remote) { /* as a plaintext TCP caller: no credentials */
		memset(&in.peer, 0, sizeof(in.peer));
		in.peer.uid = in.peer.gid = UINT32_MAX;
	}
	if (!bk_pending_can_accept(&d))
		settle(); /* as the loop: no new command while the ring is full */

	memset(&seen, 0, sizeof(seen));
	seen.on = true;
	bk_cmd_handle(&d, &in);
	settle();
	seen.on = false;

	if (seen.replies != 1)
		fz_fail("%d replies to one request", seen.replies);
	/* Any value breaker.proto names is a Status; a new one needs no edit here. */
	if (!protobuf_c_enum_descriptor_get_value(&breaker__status__descriptor,
	                                          seen.status))
		fz_fail("reply status %d is not a Status", seen.status);
	req = size <= d.cfg.max_msg ? breaker__request__unpack(NULL, size, data) : NULL;
	if (req && req->has_request_id &&
	    (!seen.has_request_id || seen.request_id != req->request_id))
		fz_fail("reply to request %llu carries id %llu",
		        (unsigned long long)req->request_id,
		        (unsigned long long)seen.request_id);
	if (seen.status != BREAKER__STATUS__OK) {
		if (!seen.error_named)
			fz_fail("refusal %d without an error text", seen.status);
		/* a trip whose record failed is in effect (and says so); an
		 * unauthorised attempt may be audited as refused: neither changes
		 * who is registered or what engines see */
		if (d.state.n_strategies != n_strategies ||
		    (seen.status != BREAKER__STATUS__ERR_NOT_DURABLE &&
		     atomic_load(&d.shm.shm->change_seq) != change_seq))
			fz_fail("refusal %d changed the state", seen.status);
		if (seen.status != BREAKER__STATUS__ERR_NOT_DURABLE &&
		    seen.status != BREAKER__STATUS__ERR_UNAUTHORISED &&
		    d.audit.next_seq != next_seq)
			fz_fail("refusal %d wrote the audit log (seq %llu -> %llu)",
			        seen.status, (unsigned long long)next_seq,
			        (unsigned long long)d.audit.next_seq);
	} else if (req && !state_change(req->cmd_case) && d.audit.next_seq != next_seq) {
		fz_fail("a query (command %d) wrote the audit log", req->cmd_case);
	}
	if (req)
		breaker__request__free_unpacked(req, NULL);

	if (inputs % TICK_EVERY == 0) {
		bk_tick(&d, bk_now_mono_ns());
		settle();
	}
	return 0;
}
