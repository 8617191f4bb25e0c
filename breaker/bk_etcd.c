/*
 * bk_etcd - firm-wide latches mirrored from etcd; quorum contact proven by
 * this host itself (see bk_etcd.h for the contract).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/sha.h>

#include "bk_anchor.h"
#include "bk_daemon.h"
#include "bk_etcd.h"
#include "bk_etcd_kv.h"
#include "bk_etcd_fwd.h"
#include "bk_log.h"

#define NS_PER_MS 1000000ull

struct bk_etcd {
	int wake_fd; /* eventfd: the loop applies a changed mirror at once */
	char prefix[BK_ETCD_KEY_MAX / 2]; /* /breaker/v1/<cluster>/ */
	char latch_prefix[BK_ETCD_KEY_MAX / 2];
	char host[64];
	char endpoints[1024];
	char save_path[4200];         /* state_dir/firm-mirror.json: restart from it */
	char user[64], password[128]; /* etcd authentication ("": none) */
	char cfg_tls[3][PATH_MAX];    /* [cluster] cert_file, key_file, ca_file */
	bool loaded; /* the mirror came from it: watch from its revision */
	uint64_t t1_ns, t2_ns, probe_ns, probe_timeout_ns;
	uint32_t lease_s;
	pthread_t watch_thr, probe_thr;
	bool started_watch, started_probe;
	atomic_bool stop;

	/* the mirror: written by the watch thread under mu */
	pthread_mutex_t mu;
	struct bk_etcd_latch mirror[BK_ETCD_LATCHES];
	int n_mirror;
	bool overflow;                   /* more latches than we hold: fail closed */
	bool mirrored;                   /* a whole read made it (since start) */
	int64_t applied;                 /* last revision applied */
	uint64_t gen;                    /* bumped on every change */
	uint64_t set_hash;               /* of (key, mod_revision) in the mirror */
	atomic_uint_fast64_t contact_ns; /* mono: last linearizable read's send */
	atomic_uint_fast64_t behind_ns;  /* mono: since when the probe saw more */
	/* which member (index in endpoints) gave the probe's last linearizable
	 * answer (-1: none yet), and which one last failed it, when: the watch
	 * and the forwarder go where the quorum answers, not where they were */
	atomic_int good_member, failed_member;
	atomic_uint_fast64_t failed_ns;
	atomic_bool caught_up;
	atomic_int_fast64_t applied_a; /* applied, for the probe's acks */
	atomic_uint resyncs;

	/* the loop's copy */
	uint64_t seen_gen;
	struct bk_etcd_latch view[BK_ETCD_LATCHES];
	int n_view;
	bool view_overflow, view_ready;
	int64_t view_applied;
	uint64_t boot_ns;
	bool link_lost; /* the loop saw no contact for T1: say when it is back */
	struct bk_etcd_latch prev[BK_ETCD_LATCHES]; /* the view before, to audit */
	int n_prev;
	struct bk_anchor *anchor; /* the audit chain head in etcd (bk_anchor.h) */
};

/* A connection to the cluster with this host's credentials: endpoints,
 * user/password (read once at start), [cluster] certificate. */
static int open_conn(const struct bk_etcd *e, struct bk_etcd_conn *c, long timeout_ms)
{
	int rv = bk_etcd_conn_init(c, e->endpoints, timeout_ms);

	if (rv)
		return rv;
	bk_etcd_conn_auth(c, e->user, e->password);
	bk_etcd_conn_tls(c, e->cfg_tls[0], e->cfg_tls[1], e->cfg_tls[2]);
	return 0;
}

/* Tell the loop the mirror changed: it applies it now, not at its next
 * tick (2 ms apart while nothing moves: bk_idle.h). Never blocks: an
 * eventfd counter does not fill. */
