/*
 * bk_pending - replies that wait for their audit record to be durable, and
 * what durability (or a failed flush) releases: resumes published, acks
 * sent, events. A trip's flip never waits here; a resume's does.
 */
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_daemon.h"
#include "bk_log.h"

void bk_reply_send(struct bk_daemon *d, struct bk_route *route, const uint8_t *buf,
                   size_t len)
{
	if (route->transport != BK_ROUTE_NONE) {
		if (route->start_ns)
			bk_metrics_command_done(d, bk_now_mono_ns() - route->start_ns);
		d->replier.send(d->replier.ctx, route, buf, len);
	}
	route->transport = BK_ROUTE_NONE;
}

/* rep packed into a buffer of its own (malloc); NULL when out of memory. */
static uint8_t *pack(const Breaker__Reply *rep, size_t *len)
{
	uint8_t *buf;

	*len = breaker__reply__get_packed_size(rep);
	if ((buf = malloc(*len ? *len : 1)))
		breaker__reply__pack(rep, buf);
	return buf;
}

void bk_reply_now(struct bk_daemon *d, struct bk_route *route, const Breaker__Reply *rep)
{
	uint8_t small[1024], *buf = small;
	size_t len = breaker__reply__get_packed_size(rep);

	if (route->transport == BK_ROUTE_NONE)
		return;
	if (len > sizeof(small) && !(buf = pack(rep, &len))) {
		bk_reply_send(d, route, NULL, 0); /* out of memory: it times out */
		return;
	}
	if (buf == small)
		breaker__reply__pack(rep, small);
	bk_reply_send(d, route, buf, len);
	if (buf != small)
		free(buf);
}

void bk_reply_refuse(struct bk_daemon *d, struct bk_route *route, uint64_t id,
                     Breaker__Status st, const char *why)
{
	Breaker__Reply rep = BREAKER__REPLY__INIT;

	rep.has_request_id = 1;
	rep.request_id = id;
	rep.has_status = 1;
	rep.status = st;
	rep.error = (char *)why;
	bk_reply_now(d, route, &rep);
}

bool bk_pending_can_accept(const struct bk_daemon *d)
{
	return d->pend_head - d->pend_tail < BK_PENDING_MAX &&
	       d->audit.staged_len + 2 * BK_AUDIT_RECORD_MAX < BK_AUDIT_BATCH_BYTES;
}

bool bk_pending_can_stage(const struct bk_daemon *d, size_t records)
{
	return d->pend_head - d->pend_tail < BK_PENDING_MAX &&
	       d->audit.staged_len +
	               records * (BK_AUDIT_FRAME_HDR + BK_AUDIT_RECORD_MAX) <=
	           BK_AUDIT_BATCH_BYTES;
}

/* The next free entry, cleared, holding route and rep (packed); NULL when
 * the ring is full (route then answered ERR_NOT_DURABLE). */
static struct bk_pending *take(struct bk_daemon *d, struct bk_route *route,
                               const Breaker__Reply *rep, uint64_t seq)
{
	struct bk_pending *p;

	if (d->pend_head - d->pend_tail >= BK_PENDING_MAX) {
		/* commands wait for room (bk_pending_can_accept) before they are
		 * handled, so only the daemon's own records get here, with nobody
		 * waiting: the record is staged and will be durable; its event is
		 * dropped. Should an answer wait anyway, it is told, not dropped. */
		if (route && route->transport != BK_ROUTE_NONE) {
			Breaker__Reply no = *rep;

			no.has_status = no.has_audit_seq = 1;
			no.status = BREAKER__STATUS__ERR_NOT_DURABLE;
			no.audit_seq = seq;
			no.error = "its audit record is staged, but too many answers "
			           "wait for the audit log: not known to be on disk yet";
			bk_reply_now(d, route, &no);
		}
		return NULL;
	}
	p = &d->pending[d->pend_head++ & (BK_PENDING_MAX - 1)];
	memset(p, 0, sizeof(*p));
	p->seq = seq;
	if (route && route->transport != BK_ROUTE_NONE) {
		/* out of memory: no answer, the caller times out */
		if (!(p->reply = pack(rep, &p->reply_len)))
			bk_reply_send(d, route, NULL, 0);
		p->route = *route; /* the entry holds it now (NONE if released) */
		route->transport = BK_ROUTE_NONE;
	}
	return p;
}

