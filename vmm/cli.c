// SPDX-License-Identifier: MIT
/* Parsing forkvm's command line; every error names the argument. */
#include "vmm/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/cpus.h"
#include "vmm/layout.h"

static const char usage[] =
    "usage: forkvm run --guest test --workload NAME [options]\n"
    "       forkvm run --kernel BZIMAGE [--initrd FILE] [--cmdline STR] [options]\n"
    "       forkvm mkdisk [--seed S] [--check] FILE [SIZE]\n"
    "       forkvm ctl SOCKET VERB [ARGS] [--json]   (control API client: ctl --help)\n"
    "       forkvm --help\n"
    "\n"
    "run: boot the test guest and run one workload, or a Linux kernel; exits with\n"
    "the guest's code.\n"
    "  --guest test          the freestanding test guest (or --kernel: Linux)\n"
    "  --workload NAME       hello, memcheck, atomics, blkread, blkwrite, badvirtio, ...\n"
    "  --args STRING         workload arguments, passed in /chosen/forkvm,args\n"
    "  --mem SIZE            guest RAM, 16M..3G, with --kernel to 64G (default 128M,\n"
    "                        with --kernel 256M); suffixes K, M, G\n"
    "  --cpus N              vCPUs, 1..64 (default 1)\n"
    "  --disk FILE[,ro][,latency=TIME]\n"
    "                        a virtio-blk disk (repeatable, up to 8); at 0xd0000000\n"
    "                        + 0x1000 each, interrupts GSI 5, 6, ...; ',ro' read-only;\n"
    "                        ',latency=TIME' (20ms, 500us, ...: up to 10s) holds each\n"
    "                        request that long before its data moves, so requests are\n"
    "                        surely in flight at a clone (tests, the demo)\n"
    "  --console FILE        the guest's serial console goes to FILE (default stdout)\n"
    "  --kernel BZIMAGE      boot this Linux kernel instead of the test guest (a\n"
    "                        bzImage, x86-64, boot protocol 2.12+: /boot/vmlinuz-*),\n"
    "                        entered in 64-bit mode at CPL 0, ACPI tables with the\n"
    "                        CPUs and the disks as virtio-mmio (docs/linux-guest.md);\n"
    "                        --mem defaults to 256M\n"
    "  --initrd FILE         Linux: the initramfs\n"
    "  --cmdline STRING      Linux: the kernel command line (default\n"
    "                        'console=ttyS0 reboot=t panic=-1')\n"
    "  --guest-elf PATH      the test guest image (default $FORKVM_GUEST, else\n"
    "                        guest/test.elf next to this binary)\n"
    "  --timeout SECONDS     stop the guest after this long (exit status 3)\n"
    "  --pause-test N        while the guest runs, pause all vCPUs N times, read and\n"
    "                        check their full state, write it back and resume\n"
    "  --clones N            clone the running guest live N times (1..64): each clone\n"
    "                        gets a copy-on-write fork of its memory and the full\n"
    "                        vCPU, irqchip, PIT and clock state; all run to the end.\n"
    "                        Console lines are prefixed [parent] / [clone I] (with\n"
    "                        --console FILE, clone I writes FILE.I).  Prints one line\n"
    "                        per VM (exit code, last result) and a memory summary;\n"
    "                        exits non-zero if any VM failed or a clone could not be\n"
    "                        made.  Disks are cloned too: each clone gets the disk\n"
    "                        as of its clone, its writes private; requests in flight\n"
    "                        are run again in the clone.  A guest may also fork\n"
    "                        itself (port 0x504, docs/vmm.md): same report.\n"
    "  --clone-after MS      clone MS milliseconds after the start\n"
    "  --clone-at-line N     clone when the guest has printed N console lines\n"
    "                        (default: 1, its first line)\n"
    "  --api SOCKET          serve the control API (HTTP + JSON, docs/api.md) on\n"
    "                        this UNIX socket (mode 0600); the run then goes on\n"
    "                        after its VMs stop, until SIGINT or SIGTERM\n"
    "\n"
    "mkdisk: make FILE of SIZE bytes (default 4M) with the test disk pattern of\n"
    "docs/boot-protocol.md, or with --check verify that FILE holds it.\n"
    "  --seed S              pattern seed (default 0x666f726b766d, what blkread reads)\n"
    "  --check               verify instead of write\n"
    "\n"
    "Exit status: the guest's code (0-255); 1 host error (no KVM, bad file, ...);\n"
    "2 bad arguments; 3 the guest crashed (exception, triple fault, timeout).\n"
    "KVM: needs /dev/kvm; where there is none, use scripts/in-kvm (nested QEMU guest).\n";

