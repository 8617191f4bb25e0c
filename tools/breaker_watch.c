/*
 * breaker watch: subscribe to breakerd's event socket (nng SUB on the
 * config's pub_url) and print each breaker.Event as it arrives.
 *
 * PUB/SUB is best effort: events published while watch is not connected, or
 * faster than it prints, are lost. The audit log is the record; this is the
 * live view. Lost and regained connections are said on stderr.
 *
 * SIGINT and SIGTERM are blocked before nng starts its threads and read from
 * a signalfd, polled with the socket's receive fd: a clean exit 0, no
 * handler, no global flag.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include "bk_rpc.h"
#include "bk_trust.h"
#include "breaker.h"

#define BX_EVENT_MAX         (64 * 1024) /* breakerd's events are well under 1 KiB */
#define BX_WATCH_TIMEOUT_MAX 86400000L
#define BX_WATCH_COUNT_MAX   1000000000L

#define BX_WATCH_COLS 100 /* the default line fits a 100-column pane */

struct watch {
	const char *url;
	bool json, wide;
	unsigned long count; /* 0: no limit */
	long timeout_ms;     /* 0: none */
	unsigned long seen;
	nng_socket sock;
	int recv_fd, sig_fd;
	atomic_uint connects; /* pipes added: the first is the dial */
};

/* ---- one event ----------------------------------------------------------- */

/* "TRIP", "RESUME", "REGISTER", ... or "WARNING" for a pre-trip warning. */
static const char *event_kind(const Breaker__Event *ev)
{
	if (ev->has_warning && ev->warning)
		return "WARNING";
	return ev->has_kind ? kind_name(ev->kind) : "?";
}

/* A trip, resume or proposed resume: an event whose from->to means a change. */
static bool event_changes(const Breaker__Event *ev)
{
	if ((ev->has_warning && ev->warning) || !ev->has_kind)
		return false;
	return ev->kind == BREAKER__AUDIT_RECORD__KIND__TRIP ||
	       ev->kind == BREAKER__AUDIT_RECORD__KIND__RESUME ||
	       ev->kind == BREAKER__AUDIT_RECORD__KIND__RESUME_PROPOSED;
}

/* scope, from->to and reason code in the audit listing's columns */
static void put_event_change(FILE *f, const Breaker__Event *ev)
{
	bool changes = event_changes(ev);
	char modes[40];
	int cols;

	if (ev->group) {
		cols = fprintf(f, "group:");
		cols += put_name(f, ev->group);
	} else if (ev->strategy) {
		cols = fprintf(f, "strategy:");
		cols += put_name(f, ev->strategy);
	} else {
		cols = fprintf(f, "global");
	}
	put_pad(f, cols, 24);
	if (changes && (ev->has_from_mode || ev->has_to_mode))
		snprintf(modes, sizeof(modes), "%s->%s",
		         ev->has_from_mode ? mode_name(ev->from_mode) : "?",
		         ev->has_to_mode ? mode_name(ev->to_mode) : "?");
	else
		snprintf(modes, sizeof(modes), "-");
	fprintf(f, " %-22s ", modes);
	if (!ev->has_reason_code ||
	    (ev->reason_code == BREAKER__REASON_CODE__REASON_NONE && !ev->forced))
		cols = fprintf(f, "-");
	else if (ev->reason_code == BREAKER__REASON_CODE__REASON_NONE)
		cols = fprintf(f, "every-latch");
	else
		cols = fprintf(f, "%s", reason_name(ev->reason_code));
	put_pad(f, cols, 20);
}

/*
 * One line: UTC time, kind, scope, from->to, reason code, uid=, FORCED,
 * rule= util=, seq=, "reason".
 */
static void put_event(FILE *f, const Breaker__Event *ev)
{
	char t[BX_TIME_LEN], u[BX_NUM_LEN];

	fprintf(f, "%s %-15s ", ev->has_wall_ns ? fmt_time(t, ev->wall_ns, 6) : "?",
	        event_kind(ev));
	put_event_change(f, ev);
	if (ev->actor_cn) { /* a certificate caller */
		fputs(" cn=", f);
		put_name(f, ev->actor_cn);
	} else if (ev->has_actor_uid && ev->actor_uid == UINT32_MAX)
		fputs(" uid=-", f); /* 'breaker audit' has its CN */
	else if (ev->has_actor_uid)
		fprintf(f, " uid=%" PRIu32, ev->actor_uid);
	if (ev->has_forced && ev->forced)
		fputs(" FORCED", f);
	if (ev->rule) {
		fputs(" rule=", f);
		put_name(f, ev->rule);
	}
	if (ev->has_utilisation)
		fprintf(f, " util=%s", fmt_pct(u, ev->utilisation));
	if (ev->has_audit_seq)
		fprintf(f, " seq=%" PRIu64, ev->audit_seq);
	if (ev->reason) {
		fputc(' ', f);
		json_str(f, ev->reason);
	}
	fputc('\n', f);
}