static void wake_loop(const struct bk_etcd *e)
{
	uint64_t one = 1;

	if (e->wake_fd >= 0 && write(e->wake_fd, &one, sizeof(one)) < 0)
		bk_debug("firm-wide: eventfd write: %s", strerror(errno));
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int bk_etcd_latch_key(char *buf, size_t len, const char *cluster, const char *scope,
                      const char *reason)
{
	int n = snprintf(buf, len, "/breaker/v1/%s/latch/%s/%s", cluster, scope, reason);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

void bk_etcd_latch_parse(struct bk_etcd_latch *l, const char *json)
{
	cJSON *v = cJSON_Parse(json);
	const cJSON *m = v ? cJSON_GetObjectItem(v, "mode") : NULL;
	const cJSON *a = v ? cJSON_GetObjectItem(v, "actor") : NULL;
	int mode = cJSON_IsString(m) ? bk_mode_parse(m->valuestring) : -1;

	/* when in doubt, HALTED: a firm latch we cannot read still holds */
	l->mode = mode > BK_ACTIVE ? (uint8_t)mode : BK_HALTED;
	l->uid = (uint32_t)bk_etcd_i64(v, "uid");
	l->time_ns = (uint64_t)bk_etcd_i64(v, "time_ns");
	snprintf(l->actor, sizeof(l->actor), "%s",
	         cJSON_IsString(a) ? a->valuestring : "unknown");
	cJSON_Delete(v);
}

/* key = latch_prefix + scope + "/" + reason: split into l. False if not ours. */
static bool latch_from_key(const struct bk_etcd *e, const char *key,
                           struct bk_etcd_latch *l)
{
	size_t plen = strlen(e->latch_prefix);
	const char *rest = key + plen, *slash;
	int reason;

	if (strncmp(key, e->latch_prefix, plen) != 0 || !(slash = strrchr(rest, '/')) ||
	    slash == rest || (size_t)(slash - rest) >= sizeof(l->scope))
		return false;
	memset(l, 0, sizeof(*l));
	memcpy(l->scope, rest, (size_t)(slash - rest));
	reason = bk_reason_parse(slash + 1);
	/* an unknown reason is still a latch: held as manual_halt, HALTED */
	l->reason = reason > 0 && reason < 32 ? (uint8_t)reason : BK_R_MANUAL_HALT;
	return true;
}

static uint64_t kv_hash(const char *key, int64_t mod_rev)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a, then the revision */

	for (const char *p = key; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return (h ^ (uint64_t)mod_rev) * 1099511628211ull;
}

/* ---- the mirror (watch thread, under mu) ---- */

static int mirror_find(const struct bk_etcd *e, const struct bk_etcd_latch *l)
{
	for (int i = 0; i < e->n_mirror; i++)
		if (e->mirror[i].reason == l->reason &&
		    strcmp(e->mirror[i].scope, l->scope) == 0)
			return i;
	return -1;
}

static void mirror_rehash(struct bk_etcd *e)
{
	char key[BK_ETCD_KEY_MAX];
	const char *rn;

	e->set_hash = 0;
	for (int i = 0; i < e->n_mirror; i++) {
		rn = bk_reason_name(e->mirror[i].reason);
		snprintf(key, sizeof(key), "%s%s/%s", e->latch_prefix, e->mirror[i].scope,
		         rn ? rn : "?");
		e->set_hash += kv_hash(key, e->mirror[i].mod_rev);
	}
}

/* One kv (key and value decoded) put or deleted at mod_rev. */
static void mirror_apply(struct bk_etcd *e, const char *key, const char *val, bool del,
                         int64_t mod_rev)
{
	struct bk_etcd_latch l;
	int i;

	if (!latch_from_key(e, key, &l))
		return;
	i = mirror_find(e, &l);
	if (del) {
		if (i >= 0)
			e->mirror[i] = e->mirror[--e->n_mirror];
		return;
	}
	bk_etcd_latch_parse(&l, val);
	l.mod_rev = mod_rev;
	SHA256((const unsigned char *)val, strlen(val), l.vhash);
	if (i < 0 && e->n_mirror == BK_ETCD_LATCHES) {
		e->overflow = true;
		return;
	}
	e->mirror[i < 0 ? e->n_mirror++ : i] = l;
}

/* A kv object from the gateway: {"key": b64, "value": b64, "mod_revision": "N"}. */
static void apply_kv(struct bk_etcd *e, const cJSON *kv, bool del)
{
	const cJSON *k = cJSON_GetObjectItem(kv, "key"),
	            *v = cJSON_GetObjectItem(kv, "value");
	char key[BK_ETCD_KEY_MAX], val[BK_ETCD_VAL_MAX];

	if (!cJSON_IsString(k) || bk_etcd_unb64(k->valuestring, key, sizeof(key)) < 0)
		return;
	val[0] = '\0';
	if (cJSON_IsString(v) && bk_etcd_unb64(v->valuestring, val, sizeof(val)) < 0)
		snprintf(val, sizeof(val), "unreadable"); /* parses as HALTED */
	mirror_apply(e, key, val, del, bk_etcd_i64(kv, "mod_revision"));
}

/*
 * The mirror and its revision to state_dir/firm-mirror.json (watch thread,
 * the mirror's only writer, outside mu), so that a restarted breakerd watches from that
 * revision + 1 instead of reading everything again. Best effort: a lost or stale file
 * only means more to replay (or a whole read, if etcd compacted past it).
 */
static void mirror_save(const struct bk_etcd *e)
{
	char tmp[sizeof(e->save_path) + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", e->save_path);
	if (!(f = fopen(tmp, "w")))
		return;
	fprintf(f, "{\"prefix\":\"%s\",\"revision\":\"%lld\",\"latches\":[", e->prefix,
	        (long long)e->applied);
	for (int i = 0; i < e->n_mirror; i++) {
		const struct bk_etcd_latch *l = &e->mirror[i];
		fprintf(f,
		        "%s{\"scope\":\"%s\",\"reason\":%u,\"mode\":%u,\"uid\":%u,"
		        "\"mod_revision\":\"%lld\",\"time_ns\":\"%llu\"}",
		        i ? "," : "", l->scope, l->reason, l->mode, l->uid,
		        (long long)l->mod_rev, (unsigned long long)l->time_ns);
	}
	fputs("]}\n", f);
	if (fclose(f) == 0)
		rename(tmp, e->save_path);
}

/* At start: the mirror as a previous breakerd left it. True if loaded. */
static bool mirror_load(struct bk_etcd *e)
{
	static char buf[BK_ETCD_LATCHES * 256];
	const cJSON *l, *p;
	size_t n = 0;
	cJSON *j;
	FILE *f = fopen(e->save_path, "r");

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (!(j = cJSON_Parse(buf)))
		return false;
	p = cJSON_GetObjectItem(j, "prefix");
	if (!cJSON_IsString(p) || strcmp(p->valuestring, e->prefix) != 0 ||
	    bk_etcd_i64(j, "revision") <= 0) {
		cJSON_Delete(j);
		return false;
	}
	cJSON_ArrayForEach(l, cJSON_GetObjectItem(j, "latches"))
	{
		struct bk_etcd_latch *m = &e->mirror[e->n_mirror];
		const cJSON *s = cJSON_GetObjectItem(l, "scope");
		int reason = (int)bk_etcd_i64(l, "reason"),
		    mode = (int)bk_etcd_i64(l, "mode");

		if (e->n_mirror == BK_ETCD_LATCHES || !cJSON_IsString(s) ||
		    strlen(s->valuestring) >= sizeof(m->scope) || reason <= 0 ||
		    reason >= 32)
			continue;
		memset(m, 0, sizeof(*m));
		snprintf(m->scope, sizeof(m->scope), "%s", s->valuestring);
		m->reason = (uint8_t)reason;
		m->mode =
		    mode > BK_ACTIVE && mode <= BK_HALTED ? (uint8_t)mode : BK_HALTED;
		m->uid = (uint32_t)bk_etcd_i64(l, "uid");
		m->mod_rev = bk_etcd_i64(l, "mod_revision");
		m->time_ns = (uint64_t)bk_etcd_i64(l, "time_ns");
		snprintf(m->actor, sizeof(m->actor), "(mirrored)");
		e->n_mirror++;
	}
	e->applied = bk_etcd_i64(j, "revision");
	mirror_rehash(e);
	cJSON_Delete(j);
	return true;
}

/* Read latch/ whole: the mirror is replaced. 0 or -errno. */
static int full_read(struct bk_etcd *e, struct bk_etcd_conn *c)
{
	const cJSON *kvs, *kv;
	cJSON *rep;
	int64_t rev;
	int err;

	if ((err = bk_etcd_range_prefix(c, e->latch_prefix, false, false, &rep, &rev)))
		return err;
	kvs = cJSON_GetObjectItem(rep, "kvs");
	pthread_mutex_lock(&e->mu);
	e->n_mirror = 0;
	e->overflow = false;
	cJSON_ArrayForEach(kv, kvs) apply_kv(e, kv, false);
	e->applied = rev;
	e->mirrored = true;
	mirror_rehash(e);
	e->gen++;
	pthread_mutex_unlock(&e->mu);
	wake_loop(e);
	mirror_save(e); /* only this thread writes the mirror: no lock needed */
	atomic_store(&e->applied_a, rev);
	cJSON_Delete(rep);
	return 0;
}

/* ---- the watch stream ---- */

struct stream {
	struct bk_etcd *e;
	char *buf;
	size_t len, cap;
	bool resync;  /* cancelled or compacted: read whole again */
	bool created; /* the server confirmed the watch */
	uint64_t started_ns;
	int member; /* the endpoint it is on */
};

/* One line of the stream: {"result": WatchResponse} or {"error": ...}. */
static void stream_line(struct stream *s, const char *line)
{
	struct bk_etcd *e = s->e;
	cJSON *msg = cJSON_Parse(line);
	const cJSON *r = msg ? cJSON_GetObjectItem(msg, "result") : NULL, *ev, *evs;
	int64_t top = 0;

	if (!r) {
		bk_warn("etcd watch: %s",
		        msg ? "error from the gateway" : "unreadable line");
		s->resync = true;
		cJSON_Delete(msg);
		return;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItem(r, "created")) && !s->created) {
		s->created = true;
		pthread_mutex_lock(&e->mu);
		if (!e->mirrored) { /* restarted from the saved mirror: caught up now */
			e->mirrored = true;
			e->gen++;
		}
		pthread_mutex_unlock(&e->mu);
		wake_loop(e);
	}
	if (bk_etcd_i64(r, "compact_revision") > 0 ||
	    cJSON_IsTrue(cJSON_GetObjectItem(r, "canceled"))) {
		bk_warn(
		    "etcd watch cancelled (compact_revision %lld): reading the latches "
		    "whole again",
		    (long long)bk_etcd_i64(r, "compact_revision"));
		s->resync = true;
		cJSON_Delete(msg);
		return;
	}
	evs = cJSON_GetObjectItem(r, "events");
	pthread_mutex_lock(&e->mu);
	cJSON_ArrayForEach(ev, evs)
	{
		const cJSON *t = cJSON_GetObjectItem(ev, "type");
		const cJSON *kv = cJSON_GetObjectItem(ev, "kv");
		bool del = cJSON_IsString(t) && strcmp(t->valuestring, "DELETE") == 0;
		int64_t rev = bk_etcd_i64(kv, "mod_revision");

		if (rev <= e->applied)
			continue; /* already applied (a whole read raced the watch) */
		apply_kv(e, kv, del);
		top = rev > top ? rev : top;
	}
	/* a progress notification: nothing up to its revision is missing */
	if (!cJSON_GetArraySize(evs) && !cJSON_IsTrue(cJSON_GetObjectItem(r, "created")))
		top = bk_etcd_i64(cJSON_GetObjectItem(r, "header"), "revision");
	if (top > e->applied) {
		e->applied = top;
		mirror_rehash(e);
		e->gen++;
	}
	pthread_mutex_unlock(&e->mu);
	if (top > 0)
		wake_loop(e);
	/* after the unlock: the loop's trylock never waits on the disk */
	if (top > 0)
		mirror_save(e);
	if (top > 0)
		atomic_store(&e->applied_a, e->applied);
	cJSON_Delete(msg);
}

static size_t on_stream(char *data, size_t sz, size_t n, void *ud)
{
	struct stream *s = ud;
	size_t add = sz * n;
	char *nl;

	if (s->len + add + 1 > (4u << 20))
		return 0; /* a line this long is not etcd's: drop the watch */
	if (s->len + add + 1 > s->cap) {
		char *p = realloc(s->buf, (s->len + add + 1) * 2);
		if (!p)
			return 0;
		s->buf = p;
		s->cap = (s->len + add + 1) * 2;
	}
	memcpy(s->buf + s->len, data, add);
	s->len += add;
	s->buf[s->len] = '\0';
	while ((nl = strchr(s->buf, '\n'))) {
		*nl = '\0';
		stream_line(s, s->buf);
		s->len -= (size_t)(nl + 1 - s->buf);
		memmove(s->buf, nl + 1, s->len + 1);
	}
	return s->resync ? 0 : add;
}

/* Abort the stream to stop, to resync, or when it is silently stuck: the
 * probe sees latches the watch has not delivered for a second. A watch
 * started while the mirror was already behind gets a second of its own, and
 * is aborted too if it stays silent (it may have landed on a frozen member
 * that accepts connections and never answers: test_netns). */
static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct stream *s = ud;
	uint64_t behind = atomic_load(&s->e->behind_ns);

	(void)a, (void)b, (void)c, (void)d;
	if (atomic_load(&s->e->stop) || s->resync)
		return 1;
	/* the probe could not read through this member since the watch began:
	 * move now, before a change is missed (a cut member's watch goes quiet) */
	if (atomic_load(&s->e->failed_member) == s->member &&
	    atomic_load(&s->e->failed_ns) > s->started_ns)
		return 1;
	if (behind && behind < s->started_ns)
		behind = s->started_ns;
	return behind && mono_ns() - behind > 1000 * NS_PER_MS;
}

static void watch_once(struct bk_etcd *e, struct bk_etcd_conn *c, bool *resync)
{
	char k[BK_ETCD_KEY_MAX * 2], end[BK_ETCD_KEY_MAX * 2], body[BK_ETCD_KEY_MAX * 5];
	char url[BK_ETCD_URL_MAX + 16];
	struct stream s = {.e = e, .started_ns = mono_ns(), .member = c->cur};
	struct curl_slist *hdr = NULL;
	CURL *h = c->curl;
	int64_t from;

	pthread_mutex_lock(&e->mu);
	from = e->applied + 1;
	pthread_mutex_unlock(&e->mu);
	bk_etcd_b64(e->latch_prefix, strlen(e->latch_prefix), k, sizeof(k));
	bk_etcd_prefix_end_b64(e->latch_prefix, end, sizeof(end));
	snprintf(body, sizeof(body),
	         "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
	         "\"start_revision\":\"%lld\",\"progress_notify\":true}}",
	         k, end, (long long)from);
	snprintf(url, sizeof(url), "%s/v3/watch", c->urls[c->cur]);
	/* the gateway passes Grpc-Metadata-* on as gRPC metadata: a member that
	 * loses its leader cancels the watch instead of going quiet */
	hdr = curl_slist_append(hdr, "Grpc-Metadata-hasleader: true");
	if (c->user[0]) { /* etcd authentication: the token, fetched if need be */
		char auth[sizeof(c->token) + 32];
		if (bk_etcd_login(c)) {
			curl_slist_free_all(hdr);
			*resync = false;
			return;
		}
		snprintf(auth, sizeof(auth), "Authorization: %s", c->token);
		hdr = curl_slist_append(hdr, auth);
	}
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &s);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	bk_etcd_curl_tls(c, h);
	curl_easy_perform(h);
	long code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (code == 401)
		c->token[0] = '\0'; /* expired: log in again next time */
	curl_slist_free_all(hdr);
	free(s.buf);
	*resync = s.resync;
	/* ended: where the probe last reached the quorum, else the next member */
	int good = atomic_load(&e->good_member);
	c->cur = good >= 0 && good < c->n && good != c->cur ? good : (c->cur + 1) % c->n;
}

