/*
 * bk_c_probe - what the C client (breaker_client.h) reads and writes, in the
 * JSON the Java and Rust probes print (clients/java/test/.../Probe.java,
 * clients/rust/src/bin/probe.rs), so tests/clients/agree.py can require the
 * same answers from all three at every step.
 *
 *   bk_c_probe dump INSTANCE MAX_AGE_NS
 *   bk_c_probe wait INSTANCE SEEN MS
 *   bk_c_probe tel INSTANCE SLOT       the fixed report sequence into SLOT
 *   bk_c_probe teldump INSTANCE SLOT   every word of a telemetry slot
 *   bk_c_probe attach INSTANCE
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker_client.h"

static void str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char *holder(enum bk_scope_kind k)
{
	switch (k) {
	case BK_SCOPE_GLOBAL:
		return "global";
	case BK_SCOPE_GROUP:
		return "group";
	case BK_SCOPE_STRATEGY:
		return "strategy";
	default:
		return "none";
	}
}

static void scope(const struct bk_client *c, int slot, uint64_t max_age)
{
	struct bk_reason r;
	struct bk_limit_values l;
	char name[BK_NAME_MAX] = "";

	bk_read_reason(c, slot, &r);
	(void)bk_limits(c, slot, &l);
	if (slot >= 0)
		memcpy(name, c->shm->strategies[slot].name, BK_NAME_MAX - 1);
	printf("{\"slot\": %d, \"name\": ", slot);
	str(name);
	printf(", \"check\": \"%s\", \"check_live\": \"%s\"",
	       bk_mode_str(bk_check(c, slot)),
	       bk_mode_str(bk_check_live(c, slot, bk_now_mono_ns(), max_age)));
	printf(", \"reason\": {\"mode\": \"%s\", \"code\": %u", bk_mode_str(r.mode),
	       r.reason_code);
	printf(", \"uid\": %u, \"since\": %llu, \"scope\": \"%s\", \"scope_slot\": %d"
	       ", \"scope_name\": ",
	       (unsigned)r.actor_uid, (unsigned long long)r.since_wall_ns,
	       holder(r.scope), r.scope_slot);
	str(r.scope_name);
	printf("}, \"limits\": {\"flags\": %u, \"size_factor\": %llu, \"max_qty\": %llu"
	       ", \"max_notional\": %llu}}",
	       l.flags, (unsigned long long)bk_f2u(l.size_factor),
	       (unsigned long long)bk_f2u(l.max_qty),
	       (unsigned long long)bk_f2u(l.max_notional));
}

static int dump(const struct bk_client *c, uint64_t max_age)
{
	uint32_t n = BK_LOAD_ACQ(&c->shm->hdr.strategy_count);

	if (n > BK_MAX_STRATEGIES)
		n = BK_MAX_STRATEGIES;

	printf("{\"layout_version\": %u, \"strategy_count\": %u, \"group_count\": %u"
	       ", \"change_seq\": %u, \"heartbeat_nonzero\": %s, \"scopes\": [",
	       (unsigned)BK_LOAD_ACQ(&c->shm->hdr.layout_version), n,
	       (unsigned)BK_LOAD_ACQ(&c->shm->hdr.group_count), bk_change_seq(c),
	       BK_LOAD_ACQ(&c->shm->heartbeat_ns) ? "true" : "false");
	scope(c, BK_GLOBAL_ONLY, max_age);
	for (uint32_t i = 0; i < n; i++) {
		printf(", ");
		scope(c, (int)i, max_age);
	}
	printf("]}\n");
	return 0;
}

static int tel(const char *instance, int slot)
{
	struct bk_tel_client t;
	uint64_t now = bk_now_mono_ns();
	int rv = bk_tel_attach(&t, instance);

	if (rv < 0) {
		printf("error %d %s\n", -rv, strerror(-rv));
		return 1;
	}
	bk_report_heartbeat(&t, slot, now);
	bk_report_order(&t, slot, 3);
	bk_report_reject(&t, slot, 1);
	bk_report_cancel(&t, slot, 2);
	bk_report_ack(&t, slot, 7, now);
	bk_report_opening_balance(&t, slot, 1000.0);
	bk_report_fill(&t, slot, -100.5, 0.25, 899.25, 10.0);
	bk_report_marks(&t, slot, 10.0, 12.5, -0.25);
	bk_report_balance(&t, slot, 899.0);
#if BK_TEL_VERSION >= 2 /* the other probes drop these on a version-1 segment */
	bk_report_working(&t, slot, 4, now);
	bk_report_md_tick(&t, slot, now);
	bk_report_session(&t, slot, 1, now);
#endif
	bk_tel_detach(&t);
	printf("ok\n");
	return 0;
}

/* Every word of the slot as the daemon would read it (gseq settled). */
static int teldump(const char *instance, int slot)
{
	struct bk_tel_client t;
	struct bk_tel_slot *s;
	int rv = bk_tel_attach(&t, instance);

	if (rv < 0 || !(s = bk_tel_slot_at(&t, slot))) {
		printf("error %d %s\n", rv < 0 ? -rv : EINVAL,
		       strerror(rv < 0 ? -rv : EINVAL));
		return 1;
	}
	while (BK_LOAD_ACQ(&s->gseq) & 1u)
		;
#define U(f)                                                                             \
	printf("%s\"" #f "\": %llu", first ? "" : ", ",                                  \
	       (unsigned long long)BK_LOAD_ACQ(&s->f)),                                  \
	    first = 0
	{
		int first = 1;
		putchar('{');
		U(orders);
		U(rejects);
		U(cancels);
		U(heartbeat_ns);
		U(ack_seq);
		U(pid);
		U(ack_ns);
		U(opening_base);
		U(opening_fills);
		U(gseq);
		U(opening_seq);
		U(fills);
		U(fill_cash);
		U(fees);
		U(balance);
		U(position);
		U(gross);
		U(pnl);
#if BK_TEL_VERSION >= 2
		U(working_orders);
		U(working_ns);
		U(md_last_ns);
		U(session);
		U(session_ns);
#endif
		printf("}\n");
	}
#undef U
	bk_tel_detach(&t);
	return 0;
}

int main(int argc, char **argv)
{
	struct bk_client c;
	int rv;

	if (argc < 3) {
		fprintf(stderr,
		        "usage: bk_c_probe dump|wait|tel|teldump|attach INSTANCE ...\n");
		return 2;
	}
	if (!strcmp(argv[1], "tel"))
		return tel(argv[2], argc > 3 ? atoi(argv[3]) : -1);
	if (!strcmp(argv[1], "teldump"))
		return teldump(argv[2], argc > 3 ? atoi(argv[3]) : -1);
	if ((rv = bk_client_attach(&c, argv[2])) < 0) {
		printf("error %d %s\n", -rv, strerror(-rv));
		return 1;
	}
	if (!strcmp(argv[1], "attach")) {
		printf("ok\n");
	} else if (!strcmp(argv[1], "dump")) {
		dump(&c, argc > 3 ? strtoull(argv[3], NULL, 10) : 0);
	} else if (!strcmp(argv[1], "wait") && argc > 4) {
		struct timespec ts;
		long ms = atol(argv[4]);

		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000L;
		printf("ready\n");
		fflush(stdout);
		rv = bk_wait_change(&c, (uint32_t)strtoul(argv[3], NULL, 10), &ts);
		printf("%s\n", rv == 0 ? "changed" : "timeout");
	} else {
		fprintf(stderr, "bk_c_probe: unknown command %s\n", argv[1]);
		return 2;
	}
	bk_client_detach(&c);
	return 0;
}
