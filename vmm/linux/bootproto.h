/* SPDX-License-Identifier: MIT */
/*
 * The Linux x86 boot protocol (Documentation/arch/x86/boot.rst, zero-page.rst)
 * as constants: offsets in the bzImage's setup header and in struct
 * boot_params (the "zero page"), and the e820 types.  Offsets, not a packed
 * struct: the image is untrusted bytes, read with memcpy at these offsets.
 */
#ifndef FORKVM_VMM_LINUX_BOOTPROTO_H
#define FORKVM_VMM_LINUX_BOOTPROTO_H

/* The setup header: the same offsets in the image and in boot_params. */
#define BP_SETUP_SECTS 0x1f1 /* u8: 512-byte setup sectors after the boot sector */
#define BP_VID_MODE 0x1fa /* u16 */
#define BP_BOOT_FLAG 0x1fe /* u16: 0xaa55 */
#define BP_JUMP 0x200 /* u16: a short jmp; its 2nd byte bounds the header */
#define BP_HEADER 0x202 /* u32: "HdrS" */
#define BP_VERSION 0x206 /* u16: protocol version, major.minor as 0xMMmm */
#define BP_TYPE_OF_LOADER 0x210 /* u8 */
#define BP_LOADFLAGS 0x211 /* u8 */
#define BP_CODE32_START 0x214 /* u32 */
#define BP_RAMDISK_IMAGE 0x218 /* u32 */
#define BP_RAMDISK_SIZE 0x21c /* u32 */
#define BP_HEAP_END_PTR 0x224 /* u16 */
#define BP_CMD_LINE_PTR 0x228 /* u32 */
#define BP_INITRD_ADDR_MAX 0x22c /* u32 */
#define BP_KERNEL_ALIGNMENT 0x230 /* u32 */
#define BP_RELOCATABLE 0x234 /* u8 */
#define BP_XLOADFLAGS 0x236 /* u16 */
#define BP_CMDLINE_SIZE 0x238 /* u32 */
#define BP_HARDWARE_SUBARCH 0x23c /* u32 */
#define BP_PAYLOAD_OFFSET 0x248 /* u32 */
#define BP_PAYLOAD_LENGTH 0x24c /* u32 */
#define BP_PREF_ADDRESS 0x258 /* u64 */
#define BP_INIT_SIZE 0x260 /* u32 */

/* struct boot_params outside the setup header. */
#define BP_ACPI_RSDP_ADDR 0x070 /* u64 (protocol 2.14) */
#define BP_EXT_RAMDISK_IMAGE 0x0c0 /* u32: high bits of ramdisk_image */
#define BP_EXT_RAMDISK_SIZE 0x0c4 /* u32 */
#define BP_EXT_CMD_LINE_PTR 0x0c8 /* u32 */
#define BP_E820_ENTRIES 0x1e8 /* u8 */
#define BP_SENTINEL 0x1ef /* u8: 0 from a loader that zeroed the page */
#define BP_E820_TABLE 0x2d0 /* 128 entries of struct boot_e820_entry */
#define BP_E820_MAX 128
#define BP_SIZE 4096

#define BOOT_FLAG_MAGIC 0xaa55
#define HDRS_MAGIC 0x53726448u /* "HdrS" little-endian */
#define LOADER_UNDEFINED 0xff /* type_of_loader: no assigned id */

/* loadflags */
#define LOADED_HIGH (1u << 0) /* the protected-mode code is at 0x100000 */
#define KEEP_SEGMENTS (1u << 6)
#define CAN_USE_HEAP (1u << 7)

/* xloadflags */
#define XLF_KERNEL_64 (1u << 0) /* 64-bit entry at the load address + 0x200 */
#define XLF_CAN_BE_LOADED_ABOVE_4G (1u << 1)

#define BZ_ENTRY64_OFFSET 0x200 /* the 64-bit entry point in the protected-mode code */

/* e820 entry: u64 addr, u64 size, u32 type (packed, 20 bytes). */
#define E820_ENTRY_SIZE 20
#define E820_RAM 1
#define E820_RESERVED 2
#define E820_ACPI 3

#endif /* FORKVM_VMM_LINUX_BOOTPROTO_H */
