#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bk_config.h"
#include "bk_trust.h"

bool bk_trust_has(const struct bk_trust *t, uid_t uid)
{
	for (int i = 0; i < t->n; i++)
		if (t->uids[i] == uid)
			return true;
	return false;
}

static void uid_list(const struct bk_trust *t, char *buf, size_t len)
{
	int off = snprintf(buf, len, "uid %u", (unsigned)t->uids[0]);

	for (int i = 1; i < t->n && off > 0 && (size_t)off < len; i++)
		off += snprintf(buf + off, len - (size_t)off, " or %u",
		                (unsigned)t->uids[i]);
}

/*
 * One component of a path. The leaf must be one of t's uids and writable by
 * no one else. Above it, root may own a directory too, and a sticky one
 * (/tmp) may be world-writable: nobody can rename or replace what another
 * user created in it.
 */
static int check_component(const struct bk_trust *t, const char *path,
                           const struct stat *st, const char *leaf, char *err,
                           size_t errlen)
{
	mode_t m = st->st_mode & 07777;
	char who[64];

	uid_list(t, who, sizeof(who));
	if (!leaf) {
		if ((m & 022) == 0 && bk_trust_has(t, st->st_uid))
			return 0;
		snprintf(err, errlen,
		         "%s is owned by uid %u with mode %04o: it must be owned by %s, "
		         "and not writable by group or others",
		         path, (unsigned)st->st_uid, (unsigned)m, who);
		return -EPERM;
	}
	if (S_ISLNK(st->st_mode)) {
		/* where it leads is walked separately; the link must be ours */
		if (st->st_uid == 0 || bk_trust_has(t, st->st_uid))
			return 0;
	} else if ((st->st_uid == 0 || bk_trust_has(t, st->st_uid)) &&
	           ((m & 022) == 0 || (m & S_ISVTX))) {
		return 0;
	}
	snprintf(err, errlen,
	         "%s (above %s) is owned by uid %u with mode %04o: a directory "
	         "above it must be owned by root or %s, and not writable by group "
	         "or others unless sticky (as /tmp)",
	         path, leaf, (unsigned)st->st_uid, (unsigned)m, who);
	return -EPERM;
}

/* Every component of the absolute path dir, as written (symlinks not followed). */
static int walk(const struct bk_trust *t, const char *dir, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	struct stat st;
	size_t n = strlen(dir);
	int rv;

	if (n == 0 || n >= sizeof(buf) || dir[0] != '/')
		return -EINVAL;
	memcpy(buf, dir, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	for (char *p = buf + 1;; p++) {
		bool last = *p == '\0';

		if (!last && *p != '/')
			continue;
		*p = '\0';
		if (lstat(buf, &st) < 0) {
			rv = -errno;
			snprintf(err, errlen, "%s: %s", buf, strerror(errno));
			return rv;
		}
		/* a symlink, even the last one, is its owner's to re-point */
		if ((!last || S_ISLNK(st.st_mode)) &&
		    (rv = check_component(t, buf, &st, dir, err, errlen)) < 0)
			return rv;
		if (last) {
			if (stat(buf, &st) < 0) {
				rv = -errno;
				snprintf(err, errlen, "%s: %s", buf, strerror(errno));
				return rv;
			}
			if (!S_ISDIR(st.st_mode)) {
				snprintf(err, errlen, "%s is not a directory", buf);
				return -ENOTDIR;
			}
			return check_component(t, buf, &st, NULL, err, errlen);
		}
		*p = '/';
	}
}

static int trust_dir(const struct bk_trust *t, const char *dir, char *err, size_t errlen)
{
	char real[PATH_MAX];
	int rv;

	if ((rv = walk(t, dir, err, errlen)) < 0)
		return rv;
	/* and where its symlinks lead */
	if (!realpath(dir, real)) {
		rv = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return rv;
	}
	return strcmp(real, dir) ? walk(t, real, err, errlen) : 0;
}

int bk_trust_dir(const char *dir, uid_t uid, char *err, size_t errlen)
{
	struct bk_trust t = {.uids = {uid}, .n = 1};

	return trust_dir(&t, dir, err, errlen);
}

/* The uid of the service user the unit file names, or -1 if there is none. */
static uid_t service_uid(void)
{
	char buf[4096];
	struct passwd pw, *res = NULL;

	if (getpwnam_r(BK_DAEMON_USER_DEFAULT, &pw, buf, sizeof(buf), &res) || !res)
		return (uid_t)-1;
	return res->pw_uid;
}

int bk_trust_expect(const struct bk_config *cfg, struct bk_trust *t, char *err,
                    size_t errlen)
{
	char name[BK_INSTANCE_MAX + 16];
	uid_t me = geteuid(), service = service_uid();
	struct stat st;
	int fd;

	memset(t, 0, sizeof(*t));
	if (cfg->daemon_uid_set) {
		t->uids[t->n++] = cfg->daemon_uid;
		snprintf(t->why, sizeof(t->why), "[breaker] daemon_user");
		return 0;
	}
	if (bk_shm_name(name, sizeof(name), cfg->instance) == 0 &&
	    (fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0)) >= 0) {
		int rv = fstat(fd, &st);

		close(fd);
		if (rv == 0 &&
		    (st.st_uid == 0 || st.st_uid == me || st.st_uid == service)) {
			t->uids[t->n++] = st.st_uid;
			snprintf(t->why, sizeof(t->why), "the owner of /dev/shm%s", name);
			return 0;
		}
		if (rv == 0) {
			snprintf(err, errlen,
			         "/dev/shm%s is owned by uid %u, which is neither root, "
			         "you (uid %u) nor user '%s': not trusted as breakerd's "
			         "(if breakerd runs as that user, say so with [breaker] "
			         "daemon_user)",
			         name, (unsigned)st.st_uid, (unsigned)me,
			         BK_DAEMON_USER_DEFAULT);
			return -EPERM;
		}
	}
	t->uids[t->n++] = 0;
	if (me != 0)
		t->uids[t->n++] = me;
	if (service != (uid_t)-1 && service != 0 && service != me)
		t->uids[t->n++] = service;
	snprintf(t->why, sizeof(t->why), "root, you or user '%s': no segment to ask",
	         BK_DAEMON_USER_DEFAULT);
	return 0;
}

