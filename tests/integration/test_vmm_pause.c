// SPDX-License-Identifier: MIT
/*
 * Pause and resume through the vmm API, in this process: every vCPU stops at
 * an instruction boundary, its full state is readable (and survives a
 * save -> restore -> save round trip), and the guest carries on unharmed:
 * memcheck's checksum and atomics' exact total come out as without pauses.
 */
#include "tests/integration/test_vmm_helpers.h"

#include <time.h>

#include "vmm/machine.h"
#include "vmm/vcpu_state.h"

#define MSR_TSC 0x10u
#define MSR_EFER 0xc0000080u

static struct machine *start(const char *workload, unsigned int ncpus)
{
	struct machine_config cfg;
	struct machine *m;
	char err[512], console[300];

	vmm_kvm_or_skip();
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = 64ULL << 20;
	cfg.ncpus = ncpus;
	cfg.workload = workload;
	cfg.guest_elf = vmm_guest();
	vmm_path(console, sizeof(console), "console.txt");
	cfg.console = console;
	cfg.quiet_results = true;
	cr_assert_eq(machine_create(&cfg, &m, err, sizeof(err)), 0, "machine_create: %s", err);
	cr_assert_eq(machine_start(m), 0);
	return m;
}

static uint32_t finish(struct machine *m)
{
	int status = machine_wait(m, 60000);
	uint32_t result;

	cr_assert_eq(status, 0, "guest status %d: %s", status, machine_stop_reason(m));
	cr_assert_geq(m->cpus.nresults, 1, "no result reported");
	result = m->cpus.results[m->cpus.nresults - 1];
	machine_destroy(m);
	return result;
}

static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/*
 * Pause and check every vCPU until the guest ends or MAX_PAUSES (each pause is
 * slow under nested TCG).  Return: pauses that happened.
 */
#define MAX_PAUSES 40

static unsigned int pause_until_done(struct machine *m, struct vcpu_state *st)
{
	unsigned int pauses = 0, i;

	while (pauses < MAX_PAUSES) {
		sleep_us(2000);
		if (cpus_pause(&m->cpus))
			break; /* the guest has exited */
		for (i = 0; i < m->cpus.n; i++) {
			cr_assert_eq(vcpu_save_state(&m->cpus.vcpu[i], st), 0);
			cr_assert_eq(st->index, i);
			/* The test guest runs at CPL 3, or in a ring-0 stub it never takes. */
			cr_assert_eq(st->sregs.cs.selector, 0x1b, "CS 0x%x", st->sregs.cs.selector);
			cr_assert_eq(st->sregs.cr3, 0x8000);
			cr_assert(st->sregs.efer & (1u << 10), "not in long mode");
			cr_assert_eq(st->regs.rflags & 0x3000, 0x3000, "IOPL changed");
			cr_assert_eq(vcpu_restore_state(&m->cpus.vcpu[i], st), 0);
		}
		pauses++;
		cpus_resume(&m->cpus);
	}
	return pauses;
}

Test(vmm_pause, memcheck_checksum_survives_pauses, .timeout = 240)
{
	struct vcpu_state *st = aligned_alloc(64, sizeof(*st));
	uint32_t want, got;
	unsigned int pauses;
	struct machine *m;

	cr_assert_not_null(st);
	want = finish(start("memcheck", 1));
	m = start("memcheck", 1);
	pauses = pause_until_done(m, st);
	got = finish(m);
	cr_expect_eq(got, want, "checksum 0x%08x after %u pauses, 0x%08x without", got, pauses,
		     want);
	cr_expect_geq(pauses, 1, "the guest ended before the first pause");
	cr_log_info("memcheck: %u pauses, checksum 0x%08x", pauses, got);
	free(st);
}

Test(vmm_pause, atomics_on_two_vcpus_stays_exact_across_pauses, .timeout = 240)
{
	struct vcpu_state *st = aligned_alloc(64, sizeof(*st));
	unsigned int pauses;
	struct machine *m;

	cr_assert_not_null(st);
	m = start("atomics", 2);
	pauses = pause_until_done(m, st);
	cr_expect_eq(finish(m), 200000u, "atomics total wrong after %u pauses", pauses);
	free(st);
}

