/*
 * bk_page_http - the status page at / (bk_page.h), on nng's HTTP threads.
 *
 * Each request asks breakerd for Status over its local socket (the loop
 * answers it like any client's; no nng thread waits on another), renders
 * HTML and answers. Read-only by construction: no form, no script, no link
 * out, no external asset; every text from the log goes through esc().
 * The page reloads itself every BK_PAGE_REFRESH_S seconds (meta refresh).
 *
 * Sections are a table: a new one (say, groups) is one render function and
 * one row in sections[].
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bk_config.h"
#include "bk_http.h"
#include "bk_mode.h"
#include "bk_page.h"
#include "bk_rpc.h"
#include "bk_time.h"

/* One page request at a time waits on the loop, at most this long: the others
 * are answered "busy" at once, so that a stalled loop never ties up the HTTP
 * threads /healthz needs to say so. */
#define RPC_TIMEOUT_MS 1000

static struct {
	pthread_mutex_t lock;
	char url[BK_URL_MAX];
	struct bk_rpc rpc;
	bool open;
} page = {.lock = PTHREAD_MUTEX_INITIALIZER};

void bk_page_setup(const char *rpc_url)
{
	snprintf(page.url, sizeof(page.url), "%s", rpc_url);
}

/* ---- a growing buffer ------------------------------------------------------------ */

struct sb {
	char *p;
	size_t n, cap;
	bool oom;
};

static void sb_put(struct sb *b, const char *s, size_t len)
{
	if (b->oom)
		return;
	if (b->n + len + 1 > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 16384) + len;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n] = '\0';
}

/* Markup and numbers only: never text from the log (esc() is for that). */
static void sb_printf(struct sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Text from the log, HTML-escaped (also fit for an attribute value). */
static void esc(struct sb *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':
			sb_put(b, "&amp;", 5);
			break;
		case '<':
			sb_put(b, "&lt;", 4);
			break;
		case '>':
			sb_put(b, "&gt;", 4);
			break;
		case '"':
			sb_put(b, "&quot;", 6);
			break;
		case '\'':
			sb_put(b, "&#39;", 5);
			break;
		default:
			sb_put(b, s, 1);
		}
	}
}

/* ---- pieces ------------------------------------------------------------------------ */

static void put_time(struct sb *b, uint64_t wall_ns, uint64_t now_ns)
{
	time_t t = (time_t)(wall_ns / 1000000000ull);
	uint64_t age = now_ns > wall_ns ? (now_ns - wall_ns) / 1000000000ull : 0;
	struct tm tm;
	char buf[32];

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%SZ", &tm);
	sb_printf(b, "%s <span class=age>(", buf);
	if (age < 120)
		sb_printf(b, "%" PRIu64 " s ago)</span>", age);
	else if (age < 7200)
		sb_printf(b, "%" PRIu64 " min ago)</span>", age / 60);
	else
		sb_printf(b, "%" PRIu64 " h ago)</span>", age / 3600);
}

static const char *mode_of(int mode)
{
	const char *s = bk_mode_name(mode);

	return s ? s : "HALTED";
}

static void put_mode(struct sb *b, int mode)
{
	sb_printf(b, "<span class=\"mode m%d\">%s</span>",
	          mode >= 0 && mode <= 3 ? mode : 3, mode_of(mode));
}

static void put_scope_name(struct sb *b, const char *strategy)
{
	if (strategy)
		esc(b, strategy);
	else
		sb_put(b, "<b>global</b>", 13);
}

static void put_latches(struct sb *b, const Breaker__Scope *s, uint64_t now)
{
	if (!s->n_latches) {
		sb_put(b, "<p class=quiet>no latch</p>", 27);
		return;
	}
	sb_printf(b, "<table><tr><th>latch</th><th>mode</th><th>who</th><th>why</th>"
	             "<th>since</th></tr>");
	for (size_t i = 0; i < s->n_latches; i++) {
		const Breaker__Latch *l = s->latches[i];
		const char *r = bk_reason_name(l->reason_code);
		sb_printf(b, "<tr><td>%s</td><td>", r ? r : "?");
		put_mode(b, l->mode);
		sb_put(b, "</td><td>", 9);
		esc(b, l->actor_name);
		sb_printf(b, " (uid %" PRIu32 ")</td><td>", l->actor_uid);
		esc(b, l->reason);
		sb_put(b, "</td><td>", 9);
		put_time(b, l->since_wall_ns, now);
		sb_put(b, "</td></tr>", 10);
	}
	sb_put(b, "</table>", 8);
}

/* ---- sections ---------------------------------------------------------------------- */

