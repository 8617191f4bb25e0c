#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <liburing.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "bk_invariant.h"
#include "bk_log.h"
#include "bk_loop.h"
#include "bk_rulestate.h"

enum {
	TAG_TICK = 1,
	TAG_POLL,
	TAG_SIGNAL,
	TAG_WRITE, /* the audit records, RWF_DSYNC */
	TAG_LOCAL_LISTEN,
	TAG_LOCAL_CONN, /* | slot << 8 | gen << 32 */
	TAG_HEAD_WRITE,
	TAG_HEAD_FSYNC,
	TAG_EXT_WRITE, /* zeros written ahead of the audit records (bk_audit.h) */
	TAG_EXT_FSYNC,
	TAG_GATHER, /* the wait for a batch's callers is over (gather_wanted) */
	TAG_ETCD    /* the firm-wide mirror changed (bk_etcd_wake_fd) */
};

struct loop {
	struct io_uring ring;
	struct bk_daemon *d;
	const char *log_path;
	int sig_fd;
	struct signalfd_siginfo sig;
	uint64_t etcd_wakes; /* the eventfd's counter, read by TAG_ETCD */
	struct __kernel_timespec tick_ts;
	uint64_t next_tick;
	const uint8_t *write_buf;
	size_t write_len;
	uint64_t write_off;
	int write_res;
	bool flushing;
	bool backlog; /* requests left waiting because the pending ring was full */
	bool flush_retry;
	uint64_t retry_at;
	uint64_t flush_start; /* submission of the flush in flight, for its latency */
	/* the audit head file, written after the log's fsync (bk_tail.h) */
	uint8_t head_buf[BK_AUDIT_HEAD_SLOT];
	uint64_t head_seq;
	int head_res;
	bool head_busy;
	uint64_t head_at;       /* the head file was last current (written) then */
	uint64_t head_retry_at; /* after a failed head write */
	uint64_t flushed_at;    /* the last log flush ended then */
	/* group commit gathering (gather_wanted) */
	uint32_t batch_want; /* callers the last flush answered + those waiting */
	uint64_t gather_until;
	struct __kernel_timespec gather_ts;
	bool gather_armed;
	/* preallocation: zeros [ext_off, ext_off + ext_len) being written */
	bool ext_busy;
	uint64_t ext_off;
	size_t ext_len;
	int ext_res;
	uint64_t ext_retry_at;
};

static struct io_uring_sqe *get_sqe(struct loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	BK_INVARIANT(sqe); /* the ring is sized so this never stays NULL */
	return sqe;
}

/* liburing 2.3 has no multishot timeout: an absolute timeout, re-armed. */
static void arm_tick(struct loop *l)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	l->tick_ts.tv_sec = (long long)(l->next_tick / 1000000000ull);
	l->tick_ts.tv_nsec = (long long)(l->next_tick % 1000000000ull);
	io_uring_prep_timeout(sqe, &l->tick_ts, 0, IORING_TIMEOUT_ABS);
	io_uring_sqe_set_data64(sqe, TAG_TICK);
}

static void arm_poll(struct loop *l)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	io_uring_prep_poll_multishot(sqe, l->d->srv.recv_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, TAG_POLL);
}

static void arm_local_listen(struct loop *l)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	io_uring_prep_poll_multishot(sqe, bk_local_listen_fd(&l->d->srv.local), POLLIN);
	io_uring_sqe_set_data64(sqe, TAG_LOCAL_LISTEN);
}

/* One-shot, armed once a connection is drained: a closed fd has none pending. */
static void arm_local_conn(struct loop *l, int slot)
{
	uint32_t gen;
	int fd = bk_local_conn_fd(&l->d->srv.local, slot, &gen);
	struct io_uring_sqe *sqe = get_sqe(l);

	io_uring_prep_poll_add(sqe, fd, POLLIN | POLLRDHUP);
	io_uring_sqe_set_data64(sqe, TAG_LOCAL_CONN | (uint64_t)slot << 8 |
	                                 (uint64_t)gen << 32);
}

static void on_local_conn(struct loop *l, uint64_t tag)
{
	if (bk_local_wake(&l->d->srv.local, (int)((tag >> 8) & 0xffffff),
	                  (uint32_t)(tag >> 32)))
		l->backlog = true;
}

/* [cluster]: apply a firm latch when the watch thread has it, not at the
 * next tick (2 ms apart while idle): a firm trip reaches engines sooner. */
