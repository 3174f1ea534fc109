// SPDX-License-Identifier: MIT
/*
 * api_latency: what the control API adds to a call, against a backend that
 * answers at once (a status call) or after a fixed time (a clone).
 *
 *   api_latency.echo_us             connect + 64-byte request + answer + close on a
 *                                   bare UNIX socket (the transport's floor)
 *   api_latency.status_us           GET /vms/0 through the API, a new connection
 *                                   per call (as curl and forkvm ctl do)
 *   api_latency.status_vs_echo.ratio
 *   api_latency.clone_us            POST /vms/0/clone whose backend sleeps CLONE_US
 *   api_latency.clone_inside_us     the backend's own time, measured inside
 *   api_latency.clone_overhead_us   clone_us - clone_inside_us
 *   api_latency.snapshot_us         POST /vms/0/snapshot (a JSON body of 4 fields to
 *                                   check) whose backend sleeps CLONE_US
 *   api_latency.snapshot_inside_us  the backend's own time
 *   api_latency.snapshot_overhead_us snapshot_us - snapshot_inside_us
 *
 * Medians of ROUNDS rounds of CALLS calls each.  No KVM needed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "vmm/api/api_server.h"
#include "vmm/api/ctl.h"

#define ROUNDS 5
#define CALLS 400
#define CLONE_CALLS 40
#define CLONE_US 2000.0

static double clone_inside_sum, snapshot_inside_sum;
static unsigned int next_id = 1;

static int b_get(void *ctx, uint32_t id, struct api_vm_info *info, struct api_vm_stats *st)
{
	if (id)
		return -ENOENT;
	*info = (struct api_vm_info){ .state = API_VM_RUNNING };
	*st = (struct api_vm_stats){ .pages = 32768, .vmas = API_STAT_NONE };
	return 0;
}

static int b_clone(void *ctx, uint32_t id, unsigned int count, uint32_t *ids, unsigned int *made,
		   char *err, size_t errlen)
{
	struct timespec ts = { 0, (long)(CLONE_US * 1000) };
	double t0 = now_us();

	/* A stand-in for machine_clone(): CLONE_US asleep (a busy loop would
	 * measure the machine's load, not the API). */
	nanosleep(&ts, NULL);
	ids[0] = next_id++;
	*made = 1;
	clone_inside_sum += now_us() - t0;
	return 0;
}

static int b_snapshot(void *ctx, uint32_t id, const struct api_snapshot_req *rq,
		      struct api_snapshot_result *res, char *err, size_t errlen)
{
	struct timespec ts = { 0, (long)(CLONE_US * 1000) };
	double t0 = now_us();

	/* A stand-in for machine_snapshot(), as b_clone() is for a clone. */
	nanosleep(&ts, NULL);
	*res = (struct api_snapshot_result){ .paused_us = 100,
					     .total_us = (uint64_t)CLONE_US,
					     .pages = 1000,
					     .disk_bytes = API_STAT_NONE };
	snapshot_inside_sum += now_us() - t0;
	return 0;
}

static const struct api_backend_ops ops = { .get = b_get,
					    .clone = b_clone,
					    .snapshot = b_snapshot };

static char sock[108], echo_sock[108];

/* The echo server: read one request, write 200 bytes, close. */
static void *echo_thread(void *arg)
{
	int lfd = (int)(intptr_t)arg, fd;
	char buf[512];

	while ((fd = accept(lfd, NULL, NULL)) >= 0) {
		if (read(fd, buf, sizeof(buf)) > 0) {
			memset(buf, 'x', 200);
			if (write(fd, buf, 200) < 0)
				perror("echo write");
		}
		close(fd);
	}
	return NULL;
}

static double echo_once(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char req[64], buf[512];
	double t0 = now_us();
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, echo_sock);
	memset(req, 'r', sizeof(req));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, req, sizeof(req)) != sizeof(req))
		perror("echo");
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return now_us() - t0;
}

static double call_body(const char *method, const char *path, const char *body)
{
	unsigned int status;
	char err[256], *resp;
	double t0 = now_us();
	size_t len;

	if (api_client_call(sock, method, path, body, &status, &resp, &len, err, sizeof(err)) ||
	    status >= 300) {
		fprintf(stderr, "api_latency: %s %s: %s (HTTP %u)\n", method, path, err, status);
		exit(1);
	}
	free(resp);
	return now_us() - t0;
}

static double call_once(const char *method, const char *path)
{
	return call_body(method, path, NULL);
}

int main(void)
{
	double echo[ROUNDS], status[ROUNDS], clone[ROUNDS], inside[ROUNDS], snap[ROUNDS],
	    snap_inside[ROUNDS], sum;
	const char *snap_body =
	    "{\"dir\":\"/var/tmp/snap1\",\"kind\":\"diff\",\"base\":\"/var/tmp/snap0\","
	    "\"keep\":true}";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct api_server_config cfg = { .ops = &ops };
	int rounds = bench_reps(ROUNDS), r, i, lfd;
	char dir[] = "/tmp/forkvm-api-bench-XXXXXX", err[256];
	struct api_server *s;
	pthread_t echo_t;

	if (!mkdtemp(dir))
		return 1;
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	snprintf(echo_sock, sizeof(echo_sock), "%s/echo.sock", dir);
	cfg.path = sock;
	if (api_server_start(&cfg, &s, err, sizeof(err))) {
		fprintf(stderr, "api_latency: %s\n", err);
		return 1;
	}
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, echo_sock);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 64) ||
	    pthread_create(&echo_t, NULL, echo_thread, (void *)(intptr_t)lfd)) {
		perror("api_latency: echo server");
		return 1;
	}
	for (r = 0; r < rounds; r++) {
		for (sum = 0, i = 0; i < CALLS; i++)
			sum += echo_once();
		echo[r] = sum / CALLS;
		for (sum = 0, i = 0; i < CALLS; i++)
			sum += call_once("GET", "/vms/0");
		status[r] = sum / CALLS;
		clone_inside_sum = 0;
		for (sum = 0, i = 0; i < CLONE_CALLS; i++)
			sum += call_once("POST", "/vms/0/clone");
		clone[r] = sum / CLONE_CALLS;
		inside[r] = clone_inside_sum / CLONE_CALLS;
		snapshot_inside_sum = 0;
		for (sum = 0, i = 0; i < CLONE_CALLS; i++)
			sum += call_body("POST", "/vms/0/snapshot", snap_body);
		snap[r] = sum / CLONE_CALLS;
		snap_inside[r] = snapshot_inside_sum / CLONE_CALLS;
	}
	printf("api_latency.echo_us: %.1f\n", median(echo, rounds));
	printf("api_latency.status_us: %.1f\n", median(status, rounds));
	printf("api_latency.status_vs_echo.ratio: %.2f\n",
	       median(status, rounds) / median(echo, rounds));
	printf("api_latency.clone_us: %.1f\n", median(clone, rounds));
	printf("api_latency.clone_inside_us: %.1f\n", median(inside, rounds));
	printf("api_latency.clone_overhead_us: %.1f\n",
	       median(clone, rounds) - median(inside, rounds));
	printf("api_latency.snapshot_us: %.1f\n", median(snap, rounds));
	printf("api_latency.snapshot_inside_us: %.1f\n", median(snap_inside, rounds));
	printf("api_latency.snapshot_overhead_us: %.1f\n",
	       median(snap, rounds) - median(snap_inside, rounds));
	api_server_stop(s);
	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	pthread_join(echo_t, NULL);
	unlink(echo_sock);
	rmdir(dir);
	return 0;
}
