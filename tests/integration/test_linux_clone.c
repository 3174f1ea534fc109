// SPDX-License-Identifier: MIT
/*
 * Forking a running Linux guest (docs/linux-guest.md): a live clone taken
 * from outside mid-workload, and a fork asked by the guest itself with
 * forkvm-fork (PORT_FORK).  Both sides must run to the end on their own
 * console and compute the right answer.  The kernel and initramfs are the
 * build's ($FORKVM_OUT/linux/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/test_linux_helpers.h"

/* loglevel=1: the console carries /init's lines only, so line numbers are ours. */
#define CMDLINE_BASE "console=ttyS0 reboot=t panic=-1 loglevel=1 "

static char out[VMM_OUT_MAX];

static int run_forkvm(const char *const *args)
{
	return linux_run_forkvm(out, sizeof(out), args);
}
static char kernel[600], initrd[600];

static void linux_or_skip(void)
{
	linux_files_or_skip(kernel, sizeof(kernel), initrd, sizeof(initrd));
}

static unsigned int count_lines(const char *s, const char *prefix)
{
	unsigned int n = 0;
	const char *p = s;

	while ((p = strstr(p, prefix))) {
		n++;
		p += strlen(prefix);
	}
	return n;
}

Test(linux_clone, a_clone_taken_mid_workload_and_its_parent_both_finish_right, .timeout = 500)
{
	const char *args[] = { "run",
			       "--kernel",
			       kernel,
			       "--initrd",
			       initrd,
			       "--cmdline",
			       CMDLINE_BASE "forkvm_run=count forkvm_arg=6",
			       "--clones",
			       "1",
			       "--clone-at-line",
			       "3",
			       "--timeout",
			       "200",
			       NULL };
	int rc;

	linux_or_skip();
	rc = run_forkvm(args);
	cr_assert_eq(rc, 0, "forkvm exited %d:\n%s", rc, out);
	cr_assert(strstr(out, "forkvm: clone 1 made"), "%s", out);
	/* The sum of /init's shell arithmetic over 6 steps (the parent's own run). */
	cr_assert(strstr(out, "[parent] count: done sum=282780\n"), "%s", out);
	cr_assert(strstr(out, "[clone 1] count: done sum=282780\n"), "%s", out);
	cr_assert(strstr(out, "[clone 1] forkvm-init: exit 0"), "%s", out);
	/* The clone started mid-run: it printed only the steps after line 3. */
	cr_assert_eq(count_lines(out, "[parent] count: step "), 6, "%s", out);
	cr_assert_eq(count_lines(out, "[clone 1] count: step 1 of"), 0, "%s", out);
	cr_assert(strstr(out, "[clone 1] count: step 6 of 6"), "%s", out);
}

static char con[2][16384];

static void read_console(char *buf, size_t len, const char *path)
{
	vmm_read_file(path, buf, len);
	linux_drop_cr(buf);
}

Test(linux_clone, forkvm_fork_inside_linux_returns_the_child_id_and_zero, .timeout = 500)
{
	char path[512], path1[600];
	const char *args[] = { "run",
			       "--kernel",
			       kernel,
			       "--initrd",
			       initrd,
			       "--cmdline",
			       CMDLINE_BASE "forkvm_run=fork",
			       "--console",
			       path,
			       "--timeout",
			       "200",
			       NULL };
	int rc;

	linux_or_skip();
	/* Each VM's console in its own file: parent FILE, child FILE.1. */
	vmm_path(path, sizeof(path), "fork-console");
	snprintf(path1, sizeof(path1), "%s.1", path);
	rc = run_forkvm(args);
	cr_assert_eq(rc, 0, "forkvm exited %d:\n%s", rc, out);
	cr_assert(strstr(out, "forkvm: VM 0 forked VM 1"), "%s", out);
	read_console(con[0], sizeof(con[0]), path);
	read_console(con[1], sizeof(con[1]), path1);
	cr_assert(strstr(con[0], "fork: parent of 1\n"), "parent:\n%s", con[0]);
	cr_assert(strstr(con[0], "fork: 1 sum=500500\n"), "parent:\n%s", con[0]);
	cr_assert(strstr(con[0], "forkvm-init: exit 0\n"), "parent:\n%s", con[0]);
	cr_assert(!strstr(con[0], "fork: child"), "parent:\n%s", con[0]);
	/* The child's console starts at the fork: no boot lines of its own. */
	cr_assert(strstr(con[1], "fork: child\n"), "child:\n%s", con[1]);
	cr_assert(strstr(con[1], "fork: 0 sum=500500\n"), "child:\n%s", con[1]);
	cr_assert(strstr(con[1], "forkvm-init: exit 0\n"), "child:\n%s", con[1]);
	cr_assert(!strstr(con[1], "forkvm-init: up"), "child:\n%s", con[1]);
	cr_assert(!strstr(con[1], "parent of"), "child:\n%s", con[1]);
}