static void *watch_main(void *arg)
{
	struct bk_etcd *e = arg;
	struct bk_etcd_conn c;
	bool resync = !e->loaded; /* saved mirror: watch from its revision + 1 */
	int err;

	if (open_conn(e, &c, (long)(e->probe_timeout_ns / NS_PER_MS) * 3))
		return NULL;
	while (!atomic_load(&e->stop)) {
		if (resync) {
			if ((err = full_read(e, &c))) {
				nap_ms(100);
				continue;
			}
			atomic_fetch_add(&e->resyncs, 1);
		}
		watch_once(e, &c, &resync);
		if (!atomic_load(&e->stop))
			nap_ms(20); /* no busy loop against a refusing member */
	}
	bk_etcd_conn_free(&c);
	return NULL;
}

/* ---- the probe: contact, lease, acks ---- */

/* The probe's latch set (key, mod_revision) against the mirror's. */
static void compare_sets(struct bk_etcd *e, const cJSON *rep, uint64_t now)
{
	const cJSON *kv;
	char key[BK_ETCD_KEY_MAX];
	uint64_t h = 0;
	bool same;

	cJSON_ArrayForEach(kv, cJSON_GetObjectItem(rep, "kvs"))
	{
		const cJSON *k = cJSON_GetObjectItem(kv, "key");
		if (cJSON_IsString(k) &&
		    bk_etcd_unb64(k->valuestring, key, sizeof(key)) >= 0)
			h += kv_hash(key, bk_etcd_i64(kv, "mod_revision"));
	}
	pthread_mutex_lock(&e->mu);
	same = e->mirrored && !e->overflow && h == e->set_hash;
	pthread_mutex_unlock(&e->mu);
	atomic_store(&e->caught_up, same);
	if (same)
		atomic_store(&e->behind_ns, 0);
	else if (!atomic_load(&e->behind_ns))
		atomic_store(&e->behind_ns, now);
}

