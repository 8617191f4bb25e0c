#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_shm.h"

extern char **environ;

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

void bk_h_write_config(const struct bk_h *h, const char *path, const char *extra_ini)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fprintf(f, "[breaker]\ninstance = %s\nrun_dir = %s/run\nstate_dir = %s/state\n",
	        h->instance, h->dir, h->dir);
	if (extra_ini)
		fputs(extra_ini, f);
	fclose(f);
}

void bk_h_init(struct bk_h *h, const char *tag, const char *extra_ini)
{
	char err[256];

	memset(h, 0, sizeof(*h));
	/* set but empty: a breakerd or CLI run without --config reads the
	 * embedded defaults, never a developer's $BREAKER_CONFIG or a stray
	 * /etc/breaker/breaker.ini (the harness passes --config h->config) */
	setenv("BREAKER_CONFIG", "", 1);
	snprintf(h->dir, sizeof(h->dir), "/tmp/bk-%s-XXXXXX", tag);
	cr_assert_not_null(mkdtemp(h->dir), "mkdtemp: %s", strerror(errno));
	snprintf(h->instance, sizeof(h->instance), "t%d-%s", (int)getpid(), tag);
	snprintf(h->config, sizeof(h->config), "%s/breaker.ini", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/breakerd.log", h->dir);
	bk_h_write_config(h, h->config, extra_ini);
	bk_shm_unlink(h->instance); /* a stale segment from an earlier run */
	cr_assert_eq(bk_config_defaults(&h->cfg, NULL), 0);
	cr_assert_eq(bk_config_load(&h->cfg, h->config, err, sizeof(err)), 0, "%s", err);
}

void bk_h_start(struct bk_h *h)
{
	const char *bin = env_or("BREAKERD", "breakerd");
	char *argv[] = {(char *)bin, "--config", h->config, "--log-file", h->log, NULL};
	int st;

	h->pid = fork();
	cr_assert_geq(h->pid, 0, "fork");
	if (h->pid == 0) {
		/* A failed test must not leave a daemon behind holding ctest's pipe. */
		int null = open("/dev/null", O_RDWR);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, 0);
		dup2(null, 1);
		execv(bin, argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
			h->pid = 0;
			cr_assert_fail("breakerd exited at start (status %d); see %s", st,
			               h->log);
		}
		if (bk_rpc_ping(h->cfg.cmd_url, 500))
			return;
		usleep(10000);
	}
	cr_assert_fail("breakerd did not answer within 5 s; see %s", h->log);
}

