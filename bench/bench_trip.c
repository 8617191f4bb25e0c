/*
 * bench_trip - trip -> visible: how long from "send the trip" until an engine
 * on another core sees HALTED, against the transports underneath and Redis.
 *
 * Roles (this binary runs again as each helper, "--helper MODE ...", exec'd
 * after fork, so nng is never used across a fork):
 *   sender    this process, pinned to CPU 0 with the server under test: it
 *             stamps CLOCK_MONOTONIC, sends, waits for the ack, then undoes;
 *   observer  a helper on CPU 1: an engine spinning on the shm flag, or asleep
 *             in bk_wait_change (futex), or a Redis client polling GET; it
 *             stamps the moment it sees the change on the shared board;
 *   servers   breakerd, a bare nng REP echo (cooked, and raw + RECVFD + poll
 *             like breakerd), a bare Unix socket echo (stream, datagram,
 *             seqpacket), redis-server: all on CPU 0. Echo servers stamp the
 *             arrival.
 * breakerd is driven twice: over nng IPC, and over its local seqpacket socket
 * (the fast path, bk_local.h), whose floor is the bare seqpacket echo.
 * Before each send the sender sleeps 100-300 us (random), so the observer is
 * asleep in the futex case and sends do not line up with the daemon's tick.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "bench.h"

#define SECTION   "trip"
#define MSG_BYTES 32   /* about a packed Trip request */
#define MAX_ITERS 4096 /* interleaved run: its echo stamps go at t[MAX_ITERS + i] */

struct ctx {
	bool quick;
	char dir[160];
	uint64_t rng;
	size_t warm, n; /* per experiment: warm-up + measured iterations */
	uint64_t *send; /* sender's stamps */
	uint64_t *ack;
	uint64_t *send2; /* the interleaved experiment's second sender */
	uint64_t *ack2;
	double *v; /* scratch for statistics */
	struct bench_board *b;
	int board_fd;
	char board_arg[16];
	pid_t server;  /* the process under test, for its context switches */
	double csw[2]; /* sender's and server's context switches at the start */
};

/* One experiment's results, in microseconds. */
struct lat {
	struct bench_stats seen; /* send -> observer (or echo server) saw it */
	struct bench_stats rtt;  /* send -> ack / reply */
	double csw_sender; /* context switches per iteration, pause sleep excluded */
	double csw_server;
	bool ok;
};

static unsigned pause_us(struct ctx *x)
{
	x->rng ^= x->rng << 13;
	x->rng ^= x->rng >> 7;
	x->rng ^= x->rng << 17;
	return 100 + (unsigned)(x->rng % 200);
}

static void board_reset(struct ctx *x)
{
	atomic_store(&x->b->armed, 0);
	atomic_store(&x->b->seen, 0);
	atomic_store(&x->b->ready, 0);
	atomic_store(&x->b->go, 0);
	atomic_store(&x->b->quit, 0);
	memset(x->b->t, 0, x->b->slots * sizeof(uint64_t));
}

/* Differences to the sender's stamps, warm-up dropped; us. */
static void diff_stats(struct ctx *x, const uint64_t *to, const uint64_t *from,
                       struct bench_stats *s)
{
	size_t m = 0;

	for (size_t i = x->warm; i < x->warm + x->n; i++)
		if (to[i] >= from[i])
			x->v[m++] = (double)(to[i] - from[i]) / 1000.0;
	bench_stats(x->v, m, s);
}

static void csw_start(struct ctx *x)
{
	x->csw[0] = bench_ctxsw(getpid());
	x->csw[1] = bench_ctxsw(x->server);
}

static void finish(struct ctx *x, struct lat *l)
{
	double iters = (double)(x->warm + x->n);

	l->csw_sender = (bench_ctxsw(getpid()) - x->csw[0]) / iters - 1;
	l->csw_server = (bench_ctxsw(x->server) - x->csw[1]) / iters;
	diff_stats(x, x->b->t, x->send, &l->seen);
	diff_stats(x, x->ack, x->send, &l->rtt);
	l->ok = true;
}

/* ---- helpers: observers -------------------------------------------------- */

static bool halted(const struct bk_client *c)
{
	return bk_check(c, -1) == BK_HALTED;
}

/* Spin (or sleep on the futex) until the global flag is (not) HALTED. */
static int await_flag(const struct bk_client *c, struct bench_board *b, bool want,
                      bool futex)
{
	const struct timespec tmo = {.tv_nsec = 100000000};
	uint32_t seq;

	for (;;) {
		seq = bk_change_seq(c);
		if (halted(c) == want)
			return 0;
		if (atomic_load_explicit(&b->quit, memory_order_relaxed))
			return -EINTR;
		if (futex)
			bk_wait_change(c, seq, &tmo);
	}
}

