/*
 * bk_metrics - see bk_metrics.h. The loop thread's side: counting (plain
 * words), rendering (into a preallocated buffer, a bounded slice per tick)
 * and publishing. The health verdict published with each rendering is in
 * bk_metrics_health.c; serving, on nng's HTTP threads, in bk_metrics_http.c,
 * which sees only the snapshot (bk_metrics_snap.h).
 *
 * Label values need no escaping: strategy names are [A-Za-z0-9._:-], reason
 * codes and rule names are ours.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bk_daemon.h"
#include "bk_log.h"

#define LINE_MAX_BYTES   512   /* longest put(): names are <= 39 bytes, HELP < 300 */
#define HEAD_MAX_BYTES   65536 /* everything that is not per strategy */
#define PER_STRATEGY_MAX (5 * LINE_MAX_BYTES + (BK_REASON_COUNT + BK_RULE_COUNT) * 128)
#define PREFAULT_BYTES   (4u << 20) /* 4096 tripped, 2 latches, telemetry, warnings */
#define SLICE_BUDGET     512 /* work units per tick: a strategy visited 1, a line 2 */

enum stage {
	ST_IDLE,
	ST_HEAD,
	ST_MODE,     /* breaker_mode, per strategy */
	ST_OWN,      /* breaker_strategy_own_mode */
	ST_LATCH,    /* breaker_strategies, breaker_latch_active */
	ST_REJECT,   /* breaker_strategy_reject_ratio */
	ST_ORDER,    /* breaker_strategy_order_rate */
	ST_UTIL,     /* breaker_rule_utilisation_ratio */
	ST_WORKING,  /* breaker_working_orders (bk_orders.h) */
	ST_HALTWORK, /* breaker_halted_working_orders_seconds */
	ST_FINISH,
};

/*
 * Label values: derived from the protobuf-c descriptors (breaker.Status,
 * Request's cmd oneof) and from bk_mode's one table, filled once at start,
 * so that a new Status value or command is named without an edit here. The
 * numbers bk_metrics_cmd_type and the counters' sizes rely on are checked
 * here; tests/test_names.c checks that every value fits.
 */
/* trip .. reconcile are one block of cases: their type is case - trip */
_Static_assert(BREAKER__REQUEST__CMD_RESUME == BREAKER__REQUEST__CMD_TRIP + 1 &&
                   BREAKER__REQUEST__CMD_STATUS == BREAKER__REQUEST__CMD_TRIP + 2 &&
                   BREAKER__REQUEST__CMD_LIST == BREAKER__REQUEST__CMD_TRIP + 3 &&
                   BREAKER__REQUEST__CMD_REGISTER == BREAKER__REQUEST__CMD_TRIP + 4 &&
                   BREAKER__REQUEST__CMD_REPORT == BREAKER__REQUEST__CMD_TRIP + 5 &&
                   BREAKER__REQUEST__CMD_RECONCILE == BREAKER__REQUEST__CMD_TRIP + 6,
               "bk_metrics_cmd_type: the Request's first commands are contiguous");
_Static_assert(
    BK_CMD_INVALID == BREAKER__REQUEST__CMD_RECONCILE - BREAKER__REQUEST__CMD_TRIP + 1 &&
        BK_CMD_REBASE == BK_CMD_INVALID + 1 && BK_CMD_GROUP == BK_CMD_REBASE + 1 &&
        BK_CMD_UNREGISTER == BK_CMD_GROUP + 1 && BK_CMD_RENAME == BK_CMD_UNREGISTER + 1 &&
        BK_CMD_INCIDENT == BK_CMD_RENAME + 1 && BK_CMD_TYPES == BK_CMD_INCIDENT + 1,
    "command type indexes");
_Static_assert(BREAKER__STATUS__ERR_RECONCILE_REQUIRED < BK_STATUS_COUNT,
               "BK_STATUS_COUNT covers breaker.Status");

static char status_labels[BK_STATUS_COUNT][32]; /* "err_not_durable"; "err_other" */
static char cmd_labels[BK_CMD_TYPES][16];       /* "trip" ... "invalid", "rebase" */
static char mode_labels[BK_MODE_COUNT][16];     /* "active" ... "reduce_only" */

