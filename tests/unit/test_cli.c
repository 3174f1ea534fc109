// SPDX-License-Identifier: MIT
/*
 * vmm/cli.c in this process: a bad option letter inside a cluster of short
 * options is named with its argument, and cli_parse() can be called any
 * number of times in one process with different argv (glibc's getopt keeps
 * state between calls).  No KVM needed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/cli.h"

#define MAX_ARGS 16

/* One command line and what cli_parse() must make of it. */
struct cli_case {
	const char *argv[MAX_ARGS];
	int ret;
	const char *err; /* a bad one: in the message */
	enum cli_cmd cmd; /* a good one: the command, and for run the values */
	unsigned int ncpus;
	uint64_t mem_size;
	const char *workload;
	const char *disk_path;
	uint64_t disk_seed;
};

#define BAD(msg, ...)                                                         \
	{                                                                     \
		.argv = { "forkvm", __VA_ARGS__ }, .ret = -EINVAL, .err = msg \
	}
#define RUN(cpus, mem, wl, ...)                                                          \
	{                                                                                \
		.argv = { "forkvm", "run", __VA_ARGS__ }, .cmd = CLI_RUN, .ncpus = cpus, \
		.mem_size = mem, .workload = wl                                          \
	}
#define MKDISK(path, seed, ...)                                                                    \
	{                                                                                          \
		.argv = { "forkvm", "mkdisk", __VA_ARGS__ }, .cmd = CLI_MKDISK, .disk_path = path, \
		.disk_seed = seed                                                                  \
	}

static const struct cli_case cases[] = {
	/* 0 */ BAD("'-xy': unknown option -x", "run", "-xy"),
	/* 1 */ BAD("'-xy': unknown option -x", "run", "--guest", "test", "-xy"),
	/* 2 */
	RUN(3, 128ULL << 20, "memcheck", "--guest", "test", "--workload", "memcheck", "--cpus",
	    "3"),
	/* 3 */ BAD("'-q': unknown option", "run", "--guest", "test", "-q"),
	/* 4: non-options that getopt skips before the cluster */
	BAD("'-abc': unknown option -a", "run", "stray", "other", "-abc", "--guest", "test"),
	/* 5 */ BAD("'-zk': unknown option -z", "mkdisk", "--seed", "7", "-zk", "f.img"),
	/* 6 */
	RUN(1, 64ULL << 20, "hello", "--workload", "hello", "--mem", "64M", "--guest", "test"),
	/* 7 */ BAD("--check: unknown option", "run", "--guest", "test", "--check"),
	/* 8 */ BAD("--check=1: takes no value", "mkdisk", "--check=1", "f.img"),
	/* 9 */
	BAD("--mem: missing value", "run", "--guest", "test", "--workload", "hello", "--mem"),
	/* 10: an option after the file name (getopt permutes) */
	MKDISK("a.img", 0x10, "a.img", "--seed", "0x10"),
	/* 11 */
	BAD("'-y': unknown option", "run", "--guest", "test", "--workload", "hello", "x", "-y"),
	/* 12 */ MKDISK("b.img", 3, "--seed", "3", "b.img"),
	/* 13: a UTF-8 letter: no half of it in the message */
	BAD("'-\xc3\xa9x': unknown option (see --help)", "run", "--guest", "test", "-\xc3\xa9x"),
	/* 14: above the MMIO hole only Linux has RAM */
	BAD("--mem: the test guest takes at most 3G", "run", "--guest", "test", "--workload",
	    "hello", "--mem", "4G"),
	/* 15 */
	BAD("from 16M to 3G (64G with --kernel)", "run", "--kernel", "k", "--mem", "65G"),
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/*
 * Parse a fresh copy of @c's argv (so no call can lean on a previous argv
 * still being there) and check the outcome; the copy is freed before return.
 */
static void check_case(const struct cli_case *c, unsigned int round)
{
	char *argv[MAX_ARGS + 1] = { NULL };
	char err[256] = "";
	struct cli *cli = malloc(sizeof(*cli));
	int argc, ret;

	cr_assert_not_null(cli);
	for (argc = 0; c->argv[argc]; argc++)
		argv[argc] = strdup(c->argv[argc]);
	ret = cli_parse(argc, argv, cli, err, sizeof(err));
	cr_expect_eq(ret, c->ret, "round %u, %s %s ...: returned %d (%s)", round, c->argv[1],
		     c->argv[2], ret, err);
	if (c->err) {
		cr_expect_not_null(strstr(err, c->err), "round %u: '%s' not in '%s'", round, c->err,
				   err);
	} else if (!ret) {
		cr_expect_eq(cli->cmd, c->cmd, "round %u", round);
		if (c->cmd == CLI_RUN) {
			cr_expect_eq(cli->cfg.ncpus, c->ncpus, "round %u", round);
			cr_expect_eq(cli->cfg.mem_size, c->mem_size, "round %u", round);
			cr_expect_str_eq(cli->cfg.workload, c->workload, "round %u", round);
		} else {
			cr_expect_str_eq(cli->disk_path, c->disk_path, "round %u", round);
			cr_expect_eq(cli->disk_seed, c->disk_seed, "round %u", round);
		}
	}
	/* Scribble over the strings: a parser still pointing into them sees junk. */
	for (argc = 0; argv[argc]; argc++) {
		memset(argv[argc], 'y', strlen(argv[argc]));
		free(argv[argc]);
	}
	free(cli);
}

Test(cli, an_unknown_letter_in_a_cluster_names_the_letter_and_its_argument)
{
	check_case(&cases[0], 0);
	check_case(&cases[1], 0);
	check_case(&cases[4], 0);
	check_case(&cases[5], 0);
	check_case(&cases[13], 0);
}

Test(cli, a_lone_unknown_short_option_is_named)
{
	check_case(&cases[3], 0);
	check_case(&cases[11], 0);
}

Test(cli, a_good_parse_right_after_a_cluster_error_is_not_affected)
{
	/* glibc kept a pointer to the "y" of "-xy" and went on with it. */
	check_case(&cases[0], 0);
	check_case(&cases[2], 0);
}

Test(cli, parses_many_times_in_one_process_in_any_order)
{
	unsigned int round, i;

	/* Forwards, backwards, then a fixed pseudo-random order. */
	for (i = 0; i < NCASES; i++)
		check_case(&cases[i], 0);
	for (i = NCASES; i-- > 0;)
		check_case(&cases[i], 1);
	for (round = 2; round < 200; round++)
		check_case(&cases[(round * 7 + round / NCASES) % NCASES], round);
}
