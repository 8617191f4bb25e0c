/*
 * bk_limits - the limits the breaker publishes (issue 14 item 5): per scope
 * and per mode, a size factor, an optional max order quantity and max order
 * notional, and an optional minimum time in a stage before the next resume.
 *
 * Config (docs/config.md): [limits] holds the defaults of every scope (like
 * [rules]); [limits:NAME] overrides them key by key for the scope named NAME
 * (a strategy, or a group "kind:value"). Keys "<mode>.<what>": mode active,
 * cautious, reduce_only or halted; what size_factor (0..1), max_qty,
 * max_notional (>= 0, finite), min_stage_ms (0..86400000). Strictly
 * validated: a bad file changes nothing.
 *
 * Published (docs/shm-layout.md, limits table): entry 0 = global's limits at
 * global's mode; entry 1+i = strategy slot i's own limits at its mode, folded
 * (strictest) with its groups' at theirs. Global is not folded in: engines
 * (bk_limits) take the strictest of entry 0 and 1+i.
 */
#ifndef BK_LIMITS_H
#define BK_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_mode.h"

#define BK_LIMITS_OVER 512 /* [limits:NAME] sections at most */

/* One scope's limits in one mode. flags: BK_LIMIT_* (breaker_client.h). */
struct bk_limit_set {
	uint32_t flags;
	double size_factor, max_qty, max_notional;
	bool has_min_stage;
	uint32_t min_stage_ms;
};

struct bk_limits_scope {
	char name[BK_NAME_MAX]; /* "" for [limits] */
	struct bk_limit_set mode[BK_MODE_COUNT];
};

#define BK_LIMITS_INDEX 1024 /* open-addressing name index, 2x BK_LIMITS_OVER */

struct bk_limits_cfg {
	struct bk_limits_scope global;
	struct bk_limits_scope over[BK_LIMITS_OVER];
	int n_over;
	/* over[] by name (index + 1; 0 = empty): every publish looks a scope
	 * up, a group trip once per member, so not a scan of 512 names */
	int16_t index[BK_LIMITS_INDEX];
	bool any; /* a limit or min_stage_ms is configured at all */
};

/*
 * One config key of [limits] (name NULL) or [limits:NAME]. 0, or -EINVAL
 * with why set (unknown key, bad value, too many sections).
 */
int bk_limits_key(struct bk_limits_cfg *lc, const char *name, const char *key,
                  const char *val, char *why, size_t len);

/* The configured scope of that name, or NULL (no [limits:NAME]). */
const struct bk_limits_scope *bk_limits_for(const struct bk_limits_cfg *lc,
                                            const char *name);

/*
 * What scope name ("" global) is held to in mode: [limits:NAME]'s value of
 * each key where it gives one, else [limits]'s (the default of every scope).
 */
void bk_limits_effective(const struct bk_limits_cfg *lc, const char *name, int mode,
                         struct bk_limit_set *out);

/* Fold b into a: every limit set in either, the smaller where both are. */
void bk_limits_fold(struct bk_limit_set *a, const struct bk_limit_set *b);

/*
 * The minimum time in mode for scope name ("" global): its own
 * [limits:NAME] value, else [limits]'s, else 0.
 */
uint32_t bk_limits_min_stage_ms(const struct bk_limits_cfg *lc, const char *name,
                                int mode);

/* "active", "cautious", "reduce_only", "halted": the keys' mode names. */
const char *bk_limits_mode_key(int mode);

/* Canonical text ("limits[:NAME].mode.key=value\n" lines) for CONFIG diffs. */
size_t bk_limits_text(const struct bk_limits_cfg *lc, char *buf, size_t len);

/* "size x0.25, max qty 100, max notional 50000" ("none" if nothing set). */
size_t bk_limits_describe(const struct bk_limit_set *s, char *buf, size_t len);

/* ---- bk_limits_pub.c: the daemon's side ---------------------------------- */
struct bk_daemon;
struct bk_plan;

/*
 * Around the publication of scope slot's state word: before, the entry
 * becomes the strictest of what it held and next (the scope's own limits
 * at its own mode, a strategy's folded with its groups' at theirs); after,
 * exactly next. So no engine sees looser limits than its modes'.
 */
void bk_limits_pub_before(struct bk_daemon *d, int slot, struct bk_limit_set *next);
void bk_limits_pub_after(struct bk_daemon *d, int slot, const struct bk_limit_set *next);
/* The entry as published now (status). */
void bk_limits_in_force(const struct bk_daemon *d, int slot, struct bk_limit_set *out);
/*
 * A resume's wait under min_stage_ms: 0 if it may go now, else the ms
 * left, with why written for the refusal. Forced resumes never wait.
 */
uint64_t bk_limits_stage_wait_ms(const struct bk_daemon *d, const struct bk_plan *p,
                                 uint64_t wall_ns, char *why, size_t len);

#endif
