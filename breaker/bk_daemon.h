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
#include "bk_auth.h"
#include "bk_config.h"
#include "bk_incident.h"
#include "bk_etcd.h"
#include "bk_idle.h"
#include "bk_metrics.h"
#include "bk_page.h"
#include "bk_orders.h"
#include "bk_venuewatch.h"
#include "bk_rulestate.h"
#include "bk_request.h"
#include "bk_server.h"
#include "bk_shm.h"
#include "bk_state.h"
#include "bk_group.h"
#include "bk_tail.h"
#include "bk_tel.h"
#include "bk_tickskip.h"
#include "bk_time.h"

#define BK_EVENT_REASON_MAX 2049 /* [commands] reason_max_bytes' bound, + NUL */
#define BK_PENDING_MAX      4096 /* replies waiting for their audit record; power of 2 */
#define BK_UID_CACHE        16
#define BK_NO_SCOPE         (-2)
#define BK_DEDUPE           1024 /* recent request ids, direct-mapped; power of 2 */

/* A command acknowledged once its record is durable. */
struct bk_pending {
	struct bk_route route; /* BK_ROUTE_NONE: nobody waits */
	uint8_t *reply;        /* the packed Reply (malloc), sent with route */
	size_t reply_len;
	uint64_t seq;
	int slot;       /* the scope (BK_GLOBAL or a strategy slot) */
	bool republish; /* a resume: publish the scope once durable */
	bool quiet;     /* a duplicate's ack: no event */
	Breaker__AuditRecord__Kind kind;
	uint8_t from_mode, to_mode;
	uint8_t reason_code;
	bool forced;
	bool has_modes; /* TRIP/RESUME: from/to; RECONCILE, REGISTER: none */
	uint32_t uid;
	uint64_t wall_ns;
	/* the record's own reason, whole ([commands] reason_max_bytes <= 2048):
	 * a RESUME's event carries the resumer's words, not the latch's */
	char reason[BK_EVENT_REASON_MAX];
	char cn[BK_CN_MAX];     /* a certificate caller's CN, for the event */
	char gone[BK_NAME_MAX]; /* UNREGISTER: the name its slot no longer has */
};

struct bk_uid_name {
	uint32_t uid;
	char name[BK_ACTOR_NAME_MAX];
};

/* Per strategy: the rules in force, their evaluation state, remote telemetry. */
struct bk_slot_rules {
	const struct bk_rule_cfg *rules;
	bool is_remote;       /* declared: the rules read remote, never the segment */
	char remote_from[80]; /* who sent the latest Report (bk_auth_who) */
	/* baselines as last made durable (RULE_STATE, bk_rulestate.h) */
	bool rs_base_set;
	double rs_peak, rs_base_balance;
	uint64_t rs_next_ns;
	struct bk_tel_snap remote; /* from Report messages */
	struct bk_rule_eval eval;  /* its reconciliation history: recon_hist[slot] */
};

