/*
 * The halt state machine: every trip/resume pair between modes, latches,
 * staging and force, and publication held back until a resume is durable.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "bk_state.h"

static struct bk_state st;
static const struct bk_actor op = {.uid = 1000, .pid = 42, .name = "op"};

static void setup(void)
{
	cr_assert_eq(bk_state_init(&st), 0);
}

static void teardown(void)
{
	bk_state_free(&st);
}

TestSuite(state, .init = setup, .fini = teardown);

static uint64_t seq_counter;

/* Plan + apply, durable at once. Returns the plan's status. */
static Breaker__Status trip(int slot, int reason, int mode)
{
	const char *why;
	struct bk_plan p;
	Breaker__Status s = bk_state_plan_trip(&st, slot, reason, mode, &p, &why);

	if (s == BREAKER__STATUS__OK) {
		++seq_counter;
		bk_state_apply(&st, &p, &op, seq_counter, "t", seq_counter, seq_counter,
		               false);
	}
	return s;
}

static Breaker__Status resume(int slot, int reason, int to, bool force)
{
	char why[256];
	struct bk_plan p;
	Breaker__Status s =
	    bk_state_plan_resume(&st, slot, reason, to, force, &p, why, sizeof(why));

	if (s == BREAKER__STATUS__OK) {
		++seq_counter;
		bk_state_apply(&st, &p, &op, seq_counter, "r", seq_counter, seq_counter,
		               false);
	}
	return s;
}

static uint8_t published(int slot, uint64_t durable)
{
	uint64_t since;
	uint32_t mask;

	return BK_STATE_MODE(
	    bk_scope_published(bk_state_scope(&st, slot), durable, &since, &mask));
}

Test(state, every_trip_mode_from_every_mode)
{
	for (int from = BK_ACTIVE; from <= BK_HALTED; from++)
		for (int to = BK_ACTIVE; to <= BK_HALTED; to++) {
			bk_state_free(&st);
			bk_state_init(&st);
			if (from != BK_ACTIVE)
				cr_assert_eq(trip(BK_GLOBAL, BK_R_MANUAL_HALT, from), 0);
			Breaker__Status s = trip(BK_GLOBAL, BK_R_MANUAL_HALT, to);
			if (to == BK_ACTIVE) {
				cr_assert_eq(s, BREAKER__STATUS__ERR_BAD_REQUEST,
				             "a trip to ACTIVE must be refused");
				continue;
			}
			cr_assert_eq(s, 0);
			/* trips never lower a latch */
			cr_assert_eq(bk_scope_mode(&st.global), to > from ? to : from,
			             "from %d trip %d", from, to);
		}
}

Test(state, every_resume_pair_staged_and_forced)
{
	for (int from = BK_CAUTIOUS; from <= BK_HALTED; from++)
		for (int to = BK_ACTIVE; to <= BK_HALTED; to++)
			for (int force = 0; force <= 1; force++) {
				bk_state_free(&st);
				bk_state_init(&st);
				trip(BK_GLOBAL, BK_R_MANUAL_HALT, from);
				Breaker__Status s =
				    resume(BK_GLOBAL, BK_R_MANUAL_HALT, to, force);
				uint8_t m = bk_scope_mode(&st.global);
				if (to >= from) {
					cr_assert_eq(s,
					             BREAKER__STATUS__ERR_NOT_A_RESUME);
					cr_assert_eq(m, from);
				} else if (to < from - 1 && !force) {
					cr_assert_eq(s, BREAKER__STATUS__ERR_STAGE_SKIP,
					             "%d->%d without force", from, to);
					cr_assert_eq(m, from,
					             "a refused resume changes nothing");
				} else {
					cr_assert_eq(s, 0, "%d->%d force %d", from, to,
					             force);
					cr_assert_eq(m, to);
				}
			}
}

