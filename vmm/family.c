// SPDX-License-Identifier: MIT
/* A parent and its live clones: start, clone, wait for all, report. */
#include "vmm/family.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/mm.h"
#include "vmm/cli.h"
#include "vmm/clone.h"
#include "vmm/machine.h"

#define FAMILY_HOST_ERROR 1
/* Without --clone-after: how long to wait for the guest's clone line. */
#define FIRST_LINE_WAIT_MS 60000u

struct member {
	struct machine *m; /* NULL: the clone could not be made */
	int status;
	uint32_t result;
	bool has_result;
	struct space_stats sst;
	char console[4200];
};

struct family {
	const struct cli *cli;
	unsigned int n; /* members, the parent first */
	struct member vm[1 + CLI_MAX_CLONES];
	struct pool_stats after_clone;
	struct timespec deadline;
};

static uint64_t ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t0->tv_sec) * 1000 +
	       (uint64_t)((now.tv_nsec - t0->tv_nsec) / 1000000);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The clone point: --clone-after MS, or console line --clone-at-line N (1). */
static void wait_clone_point(struct family *f)
{
	struct machine *parent = f->vm[0].m;
	struct timespec t0;
	uint64_t limit;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	limit = f->cli->clone_after_given ? f->cli->clone_after_ms : FIRST_LINE_WAIT_MS;
	while (ms_since(&t0) < limit && !machine_stopped(parent)) {
		if (f->cli->clone_after_given)
			sleep_ms(5);
		else if (machine_wait_console(parent, f->cli->clone_at_line ?: 1, 50) == 0)
			return;
	}
}

static void clone_all(struct family *f)
{
	const struct cli *cli = f->cli;
	struct clone_timing t;
	unsigned int i;
	char err[512];
	int ret;

	for (i = 1; i <= cli->clones; i++) {
		struct member *mb = &f->vm[f->n++];
		struct clone_config cc = { .quiet_results = true };
		char prefix[32];

		snprintf(prefix, sizeof(prefix), "[clone %u] ", i);
		cc.console_prefix = prefix;
		if (cli->cfg.console) {
			snprintf(mb->console, sizeof(mb->console), "%s.%u", cli->cfg.console, i);
			cc.console = mb->console;
		}
		ret = machine_clone(f->vm[0].m, &cc, &mb->m, &t, err, sizeof(err));
		if (ret) {
			printf("forkvm: clone %u failed: %s\n", i, err);
			mb->m = NULL;
			mb->status = FAMILY_HOST_ERROR;
			if (ret == -ESRCH)
				break; /* the parent is gone: no further clone can work */
			continue;
		}
		printf("forkvm: clone %u made: parent paused %.2f ms (memory fork %.2f ms), "
		       "child VM built beforehand in %.2f ms\n",
		       i, t.paused_ns / 1e6, t.fork_ns / 1e6, t.prepare_ns / 1e6);
	}
	/* Clones that were never attempted count as failed too. */
	while (f->n < 1 + cli->clones) {
		f->vm[f->n].m = NULL;
		f->vm[f->n++].status = FAMILY_HOST_ERROR;
	}
	fflush(stdout);
	pool_get_stats(f->vm[0].m->pool, &f->after_clone);
}

static unsigned int ms_left(const struct family *f)
{
	struct timespec now;
	long long left;

	clock_gettime(CLOCK_MONOTONIC, &now);
	left = (f->deadline.tv_sec - now.tv_sec) * 1000LL +
	       (f->deadline.tv_nsec - now.tv_nsec) / 1000000LL;
	return left < 1 ? 1 : (unsigned int)left;
}

static void wait_all(struct family *f)
{
	unsigned int i;

	for (i = 0; i < f->n; i++) {
		struct member *mb = &f->vm[i];
		struct cpus *c;

		if (!mb->m)
			continue;
		mb->status = machine_wait(mb->m, f->cli->timeout_ms ? ms_left(f) : 0);
		c = &mb->m->cpus;
		if (c->nresults) {
			mb->result = c->results[c->nresults - 1];
			mb->has_result = true;
		}
		space_get_stats(mb->m->space, &mb->sst);
	}
}

static void vm_name(unsigned int i, char *buf, size_t len)
{
	if (i == 0)
		snprintf(buf, len, "parent");
	else
		snprintf(buf, len, "clone %u", i);
}

