// SPDX-License-Identifier: MIT
/*
 * The working-set file of a snapshot (vmm/snapshot/lazy.c): written
 * atomically, read back whole, and every damaged form refused with a line
 * naming the fault (no KVM).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/snapshot/lazy.h"

#define PAGE 4096
#define HASH 0x1234abcdULL

static char dir[64];
static struct snap_manifest man;
static const uint64_t gpas[] = { 0x100000, 0x101000, 0x7ff000 };
static uint8_t data[3 * PAGE];
static char err[512];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/forkvm-ws-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	man.nranges = 1;
	man.range[0] = (struct snap_range){ 0, 8 << 20 };
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 1);
	cr_assert_eq(snap_ws_write(dir, HASH, gpas, data, 3, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_WS_NAME);
	unlink(path);
	rmdir(dir);
}

static void path_of(char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", dir, SNAP_WS_NAME);
}

static uint8_t *file(size_t *len)
{
	char path[128];
	struct stat sb;
	uint8_t *b;
	int fd;

	path_of(path, sizeof(path));
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &sb), 0);
	*len = (size_t)sb.st_size;
	b = malloc(*len);
	cr_assert_eq(read(fd, b, *len), (ssize_t)*len);
	close(fd);
	return b;
}

static void put(const uint8_t *b, size_t len)
{
	char path[128];
	int fd;

	path_of(path, sizeof(path));
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, b, len), (ssize_t)len);
	close(fd);
}

/* The file with @len bytes at @at replaced by @v, read: refused naming @what. */
static void refused_with(const uint8_t *good, size_t len, size_t at, const void *v, size_t vlen,
			 const char *what)
{
	uint8_t *bad = malloc(len);
	struct snap_ws ws;

	memcpy(bad, good, len);
	memcpy(bad + at, v, vlen);
	put(bad, len);
	cr_assert_neq(snap_ws_read(dir, &man, HASH, &ws, err, sizeof(err)), 0, "%s accepted", what);
	cr_assert(strstr(err, what), "expected '%s', got '%s'", what, err);
	cr_assert_null(ws.gpas);
	free(bad);
}

Test(snapshot_ws, a_written_working_set_reads_back_whole, .init = setup, .fini = teardown)
{
	struct snap_ws ws;
	size_t len;
	uint8_t *b = file(&len);

	cr_assert_eq(len, PAGE + 3 * PAGE, "header and addresses padded to a page, then data");
	free(b);
	cr_assert_eq(snap_ws_read(dir, &man, HASH, &ws, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ws.n, 3);
	cr_assert_arr_eq(ws.gpas, gpas, sizeof(gpas));
	cr_assert_arr_eq(ws.data, data, sizeof(data));
	snap_ws_free(&ws);
	/* No temporary is left behind. */
	cr_assert_eq(rmdir(dir), -1);
	cr_assert_eq(errno, ENOTEMPTY);
}

Test(snapshot_ws, every_damaged_form_is_refused_naming_it, .init = setup, .fini = teardown)
{
	size_t len;
	uint8_t *good = file(&len);
	uint64_t v;
	uint32_t c;
	struct snap_ws ws;
	char path[128];

	refused_with(good, len, 0, "X", 1, "not a working-set file");
	c = 2;
	refused_with(good, len, 8, &c, 4, "not a working-set file of version 1");
	c = 4;
	refused_with(good, len, 12, &c, 4, "for 4 entries");
	v = HASH + 1;
	refused_with(good, len, 16, &v, 8, "recorded for another snapshot");
	v = 0x101000;
	refused_with(good, len, SNAP_WS_HEADER, &v, 8, "not above the one before");
	v = 0x100800;
	refused_with(good, len, SNAP_WS_HEADER, &v, 8, "not a page of the memory layout");
	v = 8 << 20;
	refused_with(good, len, SNAP_WS_HEADER + 16, &v, 8, "not a page of the memory layout");
	refused_with(good, len, len - 1, "\x55", 1, "does not match its checksum");
	put(good, len - 1);
	cr_assert_neq(snap_ws_read(dir, &man, HASH, &ws, err, sizeof(err)), 0);
	cr_assert(strstr(err, "bytes for 3 entries"), "%s", err);
	put(good, 7);
	cr_assert_neq(snap_ws_read(dir, &man, HASH, &ws, err, sizeof(err)), 0);
	cr_assert(strstr(err, "7 bytes, expected 32"), "%s", err);
	/* More entries than the layout has pages. */
	man.range[0].size = 2 * PAGE;
	put(good, len);
	cr_assert_neq(snap_ws_read(dir, &man, HASH, &ws, err, sizeof(err)), 0);
	cr_assert(strstr(err, "bytes, expected 32 to"), "%s", err);
	man.range[0].size = 8 << 20;
	/* Not a regular file; none at all. */
	path_of(path, sizeof(path));
	unlink(path);
	cr_assert_eq(mkfifo(path, 0644), 0);
	cr_assert_neq(snap_ws_read(dir, &man, HASH, &ws, err, sizeof(err)), 0);
	cr_assert(strstr(err, "not a regular file"), "%s", err);
	unlink(path);
	cr_assert_eq(snap_ws_read(dir, &man, HASH, &ws, err, sizeof(err)), -ENOENT);
	/* And the good one again. */
	put(good, len);
	cr_assert_eq(snap_ws_read(dir, &man, HASH, &ws, err, sizeof(err)), 0, "%s", err);
	snap_ws_free(&ws);
	free(good);
}

Test(snapshot_ws, an_empty_working_set_round_trips, .init = setup, .fini = teardown)
{
	struct snap_ws ws;

	cr_assert_eq(snap_ws_write(dir, HASH, NULL, NULL, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_ws_read(dir, &man, HASH, &ws, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ws.n, 0);
	snap_ws_free(&ws);
}
