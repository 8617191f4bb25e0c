/*
 * Incidents (docs/incidents.md): ids on commands, the incident lifecycle as
 * audited records, automatic opening with the severity mapping, the
 * post-mortem export of one incident and of a period split into incidents,
 * and the status page. Real breakerd, real CLI; bad input changes nothing.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bk_harness.h"
#include "breaker.pb-c.h"

static char out[1 << 20];

static void up(struct bk_h *h, const char *tag, const char *extra)
{
	char ini[1024];

	snprintf(ini, sizeof(ini), "[strategies]\nnames = alpha, beta\n%s",
	         extra ? extra : "");
	bk_h_init(h, tag, ini);
	bk_h_start(h);
}

/* The CLI with stdout and stderr in out; its exit code must be want. */
static void cli_is(struct bk_h *h, int want, const char *what, ...)
{
	char *argv[16] = {0};
	va_list ap;
	int n = 0, rv;

	va_start(ap, what);
	while (n < 15 && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	rv =
	    bk_h_cli_all(h, out, sizeof(out), argv[0], argv[1], argv[2], argv[3], argv[4],
	                 argv[5], argv[6], argv[7], argv[8], argv[9], argv[10], NULL);
	cr_assert_eq(rv, want, "%s: exit %d, not %d: %s", what, rv, want, out);
}

/* How many audit records (lines of `breaker audit`). */
static int records(struct bk_h *h)
{
	cr_assert_eq(bk_h_cli(h, out, sizeof(out), "audit", NULL), 0, "%s", out);
	return bk_h_count(out, "\n");
}

static Breaker__Reply *raw_incident(struct bk_h *h, const char *op, const char *id,
                                    const char *sev, const char *title, const char *text)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__IncidentCmd m = BREAKER__INCIDENT_CMD__INIT;
	static uint8_t buf[4096];

	m.op = (char *)op;
	m.id = (char *)id;
	m.severity = (char *)sev;
	m.title = (char *)title;
	m.text = (char *)text;
	req.cmd_case = BREAKER__REQUEST__CMD_INCIDENT;
	req.incident = &m;
	req.has_request_id = 1;
	req.request_id = (uint64_t)rand() << 20 | (uint64_t)rand();
	return bk_h_raw_call(h, buf, breaker__request__pack(&req, buf));
}

static void raw_refused(struct bk_h *h, Breaker__Status want, const char *op,
                        const char *id, const char *sev, const char *title,
                        const char *text)
{
	Breaker__Reply *r = raw_incident(h, op, id, sev, title, text);

	cr_assert_eq(r->status, want, "%s %s: status %d, not %d (%s)", op, id ? id : "-",
	             r->status, want, r->error ? r->error : "");
	cr_assert(r->error && *r->error, "a refusal says why");
	breaker__reply__free_unpacked(r, NULL);
}

