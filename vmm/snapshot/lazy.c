// SPDX-License-Identifier: MIT
/*
 * Lazy restore and its working set.  The memory files' data extents become
 * lazy pages of the new space (mm/lazy.c loads each on first touch); the
 * working set, a sorted list of guest addresses saved next to the manifest,
 * is loaded ahead in one pass.  The working-set file is untrusted like the
 * rest of the snapshot: a bad one is ignored with a warning (it only makes
 * a restore faster), never used half.
 */
#include "vmm/snapshot/lazy.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mm/mm.h"
#include "vmm/machine.h"

/* ---- options ---------------------------------------------------------------- */

/* What a prefetch loads takes no fault: a recording would miss it. */
static int both(void)
{
	fprintf(stderr, "forkvm restore: --record-ws: record on a restore without --prefetch\n");
	return -1;
}

int snap_lazy_option(int argc, char **argv, int i, struct snap_lazy_opts *lo)
{
	const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
	unsigned long ms_;
	char *end;

	if (!strcmp(a, "--lazy")) {
		lo->lazy = true;
		return 1;
	}
	if (!strcmp(a, "--prefetch")) {
		if (lo->record_ms)
			return both();
		lo->lazy = lo->prefetch = true;
		return 1;
	}
	if (strcmp(a, "--record-ws"))
		return 0;
	if (lo->prefetch)
		return both();
	if (!v) {
		fprintf(stderr, "forkvm restore: --record-ws: missing value\n");
		return -1;
	}
	errno = 0;
	ms_ = strtoul(v, &end, 10);
	if (!*v || *v == '-' || *v == '+' || *end || errno || !ms_ || ms_ > SNAP_WS_RECORD_MAX_MS) {
		fprintf(stderr, "forkvm restore: --record-ws '%s': expected 1 to %u ms\n", v,
			SNAP_WS_RECORD_MAX_MS);
		return -1;
	}
	lo->lazy = true;
	lo->record_ms = (unsigned int)ms_;
	return 2;
}

/* ---- the working-set file ------------------------------------------------------ */

static int join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

uint64_t snap_ws_hash(const void *buf, size_t len, uint64_t h)
{
	const uint8_t *b = buf;

	/* FNV-1a, 64 bits, over the bytes. */
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* Where the page data starts: after the addresses, on a page boundary. */
static uint64_t ws_data_off(uint64_t n)
{
	return (SNAP_WS_HEADER + n * sizeof(uint64_t) + MM_PAGE_SIZE - 1) & ~(MM_PAGE_SIZE - 1);
}

/* The page data's checksum: hashed in 64-bit words (FNV-1a's step), fast enough. */
static uint64_t ws_data_hash(const uint8_t *data, size_t n)
{
	uint64_t h = SNAP_WS_HASH_SEED;
	const uint64_t *w = (const uint64_t *)data;

	for (size_t i = 0; i < n * MM_PAGE_SIZE / sizeof(*w); i++)
		h = (h ^ le64toh(w[i])) * 0x100000001b3ULL;
	return h;
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

int snap_ws_write(const char *dir, uint64_t man_hash, const uint64_t *gpas, const void *data,
		  size_t n, char *err, size_t errlen)
{
	char tmp[PATH_MAX], path[PATH_MAX], name[64];
	uint64_t off = ws_data_off(n);
	uint8_t *head = NULL;
	int fd = -1, dfd, ret;

	snprintf(name, sizeof(name), ".%s.tmp-%d", SNAP_WS_NAME, (int)getpid());
	if (join(tmp, sizeof(tmp), dir, name) || join(path, sizeof(path), dir, SNAP_WS_NAME)) {
		snprintf(err, errlen, "%s: name too long", dir);
		return -ENAMETOOLONG;
	}
	if (n > UINT32_MAX) {
		snprintf(err, errlen, "a working set of %zu pages: too many", n);
		return -E2BIG;
	}
	/* Header and addresses, zero-padded to the data. */
	head = calloc(1, off);
	if (!head) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(head, SNAP_WS_MAGIC, 8);
	put32(head + 8, SNAP_WS_VERSION);
	put32(head + 12, (uint32_t)n);
	put64(head + 16, man_hash);
	put64(head + 24, ws_data_hash(data, n));
	for (size_t i = 0; i < n; i++)
		put64(head + SNAP_WS_HEADER + i * 8, gpas[i]);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "creating %s: %s", tmp, strerror(errno));
		goto out;
	}
	ret = write_all(fd, head, off);
	if (!ret)
		ret = write_all(fd, data, n * MM_PAGE_SIZE);
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret) {
		snprintf(err, errlen, "writing %s: %s", path, strerror(-ret));
		unlink(tmp);
		goto out;
	}
	/* The rename is durable once the directory is. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd)) {
		ret = -errno;
		snprintf(err, errlen, "fsync %s: %s", dir, strerror(errno));
	}
	if (dfd >= 0)
		close(dfd);
out:
	free(head);
	return ret;
}

static bool in_layout(const struct snap_manifest *man, uint64_t off, uint64_t len)
{
	for (unsigned int i = 0; i < man->nranges; i++) {
		const struct snap_range *r = &man->range[i];

		if (off >= r->gpa && off - r->gpa <= r->size && len <= r->size - (off - r->gpa))
			return true;
	}
	return false;
}

static uint64_t layout_pages(const struct snap_manifest *man)
{
	uint64_t pages = 0;

	for (unsigned int i = 0; i < man->nranges; i++)
		pages += man->range[i].size / MM_PAGE_SIZE;
	return pages;
}

/* Every address page-aligned, in the layout, strictly ascending. */
static int check_ws(const struct snap_manifest *man, const uint64_t *gpas, size_t n, char *err,
		    size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (gpas[i] & (MM_PAGE_SIZE - 1) || !in_layout(man, gpas[i], MM_PAGE_SIZE)) {
			snprintf(err, errlen, "entry %zu (0x%llx): not a page of the memory layout",
				 i, (unsigned long long)gpas[i]);
			return -EINVAL;
		}
		if (i && gpas[i] <= gpas[i - 1]) {
			snprintf(err, errlen, "entry %zu (0x%llx): not above the one before", i,
				 (unsigned long long)gpas[i]);
			return -EINVAL;
		}
	}
	return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENODATA;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

