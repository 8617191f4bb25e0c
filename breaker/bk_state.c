#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_group.h"
#include "bk_hash.h"
#include "bk_state.h"

int bk_state_init(struct bk_state *st)
{
	memset(st, 0, sizeof(*st));
	st->strategies = calloc(BK_MAX_STRATEGIES, sizeof(*st->strategies));
	st->groups = calloc(BK_MAX_GROUPS, sizeof(*st->groups));
	st->members = calloc(BK_MAX_STRATEGIES, sizeof(*st->members));
	if (!st->strategies || !st->groups || !st->members) {
		bk_state_free(st);
		return -ENOMEM;
	}
	return 0;
}

void bk_state_free(struct bk_state *st)
{
	free(st->strategies);
	free(st->groups);
	free(st->members);
	st->strategies = NULL;
	st->groups = NULL;
	st->members = NULL;
}

bool bk_strategy_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= BK_NAME_MAX)
		return false;
	for (; *name; name++) {
		char c = *name;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
		      c == ':'))
			return false;
	}
	return true;
}

/* FNV-1a (bk_hash.h): names are short and few; the index is twice the capacity. */
static uint32_t name_hash(const char *s)
{
	return bk_fnv1a(s);
}

int bk_state_find(const struct bk_state *st, const char *name)
{
	uint32_t i = name_hash(name) & (BK_STATE_INDEX - 1);
	int16_t v;

	while ((v = st->index[i]) != 0) {
		if (strcmp(st->strategies[v - 1].name, name) == 0)
			return v - 1;
		i = (i + 1) & (BK_STATE_INDEX - 1);
	}
	return -ENOENT;
}

int bk_state_register(struct bk_state *st, const char *name)
{
	uint32_t i = name_hash(name) & (BK_STATE_INDEX - 1);
	int slot;

	if (!bk_strategy_name_valid(name))
		return -EINVAL;
	if (bk_state_find(st, name) >= 0)
		return -EEXIST;
	if (st->n_strategies >= BK_MAX_STRATEGIES)
		return -ENOSPC;
	slot = (int)st->n_strategies++;
	memcpy(st->strategies[slot].name, name, strlen(name) + 1);
	while (st->index[i] != 0)
		i = (i + 1) & (BK_STATE_INDEX - 1);
	st->index[i] = (int16_t)(slot + 1);
	return slot;
}

/* The index has no deletion: after a name leaves, build it again (4,096
 * names at most; unregister and rename are rare operator commands). */
static void index_rebuild(struct bk_state *st)
{
	memset(st->index, 0, sizeof(st->index));
	for (uint32_t s = 0; s < st->n_strategies; s++) {
		uint32_t i;

		if (st->strategies[s].gone)
			continue;
		i = name_hash(st->strategies[s].name) & (BK_STATE_INDEX - 1);
		while (st->index[i] != 0)
			i = (i + 1) & (BK_STATE_INDEX - 1);
		st->index[i] = (int16_t)(s + 1);
	}
}

int bk_state_unregister(struct bk_state *st, int slot)
{
	struct bk_scope *sc;

	if (slot < 0 || (uint32_t)slot >= st->n_strategies)
		return -ENOENT;
	sc = &st->strategies[slot];
	if (sc->gone)
		return -ENOENT;
	/* a tombstone belongs to no group (replay does the same) */
	while (st->members && st->members[slot].n)
		bk_group_leave(st, slot, st->members[slot].g[0]);
	sc->gone = true;
	st->n_gone++;
	sc->name[0] = '\0';
	index_rebuild(st);
	return 0;
}

int bk_state_rename(struct bk_state *st, int slot, const char *name)
{
	struct bk_scope *sc;

	if (slot < 0 || (uint32_t)slot >= st->n_strategies || st->strategies[slot].gone)
		return -ENOENT;
	if (!bk_strategy_name_valid(name))
		return -EINVAL;
	if (bk_state_find(st, name) >= 0)
		return -EEXIST;
	sc = &st->strategies[slot];
	memcpy(sc->name, name, strlen(name) + 1);
	index_rebuild(st);
	return 0;
}

