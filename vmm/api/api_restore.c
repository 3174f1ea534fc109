// SPDX-License-Identifier: MIT
/* `forkvm restore DIR --api SOCKET`: a restored machine in a family, served. */
#include "vmm/api/api_restore.h"

#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "vmm/api/api_run.h"
#include "vmm/family.h"
#include "vmm/machine.h"
#include "vmm/snapshot/snapshot.h"

#define EXIT_HOST 1
#define EXIT_USAGE 2

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

int api_restore_main(const char *dir, const struct restore_opts *o, unsigned int timeout_ms,
		     const char *sock, unsigned int clones)
{
	/* Clone I's console is "console.I", as in a run. */
	struct family_config fc = { .cfg = { .console = o->console }, .quiet = true };
	struct sockaddr_un sa;
	struct restore_timing t;
	struct api_run *api = NULL;
	struct family *f;
	struct machine *m;
	char err[768];
	int ret, status;

	if (!*sock || strlen(sock) >= sizeof(sa.sun_path)) {
		fprintf(stderr,
			"forkvm restore: --api '%s': expected a socket path of 1 to %zu bytes\n",
			sock, sizeof(sa.sun_path) - 1);
		return EXIT_USAGE;
	}
	if (clones) {
		fprintf(stderr, "forkvm restore: --api: not with --clones (clone through the API: "
				"POST /vms/0/clone)\n");
		return EXIT_USAGE;
	}
	/* Before any thread exists: only the API's signal thread takes them. */
	if (api_run_block_signals()) {
		fprintf(stderr, "forkvm restore: --api: cannot block SIGINT/SIGTERM\n");
		return EXIT_HOST;
	}
	ret = snapshot_restore(dir, o, &m, &t, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "forkvm restore: %s: %s\n", dir, err);
		return EXIT_HOST;
	}
	ret = family_adopt(&fc, m, &f, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "forkvm restore: %s\n", err);
		machine_destroy(m);
		return EXIT_HOST;
	}
	ret = family_start(f);
	if (ret) {
		fprintf(stderr, "forkvm restore: cannot start the vCPUs: %s\n", strerror(-ret));
		family_destroy(f);
		return EXIT_HOST;
	}
	fprintf(stderr,
		"forkvm: restored %s: %llu pages, checked %.3f ms, built %.3f ms, memory %.3f ms, "
		"state %.3f ms\n",
		dir, (unsigned long long)t.pages, ms(t.open_ns), ms(t.build_ns), ms(t.memory_ns),
		ms(t.state_ns));
	ret = api_run_start(f, sock, o->console, &api, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "forkvm restore: %s\n", err);
		family_destroy(f);
		return EXIT_HOST;
	}
	fprintf(stderr, "forkvm: control API on %s (docs/api.md)\n", sock);
	status = family_wait(f, timeout_ms);
	family_report(f);
	api_run_finish(api);
	family_destroy(f);
	return status;
}
