#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/transport/ipc/ipc.h>

#include "bk_log.h"
#include "bk_server.h"
#include "bk_tls.h"

static int ipc_path(const char *url, const char **path)
{
	if (strncmp(url, "ipc://", 6) != 0)
		return -EINVAL;
	*path = url + 6;
	return 0;
}

/*
 * Listen on url. For IPC, a stale socket file from a crashed daemon is
 * removed first (the state-dir lock proves no other daemon owns it), and the
 * file's permissions come from the config, not the umask.
 */
static int listen_on(nng_socket sock, const char *url, int mode, char *err, size_t errlen)
{
	nng_listener l;
	const char *path;
	int rv;

	if (ipc_path(url, &path) == 0)
		unlink(path);
	if ((rv = nng_listener_create(&l, sock, url)) != 0)
		goto fail;
	if (ipc_path(url, &path) == 0 &&
	    (rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, mode)) != 0)
		goto fail;
	if ((rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, BK_TRANSPORT_MAX)) != 0 ||
	    (rv = nng_listener_start(l, 0)) != 0)
		goto fail;
	if (ipc_path(url, &path) == 0 && chmod(path, (mode_t)mode) < 0)
		bk_warn("chmod %s: %s", path, strerror(errno));
	return 0;
fail:
	snprintf(err, errlen, "listen %s: %s", url, nng_strerror(rv));
	return -EADDRNOTAVAIL;
}

/* tls+tcp://: client certificates required, their CNs give roles (bk_tls.h). */
static int listen_tls(nng_socket sock, const struct bk_config *cfg, char *err,
                      size_t errlen)
{
	nng_tls_config *tls = NULL;
	nng_listener l;
	int rv;

	if (bk_tls_engine_register() < 0) {
		snprintf(err, errlen, "%s: cannot register the TLS engine", cfg->tcp_url);
		return -ENOTSUP;
	}
	if (bk_tls_server_config(&tls, cfg->tls_cert, cfg->tls_key, cfg->tls_ca, err,
	                         errlen) < 0)
		return -EINVAL;
	if ((rv = nng_listener_create(&l, sock, cfg->tcp_url)) != 0 ||
	    (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls)) != 0 ||
	    (rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, BK_TRANSPORT_MAX)) != 0 ||
	    (rv = nng_listener_start(l, 0)) != 0) {
		snprintf(err, errlen, "listen %s: %s", cfg->tcp_url, nng_strerror(rv));
		rv = -EADDRNOTAVAIL;
	}
	nng_tls_config_free(tls); /* the listener holds its own reference */
	return rv;
}

/*
 * Connection exhaustion over nng: nng accepts every
 * connection and has no limit of its own, so a user could hold a thousand
 * idle ipc:// pipes, each one of breakerd's descriptors, until a root trip
 * cannot be accepted. A pipe-notify callback counts the pipes of each peer
 * uid (SO_PEERCRED) on the command and event sockets, and closes a new pipe
 * past max_conns_per_uid before any message is read from it. Root and the
 * daemon's own uid are never capped; TCP/TLS peers have no uid and are not
 * counted (tcp_url is off by default and TLS needs a certificate).
 * The callbacks run on nng's threads: the table has its own lock.
 */
struct bk_pipe_rec {
	uint32_t pipe_id;
	uint32_t uid;
	uint64_t last_ns; /* joined, or its last request (monotonic) */
	bool rep;         /* a command pipe (event subscribers never send) */
};

struct bk_pipe_caps {
	pthread_mutex_t mtx;
	uint32_t max_per_uid;
	uint32_t daemon_uid;
	int rep_id;       /* nng_socket_id of the command socket */
	uint64_t idle_ns; /* command pipes silent this long are closed */
	uint64_t next_sweep_ns;
	struct bk_pipe_rec *recs; /* every counted pipe, unordered */
	size_t n, cap;
	uint64_t refused, timed_out;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct bk_pipe_caps *c = arg;
	uint32_t id = (uint32_t)nng_pipe_id(p), held = 0;
	uint64_t uid;
	bool close_it = false;
	struct bk_pipe_rec *r;

