#include <errno.h>
#include <string.h>

#include "bk_group.h"

static const char *const kinds[] = {"venue", "desk", "account", "trader", "host"};

int bk_group_tag_check(const char *tag, const char **why)
{
	const char *colon = tag ? strchr(tag, ':') : NULL;
	size_t klen;
	bool known = false;

	if (!tag || !colon) {
		*why =
		    "a group is kind:value (kinds: venue, desk, account, trader, host)";
		return -EINVAL;
	}
	if (strlen(tag) >= BK_NAME_MAX) {
		*why = "a group tag is at most 39 bytes";
		return -EINVAL;
	}
	klen = (size_t)(colon - tag);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i]) == klen && memcmp(kinds[i], tag, klen) == 0)
			known = true;
	if (!known) {
		*why = "unknown group kind (kinds: venue, desk, account, trader, host)";
		return -EINVAL;
	}
	if (!colon[1]) {
		*why = "a group's value is empty (kind:value)";
		return -EINVAL;
	}
	for (const char *p = colon + 1; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) {
			*why = "a group's value is 1+ bytes of [A-Za-z0-9._-]";
			return -EINVAL;
		}
	}
	return 0;
}

int bk_group_find(const struct bk_state *st, const char *tag)
{
	for (uint32_t g = 0; g < st->n_groups; g++)
		if (strcmp(st->groups[g].name, tag) == 0)
			return (int)g;
	return -ENOENT;
}

int bk_group_make(struct bk_state *st, const char *tag)
{
	const char *why;
	int g = bk_group_find(st, tag);

	if (g >= 0)
		return g;
	if (bk_group_tag_check(tag, &why) < 0)
		return -EINVAL;
	if (st->n_groups >= BK_MAX_GROUPS)
		return -ENOSPC;
	g = (int)st->n_groups++;
	memcpy(st->groups[g].name, tag, strlen(tag) + 1);
	return g;
}

bool bk_group_has(const struct bk_state *st, int slot, int g)
{
	const struct bk_member *m = &st->members[slot];

	for (unsigned i = 0; i < m->n; i++)
		if (m->g[i] == g)
			return true;
	return false;
}

int bk_group_join(struct bk_state *st, int slot, int g)
{
	struct bk_member *m = &st->members[slot];

	if (bk_group_has(st, slot, g))
		return -EEXIST;
	if (m->n >= BK_GROUP_TAGS_MAX)
		return -E2BIG;
	m->g[m->n++] = (uint8_t)g;
	st->group_size[g]++;
	return 0;
}

int bk_group_leave(struct bk_state *st, int slot, int g)
{
	struct bk_member *m = &st->members[slot];

	for (unsigned i = 0; i < m->n; i++) {
		if (m->g[i] != g)
			continue;
		memmove(&m->g[i], &m->g[i + 1], m->n - i - 1);
		m->n--;
		st->group_size[g]--;
		return 0;
	}
	return -ENOENT;
}

uint64_t bk_group_folded(const struct bk_state *st, int slot, uint64_t durable_seq,
                         uint64_t *since, uint32_t *mask)
{
	const struct bk_member *m = &st->members[slot];
	uint64_t word =
	    bk_scope_published(&st->strategies[slot], durable_seq, since, mask);

	for (unsigned i = 0; i < m->n; i++) {
		uint64_t gs, gw;
		uint32_t gm;

		gw = bk_scope_published(&st->groups[m->g[i]], durable_seq, &gs, &gm);
		if (BK_STATE_MODE(gw) > BK_STATE_MODE(word)) {
			word = gw | ((uint64_t)(m->g[i] + 1u) << 16);
			*since = gs;
		}
	}
	return word;
}
