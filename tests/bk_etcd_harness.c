/*
 * bk_etcd_harness - a real 3-member etcd cluster on loopback (see the header).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "bk_etcd_harness.h"
#include "bk_etcd_kv.h"
#include "bk_harness.h"

const char *bk_ec_url(const struct bk_ec *c, int i, char *buf, size_t len)
{
	if (c->tls_dir[0])
		snprintf(buf, len, "https://localhost:%d", c->client_port[i]);
	else
		snprintf(buf, len, "http://127.0.0.1:%d", c->client_port[i]);
	return buf;
}

pid_t bk_ec_spawn(struct bk_ec *c, int i, bool fresh, const char *listen_client,
                  const char *advertise_client, const char *peer, int netns_fd)
{
	char name[16], data[192], log[192], cert[128], key[128], ca[128];
	pid_t pid;

	snprintf(name, sizeof(name), "m%d", i);
	snprintf(data, sizeof(data), "%s/%s.etcd", c->dir, name);
	snprintf(log, sizeof(log), "%s/%s.log", c->dir, name);
	snprintf(cert, sizeof(cert), "--cert-file=%s/server.pem", c->tls_dir);
	snprintf(key, sizeof(key), "--key-file=%s/server.key", c->tls_dir);
	snprintf(ca, sizeof(ca), "--trusted-ca-file=%s/ca.pem", c->tls_dir);
	char *argv[] = {"etcd",
	                "--name",
	                name,
	                "--data-dir",
	                data,
	                "--listen-client-urls",
	                (char *)listen_client,
	                "--advertise-client-urls",
	                (char *)advertise_client,
	                "--listen-peer-urls",
	                (char *)peer,
	                "--initial-advertise-peer-urls",
	                (char *)peer,
	                "--initial-cluster",
	                c->initial,
	                "--initial-cluster-token",
	                c->tag,
	                "--initial-cluster-state",
	                fresh ? "new" : "existing",
	                "--pre-vote=true",
	                "--logger",
	                "zap",
	                "--log-outputs",
	                log,
	                c->tls_dir[0] ? "--client-cert-auth" : NULL,
	                cert,
	                key,
	                ca,
	                NULL};
	pid = fork();
	cr_assert_geq(pid, 0, "fork");
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves no member */
		if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0)
			_exit(126);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execvp("etcd", argv);
		_exit(127);
	}
	return pid;
}

void bk_ec_member_start(struct bk_ec *c, int i, bool fresh)
{
	char curl[64], lurl[64], purl[64];

	bk_ec_url(c, i, curl, sizeof(curl));
	snprintf(lurl, sizeof(lurl), "%s://127.0.0.1:%d",
	         c->tls_dir[0] ? "https" : "http", c->client_port[i]);
	snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", c->peer_port[i]);
	c->pid[i] = bk_ec_spawn(c, i, fresh, lurl, curl, purl, -1);
}

/* died: NULL asserts that no member exited; else set when one did. */
static bool healthy(struct bk_ec *c, unsigned ms, bool *died)
{
	struct bk_etcd_conn conn;
	uint64_t end = bk_h_mono_ms() + ms;
	struct timespec nap = {0, 50 * 1000 * 1000};
	bool ok = false;
	cJSON *rep;
	int64_t rev;

	cr_assert_eq(bk_etcd_conn_init(&conn, c->endpoints, 500), 0);
	if (c->tls_dir[0]) {
		char cert[128], key[128], ca[128];
		snprintf(cert, sizeof(cert), "%s/client.pem", c->tls_dir);
		snprintf(key, sizeof(key), "%s/client.key", c->tls_dir);
		snprintf(ca, sizeof(ca), "%s/ca.pem", c->tls_dir);
		bk_etcd_conn_tls(&conn, cert, key, ca);
	}
	while (!ok && bk_h_mono_ms() < end) {
		for (int i = 0; i < BK_EC_MEMBERS; i++) {
			int st;
			bool gone = c->pid[i] && waitpid(c->pid[i], &st, WNOHANG) != 0;

			if (gone && died) {
				c->pid[i] = 0;
				*died = true;
				bk_etcd_conn_free(&conn);
				return false;
			}
			cr_assert(!gone,
			          "etcd member %d exited (is etcd-server installed? see "
			          "%s/m%d.log)",
			          i, c->dir, i);
		}
		if (bk_etcd_range_prefix(&conn, "/health-probe/", false, false, &rep,
		                         &rev) == 0) {
			cJSON_Delete(rep);
			ok = true;
		} else
			nanosleep(&nap, NULL);
	}
	bk_etcd_conn_free(&conn);
	return ok;
}

bool bk_ec_healthy(struct bk_ec *c, unsigned ms)
{
	return healthy(c, ms, NULL);
}

