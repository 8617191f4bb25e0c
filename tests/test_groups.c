/*
 * Integration: groups (issue 14 items 1-2) against a real breakerd, the real
 * CLI and the real C client. A group holds its own latches; an engine's
 * mode is the strictest of global, its groups and its strategy, folded by
 * breakerd into the word bk_check already reads. Several scopes in one
 * command: all or nothing.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_mode.h"
#include "bk_shm.h"
#include "bk_tel.h"

#define STRATS                                                                           \
	"[strategies]\nnames = alpha, beta, gamma\n[rules]\nheartbeat.enabled = false\n" \
	"[metrics]\nlisten =\n"
#define NOBODY 65534

static char out[1 << 16];

#define cli(h, ...) bk_h_cli_all(h, out, sizeof(out), __VA_ARGS__, NULL)
#define cli_nobody(h, ...)                                                               \
	bk_h_cli_as(h, NOBODY, NOBODY, NULL, (char *[]){__VA_ARGS__, NULL}, out,         \
	            sizeof(out))

static struct bk_h *up(struct bk_h *h, const char *tag, const char *extra)
{
	bk_h_init(h, tag, extra ? extra : STRATS);
	bk_h_start(h);
	return h;
}

static void down(struct bk_h *h)
{
	bk_h_fini(h);
	bk_tel_unlink(h->instance);
}

static int slot_of(struct bk_client *c, const char *name)
{
	int s = bk_client_resolve(c, name);
	cr_assert_geq(s, 0, "%s is registered", name);
	return s;
}

/* Register name with the groups given (NULL-terminated). */
static void reg(struct bk_h *h, const char *name, const char *g1, const char *g2)
{
	int rv;

	if (g2)
		rv = cli(h, "register", name, "--group", g1, "--group", g2);
	else if (g1)
		rv = cli(h, "register", name, "--group", g1);
	else
		rv = cli(h, "register", name);
	cr_assert_eq(rv, 0, "register %s: %s", name, out);
}

Test(groups, an_engine_in_two_groups_resumed_in_one_is_still_held_by_the_other)
{
	struct bk_h h;
	struct bk_client c;
	struct bk_reason r;
	int s;

	up(&h, "g2", NULL);
	reg(&h, "momo", "venue:XETR", "desk:eu-delta");
	bk_h_attach(&h, &c);
	s = slot_of(&c, "momo");
	cr_assert_eq(bk_check(&c, s), BK_ACTIVE);

	cr_assert_eq(cli(&h, "trip", "manual_halt", "--group", "venue:XETR", "--reason",
	                 "venue down"),
	             0, "%s", out);
	cr_assert_eq(bk_check(&c, s), BK_HALTED, "the group's trip holds its member");
	bk_read_reason(&c, s, &r);
	cr_assert_eq(r.scope, BK_SCOPE_GROUP);
	cr_assert_str_eq(r.scope_name, "venue:XETR");
	cr_assert_eq(r.reason_code, BK_R_MANUAL_HALT);

	cr_assert_eq(
	    cli(&h, "kill", "--group", "desk:eu-delta", "--reason", "desk limit"), 0,
	    "%s", out);
	cr_assert_eq(cli(&h, "resume", "--group", "venue:XETR", "--to", "active",
	                 "--force", "--reason", "venue back"),
	             0, "%s", out);
	/* resumed in venue:XETR, still held by desk:eu-delta */
	cr_assert_eq(bk_check(&c, s), BK_HALTED, "the other group still holds it");
	bk_read_reason(&c, s, &r);
	cr_assert_eq(r.scope, BK_SCOPE_GROUP);
	cr_assert_str_eq(r.scope_name, "desk:eu-delta");
	cr_assert_eq(r.reason_code, BK_R_KILL_SWITCH);
	cr_assert_eq(cli(&h, "status"), 0, "%s", out);
	cr_assert(strstr(out, "group desk:eu-delta: HALTED"), "%s", out);
	cr_assert(strstr(out, "group venue:XETR: ACTIVE"), "%s", out);
	cr_assert(strstr(out, "strategies: 4 registered, 0 tripped"), "%s", out);
	/* the audit log names the group, never "global" */
	cr_assert_eq(cli(&h, "audit"), 0, "%s", out);
	cr_assert(strstr(out, "group:venue:XETR"), "%s", out);
	cr_assert(strstr(out, "group:desk:eu-delta"), "%s", out);
	cr_assert_eq(cli(&h, "audit", "--json"), 0, "%s", out);
	cr_assert_eq(bk_h_count(out, "\"group\":\"venue:XETR\""), 2, "trip, resume: %s",
	             out);

	/* staged like a strategy: one step, still restrictive */
	cr_assert_eq(cli(&h, "resume", "--group", "desk:eu-delta", "--reason", "ok"), 0,
	             "%s", out);
	cr_assert_eq(bk_check(&c, s), BK_REDUCE_ONLY);
	cr_assert_eq(cli(&h, "resume", "--group", "desk:eu-delta", "--to", "active",
	                 "--force", "--reason", "ok"),
	             0, "%s", out);
	cr_assert_eq(bk_check(&c, s), BK_ACTIVE);
	bk_read_reason(&c, s, &r);
	cr_assert_eq(r.scope, BK_SCOPE_NONE);
	bk_client_detach(&c);
	down(&h);
}

