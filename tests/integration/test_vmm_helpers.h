/* SPDX-License-Identifier: MIT */
/*
 * Shared by the test_vmm_*.c integration tests: find the forkvm binary and the
 * test guest, skip without /dev/kvm, run forkvm and capture what it printed,
 * make scratch files and tiny guest ELFs.
 */
#ifndef FORKVM_TESTS_INTEGRATION_VMM_HELPERS_H
#define FORKVM_TESTS_INTEGRATION_VMM_HELPERS_H

#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mm/mm.h"
#include "vmm/machine.h"

#define VMM_OUT_MAX (256 * 1024)

static inline const char *vmm_bin(void)
{
	const char *b = getenv("FORKVM_BIN");

	return b && *b ? b : "build/forkvm";
}

static inline const char *vmm_guest(void)
{
	const char *g = getenv("FORKVM_GUEST");

	return g && *g ? g : "build/guest/test.elf";
}

/* Integration tests need KVM: skip, loudly, where there is none. */
static inline void vmm_kvm_or_skip(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		cr_skip_test("no usable /dev/kvm (%s): run through scripts/in-kvm",
			     strerror(errno));
	close(fd);
}

/*
 * Run forkvm with @args (NULL-terminated, without argv[0]); stdout and
 * stderr together land in @out.  Return: the exit status, or -1 if it died
 * of a signal.
 */
static inline int vmm_run(char *out, size_t outlen, const char *const *args)
{
	const char *argv[64];
	size_t n = 0, used = 0;
	int pipefd[2], status;
	pid_t pid;

	argv[n++] = vmm_bin();
	while (*args && n < 63)
		argv[n++] = *args++;
	argv[n] = NULL;
	cr_assert_eq(pipe(pipefd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		ssize_t r;
		char sink[4096];

		if (used + 1 < outlen)
			r = read(pipefd[0], out + used, outlen - used - 1);
		else
			r = read(pipefd[0], sink, sizeof(sink));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (used + 1 < outlen)
			used += (size_t)r;
	}
	out[used] = '\0';
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A scratch directory per test program (inside the nested guest: a tmpfs). */
static inline const char *vmm_tmpdir(void)
{
	static char dir[256];
	const char *base;

	if (dir[0])
		return dir;
	base = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/forkvm-test.XXXXXX", base && *base ? base : "/tmp");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	return dir;
}

static inline void vmm_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", vmm_tmpdir(), name);
}

/*
 * A minimal guest: one PT_LOAD of @code at 1 MiB, entry at its start, in
 * @buf (at least 0x1000 + @len bytes).  Return: its size.
 */
static inline size_t vmm_make_elf(uint8_t *buf, const void *code, size_t len)
{
	Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
	Elf64_Phdr *ph = (Elf64_Phdr *)(buf + sizeof(*eh));

	memset(buf, 0, 0x1000 + len);
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = 0x100000;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = 1;
	ph->p_type = PT_LOAD;
	ph->p_flags = PF_R | PF_X;
	ph->p_offset = 0x1000;
	ph->p_vaddr = 0x100000;
	ph->p_paddr = 0x100000;
	ph->p_filesz = len;
	ph->p_memsz = len;
	ph->p_align = 0x1000;
	memcpy(buf + 0x1000, code, len);
	return 0x1000 + len;
}

static inline void vmm_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* The whole of @path, NUL-terminated, in @buf (at most @len - 1 bytes). */
static inline void vmm_read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t used = 0;
	ssize_t r;

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	while (used + 1 < len && (r = read(fd, buf + used, len - used - 1)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		cr_assert_gt(r, 0, "%s: %s", path, strerror(errno));
		used += (size_t)r;
	}
	buf[used] = '\0';
	close(fd);
}

/*
 * memcheck hold=P and atomics hold=1 stop every vCPU mid-run and print
 * "...: holding ...: waiting for a non-zero word at 0xGPA" (docs/test-guest.md).
 * Return: that GPA, from the guest's console file @console.
 */
static inline uint64_t vmm_hold_word(const char *console)
{
	static const char key[] = "waiting for a non-zero word at 0x";
	static char text[64 * 1024];
	unsigned long long gpa = 0;
	const char *p;

	vmm_read_file(console, text, sizeof(text));
	p = strstr(text, key);
	cr_assert_not_null(p, "no hold line in %s:\n%s", console, text);
	cr_assert_eq(sscanf(p + strlen(key), "%llx", &gpa), 1, "%s", p);
	return gpa;
}

/* Let a guest held at its hold word @gpa (vmm_hold_word()) go on. */
static inline void vmm_release(struct machine *m, uint64_t gpa)
{
	const uint64_t go = 1;

	cr_assert_eq(space_write(machine_space(m), gpa, &go, sizeof(go)), 0, "release at 0x%llx",
		     (unsigned long long)gpa);
}

#endif /* FORKVM_TESTS_INTEGRATION_VMM_HELPERS_H */
