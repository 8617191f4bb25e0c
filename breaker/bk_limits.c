#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_hash.h"
#include "bk_limits.h"
#include "bk_state.h"

static const char *const mode_keys[BK_MODE_COUNT] = {"active", "cautious", "reduce_only",
                                                     "halted"};

const char *bk_limits_mode_key(int mode)
{
	return mode >= 0 && mode < BK_MODE_COUNT ? mode_keys[mode] : "?";
}

/* Decimal only (strtod reads hex, inf, nan too): 0 or -EINVAL. */
static int number(const char *v, double min, double max, double *out)
{
	char *end;
	double x;

	if (!*v || strpbrk(v, "xXpPnNiI"))
		return -EINVAL;
	errno = 0;
	x = strtod(v, &end);
	if (errno || *end || !isfinite(x) || !(x >= min && x <= max))
		return -EINVAL;
	*out = x;
	return 0;
}

/* The index slot holding name, or the empty one where it would go. */
static uint32_t probe(const struct bk_limits_cfg *lc, const char *name)
{
	uint32_t i = bk_fnv1a(name) & (BK_LIMITS_INDEX - 1);

	while (lc->index[i] && strcmp(lc->over[lc->index[i] - 1].name, name) != 0)
		i = (i + 1) & (BK_LIMITS_INDEX - 1);
	return i;
}

static struct bk_limits_scope *scope_for(struct bk_limits_cfg *lc, const char *name)
{
	uint32_t i;

	if (!name)
		return &lc->global;
	i = probe(lc, name);
	if (lc->index[i])
		return &lc->over[lc->index[i] - 1];
	if (lc->n_over == BK_LIMITS_OVER)
		return NULL;
	memset(&lc->over[lc->n_over], 0, sizeof(lc->over[0]));
	snprintf(lc->over[lc->n_over].name, BK_NAME_MAX, "%s", name);
	lc->index[i] = (int16_t)(lc->n_over + 1);
	return &lc->over[lc->n_over++];
}

int bk_limits_key(struct bk_limits_cfg *lc, const char *name, const char *key,
                  const char *val, char *why, size_t len)
{
	const char *dot = strchr(key, '.'), *what;
	struct bk_limits_scope *sc;
	struct bk_limit_set *s;
	int mode = -1;
	double x;

	if (name && !bk_strategy_name_valid(name)) {
		snprintf(why, len,
		         "[limits:%s]: not a strategy or group name (1-39 bytes of "
		         "[A-Za-z0-9._:-])",
		         name);
		return -EINVAL;
	}
	for (int m = 0; dot && m < BK_MODE_COUNT; m++)
		if ((size_t)(dot - key) == strlen(mode_keys[m]) &&
		    strncmp(key, mode_keys[m], (size_t)(dot - key)) == 0)
			mode = m;
	what = dot ? dot + 1 : "";
	if (mode < 0 || (strcmp(what, "size_factor") && strcmp(what, "max_qty") &&
	                 strcmp(what, "max_notional") && strcmp(what, "min_stage_ms"))) {
		snprintf(why, len,
		         "unknown limits key '%s': <mode>.<what>, mode active, cautious, "
		         "reduce_only or halted; what size_factor, max_qty, "
		         "max_notional or min_stage_ms",
		         key);
		return -EINVAL;
	}
	if (!(sc = scope_for(lc, name))) {
		snprintf(why, len, "too many [limits:NAME] sections (at most %d)",
		         BK_LIMITS_OVER);
		return -EINVAL;
	}
	s = &sc->mode[mode];
	if (strcmp(what, "size_factor") == 0) {
		if (number(val, 0, 1, &x))
			goto bad;
		s->size_factor = x;
		s->flags |= BK_LIMIT_SIZE_FACTOR;
	} else if (strcmp(what, "max_qty") == 0) {
		if (number(val, 0, 1e300, &x))
			goto bad;
		s->max_qty = x;
		s->flags |= BK_LIMIT_MAX_QTY;
	} else if (strcmp(what, "max_notional") == 0) {
		if (number(val, 0, 1e300, &x))
			goto bad;
		s->max_notional = x;
		s->flags |= BK_LIMIT_MAX_NOTIONAL;
	} else {
		if (number(val, 0, 86400000, &x) || x != floor(x))
			goto bad;
		s->min_stage_ms = (uint32_t)x;
		s->has_min_stage = true;
	}
	lc->any = true;
	return 0;
bad:
	snprintf(why, len,
	         "bad value '%s' for %s: size_factor is 0 to 1, max_qty and "
	         "max_notional a finite number >= 0, min_stage_ms whole ms 0 to "
	         "86400000 (decimal)",
	         val, key);
	return -EINVAL;
}

const struct bk_limits_scope *bk_limits_for(const struct bk_limits_cfg *lc,
                                            const char *name)
{
	uint32_t i;

	if (!name || !*name)
		return &lc->global;
	if (!lc->n_over)
		return NULL;
	i = probe(lc, name);
	return lc->index[i] ? &lc->over[lc->index[i] - 1] : NULL;
}

