#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "bk_rpc.h"
#include "bk_tls.h"
#include "bk_trust.h"

int bk_rpc_errno(int nng_err)
{
	switch (nng_err) {
	case 0:
		return 0;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECONNREFUSED:
	case NNG_ENOENT:
		return -ECONNREFUSED;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
		return -EINVAL;
	case NNG_EPERM:
		return -EPERM;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	default:
		/* NNG_ESYSERR + errno (a range, not a case: ISO C has no case ranges) */
		if (nng_err >= NNG_ESYSERR && nng_err <= NNG_ESYSERR + 4095)
			return -(nng_err - NNG_ESYSERR);
		return -EIO;
	}
}

static int open_local(struct bk_rpc *r, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	/* a full listen backlog (a stopped or flooded daemon) blocks connect()
	 * for as long as SO_SNDTIMEO says: the call's timeout, not forever */
	struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
	int rv;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, strlen(path));
	r->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (r->fd < 0)
		return -errno;
	setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rv = errno == ENOENT   ? -ECONNREFUSED
		     : errno == EAGAIN ? -ETIMEDOUT
		                       : -errno;
		close(r->fd);
		return rv;
	}
	r->open = 1;
	return 0;
}

/*
 * Is anyone listening at this ipc:// path? -ECONNREFUSED if not (no file, or
 * a stale one): said at once, before anything is sent. The kernel completes
 * the connect even when the daemon is stopped.
 */
static int ipc_probe(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rv = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EAGAIN)
		rv = errno == ENOENT ? -ECONNREFUSED : -errno;
	close(fd);
	return rv;
}

/*
 * A REQ socket that never resends by itself (a trip must not be applied
 * twice because a reply was slow) and bounds each call. 0 or an nng error.
 */
static int req_open(struct bk_rpc *r, int timeout_ms)
{
	int rv;

	if ((rv = nng_req0_open(&r->sock)) != 0)
		return rv;
	if ((rv =
	         nng_setopt_ms(r->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) ||
	    (rv = nng_setopt_ms(r->sock, NNG_OPT_RECVTIMEO, timeout_ms)) ||
	    (rv = nng_setopt_ms(r->sock, NNG_OPT_SENDTIMEO, timeout_ms)) ||
	    (rv = nng_setopt_size(r->sock, NNG_OPT_RECVMAXSZ, 1u << 20)))
		nng_close(r->sock);
	return rv;
}

int bk_rpc_open(struct bk_rpc *r, const char *url, int timeout_ms)
{
	int rv;

	r->open = 0;
	r->fd = -1;
	r->timeout_ms = timeout_ms;
	r->peer = NULL;
	if (strncmp(url, "unix://", 7) == 0)
		return open_local(r, url + 7);
	if (strncmp(url, "ipc://", 6) == 0 && (rv = ipc_probe(url + 6)) < 0)
		return rv;
	if ((rv = req_open(r, timeout_ms)) != 0)
		return bk_rpc_errno(rv);
	/* Synchronous dial: an absent daemon is reported now, not as a timeout.
	 * ipc:// (probed above) dials in the background: a synchronous dial
	 * waits for the handshake up to nng's own 10 s whatever timeout_ms says
	 * (a stopped daemon), and the send and receive timeouts bound it. */
	if ((rv = nng_dial(r->sock, url, NULL,
	                   strncmp(url, "ipc://", 6) == 0 ? NNG_FLAG_NONBLOCK : 0))) {
		nng_close(r->sock);
		return bk_rpc_errno(rv);
	}
	r->open = 1;
	return 0;
}

/* What the pipe callback (on an nng thread) and the dialing thread share. */
struct bk_rpc_peer {
	struct bk_trust trust;
	_Atomic uint64_t refused; /* 1 + the uid of the last pipe refused; 0: none */
	_Atomic int added;        /* a pipe passed the check and joined */
};

/*
 * Before a pipe carries anything: its peer (SO_PEERCRED, through nng) must be
 * breakerd's uid. The path was checked before dialing; this closes the gap
 * between that check and the connect.
 */
static void peer_check(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct bk_rpc_peer *peer = arg;
	uint64_t uid = UINT32_MAX; /* unknown: refused too */

	(void)ev;
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) == 0 &&
	    bk_trust_has(&peer->trust, (uid_t)uid))
		return;
	atomic_store(&peer->refused, 1 + uid);
	nng_pipe_close(p);
}

