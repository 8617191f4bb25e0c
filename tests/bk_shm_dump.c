/*
 * bk_shm_dump - print everything the C client reads from a breaker segment as
 * one JSON object, so that other clients (clients/python/tests/test_live.py)
 * can be checked field by field against breaker_client.h.
 *
 * usage: bk_shm_dump <instance> [max_age_ns]
 *        bk_shm_dump --tel <instance> [slot ...]
 *
 * "header" holds every hdr.* field plus heartbeat_ns and change_seq. Each
 * scope ("global", "strategies"[slot]) holds its own fields read under its
 * seqlock, and the C client's answers for it: bk_check, bk_check_live (now =
 * bk_now_mono_ns(), bound = max_age_ns, default 0 = the daemon's advice) and
 * bk_read_reason. Exit 0; 1 if attaching fails ({"error": ...} on stdout).
 *
 * --tel dumps the telemetry segment as the C client maps it (bk_tel_attach):
 * "header" with every tel.* field, and "slots", one object per slot asked
 * for (default: every registered strategy's) with every slot.* field. The
 * counters are read with acquire loads; the money words under gseq, as
 * breakerd reads them. Each double is printed twice: as a number (%.17g, so
 * it reads back exactly; null if not finite) and as its bit pattern
 * ("<field>_bits"), which is what the comparison should use.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker_client.h"

struct raw_scope {
	uint64_t state;
	uint32_t seq;
	uint32_t latches;
	uint64_t since_ns;
};

/* The scope's own fields under its seqlock (docs/shm-layout.md, step 6). */
static void read_scope(const struct bk_shm_scope *s, struct raw_scope *out)
{
	uint32_t q;

	do {
		q = BK_LOAD_ACQ(&s->seq);
		out->since_ns = BK_LOAD_RLX(&s->since_ns);
		out->latches = BK_LOAD_RLX(&s->latches);
		out->state = BK_LOAD_RLX(&s->state);
		BK_FENCE_ACQ();
	} while ((q & 1u) || q != BK_LOAD_RLX(&s->seq));
	out->seq = q;
}

