// SPDX-License-Identifier: MIT
/* `forkvm run --snapshot-dir ...` and `forkvm restore DIR`. */
#include "vmm/snapshot/cmd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/api/api_restore.h"
#include "vmm/cli.h"
#include "vmm/cpus.h"
#include "vmm/family.h"
#include "vmm/machine.h"
#include "vmm/snapshot/lazy.h"
#include "vmm/snapshot/snapshot.h"

#define EXIT_HOST 1
#define EXIT_USAGE 2
#define FIRST_LINE_WAIT_MS 50

static const char usage[] =
    "snapshots (docs/snapshot.md):\n"
    "  forkvm run ... --snapshot-dir DIR [--snapshot-at-line N] [--snapshot-delay MS]\n"
    "             [--snapshot-kind full|live] [--snapshot-stop]\n"
    "             [--snapshot-diff-dir DIR2 --snapshot-diff-at-line M]\n"
    "      when the guest has printed N console lines (default 1) and MS ms more\n"
    "      have passed (default 0), save it to DIR\n"
    "      (which must not exist): live (default) pauses the guest only to take a\n"
    "      copy-on-write reference to its memory and writes while it runs; full\n"
    "      writes with the guest paused.  The guest then runs on, or stops with\n"
    "      --snapshot-stop (exit status 0).  A line on stderr gives the pause,\n"
    "      the write time and the size.  Not with --clones or --pause-test.  The\n"
    "      disks' contents at that instant are part of the snapshot (disk<i>).\n"
    "      --snapshot-diff-dir: at console line M (> N), save only the pages written\n"
    "      since DIR to DIR2 (next to DIR); `forkvm restore DIR2` loads DIR first.\n"
    "  forkvm restore DIR [--console FILE] [--timeout SECONDS] [--clones N]\n"
    "      run the guest saved in DIR from the instruction where it was saved;\n"
    "      exits with the guest's code.  --clones N: restore once, clone it N\n"
    "      times (1 to 64) at once, sharing its memory, and report every VM and\n"
    "      the family's frames as `forkvm run --clones` does.  Its disks are\n"
    "      the snapshot's files, never written (writes go to an overlay).\n"
    "      A snapshot that is damaged, of another\n"
    "      format or for a CPU with features this one lacks is refused with one\n"
    "      line and exit status 1.  --api SOCKET: serve the control API over the\n"
    "      restored VM as run --api does (docs/api.md); not with --clones.\n"
    "  forkvm restore DIR --lazy [--record-ws MS | --prefetch]\n"
    "      start the guest before its memory is read: each page comes from DIR's\n"
    "      memory file when first touched (the default is eager: all read first).\n"
    "      --record-ws MS saves the pages touched in the first MS ms as DIR's\n"
    "      working set; --prefetch loads it, in one pass, before the guest starts.\n";

const char *snapshot_cli_usage(void)
{
	return usage;
}

static int bad(char *err, size_t errlen, const char *fmt, const char *arg)
{
	snprintf(err, errlen, fmt, arg);
	return -EINVAL;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || *end || *out > max)
		return -EINVAL;
	return 0;
}

/* --name V or --name=V at @argv[*i]: its value, and how many words it took. */
static const char *option_value(char **argv, int argc, int i, const char *name, int *words)
{
	size_t n = strlen(name);

	if (strncmp(argv[i], name, n))
		return NULL;
	if (argv[i][n] == '=') {
		*words = 1;
		return argv[i] + n + 1;
	}
	if (argv[i][n])
		return NULL;
	*words = 2;
	/* The last word: its value is missing (the caller says so). */
	return i + 1 < argc ? argv[i + 1] : NULL;
}