Test(groups, a_group_trip_is_visible_to_every_member_before_the_cli_returns)
{
	struct bk_h h;
	struct bk_client c;
	char name[32];
	int slots[40], other;

	up(&h, "gvis", NULL);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "m%02d", i);
		reg(&h, name, "venue:XNYS", i % 2 ? "desk:us" : NULL);
	}
	bk_h_attach(&h, &c);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "m%02d", i);
		slots[i] = slot_of(&c, name);
	}
	other = slot_of(&c, "alpha");
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--group", "venue:XNYS", "--reason",
	                 "exchange down"),
	             0, "%s", out);
	/* no waiting: the reply came after every member's word flipped */
	for (int i = 0; i < 40; i++)
		cr_assert_eq(bk_check(&c, slots[i]), BK_HALTED, "member m%02d", i);
	cr_assert_eq(bk_check(&c, other), BK_ACTIVE, "a non-member is untouched");
	cr_assert_eq(bk_check(&c, BK_GLOBAL_ONLY), BK_ACTIVE);
	/* the operator's status counts the members held by the group */
	cr_assert_eq(cli(&h, "status"), 0, "%s", out);
	cr_assert(strstr(out, "0 tripped, 40 more held by groups"), "%s", out);
	bk_client_detach(&c);
	down(&h);
}

