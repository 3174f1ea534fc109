// SPDX-License-Identifier: MIT
/*
 * The control API (vmm/api/) against a fake backend, through a real UNIX
 * socket: every resource (our C client, curl and `forkvm ctl`), a corpus of
 * malformed requests, a deterministic fuzz loop over the parser boundary,
 * concurrent clients, a slow client, the limits, and the socket's life
 * (mode 0600, a non-socket path refused and left intact, removed at stop).
 * No KVM needed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/api/api_backend.h"
#include "vmm/api/api_server.h"
#include "vmm/api/ctl.h"

/* ---- the fake backend: a family in an array --------------------------------- */

#define FAKE_MAX_VMS 40u

struct fake_vm {
	uint32_t parent;
	bool has_parent;
	enum api_vm_state state;
};

struct fake {
	pthread_mutex_t lock;
	struct fake_vm vm[FAKE_MAX_VMS];
	unsigned int n;
	pthread_t thread; /* the thread of the first call */
	bool thread_seen;
	atomic_uint calls;
	atomic_uint foreign_calls; /* calls from another thread than the first */
	atomic_uint concurrent; /* calls running right now */
	atomic_uint overlaps; /* a call started while another ran */
	unsigned int clone_delay_ms; /* each clone call takes this long */
	char snaps[8][128]; /* the snapshot dirs written, as if on disk */
	unsigned int nsnaps;
	char kept[128]; /* the kept snapshot (VM 0 only) */
};

static struct fake fake;

/* Every op starts here: the threading rule of api_backend.h, checked. */
static void enter(struct fake *f)
{
	if (atomic_fetch_add(&f->concurrent, 1))
		atomic_fetch_add(&f->overlaps, 1);
	atomic_fetch_add(&f->calls, 1);
	pthread_mutex_lock(&f->lock);
	if (!f->thread_seen) {
		f->thread = pthread_self();
		f->thread_seen = true;
	} else if (!pthread_equal(f->thread, pthread_self())) {
		atomic_fetch_add(&f->foreign_calls, 1);
	}
}

static int leave(struct fake *f, int ret)
{
	pthread_mutex_unlock(&f->lock);
	atomic_fetch_sub(&f->concurrent, 1);
	return ret;
}

static struct fake_vm *vm_of(struct fake *f, uint32_t id)
{
	return id < f->n ? &f->vm[id] : NULL;
}

static int fake_list(void *ctx, struct api_vm_info *out, size_t max, size_t *n)
{
	struct fake *f = ctx;
	size_t i;

	enter(f);
	for (i = 0; i < f->n && i < max; i++)
		out[i] = (struct api_vm_info){ .id = (uint32_t)i,
					       .parent = f->vm[i].parent,
					       .has_parent = f->vm[i].has_parent,
					       .state = f->vm[i].state,
					       .exit_status =
						   f->vm[i].state == API_VM_STOPPED ? 137 : 0 };
	*n = i;
	return leave(f, 0);
}

static int fake_get(void *ctx, uint32_t id, struct api_vm_info *info, struct api_vm_stats *st)
{
	struct fake *f = ctx;
	struct fake_vm *v;

	enter(f);
	v = vm_of(f, id);
	if (!v)
		return leave(f, -ENOENT);
	*info = (struct api_vm_info){ .id = id,
				      .parent = v->parent,
				      .has_parent = v->has_parent,
				      .state = v->state,
				      .exit_status = v->state == API_VM_STOPPED ? 137 : 0 };
	*st = (struct api_vm_stats){ .pages = 32768,
				     .private_frames = 100 + id,
				     .shared_frames = 2000,
				     .pinned_frames = 3,
				     .cow_copies = 40,
				     .cow_reuses = 5,
				     .faults = 45,
				     .inflight = 2,
				     .vmas = API_STAT_NONE };
	return leave(f, 0);
}

static int fake_set_state(void *ctx, uint32_t id, enum api_vm_state from, enum api_vm_state to)
{
	struct fake *f = ctx;
	struct fake_vm *v;

	enter(f);
	v = vm_of(f, id);
	if (!v)
		return leave(f, -ENOENT);
	if (v->state == API_VM_STOPPED)
		return leave(f, -ESRCH);
	if (v->state != from)
		return leave(f, -EALREADY);
	v->state = to;
	return leave(f, 0);
}

static int fake_pause(void *ctx, uint32_t id)
{
	return fake_set_state(ctx, id, API_VM_RUNNING, API_VM_PAUSED);
}

static int fake_resume(void *ctx, uint32_t id)
{
	return fake_set_state(ctx, id, API_VM_PAUSED, API_VM_RUNNING);
}

static int fake_kill(void *ctx, uint32_t id)
{
	struct fake *f = ctx;
	struct fake_vm *v;

	enter(f);
	v = vm_of(f, id);
	if (!v)
		return leave(f, -ENOENT);
	if (v->state == API_VM_STOPPED)
		return leave(f, -ESRCH);
	v->state = API_VM_STOPPED;
	return leave(f, 0);
}

static int fake_clone(void *ctx, uint32_t id, unsigned int count, uint32_t *ids, unsigned int *made,
		      char *err, size_t errlen)
{
	struct fake *f = ctx;
	struct fake_vm *v;
	unsigned int i;

	enter(f);
	if (f->clone_delay_ms)
		usleep(f->clone_delay_ms * 1000);
	*made = 0;
	v = vm_of(f, id);
	if (!v)
		return leave(f, -ENOENT);
	if (v->state == API_VM_STOPPED)
		return leave(f, -ESRCH);
	for (i = 0; i < count; i++) {
		if (f->n == FAKE_MAX_VMS) {
			snprintf(err, errlen, "the family is full (%u VMs)", FAKE_MAX_VMS);
			return leave(f, -ENOSPC);
		}
		f->vm[f->n] =
		    (struct fake_vm){ .parent = id, .has_parent = true, .state = API_VM_RUNNING };
		ids[(*made)++] = f->n++;
	}
	return leave(f, 0);
}

/* Snapshots of VM 0 as machine_snapshot() would take them: dirs that exist refused. */
static int fake_snapshot(void *ctx, uint32_t id, const struct api_snapshot_req *rq,
			 struct api_snapshot_result *res, char *err, size_t errlen)
{
	struct fake *f = ctx;
	unsigned int i;

	enter(f);
	if (!vm_of(f, id))
		return leave(f, -ENOENT);
	if (f->vm[id].state == API_VM_STOPPED)
		return leave(f, -ESRCH);
	if (id) {
		snprintf(err, errlen, "cannot snapshot a VM with virtio disks yet");
		return leave(f, -EOPNOTSUPP);
	}
	if (rq->dir[0] != '/') {
		snprintf(err, errlen, "dir '%s': not an absolute path", rq->dir);
		return leave(f, -EINVAL);
	}
	for (i = 0; i < f->nsnaps; i++)
		if (!strcmp(f->snaps[i], rq->dir)) {
			snprintf(err, errlen, "%s exists: a snapshot never replaces anything",
				 rq->dir);
			return leave(f, -EEXIST);
		}
	if (rq->kind == API_SNAPSHOT_DIFF && strcmp(rq->base, f->kept)) {
		snprintf(err, errlen, "base '%s' is not VM 0's kept snapshot (%s)", rq->base,
			 f->kept);
		return leave(f, -EINVAL);
	}
	if (f->nsnaps < 8)
		snprintf(f->snaps[f->nsnaps++], sizeof(f->snaps[0]), "%s", rq->dir);
	if (rq->keep)
		snprintf(f->kept, sizeof(f->kept), "%s", rq->dir);
	*res =
	    (struct api_snapshot_result){ .paused_us = rq->kind == API_SNAPSHOT_FULL ? 9000 : 800,
					  .total_us = 9000,
					  .pages = rq->kind == API_SNAPSHOT_DIFF ? 12 : 812,
					  .disk_bytes = API_STAT_NONE };
	if (rq->kind != API_SNAPSHOT_FULL)
		res->disk_bytes = res->pages * 4096;
	return leave(f, 0);
}

/* VM id's console: "line 1" .. "line 50", VM 1 ends with bytes that are not UTF-8. */
static int fake_console(void *ctx, uint32_t id, unsigned int lines, char *buf, size_t buflen,
			size_t *len)
{
	struct fake *f = ctx;
	unsigned int first, i;
	size_t n = 0;

	enter(f);
	if (!vm_of(f, id))
		return leave(f, -ENOENT);
	first = lines >= 50 ? 1 : 51 - lines;
	for (i = first; i <= 50; i++) {
		if (id == 1 && i == 50)
			n += (size_t)snprintf(buf + n, buflen - n, "bad \xff\xfe byte\r\n");
		else
			n += (size_t)snprintf(buf + n, buflen - n, "line %u\n", i);
	}
	*len = n;
	return leave(f, 0);
}

static int fake_family(void *ctx, struct api_family_stats *st)
{
	struct fake *f = ctx;
	unsigned int i;

	enter(f);
	*st = (struct api_family_stats){ .vms = f->n,
					 .frames_used = 5000,
					 .frames_total = 262144,
					 .bytes_resident = 5000 * 4096ull,
					 .vmas = API_STAT_NONE,
					 .cow_copies = 700,
					 .cow_reuses = 60,
					 .faults = 760,
					 .pinned_frames = 3 };
	for (i = 0; i < f->n; i++)
		st->running += f->vm[i].state != API_VM_STOPPED;
	return leave(f, 0);
}

