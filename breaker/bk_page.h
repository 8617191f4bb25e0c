/*
 * bk_page - the status page at / on the metrics listener (docs/status-page.md).
 *
 * Read-only: the page is rendered on nng's HTTP threads from a Status reply
 * that breakerd's loop answers over its own local socket, like any client's
 * (so the HTTP side never touches struct bk_daemon). What Status lacked for
 * the page (incidents, the latest audited events) comes with
 * StatusRequest.page. Every text from the log is HTML-escaped.
 */
#ifndef BK_PAGE_H
#define BK_PAGE_H

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "breaker.pb-c.h"
#include "breaker_client.h"

#define BK_PAGE_RECENT     20  /* events kept for the page */
#define BK_PAGE_REASON_MAX 200 /* of each event's reason, bytes */
#define BK_PAGE_REFRESH_S  2   /* the page reloads itself this often */

struct bk_page_event {
	uint64_t seq, wall_ns;
	uint32_t uid;
	uint8_t kind, from_mode, to_mode, reason_code;
	bool has_modes, forced;
	char scope[BK_NAME_MAX]; /* "" global */
	char reason[BK_PAGE_REASON_MAX];
};

/* The loop's ring of the latest published events. */
struct bk_page_recent {
	struct bk_page_event ev[BK_PAGE_RECENT];
	uint32_t n; /* ever noted */
};

struct bk_daemon;

/* An event was published (bk_pending.c): keep it for the page. Loop thread. */
void bk_page_note(struct bk_page_recent *r, const Breaker__Event *ev);

/* A Status reply for the page: add incidents and recent events (loop thread);
 * bk_page_status_free releases what it added. */
void bk_page_status(struct bk_daemon *d, Breaker__Reply *rep);
void bk_page_status_free(Breaker__Reply *rep);

/* Where the page asks for Status (the local socket, else the command
 * socket), before bk_metrics_http_start. */
void bk_page_setup(const char *rpc_url);

/* Add the handler for / to the metrics server. 0 or an nng error. */
int bk_page_http_add(nng_http_server *s);

#endif