Test(groups, a_restart_replays_group_latches_and_membership)
{
	struct bk_h h;
	struct bk_client c;
	struct bk_reason r;

	up(&h, "grst", NULL);
	reg(&h, "s1", "account:ACC-7", NULL);
	reg(&h, "s2", "account:ACC-7", "trader:T42");
	cr_assert_eq(cli(&h, "trip", "exposure_limit", "--group", "account:ACC-7",
	                 "--mode", "reduce-only", "--reason", "acct limit"),
	             0, "%s", out);
	/* a member added after the trip is held at once, and stays a member */
	cr_assert_eq(
	    cli(&h, "group", "add", "alpha", "account:ACC-7", "--reason", "moved"), 0,
	    "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, "alpha"), BK_REDUCE_ONLY);
	/* s2 leaves trader:T42 (not tripped: allowed) */
	cr_assert_eq(cli(&h, "group", "remove", "s2", "trader:T42"), 0, "%s", out);
	cr_assert_eq(bk_h_stop(&h), 0);
	/* from the log alone: no segment to take over */
	bk_shm_unlink(h.instance);
	bk_h_start(&h);
	bk_h_attach(&h, &c);
	for (const char *const *n = (const char *const[]){"s1", "s2", "alpha", NULL}; *n;
	     n++) {
		int s = slot_of(&c, *n);
		cr_assert_eq(bk_check(&c, s), BK_REDUCE_ONLY, "%s after restart", *n);
		bk_read_reason(&c, s, &r);
		cr_assert_str_eq(r.scope_name, "account:ACC-7", "%s", *n);
		cr_assert_eq(r.reason_code, BK_R_EXPOSURE_LIMIT);
	}
	cr_assert_eq(bk_check(&c, slot_of(&c, "beta")), BK_ACTIVE);
	cr_assert_eq(cli(&h, "status"), 0, "%s", out);
	cr_assert(strstr(out, "group account:ACC-7: REDUCE_ONLY"), "%s", out);
	cr_assert(strstr(out, "[3 members]"), "%s", out);
	cr_assert(strstr(out, "group trader:T42: ACTIVE (no latches) [0 members]"), "%s",
	          out);
	bk_client_detach(&c);
	down(&h);
}

Test(groups, kill_of_three_with_one_typo_changes_nothing)
{
	struct bk_h h;
	struct bk_client c;
	int a, b, g;
	uint32_t seq;

	up(&h, "gtypo", NULL);
	bk_h_attach(&h, &c);
	a = slot_of(&c, "alpha");
	b = slot_of(&c, "beta");
	g = slot_of(&c, "gamma");
	seq = bk_change_seq(&c);
	cr_assert_eq(cli(&h, "kill", "alpha", "beta", "gamam", "--reason", "runaway"), 1,
	             "%s", out);
	cr_assert(strstr(out, "unknown strategy 'gamam'"), "%s", out);
	cr_assert(strstr(out, "nothing changed"), "%s", out);
	cr_assert_eq(bk_check(&c, a), BK_ACTIVE);
	cr_assert_eq(bk_check(&c, b), BK_ACTIVE);
	cr_assert_eq(bk_change_seq(&c), seq, "nothing was published");
	cr_assert_eq(cli(&h, "audit", "--json"), 0, "%s", out);
	cr_assert_null(strstr(out, "\"kind\":\"TRIP\""), "no trip record: %s", out);

	/* the same with a bad group among good strategies */
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--strategy", "alpha", "--group",
	                 "venue:NOPE"),
	             1, "%s", out);
	cr_assert(strstr(out, "unknown group 'venue:NOPE'"), "%s", out);
	cr_assert_eq(bk_check(&c, a), BK_ACTIVE);

	/* all three: one command, every one latched, one change_seq bump */
	seq = bk_change_seq(&c);
	cr_assert_eq(cli(&h, "kill", "alpha", "beta", "gamma", "--reason", "runaway"), 0,
	             "%s", out);
	cr_assert(strstr(out, "HALTED 3 scopes"), "%s", out);
	cr_assert_eq(bk_check(&c, a), BK_HALTED);
	cr_assert_eq(bk_check(&c, b), BK_HALTED);
	cr_assert_eq(bk_check(&c, g), BK_HALTED);
	cr_assert_eq(bk_change_seq(&c), seq + 1, "one bump for the whole command");
	cr_assert_eq(cli(&h, "audit", "--json"), 0, "%s", out);
	cr_assert_eq(bk_h_count(out, "\"kind\":\"TRIP\""), 3, "a record per scope: %s",
	             out);
	/* trip --strategy repeated */
	cr_assert_eq(cli(&h, "resume", "--strategy", "alpha", "--to", "active", "--force",
	                 "--reason", "ok"),
	             0, "%s", out);
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--strategy", "alpha", "--strategy",
	                 "beta", "--mode", "cautious"),
	             0, "%s", out);
	cr_assert_eq(bk_check(&c, a), BK_CAUTIOUS);
	bk_client_detach(&c);
	down(&h);
}

