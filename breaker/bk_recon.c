#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bk_recon.h"

static const char *const names[] = {
    [BK_RV_NONE] = "none",           [BK_RV_OK] = "ok",
    [BK_RV_BREAK] = "break",         [BK_RV_UNKNOWN] = "unknown",
    [BK_RV_WITHDRAWN] = "withdrawn",
};

const char *bk_recon_verdict_name(unsigned v)
{
	return v <= BK_RV_WITHDRAWN ? names[v] : "none";
}

int bk_recon_verdict_parse(const char *s)
{
	for (int i = 0; s && i <= BK_RV_WITHDRAWN; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

static const struct bk_recon_point *at(const struct bk_recon_hist *h, uint32_t i)
{
	return &h->p[i & (BK_RECON_HIST - 1)];
}

void bk_recon_observe(struct bk_recon *r, struct bk_recon_hist *h, uint64_t fills,
                      double position, uint64_t now_mono_ns)
{
	/* the hot copy: the ring is touched only when something changed */
	struct bk_recon_point *last = r->n ? &r->last : NULL;

	/* fills going backwards: the engine restarted, its old fill numbers
	 * name other fills; a point in the old session is unknown from now on */
	if (last && fills < last->fills) {
		r->n = 0;
		last = NULL;
	}

	/* NaN != NaN: a NaN position would fill the ring every tick */
	if (last && last->fills == fills &&
	    (last->position == position || (isnan(position) && isnan(last->position))))
		return;
	/* the same fill, a new position: the engine finishing its fill report,
	 * or marks; fold it in unless the latest entry is old enough */
	if (last && last->fills == fills &&
	    now_mono_ns - last->mono_ns < BK_RECON_COALESCE_NS) {
		last->position = position;
		h->p[(r->n - 1) & (BK_RECON_HIST - 1)].position = position;
		return;
	}
	r->last = (struct bk_recon_point){
	    .fills = fills, .position = position, .mono_ns = now_mono_ns};
	h->p[r->n & (BK_RECON_HIST - 1)] = r->last;
	r->n++;
}

/*
 * The entry in force at the point, and when the engine left it (now if it is
 * still there). NULL with r->why set if the history cannot say.
 */
static const struct bk_recon_point *find(struct bk_recon *r,
                                         const struct bk_recon_hist *h, bool has_fills,
                                         uint64_t fills, uint64_t t_mono, uint64_t now,
                                         uint64_t *left)
{
	uint32_t lo = r->n > BK_RECON_HIST ? r->n - BK_RECON_HIST : 0;
	const struct bk_recon_point *p;

	if (r->n == 0) {
		snprintf(r->why, sizeof(r->why),
		         "no telemetry seen for this strategy yet");
		return NULL;
	}
	for (uint32_t i = r->n; i-- > lo;) {
		p = at(h, i);
		*left = i + 1 < r->n ? at(h, i + 1)->mono_ns : now;
		if (has_fills ? p->fills == fills : p->mono_ns <= t_mono)
			return p;
	}
	p = at(h, r->n - 1);
	if (has_fills && fills > p->fills)
		snprintf(r->why, sizeof(r->why),
		         "the engine is at fill %llu, not yet %llu",
		         (unsigned long long)p->fills, (unsigned long long)fills);
	else if (has_fills && fills > at(h, lo)->fills)
		snprintf(r->why, sizeof(r->why),
		         "fill %llu was not seen on its own (several fills in one tick)",
		         (unsigned long long)fills);
	else if (has_fills)
		snprintf(r->why, sizeof(r->why),
		         "fill %llu is not in the history (oldest kept: fill %llu)",
		         (unsigned long long)fills, (unsigned long long)at(h, lo)->fills);
	else
		snprintf(r->why, sizeof(r->why),
		         "the as-of time is older than the history (%.3f s kept)",
		         (double)(now - at(h, lo)->mono_ns) / 1e9);
	return NULL;
}

static enum bk_recon_verdict judge(struct bk_recon *r, const struct bk_recon_hist *h,
                                   double reconciled, bool has_fills,
                                   uint64_t as_of_fills, uint64_t as_of_wall_ns,
                                   double limit, uint32_t max_age_ms,
                                   uint64_t now_mono_ns, uint64_t now_wall_ns)
{
	const struct bk_recon_point *p;
	uint64_t t_mono = now_mono_ns, left = now_mono_ns;

	r->restored = false;
	r->reconciled = reconciled;
	r->has_fills = has_fills;
	r->as_of_fills = as_of_fills;
	r->as_of_wall_ns = as_of_wall_ns ? as_of_wall_ns : now_wall_ns;
	r->posted_wall_ns = now_wall_ns;
	r->limit = limit;
	r->why[0] = '\0';
	/* wall to mono by the offset now; a time ahead of now is now */
	if (!has_fills && as_of_wall_ns && as_of_wall_ns < now_wall_ns)
		t_mono = now_wall_ns - as_of_wall_ns > now_mono_ns
		             ? 0
		             : now_mono_ns - (now_wall_ns - as_of_wall_ns);
	p = find(r, h, has_fills, as_of_fills, t_mono, now_mono_ns, &left);
	if (!p) {
		r->engine = NAN;
		r->brk = NAN;
		r->expires_mono_ns = 0;
		return r->verdict = BK_RV_UNKNOWN;
	}
	if (!has_fills)
		left = t_mono; /* the statement's own time */
	r->engine = p->position;
	r->brk = fabs(p->position - reconciled);
	r->expires_mono_ns = max_age_ms ? left + (uint64_t)max_age_ms * 1000000ull : 0;
	if (r->expires_mono_ns && r->expires_mono_ns <= now_mono_ns) {
		snprintf(r->why, sizeof(r->why),
		         "older than reconcile_max_age_ms (%u ms) when posted",
		         max_age_ms);
		r->expires_mono_ns = 0;
		return r->verdict = BK_RV_UNKNOWN;
	}
	/* NaN cannot show the positions agree */
	return r->verdict =
	           (!isfinite(r->brk) || r->brk > limit) ? BK_RV_BREAK : BK_RV_OK;
}

/*
 * Fail safe: a reconciliation that cannot be judged ("unknown") does not
 * clear a break that stands; only an "ok", a withdrawal or expiry does.
 */
enum bk_recon_verdict bk_recon_post(struct bk_recon *r, const struct bk_recon_hist *h,
                                    double reconciled, bool has_fills,
                                    uint64_t as_of_fills, uint64_t as_of_wall_ns,
                                    double limit, uint32_t max_age_ms,
                                    uint64_t now_mono_ns, uint64_t now_wall_ns)
{
	char saved[offsetof(struct bk_recon, n)], why[96];
	bool held = r->verdict == BK_RV_BREAK && bk_recon_current(r, now_mono_ns);
	enum bk_recon_verdict v;

	memcpy(saved, r, sizeof(saved)); /* the verdict, not the history */
	v = judge(r, h, reconciled, has_fills, as_of_fills, as_of_wall_ns, limit,
	          max_age_ms, now_mono_ns, now_wall_ns);
	r->kept_break = false;
	if (v != BK_RV_UNKNOWN || !held)
		return v;
	memcpy(why, r->why, sizeof(why));
	memcpy(r, saved, sizeof(saved));
	snprintf(r->why, sizeof(r->why), "%.60s; the earlier break stands", why);
	r->kept_break = true;
	return v;
}

void bk_recon_withdraw(struct bk_recon *r, uint64_t now_wall_ns)
{
	r->verdict = BK_RV_WITHDRAWN;
	r->restored = false;
	r->posted_wall_ns = now_wall_ns;
	r->expires_mono_ns = 0;
}

bool bk_recon_active(const struct bk_recon *r)
{
	return r->n > 1 || (r->n == 1 && (r->last.fills || r->last.position != 0));
}

bool bk_recon_current(const struct bk_recon *r, uint64_t now_mono_ns)
{
	if (r->verdict != BK_RV_OK && r->verdict != BK_RV_BREAK)
		return false;
	return !r->expires_mono_ns || now_mono_ns < r->expires_mono_ns;
}

void bk_recon_evidence(const struct bk_recon *r, char *buf, size_t len)
{
	char at[48];

	if (r->has_fills)
		snprintf(at, sizeof(at), "fill %llu", (unsigned long long)r->as_of_fills);
	else {
		time_t sec = (time_t)(r->as_of_wall_ns / 1000000000ull);
		struct tm tm;
		size_t k =
		    gmtime_r(&sec, &tm) ? strftime(at, sizeof(at), "%FT%T", &tm) : 0;

		snprintf(at + k, sizeof(at) - k, ".%06lluZ",
		         (unsigned long long)(r->as_of_wall_ns % 1000000000ull / 1000));
	}
	if (r->verdict == BK_RV_UNKNOWN || r->verdict == BK_RV_WITHDRAWN ||
	    r->verdict == BK_RV_NONE)
		snprintf(buf, len, "as of %s: reconciled %.2f, verdict %s%s%s", at,
		         r->reconciled, bk_recon_verdict_name(r->verdict),
		         r->why[0] ? ": " : "", r->why);
	else
		snprintf(buf, len,
		         "as of %s: engine position %.2f, reconciled %.2f, break %.2f "
		         "(max %.2f), verdict %s",
		         at, r->engine, r->reconciled, r->brk, r->limit,
		         bk_recon_verdict_name(r->verdict));
}
