/*
 * bk_record - who did it and the common fields of an audit record: the
 * caller's name (cached; a lookup may go to NSS), the daemon as actor, and a
 * plan's modes on a record.
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

/* The caller's name from the cache: false when it needs a lookup (a->name
 * then holds "uid<N>"). */
bool bk_actor_cached(struct bk_daemon *d, const struct bk_peer *peer, struct bk_actor *a)
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
void bk_actor_lookup(struct bk_daemon *d, struct bk_actor *a)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (getpwuid_r(a->uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(a->name, sizeof(a->name), "%s", pw.pw_name);
	d->uid_cache[d->uid_next].uid = a->uid;
	memcpy(d->uid_cache[d->uid_next].name, a->name, sizeof(a->name));
	d->uid_next = (d->uid_next + 1) % BK_UID_CACHE;
}

void bk_actor_of(struct bk_daemon *d, const struct bk_peer *peer, struct bk_actor *a)
{
	if (!bk_actor_cached(d, peer, a))
		bk_actor_lookup(d, a);
}

void bk_record_fill(struct bk_daemon *d, Breaker__AuditRecord *rec,
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

void bk_record_plan(Breaker__AuditRecord *rec, const struct bk_plan *p, const char *scope)
{
	rec->strategy = p->slot == BK_GLOBAL ? NULL : (char *)scope;
	if (BK_SLOT_IS_GROUP(p->slot)) { /* a group scope is named as one */
		rec->group = (char *)scope;
		rec->strategy = NULL;
	}
	rec->has_from_mode = rec->has_to_mode = rec->has_latch_mode = 1;
	rec->has_reason_code = rec->has_forced = 1;
	rec->from_mode = (Breaker__Mode)p->from_mode;
	rec->to_mode = (Breaker__Mode)p->to_mode;
	rec->latch_mode = (Breaker__Mode)p->target;
	rec->reason_code = (Breaker__ReasonCode)p->reason;
	rec->forced = p->forced;
}

int64_t bk_record_stage_system(struct bk_daemon *d, Breaker__AuditRecord *rec)
{
	struct bk_actor self = {.uid = (uint32_t)geteuid(), .pid = (uint32_t)getpid()};

	snprintf(self.name, sizeof(self.name), "breakerd");
	if (!rec->has_kind)
		rec->has_kind = 1;
	bk_record_fill(d, rec, rec->kind, &self, bk_now_wall_ns());
	return bk_audit_stage(&d->audit, rec);
}

void bk_actor_self(struct bk_actor *a)
{
	a->uid = (uint32_t)geteuid();
	a->pid = (uint32_t)getpid();
	snprintf(a->name, sizeof(a->name), "breakerd");
}
