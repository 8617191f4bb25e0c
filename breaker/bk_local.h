/*
 * bk_local - the local fast path for commands: a SOCK_SEQPACKET Unix socket
 * read by the daemon's own loop thread, with no nng threads in between.
 *
 * Why: an nng IPC round trip costs ~19 context switches here (its taskq and
 * poller threads hand each message on); a seqpacket round trip costs ~4.
 * The protocol is the same breaker.Request / breaker.Reply, one packet each,
 * and every request goes through the same bk_cmd_handle as nng's: the same
 * validation, authorisation (SO_PEERCRED, taken once at accept), audit and
 * ordering. nng stays the protocol for PUB events, TCP and nng clients.
 *
 * A request is handed over as a bk_request (bk_request.h) whose route names
 * the connection and its generation; bk_server_reply sends the answer back
 * here. A connection that closes before its reply is ready bumps its
 * generation and the late reply is dropped.
 */
#ifndef BK_LOCAL_H
#define BK_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bk_request.h"

#define BK_LOCAL_CONNS 256
#define BK_ROUTE_LOCAL 1 /* bk_route.transport of a local request */

struct bk_local_conn {
	int fd; /* -1: free */
	uint32_t gen;
	uint32_t uid, gid, pid;
	bool ready;       /* readable, not drained yet (its poll is not armed) */
	uint64_t last_ns; /* accepted, or its last request (monotonic) */
};

/*
 * Connection exhaustion: any user who may connect could
 * fill the table with idle connections and lock a root trip out. So: a uid
 * other than root's and the daemon's holds at most max_per_uid connections
 * (more are closed at accept); a connection that sends nothing for idle_ns
 * is closed; and when the table is full anyway (many uids), the connection
 * idle the longest is closed to make room: a new connection always gets in.
 */
struct bk_local {
	int listen_fd; /* -1: the fast path is off */
	char path[108];
	uint8_t *buf; /* one packet, up to BK_TRANSPORT_MAX */
	struct bk_local_conn conns[BK_LOCAL_CONNS];
	uint64_t idle_ns;     /* 0: no idle timeout */
	uint32_t max_per_uid; /* 0: no cap */
	uint32_t daemon_uid;
	int spare_fd;       /* reserved for accept-and-close when out of fds */
	uint64_t refused;   /* connections closed at accept (cap, no fds) */
	uint64_t evicted;   /* idle connections closed to make room */
	uint64_t timed_out; /* idle connections closed by the timeout */
	uint64_t warned_ns; /* last refusal warning: one a second at most */
	uint64_t next_sweep_ns;
};

/* Listen on url ("unix:///run/breaker/x.sock"; "" = off) with file mode. */
int bk_local_open(struct bk_local *l, const char *url, mode_t mode, char *err,
                  size_t errlen);
void bk_local_close(struct bk_local *l);

/* The limits above (bk_config: idle_timeout_ms, max_conns_per_uid). */
void bk_local_limits(struct bk_local *l, uint64_t idle_ns, uint32_t max_per_uid);

/* Close connections idle past idle_ns; cheap to call every tick (it runs
 * its scan at most every 50 ms). */
void bk_local_sweep(struct bk_local *l, uint64_t now_ns);

/* Accept every waiting connection; returns how many (their slots are ready). */
int bk_local_accept(struct bk_local *l);

/* For the loop's polls: the listening socket (-1: off), and a connection's
 * socket (-1: free) with its generation, which names it in the poll's tag. */
int bk_local_listen_fd(const struct bk_local *l);
int bk_local_conn_fd(const struct bk_local *l, int slot, uint32_t *gen);

/* A connection's poll fired: true (and it is ready to drain) if it is still
 * the connection of generation gen. */
bool bk_local_wake(struct bk_local *l, int slot, uint32_t gen);

/* Ready to drain: readable, not drained since (bk_local_recv said -EAGAIN). */
bool bk_local_ready(const struct bk_local *l, int slot);

/*
 * Next request from connection slot into req (its body is this bk_local's
 * buffer: valid until the next recv): 0, -EAGAIN when drained, -EPIPE when
 * the peer closed (the slot is freed).
 */
int bk_local_recv(struct bk_local *l, int slot, struct bk_request *req);

/* Send a packed reply to the connection route names, if it is still there. */
void bk_local_send(struct bk_local *l, const struct bk_route *route, const uint8_t *buf,
                   size_t len);

#endif
