/*
 * Authorisation, as a user sees it: the [auth] policy for local
 * callers, refusals audited and rate-limited, TLS client certificates mapped
 * to roles, plaintext TCP only on loopback, and the two-person rule for
 * global resumes. A real breakerd, the real CLI, the real audit log. Callers
 * with other uids are forked as root (those tests are skipped otherwise);
 * TLS callers need no root: their identity is their certificate.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bk_auth.h"
#include "bk_harness.h"

/* no /metrics unless a test asks: parallel daemons would share the port */
#define STRATS "[strategies]\nnames = alpha, beta\n[metrics]\nlisten =\n"
#define NOBODY 65534

static char out[1 << 16];
static char audit[1 << 20];

/* ---- running the CLI, as us or as another user -------------------------------- */

/* argv as uid/gid (no supplementary groups) if uid >= 0; stdout+stderr in out. */
static int run_as(struct bk_h *h, int uid, int gid, char **argv)
{
	return bk_h_run_as(h, uid, gid, NULL, argv, out, sizeof(out));
}

static int cli_argv(struct bk_h *h, int uid, int gid, char **args)
{
	return bk_h_cli_as(h, uid, gid, NULL, args, out, sizeof(out));
}

#define cli(h, ...)        cli_argv(h, -1, -1, (char *[]){__VA_ARGS__, NULL})
#define cli_nobody(h, ...) cli_argv(h, NOBODY, NOBODY, (char *[]){__VA_ARGS__, NULL})

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: runs the CLI as other users");
}

static struct bk_h *up(struct bk_h *h, const char *tag, const char *extra)
{
	bk_h_init(h, tag, extra);
	bk_h_start(h);
	return h;
}

/* ---- the audit log as `breaker audit --json` shows it ------------------------------ */

static const char *read_audit(struct bk_h *h)
{
	cr_assert_eq(cli(h, "audit", "--json"), 0, "%s", out);
	memcpy(audit, out, sizeof(out));
	return audit;
}

/* The first record line holding every needle (NULL-terminated); copied. */
static const char *record_with(const char *log, const char *const *needles)
{
	static char line[8192];

	for (const char *p = log; *p;) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		bool all = n < sizeof(line);

		if (all) {
			memcpy(line, p, n);
			line[n] = '\0';
		}
		for (const char *const *x = needles; all && *x; x++)
			all = strstr(line, *x) != NULL;
		if (all)
			return line;
		p += n + (end != NULL);
	}
	return NULL;
}

#define has_record(log, ...) record_with(log, (const char *const[]){__VA_ARGS__, NULL})

/* ---- config: the policy, roles, transports ------------------------------------------
 */

static int load(const char *ini, struct bk_config *cfg, char *err, size_t len)
{
	char path[] = "/tmp/bk-authcfg-XXXXXX";
	int fd = mkstemp(path), rv;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, ini, strlen(ini)), (ssize_t)strlen(ini));
	close(fd);
	cr_assert_eq(bk_config_defaults(cfg, "authcfg"), 0);
	rv = bk_config_load(cfg, path, err, len);
	unlink(path);
	return rv;
}

static void refused(const char *ini, const char *needle1, const char *needle2)
{
	static struct bk_config cfg;
	char err[512] = "";

	cr_assert_eq(load(ini, &cfg, err, sizeof(err)), -EINVAL, "accepted: %s", ini);
	cr_assert(strstr(err, needle1) && (!needle2 || strstr(err, needle2)),
	          "'%s' should say '%s' and '%s'", err, needle1, needle2 ? needle2 : "");
}

