/* SPDX-License-Identifier: MIT */
/*
 * The aggregate state of a paused machine, versioned: a list of sections in
 * one buffer, each a plain struct of its owner (struct vm_state, one struct
 * vcpu_state per vCPU, one device state per device that has one, the
 * device's in-flight requests included).  A clone carries it from the parent
 * to the child; a snapshot will write the same sections to its manifest.
 *
 * Layout: a 64-byte header, then sections, each a 64-byte section header
 * and a payload padded to 64 bytes (vcpu_state's XSAVE area needs 64-byte
 * alignment, so a payload is used in place).  Everything in it is checked on
 * restore as untrusted input: framing here (mstate_check), contents by each
 * owner's restore.
 */
#ifndef FORKVM_VMM_MACHINE_STATE_H
#define FORKVM_VMM_MACHINE_STATE_H

#include <stddef.h>
#include <stdint.h>

#define MSTATE_MAGIC 0x666d7374u /* "fmst" */
#define MSTATE_VERSION 1u
#define MSTATE_ALIGN 64u
/* Largest state accepted for one section (a vcpu_state is ~17 KiB). */
#define MSTATE_SECTION_MAX (1u << 20)

enum mstate_kind {
	MSTATE_VM = 1, /* struct vm_state, id 0 */
	MSTATE_VCPU = 2, /* struct vcpu_state, id = vCPU index */
	MSTATE_DEVICE = 3, /* a device's state, id = struct device.id, type = enum device_type */
};

struct mstate_header {
	uint32_t magic;
	uint32_t version;
	uint32_t nsections;
	uint32_t reserved;
	uint64_t size; /* bytes in use, header included */
	uint8_t pad[40];
};

struct mstate_section {
	uint32_t kind;
	uint32_t id;
	uint32_t type;
	uint32_t reserved;
	uint64_t size; /* payload bytes (unpadded) */
	uint8_t pad[40];
};

struct machine_state {
	uint8_t *buf; /* MSTATE_ALIGN-aligned */
	size_t cap;
};

/** mstate_init() - an empty state with room for @cap bytes.  Return: 0 or -ENOMEM. */
int mstate_init(struct machine_state *ms, size_t cap) __attribute__((warn_unused_result));

/** mstate_free() - free the buffer; safe twice. */
void mstate_free(struct machine_state *ms);

/** mstate_room() - bytes a section of @size payload bytes takes. */
size_t mstate_room(size_t size);

/**
 * mstate_add() - append a section and return its payload (zeroed), or NULL
 * if the buffer has no room (no allocation: called during a pause).
 */
void *mstate_add(struct machine_state *ms, uint32_t kind, uint32_t id, uint32_t type,
		 uint32_t size);

/**
 * mstate_check() - check the framing of @ms: magic, version (an unknown one
 * is refused naming both), every section inside the buffer and of a known
 * kind, no two sections of the same kind and id.  Return: 0 or -EINVAL with
 * @err.
 */
int mstate_check(const struct machine_state *ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * mstate_find() - the payload of section (@kind, @id), its type and size,
 * or NULL.  Only on a state that passed mstate_check().
 */
const void *mstate_find(const struct machine_state *ms, uint32_t kind, uint32_t id, uint32_t *type,
			uint32_t *size);

/** mstate_size() - bytes in use. */
size_t mstate_size(const struct machine_state *ms);

#endif /* FORKVM_VMM_MACHINE_STATE_H */
