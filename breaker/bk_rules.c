#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bk_mode.h"
#include "bk_rules.h"

static const char *const rule_names[BK_RULE_COUNT] = {
    [BK_RULE_REJECT_RATE] = "reject_rate",
    [BK_RULE_ORDER_RATE] = "order_rate",
    [BK_RULE_DRAWDOWN] = "drawdown",
    [BK_RULE_EXPOSURE] = "exposure",
    [BK_RULE_RECONCILIATION] = "reconciliation",
    [BK_RULE_HEARTBEAT] = "heartbeat",
    [BK_RULE_INVARIANT] = "invariant",
};

static const unsigned rule_reasons[BK_RULE_COUNT] = {
    [BK_RULE_REJECT_RATE] = BK_R_REJECT_RATE,
    [BK_RULE_ORDER_RATE] = BK_R_ORDER_RATE,
    [BK_RULE_DRAWDOWN] = BK_R_DRAWDOWN,
    [BK_RULE_EXPOSURE] = BK_R_EXPOSURE_LIMIT,
    [BK_RULE_RECONCILIATION] = BK_R_RECONCILIATION_BREAK,
    [BK_RULE_HEARTBEAT] = BK_R_STALE_HEARTBEAT,
    [BK_RULE_INVARIANT] = BK_R_INVARIANT_VIOLATION,
};

const char *bk_rule_name(enum bk_rule_id id)
{
	return (unsigned)id < BK_RULE_COUNT ? rule_names[id] : "unknown";
}

int bk_rule_parse(const char *name)
{
	for (int i = 0; i < BK_RULE_COUNT; i++)
		if (strcmp(name, rule_names[i]) == 0)
			return i;
	return -1;
}

unsigned bk_rule_reason(enum bk_rule_id id)
{
	return rule_reasons[id];
}

void bk_rules_defaults(struct bk_rules_cfg *cfg)
{
	struct bk_rule_cfg *r = cfg->dflt;

	memset(cfg, 0, sizeof(*cfg));
	for (int i = 0; i < BK_RULE_COUNT; i++) {
		r[i].action = BK_HALTED;
		r[i].window_ms = 1000;
	}
	r[BK_RULE_REJECT_RATE] = (struct bk_rule_cfg){.enabled = true,
	                                              .max = 0.5,
	                                              .window_ms = 1000,
	                                              .min_orders = 20,
	                                              .action = BK_HALTED};
	/* The seeds: a reconciliation break above $1K is SEV-1, global HALTED. */
	r[BK_RULE_RECONCILIATION] = (struct bk_rule_cfg){
	    .enabled = true, .max = 1000, .action = BK_HALTED, .global = true};
	r[BK_RULE_HEARTBEAT] =
	    (struct bk_rule_cfg){.enabled = true, .max = 1000, .action = BK_HALTED};
	r[BK_RULE_INVARIANT] = (struct bk_rule_cfg){
	    .enabled = true, .max = 0.01, .action = BK_HALTED, .global = true};
	/* after a forced resume while violated: trip again after a minute */
	for (int i = 0; i < BK_RULE_COUNT; i++)
		r[i].rearm_ms = 60000;
	cfg->warn[0] = 0.5;
	cfg->warn[1] = 0.75;
	cfg->warn[2] = 0.9;
	cfg->recon_max_age_ms = BK_RECON_MAX_AGE_MS;
}

const struct bk_rule_cfg *bk_rules_for(const struct bk_rules_cfg *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_over; i++)
		if (strcmp(cfg->over[i].name, name) == 0)
			return cfg->over[i].rule;
	return cfg->dflt;
}

/* ---- windows ------------------------------------------------------------- */