const char *cli_usage(void)
{
	return usage;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	/* strtoull would skip leading spaces and negate a '-' after them. */
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B"))
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	/* A digit first: no sign, no leading space for strtoull to skip. */
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || *end || *out > max)
		return -EINVAL;
	return 0;
}

static int bad(char *err, size_t errlen, const char *fmt, const char *arg)
{
	snprintf(err, errlen, fmt, arg ? arg : "");
	return -EINVAL;
}

static bool valid_workload(const char *s)
{
	size_t n = strlen(s), i;

	/* The guest keeps the name in a 32-byte buffer. */
	if (!n || n > 31)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* "20ms", "500us", "1s", "100ns": a unit is required.  Return: 0 or -EINVAL. */
int cli_parse_duration(const char *s, uint64_t *ns)
{
	static const struct {
		const char *unit;
		uint64_t ns;
	} units[] = { { "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", 1000000000 } };
	unsigned long long v;
	unsigned int i;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit))
			continue;
		if (__builtin_mul_overflow((uint64_t)v, units[i].ns, ns))
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

/* One ",option" of --disk: ro, latency=TIME. */
static int disk_option(struct machine_disk *d, const char *arg, const char *opt, bool *seen_ro,
		       bool *seen_lat, char *err, size_t errlen)
{
	const char *v;

	if (!strcmp(opt, "ro")) {
		if (*seen_ro)
			return bad(err, errlen, "--disk '%s': ',ro' given twice", arg);
		*seen_ro = true;
		d->readonly = true;
		return 0;
	}
	if (!strncmp(opt, "latency=", 8)) {
		v = opt + 8;
		if (*seen_lat)
			return bad(err, errlen, "--disk '%s': 'latency=' given twice", arg);
		*seen_lat = true;
		if (cli_parse_duration(v, &d->latency_ns) ||
		    d->latency_ns > CLI_MAX_DISK_LATENCY_NS) {
			snprintf(
			    err, errlen,
			    "--disk: latency '%s': expected a time with a unit (ns, us, ms, s) "
			    "up to 10s, e.g. latency=20ms",
			    v);
			return -EINVAL;
		}
		return 0;
	}
	snprintf(err, errlen, "--disk: unknown option '%s' (options: ro, latency=TIME)", opt);
	return -EINVAL;
}

static int parse_disk(struct cli *cli, char *arg, char *err, size_t errlen)
{
	bool seen_ro = false, seen_lat = false;
	struct machine_disk *d;
	char *comma;
	int ret;

	if (cli->cfg.ndisks == LAYOUT_MAX_DISKS)
		return bad(err, errlen, "--disk: at most 8 disks%s", "");
	d = &cli->cfg.disks[cli->cfg.ndisks];
	memset(d, 0, sizeof(*d));
	/* FILE[,ro][,latency=TIME], options in any order after the file. */
	comma = strchr(arg, ',');
	if (comma) {
		char *opt = comma + 1, *next;

		*comma = '\0';
		for (;;) {
			next = strchr(opt, ',');
			if (next)
				*next = '\0';
			ret = disk_option(d, arg, opt, &seen_ro, &seen_lat, err, errlen);
			if (ret)
				return ret;
			if (!next)
				break;
			opt = next + 1;
		}
	}
	if (!*arg)
		return bad(err, errlen, "--disk: empty file name%s", "");
	d->path = arg;
	cli->cfg.ndisks++;
	return 0;
}

/* dirname(argv[0])/guest/test.elf, or the same next to /proc/self/exe. */
static void default_guest_elf(struct cli *cli, const char *argv0)
{
	char dir[PATH_MAX];
	const char *env = getenv("FORKVM_GUEST");
	ssize_t n;

	if (env && *env) {
		cli->cfg.guest_elf = env;
		return;
	}
	if (argv0 && strchr(argv0, '/')) {
		snprintf(dir, sizeof(dir), "%s", argv0);
	} else {
		n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
		if (n < 0)
			n = 0;
		dir[n] = '\0';
	}
	snprintf(cli->guest_elf_buf, sizeof(cli->guest_elf_buf), "%s/guest/test.elf", dirname(dir));
	cli->cfg.guest_elf = cli->guest_elf_buf;
}