static void s_incidents(struct sb *b, const Breaker__StatusInfo *in, uint64_t now)
{
	if (!in->n_incidents) {
		sb_put(b, "<p class=quiet>none</p>", 23);
		return;
	}
	sb_printf(b,
	          "<table><tr><th>incident</th><th>sev</th><th>state</th><th>title</th>"
	          "<th>opened</th></tr>");
	for (size_t i = 0; i < in->n_incidents; i++) {
		const Breaker__IncidentInfo *x = in->incidents[i];
		sb_put(b, "<tr class=\"inc ", 15);
		esc(b, x->state);
		sb_put(b, "\"><td>", 6);
		esc(b, x->id);
		sb_put(b, "</td><td class=sev>", 19);
		esc(b, x->severity);
		sb_put(b, "</td><td>", 9);
		esc(b, x->state);
		sb_put(b, "</td><td>", 9);
		esc(b, x->title);
		sb_put(b, "</td><td>", 9);
		put_time(b, x->opened_wall_ns, now);
		sb_put(b, "</td></tr>", 10);
	}
	sb_put(b, "</table>", 8);
}

static void s_global(struct sb *b, const Breaker__StatusInfo *in, uint64_t now)
{
	const Breaker__Scope *g = in->global;

	sb_put(b, "<p id=global-mode>global: ", 26);
	put_mode(b, g ? (int)g->mode : 3);
	sb_put(b, "</p>", 4);
	if (g)
		put_latches(b, g, now);
	if (in->pending_resume) {
		sb_put(b, "<p class=warn>a global resume is PROPOSED by ", 45);
		esc(b, in->pending_resume->user);
		sb_put(b, ", awaiting a second operator (two-person rule)</p>", 50);
	}
	if (in->audit_problem) {
		sb_put(b, "<p class=bad>audit log: ", 24);
		esc(b, in->audit_problem);
		sb_put(b, "</p>", 4);
	}
}

static void s_strategies(struct sb *b, const Breaker__StatusInfo *in, uint64_t now)
{
	sb_printf(b, "<p>%zu of %" PRIu32 " strategies held; every other one ACTIVE.</p>",
	          in->n_tripped, in->strategy_count);
	for (size_t i = 0; i < in->n_tripped; i++) {
		const Breaker__Scope *s = in->tripped[i];
		sb_put(b, "<div class=scope><h3>", 21);
		put_scope_name(b, s->strategy);
		sb_put(b, " ", 1);
		put_mode(b, s->mode);
		sb_put(b, "</h3>", 5);
		put_latches(b, s, now);
		sb_put(b, "</div>", 6);
	}
}

static void s_groups(struct sb *b, const Breaker__StatusInfo *in, uint64_t now)
{
	size_t held = 0;

	for (size_t i = 0; i < in->n_groups; i++)
		held += in->groups[i]->mode != BREAKER__MODE__MODE_ACTIVE;
	sb_printf(b, "<p>%zu of %zu groups held.</p>", held, in->n_groups);
	for (size_t i = 0; i < in->n_groups; i++) {
		const Breaker__Scope *g = in->groups[i];
		sb_put(b, "<div class=scope><h3>", 21);
		esc(b, g->group);
		sb_put(b, " ", 1);
		put_mode(b, g->mode);
		sb_printf(b, " <span class=age>%" PRIu32 " member%s</span></h3>",
		          g->members, g->members == 1 ? "" : "s");
		if (g->n_latches)
			put_latches(b, g, now);
		sb_put(b, "</div>", 6);
	}
}

static void s_warnings(struct sb *b, const Breaker__StatusInfo *in, uint64_t now)
{
	(void)now;
	if (!in->n_warnings) {
		sb_put(b, "<p class=quiet>no rule at a warning level</p>", 45);
		return;
	}
	sb_printf(b, "<table><tr><th>rule</th><th>scope</th><th>utilisation</th></tr>");
	for (size_t i = 0; i < in->n_warnings; i++) {
		const Breaker__RuleState *w = in->warnings[i];
		double u = w->utilisation * 100;
		sb_put(b, "<tr><td>", 8);
		esc(b, w->rule);
		sb_put(b, "</td><td>", 9);
		put_scope_name(b, w->strategy);
		sb_printf(b,
		          "</td><td><div class=bar><div class=\"fill%s\" "
		          "style=\"width:%.0f%%\">"
		          "</div></div>%.0f%%%s</td></tr>",
		          w->violated ? " over" : "",
		          u > 100 ? 100
		          : u < 0 ? 0
		                  : u,
		          u, w->violated ? " VIOLATED" : "");
	}
	sb_put(b, "</table>", 8);
}

