/*
 * breaker_firm.c - `--firm` on trip, kill, emergency-stop, resume and status:
 * the firm-wide latches in etcd ([cluster] in the config; docs/firmwide.md).
 *
 * A trip or resume goes to the LOCAL breakerd (the transports and request ids
 * of a local command): it authorises it as the local command ([auth], TLS
 * roles, the two-person rule for a global resume), audits it and makes the
 * etcd change with its own [cluster] credentials: a trip is a put of the
 * latch key (idempotent), a resume one transaction conditioned on the
 * latch's mod_revision as the operator saw it in `status --firm`. Then the
 * CLI reads the hosts' acks (acks/<host> >= the revision) from etcd itself,
 * when this config lets it, and says who is missing. `status --firm` reads
 * etcd directly.
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
	bk_etcd_conn_tls(conn, c->cfg.cluster_cert_file, c->cfg.cluster_key_file,
	                 c->cfg.cluster_ca_file);
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

/* The [cluster] connection for reading the acks: false (said why) if this
 * user cannot read them (the password file is breakerd's, say). */
static bool ack_conn(struct cli *c, struct bk_etcd_conn *conn)
{
	char pw[128];

	if (!c->cfg.cluster_name[0] ||
	    bk_etcd_conn_init(conn, c->cfg.cluster_endpoints, c->timeout_ms) < 0) {
		printf("acks: no [cluster] in this config to read them from\n");
		return false;
	}
	bk_etcd_conn_tls(conn, c->cfg.cluster_cert_file, c->cfg.cluster_key_file,
	                 c->cfg.cluster_ca_file);
	if (c->cfg.cluster_user[0]) {
		if (bk_etcd_read_secret(c->cfg.cluster_password_file, pw, sizeof(pw))) {
			printf(
			    "acks: not readable here (see 'breaker status --firm' as an "
			    "operator with [cluster] credentials)\n");
			bk_etcd_conn_free(conn);
			return false;
		}
		bk_etcd_conn_auth(conn, c->cfg.cluster_user, pw);
	}
	return true;
}

static void acks_after(struct cli *c, int64_t rev, uint64_t at)
{
	struct bk_etcd_conn conn;

	if (!ack_conn(c, &conn))
		return;
	wait_acks(c, &conn, rev, at);
	bk_etcd_conn_free(&conn);
}

/* Send one firm command to the local breakerd, which authorises it as the
 * local one, audits it and makes the etcd change: its revision, or an exit
 * code (negated) when refused. A trip in etcd whose record is not on disk
 * on this host yet: its revision, *not_durable set (said loudly). */
static int64_t forward(struct cli *c, const struct cli_args *a, Breaker__Request *req,
                       Breaker__Reply **rep, bool *not_durable)
{
	int rv = cli_call(c, a->cmd, req, rep, true);

	if (rv)
		return -rv;
	if ((*rep)->status == BREAKER__STATUS__PENDING_CONFIRMATION) {
		printf("proposed, not applied: ");
		fputs((*rep)->error ? (*rep)->error : "", stdout);
		fputc('\n', stdout);
		return 0;
	}
	if ((*rep)->status == BREAKER__STATUS__ERR_NOT_DURABLE &&
	    (*rep)->has_firm_revision && not_durable) {
		fprintf(stderr,
		        "!!! FIRM TRIP IN EFFECT at etcd revision %llu\n"
		        "!!! BUT ITS AUDIT RECORD (seq %llu) IS NOT ON DISK on this host "
		        "YET\n!!! breakerd: ERR_NOT_DURABLE: %s\n"
		        "!!! the latch holds in etcd; breakerd retries the write. Check "
		        "the disk holding %s\n",
		        (unsigned long long)(*rep)->firm_revision,
		        (unsigned long long)(*rep)->audit_seq,
		        (*rep)->error ? (*rep)->error : "", c->cfg.audit_path);
		*not_durable = true;
		return (int64_t)(*rep)->firm_revision;
	}
	if ((*rep)->status != BREAKER__STATUS__OK || !(*rep)->has_firm_revision)
		return -cli_refused(*rep);
	return (int64_t)(*rep)->firm_revision;
}

/* One forwarded trip of every scope named (none: global): breakerd puts
 * them in ONE etcd transaction, all at one revision or none. */
