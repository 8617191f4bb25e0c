/*
 * bk_etcd_kv - blocking calls to etcd's JSON gateway (see bk_etcd_kv.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "bk_etcd_kv.h"

#define BK_ETCD_REPLY_MAX (4u << 20) /* a range of our prefix is far smaller */

struct buf {
	char *p;
	size_t len, cap;
	bool over;
};

static size_t on_body(char *data, size_t sz, size_t n, void *ud)
{
	struct buf *b = ud;
	size_t add = sz * n;

	if (b->len + add + 1 > BK_ETCD_REPLY_MAX) {
		b->over = true;
		return 0; /* aborts the transfer */
	}
	if (b->len + add + 1 > b->cap) {
		size_t cap = (b->len + add + 1) * 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

int bk_etcd_conn_init(struct bk_etcd_conn *c, const char *endpoints, long timeout_ms)
{
	const char *s = endpoints;

	memset(c, 0, sizeof(*c));
	c->timeout_ms = timeout_ms;
	while (s && *s) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);

		while (len && (*s == ' ' || *s == '\t'))
			s++, len--;
		while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len == 0 || len >= BK_ETCD_URL_MAX || c->n == BK_ETCD_ENDPOINTS ||
		    (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0))
			return -EINVAL;
		memcpy(c->urls[c->n], s, len);
		c->urls[c->n++][len] = '\0';
		s = e ? e + 1 : NULL;
	}
	if (c->n == 0)
		return -EINVAL;
	c->curl = curl_easy_init();
	return c->curl ? 0 : -ENOMEM;
}

void bk_etcd_conn_tls(struct bk_etcd_conn *c, const char *cert, const char *key,
                      const char *ca)
{
	snprintf(c->tls_cert, sizeof(c->tls_cert), "%s", cert ? cert : "");
	snprintf(c->tls_key, sizeof(c->tls_key), "%s", key ? key : "");
	snprintf(c->tls_ca, sizeof(c->tls_ca), "%s", ca ? ca : "");
}

void bk_etcd_curl_tls(const struct bk_etcd_conn *c, void *curl)
{
	if (c->tls_cert[0]) {
		curl_easy_setopt(curl, CURLOPT_SSLCERT, c->tls_cert);
		curl_easy_setopt(curl, CURLOPT_SSLKEY, c->tls_key);
	}
	if (c->tls_ca[0])
		curl_easy_setopt(curl, CURLOPT_CAINFO, c->tls_ca);
}

void bk_etcd_conn_free(struct bk_etcd_conn *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
}

/* One POST to one endpoint: 0 with *out, or -errno (c->err says why). */
static int post_one(struct bk_etcd_conn *c, const char *url, const char *body,
                    cJSON **out)
{
	CURL *h = c->curl;
	struct curl_slist *hdr = NULL;
	struct buf b = {0};
	long code = 0;
	CURLcode rc;
	int err = 0;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM */
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	bk_etcd_curl_tls(c, h);
	if (c->token[0] && !strstr(url, "/v3/auth/authenticate")) {
		char auth[sizeof(c->token) + 32];
		snprintf(auth, sizeof(auth), "Authorization: %s", c->token);
		hdr = curl_slist_append(NULL, auth);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	}
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		snprintf(c->err, sizeof(c->err), "%s: %s", url, curl_easy_strerror(rc));
		err = rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
		      : rc == CURLE_COULDNT_CONNECT  ? -ECONNREFUSED
		      : b.over                       ? -EMSGSIZE
		                                     : -EIO;
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	*out = b.p ? cJSON_Parse(b.p) : NULL;
	if (code != 200 || !*out) {
		const cJSON *m = *out ? cJSON_GetObjectItem(*out, "message") : NULL;
		const cJSON *e = *out ? cJSON_GetObjectItem(*out, "error") : NULL;
		const char *why = cJSON_IsString(m)   ? m->valuestring
		                  : cJSON_IsString(e) ? e->valuestring
		                                      : "not JSON";
		snprintf(c->err, sizeof(c->err), "%s: HTTP %ld: %s", url, code, why);
		cJSON_Delete(*out);
		*out = NULL;
		/* 401: no or an expired token; 403: the user's roles forbid it */
		err = code == 401 ? -EKEYEXPIRED : code == 403 ? -EACCES : -EPROTO;
	}
out:
	curl_slist_free_all(hdr);
	free(b.p);
	return err;
}