void bk_limits_effective(const struct bk_limits_cfg *lc, const char *name, int mode,
                         struct bk_limit_set *out)
{
	const struct bk_limits_scope *sc = name && *name ? bk_limits_for(lc, name) : NULL;
	const struct bk_limit_set *o;

	memset(out, 0, sizeof(*out));
	if (mode < 0 || mode >= BK_MODE_COUNT)
		return;
	*out = lc->global.mode[mode];
	if (!sc)
		return;
	o = &sc->mode[mode];
	if (o->flags & BK_LIMIT_SIZE_FACTOR)
		out->size_factor = o->size_factor;
	if (o->flags & BK_LIMIT_MAX_QTY)
		out->max_qty = o->max_qty;
	if (o->flags & BK_LIMIT_MAX_NOTIONAL)
		out->max_notional = o->max_notional;
	out->flags |= o->flags;
	if (o->has_min_stage) {
		out->has_min_stage = true;
		out->min_stage_ms = o->min_stage_ms;
	}
}

static void fold_one(struct bk_limit_set *a, const struct bk_limit_set *b, uint32_t bit,
                     double *av, double bv)
{
	if (!(b->flags & bit))
		return;
	if (!(a->flags & bit) || bv < *av)
		*av = bv;
	a->flags |= bit;
}

void bk_limits_fold(struct bk_limit_set *a, const struct bk_limit_set *b)
{
	fold_one(a, b, BK_LIMIT_SIZE_FACTOR, &a->size_factor, b->size_factor);
	fold_one(a, b, BK_LIMIT_MAX_QTY, &a->max_qty, b->max_qty);
	fold_one(a, b, BK_LIMIT_MAX_NOTIONAL, &a->max_notional, b->max_notional);
}

uint32_t bk_limits_min_stage_ms(const struct bk_limits_cfg *lc, const char *name,
                                int mode)
{
	const struct bk_limits_scope *sc = bk_limits_for(lc, name);

	if (mode < 0 || mode >= BK_MODE_COUNT)
		return 0;
	if (sc && sc->mode[mode].has_min_stage)
		return sc->mode[mode].min_stage_ms;
	return lc->global.mode[mode].has_min_stage ? lc->global.mode[mode].min_stage_ms
	                                           : 0;
}

static size_t scope_text(const struct bk_limits_scope *sc, char *buf, size_t len,
                         size_t off)
{
	for (int m = 0; m < BK_MODE_COUNT; m++) {
		const struct bk_limit_set *s = &sc->mode[m];
		const char *sep = sc->name[0] ? ":" : "";

		if (s->flags & BK_LIMIT_SIZE_FACTOR && off < len)
			off += (size_t)snprintf(buf + off, len - off,
			                        "limits%s%s.%s.size_factor=%.15g\n", sep,
			                        sc->name, mode_keys[m], s->size_factor);
		if (s->flags & BK_LIMIT_MAX_QTY && off < len)
			off += (size_t)snprintf(buf + off, len - off,
			                        "limits%s%s.%s.max_qty=%.15g\n", sep,
			                        sc->name, mode_keys[m], s->max_qty);
		if (s->flags & BK_LIMIT_MAX_NOTIONAL && off < len)
			off += (size_t)snprintf(buf + off, len - off,
			                        "limits%s%s.%s.max_notional=%.15g\n", sep,
			                        sc->name, mode_keys[m], s->max_notional);
		if (s->has_min_stage && off < len)
			off += (size_t)snprintf(buf + off, len - off,
			                        "limits%s%s.%s.min_stage_ms=%u\n", sep,
			                        sc->name, mode_keys[m], s->min_stage_ms);
	}
	return off;
}

size_t bk_limits_text(const struct bk_limits_cfg *lc, char *buf, size_t len)
{
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	off = scope_text(&lc->global, buf, len, off);
	for (int i = 0; i < lc->n_over; i++)
		off = scope_text(&lc->over[i], buf, len, off);
	return off < len ? off : len ? len - 1 : 0;
}

size_t bk_limits_describe(const struct bk_limit_set *s, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	if (s->flags & BK_LIMIT_SIZE_FACTOR && off < len)
		off += (size_t)snprintf(buf + off, len - off, "size x%g", s->size_factor);
	if (s->flags & BK_LIMIT_MAX_QTY && off < len)
		off += (size_t)snprintf(buf + off, len - off, "%smax qty %g",
		                        off ? ", " : "", s->max_qty);
	if (s->flags & BK_LIMIT_MAX_NOTIONAL && off < len)
		off += (size_t)snprintf(buf + off, len - off, "%smax notional %g",
		                        off ? ", " : "", s->max_notional);
	if (!off)
		off = (size_t)snprintf(buf, len, "none");
	return off < len ? off : len - 1;
}
