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
    F("heartbeat_ns", heartbeat_ns),
    F("audit.lock", audit_lock),
    F("audit.seq", audit_seq),
    F("audit.end", audit_end),
    F("audit.hash", audit_hash),
    F("change_seq", change_seq),
    F("global", global),
    F("strategies", strategies),
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
	cr_assert_eq(rows, BK_REASON_COUNT,
	             "every reason code documented with its value");
}

_Static_assert(sizeof(struct bk_shm_scope) == BK_CACHE_LINE, "a scope is one cache line");
_Static_assert(offsetof(struct bk_shm, heartbeat_ns) % BK_CACHE_LINE == 0, "own line");
_Static_assert(offsetof(struct bk_shm, change_seq) % BK_CACHE_LINE == 0, "own line");
_Static_assert(offsetof(struct bk_shm, audit_hash) + 32 ==
                   offsetof(struct bk_shm, change_seq),
               "the audit head fills the heartbeat line's padding, no more");
_Static_assert(offsetof(struct bk_shm, global) % BK_CACHE_LINE == 0, "own line");
_Static_assert(BK_SHM_SIZE == 262400, "documented segment size");
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