struct bk_daemon {
	struct bk_config cfg;
	const char *config_path;   /* reread on SIGHUP for the rules */
	uint32_t hup_pid, hup_uid; /* the SIGHUP's sender (signalfd), for CONFIG */
	char rules_hash[BK_RULES_HASH_LEN]; /* of the rules in force (bk_rulestate.h) */
	struct bk_state state;
	struct bk_shm_writer shm;
	struct bk_audit audit;
	struct bk_server srv;
	struct bk_replier
	    replier; /* where answers go (bk_server_reply; tests: their own) */
	struct bk_tel_reader tel;
	struct bk_slot_rules slots[BK_MAX_STRATEGIES];
	/* per strategy, apart from slots[]: cold, 6 KiB each (bk_recon.h) */
	struct bk_recon_hist recon_hist[BK_MAX_STRATEGIES];
	/* declared at register (breaker register --telemetry remote; replayed);
	 * [strategies] remote in the config declares it too */
	bool remote_declared[BK_MAX_STRATEGIES];
	uint32_t last_trip_change_seq; /* change_seq published by the latest trip */
	uint64_t last_trip_mono_ns;
	uint64_t last_tick_ns;
	uint64_t tick_count;
	struct bk_idle idle;     /* the adaptive tick: what moved, and when */
	struct bk_tickskip skip; /* which strategies' rules a tick may leave alone */
	struct bk_pending pending[BK_PENDING_MAX];
	uint32_t pend_head, pend_tail; /* [tail, head) wait for durability */
	/* nng's REQ resends a request on reconnect: a state change is applied
	 * once. Two tables: trips (open to anyone by default) must not evict
	 * the ids of resumes, registrations, reconciliations and rebases, or a
	 * resent resume would be applied twice after a flood of trips. */
	struct bk_dedupe {
		uint64_t id;
		uint64_t seq;
		uint64_t hash; /* caller, command and payload (bk_cmd_request_hash) */
		bool hashed;   /* false: a record from before hashes; never "the same" */
	} dedupe[BK_DEDUPE], dedupe_restricted[BK_DEDUPE];
	struct bk_auth auth; /* group members, refusal rate limit, two-person rule */
	struct bk_uid_name uid_cache[BK_UID_CACHE];
	unsigned uid_next;
	char host[64];
	int lock_fd;
	uint64_t boot_mono_ns;
	int flush_err;       /* last audit flush error, 0 when the log is healthy */
	struct bk_tail tail; /* the log's durable head and identity (bk_tail.h) */
	bool stop;
	/* recent incidents, rebuilt from the log at boot (bk_incident.h) */
	struct bk_incidents incidents;
	struct bk_page_recent page_recent; /* the status page's latest events */
	/* the latest WARNING record per strategy and rule (bk_incident_log.h) */
	uint64_t warn_audit_ns[BK_MAX_STRATEGIES][BK_RULE_COUNT];
	struct bk_counters ctr;    /* for /metrics; counted where things happen */
	struct bk_metrics metrics; /* /metrics and /healthz (bk_metrics.h) */
	struct bk_etcd *etcd;      /* [cluster] firm-wide mode; NULL: single host */
	struct bk_fwd *fwd;        /* --firm commands forwarded (bk_etcd_fwd.h) */
	struct bk_orders orders;   /* cancel-all, confirmed (bk_orders.h) */
	struct bk_venues venues;   /* the venue rules (bk_venuewatch.h) */
};

/* ---- bk_cmd.c: one request, decode -> authorise -> validate -> plan -> apply -> stage
 * ---- */

/* Handle one request from any transport; answers through d->replier with
 * req->route (now or once durable). req->body is not kept. */
void bk_cmd_handle(struct bk_daemon *d, struct bk_request *req);

/* Remember that the request id (and its hash, if the record has one) made
 * audit record rec->seq (also from replay). */
void bk_cmd_remember(struct bk_daemon *d, const Breaker__AuditRecord *rec);

/* ---- bk_cmd_incident.c: the incident a trip/resume goes under ---- */

/* Before a trip of slot is applied: its incident (given, the held scope's
 * or global's, or a new one). */
void bk_incident_trip_plan(struct bk_daemon *d, int slot, const char *given,
                           struct bk_trip_incident *ti);
/* On the trip's record (ti must outlive its staging); the table follows. */
void bk_incident_trip_record(struct bk_daemon *d, int slot, unsigned reason,
                             struct bk_trip_incident *ti, Breaker__AuditRecord *rec);
/* A resume's or reconciliation's incident: given, or the open one of the
 * scope (or of global) while that is held; NULL. */
const char *bk_incident_resume_id(struct bk_daemon *d, int slot, const char *given);

/* ---- bk_pending.c: replies waiting for durability ---- */

/* True when the pending ring has room for another state-changing command. */
bool bk_pending_can_accept(const struct bk_daemon *d);

