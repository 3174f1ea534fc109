// SPDX-License-Identifier: MIT
/*
 * Guests that go wrong end the VMM with a clear message and a non-zero status,
 * never a hang: an exception (reported by the VMM's ring-0 stubs on port
 * 0x502), a triple fault (KVM_EXIT_SHUTDOWN), a guest that never exits
 * (--timeout), and malformed guest ELFs (untrusted input).
 */
#include "tests/integration/test_vmm_helpers.h"

#include "vmm/elf.h"

static char out[VMM_OUT_MAX];
static uint8_t elf[0x2000];

static int run_code(const char *name, const void *code, size_t len, const char *timeout)
{
	char path[300];
	const char *args[] = { "run", "--guest",     "test", "--workload", "crash", "--mem",
			       "16M", "--guest-elf", path,   "--timeout",  timeout, NULL };

	vmm_path(path, sizeof(path), name);
	vmm_write_file(path, elf, vmm_make_elf(elf, code, len));
	return vmm_run(out, sizeof(out), args);
}

Test(vmm_crash, invalid_opcode_is_reported_with_vector_and_rip, .timeout = 120)
{
	static const uint8_t code[] = { 0x90, 0x0f, 0x0b }; /* nop; ud2 */

	vmm_kvm_or_skip();
	cr_assert_eq(run_code("ud2.elf", code, sizeof(code), "60"), 3, "%s", out);
	cr_expect_not_null(strstr(out, "vector 6 #UD"), "%s", out);
	cr_expect_not_null(strstr(out, "RIP 0x100001"), "%s", out);
}

Test(vmm_crash, page_fault_reports_its_error_code, .timeout = 120)
{
	/* movabs 0x8000000000, %rax: PML4 entry 1 is empty -> #PF, user read, not present. */
	static const uint8_t code[] = { 0x48, 0xa1, 0, 0, 0, 0, 0x80, 0, 0, 0 };

	vmm_kvm_or_skip();
	cr_assert_eq(run_code("pf.elf", code, sizeof(code), "60"), 3, "%s", out);
	cr_expect_not_null(strstr(out, "vector 14 #PF, error code 0x4"), "%s", out);
}

Test(vmm_crash, triple_fault_ends_with_a_message_and_registers, .timeout = 120)
{
	/* Wipe the IDT (user-writable, like all RAM), then ud2: #UD -> #NP -> #DF -> shutdown. */
	static const uint8_t code[] = {
		0xbf, 0x00, 0x20, 0x00, 0x00, /* mov $0x2000, %edi */
		0xb9, 0x00, 0x02, 0x00, 0x00, /* mov $512, %ecx */
		0x31, 0xc0, /* xor %eax, %eax */
		0xf3, 0x48, 0xab, /* rep stosq */
		0x0f, 0x0b, /* ud2 */
	};

	vmm_kvm_or_skip();
	cr_assert_eq(run_code("triple.elf", code, sizeof(code), "60"), 3, "%s", out);
	cr_expect_not_null(strstr(out, "triple fault"), "%s", out);
	/* AMD resets the vCPU on a shutdown intercept: the values may be reset ones. */
	cr_expect_not_null(strstr(out, "RIP 0x"), "%s", out);
	cr_expect_not_null(strstr(out, "CR3 0x"), "%s", out);
}

Test(vmm_crash, a_guest_that_never_exits_is_stopped_by_timeout, .timeout = 120)
{
	static const uint8_t code[] = { 0xeb, 0xfe }; /* jmp . */

	vmm_kvm_or_skip();
	cr_assert_eq(run_code("spin.elf", code, sizeof(code), "2"), 3, "%s", out);
	cr_expect_not_null(strstr(out, "timed out"), "%s", out);
}

Test(vmm_crash, exit_port_value_is_the_exit_status, .timeout = 120)
{
	static const uint8_t code[] = {
		0xb8, 0x2a, 0x00, 0x00, 0x00, /* mov $42, %eax */
		0x66, 0xba, 0x01, 0x05, /* mov $0x501, %dx */
		0xef, /* out %eax, %dx */
		0xeb, 0xfe, /* jmp . */
	};

	vmm_kvm_or_skip();
	cr_assert_eq(run_code("exit42.elf", code, sizeof(code), "60"), 42, "%s", out);
}

/* ---- the ELF validator: no KVM needed ---- */

static int check(const uint8_t *data, size_t size, char *err)
{
	struct elf_image img;

	return elf_check(data, size, 64 << 20, &img, err, 256);
}

static Elf64_Phdr *phdr(void)
{
	return (Elf64_Phdr *)(elf + sizeof(Elf64_Ehdr));
}