void snap_ws_free(struct snap_ws *ws)
{
	free(ws->gpas);
	free(ws->data);
	memset(ws, 0, sizeof(*ws));
}

/* The checks of snap_ws_read() on an open file; @path for the messages. */
static int read_ws(int fd, const char *path, const struct snap_manifest *man, uint64_t man_hash,
		   struct snap_ws *ws, char *err, size_t errlen)
{
	uint64_t max_pages = layout_pages(man), size, data_off;
	uint8_t hdr[SNAP_WS_HEADER];
	uint32_t version, count;
	struct stat sb;
	int ret;

	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	size = (uint64_t)sb.st_size;
	if (size < SNAP_WS_HEADER || size > ws_data_off(max_pages) + max_pages * MM_PAGE_SIZE) {
		snprintf(err, errlen, "%s: %llu bytes, expected %u to %llu", path,
			 (unsigned long long)size, SNAP_WS_HEADER,
			 (unsigned long long)(ws_data_off(max_pages) + max_pages * MM_PAGE_SIZE));
		return -EINVAL;
	}
	if (pread_all(fd, hdr, sizeof(hdr), 0)) {
		snprintf(err, errlen, "%s: cannot read its header", path);
		return -EIO;
	}
	memcpy(&version, hdr + 8, 4);
	memcpy(&count, hdr + 12, 4);
	version = le32toh(version);
	count = le32toh(count);
	if (memcmp(hdr, SNAP_WS_MAGIC, 8) || version != SNAP_WS_VERSION) {
		snprintf(err, errlen, "%s: not a working-set file of version %u", path,
			 SNAP_WS_VERSION);
		return -EINVAL;
	}
	data_off = ws_data_off(count);
	if (count > max_pages || size != data_off + (uint64_t)count * MM_PAGE_SIZE) {
		snprintf(err, errlen, "%s: %llu bytes for %u entries (expected %llu)", path,
			 (unsigned long long)size, count,
			 (unsigned long long)(data_off + (uint64_t)count * MM_PAGE_SIZE));
		return -EINVAL;
	}
	if (get64(hdr + 16) != man_hash) {
		snprintf(err, errlen, "%s: recorded for another snapshot (manifest checksum)",
			 path);
		return -EINVAL;
	}
	ws->gpas = malloc(count ? count * sizeof(uint64_t) : 1);
	ws->data = malloc(count ? (size_t)count * MM_PAGE_SIZE : 1);
	if (!ws->gpas || !ws->data) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = pread_all(fd, ws->gpas, count * sizeof(uint64_t), SNAP_WS_HEADER);
	/* The pages: one sequential read. */
	if (!ret)
		ret = pread_all(fd, ws->data, (size_t)count * MM_PAGE_SIZE, data_off);
	if (ret) {
		snprintf(err, errlen, "%s: %s", path,
			 ret == -ENODATA ? "shorter than its size" : strerror(-ret));
		return ret;
	}
	for (uint32_t i = 0; i < count; i++)
		ws->gpas[i] = le64toh(ws->gpas[i]);
	ret = check_ws(man, ws->gpas, count, err, errlen);
	if (ret) {
		char what[256];

		snprintf(what, sizeof(what), "%s", err);
		snprintf(err, errlen, "%s: %s", path, what);
		return ret;
	}
	if (ws_data_hash(ws->data, count) != get64(hdr + 24)) {
		snprintf(err, errlen, "%s: its page data does not match its checksum", path);
		return -EINVAL;
	}
	ws->n = count;
	return 0;
}

