/*
 * bk_venuewatch - the venue rules (bk_venue.h) in the daemon: once a
 * millisecond, fold every strategy's telemetry (as the tick read it) into
 * the aggregate of each venue group it belongs to ("venue:*"), judge each
 * venue, and trip the venue group (market_data_stale, exchange_down) with
 * the evidence, or publish a warning. Venue groups come from bk_group.h;
 * a strategy in no venue group is never judged by these rules.
 * Loop thread only; no allocation.
 */
#ifndef BK_VENUEWATCH_H
#define BK_VENUEWATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_venue.h"
#include "breaker.pb-c.h"
#include "breaker_client.h"

struct bk_daemon;

#define BK_VENUE_PERIOD_NS 1000000ull /* judged once a millisecond */

struct bk_venues {
	bool active; /* this tick judges */
	uint64_t next_ns;
	bool is_venue[BK_MAX_GROUPS];
	struct bk_venue_agg agg[BK_MAX_GROUPS];
	struct bk_venue_eval ev[BK_MAX_GROUPS];
};

/* Tick: before the strategies, each strategy's snapshot, after them. */
void bk_venues_begin(struct bk_daemon *d, uint64_t now);
void bk_venues_slot(struct bk_daemon *d, int slot, const struct bk_tel_snap *snap,
                    uint64_t now);
void bk_venues_end(struct bk_daemon *d, uint64_t now);

/* Resume: does the venue rule behind reason still fail for scope slot? */
bool bk_venues_holds(const struct bk_daemon *d, int slot, unsigned reason,
                     const char **rule);

/* StatusInfo.venues: each judged venue rule (calloc'd; bk_venues_status_free). */
void bk_venues_status(struct bk_daemon *d, Breaker__StatusInfo *info);
void bk_venues_status_free(Breaker__StatusInfo *info);

#endif
