/*
 * bk_anchor - the audit chain head anchored in etcd (see bk_anchor.h for the
 * contract: keys, when, which thread).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bk_anchor.h"
#include "bk_daemon.h"
#include "bk_etcd_kv.h"
#include "bk_log.h"
#include "bk_tail.h"

#define NS_PER_MS    1000000ull
#define POLL_MS      100
#define RETRY_NS     (1000 * NS_PER_MS) /* after a failed put */
#define TRIM_EVERY   16                 /* puts between two trims */
#define SCAN_MAX     (4u << 20)         /* more new bytes than this: just anchor */
#define ANCHORS_READ 100000

struct bk_anchor {
	char prefix[BK_ETCD_KEY_MAX]; /* P anchors/<host>/ */
	char host[64];
	char log_path[PATH_MAX];
	struct bk_etcd_conn conn;
	uint64_t period_ns;
	uint32_t keep;
	const struct bk_shm *shm;
	pthread_t thr;
	bool started;
	atomic_bool stop;
	/* the thread's own */
	struct bk_audit_head last; /* last anchored (seq 0: none yet) */
	uint64_t last_ns;          /* mono, of that put */
	uint64_t retry_ns;         /* mono: no put before (after a failure) */
	uint64_t scanned_end;      /* log bytes whose kinds were looked at */
	bool urgent;               /* an important record is not anchored yet */
	unsigned puts;
	atomic_uint_fast64_t anchored; /* last.seq, for /metrics (loop thread) */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bk_anchor_host(char *buf, size_t len, const struct bk_config *cfg)
{
	char host[64] = "";

	if (cfg->cluster_host[0]) {
		snprintf(buf, len, "%s", cfg->cluster_host);
		return;
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(buf, len, "%.40s:%.20s", host, cfg->instance);
}

int bk_anchor_prefix(char *buf, size_t len, const char *cluster, const char *host)
{
	int n = snprintf(buf, len, "/breaker/v1/%s/anchors/%s/", cluster, host);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Kinds whose record is anchored at once (coalesced): state changes, firm
 * records, the daemon's life and the log's repairs. */
static bool urgent_kind(Breaker__AuditRecord__Kind k)
{
	switch (k) {
	case BREAKER__AUDIT_RECORD__KIND__TRIP:
	case BREAKER__AUDIT_RECORD__KIND__RESUME:
	case BREAKER__AUDIT_RECORD__KIND__BOOT:
	case BREAKER__AUDIT_RECORD__KIND__STOP:
	case BREAKER__AUDIT_RECORD__KIND__LOG_REPAIR:
	case BREAKER__AUDIT_RECORD__KIND__LOG_RELINKED:
	case BREAKER__AUDIT_RECORD__KIND__FIRM_APPLIED:
	case BREAKER__AUDIT_RECORD__KIND__FIRM_LINK:
	case BREAKER__AUDIT_RECORD__KIND__FIRM_FORWARDED:
		return true;
	default:
		return false;
	}
}

/* Look at the kinds of the records in [a->scanned_end, end): true if one is
 * urgent, or if they cannot be read (then anchor rather than wait). */
static bool urgent_between(struct bk_anchor *a, uint64_t end)
{
	uint8_t hdr[BK_AUDIT_FRAME_HDR], buf[BK_AUDIT_RECORD_MAX];
	uint64_t off = a->scanned_end;
	bool urgent = false;
	int fd;

	a->scanned_end = end;
	if (!off || off > end || end - off > SCAN_MAX ||
	    (fd = open(a->log_path, O_RDONLY | O_CLOEXEC)) < 0)
		return true;
	while (off < end && !urgent) {
		Breaker__AuditRecord *rec;
		uint32_t len;

		if (pread(fd, hdr, sizeof(hdr), (off_t)off) != (ssize_t)sizeof(hdr))
			break;
		len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
		      (uint32_t)hdr[3] << 24;
		if (len == 0 || len > sizeof(buf) ||
		    pread(fd, buf, len, (off_t)(off + sizeof(hdr))) != (ssize_t)len)
			break;
		rec = breaker__audit_record__unpack(NULL, len, buf);
		if (!rec)
			break;
		urgent = !rec->has_kind || urgent_kind(rec->kind);
		breaker__audit_record__free_unpacked(rec, NULL);
		off += sizeof(hdr) + len;
	}
	close(fd);
	return urgent || off != end; /* could not read them all: anchor */
}

static void hex32(char out[65], const uint8_t h[BK_AUDIT_HASH_LEN])
{
	for (unsigned i = 0; i < BK_AUDIT_HASH_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void anchor_key(const struct bk_anchor *a, uint64_t seq, char *key, size_t len)
{
	snprintf(key, len, "%s%0*llu", a->prefix, BK_ANCHOR_SEQ_DIGITS,
	         (unsigned long long)seq);
}

/* The key exists already (a restart re-anchoring its last head): fine if it
 * holds the same hash; else someone wrote it, or our log changed. */
static void check_existing(struct bk_anchor *a, const char *key, const char *hex)
{
	struct bk_anchor_rec *r = NULL;
	size_t n = 0;
	char have[65] = "";

	if (bk_anchor_read(&a->conn, key, &r, &n) == 0 && n == 1)
		hex32(have, r[0].hash);
	if (strcmp(have, hex) != 0)
		bk_warn("anchor %s already in etcd with hash %s, ours is %s: the log or "
		        "the anchor was rewritten (breaker audit --verify --anchors)",
		        key, have[0] ? have : "(unreadable)", hex);
	free(r);
}

/* Delete the oldest anchors beyond keep (keys sort by seq: zero-padded). */
static void trim(struct bk_anchor *a)
{
	char kb[BK_ETCD_KEY_MAX * 2], eb[BK_ETCD_KEY_MAX * 2], body[BK_ETCD_KEY_MAX * 5];
	char first[BK_ETCD_KEY_MAX], upto[BK_ETCD_KEY_MAX];
	struct bk_anchor_rec *r = NULL;
	cJSON *rep;
	size_t n = 0;

	if (bk_anchor_read(&a->conn, a->prefix, &r, &n) < 0 || n <= a->keep) {
		free(r);
		return;
	}
	anchor_key(a, r[0].seq, first, sizeof(first));
	anchor_key(a, r[n - a->keep].seq, upto, sizeof(upto)); /* kept, range_end */
	free(r);
	if (bk_etcd_b64(first, strlen(first), kb, sizeof(kb)) ||
	    bk_etcd_b64(upto, strlen(upto), eb, sizeof(eb)))
		return;
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"range_end\":\"%s\"}", kb, eb);
	if (bk_etcd_post(&a->conn, "/v3/kv/deleterange", body, false, &rep) == 0)
		cJSON_Delete(rep);
}

static int put(struct bk_anchor *a, const struct bk_audit_head *h)
{
	char key[BK_ETCD_KEY_MAX], val[512], hex[65];
	int64_t rv;

	hex32(hex, h->hash);
	anchor_key(a, h->seq, key, sizeof(key));
	snprintf(val, sizeof(val),
	         "{\"host\":\"%s\",\"seq\":\"%llu\",\"end\":\"%llu\",\"hash\":\"%s\","
	         "\"time_ns\":\"%llu\"}",
	         a->host, (unsigned long long)h->seq, (unsigned long long)h->end, hex,
	         (unsigned long long)bk_now_wall_ns());
	rv = bk_etcd_cas(&a->conn, key, 0, val); /* create-only: never overwrite */
	if (rv == -ESTALE)
		check_existing(a, key, hex);
	else if (rv < 0)
		return (int)rv;
	if (a->puts++ % TRIM_EVERY == 0)
		trim(a);
	bk_debug("anchored audit seq %llu in etcd (%s)", (unsigned long long)h->seq, key);
	return 0;
}

static void step(struct bk_anchor *a, bool last)
{
	struct bk_audit_head h;
	uint64_t now = mono_ns();

	if (!bk_tail_shm_head(a->shm, &h) || h.seq == 0 ||
	    (h.seq == a->last.seq && !memcmp(h.hash, a->last.hash, sizeof(h.hash))))
		return;
	if (h.end != a->scanned_end && urgent_between(a, h.end))
		a->urgent = true;
	if (!last && (now < a->retry_ns ||
	              (!a->urgent && a->last.seq && now - a->last_ns < a->period_ns)))
		return;
	if (put(a, &h) < 0) {
		if (!a->retry_ns || last)
			bk_warn("could not anchor audit seq %llu in etcd: %s",
			        (unsigned long long)h.seq, a->conn.err);
		a->retry_ns = now + RETRY_NS;
		return;
	}
	a->last = h;
	atomic_store(&a->anchored, h.seq);
	a->last_ns = now;
	a->retry_ns = 0;
	a->urgent = false;
}

static void *anchor_main(void *arg)
{
	struct bk_anchor *a = arg;
	struct timespec ts = {0, POLL_MS * 1000000L};

	while (!atomic_load(&a->stop)) {
		step(a, false);
		nanosleep(&ts, NULL);
	}
	step(a, true); /* the final head: the STOP record */
	return NULL;
}

int bk_anchor_start(struct bk_anchor **out, const struct bk_daemon *d, const char *host)
{
	const struct bk_config *g = &d->cfg;
	struct bk_anchor *a;
	int rv;

	*out = NULL;
	if (!g->cluster_anchor_period_ns)
		return 0; /* anchoring off */
	if (!(a = calloc(1, sizeof(*a))))
		return -ENOMEM;
	snprintf(a->host, sizeof(a->host), "%s", host);
	snprintf(a->log_path, sizeof(a->log_path), "%s", g->audit_path);
	if ((rv =
	         bk_anchor_prefix(a->prefix, sizeof(a->prefix), g->cluster_name, host)) ||
	    (rv = bk_etcd_conn_open(
	         d, &a->conn, (long)(g->cluster_probe_timeout_ns / NS_PER_MS) * 3))) {
		free(a);
		return rv;
	}
	a->period_ns = g->cluster_anchor_period_ns;
	a->keep = g->cluster_anchor_keep;
	a->shm = d->shm.shm;
	if ((rv = pthread_create(&a->thr, NULL, anchor_main, a)) != 0) {
		bk_etcd_conn_free(&a->conn);
		free(a);
		return -rv;
	}
	a->started = true;
	*out = a;
	return 0;
}

uint64_t bk_anchor_seq(const struct bk_anchor *a)
{
	return a ? atomic_load(&((struct bk_anchor *)a)->anchored) : 0;
}

void bk_anchor_stop(struct bk_anchor *a)
{
	if (!a)
		return;
	atomic_store(&a->stop, true);
	if (a->started)
		pthread_join(a->thr, NULL);
	bk_etcd_conn_free(&a->conn);
	free(a);
}

/* ---- reading them back (the CLI, and the thread's own checks) ---- */

static int hex_to(const char *s, uint8_t out[BK_AUDIT_HASH_LEN])
{
	if (!s || strlen(s) != 2 * BK_AUDIT_HASH_LEN)
		return -EINVAL;
	for (unsigned i = 0; i < BK_AUDIT_HASH_LEN; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static void parse_one(const cJSON *kv, struct bk_anchor_rec *r)
{
	const cJSON *v = cJSON_GetObjectItem(kv, "value");
	char *val = malloc(BK_ETCD_VAL_MAX);
	cJSON *j = NULL;

	memset(r, 0, sizeof(*r));
	r->mod_rev = bk_etcd_i64(kv, "mod_revision");
	r->version = bk_etcd_i64(kv, "version");
	r->bad = true;
	if (val && cJSON_IsString(v) &&
	    bk_etcd_unb64(v->valuestring, val, BK_ETCD_VAL_MAX) >= 0)
		j = cJSON_Parse(val);
	free(val);
	if (!j)
		return;
	r->seq = (uint64_t)bk_etcd_i64(j, "seq");
	r->end = (uint64_t)bk_etcd_i64(j, "end");
	r->time_ns = (uint64_t)bk_etcd_i64(j, "time_ns");
	const cJSON *h = cJSON_GetObjectItem(j, "hash");
	r->bad =
	    !r->seq || hex_to(cJSON_IsString(h) ? h->valuestring : NULL, r->hash) < 0;
	cJSON_Delete(j);
}

static int by_seq(const void *x, const void *y)
{
	const struct bk_anchor_rec *a = x, *b = y;

	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

int bk_anchor_read(struct bk_etcd_conn *c, const char *prefix, struct bk_anchor_rec **out,
                   size_t *n)
{
	const cJSON *kvs, *kv;
	cJSON *rep;
	int64_t rev;
	size_t cnt, i = 0;
	int rv;

	*out = NULL;
	*n = 0;
	if ((rv = bk_etcd_range_prefix(c, prefix, false, false, &rep, &rev)))
		return rv;
	kvs = cJSON_GetObjectItem(rep, "kvs");
	cnt = (size_t)cJSON_GetArraySize(kvs);
	if (cnt > ANCHORS_READ)
		cnt = ANCHORS_READ;
	if (cnt && !(*out = calloc(cnt, sizeof(**out)))) {
		cJSON_Delete(rep);
		return -ENOMEM;
	}
	cJSON_ArrayForEach(kv, kvs)
	{
		if (i == cnt)
			break;
		parse_one(kv, &(*out)[i++]);
	}
	cJSON_Delete(rep);
	if (i) /* qsort(NULL, 0, ...) is undefined */
		qsort(*out, i, sizeof(**out), by_seq);
	*n = i;
	return 0;
}