static int helper_observer(char **argv, bool futex)
{
	struct bench_board *b = bench_board_map(atoi(argv[1]));
	size_t n = strtoul(argv[2], NULL, 10);
	struct bk_client c;
	int rv = -EAGAIN;

	for (int i = 0; i < 200 && rv < 0; i++)
		if ((rv = bk_client_attach(&c, argv[0])) < 0)
			bench_sleep_us(10000);
	if (!b || rv < 0)
		return 1;
	for (size_t i = 0; i < n; i++) {
		if (await_flag(&c, b, false, futex) < 0)
			return 1;
		bench_post_u32(&b->armed, (uint32_t)i + 1);
		if (await_flag(&c, b, true, futex) < 0)
			return 1;
		b->t[i] = bench_now();
		bench_post_u32(&b->seen, (uint32_t)i + 1);
	}
	return 0;
}

static int await_value(struct resp *c, const char *get, size_t len, const char *want,
                       struct bench_board *b)
{
	char val[16];

	do {
		if (resp_call(c, get, len, val, sizeof(val)) < 0 || atomic_load(&b->quit))
			return -EIO;
	} while (strcmp(val, want) != 0);
	return 0;
}

static int helper_redis_poll(char **argv)
{
	static const char *const get[] = {"GET", "breaker:global"};
	struct bench_board *b = bench_board_map(atoi(argv[1]));
	size_t n = strtoul(argv[2], NULL, 10), len;
	struct resp c;
	char cmd[64];

	len = resp_encode(cmd, sizeof(cmd), 2, get);
	if (!b || resp_connect(&c, atoi(argv[0])) < 0)
		return 1;
	for (size_t i = 0; i < n; i++) {
		if (await_value(&c, cmd, len, "0", b) < 0)
			return 1;
		bench_post_u32(&b->armed, (uint32_t)i + 1);
		if (await_value(&c, cmd, len, "1", b) < 0)
			return 1;
		b->t[i] = bench_now();
		bench_post_u32(&b->seen, (uint32_t)i + 1);
	}
	return 0;
}

/* ---- helpers: echo servers ----------------------------------------------- */

static void stamp(struct bench_board *b, const void *body, size_t len)
{
	uint64_t i;

	if (len < sizeof(i))
		return;
	memcpy(&i, body, sizeof(i));
	if (i < b->slots)
		b->t[i] = bench_now();
}

/* Cooked REP: blocking receive on nng's own threads, the plainest server. */
static int echo_cooked(nng_socket s, struct bench_board *b)
{
	nng_msg *m;
	int rv;

	nng_setopt_ms(s, NNG_OPT_RECVTIMEO, 100);
	while (!atomic_load(&b->quit)) {
		if ((rv = nng_recvmsg(s, &m, 0)) == NNG_ETIMEDOUT)
			continue;
		if (rv)
			return -EIO;
		stamp(b, nng_msg_body(m), nng_msg_len(m));
		if (nng_sendmsg(s, m, 0))
			nng_msg_free(m);
	}
	return 0;
}

/* Raw REP + NNG_OPT_RECVFD + poll(): breakerd's receive path without io_uring. */
static int echo_raw(nng_socket s, struct bench_board *b)
{
	struct pollfd p = {.events = POLLIN};
	nng_msg *m;

	if (nng_getopt_int(s, NNG_OPT_RECVFD, &p.fd))
		return -EIO;
	while (!atomic_load(&b->quit)) {
		if (poll(&p, 1, 100) <= 0)
			continue;
		while (nng_recvmsg(s, &m, NNG_FLAG_NONBLOCK) == 0) {
			stamp(b, nng_msg_body(m), nng_msg_len(m));
			if (nng_sendmsg(s, m, NNG_FLAG_NONBLOCK))
				nng_msg_free(m);
		}
	}
	return 0;
}

static int helper_nng_echo(char **argv)
{
	struct bench_board *b = bench_board_map(atoi(argv[1]));
	bool raw = strcmp(argv[2], "raw") == 0;
	nng_socket s;
	int rv;

	if (!b || (raw ? nng_rep0_open_raw(&s) : nng_rep0_open(&s)) ||
	    nng_listen(s, argv[0], NULL, 0))
		return 1;
	bench_post_u32(&b->ready, 1);
	rv = raw ? echo_raw(s, b) : echo_cooked(s, b);
	nng_close(s);
	return rv < 0;
}

static int unix_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