/* Expire buckets older than the window, then count into the current one. */
static void window_add(struct bk_window *w, uint32_t window_ms, uint64_t now,
                       uint64_t orders, uint64_t rejects)
{
	uint64_t width = (uint64_t)window_ms * 1000000ull / BK_WIN_BUCKETS;
	uint64_t steps;

	if (width == 0)
		width = 1;
	if (w->bucket_start_ns == 0)
		w->bucket_start_ns = now;
	/* most ticks stay in the bucket: no 64-bit division for them */
	steps = now - w->bucket_start_ns < width ? 0 : (now - w->bucket_start_ns) / width;
	if (steps > BK_WIN_BUCKETS)
		steps = BK_WIN_BUCKETS;
	for (uint64_t i = 0; i < steps; i++) {
		w->head = (w->head + 1) % BK_WIN_BUCKETS;
		w->sum_orders -= w->orders[w->head];
		w->sum_rejects -= w->rejects[w->head];
		w->orders[w->head] = 0;
		w->rejects[w->head] = 0;
	}
	if (steps)
		w->bucket_start_ns = now - (now - w->bucket_start_ns) % width;
	if (orders > UINT32_MAX - w->orders[w->head])
		orders = UINT32_MAX - w->orders[w->head];
	if (rejects > UINT32_MAX - w->rejects[w->head])
		rejects = UINT32_MAX - w->rejects[w->head];
	w->orders[w->head] += (uint32_t)orders;
	w->rejects[w->head] += (uint32_t)rejects;
	w->sum_orders += orders;
	w->sum_rejects += rejects;
}

/* ---- measurements ---------------------------------------------------------- */

/*
 * The drawdown limit in money: the absolute max, or max_pct of the peak,
 * whichever is tighter (0 = no limit applies yet: pct only, no peak).
 * *pct says whether the pct limit is the one in force.
 */
static double drawdown_limit(const struct bk_rule_cfg *r, double peak, bool *pct)
{
	double abs_lim = r->max > 0 ? r->max : INFINITY;
	double pct_lim = (r->max_pct > 0 && peak > 0) ? peak * r->max_pct : INFINITY;

	if (pct)
		*pct = pct_lim < abs_lim;
	if (isinf(abs_lim) && isinf(pct_lim))
		return 0;
	return pct_lim < abs_lim ? pct_lim : abs_lim;
}

struct measure {
	double value; /* what is compared with the threshold */
	double threshold;
	bool applicable; /* enough data for a verdict */
};

/* Measurements only: evidence text is formatted when a verdict needs it. */
static void measure(enum bk_rule_id id, const struct bk_rule_cfg *r,
                    const struct bk_rule_eval *ev, const struct bk_tel_snap *s,
                    uint64_t now, struct measure *m)
{
	const struct bk_window *w;
	m->threshold = r->max;
	m->applicable = true;
	m->value = 0;
	switch (id) {
	case BK_RULE_REJECT_RATE:
		w = &ev->rej_win;
		m->applicable = w->sum_orders >= r->min_orders && w->sum_orders > 0;
		m->value =
		    w->sum_orders ? (double)w->sum_rejects / (double)w->sum_orders : 0;
		break;
	case BK_RULE_ORDER_RATE:
		m->value = (double)ev->ord_win.sum_orders * 1000.0 / r->window_ms;
		break;
	case BK_RULE_DRAWDOWN:
		/* money against money: the tighter of the absolute and pct limits */
		m->value = ev->peak_pnl - s->pnl;
		m->threshold = drawdown_limit(r, ev->peak_pnl, NULL);
		m->applicable = m->threshold > 0;
		if (isnan(s->pnl))
			m->value = NAN;
		break;
	case BK_RULE_EXPOSURE:
		m->value = s->gross;
		break;
	case BK_RULE_RECONCILIATION:
		/* judged once when posted, against the engine at the as-of point
		 * (bk_recon.h); the verdict stands until the next one or expiry */
		m->applicable = bk_recon_current(&ev->recon, now);
		m->value = ev->recon.brk;
		m->threshold = ev->recon.limit;
		break;
	case BK_RULE_HEARTBEAT:
		/* the dead-man switch arms on the engine's first beat */
		m->applicable = s->heartbeat_ns != 0;
		m->value = (m->applicable && now > s->heartbeat_ns)
		               ? (now - s->heartbeat_ns) / 1e6
		               : 0;
		/* Far in the future is another clock (CLOCK_REALTIME?) or garbage:
		 * counted as stale by as much, or the dead-man switch is off for
		 * good. A little ahead is the engine writing after our tick began. */
		if (m->applicable && s->heartbeat_ns > now + 1000000000ull)
			m->value = (s->heartbeat_ns - now) / 1e6;
		break;
	case BK_RULE_INVARIANT:
		/* balance = base + fill_cash - fees, the base as stated (0 if not) */
		m->applicable = ev->seen;
		m->value = fabs(s->balance - ev->base_balance - (s->fill_cash - s->fees));
		break;
	default:
		m->applicable = false;
	}
}

