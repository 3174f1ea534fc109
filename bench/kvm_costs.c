// SPDX-License-Identifier: MIT
/*
 * kvm_costs: what one KVM exit and one copy-on-write fault cost here, on
 * whichever KVM path runs it (direct, or nested under QEMU/TCG).
 *
 *   kvm_costs.path                  direct / nested (from scripts/in-kvm)
 *   kvm_costs.vm_create_ms          KVM_CREATE_VM + boot memslot + vCPU
 *   kvm_costs.pio_exit_us           one guest port-I/O exit round trip (CPL 3)
 *   kvm_costs.guest_fresh_page_us   guest's first write to a never-written page of a space
 *   kvm_costs.guest_wp_fault_us     guest write to a shared, write-protected page
 *                                   of a space (mm's fault service copies, remaps,
 *                                   wakes), one page per fault (cow_batch 1)
 *   kvm_costs.host_wp_fault_us      the same fault taken by a host thread
 *   kvm_costs.guest_vs_host_wp.ratio
 *   kvm_costs.guest_wp_page_us.default_batch   per page written, mm's default
 *   kvm_costs.host_wp_page_us.default_batch    cow_batch (adjacent pages copied
 *                                              together on one fault)
 *   kvm_costs.guest_wp_faults_per_page.default_batch
 *
 * Each figure is the median of ROUNDS rounds.  Run it where KVM is:
 *     scripts/in-kvm build/bench/kvm_costs
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "mm/mm.h"
#include "tests/helpers/mini_kvm.h"

#define ROUNDS 5
#define PIO_EXITS 2000
#define NPAGES 256
#define SPACE_SIZE (4ULL << 20)
#define PORT_PIO 0x1234
#define PORT_DONE 0x1236

/* Run until the done port; count the other port-I/O exits.  -1 on a bad exit. */
static long run_to_done(struct mkvm *m)
{
	char why[128];
	long exits = 0;
	int r;

	for (;;) {
		r = mkvm_run(m);
		if (r == KVM_EXIT_IO && m->run->io.port == PORT_DONE)
			return exits;
		if (r == KVM_EXIT_IO) {
			exits++;
			continue;
		}
		fprintf(stderr, "kvm_costs: %s\n", mkvm_describe_exit(m, r, why, sizeof(why)));
		return -1;
	}
}

static int pio_exit_us(double *out)
{
	struct mkvm m;
	double t0, t;
	long n;
	int ret;

	ret = mkvm_open(&m);
	if (ret)
		return ret;
	mkvm_program_out_loop(mkvm_boot_ptr(&m, MKVM_CODE), PORT_PIO, PIO_EXITS, PORT_DONE);
	ret = mkvm_enter_long_mode(&m, 3, MKVM_BOOT_GPA + MKVM_CODE);
	if (ret)
		goto out;
	/* The first exit pays for faulting in the code and tables. */
	if (mkvm_run(&m) != KVM_EXIT_IO) {
		ret = -EIO;
		goto out;
	}
	t0 = now_us();
	n = run_to_done(&m);
	t = now_us() - t0;
	if (n != PIO_EXITS - 1) {
		ret = -EIO;
		goto out;
	}
	*out = t / (n + 1); /* n exits plus the done exit */
out:
	mkvm_close(&m);
	return ret;
}

static double vm_create_ms(void)
{
	struct mkvm m;
	double t0 = now_us(), t;

	if (mkvm_open(&m))
		return -1;
	t = now_us() - t0;
	mkvm_close(&m);
	return t / 1e3;
}

enum wp_mode { GUEST_SHARED, GUEST_FRESH, HOST_SHARED };

/*
 * One round: a space with NPAGES written pages (or none for GUEST_FRESH),
 * forked so that every page is shared and write-protected, then NPAGES
 * writes (one qword per page) by the guest or by this thread.
 * Return: microseconds per page, or a negative value on error.
 */