static int echo_stream(int ls, struct bench_board *b)
{
	char buf[MSG_BYTES];
	int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	while ((n = recv(fd, buf, sizeof(buf), MSG_WAITALL)) == (ssize_t)sizeof(buf)) {
		stamp(b, buf, sizeof(buf));
		if (send(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
			break;
	}
	close(fd);
	return 0;
}

static int echo_dgram(int fd, struct bench_board *b)
{
	const struct timeval tv = {.tv_usec = 100000};
	struct sockaddr_un from;
	socklen_t fl;
	char buf[MSG_BYTES];
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (!atomic_load(&b->quit)) {
		fl = sizeof(from);
		n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n <= 0)
			continue;
		stamp(b, buf, (size_t)n);
		sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
	}
	return 0;
}

static int sock_type(const char *name)
{
	return strcmp(name, "dgram") == 0       ? SOCK_DGRAM
	       : strcmp(name, "seqpacket") == 0 ? SOCK_SEQPACKET
	                                        : SOCK_STREAM;
}

static int helper_unix_echo(char **argv)
{
	struct bench_board *b = bench_board_map(atoi(argv[1]));
	bool dgram = strcmp(argv[2], "dgram") == 0;
	struct sockaddr_un sa;
	int fd, rv;

	if (!b || unix_addr(&sa, argv[0]) < 0)
		return 1;
	fd = socket(AF_UNIX, sock_type(argv[2]) | SOCK_CLOEXEC, 0);
	unlink(argv[0]);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (!dgram && listen(fd, 4) < 0))
		return 1;
	bench_post_u32(&b->ready, 1);
	rv = dgram ? echo_dgram(fd, b) : echo_stream(fd, b);
	close(fd);
	return rv < 0;
}

static int helper(int argc, char **argv)
{
	const char *mode = argv[2];

	/* Pinned by the parent (bench_spawn_self) before exec. */
	if (argc < 6)
		return 2;
	if (strcmp(mode, "obs-spin") == 0 || strcmp(mode, "obs-futex") == 0)
		return helper_observer(argv + 3, strcmp(mode, "obs-futex") == 0);
	if (strcmp(mode, "redis-poll") == 0)
		return helper_redis_poll(argv + 3);
	if (strcmp(mode, "nng-echo") == 0)
		return helper_nng_echo(argv + 3);
	if (strcmp(mode, "unix-echo") == 0)
		return helper_unix_echo(argv + 3);
	return 2;
}

/* ---- the sender ---------------------------------------------------------- */

typedef int (*step_fn)(void *arg, uint64_t i);

static void stop_helper(struct ctx *x, pid_t pid)
{
	atomic_store(&x->b->quit, 1);
	if (pid > 0)
		bench_stop_child(pid);
}

static pid_t spawn_helper(struct ctx *x, const char *mode, const char *arg,
                          const char *extra, int cpu)
{
	char *args[] = {"--helper",   (char *)mode,  (char *)arg,
	                x->board_arg, (char *)extra, NULL};

	return bench_spawn_self(args, cpu);
}

/*
 * One observed iteration: observer armed, pause, stamp, set, stamp the ack,
 * wait until the observer has seen it (so that a slow observer cannot miss a
 * short window), clear.
 */
static int observed_step(struct ctx *x, size_t i, step_fn set, step_fn clear, void *arg)
{
	if (bench_wait_u32(&x->b->armed, (uint32_t)i + 1, 5000) < 0) {
		fprintf(stderr, "bench_trip: observer not armed at iteration %zu\n", i);
		return -ETIMEDOUT;
	}
	bench_sleep_us(pause_us(x));
	x->send[i] = bench_now();
	if (set(arg, i) < 0)
		return -EIO;
	x->ack[i] = bench_now();
	if (bench_wait_u32(&x->b->seen, (uint32_t)i + 1, 5000) < 0) {
		fprintf(stderr, "bench_trip: observer did not see iteration %zu\n", i);
		return -ETIMEDOUT;
	}
	return clear(arg, i) < 0 ? -EIO : 0;
}

static int drive_observed(struct ctx *x, pid_t obs, step_fn set, step_fn clear, void *arg)
{
	int rv = 0;

	csw_start(x);
	for (size_t i = 0; i < x->warm + x->n && rv == 0; i++)
		rv = observed_step(x, i, set, clear, arg);
	if (rv < 0)
		return rv;
	return bench_wait_child(obs) == 0 ? 0 : -ECHILD;
}

/* One echo iteration: pause, stamp, round trip (the server stamps the arrival of
 * message idx), stamp. */
static int echo_step(struct ctx *x, uint64_t *send, uint64_t *ack, size_t i, uint64_t idx,
                     step_fn rt, void *arg)
{
	bench_sleep_us(pause_us(x));
	send[i] = bench_now();
	if (rt(arg, idx) < 0)
		return -EIO;
	ack[i] = bench_now();
	return 0;
}

static int drive_echo(struct ctx *x, step_fn rt, void *arg)
{
	int rv = 0;

	csw_start(x);
	for (size_t i = 0; i < x->warm + x->n && rv == 0; i++)
		rv = echo_step(x, x->send, x->ack, i, i, rt, arg);
	return rv;
}

/* ---- breakerd ------------------------------------------------------------ */

struct rpc_arg {
	struct bk_rpc r;
	uint64_t id;
};

static int trip_step(void *a, uint64_t i)
{
	struct rpc_arg *ra = a;

	(void)i;
	return bench_trip(&ra->r, NULL, ++ra->id);
}

static int resume_step(void *a, uint64_t i)
{
	struct rpc_arg *ra = a;

	(void)i;
	return bench_resume(&ra->r, NULL, ++ra->id);
}

