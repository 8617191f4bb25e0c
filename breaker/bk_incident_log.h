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

/* A warning as `breaker watch` shows it: about a strategy (its name) or a
 * venue group (its tag), the rule, its reason code, utilisation, evidence. */
struct bk_warning_event {
	const char *strategy, *group, *rule, *evidence;
	unsigned reason_code;
	double util;
};

/* Publish it on the event socket, every time (events are not rate-limited:
 * a watcher that attached late must still see the next one). */
void bk_incident_log_publish(struct bk_daemon *d, const struct bk_warning_event *w);

#endif
