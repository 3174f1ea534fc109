/* SPDX-License-Identifier: MIT */
/*
 * A fake guest memory for device unit tests: one malloc'd buffer at GPA
 * @base implementing struct guest_mem, counting pins, plus helpers that play
 * the driver's side of a split virtqueue in it.
 */
#ifndef FORKVM_TESTS_HELPERS_FAKE_MEM_H
#define FORKVM_TESTS_HELPERS_FAKE_MEM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"

struct virtqueue;

struct fake_mem {
	uint8_t *buf;
	uint64_t base;
	uint64_t size;
	struct guest_mem gm;
	/* Counters (atomic: a device thread may pin). */
	unsigned int pins;
	unsigned int write_pins;
	unsigned int unpins;
	unsigned int reads;
	unsigned int writes;
	/* The thread of the last pin: which thread ran the device. */
	pthread_t last_pin_thread;
};

/** fake_mem_init() - @size bytes of zeroed guest memory at @base.  With
 * @with_check false, gm.check is NULL (the queue's probing fallback). */
int fake_mem_init(struct fake_mem *m, uint64_t base, uint64_t size, bool with_check);
void fake_mem_fini(struct fake_mem *m);
/** fake_mem_ptr() - host pointer to @gpa (the test's own view), or NULL. */
void *fake_mem_ptr(struct fake_mem *m, uint64_t gpa);
/** fake_mem_pins_released() - every pin taken was unpinned. */
bool fake_mem_pins_released(const struct fake_mem *m);

/* The driver's side of one split virtqueue in fake memory. */
struct fake_vring {
	struct fake_mem *m;
	uint16_t num;
	uint64_t desc;
	uint64_t avail;
	uint64_t used;
	uint16_t avail_idx; /* next avail index the driver will publish */
};

/** fake_vring_init() - lay out a ring of @num entries at @gpa (page-aligned). */
void fake_vring_init(struct fake_vring *r, struct fake_mem *m, uint16_t num, uint64_t gpa);
/**
 * fake_vring_attach() - give @vq the ring's size and addresses, as a driver
 * does through QueueNum and the ring address registers (vq_enable() next).
 */
void fake_vring_attach(const struct fake_vring *r, struct virtqueue *vq);
/** fake_vring_end() - first GPA after the ring's three parts. */
uint64_t fake_vring_end(const struct fake_vring *r);
/** fake_desc() - write descriptor @idx of the table at @table. */
void fake_desc(struct fake_mem *m, uint64_t table, uint16_t idx, uint64_t addr, uint32_t len,
	       uint16_t flags, uint16_t next);
/** fake_vring_desc() - write descriptor @idx of the ring's own table. */
void fake_vring_desc(struct fake_vring *r, uint16_t idx, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next);
/** fake_vring_publish() - put @head in the avail ring and bump avail->idx. */
void fake_vring_publish(struct fake_vring *r, uint16_t head);
/** fake_vring_set_avail_idx() - write avail->idx directly (for bad jumps). */
void fake_vring_set_avail_idx(struct fake_vring *r, uint16_t idx);
void fake_vring_set_avail_flags(struct fake_vring *r, uint16_t flags);
void fake_vring_set_used_event(struct fake_vring *r, uint16_t v);
uint16_t fake_vring_avail_event(struct fake_vring *r);
uint16_t fake_vring_used_idx(struct fake_vring *r);
/** fake_vring_used() - used ring entry @i (mod num): id and len. */
void fake_vring_used(struct fake_vring *r, uint16_t i, uint32_t *id, uint32_t *len);

uint8_t fake_mem_u8(struct fake_mem *m, uint64_t gpa);
void fake_mem_set_u8(struct fake_mem *m, uint64_t gpa, uint8_t v);

#endif /* FORKVM_TESTS_HELPERS_FAKE_MEM_H */
