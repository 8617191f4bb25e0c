/*
 * bk_cmd.h - private to the bk_cmd*.c files: one command in flight, and the
 * steps its handlers share. bk_cmd.c decodes and dispatches; bk_cmd_auth.c
 * authorises; bk_cmd_dedupe.c recognises resends; bk_cmd_twoperson.c holds
 * the two-person rule; bk_cmd_ctx.c has what they all use. Everything else
 * sees only bk_daemon.h.
 */
#ifndef BK_CMD_H
#define BK_CMD_H

#include "bk_daemon.h"

struct bk_cmd {
	struct bk_daemon *d;
	struct bk_route route; /* where the answer goes; NONE once answered */
	const Breaker__Request *req;
	struct bk_peer peer;
	Breaker__Reply rep;
	char why[320];
	Breaker__Status refused; /* for breaker_commands_total; OK if not refused */
	uint64_t hash;           /* bk_cmd_request_hash of req, for its records */
};

/* Refuse c's command now: nothing changed. */
void bk_cmd_refuse(struct bk_cmd *c, Breaker__Status st, const char *why);

/* A record made by c's caller: who, and a TLS caller's whole CN. */
void bk_cmd_record(struct bk_cmd *c, Breaker__AuditRecord *rec,
                   Breaker__AuditRecord__Kind kind, const struct bk_actor *who,
                   uint64_t wall_ns);

/* The request id on a record made by c's command, with what makes it the
 * same command (bk_cmd_answer_duplicate compares it). */
void bk_cmd_request_id(const struct bk_cmd *c, Breaker__AuditRecord *rec);

/* Stage rec and queue c's answer until it is durable (failure: answered). */
bool bk_cmd_stage_and_pend(struct bk_cmd *c, Breaker__AuditRecord *rec, int slot,
                           bool republish);

/* ---- bk_cmd_group.c ---- */

/* A group tag to its scope slot (BK_GROUP_SLOT); else a status and why. */
Breaker__Status bk_cmd_resolve_group(const struct bk_daemon *d, const char *tag,
                                     int *slot, char *why, size_t len);
/* May a new strategy join these n tags (valid, distinct, <= BK_GROUP_TAGS_MAX,
 * room in the group table)? */
Breaker__Status bk_cmd_groups_check(const struct bk_daemon *d, size_t n, char **tags,
                                    char *why, size_t len);
/* Join them (checked before), making and publishing new groups; republish slot. */
void bk_cmd_groups_join(struct bk_daemon *d, int slot, size_t n, char **tags);
/* [strategies] groups of cfg: join each registered strategy to the groups it
 * is not in yet, a GROUP_ADD record (by breakerd, reason) each. Never leaves
 * a group: only `breaker group remove` does, audited with its checks. live:
 * publish now (SIGHUP); else (boot) publishing is the caller's. -EIO if a
 * record cannot be staged. */
int bk_groups_join_configured(struct bk_daemon *d, const struct bk_config *cfg,
                              const char *reason, bool live);
/* breaker group add|remove */
void bk_cmd_group(struct bk_cmd *c);
/* A trip of several scopes (Trip.strategies/groups): all or nothing. */
void bk_cmd_trip_many(struct bk_cmd *c);

/* ---- bk_cmd_auth.c ---- */

/* True if c's caller may run c's command; else refused (and audited). */
bool bk_cmd_authorised(struct bk_cmd *c);

/* Refused for want of authorisation: answered, audited (rate-limited). */
void bk_cmd_refuse_unauthorised(struct bk_cmd *c, const char *why);

/* ---- bk_cmd_dedupe.c ---- */

/* What makes a resend "the same command" (caller, command, payload). */
uint64_t bk_cmd_request_hash(const struct bk_cmd *c);

/* A state change whose request id was applied already: answered (the
 * original's ack, or a refusal if the id came with something else); true.
 * False: a new request id. */
bool bk_cmd_answer_duplicate(struct bk_cmd *c);

/* The same for a forwarded --firm command (trip: the trips' table): 0 a new
 * id, 1 a resend (*seq: its FIRM_FORWARDED record), -1 refused (answered). */
int bk_cmd_dedupe_find(struct bk_cmd *c, bool trip, uint64_t *seq);

/* Forget id, if it still names record seq: a forwarded command etcd did not
 * apply may be sent again with its id. */
void bk_cmd_forget(struct bk_daemon *d, bool trip, uint64_t id, uint64_t seq);

/* ---- bk_cmd_twoperson.c ---- */

/* A global resume under the two-person rule: true when this caller is the
 * second operator of a matching open proposal (go ahead; *ok gets it, now
 * closed); false when c was answered (a proposal recorded, or a refusal). */
bool bk_cmd_two_person(struct bk_cmd *c, const struct bk_plan *p,
                       const struct bk_actor *who, struct bk_proposal *ok);

/* ---- bk_cmd_incident.c ---- */

/* An incident id on a command: well-formed (and known, if must_exist);
 * false when c was refused. NULL id: true. */
bool bk_cmd_incident_check(struct bk_cmd *c, const char *id, bool must_exist);

/* breaker incident open|ack|note|resolve. */
void bk_cmd_do_incident(struct bk_cmd *c);

/* bk_cmd.c, for the handlers in other files: a strategy field to its slot
 * (absent or "": global; unknown: refused with the registered names it was
 * near). */
Breaker__Status bk_cmd_resolve_scope(const struct bk_daemon *d, const char *name,
                                     int *slot, char *why, size_t len);

/* bk_cmd_scope.c: unregister and rename a strategy (audited, replayed). */
void bk_cmd_unregister(struct bk_cmd *c);
void bk_cmd_rename(struct bk_cmd *c);

#endif