struct bk_scope *bk_state_scope(struct bk_state *st, int slot)
{
	if (slot == BK_GLOBAL)
		return &st->global;
	if (BK_SLOT_IS_GROUP(slot))
		return (uint32_t)BK_SLOT_GROUP(slot) < st->n_groups
		           ? &st->groups[BK_SLOT_GROUP(slot)]
		           : NULL;
	if (slot < 0 || (uint32_t)slot >= st->n_strategies)
		return NULL;
	return &st->strategies[slot];
}

const struct bk_scope *bk_state_cscope(const struct bk_state *st, int slot)
{
	return bk_state_scope((struct bk_state *)st, slot);
}

uint8_t bk_scope_mode(const struct bk_scope *sc)
{
	uint8_t m = BK_ACTIVE;

	for (unsigned r = 0; r < BK_REASON_COUNT; r++)
		if (sc->latches[r].mode > m)
			m = sc->latches[r].mode;
	return m;
}

Breaker__Status bk_state_plan_trip(const struct bk_state *st, int slot, int reason,
                                   int mode, struct bk_plan *p, const char **why)
{
	const struct bk_scope *sc = bk_state_cscope(st, slot);

	if (!sc) {
		*why = "unknown strategy";
		return BREAKER__STATUS__ERR_UNKNOWN_STRATEGY;
	}
	if (reason <= 0 || reason >= BK_REASON_COUNT) {
		*why = "unknown reason code";
		return BREAKER__STATUS__ERR_UNKNOWN_REASON;
	}
	if (mode < BK_CAUTIOUS || mode > BK_HALTED) {
		*why = "a trip's mode must be cautious, reduce-only or halted";
		return BREAKER__STATUS__ERR_BAD_REQUEST;
	}
	memset(p, 0, sizeof(*p));
	p->slot = slot;
	p->reason = (unsigned)reason;
	/* Trips only raise a latch: a lower trip leaves it where it is. */
	p->target =
	    mode > sc->latches[reason].mode ? (uint8_t)mode : sc->latches[reason].mode;
	p->from_mode = bk_scope_mode(sc);
	p->to_mode = p->target > p->from_mode ? p->target : p->from_mode;
	return BREAKER__STATUS__OK;
}

/* "manual_halt, reject_rate" */
static void latch_list(const struct bk_scope *sc, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned r = 1; r < BK_REASON_COUNT && off < len; r++)
		if (sc->active & (1u << r))
			off += (size_t)snprintf(buf + off, len - off, "%s%s",
			                        off ? ", " : "", bk_reason_name(r));
}

static const char *scope_label(const struct bk_scope *sc)
{
	return sc->name[0] ? sc->name : "global";
}

/* Which latch a resume acts on; 0 = all (forced). */
static Breaker__Status pick_latch(const struct bk_scope *sc, int reason, bool force,
                                  int *out, char *why, size_t len)
{
	char held[256];

	latch_list(sc, held, sizeof(held));
	if (sc->active == 0) {
		snprintf(why, len, "%s is not tripped", scope_label(sc));
		return BREAKER__STATUS__ERR_NOT_TRIPPED;
	}
	if (reason > 0) {
		if (!(sc->active & (1u << reason))) {
			snprintf(why, len, "%s has no %s latch (held by: %s)",
			         scope_label(sc), bk_reason_name((unsigned)reason), held);
			return BREAKER__STATUS__ERR_NOT_TRIPPED;
		}
		*out = reason;
		return BREAKER__STATUS__OK;
	}
	if (__builtin_popcount(sc->active) == 1) {
		*out = __builtin_ctz(sc->active);
		return BREAKER__STATUS__OK;
	}
	if (!force) {
		snprintf(why, len,
		         "%s is held by %s: name one with --reason-code, or --force to "
		         "lower every latch together by one stage (or to --to)",
		         scope_label(sc), held);
		return BREAKER__STATUS__ERR_AMBIGUOUS;
	}
	*out = 0;
	return BREAKER__STATUS__OK;
}

