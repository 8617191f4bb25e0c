/*
 * bk_auth - who may do what (docs/security.md).
 *
 * Local callers (IPC and the local socket: SO_PEERCRED) are judged by the
 * [auth] lists: a listed uid, a listed gid that is the caller's primary gid,
 * or a listed group the caller's user is a member of in the group database.
 * Members are resolved once at start (no NSS lookup on the loop, and no
 * reading /proc/<pid>/status, which is racy: the pid may be reused or the
 * process may change its groups after connecting). tls+tcp:// callers are
 * judged by their certificate's role ([tls] roles); plaintext TCP callers
 * are anonymous and may trip only while anyone may.
 *
 * Refusals for want of authorisation are audited, at most BK_AUTH_BURST at
 * once and BK_AUTH_RATE a second per caller (token bucket); the rest are
 * counted and summarised in one record once the caller's bucket refills.
 */
#ifndef BK_AUTH_H
#define BK_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_config.h"
#include "bk_state.h"

#define BK_AUTH_MEMBERS 256 /* resolved group members per act */
#define BK_AUTH_BUCKETS 32  /* callers whose refusals are rate-limited apart */
#define BK_AUTH_BURST   5   /* refusals recorded one by one, at once ... */
#define BK_AUTH_RATE    2   /* ... and then per second, per caller */
#define BK_WHO_MAX      80

/* Who sent a request, as its transport identified them. */
struct bk_peer {
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
	int local;          /* credentials came from the IPC socket */
	int tls;            /* tls+tcp://: identified by its certificate's CN */
	char cn[BK_CN_MAX]; /* ... "" if it has no single CN */
};

/* What a command needs. */
enum bk_perm {
	BK_PERM_QUERY = 1 << 0,  /* status, strategies */
	BK_PERM_TRIP = 1 << 1,   /* trip (but kill_switch) */
	BK_PERM_KILL = 1 << 2,   /* trip with reason kill_switch */
	BK_PERM_RESUME = 1 << 3, /* resume, register, reconcile */
	BK_PERM_FORCE = 1 << 4,  /* resume --force */
	BK_PERM_REPORT = 1 << 5, /* report: remote telemetry feeds the rules */
	BK_PERM_ALL = (1 << 6) - 1,
};

/* One caller's refusals: a token bucket, and what it has not recorded. */
struct bk_auth_bucket {
	char who[BK_WHO_MAX]; /* bk_auth_who(); "" = free */
	struct bk_peer peer;  /* for the summary record */
	uint32_t tokens_m;    /* thousandths of a token */
	uint64_t last_ns;     /* tokens counted up to here (monotonic) */
	uint64_t used_ns;     /* for eviction: least recently used goes */
	uint32_t suppressed;  /* refusals not recorded since the last record */
};

/* A global resume waiting for its second operator. */
struct bk_proposal {
	bool active;
	uint64_t seq; /* its RESUME_PROPOSED record */
	uint64_t expires_mono_ns, expires_wall_ns;
	char who[BK_WHO_MAX]; /* the proposer, bk_auth_who() */
	struct bk_actor actor;
	unsigned reason; /* the plan, as bk_plan */
	bool all, forced;
	uint8_t target;
	bool firm; /* a --firm resume (bk_etcd_fwd.c): never confirms a local one */
};

struct bk_auth {
	uint32_t members[BK_ACT_COUNT][BK_AUTH_MEMBERS]; /* uids in a listed group */
	int n_members[BK_ACT_COUNT];
	struct bk_auth_bucket bucket[BK_AUTH_BUCKETS];
	unsigned suppressing; /* buckets holding unrecorded refusals */
	struct bk_proposal proposal;
};

/* Resolve the members of every listed group (NSS; at start, before the loop). */
void bk_auth_init(struct bk_auth *a, const struct bk_config *cfg);

/* What p may do: enum bk_perm bits. */
unsigned bk_auth_perms(const struct bk_auth *a, const struct bk_config *cfg,
                       const struct bk_peer *p);

/*
 * Why p may not do `verb` (a command lacking the perms in missing): a line
 * for the caller and the audit log naming the config that decides it.
 */
void bk_auth_why(const struct bk_config *cfg, const struct bk_peer *p, unsigned missing,
                 const char *verb, char *buf, size_t len);

/* The caller as one identity: "uid 1000", "cn alice-desk", "plaintext tcp". */
void bk_auth_who(const struct bk_peer *p, char *buf, size_t len);

/*
 * A refusal by p at now (monotonic ns): true if it is to be recorded. If
 * due->suppressed is set on return, *due is a summary to record first.
 */
bool bk_auth_admit(struct bk_auth *a, const struct bk_peer *p, uint64_t now,
                   struct bk_auth_bucket *due);

/* A caller whose unrecorded refusals can now be summarised: true, *due filled. */
bool bk_auth_due(struct bk_auth *a, uint64_t now, struct bk_auth_bucket *due);

#endif
