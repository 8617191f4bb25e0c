/*
 * breaker_firm.c - `--firm` on trip, kill, emergency-stop, resume and status:
 * the firm-wide latches in etcd ([cluster] in the config; docs/firm-wide.md).
 *
 * The CLI talks to etcd's JSON gateway itself (blocking is fine here): a trip
 * is a put of the latch key (idempotent: the same latch again is the same
 * latch), a resume is one transaction conditioned on the latch's
 * mod_revision as the operator saw it in `status --firm`. Then it waits for
 * the hosts' acks (acks/<host> >= the revision) and says who is missing.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bk_etcd.h"
#include "bk_etcd_kv.h"
#include "bk_mode.h"
#include "bk_time.h"
#include "breaker.h"

#define FIRM_HOSTS 1024

static int firm_conn(struct cli *c, const char *cmd, struct bk_etcd_conn *conn)
{
	int rv;

	if ((rv = cli_config(c)))
		return rv;
	if (!c->cfg.cluster_name[0])
		return cli_usage_error(cmd, "--firm needs a [cluster] section (name, "
		                            "endpoints) in the config");
	if (bk_etcd_conn_init(conn, c->cfg.cluster_endpoints, c->timeout_ms) < 0)
		return cli_usage_error(cmd, "[cluster] endpoints: not http(s):// URLs");
	if (c->cfg.cluster_user[0]) {
		char pw[128];
		if ((rv = bk_etcd_read_secret(c->cfg.cluster_password_file, pw,
		                              sizeof(pw)))) {
			bk_etcd_conn_free(conn);
			return cli_usage_error(cmd, "[cluster] password_file %s: %s",
			                       c->cfg.cluster_password_file,
			                       strerror(-rv));
		}
		bk_etcd_conn_auth(conn, c->cfg.cluster_user, pw);
	}
	return 0;
}

static int unreachable(const char *cmd, struct bk_etcd_conn *conn, int err)
{
	if (err == -EACCES) {
		fprintf(stderr,
		        "breaker %s: etcd refused: %s (user '%s': its roles do not allow "
		        "this); nothing was changed\n",
		        cmd, conn->err[0] ? conn->err : "permission denied", conn->user);
		bk_etcd_conn_free(conn);
		return BX_REFUSED;
	}
	fprintf(stderr, "breaker %s: etcd: %s (%s); nothing was changed\n", cmd,
	        conn->err[0] ? conn->err : "no answer", strerror(-err));
	bk_etcd_conn_free(conn);
	return BX_UNREACHABLE;
}

static void scope_of(const char *strategy, const char *group, char *buf, size_t len)
{
	if (strategy)
		snprintf(buf, len, "strategy/%s", strategy);
	else if (group)
		snprintf(buf, len, "group/%s", group);
	else
		snprintf(buf, len, "global");
}

/* JSON-escape s into out (quotes, backslashes, control bytes). */
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

static void latch_value(const char *mode, const char *reason_code, const char *reason,
                        char *out, size_t len)
{
	struct passwd *pw = getpwuid(getuid());
	char text[1024], host[64] = "";
	uint64_t id;

	gethostname(host, sizeof(host) - 1);
	esc(reason ? reason : "", text, sizeof(text));
	id = ((uint64_t)getpid() << 32) ^ bk_now_wall_ns();
	snprintf(out, len,
	         "{\"mode\":\"%s\",\"reason_code\":\"%s\",\"actor\":\"%s\",\"uid\":%u,"
	         "\"reason\":\"%s\",\"command_id\":\"%llu\",\"time_ns\":\"%llu\","
	         "\"host\":\"%s\"}",
	         mode, reason_code, pw ? pw->pw_name : "unknown", (unsigned)getuid(),
	         text, (unsigned long long)id, (unsigned long long)bk_now_wall_ns(),
	         host);
}

struct firm_hosts {
	char name[FIRM_HOSTS][64];
	int64_t ack[FIRM_HOSTS];
	uint64_t ack_ns[FIRM_HOSTS];
	int n;
};

