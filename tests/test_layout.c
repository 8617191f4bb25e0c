/*
 * docs/shm-layout.md against clients/c/breaker_client.h: every documented
 * field's offset and size must match the code, and every field in the code
 * must be documented. Also: a read-only mapping really is read-only.
 */
#include <criterion/criterion.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#include "bk_mode.h"
#include "bk_shm.h"
#include "bk_tel.h"
#include "breaker_client.h"

#ifndef BK_SOURCE_DIR
#error "BK_SOURCE_DIR must be defined by the build"
#endif

struct field {
	const char *name;
	size_t offset;
	size_t size;
	int seen;
};

#define F(path, member)                                                                  \
	{                                                                                \
		path, offsetof(struct bk_shm, member),                                   \
		    sizeof(((struct bk_shm *)0)->member), 0                              \
	}
#define S(path, member)                                                                  \
	{                                                                                \
		path, offsetof(struct bk_shm_scope, member),                             \
		    sizeof(((struct bk_shm_scope *)0)->member), 0                        \
	}

#define T(path, member)                                                                  \
	{                                                                                \
		path, offsetof(struct bk_tel, member),                                   \
		    sizeof(((struct bk_tel *)0)->member), 0                              \
	}
#define L(path, member)                                                                  \
	{                                                                                \
		path, offsetof(struct bk_tel_slot, member),                              \
		    sizeof(((struct bk_tel_slot *)0)->member), 0                         \
	}
#define M(path, member)                                                                  \
	{                                                                                \
		path, offsetof(struct bk_shm_limits, member),                            \
		    sizeof(((struct bk_shm_limits *)0)->member), 0                       \
	}

static struct field fields[] = {
    F("hdr.magic", hdr.magic),
    F("hdr.layout_version", hdr.layout_version),
    F("hdr.header_size", hdr.header_size),
    F("hdr.segment_size", hdr.segment_size),
    F("hdr.strategy_capacity", hdr.strategy_capacity),
    F("hdr.strategy_entry_size", hdr.strategy_entry_size),
    F("hdr.strategy_table_offset", hdr.strategy_table_offset),
    F("hdr.daemon_pid", hdr.daemon_pid),
    F("hdr.tick_period_ns", hdr.tick_period_ns),
    F("hdr.heartbeat_bound_ns", hdr.heartbeat_bound_ns),
    F("hdr.strategy_count", hdr.strategy_count),
    F("hdr.group_count", hdr.group_count),
    F("heartbeat_ns", heartbeat_ns),
    F("audit.lock", audit_lock),
    F("audit.seq", audit_seq),
    F("audit.end", audit_end),
    F("audit.hash", audit_hash),
    F("change_seq", change_seq),
    F("hdr.group_capacity", group_capacity),
    F("hdr.group_entry_size", group_entry_size),
    F("hdr.group_table_offset", group_table_offset),
    F("hdr.limits_table_offset", limits_table_offset),
    F("hdr.limits_entry_size", limits_entry_size),
    F("valid_until_ns", valid_until_ns),
    F("firm_revision", firm_revision),
    F("firm_contact_ns", firm_contact_ns),
    F("global", global),
    F("strategies", strategies),
    F("groups", groups),
    F("limits", limits),
    M("limit.seq", seq),
    M("limit.flags", flags),
    M("limit.size_factor", size_factor),
    M("limit.max_qty", max_qty),
    M("limit.max_notional", max_notional),
    S("scope.state", state),
    S("scope.seq", seq),
    S("scope.latches", latches),
    S("scope.since_ns", since_ns),
    S("scope.name", name),
    T("tel.magic", hdr.magic),
    T("tel.version", hdr.version),
    T("tel.slot_size", hdr.slot_size),
    T("tel.capacity", hdr.capacity),
    T("tel.segment_size", hdr.segment_size),
    T("tel.slots", slots),
    L("slot.orders", orders),
    L("slot.rejects", rejects),
    L("slot.cancels", cancels),
    L("slot.heartbeat_ns", heartbeat_ns),
    L("slot.ack_seq", ack_seq),
    L("slot.pid", pid),
    L("slot.ack_ns", ack_ns),
    L("slot.opening_base", opening_base),
    L("slot.opening_fills", opening_fills),
    L("slot.gseq", gseq),
    L("slot.opening_seq", opening_seq),
    L("slot.fills", fills),
    L("slot.fill_cash", fill_cash),
    L("slot.fees", fees),
    L("slot.balance", balance),
    L("slot.position", position),
    L("slot.gross", gross),
    L("slot.pnl", pnl),
    L("slot.working_orders", working_orders),
    L("slot.working_ns", working_ns),
    L("slot.md_last_ns", md_last_ns),
    L("slot.session", session),
    L("slot.session_ns", session_ns),
};

