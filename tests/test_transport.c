/*
 * The command transports under abuse: a daemon paused while requests were
 * in flight, and hostile local users who connect and hang
 * up or hold connections open. Real breakerd, real CLI.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bk_harness.h"

#define QUIET  "[metrics]\nlisten =\n[commands]\nsocket_mode = 0666\n"
#define NOBODY 65534

static char out[1 << 16];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The CLI with argv (NULL-terminated) in the background, output discarded. */
static pid_t cli_spawn(struct bk_h *h, char **args)
{
	char *argv[24] = {bk_h_cli_bin(), "--config", h->config};
	int n = 3;
	pid_t pid;

	while (*args && n < 23)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Reap pid within secs; its exit code, or -1 (then it is killed). */
static int reap_within(pid_t pid, double secs)
{
	double end = now_s() + secs;
	int st;

	while (now_s() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* utime + stime of pid, in clock ticks. */
static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	cr_assert_gt(bk_h_slurp(path, buf, sizeof(buf)), 0);
	p = strrchr(buf, ')');
	cr_assert_not_null(p);
	/* after "pid (comm)": state is field 3, utime 14, stime 15 */
	cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	                    &ut, &st),
	             2);
	return (long)(ut + st);
}

/* The daemon's CPU use over about a second, as a fraction of one core. */
static double cpu_share(pid_t pid)
{
	long t0 = cpu_ticks(pid), t1;
	double s0 = now_s(), s1;

	usleep(1000 * 1000);
	t1 = cpu_ticks(pid);
	s1 = now_s();
	return (double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK) / (s1 - s0);
}

static const char *cli_config; /* the CLI's --config, if not the daemon's */

/* The CLI as uid (-1: as we are); stdout and stderr in out; its exit code. */
static int cli_as(struct bk_h *h, int uid, char **args)
{
	char *argv[24] = {bk_h_cli_bin(), "--config",
	                  cli_config ? (char *)cli_config : h->config};
	int n = 3;

	while (*args && n < 23)
		argv[n++] = *args++;
	argv[n] = NULL;
	return bk_h_run_as(h, uid, uid, NULL, argv, out, sizeof(out));
}

#define CLI(h, ...) cli_as(h, -1, (char *[]){__VA_ARGS__, NULL})

/* Every transport the CLI uses answers within 1 s (the CLI's own timeout). */
static void answers_everywhere(struct bk_h *h, const char *when)
{
	char unix_url[256], ipc_url[256];
	double t;
	int rv;

	snprintf(unix_url, sizeof(unix_url), "%s", h->cfg.local_url);
	snprintf(ipc_url, sizeof(ipc_url), "%s", h->cfg.cmd_url);
	t = now_s();
	rv = CLI(h, "--timeout", "1000", "--url", ipc_url, "status");
	cr_log_info("%s: status over ipc: exit %d after %.0f ms", when, rv,
	            (now_s() - t) * 1e3);
	cr_assert_eq(rv, 0, "%s: status over %s: %s", when, ipc_url, out);
	t = now_s();
	rv = CLI(h, "--timeout", "1000", "--url", unix_url, "status");
	cr_log_info("%s: status over the local socket: exit %d after %.0f ms", when, rv,
	            (now_s() - t) * 1e3);
	cr_assert_eq(rv, 0, "%s: status over %s: %s", when, unix_url, out);
	/* and the CLI's own choice of transport, for a query and a change */
	cr_assert_eq(CLI(h, "--timeout", "1000", "status"), 0, "%s: status: %s", when,
	             out);
	cr_assert_eq(
	    CLI(h, "--timeout", "1000", "trip", "manual_halt", "--reason", (char *)when),
	    0, "%s: trip: %s", when, out);
}

/*
 * Requests that time out while breakerd is stopped left nng's
 * ipc listener dead after SIGCONT (nng 1.5.2: a peer gone before breakerd's
 * handshake write -> EPIPE -> NNG_ECLOSED, which the listener takes for its
 * own close and stops accepting; nng issue #1518, fixed in 1.6.0), and nng's
 * poller spinning on the orphaned connection's EPOLLHUP.
 */
