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
	cr_assert_eq(c.n_resume_uids, 2);
	cr_assert_eq(c.resume_uids[1], 1001u);
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