static const struct api_backend_ops fake_ops = {
	.list = fake_list,
	.get = fake_get,
	.pause = fake_pause,
	.resume = fake_resume,
	.kill = fake_kill,
	.clone = fake_clone,
	.snapshot = fake_snapshot,
	.console = fake_console,
	.family = fake_family,
};

/* ---- fixture: a server on a fresh socket ------------------------------------------- */

static char dir[64];
static char sock[128];
static struct api_server *srv;

/* Two VMs: 0 the parent (running), 1 its clone (running). */
static void fake_reset(void)
{
	pthread_mutex_destroy(&fake.lock);
	memset(&fake, 0, sizeof(fake));
	pthread_mutex_init(&fake.lock, NULL);
	fake.vm[0] = (struct fake_vm){ .state = API_VM_RUNNING };
	fake.vm[1] = (struct fake_vm){ .parent = 0, .has_parent = true, .state = API_VM_RUNNING };
	fake.n = 2;
}

static void start_with(unsigned int max_conns, unsigned int timeout_s)
{
	struct api_server_config cfg = {
		.path = sock,
		.ops = &fake_ops,
		.ctx = &fake,
		.max_conns = max_conns,
		.timeout_s = timeout_s,
	};
	char err[256];
	int ret;

	ret = api_server_start(&cfg, &srv, err, sizeof(err));
	cr_assert_eq(ret, 0, "api_server_start: %d %s", ret, err);
}

static void make_dir(void)
{
	strcpy(dir, "/tmp/forkvm-api-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	fake_reset();
}

static void setup(void)
{
	make_dir();
	start_with(0, 2);
}

static void teardown(void)
{
	api_server_stop(srv);
	srv = NULL;
	unlink(sock);
	rmdir(dir);
}

/* No server: the tests of the socket's life start their own. */
static void setup_noserver(void)
{
	make_dir();
	srv = NULL;
}

/*
 * One timeout for all suites: Criterion 2.4's runner leaks 48 bytes when
 * tests with different suite timeouts run in parallel (--jobs 2, as make
 * test runs them), and LeakSanitizer then fails a SAN=1 run.
 */
TestSuite(api, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(api_socket, .init = setup_noserver, .fini = teardown, .timeout = 60);
TestSuite(api_limits, .init = setup_noserver, .fini = teardown, .timeout = 60);

/* ---- clients ---------------------------------------------------------------------- */

/* One request through our C client: the status and the parsed JSON (owned). */
static json_t *call(const char *method, const char *path, const char *body, unsigned int *status)
{
	char err[256], *resp;
	json_error_t e;
	size_t len;
	json_t *j;
	int ret;

	ret = api_client_call(sock, method, path, body, status, &resp, &len, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s %s: %s", method, path, err);
	j = json_loadb(resp, len, 0, &e);
	cr_assert_not_null(j, "%s %s: not JSON (%s): %s", method, path, e.text, resp);
	cr_assert_eq(resp[len - 1], '\n', "%s %s: the answer ends in a newline", method, path);
	free(resp);
	return j;
}

/* A call that must succeed with @want. */
static json_t *ok(const char *method, const char *path, const char *body, unsigned int want)
{
	unsigned int status;
	json_t *j = call(method, path, body, &status);

	cr_assert_eq(status, want, "%s %s: HTTP %u, not %u", method, path, status, want);
	return j;
}

/* A call that must fail with @want and the error @code. */
static void fails(const char *method, const char *path, const char *body, unsigned int want,
		  const char *code)
{
	unsigned int status;
	json_t *j = call(method, path, body, &status), *e;

	e = json_object_get(j, "error");
	cr_assert(json_is_object(e), "%s %s: no error object", method, path);
	cr_expect_eq(status, want, "%s %s %s: HTTP %u, not %u (%s)", method, path, body ? body : "",
		     status, want, json_string_value(json_object_get(e, "message")));
	cr_expect_str_eq(json_string_value(json_object_get(e, "code")), code, "%s %s %s: %s",
			 method, path, body ? body : "",
			 json_string_value(json_object_get(e, "message")));
	cr_expect(json_is_string(json_object_get(e, "message")));
	cr_expect_gt(strlen(json_string_value(json_object_get(e, "message")) ?: ""), 0);
	json_decref(j);
}

static int connect_sock(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	strcpy(sa.sun_path, sock);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
		     strerror(errno));
	return fd;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Read from @fd until EOF, @cap bytes or @timeout_ms.  Return: bytes read,
 * -ETIMEDOUT when the peer neither answered all nor closed.
 */
static long read_until_eof(int fd, char *buf, size_t cap, unsigned int timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t n = 0;
	ssize_t r;

	while (n < cap) {
		uint64_t now = now_ms();

		if (now >= deadline)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)(deadline - now)) <= 0)
			continue;
		r = recv(fd, buf + n, cap - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) /* EOF, or a reset: the server closed */
			break;
		n += (size_t)r;
	}
	buf[n < cap ? n : cap - 1] = '\0';
	return (long)n;
}

static void send_all(int fd, const void *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) /* the server closed on us: what it answered is still readable */
			return;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

/*
 * @req as raw bytes, then the write side shut (the server sees EOF after
 * it), and everything the server sends until it closes.
 */
static long raw(const void *req, size_t n, char *out, size_t cap)
{
	int fd = connect_sock();
	long got;

	send_all(fd, req, n);
	shutdown(fd, SHUT_WR);
	got = read_until_eof(fd, out, cap, 10000);
	close(fd);
	return got;
}

/* The status of the first answer in @buf, 0 if none. */
static unsigned int status_of(const char *buf)
{
	if (strncmp(buf, "HTTP/1.", 7) || strlen(buf) < 12)
		return 0;
	return (unsigned int)strtoul(buf + 9, NULL, 10);
}

/* The body of the first answer in @buf (after its headers), NULL if none. */
static const char *body_of(const char *buf)
{
	const char *p = strstr(buf, "\r\n\r\n");

	return p ? p + 4 : NULL;
}

/* The JSON error code of the first answer in @buf, "" if it has none. */
static const char *error_code_of(const char *buf, char *code, size_t len)
{
	const char *b = body_of(buf), *c;
	json_t *j;

	code[0] = '\0';
	if (!b)
		return code;
	j = json_loads(b, JSON_DISABLE_EOF_CHECK, NULL);
	c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
	snprintf(code, len, "%s", c ? c : "");
	json_decref(j);
	return code;
}

/* ---- every resource ----------------------------------------------------------------- */

Test(api, version_names_the_program_and_the_api_version)
{
	json_t *j = ok("GET", "/version", NULL, 200);

	cr_expect_str_eq(json_string_value(json_object_get(j, "name")), "forkvm");
	cr_expect_eq(json_integer_value(json_object_get(j, "api")), 1);
	json_decref(j);
}

Test(api, list_shows_every_vm_in_id_order_with_state_and_parent)
{
	json_t *j = ok("GET", "/vms", NULL, 200), *vms = json_object_get(j, "vms"), *v;

	cr_assert_eq(json_array_size(vms), 2);
	v = json_array_get(vms, 0);
	cr_expect_eq(json_integer_value(json_object_get(v, "id")), 0);
	cr_expect_str_eq(json_string_value(json_object_get(v, "state")), "running");
	cr_expect(json_is_null(json_object_get(v, "parent")));
	cr_expect(json_is_null(json_object_get(v, "exit_status")));
	cr_expect(json_is_false(json_object_get(v, "guest_fork")));
	v = json_array_get(vms, 1);
	cr_expect_eq(json_integer_value(json_object_get(v, "id")), 1);
	cr_expect_eq(json_integer_value(json_object_get(v, "parent")), 0);
	json_decref(j);
}

Test(api, show_gives_every_stat_and_null_for_what_is_not_measured)
{
	json_t *j = ok("GET", "/vms/1", NULL, 200), *st = json_object_get(j, "stats");
	static const char *const names[] = { "pages",	      "private_frames", "shared_frames",
					     "pinned_frames", "cow_copies",	"cow_reuses",
					     "faults",	      "inflight" };
	size_t i;

	cr_expect_eq(json_integer_value(json_object_get(j, "id")), 1);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "running");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_expect(json_is_integer(json_object_get(st, names[i])), "%s", names[i]);
	cr_expect_eq(json_integer_value(json_object_get(st, "private_frames")), 101);
	cr_expect_eq(json_integer_value(json_object_get(st, "pinned_frames")), 3);
	cr_expect(json_is_null(json_object_get(st, "vmas")), "API_STAT_NONE is null");
	cr_expect_eq(json_object_size(st), 9);
	json_decref(j);
}

Test(api, pause_resume_kill_change_the_state_and_refuse_the_wrong_one)
{
	json_t *j;

	j = ok("POST", "/vms/1/pause", NULL, 200);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "paused");
	json_decref(j);
	fails("POST", "/vms/1/pause", NULL, 409, "conflict");
	j = ok("POST", "/vms/1/resume", "{}", 200);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "running");
	json_decref(j);
	fails("POST", "/vms/1/resume", NULL, 409, "conflict");
	j = ok("POST", "/vms/1/kill", NULL, 200);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "stopped");
	cr_expect_eq(json_integer_value(json_object_get(j, "exit_status")), 137);
	json_decref(j);
	fails("POST", "/vms/1/kill", NULL, 409, "vm_stopped");
	fails("POST", "/vms/1/pause", NULL, 409, "vm_stopped");
	/* The other VM is untouched. */
	j = ok("GET", "/vms/0", NULL, 200);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "running");
	json_decref(j);
}

