/*
 * bk_cmd - command handling: decode, validate, authorise, apply, audit, ack.
 *
 * Ordering is the product's promise:
 *   trip:   flip the shm word, stage the audit record, ack once durable;
 *   resume: stage the audit record, ack and flip once durable.
 * Every refusal is a typed reply that changed nothing.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co: no allocation (bk_audit.c) */

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include <openssl/sha.h>

#include "bk_daemon.h"
#include "bk_log.h"

uint64_t bk_now_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- replies ------------------------------------------------------------- */

static int pack_reply(nng_msg *msg, const Breaker__Reply *rep)
{
	size_t len = breaker__reply__get_packed_size(rep);

	nng_msg_clear(msg); /* body only: the routing header stays */
	if (nng_msg_realloc(msg, len) != 0)
		return -ENOMEM;
	breaker__reply__pack(rep, nng_msg_body(msg));
	return 0;
}

static void reply_now(struct bk_daemon *d, nng_msg *msg, Breaker__Reply *rep)
{
	if (pack_reply(msg, rep) == 0)
		bk_server_reply(&d->srv, msg);
	else
		nng_msg_free(msg);
}

static void refuse(struct bk_daemon *d, nng_msg *msg, uint64_t id, Breaker__Status st,
                   const char *why)
{
	Breaker__Reply rep = BREAKER__REPLY__INIT;

	rep.has_request_id = 1;
	rep.request_id = id;
	rep.has_status = 1;
	rep.status = st;
	rep.error = (char *)why;
	reply_now(d, msg, &rep);
}

/* ---- validation ------------------------------------------------------------ */

/*
 * Length of the UTF-8 sequence at p, or 0 if it is not one a terminal can be
 * trusted with: invalid, overlong, surrogate, above U+10FFFF, a C0/C1
 * control (tab excepted), DEL, or a bidirectional override.
 */
static int utf8_safe_len(const unsigned char *p)
{
	if (*p < 0x80)
		return (*p >= 0x20 || *p == '\t') && *p != 0x7f;
	if (*p >= 0xc2 && *p <= 0xdf)
		return (p[1] & 0xc0) == 0x80 && !(*p == 0xc2 && p[1] < 0xa0) ? 2 : 0;
	if (*p >= 0xe0 && *p <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (*p == 0xe0 && p[1] < 0xa0) || (*p == 0xed && p[1] >= 0xa0))
			return 0;
		/* U+202A..U+202E, U+2066..U+2069: text that reorders the terminal */
		if (*p == 0xe2 && ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
		                   (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)))
			return 0;
		return 3;
	}
	if (*p >= 0xf0 && *p <= 0xf4)
		return (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 &&
		               (p[3] & 0xc0) == 0x80 && !(*p == 0xf0 && p[1] < 0x90) &&
		               !(*p == 0xf4 && p[1] >= 0x90)
		           ? 4
		           : 0;
	return 0;
}

/* Reason text ends up in terminals, logs and post-mortems. */
static bool text_valid(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	int n;

	if (strlen(s) > max)
		return false;
	for (; *p; p += n)
		if ((n = utf8_safe_len(p)) == 0)
			return false;
	return true;
}

/* A varint at *p (before end); false if it runs past end or 10 bytes. */
static bool wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/*
 * Does a string field of this message (or of one inside it) hold a NUL
 * byte? protobuf-c hands strings over as char *: "s1\0/evil" would be read
 * as "s1" and act on s1. Walks the wire bytes with the descriptors; the
 * message has unpacked already, so it is well-formed.
 */
static bool wire_has_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
                         size_t len, int depth)
{
	const uint8_t *end = p + len;
	uint64_t key, n;

	while (p < end) {
		if (!wire_varint(&p, end, &key))
			return false;
		switch (key & 7) {
		case 0:
			if (!wire_varint(&p, end, &n))
				return false;
			break;
		case 1:
			p += 8;
			break;
		case 5:
			p += 4;
			break;
		case 2: {
			const ProtobufCFieldDescriptor *f =
			    protobuf_c_message_descriptor_get_field(desc,
			                                            (unsigned)(key >> 3));
			if (!wire_varint(&p, end, &n) || n > (uint64_t)(end - p))
				return false;
			if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, n))
				return true;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 8 &&
			    wire_has_nul(f->descriptor, p, n, depth + 1))
				return true;
			p += n;
			break;
		}
		default: /* groups: protobuf-c would not have unpacked them */
			return false;
		}
	}
	return false;
}

/* Strategy field to slot: absent or "" is global. */
static Breaker__Status resolve_scope(const struct bk_daemon *d, const char *name,
                                     int *slot, char *why, size_t len)
{
	if (!name || !*name) {
		*slot = BK_GLOBAL;
		return BREAKER__STATUS__OK;
	}
	if (!bk_strategy_name_valid(name)) {
		snprintf(why, len, "invalid strategy name: 1-%u bytes of [A-Za-z0-9._:-]",
		         BK_NAME_MAX - 1);
		return BREAKER__STATUS__ERR_BAD_REQUEST;
	}
	*slot = bk_state_find(&d->state, name);
	if (*slot < 0) {
		snprintf(why, len, "unknown strategy '%s' (register it first)", name);
		return BREAKER__STATUS__ERR_UNKNOWN_STRATEGY;
	}
	return BREAKER__STATUS__OK;
}

/* The caller's name from the cache: false when it needs a lookup (a->name
 * then holds "uid<N>"). */
static bool actor_cached(struct bk_daemon *d, const struct bk_peer *peer,
                         struct bk_actor *a)
{
	a->uid = peer->uid;
	a->pid = peer->pid;
	if (peer->tls) { /* the whole CN goes in the record's peer_cn */
		snprintf(a->name, sizeof(a->name), "tls:%.27s", peer->cn);
		return true;
	}
	if (!peer->local) {
		snprintf(a->name, sizeof(a->name), "remote");
		return true;
	}
	for (unsigned i = 0; i < BK_UID_CACHE; i++)
		if (d->uid_cache[i].name[0] && d->uid_cache[i].uid == peer->uid) {
			memcpy(a->name, d->uid_cache[i].name, sizeof(a->name));
			return true;
		}
	snprintf(a->name, sizeof(a->name), "uid%u", peer->uid);
	return false;
}

/* getpwuid_r may go to NSS (LDAP, sssd): slow, so trips look it up after the flip. */
static void actor_lookup(struct bk_daemon *d, struct bk_actor *a)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (getpwuid_r(a->uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(a->name, sizeof(a->name), "%s", pw.pw_name);
	d->uid_cache[d->uid_next].uid = a->uid;
	memcpy(d->uid_cache[d->uid_next].name, a->name, sizeof(a->name));
	d->uid_next = (d->uid_next + 1) % BK_UID_CACHE;
}

static void actor_of(struct bk_daemon *d, const struct bk_peer *peer, struct bk_actor *a)
{
	if (!actor_cached(d, peer, a))
		actor_lookup(d, a);
}

/* ---- audit + pending --------------------------------------------------------- */

bool bk_cmd_can_accept(const struct bk_daemon *d)
{
	return d->pend_head - d->pend_tail < BK_PENDING_MAX &&
	       d->audit.staged_len + 2 * BK_AUDIT_RECORD_MAX < BK_AUDIT_BATCH_BYTES;
}

static void fill_record(struct bk_daemon *d, Breaker__AuditRecord *rec,
                        Breaker__AuditRecord__Kind kind, const struct bk_actor *a,
                        uint64_t wall_ns)
{
	rec->has_wall_ns = rec->has_mono_ns = rec->has_uid = rec->has_pid = 1;
	rec->has_kind = 1;
	rec->kind = kind;
	rec->wall_ns = wall_ns;
	rec->mono_ns = bk_now_mono_ns();
	rec->uid = a->uid;
	rec->pid = a->pid;
	rec->user = (char *)a->name;
	rec->host = d->host;
}

static void plan_record(Breaker__AuditRecord *rec, const struct bk_plan *p,
                        const char *scope)
{
	rec->strategy = p->slot == BK_GLOBAL ? NULL : (char *)scope;
	rec->has_from_mode = rec->has_to_mode = rec->has_latch_mode = 1;
	rec->has_reason_code = rec->has_forced = 1;
	rec->from_mode = (Breaker__Mode)p->from_mode;
	rec->to_mode = (Breaker__Mode)p->to_mode;
	rec->latch_mode = (Breaker__Mode)p->target;
	rec->reason_code = (Breaker__ReasonCode)p->reason;
	rec->forced = p->forced;
}

/* Queue msg (already holding its packed Reply) until rec's seq is durable. */
static void pend(struct bk_daemon *d, nng_msg *msg, const Breaker__AuditRecord *rec,
                 int slot, bool republish, bool quiet)
{
	struct bk_pending *p;

	if (d->pend_head - d->pend_tail >= BK_PENDING_MAX) {
		/* only the daemon's own records get here (commands wait for room):
		 * the record is staged and will be durable; its event is dropped */
		if (msg)
			nng_msg_free(msg);
		return;
	}
	p = &d->pending[d->pend_head++ & (BK_PENDING_MAX - 1)];
	p->reply = msg;
	p->seq = rec->seq;
	p->slot = slot;
	p->republish = republish;
	p->quiet = quiet;
	p->kind = rec->kind;
	p->from_mode = (uint8_t)rec->from_mode;
	p->to_mode = (uint8_t)rec->to_mode;
	p->reason_code = (uint8_t)rec->reason_code;
	p->forced = rec->forced;
	p->uid = rec->uid;
	p->wall_ns = rec->wall_ns;
}

int64_t bk_cmd_stage_system(struct bk_daemon *d, Breaker__AuditRecord *rec)
{
	struct bk_actor self = {.uid = (uint32_t)geteuid(), .pid = (uint32_t)getpid()};

	snprintf(self.name, sizeof(self.name), "breakerd");
	if (!rec->has_kind)
		rec->has_kind = 1;
	fill_record(d, rec, rec->kind, &self, bk_now_wall_ns());
	return bk_audit_stage(&d->audit, rec);
}

void bk_cmd_publish_scope(struct bk_daemon *d, int slot)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, slot);
	uint64_t since, word;
	uint32_t mask;

	if (!sc)
		return;
	word = bk_scope_published(sc, d->audit.durable_seq, &since, &mask);
	bk_shm_publish(&d->shm, slot, word, mask, since);
}

