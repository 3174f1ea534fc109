// SPDX-License-Identifier: MIT
/*
 * The fault service: one userfaultfd per process, in write-protect mode,
 * over every space's window, and one thread that applies the write-fault
 * rule.  A vCPU (or any thread) writing a write-protected page blocks in the
 * kernel until this thread has copied or reused the frame and woken it; the
 * write then re-executes and lands in the frame the space now maps.
 *
 * Locks, in the order they are taken:
 *  - svc.life: the service's start and stop (svc.users).  Never held by the
 *    handler thread, so service_put() may join it with svc.life held.
 *  - svc.lock: the address -> space table.  The handler holds it only to
 *    find the space and take its pool lock (hand over hand): a space stays
 *    registered until fault_service_remove(), which needs svc.lock, and
 *    space_destroy() then needs the pool lock the handler holds, so the
 *    space cannot be freed under a resolution.  Clones, destroys and other
 *    families do not wait for a copy.
 *  - pool->lock: the family's lock, held through a resolution.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mm/mm_internal.h"
#include "mm/thread_hook.h"

#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif

static struct {
	pthread_mutex_t life;
	struct mm_lock lock;
	int uffd;
	int stop_fd;
	pthread_t thread;
	unsigned int users; /* under svc.life */
	struct space **spaces; /* under svc.lock */
	unsigned int nspaces, cap;
	bool spans_vmas; /* one UFFDIO_WRITEPROTECT may cross VMAs (Linux > 6.1) */
	bool missing_shmem; /* missing mode on shared memory (lazy spaces, lazy.c) */
	/* The mapping budget: vm.max_map_count, and our estimate of the
	 * process's VMAs (window_map() adds 2, a recount corrects it). */
	uint64_t vma_limit;
	_Atomic uint64_t vma_est;
	_Atomic uint64_t maps_since_count;
} svc = {
	.life = PTHREAD_MUTEX_INITIALIZER,
	.lock = { .mutex = PTHREAD_MUTEX_INITIALIZER },
	.uffd = -1,
	.stop_fd = -1,
};

/*
 * vm.max_map_count, or FORKVM_MAX_MAP_COUNT when that is lower (to test the
 * collapse path without 50k mappings, or to leave room for other users).
 */
static uint64_t read_max_map_count(void)
{
	const char *env = getenv("FORKVM_MAX_MAP_COUNT");
	unsigned long v = 65530, lim;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 65530;
		fclose(f);
	}
	if (env && (lim = strtoul(env, NULL, 10)) > 0 && lim < v)
		v = lim;
	return v;
}

void vma_budget_note_map(void)
{
	atomic_fetch_add(&svc.vma_est, 2);
	atomic_fetch_add(&svc.maps_since_count, 1);
}

/*
 * Is the process near vm.max_map_count?  Then a fault collapses its whole
 * block (see cow.c).  The estimate only grows between recounts; a recount
 * reads /proc/self/maps, at most once every 256 remaps.
 */
bool vma_budget_tight(void)
{
	uint64_t high = svc.vma_limit * 3 / 4;

	if (atomic_load(&svc.vma_est) < high)
		return false;
	if (atomic_load(&svc.maps_since_count) >= 256) {
		atomic_store(&svc.vma_est, vma_count(NULL, UINT64_MAX));
		atomic_store(&svc.maps_since_count, 0);
	}
	return atomic_load(&svc.vma_est) >= high;
}

static int uffd_open(uint64_t want, uint64_t *have)
{
	struct uffdio_api api = { .api = UFFD_API, .features = want };
	int fd;

	/* Not UFFD_USER_MODE_ONLY: KVM takes these faults from kernel mode. */
	fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	*have = api.features;
	return fd;
}

static int uffd_register(int fd, void *addr, uint64_t len, uint64_t mode)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	return 0;
}

/*
 * Linux 6.1 wants one UFFDIO_WRITEPROTECT inside one VMA; later kernels walk
 * the range.  Ask the kernel: two VMAs of one memfd, at offsets that cannot
 * merge, write-protected with one call.
 */
