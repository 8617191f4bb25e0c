/*
 * bk_shm_dump - print everything the C client reads from a breaker segment as
 * one JSON object, so that other clients (clients/python/tests/test_live.py)
 * can be checked field by field against breaker_client.h.
 *
 * usage: bk_shm_dump <instance> [max_age_ns]
 *
 * "header" holds every hdr.* field plus heartbeat_ns and change_seq. Each
 * scope ("global", "strategies"[slot]) holds its own fields read under its
 * seqlock, and the C client's answers for it: bk_check, bk_check_live (now =
 * bk_now_mono_ns(), bound = max_age_ns, default 0 = the daemon's advice) and
 * bk_read_reason. Exit 0; 1 if attaching fails ({"error": ...} on stdout).
 */
#include <errno.h>
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
	       ", \"since_wall_ns\": %llu}}",
	       bk_mode_str(why.mode), why.reason_code, (unsigned)why.actor_uid,
	       (unsigned long long)why.since_wall_ns);
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
	       "\"heartbeat_ns\": %llu"
	       ", \"change_seq\": %u}",
	       (unsigned long long)h->magic, (unsigned)BK_LOAD_ACQ(&h->layout_version),
	       (unsigned)h->header_size, (unsigned long long)h->segment_size,
	       (unsigned)h->strategy_capacity, (unsigned)h->strategy_entry_size,
	       (unsigned)h->strategy_table_offset, (unsigned)h->daemon_pid,
	       (unsigned long long)h->tick_period_ns,
	       (unsigned long long)h->heartbeat_bound_ns,
	       (unsigned)BK_LOAD_ACQ(&h->strategy_count),
	       (unsigned long long)BK_LOAD_ACQ(&m->heartbeat_ns),
	       (unsigned)BK_LOAD_ACQ(&m->change_seq));
}

int main(int argc, char **argv)
{
	struct bk_client c;
	uint64_t max_age = 0, now;
	uint32_t n;
	int rv;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s <instance> [max_age_ns]\n", argv[0]);
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