/* Read hosts/ and acks/: each live host and the revision it applied. */
static int read_hosts(struct cli *c, struct bk_etcd_conn *conn, struct firm_hosts *h)
{
	char prefix[BK_ETCD_KEY_MAX], key[BK_ETCD_KEY_MAX], val[BK_ETCD_VAL_MAX];
	const cJSON *kv;
	cJSON *rep;
	int64_t rev;
	int err;

	h->n = 0;
	snprintf(prefix, sizeof(prefix), "/breaker/v1/%s/hosts/", c->cfg.cluster_name);
	if ((err = bk_etcd_range_prefix(conn, prefix, false, false, &rep, &rev)))
		return err;
	cJSON_ArrayForEach(kv, cJSON_GetObjectItem(rep, "kvs"))
	{
		const cJSON *k = cJSON_GetObjectItem(kv, "key");
		if (h->n < FIRM_HOSTS && cJSON_IsString(k) &&
		    bk_etcd_unb64(k->valuestring, key, sizeof(key)) >
		        (int)strlen(prefix)) {
			snprintf(h->name[h->n], sizeof(h->name[0]), "%s",
			         key + strlen(prefix));
			h->ack[h->n] = 0;
			h->ack_ns[h->n++] = 0;
		}
	}
	cJSON_Delete(rep);
	snprintf(prefix, sizeof(prefix), "/breaker/v1/%s/acks/", c->cfg.cluster_name);
	if ((err = bk_etcd_range_prefix(conn, prefix, false, false, &rep, &rev)))
		return err;
	cJSON_ArrayForEach(kv, cJSON_GetObjectItem(rep, "kvs"))
	{
		const cJSON *k = cJSON_GetObjectItem(kv, "key"),
		            *v = cJSON_GetObjectItem(kv, "value");
		cJSON *j;

		if (!cJSON_IsString(k) || !cJSON_IsString(v) ||
		    bk_etcd_unb64(k->valuestring, key, sizeof(key)) <=
		        (int)strlen(prefix) ||
		    bk_etcd_unb64(v->valuestring, val, sizeof(val)) < 0 ||
		    !(j = cJSON_Parse(val)))
			continue;
		for (int i = 0; i < h->n; i++)
			if (strcmp(h->name[i], key + strlen(prefix)) == 0) {
				h->ack[i] = bk_etcd_i64(j, "revision");
				h->ack_ns[i] = (uint64_t)bk_etcd_i64(j, "time_ns");
			}
		cJSON_Delete(j);
	}
	cJSON_Delete(rep);
	return 0;
}

/* "applied on N of M hosts; missing: a, b" for revision rev; true if all. */
static bool say_acks(FILE *f, const struct firm_hosts *h, int64_t rev, uint64_t since_ns)
{
	uint64_t last = 0;
	int ok = 0;

	for (int i = 0; i < h->n; i++)
		if (h->ack[i] >= rev) {
			ok++;
			last = h->ack_ns[i] > last ? h->ack_ns[i] : last;
		}
	fprintf(f, "applied on %d of %d hosts", ok, h->n);
	if (ok < h->n) {
		fputs("; missing:", f);
		for (int i = 0, k = 0; i < h->n; i++)
			if (h->ack[i] < rev)
				fprintf(f, "%s %s", k++ ? "," : "", h->name[i]);
	}
	if (ok && since_ns && last >= since_ns)
		fprintf(f, "; last ack %.1f ms after the change",
		        (double)(last - since_ns) / 1e6);
	fputc('\n', f);
	return ok == h->n;
}

/* Poll the acks until every live host applied rev, or the timeout. */
static void wait_acks(struct cli *c, struct bk_etcd_conn *conn, int64_t rev,
                      uint64_t since_ns)
{
	static struct firm_hosts h;
	uint64_t deadline = bk_now_mono_ns() + (uint64_t)c->timeout_ms * 1000000ull;
	struct timespec nap = {0, 20 * 1000 * 1000};
	FILE *null = fopen("/dev/null", "w");

	while (bk_now_mono_ns() < deadline) {
		if (read_hosts(c, conn, &h) == 0 && h.n &&
		    say_acks(null, &h, rev, since_ns))
			break;
		nanosleep(&nap, NULL);
	}
	if (null)
		fclose(null);
	if (read_hosts(c, conn, &h) == 0)
		say_acks(stdout, &h, rev, since_ns);
	else
		printf("acks: cannot read them from etcd (%s)\n", conn->err);
}

