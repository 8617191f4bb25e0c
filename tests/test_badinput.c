/*
 * Bad input against a real breakerd, over each way in (nng ipc://, the local
 * unix:// socket, the CLI): every row of docs/bad-inputs.md that no other
 * test checks. Each bad request must get a typed reply naming the problem
 * and change nothing: no audit record, no change an engine can see.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_mode.h"

#define STRATS "[strategies]\nnames = alpha, beta\n"

struct snap {
	uint32_t change_seq;
	uint64_t audit_seq;
	uint32_t strategies;
};

static Breaker__Reply *call(struct bk_h *h, const Breaker__Request *req)
{
	static uint8_t buf[1 << 16];
	size_t n = breaker__request__get_packed_size(req);

	cr_assert_leq(n, sizeof(buf));
	return bk_h_raw_call(h, buf, breaker__request__pack(req, buf));
}

static void expect(Breaker__Reply *rep, Breaker__Status st, const char *needle)
{
	cr_assert_eq(rep->status, st, "status %d, error: %s", rep->status,
	             rep->error ? rep->error : "");
	if (needle)
		cr_assert(rep->error && strstr(rep->error, needle),
		          "error '%s' should say '%s'", rep->error ? rep->error : "",
		          needle);
	breaker__reply__free_unpacked(rep, NULL);
}

static void snapshot(struct bk_h *h, struct bk_client *c, struct snap *s)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__StatusRequest st = BREAKER__STATUS_REQUEST__INIT;
	Breaker__Reply *rep;

	req.cmd_case = BREAKER__REQUEST__CMD_STATUS;
	req.status = &st;
	rep = call(h, &req);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK);
	cr_assert_not_null(rep->info);
	s->audit_seq = rep->info->audit_seq;
	s->strategies = rep->info->strategy_count;
	s->change_seq = bk_change_seq(c);
	breaker__reply__free_unpacked(rep, NULL);
}

/* Nothing engines see has moved since s; audited tells whether the log may have. */
static void unchanged_but(struct bk_h *h, struct bk_client *c, const struct snap *s,
                          bool audited)
{
	struct snap now;

	snapshot(h, c, &now);
	if (!audited)
		cr_assert_eq(now.audit_seq, s->audit_seq, "an audit record was written");
	cr_assert_eq(now.strategies, s->strategies, "a strategy was registered");
	cr_assert_eq(now.change_seq, s->change_seq, "engines saw a change");
	cr_assert_eq(bk_check(c, -1), BK_ACTIVE);
}

/* Nothing an engine or the log can see has moved since s. */
static void unchanged(struct bk_h *h, struct bk_client *c, const struct snap *s)
{
	unchanged_but(h, c, s, false);
}

static void up(struct bk_h *h, struct bk_client *c, const char *tag, const char *ini)
{
	bk_h_init(h, tag, ini ? ini : STRATS);
	bk_h_start(h);
	bk_h_attach(h, c);
}

static void down(struct bk_h *h, struct bk_client *c)
{
	bk_client_detach(c);
	bk_h_fini(h);
}

static Breaker__Reply *trip_reason(struct bk_h *h, const char *reason)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;

	req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req.trip = &t;
	t.has_reason_code = 1;
	t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
	t.reason = (char *)reason;
	return call(h, &req);
}