/* Scope mode if the plan's latch(es) went to target. */
static uint8_t mode_after(const struct bk_scope *sc, unsigned latch, uint8_t target)
{
	uint8_t m = BK_ACTIVE;

	for (unsigned r = 0; r < BK_REASON_COUNT; r++) {
		uint8_t lm = sc->latches[r].mode;
		if (latch == 0 || r == latch)
			lm = lm < target ? lm : target;
		m = lm > m ? lm : m;
	}
	return m;
}

Breaker__Status bk_state_plan_resume(const struct bk_state *st, int slot, int reason,
                                     int to, bool force, struct bk_plan *p, char *why,
                                     size_t len)
{
	const struct bk_scope *sc = bk_state_cscope(st, slot);
	Breaker__Status s;
	uint8_t cur;
	int latch;

	if (!sc) {
		snprintf(why, len, "unknown strategy");
		return BREAKER__STATUS__ERR_UNKNOWN_STRATEGY;
	}
	if (reason == 0 || reason >= BK_REASON_COUNT) {
		snprintf(why, len, "unknown reason code %d", reason);
		return BREAKER__STATUS__ERR_UNKNOWN_REASON;
	}
	if (to >= 0 && !bk_mode_valid(to)) {
		snprintf(why, len, "unknown target mode %d", to);
		return BREAKER__STATUS__ERR_BAD_REQUEST;
	}
	s = pick_latch(sc, reason, force, &latch, why, len);
	if (s != BREAKER__STATUS__OK)
		return s;
	cur = latch ? sc->latches[latch].mode : bk_scope_mode(sc);
	if (to < 0)
		to = cur - 1;
	if (to >= cur) {
		snprintf(why, len,
		         "%s %s is %s: a resume must go to a less restrictive mode",
		         scope_label(sc), latch ? bk_reason_name((unsigned)latch) : "",
		         bk_mode_str((enum bk_mode)cur));
		return BREAKER__STATUS__ERR_NOT_A_RESUME;
	}
	if (!force && to < cur - 1) {
		snprintf(why, len,
		         "%s -> %s skips %s: resume one stage at a time, or --force",
		         bk_mode_str((enum bk_mode)cur), bk_mode_str((enum bk_mode)to),
		         bk_mode_str((enum bk_mode)(cur - 1)));
		return BREAKER__STATUS__ERR_STAGE_SKIP;
	}
	if (!force && latch == BK_R_AUDIT_CORRUPT) {
		snprintf(why, len,
		         "audit_corrupt is cleared only by a forced resume, after "
		         "the damaged log has been examined");
		return BREAKER__STATUS__ERR_STAGE_SKIP;
	}
	memset(p, 0, sizeof(*p));
	p->slot = slot;
	p->resume = true;
	p->reason = (unsigned)latch;
	p->all = latch == 0;
	p->forced = force;
	p->target = (uint8_t)to;
	p->from_mode = bk_scope_mode(sc);
	p->to_mode = mode_after(sc, p->reason, p->target);
	return BREAKER__STATUS__OK;
}

static void latch_set(struct bk_scope *sc, unsigned r, uint8_t mode)
{
	sc->latches[r].mode = mode;
	if (mode == BK_ACTIVE)
		sc->active &= ~(1u << r);
	else
		sc->active |= 1u << r;
}