Test(incidents, lifecycle_is_audited_and_bad_input_changes_nothing)
{
	struct bk_h h;
	int n;

	up(&h, "inclife", NULL);
	cli_is(&h, 0, "open", "incident", "open", "INC-2026-007", "--severity", "P2",
	       "--title", "venue XETR rejects", "--commander", "alice", NULL);
	cr_assert(strstr(out, "incident INC-2026-007 opened"), "%s", out);
	n = records(&h);
	/* the CLI's own checks: nothing sent */
	cli_is(&h, 2, "bad id", "incident", "open", "INC-26-1", "--severity", "P1",
	       "--title", "x", NULL);
	cr_assert(strstr(out, "INC-YYYY-NNN"), "%s", out);
	cli_is(&h, 2, "P5", "incident", "open", "--severity", "P5", "--title", "x", NULL);
	cli_is(&h, 2, "SEV", "incident", "open", "--severity", "high", "--title", "x",
	       NULL);
	cli_is(&h, 2, "no title", "incident", "open", "--severity", "P1", NULL);
	cli_is(&h, 2, "trip bad id", "trip", "manual_halt", "--incident", "inc-2026-001",
	       "--reason", "x", NULL);
	/* breakerd's own checks, as a hostile or older client would send them */
	raw_refused(&h, BREAKER__STATUS__ERR_BAD_REQUEST, "open", "INC-2026-1", "P1", "t",
	            NULL);
	raw_refused(&h, BREAKER__STATUS__ERR_BAD_REQUEST, "open", NULL, "P5", "t", NULL);
	raw_refused(&h, BREAKER__STATUS__ERR_BAD_REQUEST, "open", NULL, "P1", NULL, NULL);
	raw_refused(&h, BREAKER__STATUS__ERR_BAD_REQUEST, "close", "INC-2026-007", NULL,
	            NULL, NULL);
	raw_refused(&h, BREAKER__STATUS__ERR_INCIDENT_STATE, "open", "INC-2026-007", "P1",
	            "again", NULL);
	raw_refused(&h, BREAKER__STATUS__ERR_UNKNOWN_INCIDENT, "ack", "INC-2026-999",
	            NULL, NULL, NULL);
	raw_refused(&h, BREAKER__STATUS__ERR_BAD_REQUEST, "resolve", "INC-2026-007", NULL,
	            NULL, NULL); /* no resolution */
	cli_is(&h, 1, "ack unknown", "incident", "ack", "INC-2026-998", NULL);
	cr_assert(strstr(out, "ERR_UNKNOWN_INCIDENT"), "%s", out);
	cr_assert_eq(records(&h), n, "refusals wrote nothing");
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_ACTIVE, "the bad trip changed nothing");
	/* the lifecycle */
	cli_is(&h, 0, "ack", "incident", "ack", "INC-2026-007", NULL);
	cli_is(&h, 1, "ack twice", "incident", "ack", "INC-2026-007", NULL);
	cr_assert(strstr(out, "ERR_INCIDENT_STATE"), "%s", out);
	cli_is(&h, 0, "note", "incident", "note", "INC-2026-007", "venue confirms", NULL);
	cli_is(&h, 0, "resolve", "incident", "resolve", "INC-2026-007", "--resolution",
	       "venue fixed its gateway", NULL);
	n = records(&h);
	cli_is(&h, 1, "resolve twice", "incident", "resolve", "INC-2026-007",
	       "--resolution", "again", NULL);
	cr_assert(strstr(out, "ERR_INCIDENT_STATE") && strstr(out, "resolved already"),
	          "%s", out);
	cr_assert_eq(records(&h), n, "the second resolve wrote nothing");
	cli_is(&h, 0, "audit", "audit", NULL);
	cr_assert(strstr(out, "INCIDENT_OPEN") && strstr(out, "INCIDENT_ACK") &&
	              strstr(out, "INCIDENT_NOTE") && strstr(out, "INCIDENT_RESOLVE"),
	          "%s", out);
	/* the state survives a restart: still resolved */
	bk_h_stop(&h);
	bk_h_start(&h);
	cli_is(&h, 1, "resolve after restart", "incident", "resolve", "INC-2026-007",
	       "--resolution", "again", NULL);
	cli_is(&h, 0, "list", "incident", "list", NULL);
	cr_assert(strstr(out, "INC-2026-007") && strstr(out, "P2") &&
	              strstr(out, "resolved") && strstr(out, "venue XETR rejects"),
	          "%s", out);
	bk_h_fini(&h);
}

/*
 * Trips are open to any local user by default, and so are open, ack and
 * note (the paperwork of a halt). Declaring the all-clear is not: resolving
 * an incident needs the resume permission, as resuming trading does.
 */
