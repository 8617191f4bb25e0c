/*
 * bk_orders - cancel-all, confirmed. After a halt, each engine in a HALTED
 * scope reports how many orders it still has working at the venue
 * (telemetry slot.working_orders, or Report.working_orders); breakerd says
 * per engine "flat after X ms", "N working X ms after the halt", or
 * unconfirmed (dead engine, never reported, nothing reported since the
 * halt), and records FLAT once every engine of the latest halt is flat.
 *
 * Contract: a count confirms "flat" only if it was written at or after the
 * moment the engine's scope became HALTED (the trip's flip); a time of 0 is
 * "never reported", never "flat". Nothing here delays a trip: the tick
 * reads telemetry already read for the rules, and FLAT is staged like any
 * daemon record. Loop thread only; no allocation on the tick.
 */
#ifndef BK_ORDERS_H
#define BK_ORDERS_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_rules.h"
#include "breaker.pb-c.h"
#include "breaker_client.h"

struct bk_daemon;

struct bk_orders_slot {
	uint64_t halt_ns; /* CLOCK_MONOTONIC of the flip that halted it; 0 = not HALTED */
	uint64_t flat_ns; /* the first 0-working report at or after halt_ns; 0 = none */
	uint64_t working; /* the last count reported */
	uint64_t working_ns; /* when (0 = never) */
	uint64_t hb_ns;      /* the engine's last heartbeat */
	bool engine;         /* an engine ever reported here (heartbeat or count) */
	bool dead; /* heartbeat older than its rule allows (judged while HALTED) */
};

struct bk_orders {
	struct bk_orders_slot s[BK_MAX_STRATEGIES];
	uint64_t trip_ns;      /* the latest trip's flip */
	uint64_t trip_seq;     /* its TRIP record */
	uint32_t trip_change;  /* the change_seq it published */
	bool flat_done;        /* FLAT recorded for it, or nothing to confirm */
	uint64_t prev_tick_ns; /* a slot newly HALTED since: halted by the trip */
	bool global_halted;    /* this tick's global word, read once */
	/* this tick's tally over HALTED slots with an engine */
	uint32_t n_engines, n_flat;
	uint64_t last_flat_ns;
};

/* The daemon just flipped a trip (bk_protect_note_trip): seq is its record's. */
void bk_orders_note_trip(struct bk_daemon *d, uint64_t seq);

/* A slot registered (again): nothing known about its engine. */
void bk_orders_reset(struct bk_daemon *d, int slot);

/* A remote engine's Report: its venue words, stamped on receipt (now). */
void bk_orders_report(struct bk_tel_snap *s, const Breaker__Report *r, uint64_t now);

/* Tick: once before the slots, slot's telemetry as read for the rules, then
 * once after all slots. */
void bk_orders_tick_begin(struct bk_daemon *d);
void bk_orders_tick(struct bk_daemon *d, int slot, const struct bk_tel_snap *snap,
                    uint64_t now);
void bk_orders_tick_done(struct bk_daemon *d, uint64_t now);

/* Is slot's effective mode (global and its own word, as engines see them) HALTED? */
bool bk_orders_halted(const struct bk_daemon *d, int slot);

/*
 * For /metrics: false if no engine reported working orders here. Else the
 * count, and how long the slot has been HALTED without a confirmed flat
 * (0 when not HALTED or flat).
 */
bool bk_orders_metric(const struct bk_daemon *d, int slot, uint64_t now,
                      uint64_t *working, uint64_t *unconfirmed_ns);

/* StatusInfo.orders: engines in HALTED scopes (calloc'd; bk_orders_status_free). */
void bk_orders_status(struct bk_daemon *d, Breaker__StatusInfo *info, uint64_t now);
void bk_orders_status_free(Breaker__StatusInfo *info);

#endif