/* One put per scope (none: global); each is quorum-durable when it returns. */
int cli_firm_trip(struct cli *c, const struct cli_args *a, char *const *strategies,
                  int ns, char *const *groups, int ng, int reason, int mode,
                  const char *text)
{
	char scope[BK_ETCD_SCOPE_MAX], key[BK_ETCD_KEY_MAX], val[2048];
	struct bk_etcd_conn conn;
	uint64_t at = bk_now_wall_ns();
	int64_t rev = 0;
	int rv;

	if ((rv = firm_conn(c, a->cmd, &conn)))
		return rv;
	for (int i = 0; i < (ns + ng ? ns + ng : 1); i++) {
		scope_of(i < ns ? strategies[i] : NULL,
		         i >= ns && i - ns < ng ? groups[i - ns] : NULL, scope,
		         sizeof(scope));
		if (bk_etcd_latch_key(key, sizeof(key), c->cfg.cluster_name, scope,
		                      bk_reason_name((unsigned)reason))) {
			bk_etcd_conn_free(&conn);
			return cli_usage_error(a->cmd, "scope name too long for a key");
		}
		latch_value(bk_mode_name(mode), bk_reason_name((unsigned)reason), text,
		            val, sizeof(val));
		if ((rev = bk_etcd_put(&conn, key, val, 0)) < 0)
			return unreachable(a->cmd, &conn, (int)rev);
		printf("firm %s %s: %s (quorum-durable) at etcd revision %lld\n", scope,
		       bk_reason_name((unsigned)reason), bk_mode_name(mode),
		       (long long)rev);
	}
	wait_acks(c, &conn, rev, at);
	bk_etcd_conn_free(&conn);
	return BX_OK;
}

/* The latch (scope, reason) now: its mode and mod_revision; -ENOENT if none. */
static int find_latch(struct cli *c, struct bk_etcd_conn *conn, const char *scope,
                      int *reason, int *mode, int64_t *mod_rev)
{
	char prefix[BK_ETCD_KEY_MAX], key[BK_ETCD_KEY_MAX], val[BK_ETCD_VAL_MAX];
	const cJSON *kv;
	cJSON *rep;
	int64_t rev;
	int err, found = 0;

	snprintf(prefix, sizeof(prefix), "/breaker/v1/%s/latch/%s/", c->cfg.cluster_name,
	         scope);
	if ((err = bk_etcd_range_prefix(conn, prefix, false, false, &rep, &rev)))
		return err;
	cJSON_ArrayForEach(kv, cJSON_GetObjectItem(rep, "kvs"))
	{
		const cJSON *k = cJSON_GetObjectItem(kv, "key"),
		            *v = cJSON_GetObjectItem(kv, "value");
		struct bk_etcd_latch l;
		int r;

		if (!cJSON_IsString(k) || !cJSON_IsString(v) ||
		    bk_etcd_unb64(k->valuestring, key, sizeof(key)) < 0 ||
		    bk_etcd_unb64(v->valuestring, val, sizeof(val)) < 0 ||
		    (r = bk_reason_parse(key + strlen(prefix))) < 0)
			continue;
		if (*reason >= 0 && r != *reason)
			continue;
		bk_etcd_latch_parse(&l, val);
		*reason = r;
		*mode = l.mode;
		*mod_rev = bk_etcd_i64(kv, "mod_revision");
		found++;
	}
	cJSON_Delete(rep);
	return found == 1 ? 0 : found ? -EEXIST : -ENOENT;
}