void bk_etcd_conn_auth(struct bk_etcd_conn *c, const char *user, const char *password)
{
	snprintf(c->user, sizeof(c->user), "%s", user ? user : "");
	snprintf(c->password, sizeof(c->password), "%s", password ? password : "");
	c->token[0] = '\0';
}

int bk_etcd_read_secret(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -errno;
	if (!fgets(out, (int)len, f))
		out[0] = '\0';
	fclose(f);
	n = strcspn(out, "\r\n");
	out[n] = '\0';
	return n ? 0 : -EINVAL;
}

int bk_etcd_login(struct bk_etcd_conn *c)
{
	char url[BK_ETCD_URL_MAX + 64], body[512];
	const cJSON *t;
	cJSON *j, *rep = NULL;
	int err = -EIO;

	if (!c->user[0] || c->token[0])
		return 0;
	if (!(j = cJSON_CreateObject()))
		return -ENOMEM;
	cJSON_AddStringToObject(j, "name", c->user);
	cJSON_AddStringToObject(j, "password", c->password);
	if (!cJSON_PrintPreallocated(j, body, sizeof(body), false)) {
		cJSON_Delete(j);
		return -ENOSPC;
	}
	cJSON_Delete(j);
	/* etcd checks the password with bcrypt: slow on a loaded member, and
	 * done once per token, so not bound by a probe's short timeout */
	long timeout = c->timeout_ms;
	c->timeout_ms = timeout > 5000 ? timeout : 5000;
	for (int i = 0; i < c->n; i++) {
		snprintf(url, sizeof(url), "%s/v3/auth/authenticate", c->urls[c->cur]);
		if ((err = post_one(c, url, body, &rep)) == 0)
			break;
		if (err == -EPROTO || err == -EACCES || err == -EKEYEXPIRED)
			break; /* wrong user or password: not a member's fault */
		c->cur = (c->cur + 1) % c->n;
	}
	c->timeout_ms = timeout;
	if (err)
		return err == -EPROTO || err == -EKEYEXPIRED ? -EACCES : err;
	t = cJSON_GetObjectItem(rep, "token");
	if (cJSON_IsString(t))
		snprintf(c->token, sizeof(c->token), "%s", t->valuestring);
	cJSON_Delete(rep);
	return c->token[0] ? 0 : -EPROTO;
}

int bk_etcd_post(struct bk_etcd_conn *c, const char *path, const char *body, bool all,
                 cJSON **out)
{
	char url[BK_ETCD_URL_MAX + 64];
	int err = -EIO;

	*out = NULL;
	if ((err = bk_etcd_login(c)))
		return err;
	for (int i = 0; i < (all ? c->n : 1); i++) {
		snprintf(url, sizeof(url), "%s%s", c->urls[c->cur], path);
		if ((err = post_one(c, url, body, out)) == 0)
			return 0;
		if (err == -EKEYEXPIRED &&
		    c->user[0]) { /* the token expired: once more */
			c->token[0] = '\0';
			if ((err = bk_etcd_login(c)) ||
			    (err = post_one(c, url, body, out)) == 0)
				return err;
		}
		if (err == -EACCES)
			return err;           /* the same answer from every member */
		c->cur = (c->cur + 1) % c->n; /* next time, the next member */
	}
	return err;
}

int64_t bk_etcd_i64(const cJSON *obj, const char *name)
{
	const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;

	if (cJSON_IsString(v))
		return strtoll(v->valuestring, NULL, 10);
	if (cJSON_IsNumber(v))
		return (int64_t)v->valuedouble;
	return 0;
}