	if (ev == NNG_PIPE_EV_REM_POST) {
		pthread_mutex_lock(&c->mtx);
		for (size_t i = 0; i < c->n; i++)
			if (c->recs[i].pipe_id == id) {
				c->recs[i] = c->recs[--c->n];
				break;
			}
		pthread_mutex_unlock(&c->mtx);
		return;
	}
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) != 0)
		return; /* not ipc:// */
	pthread_mutex_lock(&c->mtx);
	for (size_t i = 0; i < c->n; i++)
		held += c->recs[i].uid == (uint32_t)uid;
	if (uid != 0 && uid != c->daemon_uid && held >= c->max_per_uid) {
		close_it = true;
		c->refused++;
	} else {
		if (c->n == c->cap &&
		    (r = realloc(c->recs, (c->cap * 2 + 64) * sizeof(*r)))) {
			c->recs = r;
			c->cap = c->cap * 2 + 64;
		}
		if (c->n < c->cap)
			c->recs[c->n++] = (struct bk_pipe_rec){
			    id, (uint32_t)uid, mono_ns(),
			    nng_socket_id(nng_pipe_socket(p)) == c->rep_id};
		else /* out of memory: uncounted, so refused unless exempt */
			close_it = uid != 0 && uid != c->daemon_uid;
	}
	if (close_it && (c->refused & (c->refused - 1)) == 0) /* 1, 2, 4, 8... */
		bk_warn("nng: connection from uid %u refused: max_conns_per_uid %u "
		        "reached (%llu refused so far)",
		        (unsigned)uid, c->max_per_uid, (unsigned long long)c->refused);
	pthread_mutex_unlock(&c->mtx);
	if (close_it)
		nng_pipe_close(p);
}

static int caps_open(struct bk_server *s, const struct bk_config *cfg)
{
	struct bk_pipe_caps *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->mtx, NULL);
	c->max_per_uid = cfg->max_conns_per_uid;
	c->daemon_uid = (uint32_t)geteuid();
	c->rep_id = nng_socket_id(s->rep);
	c->idle_ns = (uint64_t)cfg->idle_timeout_ms * 1000000ull;
	s->caps = c;
	if (nng_pipe_notify(s->rep, NNG_PIPE_EV_ADD_PRE, pipe_event, c) ||
	    nng_pipe_notify(s->rep, NNG_PIPE_EV_REM_POST, pipe_event, c) ||
	    nng_pipe_notify(s->pub, NNG_PIPE_EV_ADD_PRE, pipe_event, c) ||
	    nng_pipe_notify(s->pub, NNG_PIPE_EV_REM_POST, pipe_event, c))
		return -EIO;
	return 0;
}

/* After the sockets are closed: no callback runs any more. */
static void caps_free(struct bk_server *s)
{
	if (!s->caps)
		return;
	pthread_mutex_destroy(&s->caps->mtx);
	free(s->caps->recs);
	free(s->caps);
	s->caps = NULL;
}

int bk_server_open(struct bk_server *s, const struct bk_config *cfg, char *err,
                   size_t errlen)
{
	int rv;

	memset(s, 0, sizeof(*s));
	if ((rv = bk_local_open(&s->local, cfg->local_url, cfg->sock_mode, err, errlen)) <
	    0)
		return rv;
	if ((rv = nng_rep0_open_raw(&s->rep)) != 0 ||
	    (rv = nng_pub0_open(&s->pub)) != 0) {
		snprintf(err, errlen, "nng: %s", nng_strerror(rv));
		bk_local_close(&s->local);
		return -ENOMEM;
	}
	s->open = 1;
	bk_local_limits(&s->local, (uint64_t)cfg->idle_timeout_ms * 1000000ull,
	                cfg->max_conns_per_uid);
	if (caps_open(s, cfg) < 0) {
		snprintf(err, errlen, "nng pipe notify: out of memory");
		goto fail;
	}
	if ((rv = nng_setopt_size(s->rep, NNG_OPT_RECVMAXSZ, BK_TRANSPORT_MAX)) != 0 ||
	    (rv = nng_setopt_int(s->rep, NNG_OPT_RECVBUF, 1024)) != 0 ||
	    (rv = nng_setopt_int(s->rep, NNG_OPT_SENDBUF, 1024)) != 0 ||
	    (rv = nng_getopt_int(s->rep, NNG_OPT_RECVFD, &s->recv_fd)) != 0) {
		snprintf(err, errlen, "nng options: %s", nng_strerror(rv));
		goto fail;
	}
	if ((rv = listen_on(s->rep, cfg->cmd_url, cfg->sock_mode, err, errlen)) < 0 ||
	    (rv = listen_on(s->pub, cfg->pub_url, cfg->sock_mode, err, errlen)) < 0)
		goto fail;
	if (cfg->tcp_url[0] && strncmp(cfg->tcp_url, "tls+", 4) == 0)
		rv = listen_tls(s->rep, cfg, err, errlen);
	else if (cfg->tcp_url[0])
		rv = listen_on(s->rep, cfg->tcp_url, 0, err, errlen);
	if (rv < 0)
		goto fail;
	return 0;
fail:
	bk_server_close(s);
	return -EIO;
}