static struct field *find(const char *name)
{
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strcmp(fields[i].name, name) == 0)
			return &fields[i];
	return NULL;
}

Test(layout, documented_offsets_match_the_code)
{
	FILE *f = fopen(BK_SOURCE_DIR "/docs/shm-layout.md", "r");
	char line[512], name[64];
	size_t off, size;
	int rows = 0;

	cr_assert_not_null(f, "docs/shm-layout.md is missing");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "| %63[a-z_.] | %zu | %zu |", name, &off, &size) != 3)
			continue;
		struct field *fd = find(name);
		cr_assert_not_null(fd, "documented field %s is not in the code", name);
		cr_expect_eq(fd->offset, off, "%s: doc offset %zu, code %zu", name, off,
		             fd->offset);
		cr_expect_eq(fd->size, size, "%s: doc size %zu, code %zu", name, size,
		             fd->size);
		fd->seen = 1;
		rows++;
	}
	fclose(f);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		cr_expect(fields[i].seen, "field %s is not documented", fields[i].name);
	cr_assert_eq(rows, (int)(sizeof(fields) / sizeof(fields[0])));
}

Test(layout, documented_reason_codes_match)
{
	FILE *f = fopen(BK_SOURCE_DIR "/docs/shm-layout.md", "r");
	char line[256], name[64];
	unsigned code;
	int rows = 0;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "| %u | %63[a-z_] |", &code, name) == 2 &&
		    strcmp(name, "ACTIVE") && bk_reason_name(code) &&
		    strcmp(bk_reason_name(code), name) == 0)
			rows++;
	fclose(f);
	/* codes are allocated in ranges per feature: count the named ones */
	int named = 0;
	for (unsigned c = 0; c < BK_REASON_COUNT; c++)
		named += bk_reason_name(c) != NULL;
	cr_assert_eq(rows, named, "every reason code documented with its value");
}

_Static_assert(sizeof(struct bk_shm_scope) == BK_CACHE_LINE, "a scope is one cache line");
_Static_assert(offsetof(struct bk_shm, heartbeat_ns) % BK_CACHE_LINE == 0, "own line");
_Static_assert(offsetof(struct bk_shm, change_seq) % BK_CACHE_LINE == 0, "own line");
_Static_assert(offsetof(struct bk_shm, audit_hash) + 32 ==
                   offsetof(struct bk_shm, change_seq),
               "the audit head fills the heartbeat line's padding, no more");
_Static_assert(offsetof(struct bk_shm, global) % BK_CACHE_LINE == 0, "own line");
_Static_assert(BK_SHM_SIZE == 409888, "documented segment size");
_Static_assert(offsetof(struct bk_shm, groups) == 262400 &&
                   offsetof(struct bk_shm, limits) == 278784,
               "v1 ended where the group table starts");
_Static_assert(offsetof(struct bk_shm, valid_until_ns) + 32 ==
                   offsetof(struct bk_shm, global),
               "the firm-wide words stay on change_seq's line");
_Static_assert(BK_TEL_SIZE == 1048640, "documented telemetry size");
_Static_assert(sizeof(struct bk_tel_slot) == 4 * BK_CACHE_LINE, "a slot is four lines");
_Static_assert(offsetof(struct bk_tel_slot, working_orders) == 2 * BK_CACHE_LINE,
               "the venue words on their own line");
_Static_assert(offsetof(struct bk_tel_slot, gseq) == BK_CACHE_LINE,
               "money on its own line");

static sigjmp_buf fault_jmp;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(fault_jmp, 1);
}

