/*
 * bk_group - group scopes: tags "kind:value" a strategy carries (venue:XETR,
 * desk:eu-delta, account:ACC-7, trader:T42, host:ny4-07). A group holds its
 * own latches exactly like a strategy; an engine's effective mode is the
 * strictest of global, its groups and its strategy. The daemon folds the
 * groups into each member's published word (holder bits say which scope won),
 * so the engines' check reads what it always read.
 *
 * Contract:
 * - The kinds are fixed (venue, desk, account, trader, host): a typo in a
 *   kind is refused rather than silently making a new dimension. The value
 *   is 1+ bytes of [A-Za-z0-9._-]; the whole tag at most BK_NAME_MAX - 1.
 * - A group slot is made on first use (register --group, group add) and
 *   kept while the audit log lives, like strategy slots; BK_MAX_GROUPS.
 * - A strategy belongs to at most BK_GROUP_TAGS_MAX groups.
 * Pure state, no I/O (like bk_state).
 */
#ifndef BK_GROUP_H
#define BK_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "bk_state.h"

/* 0, or -EINVAL with why (static text) for a malformed tag or unknown kind. */
int bk_group_tag_check(const char *tag, const char **why);

/* Group slot of a tag, or -ENOENT. */
int bk_group_find(const struct bk_state *st, const char *tag);

/* Group slot of a tag, made if new: >= 0, -EINVAL (bad tag), -ENOSPC (full). */
int bk_group_make(struct bk_state *st, const char *tag);

/* Is strategy slot a member of group g? */
bool bk_group_has(const struct bk_state *st, int slot, int g);

/* Join/leave: 0, -EEXIST (already a member) / -ENOENT (not one), -E2BIG
 * (BK_GROUP_TAGS_MAX tags already). */
int bk_group_join(struct bk_state *st, int slot, int g);
int bk_group_leave(struct bk_state *st, int slot, int g);

/*
 * The word engines read for strategy slot: the strictest of its own
 * published latches and those of each of its groups (given the durable
 * audit seq, as bk_scope_published), holder bits g + 1 when a group's latch
 * wins (a tie goes to the strategy's own). *since: the winner's; *mask: the
 * strategy's own latches.
 */
uint64_t bk_group_folded(const struct bk_state *st, int slot, uint64_t durable_seq,
                         uint64_t *since, uint32_t *mask);

#endif
