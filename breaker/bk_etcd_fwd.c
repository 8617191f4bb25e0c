/*
 * bk_etcd_fwd - `--firm` commands through this breakerd (bk_etcd_fwd.h).
 *
 * One thread, a small queue: the loop checks and audits a command, queues
 * the etcd call and goes on; the thread makes it (blocking, with the
 * [cluster] timeouts) and marks it done; the loop's tick trylocks and sends
 * the answers. A full queue refuses (nothing written anywhere). A trip's
 * etcd call goes at once (its record is staged, flushed beside it); a
 * resume's waits until its FIRM_FORWARDED record is durable (refused if it
 * is not within FWD_TIMEOUT_MS): no firm release without its audit record.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_cmd.h"
#include "bk_etcd.h"
#include "bk_etcd_fwd.h"
#include "bk_etcd_kv.h"
#include "bk_log.h"
#include "bk_mode.h"
#include "bk_text.h"

#define FWD_JOBS       16
#define FWD_TIMEOUT_MS 2000 /* per etcd call; the CLI waits 5 s by default */

struct fwd_job {
	bool used, done;
	bool ready;          /* the thread may make the etcd call */
	uint64_t durable_by; /* mono: a resume's record durable by then, or refused */
	struct bk_route route;
	bool has_rid;
	uint64_t rid, audit_seq;
	bool resume;
	int from, to;
	int64_t seen; /* resume: the condition */
	char key[BK_ETCD_KEY_MAX];
	char val[1536]; /* "": delete (a resume to ACTIVE) */
	int64_t rev;    /* done: revision, or -errno */
	char err[200];
};

struct bk_fwd {
	pthread_t thr;
	bool started;
	atomic_bool stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fwd_job jobs[FWD_JOBS];
	struct bk_etcd_conn conn; /* the thread's */
	const struct bk_daemon *d;
};

