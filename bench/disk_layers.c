// SPDX-License-Identifier: MIT
/*
 * Question: what do copy-on-write layers cost a disk's reads and writes?
 * The same workloads on a disk with 0 overlays (before any fork: the file
 * itself), 1 and 8 (each fork after writes to 1/32 of the blocks freezes one
 * more layer under the parent's top), each engine; ratios against 0
 * overlays in the same run.  For scale, 0 overlays against the host: one
 * thread doing pread/pwrite of the same sizes (QD 1, no thread hand-off).
 * The image lives in $TMPDIR (or /tmp), synced before each run, and stays in
 * the page cache: this measures the software path, not a device.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "devices/disk.h"
#include "devices/disk_pattern.h"

#define DISK_BYTES (64ull << 20)
#define QD 32
#define MAXLEN (1u << 20)
#define REPS 5

enum work { RAND4K_READ, SEQ1M_READ, RAND4K_WRITE, RAND512_WRITE, NWORK };
static const char *const work_name[NWORK] = { "rand4k_read", "seq1m_read", "rand4k_write",
					      "rand512_write" };

struct slot {
	struct disk_io io;
	struct iovec iov;
	int index;
};

static struct {
	pthread_mutex_t lock;
	int free[QD], nfree;
	sem_t avail;
	int errors;
} q;

static void on_done(struct disk_io *io, int res)
{
	struct slot *s = io->priv;

	pthread_mutex_lock(&q.lock);
	if (res)
		q.errors++;
	q.free[q.nfree++] = s->index;
	pthread_mutex_unlock(&q.lock);
	sem_post(&q.avail);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* The request @i of @w: position and length. */
static void request(enum work w, unsigned int i, uint64_t *pos, size_t *len)
{
	switch (w) {
	case RAND4K_READ:
	case RAND4K_WRITE:
		*len = 4096;
		*pos = (rnd() % (DISK_BYTES / 4096)) * 4096;
		break;
	case SEQ1M_READ:
		*len = MAXLEN;
		*pos = (uint64_t)i * MAXLEN % DISK_BYTES;
		break;
	default:
		*len = 512;
		*pos = (rnd() % (DISK_BYTES / 512)) * 512;
		break;
	}
}

static unsigned int count(enum work w)
{
	unsigned int n = w == SEQ1M_READ ? 128 : 8000;

	return bench_reps(3) == 3 ? n : n / 4;
}

/* Run @w on @d at queue depth QD.  Return: MB/s. */
static double run(struct disk *d, enum work w, uint8_t *bufs)
{
	static struct slot slots[QD];
	unsigned int n = count(w);
	uint64_t bytes = 0;
	double t0, t1;

	pthread_mutex_init(&q.lock, NULL);
	sem_init(&q.avail, 0, QD);
	q.nfree = QD;
	for (int i = 0; i < QD; i++)
		q.free[i] = i;
	t0 = now_us();
	for (unsigned int i = 0; i < n; i++) {
		struct slot *s;
		size_t len;
		int k;

		while (sem_wait(&q.avail))
			;
		pthread_mutex_lock(&q.lock);
		k = q.free[--q.nfree];
		pthread_mutex_unlock(&q.lock);
		s = &slots[k];
		s->index = k;
		request(w, i, &s->io.pos, &len);
		s->iov.iov_base = bufs + (size_t)k * MAXLEN;
		s->iov.iov_len = len;
		s->io.op = w == RAND4K_READ || w == SEQ1M_READ ? DISK_READ : DISK_WRITE;
		s->io.iov = &s->iov;
		s->io.niov = 1;
		s->io.done = on_done;
		s->io.priv = s;
		if (disk_submit(d, &s->io)) {
			fprintf(stderr, "disk_layers: submit failed\n");
			exit(1);
		}
		bytes += len;
	}
	for (int i = 0; i < QD; i++)
		while (sem_wait(&q.avail))
			;
	t1 = now_us();
	if (q.errors) {
		fprintf(stderr, "disk_layers: %d requests failed\n", q.errors);
		exit(1);
	}
	sem_destroy(&q.avail);
	return bytes / (t1 - t0); /* bytes per us = MB/s */
}

