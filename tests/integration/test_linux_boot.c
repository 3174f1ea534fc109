// SPDX-License-Identifier: MIT
/*
 * Debian's stock kernel under forkvm (docs/linux-guest.md): boots to /init
 * and runs a command, sees --cpus 2, exits with the workload's status, reads
 * and writes a virtio-blk disk that the test checks on the host, and a bad
 * kernel image is refused with a message naming what is wrong.  The kernel and initramfs are the build's
 * ($FORKVM_OUT/linux/, made by guest/linux/linux.mk).
 *
 * Each boot is bounded by --timeout; on the nested path (QEMU/TCG, then
 * KVM inside) Linux reaches /init in 15-30 s, so the timeouts are generous.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/test_linux_helpers.h"

#define BOOT_TIMEOUT "150"
#define CMDLINE_BASE "console=ttyS0 reboot=t panic=-1 quiet "

static char out[VMM_OUT_MAX];

static int run_forkvm(const char *const *args)
{
	return linux_run_forkvm(out, sizeof(out), args);
}

static char kernel[600], initrd[600];

static void linux_or_skip(void)
{
	linux_files_or_skip(kernel, sizeof(kernel), initrd, sizeof(initrd));
}

/* forkvm run --kernel ... with @extra arguments (NULL-terminated). */
static int run_linux(const char *cmdline, const char *const *extra)
{
	const char *args[32] = { "run",	      "--kernel", kernel,      "--initrd",  initrd,
				 "--cmdline", cmdline,	  "--timeout", BOOT_TIMEOUT };
	size_t n = 9;

	while (extra && *extra && n < 31)
		args[n++] = *extra++;
	args[n] = NULL;
	return run_forkvm(args);
}

/*
 * One boot for four things (each boot is ~30 s on the nested path), the
 * fourth RAM above the MMIO hole: 3.5 GiB are 3 GiB at 0 and 512 MiB from
 * 4 GiB, so a MemTotal over 3 GiB is only possible with the high range in
 * use.  Pages the guest never touches cost nothing.
 */
Test(linux_boot, boots_to_init_runs_a_command_on_two_cpus_and_exits_with_its_status, .timeout = 400)
{
	static const char *const extra[] = { "--cpus", "2", "--mem", "3584M", NULL };
	unsigned long kb = 0;
	const char *p;
	int rc;

	linux_or_skip();
	rc = run_linux(CMDLINE_BASE "forkvm_run=sh forkvm_cmd=\"echo answer=$((6 * 7)); "
				    "uname -m; echo cpus=$(grep -c ^processor /proc/cpuinfo) "
				    "online=$(cat /sys/devices/system/cpu/online); "
				    "grep MemTotal /proc/meminfo; exit 7\"",
		       extra);
	cr_assert_eq(rc, 7, "forkvm exited %d, expected the workload's 7:\n%s", rc, out);
	cr_assert(strstr(out, "forkvm-init: up at"), "%s", out);
	cr_assert(strstr(out, "answer=42\n"), "the shell's own arithmetic:\n%s", out);
	cr_assert(strstr(out, "x86_64\n"), "%s", out);
	cr_assert(strstr(out, "cpus=2 online=0-1\n"), "%s", out);
	cr_assert(strstr(out, "forkvm-init: exit 7"), "%s", out);
	p = strstr(out, "MemTotal:");
	cr_assert_not_null(p, "%s", out);
	cr_assert_eq(sscanf(p, "MemTotal: %lu kB", &kb), 1, "%s", out);
	cr_assert(kb > 3ul << 20 && kb <= 3584ul << 10, "MemTotal %lu kB of 3584 MiB:\n%s", kb,
		  out);
}

Test(linux_boot, virtio_blk_reads_the_host_file_and_its_write_reaches_it, .timeout = 400)
{
	const char *extra[] = { "--disk", NULL, NULL };
	char path[512], line[128], want[128], cmdline[256];
	unsigned int nonce = (unsigned int)getpid() * 2654435761u;
	int fd, rc;
	ssize_t n;

	linux_or_skip();
	vmm_path(path, sizeof(path), "linux-disk.img");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	n = snprintf(line, sizeof(line), "host line %u\n", nonce);
	cr_assert_eq(write(fd, line, (size_t)n), n);
	cr_assert_eq(ftruncate(fd, 1 << 20), 0);
	close(fd);
	extra[1] = path;
	snprintf(cmdline, sizeof(cmdline), CMDLINE_BASE "forkvm_run=blk forkvm_arg=%u", nonce + 1);
	rc = run_linux(cmdline, extra);
	cr_assert_eq(rc, 0, "forkvm exited %d:\n%s", rc, out);
	cr_assert(strstr(out, "blk: size 2048 sectors"), "%s", out);
	snprintf(want, sizeof(want), "blk: first line: host line %u\n", nonce);
	cr_assert(strstr(out, want), "the guest read the host's bytes:\n%s", out);

	/* The guest wrote at 4 KiB; the host file has it. */
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	memset(line, 0, sizeof(line));
	cr_assert_gt(pread(fd, line, sizeof(line) - 1, 4096), 0);
	close(fd);
	snprintf(want, sizeof(want), "written by linux %u\n", nonce + 1);
	cr_assert_eq(strncmp(line, want, strlen(want)), 0, "host file at 4096: '%s'", line);
	/* And the first line is untouched. */
	snprintf(want, sizeof(want), "blk: read back: written by linux %u", nonce + 1);
	cr_assert(strstr(out, want), "%s", out);
}