Test(groups, a_hostile_local_user_cannot_trip_or_change_a_group)
{
	struct bk_h h;
	struct bk_client c;
	int s;

	if (geteuid() != 0)
		cr_skip_test("needs root: runs the CLI as another user");
	/* trip is open to anyone by default (docs/security.md): restrict it as a
	 * site would, to root; resume and group changes are restricted anyway */
	up(&h, "ghost", STRATS "[commands]\nsocket_mode = 0666\n[auth]\ntrip_uids = 0\n");
	bk_h_open_dirs(&h);
	reg(&h, "s1", "venue:XETR", NULL);
	bk_h_attach(&h, &c);
	s = slot_of(&c, "s1");
	cr_assert_eq(cli_nobody(&h, "trip", "manual_halt", "--group", "venue:XETR"), 1,
	             "%s", out);
	cr_assert(strstr(out, "may not trip"), "%s", out);
	cr_assert_eq(cli_nobody(&h, "kill", "--group", "venue:XETR", "--reason", "x"), 1,
	             "%s", out);
	cr_assert(strstr(out, "may not kill"), "%s", out);
	cr_assert_eq(
	    cli_nobody(&h, "kill", "alpha", "--group", "venue:XETR", "--reason", "x"), 1,
	    "%s", out);
	cr_assert_eq(bk_check(&c, slot_of(&c, "alpha")), BK_ACTIVE);
	cr_assert_eq(bk_check(&c, s), BK_ACTIVE);
	/* nor move a strategy out of (or into) a group */
	cr_assert_eq(cli_nobody(&h, "group", "remove", "s1", "venue:XETR"), 1, "%s", out);
	cr_assert_eq(cli_nobody(&h, "group", "add", "alpha", "venue:XETR"), 1, "%s", out);
	cr_assert(strstr(out, "may not change a strategy's groups"), "%s", out);
	/* the refusals are audited naming the group, not as attempts on global */
	cr_assert_eq(cli(&h, "audit"), 0, "%s", out);
	cr_assert_geq(bk_h_count(out, "REFUSED    group:venue:XETR"), 3, "%s", out);
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--group", "venue:XETR"), 0, "%s",
	             out);
	cr_assert_eq(bk_check(&c, s), BK_HALTED);
	cr_assert_eq(bk_check(&c, slot_of(&c, "alpha")), BK_ACTIVE,
	             "alpha was not added");
	cr_assert_eq(cli_nobody(&h, "resume", "--group", "venue:XETR", "--reason", "x"),
	             1, "%s", out);
	cr_assert_eq(bk_check(&c, s), BK_HALTED);
	bk_client_detach(&c);
	down(&h);
}

/* A Request packed by hand: what a client that skips the CLI's checks sends. */
static Breaker__Reply *raw(struct bk_h *h, Breaker__Request *req)
{
	static uint8_t buf[4096];
	size_t n = breaker__request__pack(req, buf);

	return bk_h_raw_call(h, buf, n);
}