Test(layout, engines_cannot_write_the_segment)
{
	struct bk_shm_params p = {
	    .mode = 0644, .tick_ns = 100000, .heartbeat_bound_ns = 5000000};
	char inst[64], err[256];
	struct bk_shm_writer w;
	struct bk_client c;
	volatile int faulted = 0;
	void *rw;

	snprintf(inst, sizeof(inst), "layout-ro-%d", (int)getpid());
	p.instance = inst;
	bk_shm_unlink(inst);
	cr_assert_eq(bk_shm_open(&w, &p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(bk_client_attach(&c, inst), 0);
	/* the new segment is HALTED until the daemon publishes its real state */
	cr_assert_eq(bk_check(&c, -1), BK_HALTED);
	/* a write through the engine's mapping faults */
	signal(SIGSEGV, on_segv);
	if (sigsetjmp(fault_jmp, 1) == 0) {
		*(volatile uint64_t *)&c.shm->global.state = 0;
	} else {
		faulted = 1;
	}
	signal(SIGSEGV, SIG_DFL);
	cr_assert(faulted, "writing through a read-only mapping must fault");
	cr_assert_eq(bk_check(&c, -1), BK_HALTED, "and the halt is still there");
	/* an engine cannot upgrade its mapping to writable */
	rw = (void *)c.shm;
	cr_assert_eq(mprotect(rw, 4096, PROT_READ | PROT_WRITE), -1);
	bk_client_detach(&c);
	bk_shm_close(&w, true);
	bk_shm_unlink(inst);
}

Test(layout, foreign_segment_is_refused)
{
	struct bk_shm_params p = {
	    .mode = 0644, .tick_ns = 100000, .heartbeat_bound_ns = 5000000};
	char inst[64], name[96], err[256];
	struct bk_shm_writer w;
	struct bk_client c;
	int fd;

	snprintf(inst, sizeof(inst), "layout-foreign-%d", (int)getpid());
	p.instance = inst;
	bk_shm_name(name, sizeof(name), inst);
	shm_unlink(name);
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, BK_SHM_SIZE), 0);
	cr_assert_eq(pwrite(fd, "not a breaker", 13, 0), 13);
	close(fd);
	cr_assert_eq(bk_shm_open(&w, &p, err, sizeof(err)), -EPROTO);
	cr_assert(strstr(err, "not a breaker segment"), "clear message, got: %s", err);
	cr_assert_eq(bk_client_attach(&c, inst), -EPROTO, "engines refuse it too");
	shm_unlink(name);
}

Test(layout, segment_owned_by_someone_else_is_refused)
{
	struct bk_shm_params p = {
	    .mode = 0644, .tick_ns = 100000, .heartbeat_bound_ns = 5000000};
	char inst[64], name[96], err[256];
	struct bk_shm_writer w;
	int fd;

	snprintf(inst, sizeof(inst), "layout-owner-%d", (int)getpid());
	p.instance = inst;
	bk_shm_unlink(inst);
	cr_assert_eq(bk_shm_open(&w, &p, err, sizeof(err)), 0, "%s", err);
	bk_shm_close(&w, true);
	bk_shm_name(name, sizeof(name), inst);
	fd = shm_open(name, O_RDWR, 0);
	cr_assert_geq(fd, 0);
	/* a planted segment: right layout, wrong mode (and owner, when we can) */
	cr_assert_eq(fchmod(fd, 0666), 0);
	if (geteuid() == 0)
		cr_assert_eq(fchown(fd, 65534, 65534), 0);
	close(fd);
	cr_assert_eq(bk_shm_open(&w, &p, err, sizeof(err)), -EPROTO);
	cr_assert(strstr(err, "refusing"), "clear message: %s", err);
	shm_unlink(name);
}

/* A layout 1 segment as an older breakerd left it: our uid, 0644, one name. */
static void plant_v1(const char *inst, uint32_t seq)
{
	char name[96];
	int fd;
	struct bk_shm *m;

	bk_shm_name(name, sizeof(name), inst);
	shm_unlink(name);
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fchmod(fd, 0644), 0);
	cr_assert_eq(ftruncate(fd, 262400), 0);
	m = mmap(NULL, 262400, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(m, MAP_FAILED);
	close(fd);
	m->hdr.magic = BK_SHM_MAGIC;
	m->hdr.segment_size = 262400;
	atomic_store(&m->heartbeat_ns, bk_now_mono_ns());
	atomic_store(&m->change_seq, seq);
	atomic_store(&m->global.state, BK_STATE_PACK(BK_ACTIVE, 0, 0));
	atomic_store(&m->hdr.layout_version, 1);
	munmap(m, 262400);
}

Test(layout, clients_refuse_a_layout_1_segment)
{
	char inst[64];
	struct bk_client c;

	snprintf(inst, sizeof(inst), "layout-v1c-%d", (int)getpid());
	plant_v1(inst, 7);
	cr_assert_eq(bk_client_attach(&c, inst), -EPROTO, "a v2 engine must not read v1");
	bk_shm_unlink(inst);
}

