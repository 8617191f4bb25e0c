/*
 * gen_seeds - writes the generated part of the fuzz seed corpus:
 *   cmd/    one packed breaker.Request per command type, plus bad ones
 *   audit/  fuzz_audit recipes (records of every kind), and torn/corrupt
 *           variants of audit/real-*.log (logs written by a real breakerd)
 *   tel/    fuzz_tel inputs: telemetry slot images, sane and not
 *
 *   build-fuzz/tests/fuzz/gen_seeds tests/fuzz/corpus
 *
 * The config seeds and the real audit logs are checked in as they are.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "breaker.pb-c.h"
#include "breaker_client.h"

static char root[512];

static void put(const char *sub, const char *name, const void *buf, size_t len)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, sub);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", root, sub, name);
	f = fopen(path, "wb");
	if (!f || (len && fwrite(buf, 1, len, f) != len) || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* ---- cmd ------------------------------------------------------------------ */

static void put_req(const char *name, const Breaker__Request *req)
{
	uint8_t buf[1 << 16];
	size_t len = breaker__request__get_packed_size(req);

	if (len > sizeof(buf))
		abort();
	put("cmd", name, buf, breaker__request__pack(req, buf));
}

static void trip(const char *name, const char *strategy, int code, int mode,
                 const char *reason)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;

	req.has_request_id = 1;
	req.request_id = 1000 + (uint64_t)strlen(name);
	req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req.trip = &t;
	t.strategy = (char *)strategy;
	t.has_reason_code = code >= 0;
	t.reason_code = (Breaker__ReasonCode)code;
	t.has_mode = mode >= 0;
	t.mode = (Breaker__Mode)mode;
	t.reason = (char *)reason;
	put_req(name, &req);
}

static void resume(const char *name, const char *strategy, int code, int to, int force,
                   const char *reason)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Resume r = BREAKER__RESUME__INIT;

	req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
	req.resume = &r;
	r.strategy = (char *)strategy;
	r.has_reason_code = code >= 0;
	r.reason_code = (Breaker__ReasonCode)code;
	r.has_to = to >= 0;
	r.to = (Breaker__Mode)to;
	r.has_force = force >= 0;
	r.force = force > 0;
	r.reason = (char *)reason;
	put_req(name, &req);
}

static void report(const char *name, const char *strategy, double position, double gross,
                   double pnl, double balance)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Report r = BREAKER__REPORT__INIT;

	req.cmd_case = BREAKER__REQUEST__CMD_REPORT;
	req.report = &r;
	r.strategy = (char *)strategy;
	r.has_orders = r.has_rejects = r.has_fills = r.has_cancels = 1;
	r.orders = 1000;
	r.rejects = 30;
	r.fills = 400;
	r.cancels = 10;
	r.has_position = r.has_gross = r.has_pnl = r.has_balance = 1;
	r.has_fill_cash = r.has_fees = r.has_ack_seq = 1;
	r.position = position;
	r.gross = gross;
	r.pnl = pnl;
	r.balance = balance;
	r.fill_cash = -12.5;
	r.fees = 0.25;
	r.ack_seq = 3;
	put_req(name, &req);
}

static void reconcile(const char *name, int n, const char *strategy, double position)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Reconcile r = BREAKER__RECONCILE__INIT;
	Breaker__Reconcile__Position pos[65], *pp[65];

	req.cmd_case = BREAKER__REQUEST__CMD_RECONCILE;
	req.reconcile = &r;
	for (int i = 0; i < n; i++) {
		breaker__reconcile__position__init(&pos[i]);
		pos[i].strategy = (char *)strategy;
		pos[i].has_position = 1;
		pos[i].position = position + i;
		pp[i] = &pos[i];
	}
	r.n_positions = (size_t)n;
	r.positions = pp;
	put_req(name, &req);
}

