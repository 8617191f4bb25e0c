/*
 * fuzz_tel - the telemetry segment as the tick reads it: engines write any
 * bytes they like into their slot (NaN, infinities, negative money, counters
 * going backwards, a seqlock stuck odd, a heartbeat in the future), the
 * daemon reads the slot (bk_tel_read) and evaluates every rule on it
 * (bk_rules_eval), tick after tick.
 *
 * Input:
 *   byte 0: which rules are on (bit n: rule n of enum bk_rule_id)
 *   byte 1: bit 0 cooldowns on, bit 1 global scope, bit 2 a reconciled
 *           position is set, bit 3 drawdown by percentage too
 *   then steps: 1 byte (ms since the last tick, x4) + one slot image
 *   (sizeof(struct bk_tel_slot) bytes, zero-padded at the end).
 *
 * UBSan is the main oracle (float-to-integer casts, shifts); the checks
 * below hold the verdicts to what bk_rules.h promises.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "bk_mode.h"
#include "bk_tel.h"
#include "fuzz_util.h"

#define STEP_BYTES (1 + sizeof(struct bk_tel_slot))
#define MAX_STEPS  64

static struct bk_tel_reader tel;
static char instance[64];

static void cleanup(void)
{
	bk_tel_close(&tel);
	bk_tel_unlink(instance);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256] = "";

	(void)argc;
	(void)argv;
	snprintf(instance, sizeof(instance), "fuzztel-%d", (int)getpid());
	bk_tel_unlink(instance);
	if (bk_tel_open(&tel, instance, 0600, err, sizeof(err)) < 0)
		fz_fail("bk_tel_open: %s", err);
	atexit(cleanup);
	return 0;
}

static void rules_from(uint8_t on, uint8_t opt, struct bk_rule_cfg *r)
{
	static const double max[BK_RULE_COUNT] = {
	    [BK_RULE_REJECT_RATE] = 0.2,    [BK_RULE_ORDER_RATE] = 100,
	    [BK_RULE_DRAWDOWN] = 1000,      [BK_RULE_EXPOSURE] = 1e6,
	    [BK_RULE_RECONCILIATION] = 100, [BK_RULE_HEARTBEAT] = 250,
	    [BK_RULE_INVARIANT] = 0.01,
	};

	for (int id = 0; id < BK_RULE_COUNT; id++) {
		r[id] = (struct bk_rule_cfg){
		    .enabled = (on >> id) & 1,
		    .max = max[id],
		    .window_ms = 1000,
		    .min_orders = 10,
		    .action = BK_HALTED,
		    .global = opt & 2,
		    .cooldown_ms = opt & 1 ? 50 : 0,
		    .cooldown_to = opt & 1 ? BK_REDUCE_ONLY : 0,
		};
	}
	if (opt & 8)
		r[BK_RULE_DRAWDOWN].max_pct = 0.2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const double warn[BK_WARN_LEVELS] = {0.5, 0.75, 0.9};
	struct bk_rule_cfg rules[BK_RULE_COUNT];
	struct bk_verdict v[2 * BK_RULE_COUNT];
	struct bk_rule_eval ev;
	static struct bk_recon_hist hist;
	struct bk_tel_snap snap;
	uint64_t now = 1000000000000ull; /* 1000 s of uptime: heartbeats can be older */
	uint8_t img[sizeof(struct bk_tel_slot)];
	const char *env = getenv("BK_FUZZ_STRICT");
	bool strict = env && *env == '1';

	if (size < 2)
		return 0;
	rules_from(data[0], data[1], rules);
	memset(&ev, 0, sizeof(ev));
	if (data[1] & 4)
		/* a standing reconciliation break verdict (bk_recon.h) */
		ev.recon = (struct bk_recon){.verdict = BK_RV_BREAK,
		                             .brk = 1e9,
		                             .limit = rules[BK_RULE_RECONCILIATION].max};
	data += 2;
	size -= 2;
	for (int step = 0; step < MAX_STEPS && size; step++) {
		size_t n = size < STEP_BYTES ? size : STEP_BYTES;
		int nv;

		now += (uint64_t)data[0] * 4000000ull;
		memset(img, 0, sizeof(img));
		memcpy(img, data + 1, n - 1);
		memcpy((void *)&tel.tel->slots[0], img, sizeof(img));
		data += n;
		size -= n;

		bk_tel_read(&tel, 0, &snap);
		nv = bk_rules_eval(rules, warn, &ev, &hist, &snap, now, v,
		                   2 * BK_RULE_COUNT);
		if (nv < 0 || nv > 2 * BK_RULE_COUNT)
			fz_fail("%d verdicts", nv);
		for (int i = 0; i < nv; i++) {
			if ((unsigned)v[i].rule >= BK_RULE_COUNT ||
			    !rules[v[i].rule].enabled)
				fz_fail("verdict for rule %d, which is off", v[i].rule);
			if (!fz_terminated(v[i].evidence, sizeof(v[i].evidence)))
				fz_fail("evidence unterminated");
			if (v[i].kind == BK_V_TRIP && !ev.violating[v[i].rule])
				fz_fail("trip verdict for rule %d that does not violate",
				        v[i].rule);
			if (v[i].kind == BK_V_WARN &&
			    (ev.violating[v[i].rule] || !isfinite(v[i].util) ||
			     v[i].util < warn[0]))
				fz_fail("warning for rule %d at util %g", v[i].rule,
				        v[i].util);
			if (v[i].kind == BK_V_COOLDOWN && ev.violating[v[i].rule])
				fz_fail("cooldown for rule %d that still violates",
				        v[i].rule);
		}
		for (int id = 0; id < BK_RULE_COUNT; id++)
			if (!rules[id].enabled && ev.violating[id])
				fz_fail("rule %d is off but holds a violation", id);
		/*
		 * Found by this target (tests/fuzz/crashes/README.md): a heartbeat
		 * ahead of the daemon's clock read as 0 ms old, forever. Fixed: more
		 * than 1 s ahead counts as that stale. Checked with BK_FUZZ_STRICT=1
		 * (a huge heartbeat.max can still legitimately hold it off).
		 */
		if (strict && rules[BK_RULE_HEARTBEAT].enabled &&
		    snap.heartbeat_ns > now + 1000000000ull &&
		    !ev.violating[BK_RULE_HEARTBEAT])
			fz_fail("heartbeat %llu ns ahead of the daemon's clock holds the "
			        "dead-man switch off",
			        (unsigned long long)(snap.heartbeat_ns - now));
	}
	return 0;
}
