/*
 * Who is the daemon. A hostile local user (uid 65534) squats breakerd's
 * directories, answers in its place on the command sockets, or forges its
 * segment; breakerd, the CLI and the engine client must each refuse to
 * believe it.
 *
 * The hostile user is a forked child that drops to 65534 before anything
 * else; every fork happens before this process's first nng call.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_shm.h"

#define NOBODY 65534

static char out[1 << 16];

static void become_nobody(void)
{
	bk_h_become(NOBODY, NOBODY, 125);
}

/* mkdir path as uid 65534 with mode (umask cleared), in a child. */
static void mkdir_as_nobody(const char *path, mode_t mode)
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		become_nobody();
		umask(0);
		_exit(mkdir(path, mode) == 0 ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mkdir %s as nobody", path);
}

/* A config of our own: run_dir/state_dir where the test says. */
static void write_config(struct bk_h *h, const char *run_dir, const char *state_dir,
                         const char *extra)
{
	char err[256];
	FILE *f = fopen(h->config, "w");

	cr_assert_not_null(f);
	fprintf(f, "[breaker]\ninstance = %s\nrun_dir = %s\nstate_dir = %s\n%s",
	        h->instance, run_dir, state_dir, extra ? extra : "");
	fclose(f);
	cr_assert_eq(bk_config_defaults(&h->cfg, NULL), 0);
	cr_assert_eq(bk_config_load(&h->cfg, h->config, err, sizeof(err)), 0, "%s", err);
}

/*
 * Start breakerd expecting it to refuse: its exit status (-1 if it was
 * still running after 10 s: then it is killed), its log in out.
 */
static int start_expect_exit(struct bk_h *h)
{
	const char *bin = getenv("BREAKERD") ? getenv("BREAKERD") : "breakerd";
	char *argv[] = {(char *)bin, "--config", h->config, "--log-file", h->log, NULL};
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(bin, argv);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			bk_h_slurp(h->log, out, sizeof(out));
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	bk_h_slurp(h->log, out, sizeof(out));
	return -1;
}

static void rm_rf(const char *path)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	cr_assert_eq(system(cmd), 0);
}

/* ---- breakerd refuses squatted directories ---------------------- */

Test(trust, squatted_run_dir_refuses_start)
{
	struct bk_h h;
	char run[128], state[192];

	bk_h_init(&h, "squat", NULL);
	/* the documented non-root default shape: a run_dir under /tmp */
	snprintf(run, sizeof(run), "/tmp/bk-squat-%d-run", (int)getpid());
	snprintf(state, sizeof(state), "%s/state", h.dir);
	rm_rf(run);
	mkdir_as_nobody(run, 0755);
	write_config(&h, run, state, NULL);
	cr_assert_eq(start_expect_exit(&h), 1, "breakerd must refuse: %s", out);
	cr_assert(strstr(out, "unsafe directory") && strstr(out, run) &&
	              strstr(out, "owned by uid 65534 with mode 0755"),
	          "%s", out);
	/* nothing served from there */
	snprintf(state, sizeof(state), "%s/%s.sock", run, h.instance);
	cr_assert_neq(access(state, F_OK), 0, "a socket was created in %s", run);
	rm_rf(run);
	bk_h_fini(&h);
}

Test(trust, squatted_parent_of_state_dir_refuses_start)
{
	struct bk_h h;
	char top[128], run[192], state[192];

	bk_h_init(&h, "sqpar", NULL);
	/* 65534 made the parent; breakerd would create its state dir inside */
	snprintf(top, sizeof(top), "/tmp/bk-sqpar-%d", (int)getpid());
	rm_rf(top);
	mkdir_as_nobody(top, 0755);
	snprintf(run, sizeof(run), "%s/run", h.dir);
	snprintf(state, sizeof(state), "%s/breaker/state", top);
	write_config(&h, run, state, NULL);
	cr_assert_eq(start_expect_exit(&h), 1, "breakerd must refuse: %s", out);
	cr_assert(strstr(out, top) && strstr(out, "owned by uid 65534"), "%s", out);
	rm_rf(top);
	bk_h_fini(&h);
}

/* symlink as uid 65534, in a child (the link is the squatter's to re-point) */
static void symlink_as_nobody(const char *target, const char *path)
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		become_nobody();
		_exit(symlink(target, path) == 0 ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "symlink %s as nobody", path);
}

