/*
 * The venue rules' judgement (bk_venue.h), pure logic: which members count,
 * when md_stale and session_down trip, warn, and stay quiet.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "bk_mode.h"
#include "bk_venue.h"

#define MS   1000000ull
#define NOW  (100000 * MS)
#define DEAD (1000 * MS)

static const double warn[BK_WARN_LEVELS] = {0.5, 0.75, 0.9};
static const struct bk_venue_cfg cfg = {
    .md_stale_ms = 500, .session_down = true, .action = BK_HALTED};

static struct bk_venue_member mem(const char *name, uint64_t hb_age_ms,
                                  uint64_t md_age_ms, uint32_t session)
{
	return (struct bk_venue_member){
	    .name = name,
	    .hb_ns = hb_age_ms == UINT64_MAX ? 0 : NOW - hb_age_ms * MS,
	    .md_ns = md_age_ms == UINT64_MAX ? 0 : NOW - md_age_ms * MS,
	    .session = session,
	    .session_ns = NOW - 50 * MS,
	    .dead_after_ns = DEAD,
	};
}

#define NEVER UINT64_MAX

/* What the daemon does: fold the members, judge, then the evidence per member. */
static int judge(const struct bk_venue_cfg *c, struct bk_venue_member *m, int n,
                 struct bk_venue_eval *ev, struct bk_venue_verdict *v, int max)
{
	struct bk_venue_agg a = {0};
	int k;

	for (int i = 0; i < n; i++)
		bk_venue_add(&a, &m[i], NOW);
	k = bk_venue_judge(c, warn, "venue:XETR", &a, NOW, ev, v, max);
	for (int j = 0; j < k; j++)
		for (int i = 0; i < n; i++)
			bk_venue_evidence(&v[j], &m[i], NOW);
	return k;
}

Test(venue, stale_when_the_freshest_live_tick_is_too_old)
{
	struct bk_venue_member m[] = {mem("a", 1, 700, 0), mem("b", 1, 600, 0)};
	struct bk_venue_eval ev = {0};
	struct bk_venue_verdict v[4];
	int n = judge(&cfg, m, 2, &ev, v, 4);

	cr_assert_eq(n, 1);
	cr_assert_eq(v[0].kind, BK_V_TRIP);
	cr_assert_eq(v[0].rule, BK_VR_MD_STALE);
	cr_assert_float_eq(v[0].measured, 600, 1e-9);
	cr_assert(
	    strstr(v[0].evidence, "venue:XETR: freshest tick 600 ms old among 2 live"),
	    "%s", v[0].evidence);
	cr_assert(strstr(v[0].evidence, "a 700 ms b 600 ms"), "%s", v[0].evidence);
	cr_assert_eq(bk_venue_rule_reason(BK_VR_MD_STALE),
	             (unsigned)BK_R_MARKET_DATA_STALE);
	/* edge-triggered: no second trip while it stays stale */
	cr_assert_eq(judge(&cfg, m, 2, &ev, v, 4), 0);
}

Test(venue, one_member_with_fresh_ticks_keeps_the_venue_fresh)
{
	struct bk_venue_member m[] = {mem("a", 1, 5000, 0), mem("b", 1, 10, 0)};
	struct bk_venue_eval ev = {0};
	struct bk_venue_verdict v[4];

	cr_assert_eq(judge(&cfg, m, 2, &ev, v, 4), 0);
	cr_assert_not(ev.violating[BK_VR_MD_STALE]);
}

Test(venue, engines_that_never_report_or_are_dead_are_not_judged)
{
	/* a never reports md; b is dead (its last tick is old, but it is dead);
	 * c never beat: nothing to judge, so no trip */
	struct bk_venue_member m[] = {mem("a", 1, NEVER, 0), mem("b", 5000, 9000, 0),
	                              mem("c", NEVER, 9000, 0)};
	struct bk_venue_eval ev = {0};
	struct bk_venue_verdict v[4];

	cr_assert_eq(judge(&cfg, m, 3, &ev, v, 4), 0);
	cr_assert_not(ev.judged[BK_VR_MD_STALE]);
	cr_assert_not(ev.judged[BK_VR_SESSION_DOWN]);
}

Test(venue, warns_before_it_trips)
{
	struct bk_venue_member m[] = {mem("a", 1, 400, 0)};
	struct bk_venue_eval ev = {0};
	struct bk_venue_verdict v[4];
	int n = judge(&cfg, m, 1, &ev, v, 4);

	cr_assert_eq(n, 1);
	cr_assert_eq(v[0].kind, BK_V_WARN);
	cr_assert_float_eq(v[0].util, 0.8, 1e-9);
	cr_assert_eq(judge(&cfg, m, 1, &ev, v, 4), 0, "a level warns once");
}

Test(venue, session_down_when_every_live_reporting_session_is_down)
{
	struct bk_venue_member m[] = {mem("a", 1, NEVER, BK_SESSION_DOWN),
	                              mem("b", 1, NEVER, BK_SESSION_UP),
	                              mem("c", 1, NEVER, BK_SESSION_UNKNOWN)};
	struct bk_venue_eval ev = {0};
	struct bk_venue_verdict v[4];

	cr_assert_eq(judge(&cfg, m, 3, &ev, v, 4), 0, "b is still up");
	m[1].session = BK_SESSION_DOWN;
	cr_assert_eq(judge(&cfg, m, 3, &ev, v, 4), 1);
	cr_assert_eq(v[0].rule, BK_VR_SESSION_DOWN);
	cr_assert_eq(bk_venue_rule_reason(v[0].rule), (unsigned)BK_R_EXCHANGE_DOWN);
	cr_assert(strstr(v[0].evidence, "session down for all 2 live engines"), "%s",
	          v[0].evidence);
	cr_assert_eq(judge(&cfg, m, 3, &ev, v, 4), 0, "once");
	m[0].session = BK_SESSION_UP; /* recovered: violating clears */
	cr_assert_eq(judge(&cfg, m, 3, &ev, v, 4), 0);
	cr_assert_not(ev.violating[BK_VR_SESSION_DOWN]);
}

Test(venue, off_rules_say_nothing)
{
	struct bk_venue_cfg off = {0};
	struct bk_venue_member m[] = {mem("a", 1, 9000, BK_SESSION_DOWN)};
	struct bk_venue_eval ev = {0};
	struct bk_venue_verdict v[4];

	cr_assert_eq(judge(&off, m, 1, &ev, v, 4), 0);
}
