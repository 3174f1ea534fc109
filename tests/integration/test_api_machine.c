// SPDX-License-Identifier: MIT
/*
 * The control API over a real family (vmm/api/backend_machine.c): a held
 * memcheck guest, every resource through the socket, clones made through
 * the API released and run to the end, a VM killed through it.  Needs KVM:
 * run through scripts/in-kvm.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/test_vmm_helpers.h"
#include "vmm/api/api_server.h"
#include "vmm/api/backend_machine.h"
#include "vmm/api/ctl.h"
#include "vmm/family.h"
#include "vmm/snapshot/manifest.h"

#define MEM (32ULL << 20)
#define WAIT_MS 60000

static char sock[300];

static json_t *call(const char *method, const char *path, const char *body, unsigned int want)
{
	char err[256], *resp;
	unsigned int status;
	size_t len;
	json_t *j;

	cr_assert_eq(
	    api_client_call(sock, method, path, body, &status, &resp, &len, err, sizeof(err)), 0,
	    "%s %s: %s", method, path, err);
	j = json_loadb(resp, len, 0, NULL);
	cr_assert_not_null(j, "%s %s: not JSON: %s", method, path, resp);
	cr_assert_eq(status, want, "%s %s: HTTP %u, not %u: %s", method, path, status, want, resp);
	free(resp);
	return j;
}

static const char *str(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key)) ?: "";
}

static long long num(json_t *j, const char *key)
{
	return json_integer_value(json_object_get(j, key));
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* POST /vms/0/snapshot of @body with "%s" the path of @name; the answer. */
static json_t *snapshot(const char *fmt, const char *name, unsigned int want, char *dir,
			size_t dirlen)
{
	char body[1024], base[300];
	double t0 = now_us();
	json_t *j;

	vmm_path(dir, dirlen, name);
	vmm_path(base, sizeof(base), "api-snap-live");
	snprintf(body, sizeof(body), fmt, dir, base);
	j = call("POST", "/vms/0/snapshot", body, want);
	if (want == 200)
		fprintf(stderr, "api_machine: snapshot %s: the call %.0f us, inside %lld us\n",
			body, now_us() - t0, num(j, "total_us"));
	return j;
}

static bool has_manifest(const char *dir)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MANIFEST_NAME);
	return access(path, F_OK) == 0;
}

/* Snapshots of the held parent: full, live kept, a diff of it; refusals; it runs on. */
static void snapshots(struct family *f)
{
	char dir[300];
	long long live_pages;
	json_t *j;

	j = snapshot("{\"dir\":\"%s\"}", "api-snap-full", 200, dir, sizeof(dir));
	cr_expect_str_eq(str(j, "kind"), "full");
	cr_expect_gt(num(j, "pages"), 0);
	cr_expect_gt(num(j, "total_us"), 0);
	cr_expect_geq(num(j, "total_us"), num(j, "paused_us"));
	cr_expect(json_is_false(json_object_get(j, "kept")));
	cr_expect(has_manifest(dir), "%s written", dir);
	json_decref(j);
	/* The same dir again: 409, and the VM runs on. */
	json_decref(snapshot("{\"dir\":\"%s\"}", "api-snap-full", 409, dir, sizeof(dir)));
	json_decref(call("POST", "/vms/0/snapshot", "{\"dir\":\"relative/x\"}", 400));
	json_decref(call("POST", "/vms/0/snapshot", "{\"dir\":\"/nonexistent-forkvm/x\"}", 400));
	/* A diff before any kept snapshot: refused, nothing written. */
	j = snapshot("{\"dir\":\"%s\",\"kind\":\"diff\",\"base\":\"%s\"}", "api-snap-d0", 400, dir,
		     sizeof(dir));
	cr_expect(!has_manifest(dir));
	json_decref(j);
	j = snapshot("{\"dir\":\"%s\",\"kind\":\"live\",\"keep\":true}", "api-snap-live", 200, dir,
		     sizeof(dir));
	cr_expect(json_is_true(json_object_get(j, "kept")));
	live_pages = num(j, "pages");
	cr_expect_gt(live_pages, 0);
	json_decref(j);
	/* A held guest writes almost nothing: its diff is small. */
	j = snapshot("{\"dir\":\"%s\",\"kind\":\"diff\",\"base\":\"%s\"}", "api-snap-diff", 200,
		     dir, sizeof(dir));
	cr_expect_lt(num(j, "pages"), live_pages / 4, "diff %lld pages, its base %lld",
		     num(j, "pages"), live_pages);
	cr_expect(has_manifest(dir));
	json_decref(j);
	/* A paused VM's snapshot leaves it paused. */
	json_decref(call("POST", "/vms/0/pause", NULL, 200));
	json_decref(snapshot("{\"dir\":\"%s\",\"kind\":\"live\"}", "api-snap-paused", 200, dir,
			     sizeof(dir)));
	j = call("GET", "/vms/0", NULL, 200);
	cr_expect_str_eq(str(j, "state"), "paused");
	json_decref(j);
	json_decref(call("POST", "/vms/0/resume", NULL, 200));
	cr_expect(!machine_stopped(family_parent(f)), "the parent runs on");
}