/* The "rand: ID bytes HEX" line of a console, copied into @hex. */
static void rand_bytes(const char *con_text, const char *id, char *hex, size_t len)
{
	char want[32];
	const char *p;
	size_t n;

	snprintf(want, sizeof(want), "rand: %s bytes ", id);
	p = strstr(con_text, want);
	cr_assert_not_null(p, "no '%s' line:\n%s", want, con_text);
	p += strlen(want);
	n = strcspn(p, "\n");
	cr_assert_eq(n, 32, "16 bytes in hex:\n%s", con_text);
	cr_assert_lt(n, len);
	memcpy(hex, p, n);
	hex[n] = '\0';
}

/*
 * After a fork the child holds its parent's RNG state: without a reseed both
 * read the same bytes from /dev/urandom (docs/linux-guest.md shows that run,
 * with forkvm-fork --no-reseed and the vmgenid driver kept out).  forkvm-fork
 * reseeds the child before it returns, and the kernel reseeds itself from the
 * clone's new VM generation ID: the child's log says so, the parent's not.
 */
Test(linux_clone, a_forked_child_reads_other_random_bytes_than_its_parent, .timeout = 500)
{
	char path[512], path1[600], hex[2][40];
	const char *args[] = { "run",
			       "--kernel",
			       kernel,
			       "--initrd",
			       initrd,
			       "--cmdline",
			       CMDLINE_BASE "forkvm_run=rand",
			       "--console",
			       path,
			       "--timeout",
			       "200",
			       NULL };
	int rc;

	linux_or_skip();
	vmm_path(path, sizeof(path), "rand-console");
	snprintf(path1, sizeof(path1), "%s.1", path);
	rc = run_forkvm(args);
	cr_assert_eq(rc, 0, "forkvm exited %d:\n%s", rc, out);
	read_console(con[0], sizeof(con[0]), path);
	read_console(con[1], sizeof(con[1]), path1);
	cr_assert(strstr(con[0], "rand: vmgenid bound\n"), "parent:\n%s", con[0]);
	rand_bytes(con[0], "1", hex[0], sizeof(hex[0]));
	rand_bytes(con[1], "0", hex[1], sizeof(hex[1]));
	cr_assert_str_neq(hex[0], hex[1], "parent and child read the same bytes");
	cr_assert(strstr(con[1], "rand: 0 vmgenid reseeded\n"), "child:\n%s", con[1]);
	cr_assert(strstr(con[0], "rand: 1 no vmgenid reseed\n"), "parent:\n%s", con[0]);
	cr_assert(strstr(con[1], "forkvm-init: exit 0\n"), "child:\n%s", con[1]);
}

/* "clock: WHAT UPTIME EPOCH" of a console (WHAT: "before", "1 after", ...). */
static void clock_line(const char *con_text, const char *what, double *uptime, long *epoch)
{
	char want[48];
	const char *p;

	snprintf(want, sizeof(want), "clock: %s ", what);
	p = strstr(con_text, want);
	cr_assert_not_null(p, "no '%s' line:\n%s", want, con_text);
	cr_assert_eq(sscanf(p + strlen(want), "%lf %ld", uptime, epoch), 2, "%s", con_text);
}

/*
 * The child's clock goes on from the fork: its uptime and wall clock never
 * step back, do not jump (the fork pauses the parent ~0.1 s here; 5 s is
 * generous for the nested path), and a 1 s sleep ends after about a second.
 * The kvmclock MSRs travel with the vCPU state (vmm/vcpu.c), the VM clock
 * with KVM_GET/SET_CLOCK (vmm/vm_state.c).
 */
