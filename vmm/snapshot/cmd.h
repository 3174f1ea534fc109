/* SPDX-License-Identifier: MIT */
/*
 * The snapshot commands: `forkvm run ... --snapshot-dir DIR
 * [--snapshot-at-line N] [--snapshot-delay MS] [--snapshot-kind full|live] [--snapshot-stop]
 * [--snapshot-diff-dir DIR2 --snapshot-diff-at-line M]` and
 * `forkvm restore DIR [--console FILE] [--timeout SECONDS]`.  The run
 * options are taken out of argv before the run command's own parser sees
 * the rest (snapshot_cli_extract()).
 */
#ifndef FORKVM_VMM_SNAPSHOT_CMD_H
#define FORKVM_VMM_SNAPSHOT_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include "vmm/snapshot/manifest.h"

struct cli;

struct snapshot_cli {
	const char *dir; /* NULL: no snapshot */
	unsigned int at_line; /* after this many console lines (default 1) */
	unsigned int delay_ms; /* then this long (tests: requests surely in flight) */
	enum snap_kind kind; /* default live */
	bool stop; /* stop the guest once the snapshot is on disk */
	const char *diff_dir; /* NULL: none; else a diff of @dir, in its directory */
	unsigned int diff_at_line; /* after this many lines (> at_line) */
};

/**
 * snapshot_cli_extract() - remove the --snapshot-* options (and their
 * values, "--opt V" or "--opt=V") from @argv, shifting the rest down and
 * updating *@argc, into @sc.  Return: 0 or -EINVAL with @err naming the
 * argument.
 */
int snapshot_cli_extract(int *argc, char **argv, struct snapshot_cli *sc, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/** snapshot_cli_usage() - the options' --help text. */
const char *snapshot_cli_usage(void);

/**
 * snapshot_cmd_run() - `forkvm run` with a snapshot: run @cli's guest, take
 * the snapshot at the console line, go on (or stop).  Return: the exit
 * status (the guest's, 1 if the snapshot failed).
 */
int snapshot_cmd_run(const struct cli *cli, const struct snapshot_cli *sc);

/**
 * snapshot_restore_main() - `forkvm restore DIR [options]` (@argv[0] is
 * "restore").  Return: the guest's exit status, 1 for a snapshot refused or
 * a host error (one line on stderr), 2 for bad arguments.
 */
int snapshot_restore_main(int argc, char **argv);

#endif /* FORKVM_VMM_SNAPSHOT_CMD_H */
