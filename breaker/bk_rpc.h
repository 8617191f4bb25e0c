/*
 * bk_rpc - the command client: one protobuf Request out, one Reply back, over
 * nng REQ (ipc://, tcp://) or the daemon's local seqpacket socket (unix://,
 * the fast path: see bk_local.h). Used by the CLI, tests and benchmarks.
 *
 * REQ's automatic resend is turned off: a trip or resume must not be applied
 * twice because a reply was slow; a timeout is reported to the caller instead.
 */
#ifndef BK_RPC_H
#define BK_RPC_H

#include <stdbool.h>
#include <nng/nng.h>

#include "breaker.pb-c.h"

struct bk_rpc_peer;

struct bk_rpc {
	nng_socket sock;
	int fd; /* unix://: the seqpacket socket, else -1 */
	int timeout_ms;
	int open;
	struct bk_rpc_peer *peer; /* bk_rpc_open_trusted on ipc://: the pipe check */
};

/* Dial url (unix://, ipc:// or tcp://). timeout_ms bounds each call. 0 or -errno. */
int bk_rpc_open(struct bk_rpc *r, const char *url, int timeout_ms);
void bk_rpc_close(struct bk_rpc *r);

struct bk_trust;
/*
 * bk_rpc_open, but first prove the server end is breakerd's (bk_trust.h):
 * on ipc:// the socket file and its directories before dialing, and every
 * pipe's peer credentials as nng connects it (a pipe to anyone else is
 * closed before a byte goes out); on unix:// the peer's credentials once
 * connected. -EPERM with err saying why, and nothing sent, when it is not;
 * else as bk_rpc_open.
 */
int bk_rpc_open_trusted(struct bk_rpc *r, const char *url, int timeout_ms,
                        const struct bk_trust *t, char *err, size_t errlen);

/*
 * Send req, wait for the reply. *reply is freed by the caller with
 * breaker__reply__free_unpacked(*reply, NULL). Returns 0, -ETIMEDOUT,
 * -ECONNREFUSED (no daemon), -EBADMSG (undecodable reply) or -errno.
 */
int bk_rpc_call(struct bk_rpc *r, const Breaker__Request *req, Breaker__Reply **reply);

/* Does a daemon at url answer Status OK within timeout_ms? (start-up waits) */
bool bk_rpc_ping(const char *url, int timeout_ms);

/* Map an nng error to a negative errno. */
int bk_rpc_errno(int nng_err);

/* What the caller presents on tls+tcp://: PEM files; cert and key both or neither. */
struct bk_rpc_tls {
	const char *cert_file;
	const char *key_file;
	const char *ca_file; /* the CA that signed breakerd's certificate */
};

/*
 * Dial a tls+tcp:// url: breakerd's certificate must chain to tls->ca_file
 * and name the url's host; ours goes with it. 0, or -errno with err saying
 * what went wrong where it can: -ENOKEY (unusable files), -EACCES (a
 * certificate refused, either side), -EPROTO (TLS failed), or as bk_rpc_open.
 */
int bk_rpc_open_tls(struct bk_rpc *r, const char *url, int timeout_ms,
                    const struct bk_rpc_tls *tls, char *err, size_t errlen);

#endif