Test(api, clone_returns_the_new_ids_and_they_are_listed)
{
	json_t *j, *ids;
	size_t i;

	j = ok("POST", "/vms/0/clone", "{\"count\":3}", 201);
	ids = json_object_get(j, "ids");
	cr_assert_eq(json_array_size(ids), 3);
	for (i = 0; i < 3; i++)
		cr_expect_eq(json_integer_value(json_array_get(ids, i)), 2 + i);
	json_decref(j);
	/* No body: one clone; of a clone too. */
	j = ok("POST", "/vms/1/clone", NULL, 201);
	cr_expect_eq(json_integer_value(json_array_get(json_object_get(j, "ids"), 0)), 5);
	json_decref(j);
	j = ok("GET", "/vms", NULL, 200);
	cr_expect_eq(json_array_size(json_object_get(j, "vms")), 6);
	cr_expect_eq(json_integer_value(
			 json_object_get(json_array_get(json_object_get(j, "vms"), 5), "parent")),
		     1);
	json_decref(j);
}

Test(api, clone_past_the_family_size_fails_but_names_the_clones_made)
{
	unsigned int status;
	json_t *j, *e;

	/* 2 VMs, room for FAKE_MAX_VMS: 38 more, the 39th fails. */
	j = call("POST", "/vms/0/clone", "{\"count\":39}", &status);
	e = json_object_get(j, "error");
	cr_expect_eq(status, 409);
	cr_expect_str_eq(json_string_value(json_object_get(e, "code")), "family_full");
	cr_expect_str_eq(json_string_value(json_object_get(e, "message")),
			 "clone: the family is full (40 VMs)");
	cr_expect_eq(json_array_size(json_object_get(j, "ids")), FAKE_MAX_VMS - 2);
	json_decref(j);
	fails("POST", "/vms/0/clone", NULL, 409, "family_full");
}

Test(api, clone_checks_count_strictly)
{
	fails("POST", "/vms/0/clone", "{\"count\":0}", 400, "out_of_range");
	fails("POST", "/vms/0/clone", "{\"count\":-1}", 400, "out_of_range");
	fails("POST", "/vms/0/clone", "{\"count\":65}", 400, "out_of_range");
	fails("POST", "/vms/0/clone", "{\"count\":99999999999999999999}", 400, "bad_json");
	fails("POST", "/vms/0/clone", "{\"count\":2.0}", 400, "wrong_type");
	fails("POST", "/vms/0/clone", "{\"count\":\"2\"}", 400, "wrong_type");
	fails("POST", "/vms/0/clone", "{\"count\":true}", 400, "wrong_type");
	fails("POST", "/vms/0/clone", "{\"count\":null}", 400, "wrong_type");
	fails("POST", "/vms/0/clone", "{\"count\":2,\"count\":3}", 400, "bad_json");
	fails("POST", "/vms/0/clone", "{\"count\":2,\"from\":1}", 400, "unknown_field");
	fails("POST", "/vms/0/clone", "[2]", 400, "wrong_type");
	fails("POST", "/vms/9/clone", "{\"count\":1}", 404, "no_such_vm");
	/* Nothing was cloned by any of these. */
	cr_expect_eq(fake.n, 2);
}

Test(api, snapshot_takes_dir_kind_base_and_keep_and_checks_them_first)
{
	json_t *j;

	j = ok("POST", "/vms/0/snapshot", "{\"dir\":\"/tmp/snap\",\"kind\":\"full\"}", 200);
	cr_expect_str_eq(json_string_value(json_object_get(j, "dir")), "/tmp/snap");
	cr_expect_str_eq(json_string_value(json_object_get(j, "kind")), "full");
	cr_expect(json_is_null(json_object_get(j, "base")));
	cr_expect(json_is_false(json_object_get(j, "kept")));
	cr_expect_eq(json_integer_value(json_object_get(j, "pages")), 812);
	cr_expect(json_is_null(json_object_get(j, "disk_bytes")), "not measured: null");
	cr_expect_eq(json_integer_value(json_object_get(j, "paused_us")), 9000);
	json_decref(j);
	j = ok("POST", "/vms/0/snapshot", "{\"dir\":\"/tmp/snap2\"}", 200);
	cr_expect_str_eq(json_string_value(json_object_get(j, "kind")), "full", "the default");
	json_decref(j);
	j = ok("POST", "/vms/0/snapshot", "{\"dir\":\"/tmp/l\",\"kind\":\"live\",\"keep\":true}",
	       200);
	cr_expect(json_is_true(json_object_get(j, "kept")));
	json_decref(j);
	j = ok("POST", "/vms/0/snapshot",
	       "{\"dir\":\"/tmp/d\",\"kind\":\"diff\",\"base\":\"/tmp/l\",\"keep\":false}", 200);
	cr_expect_str_eq(json_string_value(json_object_get(j, "base")), "/tmp/l");
	cr_expect_eq(json_integer_value(json_object_get(j, "pages")), 12);
	json_decref(j);
	/* The backend's refusals: a dir that exists, a base not kept, a relative dir. */
	fails("POST", "/vms/0/snapshot", "{\"dir\":\"/tmp/snap\"}", 409, "exists");
	fails("POST", "/vms/0/snapshot",
	      "{\"dir\":\"/tmp/d2\",\"kind\":\"diff\",\"base\":\"/tmp/snap\"}", 400, "invalid");
	fails("POST", "/vms/0/snapshot", "{\"dir\":\"rel\"}", 400, "invalid");
	fails("POST", "/vms/1/snapshot", "{\"dir\":\"/tmp/s1\"}", 501, "not_implemented");
	fails("POST", "/vms/7/snapshot", "{\"dir\":\"/tmp/s\"}", 404, "no_such_vm");
	/* The API's own, before the backend sees anything. */
	cr_expect_eq(fake.nsnaps, 4);
	fails("POST", "/vms/0/snapshot", "{\"dir\":\"/tmp/s\",\"kind\":\"half\"}", 400,
	      "out_of_range");
	fails("POST", "/vms/0/snapshot", "{\"dir\":\"/tmp/s\",\"kind\":\"diff\"}", 400,
	      "missing_field");
	fails("POST", "/vms/0/snapshot", "{\"dir\":\"/tmp/s\",\"base\":\"/tmp/l\"}", 400,
	      "invalid");
	fails("POST", "/vms/0/snapshot", "{\"dir\":\"/tmp/s\",\"keep\":1}", 400, "wrong_type");
	fails("POST", "/vms/0/snapshot", "{\"dir\":\"/tmp/s\",\"kind\":\"diff\",\"base\":\"\"}",
	      400, "out_of_range");
	fails("POST", "/vms/0/snapshot", "{\"dir\":\"/tmp/s\",\"when\":1}", 400, "unknown_field");
	fails("POST", "/vms/0/snapshot", "{\"kind\":\"full\"}", 400, "missing_field");
	fails("POST", "/vms/0/snapshot", NULL, 400, "missing_field");
	fails("POST", "/vms/0/snapshot", "{\"dir\":\"\"}", 400, "out_of_range");
	fails("POST", "/vms/0/snapshot", "{\"dir\":7}", 400, "wrong_type");
	fails("POST", "/vms/0/snapshot", "{\"dir\":\"a\\u0000b\"}", 400, "bad_json");
	cr_expect_eq(fake.nsnaps, 4, "none of these reached the backend's disk");
	/* And the VM runs on. */
	j = ok("GET", "/vms/0", NULL, 200);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "running");
	json_decref(j);
}

Test(api, unknown_field_names_every_field_the_resource_takes)
{
	unsigned int status;
	json_t *j = call("POST", "/vms/0/snapshot", "{\"dir\":\"/tmp/s\",\"when\":1}", &status);

	cr_expect_str_eq(
	    json_string_value(json_object_get(json_object_get(j, "error"), "message")),
	    "unknown field 'when' (POST /vms/0/snapshot takes: dir, kind, base, keep)");
	cr_expect_eq(status, 400);
	json_decref(j);
}

Test(api, console_gives_the_last_n_lines_as_strings)
{
	json_t *j, *lines;

	j = ok("GET", "/vms/0/console?lines=3", NULL, 200);
	lines = json_object_get(j, "lines");
	cr_assert_eq(json_array_size(lines), 3);
	cr_expect_str_eq(json_string_value(json_array_get(lines, 0)), "line 48");
	cr_expect_str_eq(json_string_value(json_array_get(lines, 2)), "line 50");
	json_decref(j);
	j = ok("GET", "/vms/0/console", NULL, 200);
	cr_expect_eq(json_array_size(json_object_get(j, "lines")), 20, "the default");
	json_decref(j);
	/* Bytes that are not UTF-8 become '?', a CR before the LF goes. */
	j = ok("GET", "/vms/1/console?lines=1", NULL, 200);
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(j, "lines"), 0)),
			 "bad ?? byte");
	json_decref(j);
	fails("GET", "/vms/0/console?lines=0", NULL, 400, "out_of_range");
	fails("GET", "/vms/0/console?lines=1001", NULL, 400, "out_of_range");
	fails("GET", "/vms/0/console?lines=-1", NULL, 400, "bad_query");
	fails("GET", "/vms/0/console?lines=%201", NULL, 400, "bad_query");
	fails("GET", "/vms/0/console?lines=abc", NULL, 400, "bad_query");
	fails("GET", "/vms/0/console?lines", NULL, 400, "bad_query");
	fails("GET", "/vms/0/console?lines=2&lines=3", NULL, 400, "bad_query");
	fails("GET", "/vms/0/console?tail=2", NULL, 400, "bad_query");
	fails("GET", "/vms/3/console", NULL, 404, "no_such_vm");
}

