/*
 * breaker_client.h - header-only engine client for the breaker halt state.
 *
 * An engine attaches read-only to the daemon's shared-memory segment and asks
 * "may I trade?" with bk_check(): two acquire loads, no system call, no lock.
 * bk_check_live() also fails closed (HALTED) when the daemon's heartbeat is
 * stale or the segment's layout is unknown. bk_wait_change() sleeps on the
 * change sequence with a futex until the daemon publishes a change.
 *
 * The byte layout below is the contract with every client in every language;
 * docs/shm-layout.md documents it and tests/test_layout.c checks the two agree.
 *
 * Trust: bk_client_attach() believes a segment only when its owner is the
 * daemon's uid (root, the engine's own uid, or $BREAKER_DAEMON_UID /
 * bk_client_attach_as()) and nobody else may write it; anything else is no
 * daemon at all (docs/clients.md).
 *
 * Works from C11 and C++11, strict (-std=c11, -std=c++17) or not, whether
 * or not this header comes first: the few POSIX/Linux calls that strict C
 * hides (clock_gettime, syscall, O_CLOEXEC) are declared below if needed.
 */
#ifndef BREAKER_CLIENT_H
#define BREAKER_CLIENT_H

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

/*
 * Strict ISO C (-std=c11, no _DEFAULT_SOURCE/_GNU_SOURCE) hides these even
 * though libc has them. The declarations match glibc's and musl's (clockid_t
 * is an int in both); C++ compilers define _GNU_SOURCE themselves.
 */
#ifdef O_CLOEXEC
#define BK_O_CLOEXEC O_CLOEXEC
#elif defined(__O_CLOEXEC)
#define BK_O_CLOEXEC __O_CLOEXEC
#else
#define BK_O_CLOEXEC 02000000 /* Linux's generic value */
#endif
#ifdef CLOCK_MONOTONIC
#define BK_CLOCK_MONOTONIC CLOCK_MONOTONIC
#else
#define BK_CLOCK_MONOTONIC 1 /* the kernel ABI's value on every architecture */
#ifndef __cplusplus
extern int clock_gettime(int clock_id, struct timespec *tp);
#endif
#endif
#ifndef __cplusplus
extern long syscall(long number, ...);
#endif