int cli_firm_trip(struct cli *c, const struct cli_args *a, char *const *strategies,
                  int ns, char *const *groups, int ng, int reason, int mode,
                  const char *text)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Trip t = BREAKER__TRIP__INIT;
	Breaker__Reply *rep = NULL;
	char scope[BK_ETCD_SCOPE_MAX];
	uint64_t at = bk_now_wall_ns();
	bool not_durable = false;
	int64_t rev;
	int rv;

	if ((rv = cli_config(c)))
		return rv;
	if (!c->cfg.cluster_name[0])
		return cli_usage_error(a->cmd, "--firm needs a [cluster] section (name, "
		                               "endpoints) in the config");
	t.has_firm = t.firm = 1;
	t.n_strategies = (size_t)ns;
	t.strategies = (char **)strategies;
	t.n_groups = (size_t)ng;
	t.groups = (char **)groups;
	t.has_mode = t.has_reason_code = 1;
	t.mode = (Breaker__Mode)mode;
	t.reason_code = (Breaker__ReasonCode)reason;
	t.reason = (char *)text;
	req.cmd_case = BREAKER__REQUEST__CMD_TRIP;
	req.trip = &t;
	rev = forward(c, a, &req, &rep, &not_durable);
	if (rep)
		breaker__reply__free_unpacked(rep, NULL);
	if (rev <= 0)
		return (int)-rev;
	fputs("firm ", stdout);
	for (int i = 0; i < (ns + ng ? ns + ng : 1); i++) {
		scope_of(i < ns ? strategies[i] : NULL,
		         i >= ns && i - ns < ng ? groups[i - ns] : NULL, scope,
		         sizeof(scope));
		printf("%s%s", i ? ", " : "", scope);
	}
	printf(" %s: %s (quorum-durable%s) at etcd revision %lld\n",
	       bk_reason_name((unsigned)reason), bk_mode_name(mode),
	       ns + ng > 1 ? ", one transaction" : "", (long long)rev);
	acks_after(c, rev, at);
	return not_durable ? BX_NOT_DURABLE : BX_OK;
}

int cli_firm_resume(struct cli *c, const struct cli_args *a, int reason, int to)
{
	Breaker__Request req = BREAKER__REQUEST__INIT;
	Breaker__Resume rs = BREAKER__RESUME__INIT;
	Breaker__Reply *rep = NULL;
	char scope[BK_ETCD_SCOPE_MAX], *end;
	uint64_t at = bk_now_wall_ns();
	int64_t seen, rev;
	int from = 0, rv;

	if (!a->revision)
		return cli_usage_error(
		    a->cmd, "--firm needs --revision N: the latch's mod_revision "
		            "as 'breaker status --firm' showed it");
	seen = strtoll(a->revision, &end, 10);
	if (*end || seen <= 0)
		return cli_usage_error(
		    a->cmd, "--revision: a positive revision, not '%s'", a->revision);
	if ((rv = cli_config(c)))
		return rv;
	if (!c->cfg.cluster_name[0])
		return cli_usage_error(a->cmd, "--firm needs a [cluster] section (name, "
		                               "endpoints) in the config");
	scope_of(a->strategy, a->n_groups ? a->groups[0] : NULL, scope, sizeof(scope));
	rs.has_firm = rs.firm = 1;
	rs.has_firm_seen_revision = 1;
	rs.firm_seen_revision = (uint64_t)seen;
	rs.strategy = a->strategy;
	rs.group = a->n_groups ? a->groups[0] : NULL;
	rs.has_reason_code = reason >= 0;
	rs.reason_code = reason >= 0 ? (Breaker__ReasonCode)reason : 0;
	rs.has_to = to >= 0;
	rs.to = to >= 0 ? (Breaker__Mode)to : 0;
	rs.has_force = rs.force = a->force;
	rs.reason = a->reason;
	req.cmd_case = BREAKER__REQUEST__CMD_RESUME;
	req.resume = &rs;
	rev = forward(c, a, &req, &rep, NULL);
	if (rev > 0) {
		from = rep->has_firm_from_mode ? rep->firm_from_mode : 0;
		to = rep->has_to_mode ? (int)rep->to_mode : 0;
	}
	if (rep)
		breaker__reply__free_unpacked(rep, NULL);
	if (rev <= 0)
		return (int)-rev;
	printf("firm %s: %s -> %s at etcd revision %lld\n", scope, bk_mode_name(from),
	       bk_mode_name(to), (long long)rev);
	acks_after(c, rev, at);
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

int cli_firm_conn(struct cli *c, const char *cmd, struct bk_etcd_conn *conn)
{
	return firm_conn(c, cmd, conn);
}