Test(api, family_gives_the_vm_count_and_the_memory)
{
	json_t *j, *m;

	fake.vm[1].state = API_VM_STOPPED;
	j = ok("GET", "/family", NULL, 200);
	cr_expect_eq(json_integer_value(json_object_get(j, "vms")), 2);
	cr_expect_eq(json_integer_value(json_object_get(j, "running")), 1);
	m = json_object_get(j, "memory");
	cr_expect_eq(json_integer_value(json_object_get(m, "frames_used")), 5000);
	cr_expect_eq(json_integer_value(json_object_get(m, "bytes_resident")), 5000 * 4096);
	cr_expect(json_is_null(json_object_get(m, "vmas")));
	cr_expect_eq(json_integer_value(json_object_get(m, "cow_copies")), 700);
	cr_expect_eq(json_integer_value(json_object_get(m, "pinned_frames")), 3);
	cr_expect_eq(json_object_size(m), 8);
	json_decref(j);
}

Test(api, every_backend_call_runs_on_the_server_thread)
{
	json_decref(ok("GET", "/vms", NULL, 200));
	json_decref(ok("POST", "/vms/0/clone", NULL, 201));
	cr_assert(fake.thread_seen);
	cr_expect(!pthread_equal(fake.thread, pthread_self()));
	cr_expect_eq(atomic_load(&fake.foreign_calls), 0);
}

/* ---- paths, methods, ids ------------------------------------------------------------------ */

Test(api, unknown_paths_and_ids_are_404)
{
	fails("GET", "/", NULL, 404, "not_found");
	fails("GET", "/vm", NULL, 404, "not_found");
	fails("GET", "/vms/", NULL, 404, "not_found");
	fails("GET", "/vms/0/", NULL, 404, "not_found");
	fails("POST", "/vms//pause", NULL, 404, "not_found");
	fails("POST", "/vms/0/pause/now", NULL, 404, "not_found");
	fails("GET", "/VMS", NULL, 404, "not_found");
	fails("GET", "/vms/2", NULL, 404, "no_such_vm");
	fails("GET", "/vms/01", NULL, 404, "no_such_vm");
	fails("GET", "/vms/-1", NULL, 404, "no_such_vm");
	fails("GET", "/vms/abc", NULL, 404, "no_such_vm");
	fails("GET", "/vms/4294967296", NULL, 404, "no_such_vm");
	fails("GET", "/vms/99999999999999999999999", NULL, 404, "no_such_vm");
	fails("POST", "/vms/4294967295/kill", NULL, 404, "no_such_vm");
	/* The path is percent-decoded first: %30 is '0'. */
	json_decref(ok("GET", "/vms/%30", NULL, 200));
}

Test(api, a_wrong_method_is_405_with_allow)
{
	static const struct {
		const char *method, *path, *allow;
	} cases[] = {
		{ "POST", "/vms", "GET" },
		{ "DELETE", "/vms/0", "GET" },
		{ "GET", "/vms/0/pause", "POST" },
		{ "PUT", "/vms/0/clone", "POST" },
		{ "GET", "/vms/0/snapshot", "POST" },
		{ "POST", "/vms/0/console", "GET" },
		{ "PATCH", "/family", "GET" },
		{ "HEAD", "/version", "GET" },
		{ "OPTIONS", "/vms", "GET" },
	};
	char req[256], buf[4096], want[64], code[64];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", cases[i].method,
			 cases[i].path);
		cr_assert_gt(raw(req, strlen(req), buf, sizeof(buf)), 0, "%s", req);
		cr_expect_eq(status_of(buf), 405, "%s: %s", req, buf);
		snprintf(want, sizeof(want), "\r\nAllow: %s\r\n", cases[i].allow);
		cr_expect(strcasestr(buf, want) != NULL, "%s: no '%s' in %s", req, want, buf);
		/* HEAD has no body, by HTTP's rule. */
		if (strcmp(cases[i].method, "HEAD"))
			cr_expect_str_eq(error_code_of(buf, code, sizeof(code)),
					 "method_not_allowed", "%s", req);
	}
}

/*
 * libmicrohttpd's own refusal, sent before our handler sees the request (a
 * malformed request line, header or chunk): a 4xx/5xx that closes the
 * connection, with its HTML body (0.9.75 sends its header block twice).
 */
static bool is_mhd_refusal(const char *buf)
{
	const char *b = body_of(buf);
	unsigned int st = status_of(buf);

	return st >= 400 && strstr(buf, "\r\nConnection: close\r\n") && b &&
	       (!strncmp(b, "<html>", 6) || !strncmp(b, "HTTP/1.1 ", 9));
}

/* ---- the malformed-request corpus -------------------------------------------------------- */

struct bad_request {
	const char *name;
	const char *req; /* raw bytes; @len if it holds a NUL */
	size_t len;
	unsigned int status; /* 0: the server may close without answering */
	const char *code; /* the JSON error code; NULL: libmicrohttpd answers itself */
};

#define POSTB(path, body)                                                                         \
	"POST " path " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " \
	"%zu\r\n\r\n" body

#define NUL_REQ "GET /vms\0/0 HTTP/1.1\r\nHost: x\r\n\r\n"

