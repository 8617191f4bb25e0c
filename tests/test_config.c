/* Config: embedded defaults, overrides, and bad files that change nothing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_config.h"

static char path[64];

static void write_ini(const char *text)
{
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/bk-cfg-%d.ini", (int)getpid());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void cleanup(void)
{
	unlink(path);
}

TestSuite(config, .fini = cleanup);

Test(config, defaults_need_no_file)
{
	struct bk_config c;

	cr_assert_eq(bk_config_defaults(&c, NULL), 0);
	cr_assert_str_eq(c.instance, "default");
	cr_assert_eq(c.tick_ns, 100000u);
	cr_assert_eq(c.tcp_url[0], '\0', "TCP is off unless configured");
	cr_assert(strncmp(c.cmd_url, "ipc://", 6) == 0);
	cr_assert(strstr(c.cmd_url, "default.cmd") != NULL);
	cr_assert(strstr(c.audit_path, "/default/audit.log") != NULL);
	cr_assert_eq(c.shm_mode & 0022, 0, "segment never writable by others");
	cr_assert_eq(bk_config_defaults(&c, "bad/name"), -EINVAL);
}

Test(config, file_overrides_and_derives_paths)
{
	struct bk_config c;
	char err[256];

	write_ini("; comment\n[breaker]\ninstance = desk7\nrun_dir = /tmp/r\n"
	          "state_dir = /tmp/s\ntick_period_us = 250\n"
	          "[auth]\nresume_uids = 0, 1001\n[strategies]\nnames = a-1, b-2\n");
	cr_assert_eq(bk_config_defaults(&c, NULL), 0);
	cr_assert_eq(bk_config_load(&c, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.instance, "desk7");
	cr_assert_str_eq(c.cmd_url, "ipc:///tmp/r/desk7.cmd");
	cr_assert_str_eq(c.audit_path, "/tmp/s/audit.log");
	cr_assert_eq(c.tick_ns, 250000u);
	cr_assert_eq(c.acl[BK_ACT_RESUME].n_uids, 2);
	cr_assert_eq(c.acl[BK_ACT_RESUME].uids[1], 1001u);
	cr_assert_eq(c.n_strategies, 2);
	cr_assert_str_eq(c.strategies[1], "b-2");
}

static void expect_refused(const char *text, const char *needle)
{
	struct bk_config c, before;
	char err[256] = "";

	write_ini(text);
	cr_assert_eq(bk_config_defaults(&c, NULL), 0);
	before = c;
	cr_assert_eq(bk_config_load(&c, path, err, sizeof(err)), -EINVAL, "accepted: %s",
	             text);
	cr_assert(strstr(err, needle) != NULL, "error '%s' should mention '%s'", err,
	          needle);
	cr_assert(memcmp(&c, &before, sizeof(c)) == 0, "a refused file changes nothing");
}

Test(config, bad_files_name_the_line)
{
	expect_refused("[breaker]\n\nbogus = 1\n", "line 3");
	expect_refused("[breaker]\nbogus = 1\n", "unknown key 'bogus'");
	expect_refused("[nosuch]\nx = 1\n", "section [nosuch]");
	expect_refused("[breaker]\ntick_period_us = 0\n", "tick_period_us");
	expect_refused("[breaker]\ntick_period_us = -5\n", "tick_period_us");
	expect_refused("[breaker]\ntick_period_us = 10x\n", "tick_period_us");
	expect_refused("[breaker]\nshm_mode = 0666\n", "shm_mode");
	expect_refused("[breaker]\ninstance = a/b\n", "instance");
	expect_refused("[breaker]\nrun_dir = relative\n", "run_dir");
	expect_refused("[commands]\ntcp_url = http://x\n", "tcp_url");
	expect_refused("[auth]\nresume_uids = no-such-user-bk\n", "resume_uids");
	expect_refused("[strategies]\nnames = 0123456789012345678901234567890123456789\n",
	               "names");
	expect_refused("[breaker\n", "line 1");
}

Test(config, missing_file_is_an_error)
{
	struct bk_config c;
	char err[256];

	bk_config_defaults(&c, NULL);
	cr_assert_eq(bk_config_load(&c, "/nonexistent/breaker.ini", err, sizeof(err)),
	             -ENOENT);
	cr_assert(strstr(err, "/nonexistent/breaker.ini") != NULL);
}

/* [rules:NAME] inherits every [rules] default, wherever [rules] is in the file. */
Test(config, rules_override_before_defaults_inherits_them)
{
	struct bk_config c;
	char err[256];
	const struct bk_rule_cfg *over = NULL;

	write_ini("[rules:alpha]\nreject_rate.window_ms = 7000\n"
	          "[rules]\nreject_rate.max = 0.25\nreject_rate.cooldown_ms = 9000\n");
	cr_assert_eq(bk_config_defaults(&c, NULL), 0);
	cr_assert_eq(bk_config_load(&c, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.rules.n_over, 1);
	cr_assert_str_eq(c.rules.over[0].name, "alpha");
	over = c.rules.over[0].rule;
	cr_assert(over[BK_RULE_REJECT_RATE].enabled, "inherits the default's enable");
	cr_assert_float_eq(over[BK_RULE_REJECT_RATE].max, 0.25, 1e-12,
	                   "inherits the default's max though [rules] comes after");
	cr_assert_eq(over[BK_RULE_REJECT_RATE].cooldown_ms, 9000u);
	cr_assert_eq(over[BK_RULE_REJECT_RATE].window_ms, 7000u, "its own key wins");
	cr_assert_neq(c.rules.dflt[BK_RULE_REJECT_RATE].window_ms, 7000u,
	              "the override does not leak into [rules]");
}

/* Which explicit settings each kind of key leaves. */
Test(config, table_kinds_store_what_the_file_says)
{
	struct bk_config c;
	char err[256];

	write_ini("[breaker]\nrealtime_priority = 7\nbusy_poll = true\n"
	          "heartbeat_bound_ms = 20\nshm_mode = 0640\ntelemetry_mode = 660\n"
	          "[commands]\nmax_message_bytes = 2048\nreason_max_bytes = 64\n"
	          "socket_mode = 0600\nidle_timeout_ms = 500\nmax_conns_per_uid = 3\n"
	          "[auth]\ntwo_person_global_resume = true\nconfirm_window_s = 30\n"
	          "trip_uids = 0, 5\nkill_gids = any\nreport_gids = 0\n"
	          "[tls]\nca_file = /x/ca.pem\n[metrics]\nlisten =\n");
	cr_assert_eq(bk_config_defaults(&c, NULL), 0);
	cr_assert_eq(bk_config_load(&c, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.rt_priority, 7);
	cr_assert(c.busy_poll);
	cr_assert_eq(c.heartbeat_bound_ns, 20000000u);
	cr_assert_eq(c.shm_mode, 0640);
	cr_assert_eq(c.tel_mode, 0660);
	cr_assert_eq(c.max_msg, 2048u);
	cr_assert_eq(c.reason_max, 64u);
	cr_assert_eq(c.sock_mode, 0600);
	cr_assert_eq(c.idle_timeout_ms, 500u);
	cr_assert_eq(c.max_conns_per_uid, 3u);
	cr_assert(c.two_person_global_resume);
	cr_assert_eq(c.confirm_window_s, 30u);
	cr_assert_str_eq(c.tls_ca, "/x/ca.pem");
	cr_assert_eq(c.metrics_listen[0], '\0', "listen = (empty) turns metrics off");

	struct bk_acl a;
	bk_config_acl(&c, BK_ACT_TRIP, &a);
	cr_assert(!a.any && a.n_uids == 2 && a.uids[1] == 5);
	bk_config_acl(&c, BK_ACT_KILL, &a);
	cr_assert(a.any && a.n_uids == 0, "kill's own lists, not trip's");
	bk_config_acl(&c, BK_ACT_REPORT, &a);
	cr_assert(a.n_gids == 1 && a.gids[0] == 0);
	bk_config_acl(&c, BK_ACT_FORCE, &a);
	cr_assert(a.n_uids >= 1 && a.uids[0] == geteuid(), "force follows resume");

	expect_refused("[breaker]\nbusy_poll = yes\n", "busy_poll");
	expect_refused("[metrics]\nallow_remote = 1\n", "allow_remote");
	expect_refused("[commands]\nsocket_mode = 0800\n", "socket_mode");
	expect_refused("[breaker]\nrealtime_priority = 100\n", "realtime_priority");
	expect_refused("[tls]\ncert_file = rel.pem\n", "absolute path");
	expect_refused("[commands]\nipc_url = tcp://x\n", "ipc_url");
}

/* Run breakerd --check-only; its one line of output in out. */
static void check_only(const char *instance, char *out, size_t len)
{
	char cmd[512];
	const char *bin = getenv("BREAKERD");
	FILE *p;
	size_t n;

	cr_assert_not_null(bin, "BREAKERD is set by ctest");
	snprintf(cmd, sizeof(cmd), "'%s' --config %s --instance %s --check-config 2>&1",
	         bin, path, instance);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, len - 1, p);
	out[n] = '\0';
	cr_assert_eq(pclose(p), 0, "%s", out);
}

/* breakerd --instance over the file's instance: derived URLs follow it, URLs the
 * file gave explicitly stay what the file says. */
Test(config, explicit_urls_survive_an_instance_change)
{
	char out[1024];

	write_ini("[breaker]\ninstance = filed\nrun_dir = /tmp/bk-cfg-run\n"
	          "state_dir = /tmp/bk-cfg-state\n"
	          "[commands]\nipc_url = ipc:///tmp/bk-cfg-explicit.cmd\n");
	check_only("other", out, sizeof(out));
	cr_assert(strstr(out, "instance other,"), "%s", out);
	cr_assert(strstr(out, "commands ipc:///tmp/bk-cfg-explicit.cmd,"),
	          "the file's explicit ipc_url survives --instance: %s", out);

	write_ini("[breaker]\ninstance = filed\nrun_dir = /tmp/bk-cfg-run\n"
	          "state_dir = /tmp/bk-cfg-state\n");
	check_only("other", out, sizeof(out));
	cr_assert(strstr(out, "commands ipc:///tmp/bk-cfg-run/other.cmd,"),
	          "a derived URL follows --instance: %s", out);
}

/* Each kind of rule key: where it goes, and what it refuses. */
Test(config, rule_keys_store_what_the_file_says)
{
	struct bk_config c;
	char err[256];
	const struct bk_rule_cfg *r;

	write_ini("[rules]\ndrawdown.max_pct = 25\ndrawdown.action = reduce_only\n"
	          "drawdown.scope = global\ndrawdown.cooldown_ms = 5000\n"
	          "drawdown.cooldown_to = cautious\ndrawdown.rearm_ms = 700\n"
	          "reject_rate.max = 0.5\nreject_rate.enabled = false\n"
	          "reject_rate.min_orders = 40\n");
	cr_assert_eq(bk_config_defaults(&c, NULL), 0);
	cr_assert_eq(bk_config_load(&c, path, err, sizeof(err)), 0, "%s", err);
	r = &c.rules.dflt[BK_RULE_DRAWDOWN];
	cr_assert(r->enabled, "a limit enables its rule");
	cr_assert_float_eq(r->max_pct, 0.25, 1e-12, "percent, stored as a fraction");
	cr_assert_eq(r->action, BK_REDUCE_ONLY);
	cr_assert(r->global);
	cr_assert_eq(r->cooldown_ms, 5000u);
	cr_assert_eq(r->cooldown_to, BK_CAUTIOUS);
	cr_assert_eq(r->rearm_ms, 700u);
	r = &c.rules.dflt[BK_RULE_REJECT_RATE];
	cr_assert(!r->enabled, "enabled = false after the limit turns it off again");
	cr_assert_float_eq(r->max, 0.5, 1e-12);
	cr_assert_eq(r->min_orders, 40u);

	expect_refused("[rules]\ndrawdown.action = active\n", "drawdown.action");
	expect_refused("[rules]\ndrawdown.cooldown_to = active\n",
	               "drawdown.cooldown_to");
	expect_refused("[rules]\ndrawdown.cooldown_to = halted\n",
	               "drawdown.cooldown_to");
	expect_refused("[rules]\ndrawdown.scope = all\n", "drawdown.scope");
	expect_refused("[rules]\ndrawdown.max_pct = 101\n", "drawdown.max_pct");
	expect_refused("[rules]\nreject_rate.window_ms = 0\n", "reject_rate.window_ms");
	expect_refused("[rules]\nreject_rate.enabled = 1\n", "reject_rate.enabled");
	expect_refused("[rules]\nreject_rate.colour = red\n", "unknown rule key");
}