/* Stage rec and queue the ack; on failure answer at once. True if staged. */
static bool stage_and_pend(struct bk_daemon *d, nng_msg *msg, Breaker__Reply *rep,
                           Breaker__AuditRecord *rec, int slot, bool republish)
{
	int64_t seq = bk_audit_stage(&d->audit, rec);

	if (seq < 0) {
		bk_err("audit staging failed (%s): command not durable",
		       strerror((int)-seq));
		rep->status = BREAKER__STATUS__ERR_NOT_DURABLE;
		rep->error =
		    rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP
		        ? "the halt IS in effect, but its audit record could not "
		          "be staged"
		        : "its audit record could not be staged: nothing changed";
		reply_now(d, msg, rep);
		return false;
	}
	rep->has_audit_seq = 1;
	rep->audit_seq = (uint64_t)seq;
	bk_cmd_remember(d, rec);
	if (pack_reply(msg, rep) < 0) {
		nng_msg_free(msg);
		msg = NULL;
	}
	pend(d, msg, rec, slot, republish, false);
	return true;
}

/* ---- commands ----------------------------------------------------------------- */

struct cmd_ctx {
	struct bk_daemon *d;
	nng_msg *msg;
	const Breaker__Request *req;
	struct bk_peer peer;
	Breaker__Reply rep;
	char why[320];
	Breaker__Status refused; /* for breaker_commands_total; OK if not refused */
	uint64_t hash;           /* bk_cmd_request_hash of req, for its records */
};

/* The request id on a record made by c's command, with what makes it the
 * same command (answer_duplicate compares it). */
static void cmd_request_id(const struct cmd_ctx *c, Breaker__AuditRecord *rec)
{
	rec->has_request_id = c->req->has_request_id;
	rec->request_id = c->req->request_id;
	rec->has_request_hash = c->req->has_request_id;
	rec->request_hash = c->hash;
}

static void cmd_refuse(struct cmd_ctx *c, Breaker__Status st, const char *why)
{
	c->refused = st;
	refuse(c->d, c->msg, c->req->request_id, st, why);
}

static void count_command(struct bk_daemon *d, unsigned type, unsigned status)
{
	d->ctr.commands[type][status < BK_STATUS_COUNT ? status
	                                               : BREAKER__STATUS__ERR_INTERNAL]++;
}

static void count_trip(struct bk_daemon *d, int slot, unsigned reason)
{
	if (reason < BK_REASON_COUNT)
		d->ctr.trips[slot != BK_GLOBAL][reason]++;
}

/* A record made by c's caller: who, and a TLS caller's whole CN. */
static void cmd_record(struct cmd_ctx *c, Breaker__AuditRecord *rec,
                       Breaker__AuditRecord__Kind kind, const struct bk_actor *who,
                       uint64_t wall_ns)
{
	fill_record(c->d, rec, kind, who, wall_ns);
	if (c->peer.tls)
		rec->peer_cn = c->peer.cn;
}

/* ---- authorisation ---------------------------------------------------------------- */

static bool is_kill(const Breaker__Request *req)
{
	return req->trip->has_reason_code &&
	       req->trip->reason_code == BREAKER__REASON_CODE__KILL_SWITCH;
}

/* The command as the CLI names it: a kill is a trip with kill_switch. */
static const char *command_name(const Breaker__Request *req)
{
	static const char *const names[] = {
	    "trip", "resume", "status", "strategies", "register", "report", "reconcile"};

	if (req->cmd_case == BREAKER__REQUEST__CMD_TRIP && is_kill(req))
		return "kill";
	if (req->cmd_case == BREAKER__REQUEST__CMD_REBASE)
		return "rules rebase";
	if (req->cmd_case >= BREAKER__REQUEST__CMD_TRIP &&
	    req->cmd_case <= BREAKER__REQUEST__CMD_RECONCILE)
		return names[req->cmd_case - BREAKER__REQUEST__CMD_TRIP];
	return "unknown";
}

/* ... and as a refusal says it: "uid 1001 may not <verb>", for what is missing. */
static const char *command_verb(const Breaker__Request *req, unsigned missing)
{
	switch (req->cmd_case) {
	case BREAKER__REQUEST__CMD_TRIP:
		return is_kill(req) ? "kill" : "trip";
	case BREAKER__REQUEST__CMD_RESUME:
		return missing & BK_PERM_RESUME ? "resume" : "force a resume";
	case BREAKER__REQUEST__CMD_REGISTER:
		return "register strategies";
	case BREAKER__REQUEST__CMD_RECONCILE:
		return "post reconciliations (they can clear a break)";
	case BREAKER__REQUEST__CMD_REPORT:
		return "report telemetry (it feeds the rules)";
	case BREAKER__REQUEST__CMD_REBASE:
		return "rebase a rule (it can clear a violation, like a forced resume)";
	default:
		return "query breakerd";
	}
}

static unsigned perms_needed(const Breaker__Request *req)
{
	switch (req->cmd_case) {
	case BREAKER__REQUEST__CMD_TRIP:
		return is_kill(req) ? BK_PERM_KILL : BK_PERM_TRIP;
	case BREAKER__REQUEST__CMD_RESUME:
		return BK_PERM_RESUME |
		       (req->resume->has_force && req->resume->force ? BK_PERM_FORCE : 0);
	case BREAKER__REQUEST__CMD_REGISTER:
	case BREAKER__REQUEST__CMD_RECONCILE:
		return BK_PERM_RESUME;
	case BREAKER__REQUEST__CMD_REPORT: /* it can keep a rule from tripping */
		return BK_PERM_REPORT;
	case BREAKER__REQUEST__CMD_REBASE: /* it clears a violation: as forcing */
		return BK_PERM_RESUME | BK_PERM_FORCE;
	default:
		return BK_PERM_QUERY;
	}
}

/* What the refused caller tried, where it can be told without trusting it. */
static void refused_attempt(struct cmd_ctx *c, Breaker__AuditRecord *rec)
{
	const Breaker__Request *req = c->req;
	const char *scope = NULL, *reason = NULL;
	int code = -1;

	if (req->cmd_case == BREAKER__REQUEST__CMD_TRIP) {
		scope = req->trip->strategy;
		reason = req->trip->reason;
		code = req->trip->has_reason_code ? (int)req->trip->reason_code : -1;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_RESUME) {
		scope = req->resume->strategy;
		reason = req->resume->reason;
		code = req->resume->has_reason_code ? (int)req->resume->reason_code : -1;
		rec->has_forced = 1;
		rec->forced = req->resume->has_force && req->resume->force;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_REGISTER) {
		scope = req->register_->strategy;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_REPORT) {
		scope = req->report->strategy;
	} else if (req->cmd_case == BREAKER__REQUEST__CMD_REBASE) {
		scope = req->rebase->strategy;
		reason = req->rebase->reason;
	}
	rec->strategy = scope && bk_strategy_name_valid(scope) ? (char *)scope : NULL;
	rec->has_reason_code = code >= 0 && code < BK_REASON_COUNT;
	rec->reason_code = rec->has_reason_code ? (Breaker__ReasonCode)code : 0;
	rec->reason =
	    reason && text_valid(reason, c->d->cfg.reason_max) ? (char *)reason : NULL;
}