Test(state, resume_defaults_to_next_stage)
{
	trip(BK_GLOBAL, BK_R_EMERGENCY_STOP, BK_HALTED);
	cr_assert_eq(resume(BK_GLOBAL, -1, -1, false), 0);
	cr_assert_eq(bk_scope_mode(&st.global), BK_REDUCE_ONLY);
	cr_assert_eq(resume(BK_GLOBAL, -1, -1, false), 0);
	cr_assert_eq(bk_scope_mode(&st.global), BK_CAUTIOUS);
	cr_assert_eq(resume(BK_GLOBAL, -1, -1, false), 0);
	cr_assert_eq(bk_scope_mode(&st.global), BK_ACTIVE);
	cr_assert_eq(st.global.active, 0u);
	cr_assert_eq(resume(BK_GLOBAL, -1, -1, false), BREAKER__STATUS__ERR_NOT_TRIPPED);
}

Test(state, two_latches_hold_independently)
{
	int s = bk_state_register(&st, "momo-eu-1");

	cr_assert_eq(s, 0);
	trip(s, BK_R_MANUAL_HALT, BK_HALTED);
	trip(s, BK_R_REJECT_RATE, BK_REDUCE_ONLY);
	/* no reason code and two latches: ambiguous unless forced */
	cr_assert_eq(resume(s, -1, BK_ACTIVE, false), BREAKER__STATUS__ERR_AMBIGUOUS);
	/* release manual_halt fully (forced skip): reject_rate still holds */
	cr_assert_eq(resume(s, BK_R_MANUAL_HALT, BK_ACTIVE, true), 0);
	cr_assert_eq(bk_scope_mode(bk_state_scope(&st, s)), BK_REDUCE_ONLY);
	cr_assert_eq(resume(s, BK_R_MANUAL_HALT, -1, false),
	             BREAKER__STATUS__ERR_NOT_TRIPPED);
	cr_assert_eq(resume(s, BK_R_REJECT_RATE, -1, false), 0);
	cr_assert_eq(bk_scope_mode(bk_state_scope(&st, s)), BK_CAUTIOUS);
}

Test(state, forced_release_of_all_latches)
{
	trip(BK_GLOBAL, BK_R_MANUAL_HALT, BK_HALTED);
	trip(BK_GLOBAL, BK_R_DRAWDOWN, BK_CAUTIOUS);
	cr_assert_eq(resume(BK_GLOBAL, -1, BK_ACTIVE, true), 0);
	cr_assert_eq(bk_scope_mode(&st.global), BK_ACTIVE);
	cr_assert_eq(st.global.active, 0u);
}

Test(state, unknown_strategy_and_reason_are_refused)
{
	const char *why;
	char buf[128];
	struct bk_plan p;

	cr_assert_eq(bk_state_plan_trip(&st, 7, BK_R_MANUAL_HALT, BK_HALTED, &p, &why),
	             BREAKER__STATUS__ERR_UNKNOWN_STRATEGY);
	cr_assert_eq(bk_state_plan_trip(&st, BK_GLOBAL, 99, BK_HALTED, &p, &why),
	             BREAKER__STATUS__ERR_UNKNOWN_REASON);
	cr_assert_eq(
	    bk_state_plan_resume(&st, BK_GLOBAL, 99, -1, false, &p, buf, sizeof(buf)),
	    BREAKER__STATUS__ERR_UNKNOWN_REASON);
}

Test(state, audit_corrupt_needs_force)
{
	trip(BK_GLOBAL, BK_R_AUDIT_CORRUPT, BK_HALTED);
	cr_assert_eq(resume(BK_GLOBAL, BK_R_AUDIT_CORRUPT, BK_REDUCE_ONLY, false),
	             BREAKER__STATUS__ERR_STAGE_SKIP);
	cr_assert_eq(resume(BK_GLOBAL, BK_R_AUDIT_CORRUPT, BK_ACTIVE, true), 0);
}