/* Room for one more waiting answer and for staging `records` records of any
 * size: a command that stages several checks this before it applies any. */
bool bk_pending_can_stage(const struct bk_daemon *d, size_t records);

/* The audit log reached a new durable seq: publish resumes, send acks, events. */
void bk_pending_durable(struct bk_daemon *d);

/* An audit flush failed with -errno err: answer waiting trips, refuse resumes. */
void bk_pending_flush_failed(struct bk_daemon *d, int err);

/*
 * Queue rep (packed now) for route until rec's seq is durable; route NULL or
 * NONE: nobody waits, only the event. republish: a resume, published then;
 * quiet: no event. False (route answered ERR_NOT_DURABLE) if the ring is full.
 */
bool bk_pending_add(struct bk_daemon *d, struct bk_route *route,
                    const Breaker__Reply *rep, const Breaker__AuditRecord *rec, int slot,
                    bool republish, bool quiet);

/* Queue rep for route until seq is durable: no scope, no event (a duplicate's
 * ack). False (route answered ERR_NOT_DURABLE) if the ring is full. */
bool bk_pending_ack(struct bk_daemon *d, struct bk_route *route,
                    const Breaker__Reply *rep, uint64_t seq);

/* Republish one scope's word from the state (BK_GLOBAL or a slot). */
void bk_publish_scope(struct bk_daemon *d, int slot);
/* Publish group g's own scope and refold every member's word (bk_cmd_group.c). */
void bk_group_publish(struct bk_daemon *d, int g);

/* Send buf (NULL: no answer) with route through d->replier. */
void bk_reply_send(struct bk_daemon *d, struct bk_route *route, const uint8_t *buf,
                   size_t len);

/* Answer now. */
void bk_reply_now(struct bk_daemon *d, struct bk_route *route, const Breaker__Reply *rep);

/* Answer now with a refusal that changed nothing. */
void bk_reply_refuse(struct bk_daemon *d, struct bk_route *route, uint64_t id,
                     Breaker__Status st, const char *why);

/* ---- bk_record.c: actors and the common fields of a record ---- */

/* The caller's name from the cache: false when it needs a lookup (a->name
 * then holds "uid<N>"). */
bool bk_actor_cached(struct bk_daemon *d, const struct bk_peer *peer, struct bk_actor *a);

/* Look a->uid's name up (may block in NSS) and cache it. */
void bk_actor_lookup(struct bk_daemon *d, struct bk_actor *a);

/* Cached, else looked up. */
void bk_actor_of(struct bk_daemon *d, const struct bk_peer *peer, struct bk_actor *a);

/* breakerd itself as the actor. */
void bk_actor_self(struct bk_actor *a);

/* Who, when, where and what kind: the fields every record has. */
void bk_record_fill(struct bk_daemon *d, Breaker__AuditRecord *rec,
                    Breaker__AuditRecord__Kind kind, const struct bk_actor *a,
                    uint64_t wall_ns);

/* A plan's scope, modes, reason and forced flag on its record. */
void bk_record_plan(Breaker__AuditRecord *rec, const struct bk_plan *p,
                    const char *scope);

/* Stage a daemon-originated record (boot, repair, audit_corrupt). seq or -errno. */
int64_t bk_record_stage_system(struct bk_daemon *d, Breaker__AuditRecord *rec);

/* Status / ListStrategies reply content (bk_status.c); free with bk_status_free.
 * One page: tripped strategies (and, with all, every strategy) from slot
 * offset on, at most limit (0: no count limit) and what fits a reply; a page
 * that stops short sets rep->error to "truncated: more from slot N". */
void bk_status_build(struct bk_daemon *d, Breaker__Reply *rep, bool all, uint32_t offset,
                     uint32_t limit);
void bk_status_free(Breaker__Reply *rep);

/* ---- bk_tick.c: the tick ---- */

/* One tick: heartbeat, every strategy's rules (those that moved or are due:
 * bk_tickskip.h), act on verdicts. */
