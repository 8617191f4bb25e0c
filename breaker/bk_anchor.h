/*
 * bk_anchor - the audit log's chain head anchored in etcd ([cluster] mode;
 * docs/audit-log.md#anchors-in-etcd), so that a local root who rewrites or
 * cuts a host's log, and re-chains it so that it verifies on its own, is
 * caught by `breaker audit --verify --anchors` against etcd's copy.
 *
 * Key, one per anchor, never overwritten (a create-only transaction):
 *   /breaker/v1/<cluster>/anchors/<host>/<seq, 20 digits>
 *   = {"host":..., "seq":"N", "end":"E", "hash":"<sha-256 hex of record N>",
 *      "time_ns":"<wall clock>"}
 * The newest anchor_keep of a host are kept (older ones deleted: the newest
 * commits the whole prefix anyway). A key whose etcd version is not 1 was
 * overwritten by someone, which the check reports.
 *
 * Thread: one of our own (never the loop, never the etcd watch or probe
 * threads). Every 100 ms it reads the durable head breakerd publishes in
 * the segment header (seqlock, bk_tail.h) and puts it when it moved and
 * either a TRIP, RESUME, FIRM_*, BOOT, STOP or LOG_* record became durable
 * since the last anchor (read from the log file on this thread), or
 * anchor_period has passed. A head that did not move is not put again. On
 * stop, one last put of the final head (the STOP record). A trip is never
 * delayed by it: the loop does nothing for it.
 */
#ifndef BK_ANCHOR_H
#define BK_ANCHOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_audit.h"

struct bk_daemon;
struct bk_config;
struct bk_anchor;
struct bk_etcd_conn;

#define BK_ANCHOR_SEQ_DIGITS 20

/* One anchor as read back from etcd. */
struct bk_anchor_rec {
	uint64_t seq, end, time_ns;
	uint8_t hash[BK_AUDIT_HASH_LEN];
	int64_t mod_rev, version; /* etcd's: version > 1 = overwritten */
	bool bad;                 /* the value did not parse */
};

/* This host's name in etcd: [cluster] host, else "<hostname>:<instance>"
 * (the same as bk_etcd's hosts/ and acks/ keys). */
void bk_anchor_host(char *buf, size_t len, const struct bk_config *cfg);

/* "/breaker/v1/<cluster>/anchors/<host>/". 0 or -ENAMETOOLONG. */
int bk_anchor_prefix(char *buf, size_t len, const char *cluster, const char *host);

/* Start the anchor thread for d's [cluster], connected as the host
 * (bk_etcd_conn_open: d->etcd set). 0 with *out set, or -errno. */
int bk_anchor_start(struct bk_anchor **out, const struct bk_daemon *d, const char *host);
/* The last audit seq anchored (0: none yet, or a NULL). Any thread. */
uint64_t bk_anchor_seq(const struct bk_anchor *a);
/* One last anchor of the final head, then stop and free. NULL is fine. */
void bk_anchor_stop(struct bk_anchor *a);

/*
 * Read every anchor under prefix into *out (sorted by seq, caller frees);
 * *n their count. 0 or -errno (the conn's err says what).
 */
int bk_anchor_read(struct bk_etcd_conn *c, const char *prefix, struct bk_anchor_rec **out,
                   size_t *n);

#endif
