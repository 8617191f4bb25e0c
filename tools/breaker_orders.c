/*
 * breaker_orders - `breaker status`: cancel-all, confirmed. One line per
 * engine in a HALTED scope (StatusInfo.orders, breaker/bk_orders.h): flat
 * after X ms, N working X ms after the halt, or UNCONFIRMED with the
 * runbook step (the orders of a dead or silent engine are cancelled at the
 * venue, not assumed gone); and the venue rules' state per venue group.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "breaker.h"

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void put_engine(FILE *f, const Breaker__EngineOrders *e)
{
	fputs("  strategy ", f);
	put_name(f, e->strategy ? e->strategy : "?");
	if (e->has_pid)
		fprintf(f, " pid %" PRIu32, e->pid);
	if (e->flat && e->has_flat_after_ns)
		fprintf(f, ": flat (0 working) after %.1f ms\n", ms(e->flat_after_ns));
	else if (e->unconfirmed) {
		fputs(": UNCONFIRMED: ", f);
		put_text(f, e->unconfirmed);
		fputc('\n', f);
	} else
		fprintf(f, ": %" PRIu64 " working orders, %.1f ms after the halt\n",
		        e->working, ms(e->since_halt_ns));
}

void put_orders(FILE *f, const Breaker__StatusInfo *in)
{
	size_t flat = 0;

	if (in->n_orders == 0)
		return;
	for (size_t i = 0; i < in->n_orders; i++)
		flat += in->orders[i]->flat;
	fprintf(f, "working orders after the halt: %zu of %zu engines flat", flat,
	        in->n_orders);
	if (in->orders_not_listed) /* the reply lists at most 512 */
		fprintf(f, " (and %" PRIu32 " more engines in HALTED scopes, not listed)",
		        in->orders_not_listed);
	fputc('\n', f);
	for (size_t i = 0; i < in->n_orders; i++)
		put_engine(f, in->orders[i]);
}

/* "  venue:XETR md_stale: freshest tick 812 ms old (max 500 ms) VIOLATED" */
void put_venues(FILE *f, const Breaker__StatusInfo *in)
{
	if (in->n_venues == 0)
		return;
	fputs("venue rules:\n", f);
	for (size_t i = 0; i < in->n_venues; i++) {
		const Breaker__RuleState *v = in->venues[i];
		bool md = v->rule && strcmp(v->rule, "md_stale") == 0;

		fputs("  ", f);
		put_name(f, v->strategy ? v->strategy : "?");
		fprintf(f, " %s: ", v->rule ? v->rule : "?");
		if (md)
			fprintf(f, "freshest tick %.0f ms old (max %.0f ms)", v->measured,
			        v->threshold);
		else
			fprintf(f, "%.0f of %.0f sessions down", v->measured,
			        v->threshold);
		fputs(v->violated ? " VIOLATED\n" : "\n", f);
	}
}
