#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_auth.h"
#include "bk_log.h"

static const unsigned act_perm[BK_ACT_COUNT] = {
    BK_PERM_TRIP, BK_PERM_KILL, BK_PERM_RESUME, BK_PERM_FORCE, BK_PERM_REPORT};

/* ---- group membership, resolved at start ------------------------------------ */

static void add_member(struct bk_auth *a, enum bk_act act, uint32_t uid)
{
	for (int i = 0; i < a->n_members[act]; i++)
		if (a->members[act][i] == uid)
			return;
	if (a->n_members[act] < BK_AUTH_MEMBERS)
		a->members[act][a->n_members[act]++] = uid;
	else
		bk_warn("[auth] %s: over %d group members; uid %u left out",
		        bk_act_name(act), BK_AUTH_MEMBERS, uid);
}

/* Members of group gid by the group database (gr_mem; primary members are
 * matched by the caller's own gid instead). */
static void add_group(struct bk_auth *a, enum bk_act act, gid_t gid)
{
	struct group gr, *res = NULL;
	size_t len = 16384;
	char *buf = NULL, *tmp;
	int rv;

	do { /* big groups need big buffers */
		if (!(tmp = realloc(buf, len)))
			break;
		buf = tmp;
		rv = getgrgid_r(gid, &gr, buf, len, &res);
		len *= 2;
	} while (rv == ERANGE && len <= (1u << 22));
	for (char **m = res ? gr.gr_mem : NULL; m && *m; m++) {
		struct passwd pw, *pres = NULL;
		char pbuf[4096];
		if (getpwnam_r(*m, &pw, pbuf, sizeof(pbuf), &pres) == 0 && pres)
			add_member(a, act, (uint32_t)pw.pw_uid);
	}
	free(buf);
}

void bk_auth_init(struct bk_auth *a, const struct bk_config *cfg)
{
	struct bk_acl acl;

	memset(a, 0, sizeof(*a));
	for (int act = 0; act < BK_ACT_COUNT; act++) {
		bk_config_acl(cfg, (enum bk_act)act, &acl);
		for (int i = 0; !acl.any && i < acl.n_gids; i++)
			add_group(a, (enum bk_act)act, acl.gids[i]);
	}
}

/* ---- decisions ------------------------------------------------------------------- */

static bool acl_allows(const struct bk_auth *a, const struct bk_config *cfg,
                       enum bk_act act, const struct bk_peer *p)
{
	struct bk_acl acl;

	bk_config_acl(cfg, act, &acl);
	if (acl.any)
		return true;
	for (int i = 0; i < acl.n_uids; i++)
		if (acl.uids[i] == p->uid)
			return true;
	for (int i = 0; i < acl.n_gids; i++)
		if (acl.gids[i] == p->gid)
			return true;
	for (int i = 0; i < a->n_members[act]; i++)
		if (a->members[act][i] == p->uid)
			return true;
	return false;
}

unsigned bk_auth_perms(const struct bk_auth *a, const struct bk_config *cfg,
                       const struct bk_peer *p)
{
	unsigned perms = BK_PERM_QUERY;
	struct bk_acl acl;

	if (p->local) {
		for (int act = 0; act < BK_ACT_COUNT; act++)
			if (acl_allows(a, cfg, (enum bk_act)act, p))
				perms |= act_perm[act];
		/* force is a kind of resume: it needs both */
		return perms & BK_PERM_RESUME ? perms : perms & ~(unsigned)BK_PERM_FORCE;
	}
	if (p->tls) {
		switch (bk_config_role(cfg, p->cn)) {
		case BK_ROLE_OPERATOR: /* people: telemetry is the engines' */
			return BK_PERM_ALL & ~(unsigned)BK_PERM_REPORT;
		case BK_ROLE_TRADER:
			return BK_PERM_QUERY | BK_PERM_TRIP | BK_PERM_KILL;
		case BK_ROLE_ENGINE:
			return BK_PERM_QUERY | BK_PERM_REPORT;
		default:
			return 0; /* a valid certificate, but nobody we know */
		}
	}
	/* No identity: plaintext TCP, or a caller that hung up before its command
	 * was read. Where certificates are the way in, that may be one without
	 * a role: nothing. Else only what anyone may do. */
	if (strncmp(cfg->tcp_url, "tls+", 4) == 0)
		return 0;
	for (int act = BK_ACT_TRIP; act <= BK_ACT_KILL; act++) {
		bk_config_acl(cfg, (enum bk_act)act, &acl);
		perms |= acl.any ? act_perm[act] : 0;
	}
	return perms;
}

static const char *missing_act(unsigned missing)
{
	return missing & BK_PERM_TRIP     ? "trip"
	       : missing & BK_PERM_KILL   ? "kill"
	       : missing & BK_PERM_RESUME ? "resume"
	       : missing & BK_PERM_REPORT ? "report"
	                                  : "force";
}

