/*
 * breaker health: the runbooks' quick status check.
 *
 * Asks breakerd for its Status (is it there, is the log trusted, are rules
 * warning) and, when the config has a [metrics] listen address, reads
 * breakerd's own verdict from /healthz, which also sees what Status does not
 * carry: audit durability, failing flushes, tick overruns, a stalled loop.
 * The first line has the /healthz format: "ok", "degraded: a; b",
 * "failing: a; b".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bk_mode.h"
#include "breaker.h"

#define REASONS_MAX 16
#define REASON_LEN  320
#define HTTP_MAX    8192

enum { H_OK, H_DEGRADED, H_FAILING, H_UNREACHABLE };

static const char *const verdicts[] = {"ok", "degraded", "failing", "unreachable"};

struct health {
	int verdict;
	char reasons[REASONS_MAX][REASON_LEN];
	int n;
	char healthz_url[BK_URL_MAX];
	char healthz_error[160]; /* why /healthz could not be used; "" if it was */
	bool healthz_used;
};

static void add_reason(struct health *h, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_reason(struct health *h, int level, const char *fmt, ...)
{
	va_list ap;

	if (level > h->verdict)
		h->verdict = level;
	if (h->n >= REASONS_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(h->reasons[h->n++], REASON_LEN, fmt, ap);
	va_end(ap);
}

/* ---- a minimal HTTP GET (loopback, one short response) ---------------------- */

/* "127.0.0.1:9464" / "[::1]:9464" -> host and port strings. */
static int split_listen(const char *listen, char *host, size_t hlen, const char **port)
{
	const char *colon = *listen == '[' ? strstr(listen, "]:") : strrchr(listen, ':');
	size_t n;

	if (!colon)
		return -EINVAL;
	n = (size_t)(colon - listen) - (*listen == '[');
	if (n >= hlen)
		return -EINVAL;
	memcpy(host, listen + (*listen == '['), n);
	host[n] = '\0';
	*port = colon + (*listen == '[' ? 2 : 1);
	return 0;
}

static int connect_to(const char *listen, int timeout_ms)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	struct pollfd pfd;
	char host[64];
	const char *port;
	socklen_t elen = sizeof(int);
	int fd, err = 0;

	if (split_listen(listen, host, sizeof(host), &port) < 0 ||
	    getaddrinfo(host, port, &hints, &ai) != 0)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)) {
		err = -errno;
		goto out;
	}
	pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&pfd, 1, timeout_ms) != 1)
		err = -ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err)
		err = -err;
out:
	freeaddrinfo(ai);
	if (err && fd >= 0)
		close(fd);
	return err ? err : fd;
}