static void s_acks(struct sb *b, const Breaker__StatusInfo *in, uint64_t now)
{
	(void)now;
	if (!in->n_acks) {
		sb_put(b, "<p class=quiet>no engine reported an ack</p>", 44);
		return;
	}
	sb_printf(b, "<table><tr><th>strategy</th><th>pid</th><th>acked the last trip"
	             "</th><th>after</th></tr>");
	for (size_t i = 0; i < in->n_acks; i++) {
		const Breaker__EngineAck *a = in->acks[i];
		sb_put(b, "<tr><td>", 8);
		esc(b, a->strategy);
		sb_printf(b, "</td><td>%" PRIu32 "</td><td>%s</td><td>", a->pid,
		          a->acked ? "yes" : "<b>NO</b>");
		if (a->acked && a->has_ack_latency_ns)
			sb_printf(b, "%.3f ms", (double)a->ack_latency_ns / 1e6);
		sb_put(b, "</td></tr>", 10);
	}
	sb_put(b, "</table>", 8);
}

/* Cancel-all, confirmed (the orders' StatusInfo.orders): engines in a HALTED
 * scope and whether they reported 0 working orders since the halt. */
static void s_orders(struct sb *b, const Breaker__StatusInfo *in, uint64_t now)
{
	(void)now;
	if (!in->n_orders) {
		sb_put(b, "<p class=quiet>no engine in a HALTED scope</p>", 46);
		return;
	}
	sb_printf(b, "<table><tr><th>strategy</th><th>pid</th><th>working</th>"
	             "<th>flat</th></tr>");
	for (size_t i = 0; i < in->n_orders; i++) {
		const Breaker__EngineOrders *o = in->orders[i];
		sb_put(b, "<tr><td>", 8);
		esc(b, o->strategy);
		sb_printf(b, "</td><td>%" PRIu32 "</td><td>%" PRIu64 "</td><td>", o->pid,
		          o->working);
		if (o->flat)
			sb_printf(b, "flat after %.3f ms",
			          (double)o->flat_after_ns / 1e6);
		else {
			sb_put(b, "<span class=bad>NOT CONFIRMED</span> ", 37);
			esc(b, o->unconfirmed);
		}
		sb_put(b, "</td></tr>", 10);
	}
	sb_put(b, "</table>", 8);
}

static void s_recent(struct sb *b, const Breaker__StatusInfo *in, uint64_t now)
{
	if (!in->n_recent) {
		sb_put(b, "<p class=quiet>nothing since breakerd started</p>", 49);
		return;
	}
	sb_printf(b, "<table><tr><th>seq</th><th>time</th><th>what</th><th>scope</th>"
	             "<th>mode</th><th>uid</th><th>reason</th></tr>");
	for (size_t i = 0; i < in->n_recent; i++) {
		const Breaker__Event *e = in->recent[i];
		const ProtobufCEnumValue *kv = protobuf_c_enum_descriptor_get_value(
		    &breaker__audit_record__kind__descriptor, (int)e->kind);
		const char *k = kv ? kv->name : "?";
		const char *r = bk_reason_name(e->reason_code);
		sb_printf(b, "<tr><td>%" PRIu64 "</td><td>", e->audit_seq);
		put_time(b, e->wall_ns, now);
		sb_printf(b, "</td><td>%s%s%s%s</td><td>", k, e->forced ? " FORCED" : "",
		          r && e->reason_code ? " " : "", r && e->reason_code ? r : "");
		put_scope_name(b, e->strategy);
		sb_put(b, "</td><td>", 9);
		if (e->has_from_mode && e->has_to_mode)
			sb_printf(b, "%s → %s", mode_of(e->from_mode),
			          mode_of(e->to_mode));
		sb_printf(b, "</td><td>%" PRIu32 "</td><td>", e->actor_uid);
		esc(b, e->reason);
		sb_put(b, "</td></tr>", 10);
	}
	sb_put(b, "</table>", 8);
}

static const struct section {
	const char *id, *title;
	void (*render)(struct sb *, const Breaker__StatusInfo *, uint64_t now);
} sections[] = {
    {"incidents", "Incidents", s_incidents},
    {"global", "Global", s_global},
    {"groups", "Groups", s_groups},
    {"strategies", "Strategies held", s_strategies},
    {"warnings", "Rule warnings", s_warnings},
    {"acks", "Engine acks", s_acks},
    {"orders", "Working orders after the halt", s_orders},
    {"recent", "Recent audit records", s_recent},
};

/* ---- the page ---------------------------------------------------------------------- */