Test(incidents, a_local_user_who_may_trip_may_not_resolve)
{
	struct bk_h h;
	char *argv[12];
	int n;

	if (geteuid() != 0)
		cr_skip_test("needs root: runs the CLI as another user");
	up(&h, "incauth", "[commands]\nsocket_mode = 0666\n");
	bk_h_open_dirs(&h);
	argv[0] = "incident", argv[1] = "open", argv[2] = "INC-2026-041",
	argv[3] = "--severity", argv[4] = "P3", argv[5] = "--title", argv[6] = "nobody's",
	argv[7] = NULL;
	cr_assert_eq(bk_h_cli_as(&h, 65534, 65534, NULL, argv, out, sizeof(out)), 0, "%s",
	             out);
	n = records(&h);
	argv[1] = "resolve", argv[3] = "--resolution", argv[4] = "all clear, says nobody",
	argv[5] = NULL;
	cr_assert_eq(bk_h_cli_as(&h, 65534, 65534, NULL, argv, out, sizeof(out)), 1, "%s",
	             out);
	cr_assert(strstr(out, "may not resolve incidents"), "%s", out);
	cr_assert_eq(records(&h), n + 1, "one REFUSED record, nothing else");
	cli_is(&h, 0, "list", "incident", "list", NULL);
	cr_assert(strstr(out, "INC-2026-041") && !strstr(out, "resolved"),
	          "still open: %s", out);
	cli_is(&h, 0, "root resolves", "incident", "resolve", "INC-2026-041",
	       "--resolution", "checked", NULL);
	bk_h_fini(&h);
}

Test(incidents, a_trip_with_no_id_opens_one_with_the_mapped_severity)
{
	struct bk_h h;
	char year[8], id1[24], id2[24];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	snprintf(year, sizeof(year), "%04d", tm.tm_year + 1900);
	snprintf(id1, sizeof(id1), "INC-%s-001", year);
	snprintf(id2, sizeof(id2), "INC-%s-002", year);
	up(&h, "incauto", "[incidents]\nmanual_halt = P4\n");
	cli_is(&h, 0, "trip", "trip", "manual_halt", "--strategy", "alpha", "--reason",
	       "odd fills", NULL);
	cr_assert(strstr(out, id1), "the reply names the new incident: %s", out);
	/* alpha is still held under it: beta's trip joins it */
	cli_is(&h, 0, "kill", "kill", "beta", "--reason", "same venue", NULL);
	cr_assert(strstr(out, id1), "joined: %s", out);
	cli_is(&h, 0, "list", "incident", "list", "--json", NULL);
	cr_assert(strstr(out, "\"severity\":\"P4\"") &&
	              strstr(out, "\"auto_opened\":true") && strstr(out, "\"trips\":2"),
	          "severity from [incidents], both trips under it: %s", out);
	cr_assert(!strstr(out, id2), "one incident only: %s", out);
	cli_is(&h, 0, "resume alpha", "resume", "--strategy", "alpha", "--to", "active",
	       "--force", "--reason", "ok", NULL);
	cli_is(&h, 0, "resume beta", "resume", "--strategy", "beta", "--to", "active",
	       "--force", "--reason", "ok", NULL);
	cli_is(&h, 0, "audit", "audit", "--json", NULL);
	cr_assert_eq(bk_h_count(out, id1), 4, "trips and resumes carry the id: %s", out);
	/* nothing held: an unrelated trip opens the next id, across a restart */
	bk_h_stop(&h);
	bk_h_start(&h);
	cli_is(&h, 0, "estop", "emergency-stop", "--reason", "later", NULL);
	cr_assert(strstr(out, id2), "a new incident: %s", out);
	cli_is(&h, 0, "list", "incident", "list", "--json", NULL);
	cr_assert(strstr(out, "\"severity\":\"P1\""), "emergency_stop maps to P1: %s",
	          out);
	/* a named incident the trip goes under; an unknown one on resume refused */
	cli_is(&h, 1, "resume unknown", "resume", "--incident", "INC-2020-001",
	       "--reason", "x", NULL);
	cr_assert(strstr(out, "ERR_UNKNOWN_INCIDENT"), "%s", out);
	cr_assert_eq(bk_h_mode_of(&h, NULL), BK_HALTED,
	             "the refused resume changed nothing");
	bk_h_fini(&h);
}

/* ---- the post-mortem export ---------------------------------------------------- */

