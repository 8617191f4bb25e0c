/*
 * breaker group add|remove <strategy> <kind:value>: change a strategy's
 * groups (docs/cli.md). Groups hold latches like strategies; breakerd folds
 * them into each member's word (bk_group.h).
 */
#include <inttypes.h>
#include <string.h>

#include "bk_mode.h"
#include "breaker.h"

/* The same checks breakerd makes (bk_group_tag_check): refuse before sending. */
int cli_check_group(const char *cmd, const char *tag)
{
	static const char *const kinds[] = {"venue", "desk", "account", "trader", "host"};
	const char *colon = strchr(tag, ':');
	bool known = false;

	if (!colon)
		return cli_usage_error(
		    cmd,
		    "group '%s' is not kind:value (kinds: venue, desk, "
		    "account, trader, host)",
		    tag);
	if (strlen(tag) >= BK_NAME_MAX)
		return cli_usage_error(cmd, "group '%s' is too long: at most %u bytes",
		                       tag, BK_NAME_MAX - 1);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i]) == (size_t)(colon - tag) &&
		    memcmp(kinds[i], tag, (size_t)(colon - tag)) == 0)
			known = true;
	if (!known)
		return cli_usage_error(cmd,
		                       "unknown group kind in '%s' (kinds: venue, desk, "
		                       "account, trader, host)",
		                       tag);
	if (!colon[1])
		return cli_usage_error(cmd, "group '%s' has an empty value", tag);
	for (const char *p = colon + 1; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return cli_usage_error(cmd,
			                       "group '%s': the value is 1+ bytes of "
			                       "[A-Za-z0-9._-]",
			                       tag);
	return 0;
}

static void say_group(const struct cli_args *a, const Breaker__Reply *r)
{
	(void)r;
	printf("strategy %s %s group %s", a->pos[1],
	       strcmp(a->pos[0], "add") == 0 ? "joined" : "left", a->pos[2]);
}

int cmd_group(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__GroupChange gc = BREAKER__GROUP_CHANGE__INIT;
	bool add = strcmp(a->pos[0], "add") == 0;
	int rv;

	if (!add && strcmp(a->pos[0], "remove") != 0)
		return cli_usage_error(a->cmd, "'%s': use add or remove", a->pos[0]);
	if (!*a->pos[1] || strlen(a->pos[1]) >= BK_NAME_MAX)
		return cli_usage_error(a->cmd, "bad strategy name '%s'", a->pos[1]);
	if ((rv = cli_check_group(a->cmd, a->pos[2])) || (rv = cli_config(c)))
		return rv;
	gc.strategy = a->pos[1];
	gc.group = a->pos[2];
	gc.has_remove = gc.remove = !add;
	gc.reason = a->reason;
	req.cmd_case = BREAKER__REQUEST__CMD_GROUP;
	req.group = &gc;
	return send_simple(c, a, &req, say_group);
}