bool bk_pending_add(struct bk_daemon *d, struct bk_route *route,
                    const Breaker__Reply *rep, const Breaker__AuditRecord *rec, int slot,
                    bool republish, bool quiet)
{
	struct bk_pending *p = take(d, route, rep, rec->seq);

	if (!p)
		return false;
	p->slot = slot;
	p->republish = republish;
	p->quiet = quiet;
	p->kind = rec->kind;
	p->from_mode = (uint8_t)rec->from_mode;
	p->to_mode = (uint8_t)rec->to_mode;
	p->reason_code = (uint8_t)rec->reason_code;
	p->forced = rec->forced;
	p->has_modes = rec->has_from_mode && rec->has_to_mode;
	p->uid = rec->uid;
	p->wall_ns = rec->wall_ns;
	snprintf(p->reason, sizeof(p->reason), "%s", rec->reason ? rec->reason : "");
	snprintf(p->cn, sizeof(p->cn), "%s", rec->peer_cn ? rec->peer_cn : "");
	snprintf(p->gone, sizeof(p->gone), "%s",
	         rec->kind == BREAKER__AUDIT_RECORD__KIND__UNREGISTER && rec->strategy
	             ? rec->strategy
	             : "");
	return true;
}

bool bk_pending_ack(struct bk_daemon *d, struct bk_route *route,
                    const Breaker__Reply *rep, uint64_t seq)
{
	struct bk_pending *p = take(d, route, rep, seq);

	if (!p)
		return false;
	p->slot = BK_NO_SCOPE;
	p->quiet = true;
	return true;
}

/* Send p's stored answer, if anyone waits for it. */
static void answer(struct bk_daemon *d, struct bk_pending *p)
{
	bk_reply_send(d, &p->route, p->reply, p->reply_len);
	free(p->reply);
	p->reply = NULL;
}

void bk_publish_scope(struct bk_daemon *d, int slot)
{
	const struct bk_scope *sc = bk_state_cscope(&d->state, slot);
	struct bk_limit_set lim;
	uint64_t since, word;
	uint32_t mask;

	if (!sc)
		return;
	bk_tickskip_all(&d->skip);    /* a new word: the tick looks at every strategy */
	if (BK_SLOT_IS_GROUP(slot)) { /* no limits entry: members carry it */
		bk_group_publish(d, BK_SLOT_GROUP(slot));
		return;
	}
	if (sc->gone) { /* a tombstone: an engine that cached it stays stopped */
		bk_shm_publish(&d->shm, slot,
		               BK_STATE_PACK(BK_HALTED, BK_R_KILL_SWITCH, 0),
		               1u << BK_R_KILL_SWITCH, 0);
		return;
	}
	if (slot >= 0) /* a member's word is folded with its groups' */
		word =
		    bk_group_folded(&d->state, slot, d->audit.durable_seq, &since, &mask);
	else
		word = bk_scope_published(sc, d->audit.durable_seq, &since, &mask);
	bk_etcd_fold(d, slot, &word, &mask, &since); /* firm latches; no-op without */
	bk_limits_pub_before(d, slot, &lim);
	bk_shm_publish(&d->shm, slot, word, mask, since);
	bk_limits_pub_after(d, slot, &lim);
}