static void *fwd_main(void *arg)
{
	struct bk_fwd *f = arg;

	pthread_mutex_lock(&f->mu);
	while (!atomic_load(&f->stop)) {
		struct fwd_job *j = NULL;
		for (int i = 0; i < FWD_JOBS && !j; i++)
			if (f->jobs[i].used && f->jobs[i].ready && !f->jobs[i].done)
				j = &f->jobs[i];
		if (!j) {
			pthread_cond_wait(&f->cv, &f->mu);
			continue;
		}
		pthread_mutex_unlock(&f->mu); /* the loop only reads done jobs */
		/* first where the probe last reached the quorum: a cut member
		 * would cost the whole call timeout before the next one is tried */
		int good = bk_etcd_good_member(f->d);
		if (good >= 0 && good < f->conn.n)
			f->conn.cur = good;
		int64_t rev = j->resume ? bk_etcd_cas(&f->conn, j->key, j->seen,
		                                      j->val[0] ? j->val : NULL)
		                        : bk_etcd_put(&f->conn, j->key, j->val, 0);
		pthread_mutex_lock(&f->mu);
		j->rev = rev;
		snprintf(j->err, sizeof(j->err), "%s", f->conn.err);
		j->done = true;
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int bk_fwd_start(struct bk_daemon *d)
{
	const struct bk_config *g = &d->cfg;
	struct bk_fwd *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	if (bk_etcd_conn_init(&f->conn, g->cluster_endpoints, FWD_TIMEOUT_MS) < 0) {
		free(f);
		return -EINVAL;
	}
	if (g->cluster_user[0]) {
		char pw[128];
		int rv = bk_etcd_read_secret(g->cluster_password_file, pw, sizeof(pw));
		if (rv) {
			bk_etcd_conn_free(&f->conn);
			free(f);
			return rv;
		}
		bk_etcd_conn_auth(&f->conn, g->cluster_user, pw);
	}
	f->d = d;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	if (pthread_create(&f->thr, NULL, fwd_main, f)) {
		bk_etcd_conn_free(&f->conn);
		free(f);
		return -EAGAIN;
	}
	f->started = true;
	d->fwd = f;
	return 0;
}

void bk_fwd_stop(struct bk_daemon *d)
{
	struct bk_fwd *f = d->fwd;

	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	atomic_store(&f->stop, true);
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thr, NULL);
	bk_etcd_conn_free(&f->conn);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	d->fwd = NULL;
	free(f);
}

static void answer(struct bk_daemon *d, struct fwd_job *j)
{
	Breaker__Reply rep = BREAKER__REPLY__INIT;
	char why[320];

	rep.has_request_id = j->has_rid;
	rep.request_id = j->rid;
	rep.has_status = 1;
	rep.has_audit_seq = 1;
	rep.audit_seq = j->audit_seq;
	if (j->rev > 0) {
		rep.status = BREAKER__STATUS__OK;
		rep.has_firm_revision = 1;
		rep.firm_revision = (uint64_t)j->rev;
		rep.has_firm_from_mode = j->resume;
		rep.firm_from_mode = j->from;
		rep.has_to_mode = 1;
		rep.to_mode = (Breaker__Mode)j->to;
	} else {
		rep.status = j->rev == -EIO ? BREAKER__STATUS__ERR_NOT_DURABLE
		                            : BREAKER__STATUS__ERR_FIRM;
		snprintf(why, sizeof(why), "%s: %s; nothing was changed", j->key,
		         j->rev == -ESTALE ? "changed since revision as seen: look again "
		                             "with 'breaker status --firm'"
		         : j->rev == -EACCES
		             ? "etcd refused breakerd's user"
		             : (j->err[0] ? j->err : "etcd did not answer"));
		rep.error = why;
	}
	bk_reply_now(d, &j->route, &rep);
}

void bk_fwd_tick(struct bk_daemon *d)
{
	struct bk_fwd *f = d->fwd;

	if (!f || pthread_mutex_trylock(&f->mu))
		return;
	for (int i = 0; i < FWD_JOBS; i++) {
		struct fwd_job *j = &f->jobs[i];
		if (!j->used)
			continue;
		if (!j->ready && d->audit.durable_seq >= j->audit_seq) {
			j->ready = true; /* a resume: its record is on disk now */
			pthread_cond_signal(&f->cv);
		} else if (!j->ready && bk_now_mono_ns() > j->durable_by) {
			j->rev = -EIO; /* never made: refused, nothing changed */
			snprintf(j->err, sizeof(j->err),
			         "its audit record is not durable (the log's disk?)");
			j->done = true;
		}
		if (j->done) {
			answer(d, j);
			j->used = j->done = j->ready = false;
		}
	}
	pthread_mutex_unlock(&f->mu);
}

/* JSON-escape s into out. */
static void esc(const char *s, char *out, size_t len)
{
	size_t o = 0;

	for (; *s && o + 7 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			o += (size_t)snprintf(out + o, len - o, "\\%c", ch);
		else if (ch < 0x20)
			o += (size_t)snprintf(out + o, len - o, "\\u%04x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
}

static void latch_value(struct bk_cmd *c, const struct bk_actor *who, int mode,
                        int reason, const char *text, char *out, size_t len)
{
	char t[1024], a[96], host[64] = "";

	gethostname(host, sizeof(host) - 1);
	esc(text ? text : "", t, sizeof(t));
	esc(who->name, a, sizeof(a));
	snprintf(out, len,
	         "{\"mode\":\"%s\",\"reason_code\":\"%s\",\"actor\":\"%s\",\"uid\":%u,"
	         "\"reason\":\"%s\",\"command_id\":\"%llu\",\"time_ns\":\"%llu\","
	         "\"host\":\"%s\",\"via\":\"breakerd\"}",
	         bk_mode_name(mode), bk_reason_name((unsigned)reason), a,
	         (unsigned)c->peer.uid, t,
	         (unsigned long long)(c->req->has_request_id ? c->req->request_id : 0),
	         (unsigned long long)bk_now_wall_ns(), host);
}

/* Scope "global", "strategy/S" or "group/G" of the command; false if bad. */
static bool scope_of(struct bk_cmd *c, char *buf, size_t len)
{
	const char *s = NULL, *g = NULL, *why;

	if (c->req->cmd_case == BREAKER__REQUEST__CMD_TRIP) {
		const Breaker__Trip *t = c->req->trip;
		if (t->n_strategies + t->n_groups + (t->strategy != NULL) > 1)
			return false; /* the CLI sends one scope per command */
		s = t->strategy ? t->strategy : t->n_strategies ? t->strategies[0] : NULL;
		g = t->n_groups ? t->groups[0] : NULL;
	} else {
		s = c->req->resume->strategy;
		g = c->req->resume->group;
	}
	if (s && !bk_strategy_name_valid(s))
		return false;
	if (g && bk_group_tag_check(g, &why))
		return false;
	if (s)
		snprintf(buf, len, "strategy/%s", s);
	else if (g)
		snprintf(buf, len, "group/%s", g);
	else
		snprintf(buf, len, "global");
	return true;
}

static struct fwd_job *job_slot(struct bk_fwd *f)
{
	for (int i = 0; i < FWD_JOBS; i++)
		if (!f->jobs[i].used)
			return &f->jobs[i];
	return NULL;
}

/* A resume: the latch as this host mirrors it, one stage down unless forced,
 * the two-person rule for global. False if answered here. */
static bool plan_resume(struct bk_cmd *c, const char *scope, const struct bk_actor *who,
                        int *reason, int *from, int *to, struct bk_proposal *ok)
{
	const Breaker__Resume *r = c->req->resume;
	bool force = r->has_force && r->force;
	int64_t mod_rev;
	int rv;

	*reason = r->has_reason_code ? (int)r->reason_code : -1;
	if (!r->has_firm_seen_revision || !r->firm_seen_revision) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "a firm resume needs the latch's mod_revision as seen "
		              "(--revision N)");
		return false;
	}
	rv = bk_etcd_view_latch(c->d, scope, reason, from, &mod_rev);
	if (rv) {
		snprintf(
		    c->why, sizeof(c->why), "firm %s: %s; nothing was changed", scope,
		    rv == -ENOENT   ? "no such firm latch"
		    : rv == -EEXIST ? "several firm latches: name one with --reason-code"
		                    : "not mirrored from etcd yet");
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_FIRM, c->why);
		return false;
	}
	*to = r->has_to ? (int)r->to : *from - 1;
	if (*to >= *from || (!force && *to != *from - 1)) {
		snprintf(c->why, sizeof(c->why),
		         "firm %s %s is %s: %s %s%s; nothing was changed", scope,
		         bk_reason_name((unsigned)*reason), bk_mode_name(*from),
		         *to >= *from ? "not a resume to" : "skips a stage to",
		         bk_mode_name(*to), *to >= *from ? "" : " (--force)");
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST, c->why);
		return false;
	}
	if (strcmp(scope, "global") == 0 && c->d->cfg.two_person_global_resume) {
		struct bk_plan p = {.slot = BK_GLOBAL,
		                    .reason = (unsigned)*reason,
		                    .forced = force,
		                    .resume = true,
		                    .firm = true, /* never confirms a local proposal */
		                    .target = (uint8_t)*to,
		                    .from_mode = (uint8_t)*from,
		                    .to_mode = (uint8_t)*to};
		if (!bk_cmd_two_person(c, &p, who, ok))
			return false;
	}
	return true;
}