static void arm_etcd(struct loop *l)
{
	int fd = bk_etcd_wake_fd(l->d);
	struct io_uring_sqe *sqe;

	if (fd < 0)
		return;
	sqe = get_sqe(l);
	io_uring_prep_read(sqe, fd, &l->etcd_wakes, sizeof(l->etcd_wakes), 0);
	io_uring_sqe_set_data64(sqe, TAG_ETCD);
}

static void arm_signal(struct loop *l)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	io_uring_prep_read(sqe, l->sig_fd, &l->sig, sizeof(l->sig), 0);
	io_uring_sqe_set_data64(sqe, TAG_SIGNAL);
}

/*
 * Keep zeros written ahead of the records (bk_audit.h), so that a flush
 * overwrites allocated blocks and its fdatasync needs no journal commit.
 * Never over bytes written or being written; a flush that would run into
 * the zeros being written waits for them (they start 512 KiB ahead).
 */
static void start_extend(struct loop *l)
{
	struct bk_audit *a = &l->d->audit;
	uint64_t written = l->flushing ? l->write_off + l->write_len : a->end;
	struct io_uring_sqe *sqe;

	if (l->ext_busy || l->d->tail.lost || bk_now_mono_ns() < l->ext_retry_at ||
	    !bk_audit_extend_wanted(a, written, &l->ext_off, &l->ext_len))
		return;
	if (!bk_audit_room_for_zeros(a)) { /* look again in a second */
		l->ext_retry_at = bk_now_mono_ns() + 1000ull * 1000 * 1000;
		return;
	}
	sqe = get_sqe(l);
	io_uring_prep_write(sqe, a->fd, bk_audit_zeros(), (unsigned)l->ext_len,
	                    l->ext_off);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, TAG_EXT_WRITE);
	sqe = get_sqe(l);
	io_uring_prep_fsync(sqe, a->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, TAG_EXT_FSYNC);
	l->ext_busy = true;
	l->ext_res = 0;
}

static void extend_done(struct loop *l, int fsync_res)
{
	int res = l->ext_res < 0                     ? l->ext_res
	          : (size_t)l->ext_res != l->ext_len ? -EIO
	                                             : fsync_res;

	l->ext_busy = false;
	bk_audit_extend_done(&l->d->audit, l->ext_off, l->ext_len, res < 0 ? res : 0);
	if (res < 0) { /* records append meanwhile, as without preallocation */
		bk_warn("audit log preallocation failed: %s; retrying in 1 s",
		        strerror(-res));
		l->ext_retry_at = bk_now_mono_ns() + 1000ull * 1000 * 1000;
	}
}

/*
 * Group commit, gathering: the callers a flush answers send their next
 * command ~50-150 us later, while the records that arrived during that
 * flush are already waiting. Flushing those at once made two half batches
 * that alternate for good (4 clients: 2 records per fsync, each caller
 * waiting a flush and a half). So right after a flush, the next one waits
 * until as many callers as the last one answered plus those waiting then
 * have a record staged, or BK_GATHER_NS after that flush ended, whichever
 * comes first. A caller alone (or one-shot callers) never waits: the want
 * is met by its own record. Trips are in effect before any of this.
 */
#define BK_GATHER_NS 200000ull /* 200 us */

/* Callers waiting for a record after seq (up to max). */
static uint32_t waiting_callers(const struct bk_daemon *d, uint64_t after, uint32_t max)
{
	uint32_t n = 0;

	for (uint32_t i = d->pend_tail; i != d->pend_head && n < max; i++) {
		const struct bk_pending *p = &d->pending[i & (BK_PENDING_MAX - 1)];

		if (p->seq > after && p->route.transport != BK_ROUTE_NONE)
			n++;
	}
	return n;
}

static bool gather_wanted(struct loop *l)
{
	uint64_t now;

	if (!l->gather_until)
		return false;
	now = bk_now_mono_ns();
	/* no waiting with the staging buffer or the pending ring full */
	if (now >= l->gather_until || !bk_pending_can_accept(l->d) ||
	    waiting_callers(l->d, l->d->audit.durable_seq, l->batch_want) >=
	        l->batch_want) {
		l->gather_until = 0;
		return false;
	}
	if (!l->gather_armed) {
		struct io_uring_sqe *sqe = get_sqe(l);

		l->gather_ts.tv_sec = (long long)(l->gather_until / 1000000000ull);
		l->gather_ts.tv_nsec = (long long)(l->gather_until % 1000000000ull);
		io_uring_prep_timeout(sqe, &l->gather_ts, 0, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, TAG_GATHER);
		l->gather_armed = true;
	}
	return true;
}