/* A file of @len bytes from @src (NULL: zeros) at the test's scratch @name. */
static void make_file(char *path, size_t plen, const char *name, const void *src, size_t len)
{
	int fd;

	vmm_path(path, plen, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	if (src)
		cr_assert_eq(write(fd, src, len), (ssize_t)len);
	else
		cr_assert_eq(ftruncate(fd, (off_t)len), 0);
	close(fd);
}

static int run_kernel(const char *kpath, const char *mem)
{
	const char *args[] = { "run", "--kernel", kpath, "--mem", mem, "--timeout", "30", NULL };

	return run_forkvm(args);
}

Test(linux_boot, a_bad_kernel_image_is_refused_with_one_clear_line, .timeout = 120)
{
	char path[512], *head;
	FILE *f;
	size_t n;
	int rc;

	linux_or_skip();
	/* Zeros: no setup header. */
	make_file(path, sizeof(path), "zeros.img", NULL, 1 << 20);
	rc = run_kernel(path, "256M");
	cr_assert_eq(rc, 1, "%s", out);
	cr_assert(strstr(out, "--kernel") && strstr(out, "not a bzImage") &&
		      strstr(out, "bad magic"),
		  "%s", out);

	/* The test guest: an ELF, not a bzImage. */
	rc = run_kernel(vmm_guest(), "256M");
	cr_assert_eq(rc, 1, "%s", out);
	cr_assert(strstr(out, "ELF") && strstr(out, "vmlinuz"), "%s", out);

	/* The real kernel, cut after its setup sectors. */
	head = malloc(16384);
	f = fopen(kernel, "rb");
	cr_assert_not_null(f);
	n = fread(head, 1, 16384, f);
	fclose(f);
	cr_assert_eq(n, 16384);
	make_file(path, sizeof(path), "cut.img", head, 8192);
	rc = run_kernel(path, "256M");
	cr_assert_eq(rc, 1, "%s", out);
	cr_assert(strstr(out, "truncated"), "%s", out);

	/* An old boot protocol (2.06) in an otherwise real header. */
	head[0x206] = 0x06;
	make_file(path, sizeof(path), "old.img", head, 16384);
	rc = run_kernel(path, "256M");
	cr_assert_eq(rc, 1, "%s", out);
	cr_assert(strstr(out, "2.06") && strstr(out, "too old"), "%s", out);
	free(head);

	/* The real kernel in too little memory: ~64 MiB from 16 MiB. */
	rc = run_kernel(kernel, "48M");
	cr_assert_eq(rc, 1, "%s", out);
	cr_assert(strstr(out, "too big for --mem"), "%s", out);

	/* No such file. */
	rc = run_kernel("/nonexistent/vmlinuz", "256M");
	cr_assert_eq(rc, 1, "%s", out);
	cr_assert(strstr(out, "--kernel /nonexistent/vmlinuz") && strstr(out, "No such file"), "%s",
		  out);
}

Test(linux_boot, linux_options_are_checked_before_any_vm_exists)
{
	static const char *const with_guest[] = { "run", "--kernel", "k", "--guest", "test", NULL };
	static const char *const with_workload[] = { "run",	   "--kernel", "k",
						     "--workload", "hello",    NULL };
	static const char *const initrd_alone[] = { "run",   "--guest",	 "test", "--workload",
						    "hello", "--initrd", "i",	 NULL };
	int rc;

	/* No KVM needed: these stop at the command line (exit 2). */
	rc = run_forkvm(with_guest);
	cr_assert_eq(rc, 2, "%s", out);
	cr_assert(strstr(out, "--guest") && strstr(out, "--kernel"), "%s", out);
	rc = run_forkvm(with_workload);
	cr_assert_eq(rc, 2, "%s", out);
	cr_assert(strstr(out, "--cmdline"), "%s", out);
	rc = run_forkvm(initrd_alone);
	cr_assert_eq(rc, 2, "%s", out);
	cr_assert(strstr(out, "need --kernel"), "%s", out);
}
