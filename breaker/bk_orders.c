#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_daemon.h"
#include "bk_log.h"
#include "bk_orders.h"

#define NS_PER_MS         1000000ull
#define DEAD_DEFAULT_NS   (1000 * NS_PER_MS) /* heartbeat rule off: its default */
#define STATUS_ORDERS_MAX 512u               /* entries in one status reply */
#define UNCONFIRMED_TEXT  192

void bk_orders_note_trip(struct bk_daemon *d, uint64_t seq)
{
	struct bk_orders *o = &d->orders;

	o->trip_ns = d->last_trip_mono_ns;
	o->trip_change = d->last_trip_change_seq;
	o->trip_seq = seq;
	o->flat_done = false;
}

void bk_orders_reset(struct bk_daemon *d, int slot)
{
	memset(&d->orders.s[slot], 0, sizeof(d->orders.s[slot]));
}

void bk_orders_report(struct bk_tel_snap *s, const Breaker__Report *r, uint64_t now)
{
	if (r->has_working_orders) {
		s->working = r->working_orders;
		s->working_ns = now;
	}
	if (r->has_md_age_ns) /* older than this daemon's clock: as old as can be */
		s->md_ns = r->md_age_ns < now ? now - r->md_age_ns : 1;
	if (r->has_session_up) {
		s->session = r->session_up ? BK_SESSION_UP : BK_SESSION_DOWN;
		s->session_ns = now;
	}
}

static unsigned word_mode(uint64_t w)
{
	unsigned m = BK_STATE_MODE(w);

	return m > BK_HALTED ? BK_HALTED : m; /* an unknown mode is the strictest */
}

bool bk_orders_halted(const struct bk_daemon *d, int slot)
{
	const struct bk_shm *shm = d->shm.shm;
	uint64_t g = atomic_load_explicit(&shm->global.state, memory_order_relaxed);
	uint64_t s =
	    atomic_load_explicit(&shm->strategies[slot].state, memory_order_relaxed);

	/* the words engines read: group latches are folded into a strategy's */
	return word_mode(g) == BK_HALTED || word_mode(s) == BK_HALTED;
}

void bk_orders_tick_begin(struct bk_daemon *d)
{
	uint64_t g =
	    atomic_load_explicit(&d->shm.shm->global.state, memory_order_relaxed);

	d->orders.global_halted = word_mode(g) == BK_HALTED; /* once per tick */
}

static uint64_t dead_after_ns(const struct bk_daemon *d, int slot)
{
	const struct bk_rule_cfg *r = d->slots[slot].rules;

	if (r && r[BK_RULE_HEARTBEAT].enabled && r[BK_RULE_HEARTBEAT].max > 0)
		return (uint64_t)(r[BK_RULE_HEARTBEAT].max * (double)NS_PER_MS);
	return DEAD_DEFAULT_NS;
}

void bk_orders_tick(struct bk_daemon *d, int slot, const struct bk_tel_snap *snap,
                    uint64_t now)
{
	struct bk_orders *o = &d->orders;
	struct bk_orders_slot *e = &o->s[slot];
	uint64_t w;

	e->working = snap->working;
	e->working_ns = snap->working_ns;
	e->hb_ns = snap->heartbeat_ns;
	e->engine |= snap->working_ns != 0 || snap->heartbeat_ns != 0;
	/* the word engines read: group latches are folded into a strategy's */
	w = atomic_load_explicit(&d->shm.shm->strategies[slot].state,
	                         memory_order_relaxed);
	if (!o->global_halted && word_mode(w) != BK_HALTED) {
		e->halt_ns = e->flat_ns = 0;
		return;
	}
	e->dead = e->hb_ns && now > e->hb_ns && now - e->hb_ns > dead_after_ns(d, slot);
	if (!e->halt_ns) /* halted since the last tick: by the latest trip's flip */
		e->halt_ns =
		    o->trip_ns && o->trip_ns >= o->prev_tick_ns ? o->trip_ns : now;
	if (e->working_ns >= e->halt_ns && e->working_ns) {
		if (e->working == 0 && !e->flat_ns)
			e->flat_ns = e->working_ns;
		else if (e->working > 0 && e->working_ns > e->flat_ns)
			e->flat_ns = 0; /* orders again while halted: not flat */
	}
	if (!e->engine)
		return;
	o->n_engines++;
	if (e->flat_ns) {
		o->n_flat++;
		if (e->flat_ns > o->last_flat_ns)
			o->last_flat_ns = e->flat_ns;
	}
}

/* The last engine's acknowledgement of the latest trip, from its flip; 0: not all. */
static uint64_t block_after(struct bk_daemon *d)
{
	struct bk_orders *o = &d->orders;
	uint64_t worst = 0;

	for (uint32_t i = 0; i < d->state.n_strategies; i++) {
		uint32_t seq, pid;
		uint64_t ns;

		if (!o->s[i].halt_ns || !o->s[i].engine || d->slots[i].is_remote)
			continue;
		bk_tel_ack(&d->tel, (int)i, &seq, &ns, &pid);
		if ((int32_t)(seq - o->trip_change) < 0 || ns < o->trip_ns)
			return 0;
		if (ns - o->trip_ns > worst)
			worst = ns - o->trip_ns;
	}
	return worst ? worst : 1;
}

