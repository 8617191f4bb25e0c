/*
 * bk_fake_ipc - a hostile stand-in for breakerd's ipc:// command socket, for
 * test_trust.c (run as another user). nng is not fork-safe, so the test
 * execs this rather than calling nng in a forked child.
 *
 * usage: bk_fake_ipc URL READY_FD REPORT_FD
 * Listens on URL (nng REP), writes 'r' to READY_FD once listening, then 'R'
 * to REPORT_FD for every request it receives (and echoes it back). Exits
 * after 20 s without a request.
 */
#include <stdlib.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

int main(int argc, char **argv)
{
	nng_socket s;
	nng_msg *m;

	if (argc != 4)
		return 2;
	if (nng_rep0_open(&s) || nng_listen(s, argv[1], NULL, 0))
		return 3;
	if (write(atoi(argv[2]), "r", 1) != 1)
		return 4;
	nng_setopt_ms(s, NNG_OPT_RECVTIMEO, 20000);
	while (nng_recvmsg(s, &m, 0) == 0) {
		if (write(atoi(argv[3]), "R", 1) != 1)
			return 5;
		nng_sendmsg(s, m, 0);
	}
	return 0;
}
