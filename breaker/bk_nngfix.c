/*
 * bk_nngfix - a workaround for a bug in nng 1.5.2 (Debian bookworm's) that
 * wedges every nng listener of breakerd: ipc://, tcp:// and tls+tcp://.
 *
 * When a peer hangs up before breakerd's side of the SP handshake is written,
 * sendmsg() fails with EPIPE, which nng maps to NNG_ECLOSED. The transport
 * passes that error up to the socket's listener, which reads NNG_ECLOSED as
 * "this listener was closed" and never asks for another connection
 * (core/listener.c, listener_accept_cb). The transport keeps accepting and
 * handshaking below it, but no new connection is ever given to the REP
 * socket: requests are never read, every new client times out, and once such
 * an orphaned client hangs up, nng's poller spins on its EPOLLHUP (its
 * callback masks HUP out; nng issue #2100) at ~100% of a core. Seen after a
 * SIGSTOP/SIGCONT with requests timing out meanwhile, and caused on demand by
 * any user who may connect: connect() and close() in a loop.
 *
 * Upstream fixed it in nng 1.6.0 (issue #1518, commit 9248ed74: the
 * handshake maps NNG_ECLOSED to NNG_ECONNSHUT). Until the distribution's nng
 * has that fix, breakerd defines sendmsg() itself: the dynamic linker binds
 * libnng's calls to this one, and EPIPE ("the peer has gone") is reported as
 * ECONNRESET, which means the same to every caller, and which nng's listener
 * treats as the remote condition it is: it accepts the next connection at
 * once. Nothing else changes: the call goes on to libc's sendmsg.
 * breakerd's own code does not call sendmsg(); the CLI and clients are not
 * linked with this file. tests/test_transport.c pins the behaviour.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);

/*
 * The next sendmsg in the lookup order: libc's, or a sanitizer's interceptor
 * in an asan/tsan build (they keep seeing the call). Without it, the system
 * call itself.
 */
static ssize_t next_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	static _Atomic(sendmsg_fn) next;
	sendmsg_fn f = atomic_load_explicit(&next, memory_order_acquire);

	if (!f) {
		/* object to function pointer: ISO C leaves it undefined, POSIX
		 * (dlsym) requires it to work */
		f = __extension__(sendmsg_fn) dlsym(RTLD_NEXT, "sendmsg");
		if (!f)
			return (ssize_t)syscall(SYS_sendmsg, fd, msg, flags);
		atomic_store_explicit(&next, f, memory_order_release);
	}
	return f(fd, msg, flags);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ssize_t n = next_sendmsg(fd, msg, flags);

	if (n < 0 && errno == EPIPE)
		errno = ECONNRESET;
	return n;
}
