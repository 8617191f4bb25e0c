#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bk_shm.h"

#define REL memory_order_release
#define RLX memory_order_relaxed

static void fill_header(struct bk_shm *s, const struct bk_shm_params *p)
{
	struct bk_shm_header *h = &s->hdr;

	h->magic = BK_SHM_MAGIC;
	h->header_size = (uint32_t)offsetof(struct bk_shm, strategies);
	h->segment_size = BK_SHM_SIZE;
	h->strategy_capacity = BK_MAX_STRATEGIES;
	h->strategy_entry_size = sizeof(struct bk_shm_scope);
	h->strategy_table_offset = (uint32_t)offsetof(struct bk_shm, strategies);
	h->daemon_pid = (uint32_t)getpid();
	h->tick_period_ns = p->tick_ns;
	h->heartbeat_bound_ns = p->heartbeat_bound_ns;
	s->group_capacity = BK_MAX_GROUPS;
	s->group_entry_size = sizeof(struct bk_shm_scope);
	s->group_table_offset = (uint32_t)offsetof(struct bk_shm, groups);
	s->limits_table_offset = (uint32_t)offsetof(struct bk_shm, limits);
	s->limits_entry_size = sizeof(struct bk_shm_limits);
	/* the limits table stays zero (ftruncate): no limits until configured */
	/* Fail closed until the log is replayed and the real state published. */
	atomic_store_explicit(&s->global.state, BK_STATE_PACK(BK_HALTED, 0, 0), REL);
}

/*
 * A layout 1 segment our own previous (older) daemon left at the name. Its
 * engines read it with a layout 1 client that cannot read the new one, so it
 * cannot be taken over in place: make it say "daemon stopped, HALTED" to
 * whoever still maps it (heartbeat 0, global HALTED, a change_seq bump wakes
 * the sleepers), then unlink it so that a new segment can be made at the name.
 */
