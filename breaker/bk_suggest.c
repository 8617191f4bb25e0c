#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "bk_suggest.h"

static char fold(char c)
{
	return c == '-' ? '_' : (char)tolower((unsigned char)c);
}

int bk_edit_distance(const char *a, const char *b, int max)
{
	/* names are short (commands, reason codes, 39-byte strategies) */
	enum { N = 64 };
	int prev2[N + 1], prev[N + 1], cur[N + 1];
	size_t la = strlen(a), lb = strlen(b);

	if (la > N || lb > N)
		return max + 1;
	if ((la > lb ? la - lb : lb - la) > (size_t)max)
		return max + 1;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int best;

		cur[0] = best = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int cost = fold(a[i - 1]) != fold(b[j - 1]);
			int v = prev[j - 1] + cost;

			if (prev[j] + 1 < v)
				v = prev[j] + 1;
			if (cur[j - 1] + 1 < v)
				v = cur[j - 1] + 1;
			/* two neighbours swapped: one edit, not two */
			if (i > 1 && j > 1 && fold(a[i - 1]) == fold(b[j - 2]) &&
			    fold(a[i - 2]) == fold(b[j - 1]) && prev2[j - 2] + 1 < v)
				v = prev2[j - 2] + 1;
			cur[j] = v;
			if (v < best)
				best = v;
		}
		if (best > max)
			return max + 1;
		memcpy(prev2, prev, sizeof(prev));
		memcpy(prev, cur, sizeof(cur));
	}
	return prev[lb];
}

int bk_suggest_score(const char *typed, const char *cand)
{
	size_t n = strlen(typed);
	int max = n <= 4 ? 1 : n <= 9 ? 2 : 3, d;

	if (!*cand)
		return -1;
	d = bk_edit_distance(typed, cand, max);
	if (d <= max)
		return d;
	if (n >= 3 && strlen(cand) > n) {
		size_t i = 0;

		while (i < n && fold(typed[i]) == fold(cand[i]))
			i++;
		if (i == n)
			return max + 1; /* after every near-by-edits name */
	}
	return -1;
}

struct pick {
	const char *name;
	int score;
};

static void consider(struct pick *best, int *nbest, const char *typed, const char *cand)
{
	int s = bk_suggest_score(typed, cand), k;

	if (s < 0)
		return;
	for (k = 0; k < *nbest; k++)
		if (strcmp(best[k].name, cand) == 0)
			return;
	if (*nbest == BK_SUGGEST_MAX && s >= best[*nbest - 1].score)
		return;
	if (*nbest < BK_SUGGEST_MAX)
		(*nbest)++;
	for (k = *nbest - 1; k > 0 && best[k - 1].score > s; k--)
		best[k] = best[k - 1];
	best[k] = (struct pick){cand, s};
}

static int render(const struct pick *best, int n, char *out, size_t len)
{
	size_t off = 0;

	out[0] = '\0';
	for (int k = 0; k < n && off < len; k++) {
		int w = snprintf(out + off, len - off, "%s'%s'",
		                 k == 0       ? ""
		                 : k == n - 1 ? " or "
		                              : ", ",
		                 best[k].name);
		off += w > 0 ? (size_t)w : 0;
	}
	return n;
}

int bk_suggest(const char *typed, const char *const *cands, size_t n, char *out,
               size_t len)
{
	struct pick best[BK_SUGGEST_MAX];
	int nbest = 0;

	for (size_t i = 0; i < n; i++)
		consider(best, &nbest, typed, cands[i]);
	return render(best, nbest, out, len);
}

int bk_suggest_strategies(const struct bk_state *st, const char *typed, char *out,
                          size_t len)
{
	struct pick best[BK_SUGGEST_MAX];
	int nbest = 0;

	for (uint32_t i = 0; i < st->n_strategies; i++)
		if (!st->strategies[i].gone)
			consider(best, &nbest, typed, st->strategies[i].name);
	return render(best, nbest, out, len);
}