/* The numbers behind a verdict, for the audit record and the operator. */
static void evidence(enum bk_rule_id id, const struct bk_rule_cfg *r,
                     const struct bk_rule_eval *ev, const struct bk_tel_snap *s,
                     const struct measure *m, char *buf, size_t len)
{
	char base[96];

	switch (id) {
	case BK_RULE_REJECT_RATE:
		snprintf(buf, len,
		         "%llu rejects / %llu orders = %.4f over %u ms (max %.4f, "
		         "min orders %u)",
		         (unsigned long long)ev->rej_win.sum_rejects,
		         (unsigned long long)ev->rej_win.sum_orders, m->value,
		         r->window_ms, r->max, r->min_orders);
		break;
	case BK_RULE_ORDER_RATE:
		snprintf(buf, len, "%llu orders in %u ms = %.1f/s (max %.1f/s)",
		         (unsigned long long)ev->ord_win.sum_orders, r->window_ms,
		         m->value, r->max);
		break;
	case BK_RULE_DRAWDOWN: {
		bool pct;
		double lim = drawdown_limit(r, ev->peak_pnl, &pct);

		/* which limit is in force, in money, and the other for reference */
		if (pct) {
			if (r->max > 0)
				snprintf(base, sizeof(base), "absolute max %.2f", r->max);
			else
				snprintf(base, sizeof(base), "no absolute max");
			snprintf(buf, len,
			         "pnl %.2f, peak %.2f, drawdown %.2f against the pct "
			         "limit %.2f (max_pct %.2f%% of peak; %s)",
			         s->pnl, ev->peak_pnl, m->value, lim, r->max_pct * 100,
			         base);
			break;
		}
		if (r->max_pct > 0 && ev->peak_pnl > 0)
			snprintf(base, sizeof(base), "max_pct %.2f%% of peak = %.2f",
			         r->max_pct * 100, ev->peak_pnl * r->max_pct);
		else if (r->max_pct > 0)
			snprintf(base, sizeof(base), "max_pct %.2f%%: no peak yet",
			         r->max_pct * 100);
		else
			snprintf(base, sizeof(base), "no max_pct");
		snprintf(buf, len,
		         "pnl %.2f, peak %.2f, drawdown %.2f against the absolute "
		         "limit %.2f (max; %s)",
		         s->pnl, ev->peak_pnl, m->value, lim, base);
		break;
	}
	case BK_RULE_EXPOSURE:
		snprintf(buf, len, "gross exposure %.2f (max %.2f)", s->gross, r->max);
		break;
	case BK_RULE_RECONCILIATION:
		bk_recon_evidence(&ev->recon, buf, len);
		break;
	case BK_RULE_HEARTBEAT:
		snprintf(buf, len, "engine heartbeat %.1f ms old (max %.0f ms)", m->value,
		         r->max);
		break;
	case BK_RULE_INVARIANT:
		if (ev->base_by_rebase)
			snprintf(base, sizeof(base), "rebased by an operator to %.4f",
			         ev->base_balance);
		else if (ev->opening_seq_seen)
			snprintf(base, sizeof(base),
			         "opening statement #%u at fill %llu: %.4f",
			         ev->opening_seq_seen, (unsigned long long)ev->base_fills,
			         ev->base_balance);
		else if (ev->base_set)
			snprintf(base, sizeof(base), "as before the restart: %.4f",
			         ev->base_balance);
		else
			snprintf(base, sizeof(base),
			         "no opening balance stated: 0 "
			         "(bk_report_opening_balance)");
		snprintf(buf, len,
		         "balance %.4f, base %s, fills minus fees %.4f, "
		         "unexplained %.4f (tolerance %.4f)",
		         s->balance, base, s->fill_cash - s->fees, m->value, r->max);
		break;
	default:
		buf[0] = '\0';
	}
}

