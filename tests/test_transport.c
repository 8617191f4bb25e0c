/*
 * The command transports under abuse: a daemon paused while requests were
 * in flight (issue 12 item 7), and hostile local users who connect and hang
 * up or hold connections open (issue 11 item 2). Real breakerd, real CLI.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static char *cli_bin(void)
{
	char *b = getenv("BREAKER_CLI");

	return b && *b ? b : "breaker";
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The CLI with argv (NULL-terminated) in the background, output discarded. */
static pid_t cli_spawn(struct bk_h *h, char **args)
{
	char *argv[24] = {cli_bin(), "--config", h->config};
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

static void open_dirs(struct bk_h *h)
{
	char run[256];

	snprintf(run, sizeof(run), "%s/run", h->dir);
	cr_assert_eq(chmod(h->dir, 0755), 0);
	cr_assert_eq(chmod(run, 0755), 0);
}

/* The CLI as uid (-1: as we are); stdout and stderr in out; its exit code. */
static int cli_as(struct bk_h *h, int uid, char **args)
{
	char path[256];
	pid_t pid;
	int st;

	snprintf(path, sizeof(path), "%s/cli.out", h->dir);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char *argv[24] = {cli_bin(), "--config", h->config};
		int n = 3, fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		if (uid >= 0 &&
		    (setgroups(0, NULL) || setgid((gid_t)uid) || setuid((uid_t)uid)))
			_exit(125);
		while (*args && n < 23)
			argv[n++] = *args++;
		argv[n] = NULL;
		execv(argv[0], argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	bk_h_slurp(path, out, sizeof(out));
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
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
 * Issue 12 item 7: requests that time out while breakerd is stopped left nng's
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
	cr_assert_eq(kill(h.pid, SIGSTOP), 0);
	/* requests that give up while the daemon is stopped, on both transports */
	waiting[0] = cli_spawn(&h, (char *[]){"--timeout", "300", "status", NULL});
	waiting[1] = cli_spawn(&h, (char *[]){"--timeout", "300", "status", NULL});
	waiting[2] = cli_spawn(
	    &h, (char *[]){"--timeout", "300", "--url", h.cfg.local_url, "status", NULL});
	waiting[3] = cli_spawn(&h, (char *[]){"--timeout", "300", "trip", "manual_halt",
	                                      "--reason", "while stopped", NULL});
	/* they must give up (and hang up) before the daemon runs again */
	for (int i = 0; i < 4; i++)
		cr_assert_neq(reap_within(waiting[i], 30), 0,
		              "request %d was answered by a stopped daemon?", i);
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
	open_dirs(&h);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
			_exit(2);
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
