/*
 * bk_rulestate - durable rule state (RULE_STATE records, replayed at boot)
 * and audited rule changes (CONFIG records on SIGHUP). docs/rules.md.
 */
#ifndef BK_RULESTATE_H
#define BK_RULESTATE_H

#include <stddef.h>
#include <stdint.h>

#include "bk_rules.h"
#include "breaker.pb-c.h"

struct bk_daemon;

#define BK_RULES_HASH_LEN     17            /* 16 hex digits (64 bits of SHA-256) + NUL */
#define BK_RULESTATE_EVERY_NS 1000000000ull /* a strategy's baselines: 1 record/s */

/* Boot: restore a strategy's reconciliation or baselines from its record. */
void bk_rulestate_replay(struct bk_daemon *d, const Breaker__AuditRecord *rec);

/* Tick: stage a RULE_STATE record if slot's baselines moved (rate-limited). */
void bk_rulestate_tick(struct bk_daemon *d, int slot, uint64_t now_mono_ns);

/* When bk_rulestate_tick has a record to stage for slot (its baselines
 * moved): the rate limit's time, maybe past; UINT64_MAX if none. */
uint64_t bk_rulestate_due(const struct bk_daemon *d, int slot);

/* Clean stop: stage every strategy's baselines that moved since their last
 * record, rate limit or not (a peak of the last second must survive). */
void bk_rulestate_flush(struct bk_daemon *d);

/* d->rules_hash from d->cfg.rules (boot, reload). */
void bk_rulestate_rehash(struct bk_daemon *d);

/* The rules' canonical text ("key=value\n" lines); its length. */
size_t bk_rulestate_text(const struct bk_rules_cfg *rc, char *buf, size_t len);
void bk_rulestate_hash(const char *text, size_t n, char out[BK_RULES_HASH_LEN]);
/* What changed between two canonical texts, in one line ("no change" if none). */
size_t bk_rulestate_diff(const char *old, const char *new, char *out, size_t len);

#endif