static const struct bad_request corpus[] = {
	{ "truncated JSON", POSTB("/vms/0/clone", "{\"count\":"), 0, 400, "bad_json" },
	{ "trailing garbage", POSTB("/vms/0/clone", "{\"count\":1} x"), 0, 400, "bad_json" },
	{ "two objects", POSTB("/vms/0/clone", "{}{}"), 0, 400, "bad_json" },
	{ "a bare number", POSTB("/vms/0/clone", "3"), 0, 400, "bad_json" },
	{ "a string body", POSTB("/vms/0/clone", "\"x\""), 0, 400, "bad_json" },
	{ "not UTF-8", POSTB("/vms/0/snapshot", "{\"dir\":\"\xff\"}"), 0, 400, "bad_json" },
	{ "single quotes", POSTB("/vms/0/clone", "{'count':1}"), 0, 400, "bad_json" },
	{ "a comment", POSTB("/vms/0/clone", "{/*x*/\"count\":1}"), 0, 400, "bad_json" },
	{ "nested unknown", POSTB("/vms/0/clone", "{\"count\":1,\"x\":{\"y\":[]}}"), 0, 400,
	  "unknown_field" },
	{ "unknown field on pause", POSTB("/vms/0/pause", "{\"now\":true}"), 0, 400,
	  "unknown_field" },
	{ "array on kill", POSTB("/vms/0/kill", "[]"), 0, 400, "wrong_type" },
	{ "object count", POSTB("/vms/0/clone", "{\"count\":{}}"), 0, 400, "wrong_type" },
	{ "array dir", POSTB("/vms/0/snapshot", "{\"dir\":[\"/a\"]}"), 0, 400, "wrong_type" },
	{ "GET with a body", "GET /vms HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 0, 400,
	  "unexpected_body" },
	{ "query on /vms", "GET /vms?all=1 HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400, "bad_query" },
	{ "too many query args",
	  "GET /vms/0/console?a&b&c&d&e&f&g&h&i&j HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400,
	  "bad_query" },
	{ "unknown path", "GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 0, 404, "not_found" },
	{ "dot-dot path", "GET /vms/../family HTTP/1.1\r\nHost: x\r\n\r\n", 0, 404, "not_found" },
	{ "a declared huge body",
	  "POST /vms/0/clone HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{", 0, 413,
	  "body_too_large" },
	{ "a huge Content-Length",
	  "POST /vms/0/clone HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n"
	  "\r\n",
	  0, 0, NULL },
	/* libmicrohttpd ends the path at the NUL: GET /vms, answered. */
	{ "a NUL in the path", NUL_REQ, sizeof(NUL_REQ) - 1, 200, NULL },
	{ "not HTTP", "hello\r\n\r\n", 0, 0, NULL },
	{ "HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, 0, NULL },
	{ "no Host in HTTP/1.1", "GET /vms HTTP/1.1\r\n\r\n", 0, 400, "bad_request" },
	{ "HTTP/1.0 needs no Host", "GET /version HTTP/1.0\r\n\r\n", 0, 200, NULL },
	{ "a bad chunk size",
	  "POST /vms/0/clone HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, 0,
	  NULL },
};

/* Fill "%zu" in @c->req with its body's length. */
static size_t render(const struct bad_request *c, char *out, size_t cap)
{
	const char *body;

	if (c->len) {
		memcpy(out, c->req, c->len);
		return c->len;
	}
	if (!strstr(c->req, "%zu"))
		return (size_t)snprintf(out, cap, "%s", c->req);
	body = strstr(c->req, "\r\n\r\n") + 4;
	return (size_t)snprintf(out, cap, c->req, strlen(body));
}

Test(api, every_malformed_request_gets_its_json_error_or_a_close)
{
	char req[1024], buf[8192], code[64];
	size_t i, n;
	long got;

	for (i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
		const struct bad_request *c = &corpus[i];

		n = render(c, req, sizeof(req));
		got = raw(req, n, buf, sizeof(buf));
		cr_assert_geq(got, 0, "%s: neither an answer nor a close", c->name);
		if (c->code) {
			cr_expect_eq(status_of(buf), c->status, "%s: %s", c->name, buf);
			cr_expect_str_eq(error_code_of(buf, code, sizeof(code)), c->code, "%s: %s",
					 c->name, buf);
		} else if (c->status) {
			cr_expect_eq(status_of(buf), c->status, "%s: %s", c->name, buf);
		} else if (got) {
			/* libmicrohttpd's own refusal: a 4xx/5xx, closed. */
			cr_expect(is_mhd_refusal(buf), "%s: %s", c->name, buf);
		}
	}
	/* Nothing reached the backend's clone, and the server still answers. */
	cr_expect_eq(fake.n, 2);
	json_decref(ok("GET", "/vms", NULL, 200));
}

Test(api, a_chunked_body_over_the_cap_is_413)
{
	static char chunk[16 * 1024];
	char head[256], buf[4096], code[64];
	int fd, i;

	memset(chunk, ' ', sizeof(chunk));
	fd = connect_sock();
	snprintf(head, sizeof(head),
		 "POST /vms/0/clone HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	send_all(fd, head, strlen(head));
	/* 5 x 16 KiB of spaces (valid JSON whitespace) is more than 64 KiB. */
	for (i = 0; i < 5; i++) {
		snprintf(head, sizeof(head), "%zx\r\n", sizeof(chunk));
		send_all(fd, head, strlen(head));
		send_all(fd, chunk, sizeof(chunk));
		send_all(fd, "\r\n", 2);
	}
	send_all(fd, "0\r\n\r\n", 5);
	cr_assert_gt(read_until_eof(fd, buf, sizeof(buf), 10000), 0);
	close(fd);
	cr_expect_eq(status_of(buf), 413, "%s", buf);
	cr_expect_str_eq(error_code_of(buf, code, sizeof(code)), "body_too_large");
	cr_expect_eq(fake.n, 2);
}

Test(api, an_endless_chunked_body_is_cut_off)
{
	static char chunk[64 * 1024];
	char head[64], buf[4096];
	uint64_t t0 = now_ms();
	int fd, i;

	memset(chunk, ' ', sizeof(chunk));
	fd = connect_sock();
	snprintf(head, sizeof(head), "POST /vms/0/clone HTTP/1.1\r\nHost: x\r\n");
	send_all(fd, head, strlen(head));
	send_all(fd, "Transfer-Encoding: chunked\r\n\r\n", 30);
	/* 64 MiB offered; the server closes after 16 x 64 KiB dropped, and send fails. */
	for (i = 0; i < 1024; i++) {
		snprintf(head, sizeof(head), "%zx\r\n", sizeof(chunk));
		if (send(fd, head, strlen(head), MSG_NOSIGNAL) < 0 ||
		    send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0 ||
		    send(fd, "\r\n", 2, MSG_NOSIGNAL) < 0)
			break;
	}
	cr_expect_lt(i, 1024, "the whole 64 MiB was taken");
	cr_expect_geq(read_until_eof(fd, buf, sizeof(buf), 5000), 0);
	close(fd);
	cr_expect_eq(fake.n, 2);
	cr_log_info("cut off after %d chunks, %llu ms", i, (unsigned long long)(now_ms() - t0));
	json_decref(ok("GET", "/vms", NULL, 200));
}

/*
 * A client that sends its whole body before reading: a reply decided from
 * the headers (here 413, the declared length; it comes before the path's
 * 404) waits until the body is read, else the close would reset the
 * connection under the client's writes and lose the reply.
 */
Test(api, a_refused_request_is_answered_after_its_body_is_read)
{
	size_t blen = 512 * 1024, hl, sent;
	char *req = malloc(blen + 256), buf[4096], code[64];
	ssize_t w;
	int fd;

	cr_assert_not_null(req);
	hl = (size_t)snprintf(
	    req, 256, "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", blen);
	memset(req + hl, ' ', blen);
	fd = connect_sock();
	/*
	 * Larger than the socket's buffers: all of it goes only if the server
	 * reads it.  A client like curl gives up at the first failed write
	 * (EPIPE) and never reads the answer: every byte must go.
	 */
	for (sent = 0; sent < hl + blen; sent += (size_t)w) {
		w = send(fd, req + sent, hl + blen - sent, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			w = 0;
		cr_assert_geq(w, 0, "send after %zu bytes: %s", sent, strerror(errno));
	}
	free(req);
	cr_assert_gt(read_until_eof(fd, buf, sizeof(buf), 10000), 0, "no answer");
	close(fd);
	cr_expect_eq(status_of(buf), 413, "%s", buf);
	cr_expect_str_eq(error_code_of(buf, code, sizeof(code)), "body_too_large");
}

Test(api, a_body_at_the_cap_is_read_whole)
{
	size_t cap = API_DEFAULT_MAX_BODY, blen;
	char *req, *buf = malloc(4096), code[64];
	int hl;

	req = malloc(cap + 256);
	cr_assert(req && buf);
	/* {"count":1} padded with spaces to exactly the cap. */
	hl = snprintf(req, 256,
		      "POST /vms/0/clone HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", cap);
	blen = cap;
	memset(req + hl, ' ', blen);
	memcpy(req + hl, "{\"count\":1}", 11);
	cr_assert_gt(raw(req, (size_t)hl + blen, buf, 4096), 0);
	cr_expect_eq(status_of(buf), 201, "%s", buf);
	/* One byte more: 413. */
	hl = snprintf(req, 256,
		      "POST /vms/0/clone HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
		      cap + 1);
	memset(req + hl, ' ', cap + 1);
	memcpy(req + hl, "{\"count\":1}", 11);
	cr_assert_gt(raw(req, (size_t)hl + cap + 1, buf, 4096), 0);
	cr_expect_eq(status_of(buf), 413, "%s", buf);
	cr_expect_str_eq(error_code_of(buf, code, sizeof(code)), "body_too_large");
	free(req);
	free(buf);
}

Test(api, a_header_flood_is_refused_and_the_server_keeps_serving)
{
	size_t cap = 200 * 1024, n = 0;
	char *req = malloc(cap + 64), buf[4096];
	long got;

	cr_assert_not_null(req);
	n += (size_t)sprintf(req, "GET /vms HTTP/1.1\r\nHost: x\r\n");
	while (n < cap)
		n += (size_t)sprintf(req + n, "X-Flood-%zu: %s\r\n", n, "aaaaaaaaaaaaaaaaaaaa");
	n += (size_t)sprintf(req + n, "\r\n");
	got = raw(req, n, buf, sizeof(buf));
	free(req);
	cr_assert_geq(got, 0);
	/* libmicrohttpd's own 431 (headers over its memory), closed. */
	cr_expect_eq(status_of(buf), 431, "%s", buf);
	cr_expect(is_mhd_refusal(buf), "%s", buf);
	json_decref(ok("GET", "/vms", NULL, 200));
}

/* ---- curl --unix-socket --------------------------------------------------------------------- */

/* Run curl on the socket: its output (body, then the status on the last line). */
static json_t *curl(const char *args, unsigned int *status)
{
	char cmd[1024], out[16384], *last;
	size_t n;
	FILE *p;
	json_t *j;

	snprintf(cmd, sizeof(cmd),
		 "curl -sS --max-time 10 --unix-socket '%s' -w '\\n%%{http_code}' %s", sock, args);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	cr_assert_eq(pclose(p), 0, "%s: %s", cmd, out);
	last = strrchr(out, '\n');
	cr_assert_not_null(last, "%s", out);
	*status = (unsigned int)strtoul(last + 1, NULL, 10);
	*last = '\0';
	j = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "%s: not JSON: %s", cmd, out);
	return j;
}

Test(api, curl_drives_every_kind_of_call)
{
	unsigned int status;
	json_t *j;

	if (system("curl --version >/dev/null 2>&1"))
		cr_skip_test("no curl (scripts/deps.sh installs it)");
	j = curl("http://localhost/vms", &status);
	cr_expect_eq(status, 200);
	cr_expect_eq(json_array_size(json_object_get(j, "vms")), 2);
	json_decref(j);
	j = curl("-X POST -d '{\"count\":2}' http://localhost/vms/0/clone", &status);
	cr_expect_eq(status, 201);
	cr_expect_eq(json_array_size(json_object_get(j, "ids")), 2);
	json_decref(j);
	j = curl("-X POST http://localhost/vms/3/pause", &status);
	cr_expect_eq(status, 200);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state")), "paused");
	json_decref(j);
	j = curl("'http://localhost/vms/0/console?lines=2'", &status);
	cr_expect_eq(status, 200);
	cr_expect_eq(json_array_size(json_object_get(j, "lines")), 2);
	json_decref(j);
	j = curl("http://localhost/family", &status);
	cr_expect_eq(status, 200);
	cr_expect_eq(json_integer_value(json_object_get(j, "vms")), 4);
	json_decref(j);
	/* An error through curl: JSON too. */
	j = curl("-X POST -d '{\"count\":\"x\"}' http://localhost/vms/0/clone", &status);
	cr_expect_eq(status, 400);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
			 "wrong_type");
	json_decref(j);
	/* 100 KiB with curl's Expect: 100-continue: the 413 comes before the body. */
	{
		char path[200], args[300];
		FILE *f;
		int i;

		snprintf(path, sizeof(path), "%s/big.json", dir);
		f = fopen(path, "w");
		cr_assert_not_null(f);
		for (i = 0; i < 100 * 1024; i++)
			fputc(' ', f);
		fputs("{}", f);
		fclose(f);
		/* With Expect: 100-continue the 413 comes before the body is sent. */
		snprintf(args, sizeof(args),
			 "-H 'Expect: 100-continue' -X POST --data-binary @%s "
			 "http://localhost/vms/0/clone",
			 path);
		j = curl(args, &status);
		cr_expect_eq(status, 413);
		cr_expect_str_eq(
		    json_string_value(json_object_get(json_object_get(j, "error"), "code")),
		    "body_too_large");
		json_decref(j);
		/* Without (curl asks only past 1 MiB): the body is read and dropped first. */
		snprintf(args, sizeof(args),
			 "-H 'Expect:' -X POST --data-binary @%s http://localhost/vms/0/clone",
			 path);
		j = curl(args, &status);
		unlink(path);
	}
	cr_expect_eq(status, 413);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
			 "body_too_large");
	json_decref(j);
}

/* ---- a deterministic fuzz loop over the parser boundary ---------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: the same sequence on every run. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static const char *const seeds[] = {
	"GET /vms HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /vms/1 HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /vms/0/console?lines=5 HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST /vms/0/clone HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"count\":1}",
	"POST /vms/1/snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: 29\r\n\r\n"
	"{\"dir\":\"/tmp/a\",\"kind\":\"full\"}",
	"POST /vms/0/snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: 58\r\n\r\n"
	"{\"dir\":\"/tmp/b\",\"kind\":\"diff\",\"base\":\"/tmp/a\",\"keep\":true}",
	"POST /vms/1/pause HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
	"POST /vms/1/resume HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
	"chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
	"GET /family HTTP/1.1\r\nHost: x\r\n\r\n",
};

static const char *const splices[] = {
	"\r\n",
	"\r\n\r\n",
	"{",
	"}",
	"\"",
	":",
	"%",
	"%00",
	"\\u0000",
	"/",
	"?",
	"&",
	"=",
	"Content-Length: 99999999\r\n",
	"Transfer-Encoding: chunked\r\n",
	"\xff",
	"\0",
	" ",
	"HTTP/1.0",
	"9999999999999999999999",
	"-1",
	"[",
	"null",
	"/../",
};

/* One input: a mutated seed, or (one in eight) random bytes. */
static size_t mutate(char *out, size_t cap)
{
	size_t n, i, k, pos, m;
	const char *s;

	if (rnd() % 8 == 0) {
		n = rnd() % 512;
		for (i = 0; i < n; i++)
			out[i] = (char)rnd();
		return n;
	}
	s = seeds[rnd() % (sizeof(seeds) / sizeof(seeds[0]))];
	n = strlen(s);
	memcpy(out, s, n);
	k = 1 + rnd() % 4;
	for (i = 0; i < k && n; i++) {
		pos = rnd() % n;
		switch (rnd() % 5) {
		case 0: /* flip a byte */
			out[pos] = (char)rnd();
			break;
		case 1: /* cut */
			n = pos;
			break;
		case 2: /* delete a run */
			m = rnd() % (n - pos);
			memmove(out + pos, out + pos + m, n - pos - m);
			n -= m;
			break;
		default: { /* splice in a token */
			const char *t = splices[rnd() % (sizeof(splices) / sizeof(splices[0]))];
			size_t tl = strlen(t) ? strlen(t) : 1;

			if (n + tl >= cap)
				break;
			memmove(out + pos + tl, out + pos, n - pos);
			memcpy(out + pos, t, tl);
			n += tl;
			break;
		}
		}
	}
	return n;
}

/* What the fuzz loop saw: proof that it reaches past the HTTP layer. */
struct fuzz_seen {
	unsigned int closed, mhd, ok, json_errors, bad_json;
};

/* Every answer in @buf must be HTTP: ours with a JSON body, MHD's refusals closed. */
static void check_answer(const char *buf, long got, unsigned int iter, struct fuzz_seen *seen)
{
	const char *body, *code;
	json_t *j;

	cr_assert_geq(got, 0, "iteration %u: the server neither answered nor closed", iter);
	if (!got) {
		seen->closed++;
		return;
	}
	cr_assert(status_of(buf) >= 100, "iteration %u: not HTTP: %.200s", iter, buf);
	if (is_mhd_refusal(buf)) {
		seen->mhd++;
		return;
	}
	body = body_of(buf);
	cr_assert_not_null(body, "iteration %u: no end of headers: %.300s", iter, buf);
	j = json_loads(body, JSON_DISABLE_EOF_CHECK, NULL);
	cr_assert_not_null(j, "iteration %u: the body is not JSON: %.300s", iter, buf);
	if (status_of(buf) >= 400) {
		code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
		cr_assert_not_null(code, "iteration %u: an error without error.code: %.300s", iter,
				   buf);
		seen->json_errors++;
		seen->bad_json += !strcmp(code, "bad_json");
	} else {
		seen->ok++;
	}
	json_decref(j);
}

Test(api, fuzzed_requests_never_crash_and_get_http_or_a_close)
{
	static char in[4096], buf[65536];
	struct fuzz_seen seen = { 0 };
	unsigned int iter, max = 20000;
	uint64_t t0 = now_ms();
	size_t n;
	long got;

	rng_state = 0x666f726b766dULL;
	/* A few seconds at most: the machine is shared (the sequence stays the same). */
	for (iter = 0; iter < max && now_ms() - t0 < 3000; iter++) {
		n = mutate(in, sizeof(in));
		got = raw(in, n, buf, sizeof(buf) - 1);
		check_answer(buf, got, iter, &seen);
		/* The fake family stays small whatever the fuzzer clones. */
		if (fake.n > 20) {
			pthread_mutex_lock(&fake.lock);
			fake.n = 2;
			pthread_mutex_unlock(&fake.lock);
		}
	}
	cr_log_info("fuzz: %u requests in %llu ms: %u closed, %u refused by MHD, %u answered "
		    "2xx, %u JSON errors (%u bad_json)",
		    iter, (unsigned long long)(now_ms() - t0), seen.closed, seen.mhd, seen.ok,
		    seen.json_errors, seen.bad_json);
	cr_expect_geq(iter, 500, "too few iterations to mean anything");
	/* Each layer was reached: MHD's parser, our JSON parser, the backend. */
	cr_expect_gt(seen.mhd, 0);
	cr_expect_gt(seen.bad_json, 0);
	cr_expect_gt(seen.ok, 0);
	/* Still serving, still one thread. */
	json_decref(ok("GET", "/vms", NULL, 200));
	cr_expect_eq(atomic_load(&fake.foreign_calls), 0);
}

/* ---- concurrency --------------------------------------------------------------------------- */

#define CLIENTS 6
#define ROUNDS 40

static _Atomic unsigned int clones_made, bad_answers;

static void *client_thread(void *arg)
{
	uintptr_t me = (uintptr_t)arg;
	char err[256], *resp;
	unsigned int status, i;
	size_t len;
	json_t *j;

	for (i = 0; i < ROUNDS; i++) {
		bool clone = (i + me) % 4 == 0;
		const char *path = clone ? "/vms/0/clone" : (i % 2 ? "/vms" : "/vms/0");

		if (api_client_call(sock, clone ? "POST" : "GET", path, NULL, &status, &resp, &len,
				    err, sizeof(err))) {
			atomic_fetch_add(&bad_answers, 1);
			continue;
		}
		j = json_loadb(resp, len, 0, NULL);
		if (!j || status != (clone ? 201u : 200u) ||
		    (clone && json_array_size(json_object_get(j, "ids")) != 1))
			atomic_fetch_add(&bad_answers, 1);
		else if (clone)
			atomic_fetch_add(&clones_made, 1);
		json_decref(j);
		free(resp);
		/* Stay under the fake's size: each clone request is one VM. */
	}
	return NULL;
}

Test(api, concurrent_clients_query_and_clone_at_once)
{
	pthread_t t[CLIENTS];
	uintptr_t i;
	json_t *j;

	atomic_store(&clones_made, 0);
	atomic_store(&bad_answers, 0);
	/* Each client clones ROUNDS/4 times: 6 * 10 + 2 > FAKE_MAX_VMS, so clone VM 0 ids mod. */
	for (i = 0; i < CLIENTS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, client_thread, (void *)i), 0);
	for (i = 0; i < CLIENTS; i++)
		pthread_join(t[i], NULL);
	/* Every clone got its own id until the family was full (409, counted bad). */
	j = ok("GET", "/vms", NULL, 200);
	cr_expect_eq(json_array_size(json_object_get(j, "vms")), 2 + atomic_load(&clones_made));
	json_decref(j);
	cr_expect_eq(atomic_load(&clones_made), FAKE_MAX_VMS - 2);
	cr_expect_eq(atomic_load(&bad_answers), CLIENTS * ROUNDS / 4 - (FAKE_MAX_VMS - 2),
		     "only the clones past the family's size fail");
	cr_expect_eq(atomic_load(&fake.foreign_calls), 0, "one thread calls the backend");
	cr_expect_eq(atomic_load(&fake.overlaps), 0, "one call at a time");
}

Test(api, a_slow_client_does_not_block_the_others_and_is_closed_at_the_timeout)
{
	const char half[] = "POST /vms/0/clone HTTP/1.1\r\nHost: x\r\nContent-Len";
	struct pollfd p;
	uint64_t t0;
	char buf[256];
	int fd, i;

	/* The fixture's server closes connections idle for 2 s. */
	fd = connect_sock();
	send_all(fd, half, sizeof(half) - 1);
	t0 = now_ms();
	for (i = 0; i < 20; i++)
		json_decref(ok("GET", "/vms/0", NULL, 200));
	/*
	 * Served while the slow one stalls: it is still open and unanswered
	 * (had the 20 calls waited for it, its idle timeout would have closed
	 * it first, and poll() would see the EOF).
	 */
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	cr_expect_eq(poll(&p, 1, 0), 0, "the slow client got something already");
	/* Then the server gives up on it: EOF, no answer, within the timeout (+ slack). */
	cr_expect_eq(read_until_eof(fd, buf, sizeof(buf), 6000), 0);
	cr_expect_geq(now_ms() - t0, 1000, "closed before its idle timeout");
	close(fd);
	cr_expect_eq(fake.n, 2);
}

/* ---- limits ------------------------------------------------------------------------------- */

static void wait_open(unsigned int n)
{
	struct api_server_stats st;
	uint64_t t0 = now_ms();

	do {
		api_server_get_stats(srv, &st);
		if (st.open == n)
			return;
		usleep(1000);
	} while (now_ms() - t0 < 5000);
	cr_assert_fail("%u connections open, not %u", st.open, n);
}

Test(api_limits, past_the_soft_limit_requests_get_503_past_the_hard_one_they_wait)
{
	char buf[4096], code[64];
	const char req[] = "GET /vms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct api_server_stats st;
	struct pollfd p;
	int idle[8], fd, i;

	start_with(4, 10);
	/* 4 idle connections fill the soft limit. */
	for (i = 0; i < 4; i++)
		idle[i] = connect_sock();
	wait_open(4);
	/* The 5th gets a JSON 503 and is closed. */
	cr_assert_gt(raw(req, sizeof(req) - 1, buf, sizeof(buf)), 0);
	cr_expect_eq(status_of(buf), 503, "%s", buf);
	cr_expect_str_eq(error_code_of(buf, code, sizeof(code)), "too_many_connections");
	/*
	 * At the hard limit (8) libmicrohttpd stops accepting: the 9th waits in
	 * the socket's backlog, unanswered, until a connection closes.
	 */
	for (i = 4; i < 8; i++)
		idle[i] = connect_sock();
	wait_open(8);
	fd = connect_sock();
	send_all(fd, req, sizeof(req) - 1);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	cr_expect_eq(poll(&p, 1, 300), 0, "answered past the hard limit");
	api_server_get_stats(srv, &st);
	cr_expect_eq(st.open, 8);
	cr_expect_eq(st.rejected, 1);
	/*
	 * Close one idle connection: the waiting one is accepted in its slot
	 * and answered, with a 503 (8 open, over the soft limit).
	 */
	close(idle[0]);
	buf[0] = '\0';
	cr_expect_gt(read_until_eof(fd, buf, sizeof(buf), 5000), 0);
	cr_expect_eq(status_of(buf), 503, "%s", buf);
	cr_expect_str_eq(error_code_of(buf, code, sizeof(code)), "too_many_connections");
	close(fd);
	/* Close the rest: served again. */
	for (i = 1; i < 8; i++)
		close(idle[i]);
	wait_open(0);
	json_decref(ok("GET", "/vms", NULL, 200));
}

/* ---- the socket's life --------------------------------------------------------------------- */

Test(api_socket, the_socket_has_mode_0600_and_goes_at_stop)
{
	struct stat st;

	start_with(0, 0);
	cr_assert_eq(lstat(sock, &st), 0);
	cr_expect(S_ISSOCK(st.st_mode));
	cr_expect_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
	cr_expect_str_eq(api_server_path(srv), sock);
	json_decref(ok("GET", "/version", NULL, 200));
	api_server_stop(srv);
	srv = NULL;
	cr_expect_neq(lstat(sock, &st), 0, "the socket is still there");
	cr_expect_eq(errno, ENOENT);
}

Test(api_socket, the_mode_is_0600_whatever_the_umask)
{
	struct stat st;
	mode_t old = umask(0);

	start_with(0, 0);
	umask(old);
	cr_assert_eq(lstat(sock, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600, "mode %o with umask 0", st.st_mode & 07777);
}

Test(api_socket, a_path_that_is_not_a_socket_is_refused_and_left_intact)
{
	struct api_server_config cfg = { .path = sock, .ops = &fake_ops, .ctx = &fake };
	char err[256], data[32] = "";
	struct api_server *s = NULL;
	int fd;

	fd = open(sock, O_CREAT | O_WRONLY | O_EXCL, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "keep me\n", 8), 8);
	close(fd);
	cr_expect_eq(api_server_start(&cfg, &s, err, sizeof(err)), -EEXIST);
	cr_expect(strstr(err, "not a socket") != NULL, "%s", err);
	fd = open(sock, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_expect_eq(read(fd, data, sizeof(data) - 1), 8);
	close(fd);
	cr_expect_str_eq(data, "keep me\n");
	unlink(sock);
	/* A directory, and a symlink to a socket, too. */
	cr_assert_eq(mkdir(sock, 0700), 0);
	cr_expect_eq(api_server_start(&cfg, &s, err, sizeof(err)), -EEXIST);
	cr_expect_eq(rmdir(sock), 0, "the directory is gone");
	cr_assert_eq(symlink("/nonexistent", sock), 0);
	cr_expect_eq(api_server_start(&cfg, &s, err, sizeof(err)), -EEXIST);
	cr_expect_eq(unlink(sock), 0, "the symlink is gone");
}

Test(api_socket, a_live_socket_is_refused_and_a_stale_one_replaced)
{
	struct api_server_config cfg = { .path = sock, .ops = &fake_ops, .ctx = &fake };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct api_server *second = NULL;
	char err[256];
	int fd;

	start_with(0, 0);
	cr_expect_eq(api_server_start(&cfg, &second, err, sizeof(err)), -EADDRINUSE);
	cr_expect(strstr(err, "listening") != NULL, "%s", err);
	/* The first one still serves. */
	json_decref(ok("GET", "/version", NULL, 200));
	api_server_stop(srv);
	srv = NULL;
	/* A stale socket: bound, never listened on (a crashed server's). */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, sock);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	start_with(0, 0);
	json_decref(ok("GET", "/version", NULL, 200));
}

Test(api_socket, stop_leaves_a_file_that_replaced_the_socket)
{
	char data[8] = "";
	int fd;

	start_with(0, 0);
	/* Someone removed our socket and put a file there: not ours to remove. */
	cr_assert_eq(unlink(sock), 0);
	fd = open(sock, O_CREAT | O_WRONLY, 0600);
	cr_assert_eq(write(fd, "x", 1), 1);
	close(fd);
	api_server_stop(srv);
	srv = NULL;
	fd = open(sock, O_RDONLY);
	cr_assert_geq(fd, 0, "the file was removed");
	cr_expect_eq(read(fd, data, 1), 1);
	close(fd);
	unlink(sock);
}

Test(api_socket, bad_configurations_are_refused)
{
	struct api_server_config cfg = { .path = sock, .ops = NULL };
	struct api_server *s = NULL;
	char err[256], longpath[200];

	cr_expect_eq(api_server_start(&cfg, &s, err, sizeof(err)), -EINVAL);
	cfg.ops = &fake_ops;
	cfg.path = "";
	cr_expect_eq(api_server_start(&cfg, &s, err, sizeof(err)), -EINVAL);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	cfg.path = longpath;
	cr_expect_eq(api_server_start(&cfg, &s, err, sizeof(err)), -ENAMETOOLONG);
	cfg.path = "/nonexistent-dir/api.sock";
	cr_expect_eq(api_server_start(&cfg, &s, err, sizeof(err)), -ENOENT, "%s", err);
	cr_expect_null(s);
}

/* ---- forkvm ctl -------------------------------------------------------------------------------- */

static char forkvm_bin[PATH_MAX];

/* build/tests/unit/test_api -> build/forkvm */
static void find_forkvm(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	cr_assert_gt(n, 0);
	self[n] = '\0';
	snprintf(forkvm_bin, sizeof(forkvm_bin), "%s/../../forkvm", dirname(self));
	if (access(forkvm_bin, X_OK))
		cr_skip_test("no %s (make all builds it)", forkvm_bin);
}

/* `forkvm ctl SOCK @args`: its exit status; @out gets stdout+stderr. */
static int ctl(const char *args, char *out, size_t cap)
{
	char cmd[PATH_MAX + 1024];
	size_t n;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' ctl '%s' %s 2>&1", forkvm_bin, sock, args);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	st = pclose(p);
	cr_assert(WIFEXITED(st), "%s", cmd);
	return WEXITSTATUS(st);
}

Test(api, ctl_prints_for_humans_and_json_and_fails_on_errors)
{
	char out[8192];
	json_t *j;

	find_forkvm();
	cr_expect_eq(ctl("list", out, sizeof(out)), 0, "%s", out);
	cr_expect(strstr(out, "ID    STATE") && strstr(out, "\n1     running  0"), "%s", out);
	cr_expect_eq(ctl("clone 0 2", out, sizeof(out)), 0, "%s", out);
	cr_expect_str_eq(out, "new VMs: 2 3\n");
	cr_expect_eq(ctl("pause 3", out, sizeof(out)), 0, "%s", out);
	cr_expect_str_eq(out, "VM 3: paused\n");
	cr_expect_eq(ctl("show 1", out, sizeof(out)), 0, "%s", out);
	cr_expect(strstr(out, "private_frames   101") && strstr(out, "vmas             -"), "%s",
		  out);
	cr_expect_eq(ctl("console 0 2", out, sizeof(out)), 0, "%s", out);
	cr_expect_str_eq(out, "line 49\nline 50\n");
	cr_expect_eq(ctl("family --json", out, sizeof(out)), 0, "%s", out);
	j = json_loads(out, 0, NULL);
	cr_expect_eq(json_integer_value(json_object_get(j, "vms")), 4, "%s", out);
	json_decref(j);
	/* An error answer: the message and status on stderr, exit 1. */
	cr_expect_eq(ctl("pause 3", out, sizeof(out)), 1, "%s", out);
	cr_expect(strstr(out, "the VM is paused already (HTTP 409, conflict)"), "%s", out);
	cr_expect_eq(ctl("snapshot 1 /tmp/s live", out, sizeof(out)), 1, "%s", out);
	cr_expect(strstr(out, "HTTP 501"), "%s", out);
	cr_expect_eq(ctl("snapshot 0 /tmp/c --kind live --keep", out, sizeof(out)), 0, "%s", out);
	cr_expect(!strncmp(out, "VM 0: live snapshot in /tmp/c (kept as a base)\n", 47), "%s", out);
	cr_expect(strstr(out, "\n  pages            812\n"), "%s", out);
	cr_expect_eq(ctl("snapshot 0 /tmp/c2 --kind diff --base /tmp/c", out, sizeof(out)), 0, "%s",
		     out);
	cr_expect(!strncmp(out, "VM 0: diff snapshot in /tmp/c2 of /tmp/c\n", 41), "%s", out);
	cr_expect_eq(ctl("snapshot 0 /tmp/c", out, sizeof(out)), 1, "%s", out);
	cr_expect(strstr(out, "(HTTP 409, exists)"), "%s", out);
	cr_expect_eq(ctl("snapshot 0 /tmp/c3 live --kind full", out, sizeof(out)), 2, "%s", out);
	cr_expect_eq(ctl("pause 0 --keep", out, sizeof(out)), 2, "%s", out);
	cr_expect_eq(ctl("snapshot 0 /tmp/c3 --kind", out, sizeof(out)), 2, "%s", out);
	cr_expect_eq(ctl("show 9 --json", out, sizeof(out)), 1, "%s", out);
	cr_expect(strstr(out, "\"no_such_vm\""), "%s", out);
	/* Usage errors: exit 2, nothing sent. */
	cr_expect_eq(ctl("show x", out, sizeof(out)), 2, "%s", out);
	cr_expect_eq(ctl("frobnicate 1", out, sizeof(out)), 2, "%s", out);
	cr_expect_eq(ctl("clone 0 two", out, sizeof(out)), 2, "%s", out);
	cr_expect_eq(fake.n, 4);
}

Test(api, ctl_without_a_server_exits_1_and_says_why)
{
	char out[1024];

	find_forkvm();
	api_server_stop(srv);
	srv = NULL;
	cr_expect_eq(ctl("list", out, sizeof(out)), 1, "%s", out);
	cr_expect(strstr(out, "No such file or directory"), "%s", out);
}

Test(api, forkvm_help_mentions_ctl)
{
	char cmd[PATH_MAX + 32], out[8192];
	size_t n;
	FILE *p;

	find_forkvm();
	snprintf(cmd, sizeof(cmd), "'%s' --help", forkvm_bin);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	cr_expect_eq(pclose(p), 0);
	cr_expect(strstr(out, "forkvm ctl SOCKET VERB"), "%s", out);
}

/* ---- docs/api.md: every example, run --------------------------------------------------------- */

/* docs/api.md from the current directory (make test runs at the top), else next to OUT. */
static FILE *open_doc(void)
{
	char self[PATH_MAX], path[PATH_MAX + 32];
	ssize_t n;
	FILE *f = fopen("docs/api.md", "r");

	if (f)
		return f;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	snprintf(path, sizeof(path), "%s/../../../docs/api.md", dirname(self));
	return fopen(path, "r");
}

/* Run one `$ curl ...` line with SOCK set; its output in @out. */
static void run_example(const char *cmdline, char *out, size_t cap)
{
	char cmd[4096 + 256];
	size_t n;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "SOCK='%s'; %s", sock, cmdline);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	pclose(p);
}

