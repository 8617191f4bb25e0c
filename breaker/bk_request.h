/*
 * bk_request - the seam between a transport and command handling. A
 * transport hands bk_cmd_handle a request: its bytes, who sent it, and a
 * route for the reply that only the transport reads. The handler answers
 * through the daemon's reply function with the route and the packed Reply,
 * now or once the audit record is durable. Nothing here names nng or a
 * socket, so the handler runs the same for nng, the local socket, and an
 * in-process test.
 */
#ifndef BK_REQUEST_H
#define BK_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "bk_auth.h"

#define BK_ROUTE_NONE 0 /* nobody waits for an answer */

/* Where the answer goes; filled and read by the transport alone. */
struct bk_route {
	uint8_t transport; /* BK_ROUTE_NONE, or the transport's own kind */
	uint32_t conn;     /* the transport's: a connection slot ... */
	uint32_t gen;      /* ... and its generation */
	void *handle;      /* the transport's: a message it reuses for the answer */
	uint64_t start_ns; /* CLOCK_MONOTONIC when command handling began; 0: unknown */
};

struct bk_request {
	const uint8_t *body; /* valid until bk_cmd_handle returns */
	size_t len;
	struct bk_peer peer; /* who sent it, as the transport identified them */
	struct bk_route route;
};

/*
 * Send buf (a packed breaker.Reply; NULL: no answer after all) the way route
 * says, and release what the route holds. route->transport is NONE after.
 */
typedef void bk_reply_fn(void *ctx, struct bk_route *route, const uint8_t *buf,
                         size_t len);

struct bk_replier {
	bk_reply_fn *send;
	void *ctx;
};

#endif