static double wp_round(enum wp_mode mode, unsigned int cow_batch, double *faults_per_page)
{
	struct pool_config cfg = { .cow_batch = cow_batch };
	struct space *space = NULL, *child = NULL;
	struct pool_stats st0, st1;
	struct pool *pool = NULL;
	struct mkvm m = { .kvm = -1, .vm = -1, .vcpu = -1 };
	double t0, t = -1;
	uint64_t i;
	uint8_t *w;

	if (pool_create(&cfg, &pool))
		return -1;
	if (space_create(pool, &(struct space_range){ 0, SPACE_SIZE }, 1, &space))
		goto out;
	w = space_hva(space, 0);
	if (mode != GUEST_FRESH) {
		for (i = 0; i < NPAGES; i++)
			memset(w + i * MM_PAGE_SIZE, (int)i, MM_PAGE_SIZE);
		if (space_fork(space, &child))
			goto out;
	}
	pool_get_stats(pool, &st0);
	if (mode == HOST_SHARED) {
		t0 = now_us();
		for (i = 0; i < NPAGES; i++)
			*(volatile uint64_t *)(w + i * MM_PAGE_SIZE + 8) = i;
		t = (now_us() - t0) / NPAGES;
		goto out;
	}
	if (mkvm_open(&m) || mkvm_set_slot(&m, 1, 0, w, SPACE_SIZE))
		goto out;
	mkvm_program_write_pages(mkvm_boot_ptr(&m, MKVM_CODE), 8, MM_PAGE_SIZE, NPAGES,
				 0x5a5a5a5a5a5a5a5aULL, PORT_DONE);
	if (mkvm_enter_long_mode(&m, 3, MKVM_BOOT_GPA + MKVM_CODE))
		goto out;
	t0 = now_us();
	if (run_to_done(&m) != 0)
		goto out;
	t = (now_us() - t0) / NPAGES;
	pool_get_stats(pool, &st1);
	if (faults_per_page)
		*faults_per_page = (double)(st1.faults - st0.faults) / NPAGES;
out:
	mkvm_close(&m);
	space_destroy(child);
	space_destroy(space);
	pool_destroy(pool);
	return t;
}

int main(void)
{
	double pio[ROUNDS], create[ROUNDS], gwp[ROUNDS], gfresh[ROUNDS], hwp[ROUNDS];
	double gwpb[ROUNDS], hwpb[ROUNDS], gfpp[ROUNDS];
	const char *path = getenv("FORKVM_KVM_PATH");
	int i, ret;

	for (i = 0; i < ROUNDS; i++) {
		ret = pio_exit_us(&pio[i]);
		if (ret == -ENOENT || ret == -ENXIO || ret == -ENODEV) {
			printf("kvm_costs.skipped: no /dev/kvm here (%s); run: scripts/in-kvm %s\n",
			       strerror(-ret), "build/bench/kvm_costs");
			return 0;
		}
		if (ret) {
			fprintf(stderr, "kvm_costs: port-I/O round failed: %s\n", strerror(-ret));
			return 1;
		}
		create[i] = vm_create_ms();
		gwp[i] = wp_round(GUEST_SHARED, 1, NULL);
		gfresh[i] = wp_round(GUEST_FRESH, 1, NULL);
		hwp[i] = wp_round(HOST_SHARED, 1, NULL);
		gwpb[i] = wp_round(GUEST_SHARED, 0, &gfpp[i]);
		hwpb[i] = wp_round(HOST_SHARED, 0, NULL);
		if (create[i] < 0 || gwp[i] < 0 || gfresh[i] < 0 || hwp[i] < 0 || gwpb[i] < 0 ||
		    hwpb[i] < 0) {
			fprintf(stderr, "kvm_costs: a write-protect round failed\n");
			return 1;
		}
	}
	printf("kvm_costs.path: %s\n", path ? path : "unknown (not run by scripts/in-kvm)");
	printf("kvm_costs.vm_create_ms: %.2f\n", median(create, ROUNDS));
	printf("kvm_costs.pio_exit_us: %.2f\n", median(pio, ROUNDS));
	printf("kvm_costs.guest_fresh_page_us: %.2f\n", median(gfresh, ROUNDS));
	printf("kvm_costs.guest_wp_fault_us: %.2f\n", median(gwp, ROUNDS));
	printf("kvm_costs.host_wp_fault_us: %.2f\n", median(hwp, ROUNDS));
	printf("kvm_costs.guest_vs_host_wp.ratio: %.2f\n",
	       median(gwp, ROUNDS) / median(hwp, ROUNDS));
	printf("kvm_costs.guest_wp_page_us.default_batch: %.2f\n", median(gwpb, ROUNDS));
	printf("kvm_costs.host_wp_page_us.default_batch: %.2f\n", median(hwpb, ROUNDS));
	printf("kvm_costs.guest_wp_faults_per_page.default_batch: %.3f\n", median(gfpp, ROUNDS));
	return 0;
}