int snap_ws_read(const char *dir, const struct snap_manifest *man, uint64_t man_hash,
		 struct snap_ws *ws, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fd, ret;

	memset(ws, 0, sizeof(*ws));
	if (join(path, sizeof(path), dir, SNAP_WS_NAME)) {
		snprintf(err, errlen, "%s: name too long", dir);
		return -ENAMETOOLONG;
	}
	/* Never follow a link or wait on a FIFO: only a regular file is read. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	ret = read_ws(fd, path, man, man_hash, ws, err, errlen);
	close(fd);
	if (ret)
		snap_ws_free(ws);
	return ret;
}

/* ---- lazy memory ---------------------------------------------------------------- */

/* Every data extent of @l's memory file, as lazy pages of @space from file @id. */
static int add_extents(struct snap_loaded *l, struct space *space, unsigned int id, char *err,
		       size_t errlen)
{
	uint64_t size = l->man.mem_file_size, off = 0;
	int ret;

	while (off < size) {
		off_t data = lseek(l->mem_fd, (off_t)off, SEEK_DATA), hole;
		uint64_t end;

		if (data < 0 && errno == ENXIO)
			break; /* only holes from here */
		if (data < 0) {
			ret = -errno;
			snprintf(err, errlen, "%s: SEEK_DATA: %s", SNAP_MEMORY_NAME,
				 strerror(errno));
			return ret;
		}
		hole = lseek(l->mem_fd, data, SEEK_HOLE);
		if (hole < 0 || hole <= data) {
			snprintf(err, errlen, "%s: SEEK_HOLE failed", SNAP_MEMORY_NAME);
			return hole < 0 ? -errno : -EIO;
		}
		/* Pages, whatever the file system's extent granularity. */
		off = (uint64_t)data & ~(uint64_t)(MM_PAGE_SIZE - 1);
		end = (uint64_t)hole < size ? (uint64_t)hole : size;
		end = (end + MM_PAGE_SIZE - 1) & ~(uint64_t)(MM_PAGE_SIZE - 1);
		if (end > size)
			end = size & ~(uint64_t)(MM_PAGE_SIZE - 1);
		if (end <= off)
			break;
		if (!in_layout(&l->man, off, end - off)) {
			snprintf(err, errlen,
				 "%s: data at 0x%llx+0x%llx, outside the memory layout",
				 SNAP_MEMORY_NAME, (unsigned long long)off,
				 (unsigned long long)(end - off));
			return -EINVAL;
		}
		ret = space_lazy_add(space, id, off, end - off, off);
		if (ret) {
			snprintf(err, errlen, "lazy guest memory at 0x%llx: %s",
				 (unsigned long long)off, strerror(-ret));
			return ret;
		}
		off = end;
	}
	return 0;
}

/* The recorded working set of @dir, loaded now; a bad file is only a warning. */
static int prefetch(const struct snap_loaded *l, const char *dir, struct space *space,
		    struct snap_lazy_opts *lo, char *err, size_t errlen)
{
	struct snap_ws ws;
	char why[512];
	int ret;

	ret = snap_ws_read(dir, &l->man, lo->man_hash, &ws, why, sizeof(why));
	if (ret == -ENOENT) {
		fprintf(stderr,
			"forkvm restore: %s: no working set recorded (--record-ws MS): "
			"restoring without prefetch\n",
			dir);
		return 0;
	}
	if (ret) {
		fprintf(stderr,
			"forkvm restore: warning: %s: ignored, restoring without prefetch\n", why);
		return 0;
	}
	lo->ws_pages = ws.n;
	ret = space_lazy_fill(space, ws.gpas, ws.data, ws.n, &lo->prefetched);
	snap_ws_free(&ws);
	if (ret)
		snprintf(err, errlen, "prefetching the working set: %s", strerror(-ret));
	return ret;
}

/*
 * Pages a guest fault loads at once: SNAP_LAZY_READAROUND, or
 * FORKVM_LAZY_READAROUND (a power of 2, 1..1024; anything else: the default).
 */
static unsigned int readaround(void)
{
	const char *e = getenv("FORKVM_LAZY_READAROUND");
	unsigned long v = e && *e ? strtoul(e, NULL, 10) : 0;

	return v && v <= 1024 && !(v & (v - 1)) ? (unsigned int)v : SNAP_LAZY_READAROUND;
}

int snap_lazy_memory(struct snap_loaded *chain, int n, const char *dir, struct space *space,
		     struct snap_lazy_opts *lo, char *err, size_t errlen)
{
	struct space_lazy_stats st;
	int ret;

	lo->man_hash = snap_ws_hash(chain[0].blob, chain[0].blob_size, SNAP_WS_HASH_SEED);
	/* The oldest first: a diff's data overrides its base's. */
	for (int k = n - 1; k >= 0; k--) {
		unsigned int id;

		ret = space_lazy_file(space, chain[k].mem_fd, &id);
		if (ret) {
			snprintf(err, errlen, "lazy guest memory: %s",
				 ret == -ENOSYS ? "this kernel has no userfaultfd missing mode "
						  "on shared memory"
						: strerror(-ret));
			return ret;
		}
		ret = add_extents(&chain[k], space, id, err, errlen);
		if (ret)
			return ret;
	}
	ret = space_lazy_set_readaround(space, readaround());
	if (ret) {
		snprintf(err, errlen, "lazy guest memory: read-around: %s", strerror(-ret));
		return ret;
	}
	if (lo->prefetch) {
		ret = prefetch(&chain[0], dir, space, lo, err, errlen);
		if (ret)
			return ret;
	}
	if (lo->record_ms)
		space_lazy_record(space, true);
	space_lazy_get_stats(space, &st);
	lo->lazy_pages = st.pending;
	return 0;
}

/* ---- after the start -------------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The pages' data at the snapshot's instant (from the files), for the working set. */
static uint8_t *ws_data(struct space *space, const uint64_t *gpas, size_t n)
{
	uint8_t *data = malloc(n ? n * MM_PAGE_SIZE : 1);

	for (size_t i = 0; data && i < n; i++) {
		if (space_lazy_read_source(space, gpas[i], data + i * MM_PAGE_SIZE)) {
			free(data);
			return NULL;
		}
	}
	return data;
}

static void record(struct machine *m, const char *dir, const struct snap_lazy_opts *lo)
{
	uint64_t end = now_ms() + lo->record_ms, *gpas;
	struct timespec slice = { 0, 2 * 1000000 };
	uint8_t *data;
	char err[512];
	ssize_t n;

	while (now_ms() < end && !machine_stopped(m))
		nanosleep(&slice, NULL);
	space_lazy_record(m->space, false);
	n = space_lazy_take_log(m->space, &gpas);
	if (n < 0) {
		fprintf(stderr, "forkvm restore: warning: working set not saved: %s\n",
			strerror((int)-n));
		return;
	}
	data = ws_data(m->space, gpas, (size_t)n);
	if (!data)
		fprintf(stderr, "forkvm restore: warning: working set not saved: its pages could "
				"not be read from the snapshot\n");
	else if (snap_ws_write(dir, lo->man_hash, gpas, data, (size_t)n, err, sizeof(err)))
		fprintf(stderr, "forkvm restore: warning: working set not saved: %s\n", err);
	else
		fprintf(stderr,
			"forkvm: working set: %zd pages loaded in the first %u ms, saved to "
			"%s/%s\n",
			n, lo->record_ms, dir, SNAP_WS_NAME);
	free(data);
	free(gpas);
}

void snap_lazy_started(struct machine *m, const char *dir, const struct snap_lazy_opts *lo)
{
	if (!lo->lazy)
		return;
	fprintf(stderr,
		"forkvm: lazy start: %llu pages load on first touch, %llu of a working set of %llu "
		"loaded before start (%s)\n",
		(unsigned long long)lo->lazy_pages, (unsigned long long)lo->prefetched,
		(unsigned long long)lo->ws_pages, dir);
	if (lo->record_ms)
		record(m, dir, lo);
}

void snap_lazy_report(struct machine *m, const struct snap_lazy_opts *lo)
{
	struct space_lazy_stats st;

	if (!lo->lazy)
		return;
	space_lazy_get_stats(m->space, &st);
	fprintf(stderr,
		"forkvm: lazy restore: %llu pages loaded after start (%llu by a guest fault, "
		"%llu read around them, %llu by a device or the host), %llu never touched, %llu "
		"zero pages faulted, %.3f ms reading\n",
		(unsigned long long)(st.loaded - st.prefetched), (unsigned long long)st.faults,
		(unsigned long long)st.read_around,
		(unsigned long long)(st.loaded - st.prefetched - st.faults - st.read_around),
		(unsigned long long)st.pending, (unsigned long long)st.zero_faults,
		(double)st.load_ns / 1e6);
}