/* The summary of a caller's refusals that were not recorded one by one. */
static void record_summary(struct bk_daemon *d, const struct bk_auth_bucket *b)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	struct bk_actor who;
	char text[160];

	actor_of(d, &b->peer, &who);
	fill_record(d, &rec, BREAKER__AUDIT_RECORD__KIND__REFUSED, &who,
	            bk_now_wall_ns());
	snprintf(text, sizeof(text),
	         "%u further refusals from %s not recorded one by one (rate limit: %d "
	         "at once, then %d a second)",
	         b->suppressed, b->who, BK_AUTH_BURST, BK_AUTH_RATE);
	rec.refusal = text;
	rec.has_suppressed = rec.has_status = 1;
	rec.suppressed = b->suppressed;
	rec.status = BREAKER__STATUS__ERR_UNAUTHORISED;
	rec.peer_cn = b->peer.tls ? (char *)b->peer.cn : NULL;
	if (bk_audit_stage(&d->audit, &rec) < 0)
		bk_warn("audit staging failed: a summary of %u refusals is lost",
		        b->suppressed);
}

void bk_cmd_auth_tick(struct bk_daemon *d, uint64_t now_mono_ns)
{
	struct bk_auth_bucket due;

	while (d->auth.suppressing && bk_cmd_can_accept(d) &&
	       bk_auth_due(&d->auth, now_mono_ns, &due))
		record_summary(d, &due);
}

/*
 * Refused for want of authorisation: nothing changes, the caller is told
 * why, and the refusal is audited (rate-limited per caller: bk_auth.h). An
 * audited refusal is answered once its record is durable.
 */
static void refuse_unauthorised(struct cmd_ctx *c, const char *why)
{
	struct bk_daemon *d = c->d;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	struct bk_auth_bucket due;
	struct bk_actor who;
	bool record = bk_auth_admit(&d->auth, &c->peer, bk_now_mono_ns(), &due);

	d->ctr.auth_refusals++;
	c->refused = BREAKER__STATUS__ERR_UNAUTHORISED;
	c->rep.status = BREAKER__STATUS__ERR_UNAUTHORISED;
	c->rep.error = (char *)why;
	if (due.suppressed)
		record_summary(d, &due);
	if (!record) {
		d->ctr.auth_suppressed++;
		reply_now(d, c->msg, &c->rep);
		return;
	}
	actor_of(d, &c->peer, &who);
	cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__REFUSED, &who, bk_now_wall_ns());
	refused_attempt(c, &rec);
	rec.command = (char *)command_name(c->req);
	rec.has_status = 1;
	rec.status = BREAKER__STATUS__ERR_UNAUTHORISED;
	rec.refusal = (char *)why;
	if (bk_audit_stage(&d->audit, &rec) < 0) {
		reply_now(d, c->msg, &c->rep);
		return;
	}
	c->rep.has_audit_seq = 1;
	c->rep.audit_seq = rec.seq;
	if (d->flush_err) /* the log is failing: no waiting for it */
		return reply_now(d, c->msg, &c->rep);
	if (pack_reply(c->msg, &c->rep) < 0) {
		nng_msg_free(c->msg);
		return;
	}
	pend(d, c->msg, &rec, BK_NO_SCOPE, false, true);
}

/* May c's caller do what it asks? If not, refused (and audited) here. */
static bool authorised(struct cmd_ctx *c)
{
	unsigned need = perms_needed(c->req);
	unsigned missing = need & ~bk_auth_perms(&c->d->auth, &c->d->cfg, &c->peer);

	if (!missing)
		return true;
	bk_auth_why(&c->d->cfg, &c->peer, missing, command_verb(c->req, missing), c->why,
	            sizeof(c->why));
	refuse_unauthorised(c, c->why);
	return false;
}

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
	e = dedupe_entry(d, rec->kind == BREAKER__AUDIT_RECORD__KIND__TRIP, id);
	e->id = id;
	e->seq = rec->seq;
	e->hash = rec->request_hash;
	e->hashed = rec->has_request_hash;
}

/* protobuf-c packs into this buffer: straight into the hash, no allocation. */
struct hash_buf {
	ProtobufCBuffer base;
	SHA256_CTX sha;
};

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
static uint64_t request_hash(const struct cmd_ctx *c)
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

/*
 * A state change whose request id was already applied (nng REQ resent it
 * after a reconnect, or the CLI retried): acknowledge the original record,
 * apply nothing. Only the same caller sending the same command with the same
 * payload is a resend; the id with anything else is refused, never "OK": a
 * new emergency stop must not be swallowed as an old kill.
 */
static bool answer_duplicate(struct cmd_ctx *c)
{
	struct bk_daemon *d = c->d;
	uint64_t id = c->req->request_id;
	struct bk_pending *p;
	bool trip = c->req->cmd_case == BREAKER__REQUEST__CMD_TRIP;
	struct bk_dedupe *e = dedupe_entry(d, trip, id),
	                 *other = dedupe_entry(d, !trip, id);

	if (!c->req->has_request_id || !id)
		return false;
	if (other->id == id) /* another kind of command had it: never the same */
		e = other;
	else if (e->id != id)
		return false;
	if (e == other || !e->hashed || e->hash != c->hash) {
		snprintf(
		    c->why, sizeof(c->why),
		    "request id %llu was used by audit seq %llu for another "
		    "command, payload or caller: nothing applied (send it with a new "
		    "id; the CLI makes one unless BREAKER_REQUEST_ID is set)",
		    (unsigned long long)id, (unsigned long long)e->seq);
		cmd_refuse(c, BREAKER__STATUS__ERR_REQUEST_ID_REUSED, c->why);
		return true;
	}
	c->rep.has_audit_seq = 1;
	c->rep.audit_seq = e->seq;
	c->rep.error = "duplicate request id: already applied, nothing changed";
	if (c->rep.audit_seq <= d->audit.durable_seq) {
		reply_now(d, c->msg, &c->rep);
		return true;
	}
	if (pack_reply(c->msg, &c->rep) < 0 ||
	    d->pend_head - d->pend_tail >= BK_PENDING_MAX) {
		nng_msg_free(c->msg);
		return true;
	}
	p = &d->pending[d->pend_head++ & (BK_PENDING_MAX - 1)];
	memset(p, 0, sizeof(*p));
	p->reply = c->msg;
	p->seq = c->rep.audit_seq;
	p->slot = BK_NO_SCOPE;
	p->quiet = true;
	return true;
}

static void do_trip(struct cmd_ctx *c)
{
	const Breaker__Trip *t = c->req->trip;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	const char *reason = t->reason ? t->reason : "", *why = NULL;
	struct bk_actor who;
	struct bk_plan p;
	Breaker__Status st;
	uint64_t wall = bk_now_wall_ns(), seq;
	bool named;
	int slot;

	if ((st = resolve_scope(c->d, t->strategy, &slot, c->why, sizeof(c->why))))
		return cmd_refuse(c, st, c->why);
	if (!t->has_reason_code || !bk_reason_operator(t->reason_code))
		return cmd_refuse(c, BREAKER__STATUS__ERR_UNKNOWN_REASON,
		                  "a trip needs a known reason code (e.g. manual_halt)");
	if (!text_valid(reason, c->d->cfg.reason_max))
		return cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		                  "reason text must be UTF-8 without control characters, "
		                  "within the configured length");
	st = bk_state_plan_trip(&c->d->state, slot, (int)t->reason_code, (int)t->mode, &p,
	                        &why);
	if (st)
		return cmd_refuse(c, st, why);
	p.by_operator = true; /* the latch is the operator's, even if a rule held it */
	named = actor_cached(c->d, &c->peer, &who);
	/* The halt takes effect now; durability and the ack follow. */
	seq = c->d->audit.next_seq;
	bk_state_apply(&c->d->state, &p, &who, wall, reason, seq, c->d->audit.durable_seq,
	               true);
	bk_cmd_publish_scope(c->d, slot);
	bk_shm_changed(&c->d->shm);
	if (!named) { /* engines see the halt already; now the name, for people */
		struct bk_latch *l =
		    &bk_state_scope(&c->d->state, slot)->latches[p.reason];

		actor_lookup(c->d, &who);
		if (l->audit_seq == seq) /* this trip raised it (not an earlier one) */
			memcpy(l->actor.name, who.name, sizeof(who.name));
	}
	bk_cmd_note_trip(c->d);
	count_trip(c->d, slot, p.reason);
	if (slot == BK_GLOBAL) /* the situation changed: propose again */
		c->d->auth.proposal.active = false;
	cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__TRIP, &who, wall);
	plan_record(&rec, &p, t->strategy);
	rec.has_operator_latch = rec.operator_latch = 1;
	rec.reason = (char *)reason;
	cmd_request_id(c, &rec);
	c->rep.has_from_mode = c->rep.has_to_mode = 1;
	c->rep.from_mode = (Breaker__Mode)p.from_mode;
	c->rep.to_mode = (Breaker__Mode)p.to_mode;
	stage_and_pend(c->d, c->msg, &c->rep, &rec, slot, false);
}

