// SPDX-License-Identifier: MIT
/*
 * The test guest's main: vCPU 0 reads the device tree, picks the workload
 * named in /chosen/forkvm,workload and releases the other vCPUs; SMP
 * workloads run on every vCPU, the others only on vCPU 0 while the rest
 * wait.  vCPU 0 writes the exit code to port 0x501 once every other vCPU
 * has finished its part.
 */
#include <string.h>

#include "guest/test/console.h"
#include "guest/test/guest.h"
#include "guest/test/io.h"
#include "guest/test/machine.h"

void guest_main(const void *fdt, uint64_t cpu, uint64_t ncpus) __attribute__((noreturn));

uint8_t guest_stacks[GUEST_MAX_CPUS][GUEST_STACK_SIZE] __attribute__((aligned(4096)));

static const struct workload *const workloads[] = {
	&wl_hello,    &wl_memcheck,  &wl_atomics,   &wl_blkread,
	&wl_blkwrite, &wl_badvirtio, &wl_dmastress,
};

/* Say so once when a wait for other vCPUs takes this long (~10 s at 3 GHz). */
#define GUEST_STUCK_TSC (30ULL * 1000 * 1000 * 1000)

static struct machine machine;
static const struct workload *current;
/* 0 until vCPU 0 has set machine and current; store-release / load-acquire. */
static uint32_t released;
/* Secondary vCPUs that finished their part (lock xadd). */
static volatile uint32_t finished;

void smp_barrier_wait(struct smp_barrier *b, uint32_t n)
{
	uint32_t gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
	bool warned = false;
	uint64_t start;

	/* The last one in resets the count, then opens the next generation. */
	if (xadd32(&b->count, 1) == n - 1) {
		WRITE_ONCE(b->count, 0);
		__atomic_store_n(&b->gen, gen + 1, __ATOMIC_RELEASE);
		return;
	}
	start = rdtsc();
	while (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == gen) {
		if (!warned && rdtsc() - start > GUEST_STUCK_TSC) {
			con_printf("guest: stuck at a barrier: %u of %u vCPUs arrived\n",
				   READ_ONCE(b->count), n);
			warned = true;
		}
		cpu_relax();
	}
}

static const struct workload *find_workload(const char *name)
{
	unsigned int i;

	for (i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (!strcmp(workloads[i]->name, name))
			return workloads[i];
	return NULL;
}

static __attribute__((noreturn)) void fail(int code)
{
	con_printf("guest: exit %d\n", code);
	guest_exit(code);
}

/* Everything vCPU 0 checks before any workload runs. */
static void boot_cpu_setup(const void *fdt, uint32_t ncpus)
{
	char err[128];
	unsigned int i;

	con_init(0x3f8);
	if (machine_from_fdt(fdt, &machine, err, sizeof(err))) {
		con_printf("guest: bad device tree at %p: %s\n", fdt, err);
		fail(GUEST_EXIT_BADFDT);
	}
	if (machine.uart_port != 0x3f8)
		con_init(machine.uart_port);
	con_printf("guest: workload '%s' args '%s', %u vCPUs, %lu MiB RAM, free 0x%lx+0x%lx\n",
		   machine.workload, machine.args, ncpus, (unsigned long)(machine.mem_size >> 20),
		   (unsigned long)machine.free_start, (unsigned long)machine.free_size);
	for (i = 0; i < machine.nvirtio; i++)
		con_printf("guest: virtio-mmio at 0x%lx irq %u\n",
			   (unsigned long)machine.virtio[i].base, machine.virtio[i].irq);
	if (machine.ncpus != ncpus) {
		/* RDX is what was started; the FDT should agree. */
		con_printf("guest: device tree has %u cpus but RDX says %u\n", machine.ncpus,
			   ncpus);
		fail(GUEST_EXIT_BADFDT);
	}
	if (machine.free_start < (uint64_t)(uintptr_t)__image_end ||
	    (machine.mem_size && machine.free_start + machine.free_size > machine.mem_size)) {
		con_printf(
		    "guest: free memory 0x%lx+0x%lx overlaps the image (end %p) or RAM end\n",
		    (unsigned long)machine.free_start, (unsigned long)machine.free_size,
		    __image_end);
		fail(GUEST_EXIT_BADFDT);
	}
	current = find_workload(machine.workload);
	if (!current) {
		con_printf("guest: unknown workload '%s' (known:", machine.workload);
		for (i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
			con_printf(" %s", workloads[i]->name);
		con_printf(")\n");
		fail(GUEST_EXIT_USAGE);
	}
}

void guest_main(const void *fdt, uint64_t cpu, uint64_t ncpus)
{
	struct wl_ctx ctx = { &machine, (uint32_t)cpu, (uint32_t)ncpus };
	bool warned = false;
	uint64_t start;
	int code;

	if (ncpus == 0 || ncpus > GUEST_MAX_CPUS || cpu >= ncpus) {
		if (cpu == 0) {
			con_init(0x3f8);
			con_printf("guest: vCPU %lu of %lu: out of range (max %u)\n",
				   (unsigned long)cpu, (unsigned long)ncpus, GUEST_MAX_CPUS);
			guest_exit(GUEST_EXIT_BADCPU);
		}
		for (;;)
			cpu_relax();
	}
	if (cpu != 0) {
		/* Pairs with vCPU 0's release store once machine and current are set. */
		while (!__atomic_load_n(&released, __ATOMIC_ACQUIRE))
			cpu_relax();
		if (current->smp)
			current->run(&ctx);
		xadd32(&finished, 1);
		for (;;)
			cpu_relax();
	}

	boot_cpu_setup(fdt, ctx.ncpus);
	__atomic_store_n(&released, 1, __ATOMIC_RELEASE);
	code = current->run(&ctx);
	start = rdtsc();
	while (READ_ONCE(finished) != ctx.ncpus - 1) {
		if (!warned && rdtsc() - start > GUEST_STUCK_TSC) {
			con_printf("guest: only %u of %u other vCPUs finished (not running?)\n",
				   READ_ONCE(finished), ctx.ncpus - 1);
			warned = true;
		}
		cpu_relax();
	}
	con_printf("guest: exit %d\n", code);
	guest_exit(code);
}
