/*
 * bk_suggest - "did you mean": the names nearest a mistyped one, for the
 * refusal of an unknown strategy (breakerd) and of an unknown command or
 * reason code (the CLI). Never on the tick path; a refused name is never
 * acted on, only answered with the near ones.
 *
 * Near: an edit distance (insert, delete, substitute, swap two neighbours;
 * case, '-' and '_' forgiven) of at most 1 for names up to 4 bytes, 2 up to
 * 9, 3 above; or the typed text is a prefix of the name (3 bytes or more).
 */
#ifndef BK_SUGGEST_H
#define BK_SUGGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "bk_state.h"

#define BK_SUGGEST_MAX 3 /* names offered at most */

/* Edit distance of a and b, or max + 1 once it is sure to be above max. */
int bk_edit_distance(const char *a, const char *b, int max);

/* How near cand is to typed: a distance, or -1 if not near at all. */
int bk_suggest_score(const char *typed, const char *cand);

/*
 * The (at most BK_SUGGEST_MAX) nearest of n candidates, nearest first,
 * written "'a', 'b' or 'c'" into out. Returns how many (0: none near).
 */
int bk_suggest(const char *typed, const char *const *cands, size_t n, char *out,
               size_t len);

/* The same over the registered strategies (tombstones are not candidates). */
int bk_suggest_strategies(const struct bk_state *st, const char *typed, char *out,
                          size_t len);

#endif