static void simple(const char *name, Breaker__Request__CmdCase c, const char *strategy)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__StatusRequest st = BREAKER__STATUS_REQUEST__INIT;
	Breaker__ListStrategies ls = BREAKER__LIST_STRATEGIES__INIT;
	Breaker__RegisterStrategy rg = BREAKER__REGISTER_STRATEGY__INIT;

	req.cmd_case = c;
	req.status = &st; /* a union: one of these is read, by cmd_case */
	if (c == BREAKER__REQUEST__CMD_LIST)
		req.list = &ls;
	if (c == BREAKER__REQUEST__CMD_REGISTER) {
		rg.strategy = (char *)strategy;
		req.register_ = &rg;
	}
	if (c == BREAKER__REQUEST__CMD__NOT_SET)
		req.status = NULL;
	put_req(name, &req);
}

static void gen_cmd(void)
{
	static char big[20000];
	static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x52, 0x03};

	simple("status", BREAKER__REQUEST__CMD_STATUS, NULL);
	simple("list", BREAKER__REQUEST__CMD_LIST, NULL);
	simple("empty-request", BREAKER__REQUEST__CMD__NOT_SET, NULL);
	simple("register", BREAKER__REQUEST__CMD_REGISTER, "momo-eu-2");
	simple("register-bad-name", BREAKER__REQUEST__CMD_REGISTER, "bad name!");
	simple("register-too-long", BREAKER__REQUEST__CMD_REGISTER,
	       "a-strategy-name-that-is-longer-than-39-bytes");
	simple("register-existing", BREAKER__REQUEST__CMD_REGISTER, "s1");
	trip("trip-global", NULL, 1, -1, "Emergency halt by operator");
	trip("trip-emergency-stop", NULL, 2, 3, "emergency-stop");
	trip("kill-strategy", "s1", 3, -1, "runaway quoting");
	trip("trip-cautious", "s2", 1, 1, "slow down");
	trip("trip-reduce-only", "momo-eu-1", 8, 2, "drawdown by hand");
	trip("trip-unknown-strategy", "nope", 1, -1, "x");
	trip("trip-bad-strategy-name", "bad/name", 1, -1, "x");
	trip("trip-no-reason-code", NULL, -1, -1, "x");
	trip("trip-reason-none", NULL, 0, -1, "x");
	trip("trip-audit-corrupt", NULL, 11, -1, "operators may not raise this");
	trip("trip-unknown-reason", NULL, 99, -1, "x");
	trip("trip-mode-active", NULL, 1, 0, "a trip to ACTIVE");
	trip("trip-mode-unknown", NULL, 1, 7, "x");
	trip("trip-control-chars", NULL, 1, -1, "line\nbreak\x1b[31m red");
	trip("trip-bidi", NULL, 1, -1,
	     "abc\xe2\x80\xae"
	     "cba");
	trip("trip-bad-utf8", NULL, 1, -1, "\xc3\x28 \xed\xa0\x80 \xf8\x88\x80\x80\x80");
	trip("trip-utf8-ok", NULL, 1, -1, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\x91");
	memset(big, 'r', 1100);
	big[1100] = '\0';
	trip("trip-reason-1100", NULL, 1, -1, big);
	memset(big, 'r', 17000);
	big[17000] = '\0';
	trip("trip-oversize-17000", NULL, 1, -1, big);
	resume("resume-staged", NULL, 1, -1, -1, "positions reconciled");
	resume("resume-to-reduce-only", NULL, 2, 2, -1, "positions reconciled");
	resume("resume-skip", NULL, 1, 0, -1, "skip to active");
	resume("resume-forced-all", NULL, -1, 0, 1, "forced, all latches");
	resume("resume-strategy", "s1", 3, -1, -1, "fixed the quoting bug");
	resume("resume-audit-corrupt", NULL, 11, 0, 1, "log examined");
	resume("resume-no-reason", NULL, 1, -1, -1, NULL);
	resume("resume-not-a-resume", NULL, 1, 3, -1, "up, not down");
	resume("resume-unknown-mode", NULL, 1, 9, -1, "x");
	resume("resume-condition", "s2", 4, -1, -1, "reject rate is fine now");
	report("report", "s1", 100, 5000, 12.5, 1e6);
	report("report-nan", "s1", NAN, 5000, 12.5, 1e6);
	report("report-inf", "s2", 100, INFINITY, -INFINITY, 1e6);
	report("report-negative", "momo-eu-1", -1e9, -5, -2e6, -1);
	report("report-huge", "s2", 1e308, 1e308, -1e308, 1e308);
	report("report-unknown-strategy", "nope", 1, 1, 1, 1);
	reconcile("reconcile", 1, "s1", 100);
	reconcile("reconcile-64", 64, "s2", 0);
	reconcile("reconcile-65", 65, "s2", 0);
	reconcile("reconcile-none", 0, "s2", 0);
	reconcile("reconcile-unknown", 1, "nope", 0);
	put("cmd", "malformed", garbage, sizeof(garbage));
	put("cmd", "zero-bytes", "", 0);
}