/* Read until the peer closes, the buffer is full, or the deadline passes. */
static ssize_t read_all(int fd, char *buf, size_t len, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t off = 0;
	ssize_t n;

	while (off < len - 1) {
		if (poll(&pfd, 1, timeout_ms) != 1)
			return -ETIMEDOUT;
		n = read(fd, buf + off, len - 1 - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	return (ssize_t)off;
}

/*
 * GET path from the listener: *status, the X-Breaker-Instance header into
 * inst, the body into body. 0 or -errno.
 */
static int http_get(const char *listen, const char *path, int timeout_ms, int *status,
                    char *inst, size_t ilen, char *body, size_t blen)
{
	char req[256], resp[HTTP_MAX], *p, *end;
	int fd = connect_to(listen, timeout_ms), n;
	ssize_t got;

	if (fd < 0)
		return fd;
	n = snprintf(req, sizeof(req),
	             "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
	             listen);
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return -EIO;
	}
	got = read_all(fd, resp, sizeof(resp), timeout_ms);
	close(fd);
	if (got < 0)
		return (int)got;
	if (sscanf(resp, "HTTP/1.%*d %d", status) != 1 ||
	    !(end = strstr(resp, "\r\n\r\n")))
		return -EBADMSG;
	*end = '\0';
	inst[0] = '\0';
	if ((p = strcasestr(resp, "\r\nX-Breaker-Instance:"))) {
		p += 21;
		p += strspn(p, " ");
		snprintf(inst, ilen, "%.*s", (int)strcspn(p, "\r\n"), p);
	}
	snprintf(body, blen, "%s", end + 4);
	return 0;
}

/* ---- the checks ---------------------------------------------------------------- */

/* breakerd's own verdict: "ok" / "degraded: a; b" / "failing: a; b". */
static void from_healthz(struct health *h, const char *body)
{
	char line[2048], *save = NULL, *tok;
	const char *rest;
	int level;

	snprintf(line, sizeof(line), "%.*s", (int)strcspn(body, "\n"), body);
	if (strcmp(line, "ok") == 0)
		return;
	if (strncmp(line, "degraded: ", 10) == 0)
		level = H_DEGRADED, rest = line + 10;
	else if (strncmp(line, "failing: ", 9) == 0)
		level = H_FAILING, rest = line + 9;
	else {
		add_reason(h, H_DEGRADED, "/healthz said something unexpected");
		return;
	}
	if (level > h->verdict)
		h->verdict = level;
	for (tok = strtok_r((char *)rest, ";", &save); tok;
	     tok = strtok_r(NULL, ";", &save))
		add_reason(h, level, "%s", tok + strspn(tok, " "));
}

static void check_healthz(struct cli *c, struct health *h)
{
	char inst[BK_INSTANCE_MAX + 8], body[2048];
	int status = 0, rv;

	bk_config_metrics_url(&c->cfg, h->healthz_url, sizeof(h->healthz_url));
	if (!h->healthz_url[0]) {
		snprintf(h->healthz_error, sizeof(h->healthz_error),
		         "[metrics] listen is off");
		return;
	}
	strncat(h->healthz_url, "/healthz",
	        sizeof(h->healthz_url) - strlen(h->healthz_url) - 1);
	rv = http_get(c->cfg.metrics_listen, "/healthz",
	              c->timeout_ms < 2000 ? c->timeout_ms : 2000, &status, inst,
	              sizeof(inst), body, sizeof(body));
	if (rv < 0)
		snprintf(h->healthz_error, sizeof(h->healthz_error), "%s", strerror(-rv));
	else if (strcmp(inst, c->cfg.instance) != 0)
		snprintf(
		    h->healthz_error, sizeof(h->healthz_error),
		    "it serves instance '%.63s', not '%.63s': give each instance its own "
		    "[metrics] listen port",
		    inst[0] ? inst : "?", c->cfg.instance);
	else if (status != 200 && status != 503)
		snprintf(h->healthz_error, sizeof(h->healthz_error), "HTTP status %d",
		         status);
	if (h->healthz_error[0]) {
		add_reason(h, H_DEGRADED,
		           "health endpoint %s unusable (%s): monitoring cannot "
		           "see breakerd",
		           h->healthz_url, h->healthz_error);
		return;
	}
	h->healthz_used = true;
	from_healthz(h, body);
}

static bool has_latch(const Breaker__Scope *s, int reason)
{
	for (size_t i = 0; s && i < s->n_latches; i++)
		if (s->latches[i]->has_reason_code &&
		    (int)s->latches[i]->reason_code == reason)
			return true;
	return false;
}

static bool has_reason(const struct health *h, const char *text)
{
	for (int i = 0; i < h->n; i++)
		if (strstr(h->reasons[i], text))
			return true;
	return false;
}

/* What Status alone shows. With /healthz in use these are already in its verdict. */
static void check_status(struct cli *c, const Breaker__StatusInfo *in, struct health *h)
{
	char b[32];

	/* Status is fresher than /healthz (rendered periodically): a lost log
	 * counts as soon as Status says so, once */
	if (in->audit_problem && !has_reason(h, in->audit_problem))
		add_reason(h, H_FAILING,
		           "%.200s: trips hold but are not durable, resumes refused "
		           "(SIGHUP breakerd to write the log anew)",
		           in->audit_problem);
	if (h->healthz_used)
		return;
	if (has_latch(in->global, BREAKER__REASON_CODE__AUDIT_CORRUPT))
		add_reason(
		    h, H_FAILING,
		    "global HALTED by audit_corrupt: the audit log was "
		    "damaged or lost (breaker audit --verify, then a forced resume)");
	if (in->has_heartbeat_age_ns && in->heartbeat_age_ns > c->cfg.heartbeat_bound_ns)
		add_reason(h, H_FAILING,
		           "breakerd's heartbeat is %s old: engines fail closed",
		           fmt_dur(b, sizeof(b), in->heartbeat_age_ns));
	if (in->n_warnings) {
		const Breaker__RuleState *w = in->warnings[0];
		add_reason(h, H_DEGRADED,
		           "%zu rule warning%s (strategy %.39s rule %.20s at %s%s)",
		           in->n_warnings, in->n_warnings == 1 ? "" : "s",
		           w->strategy ? w->strategy : "?", w->rule ? w->rule : "?",
		           fmt_pct(b, w->utilisation), w->violated ? ", violated" : "");
	}
}

/* ---- output ------------------------------------------------------------------------ */

static void put_latches(FILE *f, const Breaker__Scope *s)
{
	for (size_t i = 0; s && i < s->n_latches; i++)
		fprintf(f, "%s%s", i ? ", " : "",
		        reason_name(s->latches[i]->reason_code));
}

static void print_text(const struct health *h, const Breaker__StatusInfo *in)
{
	const Breaker__Scope *g = in ? in->global : NULL;

	printf("%s", verdicts[h->verdict == H_UNREACHABLE ? H_FAILING : h->verdict]);
	for (int i = 0; i < h->n; i++) {
		fputs(i ? "; " : ": ", stdout);
		put_text(stdout, h->reasons[i]);
	}
	putchar('\n');
	if (!in)
		return;
	printf("  global %s", g && g->has_mode ? mode_name(g->mode) : "?");
	if (g && g->n_latches) {
		fputs(" (", stdout);
		put_latches(stdout, g);
		fputc(')', stdout);
	}
	printf("; %zu of %" PRIu32 " strategies tripped; last durable audit seq %" PRIu64
	       "\n",
	       in->n_tripped, in->strategy_count, in->audit_seq);
	printf("  checked: Status%s%s%s\n", h->healthz_used ? ", " : "",
	       h->healthz_used ? h->healthz_url : "", h->healthz_used ? "" : " only");
}

static void print_json(const struct health *h, const Breaker__StatusInfo *in,
                       const struct cli *c)
{
	const Breaker__Scope *g = in ? in->global : NULL;

	printf("{\"health\":\"%s\",\"reasons\":[", verdicts[h->verdict]);
	for (int i = 0; i < h->n; i++) {
		fputs(i ? "," : "", stdout);
		json_str(stdout, h->reasons[i]);
	}
	fputs("],\"instance\":", stdout);
	json_str(stdout, c->cfg.instance);
	if (in) {
		printf(",\"global_mode\":\"%s\",\"global_latches\":[",
		       g && g->has_mode ? mode_name(g->mode) : "MODE_UNKNOWN");
		for (size_t i = 0; g && i < g->n_latches; i++)
			printf("%s\"%s\"", i ? "," : "",
			       reason_name(g->latches[i]->reason_code));
		printf("],\"strategies\":%" PRIu32
		       ",\"tripped\":%zu,\"rule_warnings\":%zu,"
		       "\"heartbeat_age_ns\":%" PRIu64 ",\"audit_seq\":%" PRIu64,
		       in->strategy_count, in->n_tripped, in->n_warnings,
		       in->heartbeat_age_ns, in->audit_seq);
	}
	fputs(",\"healthz\":", stdout);
	if (h->healthz_url[0])
		json_str(stdout, h->healthz_url);
	else
		fputs("null", stdout);
	printf(",\"healthz_used\":%s,\"healthz_error\":",
	       h->healthz_used ? "true" : "false");
	json_str(stdout, h->healthz_error);
	fputs("}\n", stdout);
}

static void show(const struct health *h, const Breaker__StatusInfo *in,
                 const struct cli *c, bool json)
{
	if (json)
		print_json(h, in, c);
	else
		print_text(h, in);
}

/* Exit 0 ok or degraded, 1 failing, 3 unreachable (as for every RPC command). */
int cmd_health(struct cli *c, const struct cli_args *a)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__StatusRequest sr = BREAKER__STATUS_REQUEST__INIT;
	Breaker__Reply *rep = NULL;
	struct health h;
	int rv;

	memset(&h, 0, sizeof(h));
	req.cmd_case = BREAKER__REQUEST__CMD_STATUS;
	req.status = &sr;
	if ((rv = cli_query_pages(c, "health", &req, &rep)) != 0) {
		if (rv != BX_UNREACHABLE)
			return rv;
		h.verdict = H_UNREACHABLE;
		add_reason(&h, H_UNREACHABLE, "breakerd unreachable at %s", c->url);
		show(&h, NULL, c, a->json);
		return BX_UNREACHABLE;
	}
	if (rep->status != BREAKER__STATUS__OK || !rep->info) {
		rv = rep->status != BREAKER__STATUS__OK ? cli_refused(rep)
		                                        : BX_UNREACHABLE;
		if (!rep->info && rep->status == BREAKER__STATUS__OK)
			fputs("breaker health: breakerd's reply has no status info\n",
			      stderr);
		breaker__reply__free_unpacked(rep, NULL);
		return rv;
	}
	check_healthz(c, &h);
	check_status(c, rep->info, &h);
	show(&h, rep->info, c, a->json);
	breaker__reply__free_unpacked(rep, NULL);
	return h.verdict == H_FAILING ? BX_REFUSED : BX_OK;
}