/* local: trips over breakerd's seqpacket fast path rather than nng IPC */
static int run_daemon(struct ctx *x, bool futex, bool local, unsigned tick_us, int rt,
                      struct lat *l)
{
	struct rpc_arg ra = {.id = 0};
	struct bench_daemon d;
	char n_arg[16], ini[96];
	pid_t obs;
	int rv;

	snprintf(ini, sizeof(ini), "tick_period_us = %u\nrealtime_priority = %d\n",
	         tick_us, rt);
	if ((rv = bench_daemon_start(&d, futex ? "futex" : "spin", ini,
	                             BENCH_CPU_SERVER)) < 0)
		return rv;
	x->server = d.pid;
	if ((rv = bk_rpc_open(&ra.r, local ? d.cfg.local_url : d.cfg.cmd_url, 5000)) <
	    0) {
		bench_daemon_stop(&d);
		return rv;
	}
	snprintf(n_arg, sizeof(n_arg), "%zu", x->warm + x->n);
	board_reset(x);
	obs = spawn_helper(x, futex ? "obs-futex" : "obs-spin", d.cfg.instance, n_arg,
	                   BENCH_CPU_OBSERVER);
	rv = drive_observed(x, obs, trip_step, resume_step, &ra);
	if (rv == 0)
		finish(x, l);
	else
		stop_helper(x, obs);
	bk_rpc_close(&ra.r);
	bench_daemon_stop(&d);
	return rv;
}

/* ---- bare nng ------------------------------------------------------------ */

static int nng_rt(void *a, uint64_t i)
{
	nng_socket *s = a;
	nng_msg *m;

	if (nng_msg_alloc(&m, MSG_BYTES))
		return -ENOMEM;
	memset(nng_msg_body(m), 0, MSG_BYTES);
	memcpy(nng_msg_body(m), &i, sizeof(i));
	if (nng_sendmsg(*s, m, 0)) {
		nng_msg_free(m);
		return -EIO;
	}
	if (nng_recvmsg(*s, &m, 0))
		return -EIO;
	nng_msg_free(m);
	return 0;
}

/* An nng echo server on CPU 0, ready; its pid. The board is not reset. */
static pid_t start_echo(struct ctx *x, bool raw, char *url, size_t len)
{
	pid_t srv;

	snprintf(url, len, "ipc://%s/echo-%s.ipc", x->dir, raw ? "raw" : "cooked");
	srv = spawn_helper(x, "nng-echo", url, raw ? "raw" : "cooked", BENCH_CPU_SERVER);
	if (srv > 0 && bench_wait_u32(&x->b->ready, 1, 5000) < 0) {
		stop_helper(x, srv);
		return -ECHILD;
	}
	return srv;
}

/* A REQ socket with bk_rpc's options: no resend, bounded waits. */
static int dial_echo(nng_socket *s, const char *url)
{
	if (nng_req0_open(s) != 0)
		return -ENOMEM;
	nng_setopt_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_setopt_ms(*s, NNG_OPT_RECVTIMEO, 5000);
	nng_setopt_ms(*s, NNG_OPT_SENDTIMEO, 5000);
	if (nng_dial(*s, url, NULL, 0) == 0)
		return 0;
	nng_close(*s);
	return -ECONNREFUSED;
}

static int run_nng(struct ctx *x, bool raw, struct lat *l)
{
	char url[224];
	nng_socket s;
	pid_t srv;
	int rv;

	board_reset(x);
	if ((x->server = srv = start_echo(x, raw, url, sizeof(url))) < 0)
		return (int)srv;
	if ((rv = dial_echo(&s, url)) == 0) {
		rv = drive_echo(x, nng_rt, &s);
		if (rv == 0)
			finish(x, l);
		nng_close(s);
	}
	stop_helper(x, srv);
	return rv;
}

/* ---- interleaved: breakerd and bare nng in one window -------------------- */

struct paired {
	struct rpc_arg ra;
	nng_socket s;
	pid_t echo, obs;
	char url[224];
};

/*
 * Alternate an observed trip and a bare nng round trip, so that both see the
 * same background load; the echo server stamps at t[MAX_ITERS + i].
 */
static int drive_paired(struct ctx *x, struct paired *p)
{
	int rv = 0;

	for (size_t i = 0; i < x->warm + x->n && rv == 0; i++) {
		rv = observed_step(x, i, trip_step, resume_step, &p->ra);
		if (rv == 0)
			rv = echo_step(x, x->send2, x->ack2, i, MAX_ITERS + i, nng_rt,
			               &p->s);
	}
	if (rv < 0)
		return rv;
	return bench_wait_child(p->obs) == 0 ? 0 : -ECHILD;
}

