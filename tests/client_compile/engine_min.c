/*
 * The smallest engine docs/clients.md describes, compiled by
 * tests/client_compile.sh exactly as the page says: gcc -std=c11 and
 * g++ -std=c++17, -Wall -Wextra -Werror, no feature macros of our own.
 * With -DSYSTEM_HEADERS_FIRST a libc header comes before breaker_client.h
 * (then the header cannot choose feature macros any more, and must still
 * compile).
 */
#ifdef SYSTEM_HEADERS_FIRST
#include <stdio.h>
#include <string.h>
#endif
#include "breaker_client.h"

int main(int argc, char **argv)
{
	const char *instance = argc > 1 ? argv[1] : "default";
	struct bk_client c;
	struct bk_tel_client t;
	struct bk_reason r;
	struct timespec ts = {0, 1000000};
	int slot, rv;

	if ((rv = bk_client_attach(&c, instance)) < 0 &&
	    (rv = bk_client_attach_as(&c, instance, 0)) < 0) {
		fprintf(stderr, "attach: %s\n", strerror(-rv));
		return 1;
	}
	slot = bk_client_resolve(&c, argc > 2 ? argv[2] : "momo-eu-1");
	if (bk_check_live(&c, slot, bk_now_mono_ns(), 0) == BK_HALTED) {
		bk_read_reason(&c, slot, &r);
		printf("HALTED (reason %u)\n", r.reason_code);
	}
	(void)bk_wait_change(&c, bk_change_seq(&c), &ts);
	if (bk_tel_attach(&t, instance) == 0) {
		bk_report_heartbeat(&t, slot, bk_now_mono_ns());
		bk_report_order(&t, slot, 1);
		bk_report_fill(&t, slot, -100.0, 0.1, 1000.0, 1.0);
		bk_tel_detach(&t);
	}
	printf("%s\n", bk_mode_str(bk_check(&c, slot)));
	bk_client_detach(&c);
	return 0;
}