#ifdef __cplusplus
#include <atomic>
#define BK_ATOMIC(t)   std::atomic<t>
#define BK_LOAD_ACQ(p) (p)->load(std::memory_order_acquire)
#define BK_LOAD_RLX(p) (p)->load(std::memory_order_relaxed)
#define BK_FENCE_ACQ() std::atomic_thread_fence(std::memory_order_acquire)
extern "C" {
#else
#include <stdatomic.h>
#define BK_ATOMIC(t)   _Atomic(t)
#define BK_LOAD_ACQ(p) atomic_load_explicit((p), memory_order_acquire)
#define BK_LOAD_RLX(p) atomic_load_explicit((p), memory_order_relaxed)
#define BK_FENCE_ACQ() atomic_thread_fence(memory_order_acquire)
#endif

/* ---- layout (version 2) ------------------------------------------------ */

/*
 * This header's release (the Python client's __version__ is the same), for
 * #if checks in engines. The layout versions below are what the bytes
 * promise; this is what the API promises.
 */
#define BREAKER_CLIENT_VERSION_MAJOR 0
#define BREAKER_CLIENT_VERSION_MINOR 1
#define BREAKER_CLIENT_VERSION_PATCH 0
#define BREAKER_CLIENT_VERSION                                                           \
	(BREAKER_CLIENT_VERSION_MAJOR * 10000 + BREAKER_CLIENT_VERSION_MINOR * 100 +     \
	 BREAKER_CLIENT_VERSION_PATCH)
#define BREAKER_CLIENT_VERSION_STRING "0.1.0"

#define BK_SHM_MAGIC      0x315245414b524242ull /* "BBRKAER1" little-endian */
#define BK_LAYOUT_VERSION 2u
#define BK_MAX_STRATEGIES 4096u
#define BK_MAX_GROUPS     256u /* group scopes ("kind:value"), layout 2 */
#define BK_LIMITS_ENTRIES (1u + BK_MAX_STRATEGIES) /* 0: global, 1 + i: slot i */
#define BK_NAME_MAX       40u /* bytes including the terminating NUL */
#define BK_CACHE_LINE     64u
#define BK_SHM_PREFIX     "/breaker."
#define BK_INSTANCE_MAX   64u

/* Modes, least to most restrictive; numeric order is restriction order. */
enum bk_mode {
	BK_ACTIVE = 0,      /* trade normally */
	BK_CAUTIOUS = 1,    /* new orders at a reduced size limit */
	BK_REDUCE_ONLY = 2, /* cancels and position-reducing orders only */
	BK_HALTED = 3,      /* no new orders or modifications; cancel working orders */
};

/*
 * A scope's published state word: mode in bits 0-7, the winning latch's
 * reason code in bits 8-15, the scope holding that latch in bits 16-31 (0:
 * the scope itself; g + 1: group slot g, in a strategy's word folded by the
 * daemon), its actor uid in bits 32-63. One 64-bit word so that mode, reason
 * and holder are always read together.
 */
#define BK_STATE_MODE(w)   ((unsigned)((w)&0xffu))
#define BK_STATE_REASON(w) ((unsigned)(((w) >> 8) & 0xffu))
#define BK_STATE_HOLDER(w) ((unsigned)(((w) >> 16) & 0xffffu))
#define BK_STATE_UID(w)    ((uint32_t)((w) >> 32))
#define BK_STATE_PACK(mode, reason, uid)                                                 \
	((uint64_t)(mode) | ((uint64_t)(reason) << 8) | ((uint64_t)(uid) << 32))
#define BK_STATE_PACK_HELD(mode, reason, holder, uid)                                    \
	(BK_STATE_PACK(mode, reason, uid) | ((uint64_t)((holder)&0xffffu) << 16))

/* One scope (global or a strategy), exactly one cache line. */
struct bk_shm_scope {
	BK_ATOMIC(uint64_t) state;   /* 0: packed mode | reason | uid */
	BK_ATOMIC(uint32_t) seq;     /* 8: seqlock over since_ns/latches; odd = writing */
	BK_ATOMIC(uint32_t) latches; /* 12: bit n set = latch with reason code n active */
	BK_ATOMIC(uint64_t)
	since_ns;               /* 16: CLOCK_REALTIME ns the winning latch was set */
	char name[BK_NAME_MAX]; /* 24: NUL-terminated; "" for global */
};

/* Cache line 0: written once at creation (strategy_count grows, rarely). */
struct bk_shm_header {
	uint64_t magic;                     /* 0 */
	BK_ATOMIC(uint32_t) layout_version; /* 8: 0 = not ready; stored last */
	uint32_t header_size;               /* 12: bytes before the strategy table */
	uint64_t segment_size;              /* 16 */
	uint32_t strategy_capacity;         /* 24 */
	uint32_t strategy_entry_size;       /* 28 */
	uint32_t strategy_table_offset;     /* 32 */
	uint32_t daemon_pid;                /* 36 */
	uint64_t tick_period_ns;            /* 40 */
	uint64_t heartbeat_bound_ns;        /* 48: daemon's advice for bk_check_live */
	BK_ATOMIC(uint32_t) strategy_count; /* 56: slots [0, count) are in use */
	BK_ATOMIC(uint32_t) group_count;    /* 60: group slots [0, count) are in use */
};

/*
 * A limits table entry (layout 2): what the breaker allows an engine to
 * trade, under its own seqlock. Doubles are IEEE-754 bit patterns in 64-bit
 * words. A flag bit clear means "no such limit".
 */
#define BK_LIMIT_SIZE_FACTOR  0x1u /* size_factor is set */
#define BK_LIMIT_MAX_QTY      0x2u /* max_qty is set */
#define BK_LIMIT_MAX_NOTIONAL 0x4u /* max_notional is set */
struct bk_shm_limits {
	BK_ATOMIC(uint32_t) seq;          /* 0: seqlock; odd while writing */
	BK_ATOMIC(uint32_t) flags;        /* 4: BK_LIMIT_* */
	BK_ATOMIC(uint64_t) size_factor;  /* 8: f64, multiply the engine's size */
	BK_ATOMIC(uint64_t) max_qty;      /* 16: f64, max order quantity */
	BK_ATOMIC(uint64_t) max_notional; /* 24: f64, max order notional */
};

struct bk_shm {
	struct bk_shm_header hdr;         /* line 0, offset 0 */
	BK_ATOMIC(uint64_t) heartbeat_ns; /* line 1, offset 64 */
	/*
	 * 72-127: the audit log's durable head, for breakerd itself (a restarted
	 * daemon and `breaker audit --verify` compare the log with it). Engines
	 * ignore it. Under a seqlock (audit_lock odd while written); 0 before a
	 * daemon wrote it (a segment made by an older breakerd).
	 */
	BK_ATOMIC(uint32_t) audit_lock;    /* 72 */
	uint32_t audit_reserved;           /* 76 */
	BK_ATOMIC(uint64_t) audit_seq;     /* 80: last durable audit seq */
	BK_ATOMIC(uint64_t) audit_end;     /* 88: log size after it */
	BK_ATOMIC(uint64_t) audit_hash[4]; /* 96: SHA-256 of that record */
	BK_ATOMIC(uint32_t) change_seq;    /* line 2, offset 128: futex word */
	uint32_t pad2;                     /* 132 */
	/* layout 2: where the group and limits tables are (written at creation) */
	uint32_t group_capacity;      /* 136: BK_MAX_GROUPS */
	uint32_t group_entry_size;    /* 140: 64 */
	uint32_t group_table_offset;  /* 144 */
	uint32_t limits_table_offset; /* 148 */
	uint32_t limits_entry_size;   /* 152: 32 */
	uint32_t pad3;                /* 156 */
	/* firm-wide words (mirrored from etcd by breakerd); 0 when unused */
	BK_ATOMIC(uint64_t) valid_until_ns; /* 160: CLOCK_MONOTONIC; 0 = not used */
	BK_ATOMIC(uint64_t) firm_revision;  /* 168: last applied etcd revision */
	BK_ATOMIC(uint64_t)
	firm_contact_ns;            /* 176: CLOCK_MONOTONIC, last quorum contact */
	uint64_t pad4;              /* 184 */
	struct bk_shm_scope global; /* line 3, offset 192 */
	struct bk_shm_scope strategies[BK_MAX_STRATEGIES]; /* offset 256 */
	struct bk_shm_scope groups[BK_MAX_GROUPS];         /* offset 262400 */
	struct bk_shm_limits limits[BK_LIMITS_ENTRIES];    /* offset 278784 */
};

#define BK_SHM_SIZE sizeof(struct bk_shm)

/*
 * Every offset and size docs/shm-layout.md gives, checked by the compiler of
 * every engine that includes this header (tests/test_layout.c checks the page
 * against these): a layout change that misses the page, or a compiler that
 * lays the structs out differently, does not build.
 */
#ifdef __cplusplus
#define BK_LAYOUT_ASSERT(c, what) static_assert(c, what)
#else
#define BK_LAYOUT_ASSERT(c, what) _Static_assert(c, what)
#endif
#define BK_LAYOUT_AT(type, member, off, size)                                            \
	BK_LAYOUT_ASSERT(offsetof(type, member) == (off) &&                              \
	                     sizeof(((type *)0)->member) == (size),                      \
	                 #type "." #member " is at " #off ", " #size " bytes")
BK_LAYOUT_ASSERT(sizeof(BK_ATOMIC(uint32_t)) == 4 && sizeof(BK_ATOMIC(uint64_t)) == 8,
                 "atomic words are as wide as plain ones");
BK_LAYOUT_AT(struct bk_shm, hdr.magic, 0, 8);
BK_LAYOUT_AT(struct bk_shm, hdr.layout_version, 8, 4);
BK_LAYOUT_AT(struct bk_shm, hdr.header_size, 12, 4);
BK_LAYOUT_AT(struct bk_shm, hdr.segment_size, 16, 8);
BK_LAYOUT_AT(struct bk_shm, hdr.strategy_capacity, 24, 4);
BK_LAYOUT_AT(struct bk_shm, hdr.strategy_entry_size, 28, 4);
BK_LAYOUT_AT(struct bk_shm, hdr.strategy_table_offset, 32, 4);
BK_LAYOUT_AT(struct bk_shm, hdr.daemon_pid, 36, 4);
BK_LAYOUT_AT(struct bk_shm, hdr.tick_period_ns, 40, 8);
BK_LAYOUT_AT(struct bk_shm, hdr.heartbeat_bound_ns, 48, 8);
BK_LAYOUT_AT(struct bk_shm, hdr.strategy_count, 56, 4);
BK_LAYOUT_AT(struct bk_shm, hdr.group_count, 60, 4);
BK_LAYOUT_AT(struct bk_shm, heartbeat_ns, 64, 8);
BK_LAYOUT_AT(struct bk_shm, audit_lock, 72, 4);
BK_LAYOUT_AT(struct bk_shm, audit_seq, 80, 8);
BK_LAYOUT_AT(struct bk_shm, audit_end, 88, 8);
BK_LAYOUT_AT(struct bk_shm, audit_hash, 96, 32);
BK_LAYOUT_AT(struct bk_shm, change_seq, 128, 4);
BK_LAYOUT_AT(struct bk_shm, group_capacity, 136, 4);
BK_LAYOUT_AT(struct bk_shm, group_entry_size, 140, 4);
BK_LAYOUT_AT(struct bk_shm, group_table_offset, 144, 4);
BK_LAYOUT_AT(struct bk_shm, limits_table_offset, 148, 4);
BK_LAYOUT_AT(struct bk_shm, limits_entry_size, 152, 4);
BK_LAYOUT_AT(struct bk_shm, valid_until_ns, 160, 8);
BK_LAYOUT_AT(struct bk_shm, firm_revision, 168, 8);
BK_LAYOUT_AT(struct bk_shm, firm_contact_ns, 176, 8);
BK_LAYOUT_AT(struct bk_shm, global, 192, 64);
BK_LAYOUT_AT(struct bk_shm, strategies, 256, 64 * 4096);
BK_LAYOUT_AT(struct bk_shm, groups, 262400, 64 * 256);
BK_LAYOUT_AT(struct bk_shm, limits, 278784, 32 * 4097);
BK_LAYOUT_AT(struct bk_shm_scope, state, 0, 8);
BK_LAYOUT_AT(struct bk_shm_scope, seq, 8, 4);
BK_LAYOUT_AT(struct bk_shm_scope, latches, 12, 4);
BK_LAYOUT_AT(struct bk_shm_scope, since_ns, 16, 8);
BK_LAYOUT_AT(struct bk_shm_scope, name, 24, 40);
BK_LAYOUT_AT(struct bk_shm_limits, seq, 0, 4);
BK_LAYOUT_AT(struct bk_shm_limits, flags, 4, 4);
BK_LAYOUT_AT(struct bk_shm_limits, size_factor, 8, 8);
BK_LAYOUT_AT(struct bk_shm_limits, max_qty, 16, 8);
BK_LAYOUT_AT(struct bk_shm_limits, max_notional, 24, 8);
BK_LAYOUT_ASSERT(
    sizeof(struct bk_shm_header) == 64 && sizeof(struct bk_shm_scope) == 64 &&
        sizeof(struct bk_shm_limits) == 32 && sizeof(struct bk_shm) == 409888,
    "state segment: 64-byte header and scopes, 32-byte limits, 409888 bytes");

/* ---- engine API -------------------------------------------------------- */

struct bk_client {
	const struct bk_shm *shm;
	size_t size;
};

/* Which scope holds an engine's winning latch (bk_reason.scope). */
enum bk_scope_kind {
	BK_SCOPE_NONE = 0,     /* nothing holds it: ACTIVE */
	BK_SCOPE_GLOBAL = 1,   /* the global scope */
	BK_SCOPE_GROUP = 2,    /* a group the strategy belongs to */
	BK_SCOPE_STRATEGY = 3, /* the strategy itself */
};

/* Details of the winning latch, for an engine's own reject messages. */
struct bk_reason {
	enum bk_mode mode;
	unsigned reason_code; /* breaker.ReasonCode; 0 = none */
	uint32_t actor_uid;
	uint64_t since_wall_ns;
	enum bk_scope_kind scope;     /* who holds it */
	int scope_slot;               /* group or strategy slot; -1 global/none */
	char scope_name[BK_NAME_MAX]; /* "venue:XETR", the strategy, "" for global */
};

/* What the breaker lets an engine trade (bk_limits): the strictest set limits. */
struct bk_limit_values {
	unsigned flags;      /* BK_LIMIT_*: which limits below are set */
	double size_factor;  /* 1.0 when not set */
	double max_qty;      /* 0 (meaning none) when not set */
	double max_notional; /* 0 (meaning none) when not set */
};

static inline int bk_shm_name(char *buf, size_t len, const char *instance)
{
	int n;

	if (!instance || !*instance || strlen(instance) >= BK_INSTANCE_MAX ||
	    strchr(instance, '/'))
		return -EINVAL;
	n = snprintf(buf, len, "%s%s", BK_SHM_PREFIX, instance);
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

/* The environment variable naming breakerd's user (a uid or a user name). */
#define BK_DAEMON_UID_ENV "BREAKER_DAEMON_UID"
/* The service user tools/breakerd.service runs breakerd as; only root makes users. */
#define BK_DAEMON_USER_DEFAULT "breaker"
/* bk_client_attach_as()'s "no uid given": see bk_client_trust_owner() */
#define BK_DAEMON_UID_DEFAULT (-1L)

/*
 * May a segment with this owner and mode be believed? Nobody but its owner
 * may write it, and the owner is root or the daemon's uid: daemon_uid if
 * >= 0, else $BREAKER_DAEMON_UID if set, else the system user "breaker" (the
 * service unit's) or our own uid (a developer's daemon). 0, -EPERM (not the
 * daemon's), or -EINVAL for a $BREAKER_DAEMON_UID that names no user (fail
 * closed).
 */
static inline int bk_client_trust_owner(unsigned long owner, unsigned long mode,
                                        long daemon_uid)
{
	const char *env;
	char *end;

	if (mode & (unsigned long)(S_IWGRP | S_IWOTH))
		return -EPERM;
	/* a setting that names no user fails closed, whoever owns the segment */
	if (daemon_uid < 0 && (env = getenv(BK_DAEMON_UID_ENV)) != NULL && *env) {
		errno = 0;
		daemon_uid = (long)strtoul(env, &end, 10);
		if (errno || *end || *env == '-' || *env < '0' || *env > '9') {
			struct passwd *pw = getpwnam(env);
			if (!pw)
				return -EINVAL;
			daemon_uid = (long)pw->pw_uid;
		}
	}
	if (owner == 0)
		return 0; /* root can write any segment anyway */
	if (daemon_uid >= 0)
		return (long)owner == daemon_uid ? 0 : -EPERM;
	if (owner == (unsigned long)geteuid())
		return 0;
	{
		struct passwd *pw = getpwnam(BK_DAEMON_USER_DEFAULT);
		return pw && (unsigned long)pw->pw_uid == owner ? 0 : -EPERM;
	}
}

/*
 * Map the instance's segment read-only, if it is the daemon's (daemon_uid:
 * as bk_client_trust_owner). Returns 0, -EAGAIN while the daemon is still
 * creating it, -EPROTO for a foreign file or unknown layout, -EPERM for a
 * segment someone else made or could write (treat it as no daemon: HALTED),
 * or another negative errno. The kernel refuses writes through this mapping.
 */
static inline int bk_client_attach_as(struct bk_client *c, const char *instance,
                                      long daemon_uid)
{
	char name[BK_INSTANCE_MAX + 16];
	struct stat st;
	void *p;
	int fd, err;

	c->shm = NULL;
	c->size = 0;
	err = bk_shm_name(name, sizeof(name), instance);
	if (err)
		return err;
	fd = shm_open(name, O_RDONLY | BK_O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	/* the fd, not the name: what we map is what we checked. A second name
	 * is a hard link (another instance's segment, say): not ours. */
	if ((err = bk_client_trust_owner(st.st_uid, st.st_mode, daemon_uid)) < 0 ||
	    (st.st_nlink != 1 && (err = -EPERM))) {
		close(fd);
		return err;
	}
	if ((size_t)st.st_size < BK_SHM_SIZE) {
		close(fd);
		return st.st_size == 0 ? -EAGAIN : -EPROTO;
	}
	p = mmap(NULL, BK_SHM_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	err = errno ? -errno : -EIO;
	close(fd);
	if (p == MAP_FAILED)
		return err;
	c->shm = (const struct bk_shm *)p;
	c->size = BK_SHM_SIZE;
	if (BK_LOAD_ACQ(&c->shm->hdr.layout_version) == 0)
		err = -EAGAIN;
	else if (c->shm->hdr.magic != BK_SHM_MAGIC ||
	         BK_LOAD_RLX(&c->shm->hdr.layout_version) != BK_LAYOUT_VERSION ||
	         c->shm->hdr.segment_size != BK_SHM_SIZE)
		err = -EPROTO;
	else
		return 0;
	munmap(p, BK_SHM_SIZE);
	c->shm = NULL;
	c->size = 0;
	return err;
}

/* bk_client_attach_as(c, instance, BK_DAEMON_UID_DEFAULT). */
static inline int bk_client_attach(struct bk_client *c, const char *instance)
{
	return bk_client_attach_as(c, instance, BK_DAEMON_UID_DEFAULT);
}

static inline void bk_client_detach(struct bk_client *c)
{
	if (c->shm)
		munmap((void *)c->shm, c->size);
	c->shm = NULL;
	c->size = 0;
}

/*
 * A slot's name, copied under its seqlock (a rename or an unregister
 * rewrites it; docs/shm-layout.md): 0 if it would not settle.
 */
static inline int bk_client_slot_name(const struct bk_client *c, uint32_t i,
                                      char out[BK_NAME_MAX])
{
	const struct bk_shm_scope *s = &c->shm->strategies[i];

	for (int tries = 0; tries < 1000; tries++) {
		uint32_t q = BK_LOAD_ACQ(&s->seq);

		memcpy(out, (const char *)s->name, BK_NAME_MAX);
		BK_FENCE_ACQ();
		if (!(q & 1u) && q == BK_LOAD_RLX(&s->seq)) {
			out[BK_NAME_MAX - 1] = '\0';
			return 1;
		}
	}
	return 0;
}

/* Slot index of a registered strategy, or -ENOENT. Not for the hot path. */
static inline int bk_client_resolve(const struct bk_client *c, const char *strategy)
{
	uint32_t i, n = BK_LOAD_ACQ(&c->shm->hdr.strategy_count);
	char name[BK_NAME_MAX];

	if (n > BK_MAX_STRATEGIES)
		n = BK_MAX_STRATEGIES;
	for (i = 0; i < n; i++)
		if (bk_client_slot_name(c, i, name) &&
		    strncmp(name, strategy, BK_NAME_MAX) == 0)
			return (int)i;
	return -ENOENT;
}

static inline enum bk_mode bk_mode_clamp(unsigned m)
{
	return m > BK_HALTED ? BK_HALTED : (enum bk_mode)m;
}

#define BK_GLOBAL_ONLY (-1) /* bk_check's slot for "the global scope alone" */

/*
 * Effective mode for a strategy slot (or BK_GLOBAL_ONLY): the most
 * restrictive of global and the strategy. Any other out-of-range slot, such
 * as an unchecked -ENOENT from bk_client_resolve, answers HALTED.
 */
static inline enum bk_mode bk_check(const struct bk_client *c, int slot)
{
	unsigned g = BK_STATE_MODE(BK_LOAD_ACQ(&c->shm->global.state));
	unsigned s = 0;

	if (slot >= (int)BK_MAX_STRATEGIES || slot < BK_GLOBAL_ONLY)
		return BK_HALTED;
	if (slot >= 0)
		s = BK_STATE_MODE(BK_LOAD_ACQ(&c->shm->strategies[slot].state));
	return bk_mode_clamp(g > s ? g : s);
}

/*
 * bk_check() that fails closed: HALTED when the layout is unknown or the
 * daemon's heartbeat (0 after a clean stop) is older than max_age_ns at the
 * caller's CLOCK_MONOTONIC now, or more than max_age_ns ahead of it (a
 * daemon on another clock, e.g. in another time namespace: its heartbeat
 * proves nothing here). max_age_ns 0 takes the daemon's advice. In
 * firm-wide mode ([cluster]) also HALTED past valid_until_ns: the daemon's
 * last proven etcd quorum contact + T2, so a stuck breakerd fails closed too.
 */
static inline enum bk_mode bk_check_live(const struct bk_client *c, int slot,
                                         uint64_t now_mono_ns, uint64_t max_age_ns)
{
	uint64_t hb = BK_LOAD_ACQ(&c->shm->heartbeat_ns);
	uint64_t vu = BK_LOAD_ACQ(&c->shm->valid_until_ns);

	if (BK_LOAD_RLX(&c->shm->hdr.layout_version) != BK_LAYOUT_VERSION)
		return BK_HALTED;
	if (max_age_ns == 0)
		max_age_ns = c->shm->hdr.heartbeat_bound_ns;
	if (hb == 0 || (now_mono_ns > hb && now_mono_ns - hb > max_age_ns) ||
	    (hb > now_mono_ns && hb - now_mono_ns > max_age_ns))
		return BK_HALTED;
	/* firm-wide mode: no proven quorum contact for T2 (0: not used) */
	if (vu != 0 && now_mono_ns > vu)
		return BK_HALTED;
	return bk_check(c, slot);
}

static inline uint64_t bk_now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(BK_CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The change sequence: moves on every published state change. */
static inline uint32_t bk_change_seq(const struct bk_client *c)
{
	return BK_LOAD_ACQ(&c->shm->change_seq);
}

/*
 * Sleep until the change sequence differs from seen_seq, or timeout (NULL:
 * forever). Returns 0 on a change, -ETIMEDOUT, or -EINTR. Plain (shared)
 * FUTEX_WAIT, because the waker is another process.
 */
static inline int bk_wait_change(const struct bk_client *c, uint32_t seen_seq,
                                 const struct timespec *timeout)
{
	long r;

	if (bk_change_seq(c) != seen_seq)
		return 0;
	r = syscall(SYS_futex, (const void *)&c->shm->change_seq, FUTEX_WAIT, seen_seq,
	            timeout, NULL, 0);
	if (r == 0 || errno == EAGAIN)
		return bk_change_seq(c) != seen_seq ? 0 : -EINTR;
	return -errno;
}

/*
 * Winning latch of the effective scope for a slot (slot < 0: global), read
 * under the scope's seqlock so that time and reason match, and who holds it:
 * global, a group the strategy belongs to (the holder bits of its folded
 * word; scope_name "venue:XETR"), or the strategy itself.
 */
static inline void bk_read_reason(const struct bk_client *c, int slot,
                                  struct bk_reason *out)
{
	const struct bk_shm_scope *g = &c->shm->global, *s = NULL, *w;
	uint64_t gw, sw = 0;
	uint32_t q;
	unsigned h;

	if (slot >= 0 && slot < (int)BK_MAX_STRATEGIES)
		s = &c->shm->strategies[slot];
	gw = BK_LOAD_ACQ(&g->state);
	if (s)
		sw = BK_LOAD_ACQ(&s->state);
	w = (s && BK_STATE_MODE(sw) > BK_STATE_MODE(gw)) ? s : g;
	/* Bounded: a writer that died mid-update must not hang the engine. */
	for (int tries = 0;; tries++) {
		q = BK_LOAD_ACQ(&w->seq);
		out->since_wall_ns = BK_LOAD_RLX(&w->since_ns);
		gw = BK_LOAD_RLX(&w->state);
		BK_FENCE_ACQ();
		if (!(q & 1u) && q == BK_LOAD_RLX(&w->seq))
			break;
		if (tries > 10000) {
			gw = BK_LOAD_ACQ(&w->state); /* the word alone is always whole */
			out->since_wall_ns = 0;
			break;
		}
	}
	out->mode = bk_mode_clamp(BK_STATE_MODE(gw));
	out->reason_code = BK_STATE_REASON(gw);
	out->actor_uid = BK_STATE_UID(gw);
	/* the holder bits name the group whose latch the daemon folded in */
	h = BK_STATE_HOLDER(gw);
	out->scope_slot = -1;
	out->scope_name[0] = '\0';
	if (BK_STATE_MODE(gw) == BK_ACTIVE) {
		out->scope = BK_SCOPE_NONE;
	} else if (w == g) {
		out->scope = BK_SCOPE_GLOBAL;
	} else if (h >= 1 && h <= BK_MAX_GROUPS) {
		out->scope = BK_SCOPE_GROUP;
		out->scope_slot = (int)h - 1;
		memcpy(out->scope_name, c->shm->groups[h - 1].name, BK_NAME_MAX - 1);
	} else {
		out->scope = BK_SCOPE_STRATEGY;
		out->scope_slot = slot;
		memcpy(out->scope_name, s->name, BK_NAME_MAX - 1);
	}
	out->scope_name[BK_NAME_MAX - 1] = '\0';
}

/* One limits entry under its seqlock; -EBUSY if a writer never finished. */
static inline int bk_limits_entry(const struct bk_shm_limits *e,
                                  struct bk_limit_values *out)
{
	uint32_t q;
	uint64_t sf, mq, mn;

	for (int tries = 0; tries <= 10000; tries++) {
		q = BK_LOAD_ACQ(&e->seq);
		out->flags = BK_LOAD_RLX(&e->flags);
		sf = BK_LOAD_RLX(&e->size_factor);
		mq = BK_LOAD_RLX(&e->max_qty);
		mn = BK_LOAD_RLX(&e->max_notional);
		BK_FENCE_ACQ();
		if (!(q & 1u) && q == BK_LOAD_RLX(&e->seq)) {
			memcpy(&out->size_factor, &sf, sizeof(sf));
			memcpy(&out->max_qty, &mq, sizeof(mq));
			memcpy(&out->max_notional, &mn, sizeof(mn));
			return 0;
		}
	}
	return -EBUSY;
}

/*
 * The limits for a strategy slot (or BK_GLOBAL_ONLY): the strictest of the
 * global entry and the slot's (which the daemon already folded from the
 * strategy and its groups). Not for the per-order hot path: cache it and
 * re-read when bk_change_seq() moves. Returns 0, or -EINVAL (bad slot) /
 * -EBUSY (an entry never settled): then size_factor is 0 (fail closed: no
 * new size) and every flag is set.
 */
static inline int bk_limits(const struct bk_client *c, int slot,
                            struct bk_limit_values *out)
{
	struct bk_limit_values e[2];
	int n = slot >= 0 ? 2 : 1, rv = 0;

	out->flags = 0;
	out->size_factor = 1.0;
	out->max_qty = 0;
	out->max_notional = 0;
	if (slot >= (int)BK_MAX_STRATEGIES || slot < BK_GLOBAL_ONLY)
		rv = -EINVAL;
	for (int i = 0; i < n && !rv; i++)
		rv = bk_limits_entry(&c->shm->limits[i ? 1 + slot : 0], &e[i]);
	if (rv) {
		out->flags =
		    BK_LIMIT_SIZE_FACTOR | BK_LIMIT_MAX_QTY | BK_LIMIT_MAX_NOTIONAL;
		out->size_factor = 0;
		return rv;
	}
	for (int i = 0; i < n; i++) {
		/* a NaN or negative limit is no limit a trader meant: the strictest */
		if (e[i].flags & BK_LIMIT_SIZE_FACTOR) {
			double f = e[i].size_factor >= 0 ? e[i].size_factor : 0;
			if (!(out->flags & BK_LIMIT_SIZE_FACTOR) || f < out->size_factor)
				out->size_factor = f;
		}
		if (e[i].flags & BK_LIMIT_MAX_QTY) {
			double f = e[i].max_qty >= 0 ? e[i].max_qty : 0;
			if (!(out->flags & BK_LIMIT_MAX_QTY) || f < out->max_qty)
				out->max_qty = f;
		}
		if (e[i].flags & BK_LIMIT_MAX_NOTIONAL) {
			double f = e[i].max_notional >= 0 ? e[i].max_notional : 0;
			if (!(out->flags & BK_LIMIT_MAX_NOTIONAL) ||
			    f < out->max_notional)
				out->max_notional = f;
		}
		out->flags |= e[i].flags & (BK_LIMIT_SIZE_FACTOR | BK_LIMIT_MAX_QTY |
		                            BK_LIMIT_MAX_NOTIONAL);
	}
	return 0;
}

static inline const char *bk_mode_str(enum bk_mode m)
{
	switch (m) {
	case BK_ACTIVE:
		return "ACTIVE";
	case BK_CAUTIOUS:
		return "CAUTIOUS";
	case BK_REDUCE_ONLY:
		return "REDUCE_ONLY";
	case BK_HALTED:
		return "HALTED";
	}
	return "HALTED";
}

/* ---- telemetry (engines write, the daemon reads every tick) ----------- */

/*
 * A second segment, /breaker.<instance>.tel, that engines map read-write.
 * One slot per strategy, same index as the state segment's strategy table,
 * with ONE writing engine per slot (single writer: no locks, no atomics
 * beyond plain loads and release stores). Counters are cumulative 64-bit
 * words; the money gauges that must agree with each other (fills, cash,
 * fees, balance, position, gross, pnl) sit on their own cache line under a
 * seqlock so the daemon never reads half of a fill. Doubles are stored as
 * their IEEE-754 bit pattern in 64-bit words.
 */
#define BK_TEL_MAGIC   0x313030304c455442ull /* "BTEL0001" */
#define BK_TEL_VERSION 2u /* 2: 256-byte slots (orders, market data, session) */
#define BK_TEL_SUFFIX  ".tel"

struct bk_tel_slot {
	/* line 0: counters and liveness, each word written by the engine alone */
	BK_ATOMIC(uint64_t) orders;       /* 0: orders sent */
	BK_ATOMIC(uint64_t) rejects;      /* 8: orders rejected by the venue */
	BK_ATOMIC(uint64_t) cancels;      /* 16 */
	BK_ATOMIC(uint64_t) heartbeat_ns; /* 24: engine's CLOCK_MONOTONIC; 0 = never */
	BK_ATOMIC(uint32_t) ack_seq;      /* 32: change_seq the engine has acted on */
	BK_ATOMIC(uint32_t) pid;          /* 36: the writing engine */
	BK_ATOMIC(uint64_t) ack_ns;       /* 40: CLOCK_MONOTONIC of that ack */
	/* the opening-balance statement, written under gseq with the money */
	BK_ATOMIC(uint64_t) opening_base;  /* 48: f64, balance - (fill_cash - fees) */
	BK_ATOMIC(uint64_t) opening_fills; /* 56: fill count at the statement */
	/* line 1: money, under gseq */
	BK_ATOMIC(uint32_t) gseq;        /* 64: seqlock; odd while writing */
	BK_ATOMIC(uint32_t) opening_seq; /* 68: statements made; 0 = never */
	BK_ATOMIC(uint64_t) fills;       /* 72: fill count */
	BK_ATOMIC(uint64_t) fill_cash;   /* 80: f64, cumulative signed cash from fills */
	BK_ATOMIC(uint64_t) fees;        /* 88: f64, cumulative fees paid */
	BK_ATOMIC(uint64_t) balance;     /* 96: f64, cash balance */
	BK_ATOMIC(uint64_t) position;    /* 104: f64, net position, notional */
	BK_ATOMIC(uint64_t) gross;       /* 112: f64, gross exposure, notional */
	BK_ATOMIC(uint64_t) pnl;         /* 120: f64, realized + unrealized */
	/*
	 * line 2 (version 2): the engine's view of the venue. Each value word
	 * is written before its time word (release), so a reader that sees the
	 * time sees the value written with it. A time of 0 = never reported:
	 * unknown, never "flat" and never "fresh".
	 */
	BK_ATOMIC(uint64_t) working_orders; /* 128: orders working at the venue now */
	BK_ATOMIC(uint64_t) working_ns;     /* 136: CLOCK_MONOTONIC of that count */
	BK_ATOMIC(uint64_t) md_last_ns;     /* 144: CLOCK_MONOTONIC of the last md tick */
	BK_ATOMIC(uint32_t) session;        /* 152: BK_SESSION_*; 0 = never reported */
	uint32_t reserved2;                 /* 156 */
	BK_ATOMIC(uint64_t) session_ns;     /* 160: CLOCK_MONOTONIC of that report */
	uint64_t reserved3[11];             /* 168: zero */
};

/* slot.session: the engine's order-entry session with its venue */
#define BK_SESSION_UNKNOWN 0u
#define BK_SESSION_UP      1u
#define BK_SESSION_DOWN    2u

struct bk_tel_header {
	uint64_t magic;              /* 0 */
	BK_ATOMIC(uint32_t) version; /* 8: 0 = not ready; stored last */
	uint32_t slot_size;          /* 12 */
	uint32_t capacity;           /* 16 */
	uint32_t reserved0;          /* 20 */
	uint64_t segment_size;       /* 24 */
	uint64_t reserved1[4];       /* 32 */
};

struct bk_tel {
	struct bk_tel_header hdr;                    /* offset 0 */
	struct bk_tel_slot slots[BK_MAX_STRATEGIES]; /* offset 64 */
};

#define BK_TEL_SIZE sizeof(struct bk_tel)

BK_LAYOUT_AT(struct bk_tel, hdr.magic, 0, 8);
BK_LAYOUT_AT(struct bk_tel, hdr.version, 8, 4);
BK_LAYOUT_AT(struct bk_tel, hdr.slot_size, 12, 4);
BK_LAYOUT_AT(struct bk_tel, hdr.capacity, 16, 4);
BK_LAYOUT_AT(struct bk_tel, hdr.segment_size, 24, 8);
BK_LAYOUT_AT(struct bk_tel, slots, 64, 256 * 4096);
BK_LAYOUT_AT(struct bk_tel_slot, orders, 0, 8);
BK_LAYOUT_AT(struct bk_tel_slot, rejects, 8, 8);
BK_LAYOUT_AT(struct bk_tel_slot, cancels, 16, 8);
BK_LAYOUT_AT(struct bk_tel_slot, heartbeat_ns, 24, 8);
BK_LAYOUT_AT(struct bk_tel_slot, ack_seq, 32, 4);
BK_LAYOUT_AT(struct bk_tel_slot, pid, 36, 4);
BK_LAYOUT_AT(struct bk_tel_slot, ack_ns, 40, 8);
BK_LAYOUT_AT(struct bk_tel_slot, opening_base, 48, 8);
BK_LAYOUT_AT(struct bk_tel_slot, opening_fills, 56, 8);
BK_LAYOUT_AT(struct bk_tel_slot, gseq, 64, 4);
BK_LAYOUT_AT(struct bk_tel_slot, opening_seq, 68, 4);
BK_LAYOUT_AT(struct bk_tel_slot, fills, 72, 8);
BK_LAYOUT_AT(struct bk_tel_slot, fill_cash, 80, 8);
BK_LAYOUT_AT(struct bk_tel_slot, fees, 88, 8);
BK_LAYOUT_AT(struct bk_tel_slot, balance, 96, 8);
BK_LAYOUT_AT(struct bk_tel_slot, position, 104, 8);
BK_LAYOUT_AT(struct bk_tel_slot, gross, 112, 8);
BK_LAYOUT_AT(struct bk_tel_slot, pnl, 120, 8);
BK_LAYOUT_AT(struct bk_tel_slot, working_orders, 128, 8);
BK_LAYOUT_AT(struct bk_tel_slot, working_ns, 136, 8);
BK_LAYOUT_AT(struct bk_tel_slot, md_last_ns, 144, 8);
BK_LAYOUT_AT(struct bk_tel_slot, session, 152, 4);
BK_LAYOUT_AT(struct bk_tel_slot, session_ns, 160, 8);
BK_LAYOUT_ASSERT(sizeof(struct bk_tel_slot) == 256 && sizeof(struct bk_tel) == 1048640,
                 "telemetry segment: 256-byte slots, 1048640 bytes");

struct bk_tel_client {
	struct bk_tel *tel;
};

static inline uint64_t bk_f2u(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	return u;
}

static inline double bk_u2f(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof(d));
	return d;
}

/*
 * Map the telemetry segment read-write, if breakerd made it (daemon_uid: as
 * bk_client_trust_owner; the group may write it, others may not). 0,
 * -EAGAIN (not ready), -EPROTO, -EPERM (another user's, or others may
 * write it: numbers written there would never reach the rules), -errno.
 */
static inline int bk_tel_attach_as(struct bk_tel_client *t, const char *instance,
                                   long daemon_uid)
{
	char name[BK_INSTANCE_MAX + 24];
	void *p;
	int fd, err;

	t->tel = NULL;
	if ((err = bk_shm_name(name, sizeof(name) - 4, instance)) < 0)
		return err;
	strcat(name, BK_TEL_SUFFIX);
	fd = shm_open(name, O_RDWR | BK_O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	{
		/* mapping past a short file's end would SIGBUS on first touch */
		struct stat st;
		if (fstat(fd, &st) < 0) {
			err = -errno;
			close(fd);
			return err;
		}
		/* the fd, not the name: what we map is what we checked */
		if ((err = bk_client_trust_owner(st.st_uid,
		                                 st.st_mode & ~(unsigned long)S_IWGRP,
		                                 daemon_uid)) < 0 ||
		    (st.st_nlink != 1 && (err = -EPERM))) {
			close(fd);
			return err;
		}
		if ((size_t)st.st_size != BK_TEL_SIZE) {
			close(fd);
			return st.st_size == 0 ? -EAGAIN : -EPROTO;
		}
	}
	p = mmap(NULL, BK_TEL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = -errno;
	close(fd);
	if (p == MAP_FAILED)
		return err;
	t->tel = (struct bk_tel *)p;
	if (BK_LOAD_ACQ(&t->tel->hdr.version) == 0)
		err = -EAGAIN;
	else if (t->tel->hdr.magic != BK_TEL_MAGIC ||
	         BK_LOAD_RLX(&t->tel->hdr.version) != BK_TEL_VERSION ||
	         t->tel->hdr.segment_size != BK_TEL_SIZE)
		err = -EPROTO;
	else
		return 0;
	munmap(p, BK_TEL_SIZE);
	t->tel = NULL;
	return err;
}

/* bk_tel_attach_as(t, instance, BK_DAEMON_UID_DEFAULT). */
static inline int bk_tel_attach(struct bk_tel_client *t, const char *instance)
{
	return bk_tel_attach_as(t, instance, BK_DAEMON_UID_DEFAULT);
}

static inline void bk_tel_detach(struct bk_tel_client *t)
{
	if (t->tel)
		munmap((void *)t->tel, BK_TEL_SIZE);
	t->tel = NULL;
}

#ifdef __cplusplus
#define BK_STORE_REL(p, v) (p)->store((v), std::memory_order_release)
#define BK_STORE_RLX(p, v) (p)->store((v), std::memory_order_relaxed)
#define BK_FENCE_REL()     std::atomic_thread_fence(std::memory_order_release)
#else
#define BK_STORE_REL(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define BK_STORE_RLX(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define BK_FENCE_REL()     atomic_thread_fence(memory_order_release)
#endif

/* Single writer: a load and a release store, no locked instruction. */
static inline void bk_tel_add(BK_ATOMIC(uint64_t) * w, uint64_t n)
{
	BK_STORE_REL(w, BK_LOAD_RLX(w) + n);
}

static inline struct bk_tel_slot *bk_tel_slot_at(struct bk_tel_client *t, int slot)
{
	return (slot >= 0 && slot < (int)BK_MAX_STRATEGIES) ? &t->tel->slots[slot] : NULL;
}

static inline void bk_report_order(struct bk_tel_client *t, int slot, uint64_t n)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	if (s)
		bk_tel_add(&s->orders, n);
}

static inline void bk_report_reject(struct bk_tel_client *t, int slot, uint64_t n)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	if (s)
		bk_tel_add(&s->rejects, n);
}

static inline void bk_report_cancel(struct bk_tel_client *t, int slot, uint64_t n)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	if (s)
		bk_tel_add(&s->cancels, n);
}

/* The engine is alive; call at least every few ms. */
static inline void bk_report_heartbeat(struct bk_tel_client *t, int slot,
                                       uint64_t now_mono_ns)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	if (!s)
		return;
	if (BK_LOAD_RLX(&s->pid) == 0)
		BK_STORE_RLX(&s->pid, (uint32_t)getpid());
	BK_STORE_REL(&s->heartbeat_ns, now_mono_ns);
}

/* The engine has acted on (e.g. cancelled its orders for) change_seq seq. */
static inline void bk_report_ack(struct bk_tel_client *t, int slot, uint32_t seq,
                                 uint64_t now_mono_ns)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	if (!s)
		return;
	BK_STORE_RLX(&s->ack_ns, now_mono_ns);
	BK_STORE_REL(&s->ack_seq, seq);
}

static inline void bk_tel_wbegin(struct bk_tel_slot *s)
{
	/* to the next odd value, even if a writer died mid-update and left it odd */
	BK_STORE_RLX(&s->gseq, BK_LOAD_RLX(&s->gseq) | 1u);
	BK_FENCE_REL();
}

static inline void bk_tel_wend(struct bk_tel_slot *s)
{
	BK_STORE_REL(&s->gseq, BK_LOAD_RLX(&s->gseq) + 1);
}

/*
 * A fill: signed cash (negative when buying), the fee paid, and the balance
 * and net position after it, published together. Balance conservation says
 * balance moves only by fill cash minus fees.
 */
static inline void bk_report_fill(struct bk_tel_client *t, int slot, double cash,
                                  double fee, double balance, double position)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	if (!s)
		return;
	bk_tel_wbegin(s);
	BK_STORE_RLX(&s->fills, BK_LOAD_RLX(&s->fills) + 1);
	BK_STORE_RLX(&s->fill_cash, bk_f2u(bk_u2f(BK_LOAD_RLX(&s->fill_cash)) + cash));
	BK_STORE_RLX(&s->fees, bk_f2u(bk_u2f(BK_LOAD_RLX(&s->fees)) + fee));
	BK_STORE_RLX(&s->balance, bk_f2u(balance));
	BK_STORE_RLX(&s->position, bk_f2u(position));
	bk_tel_wend(s);
}

/* Marks: net position, gross exposure and PnL (realized + unrealized). */
static inline void bk_report_marks(struct bk_tel_client *t, int slot, double position,
                                   double gross, double pnl)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	if (!s)
		return;
	bk_tel_wbegin(s);
	BK_STORE_RLX(&s->position, bk_f2u(position));
	BK_STORE_RLX(&s->gross, bk_f2u(gross));
	BK_STORE_RLX(&s->pnl, bk_f2u(pnl));
	bk_tel_wend(s);
}

