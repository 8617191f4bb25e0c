/*
 * Integration: the local fast path (bk_local.h), a real breakerd, the real
 * CLI and bk_rpc over unix://. Each test has its own instance and sockets.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bk_harness.h"
#include "bk_local.h"
#include "bk_mode.h"

#define STRATS "[strategies]\nnames = alpha, beta\n"

static char out[1 << 17];

static struct bk_h *up(struct bk_h *h, const char *tag, const char *extra)
{
	bk_h_init(h, tag, extra ? extra : STRATS);
	bk_h_start(h);
	return h;
}

static int local_connect(const struct bk_h *h)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h->cfg.local_url + 7);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
	             strerror(errno));
	return fd;
}

/* One packet out, the reply packet back (NULL if the daemon closed on us). */
static Breaker__Reply *raw_local(int fd, const void *buf, size_t len)
{
	static uint8_t in[1 << 20];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t n;

	cr_assert_eq(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
	cr_assert_eq(poll(&p, 1, 5000), 1, "no reply within 5 s");
	n = recv(fd, in, sizeof(in), 0);
	if (n <= 0)
		return NULL;
	return breaker__reply__unpack(NULL, (size_t)n, in);
}

static Breaker__Status local_status(int fd, const void *buf, size_t len)
{
	Breaker__Reply *r = raw_local(fd, buf, len);
	Breaker__Status st;

	cr_assert_not_null(r, "the daemon closed the connection instead of replying");
	st = r->status;
	breaker__reply__free_unpacked(r, NULL);
	return st;
}

static Breaker__Reply *call_url(const char *url, Breaker__Request *req)
{
	Breaker__Reply *rep = NULL;
	struct bk_rpc r;

	cr_assert_eq(bk_rpc_open(&r, url, 5000), 0, "open %s", url);
	cr_assert_eq(bk_rpc_call(&r, req, &rep), 0, "call %s", url);
	bk_rpc_close(&r);
	return rep;
}

static void trip_req(Breaker__Request *req, Breaker__Trip *t, uint64_t id)
{
	req->cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req->trip = t;
	req->has_request_id = 1;
	req->request_id = id;
	t->has_reason_code = 1;
	t->reason_code = BREAKER__REASON_CODE__MANUAL_HALT;
	t->reason = "over the fast path";
}

Test(local, trip_is_seen_and_audited_with_the_callers_identity)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;
	Breaker__Reply *rep;
	struct bk_client c;
	struct bk_h h;
	char pid[32];

	up(&h, "ltrip", NULL);
	bk_h_attach(&h, &c);
	cr_assert(strncmp(h.cfg.local_url, "unix://", 7) == 0,
	          "the fast path is on by default");
	trip_req(&req, &t, 77);
	rep = call_url(h.cfg.local_url, &req);
	cr_assert_eq(rep->status, BREAKER__STATUS__OK, "%s",
	             rep->error ? rep->error : "");
	cr_assert(rep->has_audit_seq && rep->audit_seq > 0, "acked with its audit seq");
	cr_assert_eq(rep->request_id, 77u);
	breaker__reply__free_unpacked(rep, NULL);
	cr_assert_eq(bk_check(&c, -1), BK_HALTED);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", "--json", NULL), 0);
	snprintf(pid, sizeof(pid), "\"pid\":%d", (int)getpid());
	cr_assert(strstr(out, "over the fast path"), "%s", out);
	cr_assert(strstr(out, pid), "SO_PEERCRED pid in the record: %s", out);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(local, bad_packets_get_clear_errors_and_change_nothing)
{
	static uint8_t big[20000];
	struct bk_client c;
	struct bk_h h;
	uint32_t seq0;
	int fd;

	up(&h, "lbad", NULL);
	bk_h_attach(&h, &c);
	seq0 = bk_change_seq(&c);
	fd = local_connect(&h);
	cr_assert_eq(local_status(fd, "\xff\xff\xff garbage", 12),
	             BREAKER__STATUS__ERR_BAD_REQUEST);
	memset(big, 'x', sizeof(big));
	cr_assert_eq(local_status(fd, big, sizeof(big)), BREAKER__STATUS__ERR_TOO_LARGE);
	cr_assert_eq(local_status(fd, "\x0a\x00", 2), BREAKER__STATUS__ERR_BAD_REQUEST,
	             "a Request with no command");
	/* an empty packet is read as the end of the connection */
	cr_assert_null(raw_local(fd, "", 0));
	close(fd);
	cr_assert_eq(bk_change_seq(&c), seq0, "nothing an engine sees changed");
	cr_assert_eq(bk_check(&c, -1), BK_ACTIVE);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "status", NULL), 0, "still serving");
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(local, a_caller_that_leaves_before_its_ack_changes_nothing_else)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;
	uint8_t buf[512];
	struct bk_client c;
	struct bk_h h;
	size_t len;
	int fd;

	up(&h, "lgone", NULL);
	bk_h_attach(&h, &c);
	trip_req(&req, &t, 5);
	len = breaker__request__pack(&req, buf);
	for (int i = 0; i < 50; i++) { /* send and hang up at once, many times */
		fd = local_connect(&h);
		req.request_id = 1000 + (uint64_t)i;
		len = breaker__request__pack(&req, buf);
		cr_assert_eq(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
		close(fd);
	}
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "status", NULL), 0, "%s", out);
	cr_assert_eq(bk_check(&c, -1), BK_HALTED, "the trips were applied");
	fd = local_connect(&h);
	cr_assert_eq(local_status(fd, buf, len), BREAKER__STATUS__OK,
	             "a new caller is answered (duplicate id: acked, not re-applied)");
	close(fd);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