Test(transport, pause_during_requests_then_resume_answers_within_1s_and_idles)
{
	struct bk_h h;
	pid_t waiting[4];
	double share;

	bk_h_init(&h, "pause", QUIET);
	bk_h_start(&h);
	answers_everywhere(&h, "before the pause");
	fprintf(stderr, "breakerd CPU over ~1 s before the pause: %.1f%% of a core\n",
	        cpu_share(h.pid) * 100);
	cr_assert_eq(kill(h.pid, SIGSTOP), 0);
	/* requests that give up while the daemon is stopped, on both transports */
	waiting[0] = cli_spawn(&h, (char *[]){"--timeout", "300", "status", NULL});
	waiting[1] = cli_spawn(&h, (char *[]){"--timeout", "300", "status", NULL});
	waiting[2] = cli_spawn(
	    &h, (char *[]){"--timeout", "300", "--url", h.cfg.local_url, "status", NULL});
	waiting[3] = cli_spawn(&h, (char *[]){"--timeout", "300", "trip", "manual_halt",
	                                      "--reason", "while stopped", NULL});
	/* they must give up (and hang up) before the daemon runs again, near
	 * their 300 ms: not after nng's 10 s handshake wait (5 s: generous) */
	for (int i = 0; i < 4; i++) {
		double t = now_s();
		int rv = reap_within(waiting[i], 5);

		fprintf(stderr,
		        "request %d to the stopped daemon: exit %d after %.0f ms\n", i,
		        rv, (now_s() - t) * 1e3);
		cr_assert(rv > 0,
		          "request %d: answered by a stopped daemon, or still "
		          "waiting after 5 s (exit %d)",
		          i, rv);
	}
	usleep(500 * 1000);
	cr_assert_eq(kill(h.pid, SIGCONT), 0);
	usleep(300 * 1000);
	answers_everywhere(&h, "after SIGCONT");
	share = cpu_share(h.pid);
	cr_log_info("breakerd CPU after resume: %.1f%% of a core", share * 100);
	fprintf(stderr, "breakerd CPU over ~1 s after resume: %.1f%% of a core\n",
	        share * 100);
	cr_assert_lt(share, 0.5, "breakerd burns %.0f%% of a core after the resume",
	             share * 100);
	bk_h_fini(&h);
}

/* nobody: connect to path and hang up at once, n times (a plain stream socket) */
static void connect_close_flood(const char *path, int n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		if (fd < 0)
			_exit(3);
		(void)!connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
	}
}

/* The same failure, by any user who may connect and nothing else: no pause. */
Test(transport, connect_and_hang_up_flood_by_another_user_leaves_ipc_answering)
{
	struct bk_h h;
	pid_t pid;
	double share;
	int st;

	if (geteuid() != 0)
		cr_skip_test("needs root: the flood runs as another user");
	bk_h_init(&h, "hup", QUIET);
	bk_h_start(&h);
	bk_h_open_dirs(&h);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		bk_h_become(NOBODY, NOBODY, 2);
		connect_close_flood(h.cfg.cmd_url + 6, 3000);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "flood child: %d", st);
	usleep(300 * 1000);
	answers_everywhere(&h, "after the flood");
	share = cpu_share(h.pid);
	fprintf(stderr, "breakerd CPU over ~1 s after the flood: %.1f%% of a core\n",
	        share * 100);
	cr_assert_lt(share, 0.5, "breakerd burns %.0f%% of a core", share * 100);
	bk_h_fini(&h);
}

/* ---- connection exhaustion must not block a trip ------------- */

#define HOSTILE 1000

/*
 * A child that, as nobody, opens n connections to path (SOCK_SEQPACKET for
 * the local socket; SOCK_STREAM plus nng's SP handshake for ipc://, so that
 * each becomes an nng pipe), holds them idle and says so on *ready. No nng
 * in the child: plain sockets. Killed by the caller.
 */
