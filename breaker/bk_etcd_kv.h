/*
 * bk_etcd_kv - blocking calls to etcd's v3 JSON gateway (grpc-gateway,
 * etcd 3.4: POST /v3/kv/range, /v3/kv/put, /v3/kv/txn, /v3/lease/grant,
 * /v3/lease/keepalive) with libcurl and cJSON.
 *
 * Contract: every call blocks its caller for at most the connection's
 * timeout per endpoint tried, so only the CLI and breakerd's etcd threads
 * (bk_etcd.h) use it, never the loop. A connection belongs to one thread.
 * Keys and values are base64 on the wire (the gateway's JSON mapping of
 * bytes); 64-bit numbers arrive as JSON strings. Errors are negative errno:
 * -ETIMEDOUT / -ECONNREFUSED / -EIO for transport, -EPROTO for a reply that
 * is not what etcd sends, -ESTALE for a failed transaction compare.
 */
#ifndef BK_ETCD_KV_H
#define BK_ETCD_KV_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define BK_ETCD_ENDPOINTS 8
#define BK_ETCD_URL_MAX   128
#define BK_ETCD_KEY_MAX   256
#define BK_ETCD_VAL_MAX   4096

struct bk_etcd_conn {
	char urls[BK_ETCD_ENDPOINTS][BK_ETCD_URL_MAX];
	int n;           /* endpoints in urls */
	int cur;         /* the one tried first (the last that answered) */
	long timeout_ms; /* per endpoint, whole request */
	void *curl;      /* CURL *, reused for keep-alive */
	char err[160];   /* the last failure, for messages */
	/* etcd authentication (bk_etcd_conn_auth): a user's token, fetched on
	 * first use and again when etcd says it expired */
	char user[64], password[128];
	char token[256];
	/* TLS (bk_etcd_conn_tls): a client certificate and key to present
	 * (etcd's --client-cert-auth), the CA to trust; "": curl's default */
	char tls_cert[PATH_MAX], tls_key[PATH_MAX], tls_ca[PATH_MAX];
};

/* Present cert/key (both or neither) and trust ca (NULL or "": the system's
 * store) on https:// endpoints. */
void bk_etcd_conn_tls(struct bk_etcd_conn *c, const char *cert, const char *key,
                      const char *ca);

/* The connection's TLS settings on a curl handle (the watch's own request). */
void bk_etcd_curl_tls(const struct bk_etcd_conn *c, void *curl);

/* Use etcd's authentication as user with password (from a file, 0600). */
void bk_etcd_conn_auth(struct bk_etcd_conn *c, const char *user, const char *password);

/* Make sure c->token is set (user given): 0, or -EACCES/-errno. */
int bk_etcd_login(struct bk_etcd_conn *c);

/* Read the first line of path (a password file) into out. 0 or -errno. */
int bk_etcd_read_secret(const char *path, char *out, size_t len);

/* Parse "http://a:2379,http://b:2379" into c (timeout_ms per try). 0 or -EINVAL. */
int bk_etcd_conn_init(struct bk_etcd_conn *c, const char *endpoints, long timeout_ms);
void bk_etcd_conn_free(struct bk_etcd_conn *c);

/*
 * POST body (JSON text) to path on the endpoints, starting with the current
 * one, until one answers HTTP 200 with JSON (*out, caller frees). all: try
 * every endpoint once; else only the current one (and rotate on failure).
 */
int bk_etcd_post(struct bk_etcd_conn *c, const char *path, const char *body, bool all,
                 cJSON **out);

/* A JSON int64 (etcd sends strings); 0 when absent. */
int64_t bk_etcd_i64(const cJSON *obj, const char *name);

/* base64 of len bytes into out (NUL-terminated). -ENOSPC if it does not fit. */
int bk_etcd_b64(const void *in, size_t len, char *out, size_t outlen);
/* Decode base64 text into out (NUL-terminated). Length or -EINVAL/-ENOSPC. */
int bk_etcd_unb64(const char *in, char *out, size_t outlen);

/* The range_end that covers every key starting with prefix, base64. */
int bk_etcd_prefix_end_b64(const char *prefix, char *out, size_t outlen);

/* Put key=val (lease 0: none). The revision it made, or -errno. */
int64_t bk_etcd_put(struct bk_etcd_conn *c, const char *key, const char *val,
                    int64_t lease);

/*
 * Range over every key under prefix (linearizable unless serializable).
 * *out: the reply (caller frees); its "kvs" array may be absent when empty.
 * *rev: the header revision. 0 or -errno.
 */
int bk_etcd_range_prefix(struct bk_etcd_conn *c, const char *prefix, bool serializable,
                         bool keys_only, cJSON **out, int64_t *rev);

/*
 * One transaction: if key's mod_revision is mod_rev, then put key=val (val
 * NULL: delete key). The new revision, -ESTALE when the compare failed
 * (someone changed or removed the key since), or -errno.
 */
int64_t bk_etcd_cas(struct bk_etcd_conn *c, const char *key, int64_t mod_rev,
                    const char *val);

/*
 * Put every one of keys[0..n) = val in ONE transaction (no compare): all
 * latches at one revision, or none. n <= etcd's --max-txn-ops (128). The
 * revision, or -errno.
 */
int64_t bk_etcd_put_all(struct bk_etcd_conn *c, const char *const *keys, int n,
                        const char *val);

/* Grant a lease of ttl_s seconds: its id, or -errno. */
int64_t bk_etcd_lease_grant(struct bk_etcd_conn *c, int ttl_s);
/* Refresh it: its remaining TTL (0: expired/unknown), or -errno. */
int64_t bk_etcd_lease_keepalive(struct bk_etcd_conn *c, int64_t id);

#endif