Test(auth, policy_keys_defaults_and_names)
{
	static struct bk_config cfg;
	struct bk_acl acl;
	char err[512];

	cr_assert_eq(load("", &cfg, err, sizeof(err)), 0, "%s", err);
	bk_config_acl(&cfg, BK_ACT_TRIP, &acl);
	cr_assert(acl.any, "trip is open to anyone by default");
	bk_config_acl(&cfg, BK_ACT_KILL, &acl);
	cr_assert(acl.any, "kill follows trip");
	bk_config_acl(&cfg, BK_ACT_FORCE, &acl);
	cr_assert(!acl.any && acl.n_uids >= 1 && acl.uids[0] == geteuid(),
	          "force defaults to resume's: the daemon's user");
	/* names resolve at load; a group list closes trip to everyone else */
	cr_assert_eq(load("[auth]\ntrip_gids = root\nresume_uids = root, 4242\n", &cfg,
	                  err, sizeof(err)),
	             0, "%s", err);
	bk_config_acl(&cfg, BK_ACT_TRIP, &acl);
	cr_assert(!acl.any && acl.n_gids == 1 && acl.gids[0] == 0);
	bk_config_acl(&cfg, BK_ACT_KILL, &acl);
	cr_assert(!acl.any && acl.n_gids == 1 && acl.gids[0] == 0, "kill follows trip");
	bk_config_acl(&cfg, BK_ACT_FORCE, &acl);
	cr_assert(acl.n_uids == 2 && acl.uids[1] == 4242, "force follows resume");
	cr_assert_eq(load("[auth]\ntrip_uids = 1\nkill_uids = any\nforce_uids = 7\n",
	                  &cfg, err, sizeof(err)),
	             0, "%s", err);
	bk_config_acl(&cfg, BK_ACT_KILL, &acl);
	cr_assert(acl.any, "kill can stay open while trip is not");
	bk_config_acl(&cfg, BK_ACT_FORCE, &acl);
	cr_assert(acl.n_uids == 1 && acl.uids[0] == 7);
	refused("[auth]\n\nresume_uids = any\n", "line 3", "resume_uids");
	refused("[auth]\nforce_gids = any\n", "line 2", "force_gids");
	refused("[auth]\nkill_uids =\n", "line 2",
	        "kill_uids"); /* would shut everyone out */
	refused("[auth]\ntrip_gids = no-such-group-bk\n", "line 2", "trip_gids");
	refused("[auth]\nconfirm_window_s = 0\n", "line 2", "confirm_window_s");
	refused("[auth]\nsteal_uids = 1\n", "line 2", "steal_uids");
}