/*
 * The opening balance (start of the engine, start of a trading day): from
 * here on, balance conservation expects balance == this balance plus fill
 * cash minus fees reported after this call. Published with the balance word
 * under the seqlock, with the fill count and cash folded in here, so the
 * daemon takes the base from this statement however many fills follow
 * before its next tick. Each call is a new statement (opening_seq + 1).
 */
static inline void bk_report_opening_balance(struct bk_tel_client *t, int slot,
                                             double balance)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	double cash, fees;
	if (!s)
		return;
	cash = bk_u2f(BK_LOAD_RLX(&s->fill_cash));
	fees = bk_u2f(BK_LOAD_RLX(&s->fees));
	bk_tel_wbegin(s);
	BK_STORE_RLX(&s->balance, bk_f2u(balance));
	BK_STORE_RLX(&s->opening_base, bk_f2u(balance - (cash - fees)));
	BK_STORE_RLX(&s->opening_fills, BK_LOAD_RLX(&s->fills));
	BK_STORE_RLX(&s->opening_seq, BK_LOAD_RLX(&s->opening_seq) + 1);
	bk_tel_wend(s);
}

/*
 * The cash balance alone. Before the slot's first fill it is the opening
 * balance (a statement, as bk_report_opening_balance); after it, only the
 * balance word moves, and conservation judges it: a balance correction
 * from the venue mid-day is not a new base (state one explicitly).
 */
