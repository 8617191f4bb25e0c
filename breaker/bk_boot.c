/*
 * bk_boot - start-up: lock the instance, map the segment, replay the audit
 * log into the state, repair or quarantine the log, and publish.
 *
 * Boot fails closed: a log that is damaged, unreadable as a log, or missing
 * while the state directory says one existed starts the daemon with global
 * HALTED under the audit_corrupt latch, which only a forced resume clears.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bk_boot.h"
#include "bk_cmd.h"
#include "bk_log.h"
#include "bk_trust.h"

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* The directory a socket URL's file lives in, if it is a path (ipc://, unix://). */
static bool url_dir(const char *url, char *dir, size_t len)
{
	const char *p = strncmp(url, "ipc://", 6) == 0    ? url + 6
	                : strncmp(url, "unix://", 7) == 0 ? url + 7
	                                                  : NULL;
	const char *slash = p ? strrchr(p, '/') : NULL;

	if (!slash || *p != '/' || slash == p || (size_t)(slash - p) >= len)
		return false;
	memcpy(dir, p, (size_t)(slash - p));
	dir[slash - p] = '\0';
	return true;
}

/*
 * Whoever can write to the run directory can move our sockets aside and
 * answer for us; to the state directory, rewrite history. Both must be ours
 * alone, and so must every directory above them (root's, or sticky).
 */
static int check_dirs(const struct bk_daemon *d, char *err, size_t errlen)
{
	const struct bk_config *cfg = &d->cfg;
	const char *urls[] = {cfg->cmd_url, cfg->pub_url, cfg->local_url};
	char dir[PATH_MAX], why[PATH_MAX + 256];
	uid_t me = geteuid();
	struct stat st;
	int rv;

	if (cfg->daemon_uid_set && cfg->daemon_uid != me) {
		snprintf(err, errlen,
		         "[breaker] daemon_user is uid %u, but breakerd runs as uid %u: "
		         "clients would refuse it",
		         (unsigned)cfg->daemon_uid, (unsigned)me);
		return -EPERM;
	}
	if ((rv = bk_trust_dir(cfg->run_dir, me, why, sizeof(why))) < 0 ||
	    (rv = bk_trust_dir(cfg->state_dir, me, why, sizeof(why))) < 0)
		goto refuse;
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
		if (url_dir(urls[i], dir, sizeof(dir)) && stat(dir, &st) == 0 &&
		    (rv = bk_trust_dir(dir, me, why, sizeof(why))) < 0)
			goto refuse;
	return 0;
refuse:
	snprintf(err, errlen,
	         "unsafe directory: %s (breakerd runs as uid %u; remove or chown/chmod "
	         "it, or choose another run_dir/state_dir)",
	         why, (unsigned)me);
	return rv;
}

/* One daemon per instance: an flock held for the daemon's life. */
static int lock_instance(struct bk_daemon *d, char *err, size_t errlen)
{
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/breakerd.lock", d->cfg.state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "another breakerd holds instance '%s' (%s)",
		         d->cfg.instance, path);
		close(fd);
		return -EBUSY;
	}
	d->lock_fd = fd;
	return 0;
}

#define MARKER_HEAD "head\n"

static void marker_path(const struct bk_daemon *d, char *buf, size_t len)
{
	snprintf(buf, len, "%s/audit.log.created", d->cfg.state_dir);
}