static void make_image(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	/* Synced: no writeback of the fill under the measured requests. */
	if (fd < 0 || disk_pattern_fill(fd, DISK_BYTES, 1) || fdatasync(fd)) {
		fprintf(stderr, "disk_layers: cannot make %s\n", path);
		exit(1);
	}
	close(fd);
}

/* Write 4 KiB to 1/32 of the blocks at random, then fork (the child is
 * closed at once: the frozen layer stays, the parent's top stands on it). */
static void add_layer(struct disk *d, uint8_t *bufs)
{
	unsigned int n = DISK_BYTES / 4096 / 32;
	struct disk *c;

	for (unsigned int i = 0; i < n; i += QD) {
		struct slot s[QD];
		unsigned int m = n - i < QD ? n - i : QD;

		sem_init(&q.avail, 0, 0);
		pthread_mutex_init(&q.lock, NULL);
		q.nfree = 0;
		for (unsigned int k = 0; k < m; k++) {
			s[k].index = (int)k;
			s[k].iov = (struct iovec){ bufs + k * 4096, 4096 };
			s[k].io = (struct disk_io){ .op = DISK_WRITE,
						    .pos = (rnd() % (DISK_BYTES / 4096)) * 4096,
						    .iov = &s[k].iov,
						    .niov = 1,
						    .done = on_done,
						    .priv = &s[k] };
			if (disk_submit(d, &s[k].io))
				exit(1);
		}
		for (unsigned int k = 0; k < m; k++)
			while (sem_wait(&q.avail))
				;
		sem_destroy(&q.avail);
	}
	if (disk_fork(d, &c)) {
		fprintf(stderr, "disk_layers: fork failed\n");
		exit(1);
	}
	disk_close(c);
}

/* Sync every layer's writes, so none is written back under the run. */
static void flush(struct disk *d)
{
	struct slot s = { .io = { .op = DISK_FLUSH, .done = on_done } };

	s.io.priv = &s;
	sem_init(&q.avail, 0, 0);
	pthread_mutex_init(&q.lock, NULL);
	q.nfree = 0;
	if (disk_submit(d, &s.io))
		exit(1);
	while (sem_wait(&q.avail))
		;
	sem_destroy(&q.avail);
}

/* One thread, pread/pwrite, QD 1: the host's cost, for scale (synced
 * after, untimed, like the disk runs). */
static double host(const char *path, enum work w, uint8_t *buf)
{
	int fd = open(path, O_RDWR);
	unsigned int n = count(w);
	uint64_t bytes = 0;
	double t0;

	t0 = now_us();
	for (unsigned int i = 0; i < n; i++) {
		uint64_t pos;
		size_t len;
		ssize_t r;

		request(w, i, &pos, &len);
		if (w == RAND4K_READ || w == SEQ1M_READ)
			r = pread(fd, buf, len, (off_t)pos);
		else
			r = pwrite(fd, buf, len, (off_t)pos);
		if (r != (ssize_t)len)
			exit(1);
		bytes += len;
	}
	t0 = bytes / (now_us() - t0);
	fdatasync(fd);
	close(fd);
	return t0;
}

/* One run of @w on a fresh handle of @path with @overlays frozen layers.
 * Return: MB/s, or -1 if the disk does not open (engine unavailable). */
static double measure(const char *path, int overlays, enum work w, uint8_t *bufs)
{
	struct disk_config cfg = { .path = path };
	struct disk *d;
	char err[256];
	double mbs;

	if (disk_open(&cfg, &d, err, sizeof(err))) {
		fprintf(stderr, "disk_layers: %s\n", err);
		return -1;
	}
	for (int k = 0; k < overlays; k++)
		add_layer(d, bufs);
	flush(d);
	mbs = run(d, w, bufs);
	flush(d); /* the next run starts clean */
	disk_close(d);
	return mbs;
}

/* Median time of disk_fork() on the disk at @path (each child closed
 * untimed).  Return: us. */
static double fork_us(const char *path)
{
	struct disk_config cfg = { .path = path };
	int reps = bench_reps(3) == 3 ? 21 : 5;
	struct disk *d, *c;
	double v[21];
	char err[256];

	if (disk_open(&cfg, &d, err, sizeof(err))) {
		fprintf(stderr, "disk_layers: %s\n", err);
		exit(1);
	}
	for (int i = 0; i < reps; i++) {
		double t0 = now_us();

		if (disk_fork(d, &c))
			exit(1);
		v[i] = now_us() - t0;
		disk_close(c);
	}
	disk_close(d);
	return median(v, reps);
}

