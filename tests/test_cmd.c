/*
 * test_cmd - command handling in process: a daemon context booted as
 * breakerd boots it (bk_boot), requests handed to bk_cmd_handle through the
 * transport-neutral seam (bk_request.h) with this test's own reply function,
 * and the audit log flushed when the test says so. That makes the ordering
 * promises observable step by step, with no timing involved: what engines
 * see (the real client header on the real segment) before and after the
 * record is durable, and what the caller is answered.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_boot.h"
#include "bk_harness.h"
#include "bk_invariant.h"
#include "bk_text.h"

#define ROUTE_TEST 0x55 /* this test's transport kind */

static struct bk_h h;
static struct bk_daemon d;
static struct bk_client cl;
static int replies;
static Breaker__Reply *last; /* the latest answer, unpacked */

static void capture(void *ctx, struct bk_route *route, const uint8_t *buf, size_t len)
{
	(void)ctx;
	cr_assert_eq(route->transport, ROUTE_TEST);
	route->transport = BK_ROUTE_NONE;
	if (!buf)
		return;
	replies++;
	if (last)
		breaker__reply__free_unpacked(last, NULL);
	last = breaker__reply__unpack(NULL, len, buf);
	cr_assert_not_null(last, "an answer that is not a breaker.Reply");
}

static void boot(const char *tag, const char *ini)
{
	struct bk_boot_report r;
	char err[1024] = "";

	bk_h_init(&h, tag, ini);
	memset(&d, 0, sizeof(d));
	d.cfg = h.cfg;
	d.config_path = h.config;
	cr_assert_eq(bk_boot(&d, &r, err, sizeof(err)), 0, "boot: %s", err);
	d.replier = (struct bk_replier){.send = capture, .ctx = NULL};
	cr_assert_eq(bk_client_attach(&cl, h.instance), 0);
	replies = 0;
	last = NULL;
}

static void fini(void)
{
	bk_client_detach(&cl);
	bk_boot_close(&d);
	bk_h_fini(&h);
}

/* Hand req to the handler as root over a local transport would. */
static void handle(Breaker__Request *req)
{
	uint8_t buf[65536];
	struct bk_request in = {.body = buf};

	cr_assert_leq(breaker__request__get_packed_size(req), sizeof(buf));
	in.len = breaker__request__pack(req, buf);
	in.peer.uid = in.peer.gid = 0;
	in.peer.pid = (uint32_t)getpid();
	in.peer.local = 1;
	in.route.transport = ROUTE_TEST;
	cr_assert(bk_pending_can_accept(&d), "the loop would not hand this over now");
	bk_cmd_handle(&d, &in);
}

/* What the loop does once the log's write completes. */
static void settle(void)
{
	if (bk_audit_flush_ready(&d.audit))
		cr_assert_eq(bk_audit_flush_sync(&d.audit), 0);
	bk_pending_durable(&d);
}

static void trip(const char *strategy, uint64_t id)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;

	t.strategy = (char *)strategy;
	t.has_reason_code = 1;
	t.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
	t.reason = "test";
	req.has_request_id = id != 0;
	req.request_id = id;
	req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req.trip = &t;
	handle(&req);
}

static void resume(const char *strategy, uint64_t id)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Resume r = BREAKER__RESUME__INIT;

	r.strategy = (char *)strategy;
	r.reason = "test resume";
	req.has_request_id = id != 0;
	req.request_id = id;
	req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
	req.resume = &r;
	handle(&req);
}

static void register_(const char *strategy)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__RegisterStrategy r = BREAKER__REGISTER_STRATEGY__INIT;

	r.strategy = (char *)strategy;
	req.cmd_case = BREAKER__REQUEST__CMD_REGISTER;
	req.register_ = &r;
	handle(&req);
	settle();
	cr_assert_eq(last->status, BREAKER__STATUS__OK, "register %s: %s", strategy,
	             last->error ? last->error : "");
}

Test(cmd, trip_flips_before_its_record_is_durable)
{
	boot("cmd-flip", NULL);
	cr_assert_eq(bk_check(&cl, BK_GLOBAL_ONLY), BK_ACTIVE);
	trip(NULL, 0);
	/* engines see the halt now; the caller hears once it is on disk */
	cr_assert_eq(bk_check(&cl, BK_GLOBAL_ONLY), BK_HALTED);
	cr_assert_eq(replies, 0, "answered before the record was durable");
	settle();
	cr_assert_eq(replies, 1);
	cr_assert_eq(last->status, BREAKER__STATUS__OK);
	cr_assert(last->has_audit_seq && last->audit_seq <= d.audit.durable_seq);
	fini();
}