static void paired_stats(struct ctx *x, struct lat *trip, struct lat *echo)
{
	diff_stats(x, x->b->t, x->send, &trip->seen);
	diff_stats(x, x->ack, x->send, &trip->rtt);
	diff_stats(x, x->b->t + MAX_ITERS, x->send2, &echo->seen);
	diff_stats(x, x->ack2, x->send2, &echo->rtt);
	trip->ok = echo->ok = true;
}

static int run_paired(struct ctx *x, struct lat *trip, struct lat *echo)
{
	struct paired p = {.obs = -1};
	struct bench_daemon d;
	char n_arg[16];
	int rv;

	if ((rv = bench_daemon_start(&d, "paired", NULL, BENCH_CPU_SERVER)) < 0)
		return rv;
	board_reset(x);
	if ((p.echo = start_echo(x, false, p.url, sizeof(p.url))) < 0) {
		rv = (int)p.echo;
		goto out_daemon;
	}
	if ((rv = bk_rpc_open(&p.ra.r, d.cfg.cmd_url, 5000)) < 0)
		goto out_echo;
	if ((rv = dial_echo(&p.s, p.url)) < 0)
		goto out_rpc;
	snprintf(n_arg, sizeof(n_arg), "%zu", x->warm + x->n);
	p.obs = spawn_helper(x, "obs-spin", d.cfg.instance, n_arg, BENCH_CPU_OBSERVER);
	if ((rv = drive_paired(x, &p)) == 0)
		paired_stats(x, trip, echo);
	else
		stop_helper(x, p.obs);
	nng_close(p.s);
out_rpc:
	bk_rpc_close(&p.ra.r);
out_echo:
	stop_helper(x, p.echo);
out_daemon:
	bench_daemon_stop(&d);
	return rv;
}

/* ---- bare Unix sockets
 * ------------------------------------------------------------------ */

static int unix_rt(void *a, uint64_t i)
{
	const int *fd = a;
	char buf[MSG_BYTES] = {0};

	memcpy(buf, &i, sizeof(i));
	if (send(*fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) ||
	    recv(*fd, buf, sizeof(buf), MSG_WAITALL) != (ssize_t)sizeof(buf))
		return -EIO;
	return 0;
}

static int unix_connect(struct ctx *x, const char *path, const char *type)
{
	bool dgram = strcmp(type, "dgram") == 0;
	struct sockaddr_un sa, me;
	char mine[224];
	int fd = socket(AF_UNIX, sock_type(type) | SOCK_CLOEXEC, 0);

	snprintf(mine, sizeof(mine), "%s/cli.sock", x->dir);
	unlink(mine);
	if (fd < 0 || unix_addr(&sa, path) < 0 || unix_addr(&me, mine) < 0 ||
	    (dgram && bind(fd, (struct sockaddr *)&me, sizeof(me)) < 0) ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	return fd;
}

static int run_unix(struct ctx *x, const char *type, struct lat *l)
{
	char path[224];
	pid_t srv;
	int fd, rv;

	snprintf(path, sizeof(path), "%s/echo-%s.sock", x->dir, type);
	board_reset(x);
	x->server = srv = spawn_helper(x, "unix-echo", path, type, BENCH_CPU_SERVER);
	if (srv < 0 || bench_wait_u32(&x->b->ready, 1, 5000) < 0 ||
	    (fd = unix_connect(x, path, type)) < 0) {
		stop_helper(x, srv);
		return -ECHILD;
	}
	rv = drive_echo(x, unix_rt, &fd);
	if (rv == 0)
		finish(x, l);
	close(fd);
	stop_helper(x, srv);
	return rv;
}

/* ---- Redis
 * --------------------------------------------------------------------------------- */

struct redis_arg {
	struct resp c;
	char set1[64], set0[64];
	size_t len1, len0;
};

static int redis_set1(void *a, uint64_t i)
{
	struct redis_arg *r = a;

	(void)i;
	return resp_call(&r->c, r->set1, r->len1, NULL, 0);
}

static int redis_set0(void *a, uint64_t i)
{
	struct redis_arg *r = a;

	(void)i;
	return resp_call(&r->c, r->set0, r->len0, NULL, 0);
}

static int run_redis(struct ctx *x, struct lat *l)
{
	static const char *const s1[] = {"SET", "breaker:global", "1"};
	static const char *const s0[] = {"SET", "breaker:global", "0"};
	struct redis_arg ra = {.c = {.fd = -1}};
	struct bench_redis srv;
	char port[16], n_arg[16];
	pid_t obs = -1;
	int rv;

	if ((rv = bench_redis_start(&srv, x->dir, BENCH_CPU_SERVER, false)) < 0)
		return rv;
	x->server = srv.pid;
	ra.len1 = resp_encode(ra.set1, sizeof(ra.set1), 3, s1);
	ra.len0 = resp_encode(ra.set0, sizeof(ra.set0), 3, s0);
	if ((rv = resp_connect(&ra.c, srv.port)) < 0 || (rv = redis_set0(&ra, 0)) < 0)
		goto out;
	snprintf(port, sizeof(port), "%d", srv.port);
	snprintf(n_arg, sizeof(n_arg), "%zu", x->warm + x->n);
	board_reset(x);
	obs = spawn_helper(x, "redis-poll", port, n_arg, BENCH_CPU_OBSERVER);
	rv = drive_observed(x, obs, redis_set1, redis_set0, &ra);
	if (rv == 0) {
		obs = -1;
		finish(x, l);
	}
out:
	if (obs > 0)
		stop_helper(x, obs);
	resp_close(&ra.c);
	bench_redis_stop(&srv);
	return rv;
}

/* ---- fsync reference
 * ------------------------------------------------------------------------- */

static int run_fsync(struct ctx *x, struct bench_stats *s)
{
	char path[224], rec[200];
	uint64_t t0;
	int fd;

	snprintf(path, sizeof(path), "%s/fsync.dat", x->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	memset(rec, 'r', sizeof(rec));
	for (size_t i = 0; i < x->warm + x->n; i++) {
		t0 = bench_now();
		if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec) ||
		    fdatasync(fd) < 0) {
			close(fd);
			return -EIO;
		}
		if (i >= x->warm)
			x->v[i - x->warm] = (double)(bench_now() - t0) / 1000.0;
	}
	close(fd);
	bench_stats(x->v, x->n, s);
	return 0;
}