Test(trust, squatted_symlink_to_our_own_dir_refuses_start)
{
	struct bk_h h;
	char link[128], run[192], state[192];

	bk_h_init(&h, "sqlink", NULL);
	/* the target is root's and fine; the link in /tmp is 65534's to swap */
	snprintf(run, sizeof(run), "%s/run", h.dir);
	cr_assert_eq(mkdir(run, 0750), 0);
	snprintf(link, sizeof(link), "/tmp/bk-sqlink-%d", (int)getpid());
	unlink(link);
	symlink_as_nobody(run, link);
	snprintf(state, sizeof(state), "%s/state", h.dir);
	write_config(&h, link, state, NULL);
	cr_assert_eq(start_expect_exit(&h), 1, "breakerd must refuse: %s", out);
	cr_assert(strstr(out, link) && strstr(out, "owned by uid 65534"), "%s", out);
	unlink(link);
	bk_h_fini(&h);
}

Test(trust, world_writable_run_dir_refuses_start)
{
	struct bk_h h;
	char run[192], state[192];

	bk_h_init(&h, "wwrun", NULL);
	snprintf(run, sizeof(run), "%s/run", h.dir);
	snprintf(state, sizeof(state), "%s/state", h.dir);
	cr_assert_eq(mkdir(run, 0700), 0);
	cr_assert_eq(chmod(run, 0777), 0); /* ours, but anyone may write */
	write_config(&h, run, state, NULL);
	cr_assert_eq(start_expect_exit(&h), 1, "breakerd must refuse: %s", out);
	cr_assert(strstr(out, run) && strstr(out, "mode 0777") &&
	              strstr(out, "not writable by group or others"),
	          "%s", out);
	bk_h_fini(&h);
}

Test(trust, daemon_user_other_than_ours_refuses_start)
{
	struct bk_h h;
	char run[192], state[192];

	bk_h_init(&h, "duser", NULL);
	snprintf(run, sizeof(run), "%s/run", h.dir);
	snprintf(state, sizeof(state), "%s/state", h.dir);
	write_config(&h, run, state, "daemon_user = 65534\n");
	cr_assert_eq(start_expect_exit(&h), 1, "breakerd must refuse: %s", out);
	cr_assert(strstr(out, "daemon_user is uid 65534"), "%s", out);
	bk_h_fini(&h);
}

/* ---- the CLI verifies the server end ---------------------------- */

/*
 * The attack as the issue saw it: someone who could write the run dir moved
 * <instance>.sock aside and answers trips with a forged "applied". Here the
 * fake binds as root (the test's stand-in for a writable run dir) and drops
 * to 65534 before listen(), so SO_PEERCRED names 65534. It answers one
 * request with OK HALTED audit seq 4242; its exit code is the number of
 * requests it got.
 */
static pid_t fake_local_server(const char *path, int go_fd, int ready_fd)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		uint8_t buf[1 << 16];
		char c;
		int fd, conn, got = 0;
		ssize_t n;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (read(go_fd, &c, 1) != 1)
			_exit(100);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(101);
		become_nobody();
		if (listen(fd, 8) < 0)
			_exit(102);
		if (write(ready_fd, "r", 1) != 1)
			_exit(103);
		alarm(20);
		conn = accept(fd, NULL, NULL);
		if (conn < 0)
			_exit(104);
		while ((n = recv(conn, buf, sizeof(buf), 0)) > 0) {
			Breaker__Request *req =
			    breaker__request__unpack(NULL, (size_t)n, buf);
			Breaker__Reply rep = BREAKER__REPLY__INIT;

			got++;
			rep.has_request_id = rep.has_status = rep.has_audit_seq = 1;
			rep.request_id = req ? req->request_id : 0;
			rep.status = BREAKER__STATUS__OK;
			rep.audit_seq = 4242;
			rep.has_from_mode = rep.has_to_mode = 1;
			rep.from_mode = BREAKER__MODE__MODE_ACTIVE;
			rep.to_mode = BREAKER__MODE__MODE_HALTED;
			if (req)
				breaker__request__free_unpacked(req, NULL);
			n = (ssize_t)breaker__reply__pack(&rep, buf);
			if (send(conn, buf, (size_t)n, MSG_NOSIGNAL) < 0)
				break;
		}
		_exit(got);
	}
	return pid;
}