/* ---- the default line: one event in BX_WATCH_COLS columns --------------- */

/* Display columns of UTF-8 text: code points, near enough. */
static int text_cols(const char *s, size_t len)
{
	int cols = 0;

	for (size_t i = 0; i < len; i++)
		cols += ((unsigned char)s[i] & 0xc0) != 0x80;
	return cols;
}

/* Bytes of s (escaped text) that fill at most cols columns, ending neither
 * inside a code point nor inside an escape (\uXXXX, \n, \"). */
static size_t cut_at_cols(const char *s, size_t len, int cols)
{
	size_t i = 0, j;
	int c = 0;

	for (; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80 && c++ == cols)
			break;
	for (j = 0; j < i; j++)
		if (s[j] == '\\') {
			size_t esc = s[j + 1] == 'u' ? 6 : 2;
			if (j + esc > i)
				return j;
			j += esc - 1;
		}
	return i;
}

/* s as put_name writes it, into buf; its length. */
static size_t name_text(char *buf, size_t len, const char *s)
{
	FILE *m = fmemopen(buf, len, "w");
	long n;

	buf[0] = '\0';
	if (!m)
		return 0;
	put_name(m, s);
	fflush(m);
	n = ftell(m);
	fclose(m);
	n = n < 0 ? 0 : n >= (long)len ? (long)len - 1 : n;
	buf[n] = '\0';
	return (size_t)n;
}

/* "TRIP", ... "PROPOSED" for RESUME_PROPOSED: the kind in 9 columns. */
static const char *event_kind_short(const Breaker__Event *ev)
{
	if (ev->has_kind && ev->kind == BREAKER__AUDIT_RECORD__KIND__RESUME_PROPOSED)
		return "PROPOSED";
	if (ev->has_kind && ev->kind == BREAKER__AUDIT_RECORD__KIND__LOG_REPAIR)
		return "REPAIR";
	return event_kind(ev);
}

/*
 * HH:MM:SS.mmm KIND scope from->to seq= uid= [FORCED] code "reason", in at
 * most BX_WATCH_COLS columns: a long strategy name is cut to 20 columns and
 * the reason to what is left, each with "…"; --wide and --json have them
 * whole (and the date, and nanoseconds).
 */
static void put_event_short(FILE *f, const Breaker__Event *ev)
{
	char line[512], name[512], util[BX_NUM_LEN + 8], u[BX_NUM_LEN], t[BX_TIME_LEN];
	bool warning = ev->has_warning && ev->warning;
	FILE *m = fmemopen(line, sizeof(line), "w");
	char *rs = NULL;
	size_t rlen = 0, n;
	int cols;

	if (!m) {
		put_event(f, ev);
		return;
	}
	/* 2026-12-06T01:17:15.123Z: the time of day, to the millisecond */
	fprintf(m, "%.12s %-9s ",
	        ev->has_wall_ns ? fmt_time(t, ev->wall_ns, 3) + 11 : "?",
	        event_kind_short(ev));
	if (ev->strategy || ev->group) {
		n = name_text(name, sizeof(name), ev->group ? ev->group : ev->strategy);
		if (text_cols(name, n) > 20) {
			n = cut_at_cols(name, n, 19);
			cols = fprintf(m, "%.*s…", (int)n, name) - 2; /* "…" is 3 bytes */
		} else {
			cols = fprintf(m, "%s", name);
		}
	} else {
		cols = fprintf(m, "global");
	}
	put_pad(m, cols, 14);
	if (warning && ev->has_utilisation) {
		snprintf(util, sizeof(util), "util=%s", fmt_pct(u, ev->utilisation));
		fprintf(m, " %-19s", util);
	} else if (event_changes(ev) && ev->has_from_mode && ev->has_to_mode) {
		fprintf(m, " %s->%-*s", mode_name(ev->from_mode),
		        17 - (int)strlen(mode_name(ev->from_mode)),
		        mode_name(ev->to_mode));
	} else {
		fprintf(m, " %-19s", "-");
	}
	if (ev->has_audit_seq)
		fprintf(m, " seq=%" PRIu64, ev->audit_seq);
	if (ev->actor_cn && !warning) { /* a certificate caller: its CN, cut at 16 */
		n = name_text(name, sizeof(name), ev->actor_cn);
		if (text_cols(name, n) > 16)
			fprintf(m, " cn=%.*s…", (int)cut_at_cols(name, n, 15), name);
		else
			fprintf(m, " cn=%s", name);
	} else if (ev->has_actor_uid && !warning && ev->actor_uid == UINT32_MAX) {
		fputs(" uid=-", m);
	} else if (ev->has_actor_uid && !warning) {
		fprintf(m, " uid=%" PRIu32, ev->actor_uid);
	}
	if (ev->has_forced && ev->forced)
		fputs(" FORCED", m);
	if (warning && ev->rule) {
		fputc(' ', m);
		put_name(m, ev->rule);
	} else if (ev->has_reason_code &&
	           (ev->reason_code != BREAKER__REASON_CODE__REASON_NONE || ev->forced)) {
		fprintf(m, " %s",
		        ev->reason_code == BREAKER__REASON_CODE__REASON_NONE
		            ? "every-latch"
		            : reason_name(ev->reason_code));
	}
	fputc('\0', m);
	fclose(m);
	line[sizeof(line) - 1] = '\0';
	cols = text_cols(line, strlen(line));
	if (cols > BX_WATCH_COLS) { /* long uid, cn and code together: cut, marked */
		n = cut_at_cols(line, strlen(line), BX_WATCH_COLS - 1);
		fprintf(f, "%.*s…\n", (int)n, line);
		return;
	}
	fputs(line, f);
	if (ev->reason && *ev->reason) {
		FILE *rm = open_memstream(&rs, &rlen);
		int room = BX_WATCH_COLS - cols - 1; /* after the space before it */

		if (rm) {
			json_str(rm, ev->reason);
			fclose(rm);
		}
		if (rs && text_cols(rs, rlen) <= room) {
			fprintf(f, " %s", rs);
		} else if (rs && room >= 5) { /* "text…": the closing quote stays */
			n = cut_at_cols(rs, rlen, room - 2);
			fprintf(f, " %.*s…\"", (int)n, rs);
		}
		free(rs);
	}
	fputc('\n', f);
}