static void acks(struct bk_etcd *e, struct bk_etcd_conn *c, int64_t *lease,
                 int64_t *acked, uint64_t *next_ka)
{
	char key[BK_ETCD_KEY_MAX], val[256];
	int64_t applied = atomic_load(&e->applied_a);
	uint64_t now = mono_ns();

	if (*lease <= 0) {
		if ((*lease = bk_etcd_lease_grant(c, (int)e->lease_s)) <= 0)
			return;
		snprintf(key, sizeof(key), "%shosts/%s", e->prefix, e->host);
		snprintf(val, sizeof(val), "{\"host\":\"%s\",\"pid\":%d}", e->host,
		         getpid());
		if (bk_etcd_put(c, key, val, *lease) < 0) {
			*lease = 0;
			return;
		}
		*acked = -1;
		*next_ka = now + e->lease_s * 1000000000ull / 3;
	}
	if (now >= *next_ka) {
		if (bk_etcd_lease_keepalive(c, *lease) <= 0) {
			*lease = 0; /* expired: grant anew, hosts/ and acks/ again */
			return;
		}
		*next_ka = now + e->lease_s * 1000000000ull / 3;
	}
	if (applied != *acked && applied > 0) {
		snprintf(key, sizeof(key), "%sacks/%s", e->prefix, e->host);
		snprintf(val, sizeof(val), "{\"revision\":\"%lld\",\"time_ns\":\"%llu\"}",
		         (long long)applied, (unsigned long long)bk_now_wall_ns());
		if (bk_etcd_put(c, key, val, *lease) > 0)
			*acked = applied;
	}
}

