// The header-only client compiles and works from C++: a C++ writer lays out a
// segment by the documented rules, the client reads it back.
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "breaker_client.h"

static bk_shm *make_segment(const std::string &inst)
{
	std::string name = BK_SHM_PREFIX + inst;
	shm_unlink(name.c_str());
	int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, BK_SHM_SIZE), 0);
	void *p = mmap(nullptr, BK_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(p, MAP_FAILED);
	auto *s = static_cast<bk_shm *>(p);
	s->hdr.magic = BK_SHM_MAGIC;
	s->hdr.segment_size = BK_SHM_SIZE;
	s->hdr.heartbeat_bound_ns = 1000000;
	std::snprintf(s->strategies[0].name, BK_NAME_MAX, "%s", "cxx-strat");
	s->hdr.strategy_count.store(1, std::memory_order_release);
	s->hdr.layout_version.store(BK_LAYOUT_VERSION, std::memory_order_release);
	return s;
}

Test(client_cxx, check_and_liveness_from_cpp)
{
	std::string inst = "cxx-" + std::to_string(getpid());
	bk_shm *w = make_segment(inst);
	bk_client c;

	cr_assert_eq(bk_client_attach(&c, inst.c_str()), 0);
	int slot = bk_client_resolve(&c, "cxx-strat");
	cr_assert_eq(slot, 0);
	cr_assert_eq(bk_client_resolve(&c, "nope"), -ENOENT);
	cr_assert_eq(bk_check(&c, slot), BK_ACTIVE);
	w->strategies[0].state.store(BK_STATE_PACK(BK_REDUCE_ONLY, 3, 7),
	                             std::memory_order_release);
	cr_assert_eq(bk_check(&c, slot), BK_REDUCE_ONLY);
	w->global.state.store(BK_STATE_PACK(BK_HALTED, 1, 0), std::memory_order_release);
	cr_assert_eq(bk_check(&c, slot), BK_HALTED);
	w->global.state.store(0, std::memory_order_release);
	// liveness: no heartbeat yet -> fail closed
	uint64_t now = bk_now_mono_ns();
	cr_assert_eq(bk_check_live(&c, slot, now, 0), BK_HALTED);
	w->heartbeat_ns.store(now, std::memory_order_release);
	cr_assert_eq(bk_check_live(&c, slot, now + 1000, 0), BK_REDUCE_ONLY);
	cr_assert_eq(bk_check_live(&c, slot, now + 2000000, 0), BK_HALTED,
	             "stale after bound");
	bk_reason r;
	bk_read_reason(&c, slot, &r);
	cr_assert_eq(r.reason_code, 3u);
	cr_assert_eq(r.actor_uid, 7u);
	bk_client_detach(&c);
	munmap(w, BK_SHM_SIZE);
	shm_unlink((BK_SHM_PREFIX + inst).c_str());
}

// A segment someone else made (no daemon running) is no daemon:
// attach refuses it, so the engine fails closed. Needs root to chown.
Test(client_cxx, forged_segment_is_refused_from_cpp)
{
	std::string inst = "cxx-forged-" + std::to_string(getpid());
	bk_shm *w = make_segment(inst);
	bk_client c;
	std::string path = "/dev/shm" + (BK_SHM_PREFIX + inst);

	w->heartbeat_ns.store(bk_now_mono_ns(), std::memory_order_release);
	if (geteuid() != 0)
		cr_skip("chown needs root");
	cr_assert_eq(chown(path.c_str(), 65534, 65534), 0);
	cr_assert_eq(bk_client_attach(&c, inst.c_str()), -EPERM, "owned by uid 65534");
	cr_assert_eq(chown(path.c_str(), 0, 0), 0);
	cr_assert_eq(chmod(path.c_str(), 0666), 0);
	cr_assert_eq(bk_client_attach(&c, inst.c_str()), -EPERM, "writable by others");
	cr_assert_eq(chmod(path.c_str(), 0644), 0);
	cr_assert_eq(bk_client_attach(&c, inst.c_str()), 0);
	bk_client_detach(&c);
	munmap(w, BK_SHM_SIZE);
	shm_unlink((BK_SHM_PREFIX + inst).c_str());
}

// A heartbeat further ahead of our clock than the bound is not live.
Test(client_cxx, heartbeat_from_the_future_is_not_live_from_cpp)
{
	std::string inst = "cxx-future-" + std::to_string(getpid());
	bk_shm *w = make_segment(inst);
	bk_client c;

	cr_assert_eq(bk_client_attach(&c, inst.c_str()), 0);
	uint64_t now = bk_now_mono_ns();
	w->heartbeat_ns.store(now + 5000000000ull, std::memory_order_release);
	cr_assert_eq(bk_check_live(&c, BK_GLOBAL_ONLY, now, 0), BK_HALTED);
	w->heartbeat_ns.store(now + 500000, std::memory_order_release); // within 1 ms
	cr_assert_eq(bk_check_live(&c, BK_GLOBAL_ONLY, now, 0), BK_ACTIVE);
	bk_client_detach(&c);
	munmap(w, BK_SHM_SIZE);
	shm_unlink((BK_SHM_PREFIX + inst).c_str());
}
