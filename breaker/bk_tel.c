#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bk_tel.h"

#define ACQ           memory_order_acquire
#define RLX           memory_order_relaxed
#define SEQLOCK_TRIES 4

static int tel_name(char *buf, size_t len, const char *instance)
{
	int rv = bk_shm_name(buf, len - sizeof(BK_TEL_SUFFIX), instance);

	if (rv == 0)
		strcat(buf, BK_TEL_SUFFIX);
	return rv;
}

static int tel_open_once(struct bk_tel_reader *r, const char *instance, mode_t mode,
                         char *err, size_t errlen);

static int check_existing(int fd, mode_t mode, char *err, size_t errlen)
{
	struct bk_tel_header h;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid != geteuid() || (st.st_mode & 07777) != mode) {
		snprintf(err, errlen, "telemetry segment owned by uid %u mode %04o",
		         (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -EPROTO;
	}
	/* a hard link (another instance's telemetry?): replaced, not shared */
	if (st.st_nlink != 1) {
		snprintf(err, errlen, "telemetry segment has %u names (a hard link)",
		         (unsigned)st.st_nlink);
		return -EPROTO;
	}
	if ((size_t)st.st_size != BK_TEL_SIZE ||
	    pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    h.magic != BK_TEL_MAGIC || h.version != BK_TEL_VERSION) {
		snprintf(err, errlen,
		         "telemetry segment is not breaker telemetry version %u "
		         "(size %lld)",
		         BK_TEL_VERSION, (long long)st.st_size);
		return -EPROTO;
	}
	return 0;
}

/*
 * Telemetry is not authoritative: a foreign, damaged or truncated segment is
 * replaced, never trusted and never a reason not to start.
 */
int bk_tel_open(struct bk_tel_reader *r, const char *instance, mode_t mode, char *err,
                size_t errlen)
{
	int rv = tel_open_once(r, instance, mode, err, errlen);

	if (rv == -EPROTO) {
		fprintf(stderr, "breakerd: %s: replacing it\n", err);
		bk_tel_unlink(instance);
		err[0] = '\0';
		rv = tel_open_once(r, instance, mode, err, errlen);
	}
	return rv;
}

static int tel_open_once(struct bk_tel_reader *r, const char *instance, mode_t mode,
                         char *err, size_t errlen)
{
	char name[BK_INSTANCE_MAX + 24];
	int fd, rv, created;
	void *p;

	r->tel = NULL;
	if ((rv = tel_name(name, sizeof(name), instance)) < 0)
		return rv;
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	created = fd >= 0;
	if (fd < 0 && errno == EEXIST)
		fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (created && (fchmod(fd, mode) < 0 || ftruncate(fd, BK_TEL_SIZE) < 0))
		rv = -errno;
	else if (!created)
		rv = check_existing(fd, mode, err, errlen);
	if (rv < 0) {
		close(fd);
		if (created)
			shm_unlink(name);
		return rv;
	}
	p = mmap(NULL, BK_TEL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	rv = -errno;
	if (p == MAP_FAILED) {
		close(fd);
		return rv;
	}
	r->tel = p;
	r->fd = fd;
	if (created) {
		r->tel->hdr.magic = BK_TEL_MAGIC;
		r->tel->hdr.slot_size = sizeof(struct bk_tel_slot);
		r->tel->hdr.capacity = BK_MAX_STRATEGIES;
		r->tel->hdr.segment_size = BK_TEL_SIZE;
		atomic_store_explicit(&r->tel->hdr.version, BK_TEL_VERSION,
		                      memory_order_release);
	}
	return 0;
}

void bk_tel_close(struct bk_tel_reader *r)
{
	if (r->tel) {
		munmap(r->tel, BK_TEL_SIZE);
		close(r->fd);
	}
	r->tel = NULL;
}

int bk_tel_check(struct bk_tel_reader *r, const char *instance, mode_t mode)
{
	char err[256] = "";
	struct stat st;

	if (fstat(r->fd, &st) == 0 && (size_t)st.st_size == BK_TEL_SIZE)
		return 0;
	fprintf(stderr,
	        "breakerd: telemetry segment was resized by someone: replacing it\n");
	bk_tel_close(r);
	bk_tel_unlink(instance);
	return bk_tel_open(r, instance, mode, err, sizeof(err));
}

int bk_tel_unlink(const char *instance)
{
	char name[BK_INSTANCE_MAX + 24];
	int rv = tel_name(name, sizeof(name), instance);

	return rv < 0 ? rv : (shm_unlink(name) < 0 ? -errno : 0);
}

static double load_f(BK_ATOMIC(uint64_t) * w)
{
	return bk_u2f(atomic_load_explicit(w, RLX));
}

void bk_tel_read(const struct bk_tel_reader *r, int slot, struct bk_tel_snap *s)
{
	struct bk_tel_slot *t = &r->tel->slots[slot];
	uint32_t q;

	s->orders = atomic_load_explicit(&t->orders, ACQ);
	s->rejects = atomic_load_explicit(&t->rejects, ACQ);
	s->cancels = atomic_load_explicit(&t->cancels, ACQ);
	s->heartbeat_ns = atomic_load_explicit(&t->heartbeat_ns, ACQ);
	/* each time word first (acquire): its value is at least that new */
	s->working_ns = atomic_load_explicit(&t->working_ns, ACQ);
	s->working = atomic_load_explicit(&t->working_orders, RLX);
	s->md_ns = atomic_load_explicit(&t->md_last_ns, ACQ);
	s->session_ns = atomic_load_explicit(&t->session_ns, ACQ);
	s->session = atomic_load_explicit(&t->session, RLX);
	s->consistent = false;
	for (int i = 0; i < SEQLOCK_TRIES && !s->consistent; i++) {
		q = atomic_load_explicit(&t->gseq, ACQ);
		s->fills = atomic_load_explicit(&t->fills, RLX);
		s->fill_cash = load_f(&t->fill_cash);
		s->fees = load_f(&t->fees);
		s->balance = load_f(&t->balance);
		s->position = load_f(&t->position);
		s->gross = load_f(&t->gross);
		s->pnl = load_f(&t->pnl);
		s->opening_seq = atomic_load_explicit(&t->opening_seq, RLX);
		s->opening_fills = atomic_load_explicit(&t->opening_fills, RLX);
		s->opening_base = load_f(&t->opening_base);
		atomic_thread_fence(ACQ);
		s->consistent = !(q & 1u) && q == atomic_load_explicit(&t->gseq, RLX);
	}
}

void bk_tel_ack(const struct bk_tel_reader *r, int slot, uint32_t *seq, uint64_t *ns,
                uint32_t *pid)
{
	struct bk_tel_slot *t = &r->tel->slots[slot];

	*seq = atomic_load_explicit(&t->ack_seq, ACQ);
	*ns = atomic_load_explicit(&t->ack_ns, RLX);
	*pid = atomic_load_explicit(&t->pid, RLX);
}