static void peer_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct bk_rpc_peer *peer = arg;

	(void)p;
	(void)ev;
	atomic_store(&peer->added, 1);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int open_ipc_trusted(struct bk_rpc *r, const char *url, int timeout_ms,
                            const struct bk_trust *t, char *err, size_t errlen)
{
	struct bk_rpc_peer *peer = calloc(1, sizeof(*peer));
	uint64_t refused;
	int rv;

	if (!peer)
		return -ENOMEM;
	peer->trust = *t;
	r->open = 0;
	r->fd = -1;
	r->timeout_ms = timeout_ms;
	r->peer = peer;
	if ((rv = req_open(r, timeout_ms)) != 0) {
		free(peer);
		r->peer = NULL;
		return bk_rpc_errno(rv);
	}
	r->open = 1;
	if ((rv = ipc_probe(url + 6)) < 0) { /* nobody listening: say so now */
		bk_rpc_close(r);
		return rv;
	}
	/*
	 * Dial in the background and wait for the pipe, bounded by timeout_ms: a
	 * synchronous dial waits for the handshake as long as nng's own 10 s (a
	 * stopped daemon), whatever the caller's timeout. Either way the check
	 * runs before the pipe joins the socket: nothing is ever sent over a
	 * refused one.
	 */
	if ((rv = nng_pipe_notify(r->sock, NNG_PIPE_EV_ADD_PRE, peer_check, peer)) ||
	    (rv = nng_pipe_notify(r->sock, NNG_PIPE_EV_ADD_POST, peer_added, peer)) ||
	    (rv = nng_dial(r->sock, url, NULL, NNG_FLAG_NONBLOCK))) {
		bk_rpc_close(r);
		return bk_rpc_errno(rv);
	}
	for (uint64_t end = mono_ms() + (uint64_t)timeout_ms;
	     !atomic_load(&peer->added) && !atomic_load(&peer->refused) &&
	     mono_ms() < end;)
		nng_msleep(1);
	if ((refused = atomic_load(&peer->refused)) != 0) {
		snprintf(err, errlen,
		         "the server at %s runs as uid %llu, not as breakerd's (%s): "
		         "someone else may be answering in breakerd's place",
		         url, (unsigned long long)(refused - 1), t->why);
		bk_rpc_close(r);
		return -EPERM;
	}
	if (!atomic_load(&peer->added)) { /* no handshake in time: nothing sent */
		bk_rpc_close(r);
		return -ETIMEDOUT;
	}
	return 0;
}

int bk_rpc_open_trusted(struct bk_rpc *r, const char *url, int timeout_ms,
                        const struct bk_trust *t, char *err, size_t errlen)
{
	int rv;

	err[0] = '\0';
	if (strncmp(url, "ipc://", 6) == 0) {
		if ((rv = bk_trust_server(t, url, -1, err, errlen)) < 0)
			return rv;
		return open_ipc_trusted(r, url, timeout_ms, t, err, errlen);
	}
	if ((rv = bk_rpc_open(r, url, timeout_ms)) < 0)
		return rv;
	if (r->fd >= 0 && (rv = bk_trust_server(t, url, r->fd, err, errlen)) < 0) {
		bk_rpc_close(r);
		return rv;
	}
	return 0;
}

void bk_rpc_close(struct bk_rpc *r)
{
	if (r->open && r->fd >= 0)
		close(r->fd);
	else if (r->open)
		nng_close(r->sock); /* waits for its pipe callbacks */
	free(r->peer);
	r->peer = NULL;
	r->open = 0;
	r->fd = -1;
}

static int64_t ms_left(const struct timespec *end)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (end->tv_sec - now.tv_sec) * 1000 + (end->tv_nsec - now.tv_nsec) / 1000000;
}

/*
 * The reply to req: a late reply to an earlier call that timed out on this
 * connection is skipped by its request id.
 */
static int call_local(struct bk_rpc *r, const Breaker__Request *req,
                      Breaker__Reply **reply)
{
	size_t len = breaker__request__get_packed_size(req);
	struct timespec end;
	uint8_t *buf;
	ssize_t n;
	int rv = 0;

	if (!(buf = malloc(len > (1u << 20) ? len : (1u << 20))))
		return -ENOMEM;
	breaker__request__pack(req, buf);
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += r->timeout_ms / 1000;
	end.tv_nsec += (long)(r->timeout_ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000;
	}
	if (send(r->fd, buf, len, MSG_NOSIGNAL) < 0) {
		rv = errno == EMSGSIZE ? -EMSGSIZE : -errno;
		goto out;
	}
	for (;;) {
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
		int64_t left = ms_left(&end);

		if (left < 0 || (rv = poll(&pfd, 1, (int)left)) == 0) {
			rv = -ETIMEDOUT;
			break;
		}
		if (rv < 0 && errno == EINTR)
			continue;
		n = recv(r->fd, buf, 1u << 20, 0);
		if (n <= 0) {
			rv = n == 0 ? -ECONNRESET : -errno;
			break;
		}
		*reply = breaker__reply__unpack(NULL, (size_t)n, buf);
		if (!*reply) {
			rv = -EBADMSG;
			break;
		}
		rv = 0;
		/* id 0: the daemon could not decode the request to learn its id */
		if (!req->has_request_id || !(*reply)->request_id ||
		    (*reply)->request_id == req->request_id)
			break;
		breaker__reply__free_unpacked(*reply, NULL); /* a stale one */
		*reply = NULL;
	}
out:
	free(buf);
	return rv;
}