static int take(struct snapshot_cli *sc, const char *opt, const char *v, char *err, size_t errlen)
{
	unsigned long n;

	if (!strcmp(opt, "--snapshot-dir")) {
		if (!*v)
			return bad(err, errlen, "--snapshot-dir: missing directory%s", "");
		sc->dir = v;
	} else if (!strcmp(opt, "--snapshot-at-line")) {
		if (parse_uint(v, 1000000, &n) || n < 1)
			return bad(err, errlen, "--snapshot-at-line '%s': expected 1 to 1000000",
				   v);
		sc->at_line = (unsigned int)n;
	} else if (!strcmp(opt, "--snapshot-delay")) {
		if (parse_uint(v, 60000, &n))
			return bad(err, errlen, "--snapshot-delay '%s': expected 0 to 60000 ms", v);
		sc->delay_ms = (unsigned int)n;
	} else if (!strcmp(opt, "--snapshot-diff-dir")) {
		if (!*v)
			return bad(err, errlen, "--snapshot-diff-dir: missing directory%s", "");
		sc->diff_dir = v;
	} else if (!strcmp(opt, "--snapshot-diff-at-line")) {
		if (parse_uint(v, 1000000, &n) || n < 1)
			return bad(err, errlen,
				   "--snapshot-diff-at-line '%s': expected 1 to 1000000", v);
		sc->diff_at_line = (unsigned int)n;
	} else {
		if (!strcmp(v, "full"))
			sc->kind = SNAP_FULL;
		else if (!strcmp(v, "live"))
			sc->kind = SNAP_LIVE;
		else
			return bad(err, errlen, "--snapshot-kind '%s': expected full or live", v);
	}
	return 0;
}

/* The run command's own options that take a separate value. */
static bool takes_value(const char *arg)
{
	static const char *const opts[] = { "--guest",	       "--workload",  "--args",
					    "--mem",	       "--cpus",      "--disk",
					    "--console",       "--guest-elf", "--timeout",
					    "--pause-test",    "--clones",    "--clone-after",
					    "--clone-at-line", "--mm-policy" };
	size_t k;

	for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
		if (!strcmp(arg, opts[k]))
			return true;
	}
	return false;
}

int snapshot_cli_extract(int *argc, char **argv, struct snapshot_cli *sc, char *err, size_t errlen)
{
	static const char *const with_value[] = { "--snapshot-dir",	     "--snapshot-at-line",
						  "--snapshot-kind",	     "--snapshot-diff-dir",
						  "--snapshot-diff-at-line", "--snapshot-delay" };
	bool at_line = false;
	int i = 1, j, words, k;

	memset(sc, 0, sizeof(*sc));
	sc->kind = SNAP_LIVE;
	sc->at_line = 1;
	while (i < *argc) {
		const char *v = NULL;

		if (!strcmp(argv[i], "--")) /* the rest is not ours */
			break;
		words = 0;
		for (k = 0; k < (int)(sizeof(with_value) / sizeof(with_value[0])) && !v; k++) {
			v = option_value(argv, *argc, i, with_value[k], &words);
			if (v && take(sc, with_value[k], v, err, errlen))
				return -EINVAL;
			if (v && k == 1)
				at_line = true;
		}
		if (!v && !strcmp(argv[i], "--snapshot-stop")) {
			sc->stop = true;
			words = 1;
		}
		if (!v && !words) {
			if (!strncmp(argv[i], "--snapshot", 10))
				return bad(err, errlen, "%s: unknown option (see --help)", argv[i]);
			/* "--args '--snapshot-dir x'": a value of the run command's, not ours. */
			i += takes_value(argv[i]) ? 2 : 1;
			continue;
		}
		if (i + words > *argc)
			return bad(err, errlen, "%s: missing value", argv[i]);
		for (j = i; j + words < *argc; j++)
			argv[j] = argv[j + words];
		*argc -= words;
		argv[*argc] = NULL;
	}
	if (!sc->dir &&
	    (at_line || sc->stop || sc->kind != SNAP_LIVE || sc->diff_dir || sc->delay_ms))
		return bad(err, errlen, "--snapshot-*: need --snapshot-dir DIR%s", "");
	if (!sc->diff_dir != !sc->diff_at_line)
		return bad(err, errlen,
			   "--snapshot-diff-dir and --snapshot-diff-at-line go together%s", "");
	if (sc->diff_dir && sc->diff_at_line <= sc->at_line)
		return bad(err, errlen,
			   "--snapshot-diff-at-line: must come after --snapshot-at-line%s", "");
	if (sc->diff_dir && sc->stop)
		return bad(err, errlen, "--snapshot-stop: not with a diff%s", "");
	return 0;
}

/* ---- run -------------------------------------------------------------------------- */

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* Wait for console line @n; false if the guest stopped first. */
static bool wait_line(struct machine *m, unsigned int n)
{
	while (!machine_stopped(m)) {
		if (machine_wait_console(m, n, FIRST_LINE_WAIT_MS) == 0)
			return true;
	}
	return false;
}