/* ---- report
 * ------------------------------------------------------------------------------------ */

enum {
	PAIRED,
	PAIRED_NNG,
	D_SPIN,
	D_FUTEX,
	D_SLOW_TICK,
	L_SPIN,
	L_FUTEX,
	L_SLOW_TICK,
	L_RT,
	NNG_COOKED,
	NNG_RAW,
	UNIX_STREAM,
	UNIX_DGRAM,
	UNIX_SEQ,
	REDIS,
	N_EXP
};

struct exp {
	const char *seen_name, *rtt_name;
	size_t n;        /* measured iterations */
	const char *tag; /* for --only TAG */
};

static const struct exp exps[N_EXP] = {
    [PAIRED] = {"interleaved: breakerd trip -> engine sees HALTED",
                "interleaved: breakerd trip ack round trip", 2000, "paired"},
    [PAIRED_NNG] = {"interleaved: bare nng one-way (cooked REP)",
                    "interleaved: bare nng round trip (cooked REP)", 2000, "paired"},
    [D_SPIN] = {"breakerd trip -> engine sees HALTED (spinning)",
                "breakerd trip ack round trip (spinning engine)", 3000, "spin"},
    [D_FUTEX] = {"breakerd trip -> engine sees HALTED (futex wait)",
                 "breakerd trip ack round trip (futex engine)", 3000, "futex"},
    [D_SLOW_TICK] = {"breakerd tick 1 ms: trip -> engine sees HALTED (spinning)",
                     "breakerd tick 1 ms: trip ack round trip", 2000, "slowtick"},
    [L_SPIN] = {"fast path: breakerd trip -> engine sees HALTED (spinning)",
                "fast path: breakerd trip ack round trip (spinning engine)", 3000,
                "local"},
    [L_FUTEX] = {"fast path: breakerd trip -> engine sees HALTED (futex wait)",
                 "fast path: breakerd trip ack round trip (futex engine)", 3000,
                 "local-futex"},
    [L_SLOW_TICK] = {"fast path, tick 1 ms: trip -> engine sees HALTED (spinning)",
                     "fast path, tick 1 ms: trip ack round trip", 2000, "local-slowtick"},
    [L_RT] = {"fast path, realtime_priority 50: trip -> engine sees HALTED "
              "(spinning)",
              "fast path, realtime_priority 50: trip ack round trip", 3000, "local-rt"},
    [NNG_COOKED] = {"peer: bare nng REQ/REP one-way (cooked REP)",
                    "peer: bare nng REQ/REP round trip (cooked REP)", 5000, "nng"},
    [NNG_RAW] = {"peer: bare nng one-way (raw REP + RECVFD + poll)",
                 "peer: bare nng round trip (raw REP + RECVFD + poll)", 5000, "nng-raw"},
    [UNIX_STREAM] = {"peer: Unix stream socket one-way",
                     "peer: Unix stream socket round trip", 5000, "unix"},
    [UNIX_DGRAM] = {"peer: Unix datagram socket one-way",
                    "peer: Unix datagram socket round trip", 5000, "unix-dgram"},
    [UNIX_SEQ] = {"peer: Unix seqpacket socket one-way",
                  "peer: Unix seqpacket socket round trip", 5000, "unix-seq"},
    [REDIS] = {"peer: Redis SET -> poller sees it (GET loop)",
               "peer: Redis SET round trip", 5000, "redis"},
};