static void *probe_main(void *arg)
{
	struct bk_etcd *e = arg;
	struct bk_etcd_conn c, ac;
	int64_t lease = 0, acked = -1, rev;
	uint64_t next_ka = 0;
	cJSON *rep;

	if (open_conn(e, &c, (long)(e->probe_timeout_ns / NS_PER_MS)))
		return NULL;
	if (open_conn(e, &ac, (long)(e->probe_timeout_ns / NS_PER_MS))) {
		bk_etcd_conn_free(&c);
		return NULL;
	}
	while (!atomic_load(&e->stop)) {
		uint64_t sent = mono_ns();
		int at = c.cur;

		/* linearizable (ReadIndex through the leader): only a member in
		 * the quorum's partition answers; keys only, the set is small */
		if (bk_etcd_range_prefix(&c, e->latch_prefix, false, true, &rep, &rev) !=
		    0) {
			atomic_store(&e->failed_ns, mono_ns());
			atomic_store(&e->failed_member, at);
		} else {
			atomic_store(&e->good_member, at);
			atomic_store(&e->contact_ns, sent);
			compare_sets(e, rep, sent);
			cJSON_Delete(rep);
			acks(e, &ac, &lease, &acked, &next_ka);
		}
		uint64_t spent = mono_ns() - sent;
		if (spent < e->probe_ns)
			nap_ms((long)((e->probe_ns - spent) / NS_PER_MS));
	}
	if (lease > 0) { /* a clean stop: hosts/ and acks/ go now, not at the TTL */
		char body[64];
		snprintf(body, sizeof(body), "{\"ID\":\"%lld\"}", (long long)lease);
		if (bk_etcd_post(&ac, "/v3/lease/revoke", body, false, &rep) == 0)
			cJSON_Delete(rep);
	}
	bk_etcd_conn_free(&ac);
	bk_etcd_conn_free(&c);
	return NULL;
}

/* ---- the loop's side ---- */