/* Copy, cutting at a character boundary: status must not show half a rune. */
static void utf8_copy(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	if (n >= len) {
		n = len - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void latch_raise(struct bk_scope *sc, unsigned r, const struct bk_plan *p,
                        const struct bk_actor *who, uint64_t wall_ns, const char *reason,
                        uint64_t seq)
{
	struct bk_latch *l = &sc->latches[r];

	/* An operator's trip makes the latch the operator's even where it finds
	 * it held already (by a rule, say): a rule's cooldown must not release
	 * a halt an operator asked for. */
	if (l->mode == BK_ACTIVE)
		l->operator_owned = false;
	if (p->by_operator)
		l->operator_owned = true;
	if (p->target <= l->mode)
		return; /* already at or above: the first tripper keeps the latch */
	latch_set(sc, r, p->target);
	l->audit_seq = seq;
	l->since_wall_ns = wall_ns;
	l->stage_wall_ns = wall_ns;
	l->actor = *who;
	utf8_copy(l->reason, sizeof(l->reason), reason ? reason : "");
}

static void latch_lower(struct bk_scope *sc, unsigned r, uint8_t target, uint64_t seq,
                        uint64_t durable_seq, bool hold)
{
	struct bk_latch *l = &sc->latches[r];

	if (target >= l->mode)
		return;
	if (hold) {
		/* Pending resumes stack: hold the highest until the last is durable. */
		if (l->hold_seq <= durable_seq || l->mode > l->hold_mode)
			l->hold_mode = l->mode;
		l->hold_seq = seq;
		sc->held |= 1u << r;
	}
	latch_set(sc, r, target);
	if (target == BK_ACTIVE)
		l->operator_owned = false;
}

void bk_state_apply(struct bk_state *st, const struct bk_plan *p,
                    const struct bk_actor *who, uint64_t wall_ns, const char *reason,
                    uint64_t seq, uint64_t durable_seq, bool hold)
{
	struct bk_scope *sc = bk_state_scope(st, p->slot);

	if (!sc)
		return;
	if (!p->resume) {
		latch_raise(sc, p->reason, p, who, wall_ns, reason, seq);
		return;
	}
	for (unsigned r = 1; r < BK_REASON_COUNT; r++)
		if ((p->all || r == p->reason) && (sc->active & (1u << r))) {
			if (p->target < sc->latches[r].mode)
				sc->latches[r].stage_wall_ns = wall_ns;
			latch_lower(sc, r, p->target, seq, durable_seq, hold);
		}
}

uint64_t bk_scope_published(const struct bk_scope *sc, uint64_t durable_seq,
                            uint64_t *since, uint32_t *mask)
{
	const struct bk_latch *win = NULL;
	uint8_t best = BK_ACTIVE;
	unsigned win_r = 0;

	*mask = 0;
	/* only latches that are (or may still publish as) held: a group's
	 * members are refolded a thousand at a time, and most hold nothing */
	for (uint32_t todo = (sc->active | sc->held) & ~1u; todo; todo &= todo - 1) {
		unsigned r = (unsigned)__builtin_ctz(todo);
		const struct bk_latch *l = &sc->latches[r];
		uint8_t m = l->mode;

		if (l->hold_seq > durable_seq && l->hold_mode > m)
			m = l->hold_mode;
		if (m == BK_ACTIVE)
			continue;
		*mask |= 1u << r;
		if (m > best ||
		    (m == best && win && l->since_wall_ns < win->since_wall_ns)) {
			best = m;
			win = l;
			win_r = r;
		}
	}
	*since = win ? win->since_wall_ns : 0;
	return BK_STATE_PACK(best, win_r, win ? win->actor.uid : 0);
}

/* Rebuild a plan from a record: the record says what the latch became. */
static int plan_from_record(struct bk_state *st, const Breaker__AuditRecord *rec,
                            struct bk_plan *p)
{
	int slot = BK_GLOBAL;

	if (rec->group && rec->group[0]) {
		int g = bk_group_find(st, rec->group);
		if (g < 0 || (rec->strategy && rec->strategy[0]))
			return -EBADMSG;
		slot = BK_GROUP_SLOT(g);
	} else if (rec->strategy && rec->strategy[0]) {
		slot = bk_state_find(st, rec->strategy);
		if (slot < 0)
			return -EBADMSG;
	}
	if (!rec->has_reason_code || rec->reason_code >= BK_REASON_COUNT ||
	    !rec->has_latch_mode || !bk_mode_valid(rec->latch_mode))
		return -EBADMSG;
	memset(p, 0, sizeof(*p));
	p->slot = slot;
	p->reason = rec->reason_code;
	p->target = (uint8_t)rec->latch_mode;
	p->resume = rec->kind == BREAKER__AUDIT_RECORD__KIND__RESUME;
	p->all = p->resume && p->reason == 0;
	p->forced = rec->forced;
	/* records from before operator_latch: the daemon's own are by "breakerd" */
	p->by_operator =
	    !p->resume && (rec->has_operator_latch
	                       ? rec->operator_latch
	                       : !(rec->user && strcmp(rec->user, "breakerd") == 0));
	if (!p->resume && p->reason == 0)
		return -EBADMSG;
	return 0;
}

/* A REGISTER record's groups: all joinable, or the record changes nothing. */
static int replay_groups_check(const struct bk_state *st, size_t n, char **tags)
{
	const char *why;
	size_t fresh = 0;

	if (n > BK_GROUP_TAGS_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		if (bk_group_tag_check(tags[i], &why) < 0)
			return -EBADMSG;
		for (size_t j = 0; j < i; j++)
			if (strcmp(tags[i], tags[j]) == 0)
				return -EBADMSG;
		fresh += bk_group_find(st, tags[i]) < 0;
	}
	return st->n_groups + fresh > BK_MAX_GROUPS ? -EBADMSG : 0;
}

static int replay_group_change(struct bk_state *st, const Breaker__AuditRecord *rec)
{
	int slot = rec->strategy ? bk_state_find(st, rec->strategy) : -ENOENT, g;

	if (slot < 0 || !rec->group)
		return -EBADMSG;
	if (rec->kind == BREAKER__AUDIT_RECORD__KIND__GROUP_REMOVE) {
		g = bk_group_find(st, rec->group);
		return g < 0 || bk_group_leave(st, slot, g) < 0 ? -EBADMSG : 0;
	}
	{
		char *tag = rec->group;

		if (replay_groups_check(st, 1, &tag) < 0 ||
		    ((g = bk_group_find(st, rec->group)) >= 0 &&
		     bk_group_has(st, slot, g)) ||
		    st->members[slot].n >= BK_GROUP_TAGS_MAX)
			return -EBADMSG;
		return bk_group_join(st, slot, bk_group_make(st, rec->group)) < 0
		           ? -EBADMSG
		           : 0;
	}
}

int bk_state_replay(struct bk_state *st, const Breaker__AuditRecord *rec)
{
	struct bk_actor who = {.uid = rec->uid, .pid = rec->pid};
	struct bk_plan p;
	int slot;

	switch (rec->kind) {
	case BREAKER__AUDIT_RECORD__KIND__REGISTER:
		/* check first: a refused record must change nothing */
		if (!rec->strategy || !rec->has_slot ||
		    rec->slot != (uint32_t)st->n_strategies)
			return -EBADMSG;
		if (replay_groups_check(st, rec->n_groups, rec->groups) < 0)
			return -EBADMSG;
		slot = bk_state_register(st, rec->strategy);
		if (slot < 0 || (uint32_t)slot != rec->slot)
			return -EBADMSG;
		for (size_t i = 0; i < rec->n_groups; i++)
			bk_group_join(st, slot, bk_group_make(st, rec->groups[i]));
		return 0;
	case BREAKER__AUDIT_RECORD__KIND__GROUP_ADD:
	case BREAKER__AUDIT_RECORD__KIND__GROUP_REMOVE:
		return replay_group_change(st, rec);
	case BREAKER__AUDIT_RECORD__KIND__UNREGISTER:
		/* the record names the strategy and its slot: both must agree */
		if (!rec->strategy || !rec->has_slot ||
		    bk_state_find(st, rec->strategy) != (int)rec->slot)
			return -EBADMSG;
		return bk_state_unregister(st, (int)rec->slot) ? -EBADMSG : 0;
	case BREAKER__AUDIT_RECORD__KIND__RENAME:
		if (!rec->strategy || !rec->new_name || !rec->has_slot ||
		    bk_state_find(st, rec->strategy) != (int)rec->slot)
			return -EBADMSG;
		return bk_state_rename(st, (int)rec->slot, rec->new_name) ? -EBADMSG : 0;
	case BREAKER__AUDIT_RECORD__KIND__TRIP:
	case BREAKER__AUDIT_RECORD__KIND__RESUME:
		if (plan_from_record(st, rec, &p))
			return -EBADMSG;
		snprintf(who.name, sizeof(who.name), "%s", rec->user ? rec->user : "");
		bk_state_apply(st, &p, &who, rec->wall_ns, rec->reason, rec->seq, 0,
		               false);
		return 0;
	default:
		return 0; /* BOOT, LOG_REPAIR, RECONCILE: not halt state */
	}
}
