/*
 * bk_metrics - /metrics (Prometheus text exposition 0.0.4) and /healthz.
 *
 * The loop thread renders the exposition into one of two buffers allocated
 * at start, a bounded slice per tick (so that 4096 strategies never make one
 * tick long), one whole rendering every BK_METRICS_PERIOD_NS, and publishes
 * the finished buffer by an atomic index swap. nng's HTTP threads only copy
 * the published buffer, then add the few live lines that must not come from
 * a snapshot (is the loop alive?). A reader counts itself on the buffer it
 * copies, and the loop starts a rendering only into a buffer nobody copies
 * (else it tries again next tick): a copy is never torn, and it happens
 * before the next rendering into that buffer. Each buffer also carries a
 * sequence number, odd while the loop writes it, checked by the readers.
 * Nothing on the tick path allocates or locks; the counters below are plain
 * words of the loop thread. What the HTTP threads share is struct
 * bk_metrics_snap (bk_metrics_snap.h); the serving code (bk_metrics_http.c)
 * includes only that header.
 */
#ifndef BK_METRICS_H
#define BK_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_metrics_snap.h"
#include "bk_mode.h"
#include "breaker.pb-c.h"

#define BK_METRICS_PERIOD_NS (100ull * 1000 * 1000) /* a new rendering every 100 ms */
#define BK_UNFLAT_NS         (5ull * 1000 * 1000 * 1000) /* /healthz: as the alert */
#define BK_HIST_BUCKETS      14 /* finite bucket bounds; +Inf extra */
#define BK_CMD_TYPES                                                                     \
	13 /* trip resume status list register report reconcile invalid rebase group     \
	      unregister rename incident */
#define BK_CMD_INVALID    7
#define BK_CMD_REBASE     8
#define BK_CMD_GROUP      9
#define BK_CMD_UNREGISTER 10
#define BK_CMD_RENAME     11
#define BK_CMD_INCIDENT   12
#define BK_STATUS_COUNT   42 /* breaker.Status values 0..41 (not all used) */

struct bk_daemon;

/* A histogram with fixed bounds (ns): per-bucket counts, not cumulative. */
struct bk_hist {
	uint64_t bucket[BK_HIST_BUCKETS + 1]; /* the last one is +Inf */
	uint64_t count;
	uint64_t sum_ns;
};

/* Counted by the loop thread where things happen; read by the renderer. */
struct bk_counters {
	uint64_t trips[2][BK_REASON_COUNT];               /* [0] global, [1] a strategy */
	uint64_t commands[BK_CMD_TYPES][BK_STATUS_COUNT]; /* by type and reply status */
	uint64_t flush_failures;    /* audit write or fsync failed */
	uint64_t auth_refusals;     /* commands refused for want of authorisation */
	uint64_t auth_suppressed;   /* ... of which not audited one by one (rate limit) */
	uint64_t tick_overruns;     /* ticks longer than the period */
	struct bk_hist tick;        /* bk_tick's duration */
	struct bk_hist fsync;       /* audit flush: submit -> fsync done */
	struct bk_hist command;     /* a command: handling begun -> reply handed over */
	bool tel_blind;             /* no telemetry segment: rules blind */
	uint64_t config_reloads[2]; /* SIGHUP rule reloads: [0] applied, [1] refused */
	uint64_t rule_state_records; /* RULE_STATE records staged (baselines moved) */
};

