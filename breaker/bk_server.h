/*
 * bk_server - the daemon's nng sockets: a raw REP socket for commands (raw so
 * that many requests can be in flight and be answered out of order, once
 * their audit records are durable) and a PUB socket for state changes.
 *
 * nng runs its own threads; the daemon only touches these sockets from its
 * loop thread, woken by NNG_OPT_RECVFD (readable once a message waits).
 */
#ifndef BK_SERVER_H
#define BK_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <nng/nng.h>

#include "bk_config.h"
#include "bk_local.h"
#include "bk_request.h"

/* nng drops anything larger at the transport; smaller but > max_msg gets a reply. */
#define BK_TRANSPORT_MAX (1u << 20)
#define BK_ROUTE_NNG     2 /* bk_route.transport of an nng request (BK_ROUTE_LOCAL: 1) */

struct bk_pipe_caps; /* per-uid connection caps on the nng sockets (bk_server.c) */

struct bk_server {
	nng_socket rep;
	nng_socket pub;
	int recv_fd; /* poll for POLLIN */
	int open;
	struct bk_local local; /* the seqpacket fast path (bk_local.h) */
	struct bk_pipe_caps *caps;
};

int bk_server_open(struct bk_server *s, const struct bk_config *cfg, char *err,
                   size_t errlen);
void bk_server_close(struct bk_server *s);

/*
 * Close idle connections (idle_timeout_ms): the local socket's, and nng's
 * ipc:// command pipes that sent nothing for as long. From the loop's tick;
 * it scans at most every 50 ms.
 */
void bk_server_sweep(struct bk_server *s, uint64_t now_ns);

/*
 * Next waiting request on the REP socket, never blocks: 0, or -EAGAIN when
 * drained. The peer is who sent it: SO_PEERCRED on IPC; the client
 * certificate's CN on tls+tcp://; plaintext TCP peers are anonymous (uid
 * ~0). Its route holds the nng message until the reply goes.
 */
int bk_server_recv(struct bk_server *s, struct bk_request *req);

/* The reply function (bk_request.h) for both transports; ctx: the bk_server. */
void bk_server_reply(void *ctx, struct bk_route *route, const uint8_t *buf, size_t len);

/* Publish an event; dropped for slow subscribers, as PUB does. */
void bk_server_publish(struct bk_server *s, const void *buf, size_t len);

#endif