void bk_tick(struct bk_daemon *d, uint64_t now_mono_ns);

/*
 * A forced resume of latch `reason` (all: every latch) on slot: every rule
 * behind it that is still violated stays armed (apply), and buf says so
 * ("drawdown for alpha stays armed: ..."). Returns the text's length.
 */
size_t bk_tick_rearm(struct bk_daemon *d, int slot, unsigned reason, bool all, bool apply,
                     char *buf, size_t len);

/* A strategy's telemetry snapshot as the tick reads it; -ENOENT if none. */
int bk_tick_snapshot(struct bk_daemon *d, int slot, struct bk_tel_snap *snap);

/* Boot: a REBASE record sets the rule's base again. */
void bk_tick_replay_rebase(struct bk_daemon *d, const Breaker__AuditRecord *rec);

/* Boot, after replay and bk_reload_bind_rules: a rule's own latch with a
 * cooldown counts it from the latch's time again (the trip time lived in
 * memory only). */
void bk_tick_restore_cooldowns(struct bk_daemon *d);

/* ---- bk_reload.c: rules bound to strategies, SIGHUP ---- */

/* (Re)bind each strategy slot to the rules configured for it. */
void bk_reload_bind_rules(struct bk_daemon *d);

/* A newly registered slot: rules bound, evaluation and telemetry cleared. */
void bk_reload_bind_slot(struct bk_daemon *d, int slot);

/* Reread the config file's rules (SIGHUP). Invalid: logged, running rules stay. */
void bk_reload(struct bk_daemon *d);

/* ---- bk_rulecheck.c: questions about the rules in force ---- */

/*
 * Is the rule behind reason code `reason` still violated for this scope?
 * (global: by any strategy whose rule trips globally). Fills rule name.
 */
bool bk_rulecheck_holds(const struct bk_daemon *d, int slot, unsigned reason,
                        const char **rule);

/*
 * A rate rule's latch on its way to ACTIVE: true (and why) if the window
 * holds fewer than min_orders orders, i.e. no evidence that the rule holds.
 */
bool bk_rulecheck_lacks_evidence(const struct bk_daemon *d, int slot, unsigned reason,
                                 char *why, size_t len);

/* ---- bk_protect.c: the daemon's own actions (tick, boot) ---- */

/*
 * A trip by the daemon itself (rules, boot): flip, stage, pend; 0 or -errno.
 * always: record it even if the latch is already that high (a second
 * audit_corrupt at boot has a cause of its own).
 */
int bk_protect_trip(struct bk_daemon *d, int slot, unsigned reason, int mode,
                    Breaker__AuditRecord *rec, bool always);

/* A cooldown step down (audited resume by the daemon); durable before visible. */
void bk_protect_step(struct bk_daemon *d, int slot, unsigned reason, int to,
                     Breaker__AuditRecord *rec);

/* Remember the trip for the engines' acknowledgement view. */
void bk_protect_note_trip(struct bk_daemon *d);

/* Count a trip for /metrics. */
void bk_count_trip(struct bk_daemon *d, int slot, unsigned reason);

/* The record summarising b's refusals that were not recorded one by one. */
void bk_refusal_summary(struct bk_daemon *d, const struct bk_auth_bucket *b);

/* Summarise refusals that were not recorded one by one, once their caller's
 * rate limit allows (bk_auth.h); from the tick. */
void bk_protect_refusals(struct bk_daemon *d, uint64_t now_mono_ns);

/* ---- bk_reconrep.c: reconciliation for commands and status (bk_recon.h) ---- */

/* One strategy's break report (reconcile reply, status). */
void bk_recon_report(const struct bk_recon *r, const char *strategy, uint64_t now_mono,
                     Breaker__RuleState *rs);

/* [rules] resume_requires_reconcile unmet for a global resume? why says which. */
bool bk_recon_resume_blocked(const struct bk_daemon *d, char *why, size_t len);

#endif
