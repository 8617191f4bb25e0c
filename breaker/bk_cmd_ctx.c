/*
 * bk_cmd_ctx - what every step of a command uses: its refusal, and the
 * caller and request id on its records.
 */
#include "bk_cmd.h"

/* The request id on a record made by c's command, with what makes it the
 * same command (answer_duplicate compares it). */
void bk_cmd_request_id(const struct bk_cmd *c, Breaker__AuditRecord *rec)
{
	rec->has_request_id = c->req->has_request_id;
	rec->request_id = c->req->request_id;
	rec->has_request_hash = c->req->has_request_id;
	rec->request_hash = c->hash;
}

void bk_cmd_refuse(struct bk_cmd *c, Breaker__Status st, const char *why)
{
	c->refused = st;
	bk_reply_refuse(c->d, &c->route, c->req->request_id, st, why);
}

/* A record made by c's caller: who, and a TLS caller's whole CN. */
void bk_cmd_record(struct bk_cmd *c, Breaker__AuditRecord *rec,
                   Breaker__AuditRecord__Kind kind, const struct bk_actor *who,
                   uint64_t wall_ns)
{
	bk_record_fill(c->d, rec, kind, who, wall_ns);
	if (c->peer.tls)
		rec->peer_cn = c->peer.cn;
}