static pid_t hold_connections(const char *path, int type, int n, int *ready)
{
	static const char sp_req[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int p[2];
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct rlimit rl = {HOSTILE + 64, HOSTILE + 64};
		double end = now_s() + 5;
		int held = 0;

		close(p[0]);
		if (setrlimit(RLIMIT_NOFILE, &rl))
			_exit(2);
		bk_h_become(NOBODY, NOBODY, 2);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* after setuid, which clears it */
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		for (int i = 0; i < n; i++) {
			int fd = socket(AF_UNIX, type | SOCK_NONBLOCK, 0), rv;

			if (fd < 0)
				_exit(3);
			/* a full backlog: retry while breakerd accepts, 5 s in all */
			while ((rv = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) <
			           0 &&
			       errno == EAGAIN && now_s() < end)
				usleep(1000);
			if (rv < 0) {
				close(fd);
				continue;
			}
			if (type == SOCK_STREAM)
				(void)!write(fd, sp_req, sizeof(sp_req));
			held++;
		}
		(void)!write(p[1], &held, sizeof(held));
		for (;;)
			pause();
	}
	close(p[1]);
	*ready = p[0];
	return pid;
}

static int wait_ready(int fd)
{
	int held = -1;

	cr_assert_eq(read(fd, &held, sizeof(held)), (ssize_t)sizeof(held),
	             "the hostile child died");
	close(fd);
	return held;
}

static void stop_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int global_mode(struct bk_h *h)
{
	struct bk_client c;
	int m;

	bk_h_attach(h, &c);
	m = bk_check(&c, BK_GLOBAL_ONLY);
	bk_client_detach(&c);
	return m;
}

/* A root trip with the CLI's own choice of transport, then one over url. */
static void root_trip_gets_through(struct bk_h *h, const char *what, const char *url)
{
	double t = now_s();
	int rv;

	rv = CLI(h, "--timeout", "1000", "trip", "manual_halt", "--reason", (char *)what);
	fprintf(stderr, "%s: root trip: exit %d after %.0f ms\n", what, rv,
	        (now_s() - t) * 1e3);
	cr_assert_eq(rv, 0, "%s: root trip: %s", what, out);
	/* one try, within its 1000 ms: not saved by the CLI's retry */
	cr_assert_null(strstr(out, "trying"), "%s: the first transport failed: %s", what,
	               out);
	cr_assert_eq(global_mode(h), BK_HALTED, "%s: the trip is not in the segment",
	             what);
	t = now_s();
	rv = CLI(h, "--timeout", "1000", "--url", (char *)url, "kill", "s1", "--reason",
	         (char *)what);
	fprintf(stderr, "%s: root kill over %s: exit %d after %.0f ms\n", what, url, rv,
	        (now_s() - t) * 1e3);
	cr_assert_eq(rv, 0, "%s: root kill over %s: %s", what, url, out);
	cr_assert_eq(CLI(h, "--timeout", "1000", "status"), 0, "%s: status: %s", what,
	             out);
	cr_assert(strstr(out, "s1"), "%s", out);
}

/*
 * breakerd as systemd starts it: LimitNOFILE's default soft limit is 1024
 * (tools/breakerd.service sets none), so a thousand connections held open
 * are also a thousand of its descriptors.
 */
static void start_like_systemd(struct bk_h *h)
{
	struct rlimit rl;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = 1024;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	bk_h_start(h);
}

#define FLOOD_INI                                                                        \
	"[metrics]\nlisten =\n[strategies]\nnames = s1\n[commands]\nsocket_mode = "      \
	"0666\n"

Test(transport, a_thousand_idle_local_connections_by_nobody_do_not_block_a_root_trip)
{
	struct bk_h h;
	pid_t child;
	int ready, held;

	if (geteuid() != 0)
		cr_skip_test("needs root: the flood runs as another user");
	bk_h_init(&h, "lflood", FLOOD_INI);
	start_like_systemd(&h);
	bk_h_open_dirs(&h);
	child = hold_connections(h.cfg.local_url + 7, SOCK_SEQPACKET, HOSTILE, &ready);
	held = wait_ready(ready);
	fprintf(stderr, "nobody holds %d local connections\n", held);
	root_trip_gets_through(&h, "1000 local connections held", h.cfg.local_url);
	stop_child(child);
	bk_h_fini(&h);
}

