/*
 * bk_rulestate - rule state that survives a restart, and rule changes that
 * leave a trace.
 *
 * Durable through the audit log, nothing else: a RULE_STATE record carries a
 * strategy's baselines (drawdown peak, balance-conservation base) when they
 * moved, at most once a second per strategy (staged from the tick like a
 * rule's trip: no I/O on the tick, the batch writer makes it durable); a
 * RECONCILE record carries a reconciliation and its verdict. Boot replays
 * both. A SIGHUP reload writes a CONFIG record: who sent the signal, a hash
 * of the rules' canonical text, and what changed.
 */
#include <math.h>
#include <stdarg.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "bk_daemon.h"
#include "bk_log.h"
#include "bk_rulestate.h"

/* ---- replay ---------------------------------------------------------------- */

/*
 * A reconciliation from before the restart is restored as it was judged and
 * is never judged again: a break holds its latch's condition (no new trip:
 * the rule already counts it as violating), an old snapshot expires by its
 * wall-clock age, a record from before as-of reconciliation is "unknown".
 */
static void replay_reconcile(struct bk_daemon *d, int slot,
                             const Breaker__AuditRecord *rec)
{
	struct bk_rule_eval *ev = &d->slots[slot].eval;
	struct bk_recon *r = &ev->recon;
	uint64_t max = (uint64_t)d->cfg.rules.recon_max_age_ms * 1000000ull;
	uint64_t wall = bk_now_wall_ns(), mono = bk_now_mono_ns();
	uint64_t at = rec->has_as_of_wall_ns ? rec->as_of_wall_ns : rec->wall_ns;
	int v = bk_recon_verdict_parse(rec->verdict);

	/* as when it was posted: an unknown verdict left a standing break */
	if (v == BK_RV_UNKNOWN && r->verdict == BK_RV_BREAK)
		return;
	r->verdict = v < 0 ? BK_RV_UNKNOWN : (uint8_t)v;
	r->restored = true;
	r->reconciled = rec->measured;
	r->engine = rec->has_engine_position ? rec->engine_position : NAN;
	r->brk = fabs(r->engine - r->reconciled);
	r->limit = rec->threshold;
	r->has_fills = rec->has_as_of_fills;
	r->as_of_fills = rec->as_of_fills;
	r->as_of_wall_ns = at;
	r->posted_wall_ns = rec->wall_ns;
	snprintf(r->why, sizeof(r->why), "%s",
	         v < 0 ? "posted before as-of reconciliation: not judged" : "");
	r->expires_mono_ns = 0;
	if (max && wall > at && wall - at >= max)
		r->expires_mono_ns = 1; /* stale */
	else if (max)
		r->expires_mono_ns = mono + max - (wall > at ? wall - at : 0);
	ev->violating[BK_RULE_RECONCILIATION] = r->verdict == BK_RV_BREAK;
}

static void replay_state(struct bk_daemon *d, int slot, const Breaker__AuditRecord *rec)
{
	struct bk_slot_rules *sr = &d->slots[slot];

	if (rec->has_peak_pnl && isfinite(rec->peak_pnl))
		sr->eval.peak_pnl = sr->rs_peak = rec->peak_pnl;
	if (rec->has_base_balance && rec->has_base_cash && rec->has_base_fees) {
		/* one number: balance - (fill_cash - fees) at the base (records
		 * from before the opening-balance statement carry cash and fees) */
		double base = rec->base_balance - (rec->base_cash - rec->base_fees);

		if (isfinite(base)) {
			sr->eval.base_set = sr->rs_base_set = true;
			sr->eval.base_balance = sr->rs_base_balance = base;
		}
		/* the engine's statement still in the segment is taken again at the
		 * first tick (opening_seq_seen starts at 0); a newer one, or one in
		 * a replaced segment, is a new base: never the tick's timing */
	}
}

void bk_rulestate_replay(struct bk_daemon *d, const Breaker__AuditRecord *rec)
{
	int slot;

	if (!rec->strategy || (slot = bk_state_find(&d->state, rec->strategy)) < 0)
		return;
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__RECONCILE)
		replay_reconcile(d, slot, rec);
	else if (rec->kind == BREAKER__AUDIT_RECORD__KIND__RULE_STATE)
		replay_state(d, slot, rec);
}