int bk_h_stop(struct bk_h *h)
{
	int st = 0;

	if (h->pid <= 0)
		return -1;
	kill(h->pid, SIGTERM);
	waitpid(h->pid, &st, 0);
	h->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void bk_h_kill9(struct bk_h *h)
{
	if (h->pid <= 0)
		return;
	kill(h->pid, SIGKILL);
	waitpid(h->pid, NULL, 0);
	h->pid = 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void bk_h_fini(struct bk_h *h)
{
	char name[128];

	bk_h_stop(h);
	if (bk_shm_name(name, sizeof(name), h->instance) == 0) {
		shm_unlink(name);
		strcat(name, BK_TEL_SUFFIX);
		shm_unlink(name);
	}
	if (!getenv("BK_KEEP_TMP"))
		nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int run_cli(struct bk_h *h, char *out, size_t outlen, bool merge, va_list ap)
{
	const char *bin = env_or("BREAKER_CLI", "breaker");
	char *argv[64] = {(char *)bin, "--config", h->config};
	posix_spawn_file_actions_t fa;
	char path[256];
	int argc = 3, st;
	pid_t pid;

	while (argc < 63 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	argv[argc] = NULL;
	snprintf(path, sizeof(path), "%s/cli.out", h->dir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, path, O_WRONLY | O_CREAT | O_TRUNC,
	                                 0600);
	if (merge)
		posix_spawn_file_actions_adddup2(&fa, 1, 2);
	cr_assert_eq(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0, "spawn %s",
	             bin);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	if (out)
		bk_h_slurp(path, out, outlen);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int bk_h_cli(struct bk_h *h, char *out, size_t outlen, ...)
{
	va_list ap;
	int rv;

	va_start(ap, outlen);
	rv = run_cli(h, out, outlen, false, ap);
	va_end(ap);
	return rv;
}

int bk_h_cli_all(struct bk_h *h, char *out, size_t outlen, ...)
{
	va_list ap;
	int rv;

	va_start(ap, outlen);
	rv = run_cli(h, out, outlen, true, ap);
	va_end(ap);
	return rv;
}

char *bk_h_cli_bin(void)
{
	return (char *)env_or("BREAKER_CLI", "breaker");
}

void bk_h_become(int uid, int gid, int fail_code)
{
	if (setgroups(0, NULL) || setgid((gid_t)gid) || setuid((uid_t)uid))
		_exit(fail_code);
}

int bk_h_run_as(struct bk_h *h, int uid, int gid, const char *request_id,
                char *const argv[], char *out, size_t outlen)
{
	return bk_h_run_in(h->dir, uid, gid, request_id, argv, out, outlen);
}

int bk_h_run_in(const char *dir, int uid, int gid, const char *request_id,
                char *const argv[], char *out, size_t outlen)
{
	char path[256];
	int st;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/cli.out", dir);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		if (request_id)
			setenv("BREAKER_REQUEST_ID", request_id, 1);
		else
			unsetenv("BREAKER_REQUEST_ID");
		if (uid >= 0)
			bk_h_become(uid, gid, 125);
		execv(argv[0], argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	if (out)
		bk_h_slurp(path, out, outlen);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int bk_h_cli_as(struct bk_h *h, int uid, int gid, const char *request_id,
                char *const args[], char *out, size_t outlen)
{
	char *argv[40] = {bk_h_cli_bin(), "--config", h->config};
	int n = 3;

	while (*args && n < 39)
		argv[n++] = *args++;
	argv[n] = NULL;
	return bk_h_run_as(h, uid, gid, request_id, argv, out, outlen);
}

/*
 * A free loopback TCP port for a server a test starts. Below the ephemeral
 * range (32768-60999 here), so that no client connection made meanwhile
 * (curl to etcd, nng dialers) can take it before the server binds it: with
 * bind(port 0) the kernel hands out ephemeral ports, and parallel tests saw
 * etcd members fail with "address already in use". Claimed in a directory
 * every test process shares (O_EXCL; a claim older than 15 minutes is
 * stale), so that concurrent tests never pick the same port before either
 * binds it (a breakerd's /metrics port once answered as an etcd member).
 * Checked by a bind too: anything else may hold it.
 */
#define BK_PORT_LO    20000
#define BK_PORT_N     12000
#define BK_PORT_DIR   "/tmp/bk-test-ports"
#define BK_PORT_STALE (15 * 60)

static bool claim_port(int port)
{
	char path[64];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), BK_PORT_DIR "/%d", port);
	if ((fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0666)) >= 0) {
		close(fd);
		return true;
	}
	if (errno == EEXIST && stat(path, &st) == 0 &&
	    st.st_mtime < time(NULL) - BK_PORT_STALE && unlink(path) == 0)
		return claim_port(port);
	return false;
}

int bk_h_free_port(void)
{
	static unsigned seed;
	struct sockaddr_in sa = {.sin_family = AF_INET};

	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)bk_h_mono_ms() << 12;
	mkdir(BK_PORT_DIR, 01777);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	for (int tries = 0; tries < 4 * BK_PORT_N; tries++) {
		int port = BK_PORT_LO + rand_r(&seed) % BK_PORT_N, fd, ok;

		if (!claim_port(port))
			continue;
		sa.sin_port = htons((uint16_t)port);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
		ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok)
			return port;
	}
	cr_assert_fail("no free loopback port in %d-%d", BK_PORT_LO,
	               BK_PORT_LO + BK_PORT_N - 1);
	return -1;
}

void bk_pki_make(struct bk_pki *k, const char *tag, const char *certs)
{
	char cmd[2048];

	snprintf(k->dir, sizeof(k->dir), "/tmp/bk-%s-XXXXXX", tag);
	cr_assert_not_null(mkdtemp(k->dir));
	snprintf(k->url, sizeof(k->url), "tls+tcp://127.0.0.1:%d", bk_h_free_port());
	snprintf(
	    cmd, sizeof(cmd),
	    "set -e; cd %s; exec 2>openssl.err\n"
	    "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
	    "-out $1.key; }\n"
	    "ca() { key $1; openssl req -x509 -new -key $1.key -out $1.pem -days 2 "
	    "-subj /CN=$1; }\n"
	    "crt() { key $1; openssl req -new -key $1.key -out $1.csr -subj \"/CN=$2\"; "
	    "echo subjectAltName=DNS:localhost,DNS:127.0.0.1 > $1.ext; "
	    "openssl x509 -req -in $1.csr -CA $3.pem -CAkey $3.key -CAcreateserial "
	    "-days 2 -extfile $1.ext -out $1.pem; }\n%s",
	    k->dir, certs);
	cr_assert_eq(system(cmd), 0, "openssl failed; see %s/openssl.err", k->dir);
}

void bk_pki_remove(struct bk_pki *k)
{
	nftw(k->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

void bk_h_attach(struct bk_h *h, struct bk_client *c)
{
	int rv = -EAGAIN;

	for (int i = 0; i < 200 && rv == -EAGAIN; i++) {
		rv = bk_client_attach(c, h->instance);
		if (rv == -EAGAIN || rv == -ENOENT)
			usleep(10000);
	}
	cr_assert_eq(rv, 0, "attach %s: %s", h->instance, strerror(-rv));
}

int bk_h_mode_of(struct bk_h *h, const char *strategy)
{
	struct bk_client c;
	int m;

	bk_h_attach(h, &c);
	m = bk_check(&c, strategy ? bk_client_resolve(&c, strategy) : -1);
	bk_client_detach(&c);
	return m;
}

void bk_h_open_dirs(struct bk_h *h)
{
	char run[256];

	snprintf(run, sizeof(run), "%s/run", h->dir);
	cr_assert_eq(chmod(h->dir, 0755), 0);
	cr_assert_eq(chmod(run, 0755), 0);
}

long bk_h_slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, off = 0;

	buf[0] = '\0';
	if (fd < 0)
		return -errno;
	while ((size_t)off < len - 1 &&
	       (n = read(fd, buf + off, len - 1 - (size_t)off)) > 0)
		off += n;
	close(fd);
	buf[off] = '\0';
	return off;
}

Breaker__Reply *bk_h_raw_call(struct bk_h *h, const void *buf, size_t len)
{
	struct bk_rpc r;
	nng_msg *msg;
	Breaker__Reply *rep;

	cr_assert_eq(bk_rpc_open(&r, h->cfg.cmd_url, 3000), 0);
	cr_assert_eq(nng_msg_alloc(&msg, 0), 0);
	nng_msg_append(msg, buf, len);
	cr_assert_eq(nng_sendmsg(r.sock, msg, 0), 0);
	cr_assert_eq(nng_recvmsg(r.sock, &msg, 0), 0, "the daemon must answer bad input");
	rep = breaker__reply__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	nng_msg_free(msg);
	bk_rpc_close(&r);
	cr_assert_not_null(rep);
	return rep;
}

int bk_h_http_get(int port, const char *path, char *buf, size_t len, const char **body)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	struct pollfd pfd;
	char req[256];
	size_t off = 0;
	ssize_t n;
	int fd, status = -1;

	buf[0] = '\0';
	*body = buf;
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -errno;
	}
	n = snprintf(req, sizeof(req),
	             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
	             path);
	cr_assert_eq(write(fd, req, (size_t)n), n);
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	while (off < len - 1 && poll(&pfd, 1, 5000) == 1 &&
	       (n = read(fd, buf + off, len - 1 - off)) > 0)
		off += (size_t)n;
	close(fd);
	buf[off] = '\0';
	sscanf(buf, "HTTP/1.%*d %d", &status);
	*body = strstr(buf, "\r\n\r\n");
	*body = *body ? *body + 4 : buf + off;
	return status;
}

int bk_h_count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

void bk_rig_up(struct bk_rig *r, const char *tag, const char *ini)
{
	int rv = -EAGAIN;

	bk_h_init(&r->h, tag, ini);
	bk_h_start(&r->h);
	bk_h_attach(&r->h, &r->c);
	for (int i = 0; i < 200 && rv; i++)
		if ((rv = bk_tel_attach(&r->t, r->h.instance)) != 0)
			usleep(10000);
	cr_assert_eq(rv, 0, "telemetry attach: %s", strerror(-rv));
	r->alpha = bk_client_resolve(&r->c, "alpha");
	r->beta = bk_client_resolve(&r->c, "beta");
	cr_assert_geq(r->alpha, 0);
	cr_assert_geq(r->beta, 0);
}

void bk_rig_down(struct bk_rig *r)
{
	bk_tel_detach(&r->t);
	bk_client_detach(&r->c);
	bk_tel_unlink(r->h.instance);
	bk_h_fini(&r->h);
}

uint64_t bk_h_mono_ms(void)
{
	return bk_now_mono_ns() / 1000000ull;
}

bool bk_rig_mode_within(struct bk_rig *r, int slot, enum bk_mode want, unsigned ms)
{
	uint64_t end = bk_h_mono_ms() + ms;

	do {
		if (bk_check(&r->c, slot) == want)
			return true;
		usleep(200);
	} while (bk_h_mono_ms() < end);
	return bk_check(&r->c, slot) == want;
}

int bk_rig_ticks_until(struct bk_rig *r, int slot, enum bk_mode want, int max_ticks,
                       unsigned tick_us)
{
	for (int i = 0; i < max_ticks * 4; i++) {
		if (bk_check(&r->c, slot) == want)
			return i / 4;
		usleep(tick_us / 4);
	}
	return -1;
}

void bk_rig_ticked(struct bk_rig *r)
{
	uint64_t end = bk_h_mono_ms() + 5000, seen, n = 0;

	seen = BK_LOAD_ACQ(&r->c.shm->heartbeat_ns);
	while (n < 2 && bk_h_mono_ms() < end) {
		uint64_t hb = BK_LOAD_ACQ(&r->c.shm->heartbeat_ns);
		if (hb != seen) {
			seen = hb;
			n++;
		}
		usleep(100);
	}
	cr_assert_eq(n, 2, "breakerd ticks");
}

Breaker__Reply *bk_h_reconcile(struct bk_h *h, const char *strategy, double position,
                               long fills, uint64_t wall)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Reconcile rc = BREAKER__RECONCILE__INIT;
	Breaker__Reconcile__Position p = BREAKER__RECONCILE__POSITION__INIT, *pp = &p;
	Breaker__Reply *rep;
	struct bk_rpc rpc;

	p.strategy = (char *)strategy;
	p.has_position = 1;
	p.position = position;
	p.has_as_of_fills = fills >= 0;
	p.as_of_fills = fills >= 0 ? (uint64_t)fills : 0;
	p.has_as_of_wall_ns = wall != 0;
	p.as_of_wall_ns = wall;
	rc.n_positions = 1;
	rc.positions = &pp;
	req.cmd_case = BREAKER__REQUEST__CMD_RECONCILE;
	req.reconcile = &rc;
	cr_assert_eq(bk_rpc_open(&rpc, h->cfg.cmd_url, 3000), 0);
	cr_assert_eq(bk_rpc_call(&rpc, &req, &rep), 0);
	bk_rpc_close(&rpc);
	return rep;
}
