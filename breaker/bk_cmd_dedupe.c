/*
 * bk_cmd_dedupe - a request id applied once: what makes a resend the same
 * command (a hash of caller, command and payload), and the answer to one.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co: no allocation (bk_audit.c) */

#include <openssl/sha.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_cmd.h"
#include "bk_log.h"
#include "bk_text.h"

/* protobuf-c packs into this buffer: straight into the hash, no allocation. */
struct hash_buf {
	ProtobufCBuffer base;
	SHA256_CTX sha;
};

/* The request-id table of a command: trips in one, everything only resume
 * holders may send in the other (see struct bk_dedupe). */
static struct bk_dedupe *dedupe_entry(struct bk_daemon *d, bool trip, uint64_t id)
{
	return &(trip ? d->dedupe : d->dedupe_restricted)[id & (BK_DEDUPE - 1)];
}

void bk_cmd_remember(struct bk_daemon *d, const Breaker__AuditRecord *rec)
{
	uint64_t id = rec->has_request_id ? rec->request_id : 0;
	struct bk_dedupe *e;

	if (!id)
		return;
	/* a forwarded --firm trip is a trip: anyone may send one (bk_etcd_fwd.c) */
	e = dedupe_entry(d,
	                 rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP ||
	                     (rec->kind == BREAKER__AUDIT_RECORD__KIND__FIRM_FORWARDED &&
	                      rec->command && strcmp(rec->command, "trip") == 0),
	                 id);
	e->id = id;
	e->seq = rec->seq;
	e->hash = rec->request_hash;
	e->hashed = rec->has_request_hash;
}

static void hash_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
	SHA256_Update(&((struct hash_buf *)b)->sha, data, len);
}

/*
 * What makes a resend "the same command": the caller as the transport
 * identifies it (uid and how it came; a certificate's CN), the command, and
 * its payload as packed again here (so field order on the wire does not
 * matter). The first 8 bytes of SHA-256: a collision is not something a
 * caller can aim for.
 */
uint64_t bk_cmd_request_hash(const struct bk_cmd *c)
{
	const Breaker__Request *req = c->req;
	const ProtobufCMessage *m = NULL;
	struct hash_buf hb = {.base = {.append = hash_append}};
	uint8_t who[12], out[SHA256_DIGEST_LENGTH];
	uint64_t h = 0;

	switch (req->cmd_case) {
	case BREAKER__REQUEST__CMD_TRIP:
		m = &req->trip->base;
		break;
	case BREAKER__REQUEST__CMD_RESUME:
		m = &req->resume->base;
		break;
	case BREAKER__REQUEST__CMD_REGISTER:
		m = &req->register_->base;
		break;
	case BREAKER__REQUEST__CMD_RECONCILE:
		m = &req->reconcile->base;
		break;
	case BREAKER__REQUEST__CMD_REBASE:
		m = &req->rebase->base;
		break;
	case BREAKER__REQUEST__CMD_INCIDENT:
		m = &req->incident->base;
		break;
	case BREAKER__REQUEST__CMD_GROUP:
		m = &req->group->base;
		break;
	case BREAKER__REQUEST__CMD_UNREGISTER:
		m = &req->unregister->base;
		break;
	case BREAKER__REQUEST__CMD_RENAME:
		m = &req->rename->base;
		break;
	default:
		break;
	}
	SHA256_Init(&hb.sha);
	SHA256_Update(&hb.sha, "breaker.request.1", 17);
	for (int i = 0; i < 4; i++) {
		who[i] = (uint8_t)(c->peer.uid >> (8 * i));
		who[4 + i] = (uint8_t)((uint32_t)req->cmd_case >> (8 * i));
	}
	who[8] = (uint8_t)c->peer.local;
	who[9] = (uint8_t)c->peer.tls;
	who[10] = who[11] = 0;
	SHA256_Update(&hb.sha, who, sizeof(who));
	if (c->peer.tls)
		SHA256_Update(&hb.sha, c->peer.cn, strlen(c->peer.cn) + 1);
	if (m)
		protobuf_c_message_pack_to_buffer(m, &hb.base);
	SHA256_Final(out, &hb.sha);
	for (int i = 7; i >= 0; i--)
		h = h << 8 | out[i];
	return h;
}

/* c's request id: 0 never seen, 1 the same command again (*e its entry), -1
 * refused here (the id of another command, payload or caller). */
static int dedupe_match(struct bk_cmd *c, bool trip, struct bk_dedupe **out)
{
	struct bk_daemon *d = c->d;
	uint64_t id = c->req->request_id;
	struct bk_dedupe *e = dedupe_entry(d, trip, id),
	                 *other = dedupe_entry(d, !trip, id);

	if (!c->req->has_request_id || !id)
		return 0;
	if (other->id == id) /* another kind of command had it: never the same */
		e = other;
	else if (e->id != id)
		return 0;
	if (e == other || !e->hashed || e->hash != c->hash) {
		snprintf(
		    c->why, sizeof(c->why),
		    "request id %llu was used by audit seq %llu for another "
		    "command, payload or caller: nothing applied (send it with a new "
		    "id; the CLI makes one unless BREAKER_REQUEST_ID is set)",
		    (unsigned long long)id, (unsigned long long)e->seq);
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_REQUEST_ID_REUSED, c->why);
		return -1;
	}
	*out = e;
	return 1;
}

int bk_cmd_dedupe_find(struct bk_cmd *c, bool trip, uint64_t *seq)
{
	struct bk_dedupe *e = NULL;
	int rv = dedupe_match(c, trip, &e);

	if (rv == 1)
		*seq = e->seq;
	return rv;
}

void bk_cmd_forget(struct bk_daemon *d, bool trip, uint64_t id, uint64_t seq)
{
	struct bk_dedupe *e = dedupe_entry(d, trip, id);

	if (id && e->id == id && e->seq == seq)
		e->id = 0;
}

/*
 * A state change whose request id was already applied (nng REQ resent it
 * after a reconnect, or the CLI retried): acknowledge the original record,
 * apply nothing. Only the same caller sending the same command with the same
 * payload is a resend; the id with anything else is refused, never "OK": a
 * new emergency stop must not be swallowed as an old kill.
 */
bool bk_cmd_answer_duplicate(struct bk_cmd *c)
{
	struct bk_daemon *d = c->d;
	struct bk_dedupe *e = NULL;
	int rv = dedupe_match(c, c->req->cmd_case == BREAKER__REQUEST__CMD_TRIP, &e);

	if (rv <= 0)
		return rv < 0;
	c->rep.has_audit_seq = 1;
	c->rep.audit_seq = e->seq;
	c->rep.error = "duplicate request id: already applied, nothing changed";
	if (c->rep.audit_seq <= d->audit.durable_seq) {
		bk_reply_now(d, &c->route, &c->rep);
		return true;
	}
	bk_pending_ack(d, &c->route, &c->rep, c->rep.audit_seq);
	return true;
}