Test(groups, bad_group_input_is_refused_with_nothing_changed)
{
	struct bk_h h;
	struct bk_client c;
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__RegisterStrategy rs = BREAKER__REGISTER_STRATEGY__INIT;
	Breaker__Trip tr = BREAKER__TRIP__INIT;
	Breaker__Reply *r;
	char *nine[] = {"venue:a",   "venue:b",  "venue:c", "desk:d", "desk:e",
	                "account:f", "trader:g", "host:h",  "host:i"};
	char *badkind[] = {"region:EU"}, *empty[] = {"venue:"}, *chars[] = {"venue:X Y"};
	char **bad[] = {badkind, empty, chars};
	const char *why[] = {"unknown group kind", "empty", "[A-Za-z0-9._-]"};
	uint32_t count;

	up(&h, "gbad", NULL);
	bk_h_attach(&h, &c);
	/* the CLI refuses before sending */
	cr_assert_eq(cli(&h, "register", "x1", "--group", "region:EU"), 2, "%s", out);
	cr_assert_eq(cli(&h, "register", "x1", "--group", "venue:"), 2, "%s", out);
	cr_assert_eq(cli(&h, "group", "add", "alpha", "venue"), 2, "%s", out);
	/* breakerd refuses the same, sent raw */
	req.cmd_case = BREAKER__REQUEST__CMD_REGISTER;
	req.register_ = &rs;
	rs.strategy = "x1";
	for (int i = 0; i < 3; i++) {
		rs.n_groups = 1;
		rs.groups = bad[i];
		r = raw(&h, &req);
		cr_assert_eq(r->status, BREAKER__STATUS__ERR_BAD_REQUEST, "%s",
		             bad[i][0]);
		cr_assert(strstr(r->error, why[i]), "%s: %s", bad[i][0], r->error);
		breaker__reply__free_unpacked(r, NULL);
	}
	rs.n_groups = 9;
	rs.groups = nine;
	r = raw(&h, &req);
	cr_assert_eq(r->status, BREAKER__STATUS__ERR_BAD_REQUEST);
	cr_assert(strstr(r->error, "at most 8"), "%s", r->error);
	breaker__reply__free_unpacked(r, NULL);
	count = c.shm->hdr.strategy_count;
	cr_assert_eq(bk_client_resolve(&c, "x1"), -ENOENT,
	             "no slot for a refused register");
	cr_assert_eq(atomic_load(&c.shm->hdr.group_count), 0, "no group made");
	/* eight is fine */
	rs.n_groups = 8;
	r = raw(&h, &req);
	cr_assert_eq(r->status, BREAKER__STATUS__OK, "%s", r->error ? r->error : "");
	breaker__reply__free_unpacked(r, NULL);
	cr_assert_eq(c.shm->hdr.strategy_count, count + 1);
	cr_assert_eq(atomic_load(&c.shm->hdr.group_count), 8);
	cr_assert_eq(cli(&h, "group", "add", "x1", "host:i"), 1, "a ninth: %s", out);
	cr_assert(strstr(out, "in 8 groups already"), "%s", out);

	/* a trip of a group nobody is in: refused (a typo, most likely) */
	cr_assert_eq(cli(&h, "group", "add", "alpha", "desk:solo"), 0, "%s", out);
	cr_assert_eq(cli(&h, "group", "remove", "alpha", "desk:solo"), 0, "%s", out);
	req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req.trip = &tr;
	tr.has_reason_code = 1;
	tr.reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
	tr.n_groups = 1;
	tr.groups = (char *[]){"desk:solo"};
	r = raw(&h, &req);
	cr_assert_eq(r->status, BREAKER__STATUS__ERR_UNKNOWN_GROUP);
	cr_assert(strstr(r->error, "no members"), "%s", r->error);
	breaker__reply__free_unpacked(r, NULL);
	tr.groups = (char *[]){"venue:a"};
	r = raw(&h, &req);
	cr_assert_eq(r->status, BREAKER__STATUS__OK, "%s", r->error ? r->error : "");
	breaker__reply__free_unpacked(r, NULL);
	cr_assert_eq(bk_check(&c, slot_of(&c, "x1")), BK_HALTED);

	/* leaving a group that holds a latch would release the member: refused */
	cr_assert_eq(cli(&h, "group", "remove", "x1", "venue:a"), 1, "%s", out);
	cr_assert(strstr(out, "resume the group first"), "%s", out);
	cr_assert_eq(bk_check(&c, slot_of(&c, "x1")), BK_HALTED);
	/* in a group twice */
	cr_assert_eq(cli(&h, "group", "add", "x1", "venue:a"), 1, "%s", out);
	bk_client_detach(&c);
	down(&h);
}

#define CFG_GROUPS                                                                       \
	"[strategies]\nnames = alpha, beta, gamma\n"                                     \
	"groups = alpha=venue:XETR, beta=venue:XETR, beta=desk:eu-delta\n"               \
	"[rules]\nheartbeat.enabled = false\n[metrics]\nlisten =\n"

