/*
 * bk_boot - bring a daemon context from config to serving state: instance
 * lock, shm segment, audit replay/repair, boot records durable, state
 * published. See bk_boot.c for the fail-closed rules.
 */
#ifndef BK_BOOT_H
#define BK_BOOT_H

#include <stdbool.h>

#include "bk_daemon.h"

struct bk_boot_report {
	struct bk_audit_scan scan;
	bool fresh;                /* no log existed */
	bool corrupt;              /* booted HALTED under audit_corrupt */
	uint64_t torn_bytes;       /* torn tail cut */
	char aside[PATH_MAX + 64]; /* where the damaged log was kept */
	char why[512];
};

int bk_boot(struct bk_daemon *d, struct bk_boot_report *r, char *err, size_t errlen);

/*
 * Undo bk_boot and whatever started after it (metrics, sockets): the segment
 * is kept for engines, marked stopped; the lock is released last. Safe after
 * a bk_boot that failed part way: it closes only what was opened.
 */
void bk_boot_close(struct bk_daemon *d);

/* Latch global HALTED under audit_corrupt with why as the reason (staged). */
int bk_boot_trip_corrupt(struct bk_daemon *d, const char *why);

#endif