/* What a per-clone full copy of the image costs: copy_file_range into a new
 * file (a reflink where the filesystem can; ext4 cannot).  Return: us. */
static double copy_us(const char *path)
{
	char dst[600];
	int in = open(path, O_RDONLY), out;
	uint64_t left = DISK_BYTES;
	double t0;

	snprintf(dst, sizeof(dst), "%s.copy", path);
	out = open(dst, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (in < 0 || out < 0)
		exit(1);
	t0 = now_us();
	while (left) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, left, 0);

		if (n <= 0)
			exit(1);
		left -= (uint64_t)n;
	}
	t0 = now_us() - t0;
	close(in);
	close(out);
	unlink(dst);
	return t0;
}

/* disk_fork() of a disk @mult times larger (sparse), to see it does not grow. */
static double fork_big_us(const char *path, unsigned int mult)
{
	char big[600];
	double us;
	int fd;

	snprintf(big, sizeof(big), "%s.big", path);
	fd = open(big, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)(DISK_BYTES * mult)))
		exit(1);
	close(fd);
	us = fork_us(big);
	unlink(big);
	return us;
}

int main(void)
{
	static const int overlays[] = { 0, 1, 8 };
	const char *tmp = getenv("TMPDIR");
	const char *engines[] = { "io_uring", "threads" };
	uint8_t *bufs = aligned_alloc(4096, (size_t)QD * MAXLEN);
	char path[512];

	if (!bufs)
		return 1;
	memset(bufs, 0x5a, (size_t)QD * MAXLEN);
	snprintf(path, sizeof(path), "%s/forkvm-bench-disk-%d.img", tmp && *tmp ? tmp : "/tmp",
		 (int)getpid());
	make_image(path);
	printf("disk_layers: %llu MiB disk in the page cache, QD %d; MB/s, median of %d\n",
	       (unsigned long long)(DISK_BYTES >> 20), QD, bench_reps(REPS));
	{
		double f = fork_us(path), fb = fork_big_us(path, 64), cp = copy_us(path);

		printf("disk_layers.fork_64m_us: %.1f\n", f);
		printf("disk_layers.fork_4g_us: %.1f\n", fb);
		printf("disk_layers.copy_64m_us: %.1f\n", cp);
		printf("disk_layers.fork_4g_vs_64m.ratio: %.2f\n", fb / f);
		printf("disk_layers.copy_64m_vs_fork.ratio: %.1f\n", cp / f);
	}
	for (unsigned int e = 0; e < 2; e++) {
		setenv("FORKVM_DISK_ENGINE", engines[e], 1);
		for (int w = 0; w < NWORK; w++) {
			double v[3][REPS], ratio[3][REPS], host_ratio[REPS];
			int reps = bench_reps(REPS);

			/* Configurations interleaved in each rep, ratios per rep:
			 * this machine's load drifts more than layers cost. */
			for (int r = 0; r < reps; r++) {
				for (unsigned int o = 0; o < 3; o++) {
					v[o][r] = measure(path, overlays[o], (enum work)w, bufs);
					if (v[o][r] < 0) {
						if (e == 0 && w == 0 && r == 0 && o == 0)
							goto next_engine;
						return 1;
					}
				}
				for (unsigned int o = 1; o < 3; o++)
					ratio[o][r] = v[o][r] / v[0][r];
				host_ratio[r] = v[0][r] / host(path, (enum work)w, bufs);
			}
			for (unsigned int o = 0; o < 3; o++)
				printf("disk_layers.%s.%s.overlays%d.mbs: %.1f\n", engines[e],
				       work_name[w], overlays[o], median(v[o], reps));
			for (unsigned int o = 1; o < 3; o++)
				printf("disk_layers.%s.%s.overlays%d.ratio: %.2f\n", engines[e],
				       work_name[w], overlays[o], median(ratio[o], reps));
			printf("disk_layers.%s.%s.overlays0_vs_host_qd1.ratio: %.2f\n", engines[e],
			       work_name[w], median(host_ratio, reps));
		}
	next_engine:;
	}
	unlink(path);
	free(bufs);
	return 0;
}