Test(layout, daemon_retires_its_layout_1_segment_and_halts_its_readers)
{
	struct bk_shm_params p = {
	    .mode = 0644, .tick_ns = 100000, .heartbeat_bound_ns = 5000000};
	char inst[64], name[96], err[256];
	struct bk_shm_writer w;
	struct bk_client c;
	const struct bk_shm *old;
	int fd;

	snprintf(inst, sizeof(inst), "layout-v1d-%d", (int)getpid());
	p.instance = inst;
	plant_v1(inst, 7);
	/* an old engine's read-only mapping of the v1 segment */
	bk_shm_name(name, sizeof(name), inst);
	fd = shm_open(name, O_RDONLY, 0);
	cr_assert_geq(fd, 0);
	old = mmap(NULL, 262400, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(old, MAP_FAILED);
	cr_assert_eq(BK_STATE_MODE(atomic_load(&old->global.state)), BK_ACTIVE);

	cr_assert_eq(bk_shm_open(&w, &p, err, sizeof(err)), 0, "v1 replaced, got: %s",
	             err);
	cr_assert(w.created, "a new segment was made");
	/* the old readers see a stopped daemon and HALTED, and were woken */
	cr_assert_eq(atomic_load(&old->heartbeat_ns), 0);
	cr_assert_eq(BK_STATE_MODE(atomic_load(&old->global.state)), BK_HALTED);
	cr_assert_neq(atomic_load(&old->change_seq), 7);
	/* new readers get layout 2, zeroed group and limits tables */
	cr_assert_eq(bk_client_attach(&c, inst), 0);
	cr_assert_eq(c.shm->hdr.layout_version, 2);
	cr_assert_eq(c.shm->hdr.segment_size, 409888);
	cr_assert_eq(c.shm->group_capacity, 256);
	cr_assert_eq(c.shm->group_table_offset, 262400);
	cr_assert_eq(c.shm->limits_table_offset, 278784);
	cr_assert_eq(c.shm->limits_entry_size, 32);
	cr_assert_eq(c.shm->group_entry_size, 64);
	cr_assert_eq(atomic_load(&c.shm->hdr.group_count), 0);
	bk_client_detach(&c);
	munmap((void *)old, 262400);
	bk_shm_close(&w, true);
	bk_shm_unlink(inst);
}

Test(layout, read_reason_names_the_group_holding_the_latch)
{
	struct bk_shm_params p = {
	    .mode = 0644, .tick_ns = 100000, .heartbeat_bound_ns = 5000000};
	char inst[64], err[256];
	struct bk_shm_writer w;
	struct bk_client c;
	struct bk_reason r;

	snprintf(inst, sizeof(inst), "layout-holder-%d", (int)getpid());
	p.instance = inst;
	bk_shm_unlink(inst);
	cr_assert_eq(bk_shm_open(&w, &p, err, sizeof(err)), 0, "%s", err);
	bk_shm_heartbeat(&w, bk_now_mono_ns());
	bk_shm_publish(&w, -1, BK_STATE_PACK(BK_ACTIVE, 0, 0), 0, 0);
	bk_shm_add_strategy(&w, 0, "momo");
	bk_shm_add_group(&w, 3, "venue:XETR");
	bk_shm_publish_group(&w, 3, BK_STATE_PACK(BK_HALTED, 13, 42), 1u << 13, 1234);
	bk_shm_publish(&w, 0, BK_STATE_PACK_HELD(BK_HALTED, 13, 4, 42), 0, 1234);
	bk_shm_changed(&w);
	cr_assert_eq(bk_client_attach(&c, inst), 0);
	cr_assert_eq(c.shm->hdr.group_count, 4);
	cr_assert_eq(bk_check(&c, 0), BK_HALTED);
	bk_read_reason(&c, 0, &r);
	cr_assert_eq(r.mode, BK_HALTED);
	cr_assert_eq(r.reason_code, 13);
	cr_assert_eq(r.actor_uid, 42);
	cr_assert_eq(r.since_wall_ns, 1234);
	cr_assert_eq(r.scope, BK_SCOPE_GROUP);
	cr_assert_eq(r.scope_slot, 3);
	cr_assert_str_eq(r.scope_name, "venue:XETR");
	/* the strategy's own latch */
	bk_shm_publish(&w, 0, BK_STATE_PACK(BK_REDUCE_ONLY, 1, 7), 1u << 1, 99);
	bk_read_reason(&c, 0, &r);
	cr_assert_eq(r.scope, BK_SCOPE_STRATEGY);
	cr_assert_str_eq(r.scope_name, "momo");
	/* global wins over the strategy */
	bk_shm_publish(&w, -1, BK_STATE_PACK(BK_HALTED, 2, 0), 1u << 2, 5);
	bk_read_reason(&c, 0, &r);
	cr_assert_eq(r.scope, BK_SCOPE_GLOBAL);
	cr_assert_str_eq(r.scope_name, "");
	bk_shm_publish(&w, -1, BK_STATE_PACK(BK_ACTIVE, 0, 0), 0, 0);
	bk_shm_publish(&w, 0, BK_STATE_PACK(BK_ACTIVE, 0, 0), 0, 0);
	bk_read_reason(&c, 0, &r);
	cr_assert_eq(r.scope, BK_SCOPE_NONE);
	bk_client_detach(&c);
	bk_shm_close(&w, true);
	bk_shm_unlink(inst);
}

Test(layout, limits_are_the_strictest_of_global_and_the_slot)
{
	struct bk_shm_params p = {
	    .mode = 0644, .tick_ns = 100000, .heartbeat_bound_ns = 5000000};
	char inst[64], err[256];
	struct bk_shm_writer w;
	struct bk_client c;
	struct bk_limit_values l;

	snprintf(inst, sizeof(inst), "layout-limits-%d", (int)getpid());
	p.instance = inst;
	bk_shm_unlink(inst);
	cr_assert_eq(bk_shm_open(&w, &p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(bk_client_attach(&c, inst), 0);
	/* a new segment: no limits */
	cr_assert_eq(bk_limits(&c, 5, &l), 0);
	cr_assert_eq(l.flags, 0);
	cr_assert_float_eq(l.size_factor, 1.0, 1e-12);
	bk_shm_set_limits(&w, 0, BK_LIMIT_SIZE_FACTOR | BK_LIMIT_MAX_QTY, 0.5, 100, 0);
	bk_shm_set_limits(&w, 1 + 5, BK_LIMIT_SIZE_FACTOR | BK_LIMIT_MAX_NOTIONAL, 0.25,
	                  0, 1e6);
	cr_assert_eq(bk_limits(&c, 5, &l), 0);
	cr_assert_eq(l.flags,
	             BK_LIMIT_SIZE_FACTOR | BK_LIMIT_MAX_QTY | BK_LIMIT_MAX_NOTIONAL);
	cr_assert_float_eq(l.size_factor, 0.25, 1e-12);
	cr_assert_float_eq(l.max_qty, 100, 1e-12);
	cr_assert_float_eq(l.max_notional, 1e6, 1e-6);
	/* global alone, and another slot, see only the global entry */
	cr_assert_eq(bk_limits(&c, BK_GLOBAL_ONLY, &l), 0);
	cr_assert_float_eq(l.size_factor, 0.5, 1e-12);
	cr_assert_eq(bk_limits(&c, 6, &l), 0);
	cr_assert_eq(l.flags, BK_LIMIT_SIZE_FACTOR | BK_LIMIT_MAX_QTY);
	/* NaN is no limit anybody meant: 0 */
	bk_shm_set_limits(&w, 1 + 6, BK_LIMIT_MAX_QTY, 0, __builtin_nan(""), 0);
	cr_assert_eq(bk_limits(&c, 6, &l), 0);
	cr_assert_float_eq(l.max_qty, 0, 1e-12);
	/* a bad slot fails closed */
	cr_assert_eq(bk_limits(&c, 4096, &l), -EINVAL);
	cr_assert_float_eq(l.size_factor, 0, 1e-12);
	bk_client_detach(&c);
	bk_shm_close(&w, true);
	bk_shm_unlink(inst);
}

/* A telemetry segment as a version 1 breakerd made it: 128-byte slots. */
static void plant_tel(const char *inst, uint32_t version, size_t size)
{
	char name[96];
	struct bk_tel_header h = {.magic = BK_TEL_MAGIC,
	                          .slot_size = 128,
	                          .capacity = BK_MAX_STRATEGIES,
	                          .segment_size = size};
	int fd;

	bk_shm_name(name, sizeof(name) - 4, inst);
	strcat(name, BK_TEL_SUFFIX);
	shm_unlink(name);
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0660);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	atomic_store(&h.version, version);
	cr_assert_eq(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	close(fd);
}

Test(layout, clients_refuse_a_version_1_telemetry_segment)
{
	char inst[64];
	struct bk_tel_client t;

	snprintf(inst, sizeof(inst), "layout-tel1-%d", (int)getpid());
	plant_tel(inst, 1, 524352); /* as version 1 made it */
	cr_assert_eq(bk_tel_attach(&t, inst), -EPROTO,
	             "a v2 engine cannot report into v1");
	plant_tel(inst, 1, BK_TEL_SIZE); /* the v2 size, but it says version 1 */
	cr_assert_eq(bk_tel_attach(&t, inst), -EPROTO);
	plant_tel(inst, BK_TEL_VERSION, BK_TEL_SIZE); /* the control: accepted */
	cr_assert_eq(bk_tel_attach(&t, inst), 0);
	bk_tel_detach(&t);
	bk_tel_unlink(inst);
}