static int run_one(struct ctx *x, int e, struct lat *l)
{
	x->n = bench_scale(x->quick, exps[e].n);
	x->warm = bench_scale(x->quick, 200);
	switch (e) {
	case PAIRED:
		return run_paired(x, l, l + 1); /* and PAIRED_NNG */
	case D_SPIN:
	case D_FUTEX:
		return run_daemon(x, e == D_FUTEX, false, 100, 0, l);
	case D_SLOW_TICK:
		return run_daemon(x, false, false, 1000, 0, l);
	case L_SPIN:
	case L_FUTEX:
		return run_daemon(x, e == L_FUTEX, true, 100, 0, l);
	case L_SLOW_TICK:
		return run_daemon(x, false, true, 1000, 0, l);
	case L_RT:
		if (geteuid() != 0) /* SCHED_FIFO needs CAP_SYS_NICE */
			return -EPERM;
		return run_daemon(x, false, true, 100, 50, l);
	case NNG_COOKED:
	case NNG_RAW:
		return run_nng(x, e == NNG_RAW, l);
	case UNIX_STREAM:
		return run_unix(x, "stream", l);
	case UNIX_DGRAM:
		return run_unix(x, "dgram", l);
	case UNIX_SEQ:
		return run_unix(x, "seqpacket", l);
	default:
		return run_redis(x, l);
	}
}

static bool is_daemon(int e)
{
	return e >= D_SPIN && e <= L_RT;
}

static const char *how(int e)
{
	switch (e) {
	case PAIRED:
	case PAIRED_NNG:
		return "trips and bare round trips alternate; engine spinning on cpu1";
	case D_FUTEX:
	case L_FUTEX:
		return "engine asleep in bk_wait_change on cpu1";
	case REDIS:
		return "poller on cpu1";
	case D_SPIN:
	case D_SLOW_TICK:
	case L_SPIN:
	case L_SLOW_TICK:
	case L_RT:
		return "engine spinning on cpu1";
	default:
		return "one-way = server's arrival stamp";
	}
}

static void report(int e, const struct lat *l)
{
	const char *who = e <= PAIRED_NNG ? "breakerd + nng echo"
	                  : is_daemon(e)  ? "breakerd"
	                  : e == REDIS    ? "redis-server"
	                                  : "echo server";
	char setup[160], csw[224];

	snprintf(setup, sizeof(setup), "%s cpu%d + sender cpu%d; %s; %zu runs", who,
	         BENCH_CPU_SERVER, BENCH_CPU_SERVER, how(e), l->seen.n);
	snprintf(csw, sizeof(csw),
	         "%s; context switches per %s: sender %.1f + server %.1f", setup,
	         is_daemon(e) ? "trip + resume (ticks included)" : "round trip",
	         l->csw_sender, l->csw_server);
	bench_row(SECTION, exps[e].seen_name, "us", &l->seen, setup);
	bench_row(SECTION, exps[e].rtt_name, "us", &l->rtt,
	          e <= PAIRED_NNG ? setup : csw);
}

static void added(const char *name, const struct bench_stats *a,
                  const struct bench_stats *b, const char *setup)
{
	bench_pair(SECTION, name, "us", a->p50 - b->p50, a->p99 - b->p99, setup);
}

static void derived(const struct lat *l)
{
	const char *diff = "difference of p50s and of p99s";

	if (l[PAIRED].ok)
		added("daemon added (interleaved): trip->seen minus bare nng one-way",
		      &l[PAIRED].seen, &l[PAIRED_NNG].seen,
		      "same window; difference of p50s and of p99s");

	if (l[D_SPIN].ok && l[NNG_COOKED].ok) {
		added("daemon added (separate runs): trip->seen minus bare nng one-way",
		      &l[D_SPIN].seen, &l[NNG_COOKED].seen, diff);
		if (l[D_SLOW_TICK].ok)
			added("daemon added (separate runs; tick 1 ms): trip->seen minus "
			      "bare "
			      "nng one-way",
			      &l[D_SLOW_TICK].seen, &l[NNG_COOKED].seen, diff);
		added("daemon added: trip ack minus bare nng round trip (incl. fsync)",
		      &l[D_SPIN].rtt, &l[NNG_COOKED].rtt, diff);
	}
	if (l[D_SPIN].ok && l[NNG_RAW].ok)
		added("daemon added: trip->seen minus raw+RECVFD nng one-way",
		      &l[D_SPIN].seen, &l[NNG_RAW].seen, diff);
	if (l[L_SPIN].ok && l[UNIX_SEQ].ok) {
		added("daemon added (fast path): trip->seen minus bare seqpacket one-way",
		      &l[L_SPIN].seen, &l[UNIX_SEQ].seen, diff);
		if (l[L_SLOW_TICK].ok)
			added("daemon added (fast path, tick 1 ms): trip->seen minus "
			      "bare seqpacket one-way",
			      &l[L_SLOW_TICK].seen, &l[UNIX_SEQ].seen, diff);
	}
	if (l[L_RT].ok && l[UNIX_SEQ].ok)
		added("daemon added (fast path, realtime_priority 50): trip->seen minus "
		      "bare seqpacket one-way",
		      &l[L_RT].seen, &l[UNIX_SEQ].seen, diff);
	if (l[L_SPIN].ok && l[D_SPIN].ok)
		bench_pair(SECTION, "ratio: nng trip->seen / fast path trip->seen", "x",
		           l[D_SPIN].seen.p50 / l[L_SPIN].seen.p50,
		           l[D_SPIN].seen.p99 / l[L_SPIN].seen.p99,
		           "ratio of p50s and of p99s");
	if (l[L_SPIN].ok && l[REDIS].ok)
		bench_pair(SECTION, "ratio: Redis SET->seen / fast path trip->seen", "x",
		           l[REDIS].seen.p50 / l[L_SPIN].seen.p50,
		           l[REDIS].seen.p99 / l[L_SPIN].seen.p99,
		           "ratio of p50s and of p99s");
	if (l[L_FUTEX].ok && l[REDIS].ok)
		bench_pair(SECTION,
		           "ratio: Redis SET->seen / fast path trip->seen (futex engine)",
		           "x", l[REDIS].seen.p50 / l[L_FUTEX].seen.p50,
		           l[REDIS].seen.p99 / l[L_FUTEX].seen.p99,
		           "ratio of p50s and of p99s");
	if (l[D_SPIN].ok && l[REDIS].ok)
		bench_pair(SECTION, "ratio: breakerd trip->seen / Redis SET->seen", "x",
		           l[D_SPIN].seen.p50 / l[REDIS].seen.p50,
		           l[D_SPIN].seen.p99 / l[REDIS].seen.p99,
		           "ratio of p50s and of p99s");
	if (l[NNG_COOKED].ok && l[UNIX_STREAM].ok)
		bench_pair(SECTION, "ratio: bare nng round trip / Unix stream round trip",
		           "x", l[NNG_COOKED].rtt.p50 / l[UNIX_STREAM].rtt.p50,
		           l[NNG_COOKED].rtt.p99 / l[UNIX_STREAM].rtt.p99,
		           "ratio of p50s and of p99s");
}

