/*
 * Names of modes, reason codes, statuses and commands against the protobuf-c
 * descriptors: the daemon's counters and the CLI's tables are sized and named
 * from them, so a value added to proto/breaker.proto must fit (else it would
 * be counted under another name, or printed as a number) and keep the names
 * operators, alerts and dashboards already use.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "bk_metrics.h"
#include "bk_mode.h"
#include "breaker.pb-c.h"

static void lower(char *out, size_t len, const char *s)
{
	size_t i = 0;

	for (; s[i] && i + 1 < len; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[i] = '\0';
}

Test(names, every_status_has_its_own_metrics_counter)
{
	const ProtobufCEnumDescriptor *d = &breaker__status__descriptor;

	for (unsigned i = 0; i < d->n_values; i++)
		cr_assert_lt(d->values[i].value, BK_STATUS_COUNT,
		             "breaker.Status %s = %d would be counted as err_internal: "
		             "raise BK_STATUS_COUNT",
		             d->values[i].name, d->values[i].value);
}

Test(names, every_command_has_its_own_metrics_type)
{
	const ProtobufCMessageDescriptor *d = &breaker__request__descriptor;
	bool seen[BK_CMD_TYPES] = {false};
	unsigned n = 0;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		unsigned t;

		if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			continue;
		n++;
		t = bk_metrics_cmd_type((int)f->id);
		cr_assert_neq(
		    t, BK_CMD_INVALID,
		    "command %s (%u) would be counted as invalid: give it a type",
		    f->name, f->id);
		cr_assert(!seen[t], "two commands share type %u", t);
		seen[t] = true;
	}
	cr_assert_eq(n, BK_CMD_TYPES - 1, "every type but invalid is a command");
	cr_assert_eq(bk_metrics_cmd_type(0), BK_CMD_INVALID);
	cr_assert_eq(bk_metrics_cmd_type(17), BK_CMD_INVALID);
}

Test(names, reason_names_are_the_proto_names_lowercased)
{
	const ProtobufCEnumDescriptor *d = &breaker__reason_code__descriptor;
	char want[64];

	/* codes come in ranges per feature: gaps are allowed, none past the end */
	cr_assert_leq(d->n_values, BK_REASON_COUNT);
	for (unsigned i = 0; i < d->n_values; i++) {
		int v = d->values[i].value;

		cr_assert_lt(v, BK_REASON_COUNT, "%s", d->values[i].name);
		lower(want, sizeof(want), v == BK_R_NONE ? "none" : d->values[i].name);
		cr_assert_str_eq(bk_reason_name((unsigned)v), want);
		cr_assert_eq(bk_reason_parse(want), v == BK_R_NONE ? -1 : v);
	}
	cr_assert_null(bk_reason_name(BK_REASON_COUNT));
	cr_assert_eq(bk_reason_parse(""), -1);
	cr_assert_eq(bk_reason_parse("none"), -1);
	cr_assert_eq(bk_reason_parse("MANUAL_HALT"), -1);
}

/* The names operators type, alerts match and dashboards group by: a contract. */
Test(names, reason_names_operators_use)
{
	static const char *const want[BK_REASON_COUNT] = {
	    "none",
	    "manual_halt",
	    "emergency_stop",
	    "kill_switch",
	    "reject_rate",
	    "order_rate",
	    "invariant_violation",
	    "reconciliation_break",
	    "drawdown",
	    "exposure_limit",
	    "stale_heartbeat",
	    "audit_corrupt",
	    "market_data_stale",
	    "exchange_down",
	    "authority_lost",
	};

	for (unsigned r = 0; r < BK_REASON_COUNT; r++)
		if (want[r])
			cr_assert_str_eq(bk_reason_name(r), want[r]);
		else
			cr_assert_null(bk_reason_name(r), "code %u is not allocated", r);
	cr_assert_str_eq(bk_mode_name(BK_REDUCE_ONLY), "REDUCE_ONLY");
}

Test(names, mode_names_are_the_proto_names_and_parse_back)
{
	const ProtobufCEnumDescriptor *d = &breaker__mode__descriptor;
	char low[32];

	cr_assert_eq(d->n_values, BK_MODE_COUNT);
	for (unsigned i = 0; i < d->n_values; i++) {
		int v = d->values[i].value;
		const char *name = bk_mode_name(v);

		cr_assert_not_null(name, "%s", d->values[i].name);
		cr_assert_eq(strncmp(d->values[i].name, "MODE_", 5), 0);
		cr_assert_str_eq(name, d->values[i].name + 5);
		cr_assert_eq(bk_mode_parse(name), v);
		lower(low, sizeof(low), name);
		cr_assert_eq(bk_mode_parse(low), v, "%s", low);
	}
	cr_assert_null(bk_mode_name(-1));
	cr_assert_null(bk_mode_name(BK_MODE_COUNT));
	/* as operators type them (breaker trip --mode, [rules] action) */
	cr_assert_eq(bk_mode_parse("reduce-only"), BK_REDUCE_ONLY);
	cr_assert_eq(bk_mode_parse("Reduce-Only"), BK_REDUCE_ONLY);
	cr_assert_eq(bk_mode_parse("reduce_only"), BK_REDUCE_ONLY);
	cr_assert_eq(bk_mode_parse("Halted"), BK_HALTED);
	cr_assert_eq(bk_mode_parse("reduce only"), -1);
	cr_assert_eq(bk_mode_parse("reduce-"), -1);
	cr_assert_eq(bk_mode_parse("haltedx"), -1);
	cr_assert_eq(bk_mode_parse("active-"), -1);
	cr_assert_eq(bk_mode_parse(""), -1);
	cr_assert_eq(bk_mode_parse("MODE_HALTED"), -1);
}

/*
 * The C example engine carries its own copy of the reason names (it builds
 * against clients/c alone, which does not name reasons): the same, in order,
 * as breakerd's, or the example prints another reason than the one in force.
 */
Test(names, the_example_engine_names_every_reason_like_breakerd)
{
	static char src[1 << 16];
	FILE *f = fopen(BK_SOURCE_DIR "/clients/examples/engine_loop.c", "r");
	size_t n;
	unsigned code = 0;
	char *p, *end;

	cr_assert_not_null(f);
	n = fread(src, 1, sizeof(src) - 1, f);
	fclose(f);
	src[n] = '\0';
	p = strstr(src, "reason_names[] = {");
	cr_assert_not_null(p, "the example's reason table");
	end = strstr(p, "};");
	cr_assert_not_null(end);
	for (p = strchr(p, '"'); p && p < end; p = strchr(p, '"'), code++) {
		char *q = strchr(p + 1, '"');
		const char *want = bk_reason_name(code);

		cr_assert_not_null(want, "the example names code %u, breakerd does not",
		                   code);
		cr_assert(q && (size_t)(q - p - 1) == strlen(want) &&
		              !strncmp(p + 1, want, strlen(want)),
		          "code %u: example '%.*s', breakerd '%s'", code,
		          (int)(q - p - 1), p + 1, want);
		p = q + 1;
	}
	cr_assert_eq(code, BK_REASON_COUNT, "the example names %u of %d reasons", code,
	             BK_REASON_COUNT);
}