Test(trust, cli_refuses_a_fake_local_server)
{
	struct bk_h h;
	struct bk_client c;
	char aside[256];
	const char *sock;
	int go[2], ready[2], st, rv;
	pid_t fake;
	char r;

	bk_h_init(&h, "fakesrv", NULL);
	sock = h.cfg.local_url + 7;
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(ready), 0);
	fake = fake_local_server(sock, go[0], ready[1]); /* before any nng call */
	close(go[0]);
	close(ready[1]);
	bk_h_start(&h);
	snprintf(aside, sizeof(aside), "%s.aside", sock);
	cr_assert_eq(rename(sock, aside), 0, "%s", strerror(errno));
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(read(ready[0], &r, 1), 1, "the fake server did not start");

	rv = bk_h_cli_all(&h, out, sizeof(out), "trip", "manual_halt", "--reason",
	                  "squat test", NULL);
	cr_assert_neq(rv, 0, "a trip answered by a fake must not succeed: %s", out);
	cr_assert(strstr(out, "refusing to send") && strstr(out, "uid 65534") &&
	              strstr(out, "nothing was sent"),
	          "%s", out);
	cr_assert_null(strstr(out, "4242"), "the forged ack was believed: %s", out);

	kill(fake, SIGTERM);
	cr_assert_eq(waitpid(fake, &st, 0), fake);
	cr_assert(!WIFEXITED(st) || WEXITSTATUS(st) == 0,
	          "the fake server got %d request(s)", WEXITSTATUS(st));
	/* and the real daemon is as it was: nobody was told it halted */
	bk_h_attach(&h, &c);
	cr_assert_eq(bk_check(&c, BK_GLOBAL_ONLY), BK_ACTIVE);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

/*
 * A fake nng REP server (bk_fake_ipc) run by 65534, reached through a
 * root-owned socket file in root's run dir: the path passes every check,
 * only the peer's credentials tell. (The file is bound in 65534's own
 * directory and then moved and chowned by root: a unix socket is found by
 * its inode.) It writes 'R' to report_fd for every request it gets.
 */