int bk_rpc_call(struct bk_rpc *r, const Breaker__Request *req, Breaker__Reply **reply)
{
	size_t len = breaker__request__get_packed_size(req);
	nng_msg *msg;
	int rv;

	*reply = NULL;
	if (r->fd >= 0)
		return call_local(r, req, reply);
	if ((rv = nng_msg_alloc(&msg, len)) != 0)
		return bk_rpc_errno(rv);
	breaker__request__pack(req, nng_msg_body(msg));
	if ((rv = nng_sendmsg(r->sock, msg, 0)) != 0) {
		nng_msg_free(msg);
		return bk_rpc_errno(rv);
	}
	if ((rv = nng_recvmsg(r->sock, &msg, 0)) != 0)
		return bk_rpc_errno(rv);
	*reply = breaker__reply__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	nng_msg_free(msg);
	return *reply ? 0 : -EBADMSG;
}

bool bk_rpc_ping(const char *url, int timeout_ms)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__StatusRequest sr = BREAKER__STATUS_REQUEST__INIT;
	Breaker__Reply *rep = NULL;
	struct bk_rpc r;
	bool ok;

	if (bk_rpc_open(&r, url, timeout_ms) < 0)
		return false;
	req.cmd_case = BREAKER__REQUEST__CMD_STATUS;
	req.status = &sr;
	ok = bk_rpc_call(&r, &req, &rep) == 0 && rep->status == BREAKER__STATUS__OK;
	if (rep)
		breaker__reply__free_unpacked(rep, NULL);
	bk_rpc_close(&r);
	return ok;
}

/* "tls+tcp://host:port" -> host ("[::1]" -> "::1"), for the certificate check. */
static int url_host(const char *url, char *host, size_t len)
{
	const char *h = strstr(url, "://"), *end;

	if (!h)
		return -EINVAL;
	h += 3;
	if (*h == '[') {
		h++;
		end = strchr(h, ']');
	} else {
		end = strrchr(h, ':');
	}
	if (!end || end == h || (size_t)(end - h) >= len)
		return -EINVAL;
	memcpy(host, h, (size_t)(end - h));
	host[end - h] = '\0';
	return 0;
}

int bk_rpc_open_tls(struct bk_rpc *r, const char *url, int timeout_ms,
                    const struct bk_rpc_tls *tls, char *err, size_t errlen)
{
	nng_tls_config *cfg = NULL;
	nng_dialer dl;
	char host[256];
	int rv;

	r->open = 0;
	r->fd = -1;
	r->timeout_ms = timeout_ms;
	r->peer = NULL;
	err[0] = '\0';
	if (url_host(url, host, sizeof(host)) < 0)
		return -EINVAL;
	if ((rv = bk_tls_client_config(&cfg, tls->cert_file, tls->key_file, tls->ca_file,
	                               host, err, errlen)) < 0)
		return rv == -ENOTSUP ? rv : -ENOKEY;
	if ((rv = req_open(r, timeout_ms)) != 0) {
		nng_tls_config_free(cfg);
		return bk_rpc_errno(rv);
	}
	if ((rv = nng_dialer_create(&dl, r->sock, url)) ||
	    (rv = nng_dialer_set_ptr(dl, NNG_OPT_TLS_CONFIG, cfg)) ||
	    (rv = nng_dialer_start(dl, 0))) {
		nng_tls_config_free(cfg);
		nng_close(r->sock);
		/* a refused or unverifiable certificate, either side's */
		if (rv == NNG_EPEERAUTH || rv == NNG_ECRYPTO)
			snprintf(err, errlen, "TLS handshake with %s failed: %s%s", url,
			         nng_strerror(rv),
			         tls->cert_file
			             ? " (is our certificate from the CA breakerd "
			               "trusts, and breakerd's from ours?)"
			             : " (breakerd requires a client certificate)");
		return rv == NNG_EPEERAUTH ? -EACCES
		       : rv == NNG_ECRYPTO ? -EPROTO
		                           : bk_rpc_errno(rv);
	}
	nng_tls_config_free(cfg); /* the dialer holds its own reference */
	r->open = 1;
	return 0;
}