Test(api_machine, every_resource_on_a_held_family_and_its_clones, .timeout = 300)
{
	struct api_server_config sc = { .ops = &api_machine_ops };
	struct api_machine_backend *b;
	struct family_config fc;
	struct api_server *srv;
	struct family *f;
	char console[300], err[512], cmd[1024], out[4096];
	json_t *j, *vms, *st;
	uint64_t gpa;
	unsigned int i;
	FILE *p;
	size_t n;

	vmm_kvm_or_skip();
	memset(&fc, 0, sizeof(fc));
	vmm_path(console, sizeof(console), "api-console.txt");
	fc.cfg.mem_size = MEM;
	fc.cfg.ncpus = 1;
	fc.cfg.workload = "memcheck";
	/* Held after pass 1 (console line 3) until the test writes the hold word. */
	fc.cfg.args = "passes=2 hold=1";
	fc.cfg.guest_elf = vmm_guest();
	fc.cfg.console = console;
	fc.cfg.console_prefix = "";
	fc.cfg.quiet_results = true;
	fc.quiet = true;
	cr_assert_eq(family_create(&fc, &f, err, sizeof(err)), 0, "family_create: %s", err);
	cr_assert_eq(family_start(f), 0);
	cr_assert_eq(machine_wait_console(family_parent(f), 3, WAIT_MS), 0, "no hold line");
	gpa = vmm_hold_word(console);

	cr_assert_eq(api_machine_backend_create(f, console, &b), 0);
	vmm_path(sock, sizeof(sock), "api.sock");
	unlink(sock);
	sc.path = sock;
	sc.ctx = b;
	cr_assert_eq(api_server_start(&sc, &srv, err, sizeof(err)), 0, "%s", err);

	j = call("GET", "/vms", NULL, 200);
	vms = json_object_get(j, "vms");
	cr_expect_eq(json_array_size(vms), 1);
	cr_expect_str_eq(str(json_array_get(vms, 0), "state"), "running");
	json_decref(j);
	j = call("GET", "/vms/0", NULL, 200);
	st = json_object_get(j, "stats");
	cr_expect_eq(num(st, "pages"), MEM / 4096);
	cr_expect_gt(num(st, "private_frames"), 0, "memcheck wrote its pages");
	cr_expect_eq(num(st, "inflight"), 0);
	cr_expect(json_is_null(json_object_get(st, "cow_copies")), "per pool, not per VM");
	json_decref(j);

	/* Pause, a refused clone of the paused VM, resume. */
	j = call("POST", "/vms/0/pause", NULL, 200);
	cr_expect_str_eq(str(j, "state"), "paused");
	json_decref(j);
	json_decref(call("POST", "/vms/0/clone", NULL, 409));
	json_decref(call("POST", "/vms/0/pause", NULL, 409));
	j = call("POST", "/vms/0/resume", NULL, 200);
	cr_expect_str_eq(str(j, "state"), "running");
	json_decref(j);

	/* Two live clones of the held guest. */
	j = call("POST", "/vms/0/clone", "{\"count\":2}", 201);
	cr_expect_eq(json_array_size(json_object_get(j, "ids")), 2);
	cr_expect_eq(json_integer_value(json_array_get(json_object_get(j, "ids"), 0)), 1);
	cr_expect_eq(json_integer_value(json_array_get(json_object_get(j, "ids"), 1)), 2);
	json_decref(j);
	j = call("GET", "/vms", NULL, 200);
	vms = json_object_get(j, "vms");
	cr_expect_eq(json_array_size(vms), 3);
	for (i = 1; i < 3; i++) {
		cr_expect_eq(num(json_array_get(vms, i), "parent"), 0);
		cr_expect_str_eq(str(json_array_get(vms, i), "state"), "running");
	}
	json_decref(j);
	j = call("GET", "/vms/1", NULL, 200);
	cr_expect_gt(num(json_object_get(j, "stats"), "shared_frames"), 0, "a fresh clone shares");
	json_decref(j);
	j = call("GET", "/family", NULL, 200);
	cr_expect_eq(num(j, "vms"), 3);
	cr_expect_eq(num(j, "running"), 3);
	cr_expect_gt(num(json_object_get(j, "memory"), "frames_used"), 0);
	json_decref(j);

	/* The parent's console: its last line is the hold line. */
	j = call("GET", "/vms/0/console?lines=1", NULL, 200);
	cr_expect(strstr(json_string_value(json_array_get(json_object_get(j, "lines"), 0)) ?: "",
			 "holding"),
		  "last console line");
	json_decref(j);
	snapshots(f);

	/* forkvm ctl against the real family. */
	snprintf(cmd, sizeof(cmd), "'%s' ctl '%s' list 2>&1", vmm_bin(), sock);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	cr_expect_eq(pclose(p), 0, "%s", out);
	cr_expect(strstr(out, "\n2     running  0"), "%s", out);

	/* Kill VM 2; release the others, which finish memcheck. */
	j = call("POST", "/vms/2/kill", NULL, 200);
	cr_expect_str_eq(str(j, "state"), "stopped");
	cr_expect_eq(num(j, "exit_status"), 3);
	json_decref(j);
	json_decref(call("POST", "/vms/2/kill", NULL, 409));
	for (i = 0; i < 2; i++)
		vmm_release(family_member(f, i)->m, gpa);
	cr_expect_eq(family_wait(f, WAIT_MS), 3, "the killed VM's status");
	cr_expect_eq(family_member(f, 0)->status, 0);
	cr_expect_eq(family_member(f, 1)->status, 0);
	j = call("GET", "/vms/1", NULL, 200);
	cr_expect_str_eq(str(j, "state"), "stopped");
	cr_expect_eq(num(j, "exit_status"), 0);
	json_decref(j);

	api_server_stop(srv);
	api_machine_backend_destroy(b);
	family_destroy(f);
	cr_expect_neq(access(sock, F_OK), 0, "the socket is gone");
}