enum {
	OPT_GUEST = 256,
	OPT_WORKLOAD,
	OPT_ARGS,
	OPT_MEM,
	OPT_CPUS,
	OPT_DISK,
	OPT_CONSOLE,
	OPT_GUEST_ELF,
	OPT_TIMEOUT,
	OPT_PAUSE_TEST,
	OPT_CLONES,
	OPT_CLONE_AFTER,
	OPT_CLONE_AT_LINE,
	OPT_MM_POLICY,
	OPT_KERNEL,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_API,
	OPT_RESTORE_AFTER_PARENT_LINE,
	OPT_SEED,
	OPT_CHECK,
	OPT_HELP,
};

static const struct option run_opts[] = {
	{ "guest", required_argument, NULL, OPT_GUEST },
	{ "workload", required_argument, NULL, OPT_WORKLOAD },
	{ "args", required_argument, NULL, OPT_ARGS },
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "console", required_argument, NULL, OPT_CONSOLE },
	{ "guest-elf", required_argument, NULL, OPT_GUEST_ELF },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "pause-test", required_argument, NULL, OPT_PAUSE_TEST },
	{ "clones", required_argument, NULL, OPT_CLONES },
	{ "clone-after", required_argument, NULL, OPT_CLONE_AFTER },
	{ "clone-at-line", required_argument, NULL, OPT_CLONE_AT_LINE },
	/* Test-only, not in --help: mm's legacy COW policies (DMA-safety matrix). */
	{ "mm-policy", required_argument, NULL, OPT_MM_POLICY },
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "api", required_argument, NULL, OPT_API },
	/* Hidden, like --mm-policy: the policy matrix's order (family.h). */
	{ "restore-after-parent-line", no_argument, NULL, OPT_RESTORE_AFTER_PARENT_LINE },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static const struct option mkdisk_opts[] = {
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "check", no_argument, NULL, OPT_CHECK },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/*
 * getopt's own complaint, as one line naming the argument.  @first is where
 * the failing getopt_long() call started to look (optind before it).
 */
static int getopt_error(int argc, char **argv, int first, int c, char *err, size_t errlen)
{
	const char *arg;
	int i;

	/*
	 * A letter in optopt: a short option, and forkvm has none, so it is
	 * the first letter of its "-xyz" cluster.  glibc leaves optind on the
	 * cluster or just past it, depending on whether letters remain, so
	 * look from @first: what getopt skipped there were non-options (it
	 * permutes them later), and the first option-like argument is the
	 * cluster.
	 */
	if (c == '?' && optopt != 0 && optopt < OPT_GUEST) {
		for (i = first; i < argc; i++) {
			arg = argv[i];
			if (arg[0] != '-' || !arg[1] || arg[1] == '-')
				continue;
			/* A byte >= 0x80 comes negative (a char): half a UTF-8 letter. */
			if (!arg[2] || optopt < 0 || !isprint(optopt))
				return bad(err, errlen, "'%s': unknown option (see --help)", arg);
			snprintf(err, errlen, "'%s': unknown option -%c (see --help)", arg, optopt);
			return -EINVAL;
		}
	}
	/* A long option: getopt_long stepped past it (and its value). */
	arg = argv[optind - 1];
	if (c == ':')
		return bad(err, errlen, "%s: missing value", arg);
	/* "--check=1": optopt is the option's own value. */
	if (optopt >= OPT_GUEST)
		return bad(err, errlen, "%s: takes no value (see --help)", arg);
	return bad(err, errlen, "%s: unknown option (see --help)", arg);
}

