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
 * A request becomes an nng_msg (nng_msg_alloc is plain memory, no threads)
 * whose header names the connection, so that bk_cmd keeps one reply path:
 * bk_server_reply sends it back here. A connection that closes before its
 * reply is ready bumps its generation and the late reply is dropped.
 */
#ifndef BK_LOCAL_H
#define BK_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <nng/nng.h>

#define BK_LOCAL_CONNS 256
#define BK_LOCAL_MAGIC 0xb4ea10c1u /* header word 0: high bit never set by nng */

struct bk_local_conn {
	int fd; /* -1: free */
	uint32_t gen;
	uint32_t uid, gid, pid;
	bool ready;       /* readable, not drained yet (its poll is not armed) */
	uint64_t last_ns; /* accepted, or its last request (monotonic) */
};

/*
 * Connection exhaustion (issue 11 item 2): any user who may connect could
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

/*
 * Next request from connection slot, as an nng_msg carrying the local header:
 * 0, -EAGAIN when drained, -EPIPE when the peer closed (the slot is freed).
 */
int bk_local_recv(struct bk_local *l, int slot, nng_msg **msg);

/* Is msg one of ours? Then fill uid/gid/pid from its header. */
bool bk_local_peer(const nng_msg *msg, uint32_t *uid, uint32_t *gid, uint32_t *pid);

/*
 * If msg came from the local socket, send its body back to the connection its
 * header names and consume msg; false (msg untouched) if it is nng's.
 */
bool bk_local_reply(struct bk_local *l, nng_msg *msg);

#endif