static const char check_split[] =
    "import json, sys\n"
    "r = json.load(open(sys.argv[1])); a = json.load(open(sys.argv[2]))\n"
    "b = json.load(open(sys.argv[3])); md = open(sys.argv[4]).read()\n"
    "ids = [i['id'] for i in r['incidents']]\n"
    "assert len(ids) == 2 and ids[0] != ids[1], ids\n"
    "ia, ib = r['incidents']\n"
    "assert ia['figures']['time_to_detect_ns'] is None, ia\n"
    "assert ia['figures']['time_to_detect_basis'] == 'none', ia\n"
    "assert ib['figures']['time_to_detect_basis'] == 'heartbeat', ib\n"
    "assert 200e6 <= ib['figures']['time_to_detect_ns'] < 5000e6, ib\n"
    "assert ia['severity'] == 'P1' and ib['severity'] == 'P2', (ia, ib)\n"
    "for x in (ia, ib):\n"
    "    assert x['figures']['mttr_ns'] is not None, x\n"
    "assert ia['figures']['time_halted_ns'] < ib['figures']['first_trip_ns'] - "
    "ia['figures']['first_trip_ns'], (ia, ib)\n"
    "# one incident's export holds its own records only\n"
    "assert a['incident']['id'] == ids[0] and b['incident']['id'] == ids[1]\n"
    "ta = [e['record'] for e in a['timeline']]\n"
    "tb = [e['record'] for e in b['timeline']]\n"
    "assert all(x.get('incident') in (None, ids[0]) for x in ta), ta\n"
    "assert [x['reason_code'] for x in ta if x['kind'] == 'TRIP'] == "
    "['emergency_stop'], ta\n"
    "assert [x.get('rule') for x in tb if x['kind'] == 'TRIP'] == ['heartbeat'], tb\n"
    "assert a['figures']['time_to_detect_ns'] is None, a['figures']\n"
    "assert b['figures']['time_to_detect_basis'] == 'heartbeat', b['figures']\n"
    "assert a['incident']['acknowledged_ns'] and a['figures']['time_to_acknowledge_ns']"
    " == a['incident']['acknowledged_ns'] - a['figures']['first_trip_ns'], a\n"
    "assert a['incident']['resolution'] == 'venue gateway restarted', a['incident']\n"
    "ref = [x for x in ta if x['kind'] == 'REFUSED']\n"
    "assert ref and 'may not kill' in ref[0]['refusal'], ta\n"
    "assert [s['scope'] for s in a['impact']['scopes']] == ['global'], a['impact']\n"
    "for row in ['# ' + ids[0], '| Severity | P1 |', '## Impact', '## Timeline',\n"
    "            '## Root cause', '## Resolution', 'venue gateway restarted',\n"
    "            '## Lessons', '| # | action | owner | due date | status |',\n"
    "            '| time to detect |', '| time to acknowledge |', '| time to halt |',\n"
    "            '| time to resume |', '| MTTR |', 'may not kill',\n"
    "            'REFUSED kill']:\n"
    "    assert row in md, (row, md)\n"
    "assert ids[1] not in md, md\n";