static void lower(char *out, size_t len, const char *s)
{
	size_t i = 0;

	for (; s[i] && i + 1 < len; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[i] = '\0';
}

static void labels_init(void)
{
	for (int v = 0; v < BK_STATUS_COUNT; v++) {
		const ProtobufCEnumValue *ev =
		    protobuf_c_enum_descriptor_get_value(&breaker__status__descriptor, v);
		lower(status_labels[v], sizeof(status_labels[v]),
		      ev ? ev->name : "err_other");
	}
	for (unsigned t = 0; t < BK_CMD_TYPES; t++) {
		static const int later[] = BK_CMD_LATER;
		unsigned id = t >= BK_CMD_REBASE ? (unsigned)later[t - BK_CMD_REBASE]
		                                 : BREAKER__REQUEST__CMD_TRIP + t;
		const ProtobufCFieldDescriptor *fd =
		    t == BK_CMD_INVALID ? NULL
		                        : protobuf_c_message_descriptor_get_field(
		                              &breaker__request__descriptor, id);
		lower(cmd_labels[t], sizeof(cmd_labels[t]), fd ? fd->name : "invalid");
	}
	for (int i = 0; i < BK_MODE_COUNT; i++)
		lower(mode_labels[i], sizeof(mode_labels[i]), bk_mode_name(i));
}

/* Bucket bounds, ns, and the same as Prometheus "le" labels. */
static const uint64_t tick_bounds[BK_HIST_BUCKETS] = {
    10000,   25000,   50000,    100000,   250000,   500000,    1000000,
    2500000, 5000000, 10000000, 25000000, 50000000, 100000000, 1000000000,
};
static const char *const tick_le[BK_HIST_BUCKETS] = {
    "1e-05",  "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001",
    "0.0025", "0.005",   "0.01",  "0.025",  "0.05",    "0.1",    "1",
};
static const uint64_t fsync_bounds[BK_HIST_BUCKETS] = {
    100000,   250000,   500000,    1000000,   2500000,   5000000,    10000000,
    25000000, 50000000, 100000000, 250000000, 500000000, 1000000000, 5000000000,
};
static const char *const fsync_le[BK_HIST_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025",  "0.05",    "0.1",    "0.25",  "0.5",    "1",     "5",
};

/* ---- counting --------------------------------------------------------------- */

static void hist_add(struct bk_hist *h, const uint64_t *bounds, uint64_t ns)
{
	unsigned i = 0;

	while (i < BK_HIST_BUCKETS && ns > bounds[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum_ns += ns;
}

void bk_metrics_tick_done(struct bk_daemon *d, uint64_t ns)
{
	hist_add(&d->ctr.tick, tick_bounds, ns);
	if (ns > d->cfg.tick_ns)
		d->ctr.tick_overruns++;
}

void bk_metrics_fsync_done(struct bk_daemon *d, uint64_t ns, bool ok)
{
	hist_add(&d->ctr.fsync, fsync_bounds, ns);
	if (!ok)
		d->ctr.flush_failures++;
}

void bk_metrics_command_done(struct bk_daemon *d, uint64_t ns)
{
	/* the tick's bounds: 10 us (a fast-path trip) to 1 s (a stuck flush) */
	hist_add(&d->ctr.command, tick_bounds, ns);
}

/* ---- writing lines ------------------------------------------------------------ */

static struct bk_metrics_buf *back_buf(struct bk_metrics *m)
{
	return &m->snap.buf[!atomic_load_explicit(&m->snap.cur, memory_order_relaxed)];
}

/* Room for one more whole line? If not, the line is dropped, never cut. */
static char *line_start(struct bk_metrics *m, size_t *len)
{
	size_t used = atomic_load_explicit(&back_buf(m)->len, memory_order_relaxed);

	if (m->snap.cap - used < LINE_MAX_BYTES) {
		m->overflow = true;
		return NULL;
	}
	*len = used;
	return back_buf(m)->text;
}

static void put(struct bk_metrics *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One line (or a few, < LINE_MAX_BYTES together). No allocation: vsnprintf to a buffer.
 */
static void put(struct bk_metrics *m, const char *fmt, ...)
{
	size_t len;
	char *p = line_start(m, &len);
	va_list ap;
	int n;

	if (!p)
		return;
	va_start(ap, fmt);
	n = vsnprintf(p + len, LINE_MAX_BYTES, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= LINE_MAX_BYTES) {
		m->overflow = true;
		return;
	}
	atomic_store_explicit(&back_buf(m)->len, len + (size_t)n, memory_order_relaxed);
}

static void family(struct bk_metrics *m, const char *name, const char *type,
                   const char *help)
{
	put(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* %.9g, but Prometheus' spelling of the non-finite values. */
static const char *num(char buf[32], double v)
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	snprintf(buf, 32, "%.9g", v);
	return buf;
}

static void hist(struct bk_metrics *m, const char *name, const char *help,
                 const struct bk_hist *h, const char *const *le)
{
	uint64_t cum = 0;
	char b[32];

	family(m, name, "histogram", help);
	for (unsigned i = 0; i < BK_HIST_BUCKETS; i++) {
		cum += h->bucket[i];
		put(m, "%s_bucket{le=\"%s\"} %llu\n", name, le[i],
		    (unsigned long long)cum);
	}
	put(m, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %s\n%s_count %llu\n", name,
	    (unsigned long long)h->count, name, num(b, (double)h->sum_ns / 1e9), name,
	    (unsigned long long)h->count);
}

/* ---- the rendering's stages ------------------------------------------------------ */

static void head_counters(struct bk_daemon *d, struct bk_metrics *m)
{
	const struct bk_counters *c = &d->ctr;

	family(
	    m, "breaker_trips_total", "counter",
	    "Trips applied since breakerd started (operators' and rules'), by scope and "
	    "reason code.");
	for (int s = 0; s < 2; s++)
		for (unsigned r = 1; r < BK_REASON_COUNT; r++)
			if (bk_reason_name(r)) /* codes are allocated in ranges */
				put(m,
				    "breaker_trips_total{scope=\"%s\",reason=\"%s\"} "
				    "%llu\n",
				    s ? "strategy" : "global", bk_reason_name(r),
				    (unsigned long long)c->trips[s][r]);
	family(m, "breaker_commands_total", "counter",
	       "Commands handled since breakerd started, by type and reply status (as "
	       "decided when handled).");
	for (unsigned t = 0; t < BK_CMD_TYPES; t++)
		for (unsigned r = 0; r < BK_STATUS_COUNT; r++)
			/* the common outcome always, so rate() sees the first one */
			if (r == (t == BK_CMD_INVALID) || c->commands[t][r])
				put(m,
				    "breaker_commands_total{type=\"%s\",result=\"%s\"} "
				    "%llu\n",
				    cmd_labels[t], status_labels[r],
				    (unsigned long long)c->commands[t][r]);
	family(m, "breaker_auth_refusals_total", "counter",
	       "Commands refused for want of authorisation (also in commands_total as "
	       "err_unauthorised).");
	put(m, "breaker_auth_refusals_total %llu\n",
	    (unsigned long long)c->auth_refusals);
	family(m, "breaker_auth_refusals_unrecorded_total", "counter",
	       "Of those, refusals not audited one by one (rate limit); audit summary "
	       "records count them.");
	put(m, "breaker_auth_refusals_unrecorded_total %llu\n",
	    (unsigned long long)c->auth_suppressed);
	family(m, "breaker_tick_overruns_total", "counter",
	       "Ticks that took longer than the tick period.");
	put(m, "breaker_tick_overruns_total %llu\n",
	    (unsigned long long)c->tick_overruns);
	family(m, "breaker_audit_flush_failures_total", "counter",
	       "Audit log flushes (write + fdatasync) that failed.");
	put(m, "breaker_audit_flush_failures_total %llu\n",
	    (unsigned long long)c->flush_failures);
	family(m, "breaker_config_reloads_total", "counter",
	       "SIGHUP rule reloads, by result (applied: a CONFIG audit record; "
	       "refused: the file was invalid, the running rules stayed).");
	put(m, "breaker_config_reloads_total{result=\"applied\"} %llu\n",
	    (unsigned long long)c->config_reloads[0]);
	put(m, "breaker_config_reloads_total{result=\"refused\"} %llu\n",
	    (unsigned long long)c->config_reloads[1]);
	family(m, "breaker_rule_state_records_total", "counter",
	       "RULE_STATE audit records: rule baselines (drawdown peak, balance base) "
	       "made durable for replay at boot.");
	put(m, "breaker_rule_state_records_total %llu\n",
	    (unsigned long long)c->rule_state_records);
	hist(m, "breaker_tick_duration_seconds",
	     "Duration of each tick (rules, actions, metrics).", &c->tick, tick_le);
	hist(m, "breaker_audit_fsync_duration_seconds",
	     "Audit flush latency: from the write's submission to the fdatasync's "
	     "completion.",
	     &c->fsync, fsync_le);
	hist(m, "breaker_command_duration_seconds",
	     "Command latency inside breakerd: from handling begun to the reply handed "
	     "to its transport (a resume's includes its durable audit record; a trip's "
	     "does not wait for the disk).",
	     &c->command, tick_le);
}

/* Engines attached (an ack pid in the telemetry segment) that have not acted
 * on the latest trip's change seq, and the slowest ack of those that did:
 * what the status page and `breaker status` show, for dashboards. */
static void engine_acks(struct bk_daemon *d, struct bk_metrics *m)
{
	uint32_t want = d->last_trip_change_seq, pending = 0, attached = 0, seq, pid;
	uint64_t ns, slowest = 0;
	char b[32];

	for (uint32_t i = 0; want && i < d->state.n_strategies; i++) {
		bk_tel_ack(&d->tel, (int)i, &seq, &ns, &pid);
		if (!pid)
			continue;
		attached++;
		if ((int32_t)(seq - want) < 0)
			pending++;
		else if (ns >= d->last_trip_mono_ns &&
		         ns - d->last_trip_mono_ns > slowest)
			slowest = ns - d->last_trip_mono_ns;
	}
	family(m, "breaker_engine_acks_pending", "gauge",
	       "Engines that have not acknowledged the latest trip's change sequence "
	       "(0 before any trip).");
	put(m, "breaker_engine_acks_pending %u\n", pending);
	family(m, "breaker_engine_ack_slowest_seconds", "gauge",
	       "The slowest acknowledgement of the latest trip, among the engines "
	       "that acknowledged it (of the engines attached then).");
	put(m, "breaker_engine_ack_slowest_seconds %s\n",
	    num(b, attached ? (double)slowest / 1e9 : 0));
}

/* Firm-wide mode: the segment's words, as engines see them. */
static void firm_gauges(struct bk_daemon *d, struct bk_metrics *m, uint64_t now)
{
	uint64_t contact = atomic_load(&d->shm.shm->firm_contact_ns);
	char b[32];

	family(m, "breaker_firm_revision", "gauge",
	       "The last etcd revision of the firm latches applied on this host.");
	put(m, "breaker_firm_revision %llu\n",
	    (unsigned long long)atomic_load(&d->shm.shm->firm_revision));
	family(m, "breaker_firm_contact_age_seconds", "gauge",
	       "Time since the last proven etcd quorum contact (a linearizable read); "
	       "-1: none since start.");
	put(m, "breaker_firm_contact_age_seconds %s\n",
	    contact ? num(b, now > contact ? (double)(now - contact) / 1e9 : 0) : "-1");
	family(m, "breaker_audit_anchored_seq", "gauge",
	       "The last audit seq whose chain head this host anchored in etcd (0: none "
	       "yet); records after it are not covered by an anchor.");
	put(m, "breaker_audit_anchored_seq %llu\n",
	    (unsigned long long)bk_etcd_anchored_seq(d));
}

static void head_gauges(struct bk_daemon *d, struct bk_metrics *m, uint64_t now)
{
	char b[32];

	family(m, "breaker_info", "gauge", "Always 1; names the breaker instance.");
	put(m, "breaker_info{breaker_instance=\"%s\"} 1\n", m->snap.instance);
	family(m, "breaker_uptime_seconds", "gauge", "Time since breakerd started.");
	put(m, "breaker_uptime_seconds %s\n",
	    num(b, (double)(now - d->boot_mono_ns) / 1e9));
	family(m, "breaker_tick_period_seconds", "gauge", "The configured tick period.");
	put(m, "breaker_tick_period_seconds %s\n", num(b, (double)d->cfg.tick_ns / 1e9));
	family(m, "breaker_tick_idle_period_seconds", "gauge",
	       "The tick period while no telemetry moves (idle_tick_period_us).");
	put(m, "breaker_tick_idle_period_seconds %s\n",
	    num(b, (double)bk_idle_period_ns(&d->cfg) / 1e9));
	family(m, "breaker_tick_idle", "gauge",
	       "1 while the tick runs at the idle period (nothing moved lately).");
	put(m, "breaker_tick_idle %d\n", d->idle.idle ? 1 : 0);
	family(m, "breaker_tick_rule_evaluations_total", "counter",
	       "Strategy-ticks whose rules were evaluated (telemetry moved, or "
	       "something was due).");
	put(m, "breaker_tick_rule_evaluations_total %llu\n",
	    (unsigned long long)d->skip.evaluated);
	family(m, "breaker_tick_rule_skips_total", "counter",
	       "Strategy-ticks left unevaluated: telemetry still, nothing due "
	       "(docs/rules.md).");
	put(m, "breaker_tick_rule_skips_total %llu\n",
	    (unsigned long long)d->skip.skipped);
	family(m, "breaker_audit_records_pending", "gauge",
	       "Audit records staged or in flight, not yet durable.");
	put(m, "breaker_audit_records_pending %llu\n",
	    (unsigned long long)bk_metrics_audit_pending(d));
	family(m, "breaker_audit_last_durable_seq", "gauge",
	       "Sequence number of the last audit record known to be on disk.");
	put(m, "breaker_audit_last_durable_seq %llu\n",
	    (unsigned long long)d->audit.durable_seq);
	family(
	    m, "breaker_audit_stalled_seconds", "gauge",
	    "How long audit records have waited without the durable seq moving (0: none "
	    "waiting).");
	put(m, "breaker_audit_stalled_seconds %s\n", num(b, (double)m->stalled_ns / 1e9));
	family(m, "breaker_audit_write_failing", "gauge",
	       "1 while the last audit flush failed (resumes are refused).");
	put(m, "breaker_audit_write_failing %d\n", d->flush_err ? 1 : 0);
	family(m, "breaker_telemetry_blind", "gauge",
	       "1 when the telemetry segment is lost: the rules cannot evaluate.");
	put(m, "breaker_telemetry_blind %d\n", d->ctr.tel_blind ? 1 : 0);
	family(m, "breaker_metrics_render_seconds", "gauge",
	       "Loop time the previous whole rendering of these metrics took, over all "
	       "slices.");
	put(m, "breaker_metrics_render_seconds %s\n",
	    num(b, (double)m->last_work_ns / 1e9));
	family(m, "breaker_metrics_render_slice_max_seconds", "gauge",
	       "The longest slice (one tick's share) of the previous rendering.");
	put(m, "breaker_metrics_render_slice_max_seconds %s\n",
	    num(b, (double)m->last_slice_max_ns / 1e9));
	engine_acks(d, m);
	if (d->etcd) /* [cluster] only: single-host /metrics is unchanged */
		firm_gauges(d, m, now);
}

/*
 * The per-strategy lines are most of the text: written with plain copies
 * rather than vsnprintf (a few times faster), each line checked for room
 * first so that a full buffer drops whole lines, never cuts one.
 */
static char *line_begin(struct bk_metrics *m)
{
	size_t len;
	char *p = line_start(m, &len);

	return p ? p + len : NULL;
}

static void line_end(struct bk_metrics *m, char *end)
{
	struct bk_metrics_buf *b = back_buf(m);

	atomic_store_explicit(&b->len, (size_t)(end - b->text), memory_order_relaxed);
}

static char *app(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

static char *app_u64(char *p, uint64_t v)
{
	char tmp[20];
	int i = 0;

	do
		tmp[i++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (i)
		*p++ = tmp[--i];
	return p;
}

/* Six decimals, trailing zeros dropped: plenty for ratios and rates. */
static char *app_f64(char *p, double v)
{
	uint64_t ip, fp;
	char b[32];
	int digits = 6;

	if (!isfinite(v) || fabs(v) >= 1e15)
		return app(p, num(b, v));
	if (v < 0) {
		*p++ = '-';
		v = -v;
	}
	ip = (uint64_t)v;
	fp = (uint64_t)llround((v - (double)ip) * 1e6);
	if (fp >= 1000000) {
		ip++;
		fp -= 1000000;
	}
	p = app_u64(p, ip);
	if (!fp)
		return p;
	while (fp % 10 == 0) {
		fp /= 10;
		digits--;
	}
	*p++ = '.';
	for (int i = digits - 1; i >= 0; i--, fp /= 10)
		p[i] = (char)('0' + fp % 10);
	return p + digits;
}

/* A mode as engines see it: the published word in shared memory. */
static uint64_t shm_word(const struct bk_daemon *d, int slot, uint32_t *latches)
{
	const struct bk_shm_scope *sc =
	    slot == BK_GLOBAL ? &d->shm.shm->global : &d->shm.shm->strategies[slot];

	*latches = atomic_load_explicit(&sc->latches, memory_order_relaxed);
	return atomic_load_explicit(&sc->state, memory_order_relaxed);
}

static void enter_mode(struct bk_daemon *d, struct bk_metrics *m)
{
	uint32_t latches;

	memset(m->count, 0, sizeof(m->count));
	/* one global mode for the whole rendering: the strategies' effective
	 * modes below are all folded with the same value */
	m->global_mode = BK_STATE_MODE(shm_word(d, BK_GLOBAL, &latches));
	if (m->global_mode > BK_HALTED)
		m->global_mode = BK_HALTED;
	family(m, "breaker_mode", "gauge",
	       "Mode engines see: 0 ACTIVE, 1 CAUTIOUS, 2 REDUCE_ONLY, 3 HALTED. Global, "
	       "each group not ACTIVE (its own latches), and each strategy not ACTIVE "
	       "for its engines, at its effective mode (the strictest of global, its "
	       "groups and its own); breaker_strategy_own_mode has its own.");
	put(m, "breaker_mode{scope=\"global\"} %u\n", m->global_mode);
	for (uint32_t g = 0; g < d->state.n_groups; g++) {
		uint64_t since;
		unsigned mode = BK_STATE_MODE(bk_scope_published(
		    &d->state.groups[g], d->audit.durable_seq, &since, &latches));

		if (mode != BK_ACTIVE)
			put(m, "breaker_mode{scope=\"group\",group=\"%s\"} %u\n",
			    d->state.groups[g].name, mode > BK_HALTED ? BK_HALTED : mode);
	}
}

/* The mode a strategy's word publishes (folded with its groups), clamped. */
static unsigned seen_mode(const struct bk_daemon *d, uint32_t i)
{
	uint32_t latches;
	unsigned mode = BK_STATE_MODE(shm_word(d, (int)i, &latches));

	return mode > BK_HALTED ? BK_HALTED : mode;
}

/* A strategy's own mode (its latches only, as published), clamped: the word's
 * unless a group's latch won it (holder bits), then from the state. */
static unsigned own_mode(const struct bk_daemon *d, uint32_t i)
{
	uint64_t since, word;
	uint32_t latches;
	unsigned mode;

	word = shm_word(d, (int)i, &latches);
	if (BK_STATE_HOLDER(word))
		word = bk_scope_published(&d->state.strategies[i], d->audit.durable_seq,
		                          &since, &latches);
	mode = BK_STATE_MODE(word);
	return mode > BK_HALTED ? BK_HALTED : mode;
}

/* One "name{strategy="..."} digit" line for strategy i. */
static int mode_line(struct bk_daemon *d, struct bk_metrics *m, const char *head,
                     uint32_t i, unsigned mode)
{
	char *p;

	if (!(p = line_begin(m)))
		return 1;
	p = app(p, head);
	p = app(p, d->state.strategies[i].name);
	p = app(p, "\"} ");
	*p++ = (char)('0' + mode);
	*p++ = '\n';
	line_end(m, p);
	return 3;
}

/*
 * Effective, as engines see it: with global HALTED, a strategy at REDUCE_ONLY
 * on its own is HALTED for its engines, and alerts must say so (a strategy
 * ACTIVE on its own is not listed: its engines see the global line).
 */
static int visit_mode(struct bk_daemon *d, struct bk_metrics *m, uint32_t i)
{
	unsigned mode = seen_mode(d, i);

	m->count[own_mode(d, i)]++; /* breaker_strategies: by their own mode */
	if (mode == BK_ACTIVE)
		return 1;
	return mode_line(d, m, "breaker_mode{scope=\"strategy\",strategy=\"", i,
	                 mode > m->global_mode ? mode : m->global_mode);
}

static int visit_own(struct bk_daemon *d, struct bk_metrics *m, uint32_t i)
{
	unsigned mode = own_mode(d, i);

	if (mode == BK_ACTIVE)
		return 1;
	return mode_line(d, m, "breaker_strategy_own_mode{strategy=\"", i, mode);
}

static void enter_latch(struct bk_daemon *d, struct bk_metrics *m)
{
	uint32_t latches;

	family(m, "breaker_strategies", "gauge",
	       "Registered strategies by their own mode.");
	for (int i = 0; i < BK_MODE_COUNT; i++)
		put(m, "breaker_strategies{mode=\"%s\"} %u\n", mode_labels[i],
		    m->count[i]);
	family(m, "breaker_latch_active", "gauge",
	       "1 for each latch (reason code) holding a scope; absent when released.");
	shm_word(d, BK_GLOBAL, &latches);
	for (unsigned r = 1; r < BK_REASON_COUNT; r++)
		if ((latches & (1u << r)) && bk_reason_name(r))
			put(m, "breaker_latch_active{scope=\"global\",reason=\"%s\"} 1\n",
			    bk_reason_name(r));
}

static int visit_latch(struct bk_daemon *d, struct bk_metrics *m, uint32_t i)
{
	uint32_t latches;
	int cost = 1;
	char *p;

	shm_word(d, (int)i, &latches);
	for (unsigned r = 1; latches && r < BK_REASON_COUNT; r++) {
		if (!(latches & (1u << r)) || !bk_reason_name(r) || !(p = line_begin(m)))
			continue;
		p = app(p, "breaker_latch_active{scope=\"strategy\",strategy=\"");
		p = app(p, d->state.strategies[i].name);
		p = app(p, "\",reason=\"");
		p = app(p, bk_reason_name(r));
		line_end(m, app(p, "\"} 1\n"));
		cost += 2;
	}
	return cost;
}

/* An engine reports for it (telemetry slot with a pid, Report messages, orders). */
static bool has_telemetry(const struct bk_daemon *d, uint32_t i)
{
	const struct bk_slot_rules *sr = &d->slots[i];

	if (sr->is_remote || sr->eval.last_orders)
		return true;
	return d->tel.tel &&
	       atomic_load_explicit(&d->tel.tel->slots[i].pid, memory_order_relaxed) != 0;
}

static int visit_rate(struct bk_daemon *d, struct bk_metrics *m, uint32_t i, bool reject)
{
	const struct bk_slot_rules *sr = &d->slots[i];
	const struct bk_window *w = reject ? &sr->eval.rej_win : &sr->eval.ord_win;
	double v;
	char *p;

	if (!sr->rules || !has_telemetry(d, i) || !(p = line_begin(m)))
		return 1;
	if (reject)
		v = w->sum_orders ? (double)w->sum_rejects / (double)w->sum_orders : 0;
	else
		v = (double)w->sum_orders * 1000.0 /
		    sr->rules[BK_RULE_ORDER_RATE].window_ms;
	p = app(p, reject ? "breaker_strategy_reject_ratio{strategy=\""
	                  : "breaker_strategy_order_rate{strategy=\"");
	p = app(p, d->state.strategies[i].name);
	p = app_f64(app(p, "\"} "), v);
	*p++ = '\n';
	line_end(m, p);
	return 3;
}

static int visit_util(struct bk_daemon *d, struct bk_metrics *m, uint32_t i)
{
	const struct bk_slot_rules *sr = &d->slots[i];
	const char *name = d->state.strategies[i].name;
	int cost = 1;
	char *p;

	for (int r = 0; sr->rules && r < BK_RULE_COUNT; r++) {
		if (!sr->rules[r].enabled ||
		    (sr->eval.util[r] < d->cfg.rules.warn[0] && !sr->eval.violating[r]))
			continue;
		if (m->warnings++ == 0)
			snprintf(m->warn_first, sizeof(m->warn_first),
			         "strategy %s rule %s at %.0f%%%s", name,
			         bk_rule_name((enum bk_rule_id)r), sr->eval.util[r] * 100,
			         sr->eval.violating[r] ? " (violated)" : "");
		if (!(p = line_begin(m)))
			continue;
		p = app(p, "breaker_rule_utilisation_ratio{strategy=\"");
		p = app(app(p, name), "\",rule=\"");
		p = app(app(p, bk_rule_name((enum bk_rule_id)r)), "\"} ");
		p = app_f64(p, sr->eval.util[r]);
		*p++ = '\n';
		line_end(m, p);
		cost += 2;
	}
	return cost;
}

/* Cancel-all, confirmed: engines that reported working orders (bk_orders.h). */
static int visit_orders(struct bk_daemon *d, struct bk_metrics *m, uint32_t i,
                        bool halted)
{
	uint64_t working, unconfirmed_ns;
	char *p;

	if (!bk_orders_metric(d, (int)i, d->last_tick_ns, &working, &unconfirmed_ns))
		return 1;
	if (halted && unconfirmed_ns > BK_UNFLAT_NS && m->unflat++ == 0)
		snprintf(m->unflat_first, sizeof(m->unflat_first), "%s",
		         d->state.strategies[i].name);
	if (!(p = line_begin(m)))
		return 1;
	p = app(p, halted ? "breaker_halted_working_orders_seconds{strategy=\""
	                  : "breaker_working_orders{strategy=\"");
	p = app(app(p, d->state.strategies[i].name), "\"} ");
	p = halted ? app_f64(p, (double)unconfirmed_ns / 1e9) : app_u64(p, working);
	*p++ = '\n';
	line_end(m, p);
	return 3;
}

/* The venue rules (bk_venuewatch.h): one line per judged rule of a venue group. */
static void venue_lines(struct bk_daemon *d, struct bk_metrics *m)
{
	char b[32];

	family(m, "breaker_venue_rule_utilisation_ratio", "gauge",
	       "The venue rules per venue group, for rules with live reporting "
	       "engines: md_stale: the freshest tick's age / md_stale_ms; "
	       "session_down: sessions down / sessions reporting.");
	for (uint32_t g = 0; g < d->state.n_groups; g++) {
		const struct bk_venue_eval *ev = &d->venues.ev[g];

		for (int r = 0; d->venues.is_venue[g] && r < BK_VENUE_RULES; r++)
			if (ev->judged[r] && ev->threshold[r] > 0)
				put(m,
				    "breaker_venue_rule_utilisation_ratio{group=\"%s\","
				    "rule="
				    "\"%s\"} %s\n",
				    d->state.groups[g].name,
				    bk_venue_rule_name((enum bk_venue_rule)r),
				    num(b, ev->measured[r] / ev->threshold[r]));
	}
}

/* ---- the rendering ---------------------------------------------------------------- */

/*
 * No reader copies the back buffer, and none can start: readers count
 * themselves, then check that the buffer is still the published one, and the
 * swap came before this load (all seq_cst: one of the two sees the other).
 * Reading their decrement also orders their copies before our writes.
 */
static bool back_free(struct bk_metrics *m)
{
	return atomic_load(&back_buf(m)->readers) == 0;
}

static void begin(struct bk_metrics *m, uint64_t now)
{
	struct bk_metrics_buf *b = back_buf(m);

	/* odd: a reader that still holds this buffer's index will retry */
	atomic_store_explicit(&b->seq,
	                      atomic_load_explicit(&b->seq, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&b->len, 0, memory_order_relaxed);
	m->stage = ST_HEAD;
	m->cursor = 0;
	m->next_ns = now + BK_METRICS_PERIOD_NS;
	m->work_ns = m->slice_max_ns = 0;
	m->warnings = 0;
	m->warn_first[0] = '\0';
	m->overflow = false;
}

static void publish(struct bk_daemon *d, struct bk_metrics *m, uint64_t now)
{
	struct bk_metrics_buf *b = back_buf(m);
	unsigned back = !atomic_load_explicit(&m->snap.cur, memory_order_relaxed);

	b->health = bk_metrics_health(d, m, now, b->health_text, sizeof(b->health_text));
	atomic_store_explicit(&b->rendered_mono_ns, now, memory_order_relaxed);
	atomic_store_explicit(&b->seq,
	                      atomic_load_explicit(&b->seq, memory_order_relaxed) + 1,
	                      memory_order_release);
	/* seq_cst: ordered against the readers' count and recheck (see read) */
	atomic_store(&m->snap.cur, back);
	atomic_store_explicit(&m->snap.published, 1, memory_order_release);
	m->stage = ST_IDLE;
}

/* Per-strategy stages: visit from the cursor while the budget lasts. */
static int strategies(struct bk_daemon *d, struct bk_metrics *m, int budget)
{
	uint32_t n = d->state.n_strategies;

	while (m->cursor < n && budget > 0) {
		uint32_t i = m->cursor++;
		if (d->state.strategies[i].gone) /* unregistered: no series */
			continue;
		switch (m->stage) {
		case ST_MODE:
			budget -= visit_mode(d, m, i);
			break;
		case ST_OWN:
			budget -= visit_own(d, m, i);
			break;
		case ST_LATCH:
			budget -= visit_latch(d, m, i);
			break;
		case ST_REJECT:
			budget -= visit_rate(d, m, i, true);
			break;
		case ST_ORDER:
			budget -= visit_rate(d, m, i, false);
			break;
		case ST_UTIL:
			budget -= visit_util(d, m, i);
			break;
		case ST_WORKING:
			budget -= visit_orders(d, m, i, false);
			break;
		case ST_HALTWORK:
			budget -= visit_orders(d, m, i, true);
			break;
		}
	}
	return budget;
}

/* Enter the next stage: its family header and scope-wide lines. */
static void next_stage(struct bk_daemon *d, struct bk_metrics *m, uint64_t now)
{
	m->stage++;
	m->cursor = 0;
	switch (m->stage) {
	case ST_MODE:
		enter_mode(d, m);
		break;
	case ST_OWN:
		family(
		    m, "breaker_strategy_own_mode", "gauge",
		    "A strategy's own mode (its own latches, without global), for "
		    "each strategy not ACTIVE on its own: 1 CAUTIOUS, 2 REDUCE_ONLY, 3 "
		    "HALTED.");
		break;
	case ST_LATCH:
		enter_latch(d, m);
		break;
	case ST_REJECT:
		family(m, "breaker_strategy_reject_ratio", "gauge",
		       "Rejects / orders over the reject_rate rule's window (strategies "
		       "with "
		       "telemetry).");
		break;
	case ST_ORDER:
		family(m, "breaker_strategy_order_rate", "gauge",
		       "Orders per second over the order_rate rule's window (strategies "
		       "with "
		       "telemetry).");
		break;
	case ST_UTIL:
		family(m, "breaker_rule_utilisation_ratio", "gauge",
		       "Measured / threshold for each limit rule at or above its first "
		       "warning "
		       "level.");
		break;
	case ST_WORKING:
		family(m, "breaker_working_orders", "gauge",
		       "Orders working at the venue, as each engine last reported them "
		       "(engines that report).");
		break;
	case ST_HALTWORK:
		m->unflat = 0;
		family(m, "breaker_halted_working_orders_seconds", "gauge",
		       "Seconds since the engine's scope was HALTED without a confirmed "
		       "flat (0 working reported after the halt); 0 when flat or not "
		       "HALTED. A dead or silent engine counts: its orders are "
		       "unconfirmed.");
		break;
	case ST_FINISH:
		venue_lines(d, m);
		family(m, "breaker_rule_warnings", "gauge",
		       "Limit rules at or above their first warning level.");
		put(m, "breaker_rule_warnings %u\n", m->warnings);
		m->last_work_ns = m->work_ns;
		m->last_slice_max_ns = m->slice_max_ns;
		publish(d, m, now);
		break;
	}
}

static void slice(struct bk_daemon *d, struct bk_metrics *m, uint64_t now)
{
	uint64_t t0 = bk_now_mono_ns(), ns;
	int budget = SLICE_BUDGET;

	if (m->stage == ST_HEAD) {
		head_gauges(d, m, now);
		head_counters(d, m);
		budget -= 400;
		next_stage(d, m, now);
	}
	while (m->stage != ST_IDLE && budget > 0) {
		budget = strategies(d, m, budget);
		if (m->cursor >= d->state.n_strategies) {
			ns = bk_now_mono_ns() - t0;
			if (m->stage + 1 == ST_FINISH) {
				/* the last slice's time counts in the published figures
				 */
				m->work_ns += ns;
				m->slice_max_ns =
				    ns > m->slice_max_ns ? ns : m->slice_max_ns;
				next_stage(d, m, now);
				return;
			}
			next_stage(d, m, now);
		}
	}
	ns = bk_now_mono_ns() - t0;
	m->work_ns += ns;
	if (ns > m->slice_max_ns)
		m->slice_max_ns = ns;
}

void bk_metrics_tick(struct bk_daemon *d, uint64_t now)
{
	struct bk_metrics *m = &d->metrics;

	if (!m->snap.buf[0].text)
		return; /* not started (in-process benchmarks) */
	atomic_store_explicit(&m->snap.last_tick_ns, now, memory_order_relaxed);
	if (m->stage == ST_IDLE) {
		if (now < m->next_ns || !back_free(m))
			return; /* due, but a reader still copies it: next tick */
		begin(m, now);
	}
	slice(d, m, now);
}

uint64_t bk_metrics_render_all(struct bk_daemon *d, uint64_t now)
{
	struct bk_metrics *m = &d->metrics;
	uint64_t t0 = bk_now_mono_ns();

	if (!m->snap.buf[0].text)
		return 0;
	atomic_store_explicit(&m->snap.last_tick_ns, now, memory_order_relaxed);
	if (m->stage == ST_IDLE) {
		while (!back_free(m)) /* a copy takes microseconds */
			sched_yield();
		begin(m, now);
	}
	while (m->stage != ST_IDLE)
		slice(d, m, now);
	return bk_now_mono_ns() - t0;
}

int bk_metrics_start(struct bk_daemon *d)
{
	struct bk_metrics *m = &d->metrics;
	uint64_t now = bk_now_mono_ns();
	char url[BK_LISTEN_MAX + 16];

	labels_init();
	m->snap.cap = HEAD_MAX_BYTES + (size_t)BK_MAX_STRATEGIES * PER_STRATEGY_MAX +
	              (size_t)BK_MAX_GROUPS * LINE_MAX_BYTES; /* the groups' mode lines */
	/* untouched pages cost nothing: a small table uses a few pages of each */
	for (int i = 0; i < 2; i++) {
		void *p = mmap(NULL, m->snap.cap, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return -ENOMEM;
		/* fault in what a big incident needs now, not in a tick's slice later */
		memset(p, 0, m->snap.cap < PREFAULT_BYTES ? m->snap.cap : PREFAULT_BYTES);
		m->snap.buf[i].text = p;
	}
	m->snap.bound_ns = d->cfg.heartbeat_bound_ns;
	snprintf(m->snap.instance, sizeof(m->snap.instance), "%s", d->cfg.instance);
	m->win_start_ns = m->durable_moved_ns = now;
	m->seen_durable = d->audit.durable_seq;
	bk_metrics_render_all(d, now);
	if (!d->cfg.metrics_listen[0]) {
		bk_info(
		    "metrics: [metrics] listen is empty: /metrics and /healthz are off");
		return 0;
	}
	bk_config_metrics_url(&d->cfg, url, sizeof(url));
	bk_page_setup(d->cfg.local_url[0] ? d->cfg.local_url : d->cfg.cmd_url);
	bk_metrics_http_start(&m->snap, url);
	return 0;
}

void bk_metrics_stop(struct bk_daemon *d)
{
	struct bk_metrics *m = &d->metrics;

	bk_metrics_http_stop(&m->snap);
	for (int i = 0; i < 2; i++)
		if (m->snap.buf[i].text)
			munmap(m->snap.buf[i].text, m->snap.cap);
	m->snap.buf[0].text = m->snap.buf[1].text = NULL;
}
