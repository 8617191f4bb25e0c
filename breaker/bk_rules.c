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
	r[BK_RULE_REJECT_RATE] = (struct bk_rule_cfg){.enabled = true, .max = 0.5,
						      .window_ms = 1000, .min_orders = 20,
						      .action = BK_HALTED};
	/* The seeds: a reconciliation break above $1K is SEV-1, global HALTED. */
	r[BK_RULE_RECONCILIATION] = (struct bk_rule_cfg){.enabled = true, .max = 1000,
							 .action = BK_HALTED, .global = true};
	r[BK_RULE_HEARTBEAT] = (struct bk_rule_cfg){.enabled = true, .max = 1000,
						    .action = BK_HALTED};
	r[BK_RULE_INVARIANT] = (struct bk_rule_cfg){.enabled = true, .max = 0.01,
						    .action = BK_HALTED, .global = true};
	cfg->warn[0] = 0.5;
	cfg->warn[1] = 0.75;
	cfg->warn[2] = 0.9;
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
static void window_add(struct bk_window *w, uint32_t window_ms, uint64_t now, uint64_t orders,
		       uint64_t rejects)
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
	double value;	  /* what is compared with the threshold */
	double threshold;
	bool applicable;  /* enough data for a verdict */
	char evidence[BK_EVIDENCE_MAX];
};

static void m_reject_rate(const struct bk_rule_cfg *r, const struct bk_rule_eval *ev,
			  struct measure *m)
{
	const struct bk_window *w = &ev->rej_win;

	m->threshold = r->max;
	m->applicable = w->sum_orders >= r->min_orders && w->sum_orders > 0;
	m->value = w->sum_orders ? (double)w->sum_rejects / (double)w->sum_orders : 0;
	snprintf(m->evidence, sizeof(m->evidence),
		 "%llu rejects / %llu orders = %.4f over %u ms (max %.4f, min orders %u)",
		 (unsigned long long)w->sum_rejects, (unsigned long long)w->sum_orders, m->value,
		 r->window_ms, r->max, r->min_orders);
}

static void m_order_rate(const struct bk_rule_cfg *r, const struct bk_rule_eval *ev,
			 struct measure *m)
{
	double secs = r->window_ms / 1000.0;

	m->threshold = r->max;
	m->applicable = true;
	m->value = secs > 0 ? (double)ev->ord_win.sum_orders / secs : 0;
	snprintf(m->evidence, sizeof(m->evidence), "%llu orders in %u ms = %.1f/s (max %.1f/s)",
		 (unsigned long long)ev->ord_win.sum_orders, r->window_ms, m->value, r->max);
}

static void m_drawdown(const struct bk_rule_cfg *r, const struct bk_rule_eval *ev,
		       const struct bk_tel_snap *s, struct measure *m)
{
	double dd = ev->peak_pnl - s->pnl;
	double u_abs = r->max > 0 ? dd / r->max : 0;
	double u_pct = (r->max_pct > 0 && ev->peak_pnl > 0) ? dd / (ev->peak_pnl * r->max_pct) : 0;

	/* Report against whichever limit is closer to tripping. */
	m->applicable = true;
	if (u_pct > u_abs) {
		m->value = dd / ev->peak_pnl;
		m->threshold = r->max_pct;
	} else {
		m->value = dd;
		m->threshold = r->max;
	}
	snprintf(m->evidence, sizeof(m->evidence),
		 "pnl %.2f, peak %.2f, drawdown %.2f (max %.2f abs, %.2f%% of peak)", s->pnl,
		 ev->peak_pnl, dd, r->max, r->max_pct * 100);
}

static void m_exposure(const struct bk_rule_cfg *r, const struct bk_tel_snap *s,
		       struct measure *m)
{
	m->applicable = true;
	m->threshold = r->max;
	m->value = s->gross;
	snprintf(m->evidence, sizeof(m->evidence), "gross exposure %.2f (max %.2f)", s->gross,
		 r->max);
}

static void m_recon(const struct bk_rule_cfg *r, const struct bk_rule_eval *ev,
		    const struct bk_tel_snap *s, struct measure *m)
{
	m->applicable = ev->recon_set;
	m->threshold = r->max;
	m->value = fabs(s->position - ev->recon_position);
	snprintf(m->evidence, sizeof(m->evidence),
		 "engine position %.2f, reconciled %.2f, break %.2f (max %.2f)", s->position,
		 ev->recon_position, m->value, r->max);
}

static void m_heartbeat(const struct bk_rule_cfg *r, const struct bk_tel_snap *s, uint64_t now,
			struct measure *m)
{
	/* An engine that never beat is not watched: the dead-man switch arms on the first beat. */
	m->applicable = s->heartbeat_ns != 0;
	m->threshold = r->max;
	m->value = (m->applicable && now > s->heartbeat_ns) ? (now - s->heartbeat_ns) / 1e6 : 0;
	snprintf(m->evidence, sizeof(m->evidence), "engine heartbeat %.1f ms old (max %.0f ms)",
		 m->value, r->max);
}