/* A rule's latch stays until the rule holds again (or force). */
static bool condition_holds(const struct bk_daemon *d, const struct bk_plan *p, char *why,
                            size_t len)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, p->slot);
	const char *rule = NULL;

	for (unsigned r = 1; r < BK_REASON_COUNT; r++) {
		if (!(sc->active & (1u << r)) || (!p->all && r != p->reason))
			continue;
		if (bk_tick_condition_holds(d, p->slot, r, &rule)) {
			snprintf(why, len,
			         "rule %s still fails for %s: the %s latch stays until "
			         "it holds again (or --force, audited as forced: the "
			         "rule stays armed)",
			         rule, sc->name[0] ? sc->name : "global",
			         bk_reason_name(r));
			return true;
		}
	}
	return false;
}

/*
 * What a forced resume does, in words, for its audit record (issue 12.10):
 * which latches go where, and which rules stay armed (issue 12.2).
 */
static void forced_text(struct bk_daemon *d, const struct bk_plan *p, bool has_to,
                        char *buf, size_t len)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, p->slot);
	char held[200] = "", armed[400];
	size_t off = 0;

	buf[0] = '\0';
	if (!p->forced || !sc)
		return;
	for (unsigned r = 1; r < BK_REASON_COUNT && off < sizeof(held); r++)
		if ((sc->active & (1u << r)) && (p->all || r == p->reason))
			off += (size_t)snprintf(held + off, sizeof(held) - off, "%s%s",
			                        off ? ", " : "", bk_reason_name(r));
	bk_tick_rearm(d, p->slot, p->reason, p->all, false, armed, sizeof(armed));
	snprintf(buf, len, "forced: %s (%s) lowered to %s%s%s%s",
	         p->all ? "every latch" : "latch", held,
	         bk_mode_str((enum bk_mode)p->target),
	         has_to ? "" : " (one stage, no --to)", armed[0] ? "; " : "", armed);
}

/*
 * To ACTIVE, a rate rule's latch needs evidence that the rule holds, not
 * the empty window of a halted engine (issue 12.4): see bk_tick_lacks_evidence.
 */
static bool lacks_evidence(const struct bk_daemon *d, const struct bk_plan *p, char *why,
                           size_t len)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, p->slot);

	if (p->target != BK_ACTIVE)
		return false; /* a probe (reduce-only, cautious) is how evidence comes */
	for (unsigned r = 1; r < BK_REASON_COUNT; r++)
		if ((sc->active & (1u << r)) && (p->all || r == p->reason) &&
		    bk_tick_lacks_evidence(d, p->slot, r, why, len))
			return true;
	return false;
}

/* ---- the two-person rule for global resumes ----------------------------------- */

static bool same_plan(const struct bk_proposal *pr, const struct bk_plan *p)
{
	return pr->reason == p->reason && pr->all == p->all && pr->forced == p->forced &&
	       pr->target == p->target;
}

/* The first operator's resume: audited as a proposal, answered PENDING. */
static void propose(struct cmd_ctx *c, const struct bk_plan *p,
                    const struct bk_actor *who, const char *me, uint64_t replaced,
                    uint64_t lapsed)
{
	struct bk_daemon *d = c->d;
	struct bk_proposal *pr = &d->auth.proposal;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	uint64_t wall = bk_now_wall_ns(),
	         window = d->cfg.confirm_window_s * 1000000000ull;
	char note[96] = "";

	cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__RESUME_PROPOSED, who, wall);
	plan_record(&rec, p, NULL);
	rec.reason = c->req->resume->reason;
	rec.command = "resume";
	if (lapsed || replaced)
		snprintf(note, sizeof(note), "the proposal at audit seq %llu %s",
		         (unsigned long long)(lapsed ? lapsed : replaced),
		         lapsed ? "lapsed unconfirmed" : "is replaced (another target)");
	rec.evidence = note[0] ? note : NULL;
	if (bk_audit_stage(&d->audit, &rec) < 0)
		return cmd_refuse(
		    c, BREAKER__STATUS__ERR_NOT_DURABLE,
		    "its audit record could not be staged: nothing changed");
	*pr = (struct bk_proposal){.active = true,
	                           .seq = rec.seq,
	                           .actor = *who,
	                           .expires_mono_ns = bk_now_mono_ns() + window,
	                           .expires_wall_ns = wall + window,
	                           .reason = p->reason,
	                           .all = p->all,
	                           .forced = p->forced,
	                           .target = p->target};
	snprintf(pr->who, sizeof(pr->who), "%s", me);
	snprintf(c->why, sizeof(c->why),
	         "two-person rule: this global resume is proposed (audit seq %llu), "
	         "not applied; a different authorised operator must send the same "
	         "resume within %u s%s%s",
	         (unsigned long long)rec.seq, d->cfg.confirm_window_s,
	         note[0] ? "; " : "", note);
	c->rep.status = BREAKER__STATUS__PENDING_CONFIRMATION;
	c->rep.error = c->why;
	c->rep.has_from_mode = c->rep.has_to_mode = 1;
	c->rep.from_mode = (Breaker__Mode)p->from_mode;
	c->rep.to_mode = (Breaker__Mode)p->to_mode;
	c->rep.has_confirm_by_wall_ns = 1;
	c->rep.confirm_by_wall_ns = pr->expires_wall_ns;
	c->rep.has_audit_seq = 1;
	c->rep.audit_seq = rec.seq;
	if (pack_reply(c->msg, &c->rep) < 0) {
		nng_msg_free(c->msg);
		c->msg = NULL;
	}
	pend(d, c->msg, &rec, BK_GLOBAL, false, false); /* watchers see it */
}

/*
 * A global resume under the two-person rule: true if it goes ahead now, with
 * *ok the proposal it confirms; false if it was answered here (proposed,
 * or refused because its proposer sent it again).
 */
static bool two_person(struct cmd_ctx *c, const struct bk_plan *p,
                       const struct bk_actor *who, struct bk_proposal *ok)
{
	struct bk_proposal *pr = &c->d->auth.proposal;
	uint64_t lapsed = 0;
	char me[BK_WHO_MAX];

	bk_auth_who(&c->peer, me, sizeof(me));
	if (pr->active && bk_now_mono_ns() >= pr->expires_mono_ns) {
		lapsed = pr->seq;
		pr->active = false;
	}
	if (!pr->active || !same_plan(pr, p)) {
		propose(c, p, who, me, pr->active ? pr->seq : 0, lapsed);
		return false;
	}
	if (strcmp(pr->who, me) != 0) {
		*ok = *pr;
		pr->active = false;
		return true;
	}
	snprintf(c->why, sizeof(c->why),
	         "two-person rule: %s proposed this global resume (audit seq %llu); a "
	         "different authorised operator must confirm it",
	         me, (unsigned long long)pr->seq);
	refuse_unauthorised(c, c->why);
	return false;
}