Test(auth, tls_roles_and_transports_are_checked_at_load)
{
	static struct bk_config cfg;
	char err[512];
	const char *tls = "[tls]\ncert_file = /x/s.pem\nkey_file = /x/s.key\n"
	                  "ca_file = /x/ca.pem\n";
	char ini[1024];

	snprintf(
	    ini, sizeof(ini),
	    "[commands]\ntcp_url = tls+tcp://0.0.0.0:7450\n%sroles = desk one:operator, "
	    " bot-7 : trader\n",
	    tls);
	cr_assert_eq(load(ini, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(bk_config_role(&cfg, "desk one"), BK_ROLE_OPERATOR);
	cr_assert_eq(bk_config_role(&cfg, "bot-7"), BK_ROLE_TRADER);
	cr_assert_eq(bk_config_role(&cfg, "bot"), BK_ROLE_NONE);
	refused("[tls]\nroles = a:root\n", "line 2", "roles");
	refused("[tls]\nroles = a:operator, a:trader\n", "line 2", "twice");
	refused("[tls]\ncert_file = relative.pem\n", "line 2", "absolute");
	/* TLS needs its files and at least one role */
	refused("[commands]\ntcp_url = tls+tcp://127.0.0.1:7450\n", "line 2",
	        "cert_file");
	snprintf(ini, sizeof(ini), "[commands]\ntcp_url = tls+tcp://127.0.0.1:7450\n%s",
	         tls);
	refused(ini, "line 2", "roles is empty");
	/* plaintext: only on loopback, only when asked for */
	refused("[breaker]\n[commands]\ntcp_url = tcp://127.0.0.1:7450\n", "line 3",
	        "allow_plaintext_loopback");
	refused("[commands]\nallow_plaintext_loopback = true\ntcp_url = "
	        "tcp://10.0.0.1:7450\n",
	        "line 3", "not numeric loopback");
	cr_assert_eq(load("[commands]\ntcp_url = tcp://127.0.0.1:7450\n"
	                  "allow_plaintext_loopback = true\n",
	                  &cfg, err, sizeof(err)),
	             0, "%s", err);
}

Test(auth, plaintext_tcp_in_the_config_stops_breakerd_naming_the_line)
{
	char dir[] = "/tmp/bk-authchk-XXXXXX", ini[256], cmd[768];
	const char *bin = getenv("BREAKERD") ? getenv("BREAKERD") : "breakerd";
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(ini, sizeof(ini), "%s/b.ini", dir);
	f = fopen(ini, "w");
	cr_assert_not_null(f);
	fputs(
	    "[breaker]\ninstance = authchk\n[commands]\ntcp_url = tcp://127.0.0.1:7450\n",
	    f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s --check-config --config %s > %s/err 2>&1", bin,
	         ini, dir);
	cr_assert_eq(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd), "%s/err", dir);
	bk_h_slurp(cmd, out, sizeof(out));
	cr_assert(strstr(out, "line 4") && strstr(out, "plaintext"), "%s", out);
	unlink(cmd);
	unlink(ini);
	rmdir(dir);
}

/* ---- local callers: trip, kill, resume, force ----------------------------------------
 */

Test(auth, unauthorised_trip_is_refused_audited_and_changes_nothing)
{
	struct bk_h h;
	const char *log;

	up(&h, "atrip", STRATS "[auth]\ntrip_uids = 54321\nkill_uids = any\n");
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--reason", "not mine to pull"), 1);
	cr_assert(strstr(out, "refused: ERR_UNAUTHORISED") &&
	              strstr(out, "may not trip") && strstr(out, "trip_uids"),
	          "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_ACTIVE, "nothing changed");
	/* kill is its own permission: still open here */
	cr_assert_eq(cli(&h, "kill", "alpha", "--reason", "runaway"), 0, "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, "alpha"), BK_HALTED);
	log = read_audit(&h);
	cr_assert(has_record(log, "\"kind\":\"REFUSED\"", "\"command\":\"trip\"",
	                     "\"status\":\"ERR_UNAUTHORISED\"", "may not trip",
	                     "\"reason\":\"not mine to pull\"",
	                     "\"reason_code\":\"manual_halt\""),
	          "the refusal is audited: %s", log);
	cr_assert_eq(cli(&h, "audit"), 0);
	cr_assert(strstr(out, "REFUSED") && strstr(out, "trip?") && strstr(out, "why="),
	          "%s", out);
	bk_h_fini(&h);
}

Test(auth, kill_and_force_have_their_own_lists)
{
	struct bk_h h;
	const char *log;

	up(&h, "akill", STRATS "[auth]\nkill_uids = 54321\nforce_uids = 54321\n");
	cr_assert_eq(cli(&h, "kill", "alpha", "--reason", "x"), 1);
	cr_assert(strstr(out, "may not kill") && strstr(out, "kill_uids"), "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, "alpha"), BK_ACTIVE);
	/* trip stays open to anyone; resume is ours by default, force is not */
	cr_assert_eq(cli(&h, "emergency-stop"), 0, "%s", out);
	cr_assert_eq(cli(&h, "resume", "--to", "active", "--force", "--reason", "skip"),
	             1);
	cr_assert(strstr(out, "may not force a resume") && strstr(out, "force_uids"),
	          "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED);
	cr_assert_eq(cli(&h, "resume", "--reason", "stage one"), 0, "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_REDUCE_ONLY);
	log = read_audit(&h);
	cr_assert(has_record(log, "\"kind\":\"REFUSED\"", "\"command\":\"kill\"",
	                     "\"strategy\":\"alpha\""),
	          "%s", log);
	cr_assert(has_record(log, "\"kind\":\"REFUSED\"", "\"command\":\"resume\"",
	                     "\"forced\":true", "force"),
	          "%s", log);
	bk_h_fini(&h);
}

/* A group in the group database with a member whose own gid is another one. */
static bool member_elsewhere(struct group *gout, struct passwd *pout)
{
	static char gname[64], uname[64];
	struct group *g;
	struct passwd *p;

	setgrent();
	while ((g = getgrent()))
		for (char **m = g->gr_mem; *m; m++)
			if ((p = getpwnam(*m)) && p->pw_uid != 0 &&
			    p->pw_gid != g->gr_gid &&
			    strlen(g->gr_name) < sizeof(gname) &&
			    strlen(*m) < sizeof(uname)) {
				snprintf(gname, sizeof(gname), "%s", g->gr_name);
				snprintf(uname, sizeof(uname), "%s", *m);
				*gout = *g;
				gout->gr_name = gname;
				*pout = *p;
				pout->pw_name = uname;
				endgrent();
				return true;
			}
	endgrent();
	return false;
}

Test(auth, groups_primary_and_supplementary)
{
	struct bk_h h;
	struct group g = {0};
	struct passwd p = {0};
	char ini[512];
	bool member;

	need_root();
	member = member_elsewhere(&g, &p);
	/* nogroup by name: the primary gid from SO_PEERCRED; g: membership by
	 * the group database, resolved when breakerd starts */
	snprintf(ini, sizeof(ini),
	         STRATS "[commands]\nsocket_mode = 0666\n[auth]\ntrip_gids = %s\n"
	                "kill_gids = nogroup\n",
	         member ? g.gr_name : "root");
	up(&h, "agroup", ini);
	bk_h_open_dirs(&h);
	cr_assert_eq(cli_nobody(&h, "kill", "beta", "--reason", "primary gid"), 0, "%s",
	             out);
	cr_assert_eq(cli_nobody(&h, "trip", "manual_halt"), 1, "%s", out);
	cr_assert(strstr(out, "uid 65534 (gid 65534) may not trip"), "%s", out);
	if (member) {
		cr_assert_eq(cli_argv(&h, (int)p.pw_uid, (int)p.pw_gid,
		                      (char *[]){"trip", "manual_halt", "--reason",
		                                 "member of the group", NULL}),
		             0, "%s (user %s in group %s)", out, p.pw_name, g.gr_name);
		cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED);
	} else {
		cr_log_warn("no group with a member of another primary group here: "
		            "supplementary membership not exercised");
	}
	bk_h_fini(&h);
}

/* ---- the rate limit on audited refusals, and /metrics ---------------------------- */

Test(auth, rate_limit_burst_then_rate_then_one_summary)
{
	static struct bk_auth a;
	struct bk_peer me = {.uid = 7, .gid = 7, .local = 1}, other = me;
	struct bk_auth_bucket due;
	uint64_t t = 1000000000ull, tick = 100000; /* the tick's 100 us */
	int recorded = 0, summaries = 0;

	for (int i = 0; i < 16; i++)
		recorded += bk_auth_admit(&a, &me, t, &due);
	cr_assert_eq(recorded, BK_AUTH_BURST, "the burst, recorded one by one");
	cr_assert_eq(a.suppressing, 1u);
	/* ticks every 100 us: the fractions add up to one token in 1/RATE s */
	for (uint64_t now = t; now < t + 1000000000ull / BK_AUTH_RATE; now += tick)
		cr_assert(!bk_auth_due(&a, now, &due),
		          "summary before a token is earned");
	for (uint64_t now = t; now <= t + 1000000000ull; now += tick)
		if (bk_auth_due(&a, now, &due)) {
			summaries++;
			cr_assert_eq(due.suppressed, 16u - BK_AUTH_BURST);
			cr_assert_str_eq(due.who, "uid 7");
		}
	cr_assert_eq(summaries, 1, "one summary for the lot");
	cr_assert_eq(a.suppressing, 0u);
	/* a caller pushed out of the table hands its count over, not loses it */
	for (int i = 0; i < 2 * BK_AUTH_BURST; i++)
		bk_auth_admit(&a, &me, t + 2000000000ull, &due);
	cr_assert_eq(a.suppressing, 1u);
	for (unsigned u = 100; u < 100 + BK_AUTH_BUCKETS; u++) {
		other.uid = u;
		bk_auth_admit(&a, &other, t + 2000000001ull + u, &due);
		if (due.suppressed)
			break;
	}
	cr_assert_str_eq(due.who, "uid 7", "the evicted caller's summary");
	cr_assert_gt(due.suppressed, 0u);
}

/* GET /metrics from 127.0.0.1:port into buf. */
static void scrape(int port, char *buf, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	const char req[] =
	    "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct pollfd pfd;
	size_t off = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	buf[0] = '\0';
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1) {
		pfd = (struct pollfd){.fd = fd, .events = POLLIN};
		while (off < len - 1 && poll(&pfd, 1, 3000) == 1 &&
		       (n = read(fd, buf + off, len - 1 - off)) > 0)
			off += (size_t)n;
	}
	buf[off] = '\0';
	close(fd);
}

static void resume_flood(struct bk_h *h, int n)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Resume rs = BREAKER__RESUME__INIT;
	Breaker__Reply *rep;
	struct bk_rpc r;

	req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
	req.resume = &rs;
	rs.reason = "let me in";
	cr_assert_eq(bk_rpc_open(&r, h->cfg.cmd_url, 3000), 0);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(bk_rpc_call(&r, &req, &rep), 0);
		cr_assert_eq(rep->status, BREAKER__STATUS__ERR_UNAUTHORISED, "reply %d",
		             i);
		breaker__reply__free_unpacked(rep, NULL);
	}
	bk_rpc_close(&r);
}

/* Refusals recorded one by one, and those a summary record counts. */
static void tally(const char *log, int *single, int *summed)
{
	*single = *summed = 0;
	for (const char *p = log; (p = strstr(p, "\"kind\":\"REFUSED\"")); p++) {
		const char *eol = strchr(p, '\n'), *s = strstr(p, "\"suppressed\":");
		if (s && (!eol || s < eol))
			*summed += atoi(s + 13);
		else
			(*single)++;
	}
}

Test(auth, a_flood_of_refusals_is_rate_limited_counted_and_summarised)
{
	static char metrics[1 << 18];
	const int n = 40;
	struct bk_h h;
	char ini[512], line[128];
	int port = bk_h_free_port(), single = 0, summed = 0;

	snprintf(ini, sizeof(ini),
	         "[strategies]\nnames = alpha\n[auth]\nresume_uids = 54321\n"
	         "[metrics]\nlisten = 127.0.0.1:%d\n",
	         port);
	up(&h, "aflood", ini);
	cr_assert_eq(cli(&h, "emergency-stop"), 0);
	resume_flood(&h, n);
	/* the rest are summarised once the caller's bucket refills (2 a second) */
	for (int i = 0; i < 40 && single + summed < n; i++) {
		usleep(100 * 1000);
		tally(read_audit(&h), &single, &summed);
	}
	cr_assert_eq(single + summed, n, "every refusal is in the log: %d + %d", single,
	             summed);
	cr_assert_leq(single, BK_AUTH_BURST + 2, "the burst, then 2 a second");
	cr_assert_geq(summed, n - BK_AUTH_BURST - 2);
	cr_assert(strstr(audit, "further refusals from uid 0 not recorded one by one"),
	          "%s", audit);
	/* /metrics counts them all */
	snprintf(line, sizeof(line), "breaker_auth_refusals_total %d\n", n);
	for (int i = 0; i < 30 && !strstr(metrics, line); i++, usleep(100 * 1000))
		scrape(port, metrics, sizeof(metrics));
	cr_assert(strstr(metrics, line), "%s", metrics);
	snprintf(line, sizeof(line), "breaker_auth_refusals_unrecorded_total %d\n",
	         summed);
	cr_assert(strstr(metrics, line), "%s", metrics);
	snprintf(
	    line, sizeof(line),
	    "breaker_commands_total{type=\"resume\",result=\"err_unauthorised\"} %d\n",
	    n);
	cr_assert(strstr(metrics, line), "%s", metrics);
	/* replay skips refusals; the chain covers them */
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_h_start(&h);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED);
	cr_assert_eq(cli(&h, "audit", "--verify"), 0, "%s", out);
	bk_h_fini(&h);
}

/* ---- the two-person rule
 * ---------------------------------------------------------------- */

/* two uids may resume; the window is long but where a test lets it lapse */
#define TWO_PERSON(window)                                                               \
	STRATS "[commands]\nsocket_mode = 0666\n[auth]\nresume_uids = 0, 65534\n"        \
	       "two_person_global_resume = true\nconfirm_window_s = " window "\n"

Test(auth, two_person_rule_global_resume_needs_a_second_uid)
{
	struct bk_h h;
	const char *log;

	need_root();
	up(&h, "a2p", TWO_PERSON("60"));
	bk_h_open_dirs(&h);
	cr_assert_eq(cli(&h, "emergency-stop"), 0);
	cr_assert_eq(cli(&h, "resume", "--reason", "all clear"), 6, "%s", out);
	cr_assert(strstr(out, "PROPOSED, NOT APPLIED") &&
	              strstr(out, "a different operator must confirm before") &&
	              strstr(out, "breaker resume"),
	          "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED, "a proposal changes nothing");
	cr_assert_eq(cli(&h, "status", "--json"), 0);
	cr_assert(strstr(out, "\"pending_resume\":{"), "status shows the proposal: %s",
	          out);
	cr_assert_eq(cli(&h, "status"), 0);
	cr_assert(
	    strstr(out,
	           "PROPOSED global resume of emergency_stop to REDUCE_ONLY by root"),
	    "%s", out);
	/* the proposer cannot confirm: refused and audited */
	cr_assert_eq(cli(&h, "resume", "--reason", "me again"), 1, "%s", out);
	cr_assert(strstr(out, "ERR_UNAUTHORISED") && strstr(out, "uid 0 proposed"), "%s",
	          out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED);
	/* another authorised uid: applied */
	cr_assert_eq(cli_nobody(&h, "resume", "--reason", "second pair of eyes"), 0, "%s",
	             out);
	cr_assert(strstr(out, "HALTED -> REDUCE_ONLY"), "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_REDUCE_ONLY);
	log = read_audit(&h);
	cr_assert(has_record(log, "\"kind\":\"RESUME_PROPOSED\"", "\"uid\":0,",
	                     "\"to_mode\":\"REDUCE_ONLY\""),
	          "%s", log);
	cr_assert(
	    has_record(log, "\"kind\":\"REFUSED\"", "\"uid\":0,", "two-person rule"),
	    "%s", log);
	cr_assert(has_record(log, "\"kind\":\"RESUME\"", "\"uid\":65534,",
	                     "\"proposer_uid\":0,", "\"proposal_seq\":"),
	          "the resume names both operators: %s", log);
	cr_assert_eq(cli(&h, "audit"), 0);
	cr_assert(strstr(out, "AWAITS-SECOND-OPERATOR") && strstr(out, "confirms seq="),
	          "%s", out);
	/* strategies are not covered: one operator resumes them */
	cr_assert_eq(cli(&h, "kill", "alpha", "--reason", "x"), 0);
	cr_assert_eq(cli(&h, "resume", "--strategy", "alpha", "--reason", "ok"), 0, "%s",
	             out);
	bk_h_fini(&h);
}

Test(auth, two_person_proposal_lapses_after_the_window)
{
	struct bk_h h;

	need_root();
	up(&h, "a2plapse", TWO_PERSON("3"));
	bk_h_open_dirs(&h);
	cr_assert_eq(cli(&h, "trip", "manual_halt", "--mode", "reduce-only"), 0);
	cr_assert_eq(cli(&h, "resume", "--reason", "propose"), 6, "%s", out);
	sleep(3);
	usleep(300 * 1000);
	/* too late: the second resume is a new proposal, and says why */
	cr_assert_eq(cli_nobody(&h, "resume", "--reason", "late"), 6, "%s", out);
	cr_assert(strstr(out, "lapsed unconfirmed"), "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_REDUCE_ONLY);
	cr_assert_eq(cli(&h, "resume", "--reason", "confirm"), 0, "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_CAUTIOUS);
	bk_h_fini(&h);
}

Test(auth, two_person_covers_the_forced_resume_of_audit_corrupt)
{
	struct bk_h h;
	char *force[] = {"resume",  "--reason-code", "audit_corrupt", "--to", "active",
	                 "--force", "--reason",      "log examined",  NULL};

	need_root();
	up(&h, "a2pcorrupt", TWO_PERSON("60"));
	bk_h_open_dirs(&h);
	cr_assert_eq(bk_h_stop(&h), 0);
	cr_assert_eq(unlink(h.cfg.audit_path), 0);
	bk_h_start(&h); /* fail-closed boot: global HALTED under audit_corrupt */
	bk_h_open_dirs(&h);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED);
	cr_assert_eq(cli_argv(&h, -1, -1, force), 6, "%s", out);
	cr_assert(strstr(out, "FORCED"), "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED);
	cr_assert_eq(cli_argv(&h, NOBODY, NOBODY, force), 0, "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_ACTIVE);
	bk_h_fini(&h);
}

/* ---- TLS: client certificates and roles
 * ------------------------------------------------- */

/*
 * A throwaway CA, breakerd's certificate (for 127.0.0.1), clients trader1,
 * op1, op2, stranger; and a rogue CA with its own "op1".
 */
static void make_pki(struct bk_pki *k)
{
	bk_pki_make(
	    k, "pki",
	    "ca ca; ca rogue; crt server 127.0.0.1 ca; crt trader trader1 ca\n"
	    "crt op1 op1 ca; crt op2 op2 ca; crt stranger stranger ca; crt fake op1 "
	    "rogue\n");
}

static void tls_up(struct bk_h *h, struct bk_pki *k, const char *tag, const char *extra)
{
	char ini[2048];

	make_pki(k);
	snprintf(ini, sizeof(ini),
	         STRATS "[commands]\ntcp_url = %s\n[tls]\ncert_file = %s/server.pem\n"
	                "key_file = %s/server.key\nca_file = %s/ca.pem\n"
	                "roles = trader1:trader, op1:operator, op2:operator\n%s",
	         k->url, k->dir, k->dir, k->dir, extra ? extra : "");
	up(h, tag, ini);
}

static void tls_down(struct bk_h *h, struct bk_pki *k)
{
	bk_h_fini(h);
	bk_pki_remove(k);
}

/* The CLI over tls+tcp:// as certificate who (NULL: none). */
static int tls_argv(struct bk_h *h, const struct bk_pki *k, const char *who, char **args)
{
	char ca[128], cert[128], key[128];
	char *argv[40] = {bk_h_cli_bin(), "--config", h->config, "--url",
	                  (char *)k->url, "--tls-ca", ca};
	int n = 7;

	snprintf(ca, sizeof(ca), "%s/ca.pem", k->dir);
	snprintf(cert, sizeof(cert), "%s/%s.pem", k->dir, who ? who : "");
	snprintf(key, sizeof(key), "%s/%s.key", k->dir, who ? who : "");
	if (who) {
		argv[n++] = "--tls-cert";
		argv[n++] = cert;
		argv[n++] = "--tls-key";
		argv[n++] = key;
	}
	while (*args && n < 39)
		argv[n++] = *args++;
	argv[n] = NULL;
	return run_as(h, -1, -1, argv);
}

#define tls(h, k, who, ...) tls_argv(h, k, who, (char *[]){__VA_ARGS__, NULL})

/*
 * breaker watch names a certificate caller by its CN (Event.actor_cn), in the
 * 100-column line and in --json, not as uid 4294967295.
 */
Test(auth, tls_watch_names_the_certificate_caller)
{
	struct bk_h h;
	struct bk_pki k;
	char path[256], err[256], buf[4096];
	char *argv[] = {bk_h_cli_bin(), "--config", NULL,           "watch", "--json",
	                "--count",      "1",        "--timeout-ms", "10000", NULL};
	pid_t w;
	int st;

	tls_up(&h, &k, "atlswatch", NULL);
	argv[2] = h.config;
	snprintf(path, sizeof(path), "%s/watch.out", h.dir);
	snprintf(err, sizeof(err), "%s/watch.err", h.dir);
	w = fork();
	cr_assert_geq(w, 0);
	if (w == 0) {
		int o = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(o, 1);
		dup2(e, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; i < 500 && !strstr(buf, "watching"); i++) {
		bk_h_slurp(err, buf, sizeof(buf));
		usleep(10000);
	}
	usleep(100000); /* breakerd's side of the pipe */
	cr_assert_eq(tls(&h, &k, "op1", "trip", "manual_halt", "--reason", "by cert"), 0,
	             "%s", out);
	cr_assert_eq(waitpid(w, &st, 0), w);
	bk_h_slurp(path, buf, sizeof(buf));
	cr_assert(strstr(buf, "\"actor_cn\":\"op1\""), "%s", buf);
	cr_assert(strstr(buf, "\"reason\":\"by cert\""), "%s", buf);
	tls_down(&h, &k);
}

Test(auth, tls_needs_a_client_certificate_from_our_ca)
{
	struct bk_h h;
	struct bk_pki k;

	tls_up(&h, &k, "atlsca", NULL);
	cr_assert_eq(tls(&h, &k, NULL, "status"), 3, "%s", out);
	cr_assert(strstr(out, "TLS handshake") && strstr(out, "client certificate"), "%s",
	          out);
	cr_assert_eq(tls(&h, &k, "fake", "trip", "manual_halt"), 3,
	             "a CN from another CA is nobody: %s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_ACTIVE);
	cr_assert_eq(tls(&h, &k, "op1", "status"), 0, "%s", out);
	tls_down(&h, &k);
}

Test(auth, tls_roles_trader_trips_operator_resumes_strangers_are_refused)
{
	struct bk_h h;
	struct bk_pki k;
	const char *log;

	tls_up(&h, &k, "atlsrole", NULL);
	cr_assert_eq(
	    tls(&h, &k, "trader", "trip", "manual_halt", "--reason", "desk halt"), 0,
	    "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED);
	cr_assert_eq(tls(&h, &k, "trader", "kill", "alpha", "--reason", "runaway"), 0,
	             "%s", out);
	cr_assert_eq(tls(&h, &k, "trader", "resume", "--reason", "mine"), 1, "%s", out);
	cr_assert(strstr(out, "role trader, which may not resume"), "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED);
	cr_assert_eq(tls(&h, &k, "stranger", "trip", "emergency_stop"), 1, "%s", out);
	cr_assert(strstr(out, "'stranger' has no role"), "%s", out);
	cr_assert_eq(tls(&h, &k, "op1", "resume", "--reason", "checked"), 0, "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_REDUCE_ONLY);
	cr_assert_eq(tls(&h, &k, "op1", "register", "gamma"), 0, "%s", out);
	log = read_audit(&h);
	cr_assert(has_record(log, "\"kind\":\"TRIP\"", "\"user\":\"tls:trader1\"",
	                     "\"peer_cn\":\"trader1\""),
	          "%s", log);
	cr_assert(has_record(log, "\"kind\":\"REFUSED\"", "\"command\":\"resume\"",
	                     "\"peer_cn\":\"trader1\"", "role trader"),
	          "%s", log);
	cr_assert(has_record(log, "\"kind\":\"REFUSED\"", "\"command\":\"trip\"",
	                     "\"peer_cn\":\"stranger\"",
	                     "\"reason_code\":\"emergency_stop\""),
	          "unknown CN: refused and audited: %s", log);
	cr_assert(has_record(log, "\"kind\":\"RESUME\"", "\"peer_cn\":\"op1\""), "%s",
	          log);
	tls_down(&h, &k);
}

Test(auth, tls_two_person_rule_by_certificate)
{
	struct bk_h h;
	struct bk_pki k;

	tls_up(&h, &k, "atls2p", "[auth]\ntwo_person_global_resume = true\n");
	cr_assert_eq(tls(&h, &k, "trader", "emergency-stop"), 0, "%s", out);
	cr_assert_eq(tls(&h, &k, "op1", "resume", "--reason", "one"), 6, "%s", out);
	cr_assert_eq(tls(&h, &k, "op1", "resume", "--reason", "one again"), 1, "%s", out);
	cr_assert(strstr(out, "cn op1 proposed"), "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED);
	cr_assert_eq(tls(&h, &k, "op2", "resume", "--reason", "two"), 0, "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_REDUCE_ONLY);
	cr_assert(has_record(read_audit(&h), "\"kind\":\"RESUME\"", "\"peer_cn\":\"op2\"",
	                     "\"proposer_user\":\"tls:op1\""),
	          "%s", audit);
	tls_down(&h, &k);
}

/* ---- plaintext TCP on loopback: anonymous, may only trip
 * -------------------------------- */

Test(auth, plaintext_loopback_callers_may_only_trip)
{
	struct bk_h h;
	char ini[512], url[64];

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", bk_h_free_port());
	snprintf(ini, sizeof(ini),
	         STRATS "[commands]\ntcp_url = %s\nallow_plaintext_loopback = true\n",
	         url);
	up(&h, "aplain", ini);
	cr_assert_eq(cli(&h, "--url", url, "trip", "manual_halt", "--reason", "remote"),
	             0, "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED);
	cr_assert_eq(cli(&h, "--url", url, "resume", "--reason", "remote"), 1, "%s", out);
	cr_assert(strstr(out, "plaintext TCP callers are anonymous"), "%s", out);
	cr_assert(has_record(read_audit(&h), "\"kind\":\"REFUSED\"",
	                     "\"user\":\"remote\"", "\"command\":\"resume\""),
	          "%s", audit);
	bk_h_fini(&h);
	/* once trip is restricted, anonymous callers may not trip either */
	snprintf(ini, sizeof(ini),
	         STRATS "[commands]\ntcp_url = %s\nallow_plaintext_loopback = true\n"
	                "[auth]\ntrip_uids = 0\n",
	         url);
	up(&h, "aplain2", ini);
	cr_assert_eq(cli(&h, "--url", url, "trip", "manual_halt"), 1, "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_ACTIVE);
	cr_assert_eq(bk_h_count(read_audit(&h), "\"kind\":\"REFUSED\""), 1, "%s", audit);
	bk_h_fini(&h);
}