Test(badinput, reason_text_bidi_escapes_and_length)
{
	static char big[1100];
	struct bk_h h;
	struct bk_client c;
	struct snap s;

	up(&h, &c, "text", NULL);
	snapshot(&h, &c, &s);
	/* U+202E RIGHT-TO-LEFT OVERRIDE, U+2066 LEFT-TO-RIGHT ISOLATE */
	expect(trip_reason(&h, "fat finger \xe2\x80\xae"
	                       "dlrow"),
	       BREAKER__STATUS__ERR_BAD_REQUEST, "control characters");
	expect(trip_reason(&h, "x \xe2\x81\xa6 y"), BREAKER__STATUS__ERR_BAD_REQUEST,
	       "control characters");
	expect(trip_reason(&h, "red \x1b[31m alert"), BREAKER__STATUS__ERR_BAD_REQUEST,
	       "control characters");
	expect(trip_reason(&h, "C1 \xc2\x9b control"), BREAKER__STATUS__ERR_BAD_REQUEST,
	       "control characters");
	expect(trip_reason(&h, "overlong \xc0\xaf slash"),
	       BREAKER__STATUS__ERR_BAD_REQUEST, "UTF-8");
	expect(trip_reason(&h, "surrogate \xed\xa0\x80"),
	       BREAKER__STATUS__ERR_BAD_REQUEST, "UTF-8");
	/* reason_max_bytes is 1024 by default: the message itself is well under 16 KiB */
	memset(big, 'r', 1025);
	expect(trip_reason(&h, big), BREAKER__STATUS__ERR_BAD_REQUEST, "length");
	unchanged(&h, &c, &s);
	/* the limit itself, and real UTF-8, are fine */
	memset(big, 'r', 1024);
	big[1024] = '\0';
	expect(trip_reason(&h, big), BREAKER__STATUS__OK, NULL);
	expect(trip_reason(&h, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\x91"),
	       BREAKER__STATUS__OK, NULL);
	down(&h, &c);
}

Test(badinput, strategy_names)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__RegisterStrategy rg = BREAKER__REGISTER_STRATEGY__INIT;
	struct bk_h h;
	struct bk_client c;
	struct snap s;
	static const char *bad[] = {
	    "",
	    "bad name",
	    "caf\xc3\xa9",
	    "\xff\xfe",
	    "a/b",
	    "tab\there",
	    "a-strategy-name-that-is-longer-than-39-bytes",
	};

	up(&h, &c, "names", NULL);
	snapshot(&h, &c, &s);
	req.cmd_case = BREAKER__REQUEST__CMD_REGISTER;
	req.register_ = &rg;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rg.strategy = (char *)bad[i];
		expect(call(&h, &req), BREAKER__STATUS__ERR_BAD_REQUEST, "strategy name");
	}
	rg.strategy = NULL;
	expect(call(&h, &req), BREAKER__STATUS__ERR_BAD_REQUEST, "strategy name");
	rg.strategy = "alpha";
	expect(call(&h, &req), BREAKER__STATUS__ERR_EXISTS, "already registered");
	unchanged(&h, &c, &s);
	down(&h, &c);
}

static Breaker__Reply *report(struct bk_h *h, const char *strategy, double position,
                              double gross, double pnl)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Report r = BREAKER__REPORT__INIT;

	req.cmd_case = BREAKER__REQUEST__CMD_REPORT;
	req.report = &r;
	r.strategy = (char *)strategy;
	r.has_orders = r.has_position = r.has_gross = r.has_pnl = 1;
	r.orders = 10;
	r.position = position;
	r.gross = gross;
	r.pnl = pnl;
	return call(h, &req);
}

Test(badinput, report_numbers)
{
	struct bk_h h;
	struct bk_client c;
	struct snap s;

	/* remote engines' strategies (a Report for a segment one is refused) */
	up(&h, &c, "report", STRATS "[strategies]\nremote = alpha, beta\n");
	snapshot(&h, &c, &s);
	expect(report(&h, "alpha", NAN, 1, 1), BREAKER__STATUS__ERR_BAD_REQUEST,
	       "finite");
	expect(report(&h, "alpha", 1, INFINITY, 1), BREAKER__STATUS__ERR_BAD_REQUEST,
	       "finite");
	expect(report(&h, "alpha", 1, 1, -INFINITY), BREAKER__STATUS__ERR_BAD_REQUEST,
	       "finite");
	expect(report(&h, "nosuch", 1, 1, 1), BREAKER__STATUS__ERR_UNKNOWN_STRATEGY,
	       "nosuch");
	expect(report(&h, NULL, 1, 1, 1), BREAKER__STATUS__ERR_BAD_REQUEST,
	       "names its strategy");
	unchanged(&h, &c, &s);
	/* negative money is real money (a short position, a loss): accepted */
	expect(report(&h, "alpha", -1e9, 5, -2e6), BREAKER__STATUS__OK, NULL);
	expect(report(&h, "beta", 1e300, 1e300, -1e300), BREAKER__STATUS__OK, NULL);
	down(&h, &c);
}

static Breaker__Reply *reconcile(struct bk_h *h, int n, const char *strategy,
                                 double position)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Reconcile r = BREAKER__RECONCILE__INIT;
	static Breaker__Reconcile__Position pos[70], *pp[70];

	req.cmd_case = BREAKER__REQUEST__CMD_RECONCILE;
	req.reconcile = &r;
	for (int i = 0; i < n; i++) {
		breaker__reconcile__position__init(&pos[i]);
		pos[i].strategy = (char *)strategy;
		pos[i].has_position = 1;
		pos[i].position = position;
		pp[i] = &pos[i];
	}
	r.n_positions = (size_t)n;
	r.positions = pp;
	return call(h, &req);
}