/* A full table makes room: the connection idle the longest is closed. */
Test(local, a_connection_past_the_table_evicts_the_oldest_idle_one)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__StatusRequest sr = BREAKER__STATUS_REQUEST__INIT;
	int fds[BK_LOCAL_CONNS + 1];
	uint8_t buf[64];
	struct bk_h h;
	size_t len;

	up(&h, "lmany", NULL);
	req.cmd_case = BREAKER__REQUEST__CMD_STATUS;
	req.status = &sr;
	len = breaker__request__pack(&req, buf);
	for (int i = 0; i < BK_LOCAL_CONNS; i++) {
		fds[i] = local_connect(&h);
		if (i % 32 == 0) /* each one is served while the table fills */
			cr_assert_eq(local_status(fds[i], buf, len), BREAKER__STATUS__OK);
	}
	/* fds[1] is now the one idle longest (fds[0] asked before it connected) */
	cr_assert_eq(local_status(fds[0], buf, len), BREAKER__STATUS__OK);
	fds[BK_LOCAL_CONNS] = local_connect(&h);
	cr_assert_eq(local_status(fds[BK_LOCAL_CONNS], buf, len), BREAKER__STATUS__OK,
	             "the one too many is served");
	{ /* the oldest idle connection was closed to make room: it reads EOF */
		struct pollfd p = {.fd = fds[1], .events = POLLIN};
		uint8_t b;

		cr_assert_eq(poll(&p, 1, 5000), 1, "fds[1] is still open");
		cr_assert_eq(recv(fds[1], &b, 1, 0), 0, "fds[1] is still open");
	}
	cr_assert_eq(local_status(fds[BK_LOCAL_CONNS - 1], buf, len),
	             BREAKER__STATUS__OK);
	cr_assert_eq(local_status(fds[0], buf, len), BREAKER__STATUS__OK);
	for (int i = 0; i <= BK_LOCAL_CONNS; i++)
		close(fds[i]);
	cr_assert_eq(bk_h_stop(&h), 0);
	bk_h_slurp(h.log, out, sizeof(out));
	cr_assert(strstr(out, "all connections in use"), "%s", out);
	bk_h_fini(&h);
}

Test(local, socket_mode_comes_from_the_config_and_a_stale_file_is_replaced)
{
	struct stat st;
	struct bk_h h;
	char path[PATH_MAX];
	int fd;

	bk_h_init(&h, "lmode", STRATS "[commands]\nsocket_mode = 0600\n");
	snprintf(path, sizeof(path), "%s", h.cfg.local_url + 7);
	mkdir(h.cfg.run_dir, 0750);
	fd = open(path, O_CREAT | O_WRONLY, 0644); /* left by a crashed daemon */
	cr_assert_geq(fd, 0);
	close(fd);
	bk_h_start(&h);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode), "the stale file was replaced by the socket");
	cr_assert_eq(st.st_mode & 0777, 0600u, "mode %o", st.st_mode & 0777);
	cr_assert_eq(bk_h_cli(&h, NULL, 0, "emergency-stop", NULL), 0);
	cr_assert_eq(bk_h_stop(&h), 0);
	cr_assert_neq(stat(path, &st), 0, "a clean stop removes the socket file");
	bk_h_fini(&h);
}

Test(local, cli_falls_back_to_nng_when_the_fast_socket_is_gone)
{
	struct bk_client c;
	struct bk_h h;

	up(&h, "lfall", NULL);
	bk_h_attach(&h, &c);
	cr_assert_eq(unlink(h.cfg.local_url + 7), 0);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "kill", "alpha", "--reason",
	                      "fast socket deleted", NULL),
	             0, "%s", out);
	cr_assert_eq(bk_check(&c, bk_client_resolve(&c, "alpha")), BK_HALTED);
	bk_client_detach(&c);
	bk_h_fini(&h);
}

Test(local, one_request_id_is_applied_once_whichever_transport_carries_it)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;
	Breaker__Reply *a, *b;
	struct bk_h h;

	up(&h, "ldup", NULL);
	trip_req(&req, &t, 0x5eed);
	a = call_url(h.cfg.local_url, &req);
	b = call_url(h.cfg.cmd_url, &req);
	cr_assert_eq(a->status, BREAKER__STATUS__OK);
	cr_assert_eq(b->status, BREAKER__STATUS__OK);
	cr_assert_eq(a->audit_seq, b->audit_seq, "the same record acknowledged twice");
	cr_assert(b->error && strstr(b->error, "duplicate"));
	breaker__reply__free_unpacked(a, NULL);
	breaker__reply__free_unpacked(b, NULL);
	cr_assert_eq(bk_h_cli(&h, out, sizeof(out), "audit", NULL), 0);
	cr_assert_eq(bk_h_count(out, "over the fast path"), 1, "one TRIP record: %s",
	             out);
	bk_h_fini(&h);
}