int cli_firm_resume(struct cli *c, const struct cli_args *a, int reason, int to)
{
	char scope[BK_ETCD_SCOPE_MAX], key[BK_ETCD_KEY_MAX], val[2048], *end;
	struct bk_etcd_conn conn;
	int64_t seen, now_rev, rev;
	int rv, mode;

	if (!a->revision)
		return cli_usage_error(
		    a->cmd, "--firm needs --revision N: the latch's mod_revision "
		            "as 'breaker status --firm' showed it");
	seen = strtoll(a->revision, &end, 10);
	if (*end || seen <= 0)
		return cli_usage_error(
		    a->cmd, "--revision: a positive revision, not '%s'", a->revision);
	if ((rv = firm_conn(c, a->cmd, &conn)))
		return rv;
	scope_of(a->strategy, a->n_groups ? a->groups[0] : NULL, scope, sizeof(scope));
	rv = find_latch(c, &conn, scope, &reason, &mode, &now_rev);
	if (rv == -ENOENT || rv == -EEXIST) {
		fprintf(stderr, "breaker %s: firm %s: %s; nothing was changed\n", a->cmd,
		        scope,
		        rv == -ENOENT
		            ? "no such firm latch"
		            : "several firm latches: name one with --reason-code");
		bk_etcd_conn_free(&conn);
		return BX_REFUSED;
	}
	if (rv)
		return unreachable(a->cmd, &conn, rv);
	if (to < 0)
		to = mode - 1; /* one stage at a time, as on one host */
	if (to >= mode || (!a->force && to != mode - 1)) {
		fprintf(stderr,
		        "breaker %s: firm %s %s is %s: %s %s%s; nothing was changed\n",
		        a->cmd, scope, bk_reason_name((unsigned)reason),
		        bk_mode_name(mode),
		        to >= mode ? "not a resume to" : "skips a stage to",
		        bk_mode_name(to), to >= mode ? "" : " (--force)");
		bk_etcd_conn_free(&conn);
		return BX_REFUSED;
	}
	bk_etcd_latch_key(key, sizeof(key), c->cfg.cluster_name, scope,
	                  bk_reason_name((unsigned)reason));
	if (to > BK_ACTIVE)
		latch_value(bk_mode_name(to), bk_reason_name((unsigned)reason), a->reason,
		            val, sizeof(val));
	uint64_t at = bk_now_wall_ns();
	rev = bk_etcd_cas(&conn, key, seen, to > BK_ACTIVE ? val : NULL);
	if (rev == -ESTALE) {
		fprintf(
		    stderr,
		    "breaker %s: firm %s %s changed since revision %lld (now %lld): look "
		    "again with 'breaker status --firm'; nothing was changed\n",
		    a->cmd, scope, bk_reason_name((unsigned)reason), (long long)seen,
		    (long long)now_rev);
		bk_etcd_conn_free(&conn);
		return BX_REFUSED;
	}
	if (rev < 0)
		return unreachable(a->cmd, &conn, (int)rev);
	printf("firm %s %s: %s -> %s at etcd revision %lld\n", scope,
	       bk_reason_name((unsigned)reason), bk_mode_name(mode), bk_mode_name(to),
	       (long long)rev);
	wait_acks(c, &conn, rev, at);
	bk_etcd_conn_free(&conn);
	return BX_OK;
}

int cli_firm_status(struct cli *c, const struct cli_args *a)
{
	static struct firm_hosts h;
	char prefix[BK_ETCD_KEY_MAX], key[BK_ETCD_KEY_MAX], val[BK_ETCD_VAL_MAX];
	struct bk_etcd_conn conn;
	const cJSON *kv;
	cJSON *rep;
	int64_t rev, top = 0;
	int rv, n = 0;

	if ((rv = firm_conn(c, a->cmd, &conn)))
		return rv;
	snprintf(prefix, sizeof(prefix), "/breaker/v1/%s/latch/", c->cfg.cluster_name);
	if ((rv = bk_etcd_range_prefix(&conn, prefix, false, false, &rep, &rev)))
		return unreachable(a->cmd, &conn, rv);
	printf("firm-wide cluster %s (etcd revision %lld)\n", c->cfg.cluster_name,
	       (long long)rev);
	cJSON_ArrayForEach(kv, cJSON_GetObjectItem(rep, "kvs"))
	{
		const cJSON *k = cJSON_GetObjectItem(kv, "key"),
		            *v = cJSON_GetObjectItem(kv, "value");
		struct bk_etcd_latch l;
		int64_t mr = bk_etcd_i64(kv, "mod_revision");

		if (!cJSON_IsString(k) || !cJSON_IsString(v) ||
		    bk_etcd_unb64(k->valuestring, key, sizeof(key)) < 0 ||
		    bk_etcd_unb64(v->valuestring, val, sizeof(val)) < 0)
			continue;
		bk_etcd_latch_parse(&l, val);
		printf("  %-40s %-12s by %s  mod_revision %lld\n", key + strlen(prefix),
		       bk_mode_name(l.mode), l.actor, (long long)mr);
		top = mr > top ? mr : top;
		n++;
	}
	cJSON_Delete(rep);
	if (!n)
		printf("  no firm latches: ACTIVE firm-wide\n");
	if ((rv = read_hosts(c, &conn, &h)))
		return unreachable(a->cmd, &conn, rv);
	if (top)
		say_acks(stdout, &h, top, 0);
	else
		printf("%d hosts up\n", h.n);
	bk_etcd_conn_free(&conn);
	return BX_OK;
}