/* ---- audit recipes ----------------------------------------------------------- */

static uint8_t recipe[65536];
static size_t recipe_len;

static void recipe_start(uint8_t flags)
{
	recipe[0] = flags;
	recipe_len = 1;
}

static void recipe_add(const Breaker__AuditRecord *rec)
{
	size_t len = breaker__audit_record__get_packed_size(rec);

	if (recipe_len + 2 + len > sizeof(recipe))
		abort();
	recipe[recipe_len] = (uint8_t)len;
	recipe[recipe_len + 1] = (uint8_t)(len >> 8);
	breaker__audit_record__pack(rec, recipe + recipe_len + 2);
	recipe_len += 2 + len;
}

static void rec_fill(Breaker__AuditRecord *r, Breaker__AuditRecord__Kind kind)
{
	breaker__audit_record__init(r);
	r->has_kind = r->has_wall_ns = r->has_mono_ns = r->has_uid = r->has_pid = 1;
	r->kind = kind;
	r->wall_ns = 1700000000000000000ull;
	r->mono_ns = 5000000000ull;
	r->uid = 1000;
	r->pid = 4242;
	r->user = "alice";
	r->host = "trading-1";
}

static void rec_change(Breaker__AuditRecord *r, Breaker__AuditRecord__Kind kind,
                       const char *strategy, int code, int from, int to, int latch,
                       int forced, const char *reason)
{
	rec_fill(r, kind);
	r->strategy = (char *)strategy;
	r->has_reason_code = r->has_from_mode = r->has_to_mode = r->has_latch_mode = 1;
	r->reason_code = (Breaker__ReasonCode)code;
	r->from_mode = (Breaker__Mode)from;
	r->to_mode = (Breaker__Mode)to;
	r->latch_mode = (Breaker__Mode)latch;
	r->has_forced = 1;
	r->forced = forced;
	r->reason = (char *)reason;
}

