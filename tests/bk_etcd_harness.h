/*
 * bk_etcd_harness - a real 3-member etcd cluster for a test: loopback only,
 * random ports, its own data directories under a temp dir, started and
 * stopped by the test (members with --pre-vote=true: etcd 3.4 defaults it
 * off, and then every heal deposes the leader). Needs the `etcd` binary
 * (Debian etcd-server): a test fails, never skips, without it (CI installs
 * it; tools/dev.sh deps).
 */
#ifndef BK_ETCD_HARNESS_H
#define BK_ETCD_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

#define BK_EC_MEMBERS 3

struct bk_ec {
	char dir[128];
	char tag[32];
	int client_port[BK_EC_MEMBERS], peer_port[BK_EC_MEMBERS];
	pid_t pid[BK_EC_MEMBERS];
	char endpoints[256]; /* "http://127.0.0.1:P0,http://...:P1,..." */
	char initial[512];   /* --initial-cluster */
	char tls_dir[64]; /* bk_ec_start_tls: ca.pem, server.pem/.key, client.pem/.key */
};

/* Start the three members and wait (generously) until a linearizable read
 * succeeds. */
void bk_ec_start(struct bk_ec *c, const char *tag);
/* The same with client TLS: https://localhost client URLs, members with
 * --client-cert-auth trusting tls_dir/ca.pem and serving tls_dir/server.pem;
 * the harness's own reads present tls_dir/client.pem. */
void bk_ec_start_tls(struct bk_ec *c, const char *tag, const char *tls_dir);
/* Fork and exec etcd member i of c (its data dir and log under c->dir) with
 * these URLs, inside the network namespace netns_fd (-1: this one); its pid.
 * Killed with the test (PR_SET_PDEATHSIG). */
pid_t bk_ec_spawn(struct bk_ec *c, int i, bool fresh, const char *listen_client,
                  const char *advertise_client, const char *peer, int netns_fd);
/* (Re)start member i alone, into its existing data dir. */
void bk_ec_member_start(struct bk_ec *c, int i, bool fresh);
/* kill(member i, sig). */
void bk_ec_signal(struct bk_ec *c, int i, int sig);
/* SIGKILL member i and reap it. */
void bk_ec_kill9(struct bk_ec *c, int i);
/* A linearizable read succeeds through any member within ms. */
bool bk_ec_healthy(struct bk_ec *c, unsigned ms);
/* Stop every member, remove the temp dir. */
void bk_ec_stop(struct bk_ec *c);
/* "http://127.0.0.1:P" of member i, into buf. */
const char *bk_ec_url(const struct bk_ec *c, int i, char *buf, size_t len);
/* The [cluster] section for a breakerd on this cluster ("host" as given). */
void bk_ec_ini(const struct bk_ec *c, const char *cluster, const char *host,
               const char *extra, char *buf, size_t len);

/* etcd's JSON gateway as a plain (no auth) client: the call must succeed. */
void bk_ec_call(struct bk_ec *ec, const char *path, const char *body);
/* User (password "<user>-pw") granted role. */
void bk_ec_user(struct bk_ec *ec, const char *user, const char *role);
/* Grant role perm ("READ", "WRITE", "READWRITE") on every key under prefix. */
void bk_ec_grant(struct bk_ec *ec, const char *role, const char *perm,
                 const char *prefix);
/* Add role, and grant it perm on prefix when perm is not NULL. */
void bk_ec_role(struct bk_ec *ec, const char *role, const char *perm, const char *prefix);

#endif