static void m_invariant(const struct bk_rule_cfg *r, const struct bk_rule_eval *ev,
			const struct bk_tel_snap *s, struct measure *m)
{
	double moved = s->balance - ev->base_balance;
	double explained = (s->fill_cash - ev->base_cash) - (s->fees - ev->base_fees);

	m->applicable = ev->base_set;
	m->threshold = r->max;
	m->value = fabs(moved - explained);
	snprintf(m->evidence, sizeof(m->evidence),
		 "balance moved %.4f, fills minus fees explain %.4f, unexplained %.4f (tolerance "
		 "%.4f)",
		 moved, explained, m->value, r->max);
}

static void measure(enum bk_rule_id id, const struct bk_rule_cfg *r,
		    const struct bk_rule_eval *ev, const struct bk_tel_snap *s, uint64_t now,
		    struct measure *m)
{
	memset(m, 0, sizeof(*m));
	switch (id) {
	case BK_RULE_REJECT_RATE: m_reject_rate(r, ev, m); break;
	case BK_RULE_ORDER_RATE: m_order_rate(r, ev, m); break;
	case BK_RULE_DRAWDOWN: m_drawdown(r, ev, s, m); break;
	case BK_RULE_EXPOSURE: m_exposure(r, s, m); break;
	case BK_RULE_RECONCILIATION: m_recon(r, ev, s, m); break;
	case BK_RULE_HEARTBEAT: m_heartbeat(r, s, now, m); break;
	case BK_RULE_INVARIANT: m_invariant(r, ev, s, m); break;
	default: break;
	}
}

/* ---- evaluation -------------------------------------------------------------- */

static void observe(const struct bk_rule_cfg *rules, struct bk_rule_eval *ev,
		    const struct bk_tel_snap *s, uint64_t now)
{
	uint64_t d_ord = 0, d_rej = 0;

	if (ev->seen) {
		/* counters only grow; a smaller value is an engine restart: count from it */
		d_ord = s->orders >= ev->last_orders ? s->orders - ev->last_orders : s->orders;
		d_rej = s->rejects >= ev->last_rejects ? s->rejects - ev->last_rejects : s->rejects;
	}
	ev->seen = true;
	ev->last_orders = s->orders;
	ev->last_rejects = s->rejects;
	window_add(&ev->rej_win, rules[BK_RULE_REJECT_RATE].window_ms, now, d_ord, d_rej);
	window_add(&ev->ord_win, rules[BK_RULE_ORDER_RATE].window_ms, now, d_ord, 0);
	if (s->consistent && s->pnl > ev->peak_pnl)
		ev->peak_pnl = s->pnl;
	if (!ev->base_set && s->consistent && s->heartbeat_ns != 0) {
		ev->base_set = true;
		ev->base_balance = s->balance;
		ev->base_cash = s->fill_cash;
		ev->base_fees = s->fees;
	}
}

static bool money_rule(enum bk_rule_id id)
{
	return id == BK_RULE_DRAWDOWN || id == BK_RULE_EXPOSURE ||
	       id == BK_RULE_RECONCILIATION || id == BK_RULE_INVARIANT;
}

static int verdict(struct bk_verdict *out, int n, int max, enum bk_verdict_kind kind,
		   enum bk_rule_id id, const struct measure *m, double util)
{
	if (n >= max)
		return n;
	out[n].kind = kind;
	out[n].rule = id;
	out[n].measured = m->value;
	out[n].threshold = m->threshold;
	out[n].util = util;
	memcpy(out[n].evidence, m->evidence, sizeof(out[n].evidence));
	return n + 1;
}

int bk_rules_eval(const struct bk_rule_cfg *rules, const double warn[BK_WARN_LEVELS],
		  struct bk_rule_eval *ev, const struct bk_tel_snap *s, uint64_t now,
		  struct bk_verdict *out, int max)
{
	struct measure m;
	int n = 0;

	observe(rules, ev, s, now);
	for (int id = 0; id < BK_RULE_COUNT; id++) {
		const struct bk_rule_cfg *r = &rules[id];
		bool bad_number, was = ev->violating[id];
		double util;
		uint8_t lvl = 0;

		if (!r->enabled || (money_rule(id) && !s->consistent))
			continue;
		measure(id, r, ev, s, now, &m);
		/* NaN/Inf telemetry cannot show the limit holds: treat it as a breach. */
		bad_number = !isfinite(m.value);
		util = m.threshold > 0 && isfinite(m.value) ? m.value / m.threshold : 0;
		ev->util[id] = m.applicable ? util : 0;
		ev->measured[id] = m.value;
		ev->violating[id] = (m.applicable && (bad_number || m.value > m.threshold));
		if (ev->violating[id] && !was) {
			ev->tripped_ns[id] = now;
			n = verdict(out, n, max, BK_V_TRIP, (enum bk_rule_id)id, &m, util);
			continue;
		}
		while (lvl < BK_WARN_LEVELS && m.applicable && util >= warn[lvl])
			lvl++;
		if (lvl > ev->warned[id] && !ev->violating[id])
			n = verdict(out, n, max, BK_V_WARN, (enum bk_rule_id)id, &m, util);
		ev->warned[id] = lvl;
		if (!ev->violating[id] && ev->tripped_ns[id] && r->cooldown_ms &&
		    now - ev->tripped_ns[id] >= (uint64_t)r->cooldown_ms * 1000000ull) {
			ev->tripped_ns[id] = 0;
			n = verdict(out, n, max, BK_V_COOLDOWN, (enum bk_rule_id)id, &m, util);
		}
	}
	return n;
}