static void gen_audit(void)
{
	Breaker__AuditRecord r;
	static const struct {
		const char *name;
		uint8_t flags;
	} variants[] = {
	    {"recipe-history", 0},      {"recipe-keep-seq", 0x01},
	    {"recipe-keep-hash", 0x02}, {"recipe-bad-crc-last", 0x04},
	    {"recipe-v2-header", 0x08}, {"recipe-no-header", 0x10},
	};

	for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
		recipe_start(variants[v].flags);
		rec_fill(&r, BREAKER__AUDIT_RECORD__KIND__BOOT);
		r.reason = "breakerd default started: 0 records replayed";
		recipe_add(&r);
		rec_fill(&r, BREAKER__AUDIT_RECORD__KIND__REGISTER);
		r.strategy = "momo-eu-1";
		r.has_slot = 1;
		r.slot = 0;
		recipe_add(&r);
		rec_change(&r, BREAKER__AUDIT_RECORD__KIND__TRIP, NULL, 1, 0, 3, 3, 0,
		           "Emergency halt by operator");
		r.has_request_id = 1;
		r.request_id = 77;
		recipe_add(&r);
		rec_change(&r, BREAKER__AUDIT_RECORD__KIND__TRIP, "momo-eu-1", 3, 0, 3, 3,
		           0, "runaway quoting");
		recipe_add(&r);
		rec_change(&r, BREAKER__AUDIT_RECORD__KIND__TRIP, "momo-eu-1", 4, 3, 3, 3,
		           0, "rule reject_rate (strategy momo-eu-1): 30 rejects");
		r.rule = "reject_rate";
		r.has_threshold = r.has_measured = 1;
		r.threshold = 0.2;
		r.measured = 0.3;
		r.evidence = "30 rejects / 100 orders";
		recipe_add(&r);
		rec_fill(&r, BREAKER__AUDIT_RECORD__KIND__RECONCILE);
		r.strategy = "momo-eu-1";
		r.has_measured = 1;
		r.measured = 125.5;
		r.reason = "reconciled position 125.5";
		recipe_add(&r);
		rec_change(&r, BREAKER__AUDIT_RECORD__KIND__RESUME, NULL, 1, 3, 2, 2, 0,
		           "positions reconciled");
		recipe_add(&r);
		rec_change(&r, BREAKER__AUDIT_RECORD__KIND__RESUME, "momo-eu-1", 0, 3, 0,
		           0, 1, "forced, all latches");
		recipe_add(&r);
		rec_fill(&r, BREAKER__AUDIT_RECORD__KIND__LOG_REPAIR);
		r.reason = "torn tail cut";
		recipe_add(&r);
		put("audit", variants[v].name, recipe, recipe_len);
	}
	/* records the state must refuse: each ends the replay there */
	recipe_start(0);
	rec_fill(&r, BREAKER__AUDIT_RECORD__KIND__REGISTER);
	r.strategy = "a";
	r.has_slot = 1;
	r.slot = 5; /* slot 0 is next */
	recipe_add(&r);
	put("audit", "recipe-register-wrong-slot", recipe, recipe_len);
	recipe_start(0);
	rec_change(&r, BREAKER__AUDIT_RECORD__KIND__TRIP, "never-registered", 1, 0, 3, 3,
	           0, "x");
	recipe_add(&r);
	put("audit", "recipe-trip-unknown-strategy", recipe, recipe_len);
	recipe_start(0);
	rec_change(&r, BREAKER__AUDIT_RECORD__KIND__TRIP, NULL, 0, 0, 3, 3, 0, "x");
	recipe_add(&r);
	put("audit", "recipe-trip-reason-none", recipe, recipe_len);
	recipe_start(0);
	rec_change(&r, BREAKER__AUDIT_RECORD__KIND__TRIP, NULL, 1, 0, 9, 9, 0, "x");
	recipe_add(&r);
	put("audit", "recipe-trip-bad-mode", recipe, recipe_len);
}

/* Torn and corrupt variants of each real log in audit/. */
static void variants_of(const char *name)
{
	char path[1024], out[300];
	static uint8_t buf[1 << 20], v[1 << 20];
	FILE *f;
	size_t n, half;

	snprintf(path, sizeof(path), "%s/audit/%s", root, name);
	if (!(f = fopen(path, "rb")))
		return;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n < 64)
		return;
	half = n / 2;
#define VARIANT(tag, len)                                                                \
	do {                                                                             \
		snprintf(out, sizeof(out), "%s.%s", name, tag);                          \
		put("audit", out, v, len);                                               \
	} while (0)
	memcpy(v, buf, n);
	VARIANT("torn-mid-record", n - 5);
	VARIANT("torn-in-frame-header", 16 + 3);
	VARIANT("torn-header", 9);
	memset(v + n, 0, 4096);
	VARIANT("zero-filled-tail", n + 4096);
	memcpy(v, buf, n);
	v[half] ^= 0x40;
	VARIANT("flipped-byte", n);
	memcpy(v, buf, n);
	memset(v + half, 0, 40);
	VARIANT("zeroed-middle", n);
	memcpy(v, buf, n);
	v[16] = 0xff; /* first frame's length bent past the end */
	v[17] = 0x0f;
	VARIANT("bent-length", n);
	memcpy(v, buf, n);
	v[3] = 'X'; /* "BKAXDIT1": still "BK", so fuzz_audit takes it as a file */
	VARIANT("bad-magic", n);
	memcpy(v, buf, n);
	v[8] = 2;
	VARIANT("version-2", n);
	memcpy(v, buf, n);
	memcpy(v + n, buf + 16, half);
	VARIANT("records-repeated", n + half);
#undef VARIANT
}

static void gen_audit_variants(void)
{
	char path[1024];
	struct dirent *e;
	DIR *dp;

	snprintf(path, sizeof(path), "%s/audit", root);
	if (!(dp = opendir(path)))
		return;
	while ((e = readdir(dp)))
		if (!strncmp(e->d_name, "real-", 5) && strlen(e->d_name) > 4 &&
		    !strcmp(e->d_name + strlen(e->d_name) - 4, ".log"))
			variants_of(e->d_name);
	closedir(dp);
}

