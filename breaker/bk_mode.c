#include <string.h>
#include <strings.h>

#include "bk_mode.h"

static const char *const reason_names[BK_REASON_COUNT] = {
    [BK_R_NONE] = "none",
    [BK_R_MANUAL_HALT] = "manual_halt",
    [BK_R_EMERGENCY_STOP] = "emergency_stop",
    [BK_R_KILL_SWITCH] = "kill_switch",
    [BK_R_REJECT_RATE] = "reject_rate",
    [BK_R_ORDER_RATE] = "order_rate",
    [BK_R_INVARIANT_VIOLATION] = "invariant_violation",
    [BK_R_RECONCILIATION_BREAK] = "reconciliation_break",
    [BK_R_DRAWDOWN] = "drawdown",
    [BK_R_EXPOSURE_LIMIT] = "exposure_limit",
    [BK_R_STALE_HEARTBEAT] = "stale_heartbeat",
    [BK_R_AUDIT_CORRUPT] = "audit_corrupt",
};

const char *bk_reason_name(unsigned code)
{
	return code < BK_REASON_COUNT ? reason_names[code] : NULL;
}

int bk_reason_parse(const char *name)
{
	for (int i = 1; i < BK_REASON_COUNT; i++)
		if (strcmp(name, reason_names[i]) == 0)
			return i;
	return -1;
}

bool bk_reason_operator(unsigned code)
{
	return code > BK_R_NONE && code < BK_REASON_COUNT && code != BK_R_AUDIT_CORRUPT;
}

int bk_mode_parse(const char *name)
{
	static const struct {
		const char *name;
		int mode;
	} names[] = {
	    {"active", BK_ACTIVE},           {"cautious", BK_CAUTIOUS},
	    {"reduce-only", BK_REDUCE_ONLY}, {"reduce_only", BK_REDUCE_ONLY},
	    {"halted", BK_HALTED},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0)
			return names[i].mode;
	return -1;
}

bool bk_mode_valid(int mode)
{
	return mode >= BK_ACTIVE && mode <= BK_HALTED;
}