int bk_etcd_start(struct bk_daemon *d)
{
	const struct bk_config *g = &d->cfg;
	struct bk_etcd *e;
	char host[64] = "";

	if (!g->cluster_name[0])
		return 0;
	if (!(e = calloc(1, sizeof(*e))))
		return -ENOMEM;
	/* blocking: the loop's io_uring read waits on it; a write never blocks */
	e->wake_fd = eventfd(0, EFD_CLOEXEC); /* -1: the tick picks changes up */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(e->prefix, sizeof(e->prefix), "/breaker/v1/%s/", g->cluster_name);
	snprintf(e->latch_prefix, sizeof(e->latch_prefix), "%slatch/", e->prefix);
	gethostname(host, sizeof(host) - 1);
	if (g->cluster_host[0])
		snprintf(e->host, sizeof(e->host), "%s", g->cluster_host);
	else
		snprintf(e->host, sizeof(e->host), "%.40s:%.20s", host, g->instance);
	snprintf(e->endpoints, sizeof(e->endpoints), "%s", g->cluster_endpoints);
	if (g->cluster_user[0]) {
		int rv = bk_etcd_read_secret(g->cluster_password_file, e->password,
		                             sizeof(e->password));
		if (rv) {
			bk_err("[cluster] password_file %s: %s", g->cluster_password_file,
			       strerror(-rv));
			if (e->wake_fd >= 0)
				close(e->wake_fd);
			free(e);
			return rv;
		}
		snprintf(e->user, sizeof(e->user), "%s", g->cluster_user);
	}
	snprintf(e->cfg_tls[0], PATH_MAX, "%s", g->cluster_cert_file);
	snprintf(e->cfg_tls[1], PATH_MAX, "%s", g->cluster_key_file);
	snprintf(e->cfg_tls[2], PATH_MAX, "%s", g->cluster_ca_file);
	e->t1_ns = g->cluster_t1_ns;
	e->t2_ns = g->cluster_t2_ns;
	e->probe_ns = g->cluster_probe_ns;
	e->probe_timeout_ns = g->cluster_probe_timeout_ns;
	e->lease_s = g->cluster_lease_s;
	e->boot_ns = mono_ns();
	pthread_mutex_init(&e->mu, NULL);
	atomic_store(&e->good_member, -1);
	atomic_store(&e->failed_member, -1);
	snprintf(e->save_path, sizeof(e->save_path), "%s/firm-mirror.json", g->state_dir);
	if ((e->loaded = mirror_load(e)))
		bk_info("firm-wide: %d latches at revision %lld from %s: watching from "
		        "revision %lld",
		        e->n_mirror, (long long)e->applied, e->save_path,
		        (long long)e->applied + 1);
	d->etcd = e;
	if (pthread_create(&e->watch_thr, NULL, watch_main, e) == 0)
		e->started_watch = true;
	if (pthread_create(&e->probe_thr, NULL, probe_main, e) == 0)
		e->started_probe = true;
	if (!e->started_watch || !e->started_probe ||
	    bk_anchor_start(&e->anchor, d, e->host) < 0) {
		bk_etcd_stop(d);
		return -EAGAIN;
	}
	bk_info("firm-wide: cluster %s, host %s, etcd %s; T1 %llu ms, T2 %llu ms",
	        g->cluster_name, e->host, e->endpoints,
	        (unsigned long long)(e->t1_ns / NS_PER_MS),
	        (unsigned long long)(e->t2_ns / NS_PER_MS));
	/* until the first whole read: global HALTED (authority_lost) */
	bk_publish_scope(d, BK_GLOBAL);
	bk_shm_changed(&d->shm);
	return bk_fwd_start(d);
}

void bk_etcd_stop(struct bk_daemon *d)
{
	struct bk_etcd *e = d->etcd;

	if (!e)
		return;
	bk_fwd_stop(d);
	bk_anchor_stop(e->anchor); /* its last put: the final head */
	atomic_store(&e->stop, true);
	if (e->started_watch)
		pthread_join(e->watch_thr, NULL);
	if (e->started_probe)
		pthread_join(e->probe_thr, NULL);
	pthread_mutex_destroy(&e->mu);
	d->etcd = NULL;
	if (e->wake_fd >= 0)
		close(e->wake_fd);
	free(e);
}

static bool group_is(const struct bk_etcd_latch *l, const struct bk_state *st, int g)
{
	return strncmp(l->scope, "group/", 6) == 0 &&
	       strcmp(l->scope + 6, st->groups[g].name) == 0;
}

/* l holds slot: global, the strategy itself, or a group it is a member of
 * (a strategy's word is the strictest of its own and its groups'). */
static bool scope_is(const struct bk_etcd_latch *l, const struct bk_daemon *d, int slot)
{
	const struct bk_state *st = &d->state;
	const struct bk_scope *sc;

	if (slot == BK_GLOBAL)
		return strcmp(l->scope, "global") == 0;
	sc = bk_state_cscope(st, slot);
	if (!sc)
		return false;
	if (strncmp(l->scope, "strategy/", 9) == 0)
		return strcmp(l->scope + 9, sc->name) == 0;
	for (unsigned k = 0; st->members && k < st->members[slot].n; k++)
		if (group_is(l, st, st->members[slot].g[k]))
			return true;
	return false;
}

static void fold_one(const struct bk_etcd_latch *l, uint64_t *word, uint32_t *mask,
                     uint64_t *since)
{
	*mask |= 1u << l->reason;
	if (l->mode > BK_STATE_MODE(*word)) {
		*word = BK_STATE_PACK(l->mode, l->reason, l->uid);
		*since = l->time_ns;
	}
}

void bk_etcd_fold_group(const struct bk_daemon *d, int g, uint64_t *word, uint32_t *mask,
                        uint64_t *since)
{
	const struct bk_etcd *e = d->etcd;

	if (!e || g < 0 || (uint32_t)g >= d->state.n_groups)
		return;
	for (int i = 0; i < e->n_view; i++)
		if (group_is(&e->view[i], &d->state, g))
			fold_one(&e->view[i], word, mask, since);
}

