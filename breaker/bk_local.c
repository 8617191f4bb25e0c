#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bk_local.h"
#include "bk_log.h"
#include "bk_server.h"
#include "breaker.pb-c.h"

/* What a request's nng_msg header carries: who sent it and where to answer. */
static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bk_local_open(struct bk_local *l, const char *url, mode_t mode, char *err,
                  size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	mode_t old;
	int rv;

	memset(l, 0, sizeof(*l));
	l->listen_fd = -1;
	l->spare_fd = -1;
	l->daemon_uid = (uint32_t)geteuid();
	for (int i = 0; i < BK_LOCAL_CONNS; i++)
		l->conns[i].fd = -1;
	if (!url[0])
		return 0;
	if (strncmp(url, "unix://", 7) || strlen(url + 7) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "bad local_url '%s'", url);
		return -EINVAL;
	}
	snprintf(l->path, sizeof(l->path), "%s", url + 7);
	memcpy(sa.sun_path, l->path, strlen(l->path));
	/* one byte more than nng takes: an oversize packet stays oversize */
	if (!(l->buf = malloc(BK_TRANSPORT_MAX + 1)))
		return -ENOMEM;
	l->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->listen_fd < 0)
		goto fail;
	unlink(l->path); /* a crashed daemon's; the state-dir lock says it is dead */
	/* Created with no permissions, then given the configured ones: never
	 * briefly open to whatever the umask allowed. */
	old = umask(0777);
	rv = bind(l->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rv < 0 || chmod(l->path, mode) < 0 || listen(l->listen_fd, 128) < 0)
		goto fail;
	l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return 0;
fail:
	rv = -errno;
	snprintf(err, errlen, "listen %s: %s", url, strerror(errno));
	bk_local_close(l);
	return rv;
}

static void conn_close(struct bk_local_conn *c)
{
	/* shutdown first: a poll still armed on it in the ring holds the socket
	 * open past close(), and the peer would not see its end */
	shutdown(c->fd, SHUT_RDWR);
	close(c->fd);
	c->fd = -1;
	c->ready = false;
	c->gen++; /* replies still on their way to it are dropped */
}

void bk_local_close(struct bk_local *l)
{
	for (int i = 0; i < BK_LOCAL_CONNS; i++)
		if (l->conns[i].fd >= 0)
			conn_close(&l->conns[i]);
	if (l->listen_fd >= 0) {
		close(l->listen_fd);
		unlink(l->path);
	}
	if (l->spare_fd >= 0)
		close(l->spare_fd);
	l->spare_fd = -1;
	l->listen_fd = -1;
	free(l->buf);
	l->buf = NULL;
}

static struct bk_local_conn *find_free(struct bk_local *l)
{
	for (int i = 0; i < BK_LOCAL_CONNS; i++)
		if (l->conns[i].fd < 0)
			return &l->conns[i];
	return NULL;
}

/*
 * A free slot; when the table is full, first close connections whose peers
 * hung up but whose hang-up the loop has not seen yet (same batch of events).
 */
static struct bk_local_conn *free_conn(struct bk_local *l)
{
	struct pollfd p[BK_LOCAL_CONNS];
	struct bk_local_conn *c = find_free(l);

