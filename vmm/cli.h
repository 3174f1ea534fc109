/* SPDX-License-Identifier: MIT */
/* The command line: `forkvm run ...` and `forkvm mkdisk ...`. */
#ifndef FORKVM_VMM_CLI_H
#define FORKVM_VMM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/machine.h"

enum cli_cmd {
	CLI_HELP,
	CLI_RUN,
	CLI_MKDISK,
};

#define CLI_DEFAULT_DISK_SEED 0x666f726b766dULL /* "forkvm": what blkread checks */
#define CLI_DEFAULT_DISK_SIZE (4ULL << 20)
#define CLI_MAX_CLONES 64
#define CLI_MAX_DISK_LATENCY_NS 10000000000ULL /* --disk ...,latency= at most 10 s */

struct cli {
	enum cli_cmd cmd;
	const char *argv0;
	/* run */
	struct machine_config cfg;
	unsigned int timeout_ms; /* --timeout SECONDS; 0: none */
	unsigned int pause_test; /* --pause-test N: pause/check/resume N times */
	unsigned int clones; /* --clones N: live clones of the running guest */
	unsigned int clone_after_ms; /* --clone-after MS */
	bool clone_after_given; /* else: clone at console line clone_at_line */
	unsigned int clone_at_line; /* --clone-at-line N (default 1) */
	const char *api_socket; /* --api SOCKET: serve the control API there */
	/* Hidden, tests and the demo: --restore-after-parent-line (family.h) */
	bool restore_after_parent_line;
	char guest_elf_buf[4096]; /* the default guest path, when not given */
	/* mkdisk */
	const char *disk_path;
	uint64_t disk_size;
	bool disk_size_given;
	uint64_t disk_seed;
	bool disk_check;
};

/**
 * cli_parse() - parse argv into @cli.  On a bad argument, @err names it
 * (one line).  Return: 0 or -EINVAL.
 */
int cli_parse(int argc, char **argv, struct cli *cli, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/** cli_parse_size() - "512M", "1G", "65536", "64K": bytes. Return: 0 or -EINVAL. */
int cli_parse_size(const char *s, uint64_t *out);

/**
 * cli_parse_duration() - "20ms", "500us", "1s", "100ns" (a unit is required):
 * nanoseconds.  Return: 0 or -EINVAL.
 */
int cli_parse_duration(const char *s, uint64_t *ns);

/** cli_usage() - the --help text. */
const char *cli_usage(void);

#endif /* FORKVM_VMM_CLI_H */