/* Print one message. Returns false if stdout cannot be written. */
static bool show(struct watch *w, nng_msg *msg)
{
	Breaker__Event *ev =
	    breaker__event__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));

	if (!ev) {
		fprintf(stderr, "breaker watch: undecodable event (%zu bytes) skipped\n",
		        nng_msg_len(msg));
		return true;
	}
	if (w->json) {
		json_msg(stdout, &ev->base);
		fputc('\n', stdout);
	} else if (w->wide) {
		put_event(stdout, ev);
	} else {
		put_event_short(stdout, ev);
	}
	breaker__event__free_unpacked(ev, NULL);
	w->seen++;
	return fflush(stdout) == 0; /* a pipe or a file sees each event now */
}

/* ---- the socket ---------------------------------------------------------- */

/* Runs on an nng thread: only stderr and an atomic. */
static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct watch *w = arg;

	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST && atomic_fetch_add(&w->connects, 1) > 0)
		fprintf(stderr,
		        "breaker watch: connected to breakerd again; events published "
		        "while it was away were missed\n");
	else if (ev == NNG_PIPE_EV_REM_POST)
		fprintf(stderr,
		        "breaker watch: lost breakerd at %s; reconnecting (events until "
		        "then are missed)\n",
		        w->url);
}

/* Events from a socket someone else could have put there are not breakerd's. */
static int watch_trusted(const struct cli *c, const char *url)
{
	struct bk_trust t;
	char err[768] = "";

	if (bk_trust_expect(&c->cfg, &t, err, sizeof(err)) == 0 &&
	    bk_trust_server(&t, url, -1, err, sizeof(err)) == 0)
		return 0;
	fprintf(stderr, "breaker watch: refusing to listen to %s: %s\n", url, err);
	return BX_UNREACHABLE;
}

static int sub_open(struct watch *w)
{
	int rv;

	if ((rv = nng_sub0_open(&w->sock)) != 0)
		return rv;
	if ((rv = nng_socket_set(w->sock, NNG_OPT_SUB_SUBSCRIBE, "", 0)) ||
	    (rv = nng_socket_set_size(w->sock, NNG_OPT_RECVMAXSZ, BX_EVENT_MAX)) ||
	    (rv = nng_socket_get_int(w->sock, NNG_OPT_RECVFD, &w->recv_fd)) ||
	    (rv = nng_pipe_notify(w->sock, NNG_PIPE_EV_ADD_POST, on_pipe, w)) ||
	    (rv = nng_pipe_notify(w->sock, NNG_PIPE_EV_REM_POST, on_pipe, w)) ||
	    (rv = nng_dial(w->sock, w->url, NULL, 0))) { /* 0: fail now, not later */
		nng_close(w->sock);
		return rv;
	}
	return 0;
}

/*
 * Our own close is not breakerd going away: the callbacks go first. The
 * socket itself is left to process exit, which follows at once: libnng
 * 1.5.2's nng_close() in a client can block forever after the peer dropped
 * a pipe (seen in gdb in test_badinput; here as `watch --count 1` printing
 * its event and never exiting), and a watcher must never hang an operator's
 * shell or script.
 */
