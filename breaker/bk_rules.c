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
	steps = (now - w->bucket_start_ns) / width;
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
	double dd, u_abs, u_pct;

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
		/* against whichever configured limit is closer to tripping */
		dd = ev->peak_pnl - s->pnl;
		u_abs = r->max > 0 ? dd / r->max : -INFINITY;
		u_pct = (r->max_pct > 0 && ev->peak_pnl > 0)
		            ? dd / (ev->peak_pnl * r->max_pct)
		            : -INFINITY;
		m->applicable = r->max > 0 || (r->max_pct > 0 && ev->peak_pnl > 0);
		m->value = u_pct > u_abs ? dd / ev->peak_pnl : dd;
		m->threshold = u_pct > u_abs ? r->max_pct : r->max;
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
		m->applicable = ev->base_set;
		m->value =
		    fabs((s->balance - ev->base_balance) -
		         ((s->fill_cash - ev->base_cash) - (s->fees - ev->base_fees)));
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
	case BK_RULE_DRAWDOWN:
		snprintf(buf, len,
		         "pnl %.2f, peak %.2f, drawdown %.2f (max %.2f abs, %.2f%% "
		         "of peak)",
		         s->pnl, ev->peak_pnl, ev->peak_pnl - s->pnl, r->max,
		         r->max_pct * 100);
		break;
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
		snprintf(buf, len,
		         "balance moved %.4f, fills minus fees explain %.4f, "
		         "unexplained %.4f (tolerance %.4f)",
		         s->balance - ev->base_balance,
		         (s->fill_cash - ev->base_cash) - (s->fees - ev->base_fees),
		         m->value, r->max);
		break;
	default:
		buf[0] = '\0';
	}
}

/* ---- evaluation -------------------------------------------------------------- */

static void observe(const struct bk_rule_cfg *rules, struct bk_rule_eval *ev,
                    const struct bk_tel_snap *s, uint64_t now)
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
	 * Balance conservation's base: until the first fill, balance changes are
	 * the opening balance being posted. Fills going backwards is an engine
	 * restart: its counters begin again, and so does the base.
	 */
	if (s->consistent && s->heartbeat_ns != 0 &&
	    (!ev->base_set || s->fills == 0 || s->fills < ev->last_fills)) {
		ev->base_set = true;
		ev->base_balance = s->balance;
		ev->base_cash = s->fill_cash;
		ev->base_fees = s->fees;
	}
	if (s->consistent)
		ev->last_fills = s->fills;
	if (s->consistent)
		bk_recon_observe(&ev->recon, s->fills, s->position, now);
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

int bk_rules_eval(const struct bk_rule_cfg *rules, const double warn[BK_WARN_LEVELS],
                  struct bk_rule_eval *ev, const struct bk_tel_snap *s, uint64_t now,
                  struct bk_verdict *out, int max)
{
	struct eval_ctx c = {.rules = rules, .ev = ev, .s = s, .out = out, .max = max};
	struct measure m;

	observe(rules, ev, s, now);
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
		/* NaN/Inf telemetry cannot show the limit holds: treat it as a breach */
		ev->violating[id] =
		    m.applicable && (!isfinite(m.value) || m.value > m.threshold);
		if (ev->violating[id] && !was) {
			ev->tripped_ns[id] = now;
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