static void record_flat(struct bk_daemon *d)
{
	struct bk_orders *o = &d->orders;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	uint64_t flat = o->last_flat_ns > o->trip_ns ? o->last_flat_ns - o->trip_ns : 0;
	uint64_t block = block_after(d);
	char text[160];

	snprintf(
	    text, sizeof(text),
	    "all %u engines of the halt flat (0 working orders) %.3f ms after its flip",
	    o->n_engines, (double)flat / 1e6);
	rec.kind = BREAKER__AUDIT_RECORD__KIND__FLAT;
	rec.reason = text;
	rec.has_flat_after_ns = rec.has_engines_flat = rec.has_halt_seq = 1;
	rec.flat_after_ns = flat;
	rec.engines_flat = o->n_engines;
	rec.halt_seq = o->trip_seq;
	rec.has_block_after_ns = block != 0;
	rec.block_after_ns = block;
	if (bk_record_stage_system(d, &rec) < 0)
		bk_err("audit staging failed for the FLAT record: not recorded");
	bk_info("%s", text);
}

void bk_orders_tick_done(struct bk_daemon *d, uint64_t now)
{
	struct bk_orders *o = &d->orders;

	/* judged once the trip is in force and every HALTED engine has answered */
	if (!o->flat_done && o->trip_ns && o->n_engines && o->n_flat == o->n_engines) {
		o->flat_done = true;
		record_flat(d);
	}
	o->n_engines = o->n_flat = 0;
	o->last_flat_ns = 0;
	o->prev_tick_ns = now;
}

bool bk_orders_metric(const struct bk_daemon *d, int slot, uint64_t now,
                      uint64_t *working, uint64_t *unconfirmed_ns)
{
	const struct bk_orders_slot *e = &d->orders.s[slot];

	if (!e->engine)
		return false;
	*working = e->working;
	*unconfirmed_ns =
	    e->halt_ns && !e->flat_ns && now > e->halt_ns ? now - e->halt_ns : 0;
	return true;
}

static bool pid_gone(uint32_t pid)
{
	return pid && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Why slot's orders are not confirmed (text), or NULL if they are known. */
static char *unconfirmed(const struct bk_orders_slot *e, uint32_t pid, bool gone,
                         uint64_t now)
{
	char *t = malloc(UNCONFIRMED_TEXT);
	const char *act = "cancel them at the venue (runbook: cancel-all, confirmed)";

	if (!t)
		return NULL;
	if (e->dead || gone)
		snprintf(t, UNCONFIRMED_TEXT,
		         "engine dead (%s %llu ms ago%s); last reported %llu working: %s",
		         e->hb_ns ? "last heartbeat" : "never beat",
		         e->hb_ns ? (unsigned long long)((now - e->hb_ns) / NS_PER_MS)
		                  : 0ull,
		         gone ? ", pid gone" : "", (unsigned long long)e->working, act);
	else if (!e->working_ns)
		snprintf(t, UNCONFIRMED_TEXT, "no working-orders count ever reported: %s",
		         act);
	else if (e->working_ns < e->halt_ns)
		snprintf(t, UNCONFIRMED_TEXT,
		         "no count reported since the halt (last: %llu working, %llu ms "
		         "before it): %s",
		         (unsigned long long)e->working,
		         (unsigned long long)((e->halt_ns - e->working_ns) / NS_PER_MS),
		         act);
	else {
		free(t);
		return NULL;
	}
	(void)pid;
	return t;
}

void bk_orders_status(struct bk_daemon *d, Breaker__StatusInfo *info, uint64_t now)
{
	uint32_t n = d->state.n_strategies;

	for (uint32_t i = 0; i < n; i++) {
		const struct bk_orders_slot *e = &d->orders.s[i];
		Breaker__EngineOrders *eo;
		uint32_t pid = 0, seq;
		uint64_t ns;
		bool gone;

		if (!e->halt_ns || !e->engine)
			continue;
		if (info->n_orders == STATUS_ORDERS_MAX) { /* counted, not listed */
			info->has_orders_not_listed = 1;
			info->orders_not_listed++;
			continue;
		}
		if (!info->orders &&
		    !(info->orders = calloc(STATUS_ORDERS_MAX, sizeof(*info->orders))))
			return;
		if (!(eo = calloc(1, sizeof(*eo))))
			return;
		breaker__engine_orders__init(eo);
		if (d->tel.tel && !d->slots[i].is_remote)
			bk_tel_ack(&d->tel, (int)i, &seq, &ns, &pid);
		gone = !d->slots[i].is_remote && pid_gone(pid);
		eo->strategy = d->state.strategies[i].name;
		eo->has_pid = pid != 0;
		eo->pid = pid;
		eo->has_working = eo->has_flat = eo->has_since_halt_ns = eo->has_dead = 1;
		eo->working = e->working;
		eo->flat = e->flat_ns != 0;
		eo->has_flat_after_ns = eo->flat;
		eo->flat_after_ns = eo->flat ? e->flat_ns - e->halt_ns : 0;
		eo->since_halt_ns = now > e->halt_ns ? now - e->halt_ns : 0;
		eo->dead = e->dead || gone;
		if (!eo->flat)
			eo->unconfirmed = unconfirmed(e, pid, gone, now);
		info->orders[info->n_orders++] = eo;
	}
}

void bk_orders_status_free(Breaker__StatusInfo *info)
{
	for (size_t i = 0; i < info->n_orders; i++) {
		free(info->orders[i]->unconfirmed);
		free(info->orders[i]);
	}
	free(info->orders);
	info->orders = NULL;
	info->n_orders = 0;
}