	if (c)
		return c;
	for (int i = 0; i < BK_LOCAL_CONNS; i++)
		p[i] = (struct pollfd){.fd = l->conns[i].fd, .events = POLLRDHUP};
	if (poll(p, BK_LOCAL_CONNS, 0) <= 0)
		return NULL;
	for (int i = 0; i < BK_LOCAL_CONNS; i++)
		if (p[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
			conn_close(&l->conns[i]);
	return find_free(l);
}

void bk_local_limits(struct bk_local *l, uint64_t idle_ns, uint32_t max_per_uid)
{
	l->idle_ns = idle_ns;
	l->max_per_uid = max_per_uid;
}

void bk_local_sweep(struct bk_local *l, uint64_t now_ns)
{
	if (!l->idle_ns || now_ns < l->next_sweep_ns)
		return;
	l->next_sweep_ns = now_ns + 50 * 1000 * 1000;
	for (int i = 0; i < BK_LOCAL_CONNS; i++) {
		struct bk_local_conn *c = &l->conns[i];

		/* ready: it has a request waiting, being read now */
		if (c->fd >= 0 && !c->ready && now_ns - c->last_ns > l->idle_ns) {
			conn_close(c);
			l->timed_out++;
		}
	}
}

/* Root and the daemon's own uid are never capped: they are who trips. */
static bool over_cap(const struct bk_local *l, uint32_t uid)
{
	uint32_t n = 0;

	if (!l->max_per_uid || uid == 0 || uid == l->daemon_uid)
		return false;
	for (int i = 0; i < BK_LOCAL_CONNS; i++)
		if (l->conns[i].fd >= 0 && l->conns[i].uid == uid)
			n++;
	return n >= l->max_per_uid;
}

/* Refusals and evictions come in floods: one line a second, with counts. */
static void limited_warn(struct bk_local *l, const char *what, uint32_t uid,
                         const char *why)
{
	uint64_t now = mono_ns();
	char who[32];

	if (now - l->warned_ns < 1000000000ull && l->warned_ns)
		return;
	l->warned_ns = now;
	if (uid == UINT32_MAX)
		snprintf(who, sizeof(who), "a peer not asked");
	else
		snprintf(who, sizeof(who), "uid %u", uid);
	bk_warn("local socket: connection from %s %s: %s (%llu refused, %llu idle "
	        "evicted, %llu idle timed out so far)",
	        who, what, why, (unsigned long long)l->refused,
	        (unsigned long long)l->evicted, (unsigned long long)l->timed_out);
}

static void refused(struct bk_local *l, uint32_t uid, const char *why)
{
	l->refused++;
	limited_warn(l, "refused", uid, why);
}

/* Idle: no request waiting to be read (a fresh connection's is peeked at). */
static bool conn_idle(const struct bk_local_conn *c)
{
	char b;

	return !c->ready ||
	       (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN);
}

/*
 * The table is full: close the connection idle the longest, preferring one
 * not of root or the daemon's uid. Connections with a request waiting are
 * never chosen. A flood accepted in one batch is all "ready": peek then.
 */
static struct bk_local_conn *evict_oldest(struct bk_local *l)
{
	struct bk_local_conn *best = NULL;
	bool best_exempt = true;

	for (int pass = 0; pass < 2 && !best; pass++) {
		for (int i = 0; i < BK_LOCAL_CONNS; i++) {
			struct bk_local_conn *c = &l->conns[i];
			bool exempt = c->uid == 0 || c->uid == l->daemon_uid;

			if (c->fd < 0 || c->ready != (pass == 1) ||
			    (pass == 1 && !conn_idle(c)))
				continue;
			if (!best || (best_exempt && !exempt) ||
			    (exempt == best_exempt && c->last_ns < best->last_ns)) {
				best = c;
				best_exempt = exempt;
			}
		}
	}
	if (best) {
		l->evicted++;
		limited_warn(l, "closed", best->uid,
		             "all connections in use: the one idle longest makes room");
		conn_close(best);
	}
	return best;
}

/*
 * Out of file descriptors: the pending connection would keep the listening
 * socket readable and the loop spinning. Give up the spare descriptor,
 * accept the connection, close it (its peer sees the refusal), take the
 * spare back.
 */
static bool shed_one(struct bk_local *l)
{
	int fd;

	if (l->spare_fd < 0 &&
	    (l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return false; /* none to give up: the next wake-up tries again */
	close(l->spare_fd);
	fd = accept4(l->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	refused(l, UINT32_MAX, "breakerd is out of file descriptors");
	return fd >= 0;
}

int bk_local_accept(struct bk_local *l)
{
	struct bk_local_conn *c;
	struct ucred cred;
	socklen_t len;
	int fd, n = 0;

	for (;;) {
		fd = accept4(l->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if ((errno == EMFILE || errno == ENFILE) && shed_one(l))
				continue;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break; /* EAGAIN: all accepted */
		}
		len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			bk_warn("local socket: SO_PEERCRED: %s: connection refused",
			        strerror(errno));
			close(fd);
			continue;
		}
		if (over_cap(l, cred.uid)) {
			refused(l, cred.uid, "max_conns_per_uid reached");
			close(fd);
			continue;
		}
		if (!(c = free_conn(l)) && !(c = evict_oldest(l))) {
			refused(l, cred.uid, "all connections busy with requests");
			close(fd);
			continue;
		}
		/* best effort (wmem_max caps it): room for a long status reply */
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){1 << 20}, sizeof(int));
		c->fd = fd;
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->pid = (uint32_t)cred.pid;
		c->ready = true; /* it may have sent already */
		c->last_ns = mono_ns();
		n++;
	}
	return n;
}

int bk_local_listen_fd(const struct bk_local *l)
{
	return l->listen_fd;
}

int bk_local_conn_fd(const struct bk_local *l, int slot, uint32_t *gen)
{
	*gen = l->conns[slot].gen;
	return l->conns[slot].fd;
}

bool bk_local_wake(struct bk_local *l, int slot, uint32_t gen)
{
	struct bk_local_conn *c;

	if (slot < 0 || slot >= BK_LOCAL_CONNS)
		return false;
	c = &l->conns[slot];
	if (c->fd < 0 || c->gen != gen)
		return false; /* closed (and maybe reused) since its poll was armed */
	c->ready = true;
	return true;
}

bool bk_local_ready(const struct bk_local *l, int slot)
{
	return l->conns[slot].fd >= 0 && l->conns[slot].ready;
}

int bk_local_recv(struct bk_local *l, int slot, struct bk_request *req)
{
	struct bk_local_conn *c = &l->conns[slot];
	ssize_t n;

	/* MSG_TRUNC: the packet's real length, so oversize is seen as such */
	n = recv(c->fd, l->buf, BK_TRANSPORT_MAX + 1, MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		c->ready = false; /* drained: readable again once its poll fires */
		return -EAGAIN;
	}
	if (n <= 0) { /* 0: closed (an empty request would be invalid anyway) */
		conn_close(c);
		return -EPIPE;
	}
	if ((size_t)n > BK_TRANSPORT_MAX) { /* refused by size, as it deserves */
		bk_warn("local socket: uid %u sent a %zd-byte packet", c->uid, n);
		n = BK_TRANSPORT_MAX + 1; /* > any max_message_bytes: refused */
	}
	c->last_ns = mono_ns();
	memset(req, 0, sizeof(*req));
	req->body = l->buf;
	req->len = (size_t)n;
	req->peer.uid = c->uid;
	req->peer.gid = c->gid;
	req->peer.pid = c->pid;
	req->peer.local = 1;
	req->route.transport = BK_ROUTE_LOCAL;
	req->route.conn = (uint32_t)slot;
	req->route.gen = c->gen;
	return 0;
}

/*
 * A reply bigger than the socket's send buffer (a long strategy list) cannot
 * go as one packet: say so, under the same request id, rather than go silent.
 */
static void reply_too_large(struct bk_local_conn *c, const uint8_t *body, size_t len)
{
	Breaker__Reply *big, rep = BREAKER__REPLY__INIT;
	uint8_t buf[256];

	big = breaker__reply__unpack(NULL, len, body);
	if (big) {
		rep.has_request_id = big->has_request_id;
		rep.request_id = big->request_id;
		breaker__reply__free_unpacked(big, NULL);
	}
	rep.has_status = 1;
	rep.status = BREAKER__STATUS__ERR_TOO_LARGE;
	rep.error = "reply too large for the local socket: ask over the nng ipc_url";
	send(c->fd, buf, breaker__reply__pack(&rep, buf), MSG_DONTWAIT | MSG_NOSIGNAL);
}

void bk_local_send(struct bk_local *l, const struct bk_route *route, const uint8_t *buf,
                   size_t len)
{
	struct bk_local_conn *c;

	if (!buf || route->conn >= BK_LOCAL_CONNS)
		return;
	c = &l->conns[route->conn];
	if (c->fd < 0 || c->gen != route->gen)
		return; /* the requester has gone */
	/* EAGAIN: a client that does not read its replies times out, as on nng */
	if (send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
		return;
	if (errno == EMSGSIZE)
		reply_too_large(c, buf, len);
	else if (errno != EAGAIN)
		bk_warn("local socket: reply to pid %u: %s", c->pid, strerror(errno));
}