static int trust_peer(const struct bk_trust *t, const char *url, int fd, char *err,
                      size_t errlen)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char who[64];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		snprintf(err, errlen, "%s: cannot read the server's credentials: %s", url,
		         strerror(errno));
		return -EPERM;
	}
	if (bk_trust_has(t, cred.uid))
		return 0;
	uid_list(t, who, sizeof(who));
	snprintf(err, errlen,
	         "the server at %s runs as uid %u (pid %d), not as breakerd's %s "
	         "(%s): someone else may be answering in breakerd's place",
	         url, (unsigned)cred.uid, (int)cred.pid, who, t->why);
	return -EPERM;
}

/* An ipc:// socket file: its directory first (then nobody else can swap it). */
static int trust_ipc(const struct bk_trust *t, const char *url, char *err, size_t errlen)
{
	const char *path = url + 6;
	char dir[PATH_MAX], who[64];
	const char *slash = strrchr(path, '/');
	struct stat st;
	size_t dl;
	int rv;

	if (!slash || (size_t)(slash - path) >= sizeof(dir) || path[0] != '/')
		return 0; /* not a path we can judge: nng refuses it */
	dl = slash == path ? 1 : (size_t)(slash - path);
	memcpy(dir, path, dl);
	dir[dl] = '\0';
	if (stat(dir, &st) < 0 && errno == ENOENT)
		return 0; /* no daemon: the dial fails, nothing is sent */
	if ((rv = trust_dir(t, dir, err, errlen)) < 0)
		return rv;
	if (stat(path, &st) < 0)
		return 0;
	if (bk_trust_has(t, st.st_uid))
		return 0;
	uid_list(t, who, sizeof(who));
	snprintf(err, errlen,
	         "%s is owned by uid %u, not by breakerd's %s (%s): someone else may "
	         "be answering in breakerd's place",
	         path, (unsigned)st.st_uid, who, t->why);
	return -EPERM;
}

int bk_trust_server(const struct bk_trust *t, const char *url, int fd, char *err,
                    size_t errlen)
{
	int rv = 0;

	if (strncmp(url, "unix://", 7) == 0)
		rv = trust_peer(t, url, fd, err, errlen);
	else if (strncmp(url, "ipc://", 6) == 0)
		rv = trust_ipc(t, url, err, errlen);
	/* a component that could not be read is no proof either */
	return rv < 0 ? -EPERM : 0;
}
