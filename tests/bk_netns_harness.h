/*
 * bk_netns_harness - a real 3-member etcd cluster and breakerd "hosts", each
 * in a network namespace of its own, joined by a bridge in a hub namespace,
 * so that a test can cut links for real with nftables (docs/firmwide.md,
 * partition scenarios).
 *
 * Layout (per test; names carry the test process's pid, so parallel tests
 * and stale leftovers never collide):
 *   bkn-<pid>-hub   bridge br0, 10.77.0.254/24; the test thread lives here
 *   bkn-<pid>-m<i>  etcd member i at 10.77.0.<1+i> (client 2379, peer 2380)
 *   bkn-<pid>-h<j>  breakerd host j at 10.77.0.<11+j>
 * Each member/host namespace has a veth "eth0" to the bridge, loopback up,
 * and an nft table "inet bkn" with input and output chains where the cuts
 * go (drop on eth0 one way, both ways, or numgen random loss). No traffic
 * leaves the namespaces the test made. Shared memory and the Unix sockets
 * (paths) are not network-namespaced: engines and the CLI reach a host's
 * breakerd as always.
 *
 * Needs root (CAP_NET_ADMIN/CAP_SYS_ADMIN), `ip` (iproute2) and `nft`
 * (nftables): without them the test FAILS with a clear message, never skips.
 * Teardown (bk_nn_down) removes everything; bk_nn_up first removes stale
 * namespaces of dead test processes (a test killed by its timeout).
 */
#ifndef BK_NETNS_HARNESS_H
#define BK_NETNS_HARNESS_H

#include <stdbool.h>

#include "bk_etcd_harness.h"

#define BK_NN_HOSTS_MAX 4
#define BK_NN_NODES     (BK_EC_MEMBERS + BK_NN_HOSTS_MAX)

/* Which way a cut drops packets, seen from the node whose link is cut. */
enum { BK_NN_IN = 1, BK_NN_OUT = 2, BK_NN_BOTH = 3 };

struct bk_nn {
	char pfx[32]; /* "bkn-<pid>" */
	int n_hosts;
	int root_fd, hub_fd, fd[BK_NN_NODES]; /* namespace fds; -1 when closed */
	bool made[BK_NN_NODES + 1];           /* [BK_NN_NODES]: the hub */
	struct bk_ec ec;                      /* endpoints http://10.77.0.<1+i>:2379 */
};

/* Node ids: members 0..2, host j is BK_NN_HOST(j). */
#define BK_NN_HOST(j) (BK_EC_MEMBERS + (j))

/* Namespaces, bridge, nft tables, then etcd x3 (--pre-vote=true), healthy;
 * the calling thread is in the hub afterwards. Fails the test otherwise. */
void bk_nn_up(struct bk_nn *w, const char *tag, int n_hosts);
/* Kill the members, delete the namespaces, back to the first namespace.
 * Idempotent; safe after a half-made bk_nn_up. */
void bk_nn_down(struct bk_nn *w);

/* Move the calling thread into node's namespace (a fork from it, breakerd or
 * the CLI, is in there too); bk_nn_hub to come back. */
void bk_nn_enter(struct bk_nn *w, int node);
void bk_nn_hub(struct bk_nn *w);

/* Drop node's packets on eth0 in the given directions (BK_NN_IN/OUT/BOTH). */
void bk_nn_cut(struct bk_nn *w, int node, int dirs);
/* Drop node's packets to and from peer (another node's address) only. */
void bk_nn_cut_pair(struct bk_nn *w, int node, int peer);
/* The same for the n nodes in peers[]. */
void bk_nn_cut_from(struct bk_nn *w, int node, const int *peers, int n);
/* Drop pct % of node's packets on eth0, each way, at random (nft numgen). */
void bk_nn_loss(struct bk_nn *w, int node, int pct);
/* Remove every rule on node: its link is whole again. */
void bk_nn_heal(struct bk_nn *w, int node);

/* (Re)start member i in its namespace, into its existing data dir. */
void bk_nn_member_start(struct bk_nn *w, int i, bool fresh);
/* The member that says it leads (/v3/maintenance/status), -1 if none; its
 * raft term in *term (may be NULL). Members in skip_mask are not asked. */
int bk_nn_leader(struct bk_nn *w, unsigned skip_mask, long long *term);
/* Make member `to` the leader (etcd's MoveLeader, asked of the leader);
 * true once it says so. */
bool bk_nn_move_leader(struct bk_nn *w, int to);
/* "10.77.0.N" of node. */
const char *bk_nn_addr(int node, char *buf, size_t len);

#endif