/* Write the staged audit records durably (RWF_DSYNC), one op, submitted now. */
static void start_flush(struct loop *l)
{
	struct bk_audit *a = &l->d->audit;
	struct io_uring_sqe *sqe;
	const uint8_t *buf;
	uint64_t off;

	if (l->flushing || l->flush_retry || !bk_audit_flush_ready(a) || gather_wanted(l))
		return;
	/* never into the zeros being written: wait for them */
	if (l->ext_busy &&
	    a->end + (a->flight_len ? a->flight_len : a->staged_len) > l->ext_off)
		return;
	bk_audit_flush_begin(&l->d->audit, &buf, &l->write_len, &off);
	if (l->d->tail.lost) {
		/* no writing into a file the path no longer names: fail it as
		 * such (waiting trips: ERR_NOT_DURABLE), the bytes kept for the
		 * relinked log */
		bk_audit_flush_done(&l->d->audit, -ESTALE);
		bk_pending_flush_failed(l->d, -ESTALE);
		l->flush_retry = true;
		l->retry_at = bk_now_mono_ns() + 10 * 1000 * 1000;
		return;
	}
	l->write_buf = buf;
	l->write_off = off;
	sqe = get_sqe(l);
	io_uring_prep_write(sqe, l->d->audit.fd, buf, (unsigned)l->write_len, off);
	/* one op, write + fdatasync of its range (RWF_DSYNC), not a linked
	 * write -> fsync pair: with DEFER_TASKRUN the link's second half is
	 * queued by this thread, so the pair cost a wake-up of the loop and a
	 * second io-wq hand-off between the write and the sync (bench/README.md) */
	sqe->rw_flags = RWF_DSYNC;
	io_uring_sqe_set_data64(sqe, TAG_WRITE);
	l->flushing = true;
	l->write_res = 0;
	l->flush_start = bk_now_mono_ns();
	/* the sync starts now, not after the replies this turn still sends */
	io_uring_submit(&l->ring);
}

/*
 * A short write says only that the disk took part of the batch. Writing the
 * rest learns why (ENOSPC, EFBIG, EDQUOT), which is what the operator needs
 * to read in the log and /healthz. The batch is rewritten whole on retry.
 */
static int short_write_errno(struct loop *l)
{
	size_t done = (size_t)l->write_res;
	ssize_t n = pwrite(l->d->audit.fd, l->write_buf + done, l->write_len - done,
	                   (off_t)(l->write_off + done));

	return n < 0 ? -errno : -EIO;
}

/*
 * The head file follows the log: written and fsynced once a log flush is
 * durable, never before, one write at a time, the latest head each time. It
 * never delays an ack (those went out with the log's fsync).
 */
static void start_head(struct loop *l)
{
	struct io_uring_sqe *sqe;
	uint64_t off;

	if (l->head_busy || !bk_tail_head_next(l->d, l->head_buf, &off, &l->head_seq))
		return;
	sqe = get_sqe(l);
	io_uring_prep_write(sqe, l->d->tail.head_fd, l->head_buf, sizeof(l->head_buf),
	                    off);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, TAG_HEAD_WRITE);
	sqe = get_sqe(l);
	io_uring_prep_fsync(sqe, l->d->tail.head_fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, TAG_HEAD_FSYNC);
	l->head_busy = true;
	l->head_res = 0;
}

/*
 * When the head file is written: once the log has been quiet for
 * BK_HEAD_QUIET_NS, or when it is BK_HEAD_LAG_NS behind while flushes keep
 * coming. Not after every flush: its write + fsync took the loop's CPU and
 * the disk's cache flush from the next command's flush (bench/README.md,
 * issue 16). The segment's head still follows every flush; a clean stop
 * writes the last head.
 */
#define BK_HEAD_QUIET_NS 1000000ull  /* 1 ms */
#define BK_HEAD_LAG_NS   20000000ull /* 20 ms */

static void maybe_head(struct loop *l, uint64_t now)
{
	bool quiet = !l->flushing && !bk_audit_flush_ready(&l->d->audit) &&
	             now - l->flushed_at >= BK_HEAD_QUIET_NS;

	if (l->head_busy || now < l->head_retry_at ||
	    (!quiet && now - l->head_at < BK_HEAD_LAG_NS))
		return;
	start_head(l);
	if (l->head_busy)
		l->head_at = now;
}