void bk_etcd_fold(const struct bk_daemon *d, int slot, uint64_t *word, uint32_t *mask,
                  uint64_t *since)
{
	const struct bk_etcd *e = d->etcd;

	if (!e)
		return;
	/* nothing mirrored yet, or more than we hold: HALTED, when in doubt */
	if (slot == BK_GLOBAL && (!e->view_ready || e->view_overflow)) {
		if (BK_STATE_MODE(*word) < BK_HALTED)
			*word = BK_STATE_PACK(BK_HALTED, BK_R_AUTHORITY_LOST, 0);
		*mask |= 1u << BK_R_AUTHORITY_LOST;
		return;
	}
	for (int i = 0; i < e->n_view; i++)
		if (scope_is(&e->view[i], d, slot))
			fold_one(&e->view[i], word, mask, since);
}

static const struct bk_etcd_latch *view_find(const struct bk_etcd_latch *v, int n,
                                             const struct bk_etcd_latch *l)
{
	for (int i = 0; i < n; i++)
		if (v[i].reason == l->reason && strcmp(v[i].scope, l->scope) == 0)
			return &v[i];
	return NULL;
}

static void audit_latch(struct bk_daemon *d, const struct bk_etcd_latch *l, bool deleted,
                        int64_t rev)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	const char *rn = bk_reason_name(l->reason);
	char key[BK_ETCD_KEY_MAX], hex[65];
	struct bk_actor self;

	bk_actor_self(&self);
	bk_record_fill(d, &rec, BREAKER__AUDIT_RECORD__KIND__FIRM_APPLIED, &self,
	               bk_now_wall_ns());
	snprintf(key, sizeof(key), "%s%s/%s", d->etcd->latch_prefix, l->scope,
	         rn ? rn : "?");
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", l->vhash[i]);
	rec.firm_key = key;
	rec.has_firm_revision = 1;
	rec.firm_revision = (uint64_t)rev;
	rec.has_firm_deleted = deleted;
	rec.firm_deleted = deleted;
	rec.firm_value_sha256 = deleted ? NULL : hex;
	rec.has_reason_code = rn != NULL;
	rec.reason_code = (Breaker__ReasonCode)l->reason;
	rec.has_latch_mode = !deleted;
	rec.latch_mode = (Breaker__Mode)l->mode;
	/* after the fold: a firm trip is never delayed by the disk */
	if (bk_audit_stage(&d->audit, &rec) < 0)
		bk_warn(
		    "audit staging failed: firm latch %s at revision %lld not recorded",
		    key, (long long)rev);
}

/* What changed between the previous view and this one, into the audit log. */
static void audit_changes(struct bk_daemon *d, struct bk_etcd *e)
{
	for (int i = 0; i < e->n_view; i++) {
		const struct bk_etcd_latch *o =
		    view_find(e->prev, e->n_prev, &e->view[i]);
		if (!o || o->mod_rev != e->view[i].mod_rev)
			audit_latch(d, &e->view[i], false, e->view[i].mod_rev);
	}
	for (int i = 0; i < e->n_prev; i++)
		if (!view_find(e->view, e->n_view, &e->prev[i]))
			audit_latch(d, &e->prev[i], true, e->view_applied);
	memcpy(e->prev, e->view, sizeof(e->view[0]) * (size_t)e->n_view);
	e->n_prev = e->n_view;
}

/* Contact is back after the loop saw it lost for T1: one FIRM_LINK record. */
static void audit_link(struct bk_daemon *d, struct bk_etcd *e, uint64_t now,
                       uint64_t contact)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	struct bk_actor self;
	char text[160];
	bool lost = now > contact && now - contact > e->t1_ns;

	if (lost == e->link_lost || (!lost && !contact))
		return;
	e->link_lost = lost;
	if (lost)
		return; /* the authority_lost trip is the record of the loss */
	snprintf(text, sizeof(text),
	         "quorum contact regained (etcd revision %lld applied); authority_lost "
	         "holds until an operator resumes",
	         (long long)e->view_applied);
	bk_info("firm-wide: %s", text);
	bk_actor_self(&self);
	bk_record_fill(d, &rec, BREAKER__AUDIT_RECORD__KIND__FIRM_LINK, &self,
	               bk_now_wall_ns());
	rec.reason = text;
	rec.has_firm_revision = 1;
	rec.firm_revision = (uint64_t)e->view_applied;
	bk_audit_stage(&d->audit, &rec);
}

/* Take a changed mirror, if the watch thread is not holding it right now. */
static bool take_mirror(struct bk_etcd *e)
{
	bool changed = false;

	if (pthread_mutex_trylock(&e->mu) != 0)
		return false;
	if (e->gen != e->seen_gen && e->mirrored) {
		memcpy(e->view, e->mirror, sizeof(e->view[0]) * (size_t)e->n_mirror);
		e->n_view = e->n_mirror;
		e->view_overflow = e->overflow;
		e->view_applied = e->applied;
		e->seen_gen = e->gen;
		e->view_ready = changed = true;
	}
	pthread_mutex_unlock(&e->mu);
	return changed;
}