Test(linux_clone, a_forked_childs_clock_goes_on_from_the_fork, .timeout = 500)
{
	char path[512], path1[600];
	const char *args[] = { "run",
			       "--kernel",
			       kernel,
			       "--initrd",
			       initrd,
			       "--cmdline",
			       CMDLINE_BASE "forkvm_run=clock",
			       "--console",
			       path,
			       "--timeout",
			       "200",
			       NULL };
	double up0, up1, up2, pup1, pup2;
	long ep0, ep1, ep2, pep1, pep2;
	int rc;

	linux_or_skip();
	vmm_path(path, sizeof(path), "clock-console");
	snprintf(path1, sizeof(path1), "%s.1", path);
	rc = run_forkvm(args);
	cr_assert_eq(rc, 0, "forkvm exited %d:\n%s", rc, out);
	read_console(con[0], sizeof(con[0]), path);
	read_console(con[1], sizeof(con[1]), path1);
	clock_line(con[0], "before", &up0, &ep0);
	clock_line(con[0], "1 after", &pup1, &pep1);
	clock_line(con[0], "1 later", &pup2, &pep2);
	clock_line(con[1], "0 after", &up1, &ep1);
	clock_line(con[1], "0 later", &up2, &ep2);
	/* The child: forward from the parent's last reading, no jump. */
	cr_assert(up1 >= up0 && up1 - up0 < 5.0, "child after %.2f, before %.2f\n%s", up1, up0,
		  con[1]);
	cr_assert(ep1 >= ep0 && ep1 - ep0 <= 5, "child epoch %ld, before %ld", ep1, ep0);
	cr_assert(up2 - up1 >= 1.0 && up2 - up1 < 5.0, "child slept 1 s: %.2f -> %.2f", up1, up2);
	cr_assert(ep2 >= ep1 && ep2 - ep1 <= 5, "child epoch %ld -> %ld", ep1, ep2);
	/* The parent likewise. */
	cr_assert(pup1 >= up0 && pup1 - up0 < 5.0, "parent after %.2f, before %.2f", pup1, up0);
	cr_assert(pup2 - pup1 >= 1.0 && pup2 - pup1 < 5.0, "parent slept: %.2f -> %.2f", pup1,
		  pup2);
	cr_assert(pep2 >= pep1 && pep1 >= ep0, "parent epoch %ld %ld %ld", ep0, pep1, pep2);
	cr_assert(strstr(con[1], "forkvm-init: exit 0\n"), "child:\n%s", con[1]);
}

/* What /init's serve workload answers for request @r (guest/linux/init). */
static unsigned long long serve_answer(unsigned int r)
{
	unsigned long long s = 0, k;

	for (k = 100ull * r + 1; k <= 100ull * r + 100; k++)
		s += (k * k) % 1000003;
	return s;
}

#define SERVE_REQUESTS 4

/*
 * The serverless pattern inside Linux: warm up once, then one forkvm-fork
 * per request; each child answers its own request on its own console and
 * exits.  Every request is answered once, by a child, right (the same
 * answer the host computes and the parent computes unforked at the end).
 */
Test(linux_clone, a_warm_guest_forks_one_child_per_request_and_each_answers_right, .timeout = 500)
{
	char path[512], pathn[600], want[96];
	const char *args[] = { "run",
			       "--kernel",
			       kernel,
			       "--initrd",
			       initrd,
			       "--cmdline",
			       CMDLINE_BASE "forkvm_run=serve forkvm_arg=4 forkvm_mb=16",
			       "--console",
			       path,
			       "--timeout",
			       "300",
			       NULL };
	unsigned int seen[SERVE_REQUESTS] = { 0 }, i, r;
	unsigned long long a;
	const char *p;
	int rc;

	linux_or_skip();
	vmm_path(path, sizeof(path), "serve-console");
	rc = run_forkvm(args);
	cr_assert_eq(rc, 0, "forkvm exited %d:\n%s", rc, out);
	read_console(con[0], sizeof(con[0]), path);
	cr_assert(strstr(con[0], "serve: warm 100000 rows, 16 MiB\n"), "parent:\n%s", con[0]);
	for (r = 0; r < SERVE_REQUESTS; r++) {
		snprintf(want, sizeof(want), "serve: check %u answer %llu\n", r, serve_answer(r));
		cr_assert(strstr(con[0], want), "parent: no '%s':\n%s", want, con[0]);
	}
	cr_assert(!strstr(con[0], "serve: request"), "the parent answered:\n%s", con[0]);
	for (i = 1; i <= SERVE_REQUESTS; i++) {
		snprintf(pathn, sizeof(pathn), "%s.%u", path, i);
		read_console(con[1], sizeof(con[1]), pathn);
		p = strstr(con[1], "serve: request ");
		cr_assert_not_null(p, "child %u:\n%s", i, con[1]);
		cr_assert_eq(sscanf(p, "serve: request %u answer %llu", &r, &a), 2, "%s", con[1]);
		cr_assert_lt(r, SERVE_REQUESTS, "%s", con[1]);
		cr_assert_eq(a, serve_answer(r), "child %u, request %u:\n%s", i, r, con[1]);
		cr_assert(strstr(con[1], "forkvm-init: exit 0\n"), "child %u:\n%s", i, con[1]);
		seen[r]++;
	}
	for (r = 0; r < SERVE_REQUESTS; r++)
		cr_assert_eq(seen[r], 1, "request %u answered %u times", r, seen[r]);
}