int bk_etcd_b64(const void *in, size_t len, char *out, size_t outlen)
{
	if ((len + 2) / 3 * 4 + 1 > outlen)
		return -ENOSPC;
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return 0;
}

int bk_etcd_unb64(const char *in, char *out, size_t outlen)
{
	size_t len = strlen(in);
	int n, pad = 0;

	if (len % 4 || len / 4 * 3 + 1 > outlen)
		return len % 4 ? -EINVAL : -ENOSPC;
	if (len == 0) {
		out[0] = '\0';
		return 0;
	}
	n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -EINVAL;
	pad = (in[len - 1] == '=') + (in[len - 2] == '=');
	n -= pad;
	out[n] = '\0';
	return n;
}

int bk_etcd_prefix_end_b64(const char *prefix, char *out, size_t outlen)
{
	char end[BK_ETCD_KEY_MAX];
	size_t len = strlen(prefix);

	if (len == 0 || len >= sizeof(end))
		return -EINVAL;
	memcpy(end, prefix, len);
	/* our prefixes end in '/' (0x2f): never 0xff, so bumping the last byte
	 * is the whole rule */
	end[len - 1]++;
	return bk_etcd_b64(end, len, out, outlen);
}

int64_t bk_etcd_put(struct bk_etcd_conn *c, const char *key, const char *val,
                    int64_t lease)
{
	char k[BK_ETCD_KEY_MAX * 2], v[BK_ETCD_VAL_MAX * 2],
	    body[sizeof(k) + sizeof(v) + 96];
	cJSON *rep;
	int64_t rev;
	int err;

	if (bk_etcd_b64(key, strlen(key), k, sizeof(k)) ||
	    bk_etcd_b64(val, strlen(val), v, sizeof(v)))
		return -ENOSPC;
	snprintf(body, sizeof(body),
	         "{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%lld\"}", k, v,
	         (long long)lease);
	if ((err = bk_etcd_post(c, "/v3/kv/put", body, true, &rep)))
		return err;
	rev = bk_etcd_i64(cJSON_GetObjectItem(rep, "header"), "revision");
	cJSON_Delete(rep);
	return rev > 0 ? rev : -EPROTO;
}

int bk_etcd_range_prefix(struct bk_etcd_conn *c, const char *prefix, bool serializable,
                         bool keys_only, cJSON **out, int64_t *rev)
{
	char k[BK_ETCD_KEY_MAX * 2], e[BK_ETCD_KEY_MAX * 2], body[sizeof(k) * 2 + 96];
	int err;

	if (bk_etcd_b64(prefix, strlen(prefix), k, sizeof(k)) ||
	    bk_etcd_prefix_end_b64(prefix, e, sizeof(e)))
		return -EINVAL;
	snprintf(body, sizeof(body),
	         "{\"key\":\"%s\",\"range_end\":\"%s\",\"serializable\":%s,"
	         "\"keys_only\":%s}",
	         k, e, serializable ? "true" : "false", keys_only ? "true" : "false");
	/* a contact probe (one try) must not turn into three timeouts */
	if ((err = bk_etcd_post(c, "/v3/kv/range", body, !keys_only, out)))
		return err;
	*rev = bk_etcd_i64(cJSON_GetObjectItem(*out, "header"), "revision");
	if (*rev <= 0) {
		cJSON_Delete(*out);
		*out = NULL;
		return -EPROTO;
	}
	return 0;
}

