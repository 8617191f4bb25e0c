#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bk_mode.h"
#include "bk_venue.h"

#define NS_PER_MS 1000000ull

const char *bk_venue_rule_name(enum bk_venue_rule r)
{
	return r == BK_VR_MD_STALE ? "md_stale" : "session_down";
}

unsigned bk_venue_rule_reason(enum bk_venue_rule r)
{
	return r == BK_VR_MD_STALE ? BK_R_MARKET_DATA_STALE : BK_R_EXCHANGE_DOWN;
}

int bk_venue_rule_of_reason(unsigned reason)
{
	return reason == BK_R_MARKET_DATA_STALE ? BK_VR_MD_STALE
	       : reason == BK_R_EXCHANGE_DOWN   ? BK_VR_SESSION_DOWN
	                                        : -1;
}

static bool live(const struct bk_venue_member *m, uint64_t now)
{
	return m->hb_ns && (now <= m->hb_ns || now - m->hb_ns <= m->dead_after_ns);
}

static uint64_t age_ms(uint64_t now, uint64_t t)
{
	return (now > t ? now - t : 0) / NS_PER_MS;
}

void bk_venue_add(struct bk_venue_agg *a, const struct bk_venue_member *m, uint64_t now)
{
	if (!live(m, now)) /* a dead engine says nothing about the venue */
		return;
	if (m->md_ns) {
		a->md_live++;
		if (m->md_ns > a->freshest_md)
			a->freshest_md = m->md_ns;
	}
	if (m->session != BK_SESSION_UNKNOWN) {
		a->sess_reporting++;
		a->sess_down += m->session == BK_SESSION_DOWN;
	}
}

static void evidence(struct bk_venue_verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void evidence(struct bk_venue_verdict *v, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (v->len + 1 >= sizeof(v->evidence))
		return;
	va_start(ap, fmt);
	n = vsnprintf(v->evidence + v->len, sizeof(v->evidence) - v->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		v->len = (size_t)n < sizeof(v->evidence) - v->len
		             ? v->len + (size_t)n
		             : sizeof(v->evidence) - 1;
}

/* md_stale: the freshest tick among live members that report market data. */
static int judge_md(const struct bk_venue_cfg *cfg, const double warn[BK_WARN_LEVELS],
                    const char *venue, const struct bk_venue_agg *a, uint64_t now,
                    struct bk_venue_eval *ev, struct bk_venue_verdict *out)
{
	double max = cfg->md_stale_ms, util;
	enum bk_verdict_kind kind;
	uint8_t lvl = 0;
	bool was = ev->violating[BK_VR_MD_STALE];

	ev->judged[BK_VR_MD_STALE] = a->md_live > 0;
	ev->threshold[BK_VR_MD_STALE] = max;
	if (!a->md_live) { /* nobody live reports ticks: no verdict, no alarm */
		ev->violating[BK_VR_MD_STALE] = false;
		ev->warned = 0;
		ev->measured[BK_VR_MD_STALE] = 0;
		return 0;
	}
	ev->measured[BK_VR_MD_STALE] =
	    (double)(now > a->freshest_md ? now - a->freshest_md : 0) / NS_PER_MS;
	util = ev->measured[BK_VR_MD_STALE] / max;
	while (lvl < BK_WARN_LEVELS && util >= warn[lvl])
		lvl++;
	ev->violating[BK_VR_MD_STALE] = util > 1.0;
	if (util > 1.0 && !was)
		kind = BK_V_TRIP;
	else if (util <= 1.0 && lvl > ev->warned)
		kind = BK_V_WARN;
	else {
		ev->warned = lvl;
		return 0;
	}
	ev->warned = lvl;
	memset(out, 0, sizeof(*out));
	out->kind = kind;
	out->rule = BK_VR_MD_STALE;
	out->measured = ev->measured[BK_VR_MD_STALE];
	out->threshold = max;
	out->util = util;
	evidence(out,
	         "%s: freshest tick %.0f ms old among %d live engines reporting market "
	         "data (max %.0f ms):",
	         venue, out->measured, a->md_live, max);
	return 1;
}

/* session_down: every live member that reports a session says DOWN. */
static int judge_session(const char *venue, const struct bk_venue_agg *a,
                         struct bk_venue_eval *ev, struct bk_venue_verdict *out)
{
	bool was = ev->violating[BK_VR_SESSION_DOWN];

	ev->judged[BK_VR_SESSION_DOWN] = a->sess_reporting > 0;
	ev->measured[BK_VR_SESSION_DOWN] = a->sess_down;
	ev->threshold[BK_VR_SESSION_DOWN] = a->sess_reporting;
	ev->violating[BK_VR_SESSION_DOWN] =
	    a->sess_reporting > 0 && a->sess_down == a->sess_reporting;
	if (was || !ev->violating[BK_VR_SESSION_DOWN])
		return 0;
	memset(out, 0, sizeof(*out));
	out->kind = BK_V_TRIP;
	out->rule = BK_VR_SESSION_DOWN;
	out->measured = a->sess_down;
	out->threshold = a->sess_reporting;
	out->util = 1.0;
	evidence(out,
	         "%s: order-entry session down for all %d live engines reporting one:",
	         venue, a->sess_reporting);
	return 1;
}

int bk_venue_judge(const struct bk_venue_cfg *cfg, const double warn[BK_WARN_LEVELS],
                   const char *venue, const struct bk_venue_agg *a, uint64_t now,
                   struct bk_venue_eval *ev, struct bk_venue_verdict *out, int max)
{
	int k = 0;

	if (cfg->md_stale_ms && k < max)
		k += judge_md(cfg, warn, venue, a, now, ev, out + k);
	if (cfg->session_down && k < max)
		k += judge_session(venue, a, ev, out + k);
	return k;
}

void bk_venue_evidence(struct bk_venue_verdict *v, const struct bk_venue_member *m,
                       uint64_t now)
{
	if (!live(m, now))
		return;
	if (v->rule == BK_VR_MD_STALE && m->md_ns)
		evidence(v, " %s %llu ms", m->name,
		         (unsigned long long)age_ms(now, m->md_ns));
	else if (v->rule == BK_VR_SESSION_DOWN && m->session == BK_SESSION_DOWN)
		evidence(v, " %s down %llu ms", m->name,
		         (unsigned long long)age_ms(now, m->session_ns));
}
