/*
 * bk_reload - binding strategies to their rules, and SIGHUP's reload of
 * the rules (audited as a CONFIG record, applied or refused).
 */
#include <stddef.h>
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_cmd.h"
#include "bk_daemon.h"
#include "bk_log.h"

void bk_reload_bind_rules(struct bk_daemon *d)
{
	for (uint32_t i = 0; i < d->state.n_strategies; i++) {
		/* an unregistered slot has no rules: none judges it, none warns */
		d->slots[i].rules =
		    d->state.strategies[i].gone
		        ? NULL
		        : bk_rules_for(&d->cfg.rules, d->state.strategies[i].name);
		d->slots[i].is_remote =
		    d->remote_declared[i] ||
		    bk_config_remote(&d->cfg, d->state.strategies[i].name);
	}
	bk_rulestate_rehash(d); /* status and CONFIG records show it */
	bk_tickskip_all(&d->skip);
}

/* The CONFIG record of a reload (applied or refused), and its event for watch. */
static void config_record(struct bk_daemon *d, const char *hash, const char *diff,
                          const char *what)
{
	Breaker__AuditRecord rec = BREAKER__AUDIT_RECORD__INIT;
	Breaker__Event ev = BREAKER__EVENT__INIT;
	uint8_t buf[2048];
	char text[600];

	snprintf(text, sizeof(text), "SIGHUP from pid %u uid %u: %s", d->hup_pid,
	         d->hup_uid, what);
	rec.has_kind = 1;
	rec.kind = BREAKER__AUDIT_RECORD__KIND__CONFIG;
	rec.reason = text;
	rec.rules_hash = (char *)hash;
	rec.config_diff = (char *)diff;
	/* the record names the signal's sender, not breakerd */
	rec.has_wall_ns = rec.has_mono_ns = rec.has_uid = rec.has_pid = 1;
	rec.wall_ns = bk_now_wall_ns();
	rec.mono_ns = bk_now_mono_ns();
	rec.uid = d->hup_uid;
	rec.pid = d->hup_pid;
	rec.host = d->host;
	if (bk_audit_stage(&d->audit, &rec) < 0) {
		bk_err("SIGHUP: the CONFIG audit record could not be staged");
		return;
	}
	ev.has_audit_seq = ev.has_kind = ev.has_actor_uid = ev.has_wall_ns = 1;
	ev.audit_seq = rec.seq;
	ev.kind = BREAKER__AUDIT_RECORD__KIND__CONFIG;
	ev.actor_uid = d->hup_uid;
	ev.wall_ns = rec.wall_ns;
	ev.reason = diff ? (char *)diff : text;
	if (breaker__event__get_packed_size(&ev) <= sizeof(buf))
		bk_server_publish(&d->srv, buf, breaker__event__pack(&ev, buf));
}

/*
 * A reconciliation judged while its rule was off is not judged again when a
 * reload switches the rule on: it could only be an old snapshot tripping now.
 */
static void retire_reconciliations(struct bk_daemon *d, const bool *was_on)
{
	for (uint32_t i = 0; i < d->state.n_strategies; i++) {
		struct bk_recon *r = &d->slots[i].eval.recon;

		if (was_on[i] || !d->slots[i].rules ||
		    !d->slots[i].rules[BK_RULE_RECONCILIATION].enabled)
			continue;
		if (r->verdict == BK_RV_OK || r->verdict == BK_RV_BREAK) {
			r->verdict = BK_RV_UNKNOWN;
			snprintf(r->why, sizeof(r->why),
			         "judged while the rule was off; post a new one");
		}
		d->slots[i].eval.violating[BK_RULE_RECONCILIATION] = false;
	}
}

/*
 * Did the file's [auth] (or its [tls] roles) change? A reload applies rules
 * only: an operator who revoked a user's resume by reload must be told it is
 * not in force (both configs come from bk_config_defaults' zeroed struct, so
 * unused array entries compare equal).
 */
static bool auth_changed(const struct bk_config *now, const struct bk_config *file)
{
	size_t from = offsetof(struct bk_config, acl),
	       to = offsetof(struct bk_config, allow_plaintext_loopback);

	return memcmp((const char *)now + from, (const char *)file + from, to - from) ||
	       now->n_tls_roles != file->n_tls_roles ||
	       memcmp(now->tls_roles, file->tls_roles, sizeof(now->tls_roles));
}

/* The rules' canonical text, then the limits': a CONFIG diff names both. */
static void rules_and_limits_text(const struct bk_daemon *d, char *buf, size_t len)
{
	size_t n = bk_rulestate_text(&d->cfg.rules, buf, len);

	if (n < len)
		bk_limits_text(&d->cfg.limits, buf + n, len - n);
}

