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

static bool live(const struct bk_venue_member *m, uint64_t now)
{
	return m->hb_ns && (now <= m->hb_ns || now - m->hb_ns <= m->dead_after_ns);
}

/* Append "name 812 ms" style text; keeps buf NUL-terminated. */
static size_t cat(char *buf, size_t off, size_t len, const char *fmt, const char *name,
                  unsigned long long v)
{
	int n;

	if (off + 1 >= len)
		return off;
	n = snprintf(buf + off, len - off, fmt, name, v);
	return n < 0 ? off : (size_t)n < len - off ? off + (size_t)n : len - 1;
}

/* md_stale: the freshest tick among live members that report market data. */
static int judge_md(const struct bk_venue_cfg *cfg, const double warn[BK_WARN_LEVELS],
                    const char *venue, const struct bk_venue_member *m, int n,
                    uint64_t now, struct bk_venue_eval *ev, struct bk_venue_verdict *out)
{
	uint64_t freshest = 0, age;
	double max = cfg->md_stale_ms, util;
	int judged = 0, k = 0;
	uint8_t lvl = 0;
	size_t off;

	for (int i = 0; i < n; i++)
		if (live(&m[i], now) && m[i].md_ns) {
			judged++;
			freshest = m[i].md_ns > freshest ? m[i].md_ns : freshest;
		}
	ev->judged[BK_VR_MD_STALE] = judged > 0;
	ev->threshold[BK_VR_MD_STALE] = max;
	if (!judged) { /* nobody live reports ticks: no verdict, and no alarm */
		ev->violating[BK_VR_MD_STALE] = false;
		ev->warned = 0;
		ev->measured[BK_VR_MD_STALE] = 0;
		return 0;
	}
	age = now > freshest ? now - freshest : 0;
	ev->measured[BK_VR_MD_STALE] = (double)age / NS_PER_MS;
	util = ev->measured[BK_VR_MD_STALE] / max;
	while (lvl < BK_WARN_LEVELS && util >= warn[lvl])
		lvl++;
	if (util > 1.0 && !ev->violating[BK_VR_MD_STALE])
		out[k].kind = BK_V_TRIP;
	else if (util <= 1.0 && lvl > ev->warned)
		out[k].kind = BK_V_WARN;
	else
		k = -1;
	ev->violating[BK_VR_MD_STALE] = util > 1.0;
	ev->warned = lvl;
	if (k < 0)
		return 0;
	out[k].rule = BK_VR_MD_STALE;
	out[k].measured = ev->measured[BK_VR_MD_STALE];
	out[k].threshold = max;
	out[k].util = util;
	off = (size_t)snprintf(out[k].evidence, sizeof(out[k].evidence),
	                       "%s: freshest tick %.0f ms old among %d live engines "
	                       "reporting market data (max %.0f ms):",
	                       venue, out[k].measured, judged, max);
	for (int i = 0; i < n; i++)
		if (live(&m[i], now) && m[i].md_ns)
			off =
			    cat(out[k].evidence, off, sizeof(out[k].evidence),
			        " %s %llu ms", m[i].name,
			        (unsigned long long)((now > m[i].md_ns ? now - m[i].md_ns
			                                               : 0) /
			                             NS_PER_MS));
	return 1;
}

/* session_down: every live member that reports a session says DOWN. */
static int judge_session(const char *venue, const struct bk_venue_member *m, int n,
                         uint64_t now, struct bk_venue_eval *ev,
                         struct bk_venue_verdict *out)
{
	int reporting = 0, down = 0;
	bool was = ev->violating[BK_VR_SESSION_DOWN];
	size_t off;

	for (int i = 0; i < n; i++)
		if (live(&m[i], now) && m[i].session != BK_SESSION_UNKNOWN) {
			reporting++;
			down += m[i].session == BK_SESSION_DOWN;
		}
	ev->judged[BK_VR_SESSION_DOWN] = reporting > 0;
	ev->measured[BK_VR_SESSION_DOWN] = down;
	ev->threshold[BK_VR_SESSION_DOWN] = reporting;
	ev->violating[BK_VR_SESSION_DOWN] = reporting > 0 && down == reporting;
	if (was || !ev->violating[BK_VR_SESSION_DOWN])
		return 0;
	out->kind = BK_V_TRIP;
	out->rule = BK_VR_SESSION_DOWN;
	out->measured = down;
	out->threshold = reporting;
	out->util = 1.0;
	off = (size_t)snprintf(out->evidence, sizeof(out->evidence),
	                       "%s: order-entry session down for all %d live engines "
	                       "reporting one:",
	                       venue, reporting);
	for (int i = 0; i < n; i++)
		if (live(&m[i], now) && m[i].session == BK_SESSION_DOWN)
			off = cat(out->evidence, off, sizeof(out->evidence),
			          " %s down %llu ms", m[i].name,
			          (unsigned long long)((now > m[i].session_ns
			                                    ? now - m[i].session_ns
			                                    : 0) /
			                               NS_PER_MS));
	return 1;
}

int bk_venue_judge(const struct bk_venue_cfg *cfg, const double warn[BK_WARN_LEVELS],
                   const char *venue, const struct bk_venue_member *m, int n,
                   uint64_t now, struct bk_venue_eval *ev, struct bk_venue_verdict *out,
                   int max)
{
	int k = 0;

	if (cfg->md_stale_ms && k < max)
		k += judge_md(cfg, warn, venue, m, n, now, ev, out + k);
	if (cfg->session_down && k < max)
		k += judge_session(venue, m, n, now, ev, out + k);
	return k;
}
