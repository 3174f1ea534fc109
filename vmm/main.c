// SPDX-License-Identifier: MIT
/*
 * forkvm's entry point: parse the command line, run the command, and turn its
 * result into the process exit status (the only place that exits).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vmm/cli.h"
#include "vmm/cpus.h"
#include "vmm/family.h"
#include "vmm/machine.h"
#include "vmm/mkdisk.h"

#define EXIT_HOST_ERROR 1
#define EXIT_USAGE 2

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* --pause-test N: pause, check the state of every vCPU and resume, N times. */
static int pause_test(struct machine *m, unsigned int n)
{
	char err[256];
	unsigned int i, done = 0;
	int ret = 0;

	for (i = 0; i < n; i++) {
		sleep_ms(2);
		ret = machine_pause_check(m, err, sizeof(err));
		if (ret == -ESRCH) {
			ret = 0;
			break; /* the guest finished first */
		}
		if (ret) {
			fprintf(stderr, "forkvm: --pause-test: %s\n", err);
			cpus_stop(&m->cpus, EXIT_HOST_ERROR, "pause test failed");
			return ret;
		}
		done++;
	}
	fprintf(stderr, "forkvm: pause-test: %u pauses, state read and restored\n", done);
	return ret;
}

static int cmd_run(struct cli *cli)
{
	struct machine *m;
	char err[512];
	const char *reason;
	int ret, status;

	ret = machine_create(&cli->cfg, &m, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "forkvm: %s\n", err);
		return EXIT_HOST_ERROR;
	}
	ret = machine_start(m);
	if (ret) {
		fprintf(stderr, "forkvm: cannot start the vCPUs: %s\n", strerror(-ret));
		machine_destroy(m);
		return EXIT_HOST_ERROR;
	}
	if (cli->pause_test)
		pause_test(m, cli->pause_test);
	status = machine_wait(m, cli->timeout_ms);
	reason = machine_stop_reason(m);
	if (*reason)
		fprintf(stderr, "forkvm: %s\n", reason);
	machine_destroy(m);
	return status;
}

static int cmd_mkdisk(struct cli *cli)
{
	char err[512];
	int ret;

	if (cli->disk_check)
		ret = mkdisk_check(cli->disk_path, cli->disk_size_given ? cli->disk_size : 0,
				   cli->disk_seed, err, sizeof(err));
	else
		ret =
		    mkdisk_write(cli->disk_path, cli->disk_size, cli->disk_seed, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "forkvm mkdisk: %s\n", err);
		return EXIT_HOST_ERROR;
	}
	if (cli->disk_check)
		printf("%s: pattern ok (seed 0x%llx)\n", cli->disk_path,
		       (unsigned long long)cli->disk_seed);
	return 0;
}

int main(int argc, char **argv)
{
	static struct cli cli;
	char err[512];

	if (cli_parse(argc, argv, &cli, err, sizeof(err))) {
		fprintf(stderr, "forkvm: %s\n", err);
		return EXIT_USAGE;
	}
	switch (cli.cmd) {
	case CLI_HELP:
		fputs(cli_usage(), stdout);
		return 0;
	case CLI_RUN:
		return cli.clones ? family_run(&cli) : cmd_run(&cli);
	case CLI_MKDISK:
		return cmd_mkdisk(&cli);
	}
	return EXIT_USAGE;
}