static size_t good_elf(void)
{
	static const uint8_t code[] = { 0xeb, 0xfe };

	return vmm_make_elf(elf, code, sizeof(code));
}

Test(vmm_elf, a_well_formed_image_passes)
{
	struct elf_image img;
	char err[256];
	size_t n = good_elf();

	cr_assert_eq(elf_check(elf, n, 64 << 20, &img, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(img.entry, 0x100000);
	cr_expect_eq(img.end, 0x101000);
}

Test(vmm_elf, malformed_headers_are_refused_with_a_reason)
{
	char err[256];
	size_t n = good_elf();

	cr_expect_neq(check(elf, 10, err), 0);
	cr_expect_not_null(strstr(err, "shorter"), "%s", err);
	elf[0] = 0;
	cr_expect_neq(check(elf, n, err), 0);
	cr_expect_not_null(strstr(err, "magic"), "%s", err);
	good_elf();
	elf[EI_CLASS] = ELFCLASS32;
	cr_expect_neq(check(elf, n, err), 0);
	cr_expect_not_null(strstr(err, "ELF64"), "%s", err);
	good_elf();
	((Elf64_Ehdr *)elf)->e_machine = EM_AARCH64;
	cr_expect_neq(check(elf, n, err), 0);
	cr_expect_not_null(strstr(err, "x86-64"), "%s", err);
	good_elf();
	((Elf64_Ehdr *)elf)->e_type = ET_DYN;
	cr_expect_neq(check(elf, n, err), 0);
	good_elf();
	((Elf64_Ehdr *)elf)->e_phoff = UINT64_MAX - 8;
	cr_expect_neq(check(elf, n, err), 0);
	cr_expect_not_null(strstr(err, "program headers"), "%s", err);
	good_elf();
	((Elf64_Ehdr *)elf)->e_phnum = 0;
	cr_expect_neq(check(elf, n, err), 0);
}

Test(vmm_elf, bad_segments_are_refused_with_a_reason)
{
	char err[256];
	size_t n;

	n = good_elf();
	phdr()->p_paddr = phdr()->p_vaddr = 0x1000; /* over the VMM's tables */
	((Elf64_Ehdr *)elf)->e_entry = 0x1000;
	cr_expect_neq(check(elf, n, err), 0);
	cr_expect_not_null(strstr(err, "below 1 MiB"), "%s", err);

	n = good_elf();
	phdr()->p_memsz = 64 << 20; /* past the end of RAM */
	cr_expect_neq(check(elf, n, err), 0);
	cr_expect_not_null(strstr(err, "beyond guest RAM"), "%s", err);

	n = good_elf();
	phdr()->p_memsz = UINT64_MAX; /* paddr + memsz overflows */
	phdr()->p_filesz = 1;
	cr_expect_neq(check(elf, n, err), 0);

	n = good_elf();
	phdr()->p_filesz = 0x10000; /* past the end of the file */
	phdr()->p_memsz = 0x10000;
	cr_expect_neq(check(elf, n, err), 0);
	cr_expect_not_null(strstr(err, "outside the file"), "%s", err);

	n = good_elf();
	phdr()->p_offset = UINT64_MAX; /* offset + filesz overflows */
	cr_expect_neq(check(elf, n, err), 0);

	n = good_elf();
	phdr()->p_filesz = 3; /* filesz > memsz */
	cr_expect_neq(check(elf, n, err), 0);

	n = good_elf();
	((Elf64_Ehdr *)elf)->e_entry = 0x200000; /* entry outside the image */
	cr_expect_neq(check(elf, n, err), 0);
	cr_expect_not_null(strstr(err, "entry point"), "%s", err);

	n = good_elf();
	phdr()->p_flags = PF_R; /* entry in a non-executable segment */
	cr_expect_neq(check(elf, n, err), 0);
}

Test(vmm_elf, overlapping_segments_are_refused)
{
	Elf64_Ehdr *eh = (Elf64_Ehdr *)elf;
	char err[256];
	size_t n = good_elf();

	/* A second PT_LOAD over the first (the phdr table has room before 0x1000). */
	memcpy(phdr() + 1, phdr(), sizeof(Elf64_Phdr));
	(phdr() + 1)->p_flags = PF_R | PF_W;
	eh->e_phnum = 2;
	cr_expect_neq(check(elf, n, err), 0);
	cr_expect_not_null(strstr(err, "overlap"), "%s", err);
	(phdr() + 1)->p_paddr = (phdr() + 1)->p_vaddr = 0x200000;
	cr_expect_eq(check(elf, n, err), 0, "%s", err);
}