static pid_t fake_ipc_server(const char *dir, int go_fd, int ready_fd, int report_fd)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		const char *bin =
		    getenv("BK_FAKE_IPC") ? getenv("BK_FAKE_IPC") : "bk_fake_ipc";
		char url[256], rfd[16], pfd[16];
		char c;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (read(go_fd, &c, 1) != 1)
			_exit(100);
		become_nobody();
		if (mkdir(dir, 0755) < 0)
			_exit(101);
		snprintf(url, sizeof(url), "ipc://%s/fake.cmd", dir);
		snprintf(rfd, sizeof(rfd), "%d", ready_fd);
		snprintf(pfd, sizeof(pfd), "%d", report_fd);
		/* exec: nng is not fork-safe */
		execl(bin, bin, url, rfd, pfd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

Test(trust, cli_refuses_an_ipc_peer_of_another_uid_behind_a_root_file)
{
	struct bk_h h;
	char dir[128], fake[192], aside[256], got;
	int go[2], ready[2], report[2], rv;
	pid_t pid;

	bk_h_init(&h, "fakeipc", NULL);
	snprintf(dir, sizeof(dir), "/tmp/bk-fakeipc-%d", (int)getpid());
	rm_rf(dir);
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe2(report, O_NONBLOCK), 0);
	pid = fake_ipc_server(dir, go[0], ready[1], report[1]);
	close(go[0]);
	close(ready[1]);
	close(report[1]);
	bk_h_start(&h);
	cr_assert_eq(write(go[1], "g", 1), 1);
	if (read(ready[0], &got, 1) != 1) {
		int st = 0;
		waitpid(pid, &st, 0);
		cr_assert_fail("the fake server did not start (exit %d, signal %d)",
		               WIFEXITED(st) ? WEXITSTATUS(st) : -1,
		               WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	}
	snprintf(aside, sizeof(aside), "%s.aside", h.cfg.cmd_url + 6);
	cr_assert_eq(rename(h.cfg.cmd_url + 6, aside), 0);
	snprintf(fake, sizeof(fake), "%s/fake.cmd", dir);
	cr_assert_eq(rename(fake, h.cfg.cmd_url + 6), 0, "%s", strerror(errno));
	cr_assert_eq(lchown(h.cfg.cmd_url + 6, 0, 0), 0);

	rv = bk_h_cli_all(&h, out, sizeof(out), "status", NULL);
	cr_assert_eq(rv, 3, "%s", out);
	cr_assert(strstr(out, "refusing to send") && strstr(out, "runs as uid 65534"),
	          "%s", out);
	cr_assert_eq(read(report[0], &got, 1), -1, "the fake server got a request");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	bk_h_fini(&h);
	rm_rf(dir);
}

Test(trust, cli_refuses_an_ipc_socket_owned_by_another_user)
{
	struct bk_h h;
	int rv;

	bk_h_init(&h, "ipcown", NULL);
	bk_h_start(&h);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", NULL), 0, "%s", out);
	/* the run dir is ours: a foreign file in it is someone else's server */
	cr_assert_eq(chown(h.cfg.cmd_url + 6, NOBODY, NOBODY), 0);
	rv = bk_h_cli_all(&h, out, sizeof(out), "status", NULL);
	cr_assert_eq(rv, 3, "%s", out);
	cr_assert(strstr(out, "refusing to send") &&
	              strstr(out, "is owned by uid 65534, not by breakerd's uid 0"),
	          "%s", out);
	bk_h_fini(&h);
}

Test(trust, cli_refuses_a_run_dir_others_can_write)
{
	struct bk_h h;
	int rv;

	bk_h_init(&h, "ipcdir", NULL);
	bk_h_start(&h);
	cr_assert_eq(chmod(h.cfg.run_dir, 0777), 0);
	rv = bk_h_cli_all(&h, out, sizeof(out), "status", NULL);
	cr_assert_eq(rv, 3, "%s", out);
	cr_assert(strstr(out, "refusing to send") && strstr(out, h.cfg.run_dir) &&
	              strstr(out, "mode 0777"),
	          "%s", out);
	bk_h_fini(&h);
}

Test(trust, cli_with_daemon_user_refuses_another_uid)
{
	struct bk_h h;
	char cfg2[256];
	int rv;

	bk_h_init(&h, "cliduser", NULL);
	bk_h_start(&h);
	/* the operator's config says breakerd runs as 65534; this one is root */
	snprintf(cfg2, sizeof(cfg2), "%s/cli.ini", h.dir);
	bk_h_write_config(&h, cfg2, "daemon_user = 65534\n");
	snprintf(h.config, sizeof(h.config), "%s", cfg2);
	rv = bk_h_cli_all(&h, out, sizeof(out), "trip", "manual_halt", "--reason", "x",
	                  NULL);
	cr_assert_eq(rv, 3, "%s", out);
	cr_assert(strstr(out, "runs as uid 0") && strstr(out, "daemon_user"), "%s", out);
	bk_h_fini(&h);
}

Test(trust, watch_refuses_an_event_socket_owned_by_another_user)
{
	struct bk_h h;
	int rv;

	bk_h_init(&h, "watchown", NULL);
	bk_h_start(&h);
	cr_assert_eq(chown(h.cfg.pub_url + 6, NOBODY, NOBODY), 0);
	rv = bk_h_cli_all(&h, out, sizeof(out), "watch", "--count", "1", "--timeout-ms",
	                  "500", NULL);
	cr_assert_eq(rv, 3, "%s", out);
	cr_assert(strstr(out, "refusing to listen") && strstr(out, "uid 65534"), "%s",
	          out);
	bk_h_fini(&h);
}

/* ---- the engine client -------------------------------------- */

/*
 * A forged segment as the issue planted it, with no daemon running: valid
 * layout, global ACTIVE, a fresh heartbeat. Made by root here, then given to
 * owner/mode.
 */
static void forge_segment(const char *inst, uid_t owner, mode_t mode, uint64_t hb)
{
	char name[128];
	struct bk_shm *s;
	int fd;

	bk_shm_name(name, sizeof(name), inst);
	shm_unlink(name);
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0, "%s", strerror(errno));
	cr_assert_eq(ftruncate(fd, BK_SHM_SIZE), 0);
	s = mmap(NULL, BK_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(s, MAP_FAILED);
	s->hdr.magic = BK_SHM_MAGIC;
	s->hdr.header_size = (uint32_t)offsetof(struct bk_shm, strategies);
	s->hdr.segment_size = BK_SHM_SIZE;
	s->hdr.strategy_capacity = BK_MAX_STRATEGIES;
	s->hdr.heartbeat_bound_ns = 50000000;
	atomic_store(&s->global.state, BK_STATE_PACK(BK_ACTIVE, 0, 0));
	atomic_store(&s->heartbeat_ns, hb);
	atomic_store(&s->hdr.layout_version, BK_LAYOUT_VERSION);
	munmap(s, BK_SHM_SIZE);
	cr_assert_eq(fchown(fd, owner, owner), 0);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void unforge(const char *inst)
{
	char name[128];

	bk_shm_name(name, sizeof(name), inst);
	shm_unlink(name);
}

Test(trust, engine_refuses_a_segment_another_user_made)
{
	char inst[64];
	struct bk_client c;

	snprintf(inst, sizeof(inst), "forged-own-%d", (int)getpid());
	forge_segment(inst, NOBODY, 0644, bk_now_mono_ns());
	cr_assert_eq(bk_client_attach(&c, inst), -EPERM,
	             "a segment owned by uid 65534 must not be believed");
	cr_assert_null(c.shm);
	/* ... unless the engine was told breakerd runs as that user */
	cr_assert_eq(bk_client_attach_as(&c, inst, NOBODY), 0);
	cr_assert_eq(bk_check_live(&c, BK_GLOBAL_ONLY, bk_now_mono_ns(), 0), BK_ACTIVE);
	bk_client_detach(&c);
	/* and the environment says the same for engines that cannot be changed */
	setenv(BK_DAEMON_UID_ENV, "65534", 1);
	cr_assert_eq(bk_client_attach(&c, inst), 0);
	bk_client_detach(&c);
	setenv(BK_DAEMON_UID_ENV, "0", 1);
	cr_assert_eq(bk_client_attach(&c, inst), -EPERM);
	setenv(BK_DAEMON_UID_ENV, "no-such-user-here", 1);
	cr_assert_eq(bk_client_attach(&c, inst), -EINVAL, "a bad setting fails closed");
	unsetenv(BK_DAEMON_UID_ENV);
	unforge(inst);
}

Test(trust, engine_refuses_a_segment_others_can_write)
{
	char inst[64];
	struct bk_client c;

	snprintf(inst, sizeof(inst), "forged-mode-%d", (int)getpid());
	forge_segment(inst, 0, 0666, bk_now_mono_ns());
	cr_assert_eq(bk_client_attach(&c, inst), -EPERM);
	forge_segment(inst, 0, 0664, bk_now_mono_ns());
	cr_assert_eq(bk_client_attach(&c, inst), -EPERM, "group-writable too");
	forge_segment(inst, 0, 0644, bk_now_mono_ns());
	cr_assert_eq(bk_client_attach(&c, inst), 0, "root's, 0644: the daemon's shape");
	bk_client_detach(&c);
	setenv(BK_DAEMON_UID_ENV, "no-such-user-here", 1);
	cr_assert_eq(bk_client_attach(&c, inst), -EINVAL, "a bad setting fails closed");
	unsetenv(BK_DAEMON_UID_ENV);
	unforge(inst);
}

Test(trust, heartbeat_from_the_future_is_not_live)
{
	char inst[64];
	struct bk_client c;
	uint64_t now = bk_now_mono_ns(), bound = 50000000;

	snprintf(inst, sizeof(inst), "future-hb-%d", (int)getpid());
	/* a daemon in another time namespace stamps ten seconds ahead */
	forge_segment(inst, 0, 0644, now + 10ull * 1000000000);
	cr_assert_eq(bk_client_attach(&c, inst), 0);
	cr_assert_eq(bk_check_live(&c, BK_GLOBAL_ONLY, now, 0), BK_HALTED,
	             "10 s ahead of our clock is not a heartbeat");
	cr_assert_eq(bk_check_live(&c, BK_GLOBAL_ONLY, now, bound), BK_HALTED);
	/* just ahead (stamped after we read our clock) is still live */
	cr_assert_eq(
	    bk_check_live(&c, BK_GLOBAL_ONLY, now + 10ull * 1000000000 - 1000, 0),
	    BK_ACTIVE);
	cr_assert_eq(
	    bk_check_live(&c, BK_GLOBAL_ONLY, now + 10ull * 1000000000 - bound + 1000, 0),
	    BK_ACTIVE);
	cr_assert_eq(
	    bk_check_live(&c, BK_GLOBAL_ONLY, now + 10ull * 1000000000 - bound - 1000, 0),
	    BK_HALTED, "more than the bound ahead");
	bk_client_detach(&c);
	unforge(inst);
}

/*
 * breakerd run as a service user (65534 here): the CLI believes it when the
 * config names that user, and refuses it, saying what to set, when not.
 */
Test(trust, cli_trusts_a_service_user_daemon_only_when_configured)
{
	struct bk_h h;
	char top[128], cfg_ok[192], cfg_no[192], log[192];
	const char *bin = getenv("BREAKERD") ? getenv("BREAKERD") : "breakerd";
	FILE *f;
	pid_t pid;
	int rv = -1;

	bk_h_init(&h, "svcuser", NULL);
	snprintf(top, sizeof(top), "/tmp/bk-svc-%d", (int)getpid());
	rm_rf(top);
	mkdir_as_nobody(top, 0755);
	snprintf(cfg_ok, sizeof(cfg_ok), "%s/ok.ini", top);
	snprintf(cfg_no, sizeof(cfg_no), "%s/no.ini", top);
	snprintf(log, sizeof(log), "%s/breakerd.log", top);
	for (int i = 0; i < 2; i++) {
		f = fopen(i ? cfg_no : cfg_ok, "w");
		cr_assert_not_null(f);
		fprintf(
		    f,
		    "[breaker]\ninstance = %s\nrun_dir = %s/run\nstate_dir = %s/state\n"
		    "%s[metrics]\nlisten =\n",
		    h.instance, top, top, i ? "" : "daemon_user = 65534\n");
		fclose(f);
		chmod(i ? cfg_no : cfg_ok, 0644);
	}
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char *argv[] = {(char *)bin, "--config", cfg_ok, "--log-file", log, NULL};
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		become_nobody();
		execv(bin, argv);
		_exit(127);
	}
	h.pid = pid; /* bk_h_fini stops it */
	snprintf(h.config, sizeof(h.config), "%s", cfg_ok);
	for (int i = 0; i < 500 && rv != 0; i++) {
		rv = bk_h_cli(&h, NULL, 0, "status", NULL);
		if (rv)
			usleep(10000);
	}
	bk_h_slurp(log, out, sizeof(out));
	cr_assert_eq(rv, 0, "breakerd as 65534 did not answer; its log: %s", out);
	rv = bk_h_cli_all(&h, out, sizeof(out), "trip", "manual_halt", "--reason",
	                  "service user", NULL);
	cr_assert_eq(rv, 0, "%s", out);
	cr_assert(strstr(out, "HALTED global"), "%s", out);

	snprintf(h.config, sizeof(h.config), "%s", cfg_no);
	rv = bk_h_cli_all(&h, out, sizeof(out), "status", NULL);
	cr_assert_eq(rv, 3, "%s", out);
	cr_assert(strstr(out, "owned by uid 65534, which is neither root") &&
	              strstr(out, "daemon_user"),
	          "%s", out);
	bk_h_fini(&h);
	rm_rf(top);
}

Test(trust, daemon_user_takes_one_known_user)
{
	static const char *bad[] = {"no-such-user-zz", "root, nobody", ""};
	char path[64], err[256];
	struct bk_config cfg;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/bk-duser-%d.ini", (int)getpid());
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = fopen(path, "w");
		cr_assert_not_null(f);
		fprintf(f, "[breaker]\ndaemon_user = %s\n", bad[i]);
		fclose(f);
		cr_assert_eq(bk_config_defaults(&cfg, NULL), 0);
		cr_assert_eq(bk_config_load(&cfg, path, err, sizeof(err)), -EINVAL, "%s",
		             bad[i]);
		cr_assert(strstr(err, "line 2") && strstr(err, "daemon_user"), "%s", err);
		cr_assert(!cfg.daemon_uid_set);
	}
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("[breaker]\ndaemon_user = nobody\n", f);
	fclose(f);
	cr_assert_eq(bk_config_load(&cfg, path, err, sizeof(err)), 0, "%s", err);
	cr_assert(cfg.daemon_uid_set);
	cr_assert_eq(cfg.daemon_uid, NOBODY);
	unlink(path);
}
