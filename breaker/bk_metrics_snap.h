/*
 * bk_metrics_snap - the published metrics snapshot: all that nng's HTTP
 * threads share with the loop thread. The loop renders into the back buffer
 * (bk_metrics.c) and swaps it in; the HTTP side (bk_metrics_http.c) copies
 * the front one. This header knows nothing of struct bk_daemon, so the
 * serving code cannot reach the loop's state: the compiler keeps the thread
 * boundary. The protocol is described in bk_metrics.h.
 */
#ifndef BK_METRICS_SNAP_H
#define BK_METRICS_SNAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "breaker_client.h" /* BK_INSTANCE_MAX */

#define BK_HEALTH_TEXT 512

enum bk_health { BK_HEALTH_OK, BK_HEALTH_DEGRADED, BK_HEALTH_FAILING };

struct bk_metrics_buf {
	_Atomic uint64_t seq; /* odd while the loop writes this buffer */
	_Atomic size_t len;
	_Atomic uint64_t rendered_mono_ns;
	_Atomic unsigned readers;         /* HTTP threads copying this buffer now */
	int health;                       /* enum bk_health */
	char health_text[BK_HEALTH_TEXT]; /* "ok", "degraded: ...", "failing: ..." */
	char *text;
};

struct bk_metrics_snap {
	struct bk_metrics_buf buf[2];
	_Atomic unsigned cur;          /* index of the published buffer */
	_Atomic int published;         /* a first rendering exists */
	_Atomic uint64_t last_tick_ns; /* the loop's heartbeat, for the live lines */
	_Atomic int stopping;
	_Atomic int serving; /* handlers running now */
	size_t cap;          /* bytes per buffer; set before serving starts */
	uint64_t bound_ns;   /* loop considered stalled past this */
	char instance[BK_INSTANCE_MAX];
	void *http; /* nng_http_server *, NULL when off */
};

/*
 * The published exposition and health, as the HTTP handler gets them: copies
 * at most len - 1 bytes of text into buf (NUL-terminated; buf NULL: the
 * health only). Returns the text's length, -ENOBUFS if it does not fit, or
 * -EAGAIN (no rendering yet, or the writer kept overtaking). Any thread.
 */
long bk_metrics_snap_read(struct bk_metrics_snap *s, char *buf, size_t len, int *health,
                          char *health_text, size_t health_len);

/*
 * Serve /metrics and /healthz at url (http://host:port) from s. A listener
 * that cannot start is logged and left off: the kill switch runs without its
 * metrics, and monitoring sees it as down.
 */
void bk_metrics_http_start(struct bk_metrics_snap *s, const char *url);

/* Refuse new requests, wait for handlers in progress, stop the server. */
void bk_metrics_http_stop(struct bk_metrics_snap *s);

#endif