struct bk_metrics {
	struct bk_metrics_snap snap; /* shared with the HTTP threads */
	/* the loop thread's rendering state */
	int stage;                      /* 0: idle (the last rendering is published) */
	uint32_t cursor;                /* next strategy slot in the stage */
	uint64_t next_ns;               /* the next rendering is due */
	uint64_t work_ns, slice_max_ns; /* this rendering, so far */
	uint64_t last_work_ns, last_slice_max_ns; /* the previous one, for /metrics */
	uint32_t count[BK_MODE_COUNT]; /* strategies by own mode, this rendering */
	unsigned global_mode;          /* global's mode, read once per rendering */
	uint32_t warnings;             /* rules at or above the first warning level */
	char warn_first[128];          /* the first of them, for /healthz */
	/* HALTED engines not confirmed flat for BK_UNFLAT_NS (bk_orders.h) */
	uint32_t unflat;
	char unflat_first[BK_NAME_MAX];
	bool overflow; /* lines dropped: the buffer was too small */
	/* audit durability, sampled at each rendering */
	uint64_t seen_durable, durable_moved_ns, pending_since_ns, stalled_ns;
	/* tick overruns over the last whole second */
	uint64_t win_start_ns, win_ticks, win_over, ticks_total, overrun_pct_x100;
};

/*
 * Allocate the buffers and, unless cfg's [metrics] listen is empty, start the
 * HTTP server. A listener that cannot start is logged and left off (0): the
 * kill switch must run without its metrics. -ENOMEM if the buffers cannot be
 * had. Call after boot (nng is not fork-safe), before the loop.
 */
int bk_metrics_start(struct bk_daemon *d);

/* Stop serving and wait for handlers in progress; before the shm is unmapped. */
void bk_metrics_stop(struct bk_daemon *d);

/* From bk_tick, every tick: render a slice when a rendering is due. */
void bk_metrics_tick(struct bk_daemon *d, uint64_t now_ns);

/* One tick took ns (bk_tick). */
void bk_metrics_tick_done(struct bk_daemon *d, uint64_t ns);

/* One audit flush took ns from submission to the fsync's completion. */
void bk_metrics_fsync_done(struct bk_daemon *d, uint64_t ns, bool ok);

/* A command was answered ns after breakerd began handling it. */
void bk_metrics_command_done(struct bk_daemon *d, uint64_t ns);

/* The commands outside the first block, in type order from BK_CMD_REBASE. */
#define BK_CMD_LATER                                                                     \
	{                                                                                \
		BREAKER__REQUEST__CMD_REBASE, BREAKER__REQUEST__CMD_GROUP,               \
		    BREAKER__REQUEST__CMD_UNREGISTER, BREAKER__REQUEST__CMD_RENAME,      \
		    BREAKER__REQUEST__CMD_INCIDENT                                       \
	}

/* Command type index from the Request's cmd_case; BK_CMD_INVALID otherwise. */
static inline unsigned bk_metrics_cmd_type(int cmd_case)
{
	static const int later[] = BK_CMD_LATER;

	for (unsigned i = 0; i < sizeof(later) / sizeof(later[0]); i++)
		if (cmd_case == later[i])
			return BK_CMD_REBASE + i;
	return cmd_case >= BREAKER__REQUEST__CMD_TRIP &&
	               cmd_case <= BREAKER__REQUEST__CMD_RECONCILE
	           ? (unsigned)(cmd_case - BREAKER__REQUEST__CMD_TRIP)
	           : BK_CMD_INVALID;
}

/*
 * For tests and benchmarks: render one whole exposition now (all slices in a
 * row) and publish it. Returns the loop time spent rendering, ns.
 */
uint64_t bk_metrics_render_all(struct bk_daemon *d, uint64_t now_ns);

/*
 * bk_metrics_health.c: sample the audit log's progress and the tick overruns
 * at a rendering, then the verdict into out ("ok", "degraded: ...",
 * "failing: ..."); returns enum bk_health. Loop thread.
 */
int bk_metrics_health(struct bk_daemon *d, struct bk_metrics *m, uint64_t now, char *out,
                      size_t len);

/* Audit records staged or in flight, not yet durable (bk_metrics_health.c). */
uint64_t bk_metrics_audit_pending(const struct bk_daemon *d);

/* bk_metrics_snap_read on the daemon's snapshot (tests, benchmarks). */
static inline long bk_metrics_read(struct bk_metrics *m, char *buf, size_t len,
                                   int *health, char *health_text, size_t health_len)
{
	return bk_metrics_snap_read(&m->snap, buf, len, health, health_text, health_len);
}

#endif
