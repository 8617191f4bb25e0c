/*
 * bk_netns_harness - etcd x3 and breakerd hosts in network namespaces of
 * their own, links cut with nftables (see the header).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "bk_etcd_kv.h"
#include "bk_harness.h"
#include "bk_netns_harness.h"

#define NN_NET "10.77.0"

/* Run a shell command line; its exit status (-1 if it could not run). */
static int nn_sh(char *cmd, size_t len, const char *fmt, ...)
{
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, len, fmt, ap);
	va_end(ap);
	st = system(cmd);
	return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

#define NN_MUST(...)                                                                     \
	do {                                                                             \
		char cmd_[512];                                                          \
		int rc_ = nn_sh(cmd_, sizeof(cmd_), __VA_ARGS__);                        \
		cr_assert_eq(rc_, 0, "netns harness: `%s` exited %d", cmd_, rc_);        \
	} while (0)

static const char *node_name(const struct bk_nn *w, int node, char *buf, size_t len)
{
	if (node == BK_NN_NODES)
		snprintf(buf, len, "%s-hub", w->pfx);
	else if (node < BK_EC_MEMBERS)
		snprintf(buf, len, "%s-m%d", w->pfx, node);
	else
		snprintf(buf, len, "%s-h%d", w->pfx, node - BK_EC_MEMBERS);
	return buf;
}

const char *bk_nn_addr(int node, char *buf, size_t len)
{
	if (node < BK_EC_MEMBERS)
		snprintf(buf, len, NN_NET ".%d", 1 + node);
	else
		snprintf(buf, len, NN_NET ".%d", 11 + node - BK_EC_MEMBERS);
	return buf;
}

/* Namespaces "bkn-<pid>-..." whose test process is gone (killed by its
 * timeout before its teardown ran): delete them. */
static void nn_clean_stale(void)
{
	DIR *d = opendir("/run/netns");
	struct dirent *de;
	char cmd[256];

	if (!d)
		return;
	while ((de = readdir(d))) {
		int pid;
		if (sscanf(de->d_name, "bkn-%d-", &pid) != 1 || pid <= 0)
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		if (nn_sh(cmd, sizeof(cmd), "ip netns del '%s' 2>/dev/null", de->d_name))
			fprintf(stderr, "netns harness: could not remove stale %s\n",
			        de->d_name);
	}
	closedir(d);
}

static int nn_open(const struct bk_nn *w, int node)
{
	char name[64], path[96];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s",
	         node_name(w, node, name, sizeof(name)));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "netns harness: open %s: %s", path, strerror(errno));
	return fd;
}

/* A member or host namespace: veth to the hub's bridge, its address, lo up,
 * the nft table where cuts go. */
static void nn_node(struct bk_nn *w, int node)
{
	char name[64], hub[64], addr[32];

	node_name(w, node, name, sizeof(name));
	node_name(w, BK_NN_NODES, hub, sizeof(hub));
	NN_MUST("ip netns add %s", name);
	w->made[node] = true;
	NN_MUST("ip link add v%d netns %s type veth peer name eth0 netns %s", node, hub,
	        name);
	NN_MUST("ip -n %s link set v%d master br0 up", hub, node);
	NN_MUST("ip -n %s addr add %s/24 dev eth0", name,
	        bk_nn_addr(node, addr, sizeof(addr)));
	NN_MUST("ip -n %s link set eth0 up && ip -n %s link set lo up", name, name);
	NN_MUST("ip netns exec %s nft 'add table inet bkn; "
	        "add chain inet bkn in { type filter hook input priority 0; }; "
	        "add chain inet bkn out { type filter hook output priority 0; }'",
	        name);
	w->fd[node] = nn_open(w, node);
}

void bk_nn_enter(struct bk_nn *w, int node)
{
	cr_assert_eq(setns(w->fd[node], CLONE_NEWNET), 0, "setns: %s", strerror(errno));
}

void bk_nn_hub(struct bk_nn *w)
{
	cr_assert_eq(setns(w->hub_fd, CLONE_NEWNET), 0, "setns: %s", strerror(errno));
}

void bk_nn_member_start(struct bk_nn *w, int i, bool fresh)
{
	char curl[64], purl[64], addr[32];

	bk_nn_addr(i, addr, sizeof(addr));
	snprintf(curl, sizeof(curl), "http://%s:2379", addr);
	snprintf(purl, sizeof(purl), "http://%s:2380", addr);
	w->ec.pid[i] = bk_ec_spawn(&w->ec, i, fresh, curl, curl, purl, w->fd[i]);
}

