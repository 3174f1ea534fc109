// SPDX-License-Identifier: MIT
/*
 * The API's part of `forkvm run` and `forkvm restore`: a server over the
 * family, and the run's event loop, one thread that poll()s
 *   - a signalfd for SIGINT and SIGTERM (blocked in every thread);
 *   - the family's notify eventfd (a member's machine was made);
 *   - each live machine's stop eventfd (machine_stop_fd()).
 * The loop holds a reference to every machine of the family that runs (the
 * registry of machines), and reaps each one as it stops (family_reap()):
 * its memory goes at once, whether it ended, crashed or was killed through
 * the API, and the template may go first.  A signal that comes while VMs
 * run stops the server first (so no API call is in progress), then every
 * VM, and the run goes on to its report as if they had ended; one that
 * comes after the VMs stopped just ends the run.
 *
 * The socket is not in this loop: libmicrohttpd serves it from its own
 * poll() thread (docs/api.md, "Threading").
 */
#include "vmm/api/api_run.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "vmm/api/api_server.h"
#include "vmm/api/backend_machine.h"
#include "vmm/family.h"
#include "vmm/machine.h"

struct api_run {
	struct api_server *srv; /* NULL once stopped: guarded by lock */
	struct api_machine_backend *b;
	struct family *f;
	pthread_t loop;
	pthread_mutex_t lock;
	bool signalled; /* guarded by lock */
	int sig_fd; /* signalfd: SIGINT, SIGTERM */
	int made_fd; /* eventfd: the family made a machine (family_set_notify) */
	/* The loop's own: */
	struct machine *watched[FAMILY_MAX_VMS]; /* a reference each, until reaped */
	bool done[FAMILY_MAX_VMS]; /* reaped, or never made */
	unsigned int reaped; /* machines the loop let go */
};

static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
}

int api_run_block_signals(void)
{
	sigset_t set;

	signal_set(&set);
	return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Context: r->lock held. */
static void stop_server_locked(struct api_run *r)
{
	api_server_stop(r->srv);
	r->srv = NULL;
}

/* Take a reference to every machine of the family not watched yet. */
static void watch_new(struct api_run *r)
{
	unsigned int id, n = family_size(r->f);
	struct family_member *mb;

	for (id = 0; id < n && id < FAMILY_MAX_VMS; id++) {
		if (r->watched[id] || r->done[id])
			continue;
		r->watched[id] = family_get(r->f, id);
		mb = family_member(r->f, id);
		/* Reaped by an API kill, or a clone that failed: nothing to watch. */
		if (!r->watched[id] && mb && !mb->pending)
			r->done[id] = true;
	}
}

/* VM @id stopped: let its machine go. */
static void reap(struct api_run *r, unsigned int id)
{
	/* -ESRCH: an API kill reaped it first; ours is then its last reference. */
	if (!family_reap(r->f, id))
		r->reaped++;
	machine_put(r->watched[id]);
	r->watched[id] = NULL;
	r->done[id] = true;
}

static void drain(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		perror("forkvm: api loop");
}

/* Handle SIGINT/SIGTERM: the server first (after it no backend call runs), then the VMs. */
static void on_signal(struct api_run *r)
{
	struct signalfd_siginfo si;

	if (read(r->sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	pthread_mutex_lock(&r->lock);
	r->signalled = true;
	stop_server_locked(r);
	api_machine_backend_stop_all(r->b, si.ssi_signo == SIGINT ? "stopped by SIGINT"
								  : "stopped by SIGTERM");
	pthread_mutex_unlock(&r->lock);
}

static void *event_loop(void *arg)
{
	struct pollfd p[2 + FAMILY_MAX_VMS];
	unsigned int ids[FAMILY_MAX_VMS], n, i, id;
	struct api_run *r = arg;
	bool signalled = false;

	while (!signalled) {
		watch_new(r);
		p[0] = (struct pollfd){ .fd = r->sig_fd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = r->made_fd, .events = POLLIN };
		for (n = 0, id = 0; id < FAMILY_MAX_VMS; id++) {
			if (!r->watched[id])
				continue;
			ids[n] = id;
			p[2 + n++] = (struct pollfd){ .fd = machine_stop_fd(r->watched[id]),
						      .events = POLLIN };
		}
		if (poll(p, 2 + n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("forkvm: api loop: poll");
			break;
		}
		if (p[1].revents)
			drain(r->made_fd);
		for (i = 0; i < n; i++)
			if (p[2 + i].revents)
				reap(r, ids[i]);
		if (p[0].revents) {
			on_signal(r);
			signalled = true;
		}
	}
	for (id = 0; id < FAMILY_MAX_VMS; id++) {
		machine_put(r->watched[id]);
		r->watched[id] = NULL;
	}
	return NULL;
}

static void close_fds(struct api_run *r)
{
	if (r->sig_fd >= 0)
		close(r->sig_fd);
	if (r->made_fd >= 0)
		close(r->made_fd);
}

int api_run_start(struct family *f, const char *path, const char *console, struct api_run **out,
		  char *err, size_t errlen)
{
	struct api_run *r = calloc(1, sizeof(*r));
	sigset_t set;
	int ret;

	if (!r) {
		snprintf(err, errlen, "--api: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->f = f;
	signal_set(&set);
	r->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	r->made_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->sig_fd < 0 || r->made_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "--api: signalfd/eventfd: %s", strerror(-ret));
		goto err_free;
	}
	ret = api_machine_backend_create(f, console, &r->b);
	if (ret) {
		snprintf(err, errlen, "--api: %s", strerror(-ret));
		goto err_free;
	}
	ret = api_server_start(
	    &(struct api_server_config){ .path = path, .ops = &api_machine_ops, .ctx = r->b },
	    &r->srv, err, errlen);
	if (ret)
		goto err_backend;
	family_set_notify(f, r->made_fd);
	ret = -pthread_create(&r->loop, NULL, event_loop, r);
	if (ret) {
		snprintf(err, errlen, "--api: event loop: %s", strerror(-ret));
		family_set_notify(f, -1);
		goto err_server;
	}
	*out = r;
	return 0;

err_server:
	api_server_stop(r->srv);
err_backend:
	api_machine_backend_destroy(r->b);
err_free:
	close_fds(r);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return ret;
}

bool api_run_finish(struct api_run *r)
{
	bool by_signal;

	if (!r)
		return false;
	pthread_mutex_lock(&r->lock);
	by_signal = r->signalled;
	if (!by_signal && r->srv)
		fprintf(stderr,
			"forkvm: every VM has stopped; the API stays on %s until SIGINT or "
			"SIGTERM\n",
			api_server_path(r->srv));
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->loop, NULL);
	family_set_notify(r->f, -1);
	pthread_mutex_lock(&r->lock);
	stop_server_locked(r);
	pthread_mutex_unlock(&r->lock);
	api_machine_backend_destroy(r->b);
	close_fds(r);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return by_signal;
}