static void sub_close(struct watch *w)
{
	nng_pipe_notify(w->sock, NNG_PIPE_EV_ADD_POST, NULL, NULL);
	nng_pipe_notify(w->sock, NNG_PIPE_EV_REM_POST, NULL, NULL);
}

static int unreachable(const struct watch *w, int nng_err)
{
	int err = bk_rpc_errno(nng_err);

	fprintf(stderr, "breaker watch: cannot reach breakerd's event socket at %s: %s\n",
	        w->url, err == -EIO ? nng_strerror(nng_err) : strerror(-err));
	if (err == -EACCES || err == -EPERM)
		fputs("is breakerd running, and may your user use its socket (group,"
		      " directory permissions)?\n",
		      stderr);
	else
		fputs("is breakerd running?\n", stderr);
	return BX_UNREACHABLE;
}

/* ---- the loop ------------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every message queued now. 1: done (--count reached, or output failed). */
static int drain(struct watch *w)
{
	nng_msg *msg;
	bool ok;

	while (nng_recvmsg(w->sock, &msg, NNG_FLAG_NONBLOCK) == 0) {
		ok = show(w, msg);
		nng_msg_free(msg);
		if (!ok) {
			fprintf(stderr, "breaker watch: cannot write output: %s\n",
			        strerror(errno));
			return 1;
		}
		if (w->count && w->seen >= w->count)
			return 1;
	}
	return 0;
}

static int run(struct watch *w)
{
	struct pollfd fds[2] = {{.fd = w->sig_fd, .events = POLLIN},
	                        {.fd = w->recv_fd, .events = POLLIN}};
	int64_t deadline = now_ms() + w->timeout_ms, wait;
	struct signalfd_siginfo si;
	unsigned long seen;
	ssize_t got;

	for (;;) {
		wait = w->timeout_ms ? deadline - now_ms() : -1;
		if (w->timeout_ms && wait <= 0)
			return BX_OK; /* quiet for --timeout-ms */
		if (poll(fds, 2, (int)wait) < 0 && errno != EINTR) {
			fprintf(stderr, "breaker watch: poll: %s\n", strerror(errno));
			return BX_UNREACHABLE;
		}
		if (fds[0].revents) { /* SIGINT or SIGTERM */
			/* consume it: restoring the mask must not deliver it */
			got = read(w->sig_fd, &si, sizeof(si));
			(void)got;
			return BX_OK;
		}
		if (!fds[1].revents)
			continue;
		seen = w->seen;
		if (drain(w))
			return BX_OK;
		if (w->seen != seen)
			deadline = now_ms() + w->timeout_ms;
	}
}

/* ---- options and setup --------------------------------------------------- */

static int parse_long(const char *cmd, const char *opt, const char *s, long max,
                      long *out)
{
	char *end;

	errno = 0;
	*out = s ? strtol(s, &end, 10) : 0;
	if (s && (errno || end == s || *end || *out < 1 || *out > max))
		return cli_usage_error(cmd, "%s takes a whole number, 1 to %ld, not '%s'",
		                       opt, max, s);
	return 0;
}

/* Block SIGINT/SIGTERM (before nng's threads exist) and read them from an fd. */
static int signals_fd(sigset_t *old)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &set, old) != 0)
		return -1;
	if ((fd = signalfd(-1, &set, SFD_CLOEXEC)) < 0)
		pthread_sigmask(SIG_SETMASK, old, NULL);
	return fd;
}

int cmd_watch(struct cli *c, const struct cli_args *a)
{
	struct watch w = {.json = a->json, .wide = a->wide};
	long count, timeout;
	sigset_t old;
	int rv;

	if ((rv = parse_long(a->cmd, "--count", a->count, BX_WATCH_COUNT_MAX, &count)) ||
	    (rv = parse_long(a->cmd, "--timeout-ms", a->timeout_ms, BX_WATCH_TIMEOUT_MAX,
	                     &timeout)))
		return rv;
	if (c->url)
		return cli_usage_error(
		    a->cmd, "--url is the command socket; watch reads the event "
		            "socket (pub_url in --config)");
	if ((rv = cli_config(c)))
		return rv;
	w.url = c->cfg.pub_url;
	if ((rv = watch_trusted(c, w.url)))
		return rv;
	w.count = (unsigned long)count;
	w.timeout_ms = timeout;
	atomic_init(&w.connects, 0);
	if ((w.sig_fd = signals_fd(&old)) < 0) {
		fprintf(stderr, "breaker watch: signalfd: %s\n", strerror(errno));
		return BX_UNREACHABLE;
	}
	if ((rv = sub_open(&w)) != 0) {
		rv = unreachable(&w, rv);
	} else {
		fprintf(stderr, "breaker watch: watching breakerd events at %s\n", w.url);
		rv = run(&w);
		sub_close(&w);
	}
	close(w.sig_fd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rv;
}