void bk_nn_up(struct bk_nn *w, const char *tag, int n_hosts)
{
	char hub[64], cmd[256];
	size_t off = 0, eoff = 0;

	memset(w, 0, sizeof(*w));
	w->root_fd = w->hub_fd = -1;
	for (int i = 0; i < BK_NN_NODES; i++)
		w->fd[i] = -1;
	cr_assert(n_hosts > 0 && n_hosts <= BK_NN_HOSTS_MAX);
	w->n_hosts = n_hosts;
	snprintf(w->pfx, sizeof(w->pfx), "bkn-%d", (int)getpid());
	cr_assert_geq(w->root_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), 0);
	nn_clean_stale();
	node_name(w, BK_NN_NODES, hub, sizeof(hub));
	if (nn_sh(cmd, sizeof(cmd), "ip netns add %s", hub) != 0)
		cr_assert_fail("cannot create a network namespace (`%s` failed): these "
		               "tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN), iproute2 "
		               "and nftables (tools/dev.sh deps)",
		               cmd);
	w->made[BK_NN_NODES] = true;
	NN_MUST("ip -n %s link add br0 type bridge && ip -n %s link set br0 up && "
	        "ip -n %s link set lo up && ip -n %s addr add " NN_NET ".254/24 dev br0",
	        hub, hub, hub, hub);
	w->hub_fd = nn_open(w, BK_NN_NODES);
	if (nn_sh(cmd, sizeof(cmd), "nft --version >/dev/null") != 0)
		cr_assert_fail("no `nft`: install nftables (tools/dev.sh deps)");
	for (int i = 0; i < BK_EC_MEMBERS + n_hosts; i++)
		nn_node(w, i);
	bk_nn_hub(w);

	struct bk_ec *c = &w->ec;
	snprintf(c->tag, sizeof(c->tag), "%s-%d", tag, (int)getpid());
	snprintf(c->dir, sizeof(c->dir), "/tmp/bk-nn-%s-XXXXXX", tag);
	cr_assert_not_null(mkdtemp(c->dir));
	for (int i = 0; i < BK_EC_MEMBERS; i++) {
		char addr[32];
		bk_nn_addr(i, addr, sizeof(addr));
		c->client_port[i] = 2379;
		c->peer_port[i] = 2380;
		off += (size_t)snprintf(c->initial + off, sizeof(c->initial) - off,
		                        "%sm%d=http://%s:2380", i ? "," : "", i, addr);
		eoff += (size_t)snprintf(c->endpoints + eoff, sizeof(c->endpoints) - eoff,
		                         "%shttp://%s:2379", i ? "," : "", addr);
	}
	for (int i = 0; i < BK_EC_MEMBERS; i++)
		bk_nn_member_start(w, i, true);
	cr_assert(bk_ec_healthy(c, 60000), "etcd cluster not up within 60 s (logs in %s)",
	          c->dir);
}

void bk_nn_down(struct bk_nn *w)
{
	char name[64], cmd[256];

	if (!w->pfx[0])
		return;
	if (w->root_fd >= 0 && w->hub_fd >= 0 && setns(w->root_fd, CLONE_NEWNET) != 0)
		fprintf(stderr, "netns harness: setns back: %s\n", strerror(errno));
	if (w->ec.dir[0])
		bk_ec_stop(&w->ec);
	for (int i = 0; i <= BK_NN_NODES; i++) {
		if (i < BK_NN_NODES && w->fd[i] >= 0)
			close(w->fd[i]);
		if (w->made[i] && nn_sh(cmd, sizeof(cmd), "ip netns del %s",
		                        node_name(w, i, name, sizeof(name))) != 0)
			fprintf(stderr, "netns harness: `%s` failed\n", cmd);
	}
	if (w->hub_fd >= 0)
		close(w->hub_fd);
	if (w->root_fd >= 0)
		close(w->root_fd);
	memset(w, 0, sizeof(*w));
}

/* Replace node's rules with these (nft syntax, ';'-separated, may be ""). */
static void nn_rules(struct bk_nn *w, int node, const char *in, const char *out)
{
	char name[64];

	node_name(w, node, name, sizeof(name));
	NN_MUST("ip netns exec %s nft 'flush chain inet bkn in; flush chain inet bkn "
	        "out%s%s%s%s'",
	        name, *in ? "; add rule inet bkn in " : "", in,
	        *out ? "; add rule inet bkn out " : "", out);
}