Test(api, every_curl_example_in_docs_api_md_gives_the_answer_shown)
{
	char line[4096], cmd[4096], want[16384], got[16384];
	bool in_sh = false, have_cmd = false;
	unsigned int examples = 0;
	FILE *f;

	if (system("curl --version >/dev/null 2>&1"))
		cr_skip_test("no curl (scripts/deps.sh installs it)");
	f = open_doc();
	cr_assert_not_null(f, "docs/api.md not found");
	want[0] = '\0';
	for (;;) {
		bool eof = !fgets(line, sizeof(line), f);
		bool ends = eof || !strncmp(line, "$ ", 2) || !strncmp(line, "```", 3);

		/* The example before this line is complete: run it, compare. */
		if (ends && have_cmd) {
			run_example(cmd, got, sizeof(got));
			cr_expect_str_eq(got, want, "docs/api.md: $ %s\ngot:  %swant: %s", cmd, got,
					 want);
			examples++;
			have_cmd = false;
		}
		if (eof)
			break;
		if (!strncmp(line, "```", 3)) {
			in_sh = !in_sh && !strncmp(line, "```sh", 5);
			continue;
		}
		if (!in_sh)
			continue;
		if (!strncmp(line, "$ ", 2)) {
			snprintf(cmd, sizeof(cmd), "%s", line + 2);
			cmd[strcspn(cmd, "\n")] = '\0';
			want[0] = '\0';
			have_cmd = true;
		} else if (have_cmd && strlen(want) + strlen(line) < sizeof(want)) {
			strcat(want, line);
		}
	}
	fclose(f);
	cr_expect_geq(examples, 15, "only %u examples found in docs/api.md", examples);
}

