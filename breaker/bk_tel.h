/*
 * bk_tel - the daemon's side of the telemetry segment (layout in
 * clients/c/breaker_client.h): create or take it over, and read one slot's
 * snapshot per tick. Engines write it; the daemon only reads, except to
 * clear a slot when its strategy is registered.
 */
#ifndef BK_TEL_H
#define BK_TEL_H

#include <stddef.h>
#include <sys/types.h>

#include "bk_rules.h"
#include "breaker_client.h"

struct bk_tel_reader {
	struct bk_tel *tel;
	int fd; /* kept to notice an engine truncating the segment under us */
};

/* 0, -EPROTO (foreign or other layout; err says which) or -errno. */
int bk_tel_open(struct bk_tel_reader *r, const char *instance, mode_t mode, char *err,
                size_t errlen);
void bk_tel_close(struct bk_tel_reader *r);

/*
 * Once per tick: engines can write, so they can also truncate the segment,
 * and a read past its end is SIGBUS. If it shrank, replace it (0), else
 * -errno. A truncation between this check and the reads can still kill the
 * daemon: engines then fail closed, and the restart replaces the segment.
 */
int bk_tel_check(struct bk_tel_reader *r, const char *instance, mode_t mode);
int bk_tel_unlink(const char *instance);

/*
 * Read a slot. Counters are read word by word; the money words under the
 * slot's seqlock, with a bounded number of retries (a writer stuck mid-update
 * must not stall the tick): snap->consistent says whether they were stable.
 */
void bk_tel_read(const struct bk_tel_reader *r, int slot, struct bk_tel_snap *snap);

/* Engine acknowledgement of a slot: the change_seq acted on and when. */
void bk_tel_ack(const struct bk_tel_reader *r, int slot, uint32_t *seq, uint64_t *ns,
                uint32_t *pid);

#endif
