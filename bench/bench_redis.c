/*
 * bench_redis - Debian's redis-server on a loopback port of our own, and a
 * minimal RESP client over a plain TCP socket (no hiredis): the peer the
 * engine check and the trip path are compared with.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* redis-server from $REDIS_SERVER or PATH, resolved before fork. */
static int find_redis(char *buf, size_t len)
{
	const char *env = getenv("REDIS_SERVER"), *path = getenv("PATH");
	char dir[512];

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return access(buf, X_OK) == 0 ? 0 : -ENOENT;
	}
	if (!path)
		path = "/usr/bin:/bin:/usr/sbin:/sbin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(dir, sizeof(dir), "%.*s", (int)n, path);
		snprintf(buf, len, "%s/redis-server", dir);
		if (access(buf, X_OK) == 0)
			return 0;
		path += n + (path[n] == ':');
	}
	return -ENOENT;
}

static int ping(struct bench_redis *r)
{
	static const char cmd[] = "*1\r\n$4\r\nPING\r\n";
	struct resp c;
	char val[16];
	int rv;

	if ((rv = resp_connect(&c, r->port)) < 0)
		return rv;
	rv = resp_call(&c, cmd, sizeof(cmd) - 1, val, sizeof(val));
	resp_close(&c);
	return rv == 0 && strcmp(val, "PONG") == 0 ? 0 : -EPROTO;
}

/* Someone else's server on the port would answer our PING: skip taken ports. */
static bool port_free(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static int start_on(struct bench_redis *r, const char *bin, int cpu, bool aof)
{
	char port[16], log[224];
	/* clang-format off */
	char *argv[] = {(char *)bin,
			"--bind", "127.0.0.1",
			"--port", port,
			"--save", "",
			"--daemonize", "no",
			"--protected-mode", "yes",
			"--dir", r->dir,
			"--appendonly", aof ? "yes" : "no",
			"--appendfsync", "always",
			NULL};
	/* clang-format on */
	int st;

	snprintf(port, sizeof(port), "%d", r->port);
	snprintf(log, sizeof(log), "%s/redis.log", r->dir);
	r->pid = bench_spawn(argv, cpu, log);
	if (r->pid < 0)
		return (int)r->pid;
	for (int i = 0; i < 500; i++) {
		if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
			r->pid = 0;
			return -EADDRINUSE; /* most likely; the log says */
		}
		if (ping(r) == 0)
			return 0;
		bench_sleep_us(10000);
	}
	bench_stop_child(r->pid);
	r->pid = 0;
	return -ETIMEDOUT;
}

int bench_redis_start(struct bench_redis *r, const char *dir, int cpu, bool aof_always)
{
	char bin[512];
	int rv;

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "%s", dir);
	if ((rv = find_redis(bin, sizeof(bin))) < 0) {
		fprintf(stderr, "bench: redis-server not found: Redis peers skipped\n");
		return rv;
	}
	rv = -EADDRINUSE;
	for (int i = 0; i < 8; i++) {
		r->port = 16379 + (int)((getpid() + 131 * i) % 1000);
		if (!port_free(r->port))
			continue;
		rv = start_on(r, bin, cpu, aof_always);
		if (rv == 0)
			return 0;
	}
	fprintf(stderr, "bench: redis-server did not start (%s); see %s/redis.log\n",
	        strerror(-rv), r->dir);
	return rv;
}

void bench_redis_stop(struct bench_redis *r)
{
	if (r->pid > 0)
		bench_stop_child(r->pid);
	r->pid = 0;
}

/* ---- RESP ---------------------------------------------------------------- */

size_t resp_encode(char *out, size_t cap, int argc, const char *const argv[])
{
	size_t n = (size_t)snprintf(out, cap, "*%d\r\n", argc);

	for (int i = 0; i < argc && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "$%zu\r\n%s\r\n", strlen(argv[i]),
		                      argv[i]);
	return n < cap ? n : 0;
}

int resp_connect(struct resp *c, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	int one = 1;

	c->len = 0;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(c->fd);
		c->fd = -1;
		return err;
	}
	return 0;
}

void resp_close(struct resp *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Bytes of one whole reply at the front of the buffer, 0 if incomplete. */
static size_t reply_len(const struct resp *c, const char **val, size_t *vlen)
{
	const char *eol = memmem(c->buf, c->len, "\r\n", 2);
	size_t head;
	long n;

	if (!eol)
		return 0;
	head = (size_t)(eol - c->buf) + 2;
	*val = c->buf + 1;
	*vlen = head - 3;
	if (c->buf[0] != '$')
		return head;
	n = strtol(c->buf + 1, NULL, 10);
	if (n < 0) {
		*vlen = 0; /* nil */
		return head;
	}
	if (c->len < head + (size_t)n + 2)
		return 0;
	*val = c->buf + head;
	*vlen = (size_t)n;
	return head + (size_t)n + 2;
}

int resp_call(struct resp *c, const char *cmd, size_t len, char *val, size_t vlen)
{
	const char *v = NULL;
	size_t used, n = 0;
	ssize_t r;

	if (write(c->fd, cmd, len) != (ssize_t)len)
		return -EIO;
	while ((used = reply_len(c, &v, &n)) == 0) {
		if (c->len == sizeof(c->buf))
			return -EPROTO;
		r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (r <= 0)
			return r < 0 ? -errno : -ECONNRESET;
		c->len += (size_t)r;
	}
	if (vlen) {
		n = n < vlen - 1 ? n : vlen - 1;
		memcpy(val, v, n);
		val[n] = '\0';
	}
	r = c->buf[0] == '-' ? -EPROTO : 0;
	memmove(c->buf, c->buf + used, c->len - used);
	c->len -= used;
	return (int)r;
}