static int parse_run(int argc, char **argv, struct cli *cli, char *err, size_t errlen)
{
	unsigned long long n;
	bool guest = false, mem_given = false;
	int c, first;

	cli->cfg.mem_size = 128ULL << 20;
	cli->cfg.ncpus = 1;
	for (;;) {
		first = optind ?: 1;
		c = getopt_long(argc, argv, ":", run_opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_GUEST:
			if (strcmp(optarg, "test"))
				return bad(
				    err, errlen,
				    "--guest '%s': only 'test' (the test guest) is supported",
				    optarg);
			guest = true;
			break;
		case OPT_WORKLOAD:
			if (!valid_workload(optarg))
				return bad(
				    err, errlen,
				    "--workload '%s': expected 1-31 characters of [a-z0-9_-]",
				    optarg);
			cli->cfg.workload = optarg;
			break;
		case OPT_ARGS:
			if (strlen(optarg) > 4096)
				return bad(err, errlen, "--args: longer than 4096 bytes%s", "");
			cli->cfg.args = optarg;
			break;
		case OPT_MEM:
			if (cli_parse_size(optarg, &cli->cfg.mem_size) ||
			    cli->cfg.mem_size < LAYOUT_MEM_MIN ||
			    cli->cfg.mem_size > LAYOUT_LINUX_MEM_MAX || cli->cfg.mem_size % 4096)
				return bad(err, errlen,
					   "--mem '%s': expected a size from 16M to 3G (64G with "
					   "--kernel), a multiple of 4K",
					   optarg);
			mem_given = true;
			break;
		case OPT_CPUS:
			if (parse_uint(optarg, CPUS_MAX, &n) || n < 1)
				return bad(err, errlen, "--cpus '%s': expected 1 to 64", optarg);
			cli->cfg.ncpus = (unsigned int)n;
			break;
		case OPT_DISK:
			if (parse_disk(cli, optarg, err, errlen))
				return -EINVAL;
			break;
		case OPT_CONSOLE:
			if (!*optarg)
				return bad(err, errlen, "--console: empty file name%s", "");
			cli->cfg.console = optarg;
			break;
		case OPT_GUEST_ELF:
			if (!*optarg)
				return bad(err, errlen, "--guest-elf: empty file name%s", "");
			cli->cfg.guest_elf = optarg;
			break;
		case OPT_TIMEOUT:
			if (parse_uint(optarg, 86400, &n) || n < 1)
				return bad(err, errlen,
					   "--timeout '%s': expected 1 to 86400 seconds", optarg);
			cli->timeout_ms = (unsigned int)n * 1000;
			break;
		case OPT_PAUSE_TEST:
			if (parse_uint(optarg, 100000, &n))
				return bad(err, errlen, "--pause-test '%s': expected 0 to 100000",
					   optarg);
			cli->pause_test = (unsigned int)n;
			break;
		case OPT_CLONES:
			if (parse_uint(optarg, CLI_MAX_CLONES, &n) || n < 1)
				return bad(err, errlen, "--clones '%s': expected 1 to 64", optarg);
			cli->clones = (unsigned int)n;
			break;
		case OPT_CLONE_AFTER:
			if (parse_uint(optarg, 3600000, &n))
				return bad(err, errlen,
					   "--clone-after '%s': expected 0 to 3600000 milliseconds",
					   optarg);
			cli->clone_after_ms = (unsigned int)n;
			cli->clone_after_given = true;
			break;
		case OPT_CLONE_AT_LINE:
			if (parse_uint(optarg, 1000000, &n) || n < 1)
				return bad(err, errlen,
					   "--clone-at-line '%s': expected 1 to 1000000", optarg);
			cli->clone_at_line = (unsigned int)n;
			break;
		case OPT_MM_POLICY:
			if (mm_policy_parse(optarg, &cli->cfg.policy))
				return bad(
				    err, errlen,
				    "--mm-policy '%s': expected pagecount, mapcount or nopin",
				    optarg);
			break;
		case OPT_KERNEL:
		case OPT_INITRD:
			if (!*optarg)
				return bad(err, errlen, "%s: empty file name", argv[optind - 1]);
			if (c == OPT_KERNEL)
				cli->cfg.kernel = optarg;
			else
				cli->cfg.initrd = optarg;
			break;
		case OPT_CMDLINE:
			/* The kernel's own limit (cmdline_size) is checked at boot. */
			if (strlen(optarg) > 4096)
				return bad(err, errlen, "--cmdline: longer than 4096 bytes%s", "");
			cli->cfg.cmdline = optarg;
			break;
		case OPT_RESTORE_AFTER_PARENT_LINE:
			cli->restore_after_parent_line = true;
			break;
		case OPT_API:
			/* sun_path holds 107 bytes and the NUL. */
			if (!*optarg || strlen(optarg) > 107)
				return bad(err, errlen,
					   "--api '%s': expected a socket path of 1 to 107 bytes",
					   optarg);
			cli->api_socket = optarg;
			break;
		case OPT_HELP:
			cli->cmd = CLI_HELP;
			return 0;
		default:
			return getopt_error(argc, argv, first, c, err, errlen);
		}
	}
	if (optind < argc)
		return bad(err, errlen, "'%s': unexpected argument (see --help)", argv[optind]);
	if (cli->cfg.kernel) {
		if (guest)
			return bad(err, errlen,
				   "--guest: not with --kernel (--kernel boots Linux instead)%s",
				   "");
		if (cli->cfg.workload || cli->cfg.args)
			return bad(err, errlen,
				   "--workload/--args: the test guest's; Linux takes its workload "
				   "on --cmdline (docs/linux-guest.md)%s",
				   "");
		if (!mem_given)
			cli->cfg.mem_size = 256ULL << 20;
	} else {
		if (cli->cfg.initrd || cli->cfg.cmdline)
			return bad(err, errlen, "--initrd/--cmdline: need --kernel%s", "");
		if (!guest)
			return bad(
			    err, errlen,
			    "--guest: missing (use --guest test, or --kernel BZIMAGE for Linux)%s",
			    "");
		if (!cli->cfg.workload)
			return bad(err, errlen, "--workload: missing%s", "");
		/* Its RAM is one range below the MMIO hole (docs/boot-protocol.md). */
		if (cli->cfg.mem_size > LAYOUT_MEM_MAX)
			return bad(err, errlen, "--mem: the test guest takes at most 3G%s", "");
	}
	if ((cli->clone_after_given || cli->clone_at_line) && !cli->clones)
		return bad(err, errlen, "--clone-after/--clone-at-line: need --clones N%s", "");
	if (cli->clone_after_given && cli->clone_at_line)
		return bad(err, errlen, "--clone-after: cannot be combined with --clone-at-line%s",
			   "");
	if (cli->clones && cli->pause_test)
		return bad(err, errlen, "--pause-test: cannot be combined with --clones%s", "");
	if (!cli->cfg.kernel && !cli->cfg.guest_elf)
		default_guest_elf(cli, cli->argv0);
	cli->cmd = CLI_RUN;
	return 0;
}