/* ---- evaluation -------------------------------------------------------------- */

static void observe(const struct bk_rule_cfg *rules, struct bk_rule_eval *ev,
                    struct bk_recon_hist *hist, const struct bk_tel_snap *s, uint64_t now)
{
	uint64_t d_ord = 0, d_rej = 0;

	if (ev->seen) {
		/* counters only grow; a smaller value is an engine restart: count from it
		 */
		d_ord = s->orders >= ev->last_orders ? s->orders - ev->last_orders
		                                     : s->orders;
		d_rej = s->rejects >= ev->last_rejects ? s->rejects - ev->last_rejects
		                                       : s->rejects;
	}
	ev->seen = true;
	ev->last_orders = s->orders;
	ev->last_rejects = s->rejects;
	window_add(&ev->rej_win, rules[BK_RULE_REJECT_RATE].window_ms, now, d_ord, d_rej);
	window_add(&ev->ord_win, rules[BK_RULE_ORDER_RATE].window_ms, now, d_ord, 0);
	if (s->consistent && s->pnl > ev->peak_pnl)
		ev->peak_pnl = s->pnl;
	/*
	 * Balance conservation's base is what the engine stated, with the fill
	 * count and cash at that point folded in by the engine itself: a new
	 * statement is taken whenever it is read, however many fills came
	 * after it in the same tick.
	 */
	if (s->consistent && s->opening_seq != ev->opening_seq_seen) {
		/* seq 0 again: the slot was cleared (a replaced segment): no
		 * statement, base 0, until the engine states one */
		ev->opening_seq_seen = s->opening_seq;
		ev->base_set = s->opening_seq != 0;
		ev->base_balance = s->opening_base;
		ev->base_fills = s->opening_fills;
		ev->base_by_rebase = false;
	}
	if (s->consistent)
		ev->last_fills = s->fills;
	if (s->consistent)
		bk_recon_observe(&ev->recon, hist, s->fills, s->position, now);
}

static bool money_rule(enum bk_rule_id id)
{
	return id == BK_RULE_DRAWDOWN || id == BK_RULE_EXPOSURE ||
	       id == BK_RULE_RECONCILIATION || id == BK_RULE_INVARIANT;
}

struct eval_ctx {
	const struct bk_rule_cfg *rules;
	const struct bk_rule_eval *ev;
	const struct bk_tel_snap *s;
	struct bk_verdict *out;
	int n, max;
};

static void verdict(struct eval_ctx *c, enum bk_verdict_kind kind, enum bk_rule_id id,
                    const struct measure *m, double util)
{
	struct bk_verdict *v = &c->out[c->n];

	if (c->n >= c->max)
		return;
	v->kind = kind;
	v->rule = id;
	v->measured = m->value;
	v->threshold = m->threshold;
	v->util = util;
	evidence(id, &c->rules[id], c->ev, c->s, m, v->evidence, sizeof(v->evidence));
	c->n++;
}

/*
 * A rule still violated after a forced resume trips again when it gets worse
 * than it was at the force, or once its re-arm grace has passed.
 */
static bool rearmed_trip(const struct bk_rule_cfg *r, const struct bk_rule_eval *ev,
                         int id, double util, uint64_t now)
{
	if (!ev->forced[id])
		return false;
	if (!isfinite(util) || util > ev->forced_util[id])
		return true;
	return r->rearm_ms &&
	       now - ev->forced_ns[id] >= (uint64_t)r->rearm_ms * 1000000ull;
}

