/*
 * bk_limits_pub - the daemon's side of the published limits (bk_limits.h):
 * each scope's entry in the segment's limits table, written with the scope's
 * state word, and the [limits] min_stage_ms check of a resume.
 *
 * Order: an engine never sees a mode with looser limits than the mode
 * allows. Before the state word changes, the entry is the strictest of what
 * it held and what the new mode wants; after, exactly the new mode's. Both
 * before the change_seq bump (the callers bump it once per batch).
 */
#include <stdio.h>
#include <string.h>

#include "bk_daemon.h"
#include "bk_limits.h"

/* Entry 0: global; 1 + slot: a strategy slot. */
static int entry_of(int slot)
{
	return slot == BK_GLOBAL ? 0 : 1 + slot;
}

/* A scope's own published mode (not folded with anything). */
static int own_mode(const struct bk_daemon *d, const struct bk_scope *sc)
{
	uint64_t since;
	uint32_t mask;

	return (int)BK_STATE_MODE(
	    bk_scope_published(sc, d->audit.durable_seq, &since, &mask));
}

/* What slot's entry holds: its own limits at its own mode (a strategy's
 * folded with each of its groups' at the group's mode). */
static void wanted(const struct bk_daemon *d, int slot, struct bk_limit_set *out)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, slot);

	const struct bk_member *m;

	memset(out, 0, sizeof(*out));
	if (!sc || !d->cfg.limits.any) /* no [limits]: every entry stays empty */
		return;
	bk_limits_effective(&d->cfg.limits, sc->name, own_mode(d, sc), out);
	if (slot < 0)
		return;
	m = &d->state.members[slot];
	for (unsigned i = 0; i < m->n; i++) {
		const struct bk_scope *g = &d->state.groups[m->g[i]];
		struct bk_limit_set gl;

		bk_limits_effective(&d->cfg.limits, g->name, own_mode(d, g), &gl);
		bk_limits_fold(out, &gl);
	}
}

static void current(const struct bk_daemon *d, int entry, struct bk_limit_set *out)
{
	const struct bk_shm_limits *e = &d->shm.shm->limits[entry];
	uint64_t u[3];

	memset(out, 0, sizeof(*out));
	out->flags = atomic_load_explicit(&e->flags, memory_order_relaxed);
	u[0] = atomic_load_explicit(&e->size_factor, memory_order_relaxed);
	u[1] = atomic_load_explicit(&e->max_qty, memory_order_relaxed);
	u[2] = atomic_load_explicit(&e->max_notional, memory_order_relaxed);
	memcpy(&out->size_factor, &u[0], 8);
	memcpy(&out->max_qty, &u[1], 8);
	memcpy(&out->max_notional, &u[2], 8);
}

static void write_entry(struct bk_daemon *d, int entry, const struct bk_limit_set *s)
{
	bk_shm_set_limits(&d->shm, entry, s->flags,
	                  s->flags & BK_LIMIT_SIZE_FACTOR ? s->size_factor : 0,
	                  s->flags & BK_LIMIT_MAX_QTY ? s->max_qty : 0,
	                  s->flags & BK_LIMIT_MAX_NOTIONAL ? s->max_notional : 0);
}

void bk_limits_pub_before(struct bk_daemon *d, int slot, struct bk_limit_set *next)
{
	struct bk_limit_set both;

	wanted(d, slot, next);
	current(d, entry_of(slot), &both);
	bk_limits_fold(&both, next);
	write_entry(d, entry_of(slot), &both);
}

void bk_limits_pub_after(struct bk_daemon *d, int slot, const struct bk_limit_set *next)
{
	write_entry(d, entry_of(slot), next);
}

void bk_limits_in_force(const struct bk_daemon *d, int slot, struct bk_limit_set *out)
{
	current(d, entry_of(slot), out);
}

uint64_t bk_limits_stage_wait_ms(const struct bk_daemon *d, const struct bk_plan *p,
                                 uint64_t wall_ns, char *why, size_t len)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, p->slot);
	const struct bk_limits_scope *ls;
	const struct bk_latch *l;
	uint64_t min_ns, in_ns;
	bool own;
	uint32_t min_ms;

	if (!sc || p->forced || p->all || p->reason == 0)
		return 0; /* --force is audited as forced: no wait */
	l = &sc->latches[p->reason];
	min_ms = bk_limits_min_stage_ms(&d->cfg.limits, sc->name, l->mode);
	if (!min_ms)
		return 0;
	min_ns = (uint64_t)min_ms * 1000000ull;
	in_ns = wall_ns > l->stage_wall_ns ? wall_ns - l->stage_wall_ns : 0;
	if (in_ns >= min_ns)
		return 0;
	own = sc->name[0] && (ls = bk_limits_for(&d->cfg.limits, sc->name)) &&
	      ls->mode[l->mode].has_min_stage;
	snprintf(why, len,
	         "%s %s has been %s for %.1f s; [limits%s%s] %s.min_stage_ms is %u: "
	         "%.1f s left (or --force, audited as forced)",
	         sc->name[0] ? sc->name : "global", bk_reason_name(p->reason),
	         bk_mode_str((enum bk_mode)l->mode), (double)in_ns / 1e9, own ? ":" : "",
	         own ? sc->name : "", bk_limits_mode_key(l->mode), min_ms,
	         (double)(min_ns - in_ns) / 1e9);
	return (min_ns - in_ns + 999999) / 1000000;
}
