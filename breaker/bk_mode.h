/*
 * bk_mode - names of modes and reason codes, shared by the daemon, the CLI
 * and the audit tools. Codes are the values of breaker.Mode and
 * breaker.ReasonCode in proto/breaker.proto and of the shm state word.
 */
#ifndef BK_MODE_H
#define BK_MODE_H

#include <stdbool.h>
#include "breaker_client.h"

#define BK_MODE_COUNT   4  /* BK_ACTIVE .. BK_HALTED */
#define BK_REASON_COUNT 15 /* codes 0 .. BK_REASON_COUNT-1; 0 is "none" */

enum bk_reason_code {
	BK_R_NONE = 0,
	BK_R_MANUAL_HALT = 1,
	BK_R_EMERGENCY_STOP = 2,
	BK_R_KILL_SWITCH = 3,
	BK_R_REJECT_RATE = 4,
	BK_R_ORDER_RATE = 5,
	BK_R_INVARIANT_VIOLATION = 6,
	BK_R_RECONCILIATION_BREAK = 7,
	BK_R_DRAWDOWN = 8,
	BK_R_EXPOSURE_LIMIT = 9,
	BK_R_STALE_HEARTBEAT = 10,
	BK_R_AUDIT_CORRUPT = 11,
	BK_R_MARKET_DATA_STALE = 12, /* venue rules (bk_venue.h) */
	BK_R_EXCHANGE_DOWN = 13,
	BK_R_AUTHORITY_LOST =
	    14, /* [cluster]: breakerd's own, never an operator's trip */
};

/* "manual_halt" etc.; NULL for an unknown code. */
const char *bk_reason_name(unsigned code);
/* Code for a name, or -1. Code 0 ("none") is not a valid name. */
int bk_reason_parse(const char *name);
/* True for codes an operator may trip with (not audit_corrupt). */
bool bk_reason_operator(unsigned code);

/*
 * "ACTIVE", "CAUTIOUS", "REDUCE_ONLY", "HALTED" (bk_mode_str, breaker.Mode
 * without its MODE_ prefix); NULL for an unknown mode.
 */
const char *bk_mode_name(int mode);
/* Those names in any case, '-' for '_' ("reduce-only"); -1 if unknown. */
int bk_mode_parse(const char *name);
bool bk_mode_valid(int mode);

#endif