static void do_resume(struct cmd_ctx *c)
{
	const Breaker__Resume *r = c->req->resume;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	uint64_t wall = bk_now_wall_ns();
	struct bk_proposal pr = {0};
	struct bk_actor who;
	struct bk_plan p;
	Breaker__Status st;
	char rearm[400];
	int slot;

	if ((st = resolve_scope(c->d, r->strategy, &slot, c->why, sizeof(c->why))))
		return cmd_refuse(c, st, c->why);
	if (!r->reason || !*r->reason || !text_valid(r->reason, c->d->cfg.reason_max))
		return cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		                  "a resume needs a reason: UTF-8 text without control "
		                  "characters, within the configured length");
	if (c->d->flush_err)
		return cmd_refuse(
		    c, BREAKER__STATUS__ERR_NOT_DURABLE,
		    "the audit log is failing: no resume without its record on disk");
	/* protobuf-c does not check enums: an explicit value must be a real one */
	if (r->has_reason_code && !bk_reason_operator(r->reason_code) &&
	    r->reason_code != BREAKER__REASON_CODE__AUDIT_CORRUPT)
		return cmd_refuse(c, BREAKER__STATUS__ERR_UNKNOWN_REASON,
		                  "unknown reason code");
	if (r->has_to && !bk_mode_valid(r->to))
		return cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		                  "unknown target mode");
	st = bk_state_plan_resume(&c->d->state, slot,
	                          r->has_reason_code ? (int)r->reason_code : -1,
	                          r->has_to ? (int)r->to : -1, r->has_force && r->force,
	                          &p, c->why, sizeof(c->why));
	if (st)
		return cmd_refuse(c, st, c->why);
	if (!p.forced && (condition_holds(c->d, &p, c->why, sizeof(c->why)) ||
	                  lacks_evidence(c->d, &p, c->why, sizeof(c->why))))
		return cmd_refuse(c, BREAKER__STATUS__ERR_CONDITION_HOLDS, c->why);
	if (slot == BK_GLOBAL && !p.forced &&
	    bk_recon_resume_blocked(c->d, c->why, sizeof(c->why)))
		return cmd_refuse(c, BREAKER__STATUS__ERR_RECONCILE_REQUIRED, c->why);
	actor_of(c->d, &c->peer, &who);
	if (slot == BK_GLOBAL && c->d->cfg.two_person_global_resume &&
	    !two_person(c, &p, &who, &pr))
		return;
	cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__RESUME, &who, wall);
	plan_record(&rec, &p, r->strategy);
	if (pr.active) { /* confirmed: the record names both operators */
		rec.has_proposer_uid = rec.has_proposal_seq = 1;
		rec.proposer_uid = pr.actor.uid;
		rec.proposer_user = pr.actor.name;
		rec.proposal_seq = pr.seq;
	}
	rec.reason = r->reason;
	cmd_request_id(c, &rec);
	forced_text(c->d, &p, r->has_to, rearm, sizeof(rearm));
	rec.evidence = rearm[0] ? rearm : NULL;
	c->rep.has_from_mode = c->rep.has_to_mode = 1;
	c->rep.from_mode = (Breaker__Mode)p.from_mode;
	c->rep.to_mode = (Breaker__Mode)p.to_mode;
	/* The record first: a resume that cannot be audited changes nothing
	 * (and a proposal it would have confirmed still waits). */
	if (!stage_and_pend(c->d, c->msg, &c->rep, &rec, slot, true)) {
		if (pr.active)
			c->d->auth.proposal = pr;
		return;
	}
	/* A forced resume never leaves a violated rule blind (issue 12.2). */
	if (p.forced)
		bk_tick_rearm(c->d, slot, p.reason, p.all, true, rearm, sizeof(rearm));
	/* Applied now for later commands' checks; published only once durable. */
	bk_state_apply(&c->d->state, &p, &who, wall, r->reason, rec.seq,
	               c->d->audit.durable_seq, true);
}

static void do_register(struct cmd_ctx *c)
{
	const char *name = c->req->register_->strategy;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	struct bk_actor who;
	int slot;

	if (!name || !bk_strategy_name_valid(name))
		return cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		                  "strategy name must be 1-39 bytes of [A-Za-z0-9._:-]");
	slot = bk_state_register(&c->d->state, name);
	if (slot == -EEXIST)
		return cmd_refuse(c, BREAKER__STATUS__ERR_EXISTS,
		                  "strategy already registered");
	if (slot < 0)
		return cmd_refuse(c, BREAKER__STATUS__ERR_TABLE_FULL,
		                  "strategy table is full");
	bk_shm_add_strategy(&c->d->shm, slot, name);
	bk_cmd_publish_scope(c->d, slot);
	bk_shm_changed(&c->d->shm); /* waiters learn of the new slot too */
	c->d->remote_declared[slot] = c->req->register_->has_remote_telemetry &&
	                              c->req->register_->remote_telemetry;
	bk_cmd_bind_slot(c->d, slot);
	actor_of(c->d, &c->peer, &who);
	cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__REGISTER, &who,
	           bk_now_wall_ns());
	rec.strategy = (char *)name;
	rec.has_slot = 1;
	rec.slot = (uint32_t)slot;
	rec.has_remote_telemetry = c->d->remote_declared[slot];
	rec.remote_telemetry = c->d->remote_declared[slot];
	cmd_request_id(c, &rec);
	stage_and_pend(c->d, c->msg, &c->rep, &rec, slot, false);
}

static void do_report(struct cmd_ctx *c)
{
	const Breaker__Report *r = c->req->report;
	struct bk_tel_snap *s;
	int slot;
	Breaker__Status st;

	if (!r->strategy || !*r->strategy)
		return cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		                  "a report names its strategy");
	if ((st = resolve_scope(c->d, r->strategy, &slot, c->why, sizeof(c->why))))
		return cmd_refuse(c, st, c->why);
	if (!isfinite(r->position) || !isfinite(r->gross) || !isfinite(r->balance) ||
	    !isfinite(r->pnl) || !isfinite(r->fill_cash) || !isfinite(r->fees))
		return cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		                  "report values must be finite numbers");
	/* One declared source per strategy: a Report must not override what
	 * the engine writes in the segment (a rule would go blind). */
	if (!c->d->slots[slot].is_remote) {
		snprintf(
		    c->why, sizeof(c->why),
		    "strategy %s reads its telemetry from the segment: a Report for it "
		    "is refused (a remote engine's strategy is declared: [strategies] "
		    "remote in the config, or breaker register --telemetry remote)",
		    r->strategy);
		return cmd_refuse(c, BREAKER__STATUS__ERR_TELEMETRY_SOURCE, c->why);
	}
	/* Remote engines report the same numbers; the tick reads them from here. */
	s = &c->d->slots[slot].remote;
	/* before this report: a statement taken, and the fill count (see below) */
	bool stated = s->opening_seq != 0;
	uint64_t prev_fills = s->fills;
	bk_auth_who(&c->peer, c->d->slots[slot].remote_from,
	            sizeof(c->d->slots[slot].remote_from));
	s->orders = r->orders;
	s->rejects = r->rejects;
	s->fills = r->fills;
	s->cancels = r->cancels;
	s->position = r->position;
	s->gross = r->gross;
	s->balance = r->balance;
	s->pnl = r->pnl;
	s->fill_cash = r->fill_cash;
	s->fees = r->fees;
	/* before its first fill, a remote engine's balance is its opening
	 * statement (as bk_report_balance): one message is one snapshot. Only
	 * its first such report (or the first after its fill count went back
	 * to 0: it restarted) states it: taking every fills-0 report as a new
	 * statement absorbed an unexplained 75.00 debit before the first fill. */
	if (r->has_balance && r->fills == 0 && (!stated || prev_fills > 0)) {
		s->opening_seq++;
		s->opening_base = r->balance - (r->fill_cash - r->fees);
		s->opening_fills = 0;
	}
	s->heartbeat_ns = bk_now_mono_ns();
	s->consistent = true; /* one message is one snapshot */
	reply_now(c->d, c->msg, &c->rep);
}

/* One strategy's break report, for the reply and for status. */
void bk_recon_report(const struct bk_recon *r, const char *strategy, uint64_t now_mono,
                     Breaker__RuleState *rs)
{
	bool current = bk_recon_current(r, now_mono);

	breaker__rule_state__init(rs);
	rs->rule = "reconciliation";
	rs->strategy = (char *)strategy;
	rs->verdict = (char *)bk_recon_verdict_name(r->verdict);
	if ((r->verdict == BK_RV_OK || r->verdict == BK_RV_BREAK) && !current)
		rs->verdict = "stale";
	rs->has_reconciled = r->verdict != BK_RV_WITHDRAWN && r->verdict != BK_RV_NONE;
	rs->reconciled = r->reconciled;
	rs->has_engine_position =
	    isfinite(r->engine) && rs->has_reconciled && r->verdict != BK_RV_UNKNOWN;
	rs->engine_position = r->engine;
	rs->has_measured = rs->has_engine_position;
	rs->measured = r->brk;
	rs->has_threshold = rs->has_reconciled;
	rs->threshold = r->limit;
	rs->has_utilisation = rs->has_measured && r->limit > 0;
	rs->utilisation = rs->has_utilisation ? r->brk / r->limit : 0;
	rs->has_violated = 1;
	rs->violated = current && r->verdict == BK_RV_BREAK;
}

