/*
 * bk_loop - the daemon's single thread: one io_uring drives the tick timer,
 * the command socket's readiness (nng's RECVFD), signals (signalfd) and the
 * audit log's write + fsync. Nothing on the tick path allocates or locks.
 */
#ifndef BK_LOOP_H
#define BK_LOOP_H

#include <signal.h>

#include "bk_daemon.h"

/* Block the loop's signals; call before any thread (nng's) is started. */
void bk_loop_signals(sigset_t *mask);

/* Run until SIGTERM/SIGINT. log_path (may be NULL) is reopened on SIGHUP. */
int bk_loop_run(struct bk_daemon *d, const char *log_path);

#endif
