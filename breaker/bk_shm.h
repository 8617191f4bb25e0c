/*
 * bk_shm - the daemon's (the only writer's) side of the state segment whose
 * layout clients/c/breaker_client.h defines.
 *
 * The segment is created 0644 (or the configured mode, never writable by
 * group/other) and fchmod'ed so umask cannot widen or narrow it; engines map
 * it read-only. A restarted daemon takes over an existing segment of the same
 * layout in place, so attached engines keep working; a foreign file or
 * another layout at the name is refused, never misread; a layout 1 segment
 * of ours (an older breakerd's) is halted for its readers and replaced.
 */
#ifndef BK_SHM_H
#define BK_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "breaker_client.h"

struct bk_shm_writer {
	struct bk_shm *shm;
	char name[BK_INSTANCE_MAX + 16];
	bool created; /* new segment (false: taken over from a previous daemon) */
};

struct bk_shm_params {
	const char *instance;
	mode_t mode;
	uint64_t tick_ns;
	uint64_t heartbeat_bound_ns;
};

/*
 * Create or take over the instance's segment. A new segment publishes global
 * HALTED until the daemon has replayed its log. Returns 0, or -EPROTO (foreign
 * or other-layout segment, err says which) or -errno.
 */
int bk_shm_open(struct bk_shm_writer *w, const struct bk_shm_params *p, char *err,
                size_t errlen);

/* Stop: heartbeat 0 (clean) so engines fail closed at once; unmap. */
void bk_shm_close(struct bk_shm_writer *w, bool clean);

/* Remove the segment name (tests, and --reset by an operator). */
int bk_shm_unlink(const char *instance);

/* Publish one scope (slot BK_GLOBAL = -1 for global) under its seqlock. */
void bk_shm_publish(struct bk_shm_writer *w, int slot, uint64_t state, uint32_t latches,
                    uint64_t since_ns);

/* Publish group slot g's own scope (its own latches, not folded). */
void bk_shm_publish_group(struct bk_shm_writer *w, int g, uint64_t state,
                          uint32_t latches, uint64_t since_ns);

/* Name a new group slot ("kind:value") and make it visible to readers. */
void bk_shm_add_group(struct bk_shm_writer *w, int g, const char *name);

/*
 * Write limits entry `entry` (0: global, 1 + i: strategy slot i, already
 * folded with its groups) under its seqlock. flags: BK_LIMIT_*.
 */
void bk_shm_set_limits(struct bk_shm_writer *w, int entry, uint32_t flags,
                       double size_factor, double max_qty, double max_notional);

/* Name a newly registered slot and make it visible to resolvers. */
void bk_shm_add_strategy(struct bk_shm_writer *w, int slot, const char *name);

/* Bump the change sequence and wake futex waiters: once per batch of changes. */
void bk_shm_changed(struct bk_shm_writer *w);

void bk_shm_heartbeat(struct bk_shm_writer *w, uint64_t mono_ns);

#endif