/*
 * [rules] resume_requires_reconcile: a global resume needs, for every
 * strategy whose reconciliation rule is on and whose engine has shown a fill
 * or a position since breakerd started,
 * a current "ok" verdict posted after the global scope's latest trip.
 */
bool bk_recon_resume_blocked(const struct bk_daemon *d, char *why, size_t len)
{
	const struct bk_scope *g = bk_state_cscope(&d->state, BK_GLOBAL);
	uint64_t trip = 0, mono = bk_now_mono_ns();

	if (!d->cfg.rules.resume_requires_reconcile)
		return false;
	for (unsigned r = 1; r < BK_REASON_COUNT; r++)
		if ((g->active & (1u << r)) && g->latches[r].since_wall_ns > trip)
			trip = g->latches[r].since_wall_ns;
	for (uint32_t i = 0; i < d->state.n_strategies; i++) {
		const struct bk_slot_rules *sr = &d->slots[i];
		const struct bk_recon *rc = &sr->eval.recon;
		const char *name = d->state.strategies[i].name;

		if (!sr->rules || !sr->rules[BK_RULE_RECONCILIATION].enabled ||
		    !bk_recon_active(rc))
			continue;
		if (rc->verdict == BK_RV_OK && bk_recon_current(rc, mono) &&
		    rc->posted_wall_ns > trip)
			continue;
		snprintf(
		    why, len,
		    "resume_requires_reconcile: strategy %s has no reconciliation "
		    "judged ok since the trip (its latest: %s%s); post one with "
		    "'breaker reconcile %s=POS --as-of-fills N', or --force "
		    "(audited as forced)",
		    name, bk_recon_verdict_name(rc->verdict),
		    (rc->verdict == BK_RV_OK || rc->verdict == BK_RV_BREAK)
		        ? (bk_recon_current(rc, mono) ? ", before the trip" : ", stale")
		        : "",
		    name);
		return true;
	}
	return false;
}

/* Validate one position's as-of point; NULL if good, else why. */
static const char *as_of_invalid(const Breaker__Reconcile__Position *p, uint64_t wall)
{
	if (p->has_as_of_fills && p->has_as_of_wall_ns)
		return "give one as-of point: fills or wall time, not both";
	if (p->has_as_of_wall_ns &&
	    (p->as_of_wall_ns == 0 || p->as_of_wall_ns > wall + 1000000000ull))
		return "as-of time is zero or more than 1 s in the future";
	return NULL;
}

/*
 * Reconciliation as of a point (bk_recon.h): each position is judged once,
 * here, against the engine's position at its as-of point; a break trips on
 * the next tick (the rule sees a new verdict), once. Withdrawals end a
 * verdict. Every entry is audited; the reply carries the break report.
 */
static void do_reconcile(struct cmd_ctx *c)
{
	const Breaker__Reconcile *r = c->req->reconcile;
	struct bk_daemon *d = c->d;
	Breaker__StatusInfo info = BREAKER__STATUS_INFO__INIT;
	Breaker__RuleState rs[64], *rsp[64];
	int slots[64], wslots[64];
	uint64_t wall = bk_now_wall_ns(), mono = bk_now_mono_ns();
	size_t i, n = r->n_positions, nw = r->n_withdraw, at = 0;
	char note[512] = "";
	const char *bad;

	if (n + nw == 0 || n > 64 || nw > 64 || n + nw > 64)
		return cmd_refuse(
		    c, BREAKER__STATUS__ERR_BAD_REQUEST,
		    "a reconciliation carries 1-64 positions or withdrawals");
	/* Validate all before applying any: a bad entry changes nothing. */
	for (i = 0; i < n; i++) {
		const Breaker__Reconcile__Position *p = r->positions[i];
		Breaker__Status st =
		    resolve_scope(d, p->strategy, &slots[i], c->why, sizeof(c->why));
		if (st == BREAKER__STATUS__OK && slots[i] == BK_GLOBAL)
			st = BREAKER__STATUS__ERR_BAD_REQUEST;
		if (st == BREAKER__STATUS__OK &&
		    (!p->has_position || !isfinite(p->position)))
			st = BREAKER__STATUS__ERR_BAD_REQUEST;
		if (st) {
			snprintf(c->why, sizeof(c->why),
			         "position %zu: needs a registered "
			         "strategy and a finite position",
			         i);
			return cmd_refuse(c, st, c->why);
		}
		if ((bad = as_of_invalid(p, wall))) {
			snprintf(c->why, sizeof(c->why), "position %zu: %s", i, bad);
			return cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST, c->why);
		}
		for (size_t j = 0; j < i; j++)
			if (slots[j] == slots[i]) {
				snprintf(c->why, sizeof(c->why),
				         "position %zu: strategy given twice", i);
				return cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
				                  c->why);
			}
	}
	for (i = 0; i < nw; i++) {
		Breaker__Status st =
		    resolve_scope(d, r->withdraw[i], &wslots[i], c->why, sizeof(c->why));
		if (st == BREAKER__STATUS__OK && wslots[i] == BK_GLOBAL)
			st = BREAKER__STATUS__ERR_BAD_REQUEST;
		for (size_t j = 0; st == BREAKER__STATUS__OK && j < n; j++)
			if (slots[j] == wslots[i])
				st = BREAKER__STATUS__ERR_BAD_REQUEST;
		if (st) {
			snprintf(c->why, sizeof(c->why),
			         "withdraw %zu: needs a registered strategy not also "
			         "reconciled in the same command",
			         i);
			return cmd_refuse(c, st, c->why);
		}
	}
	if (!bk_cmd_can_accept(d))
		return cmd_refuse(c, BREAKER__STATUS__ERR_INTERNAL, "busy: retry");
	/* Audited: a reconciliation can trip, clear a break and allow a resume. */
	for (i = 0; i < n + nw; i++) {
		Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
		const Breaker__Reconcile__Position *p = i < n ? r->positions[i] : NULL;
		int slot = p ? slots[i] : wslots[i - n];
		struct bk_slot_rules *sr = &d->slots[slot];
		struct bk_recon *rc = &sr->eval.recon;
		struct bk_actor who;
		char text[BK_EVIDENCE_MAX];

		enum bk_recon_verdict v = BK_RV_WITHDRAWN;

		if (p)
			v = bk_recon_post(
			    rc, p->position, p->has_as_of_fills, p->as_of_fills,
			    p->has_as_of_wall_ns ? p->as_of_wall_ns : 0,
			    sr->rules ? sr->rules[BK_RULE_RECONCILIATION].max : 0,
			    d->cfg.rules.recon_max_age_ms, mono, wall);
		else
			bk_recon_withdraw(rc, wall);
		/* a new verdict: a break trips on the next tick, once (an unknown
		 * one changed nothing: a standing break must not trip again) */
		if (!rc->kept_break)
			sr->eval.violating[BK_RULE_RECONCILIATION] = false;
		bk_recon_report(rc, d->state.strategies[slot].name, mono, &rs[i]);
		rsp[i] = &rs[i];
		if (v == BK_RV_UNKNOWN && at < sizeof(note)) {
			int k = snprintf(note + at, sizeof(note) - at,
			                 "%s%s: unknown, %s", at ? "; " : "",
			                 d->state.strategies[slot].name, rc->why);
			at += k > 0 ? (size_t)k : 0;
		}
		if (rc->kept_break)
			snprintf(text, sizeof(text),
			         "reconciled %.2f, verdict unknown: %s", p->position,
			         rc->why);
		else
			bk_recon_evidence(rc, text, sizeof(text));
		actor_of(d, &c->peer, &who);
		cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__RECONCILE, &who, wall);
		rec.strategy = d->state.strategies[slot].name;
		rec.reason = p ? "reconciled position" : "reconciliation withdrawn";
		rec.evidence = text;
		rec.verdict = (char *)bk_recon_verdict_name(v);
		rec.rule = "reconciliation";
		if (p) {
			rec.has_measured = rec.has_threshold = 1;
			rec.measured = p->position;
			rec.threshold = rc->limit;
			rec.has_as_of_fills = p->has_as_of_fills;
			rec.as_of_fills = p->as_of_fills;
			rec.has_as_of_wall_ns = 1;
			rec.as_of_wall_ns =
			    p->has_as_of_wall_ns ? p->as_of_wall_ns : wall;
			rec.has_engine_position = !rc->kept_break && isfinite(rc->engine);
			rec.engine_position = rc->engine;
		}
		cmd_request_id(c, &rec);
		if (i + 1 < n + nw) {
			if (bk_audit_stage(&d->audit, &rec) < 0)
				return cmd_refuse(c, BREAKER__STATUS__ERR_NOT_DURABLE,
				                  "audit staging failed");
			continue;
		}
		info.n_reconciliations = n + nw;
		info.reconciliations = rsp;
		c->rep.info = &info;
		c->rep.error = note[0] ? note : NULL; /* why a verdict is unknown */
		stage_and_pend(d, c->msg, &c->rep, &rec, slot, false);
		c->rep.info = NULL;
	}
}