void bk_rules_rearm(struct bk_rule_eval *ev, enum bk_rule_id id, uint64_t now)
{
	if ((unsigned)id >= BK_RULE_COUNT || !ev->violating[id])
		return;
	ev->forced[id] = true;
	ev->forced_util[id] = ev->util[id];
	ev->forced_ns[id] = now;
}

int bk_rules_rebase(const struct bk_rule_eval *ev, enum bk_rule_id id,
                    const struct bk_tel_snap *s, double *old, double *now)
{
	if (id != BK_RULE_DRAWDOWN && id != BK_RULE_INVARIANT)
		return -EINVAL;
	if (!s->consistent)
		return -EAGAIN;
	if (id == BK_RULE_DRAWDOWN) {
		*old = ev->peak_pnl;
		*now = s->pnl;
	} else {
		*old = ev->base_balance;
		*now = s->balance - (s->fill_cash - s->fees);
	}
	/* a NaN base would make the rule see a breach for ever, or nothing */
	return isfinite(*now) ? 0 : -EAGAIN;
}

void bk_rules_rebase_set(struct bk_rule_eval *ev, enum bk_rule_id id, double value,
                         uint32_t opening_seq)
{
	if (id == BK_RULE_DRAWDOWN) {
		ev->peak_pnl = value;
	} else if (id == BK_RULE_INVARIANT) {
		ev->base_balance = value;
		ev->base_set = true;
		ev->base_by_rebase = true;
		/* the engine's next statement (a newer one) takes over again */
		ev->opening_seq_seen = opening_seq;
	} else {
		return;
	}
	/* a fresh start for the rule: judged from the new base, armed */
	ev->violating[id] = false;
	ev->forced[id] = false;
	ev->warned[id] = 0;
}

int bk_rules_eval(const struct bk_rule_cfg *rules, const double warn[BK_WARN_LEVELS],
                  struct bk_rule_eval *ev, struct bk_recon_hist *hist,
                  const struct bk_tel_snap *s, uint64_t now, struct bk_verdict *out,
                  int max)
{
	struct eval_ctx c = {.rules = rules, .ev = ev, .s = s, .out = out, .max = max};
	struct measure m;

	observe(rules, ev, hist, s, now);
	for (int id = 0; id < BK_RULE_COUNT; id++) {
		const struct bk_rule_cfg *r = &rules[id];
		bool was = ev->violating[id];
		double util;
		uint8_t lvl = 0;

		if (!r->enabled) {
			/* a rule switched off (reload) no longer holds anything up */
			ev->violating[id] = false;
			ev->util[id] = 0;
			continue;
		}
		if (money_rule(id) && !s->consistent)
			continue;
		measure(id, r, ev, s, now, &m);
		util = m.threshold > 0 && isfinite(m.value) ? m.value / m.threshold : 0;
		ev->util[id] = m.applicable ? util : 0;
		ev->measured[id] = m.value;
		ev->threshold[id] = m.threshold;
		/* NaN/Inf telemetry cannot show the limit holds: treat it as a breach */
		ev->violating[id] =
		    m.applicable && (!isfinite(m.value) || m.value > m.threshold);
		if (!ev->violating[id])
			ev->forced[id] = false; /* it holds again: armed as usual */
		if (ev->violating[id] && (!was || rearmed_trip(r, ev, id, util, now))) {
			ev->tripped_ns[id] = now;
			ev->forced[id] = false;
			verdict(&c, BK_V_TRIP, (enum bk_rule_id)id, &m, util);
			continue;
		}
		while (lvl < BK_WARN_LEVELS && m.applicable && util >= warn[lvl])
			lvl++;
		if (lvl > ev->warned[id] && !ev->violating[id])
			verdict(&c, BK_V_WARN, (enum bk_rule_id)id, &m, util);
		ev->warned[id] = lvl;
		if (!ev->violating[id] && ev->tripped_ns[id] && r->cooldown_ms &&
		    now - ev->tripped_ns[id] >= (uint64_t)r->cooldown_ms * 1000000ull) {
			ev->tripped_ns[id] = 0;
			verdict(&c, BK_V_COOLDOWN, (enum bk_rule_id)id, &m, util);
		}
	}
	return c.n;
}