/* 1,000 on each transport at once: past the fds systemd gives breakerd. */
Test(transport, a_thousand_idle_connections_on_each_transport_do_not_block_a_root_trip)
{
	struct bk_h h;
	pid_t c1, c2;
	int r1, r2, n1, n2;

	if (geteuid() != 0)
		cr_skip_test("needs root: the flood runs as another user");
	bk_h_init(&h, "iflood", FLOOD_INI);
	start_like_systemd(&h);
	bk_h_open_dirs(&h);
	c1 = hold_connections(h.cfg.cmd_url + 6, SOCK_STREAM, HOSTILE, &r1);
	n1 = wait_ready(r1);
	c2 = hold_connections(h.cfg.local_url + 7, SOCK_SEQPACKET, HOSTILE, &r2);
	n2 = wait_ready(r2);
	fprintf(stderr, "nobody holds %d ipc and %d local connections\n", n1, n2);
	root_trip_gets_through(&h, "1000 ipc + 1000 local connections held",
	                       h.cfg.cmd_url);
	stop_child(c1);
	stop_child(c2);
	{ /* what the operator reads: who was refused, and why */
		static char log[1 << 16];

		cr_assert_gt(bk_h_slurp(h.log, log, sizeof(log)), 0);
		cr_assert(strstr(log, "nng: connection from uid 65534 refused: "
		                      "max_conns_per_uid 32 reached"),
		          "%s", log);
		/* one line a second: the first may be another refusal's */
		cr_assert(strstr(log, "local socket: connection from") &&
		              strstr(log, " refused: "),
		          "%s", log);
	}
	bk_h_fini(&h);
}

/* The per-uid cap lifted: the full table's oldest idle connection makes room. */
Test(transport, a_full_local_table_evicts_the_oldest_idle_connection_for_a_root_trip)
{
	struct bk_h h;
	pid_t child;
	int ready;

	if (geteuid() != 0)
		cr_skip_test("needs root: the flood runs as another user");
	bk_h_init(&h, "evict", FLOOD_INI "max_conns_per_uid = 100000\n");
	start_like_systemd(&h);
	bk_h_open_dirs(&h);
	child = hold_connections(h.cfg.local_url + 7, SOCK_SEQPACKET, HOSTILE, &ready);
	fprintf(stderr, "nobody holds %d local connections, uncapped\n",
	        wait_ready(ready));
	root_trip_gets_through(&h, "uncapped local flood", h.cfg.local_url);
	stop_child(child);
	bk_h_fini(&h);
}

