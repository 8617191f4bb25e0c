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

#endif