static int setup_ctx(struct ctx *x, int argc, char **argv)
{
	size_t cap = 2 * MAX_ITERS;

	x->quick = bench_quick(argc, argv);
	x->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	x->send = calloc(cap, sizeof(*x->send));
	x->ack = calloc(cap, sizeof(*x->ack));
	x->send2 = calloc(cap, sizeof(*x->send2));
	x->ack2 = calloc(cap, sizeof(*x->ack2));
	x->v = calloc(cap, sizeof(*x->v));
	x->b = bench_board_create((uint32_t)cap, &x->board_fd);
	if (!x->send || !x->ack || !x->send2 || !x->ack2 || !x->v || !x->b ||
	    bench_tmpdir(x->dir, sizeof(x->dir), "trip"))
		return -ENOMEM;
	snprintf(x->board_arg, sizeof(x->board_arg), "%d", x->board_fd);
	return 0;
}

static void free_ctx(struct ctx *x)
{
	free(x->send);
	free(x->ack);
	free(x->send2);
	free(x->ack2);
	free(x->v);
	bench_board_free(x->b);
	if (x->b)
		close(x->board_fd);
	if (x->dir[0])
		bench_rmtree(x->dir);
}

/* --only TAG runs one experiment (for profiling); NULL: all. */
static const char *only(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--only") == 0)
			return argv[i + 1];
	return NULL;
}

int main(int argc, char **argv)
{
	struct lat l[N_EXP] = {0};
	struct bench_stats fs;
	struct ctx x = {0};
	const char *sel = only(argc, argv);
	int rv;

	if (argc > 2 && strcmp(argv[1], "--helper") == 0)
		return helper(argc, argv);
	if (setup_ctx(&x, argc, argv) < 0) {
		free_ctx(&x);
		return 1;
	}
	bench_pin(BENCH_CPU_SERVER); /* before nng starts its threads: they inherit it */
	fprintf(stderr, "bench_trip: trip -> visible, and the transports underneath\n");
	for (int e = 0; e < N_EXP; e++) {
		if (e == PAIRED_NNG || (sel && strcmp(sel, exps[e].tag) != 0))
			continue; /* PAIRED_NNG is measured with PAIRED */
		if ((rv = run_one(&x, e, &l[e])) < 0) {
			fprintf(stderr, "bench_trip: %s: %s (skipped)\n",
			        exps[e].seen_name, strerror(-rv));
			continue;
		}
		report(e, &l[e]);
		if (e == PAIRED)
			report(PAIRED_NNG, &l[PAIRED_NNG]);
	}
	x.n = bench_scale(x.quick, 2000);
	x.warm = bench_scale(x.quick, 100);
	if (!sel && run_fsync(&x, &fs) == 0)
		bench_row(SECTION, "reference: write + fdatasync of a 200-byte append",
		          "us", &fs, bench_fs_name(x.dir));
	derived(l);
	free_ctx(&x);
	return sel || l[PAIRED].ok ? 0 : 1;
}