static bool probe_wp_spans_vmas(int uffd)
{
	struct uffdio_writeprotect wp;
	bool spans = false;
	uint8_t *va;
	int fd;

	fd = memfd_create("forkvm-probe", MFD_CLOEXEC);
	if (fd < 0)
		return false;
	if (ftruncate(fd, 4 * MM_PAGE_SIZE) < 0)
		goto out_fd;
	va = mmap(NULL, 2 * MM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (va == MAP_FAILED)
		goto out_fd;
	if (mmap(va + MM_PAGE_SIZE, MM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 fd, 3 * MM_PAGE_SIZE) == MAP_FAILED)
		goto out_map;
	if (uffd_register(uffd, va, 2 * MM_PAGE_SIZE, UFFDIO_REGISTER_MODE_WP) < 0)
		goto out_map;
	wp = (struct uffdio_writeprotect){
		.range = { .start = (uintptr_t)va, .len = 2 * MM_PAGE_SIZE },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	spans = ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0;
out_map:
	munmap(va, 2 * MM_PAGE_SIZE); /* unregisters too */
out_fd:
	close(fd);
	return spans;
}

/* Context: svc.lock held. */
static struct space *space_at(uintptr_t addr)
{
	mm_assert_held(&svc.lock);
	for (unsigned int i = 0; i < svc.nspaces; i++) {
		struct space *s = svc.spaces[i];
		uintptr_t base = (uintptr_t)s->window;

		if (addr >= base && addr - base < (s->npages << MM_PAGE_SHIFT))
			return s;
	}
	return NULL;
}

static void wake(uintptr_t addr)
{
	struct uffdio_range r = { .start = addr & ~(MM_PAGE_SIZE - 1), .len = MM_PAGE_SIZE };

	ioctl(svc.uffd, UFFDIO_WAKE, &r);
}

struct fault_test_hooks fault_test_hooks;

/* The guest address at byte @off of @s's window. */
static uint64_t window_gpa(const struct space *s, uint64_t off)
{
	uint64_t p = off >> MM_PAGE_SHIFT;

	for (unsigned int i = s->nranges; i-- > 0;)
		if (p >= s->range_page[i])
			return s->ranges[i].gpa + off - (s->range_page[i] << MM_PAGE_SHIFT);
	return off;
}

/*
 * Replace @s's window by private anonymous memory: a writer retrying there
 * succeeds without touching a frame, and nothing in it is registered with
 * userfaultfd.  One mapping for the whole window, so it needs no more of the
 * mapping budget than the window had.  Context: pool->lock held.
 */
static int space_fence(struct space *s)
{
	mm_assert_held(&s->pool->lock);
	if (mmap(s->window, s->npages << MM_PAGE_SHIFT, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
		return -errno;
	s->fenced = true;
	return 0;
}

/*
 * A write at byte @off of @s's window could not be served (@err): report it
 * on the error channel (mm.h) and fence the space.  Returns true when the
 * writer may be woken (the fence is up).  Context: pool->lock held.
 */
static bool fault_failed(struct space *s, uint64_t off, int err)
{
	int fence;

	mm_assert_held(&s->pool->lock);
	atomic_fetch_add(&s->pool->ctr->fault_errors, 1);
	s->error = err;
	s->error_gpa = window_gpa(s, off);
	fence = space_fence(s);
	if (fence == 0)
		fprintf(stderr,
			"forkvm: mm: a guest write at %#llx could not be served (%s): its VM's "
			"memory is fenced off, the VM must stop\n",
			(unsigned long long)s->error_gpa, strerror(-err));
	else
		fprintf(stderr,
			"forkvm: mm: a guest write at %#llx could not be served (%s), nor its "
			"memory fenced off (%s): the writer stays blocked\n",
			(unsigned long long)s->error_gpa, strerror(-err), strerror(-fence));
	if (s->error_fn)
		s->error_fn(s->error_opaque, err, s->error_gpa);
	return fence == 0;
}

/*
 * Resolve one fault: a write to a write-protected page, or (lazy spaces
 * only) a touch of a page missing from the pool.  Context: no lock held on entry or exit; takes
 * svc.lock, then the space's pool->lock, and drops svc.lock before the
 * resolution (see the top of the file).
 */
static void handle_fault(const struct uffd_msg *msg)
{
	uintptr_t addr = msg->arg.pagefault.address;
	bool wake_writer = true;
	struct pool *pool;
	struct space *s;
	uint64_t off;

	if (fault_test_hooks.before_lookup)
		fault_test_hooks.before_lookup(addr);
	mm_lock(&svc.lock);
	s = space_at(addr);
	if (!s) {
		/* Removed meanwhile: its writer, if any, is its owner's bug. */
		mm_unlock(&svc.lock);
		wake(addr);
		return;
	}
	pool = s->pool;
	pool_lock(pool);
	mm_unlock(&svc.lock);

	off = addr - (uintptr_t)s->window;
	if (s->fenced) {
		/* Queued before the fence: the retry lands in private memory. */
	} else if (s->error) {
		/* The fence failed: wake no writer of this space again. */
		wake_writer = false;
	} else if (!(msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
		/* Missing: only a lazy space registers that mode. */
		int ret = space_resolve_missing(s, off >> MM_PAGE_SHIFT);

		if (ret < 0)
			wake_writer = fault_failed(s, off, ret);
	} else {
		uint64_t p = off >> MM_PAGE_SHIFT;
		int ret;

		atomic_fetch_add(&pool->ctr->faults, 1);
		ret = space_resolve_write(s, p, true);
		/* A batch may fail on a neighbour: only the faulting page counts. */
		if (ret < 0 && (s->pflags[p] & PG_WP))
			wake_writer = fault_failed(s, off, ret);
	}
	pool_unlock(pool);
	if (wake_writer)
		wake(addr);
}

/* Read pending fault messages and handle them; returns how many there were. */
static ssize_t handle_pending(struct uffd_msg *msg, size_t max)
{
	ssize_t n = read(svc.uffd, msg, max * sizeof(msg[0]));

	if (n <= 0)
		return 0; /* EAGAIN: another reader, or a spurious wakeup */
	n /= (ssize_t)sizeof(msg[0]);
	for (ssize_t i = 0; i < n; i++)
		if (msg[i].event == UFFD_EVENT_PAGEFAULT)
			handle_fault(&msg[i]);
	return n;
}

static void *fault_thread(void *arg)
{
	struct pollfd pfd[2] = {
		{ .fd = svc.uffd, .events = POLLIN },
		{ .fd = svc.stop_fd, .events = POLLIN },
	};
	struct uffd_msg msg[16];

	mm_thread_start("fault");
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		handle_pending(msg, 16);
	}
	return NULL;
}

/* Context: svc.life held. */
static int service_start(void)
{
	uint64_t have;
	int fd, ret;

	fd = uffd_open(0, &have);
	if (fd < 0)
		return fd == -EPERM ? -EPERM : -ENOSYS;
	close(fd);
	/* Write-protect on shared memory came in Linux 5.19. */
	if (!(have & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		return -ENOSYS;
	/* Missing mode on shmem (Linux 4.11) serves lazy spaces only; a space
	 * without a backing source never registers it. */
	fd =
	    uffd_open(UFFD_FEATURE_WP_HUGETLBFS_SHMEM | (have & UFFD_FEATURE_MISSING_SHMEM), &have);
	if (fd < 0)
		return fd;
	svc.uffd = fd;
	svc.missing_shmem = have & UFFD_FEATURE_MISSING_SHMEM;
	svc.spans_vmas = probe_wp_spans_vmas(fd);
	svc.vma_limit = read_max_map_count();
	svc.vma_est = vma_count(NULL, UINT64_MAX);
	svc.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (svc.stop_fd < 0) {
		ret = -errno;
		goto err_uffd;
	}
	ret = -pthread_create(&svc.thread, NULL, fault_thread, NULL);
	if (ret < 0)
		goto err_stop;
	return 0;

err_stop:
	close(svc.stop_fd);
	svc.stop_fd = -1;
err_uffd:
	close(svc.uffd);
	svc.uffd = -1;
	return ret;
}

/*
 * Context: svc.life held, and nothing else: the handler thread may be
 * waiting for svc.lock or a pool lock, and must get them to finish.
 */
static void service_stop(void)
{
	uint64_t one = 1;

	if (write(svc.stop_fd, &one, sizeof(one)) < 0)
		return;
	pthread_join(svc.thread, NULL);
	close(svc.stop_fd);
	close(svc.uffd);
	svc.stop_fd = svc.uffd = -1;
}

/* Starts the service with its first user.  Context: no mm lock held. */
static int service_get(void)
{
	int ret = 0;

	pthread_mutex_lock(&svc.life);
	if (svc.users == 0)
		ret = service_start();
	if (ret == 0)
		svc.users++;
	pthread_mutex_unlock(&svc.life);
	return ret;
}

/*
 * Stops the service with its last user.  Context: no mm lock held (the
 * handler may need any of them to finish what it is doing).
 */
static void service_put(void)
{
	pthread_mutex_lock(&svc.life);
	if (--svc.users == 0) {
		if (fault_test_hooks.last_user_gone)
			fault_test_hooks.last_user_gone();
		service_stop();
	}
	pthread_mutex_unlock(&svc.life);
}

/*
 * Makes @s's faults findable.  Its window is registered with userfaultfd by
 * window_protect(), before the first page is write-protected.
 * Context: no mm lock held.
 */
int fault_service_add(struct space *s)
{
	int ret;

	ret = service_get();
	if (ret < 0)
		return ret;
	mm_lock(&svc.lock);
	if (svc.nspaces == svc.cap) {
		unsigned int cap = svc.cap ? svc.cap * 2 : 16;
		struct space **n = realloc(svc.spaces, sizeof(*n) * cap);

		if (!n) {
			mm_unlock(&svc.lock);
			ret = -ENOMEM;
			goto err_put;
		}
		svc.spaces = n;
		svc.cap = cap;
	}
	svc.spaces[svc.nspaces++] = s;
	s->registered = true;
	mm_unlock(&svc.lock);
	return 0;

err_put:
	service_put();
	return ret;
}

/*
 * After this no fault is found for @s; one being resolved still holds the
 * pool lock.  Context: no mm lock held.
 */
void fault_service_remove(struct space *s)
{
	if (!s->registered)
		return;
	mm_lock(&svc.lock);
	for (unsigned int i = 0; i < svc.nspaces; i++) {
		if (svc.spaces[i] == s) {
			svc.spaces[i] = svc.spaces[--svc.nspaces];
			break;
		}
	}
	s->registered = false;
	mm_unlock(&svc.lock);
	service_put();
}

/*
 * Registers the whole window; UFFDIO_REGISTER walks its VMAs.  A new mapping
 * inside a registered window is a new, unregistered VMA, so this runs again
 * after remaps, before the next write-protect.  A lazy space (lazy.c) is
 * registered in missing mode too, before its guest runs: a remapped page
 * is present, so it needs no missing fault until the next registration.
 * Context: pool->lock held.
 */
int window_register(struct space *s)
{
	uint64_t mode = UFFDIO_REGISTER_MODE_WP;

	if (s->lazy)
		mode |= UFFDIO_REGISTER_MODE_MISSING;
	return uffd_register(svc.uffd, s->window, s->npages << MM_PAGE_SHIFT, mode);
}

/* Can a space have a backing source (missing faults on shared memory)? */
bool fault_service_has_missing(void)
{
	return svc.missing_shmem;
}

static int wp_ioctl(struct space *s, uint64_t p, uint64_t n, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (uintptr_t)s->window + (p << MM_PAGE_SHIFT),
			   .len = n << MM_PAGE_SHIFT },
		/* Unprotecting wakes nobody: every writer blocked on the page
		 * has a fault queued, and handle_fault() wakes it once. */
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
	};
	int tries = 0;

	while (ioctl(svc.uffd, UFFDIO_WRITEPROTECT, &w) < 0) {
		/* EAGAIN: the address space changed under us (mmap_changing). */
		if (errno != EAGAIN || ++tries > 1000)
			return -errno;
	}
	return 0;
}

/*
 * Write-protect (or unprotect) pages [p, p + n) of the window.
 * Where one call may not cross VMAs, split at every place the pool offsets
 * stop being contiguous (a VMA never crosses one), and page by page if a
 * run was still not one VMA.  A fenced window is private memory: nothing
 * to protect there.  Context: pool->lock held.
 */
int window_protect(struct space *s, uint64_t p, uint64_t n, bool wp)
{
	uint64_t end = p + n;

	mm_assert_held(&s->pool->lock);
	if (s->fenced)
		return 0;
	if (wp && s->unregistered) {
		int ret = window_register(s);

		if (ret < 0)
			return ret;
		s->unregistered = false;
	}
	if (svc.spans_vmas && !s->pool->uffd_compat)
		return wp_ioctl(s, p, n, wp);
	while (p < end) {
		uint64_t q = p + 1;
		int ret;

		while (q < end && space_mapped_frame(s, q) == space_mapped_frame(s, q - 1) + 1)
			q++;
		ret = wp_ioctl(s, p, q - p, wp);
		/* Not one VMA after all (neighbours not merged): page by page. */
		if (ret == -ENOENT) {
			ret = 0;
			for (uint64_t i = p; i < q && ret == 0; i++)
				ret = wp_ioctl(s, i, 1, wp);
		}
		if (ret < 0)
			return ret;
		p = q;
	}
	return 0;
}