void bk_auth_why(const struct bk_config *cfg, const struct bk_peer *p, unsigned missing,
                 const char *verb, char *buf, size_t len)
{
	const char *act = missing_act(missing);
	enum bk_role role;

	if (p->local) {
		snprintf(buf, len, "uid %u (gid %u) may not %s ([auth] %s_uids/%s_gids)",
		         p->uid, p->gid, verb, act, act);
		return;
	}
	if (!p->tls && strncmp(cfg->tcp_url, "tls+", 4) == 0) {
		snprintf(
		    buf, len,
		    "the caller hung up before breakerd could identify it (certificate "
		    "callers must be identified to %s)",
		    verb);
		return;
	}
	if (!p->tls) {
		snprintf(
		    buf, len,
		    "plaintext TCP callers are anonymous: they may only trip, and only "
		    "while [auth] lets anyone; use tls+tcp:// with a client "
		    "certificate to %s",
		    verb);
		return;
	}
	role = bk_config_role(cfg, p->cn);
	if (!p->cn[0])
		snprintf(buf, len, "the client certificate has no single CN, so no role");
	else if (role == BK_ROLE_NONE)
		snprintf(buf, len, "certificate CN '%s' has no role in [tls] roles",
		         p->cn);
	else
		snprintf(buf, len,
		         "certificate CN '%s' has role %s, which may not %s (%s may)",
		         p->cn, bk_role_name(role), verb,
		         missing & BK_PERM_REPORT ? "engine" : "operator");
}

void bk_auth_who(const struct bk_peer *p, char *buf, size_t len)
{
	if (p->local)
		snprintf(buf, len, "uid %u", p->uid);
	else if (p->tls)
		snprintf(buf, len, "cn %s", p->cn);
	else
		snprintf(buf, len, "plaintext tcp");
}

/* ---- the refusal rate limit ------------------------------------------------------- */

/* Tokens earned since last_ns; the fraction of one stays for the next call
 * (the tick calls this every 100 us: rounding each time would earn nothing). */
static void refill(struct bk_auth_bucket *b, uint64_t now)
{
	const uint64_t unit = 1000000u / BK_AUTH_RATE; /* ns per thousandth */
	uint64_t add;

	if (now <= b->last_ns)
		return;
	add = (now - b->last_ns) / unit;
	if (add >= BK_AUTH_BURST * 1000u - b->tokens_m) {
		b->tokens_m = BK_AUTH_BURST * 1000u;
		b->last_ns = now;
		return;
	}
	b->tokens_m += (uint32_t)add;
	b->last_ns += add * unit;
}

/* Hand b's unrecorded refusals over to *due, clear them. */
static void take_summary(struct bk_auth *a, struct bk_auth_bucket *b,
                         struct bk_auth_bucket *due)
{
	*due = *b;
	b->suppressed = 0;
	a->suppressing--;
}

static struct bk_auth_bucket *bucket_for(struct bk_auth *a, const struct bk_peer *p,
                                         uint64_t now, struct bk_auth_bucket *due)
{
	struct bk_auth_bucket *b = NULL;
	char who[BK_WHO_MAX];

	bk_auth_who(p, who, sizeof(who));
	for (int i = 0; i < BK_AUTH_BUCKETS; i++) {
		if (strcmp(a->bucket[i].who, who) == 0)
			return &a->bucket[i];
		if (!b || !a->bucket[i].who[0] ||
		    (b->who[0] && a->bucket[i].used_ns < b->used_ns))
			b = &a->bucket[i];
	}
	/* a new caller takes a free bucket, or the one least recently used,
	 * whose unrecorded refusals are summarised now rather than lost */
	if (b->who[0] && b->suppressed)
		take_summary(a, b, due);
	memset(b, 0, sizeof(*b));
	snprintf(b->who, sizeof(b->who), "%s", who);
	b->peer = *p;
	b->tokens_m = BK_AUTH_BURST * 1000u;
	b->last_ns = now;
	return b;
}

bool bk_auth_admit(struct bk_auth *a, const struct bk_peer *p, uint64_t now,
                   struct bk_auth_bucket *due)
{
	struct bk_auth_bucket *b;

	due->suppressed = 0;
	b = bucket_for(a, p, now, due);
	refill(b, now);
	b->used_ns = now;
	if (b->suppressed && b->tokens_m >= 1000) {
		b->tokens_m -= 1000; /* the summary costs a token too */
		take_summary(a, b, due);
	}
	if (b->tokens_m >= 1000) {
		b->tokens_m -= 1000;
		return true;
	}
	if (b->suppressed++ == 0)
		a->suppressing++;
	return false;
}

bool bk_auth_due(struct bk_auth *a, uint64_t now, struct bk_auth_bucket *due)
{
	if (!a->suppressing)
		return false;
	for (int i = 0; i < BK_AUTH_BUCKETS; i++) {
		struct bk_auth_bucket *b = &a->bucket[i];
		if (!b->suppressed)
			continue;
		refill(b, now);
		if (b->tokens_m < 1000)
			continue;
		b->tokens_m -= 1000;
		take_summary(a, b, due);
		return true;
	}
	return false;
}