static int write_marker(const struct bk_daemon *d, bool head)
{
	char path[PATH_MAX + 32];
	int fd;

	marker_path(d, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	/* Its existence is the fact; "head" in it: the log has a head file
	 * (written after the head file, so an older log without one still boots) */
	if (head && pwrite(fd, MARKER_HEAD, strlen(MARKER_HEAD), 0) < 0)
		bk_warn("%s: %s", path, strerror(errno));
	/* make it survive a crash like the log */
	fsync(fd);
	close(fd);
	return 0;
}

struct replay_ctx {
	struct bk_daemon *d;
	uint64_t bad_offset;
	uint64_t bad_seq;
};

static int replay_one(const Breaker__AuditRecord *rec, uint64_t offset, void *arg)
{
	struct replay_ctx *c = arg;

	if (bk_state_replay(&c->d->state, rec) == 0) {
		bk_cmd_remember(c->d, rec);
		if (rec->kind == BREAKER__AUDIT_RECORD__KIND__REGISTER && rec->has_slot &&
		    rec->slot < BK_MAX_STRATEGIES)
			c->d->remote_declared[rec->slot] = rec->remote_telemetry;
		bk_rulestate_replay(c->d, rec);   /* reconciliations, baselines */
		bk_tick_replay_rebase(c->d, rec); /* an operator's rule base */
		/* a group scope has no row in the incident table (-2) */
		bk_incident_apply(&c->d->incidents, rec,
		                  rec->group ? -2
		                  : rec->strategy
		                      ? bk_state_find(&c->d->state, rec->strategy)
		                      : BK_GLOBAL);
		return 0;
	}
	c->bad_offset = offset;
	c->bad_seq = rec->seq;
	return 1;
}

/* The marker says a head file was written beside this log. */
static bool marker_says_head(const struct bk_daemon *d)
{
	char path[PATH_MAX + 32], buf[8] = "";
	int fd;

	marker_path(d, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = '\0';
	close(fd);
	return strncmp(buf, MARKER_HEAD, strlen(MARKER_HEAD)) == 0;
}

struct heads {
	struct bk_audit_head file, shm;
	bool have_file, have_shm;
	char problem[200]; /* the head file itself is damaged or missing */
};

/*
 * What the log must at least hold: the head file beside it, and the head the
 * previous daemon left in the segment (gone after a reboot). Read before the
 * log is scanned.
 */
static void read_heads(struct bk_daemon *d, struct heads *h)
{
	char path[PATH_MAX + 16];
	int rv;

	memset(h, 0, sizeof(*h));
	h->have_shm = !d->shm.created && bk_tail_shm_head(d->shm.shm, &h->shm);
	if (bk_audit_head_path(d->cfg.audit_path, path, sizeof(path)) < 0)
		return;
	rv = bk_audit_head_read(path, &h->file);
	h->have_file = rv == 0 && h->file.seq;
	if (rv == -EBADMSG)
		snprintf(h->problem, sizeof(h->problem),
		         "audit head file %s is damaged (no valid slot)", path);
	else if (rv == -ENOENT && marker_says_head(d))
		snprintf(h->problem, sizeof(h->problem),
		         "audit head file %s is missing, but the log had one", path);
	else if (rv < 0 && rv != -ENOENT)
		snprintf(h->problem, sizeof(h->problem), "audit head file %s: %s", path,
		         strerror(-rv));
}

static uint64_t heads_seq(const struct heads *h)
{
	uint64_t f = h->have_file ? h->file.seq : 0, s = h->have_shm ? h->shm.seq : 0;

	return f > s ? f : s;
}

/*
 * A log shorter than its head, or whose record at the head's seq differs, is
 * corruption (cut at a record boundary, rolled back, replaced), never a torn
 * tail. The scan noted the record at heads_seq(): the higher head is judged
 * by seq and hash, the other one only by seq (and by hash where both agree
 * on the seq).
 */
static void judge_heads(const struct heads *h, struct bk_audit_scan *scan,
                        struct bk_boot_report *r)
{
	if (bk_tail_judge(scan, h->have_file ? &h->file : NULL,
	                  h->have_shm ? &h->shm : NULL))
		return;
	if (h->problem[0] && !r->corrupt) {
		r->corrupt = true;
		snprintf(r->why, sizeof(r->why), "%s", h->problem);
	}
}

/* Scan + replay; decide what the log's condition means. */
static int replay_log(struct bk_daemon *d, struct bk_boot_report *r, char *err,
                      size_t errlen)
{
	struct replay_ctx c = {.d = d};
	char marker[PATH_MAX + 32];
	struct heads h;
	int rv;

	read_heads(d, &h);
	rv = bk_audit_scan_to(d->cfg.audit_path, replay_one, &c, heads_seq(&h), &r->scan);
	if (rv == -ENOENT) {
		marker_path(d, marker, sizeof(marker));
		memset(&r->scan, 0, sizeof(r->scan));
		if (access(marker, F_OK) == 0) {
			r->corrupt = true;
			snprintf(r->why, sizeof(r->why),
			         "audit log %s is missing, but %s "
			         "says one existed",
			         d->cfg.audit_path, marker);
		} else if (!d->shm.created) {
			/* the state dir went, the segment stayed: history was lost */
			r->corrupt = true;
			snprintf(r->why, sizeof(r->why),
			         "audit log %s is missing, but a "
			         "previous daemon's segment %s%s exists",
			         d->cfg.audit_path, BK_SHM_PREFIX, d->cfg.instance);
		}
		r->fresh = true;
		return 0;
	}
	if (rv < 0) {
		snprintf(err, errlen, "cannot read audit log %s: %s", d->cfg.audit_path,
		         strerror(-rv));
		return rv;
	}
	marker_path(d, marker, sizeof(marker));
	if (r->scan.file_len == 0 && access(marker, F_OK) == 0) {
		/* emptied, not torn: a log that existed has lost every record */
		r->scan.verdict = BK_AUDIT_BAD_HEADER;
		snprintf(r->scan.why, sizeof(r->scan.why),
		         "audit log is empty, but %s says "
		         "it held records",
		         marker);
	}
	if (rv == 1) {
		r->scan.verdict = BK_AUDIT_CORRUPT;
		r->scan.valid_len = c.bad_offset;
		snprintf(r->scan.why, sizeof(r->scan.why),
		         "record %llu at offset %llu contradicts the records before it",
		         (unsigned long long)c.bad_seq, (unsigned long long)c.bad_offset);
	}
	judge_heads(&h, &r->scan, r);
	return 0;
}

/* Bring the file to a verified state: cut a torn tail, or quarantine. */
static int repair_log(struct bk_daemon *d, struct bk_boot_report *r, char *err,
                      size_t errlen)
{
	const char *path = d->cfg.audit_path;
	int rv = 0;

	switch (r->scan.verdict) {
	case BK_AUDIT_OK:
		return 0;
	case BK_AUDIT_TORN_TAIL:
		r->torn_bytes =
		    r->scan.data_len - r->scan.valid_len; /* not the zeros after */
		/* cut, never discarded: the bytes go aside first */
		rv = bk_audit_keep_tail(path, &r->scan, r->aside, sizeof(r->aside));
		if (rv == 0)
			rv = bk_audit_truncate(path, &r->scan);
		/* a head-file problem found first (r->corrupt) stays in the text */
		snprintf(r->why + (r->corrupt ? strlen(r->why) : 0),
		         sizeof(r->why) - (r->corrupt ? strlen(r->why) : 0),
		         "%s%s; cut bytes kept as %s", r->corrupt ? "; " : "",
		         r->scan.why, r->aside[0] ? r->aside : "(none)");
		break;
	case BK_AUDIT_CORRUPT:
	case BK_AUDIT_BAD_HEADER:
		r->corrupt = true;
		rv = bk_audit_quarantine(path, &r->scan, r->aside, sizeof(r->aside));
		snprintf(r->why, sizeof(r->why),
		         "audit log damaged: %s; kept aside as %s", r->scan.why,
		         r->aside);
		r->torn_bytes = 0;
		break;
	}
	if (rv < 0) {
		snprintf(err, errlen, "cannot repair audit log %s: %s", path,
		         strerror(-rv));
		return rv;
	}
	/* Describe the repaired file afresh for the appender. */
	rv = bk_audit_scan(path, NULL, NULL, &r->scan);
	if (rv == 0 && r->scan.verdict == BK_AUDIT_TORN_TAIL && r->scan.valid_len == 0)
		return 0; /* an empty file: open writes the header */
	if (rv < 0 || r->scan.verdict != BK_AUDIT_OK) {
		snprintf(err, errlen, "audit log %s still does not verify after repair",
		         path);
		return rv < 0 ? rv : -EIO;
	}
	return 0;
}

/*
 * Engines never see the state get less restrictive through a crash: a trip
 * that flipped the segment but whose record never became durable is
 * restored as a latch (audited now), from what the segment still shows.
 */
static int restore_scope(struct bk_daemon *d, int slot, uint64_t seen,
                         const struct bk_boot_report *r)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	const struct bk_scope *sc = bk_state_cscope(&d->state, slot);
	unsigned reason = BK_STATE_REASON(seen);
	unsigned mode = BK_STATE_MODE(seen) > BK_HALTED ? BK_HALTED : BK_STATE_MODE(seen);
	char text[200];

	if (!bk_reason_operator(reason) && reason != BK_R_AUDIT_CORRUPT)
		reason = BK_R_MANUAL_HALT;
	/* per latch: an audit_corrupt halt over it must not hide it (once that
	 * is cleared, the stop engines saw must still hold) */
	if (mode <= bk_scope_mode(sc) &&
	    (reason == BK_R_AUDIT_CORRUPT || mode <= sc->latches[reason].mode))
		return 0;
	/* Say what is known: a log that is missing or was set aside lost the
	 * record; only with the log intact was the record never durable. */
	snprintf(text, sizeof(text),
	         "restored at boot: engines saw %s (%s) before the daemon stopped; %s",
	         bk_mode_str((enum bk_mode)mode), bk_reason_name(reason),
	         r->fresh && r->corrupt
	             ? "its audit record went with the audit log, which is missing "
	               "(removed)"
	         : r->corrupt ? "its audit record is not in what is left of the "
	                        "damaged audit log (set aside)"
	                      : "its audit record was not durable");
	bk_warn("%s %s", sc->name[0] ? sc->name : "global", text);
	if (mode < BK_CAUTIOUS)
		return 0;
	rec.reason = text;
	return bk_protect_trip(d, slot, reason, (int)mode, &rec, true);
}

/* global_seen: the global word as the old daemon left it (read before the
 * audit_corrupt trip publishes over it). */
static int restore_visible(struct bk_daemon *d, uint64_t global_seen,
                           const struct bk_boot_report *r)
{
	const struct bk_shm *shm = d->shm.shm;
	uint32_t old = atomic_load(&shm->hdr.strategy_count);
	int rv;

	if (d->shm.created)
		return 0;
	if ((rv = restore_scope(d, BK_GLOBAL, global_seen, r)) < 0)
		return rv;
	/* groups first: a member's word a group's latch won is the group's */
	for (uint32_t g = 0;
	     g < d->state.n_groups && g < atomic_load(&shm->hdr.group_count); g++) {
		if (strncmp(shm->groups[g].name, d->state.groups[g].name, BK_NAME_MAX))
			continue;
		if ((rv = restore_scope(d, BK_GROUP_SLOT(g),
		                        atomic_load(&shm->groups[g].state), r)) < 0)
			return rv;
	}
	for (uint32_t i = 0; i < d->state.n_strategies && i < old; i++) {
		uint64_t seen = atomic_load(&shm->strategies[i].state);

		if (d->state.strategies[i].gone || /* a tombstone: published HALTED */
		    strncmp(shm->strategies[i].name, d->state.strategies[i].name,
		            BK_NAME_MAX))
			continue;
		if (BK_STATE_HOLDER(seen) != 0) /* folded from a group, restored there */
			continue;
		if ((rv = restore_scope(d, (int)i, seen, r)) < 0)
			return rv;
	}
	return 0;
}

static int stage_boot_records(struct bk_daemon *d, const struct bk_boot_report *r)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	char text[600];
	uint64_t global_seen;

	/* the repair is its own record, with its own seq, before the boot's */
	if (r->torn_bytes) {
		Breaker__AuditRecord rep = BREAKER__AUDIT_RECORD__INIT;

		snprintf(text, sizeof(text), "torn tail cut: %llu bytes; %s",
		         (unsigned long long)r->torn_bytes, r->why);
		rep.has_kind = rep.has_log_cut_bytes = 1;
		rep.kind = BREAKER__AUDIT_RECORD__KIND__LOG_REPAIR;
		rep.log_cut_bytes = r->torn_bytes;
		rep.reason = text;
		if (r->aside[0])
			rep.log_aside = (char *)r->aside;
		if (bk_record_stage_system(d, &rep) < 0)
			return -EIO;
	}
	snprintf(text, sizeof(text), "breakerd %s started: %llu records replayed%s%s",
	         d->cfg.instance, (unsigned long long)r->scan.records,
	         r->why[0] ? "; " : "", r->why);
	rec.has_kind = 1;
	rec.kind = BREAKER__AUDIT_RECORD__KIND__BOOT;
	rec.reason = text;
	if (r->corrupt && r->aside[0])
		rec.log_aside = (char *)r->aside;
	if (bk_record_stage_system(d, &rec) < 0)
		return -EIO;
	/* audit_corrupt first, so that it is the reason engines read; what the
	 * old daemon published is then restored under it */
	global_seen = atomic_load(&d->shm.shm->global.state);
	if (r->corrupt && bk_boot_trip_corrupt(d, r->why) < 0)
		return -EIO;
	return restore_visible(d, global_seen, r);
}