/* ---- HTTP details -------------------------------------------------------------------------------- */

Test(api, pipelined_requests_on_one_connection_get_their_answers_in_order)
{
	const char req[] = "GET /vms/0 HTTP/1.1\r\nHost: x\r\n\r\n"
			   "POST /vms/0/clone HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
			   "{\"count\":2}"
			   "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char buf[8192], *second, *third;

	cr_assert_gt(raw(req, sizeof(req) - 1, buf, sizeof(buf)), 0);
	cr_expect_eq(status_of(buf), 200, "%s", buf);
	second = strstr(buf + 1, "HTTP/1.1 ");
	cr_assert_not_null(second, "%s", buf);
	cr_expect_eq(status_of(second), 201, "%s", buf);
	cr_expect(strstr(second, "{\"ids\":[2,3]}"), "%s", buf);
	third = strstr(second + 1, "HTTP/1.1 ");
	cr_assert_not_null(third, "%s", buf);
	cr_expect_eq(status_of(third), 404, "%s", buf);
}

Test(api, expect_100_continue_gets_100_under_the_cap_and_413_over_it)
{
	const char head_ok[] = "POST /vms/0/clone HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
			       "Content-Length: 11\r\nConnection: close\r\n\r\n";
	const char head_big[] = "POST /vms/0/clone HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
				"Content-Length: 1000000\r\n\r\n";
	struct pollfd p;
	char buf[4096], code[64];
	ssize_t n;
	int fd;

	fd = connect_sock();
	send_all(fd, head_ok, sizeof(head_ok) - 1);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 5000), 1, "no 100 Continue");
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_expect_eq(status_of(buf), 100, "%s", buf);
	send_all(fd, "{\"count\":1}", 11);
	cr_assert_gt(read_until_eof(fd, buf, sizeof(buf), 5000), 0);
	close(fd);
	cr_expect(strstr(buf, "HTTP/1.1 201"), "%s", buf);
	/* Over the cap: the 413 instead of the 100, the body never sent. */
	fd = connect_sock();
	send_all(fd, head_big, sizeof(head_big) - 1);
	cr_assert_gt(read_until_eof(fd, buf, sizeof(buf), 5000), 0);
	close(fd);
	cr_expect_eq(status_of(buf), 413, "%s", buf);
	cr_expect_str_eq(error_code_of(buf, code, sizeof(code)), "body_too_large");
}