static void publish_event(struct bk_daemon *d, const struct bk_pending *p)
{
	Breaker__Event ev = BREAKER__EVENT__INIT;
	const struct bk_scope *sc = NULL;
	uint8_t buf[BK_EVENT_REASON_MAX + 512];

	if (p->slot != BK_NO_SCOPE)
		sc = bk_state_cscope(&d->state, p->slot);
	/* the record's own reason, whole: a resume's is the resumer's, not the
	 * trip's still held in the latch */
	ev.reason = p->reason[0] ? (char *)p->reason : NULL;
	/* a reconciliation or a registration changes no mode: none to show */
	ev.has_from_mode = ev.has_to_mode = p->has_modes;
	ev.has_audit_seq = ev.has_reason_code = 1;
	ev.has_actor_uid = ev.has_wall_ns = ev.has_kind = ev.has_forced = 1;
	ev.audit_seq = p->seq;
	ev.strategy =
	    (sc && sc->name[0] && !BK_SLOT_IS_GROUP(p->slot)) ? (char *)sc->name : NULL;
	ev.group = (sc && BK_SLOT_IS_GROUP(p->slot)) ? (char *)sc->name : NULL;
	if (p->gone[0]) /* unregistered: the slot has no name any more */
		ev.strategy = (char *)p->gone;
	ev.from_mode = (Breaker__Mode)p->from_mode;
	ev.to_mode = (Breaker__Mode)p->to_mode;
	ev.reason_code = (Breaker__ReasonCode)p->reason_code;
	ev.actor_uid = p->uid;
	ev.wall_ns = p->wall_ns;
	ev.kind = p->kind;
	ev.forced = p->forced;
	ev.actor_cn = p->cn[0] ? (char *)p->cn : NULL;
	if (breaker__event__get_packed_size(&ev) <= sizeof(buf))
		bk_server_publish(&d->srv, buf, breaker__event__pack(&ev, buf));
	bk_page_note(&d->page_recent, &ev);
}

void bk_pending_durable(struct bk_daemon *d)
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
			bk_publish_scope(d, p->slot);
			changed = true;
		}
		end = i + 1;
	}
	if (changed)
		bk_shm_changed(&d->shm);
	/* ... then they are acknowledged, every caller before any event: an
	 * event's nng send took a few us that the next caller's ack waited for
	 * (group commit answers several at once) ... */
	for (i = d->pend_tail; i != end; i++)
		answer(d, &d->pending[i & (BK_PENDING_MAX - 1)]);
	/* ... then the events go out, in order. */
	for (i = d->pend_tail; i != end; i++) {
		struct bk_pending *p = &d->pending[i & (BK_PENDING_MAX - 1)];
		if (!p->quiet)
			publish_event(d, p);
	}
	d->pend_tail = end;
}

void bk_pending_flush_failed(struct bk_daemon *d, int err)
{
	Breaker__Reply rep = BREAKER__REPLY__INIT;

	/* Trips are in effect already: say so now rather than time out. Resumes
	 * stay unpublished and unacknowledged until their record is on disk.
	 * Refusals changed nothing: their answer goes now, the record later. */
	for (uint32_t i = d->pend_tail; i != d->pend_head; i++) {
		struct bk_pending *p = &d->pending[i & (BK_PENDING_MAX - 1)];
		if (p->reply && p->kind == BREAKER__AUDIT_RECORD__KIND__REFUSED)
			answer(d, p);
		if (!p->reply || p->kind != BREAKER__AUDIT_RECORD__KIND__TRIP)
			continue;
		rep.has_status = rep.has_audit_seq = 1;
		rep.status = BREAKER__STATUS__ERR_NOT_DURABLE;
		rep.audit_seq = p->seq;
		rep.error =
		    "the halt IS in effect, but its audit record is not on disk yet "
		    "(audit log write failing); it will be retried";
		free(p->reply);
		p->reply = NULL;
		bk_reply_now(d, &p->route, &rep);
	}
	if (!d->flush_err)
		bk_err("audit log write failed: %s; trips stay in effect, resumes are "
		       "refused",
		       strerror(-err));
	d->flush_err = err;
}