Test(groups, groups_in_the_config_are_joined_once_at_start)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "gcfg", CFG_GROUPS);
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--group", "venue:XETR"), 0, "%s",
	             out);
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_check(&c, slot_of(&c, "alpha")), BK_HALTED);
	cr_assert_eq(bk_check(&c, slot_of(&c, "beta")), BK_HALTED);
	cr_assert_eq(bk_check(&c, slot_of(&c, "gamma")), BK_ACTIVE);
	bk_client_detach(&c);
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_h_start(&h);
	cr_assert_eq(cli(&h, "audit", "--json"), 0, "%s", out);
	cr_assert_eq(bk_h_count(out, "\"kind\":\"GROUP_ADD\""), 3,
	             "once, not per start: %s", out);
	cr_assert_eq(cli(&h, "strategies"), 0, "%s", out);
	cr_assert(strstr(out, "groups: venue:XETR desk:eu-delta"), "%s", out);
	down(&h);
}

/* Poll the audit log (as JSON) until it holds n records of kind; its count. */
static int wait_records(struct bk_h *h, const char *kind, int n)
{
	char needle[64];
	int got = 0;

	snprintf(needle, sizeof(needle), "\"kind\":\"%s\"", kind);
	for (int i = 0; i < 500 && got < n; i++) {
		cr_assert_eq(cli(h, "audit", "--json"), 0, "%s", out);
		if ((got = bk_h_count(out, needle)) < n)
			usleep(10000);
	}
	return got;
}

/*
 * An operator adds a pair to [strategies] groups and sends SIGHUP: the
 * strategy joins (stricter only: a latch already on the group holds it at
 * once), audited. A pair taken out of the file is NOT left: that would
 * release a strategy without an audited command; the CONFIG record says so.
 */
Test(groups, sighup_joins_groups_added_to_the_file_and_never_leaves_silently)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "ghup", CFG_GROUPS);
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--group", "venue:XETR"), 0, "%s",
	             out);
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_check(&c, slot_of(&c, "gamma")), BK_ACTIVE);
	bk_h_write_config(&h, h.config,
	                  "[strategies]\nnames = alpha, beta, gamma\n"
	                  "groups = alpha=venue:XETR, gamma=venue:XETR, "
	                  "gamma=account:A1\n"
	                  "[rules]\nheartbeat.enabled = false\n[metrics]\nlisten =\n");
	kill(h.pid, SIGHUP);
	cr_assert_eq(wait_records(&h, "CONFIG", 1), 1, "%s", out);
	cr_assert_eq(bk_h_count(out, "\"kind\":\"GROUP_ADD\""), 5,
	             "3 at start, gamma's 2 on SIGHUP: %s", out);
	cr_assert(strstr(out, "beta=venue:XETR"),
	          "the CONFIG record names the pair not left: %s", out);
	cr_assert_eq(bk_check(&c, slot_of(&c, "gamma")), BK_HALTED,
	             "gamma joined a halted group: held at once");
	cr_assert_eq(bk_check(&c, slot_of(&c, "beta")), BK_HALTED,
	             "beta was not released by the file");
	cr_assert_eq(cli(&h, "strategies"), 0, "%s", out);
	cr_assert(strstr(out, "groups: venue:XETR account:A1"), "%s", out);
	bk_client_detach(&c);
	down(&h);
}

static int load(const char *ini, char *err, size_t len)
{
	static struct bk_config cfg;
	char path[] = "/tmp/bk-groupcfg-XXXXXX";
	int fd = mkstemp(path), rv;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, ini, strlen(ini)), (ssize_t)strlen(ini));
	close(fd);
	cr_assert_eq(bk_config_defaults(&cfg, "groupcfg"), 0);
	rv = bk_config_load(&cfg, path, err, len);
	unlink(path);
	return rv;
}