int bk_boot_trip_corrupt(struct bk_daemon *d, const char *why)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;

	rec.reason = (char *)why;
	return bk_protect_trip(d, BK_GLOBAL, BK_R_AUDIT_CORRUPT, BK_HALTED, &rec, true);
}

static int register_configured(struct bk_daemon *d)
{
	for (int i = 0; i < d->cfg.n_strategies; i++) {
		Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
		int slot = bk_state_register(&d->state, d->cfg.strategies[i]);

		if (slot == -EEXIST)
			continue;
		if (slot < 0) {
			bk_err("cannot register configured strategy '%s': %s",
			       d->cfg.strategies[i], strerror(-slot));
			continue;
		}
		rec.has_kind = rec.has_slot = 1;
		rec.kind = BREAKER__AUDIT_RECORD__KIND__REGISTER;
		rec.strategy = d->cfg.strategies[i];
		rec.slot = (uint32_t)slot;
		if (bk_record_stage_system(d, &rec) < 0)
			return -EIO;
	}
	return 0;
}

/*
 * Everything to shm. Slots a previous daemon published beyond what the log
 * knows (or under another name) are stale: engines that resolved them are
 * held HALTED rather than told ACTIVE.
 */
static void publish_all(struct bk_daemon *d)
{
	uint32_t old = atomic_load(&d->shm.shm->hdr.strategy_count);

	for (uint32_t g = 0; g < d->state.n_groups; g++) {
		bk_shm_add_group(&d->shm, (int)g, d->state.groups[g].name);
	}
	for (uint32_t g = 0; g < d->state.n_groups; g++)
		bk_group_publish(d, (int)g); /* members are republished below too */
	for (uint32_t i = 0; i < d->state.n_strategies; i++) {
		bk_shm_add_strategy(&d->shm, (int)i, d->state.strategies[i].name);
		bk_publish_scope(d, (int)i);
	}
	for (uint32_t i = d->state.n_strategies; i < old && i < BK_MAX_STRATEGIES; i++) {
		bk_warn("shm slot %u ('%s') is not in the audit log: held HALTED", i,
		        d->shm.shm->strategies[i].name);
		bk_shm_publish(&d->shm, (int)i,
		               BK_STATE_PACK(BK_HALTED, BK_R_AUDIT_CORRUPT, 0),
		               1u << BK_R_AUDIT_CORRUPT, bk_now_wall_ns());
	}
	bk_publish_scope(d, BK_GLOBAL);
	bk_shm_heartbeat(&d->shm, bk_now_mono_ns());
	bk_shm_changed(&d->shm);
}