static int parse_mkdisk(int argc, char **argv, struct cli *cli, char *err, size_t errlen)
{
	unsigned long long n;
	int c, first;

	cli->disk_seed = CLI_DEFAULT_DISK_SEED;
	cli->disk_size = CLI_DEFAULT_DISK_SIZE;
	for (;;) {
		first = optind ?: 1;
		c = getopt_long(argc, argv, ":", mkdisk_opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_SEED:
			if (parse_uint(optarg, ULLONG_MAX, &n))
				return bad(err, errlen, "--seed '%s': expected a number", optarg);
			cli->disk_seed = n;
			break;
		case OPT_CHECK:
			cli->disk_check = true;
			break;
		case OPT_HELP:
			cli->cmd = CLI_HELP;
			return 0;
		default:
			return getopt_error(argc, argv, first, c, err, errlen);
		}
	}
	if (optind >= argc)
		return bad(err, errlen,
			   "FILE: missing (forkvm mkdisk [--seed S] [--check] FILE [SIZE])%s", "");
	cli->disk_path = argv[optind++];
	if (optind < argc) {
		const char *s = argv[optind++];

		if (cli_parse_size(s, &cli->disk_size) || !cli->disk_size || cli->disk_size % 512)
			return bad(err, errlen,
				   "SIZE '%s': expected a non-zero multiple of 512 bytes", s);
		cli->disk_size_given = true;
	}
	if (optind < argc)
		return bad(err, errlen, "'%s': unexpected argument", argv[optind]);
	cli->cmd = CLI_MKDISK;
	return 0;
}

int cli_parse(int argc, char **argv, struct cli *cli, char *err, size_t errlen)
{
	memset(cli, 0, sizeof(*cli));
	cli->argv0 = argv[0];
	/*
	 * 0, not 1: glibc then forgets everything from the last parse (its
	 * pointer into a cluster of the previous argv, the permutation
	 * bounds), so cli_parse() can be called again in one process.
	 */
	optind = 0;
	opterr = 0;
	if (argc < 2)
		return bad(err, errlen, "missing command: run or mkdisk (see --help)%s", "");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		cli->cmd = CLI_HELP;
		return 0;
	}
	/* Parse the options after the command word. */
	if (!strcmp(argv[1], "run"))
		return parse_run(argc - 1, argv + 1, cli, err, errlen);
	if (!strcmp(argv[1], "mkdisk"))
		return parse_mkdisk(argc - 1, argv + 1, cli, err, errlen);
	return bad(err, errlen, "'%s': unknown command (run, mkdisk, --help)", argv[1]);
}
