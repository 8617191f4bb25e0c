/*
 * fuzz_config - the INI config file, as breakerd --config and SIGHUP's rule
 * reload read it: bytes -> a file -> bk_config_defaults + bk_config_load.
 *
 * Beyond "no crash", it checks the loader's promises: a refused file leaves
 * cfg byte for byte unchanged and says why; an accepted one holds only
 * values inside the documented ranges (docs/config.md, docs/rules.md).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "bk_config.h"
#include "bk_mode.h"
#include "bk_server.h"
#include "fuzz_util.h"

static char dir[256];
static char path[320];
static struct bk_config before, cfg;

static void cleanup(void)
{
	fz_rm_tree(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_tmpdir(dir, sizeof(dir), "config");
	snprintf(path, sizeof(path), "%s/breaker.ini", dir);
	atexit(cleanup);
	return 0;
}

static void check_rule(const struct bk_rule_cfg *r, int id, const char *where)
{
	if (r->enabled && !(r->max > 0) && !(id == BK_RULE_DRAWDOWN && r->max_pct > 0))
		fz_fail("%s rule %d enabled without a limit", where, id);
	if (!(r->max >= 0 && r->max <= 1e18) || !(r->max_pct >= 0 && r->max_pct <= 1))
		fz_fail("%s rule %d max %g / max_pct %g out of range", where, id, r->max,
		        r->max_pct);
	/* the rate rules divide by their window; the others have none (0) */
	if (((id == BK_RULE_REJECT_RATE || id == BK_RULE_ORDER_RATE) &&
	     r->window_ms < 1) ||
	    r->window_ms > 3600000 || r->cooldown_ms > 86400000)
		fz_fail("%s rule %d window/cooldown out of range", where, id);
	if (r->action > BK_HALTED || (r->action && r->action < BK_CAUTIOUS))
		fz_fail("%s rule %d action %u", where, id, r->action);
	if (r->cooldown_to && r->cooldown_to != BK_CAUTIOUS &&
	    r->cooldown_to != BK_REDUCE_ONLY)
		fz_fail("%s rule %d cooldown_to %u", where, id, r->cooldown_to);
}

/* An accepted file: everything within the ranges the docs promise. */
static void check_accepted(const struct bk_config *c)
{
	const struct bk_rules_cfg *rc = &c->rules;
	const char *probe = "no-such-strategy-in-any-config";
	char url[BK_URL_MAX + 16];
	bool lo, named = false;

	if (!fz_terminated(c->instance, sizeof(c->instance)) ||
	    !fz_terminated(c->run_dir, sizeof(c->run_dir)) ||
	    !fz_terminated(c->state_dir, sizeof(c->state_dir)) ||
	    !fz_terminated(c->audit_path, sizeof(c->audit_path)) ||
	    !fz_terminated(c->cmd_url, sizeof(c->cmd_url)) ||
	    !fz_terminated(c->pub_url, sizeof(c->pub_url)) ||
	    !fz_terminated(c->tcp_url, sizeof(c->tcp_url)) ||
	    !fz_terminated(c->metrics_listen, sizeof(c->metrics_listen)))
		fz_fail("unterminated string in an accepted config");
	if (!c->instance[0])
		fz_fail("empty instance accepted");
	if (c->tick_ns < 10000 || c->tick_ns > 1000000000ull)
		fz_fail("tick_ns %llu", (unsigned long long)c->tick_ns);
	if (c->heartbeat_bound_ns < 1000000ull || c->heartbeat_bound_ns > 60000000000ull)
		fz_fail("heartbeat_bound_ns %llu",
		        (unsigned long long)c->heartbeat_bound_ns);
	if (c->max_msg < 1024 || c->max_msg > BK_TRANSPORT_MAX)
		fz_fail("max_msg %u", c->max_msg);
	if (c->reason_max < 16 || c->reason_max > 2048)
		fz_fail("reason_max %u", c->reason_max);
	if ((c->shm_mode & 0133) || (c->tel_mode & 0111))
		fz_fail("segment modes %o %o", (unsigned)c->shm_mode,
		        (unsigned)c->tel_mode);
	for (int a = 0; a < BK_ACT_COUNT; a++)
		if (c->acl[a].n_uids < 0 || c->acl[a].n_uids > BK_AUTH_MAX ||
		    c->acl[a].n_gids < 0 || c->acl[a].n_gids > BK_AUTH_MAX)
			fz_fail("auth lists of %s: %d %d", bk_act_name((enum bk_act)a),
			        c->acl[a].n_uids, c->acl[a].n_gids);
	if (c->n_strategies < 0 || c->n_strategies > BK_CFG_STRATEGIES)
		fz_fail("n_strategies %d", c->n_strategies);
	for (int i = 0; i < c->n_strategies; i++)
		if (!fz_terminated(c->strategies[i], BK_NAME_MAX) || !c->strategies[i][0])
			fz_fail("strategy %d name", i);
	if (c->metrics_listen[0] && (bk_listen_parse(c->metrics_listen, &lo) < 0 ||
	                             (!lo && !c->metrics_allow_remote)))
		fz_fail("metrics listen '%s' accepted", c->metrics_listen);
	for (int i = 0; i < BK_WARN_LEVELS; i++)
		if (!(rc->warn[i] > 0 && rc->warn[i] <= 1) ||
		    (i && !(rc->warn[i] > rc->warn[i - 1])))
			fz_fail("warn levels");
	if (rc->n_over < 0 || rc->n_over > BK_RULE_OVERRIDES)
		fz_fail("n_over %d", rc->n_over);
	for (int id = 0; id < BK_RULE_COUNT; id++)
		check_rule(&rc->dflt[id], id, "[rules]");
	for (int o = 0; o < rc->n_over; o++) {
		if (!fz_terminated(rc->over[o].name, BK_NAME_MAX))
			fz_fail("override %d name", o);
		for (int id = 0; id < BK_RULE_COUNT; id++)
			check_rule(&rc->over[o].rule[id], id, rc->over[o].name);
		if (bk_rules_for(rc, rc->over[o].name) == NULL)
			fz_fail("no rules for override %s", rc->over[o].name);
	}
	/* a strategy without a [rules:NAME] section gets the [rules] defaults */
	for (int o = 0; o < rc->n_over; o++)
		named |= strcmp(rc->over[o].name, probe) == 0;
	if (!named && bk_rules_for(rc, probe) != rc->dflt)
		fz_fail("rules for an unknown name are not the defaults");
	bk_config_metrics_url(c, url, sizeof(url));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	int rv;

	fz_write_file(path, data, size);
	if (bk_config_defaults(&cfg, "fuzz") < 0)
		fz_fail("defaults refused");
	memcpy(&before, &cfg, sizeof(cfg)); /* padding too: compared with memcmp */
	err[0] = '\0';
	rv = bk_config_load(&cfg, path, err, sizeof(err));
	if (rv < 0) {
		if (rv != -EINVAL)
			fz_fail("load: unexpected %d (%s)", rv, err);
		if (!err[0] || !fz_terminated(err, sizeof(err)))
			fz_fail("refused without saying why");
		if (memcmp(&cfg, &before, sizeof(cfg)))
			fz_fail("refused file changed cfg (%s)", err);
		return 0;
	}
	check_accepted(&cfg);
	return 0;
}
