// SPDX-License-Identifier: MIT
/* The bzImage's setup header: untrusted bytes, every field checked before use. */
#include "vmm/linux/linux.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static uint32_t rd(const uint8_t *p, size_t off, unsigned int n)
{
	uint32_t v = 0;

	memcpy(&v, p + off, n);
	return v;
}

static __attribute__((format(printf, 3, 4))) int bad(char *err, size_t errlen, const char *fmt, ...)
{
	char what[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "kernel image: %s", what);
	return -ENOEXEC;
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

int bzimage_check(const void *data, size_t size, struct bzimage *bz, char *err, size_t errlen)
{
	const uint8_t *p = data;
	uint64_t pref;
	unsigned int sects;

	memset(bz, 0, sizeof(*bz));
	/* Image value: everything up to init_size (protocol 2.10) must be there. */
	if (size < BP_INIT_SIZE + 4)
		return bad(err, errlen,
			   "%zu bytes is too short for a bzImage (its setup header ends at "
			   "byte %d)",
			   size, BP_INIT_SIZE + 4);
	if (size > LINUX_MAX_IMAGE)
		return bad(err, errlen, "%zu MiB is larger than the %llu MiB forkvm accepts",
			   size >> 20, LINUX_MAX_IMAGE >> 20);
	if (rd(p, BP_HEADER, 4) != HDRS_MAGIC) {
		if (!memcmp(p,
			    "\x7f"
			    "ELF",
			    4))
			return bad(err, errlen,
				   "an ELF file (a vmlinux?), not a bzImage: give the "
				   "compressed kernel, /boot/vmlinuz-*");
		return bad(err, errlen, "not a bzImage: no 'HdrS' setup header at 0x%x (bad magic)",
			   BP_HEADER);
	}
	if (rd(p, BP_BOOT_FLAG, 2) != BOOT_FLAG_MAGIC)
		return bad(err, errlen, "boot sector flag 0x%x, expected 0x%x",
			   rd(p, BP_BOOT_FLAG, 2), BOOT_FLAG_MAGIC);
	bz->version = (uint16_t)rd(p, BP_VERSION, 2);
	if (bz->version < LINUX_MIN_VERSION)
		return bad(err, errlen,
			   "boot protocol %u.%02u is too old: forkvm enters the kernel in "
			   "64-bit mode, which needs 2.12 (Linux 3.8) or later",
			   bz->version >> 8, bz->version & 0xff);
	bz->loadflags = (uint8_t)rd(p, BP_LOADFLAGS, 1);
	if (!(bz->loadflags & LOADED_HIGH))
		return bad(err, errlen, "a zImage (loaded low, loadflags 0x%x)", bz->loadflags);
	bz->xloadflags = (uint16_t)rd(p, BP_XLOADFLAGS, 2);
	if (!(bz->xloadflags & XLF_KERNEL_64))
		return bad(err, errlen,
			   "no 64-bit entry point (xloadflags 0x%x): a 32-bit kernel? forkvm "
			   "boots x86-64 kernels",
			   bz->xloadflags);

	/* Image value: 0 means 4 (old images); the real-mode part must fit. */
	sects = rd(p, BP_SETUP_SECTS, 1);
	if (!sects)
		sects = 4;
	bz->setup_size = (size_t)(sects + 1) * 512;
	if (bz->setup_size >= size)
		return bad(err, errlen,
			   "truncated: %zu setup bytes but the file has %zu, no kernel after "
			   "them",
			   bz->setup_size, size);
	/* Image value: the jump's offset bounds the header; it must lie in the setup. */
	bz->header_end = BP_JUMP + 2 + rd(p, BP_JUMP + 1, 1);
	if (bz->header_end < BP_INIT_SIZE + 4 || bz->header_end > bz->setup_size)
		return bad(err, errlen, "setup header ends at 0x%zx, outside 0x%x..setup",
			   bz->header_end, BP_INIT_SIZE + 4);
	bz->kernel_offset = bz->setup_size;
	bz->kernel_size = size - bz->setup_size;

	bz->relocatable = rd(p, BP_RELOCATABLE, 1) != 0;
	bz->kernel_alignment = rd(p, BP_KERNEL_ALIGNMENT, 4);
	if (bz->relocatable &&
	    (!is_pow2(bz->kernel_alignment) || bz->kernel_alignment > (1u << 30)))
		return bad(err, errlen, "kernel_alignment 0x%x is not a power of two up to 1 GiB",
			   bz->kernel_alignment);
	memcpy(&pref, p + BP_PREF_ADDRESS, 8);
	/* Image value: loaded where the header asks, in low RAM, page aligned. */
	if (pref < 0x100000 || pref >= LINUX_HOLE_START || pref % 4096 ||
	    (bz->relocatable && pref % bz->kernel_alignment))
		return bad(err, errlen,
			   "preferred load address 0x%llx: expected a page-aligned address from "
			   "1 MiB to 3 GiB, aligned to kernel_alignment 0x%x",
			   (unsigned long long)pref, bz->kernel_alignment);
	bz->pref_address = pref;
	bz->init_size = rd(p, BP_INIT_SIZE, 4);
	if (bz->init_size < bz->kernel_size || bz->init_size > (1u << 30))
		return bad(err, errlen,
			   "init_size 0x%x: smaller than the %zu-byte kernel or over 1 GiB",
			   bz->init_size, bz->kernel_size);
	bz->initrd_addr_max = rd(p, BP_INITRD_ADDR_MAX, 4);
	if (!bz->initrd_addr_max)
		bz->initrd_addr_max = 0x37ffffff; /* boot.rst: the default before 2.03 */
	bz->cmdline_size = rd(p, BP_CMDLINE_SIZE, 4);
	if (!bz->cmdline_size)
		bz->cmdline_size = 255;
	return 0;
}
