/*
 * bk_metrics_health - the health verdict published with each rendering
 * (/healthz, breaker_health_status, `breaker health`): failing when engines
 * may not be protected or the record may be lost, degraded when a person
 * should look. Loop thread; the HTTP side only adds "the loop stalled".
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bk_daemon.h"

#define STALL_NS (1000ull * 1000 * 1000) /* audit not durable this long: failing */

/* Also a gauge of its own (bk_metrics.c). */
uint64_t bk_metrics_audit_pending(const struct bk_daemon *d)
{
	uint64_t staged = d->audit.next_seq ? d->audit.next_seq - 1 : 0;

	return staged > d->audit.durable_seq ? staged - d->audit.durable_seq : 0;
}

/* Sampled once per rendering: the audit log's progress and the tick overruns. */
static void sample(struct bk_daemon *d, struct bk_metrics *m, uint64_t now)
{
	uint64_t pending = bk_metrics_audit_pending(d), since, ticks, over;

	if (d->audit.durable_seq != m->seen_durable) {
		m->seen_durable = d->audit.durable_seq;
		m->durable_moved_ns = now;
	}
	if (!pending)
		m->pending_since_ns = 0;
	else if (!m->pending_since_ns)
		m->pending_since_ns = now;
	since = m->pending_since_ns > m->durable_moved_ns ? m->pending_since_ns
	                                                  : m->durable_moved_ns;
	m->stalled_ns = pending && now > since ? now - since : 0;
	if (now - m->win_start_ns < 1000000000ull)
		return;
	ticks = d->ctr.tick.count - m->win_ticks;
	over = d->ctr.tick_overruns - m->win_over;
	m->overrun_pct_x100 = ticks ? over * 10000 / ticks : 0;
	m->win_start_ns = now;
	m->win_ticks = d->ctr.tick.count;
	m->win_over = d->ctr.tick_overruns;
}

struct reasons {
	char *buf;
	size_t len, used;
};

static void reason(struct reasons *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reason(struct reasons *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->len - r->used < 4)
		return; /* full: the first reasons are the weightiest */
	if (r->used) {
		memcpy(r->buf + r->used, "; ", 3);
		r->used += 2;
	}
	va_start(ap, fmt);
	n = vsnprintf(r->buf + r->used, r->len - r->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->used +=
		    (size_t)n < r->len - r->used ? (size_t)n : r->len - r->used - 1;
}

/* "failing: ...", "degraded: ..." or "ok", from what this rendering saw. */
static int verdict(struct bk_daemon *d, struct bk_metrics *m, char *out, size_t len)
{
	char fail[BK_HEALTH_TEXT] = "", degr[BK_HEALTH_TEXT] = "";
	struct reasons f = {fail, sizeof(fail), 0}, g = {degr, sizeof(degr), 0};
	uint32_t latches;

	latches = atomic_load_explicit(&d->shm.shm->global.latches, memory_order_relaxed);
	if (latches & (1u << BK_R_AUDIT_CORRUPT))
		reason(
		    &f,
		    "global HALTED by audit_corrupt: the audit log was damaged or lost "
		    "(breaker audit --verify, then a forced resume)");
	if (d->tail.lost)
		reason(&f,
		       "%s: trips hold but are not durable, resumes refused (SIGHUP "
		       "breakerd to write the log anew)",
		       d->tail.why);
	if (m->stalled_ns > STALL_NS)
		reason(&f, "audit records not durable for %.1f s (%llu pending)",
		       (double)m->stalled_ns / 1e9,
		       (unsigned long long)bk_metrics_audit_pending(d));
	if (d->ctr.tel_blind)
		reason(&f, "telemetry segment lost: the rules are blind");
	/* strerrordesc_np: a static string, where strerror may format (and allocate) */
	if (d->flush_err)
		reason(&g, "audit log write failing: %s (trips hold, resumes refused)",
		       strerrordesc_np(-d->flush_err) ? strerrordesc_np(-d->flush_err)
		                                      : "error");
	if (d->tail.head_err)
		reason(
		    &g,
		    "audit head file write failing: %s (a log cut at a record boundary "
		    "would go unnoticed at the next boot)",
		    strerrordesc_np(-d->tail.head_err)
		        ? strerrordesc_np(-d->tail.head_err)
		        : "error");
	if (m->overrun_pct_x100 > 100)
		reason(
		    &g,
		    "tick overruns: %.1f%% of ticks in the last second took longer than "
		    "the %llu us period",
		    (double)m->overrun_pct_x100 / 100,
		    (unsigned long long)(d->cfg.tick_ns / 1000));
	if (m->warnings)
		reason(&g, "%u rule warning%s (%s)", m->warnings,
		       m->warnings == 1 ? "" : "s", m->warn_first);
	if (m->overflow)
		reason(&g, "metrics buffer full: some series were dropped");
	if (m->unflat)
		reason(&g,
		       "%u HALTED engine%s not confirmed flat after 5 s (%s; breaker "
		       "status, cancel at the venue)",
		       m->unflat, m->unflat == 1 ? "" : "s", m->unflat_first);
	if (f.used) {
		snprintf(out, len, "failing: %s%s%s", fail, g.used ? "; " : "", degr);
		return BK_HEALTH_FAILING;
	}
	if (g.used) {
		snprintf(out, len, "degraded: %s", degr);
		return BK_HEALTH_DEGRADED;
	}
	snprintf(out, len, "ok");
	return BK_HEALTH_OK;
}

int bk_metrics_health(struct bk_daemon *d, struct bk_metrics *m, uint64_t now, char *out,
                      size_t len)
{
	sample(d, m, now);
	return verdict(d, m, out, len);
}
