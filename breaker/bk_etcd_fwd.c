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
 * A trip's answer waits for both: etcd's revision, and its record durable
 * (or the log failing: then "in effect, not on disk", as a local trip).
 *
 * A trip of several scopes is one etcd transaction (every latch at one
 * revision, or none). A request id is applied once, as a local command's
 * (bk_cmd_dedupe.c): a resend while the job is in flight waits for the same
 * answer; after, it gets the answer kept in a small ring (the revision);
 * a command etcd did not apply is forgotten, so its retry goes again.
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
#define FWD_SCOPES     64   /* per trip, as locally: one txn (etcd allows 128 ops) */
#define FWD_WAITERS    4    /* resends of an in-flight job */
#define FWD_ANSWERS    64   /* answers kept for later resends */

struct fwd_job {
	bool used, done;
	bool ready;          /* the thread may make the etcd call */
	uint64_t durable_by; /* mono: the record durable by then, or not durable */
	struct bk_route route;
	struct bk_route waiters[FWD_WAITERS]; /* resends while in flight */
	int n_waiters;
	bool has_rid;
	uint64_t rid, audit_seq;
	bool resume;
	int from, to;
	int64_t seen; /* resume: the condition */
	int n_keys;   /* a trip: every scope's key, one txn */
	char keys[FWD_SCOPES][BK_ETCD_KEY_MAX];
	char val[1536]; /* "": delete (a resume to ACTIVE) */
	int64_t rev;    /* done: revision, or -errno */
	char err[200];
};

/* What a forwarded command was answered (for a resend of its request id). */
struct fwd_answer {
	uint64_t audit_seq; /* its FIRM_FORWARDED record; 0: free */
	int64_t rev;
	bool resume, durable;
	int from, to;
};