/* ---- RULE_STATE records ------------------------------------------------------ */

/* The record itself, off the per-tick path: a zeroed AuditRecord on the
 * stack costs ~0.8 KiB of stores that every call paid before the checks. */
static __attribute__((noinline)) void stage_baselines(struct bk_daemon *d, int slot,
                                                      uint64_t now)
{
	struct bk_slot_rules *sr = &d->slots[slot];
	const struct bk_rule_eval *ev = &sr->eval;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;

	rec.has_kind = 1;
	rec.kind = BREAKER__AUDIT_RECORD__KIND__RULE_STATE;
	rec.strategy = d->state.strategies[slot].name;
	rec.has_peak_pnl = 1;
	rec.peak_pnl = ev->peak_pnl;
	rec.has_base_balance = rec.has_base_cash = rec.has_base_fees = ev->base_set;
	rec.base_balance = ev->base_balance; /* balance - (fill_cash - fees) */
	rec.base_cash = rec.base_fees = 0;
	rec.has_as_of_fills = 1; /* the engine's fill count with these baselines */
	rec.as_of_fills = ev->last_fills;
	rec.reason = "rule baselines (replayed at boot)";
	if (bk_record_stage_system(d, &rec) < 0)
		return;
	d->ctr.rule_state_records++;
	sr->rs_peak = ev->peak_pnl;
	sr->rs_base_set = ev->base_set;
	sr->rs_base_balance = ev->base_balance;
	sr->rs_next_ns = now + BK_RULESTATE_EVERY_NS;
}

void bk_rulestate_tick(struct bk_daemon *d, int slot, uint64_t now)
{
	struct bk_slot_rules *sr = &d->slots[slot];
	const struct bk_rule_eval *ev = &sr->eval;

	if (now < sr->rs_next_ns || !ev->seen)
		return;
	if (ev->peak_pnl == sr->rs_peak &&
	    (ev->base_set == sr->rs_base_set && ev->base_balance == sr->rs_base_balance))
		return;
	if (!bk_pending_can_accept(d))
		return; /* next tick */
	stage_baselines(d, slot, now);
}

uint64_t bk_rulestate_due(const struct bk_daemon *d, int slot)
{
	const struct bk_slot_rules *sr = &d->slots[slot];
	const struct bk_rule_eval *ev = &sr->eval;

	/* the same test as bk_rulestate_tick's, without the time */
	if (!ev->seen ||
	    (ev->peak_pnl == sr->rs_peak && ev->base_set == sr->rs_base_set &&
	     ev->base_balance == sr->rs_base_balance))
		return UINT64_MAX;
	return sr->rs_next_ns;
}

void bk_rulestate_flush(struct bk_daemon *d)
{
	for (uint32_t i = 0; i < d->state.n_strategies; i++)
		if (!d->state.strategies[i].gone) /* no rule state to keep */
			bk_rulestate_tick(d, (int)i,
			                  UINT64_MAX); /* past any rate limit */
}

/* ---- CONFIG records ---------------------------------------------------------- */