int64_t bk_etcd_cas(struct bk_etcd_conn *c, const char *key, int64_t mod_rev,
                    const char *val)
{
	char k[BK_ETCD_KEY_MAX * 2], v[BK_ETCD_VAL_MAX * 2],
	    op[sizeof(v) + sizeof(k) + 64];
	char body[sizeof(op) + sizeof(k) + 200];
	const cJSON *ok;
	bool succeeded;
	cJSON *rep;
	int64_t rev;
	int err;

	if (bk_etcd_b64(key, strlen(key), k, sizeof(k)) ||
	    (val && bk_etcd_b64(val, strlen(val), v, sizeof(v))))
		return -ENOSPC;
	if (val)
		snprintf(op, sizeof(op),
		         "{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}", k, v);
	else
		snprintf(op, sizeof(op), "{\"request_delete_range\":{\"key\":\"%s\"}}",
		         k);
	snprintf(body, sizeof(body),
	         "{\"compare\":[{\"key\":\"%s\",\"target\":\"MOD\",\"result\":\"EQUAL\","
	         "\"mod_revision\":\"%lld\"}],\"success\":[%s]}",
	         k, (long long)mod_rev, op);
	if ((err = bk_etcd_post(c, "/v3/kv/txn", body, true, &rep)))
		return err;
	ok = cJSON_GetObjectItem(rep, "succeeded"); /* absent: false */
	rev = bk_etcd_i64(cJSON_GetObjectItem(rep, "header"), "revision");
	succeeded = cJSON_IsTrue(ok); /* before the delete: ok points into rep */
	cJSON_Delete(rep);
	if (!succeeded)
		return -ESTALE;
	return rev > 0 ? rev : -EPROTO;
}

int64_t bk_etcd_put_all(struct bk_etcd_conn *c, const char *const *keys, int n,
                        const char *val)
{
	char k[BK_ETCD_KEY_MAX * 2], v[BK_ETCD_VAL_MAX * 2];
	size_t cap = 64 + (size_t)n * (sizeof(k) + strlen(val) * 2 + 64), o;
	char *body;
	const cJSON *ok;
	cJSON *rep;
	int64_t rev;
	int err;

	if (n < 1 || n > 128 || bk_etcd_b64(val, strlen(val), v, sizeof(v)))
		return -EINVAL;
	if (!(body = malloc(cap)))
		return -ENOMEM;
	o = (size_t)snprintf(body, cap, "{\"success\":[");
	for (int i = 0; i < n; i++) {
		if (bk_etcd_b64(keys[i], strlen(keys[i]), k, sizeof(k))) {
			free(body);
			return -ENOSPC;
		}
		o += (size_t)snprintf(
		    body + o, cap - o,
		    "%s{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}", i ? "," : "",
		    k, v);
	}
	snprintf(body + o, cap - o, "]}");
	err = bk_etcd_post(c, "/v3/kv/txn", body, true, &rep);
	free(body);
	if (err)
		return err;
	ok = cJSON_GetObjectItem(rep, "succeeded"); /* no compare: always true */
	rev = bk_etcd_i64(cJSON_GetObjectItem(rep, "header"), "revision");
	if (!cJSON_IsTrue(ok)) /* before the delete: ok points into rep */
		rev = -EPROTO;
	cJSON_Delete(rep);
	return rev > 0 ? rev : -EPROTO;
}

int64_t bk_etcd_lease_grant(struct bk_etcd_conn *c, int ttl_s)
{
	char body[64];
	cJSON *rep;
	int64_t id;
	int err;

	snprintf(body, sizeof(body), "{\"TTL\":\"%d\"}", ttl_s);
	if ((err = bk_etcd_post(c, "/v3/lease/grant", body, false, &rep)))
		return err;
	id = bk_etcd_i64(rep, "ID");
	cJSON_Delete(rep);
	return id > 0 ? id : -EPROTO;
}

int64_t bk_etcd_lease_keepalive(struct bk_etcd_conn *c, int64_t id)
{
	char body[64];
	cJSON *rep;
	int64_t ttl;
	int err;

	snprintf(body, sizeof(body), "{\"ID\":\"%lld\"}", (long long)id);
	/* a server stream on the gateway: one request, one "result" line */
	if ((err = bk_etcd_post(c, "/v3/lease/keepalive", body, false, &rep)))
		return err;
	ttl = bk_etcd_i64(cJSON_GetObjectItem(rep, "result"), "TTL");
	cJSON_Delete(rep);
	return ttl;
}
