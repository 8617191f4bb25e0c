/*
 * bk_trust - who is the daemon: the checks both ends make before they
 * believe the other (docs/security.md, "Trust").
 *
 * breakerd refuses to start in a run or state directory that another user
 * owns or could write to (sshd's StrictModes): whoever can write there can
 * move the daemon's sockets aside and answer in its place. The CLI, before it
 * sends anything, checks that the server end belongs to the daemon's uid:
 * SO_PEERCRED on the local unix:// socket, the socket file's and its
 * directories' owners and modes on ipc://.
 */
#ifndef BK_TRUST_H
#define BK_TRUST_H

#include <stdbool.h>
#include <sys/types.h>

struct bk_config;

/* The uids a client accepts as the daemon's. */
struct bk_trust {
	uid_t uids[3];
	int n;
	/* how the set was chosen, for messages: "daemon_user = ...", ... */
	char why[160];
};

/*
 * Directory dir, as breakerd's (run_dir, state_dir, a socket's directory):
 * owned by uid and not writable by group or others; every directory above
 * it (and above where a symlink leads) owned by root or uid, and not
 * writable by group or others unless sticky (/tmp). 0, or -EPERM with err
 * naming the path, its owner and mode; -errno if a component cannot be read.
 */
int bk_trust_dir(const char *dir, uid_t uid, char *err, size_t errlen);

/*
 * The daemon uid(s) a client of cfg's instance accepts: [breaker]
 * daemon_user when set; else the owner of the instance's segment when that
 * is root, our own uid or the service user "breaker"; else (no segment) any
 * of those. -EPERM with err when the segment belongs to anyone else.
 */
int bk_trust_expect(const struct bk_config *cfg, struct bk_trust *t, char *err,
                    size_t errlen);

bool bk_trust_has(const struct bk_trust *t, uid_t uid);

/*
 * Before anything is sent to url: unix:// checks the connected fd's peer
 * (SO_PEERCRED), ipc:// the socket file and its directories (fd -1).
 * Other schemes pass (tcp:// is loopback trip-only; tls+tcp:// checks
 * certificates). 0, or -EPERM with err saying why.
 */
int bk_trust_server(const struct bk_trust *t, const char *url, int fd, char *err,
                    size_t errlen);

#endif