struct bk_fwd {
	pthread_t thr;
	bool started;
	atomic_bool stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fwd_job jobs[FWD_JOBS];
	struct bk_etcd_conn conn;               /* the thread's */
	struct fwd_answer answers[FWD_ANSWERS]; /* the loop's alone */
	unsigned next_answer;
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
		const char *keys[FWD_SCOPES];
		for (int i = 0; i < j->n_keys; i++)
			keys[i] = j->keys[i];
		int64_t rev = j->resume ? bk_etcd_cas(&f->conn, j->keys[0], j->seen,
		                                      j->val[0] ? j->val : NULL)
		              : j->n_keys > 1
		                  ? bk_etcd_put_all(&f->conn, keys, j->n_keys, j->val)
		                  : bk_etcd_put(&f->conn, j->keys[0], j->val, 0);
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
	struct bk_fwd *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	if (bk_etcd_conn_open(d, &f->conn, FWD_TIMEOUT_MS) < 0) {
		free(f);
		return -EINVAL;
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

/* The reply to a forwarded command (or to a resend of it): what etcd and
 * the log made of it. key names the latch(es) in a refusal. */
static void answer_route(struct bk_daemon *d, struct bk_route *route, bool has_rid,
                         uint64_t rid, const struct fwd_answer *a, const char *key,
                         const char *err)
{
	Breaker__Reply rep = BREAKER__REPLY__INIT;
	char why[400];

	rep.has_request_id = has_rid;
	rep.request_id = rid;
	rep.has_status = 1;
	rep.has_audit_seq = 1;
	rep.audit_seq = a->audit_seq;
	if (a->rev > 0) {
		rep.status = BREAKER__STATUS__OK;
		rep.has_firm_revision = 1;
		rep.firm_revision = (uint64_t)a->rev;
		rep.has_firm_from_mode = a->resume;
		rep.firm_from_mode = a->from;
		rep.has_to_mode = 1;
		rep.to_mode = (Breaker__Mode)a->to;
		if (!a->durable) { /* a trip: in etcd, but its record not on disk */
			rep.status = BREAKER__STATUS__ERR_NOT_DURABLE;
			snprintf(
			    why, sizeof(why),
			    "the firm halt IS in effect at etcd revision %lld, but its "
			    "audit record (seq %llu) is not on disk on this host yet "
			    "(audit log write failing); it will be retried",
			    (long long)a->rev, (unsigned long long)a->audit_seq);
			rep.error = why;
		}
	} else {
		rep.status = a->rev == -EIO ? BREAKER__STATUS__ERR_NOT_DURABLE
		                            : BREAKER__STATUS__ERR_FIRM;
		snprintf(why, sizeof(why), "%s: %s; nothing was changed", key,
		         a->rev == -ESTALE ? "changed since revision as seen: look again "
		                             "with 'breaker status --firm'"
		         : a->rev == -EACCES
		             ? "etcd refused breakerd's user"
		             : (err && err[0] ? err : "etcd did not answer"));
		rep.error = why;
	}
	bk_reply_now(d, route, &rep);
}

/* Answer j and its resends; keep the answer (applied) or forget the id (not). */
static void finish(struct bk_daemon *d, struct bk_fwd *f, struct fwd_job *j, bool durable)
{
	struct fwd_answer a = {.audit_seq = j->audit_seq,
	                       .rev = j->rev,
	                       .resume = j->resume,
	                       .durable = durable || j->resume,
	                       .from = j->from,
	                       .to = j->to};
	char key[BK_ETCD_KEY_MAX + 48];

	snprintf(key, sizeof(key), "%s%s", j->keys[0],
	         j->n_keys > 1 ? " and the other latches of its transaction" : "");
	answer_route(d, &j->route, j->has_rid, j->rid, &a, key, j->err);
	for (int i = 0; i < j->n_waiters; i++)
		answer_route(d, &j->waiters[i], j->has_rid, j->rid, &a, key, j->err);
	if (j->rev > 0)
		f->answers[f->next_answer++ % FWD_ANSWERS] = a;
	else /* nothing applied: the same id may be sent again */
		bk_cmd_forget(d, !j->resume, j->has_rid ? j->rid : 0, j->audit_seq);
}

void bk_fwd_tick(struct bk_daemon *d)
{
	struct bk_fwd *f = d->fwd;
	uint64_t now;

	if (!f || pthread_mutex_trylock(&f->mu))
		return;
	now = bk_now_mono_ns();
	for (int i = 0; i < FWD_JOBS; i++) {
		struct fwd_job *j = &f->jobs[i];
		bool durable;

		if (!j->used)
			continue;
		durable = d->audit.durable_seq >= j->audit_seq;
		if (!j->ready && durable) {
			j->ready = true; /* a resume: its record is on disk now */
			pthread_cond_signal(&f->cv);
		} else if (!j->ready && now > j->durable_by) {
			j->rev = -EIO; /* never made: refused, nothing changed */
			snprintf(j->err, sizeof(j->err),
			         "its audit record is not durable (the log's disk?)");
			j->done = true;
		}
		/* a trip in etcd answers once its record is durable too, or the
		 * log is failing, or it is late: then "in effect, not on disk" */
		if (!j->done || (j->rev > 0 && !j->resume && !durable && !d->flush_err &&
		                 now <= j->durable_by))
			continue;
		finish(d, f, j, durable);
		j->used = j->done = j->ready = false;
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

/* One scope ("strategy/S" or "group/G") into out[n] unless already there. */
static int add_scope(char (*out)[BK_ETCD_SCOPE_MAX], int n, const char *kind,
                     const char *name)
{
	char one[BK_ETCD_SCOPE_MAX];

	if ((size_t)snprintf(one, sizeof(one), "%s/%s", kind, name) >= sizeof(one))
		return -1;
	for (int i = 0; i < n; i++)
		if (strcmp(out[i], one) == 0)
			return n; /* named twice: one latch */
	if (n >= FWD_SCOPES)
		return -2;
	memcpy(out[n], one, sizeof(one));
	return n + 1;
}

/*
 * The scopes of the command: "global", or each "strategy/S" and "group/G"
 * it names (a trip: all of them, one etcd transaction). The count, -1 if a
 * name is bad (*bad: it), -2 if more than FWD_SCOPES.
 */
static int scopes_of(struct bk_cmd *c, char (*out)[BK_ETCD_SCOPE_MAX], const char **bad)
{
	const char *why;
	int n = 0;

	if (c->req->cmd_case == BREAKER__REQUEST__CMD_TRIP) {
		const Breaker__Trip *t = c->req->trip;
		for (size_t i = 0; i <= t->n_strategies && n >= 0; i++) {
			const char *s =
			    i < t->n_strategies ? t->strategies[i] : t->strategy;
			if (!s)
				continue;
			if (!bk_strategy_name_valid(s) ||
			    (n = add_scope(out, n, "strategy", s)) == -1) {
				*bad = s;
				return -1;
			}
		}
		for (size_t i = 0; i < t->n_groups && n >= 0; i++) {
			if (bk_group_tag_check(t->groups[i], &why) ||
			    (n = add_scope(out, n, "group", t->groups[i])) == -1) {
				*bad = t->groups[i];
				return -1;
			}
		}
	} else {
		const char *s = c->req->resume->strategy, *g = c->req->resume->group;
		*bad = s && g ? "--strategy with --group: one scope per resume"
		       : s    ? s
		              : g;
		if ((s && g) || (s && !bk_strategy_name_valid(s)) ||
		    (g && bk_group_tag_check(g, &why)))
			return -1;
		if ((s || g) &&
		    (n = add_scope(out, 0, s ? "strategy" : "group", s ? s : g)) < 0)
			return -1;
	}
	if (n == 0)
		snprintf(out[n++], BK_ETCD_SCOPE_MAX, "global");
	return n;
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

/* A resend of the forwarded command whose record is seq: it waits for the
 * job's answer, or gets the kept one; never a second etcd call. */
static void resent(struct bk_cmd *c, struct bk_fwd *f, uint64_t seq)
{
	uint64_t id = c->req->request_id;

	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < FWD_JOBS; i++) {
		struct fwd_job *j = &f->jobs[i];
		if (!j->used || j->audit_seq != seq)
			continue;
		if (j->n_waiters < FWD_WAITERS) {
			j->waiters[j->n_waiters++] = c->route;
			c->route.transport = BK_ROUTE_NONE; /* the job answers */
			pthread_mutex_unlock(&f->mu);
			return;
		}
		pthread_mutex_unlock(&f->mu);
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_FIRM,
		              "this request id is in flight to etcd already: nothing "
		              "was sent again; ask again in a moment");
		return;
	}
	pthread_mutex_unlock(&f->mu);
	for (int i = 0; i < FWD_ANSWERS; i++)
		if (f->answers[i].audit_seq == seq) {
			answer_route(c->d, &c->route, true, id, &f->answers[i], "", NULL);
			c->route.transport = BK_ROUTE_NONE;
			return;
		}
	snprintf(c->why, sizeof(c->why),
	         "request id %llu was forwarded already (audit seq %llu) and its "
	         "answer is no longer kept here: nothing was sent again; see "
	         "'breaker status --firm'",
	         (unsigned long long)id, (unsigned long long)seq);
	bk_cmd_refuse(c, BREAKER__STATUS__ERR_FIRM, c->why);
}

void bk_fwd_command(struct bk_cmd *c)
{
	struct bk_daemon *d = c->d;
	struct bk_fwd *f = d->fwd;
	bool resume = c->req->cmd_case == BREAKER__REQUEST__CMD_RESUME;
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	char scopes[FWD_SCOPES][BK_ETCD_SCOPE_MAX], keys[FWD_SCOPES][BK_ETCD_KEY_MAX];
	char *keyp[FWD_SCOPES], val[1536] = "";
	const char *text = resume ? c->req->resume->reason : c->req->trip->reason;
	struct bk_proposal pr = {.active = false};
	struct bk_actor who;
	struct fwd_job *j;
	int reason, from = 0, to, n, dup;
	const char *bad = "";
	uint64_t seq;

	if (!f || !d->etcd) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
		              "--firm: this breakerd has no [cluster] section");
		return;
	}
	/* a request id applied once, as for a local command */
	c->hash = bk_cmd_request_hash(c);
	if ((dup = bk_cmd_dedupe_find(c, !resume, &seq)) != 0) {
		if (dup > 0)
			resent(c, f, seq);
		return;
	}
	if ((n = scopes_of(c, scopes, &bad)) == -2)
		snprintf(c->why, sizeof(c->why),
		         "--firm: at most %d scopes in one trip (one etcd transaction); "
		         "nothing was changed",
		         FWD_SCOPES);
	else if (n < 0)
		snprintf(c->why, sizeof(c->why),
		         "--firm: bad scope '%.80s' (strategy: 1-%u bytes of "
		         "[A-Za-z0-9._:-]; group: KIND:VALUE); nothing was changed",
		         bad, BK_NAME_MAX - 1);
	if (n < 0) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST, c->why);
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
		if (!plan_resume(c, scopes[0], &who, &reason, &from, &to, &pr))
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
	for (int i = 0; i < n; i++) {
		if (bk_etcd_latch_key(keys[i], sizeof(keys[i]), d->cfg.cluster_name,
		                      scopes[i], bk_reason_name((unsigned)reason))) {
			bk_cmd_refuse(c, BREAKER__STATUS__ERR_BAD_REQUEST,
			              "scope name too long for a key");
			return;
		}
		keyp[i] = keys[i];
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
	rec.firm_key = keys[0];
	if (n > 1) { /* one transaction: the record names every key */
		rec.n_firm_keys = (size_t)n;
		rec.firm_keys = keyp;
	}
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
	if (bk_audit_stage(&d->audit, &rec) < 0) {
		bk_cmd_refuse(c, BREAKER__STATUS__ERR_NOT_DURABLE,
		              "its audit record could not be staged: nothing changed");
		return;
	}
	bk_cmd_remember(d, &rec); /* a resend of its id: answered, not sent again */
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
	    .seen = resume ? (int64_t)c->req->resume->firm_seen_revision : 0,
	    .n_keys = n};
	for (int i = 0; i < n; i++)
		memcpy(j->keys[i], keys[i], sizeof(keys[i]));
	snprintf(j->val, sizeof(j->val), "%s", val);
	c->route.transport = BK_ROUTE_NONE; /* the job answers */
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}