/*
 * An operator's new base for a level rule (issue 12.2): audited, restricted
 * like a forced resume, applied once staged (the latch is untouched: a
 * resume still has to release it), replayed at boot.
 */
static void do_rebase(struct cmd_ctx *c)
{
	const Breaker__Rebase *r = c->req->rebase;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	struct bk_tel_snap snap;
	struct bk_actor who;
	double before, after;
	Breaker__Status st;
	char text[240];
	int slot, id;

	if ((st = resolve_scope(c->d, r->strategy, &slot, c->why, sizeof(c->why))))
		return cmd_refuse(c, st, c->why);
	if (slot == BK_GLOBAL)
		return cmd_refuse(
		    c, BREAKER__STATUS__ERR_BAD_REQUEST,
		    "a rebase names a strategy: rule bases are per strategy");
	id = r->rule ? bk_rule_parse(r->rule) : -1;
	if (id != BK_RULE_DRAWDOWN && id != BK_RULE_INVARIANT)
		return cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		                  "only drawdown (its peak PnL) and invariant (the "
		                  "balance base) have a base to rebase");
	if (!r->reason || !*r->reason || !text_valid(r->reason, c->d->cfg.reason_max))
		return cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		                  "a rebase needs a reason: UTF-8 text without control "
		                  "characters, within the configured length");
	if (c->d->flush_err)
		return cmd_refuse(
		    c, BREAKER__STATUS__ERR_NOT_DURABLE,
		    "the audit log is failing: no rebase without its record on disk");
	if (bk_tick_snapshot(c->d, slot, &snap) < 0 ||
	    bk_rules_rebase(&c->d->slots[slot].eval, (enum bk_rule_id)id, &snap, &before,
	                    &after) < 0)
		return cmd_refuse(c, BREAKER__STATUS__ERR_INTERNAL,
		                  "the engine's money words are being written, missing "
		                  "or not finite: nothing changed, retry");
	actor_of(c->d, &c->peer, &who);
	cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__REBASE, &who, bk_now_wall_ns());
	snprintf(text, sizeof(text),
	         id == BK_RULE_DRAWDOWN
	             ? "drawdown peak %.4f -> %.4f (the current pnl)"
	             : "balance base %.4f -> %.4f (balance %.4f less fill cash "
	               "%.4f plus fees %.4f)",
	         before, after, snap.balance, snap.fill_cash, snap.fees);
	rec.strategy = c->d->state.strategies[slot].name;
	/* modes unchanged, said so (watchers see the scope as it is) */
	rec.has_from_mode = rec.has_to_mode = 1;
	rec.from_mode = rec.to_mode =
	    (Breaker__Mode)bk_scope_mode(bk_state_cscope(&c->d->state, slot));
	rec.rule = (char *)bk_rule_name((enum bk_rule_id)id);
	rec.reason = r->reason;
	rec.evidence = text;
	rec.has_base_before = rec.has_base_after = rec.has_opening_seq = 1;
	rec.base_before = before;
	rec.base_after = after;
	rec.opening_seq = snap.opening_seq;
	cmd_request_id(c, &rec);
	if (!stage_and_pend(c->d, c->msg, &c->rep, &rec, slot, false))
		return;
	bk_rules_rebase_set(&c->d->slots[slot].eval, (enum bk_rule_id)id, after,
	                    snap.opening_seq);
}

static void do_query(struct cmd_ctx *c, bool all)
{
	const Breaker__Request *q = c->req;
	uint32_t offset = 0, limit = 0;

	if (!all && q->status) {
		offset = q->status->has_offset ? q->status->offset : 0;
		limit = q->status->has_limit ? q->status->limit : 0;
	} else if (all && q->list) {
		offset = q->list->has_offset ? q->list->offset : 0;
		limit = q->list->has_limit ? q->list->limit : 0;
	}
	bk_status_build(c->d, &c->rep, all, offset, limit);
	reply_now(c->d, c->msg, &c->rep);
	bk_status_free(&c->rep);
}

void bk_cmd_handle(struct bk_daemon *d, nng_msg *msg)
{
	struct cmd_ctx c = {.d = d, .msg = msg, .rep = BREAKER__REPLY__INIT};
	Breaker__Request *req;
	size_t len = nng_msg_len(msg);

	bk_server_peer(msg, &c.peer);
	if (len > d->cfg.max_msg) {
		snprintf(c.why, sizeof(c.why),
		         "command of %zu bytes is over the %u-byte limit", len,
		         d->cfg.max_msg);
		count_command(d, BK_CMD_INVALID, BREAKER__STATUS__ERR_TOO_LARGE);
		return refuse(d, msg, 0, BREAKER__STATUS__ERR_TOO_LARGE, c.why);
	}
	req = breaker__request__unpack(NULL, len, nng_msg_body(msg));
	if (!req) {
		count_command(d, BK_CMD_INVALID, BREAKER__STATUS__ERR_BAD_REQUEST);
		return refuse(d, msg, 0, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "malformed command: not a breaker.Request");
	}
	c.req = req;
	c.rep.has_request_id = req->has_request_id;
	c.rep.request_id = req->request_id;
	c.rep.has_status = 1;
	if (wire_has_nul(&breaker__request__descriptor, nng_msg_body(msg), len, 0)) {
		count_command(d, bk_metrics_cmd_type(req->cmd_case),
		              BREAKER__STATUS__ERR_BAD_REQUEST);
		cmd_refuse(&c, BREAKER__STATUS__ERR_BAD_REQUEST,
		           "a name or text field holds a NUL byte: refused whole (it "
		           "would have been cut there)");
		breaker__request__free_unpacked(req, NULL);
		return;
	}
	if (!authorised(&c)) {
		count_command(d, bk_metrics_cmd_type(req->cmd_case),
		              BREAKER__STATUS__ERR_UNAUTHORISED);
		breaker__request__free_unpacked(req, NULL);
		return;
	}
	if (req->cmd_case == BREAKER__REQUEST__CMD_TRIP ||
	    req->cmd_case == BREAKER__REQUEST__CMD_RESUME ||
	    req->cmd_case == BREAKER__REQUEST__CMD_REGISTER ||
	    req->cmd_case == BREAKER__REQUEST__CMD_RECONCILE ||
	    req->cmd_case == BREAKER__REQUEST__CMD_REBASE) {
		c.hash = request_hash(&c);
		if (answer_duplicate(&c)) {
			count_command(d, bk_metrics_cmd_type(req->cmd_case),
			              c.refused ? (unsigned)c.refused
			                        : (unsigned)BREAKER__STATUS__OK);
			breaker__request__free_unpacked(req, NULL);
			return;
		}
	}
	switch (req->cmd_case) {
	case BREAKER__REQUEST__CMD_TRIP:
		do_trip(&c);
		break;
	case BREAKER__REQUEST__CMD_RESUME:
		do_resume(&c);
		break;
	case BREAKER__REQUEST__CMD_REGISTER:
		do_register(&c);
		break;
	case BREAKER__REQUEST__CMD_STATUS:
		do_query(&c, false);
		break;
	case BREAKER__REQUEST__CMD_LIST:
		do_query(&c, true);
		break;
	case BREAKER__REQUEST__CMD_REPORT:
		do_report(&c);
		break;
	case BREAKER__REQUEST__CMD_RECONCILE:
		do_reconcile(&c);
		break;
	case BREAKER__REQUEST__CMD_REBASE:
		do_rebase(&c);
		break;
	default:
		cmd_refuse(&c, BREAKER__STATUS__ERR_BAD_REQUEST,
		           "empty or unknown command");
	}
	/* as decided now: a trip whose flush fails later is also a flush failure */
	count_command(d, bk_metrics_cmd_type(req->cmd_case),
	              c.refused ? (unsigned)c.refused : (unsigned)c.rep.status);
	breaker__request__free_unpacked(req, NULL);
}