static void report(const struct snapshot_opts *o, const struct snapshot_timing *t)
{
	fprintf(stderr,
		"forkvm: snapshot %s (%s): guest paused %.3f ms, on disk after %.3f ms, %llu "
		"pages, %llu KiB on disk\n",
		o->dir, snap_kind_name(o->kind), ms(t->paused_ns), ms(t->total_ns),
		(unsigned long long)t->w.pages, (unsigned long long)(t->w.disk_bytes >> 10));
	if (t->ndisks)
		fprintf(stderr,
			"forkvm: snapshot %s: %u disk%s, %llu blocks, %llu KiB on disk, written in "
			"%.3f ms; %u device requests in flight at the instant%s\n",
			o->dir, t->ndisks, t->ndisks == 1 ? "" : "s",
			(unsigned long long)t->w.disk_blocks,
			(unsigned long long)(t->w.disks_disk_bytes >> 10), ms(t->w.disks_ns),
			t->inflight,
			o->kind == SNAP_FULL ? ""
			: t->folded == t->ndisks
			    ? "; the guest writes its image again"
			    : "; the guest's disk writes stay on an overlay (the image is shared)");
}

int snapshot_cmd_run(const struct cli *cli, const struct snapshot_cli *sc)
{
	struct machine_config cfg = cli->cfg;
	struct snap_base *base = NULL;
	struct snapshot_opts o = { .dir = sc->dir, .kind = sc->kind };
	struct snapshot_timing t;
	struct machine *m;
	const char *reason;
	char err[512];
	int ret, status;

	if (cli->clones || cli->pause_test) {
		fprintf(stderr, "forkvm: --snapshot-dir: cannot be combined with %s\n",
			cli->clones ? "--clones" : "--pause-test");
		return EXIT_USAGE;
	}
	/* Counting console lines needs the tap: an empty prefix changes nothing. */
	if (!cfg.console_prefix)
		cfg.console_prefix = "";
	ret = machine_create(&cfg, &m, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "forkvm: %s\n", err);
		return EXIT_HOST;
	}
	ret = machine_start(m);
	if (ret) {
		fprintf(stderr, "forkvm: cannot start the vCPUs: %s\n", strerror(-ret));
		machine_destroy(m);
		return EXIT_HOST;
	}
	if (!wait_line(m, sc->at_line)) {
		snprintf(err, sizeof(err), "the guest stopped before console line %u", sc->at_line);
		ret = -ESRCH;
	} else {
		if (sc->delay_ms) {
			struct timespec ts = { .tv_sec = sc->delay_ms / 1000,
					       .tv_nsec = (long)(sc->delay_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
		o.keep = sc->diff_dir ? &base : NULL;
		ret = machine_snapshot(m, &o, &t, err, sizeof(err));
	}
	if (!ret) {
		report(&o, &t);
		if (sc->diff_dir) {
			o = (struct snapshot_opts){ .dir = sc->diff_dir,
						    .kind = SNAP_DIFF,
						    .base = base };
			if (!wait_line(m, sc->diff_at_line)) {
				snprintf(err, sizeof(err),
					 "the guest stopped before console line %u",
					 sc->diff_at_line);
				ret = -ESRCH;
			} else {
				ret = machine_snapshot(m, &o, &t, err, sizeof(err));
			}
			if (!ret)
				report(&o, &t);
			snap_base_free(base);
		}
	}
	if (ret) {
		fprintf(stderr, "forkvm: snapshot %s: %s\n", o.dir, err);
		cpus_stop(&m->cpus, EXIT_HOST, "no snapshot");
		machine_wait(m, 0);
		machine_destroy(m);
		return EXIT_HOST;
	}
	if (sc->stop)
		cpus_stop(&m->cpus, 0, NULL);
	status = machine_wait(m, cli->timeout_ms);
	reason = machine_stop_reason(m);
	if (*reason && !sc->stop)
		fprintf(stderr, "forkvm: %s\n", reason);
	fflush(stdout);
	machine_destroy(m);
	return status;
}

/* ---- restore ------------------------------------------------------------------------ */

static void report_restore(const char *dir, const struct restore_timing *t)
{
	fprintf(stderr,
		"forkvm: restored %s: %llu pages, checked %.3f ms, built %.3f ms, memory %.3f ms, "
		"state %.3f ms\n",
		dir, (unsigned long long)t->pages, ms(t->open_ns), ms(t->build_ns),
		ms(t->memory_ns), ms(t->state_ns));
}

/* --clones N: the restored machine is the parent of a family, cloned N times. */
static int restore_family(const char *dir, struct machine *m, const struct restore_opts *o,
			  const struct restore_timing *t, unsigned int clones,
			  unsigned int timeout_ms)
{
	struct family_config fc = { .cfg = { .console = o->console } };
	struct family *f;
	char err[512];
	int status;

	if (family_adopt(&fc, m, &f, err, sizeof(err))) {
		fprintf(stderr, "forkvm restore: %s\n", err);
		machine_destroy(m);
		return EXIT_HOST;
	}
	report_restore(dir, t);
	status = family_run_clones(f, clones, timeout_ms);
	family_destroy(f);
	return status;
}

int snapshot_restore_main(int argc, char **argv)
{
	struct snap_lazy_opts lz = { 0 };
	struct restore_opts o = { .lazy = &lz };
	struct restore_timing t;
	unsigned long timeout_s = 0, clones = 0;
	const char *dir = NULL, *reason, *api = NULL;
	struct machine *m;
	char err[768];
	int i, ret, status;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		ret = snap_lazy_option(argc, argv, i, &lz);
		if (ret < 0)
			return EXIT_USAGE;
		if (ret) {
			i += ret - 1;
			continue;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage, stdout);
			return 0;
		}
		if (!strcmp(a, "--clones")) {
			if (i + 1 >= argc || parse_uint(argv[i + 1], FAMILY_MAX_VMS - 1, &clones) ||
			    !clones) {
				fprintf(stderr, "forkvm restore: --clones '%s': expected 1 to %u\n",
					i + 1 < argc ? argv[i + 1] : "", FAMILY_MAX_VMS - 1);
				return EXIT_USAGE;
			}
			i++;
			continue;
		}
		if (!strcmp(a, "--console") || !strcmp(a, "--timeout") || !strcmp(a, "--api")) {
			if (i + 1 >= argc || !*argv[i + 1]) {
				fprintf(stderr, "forkvm restore: %s: missing value\n", a);
				return EXIT_USAGE;
			}
			if (a[2] == 'a') {
				api = argv[++i];
			} else if (a[2] == 'c') {
				o.console = argv[++i];
			} else if (parse_uint(argv[++i], 86400, &timeout_s) || !timeout_s) {
				fprintf(stderr,
					"forkvm restore: --timeout '%s': expected 1 to 86400 "
					"seconds\n",
					argv[i]);
				return EXIT_USAGE;
			}
			continue;
		}
		if (a[0] == '-' || dir) {
			fprintf(stderr, "forkvm restore: '%s': unexpected argument (see --help)\n",
				a);
			return EXIT_USAGE;
		}
		dir = a;
	}
	if (!dir) {
		fprintf(stderr, "forkvm restore: DIR: missing (forkvm restore DIR [--console "
				"FILE] [--timeout SECONDS])\n");
		return EXIT_USAGE;
	}
	if (api) /* the control API's (vmm/api/api_restore.c) */
		return api_restore_main(dir, &o, (unsigned int)timeout_s * 1000, api,
					(unsigned int)clones);
	/* Several VMs on one output: each line says whose. */
	if (clones)
		o.console_prefix = "[parent] ";
	ret = snapshot_restore(dir, &o, &m, &t, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "forkvm restore: %s: %s\n", dir, err);
		return EXIT_HOST;
	}
	if (clones)
		return restore_family(dir, m, &o, &t, (unsigned int)clones,
				      (unsigned int)timeout_s * 1000);
	ret = machine_start(m);
	if (ret) {
		fprintf(stderr, "forkvm restore: cannot start the vCPUs: %s\n", strerror(-ret));
		machine_destroy(m);
		return EXIT_HOST;
	}
	report_restore(dir, &t);
	snap_lazy_started(m, dir, &lz);
	status = machine_wait(m, (unsigned int)timeout_s * 1000);
	reason = machine_stop_reason(m);
	if (*reason)
		fprintf(stderr, "forkvm: %s\n", reason);
	snap_lazy_report(m, &lz);
	fflush(stdout);
	machine_destroy(m);
	return status;
}
