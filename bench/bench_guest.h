/* SPDX-License-Identifier: MIT */
/*
 * A test guest held mid-run, its memory filled from the host, for the KVM
 * benches (header-only: each bench .c file is its own program).
 *
 * The guest runs `atomics hold=1`: its vCPU spins at the hold word until
 * the host writes it, so it is running (a clone or snapshot takes a live
 * vCPU) while nothing in it changes.  The fill goes through space_write(),
 * the guest held: never write a running guest's memory through space_hva().
 */
#ifndef FORKVM_BENCH_BENCH_GUEST_H
#define FORKVM_BENCH_BENCH_GUEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/mm.h"
#include "vmm/machine.h"

/* The fill starts above the test guest's image and page tables. */
#define BENCH_GUEST_FILL_FROM (16ULL << 20)

/* The test guest's ELF: $FORKVM_GUEST, else build/guest/test.elf. */
static inline const char *bench_guest_elf(void)
{
	const char *g = getenv("FORKVM_GUEST");

	return g && *g ? g : "build/guest/test.elf";
}

/*
 * Whether /dev/kvm opens; if not, print "@name: skipped: ..." (the benches
 * then exit 0: they run through scripts/in-kvm).
 */
static inline int bench_guest_have_kvm(const char *name)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("%s: skipped: no /dev/kvm (%s); run through scripts/in-kvm\n", name,
		       strerror(errno));
		return 0;
	}
	close(fd);
	return 1;
}

/*
 * bench_guest_make() - a started one-vCPU test guest of @mem bytes held
 * mid-run (atomics hold=1), with one page in @every of its memory from
 * BENCH_GUEST_FILL_FROM up written from the host (each page a byte of its
 * frame number, odd: never a zero page).
 * @console: the guest's console file (the hold line names the hold word,
 *           bench_guest_hold_word()); NULL: /dev/null.
 * Return: 0, or -1 with a message on stderr (and *@m NULL).
 */
static inline int bench_guest_make(struct machine **m, uint64_t mem, unsigned int every,
				   const char *console)
{
	struct machine_config cfg = {
		.mem_size = mem,
		.ncpus = 1,
		.workload = "atomics",
		.args = "iters=1000 hold=1",
		.guest_elf = bench_guest_elf(),
		.console = console ? console : "/dev/null",
		.console_prefix = "", /* a tap: machine_wait_console() counts lines */
		.quiet_results = true,
	};
	static uint8_t page[4096];
	char err[512];
	uint64_t gpa;

	*m = NULL;
	if (every == 0 || mem <= BENCH_GUEST_FILL_FROM) {
		fprintf(stderr, "bench: a guest of %llu bytes filled 1/%u: no\n",
			(unsigned long long)mem, every);
		return -1;
	}
	if (machine_create(&cfg, m, err, sizeof(err))) {
		fprintf(stderr, "bench: %s\n", err);
		return -1;
	}
	if (machine_start(*m) || machine_wait_console(*m, 2, 600000)) {
		fprintf(stderr, "bench: the guest did not reach its hold line\n");
		goto fail;
	}
	for (gpa = BENCH_GUEST_FILL_FROM; gpa < mem; gpa += every * 4096ULL) {
		memset(page, (int)(gpa >> 12) | 1, sizeof(page));
		if (space_write((*m)->space, gpa, page, sizeof(page))) {
			fprintf(stderr, "bench: space_write at 0x%llx failed\n",
				(unsigned long long)gpa);
			goto fail;
		}
	}
	return 0;
fail:
	machine_destroy(*m);
	*m = NULL;
	return -1;
}

/*
 * bench_guest_hold_word() - the GPA of the hold word, from the hold line
 * ("...: waiting for a non-zero word at 0xGPA") in the console file
 * @console of a bench_guest_make() guest.  Return: 0, or -1 with a message.
 */
static inline int bench_guest_hold_word(const char *console, uint64_t *gpa)
{
	static const char key[] = "waiting for a non-zero word at 0x";
	static char text[16 * 1024];
	unsigned long long v;
	const char *p;
	ssize_t n;
	int fd;

	fd = open(console, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		fprintf(stderr, "bench: %s: %s\n", console, strerror(errno));
		return -1;
	}
	text[n] = '\0';
	p = strstr(text, key);
	if (!p || sscanf(p + strlen(key), "%llx", &v) != 1) {
		fprintf(stderr, "bench: no hold line in %s\n", console);
		return -1;
	}
	*gpa = v;
	return 0;
}

#endif /* FORKVM_BENCH_BENCH_GUEST_H */
