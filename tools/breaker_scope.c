/*
 * unregister and rename a strategy, and "did you mean" for an unknown
 * command. breakerd decides (latches, attached engines, the config's
 * [strategies]: bk_cmd_scope.c); here only what can be checked before
 * sending, so that a bad call sends nothing.
 */
#include <string.h>

#include "bk_state.h"
#include "bk_suggest.h"
#include "breaker.h"

static int check_name(const char *cmd, const char *s)
{
	if (!bk_strategy_name_valid(s))
		return cli_usage_error(cmd,
		                       "invalid strategy name '%s': 1-%u bytes of "
		                       "[A-Za-z0-9._:-]",
		                       s, BK_NAME_MAX - 1);
	return 0;
}

static int need_reason(struct cli *c, const struct cli_args *a)
{
	const char *p = a->reason;

	while (p && (*p == ' ' || *p == '\t'))
		p++;
	if (!p || !*p)
		return cli_usage_error(a->cmd, "--reason TEXT is required: say why, it "
		                               "goes in the audit log");
	if (strlen(a->reason) > c->cfg.reason_max)
		return cli_usage_error(a->cmd,
		                       "reason text too long: %zu bytes, at most %u",
		                       strlen(a->reason), c->cfg.reason_max);
	return 0;
}

static void say_unregistered(const struct cli_args *a, const Breaker__Reply *r)
{
	(void)r;
	printf("unregistered strategy %s (its slot stays a tombstone, HALTED)",
	       a->pos[0]);
}

int cmd_unregister(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Unregister u = BREAKER__UNREGISTER__INIT;
	int rv;

	if ((rv = cli_config(c)) || (rv = check_name(a->cmd, a->pos[0])) ||
	    (rv = need_reason(c, a)))
		return rv;
	u.strategy = a->pos[0];
	u.reason = a->reason;
	req.cmd_case = BREAKER__REQUEST__CMD_UNREGISTER;
	req.unregister = &u;
	return send_simple(c, a, &req, say_unregistered);
}

static void say_renamed(const struct cli_args *a, const Breaker__Reply *r)
{
	(void)r;
	printf("renamed strategy %s to %s (same slot, latches and history)", a->pos[0],
	       a->pos[1]);
}

int cmd_rename(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Rename rn = BREAKER__RENAME__INIT;
	int rv;

	if ((rv = cli_config(c)) || (rv = check_name(a->cmd, a->pos[0])) ||
	    (rv = check_name(a->cmd, a->pos[1])) || (rv = need_reason(c, a)))
		return rv;
	if (strcmp(a->pos[0], a->pos[1]) == 0)
		return cli_usage_error(a->cmd, "the new name is the old one");
	rn.strategy = a->pos[0];
	rn.new_name = a->pos[1];
	rn.reason = a->reason;
	req.cmd_case = BREAKER__REQUEST__CMD_RENAME;
	req.rename = &rn;
	return send_simple(c, a, &req, say_renamed);
}

/* Words operators reach for that are not commands, and what they meant. */
static const struct {
	const char *word, *hint;
} aliases[] = {
    {"halt", "'breaker trip manual_halt --reason ...' (global, or --strategy S), or "
             "'breaker emergency-stop' to halt everything now"},
    {"stop", "'breaker emergency-stop' (everything) or 'breaker kill <strategy>'"},
    {"estop", "'breaker emergency-stop'"},
    {"panic", "'breaker emergency-stop'"},
    {"unhalt", "'breaker resume --reason ...'"},
    {"release", "'breaker resume --reason ...'"},
    {"list", "'breaker strategies'"},
    {"ls", "'breaker strategies'"},
    {"delete", "'breaker unregister <strategy> --reason ...'"},
    {"remove", "'breaker unregister <strategy> --reason ...'"},
    {"deregister", "'breaker unregister <strategy> --reason ...'"},
    {"mv", "'breaker rename <old> <new> --reason ...'"},
};

void suggest_command(FILE *f, const char *typed, const char *const *names, size_t n)
{
	char near[160];

	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (bk_edit_distance(typed, aliases[i].word, 0) == 0) {
			fprintf(f, "did you mean %s?\n", aliases[i].hint);
			return;
		}
	if (bk_suggest(typed, names, n, near, sizeof(near)))
		fprintf(f, "did you mean %s?\n", near);
}
