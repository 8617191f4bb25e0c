/*
 * bk_daemon - the daemon's one context, owned by the loop thread. Nothing
 * else in the process holds mutable state.
 */
#ifndef BK_DAEMON_H
#define BK_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <nng/nng.h>

#include "bk_audit.h"
#include "bk_config.h"
#include "bk_server.h"
#include "bk_shm.h"
#include "bk_state.h"

#define BK_PENDING_MAX 4096 /* replies waiting for their audit record; power of 2 */
#define BK_UID_CACHE   16
#define BK_NO_SCOPE    (-2)

/* A command acknowledged once its record is durable. */
struct bk_pending {
	nng_msg *reply; /* body holds the packed Reply; NULL: nobody waits */
	uint64_t seq;
	int slot;	/* the scope (BK_GLOBAL or a strategy slot) */
	bool republish; /* a resume: publish the scope once durable */
	Breaker__AuditRecord__Kind kind;
	uint8_t from_mode, to_mode;
	uint8_t reason_code;
	bool forced;
	uint32_t uid;
	uint64_t wall_ns;
};

struct bk_uid_name {
	uint32_t uid;
	char name[BK_ACTOR_NAME_MAX];
};

struct bk_daemon {
	struct bk_config cfg;
	struct bk_state state;
	struct bk_shm_writer shm;
	struct bk_audit audit;
	struct bk_server srv;
	struct bk_pending pending[BK_PENDING_MAX];
	uint32_t pend_head, pend_tail; /* [tail, head) wait for durability */
	struct bk_uid_name uid_cache[BK_UID_CACHE];
	unsigned uid_next;
	char host[64];
	int lock_fd;
	uint64_t boot_mono_ns;
	int flush_err; /* last audit flush error, 0 when the log is healthy */
	bool stop;
};

/* Handle one request from the REP socket; takes msg. */
void bk_cmd_handle(struct bk_daemon *d, nng_msg *msg);

/* True when the pending ring has room for another state-changing command. */
bool bk_cmd_can_accept(const struct bk_daemon *d);

/* The audit log reached a new durable seq: publish resumes, send acks, events. */
void bk_cmd_durable(struct bk_daemon *d);

/* An audit flush failed with -errno err: answer waiting trips, refuse resumes. */
void bk_cmd_flush_failed(struct bk_daemon *d, int err);

/* Status / ListStrategies reply content (bk_status.c); free with bk_status_free. */
void bk_status_build(struct bk_daemon *d, Breaker__Reply *rep, bool all);
void bk_status_free(Breaker__Reply *rep);

/* Republish one scope's word from the state (BK_GLOBAL or a slot). */
void bk_cmd_publish_scope(struct bk_daemon *d, int slot);

/* Stage a daemon-originated record (boot, repair, audit_corrupt). seq or -errno. */
int64_t bk_cmd_stage_system(struct bk_daemon *d, Breaker__AuditRecord *rec);

uint64_t bk_now_wall_ns(void);

#endif