static void save(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

Test(incidents, a_day_with_two_unrelated_incidents_exports_them_apart)
{
	struct bk_rig r;
	char since[32], p[4][256], cmd[1200], id[2][24];
	const char *q;

	snprintf(since, sizeof(since), "%lld", (long long)time(NULL) - 1);
	bk_rig_up(&r, "incsplit",
	          "[strategies]\nnames = alpha, beta\n[rules]\nheartbeat.max = 300\n"
	          "[auth]\nkill_uids = 54321\n");
	/* 1: an operator's emergency stop (no rule: no time to detect) */
	cli_is(&r.h, 0, "estop", "emergency-stop", "--reason", "venue down", NULL);
	cr_assert_not_null(q = strstr(out, "incident INC-"), "%s", out);
	snprintf(id[0], sizeof(id[0]), "%.15s", q + 9);
	id[0][strcspn(id[0], " \n")] = '\0';
	cli_is(&r.h, 1, "refused kill", "kill", "alpha", "--reason", "me too", NULL);
	cli_is(&r.h, 0, "ack", "incident", "ack", id[0], NULL);
	cli_is(&r.h, 0, "resume", "resume", "--to", "active", "--force", "--reason",
	       "venue back", NULL);
	cli_is(&r.h, 0, "resolve", "incident", "resolve", id[0], "--resolution",
	       "venue gateway restarted", NULL);
	/* 2: later, unrelated: an engine goes quiet, the heartbeat rule trips it */
	bk_report_heartbeat(&r.t, r.alpha, bk_now_mono_ns());
	cr_assert(bk_rig_mode_within(&r, r.alpha, BK_HALTED, 5000), "heartbeat trip");
	bk_report_heartbeat(&r.t, r.alpha, 0); /* a clean stop disarms the switch */
	cli_is(&r.h, 0, "resume alpha", "resume", "--strategy", "alpha", "--to", "active",
	       "--force", "--reason", "engine restarted", NULL);
	cli_is(&r.h, 0, "list", "incident", "list", NULL);
	cr_assert_eq(bk_h_count(out, "INC-"), 2, "two incidents: %s", out);
	bk_h_stop(&r.h); /* the export reads the log alone */
	for (int i = 0; i < 4; i++)
		snprintf(p[i], sizeof(p[i]), "%s/x%d", r.h.dir, i);
	cli_is(&r.h, 0, "period", "incident", "export", "--since", since, "--json", NULL);
	save(p[0], out);
	cr_assert_not_null(strstr(out, "\"incidents\":[{\"id\":\""), "%s", out);
	cli_is(&r.h, 0, "export 1", "incident", "export", id[0], "--json", NULL);
	save(p[1], out);
	/* the second id: the period lists both */
	bk_h_slurp(p[0], out, sizeof(out));
	q = strstr(strstr(out, "\"incidents\":["), "},{\"id\":\"");
	cr_assert_not_null(q, "%s", out);
	snprintf(id[1], sizeof(id[1]), "%.15s", q + 9);
	id[1][strcspn(id[1], "\"")] = '\0';
	cli_is(&r.h, 0, "export 2", "incident", "export", id[1], "--format", "json",
	       NULL);
	save(p[2], out);
	cli_is(&r.h, 0, "export md", "incident", "export", id[0], NULL);
	save(p[3], out);
	snprintf(cmd, sizeof(cmd), "%s/check.py", r.h.dir);
	save(cmd, check_split);
	snprintf(cmd, sizeof(cmd), "python3 %s/check.py %s %s %s %s >&2", r.h.dir, p[0],
	         p[1], p[2], p[3]);
	cr_assert_eq(system(cmd), 0, "the split (see stderr); markdown:\n%s", out);
	cli_is(&r.h, 0, "stats", "incident", "stats", "--since", "1d", "--json", NULL);
	cr_assert(strstr(out, "\"incidents\":2,\"by_severity\":{\"P1\":1,\"P2\":1,"
	                      "\"P3\":0,\"P4\":0}") &&
	              strstr(out, "\"ttd\":{\"n\":1,") &&
	              strstr(out, "\"mttr\":{\"n\":2,") &&
	              !strstr(out, "\"meets_target\":false"),
	          "count by severity, TTD of the rule trip only, both MTTRs: %s", out);
	cli_is(&r.h, 0, "stats text", "incident", "stats", "--since", "1d", NULL);
	cr_assert(strstr(out, "incidents: 2 (P1 1, P2 1, P3 0, P4 0)") &&
	              strstr(out, "target < 0h05m00s: MET") &&
	              strstr(out, "target < 0h30m00s: MET"),
	          "%s", out);
	cli_is(&r.h, 2, "stats no since", "incident", "stats", NULL);
	cli_is(&r.h, 2, "bad id", "incident", "export", "INC-1", NULL);
	cli_is(&r.h, 1, "unknown id", "incident", "export", "INC-2020-123", NULL);
	cr_assert(strstr(out, "no record"), "%s", out);
	bk_rig_down(&r);
}

/* ---- the status page, in a real browser ----------------------------------------- */

#include <sys/stat.h>

#define HOSTILE "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"

/*
 * tests/page/browse.py drives a real headless chromium over the DevTools
 * pipe: the page as loaded before the trip, the same tab after it reloaded
 * itself (a marker on the old document proves nobody navigated), and a
 * phone-sized screenshot kept in build/test-artifacts/.
 */
Test(incidents, status_page_in_a_real_browser_shows_a_trip_within_its_refresh,
     .timeout = 240)
{
	struct bk_h h;
	char ini[256], url[64], shot[512], cmd[2048], path[256];
	static char page[1 << 18];
	const char *body;
	int port = bk_h_free_port();
	struct stat st;

	snprintf(ini, sizeof(ini), "[metrics]\nlisten = 127.0.0.1:%d\n", port);
	up(&h, "incpage", ini);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	/* read-only and self-contained, whatever it shows */
	cr_assert_eq(bk_h_http_get(port, "/", page, sizeof(page), &body), 200, "%s",
	             page);
	cr_assert(strstr(page, "Content-Type: text/html"), "%s", page);
	cr_assert(strstr(page, "default-src 'none'"), "a CSP that forbids loads: %s",
	          page);
	cr_assert(strstr(page, "Cache-Control: no-store"), "live state, never cached: %s",
	          page);
	for (const char *bad[] = {"<form", "<button", "<input", "<script", "<a ", "href=",
	                          "src=", "http://", "https://", "url(", "@import", NULL},
	                **b = bad;
	     *b; b++)
		cr_assert(!strstr(body, *b),
		          "no write action, no external asset: '%s' in %s", *b, body);
	cr_assert(strstr(body, "<meta http-equiv=refresh content=2>"), "%s", body);
	mkdir(BK_BINARY_DIR "/test-artifacts", 0755);
	snprintf(shot, sizeof(shot), "%s/test-artifacts/status-page.png", BK_BINARY_DIR);
	unlink(shot);
	snprintf(cmd, sizeof(cmd),
	         "python3 %s/tests/page/browse.py %s %s %s -- %s --config %s trip "
	         "manual_halt --strategy alpha --reason \"%s\" >&2",
	         BK_SOURCE_DIR, url, h.dir, shot, bk_h_cli_bin(), h.config, HOSTILE);
	cr_assert_eq(system(cmd), 0, "the browser run (see stderr)");
	snprintf(path, sizeof(path), "%s/before.html", h.dir);
	bk_h_slurp(path, page, sizeof(page));
	cr_assert(
	    strstr(page, "id=\"global-mode\">global: <span class=\"mode m0\">ACTIVE"),
	    "%s", page);
	snprintf(path, sizeof(path), "%s/after.html", h.dir);
	bk_h_slurp(path, page, sizeof(page));
	cr_assert(strstr(page, "<h3>alpha <span class=\"mode m3\">HALTED</span></h3>"),
	          "the reloaded page shows the trip: %s", page);
	cr_assert(strstr(page, "&lt;script&gt;document.title='pwned'&lt;/script&gt;"
	                       "&lt;img src=x onerror=alert(1)&gt;"),
	          "the hostile reason is text: %s", page);
	cr_assert(!strstr(page, "<script") && !strstr(page, "<img") &&
	              !strstr(page, "pwned</title>"),
	          "nothing injected: %s", page);
	cr_assert(strstr(page, "manual_halt trip of strategy alpha"),
	          "the incident it opened: %s", page);
	cr_assert(stat(shot, &st) == 0 && st.st_size > 1000, "a screenshot in %s", shot);
	bk_h_fini(&h);
}

/* ---- the Grafana dashboard ------------------------------------------------------ */

/* tools/grafana/breaker.json: structure, and every panel's query against a real
 * Prometheus scraping this breakerd (tests/grafana/check.py). */
Test(incidents, grafana_dashboard_queries_work_on_a_real_prometheus, .timeout = 240)
{
	struct bk_h h;
	char ini[256], cmd[1024];
	int port = bk_h_free_port();

	snprintf(ini, sizeof(ini), "[metrics]\nlisten = 127.0.0.1:%d\n", port);
	up(&h, "incgraf", ini);
	cli_is(&h, 0, "trip", "trip", "reject_rate", "--strategy", "alpha", "--reason",
	       "something to chart", NULL);
	snprintf(
	    cmd, sizeof(cmd),
	    "python3 %s/tests/grafana/check.py %s/tools/grafana/breaker.json %d %s >&2",
	    BK_SOURCE_DIR, BK_SOURCE_DIR, port, h.dir);
	cr_assert_eq(system(cmd), 0, "the dashboard's queries (see stderr)");
	bk_h_fini(&h);
}

/* Warnings and daemon stops belong in the timeline: audited, exported. */
Test(incidents, warnings_and_daemon_stops_are_in_the_timeline)
{
	struct bk_rig r;
	char since[32];

	snprintf(since, sizeof(since), "%lld", (long long)time(NULL) - 1);
	bk_rig_up(
	    &r, "incwarn",
	    "[strategies]\nnames = alpha, beta\n[rules]\nwarn_levels = 0.5, 0.8, 0.9\n"
	    "exposure.max = 1000\n");
	bk_report_heartbeat(&r.t, r.alpha, 0);
	bk_report_marks(&r.t, r.alpha, 0, 600, 0); /* 60%: a warning, no trip */
	for (int i = 0; i < 200; i++) {
		cli_is(&r.h, 0, "audit", "audit", NULL);
		if (strstr(out, "WARNING"))
			break;
		usleep(25000);
	}
	cr_assert(strstr(out, "WARNING") && strstr(out, "utilisation=60%"),
	          "the warning is audited: %s", out);
	cr_assert_eq(bk_h_mode_of(&r.h, "alpha"), BK_ACTIVE, "a warning, not a trip");
	cr_assert_eq(bk_h_stop(&r.h), 0);
	bk_h_start(&r.h); /* a clean stop, a start, a crash, a start in the period */
	bk_h_kill9(&r.h);
	bk_h_start(&r.h);
	cr_assert_eq(bk_h_stop(&r.h), 0);
	cli_is(&r.h, 0, "export", "incident", "export", "--since", since, NULL);
	cr_assert(strstr(out, "| WARNING rule exposure at 60% |") &&
	              strstr(out, "measured 600"),
	          "the warning in the timeline: %s", out);
	/* the clean stops are records of their own, naming the signal's sender */
	cr_assert_eq(bk_h_count(out, "| STOP |"), 2, "two clean stops: %s", out);
	cr_assert(strstr(out, "stopped: signal 15 from uid 0"), "who stopped it: %s",
	          out);
	/* the crash left no record: its gap is the only inferred one */
	cr_assert_eq(bk_h_count(out, "| **breakerd STOPPED** (or died) after this |"), 1,
	             "the crash's gap in the timeline: %s", out);
	cr_assert(strstr(out, "until the start below"), "%s", out);
	bk_rig_down(&r);
}

/* A group's trip goes under one incident, named on the page and in the export. */
Test(incidents, a_group_trip_is_one_incident_on_the_page_and_in_the_export)
{
	struct bk_h h;
	char ini[256], id[24];
	static char page[1 << 18];
	const char *body, *q;
	int port = bk_h_free_port();

	snprintf(ini, sizeof(ini),
	         "groups = alpha=venue:XETR, beta=venue:XETR\n[metrics]\nlisten = "
	         "127.0.0.1:%d\n",
	         port);
	up(&h, "incgroup", ini);
	cli_is(&h, 0, "group kill", "kill", "--group", "venue:XETR", "--reason",
	       "XETR <rejects>", NULL);
	cr_assert_not_null(q = strstr(out, "incident INC-"), "%s", out);
	snprintf(id, sizeof(id), "%.15s", q + 9);
	id[strcspn(id, " \n")] = '\0';
	cr_assert_eq(bk_h_mode_of(&h, "alpha"), BK_HALTED);
	cr_assert_eq(bk_h_http_get(port, "/", page, sizeof(page), &body), 200, "%s",
	             page);
	cr_assert(
	    strstr(body, "<section id=groups><h2>Groups</h2><p>1 of 1 groups held.") &&
	        strstr(body, "venue:XETR <span class=\"mode m3\">HALTED</span> <span "
	                     "class=age>2 members</span>") &&
	        strstr(body, "XETR &lt;rejects&gt;") &&
	        strstr(body, "kill_switch trip of group venue:XETR"),
	    "the group, its latch and its incident on the page: %s", body);
	cli_is(&h, 0, "export", "incident", "export", id, NULL);
	cr_assert(strstr(out, "| group venue:XETR | HALTED |") && strstr(out, "| P2 |"),
	          "the group in the impact table: %s", out);
	bk_h_fini(&h);
}