/* ---- tel ----------------------------------------------------------------- */

struct tel_step {
	uint8_t dt;
	struct bk_tel_slot slot;
};

static void fset(BK_ATOMIC(uint64_t) * w, double x)
{
	*(uint64_t *)w = bk_f2u(x);
}

static void tel_seed(const char *name, uint8_t rules, uint8_t opt,
                     void (*shape)(struct bk_tel_slot *, int), int steps)
{
	static uint8_t buf[2 + 64 * (1 + sizeof(struct bk_tel_slot))];
	size_t len = 2;

	buf[0] = rules;
	buf[1] = opt;
	for (int i = 0; i < steps; i++) {
		struct bk_tel_slot s;

		memset(&s, 0, sizeof(s));
		shape(&s, i);
		buf[len++] = 25; /* 100 ms per tick */
		memcpy(buf + len, &s, sizeof(s));
		len += sizeof(s);
	}
	put("tel", name, buf, len);
}

static void sane(struct bk_tel_slot *s, int i)
{
	*(uint64_t *)&s->orders = 100u * (unsigned)i;
	*(uint64_t *)&s->rejects = 5u * (unsigned)i;
	*(uint64_t *)&s->heartbeat_ns = 1000000000000ull + 100000000ull * (unsigned)i;
	*(uint64_t *)&s->fills = 40u * (unsigned)i;
	fset(&s->balance, 1e6 - 12.5 * i);
	fset(&s->fill_cash, -12.0 * i);
	fset(&s->fees, 0.5 * i);
	fset(&s->position, 10.0 * i);
	fset(&s->gross, 1000.0 * i);
	fset(&s->pnl, 100.0 - 50.0 * i);
}

static void nan_money(struct bk_tel_slot *s, int i)
{
	sane(s, i);
	fset(&s->pnl, i > 2 ? NAN : 1.0);
	fset(&s->balance, i > 3 ? NAN : 1e6);
}

static void inf_money(struct bk_tel_slot *s, int i)
{
	sane(s, i);
	fset(&s->gross, i > 2 ? INFINITY : 1.0);
	fset(&s->pnl, i > 2 ? -INFINITY : 1.0);
	fset(&s->position, i > 3 ? -INFINITY : 1.0);
}

static void negative(struct bk_tel_slot *s, int i)
{
	sane(s, i);
	fset(&s->gross, -1e12);
	fset(&s->balance, -1e300);
	fset(&s->fees, -5);
}

static void future_heartbeat(struct bk_tel_slot *s, int i)
{
	sane(s, i);
	*(uint64_t *)&s->heartbeat_ns = i < 3 ? 1000000000000ull : UINT64_MAX;
}

static void torn_seqlock(struct bk_tel_slot *s, int i)
{
	sane(s, i);
	*(uint32_t *)&s->gseq = 2u * (unsigned)i + 1;
}

static void backwards(struct bk_tel_slot *s, int i)
{
	sane(s, 8 - i);
	*(uint64_t *)&s->rejects = 1000u; /* more rejects than orders */
}

static void gen_tel(void)
{
	tel_seed("sane-all-rules", 0x7f, 0x04, sane, 8);
	tel_seed("sane-cooldown", 0x7f, 0x01, sane, 8);
	tel_seed("nan-money", 0x7f, 0x0c, nan_money, 8);
	tel_seed("inf-money", 0x7f, 0x06, inf_money, 8);
	tel_seed("negative-money", 0x7f, 0x04, negative, 6);
	tel_seed("heartbeat-in-future", 0x20, 0x00, future_heartbeat, 8);
	tel_seed("seqlock-stuck-odd", 0x7f, 0x04, torn_seqlock, 5);
	tel_seed("counters-backwards", 0x03, 0x00, backwards, 8);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds CORPUS_DIR\n");
		return 2;
	}
	snprintf(root, sizeof(root), "%s", argv[1]);
	mkdir(root, 0755);
	gen_cmd();
	gen_audit();
	gen_audit_variants();
	gen_tel();
	return 0;
}