/* ---- durability -------------------------------------------------------------- */

static void publish_event(struct bk_daemon *d, const struct bk_pending *p)
{
	Breaker__Event ev = BREAKER__EVENT__INIT;
	const struct bk_scope *sc = NULL;
	uint8_t buf[2048];

	if (p->slot != BK_NO_SCOPE)
		sc = bk_state_cscope(&d->state, p->slot);
	/* the latch's reason text (its first 127 bytes; the log has all of it) */
	if (sc && p->reason_code && p->reason_code < BK_REASON_COUNT)
		ev.reason = (char *)sc->latches[p->reason_code].reason;
	ev.has_audit_seq = ev.has_from_mode = ev.has_to_mode = ev.has_reason_code = 1;
	ev.has_actor_uid = ev.has_wall_ns = ev.has_kind = ev.has_forced = 1;
	ev.audit_seq = p->seq;
	ev.strategy = (sc && sc->name[0]) ? (char *)sc->name : NULL;
	ev.from_mode = (Breaker__Mode)p->from_mode;
	ev.to_mode = (Breaker__Mode)p->to_mode;
	ev.reason_code = (Breaker__ReasonCode)p->reason_code;
	ev.actor_uid = p->uid;
	ev.wall_ns = p->wall_ns;
	ev.kind = p->kind;
	ev.forced = p->forced;
	if (breaker__event__get_packed_size(&ev) <= sizeof(buf))
		bk_server_publish(&d->srv, buf, breaker__event__pack(&ev, buf));
}

void bk_cmd_durable(struct bk_daemon *d)
{
	uint64_t durable = d->audit.durable_seq;
	uint32_t i, end = d->pend_tail;
	bool changed = false;

	/* Resumes become visible first ... */
	for (i = d->pend_tail; i != d->pend_head; i++) {
		struct bk_pending *p = &d->pending[i & (BK_PENDING_MAX - 1)];
		if (p->seq > durable)
			break;
		if (p->republish) {
			bk_cmd_publish_scope(d, p->slot);
			changed = true;
		}
		end = i + 1;
	}
	if (changed)
		bk_shm_changed(&d->shm);
	/* ... then they are acknowledged. */
	for (i = d->pend_tail; i != end; i++) {
		struct bk_pending *p = &d->pending[i & (BK_PENDING_MAX - 1)];
		if (p->reply)
			bk_server_reply(&d->srv, p->reply);
		p->reply = NULL;
		if (!p->quiet)
			publish_event(d, p);
	}
	d->pend_tail = end;
}

void bk_cmd_flush_failed(struct bk_daemon *d, int err)
{
	Breaker__Reply rep = BREAKER__REPLY__INIT;

	/* Trips are in effect already: say so now rather than time out. Resumes
	 * stay unpublished and unacknowledged until their record is on disk.
	 * Refusals changed nothing: their answer goes now, the record later. */
	for (uint32_t i = d->pend_tail; i != d->pend_head; i++) {
		struct bk_pending *p = &d->pending[i & (BK_PENDING_MAX - 1)];
		if (p->reply && p->kind == BREAKER__AUDIT_RECORD__KIND__REFUSED) {
			bk_server_reply(&d->srv, p->reply);
			p->reply = NULL;
		}
		if (!p->reply || p->kind != BREAKER__AUDIT_RECORD__KIND__TRIP)
			continue;
		rep.has_status = rep.has_audit_seq = 1;
		rep.status = BREAKER__STATUS__ERR_NOT_DURABLE;
		rep.audit_seq = p->seq;
		rep.error =
		    "the halt IS in effect, but its audit record is not on disk yet "
		    "(audit log write failing); it will be retried";
		reply_now(d, p->reply, &rep);
		p->reply = NULL;
	}
	if (!d->flush_err)
		bk_err("audit log write failed: %s; trips stay in effect, resumes are "
		       "refused",
		       strerror(-err));
	d->flush_err = err;
}

void bk_cmd_note_trip(struct bk_daemon *d)
{
	d->last_trip_change_seq = atomic_load(&d->shm.shm->change_seq);
	d->last_trip_mono_ns = bk_now_mono_ns();
}

void bk_cmd_bind_slot(struct bk_daemon *d, int slot)
{
	struct bk_slot_rules *sr = &d->slots[slot];

	memset(sr, 0, sizeof(*sr));
	sr->rules = bk_rules_for(&d->cfg.rules, d->state.strategies[slot].name);
	sr->is_remote = d->remote_declared[slot] ||
	                bk_config_remote(&d->cfg, d->state.strategies[slot].name);
	/* a new strategy starts from clean telemetry */
	memset(&d->tel.tel->slots[slot], 0, sizeof(d->tel.tel->slots[slot]));
}

static void system_actor(struct bk_actor *a)
{
	a->uid = (uint32_t)geteuid();
	a->pid = (uint32_t)getpid();
	snprintf(a->name, sizeof(a->name), "breakerd");
}

int bk_cmd_system_trip(struct bk_daemon *d, int slot, unsigned reason, int mode,
                       Breaker__AuditRecord *rec, bool always)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, slot);
	struct bk_actor self;
	const char *why;
	struct bk_plan p;
	uint64_t wall = bk_now_wall_ns();

	if (bk_state_plan_trip(&d->state, slot, (int)reason, mode, &p, &why))
		return -EINVAL;
	if (!always && p.target <= sc->latches[reason].mode)
		return 0; /* already latched at least this far: nothing new to record */
	system_actor(&self);
	if (slot == BK_GLOBAL) /* the situation changed: propose again */
		d->auth.proposal.active = false;
	bk_state_apply(&d->state, &p, &self, wall, rec->reason, d->audit.next_seq,
	               d->audit.durable_seq, true);
	bk_cmd_publish_scope(d, slot);
	bk_shm_changed(&d->shm);
	bk_cmd_note_trip(d);
	count_trip(d, slot, reason);
	fill_record(d, rec, BREAKER__AUDIT_RECORD__KIND__TRIP, &self, wall);
	plan_record(rec, &p, sc->name);
	if (bk_audit_stage(&d->audit, rec) < 0) {
		bk_err("audit staging failed for the daemon's own trip: it is in effect");
		return -EIO;
	}
	pend(d, NULL, rec, slot, false, false);
	return 0;
}

void bk_cmd_system_step(struct bk_daemon *d, int slot, unsigned reason, int to,
                        Breaker__AuditRecord *rec)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, slot);
	struct bk_actor self;
	struct bk_plan p;
	char why[256];
	uint64_t wall = bk_now_wall_ns();

	const char *rule;

	/* Only a latch the daemon raised itself and no operator tripped since,
	 * and only once no strategy still breaks the rule (a global latch may
	 * be held up by several). */
	if (!(sc->active & (1u << reason)) || sc->latches[reason].mode <= to ||
	    sc->latches[reason].operator_owned ||
	    strcmp(sc->latches[reason].actor.name, "breakerd") != 0 ||
	    bk_tick_condition_holds(d, slot, reason, &rule) || !bk_cmd_can_accept(d))
		return;
	/* forced: a step may skip a stage (HALTED -> CAUTIOUS), and says so */
	if (bk_state_plan_resume(&d->state, slot, (int)reason, to, true, &p, why,
	                         sizeof(why)))
		return;
	system_actor(&self);
	fill_record(d, rec, BREAKER__AUDIT_RECORD__KIND__RESUME, &self, wall);
	plan_record(rec, &p, sc->name);
	if (bk_audit_stage(&d->audit, rec) < 0)
		return;
	bk_state_apply(&d->state, &p, &self, wall, rec->reason, rec->seq,
	               d->audit.durable_seq, true);
	pend(d, NULL, rec, slot, true, false);
	bk_info("rule cooldown: %s %s latch stepped to %s once durable",
	        sc->name[0] ? sc->name : "global", bk_reason_name(reason),
	        bk_mode_str((enum bk_mode)to));
}