Test(vmm_pause, state_round_trip_is_identical_and_complete, .timeout = 240)
{
	struct vcpu_state *a = aligned_alloc(64, sizeof(*a)), *b = aligned_alloc(64, sizeof(*b));
	uint64_t efer = 0;
	unsigned int i;
	struct machine *m;

	cr_assert(a && b);
	m = start("memcheck", 2);
	sleep_us(2000);
	if (cpus_pause(&m->cpus))
		cr_skip_test("the guest finished before it could be paused");
	for (i = 0; i < m->cpus.n; i++) {
		struct vcpu *v = &m->cpus.vcpu[i];

		cr_assert_eq(vcpu_save_state(v, a), 0);
		cr_assert_eq(vcpu_restore_state(v, a), 0);
		cr_assert_eq(vcpu_save_state(v, b), 0);
		cr_expect_eq(memcmp(&a->regs, &b->regs, sizeof(a->regs)), 0, "regs differ");
		cr_expect_eq(memcmp(&a->sregs, &b->sregs, sizeof(a->sregs)), 0, "sregs differ");
		cr_expect_eq(memcmp(&a->xcrs, &b->xcrs, sizeof(a->xcrs)), 0, "XCRs differ");
		cr_expect_eq(a->xsave_size, b->xsave_size);
		cr_expect_eq(memcmp(a->xsave, b->xsave, a->xsave_size), 0, "XSAVE differs");
		cr_expect_eq(memcmp(&a->mp_state, &b->mp_state, sizeof(a->mp_state)), 0);
		cr_expect_eq(a->nmsrs, b->nmsrs);
		/* What the issue asks to carry, at least. */
		cr_expect(vcpu_state_msr(a, MSR_EFER, &efer), "EFER not saved");
		cr_expect(efer & (1u << 10), "EFER.LMA clear in the saved MSR");
		cr_expect(vcpu_state_msr(a, MSR_TSC, &efer), "TSC not saved");
		cr_expect_geq(a->nmsrs, 10, "only %u MSRs saved", a->nmsrs);
		/* APIC id in the LAPIC's ID register (bits 31:24 at offset 0x20). */
		cr_expect_eq((uint8_t)a->lapic.regs[0x23], i, "LAPIC id");
	}
	cpus_resume(&m->cpus);
	finish(m);
	free(a);
	free(b);
}

Test(vmm_pause, restore_refuses_another_vcpus_or_a_malformed_state, .timeout = 240)
{
	struct vcpu_state *st = aligned_alloc(64, sizeof(*st));
	struct machine *m;

	cr_assert_not_null(st);
	m = start("memcheck", 2);
	sleep_us(2000);
	if (cpus_pause(&m->cpus))
		cr_skip_test("the guest finished before it could be paused");
	cr_assert_eq(vcpu_save_state(&m->cpus.vcpu[0], st), 0);
	/* vCPU 0's LAPIC id would land in vCPU 1, whose CPUID says 1. */
	cr_expect_eq(vcpu_restore_state(&m->cpus.vcpu[1], st), -EINVAL);
	st->nmsrs = VCPU_STATE_MAX_MSRS + 1;
	cr_expect_eq(vcpu_restore_state(&m->cpus.vcpu[0], st), -EINVAL, "MSR count");
	cr_assert_eq(vcpu_save_state(&m->cpus.vcpu[0], st), 0);
	st->xsave_size = VCPU_STATE_XSAVE_MAX + 64;
	cr_expect_eq(vcpu_restore_state(&m->cpus.vcpu[0], st), -EINVAL, "XSAVE size");
	cr_assert_eq(vcpu_save_state(&m->cpus.vcpu[0], st), 0);
	st->version++;
	cr_expect_eq(vcpu_restore_state(&m->cpus.vcpu[0], st), -EINVAL, "version");
	cpus_resume(&m->cpus);
	finish(m);
	free(st);
}

Test(vmm_pause, cli_pause_test_gives_the_same_checksum, .timeout = 240)
{
	static char out[VMM_OUT_MAX];
	const char *plain[] = { "run",	 "--guest", "test",	 "--workload", "memcheck",
				"--mem", "64M",	    "--timeout", "60",	       NULL };
	const char *paused[] = { "run",	  "--guest",	  "test",   "--workload", "memcheck",
				 "--mem", "64M",	  "--cpus", "2",	  "--timeout",
				 "60",	  "--pause-test", "30",	    NULL };
	char want[64] = "", *r;

	vmm_kvm_or_skip();
	cr_assert_eq(vmm_run(out, sizeof(out), plain), 0, "%s", out);
	r = strstr(out, "result: 0x");
	cr_assert_not_null(r, "%s", out);
	snprintf(want, sizeof(want), "%.18s", r);
	cr_assert_eq(vmm_run(out, sizeof(out), paused), 0, "%s", out);
	cr_expect_not_null(strstr(out, want), "expected '%s':\n%s", want, out);
	cr_expect_not_null(strstr(out, "pause-test:"), "%s", out);
}
