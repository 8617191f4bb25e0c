#include <ctype.h>
#include <string.h>

#include "bk_mode.h"
#include "breaker.pb-c.h"

/*
 * The codes are breaker.Mode and breaker.ReasonCode (the generated enums) and
 * the shm state word (breaker_client.h): one set of numbers, checked here, so
 * a renumbering anywhere fails the build. A new value in the .proto fails
 * tests/test_names.c, which compares these tables with the descriptors.
 */
/* the two enums are distinct types: compare their values */
#define SAME(a, b) ((int)(a) == (int)(b))
_Static_assert(SAME(BK_ACTIVE, BREAKER__MODE__MODE_ACTIVE) &&
                   SAME(BK_CAUTIOUS, BREAKER__MODE__MODE_CAUTIOUS) &&
                   SAME(BK_REDUCE_ONLY, BREAKER__MODE__MODE_REDUCE_ONLY) &&
                   SAME(BK_HALTED, BREAKER__MODE__MODE_HALTED),
               "enum bk_mode is breaker.Mode");
_Static_assert(
    SAME(BK_R_NONE, BREAKER__REASON_CODE__REASON_NONE) &&
        SAME(BK_R_MANUAL_HALT, BREAKER__REASON_CODE__MANUAL_HALT) &&
        SAME(BK_R_EMERGENCY_STOP, BREAKER__REASON_CODE__EMERGENCY_STOP) &&
        SAME(BK_R_KILL_SWITCH, BREAKER__REASON_CODE__KILL_SWITCH) &&
        SAME(BK_R_REJECT_RATE, BREAKER__REASON_CODE__REJECT_RATE) &&
        SAME(BK_R_ORDER_RATE, BREAKER__REASON_CODE__ORDER_RATE) &&
        SAME(BK_R_INVARIANT_VIOLATION, BREAKER__REASON_CODE__INVARIANT_VIOLATION) &&
        SAME(BK_R_RECONCILIATION_BREAK, BREAKER__REASON_CODE__RECONCILIATION_BREAK) &&
        SAME(BK_R_DRAWDOWN, BREAKER__REASON_CODE__DRAWDOWN) &&
        SAME(BK_R_EXPOSURE_LIMIT, BREAKER__REASON_CODE__EXPOSURE_LIMIT) &&
        SAME(BK_R_STALE_HEARTBEAT, BREAKER__REASON_CODE__STALE_HEARTBEAT) &&
        SAME(BK_R_AUDIT_CORRUPT, BREAKER__REASON_CODE__AUDIT_CORRUPT) &&
        SAME(BK_R_MARKET_DATA_STALE, BREAKER__REASON_CODE__MARKET_DATA_STALE) &&
        SAME(BK_R_EXCHANGE_DOWN, BREAKER__REASON_CODE__EXCHANGE_DOWN) &&
        SAME(BK_R_AUTHORITY_LOST, BREAKER__REASON_CODE__AUTHORITY_LOST),
    "enum bk_reason_code is breaker.ReasonCode");
_Static_assert(BK_REASON_COUNT == BREAKER__REASON_CODE__AUTHORITY_LOST + 1,
               "BK_REASON_COUNT covers breaker.ReasonCode");

/*
 * "manual_halt" etc.: breaker.ReasonCode's names, lowercased, REASON_NONE as
 * "none". Filled from the descriptor before main (a constructor: no thread
 * exists yet, and every caller runs after it), so a code added to the .proto
 * is named everywhere with no edit here.
 */
static char reason_names[BK_REASON_COUNT][32];

__attribute__((constructor)) static void reason_names_init(void)
{
	for (int code = 0; code < BK_REASON_COUNT; code++) {
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
		    &breaker__reason_code__descriptor, code);
		const char *s = ev ? ev->name : "";
		size_t i = 0;

		if (strncmp(s, "REASON_", 7) == 0)
			s += 7;
		for (; s[i] && i + 1 < sizeof(reason_names[code]); i++)
			reason_names[code][i] = (char)tolower((unsigned char)s[i]);
		reason_names[code][i] = '\0';
	}
}

const char *bk_reason_name(unsigned code)
{
	return code < BK_REASON_COUNT && reason_names[code][0] ? reason_names[code]
	                                                       : NULL;
}

int bk_reason_parse(const char *name)
{
	for (int i = 1; i < BK_REASON_COUNT; i++)
		if (reason_names[i][0] && strcmp(name, reason_names[i]) == 0)
			return i;
	return -1;
}

bool bk_reason_operator(unsigned code)
{
	/* codes come in ranges per feature: one the .proto does not name is none */
	return code > BK_R_NONE && code < BK_REASON_COUNT && code != BK_R_AUDIT_CORRUPT &&
	       code != BK_R_AUTHORITY_LOST && bk_reason_name(code) != NULL;
}

const char *bk_mode_name(int mode)
{
	/* the engine client's names (breaker_client.h): one table in the tree */
	return bk_mode_valid(mode) ? bk_mode_str((enum bk_mode)mode) : NULL;
}

/* Case-insensitive, and '-' for '_': "reduce-only" as operators type it. */
int bk_mode_parse(const char *name)
{
	for (int m = 0; m < BK_MODE_COUNT; m++) {
		const char *a = name, *b = bk_mode_str((enum bk_mode)m);

		for (; *a && *b; a++, b++)
			if ((*a == '-' ? '_' : tolower((unsigned char)*a)) !=
			    tolower((unsigned char)*b))
				break;
		if (!*a && !*b)
			return m;
	}
	return -1;
}

bool bk_mode_valid(int mode)
{
	return mode >= BK_ACTIVE && mode <= BK_HALTED;
}