void bk_fwd_command(struct bk_cmd *c)
{
	struct bk_daemon *d = c->d;
	struct bk_fwd *f = d->fwd;
	bool resume = c->req->cmd_case == BREAKER__REQUEST__CMD_RESUME;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	char scope[BK_ETCD_SCOPE_MAX], key[BK_ETCD_KEY_MAX], val[1536] = "";
	const char *text = resume ? c->req->resume->reason : c->req->trip->reason;
	struct bk_proposal pr = {.active = false};
	struct bk_actor who;
	struct fwd_job *j;
	int reason, from = 0, to;
	int64_t seq;

	if (!f || !d->etcd) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "--firm: this breakerd has no [cluster] section");
		return;
	}
	if (!scope_of(c, scope, sizeof(scope))) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "--firm: one valid scope per command (global, a strategy "
		              "or a group)");
		return;
	}
	if (text && !bk_text_valid(text, d->cfg.reason_max)) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "reason text must be UTF-8 without control characters, "
		              "within the configured length");
		return;
	}
	bk_actor_cached(d, &c->peer, &who);
	bk_actor_lookup(d, &who);
	if (resume) {
		if (!plan_resume(c, scope, &who, &reason, &from, &to, &pr))
			return;
	} else {
		const Breaker__Trip *t = c->req->trip;
		if (!t->has_reason_code || !bk_reason_operator(t->reason_code)) {
			bk_cmd_refuse(
			    c, BREAKER__STATUS__ERR_UNKNOWN_REASON,
			    "a trip needs a known reason code (e.g. manual_halt)");
			return;
		}
		reason = (int)t->reason_code;
		to = t->has_mode ? (int)t->mode : BK_HALTED;
	}
	if (bk_etcd_latch_key(key, sizeof(key), d->cfg.cluster_name, scope,
	                      bk_reason_name((unsigned)reason))) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "scope name too long for a key");
		return;
	}
	if (to > BK_ACTIVE)
		latch_value(c, &who, to, reason, text, val, sizeof(val));
	pthread_mutex_lock(&f->mu);
	j = job_slot(f);
	pthread_mutex_unlock(&f->mu);
	if (!j) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_FIRM,
		              "too many --firm commands in flight: nothing was changed; "
		              "send it again");
		return;
	}
	/* the record first: no firm change leaves here unaudited */
	bk_cmd_record(c, &rec, BREAKER__AUDIT_RECORD__KIND__FIRM_FORWARDED, &who,
	              bk_now_wall_ns());
	bk_cmd_request_id(c, &rec);
	rec.command = resume ? "resume" : "trip";
	rec.firm_key = key;
	rec.reason = (char *)text;
	rec.has_reason_code = 1;
	rec.reason_code = (Breaker__ReasonCode)reason;
	rec.has_latch_mode = 1;
	rec.latch_mode = (Breaker__Mode)to;
	if (resume) {
		rec.has_firm_revision = 1;
		rec.firm_revision = c->req->resume->firm_seen_revision;
	}
	if (pr.active) { /* confirmed: the record names both operators */
		rec.has_proposer_uid = rec.has_proposal_seq = 1;
		rec.proposer_uid = pr.actor.uid;
		rec.proposer_user = pr.actor.name;
		rec.proposal_seq = pr.seq;
	}
	if ((seq = bk_audit_stage(&d->audit, &rec)) < 0) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_NOT_DURABLE,
		              "its audit record could not be staged: nothing changed");
		return;
	}
	pthread_mutex_lock(&f->mu);
	*j = (struct fwd_job){
	    .used = true,
	    .route = c->route,
	    .has_rid = c->req->has_request_id,
	    .rid = c->req->request_id,
	    .audit_seq = rec.seq,
	    .resume = resume,
	    /* a trip goes now; a resume once its record is durable */
	    .ready = !resume,
	    .durable_by = bk_now_mono_ns() + FWD_TIMEOUT_MS * 1000000ull,
	    .from = from,
	    .to = to,
	    .seen = resume ? (int64_t)c->req->resume->firm_seen_revision : 0};
	snprintf(j->key, sizeof(j->key), "%s", key);
	snprintf(j->val, sizeof(j->val), "%s", val);
	c->route.transport = BK_ROUTE_NONE; /* the job answers */
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}
