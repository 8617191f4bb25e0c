/*
 * bk_metrics_http - /metrics and /healthz on nng's HTTP threads. Sees only
 * the published snapshot (bk_metrics_snap.h), never struct bk_daemon: copy
 * the front buffer (see the protocol in bk_metrics.h), add the live lines
 * that must not come from a snapshot (is the loop alive?), answer.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/util/platform.h>

#include "bk_http.h"
#include "bk_log.h"
#include "bk_metrics_snap.h"
#include "bk_page.h"
#include "bk_time.h"

#define LIVE_MAX_BYTES 2048

/* ---- reading (any thread) ------------------------------------------------------------
 */

long bk_metrics_snap_read(struct bk_metrics_snap *m, char *buf, size_t len, int *health,
                          char *health_text, size_t health_len)
{
	long rv = -EAGAIN;

	for (int tries = 0; tries < 64 && rv == -EAGAIN; tries++) {
		unsigned i = atomic_load(&m->cur);
		struct bk_metrics_buf *b = &m->buf[i];
		uint64_t s;
		size_t n;

		if (!atomic_load_explicit(&m->published, memory_order_acquire))
			return -EAGAIN;
		/* counted first, then still published: the loop leaves it alone */
		atomic_fetch_add(&b->readers, 1);
		if (atomic_load(&m->cur) != i) {
			atomic_fetch_sub(&b->readers, 1);
			continue; /* swapped meanwhile: read the new one */
		}
		s = atomic_load_explicit(&b->seq, memory_order_acquire);
		n = atomic_load_explicit(&b->len, memory_order_relaxed);
		if (s & 1) {
			rv = -EAGAIN; /* cannot happen while counted; kept as a check */
		} else if (buf && n >= len) {
			rv = -ENOBUFS;
		} else {
			if (buf) {
				memcpy(buf, b->text, n);
				buf[n] = '\0';
			}
			*health = b->health;
			snprintf(health_text, health_len, "%.*s", BK_HEALTH_TEXT - 1,
			         b->health_text);
			rv = (long)n;
		}
		/* release: the copy happens before the loop's next rendering here */
		atomic_fetch_sub(&b->readers, 1);
	}
	return rv;
}

/* ---- serving (nng's HTTP threads) ----------------------------------------------------
 */

struct live {
	bool stalled;
	double age_s, snap_age_s, wall_s;
};

static void live_state(struct bk_metrics_snap *m, struct live *l)
{
	uint64_t mono = bk_now_mono_ns(), wall = bk_now_wall_ns();
	uint64_t hb = atomic_load_explicit(&m->last_tick_ns, memory_order_relaxed);
	uint64_t age = mono > hb ? mono - hb : 0;
	const struct bk_metrics_buf *b =
	    &m->buf[atomic_load_explicit(&m->cur, memory_order_acquire)];
	uint64_t r = atomic_load_explicit(&b->rendered_mono_ns, memory_order_relaxed);

	l->stalled = age > m->bound_ns;
	l->age_s = (double)age / 1e9;
	l->snap_age_s = mono > r ? (double)(mono - r) / 1e9 : 0;
	l->wall_s = (double)(wall - (age < wall ? age : 0)) / 1e9;
}

/* A stalled loop fails the health whatever the last rendering said. */
static int live_health(const struct live *l, int health, const char *text, char *out,
                       size_t len, uint64_t bound_ns)
{
	if (!l->stalled) {
		snprintf(out, len, "%s", text);
		return health;
	}
	snprintf(out, len,
	         "failing: event loop stalled: last tick %.3f s ago (engines fail "
	         "closed past %.3f s)%s%s",
	         l->age_s, (double)bound_ns / 1e9,
	         health == BK_HEALTH_OK ? "" : "; before that: ",
	         health == BK_HEALTH_OK ? "" : text);
	return BK_HEALTH_FAILING;
}