/* New limits take effect at once, in every scope's entry, one change_seq bump. */
static void republish_limits(struct bk_daemon *d)
{
	bk_publish_scope(d, BK_GLOBAL);
	for (uint32_t i = 0; i < d->state.n_strategies; i++)
		bk_publish_scope(d, (int)i);
	bk_shm_changed(&d->shm);
}

/*
 * [strategies] groups: pairs new in the file are joined (stricter only);
 * pairs gone from it are not left (that would release a strategy without a
 * command and its checks): they are named in buf for the CONFIG record.
 */
static void reload_groups(struct bk_daemon *d, const struct bk_config *next, char *buf,
                          size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < d->cfg.n_groups; i++) {
		bool kept = false;

		for (int j = 0; j < next->n_groups && !kept; j++)
			kept = !strcmp(d->cfg.groups[i].strategy,
			               next->groups[j].strategy) &&
			       !strcmp(d->cfg.groups[i].group, next->groups[j].group);
		if (!kept && n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%s=%s", n ? ", " : "",
			                      d->cfg.groups[i].strategy,
			                      d->cfg.groups[i].group);
	}
	memcpy(d->cfg.groups, next->groups, sizeof(d->cfg.groups));
	d->cfg.n_groups = next->n_groups;
	if (bk_groups_join_configured(d, &d->cfg, "[strategies] groups (SIGHUP)", true) <
	    0)
		bk_err(
		    "SIGHUP: [strategies] groups: an audit record could not be staged");
	if (*buf)
		bk_warn("SIGHUP: [strategies] groups no longer lists %s: NOT left "
		        "(use breaker group remove)",
		        buf);
}

void bk_reload(struct bk_daemon *d)
{
	/* off the tick, and rare: static rather than on the loop's stack */
	static struct bk_config next;
	static char old_text[1 << 18], new_text[1 << 18], diff[1024];
	static bool was_on[BK_MAX_STRATEGIES];
	char err[512], hash[BK_RULES_HASH_LEN], why[1200], kept[400];

	if (!d->config_path) {
		bk_info("SIGHUP: no config file; rules stay the embedded defaults");
		return;
	}
	rules_and_limits_text(d, old_text, sizeof(old_text));
	if (bk_config_defaults(&next, d->cfg.instance) < 0 ||
	    bk_config_load(&next, d->config_path, err, sizeof(err)) < 0) {
		bk_err("SIGHUP: %s: %s; the running rules stay in force", d->config_path,
		       err);
		d->ctr.config_reloads[1]++;
		memcpy(hash, d->rules_hash, sizeof(hash));
		snprintf(why, sizeof(why), "reload refused, running rules stay: %s", err);
		config_record(d, hash, NULL, why);
		return;
	}
	for (uint32_t i = 0; i < d->state.n_strategies; i++)
		was_on[i] = d->slots[i].rules &&
		            d->slots[i].rules[BK_RULE_RECONCILIATION].enabled;
	d->cfg.rules = next.rules;
	d->cfg.limits = next.limits;
	bk_reload_bind_rules(d);
	retire_reconciliations(d, was_on);
	republish_limits(d);
	reload_groups(d, &next, kept, sizeof(kept));
	rules_and_limits_text(d, new_text, sizeof(new_text));
	memcpy(hash, d->rules_hash, sizeof(hash));
	bk_rulestate_diff(old_text, new_text, diff, sizeof(diff));
	d->ctr.config_reloads[0]++;
	snprintf(why, sizeof(why), "rules reloaded from %s (hash %s)%s%s%s%s",
	         d->config_path, hash,
	         auth_changed(&d->cfg, &next)
	             ? "; [auth] or [tls] roles changed in the file: NOT applied "
	               "until breakerd restarts (who may trip, resume and force "
	               "is as before)"
	             : "",
	         *kept ? "; [strategies] groups no longer lists " : "", kept,
	         *kept ? ": NOT left (breaker group remove does that, audited)" : "");
	if (auth_changed(&d->cfg, &next))
		bk_warn("SIGHUP: [auth] or [tls] roles changed in %s: not applied; "
		        "restart breakerd to apply them",
		        d->config_path);
	config_record(d, hash, diff, why);
	bk_info("SIGHUP: rules reloaded from %s (other settings need a restart): %s",
	        d->config_path, diff);
}

void bk_reload_bind_slot(struct bk_daemon *d, int slot)
{
	struct bk_slot_rules *sr = &d->slots[slot];

	memset(sr, 0, sizeof(*sr));
	bk_tickskip_reset(&d->skip, slot);
	sr->rules = bk_rules_for(&d->cfg.rules, d->state.strategies[slot].name);
	sr->is_remote = d->remote_declared[slot] ||
	                bk_config_remote(&d->cfg, d->state.strategies[slot].name);
	/* a new strategy starts from clean telemetry */
	memset(&d->tel.tel->slots[slot], 0, sizeof(d->tel.tel->slots[slot]));
	bk_orders_reset(d, slot);
}