static void head_done(struct loop *l, int fsync_res)
{
	int res = fsync_res;

	if (l->head_res < 0)
		res = l->head_res;
	else if (l->head_res != (int)sizeof(l->head_buf))
		res = -EIO;
	l->head_busy = false;
	bk_tail_head_done(l->d, l->head_seq, res);
	/* flushes that ended meanwhile: their head when due (maybe_head); a
	 * failure is tried again in a second rather than every tick */
	if (res < 0)
		l->head_retry_at = bk_now_mono_ns() + 1000ull * 1000 * 1000;
}

static void flush_done(struct loop *l)
{
	int res = 0;

	/* RWF_DSYNC: an error of the write or of its sync; short: learn why */
	if (l->write_res < 0)
		res = l->write_res;
	else if ((size_t)l->write_res != l->write_len)
		res = short_write_errno(l);
	/* Written and fsynced into a file the path no longer names: not durable. */
	if (res >= 0 && bk_tail_check(l->d))
		res = -ESTALE;
	l->flushing = false;
	bk_metrics_fsync_done(l->d, bk_now_mono_ns() - l->flush_start, res >= 0);
	bk_audit_flush_done(&l->d->audit, res);
	if (res < 0) {
		bk_pending_flush_failed(l->d, res);
		l->flush_retry = true; /* in 10 ms, not in a tight loop */
		l->retry_at = bk_now_mono_ns() + 10 * 1000 * 1000;
		return;
	}
	if (l->d->flush_err)
		bk_info("audit log writable again");
	l->d->flush_err = 0;
	/* records staged meanwhile go to the disk before this flush's replies
	 * go out, once gathered (gather_wanted) */
	if (!l->d->tail.lost) {
		l->batch_want = waiting_callers(l->d, 0, BK_PENDING_MAX);
		l->gather_until = bk_now_mono_ns() + BK_GATHER_NS;
	}
	start_flush(l);
	bk_tail_publish(l->d);
	bk_pending_durable(l->d);
	l->flushed_at = bk_now_mono_ns();
	maybe_head(l, l->flushed_at);
	start_extend(l);
}

/* False when the pending ring filled up before this connection was drained. */
static bool drain_local_conn(struct loop *l, int slot)
{
	struct bk_local *lo = &l->d->srv.local;
	struct bk_request req;
	int rv;

	while (bk_pending_can_accept(l->d)) {
		rv = bk_local_recv(lo, slot, &req);
		if (rv == -EPIPE)
			return true;
		if (rv == -EAGAIN) { /* drained: poll it again */
			arm_local_conn(l, slot);
			return true;
		}
		bk_cmd_handle(l->d, &req);
	}
	return false;
}

/* Local connections first: they are the latency-critical trips. */
static void drain_requests(struct loop *l)
{
	struct bk_local *lo = &l->d->srv.local;
	struct bk_request req;

	l->backlog = false;
	/* a command may start cooldowns, re-arms, reports: the tick at full rate */
	bk_idle_poke(&l->d->idle, bk_now_mono_ns());
	for (int i = 0; i < BK_LOCAL_CONNS; i++)
		if (bk_local_ready(lo, i) && !drain_local_conn(l, i))
			goto full;
	while (bk_pending_can_accept(l->d)) {
		if (bk_server_recv(&l->d->srv, &req) < 0)
			return;
		bk_cmd_handle(l->d, &req);
	}
full:
	l->backlog = true;
}

static void on_tick(struct loop *l)
{
	uint64_t now = bk_now_mono_ns(), period;

	bk_tick(l->d, now);
	bk_server_sweep(&l->d->srv, now);
	if (l->flush_retry && now >= l->retry_at)
		l->flush_retry = false;
	/* the log's identity, about once a second when no flush checks it */
	if (now >= l->d->tail.next_check_ns) {
		l->d->tail.next_check_ns = now + BK_TAIL_CHECK_NS;
		bk_tail_check(l->d);
		if (!l->head_busy)
			bk_tail_check_head(l->d);
	}
	maybe_head(l, now);
	start_extend(l);
	if (l->d->tail.relink_wanted && !l->flushing && !l->ext_busy &&
	    bk_tail_relink(l->d) == 0)
		l->flush_retry = false; /* the records waiting go to the new log now */
	period = bk_idle_next_period(&l->d->idle, &l->d->cfg, now);
	/* a /metrics rendering goes a slice per tick: the next slice at full
	 * rate (a rendering alone does not hold the full rate: one is due every
	 * 100 ms) */
	if (l->d->metrics.stage != 0)
		period = l->d->cfg.tick_ns;
	l->next_tick += period;
	if (l->next_tick <= now) /* overran: skip ticks rather than burst */
		l->next_tick = now + period;
	arm_tick(l);
}