int bk_boot(struct bk_daemon *d, struct bk_boot_report *r, char *err, size_t errlen)
{
	struct bk_shm_params sp = {
	    .instance = d->cfg.instance,
	    .mode = d->cfg.shm_mode,
	    .tick_ns = d->cfg.tick_ns,
	    .heartbeat_bound_ns = d->cfg.heartbeat_bound_ns,
	};
	int rv;

	memset(r, 0, sizeof(*r));
	/* Before anything can fail: bk_boot_close closes only what was opened
	 * (a zeroed descriptor is stdin). */
	d->lock_fd = -1;
	d->tail.head_fd = -1;
	d->audit.fd = -1;
	d->tel.fd = -1;
	d->boot_mono_ns = bk_now_mono_ns();
	/* answers go back the way their request came (an in-process test may
	 * set its own after boot) */
	d->replier = (struct bk_replier){.send = bk_server_reply, .ctx = &d->srv};
	gethostname(d->host, sizeof(d->host) - 1);
	if ((rv = mkdir_p(d->cfg.state_dir, 0750)) < 0 ||
	    (rv = mkdir_p(d->cfg.run_dir, 0750)) < 0) {
		snprintf(err, errlen, "cannot create %s or %s: %s", d->cfg.state_dir,
		         d->cfg.run_dir, strerror(-rv));
		return rv;
	}
	if ((rv = check_dirs(d, err, errlen)) < 0)
		return rv;
	if ((rv = lock_instance(d, err, errlen)) < 0)
		return rv;
	if ((rv = bk_state_init(&d->state)) < 0)
		return rv;
	if ((rv = bk_shm_open(&d->shm, &sp, err, errlen)) < 0) {
		if (!err[0])
			snprintf(err, errlen, "shared memory %s%s: %s", BK_SHM_PREFIX,
			         d->cfg.instance, strerror(-rv));
		return rv;
	}
	if ((rv = bk_tel_open(&d->tel, d->cfg.instance, d->cfg.tel_mode, err, errlen)) <
	    0) {
		if (!err[0])
			snprintf(err, errlen, "telemetry segment %s%s%s: %s",
			         BK_SHM_PREFIX, d->cfg.instance, BK_TEL_SUFFIX,
			         strerror(-rv));
		return rv;
	}
	if ((rv = replay_log(d, r, err, errlen)) < 0 ||
	    (rv = repair_log(d, r, err, errlen)) < 0)
		return rv;
	if ((rv = bk_audit_open(&d->audit, d->cfg.audit_path,
	                        r->fresh ? NULL : &r->scan)) < 0) {
		snprintf(err, errlen, "cannot open audit log %s: %s", d->cfg.audit_path,
		         strerror(-rv));
		return rv;
	}
	/* zeros ahead of the records: a flush then changes no size (bk_audit.h) */
	if ((rv = bk_audit_prezero(&d->audit)) < 0)
		bk_warn("audit log %s: no preallocation (%s): appending as before",
		        d->cfg.audit_path, strerror(-rv));
	if ((rv = write_marker(d, false)) < 0 || (rv = stage_boot_records(d, r)) < 0 ||
	    (rv = register_configured(d)) < 0 ||
	    (rv = bk_groups_join_configured(d, &d->cfg, "[strategies] groups", false)) <
	        0 ||
	    (rv = bk_audit_flush_sync(&d->audit)) < 0) {
		snprintf(err, errlen, "cannot write audit log %s: %s", d->cfg.audit_path,
		         strerror(rv < 0 ? -rv : EIO));
		return rv;
	}
	/* the head, then the marker that says a head exists: never the reverse */
	if ((rv = bk_tail_boot(d)) < 0 || (rv = write_marker(d, true)) < 0) {
		snprintf(err, errlen, "cannot write the audit head beside %s: %s",
		         d->cfg.audit_path, strerror(-rv));
		return rv;
	}
	bk_reload_bind_rules(d);
	bk_tick_restore_cooldowns(d);
	publish_all(d);
	return 0;
}

void bk_boot_close(struct bk_daemon *d)
{
	bk_metrics_stop(d);
	/* answers still waiting go nowhere now (their callers time out) */
	for (uint32_t i = d->pend_tail; i != d->pend_head; i++) {
		struct bk_pending *p = &d->pending[i & (BK_PENDING_MAX - 1)];

		bk_reply_send(d, &p->route, NULL, 0); /* releases the route */
		free(p->reply);
		p->reply = NULL;
	}
	d->pend_tail = d->pend_head;
	bk_server_close(&d->srv);
	bk_shm_close(&d->shm, true);
	bk_tel_close(&d->tel);
	bk_tail_close(d);
	bk_audit_close(&d->audit);
	bk_state_free(&d->state);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	d->lock_fd = -1;
}