static size_t put(char *buf, size_t len, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t put(char *buf, size_t len, size_t at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (at >= len)
		return at;
	va_start(ap, fmt);
	n = vsnprintf(buf + at, len - at, fmt, ap);
	va_end(ap);
	return n < 0 ? at : at + (size_t)n;
}

static size_t rule_lines(char *buf, size_t len, size_t at, const char *pfx,
                         const struct bk_rule_cfg *rules)
{
	for (int i = 0; i < BK_RULE_COUNT; i++) {
		const struct bk_rule_cfg *r = &rules[i];
		const char *n = bk_rule_name((enum bk_rule_id)i);

		at = put(
		    buf, len, at,
		    "%s%s.enabled=%s\n%s%s.max=%.15g\n%s%s.max_pct=%.15g\n"
		    "%s%s.window_ms=%u\n%s%s.min_orders=%u\n%s%s.action=%s\n"
		    "%s%s.scope=%s\n%s%s.cooldown_ms=%u\n%s%s.cooldown_to=%s\n"
		    "%s%s.rearm_ms=%u\n",
		    pfx, n, r->enabled ? "true" : "false", pfx, n, r->max, pfx, n,
		    r->max_pct * 100, pfx, n, r->window_ms, pfx, n, r->min_orders, pfx, n,
		    bk_mode_str((enum bk_mode)r->action), pfx, n,
		    r->global ? "global" : "strategy", pfx, n, r->cooldown_ms, pfx, n,
		    r->cooldown_to ? bk_mode_str((enum bk_mode)r->cooldown_to) : "none",
		    pfx, n, r->rearm_ms);
	}
	return at;
}

size_t bk_rulestate_text(const struct bk_rules_cfg *rc, char *buf, size_t len)
{
	char pfx[BK_NAME_MAX + 8];
	size_t at = 0;

	at = put(buf, len, at,
	         "warn_levels=%.15g,%.15g,%.15g\nreconcile_max_age_ms=%u\n"
	         "resume_requires_reconcile=%s\n",
	         rc->warn[0], rc->warn[1], rc->warn[2], rc->recon_max_age_ms,
	         rc->resume_requires_reconcile ? "true" : "false");
	at = rule_lines(buf, len, at, "", rc->dflt);
	for (int i = 0; i < rc->n_over; i++) {
		snprintf(pfx, sizeof(pfx), "[%s]", rc->over[i].name);
		at = rule_lines(buf, len, at, pfx, rc->over[i].rule);
	}
	return at < len ? at : len - 1;
}

void bk_rulestate_hash(const char *text, size_t n, char out[BK_RULES_HASH_LEN])
{
	uint8_t h[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)text, n, h); /* allocates: SIGHUP only */
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

void bk_rulestate_rehash(struct bk_daemon *d)
{
	static char text[1 << 18]; /* boot and SIGHUP only */

	bk_rulestate_hash(text, bk_rulestate_text(&d->cfg.rules, text, sizeof(text)),
	                  d->rules_hash);
}

/* The value of key (a line "key=value\n") in text, or NULL; *vlen its length. */
static const char *lookup(const char *text, const char *key, size_t klen, size_t *vlen)
{
	for (const char *l = text; *l;) {
		const char *eol = strchr(l, '\n');
		size_t n = eol ? (size_t)(eol - l) : strlen(l);

		if (n > klen && l[klen] == '=' && memcmp(l, key, klen) == 0) {
			*vlen = n - klen - 1;
			return l + klen + 1;
		}
		l += n + (eol ? 1 : 0);
	}
	return NULL;
}

/* "key: a -> b; ..." for every line whose value differs (or that came or went). */
static size_t diff_into(const char *from, const char *to, char *out, size_t len,
                        size_t at, bool gone_only, unsigned *more)
{
	for (const char *l = from; *l;) {
		const char *eol = strchr(l, '\n'), *eq = strchr(l, '='), *v;
		size_t n = eol ? (size_t)(eol - l) : strlen(l), k, vlen = 0;
		size_t before = at;

		if (!eq || eq > l + n)
			break;
		k = (size_t)(eq - l);
		v = lookup(to, l, k, &vlen);
		if (gone_only && !v)
			at = put(out, len, at, "%s%.*s: %.*s -> (none)", at ? "; " : "",
			         (int)k, l, (int)(n - k - 1), eq + 1);
		else if (!gone_only && !v)
			at = put(out, len, at, "%s%.*s: (none) -> %.*s", at ? "; " : "",
			         (int)k, l, (int)(n - k - 1), eq + 1);
		else if (!gone_only && (vlen != n - k - 1 || memcmp(v, eq + 1, vlen)))
			at = put(out, len, at, "%s%.*s: %.*s -> %.*s", at ? "; " : "",
			         (int)k, l, (int)vlen, v, (int)(n - k - 1), eq + 1);
		if (at >= len - 24 && at != before) { /* keep room for the count */
			at = before;
			out[at] = '\0';
			(*more)++;
		}
		l += n + (eol ? 1 : 0);
	}
	return at;
}

size_t bk_rulestate_diff(const char *old, const char *new, char *out, size_t len)
{
	unsigned more = 0;
	size_t at = 0;

	out[0] = '\0';
	at = diff_into(new, old, out, len, at, false, &more); /* changed or added */
	at = diff_into(old, new, out, len, at, true, &more);  /* removed */
	if (more)
		at = put(out, len, at, "%s... %u more", at ? "; " : "", more);
	if (!at)
		at = put(out, len, at, "no change");
	return at;
}
