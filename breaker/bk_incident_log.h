/*
 * bk_incident_log - WARNING audit records, made by breakerd
 * itself for the incident timeline. Loop thread; staged, flushed with the rest.
 */
#ifndef BK_INCIDENT_LOG_H
#define BK_INCIDENT_LOG_H

#include "bk_rules.h"

struct bk_daemon;

/* A rule crossed a warning level for strategy slot: a WARNING record, at most
 * one per rule and strategy per second. */
void bk_incident_log_warning(struct bk_daemon *d, int slot, const struct bk_verdict *v);

#endif