/* No proven contact for T1: REDUCE_ONLY; for T2: HALTED (audited latches). */
static void stage(struct bk_daemon *d, struct bk_etcd *e, uint64_t now, uint64_t last)
{
	const struct bk_latch *l = &d->state.global.latches[BK_R_AUTHORITY_LOST];
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	uint64_t age = now > last ? now - last : 0;
	int want = age > e->t2_ns   ? BK_HALTED
	           : age > e->t1_ns ? BK_REDUCE_ONLY
	                            : BK_ACTIVE;
	char text[256];

	if (want == BK_ACTIVE || l->mode >= want || !bk_pending_can_accept(d))
		return;
	snprintf(text, sizeof(text),
	         "no linearizable read from the etcd quorum for %llu ms (T1 %llu ms, T2 "
	         "%llu ms): %s until an operator resumes",
	         (unsigned long long)(age / NS_PER_MS),
	         (unsigned long long)(e->t1_ns / NS_PER_MS),
	         (unsigned long long)(e->t2_ns / NS_PER_MS),
	         bk_mode_str((enum bk_mode)want));
	rec.reason = text;
	bk_warn("firm-wide: %s", text);
	bk_protect_trip(d, BK_GLOBAL, BK_R_AUTHORITY_LOST, want, &rec, false);
}

void bk_etcd_tick(struct bk_daemon *d, uint64_t now)
{
	struct bk_etcd *e = d->etcd;
	uint64_t contact, last;

	if (!e)
		return;
	bk_fwd_tick(d);
	if (take_mirror(e)) {
		bk_publish_scope(d, BK_GLOBAL);
		for (uint32_t i = 0; i < d->state.n_strategies; i++)
			bk_publish_scope(d, (int)i);
		for (uint32_t g = 0; g < d->state.n_groups; g++)
			bk_group_publish(d, (int)g);
		bk_shm_changed(&d->shm);
		bk_protect_note_trip(d);
		bk_debug("firm-wide: %d latches at revision %lld", e->n_view,
		         (long long)e->view_applied);
		audit_changes(d, e);
	}
	contact = atomic_load(&e->contact_ns);
	last = contact > e->boot_ns ? contact : e->boot_ns;
	atomic_store(&d->shm.shm->firm_revision, (uint64_t)e->view_applied);
	atomic_store(&d->shm.shm->firm_contact_ns, contact);
	atomic_store_explicit(&d->shm.shm->valid_until_ns, last + e->t2_ns,
	                      memory_order_release);
	stage(d, e, now, last);
	audit_link(d, e, now, last);
}

bool bk_etcd_in_contact(const struct bk_daemon *d, char *why, size_t len)
{
	const struct bk_etcd *e = d->etcd;
	uint64_t contact, now = mono_ns();

	if (!e)
		return true;
	contact = atomic_load(&e->contact_ns);
	if (!contact || now - contact > e->t1_ns) {
		snprintf(why, len,
		         "no contact with the etcd quorum for %s%llu ms: authority_lost "
		         "stays until a linearizable read succeeds again (--force "
		         "cannot skip this: see docs/firmwide.md, break-glass)",
		         contact ? "" : "ever, ",
		         contact ? (unsigned long long)((now - contact) / NS_PER_MS)
		                 : 0ull);
		return false;
	}
	return true;
}

bool bk_etcd_may_resume(const struct bk_daemon *d, char *why, size_t len)
{
	const struct bk_etcd *e = d->etcd;

	if (!e)
		return true;
	if (!bk_etcd_in_contact(d, why, len))
		return false;
	if (!atomic_load(&e->caught_up) || !e->view_ready) {
		snprintf(
		    why, len,
		    "contact with the etcd quorum is back, but the mirror of the firm "
		    "latches has not caught up yet: try again in a moment");
		return false;
	}
	return true;
}

int bk_etcd_view_latch(const struct bk_daemon *d, const char *scope, int *reason,
                       int *mode, int64_t *mod_rev)
{
	const struct bk_etcd *e = d->etcd;
	int want = *reason, found = 0;

	if (!e || !e->view_ready)
		return -EAGAIN;
	for (int i = 0; i < e->n_view; i++) {
		const struct bk_etcd_latch *l = &e->view[i];
		if (strcmp(l->scope, scope) != 0 || (want >= 0 && l->reason != want))
			continue;
		if (found++)
			return -EEXIST;
		*reason = l->reason;
		*mode = l->mode;
		*mod_rev = l->mod_rev;
	}
	return found ? 0 : -ENOENT;
}

void bk_etcd_link_check(struct bk_daemon *d)
{
	struct bk_etcd *e = d->etcd;
	uint64_t contact;

	if (!e)
		return;
	contact = atomic_load(&e->contact_ns);
	audit_link(d, e, mono_ns(), contact > e->boot_ns ? contact : e->boot_ns);
}

int bk_etcd_good_member(const struct bk_daemon *d)
{
	return d->etcd ? atomic_load(&d->etcd->good_member) : -1;
}

const char *bk_etcd_latch_prefix(const struct bk_daemon *d)
{
	return d->etcd ? d->etcd->latch_prefix : "";
}

uint64_t bk_etcd_anchored_seq(const struct bk_daemon *d)
{
	return d->etcd ? bk_anchor_seq(d->etcd->anchor) : 0;
}

int bk_etcd_wake_fd(const struct bk_daemon *d)
{
	return d->etcd ? d->etcd->wake_fd : -1;
}

int bk_etcd_conn_open(const struct bk_daemon *d, struct bk_etcd_conn *c, long timeout_ms)
{
	return d->etcd ? open_conn(d->etcd, c, timeout_ms) : -EINVAL;
}
