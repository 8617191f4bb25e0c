/*
 * bk_etcd - breakerd's firm-wide mode ([cluster] in the config): it mirrors
 * the firm latches kept in etcd into this host's segment and proves, on its
 * own, that it is still in contact with etcd's quorum (docs/firmwide.md).
 *
 * Keys, under P = /breaker/v1/<cluster>/:
 *   P latch/<scope>/<reason>  a firm latch (JSON: mode, actor, uid, reason,
 *                             command_id, time_ns, host); scope is global,
 *                             strategy/<name> or group/<kind:value>
 *   P hosts/<host>            this host is up (on its lease)
 *   P acks/<host>             {"revision": applied, ...} (on its lease)
 *
 * Threads: two of our own, never the loop. The watch thread reads P latch/
 * whole (linearizable), then watches it from that revision + 1 (gateway
 * header Grpc-Metadata-hasleader: true), applies events in revision order,
 * and reads it whole again when the watch is cancelled (compaction). The
 * probe thread makes a linearizable read of P latch/ every probe period with
 * a short timeout: a success is "quorum contact" at the time it was sent;
 * it also keeps the lease and the acks. The loop only ever trylocks the
 * mirror (bk_etcd_tick): a trip is never slowed by etcd.
 *
 * Fail closed: until the first whole read, global publishes HALTED
 * (authority_lost); without contact for T1 the daemon latches authority_lost
 * at REDUCE_ONLY on global, past T2 at HALTED: an ordinary audited latch,
 * released only by an operator's resume, refused until contact is back and
 * the mirror has caught up. valid_until_ns in the segment (contact + T2)
 * lets bk_check_live fail closed when breakerd itself is stuck.
 */
#ifndef BK_ETCD_H
#define BK_ETCD_H

#include <stdbool.h>
#include <stdint.h>

#define BK_ETCD_LATCHES   512 /* firm latches mirrored; more: HALTED (fail safe) */
#define BK_ETCD_SCOPE_MAX 96

struct bk_daemon;
struct bk_etcd;

/* One firm latch as mirrored. */
struct bk_etcd_latch {
	char scope[BK_ETCD_SCOPE_MAX]; /* "global", "strategy/alpha", ... */
	uint8_t reason;                /* ReasonCode from the key */
	uint8_t mode;                  /* HALTED when the value is unreadable */
	uint32_t uid;
	int64_t mod_rev;
	uint64_t time_ns;
	char actor[32];
	uint8_t vhash[32]; /* SHA-256 of the value as read, for the audit log */
};

/* The latch key for scope and reason under cluster's prefix. 0 or -ENAMETOOLONG. */
int bk_etcd_latch_key(char *buf, size_t len, const char *cluster, const char *scope,
                      const char *reason);

/* Parse a latch value (JSON) into l; unreadable fields leave l HALTED. */
void bk_etcd_latch_parse(struct bk_etcd_latch *l, const char *json);

/* Start the threads for d->cfg's [cluster] (d->etcd set). 0 or -errno. */
int bk_etcd_start(struct bk_daemon *d);
/* Stop and join them; d->etcd NULL after. */
void bk_etcd_stop(struct bk_daemon *d);

/* Loop, each tick: take a changed mirror (trylock), republish, stage the
 * authority_lost latch, write the segment's firm words. */
void bk_etcd_tick(struct bk_daemon *d, uint64_t now_mono_ns);
/* An eventfd the watch thread writes when the mirror changed (-1: none, or
 * no [cluster]): the loop reads it and runs bk_etcd_tick at once. */
int bk_etcd_wake_fd(const struct bk_daemon *d);
/* A connection to the cluster as this host (endpoints, etcd user, [cluster]
 * certificate), for breakerd's other etcd threads. 0 or -errno. */
struct bk_etcd_conn;
int bk_etcd_conn_open(const struct bk_daemon *d, struct bk_etcd_conn *c, long timeout_ms);

/* Fold the firm latches of a scope (slot: BK_GLOBAL or a strategy) into its
 * published word, mask and since. */
void bk_etcd_fold(const struct bk_daemon *d, int slot, uint64_t *word, uint32_t *mask,
                  uint64_t *since);

/* The same for group slot g's own word (its members fold it via bk_etcd_fold). */
void bk_etcd_fold_group(const struct bk_daemon *d, int g, uint64_t *word, uint32_t *mask,
                        uint64_t *since);

/* Record a regained quorum contact (FIRM_LINK) now if the tick has not
 * yet: a command handler calls it first, so that a resume of authority_lost
 * always follows the contact it relied on in the log. */
void bk_etcd_link_check(struct bk_daemon *d);

/* A linearizable read succeeded within T1 (true without [cluster]); else
 * false, why. A forced resume of authority_lost needs this much. */
bool bk_etcd_in_contact(const struct bk_daemon *d, char *why, size_t len);

/* An operator's resume of authority_lost: refused (false, why) until contact
 * is back within T1 and the mirror has caught up with the quorum's view. */
bool bk_etcd_may_resume(const struct bk_daemon *d, char *why, size_t len);

/* The loop's view of the firm latch (scope, *reason; *reason < 0: the only
 * one of the scope): 0 with *reason, *mode, *mod_rev, or -ENOENT / -EEXIST
 * (several: name one) / -EAGAIN (not mirrored yet). */
int bk_etcd_view_latch(const struct bk_daemon *d, const char *scope, int *reason,
                       int *mode, int64_t *mod_rev);

/* The member (index in [cluster] endpoints) that gave the probe's last
 * linearizable answer, -1 if none yet: where an etcd call should go first. */
int bk_etcd_good_member(const struct bk_daemon *d);
/* The last audit seq anchored in etcd (bk_anchor.h); 0: none, or no [cluster]. */
uint64_t bk_etcd_anchored_seq(const struct bk_daemon *d);

/* This cluster's prefix, /breaker/v1/<cluster>/latch/. */
const char *bk_etcd_latch_prefix(const struct bk_daemon *d);

#endif