Test(badinput, reconcile_shapes)
{
	struct bk_h h;
	struct bk_client c;
	struct snap s;

	up(&h, &c, "recon", NULL);
	snapshot(&h, &c, &s);
	expect(reconcile(&h, 0, "alpha", 1), BREAKER__STATUS__ERR_BAD_REQUEST, "1-64");
	expect(reconcile(&h, 65, "alpha", 1), BREAKER__STATUS__ERR_BAD_REQUEST, "1-64");
	expect(reconcile(&h, 1, "alpha", NAN), BREAKER__STATUS__ERR_BAD_REQUEST,
	       "finite");
	expect(reconcile(&h, 1, "alpha", -INFINITY), BREAKER__STATUS__ERR_BAD_REQUEST,
	       "finite");
	expect(reconcile(&h, 1, "nosuch", 1), BREAKER__STATUS__ERR_UNKNOWN_STRATEGY,
	       "registered strategy");
	expect(reconcile(&h, 1, NULL, 1), BREAKER__STATUS__ERR_BAD_REQUEST,
	       "registered strategy");
	unchanged(&h, &c, &s);
	down(&h, &c);
}

Test(badinput, enums_out_of_range_and_empty_command)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Resume rs = BREAKER__RESUME__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;
	struct bk_h h;
	struct bk_client c;
	struct snap s;

	up(&h, &c, "enums", NULL);
	snapshot(&h, &c, &s);
	expect(call(&h, &req), BREAKER__STATUS__ERR_BAD_REQUEST, "empty or unknown");
	req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req.trip = &t;
	t.has_reason_code = 1;
	t.reason_code = BREAKER__REASON_CODE__AUDIT_CORRUPT; /* the daemon's own */
	expect(call(&h, &req), BREAKER__STATUS__ERR_UNKNOWN_REASON, "reason code");
	t.reason_code = BREAKER__REASON_CODE__REASON_NONE;
	expect(call(&h, &req), BREAKER__STATUS__ERR_UNKNOWN_REASON, "reason code");
	req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
	req.resume = &rs;
	rs.reason = "x";
	rs.has_reason_code = 1;
	rs.reason_code = (Breaker__ReasonCode)99;
	expect(call(&h, &req), BREAKER__STATUS__ERR_UNKNOWN_REASON, "unknown reason");
	rs.has_reason_code = 0;
	rs.has_to = 1;
	rs.to = (Breaker__Mode)9;
	expect(call(&h, &req), BREAKER__STATUS__ERR_BAD_REQUEST, "target mode");
	rs.has_to = 0;
	rs.reason = "";
	expect(call(&h, &req), BREAKER__STATUS__ERR_BAD_REQUEST, "needs a reason");
	unchanged(&h, &c, &s);
	down(&h, &c);
}

Test(badinput, unauthorised_register_reconcile_resume)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__RegisterStrategy rg = BREAKER__REGISTER_STRATEGY__INIT;
	Breaker__Resume rs = BREAKER__RESUME__INIT;
	struct bk_h h;
	struct bk_client c;
	struct snap s;

	/* nobody we are: our uid is not among those allowed */
	up(&h, &c, "unauth", STRATS "[auth]\nresume_uids = 54321\n");
	snapshot(&h, &c, &s);
	req.cmd_case = BREAKER__REQUEST__CMD_REGISTER;
	req.register_ = &rg;
	rg.strategy = "gamma";
	expect(call(&h, &req), BREAKER__STATUS__ERR_UNAUTHORISED, "may not register");
	expect(reconcile(&h, 1, "alpha", 5), BREAKER__STATUS__ERR_UNAUTHORISED,
	       "may not post");
	req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
	req.resume = &rs;
	rs.reason = "let me";
	rs.has_force = rs.force = 1;
	expect(call(&h, &req), BREAKER__STATUS__ERR_UNAUTHORISED, "may not resume");
	/* each refusal is evidence: a REFUSED audit record (docs/security.md) */
	unchanged_but(&h, &c, &s, true);
	down(&h, &c);
}

Test(badinput, over_the_transport_limit_on_ipc_is_dropped)
{
	static uint8_t big[(1u << 20) + 64];
	struct bk_h h;
	struct bk_client c;
	struct bk_rpc r;
	struct snap s;
	nng_msg *msg;

	up(&h, &c, "huge", NULL);
	snapshot(&h, &c, &s);
	memset(big, 'x', sizeof(big));
	cr_assert_eq(bk_rpc_open(&r, h.cfg.cmd_url, 1500), 0);
	cr_assert_eq(nng_msg_alloc(&msg, 0), 0);
	nng_msg_append(msg, big, sizeof(big));
	cr_assert_eq(nng_sendmsg(r.sock, msg, 0), 0);
	/* nng refuses it at the transport and drops the connection: no reply */
	cr_assert_neq(nng_recvmsg(r.sock, &msg, 0), 0, "a reply to a 1 MiB+ message");
	/*
	 * No bk_rpc_close: after the daemon drops the pipe mid-send, libnng 1.5.2's
	 * nng_close() in *this* (client) process blocks forever about 1 run in 40
	 * (seen in gdb; the daemon stays idle and answering). The socket goes with
	 * the test process. What is asserted is the daemon's side, below.
	 */
	unchanged(&h, &c, &s); /* and the daemon still answers */
	down(&h, &c);
}