static const char css[] =
    "body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:.5em;background:#111;"
    "color:#eee}h1{font-size:1.2em;margin:.2em 0}h2{font-size:1.05em;border-bottom:"
    "1px solid #444;margin:1em 0 .3em}h3{font-size:1em;margin:.5em 0 .2em}"
    "table{border-collapse:collapse;width:100%;display:block;overflow-x:auto}"
    "td,th{border-bottom:1px solid #333;padding:.2em .4em;text-align:left;"
    "vertical-align:top}th{color:#aaa;font-weight:normal}.mode{padding:0 .3em;"
    "border-radius:.2em;font-weight:bold}.m0{background:#1b5e20}.m1{background:#8d6e00}"
    ".m2{background:#b45309}.m3{background:#b71c1c}.age,.quiet{color:#999}"
    ".bar{display:inline-block;width:6em;height:.7em;background:#333;margin-right:.4em}"
    ".fill{height:100%;background:#d4a000}.fill.over{background:#e53935}"
    ".warn{color:#ffb300}.bad{color:#ff5252;font-weight:bold}#top{font-size:1.3em}"
    "@media(max-width:600px){body{font-size:14px}td,th{padding:.15em .25em}}";

static void render(struct sb *b, const Breaker__StatusInfo *in, uint64_t now)
{
	sb_printf(b,
	          "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
	          "<meta name=viewport content=\"width=device-width,initial-scale=1\">"
	          "<meta http-equiv=refresh content=%d><title>breaker ",
	          BK_PAGE_REFRESH_S);
	esc(b, in->instance);
	sb_printf(b, "</title><style>%s</style></head><body><h1>breaker ", css);
	esc(b, in->instance);
	sb_put(b, "</h1><p id=top>", 15);
	put_mode(b, in->global ? (int)in->global->mode : 3);
	sb_printf(b,
	          " global · %zu strateg%s held · audit seq %" PRIu64 " · breakerd pid "
	          "%" PRIu32 "</p><p class=age>read-only; reloads every %d s; as of ",
	          in->n_tripped, in->n_tripped == 1 ? "y" : "ies", in->audit_seq,
	          in->daemon_pid, BK_PAGE_REFRESH_S);
	put_time(b, now, now);
	sb_put(b, "</p>", 4);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		sb_printf(b, "<section id=%s><h2>%s</h2>", sections[i].id,
		          sections[i].title);
		sections[i].render(b, in, now);
		sb_put(b, "</section>", 10);
	}
	sb_put(b, "</body></html>\n", 15);
}

/* Status with the page's extras, over one connection kept open. */
static int fetch(Breaker__Reply **rep)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__StatusRequest st = BREAKER__STATUS_REQUEST__INIT;
	int rv = -ENOTCONN;

	st.has_page = st.page = 1;
	req.cmd_case = BREAKER__REQUEST__CMD_STATUS;
	req.status = &st;
	if (pthread_mutex_trylock(&page.lock) != 0)
		return -EBUSY;
	for (int tries = 0; tries < 2 && rv; tries++) {
		if (!page.open && bk_rpc_open(&page.rpc, page.url, RPC_TIMEOUT_MS) == 0)
			page.open = true;
		if (page.open && (rv = bk_rpc_call(&page.rpc, &req, rep)) != 0) {
			bk_rpc_close(
			    &page.rpc); /* reconnect once: breakerd closes idle ones */
			page.open = false;
		}
	}
	pthread_mutex_unlock(&page.lock);
	return rv;
}

/* nothing from elsewhere, nothing inline but the style */
#define PAGE_CSP                                                                         \
	"default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; "            \
	"frame-ancestors 'none'"

static void respond(nng_aio *aio, uint16_t code, const char *body, size_t len)
{
	bk_http_respond(aio, code, "text/html; charset=utf-8", "Content-Security-Policy",
	                PAGE_CSP, body, len);
}

static void on_page(nng_aio *aio)
{
	static const char down[] =
	    "<!DOCTYPE html><html><head><meta charset=utf-8><meta http-equiv=refresh "
	    "content=2><title>breaker</title></head><body><h1>breakerd did not answer "
	    "Status within 1 s (or another page view is waiting for it)</h1><p>Engines "
	    "fail closed when its heartbeat stops. See "
	    "/healthz.</p></body></html>\n";
	Breaker__Reply *rep = NULL;
	struct sb b = {0};

	if (fetch(&rep) != 0 || !rep->info) {
		if (rep)
			breaker__reply__free_unpacked(rep, NULL);
		respond(aio, 503, down, sizeof(down) - 1);
		return;
	}
	render(&b, rep->info, bk_now_wall_ns());
	breaker__reply__free_unpacked(rep, NULL);
	if (b.oom)
		respond(aio, 500, "out of memory\n", 14);
	else
		respond(aio, 200, b.p, b.n);
	free(b.p);
}

int bk_page_http_add(nng_http_server *s)
{
	nng_http_handler *h;
	int rv;

	if (!page.url[0])
		return 0; /* no command socket to ask: no page */
	if ((rv = nng_http_handler_alloc(&h, "/", on_page)) != 0)
		return rv;
	if ((rv = nng_http_handler_set_method(h, "GET")) != 0 ||
	    (rv = nng_http_server_add_handler(s, h)) != 0) {
		nng_http_handler_free(h);
		return rv;
	}
	return 0;
}