/*
 * The template killed through the API while its clones run: its machine is
 * freed at once (reaped), the family's pool stays, and the clones finish
 * memcheck (which checks every page it wrote) with status 0.
 */
Test(api_machine, killing_the_template_first_leaves_its_clones_running_to_a_clean_end,
     .timeout = 300)
{
	struct api_server_config sc = { .ops = &api_machine_ops };
	struct api_machine_backend *b;
	struct family_config fc;
	struct api_server *srv;
	struct family *f;
	char console[300], err[512];
	struct machine *m;
	uint64_t gpa;
	unsigned int i;
	json_t *j;

	vmm_kvm_or_skip();
	memset(&fc, 0, sizeof(fc));
	vmm_path(console, sizeof(console), "api-kill-console.txt");
	fc.cfg.mem_size = MEM;
	fc.cfg.ncpus = 1;
	fc.cfg.workload = "memcheck";
	fc.cfg.args = "passes=2 hold=1";
	fc.cfg.guest_elf = vmm_guest();
	fc.cfg.console = console;
	fc.cfg.console_prefix = "";
	fc.cfg.quiet_results = true;
	fc.quiet = true;
	cr_assert_eq(family_create(&fc, &f, err, sizeof(err)), 0, "family_create: %s", err);
	cr_assert_eq(family_start(f), 0);
	cr_assert_eq(machine_wait_console(family_parent(f), 3, WAIT_MS), 0, "no hold line");
	gpa = vmm_hold_word(console);
	cr_assert_eq(api_machine_backend_create(f, console, &b), 0);
	vmm_path(sock, sizeof(sock), "api-kill.sock");
	unlink(sock);
	sc.path = sock;
	sc.ctx = b;
	cr_assert_eq(api_server_start(&sc, &srv, err, sizeof(err)), 0, "%s", err);

	json_decref(call("POST", "/vms/0/clone", "{\"count\":2}", 201));
	j = call("POST", "/vms/0/kill", NULL, 200);
	cr_expect_str_eq(str(j, "state"), "stopped");
	cr_expect_eq(num(j, "exit_status"), 3);
	json_decref(j);
	cr_expect_null(family_parent(f), "the template's machine is gone");
	cr_expect(family_member(f, 0)->reaped);
	json_decref(call("POST", "/vms/0/kill", NULL, 409));
	json_decref(call("POST", "/vms/0/clone", NULL, 409));
	j = call("GET", "/vms/0", NULL, 200);
	cr_expect_eq(num(json_object_get(j, "stats"), "pages"), MEM / 4096,
		     "its stats as it ended");
	json_decref(j);
	j = call("GET", "/family", NULL, 200);
	cr_expect_eq(num(j, "running"), 2);
	cr_expect_gt(num(json_object_get(j, "memory"), "frames_used"), 0, "the pool lives on");
	json_decref(j);

	/* The clones go on: each writes and checks all its memory again. */
	for (i = 1; i < 3; i++) {
		m = family_get(f, i);
		cr_assert_not_null(m);
		vmm_release(m, gpa);
		machine_put(m);
	}
	cr_expect_eq(family_wait(f, WAIT_MS), 3, "VM 0's status, the first non-zero");
	for (i = 1; i < 3; i++) {
		cr_expect_eq(family_member(f, i)->status, 0, "clone %u: %s", i,
			     family_member(f, i)->reason);
		j = call("GET", i == 1 ? "/vms/1" : "/vms/2", NULL, 200);
		cr_expect_str_eq(str(j, "state"), "stopped");
		cr_expect_eq(num(j, "exit_status"), 0);
		json_decref(j);
	}
	/* Reaping a clone after the end: its machine goes, the pool with the family. */
	cr_expect_eq(family_reap(f, 1), 0);
	cr_expect_eq(family_reap(f, 1), -ESRCH);
	api_server_stop(srv);
	api_machine_backend_destroy(b);
	family_destroy(f);
}