/* Connect to path (a stream gets nng's SP handshake), wait for EOF: ms, or -1. */
static double closed_after(const char *path, int type)
{
	static const char sp_req[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char b[8];
	double t, end;
	ssize_t n = -1;
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, type, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (type == SOCK_STREAM)
		cr_assert_eq(write(fd, sp_req, sizeof(sp_req)), 8);
	t = now_s();
	end = t + 10;
	while (now_s() < end) {
		n = recv(fd, b, sizeof(b), MSG_DONTWAIT); /* nng's 8-byte header first */
		if (n == 0 || (n < 0 && errno != EAGAIN))
			break;
		usleep(20000);
	}
	close(fd);
	return n == 0 ? (now_s() - t) * 1e3 : -1;
}

/* A connection that sends nothing is closed after idle_timeout_ms: EOF. */
Test(transport, idle_connections_are_closed_after_the_idle_timeout_on_both_transports)
{
	struct bk_h h;
	double ms;

	bk_h_init(&h, "idle", FLOOD_INI "idle_timeout_ms = 300\n");
	bk_h_start(&h);
	ms = closed_after(h.cfg.local_url + 7, SOCK_SEQPACKET);
	fprintf(stderr, "idle local connection closed after %.0f ms (timeout 300 ms)\n",
	        ms);
	cr_assert_geq(ms, 0, "the idle local connection was not closed within 10 s");
	ms = closed_after(h.cfg.cmd_url + 6, SOCK_STREAM);
	fprintf(stderr, "idle ipc connection closed after %.0f ms (timeout 300 ms)\n",
	        ms);
	cr_assert_geq(ms, 0, "the idle ipc connection was not closed within 10 s");
	/* and a caller that does send is served as before */
	cr_assert_eq(CLI(&h, "--timeout", "1000", "status"), 0, "%s", out);
	bk_h_fini(&h);
}

/* ---- the CLI's retry over the other transport, with the same request id ------ */

/*
 * A stand-in for a local socket that fails the caller: it takes one request
 * and, if forward, hands it to breakerd's real local socket and waits for
 * the answer (so the change IS applied), then hangs up on the caller
 * without a reply, as a reset connection does.
 */
struct proxy {
	int listen_fd;
	const char *real; /* breakerd's local socket path */
	bool forward;
	bool forwarded;
};

static void *proxy_run(void *arg)
{
	struct proxy *p = arg;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static uint8_t buf[1 << 16];
	struct pollfd pfd = {.fd = p->listen_fd, .events = POLLIN};
	int fd, up;
	ssize_t n;

	if (poll(&pfd, 1, 10000) != 1 || (fd = accept(p->listen_fd, NULL, NULL)) < 0)
		return NULL; /* the CLI never came */
	n = recv(fd, buf, sizeof(buf), 0);
	if (n > 0 && p->forward) {
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->real);
		up = socket(AF_UNIX, SOCK_SEQPACKET, 0);
		if (up >= 0 && connect(up, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    send(up, buf, (size_t)n, 0) == n && recv(up, buf, sizeof(buf), 0) > 0)
			p->forwarded = true;
		close(up);
	}
	close(fd);
	return NULL;
}

static void retry_case(bool forward)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct proxy p = {.forward = forward};
	char cfg[512], ini[512], audit[1 << 16];
	const char *reason =
	    forward ? "applied by the first try" : "applied by the retry";
	struct bk_h h;
	pthread_t th;
	int rv;

	bk_h_init(&h, forward ? "retry1" : "retry2", FLOOD_INI);
	bk_h_start(&h);
	p.real = h.cfg.local_url + 7;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/proxy.sock", h.dir);
	p.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	cr_assert_eq(bind(p.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(p.listen_fd, 4), 0);
	/* the CLI's config: the same daemon, but its local_url is the proxy */
	snprintf(cfg, sizeof(cfg), "%s/cli.ini", h.dir);
	snprintf(ini, sizeof(ini), "[commands]\nlocal_url = unix://%s\n", sa.sun_path);
	bk_h_write_config(&h, cfg, ini);
	cr_assert_eq(pthread_create(&th, NULL, proxy_run, &p), 0);
	cli_config = cfg;
	rv = CLI(&h, "--timeout", "2000", "trip", "manual_halt", "--reason",
	         (char *)reason);
	cli_config = NULL;
	pthread_join(th, NULL);
	fprintf(stderr, "--- %s:\n%s", reason, out);
	cr_assert_eq(rv, 0, "%s", out);
	cr_assert_eq(p.forwarded, forward);
	cr_assert(strstr(out, "sent, no reply over unix://"), "%s", out);
	cr_assert(strstr(out, forward ? "applied by the earlier try over unix://"
	                              : "applied over ipc://"),
	          "%s", out);
	cr_assert_eq(global_mode(&h), BK_HALTED);
	/* applied once: one TRIP record with this reason, whichever try made it */
	cr_assert_eq(bk_h_cli(&h, audit, sizeof(audit), "audit", "--json", NULL), 0);
	cr_assert_eq(bk_h_count(audit, reason), 1, "%s", audit);
	close(p.listen_fd);
	bk_h_fini(&h);
}

Test(transport, a_trip_whose_local_try_fails_is_retried_over_ipc_with_the_same_id)
{
	retry_case(true); /* the first try was applied: acknowledged, not applied twice */
	retry_case(false); /* it was not: the retry applies it */
}