static void on_signal(struct loop *l, int res)
{
	if (res == (int)sizeof(l->sig)) {
		switch (l->sig.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			bk_info("signal %u: stopping; state stays as it is",
			        l->sig.ssi_signo);
			l->d->stop = true;
			break;
		case SIGHUP:
			if (l->log_path && !freopen(l->log_path, "a", stderr))
				l->log_path = NULL;
			else if (l->log_path)
				setvbuf(stderr, NULL, _IOLBF, 0); /* freopen reset it */
			if (l->log_path)
				bk_info("SIGHUP: log reopened");
			l->d->hup_pid = l->sig.ssi_pid;
			l->d->hup_uid = l->sig.ssi_uid;
			bk_reload(l->d);
			/* the operator's word to put a lost audit log back (bk_tail.h) */
			if (l->d->tail.lost)
				l->d->tail.relink_wanted = true;
			break;
		}
	}
	if (!l->d->stop)
		arm_signal(l);
}

static void on_cqe(struct loop *l, struct io_uring_cqe *cqe)
{
	uint64_t tag = io_uring_cqe_get_data64(cqe);

	switch (tag & 0xff) {
	case TAG_TICK:
		on_tick(l);
		break;
	case TAG_POLL:
		l->backlog = true;
		if (!(cqe->flags & IORING_CQE_F_MORE))
			arm_poll(l); /* multishot poll ends on its own at times */
		break;
	case TAG_SIGNAL:
		on_signal(l, cqe->res);
		break;
	case TAG_ETCD:
		bk_etcd_tick(l->d, bk_now_mono_ns());
		if (cqe->res >= 0 || cqe->res == -EINTR || cqe->res == -EAGAIN)
			arm_etcd(l);
		else /* the tick still applies changes */
			bk_err("firm-wide: wake-up eventfd: %s", strerror(-cqe->res));
		break;
	case TAG_WRITE:
		l->write_res = cqe->res;
		flush_done(l);
		break;
	case TAG_HEAD_WRITE:
		l->head_res = cqe->res;
		break;
	case TAG_HEAD_FSYNC:
		head_done(l, cqe->res);
		break;
	case TAG_EXT_WRITE:
		l->ext_res = cqe->res;
		break;
	case TAG_EXT_FSYNC:
		extend_done(l, cqe->res);
		break;
	case TAG_GATHER: /* start_flush looks again in this turn */
		l->gather_armed = false;
		break;
	case TAG_LOCAL_LISTEN:
		if (bk_local_accept(&l->d->srv.local) > 0)
			l->backlog = true;
		if (!(cqe->flags & IORING_CQE_F_MORE))
			arm_local_listen(l);
		break;
	case TAG_LOCAL_CONN:
		on_local_conn(l, tag);
		break;
	}
}

void bk_loop_signals(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGHUP);
	sigaddset(mask, SIGPIPE);
	/* Blocked in every thread (nng's inherit this mask), read via signalfd. */
	pthread_sigmask(SIG_BLOCK, mask, NULL);
}

/*
 * realtime_priority: the loop thread alone (nng's threads, started earlier,
 * stay as they are) preempts ordinary work on its core the moment a tick or
 * a command is due. Without the privilege it runs on, and says so.
 */
static void set_priority(const struct bk_config *cfg)
{
	struct sched_param sp = {.sched_priority = cfg->rt_priority};
	int rv;

	if (!cfg->rt_priority)
		return;
	if (cfg->busy_poll) {
		bk_warn("realtime_priority ignored with busy_poll: a spinning SCHED_FIFO "
		        "thread would starve its core");
		return;
	}
	if ((rv = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp)) != 0)
		bk_warn("realtime_priority %d: %s; the loop runs at normal priority",
		        cfg->rt_priority, strerror(rv));
}

static int setup(struct loop *l)
{
	struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER |
	                                     IORING_SETUP_DEFER_TASKRUN};
	sigset_t mask;
	int rv;

	rv = io_uring_queue_init_params(64, &l->ring, &p);
	if (rv == -EINVAL) /* kernel older than 6.1 */
		rv = io_uring_queue_init(64, &l->ring, 0);
	if (rv < 0)
		return rv;
	set_priority(&l->d->cfg);
	bk_loop_signals(&mask);
	l->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (l->sig_fd < 0) {
		rv = -errno;
		io_uring_queue_exit(&l->ring);
		return rv;
	}
	return 0;
}