static void report_vms(const struct family *f)
{
	char name[24], result[16];
	unsigned int i;

	printf("forkvm: %-9s %4s  %-10s  %8s  %8s  %5s\n", "VM", "exit", "result", "present",
	       "shared", "VMAs");
	for (i = 0; i < f->n; i++) {
		const struct member *mb = &f->vm[i];

		vm_name(i, name, sizeof(name));
		if (!mb->m) {
			printf("forkvm: %-9s %4d  (not cloned)\n", name, mb->status);
			continue;
		}
		snprintf(result, sizeof(result), mb->has_result ? "0x%08x" : "-", mb->result);
		printf("forkvm: %-9s %4d  %-10s  %8llu  %8llu  %5llu\n", name, mb->status, result,
		       (unsigned long long)mb->sst.present, (unsigned long long)mb->sst.shared,
		       (unsigned long long)mb->sst.vmas);
		if (*machine_stop_reason(mb->m))
			printf("forkvm: %-9s stopped: %s\n", name, machine_stop_reason(mb->m));
	}
}

static void print_frames(const char *what, uint64_t frames, uint64_t full)
{
	printf("forkvm:   %-28s %9llu frames %8.1f MiB  %5.1f%%\n", what,
	       (unsigned long long)frames, frames * (double)MM_PAGE_SIZE / (1 << 20),
	       full ? 100.0 * frames / full : 0.0);
}

static void report_memory(const struct family *f)
{
	uint64_t pages = f->cli->cfg.mem_size / MM_PAGE_SIZE;
	unsigned int nvms = 0, i;
	struct pool_stats end;
	char what[64];
	uint64_t full;

	for (i = 0; i < f->n; i++)
		nvms += f->vm[i].m != NULL;
	full = pages * nvms;
	pool_get_stats(f->vm[0].m->pool, &end);
	printf("forkvm: memory of the family (mm pool, 4 KiB frames), %u VMs of %llu MiB:\n", nvms,
	       (unsigned long long)(f->cli->cfg.mem_size >> 20));
	snprintf(what, sizeof(what), "%u full copies (no sharing)", nvms);
	print_frames(what, full, full);
	print_frames("live right after cloning", f->after_clone.live_frames, full);
	print_frames("live at the end", end.live_frames, full);
	printf("forkvm:   COW faults %llu: copies %llu, reuses %llu; fork copies %llu; "
	       "fresh %llu\n",
	       (unsigned long long)end.faults, (unsigned long long)end.copies,
	       (unsigned long long)end.reuses, (unsigned long long)end.fork_copies,
	       (unsigned long long)end.fresh);
}

static int family_status(const struct family *f)
{
	unsigned int i;

	for (i = 0; i < f->n; i++) {
		if (f->vm[i].status)
			return f->vm[i].status;
	}
	return 0;
}

int family_run(const struct cli *cli)
{
	struct machine_config cfg = cli->cfg;
	struct family *f;
	char err[512];
	unsigned int i;
	int ret, status;

	f = calloc(1, sizeof(*f));
	if (!f) {
		fprintf(stderr, "forkvm: out of memory\n");
		return FAMILY_HOST_ERROR;
	}
	f->cli = cli;
	cfg.console_prefix = "[parent] ";
	ret = machine_create(&cfg, &f->vm[0].m, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "forkvm: %s\n", err);
		free(f);
		return FAMILY_HOST_ERROR;
	}
	f->n = 1;
	clock_gettime(CLOCK_MONOTONIC, &f->deadline);
	f->deadline.tv_sec += cli->timeout_ms / 1000;
	ret = machine_start(f->vm[0].m);
	if (ret) {
		fprintf(stderr, "forkvm: cannot start the vCPUs: %s\n", strerror(-ret));
		status = FAMILY_HOST_ERROR;
		goto out;
	}
	wait_clone_point(f);
	clone_all(f);
	wait_all(f);
	report_vms(f);
	report_memory(f);
	status = family_status(f);
out:
	fflush(stdout);
	/* Clones first: they share the parent's frame pool. */
	for (i = f->n; i-- > 0;)
		machine_destroy(f->vm[i].m);
	free(f);
	return status;
}