Test(cmd, resume_is_invisible_until_durable)
{
	boot("cmd-resume", NULL);
	trip(NULL, 0);
	settle();
	resume(NULL, 0);
	cr_assert_eq(replies, 1, "resume answered before its record was durable");
	cr_assert_eq(bk_check(&cl, BK_GLOBAL_ONLY), BK_HALTED,
	             "engines saw a resume whose record is not on disk");
	settle();
	cr_assert_eq(replies, 2);
	cr_assert_eq(last->status, BREAKER__STATUS__OK, "%s",
	             last->error ? last->error : "");
	cr_assert_neq(bk_check(&cl, BK_GLOBAL_ONLY), BK_HALTED);
	fini();
}

Test(cmd, failed_flush_answers_trips_and_holds_resumes)
{
	boot("cmd-flushfail", NULL);
	register_("s1");
	trip(NULL, 0);
	settle();
	replies = 0;
	resume(NULL, 0);
	trip("s1", 41);
	bk_pending_flush_failed(&d, -EIO);
	/* the trip is in effect and says so; the resume waits, unseen */
	cr_assert_eq(replies, 1);
	cr_assert_eq(last->status, BREAKER__STATUS__ERR_NOT_DURABLE);
	cr_assert_eq(bk_check(&cl, bk_client_resolve(&cl, "s1")), BK_HALTED);
	cr_assert_eq(bk_check(&cl, BK_GLOBAL_ONLY), BK_HALTED);
	/* the log recovers: the resume is published and answered */
	d.flush_err = 0;
	settle();
	cr_assert_eq(replies, 2);
	cr_assert_eq(last->status, BREAKER__STATUS__OK);
	cr_assert_neq(bk_check(&cl, BK_GLOBAL_ONLY), BK_HALTED);
	fini();
}

Test(cmd, duplicate_request_id)
{
	uint64_t seq, next;

	boot("cmd-dupe", NULL);
	register_("s1");
	trip("s1", 7001);
	settle();
	cr_assert_eq(last->status, BREAKER__STATUS__OK);
	seq = last->audit_seq;
	next = d.audit.next_seq;
	/* a resend: the original acknowledged, nothing applied or recorded */
	trip("s1", 7001);
	cr_assert_eq(last->status, BREAKER__STATUS__OK);
	cr_assert_eq(last->audit_seq, seq);
	cr_assert_eq(d.audit.next_seq, next);
	/* resent before the original is durable: answered once it is */
	trip(NULL, 7002);
	replies = 0;
	trip(NULL, 7002);
	cr_assert_eq(replies, 0,
	             "a duplicate acknowledged before its original is durable");
	settle();
	cr_assert_eq(replies, 2);
	cr_assert_eq(last->status, BREAKER__STATUS__OK);
	/* the id with another payload: refused, nothing applied */
	next = d.audit.next_seq;
	trip("s1-other", 7001);
	cr_assert_eq(last->status, BREAKER__STATUS__ERR_REQUEST_ID_REUSED);
	cr_assert_eq(d.audit.next_seq, next);
	fini();
}

/* Stage daemon records until the staging buffer has little room left, but
 * still enough for the loop to hand a command over (bk_pending_can_accept). */
static void fill_staging(void)
{
	static char text[1000];

	memset(text, 'x', sizeof(text) - 1);
	for (;;) {
		Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
		size_t left = BK_AUDIT_BATCH_BYTES - d.audit.staged_len;

		if (left < 2 * BK_AUDIT_RECORD_MAX + 2 * sizeof(text))
			break;
		rec.has_kind = 1;
		rec.kind = BREAKER__AUDIT_RECORD__KIND__CONFIG;
		rec.reason = text;
		cr_assert_gt(bk_record_stage_system(&d, &rec), 0);
	}
	cr_assert(bk_pending_can_accept(&d));
}