/*
 * busy_poll: spin on the ring instead of sleeping in it. A tick then starts
 * when its timer fires, not when the scheduler gets round to waking the loop
 * (tens of microseconds at p99 on a shared VM), and so does a command. It
 * costs a whole core: give the daemon one of its own.
 */
static int spin_wait(struct loop *l)
{
	int rv;

	/* get_events: DEFER_TASKRUN completions are only posted on entering */
	while ((rv = io_uring_submit_and_get_events(&l->ring)) >= 0 &&
	       !io_uring_cq_ready(&l->ring))
		;
	return rv;
}

/* Stop: finish the flush in flight, make everything staged durable, answer. */
/*
 * A clean stop is part of the incident timeline (who stopped breakerd, and
 * when): the record is flushed with the last ones below. A crash writes
 * none; the next BOOT then follows the last record with no STOP before it.
 */
static void stage_stop(struct loop *l)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	char text[160];

	snprintf(
	    text, sizeof(text),
	    "breakerd %s stopped: signal %u from uid %u pid %u; state stays as it is",
	    l->d->cfg.instance, l->sig.ssi_signo, l->sig.ssi_uid, l->sig.ssi_pid);
	rec.has_kind = 1;
	rec.kind = BREAKER__AUDIT_RECORD__KIND__STOP;
	rec.reason = text;
	if (bk_record_stage_system(l->d, &rec) < 0)
		bk_warn("could not stage the STOP record");
}

static void finish(struct loop *l)
{
	struct io_uring_cqe *cqe;
	uint64_t off, seq;

	/* submit first: a flush that ends here may just have queued a head write */
	while ((l->flushing || l->head_busy || l->ext_busy) &&
	       io_uring_submit(&l->ring) >= 0 && io_uring_wait_cqe(&l->ring, &cqe) == 0) {
		on_cqe(l, cqe);
		io_uring_cqe_seen(&l->ring, cqe);
	}
	/* baselines moved in the last second are not recorded yet (one
	 * RULE_STATE per strategy per second): the next boot needs them */
	bk_rulestate_flush(l->d);
	if (l->d->stop)
		stage_stop(l);
	if (!bk_tail_check(l->d) && bk_audit_flush_sync(&l->d->audit) == 0) {
		bk_tail_publish(l->d);
		bk_pending_durable(l->d);
	}
	/* the last head, in place: the next boot compares the log with it */
	if (bk_tail_head_next(l->d, l->head_buf, &off, &seq))
		bk_tail_head_done(l->d, seq,
		                  pwrite(l->d->tail.head_fd, l->head_buf,
		                         sizeof(l->head_buf),
		                         (off_t)off) != (ssize_t)sizeof(l->head_buf) ||
		                          fdatasync(l->d->tail.head_fd) < 0
		                      ? -EIO
		                      : 0);
	/* nng sends asynchronously: give the last acks a moment before close */
	nng_msleep(20);
	io_uring_queue_exit(&l->ring);
	close(l->sig_fd);
}

int bk_loop_run(struct bk_daemon *d, const char *log_path)
{
	struct loop l = {.d = d, .log_path = log_path};
	struct io_uring_cqe *cqe;
	unsigned head, n;
	int rv;

	if ((rv = setup(&l)) < 0)
		return rv;
	l.next_tick = bk_now_mono_ns() + d->cfg.tick_ns;
	arm_tick(&l);
	arm_poll(&l);
	if (bk_local_listen_fd(&d->srv.local) >= 0)
		arm_local_listen(&l);
	arm_signal(&l);
	arm_etcd(&l);
	l.backlog = true; /* requests may have queued while booting */
	while (!d->stop) {
		if (l.backlog)
			drain_requests(&l);
		start_flush(&l);
		rv = d->cfg.busy_poll ? spin_wait(&l)
		                      : io_uring_submit_and_wait(&l.ring, 1);
		/* EBUSY/EAGAIN: completions to reap first, or a transient shortage */
		if (rv < 0 && rv != -EINTR && rv != -ETIME && rv != -EBUSY &&
		    rv != -EAGAIN) {
			bk_err("io_uring: %s", strerror(-rv));
			break;
		}
		n = 0;
		io_uring_for_each_cqe(&l.ring, head, cqe)
		{
			on_cqe(&l, cqe);
			n++;
		}
		io_uring_cq_advance(&l.ring, n);
	}
	finish(&l);
	return d->stop ? 0 : rv;
}