/* Free ports for every member, the --initial-cluster and endpoint strings. */
static void pick_ports(struct bk_ec *c)
{
	size_t off = 0, eoff = 0;
	char url[64];

	for (int i = 0; i < BK_EC_MEMBERS; i++) {
		c->client_port[i] = bk_h_free_port();
		c->peer_port[i] = bk_h_free_port();
		off += (size_t)snprintf(c->initial + off, sizeof(c->initial) - off,
		                        "%sm%d=http://127.0.0.1:%d", i ? "," : "", i,
		                        c->peer_port[i]);
		eoff += (size_t)snprintf(c->endpoints + eoff, sizeof(c->endpoints) - eoff,
		                         "%s%s", i ? "," : "",
		                         bk_ec_url(c, i, url, sizeof(url)));
	}
}

/*
 * Start the members; a member that exits at once (another process took one
 * of its ports between the pick and its bind) makes the whole cluster start
 * again on new ports and fresh data dirs, twice at most.
 */
static void ec_start(struct bk_ec *c, const char *tag, const char *tls_dir)
{
	memset(c, 0, sizeof(*c));
	if (tls_dir)
		snprintf(c->tls_dir, sizeof(c->tls_dir), "%s", tls_dir);
	snprintf(c->tag, sizeof(c->tag), "%s-%d", tag, (int)getpid());
	snprintf(c->dir, sizeof(c->dir), "/tmp/bk-etcd-%s-XXXXXX", tag);
	cr_assert_not_null(mkdtemp(c->dir));
	for (int attempt = 0;; attempt++) {
		bool died = false;
		char cmd[256];

		pick_ports(c);
		for (int i = 0; i < BK_EC_MEMBERS; i++)
			bk_ec_member_start(c, i, true);
		if (healthy(c, 60000, attempt < 2 ? &died : NULL))
			return;
		cr_assert(died, "etcd cluster not up within 60 s (logs in %s)", c->dir);
		for (int i = 0; i < BK_EC_MEMBERS; i++)
			bk_ec_kill9(c, i);
		snprintf(cmd, sizeof(cmd), "rm -rf %s/m*.etcd", c->dir);
		cr_assert_eq(system(cmd), 0);
	}
}

void bk_ec_start(struct bk_ec *c, const char *tag)
{
	ec_start(c, tag, NULL);
}

void bk_ec_start_tls(struct bk_ec *c, const char *tag, const char *tls_dir)
{
	ec_start(c, tag, tls_dir);
}

void bk_ec_signal(struct bk_ec *c, int i, int sig)
{
	if (c->pid[i] > 0)
		kill(c->pid[i], sig);
}

void bk_ec_kill9(struct bk_ec *c, int i)
{
	if (c->pid[i] <= 0)
		return;
	kill(c->pid[i], SIGKILL);
	waitpid(c->pid[i], NULL, 0);
	c->pid[i] = 0;
}

void bk_ec_stop(struct bk_ec *c)
{
	char cmd[256];

	for (int i = 0; i < BK_EC_MEMBERS; i++) {
		if (c->pid[i] <= 0)
			continue;
		kill(c->pid[i], SIGCONT); /* a stopped member cannot die of SIGTERM */
		kill(c->pid[i], SIGKILL);
		waitpid(c->pid[i], NULL, 0);
		c->pid[i] = 0;
	}
	if (c->dir[0] && !getenv("BK_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", c->dir);
	}
}

void bk_ec_ini(const struct bk_ec *c, const char *cluster, const char *host,
               const char *extra, char *buf, size_t len)
{
	snprintf(buf, len, "[cluster]\nname = %s\nhost = %s\nendpoints = %s\n%s", cluster,
	         host, c->endpoints, extra ? extra : "");
}

void bk_ec_call(struct bk_ec *ec, const char *path, const char *body)
{
	struct bk_etcd_conn conn;
	cJSON *rep;

	cr_assert_eq(bk_etcd_conn_init(&conn, ec->endpoints, 5000), 0);
	cr_assert_eq(bk_etcd_post(&conn, path, body, true, &rep), 0, "%s %s: %s", path,
	             body, conn.err);
	cJSON_Delete(rep);
	bk_etcd_conn_free(&conn);
}

void bk_ec_user(struct bk_ec *ec, const char *user, const char *role)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"password\":\"%s-pw\"}", user,
	         user);
	bk_ec_call(ec, "/v3/auth/user/add", body);
	snprintf(body, sizeof(body), "{\"user\":\"%s\",\"role\":\"%s\"}", user, role);
	bk_ec_call(ec, "/v3/auth/user/grant", body);
}

void bk_ec_grant(struct bk_ec *ec, const char *role, const char *perm, const char *prefix)
{
	char body[512], k[128], e[128];

	bk_etcd_b64(prefix, strlen(prefix), k, sizeof(k));
	bk_etcd_prefix_end_b64(prefix, e, sizeof(e));
	snprintf(body, sizeof(body),
	         "{\"name\":\"%s\",\"perm\":{\"permType\":\"%s\",\"key\":\"%s\","
	         "\"range_end\":\"%s\"}}",
	         role, perm, k, e);
	bk_ec_call(ec, "/v3/auth/role/grant", body);
}

void bk_ec_role(struct bk_ec *ec, const char *role, const char *perm, const char *prefix)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"name\":\"%s\"}", role);
	bk_ec_call(ec, "/v3/auth/role/add", body);
	if (perm)
		bk_ec_grant(ec, role, perm, prefix);
}