static void *slow_clone_client(void *arg)
{
	unsigned int *status = arg;
	char err[256], *resp = NULL;
	size_t len;

	/* An error (the server went away mid-call) leaves *status at 0. */
	if (api_client_call(sock, "POST", "/vms/0/clone", NULL, status, &resp, &len, err,
			    sizeof(err)))
		*status = 0;
	free(resp);
	return NULL;
}

Test(api, stop_waits_for_the_backend_call_in_progress)
{
	unsigned int status = 0;
	struct api_server_stats st;
	uint64_t t0;
	pthread_t t;

	fake.clone_delay_ms = 500;
	cr_assert_eq(pthread_create(&t, NULL, slow_clone_client, &status), 0);
	/* Wait until the clone call is inside the backend. */
	t0 = now_ms();
	while (!atomic_load(&fake.concurrent) && now_ms() - t0 < 5000)
		usleep(1000);
	cr_assert_eq(atomic_load(&fake.concurrent), 1, "the clone never reached the backend");
	api_server_get_stats(srv, &st);
	cr_expect_eq(st.open, 1);
	api_server_stop(srv);
	srv = NULL;
	/* The call finished before stop returned: nothing runs in the backend now. */
	cr_expect_eq(atomic_load(&fake.concurrent), 0);
	cr_expect_eq(fake.n, 3, "the clone was made");
	pthread_join(t, NULL);
	/* Its answer may or may not have left before the connection closed. */
	cr_expect(status == 0 || status == 201, "HTTP %u", status);
}

static unsigned int open_fds(void)
{
	unsigned int n = 0;
	int fd;

	for (fd = 0; fd < 4096; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

Test(api_socket, start_and_stop_leak_no_descriptor)
{
	unsigned int before, i;

	start_with(0, 0);
	json_decref(ok("GET", "/version", NULL, 200));
	api_server_stop(srv);
	srv = NULL;
	before = open_fds();
	for (i = 0; i < 20; i++) {
		start_with(0, 0);
		json_decref(ok("GET", "/vms", NULL, 200));
		api_server_stop(srv);
		srv = NULL;
	}
	cr_expect_eq(open_fds(), before);
}