void bk_nn_cut(struct bk_nn *w, int node, int dirs)
{
	nn_rules(w, node, dirs & BK_NN_IN ? "iifname eth0 drop" : "",
	         dirs & BK_NN_OUT ? "oifname eth0 drop" : "");
}

void bk_nn_cut_from(struct bk_nn *w, int node, const int *peers, int n)
{
	char set[256] = "", addr[32], in[300], out[300];
	size_t off = 0;

	for (int i = 0; i < n; i++)
		off +=
		    (size_t)snprintf(set + off, sizeof(set) - off, "%s%s", i ? ", " : "",
		                     bk_nn_addr(peers[i], addr, sizeof(addr)));
	snprintf(in, sizeof(in), "ip saddr { %s } drop", set);
	snprintf(out, sizeof(out), "ip daddr { %s } drop", set);
	nn_rules(w, node, in, out);
}

void bk_nn_cut_pair(struct bk_nn *w, int node, int peer)
{
	bk_nn_cut_from(w, node, &peer, 1);
}

void bk_nn_loss(struct bk_nn *w, int node, int pct)
{
	char in[96], out[96];

	snprintf(in, sizeof(in), "iifname eth0 numgen random mod 100 < %d drop", pct);
	snprintf(out, sizeof(out), "oifname eth0 numgen random mod 100 < %d drop", pct);
	nn_rules(w, node, in, out);
}

void bk_nn_heal(struct bk_nn *w, int node)
{
	nn_rules(w, node, "", "");
}

/* An etcd uint64 (a JSON string) as such: member ids use all 64 bits, and
 * bk_etcd_i64 (int64) saturates half of them. */
static uint64_t nn_u64(const cJSON *o, const char *k)
{
	const cJSON *v = o ? cJSON_GetObjectItem(o, k) : NULL;

	return cJSON_IsString(v) ? strtoull(v->valuestring, NULL, 10) : 0;
}

/* Member i's status: its id, its leader's id, its raft term (0s if it did
 * not answer). */
static void nn_status(int i, uint64_t *me, uint64_t *leader, long long *term)
{
	struct bk_etcd_conn conn;
	char url[64], addr[32];
	cJSON *rep;

	*me = *leader = 0;
	if (term)
		*term = 0;
	snprintf(url, sizeof(url), "http://%s:2379", bk_nn_addr(i, addr, sizeof(addr)));
	cr_assert_eq(bk_etcd_conn_init(&conn, url, 2000), 0);
	if (bk_etcd_post(&conn, "/v3/maintenance/status", "{}", true, &rep) == 0) {
		*me = nn_u64(cJSON_GetObjectItem(rep, "header"), "member_id");
		*leader = nn_u64(rep, "leader");
		if (term)
			*term = (long long)nn_u64(rep, "raftTerm");
		cJSON_Delete(rep);
	}
	bk_etcd_conn_free(&conn);
}

int bk_nn_leader(struct bk_nn *w, unsigned skip_mask, long long *term)
{
	for (int i = 0; i < BK_EC_MEMBERS; i++) {
		uint64_t me, leader;
		long long t;

		if (w->ec.pid[i] <= 0 || (skip_mask & (1u << i)))
			continue; /* killed, or not to be asked */
		nn_status(i, &me, &leader, &t);
		if (me && me == leader) {
			if (term)
				*term = t;
			return i;
		}
	}
	return -1;
}

bool bk_nn_move_leader(struct bk_nn *w, int to)
{
	uint64_t target, lid, me, l, end = bk_h_mono_ms() + 20000;

	nn_status(to, &target, &lid, NULL);
	cr_assert_neq(target, 0, "member %d does not answer", to);
	while (bk_h_mono_ms() < end) {
		int from = bk_nn_leader(w, 0, NULL);
		if (from == to)
			return true;
		if (from >= 0) {
			struct bk_etcd_conn conn;
			char url[64], addr[32], body[64];
			cJSON *rep;
			snprintf(url, sizeof(url), "http://%s:2379",
			         bk_nn_addr(from, addr, sizeof(addr)));
			snprintf(body, sizeof(body), "{\"targetID\":\"%llu\"}",
			         (unsigned long long)target);
			cr_assert_eq(bk_etcd_conn_init(&conn, url, 5000), 0);
			if (bk_etcd_post(&conn, "/v3/maintenance/transfer-leadership",
			                 body, false, &rep) == 0)
				cJSON_Delete(rep);
			bk_etcd_conn_free(&conn);
		}
		usleep(200 * 1000);
		nn_status(to, &me, &l, NULL);
		if (me && me == l)
			return true;
	}
	return false;
}