static size_t live_lines(char *p, size_t len, const struct live *l, int health)
{
	int n = snprintf(
	    p, len,
	    "# HELP breaker_up 1 while breakerd's loop ticks within the engines' "
	    "heartbeat "
	    "bound, 0 when it stalled.\n# TYPE breaker_up gauge\nbreaker_up %d\n"
	    "# HELP breaker_last_tick_age_seconds Time since breakerd's last tick.\n"
	    "# TYPE breaker_last_tick_age_seconds gauge\nbreaker_last_tick_age_seconds "
	    "%.9f\n"
	    "# HELP breaker_heartbeat_timestamp_seconds Unix time of breakerd's last "
	    "tick.\n"
	    "# TYPE breaker_heartbeat_timestamp_seconds gauge\n"
	    "breaker_heartbeat_timestamp_seconds %.6f\n"
	    "# HELP breaker_metrics_snapshot_age_seconds Age of the rendering served "
	    "here.\n"
	    "# TYPE breaker_metrics_snapshot_age_seconds gauge\n"
	    "breaker_metrics_snapshot_age_seconds %.6f\n"
	    "# HELP breaker_health_status /healthz as a number: 0 ok, 1 degraded, 2 "
	    "failing.\n"
	    "# TYPE breaker_health_status gauge\nbreaker_health_status %d\n",
	    l->stalled ? 0 : 1, l->age_s, l->wall_s, l->snap_age_s, health);

	return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

/* several instances on one host: `breaker health` checks it found its own */
static void respond(nng_aio *aio, const struct bk_metrics_snap *m, uint16_t code,
                    const char *type, const char *body, size_t len)
{
	bk_http_respond(aio, code, type, "X-Breaker-Instance", m->instance, body, len);
}

/* Copy the published exposition into a new buffer with room for the live lines. */
static char *copy_exposition(struct bk_metrics_snap *m, size_t *len, int *health,
                             char *htext)
{
	size_t want = atomic_load_explicit(&m->buf[atomic_load(&m->cur)].len,
	                                   memory_order_relaxed) +
	              65536;
	char *p;
	long n;

	for (int i = 0; i < 2; i++, want = m->cap + 1) {
		if (!(p = malloc(want + LIVE_MAX_BYTES)))
			return NULL;
		n = bk_metrics_snap_read(m, p, want, health, htext, BK_HEALTH_TEXT);
		if (n >= 0) {
			*len = (size_t)n;
			return p;
		}
		free(p);
		if (n != -ENOBUFS)
			return NULL;
	}
	return NULL;
}

static void serve(nng_aio *aio, bool metrics)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	struct bk_metrics_snap *m = nng_http_handler_get_data(h);
	char htext[BK_HEALTH_TEXT], final[BK_HEALTH_TEXT + 160], *body = NULL;
	int hv = 0;
	size_t len = 0;
	struct live l;

	atomic_fetch_add(&m->serving, 1);
	if (atomic_load(&m->stopping)) {
		atomic_fetch_sub(&m->serving, 1);
		respond(aio, m, 503, "text/plain; charset=utf-8",
		        "failing: breakerd is stopping\n", 30);
		return;
	}
	if (metrics)
		body = copy_exposition(m, &len, &hv, htext);
	else if (bk_metrics_snap_read(m, NULL, 0, &hv, htext, sizeof(htext)) < 0)
		hv = -1;
	live_state(m, &l);
	atomic_fetch_sub(&m->serving, 1);
	if (metrics && !body) {
		respond(aio, m, 503, "text/plain; charset=utf-8",
		        "metrics not available\n", 22);
		return;
	}
	if (metrics) {
		len += live_lines(
		    body + len, LIVE_MAX_BYTES, &l,
		    live_health(&l, hv, htext, final, sizeof(final), m->bound_ns));
		respond(aio, m, 200, "text/plain; version=0.0.4; charset=utf-8", body,
		        len);
		free(body);
		return;
	}
	if (hv < 0)
		snprintf(htext, sizeof(htext), "failing: no health rendered yet");
	hv = live_health(&l, hv < 0 ? BK_HEALTH_FAILING : hv, htext, final, sizeof(final),
	                 m->bound_ns);
	len = strlen(final);
	if (len + 1 < sizeof(final))
		final[len++] = '\n';
	respond(aio, m, hv == BK_HEALTH_FAILING ? 503 : 200, "text/plain; charset=utf-8",
	        final, len);
}

static void on_metrics(nng_aio *aio)
{
	serve(aio, true);
}

static void on_healthz(nng_aio *aio)
{
	serve(aio, false);
}

/* ---- start and stop --------------------------------------------------------------- */

static int add_handler(nng_http_server *s, const char *path, void (*cb)(nng_aio *),
                       struct bk_metrics_snap *m)
{
	nng_http_handler *h;
	int rv;

	if ((rv = nng_http_handler_alloc(&h, path, cb)) != 0)
		return rv;
	if ((rv = nng_http_handler_set_data(h, m, NULL)) != 0 ||
	    (rv = nng_http_handler_collect_body(h, true, 0)) != 0 ||
	    (rv = nng_http_server_add_handler(s, h)) != 0) {
		nng_http_handler_free(h);
		return rv;
	}
	return 0;
}

void bk_metrics_http_start(struct bk_metrics_snap *m, const char *url)
{
	nng_http_server *s = NULL;
	nng_url *u = NULL;
	int rv;

	if ((rv = nng_url_parse(&u, url)) != 0 || (rv = nng_http_server_hold(&s, u)) != 0)
		goto fail;
	if ((rv = add_handler(s, "/metrics", on_metrics, m)) != 0 ||
	    (rv = add_handler(s, "/healthz", on_healthz, m)) != 0 ||
	    (rv = bk_page_http_add(s)) != 0 || /* the status page at / */
	    (rv = nng_http_server_start(s)) != 0)
		goto fail;
	nng_url_free(u);
	m->http = s;
	bk_info("metrics at %s/metrics, health at %s/healthz", url, url);
	return;
fail:
	bk_err(
	    "metrics: cannot serve %s: %s; /metrics and /healthz are OFF (breakerd runs "
	    "on; monitoring will see it as down)",
	    url, nng_strerror(rv));
	if (s)
		nng_http_server_release(s);
	if (u)
		nng_url_free(u);
}

void bk_metrics_http_stop(struct bk_metrics_snap *m)
{
	atomic_store(&m->stopping, 1);
	while (atomic_load(&m->serving))
		nng_msleep(1);
	if (m->http)
		nng_http_server_release(m->http);
	m->http = NULL;
}
