/*
 * bk_state - the authoritative halt state: scopes, their latches, and the
 * rules for tripping and resuming them. Pure logic, no I/O: the daemon plans
 * a command here, makes it durable or visible in the order the command needs,
 * and applies it.
 *
 * Each scope (global, or a strategy) holds one independent latch per reason
 * code. A latch's mode is ACTIVE when released. The scope's mode is its most
 * restrictive latch. Trips only ever raise a latch; resumes lower one latch
 * (or, forced, all) one stage at a time: HALTED -> REDUCE_ONLY -> CAUTIOUS ->
 * ACTIVE, a skip needs force.
 *
 * A resume is visible only once its audit record is durable: a lowered latch
 * keeps publishing its previous mode (hold_mode) until hold_seq <= the
 * durable audit seq. Trips are visible at once.
 */
#ifndef BK_STATE_H
#define BK_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_mode.h"
#include "breaker.pb-c.h"

#define BK_GLOBAL           (-1) /* slot of the global scope */
#define BK_ACTOR_NAME_MAX   32
#define BK_LATCH_REASON_MAX 128  /* kept for status; the audit log has it all */
#define BK_STATE_INDEX      8192 /* open-addressing name index, 2x capacity */

/*
 * Group scopes ("kind:value", bk_group.h) live in the plan/scope slot space
 * below global: group slot g is scope slot BK_GROUP_SLOT(g), so that plans,
 * latches, replay and pending publishes treat a group like any scope.
 */
#define BK_GROUP_TAGS_MAX 8 /* groups one strategy may belong to */
#define BK_GROUP_SLOT0    (-16)
#define BK_GROUP_SLOT(g)  (BK_GROUP_SLOT0 - (int)(g))
#define BK_SLOT_IS_GROUP(s)                                                              \
	((s) <= BK_GROUP_SLOT0 && (s) > BK_GROUP_SLOT0 - (int)BK_MAX_GROUPS)
#define BK_SLOT_GROUP(s) (BK_GROUP_SLOT0 - (s))

struct bk_actor {
	uint32_t uid;
	uint32_t pid;
	char name[BK_ACTOR_NAME_MAX];
};

struct bk_latch {
	uint8_t mode;      /* BK_ACTIVE = released */
	uint8_t hold_mode; /* published instead of mode until hold_seq is durable */
	uint64_t hold_seq;
	bool operator_owned; /* an operator tripped it (or again): no automatic
	                      * step releases it; cleared when it is released */
	uint64_t audit_seq;  /* record that last raised this latch */
	uint64_t since_wall_ns;
	uint64_t stage_wall_ns; /* when it last changed mode ([limits] min_stage_ms) */
	struct bk_actor actor;
	char reason[BK_LATCH_REASON_MAX];
};

struct bk_scope {
	char name[BK_NAME_MAX]; /* "" for global and for an unregistered slot */
	uint32_t active;        /* bit n: latch n is not ACTIVE */
	uint32_t held;          /* bit n: latch n was lowered under a hold (its
	                         * hold_mode may still publish): with active, the
	                         * only latches bk_scope_published must look at */
	bool gone;              /* unregistered: a tombstone, never reused */
	struct bk_latch latches[BK_REASON_COUNT];
};

/* The groups a strategy belongs to (group slots), in the order joined. */
struct bk_member {
	uint8_t n;
	uint8_t g[BK_GROUP_TAGS_MAX];
};

struct bk_state {
	struct bk_scope global;
	struct bk_scope *strategies;   /* BK_MAX_STRATEGIES, allocated once */
	uint32_t n_strategies;         /* slots used, tombstones included */
	uint32_t n_gone;               /* unregistered slots (tombstones) */
	int16_t index[BK_STATE_INDEX]; /* slot + 1; 0 = empty */
	struct bk_scope *groups;       /* BK_MAX_GROUPS, allocated once */
	uint32_t n_groups;
	struct bk_member *members;          /* per strategy slot */
	uint16_t group_size[BK_MAX_GROUPS]; /* members per group */
};

/* A validated command, ready to apply. */
struct bk_plan {
	int slot;
	unsigned reason; /* the latch; 0 with all = every active latch */
	bool all;
	bool forced;
	bool resume;
	bool by_operator;  /* a trip by an operator: the latch becomes theirs */
	uint8_t target;    /* latch mode after */
	uint8_t from_mode; /* scope mode before */
	uint8_t to_mode;   /* scope mode after */
	bool firm;         /* the firm latch in etcd (bk_etcd_fwd.c), not this host's */
};

int bk_state_init(struct bk_state *st);
void bk_state_free(struct bk_state *st);

/* Slot of a strategy, or -ENOENT. */
int bk_state_find(const struct bk_state *st, const char *name);
/* New slot (>= 0), -EEXIST, -ENOSPC (table full) or -EINVAL (bad name). */
int bk_state_register(struct bk_state *st, const char *name);
/*
 * Retire a strategy: its slot becomes a tombstone (gone, name ""), never
 * reused, so an engine that cached the slot can never alias a later
 * strategy. Its name is free again. 0, or -ENOENT (no such live slot).
 */
int bk_state_unregister(struct bk_state *st, int slot);
/* Give a live slot a new name (latches and history stay with the slot).
 * 0, -ENOENT, -EINVAL (bad name) or -EEXIST (the name is taken). */
int bk_state_rename(struct bk_state *st, int slot, const char *name);
/* True for a valid strategy name: 1..39 bytes of [A-Za-z0-9._:-]. */
bool bk_strategy_name_valid(const char *name);

struct bk_scope *bk_state_scope(struct bk_state *st, int slot);
const struct bk_scope *bk_state_cscope(const struct bk_state *st, int slot);

/* The scope's own mode (most restrictive latch), ignoring durability. */
uint8_t bk_scope_mode(const struct bk_scope *sc);

/*
 * Plan a trip of latch reason in slot to mode (CAUTIOUS..HALTED). Returns
 * BREAKER__STATUS__OK or an error status with *why set to a static message.
 */
Breaker__Status bk_state_plan_trip(const struct bk_state *st, int slot, int reason,
                                   int mode, struct bk_plan *p, const char **why);

/*
 * Plan a resume. reason < 0: the scope's only latch, or all of them with
 * force. to < 0: one stage below the latch. why is written into whybuf.
 */
Breaker__Status bk_state_plan_resume(const struct bk_state *st, int slot, int reason,
                                     int to, bool force, struct bk_plan *p, char *whybuf,
                                     size_t whylen);

/*
 * Apply a plan. seq is the audit record's sequence; for a resume, the change
 * is published only once seq is durable: durable_seq is the last durable
 * record now (pass hold = false on replay, where every record is durable).
 */
void bk_state_apply(struct bk_state *st, const struct bk_plan *p,
                    const struct bk_actor *who, uint64_t wall_ns, const char *reason,
                    uint64_t seq, uint64_t durable_seq, bool hold);

/*
 * The word engines see for a scope given the durable audit seq: packed mode,
 * winning latch's reason and uid; *since and *mask for the seqlock'd fields.
 */
uint64_t bk_scope_published(const struct bk_scope *sc, uint64_t durable_seq,
                            uint64_t *since, uint32_t *mask);

/* Replay one audit record into the state. 0 or -EBADMSG (inconsistent record). */
int bk_state_replay(struct bk_state *st, const Breaker__AuditRecord *rec);

#endif
