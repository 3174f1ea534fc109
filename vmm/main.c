// SPDX-License-Identifier: MIT
/*
 * forkvm's entry point: parse the command line, run the command, and turn its
 * result into the process exit status (the only place that exits).
 */
#include <stdio.h>
#include <string.h>

#include "vmm/api/ctl.h"
#include "vmm/cli.h"
#include "vmm/family.h"
#include "vmm/mkdisk.h"
#include "vmm/seccomp.h"
#include "vmm/snapshot/cmd.h"

#define EXIT_HOST_ERROR 1
#define EXIT_USAGE 2

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
	struct snapshot_cli snap = { 0 };
	enum vmm_seccomp_mode seccomp = VMM_SECCOMP_DEFAULT;
	char err[512];

	/* `forkvm ctl`: a client of a running forkvm, with its own arguments. */
	if (argc > 1 && !strcmp(argv[1], "ctl"))
		return ctl_main(argc - 1, argv + 1);
	/* run and restore take the seccomp options, whatever comes after them. */
	if (argc > 1 && (!strcmp(argv[1], "run") || !strcmp(argv[1], "restore")) &&
	    vmm_seccomp_cli_extract(&argc, argv, &seccomp, err, sizeof(err))) {
		fprintf(stderr, "forkvm: %s\n", err);
		return EXIT_USAGE;
	}
	/* `forkvm restore DIR`: a snapshot's guest, in this new process. */
	if (argc > 1 && !strcmp(argv[1], "restore")) {
		if (vmm_seccomp_start(seccomp, err, sizeof(err))) {
			fprintf(stderr, "forkvm: %s\n", err);
			return EXIT_HOST_ERROR;
		}
		return snapshot_restore_main(argc - 1, argv + 1);
	}
	/* The snapshot options of `run` are the snapshot module's. */
	if (argc > 1 && !strcmp(argv[1], "run") &&
	    snapshot_cli_extract(&argc, argv, &snap, err, sizeof(err))) {
		fprintf(stderr, "forkvm: %s\n", err);
		return EXIT_USAGE;
	}
	if (cli_parse(argc, argv, &cli, err, sizeof(err))) {
		fprintf(stderr, "forkvm: %s\n", err);
		return EXIT_USAGE;
	}
	switch (cli.cmd) {
	case CLI_HELP:
		fputs(cli_usage(), stdout);
		fputs("\n", stdout);
		fputs(snapshot_cli_usage(), stdout);
		fputs("\n", stdout);
		fputs(vmm_seccomp_cli_usage(), stdout);
		return 0;
	case CLI_RUN:
		if (vmm_seccomp_start(seccomp, err, sizeof(err))) {
			fprintf(stderr, "forkvm: %s\n", err);
			return EXIT_HOST_ERROR;
		}
		if (snap.dir)
			return snapshot_cmd_run(&cli, &snap);
		return family_run(&cli);
	case CLI_MKDISK:
		return cmd_mkdisk(&cli);
	}
	return EXIT_USAGE;
}