Test(groups, bad_groups_in_the_config_are_refused)
{
	static const char *const bad[][2] = {
	    {"groups = alpha=region:EU\n", "unknown group kind"},
	    {"groups = alpha=venue:\n", "empty"},
	    {"groups = alpha venue:XETR\n", "strategy=kind:value"},
	    {"groups = alpha=venue:X, alpha=venue:X\n", "twice"},
	    {"groups = a=venue:1, a=venue:2, a=venue:3, a=venue:4, a=venue:5, a=venue:6, "
	     "a=venue:7, a=venue:8, a=venue:9\n",
	     "more than 8"},
	};
	char ini[512], err[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(ini, sizeof(ini), "[strategies]\n%s", bad[i][0]);
		cr_assert_neq(load(ini, err, sizeof(err)), 0, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
	}
	cr_assert_eq(
	    load("[strategies]\ngroups = a=venue:1, a=desk:2\n", err, sizeof(err)), 0,
	    "%s", err);
}

/* The CLI with BREAKER_REQUEST_ID set: a resend, as nng's REQ would make. */
static int cli_id(struct bk_h *h, const char *id, char *const *args)
{
	char *argv[16] = {bk_h_cli_bin(), "--config", h->config};
	int n = 3;

	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	return bk_h_run_as(h, -1, -1, id, argv, out, sizeof(out));
}

Test(groups, request_ids_cover_group_commands_and_multi_scope_trips)
{
	struct bk_h h;
	struct bk_client c;

	up(&h, "gid", NULL);
	bk_h_attach(&h, &c);
	/* a resend of a kill of two: applied once */
	cr_assert_eq(cli_id(&h, "4242",
	                    (char *[]){"kill", "alpha", "beta", "--reason", "x", NULL}),
	             0, "%s", out);
	cr_assert_eq(cli_id(&h, "4242",
	                    (char *[]){"kill", "alpha", "beta", "--reason", "x", NULL}),
	             0, "%s", out);
	cr_assert(strstr(out, "already applied"), "%s", out);
	cr_assert_eq(cli(&h, "audit", "--json"), 0, "%s", out);
	cr_assert_eq(bk_h_count(out, "\"kind\":\"TRIP\""), 2, "two scopes, once: %s",
	             out);
	/* the id of a group add is not "already applied" for a remove */
	cr_assert_eq(
	    cli_id(&h, "77", (char *[]){"group", "add", "gamma", "venue:XETR", NULL}), 0,
	    "%s", out);
	cr_assert_eq(
	    cli_id(&h, "77", (char *[]){"group", "remove", "gamma", "venue:XETR", NULL}),
	    1, "%s", out);
	cr_assert(strstr(out, "ERR_REQUEST_ID_REUSED"), "%s", out);
	cr_assert_eq(cli(&h, "strategies"), 0, "%s", out);
	cr_assert(strstr(out, "groups: venue:XETR"), "gamma is still in it: %s", out);
	bk_client_detach(&c);
	down(&h);
}

Test(groups, a_crash_and_takeover_keeps_group_latches_on_the_group)
{
	struct bk_h h;
	struct bk_client c;
	struct bk_reason r;

	up(&h, "gcrash", NULL);
	reg(&h, "s1", "host:ny4-07", NULL);
	reg(&h, "s2", "host:ny4-07", NULL);
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--group", "host:ny4-07", "--reason",
	                 "host reboot"),
	             0, "%s", out);
	bk_h_kill9(&h);
	/* the segment stays: the new daemon takes it over and compares what
	 * engines saw with what the log says */
	bk_h_start(&h);
	bk_h_attach(&h, &c);
	for (const char *const *n = (const char *const[]){"s1", "s2", NULL}; *n; n++) {
		int s = slot_of(&c, *n);
		cr_assert_eq(bk_check(&c, s), BK_HALTED, "%s", *n);
		bk_read_reason(&c, s, &r);
		cr_assert_eq(r.scope, BK_SCOPE_GROUP, "%s still held by the group", *n);
	}
	/* no latch was "restored" onto the members from their folded words */
	cr_assert_eq(cli(&h, "status"), 0, "%s", out);
	cr_assert(strstr(out, "registered, 0 tripped"), "%s", out);
	cr_assert_null(strstr(out, "restored at boot"), "%s", out);
	/* and resuming the group frees them */
	cr_assert_eq(cli(&h, "resume", "--group", "host:ny4-07", "--to", "active",
	                 "--force", "--reason", "host back"),
	             0, "%s", out);
	cr_assert_eq(bk_check(&c, slot_of(&c, "s1")), BK_ACTIVE);
	cr_assert_eq(bk_check(&c, slot_of(&c, "s2")), BK_ACTIVE);
	bk_client_detach(&c);
	down(&h);
}