/* ---- when the same telemetry could judge differently ------------------------ */

static uint64_t earlier(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* A window changes by time alone only while it holds something: at its
 * next bucket boundary (window_add's width). */
static uint64_t window_next(const struct bk_window *w, uint32_t window_ms)
{
	uint64_t width = (uint64_t)window_ms * 1000000ull / BK_WIN_BUCKETS;

	if (!w->sum_orders && !w->sum_rejects)
		return UINT64_MAX;
	return w->bucket_start_ns + (width ? width : 1);
}

/* The heartbeat's age reaches the next warning level or the limit. */
static uint64_t heartbeat_next(const struct bk_rule_cfg *r,
                               const double warn[BK_WARN_LEVELS],
                               const struct bk_rule_eval *ev, uint64_t hb, uint64_t now)
{
	uint8_t lvl = ev->warned[BK_RULE_HEARTBEAT];
	double f = 1.0, ns;

	if (!hb || ev->violating[BK_RULE_HEARTBEAT])
		return UINT64_MAX; /* unarmed; or violated: only re-arm (above) */
	if (hb > now)
		return now; /* ahead of our clock: judged every tick until behind */
	if (lvl < BK_WARN_LEVELS && warn[lvl] < f)
		f = warn[lvl];
	ns = f * r->max * 1e6;
	if (!(ns >= 0)) /* NaN: cannot say */
		return now;
	return ns >= 1e18 ? UINT64_MAX : hb + (uint64_t)ns;
}

uint64_t bk_rules_next_ns(const struct bk_rule_cfg *rules,
                          const double warn[BK_WARN_LEVELS],
                          const struct bk_rule_eval *ev, const struct bk_tel_snap *s,
                          uint64_t now, bool *hb_fwd_ok)
{
	uint64_t t =
	    earlier(window_next(&ev->rej_win, rules[BK_RULE_REJECT_RATE].window_ms),
	            window_next(&ev->ord_win, rules[BK_RULE_ORDER_RATE].window_ms));

	/* a fresher heartbeat lowers the age: harmless unless that would clear
	 * a violation (a cooldown step) or a warning level (re-warned later) */
	*hb_fwd_ok =
	    !rules[BK_RULE_HEARTBEAT].enabled ||
	    (!ev->violating[BK_RULE_HEARTBEAT] && !ev->warned[BK_RULE_HEARTBEAT]);
	for (int id = 0; id < BK_RULE_COUNT; id++) {
		const struct bk_rule_cfg *r = &rules[id];

		if (!r->enabled)
			continue;
		if (ev->forced[id] && r->rearm_ms)
			t = earlier(t, ev->forced_ns[id] +
			                   (uint64_t)r->rearm_ms * 1000000ull);
		/* a cooldown steps once due and not violated; a violation that
		 * ends by time alone is a deadline of its own (windows, expiry) */
		if (ev->tripped_ns[id] && r->cooldown_ms && !ev->violating[id])
			t = earlier(t, ev->tripped_ns[id] +
			                   (uint64_t)r->cooldown_ms * 1000000ull);
	}
	if (rules[BK_RULE_HEARTBEAT].enabled)
		t = earlier(t, heartbeat_next(&rules[BK_RULE_HEARTBEAT], warn, ev,
		                              s->heartbeat_ns, now));
	if (rules[BK_RULE_RECONCILIATION].enabled && bk_recon_current(&ev->recon, now) &&
	    ev->recon.expires_mono_ns)
		t = earlier(t, ev->recon.expires_mono_ns);
	return t;
}