static inline void bk_report_balance(struct bk_tel_client *t, int slot, double balance)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	if (!s)
		return;
	if (BK_LOAD_RLX(&s->fills) == 0) {
		bk_report_opening_balance(t, slot, balance);
		return;
	}
	bk_tel_wbegin(s);
	BK_STORE_RLX(&s->balance, bk_f2u(balance));
	bk_tel_wend(s);
}

/*
 * Orders working at the venue right now (the engine's own count). Report it
 * whenever it changes and again when acting on a halt, even if unchanged:
 * breaker status confirms "flat" only from a count reported after the halt.
 */
static inline void bk_report_working(struct bk_tel_client *t, int slot, uint64_t working,
                                     uint64_t now_mono_ns)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	if (!s)
		return;
	BK_STORE_RLX(&s->working_orders, working);
	BK_STORE_REL(&s->working_ns, now_mono_ns ? now_mono_ns : 1);
}

/* A market-data tick arrived (CLOCK_MONOTONIC of its receipt). */
static inline void bk_report_md_tick(struct bk_tel_client *t, int slot,
                                     uint64_t now_mono_ns)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	if (s)
		BK_STORE_REL(&s->md_last_ns, now_mono_ns ? now_mono_ns : 1);
}

/* The order-entry session with the venue went up (up != 0) or down. */
static inline void bk_report_session(struct bk_tel_client *t, int slot, int up,
                                     uint64_t now_mono_ns)
{
	struct bk_tel_slot *s = bk_tel_slot_at(t, slot);
	if (!s)
		return;
	BK_STORE_RLX(&s->session, up ? BK_SESSION_UP : BK_SESSION_DOWN);
	BK_STORE_REL(&s->session_ns, now_mono_ns ? now_mono_ns : 1);
}

#ifdef __cplusplus
}
#endif
#endif /* BREAKER_CLIENT_H */