static void print_name(const char *name)
{
	putchar('"');
	for (size_t i = 0; i < BK_NAME_MAX && name[i]; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void print_scope(const struct bk_client *c, int slot, uint64_t now,
                        uint64_t max_age)
{
	const struct bk_shm_scope *s =
	    slot < 0 ? &c->shm->global : &c->shm->strategies[slot];
	struct raw_scope r;
	struct bk_reason why;

	read_scope(s, &r);
	bk_read_reason(c, slot, &why);
	printf("{\"slot\": %d, \"name\": ", slot);
	print_name(s->name);
	printf(", \"state\": %llu, \"mode\": %u, \"reason_code\": %u, \"actor_uid\": %u"
	       ", \"since_ns\": %llu, \"latches\": %u, \"seq\": %u",
	       (unsigned long long)r.state, BK_STATE_MODE(r.state),
	       BK_STATE_REASON(r.state), (unsigned)BK_STATE_UID(r.state),
	       (unsigned long long)r.since_ns, (unsigned)r.latches, (unsigned)r.seq);
	printf(", \"check\": \"%s\", \"check_live\": \"%s\"",
	       bk_mode_str(bk_check(c, slot)),
	       bk_mode_str(bk_check_live(c, slot, now, max_age)));
	printf(", \"reason\": {\"mode\": \"%s\", \"reason_code\": %u, \"actor_uid\": %u"
	       ", \"since_wall_ns\": %llu, \"scope\": \"%s\", \"scope_name\": ",
	       bk_mode_str(why.mode), why.reason_code, (unsigned)why.actor_uid,
	       (unsigned long long)why.since_wall_ns,
	       why.scope == BK_SCOPE_GLOBAL     ? "global"
	       : why.scope == BK_SCOPE_GROUP    ? "group"
	       : why.scope == BK_SCOPE_STRATEGY ? "strategy"
	                                        : "none");
	print_name(why.scope_name);
	printf("}}");
}

static void print_header(const struct bk_shm *m)
{
	const struct bk_shm_header *h = &m->hdr;

	printf("{\"magic\": %llu, \"layout_version\": %u, \"header_size\": %u"
	       ", \"segment_size\": %llu, \"strategy_capacity\": %u, "
	       "\"strategy_entry_size\": %u"
	       ", \"strategy_table_offset\": %u, \"daemon_pid\": %u, \"tick_period_ns\": "
	       "%llu"
	       ", \"heartbeat_bound_ns\": %llu, \"strategy_count\": %u, "
	       "\"group_count\": %u, \"group_capacity\": %u, \"group_entry_size\": %u, "
	       "\"group_table_offset\": %u, \"limits_table_offset\": %u, "
	       "\"limits_entry_size\": %u, \"heartbeat_ns\": %llu"
	       ", \"change_seq\": %u}",
	       (unsigned long long)h->magic, (unsigned)BK_LOAD_ACQ(&h->layout_version),
	       (unsigned)h->header_size, (unsigned long long)h->segment_size,
	       (unsigned)h->strategy_capacity, (unsigned)h->strategy_entry_size,
	       (unsigned)h->strategy_table_offset, (unsigned)h->daemon_pid,
	       (unsigned long long)h->tick_period_ns,
	       (unsigned long long)h->heartbeat_bound_ns,
	       (unsigned)BK_LOAD_ACQ(&h->strategy_count),
	       (unsigned)BK_LOAD_ACQ(&h->group_count), (unsigned)m->group_capacity,
	       (unsigned)m->group_entry_size, (unsigned)m->group_table_offset,
	       (unsigned)m->limits_table_offset, (unsigned)m->limits_entry_size,
	       (unsigned long long)BK_LOAD_ACQ(&m->heartbeat_ns),
	       (unsigned)BK_LOAD_ACQ(&m->change_seq));
}

static void print_f64(const char *key, uint64_t bits)
{
	double d = bk_u2f(bits);

	if (isfinite(d))
		printf(", \"%s\": %.17g", key, d);
	else
		printf(", \"%s\": null", key);
	printf(", \"%s_bits\": %llu", key, (unsigned long long)bits);
}

static void print_tel_slot(struct bk_tel_slot *s, int slot)
{
	uint64_t fills, cash, fees, bal, pos, gross, pnl, obase, ofills;
	uint32_t q, oseq;

	do {
		q = BK_LOAD_ACQ(&s->gseq);
		fills = BK_LOAD_RLX(&s->fills);
		cash = BK_LOAD_RLX(&s->fill_cash);
		fees = BK_LOAD_RLX(&s->fees);
		bal = BK_LOAD_RLX(&s->balance);
		pos = BK_LOAD_RLX(&s->position);
		gross = BK_LOAD_RLX(&s->gross);
		pnl = BK_LOAD_RLX(&s->pnl);
		obase = BK_LOAD_RLX(&s->opening_base);
		ofills = BK_LOAD_RLX(&s->opening_fills);
		oseq = BK_LOAD_RLX(&s->opening_seq);
		BK_FENCE_ACQ();
	} while ((q & 1u) || q != BK_LOAD_RLX(&s->gseq));
	printf("{\"slot\": %d, \"orders\": %llu, \"rejects\": %llu, \"cancels\": %llu"
	       ", \"heartbeat_ns\": %llu, \"ack_seq\": %u, \"pid\": %u, \"ack_ns\": %llu"
	       ", \"gseq\": %u, \"fills\": %llu",
	       slot, (unsigned long long)BK_LOAD_ACQ(&s->orders),
	       (unsigned long long)BK_LOAD_ACQ(&s->rejects),
	       (unsigned long long)BK_LOAD_ACQ(&s->cancels),
	       (unsigned long long)BK_LOAD_ACQ(&s->heartbeat_ns),
	       (unsigned)BK_LOAD_ACQ(&s->ack_seq), (unsigned)BK_LOAD_ACQ(&s->pid),
	       (unsigned long long)BK_LOAD_ACQ(&s->ack_ns), (unsigned)q,
	       (unsigned long long)fills);
	print_f64("fill_cash", cash);
	print_f64("fees", fees);
	print_f64("balance", bal);
	print_f64("position", pos);
	print_f64("gross", gross);
	print_f64("pnl", pnl);
	print_f64("opening_base", obase);
	printf(", \"opening_fills\": %llu, \"opening_seq\": %u",
	       (unsigned long long)ofills, (unsigned)oseq);
	printf(", \"working_orders\": %llu, \"working_ns\": %llu, \"md_last_ns\": %llu"
	       ", \"session\": %u, \"session_ns\": %llu}",
	       (unsigned long long)BK_LOAD_ACQ(&s->working_orders),
	       (unsigned long long)BK_LOAD_ACQ(&s->working_ns),
	       (unsigned long long)BK_LOAD_ACQ(&s->md_last_ns),
	       (unsigned)BK_LOAD_ACQ(&s->session),
	       (unsigned long long)BK_LOAD_ACQ(&s->session_ns));
}

/* bk_shm_dump --tel <instance> [slot ...] */
static int dump_tel(int argc, char **argv)
{
	struct bk_tel_client t;
	struct bk_client c;
	const struct bk_tel_header *h;
	uint32_t n = 0;
	int rv;

	rv = bk_tel_attach(&t, argv[0]);
	if (rv < 0) {
		printf("{\"error\": \"%s\", \"errno\": %d}\n", strerror(-rv), -rv);
		return 1;
	}
	if (argc == 1) { /* default: every registered strategy */
		rv = bk_client_attach(&c, argv[0]);
		if (rv < 0 || !c.shm) {
			printf("{\"error\": \"%s\", \"errno\": %d}\n", strerror(-rv),
			       -rv);
			bk_tel_detach(&t);
			return 1;
		}
		n = BK_LOAD_ACQ(&c.shm->hdr.strategy_count);
		if (n > BK_MAX_STRATEGIES)
			n = BK_MAX_STRATEGIES;
		bk_client_detach(&c);
	}
	h = &t.tel->hdr;
	printf("{\"header\": {\"magic\": %llu, \"version\": %u, \"slot_size\": %u"
	       ", \"capacity\": %u, \"segment_size\": %llu},\n \"slots\": [",
	       (unsigned long long)h->magic, (unsigned)BK_LOAD_ACQ(&h->version),
	       (unsigned)h->slot_size, (unsigned)h->capacity,
	       (unsigned long long)h->segment_size);
	if (argc == 1) {
		for (uint32_t i = 0; i < n; i++) {
			printf("%s\n  ", i ? "," : "");
			print_tel_slot(&t.tel->slots[i], (int)i);
		}
	}
	for (int a = 1; a < argc; a++) {
		char *end;
		long slot = strtol(argv[a], &end, 10);

		if (*end || slot < 0 || slot >= (long)BK_MAX_STRATEGIES) {
			fprintf(stderr, "bk_shm_dump: bad slot %s\n", argv[a]);
			bk_tel_detach(&t);
			return 2;
		}
		printf("%s\n  ", a > 1 ? "," : "");
		print_tel_slot(&t.tel->slots[slot], (int)slot);
	}
	printf("]}\n");
	bk_tel_detach(&t);
	return 0;
}

int main(int argc, char **argv)
{
	struct bk_client c;
	uint64_t max_age = 0, now;
	uint32_t n;
	int rv;

	if (argc >= 3 && strcmp(argv[1], "--tel") == 0)
		return dump_tel(argc - 2, argv + 2);
	if (argc < 2 || argc > 3 || argv[1][0] == '-') {
		fprintf(stderr,
		        "usage: %s <instance> [max_age_ns]\n"
		        "       %s --tel <instance> [slot ...]\n",
		        argv[0], argv[0]);
		return 2;
	}
	if (argc == 3)
		max_age = strtoull(argv[2], NULL, 10);
	rv = bk_client_attach(&c, argv[1]);
	if (rv < 0) {
		printf("{\"error\": \"%s\", \"errno\": %d}\n", strerror(-rv), -rv);
		return 1;
	}
	now = bk_now_mono_ns();
	n = BK_LOAD_ACQ(&c.shm->hdr.strategy_count);
	if (n > BK_MAX_STRATEGIES)
		n = BK_MAX_STRATEGIES;
	printf("{\"header\": ");
	print_header(c.shm);
	printf(",\n \"now_mono_ns\": %llu,\n \"global\": ", (unsigned long long)now);
	print_scope(&c, -1, now, max_age);
	printf(",\n \"strategies\": [");
	for (uint32_t i = 0; i < n; i++) {
		printf("%s\n  ", i ? "," : "");
		print_scope(&c, (int)i, now, max_age);
	}
	printf("]}\n");
	bk_client_detach(&c);
	return 0;
}