Test(state, resume_is_published_only_when_durable)
{
	char why[128];
	struct bk_plan p;

	trip(BK_GLOBAL, BK_R_MANUAL_HALT, BK_HALTED); /* seq 1, durable */
	cr_assert_eq(
	    bk_state_plan_resume(&st, BK_GLOBAL, -1, -1, false, &p, why, sizeof(why)), 0);
	bk_state_apply(&st, &p, &op, 0, "r", 2, 1, true); /* seq 2, not durable */
	cr_assert_eq(published(BK_GLOBAL, 1), BK_HALTED,
	             "visible before its record is durable");
	cr_assert_eq(published(BK_GLOBAL, 2), BK_REDUCE_ONLY);
	/* a second pending resume keeps the higher hold until it is durable too */
	cr_assert_eq(
	    bk_state_plan_resume(&st, BK_GLOBAL, -1, -1, false, &p, why, sizeof(why)), 0);
	bk_state_apply(&st, &p, &op, 0, "r", 3, 1, true);
	cr_assert_eq(published(BK_GLOBAL, 2), BK_HALTED);
	cr_assert_eq(published(BK_GLOBAL, 3), BK_CAUTIOUS);
	/* a later resume once the first are durable does not resurrect the old hold */
	cr_assert_eq(
	    bk_state_plan_resume(&st, BK_GLOBAL, -1, -1, false, &p, why, sizeof(why)), 0);
	bk_state_apply(&st, &p, &op, 0, "r", 4, 3, true);
	cr_assert_eq(published(BK_GLOBAL, 3), BK_CAUTIOUS);
	cr_assert_eq(published(BK_GLOBAL, 4), BK_ACTIVE);
}

Test(state, winning_latch_is_most_restrictive)
{
	uint64_t since, w;
	uint32_t mask;

	trip(BK_GLOBAL, BK_R_DRAWDOWN, BK_CAUTIOUS);
	trip(BK_GLOBAL, BK_R_STALE_HEARTBEAT, BK_HALTED);
	w = bk_scope_published(&st.global, 100, &since, &mask);
	cr_assert_eq(BK_STATE_MODE(w), BK_HALTED);
	cr_assert_eq(BK_STATE_REASON(w), BK_R_STALE_HEARTBEAT);
	cr_assert_eq(BK_STATE_UID(w), 1000u);
	cr_assert_eq(mask, (1u << BK_R_DRAWDOWN) | (1u << BK_R_STALE_HEARTBEAT));
}

Test(state, register_names_and_capacity)
{
	char name[BK_NAME_MAX];

	cr_assert_eq(bk_state_register(&st, ""), -EINVAL);
	cr_assert_eq(bk_state_register(&st, "bad name"), -EINVAL);
	cr_assert_eq(bk_state_register(&st, "0123456789012345678901234567890123456789"),
	             -EINVAL);
	for (unsigned i = 0; i < BK_MAX_STRATEGIES; i++) {
		snprintf(name, sizeof(name), "s-%u", i);
		cr_assert_eq(bk_state_register(&st, name), (int)i);
	}
	cr_assert_eq(bk_state_register(&st, "one-more"), -ENOSPC);
	cr_assert_eq(bk_state_register(&st, "s-17"), -EEXIST);
	cr_assert_eq(bk_state_find(&st, "s-4095"), 4095);
	cr_assert_eq(bk_state_find(&st, "nope"), -ENOENT);
}

Test(state, replay_rebuilds_the_same_state)
{
	struct bk_state again;
	Breaker__AuditRecord reg = BREAKER__AUDIT_RECORD__INIT,
	                     tr = BREAKER__AUDIT_RECORD__INIT;

	cr_assert_eq(bk_state_init(&again), 0);
	reg.has_kind = reg.has_slot = 1;
	reg.kind = BREAKER__AUDIT_RECORD__KIND__REGISTER;
	reg.strategy = "alpha";
	reg.slot = 0;
	cr_assert_eq(bk_state_replay(&again, &reg), 0);
	tr.has_kind = tr.has_reason_code = tr.has_latch_mode = 1;
	tr.kind = BREAKER__AUDIT_RECORD__KIND__TRIP;
	tr.strategy = "alpha";
	tr.reason_code = BREAKER__REASON_CODE__KILL_SWITCH;
	tr.latch_mode = BREAKER__MODE__MODE_HALTED;
	cr_assert_eq(bk_state_replay(&again, &tr), 0);
	cr_assert_eq(bk_scope_mode(bk_state_scope(&again, 0)), BK_HALTED);
	/* a record naming a strategy never registered is inconsistent */
	tr.strategy = "ghost";
	cr_assert_eq(bk_state_replay(&again, &tr), -EBADMSG);
	/* a REGISTER whose slot disagrees with the order is inconsistent */
	reg.strategy = "beta";
	reg.slot = 5;
	cr_assert_eq(bk_state_replay(&again, &reg), -EBADMSG);
	bk_state_free(&again);
}