void bk_server_close(struct bk_server *s)
{
	if (!s->open)
		return;
	bk_local_close(&s->local);
	nng_close(s->rep);
	nng_close(s->pub);
	caps_free(s);
	s->open = 0;
}

/* A request came over pipe id: it is not idle. */
static void caps_touch(struct bk_pipe_caps *c, uint32_t id)
{
	pthread_mutex_lock(&c->mtx);
	for (size_t i = 0; i < c->n; i++)
		if (c->recs[i].pipe_id == id) {
			c->recs[i].last_ns = mono_ns();
			break;
		}
	pthread_mutex_unlock(&c->mtx);
}

void bk_server_sweep(struct bk_server *s, uint64_t now_ns)
{
	struct bk_pipe_caps *c = s->caps;
	uint32_t idle[64];
	size_t n = 0;

	bk_local_sweep(&s->local, now_ns);
	if (!c || !c->idle_ns || now_ns < c->next_sweep_ns)
		return;
	c->next_sweep_ns = now_ns + 50 * 1000 * 1000;
	pthread_mutex_lock(&c->mtx);
	for (size_t i = 0; i < c->n && n < 64; i++)
		if (c->recs[i].rep && now_ns > c->recs[i].last_ns + c->idle_ns) {
			idle[n++] = c->recs[i].pipe_id;
			c->recs[i].last_ns = now_ns; /* closing: not twice */
		}
	c->timed_out += n;
	pthread_mutex_unlock(&c->mtx);
	/* outside the lock: closing runs the REM_POST callback */
	for (size_t i = 0; i < n; i++)
		nng_pipe_close((nng_pipe){.id = idle[i]});
}

/* Who sent msg: SO_PEERCRED on IPC, the certificate's CN on TLS. */
static void server_peer(const nng_msg *msg, struct bk_peer *peer)
{
	nng_pipe p = nng_msg_get_pipe(msg);
	uint64_t uid, gid, pid;
	int rv;

	memset(peer, 0, sizeof(*peer));
	peer->uid = peer->gid = UINT32_MAX;
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) != 0 ||
	    nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_GID, &gid) != 0) {
		/* TLS: who the certificate names; plaintext TCP: nobody, no trust */
		rv = bk_tls_peer(p, peer->cn, sizeof(peer->cn));
		peer->tls = rv == 1 || rv == -EACCES;
		return;
	}
	peer->uid = (uint32_t)uid;
	peer->gid = (uint32_t)gid;
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) == 0)
		peer->pid = (uint32_t)pid;
	peer->local = 1;
}

int bk_server_recv(struct bk_server *s, struct bk_request *req)
{
	nng_msg *msg;
	int rv = nng_recvmsg(s->rep, &msg, NNG_FLAG_NONBLOCK);

	if (rv == NNG_EAGAIN)
		return -EAGAIN;
	if (rv)
		return -EIO;
	if (s->caps)
		caps_touch(s->caps, (uint32_t)nng_pipe_id(nng_msg_get_pipe(msg)));
	memset(req, 0, sizeof(*req));
	req->body = nng_msg_body(msg);
	req->len = nng_msg_len(msg);
	server_peer(msg, &req->peer);
	req->route.transport = BK_ROUTE_NNG;
	req->route.handle = msg; /* its header routes the answer back */
	return 0;
}

void bk_server_reply(void *ctx, struct bk_route *route, const uint8_t *buf, size_t len)
{
	struct bk_server *s = ctx;
	nng_msg *msg = route->handle;

	if (route->transport == BK_ROUTE_LOCAL)
		bk_local_send(&s->local, route, buf, len);
	else if (route->transport == BK_ROUTE_NNG && msg) {
		nng_msg_clear(msg); /* body only: the routing header stays */
		if (!buf || nng_msg_append(msg, buf, len) != 0 ||
		    nng_sendmsg(s->rep, msg, NNG_FLAG_NONBLOCK) != 0)
			nng_msg_free(
			    msg); /* the requester is gone or flooding: it times out */
	}
	route->transport = BK_ROUTE_NONE;
	route->handle = NULL;
}

void bk_server_publish(struct bk_server *s, const void *buf, size_t len)
{
	nng_send(s->pub, (void *)buf, len, NNG_FLAG_NONBLOCK);
}