/* /metrics until it holds needle (renderings are 100 ms apart); the body. */
static const char *scrape_until(int port, const char *needle)
{
	static char buf[1 << 16];
	const char *body = NULL;

	for (int i = 0; i < 300; i++) {
		if (bk_h_http_get(port, "/metrics", buf, sizeof(buf), &body) == 200 &&
		    strstr(body, needle))
			return body;
		usleep(10000);
	}
	cr_assert_fail("/metrics never showed '%s':\n%s", needle,
	               body ? body : "(nothing)");
	return NULL;
}

Test(groups, metrics_show_the_group_and_its_members_as_engines_see_them)
{
	struct bk_h h;
	char ini[512];
	const char *body;
	int port = bk_h_free_port();

	snprintf(ini, sizeof(ini),
	         "[strategies]\nnames = alpha, beta\ngroups = alpha=venue:XETR\n[rules]\n"
	         "heartbeat.enabled = false\n[metrics]\nlisten = 127.0.0.1:%d\n",
	         port);
	up(&h, "gmet", ini);
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--group", "venue:XETR"), 0, "%s",
	             out);
	body =
	    scrape_until(port, "breaker_mode{scope=\"group\",group=\"venue:XETR\"} 3\n");
	/* alpha's engines are halted (the group's latch): the strategy line says so */
	cr_assert(strstr(body, "breaker_mode{scope=\"strategy\",strategy=\"alpha\"} 3\n"),
	          "%s", body);
	/* but alpha has no latch of its own */
	cr_assert_null(strstr(body, "breaker_strategy_own_mode{strategy=\"alpha\"}"),
	               "%s", body);
	cr_assert(strstr(body, "breaker_strategies{mode=\"active\"} 2\n"), "%s", body);
	cr_assert_null(strstr(body, "strategy=\"beta\"} 3"), "%s", body);
	down(&h);
}

Test(groups, a_full_group_table_is_refused_with_nothing_changed)
{
	struct bk_h h;
	struct bk_client c;
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__RegisterStrategy rs = BREAKER__REGISTER_STRATEGY__INIT;
	Breaker__Reply *r;
	char name[32], tags[8][32], *tp[8];

	up(&h, "gfull", NULL);
	bk_h_attach(&h, &c);
	req.cmd_case = BREAKER__REQUEST__CMD_REGISTER;
	req.register_ = &rs;
	rs.groups = tp;
	for (int s = 0; s < 32; s++) { /* 32 x 8 = every one of the 256 slots */
		snprintf(name, sizeof(name), "full%02d", s);
		for (int k = 0; k < 8; k++) {
			snprintf(tags[k], sizeof(tags[k]), "account:A%03d", s * 8 + k);
			tp[k] = tags[k];
		}
		rs.strategy = name;
		rs.n_groups = 8;
		r = raw(&h, &req);
		cr_assert_eq(r->status, BREAKER__STATUS__OK, "%s",
		             r->error ? r->error : "");
		breaker__reply__free_unpacked(r, NULL);
	}
	cr_assert_eq(atomic_load(&c.shm->hdr.group_count), 256);
	/* a 257th group: refused, and the strategy is not registered either */
	cr_assert_eq(cli(&h, "register", "late", "--group", "venue:NEW"), 1, "%s", out);
	cr_assert(strstr(out, "group table is full"), "%s", out);
	cr_assert_eq(bk_client_resolve(&c, "late"), -ENOENT);
	cr_assert_eq(cli(&h, "group", "add", "alpha", "venue:NEW"), 1, "%s", out);
	cr_assert(strstr(out, "ERR_TABLE_FULL"), "%s", out);
	/* joining an existing group still works */
	cr_assert_eq(cli(&h, "group", "add", "alpha", "account:A000"), 0, "%s", out);
	cr_assert_eq(atomic_load(&c.shm->hdr.group_count), 256);
	bk_client_detach(&c);
	down(&h);
}