#define BK_LAYOUT_V1_SIZE 262400u
static int retire_v1(int fd, const char *name)
{
	struct bk_shm *old =
	    mmap(NULL, BK_LAYOUT_V1_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (old == MAP_FAILED)
		return -errno;
	/* v1's global scope and hot words are at the offsets v2 kept */
	atomic_store_explicit(&old->global.state, BK_STATE_PACK(BK_HALTED, 0, 0), REL);
	atomic_store_explicit(&old->heartbeat_ns, 0, REL);
	atomic_fetch_add_explicit(&old->change_seq, 1, REL);
	syscall(SYS_futex, &old->change_seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	munmap(old, BK_LAYOUT_V1_SIZE);
	return shm_unlink(name) < 0 ? -errno : 0;
}

static int check_existing(int fd, mode_t mode, char *err, size_t errlen)
{
	struct bk_shm_header h;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	/* Someone else's segment at our name could be written behind our back. */
	if (st.st_uid != geteuid() || (st.st_mode & 07777) != mode) {
		snprintf(
		    err, errlen,
		    "segment is owned by uid %u with mode %04o, not by this "
		    "daemon's uid %u with %04o: refusing it (remove it if it is stale)",
		    (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
		    (unsigned)geteuid(), (unsigned)mode);
		return -EPROTO;
	}
	/* a second name: a hard link, to another instance's segment say (any
	 * user may make one where fs.protected_hardlinks is 0) */
	if (st.st_nlink != 1) {
		snprintf(err, errlen,
		         "segment has %u names (a hard link, to another instance's "
		         "segment?): refusing it (remove this name if it is stale)",
		         (unsigned)st.st_nlink);
		return -EPROTO;
	}
	if ((size_t)st.st_size < sizeof(h) ||
	    pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    h.magic != BK_SHM_MAGIC) {
		snprintf(err, errlen, "not a breaker segment (size %lld, no magic)",
		         (long long)st.st_size);
		return -EPROTO;
	}
	if (h.layout_version == 1 && h.segment_size == BK_LAYOUT_V1_SIZE &&
	    (size_t)st.st_size == BK_LAYOUT_V1_SIZE)
		return 1; /* ours, from before layout 2: the caller retires it */
	if (h.layout_version != BK_LAYOUT_VERSION || h.segment_size != BK_SHM_SIZE ||
	    (size_t)st.st_size != BK_SHM_SIZE) {
		snprintf(err, errlen,
		         "segment has layout version %u, size %llu; this daemon "
		         "is layout %u, size %zu",
		         (unsigned)h.layout_version, (unsigned long long)h.segment_size,
		         BK_LAYOUT_VERSION, (size_t)BK_SHM_SIZE);
		return -EPROTO;
	}
	return 0;
}

static int open_segment(struct bk_shm_writer *w, const struct bk_shm_params *p, char *err,
                        size_t errlen)
{
	int fd = shm_open(w->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, p->mode);

	w->created = fd >= 0;
	if (fd < 0 && errno == EEXIST) {
		fd = shm_open(w->name, O_RDWR | O_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		int rv = check_existing(fd, p->mode, err, errlen);
		if (rv == 1) {
			rv = retire_v1(fd, w->name);
			close(fd);
			if (rv < 0) {
				snprintf(err, errlen,
				         "cannot retire the layout 1 segment: %s",
				         strerror(-rv));
				return rv;
			}
			fd = shm_open(w->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			              p->mode);
			w->created = fd >= 0;
		} else if (rv < 0) {
			close(fd);
			return rv;
		} else {
			return fd;
		}
	}
	if (fd < 0)
		return -errno;
	if (fchmod(fd, p->mode) < 0 || ftruncate(fd, BK_SHM_SIZE) < 0) {
		int rv = -errno;
		close(fd);
		shm_unlink(w->name);
		return rv;
	}
	return fd;
}

int bk_shm_open(struct bk_shm_writer *w, const struct bk_shm_params *p, char *err,
                size_t errlen)
{
	void *m;
	int fd, rv;

	memset(w, 0, sizeof(*w));
	err[0] = '\0';
	if ((rv = bk_shm_name(w->name, sizeof(w->name), p->instance)) < 0)
		return rv;
	if ((fd = open_segment(w, p, err, errlen)) < 0)
		return fd;
	m = mmap(NULL, BK_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	rv = -errno;
	close(fd);
	if (m == MAP_FAILED) {
		if (w->created)
			shm_unlink(w->name);
		return rv;
	}
	w->shm = m;
	if (w->created) {
		fill_header(w->shm, p);
		/* Readers treat version 0 as "not ready": store it last. */
		atomic_store_explicit(&w->shm->hdr.layout_version, BK_LAYOUT_VERSION,
		                      REL);
	} else {
		w->shm->hdr.daemon_pid = (uint32_t)getpid();
		w->shm->hdr.tick_period_ns = p->tick_ns;
		w->shm->hdr.heartbeat_bound_ns = p->heartbeat_bound_ns;
	}
	return 0;
}

void bk_shm_close(struct bk_shm_writer *w, bool clean)
{
	if (!w->shm)
		return;
	if (clean) {
		atomic_store_explicit(&w->shm->heartbeat_ns, 0, REL);
		bk_shm_changed(w);
	}
	munmap(w->shm, BK_SHM_SIZE);
	w->shm = NULL;
}

int bk_shm_unlink(const char *instance)
{
	char name[BK_INSTANCE_MAX + 16];
	int rv = bk_shm_name(name, sizeof(name), instance);

	if (rv < 0)
		return rv;
	return shm_unlink(name) < 0 ? -errno : 0;
}

static struct bk_shm_scope *scope_at(struct bk_shm_writer *w, int slot)
{
	if (slot < 0)
		return &w->shm->global;
	return &w->shm->strategies[slot];
}

static void publish_scope(struct bk_shm_scope *s, uint64_t state, uint32_t latches,
                          uint64_t since_ns);

void bk_shm_publish(struct bk_shm_writer *w, int slot, uint64_t state, uint32_t latches,
                    uint64_t since_ns)
{
	publish_scope(scope_at(w, slot), state, latches, since_ns);
}

void bk_shm_publish_group(struct bk_shm_writer *w, int g, uint64_t state,
                          uint32_t latches, uint64_t since_ns)
{
	publish_scope(&w->shm->groups[g], state, latches, since_ns);
}

static void publish_scope(struct bk_shm_scope *s, uint64_t state, uint32_t latches,
                          uint64_t since_ns)
{
	/* odd: a previous daemon died mid-write; start from the next even value */
	uint32_t raw = atomic_load_explicit(&s->seq, RLX), q = (raw + 1u) & ~1u;

	if (!(raw & 1u) && atomic_load_explicit(&s->state, RLX) == state &&
	    atomic_load_explicit(&s->latches, RLX) == latches &&
	    atomic_load_explicit(&s->since_ns, RLX) == since_ns)
		return;
	atomic_store_explicit(&s->seq, q + 1, RLX);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&s->since_ns, since_ns, RLX);
	atomic_store_explicit(&s->latches, latches, RLX);
	/* The one word the engines' fast path reads. */
	atomic_store_explicit(&s->state, state, REL);
	atomic_store_explicit(&s->seq, q + 2, REL);
}

void bk_shm_add_strategy(struct bk_shm_writer *w, int slot, const char *name)
{
	struct bk_shm_scope *s = &w->shm->strategies[slot];
	uint32_t n = atomic_load_explicit(&w->shm->hdr.strategy_count, RLX);

	/* A rename or a tombstone rewrites a published name: under the slot's
	 * seqlock (odd while writing), so a resolver can tell a torn copy. */
	if (strncmp(s->name, name, sizeof(s->name)) != 0) {
		uint32_t raw = atomic_load_explicit(&s->seq, RLX), q = (raw + 1u) & ~1u;

		atomic_store_explicit(&s->seq, q + 1, RLX);
		atomic_thread_fence(memory_order_release);
		memset(s->name, 0, sizeof(s->name));
		snprintf(s->name, sizeof(s->name), "%s", name);
		atomic_store_explicit(&s->seq, q + 2, REL);
	}
	if ((uint32_t)slot + 1 > n)
		atomic_store_explicit(&w->shm->hdr.strategy_count, (uint32_t)slot + 1,
		                      REL);
}

void bk_shm_add_group(struct bk_shm_writer *w, int g, const char *name)
{
	struct bk_shm_scope *s = &w->shm->groups[g];
	uint32_t n = atomic_load_explicit(&w->shm->hdr.group_count, RLX);

	snprintf(s->name, sizeof(s->name), "%s", name);
	if ((uint32_t)g + 1 > n)
		atomic_store_explicit(&w->shm->hdr.group_count, (uint32_t)g + 1, REL);
}

void bk_shm_set_limits(struct bk_shm_writer *w, int entry, uint32_t flags,
                       double size_factor, double max_qty, double max_notional)
{
	struct bk_shm_limits *e = &w->shm->limits[entry];
	uint32_t raw = atomic_load_explicit(&e->seq, RLX), q = (raw + 1u) & ~1u;
	uint64_t u[3];

	memcpy(&u[0], &size_factor, 8);
	memcpy(&u[1], &max_qty, 8);
	memcpy(&u[2], &max_notional, 8);
	if (!(raw & 1u) && atomic_load_explicit(&e->flags, RLX) == flags &&
	    atomic_load_explicit(&e->size_factor, RLX) == u[0] &&
	    atomic_load_explicit(&e->max_qty, RLX) == u[1] &&
	    atomic_load_explicit(&e->max_notional, RLX) == u[2])
		return;
	atomic_store_explicit(&e->seq, q + 1, RLX);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&e->flags, flags, RLX);
	atomic_store_explicit(&e->size_factor, u[0], RLX);
	atomic_store_explicit(&e->max_qty, u[1], RLX);
	atomic_store_explicit(&e->max_notional, u[2], RLX);
	atomic_store_explicit(&e->seq, q + 2, REL);
}

void bk_shm_changed(struct bk_shm_writer *w)
{
	atomic_fetch_add_explicit(&w->shm->change_seq, 1, REL);
	/* Shared (not _PRIVATE) futex: the waiters are other processes. */
	syscall(SYS_futex, &w->shm->change_seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

void bk_shm_heartbeat(struct bk_shm_writer *w, uint64_t mono_ns)
{
	atomic_store_explicit(&w->shm->heartbeat_ns, mono_ns, REL);
}