/* One seqpacket exchange on the local socket; reply length, or -errno. */
static ssize_t local_raw(struct bk_h *h, const void *buf, size_t len, void *out,
                         size_t outlen, bool force_sndbuf)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 3};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), sz = 4 << 20;
	ssize_t n;

	cr_assert_geq(fd, 0);
	cr_assert_eq(strncmp(h->cfg.local_url, "unix://", 7), 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", h->cfg.local_url + 7);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s: %s",
	             a.sun_path, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (force_sndbuf) /* as root: past wmem_max, so the kernel lets it go */
		setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
	if (send(fd, buf, len, 0) < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	n = recv(fd, out, outlen, 0);
	n = n < 0 ? -errno : n;
	close(fd);
	return n;
}

Test(badinput, local_socket_oversize_and_empty)
{
	static uint8_t big[(1u << 20) + 64], rbuf[4096];
	struct bk_h h;
	struct bk_client c;
	struct snap s;
	ssize_t n;

	up(&h, &c, "local", NULL);
	snapshot(&h, &c, &s);
	memset(big, 'x', sizeof(big));
	/* over max_message_bytes (16 KiB), under the transport's 1 MiB */
	n = local_raw(&h, big, 20000, rbuf, sizeof(rbuf), false);
	cr_assert_gt(n, 0, "no reply: %zd", n);
	expect(breaker__reply__unpack(NULL, (size_t)n, rbuf),
	       BREAKER__STATUS__ERR_TOO_LARGE, "limit");
	/* over 1 MiB: the kernel refuses to send it, or the daemon sees its length */
	n = local_raw(&h, big, sizeof(big), rbuf, sizeof(rbuf), true);
	if (n == -EMSGSIZE || n == -ENOBUFS)
		cr_log_info("1 MiB+ packet refused by the kernel: %s", strerror((int)-n));
	else {
		cr_assert_gt(n, 0, "no reply: %zd", n);
		expect(breaker__reply__unpack(NULL, (size_t)n, rbuf),
		       BREAKER__STATUS__ERR_TOO_LARGE, "limit");
	}
	/* a 0-byte packet reads as end of stream: the daemon just hangs up */
	cr_assert_eq(local_raw(&h, "", 0, rbuf, sizeof(rbuf), false), 0);
	/* garbage gets the same answer as over nng */
	n = local_raw(&h, "\xff\xff\xff garbage", 12, rbuf, sizeof(rbuf), false);
	cr_assert_gt(n, 0);
	expect(breaker__reply__unpack(NULL, (size_t)n, rbuf),
	       BREAKER__STATUS__ERR_BAD_REQUEST, "malformed");
	unchanged(&h, &c, &s);
	down(&h, &c);
}

Test(badinput, cli_refuses_bad_text_and_changes_nothing)
{
	struct bk_h h;
	struct bk_client c;
	struct snap s;
	char out[4096], big[1101] = "";

	up(&h, &c, "clitext", NULL);
	snapshot(&h, &c, &s);
	cr_assert_neq(bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", "--reason",
	                       "abc\xe2\x80\xae"
	                       "cba",
	                       NULL),
	              0, "a bidi override in a reason is refused");
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "trip", "no_such_reason", "--reason",
	                      "x", NULL),
	             2, "an unknown reason name is a usage error: nothing is sent");
	memset(big, 'r', sizeof(big) - 1);
	cr_assert_eq(
	    bk_h_cli(&h, out, sizeof(out), "trip", "manual_halt", "--reason", big, NULL),
	    2, "a reason over reason_max_bytes is refused before sending");
	cr_assert_neq(
	    bk_h_cli(&h, out, sizeof(out), "kill", "nosuch", "--reason", "x", NULL), 0);
	cr_assert_neq(
	    bk_h_cli(&h, out, sizeof(out), "resume", "--reason", "nothing", NULL), 0);
	unchanged(&h, &c, &s);
	down(&h, &c);
}