Test(cmd, reconcile_is_all_or_nothing)
{
	enum { N = 64 };
	static char names[N][16];
	Breaker__Reconcile__Position pos[N], *pp[N];
	Breaker__Reconcile rc = BREAKER__RECONCILE__INIT;
	Breaker__Request req = BREAKER__REQUEST__INIT;
	uint64_t next;
	int posted = 0;

	boot("cmd-recon", "[rules]\nreconciliation.max = 1000000\n");
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "strat-%02d", i);
		register_(names[i]);
		breaker__reconcile__position__init(&pos[i]);
		pos[i].strategy = names[i];
		pos[i].has_position = 1;
		pos[i].position = 10.0 * i;
		pp[i] = &pos[i];
	}
	rc.n_positions = N;
	rc.positions = pp;
	req.cmd_case = BREAKER__REQUEST__CMD_RECONCILE;
	req.reconcile = &rc;

	fill_staging();
	next = d.audit.next_seq;
	replies = 0;
	handle(&req);
	cr_assert_eq(replies, 1, "no answer while there is no room: it must say so");
	cr_assert_neq(last->status, BREAKER__STATUS__OK);
	for (int i = 0; i < N; i++)
		posted += d.slots[i].eval.recon.posted_wall_ns != 0;
	cr_assert_eq(posted, 0, "%d of %d positions applied by a refused reconcile",
	             posted, N);
	cr_assert_eq(d.audit.next_seq, next, "%llu records staged by a refused reconcile",
	             (unsigned long long)(d.audit.next_seq - next));

	/* once the log has caught up the same command applies whole */
	settle();
	handle(&req);
	settle();
	cr_assert_eq(last->status, BREAKER__STATUS__OK, "%s",
	             last->error ? last->error : "");
	for (int i = 0; i < N; i++)
		cr_assert_neq(d.slots[i].eval.recon.posted_wall_ns, 0);
	cr_assert_eq(d.audit.next_seq, next + N);
	fini();
}

/* breakerd closes what bk_boot opened even when bk_boot failed part way: a
 * descriptor it never opened must not be closed (a zeroed one is stdin). */
Test(cmd, boot_close_after_a_failed_boot_leaves_stdin_alone)
{
	struct bk_boot_report r;
	char err[1024] = "", path[300];
	int null = open("/dev/null", O_RDONLY);

	cr_assert_geq(null, 0);
	cr_assert_eq(dup2(null, 0), 0);
	bk_h_init(&h, "cmd-halfboot", NULL);
	memset(&d, 0, sizeof(d));
	d.cfg = h.cfg;
	/* a state_dir that cannot be made: the boot fails before the log opens */
	snprintf(path, sizeof(path), "%s/breaker.ini/state", h.dir);
	snprintf(d.cfg.state_dir, sizeof(d.cfg.state_dir), "%s", path);
	cr_assert_lt(bk_boot(&d, &r, err, sizeof(err)), 0);
	bk_boot_close(&d);
	cr_assert_neq(fcntl(0, F_GETFD), -1, "bk_boot_close closed stdin");
	close(null);
	bk_h_fini(&h);
}

/* A broken assumption stops the process (engines then see a silent daemon:
 * HALTED) instead of running on into a NULL dereference. */
Test(cmd, broken_invariant_aborts, .signal = SIGABRT)
{
	void *volatile sqe = NULL;

	BK_INVARIANT(sqe);
}

/* The one decoder and the daemon's text rule on top of it. */
Test(cmd, text_checks)
{
	static const struct {
		const char *s;
		int decode; /* bk_utf8_decode's length */
		int safe;   /* bk_text_char_len's */
	} t[] = {
	    {"a", 1, 1},
	    {"\t", 1, 1},
	    {"\x1b", 1, 0},
	    {"\x7f", 1, 0},
	    {"\xc2\x85", 2, 0}, /* C1 NEL */
	    {"\xc2\xa0", 2, 2},
	    {"\xc0\xaf", 0, 0}, /* overlong '/' */
	    {"\xe0\x80\xaf", 0, 0},
	    {"\xed\xa0\x80", 0, 0}, /* surrogate */
	    {"\xe2\x80\xae", 3, 0}, /* U+202E RIGHT-TO-LEFT OVERRIDE */
	    {"\xe2\x81\xa6", 3, 0}, /* U+2066 */
	    {"\xe2\x82\xac", 3, 3}, /* euro sign */
	    {"\xf4\x8f\xbf\xbf", 4, 4},
	    {"\xf4\x90\x80\x80", 0, 0}, /* past U+10FFFF */
	    {"\xe2\x82", 0, 0},         /* cut short by the NUL */
	};
	unsigned cp;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const unsigned char *p = (const unsigned char *)t[i].s;

		cr_expect_eq(bk_utf8_decode(p, &cp), t[i].decode, "decode #%zu", i);
		cr_expect_eq(bk_text_char_len(p), t[i].safe, "safe #%zu", i);
	}
	cr_expect(bk_text_valid("halt: feed stale", 64));
	cr_expect(!bk_text_valid("halt: feed stale", 4));
	cr_expect(!bk_text_valid("a\xe2\x80\xae"
	                         "b",
	                         64));
}
