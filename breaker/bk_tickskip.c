#include "bk_tickskip.h"

void bk_tickskip_done(struct bk_tickskip *k, int slot, uint64_t sig,
                      const struct bk_tel_snap *snap, bool remote, bool hb_fwd_ok,
                      uint64_t next_ns, uint64_t now)
{
	struct bk_skip_slot *e = &k->s[slot];
	/* staggered by slot: strategies that went quiet together are not all
	 * due on the same tick */
	uint64_t cap =
	    now + BK_SKIP_MAX_NS + (uint64_t)(slot % BK_SKIP_SPREAD) * 100000ull;

	e->sig = sig;
	e->hb_ns = snap->heartbeat_ns;
	e->hb_fwd_ok = hb_fwd_ok;
	e->remote = remote;
	/* a torn read (money words mid-write) judged nothing of the money
	 * rules: judge again next tick */
	e->next_ns = !snap->consistent ? 0 : next_ns < cap ? next_ns : cap;
}
